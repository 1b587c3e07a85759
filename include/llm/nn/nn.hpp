// SPDX-License-Identifier: Apache-2.0
// Umbrella header of the NN primitives: softmax, norms, activations, embedding, cross-entropy, RoPE, residual add.
#pragma once

#include <llm/nn/activations.hpp>
#include <llm/nn/concepts.hpp>
#include <llm/nn/cross_entropy.hpp>
#include <llm/nn/embedding.hpp>
#include <llm/nn/layernorm.hpp>
#include <llm/nn/linear.hpp>
#include <llm/nn/loss_options.hpp>
#include <llm/nn/residual.hpp>
#include <llm/nn/rmsnorm.hpp>
#include <llm/nn/rope.hpp>
#include <llm/nn/rope_config.hpp>
#include <llm/nn/softmax.hpp>
