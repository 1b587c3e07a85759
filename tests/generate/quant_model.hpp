// SPDX-License-Identifier: Apache-2.0
// A tiny Llama-shaped GGUF file in memory (architecture "llama", Q / K rows permuted as
// convert_hf_to_gguf.py writes them), its matrices in one ggml type: the quantized-inference tests' model.
#pragma once

#include <llm/generate/convert.hpp>
#include <llm/generate/gguf_model.hpp>
#include <llm/io/gguf.hpp>
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gen_test {

/// The tiny model's dims: K = 256 and 512 (whole K-quant super-blocks), 4 heads of 64, 2 kv heads.
inline llm::model::dims tiny_quant_dims(bool tied) {
    llm::model::dims d{.vocab = 64, .d_model = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .d_ff = 512, .max_seq = 64};
    d.tie_embeddings = tied;
    return d;
}

/// The metadata of architecture "llama" for dims d (sizes, heads, RMSNorm epsilon, RoPE base 10000).
inline void add_llama_keys(llm::io::gguf_writer& w, const llm::model::dims& d) {
    w.add("general.architecture", "llama");
    w.add<std::uint32_t>("llama.context_length", static_cast<std::uint32_t>(d.max_seq));
    w.add<std::uint32_t>("llama.embedding_length", static_cast<std::uint32_t>(d.d_model));
    w.add<std::uint32_t>("llama.block_count", static_cast<std::uint32_t>(d.n_layers));
    w.add<std::uint32_t>("llama.feed_forward_length", static_cast<std::uint32_t>(d.d_ff));
    w.add<std::uint32_t>("llama.attention.head_count", static_cast<std::uint32_t>(d.n_heads));
    w.add<std::uint32_t>("llama.attention.head_count_kv", static_cast<std::uint32_t>(d.n_kv_heads));
    w.add<float>("llama.attention.layer_norm_rms_epsilon", d.norm_eps);
    w.add<float>("llama.rope.freq_base", 10000.0f);
}

/// The GGUF bytes of a seeded random tiny llama (weights normal(0, 0.05), norms 1) with every
/// matrix (token_embd included) in `type` and the 1-D tensors in f32.
inline std::string tiny_quant_gguf(llm::io::ggml_type type, bool tied = false) {
    const llm::model::dims d = tiny_quant_dims(tied);
    const llm::model::llama<> m(d);
    auto p = m.make_params<float>();
    m.init(p, {.seed = 7, .std = 0.05f});
    llm::io::gguf_writer w;
    add_llama_keys(w, d);
    static thread_local std::vector<std::vector<std::byte>> kept;  // the writer keeps spans until to_bytes
    kept.clear();
    kept.reserve(64);
    std::vector<std::pair<std::string, std::vector<std::uint64_t>>> names;
    p.for_each_param([&](std::string_view name, auto& t) {
        std::vector<float> x(t.data(), t.data() + t.size());
        const bool matrix = t.rank() == 2;
        if (matrix && (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight"))) {
            llm::generate::detail::permute_rows(x, t.extent(0), t.extent(1), name.ends_with("q_proj.weight") ? d.n_heads : d.kv_heads());
        }
        const auto tt = matrix ? type : llm::io::ggml_type::f32;
        kept.push_back(llm::generate::detail::encode_tensor(tt, x));
        std::vector<std::uint64_t> shape;
        for (std::size_t r = 0; r < t.rank(); ++r) shape.push_back(t.extent(r));
        w.add_tensor(llm::generate::detail::gguf_name(name), tt, shape, kept.back());
    });
    return w.to_bytes();
}

/// The tiny Mixtral's dims: d_model 64, d_ff 128 (whole Q4_0 / Q8_0 blocks, 16 groups of 8
/// rows per expert), 4 experts, 2 per token, 4 heads of 16, 2 kv heads.
inline llm::model::dims tiny_mixtral_dims(std::size_t d_model = 64, std::size_t d_ff = 128, std::size_t layers = 2,
                                          std::size_t vocab = 64) {
    return {.vocab = vocab, .d_model = d_model, .n_layers = layers, .n_heads = 4, .n_kv_heads = 2, .d_ff = d_ff, .max_seq = 64,
            .n_experts = 4, .experts_per_token = 2};
}

/// The GGUF bytes of a seeded random tiny Mixtral (architecture "llama" with llama.expert_count,
/// as convert_hf_to_gguf writes it: Q / K rows permuted, each layer's experts stacked into
/// ffn_gate_exps / ffn_up_exps / ffn_down_exps [experts, rows, cols], the router ffn_gate_inp
/// f32) with every matrix in `type` and the 1-D tensors in f32.
inline std::string tiny_mixtral_gguf(llm::io::ggml_type type, const llm::model::dims& d = tiny_mixtral_dims()) {
    const llm::moe::mixtral<> m(d);
    auto p = m.make_params<float>();
    m.init(p, {.seed = 11, .std = 0.05f});
    llm::io::gguf_writer w;
    add_llama_keys(w, d);
    w.add<std::uint32_t>("llama.expert_count", static_cast<std::uint32_t>(d.n_experts));
    w.add<std::uint32_t>("llama.expert_used_count", static_cast<std::uint32_t>(d.experts_per_token));
    static thread_local std::vector<std::vector<std::byte>> kept;  // the writer keeps spans until to_bytes
    kept.clear();
    kept.reserve(128);
    auto put = [&](const std::string& name, std::span<const float> x, std::vector<std::uint64_t> shape, llm::io::ggml_type t) {
        kept.push_back(llm::generate::detail::encode_tensor(t, x));
        w.add_tensor(name, t, shape, kept.back());
    };
    p.for_each_param([&](std::string_view name, auto& t) {
        const auto slot = llm::generate::detail::gguf_slot_of(name);
        if (slot.expert != static_cast<std::size_t>(-1)) return;  // stacked below
        std::vector<float> x(t.data(), t.data() + t.size());
        const bool matrix = t.rank() == 2;
        if (matrix && (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight"))) {
            llm::generate::detail::permute_rows(x, t.extent(0), t.extent(1), name.ends_with("q_proj.weight") ? d.n_heads : d.kv_heads());
        }
        std::vector<std::uint64_t> shape;
        for (std::size_t r = 0; r < t.rank(); ++r) shape.push_back(t.extent(r));
        put(slot.name, x, shape, matrix && !slot.name.ends_with("ffn_gate_inp.weight") ? type : llm::io::ggml_type::f32);
    });
    for (std::size_t l = 0; l < d.n_layers; ++l) {
        const auto& ffn = std::get<0>(p.layers)[l].ffn;
        const std::string blk = "blk." + std::to_string(l) + ".";
        put(blk + "ffn_gate_exps.weight", std::span<const float>(ffn.w1.data(), ffn.w1.size()), {d.n_experts, d.d_ff, d.d_model}, type);
        put(blk + "ffn_down_exps.weight", std::span<const float>(ffn.w2.data(), ffn.w2.size()), {d.n_experts, d.d_model, d.d_ff}, type);
        put(blk + "ffn_up_exps.weight", std::span<const float>(ffn.w3.data(), ffn.w3.size()), {d.n_experts, d.d_ff, d.d_model}, type);
    }
    return w.to_bytes();
}

}  // namespace gen_test
