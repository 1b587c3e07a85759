// SPDX-License-Identifier: Apache-2.0
// The own GEMM backend: packed panels, a register-blocked SIMD micro-kernel, cache blocking, threads; GEMV without packing.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/workspace.hpp>
#include <llm/gemm/amx.hpp>
#include <llm/gemm/bf16_dot.hpp>
#include <llm/gemm/f16_panels.hpp>
#include <llm/gemm/blocking.hpp>
#include <llm/gemm/matrix.hpp>
#include <llm/gemm/transpose.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/simd/simd.hpp>
#include <llm/simd/unroll.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#if defined(__x86_64__) && ((defined(__AVX2__) && defined(__FMA__)) || defined(__AVX512F__))
#include <immintrin.h>
#endif
#include <utility>

namespace llm::blas {
namespace detail {

using simd::unroll;  // the micro-kernel's accumulator array, indexed by constants, stays in registers

/// Vector load of W consecutive elements (fp32, bf16 or f16) at p, and of n < W elements.
template <simd::backend S, class T>
LLM_FORCE_INLINE typename S::f32 load_any(const T* p) {
    if constexpr (std::is_same_v<std::remove_const_t<T>, float>) {
        return S::loadu(p);
    } else if constexpr (std::is_same_v<std::remove_const_t<T>, llm::f16>) {
        return S::load_f16(p);
    } else {
        return S::load_bf16(p);
    }
}
template <simd::backend S, class T>
LLM_FORCE_INLINE typename S::f32 load_any_partial(const T* p, std::size_t n) {
    if constexpr (std::is_same_v<std::remove_const_t<T>, float>) {
        return S::load_partial(p, n);
    } else if constexpr (std::is_same_v<std::remove_const_t<T>, llm::f16>) {
        return S::load_f16_partial(p, n);
    } else {
        return S::load_bf16_partial(p, n);
    }
}

#if defined(__x86_64__) && defined(__AVX512F__)
/// pack_a's 6-row fp32 panel of a row-major A (row stride lda) with AVX-512, 16 k steps at
/// a time: 6 row loads and one interleave_rows6 (element by element, with stride-6 stores,
/// pack_a took 8% of a 256^3 GEMM on an Emerald Rapids core). Returns the k steps packed (kc
/// rounded down to 16).
inline std::size_t pack_a6_avx512(const float* src, std::size_t lda, std::size_t kc, float* LLM_RESTRICT out) {
    const std::size_t full = kc / 16 * 16;
    for (std::size_t p = 0; p < full; p += 16) {
        __m512 rows[6];
        for (std::size_t i = 0; i < 6; ++i) {
            rows[i] = _mm512_loadu_ps(src + i * lda + p);
        }
        interleave_rows6(rows, out + p * 6);
    }
    return full;
}
#endif

/// Packs the mc x kc block `a` into MR-row panels: panel r holds a(r*MR + i, p) at
/// [r * MR * kc + p * MR + i], rows past mc zero, so the micro-kernel reads MR contiguous
/// floats per k step and never branches on edges.
template <std::size_t MR, class T>
void pack_a(const strided_view<T, 2>& a, float* LLM_RESTRICT out) {
    const std::size_t kc = a.extent(1);
    for (std::size_t r0 = 0; r0 < a.extent(0); r0 += MR) {
        const std::size_t rows = std::min(MR, a.extent(0) - r0);
        if (a.stride(1) == 1) {
            // Row-major A: read each row contiguously, write with stride MR.
            std::size_t p0 = 0;
#if defined(__x86_64__) && defined(__AVX512F__)
            if constexpr (MR == 6 && std::is_same_v<std::remove_const_t<T>, float>) {
                if (rows == MR) {
                    p0 = pack_a6_avx512(a.ptr(r0, 0), a.stride(0), kc, out);
                }
            }
#endif
            for (std::size_t i = 0; i < rows; ++i) {
                const T* src = a.ptr(r0 + i, 0);
                for (std::size_t p = p0; p < kc; ++p) {
                    out[p * MR + i] = to_float(src[p]);
                }
            }
        } else {
            for (std::size_t p = 0; p < kc; ++p) {
                const T* src = a.ptr(r0, p);
                for (std::size_t i = 0; i < rows; ++i) {
                    out[p * MR + i] = to_float(src[i * a.stride(0)]);
                }
            }
        }
        for (std::size_t i = rows; i < MR; ++i) {
            for (std::size_t p = 0; p < kc; ++p) {
                out[p * MR + i] = 0.0f;
            }
        }
        out += MR * kc;
    }
}

#if defined(__x86_64__) && defined(__AVX512F__)
/// 16 consecutive elements at p as fp32: fp32 as they are, bf16 shifted into the high
/// halves, f16 through vcvtph2ps (both exact). The zeroing-masked forms with every lane kept:
/// GCC 12's plain ones trip -Wmaybe-uninitialized inside its own headers (PR 105593).
template <class T>
LLM_FORCE_INLINE __m512 load16_avx512(const T* p) {
    using U = std::remove_const_t<T>;
    if constexpr (std::is_same_v<U, float>) {
        return _mm512_loadu_ps(p);
    } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        if constexpr (std::is_same_v<U, llm::f16>) {
            return _mm512_maskz_cvtph_ps(0xFFFF, h);
        } else {
            return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
        }
    }
}

/// pack_b's NR-column panel of a column-major B (column j at src + j * ldb, kc contiguous
/// elements, fp32 / bf16 / f16; columns from `cols` on packed as zeros): 16 x 16 blocks
/// widened and transposed in registers, 16 k steps x NR columns (the column streams read a
/// 64-byte line at a time, the line 128 bytes ahead asked for), the k steps past a multiple of
/// 16 element by element. Element by element the transpose took 15% of a 512 x 4096 x 4096
/// fp32 GEMM (y = X W^T) on an Emerald Rapids core, and the bf16 one 24% of a bf16 model's
/// 384-token prefill.
template <std::size_t NR, class T>
void pack_b_transposed_avx512(const T* src, std::size_t ldb, std::size_t kc, std::size_t cols, float* LLM_RESTRICT dst) {
    const std::size_t full = kc / 16 * 16;
    for (std::size_t p0 = 0; p0 < full; p0 += 16) {
        for (std::size_t j0 = 0; j0 < NR; j0 += 16) {
            __m512 r[16];
            for (std::size_t j = 0; j < 16; ++j) {
                if (j0 + j < cols) {
                    const T* col = src + (j0 + j) * ldb + p0;
                    __builtin_prefetch(reinterpret_cast<const char*>(col) + 128);
                    r[j] = load16_avx512(col);
                } else {
                    r[j] = _mm512_setzero_ps();
                }
            }
            transpose_16x16(r);
            for (std::size_t p = 0; p < 16; ++p) {
                _mm512_store_ps(dst + (p0 + p) * NR + j0, r[p]);
            }
        }
    }
    for (std::size_t p = full; p < kc; ++p) {
        for (std::size_t j = 0; j < NR; ++j) {
            dst[p * NR + j] = j < cols ? to_float(src[j * ldb + p]) : 0.0f;
        }
    }
}
#endif

/// Packs panels [panel_begin, panel_end) of the kc x nc block `b` into NR-column panels:
/// panel r holds b(p, r*NR + j) at [r * NR * kc + p * NR + j], columns past nc zero.
template <std::size_t NR, class T>
void pack_b(const strided_view<T, 2>& b, std::size_t panel_begin, std::size_t panel_end, float* LLM_RESTRICT out) {
    const std::size_t kc = b.extent(0);
    // Full panels of a row-major B: walk B row by row (one long sequential read per k step,
    // which runs at memcpy speed; panel by panel it would be kc short strided reads and
    // measured 2x slower, 10% of a 512 x 4096 x 4096 GEMM).
    const std::size_t full_end = b.stride(1) == 1 ? std::min(panel_end, b.extent(1) / NR) : panel_begin;
    if (full_end > panel_begin) {
        for (std::size_t p = 0; p < kc; ++p) {
            const T* src = b.ptr(p, 0);
            for (std::size_t r = panel_begin; r < full_end; ++r) {
                float* dst = out + r * NR * kc + p * NR;
#if defined(__x86_64__) && defined(__AVX512F__)
                if constexpr (NR % 16 == 0) {
                    // bf16 / f16 widened 16 at a time (element by element, f16 would run
                    // its scalar conversion per value)
                    for (std::size_t j = 0; j < NR; j += 16) {
                        _mm512_store_ps(dst + j, load16_avx512(src + r * NR + j));
                    }
                    continue;
                }
#endif
                for (std::size_t j = 0; j < NR; ++j) {
                    dst[j] = to_float(src[r * NR + j]);
                }
            }
        }
    }
    for (std::size_t r = std::max(panel_begin, full_end); r < panel_end; ++r) {
        const std::size_t c0 = r * NR;
        const std::size_t cols = std::min(NR, b.extent(1) - c0);
        float* dst = out + r * NR * kc;
#if defined(__x86_64__) && defined(__AVX512F__)
        if constexpr (NR % 16 == 0) {
            if (b.stride(0) == 1) {
                pack_b_transposed_avx512<NR>(b.ptr(0, c0), b.stride(1), kc, cols, dst);
                continue;
            }
        }
#endif
        // A transpose when B is column-major (B = W^T, a Linear layer's weight): blocks of
        // 16 k steps, so each column is read one 64-byte line at a time (NR streams) while
        // the 16 destination rows being written (16 x NR floats) stay in L1. Column by
        // column it wrote one float per cache line and measured 2x slower.
        constexpr std::size_t kb = 16;
        for (std::size_t p0 = 0; p0 < kc; p0 += kb) {
            const std::size_t pn = std::min(kb, kc - p0);
            for (std::size_t j = 0; j < cols; ++j) {
                const T* src = b.ptr(p0, c0 + j);
                // NR column streams are more than the hardware prefetcher follows: ask for
                // this column's next line now, so it arrives while the other columns are copied.
                // (CPU time of a 64 MiB transposed pack: 19 ms -> 15 ms.)
#if defined(__GNUC__) || defined(__clang__)
                __builtin_prefetch(src + 2 * kb * b.stride(0));
#endif
                for (std::size_t p = 0; p < pn; ++p) {
                    dst[(p0 + p) * NR + j] = to_float(src[p * b.stride(0)]);
                }
            }
        }
        for (std::size_t p = 0; p < kc; ++p) {
            for (std::size_t j = cols; j < NR; ++j) {
                dst[p * NR + j] = 0.0f;
            }
        }
    }
}

// The assembly micro-kernels below; define LLM_GEMM_NO_ASM to run the generic loops instead
// (a comparison point for benchmarks, or a compiler without GNU inline assembly).
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(LLM_GEMM_NO_ASM)
#define LLM_GEMM_AVX2_ASM 1
// One k step of the 6 x 16 AVX2 tile: B's two vectors into ymm12/13, each of A's six values
// broadcast into ymm14/15 alternately, 12 FMAs into the accumulators %[c00] .. %[c51].
#define LLM_GEMM_AVX2_STEP(u)                                  \
    "vmovaps " #u "*64(%[b]), %%ymm12\n\t"                   \
    "vmovaps " #u "*64+32(%[b]), %%ymm13\n\t"                \
    "vbroadcastss " #u "*24(%[a]), %%ymm14\n\t"              \
    "vfmadd231ps %%ymm12, %%ymm14, %[c00]\n\t"               \
    "vfmadd231ps %%ymm13, %%ymm14, %[c01]\n\t"               \
    "vbroadcastss " #u "*24+4(%[a]), %%ymm15\n\t"            \
    "vfmadd231ps %%ymm12, %%ymm15, %[c10]\n\t"               \
    "vfmadd231ps %%ymm13, %%ymm15, %[c11]\n\t"               \
    "vbroadcastss " #u "*24+8(%[a]), %%ymm14\n\t"            \
    "vfmadd231ps %%ymm12, %%ymm14, %[c20]\n\t"               \
    "vfmadd231ps %%ymm13, %%ymm14, %[c21]\n\t"               \
    "vbroadcastss " #u "*24+12(%[a]), %%ymm15\n\t"           \
    "vfmadd231ps %%ymm12, %%ymm15, %[c30]\n\t"               \
    "vfmadd231ps %%ymm13, %%ymm15, %[c31]\n\t"               \
    "vbroadcastss " #u "*24+16(%[a]), %%ymm14\n\t"           \
    "vfmadd231ps %%ymm12, %%ymm14, %[c40]\n\t"               \
    "vfmadd231ps %%ymm13, %%ymm14, %[c41]\n\t"               \
    "vbroadcastss " #u "*24+20(%[a]), %%ymm15\n\t"           \
    "vfmadd231ps %%ymm12, %%ymm15, %[c50]\n\t"               \
    "vfmadd231ps %%ymm13, %%ymm15, %[c51]\n\t"

/// The 6 x 16 AVX2 micro-kernel (what micro_kernel runs for MR 6, NV 2 on 8-wide vectors
/// when compiled for AVX2 + FMA): the same FMAs in the same order as the generic loop, so
/// the same bits, but its k loop is written in assembly, unrolled 4 times. The compilers
/// (GCC 12) either leave the generic loop rolled (22 instructions per step) or, unrolled,
/// spill accumulators, since the tile takes all 16 ymm registers: measured on a Zen 2 core
/// (thread CPU time, tile in L1, kc 256) the generic loop ran at 77-86% of the FMA ceiling,
/// this one at 95-98%.
inline void micro_kernel_avx2_6x16(std::size_t kc, const float* LLM_RESTRICT a, const float* LLM_RESTRICT b,
                                   float* LLM_RESTRICT c, std::size_t ldc, float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    // The C tile is read (beta != 0) and written once, after kc steps: ask for its lines now
    // (first and last float of each row), so they arrive from L2/L3 while the FMAs run.
    for (std::size_t i = 0; i < 6; ++i) {
        __builtin_prefetch(c + i * ldc, 1, 3);
        __builtin_prefetch(c + i * ldc + 15, 1, 3);
    }
    std::size_t n = kc / 4;
    if (n != 0) {
        asm volatile(
            ".p2align 5\n\t"
            "1:\n\t" LLM_GEMM_AVX2_STEP(0) LLM_GEMM_AVX2_STEP(1) LLM_GEMM_AVX2_STEP(2) LLM_GEMM_AVX2_STEP(3)
            "add $96, %[a]\n\t"
            "add $256, %[b]\n\t"
            "dec %[n]\n\t"
            "jnz 1b\n\t"
            : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n), [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10),
              [c11] "+x"(c11), [c20] "+x"(c20), [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31), [c40] "+x"(c40),
              [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51)
            :
            : "memory", "cc", "xmm12", "xmm13", "xmm14", "xmm15");
    }
    for (std::size_t p = kc / 4 * 4; p < kc; ++p) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 t = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(t, b0, c00);
        c01 = _mm256_fmadd_ps(t, b1, c01);
        t = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(t, b0, c10);
        c11 = _mm256_fmadd_ps(t, b1, c11);
        t = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(t, b0, c20);
        c21 = _mm256_fmadd_ps(t, b1, c21);
        t = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(t, b0, c30);
        c31 = _mm256_fmadd_ps(t, b1, c31);
        t = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(t, b0, c40);
        c41 = _mm256_fmadd_ps(t, b1, c41);
        t = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(t, b0, c50);
        c51 = _mm256_fmadd_ps(t, b1, c51);
        a += 6;
        b += 16;
    }
    const __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
        unroll<12>([&](auto t) { _mm256_storeu_ps(c + (t / 2) * ldc + (t % 2) * 8, _mm256_mul_ps(va, acc[t])); });
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
        unroll<12>([&](auto t) {
            float* pc = c + (t / 2) * ldc + (t % 2) * 8;
            _mm256_storeu_ps(pc, _mm256_fmadd_ps(va, acc[t], _mm256_mul_ps(vb, _mm256_loadu_ps(pc))));
        });
    }
}
#undef LLM_GEMM_AVX2_STEP
#endif

