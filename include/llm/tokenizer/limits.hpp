// SPDX-License-Identifier: Apache-2.0
// What a vocabulary file may ask of memory: the largest id, how sparse ids may be, how large the file may be.
#pragma once

#include <llm/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace llm::tokenizer {

/// The largest vocabulary (one more than the largest id) a tokenizer accepts: 2^24 ids.
/// Real vocabularies are far below it (cl100k_base 100277 ids, o200k_base 200019, Gemma
/// 256000), every id below it is exact in a float, and the id-indexed tables of a vocabulary
/// this large stay under 0.7 GB.
inline constexpr std::size_t max_vocab = std::size_t{1} << 24;

/// Slack of the id space over the number of entries (see max_id_space).
inline constexpr std::size_t id_space_slack = std::size_t{1} << 16;

/// The largest id space (largest id + 1) a vocabulary of `entries` tokens and specials may
/// use: min(max_vocab, 2 * entries + 65536). Ids may leave gaps (cl100k_base leaves 100256
/// and 100261..100275 unused), but the decode tables are indexed by id and cost 12 to 40
/// bytes an id, so one large id in a tiny file must not size them: with this bound a file
/// makes us allocate at most a constant factor of what its entries already cost, plus ~2.5 MB.
constexpr std::size_t max_id_space(std::size_t entries) noexcept {
    return entries >= max_vocab ? max_vocab : std::min(max_vocab, 2 * entries + id_space_slack);
}

/// Checks, before any id-indexed table is allocated, that `largest_id` is allowed for a
/// vocabulary of `entries` tokens and specials; llm::error names `source` and the values.
/// Example: `llm::tokenizer::check_id_space("t.json", 134217727, 1);  // throws`
inline void check_id_space(std::string_view source, std::uint64_t largest_id, std::size_t entries) {
    check(largest_id < max_id_space(entries), source, ": largest id ", largest_id, " with only ", entries,
          " tokens and specials is out of range: ids must stay below min(2^24, 2 * entries + 65536) = ", max_id_space(entries),
          ", since tables are indexed by id");
}

/// The largest vocabulary text file (tokenizer.json, vocab.json, merges.txt, tiktoken ranks)
/// the loaders read: 256 MiB. The largest real ones are ~20 MB; a larger file, /dev/zero or
/// a pipe that never ends is refused with llm::error instead of exhausting memory.
inline constexpr std::size_t max_vocab_file_bytes = std::size_t{256} << 20;

}  // namespace llm::tokenizer
