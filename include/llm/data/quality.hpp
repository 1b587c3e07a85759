// SPDX-License-Identifier: Apache-2.0
// Document quality filters as composable rule policies: C4 and Gopher (MassiveText) heuristics.
#pragma once

#include <llm/core/error.hpp>
#include <llm/data/detail/xxhash64.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace llm::data {

/// A document cut up once for all rules: whitespace-split words, '\n'-split lines (empty
/// ones dropped, ends trimmed) and paragraphs (split at blank lines). Views into `text`.
struct quality_input {
    std::string_view text;                     ///< the whole document
    std::vector<std::string_view> words;       ///< whitespace-split words
    std::vector<std::string_view> lines;       ///< non-empty lines, ends trimmed
    std::vector<std::string_view> paragraphs;  ///< blank-line separated paragraphs, ends trimmed

    /// Splits `t`, which must outlive this object (everything is a view into it).
    explicit quality_input(std::string_view t) : text(t) {
        const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
        for (std::size_t i = 0; i < t.size();) {
            while (i < t.size() && is_space(t[i])) ++i;
            const std::size_t b = i;
            while (i < t.size() && !is_space(t[i])) ++i;
            if (i > b) words.push_back(t.substr(b, i - b));
        }
        const auto trim = [&](std::string_view s) {
            while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
            while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
            return s;
        };
        std::size_t para_begin = 0;
        bool in_para = false;
        for (std::size_t b = 0; b <= t.size();) {
            std::size_t e = t.find('\n', b);
            if (e == std::string_view::npos) e = t.size();
            const std::string_view line = trim(t.substr(b, e - b));
            if (!line.empty()) {
                lines.push_back(line);
                if (!in_para) para_begin = b;
                in_para = true;
            } else if (in_para) {
                paragraphs.push_back(trim(t.substr(para_begin, b - para_begin)));
                in_para = false;
            }
            b = e + 1;
        }
        if (in_para) paragraphs.push_back(trim(t.substr(para_begin)));
    }
};

/// A quality rule: `r.check(input)` returns nullptr to keep the document, or a fixed reason
/// string naming the rule (fixed so reports can count documents per reason).
template <class R>
concept quality_rule = requires(const R r, const quality_input& in) {
    { r.check(in) } -> std::convertible_to<const char*>;
};

/// Rules applied in order; the first one that fails gives the reason.
///   Rules: quality_rule types (each default-constructible with its published thresholds).
/// Example: `llm::data::all_of<llm::data::c4_no_curly_bracket, llm::data::gopher_word_count> f; auto why = f.check(quality_input(text));`
template <class... Rules>
struct all_of {
    static_assert((quality_rule<Rules> && ...), "all_of: every rule must satisfy llm::data::quality_rule");
    std::tuple<Rules...> rules{};  ///< the rules, applied in order
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        const char* reason = nullptr;
        std::apply([&](const auto&... r) { ((reason = reason ? reason : r.check(in)), ...); }, rules);
        return reason;
    }
};

namespace detail {
inline bool contains_ascii_ci(std::string_view hay, std::string_view needle) noexcept {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                       [&](char a, char b) { return lower(a) == lower(b); }) != hay.end();
}
inline bool ends_in_terminal_punctuation(std::string_view line) noexcept {
    const char c = line.back();
    return c == '.' || c == '!' || c == '?' || c == '"' || (line.size() >= 3 && line.substr(line.size() - 3) == "\xE2\x80\x9D");
}
}  // namespace detail

// ---- C4 (Raffel et al. 2020, section 2.2) ----------------------------------------------------

