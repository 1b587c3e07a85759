// SPDX-License-Identifier: Apache-2.0
// The AMX bf16 GEMM path of the own backend: bf16 k-pairs in tiles, `tdpbf16ps` on a 32 x 32 block of four fp32 tiles.
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/gemm/bf16_dot.hpp>
#include <llm/gemm/blocking.hpp>
#include <llm/gemm/matrix.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define LLM_GEMM_AMX 1
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#else
#define LLM_GEMM_AMX 0
#endif

namespace llm::blas {

namespace detail {

/// True when CPUID leaf 7 EDX has every bit of `edx_bits` and the OS saves the tile state (XCR0
/// bits 17 XTILECFG and 18 XTILEDATA); false on non-x86-64 builds.
inline bool amx_cpu_has(std::uint32_t edx_bits) noexcept {
#if LLM_GEMM_AMX
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) == 0 || (c & (1u << 27)) == 0) {
        return false;  // no OSXSAVE: xgetbv would fault
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0 || (d & edx_bits) != edx_bits) {
        return false;
    }
    std::uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    const std::uint64_t xcr0 = (static_cast<std::uint64_t>(hi) << 32) | lo;
    return (xcr0 & (3u << 17)) == (3u << 17);
#else
    (void)edx_bits;
    return false;
#endif
}

}  // namespace detail

/// True when this CPU has AMX tiles with bf16 (CPUID leaf 7: EDX bit 24 AMX-TILE, bit 22
/// AMX-BF16) and the OS saves the tile state (XCR0 bits 17 and 18); false elsewhere and on
/// non-x86-64 builds. Linux also wants a per-process permission before the first tile
/// instruction: amx_bf16_available asks for it.
/// Example: `if (llm::blas::cpu_has_amx_bf16()) { ... }`
inline bool cpu_has_amx_bf16() noexcept { return detail::amx_cpu_has((1u << 24) | (1u << 22)); }

/// True when this CPU has AMX tiles with int8 (EDX bits 24 AMX-TILE and 25 AMX-INT8) and the OS
/// saves the tile state, as cpu_has_amx_bf16.
/// Example: `if (llm::blas::cpu_has_amx_int8()) { ... }`
inline bool cpu_has_amx_int8() noexcept { return detail::amx_cpu_has((1u << 24) | (1u << 25)); }

