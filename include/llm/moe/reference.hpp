// SPDX-License-Identifier: Apache-2.0
// The MoE oracle: every expert on every token in double, masked by the routing (dense), softmax top-k routing in double, and the dense backward.
#pragma once

#include <llm/moe/params.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

// The plainest loops, double accumulation: tests compare the dispatched CPU path against it.
// Shapes: x [T, d]; gate [E, d]; w1, w3 [E, ff, d]; w2 [E, d, ff]; experts, weights [T, S].

namespace llm::moe::reference {

/// The mask m[t, e] = sum of the token's weights on slots naming e (0 when e was not chosen).
/// Example: `auto m = llm::moe::reference::mask(experts, weights, 8);`
template <class XE, class W>
std::vector<double> mask(const XE& experts, const W& weights, std::size_t E) {
    const std::size_t T = experts.extent(0), S = experts.extent(1);
    std::vector<double> m(T * E, 0.0);
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t j = 0; j < S; ++j) {
            if (experts(t, j) >= 0) {
                m[t * E + static_cast<std::size_t>(experts(t, j))] += static_cast<double>(weights(t, j));
            }
        }
    }
    return m;
}

/// One SwiGLU FFN in double on the row x (d values): w2_e (SiLU(w1_e x) * (w3_e x)); writes the
/// hidden activations to gate, up (ff each) and the output to out (d).
/// Example: `llm::moe::reference::swiglu(out, gate, up, x, w.w1, w.w3, w.w2, e);`
template <class TW>
void swiglu(double* out, double* gate, double* up, const double* x, const llm::strided_view<const TW, 3>& w1,
            const llm::strided_view<const TW, 3>& w3, const llm::strided_view<const TW, 3>& w2, std::size_t e) {
    const std::size_t ff = w1.extent(1), d = w1.extent(2);
    for (std::size_t f = 0; f < ff; ++f) {
        double g = 0.0, u = 0.0;
        for (std::size_t c = 0; c < d; ++c) {
            g += static_cast<double>(static_cast<float>(w1(e, f, c))) * x[c];
            u += static_cast<double>(static_cast<float>(w3(e, f, c))) * x[c];
        }
        gate[f] = g;
        up[f] = u;
    }
    for (std::size_t c = 0; c < d; ++c) {
        double s = 0.0;
        for (std::size_t f = 0; f < ff; ++f) {
            s += static_cast<double>(static_cast<float>(w2(e, c, f))) * (gate[f] / (1.0 + std::exp(-gate[f])) * up[f]);
        }
        out[c] = s;
    }
}

/// The router logits x gate^T in double [T, E].
/// Example: `auto l = llm::moe::reference::logits(x, w);`
template <class X, class TW>
std::vector<double> logits(const X& x, const basic_moe_weights<TW>& w) {
    const std::size_t T = x.extent(0), E = w.experts(), d = w.d_model();
    std::vector<double> l(T * E);
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t e = 0; e < E; ++e) {
            double s = 0.0;
            for (std::size_t c = 0; c < d; ++c) {
                s += static_cast<double>(x(t, c)) * static_cast<double>(static_cast<float>(w.gate(e, c)));
            }
            l[t * E + e] = s;
        }
    }
    return l;
}

/// Softmax top-k routing in double (Mixtral when renormalize): the k largest probabilities
/// (ties: lower index), weights renormalised or not, times scale. Writes experts [T * k] and
/// weights [T * k] (double) and returns the probabilities [T * E].
/// Example: `auto p = llm::moe::reference::softmax_top_k(ex, wt, l, T, E, 2, true, 1.0);`
inline std::vector<double> softmax_top_k(std::vector<std::int32_t>& experts, std::vector<double>& weights,
                                         const std::vector<double>& l, std::size_t T, std::size_t E, std::size_t k,
                                         bool renormalize, double scale) {
    std::vector<double> p(T * E);
    experts.assign(T * k, -1);
    weights.assign(T * k, 0.0);
    for (std::size_t t = 0; t < T; ++t) {
        double m = l[t * E];
        for (std::size_t e = 1; e < E; ++e) {
            m = std::max(m, l[t * E + e]);
        }
        double s = 0.0;
        for (std::size_t e = 0; e < E; ++e) {
            s += std::exp(l[t * E + e] - m);
        }
        for (std::size_t e = 0; e < E; ++e) {
            p[t * E + e] = std::exp(l[t * E + e] - m) / s;
        }
        std::vector<bool> taken(E, false);
        double S = 0.0;
        for (std::size_t j = 0; j < k; ++j) {
            std::size_t best = E;
            for (std::size_t e = 0; e < E; ++e) {
                if (!taken[e] && (best == E || p[t * E + e] > p[t * E + best])) {
                    best = e;
                }
            }
            taken[best] = true;
            experts[t * k + j] = static_cast<std::int32_t>(best);
            S += p[t * E + best];
        }
        for (std::size_t j = 0; j < k; ++j) {
            const double pj = p[t * E + static_cast<std::size_t>(experts[t * k + j])];
            weights[t * k + j] = scale * (renormalize ? pj / S : pj);
        }
    }
    return p;
}

/// The dense forward: y[t] = sum_e m[t, e] FFN_e(x[t]) (+ nothing for m = 0: the expert ran and
/// was masked), every expert on every token, in double. Returns y [T * d].
/// Example: `auto y = llm::moe::reference::moe_forward(x, w, experts, weights);`
template <class X, class XE, class W, class TW>
std::vector<double> moe_forward(const X& x, const basic_moe_weights<TW>& w, const XE& experts, const W& weights) {
    const std::size_t T = x.extent(0), E = w.experts(), d = w.d_model(), ff = w.d_ff();
    const std::vector<double> m = mask(experts, weights, E);
    std::vector<double> y(T * d, 0.0), xr(d), out(d), g(ff), u(ff);
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t c = 0; c < d; ++c) {
            xr[c] = static_cast<double>(x(t, c));
        }
        for (std::size_t e = 0; e < E; ++e) {
            swiglu(out.data(), g.data(), u.data(), xr.data(), w.w1, w.w3, w.w2, e);
            for (std::size_t c = 0; c < d; ++c) {
                y[t * d + c] += m[t * E + e] * out[c];
            }
        }
    }
    return y;
}

