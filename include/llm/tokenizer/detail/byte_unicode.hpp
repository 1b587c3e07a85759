// SPDX-License-Identifier: Apache-2.0
// GPT-2's byte <-> printable-character mapping used by byte-level vocabularies in vocab.json, tokenizer.json and GGUF.
#pragma once

#include <llm/tokenizer/unicode.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace llm::tokenizer::detail {

// Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68
// bytes map to U+0100 + n in byte order (so ' ' is 'Ġ' U+0120, '\n' is 'Ċ' U+010A).
inline constexpr std::array<char32_t, 256> byte_to_unicode = [] {
    std::array<char32_t, 256> m{};
    char32_t next = 256;
    for (unsigned b = 0; b < 256; ++b) {
        const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        m[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return m;
}();

// Inverse of byte_to_unicode over U+0000..U+0143; -1 where no byte maps.
inline constexpr std::array<std::int16_t, 0x144> unicode_to_byte = [] {
    std::array<std::int16_t, 0x144> m{};
    m.fill(-1);
    for (unsigned b = 0; b < 256; ++b) m[byte_to_unicode[b]] = static_cast<std::int16_t>(b);
    return m;
}();

// Token bytes -> the vocabulary string.
inline std::string bytes_to_vocab_string(std::string_view bytes) {
    std::string out;
    for (const char c : bytes) append_utf8(out, byte_to_unicode[static_cast<unsigned char>(c)]);
    return out;
}

// The vocabulary string -> token bytes; false when a character is not in the mapping.
inline bool vocab_string_to_bytes(std::string_view s, std::string& out) {
    out.clear();
    const char* p = s.data();
    const char* e = p + s.size();
    while (p < e) {
        const utf8_char c = decode_utf8(p, e);
        if (c.cp == utf8_char::invalid || c.cp >= 0x144) return false;
        const int byte = unicode_to_byte[c.cp];
        if (byte < 0) return false;
        out.push_back(static_cast<char>(byte));
        p += c.len;
    }
    return true;
}

}  // namespace llm::tokenizer::detail
