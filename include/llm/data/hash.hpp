// SPDX-License-Identifier: Apache-2.0
// Shingle hash policies (SHA-1/32 as datasketch, XXH64, MurmurHash3) and the concept they satisfy.
#pragma once

#include <llm/data/detail/murmur3.hpp>
#include <llm/data/detail/sha1.hpp>
#include <llm/data/detail/xxhash64.hpp>

#include <concepts>
#include <cstdint>
#include <string_view>

namespace llm::data {

/// A shingle hash policy: maps the bytes of one shingle to an integer of `bits` bits
/// (returned in a std::uint64_t, upper bits zero when bits < 64).
template <class H>
concept shingle_hash = requires(const H h, std::string_view shingle) {
    { H::bits } -> std::convertible_to<unsigned>;
    { h(shingle) } -> std::same_as<std::uint64_t>;
};

/// datasketch's default `sha1_hash32`: the first 4 bytes of SHA-1, read little-endian.
/// Slow (a SHA-1 block per shingle); use it to reproduce datasketch signatures exactly.
/// Example: `llm::data::sha1_32{}("hello world")`.
struct sha1_32 {
    /// Members required by llm::data::shingle_hash; see it for their contracts.
    ///@{
    static constexpr unsigned bits = 32;
    std::uint64_t operator()(std::string_view shingle) const noexcept {
        const auto d = detail::sha1(shingle);
        return std::uint64_t{d[0]} | std::uint64_t{d[1]} << 8 | std::uint64_t{d[2]} << 16 |
               std::uint64_t{d[3]} << 24;
    }
    ///@}
};

/// XXH64 with a seed: the fast default (equal to the reference xxHash XXH64).
/// Example: `llm::data::xxhash64{.seed = 0}("hello world")`.
struct xxhash64 {
    std::uint64_t seed = 0;  ///< XXH64 seed

    /// Members required by llm::data::shingle_hash; see it for their contracts.
    ///@{
    static constexpr unsigned bits = 64;
    std::uint64_t operator()(std::string_view shingle) const noexcept { return detail::xxh64(shingle, seed); }
    ///@}
};

/// The first 64-bit half of MurmurHash3_x64_128 (what `mmh3.hash64(s, seed, signed=False)[0]` gives).
/// Example: `llm::data::murmur3_64{.seed = 0}("hello world")`.
struct murmur3_64 {
    std::uint32_t seed = 0;  ///< MurmurHash3 seed

    /// Members required by llm::data::shingle_hash; see it for their contracts.
    ///@{
    static constexpr unsigned bits = 64;
    std::uint64_t operator()(std::string_view shingle) const noexcept {
        return detail::murmur3_x64_128(shingle, seed).first;
    }
    ///@}
};

static_assert(shingle_hash<sha1_32> && shingle_hash<xxhash64> && shingle_hash<murmur3_64>);

}  // namespace llm::data
