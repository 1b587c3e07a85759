// SPDX-License-Identifier: Apache-2.0
// Normalisation and shingling: Python-compatible word n-grams, UTF-8 char n-grams, no-copy paths.
#include <doctest/doctest.h>

#include <llm/data/normalize.hpp>
#include <llm/data/shingle.hpp>

#include <string>
#include <vector>

namespace {

template <class S>
std::vector<std::string> shingles(const S& s, std::string_view text) {
    std::vector<std::string> out;
    std::string scratch;
    s.for_each(text, scratch, [&](std::string_view v) { out.emplace_back(v); });
    return out;
}

}  // namespace

TEST_CASE("normalize: lowercase ASCII and Latin-1, fold Unicode whitespace, strip punctuation") {
    std::string scratch;
    const llm::data::normalization def{};
    CHECK(llm::data::normalize("Hello  World", def, scratch) == "hello world");
    CHECK(llm::data::normalize("  \t\nÉCOLE \xC2\xA0 ÜBER×ÀÞ\xE3\x80\x80x  ", def, scratch) == "école über×àþ x");
    CHECK(llm::data::normalize("", def, scratch) == "");
    CHECK(llm::data::normalize("   ", def, scratch) == "");
    const llm::data::normalization strip{.lowercase = false, .fold_whitespace = true, .strip_punctuation = true};
    CHECK(llm::data::normalize("Hi, there! \xC2\xBFQu\xC3\xA9? a \xE2\x80\x94 b", strip, scratch) == "Hi there Qu\xC3\xA9 a b");
    const llm::data::normalization none{.lowercase = false, .fold_whitespace = false, .strip_punctuation = false};
    CHECK(llm::data::normalize(" A  B ", none, scratch) == " A  B ");
    // Invalid and truncated UTF-8 pass through unchanged (lowercasing only touches full pairs).
    CHECK(llm::data::normalize("A\xFF\xC3", def, scratch) == "a\xFF\xC3");
}

TEST_CASE("normalize returns the input itself when nothing changes") {
    std::string scratch = "untouched";
    const std::string text = "already normal text \xC3\xA9t\xC3\xA9";
    const auto v = llm::data::normalize(text, {}, scratch);
    CHECK(v.data() == text.data());
    CHECK(scratch == "untouched");
    CHECK(llm::data::normalize("trailing ", {}, scratch) == "trailing");
    CHECK(llm::data::normalize("a\tb", {}, scratch) == "a b");
}

TEST_CASE("word_ngrams are Python's ' '.join(words[i:i+n]) over text.lower().split()") {
    const llm::data::word_ngrams w3{.n = 3};
    CHECK(shingles(w3, "A b  C\td e") == std::vector<std::string>{"a b c", "b c d", "c d e"});
    CHECK(shingles(w3, "only two") == std::vector<std::string>{"only two"});
    CHECK(shingles(w3, " \n ").empty());
    CHECK(shingles(llm::data::word_ngrams{.n = 1}, "x y x") == std::vector<std::string>{"x", "y", "x"});
    // Whitespace folding is forced for words even if the options say otherwise.
    const llm::data::word_ngrams w2{.n = 2, .norm = {.lowercase = false, .fold_whitespace = false}};
    CHECK(shingles(w2, "A  B C") == std::vector<std::string>{"A B", "B C"});
    // Already-normal text: shingles are views into the document itself.
    const std::string text = "one two three four";
    std::string scratch;
    w3.for_each(text, scratch, [&](std::string_view s) {
        CHECK(s.data() >= text.data());
        CHECK(s.data() + s.size() <= text.data() + text.size());
    });
    CHECK(scratch.empty());
    CHECK_THROWS_WITH_AS(shingles(llm::data::word_ngrams{.n = 0}, "x"), "word_ngrams: n = 0 must be in [1, 64]", llm::error);
}

TEST_CASE("char_ngrams count code points, not bytes") {
    const llm::data::char_ngrams c2{.n = 2};
    CHECK(shingles(c2, "H\xC3\xA9llo") == std::vector<std::string>{"h\xC3\xA9", "\xC3\xA9l", "ll", "lo"});
    CHECK(shingles(llm::data::char_ngrams{.n = 9}, "short") == std::vector<std::string>{"short"});
    CHECK(shingles(c2, "a  b") == std::vector<std::string>{"a ", " b"});
    CHECK(shingles(c2, "").empty());
    // A truncated sequence at the end is one code point of its remaining bytes.
    CHECK(shingles(c2, "ab\xE2\x80") == std::vector<std::string>{"ab", "b\xE2\x80"});
    CHECK_THROWS_AS(shingles(llm::data::char_ngrams{.n = 65}, "x"), llm::error);
}
