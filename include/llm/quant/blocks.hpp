// SPDX-License-Identifier: Apache-2.0
// The GGUF block layouts: plain structs whose bytes are exactly those ggml writes into GGUF files.
#pragma once

#include <llm/core/f16.hpp>
#include <llm/io/ggml_type.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace llm::quant {

/// Elements in one super-block of the "K" formats (Q2_K ... Q8_K).
inline constexpr std::size_t qk_k = 256;

// Every struct below is standard-layout and trivially copyable, has no padding and holds its
// fields in the order GGUF stores them, so an array of blocks is the tensor's bytes (GGUF is
// little-endian; the multi-byte fields here are read as such on little-endian hosts). Scales
// are llm::f16, whose conversions are LLM_HD, so the same structs serve CUDA kernels. The
// alignment is 2 (4 for block_q8_k), never more than ggml's, so blocks can be read in place
// from a memory-mapped file.
//
// Naming: x is the value, q the stored integer code of an element; `d` is a scale (delta), `m`
// or `dmin` a minimum, `qs` low bits of the codes, `qh` / `hmask` their high bits.

/// Q4_0: 32 values, x = d * (q - 8), q in [0, 15]; qs[j] holds element j (low nibble) and
/// element j + 16 (high nibble). 4.5 bits per value.
struct block_q4_0 {
    f16 d;                ///< scale
    std::uint8_t qs[16];  ///< low bits of the codes
};

/// Q4_1: 32 values, x = d * q + m, q in [0, 15]; nibbles as in block_q4_0. 5 bits per value.
struct block_q4_1 {
    f16 d;                ///< scale
    f16 m;                ///< minimum (the value of code 0)
    std::uint8_t qs[16];  ///< low bits of the codes
};

/// Q5_0: 32 values, x = d * (q - 16), q in [0, 31]; the low 4 bits as in block_q4_0, the 5th
/// bit of element j in bit j of the little-endian 32-bit word qh. 5.5 bits per value.
struct block_q5_0 {
    f16 d;                ///< scale
    std::uint8_t qh[4];   ///< high bits of the codes
    std::uint8_t qs[16];  ///< low bits of the codes
};

/// Q5_1: 32 values, x = d * q + m, q in [0, 31]; bits as in block_q5_0. 6 bits per value.
struct block_q5_1 {
    f16 d;                ///< scale
    f16 m;                ///< minimum (the value of code 0)
    std::uint8_t qh[4];   ///< high bits of the codes
    std::uint8_t qs[16];  ///< low bits of the codes
};

/// Q8_0: 32 values, x = d * q, q in [-127, 127]. 8.5 bits per value.
struct block_q8_0 {
    f16 d;               ///< scale
    std::int8_t qs[32];  ///< the codes
};

/// Q8_1 (the activation side of Q4_1 / Q5_1 dot products): as Q8_0 plus s = d * sum(q).
struct block_q8_1 {
    f16 d;               ///< scale
    f16 s;               ///< d times the sum of the codes
    std::int8_t qs[32];  ///< the codes
};

/// Q2_K: 256 values in 16 groups of 16, x = d * sc_g * q - dmin * m_g, q in [0, 3];
/// scales[g] = sc_g | m_g << 4 (4 bits each); qs: 2-bit codes, byte 32 * h + l holds elements
/// 128 h + l, +32, +64, +96 in bits 0-1, 2-3, 4-5, 6-7. 2.625 bits per value.
struct block_q2_k {
    std::uint8_t scales[qk_k / 16];  ///< group scales (and minimums), packed
    std::uint8_t qs[qk_k / 4];       ///< low bits of the codes
    f16 d;                           ///< super-block scale of the group scales
    f16 dmin;                        ///< scale of the group minimums
};

/// Q3_K: 256 values in 16 groups of 16, x = d * (sc_g - 32) * (q - 4), q in [0, 7]; the low 2
/// bits of q packed as in Q2_K, the high bit of element e in bit e / 32 of hmask[e % 32]; the
/// 6-bit sc_g: low 4 bits in nibble g / 8 of scales[g % 8], high 2 bits at bit 2 (g / 4) of
/// scales[8 + g % 4]. 3.4375 bits per value.
struct block_q3_k {
    std::uint8_t hmask[qk_k / 8];  ///< high bit of the codes
    std::uint8_t qs[qk_k / 4];     ///< low bits of the codes
    std::uint8_t scales[12];       ///< group scales (and minimums), packed
    f16 d;                         ///< super-block scale of the group scales
};

/// Q4_K: 256 values in 8 groups of 32, x = d * sc_g * q - dmin * m_g, q in [0, 15]; 6-bit
/// sc_g and m_g packed in 12 bytes (detail::scale_min_k4); qs byte 32 c + l holds elements
/// 64 c + l (low nibble) and 64 c + l + 32 (high nibble). 4.5 bits per value.
struct block_q4_k {
    f16 d;                      ///< super-block scale of the group scales
    f16 dmin;                   ///< scale of the group minimums
    std::uint8_t scales[12];    ///< group scales (and minimums), packed
    std::uint8_t qs[qk_k / 2];  ///< low bits of the codes
};

