// SPDX-License-Identifier: Apache-2.0
// KV caches for incremental decoding: a contiguous cache and a paged cache (fixed-size blocks, a block table per sequence, as in vLLM).
#pragma once

#include <llm/attention/detail/problem.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace llm::attention {

/// A run of consecutive cached positions of one sequence that lie at a fixed stride in memory:
/// key row p (p < count) of kv head h is k + h * head_stride + p * stride, likewise v.
template <class T>
struct kv_run {
    const T* k;               ///< key row of the run's first position, kv head 0
    const T* v;               ///< value row of the run's first position, kv head 0
    std::size_t count;        ///< positions in the run
    std::size_t stride;       ///< elements between consecutive positions of one head
    std::size_t head_stride;  ///< elements between kv heads
};

/// What decode_attention reads from a cache: element type, sizes, per-sequence length and the
/// runs of contiguous positions (`run(seq, pos)`: the run starting at position pos < length).
/// Models: contiguous_kv_cache<T>, paged_kv_cache<T>.
/// C: the candidate cache type.
template <class C>
concept kv_cache = requires(const C& c, std::size_t i) {
    typename C::element_type;
    { c.kv_heads() } -> std::convertible_to<std::size_t>;
    { c.head_dim() } -> std::convertible_to<std::size_t>;
    { c.sequences() } -> std::convertible_to<std::size_t>;
    { c.length(i) } -> std::convertible_to<std::size_t>;
    { c.run(i, i) } -> std::same_as<kv_run<typename C::element_type>>;
};

namespace detail {

/// Checks the (tokens, kv_heads, head_dim) shapes of one append's k and v.
template <class TK, class TV>
std::size_t check_append(const char* fn, const strided<TK, 3>& k, const strided<TV, 3>& v, std::size_t kv_heads,
                         std::size_t head_dim) {
    llm::check(k.n == v.n, fn, ": k is ", shape_of(k), " but v is ", shape_of(v));
    llm::check(k.n[1] == kv_heads && k.n[2] == head_dim, fn, ": k is ", shape_of(k), " but the cache holds [tokens, ",
               kv_heads, ", ", head_dim, "]");
    return k.n[0];
}

/// Elements of one of a cache's K and V stores, a * b * c * d, each product overflow-checked,
/// and sized (both stores together) against llm::max_allocation_bytes.
template <class T>
std::size_t cache_elements(const char* fn, std::size_t a, std::size_t b, std::size_t c, std::size_t d) {
    const std::size_t n = checked_mul(checked_mul(checked_mul(a, b, fn, "the cache size"), c, fn, "the cache size"), d, fn,
                                      "the cache size");
    checked_bytes<T>(checked_mul(n, 2, fn, "the K and V elements"), fn, "the K and V stores");
    return n;
}

/// Sizes the K and V stores to n elements each; std::bad_alloc becomes llm::error.
template <class T>
void allocate_stores(const char* fn, std::size_t n, std::vector<T>& k, std::vector<T>& v) {
    allocating(2 * n * sizeof(T), fn, "the K and V stores", [&] {
        k.resize(n);
        v.resize(n);
    });
}

template <class T, class TK, class TV>
void store_rows(const strided<TK, 3>& k, const strided<TV, 3>& v, std::size_t t, T* kdst, T* vdst, std::size_t kv_heads,
                std::size_t head_dim, std::size_t head_stride) {
    for (std::size_t h = 0; h < kv_heads; ++h) {
        for (std::size_t d = 0; d < head_dim; ++d) {
            kdst[h * head_stride + d] = T(static_cast<float>(k(t, h, d)));
            vdst[h * head_stride + d] = T(static_cast<float>(v(t, h, d)));
        }
    }
}

}  // namespace detail

/// A KV cache with a fixed capacity per sequence, stored contiguously: keys and values of
/// sequence s at position p, kv head h are rows of head_dim elements at
/// ((s * kv_heads + h) * capacity + p) * head_dim. Head-major, so decode streams each head's
/// keys from consecutive memory (with position-major rows, one head's rows sit
/// kv_heads * head_dim apart: a page per row at 8 x 128 fp32, and TLB misses instead of
/// streaming). Simple and fastest to read; memory is reserved for every sequence's full
/// capacity up front.
/// T: element type stored (float or llm::bf16; bf16 halves memory and the bytes decode reads).
/// Example: `llm::attention::contiguous_kv_cache<llm::bf16> cache(4, 8192, 8, 128); cache.append(0, k, v);`
template <class T = float>
    requires float_or_bf16<T> && (!std::is_const_v<T>)
