// SPDX-License-Identifier: Apache-2.0
// llm::simd::transpose: a W x W block of floats held in W vectors, transposed in registers.
#pragma once

#include <llm/config.hpp>
#include <llm/simd/detail/one_register.hpp>
#include <llm/simd/simd.hpp>

#include <cstddef>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace llm::simd {

namespace detail {

#if defined(__AVX__)
/// 8 x 8 transpose of r[0..8): unpack pairs, shuffle quads, swap 128-bit halves (24 shuffles).
LLM_FORCE_INLINE void transpose8_avx(__m256* r) noexcept {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
#endif

#if defined(__AVX512F__)
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
#endif

}  // namespace detail

/// Transposes the S::width x S::width block held in rows[0 .. width) in place: afterwards lane j
/// of rows[i] is what lane i of rows[j] was (exact: values are moved, never computed). Register
/// shuffles on backends whose vector is one AVX register of 8 floats (24 for 8 x 8: xsimd's AVX /
/// AVX2 arches, Highway's AVX2 target) or one AVX-512 register of 16 (64 for 16 x 16: xsimd's
/// AVX-512 arches, Highway's AVX3 targets); elsewhere through a width x width buffer; nothing to
/// do at width 1.
/// Example: `S::f32 r[S::width]; /* r[i] = row i at t */ llm::simd::transpose<S>(r);  // r[k] = column t + k`
template <backend S>
LLM_FORCE_INLINE void transpose(typename S::f32* rows) noexcept {
    constexpr std::size_t W = S::width;
    if constexpr (W == 1) {
        return;
#if defined(__AVX__)
    } else if constexpr (detail::one_register_backend<S>) {
        decltype(detail::to_register<S>(rows[0])) r[W];
        for (std::size_t i = 0; i < W; ++i) {
            r[i] = detail::to_register<S>(rows[i]);
        }
        if constexpr (W == 8) {
            detail::transpose8_avx(r);
        } else {
#if defined(__AVX512F__)
            detail::transpose_16x16(r);
#endif
        }
        for (std::size_t i = 0; i < W; ++i) {
            rows[i] = detail::from_register<S>(r[i]);
        }
#endif
    } else {
        alignas(64) float a[W * W], b[W * W];
        for (std::size_t i = 0; i < W; ++i) {
            S::storeu(a + i * W, rows[i]);
        }
        for (std::size_t i = 0; i < W; ++i) {
            for (std::size_t j = 0; j < W; ++j) {
                b[i * W + j] = a[j * W + i];
            }
        }
        for (std::size_t i = 0; i < W; ++i) {
            rows[i] = S::loadu(b + i * W);
        }
    }
}

}  // namespace llm::simd
