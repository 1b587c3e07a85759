// SPDX-License-Identifier: Apache-2.0
// SimPO: reference-free preference loss on length-normalised log-probs with a target margin (and CPO-SimPO's NLL).
#pragma once

#include <llm/align/detail/pair_loops.hpp>
#include <llm/align/dpo.hpp>
#include <llm/core/error.hpp>

#include <cmath>
#include <string_view>

// Formula: TRL 1.16.0, trl/experimental/cpo/cpo_trainer.py, CPOTrainer.cpo_loss with
// loss_type = "simpo" (average_log_prob = True) and get_batch_loss_metrics
// (loss = mean + cpo_alpha * nll); Meng et al. 2024, arXiv 2405.14734, eq. 6.

namespace llm::align {

/// Parameters of SimPO (TRL's CPOConfig names).
struct simpo_config {
    double beta = 2.0;             ///< > 0; the SimPO paper uses 2.0-2.5 (TRL's CPOConfig default 0.1 is CPO's)
    double gamma = 0.5;            ///< target reward margin (TRL: simpo_gamma); the margin is gamma, not gamma/beta
    double label_smoothing = 0.0;  ///< [0, 0.5)
    double cpo_alpha = 0.0;        ///< >= 0; weight of the chosen NLL (CPO-SimPO); TRL's default 1.0 is CPO's
};

/// SimPO: with a = chosen / |y_w| and b = rejected / |y_l| (average log-probs),
/// z = beta (a - b) - gamma and loss = -(1-eps) log sigmoid(z) - eps log sigmoid(-z), plus
/// cpo_alpha * NLL of the chosen tokens. Rewards beta * a, beta * b. Needs token counts (> 0);
/// ignores reference log-probs.
/// Example: `llm::align::pair_loss<llm::align::simpo>(out, in, {.beta = 2.0, .gamma = 0.5});`
struct simpo {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    using config = simpo_config;
    static constexpr std::string_view name = "simpo";
    static constexpr bool needs_tokens = true;
    static constexpr bool needs_reference(const simpo_config&) { return false; }
    static void validate(const simpo_config& c) {
        check(std::isfinite(c.beta) && c.beta > 0, "simpo_config: beta = ", c.beta, " must be > 0");
        check(std::isfinite(c.gamma), "simpo_config: gamma = ", c.gamma, " must be finite");
        check(std::isfinite(c.label_smoothing) && c.label_smoothing >= 0 && c.label_smoothing < 0.5,
              "simpo_config: label_smoothing = ", c.label_smoothing, " must be in [0, 0.5)");
        check(std::isfinite(c.cpo_alpha) && c.cpo_alpha >= 0, "simpo_config: cpo_alpha = ", c.cpo_alpha,
              " must be >= 0");
    }
    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const simpo_config& c) {
        detail::require_tokens(name, in, false);
        const T beta = static_cast<T>(c.beta);
        const T gamma = static_cast<T>(c.gamma);
        const T eps = static_cast<T>(c.label_smoothing);
        const double loss = detail::mean_over_pairs(out, in, [&](std::size_t i) {
            const T lc = static_cast<T>(in.chosen_tokens(i));
            const T lr = static_cast<T>(in.rejected_tokens(i));
            const T a = in.chosen(i) / lc;
            const T b = in.rejected(i) / lr;
            out.chosen_rewards(i) = beta * a;
            out.rejected_rewards(i) = beta * b;
            const auto v = detail::smoothed_logistic(beta * (a - b) - gamma, eps);
            return pair_value<T>{v.loss, beta * v.d_chosen / lc, -beta * v.d_chosen / lr};
        });
        const double nll = detail::add_chosen_nll(out, in, c.cpo_alpha);
        return {loss + c.cpo_alpha * nll, nll};
    }
    ///@}
};

}  // namespace llm::align
