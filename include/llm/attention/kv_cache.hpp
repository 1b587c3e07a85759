// SPDX-License-Identifier: Apache-2.0
// KV caches for incremental decoding, one object per model (a layer dimension): a contiguous cache and a paged cache (fixed-size blocks, one block table per sequence shared by all layers, as in vLLM), and per-layer views for decode_attention.
#pragma once

#include <llm/attention/detail/problem.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>
#include <llm/tensor/owning_tensor.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <variant>
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
/// Models: kv_cache_layer (cache.layer(l) of contiguous_kv_cache<T> and paged_kv_cache<T>).
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

/// Checks the (tokens, kv_heads, head_dim) shapes of one append's k and v; `cache` and `fn`
/// name the call ("contiguous_kv_cache", "append").
template <class K, class V>
std::size_t check_append(const char* cache, const char* fn, const K& k, const V& v, std::size_t kv_heads,
                         std::size_t head_dim) {
    llm::check(k.shape() == v.shape(), cache, "::", fn, ": k is ", shape_of(k), " but v is ", shape_of(v));
    llm::check(k.extent(1) == kv_heads && k.extent(2) == head_dim, cache, "::", fn, ": k is ", shape_of(k),
               " but the cache holds [tokens, ", kv_heads, ", ", head_dim, "]");
    return k.extent(0);
}

/// Elements of one of a cache's K and V stores, a * b * c * d * e, each product
/// overflow-checked, and sized (both stores together) against llm::max_allocation_bytes.
template <class T>
std::size_t cache_elements(const char* fn, std::size_t a, std::size_t b, std::size_t c, std::size_t d, std::size_t e) {
    constexpr const char* what = "the cache size";
    const std::size_t n = checked_mul(checked_mul(checked_mul(checked_mul(a, b, fn, what), c, fn, what), d, fn, what), e, fn, what);
    checked_bytes<T>(checked_mul(n, 2, fn, "the K and V elements"), fn, "the K and V stores");
    return n;
}

template <class T, class K, class V>
void store_rows(const K& k, const V& v, std::size_t t, T* kdst, T* vdst, std::size_t kv_heads, std::size_t head_dim,
                std::size_t head_stride) {
    for (std::size_t h = 0; h < kv_heads; ++h) {
        for (std::size_t d = 0; d < head_dim; ++d) {
            kdst[h * head_stride + d] = T(static_cast<float>(k(t, h, d)));
            vdst[h * head_stride + d] = T(static_cast<float>(v(t, h, d)));
        }
    }
}

}  // namespace detail

/// One layer of a multi-layer KV cache (what `cache.layer(l)` returns): a lightweight view
/// (a pointer and a layer index) that models kv_cache, so decode_attention and read_cache
/// take it, and appends to that layer. Its length(seq) is the sequence's committed length plus
/// the tokens this layer has appended since the last `cache.advance(seq, n)` (so a decode step
/// sees the new token's own key and value). Valid while the cache lives (and is not moved).
/// Cache: contiguous_kv_cache<T> or paged_kv_cache<T>, const-qualified for a read-only view.
/// Example: `cache.layer(l).append(seq, k, v); llm::attention::decode_attention(out, cache.layer(l), q);`
template <class Cache>
class kv_cache_layer {
public:
    using element_type = typename std::remove_const_t<Cache>::element_type;  ///< stored element type

    /// The view of layer `layer` of `cache` (unchecked: use cache.layer(l), which checks l).
    kv_cache_layer(Cache& cache, std::size_t layer) noexcept : c_(&cache), l_(layer) {}

