// SPDX-License-Identifier: Apache-2.0
// Mixtral (MixtralForCausalLM) as a model family: the Llama structure with the MoE FFN block.
#pragma once

#include <llm/model/attention_mixer.hpp>
#include <llm/model/decoder.hpp>
#include <llm/model/embedding.hpp>
#include <llm/model/layer.hpp>
#include <llm/model/norm.hpp>
#include <llm/moe/block.hpp>

namespace llm::moe {

/// A Mixtral decoder layer (`MixtralDecoderLayer`): RMSNorm, attention (GQA, RoPE, sliding
/// window from the dims), RMSNorm, the sparse MoE FFN (softmax top-k, renormalised) with
/// dims.n_experts experts and dims.experts_per_token per token, under
/// `block_sparse_moe.gate.weight` and `block_sparse_moe.experts.E.w1/w2/w3.weight`.
/// Example: `static_assert(llm::model::block_like<llm::moe::mixtral_layer>);`
using mixtral_layer = model::residual_layer<model::rms_norm, model::attention_mixer<model::separate_qkv>, moe_ffn<8, 2>,
                                            mixtral_layer_names>;

/// The Mixtral structure (`MixtralForCausalLM`): token embedding, Mixtral layers, final
/// RMSNorm, LM head, under Llama's names (`model.embed_tokens`, `model.layers.N.`, `lm_head`).
/// Example: `static_assert(llm::model::decoder_structure<llm::moe::mixtral_structure>);`
using mixtral_structure = model::stack<model::token_embedding<false>, model::pattern<mixtral_layer>, model::rms_norm, model::llama_names>;

/// Mixtral: from_hf_config reads a MixtralForCausalLM config.json (family::mixtral) into dims
/// with n_experts and experts_per_token; the loss is the cross-entropy only (transformers'
/// default output_router_logits = false).
/// Example: `auto cfg = llm::model::from_hf_config("config.json"); llm::moe::mixtral<> m(cfg.dims);`
template <model::dims_policy D = model::dynamic_dims>
using mixtral = model::decoder<mixtral_structure, D>;

}  // namespace llm::moe
