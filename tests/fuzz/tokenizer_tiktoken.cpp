// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: tiktoken rank-file parsing and byte_bpe construction from hostile text.
#include <llm/tokenizer/tiktoken.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        llm::tokenizer::byte_bpe_spec spec;
        spec.name = "fuzz.tiktoken";
        spec.pre = static_cast<llm::tokenizer::pattern>(size % 3);
        spec.tokens = llm::tokenizer::parse_tiktoken(text, "fuzz.tiktoken");
        spec.specials = {{"<|endoftext|>", static_cast<std::uint32_t>(spec.tokens.size())}};
        const llm::tokenizer::byte_bpe enc(std::move(spec));
        // Whatever the vocabulary, what encodes must decode back to the input.
        const std::string_view sample = text.substr(0, 64);
        const auto ids = enc.encode(sample, llm::tokenizer::special_policy::all());
        if (enc.decode_bytes(ids) != sample) __builtin_trap();
    } catch (const llm::error&) {
    }
    return 0;
}
