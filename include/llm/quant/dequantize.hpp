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

namespace detail {

/// llm::error from `function` unless `values` == `blocks` * F::block_size (compared as
/// values / block_size == blocks, so the product cannot overflow).
template <block_format F>
void check_dequantize_sizes(std::size_t blocks, std::size_t values, const char* function) {
    llm::check(values % F::block_size == 0 && values / F::block_size == blocks, function, "<", F::name,
               ">: y has ", values, " values but x (", blocks, " blocks of ", F::block_size, ") decodes to ",
               blocks <= static_cast<std::size_t>(-1) / F::block_size ? blocks * F::block_size : 0);
}

}  // namespace detail

/// Decodes the blocks x into y, block i into y[i * F::block_size, (i + 1) * F::block_size).
/// llm::error when y.size() is not x.size() * F::block_size.
/// Example: `llm::quant::dequantize<llm::quant::q8_0>(blocks, out);`
template <block_format F>
void dequantize(std::span<const typename F::block> x, std::span<float> y) {
    detail::check_dequantize_sizes<F>(x.size(), y.size(), "dequantize");
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
