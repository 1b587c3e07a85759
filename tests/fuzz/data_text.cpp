// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: normalisation, shingling, signatures and quality rules on arbitrary bytes never crash.
#include <llm/data/minhash.hpp>
#include <llm/data/oph.hpp>
#include <llm/data/quality.hpp>
#include <llm/data/signer.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // First byte picks the options, the rest is the document.
    const unsigned o = data[0];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const llm::data::normalization norm{.lowercase = (o & 1) != 0, .fold_whitespace = (o & 2) != 0, .strip_punctuation = (o & 4) != 0};
    std::string scratch;
    const std::string_view n = llm::data::normalize(text, norm, scratch);
    if (n.size() > text.size()) __builtin_trap();  // normalisation never grows text
    std::vector<std::uint32_t> sig(16);
    llm::data::sign_scratch w;
    const std::size_t gram = 1 + (o >> 3) % 8;
    llm::data::signer<llm::data::word_ngrams, llm::data::xxhash64, llm::data::minhash<>> words({.n = gram, .norm = norm}, {}, llm::data::minhash<>(16, 1));
    words.sign(text, sig, w);
    llm::data::signer<llm::data::char_ngrams, llm::data::murmur3_64, llm::data::one_permutation> chars({.n = gram, .norm = norm}, {}, llm::data::one_permutation(16, 1));
    chars.sign(text, sig, w);
    (void)llm::data::quality_pipeline::parse("c4,gopher").check(text);
    return 0;
}
