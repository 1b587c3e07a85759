// SPDX-License-Identifier: Apache-2.0
// The DPO family: one policy type per TRL DPOTrainer loss_type, plus cDPO, reference-free mode and R-DPO.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/align/detail/pair_loops.hpp>
#include <llm/align/pair_loss.hpp>
#include <llm/core/error.hpp>
#include <llm/core/math.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <string_view>
#include <vector>

// Formulas follow TRL 1.16.0, trl/trainer/dpo_trainer.py, DPOTrainer._compute_loss (the
// f_divergence_type = reverse_kl path); label smoothing of the sigmoid loss (cDPO) and
// reference_free are from TRL 0.27.2's DPOTrainer.dpo_loss, which 1.x dropped; R-DPO's length
// regulariser is from Park et al. 2024 (arXiv 2403.19159, eq. 9), which TRL never had.
// Notation: x = chosen - ref_chosen, y = rejected - ref_rejected (summed log-probs),
// delta = x - y, z = beta * delta.

namespace llm::align {

/// Parameters of the DPO-family losses (TRL's DPOConfig names and defaults).
struct dpo_config {
    double beta = 0.1;             ///< > 0; IPO's tau, SPPO's eta^-1
    double label_smoothing = 0.0;  ///< sigmoid (cDPO), robust, aot*: [0, 0.5); exo_pair: (0, 1)
    double discopop_tau = 0.05;    ///< > 0, discopop only
    bool reference_free = false;   ///< reference log-probs taken as 0 (ref views may be empty)
    double rdpo_alpha = 0.0;       ///< >= 0; R-DPO: sigmoid loss of z - alpha * (|y_w| - |y_l|)
};

namespace detail {

inline void validate_dpo(std::string_view name, const dpo_config& c) {
    check(std::isfinite(c.beta) && c.beta > 0, "dpo_config(", name, "): beta = ", c.beta, " must be > 0");
    check(std::isfinite(c.label_smoothing) && c.label_smoothing >= 0 && c.label_smoothing < 1, "dpo_config(", name,
          "): label_smoothing = ", c.label_smoothing, " must be in [0, 1)");
    check(std::isfinite(c.rdpo_alpha) && c.rdpo_alpha >= 0, "dpo_config(", name, "): rdpo_alpha = ", c.rdpo_alpha,
          " must be >= 0");
    check(c.rdpo_alpha == 0 || name == "sigmoid", "dpo_config(", name, "): rdpo_alpha = ", c.rdpo_alpha,
          " applies to the sigmoid loss only");
}

inline void validate_smoothing_below_half(std::string_view name, const dpo_config& c) {
    check(c.label_smoothing < 0.5, "dpo_config(", name, "): label_smoothing = ", c.label_smoothing,
          " must be in [0, 0.5)");
}

/// -(1 - eps) log sigmoid(z) - eps log sigmoid(-z) and its slope: the smoothed logistic loss
/// shared by sigmoid (cDPO), aot and aot_unpaired.
template <class T>
pair_value<T> smoothed_logistic(T z, T eps) {
    return {-(T(1) - eps) * log_sigmoid(z) - eps * log_sigmoid(-z), -(T(1) - eps) * sigmoid(-z) + eps * sigmoid(z),
            T(0)};
}

/// Shared shape of the losses that are a function of one pair at a time: Derived::pair(cfg, x, y,
/// chosen_tokens, rejected_tokens) gives the loss and its slopes w.r.t. x and y.
template <class Derived>
struct dpo_elementwise {
    using config = dpo_config;
    static constexpr bool needs_tokens = false;
    static constexpr bool needs_reference(const dpo_config& c) { return !c.reference_free; }
    static void validate(const dpo_config& c) { validate_dpo(Derived::name, c); }

    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const dpo_config& c) {
        if constexpr (Derived::needs_tokens) {
            require_tokens(Derived::name, in, true);
        }
        log_ratio_rewards(out, in, static_cast<T>(c.beta));
        return {mean_over_pairs(out, in, [&](std::size_t i) {
            return Derived::pair(c, in.chosen_log_ratio(i), in.rejected_log_ratio(i),
                                 token_count<T>(in.chosen_tokens, i), token_count<T>(in.rejected_tokens, i));
        })};
    }
};

}  // namespace detail

