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
/// S: SIMD backend. Exec: sequential or a thread_pool (rows are split).
/// Example: `llm::nn::layernorm_forward(x, w, b, y, mean, rstd, 1e-5f);`
template <simd::backend S = simd::default_backend, class X, class W, class B, class Y, class M, class R,
          class Exec = parallel::thread_pool>
void layernorm_forward(X&& x, W&& weight, B&& bias, Y&& y, M&& mean, R&& rstd, float eps,
                       Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "layernorm_forward";
    const auto xr = detail::as_rows(fn, "x", x);
    const auto yr = detail::as_rows(fn, "y", y);
    detail::check_nonempty(fn, "x", xr.rows, xr.cols);
    detail::check_same_shape(fn, "x", xr, "y", yr);
    const auto w = detail::as_param(fn, "weight", weight, xr.cols);
    const auto b = detail::as_param(fn, "bias", bias, xr.cols);
    const auto mean_vec = detail::as_vector(fn, "mean", mean);
    const auto rstd_vec = detail::as_vector(fn, "rstd", rstd);
    float* const mu = mean_vec.first;  // mutable fp32, one per row
    float* const rs = rstd_vec.first;
    llm::check(mean_vec.second == xr.rows && rstd_vec.second == xr.rows, fn, ": mean has ", mean_vec.second,
               " and rstd ", rstd_vec.second, " elements but x has ", xr.rows, " rows");
    llm::check(eps > 0.0f, fn, ": eps = ", eps, " must be > 0");
    const float inv_n = 1.0f / static_cast<float>(xr.cols);
    detail::for_rows(exec, xr.rows, xr.cols, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.row(r);
            auto* out = yr.row(r);
            auto sum = S::zero();
            detail::for_vectors<S>(xr.cols, [&](std::size_t i, std::size_t c) { sum = S::add(sum, detail::load<S>(in + i, c)); });
            const float m = S::reduce_add(sum) * inv_n;
            const auto vm = S::set1(m);
            auto var = S::zero();
            detail::for_vectors<S>(xr.cols, [&](std::size_t i, std::size_t c) {
                const auto d = detail::keep_first<S>(S::sub(detail::load<S>(in + i, c), vm), c, 0.0f);
                var = S::fma(d, d, var);
            });
            const float inv = 1.0f / std::sqrt(S::reduce_add(var) * inv_n + eps);
            mu[r] = m;
            rs[r] = inv;
            const auto vinv = S::set1(inv);
            detail::for_vectors<S>(xr.cols, [&](std::size_t i, std::size_t c) {
                const auto xhat = S::mul(S::sub(detail::load<S>(in + i, c), vm), vinv);
                detail::store<S>(out + i,
                                 S::fma(xhat, detail::load_param<S>(w, i, c, 1.0f), detail::load_param<S>(b, i, c, 0.0f)), c);
            });
        }
    });
}

/// Backward of layernorm_forward: with g = dy * weight and xhat = (x - mean) * rstd,
/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); dweight += sum_rows dy * xhat,
/// dbias += sum_rows dy (accumulated; fixed chunk order, bitwise reproducible).
/// Shapes: x, dy, dx [rows, cols]; weight [cols] or empty; mean, rstd [rows] from the
/// forward; dweight, dbias [cols] fp32 or empty to skip. dx may alias dy.
/// Example: `llm::nn::layernorm_backward(x, w, mean, rstd, dy, dx, dw, db);`
template <simd::backend S = simd::default_backend, class X, class W, class M, class R, class DY, class DX, class DW, class DB,
          class Exec = parallel::thread_pool>
void layernorm_backward(X&& x, W&& weight, M&& mean, R&& rstd, DY&& dy, DX&& dx, DW&& dweight, DB&& dbias,
                        Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "layernorm_backward";
    const auto xr = detail::as_rows(fn, "x", x);
    const auto dyr = detail::as_rows(fn, "dy", dy);
    const auto dxr = detail::as_rows(fn, "dx", dx);
    detail::check_nonempty(fn, "x", xr.rows, xr.cols);
    detail::check_same_shape(fn, "x", xr, "dy", dyr);
    detail::check_same_shape(fn, "x", xr, "dx", dxr);
    const auto w = detail::as_param(fn, "weight", weight, xr.cols);
    const auto dw = detail::as_param(fn, "dweight", dweight, xr.cols);
    const auto db = detail::as_param(fn, "dbias", dbias, xr.cols);
    static_assert(std::is_same_v<std::remove_pointer_t<decltype(dw.data)>, float> &&
                      std::is_same_v<std::remove_pointer_t<decltype(db.data)>, float>,
                  "layernorm_backward: dweight and dbias must be mutable fp32");
    const auto mean_vec = detail::as_vector(fn, "mean", mean);
    const auto rstd_vec = detail::as_vector(fn, "rstd", rstd);
    const float* const mu = mean_vec.first;
    const float* const rs = rstd_vec.first;
    llm::check(mean_vec.second == xr.rows && rstd_vec.second == xr.rows, fn, ": mean has ", mean_vec.second,
               " and rstd ", rstd_vec.second, " elements but x has ", xr.rows, " rows");
    const std::size_t cols = xr.cols;
    const float inv_n = 1.0f / static_cast<float>(cols);
    const std::size_t grain = detail::reduce_grain(xr.rows, cols);
    const std::size_t chunks = (xr.rows + grain - 1) / grain;
    // chunks <= 64 (reduce_grain), so each is at most 64 dweights; checked all the same.
    const std::size_t n_part = checked_mul(chunks, cols, fn, "the partial sums (chunks * cols)");
    std::vector<float> part_w = checked_vector<float>(dw ? n_part : 0, fn, "the dweight partial sums");
    std::vector<float> part_b = checked_vector<float>(db ? n_part : 0, fn, "the dbias partial sums");
    parallel::parallel_for(exec, xr.rows, grain, [&](std::size_t r0, std::size_t r1) {
        float* pw = dw ? part_w.data() + (r0 / grain) * cols : nullptr;
        float* pb = db ? part_b.data() + (r0 / grain) * cols : nullptr;
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.row(r);
            const auto* d = dyr.row(r);
            auto* out = dxr.row(r);
            const auto vm = S::set1(mu[r]);
            const auto vr = S::set1(rs[r]);
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
                detail::store<S>(out + i, S::mul(vr, S::sub(S::sub(g, mg), S::mul(xhat, mgx))), c);
            });
        }
    });
    if (dw) {
        detail::add_partials(dw.data, part_w.data(), chunks, cols);
    }
    if (db) {
        detail::add_partials(db.data, part_b.data(), chunks, cols);
    }
}

}  // namespace llm::nn
