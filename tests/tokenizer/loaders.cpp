// SPDX-License-Identifier: Apache-2.0
// Loader errors name the file and the line or offset; known encodings match the data's sidecars.
#include <doctest/doctest.h>

#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/tiktoken.hpp>

#include "corpus.hpp"

#include <string>

using llm::tokenizer::parse_tiktoken;
using llm::tokenizer::tiktoken_from_text;

TEST_CASE("tiktoken: bad lines name the file and line") {
    CHECK_THROWS_WITH_AS(parse_tiktoken("YQ== 0\nYg== 1\n!!!! 2\n", "f.tiktoken"), doctest::Contains("f.tiktoken:3: bad base64"), llm::error);
    CHECK_THROWS_WITH_AS(parse_tiktoken("YQ== 0\nYg== 0\n", "f.tiktoken"), doctest::Contains("f.tiktoken:2: rank 0 repeats line 1"), llm::error);
    CHECK_THROWS_WITH_AS(parse_tiktoken("YQ== 0\nYQ== 1\n", "f.tiktoken"), doctest::Contains("f.tiktoken:2: token 'YQ==' repeats rank 0"), llm::error);
    CHECK_THROWS_WITH_AS(parse_tiktoken("YQ==\n", "f.tiktoken"), doctest::Contains("f.tiktoken:1: expected 'base64 rank'"), llm::error);
    CHECK_THROWS_WITH_AS(parse_tiktoken("YQ== 1x\n", "f.tiktoken"), doctest::Contains("f.tiktoken:1: bad rank"), llm::error);
    CHECK_THROWS_WITH_AS(parse_tiktoken("YQ== 99999999999\n", "f.tiktoken"), doctest::Contains("bad rank"), llm::error);
    CHECK_THROWS_WITH_AS(parse_tiktoken("YQ= 0\n", "f.tiktoken"), doctest::Contains("bad base64"), llm::error);
    CHECK_THROWS_WITH_AS(parse_tiktoken("Y=Q= 0\n", "f.tiktoken"), doctest::Contains("bad base64"), llm::error);
    // Padding variants, CRLF and blank lines are fine; gaps in ranks are allowed (p50k has one).
    const auto ok = parse_tiktoken("YQ== 0\r\n\nYWI= 2\nYWJj 3\n", "f");
    REQUIRE(ok.size() == 3);
    CHECK(ok[1].first == "ab");
    CHECK(ok[2] == std::pair<std::string, std::uint32_t>{"abc", 3});
}

TEST_CASE("tiktoken: missing, truncated or mismatched files raise llm::error naming them") {
    CHECK_THROWS_WITH_AS(llm::tokenizer::load_tiktoken("/nonexistent/x.tiktoken", "cl100k_base"),
                         doctest::Contains("/nonexistent/x.tiktoken"), llm::error);
    const std::string text = llm::io::read_file(llm_test::tokenizer_data("r50k_base.tiktoken"), llm::io::default_read_limit, "test");
    const std::string truncated = text.substr(0, text.rfind('\n', text.size() / 2) + 1);  // whole lines
    CHECK_THROWS_WITH_AS(tiktoken_from_text(truncated, "r50k_base", "r50k.tiktoken"), doctest::Contains("truncated"), llm::error);
    const std::string cut_mid_line = text.substr(0, text.size() / 2 + 3);
    CHECK_THROWS_AS(tiktoken_from_text(cut_mid_line, "r50k_base", "r50k.tiktoken"), llm::error);
    // Repeated token bytes in a full-size file: the error names both ranks.
    const std::size_t eol1 = text.find('\n'), eol2 = text.find('\n', eol1 + 1);
    const std::string dup = text.substr(0, eol1 + 1) + text.substr(0, eol1 - 1) + "1" + text.substr(eol2);
    CHECK_THROWS_WITH_AS(tiktoken_from_text(dup, "r50k_base", "r50k.tiktoken"),
                         doctest::Contains("r50k.tiktoken: token id 1 repeats the bytes of token id 0"), llm::error);
    CHECK_THROWS_WITH_AS(tiktoken_from_text(text, "r51k_base", "r50k.tiktoken"), doctest::Contains("unknown tiktoken encoding 'r51k_base'"),
                         llm::error);
}

