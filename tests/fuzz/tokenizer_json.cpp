// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: the JSON reader and the Hugging Face tokenizer.json loader on hostile text.
#include <llm/tokenizer/hf_tokenizer.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const auto tok = llm::tokenizer::hf_tokenizer_from_json(text, "fuzz.json");
        const std::string_view sample = "Hello world, 123 <|endoftext|>";
        std::visit([&](const auto& t) { (void)t.decode_bytes(t.encode(sample, llm::tokenizer::special_policy::all())); }, tok);
    } catch (const llm::error&) {
    }
    return 0;
}
