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
    const auto xr = detail::rows_of(fn, "x", x);
    const auto yr = detail::rows_of(fn, "y", y);
    detail::check_rows(fn, "x", xr, "y", yr);
    const std::size_t rows = xr.extent(0), cols = xr.extent(1);
    const auto w = detail::as_param(fn, "weight", weight, cols);
    const auto rs = detail::per_row(fn, "rstd", rstd, rows, "x");  // mutable fp32
    llm::check(eps > 0.0f, fn, ": eps = ", eps, " must be > 0");
    detail::for_rows(exec, rows, cols, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.ptr(r, 0);
            auto* out = yr.ptr(r, 0);
            auto ss = S::zero();
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto v = detail::load<S>(in + i, c);
                ss = S::fma(v, v, ss);
            });
            const float inv = 1.0f / std::sqrt(S::reduce_add(ss) / static_cast<float>(cols) + eps);
            rs(r) = inv;
            const auto vinv = S::set1(inv);
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
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
    const auto xr = detail::rows_of(fn, "x", x);
    const auto dyr = detail::rows_of(fn, "dy", dy);
    const auto dxr = detail::rows_of(fn, "dx", dx);
    detail::check_rows(fn, "x", xr, "dy", dyr, "dx", dxr);
    const std::size_t rows = xr.extent(0), cols = xr.extent(1);
    const auto w = detail::as_param(fn, "weight", weight, cols);
    const auto dw = detail::as_param(fn, "dweight", dweight, cols);
    const auto rs = detail::per_row(fn, "rstd", rstd, rows, "x");
    const std::size_t grain = detail::reduce_grain(rows, cols);
    const std::size_t chunks = (rows + grain - 1) / grain;
    // chunks <= 64 (reduce_grain), so this is at most 64 dweights; checked all the same.
    const std::size_t n_part = dw.empty() ? 0 : checked_mul(chunks, cols, fn, "the dweight partial sums (chunks * cols)");
    std::vector<float> partials = checked_vector<float>(n_part, fn, "the dweight partial sums");
    parallel::parallel_for(exec, rows, grain, [&](std::size_t r0, std::size_t r1) {
        float* part = dw.empty() ? nullptr : partials.data() + (r0 / grain) * cols;
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.ptr(r, 0);
            const auto* d = dyr.ptr(r, 0);
            auto* out = dxr.ptr(r, 0);
            const auto vr = S::set1(rs(r));
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
    if (!dw.empty()) {
        detail::add_partials(dw.data(), partials.data(), chunks, cols);
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
