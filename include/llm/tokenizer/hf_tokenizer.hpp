// SPDX-License-Identifier: Apache-2.0
// Loader for Hugging Face tokenizer.json BPE models (ByteLevel / Split / Metaspace, byte fallback, added tokens).
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/detail/byte_unicode.hpp>
#include <llm/tokenizer/limits.hpp>
#include <llm/tokenizer/sp_bpe.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace llm::tokenizer {

/// A loaded BPE tokenizer: byte-level (tiktoken family) or SentencePiece-style.
using any_bpe = std::variant<byte_bpe, sp_bpe>;

/// The scanner for a pre-tokenizer regex, when it is one of the known patterns (GPT-2,
/// cl100k / Llama 3, o200k; the original, fancy-regex and possessive spellings); nullopt otherwise.
/// Example: `auto p = llm::tokenizer::pattern_of_regex(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");`
inline std::optional<pattern> pattern_of_regex(std::string_view re) {
    constexpr std::string_view r50k[] = {
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
        R"('s|'t|'re|'ve|'m|'ll|'d| ?[\p{L}]+| ?[\p{N}]+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
        R"('(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s)",
    };
    constexpr std::string_view cl100k[] = {
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
        R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)",
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    };
    constexpr std::string_view o200k[] = {
        R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    };
    for (auto s : r50k) if (re == s) return pattern::r50k;
    for (auto s : cl100k) if (re == s) return pattern::cl100k;
    for (auto s : o200k) if (re == s) return pattern::o200k;
    return std::nullopt;
}

namespace detail {

// A merges entry: "left right" (one space) or ["left", "right"].
inline std::pair<std::string, std::string> merge_strings(const io::json_value& m, std::string_view what) {
    if (m.is_array()) {
        const auto& a = m.as_array(what);
        check(a.size() == 2, what, ": merge at offset ", m.offset(), " has ", a.size(), " parts, expected 2");
        return {a[0].as_string(what), a[1].as_string(what)};
    }
    const std::string& s = m.as_string(what);
    const std::size_t sp = s.find(' ');
    check(sp != std::string::npos && sp != 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos, what,
          ": merge '", s, "' at offset ", m.offset(), " is not 'left right'");
    return {s.substr(0, sp), s.substr(sp + 1)};
}

inline std::string_view type_of(const io::json_value& v, std::string_view what) {
    return v.at("type", what).as_string(what);
}

}  // namespace detail

