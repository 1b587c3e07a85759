// SPDX-License-Identifier: Apache-2.0
// The SIMD facade: the concept llm::simd::backend, every compiled backend, and default_backend.
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/simd/highway.hpp>
#include <llm/simd/scalar.hpp>
#include <llm/simd/xsimd.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm::simd {

/// A SIMD backend: a policy type with static members only, which kernels are templates on
/// (`template <llm::simd::backend S = llm::simd::default_backend>`). Vectors hold `width`
/// floats; what a kernel needs and nothing more:
///
/// - `using f32`: the vector type; `static constexpr std::size_t width`: floats per vector;
///   `static constexpr bool fused_fma` (see fma); `name` (a std::string_view, for reports).
/// - `zero()`, `set1(x)`: all lanes 0 / x.
/// - `load(p)`: p aligned to width * 4 bytes; `loadu(p)`: any alignment; both read p[0, width).
/// - `load_partial(p, n)`, n <= width: reads p[0, n) only (never p[n] or beyond: masked
///   instructions on AVX-512, a buffer elsewhere), lanes >= n are 0. n = 0 reads nothing.
/// - `store(p, v)` (aligned), `storeu(p, v)`, `store_partial(p, v, n)`: writes p[0, n) only.
/// - `add sub mul div min max (a, b)`, `fma(a, b, c)` = a * b + c, `abs neg (a)`: lane-wise
///   IEEE float. fma rounds once when `fused_fma` is true (every backend on AVX2, AVX-512
///   and NEON64 targets; scalar always), else it may round twice. min/max with a NaN:
///   unspecified (x86 and scalar: the second operand).
/// - `reduce_add(v)`, `reduce_max(v)` -> float: sum / max of the lanes, in a
///   backend-specific order (sums differ from a sequential sum by rounding only).
/// - `exp(v)`: fast exp, detail::fast_exp: relative error < 1.0e-7 (about 1.6 ulp; 1.25e-7
///   without fused fma) on [-87.336, 88.722]; 0 below, +inf above, NaN stays NaN.
/// - `load_bf16(p)`, `load_f16(p)` (p: width elements, any alignment) and the `_partial(p, n)`
///   forms: exact conversion to float, bit-identical to `static_cast<float>(llm::f16)` and,
///   for bf16, to `static_cast<float>(llm::bf16)` except that a signalling bf16 NaN stays
///   signalling (bf16 is widened by a shift; static_cast quietens it).
/// - `store_bf16(p, v)`, `store_bf16_partial(p, v, n)`: round to nearest even, exactly as
///   `llm::bf16(float)`; NaN stays a (quiet) NaN.
/// - building blocks shared algorithms use: `floor(v)`, `pow2i(n)` (2^n for integral n in
///   [-126, 127]), `select_lt(a, b, t, f)` (lane-wise a < b ? t : f).
///
/// Backends: scalar (always), xsimd_backend (LLM_HAS_XSIMD), highway (LLM_HAS_HWY).
/// A kernel loops over whole vectors and finishes with one partial step, e.g. a sum:
///   `auto acc = S::zero(); std::size_t i = 0;`
///   `for (; i + S::width <= n; i += S::width) acc = S::add(acc, S::loadu(x + i));`
///   `return S::reduce_add(S::add(acc, S::load_partial(x + i, n - i)));`
/// S: the candidate policy type.
/// Example: `static_assert(llm::simd::backend<llm::simd::scalar>);`
template <class S>
concept backend =
    std::semiregular<typename S::f32> &&
    requires { typename std::integral_constant<std::size_t, S::width>; } &&  // a constant expression
    (S::width >= 1) && std::same_as<std::remove_cv_t<decltype(S::fused_fma)>, bool> &&
    requires(typename S::f32 a, typename S::f32 b, typename S::f32 c, float x, float* p, const float* cp,
             std::size_t n, llm::bf16* bp, const llm::bf16* cbp, const llm::f16* chp) {
        { S::zero() } -> std::same_as<typename S::f32>;
        { S::set1(x) } -> std::same_as<typename S::f32>;
        { S::load(cp) } -> std::same_as<typename S::f32>;
        { S::loadu(cp) } -> std::same_as<typename S::f32>;
        { S::load_partial(cp, n) } -> std::same_as<typename S::f32>;
        S::store(p, a);
        S::storeu(p, a);
        S::store_partial(p, a, n);
        { S::add(a, b) } -> std::same_as<typename S::f32>;
        { S::sub(a, b) } -> std::same_as<typename S::f32>;
        { S::mul(a, b) } -> std::same_as<typename S::f32>;
        { S::div(a, b) } -> std::same_as<typename S::f32>;
        { S::fma(a, b, c) } -> std::same_as<typename S::f32>;
        { S::min(a, b) } -> std::same_as<typename S::f32>;
        { S::max(a, b) } -> std::same_as<typename S::f32>;
        { S::abs(a) } -> std::same_as<typename S::f32>;
        { S::neg(a) } -> std::same_as<typename S::f32>;
        { S::reduce_add(a) } -> std::same_as<float>;
        { S::reduce_max(a) } -> std::same_as<float>;
        { S::exp(a) } -> std::same_as<typename S::f32>;
        { S::floor(a) } -> std::same_as<typename S::f32>;
        { S::pow2i(a) } -> std::same_as<typename S::f32>;
        { S::select_lt(a, b, c, a) } -> std::same_as<typename S::f32>;
        { S::load_bf16(cbp) } -> std::same_as<typename S::f32>;
        { S::load_bf16_partial(cbp, n) } -> std::same_as<typename S::f32>;
        { S::load_f16(chp) } -> std::same_as<typename S::f32>;
        { S::load_f16_partial(chp, n) } -> std::same_as<typename S::f32>;
        S::store_bf16(bp, a);
        S::store_bf16_partial(bp, a, n);
    };

