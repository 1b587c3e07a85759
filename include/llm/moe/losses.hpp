// SPDX-License-Identifier: Apache-2.0
// MoE router losses with gradients (Switch load balancing as transformers' load_balancing_loss_func, ST-MoE z-loss) and per-expert statistics.
#pragma once

#include <llm/core/error.hpp>
#include <llm/moe/tile.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace llm::moe {

namespace detail {

template <class L>
llm::row_view<const float, 2> loss_logits(const char* fn, L&& logits) {
    const llm::row_view<const float, 2> lg =
        llm::to_kernel_view<llm::dims<2>, llm::unit_last_stride<2>>(fn, "logits", logits);
    for (std::size_t t = 0; t < lg.extent(0); ++t) {
        for (std::size_t e = 0; e < lg.extent(1); ++e) {
            llm::check(!std::isnan(lg(t, e)), fn, ": router logit (token ", t, ", expert ", e, ") is NaN");
        }
    }
    return lg;
}

/// Selected-slot counts per expert (slots with -1 skipped); llm::error on an index outside [-1, E).
template <class X>
std::vector<double> slot_counts(const char* fn, const X& ex, std::size_t E) {
    std::vector<double> c(E, 0.0);
    for (std::size_t t = 0; t < ex.extent(0); ++t) {
        for (std::size_t j = 0; j < ex.extent(1); ++j) {
            const std::int32_t e = ex(t, j);
            llm::check(e >= -1 && e < static_cast<std::int32_t>(E), fn, ": experts(", t, ", ", j, ") = ", e,
                       " is outside [-1, ", E, ")");
            if (e >= 0) {
                c[static_cast<std::size_t>(e)] += 1.0;
            }
        }
    }
    return c;
}

}  // namespace detail

/// The Switch load-balancing loss exactly as Hugging Face transformers' Mixtral computes it
/// (`load_balancing_loss_func` without an attention mask): p = softmax(logits) per token,
/// f[e] = (selected slots of expert e) / T summed over the k slots, P[e] = mean over tokens of
/// p[t, e], loss = E * sum_e f[e] P[e]. (transformers multiplies by router_aux_loss_coef
/// outside; so does the caller.) Several layers: stack their logits and experts along tokens,
/// as transformers concatenates them. T = 0 gives 0.
/// logits [T, E] fp32; experts [T, k] int32 as route wrote them (-1 slots are not counted).
/// Example: `float aux = llm::moe::load_balancing_loss(logits, experts);`
template <view_of_rank<2> L, view_of_rank<2> X>
    requires std::same_as<std::remove_const_t<view_element_t<L>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<X>>, std::int32_t>
[[nodiscard]] float load_balancing_loss(L&& logits, X&& experts) {
    constexpr const char* fn = "moe::load_balancing_loss";
    const auto lg = detail::loss_logits(fn, logits);
    const auto ex = llm::to_kernel_view<2>(experts);
    const std::size_t T = lg.extent(0), E = lg.extent(1);
    llm::check(ex.extent(0) == T, fn, ": experts has ", ex.extent(0), " rows but logits has ", T);
    if (T == 0) {
        return 0.0f;
    }
    const std::vector<double> cnt = detail::slot_counts(fn, ex, E);
    std::vector<double> P(E, 0.0);
    std::vector<float> p(E);
    for (std::size_t t = 0; t < T; ++t) {
        tile::softmax_row(p.data(), lg.ptr(t, 0), E);
        for (std::size_t e = 0; e < E; ++e) {
            P[e] += p[e];
        }
    }
    double loss = 0.0;
    for (std::size_t e = 0; e < E; ++e) {
        loss += (cnt[e] / static_cast<double>(T)) * (P[e] / static_cast<double>(T));
    }
    return static_cast<float>(loss * static_cast<double>(E));
}

/// Backward of load_balancing_loss: ADDS dloss * dL/dlogits into dlogits [T, E] (the counts f
/// are constants, as torch's one_hot/topk give no gradient): dL/dp[t, e] = E f[e] / T, then the
/// softmax backward per token.
/// Arguments: output dlogits; inputs dloss (upstream), logits, experts.
/// Example: `llm::moe::load_balancing_loss_backward(dlogits, 0.02f, logits, experts);`
template <view_of_rank<2> DL, view_of_rank<2> L, view_of_rank<2> X>
    requires std::same_as<view_element_t<DL>, float> && std::same_as<std::remove_const_t<view_element_t<L>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<X>>, std::int32_t>
void load_balancing_loss_backward(DL&& dlogits, float dloss, L&& logits, X&& experts) {
    constexpr const char* fn = "moe::load_balancing_loss_backward";
    const auto lg = detail::loss_logits(fn, logits);
    const auto ex = llm::to_kernel_view<2>(experts);
    const auto dl = llm::to_kernel_view<2>(dlogits);
    const std::size_t T = lg.extent(0), E = lg.extent(1);
    llm::check(ex.extent(0) == T && dl.extent(0) == T && dl.extent(1) == E, fn,
               ": experts must have T rows and dlogits be [T, E] like logits [", T, ", ", E, "]");
    if (T == 0) {
        return;
    }
    const std::vector<double> cnt = detail::slot_counts(fn, ex, E);
    std::vector<float> p(E), dp(E);
    const double Td = static_cast<double>(T);
    for (std::size_t e = 0; e < E; ++e) {
        dp[e] = static_cast<float>(static_cast<double>(dloss) * static_cast<double>(E) * cnt[e] / (Td * Td));
    }
    for (std::size_t t = 0; t < T; ++t) {
        tile::softmax_row(p.data(), lg.ptr(t, 0), E);
        float dot = 0.0f;
        for (std::size_t e = 0; e < E; ++e) {
            dot += p[e] * dp[e];
        }
        for (std::size_t e = 0; e < E; ++e) {
            dl(t, e) += p[e] * (dp[e] - dot);
        }
    }
}

