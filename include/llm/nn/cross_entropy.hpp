// SPDX-License-Identifier: Apache-2.0
// Cross-entropy from logits fused with log-softmax (ignore_index, label smoothing, mean or sum), forward and backward.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/nn/detail/rows.hpp>
#include <llm/nn/loss_options.hpp>
#include <llm/simd/math.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::nn {
namespace detail {

/// Checks the targets (each in [0, vocab) or ignore_index) and the options; returns how many
/// targets are not ignored.
template <class I>
[[nodiscard]] std::size_t check_targets(const char* fn, const row_view<I, 1>& targets, std::size_t rows, std::size_t vocab,
                                        const cross_entropy_options& o) {
    llm::check(targets.extent(0) == rows, fn, ": targets has ", targets.extent(0), " elements but logits has ", rows,
               " rows");
    llm::check(o.label_smoothing >= 0.0f && o.label_smoothing <= 1.0f, fn, ": label_smoothing = ", o.label_smoothing,
               " must be in [0, 1]");
    std::size_t counted = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        const auto t = targets(i);
        if (std::cmp_equal(t, o.ignore_index)) {
            continue;
        }
        llm::check(std::cmp_greater_equal(t, 0) && std::cmp_less(t, vocab), fn, ": targets[", i, "] = ", +t,
                   " is outside [0, ", vocab, ") and is not ignore_index (", o.ignore_index, ")");
        ++counted;
    }
    // PyTorch returns 0/0 = NaN here; a NaN loss silently poisons training, so it is an error.
    llm::check(counted > 0 || o.red == reduction::sum, fn, ": all ", rows, " targets equal ignore_index (", o.ignore_index,
               "), so the mean loss is undefined (use reduction::sum for 0)");
    return counted;
}

}  // namespace detail

/// Cross-entropy of logits against integer targets, fused with the log-softmax: returns
/// the loss (mean over non-ignored rows, or sum) and writes each row's log-sum-exp (saved
/// state) for the backward. Per-row loss: (1 - eps) (lse - x_t) + eps (lse - mean_j x_j),
/// eps = label smoothing (PyTorch's definition). Rows with target == ignore_index add nothing.
/// Shapes: lse [rows] fp32; logits [rows, vocab] (> 0, rows contiguous); targets [rows]
/// (integers in [0, vocab) or ignore_index).
/// Errors: a target out of range; label_smoothing outside [0, 1]; every target ignored with
/// reduction::mean (a sum gives 0). Deterministic: row losses are added in row order.
/// S: SIMD backend. exec: an llm::parallel::policy (sequential{} or a thread_pool; rows are split).
/// Example: `float loss = llm::nn::cross_entropy_forward(lse, logits, targets, {.label_smoothing = 0.1f}, pool);`
template <simd::backend S = simd::default_backend, mutable_f32_view<1> E, dense_view<2> L, index_view I>
float cross_entropy_forward(E&& lse, L&& logits, I&& targets, const cross_entropy_options& options,
                            parallel::policy auto&& exec) {
    constexpr const char* fn = "cross_entropy_forward";
    const auto x = detail::rows_of(fn, "logits", logits);
    detail::check_rows(fn, "logits", x);
    const std::size_t rows = x.extent(0), vocab = x.extent(1);
    const auto t = detail::rows_of(fn, "targets", targets);
    const std::size_t counted = detail::check_targets(fn, t, rows, vocab, options);
    const auto lse_out = detail::per_row(fn, "lse", lse, rows, "logits");  // mutable fp32
    const float eps = options.label_smoothing;
    auto row_loss = llm::checked_vector<double>(rows, fn, "the per-row losses");
    detail::for_rows(exec, rows, vocab, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* xr = x.ptr(r, 0);
            // log-sum-exp and the sum of the logits from one read (llm/simd/math.hpp)
            const auto [l, sum_x] = simd::row_logsumexp_sum<S>(xr, vocab);
            lse_out(r) = static_cast<float>(l);
            if (std::cmp_equal(t(r), options.ignore_index)) {
                continue;
            }
            const float xt = static_cast<float>(xr[static_cast<std::size_t>(t(r))]);
            row_loss[r] = (1.0 - eps) * (l - xt) + eps * (l - sum_x / static_cast<double>(vocab));
        }
    });
    double total = 0.0;
    for (double v : row_loss) {
        total += v;
    }
    return static_cast<float>(options.red == reduction::sum ? total : total / static_cast<double>(counted));
}

