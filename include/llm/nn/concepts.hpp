// SPDX-License-Identifier: Apache-2.0
// The argument concepts of the NN kernels beyond the shared dense views: fp32 statistics and gradients, integer index vectors.
#pragma once

#include <llm/tensor/concepts.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm::nn {

/// A rank-R view of fp32 elements, const or not: the per-row statistics a forward saves for
/// its backward (rstd, mean, the log-sum-exp), as the backward reads them.
/// Example: `static_assert(llm::nn::f32_view<const llm::tensor<float, llm::dims<1>>&, 1>);`
template <class V, std::size_t R>
concept f32_view = llm::view_of_rank<V, R> && std::same_as<std::remove_const_t<llm::view_element_t<V>>, float>;

/// An f32_view with writable elements: statistics as a forward writes them, and the fp32
/// parameter gradients a backward accumulates into (dweight, dbias, dtable).
/// Example: `static_assert(llm::nn::mutable_f32_view<llm::tensor<float, llm::dims<1>>&, 1>);`
template <class V, std::size_t R>
concept mutable_f32_view = f32_view<V, R> && !std::is_const_v<llm::view_element_t<V>>;

/// A rank-1 view of integers of any width and signedness: token ids, targets, positions.
/// Example: `static_assert(llm::nn::index_view<llm::tensor<std::int32_t, llm::dims<1>>&>);`
template <class V>
concept index_view = llm::view_of_rank<V, 1> && std::integral<std::remove_const_t<llm::view_element_t<V>>>;

}  // namespace llm::nn
