// SPDX-License-Identifier: Apache-2.0
// llm::quant::block_dot: one weight block decoded in registers and dotted with fp32 activations, shared by
// the CPU's generic path and the CUDA kernels (LLM_HD).
#pragma once

#include <llm/config.hpp>
#include <llm/quant/basic_formats.hpp>
#include <llm/quant/blocks.hpp>
#include <llm/quant/detail/rounding.hpp>
#include <llm/quant/format.hpp>
#include <llm/quant/k_formats.hpp>

#include <cstddef>
#include <type_traits>

namespace llm::quant {

/// sum_j w_j x[j] over the F::block_size values w_j of block b, each w_j computed exactly as
/// F::dequantize_block writes it (the same roundings: ggml's dequantized value), summed
/// sequentially in fp32. Q4_0, Q8_0 and Q4_K decode each value in registers; any other
/// block_format decodes the block into a local array first. Host and device code.
/// Example: `float s = llm::quant::block_dot<llm::quant::q4_0>(blocks[b], x + 32 * b);`
template <block_format F>
LLM_HD inline float block_dot(const typename F::block& b, const float* x) noexcept {
    float s = 0.0f;
    if constexpr (std::is_same_v<F, q4_0>) {
        const auto d = static_cast<float>(b.d);
        for (int j = 0; j < 16; ++j) {
            s += static_cast<float>((b.qs[j] & 0x0F) - 8) * d * x[j];
        }
        for (int j = 0; j < 16; ++j) {
            s += static_cast<float>((b.qs[j] >> 4) - 8) * d * x[j + 16];
        }
    } else if constexpr (std::is_same_v<F, q8_0>) {
        const auto d = static_cast<float>(b.d);
        for (int j = 0; j < 32; ++j) {
            s += detail::mul(static_cast<float>(b.qs[j]), d) * x[j];
        }
    } else if constexpr (std::is_same_v<F, q4_k>) {
        const auto d = static_cast<float>(b.d);
        const auto dmin = static_cast<float>(b.dmin);
        for (int g = 0; g < 8; ++g) {
            std::uint8_t sc = 0;
            std::uint8_t m = 0;
            detail::scale_min_k4(g, b.scales, sc, m);
            const float dg = detail::mul(d, static_cast<float>(sc));
            const float mg = detail::mul(dmin, static_cast<float>(m));
            const std::uint8_t* q = b.qs + 32 * (g / 2);
            const int shift = 4 * (g % 2);
            for (int l = 0; l < 32; ++l) {
                const float w = detail::mul(dg, static_cast<float>((q[l] >> shift) & 0x0F)) - mg;
                s += w * x[32 * g + l];
            }
        }
    } else {
        float w[F::block_size];
        F::dequantize_block(b, w);
        for (std::size_t j = 0; j < F::block_size; ++j) {
            s += w[j] * x[j];
        }
    }
    return s;
}

}  // namespace llm::quant
