// SPDX-License-Identifier: Apache-2.0
// The concepts every kernel signature uses for its tensor arguments, written once: views of a rank, their element types, fp32-or-bf16.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/tensor/accessor.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm {

/// A rank-R strided view: llm::tensor_view or llm::tensor of rank R with any layout, or any
/// type with the same members (data() returning a pointer, extent(r), stride(r) in elements,
/// static rank()), whose elements are data()[offset] (llm::direct_access: a tensor_view
/// through another accessor, e.g. over quantized blocks, is not one). Every public kernel takes its tensor arguments as `view_of_rank<R> auto&&`
/// (docs/conventions.md), so a view, an lvalue tensor and a user's own view type all work.
/// Example: `static_assert(llm::view_of_rank<llm::tensor_view<const float, llm::dims<2>>, 2>);`
template <class V, std::size_t R>
concept view_of_rank = requires(V& v) {
    { v.data() };
    { v.extent(0) } -> std::convertible_to<std::size_t>;
    { v.stride(0) } -> std::convertible_to<std::size_t>;
    requires std::remove_cvref_t<V>::rank() == R;
} && std::is_pointer_v<decltype(std::declval<V&>().data())> && direct_access<V>;

/// The element type a view_of_rank addresses, const kept (a const owning tensor yields const
/// elements; a view keeps its own element type).
/// Example: `static_assert(std::same_as<llm::view_element_t<const llm::tensor<float, llm::dims<1>>>, const float>);`
template <class V>
using view_element_t = std::remove_pointer_t<decltype(std::declval<V&>().data())>;

/// The storage types of activations, weights and gradients that the dense kernels read and
/// write: fp32 or bf16, const or not (arithmetic is fp32 either way).
/// Example: `static_assert(llm::float_or_bf16<const llm::bf16>);`
template <class T>
concept float_or_bf16 = std::same_as<std::remove_const_t<T>, float> || std::same_as<std::remove_const_t<T>, bf16>;

/// A view_of_rank R holding float_or_bf16 elements: what a dense kernel reads.
/// Example: `void f(llm::dense_view<2> auto&& x);`
template <class V, std::size_t R>
concept dense_view = view_of_rank<V, R> && float_or_bf16<view_element_t<V>>;

/// A dense_view whose elements are writable: what a dense kernel writes (outputs, gradients).
/// Example: `void f(llm::mutable_dense_view<2> auto&& y);`
template <class V, std::size_t R>
concept mutable_dense_view = dense_view<V, R> && !std::is_const_v<view_element_t<V>>;

}  // namespace llm