    std::size_t layer() const noexcept { return l_; }                    ///< the layer index
    std::size_t kv_heads() const noexcept { return c_->kv_heads(); }     ///< kv heads per token
    std::size_t head_dim() const noexcept { return c_->head_dim(); }     ///< elements per head
    std::size_t sequences() const noexcept { return c_->sequences(); }   ///< number of sequences
    /// Tokens of `seq` this layer holds: committed plus appended since the last advance (checked).
    std::size_t length(std::size_t seq) const { return c_->length(seq) + c_->pending(l_, seq); }
    /// The run of positions starting at pos < length(seq) (see kv_cache).
    kv_run<element_type> run(std::size_t seq, std::size_t pos) const { return c_->run(l_, seq, pos); }

    /// Appends (tokens, kv_heads, head_dim) keys and values to this layer of `seq`: the same as
    /// cache.append(layer(), seq, k, v). k, v: dense_view<3> (float or bf16).
    template <dense_view<3> K, dense_view<3> V>
        requires(!std::is_const_v<Cache>)
    void append(std::size_t seq, K&& k, V&& v) const {
        c_->append(l_, seq, std::forward<K>(k), std::forward<V>(v));
    }

private:
    Cache* c_;
    std::size_t l_;
};

/// What contiguous_kv_cache and paged_kv_cache share: the sizes, the K and V stores (each an
/// llm::tensor [layers, groups, kv_heads, slots, head_dim]: a group is a sequence's whole
/// capacity, or one block), the committed length of every sequence and the tokens each layer
/// has appended since the last advance, the layer views, append, advance and run.
/// Cache (the derived class, CRTP) provides `name` (its class name, for messages),
/// `group(seq, pos)` (the group holding position pos of seq) and `make_room(layer, seq, at, n)`
/// (room for n tokens at position at, or llm::error leaving the cache unchanged).
/// Not used on its own: its members are those of both caches.
/// T: the stored element type.
/// Example: `llm::attention::paged_kv_cache<> cache(32, 1024, 16, 8, 128); auto s = cache.add_sequence(); std::size_t n = cache.length(s);`
template <class Cache, class T>
class kv_cache_base {
public:
    using element_type = T;                                       ///< stored element type
    using layer_type = kv_cache_layer<Cache>;                     ///< what layer(l) returns
    using const_layer_type = kv_cache_layer<const Cache>;         ///< layer(l) of a const cache

    std::size_t layers() const noexcept { return layers_; }       ///< number of layers
    std::size_t kv_heads() const noexcept { return heads_; }      ///< kv heads per token
    std::size_t head_dim() const noexcept { return dim_; }        ///< elements per head
    /// Sequences the cache holds (for the paged cache, those added so far: ids are never reused).
    std::size_t sequences() const noexcept { return len_.size(); }

    /// Committed tokens of sequence `seq` (checked): those of every advance(seq, n) so far.
    std::size_t length(std::size_t seq) const {
        check_seq("length", seq);
        return len_[seq];
    }
    /// Tokens layer `layer` appended to `seq` since the last advance(seq, n) (checked).
    std::size_t pending(std::size_t layer, std::size_t seq) const {
        check_seq("pending", seq);
        check_layer("pending", layer);
        return pending_[seq * layers_ + layer];
    }

    /// The view of layer `layer` (checked): a kv_cache for decode_attention, with append.
    layer_type layer(std::size_t layer) {
        check_layer("layer", layer);
        return {static_cast<Cache&>(*this), layer};
    }
    /// The read-only view of layer `layer` (checked).
    const_layer_type layer(std::size_t layer) const {
        check_layer("layer", layer);
        return {static_cast<const Cache&>(*this), layer};
    }

    /// Appends the tokens of k and v, each (tokens, kv_heads, head_dim) (any strides), to layer
    /// `layer` of sequence `seq`, after the committed and this layer's pending tokens. Throws
    /// llm::error, leaving the cache unchanged, when they do not fit.
    /// k, v: dense_view<3> (float or bf16).
    template <dense_view<3> K, dense_view<3> V>
    void append(std::size_t layer, std::size_t seq, K&& k, V&& v) {
        check_layer("append", layer);
        check_seq("append", seq);
        const auto ks = llm::to_kernel_view<3>(k);
        const auto vs = llm::to_kernel_view<3>(v);
        const std::size_t n = detail::check_append(Cache::name, "append", ks, vs, heads_, dim_);
        std::size_t& pend = pending_[seq * layers_ + layer];
        const std::size_t at = len_[seq] + pend;
        static_cast<Cache&>(*this).make_room(layer, seq, at, n);
        for (std::size_t t = 0; t < n; ++t) {
            const std::size_t row = offset(layer, seq, at + t);
            detail::store_rows(ks, vs, t, k_.data() + row, v_.data() + row, heads_, dim_, slots_ * dim_);
        }
        pend += n;
    }

