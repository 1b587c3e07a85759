// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: the GGUF metadata reader and the GGUF tokenizer loader on hostile bytes.
#include <llm/tokenizer/gguf_vocab.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    try {
        const auto tok = llm::tokenizer::gguf_tokenizer(bytes, "fuzz.gguf");
        std::visit([&](const auto& t) { (void)t.decode_bytes(t.encode("Hello world, 123")); }, tok);
    } catch (const llm::error&) {
    }
    return 0;
}
