// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: the JSONL record reader must accept or raise llm::error, never crash or read out of bounds.
#include <llm/io/jsonl.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    llm::io::jsonl_record r;
    try {
        llm::io::read_jsonl_record(std::string_view(reinterpret_cast<const char*>(data), size), "text", "id", r);
        // A record that parsed has a text field only if it was a string.
        if (r.has_text && r.text_not_string) __builtin_trap();
    } catch (const llm::error&) {
    }
    return 0;
}
