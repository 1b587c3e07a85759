// SPDX-License-Identifier: Apache-2.0
// llm::quant::reference_gemm: the dequantize-then-fp32 product the quantized kernels are tested against.
#pragma once

#include <llm/core/error.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/tensor/concepts.hpp>

#include <cstddef>
#include <vector>

namespace llm::quant {

/// y(m, n) = sum_k x(m, k) W(n, k) with W dequantized (F::dequantize_block, the floats ggml's
/// dequantize gives) and every product and sum in double, rounded to float once at the end:
/// the slow, obviously correct oracle of gemv / gemm (the activations are used as they are,
/// not quantized). Sequential; for tests and benchmarks' checks.
///   y: [M, N] fp32, x: [M, K] fp32 or bf16, w: [N, K] quantized (unit column stride).
/// Example: `llm::quant::reference_gemm(y_ref, x, w);`
template <view_of_rank<2> Y, dense_view<2> X, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float>
void reference_gemm(Y&& y, X&& x, W&& w) {
    using F = weight_format_t<W>;
    constexpr std::size_t B = F::block_size;
    const std::size_t w_rs = detail::check_weights("reference_gemm", w);
    const std::size_t n = static_cast<std::size_t>(w.extent(0)), k = static_cast<std::size_t>(w.extent(1));
    const std::size_t m = static_cast<std::size_t>(x.extent(0));
    llm::check(static_cast<std::size_t>(x.extent(1)) == k && static_cast<std::size_t>(y.extent(0)) == m &&
                   static_cast<std::size_t>(y.extent(1)) == n,
               "reference_gemm<", F::name, ">: shapes y [", y.extent(0), ", ", y.extent(1), "], x [", x.extent(0),
               ", ", x.extent(1), "], w [", n, ", ", k, "] do not fit y = x w^T");
    std::vector<float> row(k);
    float values[B];
    for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t b = 0; b < k / B; ++b) {
            F::dequantize_block(w.data()[j * w_rs + b], values);
            for (std::size_t i = 0; i < B; ++i) {
                row[b * B + i] = values[i];
            }
        }
        for (std::size_t i = 0; i < m; ++i) {
            double s = 0.0;
            for (std::size_t p = 0; p < k; ++p) {
                s += static_cast<double>(row[p]) *
                     static_cast<double>(static_cast<float>(x.data()[i * x.stride(0) + p * x.stride(1)]));
            }
            y.data()[i * y.stride(0) + j * y.stride(1)] = static_cast<float>(s);
        }
    }
}

}  // namespace llm::quant