TEST_CASE("tiktoken: built-in encodings agree with the data's sidecar files") {
    for (const std::string name : {"r50k_base", "cl100k_base", "o200k_base", "llama3"}) {
        CAPTURE(name);
        const std::string side = llm_test::tokenizer_data(name + ".json");
        const auto doc = llm::io::parse_json(llm::io::read_file(side, llm::io::default_read_limit, "test"), side);
        const auto info = llm::tokenizer::known_encoding(name);
        REQUIRE(info.has_value());
        CHECK(info->n_ranks == static_cast<std::size_t>(doc.at("n_mergeable_ranks", side).as_int(side, 0, 1 << 30)));
        const auto& specials = doc.at("special_tokens", side).as_object(side);
        REQUIRE(specials.size() == info->specials.size());
        for (std::size_t k = 0; k < specials.size(); ++k) {
            CHECK(specials[k].first == info->specials[k].text);
            CHECK(specials[k].second.as_int(side, 0, 1 << 30) == info->specials[k].id);
        }
        CHECK(llm::tokenizer::pattern_of_regex(doc.at("pat_str", side).as_string(side)) == info->pre);
        CHECK(llm_test::encoding(name).n_vocab() == static_cast<std::size_t>(doc.at("n_vocab", side).as_int(side, 0, 1 << 30)));
    }
}

TEST_CASE("json: malformed input names line, column and offset") {
    using llm::io::parse_json;
    CHECK_THROWS_WITH_AS(parse_json("{\"a\": [1, 2,]}", "t.json"), doctest::Contains("t.json:1:13 (offset 12)"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json("{\n\"a\": tru}", "t.json"), doctest::Contains("t.json:2:6"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json("\"abc", "t.json"), doctest::Contains("unterminated string"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json("\"\\ud800x\"", "t.json"), doctest::Contains("surrogate"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json("[1] 2", "t.json"), doctest::Contains("after the JSON value"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json(std::string(1000, '['), "t.json"), doctest::Contains("nesting"), llm::error);
    CHECK_THROWS_WITH_AS(parse_json("01", "t.json"), doctest::Contains("after the JSON value"), llm::error);
    const auto v = parse_json(R"({"s": "a\u00e9\ud83d\ude00\n", "n": -1.5e2, "b": [true, false, null]})", "t.json");
    CHECK(v.at("s", "t").as_string("t") == "a\xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK(v.at("n", "t").as_number("t") == -150.0);
    CHECK(v.at("b", "t").as_array("t").size() == 3);
    CHECK_THROWS_WITH_AS(v.at("n", "t").as_int("n", 0, 10), doctest::Contains("not an integer in [0, 10]"), llm::error);
    CHECK_THROWS_WITH_AS(v.at("s", "t").as_array("s"), doctest::Contains("expected an array at offset 6"), llm::error);
    CHECK_THROWS_WITH_AS(v.at("zz", "t.json"), doctest::Contains("no member 'zz'"), llm::error);
}

TEST_CASE("tokenizer.json: malformed or unsupported files raise llm::error with the offset") {
    using llm::tokenizer::hf_tokenizer_from_json;
    CHECK_THROWS_WITH_AS(hf_tokenizer_from_json("{}", "tok.json"), doctest::Contains("tok.json: object at offset 0 has no member 'model'"), llm::error);
    CHECK_THROWS_WITH_AS(hf_tokenizer_from_json(R"({"model": {"type": "WordPiece"}})", "tok.json"), doctest::Contains("only BPE"), llm::error);
    const std::string bad_merge = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}})";
    CHECK_THROWS_WITH_AS(hf_tokenizer_from_json(bad_merge, "tok.json"), doctest::Contains("merge 'a c' at offset"), llm::error);
    const std::string bad_regex = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}}, {"type": "ByteLevel"}]}})";
    CHECK_THROWS_WITH_AS(hf_tokenizer_from_json(bad_regex, "tok.json"), doctest::Contains("not one of the known patterns"), llm::error);
    const std::string text = llm::io::read_file(llm_test::tokenizer_data("llama2_sp_bpe.tokenizer.json"), llm::io::default_read_limit, "test");
    CHECK_THROWS_WITH_AS(hf_tokenizer_from_json(text.substr(0, text.size() - 100), "llama2.json"), doctest::Contains("llama2.json:"), llm::error);
}
