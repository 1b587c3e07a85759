// SPDX-License-Identifier: Apache-2.0
// CPO: reference-free sigmoid preference loss on summed log-probs plus the chosen responses' NLL.
#pragma once

#include <llm/align/detail/pair_loops.hpp>
#include <llm/align/dpo.hpp>
#include <llm/core/error.hpp>

#include <cmath>
#include <string_view>

// Formula: TRL 1.16.0, trl/experimental/cpo/cpo_trainer.py, CPOTrainer.cpo_loss with
// loss_type = "sigmoid" (alpha = 0) and get_batch_loss_metrics (loss = mean + cpo_alpha * nll);
// Xu et al. 2024, arXiv 2401.08417, eq. 3.

namespace llm::align {

/// Parameters of CPO (TRL's CPOConfig names and defaults).
struct cpo_config {
    double beta = 0.1;             ///< > 0
    double label_smoothing = 0.0;  ///< [0, 0.5)
    double cpo_alpha = 1.0;        ///< >= 0; weight of the chosen NLL term
};

/// CPO: z = beta (chosen - rejected), loss = -(1-eps) log sigmoid(z) - eps log sigmoid(-z), plus
/// cpo_alpha * NLL of the chosen tokens (-sum(chosen) / sum(chosen_tokens)). Rewards beta * chosen,
/// beta * rejected. Needs token counts (> 0) when cpo_alpha > 0; ignores reference log-probs.
/// Example: `llm::align::pair_loss<llm::align::cpo>(out, in, {.beta = 0.1, .cpo_alpha = 1.0});`
struct cpo {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    using config = cpo_config;
    static constexpr std::string_view name = "cpo";
    static constexpr bool needs_tokens = false;
    static constexpr bool needs_reference(const cpo_config&) { return false; }
    static void validate(const cpo_config& c) {
        check(std::isfinite(c.beta) && c.beta > 0, "cpo_config: beta = ", c.beta, " must be > 0");
        check(std::isfinite(c.label_smoothing) && c.label_smoothing >= 0 && c.label_smoothing < 0.5,
              "cpo_config: label_smoothing = ", c.label_smoothing, " must be in [0, 0.5)");
        check(std::isfinite(c.cpo_alpha) && c.cpo_alpha >= 0, "cpo_config: cpo_alpha = ", c.cpo_alpha,
              " must be >= 0");
    }
    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const cpo_config& c) {
        if (c.cpo_alpha != 0) {
            detail::require_tokens(name, in, false);
        }
        const T beta = static_cast<T>(c.beta);
        const T eps = static_cast<T>(c.label_smoothing);
        const double loss = detail::mean_over_pairs(out, in, [&](std::size_t i) {
            out.chosen_rewards(i) = beta * in.chosen(i);
            out.rejected_rewards(i) = beta * in.rejected(i);
            const auto v = detail::smoothed_logistic(beta * (in.chosen(i) - in.rejected(i)), eps);
            return pair_value<T>{v.loss, beta * v.d_chosen, -beta * v.d_chosen};
        });
        const double nll = c.cpo_alpha != 0 ? detail::add_chosen_nll(out, in, c.cpo_alpha) : 0.0;
        return {loss + c.cpo_alpha * nll, nll};
    }
    ///@}
};

}  // namespace llm::align
