// SPDX-License-Identifier: Apache-2.0
// MinHash LSH index with band buckets: insert, query, and streaming query-and-insert.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/data/detail/xxhash64.hpp>
#include <llm/data/lsh_params.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

namespace llm::data {

/// An LSH index over signatures of `num_perm` values cut into `params.bands` bands of
/// `params.rows` values. Documents get ids 0, 1, 2, ... in insertion order.
///
/// Each band keeps an open-addressing table from the band's 64-bit hash (XXH64 of its rows,
/// seeded by the band number) to the newest document in that bucket; older ones are chained
/// through one `next` array indexed by (document, band). Memory: 4 bytes per document per
/// band plus the tables (~16 bytes per distinct bucket at <= 1/2 load); signatures are not
/// stored. Two different bands colliding in 64 bits is treated as equal (probability ~2^-64
/// per pair).
/// Example: `llm::data::lsh_index idx(128, llm::data::optimal_params(0.8, 128)); idx.insert(sig);`
class lsh_index {
public:
    /// Not a document id (2^32 - 1), so at most 2^32 - 1 documents.
    static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();

    /// An empty index for signatures of `num_perm` values; needs bands, rows >= 1 and bands * rows <= num_perm.
    lsh_index(std::size_t num_perm, lsh_params params)
        : num_perm_(num_perm), params_(params), tables_(checked_bands(num_perm, params)), keys_(params.bands) {}

    std::size_t num_perm() const noexcept { return num_perm_; }  ///< signature length
    lsh_params params() const noexcept { return params_; }       ///< the banding
    std::size_t size() const noexcept { return size_; }          ///< documents inserted

    /// Adds a signature (size num_perm); returns its id.
    std::uint32_t insert(std::span<const std::uint32_t> signature) {
        compute_keys(signature, "lsh_index::insert");
        return insert_keys();
    }

    /// Ids of indexed documents sharing at least one band with `signature`, ascending, without
    /// repeats, written to `out` (cleared first). At most `max_per_bucket` newest documents
    /// are taken from each bucket: with union-find clustering one per bucket already
    /// connects the whole bucket, and the cap bounds the cost of huge buckets.
    void query(std::span<const std::uint32_t> signature, std::vector<std::uint32_t>& out,
               std::size_t max_per_bucket = std::numeric_limits<std::size_t>::max()) {
        compute_keys(signature, "lsh_index::query");
        query_keys(out, max_per_bucket);
    }

    /// query() then insert() of the same signature (band hashes computed once): the candidates
    /// among the documents before it; returns the new id. The streaming dedup step.
    std::uint32_t query_and_insert(std::span<const std::uint32_t> signature, std::vector<std::uint32_t>& out,
                                   std::size_t max_per_bucket = std::numeric_limits<std::size_t>::max()) {
        compute_keys(signature, "lsh_index::query_and_insert");
        query_keys(out, max_per_bucket);
        return insert_keys();
    }

private:
    struct table {
        std::vector<std::uint64_t> keys;
        std::vector<std::uint32_t> heads;  // `none` marks an empty slot
        std::size_t used = 0;
    };

    // params.bands once validated (before the tables are sized by it); bands * rows cannot wrap.
    static std::size_t checked_bands(std::size_t num_perm, lsh_params params) {
        llm::check(params.bands >= 1 && params.rows >= 1 && params.rows <= num_perm && params.bands <= num_perm / params.rows,
                   "lsh_index: bands = ", params.bands, ", rows = ", params.rows,
                   " need bands, rows >= 1 and bands * rows <= num_perm = ", num_perm);
        (void)checked_bytes<table>(params.bands, "lsh_index", "the band tables");
        return params.bands;
    }

    void compute_keys(std::span<const std::uint32_t> signature, const char* who) {
        llm::check(signature.size() == num_perm_, who, ": signature has ", signature.size(), " values, index expects ",
                   num_perm_);
        const std::size_t r = params_.rows;
        for (std::size_t band = 0; band < params_.bands; ++band) {
            const std::string_view bytes(reinterpret_cast<const char*>(signature.data() + band * r), r * sizeof(std::uint32_t));
            keys_[band] = detail::xxh64(bytes, band);
        }
    }

    static std::size_t find_slot(const table& t, std::uint64_t key) noexcept {
        const std::size_t mask = t.keys.size() - 1;
        // The key is already a good hash; its top bits pick the slot, linear probing after.
        std::size_t slot = static_cast<std::size_t>(key >> 20) & mask;
        while (t.heads[slot] != none && t.keys[slot] != key) slot = (slot + 1) & mask;
        return slot;
    }

    static void grow(table& t) {
        const std::size_t capacity = t.keys.empty() ? 1024 : t.keys.size() * 2;
        table bigger;
        llm::allocating(capacity * (sizeof(std::uint64_t) + sizeof(std::uint32_t)), "lsh_index::insert", "a band table", [&] {
            bigger.keys.assign(capacity, 0);
            bigger.heads.assign(capacity, none);
        });
        bigger.used = t.used;
        for (std::size_t i = 0; i < t.keys.size(); ++i) {
            if (t.heads[i] == none) continue;
            const std::size_t slot = find_slot(bigger, t.keys[i]);
            bigger.keys[slot] = t.keys[i];
            bigger.heads[slot] = t.heads[i];
        }
        t = std::move(bigger);
    }

    void query_keys(std::vector<std::uint32_t>& out, std::size_t max_per_bucket) const {
        out.clear();
        const std::size_t bands = params_.bands;
        for (std::size_t band = 0; band < bands; ++band) {
            const table& t = tables_[band];
            if (t.keys.empty()) continue;
            const std::size_t slot = find_slot(t, keys_[band]);
            std::size_t taken = 0;
            for (std::uint32_t node = t.heads[slot]; node != none && taken < max_per_bucket; node = next_[node * bands + band], ++taken) {
                out.push_back(node);
            }
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
    }

    std::uint32_t insert_keys() {
        llm::check(size_ < none, "lsh_index::insert: more than 2^32 - 1 documents");
        const auto id = static_cast<std::uint32_t>(size_);
        const std::size_t bands = params_.bands;
        const std::size_t chain = checked_mul(size_ + 1, bands, "lsh_index::insert", "(documents + 1) * bands");
        llm::allocating(checked_bytes<std::uint32_t>(chain, "lsh_index::insert", "the bucket chains"), "lsh_index::insert",
                        "the bucket chains", [&] { next_.resize(chain); });
        for (std::size_t band = 0; band < bands; ++band) {
            table& t = tables_[band];
            if (2 * (t.used + 1) > t.keys.size()) grow(t);
            const std::size_t slot = find_slot(t, keys_[band]);
            if (t.heads[slot] == none) {
                t.keys[slot] = keys_[band];
                ++t.used;
            }
            next_[std::size_t{id} * bands + band] = t.heads[slot];
            t.heads[slot] = id;
        }
        ++size_;
        return id;
    }

    std::size_t num_perm_;
    lsh_params params_;
    std::vector<table> tables_;
    std::vector<std::uint32_t> next_;  // next_[doc * bands + band]: older document in the same bucket
    std::vector<std::uint64_t> keys_;  // band hashes of the signature being processed
    std::size_t size_ = 0;
};

}  // namespace llm::data
