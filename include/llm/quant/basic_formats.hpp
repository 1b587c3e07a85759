// SPDX-License-Identifier: Apache-2.0
// The 32-value GGUF formats with one scale per block: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 (reference quantize,
// dequantize).
#pragma once

#include <llm/io/ggml_type.hpp>
#include <llm/quant/blocks.hpp>
#include <llm/quant/detail/rounding.hpp>
#include <llm/quant/detail/search.hpp>
#include <llm/quant/format.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

// Each format is one policy type satisfying llm::quant::block_format: its block struct, the
// values per block, its name and ggml type id, and quantize_block / dequantize_block on one
// block. quantize_block is the reference (the bytes ggml's quantize_row_*_ref writes for
// finite input); dequantize_block computes each value as ggml's dequantize_row_* does, every
// product rounded before any add (see detail::mul).

namespace llm::quant {

namespace detail {

/// Smallest and largest of x[0, n).
LLM_HD inline void min_max(const float* x, int n, float& min, float& max) noexcept {
    min = FLT_MAX;
    max = -FLT_MAX;
    for (int j = 0; j < n; ++j) {
        min = x[j] < min ? x[j] : min;
        max = x[j] > max ? x[j] : max;
    }
}

/// Symmetric 4- or 5-bit codes (Q4_0, Q5_0): d = max / -half where max is the signed value of
/// largest magnitude, q = min(2 half - 1, (int8)(x / d + half + 0.5)) written to q[0, 32).
LLM_HD inline float symmetric_codes(const float* x, int half, std::uint8_t* q) noexcept {
    float amax = 0.0f;
    const float max = signed_absmax(x, 32, amax);
    const float d = max / static_cast<float>(-half);
    const float id = inverse_or_zero(d);
    const float offset = static_cast<float>(half) + 0.5f;
    for (int j = 0; j < 32; ++j) {
        q[j] = static_cast<std::uint8_t>(
            std::min(2 * half - 1, static_cast<int>(trunc_i8(mul(x[j], id) + offset))));
    }
    return d;
}

/// Asymmetric codes (Q4_1, Q5_1): d = (max - min) / nmax, q = (x - min) / d + 0.5 truncated
/// (to int8 then capped at 15 for Q4_1, to uint8 for Q5_1, as the reference does).
LLM_HD inline float asymmetric_codes(const float* x, int nmax, std::uint8_t* q, float& min) noexcept {
    float max = 0.0f;
    min_max(x, 32, min, max);
    const float d = (max - min) / static_cast<float>(nmax);
    const float id = inverse_or_zero(d);
    for (int j = 0; j < 32; ++j) {
        const float v = mul(x[j] - min, id) + 0.5f;
        q[j] =
            nmax == 15 ? static_cast<std::uint8_t>(std::min(15, static_cast<int>(trunc_i8(v)))) : trunc_u8(v);
    }
    return d;
}

/// Packs 32 codes: low nibbles of j and j + 16 into qs[j]; with qh, the 5th bits into the
/// little-endian word qh (bit j for element j).
LLM_HD inline void pack_nibbles(const std::uint8_t* q, std::uint8_t* qs, std::uint8_t* qh) noexcept {
    std::uint32_t high = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = static_cast<std::uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
        high |= static_cast<std::uint32_t>((q[j] >> 4) & 1) << j;
        high |= static_cast<std::uint32_t>((q[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh != nullptr) {
        for (int b = 0; b < 4; ++b) {
            qh[b] = static_cast<std::uint8_t>(high >> (8 * b));
        }
    }
}

/// The 32 codes of a nibble block minus `zero`, as floats (exact): low nibbles of qs are
/// elements 0-15, high nibbles 16-31, and (if qh) bit j of the little-endian word qh is the
/// 5th bit of element j. Written as two 16-wide loops so compilers vectorise it.
LLM_HD inline void nibble_codes(const std::uint8_t* qs, const std::uint8_t* qh, int zero, float* c) noexcept {
    const std::uint32_t high = qh != nullptr ? static_cast<std::uint32_t>(qh[0]) |
                                                   (static_cast<std::uint32_t>(qh[1]) << 8) |
                                                   (static_cast<std::uint32_t>(qh[2]) << 16) |
                                                   (static_cast<std::uint32_t>(qh[3]) << 24)
                                             : 0u;
    for (int j = 0; j < 16; ++j) {
        const auto h0 = static_cast<int>((high >> j) & 1u) << 4;
        const auto h1 = static_cast<int>((high >> (j + 16)) & 1u) << 4;
        c[j] = static_cast<float>(((qs[j] & 0x0F) | h0) - zero);
        c[j + 16] = static_cast<float>(((qs[j] >> 4) | h1) - zero);
    }
}

/// y[j] = d * (code_j - zero) (+ m when with_min), for the nibble formats.
LLM_HD inline void dequantize_nibbles(const std::uint8_t* qs, const std::uint8_t* qh, float d, int zero,
                                      bool with_min, float m, float* y) noexcept {
    nibble_codes(qs, qh, zero, y);
    for (int j = 0; j < 32; ++j) {
        y[j] *= d;
    }
    if (with_min) {
        products_rounded(y);
        for (int j = 0; j < 32; ++j) {
            y[j] += m;
        }
    }
}

/// Q8_0 / Q8_1 codes: d = amax / 127, q = roundf(x / d) (half away from zero). Returns d.
LLM_HD inline float q8_codes(const float* x, std::int8_t* q) noexcept {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
        amax = std::max(amax, std::fabs(x[j]));
    }
    const float d = amax / 127.0f;
    const float id = inverse_or_zero(d);
    for (int j = 0; j < 32; ++j) {
        q[j] = round_i8(mul(x[j], id));
    }
    return d;
}

/// y[j] = q[j] * d for j < n (the 8-bit formats).
LLM_HD inline void dequantize_q8(const std::int8_t* q, float d, int n, float* y) noexcept {
    for (int j = 0; j < n; ++j) {
        y[j] = static_cast<float>(q[j]) * d;
    }
}

}  // namespace detail

/// Q4_0: 4-bit symmetric, d = (signed value of largest magnitude) / -8, so that value is
/// stored exactly as code 0 and the other codes use [1, 15] on its opposite side.
struct q4_0 {
    using block = block_q4_0;                                        ///< the stored block
    static constexpr std::size_t block_size = 32;                    ///< values per block
    static constexpr std::string_view name = "q4_0";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q4_0;  ///< the GGUF type id

