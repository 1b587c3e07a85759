// SPDX-License-Identifier: Apache-2.0
// A Bloom filter sized for a chosen false-positive rate (approximate set membership for streaming dedup).
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/data/detail/murmur3.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace llm::data {

/// Bloom filter for `expected_items` items at false-positive rate `fp_rate`: m = -n ln p /
/// (ln 2)^2 bits and k = round(m/n ln 2) probes, by double hashing h1 + i*h2 of one 128-bit
/// MurmurHash3 (Kirsch & Mitzenmacher 2006: as good as k independent hashes). No false
/// negatives; above `expected_items` the false-positive rate grows past `fp_rate`.
/// Example: `llm::data::bloom_filter seen(1'000'000, 0.001); bool dup = seen.test_and_insert(text);`
class bloom_filter {
public:
    /// Sizes the filter; needs expected_items >= 1 and fp_rate in (0, 1), and at most 2^40 bits.
    bloom_filter(std::size_t expected_items, double fp_rate) {
        llm::check(expected_items >= 1, "bloom_filter: expected_items = 0 must be >= 1");
        llm::check(fp_rate > 0 && fp_rate < 1, "bloom_filter: fp_rate = ", fp_rate, " must be in (0, 1)");
        const double ln2 = std::log(2.0);
        const double m = std::ceil(-static_cast<double>(expected_items) * std::log(fp_rate) / (ln2 * ln2));
        llm::check(m <= 0x1p40, "bloom_filter: ", expected_items, " items at fp_rate ", fp_rate, " need ", m, " bits (> 2^40)");
        bits_ = static_cast<std::uint64_t>(m < 64 ? 64 : m);
        probes_ = static_cast<unsigned>(std::max(1.0, std::round(static_cast<double>(bits_) / static_cast<double>(expected_items) * ln2)));
        words_ = llm::checked_vector<std::uint64_t>((bits_ + 63) / 64, "bloom_filter", "the bit array");
    }

    std::uint64_t bits() const noexcept { return bits_; }    ///< number of bits m
    unsigned probes() const noexcept { return probes_; }     ///< number of probes k

    /// Records item.
    void insert(std::string_view item) noexcept { probe<true>(*this, item); }
    /// Whether item was (probably) inserted: no false negatives.
    bool contains(std::string_view item) const noexcept { return probe<false>(*this, item); }
    /// Inserts item; returns whether it was (probably) present before.
    bool test_and_insert(std::string_view item) noexcept { return probe<true>(*this, item); }

private:
    /// One routine for lookups (Self const) and inserts (Self mutable).
    template <bool Insert, class Self>
    static bool probe(Self& self, std::string_view item) noexcept {
        const auto [h1, h2] = detail::murmur3_x64_128(item, 0);
        bool present = true;
        for (unsigned i = 0; i < self.probes_; ++i) {
            const std::uint64_t bit = (h1 + i * (h2 | 1)) % self.bits_;
            auto& w = self.words_[bit / 64];
            const std::uint64_t mask = std::uint64_t{1} << (bit % 64);
            present = present && (w & mask);
            if constexpr (Insert) w |= mask;
        }
        return present;
    }

    std::uint64_t bits_ = 0;
    unsigned probes_ = 0;
    std::vector<std::uint64_t> words_;
};

}  // namespace llm::data
