// SPDX-License-Identifier: Apache-2.0
// A bounded cache from pre-tokenized pieces to their token ids, and the per-thread encode context that owns it.
#pragma once

#include <llm/tokenizer/bpe.hpp>
#include <llm/tokenizer/detail/bytes_map.hpp>
#include <llm/tokenizer/detail/pair_map.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace llm::tokenizer {

/// Remembers the ids of pieces that needed BPE merging. Frequent words that are not single
/// tokens (" Tokenization", "ENTITY") and repeated runs (indentation, "-----" rules) recur
/// through a corpus; looking them up costs one hash instead of a merge loop. Bounded: when
/// `max_pieces` pieces or `max_bytes` bytes of keys are reached the cache starts over, which
/// keeps memory flat on adversarial input. Not thread-safe: use one per thread
/// (encode_context holds one).
class piece_cache {
public:
    /// A cache of at most `max_pieces` pieces and `max_bytes` bytes of piece text.
    explicit piece_cache(std::size_t max_pieces = 1 << 16, std::size_t max_bytes = 4 << 20)
        : max_pieces_(max_pieces), max_bytes_(max_bytes) {}

    /// The cached ids of `piece`, or an empty span when absent.
    std::span<const std::uint32_t> find(std::string_view piece) const noexcept {
        const std::uint32_t k = map_.find(piece);
        if (k == detail::bytes_map::npos) return {};
        return {ids_.data() + spans_[k].offset, spans_[k].len};
    }

    /// Remembers the ids of `piece` (pieces longer than max_piece_bytes are ignored).
    void insert(std::string_view piece, std::span<const std::uint32_t> ids) {
        if (piece.size() > max_piece_bytes) return;
        bytes_ += piece.size();
        if (map_.size() >= max_pieces_ || bytes_ > max_bytes_) {
            bytes_ = piece.size();
            map_.clear();
            spans_.clear();
            ids_.clear();
        }
        if (!map_.insert(piece, static_cast<std::uint32_t>(spans_.size()))) return;
        spans_.push_back({static_cast<std::uint32_t>(ids_.size()), static_cast<std::uint32_t>(ids.size())});
        ids_.insert(ids_.end(), ids.begin(), ids.end());
    }

    /// Number of cached pieces.
    std::size_t size() const noexcept { return map_.size(); }

    /// Pieces longer than this are not cached: one such key would crowd out thousands of words.
    static constexpr std::size_t max_piece_bytes = 4096;

private:
    struct span_ref {
        std::uint32_t offset, len;
    };
    std::size_t max_pieces_, max_bytes_, bytes_ = 0;
    detail::bytes_map map_;
    std::vector<span_ref> spans_;
    std::vector<std::uint32_t> ids_;
};

/// A direct-mapped cache in front of the vocabulary for short pieces (up to 16 bytes,
/// up to 3 ids): text is Zipfian, so a few thousand pieces cover most of it, and their slots
/// stay in L2 while the vocabulary table (megabytes) would miss to L3 or DRAM on every
/// lookup. A collision simply replaces the slot. Allocated on first use.
class hot_piece_cache {
public:
    static constexpr std::size_t max_bytes = 16;  ///< longest piece cached
    static constexpr std::size_t max_ids = 3;     ///< most ids per cached piece

    /// Ids of `piece` if cached, else an empty span. Requires piece.size() <= max_bytes.
    LLM_FORCE_INLINE std::span<const std::uint32_t> find(std::string_view piece) const noexcept {
        if (slots_.empty()) return {};
        std::uint64_t w0, w1;
        key(piece, w0, w1);
        const slot& s = slots_[index(w0, w1, piece.size())];
        if (s.w0 != w0 || s.w1 != w1 || (s.meta & 0xff) != piece.size()) return {};
        return {s.ids, s.meta >> 8};
    }

    /// Remembers the ids of `piece` when it fits (max_bytes, max_ids); replaces what was in its slot.
    void insert(std::string_view piece, std::span<const std::uint32_t> ids) {
        if (piece.size() > max_bytes || ids.empty() || ids.size() > max_ids) return;
        if (slots_.empty()) slots_.resize(n_slots);
        std::uint64_t w0, w1;
        key(piece, w0, w1);
        slot& s = slots_[index(w0, w1, piece.size())];
        s.w0 = w0;
        s.w1 = w1;
        s.meta = static_cast<std::uint32_t>(piece.size() | (ids.size() << 8));
        for (std::size_t k = 0; k < ids.size(); ++k) s.ids[k] = ids[k];
    }

private:
    // 16384 slots of 32 bytes: 512 KiB, half a Zen 4 L2. With 4096 slots, collisions on the
    // mixed corpus still left a third of cl100k's encode time in vocabulary lookups.
    static constexpr std::size_t n_slots = 16384;
    struct slot {
        std::uint64_t w0 = 0, w1 = 0;
        std::uint32_t meta = 0;  // length | (id count << 8); 0: empty (pieces are never empty)
        std::uint32_t ids[max_ids] = {};
    };
    static LLM_FORCE_INLINE void key(std::string_view p, std::uint64_t& w0, std::uint64_t& w1) noexcept {
        if (p.size() <= 8) {
            w0 = detail::head_word(p.data(), p.size());
            w1 = 0;
        } else {
            std::memcpy(&w0, p.data(), 8);
            w1 = detail::head_word(p.data() + 8, p.size() - 8);
        }
    }
    static LLM_FORCE_INLINE std::size_t index(std::uint64_t w0, std::uint64_t w1, std::size_t n) noexcept {
        const std::uint64_t h = (w0 * 0x9e3779b97f4a7c15ull) ^ ((w1 + n) * 0xbf58476d1ce4e5b9ull);
        return static_cast<std::size_t>((h ^ (h >> 29)) >> 50);  // top 14 bits: 16384 slots
    }
    std::vector<slot> slots_;
};

/// Reusable scratch state for encode calls: the piece caches and the merge workspace. Keep one
/// per thread and pass it to repeated encode calls; a call without one makes a fresh one. The
/// caches hold one tokenizer's ids: a context passed to another tokenizer starts over (it
/// remembers its tokenizer by address, so do not keep using it after that tokenizer is gone).
/// Example: `llm::tokenizer::encode_context ctx; for (auto doc : docs) enc.encode(doc, ids, {}, ctx);`
struct encode_context {
    /// The tokenizer whose ids the caches hold (nullptr: none yet).
    const void* owner = nullptr;
    hot_piece_cache hot;  ///< short pieces of any kind
    /// Bytes encoded with this context; the hot cache starts after the first few kilobytes,
    /// so one-off encode(text) calls on short strings do not pay for its 512 KiB.
    std::size_t bytes_seen = 0;
    piece_cache cache;  ///< pieces that needed merging
    /// Ranks of token pairs already looked up (tiktoken ranks the concatenated bytes, which
    /// costs a hash of the whole concatenation; long repetitive pieces ask for the same pairs
    /// again and again).
    detail::pair_map pair_ranks;
    bpe_workspace workspace;          ///< merge-loop scratch
    std::vector<bpe_symbol> symbols;  ///< the symbols of the piece being merged

    /// Makes the caches belong to `tokenizer`, emptying them if they held another one's ids.
    void bind(const void* tokenizer) {
        if (owner == tokenizer) return;
        owner = tokenizer;
        hot = hot_piece_cache{};
        bytes_seen = 0;
        cache = piece_cache{};
        pair_ranks = detail::pair_map{};
    }
};

}  // namespace llm::tokenizer