namespace detail {

/// Linux's per-process permission for the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM,
/// feature 18 XTILEDATA; kernel 5.16 and later); without it the first tile instruction raises
/// SIGILL. Other systems: false (not supported here).
inline bool amx_request_permission() noexcept {
#if LLM_GEMM_AMX && defined(__linux__) && defined(SYS_arch_prctl)
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
    return false;
#endif
}

/// The tile palette of the AMX micro-kernel (ldtilecfg's 64-byte operand): palette 1, all
/// eight tiles 16 rows of 64 bytes. Tiles 0-3 hold C (C00, C01, C10, C11: 16 x 16 fp32 each),
/// 4-5 the two 16-row halves of A (16 rows x 16 k-pairs), 6-7 the two 16-column halves of B
/// (16 k-pairs x 16 columns, each a pair of bf16).
struct alignas(64) amx_config {
    std::uint8_t palette = 1;
    std::uint8_t start_row = 0;
    std::array<std::uint8_t, 14> reserved{};
    std::array<std::uint16_t, 16> colsb{64, 64, 64, 64, 64, 64, 64, 64};
    std::array<std::uint8_t, 16> rows{16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(amx_config) == 64, "ldtilecfg reads 64 bytes");

#if LLM_GEMM_AMX
// One tile instruction; AT&T and Intel operand orders (GCC's dialect alternatives), with a
// memory clobber so the compiler neither sinks the stores a load reads nor hoists the loads
// of what a store wrote.
#define LLM_AMX_LOAD(t, base, stride)                                                                    \
    __asm__ volatile("{tileloadd\t(%0,%1,1), %%tmm" #t "|tileloadd\t%%tmm" #t ", [%0+%1*1]}" ::"r"(base), \
                     "r"(static_cast<long>(stride))                                                        \
                     : "memory")
#define LLM_AMX_STORE(t, base, stride)                                                                    \
    __asm__ volatile("{tilestored\t%%tmm" #t ", (%0,%1,1)|tilestored\t[%0+%1*1], %%tmm" #t "}" ::"r"(base), \
                     "r"(static_cast<long>(stride))                                                         \
                     : "memory")
#define LLM_AMX_DP(op, d, a, b) __asm__ volatile("{" op "\t%%tmm" #b ", %%tmm" #a ", %%tmm" #d "|" op "\t%%tmm" #d ", %%tmm" #a ", %%tmm" #b "}" ::)
// One tile step of the 32 x 32 block: A halves to tiles 4, 5, B halves to 6, 7, C(i, j) += A_i B_j
// by `op` (the names a0, a1, a_stride, b0, b1, b_stride of the function it is used in).
#define LLM_AMX_STEP(op)              \
    LLM_AMX_LOAD(4, a0, a_stride);    \
    LLM_AMX_LOAD(6, b0, b_stride);    \
    LLM_AMX_LOAD(7, b1, b_stride);    \
    LLM_AMX_DP(op, 0, 4, 6);          \
    LLM_AMX_DP(op, 1, 4, 7);          \
    LLM_AMX_LOAD(5, a1, a_stride);    \
    LLM_AMX_DP(op, 2, 5, 6);          \
    LLM_AMX_DP(op, 3, 5, 7)
#endif

/// The AMX tiles themselves: the tile policy of amx_panels on a CPU with AMX (the caller has
/// checked amx_bf16_available; any call elsewhere raises SIGILL).
struct amx_hardware {
    static void configure() noexcept {
#if LLM_GEMM_AMX
        static const amx_config cfg{};
        __asm__ volatile("{ldtilecfg\t(%0)|ldtilecfg\t[%0]}" ::"r"(&cfg) : "memory");
#endif
    }
    static void release() noexcept {
#if LLM_GEMM_AMX
        __asm__ volatile("tilerelease" ::: "memory");
#endif
    }
    static void zero_c() noexcept {
#if LLM_GEMM_AMX
        __asm__ volatile("tilezero\t%%tmm0\n\ttilezero\t%%tmm1\n\ttilezero\t%%tmm2\n\ttilezero\t%%tmm3" ::);
#endif
    }
    /// C00, C01, C10, C11 from c (32 x 32 fp32 or int32, row stride ldc elements).
    template <class T>
    static void load_c([[maybe_unused]] const T* c, [[maybe_unused]] std::size_t ldc) noexcept {
        static_assert(sizeof(T) == 4, "a C tile holds 4-byte elements");
#if LLM_GEMM_AMX
        const std::size_t stride = ldc * sizeof(T);
        LLM_AMX_LOAD(0, c, stride);
        LLM_AMX_LOAD(1, c + 16, stride);
        LLM_AMX_LOAD(2, c + 16 * ldc, stride);
        LLM_AMX_LOAD(3, c + 16 * ldc + 16, stride);
#endif
    }
    /// A's two 16-row halves (64 bytes a row, row stride a_stride bytes) and B's two 16-column
    /// halves (16 rows, stride b_stride bytes), then C(i, j) += A_i B_j.
    static void dot_bf16([[maybe_unused]] const void* a0, [[maybe_unused]] const void* a1,
                         [[maybe_unused]] std::size_t a_stride, [[maybe_unused]] const void* b0,
                         [[maybe_unused]] const void* b1, [[maybe_unused]] std::size_t b_stride) noexcept {
#if LLM_GEMM_AMX
        LLM_AMX_STEP("tdpbf16ps");
#endif
    }
    /// As dot_bf16 with int8 tiles (`tdpbssd`: signed A times signed B, 64 k a row, int32 C).
    static void dot_i8([[maybe_unused]] const void* a0, [[maybe_unused]] const void* a1,
                       [[maybe_unused]] std::size_t a_stride, [[maybe_unused]] const void* b0,
                       [[maybe_unused]] const void* b1, [[maybe_unused]] std::size_t b_stride) noexcept {
#if LLM_GEMM_AMX
        LLM_AMX_STEP("tdpbssd");
#endif
    }
    /// C00, C01, C10, C11 to c (32 x 32 fp32 or int32, row stride ldc elements).
    template <class T>
    static void store_c([[maybe_unused]] T* c, [[maybe_unused]] std::size_t ldc) noexcept {
        static_assert(sizeof(T) == 4, "a C tile holds 4-byte elements");
#if LLM_GEMM_AMX
        const std::size_t stride = ldc * sizeof(T);
        LLM_AMX_STORE(0, c, stride);
        LLM_AMX_STORE(1, c + 16, stride);
        LLM_AMX_STORE(2, c + 16 * ldc, stride);
        LLM_AMX_STORE(3, c + 16 * ldc + 16, stride);
#endif
    }
};

#if LLM_GEMM_AMX
#undef LLM_AMX_LOAD
#undef LLM_AMX_STORE
#undef LLM_AMX_DP
#undef LLM_AMX_STEP
#endif

/// The same tiles in memory, one set per thread, each instruction as the Intel SDM's
/// pseudo-code states it: what the tests run on every CPU, so the packing, the addressing and
/// the tails of the AMX paths are checked where no AMX exists. TDPBF16PS: for each row m,
/// k-pair p, column n: c += a0 * b0, then c += a1 * b1 (fp32, each product exact, each sum
/// rounded to nearest even), bf16 subnormal inputs read as zero, subnormal results flushed.
/// TDPBSSD: c += the four products of signed bytes of each 4-byte group (int32).
struct amx_emulated {
    struct tiles {
        alignas(64) std::array<std::array<std::uint8_t, 16 * 64>, 8> t{};
    };
    static tiles& regs() noexcept {
        thread_local tiles r;
        return r;
    }
    static void configure() noexcept {}
    static void release() noexcept { regs() = tiles{}; }
    static void zero_c() noexcept {
        for (int i = 0; i < 4; ++i) {
            regs().t[static_cast<std::size_t>(i)].fill(0);
        }
    }
    static void load(int t, const void* base, std::size_t stride) noexcept {
        auto& dst = regs().t[static_cast<std::size_t>(t)];
        for (std::size_t r = 0; r < 16; ++r) {
            std::memcpy(dst.data() + 64 * r, static_cast<const std::uint8_t*>(base) + r * stride, 64);
        }
    }
    static float flush(float x) noexcept { return std::fabs(x) < 0x1p-126f ? 0.0f * x : x; }
    static float bf16_at(const std::array<std::uint8_t, 16 * 64>& t, std::size_t row, std::size_t e) noexcept {
        std::uint16_t h;
        std::memcpy(&h, t.data() + 64 * row + 2 * e, 2);
        return flush(std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16));
    }
    static void dp(int d, int a, int b) noexcept {
        auto& r = regs().t;
        const auto& ta = r[static_cast<std::size_t>(a)];
        const auto& tb = r[static_cast<std::size_t>(b)];
        auto& tc = r[static_cast<std::size_t>(d)];
        for (std::size_t m = 0; m < 16; ++m) {
            for (std::size_t n = 0; n < 16; ++n) {
                float c;
                std::memcpy(&c, tc.data() + 64 * m + 4 * n, 4);
                for (std::size_t p = 0; p < 16; ++p) {
                    c = flush(c + bf16_at(ta, m, 2 * p) * bf16_at(tb, p, 2 * n));
                    c = flush(c + bf16_at(ta, m, 2 * p + 1) * bf16_at(tb, p, 2 * n + 1));
                }
                std::memcpy(tc.data() + 64 * m + 4 * n, &c, 4);
            }
        }
    }
    /// TDPBSSD: for each row m, 4-byte group p, column n: c += the four products of signed bytes
    /// (int32, wrapping).
    static void dp_i8(int d, int a, int b) noexcept {
        auto& r = regs().t;
        const auto& ta = r[static_cast<std::size_t>(a)];
        const auto& tb = r[static_cast<std::size_t>(b)];
        auto& tc = r[static_cast<std::size_t>(d)];
        for (std::size_t m = 0; m < 16; ++m) {
            for (std::size_t n = 0; n < 16; ++n) {
                std::uint32_t c;
                std::memcpy(&c, tc.data() + 64 * m + 4 * n, 4);
                for (std::size_t p = 0; p < 16; ++p) {
                    for (std::size_t t = 0; t < 4; ++t) {
                        const auto x = static_cast<std::int8_t>(ta[64 * m + 4 * p + t]);
                        const auto y = static_cast<std::int8_t>(tb[64 * p + 4 * n + t]);
                        c += static_cast<std::uint32_t>(static_cast<std::int32_t>(x) * y);
                    }
                }
                std::memcpy(tc.data() + 64 * m + 4 * n, &c, 4);
            }
        }
    }
    template <class Dp>
    static void dot(const void* a0, const void* a1, std::size_t a_stride, const void* b0, const void* b1,
                    std::size_t b_stride, Dp dp_one) noexcept {
        load(4, a0, a_stride);
        load(5, a1, a_stride);
        load(6, b0, b_stride);
        load(7, b1, b_stride);
        dp_one(0, 4, 6);
        dp_one(1, 4, 7);
        dp_one(2, 5, 6);
        dp_one(3, 5, 7);
    }
    static void dot_bf16(const void* a0, const void* a1, std::size_t a_stride, const void* b0, const void* b1,
                         std::size_t b_stride) noexcept {
        dot(a0, a1, a_stride, b0, b1, b_stride, dp);
    }
    static void dot_i8(const void* a0, const void* a1, std::size_t a_stride, const void* b0, const void* b1,
                       std::size_t b_stride) noexcept {
        dot(a0, a1, a_stride, b0, b1, b_stride, dp_i8);
    }
    template <class T>
    static void load_c(const T* c, std::size_t ldc) noexcept {
        for (int t = 0; t < 4; ++t) {
            load(t, c + (t / 2) * 16 * ldc + (t % 2) * 16, ldc * sizeof(T));
        }
    }
    template <class T>
    static void store_c(T* c, std::size_t ldc) noexcept {
        for (int t = 0; t < 4; ++t) {
            T* base = c + (t / 2) * 16 * ldc + (t % 2) * 16;
            for (std::size_t r = 0; r < 16; ++r) {
                std::memcpy(base + r * ldc, regs().t[static_cast<std::size_t>(t)].data() + 64 * r, 64);
            }
        }
    }
};

/// The AMX panels for gemm_blocked (the interface of fp32_panels / bf16_panels): a 32 x 32
/// micro-tile of four fp32 tiles, k in steps of 16 k-pairs (one tile's 64-byte rows), Tiles
/// the tile policy (amx_hardware, or amx_emulated in tests). Packed words are k-pairs, as
/// bf16_panels's (element k = 2q in the low half).
/// - A (mc x kc): a panel of 32 rows holds its full 16-pair steps one after the other, each
///   32 rows of 16 words (a tile row is 64 contiguous bytes: the two A tiles of a step are
///   rows 0-15 and 16-31, stride 64 bytes); the last kw % 16 pairs follow as 32 rows of that
///   many words (copied into a zero-padded tile by the micro-kernel). Rows past mc are zero.
/// - B (kc x nc): bf16_panels's layout with NR = 32, pair q of column j at q * 32 + j, which
///   is AMX's B layout as is: the two B tiles of a step start 16 columns apart, rows (pairs)
///   128 bytes apart.
template <class Tiles>
struct amx_panels {
    static constexpr std::size_t k_per_word = 2;  ///< k steps per packed 32-bit word
    static constexpr std::size_t MR = 32;         ///< rows of the micro-tile (two A tiles)
    static constexpr std::size_t NR = 32;         ///< columns of the micro-tile (two B tiles)
    static constexpr std::size_t step = 16;       ///< k-pairs per tile step

