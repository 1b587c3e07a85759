// SPDX-License-Identifier: Apache-2.0
// Residual add y = x + residual, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/nn/detail/elementwise.hpp>
#include <llm/nn/detail/rows.hpp>

#include <cstddef>

namespace llm::nn {

/// y = x + residual. Shapes: y, x, residual [rows, cols] (> 0, rows contiguous); y may alias
/// either input. Elements: fp32 or bf16 (a bf16 sum is rounded once, from the fp32 sum).
/// S: SIMD backend. exec: an llm::parallel::policy (sequential{} or a thread_pool).
/// Example: `llm::nn::residual_add(h, attn_out, h, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> R>
void residual_add(Y&& y, X&& x, R&& residual, parallel::policy auto&& exec) {
    constexpr const char* fn = "residual_add";
    detail::elementwise<S>(
        fn, exec, [](auto a, auto b) { return S::add(a, b); }, detail::rows_of(fn, "y", y), detail::rows_of(fn, "x", x),
        detail::rows_of(fn, "residual", residual));
}

/// residual_add on llm::parallel::default_pool(). Example: `llm::nn::residual_add(h, attn_out, h);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> R>
void residual_add(Y&& y, X&& x, R&& residual) {
    residual_add<S>(y, x, residual, parallel::default_pool());
}

/// Backward of residual_add: the gradient flows unchanged to both inputs, accumulated
/// (dx += dy, dresidual += dy) so a residual stream's gradient sums its branches in place.
/// Shapes: dx, dresidual, dy [rows, cols]; dx and dresidual must not alias each other or dy.
/// Example: `llm::nn::residual_add_backward(d_attn, d_h, dy, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_dense_view<2> DR, dense_view<2> DY>
void residual_add_backward(DX&& dx, DR&& dresidual, DY&& dy, parallel::policy auto&& exec) {
    constexpr const char* fn = "residual_add_backward";
    const auto d = detail::rows_of(fn, "dy", dy);
    const auto dxr = detail::rows_of(fn, "dx", dx);
    const auto drr = detail::rows_of(fn, "dresidual", dresidual);
    detail::elementwise<S>(fn, exec, [](auto a, auto b) { return S::add(a, b); }, dxr, dxr, d);
    detail::elementwise<S>(fn, exec, [](auto a, auto b) { return S::add(a, b); }, drr, drr, d);
}

/// residual_add_backward on llm::parallel::default_pool().
/// Example: `llm::nn::residual_add_backward(d_attn, d_h, dy);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_dense_view<2> DR, dense_view<2> DY>
void residual_add_backward(DX&& dx, DR&& dresidual, DY&& dy) {
    residual_add_backward<S>(dx, dresidual, dy, parallel::default_pool());
}

}  // namespace llm::nn
