// SPDX-License-Identifier: Apache-2.0
// Vector sigmoid, tanh and erf built from the SIMD facade's exp, for the activation kernels.
#pragma once

#include <llm/simd/simd.hpp>

namespace llm::nn::detail {

/// 1 / (1 + exp(-x)). exp(-x) overflows to +inf for x < -88 and the quotient becomes 0,
/// the right limit; for large x exp underflows to 0 and the result is 1.
template <simd::backend S>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 sigmoid(typename S::f32 x) {
    const auto one = S::set1(1.0f);
    return S::div(one, S::add(one, S::exp(S::neg(x))));
}

/// tanh(x) = 1 - 2 / (exp(2x) + 1): saturates to +-1 through exp's overflow/underflow.
/// Absolute error ~1e-7; relative error near 0 grows (1 - (1 - 2x)) but GELU only uses
/// 1 + tanh, where an absolute error is what matters.
template <simd::backend S>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 tanh(typename S::f32 x) {
    const auto one = S::set1(1.0f);
    const auto e = S::exp(S::add(x, x));
    return S::sub(one, S::div(S::set1(2.0f), S::add(e, one)));
}

/// erf(x) by Abramowitz & Stegun 7.1.26: 1 - t (a1 + t (a2 + ...)) exp(-x^2) with
/// t = 1 / (1 + p |x|), sign restored. Absolute error <= 1.5e-7: below fp32 rounding of
/// 1 + erf, the only form GELU uses.
template <simd::backend S>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 erf(typename S::f32 x) {
    const auto ax = S::abs(x);
    const auto one = S::set1(1.0f);
    const auto t = S::div(one, S::fma(S::set1(0.3275911f), ax, one));
    auto poly = S::set1(1.061405429f);
    poly = S::fma(poly, t, S::set1(-1.453152027f));
    poly = S::fma(poly, t, S::set1(1.421413741f));
    poly = S::fma(poly, t, S::set1(-0.284496736f));
    poly = S::fma(poly, t, S::set1(0.254829592f));
    poly = S::mul(poly, t);
    const auto y = S::sub(one, S::mul(poly, S::exp(S::neg(S::mul(ax, ax)))));
    return S::select_lt(x, S::zero(), S::neg(y), y);
}

}  // namespace llm::nn::detail