/// Q5_K: as Q4_K with q in [0, 31]; the 5th bit of element 64 c + l (+ 32) is bit 2 c (2 c + 1)
/// of qh[l]. 5.5 bits per value.
struct block_q5_k {
    f16 d;                      ///< super-block scale of the group scales
    f16 dmin;                   ///< scale of the group minimums
    std::uint8_t scales[12];    ///< group scales (and minimums), packed
    std::uint8_t qh[qk_k / 8];  ///< high bits of the codes
    std::uint8_t qs[qk_k / 2];  ///< low bits of the codes
};

/// Q6_K: 256 values in 16 groups of 16, x = d * scales[g] * (q - 32), q in [0, 63]; per half
/// h (128 values), ql byte 64 h + l holds the low nibbles of elements 128 h + l (low) and
/// + 64 (high), byte 64 h + 32 + l those of + 32 and + 96; qh[32 h + l] their 2-bit tops in bits
/// 0-1, 2-3, 4-5, 6-7 for + 0, + 32, + 64, + 96. 6.5625 bits per value.
struct block_q6_k {
    std::uint8_t ql[qk_k / 2];      ///< low 4 bits of the codes
    std::uint8_t qh[qk_k / 4];      ///< high bits of the codes
    std::int8_t scales[qk_k / 16];  ///< group scales (and minimums), packed
    f16 d;                          ///< super-block scale of the group scales
};

/// Q8_K (the activation side of K-quant dot products): x = d * q with a float d, q in
/// [-128, 127] (the reference produces [-127, 127]); bsums[g] = sum of the 16 codes of group g.
struct block_q8_k {
    float d;                        ///< scale (a float, not f16)
    std::int8_t qs[qk_k];           ///< the codes
    std::int16_t bsums[qk_k / 16];  ///< sum of the codes of each group of 16
};

namespace detail {

/// True when B is a block type that can be read from and written to files as raw bytes.
template <class B>
inline constexpr bool plain_block = std::is_standard_layout_v<B>&& std::is_trivially_copyable_v<B>;

/// sizeof(B) equals ggml's type_size of `type` (the bytes GGUF stores per block).
template <class B>
constexpr bool same_size_as_ggml(io::ggml_type type) {
    return sizeof(B) == io::ggml_traits(type).type_size;
}

}  // namespace detail

static_assert(sizeof(block_q4_0) == 18 && detail::same_size_as_ggml<block_q4_0>(io::ggml_type::q4_0));
static_assert(sizeof(block_q4_1) == 20 && detail::same_size_as_ggml<block_q4_1>(io::ggml_type::q4_1));
static_assert(sizeof(block_q5_0) == 22 && detail::same_size_as_ggml<block_q5_0>(io::ggml_type::q5_0));
static_assert(sizeof(block_q5_1) == 24 && detail::same_size_as_ggml<block_q5_1>(io::ggml_type::q5_1));
static_assert(sizeof(block_q8_0) == 34 && detail::same_size_as_ggml<block_q8_0>(io::ggml_type::q8_0));
static_assert(sizeof(block_q8_1) == 36 && detail::same_size_as_ggml<block_q8_1>(io::ggml_type::q8_1));
static_assert(sizeof(block_q2_k) == 84 && detail::same_size_as_ggml<block_q2_k>(io::ggml_type::q2_k));
static_assert(sizeof(block_q3_k) == 110 && detail::same_size_as_ggml<block_q3_k>(io::ggml_type::q3_k));
static_assert(sizeof(block_q4_k) == 144 && detail::same_size_as_ggml<block_q4_k>(io::ggml_type::q4_k));
static_assert(sizeof(block_q5_k) == 176 && detail::same_size_as_ggml<block_q5_k>(io::ggml_type::q5_k));
static_assert(sizeof(block_q6_k) == 210 && detail::same_size_as_ggml<block_q6_k>(io::ggml_type::q6_k));
static_assert(sizeof(block_q8_k) == 292 && detail::same_size_as_ggml<block_q8_k>(io::ggml_type::q8_k));
static_assert(detail::plain_block<block_q4_0> && detail::plain_block<block_q4_1> &&
              detail::plain_block<block_q5_0> && detail::plain_block<block_q5_1> &&
              detail::plain_block<block_q8_0> && detail::plain_block<block_q8_1> &&
              detail::plain_block<block_q2_k> && detail::plain_block<block_q3_k> &&
              detail::plain_block<block_q4_k> && detail::plain_block<block_q5_k> &&
              detail::plain_block<block_q6_k> && detail::plain_block<block_q8_k>);

}  // namespace llm::quant
