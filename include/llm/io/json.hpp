// SPDX-License-Identifier: Apache-2.0
// A small bounds-checked JSON reader (DOM) and string escaper for configuration and vocabulary files.
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/utf8.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::io {

namespace detail {
class json_parser;
}

/// The default limit of parse_json on the values a document may hold: 2^23 (8,388,608).
/// A value costs ~104 bytes of tree however few bytes of text it takes (`[0,0,0,...]` spends
/// two), so the tree, not the text, is what must be bounded: this limit caps it near 0.9 GB.
/// The largest real tokenizer.json files (~20 MB, 256k vocabulary, 500k merges) hold under
/// 2 million values.
inline constexpr std::size_t default_max_json_values = std::size_t{1} << 23;

/// A parsed JSON value. Objects keep their members in file order (vocabularies rely on it)
/// and may repeat keys; `find` returns the first. Every value remembers its byte offset in
/// the source so callers can report errors at the right place (`where()`).
class json_value {
public:
    /// The JSON types.
    enum class kind : std::uint8_t {
        null,     ///< null
        boolean,  ///< true or false
        number,   ///< a number (kept as a double)
        string,   ///< a string (UTF-8)
        array,    ///< an array
        object    ///< an object
    };

    /// The type of this value.
    kind type() const noexcept { return kind_; }
    /// True for null.
    bool is_null() const noexcept { return kind_ == kind::null; }
    /// True for true / false.
    bool is_bool() const noexcept { return kind_ == kind::boolean; }
    /// True for numbers.
    bool is_number() const noexcept { return kind_ == kind::number; }
    /// True for strings.
    bool is_string() const noexcept { return kind_ == kind::string; }
    /// True for arrays.
    bool is_array() const noexcept { return kind_ == kind::array; }
    /// True for objects.
    bool is_object() const noexcept { return kind_ == kind::object; }

    /// Byte offset of the value in the parsed text.
    std::size_t offset() const noexcept { return offset_; }

    /// Typed accessors: a wrong type raises llm::error naming `what` (e.g. "model.vocab") and the offset.
    bool as_bool(std::string_view what) const {
        expect(kind::boolean, what);
        return bool_;
    }
    /// The number (a wrong type raises llm::error).
    double as_number(std::string_view what) const {
        expect(kind::number, what);
        return number_;
    }
    /// An integral number in [lo, hi].
    std::int64_t as_int(std::string_view what, std::int64_t lo, std::int64_t hi) const {
        expect(kind::number, what);
        check(number_ == std::floor(number_) && number_ >= static_cast<double>(lo) && number_ <= static_cast<double>(hi),
              what, ": ", number_, " at offset ", offset_, " is not an integer in [", lo, ", ", hi, "]");
        return static_cast<std::int64_t>(number_);
    }
    /// The string (a wrong type raises llm::error).
    const std::string& as_string(std::string_view what) const {
        expect(kind::string, what);
        return string_;
    }
    /// The elements (a wrong type raises llm::error).
    const std::vector<json_value>& as_array(std::string_view what) const {
        expect(kind::array, what);
        return array_;
    }
    /// The members in file order (a wrong type raises llm::error).
    const std::vector<std::pair<std::string, json_value>>& as_object(std::string_view what) const {
        expect(kind::object, what);
        return object_;
    }

    /// The first member named `key` of an object, or nullptr (also for non-objects).
    const json_value* find(std::string_view key) const noexcept {
        if (kind_ != kind::object) return nullptr;
        for (const auto& [k, v] : object_) {
            if (k == key) return &v;
        }
        return nullptr;
    }
    /// The member named `key`; missing raises llm::error naming `what` and the offset.
    const json_value& at(std::string_view key, std::string_view what) const {
        expect(kind::object, what);
        const json_value* v = find(key);
        check(v != nullptr, what, ": object at offset ", offset_, " has no member '", key, "'");
        return *v;
    }

private:
    friend class detail::json_parser;
    void expect(kind k, std::string_view what) const {
        static constexpr const char* names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
        check(kind_ == k, what, ": expected ", names[static_cast<int>(k)], " at offset ", offset_, ", found ",
              names[static_cast<int>(kind_)]);
    }

    kind kind_ = kind::null;
    bool bool_ = false;
    double number_ = 0;
    std::size_t offset_ = 0;
    std::string string_;
    std::vector<json_value> array_;
    std::vector<std::pair<std::string, json_value>> object_;
};

/// Line and column (1-based) of a byte offset, for error messages.
inline std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t offset) {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            col = 1;
        } else {
            ++col;
        }
    }
    return {line, col};
}

