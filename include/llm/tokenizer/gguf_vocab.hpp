// SPDX-License-Identifier: Apache-2.0
// Tokenizers from GGUF metadata (`tokenizer.ggml.*`), with a minimal bounds-checked GGUF key-value reader.
#pragma once

#include <llm/core/error.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/detail/byte_unicode.hpp>
#include <llm/tokenizer/detail/read_file.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/sp_bpe.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::tokenizer {

/// One GGUF metadata value. Scalars are widened (integers to int64/uint64, floats to
/// double); arrays of strings or numbers are kept; nested arrays are skipped (`skipped`).
struct gguf_value {
    /// Which member holds the value.
    enum class kind : std::uint8_t {
        integer,           ///< i (and u): signed or narrower unsigned integers
        unsigned_integer,  ///< u (and i): uint64
        real,              ///< f
        boolean,           ///< b
        string,            ///< s
        string_array,      ///< strings
        number_array,      ///< numbers
        skipped            ///< not kept
    };
    kind type = kind::skipped;         ///< which member holds the value
    std::int64_t i = 0;                ///< integer value
    std::uint64_t u = 0;               ///< unsigned integer value
    double f = 0;                      ///< floating-point value
    bool b = false;                    ///< boolean value
    std::string s;                     ///< string value
    std::vector<std::string> strings;  ///< array of strings
    std::vector<double> numbers;       ///< array of numbers, widened
    std::size_t offset = 0;  ///< byte offset of the value in the file
};

/// Reads the header and metadata key-values of a GGUF file (versions 2 and 3), not the
/// tensors. Every count and length is checked against the bytes left before use; errors
/// name `source` and the byte offset.
/// Example: `auto kv = llm::tokenizer::read_gguf_metadata(bytes, "model.gguf"); auto& model = kv.at("tokenizer.ggml.model").s;`
inline std::map<std::string, gguf_value> read_gguf_metadata(std::string_view data, std::string_view source) {
    std::size_t p = 0;
    auto need = [&](std::size_t n, const char* what) {
        check(n <= data.size() - p, source, ": offset ", p, ": truncated ", what, " (needs ", n, " bytes, ", data.size() - p, " left)");
    };
    auto u32 = [&](const char* what) {
        need(4, what);
        std::uint32_t v;
        std::memcpy(&v, data.data() + p, 4);  // GGUF is little-endian, as every host we build for
        p += 4;
        return v;
    };
    auto u64 = [&](const char* what) {
        need(8, what);
        std::uint64_t v;
        std::memcpy(&v, data.data() + p, 8);
        p += 8;
        return v;
    };
    auto str = [&](const char* what) {
        const std::uint64_t n = u64(what);
        check(n <= data.size() - p, source, ": offset ", p - 8, ": ", what, " length ", n, " runs past the end of the file");
        std::string s(data.substr(p, n));
        p += n;
        return s;
    };
    // Size in bytes of a fixed-size scalar type, 0 for strings and arrays, -1 for unknown types.
    auto scalar_size = [](std::uint32_t t) -> int {
        constexpr int sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        return t < 13 ? sizes[t] : -1;
    };
    auto number = [&](std::uint32_t t) -> double {
        const int n = scalar_size(t);
        need(static_cast<std::size_t>(n), "number");
        const char* q = data.data() + p;
        p += static_cast<std::size_t>(n);
        switch (t) {
        case 0: { std::uint8_t v; std::memcpy(&v, q, 1); return v; }
        case 1: { std::int8_t v; std::memcpy(&v, q, 1); return v; }
        case 2: { std::uint16_t v; std::memcpy(&v, q, 2); return v; }
        case 3: { std::int16_t v; std::memcpy(&v, q, 2); return v; }
        case 4: { std::uint32_t v; std::memcpy(&v, q, 4); return v; }
        case 5: { std::int32_t v; std::memcpy(&v, q, 4); return v; }
        case 6: { float v; std::memcpy(&v, q, 4); return v; }
        case 7: return *q != 0;
        case 10: { std::uint64_t v; std::memcpy(&v, q, 8); return static_cast<double>(v); }
        case 11: { std::int64_t v; std::memcpy(&v, q, 8); return static_cast<double>(v); }
        default: { double v; std::memcpy(&v, q, 8); return v; }
        }
    };

    need(4, "magic");
    check(data.substr(0, 4) == "GGUF", source, ": not a GGUF file (magic is not 'GGUF')");
    p = 4;
    const std::uint32_t version = u32("version");
    check(version == 2 || version == 3, source, ": GGUF version ", version, " is not supported (2 or 3)");
    (void)u64("tensor count");
    const std::uint64_t n_kv = u64("key-value count");
    // Each key-value takes at least 12 bytes (key length + type), so a larger count is a lie.
    check(n_kv <= (data.size() - p) / 12, source, ": key-value count ", n_kv, " is larger than the file allows");

    std::map<std::string, gguf_value> kv;
    for (std::uint64_t k = 0; k < n_kv; ++k) {
        std::string key = str("key");
        const std::uint32_t t = u32("value type");
        gguf_value v;
        v.offset = p;
        check(scalar_size(t) >= 0, source, ": offset ", p - 4, ": key '", key, "' has unknown value type ", t);
        if (t == 8) {
            v.type = gguf_value::kind::string;
            v.s = str("string");
        } else if (t == 9) {
            const std::uint32_t et = u32("array element type");
            const std::uint64_t n = u64("array length");
            check(scalar_size(et) >= 0, source, ": offset ", p - 12, ": array '", key, "' has unknown element type ", et);
            // Smallest element: 1 byte for scalars, 8 for strings (the length), 12 for arrays.
            const std::uint64_t min_size = et == 8 ? 8 : et == 9 ? 12 : static_cast<std::uint64_t>(scalar_size(et));
            check(n <= (data.size() - p) / min_size, source, ": offset ", p - 8, ": array '", key, "' length ", n,
                  " runs past the end of the file");
            if (et == 8) {
                v.type = gguf_value::kind::string_array;
                v.strings.reserve(n);
                for (std::uint64_t e = 0; e < n; ++e) v.strings.push_back(str("array string"));
            } else if (et == 9) {
                fail(source, ": offset ", v.offset, ": nested array '", key, "' is not supported");
            } else {
                v.type = gguf_value::kind::number_array;
                v.numbers.reserve(n);
                for (std::uint64_t e = 0; e < n; ++e) v.numbers.push_back(number(et));
            }
        } else {
            const double x = number(t);
            if (t == 7) {
                v.type = gguf_value::kind::boolean;
                v.b = x != 0;
            } else if (t == 6 || t == 12) {
                v.type = gguf_value::kind::real;
                v.f = x;
            } else if (t == 10) {
                v.type = gguf_value::kind::unsigned_integer;
                std::memcpy(&v.u, data.data() + p - 8, 8);  // exact, not through double
                v.i = static_cast<std::int64_t>(v.u);
            } else {
                v.type = gguf_value::kind::integer;
                if (t == 11) std::memcpy(&v.i, data.data() + p - 8, 8);
                else v.i = static_cast<std::int64_t>(x);
                v.u = static_cast<std::uint64_t>(v.i);
            }
        }
        kv[std::move(key)] = std::move(v);
    }
    return kv;
}

