// SPDX-License-Identifier: Apache-2.0
// Register transposes of 32-bit elements in AVX-512 registers for the GEMM's packing: 16 x 16
// (B panels of a column-major B, fp32 or bf16 pairs; the simd facade's) and 6 rows interleaved
// (6-row A panels).
#pragma once

#include <llm/config.hpp>
#include <llm/simd/transpose.hpp>

#include <cstddef>

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

namespace llm::blas::detail {

/// The 16 x 16 register transpose of 32-bit elements (<llm/simd/transpose.hpp>).
using simd::detail::transpose_16x16;

/// The qword indices of interleave_rows6's second stage: output vector w (of 3 per 8 steps)
/// holds, at qword q, the row pair s = (8w + q) % 3 of step (8w + q) / 3. `second`: the
/// indices into the pair of rows 4, 5 (source 2); otherwise into rows 0, 1 (s 0: index p) and
/// rows 2, 3 (s 1: index 8 + p), 0 where the pair comes from rows 4, 5.
constexpr long long interleave6_index(std::size_t w, std::size_t q, bool second) {
    const std::size_t g = 8 * w + q, p = g / 3, s = g % 3;
    return static_cast<long long>(second ? p : s == 0 ? p : s == 1 ? 8 + p : 0);
}
/// The mask of the qwords of output vector w that come from rows 4, 5.
constexpr __mmask8 interleave6_mask(std::size_t w) {
    unsigned m = 0;
    for (std::size_t q = 0; q < 8; ++q) {
        m |= (8 * w + q) % 3 == 2 ? 1u << q : 0u;
    }
    return static_cast<__mmask8>(m);
}

/// Stores 6 rows of 16 32-bit elements interleaved, element p of rows[i] at out[6 p + i] (96
/// elements: 16 steps of a 6-row GEMM A panel; fp32 values or bf16 k-pair words): each pair
/// of rows interleaved into (row 2s, row 2s + 1) pairs, then the three pair streams merged, 3
/// pairs per step, into 6 stores (18 two-source permutes).
LLM_FORCE_INLINE void interleave_rows6(const __m512 (&rows)[6], float* LLM_RESTRICT out) {
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    __m512d pairs[2][3];  // [steps 0-7 or 8-15][rows 0-1, 2-3, 4-5]
    for (std::size_t s = 0; s < 3; ++s) {
        pairs[0][s] = _mm512_castps_pd(_mm512_permutex2var_ps(rows[2 * s], lo, rows[2 * s + 1]));
        pairs[1][s] = _mm512_castps_pd(_mm512_permutex2var_ps(rows[2 * s], hi, rows[2 * s + 1]));
    }
    const auto index = [](std::size_t w, bool second) {
        return _mm512_set_epi64(interleave6_index(w, 7, second), interleave6_index(w, 6, second),
                                interleave6_index(w, 5, second), interleave6_index(w, 4, second),
                                interleave6_index(w, 3, second), interleave6_index(w, 2, second),
                                interleave6_index(w, 1, second), interleave6_index(w, 0, second));
    };
    for (std::size_t w = 0; w < 3; ++w) {
        const __m512i first = index(w, false), second = index(w, true);
        for (std::size_t h = 0; h < 2; ++h) {
            const __m512d x = _mm512_permutex2var_pd(pairs[h][0], first, pairs[h][1]);
            const __m512d v = _mm512_mask_permutexvar_pd(x, interleave6_mask(w), second, pairs[h][2]);
            _mm512_storeu_pd(reinterpret_cast<double*>(out + 8 * h * 6 + 16 * w), v);
        }
    }
}

}  // namespace llm::blas::detail

#endif
