// SPDX-License-Identifier: Apache-2.0
// Both JSON readers on hostile input: deep nesting, value counts that would blow the tree up,
// long \u escape runs and long numbers stay bounded in stack, memory and time.
#include <llm/io/jsonl.hpp>
#include <llm/io/json.hpp>

#include <doctest/doctest.h>

#include <limits>
#include <string>

using llm::io::parse_json;

namespace {

// "[[[...]]]" nested `depth` levels deep.
std::string nested_arrays(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// `{"a":{"a":...{"a":0}...}}` nested `depth` levels deep.
std::string nested_objects(std::size_t depth) {
    std::string s;
    for (std::size_t k = 0; k < depth; ++k) s += R"({"a":)";
    s += '0';
    s += std::string(depth, '}');
    return s;
}

// "[0,0,...,0]" with n zeros: n + 1 values in two bytes a value.
std::string zeros(std::size_t n) {
    std::string s = "[";
    for (std::size_t k = 0; k < n; ++k) s += k ? ",0" : "0";
    return s + "]";
}

}  // namespace

TEST_CASE("parse_json: nesting 100,000 deep is an error, not a stack overflow") {
    // Recursion stops at 256 levels whatever the input, so stack use is bounded.
    CHECK_THROWS_WITH_AS(parse_json(nested_arrays(100000), "deep.json"), doctest::Contains("deep.json:1:258 (offset 257): nesting deeper than 256"),
                         llm::error);
    CHECK_THROWS_WITH_AS(parse_json(nested_objects(100000), "deep.json"), doctest::Contains("nesting deeper than 256"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json(std::string(100000, '['), "open.json"), doctest::Contains("nesting deeper than 256"), llm::error);
    // 256 levels below the top are allowed, 257 are not.
    CHECK(parse_json(nested_arrays(257), "ok.json").as_array("ok").size() == 1);
    CHECK_THROWS_AS(parse_json(nested_arrays(258), "deep.json"), llm::error);
}

TEST_CASE("parse_json: the value count is checked before the tree is built") {
    // A value costs ~104 bytes of tree for two bytes of text: 2^23 + 1 zeros (16 MiB of text)
    // would build ~1.7 GB (measured: 10M zeros took 1.7 GB of RSS and 4.7 s). The count is
    // made in one pass over the text first, so this fails before the tree exists.
    static_assert(llm::io::default_max_json_values == std::size_t{1} << 23);
    const std::string many = zeros(llm::io::default_max_json_values);  // one more value: the array
    CHECK_THROWS_WITH_AS(parse_json(many, "many.json"),
                         doctest::Contains("many.json: holds up to 8388609 JSON values, more than the limit of 8388608"), llm::error);
    // The count is exact for valid documents: 1 + commas + non-empty containers.
    CHECK(parse_json("[1,2,3]", "t", 4).as_array("t").size() == 3);
    CHECK_THROWS_WITH_AS(parse_json("[1,2,3]", "t", 3), doctest::Contains("holds up to 4 JSON values"), llm::error);
    CHECK(parse_json(R"({"a":[],"b":{}})", "t", 5).is_object());  // 3 values; empty containers make the bound 5
    CHECK(parse_json(R"({"a":[1],"b":{"c":[2,3]}})", "t", 7).is_object());  // 7 values: object, [1], 1, {...}, [2,3], 2, 3
    CHECK_THROWS_AS(parse_json(R"({"a":[1],"b":{"c":[2,3]}})", "t", 6), llm::error);
    // Commas, brackets and escaped quotes inside strings are not counted.
    CHECK(parse_json(R"(["[,{,\",]"])", "t", 2).as_array("t")[0].as_string("t") == "[,{,\",]");
    CHECK(parse_json(R"(["\\",1])", "t", 3).as_array("t").size() == 2);
}

TEST_CASE("parse_json: \\u escapes and long numbers cost no more than their text") {
    // 1,000,000 escapes of 6 bytes decode to 3 bytes each (U+FFFF) or 4 per surrogate pair.
    std::string esc = "\"";
    for (int k = 0; k < 1000000; ++k) esc += "\\uffff";
    esc += "\\ud83d\\ude00\"";
    const auto s = parse_json(esc, "esc.json");
    CHECK(s.as_string("esc").size() == 3000000 + 4);
    CHECK_THROWS_WITH_AS(parse_json("\"\\ud800\"", "t"), doctest::Contains("high surrogate not followed"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json("\"\\u12zz\"", "t"), doctest::Contains("bad hex digit"), llm::error);
    // A 1,000,000-digit number is one strtod call over its text (linear); out-of-range values
    // become infinities that as_int refuses with the stated range.
    const auto big = parse_json("1" + std::string(1000000, '0'), "n.json");
    CHECK(big.as_number("n") == std::numeric_limits<double>::infinity());
    CHECK_THROWS_WITH_AS(big.as_int("n", 0, 16777215), doctest::Contains("is not an integer in [0, 16777215]"), llm::error);
    CHECK(parse_json("0." + std::string(1000000, '0') + "1", "n").as_number("n") == 0.0);
    CHECK_THROWS_WITH_AS(parse_json("1e", "n"), doctest::Contains("no exponent digits"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json("-", "n"), doctest::Contains("bad number"), llm::error);
}

TEST_CASE("read_jsonl_record: deep nesting, escapes and long values stay bounded") {
    llm::io::jsonl_record r;
    const auto read_json_record = [](const std::string& line, const char* text, const char* id, llm::io::jsonl_record& out) {
        llm::io::read_jsonl_record(line, text, id, out);
    };
    // The record reader skips values recursively up to 256 levels, as parse_json nests.
    CHECK_THROWS_WITH_AS(read_json_record(R"({"a":)" + nested_arrays(100000) + "}", "text", "id", r),
                         doctest::Contains("nesting deeper than 256"), llm::error);
    CHECK_THROWS_WITH_AS(read_json_record(R"({"a":)" + std::string(100000, '['), "text", "id", r), doctest::Contains("nesting deeper than 256"),
                         llm::error);
    read_json_record(R"({"a":)" + nested_arrays(255) + R"(,"text":"x"})", "text", "id", r);
    CHECK(r.text == "x");
    // Escapes decode to no more bytes than their text; a long numeric id is copied as text.
    std::string line = R"({"id":)" + std::string(100000, '7') + R"(,"text":")";
    for (int k = 0; k < 100000; ++k) line += "\\u00e9";
    line += "\"}";
    read_json_record(line, "text", "id", r);
    CHECK(r.text.size() == 200000);
    CHECK(r.id.size() == 100000);
}