/// C4: pages with a curly bracket are code, not prose.
struct c4_no_curly_bracket {
    /// Members required by llm::data::quality_rule; see it for their contracts.
    ///@{
    const char* check(const quality_input& in) const { return in.text.find('{') != std::string_view::npos ? "c4: curly bracket" : nullptr; }
    ///@}
};
/// C4: placeholder text.
struct c4_no_lorem_ipsum {
    /// Members required by llm::data::quality_rule; see it for their contracts.
    ///@{
    const char* check(const quality_input& in) const { return detail::contains_ascii_ci(in.text, "lorem ipsum") ? "c4: lorem ipsum" : nullptr; }
    ///@}
};
/// C4's line rules, at document level: keep only lines that end in terminal punctuation, have
/// at least `min_words_per_line` words and do not mention javascript; the document fails
/// when those lines hold fewer than `min_sentences` sentences (terminal marks).
struct c4_sentences {
    std::size_t min_words_per_line = 3;  ///< shorter lines are ignored
    std::size_t min_sentences = 5;       ///< fewer sentences in the kept lines fail the document
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        std::size_t sentences = 0;
        for (const auto line : in.lines) {
            if (!detail::ends_in_terminal_punctuation(line) || detail::contains_ascii_ci(line, "javascript")) continue;
            const quality_input words(line);
            if (words.words.size() < min_words_per_line) continue;
            for (std::size_t i = 0; i < line.size(); ++i) {
                const char c = line[i];
                if ((c == '.' || c == '!' || c == '?') && (i + 1 == line.size() || line[i + 1] == ' ')) ++sentences;
            }
        }
        return sentences < min_sentences ? "c4: fewer than 5 sentences in lines ending in terminal punctuation with >= 3 words, no javascript" : nullptr;
    }
};
/// The C4 rules together.
using c4_rules = all_of<c4_no_curly_bracket, c4_no_lorem_ipsum, c4_sentences>;

// ---- Gopher / MassiveText (Rae et al. 2021, appendix A.1.1) ---------------------------------

