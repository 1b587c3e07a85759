// SPDX-License-Identifier: Apache-2.0
// llm::fp8_e4m3 and llm::fp8_e5m2: the OCP 8-bit floating-point element types, exact bit-level conversions.
#pragma once

#include <llm/core/detail/minifloat.hpp>

#include <limits>

namespace llm {

/// OCP FP8 E4M3 (PyTorch `float8_e4m3fn`, ml_dtypes `float8_e4m3fn`, CUDA `__nv_fp8_e4m3`):
/// 1 sign, 4 exponent (bias 7), 3 mantissa bits. No Inf: the exponent-15 codes are finite
/// except S.1111.111, the only NaN (one per sign). Largest finite 448, smallest normal 2^-6,
/// smallest subnormal 2^-9. Holds only its byte.
/// - `fp8_e4m3(x)` from float/double/integer: explicit, round to nearest even. Overflow
///   (|x| > 464, the midpoint between 448 and the 480 the NaN code would be; and +-Inf)
///   gives NaN, as PyTorch's `.to(torch.float8_e4m3fn)` and ml_dtypes do.
///   `fp8_e4m3(x, llm::saturate)` gives +-448 instead (OCP "satfinite", which is what
///   CUDA's `__nv_fp8_e4m3(float)` constructor and transformer-engine quantisers do); NaN
///   stays NaN either way. Use the saturating form after scaling for quantisation.
/// - `static_cast<float>(q)`: explicit, exact.
/// - ==, < ... compare values as float does (-0 == +0, NaN != NaN); `bits()` for identity.
/// - no arithmetic operators: convert to float, compute, round back explicitly.
/// Example: `llm::fp8_e4m3 q(0.3f); static_cast<float>(q);  // 0.3125f`
struct fp8_e4m3
    : detail::minifloat<fp8_e4m3, detail::minifloat_format<4, 3, detail::special_values::nan_only>> {
    using minifloat::minifloat;
};

/// OCP FP8 E5M2 (PyTorch/ml_dtypes `float8_e5m2`, CUDA `__nv_fp8_e5m2`): 1 sign, 5 exponent
/// (bias 15), 2 mantissa bits, IEEE-like: Inf is S.11111.00, NaN S.11111.{01,10,11}.
/// Largest finite 57344, smallest normal 2^-14, smallest subnormal 2^-16. Holds only its byte.
/// - `fp8_e5m2(x)` from float/double/integer: explicit, round to nearest even; |x| >= 61440
///   gives +-Inf (IEEE, PyTorch, ml_dtypes), or +-57344 with `fp8_e5m2(x, llm::saturate)`;
///   NaN gives a quiet NaN of the same sign.
/// - `static_cast<float>(q)`: explicit, exact.
/// - ==, < ... compare values as float does (-0 == +0, NaN != NaN); `bits()` for identity.
/// Example: `llm::fp8_e5m2 q(0.3f); static_cast<float>(q);  // 0.3125f`
struct fp8_e5m2 : detail::minifloat<fp8_e5m2, detail::minifloat_format<5, 2, detail::special_values::ieee>> {
    using minifloat::minifloat;
};

static_assert(sizeof(fp8_e4m3) == 1 && sizeof(fp8_e5m2) == 1);
static_assert(std::is_trivially_copyable_v<fp8_e4m3> && std::is_standard_layout_v<fp8_e4m3>);
static_assert(std::is_trivially_copyable_v<fp8_e5m2> && std::is_standard_layout_v<fp8_e5m2>);
// Self-check evaluated by every compiler including this header (nvcc's front end too):
// subnormals both ways, overflow to NaN / Inf, saturation.
static_assert(fp8_e4m3(0x1p-9f).bits() == 0x01 && static_cast<float>(fp8_e4m3::from_bits(0x01)) == 0x1p-9f &&
              fp8_e4m3(465.0f).bits() == 0x7F && fp8_e4m3(465.0f, saturate).bits() == 0x7E);
static_assert(fp8_e5m2(0x1p-16f).bits() == 0x01 &&
              static_cast<float>(fp8_e5m2::from_bits(0x01)) == 0x1p-16f &&
              fp8_e5m2(61440.0f).bits() == 0x7C && fp8_e5m2(61440.0f, saturate).bits() == 0x7B);

}  // namespace llm

namespace std {

/// Limits of llm::fp8_e4m3, with float's conventions: min() is the smallest normal value,
/// denorm_min() the smallest subnormal, lowest() == -max(); has_infinity is false and
/// infinity() returns +0, as numeric_limits does for types without one.
template <>
class numeric_limits<llm::fp8_e4m3> : public llm::detail::minifloat_limits<llm::fp8_e4m3> {};

/// Limits of llm::fp8_e5m2, with float's conventions: min() is the smallest normal value,
/// denorm_min() the smallest subnormal, lowest() == -max().
template <>
class numeric_limits<llm::fp8_e5m2> : public llm::detail::minifloat_limits<llm::fp8_e5m2> {};

}  // namespace std
