// SPDX-License-Identifier: Apache-2.0
// Reads a file (or its first bytes) into a string, raising llm::error that names the file on failure.
#pragma once

#include <llm/core/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace llm::tokenizer::detail {

// The first `max_bytes` bytes of the file (all of it when shorter); `complete` tells which.
inline std::string read_file_prefix(const std::string& path, const char* function, std::size_t max_bytes, bool* complete = nullptr) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    check(f != nullptr, function, ": cannot open '", path, "': ", std::strerror(errno));
    std::string data;
    char buf[1 << 16];
    std::size_t n;
    while (data.size() < max_bytes && (n = std::fread(buf, 1, std::min(sizeof buf, max_bytes - data.size()), f)) > 0) data.append(buf, n);
    if (complete) *complete = data.size() < max_bytes || std::fgetc(f) == EOF;
    const bool bad = std::ferror(f) != 0;
    std::fclose(f);
    check(!bad, function, ": error reading '", path, "'");
    return data;
}

inline std::string read_file(const std::string& path, const char* function) {
    return read_file_prefix(path, function, static_cast<std::size_t>(-1));
}

}  // namespace llm::tokenizer::detail
