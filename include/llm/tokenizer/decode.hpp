// SPDX-License-Identifier: Apache-2.0
// Turning decoded token bytes into UTF-8 text: the invalid-sequence policy and the streaming decoder.
#pragma once

#include <llm/core/error.hpp>
#include <llm/tokenizer/unicode.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llm::tokenizer {

/// What to do with ill-formed UTF-8 in decoded bytes: `replace` each maximal ill-formed
/// subpart with U+FFFD (what Python's `errors="replace"` and tiktoken's `decode` do), or
/// `error` (raise llm::error naming the byte offset).
enum class utf8_policy : std::uint8_t { replace, error };

/// Converts decoded token bytes into valid UTF-8 under `policy`.
/// Example: `std::string text = llm::tokenizer::to_utf8(enc.decode_bytes(ids), llm::tokenizer::utf8_policy::replace);`
inline std::string to_utf8(std::string_view bytes, utf8_policy policy = utf8_policy::replace) {
    std::string out;
    out.reserve(bytes.size());
    const char* p = bytes.data();
    const char* e = p + bytes.size();
    while (p < e) {
        const utf8_char c = decode_utf8(p, e);
        if (c.cp == utf8_char::invalid) {
            check(policy == utf8_policy::replace, "to_utf8: ill-formed UTF-8 at byte offset ", p - bytes.data(),
                  " (byte 0x", std::hex, static_cast<unsigned>(static_cast<unsigned char>(*p)), ")");
            out += "\xef\xbf\xbd";
        } else {
            out.append(p, c.len);
        }
        p += c.len;
    }
    return out;
}

/// Incremental UTF-8 assembly for streaming generation: feed the bytes of each new token,
/// get back only complete characters; an incomplete trailing sequence is held back until the
/// next token completes it. Ill-formed sequences are handled by `policy` as soon as they are
/// known to be ill-formed. Call `finish()` at the end of the stream.
/// Example: `llm::tokenizer::utf8_stream s; for (auto id : ids) std::cout << s.push(enc.token_bytes(id)); std::cout << s.finish();`
class utf8_stream {
public:
    /// A stream handling ill-formed UTF-8 by `policy`.
    explicit utf8_stream(utf8_policy policy = utf8_policy::replace) : policy_(policy) {}

    /// Appends `bytes` and returns the complete characters now available (possibly empty).
    std::string push(std::string_view bytes) {
        pending_.append(bytes);
        std::string out;
        std::size_t i = 0;
        const char* b = pending_.data();
        const char* e = b + pending_.size();
        while (i < pending_.size()) {
            const utf8_char c = decode_utf8(b + i, e);
            if (c.cp == utf8_char::invalid && i + c.len == pending_.size() && could_continue(b + i, c.len)) {
                break;  // a valid prefix cut off by the end of what we have: wait for more bytes
            }
            if (c.cp == utf8_char::invalid) {
                check(policy_ == utf8_policy::replace, "utf8_stream::push: ill-formed UTF-8 at stream byte offset ",
                      consumed_ + i);
                out += "\xef\xbf\xbd";
            } else {
                out.append(b + i, c.len);
            }
            i += c.len;
        }
        consumed_ += i;
        pending_.erase(0, i);
        return out;
    }

    /// Flushes the held-back bytes: an incomplete sequence at the end of the stream is ill-formed.
    std::string finish() {
        std::string out;
        if (!pending_.empty()) {
            check(policy_ == utf8_policy::replace, "utf8_stream::finish: stream ends inside a UTF-8 sequence at byte offset ",
                  consumed_);
            out = "\xef\xbf\xbd";
        }
        consumed_ += pending_.size();
        pending_.clear();
        return out;
    }

    /// Bytes held back waiting for the rest of a character (0 to 3).
    std::size_t pending() const noexcept { return pending_.size(); }

private:
    // True when the ill-formed p[0..len), which reaches the end of the pending bytes, is a
    // proper prefix of a well-formed sequence. decode_utf8 reports maximal subparts, so its
    // `len` bytes were all acceptable; only the lead byte and the missing length need a look.
    static bool could_continue(const char* p, std::size_t len) noexcept {
        const auto b0 = static_cast<unsigned char>(p[0]);
        const std::size_t need = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : 2;
        return b0 >= 0xc2 && b0 <= 0xf4 && len < need;
    }

    utf8_policy policy_;
    std::string pending_;
    std::size_t consumed_ = 0;
};

}  // namespace llm::tokenizer
