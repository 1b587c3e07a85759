// SPDX-License-Identifier: Apache-2.0
// The CPU attention kernels: tiled FlashAttention-2 forward and backward over the SIMD facade and llm::parallel.
#pragma once

#include <llm/attention/detail/problem.hpp>
#include <llm/attention/mask.hpp>
#include <llm/attention/options.hpp>
#include <llm/attention/tile.hpp>
#include <llm/config.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/simd/math.hpp>
#include <llm/simd/simd.hpp>
#include <llm/simd/unroll.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>

#if (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define LLM_ATTENTION_NOINLINE __attribute__((noinline))
#else
#define LLM_ATTENTION_NOINLINE
#endif

namespace llm::attention::detail {

/// Row padding of the tiles: every tile's row count is padded to a multiple of 4 so kernels
/// never branch on row edges (tile_gemm covers it with register blocks of 6 rows, then 4).
inline constexpr std::size_t mr = 4;
/// Vectors per register block along the columns in decode.hpp's P V loop.
inline constexpr std::size_t nv = 4;

/// Growth of a row's maximum below which the forward keeps the stale maximum (see
/// lazy_rescale), in the forward's log2 units: 2^8 = 256 bounds the probabilities in fp32 with
/// 2^-24 relative rounding unchanged, and skips the accumulator rescale in most tiles.
inline constexpr float lazy_margin = 8.0f;

/// log2(e) and ln(2): the forward scores in log2 units (the softmax scale times log2 e folded
/// into the packed queries), so every probability is one simd::exp2 (no range reduction).
inline constexpr float log2e = 1.4426950408889634f;
inline constexpr float ln2 = 0.6931471805599453f;

/// tile.hpp's lazy_rescale for a state kept in log2 units: the running maximum is kept while
/// the tile's maximum exceeds it by at most `margin`, else it moves and alpha = 2^(m_old -
/// m_new) (0 on the first finite tile, 1 while every score is -inf).
inline float lazy_rescale2(softmax_state& s, float tile_max, float margin) noexcept {
    if (s.m != -std::numeric_limits<float>::infinity() && tile_max <= s.m + margin) {
        return 1.0f;
    }
    const float m_new = std::max(tile_max, s.m);
    if (m_new == -std::numeric_limits<float>::infinity()) {
        return 1.0f;
    }
    const float alpha = std::exp2(s.m - m_new);
    s.m = m_new;
    return alpha;
}

/// P = 2^(S - m) in place over one score row of n (a multiple of W) entries, returning its sum:
/// simd::exp2 (relative error < 1.6e-7), with lanes below -126 (masked scores, -inf) set to
/// exactly 0 where exp2 would clamp them to 2^-126. Two sum accumulators hide the add latency.
template <simd::backend S>
LLM_FORCE_INLINE float row_exp2_sum(float* LLM_RESTRICT x, std::size_t n, float m) noexcept {
    constexpr std::size_t W = S::width;
    const auto mv = S::set1(m), lo = S::set1(-126.0f), zero = S::zero();
    auto s0 = S::zero(), s1 = S::zero();
    std::size_t c = 0;
    for (; c + 2 * W <= n; c += 2 * W) {
        const auto y0 = S::sub(S::loadu(x + c), mv), y1 = S::sub(S::loadu(x + c + W), mv);
        const auto p0 = S::select_lt(y0, lo, zero, simd::exp2<S>(y0));
        const auto p1 = S::select_lt(y1, lo, zero, simd::exp2<S>(y1));
        S::storeu(x + c, p0);
        S::storeu(x + c + W, p1);
        s0 = S::add(s0, p0);
        s1 = S::add(s1, p1);
    }
    for (; c < n; c += W) {
        const auto y = S::sub(S::loadu(x + c), mv);
        const auto p = S::select_lt(y, lo, zero, simd::exp2<S>(y));
        S::storeu(x + c, p);
        s0 = S::add(s0, p);
    }
    return S::reduce_add(S::add(s0, s1));
}

/// Natural-log log-sum-exp of a state kept in log2 units: (m + log2 l) ln 2; -inf for a row
/// that saw no key.
inline float row_lse2(const softmax_state& s) noexcept {
    return s.l > 0.0f ? (s.m + std::log2(s.l)) * ln2 : -std::numeric_limits<float>::infinity();
}

constexpr std::size_t round_up(std::size_t x, std::size_t m) noexcept { return (x + m - 1) / m * m; }

using simd::unroll;  // the register-blocked loops below and decode.hpp's

/// Register-blocked C[MR x NV*W] (= or +=) A[MR x K] * B[K x NV*W]. A is read by broadcasts at
/// a[r * ars + k * acs] (any strides, so P^T and dS^T are read in place), B by unaligned vector
/// loads from rows of stride ldb, C has row stride ldc. The MR x NV accumulators stay in
/// registers for the whole K loop.
/// Out of line (GCC): inlined four times (6 and 4 rows, 4 and 1 vectors) into tile_gemm, GCC
/// 12 kept the AVX-512 accumulator array on the stack and stored all 24 accumulators on every
/// k step (perf annotate: tile_gemm store-bound at 45% of the FMA ceiling); as its own
/// function the array stays in registers. One call per K loop (64-128 steps) costs nothing.
template <simd::backend S, std::size_t MR, std::size_t NV, bool Accumulate>
LLM_ATTENTION_NOINLINE void micro_kernel(std::size_t K, const float* LLM_RESTRICT a, std::size_t ars, std::size_t acs,
                                   const float* LLM_RESTRICT b, std::size_t ldb, float* LLM_RESTRICT c, std::size_t ldc) {
    using f32 = typename S::f32;
    constexpr std::size_t W = S::width;
    f32 acc[MR][NV];
    unroll<MR>([&](auto r) {
        unroll<NV>([&](auto v) {
            if constexpr (Accumulate) {
                acc[r][v] = S::loadu(c + r * ldc + v * W);
            } else {
                acc[r][v] = S::zero();
            }
        });
    });
#if !defined(__CUDACC__)  // nvcc's front end rejects GCC pragmas (this header reaches .cu files)
#pragma GCC unroll 4
#endif
    for (std::size_t k = 0; k < K; ++k) {
        f32 bv[NV];
        unroll<NV>([&](auto v) { bv[v] = S::loadu(b + k * ldb + v * W); });
        unroll<MR>([&](auto r) {
            const f32 ar = S::set1(a[r * ars + k * acs]);
            unroll<NV>([&](auto v) { acc[r][v] = S::fma(ar, bv[v], acc[r][v]); });
        });
    }
    unroll<MR>([&](auto r) { unroll<NV>([&](auto v) { S::storeu(c + r * ldc + v * W, acc[r][v]); }); });
}

/// Register block of tile_gemm for a backend: MR rows x NV vectors of accumulators, sized to
/// the vector registers (16 on AVX2 and SSE, 32 with AVX-512): MR * NV accumulators, NV
/// vectors of B and one broadcast must fit, or the accumulators spill to the stack inside the
/// K loop. AVX2: 6 x 2 (12 + 2 + 1 = 15 of 16, the GEMM's 6 x 16 tile); AVX-512: 6 x 4 (24 +
/// 4 + 1 = 29 of 32). 12 (24) independent FMA chains cover the FMA latency on two pipes
/// (4-5 cycles x 2).
template <simd::backend S>
struct tile_block {
    static constexpr std::size_t rows = 6;
    static constexpr std::size_t vectors = S::width >= 16 ? 4 : 2;
};

/// What tile_gemm's `range` restricts: nothing, the columns of C, or the K index.
inline constexpr int limit_none = 0, limit_columns = 1, limit_depth = 2;

/// C[M x N] (= or +=) A[M x K] * B[K x N] for the small tiles of attention (M a multiple of mr,
/// N a multiple of the SIMD width: callers pad). Strides as in micro_kernel. Register blocks of
/// tile_block<S> (rows of 6, then of 4 to finish M); the loop over column panels is outside
/// the loop over rows, so one K x (NV W) panel of B stays in L1 while every row block uses it
/// (the GEMM's order: the B micro-panel resident in L1).
///
/// Limit: what `range` restricts (limit_none: nothing, the default). range(i, i1) returns the
/// half-open span [c0, c1) of the columns (limit_columns) or of the K index (limit_depth) that
/// rows [i, i1) need, so the masked corner of a tile on a causal diagonal costs nothing:
/// limit_columns skips the column panels outside it (those C entries are left as they were:
/// the caller masks them), limit_depth runs K over [c0, c1) only (the A entries outside are 0).
/// Kept out of line (GCC): inlined into the forward's task loop, the limit_columns /
/// limit_depth variants exhausted GCC's inlining budget there and the row unroll of
/// micro_kernel's K loop became a call per k with the accumulators in memory (seen with perf
/// on the causal diagonal tiles); out of line every variant compiles like the full one.
template <simd::backend S, bool Accumulate, int Limit = 0, class Range = std::nullptr_t>
LLM_ATTENTION_NOINLINE void tile_gemm(std::size_t M, std::size_t N, std::size_t K, const float* a, std::size_t ars, std::size_t acs,
               const float* b, std::size_t ldb, float* c, std::size_t ldc, Range&& range = nullptr) {
    constexpr std::size_t W = S::width;
    constexpr std::size_t MR = tile_block<S>::rows, NV = tile_block<S>::vectors;
    LLM_ASSERT(M % mr == 0 && N % W == 0);
    // Rows [0, m6) in blocks of MR, the rest (a multiple of mr) in blocks of mr.
    std::size_t m6 = M / MR * MR;
    while ((M - m6) % mr != 0) {
        m6 -= MR;
    }
    const auto block = [&]<std::size_t R, std::size_t V>(std::size_t i, std::size_t j) {
        if constexpr (Limit == limit_none) {
            micro_kernel<S, R, V, Accumulate>(K, a + i * ars, ars, acs, b + j, ldb, c + i * ldc + j, ldc);
        } else {
            const auto [c0, c1] = range(i, i + R);
            if constexpr (Limit == limit_columns) {
                if (c0 < j + V * W && j < c1) {
                    micro_kernel<S, R, V, Accumulate>(K, a + i * ars, ars, acs, b + j, ldb, c + i * ldc + j, ldc);
                }
            } else if (c0 < c1) {
                micro_kernel<S, R, V, Accumulate>(c1 - c0, a + i * ars + c0 * acs, ars, acs, b + c0 * ldb + j, ldb,
                                                  c + i * ldc + j, ldc);
            }
        }
    };
    const auto panel = [&]<std::size_t V>(std::size_t j) {
        std::size_t i = 0;
        for (; i < m6; i += MR) {
            block.template operator()<MR, V>(i, j);
        }
        for (; i < M; i += mr) {
            block.template operator()<mr, V>(i, j);
        }
    };
    std::size_t j = 0;
    for (; j + NV * W <= N; j += NV * W) {
        panel.template operator()<NV>(j);
    }
    for (; j < N; j += W) {
        panel.template operator()<1>(j);
    }
}

/// The compile-time sizes of the CPU forward and backward: SIMD width W, query tile BQ and key
/// tile BK, checked once (BK a multiple of W and of mr, so score rows need no edge code).
template <simd::backend S, tile_policy Tiles>
struct cpu_tiles {
    static constexpr std::size_t W = S::width;
    static constexpr std::size_t BQ = Tiles::q;
    static constexpr std::size_t BK = Tiles::k;
    static_assert(BK % W == 0 && BK % mr == 0, "llm::attention: the key tile must be a multiple of the SIMD width and of 4");
    /// Row stride of a packed K^T (V^T) tile: BK plus one cache line. With a stride of BK floats
    /// (256 bytes for 64) the K rows of one micro-panel of tile_gemm fall in 1/4 of the L1 sets
    /// and fill them exactly (8 ways), so Q and the scores evict them; one more line per row
    /// spreads the rows over every set.
    static constexpr std::size_t LDK = BK + 16;
    /// Row stride of packed K (V) rows of Dp floats, one cache line more for the same reason.
    static constexpr std::size_t ldv(std::size_t Dp) noexcept { return Dp + 16; }
};

/// softcap(x, cap) = cap * tanh(x / cap) lane-wise, with the shared llm::simd::tanh (one fast
/// exp, saturating to exactly +-cap; absolute error <= 2.5e-7 cap, far below the score's own
/// rounding). x / cap is taken as x * (1 / cap); tanh doubles it exactly.
template <simd::backend S>
LLM_FORCE_INLINE typename S::f32 softcap_vec(typename S::f32 x, float cap) {
    return S::mul(S::set1(cap), simd::tanh<S>(S::mul(x, S::set1(1.0f / cap))));
}

/// Sets the entries of one score row that the mask hides (or that lie past the last key) to -inf.
/// The built-in masks (detail::band: no_mask, causal, sliding_window) show row i exactly the
/// columns mask.cols(i, i + 1), one interval: two fills instead of a test per entry (the same
/// entries become -inf, on every diagonal tile of a causal forward and backward). Other
/// masks are tested entry by entry.
template <class Mask>
void mask_row(float* srow, std::size_t bk, std::int64_t i, std::int64_t j0, std::int64_t cols, std::int64_t lq,
              std::int64_t lk, const Mask& mask) {
    if constexpr (std::is_base_of_v<band, Mask>) {
        const index_range cr = mask.cols(i, i + 1, lq, lk);
        const auto clip = [&](std::int64_t x) { return static_cast<std::size_t>(std::clamp<std::int64_t>(x - j0, 0, cols)); };
        const std::size_t lo = clip(cr.lo), hi = std::max(lo, clip(cr.hi));
        std::fill(srow, srow + lo, -std::numeric_limits<float>::infinity());
        std::fill(srow + hi, srow + bk, -std::numeric_limits<float>::infinity());
    } else {
        for (std::size_t c = 0; c < bk; ++c) {
            const auto j = j0 + static_cast<std::int64_t>(c);
            if (static_cast<std::int64_t>(c) >= cols || !mask.allowed(i, j, lq, lk)) {
                srow[c] = -std::numeric_limits<float>::infinity();
            }
        }
    }
}

/// A region of `n` elements of T taken from the call's workspace (inside its frame), as a span.
/// The count comes from the caller's extents (a broadcast view may claim any), so the byte count
/// is checked: llm::error naming `fn` instead of a wrapped size or std::bad_alloc.
template <class T>
std::span<T> take(llm::workspace& ws, std::size_t n, const char* fn, const char* what) {
    return {ws.take<T>(n, fn, what), n};
}

/// Lanes of a parallel loop over `tasks` tasks: at most one per thread of the policy. Each lane
/// owns per-thread scratch from the workspace (carved before the loop, so the loop allocates
/// nothing) and claims tasks from a shared counter, as the pool's own scheduler would.
inline std::size_t lane_count(std::size_t threads, std::size_t tasks) noexcept {
    return std::max<std::size_t>(1, std::min(threads, tasks));
}

/// True when the n elements at x are all finite (no NaN, no +-inf). A float is non-finite
/// exactly when its exponent bits are all ones; the minimum of the complemented exponent bits
/// is a plain integer reduction the compiler vectorises (a std::isfinite loop does not).
template <class T>
bool all_finite(const T* x, std::size_t n) {
    constexpr std::uint32_t exponent = 0x7f80'0000u;
    std::uint32_t least = exponent;
    for (std::size_t i = 0; i < n; ++i) {
        least = std::min(least, ~std::bit_cast<std::uint32_t>(static_cast<float>(x[i])) & exponent);
    }
    return least != 0;
}

// Non-finite input rows (see flash_forward): when `bad` is not null, the packers below replace
// a row holding NaN or inf by zeros and set its flag, so the tiles stay finite (a NaN times a
// probability 0 would otherwise leak into rows that cannot see it) and the kernel marks the
// affected rows NaN at the end, leaving the tile loop untouched.

/// Packs key tiles [t0, t1) of kv head g of a segment transposed and tile-major: tile t is the
/// D x bk block at kt + t * D * ld, row stride ld >= bk (the B operand of S = Q K^T), keys past
/// lk are 0 (columns [bk, ld) are padding, never read). Tile-major
/// matters: with one D x lkp matrix, the rows of a tile would sit lkp floats apart, a multiple
/// of 4 KiB for long sequences, all in the same few L1 sets. bad: null, or one flag per key
/// (set for non-finite keys, which are packed as zeros).
template <class T>
void pack_keys_transposed(const heads_view<T>& x, const segment& sg, std::size_t g, std::size_t t0, std::size_t t1,
                          std::size_t bk, std::size_t ld, float* kt, unsigned char* bad = nullptr) {
    const std::size_t D = x.extent(3);
    for (std::size_t t = t0; t < t1; ++t) {
        float* tile = kt + t * D * ld;
        const std::size_t n = std::min(bk, sg.lk - t * bk);
        for (std::size_t j = 0; j < n; ++j) {
            const T* src = x.ptr(sg.b, sg.k0 + t * bk + j, g, 0);
            if (bad != nullptr && !all_finite(src, D)) {
                bad[t * bk + j] = 1;
                for (std::size_t d = 0; d < D; ++d) {
                    tile[d * ld + j] = 0.0f;
                }
                continue;
            }
            for (std::size_t d = 0; d < D; ++d) {
                tile[d * ld + j] = static_cast<float>(src[d]);
            }
        }
        for (std::size_t d = 0; d < D; ++d) {
            std::fill(tile + d * ld + n, tile + d * ld + bk, 0.0f);
        }
    }
}

/// Packs key (or value) tiles [t0, t1) of kv head g of a segment row-major into rows (lkp x dp):
/// row j holds key j's D elements (times `mul`) then zeros; rows past lk are 0. bad: as
/// pack_keys_transposed.
template <class T>
void pack_keys_rows(const heads_view<T>& x, const segment& sg, std::size_t g, std::size_t t0, std::size_t t1,
                    std::size_t bk, std::size_t dp, float* rows, unsigned char* bad = nullptr, float mul = 1.0f) {
    const std::size_t D = x.extent(3);
    for (std::size_t j = t0 * bk; j < t1 * bk; ++j) {
        float* dst = rows + j * dp;
        std::size_t d = 0;
        if (j < sg.lk) {
            const T* src = x.ptr(sg.b, sg.k0 + j, g, 0);
            if (bad == nullptr || all_finite(src, D)) {
                for (; d < D; ++d) {
                    dst[d] = static_cast<float>(src[d]) * mul;
                }
            } else {
                bad[j] = 1;
            }
        }
        std::fill(dst + d, dst + dp, 0.0f);
    }
}

/// Copies rows [r0, r1) of head h of a segment's queries (or of any tensor shaped like q) into
/// dst (row stride dp), times `mul`; rows past lq and columns past D are 0. bad: null, or one
/// flag per row r - r0, each written (1 for a non-finite row, which is packed as zeros).
template <class T>
void pack_rows(const heads_view<T>& x, const segment& sg, std::size_t h, std::size_t r0, std::size_t r1, std::size_t dp,
               float mul, float* dst, unsigned char* bad = nullptr) {
    const std::size_t D = x.extent(3);
    for (std::size_t r = r0; r < r1; ++r) {
        float* out = dst + (r - r0) * dp;
        if (bad != nullptr) {
            bad[r - r0] = r < sg.lq && !all_finite(x.ptr(sg.b, sg.q0 + r, h, 0), D);
        }
        if (r < sg.lq && (bad == nullptr || bad[r - r0] == 0)) {
            const T* src = x.ptr(sg.b, sg.q0 + r, h, 0);
            for (std::size_t d = 0; d < D; ++d) {
                out[d] = static_cast<float>(src[d]) * mul;
            }
            std::fill(out + D, out + dp, 0.0f);
        } else {
            std::fill(out, out + dp, 0.0f);
        }
    }
}

/// Tiled FlashAttention-2 forward on the CPU (see llm::attention::flash_forward for the
/// contract). For every segment and kv head, K^T and V are packed once into fp32 (O(seq_k * D)
/// extra memory, shared by the group's q heads and every thread); then each task owns one
/// (q head, query tile), streams the key tiles the mask leaves visible, and keeps the
/// online-softmax state of its rows (tile.hpp) with the accumulator in a BQ x D buffer.
template <simd::backend S, tile_policy Tiles, class TQ, class TK, class TV, class TO, class Mask, class Exec>
void forward_cpu(const heads_view<TQ>& q, const heads_view<TK>& k, const heads_view<TV>& v,
                 const llm::strided_view<TO, 4>& o, const llm::strided_view<float, 3>& lse, const shape& sh,
                 std::span<const segment> segs, const Mask& mask, float scale, float cap, llm::workspace& ws, Exec& exec) {
    constexpr const char* fn = "flash_forward";
    using sizes = cpu_tiles<S, Tiles>;
    constexpr std::size_t W = sizes::W, BQ = sizes::BQ, BK = sizes::BK, LDK = sizes::LDK;
    const std::size_t D = sh.head_dim, Dp = round_up(D, W), LDV = sizes::ldv(Dp), group = sh.group();
    std::size_t max_lkp = 0, max_nqt = 0;
    for (const auto& sg : segs) {
        max_lkp = std::max(max_lkp, round_up(sg.lk, BK));
        max_nqt = std::max(max_nqt, (sg.lq + BQ - 1) / BQ);
    }
    llm::workspace::frame frame(ws);
    const auto kt = take<float>(ws, checked_mul(D * LDK, max_lkp / BK, fn, "the packed keys"), fn, "the packed keys");
    const auto vp = take<float>(ws, checked_mul(max_lkp, LDV, fn, "the packed values"), fn, "the packed values");
    const auto key_bad = take<unsigned char>(ws, max_lkp, fn, "the key flags");  // per key: its k or v row is not finite
    const auto bad_keys = take<std::size_t>(ws, max_lkp, fn, "the flagged keys");  // the flagged keys, usually none
    // Per-lane tiles: the scaled query tile, the score tile, the accumulator, the softmax states, the row flags.
    const std::size_t lanes = lane_count(exec.size(), group * max_nqt);
    const auto lane_qs = take<float>(ws, lanes * BQ * D, fn, "the query tiles");
    const auto lane_sp = take<float>(ws, lanes * BQ * BK, fn, "the score tiles");
    const auto lane_acc = take<float>(ws, lanes * BQ * Dp, fn, "the accumulators");
    const auto lane_st = take<softmax_state>(ws, lanes * BQ, fn, "the softmax states");
    const auto lane_bad = take<unsigned char>(ws, lanes * round_up(BQ, mr), fn, "the query row flags");
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    constexpr float nan = std::numeric_limits<float>::quiet_NaN();

    for (const auto& sg : segs) {
        const std::size_t lkp = round_up(sg.lk, BK);
        const std::size_t nkt = lkp / BK;
        const std::size_t nqt = (sg.lq + BQ - 1) / BQ;
        const auto lq = static_cast<std::int64_t>(sg.lq);
        const auto lk = static_cast<std::int64_t>(sg.lk);
        for (std::size_t g = 0; g < sh.kv_heads; ++g) {
            if (nqt == 0) {
                break;
            }
            std::fill_n(key_bad.data(), lkp, 0);
            parallel::parallel_for(exec, nkt, 4, [&](std::size_t t0, std::size_t t1) {
                pack_keys_transposed(k, sg, g, t0, t1, BK, LDK, kt.data(), key_bad.data());
                pack_keys_rows(v, sg, g, t0, t1, BK, LDV, vp.data(), key_bad.data());
            });
            std::size_t n_bad = 0;
            for (std::size_t j = 0; j < lkp; ++j) {
                if (key_bad[j] != 0) {
                    bad_keys[n_bad++] = j;
                }
            }
            const std::span<const std::size_t> bad(bad_keys.data(), n_bad);
            const std::size_t tasks = group * nqt;
            std::atomic<std::size_t> next_task{0};
            parallel::parallel_for(exec, lanes, 1, [&](std::size_t lane, std::size_t) {
                const std::span<float> qs = lane_qs.subspan(lane * BQ * D, BQ * D);
                const std::span<float> sp = lane_sp.subspan(lane * BQ * BK, BQ * BK);
                const std::span<float> acc = lane_acc.subspan(lane * BQ * Dp, BQ * Dp);
                const std::span<softmax_state> st = lane_st.subspan(lane * BQ, BQ);
                unsigned char* q_bad = lane_bad.data() + lane * round_up(BQ, mr);
                for (std::size_t task = next_task.fetch_add(1, std::memory_order_relaxed); task < tasks;
                     task = next_task.fetch_add(1, std::memory_order_relaxed)) {
                    // The last query tiles first: under a causal mask they see the most key
                    // tiles, so the lanes that claim the small early tiles last finish together
                    // (longest task first; in order, one lane ran the longest tile alone).
                    const std::size_t h = g * group + task / nqt;
                    const std::size_t i0 = (nqt - 1 - task % nqt) * BQ;
                    const std::size_t rows = std::min(BQ, sg.lq - i0);
                    const std::size_t rp = round_up(rows, mr);
                    // Scores in log2 units: scale log2(e) folded into Q (with a soft-cap, the cap
                    // works on scale Q K^T and the log2 e multiplies its result).
                    pack_rows(q, sg, h, i0, i0 + rp, D, cap > 0.0f ? scale : scale * log2e, qs.data(), q_bad);
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    std::fill(st.begin(), st.end(), softmax_state{});
                    const index_range cr = mask.cols(static_cast<std::int64_t>(i0), static_cast<std::int64_t>(i0 + rows), lq, lk);
                    for (auto jt = cr.empty() ? nkt : static_cast<std::size_t>(cr.lo) / BK;
                         jt < nkt && static_cast<std::int64_t>(jt * BK) < cr.hi; ++jt) {
                        const std::size_t j0 = jt * BK;
                        const auto cols = static_cast<std::int64_t>(std::min(BK, sg.lk - j0));
                        const bool full = cols == static_cast<std::int64_t>(BK) &&
                                          mask.full(static_cast<std::int64_t>(i0), static_cast<std::int64_t>(i0 + rows),
                                                    static_cast<std::int64_t>(j0), static_cast<std::int64_t>(j0 + BK), lq, lk);
                        // The tile's columns rows [i, i1) can see (mask.cols, a superset), as
                        // tile-relative indices: on a causal diagonal the register blocks above
                        // it are skipped in both products (mask_row then sets those scores to
                        // -inf, so P is exactly 0 there).
                        const auto visible = [&](std::size_t i, std::size_t i1) {
                            const index_range cr =
                                mask.cols(static_cast<std::int64_t>(i0 + i), static_cast<std::int64_t>(i0 + i1), lq, lk);
                            const auto clip = [&](std::int64_t x) {
                                return static_cast<std::size_t>(std::clamp<std::int64_t>(x - static_cast<std::int64_t>(j0), 0, cols));
                            };
                            return std::pair{clip(cr.lo), clip(cr.hi)};
                        };
                        if (full) {
                            tile_gemm<S, false>(rp, BK, D, qs.data(), D, 1, kt.data() + jt * D * LDK, LDK, sp.data(), BK);
                        } else {
                            tile_gemm<S, false, limit_columns>(rp, BK, D, qs.data(), D, 1, kt.data() + jt * D * LDK, LDK,
                                                               sp.data(), BK, visible);
                        }
                        for (std::size_t r = 0; r < rows; ++r) {
                            float* srow = sp.data() + r * BK;
                            auto mx = S::set1(neg_inf);
                            for (std::size_t c = 0; c < BK; c += W) {
                                auto x = S::loadu(srow + c);
                                if (cap > 0.0f) {
                                    x = S::mul(softcap_vec<S>(x, cap), S::set1(log2e));
                                    S::storeu(srow + c, x);
                                }
                                mx = S::max(mx, x);
                            }
                            float row_max = S::reduce_max(mx);
                            if (!full) {
                                mask_row(srow, BK, static_cast<std::int64_t>(i0 + r), static_cast<std::int64_t>(j0), cols, lq,
                                         lk, mask);
                                row_max = simd::row_max<S>(srow, BK);
                            }
                            const float alpha = lazy_rescale2(st[r], row_max, lazy_margin);
                            if (row_is_empty(st[r])) {
                                std::fill(srow, srow + BK, 0.0f);
                                continue;
                            }
                            // P = 2^(S - m) in place, and its row sum
                            st[r].l = st[r].l * alpha + row_exp2_sum<S>(srow, BK, st[r].m);
                            if (alpha != 1.0f) {
                                float* arow = acc.data() + r * Dp;
                                const auto a = S::set1(alpha);
                                for (std::size_t d = 0; d < Dp; d += W) {
                                    S::storeu(arow + d, S::mul(a, S::loadu(arow + d)));
                                }
                            }
                        }
                        if (full) {
                            tile_gemm<S, true>(rp, Dp, BK, sp.data(), BK, 1, vp.data() + j0 * LDV, LDV, acc.data(), Dp);
                        } else {
                            tile_gemm<S, true, limit_depth>(rp, Dp, BK, sp.data(), BK, 1, vp.data() + j0 * LDV, LDV, acc.data(),
                                                            Dp, visible);
                        }
                    }
                    for (std::size_t r = 0; r < rows; ++r) {
                        const auto i = static_cast<std::int64_t>(i0 + r);
                        const bool poisoned = q_bad[r] != 0 || std::any_of(bad.begin(), bad.end(), [&](std::size_t j) {
                                                  return mask.allowed(i, static_cast<std::int64_t>(j), lq, lk);
                                              });
                        const float inv = poisoned ? nan : output_scale(st[r]);
                        TO* out = o.ptr(sg.b, sg.q0 + i0 + r, h, 0);
                        const std::size_t os = o.stride(3);
                        for (std::size_t d = 0; d < D; ++d) {
                            out[d * os] = TO(acc[r * Dp + d] * inv);
                        }
                        lse(sg.b, h, sg.q0 + i0 + r) = poisoned ? nan : row_lse2(st[r]);
                    }
                }
            });
        }
    }
}

/// The NaN marking of backward_cpu, for kv head g of a segment: for every flagged row
/// (row_bad[hq * lqp + i]), dq row i of q head g * group + hq and the dk and dv rows of every
/// key that row sees become NaN. Runs only over the flags when none is set.
template <class Mask>
void mark_poisoned_rows(std::span<const unsigned char> row_bad, std::size_t lqp, const segment& sg, std::size_t g,
                        std::size_t group, const Mask& mask, const heads_view<float>& dq, const heads_view<float>& dk,
                        const heads_view<float>& dv) {
    constexpr float nan = std::numeric_limits<float>::quiet_NaN();
    const std::size_t D = dq.extent(3);
    const auto lq = static_cast<std::int64_t>(sg.lq);
    const auto lk = static_cast<std::int64_t>(sg.lk);
    for (auto it = std::find(row_bad.begin(), row_bad.end(), 1); it != row_bad.end(); it = std::find(it + 1, row_bad.end(), 1)) {
        const auto at = static_cast<std::size_t>(it - row_bad.begin());
        const std::size_t hq = at / lqp, i = at % lqp;
        std::fill_n(dq.ptr(sg.b, sg.q0 + i, g * group + hq, 0), D, nan);
        for (std::size_t j = 0; j < sg.lk; ++j) {
            if (mask.allowed(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j), lq, lk)) {
                std::fill_n(dk.ptr(sg.b, sg.k0 + j, g, 0), D, nan);
                std::fill_n(dv.ptr(sg.b, sg.k0 + j, g, 0), D, nan);
            }
        }
    }
}

