// SPDX-License-Identifier: Apache-2.0
// A tiny Llama-shaped GGUF file in memory (architecture "llama", Q / K rows permuted as
// convert_hf_to_gguf.py writes them), its matrices in one ggml type: the quantized-inference tests' model.
#pragma once

#include <llm/generate/convert.hpp>
#include <llm/generate/gguf_model.hpp>
#include <llm/io/gguf.hpp>
#include <llm/model/model.hpp>

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

/// The GGUF bytes of a seeded random tiny llama (weights normal(0, 0.05), norms 1) with every
/// matrix (token_embd included) in `type` and the 1-D tensors in f32.
inline std::string tiny_quant_gguf(llm::io::ggml_type type, bool tied = false) {
    const llm::model::dims d = tiny_quant_dims(tied);
    const llm::model::llama<> m(d);
    auto p = m.make_params<float>();
    m.init(p, {.seed = 7, .std = 0.05f});
    llm::io::gguf_writer w;
    w.add("general.architecture", "llama");
    w.add<std::uint32_t>("llama.context_length", static_cast<std::uint32_t>(d.max_seq));
    w.add<std::uint32_t>("llama.embedding_length", static_cast<std::uint32_t>(d.d_model));
    w.add<std::uint32_t>("llama.block_count", static_cast<std::uint32_t>(d.n_layers));
    w.add<std::uint32_t>("llama.feed_forward_length", static_cast<std::uint32_t>(d.d_ff));
    w.add<std::uint32_t>("llama.attention.head_count", static_cast<std::uint32_t>(d.n_heads));
    w.add<std::uint32_t>("llama.attention.head_count_kv", static_cast<std::uint32_t>(d.n_kv_heads));
    w.add<float>("llama.attention.layer_norm_rms_epsilon", d.norm_eps);
    w.add<float>("llama.rope.freq_base", 10000.0f);
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

}  // namespace gen_test