    /// Commits the n tokens every layer has appended to `seq` since the last advance: length(seq)
    /// grows by n. Throws llm::error, leaving the cache unchanged, unless every layer appended
    /// exactly n tokens.
    void advance(std::size_t seq, std::size_t n) {
        check_seq("advance", seq);
        std::size_t* pend = pending_.data() + seq * layers_;
        for (std::size_t l = 0; l < layers_; ++l) {
            llm::check(pend[l] == n, Cache::name, "::advance: sequence ", seq, ", layer ", l, " of ", layers_, " holds ",
                       pend[l], " appended tokens, not ", n,
                       "; every layer appends the step's tokens before advance(seq, n)");
        }
        std::fill(pend, pend + layers_, std::size_t{0});
        len_[seq] += n;
    }

    /// Layer `layer`'s positions from pos to the end of pos's group (the sequence's capacity, or
    /// pos's block) or of the layer's tokens of `seq`: one run (see kv_cache).
    kv_run<T> run(std::size_t layer, std::size_t seq, std::size_t pos) const {
        LLM_ASSERT(layer < layers_ && seq < len_.size());
        const std::size_t end = len_[seq] + pending_[seq * layers_ + layer];
        LLM_ASSERT(pos < end);
        const std::size_t row = offset(layer, seq, pos);
        return {k_.data() + row, v_.data() + row, std::min(slots_ - pos % slots_, end - pos), dim_, slots_ * dim_};
    }

protected:
    /// The stores of layers x groups x kv_heads x slots x head_dim elements each; groups_name and
    /// slots_name name the groups and slots in the message when a size is 0 ("sequences", "capacity").
    kv_cache_base(std::size_t layers, std::size_t groups, std::size_t slots, std::size_t kv_heads, std::size_t head_dim,
                  const char* groups_name, const char* slots_name)
        : layers_(layers), groups_(groups), slots_(slots), heads_(kv_heads), dim_(head_dim) {
        llm::check(layers > 0 && groups > 0 && slots > 0 && kv_heads > 0 && head_dim > 0, Cache::name, ": layers = ", layers,
                   ", ", groups_name, " = ", groups, ", ", slots_name, " = ", slots, ", kv_heads = ", kv_heads,
                   ", head_dim = ", head_dim, " must all be > 0");
        detail::cache_elements<T>(Cache::name, layers_, groups_, slots_, heads_, dim_);
        k_ = store(llm::uninitialized, layers_, groups_, heads_, slots_, dim_);
        v_ = store(llm::uninitialized, layers_, groups_, heads_, slots_, dim_);
    }

    /// Sequence `seq` holds no token in any layer.
    void forget(std::size_t seq) noexcept {
        len_[seq] = 0;
        std::fill_n(pending_.data() + seq * layers_, layers_, std::size_t{0});
    }

    /// llm::error naming Cache::name and fn unless seq is a sequence of the cache.
    void check_seq(const char* fn, std::size_t seq) const {
        llm::check(seq < len_.size(), Cache::name, "::", fn, ": sequence ", seq, " out of range (the cache holds ",
                   len_.size(), " sequences)");
    }
    /// llm::error naming Cache::name and fn unless layer is a layer of the cache.
    void check_layer(const char* fn, std::size_t layer) const {
        llm::check(layer < layers_, Cache::name, "::", fn, ": layer ", layer, " out of range (the cache holds ", layers_,
                   " layers)");
    }

