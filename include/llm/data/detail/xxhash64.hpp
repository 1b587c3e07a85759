// SPDX-License-Identifier: Apache-2.0
// XXH64 (Yann Collet's xxHash, 64-bit variant), written from the published specification.
#pragma once

#include <llm/data/detail/bytes.hpp>

#include <bit>
#include <cstdint>
#include <string_view>

namespace llm::data::detail {

inline constexpr std::uint64_t xxh_p1 = 0x9E3779B185EBCA87ull;
inline constexpr std::uint64_t xxh_p2 = 0xC2B2AE3D27D4EB4Full;
inline constexpr std::uint64_t xxh_p3 = 0x165667B19E3779F9ull;
inline constexpr std::uint64_t xxh_p4 = 0x85EBCA77C2B2AE63ull;
inline constexpr std::uint64_t xxh_p5 = 0x27D4EB2F165667C5ull;

inline std::uint64_t xxh64_round(std::uint64_t acc, std::uint64_t input) noexcept {
    acc += input * xxh_p2;
    acc = std::rotl(acc, 31);
    return acc * xxh_p1;
}

inline std::uint64_t xxh64_merge(std::uint64_t acc, std::uint64_t v) noexcept {
    acc ^= xxh64_round(0, v);
    return acc * xxh_p1 + xxh_p4;
}

/// XXH64 of `text` with `seed`; equal to the reference xxHash library's XXH64().
/// Example: `xxh64("", 0) == 0xEF46DB3751D8E999`.
inline std::uint64_t xxh64(std::string_view text, std::uint64_t seed = 0) noexcept {
    const char* p = text.data();
    const char* const end = p + text.size();
    std::uint64_t h;
    if (text.size() >= 32) {
        std::uint64_t v1 = seed + xxh_p1 + xxh_p2, v2 = seed + xxh_p2, v3 = seed, v4 = seed - xxh_p1;
        for (; end - p >= 32; p += 32) {
            v1 = xxh64_round(v1, load_u64(p));
            v2 = xxh64_round(v2, load_u64(p + 8));
            v3 = xxh64_round(v3, load_u64(p + 16));
            v4 = xxh64_round(v4, load_u64(p + 24));
        }
        h = std::rotl(v1, 1) + std::rotl(v2, 7) + std::rotl(v3, 12) + std::rotl(v4, 18);
        h = xxh64_merge(h, v1);
        h = xxh64_merge(h, v2);
        h = xxh64_merge(h, v3);
        h = xxh64_merge(h, v4);
    } else {
        h = seed + xxh_p5;
    }
    h += static_cast<std::uint64_t>(text.size());
    for (; end - p >= 8; p += 8) {
        h ^= xxh64_round(0, load_u64(p));
        h = std::rotl(h, 27) * xxh_p1 + xxh_p4;
    }
    if (end - p >= 4) {
        h ^= static_cast<std::uint64_t>(load_u32(p)) * xxh_p1;
        h = std::rotl(h, 23) * xxh_p2 + xxh_p3;
        p += 4;
    }
    for (; p < end; ++p) {
        h ^= static_cast<std::uint64_t>(static_cast<unsigned char>(*p)) * xxh_p5;
        h = std::rotl(h, 11) * xxh_p1;
    }
    h ^= h >> 33;
    h *= xxh_p2;
    h ^= h >> 29;
    h *= xxh_p3;
    h ^= h >> 32;
    return h;
}

}  // namespace llm::data::detail
