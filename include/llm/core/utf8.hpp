// SPDX-License-Identifier: Apache-2.0
// UTF-8 encoding and strict decoding (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace llm {

/// Appends the UTF-8 encoding of a Unicode scalar value `cp` (< 0x110000, not a surrogate) to `out`.
/// Example: `std::string s; llm::append_utf8(s, U'▁');`
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
/// Example: `auto [cp, len] = llm::decode_utf8(s.data(), s.data() + s.size());`
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

}  // namespace llm