    std::size_t layers_;                ///< layers
    std::size_t groups_;                ///< groups per layer (sequences, or blocks)
    std::size_t slots_;                 ///< positions per group (capacity, or block_size)
    std::size_t heads_;                 ///< kv heads per token
    std::size_t dim_;                   ///< elements per head
    std::vector<std::size_t> len_;      ///< committed tokens per sequence
    std::vector<std::size_t> pending_;  ///< [sequence][layer]: appended since the last advance

private:
    using store = llm::tensor<T, llm::dims<5>>;
    std::size_t offset(std::size_t layer, std::size_t seq, std::size_t pos) const noexcept {
        const std::size_t g = static_cast<const Cache&>(*this).group(seq, pos);
        return ((layer * groups_ + g) * heads_ * slots_ + pos % slots_) * dim_;
    }

    store k_, v_;
};

/// A KV cache for all layers of a model with a fixed capacity per sequence, stored
/// contiguously in two llm::tensor (K and V) of shape [layers, sequences, kv_heads, capacity,
/// head_dim]: the key row of layer l, sequence s, kv head h, position p starts at
/// (((l * sequences + s) * kv_heads + h) * capacity + p) * head_dim. Head-major, so decode
/// streams each head's keys from consecutive memory (with position-major rows, one head's rows
/// sit kv_heads * head_dim apart: a page per row at 8 x 128 fp32, and TLB misses instead of
/// streaming). Simple and fastest to read; memory is reserved for every sequence's full
/// capacity up front.
///
/// Lengths: one committed length per sequence for the whole model. A decode step appends the
/// new tokens layer by layer (`cache.layer(l).append(seq, k, v)` or `cache.append(l, seq, k, v)`
/// writes at positions [length(seq) + pending, ...) of layer l), attends through
/// `cache.layer(l)` (which already sees the layer's new rows), and when every layer has appended
/// the same n tokens `cache.advance(seq, n)` commits them; advance throws llm::error otherwise.
/// T: element type stored (float or llm::bf16; bf16 halves memory and the bytes decode reads).
/// Example: `llm::attention::contiguous_kv_cache<llm::bf16> cache(32, 4, 8192, 8, 128); cache.layer(0).append(0, k, v);`
template <class T = float>
    requires float_or_bf16<T> && (!std::is_const_v<T>)
class contiguous_kv_cache : public kv_cache_base<contiguous_kv_cache<T>, T> {
public:
    /// The class name, for messages.
    static constexpr const char* name = "contiguous_kv_cache";
    std::size_t capacity() const noexcept { return this->slots_; }  ///< tokens each sequence can hold

    /// Room for `capacity` tokens in each of `sequences` sequences in each of `layers` layers,
    /// kv_heads x head_dim per token. Throws llm::error when a size is 0, the total overflows,
    /// exceeds llm::max_allocation_bytes or cannot be allocated.
    contiguous_kv_cache(std::size_t layers, std::size_t sequences, std::size_t capacity, std::size_t kv_heads,
                        std::size_t head_dim)
        : kv_cache_base<contiguous_kv_cache, T>(layers, sequences, capacity, kv_heads, head_dim, "sequences",
                                                        "capacity") {
        allocating(sequences * (layers + 1) * sizeof(std::size_t), name, "the lengths", [&] {
            this->len_.assign(sequences, 0);
            this->pending_.assign(sequences * layers, 0);
        });
    }

    /// Forgets sequence `seq` in every layer (length 0, nothing pending); its memory is reused by
    /// later appends.
    void reset(std::size_t seq) {
        this->check_seq("reset", seq);
        this->forget(seq);
    }

