// SPDX-License-Identifier: Apache-2.0
// Unaligned little-endian loads and rotations shared by the shingle hash functions.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace llm::data::detail {

static_assert(std::endian::native == std::endian::little,
              "llm::data hash functions read little-endian words; a big-endian port needs byte swaps here");

inline std::uint64_t load_u64(const char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline std::uint32_t load_u32(const char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

}  // namespace llm::data::detail