/// The router z-loss of ST-MoE: mean over tokens of logsumexp(logits[t, :])^2. T = 0 gives 0.
/// Example: `float z = llm::moe::router_z_loss(logits);`
template <view_of_rank<2> L>
    requires std::same_as<std::remove_const_t<view_element_t<L>>, float>
[[nodiscard]] float router_z_loss(L&& logits) {
    const auto lg = detail::loss_logits("moe::router_z_loss", logits);
    const std::size_t T = lg.extent(0), E = lg.extent(1);
    if (T == 0) {
        return 0.0f;
    }
    double s = 0.0;
    for (std::size_t t = 0; t < T; ++t) {
        const double z = tile::logsumexp_row(lg.ptr(t, 0), E);
        s += z * z;
    }
    return static_cast<float>(s / static_cast<double>(T));
}

/// Backward of router_z_loss: ADDS dloss * 2 lse_t softmax(logits[t]) / T into dlogits.
/// Example: `llm::moe::router_z_loss_backward(dlogits, 1e-3f, logits);`
template <view_of_rank<2> DL, view_of_rank<2> L>
    requires std::same_as<view_element_t<DL>, float> && std::same_as<std::remove_const_t<view_element_t<L>>, float>
void router_z_loss_backward(DL&& dlogits, float dloss, L&& logits) {
    constexpr const char* fn = "moe::router_z_loss_backward";
    const auto lg = detail::loss_logits(fn, logits);
    const auto dl = llm::to_kernel_view<2>(dlogits);
    const std::size_t T = lg.extent(0), E = lg.extent(1);
    llm::check(dl.extent(0) == T && dl.extent(1) == E, fn, ": dlogits must be [", T, ", ", E, "] like logits");
    std::vector<float> p(E);
    for (std::size_t t = 0; t < T; ++t) {
        const float z = tile::logsumexp_row(lg.ptr(t, 0), E);
        tile::softmax_row(p.data(), lg.ptr(t, 0), E);
        const float c = dloss * 2.0f * z / static_cast<float>(T);
        for (std::size_t e = 0; e < E; ++e) {
            dl(t, e) += c * p[e];
        }
    }
}

/// Per-expert statistics users log: slots routed to each expert, tokens routed to no expert
/// (dropped by capacity, or left out by expert choice), and the mean router entropy
/// -sum_e p log p over tokens (of probs; for sigmoid routers, of the scores normalised to 1).
/// Example: `auto s = llm::moe::router_stats(experts, probs);  // s.tokens_per_expert[e]`
struct router_statistics {
    std::vector<std::size_t> tokens_per_expert;  ///< Slots routed to each expert.
    std::size_t unrouted_tokens = 0;             ///< Tokens with no expert at all.
    double entropy = 0.0;                        ///< Mean router entropy in nats.
};

/// Computes router_statistics from route's experts [T, slots] and probs [T, E].
/// Example: `llm::moe::router_statistics s = llm::moe::router_stats(experts, probs);`
template <view_of_rank<2> X, view_of_rank<2> P>
    requires std::same_as<std::remove_const_t<view_element_t<X>>, std::int32_t> &&
             std::same_as<std::remove_const_t<view_element_t<P>>, float>
[[nodiscard]] router_statistics router_stats(X&& experts, P&& probs) {
    constexpr const char* fn = "moe::router_stats";
    const auto ex = llm::to_kernel_view<2>(experts);
    const auto pr = llm::to_kernel_view<2>(probs);
    const std::size_t T = pr.extent(0), E = pr.extent(1);
    llm::check(ex.extent(0) == T, fn, ": experts has ", ex.extent(0), " rows but probs has ", T);
    router_statistics s;
    const std::vector<double> cnt = detail::slot_counts(fn, ex, E);
    s.tokens_per_expert.resize(E);
    for (std::size_t e = 0; e < E; ++e) {
        s.tokens_per_expert[e] = static_cast<std::size_t>(cnt[e]);
    }
    double h = 0.0;
    for (std::size_t t = 0; t < T; ++t) {
        bool any = false;
        for (std::size_t j = 0; j < ex.extent(1); ++j) {
            any = any || ex(t, j) >= 0;
        }
        s.unrouted_tokens += any ? 0 : 1;
        double z = 0.0;
        for (std::size_t e = 0; e < E; ++e) {
            z += static_cast<double>(pr(t, e));
        }
        for (std::size_t e = 0; e < E; ++e) {
            const double q = static_cast<double>(pr(t, e)) / z;
            h -= q > 0.0 ? q * std::log(q) : 0.0;
        }
    }
    s.entropy = T == 0 ? 0.0 : h / static_cast<double>(T);
    return s;
}

}  // namespace llm::moe
