// SPDX-License-Identifier: Apache-2.0
// The rounding steps of the GGUF reference quantizers, pinned down so results are the same bytes everywhere.
#pragma once

#include <llm/config.hpp>
#include <llm/core/detail/bit_cast.hpp>

#include <cmath>
#include <cstdint>

namespace llm::quant::detail {

/// a * b rounded to float, never fused with a neighbouring add into an FMA.
/// The reference quantizers are specified with every product rounded on its own (ISO C
/// without contraction: what numpy computes and what ggml's C reference computes when built
/// with -ffp-contract=off). GCC contracts a * b + c even across statements whenever the
/// target has FMA (-march=native), and a fused sum can pick a different scale in the search
/// loops, so the product is passed through an empty asm the optimiser cannot see into.
LLM_HD inline float mul(float a, float b) noexcept {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);  // documented never to be merged into an FMA
#else
    float p = a * b;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    asm("" : "+x"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
    asm("" : "+w"(p));
#elif defined(__GNUC__)
    asm("" : "+m"(p));
#endif  // MSVC does not contract unless /fp:contract is given
    return p;
#endif
}

/// Makes the stores to p visible to later loads: products written to memory before this call
/// cannot be fused with adds after it (the vectorisable form of mul() for whole blocks).
LLM_HD inline void products_rounded(float* p) noexcept {
#if defined(__GNUC__) && !defined(__CUDA_ARCH__)
    asm volatile("" : : "r"(p) : "memory");
#else
    (void)p;
#endif
}

/// ggml's nearest_int: adds 1.5 * 2^23 so that the float add rounds to nearest, ties to
/// even, and the integer lands in the low mantissa bits. Exact for |v| <= 2^22 - 1; beyond
/// that (and for NaN) a deterministic wrong value, as in the reference. No UB for any v.
LLM_HD inline int nearest_int(float v) noexcept {
    const float shifted = v + 12582912.0f;
    return static_cast<int>(llm::detail::bit_cast<std::uint32_t>(shifted) & 0x007fffffu) - 0x00400000;
}

/// float -> int32 truncation toward zero, defined for every input: NaN and values outside
/// the int32 range give INT32_MIN, what x86's cvttss2si gives (C leaves these cases
/// undefined; the reference hits them only for non-finite inputs or scales whose inverse
/// overflows, below 2^-126 * 127).
LLM_HD inline std::int32_t trunc_i32(float v) noexcept {
    if (!(v > -2147483904.0f && v < 2147483648.0f)) {
        return INT32_MIN;
    }
    return static_cast<std::int32_t>(v);
}

/// C's (int8_t)v for a float v as compiled for x86-64 (truncate to int32, keep the low byte).
LLM_HD inline std::int8_t trunc_i8(float v) noexcept {
    return static_cast<std::int8_t>(trunc_i32(v));
}

/// C's (uint8_t)v for a float v as compiled for x86-64 (truncate to int32, keep the low byte).
LLM_HD inline std::uint8_t trunc_u8(float v) noexcept {
    return static_cast<std::uint8_t>(trunc_i32(v));
}

/// C's roundf (half away from zero) then (int8_t), as the Q8_0 / Q8_1 reference stores codes.
LLM_HD inline std::int8_t round_i8(float v) noexcept {
    return trunc_i8(std::round(v));
}

/// 1 / d, or 0 when d is 0: the inverse scale every reference quantizer multiplies by.
LLM_HD inline float inverse_or_zero(float d) noexcept {
    return d != 0.0f ? 1.0f / d : 0.0f;
}

/// W8A8's int8 code of v: C's round (half away from zero), clamped to [-127, 127]; NaN gives 0.
/// The vector quantizer (int_kernels.inc: quantize_token_i8_row) gives the same codes.
inline std::int8_t round_away_i8(float v) noexcept {
    const float r = std::round(v);
    if (!(r == r)) {
        return 0;
    }
    return static_cast<std::int8_t>(r < -127.0f ? -127.0f : r > 127.0f ? 127.0f : r);
}

}  // namespace llm::quant::detail
