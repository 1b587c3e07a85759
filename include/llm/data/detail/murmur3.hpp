// SPDX-License-Identifier: Apache-2.0
// MurmurHash3_x64_128 (Austin Appleby, public domain algorithm), written from its description.
#pragma once

#include <llm/data/detail/bytes.hpp>

#include <bit>
#include <cstdint>
#include <string_view>
#include <utility>

namespace llm::data::detail {

inline constexpr std::uint64_t fmix64(std::uint64_t k) noexcept {
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    k *= 0xC4CEB9FE1A85EC53ull;
    k ^= k >> 33;
    return k;
}

inline constexpr std::uint32_t fmix32(std::uint32_t h) noexcept {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

/// MurmurHash3_x64_128 of `text` with `seed`: the pair (h1, h2); equal to the reference
/// implementation and to Python's `mmh3.hash64(text, seed, signed=False)`.
/// Example: `auto [h1, h2] = murmur3_x64_128("hello", 0);`
inline std::pair<std::uint64_t, std::uint64_t> murmur3_x64_128(std::string_view text,
                                                               std::uint32_t seed = 0) noexcept {
    constexpr std::uint64_t c1 = 0x87C37B91114253D5ull;
    constexpr std::uint64_t c2 = 0x4CF5AD432745937Full;
    const char* p = text.data();
    const std::size_t n = text.size();
    std::uint64_t h1 = seed, h2 = seed;
    const std::size_t blocks = n / 16;
    for (std::size_t i = 0; i < blocks; ++i, p += 16) {
        std::uint64_t k1 = load_u64(p), k2 = load_u64(p + 8);
        k1 *= c1;
        k1 = std::rotl(k1, 31);
        k1 *= c2;
        h1 ^= k1;
        h1 = std::rotl(h1, 27);
        h1 += h2;
        h1 = h1 * 5 + 0x52DCE729u;
        k2 *= c2;
        k2 = std::rotl(k2, 33);
        k2 *= c1;
        h2 ^= k2;
        h2 = std::rotl(h2, 31);
        h2 += h1;
        h2 = h2 * 5 + 0x38495AB5u;
    }
    const auto* tail = reinterpret_cast<const unsigned char*>(p);
    const std::size_t rest = n & 15;
    std::uint64_t k1 = 0, k2 = 0;
    for (std::size_t i = rest; i > 8; --i) k2 ^= std::uint64_t{tail[i - 1]} << (8 * (i - 9));
    if (rest > 8) {
        k2 *= c2;
        k2 = std::rotl(k2, 33);
        k2 *= c1;
        h2 ^= k2;
    }
    for (std::size_t i = rest < 8 ? rest : 8; i > 0; --i) k1 ^= std::uint64_t{tail[i - 1]} << (8 * (i - 1));
    if (rest > 0) {
        k1 *= c1;
        k1 = std::rotl(k1, 31);
        k1 *= c2;
        h1 ^= k1;
    }
    h1 ^= n;
    h2 ^= n;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    return {h1, h2};
}

}  // namespace llm::data::detail
