// SPDX-License-Identifier: Apache-2.0
// The bf16 dot-product GEMM path of the own backend: A and B packed as bf16 k-pairs, `vdpbf16ps` (AVX512_BF16) micro-kernel, fp32 accumulation.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/checked.hpp>
#include <llm/gemm/matrix.hpp>
#include <llm/gemm/transpose.hpp>
#include <llm/simd/unroll.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define LLM_GEMM_BF16_CPUID 1
#else
#define LLM_GEMM_BF16_CPUID 0
#endif
#if defined(__AVX512F__) && defined(__AVX512BF16__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LLM_GEMM_BF16_DOT 1
#else
#define LLM_GEMM_BF16_DOT 0
#endif

namespace llm::blas {

/// How llm::blas::own multiplies bf16 operands (its third template argument).
/// - `automatic` (the default): bf16 A times bf16 B runs the AMX tile path (`tdpbf16ps`,
///   <llm/gemm/amx.hpp>) where the CPU and OS provide AMX (amx_bf16_available); else the
///   dot-product path (packed bf16 k-pairs, `vdpbf16ps`, fp32 accumulation) where it is
///   available (bf16_dot_available) and pays (bf16_dot_pays: not on Intel cores, whose
///   `vdpbf16ps` runs at half the fp32 FMA flop rate); otherwise, and whenever an operand is
///   fp32, both are widened to fp32 while packing (exact) and the fp32 micro-kernel runs.
/// - `widen`: always the widening path (one rounding per product, as the fp32 GEMM).
/// - `dot`: the dot-product path for bf16 x bf16 wherever it is available, fast or not (never
///   AMX).
/// - `amx`: the AMX tile path for bf16 x bf16 wherever it is available, else as automatic.
/// - `dot_round_fp32`: as automatic for bf16 x bf16 (AMX, else `vdpbf16ps` wherever
///   available), and also fp32 A times bf16 B (or bf16 A times fp32 B: a Linear
///   layer's fp32 activations with bf16 weights), the fp32 operand rounded to bf16 (nearest
///   even) while it is packed. That changes the result: each fp32 value loses its low 16
///   significand bits (relative error up to 2^-9), as mixed bf16 inference and training do;
///   never the default. fp32 subnormals may be read as zero (the packing's conversion
///   instruction), as the dot product reads bf16 subnormals.
/// The dot-product and AMX paths flush subnormal inputs and results to zero and add each
/// k-pair's two products with two roundings (see llm::blas::bf16_dot_available), so their
/// bits differ from the widening path's; both are within the accumulation bound of an fp32 sum. A GEMV
/// (m == 1 or n == 1) always widens (it is bound by memory, not arithmetic).
/// Example: `llm::gemm<llm::blas::own<llm::simd::default_backend, llm::blas::blocking_avx512, llm::blas::bf16_path::widen>>(c, a, b);`
enum class bf16_path {
    automatic,       ///< bf16 x bf16 by `vdpbf16ps` where available and faster, else widened
    widen,           ///< always widen bf16 to fp32 while packing (exact inputs, fp32 FMAs)
    dot,             ///< bf16 x bf16 by `vdpbf16ps` wherever available
    dot_round_fp32,  ///< AMX or `vdpbf16ps` wherever available, fp32 x bf16 too (rounded to bf16)
    amx,             ///< bf16 x bf16 by AMX tiles wherever available, else as automatic
};

/// True when this CPU executes AVX512_BF16 (CPUID leaf 7 sub-leaf 1, EAX bit 5) with
/// AVX-512 state enabled by the OS; false on other CPUs and non-x86 builds.
/// Example: `if (llm::blas::cpu_has_avx512_bf16()) { ... }`
inline bool cpu_has_avx512_bf16() noexcept {
#if LLM_GEMM_BF16_CPUID
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) {
        return false;  // (checks the OS's XSAVE of the zmm state too)
    }
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0 && (a & (1u << 5)) != 0;
#else
    return false;
#endif
}

