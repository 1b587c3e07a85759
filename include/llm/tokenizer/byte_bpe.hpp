// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE tokenizer (tiktoken / GPT-2 / Llama 3 family): pre-tokenize, merge, special tokens, decode.
#pragma once

#include <llm/core/error.hpp>
#include <llm/tokenizer/bpe.hpp>
#include <llm/tokenizer/decode.hpp>
#include <llm/tokenizer/detail/bytes_map.hpp>
#include <llm/tokenizer/detail/pair_map.hpp>
#include <llm/tokenizer/limits.hpp>
#include <llm/tokenizer/piece_cache.hpp>
#include <llm/tokenizer/pretokenize.hpp>
#include <llm/tokenizer/special_tokens.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::tokenizer {

/// The pre-tokenizer a byte-level tokenizer uses (runtime choice; each is a scanner policy).
enum class pattern : std::uint8_t {
    r50k,    ///< GPT-2 / r50k_base / p50k_base: r50k_pattern
    cl100k,  ///< cl100k_base / Llama 3: cl100k_pattern
    o200k,   ///< o200k_base: o200k_pattern
};

/// Everything a byte_bpe is built from.
struct byte_bpe_spec {
    std::string name;  ///< shown in error messages (e.g. the file it came from)
    pattern pre = pattern::cl100k;  ///< the pre-tokenizer
    /// Token bytes and ids. For tiktoken files the id is the rank. Ids may have gaps.
    std::vector<std::pair<std::string, std::uint32_t>> tokens;
    std::vector<special_token> specials;  ///< special tokens (their ids must not be token ids)
    /// Empty: tiktoken semantics (a pair merges when its concatenated bytes are a token, lower
    /// id first). Otherwise Hugging Face semantics: these id pairs merge, in list order.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> merges;
    /// With merges: a piece that is itself a token is emitted whole (HF `ignore_merges`, Llama 3).
    /// tiktoken always does this.
    bool ignore_merges = false;
};

