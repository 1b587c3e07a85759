// SPDX-License-Identifier: Apache-2.0
// The fp32 FMA ceiling of one core, shared by bench_ceilings and the benchmarks that report a fraction
// of the FMA peak measured in their own run (bench_attention), so every "fraction of peak" divides by
// the same measurement.
//
// Each call runs `chains` independent accumulator chains acc = acc * m + a through intrinsics.
// An FMA has 4-5 cycles of latency and up to 2 issue per cycle on current x86 cores (Zen 2-4,
// Golden Cove), so at least 8-10 chains must be in flight to fill both pipes; AVX-512 uses 16
// (32 zmm registers), AVX2 12 (16 ymm registers, two hold the constants). The chains start from
// different values (j) and every one feeds the returned sum, so the compiler cannot fold equal
// chains into one (an earlier in-binary ceiling that started its chains equal read 1.5x the true
// peak on one CPU). m and a keep the values bounded and normal (no denormal slow path). No
// memory traffic in the loop.
#pragma once

#include <cstddef>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LLM_BENCH_X86 1
#else
#define LLM_BENCH_X86 0
#endif

namespace llm_bench {

#if LLM_BENCH_X86
inline constexpr std::size_t fma_iterations = std::size_t{1} << 20;  // a few ms per call

// Sums a vector's lanes after a store (not _mm512_reduce_add_ps: GCC 12 warns about an
// uninitialised value inside it).
inline float sum_lanes(const float* lanes, int n) {
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) {
        sum += lanes[i];
    }
    return sum;
}

/// The sum of every lane of n zmm chains (so each chain feeds the result); acc[0] is clobbered.
__attribute__((target("avx512f"))) inline float sum_chains_avx512(__m512* acc, int n) {
    for (int j = 1; j < n; ++j) {
        acc[0] = _mm512_add_ps(acc[0], acc[j]);
    }
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[0]);
    return sum_lanes(lanes, 16);
}

inline constexpr int avx512_chains = 16;
__attribute__((target("avx512f"), noinline)) inline float fma_chains_avx512(std::size_t iterations) {
    __m512 acc[avx512_chains];
    for (int j = 0; j < avx512_chains; ++j) {
        acc[j] = _mm512_set1_ps(static_cast<float>(j));
    }
    const __m512 m = _mm512_set1_ps(0.999999f);
    const __m512 a = _mm512_set1_ps(1e-6f);
    for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < avx512_chains; ++j) {
            acc[j] = _mm512_fmadd_ps(acc[j], m, a);
        }
    }
    return sum_chains_avx512(acc, avx512_chains);
}

inline constexpr int avx2_chains = 12;
__attribute__((target("avx2,fma"), noinline)) inline float fma_chains_avx2(std::size_t iterations) {
    __m256 acc[avx2_chains];
    for (int j = 0; j < avx2_chains; ++j) {
        acc[j] = _mm256_set1_ps(static_cast<float>(j));
    }
    const __m256 m = _mm256_set1_ps(0.999999f);
    const __m256 a = _mm256_set1_ps(1e-6f);
    for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < avx2_chains; ++j) {
            acc[j] = _mm256_fmadd_ps(acc[j], m, a);
        }
    }
    for (int j = 1; j < avx2_chains; ++j) {
        acc[0] = _mm256_add_ps(acc[0], acc[j]);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[0]);
    return sum_lanes(lanes, 8);
}

// The bf16 dot-product ceiling: independent chains acc = vdpbf16ps(acc, x, y) (AVX512_BF16),
// each instruction 16 lanes x 2 products x 2 flops = 64 flops. As for the FMA chains, every
// chain starts from its own value and feeds the returned sum (no folding: the intrinsic is not
// constant-folded, and equal chains are not merged); x, y are bf16 pairs of 2^-10 and 2^-10,
// so each step adds 2^-19 and 2^20 steps keep the sums normal and bounded. dpbf16_chains is
// the count; 16 chains (as the FMA ceiling) and 24 measured the same on an Emerald Rapids.
inline constexpr int dpbf16_chains = 16;
__attribute__((target("avx512f,avx512bf16"), noinline)) inline float dpbf16_chains_avx512(std::size_t iterations) {
    __m512 acc[dpbf16_chains];
    for (int j = 0; j < dpbf16_chains; ++j) {
        acc[j] = _mm512_set1_ps(static_cast<float>(j));
    }
    const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3A803A80));  // bf16 2^-10, twice
    const __m512bh y = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3A803A80));
    for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < dpbf16_chains; ++j) {
            acc[j] = _mm512_dpbf16_ps(acc[j], x, y);
        }
    }
    return sum_chains_avx512(acc, dpbf16_chains);
}

/// Flops of one dpbf16_chains_avx512 call (16 lanes x 2 products x 2 flops per instruction).
inline constexpr double dpbf16_flops_per_call = double(fma_iterations) * dpbf16_chains * 16 * 2 * 2;

/// Flops of one fma_chains_avx512 / fma_chains_avx2 call (2 per lane per FMA).
inline constexpr double avx512_flops_per_call = double(fma_iterations) * avx512_chains * 16 * 2;
inline constexpr double avx2_flops_per_call = double(fma_iterations) * avx2_chains * 8 * 2;
#endif  // LLM_BENCH_X86

}  // namespace llm_bench
