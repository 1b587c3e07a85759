// SPDX-License-Identifier: Apache-2.0
// The argument concepts of llm::align beyond <llm/tensor/concepts.hpp>: loss scalars, label and mask views, per-sequence views.
#pragma once

#include <llm/tensor/concepts.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm::align {

/// The scalar types the losses and the per-sequence results compute in: float or double
/// (const or not). Logits and their gradients are llm::float_or_bf16 instead.
/// Example: `static_assert(llm::align::float_or_double<const double>);`
template <class T>
concept float_or_double = std::same_as<std::remove_const_t<T>, float> || std::same_as<std::remove_const_t<T>, double>;

/// A view_of_rank R of integral elements (bool included): token labels, a loss mask.
/// Example: `static_assert(llm::align::integer_view<llm::tensor_view<const std::int32_t, llm::dims<2>>, 2>);`
template <class V, std::size_t R>
concept integer_view = view_of_rank<V, R> && std::integral<std::remove_const_t<view_element_t<V>>>;

/// A view_of_rank R of float or double elements: per-sequence log-probs and their gradients.
/// Example: `static_assert(llm::align::float_or_double_view<llm::tensor_view<const double, llm::dims<1>>, 1>);`
template <class V, std::size_t R>
concept float_or_double_view = view_of_rank<V, R> && float_or_double<view_element_t<V>>;

/// A view_of_rank R of float elements (const or not): the per-row log-sum-exp that
/// sequence_logprobs saves for its backward.
/// Example: `static_assert(llm::align::float_view<llm::tensor<float, llm::dims<2>>&, 2>);`
template <class V, std::size_t R>
concept float_view = view_of_rank<V, R> && std::same_as<std::remove_const_t<view_element_t<V>>, float>;

namespace detail {

/// Any view_of_rank R as an llm::tensor_view with its own extents and strides (element type
/// and constness kept), so one code path indexes tensors, views, slices such as
/// logits[:, :-1], and a user's own view types alike.
template <std::size_t R, class V>
    requires view_of_rank<V, R>
auto strided(V& v) {
    std::array<std::size_t, R> e{};
    std::array<std::size_t, R> s{};
    for (std::size_t r = 0; r < R; ++r) {
        e[r] = v.extent(r);
        s[r] = v.stride(r);
    }
    using mapping = layout_strided::mapping<dims<R>>;
    return tensor_view<view_element_t<V>, dims<R>, layout_strided>(v.data(), mapping(dims<R>(e), s));
}

}  // namespace detail

}  // namespace llm::align