/// True when the bf16 dot-product GEMM path can run here: compiled with AVX512_BF16
/// (`__AVX512BF16__`) and the CPU has it (checked once). A binary built for such a CPU and run
/// on one without it widens instead (no SIGILL).
/// Semantics of one `vdpbf16ps` lane (Intel SDM, VDPBF16PS pseudo-code): with x, y the two
/// bf16 pairs, acc = acc + x[1] * y[1], then acc = acc + x[0] * y[0], each product exact in
/// fp32 (8-bit significands), each addition rounded to nearest even, subnormal inputs read
/// as zero and subnormal results flushed to zero (DAZ, FTZ, whatever MXCSR says), no
/// exceptions. The GEMM packs pair q as (k = 2q, k = 2q + 1), so each output accumulates
/// k = 1, 0, 3, 2, ... one rounding per product; an odd k gets a zero pad in both operands.
/// Example: `bool fast = llm::blas::bf16_dot_available();`
inline bool bf16_dot_available() noexcept {
#if LLM_GEMM_BF16_DOT
    static const bool ok = cpu_has_avx512_bf16();
    return ok;
#else
    return false;
#endif
}

/// Whether the dot-product path beats widening on this CPU, as `automatic` decides: false on
/// Intel CPUs (vendor GenuineIntel), where `vdpbf16ps` measured at half the fp32 FMA flop
/// rate (Emerald Rapids, one core: 16 independent zmm chains 90 GFLOP per CPU-second against
/// 177 for `vfmadd231ps`, BENCHMARKS.md), true on other vendors' CPUs with AVX512_BF16 (AMD
/// Zen 4 and later; not measured by this project, which has had no such CPU with a bf16
/// build: pin `widen` or `dot` to decide by measurement).
/// Example: `bool pays = llm::blas::bf16_dot_pays();`
inline bool bf16_dot_pays() noexcept {
#if LLM_GEMM_BF16_CPUID
    static const bool pays = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (__get_cpuid(0, &a, &b, &c, &d) == 0) {
            return false;
        }
        // "GenuineIntel": ebx "Genu", edx "ineI", ecx "ntel".
        const bool intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu;
        return !intel;
    }();
    return pays && bf16_dot_available();
#else
    return false;
#endif
}

/// Whether llm::blas::own with this bf16_path and SIMD width runs the dot-product path for
/// A of type TA and B of type TB (float or llm::bf16, const or not) on this CPU: what a test
/// asks to know which path ran. Where llm::blas::bf16_amx_selected (<llm/gemm/amx.hpp>) is
/// true as well, the AMX path runs instead.
/// Example: `bool dp = llm::blas::bf16_dot_selected<llm::bf16, llm::bf16>(llm::blas::bf16_path::automatic, 16);`
template <class TA, class TB>
bool bf16_dot_selected(bf16_path path, std::size_t simd_width) noexcept {
    constexpr bool a16 = std::is_same_v<std::remove_const_t<TA>, llm::bf16>;
    constexpr bool b16 = std::is_same_v<std::remove_const_t<TB>, llm::bf16>;
    const bool wanted = (a16 && b16 && path != bf16_path::widen) || ((a16 || b16) && path == bf16_path::dot_round_fp32);
    if (!wanted || simd_width != 16 || !bf16_dot_available()) {
        return false;
    }
    return (path != bf16_path::automatic && path != bf16_path::amx) || bf16_dot_pays();
}

namespace detail {

/// The bf16 bits of an input element: a bf16's own, an fp32 rounded to nearest even.
template <class T>
LLM_FORCE_INLINE std::uint32_t bf16_bits(T x) noexcept {
    if constexpr (std::is_same_v<std::remove_const_t<T>, llm::bf16>) {
        return x.bits();
    } else {
        return llm::bf16(static_cast<float>(x)).bits();
    }
}

/// One packed k-pair word: element k = 2q in the low half, k = 2q + 1 in the high half.
template <class T>
LLM_FORCE_INLINE std::uint32_t bf16_pair(T lo, T hi) noexcept {
    return bf16_bits(lo) | (bf16_bits(hi) << 16);
}

/// The bf16 dot-product panels for gemm_blocked: the same panel order as the fp32 path, but
/// each step of a panel is a k-pair (32-bit words: two bf16), so every packed size counts
/// words = ceil(kc / 2) where the fp32 path counts kc floats, and the packed buffers (typed
/// float* by the driver) hold std::uint32_t words.
/// - A (mc x kc): panel r holds pair q of row i at [r * MR * kw + q * MR + i]; the kernel
///   broadcasts it as one 32-bit value. Rows past mc and the pad of an odd kc are zero.
/// - B (kc x nc): panel r holds pair q of column j at [r * NR * kw + q * NR + j], so one
///   zmm load is 16 columns x 2 k steps, `vdpbf16ps`'s second operand as is.
/// NR = NV * 16 (a zmm holds 16 fp32 lanes).
template <std::size_t MR, std::size_t NV>
struct bf16_panels {
    static constexpr std::size_t k_per_word = 2;  ///< k steps per packed 32-bit word
    static constexpr std::size_t NR = NV * 16;

