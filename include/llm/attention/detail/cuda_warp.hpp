// SPDX-License-Identifier: Apache-2.0
// The cuda_warp lanes policy: a CUDA warp's 32 threads, cross-lane steps by __shfl_xor_sync in emulated_warp<32>'s order.
#pragma once

#include <llm/config.hpp>
#include <llm/simd/lanes.hpp>

#include <cstddef>

#if LLM_CUDA_COMPILE

namespace llm::attention::detail {

/// A full CUDA warp as a lanes policy (see <llm/simd/lanes.hpp>): values<T> is T held by each
/// thread; combine_xor is the butterfly over offsets 16, 8, 4, 2, 1 with __shfl_xor_sync, the
/// order llm::simd::emulated_warp<32> reproduces on the CPU, so the tile maths tested there
/// reduces in the same order here. Device code only (the members are __device__).
/// Lives in attention/detail until the simd module adopts it next to emulated_warp.
struct cuda_warp {
    static constexpr std::size_t size = 32;
    template <class T>
    using values = T;

    /// This thread's lane, threadIdx.x % 32 (blocks are laid out with x as the fast index).
    __device__ static std::size_t lane() noexcept { return threadIdx.x & 31u; }

    template <class T>
    __device__ static T shfl_xor(const T& v, std::size_t offset) noexcept {
        return __shfl_xor_sync(0xffffffffu, v, static_cast<int>(offset), 32);
    }
    template <class T, class Op>
    __device__ static T combine_xor(T v, Op&& op) {
        for (std::size_t offset = size / 2; offset >= 1; offset /= 2) {
            v = op(v, shfl_xor(v, offset));
        }
        return v;
    }
    template <class T>
    __device__ static T reduce_sum(const T& v) noexcept {
        return combine_xor(v, llm::simd::detail::lanes_plus{});
    }
    template <class T>
    __device__ static T reduce_max(const T& v) noexcept {
        return combine_xor(v, llm::simd::detail::lanes_max{});
    }
};

}  // namespace llm::attention::detail

#endif  // LLM_CUDA_COMPILE
