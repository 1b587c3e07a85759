// SPDX-License-Identifier: Apache-2.0
// llm::quant::quantized_matrix: the concept of a [rows, cols] view of block-quantized weights, and the checks
// the CPU and CUDA products share on it.
#pragma once

#include <llm/core/error.hpp>
#include <llm/quant/accessor.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm::quant {

/// A rank-2 view of block-quantized weights: an llm::tensor_view (or a type with its members)
/// whose accessor is a block_accessor_policy, as llm::quant::matrix_view returns. Its
/// `data()` points at the blocks; row r of a [rows, cols] view starts at block
/// `r * stride(0) / block_size`.
/// Example: `static_assert(llm::quant::quantized_matrix<decltype(llm::quant::matrix_view<llm::quant::q4_0_accessor>(blocks, n, k))>);`
template <class W>
concept quantized_matrix = requires(const std::remove_cvref_t<W>& w) {
    typename std::remove_cvref_t<W>::accessor_type;
    { w.data() } -> std::convertible_to<const typename std::remove_cvref_t<W>::accessor_type::format::block*>;
    { w.extent(0) } -> std::convertible_to<std::size_t>;
    { w.stride(0) } -> std::convertible_to<std::size_t>;
    requires std::remove_cvref_t<W>::rank() == 2;
} && block_accessor_policy<typename std::remove_cvref_t<W>::accessor_type>;

/// The block format of a quantized_matrix.
/// Example: `using F = llm::quant::weight_format_t<decltype(w)>;  // llm::quant::q4_0`
template <quantized_matrix W>
using weight_format_t = typename std::remove_cvref_t<W>::accessor_type::format;

namespace detail {

/// The checks gemv and gemm share on W: unit column stride, rows on block boundaries, K a whole
/// number of blocks. Returns the row stride in blocks.
template <class W>
std::size_t check_weights(const char* fn, const W& w) {
    using F = weight_format_t<W>;
    constexpr std::size_t B = F::block_size;
    const std::size_t rows = static_cast<std::size_t>(w.extent(0)), cols = static_cast<std::size_t>(w.extent(1));
    llm::check(cols <= 1 || static_cast<std::size_t>(w.stride(1)) == 1, fn, "<", F::name,
               ">: w must have unit column stride (rows of consecutive blocks); its strides are [", w.stride(0),
               ", ", w.stride(1), "]");
    llm::check(cols % B == 0, fn, "<", F::name, ">: w has ", cols, " columns, not a multiple of the block size ", B);
    llm::check(rows <= 1 || static_cast<std::size_t>(w.stride(0)) % B == 0, fn, "<", F::name, ">: w's row stride ",
               w.stride(0), " is not a multiple of the block size ", B);
    return static_cast<std::size_t>(w.stride(0)) / B;
}

}  // namespace detail

}  // namespace llm::quant
