// SPDX-License-Identifier: Apache-2.0
// Sequence log-probs from logits (fused log-softmax + gather, fp32/bf16) and the one-pass logits gradient.
#pragma once

#include <llm/align/concepts.hpp>
#include <llm/align/cpu.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/math.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::align {

/// Per-sequence outputs of sequence_logprobs. Every view may be left empty (size 0) when not
/// wanted.
///   sum    (B): sum over the masked-in tokens of log softmax(logits[b, t])[labels[b, t]];
///   mean   (B): sum / tokens (SimPO's and ORPO's length-normalised log-prob);
///   tokens (B): number of masked-in tokens.
/// The per-row log-sum-exp the backward needs is not here: it is saved state, the call's
/// second argument.
/// Template parameters:
///   Out — float or double, the type of sum and mean.
/// Example: `llm::align::logprob_outputs<float> out{.sum = sums, .tokens = counts};`
template <float_or_double Out = float>
struct logprob_outputs {
    tensor_view<Out, dims<1>> sum{};             ///< (B) summed log-probs of the masked-in tokens
    tensor_view<Out, dims<1>> mean{};            ///< (B) sum / tokens
    tensor_view<std::size_t, dims<1>> tokens{};  ///< (B) number of masked-in tokens
};

namespace detail {

// Rows of at least this many logits per parallel_for chunk: ~64k logits is 10-30 us of work,
// far above the ~1 us cost of handing a chunk to the pool.
inline std::size_t row_grain(std::size_t V) { return std::max<std::size_t>(1, (std::size_t{1} << 16) / V); }

// Shape and label checks shared by forward and backward; returns the token count per sequence.
template <class LogitView, class LabelView, class MaskView>
std::vector<std::size_t> check_logprob_inputs(const char* fn, const LogitView& logits, const LabelView& labels,
                                              const MaskView& mask) {
    const std::size_t B = logits.extent(0), S = logits.extent(1), V = logits.extent(2);
    check(V > 0, fn, ": logits has vocab size 0");
    check(logits.stride(2) == 1, fn, ": logits must be contiguous along the vocab dim (stride ", logits.stride(2),
          ")");
    check(labels.extent(0) == B && labels.extent(1) == S, fn, ": labels is (", labels.extent(0), ", ",
          labels.extent(1), ") but logits is (", B, ", ", S, ", ", V, ")");
    check(mask.extent(0) == B && mask.extent(1) == S, fn, ": mask is (", mask.extent(0), ", ", mask.extent(1),
          ") but logits is (", B, ", ", S, ", ", V, ")");
    // Broadcast views (stride 0) may claim any B and S: the row count B * S (the loops' bound
    // and the forward's per-row workspace of 16 bytes a row) must not wrap, checked before any loop.
    (void)checked_bytes<double[2]>(checked_mul(B, S, fn, "the rows B * S"), fn, "the per-row workspace");
    std::vector<std::size_t> tokens = checked_vector<std::size_t>(B, fn, "the token counts");
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t t = 0; t < S; ++t) {
            if (mask(b, t) == 0) {
                continue;
            }
            const auto label = labels(b, t);
            check(label >= 0 && static_cast<std::size_t>(label) < V, fn, ": labels[", b, ", ", t, "] = ", label,
                  " is outside the vocab [0, ", V, ")");
            ++tokens[b];
        }
        check(tokens[b] > 0, fn, ": sequence ", b, " has no masked-in tokens (empty loss mask)");
    }
    return tokens;
}

}  // namespace detail

/// Per-sequence log-probs of the labels under the logits, one fused pass per row: a blocked
/// online log-sum-exp (one exp per logit) and a gather of the label's logit; no log-softmax is
/// materialised. Rows whose mask is 0 are not read. Rows run in parallel under `exec`.
/// Arguments, in the library's order (outputs, saved state, inputs, executor):
///   out    — the per-sequence results (see logprob_outputs), each (B) or empty;
///   lse    — (B, S) float, saved state for sequence_logprobs_backward: each row's
///            log-sum-exp, 0 for masked-out rows; may be empty (`{}`) when no backward follows;
///   logits — (B, S, V), float or llm::bf16, contiguous along V (rows may be strided, e.g. a
///            slice logits[:, :-1] against labels[:, 1:]); finite (-inf allowed if a row has a
///            finite entry);
///   labels — (B, S), any integral type, in [0, V) where masked in;
///   mask   — (B, S), integral or bool, nonzero = counted;
///   exec   — an llm::parallel::policy (thread_pool&, sequential{}, ...).
/// Throws llm::error on mismatched shapes, labels out of range, or a sequence with no
/// masked-in token (an empty loss mask).
/// Template parameters:
///   S — llm::simd backend (default: the widest available); the others are deduced: views
///       satisfying the concepts named in the requires clause (llm::tensor_view, lvalue
///       llm::tensor, or a type of your own with data(), extent(r), stride(r), rank()).
/// Example: `llm::align::sequence_logprobs(llm::align::logprob_outputs<float>{.sum = s}, lse, logits, labels, mask, pool);`
template <simd::backend S = simd::default_backend, float_or_double Out, class Lse = tensor_view<float, dims<2>>,
          class Logits, class Labels, class Mask, parallel::policy Exec>
    requires float_view<Lse, 2> && (!std::is_const_v<view_element_t<Lse>>) && dense_view<Logits, 3> &&
             integer_view<Labels, 2> && integer_view<Mask, 2>