/// Tiled FlashAttention-2 backward on the CPU (see llm::attention::flash_backward). Per segment
/// and kv head: K, K^T, V^T and every group head's scaled Q and dO are packed into fp32 with
/// D = rowsum(dO * O) and L; the key tiles are dealt round-robin to at most exec.size()
/// chunks (causal masks make early key tiles costlier, round-robin evens that out). A chunk
/// owns dK and dV of its key tiles and recomputes P = exp(S - L) tile by tile; dQ goes to a
/// per-chunk buffer (no atomics) summed in chunk order at the end, so results are
/// deterministic for a given thread count. dq, dk and dv are accumulated into (+=); every
/// buffer comes from the workspace `ws`.
/// Non-finite inputs (see flash_backward): a row i is poisoned when q row i or dout row i, or
/// k or v row j of a key j it sees, is not finite (or its o or lse is, as the forward leaves
/// such rows). The packers zero those rows and flag them; a poisoned row is then run as a row
/// that sees no key (nothing added anywhere, so no NaN reaches keys it cannot see) and marked
/// afterwards: dq row i NaN, dk and dv rows of every key it sees NaN. The tile loop is untouched.
template <simd::backend S, tile_policy Tiles, class TQ, class TK, class TV, class TO, class TD, class Mask, class Exec>
void backward_cpu(const heads_view<TQ>& q, const heads_view<TK>& k, const heads_view<TV>& v, const heads_view<TO>& o,
                  const heads_view<TD>& dout, const llm::strided_view<const float, 3>& lse, const heads_view<float>& dq,
                  const heads_view<float>& dk, const heads_view<float>& dv, const shape& sh, std::span<const segment> segs,
                  const Mask& mask, float scale, float cap, llm::workspace& ws, Exec& exec) {
    using sizes = cpu_tiles<S, Tiles>;
    constexpr std::size_t W = sizes::W, BQ = sizes::BQ, BK = sizes::BK, LDK = sizes::LDK;
    const std::size_t D = sh.head_dim, Dp = round_up(D, W), LDV = sizes::ldv(Dp), group = sh.group();
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    constexpr const char* fn = "flash_backward";

    // Buffers sized for the largest segment, taken once for the whole call.
    std::size_t max_lkp = 0, max_lqp = 0;
    for (const auto& sg : segs) {
        max_lkp = std::max(max_lkp, round_up(sg.lk, BK));
        max_lqp = std::max(max_lqp, round_up(sg.lq, BQ));
    }
    const std::size_t max_chunks = lane_count(exec.size(), max_lkp / BK);
    const std::size_t max_rows = checked_mul(group, max_lqp, fn, "the packed rows of a head group");
    llm::workspace::frame frame(ws);
    const auto kt = take<float>(ws, checked_mul(D * LDK, max_lkp / BK, fn, "the packed keys"), fn, "the packed keys");
    const auto kr = take<float>(ws, checked_mul(max_lkp, LDV, fn, "the packed keys"), fn, "the packed keys");
    const auto vt = take<float>(ws, checked_mul(D * LDK, max_lkp / BK, fn, "the packed values"), fn, "the packed values");
    const auto qp = take<float>(ws, checked_mul(max_rows, Dp, fn, "the packed queries"), fn, "the packed queries");
    const auto gp = take<float>(ws, checked_mul(max_rows, Dp, fn, "the packed dout"), fn, "the packed dout");
    const auto lrow = take<float>(ws, max_rows, fn, "the row log-sum-exps");
    const auto drow = take<float>(ws, max_rows, fn, "the row sums D");
    const auto dqp = take<float>(ws, checked_mul(checked_mul(max_chunks, max_rows, fn, "the dq parts"), Dp, fn, "the dq parts"),
                                 fn, "the dq parts");
    // Non-finite flags: per key (k or v row), per packed q row and dout row, per poisoned row.
    const auto key_bad = take<unsigned char>(ws, max_lkp, fn, "the key flags");
    const auto q_bad = take<unsigned char>(ws, max_rows, fn, "the row flags");
    const auto g_bad = take<unsigned char>(ws, max_rows, fn, "the row flags");
    const auto row_bad = take<unsigned char>(ws, max_rows, fn, "the row flags");
    const auto bad_keys = take<std::size_t>(ws, max_lkp, fn, "the flagged keys");  // the flagged keys, usually none
    // Per-chunk tiles: S (then P), the capped scores, dP (then dS), the dK and dV accumulators.
    const auto chunk_sp = take<float>(ws, max_chunks * BQ * BK, fn, "the score tiles");
    const auto chunk_tp = take<float>(ws, cap > 0.0f ? max_chunks * BQ * BK : 0, fn, "the capped score tiles");
    const auto chunk_dpp = take<float>(ws, max_chunks * BQ * BK, fn, "the dP tiles");
    const auto chunk_dka = take<float>(ws, max_chunks * BK * Dp, fn, "the dk accumulators");
    const auto chunk_dva = take<float>(ws, max_chunks * BK * Dp, fn, "the dv accumulators");

    for (const auto& sg : segs) {
        const std::size_t lkp = round_up(sg.lk, BK);
        const std::size_t lqp = round_up(sg.lq, BQ);
        const std::size_t nkt = lkp / BK;
        const std::size_t nqt = lqp / BQ;
        const auto lq = static_cast<std::int64_t>(sg.lq);
        const auto lk = static_cast<std::int64_t>(sg.lk);
        const std::size_t n_chunks = lane_count(exec.size(), nkt);
        const std::size_t group_rows = group * lqp;
        std::fill_n(row_bad.data(), group_rows, 0);  // rows past lq are never flagged
        for (std::size_t g = 0; g < sh.kv_heads; ++g) {
            std::fill_n(key_bad.data(), lkp, 0);
            parallel::parallel_for(exec, nkt, 4, [&](std::size_t t0, std::size_t t1) {
                pack_keys_transposed(k, sg, g, t0, t1, BK, LDK, kt.data(), key_bad.data());
                // K for dQ = scale * dS K, the scale folded in here so that the final dq update is
                // one addition (no multiply the compiler could fuse with it: accumulating twice
                // gives exactly 2x).
                pack_keys_rows(k, sg, g, t0, t1, BK, LDV, kr.data(), key_bad.data(), scale);
                pack_keys_transposed(v, sg, g, t0, t1, BK, LDK, vt.data(), key_bad.data());
            });
            std::size_t n_bad = 0;
            for (std::size_t j = 0; j < lkp; ++j) {
                if (key_bad[j] != 0) {
                    bad_keys[n_bad++] = j;
                }
            }
            const std::span<const std::size_t> bad_keys_seen(bad_keys.data(), n_bad);
            parallel::parallel_for(exec, group * nqt, 1, [&](std::size_t task0, std::size_t task1) {
                for (std::size_t task = task0; task < task1; ++task) {
                    const std::size_t hq = task / nqt;
                    const std::size_t h = g * group + hq;
                    const std::size_t i0 = (task % nqt) * BQ;
                    float* qt = qp.data() + (hq * lqp + i0) * Dp;
                    float* gt = gp.data() + (hq * lqp + i0) * Dp;
                    pack_rows(q, sg, h, i0, i0 + BQ, Dp, scale, qt, q_bad.data() + hq * lqp + i0);
                    pack_rows(dout, sg, h, i0, i0 + BQ, Dp, 1.0f, gt, g_bad.data() + hq * lqp + i0);
                    for (std::size_t r = i0; r < std::min(i0 + BQ, sg.lq); ++r) {
                        const TO* orow = o.ptr(sg.b, sg.q0 + r, h, 0);
                        const float* grow = gt + (r - i0) * Dp;
                        float dsum = 0.0f;
                        for (std::size_t d = 0; d < D; ++d) {
                            dsum += static_cast<float>(orow[d]) * grow[d];
                        }
                        const float li = lse(sg.b, h, sg.q0 + r);
                        const auto i = static_cast<std::int64_t>(r);
                        // lse may be -inf (a row that sees no key), never NaN or +inf; dsum is
                        // not finite when o is (the forward's NaN rows).
                        const bool bad = q_bad[hq * lqp + r] != 0 || g_bad[hq * lqp + r] != 0 || !(li < std::numeric_limits<float>::infinity()) ||
                                         !std::isfinite(dsum) || std::any_of(bad_keys_seen.begin(), bad_keys_seen.end(), [&](std::size_t j) {
                                             return mask.allowed(i, static_cast<std::int64_t>(j), lq, lk);
                                         });
                        row_bad[hq * lqp + r] = bad;
                        drow[hq * lqp + r] = bad ? 0.0f : dsum;
                        lrow[hq * lqp + r] = bad ? neg_inf : li;  // run as a row that sees no key
                    }
                }
            });
            std::fill_n(dqp.data(), n_chunks * group_rows * Dp, 0.0f);
            parallel::parallel_for(exec, n_chunks, 1, [&](std::size_t c0, std::size_t c1) {
                for (std::size_t chunk = c0; chunk < c1; ++chunk) {
                    const std::span<float> sp = chunk_sp.subspan(chunk * BQ * BK, BQ * BK);
                    const std::span<float> tp = cap > 0.0f ? chunk_tp.subspan(chunk * BQ * BK, BQ * BK) : std::span<float>{};
                    const std::span<float> dpp = chunk_dpp.subspan(chunk * BQ * BK, BQ * BK);
                    const std::span<float> dka = chunk_dka.subspan(chunk * BK * Dp, BK * Dp);
                    const std::span<float> dva = chunk_dva.subspan(chunk * BK * Dp, BK * Dp);
                    float* dq_part = dqp.data() + chunk * group * lqp * Dp;
                    for (std::size_t jt = chunk; jt < nkt; jt += n_chunks) {
                        const std::size_t j0 = jt * BK;
                        const auto cols = static_cast<std::int64_t>(std::min(BK, sg.lk - j0));
                        std::fill(dka.begin(), dka.end(), 0.0f);
                        std::fill(dva.begin(), dva.end(), 0.0f);
                        const index_range rr =
                            mask.rows(static_cast<std::int64_t>(j0), static_cast<std::int64_t>(j0) + cols, lq, lk);
                        for (std::size_t hq = 0; hq < group && !rr.empty(); ++hq) {
                            for (auto it = static_cast<std::size_t>(rr.lo) / BQ; it < nqt && static_cast<std::int64_t>(it * BQ) < rr.hi;
                                 ++it) {
                                const std::size_t i0 = it * BQ;
                                const std::size_t rows = std::min(BQ, sg.lq - i0);
                                const std::size_t rp = round_up(rows, mr);
                                const float* qt = qp.data() + (hq * lqp + i0) * Dp;
                                const float* gt = gp.data() + (hq * lqp + i0) * Dp;
                                const bool full =
                                    cols == static_cast<std::int64_t>(BK) &&
                                    mask.full(static_cast<std::int64_t>(i0), static_cast<std::int64_t>(i0 + rows),
                                              static_cast<std::int64_t>(j0), static_cast<std::int64_t>(j0 + BK), lq, lk);
                                tile_gemm<S, false>(rp, BK, D, qt, Dp, 1, kt.data() + jt * D * LDK, LDK, sp.data(), BK);
                                tile_gemm<S, false>(rp, BK, D, gt, Dp, 1, vt.data() + jt * D * LDK, LDK, dpp.data(), BK);
                                for (std::size_t r = 0; r < rp; ++r) {
                                    float* srow = sp.data() + r * BK;
                                    float* dprow = dpp.data() + r * BK;
                                    const float li = r < rows ? lrow[hq * lqp + i0 + r] : neg_inf;
                                    if (li == neg_inf) {  // padding row, or a row that sees no key
                                        std::fill(srow, srow + BK, 0.0f);
                                        std::fill(dprow, dprow + BK, 0.0f);
                                        continue;
                                    }
                                    float* trow = cap > 0.0f ? tp.data() + r * BK : nullptr;
                                    if (trow != nullptr) {
                                        for (std::size_t c = 0; c < BK; c += W) {
                                            S::storeu(trow + c, softcap_vec<S>(S::loadu(srow + c), cap));
                                        }
                                        std::copy(trow, trow + BK, srow);
                                    }
                                    if (!full) {
                                        mask_row(srow, BK, static_cast<std::int64_t>(i0 + r), static_cast<std::int64_t>(j0),
                                                 cols, lq, lk, mask);
                                    }
                                    const auto l = S::set1(li);
                                    for (std::size_t c = 0; c < BK; c += W) {  // P = exp(S - L)
                                        S::storeu(srow + c, S::exp(S::sub(S::loadu(srow + c), l)));
                                    }
                                    // dS = P * (dP - D) * softcap', the per-score formula of tile.hpp
                                    // (score_grad; the compiler vectorises these loops).
                                    const float di = drow[hq * lqp + i0 + r];
                                    const float* LLM_RESTRICT pr = srow;
                                    float* LLM_RESTRICT dsr = dprow;
                                    if (trow != nullptr) {
                                        // softcap_grad(t, cap) = softcap_grad(t / cap, 1): with the constant
                                        // cap 1 its cap test folds away and the loop vectorises (passing cap
                                        // leaves a branch in the loop: measured 5% slower backward with cap).
                                        const float* LLM_RESTRICT tr = trow;
                                        const float inv_cap = 1.0f / cap;
                                        for (std::size_t c = 0; c < BK; ++c) {
                                            dsr[c] = score_grad(pr[c], dsr[c], di, tr[c] * inv_cap, 1.0f);
                                        }
                                    } else {
                                        for (std::size_t c = 0; c < BK; ++c) {
                                            dsr[c] = score_grad(pr[c], dsr[c], di, 0.0f, 0.0f);
                                        }
                                    }
                                }
                                // dV += P^T dO, dK += dS^T (scale Q), dQ_part += dS (scale K).
                                tile_gemm<S, true>(BK, Dp, rp, sp.data(), 1, BK, gt, Dp, dva.data(), Dp);
                                tile_gemm<S, true>(BK, Dp, rp, dpp.data(), 1, BK, qt, Dp, dka.data(), Dp);
                                tile_gemm<S, true>(rp, Dp, BK, dpp.data(), BK, 1, kr.data() + j0 * LDV, LDV,
                                                   dq_part + (hq * lqp + i0) * Dp, Dp);
                            }
                        }
                        for (std::size_t c = 0; c < static_cast<std::size_t>(cols); ++c) {
                            float* gk = dk.ptr(sg.b, sg.k0 + j0 + c, g, 0);
                            float* gv = dv.ptr(sg.b, sg.k0 + j0 + c, g, 0);
                            for (std::size_t d = 0; d < D; ++d) {  // gradients accumulate (docs/conventions.md)
                                gk[d] += dka[c * Dp + d];
                                gv[d] += dva[c * Dp + d];
                            }
                        }
                    }
                }
            });
            parallel::parallel_for(exec, group * sg.lq, 64, [&](std::size_t r0, std::size_t r1) {
                for (std::size_t t = r0; t < r1; ++t) {
                    const std::size_t hq = t / sg.lq;
                    const std::size_t i = t % sg.lq;
                    float* out = dq.ptr(sg.b, sg.q0 + i, g * group + hq, 0);
                    for (std::size_t d = 0; d < D; ++d) {
                        float sum = 0.0f;
                        for (std::size_t chunk = 0; chunk < n_chunks; ++chunk) {
                            sum += dqp[((chunk * group + hq) * lqp + i) * Dp + d];
                        }
                        out[d] += sum;
                    }
                }
            });
            mark_poisoned_rows(row_bad.first(group_rows), lqp, sg, g, group, mask, dq, dk, dv);
        }
    }
}

}  // namespace llm::attention::detail