#if defined(__x86_64__) && defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__)) && !defined(LLM_GEMM_NO_ASM)
#define LLM_GEMM_AVX512_ASM 1
// How far ahead (in k steps) the 6 x 64 loop asks for B's lines, and how many steps before
// the end of the k loop it asks for the C tile (see micro_kernel_avx512_6x64).
#define LLM_GEMM_AVX512_B_AHEAD "8"
#define LLM_GEMM_AVX512_C_TAIL "32"
// One row i of the 6 x 64 tile at k step u: A's value broadcast into zmm<t>, 4 FMAs into
// its accumulators zmm<4i> .. zmm<4i+3> with B's four vectors in zmm26..29.
#define LLM_GEMM_AVX512_ROW(u, i, t, c0, c1, c2, c3)              \
    "vbroadcastss " #u "*24+" #i "*4(%[a]), %%zmm" #t "\n\t"     \
    "vfmadd231ps %%zmm26, %%zmm" #t ", %%zmm" #c0 "\n\t"         \
    "vfmadd231ps %%zmm27, %%zmm" #t ", %%zmm" #c1 "\n\t"         \
    "vfmadd231ps %%zmm28, %%zmm" #t ", %%zmm" #c2 "\n\t"         \
    "vfmadd231ps %%zmm29, %%zmm" #t ", %%zmm" #c3 "\n\t"
