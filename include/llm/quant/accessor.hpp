// SPDX-License-Identifier: Apache-2.0
// Accessor policies that let llm::tensor_view read block-quantized storage: element i decoded on access.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>
#include <llm/quant/basic_formats.hpp>
#include <llm/quant/blocks.hpp>
#include <llm/quant/format.hpp>
#include <llm/tensor/accessor.hpp>
#include <llm/tensor/device.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/layout.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>
#include <type_traits>

// A view of quantized weights is `tensor_view<const float, Extents, Layout, Device, A>` with A
// one of the accessors below: its data() is a pointer to blocks, element i (the layout
// mapping's offset) is value i % block_size of block i / block_size, decoded to float on each
// access (read-only: the reference type is float). Offsets must fall on block boundaries, so
// slice / select / subtensor take whole blocks (a row of a [rows, cols] view when cols is a
// multiple of the block size; column ranges in multiples of it); any other offset is an
// llm::error naming the accessor, the offset and the block size. These views are not
// llm::direct_access, so dense kernels, fill, copy and to_string refuse them at compile time.

namespace llm::quant {

namespace detail {

[[noreturn]] inline void misaligned_block_offset(const char* accessor, std::size_t i, std::size_t block_size) {
    llm::fail(accessor, "::offset: element offset ", i, " is not a multiple of the block size ", block_size,
              " (views of quantized blocks start on a block boundary: slice whole blocks)");
}

// llm::error (LLM_ASSERT in device code) unless i is a multiple of block_size.
LLM_HD constexpr void check_block_offset(const char* accessor, std::size_t i, std::size_t block_size) {
#if defined(__CUDA_ARCH__)
    (void)accessor;
    LLM_ASSERT(i % block_size == 0);
    (void)i;
    (void)block_size;
#else
    if (i % block_size != 0) [[unlikely]] {
        misaligned_block_offset(accessor, i, block_size);
    }
#endif
}

}  // namespace detail

/// Decodes value j of a block by decoding the whole block with F::dequantize_block: exact for
/// any block_format, at the cost of a block per value (256 for the K formats).
struct whole_block_decode {
    static constexpr const char* name = "block_accessor";  ///< The accessor's name in messages.
    /// Value j of block b of format F.
    template <block_format F>
    LLM_HD static float value(const typename F::block& b, std::size_t j) noexcept {
        float values[F::block_size];
        F::dequantize_block(b, values);
        return values[j];
    }
};

/// Decodes one Q8_0 value: `float(qs[j]) * float(d)`, bit for bit what q8_0::dequantize_block
/// writes (one rounding of the product).
struct q8_0_decode {
    static constexpr const char* name = "q8_0_accessor";  ///< The accessor's name in messages.
    /// Value j of a Q8_0 block.
    template <block_format F>
    LLM_HD static constexpr float value(const block_q8_0& b, std::size_t j) noexcept {
        return static_cast<float>(b.qs[j]) * static_cast<float>(b.d);
    }
};

/// Decodes one Q4_0 value: `float(code - 8) * float(d)`, code the low nibble of qs[j] for
/// j < 16 and the high nibble of qs[j - 16] otherwise; bit for bit what q4_0::dequantize_block writes.
struct q4_0_decode {
    static constexpr const char* name = "q4_0_accessor";  ///< The accessor's name in messages.
    /// Value j of a Q4_0 block.
    template <block_format F>
    LLM_HD static constexpr float value(const block_q4_0& b, std::size_t j) noexcept {
        const int code = j < 16 ? (b.qs[j] & 0x0F) : (b.qs[j - 16] >> 4);
        return static_cast<float>(code - 8) * static_cast<float>(b.d);
    }
};

/// Reads blocks of a block_format F as floats: element i is value i % F::block_size of block
/// i / F::block_size, decoded by the policy Decode (`Decode::value<F>(block, j)`). Empty, so a
/// view through it is a block pointer plus the mapping.
/// Template parameters:
///   F      — an llm::quant::block_format.
///   Decode — whole_block_decode (any format: for inspection and tests rather than inner
///            loops), or a one-value decoder (q8_0_decode, q4_0_decode, a user's).
/// Example: `llm::tensor_view<const float, llm::dims<1>, llm::layout_right, llm::cpu, llm::quant::block_accessor<llm::quant::q4_k>> v(blocks.data(), n);`
template <block_format F, class Decode = whole_block_decode>
struct block_accessor {
    using offset_policy = block_accessor;                ///< Offsetting (by whole blocks) keeps the policy.
    using element_type = const float;                    ///< The decoded value, read-only.
    using reference = float;                             ///< Access returns the value.
    using data_handle_type = const typename F::block*;  ///< The blocks.
    using format = F;                                    ///< The block format read.
    static constexpr std::size_t block_size = F::block_size;  ///< Values per block.