    template <class T>
    static void pack_a(const strided_view<T, 2>& a, float* LLM_RESTRICT out_words) {
        std::uint32_t* out = reinterpret_cast<std::uint32_t*>(out_words);
        const std::size_t kc = a.extent(1);
        const std::size_t kw = (kc + 1) / 2;
        const std::size_t full = kc / 2;
        for (std::size_t r0 = 0; r0 < a.extent(0); r0 += MR) {
            const std::size_t rows = std::min(MR, a.extent(0) - r0);
            std::size_t q_done = 0;  // pairs packed for every row by the vector path
#if LLM_GEMM_BF16_DOT
            if constexpr (MR == 6 && std::is_same_v<std::remove_const_t<T>, float>) {
                if (rows == MR && a.stride(1) == 1) {
                    // fp32 rows (dot_round_fp32: a Linear layer's activations), 32 k steps of 6 rows
                    // at a time: `vcvtne2ps2bf16` rounds two vectors into 16 pair words per row,
                    // then one register interleave stores them (pair by pair this was 8% of a bf16
                    // model's 512-token prefill on two Zen 5 cores: A is packed once per column
                    // task). The instruction reads fp32 subnormals as zero where bf16(x) rounds
                    // them; `vdpbf16ps` reads bf16 subnormals as zero, so only |x| in
                    // [2^-126 (1 - 2^-9), 2^-126), which bf16(x) rounds up to 2^-126, differ.
                    for (; q_done + 16 <= full; q_done += 16) {
                        __m512 words[6];
                        for (std::size_t i = 0; i < 6; ++i) {
                            const float* src = a.ptr(r0 + i, 2 * q_done);
                            words[i] = std::bit_cast<__m512>(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src)));
                        }
                        interleave_rows6(words, reinterpret_cast<float*>(out + q_done * MR));
                    }
                }
            }
#endif
            for (std::size_t i = 0; i < rows; ++i) {
                const T* src = a.ptr(r0 + i, 0);
                const std::ptrdiff_t s = a.stride(1);
                if constexpr (std::is_same_v<std::remove_const_t<T>, llm::bf16>) {
                    if (s == 1) {
                        // A row-major bf16 row: each pair is already one 32-bit word in memory.
                        for (std::size_t q = 0; q < full; ++q) {
                            std::uint32_t w;
                            std::memcpy(&w, src + 2 * q, sizeof w);
                            out[q * MR + i] = w;
                        }
                    } else {
                        for (std::size_t q = 0; q < full; ++q) {
                            out[q * MR + i] = bf16_pair(src[2 * q * s], src[(2 * q + 1) * s]);
                        }
                    }
                } else {
                    for (std::size_t q = q_done; q < full; ++q) {
                        out[q * MR + i] = bf16_pair(src[2 * q * s], src[(2 * q + 1) * s]);
                    }
                }
                if (kc % 2 != 0) {
                    out[full * MR + i] = bf16_bits(src[(kc - 1) * s]);
                }
            }
            for (std::size_t i = rows; i < MR; ++i) {
                for (std::size_t q = 0; q < kw; ++q) {
                    out[q * MR + i] = 0;
                }
            }
            out += MR * kw;
        }
    }

    template <class T>
    static void pack_b(const strided_view<T, 2>& b, std::size_t panel_begin, std::size_t panel_end,
                       float* LLM_RESTRICT out_words) {
        std::uint32_t* out = reinterpret_cast<std::uint32_t*>(out_words);
        const std::size_t kc = b.extent(0);
        const std::size_t kw = (kc + 1) / 2;
        const std::size_t full = kc / 2;
        constexpr bool is16 = std::is_same_v<std::remove_const_t<T>, llm::bf16>;
        for (std::size_t r = panel_begin; r < panel_end; ++r) {
            const std::size_t c0 = r * NR;
            const std::size_t cols = std::min(NR, b.extent(1) - c0);
            std::uint32_t* dst = out + r * NR * kw;
            if (is16 && b.stride(0) == 1) {
                // B = W^T with W row-major (a Linear layer's weight): column j is contiguous in
                // k, so each pair is one 32-bit word. Blocks of 16 pairs, so each column is read
                // a 64-byte line at a time while the 16 x NR destination words stay in L1.
                constexpr std::size_t qb = 16;
                std::size_t q_done = 0;
#if defined(__x86_64__) && defined(__AVX512F__)
                if constexpr (NR % 16 == 0) {
                    // Whole panels: 16 columns x 16 pairs as one 16 x 16 transpose of words, about
                    // 4x fewer instructions than word by word (a bf16 model's 512-token prefill
                    // 2-6% faster on one Zen 5 core; the packing stays bound by its reads of W).
                    if (cols == NR) {
                        for (; q_done + qb <= full; q_done += qb) {
                            for (std::size_t j0 = 0; j0 < NR; j0 += 16) {
                                __m512 r[16];
                                for (std::size_t j = 0; j < 16; ++j) {
                                    const T* col = b.ptr(2 * q_done, c0 + j0 + j);
                                    __builtin_prefetch(reinterpret_cast<const char*>(col) + 128);
                                    r[j] = _mm512_castsi512_ps(_mm512_loadu_si512(col));
                                }
                                transpose_16x16(r);
                                for (std::size_t q = 0; q < qb; ++q) {
                                    _mm512_storeu_si512(dst + (q_done + q) * NR + j0, _mm512_castps_si512(r[q]));
                                }
                            }
                        }
                    }
                }
#endif
                for (std::size_t q0 = q_done; q0 < full; q0 += qb) {
                    const std::size_t qn = std::min(qb, full - q0);
                    for (std::size_t j = 0; j < cols; ++j) {
                        const T* src = b.ptr(2 * q0, c0 + j);
#if defined(__GNUC__) || defined(__clang__)
                        __builtin_prefetch(src + 4 * qb);
#endif
                        for (std::size_t q = 0; q < qn; ++q) {
                            std::uint32_t w;
                            std::memcpy(&w, src + 2 * q, sizeof w);
                            dst[(q0 + q) * NR + j] = w;
                        }
                    }
                }
            } else if (b.stride(1) == 1) {
                // Row-major B: two rows interleaved per pair, read contiguously.
                for (std::size_t q = 0; q < full; ++q) {
                    const T* lo = b.ptr(2 * q, c0);
                    const T* hi = b.ptr(2 * q + 1, c0);
                    std::uint32_t* d = dst + q * NR;
                    for (std::size_t j = 0; j < cols; ++j) {
                        d[j] = bf16_pair(lo[j], hi[j]);
                    }
                }
            } else {
                for (std::size_t j = 0; j < cols; ++j) {
                    for (std::size_t q = 0; q < full; ++q) {
                        dst[q * NR + j] = bf16_pair(b(2 * q, c0 + j), b(2 * q + 1, c0 + j));
                    }
                }
            }
            if (kc % 2 != 0) {
                for (std::size_t j = 0; j < cols; ++j) {
                    dst[full * NR + j] = bf16_bits(b(kc - 1, c0 + j));
                }
            }
            for (std::size_t q = 0; q < kw; ++q) {
                for (std::size_t j = cols; j < NR; ++j) {
                    dst[q * NR + j] = 0;
                }
            }
        }
    }