/// A byte-level BPE tokenizer identical to tiktoken (and to Hugging Face byte-level BPE
/// given merges). Thread-safe for concurrent encode/decode calls; each thread should pass
/// its own encode_context.
/// Example: `auto enc = llm::tokenizer::load_tiktoken("cl100k_base.tiktoken", "cl100k_base"); auto ids = enc.encode("hello world");`
class byte_bpe {
public:
    /// Builds the tokenizer; bad specs (repeated ids or bytes, ids above max_token_id or outside
    /// max_id_space, merges of unknown ids) raise llm::error naming spec.name.
    explicit byte_bpe(byte_bpe_spec spec) : name_(std::move(spec.name)), pre_(spec.pre) {
        check(!spec.tokens.empty(), name_, ": the vocabulary is empty");
        vocab_.reserve(spec.tokens.size());
        std::uint32_t max_id = 0;
        for (const auto& [bytes, id] : spec.tokens) {
            check(!bytes.empty(), name_, ": token id ", id, " has no bytes");
            check(id <= max_token_id, name_, ": token id ", id, " is above the supported maximum ", max_token_id);
            max_id = std::max(max_id, id);
        }
        for (const special_token& s : spec.specials) {
            check(s.id <= max_token_id, name_, ": special token id ", s.id, " is above the supported maximum ", max_token_id);
            max_id = std::max(max_id, s.id);
        }
        check_id_space(name_, max_id, spec.tokens.size() + spec.specials.size());
        n_vocab_ = static_cast<std::size_t>(max_id) + 1;
        offsets_.assign(n_vocab_ + 1, 0);
        lengths_.assign(n_vocab_, absent);
        for (const auto& [bytes, id] : spec.tokens) {
            check(lengths_[id] == absent, name_, ": token id ", id, " is given twice");
            if (!vocab_.insert(bytes, id)) fail(name_, ": token id ", id, " repeats the bytes of token id ", vocab_.find(bytes));
            lengths_[id] = static_cast<std::uint32_t>(bytes.size());
        }
        for (const special_token& s : spec.specials) {
            check(lengths_[s.id] == absent, name_, ": special token '", s.text, "' has id ", s.id, ", which is already used");
            lengths_[s.id] = static_cast<std::uint32_t>(s.text.size());
        }
        // Decode table: every id's bytes in one arena, in id order.
        std::size_t total = 0;
        for (std::size_t id = 0; id < n_vocab_; ++id) {
            offsets_[id] = total;
            if (lengths_[id] != absent) total += lengths_[id];
        }
        offsets_[n_vocab_] = total;
        arena_.resize(total);
        for (const auto& [bytes, id] : spec.tokens) arena_.replace(offsets_[id], bytes.size(), bytes);
        for (const special_token& s : spec.specials) arena_.replace(offsets_[s.id], s.text.size(), s.text);
        byte_pairs_.resize(65536);
        for (unsigned b = 0; b < 256; ++b) {
            const char c = static_cast<char>(b);
            byte_ids_[b] = vocab_.find(&c, 1);
            for (unsigned b2 = 0; b2 < 256; ++b2) {
                const char pair[2] = {c, static_cast<char>(b2)};
                byte_pairs_[b * 256 + b2] = vocab_.find(pair, 2);
            }
        }
        specials_ = special_matcher(std::move(spec.specials), name_);
        if (!spec.merges.empty()) {
            has_merges_ = true;
            ignore_merges_ = spec.ignore_merges;
            for (std::size_t r = 0; r < spec.merges.size(); ++r) {
                const auto [a, b] = spec.merges[r];
                check(a < n_vocab_ && lengths_[a] != absent && b < n_vocab_ && lengths_[b] != absent, name_,
                      ": merge ", r, " joins unknown token ids ", a, " and ", b);
                std::string joined(token_bytes(a));
                joined += token_bytes(b);
                const std::uint32_t id = vocab_.find(joined);
                check(id != bytes_map_npos, name_, ": merge ", r, " (ids ", a, ", ", b, ") makes bytes that are not a token");
                merges_.insert(a, b, {static_cast<std::uint32_t>(r), id});  // a repeated pair keeps its first rank
            }
        }
    }

    /// The name given in the spec (usually the file it came from).
    const std::string& name() const noexcept { return name_; }
    /// The pre-tokenizer.
    pattern pre_tokenizer() const noexcept { return pre_; }
    /// One more than the largest id (tokens and specials); ids in between may be unused.
    std::size_t n_vocab() const noexcept { return n_vocab_; }
    /// The special tokens.
    const std::vector<special_token>& specials() const noexcept { return specials_.tokens(); }

    /// Id of the token with exactly these bytes (ordinary tokens only).
    std::optional<std::uint32_t> token_id(std::string_view bytes) const noexcept {
        const std::uint32_t id = vocab_.find(bytes);
        if (id == bytes_map_npos) return std::nullopt;
        return id;
    }
    /// Id of a special token by its text.
    std::optional<std::uint32_t> special_id(std::string_view text) const noexcept {
        const std::uint32_t k = specials_.find(text);
        if (k == bytes_map_npos) return std::nullopt;
        return specials_.tokens()[k].id;
    }
    /// True when `id` is an ordinary token or a special.
    bool contains(std::uint32_t id) const noexcept { return id < n_vocab_ && lengths_[id] != absent; }

    /// Bytes of token `id` (a special's text for a special). Unknown ids raise llm::error.
    std::string_view token_bytes(std::uint32_t id) const {
        check(contains(id), name_, ": token_bytes: id ", id, " is not in the vocabulary (n_vocab ", n_vocab_, ")");
        return {arena_.data() + offsets_[id], lengths_[id]};
    }