    template <class T>
    static void pack_a(const strided_view<T, 2>& a, float* LLM_RESTRICT out_words) {
        std::uint32_t* out = reinterpret_cast<std::uint32_t*>(out_words);
        const std::size_t kc = a.extent(1);
        const std::size_t kw = (kc + 1) / 2, full = kc / 2;
        const std::size_t steps = kw / step, tail = kw % step;
        // The word of pair q of row i inside a panel.
        const auto at = [&](std::size_t i, std::size_t q) {
            return q < steps * step ? (q / step) * step * MR + i * step + q % step
                                    : steps * step * MR + i * tail + (q - steps * step);
        };
        for (std::size_t r0 = 0; r0 < a.extent(0); r0 += MR) {
            const std::size_t rows = std::min(MR, a.extent(0) - r0);
            for (std::size_t i = 0; i < rows; ++i) {
                const T* src = a.ptr(r0 + i, 0);
                const std::ptrdiff_t s = a.stride(1);
                for (std::size_t q = 0; q < full; ++q) {
                    out[at(i, q)] = bf16_pair(src[2 * q * s], src[(2 * q + 1) * s]);
                }
                if (kc % 2 != 0) {
                    out[at(i, full)] = bf16_bits(src[(kc - 1) * s]);
                }
            }
            for (std::size_t i = rows; i < MR; ++i) {
                for (std::size_t q = 0; q < kw; ++q) {
                    out[at(i, q)] = 0;
                }
            }
            out += MR * kw;
        }
    }

