// SPDX-License-Identifier: Apache-2.0
// tiktoken rank files (base64 token, rank) and the known encodings' patterns and special tokens, built in by name.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/file.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/detail/bytes_map.hpp>
#include <llm/tokenizer/limits.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::tokenizer {

/// What a tiktoken encoding name stands for: its pre-tokenizer, its special tokens and the
/// number of mergeable ranks its file must hold.
struct encoding_info {
    std::string name;                     ///< e.g. "cl100k_base"
    pattern pre;                          ///< its pre-tokenizer
    std::vector<special_token> specials;  ///< its special tokens
    std::size_t n_ranks;                  ///< lines its rank file holds
};

/// The built-in encodings: r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base, llama3
/// (Llama 3.1 special names). nullopt for other names.
/// Example: `auto info = llm::tokenizer::known_encoding("cl100k_base");`
inline std::optional<encoding_info> known_encoding(std::string_view name) {
    if (name == "r50k_base") return encoding_info{"r50k_base", pattern::r50k, {{"<|endoftext|>", 50256}}, 50256};
    if (name == "p50k_base") return encoding_info{"p50k_base", pattern::r50k, {{"<|endoftext|>", 50256}}, 50280};
    if (name == "p50k_edit") {
        return encoding_info{"p50k_edit", pattern::r50k,
                             {{"<|endoftext|>", 50256}, {"<|fim_prefix|>", 50281}, {"<|fim_middle|>", 50282}, {"<|fim_suffix|>", 50283}},
                             50280};
    }
    if (name == "cl100k_base") {
        return encoding_info{"cl100k_base", pattern::cl100k,
                             {{"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258}, {"<|fim_middle|>", 100259},
                              {"<|fim_suffix|>", 100260}, {"<|endofprompt|>", 100276}},
                             100256};
    }
    if (name == "o200k_base") {
        return encoding_info{"o200k_base", pattern::o200k, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}, 199998};
    }
    if (name == "llama3") {
        // Meta's Llama 3.1 tokenizer: 128000 ranks, then 256 specials; the named ones first,
        // every other slot is <|reserved_special_token_N|> with N counting up.
        std::vector<special_token> s;
        const char* named[] = {"<|begin_of_text|>", "<|end_of_text|>", nullptr, nullptr, "<|finetune_right_pad_id|>", nullptr,
                               "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
        int reserved = 0;
        for (std::uint32_t k = 0; k < 256; ++k) {
            const char* n = k < std::size(named) ? named[k] : nullptr;
            s.push_back({n ? std::string(n) : "<|reserved_special_token_" + std::to_string(reserved++) + "|>", 128000 + k});
        }
        return encoding_info{"llama3", pattern::cl100k, std::move(s), 128000};
    }
    return std::nullopt;
}

namespace detail {

// Strict standard base64 (RFC 4648 alphabet, '=' padding to a multiple of 4). Returns false on
// any other input.
inline bool base64_decode(std::string_view in, std::string& out) {
    static constexpr auto table = [] {
        std::array<std::int8_t, 256> t{};
        t.fill(-1);
        const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int k = 0; k < 64; ++k) t[static_cast<unsigned char>(alphabet[k])] = static_cast<std::int8_t>(k);
        return t;
    }();
    out.clear();
    if (in.empty() || in.size() % 4 != 0) return false;
    std::size_t pad = 0;
    if (in.back() == '=') pad = in[in.size() - 2] == '=' ? 2 : 1;
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const char c = in[i + k];
            int d;
            if (last && c == '=' && k >= 4 - pad) {
                d = 0;
            } else {
                d = table[static_cast<unsigned char>(c)];
                if (d < 0) return false;
            }
            v = (v << 6) | static_cast<std::uint32_t>(d);
        }
        out.push_back(static_cast<char>(v >> 16));
        if (!last || pad < 2) out.push_back(static_cast<char>((v >> 8) & 0xff));
        if (!last || pad < 1) out.push_back(static_cast<char>(v & 0xff));
    }
    return true;
}

}  // namespace detail