/// Gopher: between 50 and 100,000 words.
struct gopher_word_count {
    std::size_t min_words = 50;      ///< fewer words fail
    std::size_t max_words = 100000;  ///< more words fail
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        return in.words.size() < min_words ? "gopher: fewer than 50 words" : in.words.size() > max_words ? "gopher: more than 100000 words" : nullptr;
    }
};
/// Gopher: mean word length between 3 and 10 bytes.
struct gopher_mean_word_length {
    double min_mean = 3;   ///< smaller mean word length (bytes) fails
    double max_mean = 10;  ///< larger mean word length (bytes) fails
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        if (in.words.empty()) return nullptr;
        std::size_t total = 0;
        for (const auto w : in.words) total += w.size();
        const double mean = static_cast<double>(total) / static_cast<double>(in.words.size());
        return mean < min_mean || mean > max_mean ? "gopher: mean word length outside [3, 10]" : nullptr;
    }
};
/// Gopher: at most 0.1 hash symbols or ellipses per word.
struct gopher_symbol_ratio {
    double max_ratio = 0.1;  ///< largest (# and ellipsis count) / words that passes
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        if (in.words.empty()) return nullptr;
        std::size_t symbols = 0;
        for (std::size_t i = 0; i < in.text.size(); ++i) {
            if (in.text[i] == '#') ++symbols;
            else if (in.text.compare(i, 3, "...") == 0) { ++symbols; i += 2; }
            else if (in.text.compare(i, 3, "\xE2\x80\xA6") == 0) { ++symbols; i += 2; }
        }
        return static_cast<double>(symbols) > max_ratio * static_cast<double>(in.words.size()) ? "gopher: symbol-to-word ratio above 0.1" : nullptr;
    }
};
/// Gopher: at most 90% of lines start with a bullet, at most 30% end with an ellipsis.
struct gopher_bullets_ellipsis {
    double max_bullet_lines = 0.9;    ///< largest fraction of lines starting with a bullet
    double max_ellipsis_lines = 0.3;  ///< largest fraction of lines ending with an ellipsis
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        if (in.lines.empty()) return nullptr;
        std::size_t bullets = 0, ellipses = 0;
        for (const auto l : in.lines) {
            bullets += l.starts_with("\xE2\x80\xA2") || l.starts_with("- ") || l.starts_with("* ") || l.starts_with("\xE2\x80\xA3");
            ellipses += l.ends_with("...") || l.ends_with("\xE2\x80\xA6");
        }
        const auto n = static_cast<double>(in.lines.size());
        if (static_cast<double>(bullets) > max_bullet_lines * n) return "gopher: more than 90% of lines start with a bullet";
        if (static_cast<double>(ellipses) > max_ellipsis_lines * n) return "gopher: more than 30% of lines end with an ellipsis";
        return nullptr;
    }
};
/// Gopher: at least 80% of words contain a letter, and at least 2 of the stop words
/// the, be, to, of, and, that, have, with appear.
struct gopher_words {
    double min_alpha_words = 0.8;    ///< smallest fraction of words containing a letter
    std::size_t min_stop_words = 2;  ///< fewest stop words (counting repeats) that passes
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        if (in.words.empty()) return nullptr;
        std::size_t alpha = 0, stop = 0;
        static constexpr std::array<std::string_view, 8> stop_words{"the", "be", "to", "of", "and", "that", "have", "with"};
        for (const auto w : in.words) {
            alpha += std::any_of(w.begin(), w.end(), [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }) ||
                     static_cast<unsigned char>(w[0]) >= 0xC0;
            stop += std::find(stop_words.begin(), stop_words.end(), w) != stop_words.end();
        }
        if (static_cast<double>(alpha) < min_alpha_words * static_cast<double>(in.words.size())) return "gopher: fewer than 80% of words contain a letter";
        return stop < min_stop_words ? "gopher: fewer than 2 stop words" : nullptr;
    }
};
/// Gopher repetition: duplicate lines (> 30% of lines or > 20% of characters) and duplicate
/// paragraphs (> 30% / > 20%).
struct gopher_duplicate_lines {
    double max_fraction = 0.3;       ///< largest fraction of lines (paragraphs) that are repeats
    double max_char_fraction = 0.2;  ///< largest fraction of characters in repeated lines (paragraphs)
    /// Whether repeats among `parts` exceed max_fraction of the parts or max_char_fraction of total_chars.
    static bool too_repetitive(const std::vector<std::string_view>& parts, std::size_t total_chars, double max_fraction, double max_char_fraction) {
        if (parts.empty() || total_chars == 0) return false;
        std::unordered_set<std::string_view> seen;
        std::size_t dup = 0, dup_chars = 0;
        for (const auto p : parts) {
            if (!seen.insert(p).second) {
                ++dup;
                dup_chars += p.size();
            }
        }
        return static_cast<double>(dup) > max_fraction * static_cast<double>(parts.size()) ||
               static_cast<double>(dup_chars) > max_char_fraction * static_cast<double>(total_chars);
    }
    /// The llm::data::quality_rule check: nullptr keeps the document, else the reason.
    const char* check(const quality_input& in) const {
        if (too_repetitive(in.lines, in.text.size(), max_fraction, max_char_fraction)) return "gopher: duplicate lines";
        if (too_repetitive(in.paragraphs, in.text.size(), max_fraction, max_char_fraction)) return "gopher: duplicate paragraphs";
        return nullptr;
    }
};
/// Gopher repetition by word n-grams: the most frequent 2/3/4-gram may cover at most
/// 20/18/16% of the characters, and n-grams seen more than once (n = 5..10) at most
/// 15/14/13/12/11/10% (each word counted once).
struct gopher_duplicate_ngrams {
    /// Members required by llm::data::quality_rule; see it for their contracts.
    ///@{
    const char* check(const quality_input& in) const {
        const auto& w = in.words;
        std::size_t total = 0;
        for (const auto x : w) total += x.size();
        if (total == 0) return nullptr;
        std::vector<std::uint64_t> wh(w.size());
        for (std::size_t i = 0; i < w.size(); ++i) wh[i] = detail::xxh64(w[i], 0);
        const auto gram_hash = [&](std::size_t i, std::size_t n) {
            std::uint64_t h = n;
            for (std::size_t j = 0; j < n; ++j) h = detail::xxh64_round(h, wh[i + j]);
            return h;
        };
        static constexpr double top_limit[3] = {0.20, 0.18, 0.16};
        for (std::size_t n = 2; n <= 4; ++n) {
            if (w.size() < n) break;
            std::unordered_map<std::uint64_t, std::size_t> count;
            std::size_t best = 0, best_at = 0;
            for (std::size_t i = 0; i + n <= w.size(); ++i) {
                const std::size_t c = ++count[gram_hash(i, n)];
                if (c > best) { best = c; best_at = i; }
            }
            std::size_t chars = 0;
            for (std::size_t j = 0; j < n; ++j) chars += w[best_at + j].size();
            if (best > 1 && static_cast<double>(chars * best) > top_limit[n - 2] * static_cast<double>(total)) return "gopher: top word n-gram (n = 2..4) covers too many characters";
        }
        static constexpr double dup_limit[6] = {0.15, 0.14, 0.13, 0.12, 0.11, 0.10};
        std::vector<std::uint8_t> covered(w.size());
        for (std::size_t n = 5; n <= 10; ++n) {
            if (w.size() < n) break;
            std::unordered_map<std::uint64_t, std::size_t> first;
            std::fill(covered.begin(), covered.end(), 0);
            for (std::size_t i = 0; i + n <= w.size(); ++i) {
                const auto [it, fresh] = first.emplace(gram_hash(i, n), i);
                if (fresh) continue;
                for (std::size_t j = 0; j < n; ++j) covered[i + j] = covered[it->second + j] = 1;
            }
            std::size_t chars = 0;
            for (std::size_t i = 0; i < w.size(); ++i) chars += covered[i] ? w[i].size() : 0;
            if (static_cast<double>(chars) > dup_limit[n - 5] * static_cast<double>(total)) return "gopher: duplicate word n-grams (n = 5..10) cover too many characters";
        }
        return nullptr;
    }
    ///@}
};
/// The Gopher rules together.
using gopher_rules = all_of<gopher_word_count, gopher_mean_word_length, gopher_symbol_ratio, gopher_bullets_ellipsis,
                            gopher_words, gopher_duplicate_lines, gopher_duplicate_ngrams>;

