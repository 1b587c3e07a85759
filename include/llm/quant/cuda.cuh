// SPDX-License-Identifier: Apache-2.0
// CUDA dequantize and GEMV of block-quantized weights (Q4_0, Q8_0, Q4_K and any block_format), over the
// block decoding the CPU shares (F::dequantize_block, llm::quant::block_dot in tile.hpp).
#pragma once

#include <llm/config.hpp>

#if LLM_CUDA_COMPILE

#include <llm/core/error.hpp>
#include <llm/quant/format.hpp>
#include <llm/quant/tile.hpp>
#include <llm/quant/weights.hpp>
#include <llm/tensor/concepts.hpp>

#include <cuda_runtime.h>

#include <cstddef>

namespace llm::quant {

namespace detail {

/// One thread per block: F::dequantize_block of block i into y + i * F::block_size.
template <class F>
__global__ void dequantize_kernel(const typename F::block* w, std::size_t rows, std::size_t nb, std::size_t w_rs,
                                  float* y, std::size_t y_rs) {
    const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < rows * nb) {
        const std::size_t r = i / nb, b = i % nb;
        F::dequantize_block(w[r * w_rs + b], y + r * y_rs + b * F::block_size);
    }
}

/// Warps per thread block of gemv_kernel.
inline constexpr unsigned quant_cuda_warps = 4;

/// One warp per weight row: lane l takes blocks l, l + 32, ... (block_dot, the CPU's decoding),
/// then a butterfly sum over the warp; lane 0 writes y[row].
template <class F>
__global__ void __launch_bounds__(32 * quant_cuda_warps)
    gemv_kernel(const typename F::block* w, std::size_t rows, std::size_t nb, std::size_t w_rs, const float* x, float* y,
                std::size_t y_stride) {
    const std::size_t row = static_cast<std::size_t>(blockIdx.x) * quant_cuda_warps + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    if (row >= rows) {
        return;  // the whole warp: rows are per warp
    }
    float s = 0.0f;
    for (std::size_t b = lane; b < nb; b += 32) {
        s += block_dot<F>(w[row * w_rs + b], x + b * F::block_size);
    }
    for (int o = 16; o > 0; o /= 2) {
        s += __shfl_xor_sync(0xffffffffu, s, o);
    }
    if (lane == 0) {
        y[row * y_stride] = s;
    }
}

}  // namespace detail

/// Dequantizes a [rows, cols] quantized weight in device memory into the fp32 [rows, cols] view
/// `out` (device memory, unit column stride): each value exactly as F::dequantize_block (and
/// ggml) gives it. The stream last (the executor's place).
/// Example: `llm::quant::dequantize_cuda(w32, wq, stream);`
template <mutable_dense_view<2> O, quantized_matrix W>
    requires std::same_as<view_element_t<O>, float>
void dequantize_cuda(O&& out, W&& w, cudaStream_t stream = nullptr) {
    using F = weight_format_t<W>;
    const std::size_t w_rs = detail::check_weights("dequantize_cuda", w);
    const std::size_t rows = static_cast<std::size_t>(w.extent(0)), cols = static_cast<std::size_t>(w.extent(1));
    llm::check(static_cast<std::size_t>(out.extent(0)) == rows && static_cast<std::size_t>(out.extent(1)) == cols,
               "dequantize_cuda<", F::name, ">: out is [", out.extent(0), ", ", out.extent(1), "] but w is [", rows, ", ",
               cols, "]");
    llm::check(cols == 0 || static_cast<std::size_t>(out.stride(1)) == 1, "dequantize_cuda<", F::name,
               ">: out must have unit column stride");
    const std::size_t nb = cols / F::block_size, total = rows * nb;
    if (total == 0) {
        return;
    }
    constexpr unsigned threads = 128;
    detail::dequantize_kernel<F><<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, stream>>>(
        w.data(), rows, nb, w_rs, out.data(), static_cast<std::size_t>(out.stride(0)));
    const cudaError_t err = cudaGetLastError();
    llm::check(err == cudaSuccess, "dequantize_cuda<", F::name, ">: launch failed: ", cudaGetErrorString(err));
}

/// y = x W^T for one fp32 activation row on the GPU: W [N, K] quantized (device memory), x [K]
/// fp32 contiguous, y [N] fp32 (any stride); one warp per weight row, each value decoded in
/// registers by block_dot (the CPU generic path's decoding), fp32 sums (no activation
/// quantization). The stream last.
/// Example: `llm::quant::gemv_cuda(y, x, wq, stream);`
template <view_of_rank<1> Y, dense_view<1> X, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void gemv_cuda(Y&& y, X&& x, W&& w, cudaStream_t stream = nullptr) {
    using F = weight_format_t<W>;
    const std::size_t w_rs = detail::check_weights("gemv_cuda", w);
    const std::size_t n = static_cast<std::size_t>(w.extent(0)), k = static_cast<std::size_t>(w.extent(1));
    llm::check(static_cast<std::size_t>(x.extent(0)) == k, "gemv_cuda<", F::name, ">: x has ", x.extent(0),
               " values but w has ", k, " columns");
    llm::check(k <= 1 || static_cast<std::size_t>(x.stride(0)) == 1, "gemv_cuda<", F::name, ">: x must be contiguous");
    llm::check(static_cast<std::size_t>(y.extent(0)) == n, "gemv_cuda<", F::name, ">: y has ", y.extent(0),
               " values but w has ", n, " rows");
    if (n == 0) {
        return;
    }
    const unsigned blocks = static_cast<unsigned>((n + detail::quant_cuda_warps - 1) / detail::quant_cuda_warps);
    detail::gemv_kernel<F><<<blocks, 32 * detail::quant_cuda_warps, 0, stream>>>(
        w.data(), n, k / F::block_size, w_rs, x.data(), y.data(), static_cast<std::size_t>(y.stride(0)));
    const cudaError_t err = cudaGetLastError();
    llm::check(err == cudaSuccess, "gemv_cuda<", F::name, ">: launch failed: ", cudaGetErrorString(err));
}

}  // namespace llm::quant

#endif  // LLM_CUDA_COMPILE
