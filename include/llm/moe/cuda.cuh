// SPDX-License-Identifier: Apache-2.0
// CUDA MoE kernels: the fused softmax/sigmoid + top-k router (a warp per token), the dispatch plan (counting sort), permute (gather) and un-permute (weighted combine), over moe/tile.hpp.
//
// STATUS: compiled with nvcc for sm_80 and sm_90; NOT run on a GPU (no device was available to
// this work). The arithmetic is tile.hpp's: tests/moe/warp.cpp runs warp_route with
// llm::simd::emulated_warp<32> (whose butterfly is __shfl_xor_sync's order) against the CPU
// routers, and tests/moe/gpu.cu compares these kernels with the CPU path when a device is
// present (else it reports skipped).
//
// Data lives in device memory; the views are llm::kernel_view over device pointers. The calls
// are asynchronous on `stream`; errors of the launch are llm::error.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>
#include <llm/moe/params.hpp>
#include <llm/moe/router.hpp>
#include <llm/moe/tile.hpp>
#include <llm/simd/lanes.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <cstddef>
#include <cstdint>

#if LLM_CUDA_COMPILE

#include <cuda_runtime.h>

namespace llm::moe::cuda {

namespace detail {

/// Warps per block of the router kernel.
inline constexpr unsigned router_warps = 4;

inline void check_launch(const char* fn) {
    const cudaError_t err = cudaGetLastError();
    llm::check(err == cudaSuccess, fn, ": kernel launch failed: ", cudaGetErrorString(err));
}

struct warp_sync {
    __device__ void operator()() const { __syncwarp(); }
};

/// One warp per token: stage the logits row in shared memory, warp_route, write probs, experts
/// and weights (lane 0 writes the k picks; the picks are the same in every lane).
template <std::size_t EPL, bool Sigmoid>
__global__ void __launch_bounds__(32 * router_warps)
    router_kernel(llm::row_view<std::int32_t, 2> experts, llm::row_view<float, 2> weights,
                  llm::row_view<float, 2> probs, llm::row_view<const float, 2> logits, const float* bias,
                  std::size_t k, bool renormalize, float scale, std::size_t n_group, std::size_t topk_group,
                  std::size_t per_group) {
    extern __shared__ float smem[];
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    const std::size_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const std::size_t t = static_cast<std::size_t>(blockIdx.x) * router_warps + warp;
    if (t >= T) {
        return;  // the whole warp leaves together
    }
    float* l = smem + warp * 3 * E;
    float* p = l + E;
    float* key = p + E;
    for (std::size_t i = lane; i < E; i += 32) {
        l[i] = logits(t, i);
    }
    __syncwarp();
    std::int32_t idx[tile::max_warp_k];
    float w[tile::max_warp_k];
    tile::warp_route<llm::simd::cuda_warp, EPL, Sigmoid>(idx, w, p, key, l, bias, E, k, renormalize, scale, n_group,
                                                         topk_group, per_group, warp_sync{});
    for (std::size_t i = lane; i < E; i += 32) {
        probs(t, i) = p[i];
    }
    if (lane == 0) {
        for (std::size_t j = 0; j < k; ++j) {
            experts(t, j) = idx[j];
            weights(t, j) = w[j];
        }
    }
}

/// The dispatch plan in one block, one thread per expert: count the expert's pairs (scanning
/// every pair), a serial prefix sum by thread 0, then each thread places its pairs in (token,
/// slot) order. Deterministic and equal to llm::moe::plan_dispatch; O(E T S) work, meant for
/// the router-sized problems of one layer (E <= 1024).
__global__ void plan_kernel(std::size_t* offsets, std::int32_t* rows, std::int32_t* pos, unsigned long long* dropped,
                            const std::int32_t* experts, std::size_t pairs, std::size_t slots, std::size_t E,
                            std::size_t capacity) {
    const std::size_t e = threadIdx.x;
    for (std::size_t i = e; i < pairs; i += blockDim.x) {
        pos[i] = -1;
    }
    std::size_t n = 0;
    if (e < E) {
        for (std::size_t i = 0; i < pairs; ++i) {
            n += experts[i] == static_cast<std::int32_t>(e) ? 1 : 0;
        }
        offsets[e + 1] = n < capacity ? n : capacity;
    }
    __syncthreads();
    if (e == 0) {
        offsets[0] = 0;
        for (std::size_t x = 0; x < E; ++x) {
            offsets[x + 1] += offsets[x];
        }
    }
    __syncthreads();
    if (e < E) {
        std::size_t next = offsets[e];
        const std::size_t end = offsets[e + 1];
        for (std::size_t i = 0; i < pairs; ++i) {
            if (experts[i] == static_cast<std::int32_t>(e)) {
                if (next < end) {
                    rows[next] = static_cast<std::int32_t>(i / slots);
                    pos[i] = static_cast<std::int32_t>(next);
                    ++next;
                }
            }
        }
        if (n > end - offsets[e]) {
            atomicAdd(dropped, static_cast<unsigned long long>(n - (end - offsets[e])));
        }
    }
}

/// Permute: xp[i, :] = x[rows[i], :]; a block per row, threads over columns.
__global__ void gather_kernel(llm::row_view<float, 2> xp, llm::row_view<const float, 2> x, const std::int32_t* rows) {
    const std::size_t i = blockIdx.x, d = x.extent(1);
    const auto t = static_cast<std::size_t>(rows[i]);
    for (std::size_t c = threadIdx.x; c < d; c += blockDim.x) {
        xp(i, c) = x(t, c);
    }
}

/// Un-permute: y[t, c] (+)= tile::combine_column(...); a block per token, threads over columns.
__global__ void combine_kernel(llm::row_view<float, 2> y, const float* yp, const std::int32_t* pos, const float* w,
                               std::size_t slots, bool add) {
    const std::size_t t = blockIdx.x, d = y.extent(1);
    for (std::size_t c = threadIdx.x; c < d; c += blockDim.x) {
        const float v = tile::combine_column(yp, d, pos + t * slots, w + t * slots, slots, c);
        y(t, c) = add ? y(t, c) + v : v;
    }
}

template <bool Sigmoid>
void launch_router(const routing& out, llm::row_view<const float, 2> logits, const float* bias, std::size_t k,
                   bool renormalize, float scale, const group_limit& g, cudaStream_t stream) {
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    const unsigned blocks = static_cast<unsigned>((T + router_warps - 1) / router_warps);
    const std::size_t smem = router_warps * 3 * E * sizeof(float);
    auto go = [&](auto kernel) {
        kernel<<<blocks, 32 * router_warps, smem, stream>>>(out.experts, out.weights, out.probs, logits, bias, k,
                                                             renormalize, scale, g.n_group, g.topk_group, g.per_group);
    };
    if (E <= 32) {
        go(router_kernel<1, Sigmoid>);
    } else if (E <= 64) {
        go(router_kernel<2, Sigmoid>);
    } else if (E <= 128) {
        go(router_kernel<4, Sigmoid>);
    } else {
        go(router_kernel<8, Sigmoid>);
    }
    check_launch("moe::cuda::route");
}

}  // namespace detail

/// Routes T tokens on the device with softmax_top_k's rule (a warp per token: softmax, group
/// limit, top-k with the lower-index tie-break, weights renormalised or not, scaled). Writes
/// experts [T, k], weights [T, k], probs [T, E] from logits [T, E], all device memory, rows
/// contiguous. E <= 256, k <= 32. The softmax's sum is a warp reduction: probabilities differ
/// from the CPU router's by rounding (at most (E + 4) u relative), so a pick can differ only
/// where two probabilities are that close. NaN logits are not checked on the device.
/// Example: `llm::moe::cuda::route(experts, weights, probs, logits, llm::moe::softmax_top_k{.k = 2}, stream);`
inline void route(const routing& out, llm::row_view<const float, 2> logits, const softmax_top_k& r,
                  cudaStream_t stream = nullptr) {
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    llm::check(E >= 1 && E <= 256 && r.k >= 1 && r.k <= E && r.k <= tile::max_warp_k, "moe::cuda::route: E = ", E,
               ", k = ", r.k, " (need 1 <= k <= min(E, 32), E <= 256)");
    ::llm::moe::detail::check_group("moe::cuda::route", r.groups, E, r.k);
    ::llm::moe::detail::check_routing("moe::cuda::route", out, T, E, r.k);
    if (T == 0) {
        return;
    }
    detail::launch_router<false>(out, logits, nullptr, r.k, r.renormalize, r.scale, r.groups, stream);
}

/// As above with sigmoid_top_k's rule (sigmoid scores, selection bias, DeepSeek-V3). The
/// router's bias span must point to device memory (E floats) or be empty.
/// Example: `llm::moe::cuda::route(experts, weights, probs, logits, llm::moe::sigmoid_top_k{.k = 8, .bias = dev_bias}, stream);`
inline void route(const routing& out, llm::row_view<const float, 2> logits, const sigmoid_top_k& r,
                  cudaStream_t stream = nullptr) {
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    llm::check(E >= 1 && E <= 256 && r.k >= 1 && r.k <= E && r.k <= tile::max_warp_k, "moe::cuda::route: E = ", E,
               ", k = ", r.k, " (need 1 <= k <= min(E, 32), E <= 256)");
    llm::check(r.bias.empty() || r.bias.size() == E, "moe::cuda::route: bias has ", r.bias.size(), " entries for ", E,
               " experts");
    ::llm::moe::detail::check_group("moe::cuda::route", r.groups, E, r.k);
    ::llm::moe::detail::check_routing("moe::cuda::route", out, T, E, r.k);
    if (T == 0) {
        return;
    }
    detail::launch_router<true>(out, logits, r.bias.empty() ? nullptr : r.bias.data(), r.k, r.renormalize, r.scale,
                                r.groups, stream);
}

/// The dispatch plan on the device (as llm::moe::plan_dispatch): offsets [E + 1], rows [N]
/// (N = the kept pairs, at most T * slots), pos [T * slots], dropped (one counter, zeroed by the
/// caller) from experts [T, slots], device memory. E <= 1024.
/// Example: `llm::moe::cuda::plan_dispatch(offsets, rows, pos, dropped, experts, 8, llm::moe::dropless, stream);`
inline void plan_dispatch(std::size_t* offsets, std::int32_t* rows, std::int32_t* pos, unsigned long long* dropped,
                          llm::row_view<const std::int32_t, 2> experts, std::size_t n_experts,
                          std::size_t capacity = dropless, cudaStream_t stream = nullptr) {
    llm::check(n_experts >= 1 && n_experts <= 1024, "moe::cuda::plan_dispatch: n_experts = ", n_experts,
               " must be in [1, 1024]");
    const std::size_t pairs = experts.extent(0) * experts.extent(1);
    detail::plan_kernel<<<1, 1024, 0, stream>>>(offsets, rows, pos, dropped, experts.data(), pairs, experts.extent(1),
                                                n_experts, capacity);
    detail::check_launch("moe::cuda::plan_dispatch");
}

/// Permute: xp [N, d] = x [T, d] rows[i] (device memory). Example: `llm::moe::cuda::gather(xp, x, rows, stream);`
inline void gather(llm::row_view<float, 2> xp, llm::row_view<const float, 2> x, const std::int32_t* rows,
                   cudaStream_t stream = nullptr) {
    if (xp.extent(0) == 0) {
        return;
    }
    detail::gather_kernel<<<static_cast<unsigned>(xp.extent(0)), 128, 0, stream>>>(xp, x, rows);
    detail::check_launch("moe::cuda::gather");
}

/// Un-permute: y [T, d] = (y +) sum_j w[t, j] yp[pos[t, j]] (device memory; add: keep y's
/// values, e.g. the shared experts' output). Example: `llm::moe::cuda::combine(y, yp, pos, w, 2, false, stream);`
inline void combine(llm::row_view<float, 2> y, const float* yp, const std::int32_t* pos, const float* w,
                    std::size_t slots, bool add, cudaStream_t stream = nullptr) {
    if (y.extent(0) == 0) {
        return;
    }
    detail::combine_kernel<<<static_cast<unsigned>(y.extent(0)), 128, 0, stream>>>(y, yp, pos, w, slots, add);
    detail::check_launch("moe::cuda::combine");
}

}  // namespace llm::moe::cuda

#endif  // LLM_CUDA_COMPILE
