// SPDX-License-Identifier: Apache-2.0
// Opening a GGUF model in llama.cpp's layout (convert_hf_to_gguf.py's names, metadata and the
// permuted Q/K rows of the "llama" architecture) as a model family with run-time dims.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/io/gguf.hpp>
#include <llm/model/model.hpp>
#include <llm/quant/any_matrix.hpp>
#include <llm/quant/quant.hpp>

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::generate {

/// A GGUF model's architecture ("llama", "qwen2"), family and dims read from its metadata.
struct gguf_config {
    std::string architecture;  ///< general.architecture
    model::family family{};    ///< llama (architecture "llama") or qwen2
    model::dims dims{};        ///< sizes and options
};

namespace detail {

inline std::uint64_t gguf_uint(const io::gguf_file& f, const std::string& key) {
    const io::gguf_value& v = f.at(key);
    switch (v.type()) {
        case io::gguf_type::u32: return v.as<std::uint32_t>();
        case io::gguf_type::u64: return v.as<std::uint64_t>();
        case io::gguf_type::i32: {
            const auto x = v.as<std::int32_t>();
            llm::check(x >= 0, "open_gguf: ", key, " = ", x, " must be >= 0");
            return static_cast<std::uint64_t>(x);
        }
        default: llm::fail("open_gguf: ", key, " must be an unsigned integer (it has GGUF type ", static_cast<int>(v.type()), ")");
    }
}

// The GGUF name of a Hugging Face parameter name of the llama structure.
inline std::string gguf_name(std::string_view hf) {
    if (hf == "model.embed_tokens.weight") return "token_embd.weight";
    if (hf == "model.norm.weight") return "output_norm.weight";
    if (hf == "lm_head.weight") return "output.weight";
    constexpr std::string_view layers = "model.layers.";
    if (hf.starts_with(layers)) {
        hf.remove_prefix(layers.size());
        const std::size_t dot = hf.find('.');
        const std::string layer(hf.substr(0, dot));
        const std::string_view rest = hf.substr(dot + 1);
        static constexpr std::pair<std::string_view, std::string_view> map[] = {
            {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
            {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
            {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
            {"self_attn.q_proj.bias", "attn_q.bias"},       {"self_attn.k_proj.bias", "attn_k.bias"},
            {"self_attn.v_proj.bias", "attn_v.bias"},       {"self_attn.q_norm.weight", "attn_q_norm.weight"},
            {"self_attn.k_norm.weight", "attn_k_norm.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
            {"mlp.up_proj.weight", "ffn_up.weight"},        {"mlp.down_proj.weight", "ffn_down.weight"}};
        for (const auto& [h, g] : map) {
            if (rest == h) return "blk." + layer + "." + std::string(g);
        }
    }
    llm::fail("open_gguf: no GGUF name for parameter '", hf, "'");
}

template <class F>
void dequantize_as(std::span<const std::byte> bytes, std::span<float> out) {
    std::vector<typename F::block> blocks(bytes.size() / sizeof(typename F::block));
    std::memcpy(blocks.data(), bytes.data(), blocks.size() * sizeof(typename F::block));
    quant::dequantize<F>(std::span<const typename F::block>(blocks), out);
}

// Decodes a tensor's data of any supported type into floats (out.size() elements).
inline void decode_tensor(const io::gguf_file& f, const io::gguf_tensor_info& t, std::span<float> out) {
    const auto bytes = f.tensor_bytes(t);
    switch (t.type) {
        case io::ggml_type::f32:
            std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
            return;
        case io::ggml_type::f16:
            for (std::size_t i = 0; i < out.size(); ++i) {
                std::uint16_t b;
                std::memcpy(&b, bytes.data() + 2 * i, 2);
                out[i] = static_cast<float>(f16::from_bits(b));
            }
            return;
        case io::ggml_type::bf16:
            for (std::size_t i = 0; i < out.size(); ++i) {
                std::uint16_t b;
                std::memcpy(&b, bytes.data() + 2 * i, 2);
                out[i] = static_cast<float>(bf16::from_bits(b));
            }
            return;
        case io::ggml_type::q4_0: return dequantize_as<quant::q4_0>(bytes, out);
        case io::ggml_type::q4_1: return dequantize_as<quant::q4_1>(bytes, out);
        case io::ggml_type::q5_0: return dequantize_as<quant::q5_0>(bytes, out);
        case io::ggml_type::q5_1: return dequantize_as<quant::q5_1>(bytes, out);
        case io::ggml_type::q8_0: return dequantize_as<quant::q8_0>(bytes, out);
        case io::ggml_type::q2_k: return dequantize_as<quant::q2_k>(bytes, out);
        case io::ggml_type::q3_k: return dequantize_as<quant::q3_k>(bytes, out);
        case io::ggml_type::q4_k: return dequantize_as<quant::q4_k>(bytes, out);
        case io::ggml_type::q5_k: return dequantize_as<quant::q5_k>(bytes, out);
        case io::ggml_type::q6_k: return dequantize_as<quant::q6_k>(bytes, out);
        default: llm::fail("open_gguf: tensor '", t.name, "' has a type this loader does not decode (ggml type ", static_cast<int>(t.type), ")");
    }
}

// Undoes convert_hf_to_gguf.py's permute of Q / K rows: within each head of width hd, GGUF row
// 2j + s holds Hugging Face row s * hd / 2 + j.
inline void unpermute_rows(std::span<float> w, std::size_t rows, std::size_t cols, std::size_t heads) {
    const std::size_t hd = rows / heads, half = hd / 2;
    std::vector<float> tmp(w.begin(), w.end());
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t s = 0; s < 2; ++s) {
            for (std::size_t j = 0; j < half; ++j) {
                std::memcpy(w.data() + (h * hd + s * half + j) * cols, tmp.data() + (h * hd + 2 * j + s) * cols, cols * sizeof(float));
            }
        }
    }
}

}  // namespace detail

/// Reads a GGUF model's architecture and dims from its metadata (llama.cpp's keys:
/// `ARCH.embedding_length`, `.block_count`, `.attention.head_count(_kv)`, `.feed_forward_length`,
/// `.attention.layer_norm_rms_epsilon`, `.rope.freq_base`, `.context_length`; the vocabulary from
/// `token_embd.weight`). Unknown architectures and missing keys are llm::error naming them.
/// Example: `auto cfg = llm::generate::gguf_model_config(llm::io::gguf_file::open("m.gguf"));`
inline gguf_config gguf_model_config(const io::gguf_file& f) {
    gguf_config c;
    c.architecture = std::string(f.get_string("general.architecture"));
    const std::string& a = c.architecture;
    llm::check(a == "llama" || a == "qwen2", "open_gguf: architecture '", a, "' is not supported (supported: llama, qwen2)");
    c.family = a == "qwen2" ? model::family::qwen2 : model::family::llama;
    model::dims& d = c.dims;
    d.d_model = detail::gguf_uint(f, a + ".embedding_length");
    llm::check(d.d_model > 0, "open_gguf: ", a, ".embedding_length must be > 0");
    d.n_layers = detail::gguf_uint(f, a + ".block_count");
    d.n_heads = detail::gguf_uint(f, a + ".attention.head_count");
    d.n_kv_heads = f.find(a + ".attention.head_count_kv") ? detail::gguf_uint(f, a + ".attention.head_count_kv") : d.n_heads;
    d.d_ff = detail::gguf_uint(f, a + ".feed_forward_length");
    d.max_seq = detail::gguf_uint(f, a + ".context_length");
    d.norm_eps = f.get<float>(a + ".attention.layer_norm_rms_epsilon");
    if (f.find(a + ".rope.freq_base")) {
        d.rope.theta = f.get<float>(a + ".rope.freq_base");
    }
    llm::check(!f.find_tensor("rope_freqs.weight"), "open_gguf: rope_freqs.weight (Llama 3 rope scaling factors) is not supported");
    const io::gguf_tensor_info& emb = f.tensor("token_embd.weight");
    llm::check(emb.n_dims == 2 && emb.extent(1) == d.d_model, "open_gguf: token_embd.weight has shape [", emb.extent(0), ", ",
               emb.n_dims == 2 ? emb.extent(1) : 0, "], expected [vocab, ", d.d_model, "]");
    d.vocab = emb.extent(0);
    d.tie_embeddings = f.find_tensor("output.weight") == nullptr;
    // sizes the file's tensors bound (so hostile metadata cannot ask for more memory than the file holds)
    llm::check(d.n_layers <= f.tensors().size(), "open_gguf: ", a, ".block_count = ", d.n_layers, " but the file holds ", f.tensors().size(),
               " tensors");
    const io::gguf_tensor_info& up = f.tensor("blk.0.ffn_up.weight");
    llm::check(d.d_ff <= up.n_elements / d.d_model && d.d_ff * d.d_model == up.n_elements, "open_gguf: ", a, ".feed_forward_length = ",
               d.d_ff, " does not match blk.0.ffn_up.weight (", up.n_elements, " elements at embedding_length ", d.d_model, ")");
    d.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    d.qk_norm = f.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
    d.validate("open_gguf");
    return c;
}

/// Options of open_gguf.
/// Example: `llm::generate::open_gguf("m.gguf", {.dequantize = true}, [](const auto& m, const auto& p, const auto&) { ... });`
struct gguf_options {
    /// false (the default, as llama.cpp): the weight matrices stay in the file's type, as
    /// llm::quant::any_matrix views of the memory map (params<llm::model::quantized>); true: every
    /// tensor is decoded into fp32 params<float> (exact reference arithmetic, 4-8x the bytes).
    bool dequantize = false;
};

namespace detail {

// The GGUF tensor for parameter `name` of shape t (checked).
template <class Tensor>
const io::gguf_tensor_info& gguf_param(const io::gguf_file& file, const std::string& path, std::string_view name, const Tensor& t) {
    const std::string g = gguf_name(name);
    const io::gguf_tensor_info* info = file.find_tensor(g);
    llm::check(info != nullptr, "open_gguf: ", path, " has no tensor '", g, "' (for ", name, ")");
    const std::size_t rank = t.rank();
    bool same = info->n_dims == rank;
    for (std::size_t r = 0; same && r < rank; ++r) {
        same = info->extent(r) == t.extent(r);
    }
    llm::check(same, "open_gguf: tensor '", g, "' has the wrong shape (", info->n_dims, " dims, ", info->n_elements, " elements) for ",
               name, " (", t.size(), " elements)");
    return *info;
}

// True for the Q / K projections whose rows convert_hf_to_gguf.py permutes (architecture "llama").
inline bool permuted_rows(const gguf_config& cfg, std::string_view name) {
    return cfg.architecture == "llama" && (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight"));
}

// unpermute_rows on whole rows of bytes (a quantized row is whole blocks): out row h hd + s hd / 2 + j = in row h hd + 2 j + s.
inline void unpermute_byte_rows(std::span<const std::byte> in, std::span<std::byte> out, std::size_t rows, std::size_t heads) {
    const std::size_t rb = in.size() / rows, hd = rows / heads, half = hd / 2;
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t s = 0; s < 2; ++s) {
            for (std::size_t j = 0; j < half; ++j) {
                std::memcpy(out.data() + (h * hd + s * half + j) * rb, in.data() + (h * hd + 2 * j + s) * rb, rb);
            }
        }
    }
}

}  // namespace detail

/// Opens the GGUF model `file` (`path` names it in messages) as llm::model::llama<> with its
/// dims and calls f(model, params, config). By default (opt.dequantize false, as llama.cpp
/// runs) the params are params<llm::model::quantized>: the projection matrices (attention
/// q/k/v/o, FFN gate/up/down, the LM head) are llm::quant::any_matrix views of the file's
/// tensor bytes in their stored type (f32, f16, bf16, q4_0 .. q8_0, q2_K .. q6_K; no copy, so
/// `file` must outlive the call's use of them), except the "llama" architecture's Q / K
/// matrices, whose rows convert_hf_to_gguf.py permuted: those are copied once with their rows
/// put back (a row is whole blocks); the LM head of a tied model views token_embd.weight. The
/// norms, biases and the token embedding table are decoded once into fp32. With
/// opt.dequantize, every tensor is decoded into fp32 params<float>. A missing tensor, one of
/// the wrong shape, an unknown architecture or a truncated file is llm::error naming it.
/// Example: `llm::generate::open_gguf(llm::io::gguf_file::open("m.gguf"), "m.gguf", {}, [](const auto& m, const auto& p, const auto&) { ... });`
template <class F>
decltype(auto) open_gguf(const io::gguf_file& file, const std::string& path, const gguf_options& opt, F&& f) {
    const gguf_config cfg = gguf_model_config(file);
    const model::llama<> m(cfg.dims);
    const model::dims& d = cfg.dims;
    if (opt.dequantize) {
        auto params = m.make_params<float>();
        params.for_each_param([&](std::string_view name, auto& t) {
            const io::gguf_tensor_info& info = detail::gguf_param(file, path, name, t);
            std::span<float> out(t.data(), t.size());
            detail::decode_tensor(file, info, out);
            if (t.rank() == 2 && detail::permuted_rows(cfg, name)) {
                const std::size_t heads = name.ends_with("q_proj.weight") ? d.n_heads : d.kv_heads();
                detail::unpermute_rows(out, t.extent(0), t.extent(1), heads);
            }
        });
        return std::forward<F>(f)(m, std::as_const(params), cfg);
    }
    auto params = m.make_params<model::quantized>();
    std::vector<std::vector<std::byte>> owned;  // the llama architecture's Q / K rows, put back in order
    owned.reserve(2 * d.n_layers);
    params.for_each_param([&](std::string_view name, auto& t) {
        const io::gguf_tensor_info& info = detail::gguf_param(file, path, name, t);
        if constexpr (model::is_any_matrix<decltype(t)>) {
            std::span<const std::byte> bytes = file.tensor_bytes(info);
            if (detail::permuted_rows(cfg, name)) {
                const std::size_t heads = name.ends_with("q_proj.weight") ? d.n_heads : d.kv_heads();
                auto& copy = owned.emplace_back(bytes.size());
                detail::unpermute_byte_rows(bytes, copy, t.extent(0), heads);
                bytes = copy;
            }
            t = quant::any_matrix(info.type, bytes, t.extent(0), t.extent(1));
        } else {
            detail::decode_tensor(file, info, std::span<float>(t.data(), t.size()));
        }
    });
    if (d.tie_embeddings) {
        const io::gguf_tensor_info& emb = file.tensor("token_embd.weight");
        params.head = quant::any_matrix(emb.type, file.tensor_bytes(emb), d.vocab, d.d_model);
    }
    return std::forward<F>(f)(m, std::as_const(params), cfg);
}

/// open_gguf with the default options (weights kept in the file's types).
/// Example: `llm::generate::open_gguf(llm::io::gguf_file::open("m.gguf"), "m.gguf", [](const auto& m, const auto& p, const auto&) { ... });`
template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, gguf_options>)
decltype(auto) open_gguf(const io::gguf_file& file, const std::string& path, F&& f) {
    return open_gguf(file, path, gguf_options{}, std::forward<F>(f));
}

/// Opens the GGUF model at `path` (a read-only memory map, kept open during f): see the
/// gguf_file overload.
/// Example: `llm::generate::open_gguf("model.gguf", {.dequantize = true}, [](const auto& m, const auto& p, const auto& cfg) { ... });`
template <class F>
decltype(auto) open_gguf(const std::string& path, const gguf_options& opt, F&& f) {
    const auto file = io::gguf_file::open(path);
    return open_gguf(file, path, opt, std::forward<F>(f));
}

/// open_gguf with the default options (weights kept in the file's types).
/// Example: `llm::generate::open_gguf("model.gguf", [](const auto& m, const auto& p, const auto& cfg) { ... });`
template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, gguf_options>)
decltype(auto) open_gguf(const std::string& path, F&& f) {
    const auto file = io::gguf_file::open(path);
    return open_gguf(file, path, gguf_options{}, std::forward<F>(f));
}

}  // namespace llm::generate
