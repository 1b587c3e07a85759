// SPDX-License-Identifier: Apache-2.0
// Converting a Hugging Face checkpoint directory to a GGUF file in llama.cpp's layout, as its
// convert_hf_to_gguf.py writes it (metadata keys, tensor names, the Q/K row permutation of the
// "llama" architecture, GPT-2's transposed Conv1D weights, Mixtral's stacked experts, Mamba's
// A = -exp(A_log), tokenizer.ggml.* from tokenizer.json), in f32, f16, bf16 or a block type.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/generate/gguf_model.hpp>
#include <llm/generate/load.hpp>
#include <llm/io/file.hpp>
#include <llm/io/gguf.hpp>
#include <llm/io/json.hpp>
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>
#include <llm/quant/quant.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numbers>
#include <optional>
#include <span>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::generate {

/// Options of convert_hf_to_gguf.
struct convert_options {
    /// The type of the 2-D weight matrices (1-D tensors stay f32, as llama.cpp's script keeps
    /// them): f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K ... q6_K. A matrix whose rows
    /// are not a whole number of blocks falls back as llama.cpp does (q4_K -> q5_0, q5_K -> q5_1,
    /// q6_K -> q8_0, q2_K / q3_K -> q4_0, then f16).
    io::ggml_type type = io::ggml_type::f16;
    /// tokenizer.json to take the vocabulary from ("": HF_DIR/tokenizer.json when present; no
    /// tokenizer.ggml.* keys otherwise).
    std::string tokenizer{};
    /// general.name ("": the directory's name).
    std::string name{};
};

/// What convert_hf_to_gguf wrote: tensors, their bytes before (fp32) and after, the file type.
struct convert_stats {
    std::size_t tensors = 0;        ///< tensors written
    std::uint64_t f32_bytes = 0;    ///< their size in fp32
    std::uint64_t bytes = 0;        ///< their size as written
    std::string architecture;       ///< general.architecture
};

namespace detail {

template <class F>
std::vector<std::byte> encode_as(std::span<const float> x) {
    std::vector<std::byte> out(x.size() / F::block_size * sizeof(typename F::block));
    quant::quantize<F>(x, std::span<typename F::block>(reinterpret_cast<typename F::block*>(out.data()), x.size() / F::block_size));
    return out;
}

// x in ggml type t (x.size() a multiple of t's block size).
inline std::vector<std::byte> encode_tensor(io::ggml_type t, std::span<const float> x) {
    switch (t) {
        case io::ggml_type::q4_0: return encode_as<quant::q4_0>(x);
        case io::ggml_type::q4_1: return encode_as<quant::q4_1>(x);
        case io::ggml_type::q5_0: return encode_as<quant::q5_0>(x);
        case io::ggml_type::q5_1: return encode_as<quant::q5_1>(x);
        case io::ggml_type::q8_0: return encode_as<quant::q8_0>(x);
        case io::ggml_type::q2_k: return encode_as<quant::q2_k>(x);
        case io::ggml_type::q3_k: return encode_as<quant::q3_k>(x);
        case io::ggml_type::q4_k: return encode_as<quant::q4_k>(x);
        case io::ggml_type::q5_k: return encode_as<quant::q5_k>(x);
        case io::ggml_type::q6_k: return encode_as<quant::q6_k>(x);
        case io::ggml_type::f32: {
            std::vector<std::byte> out(x.size() * 4);
            std::memcpy(out.data(), x.data(), out.size());
            return out;
        }
        case io::ggml_type::f16:
        case io::ggml_type::bf16: {
            std::vector<std::byte> out(x.size() * 2);
            for (std::size_t i = 0; i < x.size(); ++i) {
                const std::uint16_t b = t == io::ggml_type::f16 ? f16(x[i]).bits() : bf16(x[i]).bits();
                std::memcpy(out.data() + 2 * i, &b, 2);
            }
            return out;
        }
        default: llm::fail("convert_hf_to_gguf: type ", io::ggml_type_name(t), " is not written");
    }
}

// convert_hf_to_gguf.py's LlamaModel.permute: within each head of width hd, GGUF row 2j + s is
// Hugging Face row s * hd / 2 + j (the inverse of unpermute_rows).
inline void permute_rows(std::span<float> w, std::size_t rows, std::size_t cols, std::size_t heads) {
    const std::size_t hd = rows / heads, half = hd / 2;
    const std::vector<float> tmp(w.begin(), w.end());
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t s = 0; s < 2; ++s) {
            for (std::size_t j = 0; j < half; ++j) {
                std::memcpy(w.data() + (h * hd + 2 * j + s) * cols, tmp.data() + (h * hd + s * half + j) * cols, cols * sizeof(float));
            }
        }
    }
}

inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    llm::check(in.good(), "convert_hf_to_gguf: cannot read ", path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The vocabulary of a tokenizer.json as tokenizer.ggml.* (convert_hf_to_gguf.py's
// _set_vocab_gpt2 for byte-level BPE; _set_vocab_llama_hf's layout for byte-fallback BPE).
// Special token ids as gguf-py's SpecialVocab sets them: tokenizer_config.json's tokens first,
// then the model's config.json `X_token_id` for the types still unset.
inline void add_tokenizer(io::gguf_writer& w, const std::string& path, std::size_t vocab, model::family fam, const std::string& model_config) {
    const std::string text = read_text(path);
    const io::json_value doc = io::parse_json(text, path);
    const io::json_value& mdl = doc.at("model", "tokenizer.json model");
    llm::check(mdl.at("type", "model.type").as_string("model.type") == "BPE", "convert_hf_to_gguf: ", path, ": model.type '",
               mdl.at("type", "model.type").as_string("model.type"), "' is not supported (BPE only)");
    const io::json_value* fb = mdl.find("byte_fallback");
    const bool byte_fallback = fb != nullptr && fb->is_bool() && fb->as_bool("model.byte_fallback");
    std::vector<std::string> tokens(vocab);
    std::vector<bool> have(vocab, false);
    std::vector<std::int32_t> types(vocab, 1);  // NORMAL
    for (const auto& [tok, id] : mdl.at("vocab", "model.vocab").as_object("model.vocab")) {
        const auto i = static_cast<std::size_t>(id.as_int("model.vocab id", 0, static_cast<std::int64_t>(vocab) - 1));
        tokens[i] = tok;
        have[i] = true;
        if (byte_fallback && tok.size() == 6 && tok.starts_with("<0x") && tok.ends_with(">")) types[i] = 6;  // BYTE
    }
    std::map<std::string, std::size_t, std::less<>> special_ids;
    if (const io::json_value* added = doc.find("added_tokens"); added != nullptr && added->is_array()) {
        for (const io::json_value& a : added->as_array("added_tokens")) {
            const auto i = static_cast<std::size_t>(a.at("id", "added_tokens").as_int("added_tokens id", 0, static_cast<std::int64_t>(vocab) - 1));
            tokens[i] = a.at("content", "added_tokens").as_string("added_tokens content");
            have[i] = true;
            const io::json_value* sp = a.find("special");
            types[i] = sp != nullptr && sp->is_bool() && sp->as_bool("added_tokens special") ? 3 : 4;  // CONTROL : USER_DEFINED
            special_ids[tokens[i]] = i;
        }
    }
    for (std::size_t i = 0; i < vocab; ++i) {
        if (!have[i]) {
            tokens[i] = "[PAD" + std::to_string(i) + "]";
            types[i] = 5;  // UNUSED
        }
    }
    if (byte_fallback) {
        w.add("tokenizer.ggml.model", "llama");
        w.add("tokenizer.ggml.pre", "default");
        w.add_array("tokenizer.ggml.tokens", tokens);
        const std::vector<float> scores(vocab, -1000.0f);
        w.add_array("tokenizer.ggml.scores", scores);
        w.add_array("tokenizer.ggml.token_type", types);
    } else {
        // the pre-tokenizer: GPT-2's regex alone, or the Split regex of Qwen2 / Llama 3
        const io::json_value* pre = doc.find("pre_tokenizer");
        const bool split = pre != nullptr && pre->is_object() && pre->at("type", "pre_tokenizer").as_string("pre_tokenizer.type") == "Sequence";
        const char* pre_name = !split ? "gpt-2" : fam == model::family::qwen2 ? "qwen2" : "llama-bpe";
        w.add("tokenizer.ggml.model", "gpt2");
        w.add("tokenizer.ggml.pre", pre_name);
        w.add_array("tokenizer.ggml.tokens", tokens);
        w.add_array("tokenizer.ggml.token_type", types);
        std::vector<std::string> merges;
        if (const io::json_value* ms = mdl.find("merges"); ms != nullptr && ms->is_array()) {
            for (const io::json_value& m : ms->as_array("model.merges")) {
                if (m.is_string()) {
                    merges.emplace_back(m.as_string("model.merges"));
                } else {
                    const auto& pair = m.as_array("model.merges");
                    llm::check(pair.size() == 2, "convert_hf_to_gguf: ", path, ": a merge is not a pair");
                    merges.push_back(pair[0].as_string("model.merges") + " " + pair[1].as_string("model.merges"));
                }
            }
        }
        w.add_array("tokenizer.ggml.merges", merges);
    }
    // special tokens and add_bos / add_eos from tokenizer_config.json, as gguf-py's SpecialVocab
    static constexpr std::pair<const char*, const char*> special[] = {
        {"bos", "tokenizer.ggml.bos_token_id"}, {"eos", "tokenizer.ggml.eos_token_id"},     {"unk", "tokenizer.ggml.unknown_token_id"},
        {"sep", "tokenizer.ggml.seperator_token_id"}, {"pad", "tokenizer.ggml.padding_token_id"}, {"mask", "tokenizer.ggml.mask_token_id"}};
    std::set<std::string, std::less<>> set_ids;  // the special-token keys tokenizer_config.json gave
    const auto cfg_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(cfg_path)) {
        const std::string ctext = read_text(cfg_path.string());
        const io::json_value c = io::parse_json(ctext, cfg_path.string());
        auto token_of = [&](const char* key) -> const io::json_value* {
            const io::json_value* v = c.find(key);
            if (v == nullptr) return nullptr;
            if (v->is_object()) v = v->find("content");
            return v != nullptr && v->is_string() ? v : nullptr;
        };
        for (const auto& [typ, gkey] : special) {
            const std::string key = std::string(typ) + "_token";
            if (const io::json_value* t = token_of(key.c_str())) {
                if (const auto it = special_ids.find(t->as_string(key)); it != special_ids.end()) {
                    w.add<std::uint32_t>(gkey, static_cast<std::uint32_t>(it->second));
                    set_ids.insert(gkey);
                }
            }
        }
        for (const auto& [key, gkey] : {std::pair{"add_bos_token", "tokenizer.ggml.add_bos_token"},
                                        std::pair{"add_eos_token", "tokenizer.ggml.add_eos_token"}}) {
            if (const io::json_value* v = c.find(key); v != nullptr && v->is_bool()) w.add<bool>(gkey, v->as_bool(key));
        }
    }
    if (std::filesystem::exists(model_config)) {
        const std::string mtext = read_text(model_config);
        const io::json_value m = io::parse_json(mtext, model_config);
        for (const auto& [typ, gkey] : special) {
            const std::string key = std::string(typ) + "_token_id";
            const io::json_value* v = m.find(key);
            if (set_ids.contains(gkey) || v == nullptr || !v->is_number()) continue;
            const std::int64_t id = v->as_int(model_config + ": " + key, 0, std::int64_t{1} << 40);
            if (static_cast<std::uint64_t>(id) < vocab) w.add<std::uint32_t>(gkey, static_cast<std::uint32_t>(id));  // else skipped, as SpecialVocab
        }
    }
}

}  // namespace detail

