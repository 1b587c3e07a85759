// SPDX-License-Identifier: Apache-2.0
// Tokenizers from GGUF metadata (`tokenizer.ggml.*`), read with llm::io::gguf_file.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/gguf.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/detail/byte_unicode.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/sp_bpe.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::tokenizer {

namespace detail {

// tokenizer.ggml.token_type as ints: any integer array (llama.cpp writes i32), each value a
// known llama.cpp token type (0 undefined ... 6 byte); no float is ever cast to int.
inline std::vector<std::uint8_t> gguf_token_types(const io::gguf_value& v, std::size_t n, const std::string& where) {
    check(v.is_array() && v.size() == n, where, ": offset ", v.offset(), ": 'tokenizer.ggml.token_type' must be an array of ", n,
          " integers, one per token");
    std::vector<std::uint8_t> types(n);
    auto fill = [&](auto array) {
        std::size_t id = 0;
        for (const auto t : array) {
            check(std::cmp_greater_equal(t, 0) && std::cmp_less_equal(t, 6), where, ": offset ", v.offset(), ": 'tokenizer.ggml.token_type' of token ", id, " is ", +t,
                  ", not a token type (0 to 6)");
            types[id++] = static_cast<std::uint8_t>(t);
        }
    };
    switch (v.element_type()) {
    case io::gguf_type::u8: fill(v.as_array<std::uint8_t>()); break;
    case io::gguf_type::i8: fill(v.as_array<std::int8_t>()); break;
    case io::gguf_type::u16: fill(v.as_array<std::uint16_t>()); break;
    case io::gguf_type::i16: fill(v.as_array<std::int16_t>()); break;
    case io::gguf_type::u32: fill(v.as_array<std::uint32_t>()); break;
    case io::gguf_type::i32: fill(v.as_array<std::int32_t>()); break;
    case io::gguf_type::u64: fill(v.as_array<std::uint64_t>()); break;
    case io::gguf_type::i64: fill(v.as_array<std::int64_t>()); break;
    default: fail(where, ": offset ", v.offset(), ": 'tokenizer.ggml.token_type' must be an integer array");
    }
    return types;
}

// tokenizer.ggml.scores: an f32 (or f64) array with one finite score per token.
inline std::vector<float> gguf_scores(const io::gguf_value& v, std::size_t n, const std::string& where) {
    check(v.is_array() && v.size() == n && (v.element_type() == io::gguf_type::f32 || v.element_type() == io::gguf_type::f64), where,
          ": offset ", v.offset(), ": 'tokenizer.ggml.scores' must be an f32 array of ", n, " entries, one per token");
    std::vector<float> scores(n);
    auto fill = [&](auto array) {
        std::size_t id = 0;
        for (const auto x : array) {
            check(std::isfinite(x) && std::abs(x) <= std::numeric_limits<float>::max(), where, ": offset ", v.offset(),
                  ": 'tokenizer.ggml.scores' of token ", id, " is ", x, ", not a finite f32");
            scores[id++] = static_cast<float>(x);
        }
    };
    if (v.element_type() == io::gguf_type::f32) fill(v.as_array<float>());
    else fill(v.as_array<double>());
    return scores;
}

}  // namespace detail