    /// Appends the ids of `text` to `out`. Special-token text is handled by `policy`.
    /// `text` may hold any bytes: ill-formed UTF-8 is split one maximal subpart at a time and
    /// encoded by its bytes.
    void encode(std::string_view text, std::vector<std::uint32_t>& out, const special_policy& policy,
                encode_context& ctx) const {
        detail::split_specials(
            "byte_bpe::encode", specials_, text, policy,
            [&](std::string_view segment) { encode_ordinary(segment, out, ctx); },
            [&](std::uint32_t id) { out.push_back(id); });
    }

    /// The ids of `text` under `policy` (default: specials are plain text).
    /// Example: `auto ids = enc.encode("<|endoftext|> hi", llm::tokenizer::special_policy::all());`
    std::vector<std::uint32_t> encode(std::string_view text, const special_policy& policy = {}) const {
        encode_context ctx;
        std::vector<std::uint32_t> out;
        out.reserve(text.size() / 3);
        encode(text, out, policy, ctx);
        return out;
    }

    /// tiktoken's encode_ordinary: special-token text is plain text. Appends to `out`.
    void encode_ordinary(std::string_view text, std::vector<std::uint32_t>& out, encode_context& ctx) const {
        ctx.bind(this);
        switch (pre_) {
        case pattern::r50k: encode_with<r50k_pattern>(text, out, ctx); break;
        case pattern::cl100k: encode_with<cl100k_pattern>(text, out, ctx); break;
        case pattern::o200k: encode_with<o200k_pattern>(text, out, ctx); break;
        }
    }

    /// Concatenated bytes of `ids` (specials give their text). Unknown ids raise llm::error.
    std::string decode_bytes(std::span<const std::uint32_t> ids) const {
        std::string out;
        for (const std::uint32_t id : ids) out += token_bytes(id);
        return out;
    }

    /// Decoded text, with ill-formed UTF-8 handled by `policy` (tokens can split characters).
    std::string decode(std::span<const std::uint32_t> ids, utf8_policy policy = utf8_policy::replace) const {
        return to_utf8(decode_bytes(ids), policy);
    }

    /// Encodes one pre-tokenizer piece with BPE, bypassing the whole-piece lookup and the
    /// cache; with `reference` the plain O(n^2) merge loop runs. For tests and benchmarks.
    void encode_piece_uncached(std::string_view piece, std::vector<std::uint32_t>& out, encode_context& ctx,
                               bool reference = false) const {
        auto& syms = ctx.symbols;
        initial_symbols(piece, syms);
        if (has_merges_) {
            merge(piece, syms, merges_ranker{&merges_}, ctx, reference);
        } else {
            merge(piece, syms, tiktoken_ranker{&vocab_, &ctx.pair_ranks, byte_pairs_.data()}, ctx, reference);
        }
        for (const bpe_symbol& s : syms) out.push_back(s.id);
    }

private:
    static constexpr std::uint32_t bytes_map_npos = detail::bytes_map::npos;
    static constexpr std::uint32_t absent = 0xffffffffu;

public:
    /// Largest id accepted (max_vocab - 1). The decode table is indexed by id, so ids must also
    /// stay inside max_id_space of the number of entries (see limits.hpp).
    static constexpr std::uint32_t max_token_id = static_cast<std::uint32_t>(max_vocab - 1);

private:

    // tiktoken: two parts merge when their concatenated bytes are a token; the lower rank first.
    // The answer depends only on the two ids, so it is remembered per context.
    struct tiktoken_ranker {
        const detail::bytes_map* vocab;
        detail::pair_map* seen;
        const std::uint32_t* byte_pairs;  // rank of every two-byte string, 65536 entries
        bpe_merge rank(std::string_view piece, bpe_symbol a, bpe_symbol b) const {
            if (b.end - a.begin == 2) {  // two single bytes: the first round of every piece
                const std::uint32_t id = byte_pairs[static_cast<unsigned char>(piece[a.begin]) * 256 +
                                                    static_cast<unsigned char>(piece[b.begin])];
                return {id, id};
            }
            if (const bpe_merge* m = seen->lookup(a.id, b.id)) return *m;
            const std::uint32_t id = vocab->find(piece.data() + a.begin, b.end - a.begin);
            if (seen->size() >= pair_cache_limit) seen->clear();
            seen->insert(a.id, b.id, {id, id});
            return {id, id};
        }
    };
    // Bound on remembered pairs per context (16 bytes each).
    static constexpr std::size_t pair_cache_limit = 1 << 18;
    // Hugging Face: the id pair must be in the merges list; its position is the priority.
    struct merges_ranker {
        const detail::pair_map* merges;
        bpe_merge rank(std::string_view, bpe_symbol a, bpe_symbol b) const noexcept { return merges->find(a.id, b.id); }
    };

