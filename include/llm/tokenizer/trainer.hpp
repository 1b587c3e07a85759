// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE trainer (incremental pair counts, deterministic ties), tiktoken / tokenizer.json writers, and corpus metrics.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/atomic_file.hpp>
#include <llm/io/json.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/detail/byte_unicode.hpp>
#include <llm/tokenizer/detail/bytes_map.hpp>
#include <llm/tokenizer/pretokenize.hpp>
#include <llm/tokenizer/special_tokens.hpp>
#include <llm/tokenizer/unicode.hpp>

#include <cstddef>
#include <cstdint>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llm::tokenizer {

/// Settings of train_bpe.
struct bpe_trainer_options {
    std::size_t vocab_size = 32000;     ///< ranks + specials in the result (at least 256 + specials)
    std::uint64_t min_frequency = 2;    ///< a pair seen fewer times is never merged
    pattern pre = pattern::cl100k;      ///< pre-tokenizer splitting the training text
    std::vector<std::string> specials;  ///< reserved: ids right after the ranks, never merged
};

/// A trained byte-level BPE: token bytes by rank (ranks 0..255 are the single bytes), the
/// merge that made each rank from 256 on, the specials and the pattern.
struct bpe_vocabulary {
    std::vector<std::string> tokens;                              ///< bytes of each rank
    std::vector<std::pair<std::uint32_t, std::uint32_t>> merges;  ///< merges[r - 256] made rank r
    std::vector<special_token> specials;                          ///< ids after the ranks
    pattern pre = pattern::cl100k;                                ///< the pre-tokenizer trained with

    /// The tokenizer (tiktoken semantics: ranks of concatenated bytes).
    byte_bpe tokenizer(std::string name = "trained") const {
        byte_bpe_spec spec;
        spec.name = std::move(name);
        spec.pre = pre;
        for (std::size_t r = 0; r < tokens.size(); ++r) spec.tokens.emplace_back(tokens[r], static_cast<std::uint32_t>(r));
        spec.specials = specials;
        return byte_bpe(std::move(spec));
    }
};

namespace detail {

inline std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) noexcept { return (std::uint64_t{a} << 32) | b; }

}  // namespace detail

