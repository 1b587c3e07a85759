// SPDX-License-Identifier: Apache-2.0
// JSONL records: one JSON object per line, two fields extracted without building a tree (the dedup tool's input).
#pragma once

#include <llm/io/json.hpp>

#include <string>
#include <string_view>

namespace llm::io {

/// What read_jsonl_record extracts from one line: the text field and the id field. Reused
/// across lines, so its strings keep their capacity.
struct jsonl_record {
    std::string text;              ///< the decoded string value of the text field
    std::string id;                ///< the decoded string value of the id field, or the literal text of a number, true, false or null
    bool has_text = false;         ///< the text field is present and a string
    bool has_id = false;           ///< the id field is present
    bool text_not_string = false;  ///< the text field is present but not a string
};

/// Parses `line` as one JSON object (RFC 8259, UTF-8) and extracts the members `text_key` and
/// `id_key` (empty: no id) into `out`; the other members are checked and skipped without
/// building anything, so a record costs one pass over its bytes. The same lexer as
/// parse_json: the same text is accepted and rejected. Throws llm::error "<source>:1:<column>
/// (offset N): <what>" on malformed JSON, invalid UTF-8 (lone surrogate escapes too), nesting
/// deeper than 256 levels, or text after the object.
/// Example: `llm::io::jsonl_record r; llm::io::read_jsonl_record(R"({"id": 1, "text": "hi"})", "text", "id", r);`
inline void read_jsonl_record(std::string_view line, std::string_view text_key, std::string_view id_key, jsonl_record& out,
                              std::string_view source = "jsonl record") {
    detail::json_lexer lx(line, source);
    std::string key, scratch;
    out.has_text = out.has_id = out.text_not_string = false;
    lx.skip_ws();
    lx.expect('{', "a JSON object");
    lx.skip_ws();
    if (lx.peek() == '}') {
        lx.advance();
    } else {
        for (;;) {
            lx.skip_ws();
            if (lx.peek() != '"') lx.error("expected a string key");
            lx.string(key);
            lx.skip_ws();
            lx.expect(':', "':' after an object key");
            lx.skip_ws();
            if (key == text_key) {
                if (lx.peek() == '"') {
                    lx.string(out.text);
                    out.has_text = true;
                    out.text_not_string = false;
                } else {
                    lx.skip_value(1, scratch);
                    out.has_text = false;
                    out.text_not_string = true;
                }
            } else if (!id_key.empty() && key == id_key) {
                if (lx.peek() == '"') {
                    lx.string(out.id);
                } else {
                    const std::size_t start = lx.offset();
                    lx.skip_value(1, scratch);
                    out.id.assign(line.substr(start, lx.offset() - start));
                }
                out.has_id = true;
            } else {
                lx.skip_value(1, scratch);
            }
            lx.skip_ws();
            if (lx.peek() == ',') {
                lx.advance();
                continue;
            }
            lx.expect('}', "',' or '}' in an object");
            break;
        }
    }
    lx.skip_ws();
    if (!lx.at_end()) lx.error("trailing characters after the object");
}

}  // namespace llm::io