class contiguous_kv_cache {
public:
    using element_type = T;  ///< stored element type

    /// Room for `capacity` tokens in each of `sequences` sequences, kv_heads x head_dim per token.
    /// Throws llm::error when a size is 0, the total overflows, exceeds llm::max_allocation_bytes
    /// or cannot be allocated.
    contiguous_kv_cache(std::size_t sequences, std::size_t capacity, std::size_t kv_heads, std::size_t head_dim)
        : seqs_(sequences), cap_(capacity), heads_(kv_heads), dim_(head_dim) {
        constexpr const char* fn = "contiguous_kv_cache";
        llm::check(sequences > 0 && capacity > 0 && kv_heads > 0 && head_dim > 0, "contiguous_kv_cache: sequences = ",
                   sequences, ", capacity = ", capacity, ", kv_heads = ", kv_heads, ", head_dim = ", head_dim,
                   " must all be > 0");
        detail::allocate_stores(fn, detail::cache_elements<T>(fn, seqs_, cap_, heads_, dim_), k_, v_);
        allocating(seqs_ * sizeof(std::size_t), fn, "the lengths", [&] { len_.assign(seqs_, 0); });
    }

    std::size_t sequences() const noexcept { return seqs_; }  ///< number of sequences
    std::size_t capacity() const noexcept { return cap_; }    ///< tokens each sequence can hold
    std::size_t kv_heads() const noexcept { return heads_; }  ///< kv heads per token
    std::size_t head_dim() const noexcept { return dim_; }    ///< elements per head
    /// Tokens cached for sequence `seq` (checked).
    std::size_t length(std::size_t seq) const {
        check_seq("contiguous_kv_cache::length", seq);
        return len_[seq];
    }

    /// Appends the tokens of k and v, each (tokens, kv_heads, head_dim) (any strides), to
    /// sequence `seq`. Throws llm::error, leaving the cache unchanged, when they do not fit.
    /// k, v: dense_view<3> (float or bf16).
    template <dense_view<3> K, dense_view<3> V>
    void append(std::size_t seq, K&& k, V&& v) {
        constexpr const char* fn = "contiguous_kv_cache::append";
        check_seq(fn, seq);
        const auto ks = detail::as_strided<3>(k);
        const auto vs = detail::as_strided<3>(v);
        const std::size_t n = detail::check_append(fn, ks, vs, heads_, dim_);
        llm::check(n <= cap_ - len_[seq], fn, ": sequence ", seq, " holds ", len_[seq], " of ", cap_,
                   " tokens; appending ", n, " would overflow the cache");
        for (std::size_t t = 0; t < n; ++t) {
            const std::size_t row = offset(seq, len_[seq] + t);
            detail::store_rows(ks, vs, t, k_.data() + row, v_.data() + row, heads_, dim_, cap_ * dim_);
        }
        len_[seq] += n;
    }

    /// Forgets sequence `seq` (length 0); its memory is reused by later appends.
    void reset(std::size_t seq) {
        check_seq("contiguous_kv_cache::reset", seq);
        len_[seq] = 0;
    }

    /// The positions [pos, length(seq)) of `seq`: one run (see kv_cache).
    kv_run<T> run(std::size_t seq, std::size_t pos) const {
        LLM_ASSERT(seq < seqs_ && pos < len_[seq]);
        const std::size_t row = offset(seq, pos);
        return {k_.data() + row, v_.data() + row, len_[seq] - pos, dim_, cap_ * dim_};
    }

private:
    std::size_t offset(std::size_t seq, std::size_t pos) const noexcept { return (seq * heads_ * cap_ + pos) * dim_; }
    void check_seq(const char* fn, std::size_t seq) const {
        llm::check(seq < seqs_, fn, ": sequence ", seq, " out of range (the cache holds ", seqs_, " sequences)");
    }

    std::size_t seqs_, cap_, heads_, dim_;
    std::vector<std::size_t> len_;
    std::vector<T> k_, v_;
};

