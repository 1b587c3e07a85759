// SPDX-License-Identifier: Apache-2.0
// llm::quant::nf4: bitsandbytes' 4-bit NormalFloat, blocks of 64 values with a float absmax scale.
#pragma once

#include <llm/config.hpp>
#include <llm/quant/format.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

/// The 16 NF4 code values as literals, once: for the host table llm::quant::nf4_values and
/// the decoders' local copies (a namespace-scope array is host memory to nvcc).
#define LLM_QUANT_NF4_VALUES \
    -1.0f, \
    -0.6961928009986877f, \
    -0.5250730514526367f, \
    -0.39491748809814453f, \
    -0.28444138169288635f, \
    -0.18477343022823334f, \
    -0.09105003625154495f, \
    0.0f, \
    0.07958029955625534f, \
    0.16093020141124725f, \
    0.24611230194568634f, \
    0.33791524171829224f, \
    0.44070982933044434f, \
    0.5626170039176941f, \
    0.7229568362236023f, \
    1.0f

namespace llm::quant {

/// The 16 NF4 code values of bitsandbytes (`bitsandbytes.functional.get_4bit_type("nf4")`,
/// QLoRA's NormalFloat: quantiles of N(0, 1) scaled to [-1, 1], with an exact 0). Value of
/// code q: nf4_values[q] * absmax.
inline constexpr float nf4_values[16] = {LLM_QUANT_NF4_VALUES};

/// NF4 block: 64 values, absmax = max |x| (float, as bitsandbytes stores it without double
/// quantization), codes packed two per byte with the first value in the high nibble
/// (bitsandbytes' packing: byte i = q[2i] << 4 | q[2i + 1]).
struct block_nf4 {
    float absmax;         ///< largest |x| of the block
    std::uint8_t qs[32];  ///< codes, high nibble first
};
static_assert(sizeof(block_nf4) == 36);

namespace detail {

/// bitsandbytes' decision thresholds (dQuantizeNF4): the midpoints of adjacent code values, as
/// the float constants it compares against (literals, for local copies in device code).
#define LLM_QUANT_NF4_MIDPOINTS                                                                              \
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,                \
        -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,         \
        0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,                 \
        0.5016634166240692f, 0.6427869200706482f, 0.8614784479141235f

/// The code of a normalized value: how many thresholds it exceeds (strictly, as dQuantizeNF4's
/// `x > threshold` tree; a NaN exceeds none and gets code 0, as there).
LLM_HD inline std::uint8_t nf4_code(float x) noexcept {
    const float midpoints[15] = {LLM_QUANT_NF4_MIDPOINTS};
    std::uint8_t q = 0;
    for (float t : midpoints) {
        q = static_cast<std::uint8_t>(q + (x > t ? 1 : 0));
    }
    return q;
}

}  // namespace detail

/// NF4 (bitsandbytes, blocksize 64): each value scaled by 1 / absmax of its block (the
/// reciprocal multiplied, as bitsandbytes does) and coded by the nearest of nf4_values
/// (thresholds at their midpoints, ties down); dequantized as nf4_values[q] * absmax. An
/// all-zero block has absmax 0 and decodes to zeros (code 7, the value 0). A block_format, so
/// quantize<nf4>, dequantize<nf4>, block_accessor<nf4> views and llm::quant::gemv / gemm (the
/// dequantizing path) all take it.
/// Round trip: |x - x'| <= absmax * 0.15190360 (half the widest gap, between -1 and
/// -0.6961928) plus the float roundings of x / absmax and of the product (2^-23 absmax).
/// Example: `auto blocks = llm::quant::quantize<llm::quant::nf4>(w);`
struct nf4 {
    using block = block_nf4;                           ///< the stored block
    static constexpr std::size_t block_size = 64;      ///< values per block
    static constexpr std::string_view name = "nf4";    ///< the format's name

    /// Quantizes x[0, 64) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        float amax = 0.0f;
        for (std::size_t j = 0; j < 64; ++j) {
            amax = std::fmax(amax, std::fabs(x[j]));
        }
        b.absmax = amax;
        const float inv = amax > 0.0f ? 1.0f / amax : 0.0f;
        for (std::size_t j = 0; j < 32; ++j) {
            const std::uint8_t hi = detail::nf4_code(x[2 * j] * inv);
            const std::uint8_t lo = detail::nf4_code(x[2 * j + 1] * inv);
            b.qs[j] = static_cast<std::uint8_t>(hi << 4 | lo);
        }
    }
    /// Writes the 64 values of b to y[0, 64).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        const float values[16] = {LLM_QUANT_NF4_VALUES};
        for (std::size_t j = 0; j < 32; ++j) {
            y[2 * j] = values[b.qs[j] >> 4] * b.absmax;
            y[2 * j + 1] = values[b.qs[j] & 0x0F] * b.absmax;
        }
    }
};

static_assert(block_format<nf4>);

}  // namespace llm::quant
