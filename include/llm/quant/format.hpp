// SPDX-License-Identifier: Apache-2.0
// llm::quant::block_format: what a quantization format type provides, and the GGUF facts checked against it.
#pragma once

#include <llm/io/ggml_type.hpp>

#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>

namespace llm::quant {

/// A block quantization format: a policy type with static members only.
/// - `using block`: the stored block, a standard-layout, trivially copyable struct (its bytes
///   are the format's bytes; usable from CUDA);
/// - `block_size`: values per block (> 0); `name`: a std::string_view for messages;
/// - `quantize_block(const float* x, block& b)`: encodes x[0, block_size) (finite values);
/// - `dequantize_block(const block& b, float* y)`: decodes into y[0, block_size).
/// The built-in formats (llm::quant::q4_0 ... q8_k) also name their GGUF type in
/// `ggml_type` (see ggml_format). A user format is one such type, e.g.
/// `struct my_q8 { using block = ...; static constexpr std::size_t block_size = 32; ... };`
/// then `llm::quant::quantize<my_q8>(x, blocks)`.
template <class F>
concept block_format = std::is_standard_layout_v<typename F::block> &&
                       std::is_trivially_copyable_v<typename F::block> &&
                       std::same_as<std::remove_cv_t<decltype(F::block_size)>, std::size_t> &&
                       (F::block_size > 0) &&
                       std::convertible_to<decltype(F::name), std::string_view>&& requires(
                           const float* x, float* y, typename F::block& b, const typename F::block& cb) {
    F::quantize_block(x, b);
    F::dequantize_block(cb, y);
};

/// A block_format stored in GGUF files as `F::ggml_type`, with ggml's block size and bytes per
/// block (so a GGUF tensor of that type is an array of F::block).
template <class F>
concept ggml_format = block_format<F> &&
    std::same_as<std::remove_cv_t<decltype(F::ggml_type)>, io::ggml_type> && io::ggml_traits(F::ggml_type)
.block_size == F::block_size&& io::ggml_traits(F::ggml_type).type_size == sizeof(typename F::block);

}  // namespace llm::quant
