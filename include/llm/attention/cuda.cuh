// SPDX-License-Identifier: Apache-2.0
// CUDA attention forward: thread-to-tile mapping, shared-memory staging and warp shuffles over the maths of attention/tile.hpp.
//
// STATUS: compiled with nvcc 13.0 for sm_80 and sm_90. Run on a GPU once, on 2026-12-04: the
// two test cases of tests/attention/gpu.cu (doctest suite "gpu": fp32 q, k, v, causal, GQA,
// head_dim 64, 80, 128 and 256 against the CPU flash_forward, and the non-finite-input rule)
// passed on an NVIDIA H200 (sm_90). Not run on sm_80, with bf16 inputs or for speed. Its
// arithmetic and its warp reduction order are also tested on the CPU: tests/attention/warp.cpp
// runs the very same warp_row_step (tile.hpp) with llm::simd::emulated_warp<32>, whose
// butterfly is the order of __shfl_xor_sync here, against the double reference. The GPU test
// runs only when gpu.cu is compiled by nvcc and a device is present (else it reports skipped).
#pragma once

#include <llm/attention/detail/problem.hpp>
#include <llm/attention/mask.hpp>
#include <llm/attention/options.hpp>
#include <llm/attention/tile.hpp>
#include <llm/config.hpp>
#include <llm/core/error.hpp>
#include <llm/simd/lanes.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#if LLM_CUDA_COMPILE

#include <cuda_runtime.h>

