// SPDX-License-Identifier: Apache-2.0
// Hand-written pre-tokenizer scanners that split text exactly as tiktoken's regex patterns do.
#pragma once

#include <llm/tokenizer/unicode.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace llm::tokenizer {

/// A pre-tokenizer policy: `P::next(text, pos)` returns the end (exclusive, > pos) of the piece
/// that starts at byte `pos` (< text.size()); pieces tile the text. `P::name` is the tiktoken
/// encoding whose `pat_str` it implements.
template <class P>
concept pretokenizer = requires(std::string_view text, std::size_t pos) {
    { P::next(text, pos) } -> std::same_as<std::size_t>;
    { P::name } -> std::convertible_to<std::string_view>;
};

namespace detail {

using namespace std::string_view_literals;

// Runs of characters whose class has any bit of `bits`; returns the end of the run from `i`.
LLM_FORCE_INLINE std::size_t run_of(std::string_view t, std::size_t i, std::uint8_t bits) noexcept {
    const char* b = t.data();
    const char* e = b + t.size();
    while (i < t.size()) {
        const char_info c = char_at(b + i, e);
        if (!(c.cls & bits)) break;
        i += c.len;
    }
    return i;
}

// Runs of characters that are none of \s, \p{L}, \p{N}.
LLM_FORCE_INLINE std::size_t run_of_other(std::string_view t, std::size_t i) noexcept {
    const char* b = t.data();
    const char* e = b + t.size();
    while (i < t.size()) {
        const char_info c = char_at(b + i, e);
        if (c.cls & (cls_space | cls_letter | cls_number)) break;
        i += c.len;
    }
    return i;
}

// Length of the contraction 's|'t|'re|'ve|'m|'ll|'d at i (t[i] == '\''), 0 if none. With
// `fold`, letters match case-insensitively under Unicode simple case folding, as `(?i:...)`
// does in the Rust and Python regex engines: that adds U+017F LATIN SMALL LETTER LONG S for 's'.
inline std::size_t contraction(std::string_view t, std::size_t i, bool fold) noexcept {
    const std::size_t n = t.size();
    if (i + 1 >= n) return 0;
    auto letter = [&](std::size_t k, char lower) -> std::size_t {  // bytes matched at k, 0 if none
        if (k >= n) return 0;
        const char c = t[k];
        if (c == lower) return 1;
        if (!fold) return 0;
        if (c == lower - 32) return 1;
        if (lower == 's' && k + 1 < n && t[k] == '\xc5' && t[k + 1] == '\xbf') return 2;
        return 0;
    };
    const std::size_t j = i + 1;
    if (std::size_t k = letter(j, 's')) return 1 + k;
    if (std::size_t k = letter(j, 't')) return 1 + k;
    if (std::size_t k = letter(j, 'm')) return 1 + k;
    if (std::size_t k = letter(j, 'd')) return 1 + k;
    if (std::size_t k = letter(j, 'r')) {
        if (std::size_t k2 = letter(j + k, 'e')) return 1 + k + k2;
    }
    if (std::size_t k = letter(j, 'v')) {
        if (std::size_t k2 = letter(j + k, 'e')) return 1 + k + k2;
    }
    if (std::size_t k = letter(j, 'l')) {
        if (std::size_t k2 = letter(j + k, 'l')) return 1 + k + k2;
    }
    return 0;
}

// `\s*[\r\n]+|\s+(?!\S)|\s+` at i, where t[i] is white space. With `newline_rule` false only
// the last two alternatives apply (GPT-2's pattern).
inline std::size_t whitespace_piece(std::string_view t, std::size_t i, bool newline_rule) noexcept {
    const char* b = t.data();
    const char* e = b + t.size();
    std::size_t j = i, last_start = i, after_newline = 0;
    while (j < t.size()) {
        const char_info c = char_at(b + j, e);
        if (!(c.cls & cls_space)) break;
        last_start = j;
        j += c.len;
        if (c.cls & cls_crlf) after_newline = j;
    }
    // \s*[\r\n]+ : the greedy \s* backs off to the last newline of the run.
    if (newline_rule && after_newline != 0) return after_newline;
    // \s+(?!\S) : at the end of text the whole run; else the run minus its last character,
    // which must leave at least one character.
    if (j == t.size()) return j;
    if (last_start > i) return last_start;
    return j;  // \s+
}

}  // namespace detail

