// SPDX-License-Identifier: Apache-2.0
// BPE trainer: hand-checked merges, determinism, written files reload identically, metrics.
#include <doctest/doctest.h>

#include <llm/io/file.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/tiktoken.hpp>
#include <llm/tokenizer/trainer.hpp>

#include "corpus.hpp"

#include <cstdio>
#include <string>
#include <vector>

using llm::tokenizer::bpe_trainer_options;
using llm::tokenizer::train_bpe;

TEST_CASE("trainer: merges the most frequent pair first, ties to the smaller pair, respects min_frequency") {
    // Pieces (cl100k): "aab" x1, " aab" x2, "cd" x1 -> pairs: aa 3, ab 3, " a" 2, cd 1.
    const std::vector<std::string_view> docs = {"aab aab", "cd aab"};
    const auto v = train_bpe(docs, {.vocab_size = 300, .min_frequency = 2, .pre = llm::tokenizer::pattern::cl100k, .specials = {}});
    REQUIRE(v.merges.size() == 3);
    CHECK(v.tokens[256] == "aa");   // ('a','a') = (97,97) < ('a','b') = (97,98) on the tie
    CHECK(v.tokens[257] == "aab");  // then (aa, b), count 3
    CHECK(v.merges[1] == std::pair<std::uint32_t, std::uint32_t>{256, 'b'});
    CHECK(v.tokens[258] == " aab");  // then (' ', aab), count 2; cd (1) is below min_frequency
    const auto one = train_bpe(docs, {.vocab_size = 257, .min_frequency = 1, .pre = llm::tokenizer::pattern::cl100k, .specials = {}});
    CHECK(one.tokens.size() == 257);
    CHECK_THROWS_WITH_AS(train_bpe(docs, {.vocab_size = 200, .min_frequency = 2, .pre = llm::tokenizer::pattern::cl100k, .specials = {}}), doctest::Contains("at least 256"), llm::error);
    CHECK_THROWS_WITH_AS(train_bpe(docs, {.vocab_size = 300, .min_frequency = 0, .pre = llm::tokenizer::pattern::cl100k, .specials = {}}), doctest::Contains("min_frequency"), llm::error);
}

TEST_CASE("trainer: deterministic; tiktoken file and tokenizer.json reload to the same encoder on the corpus") {
    const auto owned = llm_test::corpus_documents();
    const std::vector<std::string_view> docs(owned.begin(), owned.end());
    const bpe_trainer_options opt{.vocab_size = 3000, .min_frequency = 2, .pre = llm::tokenizer::pattern::o200k, .specials = {"<|endoftext|>"}};
    const auto v = train_bpe(docs, opt);
    const auto again = train_bpe(docs, opt);
    CHECK(v.tokens == again.tokens);
    CHECK(v.tokens.size() == 2999);
    REQUIRE(v.specials.size() == 1);
    CHECK(v.specials[0].id == 2999);
    const std::string base = "/tmp/llm_test_trainer_" + std::to_string(reinterpret_cast<std::uintptr_t>(&v));
    llm::tokenizer::write_tiktoken(v, base + ".tiktoken");
    llm::tokenizer::write_hf_tokenizer(v, base + ".json");
    const auto ranks = llm::tokenizer::parse_tiktoken(llm::io::read_file(base + ".tiktoken", llm::io::default_read_limit, "test"), base);
    REQUIRE(ranks.size() == v.tokens.size());
    for (std::size_t r = 0; r < ranks.size(); ++r) CHECK(ranks[r] == std::pair<std::string, std::uint32_t>{v.tokens[r], static_cast<std::uint32_t>(r)});
    const auto hf = std::get<llm::tokenizer::byte_bpe>(llm::tokenizer::load_hf_tokenizer(base + ".json"));
    const auto enc = v.tokenizer();
    std::size_t differ = 0;
    for (const auto doc : docs) {
        const auto ids = enc.encode(doc, llm::tokenizer::special_policy::all());
        differ += ids != hf.encode(doc, llm::tokenizer::special_policy::all());
        CHECK(enc.decode_bytes(ids) == doc);
    }
    CHECK(differ == 0);  // tiktoken semantics (rank of bytes) and merges semantics agree on a trained vocabulary
    std::remove((base + ".tiktoken").c_str());
    std::remove((base + ".json").c_str());
    const auto m = llm::tokenizer::measure(enc, docs);
    CHECK(m.bytes == llm::io::read_file(llm_test::tokenizer_data("corpus_public.txt"), llm::io::default_read_limit, "t").size() - 3 * (docs.size() - 1));
    CHECK(m.bytes_per_token() > 2.0);
    CHECK(m.fertility() > 1.0);
    // A bigger vocabulary compresses better on its own training text.
    const auto big = train_bpe(docs, {.vocab_size = 6000, .min_frequency = 2, .pre = llm::tokenizer::pattern::o200k, .specials = {}}).tokenizer();
    CHECK(llm::tokenizer::measure(big, docs).bytes_per_token() > m.bytes_per_token());
}
