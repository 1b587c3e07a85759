// SPDX-License-Identifier: Apache-2.0
// llm::f16: the IEEE 754 binary16 element type (half precision), exact bit-level conversions.
#pragma once

#include <llm/core/detail/minifloat.hpp>

#include <limits>

namespace llm {

/// IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits; largest finite 65504,
/// smallest normal 2^-14, smallest subnormal 2^-24; Inf and NaN. Holds only its 16 bits.
/// - `f16(x)` from float/double/integer: explicit, round to nearest even (what F16C
///   `vcvtps2ph` and CUDA `__float2half_rn` give); |x| >= 65520 gives +-Inf, or +-65504
///   with `f16(x, llm::saturate)`; NaN gives a quiet NaN of the same sign, payload
///   truncated.
/// - `static_cast<float>(h)`: explicit, exact; subnormals are decoded, never flushed.
/// - ==, < ... compare values as float does (-0 == +0, NaN != NaN); `bits()` for identity.
/// - no arithmetic operators: convert to float, compute, round back explicitly.
/// Example: `llm::f16 h(0.1f); h.bits();  // 0x2e66`
struct f16 : detail::minifloat<f16, detail::minifloat_format<5, 10, detail::special_values::ieee>> {
    using minifloat::minifloat;
};

static_assert(sizeof(f16) == 2 && alignof(f16) == 2);
static_assert(std::is_trivially_copyable_v<f16> && std::is_standard_layout_v<f16>);
// Self-check evaluated by every compiler including this header (nvcc's front end too): a
// normal value, a tie rounded to even, a subnormal and the overflow to Inf.
static_assert(f16(-3.0f).bits() == 0xC200 && f16(1.00048828125f).bits() == 0x3C00 &&
              f16(0x1p-24f).bits() == 0x0001 && static_cast<float>(f16::from_bits(0x0001)) == 0x1p-24f &&
              f16(65520.0f).bits() == 0x7C00);

}  // namespace llm

namespace std {

/// Limits of llm::f16, with float's conventions: min() is the smallest normal value,
/// denorm_min() the smallest subnormal, lowest() == -max().
template <>
class numeric_limits<llm::f16> : public llm::detail::minifloat_limits<llm::f16> {};

}  // namespace std
