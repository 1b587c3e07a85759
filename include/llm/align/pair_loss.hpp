// SPDX-License-Identifier: Apache-2.0
// Paired preference losses (DPO family, SimPO, CPO, ORPO and your own): the batch views, the policy concept and the driver.
#pragma once

#include <llm/align/concepts.hpp>
#include <llm/core/detected.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>

namespace llm::align {

/// Inputs of a paired loss, one entry per (chosen, rejected) pair; B >= 1.
///   chosen, rejected         (B): the policy's log-probs summed over the response tokens
///                                 (sequence_logprobs gives them);
///   ref_chosen, ref_rejected (B): the same under the reference model; leave empty (size 0)
///                                 for reference-free losses (SimPO, CPO, ORPO, sft) or when
///                                 dpo_config::reference_free is set;
///   chosen_tokens, rejected_tokens (B): response token counts; needed by losses that average
///                                 (ipo, sigmoid_norm, sft, SimPO, CPO and ORPO's NLL, R-DPO),
///                                 may be empty otherwise.
/// A loss policy's evaluate receives the same struct, checked by pair_loss: every non-empty
/// view has B entries, the log-probs are finite, and the reference views are empty whenever
/// the policy's needs_reference(cfg) is false (read them through reference_chosen /
/// reference_rejected, which give 0 then).
/// Template parameters:
///   T — float or double; the maths runs in T, batch sums in double.
/// Example: `llm::align::pair_inputs<float> in{.chosen = c, .rejected = r, .ref_chosen = rc, .ref_rejected = rr};`
template <float_or_double T>
struct pair_inputs {
    tensor_view<const T, dims<1>> chosen{};                    ///< (B) policy log-probs of the chosen responses
    tensor_view<const T, dims<1>> rejected{};                  ///< (B) policy log-probs of the rejected responses
    tensor_view<const T, dims<1>> ref_chosen{};                ///< (B) or empty: reference log-probs, chosen
    tensor_view<const T, dims<1>> ref_rejected{};              ///< (B) or empty: reference log-probs, rejected
    tensor_view<const std::size_t, dims<1>> chosen_tokens{};   ///< (B) or empty: chosen response lengths
    tensor_view<const std::size_t, dims<1>> rejected_tokens{}; ///< (B) or empty: rejected response lengths