    void initial_symbols(std::string_view piece, std::vector<bpe_symbol>& syms) const {
        detail::check_piece_size(name_, piece.size());
        syms.resize(piece.size());
        for (std::size_t k = 0; k < piece.size(); ++k) {
            const std::uint32_t id = byte_ids_[static_cast<unsigned char>(piece[k])];
            check(id != bytes_map_npos, name_, ": encode: byte 0x", std::hex,
                  static_cast<unsigned>(static_cast<unsigned char>(piece[k])), " has no token in this vocabulary");
            syms[k] = {static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(k + 1), id};
        }
    }

    template <class R>
    static void merge(std::string_view piece, std::vector<bpe_symbol>& syms, const R& r, encode_context& ctx, bool reference) {
        if (reference) {
            bpe_merge_reference(piece, syms, r);
        } else {
            bpe_merge_fast(piece, syms, r, ctx.workspace);
        }
    }

    // Text a context must have seen before its hot cache is used (see encode_context).
    static constexpr std::size_t hot_cache_after = 4096;

    template <pretokenizer P>
    void encode_with(std::string_view text, std::vector<std::uint32_t>& out, encode_context& ctx) const {
        const bool hot = ctx.bytes_seen >= hot_cache_after;
        ctx.bytes_seen += text.size();
        std::size_t i = 0;
        while (i < text.size()) {
            const std::size_t j = P::next(text, i);
            LLM_ASSERT(j > i && j <= text.size());
            const std::string_view piece = text.substr(i, j - i);
            i = j;
            const bool short_piece = hot && piece.size() <= hot_piece_cache::max_bytes;
            if (short_piece) {
                const std::span<const std::uint32_t> ids = ctx.hot.find(piece);
                if (!ids.empty()) {
                    for (const std::uint32_t id : ids) out.push_back(id);  // 1 to 3 ids: cheaper than insert
                    continue;
                }
            }
            const std::size_t first = out.size();
            encode_piece(piece, out, ctx);
            if (short_piece) ctx.hot.insert(piece, std::span<const std::uint32_t>(out.data() + first, out.size() - first));
        }
    }

    // Whole-piece lookup, then the piece cache, then BPE.
    void encode_piece(std::string_view piece, std::vector<std::uint32_t>& out, encode_context& ctx) const {
        if (!has_merges_ || ignore_merges_) {
            const std::uint32_t id = vocab_.find(piece);
            if (id != bytes_map_npos) {
                out.push_back(id);
                return;
            }
        }
        const std::span<const std::uint32_t> cached = ctx.cache.find(piece);
        if (!cached.empty()) {
            out.insert(out.end(), cached.begin(), cached.end());
            return;
        }
        const std::size_t first = out.size();
        encode_piece_uncached(piece, out, ctx);
        ctx.cache.insert(piece, std::span<const std::uint32_t>(out.data() + first, out.size() - first));
    }

    std::string name_;
    pattern pre_;
    std::size_t n_vocab_ = 0;
    detail::bytes_map vocab_;
    std::vector<std::size_t> offsets_;
    std::vector<std::uint32_t> lengths_;
    std::string arena_;
    std::uint32_t byte_ids_[256] = {};
    std::vector<std::uint32_t> byte_pairs_;
    special_matcher specials_;
    bool has_merges_ = false;
    bool ignore_merges_ = false;
    detail::pair_map merges_;
};

}  // namespace llm::tokenizer