// One k step u of the 6 x 64 tile: B's four vectors (one 256-byte row of the panel), a
// prefetch of the B row LLM_GEMM_AVX512_B_AHEAD steps ahead (4 lines), 24 FMAs.
#define LLM_GEMM_AVX512_STEP(u)                                                       \
    "vmovaps " #u "*256(%[b]), %%zmm26\n\t"                                          \
    "vmovaps " #u "*256+64(%[b]), %%zmm27\n\t"                                       \
    "vmovaps " #u "*256+128(%[b]), %%zmm28\n\t"                                      \
    "vmovaps " #u "*256+192(%[b]), %%zmm29\n\t"                                      \
    "prefetcht0 (" #u "+" LLM_GEMM_AVX512_B_AHEAD ")*256(%[b])\n\t"                  \
    "prefetcht0 (" #u "+" LLM_GEMM_AVX512_B_AHEAD ")*256+64(%[b])\n\t"               \
    "prefetcht0 (" #u "+" LLM_GEMM_AVX512_B_AHEAD ")*256+128(%[b])\n\t"              \
    "prefetcht0 (" #u "+" LLM_GEMM_AVX512_B_AHEAD ")*256+192(%[b])\n\t"              \
    LLM_GEMM_AVX512_ROW(u, 0, 30, 0, 1, 2, 3) LLM_GEMM_AVX512_ROW(u, 1, 31, 4, 5, 6, 7)       \
    LLM_GEMM_AVX512_ROW(u, 2, 30, 8, 9, 10, 11) LLM_GEMM_AVX512_ROW(u, 3, 31, 12, 13, 14, 15) \
    LLM_GEMM_AVX512_ROW(u, 4, 30, 16, 17, 18, 19) LLM_GEMM_AVX512_ROW(u, 5, 31, 20, 21, 22, 23)
// Four k steps, then the pointers advance.
#define LLM_GEMM_AVX512_STEP4                                                              \
    LLM_GEMM_AVX512_STEP(0) LLM_GEMM_AVX512_STEP(1) LLM_GEMM_AVX512_STEP(2) LLM_GEMM_AVX512_STEP(3) \
    "add $96, %[a]\n\t"                                                                    \
    "add $1024, %[b]\n\t"                                                                  \
    "sub $4, %[k]\n\t"
// The C tile's 4 lines of one row, then the next row.
#define LLM_GEMM_AVX512_C_ROW                                                        \
    "prefetcht0 (%[c])\n\t" "prefetcht0 64(%[c])\n\t" "prefetcht0 128(%[c])\n\t"      \
    "prefetcht0 192(%[c])\n\t" "add %[ldc], %[c]\n\t"
// Accumulators 4i .. 4i+3 to acc[4i .. 4i+3] (64 bytes each).
#define LLM_GEMM_AVX512_SAVE(c0, c1, c2, c3)                                                  \
    "vmovaps %%zmm" #c0 ", " #c0 "*64(%[acc])\n\t" "vmovaps %%zmm" #c1 ", " #c1 "*64(%[acc])\n\t" \
    "vmovaps %%zmm" #c2 ", " #c2 "*64(%[acc])\n\t" "vmovaps %%zmm" #c3 ", " #c3 "*64(%[acc])\n\t"
#define LLM_GEMM_AVX512_ZERO(c0, c1, c2, c3)                                                   \
    "vpxord %%zmm" #c0 ", %%zmm" #c0 ", %%zmm" #c0 "\n\t" "vpxord %%zmm" #c1 ", %%zmm" #c1 ", %%zmm" #c1 "\n\t" \
    "vpxord %%zmm" #c2 ", %%zmm" #c2 ", %%zmm" #c2 "\n\t" "vpxord %%zmm" #c3 ", %%zmm" #c3 ", %%zmm" #c3 "\n\t"

/// The 6 x 64 AVX-512 micro-kernel (what micro_kernel runs for MR 6, NV 4 on 16-wide
/// vectors when compiled for AVX-512F): the same FMAs in the same order as the generic loop,
/// so the same bits, with its k loop in assembly, unrolled 4 times, the 24 accumulators
/// pinned in zmm0..23 (an asm statement takes at most 30 operands, a read-write one counts
/// twice, so they are not operands: the loop zeroes them and stores them to `acc` at the
/// end, 24 stores and loads per kc steps), B's rows prefetched LLM_GEMM_AVX512_B_AHEAD steps
/// ahead (the 64-column B micro-panel, 128 KiB at KC 512, does not fit the 48 KiB L1d, so
/// most of its lines come from L2), and the C tile asked for LLM_GEMM_AVX512_C_TAIL steps
/// before the end, so that the B panel streamed through L1 meanwhile cannot evict its lines
/// again (asking at the start, as the AVX2 kernel does, measured the same within the noise of
/// the shared machine; prefetching B 4 or 16 steps ahead as well). GCC 12 keeps the generic
/// loop's 24 accumulators in zmm registers too (rolled, 39 instructions per step), and on an
/// Emerald Rapids core (thread CPU time, one B micro-panel of KC 128 or 512 re-read by 56 A
/// micro-panels) both ran at the FMA ceiling, 170-176 (this loop) and 174-178 GFLOP per
/// CPU-second, and alike inside the whole GEMM: here the assembly is insurance against the
/// compiler (see macro_kernel) rather than a speed-up.
inline void micro_kernel_avx512_6x64(std::size_t kc, const float* LLM_RESTRICT a, const float* LLM_RESTRICT b,
                                     float* LLM_RESTRICT c, std::size_t ldc, float alpha, float beta) {
    alignas(64) float acc[24 * 16];
    std::size_t k = kc;
    float* pc = c;
    asm volatile(
        LLM_GEMM_AVX512_ZERO(0, 1, 2, 3) LLM_GEMM_AVX512_ZERO(4, 5, 6, 7) LLM_GEMM_AVX512_ZERO(8, 9, 10, 11)
        LLM_GEMM_AVX512_ZERO(12, 13, 14, 15) LLM_GEMM_AVX512_ZERO(16, 17, 18, 19) LLM_GEMM_AVX512_ZERO(20, 21, 22, 23)
        "cmp $" LLM_GEMM_AVX512_C_TAIL "+4, %[k]\n\t"
        "jb 2f\n\t"
        ".p2align 5\n\t"
        "1:\n\t" LLM_GEMM_AVX512_STEP4
        "cmp $" LLM_GEMM_AVX512_C_TAIL "+4, %[k]\n\t"
        "jae 1b\n\t"
        "2:\n\t" LLM_GEMM_AVX512_C_ROW LLM_GEMM_AVX512_C_ROW LLM_GEMM_AVX512_C_ROW LLM_GEMM_AVX512_C_ROW
        LLM_GEMM_AVX512_C_ROW LLM_GEMM_AVX512_C_ROW
        "cmp $4, %[k]\n\t"
        "jb 4f\n\t"
        ".p2align 5\n\t"
        "3:\n\t" LLM_GEMM_AVX512_STEP4
        "cmp $4, %[k]\n\t"
        "jae 3b\n\t"
        "4:\n\t"
        "test %[k], %[k]\n\t"
        "jz 6f\n\t"
        "5:\n\t" LLM_GEMM_AVX512_STEP(0)
        "add $24, %[a]\n\t"
        "add $256, %[b]\n\t"
        "dec %[k]\n\t"
        "jnz 5b\n\t"
        "6:\n\t"
        LLM_GEMM_AVX512_SAVE(0, 1, 2, 3) LLM_GEMM_AVX512_SAVE(4, 5, 6, 7) LLM_GEMM_AVX512_SAVE(8, 9, 10, 11)
        LLM_GEMM_AVX512_SAVE(12, 13, 14, 15) LLM_GEMM_AVX512_SAVE(16, 17, 18, 19) LLM_GEMM_AVX512_SAVE(20, 21, 22, 23)
        : [a] "+r"(a), [b] "+r"(b), [k] "+r"(k), [c] "+r"(pc)
        : [ldc] "r"(ldc * sizeof(float)), [acc] "r"(acc)
        : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
          "xmm23", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
        unroll<24>([&](auto t) {
            _mm512_storeu_ps(c + (t / 4) * ldc + (t % 4) * 16, _mm512_mul_ps(va, _mm512_load_ps(acc + t * 16)));
        });
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
        unroll<24>([&](auto t) {
            float* p = c + (t / 4) * ldc + (t % 4) * 16;
            _mm512_storeu_ps(p, _mm512_fmadd_ps(va, _mm512_load_ps(acc + t * 16), _mm512_mul_ps(vb, _mm512_loadu_ps(p))));
        });
    }
}
#undef LLM_GEMM_AVX512_ZERO
#undef LLM_GEMM_AVX512_SAVE
#undef LLM_GEMM_AVX512_C_ROW
#undef LLM_GEMM_AVX512_STEP4
#undef LLM_GEMM_AVX512_STEP
#undef LLM_GEMM_AVX512_ROW
#undef LLM_GEMM_AVX512_C_TAIL
#undef LLM_GEMM_AVX512_B_AHEAD
#endif