/// Parses the text of a tiktoken rank file: one `base64(token bytes) SP rank` per line,
/// blank lines ignored. Errors name `source` and the line: bad base64, a missing or
/// non-decimal rank, a repeated rank or (with `check_duplicates`) repeated token bytes.
/// Example: `auto ranks = llm::tokenizer::parse_tiktoken(text, "cl100k_base.tiktoken");`
inline std::vector<std::pair<std::string, std::uint32_t>> parse_tiktoken(std::string_view text, std::string_view source,
                                                                       bool check_duplicates = true) {
    std::vector<std::pair<std::string, std::uint32_t>> ranks;
    ranks.reserve(text.size() / 12);
    // (rank, line) of every entry: repeated ranks are found by sorting these at the end, so no
    // table is indexed by a rank read from the file (one line "YQ== 16777215" must not cost 64 MB).
    std::vector<std::pair<std::uint32_t, std::uint32_t>> rank_lines;
    rank_lines.reserve(text.size() / 12);
    detail::bytes_map seen;
    if (check_duplicates) seen.reserve(text.size() / 12);
    std::size_t pos = 0, line = 0;
    std::string bytes;
    while (pos < text.size()) {
        ++line;
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view l = text.substr(pos, eol - pos);
        pos = eol + 1;
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (l.empty()) continue;
        const std::size_t sp = l.find(' ');
        check(sp != std::string_view::npos, source, ":", line, ": expected 'base64 rank', found no space");
        const std::string_view b64 = l.substr(0, sp), digits = l.substr(sp + 1);
        check(detail::base64_decode(b64, bytes), source, ":", line, ": bad base64 '", b64.substr(0, 64), "'");
        check(!digits.empty() && digits.size() <= 10, source, ":", line, ": bad rank '", digits.substr(0, 32), "'");
        std::uint64_t rank = 0;
        for (const char c : digits) {
            check(c >= '0' && c <= '9', source, ":", line, ": bad rank '", digits.substr(0, 32), "'");
            rank = rank * 10 + static_cast<std::uint64_t>(c - '0');
        }
        check(rank <= byte_bpe::max_token_id, source, ":", line, ": rank ", rank, " is above the supported maximum ",
              byte_bpe::max_token_id, " (max_vocab - 1)");
        const auto r = static_cast<std::uint32_t>(rank);
        if (check_duplicates && !seen.insert(bytes, r)) fail(source, ":", line, ": token '", b64, "' repeats rank ", seen.find(bytes));
        ranks.emplace_back(bytes, r);
        rank_lines.emplace_back(r, static_cast<std::uint32_t>(line));
    }
    std::sort(rank_lines.begin(), rank_lines.end());
    for (std::size_t k = 1; k < rank_lines.size(); ++k) {
        check(rank_lines[k].first != rank_lines[k - 1].first, source, ":", rank_lines[k].second, ": rank ", rank_lines[k].first,
              " repeats line ", rank_lines[k - 1].second);
    }
    return ranks;
}

/// A byte_bpe from the text of a tiktoken rank file and a known encoding name (pattern and
/// specials). The number of ranks must match the encoding (catches truncated files).
/// Example: `auto enc = llm::tokenizer::tiktoken_from_text(text, "cl100k_base", "cl100k_base.tiktoken");`
inline byte_bpe tiktoken_from_text(std::string_view text, std::string_view encoding, std::string_view source) {
    std::optional<encoding_info> info = known_encoding(encoding);
    check(info.has_value(), source, ": unknown tiktoken encoding '", encoding,
          "' (known: r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base, llama3)");
    byte_bpe_spec spec;
    spec.name = std::string(source);
    spec.pre = info->pre;
    // Repeated token bytes are caught by byte_bpe (naming both ranks) without a second hash map.
    spec.tokens = parse_tiktoken(text, source, false);
    check(spec.tokens.size() == info->n_ranks, source, ": has ", spec.tokens.size(), " ranks but ", encoding, " has ",
          info->n_ranks, " (truncated or wrong file?)");
    spec.specials = std::move(info->specials);
    return byte_bpe(std::move(spec));
}

/// Loads a tiktoken rank file for a known encoding (see known_encoding). Files over
/// max_vocab_file_bytes (256 MiB) raise llm::error before they are read.
/// Example: `auto enc = llm::tokenizer::load_tiktoken("o200k_base.tiktoken", "o200k_base");`
inline byte_bpe load_tiktoken(const std::string& path, std::string_view encoding) {
    return tiktoken_from_text(io::read_file(path, max_vocab_file_bytes, "load_tiktoken"), encoding, path);
}

}  // namespace llm::tokenizer