/// Gradients of the dense reference in double, for a fixed routing (experts, weights):
/// dx [T * d], dw1, dw3 [E * ff * d], dw2 [E * d * ff] and dweights [T * S] (dL/d routing
/// weight: dy[t] . FFN_e(x[t])). The router's part (dweights -> dlogits -> dgate) is the
/// caller's (softmax_top_k_backward below for the Mixtral router).
/// Example: `auto g = llm::moe::reference::moe_backward(dy, x, w, experts, weights);`
struct grads {
    std::vector<double> dx;        ///< [T * d]
    std::vector<double> dw1;       ///< [E * ff * d]
    std::vector<double> dw3;       ///< [E * ff * d]
    std::vector<double> dw2;       ///< [E * d * ff]
    std::vector<double> dweights;  ///< [T * S] dL / d routing weight
};

/// Computes reference::grads (see the struct).
/// Example: `llm::moe::reference::grads g = llm::moe::reference::moe_backward(dy, x, w, ex, wt);`
template <class DY, class X, class XE, class W, class TW>
grads moe_backward(const DY& dy, const X& x, const basic_moe_weights<TW>& w, const XE& experts, const W& weights) {
    const std::size_t T = x.extent(0), E = w.experts(), d = w.d_model(), ff = w.d_ff(), S = experts.extent(1);
    const std::vector<double> m = mask(experts, weights, E);
    grads r{std::vector<double>(T * d, 0.0), std::vector<double>(E * ff * d, 0.0), std::vector<double>(E * ff * d, 0.0),
            std::vector<double>(E * d * ff, 0.0), std::vector<double>(T * S, 0.0)};
    std::vector<double> xr(d), out(d), g(ff), u(ff), da(ff);
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t c = 0; c < d; ++c) {
            xr[c] = static_cast<double>(x(t, c));
        }
        for (std::size_t e = 0; e < E; ++e) {
            swiglu(out.data(), g.data(), u.data(), xr.data(), w.w1, w.w3, w.w2, e);
            double dot = 0.0;
            for (std::size_t c = 0; c < d; ++c) {
                dot += static_cast<double>(dy(t, c)) * out[c];
            }
            for (std::size_t j = 0; j < S; ++j) {
                if (experts(t, j) == static_cast<std::int32_t>(e)) {
                    r.dweights[t * S + j] = dot;
                }
            }
            const double me = m[t * E + e];
            if (me == 0.0) {
                continue;  // masked: no gradient reaches the expert
            }
            for (std::size_t f = 0; f < ff; ++f) {
                double s = 0.0;
                for (std::size_t c = 0; c < d; ++c) {
                    s += me * static_cast<double>(dy(t, c)) * static_cast<double>(static_cast<float>(w.w2(e, c, f)));
                }
                da[f] = s;
                const double sg = 1.0 / (1.0 + std::exp(-g[f]));
                const double act = g[f] * sg * u[f];
                for (std::size_t c = 0; c < d; ++c) {
                    r.dw2[(e * d + c) * ff + f] += me * static_cast<double>(dy(t, c)) * act;
                }
                const double dg = s * u[f] * sg * (1.0 + g[f] * (1.0 - sg));
                const double du = s * g[f] * sg;
                for (std::size_t c = 0; c < d; ++c) {
                    r.dw1[(e * ff + f) * d + c] += dg * xr[c];
                    r.dw3[(e * ff + f) * d + c] += du * xr[c];
                    r.dx[t * d + c] += dg * static_cast<double>(static_cast<float>(w.w1(e, f, c))) + du * static_cast<double>(static_cast<float>(w.w3(e, f, c)));
                }
            }
        }
    }
    return r;
}

/// Backward of reference::softmax_top_k in double: dlogits [T * E] from dweights [T * k].
/// Example: `auto dl = llm::moe::reference::softmax_top_k_backward(dw, p, ex, T, E, k, true, 1.0);`
inline std::vector<double> softmax_top_k_backward(const std::vector<double>& dweights, const std::vector<double>& p,
                                                  const std::vector<std::int32_t>& experts, std::size_t T,
                                                  std::size_t E, std::size_t k, bool renormalize, double scale) {
    std::vector<double> dl(T * E, 0.0), dp(E);
    for (std::size_t t = 0; t < T; ++t) {
        std::fill(dp.begin(), dp.end(), 0.0);
        double S = 0.0, gs = 0.0;
        for (std::size_t j = 0; j < k; ++j) {
            const double pj = p[t * E + static_cast<std::size_t>(experts[t * k + j])];
            S += pj;
            gs += dweights[t * k + j] * pj;
        }
        for (std::size_t j = 0; j < k; ++j) {
            const auto e = static_cast<std::size_t>(experts[t * k + j]);
            dp[e] = renormalize ? scale * (dweights[t * k + j] / S - gs / (S * S)) : scale * dweights[t * k + j];
        }
        double dot = 0.0;
        for (std::size_t e = 0; e < E; ++e) {
            dot += p[t * E + e] * dp[e];
        }
        for (std::size_t e = 0; e < E; ++e) {
            dl[t * E + e] = p[t * E + e] * (dp[e] - dot);
        }
    }
    return dl;
}

}  // namespace llm::moe::reference
