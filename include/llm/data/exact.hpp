// SPDX-License-Identifier: Apache-2.0
// Exact deduplication: whole documents by content hash, and lines by normalised-line hash.
#pragma once

#include <llm/data/detail/murmur3.hpp>
#include <llm/data/normalize.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

namespace llm::data {

namespace detail {
struct hash128 {
    std::uint64_t lo, hi;
    bool operator==(const hash128&) const = default;
};
struct hash128_hasher {
    std::size_t operator()(const hash128& h) const noexcept { return static_cast<std::size_t>(h.lo); }
};
inline hash128 content_hash(std::string_view s) noexcept {
    const auto [a, b] = murmur3_x64_128(s, 0);
    return {a, b};
}
}  // namespace detail

/// Exact duplicate documents by 128-bit content hash (MurmurHash3_x64_128 of the bytes;
/// a false match needs a 128-bit collision). Memory: 16 bytes per distinct document.
/// Example: `llm::data::exact_dedup seen; if (seen.insert(text)) write(text);`
class exact_dedup {
public:
    /// True if `text` was not seen before (and records it).
    bool insert(std::string_view text) { return seen_.insert(detail::content_hash(text)).second; }
    std::size_t size() const noexcept { return seen_.size(); }  ///< distinct documents seen

private:
    std::unordered_set<detail::hash128, detail::hash128_hasher> seen_;
};

/// Line-level deduplication across a corpus (as RefinedWeb and TxT360 do): a line whose
/// normalised form (`norm`, default: lowercase, folded whitespace) was seen in an earlier
/// line of any document is removed; lines normalising to "" are kept. Memory: 16 bytes per
/// distinct line.
/// Example: `llm::data::line_dedup lines; std::string out; lines.filter(doc, out);`
class line_dedup {
public:
    /// Lines are compared after normalising them with `norm`.
    explicit line_dedup(normalization norm = {}) : norm_(norm) {}

    /// Writes doc without its already-seen lines to `out` (lines keep their '\n'); returns
    /// the number of lines removed.
    std::size_t filter(std::string_view doc, std::string& out) {
        out.clear();
        std::size_t removed = 0;
        for (std::size_t b = 0; b < doc.size();) {
            std::size_t e = doc.find('\n', b);
            e = e == std::string_view::npos ? doc.size() : e + 1;
            const std::string_view line = doc.substr(b, e - b);
            const std::string_view key = normalize(line, norm_, scratch_);
            if (key.empty() || seen_.insert(detail::content_hash(key)).second) {
                out.append(line);
            } else {
                ++removed;
            }
            b = e;
        }
        return removed;
    }
    std::size_t distinct_lines() const noexcept { return seen_.size(); }  ///< distinct non-empty normalised lines seen

private:
    normalization norm_;
    std::string scratch_;
    std::unordered_set<detail::hash128, detail::hash128_hasher> seen_;
};

}  // namespace llm::data