/// Trains a byte-level BPE on `docs`: pieces from the pre-tokenizer are counted once each,
/// then the most frequent adjacent pair is merged until the vocabulary is full or no pair
/// reaches min_frequency. Pair counts are updated only in the words a merge touches (no
/// recount). Ties go to the smaller (left id, right id) pair, so the result is deterministic.
/// Example: `auto v = llm::tokenizer::train_bpe(docs, {.vocab_size = 4096, .specials = {"<|endoftext|>"}});`
inline bpe_vocabulary train_bpe(std::span<const std::string_view> docs, const bpe_trainer_options& opt) {
    const std::size_t n_ranks_target = opt.vocab_size - std::min(opt.vocab_size, opt.specials.size());
    check(n_ranks_target >= 256, "train_bpe: vocab_size = ", opt.vocab_size, " leaves ", n_ranks_target,
          " ranks after ", opt.specials.size(), " specials; at least 256 (the bytes) are needed");
    check(opt.min_frequency >= 1, "train_bpe: min_frequency = 0 must be >= 1");

    // 1. Unique pieces and their counts.
    detail::bytes_map index;
    std::vector<std::uint64_t> counts;
    std::vector<std::string_view> pieces;
    auto count_piece = [&](std::string_view p) {
        const std::uint32_t k = index.find(p);
        if (k != detail::bytes_map::npos) {
            ++counts[k];
            return;
        }
        index.insert(p, static_cast<std::uint32_t>(pieces.size()));
        pieces.push_back(p);
        counts.push_back(1);
    };
    for (const std::string_view doc : docs) {
        switch (opt.pre) {
        case pattern::r50k: for_each_piece<r50k_pattern>(doc, count_piece); break;
        case pattern::cl100k: for_each_piece<cl100k_pattern>(doc, count_piece); break;
        case pattern::o200k: for_each_piece<o200k_pattern>(doc, count_piece); break;
        }
    }

    // 2. Words as symbol ids (bytes first) and the pair counts over them.
    std::vector<std::vector<std::uint32_t>> words(pieces.size());
    std::unordered_map<std::uint64_t, std::int64_t> pair_count;
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> where;  // words holding the pair (may be stale)
    for (std::size_t w = 0; w < pieces.size(); ++w) {
        for (const char c : pieces[w]) words[w].push_back(static_cast<unsigned char>(c));
        for (std::size_t i = 0; i + 1 < words[w].size(); ++i) {
            const std::uint64_t key = detail::pair_key(words[w][i], words[w][i + 1]);
            pair_count[key] += static_cast<std::int64_t>(counts[w]);
            auto& list = where[key];
            if (list.empty() || list.back() != w) list.push_back(static_cast<std::uint32_t>(w));
        }
    }
    // Max-heap of (count, pair); smaller pair first on equal counts. Entries go stale when a
    // count changes; every change pushes a fresh entry and pops check the current count.
    using entry = std::pair<std::int64_t, std::uint64_t>;
    auto later = [](const entry& x, const entry& y) { return x.first != y.first ? x.first < y.first : x.second > y.second; };
    std::priority_queue<entry, std::vector<entry>, decltype(later)> heap(later);
    for (const auto& [key, c] : pair_count) heap.push({c, key});

    bpe_vocabulary v;
    v.pre = opt.pre;
    for (int b = 0; b < 256; ++b) v.tokens.emplace_back(1, static_cast<char>(b));
    std::unordered_map<std::uint64_t, std::int64_t> delta;
    while (v.tokens.size() < n_ranks_target && !heap.empty()) {
        const auto [c, key] = heap.top();
        heap.pop();
        const auto it = pair_count.find(key);
        if (it == pair_count.end() || it->second != c) continue;  // stale
        if (c < static_cast<std::int64_t>(opt.min_frequency)) break;
        const auto a = static_cast<std::uint32_t>(key >> 32), b = static_cast<std::uint32_t>(key);
        const auto id = static_cast<std::uint32_t>(v.tokens.size());
        v.tokens.push_back(v.tokens[a] + v.tokens[b]);
        v.merges.emplace_back(a, b);
        // Rewrite the words holding (a, b): remove their old pairs, add their new ones.
        delta.clear();
        std::vector<std::uint32_t> touched = std::move(where[key]);
        where.erase(key);
        for (const std::uint32_t w : touched) {
            auto& s = words[w];
            bool present = false;
            for (std::size_t i = 0; i + 1 < s.size() && !present; ++i) present = s[i] == a && s[i + 1] == b;
            if (!present) continue;
            const auto cw = static_cast<std::int64_t>(counts[w]);
            for (std::size_t i = 0; i + 1 < s.size(); ++i) delta[detail::pair_key(s[i], s[i + 1])] -= cw;
            std::size_t out = 0;
            for (std::size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
                    s[out++] = id;
                    ++i;
                } else {
                    s[out++] = s[i];
                }
            }
            s.resize(out);
            for (std::size_t i = 0; i + 1 < s.size(); ++i) {
                const std::uint64_t k2 = detail::pair_key(s[i], s[i + 1]);
                delta[k2] += cw;
                if (s[i] == id || s[i + 1] == id) {
                    auto& list = where[k2];
                    if (list.empty() || list.back() != w) list.push_back(w);
                }
            }
        }
        for (const auto& [k2, d] : delta) {
            if (d == 0) continue;
            auto& cnt = pair_count[k2];
            cnt += d;
            if (cnt > 0) {
                heap.push({cnt, k2});
            } else {
                pair_count.erase(k2);
            }
        }
    }
    for (std::size_t k = 0; k < opt.specials.size(); ++k) {
        v.specials.push_back({opt.specials[k], static_cast<std::uint32_t>(v.tokens.size() + k)});
    }
    return v;
}

namespace detail {

inline std::string base64_encode(std::string_view in) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 3) {
        std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
        if (i + 1 < in.size()) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
        if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += i + 1 < in.size() ? alphabet[(v >> 6) & 63] : '=';
        out += i + 2 < in.size() ? alphabet[v & 63] : '=';
    }
    return out;
}

inline std::string_view pattern_regex(pattern p) {
    switch (p) {
    case pattern::r50k: return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    case pattern::cl100k:
        return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    case pattern::o200k:
        return R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    }
    return {};
}

}  // namespace detail

