// SPDX-License-Identifier: Apache-2.0
// UTF-8 decoding and the Unicode character classes (General_Category, White_Space) that pre-tokenizers use.
#pragma once

#include <llm/config.hpp>
#include <llm/tokenizer/detail/unicode_tables.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace llm::tokenizer {

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

/// Appends the UTF-8 encoding of a Unicode scalar value `cp` (< 0x110000, not a surrogate) to `out`.
/// Example: `std::string s; llm::tokenizer::append_utf8(s, U'▁');`
inline void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
        out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
}

/// One decoded UTF-8 sequence: the code point and its length in bytes. An ill-formed
/// sequence decodes as `invalid` with the length of its maximal subpart (at least 1), the
/// unit the WHATWG / Unicode "U+FFFD substitution of maximal subparts" practice replaces.
struct utf8_char {
    static constexpr char32_t invalid = 0xffffffff;  ///< the code point of an ill-formed sequence
    char32_t cp;                                     ///< the code point, or invalid
    std::uint32_t len;                               ///< bytes consumed (1 to 4)
};

/// Decodes the UTF-8 sequence starting at `p` (requires p < end). Never reads past `end`.
/// Example: `auto [cp, len] = llm::tokenizer::decode_utf8(s.data(), s.data() + s.size());`
constexpr utf8_char decode_utf8(const char* p, const char* end) noexcept {
    const auto b0 = static_cast<unsigned char>(p[0]);
    if (b0 < 0x80) return {b0, 1};
    const std::ptrdiff_t avail = end - p;
    auto cont = [&](std::ptrdiff_t k) {
        return k < avail && (static_cast<unsigned char>(p[k]) & 0xc0) == 0x80;
    };
    auto byte = [&](std::ptrdiff_t k) { return static_cast<unsigned char>(p[k]); };
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        if (!cont(1)) return {utf8_char::invalid, 1};
        return {static_cast<char32_t>(((b0 & 0x1f) << 6) | (byte(1) & 0x3f)), 2};
    }
    if (b0 >= 0xe0 && b0 <= 0xef) {
        // Second-byte ranges exclude overlongs (E0 80..9F) and surrogates (ED A0..BF).
        const unsigned lo = b0 == 0xe0 ? 0xa0 : 0x80, hi = b0 == 0xed ? 0x9f : 0xbf;
        if (avail < 2 || byte(1) < lo || byte(1) > hi) return {utf8_char::invalid, 1};
        if (!cont(2)) return {utf8_char::invalid, 2};
        return {static_cast<char32_t>(((b0 & 0x0f) << 12) | ((byte(1) & 0x3f) << 6) | (byte(2) & 0x3f)), 3};
    }
    if (b0 >= 0xf0 && b0 <= 0xf4) {
        // Second-byte ranges exclude overlongs (F0 80..8F) and values above U+10FFFF (F4 90..).
        const unsigned lo = b0 == 0xf0 ? 0x90 : 0x80, hi = b0 == 0xf4 ? 0x8f : 0xbf;
        if (avail < 2 || byte(1) < lo || byte(1) > hi) return {utf8_char::invalid, 1};
        if (!cont(2)) return {utf8_char::invalid, 2};
        if (!cont(3)) return {utf8_char::invalid, 3};
        return {static_cast<char32_t>(((b0 & 0x07) << 18) | ((byte(1) & 0x3f) << 12) |
                                      ((byte(2) & 0x3f) << 6) | (byte(3) & 0x3f)),
                4};
    }
    return {utf8_char::invalid, 1};
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