/// loss_type "sigmoid": -log sigmoid(z) (DPO); with label_smoothing eps, cDPO's
/// -(1-eps) log sigmoid(z) - eps log sigmoid(-z); with rdpo_alpha, z -= alpha * (|y_w| - |y_l|) (R-DPO,
/// needs token counts).
/// Example: `llm::align::pair_loss<llm::align::dpo_sigmoid>(out, in, {.beta = 0.1});`
struct dpo_sigmoid : detail::dpo_elementwise<dpo_sigmoid> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "sigmoid";
    static void validate(const dpo_config& c) {
        detail::validate_dpo(name, c);
        detail::validate_smoothing_below_half(name, c);
    }
    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const dpo_config& c) {
        if (c.rdpo_alpha != 0) {
            detail::require_tokens(name, in, true);
        }
        return dpo_elementwise::evaluate(out, in, c);
    }
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T lc, T lr) {
        const T beta = static_cast<T>(c.beta);
        const T z = beta * (x - y) - static_cast<T>(c.rdpo_alpha) * (lc - lr);
        const auto v = detail::smoothed_logistic(z, static_cast<T>(c.label_smoothing));
        return {v.loss, beta * v.d_chosen, -beta * v.d_chosen};
    }
    ///@}
};

/// loss_type "hinge" (SLiC): relu(1 - z).
/// Example: `llm::align::pair_loss<llm::align::dpo_hinge>(out, in, {.beta = 1.0});`
struct dpo_hinge : detail::dpo_elementwise<dpo_hinge> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "hinge";
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T beta = static_cast<T>(c.beta);
        const T m = T(1) - beta * (x - y);
        // relu'(0) = 0, as torch.relu's backward
        return m > T(0) ? pair_value<T>{m, -beta, beta} : pair_value<T>{T(0), T(0), T(0)};
    }
    ///@}
};

/// loss_type "ipo": (x / |y_w| - y / |y_l| - 1 / (2 beta))^2, TRL 1.x's length-normalised IPO
/// (token counts clamped to >= 1; needs token counts).
/// Example: `llm::align::pair_loss<llm::align::dpo_ipo>(out, in, {.beta = 0.5});`
struct dpo_ipo : detail::dpo_elementwise<dpo_ipo> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "ipo";
    static constexpr bool needs_tokens = true;
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T lc, T lr) {
        const T mc = std::max(lc, T(1));
        const T mr = std::max(lr, T(1));
        const T d = x / mc - y / mr - T(1) / (T(2) * static_cast<T>(c.beta));
        return {d * d, T(2) * d / mc, -T(2) * d / mr};
    }
    ///@}
};

/// loss_type "exo_pair" (EXO eq. 16): KL(softmax(z) || [1-eps, eps]) over {chosen, rejected};
/// label_smoothing = eps in (0, 1) (the paper suggests 1e-3).
/// Example: `llm::align::pair_loss<llm::align::dpo_exo_pair>(out, in, {.beta = 0.1, .label_smoothing = 1e-3});`
struct dpo_exo_pair : detail::dpo_elementwise<dpo_exo_pair> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "exo_pair";
    static void validate(const dpo_config& c) {
        detail::validate_dpo(name, c);
        check(c.label_smoothing > 0, "dpo_config(exo_pair): label_smoothing = ", c.label_smoothing,
              " must be in (0, 1) (EXO suggests 1e-3)");
    }
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        using std::log;
        using std::log1p;
        const T beta = static_cast<T>(c.beta);
        const T eps = static_cast<T>(c.label_smoothing);
        const T z = beta * (x - y);
        const T qw = sigmoid(z);
        const T ql = sigmoid(-z);
        const T log_pw = log1p(-eps);
        const T log_pl = log(eps);
        const T loss = qw * (log_sigmoid(z) - log_pw) + ql * (log_sigmoid(-z) - log_pl);
        // d/dz: qw * ql * (log_sigmoid(z) - log_sigmoid(-z) - log_pw + log_pl), and the first
        // difference is z exactly
        const T g = qw * ql * (z - log_pw + log_pl);
        return {loss, beta * g, -beta * g};
    }
    ///@}
};