    template <class T>
    static void pack_b(const strided_view<T, 2>& b, std::size_t panel_begin, std::size_t panel_end,
                       float* LLM_RESTRICT out_words) {
        bf16_panels<MR, 2>::pack_b(b, panel_begin, panel_end, out_words);
    }

    /// C[32 x 32] (row stride ldc) = alpha * Ap * Bp + beta * C over kw k-pairs; beta == 0
    /// does not read C. With alpha 1 and beta 0 or 1 (every KC block of llm::gemm's C = A B)
    /// the C tiles start from zero or from C and go straight back to C; other alpha and beta
    /// pass through a 32 x 32 buffer.
    static void micro(std::size_t kw, const float* LLM_RESTRICT a_words, const float* LLM_RESTRICT b_words,
                      float* LLM_RESTRICT c, std::size_t ldc, float alpha, float beta) {
        const std::uint32_t* a = reinterpret_cast<const std::uint32_t*>(a_words);
        const std::uint32_t* b = reinterpret_cast<const std::uint32_t*>(b_words);
        const std::size_t steps = kw / step, tail = kw % step;
        constexpr std::size_t a_row = step * sizeof(std::uint32_t), b_row = NR * sizeof(std::uint32_t);
        const bool direct = alpha == 1.0f && (beta == 0.0f || beta == 1.0f);
        Tiles::configure();
        if (direct && beta == 1.0f) {
            Tiles::load_c(c, ldc);
        } else {
            Tiles::zero_c();
        }
        for (std::size_t s = 0; s < steps; ++s) {
            const std::uint32_t* as = a + s * step * MR;
            const std::uint32_t* bs = b + s * step * NR;
            Tiles::dot_bf16(as, as + 16 * step, a_row, bs, bs + 16, b_row);
        }
        if (tail != 0) {
            // The last pairs through zero-padded tiles: pairs past kw add 0 * 0.
            alignas(64) std::uint32_t at[MR * step] = {};
            alignas(64) std::uint32_t bt[step * NR] = {};
            const std::uint32_t* as = a + steps * step * MR;
            const std::uint32_t* bs = b + steps * step * NR;
            for (std::size_t i = 0; i < MR; ++i) {
                std::memcpy(at + i * step, as + i * tail, tail * sizeof(std::uint32_t));
            }
            std::memcpy(bt, bs, tail * NR * sizeof(std::uint32_t));
            Tiles::dot_bf16(at, at + 16 * step, a_row, bt, bt + 16, b_row);
        }
        if (direct) {
            Tiles::store_c(c, ldc);
            Tiles::release();
            return;
        }
        alignas(64) float acc[MR * NR];
        Tiles::store_c(acc, NR);
        Tiles::release();
        for (std::size_t i = 0; i < MR; ++i) {
            float* ci = c + i * ldc;
            const float* ai = acc + i * NR;
            if (beta == 0.0f) {
                for (std::size_t j = 0; j < NR; ++j) {
                    ci[j] = alpha * ai[j];
                }
            } else {
                for (std::size_t j = 0; j < NR; ++j) {
                    ci[j] = alpha * ai[j] + beta * ci[j];
                }
            }
        }
    }
};

/// int8 x int8 -> int32 on the tiles (`tdpbssd`): the packing and the 32 x 32 micro-kernel of
/// C = A B^T for A (m x k) and B (n x k) int8 row-major, k zero-padded to whole tile steps of 64.
/// - A: 32 rows of kp bytes (a tile row is 64 of them, rows kp apart), rows past m zero.
/// - B: per 64-k step two tiles (B rows 0-15, 16-31), each 16 rows of 4-k groups x 16 B rows x 4
///   bytes (AMX's B layout), 1 KiB each; rows past n zero.
template <class Tiles>
struct amx_i8 {
    static constexpr std::size_t step = 64;  ///< k per tile step
    /// k rounded up to whole tile steps.
    static std::size_t padded_k(std::size_t k) noexcept { return (k + step - 1) / step * step; }
    /// Rows [i0, i0 + 32) of a (m x k, row stride k) into out (32 x padded_k(k) bytes).
    static void pack_a(const std::int8_t* a, std::size_t m, std::size_t k, std::size_t i0, std::int8_t* out) noexcept {
        const std::size_t kp = padded_k(k);
        std::memset(out, 0, 32 * kp);
        for (std::size_t i = i0; i < std::min(m, i0 + 32); ++i) {
            std::memcpy(out + (i - i0) * kp, a + i * k, k);
        }
    }
    /// Rows [n0, n0 + 32) of b (n x k, row stride k) into out (32 x padded_k(k) bytes).
    static void pack_b(const std::int8_t* b, std::size_t n, std::size_t k, std::size_t n0, std::int8_t* out) noexcept {
        const std::size_t kp = padded_k(k);
        std::memset(out, 0, 32 * kp);
        for (std::size_t j = n0; j < std::min(n, n0 + 32); ++j) {
            const std::size_t h = (j - n0) / 16, col = (j - n0) % 16;
            for (std::size_t p = 0; p < k; ++p) {
                const std::size_t s = p / step, r = (p % step) / 4, t = p % 4;
                out[s * 2048 + h * 1024 + r * 64 + col * 4 + t] = b[j * k + p];
            }
        }
    }
    /// C (32 x 32 int32, row stride ldc) = Ap Bp^T over kp = padded_k(k) bytes.
    static void micro(std::size_t kp, const std::int8_t* a, const std::int8_t* b, std::int32_t* c, std::size_t ldc) noexcept {
        Tiles::configure();
        Tiles::zero_c();
        for (std::size_t s = 0; s < kp / step; ++s) {
            const std::int8_t* bs = b + s * 2048;
            Tiles::dot_i8(a + s * step, a + 16 * kp + s * step, kp, bs, bs + 1024, 64);
        }
        Tiles::store_c(c, ldc);
        Tiles::release();
    }
};

/// One 32 x 32 x 64 product on the hardware tiles against the emulated ones, with small
/// integers (every sum exact in any order, so the two agree bit for bit): catches a CPU or
/// kernel that reports AMX but computes something else before any GEMM relies on it.
inline bool amx_self_check() {
    alignas(64) std::uint32_t a[32 * 16 * 2], b[16 * 32 * 2];
    for (std::size_t i = 0; i < std::size(a); ++i) {
        a[i] = bf16_pair(llm::bf16(static_cast<float>(static_cast<int>(i * 7 % 9) - 4)),
                         llm::bf16(static_cast<float>(static_cast<int>(i * 5 % 7) - 3)));
    }
    for (std::size_t i = 0; i < std::size(b); ++i) {
        b[i] = bf16_pair(llm::bf16(static_cast<float>(static_cast<int>(i * 3 % 5) - 2)),
                         llm::bf16(static_cast<float>(static_cast<int>(i * 11 % 13) - 6)));
    }
    alignas(64) float hw[32 * 32], em[32 * 32];
    amx_panels<amx_hardware>::micro(32, reinterpret_cast<const float*>(a), reinterpret_cast<const float*>(b), hw, 32,
                                    1.0f, 0.0f);
    amx_panels<amx_emulated>::micro(32, reinterpret_cast<const float*>(a), reinterpret_cast<const float*>(b), em, 32,
                                    1.0f, 0.0f);
    return std::memcmp(hw, em, sizeof hw) == 0;
}

/// One 32 x 32 x 192 int8 product on the hardware tiles against the emulated ones (exact int32
/// sums, so bit for bit).
inline bool amx_i8_self_check() {
    std::int8_t a[32 * 192], b[32 * 192];
    for (std::size_t i = 0; i < std::size(a); ++i) {
        a[i] = static_cast<std::int8_t>(static_cast<int>(i * 37 % 255) - 127);
        b[i] = static_cast<std::int8_t>(static_cast<int>(i * 91 % 253) - 126);
    }
    alignas(64) std::int8_t ap[32 * 192], bp[32 * 192];
    amx_i8<amx_emulated>::pack_a(a, 32, 192, 0, ap);
    amx_i8<amx_emulated>::pack_b(b, 32, 192, 0, bp);
    alignas(64) std::int32_t hw[32 * 32], em[32 * 32];
    amx_i8<amx_hardware>::micro(192, ap, bp, hw, 32);
    amx_i8<amx_emulated>::micro(192, ap, bp, em, 32);
    return std::memcmp(hw, em, sizeof hw) == 0;
}

}  // namespace detail