    /// Keeps the first n committed tokens of `seq` (n <= length(seq), nothing pending): a
    /// speculative decoder's rollback of rejected tokens. Throws llm::error, changing nothing,
    /// otherwise.
    /// Example: `cache.truncate(0, cache.length(0) - 2);`
    void truncate(std::size_t seq, std::size_t n) {
        this->check_seq("truncate", seq);
        llm::check(n <= this->len_[seq], name, "::truncate: sequence ", seq, " holds ", this->len_[seq], " tokens, cannot keep ", n);
        for (std::size_t l = 0; l < this->layers_; ++l) {
            llm::check(this->pending_[seq * this->layers_ + l] == 0, name, "::truncate: sequence ", seq, " has pending tokens in layer ", l);
        }
        this->len_[seq] = n;
    }

private:
    friend kv_cache_base<contiguous_kv_cache, T>;
    std::size_t group(std::size_t seq, std::size_t) const noexcept { return seq; }
    void make_room(std::size_t layer, std::size_t seq, std::size_t have, std::size_t n) const {
        llm::check(n <= capacity() - have, name, "::append: layer ", layer, " of sequence ", seq, " holds ", have, " of ",
                   capacity(), " tokens; appending ", n, " would overflow the cache");
    }
};

/// A paged KV cache for all layers of a model, in vLLM's PagedAttention layout: `blocks`
/// block ids of `block_size` tokens; every sequence owns one block table (its block ids in
/// order), shared by all layers as in vLLM, growing one block at a time as tokens are appended,
/// so memory follows the actual lengths and finished sequences give their blocks back. Each
/// layer has its own K and V block pool (an llm::tensor [layers, blocks, kv_heads, block_size,
/// head_dim] each): token p of a sequence lives, in every layer, in block table[p / block_size]
/// at slot p % block_size, head-major inside a block (as vLLM's value cache).
///
/// Lengths follow the same rule as contiguous_kv_cache: per-layer appends (writing after the
/// committed and that layer's pending tokens, taking blocks for the shared table when the first
/// layer needs them) and `advance(seq, n)` once every layer has appended the same n tokens.
/// T: element type stored (float or llm::bf16).
/// Example: `llm::attention::paged_kv_cache<> cache(32, 1024, 16, 8, 128); auto s = cache.add_sequence(); cache.layer(0).append(s, k, v);`
template <class T = float>
    requires float_or_bf16<T> && (!std::is_const_v<T>)
class paged_kv_cache : public kv_cache_base<paged_kv_cache<T>, T> {
public:
    /// The class name, for messages.
    static constexpr const char* name = "paged_kv_cache";
    std::size_t blocks() const noexcept { return this->groups_; }     ///< blocks in each layer's pool
    std::size_t block_size() const noexcept { return this->slots_; }  ///< tokens per block
    std::size_t free_blocks() const noexcept { return free_.size(); } ///< block ids not owned by any sequence

    /// `layers` pools of `blocks` blocks of `block_size` tokens, kv_heads x head_dim per token.
    /// Throws llm::error when a size is 0, the total overflows, exceeds llm::max_allocation_bytes
    /// or cannot be allocated.
    paged_kv_cache(std::size_t layers, std::size_t blocks, std::size_t block_size, std::size_t kv_heads,
                   std::size_t head_dim)
        : kv_cache_base<paged_kv_cache, T>(layers, checked_blocks(blocks), block_size, kv_heads, head_dim, "blocks",
                                                   "block_size") {
        allocating(blocks * (sizeof(std::int32_t) + sizeof(std::uint32_t)), name, "the free list", [&] {
            free_.reserve(blocks);
            refs_.assign(blocks, 0);
        });
        for (std::size_t b = blocks; b-- > 0;) {
            free_.push_back(static_cast<std::int32_t>(b));  // hand out block 0 first
        }
    }

    /// Starts a new, empty sequence and returns its id. `reserve_tokens`: the tokens it may
    /// come to hold, so its block table is sized once and later appends allocate nothing (0:
    /// the table grows as needed).
    std::size_t add_sequence(std::size_t reserve_tokens = 0) {
        tables_.emplace_back();
        tables_.back().reserve(std::min(blocks(), reserve_tokens / block_size() + (reserve_tokens % block_size() != 0)));
        this->len_.push_back(0);
        this->pending_.resize(this->pending_.size() + this->layers_, 0);
        return tables_.size() - 1;
    }

