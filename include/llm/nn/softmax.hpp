// SPDX-License-Identifier: Apache-2.0
// Softmax and log-softmax over the last dimension, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/nn/detail/rows.hpp>
#include <llm/simd/math.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>

namespace llm::nn {
namespace detail {

// Three passes per row (max; exp and sum; normalise): rows of LLM widths (4096 floats =
// 16 KiB, 128K-vocab logits = 512 KiB) stay in L1/L2 between passes, so this reads memory
// once and computes one exp per element; an online max would need two exps per element.
// The row reductions (max, sum of exp, storing the terms) are llm/simd/math.hpp's.
template <simd::backend S, bool Log, class TX, class TY>
void softmax_rows(const row_view<TX, 2>& x, const row_view<TY, 2>& y, std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
        const TX* xr = x.ptr(r, 0);
        TY* yr = y.ptr(r, 0);
        const std::size_t n = x.extent(1);
        if constexpr (Log) {
            const float m = simd::row_max<S>(xr, n);
            const auto shift = S::set1(m + std::log(simd::row_exp_sum<S>(xr, n, m)));
            for_vectors<S>(n, [&](std::size_t i, std::size_t c) { store<S>(yr + i, S::sub(load<S>(xr + i, c), shift), c); });
        } else if constexpr (std::is_same_v<TY, float>) {
            const float s = simd::row_exp_sum<S>(yr, xr, n, simd::row_max<S>(xr, n));
            const auto inv = S::set1(1.0f / s);
            for_vectors<S>(n, [&](std::size_t i, std::size_t c) { store<S>(yr + i, S::mul(load<S>(yr + i, c), inv), c); });
        } else {
            const float m = simd::row_max<S>(xr, n);
            const float s = simd::row_exp_sum<S>(xr, n, m);
            const auto inv = S::set1(1.0f / s), vm = S::set1(m);
            for_vectors<S>(n, [&](std::size_t i, std::size_t c) {
                store<S>(yr + i, S::mul(S::exp(S::sub(load<S>(xr + i, c), vm)), inv), c);
            });
        }
    }
}

// softmax: dx += y (dy - <dy, y>);  log-softmax: dx += dy - exp(y) sum(dy).
template <simd::backend S, bool Log, class TY, class TD, class TX>
void softmax_backward_rows(const row_view<TY, 2>& y, const row_view<TD, 2>& dy, const row_view<TX, 2>& dx, std::size_t r0,
                           std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
        const TY* yr = y.ptr(r, 0);
        const TD* dr = dy.ptr(r, 0);
        TX* out = dx.ptr(r, 0);
        const std::size_t n = y.extent(1);
        auto acc = S::zero();
        for_vectors<S>(n, [&](std::size_t i, std::size_t c) {
            // Partial loads give 0 past the tail, so no masking is needed for these sums.
            acc = Log ? S::add(acc, load<S>(dr + i, c)) : S::fma(load<S>(dr + i, c), load<S>(yr + i, c), acc);
        });
        const auto k = S::set1(S::reduce_add(acc));
        for_vectors<S>(n, [&](std::size_t i, std::size_t c) {
            const auto yv = load<S>(yr + i, c);
            const auto dv = load<S>(dr + i, c);
            accumulate<S>(out + i, Log ? S::sub(dv, S::mul(S::exp(yv), k)) : S::mul(yv, S::sub(dv, k)), c);
        });
    }
}

template <simd::backend S, bool Log, class Y, class X, class Exec>
void softmax_forward_impl(const char* fn, Y&& y, X&& x, Exec& exec) {
    const auto xr = rows_of(fn, "x", x);
    const auto yr = rows_of(fn, "y", y);
    check_rows(fn, "x", xr, "y", yr);
    for_rows(exec, xr.extent(0), xr.extent(1), [&](std::size_t r0, std::size_t r1) { softmax_rows<S, Log>(xr, yr, r0, r1); });
}