namespace llm::attention {

namespace detail {

/// Query rows per block: one per warp. Four warps share each staged K/V tile, which divides
/// its global-memory traffic by four; more warps would need more shared memory per block at
/// head_dim 256 (two 32 x 256 fp32 tiles are already 64 KiB).
inline constexpr unsigned cuda_warps = 4;

/// True unless x is NaN or +-inf (all exponent bits set), without the host/device split of std::isfinite.
__device__ inline bool finite(float x) noexcept { return (__float_as_uint(x) & 0x7f80'0000u) != 0x7f80'0000u; }

/// Grid: (ceil(seq_q / cuda_warps), heads, batch); block: 32 * cuda_warps threads; warp w of a
/// block owns query row blockIdx.x * cuda_warps + w. The block streams the key tiles (32 * KPL
/// keys) its rows may see, staging each in shared memory as fp32 (K, V, then the warps'
/// probabilities), and every warp runs warp_row_step from tile.hpp on its row.
/// Non-finite inputs follow flash_forward's rule: a non-finite element of q, or of a key or
/// value row that the query row sees, makes that row's output and lse NaN. Such elements are
/// staged as 0 and flagged, so the tile maths stays finite and a NaN never reaches rows that
/// cannot see it (0 * NaN would); the flagged rows are overwritten with NaN at the end.
/// Q: q's kernel_view; its head_dim (extent 3) is a compile-time constant when with_static_extent
/// made it one, which turns the staging loops' divisions by D into constants. K, V, O: kernel
/// views of k, v, o (head_dim unit-stride), L: of lse. DPL: output columns per lane, >= ceil(D / 32).
template <std::size_t KPL, std::size_t DPL, class Q, class K, class V, class O, class L, class Mask>
__global__ void __launch_bounds__(32 * cuda_warps)
    flash_forward_kernel(Q q, K k, V v, O o, L lse_view, float scale, float cap, Mask mask) {
    using TO = typename O::element_type;
    extern __shared__ float smem[];
    constexpr std::size_t BK = 32 * KPL;
    const std::size_t D = q.extent(3);
    const std::size_t seq_q = q.extent(1), seq_k = k.extent(1), heads = q.extent(2), kv_heads = k.extent(2);
    float* k_tile = smem;
    float* v_tile = k_tile + BK * D;
    float* q_rows = v_tile + BK * D;
    float* p_stage = q_rows + cuda_warps * D;
    unsigned* key_bad = reinterpret_cast<unsigned*>(p_stage + cuda_warps * BK);  // per key of the tile: k or v not finite
    constexpr float nan = std::numeric_limits<float>::quiet_NaN();

    const std::size_t b = blockIdx.z, h = blockIdx.y;
    const std::size_t g = h / (heads / kv_heads);
    const std::size_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const std::size_t i0 = static_cast<std::size_t>(blockIdx.x) * cuda_warps;
    const std::size_t i = i0 + warp;
    const bool row_valid = i < seq_q;  // uniform within a warp
    const auto lq = static_cast<std::int64_t>(seq_q), lk = static_cast<std::int64_t>(seq_k);
    const std::size_t i1 = i0 + cuda_warps < seq_q ? i0 + cuda_warps : seq_q;

    bool poisoned = false;  // uniform within a warp
    if (row_valid) {
        const auto* qr = q.ptr(b, i, h, 0);
        bool bad = false;
        for (std::size_t d = lane; d < D; d += 32) {
            const float x = static_cast<float>(qr[d]);
            bad = bad || !finite(x);
            q_rows[warp * D + d] = finite(x) ? x * scale : 0.0f;
        }
        poisoned = __any_sync(0xffffffffu, bad) != 0;
    }
    warp_row<simd::cuda_warp, DPL> w{};
    const index_range cr = mask.cols(static_cast<std::int64_t>(i0), static_cast<std::int64_t>(i1), lq, lk);
    for (std::int64_t j0 = cr.empty() ? cr.hi : cr.lo / static_cast<std::int64_t>(BK) * static_cast<std::int64_t>(BK);
         j0 < cr.hi; j0 += static_cast<std::int64_t>(BK)) {
        __syncthreads();  // the previous tile (and its flags) are no longer read
        for (std::size_t j = threadIdx.x; j < BK; j += blockDim.x) {
            key_bad[j] = 0;
        }
        __syncthreads();  // the flags are cleared before any is set
        for (std::size_t idx = threadIdx.x; idx < BK * D; idx += blockDim.x) {
            const std::size_t j = idx / D, d = idx % D;
            const std::size_t key = static_cast<std::size_t>(j0) + j;
            const bool real = key < seq_k;
            const float kx = real ? static_cast<float>(k(b, key, g, d)) : 0.0f;
            const float vx = real ? static_cast<float>(v(b, key, g, d)) : 0.0f;
            if (!finite(kx) || !finite(vx)) {
                key_bad[j] = 1;  // every writer stores the same value
            }
            k_tile[idx] = finite(kx) ? kx : 0.0f;
            v_tile[idx] = finite(vx) ? vx : 0.0f;
        }
        __syncthreads();  // the tile, its flags (and the q rows) are staged
        if (row_valid) {
            const std::int64_t cols = lk - j0 < static_cast<std::int64_t>(BK) ? lk - j0 : static_cast<std::int64_t>(BK);
            const bool full = cols == static_cast<std::int64_t>(BK) &&
                              mask.full(static_cast<std::int64_t>(i0), static_cast<std::int64_t>(i1), j0,
                                        j0 + static_cast<std::int64_t>(BK), lq, lk);
            warp_row_step<simd::cuda_warp, KPL, DPL>(w, q_rows + warp * D, k_tile, v_tile, D, D,
                                                     static_cast<std::int64_t>(i), j0, cols, lq, lk, mask,
                                                     full, cap, p_stage + warp * BK, [] { __syncwarp(); });
            bool sees_bad = false;
            for (std::size_t j = lane; j < BK; j += 32) {
                const auto key = j0 + static_cast<std::int64_t>(j);
                sees_bad = sees_bad || (static_cast<std::int64_t>(j) < cols && key_bad[j] != 0 &&
                                        mask.allowed(static_cast<std::int64_t>(i), key, lq, lk));
            }
            poisoned = poisoned || __any_sync(0xffffffffu, sees_bad) != 0;
        }
    }
    if (row_valid) {
        TO* out = o.ptr(b, i, h, 0);
        float* lse = lse_view.ptr(b, h, i);
        warp_row_finish(w, out, D, lse);
        if (poisoned) {
            __syncwarp();  // the finished row is written before it is overwritten
            for (std::size_t d = lane; d < D; d += 32) {
                out[d] = TO(nan);
            }
            if (lane == 0) {
                *lse = nan;
            }
        }
    }
}

/// Keys per lane of a tile: one, so a tile is 32 keys; 2 x 32 x D fp32 of staged K and V is
/// 32 KiB at D = 128 and fits the default 48 KiB of shared memory with the q rows.
inline constexpr std::size_t cuda_kpl = 1;

/// Launches flash_forward_kernel on the checked views: DPL from q's static head_dim (ceil(D / 32)),
/// or 8 (the most, head_dim 256) when it is dynamic.
template <class Q, class K, class V, class O, class L, class Mask>
void launch_forward(const Q& q, const K& k, const V& v, const O& o, const L& lse, float scale, float cap, const Mask& mask,
                    cudaStream_t stream) {
    constexpr std::size_t BK = 32 * cuda_kpl;
    constexpr std::size_t static_d = Q::shape_type::static_extent(3);
    constexpr std::size_t DPL = static_d == llm::dyn ? 8 : (static_d + 31) / 32;
    const std::size_t D = q.extent(3);
    const std::size_t smem = (2 * BK * D + cuda_warps * D + cuda_warps * BK) * sizeof(float) + BK * sizeof(unsigned);
    auto kernel = flash_forward_kernel<cuda_kpl, DPL, Q, K, V, O, L, Mask>;
    if (smem > 48 * 1024) {
        const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
        llm::check(e == cudaSuccess, "flash_forward_cuda: cannot reserve ", smem, " bytes of shared memory: ",
                   cudaGetErrorString(e));
    }
    const dim3 grid(static_cast<unsigned>((q.extent(1) + cuda_warps - 1) / cuda_warps), static_cast<unsigned>(q.extent(2)),
                    static_cast<unsigned>(q.extent(0)));
    kernel<<<grid, 32 * cuda_warps, smem, stream>>>(q, k, v, o, lse, scale, cap, mask);
    const cudaError_t e = cudaGetLastError();
    llm::check(e == cudaSuccess, "flash_forward_cuda: kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace detail

/// Attention forward on a CUDA device (its GPU test has run once, on an H200: see the top of this file): the
/// contract of flash_forward (same shapes, masks except varlen, options, element types: q, k,
/// v fp32 or bf16, o fp32 or bf16, lse fp32), on device memory, asynchronous on `stream`.
/// head_dim up to 256 (ceil(D / 32) <= 8 output columns per lane). Each warp computes one query
/// row with the online softmax of tile.hpp; blocks of 4 rows share K/V tiles of 32 keys staged
/// in shared memory; fully masked tiles are skipped. Non-finite inputs: as flash_forward (the
/// rows that see a NaN or inf in q, k or v get NaN outputs and lse; no other row changes).
/// Arguments (docs/conventions.md): output o, saved state lse, inputs q, k, v (device memory,
/// views of any strides, except that head_dim must be the unit-stride dimension of q, k, v
/// and o), options mask and opt, the stream last (the executor's place).
/// Mask: a mask_policy (no_mask, causal, sliding_window or a user's own, whose members are
/// LLM_HD; no varlen yet).
/// Example: `llm::attention::flash_forward_cuda(o, lse, q, k, v, llm::attention::causal{}, {}, stream);`
template <mask_policy Mask = no_mask, mutable_dense_view<4> O, view_of_rank<3> L, dense_view<4> Q, dense_view<4> K,
          dense_view<4> V>
    requires std::same_as<view_element_t<L>, float> &&
             std::same_as<std::remove_const_t<view_element_t<Q>>, std::remove_const_t<view_element_t<K>>> &&
             std::same_as<std::remove_const_t<view_element_t<Q>>, std::remove_const_t<view_element_t<V>>>
void flash_forward_cuda(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask = {}, const options& opt = {},
                        cudaStream_t stream = nullptr) {
    constexpr const char* fn = "flash_forward_cuda";
    const auto f = detail::check_forward<llm::unit_last_stride<4>>(fn, q, k, v, o, lse);
    llm::check(f.sh.head_dim <= 256, fn, ": head_dim = ", f.sh.head_dim, " exceeds 256");
    if (f.sh.batch == 0 || f.sh.seq_q == 0 || f.sh.heads == 0) {
        return;
    }
    const float scale = detail::resolve_scale(fn, opt, f.sh.head_dim);
    // The common head_dims get a kernel with a static head_dim; any other runs the dynamic one.
    llm::with_static_extent<3, 32, 64, 80, 96, 128, 160, 192, 256>(f.q, [&](const auto& qd) {
        detail::launch_forward(qd, f.k, f.v, f.o, f.lse, scale, opt.softcap, mask, stream);
    });
}

}  // namespace llm::attention

#endif  // LLM_CUDA_COMPILE
