// SPDX-License-Identifier: Apache-2.0
// llm::simd::unroll: a loop over compile-time indices, fully unrolled, for register-blocked kernels.
#pragma once

#include <llm/config.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm::simd {

namespace detail {
// The fold lives in a named, force-inlined function rather than an immediately called template
// lambda: GCC 12 left such a lambda out of line in the attention micro-kernel's K loop (56% of
// the forward in a call per step), since the lambda's call operator carries no always_inline.
template <class F, std::size_t... I>
LLM_FORCE_INLINE void unroll_at(F& f, std::index_sequence<I...>) {
    (f(std::integral_constant<std::size_t, I>{}), ...);
}

template <class F, class Seq>
inline constexpr bool invocable_at_each_index = false;
template <class F, std::size_t... I>
inline constexpr bool invocable_at_each_index<F, std::index_sequence<I...>> =
    (std::invocable<F&, std::integral_constant<std::size_t, I>> && ...);
}  // namespace detail

/// F can be called as f(std::integral_constant<std::size_t, I>{}) for every I in [0, N): what
/// llm::simd::unroll<N> requires of its body (a generic lambda `[&](auto i) {...}` usually).
/// F: the body type; N: the trip count.
/// Example: `static_assert(llm::simd::unroll_body<decltype([](auto) {}), 4>);`
template <class F, std::size_t N>
concept unroll_body = detail::invocable_at_each_index<F, std::make_index_sequence<N>>;

/// Calls f(std::integral_constant<std::size_t, I>{}) for I = 0, 1, ..., N - 1, in that order,
/// fully unrolled (a fold expression, no loop): inside f, `i` converts to a constant
/// expression, so `acc[i]` indexes an array of SIMD registers with a constant and the
/// compiler keeps every element in a register (a runtime loop index can force the array to
/// the stack). N = 0 calls nothing. Used by the register-blocked micro-kernels (GEMM,
/// attention tiles) and by the row reductions of <llm/simd/math.hpp> (independent
/// accumulators that hide the latency of a vector add or max).
/// N: the trip count; f: an unroll_body<N> (called as an lvalue).
/// Example: `llm::simd::unroll<4>([&](auto i) { acc[i] = S::fma(a, S::loadu(b + i * S::width), acc[i]); });`
template <std::size_t N, class F>
    requires unroll_body<F, N>
LLM_FORCE_INLINE void unroll(F&& f) {
    detail::unroll_at(f, std::make_index_sequence<N>{});
}

}  // namespace llm::simd