/// loss_type "nca_pair" (NCA): -log sigmoid(beta x) - 0.5 log sigmoid(-beta x) - 0.5 log sigmoid(-beta y).
/// Example: `llm::align::pair_loss<llm::align::dpo_nca_pair>(out, in);`
struct dpo_nca_pair : detail::dpo_elementwise<dpo_nca_pair> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "nca_pair";
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T beta = static_cast<T>(c.beta);
        const T a = beta * x;
        const T b = beta * y;
        const T loss = -log_sigmoid(a) - T(0.5) * log_sigmoid(-a) - T(0.5) * log_sigmoid(-b);
        return {loss, beta * (-sigmoid(-a) + T(0.5) * sigmoid(a)), beta * T(0.5) * sigmoid(b)};
    }
    ///@}
};

/// loss_type "robust" (rDPO): ((1-eps)(-log sigmoid(z)) + eps log sigmoid(-z)) / (1 - 2 eps),
/// eps = label_smoothing in [0, 0.5), the flip probability.
/// Example: `llm::align::pair_loss<llm::align::dpo_robust>(out, in, {.label_smoothing = 0.1});`
struct dpo_robust : detail::dpo_elementwise<dpo_robust> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "robust";
    static void validate(const dpo_config& c) {
        detail::validate_dpo(name, c);
        detail::validate_smoothing_below_half(name, c);
    }
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T beta = static_cast<T>(c.beta);
        const T eps = static_cast<T>(c.label_smoothing);
        const T z = beta * (x - y);
        const T scale = T(1) / (T(1) - T(2) * eps);
        const T loss = (-(T(1) - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) * scale;
        const T g = (-(T(1) - eps) * sigmoid(-z) - eps * sigmoid(z)) * scale;
        return {loss, beta * g, -beta * g};
    }
    ///@}
};

/// loss_type "bco_pair" (BCO, as TRL 1.x: no running reward shift): -log sigmoid(beta x) - log sigmoid(-beta y).
/// Example: `llm::align::pair_loss<llm::align::dpo_bco_pair>(out, in);`
struct dpo_bco_pair : detail::dpo_elementwise<dpo_bco_pair> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "bco_pair";
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T beta = static_cast<T>(c.beta);
        const T a = beta * x;
        const T b = beta * y;
        return {-log_sigmoid(a) - log_sigmoid(-b), -beta * sigmoid(-a),
                beta * sigmoid(b)};
    }
    ///@}
};

/// loss_type "sppo_hard" (SPPO with hard labels): (x - 1/(2 beta))^2 + (y + 1/(2 beta))^2.
/// Example: `llm::align::pair_loss<llm::align::dpo_sppo_hard>(out, in);`
struct dpo_sppo_hard : detail::dpo_elementwise<dpo_sppo_hard> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "sppo_hard";
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T half_inv_beta = T(0.5) / static_cast<T>(c.beta);
        const T dw = x - half_inv_beta;
        const T dl = y + half_inv_beta;
        return {dw * dw + dl * dl, T(2) * dw, T(2) * dl};
    }
    ///@}
};

/// loss_type "apo_zero" (APO eq. 7): 1 - sigmoid(beta x) + sigmoid(beta y).
/// Example: `llm::align::pair_loss<llm::align::dpo_apo_zero>(out, in);`
struct dpo_apo_zero : detail::dpo_elementwise<dpo_apo_zero> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "apo_zero";
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T beta = static_cast<T>(c.beta);
        const T sa = sigmoid(beta * x);
        const T sb = sigmoid(beta * y);
        // sigmoid' = sigmoid(u) sigmoid(-u), written with both factors so neither cancels
        return {(T(1) - sa) + sb, -beta * sa * sigmoid(-beta * x), beta * sb * sigmoid(-beta * y)};
    }
    ///@}
};