/// A paged KV cache (vLLM's PagedAttention layout): one pool of `blocks` fixed-size blocks of
/// `block_size` tokens each; every sequence owns a block table (its blocks in order), growing
/// one block at a time as tokens are appended, so memory follows the actual lengths and
/// finished sequences give their blocks back. Token p of a sequence lives in block
/// table[p / block_size] at slot p % block_size; a block stores (kv_heads, block_size, head_dim)
/// keys and the same for values (head-major inside a block, as vLLM's value cache).
/// T: element type stored (float or llm::bf16).
/// Example: `llm::attention::paged_kv_cache<> cache(1024, 16, 8, 128); auto s = cache.add_sequence(); cache.append(s, k, v);`
template <class T = float>
    requires float_or_bf16<T> && (!std::is_const_v<T>)
class paged_kv_cache {
public:
    using element_type = T;  ///< stored element type

    /// A pool of `blocks` blocks of `block_size` tokens, kv_heads x head_dim per token.
    /// Throws llm::error when a size is 0, the total overflows, exceeds llm::max_allocation_bytes
    /// or cannot be allocated.
    paged_kv_cache(std::size_t blocks, std::size_t block_size, std::size_t kv_heads, std::size_t head_dim)
        : blocks_(blocks), bs_(block_size), heads_(kv_heads), dim_(head_dim) {
        constexpr const char* fn = "paged_kv_cache";
        llm::check(blocks > 0 && block_size > 0 && kv_heads > 0 && head_dim > 0, "paged_kv_cache: blocks = ", blocks,
                   ", block_size = ", block_size, ", kv_heads = ", kv_heads, ", head_dim = ", head_dim,
                   " must all be > 0");
        llm::check(blocks <= static_cast<std::size_t>(INT32_MAX), "paged_kv_cache: blocks = ", blocks,
                   " exceeds the int32 block ids of the block tables");
        detail::allocate_stores(fn, detail::cache_elements<T>(fn, blocks_, bs_, heads_, dim_), k_, v_);
        allocating(blocks_ * sizeof(std::int32_t), fn, "the free list", [&] { free_.reserve(blocks_); });
        for (std::size_t b = blocks_; b-- > 0;) {
            free_.push_back(static_cast<std::int32_t>(b));  // hand out block 0 first
        }
    }

    std::size_t blocks() const noexcept { return blocks_; }           ///< blocks in the pool
    std::size_t block_size() const noexcept { return bs_; }           ///< tokens per block
    std::size_t free_blocks() const noexcept { return free_.size(); } ///< blocks not owned by any sequence
    std::size_t kv_heads() const noexcept { return heads_; }          ///< kv heads per token
    std::size_t head_dim() const noexcept { return dim_; }            ///< elements per head
    /// Sequence ids handed out so far (released ones included: ids are never reused).
    std::size_t sequences() const noexcept { return tables_.size(); }

    /// Starts a new, empty sequence and returns its id.
    std::size_t add_sequence() {
        tables_.emplace_back();
        len_.push_back(0);
        return tables_.size() - 1;
    }

    /// Tokens cached for sequence `seq` (checked).
    std::size_t length(std::size_t seq) const {
        check_seq("paged_kv_cache::length", seq);
        return len_[seq];
    }

    /// The block table of `seq`: its block ids in token order.
    const std::vector<std::int32_t>& block_table(std::size_t seq) const {
        check_seq("paged_kv_cache::block_table", seq);
        return tables_[seq];
    }

    /// Appends (tokens, kv_heads, head_dim) keys and values to `seq`, taking blocks from the pool
    /// as needed. Throws llm::error, leaving the cache unchanged, when the pool has too few
    /// free blocks. k, v: dense_view<3> (float or bf16).
    template <dense_view<3> K, dense_view<3> V>
    void append(std::size_t seq, K&& k, V&& v) {
        constexpr const char* fn = "paged_kv_cache::append";
        check_seq(fn, seq);
        const auto ks = detail::as_strided<3>(k);
        const auto vs = detail::as_strided<3>(v);
        const std::size_t n = detail::check_append(fn, ks, vs, heads_, dim_);
        const std::size_t have = tables_[seq].size();
        const std::size_t need = (len_[seq] + n + bs_ - 1) / bs_;
        llm::check(need - have <= free_.size(), fn, ": sequence ", seq, " (", len_[seq], " tokens) needs ", need - have,
                   " more blocks of ", bs_, " tokens for ", n, " new tokens but only ", free_.size(), " of ", blocks_,
                   " are free");
        for (std::size_t b = have; b < need; ++b) {
            tables_[seq].push_back(free_.back());
            free_.pop_back();
        }
        for (std::size_t t = 0; t < n; ++t) {
            const std::size_t row = offset(seq, len_[seq] + t);
            detail::store_rows(ks, vs, t, k_.data() + row, v_.data() + row, heads_, dim_, bs_ * dim_);
        }
        len_[seq] += n;
    }

