// SPDX-License-Identifier: Apache-2.0
// llm::model::dims: a model's sizes and options, a structural type (usable as a template argument).
#pragma once

#include <llm/core/error.hpp>
#include <llm/nn/rope_config.hpp>

#include <cmath>
#include <cstddef>

namespace llm::model {

/// How RoPE frequencies are scaled (Hugging Face `rope_scaling.rope_type`).
enum class rope_scaling_kind {
    none,    ///< theta^(-2i/d) unchanged
    linear,  ///< divided by factor (position interpolation)
    llama3,  ///< Llama 3.1: long wavelengths divided by factor, short kept, band interpolated
};

/// RoPE base and scaling, chosen at run time (from config.json) or at compile time (inside a
/// static llm::model::dims); a llm::nn::rope_scaling_policy (apply()), so the nn kernels take it.
/// Example: `llm::model::rope_config r{.theta = 500000.0, .scaling = llm::model::rope_scaling_kind::llama3, .factor = 8.0};`
struct rope_config {
    double theta = 10000.0;                            ///< base of theta^(-2i/d)
    rope_scaling_kind scaling = rope_scaling_kind::none;  ///< the scaling rule
    double factor = 1.0;                               ///< linear and llama3: the divisor
    double low_freq_factor = 1.0;                      ///< llama3
    double high_freq_factor = 4.0;                     ///< llama3
    double original_max_position = 8192.0;             ///< llama3: the pre-training context
    /// The inverse frequency used for an unscaled one (Hugging Face `_compute_llama3_parameters`).
    [[nodiscard]] double apply(double inv_freq) const {
        switch (scaling) {
            case rope_scaling_kind::none:
                return inv_freq;
            case rope_scaling_kind::linear:
                return inv_freq / factor;
            case rope_scaling_kind::llama3:
                return nn::rope_scaling::llama3{.factor = factor,
                                                .low_freq_factor = low_freq_factor,
                                                .high_freq_factor = high_freq_factor,
                                                .original_max_position = original_max_position}
                    .apply(inv_freq);
        }
        return inv_freq;
    }
};

/// A decoder's sizes and per-model options: the same struct serves as a compile-time template
/// argument (`llm::model::static_dims<dims{...}>`, C++20 class-type template argument) and as a
/// run-time value read from a Hugging Face config.json (`llm::model::dynamic_dims`). Zeros in
/// n_kv_heads, head_dim and d_ff mean "the usual": n_heads, d_model / n_heads, 4 * d_model.
/// Example: `constexpr llm::model::dims d{.vocab = 4096, .d_model = 256, .n_layers = 6, .n_heads = 8, .n_kv_heads = 2, .d_ff = 688};`
struct dims {
    std::size_t vocab = 0;          ///< vocabulary size
    std::size_t d_model = 0;        ///< hidden size
    std::size_t n_layers = 0;       ///< decoder layers
    std::size_t n_heads = 0;        ///< query heads
    std::size_t n_kv_heads = 0;     ///< key/value heads (GQA; 0: n_heads)
    std::size_t head_dim = 0;       ///< per-head width (0: d_model / n_heads)
    std::size_t d_ff = 0;           ///< FFN inner width (0: 4 * d_model)
    std::size_t max_seq = 2048;     ///< learned-position table size (GPT-2 n_positions) and RoPE's nominal context
    float norm_eps = 1e-5f;         ///< RMSNorm / LayerNorm epsilon
    rope_config rope{};             ///< RoPE theta and scaling (ignored by learned-position models)
    bool qkv_bias = false;          ///< biases on q/k/v projections (Qwen2)
    bool qk_norm = false;           ///< RMSNorm over each q and k head before RoPE (Qwen3, OLMo 2)
    std::size_t sliding_window = 0; ///< 0: full causal attention; W: each token sees the last W tokens (itself included, Mistral)
    float attn_softcap = 0.0f;      ///< attention logit soft-cap (Gemma 2); 0: off
    bool tie_embeddings = false;    ///< LM head shares the token embedding table
    std::size_t n_experts = 0;      ///< routed experts per MoE FFN (Mixtral num_local_experts; 0: dense FFN)
    std::size_t experts_per_token = 0;  ///< experts each token is routed to (Mixtral num_experts_per_tok)

    /// Key/value heads (n_kv_heads, or n_heads when 0).
    [[nodiscard]] constexpr std::size_t kv_heads() const noexcept { return n_kv_heads != 0 ? n_kv_heads : n_heads; }
    /// Per-head width (head_dim, or d_model / n_heads when 0).
    [[nodiscard]] constexpr std::size_t head_width() const noexcept {
        return head_dim != 0 ? head_dim : (n_heads != 0 ? d_model / n_heads : 0);
    }
    /// FFN inner width (d_ff, or 4 * d_model when 0).
    [[nodiscard]] constexpr std::size_t ff() const noexcept { return d_ff != 0 ? d_ff : 4 * d_model; }

    /// Throws llm::error naming the field when the sizes do not make a model (zero sizes,
    /// heads not a multiple of kv heads, an odd head width with RoPE, d_model not divisible).
    /// Example: `d.validate("from_hf_config");`
    void validate(const char* fn) const {
        llm::check(vocab > 0 && d_model > 0 && n_layers > 0 && n_heads > 0, fn, ": dims need vocab, d_model, n_layers and n_heads > 0 (got ",
                   vocab, ", ", d_model, ", ", n_layers, ", ", n_heads, ")");
        llm::check(kv_heads() > 0 && n_heads % kv_heads() == 0, fn, ": n_heads = ", n_heads,
                   " must be a multiple of n_kv_heads = ", kv_heads());
        llm::check(head_width() > 0 && head_width() % 2 == 0, fn, ": head_dim = ", head_width(), " must be even and > 0");
        llm::check(head_dim != 0 || d_model % n_heads == 0, fn, ": d_model = ", d_model, " is not a multiple of n_heads = ", n_heads);
        llm::check(norm_eps > 0.0f, fn, ": norm_eps = ", norm_eps, " must be > 0");
        llm::check(max_seq > 0, fn, ": max_seq must be > 0");
        llm::check(n_experts == 0 || (experts_per_token > 0 && experts_per_token <= n_experts), fn, ": experts_per_token = ",
                   experts_per_token, " must be in [1, n_experts = ", n_experts, "]");
    }
};

}  // namespace llm::model
