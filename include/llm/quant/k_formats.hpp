// SPDX-License-Identifier: Apache-2.0
// The GGUF "K" formats on 256-value super-blocks: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K (reference quantize,
// dequantize).
#pragma once

#include <llm/io/ggml_type.hpp>
#include <llm/quant/basic_formats.hpp>
#include <llm/quant/blocks.hpp>
#include <llm/quant/detail/rounding.hpp>
#include <llm/quant/detail/search.hpp>
#include <llm/quant/format.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

// A super-block holds groups of 16 or 32 values, each with a small integer scale (and min)
// relative to the super-block's f16 d (and dmin). quantize_block is the reference without an
// importance matrix (ggml's quantize_row_*_ref): a per-group search for scale and min, the
// group scales quantized to 4, 6 or 8 bits, then every value re-coded against the stored
// scales. dequantize_block rounds every product before any add (see detail::mul).

namespace llm::quant {

namespace detail {

/// Group j's 6-bit scale and min from the 12 packed bytes of Q4_K / Q5_K: groups 0-3 in the
/// low 6 bits of bytes j (scale) and j + 4 (min); groups 4-7 with their low 4 bits in the
/// nibbles of byte j + 4 and their top 2 bits in bits 6-7 of bytes j - 4 (scale) and j (min).
LLM_HD inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& sc, std::uint8_t& m) noexcept {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/// The inverse of scale_min_k4 for all 8 groups.
LLM_HD inline void pack_scale_min_k4(const std::uint8_t* ls, const std::uint8_t* lm,
                                     std::uint8_t* q) noexcept {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = static_cast<std::uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            q[j - 4] = static_cast<std::uint8_t>(q[j - 4] | ((ls[j] >> 4) << 6));
            q[j] = static_cast<std::uint8_t>(q[j] | ((lm[j] >> 4) << 6));
        }
    }
}

/// Group g's signed 6-bit scale (sc_g - 32) from the 12 packed bytes of Q3_K.
LLM_HD inline int scale_q3_k(const std::uint8_t* s, int g) noexcept {
    const int low = g < 8 ? (s[g] & 0xF) : (s[g - 8] >> 4);
    return (low | (((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4)) - 32;
}

/// Packs 256 2-bit codes: byte 32 h + l holds codes 128 h + l + 32 k in bits 2k, 2k + 1.
LLM_HD inline void pack_2bit(const std::uint8_t* L, std::uint8_t* qs) noexcept {
    for (int h = 0; h < 2; ++h) {
        for (int l = 0; l < 32; ++l) {
            const std::uint8_t* c = L + 128 * h + l;
            qs[32 * h + l] = static_cast<std::uint8_t>(c[0] | (c[32] << 2) | (c[64] << 4) | (c[96] << 6));
        }
    }
}

/// The 2 low bits of code e packed by pack_2bit.
LLM_HD inline int unpack_2bit(const std::uint8_t* qs, int e) noexcept {
    return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

/// Q4_K / Q5_K: codes L[0, 256) in [0, nmax] for 8 groups of 32 with 6-bit scales and mins
/// packed into scales[12], super-block scales returned in d and dmin. The group search is
/// make_qkx2_quants weighted by rms(group) + |x| with nstep + 1 candidates from rmin.
LLM_HD inline void quantize_groups_k4(const float* x, int nmax, float rmin, int nstep, std::uint8_t* L,
                                      std::uint8_t* scales, f16& d, f16& dmin) noexcept {
    float group_scale[8];
    float group_min[8];
    float weights[32];
    std::uint8_t aux[32];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
        const float* xg = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; ++l) {
            sum_x2 += mul(xg[l], xg[l]);
        }
        const float av_x = std::sqrt(sum_x2 / 32.0f);
        for (int l = 0; l < 32; ++l) {
            weights[l] = av_x + std::fabs(xg[l]);
        }
        group_scale[j] =
            make_qkx2_quants(32, nmax, xg, weights, L + 32 * j, group_min[j], aux, rmin, 0.1f, nstep, false);
        max_scale = std::max(max_scale, group_scale[j]);
        max_min = std::max(max_min, group_min[j]);
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    std::uint8_t ls[8];
    std::uint8_t lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = std::min<std::uint8_t>(
            63, static_cast<std::uint8_t>(nearest_int(mul(inv_scale, group_scale[j]))));
        lm[j] =
            std::min<std::uint8_t>(63, static_cast<std::uint8_t>(nearest_int(mul(inv_min, group_min[j]))));
    }
    pack_scale_min_k4(ls, lm, scales);
    d = f16(max_scale / 63.0f);
    dmin = f16(max_min / 63.0f);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc = 0;
        std::uint8_t m = 0;
        scale_min_k4(j, scales, sc, m);
        const float dg = mul(static_cast<float>(d), static_cast<float>(sc));
        if (dg == 0.0f) {
            continue;  // keep the search's codes, as the reference does
        }
        const float dm = mul(static_cast<float>(dmin), static_cast<float>(m));
        for (int l = 0; l < 32; ++l) {
            const int q = nearest_int((x[32 * j + l] + dm) / dg);
            L[32 * j + l] = static_cast<std::uint8_t>(std::max(0, std::min(nmax, q)));
        }
    }
}