void sequence_logprobs(const logprob_outputs<Out>& out, Lse&& lse_in, Logits&& logits_in, Labels&& labels_in,
                       Mask&& mask_in, Exec&& exec) {
    const auto lse = detail::strided<2>(lse_in);
    const auto logits = detail::strided<3>(std::as_const(logits_in));
    const auto labels = detail::strided<2>(std::as_const(labels_in));
    const auto mask = detail::strided<2>(std::as_const(mask_in));
    using E = std::remove_const_t<view_element_t<Logits>>;
    constexpr const char* fn = "sequence_logprobs";
    const std::vector<std::size_t> tokens = detail::check_logprob_inputs(fn, logits, labels, mask);
    const std::size_t B = logits.extent(0), T = logits.extent(1), V = logits.extent(2);
    const auto optional = [&](std::size_t got, std::size_t want, const char* what) {
        check(got == 0 || got == want, fn, ": ", what, " has ", got, " entries but the batch has ", want);
    };
    optional(out.sum.size(), B, "sum");
    optional(out.mean.size(), B, "mean");
    optional(out.tokens.size(), B, "tokens");
    const bool save_lse = lse.size() != 0;
    check(!save_lse || (lse.extent(0) == B && lse.extent(1) == T), fn, ": lse is (", lse.extent(0), ", ",
          lse.extent(1), ") but logits is (", B, ", ", T, ", ", V, ")");

    std::vector<std::size_t> rows;  // B * T was checked by check_logprob_inputs
    allocating(B * T * sizeof(std::size_t), fn, "the masked-in rows", [&] { rows.reserve(B * T); });
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t t = 0; t < T; ++t) {
            if (mask(b, t) != 0) {
                rows.push_back(b * T + t);
            }
        }
    }
    // per-row results land in their own slots; the per-sequence sums below run in row order,
    // so the result does not depend on the thread count
    std::vector<double> logp = checked_vector<double>(B * T, fn, "the per-row log-probs");
    parallel::parallel_for(exec, rows.size(), detail::row_grain(V), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const std::size_t b = rows[r] / T, t = rows[r] % T;
            const E* x = &logits(b, t, std::size_t{0});
            const double row_lse = simd::row_logsumexp<S>(x, V);
            logp[rows[r]] = static_cast<double>(static_cast<float>(x[labels(b, t)])) - row_lse;
            if (save_lse) {
                lse(b, t) = static_cast<float>(row_lse);
            }
        }
    });
    for (std::size_t b = 0; b < B; ++b) {
        double sum = 0;
        for (std::size_t t = 0; t < T; ++t) {
            sum += logp[b * T + t];
            if (save_lse && mask(b, t) == 0) {
                lse(b, t) = 0.0f;
            }
        }
        if (out.sum.size() != 0) {
            out.sum(b) = static_cast<Out>(sum);
        }
        if (out.mean.size() != 0) {
            out.mean(b) = static_cast<Out>(sum / static_cast<double>(tokens[b]));
        }
        if (out.tokens.size() != 0) {
            out.tokens(b) = tokens[b];
        }
    }
}

/// sequence_logprobs on llm::parallel::default_pool().
/// Example: `llm::align::sequence_logprobs(out, lse, logits, labels, mask);`
template <simd::backend S = simd::default_backend, float_or_double Out, class Lse = tensor_view<float, dims<2>>,
          class Logits, class Labels, class Mask>
    requires float_view<Lse, 2> && (!std::is_const_v<view_element_t<Lse>>) && dense_view<Logits, 3> &&
             integer_view<Labels, 2> && integer_view<Mask, 2>
void sequence_logprobs(const logprob_outputs<Out>& out, Lse&& lse, Logits&& logits, Labels&& labels, Mask&& mask) {
    sequence_logprobs<S>(out, std::forward<Lse>(lse), std::forward<Logits>(logits), std::forward<Labels>(labels),
                         std::forward<Mask>(mask), parallel::default_pool());
}

