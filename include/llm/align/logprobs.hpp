// SPDX-License-Identifier: Apache-2.0
// Sequence log-probs from logits (fused log-softmax + gather, fp32/bf16) and the one-pass logits gradient.
#pragma once

#include <llm/align/cpu.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace llm::align {

/// Outputs of sequence_logprobs. Every view may be left empty (size 0) when not wanted.
///   sum    (B): sum over the masked-in tokens of log softmax(logits[b, t])[labels[b, t]];
///   mean   (B): sum / tokens (SimPO's and ORPO's length-normalised log-prob);
///   tokens (B): number of masked-in tokens;
///   lse (B, S): log-sum-exp of every row, what sequence_logprobs_backward needs (masked-out
///               rows are not computed and get 0).
/// Template parameters:
///   Out — float or double, the type of sum and mean.
/// Example: `llm::align::logprob_outputs<float> out{.sum = sums, .tokens = counts, .lse = lse};`
template <class Out = float>
struct logprob_outputs {
    tensor_view<Out, dims<1>> sum{};            ///< (B) summed log-probs of the masked-in tokens
    tensor_view<Out, dims<1>> mean{};           ///< (B) sum / tokens
    tensor_view<std::size_t, dims<1>> tokens{}; ///< (B) number of masked-in tokens
    tensor_view<float, dims<2>> lse{};          ///< (B, S) row log-sum-exp, 0 for masked-out rows
};