    /// Quantizes x[0, 32) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::uint8_t q[32];
        b.d = f16(detail::symmetric_codes(x, 8, q));
        detail::pack_nibbles(q, b.qs, nullptr);
    }
    /// Writes the 32 values of b to y[0, 32).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_nibbles(b.qs, nullptr, static_cast<float>(b.d), 8, false, 0.0f, y);
    }
};

/// Q4_1: 4-bit with a minimum, d = (max - min) / 15, m = min.
struct q4_1 {
    using block = block_q4_1;                                        ///< the stored block
    static constexpr std::size_t block_size = 32;                    ///< values per block
    static constexpr std::string_view name = "q4_1";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q4_1;  ///< the GGUF type id

    /// Quantizes x[0, 32) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::uint8_t q[32];
        float min = 0.0f;
        b.d = f16(detail::asymmetric_codes(x, 15, q, min));
        b.m = f16(min);
        detail::pack_nibbles(q, b.qs, nullptr);
    }
    /// Writes the 32 values of b to y[0, 32).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_nibbles(b.qs, nullptr, static_cast<float>(b.d), 0, true, static_cast<float>(b.m),
                                   y);
    }
};

/// Q5_0: 5-bit symmetric, d = (signed value of largest magnitude) / -16.
struct q5_0 {
    using block = block_q5_0;                                        ///< the stored block
    static constexpr std::size_t block_size = 32;                    ///< values per block
    static constexpr std::string_view name = "q5_0";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q5_0;  ///< the GGUF type id

    /// Quantizes x[0, 32) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::uint8_t q[32];
        b.d = f16(detail::symmetric_codes(x, 16, q));
        detail::pack_nibbles(q, b.qs, b.qh);
    }
    /// Writes the 32 values of b to y[0, 32).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_nibbles(b.qs, b.qh, static_cast<float>(b.d), 16, false, 0.0f, y);
    }
};

/// Q5_1: 5-bit with a minimum, d = (max - min) / 31, m = min.
struct q5_1 {
    using block = block_q5_1;                                        ///< the stored block
    static constexpr std::size_t block_size = 32;                    ///< values per block
    static constexpr std::string_view name = "q5_1";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q5_1;  ///< the GGUF type id

    /// Quantizes x[0, 32) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::uint8_t q[32];
        float min = 0.0f;
        b.d = f16(detail::asymmetric_codes(x, 31, q, min));
        b.m = f16(min);
        detail::pack_nibbles(q, b.qs, b.qh);
    }
    /// Writes the 32 values of b to y[0, 32).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_nibbles(b.qs, b.qh, static_cast<float>(b.d), 0, true, static_cast<float>(b.m), y);
    }
};

/// Q8_0: 8-bit symmetric, d = max|x| / 127, q = round half away from zero of x / d.
struct q8_0 {
    using block = block_q8_0;                                        ///< the stored block
    static constexpr std::size_t block_size = 32;                    ///< values per block
    static constexpr std::string_view name = "q8_0";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q8_0;  ///< the GGUF type id

    /// Quantizes x[0, 32) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        b.d = f16(detail::q8_codes(x, b.qs));
    }
    /// Writes the 32 values of b to y[0, 32).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_q8(b.qs, static_cast<float>(b.d), 32, y);
    }
};

/// Q8_1: Q8_0's codes plus s = d * sum(q) (rounded from the float d, before d becomes f16).
struct q8_1 {
    using block = block_q8_1;                                        ///< the stored block
    static constexpr std::size_t block_size = 32;                    ///< values per block
    static constexpr std::string_view name = "q8_1";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q8_1;  ///< the GGUF type id

    /// Quantizes x[0, 32) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        const float d = detail::q8_codes(x, b.qs);
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            sum += b.qs[j];
        }
        b.d = f16(d);
        b.s = f16(detail::mul(static_cast<float>(sum), d));
    }
    /// Writes the 32 values of b to y[0, 32) (d * q; s is redundant).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_q8(b.qs, static_cast<float>(b.d), 32, y);
    }
};

static_assert(ggml_format<q4_0> && ggml_format<q4_1> && ggml_format<q5_0> && ggml_format<q5_1> &&
              ggml_format<q8_0> && ggml_format<q8_1>);

}  // namespace llm::quant