/// The micro-kernel: C[MR x NR] (row stride ldc, unit column stride) = alpha * Ap * Bp +
/// beta * C over kc steps; beta == 0 does not read C. Ap: MR floats per step, Bp: NR floats
/// per step (64-byte aligned). The MR x NV accumulators stay in registers for all kc steps.
/// R < MR computes only the first R rows of the tile (a partial tile at the bottom of C), each
/// with the same operations, so the same bits, as the whole tile's.
template <simd::backend S, std::size_t MR, std::size_t NV, std::size_t R = MR>
LLM_FORCE_INLINE void micro_kernel(std::size_t kc, const float* LLM_RESTRICT a, const float* LLM_RESTRICT b,
                                   float* LLM_RESTRICT c, std::size_t ldc, float alpha, float beta) {
    static_assert(R >= 1 && R <= MR);
    using V = typename S::f32;
    constexpr std::size_t W = S::width;
#ifdef LLM_GEMM_AVX2_ASM
    if constexpr (W == 8 && MR == 6 && NV == 2 && R == MR) {
        micro_kernel_avx2_6x16(kc, a, b, c, ldc, alpha, beta);
        return;
    }
#endif
#ifdef LLM_GEMM_AVX512_ASM
    if constexpr (W == 16 && MR == 6 && NV == 4 && R == MR) {
        micro_kernel_avx512_6x64(kc, a, b, c, ldc, alpha, beta);
        return;
    }
#endif
    V acc[R][NV];
    unroll<R>([&](auto i) { unroll<NV>([&](auto j) { acc[i][j] = S::zero(); }); });
#if defined(__GNUC__) || defined(__clang__)
    // The C tile is read (beta != 0) and written once, after kc steps: ask for its lines now
    // (first and last float of each row), so they arrive from L2/L3 while the FMAs run.
    unroll<R>([&](auto i) {
        __builtin_prefetch(c + i * ldc, 1, 3);
        __builtin_prefetch(c + i * ldc + NV * W - 1, 1, 3);
    });
#endif
    for (std::size_t p = 0; p < kc; ++p) {
        V bv[NV];
        unroll<NV>([&](auto j) { bv[j] = S::load(b + j * W); });
        unroll<R>([&](auto i) {
            const V av = S::set1(a[i]);
            unroll<NV>([&](auto j) { acc[i][j] = S::fma(av, bv[j], acc[i][j]); });
        });
        a += MR;
        b += NV * W;
    }
    const V va = S::set1(alpha);
    if (beta == 0.0f) {
        unroll<R>([&](auto i) { unroll<NV>([&](auto j) { S::storeu(c + i * ldc + j * W, S::mul(va, acc[i][j])); }); });
    } else {
        const V vb = S::set1(beta);
        unroll<R>([&](auto i) {
            unroll<NV>([&](auto j) {
                float* pc = c + i * ldc + j * W;
                S::storeu(pc, S::fma(va, acc[i][j], S::mul(vb, S::loadu(pc))));
            });
        });
    }
}

/// The fp32 panels of gemm_blocked: operands widened to fp32 while packing, the FMA
/// micro-kernel. (bf16_panels, <llm/gemm/bf16_dot.hpp>, is the other kind: same interface,
/// k-pairs of bf16 per 32-bit word.)
template <simd::backend S, std::size_t MR, std::size_t NV>
struct fp32_panels {
    static constexpr std::size_t k_per_word = 1;  ///< k steps per packed 32-bit word
    template <class T>
    static void pack_a(const strided_view<T, 2>& a, float* LLM_RESTRICT out) {
        detail::pack_a<MR>(a, out);
    }
    template <class T>
    static void pack_b(const strided_view<T, 2>& b, std::size_t panel_begin, std::size_t panel_end, float* LLM_RESTRICT out) {
        detail::pack_b<NV * S::width>(b, panel_begin, panel_end, out);
    }
    LLM_FORCE_INLINE static void micro(std::size_t kc, const float* LLM_RESTRICT a, const float* LLM_RESTRICT b,
                                       float* LLM_RESTRICT c, std::size_t ldc, float alpha, float beta) {
        micro_kernel<S, MR, NV>(kc, a, b, c, ldc, alpha, beta);
    }
    /// micro's first R rows only (the A panel still MR rows wide): a partial tile's work.
    template <std::size_t R>
    LLM_FORCE_INLINE static void micro_rows(std::size_t kc, const float* LLM_RESTRICT a, const float* LLM_RESTRICT b,
                                            float* LLM_RESTRICT c, std::size_t ldc, float alpha, float beta) {
        micro_kernel<S, MR, NV, R>(kc, a, b, c, ldc, alpha, beta);
    }
};

/// The absent epilogue: C is left as the product wrote it.
struct no_epilogue {
    static constexpr bool active = false;
    void operator()(std::size_t, std::size_t, float*, std::size_t) const {}
};

/// Whether E is a store epilogue (anything else than no_epilogue).
template <class E>
constexpr bool epilogue_active = !std::is_same_v<E, no_epilogue>;

#if defined(__GNUC__) || defined(__clang__)
#define LLM_GEMM_NOINLINE __attribute__((noinline))
#else
#define LLM_GEMM_NOINLINE
#endif

/// The macro-kernel: C block (mc x nc, any strides) = alpha * Ap * Bp + beta * C for the
/// packed A block and the packed B panels [panel_begin, panel_end). Full tiles of a C with
/// unit column stride go straight to C; edge tiles and strided C go through a small tile.
/// With an epilogue (last KC step only, C with unit column stride), each row of a tile is
/// handed to ep(row, column, values, count) right after the micro-kernel stored it, while
/// the tile is in L1: row0 / col0 place the block in the whole C.
/// Never inlined: when GCC 12 inlined it into gemm_blocked's task (it did once a second
/// instantiation, the linear layer's epilogue, shared the translation unit), it kept the
/// generic micro-kernel's accumulator array in memory in that much larger function and stored
/// all MR x NV accumulators to the stack on every k step (objdump: 12 vmovaps per 12 FMAs),
/// store-port bound: every GEMM of that unit ran 1.5x slower. As its own function the array
/// stays in registers. (The AVX2 assembly loop keeps its accumulators in registers anyway.)
/// Panels: the packing and micro-kernel kind (fp32_panels, bf16_panels); kc counts its packed
/// words (k steps / Panels::k_per_word, rounded up).
/// A partial tile of `rows` rows (1 .. MR) into `tile` (row stride ldt, beta 0): where the
/// panels offer micro_rows, only those rows are multiplied (a 2-row tile at the bottom of a
/// 128-row C cost a whole 6-row tile: 3% of the product); else the whole tile.
template <std::size_t MR, class Panels>
LLM_FORCE_INLINE void edge_micro(std::size_t rows, std::size_t kc, const float* a, const float* b, float* tile, std::size_t ldt,
                                 float alpha) {
    if constexpr (requires { Panels::template micro_rows<1>(kc, a, b, tile, ldt, alpha, 0.0f); }) {
        if (rows < MR) {
            [&]<std::size_t... R>(std::index_sequence<R...>) {
                (void)((rows == R + 1 && (Panels::template micro_rows<R + 1>(kc, a, b, tile, ldt, alpha, 0.0f), true)) || ...);
            }(std::make_index_sequence<MR - 1>{});
            return;
        }
    }
    Panels::micro(kc, a, b, tile, ldt, alpha, 0.0f);
}