/// The rule sets chosen at run time by name ("c4", "gopher", "c4,gopher"; empty: none), as
/// command-line tools need. check() returns "" to keep a document, else the reason.
/// Example: `auto f = llm::data::quality_pipeline::parse("c4,gopher"); std::string why = f.check(text);`
struct quality_pipeline {
    bool c4 = false;      ///< apply c4_rules
    bool gopher = false;  ///< apply gopher_rules

    /// Parses a comma-separated list of rule-set names; throws llm::error on an unknown name.
    static quality_pipeline parse(std::string_view list) {
        quality_pipeline q;
        while (!list.empty()) {
            const std::size_t comma = list.find(',');
            const std::string_view name = list.substr(0, comma);
            if (name == "c4") q.c4 = true;
            else if (name == "gopher") q.gopher = true;
            else llm::fail("quality_pipeline::parse: unknown filter '", name, "' (known: c4, gopher)");
            list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        }
        return q;
    }
    /// True if any rule set is selected.
    explicit operator bool() const noexcept { return c4 || gopher; }
    /// "" to keep `text`, else the reason of the first failing rule.
    std::string check(std::string_view text) const {
        const quality_input in(text);
        const char* why = c4 ? c4_rules{}.check(in) : nullptr;
        if (!why && gopher) why = gopher_rules{}.check(in);
        return why ? why : "";
    }
};

}  // namespace llm::data
