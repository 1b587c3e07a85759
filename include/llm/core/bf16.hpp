// SPDX-License-Identifier: Apache-2.0
// llm::bf16: the bfloat16 element type (float's exponent, 7 mantissa bits) with exact conversions.
#pragma once

#include <llm/core/detail/minifloat.hpp>

#include <limits>

namespace llm {

/// bfloat16: 1 sign, 8 exponent (bias 127), 7 mantissa bits; float's range, Inf and NaN,
/// subnormals kept (not flushed). Holds only its 16 bits.
/// - `bf16(x)` from float/double/integer: explicit, round to nearest even; overflow gives
///   +-Inf (as IEEE and PyTorch/ml_dtypes do), or +-max with `bf16(x, llm::saturate)`;
///   NaN gives a quiet NaN of the same sign (top payload bits kept: what AVX512-BF16
///   `vcvtneps2bf16` gives; PyTorch's `c10::BFloat16` gives 0x7FC0 whatever the sign).
/// - `static_cast<float>(b)`: explicit, exact.
/// - ==, < ... compare values as float does (-0 == +0, NaN != NaN); `bits()` for identity.
/// - no arithmetic operators: convert to float, compute, round back explicitly.
/// Example: `llm::bf16 h(3.14159f); float f = static_cast<float>(h);  // 3.140625f`
struct bf16 : detail::minifloat<bf16, detail::minifloat_format<8, 7, detail::special_values::ieee>> {
    using minifloat::minifloat;
};

static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2);
static_assert(std::is_trivially_copyable_v<bf16> && std::is_standard_layout_v<bf16>);
// Self-check evaluated by every compiler including this header (nvcc's front end too): a
// normal value, a tie rounded to even, a subnormal and the overflow to Inf.
static_assert(bf16(-3.0f).bits() == 0xC040 && bf16(1.00390625f).bits() == 0x3F80 &&
              bf16(0x1p-133f).bits() == 0x0001 && static_cast<float>(bf16::from_bits(0x0001)) == 0x1p-133f &&
              bf16(0x1.ffp127f).bits() == 0x7F80);

}  // namespace llm

namespace std {

/// Limits of llm::bf16, with float's conventions: min() is the smallest normal value,
/// denorm_min() the smallest subnormal, lowest() == -max().
template <>
class numeric_limits<llm::bf16> : public llm::detail::minifloat_limits<llm::bf16> {};

}  // namespace std
