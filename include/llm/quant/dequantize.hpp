// SPDX-License-Identifier: Apache-2.0
// llm::quant::dequantize: blocks of any block_format back to floats, with the sizes checked.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/quant/format.hpp>

#include <cstddef>
#include <span>
#include <vector>

namespace llm::quant {

/// Decodes the blocks x into y, block i into y[i * F::block_size, (i + 1) * F::block_size).
/// llm::error when y.size() is not x.size() * F::block_size.
/// Example: `llm::quant::dequantize<llm::quant::q8_0>(blocks, out);`
template <block_format F>
void dequantize(std::span<const typename F::block> x, std::span<float> y) {
    // y.size() / block_size == x.size() rather than x.size() * block_size: no overflow.
    llm::check(y.size() % F::block_size == 0 && y.size() / F::block_size == x.size(), "dequantize<", F::name, ">: y has ",
               y.size(), " values but x (", x.size(), " blocks of ", F::block_size, ") decodes to ",
               x.size() <= static_cast<std::size_t>(-1) / F::block_size ? x.size() * F::block_size : 0, "");
    for (std::size_t i = 0; i < x.size(); ++i) {
        F::dequantize_block(x[i], y.data() + i * F::block_size);
    }
}

/// Decodes the blocks x into a new vector of x.size() * F::block_size floats.
/// Example: `std::vector<float> w = llm::quant::dequantize<llm::quant::q4_k>(blocks);`
template <block_format F>
std::vector<float> dequantize(std::span<const typename F::block> x) {
    const std::size_t n = checked_mul(x.size(), F::block_size, "dequantize", "x.size() * block_size");
    std::vector<float> y;
    llm::allocating(checked_bytes<float>(n, "dequantize", "the values"), "dequantize", "the values",
                    [&] { y.resize(n); });
    dequantize<F>(x, std::span<float>(y));
    return y;
}

}  // namespace llm::quant
