// SPDX-License-Identifier: Apache-2.0
// Register and cache blocking (MR x NR micro-tile, MC/KC/NC) of the own GEMM backend, per SIMD width.
#pragma once

#include <concepts>
#include <cstddef>

namespace llm::blas {

/// A blocking policy: a type with these static constants (all > 0). nr_vectors counts SIMD
/// vectors, so NR = nr_vectors * S::width; mc must be a multiple of mr and nc of NR.
template <class B>
concept blocking_policy = requires {
    { B::mr } -> std::convertible_to<std::size_t>;
    { B::nr_vectors } -> std::convertible_to<std::size_t>;
    { B::mc } -> std::convertible_to<std::size_t>;
    { B::kc } -> std::convertible_to<std::size_t>;
    { B::nc } -> std::convertible_to<std::size_t>;
} && (B::mr > 0 && B::nr_vectors > 0 && B::kc > 0 && B::mc % B::mr == 0);

/// Blocking for 512-bit vectors (16 floats, 32 vector registers): AVX-512. Chosen by
/// measurement on this project's build machines (lscpu: Intel Sapphire/Emerald Rapids class,
/// 2 FMA ports, L1d 48 KiB, L2 2 MiB per core); figures in BENCHMARKS.md.
struct blocking_avx512 {
    // Micro-tile 6 x 64: 6 * 4 = 24 accumulators + 4 registers of B + 1 broadcast of A = 29
    // of 32 zmm registers. Per k step: 24 FMAs (12 cycles on 2 ports) against 4 vector loads
    // and 6 broadcasts, so the load ports have slack, and 24 independent chains cover the
    // 4-cycle latency x 2 ports. Measured in GFLOP per CPU-second (robust to other jobs on
    // the machine), 2048^3, one thread: 6 x 64 126, 14 x 32 119 (124 with KC 384),
    // 12 x 32 119, 6 x 64 with KC 128 105; 512 x 4096 x 4096 ranks them the same way.
    static constexpr std::size_t mr = 6;  ///< Rows of the micro-tile (rows of C per micro-kernel call).
    static constexpr std::size_t nr_vectors = 4;  ///< Columns of the micro-tile, in SIMD vectors.
    // KC = 256: the A micro-panel (6 x 256 floats = 6 KiB) and the lines of the B micro-panel
    // in flight fit L1d; the B micro-panel (256 x 64 floats = 64 KiB) is re-read from L2 by
    // each of the MC/6 A micro-panels, 256 B per 12 cycles, under L2 bandwidth. KC = 128
    // (B micro-panel in L1) measured 17% slower: C is loaded and stored twice as often.
    static constexpr std::size_t kc = 256;  ///< Depth of a packed block (k extent).
    // MC = 336 (56 micro-panels): the packed A block (336 x 256 floats = 336 KiB) stays in
    // L2 while the NC/64 B micro-panels stream past it, with room left for those panels and
    // the C lines. Large MC means B (the big operand at prefill shapes) is re-streamed from
    // L3 fewer times; 144 measured slower, 672 no faster.
    static constexpr std::size_t mc = 336;  ///< Rows of a packed A block.
    // NC = 4096: the widest column task. Its packed B block (256 x 4096 floats = 4 MiB)
    // lives in L3, and 4096 covers the Llama-size N in one block, so one thread packs A once
    // per KC step; with more threads the tasks are narrower (see detail::gemm_blocked).
    static constexpr std::size_t nc = 4096;  ///< Columns of a packed B block.
};

/// Blocking for 256-bit vectors (8 floats, 16 registers): AVX2 machines. Tested here through
/// xsimd's fma3<avx2> backend, but not tuned: the build machines have AVX-512, so these are
/// the textbook choices, not measured ones.
struct blocking_avx2 {
    // 6 x 16: 12 accumulators + 2 of B + 1 broadcast = 15 of the 16 ymm registers; the
    // classic Haswell shape, 12 chains cover the 5-cycle latency on 2 FMA ports (10 needed).
    static constexpr std::size_t mr = 6;  ///< Rows of the micro-tile.
    static constexpr std::size_t nr_vectors = 2;  ///< Columns of the micro-tile, in SIMD vectors.
    // The B micro-panel KC x 16 floats = 16 KiB at 256: half of a 32 KiB L1d.
    static constexpr std::size_t kc = 256;  ///< Depth of a packed block (k extent).
    // A block 120 x 256 floats = 120 KiB: fits the 256 KiB L2 of older cores with room for B.
    static constexpr std::size_t mc = 120;  ///< Rows of a packed A block.
    static constexpr std::size_t nc = 4096;  ///< Columns of a packed B block.
};

/// Blocking for the scalar backend (width 1): a 4 x 4 tile of scalars the compiler keeps in
/// registers; cache sizes as for AVX2 since the cache hierarchy is the same machine's.
struct blocking_scalar {
    static constexpr std::size_t mr = 4;  ///< Rows of the micro-tile.
    static constexpr std::size_t nr_vectors = 4;  ///< Columns of the micro-tile (vectors of width 1).
    static constexpr std::size_t kc = 256;  ///< Depth of a packed block (k extent).
    static constexpr std::size_t mc = 128;  ///< Rows of a packed A block.
    static constexpr std::size_t nc = 4096;  ///< Columns of a packed B block.
};

/// The default blocking for a SIMD backend of the given width.
template <std::size_t Width>
struct default_blocking {
    /// blocking_avx2: for 128-bit and other widths the 16-register shape is safe.
    using type = blocking_avx2;
};
/// 16 floats per vector (AVX-512): blocking_avx512.
template <>
struct default_blocking<16> {
    using type = blocking_avx512;  ///< The blocking chosen for this width.
};
/// Width 1 (the scalar backend): blocking_scalar.
template <>
struct default_blocking<1> {
    using type = blocking_scalar;  ///< The blocking chosen for this width.
};
template <std::size_t Width>
using default_blocking_t = typename default_blocking<Width>::type;

}  // namespace llm::blas