/// y[e] = d * sc_g * code(e) - dmin * m_g for the 256 values of Q4_K / Q5_K; code(e) gives
/// element e's integer code.
template <class Code>
LLM_HD void dequantize_groups_k4(const std::uint8_t* scales, float d, float dmin, Code code,
                                 float* y) noexcept {
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc = 0;
        std::uint8_t m = 0;
        scale_min_k4(j, scales, sc, m);
        const float dg = mul(d, static_cast<float>(sc));
        const float mg = mul(dmin, static_cast<float>(m));
        float* yg = y + 32 * j;
        for (int l = 0; l < 32; ++l) {
            yg[l] = dg * static_cast<float>(code(32 * j + l));
        }
        products_rounded(yg);
        for (int l = 0; l < 32; ++l) {
            yg[l] -= mg;
        }
    }
}

}  // namespace detail

/// Q2_K: 16 groups of 16, 2-bit codes with 4-bit group scales and mins (2.625 bits per value).
struct q2_k {
    using block = block_q2_k;                                        ///< the stored block
    static constexpr std::size_t block_size = qk_k;                  ///< values per block
    static constexpr std::string_view name = "q2_K";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q2_k;  ///< the GGUF type id

    /// Quantizes x[0, 256) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::uint8_t L[qk_k];
        std::uint8_t aux[16];
        float weights[16];
        float group_scale[16];
        float group_min[16];
        float max_scale = 0.0f;
        float max_min = 0.0f;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) {
                weights[l] = std::fabs(x[16 * j + l]);
            }
            group_scale[j] = detail::make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, group_min[j],
                                                      aux, -0.5f, 0.1f, 15, true);
            max_scale = std::max(max_scale, group_scale[j]);
            max_min = std::max(max_min, group_min[j]);
        }
        // 4-bit group scale in the low nibble, 4-bit group min in the high nibble.
        for (int j = 0; j < 16; ++j) {
            b.scales[j] = 0;
        }
        b.d = f16(0.0f);
        b.dmin = f16(0.0f);
        if (max_scale > 0.0f) {
            const float iscale = 15.0f / max_scale;
            for (int j = 0; j < 16; ++j) {
                b.scales[j] =
                    static_cast<std::uint8_t>(detail::nearest_int(detail::mul(iscale, group_scale[j])));
            }
            b.d = f16(max_scale / 15.0f);
        }
        if (max_min > 0.0f) {
            const float iscale = 15.0f / max_min;
            for (int j = 0; j < 16; ++j) {
                const int l = detail::nearest_int(detail::mul(iscale, group_min[j]));
                b.scales[j] = static_cast<std::uint8_t>(b.scales[j] | (l << 4));
            }
            b.dmin = f16(max_min / 15.0f);
        }
        for (int j = 0; j < 16; ++j) {
            const float dg = detail::mul(static_cast<float>(b.d), static_cast<float>(b.scales[j] & 0xF));
            if (dg == 0.0f) {
                continue;
            }
            const float dm = detail::mul(static_cast<float>(b.dmin), static_cast<float>(b.scales[j] >> 4));
            for (int l = 0; l < 16; ++l) {
                const int q = detail::nearest_int((x[16 * j + l] + dm) / dg);
                L[16 * j + l] = static_cast<std::uint8_t>(std::max(0, std::min(3, q)));
            }
        }
        detail::pack_2bit(L, b.qs);
    }
    /// Writes the 256 values of b to y[0, 256).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        const auto d = static_cast<float>(b.d);
        const auto dmin = static_cast<float>(b.dmin);
        for (int g = 0; g < 16; ++g) {
            const float dg = detail::mul(d, static_cast<float>(b.scales[g] & 0xF));
            const float mg = detail::mul(dmin, static_cast<float>(b.scales[g] >> 4));
            float* yg = y + 16 * g;
            for (int l = 0; l < 16; ++l) {
                yg[l] = dg * static_cast<float>(detail::unpack_2bit(b.qs, 16 * g + l));
            }
            detail::products_rounded(yg);
            for (int l = 0; l < 16; ++l) {
                yg[l] -= mg;
            }
        }
    }
};