/// A tokenizer from GGUF metadata: `tokenizer.ggml.model` "gpt2" (byte-level BPE with
/// `tokenizer.ggml.merges`; `tokenizer.ggml.pre` picks the pattern: gpt-2, llama-bpe/llama3,
/// gpt-4o) or "llama" (SentencePiece BPE with `tokenizer.ggml.scores` and <0xNN> byte tokens).
/// Control and user-defined tokens (`tokenizer.ggml.token_type` 3 and 4) become specials.
/// Example: `auto tok = llm::tokenizer::gguf_tokenizer(bytes, "model.gguf");`
inline any_bpe gguf_tokenizer(std::string_view data, std::string_view source) {
    const auto kv = read_gguf_metadata(data, source);
    const std::string where(source);
    auto get = [&](const char* key, gguf_value::kind k) -> const gguf_value* {
        const auto it = kv.find(key);
        if (it == kv.end()) return nullptr;
        check(it->second.type == k, where, ": offset ", it->second.offset, ": '", key, "' has the wrong type");
        return &it->second;
    };
    const gguf_value* model = get("tokenizer.ggml.model", gguf_value::kind::string);
    check(model != nullptr, where, ": no 'tokenizer.ggml.model' key");
    const gguf_value* tokens = get("tokenizer.ggml.tokens", gguf_value::kind::string_array);
    check(tokens != nullptr, where, ": no 'tokenizer.ggml.tokens' array");
    const auto n = tokens->strings.size();
    check(n > 0 && n <= byte_bpe::max_token_id, where, ": 'tokenizer.ggml.tokens' has ", n, " entries");
    const gguf_value* types = get("tokenizer.ggml.token_type", gguf_value::kind::number_array);
    check(!types || types->numbers.size() == n, where, ": 'tokenizer.ggml.token_type' has ", types ? types->numbers.size() : 0,
          " entries for ", n, " tokens");
    auto type_of = [&](std::size_t id) { return types ? static_cast<int>(types->numbers[id]) : 1; };
    constexpr int control = 3, user_defined = 4, unused = 5;

    std::vector<special_token> specials;
    for (std::size_t id = 0; id < n; ++id) {
        if (type_of(id) == control || type_of(id) == user_defined) specials.push_back({tokens->strings[id], static_cast<std::uint32_t>(id)});
    }
    if (model->s == "gpt2") {
        const gguf_value* merges = get("tokenizer.ggml.merges", gguf_value::kind::string_array);
        check(merges != nullptr, where, ": a gpt2 tokenizer needs 'tokenizer.ggml.merges'");
        const gguf_value* pre = get("tokenizer.ggml.pre", gguf_value::kind::string);
        const std::string pre_name = pre ? pre->s : "gpt-2";
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
            const int t = type_of(id);
            if (t == control || t == user_defined || t == unused) continue;
            check(detail::vocab_string_to_bytes(tokens->strings[id], bytes), where, ": token ", id, " '", tokens->strings[id],
                  "' is not a byte-level string");
            ids.insert(tokens->strings[id], static_cast<std::uint32_t>(id));
            spec.tokens.emplace_back(bytes, static_cast<std::uint32_t>(id));
        }
        for (std::size_t r = 0; r < merges->strings.size(); ++r) {
            const std::string& m = merges->strings[r];
            const std::size_t sp = m.find(' ');
            check(sp != std::string::npos && m.find(' ', sp + 1) == std::string::npos, where, ": merge ", r, " '", m, "' is not 'left right'");
            const std::uint32_t a = ids.find(std::string_view(m).substr(0, sp)), b = ids.find(std::string_view(m).substr(sp + 1));
            check(a != detail::bytes_map::npos && b != detail::bytes_map::npos, where, ": merge ", r, " '", m, "' uses an unknown token");
            spec.merges.emplace_back(a, b);
        }
        spec.specials = std::move(specials);
        return byte_bpe(std::move(spec));
    }
    if (model->s == "llama") {
        const gguf_value* scores = get("tokenizer.ggml.scores", gguf_value::kind::number_array);
        check(scores != nullptr && scores->numbers.size() == n, where, ": a llama tokenizer needs one 'tokenizer.ggml.scores' entry per token");
        sp_bpe_spec spec;
        spec.name = where;
        spec.scores.assign(scores->numbers.begin(), scores->numbers.end());
        bool has_bytes = false;
        for (std::size_t id = 0; id < n; ++id) {
            const int t = type_of(id);
            if (t == control || t == user_defined || t == unused) continue;
            has_bytes = has_bytes || t == 6;
            spec.pieces.emplace_back(tokens->strings[id], static_cast<std::uint32_t>(id));
        }
        spec.byte_fallback = has_bytes;
        if (const gguf_value* unk = get("tokenizer.ggml.unknown_token_id", gguf_value::kind::integer)) {
            check(unk->i >= 0 && static_cast<std::uint64_t>(unk->i) < n, where, ": unknown_token_id ", unk->i, " is out of range");
            spec.unk = static_cast<std::uint32_t>(unk->i);
        }
        if (const gguf_value* asp = get("tokenizer.ggml.add_space_prefix", gguf_value::kind::boolean)) spec.add_dummy_prefix = asp->b;
        spec.specials = std::move(specials);
        return sp_bpe(std::move(spec));
    }
    fail(where, ": tokenizer.ggml.model '", model->s, "' is not supported (gpt2, llama)");
}

/// Loads the tokenizer of a GGUF file (see gguf_tokenizer). Metadata sits at the front of the
/// file, so only its first 64 MiB are read (model files are gigabytes); if the metadata runs
/// past that, the whole file is read.
/// Example: `auto tok = llm::tokenizer::load_gguf_tokenizer("model.gguf");`
inline any_bpe load_gguf_tokenizer(const std::string& path) {
    bool complete = false;
    const std::string head = detail::read_file_prefix(path, "load_gguf_tokenizer", std::size_t{64} << 20, &complete);
    if (!complete) {
        try {
            return gguf_tokenizer(head, path);
        } catch (const llm::error&) {
            // Possibly cut inside the metadata: fall through to the whole file.
        }
    }
    return gguf_tokenizer(detail::read_file(path, "load_gguf_tokenizer"), path);
}

}  // namespace llm::tokenizer
