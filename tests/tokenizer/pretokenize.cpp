// SPDX-License-Identifier: Apache-2.0
// Pre-tokenizer scanners against the Python regex engine (tests/golden/tokenizer/splits.jsonl) and hand cases.
#include <doctest/doctest.h>

#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/tokenizer/pretokenize.hpp>

#include "corpus.hpp"

#include <string>
#include <vector>

namespace {

template <class P>
std::vector<std::string> split(std::string_view text) {
    std::vector<std::string> out;
    llm::tokenizer::for_each_piece<P>(text, [&](std::string_view p) { out.emplace_back(p); });
    return out;
}

std::vector<std::string> split(std::string_view pattern, std::string_view text) {
    if (pattern == "r50k") return split<llm::tokenizer::r50k_pattern>(text);
    if (pattern == "cl100k") return split<llm::tokenizer::cl100k_pattern>(text);
    return split<llm::tokenizer::o200k_pattern>(text);
}

}  // namespace

TEST_CASE("pretokenize: every case of splits.jsonl matches the Python regex engine") {
    const std::string path = std::string(LLM_SOURCE_DIR) + "/tests/golden/tokenizer/splits.jsonl";
    const std::string all = llm::io::read_file(path, llm::io::default_read_limit, "test");
    std::size_t pos = 0, cases = 0, bad = 0;
    while (pos < all.size()) {
        std::size_t eol = all.find('\n', pos);
        if (eol == std::string::npos) eol = all.size();
        const auto doc = llm::io::parse_json(std::string_view(all).substr(pos, eol - pos), path);
        pos = eol + 1;
        const std::string& pat = doc.at("pattern", path).as_string(path);
        const std::string& text = doc.at("text", path).as_string(path);
        std::vector<std::string> expected;
        for (const auto& p : doc.at("pieces", path).as_array(path)) expected.push_back(p.as_string(path));
        ++cases;
        if (split(pat, text) != expected) {
            ++bad;
            if (bad <= 5) FAIL_CHECK(pat << " splits '" << text << "' differently");
        }
    }
    CHECK(cases > 700);
    CHECK(bad == 0);
}

TEST_CASE("pretokenize: the whitespace rules and contractions") {
    using V = std::vector<std::string>;
    using llm::tokenizer::cl100k_pattern;
    using llm::tokenizer::o200k_pattern;
    using llm::tokenizer::r50k_pattern;
    // \s+(?!\S): a run of spaces gives its last space to the next word.
    CHECK(split<r50k_pattern>("a   b") == V{"a", "  ", " b"});
    // ...but keeps all at the end of the text.
    CHECK(split<r50k_pattern>("a   ") == V{"a", "   "});
    // \s*[\r\n]+ ends at the last newline of the run.
    CHECK(split<cl100k_pattern>("a \n \n  b") == V{"a", " \n \n", " ", " b"});
    // Contractions are case-insensitive in cl100k (with U+017F for s), not in r50k.
    CHECK(split<cl100k_pattern>("X'S'\xc5\xbf") == V{"X", "'S", "'\xc5\xbf"});
    CHECK(split<r50k_pattern>("X'S") == V{"X", "'", "S"});
    CHECK(split<r50k_pattern>("x'sy") == V{"x", "'s", "y"});
    // o200k: case-aware words with the contraction attached.
    CHECK(split<o200k_pattern>("HTTPServer's") == V{"HTTPServer's"});
    CHECK(split<o200k_pattern>("CamelCase") == V{"Camel", "Case"});
    // Digits in groups of three.
    CHECK(split<cl100k_pattern>("1234567") == V{"123", "456", "7"});
}

TEST_CASE("pretokenize: ill-formed UTF-8 is split and covered byte for byte") {
    const std::string text = "ab\xff\xfe cd\xe4\xb8 \xf0\x9f\x98";
    for (const std::string_view pat : {"r50k", "cl100k", "o200k"}) {
        std::string joined;
        for (const auto& p : split(pat, text)) {
            CHECK(!p.empty());
            joined += p;
        }
        CHECK(joined == text);
    }
}
