// SPDX-License-Identifier: Apache-2.0
// Paired preference losses (DPO family, SimPO, CPO, ORPO): the policy concept, the batch views and the driver.
#pragma once

#include <llm/align/detail/pair_io.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <concepts>
#include <cstddef>
#include <string_view>

namespace llm::align {

/// A paired preference loss policy: an empty type naming one loss, its parameter struct, and its
/// maths. `evaluate` writes per-example losses, the logged rewards and the gradients of the batch
/// loss w.r.t. the policy's summed chosen/rejected log-probs, and returns the batch loss.
/// Policies: llm::align::dpo_sigmoid ... dpo_sigmoid_norm (dpo.hpp), simpo, cpo, orpo.
template <class L>
concept pair_loss_policy =
    std::default_initializable<typename L::config> &&
    requires(const typename L::config& cfg, const detail::pair_io<double>& io_d, const detail::pair_io<float>& io_f) {
        { L::name } -> std::convertible_to<std::string_view>;
        { L::needs_reference(cfg) } -> std::same_as<bool>;
        { L::needs_tokens } -> std::convertible_to<bool>;
        { L::validate(cfg) };
        { L::evaluate(cfg, io_d) } -> std::same_as<detail::pair_terms>;
        { L::evaluate(cfg, io_f) } -> std::same_as<detail::pair_terms>;
    };

/// Inputs of a paired loss, one entry per (chosen, rejected) pair; B >= 1.
///   chosen, rejected         (B): the policy's log-probs summed over the response tokens
///                                 (sequence_logprobs gives them);
///   ref_chosen, ref_rejected (B): the same under the reference model; leave empty (size 0)
///                                 for reference-free losses (SimPO, CPO, ORPO, sft) or when
///                                 dpo_config::reference_free is set;
///   chosen_tokens, rejected_tokens (B): response token counts; needed by losses that average
///                                 (ipo, sigmoid_norm, sft, SimPO, CPO and ORPO's NLL, R-DPO),
///                                 may be empty otherwise.
/// Template parameters:
///   T — float or double; the maths runs in T, batch sums in double.
/// Example: `llm::align::pair_batch<float> in{.chosen = c, .rejected = r, .ref_chosen = rc, .ref_rejected = rr};`
template <class T>
struct pair_batch {
    tensor_view<const T, dims<1>> chosen{};                   ///< (B) policy log-probs of the chosen responses
    tensor_view<const T, dims<1>> rejected{};                 ///< (B) policy log-probs of the rejected responses
    tensor_view<const T, dims<1>> ref_chosen{};               ///< (B) or empty: reference log-probs, chosen
    tensor_view<const T, dims<1>> ref_rejected{};             ///< (B) or empty: reference log-probs, rejected
    tensor_view<const std::size_t, dims<1>> chosen_tokens{};   ///< (B) or empty: chosen response lengths
    tensor_view<const std::size_t, dims<1>> rejected_tokens{}; ///< (B) or empty: rejected response lengths
};

/// Outputs of a paired loss, each (B), all written:
///   losses: per-example losses (their mean plus the NLL term is the batch loss; for aot and
///           aot_unpaired entry k belongs to the k-th smallest log-ratio, as in TRL);
///   chosen_rewards, rejected_rewards: the rewards TRL logs (beta * log-ratio for DPO losses,
///           beta * (average) log-prob for SimPO / CPO / ORPO);
///   d_chosen, d_rejected: d(batch loss) / d(chosen[i]) and / d(rejected[i]); feed them to
///           sequence_logprobs_backward as the per-sequence gradient.
/// Template parameters:
///   T — float or double, as in pair_batch.
/// Example: `llm::align::pair_outputs<float> out{losses, cr, rr, dc, dr};`
template <class T>
struct pair_outputs {
    tensor_view<T, dims<1>> losses{};            ///< (B) per-example losses
    tensor_view<T, dims<1>> chosen_rewards{};    ///< (B) logged reward of each chosen response
    tensor_view<T, dims<1>> rejected_rewards{};  ///< (B) logged reward of each rejected response
    tensor_view<T, dims<1>> d_chosen{};          ///< (B) d(batch loss) / d(chosen[i])
    tensor_view<T, dims<1>> d_rejected{};        ///< (B) d(batch loss) / d(rejected[i])
};

/// The quantities TRL logs for a batch (means over the batch).
struct pair_stats {
    double loss = 0;             ///< the batch loss (what is differentiated)
    double nll = 0;              ///< the NLL term before its weight (CPO, SimPO, ORPO, sft), else 0
    double chosen_reward = 0;    ///< rewards/chosen
    double rejected_reward = 0;  ///< rewards/rejected
    double margin = 0;           ///< rewards/margins
    double accuracy = 0;         ///< rewards/accuracies: fraction with chosen reward > rejected reward
    double chosen_logps = 0;     ///< logps/chosen
    double rejected_logps = 0;   ///< logps/rejected
    double log_odds_ratio = 0;   ///< ORPO: mean log sigmoid(log odds), else 0
    double log_odds_chosen = 0;  ///< ORPO: mean log odds, else 0
};

/// Computes the paired loss L over a batch: per-example losses, rewards and the gradients w.r.t.
/// the policy's summed log-probs, and returns the batch statistics TRL logs.
/// Shapes: every input and output (B) (optional inputs may be empty, see pair_batch).
/// Throws llm::error on mismatched sizes, B = 0, non-finite inputs, zero token counts where the
/// loss divides by them, and parameters out of range (beta <= 0 ...).
/// Template parameters:
///   L — a pair_loss_policy (dpo_sigmoid, dpo_ipo, simpo, orpo, ...);
///   T — float or double.
/// Example: `auto s = llm::align::pair_loss<llm::align::dpo_sigmoid>({.beta = 0.1}, in, out);`
template <class L, class T>
pair_stats pair_loss(const typename L::config& cfg, const pair_batch<T>& in, const pair_outputs<T>& out) {
    static_assert(pair_loss_policy<L>, "pair_loss: L must be a pair loss policy (see llm::align::pair_loss_policy)");
    static_assert(std::same_as<T, float> || std::same_as<T, double>, "pair_loss: T must be float or double");
    L::validate(cfg);
    const std::string_view fn = L::name;
    const std::size_t n = in.chosen.size();
    check(n > 0, "pair_loss(", fn, "): the batch is empty (chosen has 0 entries)");
    const auto need = [&](std::size_t got, const char* what) {
        check(got == n, "pair_loss(", fn, "): ", what, " has ", got, " entries but chosen has ", n);
    };
    need(in.rejected.size(), "rejected");
    const bool use_ref = L::needs_reference(cfg);
    if (use_ref || in.ref_chosen.size() != 0 || in.ref_rejected.size() != 0) {
        need(in.ref_chosen.size(), "ref_chosen");
        need(in.ref_rejected.size(), "ref_rejected");
    }
    if (L::needs_tokens || in.chosen_tokens.size() != 0 || in.rejected_tokens.size() != 0) {
        need(in.chosen_tokens.size(), "chosen_tokens");
        need(in.rejected_tokens.size(), "rejected_tokens");
    }
    need(out.losses.size(), "losses");
    need(out.chosen_rewards.size(), "chosen_rewards");
    need(out.rejected_rewards.size(), "rejected_rewards");
    need(out.d_chosen.size(), "d_chosen");
    need(out.d_rejected.size(), "d_rejected");

    const detail::pair_io<T> io{
        n,
        in.chosen.data(),
        in.rejected.data(),
        use_ref ? in.ref_chosen.data() : nullptr,
        use_ref ? in.ref_rejected.data() : nullptr,
        in.chosen_tokens.size() != 0 ? in.chosen_tokens.data() : nullptr,
        in.rejected_tokens.size() != 0 ? in.rejected_tokens.data() : nullptr,
        out.losses.data(),
        out.chosen_rewards.data(),
        out.rejected_rewards.data(),
        out.d_chosen.data(),
        out.d_rejected.data(),
    };
    detail::check_inputs(fn, io);
    const detail::pair_terms terms = L::evaluate(cfg, io);

    pair_stats s;
    s.loss = terms.loss;
    s.nll = terms.nll;
    s.log_odds_ratio = terms.log_odds_ratio;
    s.log_odds_chosen = terms.log_odds_chosen;
    for (std::size_t i = 0; i < n; ++i) {
        s.chosen_reward += static_cast<double>(io.chosen_rewards[i]);
        s.rejected_reward += static_cast<double>(io.rejected_rewards[i]);
        s.accuracy += io.chosen_rewards[i] > io.rejected_rewards[i] ? 1.0 : 0.0;
        s.chosen_logps += static_cast<double>(io.chosen[i]);
        s.rejected_logps += static_cast<double>(io.rejected[i]);
    }
    const double inv_n = 1.0 / static_cast<double>(n);
    s.chosen_reward *= inv_n;
    s.rejected_reward *= inv_n;
    s.margin = s.chosen_reward - s.rejected_reward;
    s.accuracy *= inv_n;
    s.chosen_logps *= inv_n;
    s.rejected_logps *= inv_n;
    return s;
}

}  // namespace llm::align
