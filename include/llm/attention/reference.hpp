// SPDX-License-Identifier: Apache-2.0
// The attention oracle: scores S and probabilities P materialised row by row in double, forward and backward.
#pragma once

#include <llm/attention/detail/problem.hpp>
#include <llm/attention/mask.hpp>
#include <llm/attention/options.hpp>
#include <llm/core/checked.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

namespace llm::attention {

namespace detail {

template <class T>
double to_double(T x) {
    if constexpr (std::is_floating_point_v<T>) {
        return static_cast<double>(x);
    } else {
        return static_cast<double>(static_cast<float>(x));
    }
}

/// One row of the reference: the capped scaled scores t_j (-inf where masked) and the
/// probabilities p_j = softmax(t)_j in double; returns the row's log-sum-exp (-inf if empty).
template <class Q, class K, class Mask>
double reference_row(const Q& q, const K& k, const segment& sg, std::size_t h, std::size_t kvh, std::size_t i,
                     const Mask& mask, double scale, double cap, std::vector<double>& t, std::vector<double>& p) {
    const std::size_t D = q.extent(3);
    t.assign(sg.lk, -std::numeric_limits<double>::infinity());
    p.assign(sg.lk, 0.0);
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < sg.lk; ++j) {
        if (!mask.allowed(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j), static_cast<std::int64_t>(sg.lq),
                          static_cast<std::int64_t>(sg.lk))) {
            continue;
        }
        double s = 0;
        for (std::size_t d = 0; d < D; ++d) {
            s += to_double(q(sg.b, sg.q0 + i, h, d)) * to_double(k(sg.b, sg.k0 + j, kvh, d));
        }
        s *= scale;
        t[j] = cap > 0 ? cap * std::tanh(s / cap) : s;
        m = std::max(m, t[j]);
    }
    if (m == -std::numeric_limits<double>::infinity()) {
        return m;
    }
    double l = 0;
    for (std::size_t j = 0; j < sg.lk; ++j) {
        p[j] = std::exp(t[j] - m);
        l += p[j];
    }
    for (double& x : p) {
        x /= l;
    }
    return m + std::log(l);
}

/// True when row i (q head h) of a segment touches a non-finite input: an element of q row i
/// that is NaN or +-inf, or of k or v row j for a key j the mask lets row i see.
template <class Q, class K, class V, class Mask>
bool reference_row_poisoned(const Q& q, const K& k, const V& v, const segment& sg, std::size_t h, std::size_t kvh,
                            std::size_t i, const Mask& mask) {
    const std::size_t D = q.extent(3);
    auto finite = [D](auto&& x) {
        for (std::size_t d = 0; d < D; ++d) {
            if (!std::isfinite(x(d))) {
                return false;
            }
        }
        return true;
    };
    if (!finite([&](std::size_t d) { return to_double(q(sg.b, sg.q0 + i, h, d)); })) {
        return true;
    }
    for (std::size_t j = 0; j < sg.lk; ++j) {
        if (mask.allowed(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j), static_cast<std::int64_t>(sg.lq),
                         static_cast<std::int64_t>(sg.lk)) &&
            (!finite([&](std::size_t d) { return to_double(k(sg.b, sg.k0 + j, kvh, d)); }) ||
             !finite([&](std::size_t d) { return to_double(v(sg.b, sg.k0 + j, kvh, d)); }))) {
            return true;
        }
    }
    return false;
}

/// Elements the reference reads: fp32, bf16 or double (the finite-difference tests feed it double).
template <class T>
concept reference_input = float_or_bf16<T> || std::same_as<std::remove_const_t<T>, double>;

/// Elements the reference writes: mutable fp32 or double.
template <class T>
concept reference_output = std::same_as<T, float> || std::same_as<T, double>;

/// A mask under which no key is visible: reference_row_poisoned(dout, ...) with it checks the
/// dout row alone.
struct no_keys {
    static constexpr bool allowed(std::int64_t, std::int64_t, std::int64_t, std::int64_t) noexcept { return false; }
};

}  // namespace detail

/// Reference attention forward: for every sequence, head h and query row i,
/// t_j = softcap(scale * q_i . k_j), P = softmax over the unmasked j, o_i = sum_j P_j v_j,
/// lse_i = log sum_j exp(t_j); all in double, one materialised score row at a time. The oracle
/// of the tests; never the fast path. A row that sees no key gets o_i = 0 and lse_i = -inf.
/// A row touching a non-finite input (q row i, or k or v row j of a key j it sees) gets
/// o_i = NaN and lse_i = NaN (the rule of flash_forward).
/// Arguments (docs/conventions.md): outputs o, saved state lse, inputs q, k, v, options.
/// Shapes: q (batch, seq_q, heads, D), k and v (batch, seq_k, kv_heads, D), o like q,
/// lse (batch, heads, seq_q); heads a multiple of kv_heads (head h reads kv head
/// h / (heads / kv_heads)). Elements: inputs float, double or bf16; outputs float or double.
/// Mask: an attention_mask (as flash_forward: any mask_policy, or a varlen_mask; then batch is 1).
/// Example: `llm::attention::reference_forward(o, lse, q, k, v, llm::attention::causal{});`
template <attention_mask Mask = no_mask, view_of_rank<4> O, view_of_rank<3> L, view_of_rank<4> Q, view_of_rank<4> K,
          view_of_rank<4> V>
    requires detail::reference_output<view_element_t<O>> && detail::reference_output<view_element_t<L>> &&
             detail::reference_input<view_element_t<Q>> && detail::reference_input<view_element_t<K>> &&
             detail::reference_input<view_element_t<V>>
