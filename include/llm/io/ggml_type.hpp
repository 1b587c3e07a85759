// SPDX-License-Identifier: Apache-2.0
// ggml tensor element types as stored in GGUF files: their ids, names, block sizes and block byte sizes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace llm::io {

/// A ggml tensor type id, as stored in a GGUF tensor info. Ids with no entry in the table
/// (4, 5, 31-33, 36-38: formats removed from GGUF, and anything past q1_0) are invalid.
enum class ggml_type : std::uint32_t {
    f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
    q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
    iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23,
    i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
    tq1_0 = 34, tq2_0 = 35, mxfp4 = 39, nvfp4 = 40, q1_0 = 41,
};

/// Layout facts of one ggml type: `block_size` elements are stored in `type_size` bytes
/// (1 and sizeof(element) for plain types). A tensor row (ne[0] elements) must hold a whole
/// number of blocks.
struct ggml_type_traits {
    std::string_view name;       ///< ggml's name ("q8_0", "f32", ...); empty for an invalid id
    std::uint32_t block_size;    ///< elements per block (0 for an invalid id)
    std::uint32_t type_size;     ///< bytes per block
    bool quantized;              ///< true for block formats (no plain element type)
};

namespace detail {

inline constexpr std::size_t ggml_type_count = 42;
inline constexpr std::uint32_t qk_k = 256;  // elements in a "K" super-block

// Indexed by id; the sizes follow ggml's block structs (e.g. q8_0: an f16 scale + 32 int8).
inline constexpr std::array<ggml_type_traits, ggml_type_count> ggml_types{{
    {"f32", 1, 4, false},
    {"f16", 1, 2, false},
    {"q4_0", 32, 2 + 16, true},
    {"q4_1", 32, 2 + 2 + 16, true},
    {},
    {},
    {"q5_0", 32, 2 + 4 + 16, true},
    {"q5_1", 32, 2 + 2 + 4 + 16, true},
    {"q8_0", 32, 2 + 32, true},
    {"q8_1", 32, 2 + 2 + 32, true},  // two f16 (d, s) + 32 int8, as ggml's block_q8_1
    {"q2_K", qk_k, 2 + 2 + qk_k / 16 + qk_k / 4, true},
    {"q3_K", qk_k, 2 + qk_k / 4 + qk_k / 8 + 12, true},
    {"q4_K", qk_k, 2 + 2 + qk_k / 2 + 12, true},
    {"q5_K", qk_k, 2 + 2 + qk_k / 2 + qk_k / 8 + 12, true},
    {"q6_K", qk_k, 2 + qk_k / 2 + qk_k / 4 + qk_k / 16, true},
    {"q8_K", qk_k, 4 + qk_k + qk_k / 8, true},
    {"iq2_xxs", qk_k, 2 + qk_k / 4, true},
    {"iq2_xs", qk_k, 2 + qk_k / 4 + qk_k / 32, true},
    {"iq3_xxs", qk_k, 2 + qk_k / 4 + qk_k / 8, true},
    {"iq1_s", qk_k, 2 + qk_k / 8 + qk_k / 16, true},
    {"iq4_nl", 32, 2 + 16, true},
    {"iq3_s", qk_k, 2 + qk_k / 4 + qk_k / 8 + qk_k / 32 + 4, true},
    {"iq2_s", qk_k, 2 + qk_k / 4 + qk_k / 16, true},
    {"iq4_xs", qk_k, 2 + 2 + qk_k / 2 + qk_k / 64, true},
    {"i8", 1, 1, false},
    {"i16", 1, 2, false},
    {"i32", 1, 4, false},
    {"i64", 1, 8, false},
    {"f64", 1, 8, false},
    {"iq1_m", qk_k, qk_k / 8 + qk_k / 16 + qk_k / 32, true},
    {"bf16", 1, 2, false},
    {},
    {},
    {},
    {"tq1_0", qk_k, 2 + 4 * 13, true},
    {"tq2_0", qk_k, 2 + 64, true},
    {},
    {},
    {},
    {"mxfp4", 32, 1 + 16, true},
    {"nvfp4", 64, 4 + 32, true},
    {"q1_0", 128, 2 + 16, true},
}};

}  // namespace detail

/// The traits of a type id; `block_size == 0` (and an empty name) for an invalid id.
/// Example: `llm::io::ggml_traits(llm::io::ggml_type::q8_0).type_size;  // 34`
constexpr ggml_type_traits ggml_traits(ggml_type t) noexcept {
    const auto i = static_cast<std::uint32_t>(t);
    return i < detail::ggml_type_count ? detail::ggml_types[i] : ggml_type_traits{};
}

/// True when `id` names a type this library knows the layout of.
constexpr bool ggml_type_valid(std::uint32_t id) noexcept {
    return id < detail::ggml_type_count && detail::ggml_types[id].block_size != 0;
}

/// ggml's name of a type ("q4_K"), or "invalid".
constexpr std::string_view ggml_type_name(ggml_type t) noexcept {
    const auto tr = ggml_traits(t);
    return tr.block_size ? tr.name : std::string_view("invalid");
}

// Spot checks against ggml's block structs: block_q8_0 34 bytes, block_q4_K 144, block_q6_K 210.
static_assert(ggml_traits(ggml_type::q8_0).type_size == 34 && ggml_traits(ggml_type::q4_k).type_size == 144 &&
              ggml_traits(ggml_type::q6_k).type_size == 210 && !ggml_type_valid(4) && !ggml_type_valid(42));

}  // namespace llm::io