    /// Number of pairs B (the size of chosen).
    std::size_t size() const noexcept { return chosen.size(); }
    /// ref_chosen(i), or 0 when the reference is absent (reference-free).
    T reference_chosen(std::size_t i) const { return ref_chosen.empty() ? T(0) : ref_chosen(i); }
    /// ref_rejected(i), or 0 when the reference is absent (reference-free).
    T reference_rejected(std::size_t i) const { return ref_rejected.empty() ? T(0) : ref_rejected(i); }
    /// chosen(i) - reference_chosen(i): DPO's implicit reward of the chosen response, over beta.
    T chosen_log_ratio(std::size_t i) const { return chosen(i) - reference_chosen(i); }
    /// rejected(i) - reference_rejected(i).
    T rejected_log_ratio(std::size_t i) const { return rejected(i) - reference_rejected(i); }
};

/// Outputs of a paired loss, each (B), all written (set, not accumulated: they are the loss
/// and the seed of the backward pass):
///   losses: per-example losses (their mean plus the NLL term is the batch loss; for aot and
///           aot_unpaired entry k belongs to the k-th smallest log-ratio, as in TRL);
///   chosen_rewards, rejected_rewards: the rewards TRL logs (beta * log-ratio for DPO losses,
///           beta * (average) log-prob for SimPO / CPO / ORPO);
///   d_chosen, d_rejected: d(batch loss) / d(chosen[i]) and / d(rejected[i]); feed them to
///           sequence_logprobs_backward as the per-sequence gradient.
/// Template parameters:
///   T — float or double, as in pair_inputs.
/// Example: `llm::align::pair_outputs<float> out{losses, cr, rr, dc, dr};`
template <float_or_double T>
struct pair_outputs {
    tensor_view<T, dims<1>> losses{};            ///< (B) per-example losses
    tensor_view<T, dims<1>> chosen_rewards{};    ///< (B) logged reward of each chosen response
    tensor_view<T, dims<1>> rejected_rewards{};  ///< (B) logged reward of each rejected response
    tensor_view<T, dims<1>> d_chosen{};          ///< (B) d(batch loss) / d(chosen[i])
    tensor_view<T, dims<1>> d_rejected{};        ///< (B) d(batch loss) / d(rejected[i])
};

/// What a loss policy's evaluate returns besides what it writes to pair_outputs.
/// Example: `return llm::align::pair_terms{.loss = mean};`
struct pair_terms {
    double loss = 0;             ///< the batch loss (what d_chosen and d_rejected differentiate)
    double nll = 0;              ///< the NLL term before its weight, if the loss has one, else 0
    double log_odds_ratio = 0;   ///< ORPO: mean log sigmoid(log odds), else 0
    double log_odds_chosen = 0;  ///< ORPO: mean log odds, else 0
};

/// One pair's loss and its partial derivatives w.r.t. the pair's chosen and rejected summed
/// log-probs: what an elementwise loss computes per pair (dpo.hpp's policies use it).
/// Template parameters:
///   T — float or double.
/// Example: `return llm::align::pair_value<T>{loss, -beta, beta};`
template <float_or_double T>
struct pair_value {
    T loss;        ///< the pair's loss
    T d_chosen;    ///< d(loss) / d(chosen)
    T d_rejected;  ///< d(loss) / d(rejected)
};

/// A paired preference loss policy: a type, written anywhere (in your own namespace too), that
/// names one loss, its parameter struct and its maths. The members:
///   config                 — the parameter struct, default-constructible (the defaults);
///   name                   — a std::string_view naming the loss in messages;
///   needs_reference(cfg)   — bool: the loss reads ref_chosen / ref_rejected (pair_loss then
///                            requires them; otherwise it hands them over empty);
///   needs_tokens           — constexpr bool: the loss reads the token counts (required then);
///   validate(cfg)          — throws llm::error for parameters out of range;
///   evaluate(out, in, cfg) — for T = float and double: writes every entry of out's five views
///                            and returns the pair_terms (the batch loss first).
/// Policies: llm::align::dpo_sigmoid ... dpo_sigmoid_norm (dpo.hpp), simpo, cpo, orpo; a new one
/// needs nothing from the library but these types (tests/align/losses.cpp defines a hinge loss).
/// Example: `static_assert(llm::align::pair_loss_policy<llm::align::dpo_sigmoid>);`
template <class L>
concept pair_loss_policy =
    requires { typename L::config; } && std::default_initializable<typename L::config> &&
    requires(const typename L::config& cfg, const pair_outputs<double>& out_d, const pair_inputs<double>& in_d,
             const pair_outputs<float>& out_f, const pair_inputs<float>& in_f) {
        { L::name } -> std::convertible_to<std::string_view>;
        { L::needs_reference(cfg) } -> std::same_as<bool>;
        { L::needs_tokens } -> std::convertible_to<bool>;
        { L::validate(cfg) };
        { L::evaluate(out_d, in_d, cfg) } -> std::same_as<pair_terms>;
        { L::evaluate(out_f, in_f, cfg) } -> std::same_as<pair_terms>;
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

namespace detail {

// L::config where it exists, a placeholder otherwise: pair_loss's signature must not name
// L::config directly, or a policy without one would be dropped by substitution failure before
// the pair_loss_policy constraint could name what is missing.
struct no_loss_config {};
template <class L>
using config_of = typename L::config;
template <class L>
using loss_config_t = detected_or_t<no_loss_config, config_of, L>;

/// Rejects NaN/Inf inputs: every loss here is finite for finite inputs, so a non-finite input is
/// the caller's bug and would otherwise surface as a NaN gradient far from its cause.
template <class T>
void check_finite_inputs(std::string_view fn, const pair_inputs<T>& in) {
    const auto finite = [&](const tensor_view<const T, dims<1>>& v, const char* what) {
        for (std::size_t i = 0; i < v.size(); ++i) {
            check(std::isfinite(v(i)), "pair_loss(", fn, "): ", what, "[", i, "] = ", v(i), " is not finite");
        }
    };
    finite(in.chosen, "chosen");
    finite(in.rejected, "rejected");
    finite(in.ref_chosen, "ref_chosen");
    finite(in.ref_rejected, "ref_rejected");
}

}  // namespace detail

/// Computes the paired loss L over a batch: per-example losses, rewards and the gradients w.r.t.
/// the policy's summed log-probs, and returns the batch statistics TRL logs.
/// Arguments, in the library's order (outputs, inputs, options):
///   out — the per-example results, each (B), all written (see pair_outputs);
///   in  — the batch (see pair_inputs; optional views may be empty);
///   cfg — L's parameters (L::config; default: its defaults).
/// Throws llm::error on mismatched sizes, B = 0, non-finite inputs, zero token counts where the
/// loss divides by them, and parameters out of range (beta <= 0 ...).
/// Template parameters:
///   L — a pair_loss_policy (dpo_sigmoid, dpo_ipo, simpo, orpo, ... or your own);
///   T — float or double (deduced).
/// Example: `auto s = llm::align::pair_loss<llm::align::dpo_sigmoid>(out, in, {.beta = 0.1});`
template <pair_loss_policy L, float_or_double T>
pair_stats pair_loss(const pair_outputs<T>& out, const pair_inputs<T>& in,
                     const detail::loss_config_t<L>& cfg = {}) {
    L::validate(cfg);
    const std::string_view fn = L::name;
    const std::size_t n = in.size();
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

    pair_inputs<T> checked = in;
    if (!use_ref) {
        checked.ref_chosen = {};
        checked.ref_rejected = {};
    }
    detail::check_finite_inputs(fn, checked);
    const pair_terms terms = L::evaluate(out, checked, cfg);

    pair_stats s;
    s.loss = terms.loss;
    s.nll = terms.nll;
    s.log_odds_ratio = terms.log_odds_ratio;
    s.log_odds_chosen = terms.log_odds_chosen;
    for (std::size_t i = 0; i < n; ++i) {
        s.chosen_reward += static_cast<double>(out.chosen_rewards(i));
        s.rejected_reward += static_cast<double>(out.rejected_rewards(i));
        s.accuracy += out.chosen_rewards(i) > out.rejected_rewards(i) ? 1.0 : 0.0;
        s.chosen_logps += static_cast<double>(in.chosen(i));
        s.rejected_logps += static_cast<double>(in.rejected(i));
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
