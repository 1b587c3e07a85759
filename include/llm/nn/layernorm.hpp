// SPDX-License-Identifier: Apache-2.0
// LayerNorm over the last dimension with optional weight and bias, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/nn/detail/norm.hpp>

namespace llm::nn {

/// y = (x - mean) / sqrt(var + eps) * weight + bias per row (biased variance, as PyTorch);
/// mean and rstd (fp32, one per row) are written for the backward. The variance is a
/// second pass over the row in cache (sum of (x - mean)^2), not E[x^2] - mean^2, which
/// cancels catastrophically when |mean| >> std.
/// Shapes: x, y [rows, cols] (> 0, last dimension contiguous; y may alias x); weight, bias
/// [cols] or empty (none); mean, rstd [rows] fp32. eps > 0.
/// S: SIMD backend. exec: an llm::parallel::policy (sequential{} or a thread_pool; rows are split).
/// Example: `llm::nn::layernorm_forward(y, mean, rstd, x, weight, bias, 1e-5f, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, mutable_f32_view<1> M, mutable_f32_view<1> R,
          dense_view<2> X, dense_view<1> W, dense_view<1> B>
void layernorm_forward(Y&& y, M&& mean, R&& rstd, X&& x, W&& weight, B&& bias, float eps, parallel::policy auto&& exec) {
    detail::norm_forward<S, true>("layernorm_forward", y, mean, rstd, x, weight, bias, eps, exec);
}

/// layernorm_forward on llm::parallel::default_pool().
/// Example: `llm::nn::layernorm_forward(y, mean, rstd, x, weight, bias, 1e-5f);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, mutable_f32_view<1> M, mutable_f32_view<1> R,
          dense_view<2> X, dense_view<1> W, dense_view<1> B>
void layernorm_forward(Y&& y, M&& mean, R&& rstd, X&& x, W&& weight, B&& bias, float eps) {
    layernorm_forward<S>(y, mean, rstd, x, weight, bias, eps, parallel::default_pool());
}

/// Backward of layernorm_forward, accumulated into every gradient (docs/conventions.md): with
/// g = dy * weight and xhat = (x - mean) * rstd, dx += rstd * (g - mean(g) - xhat * mean(g * xhat));
/// dweight += sum_rows dy * xhat, dbias += sum_rows dy (fixed chunk order, bitwise
/// reproducible). Clear them first with llm::zero_grad.
/// Shapes: dx, dy, x [rows, cols]; weight [cols] or empty; mean, rstd [rows] from the
/// forward; dweight, dbias [cols] fp32 or empty to skip. dx must not alias dy or x.
/// Example: `llm::nn::layernorm_backward(dx, dweight, dbias, mean, rstd, dy, x, weight, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_f32_view<1> DW, mutable_f32_view<1> DB,
          f32_view<1> M, f32_view<1> R, dense_view<2> DY, dense_view<2> X, dense_view<1> W>
void layernorm_backward(DX&& dx, DW&& dweight, DB&& dbias, M&& mean, R&& rstd, DY&& dy, X&& x, W&& weight,
                        parallel::policy auto&& exec) {
    detail::norm_backward<S, true>("layernorm_backward", dx, dweight, dbias, mean, rstd, dy, x, weight, exec);
}

/// layernorm_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(dx, dweight, dbias); llm::nn::layernorm_backward(dx, dweight, dbias, mean, rstd, dy, x, weight);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_f32_view<1> DW, mutable_f32_view<1> DB,
          f32_view<1> M, f32_view<1> R, dense_view<2> DY, dense_view<2> X, dense_view<1> W>
void layernorm_backward(DX&& dx, DW&& dweight, DB&& dbias, M&& mean, R&& rstd, DY&& dy, X&& x, W&& weight) {
    layernorm_backward<S>(dx, dweight, dbias, mean, rstd, dy, x, weight, parallel::default_pool());
}

}  // namespace llm::nn
