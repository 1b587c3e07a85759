// SPDX-License-Identifier: Apache-2.0
// RMSNorm over the last dimension with optional weight, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/nn/detail/norm.hpp>

namespace llm::nn {

/// y = x / sqrt(mean(x^2) + eps) * weight, per row; rstd (1 / sqrt(mean(x^2) + eps), fp32,
/// one per row) is written for the backward.
/// Shapes: x, y [rows, cols] (cols > 0, rows > 0, last dimension contiguous; y may alias x);
/// weight [cols] or empty (no weight); rstd [rows] fp32. eps > 0.
/// Elements: x, y, weight fp32 or bf16.
/// S: SIMD backend. exec: an llm::parallel::policy (sequential{} or a thread_pool; rows are split).
/// Example: `llm::nn::rmsnorm_forward(y, rstd, x, weight, 1e-5f, llm::parallel::sequential{});`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, mutable_f32_view<1> R, dense_view<2> X,
          dense_view<1> W>
void rmsnorm_forward(Y&& y, R&& rstd, X&& x, W&& weight, float eps, parallel::policy auto&& exec) {
    detail::norm_forward<S, false>("rmsnorm_forward", y, detail::none, rstd, x, weight, detail::none, eps, exec);
}

/// rmsnorm_forward on llm::parallel::default_pool().
/// Example: `llm::nn::rmsnorm_forward(y, rstd, x, weight, 1e-5f);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, mutable_f32_view<1> R, dense_view<2> X,
          dense_view<1> W>
void rmsnorm_forward(Y&& y, R&& rstd, X&& x, W&& weight, float eps) {
    rmsnorm_forward<S>(y, rstd, x, weight, eps, parallel::default_pool());
}

/// Backward of rmsnorm_forward, accumulated into both gradients (docs/conventions.md):
/// dx += rstd * (g - xhat * mean(g * xhat)) with g = dy * weight and xhat = x * rstd;
/// dweight += sum over rows of dy * xhat (combined in a fixed chunk order, so bitwise
/// reproducible whatever the executor). Clear them first with llm::zero_grad.
/// Shapes: dx, dy, x [rows, cols]; weight [cols] or empty; rstd [rows] from the forward;
/// dweight [cols] fp32, or empty to skip it. dx must not alias dy or x.
/// Example: `llm::nn::rmsnorm_backward(dx, dweight, rstd, dy, x, weight, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_f32_view<1> DW, f32_view<1> R,
          dense_view<2> DY, dense_view<2> X, dense_view<1> W>
void rmsnorm_backward(DX&& dx, DW&& dweight, R&& rstd, DY&& dy, X&& x, W&& weight, parallel::policy auto&& exec) {
    detail::norm_backward<S, false>("rmsnorm_backward", dx, dweight, detail::none, detail::none, rstd, dy, x, weight,
                                    exec);
}

/// rmsnorm_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(dx, dweight); llm::nn::rmsnorm_backward(dx, dweight, rstd, dy, x, weight);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_f32_view<1> DW, f32_view<1> R,
          dense_view<2> DY, dense_view<2> X, dense_view<1> W>
void rmsnorm_backward(DX&& dx, DW&& dweight, R&& rstd, DY&& dy, X&& x, W&& weight) {
    rmsnorm_backward<S>(dx, dweight, rstd, dy, x, weight, parallel::default_pool());
}

}  // namespace llm::nn
