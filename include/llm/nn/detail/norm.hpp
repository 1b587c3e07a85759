// SPDX-License-Identifier: Apache-2.0
// The one row-normalisation kernel, forward and backward: LayerNorm (centred, bias) and RMSNorm (neither).
#pragma once

#include <llm/core/checked.hpp>
#include <llm/nn/detail/rows.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

namespace llm::nn::detail {

/// An absent per-row or per-column tensor (RMSNorm's mean, bias and dbias): an empty view.
inline constexpr row_view<float, 1> none{};

/// y = (x - mean) * rstd * weight + bias per row, rstd = 1 / sqrt(mean((x - mean)^2) + eps),
/// with mean and rstd (fp32) written for the backward. Centered false is RMSNorm: no mean is
/// subtracted or written (`mean` and `bias` are `none`). The variance is a second pass over
/// the row in cache (sum of (x - mean)^2), not E[x^2] - mean^2, which cancels
/// catastrophically when |mean| >> std.
template <simd::backend S, bool Centered, class Y, class M, class R, class X, class W, class B, class Exec>
void norm_forward(const char* fn, Y&& y, M&& mean, R&& rstd, X&& x, W&& weight, B&& bias, float eps, Exec& exec) {
    const auto xr = rows_of(fn, "x", x);
    const auto yr = rows_of(fn, "y", y);
    check_rows(fn, "x", xr, "y", yr);
    const std::size_t rows = xr.extent(0), cols = xr.extent(1);
    const auto w = as_param(fn, "weight", weight, cols);
    const auto b = as_param(fn, "bias", bias, cols);
    const auto mu = Centered ? per_row(fn, "mean", mean, rows, "x") : none;  // mutable fp32
    const auto rs = per_row(fn, "rstd", rstd, rows, "x");
    llm::check(eps > 0.0f, fn, ": eps = ", eps, " must be > 0");
    const float n = static_cast<float>(cols);
    for_rows(exec, rows, cols, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* in = xr.ptr(r, 0);
            auto* out = yr.ptr(r, 0);
            float m = 0.0f;
            if constexpr (Centered) {
                auto sum = S::zero();
                for_vectors<S>(cols, [&](std::size_t i, std::size_t c) { sum = S::add(sum, load<S>(in + i, c)); });
                m = S::reduce_add(sum) / n;
                mu(r) = m;
            }
            const auto vm = S::set1(m);
            // x - mean (x itself for RMSNorm), lanes past the row's end 0.
            auto centred = [&](std::size_t i, std::size_t c) {
                if constexpr (Centered) {
                    return keep_first<S>(S::sub(load<S>(in + i, c), vm), c, 0.0f);
                } else {
                    return load<S>(in + i, c);
                }
            };
            auto ss = S::zero();
            for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto d = centred(i, c);
                ss = S::fma(d, d, ss);
            });
            const float inv = 1.0f / std::sqrt(S::reduce_add(ss) / n + eps);
            rs(r) = inv;
            const auto vinv = S::set1(inv);
            for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto xhat = S::mul(centred(i, c), vinv);
                const auto wv = load_param<S>(w, i, c, 1.0f);
                store<S>(out + i, Centered ? S::fma(xhat, wv, load_param<S>(b, i, c, 0.0f)) : S::mul(xhat, wv), c);
            });
        }
    });
}

/// Backward of norm_forward, accumulated into every gradient: with g = dy * weight and
/// xhat = (x - mean) * rstd, dx += rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMSNorm: no
/// mean(g) term); dweight += sum over rows of dy * xhat, dbias += sum over rows of dy (either
/// may be empty), per-chunk partial sums combined in a fixed order (bitwise reproducible
/// whatever the executor).
template <simd::backend S, bool Centered, class DX, class DW, class DB, class M, class R, class DY, class X, class W,
          class Exec>
void norm_backward(const char* fn, DX&& dx, DW&& dweight, DB&& dbias, M&& mean, R&& rstd, DY&& dy, X&& x, W&& weight,
                   Exec& exec) {
    const auto xr = rows_of(fn, "x", x);
    const auto dyr = rows_of(fn, "dy", dy);
    const auto dxr = rows_of(fn, "dx", dx);
    check_rows(fn, "x", xr, "dy", dyr, "dx", dxr);
    const std::size_t rows = xr.extent(0), cols = xr.extent(1);
    const auto w = as_param(fn, "weight", weight, cols);
    const auto dw = as_param(fn, "dweight", dweight, cols);
    const auto db = as_param(fn, "dbias", dbias, cols);
    const auto mu = Centered ? per_row(fn, "mean", mean, rows, "x") : none;
    const auto rs = per_row(fn, "rstd", rstd, rows, "x");
    const float n = static_cast<float>(cols);
    const std::size_t grain = reduce_grain(rows, cols);
    const std::size_t chunks = (rows + grain - 1) / grain;
    // chunks <= 64 (reduce_grain), so each is at most 64 rows of partial sums; checked all the same.
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
            const auto vm = S::set1(Centered ? mu(r) : 0.0f);
            const auto vr = S::set1(rs(r));
            auto xhat = [&](std::size_t i, std::size_t c) {
                return Centered ? S::mul(S::sub(load<S>(in + i, c), vm), vr) : S::mul(load<S>(in + i, c), vr);
            };
            auto sg = S::zero(), sgx = S::zero();
            for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto g = S::mul(load<S>(d + i, c), load_param<S>(w, i, c, 1.0f));
                if constexpr (Centered) {
                    sg = S::add(sg, g);  // g is 0 past the tail (dy loads 0 there)
                }
                sgx = S::fma(g, xhat(i, c), sgx);
            });
            const auto mg = S::set1(S::reduce_add(sg) / n);
            const auto mgx = S::set1(S::reduce_add(sgx) / n);
            for_vectors<S>(cols, [&](std::size_t i, std::size_t c) {
                const auto dv = load<S>(d + i, c);
                const auto xh = xhat(i, c);
                if (pw != nullptr) {
                    store<S>(pw + i, S::fma(dv, xh, load<S>(pw + i, c)), c);
                }
                if (pb != nullptr) {
                    store<S>(pb + i, S::add(dv, load<S>(pb + i, c)), c);
                }
                const auto g = S::mul(dv, load_param<S>(w, i, c, 1.0f));
                const auto gc = Centered ? S::sub(g, mg) : g;
                accumulate<S>(out + i, S::mul(vr, S::sub(gc, S::mul(xh, mgx))), c);
            });
        }
    });
    if (!dw.empty()) {
        add_partials(dw.data(), part_w.data(), chunks, cols);
    }
    if (!db.empty()) {
        add_partials(db.data(), part_b.data(), chunks, cols);
    }
}

}  // namespace llm::nn::detail