/// Q3_K: 16 groups of 16, 3-bit symmetric codes with 6-bit signed group scales.
struct q3_k {
    using block = block_q3_k;                                        ///< the stored block
    static constexpr std::size_t block_size = qk_k;                  ///< values per block
    static constexpr std::string_view name = "q3_K";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q3_k;  ///< the GGUF type id

    /// Quantizes x[0, 256) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::int8_t L[qk_k];
        float group_scale[16];
        for (int j = 0; j < 16; ++j) {
            group_scale[j] = detail::make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        }
        float amax = 0.0f;
        const float max_scale = detail::signed_absmax(group_scale, 16, amax);
        for (int i = 0; i < 12; ++i) {
            b.scales[i] = 0;
        }
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; ++j) {
                const auto s8 =
                    static_cast<std::int8_t>(detail::nearest_int(detail::mul(iscale, group_scale[j])));
                const int l = std::max(-32, std::min(31, static_cast<int>(s8))) + 32;
                if (j < 8) {
                    b.scales[j] = static_cast<std::uint8_t>(l & 0xF);
                } else {
                    b.scales[j - 8] = static_cast<std::uint8_t>(b.scales[j - 8] | ((l & 0xF) << 4));
                }
                b.scales[j % 4 + 8] =
                    static_cast<std::uint8_t>(b.scales[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
            }
            b.d = f16(1.0f / iscale);
        } else {
            b.d = f16(0.0f);
        }
        for (int j = 0; j < 16; ++j) {
            const float dg =
                detail::mul(static_cast<float>(b.d), static_cast<float>(detail::scale_q3_k(b.scales, j)));
            if (dg == 0.0f) {
                continue;
            }
            for (int l = 0; l < 16; ++l) {
                const int q = detail::nearest_int(x[16 * j + l] / dg);
                L[16 * j + l] = static_cast<std::int8_t>(std::max(-4, std::min(3, q)) + 4);
            }
        }
        // High bit of element e into bit e / 32 of hmask[e % 32], the low 2 bits into qs.
        std::uint8_t low[qk_k];
        for (int i = 0; i < 32; ++i) {
            b.hmask[i] = 0;
        }
        for (int e = 0; e < static_cast<int>(qk_k); ++e) {
            const int q = L[e];
            if (q > 3) {
                b.hmask[e % 32] = static_cast<std::uint8_t>(b.hmask[e % 32] | (1 << (e / 32)));
            }
            low[e] = static_cast<std::uint8_t>(q > 3 ? q - 4 : q);
        }
        detail::pack_2bit(low, b.qs);
    }
    /// Writes the 256 values of b to y[0, 256).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        const auto d = static_cast<float>(b.d);
        for (int g = 0; g < 16; ++g) {
            const float dg = d * static_cast<float>(detail::scale_q3_k(b.scales, g));
            for (int l = 0; l < 16; ++l) {
                const int e = 16 * g + l;
                const int high = (b.hmask[e % 32] >> (e / 32)) & 1;
                y[e] = dg * static_cast<float>(detail::unpack_2bit(b.qs, e) - (high ? 0 : 4));
            }
        }
    }
};

