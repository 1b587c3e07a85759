// SPDX-License-Identifier: Apache-2.0
// The BPE merge loop shared by every tokenizer: a plain reference and the fast path (cached pair ranks, heap for long pieces).
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

namespace llm::tokenizer {

/// One symbol of a piece being merged: bytes [begin, end) of the piece and its token id.
struct bpe_symbol {
    std::uint32_t begin;  ///< first byte of the symbol in the piece
    std::uint32_t end;    ///< one past its last byte
    std::uint32_t id;     ///< its token id
};

/// What a ranker says about two adjacent symbols: the merge priority (lower merges first;
/// `none` when the pair does not merge) and the id of the merged symbol.
struct bpe_merge {
    static constexpr std::uint32_t none = 0xffffffffu;  ///< "does not merge" / "no id"
    std::uint32_t priority = none;                       ///< lower merges first
    std::uint32_t id = none;                             ///< id of the merged symbol
};

/// A merge-rule policy. `r.rank(piece, a, b)` ranks the adjacent symbols a, b of `piece`.
/// tiktoken ranks the concatenated bytes as a token; Hugging Face looks the id pair up in its
/// merges list; SentencePiece ranks the concatenation by its piece score.
template <class R>
concept bpe_ranker = requires(const R& r, std::string_view piece, bpe_symbol a, bpe_symbol b) {
    { r.rank(piece, a, b) } -> std::same_as<bpe_merge>;
};

/// Reference BPE: while some adjacent pair merges, merge the one with the lowest priority,
/// leftmost on ties, recomputing every pair each round (O(n^2) lookups). The oracle for tests.
/// `syms` holds the initial symbols of `piece` in order and receives the final ones.
/// Template parameters: R, the merge-rule policy.
/// Example: `llm::tokenizer::bpe_merge_reference(piece, syms, ranker);`
template <bpe_ranker R>
void bpe_merge_reference(std::string_view piece, std::vector<bpe_symbol>& syms, const R& r) {
    for (;;) {
        bpe_merge best;
        std::size_t at = 0;
        for (std::size_t k = 0; k + 1 < syms.size(); ++k) {
            const bpe_merge m = r.rank(piece, syms[k], syms[k + 1]);
            if (m.priority < best.priority) {
                best = m;
                at = k;
            }
        }
        if (best.priority == bpe_merge::none) return;
        syms[at] = {syms[at].begin, syms[at + 1].end, best.id};
        syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
}

/// Scratch memory for bpe_merge, reused across calls to avoid allocations.
struct bpe_workspace {
    std::vector<bpe_merge> ranks;  ///< per symbol: the merge of it with its right neighbour
    /// A symbol's neighbours in the linked list of live symbols.
    struct node {
        std::uint32_t prev;  ///< index of the left neighbour (0xffffffff: none)
        std::uint32_t next;  ///< index of the right neighbour (0xffffffff: none)
    };
    std::vector<node> nodes;          ///< per symbol
    std::vector<std::uint64_t> heap;  ///< (priority << 32) | symbol index, smallest first
};

namespace detail {

/// Symbols address their piece with 32-bit offsets (half the memory of size_t, twice the
/// symbols per cache line): a piece of 2^32 - 1 bytes or more is refused, never wrapped.
inline void check_piece_size(std::string_view tokenizer, std::size_t bytes) {
    llm::check(bytes < std::size_t{0xffffffffu}, tokenizer, ": encode: a pre-tokenized piece of ", bytes,
               " bytes; pieces are limited to 4294967294 bytes");
}

// Pieces up to this many symbols use the array scan (tiktoken's algorithm with cached pair
// ranks: O(n) per merge, tiny constants); longer ones the heap (O(n log n) in all), so a
// 100,000-character run without spaces is not quadratic. Measured with cl100k on random
// lowercase words (CPU time): the scan wins below ~96 symbols, the heap above ~128.
inline constexpr std::size_t bpe_heap_threshold = 96;

template <bpe_ranker R>
void bpe_merge_scan(std::string_view piece, std::vector<bpe_symbol>& syms, const R& r, bpe_workspace& ws) {
    auto& ranks = ws.ranks;
    ranks.resize(syms.size());
    for (std::size_t k = 0; k + 1 < syms.size(); ++k) ranks[k] = r.rank(piece, syms[k], syms[k + 1]);
    ranks.back() = {};
    while (syms.size() > 1) {
        std::uint32_t best = bpe_merge::none;
        std::size_t at = 0;
        for (std::size_t k = 0; k + 1 < syms.size(); ++k) {
            if (ranks[k].priority < best) {
                best = ranks[k].priority;
                at = k;
            }
        }
        if (best == bpe_merge::none) return;
        syms[at] = {syms[at].begin, syms[at + 1].end, ranks[at].id};
        syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(at) + 1);
        ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(at) + 1);
        ranks[at] = at + 1 < syms.size() ? r.rank(piece, syms[at], syms[at + 1]) : bpe_merge{};
        if (at > 0) ranks[at - 1] = r.rank(piece, syms[at - 1], syms[at]);
    }
}

// Heap entries are one 64-bit word, (priority << 32) | k: comparing words orders by priority,
// then by position (symbol indices grow left to right), and a 100,000-symbol heap fits in L2.
// An entry is stale when its symbol's current merge has another priority: rankers give
// distinct pairs distinct priorities (a tiktoken rank belongs to one byte string, a merges
// rank to one id pair, a score order to one piece), and a pair that changed is a different pair.
template <bpe_ranker R>
void bpe_merge_heap(std::string_view piece, std::vector<bpe_symbol>& syms, const R& r, bpe_workspace& ws) {
    constexpr std::uint32_t end = 0xffffffffu;
    const auto n = static_cast<std::uint32_t>(syms.size());
    auto& nodes = ws.nodes;
    auto& cur = ws.ranks;
    auto& heap = ws.heap;
    nodes.resize(n);
    cur.assign(n, bpe_merge{});
    heap.clear();
    const auto cmp = std::greater<std::uint64_t>{};
    auto entry = [](std::uint32_t priority, std::uint32_t k) { return (static_cast<std::uint64_t>(priority) << 32) | k; };
    auto update = [&](std::uint32_t k) {  // recompute k's merge with its right neighbour
        const std::uint32_t nx = nodes[k].next;
        cur[k] = nx == end ? bpe_merge{} : r.rank(piece, syms[k], syms[nx]);
        if (cur[k].priority != bpe_merge::none) {
            heap.push_back(entry(cur[k].priority, k));
            std::push_heap(heap.begin(), heap.end(), cmp);
        }
    };
    for (std::uint32_t k = 0; k < n; ++k) nodes[k] = {k == 0 ? end : k - 1, k + 1 == n ? end : k + 1};
    for (std::uint32_t k = 0; k + 1 < n; ++k) {
        cur[k] = r.rank(piece, syms[k], syms[k + 1]);
        if (cur[k].priority != bpe_merge::none) heap.push_back(entry(cur[k].priority, k));
    }
    std::make_heap(heap.begin(), heap.end(), cmp);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), cmp);
        const std::uint64_t e = heap.back();
        heap.pop_back();
        const auto k = static_cast<std::uint32_t>(e);
        if (cur[k].priority != static_cast<std::uint32_t>(e >> 32)) continue;  // stale
        const std::uint32_t nx = nodes[k].next;
        syms[k] = {syms[k].begin, syms[nx].end, cur[k].id};
        cur[nx] = bpe_merge{};  // nx is gone: its entries are stale from now on
        nodes[k].next = nodes[nx].next;
        if (nodes[k].next != end) nodes[nodes[k].next].prev = k;
        update(k);
        if (nodes[k].prev != end) update(nodes[k].prev);
    }
    std::uint32_t out = 0;
    for (std::uint32_t k = 0; k != end; k = nodes[k].next) syms[out++] = syms[k];
    syms.resize(out);
}

}  // namespace detail

/// BPE merging with the same result as bpe_merge_reference: lowest priority first, leftmost on
/// ties. Near-linear: O(n) per merge with cached pair ranks for short pieces, a heap with lazy
/// invalidation (O(n log n)) for long ones.
/// Template parameters: R, the merge-rule policy.
/// Example: `llm::tokenizer::bpe_workspace ws; llm::tokenizer::bpe_merge_fast(piece, syms, ranker, ws);`
template <bpe_ranker R>
void bpe_merge_fast(std::string_view piece, std::vector<bpe_symbol>& syms, const R& r, bpe_workspace& ws) {
    if (syms.size() < 2) return;
    if (syms.size() <= detail::bpe_heap_threshold) {
        detail::bpe_merge_scan(piece, syms, r, ws);
    } else {
        detail::bpe_merge_heap(piece, syms, r, ws);
    }
}

}  // namespace llm::tokenizer