void reference_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask = {}, const options& opt = {}) {
    constexpr const char* fn = "reference_forward";
    const auto [qs, ks, vs, os, ls, sh] = detail::check_forward(fn, q, k, v, o, lse);
    const double scale = detail::resolve_scale(fn, opt, sh.head_dim);
    const double cap = opt.softcap;
    using TO = std::remove_reference_t<decltype(os(0, 0, 0, 0))>;
    using TL = std::remove_reference_t<decltype(ls(0, 0, 0))>;
    // One score row per key, sized once (broadcast views may claim any seq_k): assign() reuses it.
    std::vector<double> t = checked_vector<double>(sh.seq_k, fn, "a score row"), p = t;
    for (const auto& sg : detail::make_segments(fn, mask, sh)) {
        for (std::size_t h = 0; h < sh.heads; ++h) {
            const std::size_t kvh = h / sh.group();
            for (std::size_t i = 0; i < sg.lq; ++i) {
                if (detail::reference_row_poisoned(qs, ks, vs, sg, h, kvh, i, detail::inner_mask(mask))) {
                    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
                    ls(sg.b, h, sg.q0 + i) = static_cast<TL>(nan);
                    for (std::size_t d = 0; d < sh.head_dim; ++d) {
                        os(sg.b, sg.q0 + i, h, d) = static_cast<TO>(nan);
                    }
                    continue;
                }
                const double row_lse =
                    detail::reference_row(qs, ks, sg, h, kvh, i, detail::inner_mask(mask), scale, cap, t, p);
                ls(sg.b, h, sg.q0 + i) = static_cast<TL>(row_lse);
                for (std::size_t d = 0; d < sh.head_dim; ++d) {
                    double acc = 0;
                    for (std::size_t j = 0; j < sg.lk; ++j) {
                        if (p[j] != 0.0) {  // masked keys' values are never read (they may be NaN)
                            acc += p[j] * detail::to_double(vs(sg.b, sg.k0 + j, kvh, d));
                        }
                    }
                    os(sg.b, sg.q0 + i, h, d) = static_cast<TO>(acc);
                }
            }
        }
    }
}

/// Reference attention backward: the gradients of sum(o * dout) with respect to q, k and v,
/// from the materialised P of each row (dV += P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP))
/// times the soft-cap derivative, dQ = scale dS K, dK = scale dS^T Q), in double. It recomputes
/// the forward itself, so it checks the fast backward independently of its inputs o and lse.
/// Arguments (docs/conventions.md): gradients dq, dk, dv, inputs dout, q, k, v, options.
/// Shapes: as reference_forward; dout, dq like q; dk, dv like k. Outputs float or double,
/// ADDED to (gradients accumulate, as flash_backward: clear them first with llm::zero_grad).
/// A row touching a non-finite input (q row i, dout row i, or k or v row j of a key j it sees)
/// makes dq row i and the dk and dv rows of every key it sees NaN (the rule of flash_backward).
/// Mask: as reference_forward.
/// Example: `llm::zero_grad(dq, dk, dv); llm::attention::reference_backward(dq, dk, dv, dout, q, k, v, llm::attention::causal{});`
template <attention_mask Mask = no_mask, view_of_rank<4> DQ, view_of_rank<4> DK, view_of_rank<4> DV,
          view_of_rank<4> DO, view_of_rank<4> Q, view_of_rank<4> K, view_of_rank<4> V>
    requires detail::reference_output<view_element_t<DQ>> && detail::reference_output<view_element_t<DK>> &&
             detail::reference_output<view_element_t<DV>> && detail::reference_input<view_element_t<DO>> &&
             detail::reference_input<view_element_t<Q>> && detail::reference_input<view_element_t<K>> &&
             detail::reference_input<view_element_t<V>>
