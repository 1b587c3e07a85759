// SPDX-License-Identifier: Apache-2.0
// A bounded cache from pre-tokenized pieces to their token ids, and the per-thread encode context that owns it.
#pragma once

#include <llm/tokenizer/bpe.hpp>
#include <llm/tokenizer/detail/bytes_map.hpp>
#include <llm/tokenizer/detail/pair_map.hpp>

#include <cstddef>
#include <cstdint>
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
    explicit piece_cache(std::size_t max_pieces = 1 << 16, std::size_t max_bytes = 4 << 20)
        : max_pieces_(max_pieces), max_bytes_(max_bytes) {}

    /// The cached ids of `piece`, or an empty span when absent.
    std::span<const std::uint32_t> find(std::string_view piece) const noexcept {
        const std::uint32_t k = map_.find(piece);
        if (k == detail::bytes_map::npos) return {};
        return {ids_.data() + spans_[k].offset, spans_[k].len};
    }

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

    std::size_t size() const noexcept { return map_.size(); }

    // Pieces longer than this are not cached: one such key would crowd out thousands of words.
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

/// Reusable scratch state for encode calls: the piece cache and the merge workspace. Keep one
/// per thread and pass it to repeated encode calls; a call without one makes a fresh one.
/// Example: `llm::tokenizer::encode_context ctx; for (auto doc : docs) enc.encode(doc, ids, {}, ctx);`
struct encode_context {
    piece_cache cache;
    /// Ranks of token pairs already looked up (tiktoken ranks the concatenated bytes, which
    /// costs a hash of the whole concatenation; long repetitive pieces ask for the same pairs
    /// again and again).
    detail::pair_map pair_ranks;
    bpe_workspace workspace;
    std::vector<bpe_symbol> symbols;
};

}  // namespace llm::tokenizer