namespace detail {

/// Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), 0 if invalid.
inline std::size_t valid_utf8_length(const char* p, const char* end) noexcept {
    const llm::utf8_char c = llm::decode_utf8(p, end);
    return c.cp == llm::utf8_char::invalid ? 0 : c.len;
}

// The one JSON lexer of the library (RFC 8259): the DOM parser below and the streaming JSONL
// record reader (io/jsonl.hpp) both read through it, so they accept and reject the same text.
// Rejects comments, trailing commas, control characters and invalid UTF-8 in strings, lone
// surrogate escapes, nesting deeper than max_depth (recursion, and stack use, stay bounded
// whatever the input). Errors name the source, line, column and byte offset.
class json_lexer {
public:
    static constexpr int max_depth = 256;

    json_lexer(std::string_view text, std::string_view source) noexcept : t_(text), source_(source) {}

    [[noreturn]] void error(std::string_view msg) const {
        const auto [line, col] = line_column(t_, p_);
        fail(source_, ":", line, ":", col, " (offset ", p_, "): ", msg);
    }
    void skip_ws() noexcept {
        while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
    }
    /// The next byte, or -1 at the end.
    int peek() const noexcept { return p_ < t_.size() ? static_cast<unsigned char>(t_[p_]) : -1; }
    bool at_end() const noexcept { return p_ >= t_.size(); }
    std::size_t offset() const noexcept { return p_; }
    std::string_view text() const noexcept { return t_; }
    void advance() noexcept { ++p_; }
    /// Consumes `c` or fails with "expected <what>".
    void expect(char c, std::string_view what) {
        if (peek() != static_cast<unsigned char>(c)) error(std::string("expected ") + std::string(what));
        ++p_;
    }
    /// Consumes `word` when the text continues with it.
    bool literal(std::string_view word) noexcept {
        if (t_.substr(p_, word.size()) != word) return false;
        p_ += word.size();
        return true;
    }

    /// Checks the number at the cursor and moves past it; its value when `want` (else 0).
    double number(bool want) {
        const std::size_t start = p_;
        auto digits = [&] {
            const std::size_t s = p_;
            while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
            return p_ - s;
        };
        if (peek() == '-') ++p_;
        if (peek() == '0') {
            ++p_;
        } else if (digits() == 0) {
            error("bad number");
        }
        if (peek() == '.') {
            ++p_;
            if (digits() == 0) error("bad number: no digits after '.'");
        }
        if (peek() == 'e' || peek() == 'E') {
            ++p_;
            if (peek() == '+' || peek() == '-') ++p_;
            if (digits() == 0) error("bad number: no exponent digits");
        }
        if (!want) return 0.0;
        // strtod needs a terminated copy; numbers are short.
        const std::string copy(t_.substr(start, p_ - start));
        return std::strtod(copy.c_str(), nullptr);
    }