template <simd::backend S, std::size_t MR, std::size_t NV, class Ep = no_epilogue, class Panels = fp32_panels<S, MR, NV>>
LLM_GEMM_NOINLINE void macro_kernel(std::size_t kc, const float* ap, const float* bp, strided_view<float, 2> c, std::size_t panel_begin,
                  std::size_t panel_end, float alpha, float beta, const Ep& ep = {}, bool last = false,
                  std::size_t row0 = 0, std::size_t col0 = 0, std::size_t panel_stride = 0) {
    constexpr std::size_t NR = NV * S::width;
    // Packed per call, panel r starts at bp + r * NR * kc; packed once (a prepacked B over the
    // whole k), panel_stride floats apart.
    const std::size_t stride = panel_stride != 0 ? panel_stride : NR * kc;
    alignas(64) float tile[MR * NR];
    // The next B micro-panel (kc x NR floats) is fetched into L2 a slice per micro-tile while
    // this one is in use, so the first tile of each panel does not wait on L3 for it.
    const std::size_t panel_lines = kc * NR * sizeof(float) / 64;
    const std::size_t row_tiles = (c.extent(0) + MR - 1) / MR;
    const std::size_t lines_per_tile = (panel_lines + row_tiles - 1) / row_tiles;
    for (std::size_t r = panel_begin; r < panel_end; ++r) {
        const std::size_t j0 = r * NR;
        const std::size_t cols = std::min(NR, c.extent(1) - j0);
        const float* b = bp + r * stride;
        std::size_t line = r + 1 < panel_end ? 0 : panel_lines;
        for (std::size_t i0 = 0; i0 < c.extent(0); i0 += MR) {
            const std::size_t rows = std::min(MR, c.extent(0) - i0);
            const float* a = ap + i0 * kc;
#if defined(__GNUC__) || defined(__clang__)
            for (const std::size_t end = std::min(panel_lines, line + lines_per_tile); line < end; ++line) {
                __builtin_prefetch(b + stride + line * (64 / sizeof(float)), 0, 2);
            }
#endif
            if (rows == MR && cols == NR && c.stride(1) == 1) {
                Panels::micro(kc, a, b, c.ptr(i0, j0), c.stride(0), alpha, beta);
            } else {
                edge_micro<MR, Panels>(rows, kc, a, b, tile, NR, alpha);
                for (std::size_t i = 0; i < rows; ++i) {
                    for (std::size_t j = 0; j < cols; ++j) {
                        float& out = c(i0 + i, j0 + j);
                        out = beta == 0.0f ? tile[i * NR + j] : tile[i * NR + j] + beta * out;
                    }
                }
            }
            if constexpr (epilogue_active<Ep>) {
                if (last) {
                    for (std::size_t i = 0; i < rows; ++i) {
                        ep(row0 + i0 + i, col0 + j0, c.ptr(i0 + i, j0), cols);
                    }
                }
            }
        }
    }
}

/// GEMV y (1 x n) = alpha * x (1 x k, contiguous fp32) * B (k x n) + beta * y, B read once at
/// memory speed, nothing packed. Row-major B (unit column stride): y accumulates 4 rows of B
/// per pass over a slice of y kept in L1. Column-major B (unit row stride, i.e. a row-major
/// weight W with y = x W^T): dot products of x with 4 columns at a time.
template <simd::backend S, class TB, class Exec>
void gemv(strided_view<float, 2> y, const float* x, strided_view<TB, 2> b, float alpha, float beta, Exec& exec) {
    using V = typename S::f32;
    constexpr std::size_t W = S::width;
    const std::size_t k = b.extent(0);
    const std::size_t n = b.extent(1);
    auto finish = [&](std::size_t j, float v) {
        float& out = y(0, j);
        out = beta == 0.0f ? alpha * v : alpha * v + beta * out;
    };
    if (b.stride(1) == 1) {
        // Slices of 1024 columns: 4 KiB of y in L1, 4 KiB contiguous per row of B, which
        // the hardware prefetcher follows; each thread takes whole slices.
        constexpr std::size_t slice = 1024;
        const std::size_t grain = std::max<std::size_t>(W, std::min(slice, (n + exec.size() - 1) / exec.size() + W - 1) / W * W);
        parallel::parallel_for(exec, n, grain, [&](std::size_t begin, std::size_t end) {
            alignas(64) float acc[slice];
            const std::size_t len = end - begin;
            const std::size_t full = len / W * W;
            std::fill(acc, acc + len, 0.0f);
            std::size_t p = 0;
            for (; p + 4 <= k; p += 4) {
                const TB* r0 = b.ptr(p, begin);
                const TB* r1 = r0 + b.stride(0);
                const TB* r2 = r1 + b.stride(0);
                const TB* r3 = r2 + b.stride(0);
                const V x0 = S::set1(x[p]), x1 = S::set1(x[p + 1]), x2 = S::set1(x[p + 2]), x3 = S::set1(x[p + 3]);
                std::size_t j = 0;
                for (; j < full; j += W) {
                    V v = S::load(acc + j);
                    v = S::fma(x0, load_any<S>(r0 + j), v);
                    v = S::fma(x1, load_any<S>(r1 + j), v);
                    v = S::fma(x2, load_any<S>(r2 + j), v);
                    v = S::fma(x3, load_any<S>(r3 + j), v);
                    S::store(acc + j, v);
                }
                if (j < len) {
                    const std::size_t t = len - j;
                    V v = S::load(acc + j);
                    v = S::fma(x0, load_any_partial<S>(r0 + j, t), v);
                    v = S::fma(x1, load_any_partial<S>(r1 + j, t), v);
                    v = S::fma(x2, load_any_partial<S>(r2 + j, t), v);
                    v = S::fma(x3, load_any_partial<S>(r3 + j, t), v);
                    S::store(acc + j, v);
                }
            }
            for (; p < k; ++p) {
                const TB* r0 = b.ptr(p, begin);
                for (std::size_t j = 0; j < len; ++j) {
                    acc[j] += x[p] * to_float(r0[j]);
                }
            }
            for (std::size_t j = 0; j < len; ++j) {
                finish(begin + j, acc[j]);
            }
        });
    } else {
        // Columns are contiguous: 4 dot products at a time, 2 vectors each, so 8 independent
        // FMA chains cover the FMA latency while x (k floats) stays in L1.
        const std::size_t grain = std::max<std::size_t>(4, (n + 2 * exec.size() - 1) / (2 * exec.size()));
        parallel::parallel_for(exec, n, grain, [&](std::size_t begin, std::size_t end) {
            std::size_t j = begin;
            for (; j + 4 <= end; j += 4) {
                const TB* col[4];
                V acc[4][2];
                unroll<4>([&](auto c) {
                    col[c] = b.ptr(0, j + c);
                    acc[c][0] = S::zero();
                    acc[c][1] = S::zero();
                });
                std::size_t p = 0;
                for (; p + 2 * W <= k; p += 2 * W) {
                    const V x0 = S::loadu(x + p);
                    const V x1 = S::loadu(x + p + W);
                    unroll<4>([&](auto c) {
                        acc[c][0] = S::fma(x0, load_any<S>(col[c] + p), acc[c][0]);
                        acc[c][1] = S::fma(x1, load_any<S>(col[c] + p + W), acc[c][1]);
                    });
                }
                for (; p < k; p += W) {
                    const std::size_t t = std::min(W, k - p);
                    const V x0 = S::load_partial(x + p, t);
                    unroll<4>([&](auto c) { acc[c][0] = S::fma(x0, load_any_partial<S>(col[c] + p, t), acc[c][0]); });
                }
                unroll<4>([&](auto c) { finish(j + c, S::reduce_add(S::add(acc[c][0], acc[c][1]))); });
            }
            // The last columns of a range one at a time, with the same two chains and the same
            // order as above: a column's bits do not depend on which thread's range it ends.
            for (; j < end; ++j) {
                const TB* col = b.ptr(0, j);
                V acc0 = S::zero(), acc1 = S::zero();
                std::size_t p = 0;
                for (; p + 2 * W <= k; p += 2 * W) {
                    acc0 = S::fma(S::loadu(x + p), load_any<S>(col + p), acc0);
                    acc1 = S::fma(S::loadu(x + p + W), load_any<S>(col + p + W), acc1);
                }
                for (; p < k; p += W) {
                    const std::size_t t = std::min(W, k - p);
                    acc0 = S::fma(S::load_partial(x + p, t), load_any_partial<S>(col + p, t), acc0);
                }
                finish(j, S::reduce_add(S::add(acc0, acc1)));
            }
        });
    }
}

