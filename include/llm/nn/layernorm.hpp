// SPDX-License-Identifier: Apache-2.0
// LayerNorm over the last dimension with optional weight and bias, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/nn/detail/rows.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

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
    constexpr const char* fn = "layernorm_forward";
    const auto xr = detail::rows_of(fn, "x", x);
    const auto yr = detail::rows_of(fn, "y", y);
    detail::check_rows(fn, "x", xr, "y", yr);
    const std::size_t rows = xr.extent(0), cols = xr.extent(1);
    const auto w = detail::as_param(fn, "weight", weight, cols);
    const auto b = detail::as_param(fn, "bias", bias, cols);
    const auto mu = detail::per_row(fn, "mean", mean, rows, "x");  // mutable fp32
    const auto rs = detail::per_row(fn, "rstd", rstd, rows, "x");
    llm::check(eps > 0.0f, fn, ": eps = ", eps, " must be > 0");
    const float inv_n = 1.0f / static_cast<float>(cols);
    detail::for_rows(exec, rows, cols, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.ptr(r, 0);
            auto* out = yr.ptr(r, 0);
            auto sum = S::zero();
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) { sum = S::add(sum, detail::load<S>(in + i, c)); });
            const float m = S::reduce_add(sum) * inv_n;
            const auto vm = S::set1(m);
            auto var = S::zero();
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto d = detail::keep_first<S>(S::sub(detail::load<S>(in + i, c), vm), c, 0.0f);
                var = S::fma(d, d, var);
            });
            const float inv = 1.0f / std::sqrt(S::reduce_add(var) * inv_n + eps);
            mu(r) = m;
            rs(r) = inv;
            const auto vinv = S::set1(inv);
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto xhat = S::mul(S::sub(detail::load<S>(in + i, c), vm), vinv);
                detail::store<S>(out + i,
                                 S::fma(xhat, detail::load_param<S>(w, i, c, 1.0f), detail::load_param<S>(b, i, c, 0.0f)), c);
            });
        }
    });
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
    constexpr const char* fn = "layernorm_backward";
    const auto xr = detail::rows_of(fn, "x", x);
    const auto dyr = detail::rows_of(fn, "dy", dy);
    const auto dxr = detail::rows_of(fn, "dx", dx);
    detail::check_rows(fn, "x", xr, "dy", dyr, "dx", dxr);
    const std::size_t rows = xr.extent(0), cols = xr.extent(1);
    const auto w = detail::as_param(fn, "weight", weight, cols);
    const auto dw = detail::as_param(fn, "dweight", dweight, cols);
    const auto db = detail::as_param(fn, "dbias", dbias, cols);
    const auto mu = detail::per_row(fn, "mean", mean, rows, "x");
    const auto rs = detail::per_row(fn, "rstd", rstd, rows, "x");
    const float inv_n = 1.0f / static_cast<float>(cols);
    const std::size_t grain = detail::reduce_grain(rows, cols);
    const std::size_t chunks = (rows + grain - 1) / grain;
    // chunks <= 64 (reduce_grain), so each is at most 64 dweights; checked all the same.
    const std::size_t n_part = checked_mul(chunks, cols, fn, "the partial sums (chunks * cols)");
    std::vector<float> part_w = checked_vector<float>(dw.empty() ? 0 : n_part, fn, "the dweight partial sums");
    std::vector<float> part_b = checked_vector<float>(db.empty() ? 0 : n_part, fn, "the dbias partial sums");
    parallel::parallel_for(exec, rows, grain, [&](std::size_t r0, std::size_t r1) {
        float* pw = dw.empty() ? nullptr : part_w.data() + (r0 / grain) * cols;
        float* pb = db.empty() ? nullptr : part_b.data() + (r0 / grain) * cols;
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.ptr(r, 0);
            const auto* d = dyr.ptr(r, 0);
            auto* out = dxr.ptr(r, 0);
            const auto vm = S::set1(mu(r));
            const auto vr = S::set1(rs(r));
            auto sg = S::zero(), sgx = S::zero();
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto g = S::mul(detail::load<S>(d + i, c), detail::load_param<S>(w, i, c, 1.0f));
                const auto xhat = S::mul(S::sub(detail::load<S>(in + i, c), vm), vr);
                sg = S::add(sg, g);  // g is 0 past the tail (dy loads 0 there)
                sgx = S::fma(g, xhat, sgx);
            });
            const auto mg = S::set1(S::reduce_add(sg) * inv_n);
            const auto mgx = S::set1(S::reduce_add(sgx) * inv_n);
            detail::for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto dv = detail::load<S>(d + i, c);
                const auto xhat = S::mul(S::sub(detail::load<S>(in + i, c), vm), vr);
                if (pw != nullptr) {
                    detail::store<S>(pw + i, S::fma(dv, xhat, detail::load<S>(pw + i, c)), c);
                }
                if (pb != nullptr) {
                    detail::store<S>(pb + i, S::add(dv, detail::load<S>(pb + i, c)), c);
                }
                const auto g = S::mul(dv, detail::load_param<S>(w, i, c, 1.0f));
                detail::accumulate<S>(out + i, S::mul(vr, S::sub(S::sub(g, mg), S::mul(xhat, mgx))), c);
            });
        }
    });
    if (!dw.empty()) {
        detail::add_partials(dw.data(), part_w.data(), chunks, cols);
    }
    if (!db.empty()) {
        detail::add_partials(db.data(), part_b.data(), chunks, cols);
    }
}

/// layernorm_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(dx, dweight, dbias); llm::nn::layernorm_backward(dx, dweight, dbias, mean, rstd, dy, x, weight);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, mutable_f32_view<1> DW, mutable_f32_view<1> DB,
          f32_view<1> M, f32_view<1> R, dense_view<2> DY, dense_view<2> X, dense_view<1> W>
void layernorm_backward(DX&& dx, DW&& dweight, DB&& dbias, M&& mean, R&& rstd, DY&& dy, X&& x, W&& weight) {
    layernorm_backward<S>(dx, dweight, dbias, mean, rstd, dy, x, weight, parallel::default_pool());
}

}  // namespace llm::nn
