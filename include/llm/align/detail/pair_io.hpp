// SPDX-License-Identifier: Apache-2.0
// Raw-pointer view of a paired-loss batch and the loops every paired loss policy shares.
#pragma once

#include <llm/core/error.hpp>

#include <cmath>
#include <cstddef>
#include <string_view>

namespace llm::align::detail {

/// What pair_loss hands a policy: n pairs; ref_* are null when the loss runs reference-free
/// (read as 0); *_tokens are null when the caller gave none. Outputs are all n long.
template <class T>
struct pair_io {
    std::size_t n;
    const T* chosen;
    const T* rejected;
    const T* ref_chosen;
    const T* ref_rejected;
    const std::size_t* chosen_tokens;
    const std::size_t* rejected_tokens;
    T* losses;
    T* chosen_rewards;
    T* rejected_rewards;
    T* d_chosen;
    T* d_rejected;

    T ref_c(std::size_t i) const { return ref_chosen != nullptr ? ref_chosen[i] : T(0); }
    T ref_r(std::size_t i) const { return ref_rejected != nullptr ? ref_rejected[i] : T(0); }
};

/// Batch-level results a policy returns besides what it writes through pair_io.
struct pair_terms {
    double loss = 0;
    double nll = 0;
    double log_odds_ratio = 0;
    double log_odds_chosen = 0;
};

/// One pair's loss and its partial derivatives w.r.t. the chosen and rejected summed log-probs.
template <class T>
struct pair_value {
    T loss;
    T d_chosen;
    T d_rejected;
};

/// Rejects NaN/Inf inputs: every loss here is finite for finite inputs, so a non-finite input is
/// the caller's bug and would otherwise surface as a NaN gradient far from its cause.
template <class T>
void check_inputs(std::string_view fn, const pair_io<T>& io) {
    const auto finite = [&](const T* p, const char* what) {
        if (p == nullptr) {
            return;
        }
        for (std::size_t i = 0; i < io.n; ++i) {
            check(std::isfinite(p[i]), "pair_loss(", fn, "): ", what, "[", i, "] = ", p[i], " is not finite");
        }
    };
    finite(io.chosen, "chosen");
    finite(io.rejected, "rejected");
    finite(io.ref_chosen, "ref_chosen");
    finite(io.ref_rejected, "ref_rejected");
}

/// The token counts, required by losses that divide by them; zero counts are an empty response
/// (an empty loss mask) unless `clamp_to_one` (TRL's clamp(min=1) in ipo and sigmoid_norm).
template <class T>
void require_tokens(std::string_view fn, const pair_io<T>& io, bool clamp_to_one) {
    check(io.chosen_tokens != nullptr && io.rejected_tokens != nullptr, "pair_loss(", fn,
          "): chosen_tokens and rejected_tokens are required by this loss");
    if (clamp_to_one) {
        return;
    }
    for (std::size_t i = 0; i < io.n; ++i) {
        check(io.chosen_tokens[i] > 0, "pair_loss(", fn, "): chosen_tokens[", i,
              "] = 0: the chosen response has no tokens (empty loss mask)");
        check(io.rejected_tokens[i] > 0, "pair_loss(", fn, "): rejected_tokens[", i,
              "] = 0: the rejected response has no tokens (empty loss mask)");
    }
}

/// Runs an elementwise loss: f(i) gives pair i's loss and its slopes; the batch loss is their
/// mean, so the written gradients are the slopes / n. Returns the mean.
template <class T, class F>
double mean_over_pairs(const pair_io<T>& io, F&& f) {
    double sum = 0;
    const T inv_n = T(1) / static_cast<T>(io.n);
    for (std::size_t i = 0; i < io.n; ++i) {
        const pair_value<T> v = f(i);
        io.losses[i] = v.loss;
        io.d_chosen[i] = v.d_chosen * inv_n;
        io.d_rejected[i] = v.d_rejected * inv_n;
        sum += static_cast<double>(v.loss);
    }
    return sum / static_cast<double>(io.n);
}

/// TRL's NLL term: token-mean cross entropy over the chosen responses, i.e.
/// -sum(chosen) / sum(chosen_tokens). Adds weight * its gradient to d_chosen; returns the NLL.
template <class T>
double add_chosen_nll(const pair_io<T>& io, double weight) {
    double log_prob = 0;
    double tokens = 0;
    for (std::size_t i = 0; i < io.n; ++i) {
        log_prob += static_cast<double>(io.chosen[i]);
        tokens += static_cast<double>(io.chosen_tokens[i]);
    }
    if (weight != 0) {
        const T g = static_cast<T>(-weight / tokens);
        for (std::size_t i = 0; i < io.n; ++i) {
            io.d_chosen[i] += g;
        }
    }
    return -log_prob / tokens;
}

/// Sets rewards to beta * (policy - reference) log-ratios, TRL's DPO logging.
template <class T>
void log_ratio_rewards(const pair_io<T>& io, T beta) {
    for (std::size_t i = 0; i < io.n; ++i) {
        io.chosen_rewards[i] = beta * (io.chosen[i] - io.ref_c(i));
        io.rejected_rewards[i] = beta * (io.rejected[i] - io.ref_r(i));
    }
}

}  // namespace llm::align::detail
