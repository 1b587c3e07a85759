// SPDX-License-Identifier: Apache-2.0
// Register and cache blocking (MR x NR micro-tile, MC/KC/NC) of the own GEMM backend, per SIMD width.
#pragma once

#include <llm/core/cpu_info.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>

namespace llm::blas {

/// The cache block sizes of a blocking policy: rows of a packed A block (mc), depth (kc),
/// columns of a packed B block (nc).
/// Example: `llm::blas::block_sizes s{120, 256, 4096};`
struct block_sizes {
    std::size_t mc;  ///< Rows of a packed A block (a multiple of mr).
    std::size_t kc;  ///< Depth of a packed block (k extent).
    std::size_t nc;  ///< Columns of a packed B block (a multiple of NR).
};

/// A blocking fixed at compile time: static constants mr, nr_vectors, mc, kc, nc (all > 0).
/// nr_vectors counts SIMD vectors, so NR = nr_vectors * S::width; mc must be a multiple of mr
/// and nc of NR.
template <class B>
concept fixed_blocking_policy = requires {
    { B::mr } -> std::convertible_to<std::size_t>;
    { B::nr_vectors } -> std::convertible_to<std::size_t>;
    { B::mc } -> std::convertible_to<std::size_t>;
    { B::kc } -> std::convertible_to<std::size_t>;
    { B::nc } -> std::convertible_to<std::size_t>;
} && (B::mr > 0 && B::nr_vectors > 0 && B::kc > 0 && B::mc % B::mr == 0);

/// A blocking chosen at run time: static constants mr and nr_vectors (the register tile is
/// compiled in) and a static `sizes()` returning the block_sizes (mc a multiple of mr, nc of
/// NR, all > 0).
template <class B>
concept runtime_blocking_policy = requires {
    { B::mr } -> std::convertible_to<std::size_t>;
    { B::nr_vectors } -> std::convertible_to<std::size_t>;
    { B::sizes() } -> std::convertible_to<block_sizes>;
} && (B::mr > 0 && B::nr_vectors > 0);

/// A blocking policy: fixed (constants) or run-time (sizes()).
template <class B>
concept blocking_policy = fixed_blocking_policy<B> || runtime_blocking_policy<B>;

/// The block sizes of a policy, read at run time (constants for a fixed policy).
/// Example: `auto s = llm::blas::block_sizes_of<llm::blas::blocking_avx2>();`
template <blocking_policy B>
block_sizes block_sizes_of() {
    if constexpr (runtime_blocking_policy<B>) {
        return B::sizes();
    } else {
        return {B::mc, B::kc, B::nc};
    }
}

/// A blocking pinned at compile time: micro-tile MR x (NV vectors), blocks MC x KC x NC.
/// Example: `llm::blas::own<llm::simd::scalar, llm::blas::fixed_blocking<4, 4, 8, 8, 16>>`
template <std::size_t MR, std::size_t NV, std::size_t MC, std::size_t KC, std::size_t NC>
struct fixed_blocking {
    static constexpr std::size_t mr = MR;          ///< Rows of the micro-tile.
    static constexpr std::size_t nr_vectors = NV;  ///< Columns of the micro-tile, in SIMD vectors.
    static constexpr std::size_t mc = MC;          ///< Rows of a packed A block.
    static constexpr std::size_t kc = KC;          ///< Depth of a packed block.
    static constexpr std::size_t nc = NC;          ///< Columns of a packed B block.
};

/// Blocking for 512-bit vectors (16 floats, 32 vector registers): AVX-512. Chosen by
/// measurement on this project's build machines (lscpu: Intel Sapphire/Emerald Rapids class,
/// 2 FMA ports, L1d 48 KiB, L2 2 MiB per core); figures in BENCHMARKS.md. GFLOP per
/// CPU-second (robust to other jobs on the machine), one thread, best of 3 alternated runs,
/// Emerald Rapids at load 6-7, with the assembly micro-kernel (detail::micro_kernel_avx512_6x64):
/// - Micro-tile 6 x 64 (mr 6, 4 vectors): 6 * 4 = 24 accumulators + 4 registers of B + 2
///   broadcasts of A = 30 of 32 zmm registers. Per k step: 24 FMAs (12 cycles on 2 ports)
///   against 4 vector loads and 6 broadcasts, so the load ports have slack, and 24
///   independent chains cover the 4-cycle latency x 2 ports. With the generic loop (before the
///   assembly kernel), 2048^3: 6 x 64 126, 14 x 32 119 (124 with KC 384), 12 x 32 119.
/// - KC = 512: the A micro-panel (6 x 512 floats = 12 KiB) stays in L1d; the B micro-panel
///   (512 x 64 floats = 128 KiB) is streamed from L2 by each of the MC/6 A micro-panels,
///   256 B per 12 cycles, with the assembly loop prefetching B's rows 8 steps ahead. The C
///   tile is loaded and stored once per KC steps, so a larger KC halves the C traffic (C is in
///   L3 from 1024^3 up). KC 512 / 256 / 1024 / 96 (the BLIS model: B micro-panel in half of
///   L1d, MC 1020): 2048^3 157 / 143 / 151 / 143, 1024^3 155 / 152 / 150 / 152, 256^3 156 /
///   152 / 150 / 150, 512 x 4096 x 4096 (B = W^T) 135 / 133 / 133 / 137 (OpenBLAS in the same
///   run 166, 158, 150, 154; KC 1024 from a second run, where KC 512 gave 150 / 152 / 152 / 140).
/// - MC = 516 (86 micro-panels): the packed A block (516 x 512 floats = 1 MiB) stays in L2
///   while the B micro-panels stream past it, with room left for the B panels in use and the C
///   lines. A task of at most MC rows (a prefill chunk, a 512-row GEMM) packs B a pair of panels
///   at a time into L2 (see detail::gemm_blocked), so 516 rather than 336 puts 512-row tasks on
///   that path: 512 x 4096 x 4096 (B = W^T) 141-144 -> 148-150 GFLOP/s at 1 thread, 283-285 ->
///   296-297 at 2; 256, 1024 and 2048 rows the same within 2% (2026-12-06). Before the pair
///   order, MC 336, 516 and 192 measured the same within 3%.
/// - NC = 4096: the widest column task. Its packed B block (512 x 4096 floats = 8 MiB)
///   lives in L3, and 4096 covers the Llama-size N in one block, so one thread packs A once
///   per KC step; with more threads the tasks are narrower (see detail::gemm_blocked).
/// Example: `llm::blas::own<llm::simd::default_backend, llm::blas::blocking_avx512>`
struct blocking_avx512 : fixed_blocking<6, 4, 516, 512, 4096> {};

/// Blocking for 256-bit vectors (8 floats, 16 registers): AVX2 machines. Tested here through
/// xsimd's fma3<avx2> backend, but not tuned: the build machines have AVX-512, so these are
/// the textbook choices, not measured ones.
/// - 6 x 16 (mr 6, 2 vectors): 12 accumulators + 2 of B + 1 broadcast = 15 of the 16 ymm
///   registers; the classic Haswell shape, 12 chains cover the 5-cycle latency on 2 FMA
///   ports (10 needed).
/// - KC = 256: the B micro-panel KC x 16 floats = 16 KiB, half of a 32 KiB L1d.
/// - MC = 120: the A block 120 x 256 floats = 120 KiB fits the 256 KiB L2 of older cores
///   with room for B. NC = 4096.
/// Example: `llm::blas::own<llm::simd::default_backend, llm::blas::blocking_avx2>`
struct blocking_avx2 : fixed_blocking<6, 2, 120, 256, 4096> {};

/// Blocking for the scalar backend (width 1): a 4 x 4 tile of scalars the compiler keeps in
/// registers; cache sizes (KC 256, MC 128, NC 4096) as for AVX2 since the cache hierarchy is
/// the same machine's.
/// Example: `llm::blas::own<llm::simd::scalar, llm::blas::blocking_scalar>`
struct blocking_scalar : fixed_blocking<4, 4, 128, 256, 4096> {};

/// The analytical model of BLIS (Low, Igual, Smith, Quintana-Orti 2016, "Analytical modeling
/// is enough for high-performance BLIS") for a micro-tile mr x nr of fp32: kc so that the
/// kc x nr B micro-panel takes half of L1d (the other half holds the mr x kc A micro-panel and
/// the C lines; half rather than all so the set-associative L1 keeps both), mc so that the
/// mc x kc A block takes half of L2, nc so that the kc x nc B block takes half of this core's
/// share of L3. kc is a multiple of 8 in [16, 1024], mc a multiple of mr in [mr, 1020],
/// nc a multiple of nr in [nr, 4096] (a huge L3 gives no gain past one Llama-size N and
/// costs workspace). Caches reported as 0: `fallback` (L1d or L2 unknown: all of it; L3
/// unknown: its nc).
/// Example: `auto s = llm::blas::blocking_for({32 << 10, 512 << 10, 16 << 20, 64, 2}, 6, 16, {120, 256, 4096});`
inline block_sizes blocking_for(const cache_sizes& c, std::size_t mr, std::size_t nr, block_sizes fallback) {
    if (c.l1d == 0 || c.l2 == 0 || mr == 0 || nr == 0) {
        return fallback;
    }
    constexpr std::size_t f = sizeof(float);
    std::size_t kc = c.l1d / 2 / (nr * f) / 8 * 8;
    kc = std::clamp<std::size_t>(kc, 16, 1024);
    std::size_t mc = c.l2 / 2 / (kc * f) / mr * mr;
    mc = std::clamp<std::size_t>(mc, mr, std::max(mr, std::size_t{1020} / mr * mr));
    std::size_t nc = fallback.nc;
    if (c.l3 != 0) {
        const std::size_t share = c.l3 / std::max<std::size_t>(1, c.l3_sharing);
        nc = share / 2 / (kc * f) / nr * nr;
        nc = std::clamp<std::size_t>(nc, nr, std::max(nr, std::size_t{4096} / nr * nr));
    }
    return {mc, kc, nc};
}

/// The measured (fixed) blocking for a SIMD backend of the given width.
template <std::size_t Width>
struct measured_blocking {
    /// blocking_avx2: for 128-bit and other widths the 16-register shape is safe.
    using type = blocking_avx2;
};
/// 16 floats per vector (AVX-512): blocking_avx512.
template <>
struct measured_blocking<16> {
    using type = blocking_avx512;  ///< The blocking measured for this width.
};
/// Width 1 (the scalar backend): blocking_scalar.
template <>
struct measured_blocking<1> {
    using type = blocking_scalar;  ///< The blocking measured for this width.
};
/// The measured blocking of a width. Example: `using B = llm::blas::measured_blocking_t<8>;`
template <std::size_t Width>
using measured_blocking_t = typename measured_blocking<Width>::type;

/// Blocking derived at run time from the caches this CPU reports (llm::cpu_cache_sizes(),
/// computed once by blocking_for); the micro-tile (mr, nr_vectors) of the measured fixed
/// blocking for the width, whose mc/kc/nc are also the fallback when the OS reports no caches.
/// Example: `llm::blas::own<llm::simd::default_backend, llm::blas::cache_blocking<llm::simd::default_backend::width>>`
template <std::size_t Width>
struct cache_blocking {
    using fixed = measured_blocking_t<Width>;  ///< The measured blocking of this width.
    static constexpr std::size_t mr = fixed::mr;                          ///< Rows of the micro-tile.
    static constexpr std::size_t nr_vectors = fixed::nr_vectors;          ///< Columns of the micro-tile, in vectors.
    /// mc, kc, nc for this CPU, computed on the first call.
    static block_sizes sizes() {
        static const block_sizes s = blocking_for(cpu_cache_sizes(), mr, nr_vectors * Width,
                                                  {fixed::mc, fixed::kc, fixed::nc});
        return s;
    }
};

/// The default blocking of llm::blas::own for a SIMD backend of the given width: derived from
/// the caches at run time (cache_blocking).
template <std::size_t Width>
struct default_blocking {
    using type = cache_blocking<Width>;  ///< The blocking chosen for this width.
};
/// 16 floats per vector (AVX-512): the measured blocking_avx512. For its 6 x 64 tile the model
/// puts the 64-column B micro-panel in half of L1d (KC = 96 with 48 KiB), which reloads and
/// stores the C tile 5 times as often as KC = 512: 2048^3 ran at 143 against 157 GFLOP per
/// CPU-second on an Emerald Rapids core (see blocking_avx512); pin cache_blocking<16> to try
/// the model there.
template <>
struct default_blocking<16> {
    using type = blocking_avx512;  ///< The blocking chosen for this width.
};
template <std::size_t Width>
using default_blocking_t = typename default_blocking<Width>::type;

}  // namespace llm::blas
