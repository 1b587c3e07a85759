// SPDX-License-Identifier: Apache-2.0
// tokenizer.json, vocab.json+merges.txt and GGUF vocabularies against ids from Hugging Face tokenizers and SentencePiece.
#include <doctest/doctest.h>

#include <llm/io/file.hpp>
#include <llm/tokenizer/tokenizer.hpp>
#include <llm/tokenizer/trainer.hpp>

#include "corpus.hpp"

#include <string>
#include <vector>

namespace {

std::string golden(const std::string& name) { return std::string(LLM_SOURCE_DIR) + "/tests/golden/tokenizer/" + name; }

std::vector<std::string> chosen_documents() {
    const auto docs = llm_test::corpus_documents();
    std::vector<std::string> out;
    for (const auto& row : llm_test::read_ids(golden("documents.txt"))) out.push_back(docs.at(row.at(0)));
    return out;
}

void check_ids(const llm::tokenizer::tokenizer& tok, const std::string& ids_file, const llm::tokenizer::special_policy& policy) {
    const auto docs = chosen_documents();
    const auto expected = llm_test::read_ids(golden(ids_file));
    REQUIRE(docs.size() > 100);
    REQUIRE(expected.size() == docs.size());
    int bad = 0;
    for (std::size_t d = 0; d < docs.size(); ++d) {
        const auto ids = tok.encode(docs[d], policy);
        if (ids != expected[d] && ++bad <= 3) FAIL_CHECK(tok.name() << ": document index " << d << " differs");
        if (ids == expected[d]) CHECK(tok.decode_bytes(ids) == docs[d]);
    }
    CHECK(bad == 0);
}

}  // namespace

TEST_CASE("formats: Hugging Face ByteLevel tokenizer.json, GPT-2 files and GGUF gpt2 give tokenizers' ids") {
    const auto all = llm::tokenizer::special_policy::all();  // HF always matches added tokens
    check_ids(llm::tokenizer::load_tokenizer(golden("tiny_bytelevel.tokenizer.json")), "tiny_bytelevel.ids", all);
    check_ids(llm::tokenizer::load_tokenizer(golden("tiny_gpt2/vocab.json")), "tiny_bytelevel.ids", all);
    check_ids(llm::tokenizer::load_tokenizer(golden("tiny_gpt2.gguf")), "tiny_bytelevel.ids", all);
}

TEST_CASE("formats: GGUF llama (SentencePiece scores, byte fallback) gives sentencepiece's ids") {
    const auto tok = llm::tokenizer::load_tokenizer(golden("tiny_spm.gguf"));
    REQUIRE(std::holds_alternative<llm::tokenizer::sp_bpe>(tok.impl()));
    check_ids(tok, "tiny_spm.ids", llm::tokenizer::special_policy::none());
}

TEST_CASE("formats: every truncation and many corruptions of a GGUF file give llm::error or a tokenizer, never a crash") {
    const std::string data = llm::io::read_file(golden("tiny_gpt2.gguf"), llm::io::default_read_limit, "test");
    int errors = 0;
    for (std::size_t len = 0; len < data.size(); len += 7) {
        try {
            (void)llm::tokenizer::gguf_tokenizer(std::string_view(data).substr(0, len), "cut.gguf");
        } catch (const llm::error& e) {
            ++errors;
            CHECK(std::string(e.what()).find("cut.gguf") != std::string::npos);
        }
    }
    CHECK(errors > 0);
    std::string bad = data;
    for (std::size_t k = 8; k < 200; ++k) {
        bad = data;
        bad[k] = static_cast<char>(0xff);
        try {
            (void)llm::tokenizer::gguf_tokenizer(bad, "bad.gguf");
        } catch (const llm::error&) {
        }
    }
    CHECK_THROWS_WITH_AS(llm::tokenizer::gguf_tokenizer(std::string_view("GGUF\x01\0\0\0", 8), "v1.gguf"), doctest::Contains("version 1"), llm::error);
    CHECK_THROWS_WITH_AS(llm::tokenizer::gguf_tokenizer("GGML", "x.gguf"), doctest::Contains("not a GGUF file"), llm::error);
}

TEST_CASE("formats: GPT-2 merges.txt errors name the line") {
    const std::string vocab = R"({"a": 0, "b": 1, "ab": 2})";
    CHECK_THROWS_WITH_AS(llm::tokenizer::gpt2_from_text(vocab, "#version: 0.2\na b\nab\n", "v.json", "m.txt"),
                         doctest::Contains("m.txt:3: expected 'left right'"), llm::error);
    CHECK_THROWS_WITH_AS(llm::tokenizer::gpt2_from_text(vocab, "a c\n", "v.json", "m.txt"), doctest::Contains("m.txt:1:"), llm::error);
    const auto enc = llm::tokenizer::gpt2_from_text(vocab, "#version: 0.2\na b\n", "v.json", "m.txt");
    CHECK(enc.encode("abab") == std::vector<std::uint32_t>{2, 2});
    CHECK_THROWS_WITH_AS(enc.encode("ab c"), doctest::Contains("byte 0x20 has no token"), llm::error);
}

TEST_CASE("formats: p50k_base-shaped rank file (a gap at 50256, space-run tokens) matches tiktoken") {
    // r50k's ranks plus " " * n at 50257 + n - 2 for n = 2..25, as make_p50k_golden.py builds it.
    std::string text = llm::io::read_file(llm_test::tokenizer_data("r50k_base.tiktoken"), llm::io::default_read_limit, "test");
    for (int n = 2; n <= 25; ++n) {
        text += llm::tokenizer::detail::base64_encode(std::string(static_cast<std::size_t>(n), ' ')) + " " + std::to_string(50257 + n - 2) + "\n";
    }
    const llm::tokenizer::tokenizer tok(llm::tokenizer::tiktoken_from_text(text, "p50k_base", "p50k_synthetic.tiktoken"));
    CHECK(tok.n_vocab() == 50281);
    check_ids(tok, "p50k_synthetic.ids", llm::tokenizer::special_policy::all());
    CHECK_THROWS_WITH_AS(llm::tokenizer::tiktoken_from_text(text, "r50k_base", "x.tiktoken"), doctest::Contains("has 50280 ranks but r50k_base has 50256"),
                         llm::error);
}
