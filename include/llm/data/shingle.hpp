// SPDX-License-Identifier: Apache-2.0
// Shingling policies (word n-grams, character n-grams) and the concept they satisfy.
#pragma once

#include <llm/core/error.hpp>
#include <llm/data/normalize.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace llm::data {

namespace detail {
/// Stand-in for the callback a shingler is given (used only to state the concept).
struct shingle_sink {
    void operator()(std::string_view) const;
};
}  // namespace detail

/// A shingling policy: `s.for_each(text, scratch, f)` normalises `text` (using `scratch` only
/// when it must copy) and calls `f(std::string_view)` once per shingle, in document order
/// (repeats included: sketches are set functions, so repeats cost time, not correctness).
template <class S>
concept shingler = requires(const S s, std::string_view text, std::string& scratch, detail::shingle_sink f) {
    s.for_each(text, scratch, f);
};

/// Word n-grams: the text is normalised (whitespace folding is forced on: words are what
/// str.split() gives) and every run of `n` consecutive words, joined by single spaces, is a
/// shingle: exactly Python's `" ".join(words[i:i+n])`. A non-empty text of fewer than `n`
/// words gives one shingle, the whole text, so short documents still get a signature.
/// Shingles are views into the normalised text: no per-shingle copy.
/// Example: `llm::data::word_ngrams{.n = 5}.for_each(doc, scratch, [&](std::string_view s) { ... });`
struct word_ngrams {
    std::size_t n = 5;     ///< words per shingle, in [1, max_n]
    normalization norm{};  ///< normalisation applied first (fold_whitespace is forced on)

    /// Largest n accepted (the ring of word starts lives on the stack).
    static constexpr std::size_t max_n = 64;

    /// Members required by llm::data::shingler; see it for their contracts.
    ///@{
    template <class F>
    void for_each(std::string_view text, std::string& scratch, F&& f) const {
        llm::check(n >= 1 && n <= max_n, "word_ngrams: n = ", n, " must be in [1, ", max_n, "]");
        normalization folded = norm;
        folded.fold_whitespace = true;
        const std::string_view t = normalize(text, folded, scratch);
        if (t.empty()) return;
        // After folding, words are separated by exactly one ' ' and there is no leading or
        // trailing space, so a word starts at 0 and after every ' '.
        std::array<std::size_t, max_n> starts{};
        std::size_t words = 0;
        std::size_t start = 0;
        while (start <= t.size()) {
            const auto* space = static_cast<const char*>(std::memchr(t.data() + start, ' ', t.size() - start));
            const std::size_t i = space ? static_cast<std::size_t>(space - t.data()) : t.size();
            starts[words % n] = start;
            ++words;
            if (words >= n) {
                const std::size_t first = starts[(words - n) % n];
                f(t.substr(first, i - first));
            }
            start = i + 1;
        }
        if (words < n) f(t);
    }
    ///@}
};

/// Character n-grams: every run of `n` consecutive code points (UTF-8 aware; invalid bytes
/// count as one code point) of the normalised text. Whitespace folding follows `norm`.
/// A non-empty text shorter than `n` code points gives one shingle, the whole text.
/// Example: `llm::data::char_ngrams{.n = 5}.for_each(doc, scratch, f);`
struct char_ngrams {
    std::size_t n = 5;     ///< code points per shingle, in [1, max_n]
    normalization norm{};  ///< normalisation applied first

    /// Largest n accepted (the ring of code point starts lives on the stack).
    static constexpr std::size_t max_n = 64;

    /// Members required by llm::data::shingler; see it for their contracts.
    ///@{
    template <class F>
    void for_each(std::string_view text, std::string& scratch, F&& f) const {
        llm::check(n >= 1 && n <= max_n, "char_ngrams: n = ", n, " must be in [1, ", max_n, "]");
        const std::string_view t = normalize(text, norm, scratch);
        if (t.empty()) return;
        const auto* base = reinterpret_cast<const unsigned char*>(t.data());
        const auto* end = base + t.size();
        std::array<std::size_t, max_n> starts{};
        std::size_t count = 0;
        for (const auto* p = base; p < end;) {
            starts[count % n] = static_cast<std::size_t>(p - base);
            ++count;
            p += detail::code_point_length(p, end);
            if (count >= n) {
                const std::size_t first = starts[(count - n) % n];
                f(t.substr(first, static_cast<std::size_t>(p - base) - first));
            }
        }
        if (count < n) f(t);
    }
    ///@}
};

static_assert(shingler<word_ngrams> && shingler<char_ngrams>);

}  // namespace llm::data