/// Gradient of sum_b (d_sum[b] * sum[b] + d_mean[b] * mean[b]) w.r.t. the logits, ADDED to
/// dlogits in one pass per row (gradients accumulate, docs/conventions.md; clear them with
/// llm::zero_grad): dlogits[b, t, :] += g_b * (onehot(labels[b, t]) - softmax(logits[b, t]))
/// for masked-in rows, with g_b = d_sum[b] + d_mean[b] / tokens[b]; masked-out rows are not
/// touched.
/// Arguments, in the library's order (outputs, saved state, inputs, executor):
///   dlogits — (B, S, V), float or llm::bf16, contiguous along V: accumulated into;
///   lse     — (B, S) float, from sequence_logprobs on the same logits;
///   d_sum   — (B) float or double: d(loss) / d(sum[b]), the upstream gradient;
///   d_mean  — (B) float or double, or empty (`{}`) when the loss did not use the mean;
///   logits, labels, mask — as given to sequence_logprobs;
///   exec    — an llm::parallel::policy.
/// Throws llm::error on mismatched shapes, labels out of range or an empty loss mask.
/// Template parameters:
///   S — llm::simd backend; the others are deduced (see sequence_logprobs).
/// Example: `llm::zero_grad(dlogits); llm::align::sequence_logprobs_backward(dlogits, lse, d_sum, {}, logits, labels, mask, pool);`
template <simd::backend S = simd::default_backend, class DLogits, class Lse, class DSum,
          class DMean = tensor_view<const float, dims<1>>, class Logits, class Labels, class Mask,
          parallel::policy Exec>
    requires mutable_dense_view<DLogits, 3> && float_view<Lse, 2> && float_or_double_view<DSum, 1> &&
             float_or_double_view<DMean, 1> && dense_view<Logits, 3> && integer_view<Labels, 2> &&
             integer_view<Mask, 2>
void sequence_logprobs_backward(DLogits&& dlogits_in, Lse&& lse_in, DSum&& d_sum_in, DMean&& d_mean_in,
                                Logits&& logits_in, Labels&& labels_in, Mask&& mask_in, Exec&& exec) {
    const auto dlogits = detail::strided<3>(dlogits_in);
    const auto lse = detail::strided<2>(std::as_const(lse_in));
    const auto d_sum = detail::strided<1>(std::as_const(d_sum_in));
    const auto d_mean = detail::strided<1>(std::as_const(d_mean_in));
    const auto logits = detail::strided<3>(std::as_const(logits_in));
    const auto labels = detail::strided<2>(std::as_const(labels_in));
    const auto mask = detail::strided<2>(std::as_const(mask_in));
    using D = view_element_t<DLogits>;
    constexpr const char* fn = "sequence_logprobs_backward";
    const std::vector<std::size_t> tokens = detail::check_logprob_inputs(fn, logits, labels, mask);
    const std::size_t B = logits.extent(0), T = logits.extent(1), V = logits.extent(2);
    check(lse.extent(0) == B && lse.extent(1) == T, fn, ": lse is (", lse.extent(0), ", ", lse.extent(1),
          ") but logits is (", B, ", ", T, ", ", V, ")");
    check(d_sum.size() == B, fn, ": d_sum has ", d_sum.size(), " entries but the batch has ", B);
    check(d_mean.size() == 0 || d_mean.size() == B, fn, ": d_mean has ", d_mean.size(), " entries but the batch has ",
          B);
    check(dlogits.extent(0) == B && dlogits.extent(1) == T && dlogits.extent(2) == V, fn, ": dlogits is (",
          dlogits.extent(0), ", ", dlogits.extent(1), ", ", dlogits.extent(2), ") but logits is (", B, ", ", T, ", ",
          V, ")");
    check(dlogits.stride(2) == 1, fn, ": dlogits must be contiguous along the vocab dim (stride ", dlogits.stride(2),
          ")");

    parallel::parallel_for(exec, B * T, detail::row_grain(V), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const std::size_t b = r / T, t = r % T;
            if (mask(b, t) == 0) {
                continue;  // no log-prob taken here: nothing to add
            }
            double g = static_cast<double>(d_sum(b));
            if (d_mean.size() != 0) {
                g += static_cast<double>(d_mean(b)) / static_cast<double>(tokens[b]);
            }
            D* d = &dlogits(b, t, std::size_t{0});
            detail::row_logprob_grad_add<S>(&logits(b, t, std::size_t{0}), d, V, lse(b, t), static_cast<float>(g),
                                            static_cast<std::size_t>(labels(b, t)));
        }
    });
}

/// sequence_logprobs_backward on llm::parallel::default_pool().
/// Example: `llm::align::sequence_logprobs_backward(dlogits, lse, d_sum, {}, logits, labels, mask);`
template <simd::backend S = simd::default_backend, class DLogits, class Lse, class DSum,
          class DMean = tensor_view<const float, dims<1>>, class Logits, class Labels, class Mask>
    requires mutable_dense_view<DLogits, 3> && float_view<Lse, 2> && float_or_double_view<DSum, 1> &&
             float_or_double_view<DMean, 1> && dense_view<Logits, 3> && integer_view<Labels, 2> &&
             integer_view<Mask, 2>
void sequence_logprobs_backward(DLogits&& dlogits, Lse&& lse, DSum&& d_sum, DMean&& d_mean, Logits&& logits,
                                Labels&& labels, Mask&& mask) {
    sequence_logprobs_backward<S>(std::forward<DLogits>(dlogits), std::forward<Lse>(lse), std::forward<DSum>(d_sum),
                                  std::forward<DMean>(d_mean), std::forward<Logits>(logits),
                                  std::forward<Labels>(labels), std::forward<Mask>(mask), parallel::default_pool());
}

}  // namespace llm::align
