// SPDX-License-Identifier: Apache-2.0
// SentencePiece-style BPE (Llama 2, Mistral): ▁ for spaces, dummy prefix, merges or piece scores, <0xNN> byte fallback.
#pragma once

#include <llm/core/error.hpp>
#include <llm/tokenizer/bpe.hpp>
#include <llm/tokenizer/decode.hpp>
#include <llm/tokenizer/detail/bytes_map.hpp>
#include <llm/tokenizer/detail/pair_map.hpp>
#include <llm/tokenizer/limits.hpp>
#include <llm/tokenizer/piece_cache.hpp>
#include <llm/tokenizer/special_tokens.hpp>
#include <llm/tokenizer/unicode.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::tokenizer {

/// Everything an sp_bpe is built from.
struct sp_bpe_spec {
    std::string name;  ///< shown in error messages
    /// Pieces (UTF-8, U+2581 for a space; "<0x0A>" style for byte pieces) and their ids.
    std::vector<std::pair<std::string, std::uint32_t>> pieces;
    /// Merge order, one of the two: `merges` (id pairs, earliest first: Hugging Face
    /// tokenizer.json) or `scores` (per id; two symbols merge when their concatenation is a
    /// piece, highest score first: SentencePiece .model and GGUF `tokenizer.ggml.scores`).
    std::vector<std::pair<std::uint32_t, std::uint32_t>> merges;
    std::vector<float> scores;  ///< per id, when there are no merges
    bool byte_fallback = true;         ///< characters without a piece become <0xNN> pieces
    std::optional<std::uint32_t> unk;  ///< otherwise they become this id (consecutive ones fused)
    bool add_dummy_prefix = true;      ///< prepend ▁ to non-empty input
    bool split_words = false;          ///< Metaspace split: each ▁ starts a new word
    std::vector<special_token> specials;  ///< added / control tokens matched under special_policy
};

/// SentencePiece-style BPE, identical to Hugging Face `tokenizers` on Llama 2 / Mistral
/// tokenizer.json files and to SentencePiece / llama.cpp on score-ordered vocabularies.
/// Example: `auto tok = llm::tokenizer::load_hf_tokenizer("llama2.tokenizer.json"); auto ids = std::get<llm::tokenizer::sp_bpe>(tok).encode("Hello");`
class sp_bpe {
public:
    /// Builds the tokenizer; bad specs (ids above max_vocab - 1 or outside max_id_space, repeated
    /// ids or pieces, unknown merges) raise llm::error naming spec.name.
    explicit sp_bpe(sp_bpe_spec spec)
        : name_(std::move(spec.name)), byte_fallback_(spec.byte_fallback), unk_(spec.unk),
          dummy_prefix_(spec.add_dummy_prefix), split_words_(spec.split_words) {
        check(!spec.pieces.empty(), name_, ": the vocabulary is empty");
        check(spec.merges.empty() || spec.scores.empty(), name_, ": give merges or scores, not both");
        std::uint32_t max_id = 0;
        for (const auto& [piece, id] : spec.pieces) {
            check(!piece.empty(), name_, ": piece id ", id, " is empty");
            check(id <= max_token_id, name_, ": piece id ", id, " is above the supported maximum ", max_token_id);
            max_id = std::max(max_id, id);
        }
        for (const special_token& s : spec.specials) {
            check(s.id <= max_token_id, name_, ": special id ", s.id, " is above the supported maximum ", max_token_id);
            max_id = std::max(max_id, s.id);
        }
        check_id_space(name_, max_id, spec.pieces.size() + spec.specials.size());
        n_vocab_ = std::size_t{max_id} + 1;
        text_.assign(n_vocab_, {});
        present_.assign(n_vocab_, 0);
        is_byte_.assign(n_vocab_, 0);
        vocab_.reserve(spec.pieces.size());
        for (const auto& [piece, id] : spec.pieces) {
            check(!present_[id], name_, ": piece id ", id, " is given twice");
            if (!vocab_.insert(piece, id)) fail(name_, ": piece '", piece, "' (id ", id, ") repeats id ", vocab_.find(piece));
            present_[id] = 1;
            // Decoded text: ▁ is a space; "<0xNN>" is the byte NN.
            if (const int b = byte_piece(piece); b >= 0) {
                text_[id] = std::string(1, static_cast<char>(b));
                byte_ids_[b] = id;
                is_byte_[id] = 1;
            } else {
                std::string& t = text_[id];
                for (std::size_t k = 0; k < piece.size();) {
                    if (piece.compare(k, 3, "\xe2\x96\x81") == 0) {
                        t += ' ';
                        k += 3;
                    } else {
                        t += piece[k++];
                    }
                }
            }
        }
        for (const special_token& s : spec.specials) {
            if (!present_[s.id]) {
                present_[s.id] = 1;
                text_[s.id] = s.text;
            }
        }
        if (unk_) check(*unk_ < n_vocab_ && present_[*unk_], name_, ": unk id ", *unk_, " is not in the vocabulary");
        if (byte_fallback_) {
            for (int b = 0; b < 256; ++b) {
                check(byte_ids_[b] != npos, name_, ": byte_fallback is on but piece <0x", std::hex, std::uppercase, b,
                      "> is missing");
            }
        }
        specials_ = special_matcher(std::move(spec.specials), name_);
        if (!spec.merges.empty()) {
            std::vector<std::string_view> by_id(n_vocab_);
            for (const auto& [piece, id] : spec.pieces) by_id[id] = piece;
            std::string joined;
            for (std::size_t r = 0; r < spec.merges.size(); ++r) {
                const auto [a, b] = spec.merges[r];
                check(a < n_vocab_ && present_[a] && b < n_vocab_ && present_[b], name_, ": merge ", r,
                      " joins unknown ids ", a, " and ", b);
                joined.assign(by_id[a]).append(by_id[b]);
                const std::uint32_t id = vocab_.find(joined);
                check(id != npos, name_, ": merge ", r, " (ids ", a, ", ", b, ") makes a string that is not a piece");
                merges_.insert(a, b, {static_cast<std::uint32_t>(r), id});  // a repeated pair keeps its first rank
            }
        } else {
            check(spec.scores.size() == n_vocab_ || spec.scores.size() == spec.pieces.size(), name_, ": ",
                  spec.scores.size(), " scores for ", n_vocab_, " ids (give merges or one score per id)");
            // Priority = position in descending score order (ties: lower id first, as
            // SentencePiece's vocabulary order), so the merge loop's "lowest first" applies.
            std::vector<std::uint32_t> order(spec.scores.size());
            std::iota(order.begin(), order.end(), 0u);
            std::stable_sort(order.begin(), order.end(),
                             [&](std::uint32_t a, std::uint32_t b) { return spec.scores[a] > spec.scores[b]; });
            priority_.assign(n_vocab_, npos);
            for (std::size_t r = 0; r < order.size(); ++r) priority_[order[r]] = static_cast<std::uint32_t>(r);
        }
    }