#if LLM_GEMM_BF16_DOT
    /// C[MR x NR] (row stride ldc, unit column stride) = alpha * Ap * Bp + beta * C over kw
    /// k-pairs; beta == 0 does not read C. MR x NV zmm accumulators, one `vdpbf16ps` per
    /// accumulator per pair (64 flops each).
    LLM_FORCE_INLINE static void micro(std::size_t kw, const float* LLM_RESTRICT a_words,
                                       const float* LLM_RESTRICT b_words, float* LLM_RESTRICT c, std::size_t ldc,
                                       float alpha, float beta) {
        micro_rows<MR>(kw, a_words, b_words, c, ldc, alpha, beta);
    }
    /// micro's first R rows only (the A panel still MR rows wide): a partial tile's work, each
    /// row's bits those of the whole tile's.
    template <std::size_t R>
    LLM_FORCE_INLINE static void micro_rows(std::size_t kw, const float* LLM_RESTRICT a_words,
                                            const float* LLM_RESTRICT b_words, float* LLM_RESTRICT c, std::size_t ldc,
                                            float alpha, float beta) {
        static_assert(R >= 1 && R <= MR);
        using simd::unroll;
        const std::uint32_t* a = reinterpret_cast<const std::uint32_t*>(a_words);
        const std::uint32_t* b = reinterpret_cast<const std::uint32_t*>(b_words);
        __m512 acc[R][NV];
        unroll<R>([&](auto i) { unroll<NV>([&](auto j) { acc[i][j] = _mm512_setzero_ps(); }); });
        unroll<R>([&](auto i) {
            __builtin_prefetch(c + i * ldc, 1, 3);
            __builtin_prefetch(c + i * ldc + NR - 1, 1, 3);
        });
        for (std::size_t q = 0; q < kw; ++q) {
            __m512bh bv[NV];
            unroll<NV>([&](auto j) { bv[j] = std::bit_cast<__m512bh>(_mm512_load_si512(b + j * 16)); });
            unroll<R>([&](auto i) {
                const __m512bh av = std::bit_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[i])));
                unroll<NV>([&](auto j) { acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]); });
            });
            a += MR;
            b += NR;
        }
        const __m512 va = _mm512_set1_ps(alpha);
        if (beta == 0.0f) {
            unroll<R>([&](auto i) {
                unroll<NV>([&](auto j) { _mm512_storeu_ps(c + i * ldc + j * 16, _mm512_mul_ps(va, acc[i][j])); });
            });
        } else {
            const __m512 vb = _mm512_set1_ps(beta);
            unroll<R>([&](auto i) {
                unroll<NV>([&](auto j) {
                    float* pc = c + i * ldc + j * 16;
                    _mm512_storeu_ps(pc, _mm512_fmadd_ps(va, acc[i][j], _mm512_mul_ps(vb, _mm512_loadu_ps(pc))));
                });
            });
        }
    }