/// Builds a tokenizer from a parsed Hugging Face tokenizer.json with a BPE model.
/// Supported: ByteLevel (GPT-2 regex) or Split(known regex) + ByteLevel pre-tokenizers, and
/// SentencePiece-style files (Prepend/Replace normalizers or a Metaspace pre-tokenizer) with
/// byte fallback; added_tokens become special tokens (matched under special_policy). Anything
/// else raises llm::error naming `source`, the component and its offset.
/// Example: `auto tok = llm::tokenizer::hf_tokenizer_from_document(llm::io::parse_json(text, "t.json"), "t.json");`
inline any_bpe hf_tokenizer_from_document(const io::json_value& doc, std::string_view source) {
    const std::string where(source);
    const io::json_value& model = doc.at("model", where);
    if (const io::json_value* t = model.find("type")) {
        check(t->as_string(where) == "BPE", where, ": model.type '", t->as_string(where), "' at offset ", t->offset(),
              " is not supported (only BPE)");
    }
    if (const io::json_value* d = model.find("dropout"); d && !d->is_null()) {
        check(d->as_number(where) == 0, where, ": model.dropout at offset ", d->offset(), " is not supported");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (const io::json_value* v = model.find(key); v && !v->is_null()) {
            check(v->as_string(where).empty(), where, ": model.", key, " at offset ", v->offset(), " is not supported");
        }
    }
    const auto& vocab = model.at("vocab", where + ": model").as_object(where + ": model.vocab");
    const auto& merges = model.at("merges", where + ": model").as_array(where + ": model.merges");
    const bool byte_fallback = model.find("byte_fallback") && model.find("byte_fallback")->as_bool(where);
    const bool ignore_merges = model.find("ignore_merges") && model.find("ignore_merges")->as_bool(where);

    std::vector<special_token> specials;
    if (const io::json_value* added = doc.find("added_tokens"); added && !added->is_null()) {
        for (const io::json_value& a : added->as_array(where + ": added_tokens")) {
            specials.push_back({a.at("content", where).as_string(where),
                                static_cast<std::uint32_t>(a.at("id", where).as_int(where + ": added_tokens id", 0, byte_bpe::max_token_id))});
        }
    }

    // Which family: byte-level when a ByteLevel pre-tokenizer is present.
    std::optional<pattern> pre;
    bool byte_level = false, metaspace = false, split_words = false, dummy_prefix = false;
    auto pre_tokenizer = [&](const io::json_value& p, auto&& self) -> void {
        const std::string_view type = detail::type_of(p, where);
        if (type == "Sequence") {
            for (const io::json_value& q : p.at("pretokenizers", where).as_array(where)) self(q, self);
        } else if (type == "ByteLevel") {
            byte_level = true;
            if (const io::json_value* a = p.find("add_prefix_space")) {
                check(!a->as_bool(where), where, ": ByteLevel add_prefix_space=true at offset ", a->offset(), " is not supported");
            }
            const io::json_value* r = p.find("use_regex");
            if ((!r || r->as_bool(where)) && !pre) pre = pattern::r50k;
        } else if (type == "Split") {
            const io::json_value& pat = p.at("pattern", where);
            const io::json_value* re = pat.find("Regex");
            check(re != nullptr, where, ": Split pre-tokenizer at offset ", p.offset(), " has no Regex pattern");
            pre = pattern_of_regex(re->as_string(where));
            check(pre.has_value(), where, ": Split regex at offset ", re->offset(),
                  " is not one of the known patterns (GPT-2, cl100k/Llama 3, o200k): '", re->as_string(where), "'");
        } else if (type == "Metaspace") {
            metaspace = true;
            const io::json_value* s = p.find("split");
            split_words = !s || s->as_bool(where);
            const io::json_value* scheme = p.find("prepend_scheme");
            const io::json_value* aps = p.find("add_prefix_space");
            dummy_prefix = scheme ? scheme->as_string(where) != "never" : (!aps || aps->as_bool(where));
        } else {
            fail(where, ": pre_tokenizer type '", type, "' at offset ", p.offset(), " is not supported");
        }
    };
    if (const io::json_value* p = doc.find("pre_tokenizer"); p && !p->is_null()) pre_tokenizer(*p, pre_tokenizer);

    bool replaces_space = false;
    auto normalizer = [&](const io::json_value& n, auto&& self) -> void {
        const std::string_view type = detail::type_of(n, where);
        if (type == "Sequence") {
            for (const io::json_value& q : n.at("normalizers", where).as_array(where)) self(q, self);
        } else if (type == "Prepend" && n.at("prepend", where).as_string(where) == "\xe2\x96\x81") {
            dummy_prefix = true;
        } else if (type == "Replace" && n.at("content", where).as_string(where) == "\xe2\x96\x81" &&
                   n.at("pattern", where).find("String") && n.at("pattern", where).at("String", where).as_string(where) == " ") {
            replaces_space = true;
        } else {
            fail(where, ": normalizer '", type, "' at offset ", n.offset(), " is not supported");
        }
    };
    if (const io::json_value* n = doc.find("normalizer"); n && !n->is_null()) normalizer(*n, normalizer);

    std::string bytes;
    if (byte_level) {
        check(pre.has_value(), where, ": ByteLevel without a regex split is not supported");
        check(!replaces_space && !metaspace, where, ": mixes ByteLevel with Metaspace-style normalisation");
        byte_bpe_spec spec;
        spec.name = where;
        spec.pre = *pre;
        spec.ignore_merges = ignore_merges;
        detail::bytes_map ids, special_texts;
        ids.reserve(vocab.size());
        for (const special_token& s : specials) special_texts.insert(s.text, s.id);
        for (const auto& [piece, v] : vocab) {
            const auto id = static_cast<std::uint32_t>(v.as_int(where + ": model.vocab", 0, byte_bpe::max_token_id));
            if (special_texts.find(piece) == id) continue;  // kept as a special only (e.g. GPT-2's <|endoftext|>)
            check(detail::vocab_string_to_bytes(piece, bytes), where, ": model.vocab piece '", piece, "' at offset ", v.offset(),
                  " is not a byte-level string");
            ids.insert(piece, id);
            spec.tokens.emplace_back(bytes, id);
        }
        for (const io::json_value& m : merges) {
            const auto [l, r] = detail::merge_strings(m, where + ": model.merges");
            const std::uint32_t a = ids.find(l), b = ids.find(r);
            check(a != detail::bytes_map::npos && b != detail::bytes_map::npos, where, ": merge '", l, " ", r, "' at offset ",
                  m.offset(), " uses a piece that is not in model.vocab");
            spec.merges.emplace_back(a, b);
        }
        spec.specials = std::move(specials);
        return byte_bpe(std::move(spec));
    }
    check(replaces_space || metaspace, where,
          ": neither ByteLevel nor SentencePiece-style (Metaspace, or Replace ' ' -> U+2581) pre-processing; not supported");
    sp_bpe_spec spec;
    spec.name = where;
    spec.byte_fallback = byte_fallback;
    spec.add_dummy_prefix = dummy_prefix;
    spec.split_words = split_words;
    detail::bytes_map ids;
    ids.reserve(vocab.size());
    for (const auto& [piece, v] : vocab) {
        const auto id = static_cast<std::uint32_t>(v.as_int(where + ": model.vocab", 0, byte_bpe::max_token_id));
        ids.insert(piece, id);
        spec.pieces.emplace_back(piece, id);
    }
    if (const io::json_value* u = model.find("unk_token"); u && !u->is_null()) {
        const std::uint32_t id = ids.find(u->as_string(where));
        check(id != detail::bytes_map::npos, where, ": model.unk_token '", u->as_string(where), "' is not in model.vocab");
        spec.unk = id;
    }
    for (const io::json_value& m : merges) {
        const auto [l, r] = detail::merge_strings(m, where + ": model.merges");
        const std::uint32_t a = ids.find(l), b = ids.find(r);
        check(a != detail::bytes_map::npos && b != detail::bytes_map::npos, where, ": merge '", l, " ", r, "' at offset ",
              m.offset(), " uses a piece that is not in model.vocab");
        spec.merges.emplace_back(a, b);
    }
    check(!spec.merges.empty(), where, ": model.merges is empty");
    spec.specials = std::move(specials);
    return sp_bpe(std::move(spec));
}

/// Parses the text of a tokenizer.json and builds its tokenizer (see hf_tokenizer_from_document).
/// Example: `auto tok = llm::tokenizer::hf_tokenizer_from_json(text, "tokenizer.json");`
inline any_bpe hf_tokenizer_from_json(std::string_view text, std::string_view source) {
    return hf_tokenizer_from_document(io::parse_json(text, source), source);
}

/// Loads a Hugging Face tokenizer.json (see hf_tokenizer_from_document). Files over
/// max_vocab_file_bytes (256 MiB) raise llm::error before they are read.
/// Example: `auto tok = llm::tokenizer::load_hf_tokenizer("tokenizer.json");`
inline any_bpe load_hf_tokenizer(const std::string& path) {
    return hf_tokenizer_from_json(io::read_file(path, max_vocab_file_bytes, "load_hf_tokenizer"), path);
}

}  // namespace llm::tokenizer
