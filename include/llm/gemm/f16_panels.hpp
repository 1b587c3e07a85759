// SPDX-License-Identifier: Apache-2.0
// llm::blas::f16_weight_panels: f16 weights W [n, k] laid out once as 64-row panels, k-major (each
// k step one contiguous row of 64 halves), which the fp32 GEMM widens with contiguous reads and a
// decode GEMV reads as one stream per panel.
#pragma once

#include <llm/config.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/f16.hpp>
#include <llm/gemm/transpose.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace llm::blas {

/// f16 weights W [n, k] (row-major, y = x W^T) laid out once as panels of 64 rows: element
/// (r, j) at (r / 64) * 64 * k + j * 64 + r % 64 (f16 bits), rows past n zero. Within a panel
/// each k step is 128 contiguous bytes, so the fp32 GEMM widens a KC x 64 slice with contiguous
/// reads (row-major W: a gather from 64 rows) and a GEMV reads one stream per panel. A view:
/// `halves` is not owned and must be 64-byte aligned. llm::blas::own::run_packed multiplies by
/// it, llm::quant::any_matrix holds it (weight_layout::f16_panels).
/// Example: `std::vector<std::uint16_t> buf(llm::blas::f16_weight_panels::element_count(n, k)); llm::blas::f16_weight_panels::pack(w, n, k, buf.data());`
struct f16_weight_panels {
    static constexpr std::size_t rows_per_panel = 64;  ///< rows of W per panel
    const std::uint16_t* halves = nullptr;             ///< the panels' f16 bits, 64-byte aligned
    std::size_t n = 0;                                 ///< rows of W (outputs)
    std::size_t k = 0;                                 ///< columns of W (inputs)

    /// Panels for n rows: ceil(n / 64).
    [[nodiscard]] static constexpr std::size_t panels(std::size_t n) noexcept { return (n + rows_per_panel - 1) / rows_per_panel; }
    /// Halves of the packed n x k matrix (llm::error if the count overflows).
    [[nodiscard]] static std::size_t element_count(std::size_t n, std::size_t k) {
        return checked_mul(checked_mul(panels(n), rows_per_panel, "f16_weight_panels", "panels * 64"), k, "f16_weight_panels",
                           "the packed halves");
    }
    /// The f16 bits of W(r, j) (unchecked).
    [[nodiscard]] std::uint16_t element(std::size_t r, std::size_t j) const noexcept {
        return halves[(r / rows_per_panel) * rows_per_panel * k + j * rows_per_panel + r % rows_per_panel];
    }
    /// Packs the row-major f16 bits W [n, k] (row stride k) into out[0, element_count(n, k)):
    /// panels [panel_begin, panel_end) only (clamped to panels(n)), so threads may pack disjoint
    /// ranges.
    static void pack(const std::uint16_t* w, std::size_t n, std::size_t k, std::uint16_t* out, std::size_t panel_begin = 0,
                     std::size_t panel_end = SIZE_MAX) noexcept {
        constexpr std::size_t R = rows_per_panel;
        for (std::size_t p = panel_begin; p < std::min(panel_end, panels(n)); ++p) {
            std::uint16_t* dst = out + p * R * k;
            const std::size_t rows = std::min(R, n - p * R);
            std::size_t j0 = 0;
#if defined(__x86_64__) && defined(__AVX512F__)
            if (rows == R) {
                // 16 rows x 16 halves at a time: widened to 32-bit lanes, the 16 x 16 register
                // transpose, narrowed back (a 64-row gather element by element ran at ~2 GB/s)
                for (; j0 + 16 <= k; j0 += 16) {
                    for (std::size_t g = 0; g < R; g += 16) {
                        __m512 v[16];
                        for (std::size_t i = 0; i < 16; ++i) {
                            const auto* src = reinterpret_cast<const __m256i*>(w + (p * R + g + i) * k + j0);
                            v[i] = _mm512_castsi512_ps(_mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(src)));
                        }
                        detail::transpose_16x16(v);
                        for (std::size_t j = 0; j < 16; ++j) {
                            auto* d = reinterpret_cast<__m256i*>(dst + (j0 + j) * R + g);
                            _mm256_storeu_si256(d, _mm512_maskz_cvtepi32_epi16(0xFFFF, _mm512_castps_si512(v[j])));
                        }
                    }
                }
            }
#endif
            for (std::size_t j = j0; j < k; ++j) {
                for (std::size_t i = 0; i < R; ++i) {
                    dst[j * R + i] = i < rows ? w[(p * R + i) * k + j] : std::uint16_t{0};
                }
            }
        }
    }
};

}  // namespace llm::blas
