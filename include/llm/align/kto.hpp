// SPDX-License-Identifier: Apache-2.0
// KTO and unpaired APO-zero: losses on unpaired desirable/undesirable examples with a supplied KL estimate.
#pragma once

#include <llm/align/concepts.hpp>
#include <llm/core/error.hpp>
#include <llm/core/math.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

// Formulas: TRL 1.16.0, trl/trainer/kto_trainer.py, KTOTrainer._compute_loss (loss_type "kto",
// eq. 7 of Ethayarajh et al. 2024, arXiv 2402.01306, and "apo_zero_unpaired"); loss = mean of the
// weighted per-example losses.

namespace llm::align {

/// Parameters of the unpaired losses (TRL's KTOConfig names and defaults).
struct kto_config {
    double beta = 0.1;                ///< > 0
    double desirable_weight = 1.0;    ///< >= 0, lambda_D
    double undesirable_weight = 1.0;  ///< >= 0, lambda_U
    double kl = 0.0;                  ///< the KL estimate z_ref (>= 0, no gradient); see kto_kl_estimate
};

/// One example's loss before its weight, and its slope w.r.t. the policy log-prob.
/// Template parameters:
///   T — float or double.
/// Example: `return llm::align::unpaired_value<T>{loss, slope};`
template <float_or_double T>
struct unpaired_value {
    T loss;   ///< unweighted loss of the example
    T slope;  ///< d(loss) / d(r), r = logp - ref_logp
};

/// An unpaired loss policy: a type, written anywhere (in your own namespace too), with
///   name                      — a std::string_view naming the loss in messages;
///   value(cfg, r, desirable)  — for T = float and double: the unweighted loss of an example
///                               with log-ratio r = logp - ref_logp (a T), and its slope w.r.t.
///                               r, as an unpaired_value<T>; cfg is a kto_config.
/// unpaired_loss applies the weights, the mean and the rewards. Policies: kto, apo_zero_unpaired.
/// Example: `static_assert(llm::align::unpaired_loss_policy<llm::align::kto>);`
template <class L>
concept unpaired_loss_policy = requires(const kto_config& c, double r, float rf, bool d) {
    { L::name } -> std::convertible_to<std::string_view>;
    { L::value(c, r, d) } -> std::same_as<unpaired_value<double>>;
    { L::value(c, rf, d) } -> std::same_as<unpaired_value<float>>;
};

/// KTO (eq. 7): desirable 1 - sigmoid(beta (r - kl)), undesirable 1 - sigmoid(beta (kl - r)).
/// Example: `llm::align::unpaired_loss<llm::align::kto>(out, in, {.beta = 0.1, .kl = kl});`
struct kto {
    /// Members required by llm::align::unpaired_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "kto";
    template <float_or_double T>
    static unpaired_value<T> value(const kto_config& c, T r, bool desirable) {
        const T beta = static_cast<T>(c.beta);
        const T u = desirable ? beta * (r - static_cast<T>(c.kl)) : beta * (static_cast<T>(c.kl) - r);
        // 1 - sigmoid(u) = sigmoid(-u); its derivative -sigmoid(u) sigmoid(-u), times du/dr = +-beta
        const T s = sigmoid(u) * sigmoid(-u);
        return {sigmoid(-u), desirable ? -beta * s : beta * s};
    }
    ///@}
};

/// loss_type "apo_zero_unpaired": desirable 1 - sigmoid(beta r), undesirable sigmoid(beta r); ignores kl.
/// Example: `llm::align::unpaired_loss<llm::align::apo_zero_unpaired>(out, in, {.beta = 0.1});`
struct apo_zero_unpaired {
    /// Members required by llm::align::unpaired_loss_policy; see it for their contracts.
    ///@{
    static constexpr std::string_view name = "apo_zero_unpaired";
    template <float_or_double T>
    static unpaired_value<T> value(const kto_config& c, T r, bool desirable) {
        const T beta = static_cast<T>(c.beta);
        const T u = beta * r;
        const T s = beta * sigmoid(u) * sigmoid(-u);
        return desirable ? unpaired_value<T>{sigmoid(-u), -s} : unpaired_value<T>{sigmoid(u), s};
    }
    ///@}
};

/// Inputs of an unpaired loss, each (N), N >= 1:
///   logps, ref_logps: policy and reference log-probs summed over each response;
///   desirable: nonzero for a desirable (chosen) example, 0 for an undesirable one.
/// Template parameters:
///   T — float or double.
/// Example: `llm::align::unpaired_inputs<float> in{logps, ref_logps, labels};`
template <float_or_double T>
struct unpaired_inputs {
    tensor_view<const T, dims<1>> logps{};                    ///< (N) policy log-probs
    tensor_view<const T, dims<1>> ref_logps{};                ///< (N) reference log-probs
    tensor_view<const std::uint8_t, dims<1>> desirable{};     ///< (N) nonzero = desirable
};

/// Outputs of an unpaired loss, each (N), all written (set, not accumulated: the loss and the
/// seed of the backward pass): per-example weighted losses (their mean is the batch loss),
/// rewards beta * (logps - ref_logps), and d(batch loss) / d(logps[i]).
/// Template parameters:
///   T — float or double.
/// Example: `llm::align::unpaired_outputs<float> out{losses, rewards, d_logps};`
template <float_or_double T>
struct unpaired_outputs {
    tensor_view<T, dims<1>> losses{};   ///< (N) weighted per-example losses
    tensor_view<T, dims<1>> rewards{};  ///< (N) beta * (logps - ref_logps)
    tensor_view<T, dims<1>> d_logps{};  ///< (N) d(batch loss) / d(logps[i])
};

/// What TRL's KTOTrainer logs for a batch.
struct unpaired_stats {
    double loss = 0;               ///< the batch loss (mean of the weighted losses)
    double kl = 0;                 ///< the KL estimate used
    double chosen_reward = 0;      ///< mean reward of the desirable examples (0 if none)
    double rejected_reward = 0;    ///< mean reward of the undesirable examples (0 if none)
    double margin = 0;             ///< chosen_reward - rejected_reward (0 unless both kinds present)
    double chosen_logps = 0;       ///< mean policy log-prob of the desirable examples
    double rejected_logps = 0;     ///< mean policy log-prob of the undesirable examples
    std::size_t n_desirable = 0;   ///< number of desirable examples
    std::size_t n_undesirable = 0; ///< number of undesirable examples
};

/// TRL's KL estimate for KTO: max(0, mean(kl_logps - ref_kl_logps)) over the mismatched
/// (prompt, other completion) pairs. Shapes: both (M), M >= 1, float or double, any strides.
/// Example: `cfg.kl = llm::align::kto_kl_estimate(kl_logps, ref_kl_logps);`
template <class KL, class RefKL>
    requires float_or_double_view<KL, 1> && float_or_double_view<RefKL, 1>
double kto_kl_estimate(KL&& kl_logps, RefKL&& ref_kl_logps) {
    const std::size_t m = kl_logps.extent(0);
    check(m > 0, "kto_kl_estimate: kl_logps is empty");
    check(m == ref_kl_logps.extent(0), "kto_kl_estimate: kl_logps has ", m, " entries but ref_kl_logps has ",
          ref_kl_logps.extent(0));
    double sum = 0;
    for (std::size_t i = 0; i < m; ++i) {
        sum += static_cast<double>(kl_logps.data()[i * kl_logps.stride(0)]) -
               static_cast<double>(ref_kl_logps.data()[i * ref_kl_logps.stride(0)]);
    }
    check(std::isfinite(sum), "kto_kl_estimate: the log-probs are not finite");
    const double kl = sum / static_cast<double>(kl_logps.size());
    return kl > 0 ? kl : 0.0;
}

/// Computes the unpaired loss L: weighted per-example losses, rewards and gradients w.r.t. the
/// policy log-probs; returns what TRL logs.
/// Arguments, in the library's order (outputs, inputs, options): out (see unpaired_outputs),
/// in (see unpaired_inputs), cfg (default: TRL's KTOConfig defaults with kl = 0).
/// Shapes: every input and output (N).
/// Throws llm::error on mismatched sizes, N = 0, non-finite inputs, beta <= 0, negative weights,
/// a negative or non-finite kl.
/// Template parameters:
///   L — an unpaired_loss_policy (kto, apo_zero_unpaired, or your own);
///   T — float or double (deduced).
/// Example: `auto s = llm::align::unpaired_loss<llm::align::kto>(out, in, {.beta = 0.1, .kl = 0.3});`
template <unpaired_loss_policy L, float_or_double T>
unpaired_stats unpaired_loss(const unpaired_outputs<T>& out, const unpaired_inputs<T>& in, const kto_config& c = {}) {
    const std::string_view fn = L::name;
    check(std::isfinite(c.beta) && c.beta > 0, "unpaired_loss(", fn, "): beta = ", c.beta, " must be > 0");
    check(std::isfinite(c.desirable_weight) && c.desirable_weight >= 0, "unpaired_loss(", fn,
          "): desirable_weight = ", c.desirable_weight, " must be >= 0");
    check(std::isfinite(c.undesirable_weight) && c.undesirable_weight >= 0, "unpaired_loss(", fn,
          "): undesirable_weight = ", c.undesirable_weight, " must be >= 0");
    check(std::isfinite(c.kl) && c.kl >= 0, "unpaired_loss(", fn, "): kl = ", c.kl, " must be >= 0");
    const std::size_t n = in.logps.size();
    check(n > 0, "unpaired_loss(", fn, "): the batch is empty (logps has 0 entries)");
    const auto need = [&](std::size_t got, const char* what) {
        check(got == n, "unpaired_loss(", fn, "): ", what, " has ", got, " entries but logps has ", n);
    };
    need(in.ref_logps.size(), "ref_logps");
    need(in.desirable.size(), "desirable");
    need(out.losses.size(), "losses");
    need(out.rewards.size(), "rewards");
    need(out.d_logps.size(), "d_logps");

    const T* x = in.logps.data();
    const T* ref = in.ref_logps.data();
    const std::uint8_t* d = in.desirable.data();
    for (std::size_t i = 0; i < n; ++i) {
        check(std::isfinite(x[i]) && std::isfinite(ref[i]), "unpaired_loss(", fn, "): logps[", i, "] = ", x[i],
              " or ref_logps[", i, "] = ", ref[i], " is not finite");
    }
    const T beta = static_cast<T>(c.beta);
    const T inv_n = T(1) / static_cast<T>(n);
    unpaired_stats s;
    s.kl = c.kl;
    double loss = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const bool desirable = d[i] != 0;
        const T r = x[i] - ref[i];
        const T w = static_cast<T>(desirable ? c.desirable_weight : c.undesirable_weight);
        const unpaired_value<T> v = L::value(c, r, desirable);
        out.losses.data()[i] = w * v.loss;
        out.d_logps.data()[i] = w * v.slope * inv_n;
        out.rewards.data()[i] = beta * r;
        loss += static_cast<double>(w * v.loss);
        if (desirable) {
            ++s.n_desirable;
            s.chosen_reward += static_cast<double>(beta * r);
            s.chosen_logps += static_cast<double>(x[i]);
        } else {
            ++s.n_undesirable;
            s.rejected_reward += static_cast<double>(beta * r);
            s.rejected_logps += static_cast<double>(x[i]);
        }
    }
    s.loss = loss / static_cast<double>(n);
    if (s.n_desirable > 0) {
        s.chosen_reward /= static_cast<double>(s.n_desirable);
        s.chosen_logps /= static_cast<double>(s.n_desirable);
    }
    if (s.n_undesirable > 0) {
        s.rejected_reward /= static_cast<double>(s.n_undesirable);
        s.rejected_logps /= static_cast<double>(s.n_undesirable);
    }
    if (s.n_desirable > 0 && s.n_undesirable > 0) {
        s.margin = s.chosen_reward - s.rejected_reward;
    }
    return s;
}

}  // namespace llm::align
