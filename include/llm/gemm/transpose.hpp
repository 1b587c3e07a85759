// SPDX-License-Identifier: Apache-2.0
// A 16 x 16 transpose of 32-bit elements in AVX-512 registers, for the GEMM's B packing (fp32
// panels and bf16 pair panels of a column-major B).
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

}  // namespace llm::blas::detail

#endif
