// SPDX-License-Identifier: Apache-2.0
// The one fast exp of the SIMD facade, written over a backend's operations and shared by every backend.
#pragma once

#include <llm/config.hpp>

#include <limits>

namespace llm::simd::detail {

/// 2^n for an integral float n in [-126, 127] without a float-to-int conversion: n + (2^23 +
/// 127) is exact and, having exponent 23, holds the integer n + 127 in its low mantissa bits;
/// shifting those bits left by 23 puts them in the exponent field (the rest shifts out), which
/// is 2^n. One add and one shift, where a conversion costs as much and Highway's conversion
/// adds a saturation fix-up; backends' pow2i use it.
inline constexpr float pow2i_shifter = 8388735.0f;  // 2^23 + 127

/// Constants of fast_exp, with the reason for each.
struct exp_constants {
    /// Largest float whose exp is finite: float(ln FLT_MAX) = 88.72283935... rounds up and its
    /// exp overflows, so the float just below it is the last input with a finite result.
    static constexpr float hi = 88.72283172607421875f;
    /// Smallest float whose exp is a normal float (ln FLT_MIN = -87.336544750...). Below it
    /// the result would be subnormal; it is flushed to 0 instead (as with FTZ), which keeps
    /// 2^n a normal float for every accepted input.
    static constexpr float lo = -87.33654022216796875f;
    static constexpr float log2e = 1.44269502162933349609375f;
    /// hi * log2e and lo * log2e, rounded to float as fast_exp computes them, stay within
    /// (-127, 128): floor gives n in [-126, 127] for every clamped input, so 2^n is a
    /// normal float built from exponent bits alone and no clamp of n is needed.
    static_assert(hi * log2e < 128.0f && lo * log2e >= -126.0f);
    /// ln 2 split for Cody-Waite reduction: ln2_hi has 16 significant bits, so n * ln2_hi is
    /// exact for the |n| <= 127 used here; ln2_lo = ln 2 - ln2_hi.
    static constexpr float ln2_hi = 0.693145751953125f;
    static constexpr float ln2_lo = 1.428606765330187045e-06f;
    /// exp(r) ~= 1 + r + r^2 (c2 + r (c3 + r (c4 + r (c5 + r c6)))) on r in [-0.001, ln 2 + 0.001]:
    /// minimax for relative error with the first two coefficients fixed to 1 (Lawson's
    /// iteration in 40-digit arithmetic, then rounded to float); approximation error 2.9e-9,
    /// well under float rounding, so the measured error is the evaluation's rounding.
    /// Degree 5 would leave 1.3e-7 of approximation error on top of rounding.
    static constexpr float c2 = 0.5000023245811462f;
    static constexpr float c3 = 0.16663169860839844f;
    static constexpr float c4 = 0.04185584932565689f;
    static constexpr float c5 = 0.007866956293582916f;
    static constexpr float c6 = 0.0019133641617372632f;
};

/// exp(x) lane-wise, over the operations of backend S (see llm::simd::backend) plus three
/// building blocks every backend provides: floor, pow2i (2^n for integral n in [-126, 127])
/// and select_lt(a, b, t, f) (a < b ? t : f).
///
/// Method: x clamped to [lo, hi], n = floor(x log2 e) in [-126, 127], r = x - n ln 2 in
/// [0, ln 2) (Cody-Waite, two fma), exp(x) = p(r) * 2^n with p the degree-6 polynomial above
/// (Horner, fma). floor rather than round keeps n <= 127 up to ln FLT_MAX, so 2^n is built
/// from exponent bits alone (round would need 2^128 there).
///
/// Accuracy, against double-precision exp, for x in [lo, hi] = [-87.33654, 88.72283] (a
/// superset of [-87.3, 88.7]): max relative error < 1.0e-7 (about 1.6 ulp) where fma is
/// fused (S::fused_fma), < 1.25e-7 where it is not. Measured over every float of the range
/// (tests/simd/simd.cpp, slow suite): 9.64e-8 fused, 1.17e-7 unfused (xsimd sse4_2 with
/// -ffp-contract=off); every test run checks the bounds on a dense sweep.
/// Beyond: x < lo gives +0 (std::exp would give a subnormal or 0), x > hi gives +inf
/// (+inf in gives +inf, -inf gives 0), NaN gives NaN.
/// S: a type satisfying llm::simd::backend.
/// Example: `auto y = llm::simd::detail::fast_exp<llm::simd::scalar>(1.0f);  // 2.7182817f`
template <class S>
LLM_FORCE_INLINE constexpr typename S::f32 fast_exp(typename S::f32 x) noexcept {
    // constexpr, not LLM_HD: nvcc (--expt-relaxed-constexpr) then lets device code call it
    // through llm::simd::scalar, and makes device code only of the instantiations device code
    // calls (a vector backend's types cannot appear in device code at all).
    using c = exp_constants;
    using f32 = typename S::f32;
    // Clamping first keeps every intermediate finite and n in range. x86 min/max return
    // the second operand when one is NaN, so a NaN x becomes lo here; other targets may
    // keep the NaN, which the (x - x) term below turns into a NaN result either way.
    const f32 xc = S::min(S::max(x, S::set1(c::lo)), S::set1(c::hi));
    const f32 n = S::floor(S::mul(xc, S::set1(c::log2e)));  // in [-126, 127]: see exp_constants
    f32 r = S::fma(n, S::set1(-c::ln2_hi), xc);
    r = S::fma(n, S::set1(-c::ln2_lo), r);
    f32 p = S::fma(S::set1(c::c6), r, S::set1(c::c5));
    p = S::fma(p, r, S::set1(c::c4));
    p = S::fma(p, r, S::set1(c::c3));
    p = S::fma(p, r, S::set1(c::c2));
    p = S::fma(p, r, S::set1(1.0f));
    p = S::fma(p, r, S::set1(1.0f));
    f32 y = S::mul(p, S::pow2i(n));
    // x - x is +0 for finite x and NaN for NaN or +-inf: NaN in gives NaN out; the infinities
    // are then replaced by the two selects below (inf > hi, -inf < lo).
    y = S::add(y, S::sub(x, x));
    y = S::select_lt(S::set1(c::hi), x, S::set1(std::numeric_limits<float>::infinity()), y);
    y = S::select_lt(x, S::set1(c::lo), S::zero(), y);
    return y;
}

}  // namespace llm::simd::detail
