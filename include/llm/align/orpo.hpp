// SPDX-License-Identifier: Apache-2.0
// ORPO: odds-ratio preference term on average log-probs plus the SFT NLL, no reference model.
#pragma once

#include <llm/align/detail/math.hpp>
#include <llm/align/detail/pair_loops.hpp>
#include <llm/align/pair_loss.hpp>
#include <llm/core/error.hpp>
#include <llm/core/math.hpp>

#include <cmath>
#include <string_view>

// Formula: TRL 1.16.0, trl/experimental/orpo/orpo_trainer.py, ORPOTrainer.odds_ratio_loss and
// get_batch_loss_metrics (loss = nll - mean(beta * log sigmoid(log_odds))); Hong et al. 2024,
// arXiv 2403.07691, eqs. 4-7.

namespace llm::align {

/// Parameters of ORPO (TRL's ORPOConfig).
struct orpo_config {
    double beta = 0.1;  ///< > 0, the weight of the odds-ratio term (the paper's lambda)
};

/// ORPO: with a = chosen / |y_w|, b = rejected / |y_l| (average log-probs, each < 0),
/// log_odds = (a - b) - (log(1 - e^a) - log(1 - e^b)); per-example loss
/// -beta log sigmoid(log_odds); batch loss = NLL of the chosen tokens + their mean.
/// Rewards beta * a, beta * b. Needs token counts (> 0); ignores reference log-probs.
/// Throws llm::error if an average log-prob is >= 0 (a probability of 1 has infinite odds).
/// Example: `llm::align::pair_loss<llm::align::orpo>(out, in, {.beta = 0.1});`
struct orpo {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    using config = orpo_config;
    static constexpr std::string_view name = "orpo";
    static constexpr bool needs_tokens = true;
    static constexpr bool needs_reference(const orpo_config&) { return false; }
    static void validate(const orpo_config& c) {
        check(std::isfinite(c.beta) && c.beta > 0, "orpo_config: beta = ", c.beta, " must be > 0");
    }
    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const orpo_config& c) {
        detail::require_tokens(name, in, false);
        const T beta = static_cast<T>(c.beta);
        double ratio_sum = 0;
        double odds_sum = 0;
        const double loss = detail::mean_over_pairs(out, in, [&](std::size_t i) {
            const T lc = static_cast<T>(in.chosen_tokens(i));
            const T lr = static_cast<T>(in.rejected_tokens(i));
            const T a = in.chosen(i) / lc;
            const T b = in.rejected(i) / lr;
            check(a < T(0) && b < T(0), "pair_loss(orpo): average log-probs must be < 0, got chosen ", a,
                  " and rejected ", b, " at pair ", i);
            out.chosen_rewards(i) = beta * a;
            out.rejected_rewards(i) = beta * b;
            const T log_odds = (a - b) - (log1mexp(a) - log1mexp(b));
            const T ratio = log_sigmoid(log_odds);
            ratio_sum += static_cast<double>(ratio);
            odds_sum += static_cast<double>(log_odds);
            const T g = -beta * sigmoid(-log_odds);  // d loss / d log_odds
            return pair_value<T>{-beta * ratio, g * (T(1) - detail::log1mexp_slope(a)) / lc,
                                         -g * (T(1) - detail::log1mexp_slope(b)) / lr};
        });
        const double nll = detail::add_chosen_nll(out, in, 1.0);
        const double n = static_cast<double>(in.size());
        return {nll + loss, nll, ratio_sum / n, odds_sum / n};
    }
    ///@}
};

}  // namespace llm::align
