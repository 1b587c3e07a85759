// SPDX-License-Identifier: Apache-2.0
// The few-row product (decode's GEMV) over weights laid out in 64-row panels (llm::blas::
// bf16_weight_panels, llm::blas::f16_weight_panels): each panel is one contiguous stream, widened
// exactly to fp32 in registers.
#pragma once

#include <llm/gemm/bf16_dot.hpp>
#include <llm/gemm/f16_panels.hpp>
#include <llm/gemm/matrix.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LLM_QUANT_PANELS_AVX512 1
#else
#define LLM_QUANT_PANELS_AVX512 0
#endif

namespace llm::quant::detail {

/// y[r * y_rs + j] = sum_k x[r * x_rs + k] W(j, k) for activation rows r < m and the rows j of
/// panels [p0, p1), W widened exactly. Every kernel computes each output the same way, so all give
/// the same bits: two fp32 sums, each by fused multiply-adds in pair order, one of the even k
/// (low halves) and one of the odd k (high halves), added at the end. The portable version.
inline void bf16_panel_rows_generic(const blas::bf16_weight_panels& w, std::size_t p0, std::size_t p1, const float* x,
                                    std::size_t x_rs, std::size_t m, float* y, std::size_t y_rs) noexcept {
    constexpr std::size_t R = blas::bf16_weight_panels::rows_per_panel;
    const std::size_t kw = blas::bf16_weight_panels::pairs(w.k);
    for (std::size_t p = p0; p < p1; ++p) {
        const std::uint32_t* panel = w.words + p * R * kw;
        const std::size_t rows = std::min(R, w.n - p * R);
        for (std::size_t r = 0; r < m; ++r) {
            const float* xr = x + r * x_rs;
            float lo[R] = {}, hi[R] = {};
            for (std::size_t q = 0; q < kw; ++q) {
                const float x0 = xr[2 * q];
                const float x1 = 2 * q + 1 < w.k ? xr[2 * q + 1] : 0.0f;
                for (std::size_t j = 0; j < R; ++j) {
                    const std::uint32_t v = panel[q * R + j];
                    lo[j] = std::fma(std::bit_cast<float>(v << 16), x0, lo[j]);
                    hi[j] = std::fma(std::bit_cast<float>(v & 0xFFFF0000u), x1, hi[j]);
                }
            }
            for (std::size_t j = 0; j < rows; ++j) {
                y[r * y_rs + p * R + j] = lo[j] + hi[j];
            }
        }
    }
}

#if LLM_QUANT_PANELS_AVX512
/// MM (1 or 2) activation rows against one panel: 4 zmm of words per pair, shifted / masked into
/// the even and odd k's fp32 values, 2 x 4 x MM independent FMA chains. The hardware prefetcher
/// follows the one stream; a software prefetch 2 KiB ahead keeps a few lines more in flight.
template <std::size_t MM>
inline void bf16_panel_avx512(const std::uint32_t* panel, std::size_t kw, std::size_t k, std::size_t rows, const float* x,
                              std::size_t x_rs, float* y, std::size_t y_rs) noexcept {
    constexpr std::size_t R = blas::bf16_weight_panels::rows_per_panel;
    constexpr std::size_t ahead = 2048 / sizeof(std::uint32_t);
    __m512 lo[MM][4], hi[MM][4];
    for (std::size_t r = 0; r < MM; ++r) {
        for (std::size_t v = 0; v < 4; ++v) {
            lo[r][v] = _mm512_setzero_ps();
            hi[r][v] = _mm512_setzero_ps();
        }
    }
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    const std::size_t full = k / 2;  // pairs with both halves
    const auto step = [&](std::size_t q, const float* x0s, const float* x1s) {
        const std::uint32_t* row = panel + q * R;
        for (std::size_t v = 0; v < 4; ++v) {
            // An integer address: past the panel's end it names memory that is never read.
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(row + ahead + 16 * v)), _MM_HINT_T0);
        }
        __m512 wl[4], wh[4];
        for (std::size_t v = 0; v < 4; ++v) {
            const __m512i words = _mm512_load_si512(row + 16 * v);
            // the zero-masking form: GCC 12 warns on the plain one's undefined source (PR 105593)
            wl[v] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(__mmask16(0xFFFF), words, 16));
            wh[v] = _mm512_castsi512_ps(_mm512_and_si512(words, high));
        }
        for (std::size_t r = 0; r < MM; ++r) {
            const __m512 x0 = _mm512_set1_ps(x0s[r * x_rs]);
            const __m512 x1 = _mm512_set1_ps(x1s == nullptr ? 0.0f : x1s[r * x_rs]);
            for (std::size_t v = 0; v < 4; ++v) {
                lo[r][v] = _mm512_fmadd_ps(wl[v], x0, lo[r][v]);
                hi[r][v] = _mm512_fmadd_ps(wh[v], x1, hi[r][v]);
            }
        }
    };
    for (std::size_t q = 0; q < full; ++q) {
        step(q, x + 2 * q, x + 2 * q + 1);
    }
    if (full < kw) {
        step(full, x + 2 * full, nullptr);  // an odd k: the pad's high half is zero, x past k unread
    }
    for (std::size_t r = 0; r < MM; ++r) {
        for (std::size_t v = 0; v < 4; ++v) {
            const std::size_t j = 16 * v;
            if (j >= rows) {
                break;
            }
            const __mmask16 keep = rows - j >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (rows - j)) - 1);
            _mm512_mask_storeu_ps(y + r * y_rs + j, keep, _mm512_add_ps(lo[r][v], hi[r][v]));
        }
    }
}
#endif