/// Where gemm_blocked's B comes from when it is a weight matrix laid out at load instead of a view:
/// `packed`, B already in Panels' layout over the whole k (panel r at packed + r * NR *
/// ceil(k / k_per_word) floats, 64-byte aligned), read where it lies, nothing packed; or `f16`,
/// f16_weight_panels' halves (NR must be 64), each KC x 64 slice a row-major block that pack_b
/// widens with contiguous reads.
struct b_weights {
    const float* packed = nullptr;        ///< Panels' own layout, read in place
    const std::uint16_t* f16 = nullptr;  ///< f16_weight_panels' layout, widened per call
};

/// The blocked GEMM (Goto/BLIS loop order). The m x n output is cut into independent tasks
/// (a grid of row and column ranges, the one that packs least). One parallel_for runs one
/// chunk per thread; each chunk owns a slot of the workspace (its A block, MC x KC, and its B
/// panels, KC x the task's columns) and claims tasks from a shared counter until none are
/// left. Nothing is shared but the counter, so there is one barrier per GEMM instead of two
/// per KC step, and with 2 tasks per thread the claiming rebalances work when a core is busy
/// with something else (the build machines are shared). The price is repacking: A once per
/// column task, B once per row task (4 tasks per thread, all column ranges, packed A up to
/// 8 times on 2 threads and cost 10-25% per CPU-second at 512^3 and 1024^3 on Zen 2).
/// An epilogue (C with unit column stride) runs on every row of each micro-tile at the last
/// KC step, as the tile is stored (see macro_kernel).
/// Panels: fp32_panels (the default, void) or bf16_panels; with k_per_word 2 a KC block is
/// 2 * kc k steps, kc packed words as the fp32 path's.
/// weights: B = W^T given as weight panels instead of by b's data (b then gives the shape only;
/// its data is never read), see b_weights.
template <simd::backend S, blocking_policy Blocking, class TA, class TB, class Exec, class Ep = no_epilogue,
          class Panels = void>
void gemm_blocked(strided_view<float, 2> c, strided_view<TA, 2> a, strided_view<TB, 2> b, float alpha, float beta,
                  llm::workspace& ws, Exec& exec, const Ep& ep = {}, b_weights weights = {}) {
    const float* const prepacked_b = weights.packed;
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NV = Blocking::nr_vectors;
    constexpr std::size_t NR = NV * S::width;
    using P = std::conditional_t<std::is_void_v<Panels>, fp32_panels<S, MR, NV>, Panels>;
    constexpr std::size_t kpw = P::k_per_word;
    if constexpr (fixed_blocking_policy<Blocking>) {
        static_assert(Blocking::nc % NR == 0, "llm::blas: blocking nc must be a multiple of NR = nr_vectors * width");
    }
    // The cache blocks, read at run time (a run-time policy computes them once from the caches).
    const block_sizes bs = block_sizes_of<Blocking>();
    const std::size_t m = c.extent(0), n = c.extent(1), k = a.extent(1);
    const std::size_t threads = std::max<std::size_t>(1, exec.size());
    const std::size_t row_tiles = (m + MR - 1) / MR;
    const std::size_t panels = (n + NR - 1) / NR;
    const std::size_t want = threads == 1 ? 1 : 2 * threads;
    // The task grid: row_tasks x col_tasks with at least `want` tasks and columns at most NC
    // wide, chosen to pack the least: every column task packs its rows of A and every row task
    // its columns of B, so the grid costs col_tasks * m + row_tasks * n packed floats per k
    // (square-ish tasks; 8 column tasks of a 1024^3 GEMM packed A 8 times and ran at 0.76x
    // OpenBLAS per CPU-second on 2 threads, 2 x 2 tasks pack each operand twice).
    const std::size_t min_col_tasks = std::max<std::size_t>(1, (panels * NR + bs.nc - 1) / bs.nc);
    std::size_t col_tasks = min_col_tasks, row_tasks = 1;
    if (want > 1) {
        // As many tasks as wanted, or as the tiles allow (a narrow or short C).
        const std::size_t target = std::min(want, row_tiles * panels);
        std::size_t best_cost = 0;
        for (std::size_t rt = 1; rt <= std::min(row_tiles, want); ++rt) {
            const std::size_t ct = std::min(panels, std::max(min_col_tasks, (want + rt - 1) / rt));
            const std::size_t cost = ct * m + rt * n;
            if (rt * ct >= target && (best_cost == 0 || cost < best_cost)) {
                best_cost = cost;
                row_tasks = rt;
                col_tasks = ct;
            }
        }
    }
    const std::size_t panels_per_task = (panels + col_tasks - 1) / col_tasks;
    col_tasks = (panels + panels_per_task - 1) / panels_per_task;
    const std::size_t rows_per_task = (row_tiles + row_tasks - 1) / row_tasks * MR;
    const std::size_t tasks = row_tasks * col_tasks;
    // One workspace slot per chunk: the largest A block (a row block of a task is at most MC
    // rows, see below) and the task's B panels, each rounded to 16 floats (64 bytes) so every
    // packed panel starts 64-byte aligned (the micro-kernel loads B with aligned loads).
    const std::size_t kc_block = bs.kc * kpw;  // k steps per KC block
    const std::size_t kc_max = (std::min(kc_block, k) + kpw - 1) / kpw;  // packed words per panel step
    const auto round16 = [](std::size_t x) { return (x + 15) / 16 * 16; };
    // A's block is a multiple of 4 KiB for the usual mc x kc: without the extra 3 cache lines,
    // the A and B panels the micro-kernel streams together would share their 4 KiB offsets
    // (loads that alias in the L1's address check).
    const std::size_t a_floats = round16(std::min(bs.mc, rows_per_task) * kc_max) + 48;
    const std::size_t b_floats = prepacked_b != nullptr ? 0 : round16(panels_per_task * NR * kc_max);
    const std::size_t pre_stride = NR * ((k + kpw - 1) / kpw);  // a prepacked panel's floats
    const std::size_t slots = std::min(threads, tasks);
    float* const slot_base = ws.take<float>(checked_mul(slots, a_floats + b_floats, "gemm", "the packing panels"), "gemm",
                                              "the packing panels");
    // B's columns [g0, g0 + cols) (count panels) over k steps [pc, pc + kc) into packed panels at out.
    const auto pack_b_block = [&](std::size_t pc, std::size_t kc, std::size_t g0, std::size_t cols, std::size_t count,
                                  float* out) {
        if constexpr (NR == f16_weight_panels::rows_per_panel && kpw == 1) {
            if (weights.f16 != nullptr) {
                // Each 64-row panel's k steps [pc, pc + kc) are a row-major kc x 64 block
                // (row stride 64, pad rows zero): pack_b's contiguous widening path.
                for (std::size_t i = 0; i < count; ++i) {
                    const auto* src = reinterpret_cast<const llm::f16*>(weights.f16 + (g0 + i * NR) * k + pc * NR);
                    P::pack_b(strided_view<const llm::f16, 2>(src, dims<2>(kc, NR), dims<2>(NR, 1)), 0, 1, out + i * NR * kc);
                }
                return;
            }
        }
        P::pack_b(block(b, pc, g0, kc, cols), 0, count, out);
    };
    std::atomic<std::size_t> next{0};
    parallel::parallel_for(exec, slots, 1, [&](std::size_t slot, std::size_t) {
        float* const ap = slot_base + slot * (a_floats + b_floats);
        float* const bp = ap + a_floats;
        for (std::size_t task = next.fetch_add(1, std::memory_order_relaxed); task < tasks;
             task = next.fetch_add(1, std::memory_order_relaxed)) {
            const std::size_t r0 = (task / col_tasks) * rows_per_task;
            const std::size_t p0 = (task % col_tasks) * panels_per_task;
            if (r0 >= m) {
                continue;
            }
            const std::size_t rows = std::min(rows_per_task, m - r0);
            const std::size_t task_panels = std::min(panels, p0 + panels_per_task) - p0;
            const std::size_t c0 = p0 * NR;
            const std::size_t cols = std::min(task_panels * NR, n - c0);
            // Row blocks inside a task: at most MC rows, equal to within one micro-tile.
            const std::size_t tiles = (rows + MR - 1) / MR;
            const std::size_t blocks = (tiles * MR + bs.mc - 1) / bs.mc;
            const std::size_t mc = (tiles + blocks - 1) / blocks * MR;
            for (std::size_t pc = 0; pc < k; pc += kc_block) {
                const std::size_t kc = std::min(kc_block, k - pc);
                const float beta_step = pc == 0 ? beta : 1.0f;
                if (prepacked_b != nullptr) {
                    // B is read where it lies: every panel of the task in one macro-kernel call
                    // per A block, which fetches each next panel into L2 while it runs.
                    const float* bk = prepacked_b + p0 * pre_stride + pc / kpw * NR;
                    for (std::size_t ic = 0; ic < rows; ic += mc) {
                        const std::size_t block_rows = std::min(mc, rows - ic);
                        P::pack_a(block(a, r0 + ic, pc, block_rows, kc), ap);
                        macro_kernel<S, MR, NV, Ep, P>((kc + kpw - 1) / kpw, ap, bk, block(c, r0 + ic, c0, block_rows, cols), 0,
                                                       task_panels, alpha, beta_step, ep, pc + kc >= k, r0 + ic, c0, pre_stride);
                    }
                    continue;
                }
                if (blocks == 1) {
                    // One A block (a prefill's few hundred rows): it is packed once, then each
                    // pair of B panels is packed and used at once, while in L2. Packed whole,
                    // the KC x NC block of B (8 MiB at NC 4096) went out to L3 and came back:
                    // the pack wrote at 12 GB/s and took 20% of a 128-row bf16 GEMM.
                    P::pack_a(block(a, r0, pc, rows, kc), ap);
                    constexpr std::size_t group = 2;
                    for (std::size_t q0 = 0; q0 < task_panels; q0 += group) {
                        const std::size_t q1 = std::min(task_panels, q0 + group);
                        const std::size_t g0 = c0 + q0 * NR, gcols = std::min(cols, q1 * NR) - q0 * NR;
                        pack_b_block(pc, kc, g0, gcols, q1 - q0, bp);
                        macro_kernel<S, MR, NV, Ep, P>((kc + kpw - 1) / kpw, ap, bp, block(c, r0, g0, rows, gcols), 0, q1 - q0,
                                                       alpha, beta_step, ep, pc + kc >= k, r0, g0);
                    }
                    continue;
                }
                pack_b_block(pc, kc, c0, cols, task_panels, bp);
                for (std::size_t ic = 0; ic < rows; ic += mc) {
                    const std::size_t block_rows = std::min(mc, rows - ic);
                    P::pack_a(block(a, r0 + ic, pc, block_rows, kc), ap);
                    macro_kernel<S, MR, NV, Ep, P>((kc + kpw - 1) / kpw, ap, bp, block(c, r0 + ic, c0, block_rows, cols), 0,
                                                   task_panels, alpha, beta_step, ep, pc + kc >= k, r0 + ic, c0);
                }
            }
        }
    });
}