/// True when the int8 tile paths (llm::quant::gemm_w8a8 from 16 activation rows) can run here:
/// an x86-64 build, a CPU with AMX-TILE and AMX-INT8 whose OS saves the tile state
/// (cpu_has_amx_int8), Linux's permission for the tile data, and a first int8 tile product equal
/// to the emulated one. Checked once (the first call asks for the permission).
/// Example: `bool amx8 = llm::blas::amx_int8_available();`
inline bool amx_int8_available() noexcept {
    static const bool ok = cpu_has_amx_int8() && detail::amx_request_permission() && detail::amx_i8_self_check();
    return ok;
}

/// True when the AMX bf16 GEMM path can run here: an x86-64 build (GCC or Clang), a CPU with
/// AMX-TILE and AMX-BF16 whose OS saves the tile state (cpu_has_amx_bf16), Linux granting
/// this process the tile data (arch_prctl), and a first 32 x 32 x 64 tile product equal to the
/// emulated one. Checked once; the first call asks the kernel for the permission, so make it
/// (llm::gemm does) before other threads run tile code.
/// Example: `bool amx = llm::blas::amx_bf16_available();`
inline bool amx_bf16_available() noexcept {
    static const bool ok = cpu_has_amx_bf16() && detail::amx_request_permission() && detail::amx_self_check();
    return ok;
}