void reference_backward(DQ&& dq, DK&& dk, DV&& dv, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask = {},
                        const options& opt = {}) {
    constexpr const char* fn = "reference_backward";
    const auto [qs, ks, vs, gos, dqs, dks, dvs, checked] =
        detail::check_backward<llm::dims<4>>(fn, q, k, v, dout, dq, dk, dv);
    const detail::shape sh = checked;  // a plain variable: the lambdas below capture it
    const double scale = detail::resolve_scale(fn, opt, sh.head_dim);
    const double cap = opt.softcap;
    const std::size_t D = sh.head_dim;
    using TQ = std::remove_reference_t<decltype(dqs(0, 0, 0, 0))>;
    using TK = std::remove_reference_t<decltype(dks(0, 0, 0, 0))>;
    using TV = std::remove_reference_t<decltype(dvs(0, 0, 0, 0))>;
    // Accumulate in double buffers laid out like the tensors, then add to the outputs once.
    // Broadcast views (stride 0) may claim any extents: the element counts are checked.
    const auto count = [](std::size_t b, std::size_t s, std::size_t h, std::size_t d, const char* what) {
        return checked_mul(checked_mul(checked_mul(b, s, fn, what), h, fn, what), d, fn, what);
    };
    std::vector<double> gq = checked_vector<double>(count(sh.batch, sh.seq_q, sh.heads, D, "the dq elements"), fn, "dq"),
                        gk = checked_vector<double>(count(sh.batch, sh.seq_k, sh.kv_heads, D, "the dk elements"), fn, "dk"),
                        gv = checked_vector<double>(gk.size(), fn, "dv");
    auto iq = [&](std::size_t b, std::size_t i, std::size_t h) { return ((b * sh.seq_q + i) * sh.heads + h) * D; };
    auto ik = [&](std::size_t b, std::size_t j, std::size_t h) { return ((b * sh.seq_k + j) * sh.kv_heads + h) * D; };
    std::vector<double> t = checked_vector<double>(sh.seq_k, fn, "a score row"), p = t, dp = t;
    for (const auto& sg : detail::make_segments(fn, mask, sh)) {
        for (std::size_t h = 0; h < sh.heads; ++h) {
            const std::size_t kvh = h / sh.group();
            for (std::size_t i = 0; i < sg.lq; ++i) {
                if (detail::reference_row_poisoned(qs, ks, vs, sg, h, kvh, i, detail::inner_mask(mask)) ||
                    detail::reference_row_poisoned(gos, ks, vs, sg, h, kvh, i, detail::no_keys{})) {
                    // NaN plus anything stays NaN: dq_i and the dk, dv rows of the keys row i sees.
                    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
                    for (std::size_t d = 0; d < D; ++d) {
                        gq[iq(sg.b, sg.q0 + i, h) + d] += nan;
                    }
                    for (std::size_t j = 0; j < sg.lk; ++j) {
                        if (detail::inner_mask(mask).allowed(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j),
                                                             static_cast<std::int64_t>(sg.lq), static_cast<std::int64_t>(sg.lk))) {
                            for (std::size_t d = 0; d < D; ++d) {
                                gk[ik(sg.b, sg.k0 + j, kvh) + d] += nan;
                                gv[ik(sg.b, sg.k0 + j, kvh) + d] += nan;
                            }
                        }
                    }
                    continue;
                }
                detail::reference_row(qs, ks, sg, h, kvh, i, detail::inner_mask(mask), scale, cap, t, p);
                dp.assign(sg.lk, 0.0);
                double row_d = 0;
                for (std::size_t j = 0; j < sg.lk; ++j) {
                    if (p[j] == 0.0) {
                        continue;
                    }
                    for (std::size_t d = 0; d < D; ++d) {
                        const double g = detail::to_double(gos(sg.b, sg.q0 + i, h, d));
                        gv[ik(sg.b, sg.k0 + j, kvh) + d] += p[j] * g;
                        dp[j] += g * detail::to_double(vs(sg.b, sg.k0 + j, kvh, d));
                    }
                    row_d += p[j] * dp[j];
                }
                for (std::size_t j = 0; j < sg.lk; ++j) {
                    if (p[j] == 0.0) {
                        continue;
                    }
                    const double u = cap > 0 ? t[j] / cap : 0.0;
                    const double ds = p[j] * (dp[j] - row_d) * (1.0 - u * u) * scale;
                    for (std::size_t d = 0; d < D; ++d) {
                        gq[iq(sg.b, sg.q0 + i, h) + d] += ds * detail::to_double(ks(sg.b, sg.k0 + j, kvh, d));
                        gk[ik(sg.b, sg.k0 + j, kvh) + d] += ds * detail::to_double(qs(sg.b, sg.q0 + i, h, d));
                    }
                }
            }
        }
    }
    for (std::size_t b = 0; b < sh.batch; ++b) {
        for (std::size_t i = 0; i < sh.seq_q; ++i) {
            for (std::size_t h = 0; h < sh.heads; ++h) {
                for (std::size_t d = 0; d < D; ++d) {
                    dqs(b, i, h, d) = static_cast<TQ>(static_cast<double>(dqs(b, i, h, d)) + gq[iq(b, i, h) + d]);
                }
            }
        }
        for (std::size_t j = 0; j < sh.seq_k; ++j) {
            for (std::size_t h = 0; h < sh.kv_heads; ++h) {
                for (std::size_t d = 0; d < D; ++d) {
                    dks(b, j, h, d) = static_cast<TK>(static_cast<double>(dks(b, j, h, d)) + gk[ik(b, j, h) + d]);
                    dvs(b, j, h, d) = static_cast<TV>(static_cast<double>(dvs(b, j, h, d)) + gv[ik(b, j, h) + d]);
                }
            }
        }
    }
}

}  // namespace llm::attention
