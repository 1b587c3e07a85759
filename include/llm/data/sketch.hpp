// SPDX-License-Identifier: Apache-2.0
// The sketcher concept (shingle hashes -> MinHash signature) and the Jaccard estimate from signatures.
#pragma once

#include <llm/core/error.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace llm::data {

/// A sketching policy: `k.sketch(hashes, out)` writes the `k.num_perm()` values of the
/// signature of the set `hashes` (repeats allowed, order irrelevant) into `out`.
/// Equal signature positions estimate the Jaccard index of the two sets.
template <class K>
concept sketcher = requires(const K k, std::span<const std::uint64_t> hashes, std::span<std::uint32_t> out) {
    { k.num_perm() } -> std::convertible_to<std::size_t>;
    k.sketch(hashes, out);
};

/// Estimated Jaccard index of the sets behind two signatures of the same sketcher: the
/// fraction of positions where they agree (datasketch's MinHash.jaccard).
/// Shapes: a.size() == b.size() >= 1. Example: `double j = llm::data::estimate_jaccard(sig1, sig2);`
inline double estimate_jaccard(std::span<const std::uint32_t> a, std::span<const std::uint32_t> b) {
    llm::check(a.size() == b.size(), "estimate_jaccard: signatures have ", a.size(), " and ", b.size(),
               " values; they must come from the same sketcher");
    llm::check(!a.empty(), "estimate_jaccard: signatures are empty");
    std::size_t equal = 0;
    for (std::size_t i = 0; i < a.size(); ++i) equal += a[i] == b[i];
    return static_cast<double>(equal) / static_cast<double>(a.size());
}

}  // namespace llm::data
