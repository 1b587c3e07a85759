// SPDX-License-Identifier: Apache-2.0
// llm::simd::transpose: a W x W block of floats held in W vectors, transposed in registers.
#pragma once

#include <llm/config.hpp>
#include <llm/simd/simd.hpp>

#include <cstddef>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace llm::simd {

namespace detail {

#if defined(__AVX__)
/// Backends whose vector is one AVX register of 8 floats, and the conversions: xsimd's batch
/// (`register_type`, AVX / AVX2 arches) and Highway's Vec256 (`raw`, AVX2 target).
inline void takes_m256(__m256) noexcept {}

template <class S>
concept avx_m256_backend = S::width == 8 &&
                           (
                               requires(typename S::f32 v) { takes_m256(v.raw); } ||
                               requires(typename S::f32 v) {
                                   typename S::f32::register_type;
                                   takes_m256(static_cast<typename S::f32::register_type>(v));
                               });

template <class S>
LLM_FORCE_INLINE __m256 to_m256(typename S::f32 v) noexcept {
    if constexpr (requires { v.raw; }) {
        return v.raw;
    } else {
        return static_cast<__m256>(v);
    }
}

template <class S>
LLM_FORCE_INLINE typename S::f32 from_m256(__m256 r) noexcept {
    if constexpr (requires(typename S::f32 v) { v.raw; }) {
        return typename S::f32{r};
    } else {
        return typename S::f32(r);
    }
}

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

}  // namespace detail

/// Transposes the S::width x S::width block held in rows[0 .. width) in place: afterwards lane j
/// of rows[i] is what lane i of rows[j] was (exact: values are moved, never computed). Register
/// shuffles (24 for 8 x 8) on backends whose vector is one AVX register of 8 floats (xsimd's AVX /
/// AVX2 arches, Highway's AVX2 target); elsewhere through a width x width buffer; nothing to do
/// at width 1.
/// Example: `S::f32 r[S::width]; /* r[i] = row i at t */ llm::simd::transpose<S>(r);  // r[k] = column t + k`
template <backend S>
LLM_FORCE_INLINE void transpose(typename S::f32* rows) noexcept {
    constexpr std::size_t W = S::width;
    if constexpr (W == 1) {
        return;
#if defined(__AVX__)
    } else if constexpr (detail::avx_m256_backend<S>) {
        __m256 r[8];
        for (std::size_t i = 0; i < 8; ++i) {
            r[i] = detail::to_m256<S>(rows[i]);
        }
        detail::transpose8_avx(r);
        for (std::size_t i = 0; i < 8; ++i) {
            rows[i] = detail::from_m256<S>(r[i]);
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