/// The blocking of the AMX path: a 32 x 32 micro-tile (two A tiles by two B tiles; nr_vectors
/// 2 with 16-lane vectors). KC = 256 k-pairs (512 k steps): the A micro-panel (32 KiB) and a
/// B micro-panel (32 KiB) stream from L2 through the tiles; MC = 256 rows keep the packed A
/// block (256 KiB) in L2 beside the B panels in use; NC = 4096 as the fp32 blocking. Textbook
/// sizes from the tile shapes: not measured, the project has had no AMX CPU to tune on.
/// Example: `llm::blas::own<llm::simd::default_backend, llm::blas::blocking_avx512, llm::blas::bf16_path::amx>`
struct blocking_amx : fixed_blocking<32, 2, 256, 256, 4096> {};

/// Whether llm::blas::own with this bf16_path and SIMD width runs the AMX path for A of type
/// TA and B of type TB (float or llm::bf16, const or not) on this CPU: bf16 x bf16 with path
/// automatic, amx or dot_round_fp32 (and fp32 x bf16 with dot_round_fp32), 16-lane vectors
/// (every AMX CPU has AVX-512), and amx_bf16_available.
/// Example: `bool amx = llm::blas::bf16_amx_selected<llm::bf16, llm::bf16>(llm::blas::bf16_path::automatic, 16);`
template <class TA, class TB>
bool bf16_amx_selected(bf16_path path, std::size_t simd_width) noexcept {
    constexpr bool a16 = std::is_same_v<std::remove_const_t<TA>, llm::bf16>;
    constexpr bool b16 = std::is_same_v<std::remove_const_t<TB>, llm::bf16>;
    const bool both = a16 && b16 && (path == bf16_path::automatic || path == bf16_path::amx);
    const bool mixed = (a16 || b16) && path == bf16_path::dot_round_fp32;
    return (both || mixed) && simd_width == 16 && amx_bf16_available();
}

}  // namespace llm::blas