    /// Sequences whose block tables hold block `block` (0: a free block; 2 or more: a shared
    /// prefix block). Checked.
    std::size_t references(std::size_t block) const {
        llm::check(block < blocks(), name, "::references: block ", block, " out of range (", blocks(), " blocks)");
        return refs_[block];
    }

    /// vLLM's prefix caching: the first `count` blocks of `src`'s table become the first blocks
    /// of `dst`'s (each block then referenced once more), so dst holds src's first
    /// count * block_size tokens, in every layer, without a copy. dst must be empty (nothing
    /// committed or pending) and src must hold at least count full blocks. A shared block is
    /// full and never written again (appends go after a sequence's length), so no copy on write
    /// is needed; release() returns a block to the pool when its last sequence lets it go.
    /// Throws llm::error, changing nothing, otherwise.
    /// Example: `cache.share_prefix(b, a, cache.length(a) / cache.block_size());`
    void share_prefix(std::size_t dst, std::size_t src, std::size_t count) {
        this->check_seq("share_prefix", dst);
        this->check_seq("share_prefix", src);
        llm::check(dst != src, name, "::share_prefix: sequence ", dst, " cannot share with itself");
        bool empty = this->len_[dst] == 0 && tables_[dst].empty();
        for (std::size_t l = 0; l < this->layers_; ++l) {
            empty = empty && this->pending_[dst * this->layers_ + l] == 0;
        }
        llm::check(empty, name, "::share_prefix: sequence ", dst, " is not empty (", this->len_[dst], " tokens)");
        llm::check(count <= this->len_[src] / block_size(), name, "::share_prefix: sequence ", src, " holds ", this->len_[src],
                   " tokens, ", this->len_[src] / block_size(), " full blocks of ", block_size(), ", not ", count);
        for (std::size_t b = 0; b < count; ++b) {
            const std::int32_t id = tables_[src][b];
            tables_[dst].push_back(id);
            ++refs_[static_cast<std::size_t>(id)];
        }
        this->len_[dst] = count * block_size();
    }

    /// The block table of `seq` (shared by all layers): its block ids in token order.
    const std::vector<std::int32_t>& block_table(std::size_t seq) const {
        this->check_seq("block_table", seq);
        return tables_[seq];
    }

    /// Returns the blocks of `seq` to the pool; the sequence is then empty in every layer (and
    /// may grow again).
    void release(std::size_t seq) {
        this->check_seq("release", seq);
        for (auto b = tables_[seq].rbegin(); b != tables_[seq].rend(); ++b) {
            if (--refs_[static_cast<std::size_t>(*b)] == 0) {
                free_.push_back(*b);
            }
        }
        tables_[seq].clear();
        this->forget(seq);
    }

private:
    friend kv_cache_base<paged_kv_cache, T>;
    static std::size_t checked_blocks(std::size_t blocks) {
        llm::check(blocks <= static_cast<std::size_t>(INT32_MAX), name, ": blocks = ", blocks,
                   " exceeds the int32 block ids of the block tables");
        return blocks;
    }
    std::size_t group(std::size_t seq, std::size_t pos) const noexcept {
        return static_cast<std::size_t>(tables_[seq][pos / block_size()]);
    }
    // Takes the blocks positions [at, at + n) of seq need for the table shared by all layers.
    void make_room(std::size_t layer, std::size_t seq, std::size_t at, std::size_t n) {
        const std::size_t bs = block_size();
        const std::size_t have = tables_[seq].size();
        const std::size_t need = std::max(have, (at + n + bs - 1) / bs);
        llm::check(need - have <= free_.size(), name, "::append: layer ", layer, " of sequence ", seq, " (", at,
                   " tokens) needs ", need - have, " more blocks of ", bs, " tokens for ", n, " new tokens but only ",
                   free_.size(), " of ", blocks(), " are free");
        for (std::size_t b = have; b < need; ++b) {
            tables_[seq].push_back(free_.back());
            refs_[static_cast<std::size_t>(free_.back())] = 1;
            free_.pop_back();
        }
    }

