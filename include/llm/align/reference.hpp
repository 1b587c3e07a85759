// SPDX-License-Identifier: Apache-2.0
// The plain double-precision oracle for sequence log-probs and their logits gradient; for tests, never the default.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace llm::align::reference {

/// Result of reference sequence_logprobs: per sequence sum and mean of the masked-in tokens'
/// log-probs, their count, and each row's log-sum-exp (0 for masked-out rows).
struct logprob_result {
    std::vector<double> sum;          ///< (B) summed log-probs of the masked-in tokens
    std::vector<double> mean;         ///< (B) sum / tokens
    std::vector<std::size_t> tokens;  ///< (B) number of masked-in tokens
    std::vector<double> lse;          ///< (B * S) row-major log-sum-exp, 0 for masked-out rows
};

/// Shapes: logits (B, S, V) row-major, labels (B, S), mask (B, S) (nonzero = counted).
/// logp[b, t] = logits[b, t, labels[b, t]] - log sum_v exp(logits[b, t, v]), in double.
/// Get(i) returns logit i as double (lets one oracle serve float and bf16 storage).
/// Example: `auto r = llm::align::reference::sequence_logprobs(B, S, V, [&](std::size_t i) { return double(x[i]); }, labels, mask);`
template <class Get, std::integral Label>
    requires std::is_invocable_r_v<double, Get&, std::size_t>
logprob_result sequence_logprobs(std::size_t B, std::size_t S, std::size_t V, Get get, const Label* labels,
                                 const std::uint8_t* mask) {
    constexpr const char* fn = "reference::sequence_logprobs";
    logprob_result r{checked_vector<double>(B, fn, "the sums"), checked_vector<double>(B, fn, "the means"),
                     checked_vector<std::size_t>(B, fn, "the token counts"),
                     checked_vector<double>(checked_mul(B, S, fn, "the rows B * S"), fn, "the log-sum-exps")};
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t t = 0; t < S; ++t) {
            const std::size_t row = b * S + t;
            if (mask[row] == 0) {
                continue;
            }
            double m = -std::numeric_limits<double>::infinity();
            for (std::size_t v = 0; v < V; ++v) {
                m = std::max(m, get(row * V + v));
            }
            double s = 0;
            for (std::size_t v = 0; v < V; ++v) {
                s += std::exp(get(row * V + v) - m);
            }
            r.lse[row] = m + std::log(s);
            r.sum[b] += get(row * V + static_cast<std::size_t>(labels[row])) - r.lse[row];
            ++r.tokens[b];
        }
        r.mean[b] = r.tokens[b] != 0 ? r.sum[b] / static_cast<double>(r.tokens[b]) : 0.0;
    }
    return r;
}

/// dlogits[b, t, v] = g_b * (onehot(labels[b, t])[v] - softmax(logits[b, t])[v]) for masked-in
/// rows, 0 elsewhere, with g_b = d_sum[b] + d_mean[b] / tokens[b]. Returns (B * S * V) doubles.
/// Example: `auto d = llm::align::reference::sequence_logprobs_backward(B, S, V, get, labels, mask, d_sum, d_mean);`
template <class Get, std::integral Label>
    requires std::is_invocable_r_v<double, Get&, std::size_t>
std::vector<double> sequence_logprobs_backward(std::size_t B, std::size_t S, std::size_t V, Get get,
                                               const Label* labels, const std::uint8_t* mask,
                                               const std::vector<double>& d_sum, const std::vector<double>& d_mean) {
    const logprob_result f = sequence_logprobs(B, S, V, get, labels, mask);
    constexpr const char* fn = "reference::sequence_logprobs_backward";
    // B * S was checked by the forward above.
    std::vector<double> d = checked_vector<double>(checked_mul(B * S, V, fn, "the logits B * S * V"), fn, "the gradient");
    for (std::size_t b = 0; b < B; ++b) {
        const double g = d_sum[b] + (d_mean.empty() ? 0.0 : d_mean[b] / static_cast<double>(f.tokens[b]));
        for (std::size_t t = 0; t < S; ++t) {
            const std::size_t row = b * S + t;
            if (mask[row] == 0) {
                continue;
            }
            for (std::size_t v = 0; v < V; ++v) {
                const double p = std::exp(get(row * V + v) - f.lse[row]);
                d[row * V + v] = g * ((v == static_cast<std::size_t>(labels[row]) ? 1.0 : 0.0) - p);
            }
        }
    }
    return d;
}

}  // namespace llm::align::reference