namespace detail {

// convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors: per frequency, the divisor llama3
// scaling applies (1 kept, factor, or the band's interpolation), in the script's arithmetic:
// torch float32 tensors, a python scalar divided by a tensor as the tensor's reciprocal times the
// scalar. Each step is an f32 operation, written as the double operation rounded to float (for
// +, -, *, / of floats that is the correctly rounded f32 result, and no FMA contraction can
// reach across the roundings), so the factors equal the script's bit for bit (checked against
// torch 1.13 for 1200 factors: theta 1e4 / 5e5 / 1e6, head_dim 8 / 64 / 128, four scalings).
inline std::vector<float> llama3_rope_factors(const model::rope_config& r, std::size_t head_dim) {
    const auto f = [](double x) { return static_cast<float>(x); };
    const double low_wavelen = r.original_max_position / r.low_freq_factor, high_wavelen = r.original_max_position / r.high_freq_factor;
    std::vector<float> out(head_dim / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const float e = f(static_cast<double>(f(static_cast<double>(2 * i))) / static_cast<double>(f(static_cast<double>(head_dim))));
        const float freq = f(1.0 / static_cast<double>(f(std::pow(static_cast<double>(f(r.theta)), static_cast<double>(e)))));
        const float wavelen = f(static_cast<double>(f(1.0 / static_cast<double>(freq))) * static_cast<double>(f(2.0 * std::numbers::pi)));
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = f(r.factor);
        } else {
            float a = f(static_cast<double>(f(1.0 / static_cast<double>(wavelen))) * static_cast<double>(f(r.original_max_position)));
            a = f(static_cast<double>(a) - static_cast<double>(f(r.low_freq_factor)));
            const float smooth = f(static_cast<double>(a) / static_cast<double>(f(r.high_freq_factor - r.low_freq_factor)));
            float b = f(1.0 - static_cast<double>(smooth));
            b = f(static_cast<double>(b) / static_cast<double>(f(r.factor)));
            b = f(static_cast<double>(b) + static_cast<double>(smooth));
            out[i] = f(1.0 / static_cast<double>(b));
        }
    }
    return out;
}

