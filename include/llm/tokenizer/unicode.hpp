// SPDX-License-Identifier: Apache-2.0
// UTF-8 decoding and the Unicode character classes (General_Category, White_Space) that pre-tokenizers use.
#pragma once

#include <llm/config.hpp>
#include <llm/core/utf8.hpp>
#include <llm/tokenizer/detail/unicode_tables.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace llm::tokenizer {

// UTF-8 encoding and decoding live in <llm/core/utf8.hpp>; the tokenizer uses them unqualified.
using llm::append_utf8;
using llm::decode_utf8;
using llm::utf8_char;

/// Unicode General_Category values, in the order of the generated tables.
enum class general_category : std::uint8_t {
    Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po,
    Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co
};

/// General_Category of a code point (Cn for unassigned code points and values above U+10FFFF).
/// Example: `llm::tokenizer::category(U'é') == llm::tokenizer::general_category::Ll`.
constexpr general_category category(char32_t cp) noexcept {
    if (cp >= 0x110000) return general_category::Cn;
    const unsigned block = detail::unicode_stage1[cp >> detail::unicode_block_shift];
    const unsigned mask = (1u << detail::unicode_block_shift) - 1;
    return static_cast<general_category>(
        detail::unicode_stage2[(block << detail::unicode_block_shift) | (cp & mask)] & 0x1f);
}

/// True when the code point has the Unicode White_Space property (what `\s` means in the
/// Rust and Python regex engines tiktoken uses; it includes U+0085 NEL).
/// Example: `llm::tokenizer::is_white_space(U'\u3000')`.
constexpr bool is_white_space(char32_t cp) noexcept {
    if (cp >= 0x110000) return false;
    const unsigned block = detail::unicode_stage1[cp >> detail::unicode_block_shift];
    const unsigned mask = (1u << detail::unicode_block_shift) - 1;
    return (detail::unicode_stage2[(block << detail::unicode_block_shift) | (cp & mask)] &
            detail::unicode_white_space_bit) != 0;
}

namespace detail {

// Character-class bits the pre-tokenizer scanners test. `upper` is o200k's
// [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and `lower` its [\p{Ll}\p{Lm}\p{Lo}\p{M}].
enum char_class : std::uint8_t {
    cls_letter = 1,
    cls_number = 2,
    cls_space = 4,
    cls_upper = 8,
    cls_lower = 16,
    cls_crlf = 32,
};

// Class bits for every value of a table byte (category index | White_Space bit).
inline constexpr std::array<std::uint8_t, 64> class_of_table_byte = [] {
    std::array<std::uint8_t, 64> t{};
    for (unsigned v = 0; v < 64; ++v) {
        const auto c = static_cast<general_category>(v & 0x1f);
        std::uint8_t bits = 0;
        switch (c) {
        case general_category::Lu:
        case general_category::Lt: bits = cls_letter | cls_upper; break;
        case general_category::Ll: bits = cls_letter | cls_lower; break;
        case general_category::Lm:
        case general_category::Lo: bits = cls_letter | cls_upper | cls_lower; break;
        case general_category::Mn:
        case general_category::Mc:
        case general_category::Me: bits = cls_upper | cls_lower; break;
        case general_category::Nd:
        case general_category::Nl:
        case general_category::No: bits = cls_number; break;
        default: break;
        }
        if (v & unicode_white_space_bit) bits |= cls_space;
        t[v] = bits;
    }
    return t;
}();

constexpr std::uint8_t class_of(char32_t cp) noexcept {
    if (cp >= 0x110000) return 0;  // utf8_char::invalid: an ill-formed byte is "other"
    const unsigned block = unicode_stage1[cp >> unicode_block_shift];
    const unsigned mask = (1u << unicode_block_shift) - 1;
    std::uint8_t bits = class_of_table_byte[unicode_stage2[(block << unicode_block_shift) | (cp & mask)] & 0x3f];
    if (cp == '\r' || cp == '\n') bits |= cls_crlf;
    return bits;
}

// ASCII is most text: one table lookup instead of the two-stage walk.
inline constexpr std::array<std::uint8_t, 128> ascii_class = [] {
    std::array<std::uint8_t, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = class_of(c);
    return t;
}();

// Class bits and byte length of the character at p (p < end). Ill-formed UTF-8 counts as
// one "other" character per maximal subpart, so arbitrary bytes still split deterministically.
struct char_info {
    std::uint8_t cls;
    std::uint32_t len;
};

LLM_FORCE_INLINE char_info char_at(const char* p, const char* end) noexcept {
    const auto b = static_cast<unsigned char>(*p);
    if (b < 0x80) return {ascii_class[b], 1};
    const utf8_char u = decode_utf8(p, end);
    return {class_of(u.cp), u.len};
}

}  // namespace detail
}  // namespace llm::tokenizer
