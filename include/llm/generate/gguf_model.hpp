// SPDX-License-Identifier: Apache-2.0
// Opening a GGUF model in llama.cpp's layout (convert_hf_to_gguf.py's names, metadata and the
// permuted Q/K rows of the "llama" architecture) as a model family with run-time dims: Llama 2 / 3
// (rope_freqs.weight), Mistral, Qwen2, GPT-2, Mixtral and Mamba.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/io/gguf.hpp>
#include <llm/model/mamba_family.hpp>
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/any_matrix.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tensor/storage.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <span>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::generate {

/// A GGUF model's architecture ("llama", "qwen2", "gpt2", "mamba"), family and dims read from its metadata.
struct gguf_config {
    std::string architecture;  ///< general.architecture
    model::family family{};    ///< llama (architecture "llama"), mixtral ("llama" with llama.expert_count), qwen2, gpt2 or mamba
    model::dims dims{};        ///< sizes and options
    model::ssm_sizes ssm{};    ///< family::mamba: state, conv and dt-rank sizes (mamba.ssm.*)
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

// Where a Hugging Face parameter lives in a GGUF file: the tensor's name; for one of Mixtral's
// experts, its index in the stacked [experts, rows, cols] tensor; for GPT-2's Conv1D weights
// ([in, out] in Hugging Face), transposed ([out, in] in the file, as convert_hf_to_gguf.py's
// GPT2Model writes them).
struct gguf_slot {
    std::string name;                                                 // the GGUF tensor
    std::size_t expert = static_cast<std::size_t>(-1);                // Mixtral: the expert, or -1
    bool transposed = false;                                          // GPT-2 Conv1D weights
    bool stacked = false;                                             // Mixtral: every expert's rows (quantized params)
    bool squeezed = false;                                            // Mamba's conv1d.weight: [d_inner, 1, k] here, [d_inner, k] there
    bool negated_exp = false;                                         // Mamba's A_log: the file holds A = -exp(A_log)
};

// "PREFIX.N.rest" as {"N", "rest"} (rest empty when nothing follows N); nothing when hf does not
// start with prefix.
inline std::optional<std::pair<std::string, std::string_view>> split_layer(std::string_view hf, std::string_view prefix) {
    if (!hf.starts_with(prefix)) return std::nullopt;
    hf.remove_prefix(prefix.size());
    const std::size_t dot = hf.find('.');
    return std::pair<std::string, std::string_view>{std::string(hf.substr(0, dot)),
                                                    dot == std::string_view::npos ? std::string_view{} : hf.substr(dot + 1)};
}

inline gguf_slot gguf_slot_of(std::string_view hf) {
    if (hf == "model.embed_tokens.weight" || hf == "transformer.wte.weight" || hf == "backbone.embeddings.weight") return {"token_embd.weight"};
    if (hf == "transformer.wpe.weight") return {"position_embd.weight"};
    if (hf == "model.norm.weight" || hf == "transformer.ln_f.weight" || hf == "backbone.norm_f.weight") return {"output_norm.weight"};
    if (hf == "transformer.ln_f.bias") return {"output_norm.bias"};
    if (hf == "lm_head.weight") return {"output.weight"};
    if (const auto split = split_layer(hf, "transformer.h.")) {
        const auto& [layer, rest] = *split;
        static constexpr std::pair<std::string_view, std::string_view> map[] = {
            {"ln_1.weight", "attn_norm.weight"},        {"ln_1.bias", "attn_norm.bias"},        {"attn.c_attn.weight", "attn_qkv.weight"},
            {"attn.c_attn.bias", "attn_qkv.bias"},      {"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
            {"ln_2.weight", "ffn_norm.weight"},         {"ln_2.bias", "ffn_norm.bias"},         {"mlp.c_fc.weight", "ffn_up.weight"},
            {"mlp.c_fc.bias", "ffn_up.bias"},           {"mlp.c_proj.weight", "ffn_down.weight"}, {"mlp.c_proj.bias", "ffn_down.bias"}};
        for (const auto& [h, g] : map) {
            if (rest == h) return {"blk." + layer + "." + std::string(g), static_cast<std::size_t>(-1), h.ends_with(".weight") && h.find("ln_") != 0};
        }
    }
    if (const auto split = split_layer(hf, "backbone.layers.")) {
        const auto& [layer, rest] = *split;
        static constexpr std::pair<std::string_view, std::string_view> map[] = {
            {"norm.weight", "attn_norm.weight"},           {"mixer.in_proj.weight", "ssm_in.weight"},
            {"mixer.conv1d.weight", "ssm_conv1d.weight"},  {"mixer.conv1d.bias", "ssm_conv1d.bias"},
            {"mixer.x_proj.weight", "ssm_x.weight"},       {"mixer.dt_proj.weight", "ssm_dt.weight"},
            {"mixer.dt_proj.bias", "ssm_dt.bias"},         {"mixer.A_log", "ssm_a"},
            {"mixer.D", "ssm_d"},                          {"mixer.out_proj.weight", "ssm_out.weight"}};
        for (const auto& [h, g] : map) {
            if (rest == h) {
                gguf_slot slot{"blk." + layer + "." + std::string(g)};
                slot.squeezed = h == "mixer.conv1d.weight";
                slot.negated_exp = h == "mixer.A_log";
                return slot;
            }
        }
    }
    if (const auto split = split_layer(hf, "model.layers.")) {
        const auto& [layer, rest] = *split;
        if (rest == "block_sparse_moe.gate.weight") return {"blk." + layer + ".ffn_gate_inp.weight"};
        constexpr std::string_view experts = "block_sparse_moe.experts.";
        if (rest.starts_with(experts)) {
            std::string_view e = rest.substr(experts.size());
            // params<llm::model::quantized>: experts.w1.weight names the whole stacked tensor
            const char* whole = e == "w1.weight" ? "ffn_gate_exps.weight" : e == "w2.weight" ? "ffn_down_exps.weight" : e == "w3.weight" ? "ffn_up_exps.weight" : nullptr;
            if (whole != nullptr) return {"blk." + layer + "." + whole, static_cast<std::size_t>(-1), false, true};
            const std::size_t edot = e.find('.');
            std::size_t index = 0;
            for (const char ch : e.substr(0, edot)) index = index * 10 + static_cast<std::size_t>(ch - '0');
            const std::string_view w = edot == std::string_view::npos ? std::string_view{} : e.substr(edot + 1);
            const char* stacked = w == "w1.weight" ? "ffn_gate_exps.weight" : w == "w2.weight" ? "ffn_down_exps.weight" : w == "w3.weight" ? "ffn_up_exps.weight" : nullptr;
            if (stacked != nullptr) return {"blk." + layer + "." + stacked, index};
        }
        static constexpr std::pair<std::string_view, std::string_view> map[] = {
            {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
            {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
            {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
            {"self_attn.q_proj.bias", "attn_q.bias"},       {"self_attn.k_proj.bias", "attn_k.bias"},
            {"self_attn.v_proj.bias", "attn_v.bias"},       {"self_attn.q_norm.weight", "attn_q_norm.weight"},
            {"self_attn.k_norm.weight", "attn_k_norm.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
            {"mlp.up_proj.weight", "ffn_up.weight"},        {"mlp.down_proj.weight", "ffn_down.weight"}};
        for (const auto& [h, g] : map) {
            if (rest == h) return {"blk." + layer + "." + std::string(g)};
        }
    }
    llm::fail("open_gguf: no GGUF name for parameter '", hf, "'");
}

// The GGUF name of a Hugging Face parameter name (Llama, Qwen2, GPT-2, Mixtral and Mamba structures).
inline std::string gguf_name(std::string_view hf) { return gguf_slot_of(hf).name; }

template <class F>
void dequantize_as(std::span<const std::byte> bytes, std::span<float> out) {
    std::vector<typename F::block> blocks(bytes.size() / sizeof(typename F::block));
    std::memcpy(blocks.data(), bytes.data(), blocks.size() * sizeof(typename F::block));
    quant::dequantize<F>(std::span<const typename F::block>(blocks), out);
}

// Decodes `bytes` of ggml type `type` (tensor `name`) into floats (out.size() elements).
inline void decode_bytes(io::ggml_type type, std::span<const std::byte> bytes, std::span<float> out, std::string_view name) {
    switch (type) {
        case io::ggml_type::f32:
            std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
            return;
        case io::ggml_type::f16:
        case io::ggml_type::bf16: {
            const auto widen = [&](auto f16_tag) {
                for (std::size_t i = 0; i < out.size(); ++i) {
                    std::uint16_t b;
                    std::memcpy(&b, bytes.data() + 2 * i, 2);
                    out[i] = quant::detail::half_to_float<decltype(f16_tag)::value>(b);
                }
            };
            type == io::ggml_type::f16 ? widen(std::true_type{}) : widen(std::false_type{});
            return;
        }
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
        default: llm::fail("open_gguf: tensor '", name, "' has a type this loader does not decode (ggml type ", static_cast<int>(type), ")");
    }
}

// Decodes a tensor's data of any supported type into floats (out.size() elements).
inline void decode_tensor(const io::gguf_file& f, const io::gguf_tensor_info& t, std::span<float> out) {
    decode_bytes(t.type, f.tensor_bytes(t), out, t.name);
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

// The RoPE scaling whose per-frequency divisors are `factors` (rope_freqs.weight: ggml divides
// frequency i, theta^(-2i/d), by factors[i]). convert_hf_to_gguf.py writes them from a Llama 3
// rope_scaling (1 for short wavelengths, `factor` for long ones, 1 / ((1 - s) / factor + s) in the
// band between, s linear in the frequency), so a llama3 rope_config reproduces them: factor is
// the largest divisor, and the band's two edges (inverse frequencies inv_lo < inv_hi) follow from
// the band's divisors (s = (1 / f - 1 / factor) / (1 - 1 / factor) = (inv - inv_lo) / (inv_hi -
// inv_lo)); where too few frequencies fall in the band to fix both edges, any edges between the
// neighbouring kept and divided frequencies give the same divisors. The edges become
// original_max_position = 2 pi / inv_lo, low_freq_factor = 1, high_freq_factor = inv_hi /
// inv_lo. All divisors 1: no scaling; all equal: linear. Every divisor is then checked against
// the fitted rule (relative 1e-5: the file stores them in f32, 6e-8); factors that no Llama 3
// rule gives are llm::error naming the pair.
inline model::rope_config rope_from_factors(std::span<const float> factors, double theta, std::size_t head_dim) {
    const std::size_t n = factors.size();
    llm::check(n == head_dim / 2, "open_gguf: rope_freqs.weight has ", n, " factors, expected head_dim / 2 = ", head_dim / 2);
    std::vector<double> inv(n), f(n);
    double fmax = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        inv[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
        f[i] = factors[i];
        llm::check(std::isfinite(f[i]) && f[i] >= 1.0 - 1e-6, "open_gguf: rope_freqs.weight factor ", i, " = ", f[i],
                   " (the Llama 3 divisors are >= 1)");
        fmax = std::max(fmax, f[i]);
    }
    constexpr double tol = 1e-5;
    auto near = [](double a, double b) { return std::abs(a - b) <= tol * b; };
    model::rope_config r{.theta = theta};
    if (std::all_of(f.begin(), f.end(), [&](double x) { return near(x, 1.0); })) return r;
    r.factor = fmax;
    if (std::all_of(f.begin(), f.end(), [&](double x) { return near(x, fmax); })) {
        r.scaling = model::rope_scaling_kind::linear;
        return r;
    }
    // the band's points (inv, s), the nearest kept frequency above it and divided one below it
    std::vector<std::pair<double, double>> band;
    double kept_min = 0.0, divided_max = 0.0;  // 0: none
    for (std::size_t i = 0; i < n; ++i) {
        if (near(f[i], 1.0)) {
            kept_min = kept_min == 0.0 ? inv[i] : std::min(kept_min, inv[i]);
        } else if (near(f[i], fmax)) {
            divided_max = std::max(divided_max, inv[i]);
        } else {
            band.emplace_back(inv[i], (1.0 / f[i] - 1.0 / fmax) / (1.0 - 1.0 / fmax));
        }
    }
    double lo = 0.0, hi = 0.0;
    if (band.size() >= 2) {
        const auto [a, sa] = band.front();  // the highest frequency of the band
        const auto [b, sb] = band.back();
        const double k = (sa - sb) / (a - b);
        llm::check(k > 0.0, "open_gguf: rope_freqs.weight: the band's factors do not fall with the frequency as Llama 3 scaling's do");
        lo = a - sa / k;
        hi = lo + 1.0 / k;
    } else if (band.size() == 1) {
        const auto [b, sb] = band.front();
        double k = 0.0;  // the steepest of the slopes the neighbours allow, doubled: both edges strictly between them
        if (kept_min != 0.0) k = std::max(k, (1.0 - sb) / (kept_min - b));
        if (divided_max != 0.0) k = std::max(k, sb / (b - divided_max));
        k = k > 0.0 ? 2.0 * k : 1.0 / b;
        lo = b - sb / k;
        hi = lo + 1.0 / k;
    } else {
        lo = divided_max + (kept_min - divided_max) / 3.0;
        hi = divided_max + 2.0 * (kept_min - divided_max) / 3.0;
    }
    llm::check(lo > 0.0 && hi > lo, "open_gguf: rope_freqs.weight: the factors are not those of a Llama 3 rope scaling");
    r.scaling = model::rope_scaling_kind::llama3;
    r.original_max_position = 2.0 * std::numbers::pi / lo;
    r.low_freq_factor = 1.0;
    r.high_freq_factor = hi / lo;
    for (std::size_t i = 0; i < n; ++i) {
        const double g = inv[i] / r.apply(inv[i]);
        llm::check(near(g, f[i]), "open_gguf: rope_freqs.weight factor ", i, " = ", f[i],
                   " is not the Llama 3 scaling the other factors give (", g, ")");
    }
    return r;
}

// The GPT-2 architecture's dims (convert_hf_to_gguf.py's GPT2Model keys).
inline void gpt2_dims(const io::gguf_file& f, model::dims& d) {
    d.d_model = gguf_uint(f, "gpt2.embedding_length");
    llm::check(d.d_model > 0, "open_gguf: gpt2.embedding_length must be > 0");
    d.n_layers = gguf_uint(f, "gpt2.block_count");
    d.n_heads = gguf_uint(f, "gpt2.attention.head_count");
    d.d_ff = gguf_uint(f, "gpt2.feed_forward_length");
    d.norm_eps = f.get<float>("gpt2.attention.layer_norm_epsilon");
    const io::gguf_tensor_info& pos = f.tensor("position_embd.weight");
    llm::check(pos.n_dims == 2 && pos.extent(1) == d.d_model, "open_gguf: position_embd.weight has ", pos.n_dims, " dims and ",
               pos.n_elements, " elements, expected [positions, ", d.d_model, "]");
    d.max_seq = pos.extent(0);
    const std::uint64_t ctx = gguf_uint(f, "gpt2.context_length");
    llm::check(ctx <= d.max_seq, "open_gguf: gpt2.context_length = ", ctx, " exceeds position_embd.weight's ", d.max_seq, " positions");
}

// The Mamba architecture's dims and SSM sizes (convert_hf_to_gguf.py's MambaModel keys), which
// must be llm::model::mamba<>'s (state 16, conv 4, dt rank ceil(d_model / 16)), as open_hf asks.
inline void mamba_dims(const io::gguf_file& f, model::dims& d, model::ssm_sizes& s) {
    d.d_model = gguf_uint(f, "mamba.embedding_length");
    llm::check(d.d_model > 0, "open_gguf: mamba.embedding_length must be > 0");
    d.n_layers = gguf_uint(f, "mamba.block_count");
    d.n_heads = 1;  // Mamba has no heads
    d.d_ff = gguf_uint(f, "mamba.ssm.inner_size");
    d.max_seq = gguf_uint(f, "mamba.context_length");
    d.norm_eps = f.get<float>("mamba.attention.layer_norm_rms_epsilon");
    s.state = gguf_uint(f, "mamba.ssm.state_size");
    s.conv = gguf_uint(f, "mamba.ssm.conv_kernel");
    s.dt_rank = gguf_uint(f, "mamba.ssm.time_step_rank");
    llm::check(!f.find("mamba.ssm.dt_b_c_rms") || !f.get<bool>("mamba.ssm.dt_b_c_rms"),
               "open_gguf: mamba.ssm.dt_b_c_rms = true (RMS norms on dt, B and C, as Falcon-Mamba) is not supported");
    const std::size_t rank = model::mamba_mixer_of<>::rank_for(d.d_model);
    llm::check(s.state == 16 && s.conv == 4 && s.dt_rank == rank, "open_gguf: a mamba file with ssm.state_size ", s.state,
               ", ssm.conv_kernel ", s.conv, ", ssm.time_step_rank ", s.dt_rank, "; generation serves llm::model::mamba<> (16, 4, ",
               rank, ")");
}

}  // namespace detail

/// Reads a GGUF model's architecture and dims from its metadata (llama.cpp's keys:
/// `ARCH.embedding_length`, `.block_count`, `.attention.head_count(_kv)`, `.feed_forward_length`,
/// `.attention.layer_norm_rms_epsilon` (GPT-2: `.attention.layer_norm_epsilon`), `.rope.freq_base`,
/// `.rope.scaling.type` / `.factor` (linear), `.attention.key_length`, `.context_length` (GPT-2:
/// the rows of `position_embd.weight`), `.expert_count` / `.expert_used_count` (Mixtral, under
/// "llama"); the vocabulary from `token_embd.weight`; Llama 3's `rope_freqs.weight` factors as the
/// llama3 RoPE scaling that gives them). Architectures: "llama" (Llama, Mistral; Mixtral when
/// llama.expert_count is set), "qwen2", "gpt2". Unknown architectures, missing keys, RoPE scalings
/// without a form here and sizes the tensors contradict are llm::error naming them.
/// Example: `auto cfg = llm::generate::gguf_model_config(llm::io::gguf_file::open("m.gguf"));`
inline gguf_config gguf_model_config(const io::gguf_file& f) {
    gguf_config c;
    c.architecture = std::string(f.get_string("general.architecture"));
    const std::string& a = c.architecture;
    llm::check(a == "llama" || a == "qwen2" || a == "gpt2" || a == "mamba", "open_gguf: architecture '", a,
               "' is not supported (supported: llama, qwen2, gpt2, mamba)");
    model::dims& d = c.dims;
    if (a == "gpt2") {
        c.family = model::family::gpt2;
        detail::gpt2_dims(f, d);
    } else if (a == "mamba") {
        c.family = model::family::mamba;
        detail::mamba_dims(f, d, c.ssm);
    } else {
        c.family = a == "qwen2" ? model::family::qwen2 : model::family::llama;
        d.d_model = detail::gguf_uint(f, a + ".embedding_length");
        llm::check(d.d_model > 0, "open_gguf: ", a, ".embedding_length must be > 0");
        d.n_layers = detail::gguf_uint(f, a + ".block_count");
        d.n_heads = detail::gguf_uint(f, a + ".attention.head_count");
        d.n_kv_heads = f.find(a + ".attention.head_count_kv") ? detail::gguf_uint(f, a + ".attention.head_count_kv") : d.n_heads;
        d.d_ff = detail::gguf_uint(f, a + ".feed_forward_length");
        d.max_seq = detail::gguf_uint(f, a + ".context_length");
        d.norm_eps = f.get<float>(a + ".attention.layer_norm_rms_epsilon");
        if (f.find(a + ".attention.key_length")) {
            d.head_dim = detail::gguf_uint(f, a + ".attention.key_length");
            llm::check(d.head_dim > 0 && d.head_dim <= d.d_model, "open_gguf: ", a, ".attention.key_length = ", d.head_dim, " must be in [1, ",
                       d.d_model, "]");
            if (f.find(a + ".attention.value_length")) {
                const std::uint64_t v = detail::gguf_uint(f, a + ".attention.value_length");
                llm::check(v == d.head_dim, "open_gguf: ", a, ".attention.value_length = ", v, " differs from key_length = ", d.head_dim);
            }
        }
        if (f.find(a + ".rope.freq_base")) {
            d.rope.theta = f.get<float>(a + ".rope.freq_base");
        }
        if (f.find(a + ".rope.dimension_count")) {
            const std::uint64_t rd = detail::gguf_uint(f, a + ".rope.dimension_count");
            llm::check(rd == d.head_width(), "open_gguf: ", a, ".rope.dimension_count = ", rd, " (partial RoPE) differs from the head width ",
                       d.head_width());
        }
        if (f.find(a + ".rope.scaling.type")) {
            const std::string_view type = f.get_string(a + ".rope.scaling.type");
            llm::check(type == "none" || type == "linear", "open_gguf: ", a, ".rope.scaling.type '", type,
                       "' is not supported (supported: none, linear, and Llama 3's rope_freqs.weight)");
            if (type == "linear") {
                d.rope.scaling = model::rope_scaling_kind::linear;
                d.rope.factor = f.get<float>(a + ".rope.scaling.factor");
                llm::check(d.rope.factor > 0.0, "open_gguf: ", a, ".rope.scaling.factor = ", d.rope.factor, " must be > 0");
            }
        }
        if (const io::gguf_tensor_info* rf = f.find_tensor("rope_freqs.weight")) {
            llm::check(a == "llama", "open_gguf: rope_freqs.weight in a ", a, " file (only the llama architecture's Llama 3 factors are read)");
            llm::check(d.rope.scaling == model::rope_scaling_kind::none, "open_gguf: rope_freqs.weight together with ", a,
                       ".rope.scaling.type linear is not supported");
            llm::check(d.n_heads > 0 && rf->n_dims == 1 && (rf->type == io::ggml_type::f32 || rf->type == io::ggml_type::f16),
                       "open_gguf: rope_freqs.weight must be a 1-D f32 or f16 tensor");
            llm::check(rf->n_elements == d.head_width() / 2, "open_gguf: rope_freqs.weight has ", rf->n_elements,
                       " factors, expected head_dim / 2 = ", d.head_width() / 2);
            std::vector<float> factors(rf->n_elements);
            detail::decode_tensor(f, *rf, factors);
            d.rope = detail::rope_from_factors(factors, d.rope.theta, d.head_width());
        }
        if (a == "llama" && f.find("llama.expert_count") && detail::gguf_uint(f, "llama.expert_count") > 0) {
            c.family = model::family::mixtral;
            d.n_experts = detail::gguf_uint(f, "llama.expert_count");
            d.experts_per_token = detail::gguf_uint(f, "llama.expert_used_count");
        }
    }
    const io::gguf_tensor_info& emb = f.tensor("token_embd.weight");
    llm::check(emb.n_dims == 2 && emb.extent(1) == d.d_model, "open_gguf: token_embd.weight has shape [", emb.extent(0), ", ",
               emb.n_dims == 2 ? emb.extent(1) : 0, "], expected [vocab, ", d.d_model, "]");
    d.vocab = emb.extent(0);
    d.tie_embeddings = f.find_tensor("output.weight") == nullptr;
    // sizes the file's tensors bound (so hostile metadata cannot ask for more memory than the file holds)
    llm::check(d.n_layers <= f.tensors().size(), "open_gguf: ", a, ".block_count = ", d.n_layers, " but the file holds ", f.tensors().size(),
               " tensors");
    if (c.family == model::family::mixtral) {
        const char* exps = "blk.0.ffn_gate_exps.weight";
        const io::gguf_tensor_info* up = f.find_tensor(exps);
        llm::check(up != nullptr, "open_gguf: llama.expert_count = ", d.n_experts, " but the file has no ", exps,
                   " (Mixtral's stacked experts)");
        llm::check(up->n_dims == 3 && up->extent(0) == d.n_experts && up->extent(2) == d.d_model && up->extent(1) == d.d_ff, "open_gguf: ",
                   exps, " has ", up->n_dims, " dims and ", up->n_elements, " elements, expected [expert_count ", d.n_experts,
                   ", feed_forward_length ", d.d_ff, ", embedding_length ", d.d_model, "]");
    } else if (c.family == model::family::mamba) {
        const io::gguf_tensor_info& in = f.tensor("blk.0.ssm_in.weight");
        llm::check(in.n_dims == 2 && in.extent(0) == 2 * d.d_ff && in.extent(1) == d.d_model, "open_gguf: mamba.ssm.inner_size = ", d.d_ff,
                   " does not match blk.0.ssm_in.weight (", in.n_elements, " elements, expected [2 x ", d.d_ff, ", ", d.d_model, "])");
    } else {
        const io::gguf_tensor_info& up = f.tensor("blk.0.ffn_up.weight");
        llm::check(d.d_ff <= up.n_elements / d.d_model && d.d_ff * d.d_model == up.n_elements, "open_gguf: ", a, ".feed_forward_length = ",
                   d.d_ff, " does not match blk.0.ffn_up.weight (", up.n_elements, " elements at embedding_length ", d.d_model, ")");
    }
    d.qkv_bias = a != "gpt2" && f.find_tensor("blk.0.attn_q.bias") != nullptr;
    d.qk_norm = a != "gpt2" && f.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
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
    /// true (the default, as llama.cpp's CPU backend): Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K matrices (stacked
    /// experts too) are repacked at load into 8-row interleaved groups (llm::quant::repack; the
    /// same bytes in number, owned by the opened model instead of mapped), which decode reads at
    /// the memory's speed; bf16 matrices (not stacked experts), where llm::quant::bf16_panels_pay,
    /// into the `vdpbf16ps` GEMM's 64-row panels (llm::quant::pack_bf16_panels), which prefill
    /// then multiplies without packing them per call; f16 matrices, where
    /// llm::quant::f16_panels_pay, into 64-row k-major panels (llm::quant::pack_f16_panels),
    /// which prefill widens with contiguous reads; decode reads both as one stream per panel;
    /// false: every
    /// matrix stays a view of the file's bytes (other fp32 summation order, same bound).
    bool repack = true;
    /// true (the default, as llama.cpp maps with MAP_POPULATE): the whole file is read and mapped
    /// at load (io::gguf_file::prefault), so the first forward pass over weights read in place
    /// (f16, bf16, f32) takes no page faults; false: pages are read as they are first touched.
    bool prefault = true;
    /// The threads that repack / lay out the weights at load (the 8-row groups or 64-row panels of
    /// each matrix shared among them, and with them the first touch of the new memory, most of a
    /// load's time); nullptr (the default): the calling thread alone. The bytes are the same.
    parallel::thread_pool* pool = nullptr;
};

namespace detail {

// The GGUF tensor for parameter `name` of shape t (checked; a Mixtral expert's is the stacked
// [experts, rows, cols] tensor, a GPT-2 Conv1D weight's the transpose).
template <class Tensor>
const io::gguf_tensor_info& gguf_param(const io::gguf_file& file, const std::string& path, std::string_view name, const Tensor& t) {
    const gguf_slot slot = gguf_slot_of(name);
    const std::string& g = slot.name;
    const io::gguf_tensor_info* info = file.find_tensor(g);
    llm::check(info != nullptr, "open_gguf: ", path, " has no tensor '", g, "' (for ", name, ")");
    const std::size_t rank = t.rank();
    if (slot.stacked) {
        // a quantized block's stacked experts: the [experts, rows, cols] tensor as one [experts * rows, cols] matrix
        llm::check(info->n_dims == 3 && rank == 2 && info->extent(0) * info->extent(1) == t.extent(0) && info->extent(2) == t.extent(1),
                   "open_gguf: tensor '", g, "' has the wrong shape (", info->n_dims, " dims, ", info->n_elements, " elements) for ", name,
                   " (", t.extent(0), " stacked rows of ", t.extent(1), ")");
        return *info;
    }
    if (slot.squeezed) {
        // Mamba's conv1d.weight [d_inner, 1, k]: the file's [d_inner, k], the same values in order
        bool fits = false;
        if constexpr (requires { requires std::remove_cvref_t<Tensor>::rank() == 3; }) {
            fits = t.extent(1) == 1 && info->n_dims == 2 && info->extent(0) == t.extent(0) && info->extent(1) == t.extent(2);
        }
        llm::check(fits, "open_gguf: tensor '", g, "' has the wrong shape (", info->n_dims, " dims, ", info->n_elements, " elements) for ",
                   name, " (", t.size(), " elements as [d_inner, 1, k])");
        return *info;
    }
    const bool expert = slot.expert != static_cast<std::size_t>(-1);
    const std::size_t lead = expert ? 1 : 0;  // the stacked tensor's expert dimension
    bool same = info->n_dims == rank + lead && (!expert || slot.expert < info->extent(0));
    for (std::size_t r = 0; same && r < rank; ++r) {
        const std::size_t want = slot.transposed && rank == 2 ? t.extent(1 - r) : t.extent(r);
        same = info->extent(r + lead) == want;
    }
    llm::check(same, "open_gguf: tensor '", g, "' has the wrong shape (", info->n_dims, " dims, ", info->n_elements, " elements) for ",
               name, " (", t.size(), " elements", expert ? " per expert" : "", slot.transposed ? ", transposed" : "", ")");
    return *info;
}

// The bytes of parameter `name` in its tensor `info`: one expert's rows of a stacked tensor.
inline std::span<const std::byte> gguf_param_bytes(const io::gguf_file& file, const io::gguf_tensor_info& info, std::string_view name) {
    const std::span<const std::byte> bytes = file.tensor_bytes(info);
    const gguf_slot slot = gguf_slot_of(name);
    if (slot.expert == static_cast<std::size_t>(-1)) return bytes;
    const std::size_t per = bytes.size() / info.extent(0);
    return bytes.subspan(slot.expert * per, per);
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

// Opens `file` as the model M with fp32 params (every tensor decoded) and calls f(model, params, cfg).
template <class M, class F>
decltype(auto) open_gguf_float(const io::gguf_file& file, const std::string& path, const gguf_config& cfg, F&& f) {
    const M m(cfg.dims);
    const model::dims& d = cfg.dims;
    auto params = m.template make_params<float>();
    std::vector<float> tmp;
    params.for_each_param([&](std::string_view name, auto& t) {
        const io::gguf_tensor_info& info = gguf_param(file, path, name, t);
        std::span<float> out(t.data(), t.size());
        const std::span<const std::byte> bytes = gguf_param_bytes(file, info, name);
        if (t.rank() == 2 && gguf_slot_of(name).transposed) {
            // GPT-2's Conv1D weight [in, out] from the file's [out, in]
            tmp.resize(t.size());
            decode_bytes(info.type, bytes, tmp, info.name);
            const std::size_t in = t.extent(0), outs = t.extent(1);
            for (std::size_t i = 0; i < in; ++i) {
                for (std::size_t o = 0; o < outs; ++o) out[i * outs + o] = tmp[o * in + i];
            }
            return;
        }
        decode_bytes(info.type, bytes, out, info.name);
        if (gguf_slot_of(name).negated_exp) {
            // Mamba's A = -exp(A_log) back to A_log (llama.cpp's graph uses A; our mixer takes A_log)
            for (float& v : out) {
                llm::check(v <= 0.0f, "open_gguf: tensor '", info.name, "' (A = -exp(A_log)) holds ", v, ", not a number <= 0");
                v = std::log(-v);
            }
        }
        if (t.rank() == 2 && permuted_rows(cfg, name)) {
            const std::size_t heads = name.ends_with("q_proj.weight") ? d.n_heads : d.kv_heads();
            unpermute_rows(out, t.extent(0), t.extent(1), heads);
        }
    });
    return std::forward<F>(f)(m, std::as_const(params), cfg);
}

// True for the stacked experts of a quantized MoE block (experts.wI.weight).
inline bool stacked_experts(std::string_view name) { return gguf_slot_of(name).stacked; }

// Opens `file` as the model M (llama<> or mixtral<>) with params<llm::model::quantized> (see
// open_gguf) and calls f(model, params, cfg).
template <class M, class F>
decltype(auto) open_gguf_quantized(const io::gguf_file& file, const std::string& path, const gguf_config& cfg, const gguf_options& opt,
                                   F&& f) {
    const M m(cfg.dims);
    const model::dims& d = cfg.dims;
    auto params = m.template make_params<model::quantized>();
    std::vector<aligned_buffer<std::byte>> owned;  // Q / K rows put back in order, repacked matrices, the head
    // The repacking / panel layout of one matrix on opt.pool's threads, or on this thread.
    auto lay_out = [&](auto&& body) {
        if (opt.pool != nullptr) {
            body(*opt.pool);
        } else {
            body(parallel::sequential{});
        }
    };
    owned.reserve(11 * d.n_layers + 1);
    params.for_each_param([&](std::string_view name, auto& t) {
        const io::gguf_tensor_info& info = gguf_param(file, path, name, t);
        if constexpr (model::is_any_matrix<decltype(t)>) {
            std::span<const std::byte> bytes = file.tensor_bytes(info);
            if (permuted_rows(cfg, name)) {
                const std::size_t heads = name.ends_with("q_proj.weight") ? d.n_heads : d.kv_heads();
                auto& copy = owned.emplace_back(uninitialized, bytes.size());
                unpermute_byte_rows(bytes, std::span<std::byte>(copy.data(), copy.size()), t.extent(0), heads);
                bytes = std::span<const std::byte>(copy.data(), copy.size());
            }
            t = quant::any_matrix(info.type, bytes, t.extent(0), t.extent(1));
            // Stacked experts only when no 8-row group would hold two experts' rows.
            const bool repack = quant::repackable(info.type) &&
                                (!stacked_experts(name) || info.extent(1) % quant::pack_group_rows == 0);
            // bf16 / f16: 64-row panels for the prefill GEMM and the decode GEMV (not for stacked experts).
            const bool bf16_panels = info.type == io::ggml_type::bf16 && !stacked_experts(name) && quant::bf16_panels_pay();
            const bool f16_panels = info.type == io::ggml_type::f16 && !stacked_experts(name) && quant::f16_panels_pay();
            if (opt.repack && (repack || bf16_panels || f16_panels)) {
                // Packed into a new buffer, then swapped in: the Q / K copy is replaced in place.
                aligned_buffer<std::byte>& storage = permuted_rows(cfg, name) ? owned.back() : owned.emplace_back();
                lay_out([&](auto&& exec) {
                    t = bf16_panels  ? quant::pack_bf16_panels(t, storage, exec)
                        : f16_panels ? quant::pack_f16_panels(t, storage, exec)
                                     : quant::repack(t, storage, exec);
                });
            }
        } else {
            decode_tensor(file, info, std::span<float>(t.data(), t.size()));
        }
    });
    if (d.tie_embeddings) {
        const io::gguf_tensor_info& emb = file.tensor("token_embd.weight");
        params.head = quant::any_matrix(emb.type, file.tensor_bytes(emb), d.vocab, d.d_model);
        lay_out([&](auto&& exec) {
            if (opt.repack && quant::repackable(emb.type)) {
                params.head = quant::repack(params.head, owned.emplace_back(), exec);
            } else if (opt.repack && emb.type == io::ggml_type::bf16 && quant::bf16_panels_pay()) {
                params.head = quant::pack_bf16_panels(params.head, owned.emplace_back(), exec);
            } else if (opt.repack && emb.type == io::ggml_type::f16 && quant::f16_panels_pay()) {
                params.head = quant::pack_f16_panels(params.head, owned.emplace_back(), exec);
            }
        });
    }
    return std::forward<F>(f)(m, std::as_const(params), cfg);
}

}  // namespace detail

/// Opens the GGUF model `file` (`path` names it in messages) as its family with its dims and
/// calls f(model, params, config); f is instantiated for every family (as open_hf's). Llama,
/// Mistral and Qwen2 open as llm::model::llama<>: by default (opt.dequantize false, as llama.cpp
/// runs) with params<llm::model::quantized>: the projection matrices (attention q/k/v/o, FFN
/// gate/up/down, the LM head) are llm::quant::any_matrix views of the file's tensor bytes in
/// their stored type (f32, f16, bf16, q4_0 .. q8_0, q2_K .. q6_K; no copy, so `file` must
/// outlive the call's use of them), except the "llama" architecture's Q / K matrices, whose
/// rows convert_hf_to_gguf.py permuted: those are copied once with their rows put back (a row
/// is whole blocks); the LM head of a tied model views token_embd.weight. The norms, biases and
/// the token embedding table are decoded once into fp32. With opt.dequantize, every tensor is
/// decoded into fp32 params<float>. Mixtral ("llama" with llama.expert_count) opens as
/// llm::moe::mixtral<> the same way: params<llm::model::quantized> whose MoE blocks hold each
/// layer's stacked experts (ffn_gate_exps / ffn_up_exps / ffn_down_exps) as three any_matrix
/// views in their stored type (llm::moe::moe_ffn's quantized params), the router fp32; with
/// opt.repack, Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K experts are repacked into 8-row groups when the rows per
/// expert are a multiple of 8 (the packed MoE kernels); with opt.dequantize,
/// fp32 params<float> (each expert's rows taken from the stacked tensors). GPT-2 (architecture
/// "gpt2") opens as llm::model::gpt2<>, always with fp32 params<float>: its GELU MLP takes no
/// quantized matrices, so a quantized file's tensors are decoded at load (the Conv1D weights
/// transposed back). Mamba (architecture "mamba") opens as llm::model::mamba<> with fp32
/// params<float> likewise (A_log taken back from the file's A = -exp(A_log); the file's
/// state_size, conv_kernel and time_step_rank must be mamba<>'s). A missing tensor, one of the
/// wrong shape, an unknown architecture or a truncated file is llm::error naming it.
/// Example: `llm::generate::open_gguf(llm::io::gguf_file::open("m.gguf"), "m.gguf", {}, [](const auto& m, const auto& p, const auto&) { ... });`
template <class F>
decltype(auto) open_gguf(const io::gguf_file& file, const std::string& path, const gguf_options& opt, F&& f) {
    const gguf_config cfg = gguf_model_config(file);
    if (opt.prefault) {
        file.prefault();
    }
    if (cfg.family == model::family::gpt2) {
        return detail::open_gguf_float<model::gpt2<>>(file, path, cfg, std::forward<F>(f));
    }
    if (cfg.family == model::family::mamba) {
        return detail::open_gguf_float<model::mamba<>>(file, path, cfg, std::forward<F>(f));
    }
    if (opt.dequantize) {
        if (cfg.family == model::family::mixtral) {
            return detail::open_gguf_float<moe::mixtral<>>(file, path, cfg, std::forward<F>(f));
        }
        return detail::open_gguf_float<model::llama<>>(file, path, cfg, std::forward<F>(f));
    }
    if (cfg.family == model::family::mixtral) {
        return detail::open_gguf_quantized<moe::mixtral<>>(file, path, cfg, opt, std::forward<F>(f));
    }
    return detail::open_gguf_quantized<model::llama<>>(file, path, cfg, opt, std::forward<F>(f));
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
