// SPDX-License-Identifier: Apache-2.0
// Sharded MinHash near-duplicate clustering over a communicator: band keys exchanged all-to-all so
// each LSH bucket lives on one rank, candidate pairs verified where their documents live, clusters
// merged globally; the result equals llm::data::near_dedup run on the whole corpus in one process.
#pragma once

#include <llm/core/error.hpp>
#include <llm/data/detail/xxhash64.hpp>
#include <llm/data/near_dedup.hpp>
#include <llm/data/union_find.hpp>
#include <llm/dist/communicator.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

namespace llm::dist {

/// all_gather of a different number of elements per rank: out = every rank's in, in rank order;
/// counts = how many came from each rank. One all_gather of the counts, then one broadcast per rank.
/// Example: `llm::dist::all_gatherv(all_edges, edge_counts, my_edges, comm);`
template <transferable T, buffer In, communicator Comm>
    requires std::same_as<T, std::remove_const_t<detail::buffer_element_t<In>>>
void all_gatherv(std::vector<T>& out, std::vector<std::size_t>& counts, In&& in, Comm&& comm) {
    const std::span<const T> mine = detail::as_span(in, "all_gatherv", "in");
    const std::size_t p = comm.size();
    const std::uint64_t n = mine.size();
    std::vector<std::uint64_t> all(p);
    comm.all_gather(std::span<std::uint64_t>(all), std::span<const std::uint64_t>(&n, 1));
    counts.assign(all.begin(), all.end());
    out.resize(std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
    std::size_t off = 0;
    for (std::size_t r = 0; r < p; ++r) {
        const std::span<T> part = std::span<T>(out).subspan(off, counts[r]);
        if (r == comm.rank()) std::copy(mine.begin(), mine.end(), part.begin());
        comm.broadcast(part, r);
        off += counts[r];
    }
}

/// Near-duplicate clustering of a corpus sharded over the ranks of a communicator, with the
/// result of llm::data::near_dedup on the whole corpus: the same clusters and the same kept
/// documents, whatever the number of ranks. Global document ids run in rank order: rank r's
/// documents come after those of ranks 0..r-1 (contiguous shards in corpus order give the ids of
/// the single-process run).
///
/// Each rank add()s its documents (signatures, lengths, shingle sets with verify), then every
/// rank calls run() (collective):
///  1. each signature's band keys (XXH64 of the band's rows, seeded by the band, as
///     llm::data::lsh_index) go to the rank owning the bucket (a hash of band and key), one
///     all-to-all;
///  2. each owner sorts its buckets by global id and emits, for every document, the pairs with
///     the max_per_bucket documents before it (options().verify) or the one before it: exactly
///     the candidates near_dedup's streaming query takes;
///  3. pairs go to the rank holding their later document and are deduplicated; with verify the
///     earlier document's shingle set is fetched from its rank (two all-to-alls) and the pair is
///     kept if their exact Jaccard index reaches the threshold;
///  4. the kept pairs (edges) and their documents' lengths are gathered on every rank, and a
///     union-find over the documents they touch gives each cluster's keeper: the lowest id
///     (keep_policy::first) or the longest, ties to the lowest id (keep_policy::longest), which
///     is what near_dedup's merges give.
/// Memory per rank: its signatures' band keys (24 bytes per document and band, in flight), its
/// shingle sets with verify, and all edges of the corpus (16 bytes each, plus 32 per document in
/// a cluster of 2 or more).
/// Example: `llm::dist::sharded_near_dedup nd(128, {.threshold = 0.8}, comm); nd.add(sig, len); nd.run(); bool k = nd.kept(0);`
template <communicator Comm>
class sharded_near_dedup {
public:
    /// An empty deduplicator for signatures of `num_perm` values on this rank; the options are
    /// those of llm::data::near_dedup (checked the same way). `comm` must outlive it.
    sharded_near_dedup(std::size_t num_perm, llm::data::near_dedup_options options, Comm& comm)
        : num_perm_(num_perm), options_(options), params_(llm::data::near_dedup(num_perm, options).params()), comm_(comm) {}

    llm::data::lsh_params params() const noexcept { return params_; }             ///< the LSH banding in use
    const llm::data::near_dedup_options& options() const noexcept { return options_; }  ///< the options given
    std::size_t size() const noexcept { return length_.size(); }                  ///< documents added on this rank

    /// Adds this rank's next document; returns its local id (0, 1, ...). `shingles` must be sorted
    /// and repeat-free when options().verify, and is ignored otherwise.
    /// Example: `nd.add(sig, text.size(), set);`
    std::size_t add(std::span<const std::uint32_t> signature, std::uint64_t length, std::span<const std::uint64_t> shingles = {}) {
        const std::size_t id = size();
        llm::check(!ran_, "sharded_near_dedup::add: run() was already called");
        llm::check(signature.size() == num_perm_, "sharded_near_dedup::add: signature has ", signature.size(), " values, expected ", num_perm_);
        llm::check(!options_.verify || (std::is_sorted(shingles.begin(), shingles.end()) &&
                                        std::adjacent_find(shingles.begin(), shingles.end()) == shingles.end()),
                   "sharded_near_dedup::add: shingles of local document ", id, " must be sorted and without repeats");
        const std::size_t r = params_.rows;
        for (std::size_t band = 0; band < params_.bands; ++band) {
            const std::string_view bytes(reinterpret_cast<const char*>(signature.data() + band * r), r * sizeof(std::uint32_t));
            keys_.push_back(llm::data::detail::xxh64(bytes, band));
        }
        signed_.push_back(1);
        length_.push_back(length);
        if (options_.verify) shingles_.emplace_back(shingles.begin(), shingles.end());
        return id;
    }

    /// Adds a document that takes no part in deduplication (a cluster of its own, never a
    /// candidate), as near_dedup::add_excluded. Example: `nd.add_excluded();`
    std::size_t add_excluded(std::uint64_t length = 0) {
        llm::check(!ran_, "sharded_near_dedup::add_excluded: run() was already called");
        const std::size_t id = size();
        for (std::size_t band = 0; band < params_.bands; ++band) keys_.push_back(0);
        signed_.push_back(0);
        length_.push_back(length);
        if (options_.verify) shingles_.emplace_back();
        return id;
    }

    /// Clusters the documents of all ranks (collective: every rank calls it once, after its last add).
    /// Example: `nd.run();`
    void run() {
        llm::check(!ran_, "sharded_near_dedup::run: called twice");
        ran_ = true;
        const std::size_t p = comm_.size(), me = comm_.rank();
        // Global ids: rank r's documents start at offsets_[r].
        const std::uint64_t n = size();
        std::vector<std::uint64_t> counts(p);
        comm_.all_gather(std::span<std::uint64_t>(counts), std::span<const std::uint64_t>(&n, 1));
        offsets_.assign(p + 1, 0);
        for (std::size_t r = 0; r < p; ++r) offsets_[r + 1] = offsets_[r] + counts[r];
        const std::uint64_t base = offsets_[me];

        // 1. Band keys to their bucket's owner: triples (key, band, global id).
        const std::size_t bands = params_.bands;
        std::vector<std::vector<std::uint64_t>> out_by_rank(p);
        for (std::size_t d = 0; d < n; ++d) {
            if (!signed_[d]) continue;
            for (std::size_t band = 0; band < bands; ++band) {
                const std::uint64_t key = keys_[d * bands + band];
                auto& o = out_by_rank[bucket_owner(key, band, p)];
                o.insert(o.end(), {key, band, base + d});
            }
        }
        keys_ = {};
        std::vector<std::uint64_t> got = exchange_lists(out_by_rank);

        // 2. Candidate pairs per bucket: each document with the `cap` documents before it.
        const std::size_t cap = options_.verify ? options_.max_per_bucket : 1;
        std::vector<std::array<std::uint64_t, 3>> entries(got.size() / 3);
        for (std::size_t i = 0; i < entries.size(); ++i) entries[i] = {got[3 * i + 1], got[3 * i], got[3 * i + 2]};  // band, key, id
        got = {};
        std::sort(entries.begin(), entries.end());
        for (auto& o : out_by_rank) o.clear();
        for (std::size_t begin = 0; begin < entries.size();) {
            std::size_t end = begin + 1;
            while (end < entries.size() && entries[end][0] == entries[begin][0] && entries[end][1] == entries[begin][1]) ++end;
            for (std::size_t i = begin + 1; i < end; ++i) {
                const std::uint64_t later = entries[i][2];
                for (std::size_t j = i - std::min(cap, i - begin); j < i; ++j) {
                    auto& o = out_by_rank[owner_of(later)];
                    o.insert(o.end(), {entries[j][2], later});
                }
            }
            begin = end;
        }
        entries = {};

        // 3. Pairs to the rank of their later document, deduplicated there.
        got = exchange_lists(out_by_rank);
        std::vector<std::pair<std::uint64_t, std::uint64_t>> pairs(got.size() / 2);
        for (std::size_t i = 0; i < pairs.size(); ++i) pairs[i] = {got[2 * i], got[2 * i + 1]};
        got = {};
        std::sort(pairs.begin(), pairs.end());
        pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
        std::vector<std::uint64_t> edges;  // (earlier, later) flattened
        std::uint64_t local_counts[2] = {pairs.size(), 0};
        if (!options_.verify) {
            for (const auto& [a, b] : pairs) edges.insert(edges.end(), {a, b});
        } else {
            // Ask each earlier document's rank for its shingle set: requests (a, b) to owner(a),
            // replies (a, b, size, shingles...) back.
            for (auto& o : out_by_rank) o.clear();
            for (const auto& [a, b] : pairs) out_by_rank[owner_of(a)].insert(out_by_rank[owner_of(a)].end(), {a, b});
            got = exchange_lists(out_by_rank);
            for (auto& o : out_by_rank) o.clear();
            std::size_t at = 0;
            for (std::size_t r = 0; r < p; ++r) {
                for (std::size_t end = at + last_counts_[r]; at < end; at += 2) {
                    const std::uint64_t a = got[at], b = got[at + 1];
                    const auto& s = shingles_[a - base];
                    auto& o = out_by_rank[r];
                    o.insert(o.end(), {a, b, s.size()});
                    o.insert(o.end(), s.begin(), s.end());
                }
            }
            got = exchange_lists(out_by_rank);
            for (std::size_t i = 0; i < got.size();) {
                const std::uint64_t a = got[i], b = got[i + 1], m = got[i + 2];
                const std::span<const std::uint64_t> sa(got.data() + i + 3, m);
                if (llm::data::exact_jaccard(sa, shingles_[b - base]) >= options_.threshold) edges.insert(edges.end(), {a, b});
                else ++local_counts[1];
                i += 3 + m;
            }
        }
        std::uint64_t totals[2] = {0, 0};
        comm_.all_reduce(std::span<std::uint64_t>(totals), std::span<const std::uint64_t>(local_counts), reduce_op::sum);
        candidate_pairs_ = totals[0];
        rejected_pairs_ = totals[1];

        // 4. Every rank: all edges, the lengths of the documents they touch, a union-find over those.
        std::vector<std::uint64_t> all_edges;
        std::vector<std::size_t> edge_counts;
        all_gatherv(all_edges, edge_counts, edges, comm_);
        vertices_.assign(all_edges.begin(), all_edges.end());
        std::sort(vertices_.begin(), vertices_.end());
        vertices_.erase(std::unique(vertices_.begin(), vertices_.end()), vertices_.end());
        std::vector<std::uint64_t> my_lengths;  // (id, length) of this rank's documents among the vertices
        const auto lo = std::lower_bound(vertices_.begin(), vertices_.end(), base);
        const auto hi = std::lower_bound(vertices_.begin(), vertices_.end(), base + n);
        for (auto it = lo; it != hi; ++it) my_lengths.insert(my_lengths.end(), {*it, length_[*it - base]});
        std::vector<std::uint64_t> all_lengths;
        std::vector<std::size_t> length_counts;
        all_gatherv(all_lengths, length_counts, my_lengths, comm_);
        std::vector<std::uint64_t> vertex_length(vertices_.size());
        for (std::size_t i = 0; i < all_lengths.size(); i += 2) vertex_length[index_of(all_lengths[i])] = all_lengths[i + 1];

        llm::data::union_find sets(vertices_.size());
        for (std::size_t i = 0; i < all_edges.size(); i += 2) sets.unite(index_of(all_edges[i]), index_of(all_edges[i + 1]));
        // Keeper of each set: the best of its members; visiting members in id order, the first
        // met wins ties, which is the lowest id.
        std::vector<std::uint32_t> best(vertices_.size(), llm::data::lsh_index::none);
        const bool longest = options_.keep == llm::data::keep_policy::longest;
        for (std::uint32_t v = 0; v < vertices_.size(); ++v) {
            const std::uint32_t root = sets.find(v);
            if (best[root] == llm::data::lsh_index::none || (longest && vertex_length[v] > vertex_length[best[root]])) best[root] = v;
        }
        keeper_.assign(vertices_.size(), 0);
        for (std::uint32_t v = 0; v < vertices_.size(); ++v) keeper_[v] = vertices_[best[sets.find(v)]];
    }

    /// The global id of the first document of this rank (after run()). Example: `auto g = nd.global_id(0);`
    std::uint64_t global_id(std::size_t local) const {
        check_ran("global_id");
        return offsets_[comm_.rank()] + local;
    }
    /// Global documents over all ranks (after run()). Example: `auto n = nd.global_size();`
    std::uint64_t global_size() const {
        check_ran("global_size");
        return offsets_.back();
    }
    /// The global id of the document kept for this rank's local document d's cluster (after run()).
    /// Example: `std::uint64_t k = nd.cluster_of(3);`
    std::uint64_t cluster_of(std::size_t local) const {
        check_ran("cluster_of");
        llm::check(local < size(), "sharded_near_dedup::cluster_of: local id ", local, " but this rank has ", size(), " documents");
        const std::uint64_t g = global_id(local);
        const auto it = std::lower_bound(vertices_.begin(), vertices_.end(), g);
        return it != vertices_.end() && *it == g ? keeper_[static_cast<std::size_t>(it - vertices_.begin())] : g;
    }
    /// Whether this rank's local document d is the one kept for its cluster (after run()).
    /// Example: `if (nd.kept(d)) write(d);`
    bool kept(std::size_t local) const { return cluster_of(local) == global_id(local); }

    std::uint64_t candidate_pairs() const noexcept { return candidate_pairs_; }  ///< distinct candidate pairs, all ranks
    std::uint64_t rejected_pairs() const noexcept { return rejected_pairs_; }    ///< pairs failing verification, all ranks

private:
    void check_ran(const char* fn) const { llm::check(ran_, "sharded_near_dedup::", fn, ": call run() first"); }

    static std::size_t bucket_owner(std::uint64_t key, std::size_t band, std::size_t p) noexcept {
        std::uint64_t h = key ^ (0x9E3779B97F4A7C15ull * (band + 1));  // splitmix64 finaliser over key and band
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
        return static_cast<std::size_t>((h ^ (h >> 31)) % p);
    }
    std::size_t owner_of(std::uint64_t global) const {
        return static_cast<std::size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), global) - offsets_.begin()) - 1;
    }
    std::uint32_t index_of(std::uint64_t global) const {
        return static_cast<std::uint32_t>(std::lower_bound(vertices_.begin(), vertices_.end(), global) - vertices_.begin());
    }

    // One all_to_allv of per-rank lists; remembers how many values came from each rank.
    std::vector<std::uint64_t> exchange_lists(const std::vector<std::vector<std::uint64_t>>& by_rank) {
        std::vector<std::size_t> in_counts(by_rank.size());
        std::vector<std::uint64_t> flat;
        for (std::size_t r = 0; r < by_rank.size(); ++r) {
            in_counts[r] = by_rank[r].size();
            flat.insert(flat.end(), by_rank[r].begin(), by_rank[r].end());
        }
        std::vector<std::uint64_t> out;
        exchange(out, last_counts_, flat, std::span<const std::size_t>(in_counts), comm_);
        return out;
    }

    std::size_t num_perm_;
    llm::data::near_dedup_options options_;
    llm::data::lsh_params params_;
    Comm& comm_;
    std::vector<std::uint64_t> keys_;  // per local document, its band keys
    std::vector<std::uint8_t> signed_;
    std::vector<std::uint64_t> length_;
    std::vector<std::vector<std::uint64_t>> shingles_;
    std::vector<std::uint64_t> offsets_;
    std::vector<std::size_t> last_counts_;
    std::vector<std::uint64_t> vertices_, keeper_;  // documents in a cluster of >= 2, and their keepers
    std::uint64_t candidate_pairs_ = 0, rejected_pairs_ = 0;
    bool ran_ = false;
};

}  // namespace llm::dist
