// SPDX-License-Identifier: Apache-2.0
// Reads a whole file into a string, raising llm::error that names the file on failure.
#pragma once

#include <llm/core/error.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace llm::tokenizer::detail {

inline std::string read_file(const std::string& path, const char* function) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    check(f != nullptr, function, ": cannot open '", path, "': ", std::strerror(errno));
    std::string data;
    char buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
    const bool bad = std::ferror(f) != 0;
    std::fclose(f);
    check(!bad, function, ": error reading '", path, "'");
    return data;
}

}  // namespace llm::tokenizer::detail
