// SPDX-License-Identifier: Apache-2.0
// A small bounds-checked JSON reader for JSONL records: validates a line, extracts two fields.
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llm::data::detail {

/// What `read_json_record` extracts from one JSONL line.
struct json_record {
    std::string text;      ///< decoded string value of the text field
    std::string id;        ///< decoded string value, or the literal text of a number/true/false/null
    bool has_text = false;
    bool has_id = false;
    bool text_not_string = false;  ///< the text field exists but is not a string
};

/// Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), 0 if invalid.
inline std::size_t valid_utf8_length(const unsigned char* p, const unsigned char* end) noexcept {
    const llm::utf8_char c = llm::decode_utf8(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(end));
    return c.cp == llm::utf8_char::invalid ? 0 : c.len;
}

class json_reader {
public:
    json_reader(std::string_view s) : p_(reinterpret_cast<const unsigned char*>(s.data())), end_(p_ + s.size()), begin_(p_) {}

    void record(std::string_view text_key, std::string_view id_key, json_record& out) {
        out.has_text = out.has_id = out.text_not_string = false;
        skip_ws();
        expect('{', "a JSON object");
        skip_ws();
        if (peek() == '}') {
            ++p_;
        } else {
            for (;;) {
                skip_ws();
                if (peek() != '"') fail_at("expected a string key");
                string(key_);
                skip_ws();
                expect(':', "':'");
                skip_ws();
                if (key_ == text_key) {
                    if (peek() == '"') {
                        string(out.text);
                        out.has_text = true;
                        out.text_not_string = false;
                    } else {
                        value(0);
                        out.has_text = false;
                        out.text_not_string = true;
                    }
                } else if (!id_key.empty() && key_ == id_key) {
                    if (peek() == '"') {
                        string(out.id);
                    } else {
                        const unsigned char* start = p_;
                        value(0);
                        out.id.assign(reinterpret_cast<const char*>(start), static_cast<std::size_t>(p_ - start));
                    }
                    out.has_id = true;
                } else {
                    value(0);
                }
                skip_ws();
                if (peek() == ',') {
                    ++p_;
                    continue;
                }
                expect('}', "',' or '}'");
                break;
            }
        }
        skip_ws();
        if (p_ != end_) fail_at("trailing characters after the object");
    }

private:
    static constexpr int max_depth = 128;

    [[noreturn]] void fail_at(const char* what) const {
        llm::fail("json: ", what, " at byte ", static_cast<std::size_t>(p_ - begin_) + 1);
    }
    int peek() const noexcept { return p_ < end_ ? *p_ : -1; }
    void expect(char c, const char* what) {
        if (peek() != static_cast<unsigned char>(c)) {
            llm::fail("json: expected ", what, " at byte ", static_cast<std::size_t>(p_ - begin_) + 1);
        }
        ++p_;
    }
    void skip_ws() noexcept {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
    }
    void literal(std::string_view word) {
        if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(reinterpret_cast<const char*>(p_), word.size()) != word) {
            fail_at("invalid literal");
        }
        p_ += word.size();
    }
    unsigned hex4() {
        if (end_ - p_ < 4) fail_at("truncated \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            const unsigned c = *p_++;
            v <<= 4;
            if (c >= '0' && c <= '9') v |= c - '0';
            else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
            else fail_at("bad hex digit in \\u escape");
        }
        return v;
    }
    /// Decodes the string at p_ (which is '"') into out; validates UTF-8 and escapes.
    void string(std::string& out) {
        out.clear();
        ++p_;
        for (;;) {
            // Copy the run of plain bytes up to the next quote, backslash or control byte.
            const unsigned char* run = p_;
            while (p_ < end_ && *p_ != '"' && *p_ != '\\' && *p_ >= 0x20 && *p_ < 0x80) ++p_;
            out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p_ - run));
            if (p_ >= end_) fail_at("unterminated string");
            const unsigned c = *p_;
            if (c == '"') {
                ++p_;
                return;
            }
            if (c < 0x20) fail_at("control character in string");
            if (c >= 0x80) {
                const std::size_t n = valid_utf8_length(p_, end_);
                if (n == 0) fail_at("invalid UTF-8");
                out.append(reinterpret_cast<const char*>(p_), n);
                p_ += n;
                continue;
            }
            ++p_;  // backslash
            if (p_ >= end_) fail_at("unterminated escape");
            const unsigned e = *p_++;
            switch (e) {
                case '"': out.push_back('"'); break;
                case '\\': out.push_back('\\'); break;
                case '/': out.push_back('/'); break;
                case 'b': out.push_back('\b'); break;
                case 'f': out.push_back('\f'); break;
                case 'n': out.push_back('\n'); break;
                case 'r': out.push_back('\r'); break;
                case 't': out.push_back('\t'); break;
                case 'u': {
                    std::uint32_t cp = hex4();
                    if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("lone low surrogate in \\u escape (invalid UTF-8)");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail_at("lone high surrogate in \\u escape (invalid UTF-8)");
                        p_ += 2;
                        const std::uint32_t lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail_at("bad low surrogate in \\u escape (invalid UTF-8)");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    llm::append_utf8(out, static_cast<char32_t>(cp));
                    break;
                }
                default: --p_; fail_at("invalid escape");
            }
        }
    }
    void number() {
        if (peek() == '-') ++p_;
        if (peek() == '0') {
            ++p_;
        } else if (peek() >= '1' && peek() <= '9') {
            while (peek() >= '0' && peek() <= '9') ++p_;
        } else {
            fail_at("invalid number");
        }
        if (peek() == '.') {
            ++p_;
            if (!(peek() >= '0' && peek() <= '9')) fail_at("invalid number");
            while (peek() >= '0' && peek() <= '9') ++p_;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++p_;
            if (peek() == '+' || peek() == '-') ++p_;
            if (!(peek() >= '0' && peek() <= '9')) fail_at("invalid number");
            while (peek() >= '0' && peek() <= '9') ++p_;
        }
    }
    /// Validates and skips one value.
    void value(int depth) {
        if (depth > max_depth) fail_at("nesting deeper than 128");
        switch (peek()) {
            case '"': string(scratch_); return;
            case '{':
                ++p_;
                skip_ws();
                if (peek() == '}') { ++p_; return; }
                for (;;) {
                    skip_ws();
                    if (peek() != '"') fail_at("expected a string key");
                    string(scratch_);
                    skip_ws();
                    expect(':', "':'");
                    skip_ws();
                    value(depth + 1);
                    skip_ws();
                    if (peek() == ',') { ++p_; continue; }
                    expect('}', "',' or '}'");
                    return;
                }
            case '[':
                ++p_;
                skip_ws();
                if (peek() == ']') { ++p_; return; }
                for (;;) {
                    skip_ws();
                    value(depth + 1);
                    skip_ws();
                    if (peek() == ',') { ++p_; continue; }
                    expect(']', "',' or ']'");
                    return;
                }
            case 't': literal("true"); return;
            case 'f': literal("false"); return;
            case 'n': literal("null"); return;
            default: number(); return;
        }
    }

    const unsigned char* p_;
    const unsigned char* end_;
    const unsigned char* begin_;
    std::string key_, scratch_;
};

/// Parses `line` as one JSON object (RFC 8259, UTF-8) and extracts the fields `text_key`
/// and `id_key` (empty: none) into `out`. Throws llm::error "json: <what> at byte N" on
/// malformed JSON, invalid UTF-8 (including lone surrogate escapes) or nesting deeper than 128.
/// Example: `json_record r; read_json_record(R"({"id": 1, "text": "hi"})", "text", "id", r);`
inline void read_json_record(std::string_view line, std::string_view text_key, std::string_view id_key, json_record& out) {
    json_reader(line).record(text_key, id_key, out);
}

}  // namespace llm::data::detail
