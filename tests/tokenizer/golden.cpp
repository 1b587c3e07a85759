// SPDX-License-Identifier: Apache-2.0
// Every golden document of ../shared/data/tokenizers/golden must be reproduced exactly.
#include <doctest/doctest.h>

#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/tiktoken.hpp>

#include "corpus.hpp"

#include <string>
#include <vector>

namespace {

// Compares every document; reports the first few mismatches with their index.
template <class Tokenizer>
void check_golden(const Tokenizer& enc, const std::string& golden, const llm::tokenizer::special_policy& policy) {
    const auto docs = llm_test::corpus_documents();
    const auto expected = llm_test::read_ids(llm_test::tokenizer_data("golden/" + golden));
    REQUIRE(docs.size() == 578);
    REQUIRE(expected.size() == docs.size());
    llm::tokenizer::encode_context ctx;
    int mismatches = 0;
    for (std::size_t d = 0; d < docs.size(); ++d) {
        std::vector<std::uint32_t> ids;
        enc.encode(docs[d], ids, policy, ctx);
        if (ids != expected[d]) {
            ++mismatches;
            if (mismatches <= 5) {
                std::size_t k = 0;
                while (k < ids.size() && k < expected[d].size() && ids[k] == expected[d][k]) ++k;
                FAIL_CHECK(golden << " document " << d << ": first difference at token " << k << " of "
                                  << expected[d].size() << " (got " << (k < ids.size() ? static_cast<long>(ids[k]) : -1)
                                  << ", expected " << (k < expected[d].size() ? static_cast<long>(expected[d][k]) : -1) << ")");
            }
        }
        // Decoding gives the document back byte for byte.
        if (mismatches == 0) CHECK(enc.decode_bytes(ids) == docs[d]);
    }
    CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("golden: tiktoken encodings, ordinary and all-special, every document") {
    for (const std::string name : {"r50k_base", "cl100k_base", "o200k_base", "llama3"}) {
        CAPTURE(name);
        const auto enc = llm::tokenizer::load_tiktoken(llm_test::tokenizer_data(name + ".tiktoken"), name);
        check_golden(enc, name + ".ordinary.ids", llm::tokenizer::special_policy::none());
        check_golden(enc, name + ".allspecial.ids", llm::tokenizer::special_policy::all());
    }
}

TEST_CASE("golden: SentencePiece BPE from tokenizer.json (Llama 2, Mistral), every document") {
    for (const std::string name : {"llama2_sp_bpe", "mistral_sp_bpe"}) {
        CAPTURE(name);
        const auto tok = llm::tokenizer::load_hf_tokenizer(llm_test::tokenizer_data(name + ".tokenizer.json"));
        REQUIRE(std::holds_alternative<llm::tokenizer::sp_bpe>(tok));
        check_golden(std::get<llm::tokenizer::sp_bpe>(tok), name + ".ordinary.ids", llm::tokenizer::special_policy::none());
    }
}
