// SPDX-License-Identifier: Apache-2.0
// RMSNorm over the last dimension with optional weight, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/nn/detail/rows.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

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
    constexpr const char* fn = "rmsnorm_forward";
    const auto xr = detail::as_rows(fn, "x", x);
    const auto yr = detail::as_rows(fn, "y", y);
    detail::check_nonempty(fn, "x", xr.rows, xr.cols);
    detail::check_same_shape(fn, "x", xr, "y", yr);
    const auto w = detail::as_param(fn, "weight", weight, xr.cols);
    const auto rstd_vec = detail::as_vector(fn, "rstd", rstd);
    float* const rs = rstd_vec.first;  // mutable fp32, one per row
    const std::size_t n_rs = rstd_vec.second;
    llm::check(n_rs == xr.rows, fn, ": rstd has ", n_rs, " elements but x has ", xr.rows, " rows");
    llm::check(eps > 0.0f, fn, ": eps = ", eps, " must be > 0");
    detail::for_rows(exec, xr.rows, xr.cols, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.row(r);
            auto* out = yr.row(r);
            auto ss = S::zero();
            detail::for_vectors<S>(xr.cols, [&](std::size_t i, std::size_t c) {
                const auto v = detail::load<S>(in + i, c);
                ss = S::fma(v, v, ss);
            });
            const float inv = 1.0f / std::sqrt(S::reduce_add(ss) / static_cast<float>(xr.cols) + eps);
            rs[r] = inv;
            const auto vinv = S::set1(inv);
            detail::for_vectors<S>(xr.cols, [&](std::size_t i, std::size_t c) {
                const auto v = S::mul(detail::load<S>(in + i, c), vinv);
                detail::store<S>(out + i, S::mul(v, detail::load_param<S>(w, i, c, 1.0f)), c);
            });
        }
    });
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
    constexpr const char* fn = "rmsnorm_backward";
    const auto xr = detail::as_rows(fn, "x", x);
    const auto dyr = detail::as_rows(fn, "dy", dy);
    const auto dxr = detail::as_rows(fn, "dx", dx);
    detail::check_nonempty(fn, "x", xr.rows, xr.cols);
    detail::check_same_shape(fn, "x", xr, "dy", dyr);
    detail::check_same_shape(fn, "x", xr, "dx", dxr);
    const auto w = detail::as_param(fn, "weight", weight, xr.cols);
    const auto dw = detail::as_param(fn, "dweight", dweight, xr.cols);
    const auto rstd_vec = detail::as_vector(fn, "rstd", rstd);
    const float* const rs = rstd_vec.first;
    const std::size_t n_rs = rstd_vec.second;
    llm::check(n_rs == xr.rows, fn, ": rstd has ", n_rs, " elements but x has ", xr.rows, " rows");
    const std::size_t cols = xr.cols;
    const std::size_t grain = detail::reduce_grain(xr.rows, cols);
    const std::size_t chunks = (xr.rows + grain - 1) / grain;
    // chunks <= 64 (reduce_grain), so this is at most 64 dweights; checked all the same.
    const std::size_t n_part = dw ? checked_mul(chunks, cols, fn, "the dweight partial sums (chunks * cols)") : 0;
    std::vector<float> partials = checked_vector<float>(n_part, fn, "the dweight partial sums");
    parallel::parallel_for(exec, xr.rows, grain, [&](std::size_t r0, std::size_t r1) {
        float* part = dw ? partials.data() + (r0 / grain) * cols : nullptr;
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.row(r);
            const auto* d = dyr.row(r);
            auto* out = dxr.row(r);
            const auto vr = S::set1(rs[r]);
            auto dot = S::zero();
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto g = S::mul(detail::load<S>(d + i, c), detail::load_param<S>(w, i, c, 1.0f));
                dot = S::fma(g, S::mul(detail::load<S>(in + i, c), vr), dot);
            });
            const auto k = S::set1(S::reduce_add(dot) / static_cast<float>(cols));
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto dv = detail::load<S>(d + i, c);
                const auto xhat = S::mul(detail::load<S>(in + i, c), vr);
                if (part != nullptr) {
                    detail::store<S>(part + i, S::fma(dv, xhat, detail::load<S>(part + i, c)), c);
                }
                const auto g = S::mul(dv, detail::load_param<S>(w, i, c, 1.0f));
                detail::accumulate<S>(out + i, S::mul(vr, S::sub(g, S::mul(xhat, k))), c);
            });
        }
    });
    if (dw) {
        detail::add_partials(dw.data, partials.data(), chunks, cols);
    }
}

/// rmsnorm_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(dx, dweight); llm::nn::rmsnorm_backward(dx, dweight, rstd, dy, x, weight);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_f32_view<1> DW, f32_view<1> R,
          dense_view<2> DY, dense_view<2> X, dense_view<1> W>
void rmsnorm_backward(DX&& dx, DW&& dweight, R&& rstd, DY&& dy, X&& x, W&& weight) {
    rmsnorm_backward<S>(dx, dweight, rstd, dy, x, weight, parallel::default_pool());
}

}  // namespace llm::nn
