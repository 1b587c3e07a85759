// SPDX-License-Identifier: Apache-2.0
// llm::quant::block_format: what a quantization format type provides, and the GGUF facts checked against it.
#pragma once

#include <llm/io/ggml_type.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
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

/// The type a matrix whose rows hold `row_length` values gets when `t` is asked for: `t` when
/// its block divides the rows, else llama.cpp's fallback (q4_K -> q5_0, q5_K -> q5_1, q6_K ->
/// q8_0, q2_K / q3_K -> q4_0, then f16), so converted and quantized files match its choices.
/// Example: `llm::quant::fitting_type(llm::io::ggml_type::q4_k, 4096);  // q4_k (4096 % 256 == 0)`
constexpr io::ggml_type fitting_type(io::ggml_type t, std::uint64_t row_length) {
    if (row_length % io::ggml_traits(t).block_size == 0) return t;
    io::ggml_type f = io::ggml_type::f16;
    switch (t) {
        case io::ggml_type::q4_k: f = io::ggml_type::q5_0; break;
        case io::ggml_type::q5_k: f = io::ggml_type::q5_1; break;
        case io::ggml_type::q6_k: f = io::ggml_type::q8_0; break;
        case io::ggml_type::q2_k:
        case io::ggml_type::q3_k: f = io::ggml_type::q4_0; break;
        default: break;
    }
    return row_length % io::ggml_traits(f).block_size == 0 ? f : io::ggml_type::f16;
}

/// llama.cpp's `general.file_type` (enum llama_ftype) for a file whose matrices are `t`, as
/// llama-quantize writes it for that type name: K-quant names are its aliases (q3_K -> Q3_K_M =
/// 12, q4_K -> Q4_K_M = 15, q5_K -> Q5_K_M = 17); empty for a type with no llama_ftype (q8_1, q8_K).
/// Example: `llm::quant::llama_file_type(llm::io::ggml_type::q4_k);  // 15`
constexpr std::optional<std::uint32_t> llama_file_type(io::ggml_type t) {
    switch (t) {
        case io::ggml_type::f32: return 0;
        case io::ggml_type::f16: return 1;
        case io::ggml_type::q4_0: return 2;
        case io::ggml_type::q4_1: return 3;
        case io::ggml_type::q8_0: return 7;
        case io::ggml_type::q5_0: return 8;
        case io::ggml_type::q5_1: return 9;
        case io::ggml_type::q2_k: return 10;
        case io::ggml_type::q3_k: return 12;
        case io::ggml_type::q4_k: return 15;
        case io::ggml_type::q5_k: return 17;
        case io::ggml_type::q6_k: return 18;
        case io::ggml_type::bf16: return 32;
        default: return std::nullopt;
    }
}

}  // namespace llm::quant