    std::vector<std::vector<std::int32_t>> tables_;  // per sequence, shared by all layers
    std::vector<std::int32_t> free_;
    std::vector<std::uint32_t> refs_;                // per block: the tables holding it
};

/// A KV cache whose kind is chosen at run time: it holds a contiguous_kv_cache or a
/// paged_kv_cache (a std::variant) and forwards the members both have (sizes, lengths, layer
/// views, append, advance, run) to it, one branch per call (decode_attention calls run once
/// per run of positions: a block of a paged cache), so a model's decode state serves both
/// without a template parameter. reset(seq) empties a sequence (the paged cache's release:
/// its blocks go back to the pool); contiguous() and paged() give the cache itself (nullptr
/// when it holds the other kind) for what only one kind has (truncate, block counts,
/// share_prefix).
/// T: element type stored (float or llm::bf16).
/// Example: `llm::attention::any_kv_cache<> c(llm::attention::paged_kv_cache<>(2, 64, 16, 2, 32)); c.paged()->add_sequence(); c.layer(0).append(0, k, v);`
template <class T = float>
    requires float_or_bf16<T> && (!std::is_const_v<T>)
class any_kv_cache {
public:
    using element_type = T;                                       ///< stored element type
    using layer_type = kv_cache_layer<any_kv_cache>;              ///< what layer(l) returns
    using const_layer_type = kv_cache_layer<const any_kv_cache>;  ///< layer(l) of a const cache

    /// Holds a contiguous cache.
    any_kv_cache(contiguous_kv_cache<T>&& c) : c_(std::move(c)) {}
    /// Holds a paged cache.
    any_kv_cache(paged_kv_cache<T>&& c) : c_(std::move(c)) {}

    /// True when the cache is paged.
    [[nodiscard]] bool is_paged() const noexcept { return c_.index() == 1; }
    /// The contiguous cache, or nullptr when the cache is paged.
    contiguous_kv_cache<T>* contiguous() noexcept { return std::get_if<0>(&c_); }
    /// The contiguous cache (read-only), or nullptr when the cache is paged.
    const contiguous_kv_cache<T>* contiguous() const noexcept { return std::get_if<0>(&c_); }
    /// The paged cache, or nullptr when the cache is contiguous.
    paged_kv_cache<T>* paged() noexcept { return std::get_if<1>(&c_); }
    /// The paged cache (read-only), or nullptr when the cache is contiguous.
    const paged_kv_cache<T>* paged() const noexcept { return std::get_if<1>(&c_); }

    std::size_t layers() const noexcept { return visit([](const auto& c) { return c.layers(); }); }      ///< number of layers
    std::size_t kv_heads() const noexcept { return visit([](const auto& c) { return c.kv_heads(); }); }  ///< kv heads per token
    std::size_t head_dim() const noexcept { return visit([](const auto& c) { return c.head_dim(); }); }  ///< elements per head
    std::size_t sequences() const noexcept { return visit([](const auto& c) { return c.sequences(); }); }  ///< sequences held
    /// Committed tokens of sequence `seq` (checked).
    std::size_t length(std::size_t seq) const { return visit([&](const auto& c) { return c.length(seq); }); }
    /// Tokens layer `layer` appended to `seq` since the last advance(seq, n) (checked).
    std::size_t pending(std::size_t layer, std::size_t seq) const {
        return visit([&](const auto& c) { return c.pending(layer, seq); });
    }