/// cross_entropy_forward with the default options (mean, no smoothing, ignore_index -100).
/// Example: `float loss = llm::nn::cross_entropy_forward(lse, logits, targets, llm::parallel::sequential{});`
template <simd::backend S = simd::default_backend, mutable_f32_view<1> E, dense_view<2> L, index_view I>
float cross_entropy_forward(E&& lse, L&& logits, I&& targets, parallel::policy auto&& exec) {
    return cross_entropy_forward<S>(lse, logits, targets, cross_entropy_options{}, exec);
}

/// cross_entropy_forward on llm::parallel::default_pool().
/// Example: `float loss = llm::nn::cross_entropy_forward(lse, logits, targets);`
template <simd::backend S = simd::default_backend, mutable_f32_view<1> E, dense_view<2> L, index_view I>
float cross_entropy_forward(E&& lse, L&& logits, I&& targets, const cross_entropy_options& options = {}) {
    return cross_entropy_forward<S>(lse, logits, targets, options, parallel::default_pool());
}

/// Backward of cross_entropy_forward, accumulated (docs/conventions.md): dlogits += dloss *
/// scale * (softmax(x) - (1 - eps) onehot(t) - eps / vocab), scale = 1 / (non-ignored rows)
/// for the mean, 1 for the sum; ignored rows get nothing. dloss is the upstream gradient
/// dL/dloss (the first input, as dy is elsewhere). Uses the forward's lse, so softmax(x)
/// costs one exp per element.
/// Shapes: dlogits, logits [rows, vocab] (dlogits must not alias logits); lse, targets [rows].
/// Example: `llm::nn::cross_entropy_backward(dlogits, lse, 1.0f, logits, targets, {}, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> D, f32_view<1> E, dense_view<2> L, index_view I>
void cross_entropy_backward(D&& dlogits, E&& lse, float dloss, L&& logits, I&& targets, const cross_entropy_options& options,
                            parallel::policy auto&& exec) {
    constexpr const char* fn = "cross_entropy_backward";
    const auto x = detail::rows_of(fn, "logits", logits);
    const auto d = detail::rows_of(fn, "dlogits", dlogits);
    detail::check_rows(fn, "logits", x, "dlogits", d);
    const std::size_t rows = x.extent(0), vocab = x.extent(1);
    const auto t = detail::rows_of(fn, "targets", targets);
    const std::size_t counted = detail::check_targets(fn, t, rows, vocab, options);
    const auto lse_in = detail::per_row(fn, "lse", lse, rows, "logits");
    const float eps = options.label_smoothing;
    const float scale = options.red == reduction::sum ? dloss : dloss / static_cast<float>(counted);
    const float uniform = eps / static_cast<float>(vocab);
    detail::for_rows(exec, rows, vocab, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* xr = x.ptr(r, 0);
            auto* dr = d.ptr(r, 0);
            if (std::cmp_equal(t(r), options.ignore_index)) {
                continue;  // no gradient: nothing is added
            }
            const auto tgt = static_cast<std::size_t>(t(r));
            const float l = static_cast<float>(lse_in(r));
            const float xt = static_cast<float>(xr[tgt]);
            const float dt = static_cast<float>(dr[tgt]);  // the target's gradient before this call
            const auto vl = S::set1(l), vs = S::set1(scale), vu = S::set1(uniform);
            detail::for_vectors<S>(vocab, [&](std::size_t i, std::size_t c) {
                const auto p = S::exp(S::sub(detail::load<S>(xr + i, c), vl));
                detail::accumulate<S>(dr + i, S::mul(vs, S::sub(p, vu)), c);
            });
            // The target's element is redone from its value before the loop, so it gets one
            // addition of its own term (one rounding for bf16), like every other element.
            using D_elem = std::remove_pointer_t<decltype(dr)>;
            dr[tgt] = D_elem(dt + scale * (std::exp(xt - l) - uniform - (1.0f - eps)));
        }
    });
}

/// cross_entropy_backward with the default options.
/// Example: `llm::nn::cross_entropy_backward(dlogits, lse, 1.0f, logits, targets, llm::parallel::sequential{});`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> D, f32_view<1> E, dense_view<2> L, index_view I>
void cross_entropy_backward(D&& dlogits, E&& lse, float dloss, L&& logits, I&& targets, parallel::policy auto&& exec) {
    cross_entropy_backward<S>(dlogits, lse, dloss, logits, targets, cross_entropy_options{}, exec);
}

/// cross_entropy_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(dlogits); llm::nn::cross_entropy_backward(dlogits, lse, 1.0f, logits, targets);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> D, f32_view<1> E, dense_view<2> L, index_view I>
void cross_entropy_backward(D&& dlogits, E&& lse, float dloss, L&& logits, I&& targets,
                            const cross_entropy_options& options = {}) {
    cross_entropy_backward<S>(dlogits, lse, dloss, logits, targets, options, parallel::default_pool());
}

}  // namespace llm::nn
