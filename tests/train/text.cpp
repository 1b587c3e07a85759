// SPDX-License-Identifier: Apache-2.0
// Text fields in the fine-tuning JSONL: read_sft_jsonl / read_preference_jsonl with a
// text_tokenizer give the token ids Hugging Face's tokenizer gives for each field on its own
// (examples/train/*_text_ids.jsonl, written by transformers 4.44.2's `tokenizers`), and a string
// without a tokenizer, or a tokenizer id outside the vocabulary, is an llm::error naming the
// file, line and field.
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/train/objectives.hpp>

#include <doctest/doctest.h>

#include "../support/temp_dir.hpp"

#include <cstdio>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

const std::string examples_dir = LLM_SOURCE_DIR "/examples/train/";

llm::train::text_tokenizer tiny_tokenizer() {
    const auto tok = llm::tokenizer::load_hf_tokenizer(LLM_SOURCE_DIR "/tests/golden/generate/tiny-tokenizer/tokenizer.json");
    return [tok](std::string_view text, const std::string&) {
        const auto ids = std::visit([&](const auto& t) { return t.encode(text, llm::tokenizer::special_policy::all()); }, tok);
        return std::vector<std::int32_t>(ids.begin(), ids.end());
    };
}

}  // namespace

TEST_CASE("read_sft_jsonl / read_preference_jsonl: text fields tokenized each on its own equal Hugging Face's token ids") {
    const auto tok = tiny_tokenizer();
    const auto st = llm::train::read_sft_jsonl(examples_dir + "sft_text.jsonl", 64, tok);
    const auto si = llm::train::read_sft_jsonl(examples_dir + "sft_text_ids.jsonl", 64);
    REQUIRE(st.size() == si.size());
    REQUIRE(st.size() == 4);
    for (std::size_t i = 0; i < st.size(); ++i) {
        CHECK(st[i].prompt == si[i].prompt);
        CHECK(st[i].response == si[i].response);
    }
    const auto pt = llm::train::read_preference_jsonl(examples_dir + "pairs_text.jsonl", 64, tok);
    const auto pi = llm::train::read_preference_jsonl(examples_dir + "pairs_text_ids.jsonl", 64);
    REQUIRE(pt.size() == pi.size());
    REQUIRE(pt.size() == 4);
    for (std::size_t i = 0; i < pt.size(); ++i) {
        CHECK(pt[i].prompt == pi[i].prompt);
        CHECK(pt[i].chosen == pi[i].chosen);
        CHECK(pt[i].rejected == pi[i].rejected);
    }
    // each field on its own: prompt "th" + response "e" is t h | e, where the joint text "the" merges h e
    llm_test::temp_dir dir;
    const std::string path = dir / "split.jsonl";
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        std::fputs("{\"prompt\": \"th\", \"response\": \"e\"}\n", f);
        std::fclose(f);
    }
    const auto split = llm::train::read_sft_jsonl(path, 64, tok);
    REQUIRE(split.size() == 1);
    CHECK(split[0].prompt == std::vector<std::int32_t>{22, 10});  // t h
    CHECK(split[0].response == std::vector<std::int32_t>{7});     // e
    CHECK(tok("the", "") == std::vector<std::int32_t>{22, 32});   // t he: the joint tokenization differs
}

TEST_CASE("read_sft_jsonl / read_preference_jsonl: text without a tokenizer, or ids outside the vocabulary, are errors naming file, line and field") {
    CHECK_THROWS_WITH_AS(llm::train::read_sft_jsonl(examples_dir + "sft_text.jsonl", 64),
                         doctest::Contains("sft_text.jsonl line 1: \"prompt\" is text, and no tokenizer was given"), llm::error);
    CHECK_THROWS_WITH_AS(llm::train::read_preference_jsonl(examples_dir + "pairs_text.jsonl", 64),
                         doctest::Contains("pairs_text.jsonl line 1: \"prompt\" is text"), llm::error);
    // the tiny tokenizer's ids reach 63: a 40-token vocabulary refuses them, naming the field
    CHECK_THROWS_WITH_AS(llm::train::read_sft_jsonl(examples_dir + "sft_text.jsonl", 40, tiny_tokenizer()),
                         doctest::Contains("line 1: \"prompt\": the tokenizer gave id 51, outside the model's vocabulary of 40"), llm::error);
}
