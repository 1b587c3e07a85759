// SPDX-License-Identifier: Apache-2.0
// The element types of a block's parameters: llm::model::quantized, the inference-only parameter kind whose
// weight matrices are llm::quant::any_matrix views (block-quantized, f16, bf16 or f32, e.g. a
// memory-mapped GGUF file's tensors) and whose vectors and tables are fp32.
#pragma once

#include <llm/quant/any_matrix.hpp>
#include <llm/tensor/tensor.hpp>

#include <type_traits>

namespace llm::model {

/// The parameter kind of inference-only params: `model.make_params<llm::model::quantized>()`
/// gives params whose projection matrices (attention q/k/v/o, FFN gate/up/down, the LM head)
/// are llm::quant::any_matrix placeholders (a loader, llm::generate::open_gguf, points them at
/// the file's bytes) and whose norms, biases and embedding tables are fp32 tensors. forward,
/// step and step_tokens take them; backward paths do not (a static_assert names this).
/// Example: `auto p = model.make_params<llm::model::quantized>();`
struct quantized {};

/// The element type of a parameter kind's vectors and tables: T itself, fp32 for quantized.
/// Example: `static_assert(std::same_as<llm::model::scalar_t<llm::model::quantized>, float>);`
template <class T>
using scalar_t = std::conditional_t<std::is_same_v<T, quantized>, float, T>;

/// The type of a parameter kind's weight matrices: llm::tensor<T, dims<2>>, or
/// llm::quant::any_matrix for quantized.
/// Example: `llm::model::matrix_t<float> w(4, 8);`
template <class T>
using matrix_t = std::conditional_t<std::is_same_v<T, quantized>, quant::any_matrix, tensor<T, llm::dims<2>>>;

/// True for llm::quant::any_matrix (after removing references and cv).
/// Example: `static_assert(llm::model::is_any_matrix<const llm::quant::any_matrix&>);`
template <class W>
inline constexpr bool is_any_matrix = std::is_same_v<std::remove_cvref_t<W>, quant::any_matrix>;

}  // namespace llm::model