    /// Decodes the string at the cursor (which is '"') into `out`, validating UTF-8 and escapes.
    void string(std::string& out) {
        out.clear();
        ++p_;  // opening quote
        for (;;) {
            const std::size_t run = p_;
            while (p_ < t_.size() && t_[p_] != '"' && t_[p_] != '\\' && static_cast<unsigned char>(t_[p_]) >= 0x20 &&
                   static_cast<unsigned char>(t_[p_]) < 0x80) {
                ++p_;
            }
            out.append(t_.substr(run, p_ - run));
            if (p_ >= t_.size()) error("unterminated string");
            const auto c = static_cast<unsigned char>(t_[p_]);
            if (c == '"') {
                ++p_;
                return;
            }
            if (c < 0x20) error("control character in a string");
            if (c >= 0x80) {
                const std::size_t n = valid_utf8_length(t_.data() + p_, t_.data() + t_.size());
                if (n == 0) error("invalid UTF-8 in a string");
                out.append(t_.substr(p_, n));
                p_ += n;
                continue;
            }
            if (++p_ >= t_.size()) error("unterminated escape");
            const char e = t_[p_++];
            switch (e) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                unsigned cp = hex4();
                if (cp >= 0xdc00 && cp <= 0xdfff) error("lone low surrogate in \\u escape");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (!literal("\\u")) error("high surrogate not followed by a \\u escape");
                    const unsigned lo = hex4();
                    if (lo < 0xdc00 || lo > 0xdfff) error("high surrogate not followed by a low surrogate");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                llm::append_utf8(out, static_cast<char32_t>(cp));
                break;
            }
            default: --p_; error("bad escape character");
            }
        }
    }

    /// Checks the value at the cursor and moves past it, building nothing (`scratch` holds
    /// decoded strings); depth is the nesting of the value.
    void skip_value(int depth, std::string& scratch) {
        if (depth > max_depth) error("nesting deeper than 256 levels");
        skip_ws();
        switch (peek()) {
        case '"': string(scratch); return;
        case '{':
            ++p_;
            skip_ws();
            if (peek() == '}') {
                ++p_;
                return;
            }
            for (;;) {
                skip_ws();
                if (peek() != '"') error("expected a string key");
                string(scratch);
                skip_ws();
                expect(':', "':' after an object key");
                skip_value(depth + 1, scratch);
                skip_ws();
                if (peek() == ',') {
                    ++p_;
                    continue;
                }
                expect('}', "',' or '}' in an object");
                return;
            }
        case '[':
            ++p_;
            skip_ws();
            if (peek() == ']') {
                ++p_;
                return;
            }
            for (;;) {
                skip_value(depth + 1, scratch);
                skip_ws();
                if (peek() == ',') {
                    ++p_;
                    continue;
                }
                expect(']', "',' or ']' in an array");
                return;
            }
        case -1: error("unexpected end of input, expected a value");
        default:
            if (literal("true") || literal("false") || literal("null")) return;
            if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
                number(false);
                return;
            }
            error("expected a value");
        }
    }

private:
    unsigned hex4() {
        if (t_.size() - p_ < 4) error("truncated \\u escape");
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = t_[p_++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
            else error("bad hex digit in \\u escape");
        }
        return v;
    }

    std::string_view t_;
    std::string_view source_;
    std::size_t p_ = 0;
};

// Recursive-descent DOM builder over json_lexer; also rejects more than max_values values
// (counted before the tree is built) and trailing text.
class json_parser {
public:
    json_parser(std::string_view text, std::string_view source, std::size_t max_values)
        : lx_(text, source), source_(source), max_values_(max_values) {}

    json_value parse() {
        const std::size_t n = count_values(lx_.text());
        check(n <= max_values_, source_, ": holds up to ", n, " JSON values, more than the limit of ", max_values_,
              " (each costs ~", sizeof(json_value), " bytes of tree)");
        json_value v = value(0);
        lx_.skip_ws();
        if (!lx_.at_end()) lx_.error("unexpected text after the JSON value");
        return v;
    }