template <simd::backend S, bool Log, class DX, class Y, class DY, class Exec>
void softmax_backward_impl(const char* fn, DX&& dx, Y&& y, DY&& dy, Exec& exec) {
    const auto yr = rows_of(fn, "y", y);
    const auto dyr = rows_of(fn, "dy", dy);
    const auto dxr = rows_of(fn, "dx", dx);
    check_rows(fn, "y", yr, "dy", dyr, "dx", dxr);
    for_rows(exec, yr.extent(0), yr.extent(1),
             [&](std::size_t r0, std::size_t r1) { softmax_backward_rows<S, Log>(yr, dyr, dxr, r0, r1); });
}

}  // namespace detail

/// y = softmax(x) over the last dimension (max-subtracted, so any finite x is safe).
/// Shapes: y, x [rows, cols], rows and cols > 0, last dimension contiguous; y may alias x.
/// Elements: fp32 or bf16 storage, fp32 math.
/// S: SIMD backend. exec: an llm::parallel::policy (sequential{} or a thread_pool; rows are split).
/// Example: `llm::nn::softmax_forward(probs, logits, llm::parallel::sequential{});`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
void softmax_forward(Y&& y, X&& x, parallel::policy auto&& exec) {
    detail::softmax_forward_impl<S, false>("softmax_forward", y, x, exec);
}

/// softmax_forward on llm::parallel::default_pool(). Example: `llm::nn::softmax_forward(probs, logits);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
void softmax_forward(Y&& y, X&& x) {
    softmax_forward<S>(y, x, parallel::default_pool());
}

/// dx += y * (dy - sum(dy * y)) per row (accumulated, docs/conventions.md), from the
/// forward's output y (saved state). Shapes: dx, y, dy [rows, cols]; dx must not alias y or dy.
/// Example: `llm::nn::softmax_backward(d_logits, probs, d_probs, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> Y, dense_view<2> DY>
void softmax_backward(DX&& dx, Y&& y, DY&& dy, parallel::policy auto&& exec) {
    detail::softmax_backward_impl<S, false>("softmax_backward", dx, y, dy, exec);
}

/// softmax_backward on llm::parallel::default_pool().
/// Example: `llm::nn::softmax_backward(d_logits, probs, d_probs);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> Y, dense_view<2> DY>
void softmax_backward(DX&& dx, Y&& y, DY&& dy) {
    softmax_backward<S>(dx, y, dy, parallel::default_pool());
}

/// y = x - logsumexp(x) over the last dimension. Shapes and types as softmax_forward.
/// Example: `llm::nn::log_softmax_forward(logp, logits, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
void log_softmax_forward(Y&& y, X&& x, parallel::policy auto&& exec) {
    detail::softmax_forward_impl<S, true>("log_softmax_forward", y, x, exec);
}

/// log_softmax_forward on llm::parallel::default_pool(). Example: `llm::nn::log_softmax_forward(logp, logits);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
void log_softmax_forward(Y&& y, X&& x) {
    log_softmax_forward<S>(y, x, parallel::default_pool());
}

/// dx += dy - exp(y) * sum(dy) per row (accumulated), from the forward's output y
/// (log-probabilities, saved state). Shapes as softmax_backward.
/// Example: `llm::nn::log_softmax_backward(d_logits, logp, d_logp, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> Y, dense_view<2> DY>
void log_softmax_backward(DX&& dx, Y&& y, DY&& dy, parallel::policy auto&& exec) {
    detail::softmax_backward_impl<S, true>("log_softmax_backward", dx, y, dy, exec);
}

/// log_softmax_backward on llm::parallel::default_pool().
/// Example: `llm::nn::log_softmax_backward(d_logits, logp, d_logp);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> Y, dense_view<2> DY>
void log_softmax_backward(DX&& dx, Y&& y, DY&& dy) {
    log_softmax_backward<S>(dx, y, dy, parallel::default_pool());
}

}  // namespace llm::nn
