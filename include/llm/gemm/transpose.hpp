// SPDX-License-Identifier: Apache-2.0
// Register transposes of 32-bit elements in AVX-512 registers for the GEMM's packing: 16 x 16
// (B panels of a column-major B, fp32 or bf16 pairs) and 6 rows interleaved (6-row A panels).
#pragma once

#include <llm/config.hpp>

#include <cstddef>

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

namespace llm::blas::detail {

/// 16 x 16 transpose of r[0..16) in registers: pairs of rows interleaved, then quads, then
/// 128-bit lanes gathered in two rounds, 64 two-source permutes (vpermt2ps/pd, the unpack
/// and shuffle_f32x4 steps of the textbook transpose: GCC 12's unpack and shuffle intrinsics
/// trip -Wmaybe-uninitialized inside its own headers, PR 105593).
LLM_FORCE_INLINE void transpose_16x16(__m512 (&r)[16]) {
    const auto ps = [](__m512 a, __m512i i, __m512 b) { return _mm512_permutex2var_ps(a, i, b); };
    const auto pd = [](__m512 a, __m512i i, __m512 b) {
        return _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(a), i, _mm512_castps_pd(b)));
    };
    // unpacklo / unpackhi_ps: in each 128-bit lane l, a[4l], b[4l], a[4l+1], b[4l+1] (hi: +2).
    const __m512i lo_ps = _mm512_set_epi32(29, 13, 28, 12, 25, 9, 24, 8, 21, 5, 20, 4, 17, 1, 16, 0);
    const __m512i hi_ps = _mm512_add_epi32(lo_ps, _mm512_set1_epi32(2));
    // unpacklo / unpackhi_pd: in each lane l, a's qword 2l, b's qword 2l (hi: 2l + 1).
    const __m512i lo_pd = _mm512_set_epi64(14, 6, 12, 4, 10, 2, 8, 0);
    const __m512i hi_pd = _mm512_add_epi64(lo_pd, _mm512_set1_epi64(1));
    // shuffle_f32x4 0x88 / 0xDD: lanes 0, 2 of a then of b (0xDD: lanes 1, 3).
    const __m512i even = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
    const __m512i odd = _mm512_add_epi64(even, _mm512_set1_epi64(2));
    __m512 t[16];
    for (std::size_t i = 0; i < 16; i += 2) {
        t[i] = ps(r[i], lo_ps, r[i + 1]);
        t[i + 1] = ps(r[i], hi_ps, r[i + 1]);
    }
    // r[4i + q]: in each 128-bit lane l, column 4l + q of rows 4i .. 4i+3.
    for (std::size_t i = 0; i < 16; i += 4) {
        r[i] = pd(t[i], lo_pd, t[i + 2]);
        r[i + 1] = pd(t[i], hi_pd, t[i + 2]);
        r[i + 2] = pd(t[i + 1], lo_pd, t[i + 3]);
        r[i + 3] = pd(t[i + 1], hi_pd, t[i + 3]);
    }
    for (std::size_t q = 0; q < 4; ++q) {
        const __m512 e0 = pd(r[q], even, r[4 + q]), o0 = pd(r[q], odd, r[4 + q]);
        const __m512 e1 = pd(r[8 + q], even, r[12 + q]), o1 = pd(r[8 + q], odd, r[12 + q]);
        t[q] = pd(e0, even, e1);       // column q
        t[8 + q] = pd(e0, odd, e1);    // column 8 + q
        t[4 + q] = pd(o0, even, o1);   // column 4 + q
        t[12 + q] = pd(o0, odd, o1);   // column 12 + q
    }
    for (std::size_t i = 0; i < 16; ++i) {
        r[i] = t[i];
    }
}

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
