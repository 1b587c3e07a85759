// SPDX-License-Identifier: Apache-2.0
// llm::quant::quantize: floats to blocks of any block_format, with the sizes checked.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/quant/format.hpp>

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace llm::quant {

/// The number of F blocks that hold n values; llm::error when n is not a multiple of
/// F::block_size. `function` names the caller in the message.
/// Example: `llm::quant::blocks_for<llm::quant::q4_k>(4096);  // 16`
template <block_format F>
std::size_t blocks_for(std::size_t n, const char* function = "blocks_for") {
    llm::check(n % F::block_size == 0, function, "<", F::name, ">: ", n,
               " values are not a multiple of the block size ", F::block_size);
    return n / F::block_size;
}

/// Quantizes x into y, block i from x[i * F::block_size, (i + 1) * F::block_size), with F's
/// reference quantizer (for the built-in formats the bytes ggml's quantize_row_*_ref writes).
/// llm::error when x.size() is not a multiple of F::block_size, when y does not have exactly
/// x.size() / F::block_size blocks, or when x holds a NaN or infinity (named by index).
/// Example: `std::vector<llm::quant::block_q8_0> b(n / 32); llm::quant::quantize<llm::quant::q8_0>(x, b);`
template <block_format F>
void quantize(std::span<const float> x, std::span<typename F::block> y) {
    const std::size_t blocks = blocks_for<F>(x.size(), "quantize");
    llm::check(y.size() == blocks, "quantize<", F::name, ">: y has ", y.size(), " blocks but x (", x.size(),
               " values) needs ", blocks);
    for (std::size_t i = 0; i < blocks; ++i) {
        const float* xb = x.data() + i * F::block_size;
        bool finite = true;
        for (std::size_t j = 0; j < F::block_size; ++j) {
            finite &= std::isfinite(xb[j]);
        }
        if (!finite) [[unlikely]] {
            for (std::size_t j = 0; j < F::block_size; ++j) {
                llm::check(std::isfinite(xb[j]), "quantize<", F::name, ">: x[", i * F::block_size + j,
                           "] = ", xb[j], " is not finite");
            }
        }
        F::quantize_block(xb, y[i]);
    }
}

/// Quantizes x into a new vector of x.size() / F::block_size blocks (checks as above).
/// Example: `auto blocks = llm::quant::quantize<llm::quant::q4_k>(weights);`
template <block_format F>
std::vector<typename F::block> quantize(std::span<const float> x) {
    const std::size_t blocks = blocks_for<F>(x.size(), "quantize");
    std::vector<typename F::block> y;
    llm::allocating(blocks * sizeof(typename F::block), "quantize", "the blocks", [&] { y.resize(blocks); });
    quantize<F>(x, std::span<typename F::block>(y));
    return y;
}

}  // namespace llm::quant