/// C = beta * C (the k == 0 product), not reading C when beta == 0.
inline void scale(strided_view<float, 2> c, float beta) {
    for (std::size_t i = 0; i < c.extent(0); ++i) {
        for (std::size_t j = 0; j < c.extent(1); ++j) {
            c(i, j) = beta == 0.0f ? 0.0f : beta * c(i, j);
        }
    }
}

}  // namespace detail

/// Backend policy: our own GEMM. Packed panels and a register-blocked micro-kernel written
/// through the SIMD facade, MC/KC/NC cache blocking, threads over row blocks (and column
/// panels when rows are few); M = 1 or N = 1 runs a GEMV that packs nothing and streams B
/// at memory bandwidth. bf16 and f16 inputs (own_operand; llm::gemm's views take fp32 and
/// bf16, f16 is for callers of run such as llm::quant::linear_forward) are widened to fp32
/// while packing (exact). Scratch (the
/// packed panels, a widened GEMV vector) comes from the workspace passed: threads x (MC x KC
/// + KC x the widest column task) floats for a GEMM, k floats for a 16-bit or strided GEMV.
/// bf16 A times bf16 B with 16-lane vectors (AVX-512) can run the dot-product path instead
/// (`vdpbf16ps` on bf16 k-pairs, <llm/gemm/bf16_dot.hpp>) where the CPU has AVX512_BF16;
/// by default only where that is faster (not on Intel cores, see llm::blas::bf16_dot_pays).
/// S: the SIMD backend (llm::simd::default_backend: the widest available).
/// Blocking: register and cache blocking (default chosen from S::width, see blocking.hpp).
/// Bf16: llm::blas::bf16_path: automatic (default), widen (force the widening path), dot
/// (force the dot-product path where available), dot_round_fp32 (also fp32 x bf16 through
/// it, the fp32 operand rounded to bf16).
/// Example: `llm::gemm<llm::blas::own<llm::simd::scalar>>(c, a, b);`
template <simd::backend S = simd::default_backend, blocking_policy Blocking = default_blocking_t<S::width>,
          bf16_path Bf16 = bf16_path::automatic>
struct own {
    /// c: m x n, a: m x k, b: k x n (shapes checked by the caller); any strides.
    template <own_operand TA, own_operand TB, parallel::policy Exec>
    static void run(strided_view<float, 2> c, strided_view<TA, 2> a, strided_view<TB, 2> b, float alpha, float beta,
                    llm::workspace& ws, Exec& exec) {
        if (c.empty()) {
            return;
        }
        if (a.extent(1) == 0) {
            detail::scale(c, beta);
            return;
        }
        const llm::workspace::frame frame(ws);
        // The output's unit stride along its columns (what the micro-kernel stores along),
        // a vector output a row so GEMV handles it.
        const bool transpose = detail::column_major(c) || (c.extent(1) == 1 && c.extent(0) > 1);
        detail::oriented(transpose, c, a, b,
                         [&](auto oc, auto oa, auto ob) { run_oriented(oc, oa, ob, alpha, beta, ws, exec); });
    }

    /// c = a * b, then ep(i, j, p, count) on every stretch of a row of c (row i, columns
    /// j..j+count, p the count fp32 values there, which ep may change in place or copy
    /// elsewhere), called once per element of c while the micro-tile is hot in L1, so an
    /// epilogue (bias, activation, rounding to bf16 into another buffer) costs no second pass
    /// over c. c must have unit column stride (checked by the caller); a one-row or
    /// one-column c runs as run does (a GEMV), then ep over the rows.
    /// Example: `llm::blas::own<>::run_epilogue(c, a, b, [](std::size_t, std::size_t, float*, std::size_t) {}, ws, pool);`
    template <own_operand TA, own_operand TB, class Ep, parallel::policy Exec>
    static void run_epilogue(strided_view<float, 2> c, strided_view<TA, 2> a, strided_view<TB, 2> b, const Ep& ep,
                             llm::workspace& ws, Exec& exec) {
        if (c.empty()) {
            return;
        }
        if (a.extent(1) == 0 || c.extent(0) == 1 || c.extent(1) == 1) {
            // k = 0, or a vector C (the GEMV, or C^T = B^T A^T when n == 1): the product as
            // run computes it, then the epilogue over C's rows (one row or one column).
            run(c, a, b, 1.0f, 0.0f, ws, exec);
            const std::size_t grain = std::max<std::size_t>(1, 4096 / c.extent(1));
            parallel::parallel_for(exec, c.extent(0), grain, [&](std::size_t i0, std::size_t i1) {
                for (std::size_t i = i0; i < i1; ++i) {
                    ep(i, 0, c.ptr(i, 0), c.extent(1));
                }
            });
            return;
        }
        const llm::workspace::frame frame(ws);
        if (!run_dot(c, a, b, 1.0f, 0.0f, ws, exec, ep)) {
            detail::gemm_blocked<S, Blocking>(c, a, b, 1.0f, 0.0f, ws, exec, ep);
        }
    }

