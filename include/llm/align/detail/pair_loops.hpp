// SPDX-License-Identifier: Apache-2.0
// The loops the library's paired loss policies share: token-count checks, the mean over pairs, the NLL term, DPO rewards.
#pragma once

#include <llm/align/pair_loss.hpp>
#include <llm/core/error.hpp>

#include <cstddef>
#include <string_view>

namespace llm::align::detail {

/// The token counts, required by losses that divide by them; zero counts are an empty response
/// (an empty loss mask) unless `clamp_to_one` (TRL's clamp(min=1) in ipo and sigmoid_norm).
template <class T>
void require_tokens(std::string_view fn, const pair_inputs<T>& in, bool clamp_to_one) {
    check(!in.chosen_tokens.empty() && !in.rejected_tokens.empty(), "pair_loss(", fn,
          "): chosen_tokens and rejected_tokens are required by this loss");
    if (clamp_to_one) {
        return;
    }
    for (std::size_t i = 0; i < in.size(); ++i) {
        check(in.chosen_tokens(i) > 0, "pair_loss(", fn, "): chosen_tokens[", i,
              "] = 0: the chosen response has no tokens (empty loss mask)");
        check(in.rejected_tokens(i) > 0, "pair_loss(", fn, "): rejected_tokens[", i,
              "] = 0: the rejected response has no tokens (empty loss mask)");
    }
}

/// Token count i of a (B) view, or 0 when the caller gave none.
template <class T>
T token_count(const tensor_view<const std::size_t, dims<1>>& tokens, std::size_t i) {
    return tokens.empty() ? T(0) : static_cast<T>(tokens(i));
}

/// Runs an elementwise loss: f(i) gives pair i's pair_value; the batch loss is their mean, so the
/// written gradients are the slopes / n. Returns the mean.
template <class T, class F>
double mean_over_pairs(const pair_outputs<T>& out, const pair_inputs<T>& in, F&& f) {
    const std::size_t n = in.size();
    double sum = 0;
    const T inv_n = T(1) / static_cast<T>(n);
    for (std::size_t i = 0; i < n; ++i) {
        const pair_value<T> v = f(i);
        out.losses(i) = v.loss;
        out.d_chosen(i) = v.d_chosen * inv_n;
        out.d_rejected(i) = v.d_rejected * inv_n;
        sum += static_cast<double>(v.loss);
    }
    return sum / static_cast<double>(n);
}

/// TRL's NLL term: token-mean cross entropy over the chosen responses, i.e.
/// -sum(chosen) / sum(chosen_tokens). Adds weight * its gradient to d_chosen; returns the NLL.
template <class T>
double add_chosen_nll(const pair_outputs<T>& out, const pair_inputs<T>& in, double weight) {
    double log_prob = 0;
    double tokens = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        log_prob += static_cast<double>(in.chosen(i));
        tokens += static_cast<double>(in.chosen_tokens(i));
    }
    if (weight != 0) {
        const T g = static_cast<T>(-weight / tokens);
        for (std::size_t i = 0; i < in.size(); ++i) {
            out.d_chosen(i) += g;
        }
    }
    return -log_prob / tokens;
}

/// Sets rewards to beta * (policy - reference) log-ratios, TRL's DPO logging.
template <class T>
void log_ratio_rewards(const pair_outputs<T>& out, const pair_inputs<T>& in, T beta) {
    for (std::size_t i = 0; i < in.size(); ++i) {
        out.chosen_rewards(i) = beta * in.chosen_log_ratio(i);
        out.rejected_rewards(i) = beta * in.rejected_log_ratio(i);
    }
}

}  // namespace llm::align::detail
