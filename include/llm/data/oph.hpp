// SPDX-License-Identifier: Apache-2.0
// One-permutation MinHash with optimal densification: one hash per shingle instead of num_perm.
#pragma once

#include <llm/core/error.hpp>
#include <llm/data/detail/murmur3.hpp>
#include <llm/data/sketch.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace llm::data {

/// One-permutation hashing (Li, Owen, Zhang 2012) with optimal densification (Shrivastava,
/// ICML 2017). Each shingle hash is remixed once (MurmurHash3 finaliser, salted by the
/// seed); its top 32 bits pick one of `num_bins` bins, its low 32 bits are the value kept if
/// smaller. An empty bin i then copies the value of the first non-empty bin met by the
/// sequence j = h(i, 1), h(i, 2), ... of seeded hashes: two documents fill an empty bin from
/// the same bin, which keeps the estimate unbiased with the variance of k permutations.
/// Cost per document: one mix per shingle plus O(num_bins) for densification, against
/// num_perm permutations per shingle for `minhash`. The empty set gives all 2^32 - 1.
/// Signatures are not comparable with datasketch's (a different sketch).
/// Example: `llm::data::one_permutation oph(128, 1); oph.sketch(hashes, sig);`
class one_permutation {
public:
    /// Largest number of bins (the occupancy bitmap lives on the stack).
    static constexpr std::size_t max_bins = 8192;

    /// `num_bins` bins (1 <= num_bins <= max_bins), hashing salted by `seed`.
    explicit one_permutation(std::size_t num_bins = 128, std::uint32_t seed = 1)
        : bins_(num_bins), salt_(detail::fmix64(0x9E3779B97F4A7C15ull * (std::uint64_t{seed} + 1))),
          densify_salt_(detail::fmix64(salt_ ^ 0xD6E8FEB86659FD93ull)) {
        llm::check(num_bins >= 1 && num_bins <= max_bins, "one_permutation: num_bins = ", num_bins, " must be in [1, ",
                   max_bins, "]");
    }

    std::size_t num_perm() const noexcept { return bins_; }  ///< number of bins (signature length)

    /// out[i] = min value of the hashes falling in bin i, densified; out.size() == num_perm().
    void sketch(std::span<const std::uint64_t> hashes, std::span<std::uint32_t> out) const {
        llm::check(out.size() == bins_, "one_permutation::sketch: out has ", out.size(), " values, num_bins is ", bins_);
        std::array<std::uint64_t, max_bins / 64> filled{};
        for (auto& v : out) v = 0xFFFFFFFFu;
        for (const std::uint64_t h : hashes) {
            const std::uint64_t y = detail::fmix64(h ^ salt_);
            const std::size_t bin = reduce(y >> 32);
            const auto value = static_cast<std::uint32_t>(y);
            out[bin] = value < out[bin] ? value : out[bin];
            filled[bin / 64] |= std::uint64_t{1} << (bin % 64);
        }
        if (hashes.empty()) return;
        for (std::size_t i = 0; i < bins_; ++i) {
            if (is_set(filled, i)) continue;
            // At least one bin is filled, so this ends; expected tries bins / filled bins.
            for (std::uint64_t attempt = 1;; ++attempt) {
                const std::size_t j = reduce(detail::fmix64(densify_salt_ ^ (std::uint64_t{i} << 32 | attempt)) >> 32);
                if (is_set(filled, j)) {
                    out[i] = out[j];
                    break;
                }
            }
        }
    }

private:
    /// Maps a 32-bit value to [0, bins) by multiply-shift (Lemire), no division.
    std::size_t reduce(std::uint64_t v32) const noexcept { return static_cast<std::size_t>((v32 * bins_) >> 32); }
    static bool is_set(const std::array<std::uint64_t, max_bins / 64>& bits, std::size_t i) noexcept {
        return (bits[i / 64] >> (i % 64)) & 1u;
    }

    std::size_t bins_;
    std::uint64_t salt_, densify_salt_;
};

static_assert(sketcher<one_permutation>);

}  // namespace llm::data