namespace detail {

template <class E>
inline constexpr bool is_logit_type = std::same_as<E, float> || std::same_as<E, llm::bf16>;

// A const, strided rank-R view of any tensor or view, so one code path takes contiguous
// tensors and slices such as logits[:, :-1] alike.
template <std::size_t R, class X>
auto const_strided(const X& x) {
    const auto v = x.view();
    using E = typename decltype(v)::value_type;
    return tensor_view<const E, dims<R>, layout_strided>(v);
}
template <std::size_t R, class X>
auto mutable_strided(const X& x) {
    const auto v = x.view();
    using E = typename decltype(v)::element_type;
    return tensor_view<E, dims<R>, layout_strided>(v);
}

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
/// materialised. Rows whose mask is 0 are not read. Rows run in parallel under `pol`.
/// Shapes: logits (B, S, V), float or llm::bf16, contiguous along V (rows may be strided, e.g.
/// a slice logits[:, :-1] against labels[:, 1:]); labels (B, S), any integral type, in [0, V)
/// where masked in; mask (B, S), integral or bool, nonzero = counted; outputs see
/// logprob_outputs. Logits must be finite (-inf allowed if a row has a finite entry).
/// Throws llm::error on mismatched shapes, labels out of range, or a sequence with no
/// masked-in token (an empty loss mask).
/// Template parameters:
///   S      — llm::simd backend (default: the widest available);
///   Policy — llm::parallel policy (thread_pool, sequential);
///   Logits, Labels, Mask — tensors or tensor_views of rank 3, 2, 2;
///   Out    — float or double.
/// Example: `llm::align::sequence_logprobs(pool, logits, labels, mask, llm::align::logprob_outputs<float>{.sum = s, .lse = lse});`
template <simd::backend S = simd::default_backend, class Policy, class Logits, class Labels, class Mask, class Out>
void sequence_logprobs(Policy&& pol, const Logits& logits_in, const Labels& labels_in, const Mask& mask_in,
                       const logprob_outputs<Out>& out) {
    const auto logits = detail::const_strided<3>(logits_in);
    const auto labels = detail::const_strided<2>(labels_in);
    const auto mask = detail::const_strided<2>(mask_in);
    using E = typename decltype(logits)::value_type;
    static_assert(detail::is_logit_type<E>, "sequence_logprobs: logits must hold float or llm::bf16");
    static_assert(std::integral<typename decltype(labels)::value_type>, "sequence_logprobs: labels must be integral");
    static_assert(std::integral<typename decltype(mask)::value_type>, "sequence_logprobs: mask must be integral or bool");
    static_assert(std::same_as<Out, float> || std::same_as<Out, double>, "sequence_logprobs: Out must be float or double");
    constexpr const char* fn = "sequence_logprobs";
    const std::vector<std::size_t> tokens = detail::check_logprob_inputs(fn, logits, labels, mask);
    const std::size_t B = logits.extent(0), T = logits.extent(1), V = logits.extent(2);
    const auto optional = [&](std::size_t got, std::size_t want, const char* what) {
        check(got == 0 || got == want, fn, ": ", what, " has ", got, " entries but the batch has ", want);
    };
    optional(out.sum.size(), B, "sum");
    optional(out.mean.size(), B, "mean");
    optional(out.tokens.size(), B, "tokens");
    check(out.lse.size() == 0 || (out.lse.extent(0) == B && out.lse.extent(1) == T), fn, ": lse is (",
          out.lse.extent(0), ", ", out.lse.extent(1), ") but logits is (", B, ", ", T, ", ", V, ")");

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
    parallel::parallel_for(pol, rows.size(), detail::row_grain(V), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const std::size_t b = rows[r] / T, t = rows[r] % T;
            const E* x = &logits(b, t, std::size_t{0});
            const double lse = detail::row_logsumexp<S>(x, V);
            logp[rows[r]] = static_cast<double>(static_cast<float>(x[labels(b, t)])) - lse;
            if (out.lse.size() != 0) {
                out.lse(b, t) = static_cast<float>(lse);
            }
        }
    });
    for (std::size_t b = 0; b < B; ++b) {
        double sum = 0;
        for (std::size_t t = 0; t < T; ++t) {
            sum += logp[b * T + t];
            if (out.lse.size() != 0 && mask(b, t) == 0) {
                out.lse(b, t) = 0.0f;
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
/// Example: `llm::align::sequence_logprobs(logits, labels, mask, out);`
template <simd::backend S = simd::default_backend, class Logits, class Labels, class Mask, class Out>
void sequence_logprobs(const Logits& logits, const Labels& labels, const Mask& mask, const logprob_outputs<Out>& out) {
    sequence_logprobs<S>(parallel::default_pool(), logits, labels, mask, out);
}

/// Gradient of sum_b (d_sum[b] * sum[b] + d_mean[b] * mean[b]) w.r.t. the logits, written in one
/// pass per row: dlogits[b, t, :] = g_b * (onehot(labels[b, t]) - softmax(logits[b, t])) for
/// masked-in rows, 0 for masked-out rows, with g_b = d_sum[b] + d_mean[b] / tokens[b].
/// Shapes: logits, labels, mask as given to sequence_logprobs; lse (B, S) from it; d_sum (B);
/// d_mean (B) or empty; dlogits (B, S, V), float or llm::bf16, contiguous along V.
/// Throws llm::error on mismatched shapes, labels out of range or an empty loss mask.
/// Template parameters:
///   S, Policy, Logits, Labels, Mask — as sequence_logprobs;
///   G — float or double (the per-sequence gradients);
///   DLogits — a tensor or tensor_view of rank 3 holding float or llm::bf16.
/// Example: `llm::align::sequence_logprobs_backward(pool, logits, labels, mask, lse, d_sum, {}, dlogits);`
template <simd::backend S = simd::default_backend, class Policy, class Logits, class Labels, class Mask, class G,
          class DLogits>
void sequence_logprobs_backward(Policy&& pol, const Logits& logits_in, const Labels& labels_in, const Mask& mask_in,
                                tensor_view<const float, dims<2>> lse, tensor_view<const G, dims<1>> d_sum,
                                tensor_view<const G, dims<1>> d_mean, const DLogits& dlogits_in) {
    const auto logits = detail::const_strided<3>(logits_in);
    const auto labels = detail::const_strided<2>(labels_in);
    const auto mask = detail::const_strided<2>(mask_in);
    const auto dlogits = detail::mutable_strided<3>(dlogits_in);
    using E = typename decltype(logits)::value_type;
    using D = typename decltype(dlogits)::element_type;
    static_assert(detail::is_logit_type<E>, "sequence_logprobs_backward: logits must hold float or llm::bf16");
    static_assert(detail::is_logit_type<D>, "sequence_logprobs_backward: dlogits must hold float or llm::bf16");
    static_assert(std::same_as<G, float> || std::same_as<G, double>,
                  "sequence_logprobs_backward: d_sum must hold float or double");
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

    parallel::parallel_for(pol, B * T, detail::row_grain(V), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const std::size_t b = r / T, t = r % T;
            D* d = &dlogits(b, t, std::size_t{0});
            if (mask(b, t) == 0) {
                std::fill(d, d + V, D(0.0f));
                continue;
            }
            double g = static_cast<double>(d_sum(b));
            if (d_mean.size() != 0) {
                g += static_cast<double>(d_mean(b)) / static_cast<double>(tokens[b]);
            }
            detail::row_logprob_grad<S>(&logits(b, t, std::size_t{0}), d, V, lse(b, t), static_cast<float>(g),
                                        static_cast<std::size_t>(labels(b, t)));
        }
    });
}

/// sequence_logprobs_backward on llm::parallel::default_pool().
/// Example: `llm::align::sequence_logprobs_backward(logits, labels, mask, lse, d_sum, {}, dlogits);`
template <simd::backend S = simd::default_backend, class Logits, class Labels, class Mask, class G, class DLogits>
void sequence_logprobs_backward(const Logits& logits, const Labels& labels, const Mask& mask,
                                tensor_view<const float, dims<2>> lse, tensor_view<const G, dims<1>> d_sum,
                                tensor_view<const G, dims<1>> d_mean, const DLogits& dlogits) {
    sequence_logprobs_backward<S>(parallel::default_pool(), logits, labels, mask, lse, d_sum, d_mean, dlogits);
}

}  // namespace llm::align