/// loss_type "apo_down" (APO eq. 8): sigmoid(beta x) + 1 - sigmoid(z).
/// Example: `llm::align::pair_loss<llm::align::dpo_apo_down>(out, in);`
struct dpo_apo_down : detail::dpo_elementwise<dpo_apo_down> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "apo_down";
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T beta = static_cast<T>(c.beta);
        const T a = beta * x;
        const T z = beta * (x - y);
        const T sa = sigmoid(a);
        const T sz = sigmoid(z);
        const T dsa = sa * sigmoid(-a);
        const T dsz = sz * sigmoid(-z);
        return {sa + (T(1) - sz), beta * (dsa - dsz), beta * dsz};
    }
    ///@}
};

/// loss_type "discopop" (DiscoPOP / LRML eq. 5): with m = sigmoid(z / tau),
/// -log sigmoid(z) (1 - m) + exp(-z) m; the second term is evaluated as exp(-z + log sigmoid(z/tau)),
/// so it stays finite where TRL's literal form gives inf * 0 (z << 0) whenever tau <= 1.
/// Example: `llm::align::pair_loss<llm::align::dpo_discopop>(out, in, {.discopop_tau = 0.05});`
struct dpo_discopop : detail::dpo_elementwise<dpo_discopop> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "discopop";
    static void validate(const dpo_config& c) {
        detail::validate_dpo(name, c);
        check(std::isfinite(c.discopop_tau) && c.discopop_tau > 0, "dpo_config(discopop): discopop_tau = ",
              c.discopop_tau, " must be > 0");
    }
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T, T) {
        const T beta = static_cast<T>(c.beta);
        const T tau = static_cast<T>(c.discopop_tau);
        const T z = beta * (x - y);
        const T m = sigmoid(z / tau);
        const T one_minus_m = sigmoid(-z / tau);
        const T ls = log_sigmoid(z);
        const T e = std::exp(-z + log_sigmoid(z / tau));  // m * exp(-z)
        const T loss = -ls * one_minus_m + e;
        // d/dz with m' = m (1 - m) / tau: m' (log sigmoid(z) + exp(-z)) - (1 - m) sigmoid(-z) - m exp(-z)
        const T g = m * one_minus_m / tau * ls + one_minus_m * e / tau - one_minus_m * sigmoid(-z) - e;
        return {loss, beta * g, -beta * g};
    }
    ///@}
};

/// loss_type "sigmoid_norm": -log sigmoid(beta (x / |y_w| - y / |y_l|)) (token counts clamped to
/// >= 1; needs token counts).
/// Example: `llm::align::pair_loss<llm::align::dpo_sigmoid_norm>(out, in);`
struct dpo_sigmoid_norm : detail::dpo_elementwise<dpo_sigmoid_norm> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "sigmoid_norm";
    static constexpr bool needs_tokens = true;
    /// One pair's loss and its slopes w.r.t. x and y (called by the shared elementwise evaluate).
    template <float_or_double T>
    static pair_value<T> pair(const dpo_config& c, T x, T y, T lc, T lr) {
        const T beta = static_cast<T>(c.beta);
        const T mc = std::max(lc, T(1));
        const T mr = std::max(lr, T(1));
        const T z = beta * (x / mc - y / mr);
        const T g = -beta * sigmoid(-z);
        return {-log_sigmoid(z), g / mc, -g / mr};
    }
    ///@}
};