// Pattern: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// The pre-tokenizer of GPT-2, r50k_base and p50k_base (its regex is in the comment above).
/// Example: `auto end = llm::tokenizer::r50k_pattern::next(text, 0);`
struct r50k_pattern {
    static constexpr std::string_view name = "r50k_base";  ///< the encoding whose pattern this is
    /// End of the piece starting at byte `i` (< t.size()).
    static std::size_t next(std::string_view t, std::size_t i) noexcept {
        using namespace detail;
        const char* b = t.data();
        const char* e = b + t.size();
        if (t[i] == '\'') {
            if (std::size_t k = contraction(t, i, false)) return i + k;
        }
        std::size_t j = i;
        if (t[i] == ' ' && i + 1 < t.size()) j = i + 1;  // the optional leading space
        for (;;) {
            const char_info c = char_at(b + j, e);
            if (c.cls & cls_letter) return run_of(t, j + c.len, cls_letter);
            if (c.cls & cls_number) return run_of(t, j + c.len, cls_number);
            if (!(c.cls & cls_space)) return run_of_other(t, j + c.len);
            if (j == i) break;
            j = i;  // the space was not followed by a letter, digit or symbol: retry without it
        }
        return whitespace_piece(t, i, false);
    }
};

// Pattern: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//          \s*[\r\n]+|\s+(?!\S)|\s+
/// The pre-tokenizer of cl100k_base and Llama 3 (its regex is in the comment above).
/// Example: `auto end = llm::tokenizer::cl100k_pattern::next(text, 0);`
struct cl100k_pattern {
    static constexpr std::string_view name = "cl100k_base";  ///< the encoding whose pattern this is
    /// End of the piece starting at byte `i` (< t.size()).
    static std::size_t next(std::string_view t, std::size_t i) noexcept {
        using namespace detail;
        const char* b = t.data();
        const char* e = b + t.size();
        if (t[i] == '\'') {
            if (std::size_t k = contraction(t, i, true)) return i + k;
        }
        const char_info c = char_at(b + i, e);
        if (c.cls & cls_letter) return run_of(t, i + c.len, cls_letter);
        if (!(c.cls & (cls_crlf | cls_number)) && i + c.len < t.size()) {
            const char_info d = char_at(b + i + c.len, e);
            if (d.cls & cls_letter) return run_of(t, i + c.len + d.len, cls_letter);
        }
        if (c.cls & cls_number) {
            std::size_t j = i + c.len;
            for (int k = 1; k < 3 && j < t.size(); ++k) {
                const char_info d = char_at(b + j, e);
                if (!(d.cls & cls_number)) break;
                j += d.len;
            }
            return j;
        }
        std::size_t j = i;
        if (t[i] == ' ' && i + 1 < t.size()) {
            const char_info d = char_at(b + i + 1, e);
            if (!(d.cls & (cls_space | cls_letter | cls_number))) j = i + 1;
        }
        if (j != i || !(c.cls & cls_space)) {
            j = run_of_other(t, j);
            while (j < t.size() && (t[j] == '\r' || t[j] == '\n')) ++j;
            return j;
        }
        return whitespace_piece(t, i, true);
    }
};