    /// Element i: value i % block_size of block i / block_size.
    LLM_HD constexpr reference access(data_handle_type p, std::size_t i) const noexcept {
        return Decode::template value<F>(p[i / block_size], i % block_size);
    }
    /// The handle of element i: p + i / block_size. llm::error unless i is a multiple of
    /// block_size.
    LLM_HD constexpr data_handle_type offset(data_handle_type p, std::size_t i) const {
        detail::check_block_offset(Decode::name, i, block_size);
        return p + i / block_size;
    }
};

/// Q8_0 blocks read one value at a time.
/// Example: `llm::tensor_view<const float, llm::dims<2>, llm::layout_right, llm::cpu, llm::quant::q8_0_accessor> w(blocks.data(), rows, cols);`
using q8_0_accessor = block_accessor<q8_0, q8_0_decode>;

/// Q4_0 blocks read one value at a time.
/// Example: `llm::tensor_view<const float, llm::dims<2>, llm::layout_right, llm::cpu, llm::quant::q4_0_accessor> w(blocks.data(), rows, cols);`
using q4_0_accessor = block_accessor<q4_0, q4_0_decode>;

/// An accessor over the blocks of a block_format: q8_0_accessor, q4_0_accessor,
/// block_accessor<F>, or a user's with the same members (an llm::accessor_policy reading
/// `const float` from `const format::block*`, with `block_size` equal to the format's).
/// Example: `static_assert(llm::quant::block_accessor_policy<llm::quant::q8_0_accessor>);`
template <class A>
concept block_accessor_policy =
    accessor_policy<A> && block_format<typename A::format> &&
    std::same_as<typename A::data_handle_type, const typename A::format::block*> &&
    std::same_as<typename A::element_type, const float> && (A::block_size == A::format::block_size);

/// The row-major [rows, cols] view of quantized rows through accessor A: row r is the blocks
/// [r * cols / B, (r + 1) * cols / B) with B = A::block_size, as GGUF stores a weight matrix
/// (ggml's ne0 = cols). Checked: llm::error unless cols is a multiple of B and blocks holds
/// exactly rows * cols / B blocks. Rows, and column ranges in multiples of B, slice freely.
/// Template parameters:
///   A — a block_accessor_policy (default-constructible).
/// Example: `auto w = llm::quant::matrix_view<llm::quant::q8_0_accessor>(blocks, rows, cols); float x = w(r, c);`
template <block_accessor_policy A>
    requires std::default_initializable<A>
tensor_view<const float, dims<2>, layout_right, cpu, A> matrix_view(
    std::span<const typename A::format::block> blocks, std::size_t rows, std::size_t cols) {
    constexpr std::size_t b = A::block_size;
    const std::string_view name = A::format::name;
    llm::check(cols % b == 0, "matrix_view<", name, ">: cols = ", cols, " is not a multiple of the block size ", b);
    llm::check(rows == 0 || (cols / b <= blocks.size() / rows && rows * (cols / b) == blocks.size()),
               "matrix_view<", name, ">: ", blocks.size(), " blocks do not hold ", rows, " rows of ", cols,
               " values (", cols / b, " blocks each)");
    llm::check(rows != 0 || blocks.empty(), "matrix_view<", name, ">: ", blocks.size(),
               " blocks do not hold 0 rows");
    return {blocks.data(), rows, cols};
}

static_assert(block_accessor_policy<q8_0_accessor> && block_accessor_policy<q4_0_accessor>);
static_assert(std::is_empty_v<q8_0_accessor> && std::is_empty_v<q4_0_accessor>);

}  // namespace llm::quant
