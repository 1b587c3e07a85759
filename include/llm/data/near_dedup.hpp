// SPDX-License-Identifier: Apache-2.0
// Streaming near-duplicate clustering: LSH candidates, optional exact-Jaccard check, union-find, keeper choice.
#pragma once

#include <llm/core/error.hpp>
#include <llm/data/lsh.hpp>
#include <llm/data/union_find.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace llm::data {

/// Which document of a cluster is kept.
enum class keep_policy {
    first,    ///< the first one added (streaming-friendly: a document's fate is known when added)
    longest,  ///< the longest (by the length given to add); ties go to the first
};

/// Options of `near_dedup`.
struct near_dedup_options {
    double threshold = 0.8;                 ///< Jaccard threshold (for LSH parameters and verification)
    lsh_params params{};                    ///< {0, 0}: optimal_params(threshold, num_perm, 1 - fn_weight, fn_weight)
    /// Weight of false negatives in the LSH parameter choice (false positives get 1 - fn_weight).
    /// 0.5 is datasketch's default. With verify, false positives only cost an exact check, so
    /// 0.9 is the better choice: it lifts the candidate probability at J = threshold + 0.05
    /// from ~0.7 to >= 0.95 (num_perm 128; tests/data/accuracy.cpp).
    double fn_weight = 0.5;
    bool verify = false;                    ///< keep a candidate pair only if exact Jaccard of shingle sets >= threshold
    keep_policy keep = keep_policy::first;  ///< which document of a cluster survives
    std::size_t max_per_bucket = 64;        ///< candidates taken per bucket when verifying (1 suffices without)
};

/// Exact Jaccard index of two sorted, repeat-free sets (two empty sets: 1).
/// Example: `double j = llm::data::exact_jaccard(a, b);`
inline double exact_jaccard(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b) noexcept {
    if (a.empty() && b.empty()) return 1.0;
    std::size_t i = 0, j = 0, common = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i] < b[j]) {
            ++i;
        } else if (b[j] < a[i]) {
            ++j;
        } else {
            ++common;
            ++i;
            ++j;
        }
    }
    return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

/// Clusters documents as they arrive. add() takes a document's signature (and, with
/// verify, its sorted repeat-free shingle hashes, which are then kept: 8 bytes per distinct
/// shingle); candidates come from the LSH index, are optionally verified, and are merged
/// with union-find. After the last add(), cluster_of(d) is the id of the document kept for
/// d's cluster and kept(d) says whether d is that document.
/// Example: `llm::data::near_dedup nd(128, {.threshold = 0.8}); nd.add(sig, text.size());`
class near_dedup {
public:
    /// An empty deduplicator for signatures of `num_perm` values; throws llm::error on invalid options.
    near_dedup(std::size_t num_perm, near_dedup_options options)
        : options_(check_options(options)),
          index_(num_perm, options_.params.bands != 0 ? options_.params
                                                    : optimal_params(options_.threshold, num_perm, 1 - options_.fn_weight, options_.fn_weight)) {}

    const near_dedup_options& options() const noexcept { return options_; }  ///< the options given
    lsh_params params() const noexcept { return index_.params(); }           ///< the LSH banding in use
    std::size_t size() const noexcept { return length_.size(); }             ///< documents added

    /// Adds the next document; returns its id (0, 1, ...). `shingles` must be sorted and
    /// repeat-free when options().verify, and is ignored otherwise.
    std::uint32_t add(std::span<const std::uint32_t> signature, std::uint64_t length,
                      std::span<const std::uint64_t> shingles = {}) {
        const std::size_t cap = options_.verify ? options_.max_per_bucket : 1;
        const auto id = static_cast<std::uint32_t>(size());
        llm::check(!options_.verify || (std::is_sorted(shingles.begin(), shingles.end()) &&
                                        std::adjacent_find(shingles.begin(), shingles.end()) == shingles.end()),
                   "near_dedup::add: shingles of document ", id, " must be sorted and without repeats");
        index_.query_and_insert(signature, candidates_, cap);
        doc_of_entry_.push_back(id);
        for (auto& c : candidates_) c = doc_of_entry_[c];
        sets_.add();
        keeper_.push_back(id);
        length_.push_back(length);
        if (options_.verify) shingles_.emplace_back(shingles.begin(), shingles.end());
        for (const std::uint32_t other : candidates_) {
            ++candidate_pairs_;
            if (sets_.find(other) == sets_.find(id)) continue;
            if (options_.verify && exact_jaccard(shingles_[other], shingles_[id]) < options_.threshold) {
                ++rejected_pairs_;
                continue;
            }
            merge(other, id);
        }
        return id;
    }

    /// Adds a document that takes no part in deduplication (e.g. dropped by a quality filter):
    /// it gets the next id and is a cluster of its own, but is never a candidate.
    std::uint32_t add_excluded(std::uint64_t length = 0) {
        const auto id = static_cast<std::uint32_t>(size());
        sets_.add();
        keeper_.push_back(id);
        length_.push_back(length);
        if (options_.verify) shingles_.emplace_back();
        return id;
    }

    /// The id of the document kept for d's cluster (d itself for a unique document).
    std::uint32_t cluster_of(std::uint32_t d) { return keeper_[sets_.find(d)]; }
    /// Whether d is the document kept for its cluster.
    bool kept(std::uint32_t d) { return cluster_of(d) == d; }

    std::size_t candidate_pairs() const noexcept { return candidate_pairs_; }  ///< pairs looked at
    std::size_t rejected_pairs() const noexcept { return rejected_pairs_; }    ///< pairs failing verification

private:
    static near_dedup_options check_options(near_dedup_options o) {
        llm::check(o.threshold > 0 && o.threshold < 1, "near_dedup: threshold = ", o.threshold, " must be in (0, 1)");
        llm::check(o.fn_weight > 0 && o.fn_weight < 1, "near_dedup: fn_weight = ", o.fn_weight, " must be in (0, 1)");
        llm::check(o.max_per_bucket >= 1, "near_dedup: max_per_bucket must be >= 1");
        return o;
    }

    void merge(std::uint32_t a, std::uint32_t b) {
        const std::uint32_t ka = keeper_[sets_.find(a)], kb = keeper_[sets_.find(b)];
        const std::uint32_t root = sets_.unite(a, b);
        const bool a_wins = options_.keep == keep_policy::first
                                ? ka < kb
                                : (length_[ka] > length_[kb] || (length_[ka] == length_[kb] && ka < kb));
        keeper_[root] = a_wins ? ka : kb;
    }

    near_dedup_options options_;
    lsh_index index_;
    union_find sets_;
    std::vector<std::uint32_t> doc_of_entry_;  // LSH entry -> document id (excluded documents have no entry)
    std::vector<std::uint32_t> keeper_;  // keeper_[root]: the kept document of that set
    std::vector<std::uint64_t> length_;
    std::vector<std::vector<std::uint64_t>> shingles_;
    std::vector<std::uint32_t> candidates_;
    std::size_t candidate_pairs_ = 0, rejected_pairs_ = 0;
};

}  // namespace llm::data