/// bf16_panel_rows_generic's result, by the AVX-512 kernel where the build has AVX-512 (the same
/// bits), each panel read once per two activation rows.
inline void bf16_panel_rows(const blas::bf16_weight_panels& w, std::size_t p0, std::size_t p1, const float* x, std::size_t x_rs,
                            std::size_t m, float* y, std::size_t y_rs) noexcept {
#if LLM_QUANT_PANELS_AVX512
    constexpr std::size_t R = blas::bf16_weight_panels::rows_per_panel;
    const std::size_t kw = blas::bf16_weight_panels::pairs(w.k);
    for (std::size_t p = p0; p < p1; ++p) {
        const std::uint32_t* panel = w.words + p * R * kw;
        const std::size_t rows = std::min(R, w.n - p * R);
        std::size_t r = 0;
        for (; r + 2 <= m; r += 2) {
            bf16_panel_avx512<2>(panel, kw, w.k, rows, x + r * x_rs, x_rs, y + r * y_rs + p * R, y_rs);
        }
        if (r < m) {
            bf16_panel_avx512<1>(panel, kw, w.k, rows, x + r * x_rs, x_rs, y + r * y_rs + p * R, y_rs);
        }
    }
#else
    bf16_panel_rows_generic(w, p0, p1, x, x_rs, m, y, y_rs);
#endif
}

/// y[r * y_rs + j] = sum_k x[r * x_rs + k] W(j, k) for activation rows r < m and the rows j of the
/// f16 panels [p0, p1), W widened exactly, one fp32 sum per output by fused multiply-adds in k
/// order (every kernel: the same bits). The portable version.
inline void f16_panel_rows_generic(const blas::f16_weight_panels& w, std::size_t p0, std::size_t p1, const float* x,
                                   std::size_t x_rs, std::size_t m, float* y, std::size_t y_rs) noexcept {
    constexpr std::size_t R = blas::f16_weight_panels::rows_per_panel;
    for (std::size_t p = p0; p < p1; ++p) {
        const std::uint16_t* panel = w.halves + p * R * w.k;
        const std::size_t rows = std::min(R, w.n - p * R);
        for (std::size_t r = 0; r < m; ++r) {
            float acc[R] = {};
            for (std::size_t j = 0; j < w.k; ++j) {
                const float xv = x[r * x_rs + j];
                for (std::size_t i = 0; i < R; ++i) {
                    acc[i] = std::fma(blas::detail::to_float(f16::from_bits(panel[j * R + i])), xv, acc[i]);
                }
            }
            for (std::size_t i = 0; i < rows; ++i) {
                y[r * y_rs + p * R + i] = acc[i];
            }
        }
    }
}

#if LLM_QUANT_PANELS_AVX512
/// MM (1 or 2) activation rows against one f16 panel: 4 `vcvtph2ps` per k step (64 rows), 4 x MM
/// FMA chains; a software prefetch 2 KiB ahead on the one stream.
template <std::size_t MM>
inline void f16_panel_avx512(const std::uint16_t* panel, std::size_t k, std::size_t rows, const float* x, std::size_t x_rs,
                             float* y, std::size_t y_rs) noexcept {
    constexpr std::size_t R = blas::f16_weight_panels::rows_per_panel;
    constexpr std::size_t ahead = 2048 / sizeof(std::uint16_t);
    __m512 acc[MM][4];
    for (std::size_t r = 0; r < MM; ++r) {
        for (std::size_t v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
    }
    for (std::size_t j = 0; j < k; ++j) {
        const std::uint16_t* row = panel + j * R;
        // An integer address: past the panel's end it names memory that is never read.
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(row + ahead)), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(row + ahead + 32)), _MM_HINT_T0);
        __m512 wv[4];
        for (std::size_t v = 0; v < 4; ++v) {
            wv[v] = _mm512_maskz_cvtph_ps(0xFFFF, _mm256_load_si256(reinterpret_cast<const __m256i*>(row + 16 * v)));
        }
        for (std::size_t r = 0; r < MM; ++r) {
            const __m512 xv = _mm512_set1_ps(x[r * x_rs + j]);
            for (std::size_t v = 0; v < 4; ++v) acc[r][v] = _mm512_fmadd_ps(wv[v], xv, acc[r][v]);
        }
    }
    for (std::size_t r = 0; r < MM; ++r) {
        for (std::size_t v = 0; v < 4; ++v) {
            const std::size_t i = 16 * v;
            if (i >= rows) {
                break;
            }
            const __mmask16 keep = rows - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (rows - i)) - 1);
            _mm512_mask_storeu_ps(y + r * y_rs + i, keep, acc[r][v]);
        }
    }
}
#endif

/// f16_panel_rows_generic's result, by the AVX-512 kernel where the build has AVX-512 (the same
/// bits), each panel read once per two activation rows.
inline void f16_panel_rows(const blas::f16_weight_panels& w, std::size_t p0, std::size_t p1, const float* x, std::size_t x_rs,
                           std::size_t m, float* y, std::size_t y_rs) noexcept {
#if LLM_QUANT_PANELS_AVX512
    constexpr std::size_t R = blas::f16_weight_panels::rows_per_panel;
    for (std::size_t p = p0; p < p1; ++p) {
        const std::uint16_t* panel = w.halves + p * R * w.k;
        const std::size_t rows = std::min(R, w.n - p * R);
        std::size_t r = 0;
        for (; r + 2 <= m; r += 2) {
            f16_panel_avx512<2>(panel, w.k, rows, x + r * x_rs, x_rs, y + r * y_rs + p * R, y_rs);
        }
        if (r < m) {
            f16_panel_avx512<1>(panel, w.k, rows, x + r * x_rs, x_rs, y + r * y_rs + p * R, y_rs);
        }
    }
#else
    f16_panel_rows_generic(w, p0, p1, x, x_rs, m, y, y_rs);
#endif
}

}  // namespace llm::quant::detail
