// SPDX-License-Identifier: Apache-2.0
// A synthetic text corpus with planted near-duplicates, for tests, benchmarks and demos of dedup.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace llm::data {

/// Shape of `make_synthetic_corpus`.
struct synthetic_options {
    std::size_t documents = 1000;         ///< total documents
    std::size_t words_per_document = 330; ///< ~2 KB of text per document
    double duplicate_fraction = 0.3;      ///< share of documents that are edited copies of an earlier one
    double max_edit_rate = 0.2;           ///< a copy has each word replaced with probability U[0, max_edit_rate]
    std::size_t vocabulary = 20000;       ///< distinct words, drawn with a Zipf(1) law like natural text
    std::uint64_t seed = 1;               ///< seed of the generator (same seed, same corpus)
};

/// One generated document: its text, the document it was copied from (itself for an
/// original) and the word replacement rate used for the copy (0 for an original).
struct synthetic_document {
    std::string text;        ///< the document
    std::size_t source = 0;  ///< index of the original it copies (its own index for an original)
    double edit_rate = 0;    ///< word replacement rate of the copy (0 for an original)
};

namespace detail {
// make_synthetic_corpus after its checks.
inline std::vector<synthetic_document> generate_synthetic_corpus(const synthetic_options& o) {
    std::mt19937_64 rng(o.seed);
    const auto uniform = [&rng] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
    std::vector<std::string> vocab(o.vocabulary);
    for (auto& w : vocab) {
        const std::size_t len = 2 + rng() % 9;
        for (std::size_t i = 0; i < len; ++i) w.push_back(static_cast<char>('a' + rng() % 26));
    }
    // Zipf(1) by inverse CDF on the harmonic numbers: rank r has probability ~ 1/r.
    std::vector<double> cdf(o.vocabulary);
    double total = 0;
    for (std::size_t r = 0; r < o.vocabulary; ++r) cdf[r] = total += 1.0 / static_cast<double>(r + 1);
    const auto draw_word = [&]() -> const std::string& {
        const double u = uniform() * total;
        std::size_t lo = 0, hi = o.vocabulary - 1;
        while (lo < hi) {
            const std::size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u) lo = mid + 1; else hi = mid;
        }
        return vocab[lo];
    };
    std::vector<std::vector<std::string>> words;
    std::vector<synthetic_document> docs;
    docs.reserve(o.documents);
    for (std::size_t d = 0; d < o.documents; ++d) {
        synthetic_document doc;
        std::vector<std::string> w;
        if (d > 0 && uniform() < o.duplicate_fraction) {
            doc.source = static_cast<std::size_t>(rng() % d);
            doc.source = docs[doc.source].source;  // copy an original, so clusters are stars
            doc.edit_rate = uniform() * o.max_edit_rate;
            w = words[doc.source];
            for (auto& x : w) {
                if (uniform() < doc.edit_rate) x = draw_word();
            }
        } else {
            doc.source = d;
            w.resize(o.words_per_document);
            for (std::size_t i = 0; i < w.size(); ++i) {
                w[i] = draw_word();
                if (i % 12 == 0) w[i][0] = static_cast<char>(w[i][0] - 'a' + 'A');
                if (i % 12 == 11) w[i].push_back('.');
            }
        }
        for (std::size_t i = 0; i < w.size(); ++i) {
            if (i) doc.text.push_back(' ');
            doc.text += w[i];
        }
        words.push_back(std::move(w));
        docs.push_back(std::move(doc));
    }
    return docs;
}
}  // namespace detail

/// Documents of pseudo-words (letters a-z, 2-10 long, mixed case at sentence starts, with
/// punctuation) where a `duplicate_fraction` are near-copies of earlier originals, so true
/// clusters are known. Deterministic for a seed (std::mt19937_64 and hand-written draws, no
/// std distributions whose output differs between standard libraries).
/// Example: `auto docs = llm::data::make_synthetic_corpus({.documents = 100});`
inline std::vector<synthetic_document> make_synthetic_corpus(const synthetic_options& o) {
    llm::check(o.words_per_document >= 1 && o.vocabulary >= 2, "make_synthetic_corpus: words_per_document = ",
               o.words_per_document, ", vocabulary = ", o.vocabulary, " must be >= 1 and >= 2");
    llm::check(o.duplicate_fraction >= 0 && o.duplicate_fraction < 1 && o.max_edit_rate >= 0 && o.max_edit_rate <= 1,
               "make_synthetic_corpus: duplicate_fraction = ", o.duplicate_fraction, " must be in [0, 1), max_edit_rate = ",
               o.max_edit_rate, " in [0, 1]");
    // Memory bound, checked before generating: per document its record, its word list and its
    // text; per word one std::string (words of <= 11 chars fit its small-string buffer) and up to
    // 12 bytes of text (10 letters, '.', a space); plus the vocabulary and its CDF.
    const char* fn = "make_synthetic_corpus";
    const std::size_t per_document = checked_add(
        sizeof(synthetic_document) + sizeof(std::vector<std::string>),
        checked_mul(o.words_per_document, sizeof(std::string) + 12, fn, "words_per_document * bytes per word"), fn,
        "bytes per document");
    const std::size_t bytes = checked_add(
        checked_mul(o.documents, per_document, fn, "documents * bytes per document"),
        checked_mul(o.vocabulary, sizeof(std::string) + sizeof(double), fn, "vocabulary * bytes per word"), fn,
        "the corpus bytes");
    (void)checked_bytes<char>(bytes, fn, "the corpus");
    return allocating(bytes, fn, "the corpus", [&] { return detail::generate_synthetic_corpus(o); });
}

}  // namespace llm::data
