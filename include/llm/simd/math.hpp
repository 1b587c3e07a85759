// SPDX-License-Identifier: Apache-2.0
// Shared vector maths over any SIMD backend: exp, exp2, tanh, sigmoid, erf, and the row reductions max, sum of exp and log-sum-exp.
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/simd/detail/one_register.hpp>
#include <llm/simd/simd.hpp>
#include <llm/simd/unroll.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

// Error bounds below: u = 2^-24 (float rounding, 5.96e-8); delta_exp = the relative error of
// S::exp (detail::fast_exp): 1.0e-7 where S::fused_fma, 1.25e-7 where not. Each bound is
// first order in u (the neglected terms are below 1e-13) and is checked by tests/simd/math.cpp
// against the std:: functions in double, on every compiled backend.
// Scalar (float or double, not vector) versions of sigmoid and logsumexp: <llm/core/math.hpp>.
// exp, tanh, sigmoid and erf are constexpr like detail::fast_exp, so that under nvcc
// (--expt-relaxed-constexpr) device code can call them through llm::simd::scalar; the row
// reductions are host code.

namespace llm::simd {

/// exp(x) lane-wise: S::exp, the facade's one fast exp (detail::fast_exp), under the name the
/// other functions here use. Relative error < 1.0e-7 (about 1.6 ulp) where S::fused_fma, <
/// 1.25e-7 where not, for x in [-87.336, 88.722]; below that range 0 (no subnormals), above
/// +inf; NaN gives NaN.
/// S: a SIMD backend; x: a vector of S.
/// Example: `auto e = llm::simd::exp<S>(S::loadu(x));`
template <backend S>
[[nodiscard]] LLM_FORCE_INLINE constexpr typename S::f32 exp(typename S::f32 x) noexcept {
    return S::exp(x);
}

namespace detail {
/// exp2's polynomial: p(f) ~ 2^f on [-1/2, 1/2] (see llm::simd::exp2).
template <backend S>
[[nodiscard]] LLM_FORCE_INLINE constexpr typename S::f32 exp2_poly(typename S::f32 f) noexcept {
    auto p = S::set1(1.5353361959569156e-4f);
    p = S::fma(p, f, S::set1(1.3398875016719103e-3f));
    p = S::fma(p, f, S::set1(9.618436917662620e-3f));
    p = S::fma(p, f, S::set1(5.5503323674201965e-2f));
    p = S::fma(p, f, S::set1(0.24022647738456726f));
    p = S::fma(p, f, S::set1(0.6931471824645996f));
    return S::fma(p, f, S::set1(1.0f));
}
}  // namespace detail

/// 2^y lane-wise for a kernel that has already folded log2(e) into a parameter (exp(a x) as
/// exp2((a log2 e) x)), cheaper than exp: no Cody-Waite reduction (n = round(y) by the 1.5 *
/// 2^23 trick, f = y - n in [-1/2, 1/2] is exact) and no infinity / NaN fix-up: 14 operations
/// against exp's 22 (11 on 16-lane AVX-512 backends: `vrndscaleps` and `vscalefps`, the same
/// bits). p(f) is a degree-6 polynomial fitted for relative error on [-1/2, 1/2]
/// (Lawson iteration, c0 = 1 fixed; approximation error 2.0e-9), evaluated by Horner in fma;
/// the result p(f) 2^n, 2^n built from exponent bits (S::pow2i).
/// Relative error < 1.0e-7 for y in [-126, 127] where S::fused_fma (measured 7.9e-8 over 3.5e6
/// points), < 1.6e-7 where not (each unfused Horner step rounds twice); tests/simd/math.cpp
/// checks both: 2e-9 approximation, about 1.3u of Horner rounding (the last steps dominate:
/// |f c1| <= 0.35), the exact scaling by 2^n. Outside [-126, 127] y
/// is clamped: below gives 2^-126 (FLT_MIN; absolute error < 1.2e-38), above 2^127 times
/// p(f) (no +inf); NaN gives an unspecified value. A caller computing y = x (a log2 e) pays
/// one more rounding of y than exp(x a) (relative u of y, |y| u ln 2 of the result), which
/// for the scan's exp(delta A) <= 1 is at most u / e absolute.
/// S: a SIMD backend; y: a vector of S.
/// Example: `auto e = llm::simd::exp2<S>(S::mul(dt, a_log2e));  // exp(dt * a)`
template <backend S>
[[nodiscard]] LLM_FORCE_INLINE constexpr typename S::f32 exp2(typename S::f32 y) noexcept {
    const auto yc = S::min(S::max(y, S::set1(-126.0f)), S::set1(127.0f));
#if defined(__AVX512F__)
    if constexpr (detail::one_register_backend<S> && S::width == 16) {
        if (!std::is_constant_evaluated()) {
            // The same n (round to nearest even), f, p(f) and p(f) 2^n (exact: n in [-126, 127] and
            // p(f) >= 1 where n = -126), so the same bits, in 11 operations instead of 14:
            // `vrndscaleps` for the add-and-subtract rounding, `vscalefps` for 2^n and the product.
            // (The zero-masking forms with every lane kept: GCC 12's plain ones trip
            // -Wmaybe-uninitialized inside its own headers, PR 105593.)
            const __m512 v = detail::to_register<S>(yc);
            const __m512 n = _mm512_maskz_roundscale_ps(0xFFFF, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            const auto p = detail::exp2_poly<S>(detail::from_register<S>(_mm512_sub_ps(v, n)));
            return detail::from_register<S>(_mm512_maskz_scalef_ps(0xFFFF, detail::to_register<S>(p), n));
        }
    }
#endif
    const auto magic = S::set1(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    const auto n = S::sub(S::add(yc, magic), magic);
    return S::mul(detail::exp2_poly<S>(S::sub(yc, n)), S::pow2i(n));
}

/// tanh(x) lane-wise, as 1 - 2 / (exp(2x) + 1): one exp, one division; saturates to exactly
/// +1 (exp overflows) and -1 (exp underflows) for |x| > 44, +-inf give +-1, NaN gives NaN.
///
/// Absolute error <= 2.5e-7 for every x. Derivation, with e = exp(2x) and q = 2 / (e + 1) in
/// (0, 2]: exp's relative error delta_exp moves q by at most q delta_exp e / (e + 1) <=
/// delta_exp / 2 (6.3e-8); rounding e + 1 moves q by at most 2u and the division by u (1.8e-7
/// together, largest where q is near 2); 1 - q is exact for q in [0.5, 2] (Sterbenz) and
/// rounds by u / 2 otherwise, where the other terms are 4x smaller. Sum: 2.4e-7.
/// As a relative error this is <= 5e-7 for |x| >= 0.55 (|tanh x| >= 0.5); near 0 only the
/// absolute bound holds (1 - q cancels: tanh(1e-10) gives 0). That is what the callers need:
/// GELU uses 1 + tanh(u), logit softcapping cap * tanh(s / cap) adds an error far below the
/// score's own rounding; where a relative error near 0 matters, use std::tanh.
/// S: a SIMD backend; x: a vector of S.
/// Example: `auto t = llm::simd::tanh<S>(S::loadu(x));`
template <backend S>
[[nodiscard]] LLM_FORCE_INLINE constexpr typename S::f32 tanh(typename S::f32 x) noexcept {
    const auto one = S::set1(1.0f);
    const auto e = S::exp(S::add(x, x));
    return S::sub(one, S::div(S::set1(2.0f), S::add(e, one)));
}

/// The logistic sigmoid 1 / (1 + exp(-x)) lane-wise: one exp, one division. exp(-x)
/// overflowing (x < -88.72) gives 0, underflowing gives 1; -inf gives 0, +inf 1, NaN NaN.
///
/// Relative error <= 2.5e-7 for x >= -87.3 (where the result is a normal float). Derivation:
/// exp's relative error delta_exp moves the result by at most delta_exp e / (1 + e) <=
/// delta_exp relative; rounding 1 + e and the division add u each: delta_exp + 2u <= 2.45e-7.
/// For x < -87.3 the true result is below FLT_MIN (1.18e-38) and so is the absolute error
/// (the result rounds to a subnormal, or is 0 once exp(-x) overflows).
/// S: a SIMD backend; x: a vector of S.
/// Example: `auto s = llm::simd::sigmoid<S>(S::loadu(x));`
template <backend S>
[[nodiscard]] LLM_FORCE_INLINE constexpr typename S::f32 sigmoid(typename S::f32 x) noexcept {
    const auto one = S::set1(1.0f);
    return S::div(one, S::add(one, S::exp(S::neg(x))));
}

/// erf(x) lane-wise by Abramowitz & Stegun 7.1.26: erf|x| = 1 - t (a1 + t (a2 + t (a3 + t (a4
/// + t a5)))) exp(-x^2), t = 1 / (1 + p |x|), the sign restored; one exp, one division.
/// erf(+-inf) = +-1, NaN gives NaN.
///
/// Absolute error <= 8e-7 for every x (measured over a sweep of every 37th float in
/// [-100, 100]: 5.6e-7 with a fused fma, 6.3e-7 without, largest for |x| < 0.1).
/// Derivation of where it comes from, P = t (a1 + ... ) and E = exp(-x^2): P E = 1 - erf|x| <=
/// 1, so absolute errors of P E are at most its relative ones. The formula's own error is
/// 1.5e-7 (A&S); the coefficients rounded to float move P by u sum|a_i| <= 4.5u; the Horner
/// steps (fma, one rounding each, partial values <= 1.03) by 4.2u; t's two roundings (2u)
/// through P's condition number at t <= 1 (3.44) by 6.9u; exp adds delta_exp (1.7u), the
/// product u, the final 1 - P E u / 2: 1.5e-7 + 20u = 1.3e-6 if every rounding aligned, which
/// they do not: the test checks the measured bound with margin, 8e-7. Near 0 only the
/// absolute bound holds (1 - P E cancels). GELU (erf form) uses 0.5 + 0.5 erf, where this is
/// a few float ulps of the result.
/// S: a SIMD backend; x: a vector of S.
/// Example: `auto phi = S::fma(S::set1(0.5f), llm::simd::erf<S>(S::mul(x, S::set1(0.70710678f))), S::set1(0.5f));`
template <backend S>
[[nodiscard]] LLM_FORCE_INLINE constexpr typename S::f32 erf(typename S::f32 x) noexcept {
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

namespace detail {

/// Elements per block of row_logsumexp: 2048 (8 KiB fp32, 4 KiB bf16) stay in the 32 KiB L1
/// between the block's max pass and its exp pass, so memory is read once per element while the
/// running sum is rescaled once per block, not once per element (one exp per element).
inline constexpr std::size_t lse_block = 2048;

/// Independent accumulators of the max (and plain sum) pass: enough to cover the 3-4 cycle
/// latency of a vector max or add on current x86 cores at one issue per cycle.
inline constexpr std::size_t row_unroll = 4;

/// Independent accumulators of the exp pass: two. Each term is a fast exp of ~20 dependent
/// instructions, so two of them in flight already hide the add's latency, and four keep too
/// many constants and temporaries live for the 16 vector registers of AVX2: measured on an
/// AVX2 machine (rows of 4096 in L2), four made log-softmax 7% slower than one accumulator,
/// two are within 2% of it and make cross-entropy's forward 10% faster.
inline constexpr std::size_t exp_unroll = 2;

/// Hints that the cache line holding p will be read soon (never faults, even past the end of
/// a buffer). row_logsumexp's exp pass issues these for the next block, so DRAM streams it in
/// while the exps run; without them the max pass and the exp pass take turns (measured:
/// about half the throughput on rows that come from memory).
LLM_FORCE_INLINE void prefetch_read(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
#endif
}

/// W elements (fp32 or bf16) as fp32 lanes.
template <class S, class T>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 load_full(const T* p) noexcept {
    if constexpr (std::is_same_v<std::remove_const_t<T>, float>) {
        return S::loadu(p);
    } else {
        return S::load_bf16(p);
    }
}

/// n < W elements (fp32 or bf16) as fp32 lanes; lanes past n are 0 (read nothing past p + n).
template <class S, class T>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 load_partial_any(const T* p, std::size_t n) noexcept {
    if constexpr (std::is_same_v<std::remove_const_t<T>, float>) {
        return S::load_partial(p, n);
    } else {
        return S::load_bf16_partial(p, n);
    }
}

/// v with the lanes from n on set to `fill` (so a partial tail cannot take part in a max, and
/// exp(-inf - m) = 0 in a sum).
template <class S>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 mask_tail(typename S::f32 v, std::size_t n, float fill) noexcept {
    static_assert(S::width <= 64, "mask_tail: the lane index table holds 64 lanes");
    alignas(64) static constexpr float lane_index[64] = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
        22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
        44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    return S::select_lt(S::load(lane_index), S::set1(static_cast<float>(n)), v, S::set1(fill));
}

/// max of p[0, n) (-inf for n = 0); with WithSum, their sum is also added to *sum_x.
template <class S, bool WithSum, class T>
[[nodiscard]] LLM_FORCE_INLINE float block_max(const T* p, std::size_t n, double* sum_x) noexcept {
    using f32 = typename S::f32;
    constexpr std::size_t W = S::width, U = row_unroll;
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    f32 m[U], s[U];
    unroll<U>([&](auto k) {
        m[k] = S::set1(neg_inf);
        s[k] = S::zero();
    });
    std::size_t i = 0;
    for (; i + U * W <= n; i += U * W) {
        unroll<U>([&](auto k) {
            const f32 v = load_full<S>(p + i + k * W);
            m[k] = S::max(m[k], v);
            if constexpr (WithSum) {
                s[k] = S::add(s[k], v);
            }
        });
    }
    // at most U - 1 whole vectors remain; counted down so GCC sees the trip count (a test on
    // i + W <= n drew -Waggressive-loop-optimizations once unroll's fold was force-inlined)
    for (std::size_t r = (n - i) / W; r != 0; --r, i += W) {
        const f32 v = load_full<S>(p + i);
        m[0] = S::max(m[0], v);
        if constexpr (WithSum) {
            s[0] = S::add(s[0], v);
        }
    }
    if (i < n) {
        const f32 v = load_partial_any<S>(p + i, n - i);  // 0 past the tail: right for the sum
        m[1] = S::max(m[1], mask_tail<S>(v, n - i, neg_inf));
        if constexpr (WithSum) {
            s[1] = S::add(s[1], v);
        }
    }
    if constexpr (WithSum) {
        *sum_x += static_cast<double>(S::reduce_add(S::add(S::add(s[0], s[1]), S::add(s[2], s[3]))));
    }
    return S::reduce_max(S::max(S::max(m[0], m[1]), S::max(m[2], m[3])));
}

/// sum of exp(p[i] - m) over [0, n), with Store also written to y[0, n) (fp32).
template <class S, bool Store, bool Prefetch, class T>
[[nodiscard]] LLM_FORCE_INLINE float block_exp_sum(const T* p, std::size_t n, float m, float* y) noexcept {
    using f32 = typename S::f32;
    constexpr std::size_t W = S::width, U = exp_unroll;
    const f32 vm = S::set1(m);
    f32 a[U];
    unroll<U>([&](auto k) { a[k] = S::zero(); });
    std::size_t i = 0;
    for (; i + U * W <= n; i += U * W) {
        if constexpr (Prefetch) {
            // one hint per 64-byte line of the next block (or of the next row, which the same
            // thread usually reads next)
            for (std::size_t line = 0; line < U * W * sizeof(T); line += 64) {
                prefetch_read(reinterpret_cast<const char*>(p + n + i) + line);
            }
        }
        unroll<U>([&](auto k) {
            const f32 e = S::exp(S::sub(load_full<S>(p + i + k * W), vm));
            if constexpr (Store) {
                S::storeu(y + i + k * W, e);
            }
            a[k] = S::add(a[k], e);
        });
    }
    for (std::size_t r = (n - i) / W; r != 0; --r, i += W) {  // as in block_max
        const f32 e = S::exp(S::sub(load_full<S>(p + i), vm));
        if constexpr (Store) {
            S::storeu(y + i, e);
        }
        a[0] = S::add(a[0], e);
    }
    if (i < n) {
        // lanes past the tail hold -inf: exp(-inf - m) = 0 for any m but -inf
        const f32 v = mask_tail<S>(load_partial_any<S>(p + i, n - i), n - i, -std::numeric_limits<float>::infinity());
        const f32 e = S::exp(S::sub(v, vm));
        if constexpr (Store) {
            S::store_partial(y + i, e, n - i);
        }
        a[1] = S::add(a[1], e);
    }
    return S::reduce_add(S::add(a[0], a[1]));
}

/// The blocked online log-sum-exp behind row_logsumexp and row_logsumexp_sum.
template <class S, bool WithSum, class T>
[[nodiscard]] double row_lse(const T* x, std::size_t n, double* sum_x) noexcept {
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    float mx = neg_inf;  // the running max
    double s = 0.0;      // sum of exp(x - mx) over the blocks so far
    for (std::size_t b0 = 0; b0 < n; b0 += lse_block) {
        const T* p = x + b0;
        const std::size_t len = std::min(lse_block, n - b0);
        const float bm = block_max<S, WithSum>(p, len, sum_x);
        if (bm > mx) {
            s *= std::exp(static_cast<double>(mx) - static_cast<double>(bm));  // exp(-inf) = 0 on the first block
            mx = bm;
        }
        // While every element so far is -inf (or a NaN hid the max), exp(x - 0) keeps the
        // terms: 0 for -inf, NaN for NaN, so NaN is never lost.
        const float shift = mx == neg_inf ? 0.0f : mx;
        s += static_cast<double>(block_exp_sum<S, false, true>(p, len, shift, nullptr));
    }
    return static_cast<double>(mx) + std::log(s);
}

}  // namespace detail

/// max of x[0, n) (fp32 or bf16 elements, contiguous), exact; n = 0 gives -inf. A NaN element
/// may or may not be returned (the backends' max keeps the second operand on a NaN).
/// S: a SIMD backend; T: float or llm::bf16.
/// Example: `float m = llm::simd::row_max<S>(x, n);`
template <backend S, float_or_bf16 T>
[[nodiscard]] float row_max(const T* x, std::size_t n) noexcept {
    return detail::block_max<S, false>(x, n, nullptr);
}

/// sum over i < n of exp(x[i] - m): the softmax denominator once m = row_max(x, n). x fp32 or
/// bf16, contiguous; n = 0 gives 0. -inf elements add 0 (when m > -inf); m must be >= every
/// element for the terms to stay <= 1.
/// Relative error <= delta_exp + u (D + ceil(n / (2 W)) + log2(2 W) + 2), D = max_i (m - x[i])
/// over the terms that are not 0: each term's exponent x - m is rounded (u |x - m|) and exp
/// adds delta_exp; the terms go to 2 W float accumulators of at most ceil(n / (2 W)) terms each
/// (one rounding per add) and are combined in a tree of depth log2(2 W) (+1 for the tail).
/// S: a SIMD backend; T: float or llm::bf16.
/// Example: `float s = llm::simd::row_exp_sum<S>(x, n, llm::simd::row_max<S>(x, n));`
template <backend S, float_or_bf16 T>
[[nodiscard]] float row_exp_sum(const T* x, std::size_t n, float m) noexcept {
    return detail::block_exp_sum<S, false, false>(x, n, m, nullptr);
}

/// row_exp_sum that also writes y[i] = exp(x[i] - m) (fp32, same accuracy as exp<S> of the
/// rounded x[i] - m): a softmax then only scales y by 1 / sum. Output first, as everywhere.
/// y and x are contiguous; y may alias x when x is fp32.
/// S: a SIMD backend; T: float or llm::bf16.
/// Example: `float s = llm::simd::row_exp_sum<S>(y, x, n, m);  // y[i] = exp(x[i] - m)`
template <backend S, float_or_bf16 T>
[[nodiscard]] float row_exp_sum(float* y, const T* x, std::size_t n, float m) noexcept {
    return detail::block_exp_sum<S, true, false>(x, n, m, y);
}

/// log(sum over i < n of exp(x[i])), x fp32 or bf16 and contiguous, in one read of memory:
/// blocks of 2048 elements (in L1) take their max, then one exp per element against the
/// running max, which is rescaled once per block (an online log-sum-exp, blockwise so it costs
/// one exp per element, not two); the block sums are added in double. The next block is
/// prefetched during the exp pass.
/// Returns a double (callers that sum log-probabilities in double keep its last bits; cast
/// otherwise). n = 0 or all elements -inf: -inf; any NaN or +inf element: NaN.
/// Absolute error <= the relative error of row_exp_sum with n replaced by min(n, 2048) (the
/// block sums are float; combining and the log are in double): for n values spread over a
/// range D and W = 8, n = 4096: delta_exp + u (D + 134).
/// S: a SIMD backend; T: float or llm::bf16.
/// Example: `float lse = static_cast<float>(llm::simd::row_logsumexp<S>(logits, vocab));`
template <backend S, float_or_bf16 T>
[[nodiscard]] double row_logsumexp(const T* x, std::size_t n) noexcept {
    return detail::row_lse<S, false>(x, n, nullptr);
}

/// log-sum-exp and plain sum of a row, from one read (what a cross-entropy with label
/// smoothing needs: the lse and the mean logit).
struct lse_and_sum {
    double lse;  ///< log(sum exp(x[i])), as row_logsumexp.
    double sum;  ///< sum x[i]: float vector sums per block of 2048, added in double.
};

/// row_logsumexp and the sum of the elements in the same pass (the sum is taken during the
/// max pass of each block, so the row is still read once). Accuracy of lse: as row_logsumexp;
/// of sum: relative to sum |x[i]|, <= u (ceil(min(n, 2048) / (4 W)) + log2(4 W) + 2).
/// S: a SIMD backend; T: float or llm::bf16.
/// Example: `auto [lse, sum] = llm::simd::row_logsumexp_sum<S>(logits, vocab);`
template <backend S, float_or_bf16 T>
[[nodiscard]] lse_and_sum row_logsumexp_sum(const T* x, std::size_t n) noexcept {
    double sum = 0.0;
    const double lse = detail::row_lse<S, true>(x, n, &sum);
    return {lse, sum};
}

}  // namespace llm::simd