    /// The name given in the spec.
    const std::string& name() const noexcept { return name_; }
    /// One more than the largest id.
    std::size_t n_vocab() const noexcept { return n_vocab_; }
    /// The special tokens.
    const std::vector<special_token>& specials() const noexcept { return specials_.tokens(); }

    /// Id of a piece (UTF-8 with ▁), or nullopt.
    std::optional<std::uint32_t> piece_id(std::string_view piece) const noexcept {
        const std::uint32_t id = vocab_.find(piece);
        if (id == npos) return std::nullopt;
        return id;
    }
    /// Id of a special token by its text.
    std::optional<std::uint32_t> special_id(std::string_view text) const noexcept {
        const std::uint32_t k = specials_.find(text);
        if (k == npos) return std::nullopt;
        return specials_.tokens()[k].id;
    }
    /// True when `id` is a piece or a special.
    bool contains(std::uint32_t id) const noexcept { return id < n_vocab_ && present_[id]; }

    /// Decoded bytes of one id: ▁ becomes a space, <0xNN> the byte NN, a special its text.
    std::string_view token_bytes(std::uint32_t id) const {
        check(contains(id), name_, ": token_bytes: id ", id, " is not in the vocabulary (n_vocab ", n_vocab_, ")");
        return text_[id];
    }

    /// Appends the ids of `text` to `out`. Specials are handled by `policy`; the dummy prefix
    /// goes before the first ordinary segment only.
    void encode(std::string_view text, std::vector<std::uint32_t>& out, const special_policy& policy,
                encode_context& ctx) const {
        bool first = true;
        detail::split_specials(
            "sp_bpe::encode", specials_, text, policy,
            [&](std::string_view segment) {
                encode_segment(segment, out, ctx, first && dummy_prefix_);
                first = false;
            },
            [&](std::uint32_t id) {
                out.push_back(id);
                first = false;
            });
    }

    /// The ids of `text` under `policy` (default: specials are plain text).
    std::vector<std::uint32_t> encode(std::string_view text, const special_policy& policy = {}) const {
        encode_context ctx;
        std::vector<std::uint32_t> out;
        encode(text, out, policy, ctx);
        return out;
    }

