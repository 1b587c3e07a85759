// SPDX-License-Identifier: Apache-2.0
// Residual add y = x + residual, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/nn/detail/elementwise.hpp>
#include <llm/nn/detail/rows.hpp>

#include <cstddef>

namespace llm::nn {

/// y = x + residual. Shapes: x, residual, y [rows, cols] (> 0, rows contiguous); y may alias
/// either input. Elements: fp32 or bf16 (a bf16 sum is rounded once, from the fp32 sum).
/// Example: `llm::nn::residual_add(attn_out, h, h);`
template <simd::backend S = simd::default_backend, class X, class R, class Y, class Exec = parallel::thread_pool>
void residual_add(X&& x, R&& residual, Y&& y, Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "residual_add";
    detail::elementwise<S>(
        fn, exec, [](auto a, auto b) { return S::add(a, b); }, detail::as_rows(fn, "y", y), detail::as_rows(fn, "x", x),
        detail::as_rows(fn, "residual", residual));
}

/// Backward of residual_add: the gradient flows unchanged to both inputs, accumulated
/// (dx += dy, dresidual += dy) so a residual stream's gradient sums its branches in place.
/// Shapes: dy, dx, dresidual [rows, cols]. Example: `llm::nn::residual_add_backward(dy, d_attn, d_h);`
template <simd::backend S = simd::default_backend, class DY, class DX, class DR, class Exec = parallel::thread_pool>
void residual_add_backward(DY&& dy, DX&& dx, DR&& dresidual, Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "residual_add_backward";
    const auto d = detail::as_rows(fn, "dy", dy);
    const auto dxr = detail::as_rows(fn, "dx", dx);
    const auto drr = detail::as_rows(fn, "dresidual", dresidual);
    detail::elementwise<S>(fn, exec, [](auto a, auto b) { return S::add(a, b); }, dxr, d, dxr);
    detail::elementwise<S>(fn, exec, [](auto a, auto b) { return S::add(a, b); }, drr, d, drr);
}

}  // namespace llm::nn
