// SPDX-License-Identifier: Apache-2.0
// Text normalisation before shingling: lowercasing, whitespace folding, punctuation stripping.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace llm::data {

/// What `normalize` does to a document before it is cut into shingles.
struct normalization {
    bool lowercase = true;           ///< ASCII A-Z and Latin-1 U+00C0..U+00DE (not U+00D7) to lower case, as Python's str.lower()
    bool fold_whitespace = true;     ///< runs of Unicode whitespace (Python's str.isspace set) -> one ' ', trimmed
    bool strip_punctuation = false;  ///< drop ASCII punctuation, Latin-1 punctuation and U+2010..U+205E
};

namespace detail {

/// Byte length of the whitespace code point at p (Python's str.isspace set), 0 if none.
inline std::size_t whitespace_length(const unsigned char* p, const unsigned char* end) noexcept {
    const unsigned c = p[0];
    if (c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c == 0xC2 && end - p >= 2 && (p[1] == 0x85 || p[1] == 0xA0)) return 2;
    if (end - p < 3) return 0;
    if (c == 0xE1 && p[1] == 0x9A && p[2] == 0x80) return 3;  // U+1680
    if (c == 0xE2 && p[1] == 0x80 && (p[2] <= 0x8A || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF) && p[2] >= 0x80) return 3;
    if (c == 0xE2 && p[1] == 0x81 && p[2] == 0x9F) return 3;  // U+205F
    if (c == 0xE3 && p[1] == 0x80 && p[2] == 0x80) return 3;  // U+3000
    return 0;
}

/// Byte length of the punctuation code point at p, 0 if none.
inline std::size_t punctuation_length(const unsigned char* p, const unsigned char* end) noexcept {
    const unsigned c = p[0];
    if ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E)) return 1;
    if (c == 0xC2 && end - p >= 2) {
        const unsigned d = p[1];  // ¡ § « ¶ · » ¿
        return (d == 0xA1 || d == 0xA7 || d == 0xAB || d == 0xB6 || d == 0xB7 || d == 0xBB || d == 0xBF) ? 2 : 0;
    }
    if (c == 0xE2 && end - p >= 3) {  // U+2010..U+2027 and U+2030..U+205E
        if (p[1] == 0x80 && ((p[2] >= 0x90 && p[2] <= 0xA7) || (p[2] >= 0xB0 && p[2] <= 0xBF))) return 3;
        if (p[1] == 0x81 && p[2] >= 0x80 && p[2] <= 0x9E) return 3;
    }
    return 0;
}

/// Byte length of the UTF-8 sequence starting at p by its lead byte, clipped to the input;
/// a stray continuation or invalid byte counts as one byte (shingling never rejects text).
inline std::size_t code_point_length(const unsigned char* p, const unsigned char* end) noexcept {
    const unsigned c = p[0];
    const std::size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
    const auto left = static_cast<std::size_t>(end - p);
    return n < left ? n : left;
}

/// Byte classes for the ASCII fast path of normalisation.
enum : unsigned char { byte_upper = 1, byte_space = 2, byte_punct = 4, byte_high = 8 };

struct byte_table {
    unsigned char cls[256]{};
    constexpr byte_table() {
        for (int c = 0; c < 256; ++c) {
            unsigned char k = 0;
            if (c >= 'A' && c <= 'Z') k |= byte_upper;
            if (c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) k |= byte_space;
            if ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E)) k |= byte_punct;
            if (c >= 0x80) k |= byte_high;
            cls[c] = k;
        }
    }
};
inline constexpr byte_table byte_classes{};

/// True when normalize(text, opt) would return text unchanged (checked without copying).
/// ASCII bytes that need no attention under `opt` cost one table lookup.
inline bool is_normalized(std::string_view text, const normalization& opt) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    const unsigned attention = byte_high | (opt.lowercase ? byte_upper : 0) | (opt.fold_whitespace ? byte_space : 0) |
                               (opt.strip_punctuation ? byte_punct : 0);
    bool previous_space = true;  // leading whitespace is not normalised
    while (p < end) {
        const unsigned c = *p;
        const unsigned k = byte_classes.cls[c] & attention;
        if (k == 0) {
            previous_space = false;
            ++p;
            continue;
        }
        if (k & (byte_upper | byte_punct)) return false;
        if (k & byte_space) {
            if (c != 0x20 || previous_space) return false;
            previous_space = true;
            ++p;
            continue;
        }
        // Non-ASCII: Latin-1 capitals, Unicode whitespace and punctuation need work.
        if (opt.lowercase && c == 0xC3 && end - p >= 2 && p[1] >= 0x80 && p[1] <= 0x9E && p[1] != 0x97) return false;
        if (opt.strip_punctuation && punctuation_length(p, end) != 0) return false;
        if (opt.fold_whitespace && whitespace_length(p, end) != 0) return false;
        previous_space = false;
        p += code_point_length(p, end);
    }
    return !(opt.fold_whitespace && previous_space && !text.empty());
}

}  // namespace detail

/// Normalises `text` as `opt` says. Returns `text` itself when it is already normalised (no
/// copy); otherwise writes the result into `scratch` and returns a view of it. The view is
/// valid while `text` and `scratch` are alive and unchanged. Invalid UTF-8 passes through.
/// Example: `std::string s; auto v = llm::data::normalize("Hello  World", {}, s);  // "hello world"`
inline std::string_view normalize(std::string_view text, const normalization& opt, std::string& scratch) {
    if (detail::is_normalized(text, opt)) return text;
    // The output is never longer than the input (lowercasing keeps byte lengths, folding and
    // stripping only remove), so write through a pointer into a buffer of the input's size.
    scratch.resize(text.size());
    char* const out0 = scratch.data();
    char* out = out0;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    bool pending_space = false;
    while (p < end) {
        const unsigned c = *p;
        const unsigned k = detail::byte_classes.cls[c];
        std::size_t n = 1;
        if (k & detail::byte_high) {
            if (opt.fold_whitespace) {
                if (const std::size_t w = detail::whitespace_length(p, end); w != 0) {
                    pending_space = out != out0;
                    p += w;
                    continue;
                }
            }
            if (opt.strip_punctuation) {
                if (const std::size_t m = detail::punctuation_length(p, end); m != 0) {
                    p += m;
                    continue;
                }
            }
            n = detail::code_point_length(p, end);
        } else if ((k & detail::byte_space) && opt.fold_whitespace) {
            pending_space = out != out0;
            ++p;
            continue;
        } else if ((k & detail::byte_punct) && opt.strip_punctuation) {
            ++p;
            continue;
        }
        if (pending_space) {
            *out++ = ' ';
            pending_space = false;
        }
        unsigned char c0 = p[0];
        if (opt.lowercase && (k & detail::byte_upper)) c0 = static_cast<unsigned char>(c0 + 0x20);
        *out++ = static_cast<char>(c0);
        if (n >= 2) {
            unsigned char c1 = p[1];
            if (opt.lowercase && c0 == 0xC3 && c1 >= 0x80 && c1 <= 0x9E && c1 != 0x97) c1 = static_cast<unsigned char>(c1 + 0x20);
            *out++ = static_cast<char>(c1);
            for (std::size_t i = 2; i < n; ++i) *out++ = static_cast<char>(p[i]);
        }
        p += n;
    }
    scratch.resize(static_cast<std::size_t>(out - out0));
    return scratch;
}

}  // namespace llm::data