static_assert(backend<scalar>);
#if LLM_HAS_XSIMD
static_assert(std::is_void_v<detail::xsimd_widest_arch> || backend<xsimd_backend>);
#endif
#if LLM_HAS_HWY
static_assert(backend<highway>);
#endif

namespace detail {

/// How good a backend is for default use, known at compile time: twice its width, plus one
/// when its fma is fused. Measured on this project's AVX-512 machines (g++ 12,
/// -march=native; benchmarks/simd/simd.cpp), highway and xsimd_backend run exp and dot at
/// the same speed within noise: the facade compiles to the same AVX-512 instructions for
/// both. What differs is the width each gets from the same flags: Highway 1.0.3 drops to
/// 4-lane SSSE3 under -march=x86-64-v3 or haswell unless -maes -mpclmul are added, where
/// xsimd uses AVX2 + FMA, 8 lanes; and Highway's EMU128/SCALAR targets are emulation
/// (rank 0 here: never picked over plain C++).
template <class S>
inline constexpr std::size_t backend_rank = 2 * S::width + (S::fused_fma ? 1 : 0);
#if LLM_HAS_HWY
template <>
inline constexpr std::size_t backend_rank<highway> =
    (HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR) ? 0 : 2 * highway::width + (highway::fused_fma ? 1 : 0);
#endif

/// The better of two backends; a tie keeps A.
template <class A, class B>
using better_backend = std::conditional_t<(backend_rank<B> > backend_rank<A>), B, A>;

#if LLM_HAS_XSIMD
// The scalar backend stands in when the flags enable no xsimd arch (xsimd_backend unusable).
using xsimd_candidate = std::conditional_t<std::is_void_v<xsimd_widest_arch>, scalar, xsimd_backend>;
#else
using xsimd_candidate = scalar;
#endif

// Ties go to Highway, then xsimd, then scalar. Highway first because at equal width its
// ops cover everything the facade needs (masked tails, bf16/f16 conversions) without the
// hand-written intrinsics the xsimd 8.1 backend carries (fma, neg, tails, conversions).
#if LLM_HAS_HWY
using best_backend = better_backend<better_backend<highway, xsimd_candidate>, scalar>;
#else
using best_backend = better_backend<xsimd_candidate, scalar>;
#endif

}  // namespace detail

/// The best backend compiled in, at compile time: the widest (then fused fma) of highway,
/// xsimd_backend and scalar, ties in that order; with -march=native on AVX-512 machines:
/// highway (see detail::backend_rank for the measurements behind the rule). Kernels default
/// their backend parameter to it; pass another to override.
/// Example: `llm::simd::default_backend::f32 v = llm::simd::default_backend::set1(1.0f);`
using default_backend = detail::best_backend;

}  // namespace llm::simd