// The GGUF file of the Hugging Face checkpoint `dir` opened as the model M (convert_hf_to_gguf's body).
template <class M>
convert_stats convert_model(const std::string& dir, const std::string& out, const convert_options& opt, const model::hf_config& cfg,
                            const std::string& arch, std::uint32_t file_type) {
    const model::dims& d = cfg.dims;
    const M m(d);
    auto params = m.template make_params<float>();
    model::load_safetensors(params, hf_weights_path(dir));
    const bool gpt2 = arch == "gpt2";

    io::gguf_writer w;
    w.add("general.architecture", arch);
    w.add("general.type", "model");
    w.add("general.name", opt.name.empty() ? std::filesystem::path(dir).lexically_normal().filename().string() : opt.name);
    const auto u32 = [](std::size_t v) { return static_cast<std::uint32_t>(v); };
    if (arch == "mamba") {
        // MambaModel.set_gguf_parameters: an arbitrary 2^20 context, no FFN and no heads, the SSM sizes
        w.add<std::uint32_t>(arch + ".context_length", 1u << 20);
        w.add<std::uint32_t>(arch + ".embedding_length", u32(d.d_model));
        w.add<std::uint32_t>(arch + ".feed_forward_length", 0);
        w.add<std::uint32_t>(arch + ".attention.head_count", 0);
        w.add<std::uint32_t>(arch + ".block_count", u32(d.n_layers));
        w.add<std::uint32_t>(arch + ".ssm.conv_kernel", u32(cfg.ssm.conv));
        w.add<std::uint32_t>(arch + ".ssm.inner_size", u32(d.ff()));
        w.add<std::uint32_t>(arch + ".ssm.state_size", u32(cfg.ssm.state));
        w.add<std::uint32_t>(arch + ".ssm.time_step_rank", u32(cfg.ssm.dt_rank));
        w.add<float>(arch + ".attention.layer_norm_rms_epsilon", d.norm_eps);
        w.add<bool>(arch + ".ssm.dt_b_c_rms", false);
    } else {
        w.add<std::uint32_t>(arch + ".block_count", u32(d.n_layers));
        w.add<std::uint32_t>(arch + ".context_length", u32(d.max_seq));
        w.add<std::uint32_t>(arch + ".embedding_length", u32(d.d_model));
        w.add<std::uint32_t>(arch + ".feed_forward_length", u32(d.ff()));
        w.add<std::uint32_t>(arch + ".attention.head_count", u32(d.n_heads));
    }
    if (gpt2) {
        // GPT2Model.set_gguf_parameters: no kv heads, no RoPE, a LayerNorm epsilon
        w.add<float>(arch + ".attention.layer_norm_epsilon", d.norm_eps);
    } else if (arch != "mamba") {
        w.add<std::uint32_t>(arch + ".attention.head_count_kv", u32(d.kv_heads()));
        w.add<float>(arch + ".rope.freq_base", static_cast<float>(d.rope.theta));
        w.add<float>(arch + ".attention.layer_norm_rms_epsilon", d.norm_eps);
        if (d.n_experts != 0) {
            w.add<std::uint32_t>(arch + ".expert_count", u32(d.n_experts));
            w.add<std::uint32_t>(arch + ".expert_used_count", u32(d.experts_per_token));
        }
        if (d.head_dim != 0) {
            w.add<std::uint32_t>(arch + ".attention.key_length", u32(d.head_width()));
            w.add<std::uint32_t>(arch + ".attention.value_length", u32(d.head_width()));
        }
        if (d.rope.scaling == model::rope_scaling_kind::linear) {
            w.add(arch + ".rope.scaling.type", "linear");
            w.add<float>(arch + ".rope.scaling.factor", static_cast<float>(d.rope.factor));
        }
    }
    w.add<std::uint32_t>("general.file_type", file_type);
    if (arch == "llama") {
        w.add<std::uint32_t>("llama.vocab_size", u32(d.vocab));
        w.add<std::uint32_t>("llama.rope.dimension_count", u32(d.head_width()));
    }
    w.add<std::uint32_t>("general.quantization_version", 2);
    std::string tok = opt.tokenizer;
    if (tok.empty() && std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json")) {
        tok = (std::filesystem::path(dir) / "tokenizer.json").string();
    }
    // MambaModel.set_vocab lists the vocabulary rounded up to a multiple of 8 (pad_vocab_size_multiple)
    const std::size_t listed = arch == "mamba" ? (d.vocab + 7) / 8 * 8 : d.vocab;
    if (!tok.empty()) add_tokenizer(w, tok, listed, cfg.family, (std::filesystem::path(dir) / "config.json").string());

    convert_stats st;
    st.architecture = arch;
    std::vector<std::vector<std::byte>> kept;  // the writer keeps spans until write()
    kept.reserve(4 + 16 * d.n_layers);
    // f32: 1-D tensors, and the router and position table (convert_hf_to_gguf.py keeps FFN_GATE_INP and POS_EMBD in f32)
    auto put = [&](const std::string& name, std::span<const float> x, std::vector<std::uint64_t> shape, bool f32 = false) {
        const io::ggml_type t = shape.size() >= 2 && !f32 ? quant::fitting_type(opt.type, shape.back()) : io::ggml_type::f32;
#if defined(LLM_NO_EXCEPTIONS)
        kept.push_back(encode_tensor(t, x));  // an error prints and aborts anyway
#else
        try {
            kept.push_back(encode_tensor(t, x));
        } catch (const llm::error& e) {
            llm::fail("convert_hf_to_gguf: tensor '", name, "': ", e.what());
        }
#endif
        w.add_tensor(name, t, shape, kept.back());
        ++st.tensors;
        st.f32_bytes += x.size() * 4;
        st.bytes += kept.back().size();
    };
    if (d.rope.scaling == model::rope_scaling_kind::llama3) {
        const std::vector<float> factors = llama3_rope_factors(d.rope, d.head_width());
        put("rope_freqs.weight", factors, {factors.size()});
    }
    std::vector<float> tmp;
    params.for_each_param([&](std::string_view name, auto& t) {
        const gguf_slot slot = gguf_slot_of(name);
        std::span<float> x(t.data(), t.size());
        std::vector<std::uint64_t> shape;
        for (std::size_t r = 0; r < t.rank(); ++r) shape.push_back(t.extent(r));
        if (slot.expert != static_cast<std::size_t>(-1)) {
            // Mixtral: the layer's experts go out stacked, [experts, rows, cols], when its last one is visited
            if constexpr (requires { std::get<0>(params.layers)[0].ffn.w1; }) {
                if (slot.expert + 1 == d.n_experts && name.ends_with("w3.weight")) {
                    const std::size_t layer = std::stoul(slot.name.substr(4, slot.name.find('.', 4) - 4));
                    const auto& ffn = std::get<0>(params.layers)[layer].ffn;
                    const std::string blk = "blk." + std::to_string(layer) + ".";
                    put(blk + "ffn_gate_exps.weight", std::span<const float>(ffn.w1.data(), ffn.w1.size()), {d.n_experts, d.ff(), d.d_model});
                    put(blk + "ffn_down_exps.weight", std::span<const float>(ffn.w2.data(), ffn.w2.size()), {d.n_experts, d.d_model, d.ff()});
                    put(blk + "ffn_up_exps.weight", std::span<const float>(ffn.w3.data(), ffn.w3.size()), {d.n_experts, d.ff(), d.d_model});
                }
            }
            return;
        }
        if (slot.transposed && t.rank() == 2) {
            // GPT-2's Conv1D weight [in, out] goes out as [out, in] (GPT2Model.modify_tensors)
            const std::size_t in = t.extent(0), outs = t.extent(1);
            tmp.resize(t.size());
            for (std::size_t i = 0; i < in; ++i) {
                for (std::size_t o = 0; o < outs; ++o) tmp[o * in + i] = x[i * outs + o];
            }
            put(slot.name, tmp, {outs, in});
            return;
        }
        if (arch == "llama" && t.rank() == 2 && (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight"))) {
            permute_rows(x, t.extent(0), t.extent(1), name.ends_with("q_proj.weight") ? d.n_heads : d.kv_heads());
        }
        if (slot.squeezed) shape = {t.extent(0), t.size() / t.extent(0)};  // Mamba's conv1d [d_inner, 1, k] as [d_inner, k]
        if (slot.negated_exp) {
            // MambaModel.modify_tensors: A = -exp(A_log), here exp in double rounded to float;
            // torch's vectorised float exp (SLEEF, 1 ulp) differs from it in the last bit
            // for about 10% of values, which depend on the CPU that ran the script anyway
            tmp.resize(t.size());
            for (std::size_t i = 0; i < x.size(); ++i) tmp[i] = -static_cast<float>(std::exp(static_cast<double>(x[i])));
            x = tmp;
        }
        // kept in f32 as the script keeps them: the router, the position table, Mamba's conv1d and
        // every tensor whose name does not end in ".weight" (Mamba's ssm_a)
        const bool f32 = slot.name.ends_with("ffn_gate_inp.weight") || slot.name == "position_embd.weight" ||
                         slot.name.ends_with("ssm_conv1d.weight") || !slot.name.ends_with(".weight");
        put(slot.name, x, std::move(shape), f32);
    });
    w.write(out);
    return st;
}

}  // namespace detail