    // An upper bound on the values of the tree, counted before anything is built: a valid
    // document holds 1 + (commas) + (non-empty containers) values; commas and brackets inside
    // strings are skipped. Invalid text only makes the bound looser, never smaller than the
    // values the parser builds before it finds the error.
    static std::size_t count_values(std::string_view t) noexcept {
        std::size_t n = 1;
        bool in_string = false;
        for (std::size_t i = 0; i < t.size(); ++i) {
            const char c = t[i];
            if (in_string) {
                if (c == '\\') ++i;
                else if (c == '"') in_string = false;
            } else if (c == '"') {
                in_string = true;
            } else if (c == ',' || c == '[' || c == '{') {
                ++n;
            }
        }
        return n;
    }

private:
    json_value value(int depth) {
        if (depth > json_lexer::max_depth) lx_.error("nesting deeper than 256 levels");
        lx_.skip_ws();
        json_value v;
        v.offset_ = lx_.offset();
        const int c = lx_.peek();
        if (c == '{') {
            v.kind_ = json_value::kind::object;
            lx_.advance();
            lx_.skip_ws();
            if (lx_.peek() == '}') {
                lx_.advance();
                return v;
            }
            for (;;) {
                lx_.skip_ws();
                if (lx_.peek() != '"') lx_.error("expected a string key");
                std::string key;
                lx_.string(key);
                lx_.skip_ws();
                lx_.expect(':', "':' after an object key");
                v.object_.emplace_back(std::move(key), value(depth + 1));
                lx_.skip_ws();
                if (lx_.peek() == ',') {
                    lx_.advance();
                    continue;
                }
                lx_.expect('}', "',' or '}' in an object");
                return v;
            }
        }
        if (c == '[') {
            v.kind_ = json_value::kind::array;
            lx_.advance();
            lx_.skip_ws();
            if (lx_.peek() == ']') {
                lx_.advance();
                return v;
            }
            for (;;) {
                v.array_.push_back(value(depth + 1));
                lx_.skip_ws();
                if (lx_.peek() == ',') {
                    lx_.advance();
                    continue;
                }
                lx_.expect(']', "',' or ']' in an array");
                return v;
            }
        }
        if (c == '"') {
            v.kind_ = json_value::kind::string;
            lx_.string(v.string_);
            return v;
        }
        if (lx_.literal("true")) {
            v.kind_ = json_value::kind::boolean;
            v.bool_ = true;
            return v;
        }
        if (lx_.literal("false")) {
            v.kind_ = json_value::kind::boolean;
            return v;
        }
        if (lx_.literal("null")) return v;
        if (c == '-' || (c >= '0' && c <= '9')) {
            v.kind_ = json_value::kind::number;
            v.number_ = lx_.number(true);
            return v;
        }
        if (c == -1) lx_.error("unexpected end of input, expected a value");
        lx_.error("expected a value");
    }

    json_lexer lx_;
    std::string_view source_;
    std::size_t max_values_;
};

}  // namespace detail

/// Parses JSON text (RFC 8259: UTF-8; no comments, no trailing commas, nesting up to 256 levels, at
/// most `max_values` values, checked before the tree is built); errors name `source`, line,
/// column and offset.
/// Example: `auto doc = llm::io::parse_json(text, "tokenizer.json"); auto& model = doc.at("model", "tokenizer.json");`
inline json_value parse_json(std::string_view text, std::string_view source, std::size_t max_values = default_max_json_values) {
    return detail::json_parser(text, source, max_values).parse();
}

/// `s` as a JSON string literal (quotes included). Bytes >= 0x80 are copied as they are, so
/// valid UTF-8 stays UTF-8; control characters are escaped as serde_json and Python's json do
/// (\b \f \n \r \t, else \u00XX), so headers we write match theirs byte for byte.
/// Example: `out << llm::io::json_quote("a\"b");`
inline std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                static constexpr char hex[] = "0123456789abcdef";
                out += "\\u00";
                out += hex[(c >> 4) & 0xf];
                out += hex[c & 0xf];
            } else {
                out += c;
            }
        }
    }
    out += '"';
    return out;
}

}  // namespace llm::io
