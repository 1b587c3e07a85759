// SPDX-License-Identifier: Apache-2.0
// Old spellings of the bounded file readers, forwarding to llm::io (kept for gguf_vocab.hpp, tests and examples).
#pragma once

#include <llm/io/file.hpp>

#include <cstddef>
#include <string>

namespace llm::tokenizer::detail {

// The first `max_bytes` bytes of the file (all of it when shorter); `complete` tells which.
// Reads at most max_bytes + 1 bytes, also from pipes and devices.
inline std::string read_file_prefix(const std::string& path, const char* function, std::size_t max_bytes, bool* complete = nullptr) {
    return io::read_file_prefix(path, max_bytes, function, complete);
}

// The whole file, refused with llm::error over llm::io::default_read_limit (1 GiB).
inline std::string read_file(const std::string& path, const char* function) {
    return io::read_file(path, io::default_read_limit, function);
}

}  // namespace llm::tokenizer::detail
