// SPDX-License-Identifier: Apache-2.0
// Numerically stable scalar helpers (sigmoid, softplus, log_sigmoid, logsumexp, log1mexp), host and device.
#pragma once

#include <llm/config.hpp>

#include <cmath>
#include <concepts>

// Shared contract of every function here: T is float or double (long double works on the
// host); for every finite input whose true result is finite the result is finite and within
// 1.5 eps(T) relative of it (measured against long double on |x| in [1e-6, 1e4]; logsumexp:
// 1.5 eps(T) * max(|result|, |a|, |b|), since its result can cancel to near 0), whatever the
// magnitude of the input (no exp() of a large positive argument is ever taken); NaN in gives
// NaN out; +-Inf give the limits. tests/core/math.cpp checks 4 eps.

namespace llm {

/// The logistic function 1 / (1 + e^-x), in [0, 1].
/// T: float or double.
/// Example: `llm::sigmoid(0.0f);  // 0.5f`
template <std::floating_point T>
LLM_HD T sigmoid(T x) noexcept {
    // e^-|x| <= 1 cannot overflow; for x < 0 the form e^x / (1 + e^x) keeps full relative
    // precision where 1 - 1/(1 + e^-x) would cancel.
    const T e = std::exp(x < 0 ? x : -x);
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/// log(1 + e^x), the smooth ReLU, in [0, inf); x + log1p(e^-x) for large x, e^x for very negative x.
/// T: float or double.
/// Example: `llm::softplus(0.0);  // log(2) = 0.693...`
template <std::floating_point T>
LLM_HD T softplus(T x) noexcept {
    // max(x, 0) + log1p(e^-|x|): the exponential is <= 1 and log1p keeps the tiny tail exact.
    return (x > 0 ? x : T(0)) + std::log1p(std::exp(x < 0 ? x : -x));
}

/// log(sigmoid(x)) = -softplus(-x), in (-inf, 0]; about x for very negative x (-1e4 gives -1e4, not -inf).
/// T: float or double.
/// Example: `llm::log_sigmoid(-1e4f);  // -1e4f`
template <std::floating_point T>
LLM_HD T log_sigmoid(T x) noexcept {
    return (x < 0 ? x : T(0)) - std::log1p(std::exp(x < 0 ? x : -x));
}

/// log(e^a + e^b) (numpy's logaddexp). -inf is the identity (log 0): logsumexp(-inf, -inf) is
/// -inf, logsumexp(+inf, anything but NaN) is +inf.
/// T: float or double.
/// Example: `llm::logsumexp(1000.0f, 1000.0f);  // 1000 + log(2)`
template <std::floating_point T>
LLM_HD T logsumexp(T a, T b) noexcept {
    if (std::isnan(a) || std::isnan(b)) {
        return a + b;
    }
    const T hi = a > b ? a : b;
    const T lo = a > b ? b : a;
    // Infinite hi: the answer is hi itself, and lo - hi would be NaN (inf - inf).
    if (std::isinf(hi)) {
        return hi;
    }
    return hi + std::log1p(std::exp(lo - hi));
}

/// log(1 - e^x) for x <= 0 (log of the complement of a probability given as a log, e.g. the
/// log-odds in ORPO); -inf at x = 0, NaN for x > 0. Uses Maechler's switch at -log(2)
/// between log(-expm1(x)) and log1p(-e^x), each accurate on its side.
/// T: float or double.
/// Example: `llm::log1mexp(-1e-10);  // log(1e-10) = -23.0258...`
template <std::floating_point T>
LLM_HD T log1mexp(T x) noexcept {
    constexpr T minus_log2 = T(-0.693147180559945309417232121458176568L);
    return x > minus_log2 ? std::log(-std::expm1(x)) : std::log1p(-std::exp(x));
}

}  // namespace llm