/// Q4_K: 8 groups of 32, 4-bit codes with 6-bit group scales and mins (4.5 bits per value).
struct q4_k {
    using block = block_q4_k;                                        ///< the stored block
    static constexpr std::size_t block_size = qk_k;                  ///< values per block
    static constexpr std::string_view name = "q4_K";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q4_k;  ///< the GGUF type id

    /// Quantizes x[0, 256) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::uint8_t L[qk_k];
        detail::quantize_groups_k4(x, 15, -1.0f, 20, L, b.scales, b.d, b.dmin);
        for (int c = 0; c < 4; ++c) {
            for (int l = 0; l < 32; ++l) {
                b.qs[32 * c + l] = static_cast<std::uint8_t>(L[64 * c + l] | (L[64 * c + l + 32] << 4));
            }
        }
    }
    /// Writes the 256 values of b to y[0, 256).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_groups_k4(
            b.scales, static_cast<float>(b.d), static_cast<float>(b.dmin),
            [&](int e) { return (b.qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0xF; }, y);
    }
};

/// Q5_K: 8 groups of 32, 5-bit codes with 6-bit group scales and mins (5.5 bits per value).
struct q5_k {
    using block = block_q5_k;                                        ///< the stored block
    static constexpr std::size_t block_size = qk_k;                  ///< values per block
    static constexpr std::string_view name = "q5_K";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q5_k;  ///< the GGUF type id

    /// Quantizes x[0, 256) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::uint8_t L[qk_k];
        detail::quantize_groups_k4(x, 31, -0.5f, 15, L, b.scales, b.d, b.dmin);
        for (int l = 0; l < 32; ++l) {
            b.qh[l] = 0;
        }
        for (int c = 0; c < 4; ++c) {
            for (int l = 0; l < 32; ++l) {
                const int lo = L[64 * c + l];
                const int hi = L[64 * c + l + 32];
                b.qh[l] =
                    static_cast<std::uint8_t>(b.qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
                b.qs[32 * c + l] = static_cast<std::uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
            }
        }
    }
    /// Writes the 256 values of b to y[0, 256).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_groups_k4(
            b.scales, static_cast<float>(b.d), static_cast<float>(b.dmin),
            [&](int e) {
                const int c = e / 64;
                const int half = (e % 64) / 32;
                const int l = e % 32;
                return ((b.qs[32 * c + l] >> (4 * half)) & 0xF) | (((b.qh[l] >> (2 * c + half)) & 1) << 4);
            },
            y);
    }
};

/// Q6_K: 16 groups of 16, 6-bit symmetric codes with 8-bit signed group scales.
struct q6_k {
    using block = block_q6_k;                                        ///< the stored block
    static constexpr std::size_t block_size = qk_k;                  ///< values per block
    static constexpr std::string_view name = "q6_K";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q6_k;  ///< the GGUF type id