namespace detail {

inline constexpr std::size_t o200k_none = static_cast<std::size_t>(-1);

// Optional contraction after a letter run ending at j.
inline std::size_t o200k_with_contraction(std::string_view t, std::size_t j) noexcept {
    if (j < t.size() && t[j] == '\'') return j + detail::contraction(t, j, true);
    return j;
}

// U*W+ from q with regex backtracking: the greedy U* run gives back characters until W+
// can start; W+ then takes its maximal run.
inline std::size_t o200k_upper_then_lower(std::string_view t, std::size_t q) noexcept {
    const char* b = t.data();
    const char* e = b + t.size();
    std::size_t u = q, after_last_lower = o200k_none;
    while (u < t.size()) {
        const char_info c = char_at(b + u, e);
        if (!(c.cls & cls_upper)) break;
        u += c.len;
        if (c.cls & cls_lower) after_last_lower = u;
    }
    if (u < t.size()) {
        const char_info c = char_at(b + u, e);
        if (c.cls & cls_lower) return o200k_with_contraction(t, run_of(t, u + c.len, cls_lower));
    }
    // W+ starts at the last W inside the U run; the next character is not W, so it stops there.
    if (after_last_lower != o200k_none) return o200k_with_contraction(t, after_last_lower);
    return o200k_none;
}

// U+W* from q.
inline std::size_t o200k_upper_plus(std::string_view t, std::size_t q) noexcept {
    const char_info c = char_at(t.data() + q, t.data() + t.size());
    if (!(c.cls & cls_upper)) return o200k_none;
    const std::size_t u = run_of(t, q + c.len, cls_upper);
    return o200k_with_contraction(t, run_of(t, u, cls_lower));
}

}  // namespace detail

// Pattern: [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//          [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//          \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// The pre-tokenizer of o200k_base, with case-aware letter classes (its regex is in the comment above).
/// Example: `auto end = llm::tokenizer::o200k_pattern::next(text, 0);`
struct o200k_pattern {
    static constexpr std::string_view name = "o200k_base";  ///< the encoding whose pattern this is

    /// End of the piece starting at byte `i` (< t.size()).
    static std::size_t next(std::string_view t, std::size_t i) noexcept {
        using namespace detail;
        const char* b = t.data();
        const char* e = b + t.size();
        const char_info c = char_at(b + i, e);
        const bool prefix = !(c.cls & (cls_crlf | cls_letter | cls_number)) && i + c.len < t.size();
        if (c.cls & (cls_upper | cls_lower) || prefix) {
            std::size_t r;
            if (prefix && (r = o200k_upper_then_lower(t, i + c.len)) != o200k_none) return r;
            if ((r = o200k_upper_then_lower(t, i)) != o200k_none) return r;
            if (prefix && (r = o200k_upper_plus(t, i + c.len)) != o200k_none) return r;
            if ((r = o200k_upper_plus(t, i)) != o200k_none) return r;
        }
        if (c.cls & cls_number) {
            std::size_t j = i + c.len;
            for (int k = 1; k < 3 && j < t.size(); ++k) {
                const char_info d = char_at(b + j, e);
                if (!(d.cls & cls_number)) break;
                j += d.len;
            }
            return j;
        }
        std::size_t j = i;
        if (t[i] == ' ' && i + 1 < t.size()) {
            const char_info d = char_at(b + i + 1, e);
            if (!(d.cls & (cls_space | cls_letter | cls_number))) j = i + 1;
        }
        if (j != i || !(c.cls & cls_space)) {
            j = run_of_other(t, j);
            while (j < t.size() && (t[j] == '\r' || t[j] == '\n' || t[j] == '/')) ++j;
            return j;
        }
        return whitespace_piece(t, i, true);
    }
};

static_assert(pretokenizer<r50k_pattern> && pretokenizer<cl100k_pattern> && pretokenizer<o200k_pattern>);

/// Calls `f(piece)` for every pre-tokenizer piece of `text`, in order.
/// Template parameters: P, the pre-tokenizer policy; F, a callable taking std::string_view.
/// Example: `llm::tokenizer::for_each_piece<llm::tokenizer::cl100k_pattern>(text, [&](std::string_view p) { ... });`
template <pretokenizer P, class F>
void for_each_piece(std::string_view text, F&& f) {
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t j = P::next(text, i);
        LLM_ASSERT(j > i && j <= text.size());
        f(text.substr(i, j - i));
        i = j;
    }
}

}  // namespace llm::tokenizer