namespace detail {

// Indices 0..n-1 ordered by key(i) ascending; stable, so ties keep input order (torch.sort
// does not promise an order for ties; tied keys give the same loss either way).
template <class Key>
std::vector<std::size_t> argsort(std::size_t n, Key key) {
    auto idx = llm::checked_vector<std::size_t>(n, "dpo (aot)", "the sort indices");
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
    return idx;
}

// AOT: the smoothed logistic loss of beta * (u_sorted[k] - v_sorted[k]); loss k's slope goes to
// the pair that supplied u's k-th smallest (chosen +, rejected -) and, for aot_unpaired, to the
// pair that supplied v's k-th smallest rejected entry.
template <class T, class U, class V>
pair_terms aot_evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const dpo_config& c, U u, V v,
                        bool v_is_rejected) {
    log_ratio_rewards(out, in, static_cast<T>(c.beta));
    const std::size_t n = in.size();
    const auto pu = argsort(n, u);
    const auto pv = argsort(n, v);
    const T beta = static_cast<T>(c.beta);
    const T inv_n = T(1) / static_cast<T>(n);
    for (std::size_t i = 0; i < n; ++i) {
        out.d_chosen(i) = T(0);
        out.d_rejected(i) = T(0);
    }
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const auto l = smoothed_logistic(beta * (u(pu[k]) - v(pv[k])), static_cast<T>(c.label_smoothing));
        out.losses(k) = l.loss;
        sum += static_cast<double>(l.loss);
        const T g = beta * l.d_chosen * inv_n;
        out.d_chosen(pu[k]) += g;
        if (v_is_rejected) {
            out.d_rejected(pv[k]) -= g;
        } else {
            out.d_rejected(pu[k]) -= g;
        }
    }
    return {sum / static_cast<double>(n)};
}

template <class Derived>
struct dpo_batchwise {
    using config = dpo_config;
    static constexpr bool needs_tokens = false;
    static constexpr bool needs_reference(const dpo_config& c) { return !c.reference_free; }
    static void validate(const dpo_config& c) {
        validate_dpo(Derived::name, c);
        validate_smoothing_below_half(Derived::name, c);
    }
};

}  // namespace detail

/// loss_type "aot" (AOT, paired): sort the policy log-ratios (chosen - rejected) and the reference
/// log-ratios separately and apply the smoothed logistic loss to beta * (their difference) rank by
/// rank. Per-example loss k belongs to rank k.
/// Example: `llm::align::pair_loss<llm::align::dpo_aot>(out, in);`
struct dpo_aot : detail::dpo_batchwise<dpo_aot> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "aot";
    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const dpo_config& c) {
        return detail::aot_evaluate(
            out, in, c, [&](std::size_t i) { return in.chosen(i) - in.rejected(i); },
            [&](std::size_t i) { return in.reference_chosen(i) - in.reference_rejected(i); }, false);
    }
    ///@}
};

/// loss_type "aot_unpaired" (TRL 0.x "aot_pair"): sort the chosen log-ratios x and the rejected
/// log-ratios y separately and apply the smoothed logistic loss to beta * (x_(k) - y_(k)).
/// Example: `llm::align::pair_loss<llm::align::dpo_aot_unpaired>(out, in);`
struct dpo_aot_unpaired : detail::dpo_batchwise<dpo_aot_unpaired> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "aot_unpaired";
    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const dpo_config& c) {
        return detail::aot_evaluate(
            out, in, c, [&](std::size_t i) { return in.chosen_log_ratio(i); },
            [&](std::size_t i) { return in.rejected_log_ratio(i); }, true);
    }
    ///@}
};

/// loss_type "sft": the token-mean NLL of the chosen responses, -sum(chosen) / sum(chosen_tokens),
/// every per-example entry equal to it (TRL expands the scalar). Needs token counts (> 0).
/// Example: `llm::align::pair_loss<llm::align::dpo_sft>(out, in);`
struct dpo_sft : detail::dpo_batchwise<dpo_sft> {
    /// Members required by llm::align::pair_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "sft";
    static constexpr bool needs_tokens = true;
    template <float_or_double T>
    static pair_terms evaluate(const pair_outputs<T>& out, const pair_inputs<T>& in, const dpo_config& c) {
        detail::require_tokens(name, in, false);
        detail::log_ratio_rewards(out, in, static_cast<T>(c.beta));
        for (std::size_t i = 0; i < in.size(); ++i) {
            out.d_chosen(i) = T(0);
            out.d_rejected(i) = T(0);
        }
        const double nll = detail::add_chosen_nll(out, in, 1.0);
        for (std::size_t i = 0; i < in.size(); ++i) {
            out.losses(i) = static_cast<T>(nll);
        }
        return {nll, nll};
    }
    ///@}
};

}  // namespace llm::align