    /// The view of layer `layer` (checked): a kv_cache for decode_attention, with append.
    layer_type layer(std::size_t layer) {
        check_layer(layer);
        return {*this, layer};
    }
    /// The read-only view of layer `layer` (checked).
    const_layer_type layer(std::size_t layer) const {
        check_layer(layer);
        return {*this, layer};
    }

    /// The cache's append (see contiguous_kv_cache and paged_kv_cache). k, v: dense_view<3>.
    template <dense_view<3> K, dense_view<3> V>
    void append(std::size_t layer, std::size_t seq, K&& k, V&& v) {
        visit([&](auto& c) { c.append(layer, seq, k, v); });
    }
    /// The cache's advance: commits n tokens every layer appended to `seq`.
    void advance(std::size_t seq, std::size_t n) {
        visit([&](auto& c) { c.advance(seq, n); });
    }
    /// The run of layer `layer`'s positions of `seq` from pos (see kv_cache).
    kv_run<T> run(std::size_t layer, std::size_t seq, std::size_t pos) const {
        return visit([&](const auto& c) { return c.run(layer, seq, pos); });
    }
    /// Empties sequence `seq` (contiguous: reset; paged: release, its blocks back to the pool).
    void reset(std::size_t seq) {
        if (auto* p = paged()) {
            p->release(seq);
        } else {
            contiguous()->reset(seq);
        }
    }
    /// Keeps the first n committed tokens of `seq` (contiguous_kv_cache::truncate). A paged
    /// cache may share the block holding token n with other sequences, so it refuses with
    /// llm::error.
    void truncate(std::size_t seq, std::size_t n) {
        auto* c = contiguous();
        llm::check(c != nullptr, "any_kv_cache::truncate: the cache is paged (its blocks may be shared); truncate needs the "
                                 "contiguous cache");
        c->truncate(seq, n);
    }

private:
    void check_layer(std::size_t layer) const {
        llm::check(layer < layers(), "any_kv_cache::layer: layer ", layer, " out of range (the cache holds ", layers(), " layers)");
    }
    template <class F>
    decltype(auto) visit(F&& f) const {
        if (const auto* p = std::get_if<1>(&c_)) {
            return f(*p);
        }
        return f(*std::get_if<0>(&c_));
    }
    template <class F>
    decltype(auto) visit(F&& f) {
        if (auto* p = std::get_if<1>(&c_)) {
            return f(*p);
        }
        return f(*std::get_if<0>(&c_));
    }

    std::variant<contiguous_kv_cache<T>, paged_kv_cache<T>> c_;
};

static_assert(kv_cache<contiguous_kv_cache<float>::layer_type> && kv_cache<contiguous_kv_cache<float>::const_layer_type> &&
              kv_cache<paged_kv_cache<llm::bf16>::layer_type> && kv_cache<paged_kv_cache<llm::bf16>::const_layer_type> &&
              kv_cache<any_kv_cache<float>::layer_type> && kv_cache<any_kv_cache<float>::const_layer_type>);

/// Copies positions [0, length(seq)) of a kv_cache (one layer: `cache.layer(l)`) into k and
/// v, each (length, kv_heads, head_dim) (any strides; float or bf16): the read side of a cache,
/// for tests and for prefill paths that want plain tensors. Outputs first (docs/conventions.md). Throws llm::error on a shape
/// mismatch.
/// Example: `llm::tensor<float, llm::dims<3>> k(n, 8, 128), v(n, 8, 128); llm::attention::read_cache(k, v, cache.layer(l), s);`
template <mutable_dense_view<3> K, mutable_dense_view<3> V, kv_cache C>
void read_cache(K&& k, V&& v, const C& cache, std::size_t seq) {
    const auto ks = llm::to_kernel_view<3>(k);
    const auto vs = llm::to_kernel_view<3>(v);
    const std::size_t n = cache.length(seq);
    llm::check(ks.shape() == vs.shape() && detail::has_extents(ks, std::array<std::size_t, 3>{n, cache.kv_heads(), cache.head_dim()}),
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