    /// Concatenated decoded bytes of `ids`; with the dummy prefix on, one leading space of the
    /// result is removed (Hugging Face's Strip decoder), so decode(encode(s)) == s.
    std::string decode_bytes(std::span<const std::uint32_t> ids) const {
        std::string out;
        for (const std::uint32_t id : ids) out += token_bytes(id);
        if (dummy_prefix_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
        return out;
    }

    /// Decoded text, with ill-formed UTF-8 (from byte pieces) handled by `policy`.
    std::string decode(std::span<const std::uint32_t> ids, utf8_policy policy = utf8_policy::replace) const {
        return to_utf8(decode_bytes(ids), policy);
    }

    /// True when decode_bytes drops one leading space (streaming decoders need to know).
    bool strips_leading_space() const noexcept { return dummy_prefix_; }

    /// Encodes one segment without specials, with the reference merge loop when `reference`. For tests.
    void encode_segment(std::string_view text, std::vector<std::uint32_t>& out, encode_context& ctx, bool prefix,
                        bool reference = false) const {
        if (text.empty()) return;
        // Normalise: dummy prefix, spaces to ▁.
        std::string norm;
        norm.reserve(text.size() + text.size() / 4 + 3);
        if (prefix) norm += "\xe2\x96\x81";
        for (const char c : text) {
            if (c == ' ') norm += "\xe2\x96\x81";
            else norm += c;
        }
        if (!split_words_) {
            encode_word(norm, out, ctx, reference);
            return;
        }
        std::size_t start = 0;
        for (std::size_t k = 3; k + 3 <= norm.size(); ++k) {
            if (norm.compare(k, 3, "\xe2\x96\x81") == 0) {
                encode_word(std::string_view(norm).substr(start, k - start), out, ctx, reference);
                start = k;
                k += 2;
            }
        }
        encode_word(std::string_view(norm).substr(start), out, ctx, reference);
    }

private:
    static constexpr std::uint32_t npos = detail::bytes_map::npos;
    static constexpr std::uint32_t max_token_id = static_cast<std::uint32_t>(max_vocab - 1);

    static int byte_piece(std::string_view p) noexcept {
        if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
        auto hex = [](char c) {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        const int h = hex(p[3]), l = hex(p[4]);
        return h < 0 || l < 0 ? -1 : h * 16 + l;
    }

    // Hugging Face: the id pair must be in the merges list.
    struct merges_ranker {
        const detail::pair_map* merges;
        bpe_merge rank(std::string_view, bpe_symbol a, bpe_symbol b) const noexcept { return merges->find(a.id, b.id); }
    };
    // SentencePiece: the concatenation must be a piece; higher score first. Byte-fallback
    // symbols never merge.
    struct score_ranker {
        const sp_bpe* self;
        bpe_merge rank(std::string_view word, bpe_symbol a, bpe_symbol b) const noexcept {
            if (self->is_byte_[a.id] || self->is_byte_[b.id]) return {};
            const std::uint32_t id = self->vocab_.find(word.data() + a.begin, b.end - a.begin);
            if (id == npos) return {};
            return {self->priority_[id], id};
        }
    };

    void encode_word(std::string_view word, std::vector<std::uint32_t>& out, encode_context& ctx, bool reference) const {
        if (word.empty()) return;
        detail::check_piece_size(name_, word.size());
        auto& syms = ctx.symbols;
        syms.clear();
        const char* b = word.data();
        const char* e = b + word.size();
        bool last_unk = false;
        for (std::size_t k = 0; k < word.size();) {
            const utf8_char c = decode_utf8(b + k, e);
            const auto len = static_cast<std::uint32_t>(c.len);
            const auto at = static_cast<std::uint32_t>(k);
            const std::uint32_t id = c.cp == utf8_char::invalid ? npos : vocab_.find(b + k, len);
            if (id != npos) {
                syms.push_back({at, at + len, id});
                last_unk = false;
            } else if (byte_fallback_) {
                for (std::uint32_t j = 0; j < len; ++j) {
                    syms.push_back({at + j, at + j + 1, byte_ids_[static_cast<unsigned char>(b[k + j])]});
                }
                last_unk = false;
            } else {
                check(unk_.has_value(), name_, ": encode: '", std::string_view(b + k, len),
                      "' has no piece and there is neither byte fallback nor an unk token");
                if (last_unk) {
                    syms.back().end = at + len;  // fuse_unk
                } else {
                    syms.push_back({at, at + len, *unk_});
                }
                last_unk = true;
            }
            k += len;
        }
        if (!merges_.size()) {
            const score_ranker r{this};
            if (reference) bpe_merge_reference(word, syms, r);
            else bpe_merge_fast(word, syms, r, ctx.workspace);
        } else {
            const merges_ranker r{&merges_};
            if (reference) bpe_merge_reference(word, syms, r);
            else bpe_merge_fast(word, syms, r, ctx.workspace);
        }
        for (const bpe_symbol& s : syms) out.push_back(s.id);
    }

    std::string name_;
    bool byte_fallback_;
    std::optional<std::uint32_t> unk_;
    bool dummy_prefix_;
    bool split_words_;
    std::size_t n_vocab_ = 0;
    detail::bytes_map vocab_;
    std::vector<std::string> text_;
    std::vector<std::uint8_t> present_;
    std::vector<std::uint8_t> is_byte_;
    std::array<std::uint32_t, 256> byte_ids_ = [] {
        std::array<std::uint32_t, 256> a{};
        a.fill(npos);
        return a;
    }();
    std::vector<std::uint32_t> priority_;
    detail::pair_map merges_;
    special_matcher specials_;
};

}  // namespace llm::tokenizer