/// The text of the vocabulary's tiktoken rank file (base64 token, rank; specials are not in it).
/// Example: `std::string text = llm::tokenizer::format_tiktoken(v);`
inline std::string format_tiktoken(const bpe_vocabulary& v) {
    std::string out;
    for (std::size_t r = 0; r < v.tokens.size(); ++r) out += detail::base64_encode(v.tokens[r]) + " " + std::to_string(r) + "\n";
    return out;
}

/// Writes format_tiktoken(v) to `path` atomically (llm::io::write_file_atomically: unique
/// temporary, fsync, rename).
/// Example: `llm::tokenizer::write_tiktoken(v, "my.tiktoken");`
inline void write_tiktoken(const bpe_vocabulary& v, const std::string& path) {
    io::write_file_atomically(path, format_tiktoken(v), "write_tiktoken");
}

/// The text of the vocabulary as a Hugging Face tokenizer.json: a BPE model over GPT-2
/// byte-level strings with its merges, the pattern as a Split pre-tokenizer (GPT-2's through
/// ByteLevel itself) and the specials as added tokens.
/// Example: `std::string json = llm::tokenizer::format_hf_tokenizer(v);`
inline std::string format_hf_tokenizer(const bpe_vocabulary& v) {
    using io::json_quote;
    std::string out = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[";
    for (std::size_t k = 0; k < v.specials.size(); ++k) {
        out += (k ? "," : "") + std::string("{\"id\":") + std::to_string(v.specials[k].id) + ",\"content\":" +
               json_quote(v.specials[k].text) +
               ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}";
    }
    out += "],\"normalizer\":null,\"pre_tokenizer\":";
    if (v.pre == pattern::r50k) {
        out += R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})";
    } else {
        out += R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":)" + json_quote(detail::pattern_regex(v.pre)) +
               R"(},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]})";
    }
    out += R"(,"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},)";
    out += R"("model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,)";
    out += R"("fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{)";
    for (std::size_t r = 0; r < v.tokens.size(); ++r) {
        out += (r ? "," : "") + json_quote(detail::bytes_to_vocab_string(v.tokens[r])) + ":" + std::to_string(r);
    }
    out += "},\"merges\":[";
    for (std::size_t m = 0; m < v.merges.size(); ++m) {
        out += (m ? "," : "") + json_quote(detail::bytes_to_vocab_string(v.tokens[v.merges[m].first]) + " " +
                                           detail::bytes_to_vocab_string(v.tokens[v.merges[m].second]));
    }
    out += "]}}\n";
    return out;
}

/// Writes format_hf_tokenizer(v) to `path` atomically (llm::io::write_file_atomically).
/// Example: `llm::tokenizer::write_hf_tokenizer(v, "tokenizer.json");`
inline void write_hf_tokenizer(const bpe_vocabulary& v, const std::string& path) {
    io::write_file_atomically(path, format_hf_tokenizer(v), "write_hf_tokenizer");
}

/// Bytes, words (maximal runs of non-White_Space characters) and tokens of a corpus, and
/// the two usual ratios.
struct tokenization_metrics {
    std::size_t bytes = 0;   ///< UTF-8 bytes of the documents
    std::size_t words = 0;   ///< runs of non-White_Space characters
    std::size_t tokens = 0;  ///< ids produced
    /// Bytes per token (compression).
    double bytes_per_token() const noexcept { return tokens ? static_cast<double>(bytes) / static_cast<double>(tokens) : 0.0; }
    /// Tokens per word.
    double fertility() const noexcept { return words ? static_cast<double>(tokens) / static_cast<double>(words) : 0.0; }
};

/// Encodes every document (specials as plain text) and counts.
/// Template parameters: Tokenizer, anything with encode(text) returning the ids.
/// Example: `auto m = llm::tokenizer::measure(enc, docs); std::printf("%.2f bytes/token", m.bytes_per_token());`
template <class Tokenizer>
tokenization_metrics measure(const Tokenizer& tok, std::span<const std::string_view> docs) {
    tokenization_metrics m;
    for (const std::string_view doc : docs) {
        m.bytes += doc.size();
        m.tokens += tok.encode(doc).size();
        bool in_word = false;
        for (std::size_t i = 0; i < doc.size();) {
            const utf8_char c = decode_utf8(doc.data() + i, doc.data() + doc.size());
            const bool space = c.cp != utf8_char::invalid && is_white_space(c.cp);
            if (!space && !in_word) ++m.words;
            in_word = !space;
            i += c.len;
        }
    }
    return m;
}

}  // namespace llm::tokenizer
