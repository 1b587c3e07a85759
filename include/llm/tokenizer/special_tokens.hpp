// SPDX-License-Identifier: Apache-2.0
// Special tokens: the set a tokenizer knows, the policy an encode call applies, and the matcher that finds them in text.
#pragma once

#include <llm/core/error.hpp>
#include <llm/tokenizer/detail/bytes_map.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llm::tokenizer {

/// A special token: its text and its id.
struct special_token {
    std::string text;  ///< the text that stands for it
    std::uint32_t id;  ///< its id
};

/// How an encode call treats special-token text found in its input (tiktoken's
/// `allowed_special` / `disallowed_special`).
/// - `special_policy::none()`: specials are plain text (tiktoken `encode_ordinary`).
/// - `special_policy::all()`: every special's text becomes its id (`encode(text, allowed_special="all")`).
/// - `special_policy::raise()`: like none, but text equal to a special raises llm::error
///   (tiktoken's default `encode(text)`).
/// - `special_policy::only({...})`: the listed specials become ids, the others are plain text;
///   with `.raise_on_disallowed = true` the others raise.
/// Example: `enc.encode(text, llm::tokenizer::special_policy::all());`
struct special_policy {
    /// Which specials become ids.
    enum class allow : std::uint8_t {
        none,   ///< no special: all are plain text
        all,    ///< every special
        listed  ///< the ones in `listed`
    };
    allow allowed = allow::none;       ///< which specials become ids
    std::vector<std::string> listed;   ///< texts of the allowed specials when allowed == listed
    bool raise_on_disallowed = false;  ///< raise llm::error when text holds a special that is not allowed

    /// Specials are plain text (tiktoken `encode_ordinary`).
    static special_policy none() { return {}; }
    /// Every special becomes its id (`allowed_special="all"`).
    static special_policy all() { return {allow::all, {}, false}; }
    /// Specials are an error (tiktoken's default `encode`).
    static special_policy raise() { return {allow::none, {}, true}; }
    /// Only `names` become ids; the others are plain text, or an error with `raise_on_others`.
    static special_policy only(std::vector<std::string> names, bool raise_on_others = false) {
        return {allow::listed, std::move(names), raise_on_others};
    }
};

/// Finds special-token text in a string. Matching is leftmost, then longest.
class special_matcher {
public:
    special_matcher() = default;

    /// `source` names the tokenizer in error messages. Texts must be non-empty and unique.
    special_matcher(std::vector<special_token> tokens, std::string_view source) : tokens_(std::move(tokens)) {
        for (std::size_t k = 0; k < tokens_.size(); ++k) {
            const std::string& t = tokens_[k].text;
            check(!t.empty(), source, ": special token with id ", tokens_[k].id, " has empty text");
            check(map_.insert(t, static_cast<std::uint32_t>(k)), source, ": special token '", t, "' is listed twice");
            first_[static_cast<unsigned char>(t[0])] = true;
            if (std::find(lengths_.begin(), lengths_.end(), t.size()) == lengths_.end()) lengths_.push_back(t.size());
        }
        std::sort(lengths_.begin(), lengths_.end(), std::greater<>{});
    }

    /// The specials, in the order given.
    const std::vector<special_token>& tokens() const noexcept { return tokens_; }
    /// True when there are no specials.
    bool empty() const noexcept { return tokens_.empty(); }

    /// Index into tokens() of the special whose text is exactly `text`, or npos.
    std::uint32_t find(std::string_view text) const noexcept { return map_.find(text); }

    /// Where a special was found.
    struct match {
        std::size_t pos = std::string_view::npos;  ///< byte offset; npos: none found
        std::size_t len = 0;                       ///< its length in bytes
        std::uint32_t index = 0;                   ///< into tokens()
    };

    /// The leftmost (then longest) special at or after `from` for which `accept(index)` holds.
    template <class Accept>
    match next(std::string_view text, std::size_t from, Accept&& accept) const {
        for (std::size_t i = from; i < text.size(); ++i) {
            if (!first_[static_cast<unsigned char>(text[i])]) continue;
            for (const std::size_t len : lengths_) {
                if (len > text.size() - i) continue;
                const std::uint32_t k = map_.find(text.data() + i, len);
                if (k != detail::bytes_map::npos && accept(k)) return {i, len, k};
            }
        }
        return {};
    }

private:
    std::vector<special_token> tokens_;
    detail::bytes_map map_;
    bool first_[256] = {};
    std::vector<std::size_t> lengths_;  // distinct lengths, longest first
};

namespace detail {

// Splits `text` at the specials `policy` allows: calls ordinary(segment) for the text between
// them and special(id) for each. With raise_on_disallowed, text holding a special that is not
// allowed raises llm::error (tiktoken checks the whole text before encoding anything).
template <class Ordinary, class Special>
void split_specials(std::string_view function, const special_matcher& m, std::string_view text,
                    const special_policy& policy, Ordinary&& ordinary, Special&& special) {
    if (m.empty() || (policy.allowed == special_policy::allow::none && !policy.raise_on_disallowed)) {
        ordinary(text);
        return;
    }
    std::vector<bool> allowed(m.tokens().size(), policy.allowed == special_policy::allow::all);
    if (policy.allowed == special_policy::allow::listed) {
        for (const std::string& name : policy.listed) {
            const std::uint32_t k = m.find(name);
            check(k != bytes_map::npos, function, ": special_policy lists '", name, "', which is not a special token of this tokenizer");
            allowed[k] = true;
        }
    }
    if (policy.raise_on_disallowed) {
        const auto hit = m.next(text, 0, [&](std::uint32_t k) { return !allowed[k]; });
        check(hit.pos == std::string_view::npos, function, ": text contains the special token '",
              m.tokens()[hit.index].text, "' at byte offset ", hit.pos,
              ", which this call does not allow; allow it, or encode it as plain text with special_policy::none()");
    }
    std::size_t pos = 0;
    for (;;) {
        const auto hit = m.next(text, pos, [&](std::uint32_t k) { return static_cast<bool>(allowed[k]); });
        if (hit.pos == std::string_view::npos) break;
        if (hit.pos > pos) ordinary(text.substr(pos, hit.pos - pos));
        special(m.tokens()[hit.index].id);
        pos = hit.pos + hit.len;
    }
    if (pos < text.size()) ordinary(text.substr(pos));
}

}  // namespace detail
}  // namespace llm::tokenizer