#endif
};

}  // namespace detail

/// bf16 weights W [n, k] (row-major, y = x W^T) packed once into the `vdpbf16ps` GEMM's B panels
/// (B = W^T), so a product neither packs nor re-reads the row-major matrix (llama.cpp likewise
/// repacks weights at load): panels of 64 rows of W, each k-pair one 32-bit word (k = 2q in the
/// low half, 2q + 1 in the high half), word (row r, pair q) at (r / 64) * 64 * pairs() + q * 64 +
/// r % 64. Rows past n and the high half of an odd k's last pair are zero. A view: `words` is not
/// owned and must be 64-byte aligned (the micro-kernel's aligned loads). llm::blas::own::run_packed
/// multiplies by it, llm::quant::any_matrix holds it (weight_layout::bf16_panels).
/// Example: `std::vector<std::uint32_t> buf(llm::blas::bf16_weight_panels::word_count(n, k)); llm::blas::bf16_weight_panels::pack(w, n, k, buf.data());`
struct bf16_weight_panels {
    static constexpr std::size_t rows_per_panel = 64;  ///< rows of W per panel (the micro-tile's NR)
    const std::uint32_t* words = nullptr;              ///< the packed words, 64-byte aligned
    std::size_t n = 0;                                 ///< rows of W (outputs)
    std::size_t k = 0;                                 ///< columns of W (inputs)

    /// k-pairs per row: ceil(k / 2).
    [[nodiscard]] static constexpr std::size_t pairs(std::size_t k) noexcept { return k / 2 + k % 2; }
    /// Panels for n rows: ceil(n / 64).
    [[nodiscard]] static constexpr std::size_t panels(std::size_t n) noexcept { return (n + rows_per_panel - 1) / rows_per_panel; }
    /// Words of the packed n x k matrix (llm::error if the count overflows).
    [[nodiscard]] static std::size_t word_count(std::size_t n, std::size_t k) {
        return checked_mul(checked_mul(panels(n), rows_per_panel, "bf16_weight_panels", "panels * 64"), pairs(k),
                           "bf16_weight_panels", "the packed words");
    }
    /// The word of row r, pair q (unchecked).
    [[nodiscard]] std::uint32_t word(std::size_t r, std::size_t q) const noexcept {
        return words[(r / rows_per_panel) * rows_per_panel * pairs(k) + q * rows_per_panel + r % rows_per_panel];
    }
    /// Packs the row-major bf16 W [n, k] (row stride k) into out[0, word_count(n, k)): panels
    /// [panel_begin, panel_end) only (clamped to panels(n)), so threads may pack disjoint ranges.
    static void pack(const llm::bf16* w, std::size_t n, std::size_t k, std::uint32_t* out, std::size_t panel_begin = 0,
                     std::size_t panel_end = SIZE_MAX) {
        panel_end = std::min(panel_end, panels(n));
        if (k == 0 || panel_begin >= panel_end) {
            return;
        }
        using P = detail::bf16_panels<1, rows_per_panel / 16>;
        const strided_view<const llm::bf16, 2> wt(w, llm::dims<2>(k, n), llm::dims<2>(1, k));
        P::pack_b(wt, panel_begin, panel_end, reinterpret_cast<float*>(out));
    }
};

}  // namespace llm::blas
