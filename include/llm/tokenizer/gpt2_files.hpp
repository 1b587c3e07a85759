// SPDX-License-Identifier: Apache-2.0
// Loader for GPT-2 style vocab.json + merges.txt byte-level BPE files.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/detail/byte_unicode.hpp>
#include <llm/tokenizer/limits.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace llm::tokenizer {

/// A byte-level BPE from a parsed vocab.json (byte-level string -> id) and the text of merges.txt
/// (an optional `#version` line, then `left right` per line, highest priority first), with
/// the GPT-2 pre-tokenizer unless `pre` says otherwise. Vocabulary entries of the form
/// `<|...|>` are special tokens. Errors name the file and the line or offset.
/// Example: `auto enc = llm::tokenizer::gpt2_from_document(llm::io::parse_json(v, "vocab.json"), merges_txt, "vocab.json", "merges.txt");`
inline byte_bpe gpt2_from_document(const io::json_value& doc, std::string_view merges_txt, std::string_view vocab_source,
                                   std::string_view merges_source, pattern pre = pattern::r50k) {
    const std::string where(vocab_source);
    byte_bpe_spec spec;
    spec.name = where;
    spec.pre = pre;
    detail::bytes_map ids;
    std::string bytes;
    for (const auto& [piece, v] : doc.as_object(where)) {
        const auto id = static_cast<std::uint32_t>(v.as_int(where, 0, byte_bpe::max_token_id));
        if (piece.size() > 4 && piece.starts_with("<|") && piece.ends_with("|>")) {
            spec.specials.push_back({piece, id});
            continue;
        }
        check(detail::vocab_string_to_bytes(piece, bytes), where, ": offset ", v.offset(), ": '", piece, "' is not a byte-level string");
        check(ids.insert(piece, id), where, ": offset ", v.offset(), ": '", piece, "' is listed twice");
        spec.tokens.emplace_back(bytes, id);
    }
    std::size_t pos = 0, line = 0;
    while (pos < merges_txt.size()) {
        ++line;
        std::size_t eol = merges_txt.find('\n', pos);
        if (eol == std::string_view::npos) eol = merges_txt.size();
        std::string_view l = merges_txt.substr(pos, eol - pos);
        pos = eol + 1;
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (l.empty() || (line == 1 && l.starts_with("#version"))) continue;
        const std::size_t sp = l.find(' ');
        check(sp != std::string_view::npos && sp > 0 && sp + 1 < l.size() && l.find(' ', sp + 1) == std::string_view::npos,
              merges_source, ":", line, ": expected 'left right'");
        const std::uint32_t a = ids.find(l.substr(0, sp)), b = ids.find(l.substr(sp + 1));
        check(a != detail::bytes_map::npos && b != detail::bytes_map::npos, merges_source, ":", line, ": '", l,
              "' uses a piece that is not in ", vocab_source);
        spec.merges.emplace_back(a, b);
    }
    check(!spec.merges.empty(), merges_source, ": no merges");
    return byte_bpe(std::move(spec));
}

/// gpt2_from_document on the text of vocab.json.
/// Example: `auto enc = llm::tokenizer::gpt2_from_text(vocab_json, merges_txt, "vocab.json", "merges.txt");`
inline byte_bpe gpt2_from_text(std::string_view vocab_json, std::string_view merges_txt, std::string_view vocab_source,
                               std::string_view merges_source, pattern pre = pattern::r50k) {
    return gpt2_from_document(io::parse_json(vocab_json, vocab_source), merges_txt, vocab_source, merges_source, pre);
}

/// Loads vocab.json and merges.txt (see gpt2_from_document). Files over max_vocab_file_bytes
/// (256 MiB) raise llm::error before they are read.
/// Example: `auto enc = llm::tokenizer::load_gpt2_files("gpt2/vocab.json", "gpt2/merges.txt");`
inline byte_bpe load_gpt2_files(const std::string& vocab_path, const std::string& merges_path, pattern pre = pattern::r50k) {
    return gpt2_from_text(io::read_file(vocab_path, max_vocab_file_bytes, "load_gpt2_files"),
                          io::read_file(merges_path, max_vocab_file_bytes, "load_gpt2_files"), vocab_path, merges_path, pre);
}

}  // namespace llm::tokenizer
