// SPDX-License-Identifier: Apache-2.0
// Ready-made model families with Hugging Face names and shapes: Llama, Mistral, Qwen2, GPT-2.
#pragma once

#include <llm/model/attention_mixer.hpp>
#include <llm/model/decoder.hpp>
#include <llm/model/embedding.hpp>
#include <llm/model/ffn.hpp>
#include <llm/model/layer.hpp>
#include <llm/model/norm.hpp>
#include <llm/nn/activations.hpp>

namespace llm::model {

/// A Llama decoder layer (`LlamaDecoderLayer`): RMSNorm, attention (GQA, RoPE; QKV biases,
/// QK-norm, sliding window and soft-cap from the dims), RMSNorm, SwiGLU.
/// Example: `static_assert(llm::model::block_like<llm::model::llama_layer>);`
using llama_layer = residual_layer<rms_norm, attention_mixer<separate_qkv>, swiglu_ffn, llama_layer_names>;

/// The Llama structure (`LlamaForCausalLM`), shared by Mistral and Qwen2, whose differences
/// (sliding window, QKV bias, tied embeddings, RoPE scaling) are dims options.
/// Example: `static_assert(llm::model::decoder_structure<llm::model::llama_structure>);`
using llama_structure = stack<token_embedding<false>, pattern<llama_layer>, rms_norm, llama_names>;

/// Llama 2 / 3 (llama3 RoPE scaling via dims.rope).
/// Example: `llm::model::llama<> m(llm::model::dims{.vocab = 128, .d_model = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .d_ff = 96});`
template <dims_policy D = dynamic_dims>
using llama = decoder<llama_structure, D>;

/// Mistral (`MistralForCausalLM`): Llama with dims.sliding_window.
/// Example: `llm::model::mistral<> m(d);`
template <dims_policy D = dynamic_dims>
using mistral = decoder<llama_structure, D>;

/// Qwen2 (`Qwen2ForCausalLM`): Llama with dims.qkv_bias and, in small sizes, tied embeddings.
/// Example: `llm::model::qwen2<> m(d);`
template <dims_policy D = dynamic_dims>
using qwen2 = decoder<llama_structure, D>;

/// A GPT-2 block (`GPT2Block`): LayerNorm, fused Conv1D attention, LayerNorm, GELU (tanh) MLP.
/// Example: `static_assert(llm::model::block_like<llm::model::gpt2_layer>);`
using gpt2_layer = residual_layer<layer_norm, attention_mixer<gpt2_qkv>, gelu_mlp<nn::gelu_tanh>, gpt2_layer_names>;

/// The GPT-2 structure (`GPT2LMHeadModel`): token and learned position embeddings, GPT-2
/// layers, final LayerNorm, head tied to the token table (dims.tie_embeddings).
/// Example: `static_assert(llm::model::decoder_structure<llm::model::gpt2_structure>);`
using gpt2_structure = stack<token_embedding<true>, pattern<gpt2_layer>, layer_norm, gpt2_names>;

/// GPT-2.
/// Example: `llm::model::gpt2<> m(llm::model::dims{.vocab = 50257, .d_model = 768, .n_layers = 12, .n_heads = 12, .max_seq = 1024, .tie_embeddings = true});`
template <dims_policy D = dynamic_dims>
using gpt2 = decoder<gpt2_structure, D>;

}  // namespace llm::model