    /// Returns the blocks of `seq` to the pool; the sequence is then empty (and may grow again).
    void release(std::size_t seq) {
        check_seq("paged_kv_cache::release", seq);
        for (auto b = tables_[seq].rbegin(); b != tables_[seq].rend(); ++b) {
            free_.push_back(*b);
        }
        tables_[seq].clear();
        len_[seq] = 0;
    }

    /// The positions from pos to the end of pos's block (or of the sequence): one run.
    kv_run<T> run(std::size_t seq, std::size_t pos) const {
        LLM_ASSERT(seq < tables_.size() && pos < len_[seq]);
        const std::size_t row = offset(seq, pos);
        return {k_.data() + row, v_.data() + row, std::min(bs_ - pos % bs_, len_[seq] - pos), dim_, bs_ * dim_};
    }

private:
    std::size_t offset(std::size_t seq, std::size_t pos) const noexcept {
        const auto block = static_cast<std::size_t>(tables_[seq][pos / bs_]);
        return (block * heads_ * bs_ + pos % bs_) * dim_;
    }
    void check_seq(const char* fn, std::size_t seq) const {
        llm::check(seq < tables_.size(), fn, ": sequence ", seq, " out of range (", tables_.size(),
                   " sequences added)");
    }

    std::size_t blocks_, bs_, heads_, dim_;
    std::vector<std::vector<std::int32_t>> tables_;
    std::vector<std::size_t> len_;
    std::vector<std::int32_t> free_;
    std::vector<T> k_, v_;
};

static_assert(kv_cache<contiguous_kv_cache<float>> && kv_cache<paged_kv_cache<llm::bf16>>);

/// Copies positions [0, length(seq)) of a cache into k and v, each (length, kv_heads, head_dim)
/// (any strides; float or bf16): the read side of a cache, for tests and for prefill paths
/// that want plain tensors. Outputs first (docs/conventions.md). Throws llm::error on a shape
/// mismatch.
/// Example: `llm::tensor<float, llm::dims<3>> k(n, 8, 128), v(n, 8, 128); llm::attention::read_cache(k, v, cache, s);`
template <mutable_dense_view<3> K, mutable_dense_view<3> V, kv_cache C>
void read_cache(K&& k, V&& v, const C& cache, std::size_t seq) {
    const auto ks = detail::as_strided<3>(k);
    const auto vs = detail::as_strided<3>(v);
    const std::size_t n = cache.length(seq);
    llm::check(ks.n == vs.n && ks.n == std::array<std::size_t, 3>{n, cache.kv_heads(), cache.head_dim()},
               "read_cache: k is ", detail::shape_of(ks), " and v is ", detail::shape_of(vs), " but sequence ", seq, " is [",
               n, ", ", cache.kv_heads(), ", ", cache.head_dim(), "]");
    using TK = std::remove_reference_t<decltype(ks(0, 0, 0))>;
    using TV = std::remove_reference_t<decltype(vs(0, 0, 0))>;
    for (std::size_t p = 0; p < n;) {
        const auto r = cache.run(seq, p);
        for (std::size_t t = 0; t < r.count; ++t, ++p) {
            for (std::size_t h = 0; h < cache.kv_heads(); ++h) {
                for (std::size_t d = 0; d < cache.head_dim(); ++d) {
                    ks(p, h, d) = TK(static_cast<float>(r.k[t * r.stride + h * r.head_stride + d]));
                    vs(p, h, d) = TV(static_cast<float>(r.v[t * r.stride + h * r.head_stride + d]));
                }
            }
        }
    }
}

}  // namespace llm::attention