/// Converts the Hugging Face directory `dir` (config.json, model.safetensors or a sharded index,
/// tokenizer.json) to the GGUF file `out` as llama.cpp's convert_hf_to_gguf.py writes it:
/// Llama and Mistral as architecture "llama" (Q and K rows permuted for ggml's interleaved
/// RoPE; Llama 3 frequency scaling as the `rope_freqs.weight` factors), Qwen2 as "qwen2",
/// Mixtral as "llama" with `llama.expert_count` / `.expert_used_count`, the router as
/// `blk.N.ffn_gate_inp.weight` (f32) and each layer's experts stacked into
/// `blk.N.ffn_gate_exps` / `ffn_down_exps` / `ffn_up_exps.weight` ([experts, rows, cols]), GPT-2
/// as "gpt2" (`position_embd.weight` f32, `attn_qkv`, `attn_output`, `ffn_up`, `ffn_down` with
/// the Conv1D weights transposed to [out, in], LayerNorm biases, `gpt2.attention.layer_norm_epsilon`);
/// the keys `ARCH.block_count`, `.context_length`, `.embedding_length`, `.feed_forward_length`,
/// `.attention.head_count(_kv)`, `.rope.freq_base`, `.attention.layer_norm_rms_epsilon`,
/// `general.file_type`, `general.quantization_version` and tokenizer.ggml.* from tokenizer.json;
/// names `token_embd.weight`, `blk.N.attn_q.weight`, ... Weight matrices get `opt.type`, 1-D
/// tensors stay f32. Mamba goes out as "mamba" (MambaModel's keys: `mamba.ssm.conv_kernel`,
/// `.ssm.inner_size`, `.ssm.state_size`, `.ssm.time_step_rank`, `.ssm.dt_b_c_rms` = false, a
/// context of 2^20; `blk.N.ssm_in` / `ssm_conv1d` (squeezed to [d_inner, k], f32) / `ssm_x` /
/// `ssm_dt` / `ssm_out.weight`, `ssm_a` holding A = -exp(A_log) (f32), `ssm_d`; the vocabulary
/// listed to a multiple of 8); its SSM sizes must be llm::model::mamba<>'s. Other families and
/// options without a GGUF form are llm::error naming them. The file is written atomically.
/// Example: `llm::generate::convert_hf_to_gguf("tiny-llama", "tiny.gguf", {.type = llm::io::ggml_type::q8_0});`
inline convert_stats convert_hf_to_gguf(const std::string& dir, const std::string& out, const convert_options& opt = {}) {
    const char* fn = "convert_hf_to_gguf";
    const auto cfg = model::from_hf_config((std::filesystem::path(dir) / "config.json").string());
    llm::check(cfg.family == model::family::llama || cfg.family == model::family::mistral || cfg.family == model::family::qwen2 ||
                   cfg.family == model::family::gpt2 || cfg.family == model::family::mixtral || cfg.family == model::family::mamba,
               fn, ": ", dir, ": architecture '", cfg.architecture, "' is not converted (Llama, Mistral, Qwen2, GPT-2, Mixtral and Mamba are)");
    const std::optional<std::uint32_t> file_type = quant::llama_file_type(opt.type);
    llm::check(file_type.has_value(), fn, ": type ", io::ggml_type_name(opt.type), " is not written (no llama.cpp file type)");
    const model::dims& d = cfg.dims;
    llm::check(!d.qk_norm && d.attn_softcap == 0.0f, fn, ": ", dir, ": q/k norms and attention soft-capping have no form in llama.cpp's llama / qwen2");
    if (cfg.family == model::family::gpt2) {
        return detail::convert_model<model::gpt2<>>(dir, out, opt, cfg, "gpt2", *file_type);
    }
    if (cfg.family == model::family::mixtral) {
        return detail::convert_model<moe::mixtral<>>(dir, out, opt, cfg, "llama", *file_type);
    }
    if (cfg.family == model::family::mamba) {
        // the SSM sizes must be those llm::model::mamba<> holds (state 16, conv 4, dt rank ceil(d_model / 16))
        const std::string config = (std::filesystem::path(dir) / "config.json").string();
        model::mamba_dims_from_hf_config_text(detail::read_text(config), config);
        return detail::convert_model<model::mamba<>>(dir, out, opt, cfg, "mamba", *file_type);
    }
    return detail::convert_model<model::llama<>>(dir, out, opt, cfg, cfg.family == model::family::qwen2 ? "qwen2" : "llama", *file_type);
}

}  // namespace llm::generate