    /// Quantizes x[0, 256) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        std::int8_t L[qk_k];
        float group_scale[16];
        for (int g = 0; g < 16; ++g) {
            group_scale[g] = detail::make_qx_quants(16, 32, x + 16 * g, L + 16 * g);
        }
        float max_abs_scale = 0.0f;
        const float max_scale = detail::signed_absmax(group_scale, 16, max_abs_scale);
        if (max_abs_scale < detail::group_max_eps) {
            b = block{};  // every code and scale 0, d = +0
            return;
        }
        const float iscale = -128.0f / max_scale;
        b.d = f16(1.0f / iscale);
        for (int g = 0; g < 16; ++g) {
            b.scales[g] = static_cast<std::int8_t>(
                std::min(127, detail::nearest_int(detail::mul(iscale, group_scale[g]))));
        }
        for (int g = 0; g < 16; ++g) {
            const float dg = detail::mul(static_cast<float>(b.d), static_cast<float>(b.scales[g]));
            if (dg == 0.0f) {
                continue;
            }
            for (int l = 0; l < 16; ++l) {
                const int q = detail::nearest_int(x[16 * g + l] / dg);
                L[16 * g + l] = static_cast<std::int8_t>(std::max(-32, std::min(31, q)) + 32);
            }
        }
        for (int h = 0; h < 2; ++h) {
            for (int l = 0; l < 32; ++l) {
                const std::int8_t* c = L + 128 * h + l;
                b.ql[64 * h + l] = static_cast<std::uint8_t>((c[0] & 0xF) | ((c[64] & 0xF) << 4));
                b.ql[64 * h + l + 32] = static_cast<std::uint8_t>((c[32] & 0xF) | ((c[96] & 0xF) << 4));
                b.qh[32 * h + l] = static_cast<std::uint8_t>((c[0] >> 4) | ((c[32] >> 4) << 2) |
                                                             ((c[64] >> 4) << 4) | ((c[96] >> 4) << 6));
            }
        }
    }
    /// Writes the 256 values of b to y[0, 256).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        const auto d = static_cast<float>(b.d);
        for (int e = 0; e < static_cast<int>(qk_k); ++e) {
            const int h = e / 128;
            const int k = (e % 128) / 32;  // which of the 4 codes sharing a qh byte
            const int l = e % 32;
            const int low = (b.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
            const int q = low | (((b.qh[32 * h + l] >> (2 * k)) & 3) << 4);
            y[e] = detail::mul(d, static_cast<float>(b.scales[e / 16])) * static_cast<float>(q - 32);
        }
    }
};

/// Q8_K: 8-bit symmetric over 256 values with a float scale, d = max / -127 for the signed
/// value max of largest magnitude, plus the sums of each 16 codes.
struct q8_k {
    using block = block_q8_k;                                        ///< the stored block
    static constexpr std::size_t block_size = qk_k;                  ///< values per block
    static constexpr std::string_view name = "q8_K";                 ///< ggml\'s type name
    static constexpr io::ggml_type ggml_type = io::ggml_type::q8_k;  ///< the GGUF type id

    /// Quantizes x[0, 256) into b.
    LLM_HD static void quantize_block(const float* x, block& b) noexcept {
        float amax = 0.0f;
        const float max = detail::signed_absmax(x, static_cast<int>(qk_k), amax);
        if (amax == 0.0f) {
            b = block{};
            return;
        }
        const float iscale = -127.0f / max;
        for (std::size_t j = 0; j < qk_k; ++j) {
            b.qs[j] = static_cast<std::int8_t>(std::min(127, detail::nearest_int(detail::mul(iscale, x[j]))));
        }
        for (int g = 0; g < 16; ++g) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) {
                sum += b.qs[16 * g + l];
            }
            b.bsums[g] = static_cast<std::int16_t>(sum);
        }
        b.d = 1.0f / iscale;
    }
    /// Writes the 256 values of b to y[0, 256).
    LLM_HD static void dequantize_block(const block& b, float* y) noexcept {
        detail::dequantize_q8(b.qs, b.d, static_cast<int>(qk_k), y);
    }
};

static_assert(ggml_format<q2_k> && ggml_format<q3_k> && ggml_format<q4_k> && ggml_format<q5_k> &&
              ggml_format<q6_k> && ggml_format<q8_k>);

}  // namespace llm::quant