    /// Whether run_packed multiplies bf16_weight_panels here: an AVX512_BF16 build and CPU, 16-lane
    /// vectors, and a blocking whose micro-tile is 64 columns wide (the panels' 64 rows).
    /// Example: `if (llm::blas::own<>::packed_available()) { ... }`
    static bool packed_available() noexcept {
        if constexpr (S::width == 16 && Blocking::nr_vectors * S::width == bf16_weight_panels::rows_per_panel) {
            return bf16_dot_available();
        } else {
            return false;
        }
    }

    /// c (m x n) = a (m x k, fp32) W^T for bf16 weights W [n, k] packed once (bf16_weight_panels):
    /// the `vdpbf16ps` path, a's values rounded to bf16 as they are packed, exactly as run with
    /// bf16_path::dot_round_fp32 computes it for the row-major W (the same bits wherever run
    /// takes its GEMM, i.e. m and n above 1), without packing or re-reading W. c must have unit
    /// column stride. Scratch: threads x MC x KC floats from ws.
    /// Errors (llm::error): shapes that disagree, a strided c, !packed_available(), unaligned words.
    /// Example: `llm::blas::own<>::run_packed(c, a, panels, ws, pool);`
    template <parallel::policy Exec>
    static void run_packed(strided_view<float, 2> c, strided_view<const float, 2> a, const bf16_weight_panels& w,
                           [[maybe_unused]] llm::workspace& ws, [[maybe_unused]] Exec& exec) {
        check_packed(c, a, w.n, w.k, w.words, packed_available(), "bf16");
        if (c.empty()) {
            return;
        }
        if (a.extent(1) == 0) {
            detail::scale(c, 0.0f);
            return;
        }
#if LLM_GEMM_BF16_DOT
        if constexpr (S::width == 16 && Blocking::nr_vectors * S::width == bf16_weight_panels::rows_per_panel) {
            const llm::workspace::frame frame(ws);
            // The shape of B = W^T; its data is never read (prepacked_b).
            const strided_view<const llm::bf16, 2> shape(nullptr, llm::dims<2>(w.k, w.n), llm::dims<2>(1, w.k));
            using P = detail::bf16_panels<Blocking::mr, Blocking::nr_vectors>;
            detail::gemm_blocked<S, Blocking, const float, const llm::bf16, Exec, detail::no_epilogue, P>(
                c, a, shape, 1.0f, 0.0f, ws, exec, {}, {.packed = reinterpret_cast<const float*>(w.words)});
        }
#endif
    }

    /// Whether run_packed multiplies f16_weight_panels here: a micro-tile 64 columns wide (the
    /// panels' 64 rows; AVX-512 builds with the default blocking).
    /// Example: `if (llm::blas::own<>::f16_packed_available()) { ... }`
    static constexpr bool f16_packed_available() noexcept {
        return Blocking::nr_vectors * S::width == f16_weight_panels::rows_per_panel;
    }

    /// c (m x n) = a (m x k, fp32) W^T for f16 weights W [n, k] laid out once (f16_weight_panels):
    /// the fp32 GEMM, each KC x 64 slice of a panel widened with contiguous reads where the
    /// row-major W is gathered from 64 rows, exactly as run computes it for the row-major W (the
    /// same bits wherever run takes its GEMM, i.e. m and n above 1). c must have unit column
    /// stride. Scratch: as run's.
    /// Errors (llm::error): shapes that disagree, a strided c, !f16_packed_available(), unaligned halves.
    /// Example: `llm::blas::own<>::run_packed(c, a, f16_panels, ws, pool);`
    template <parallel::policy Exec>
    static void run_packed(strided_view<float, 2> c, strided_view<const float, 2> a, const f16_weight_panels& w,
                           llm::workspace& ws, Exec& exec) {
        check_packed(c, a, w.n, w.k, w.halves, f16_packed_available(), "f16");
        if (c.empty()) {
            return;
        }
        if (a.extent(1) == 0) {
            detail::scale(c, 0.0f);
            return;
        }
        const llm::workspace::frame frame(ws);
        // The shape of B = W^T; its data is never read (weights.f16).
        const strided_view<const llm::f16, 2> shape(nullptr, llm::dims<2>(w.k, w.n), llm::dims<2>(1, w.k));
        detail::gemm_blocked<S, Blocking, const float, const llm::f16, Exec>(c, a, shape, 1.0f, 0.0f, ws, exec, {},
                                                                              {.f16 = w.halves});
    }

private:
    /// run_packed's argument checks for `kind` ("bf16" / "f16") weight panels W [n, k] at `data`.
    static void check_packed(strided_view<float, 2> c, strided_view<const float, 2> a, std::size_t n, std::size_t k,
                             const void* data, bool available, std::string_view kind) {
        llm::check(c.extent(0) == a.extent(0) && c.extent(1) == n && a.extent(1) == k, "blas::own::run_packed: c [", c.extent(0),
                   ", ", c.extent(1), "] = a [", a.extent(0), ", ", a.extent(1), "] W^T with ", kind, " W [", n, ", ", k, "]");
        llm::check(c.stride(1) == 1 || c.extent(1) <= 1, "blas::own::run_packed: c must have unit column stride (stride ",
                   c.stride(1), ")");
        llm::check(available, "blas::own::run_packed: no ", kind, " panel path here: it needs 64-column micro-tiles (this blocking has ",
                   Blocking::nr_vectors * S::width, ")", kind == "bf16" ? ", an AVX512_BF16 build and CPU" : "");
        llm::check(reinterpret_cast<std::uintptr_t>(data) % 64 == 0, "blas::own::run_packed: the ", kind,
                   " panels are not 64-byte aligned");
    }

    /// The AMX path (bf16_amx_selected) or the bf16 dot-product path (bf16_dot_selected) when
    /// selected, true if one ran.
    template <class TA, class TB, class Exec, class Ep = detail::no_epilogue>
    static bool run_dot([[maybe_unused]] strided_view<float, 2> c, [[maybe_unused]] strided_view<TA, 2> a,
                        [[maybe_unused]] strided_view<TB, 2> b, [[maybe_unused]] float alpha,
                        [[maybe_unused]] float beta, [[maybe_unused]] llm::workspace& ws, [[maybe_unused]] Exec& exec,
                        [[maybe_unused]] const Ep& ep = {}) {
        constexpr bool any16 = std::is_same_v<std::remove_const_t<TA>, llm::bf16> ||
                               std::is_same_v<std::remove_const_t<TB>, llm::bf16>;
        if constexpr (S::width == 16 && any16 && Bf16 != bf16_path::widen) {
#if LLM_GEMM_AMX
            if (Bf16 != bf16_path::dot && bf16_amx_selected<TA, TB>(Bf16, S::width)) {
                using P = detail::amx_panels<detail::amx_hardware>;
                detail::gemm_blocked<S, blocking_amx, TA, TB, Exec, Ep, P>(c, a, b, alpha, beta, ws, exec, ep);
                return true;
            }
#endif
#if LLM_GEMM_BF16_DOT
            if (bf16_dot_selected<TA, TB>(Bf16, S::width)) {
                using P = detail::bf16_panels<Blocking::mr, Blocking::nr_vectors>;
                detail::gemm_blocked<S, Blocking, TA, TB, Exec, Ep, P>(c, a, b, alpha, beta, ws, exec, ep);
                return true;
            }
#endif
        }
        return false;
    }

    template <class TA, class TB, class Exec>
    static void run_oriented(strided_view<float, 2> c, strided_view<TA, 2> a, strided_view<TB, 2> b, float alpha,
                             float beta, llm::workspace& ws, Exec& exec) {
        if (c.extent(0) == 1 && (b.stride(1) == 1 || b.stride(0) == 1)) {
            const float* x = nullptr;
            if constexpr (std::is_same_v<std::remove_const_t<TA>, float>) {
                x = a.stride(1) == 1 ? a.data() : nullptr;
            }
            if (x == nullptr) {
                // A strided or bf16 row: widen it once (k floats), it is re-read n times.
                float* xs = ws.take<float>(a.extent(1), "gemm", "the widened GEMV row");
                for (std::size_t p = 0; p < a.extent(1); ++p) {
                    xs[p] = detail::to_float(a(0, p));
                }
                x = xs;
            }
            detail::gemv<S>(c, x, b, alpha, beta, exec);
            return;
        }
        if (!run_dot(c, a, b, alpha, beta, ws, exec)) {
            detail::gemm_blocked<S, Blocking>(c, a, b, alpha, beta, ws, exec);
        }
    }
};

}  // namespace llm::blas