/// A tokenizer from the metadata of a parsed GGUF file: `tokenizer.ggml.model` "gpt2"
/// (byte-level BPE with `tokenizer.ggml.merges`; `tokenizer.ggml.pre` picks the pattern: gpt-2,
/// llama-bpe/llama3, gpt-4o) or "llama" (SentencePiece BPE with `tokenizer.ggml.scores` and
/// <0xNN> byte tokens). Control and user-defined tokens (`tokenizer.ggml.token_type` 3 and 4)
/// become specials. Token types must be integers 0..6 and scores finite f32, else llm::error.
/// Example: `auto tok = llm::tokenizer::gguf_tokenizer(llm::io::gguf_file::open("model.gguf"));`
inline any_bpe gguf_tokenizer(const io::gguf_file& file) {
    const std::string& where = file.source();
    auto get = [&](const char* key, io::gguf_type type, bool array) -> const io::gguf_value* {
        const io::gguf_value* v = file.find(key);
        if (v) {
            check(v->is_array() == array && v->element_type() == type, where, ": offset ", v->offset(), ": '", key, "' must be ",
                  array ? "an array of " : "", io::detail::gguf_type_name(type));
        }
        return v;
    };
    const io::gguf_value* model = get("tokenizer.ggml.model", io::gguf_type::string, false);
    check(model != nullptr, where, ": no 'tokenizer.ggml.model' key");
    const io::gguf_value* tokens_value = get("tokenizer.ggml.tokens", io::gguf_type::string, true);
    check(tokens_value != nullptr, where, ": no 'tokenizer.ggml.tokens' array");
    const std::vector<std::string_view> tokens = tokens_value->as_strings().to_vector();
    const auto n = tokens.size();
    check(n > 0 && n <= byte_bpe::max_token_id, where, ": 'tokenizer.ggml.tokens' has ", n, " entries");
    std::vector<std::uint8_t> types(n, 1);  // 1: normal, when the file gives no types
    if (const io::gguf_value* t = file.find("tokenizer.ggml.token_type")) types = detail::gguf_token_types(*t, n, where);
    constexpr int control = 3, user_defined = 4, unused = 5, byte = 6;

    std::vector<special_token> specials;
    for (std::size_t id = 0; id < n; ++id) {
        if (types[id] == control || types[id] == user_defined) specials.push_back({std::string(tokens[id]), static_cast<std::uint32_t>(id)});
    }
    const std::string_view model_name = model->as_string();
    if (model_name == "gpt2") {
        const io::gguf_value* merges = get("tokenizer.ggml.merges", io::gguf_type::string, true);
        check(merges != nullptr, where, ": a gpt2 tokenizer needs 'tokenizer.ggml.merges'");
        const io::gguf_value* pre = get("tokenizer.ggml.pre", io::gguf_type::string, false);
        const std::string pre_name(pre ? pre->as_string() : "gpt-2");
        byte_bpe_spec spec;
        spec.name = where;
        if (pre_name == "gpt-2" || pre_name == "default") spec.pre = pattern::r50k;
        else if (pre_name == "llama-bpe" || pre_name == "llama3") spec.pre = pattern::cl100k;
        else if (pre_name == "gpt-4o") spec.pre = pattern::o200k;
        else fail(where, ": tokenizer.ggml.pre '", pre_name, "' is not supported (gpt-2, llama-bpe, gpt-4o)");
        spec.ignore_merges = spec.pre == pattern::cl100k;  // llama.cpp: Llama 3 vocabularies ignore merges
        detail::bytes_map ids;
        std::string bytes;
        for (std::size_t id = 0; id < n; ++id) {
            const int t = types[id];
            if (t == control || t == user_defined || t == unused) continue;
            check(detail::vocab_string_to_bytes(tokens[id], bytes), where, ": token ", id, " '", tokens[id], "' is not a byte-level string");
            ids.insert(tokens[id], static_cast<std::uint32_t>(id));
            spec.tokens.emplace_back(bytes, static_cast<std::uint32_t>(id));
        }
        std::size_t r = 0;
        for (const std::string_view m : merges->as_strings()) {
            const std::size_t sp = m.find(' ');
            check(sp != std::string_view::npos && m.find(' ', sp + 1) == std::string_view::npos, where, ": merge ", r, " '", m,
                  "' is not 'left right'");
            const std::uint32_t a = ids.find(m.substr(0, sp)), b = ids.find(m.substr(sp + 1));
            check(a != detail::bytes_map::npos && b != detail::bytes_map::npos, where, ": merge ", r, " '", m, "' uses an unknown token");
            spec.merges.emplace_back(a, b);
            ++r;
        }
        spec.specials = std::move(specials);
        return byte_bpe(std::move(spec));
    }
    if (model_name == "llama") {
        const io::gguf_value* scores = file.find("tokenizer.ggml.scores");
        check(scores != nullptr, where, ": a llama tokenizer needs one 'tokenizer.ggml.scores' entry per token");
        sp_bpe_spec spec;
        spec.name = where;
        spec.scores = detail::gguf_scores(*scores, n, where);
        bool has_bytes = false;
        for (std::size_t id = 0; id < n; ++id) {
            const int t = types[id];
            if (t == control || t == user_defined || t == unused) continue;
            has_bytes = has_bytes || t == byte;
            spec.pieces.emplace_back(std::string(tokens[id]), static_cast<std::uint32_t>(id));
        }
        spec.byte_fallback = has_bytes;
        if (const io::gguf_value* unk = file.find("tokenizer.ggml.unknown_token_id")) {
            const auto id = unk->as_integer<std::int64_t>();
            check(id >= 0 && static_cast<std::uint64_t>(id) < n, where, ": offset ", unk->offset(), ": unknown_token_id ", id, " is out of range");
            spec.unk = static_cast<std::uint32_t>(id);
        }
        if (const io::gguf_value* asp = get("tokenizer.ggml.add_space_prefix", io::gguf_type::boolean, false)) spec.add_dummy_prefix = asp->as<bool>();
        spec.specials = std::move(specials);
        return sp_bpe(std::move(spec));
    }
    fail(where, ": tokenizer.ggml.model '", model_name, "' is not supported (gpt2, llama)");
}

/// A tokenizer from GGUF bytes already in memory (see the gguf_file overload); `source` names
/// them in error messages. Example: `auto tok = llm::tokenizer::gguf_tokenizer(bytes, "model.gguf");`
inline any_bpe gguf_tokenizer(std::string_view data, std::string_view source) {
    return gguf_tokenizer(io::gguf_file::parse(data, std::string(source)));
}

/// Loads the tokenizer of a GGUF file (see gguf_tokenizer). The file is memory-mapped and read
/// once: only the pages holding the metadata and tensor infos are touched, not the weights.
/// Example: `auto tok = llm::tokenizer::load_gguf_tokenizer("model.gguf");`
inline any_bpe load_gguf_tokenizer(const std::string& path) { return gguf_tokenizer(io::gguf_file::open(path)); }

}  // namespace llm::tokenizer
