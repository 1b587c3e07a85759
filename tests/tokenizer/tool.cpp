// SPDX-License-Identifier: Apache-2.0
// The `tokenize` tool's library path (load_tokenizer + encode_batch + formatting) reproduces every golden file byte for byte.
#include <doctest/doctest.h>

#include <llm/io/file.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tokenizer/batch.hpp>
#include <llm/tokenizer/tokenizer.hpp>

#include "corpus.hpp"

#include <string>
#include <vector>

namespace {

std::string format_ids(const std::vector<std::vector<std::uint32_t>>& ids) {
    std::string out;
    for (const auto& doc : ids) {
        for (std::size_t k = 0; k < doc.size(); ++k) {
            if (k) out += ' ';
            out += std::to_string(doc[k]);
        }
        out += '\n';
    }
    return out;
}

}  // namespace

TEST_CASE("tokenize tool path: every golden file, byte for byte, with 2 threads") {
    const std::string corpus = llm::io::read_file(llm_test::tokenizer_data("corpus_public.txt"), llm::io::default_read_limit, "test");
    const auto owned = llm_test::split_documents(corpus);
    const std::vector<std::string_view> docs(owned.begin(), owned.end());
    llm::parallel::thread_pool pool(2);
    struct run {
        std::string vocab, golden;
        bool all;
    };
    const std::vector<run> runs = {
        {"r50k_base.tiktoken", "r50k_base.ordinary.ids", false},     {"r50k_base.tiktoken", "r50k_base.allspecial.ids", true},
        {"cl100k_base.tiktoken", "cl100k_base.ordinary.ids", false}, {"cl100k_base.tiktoken", "cl100k_base.allspecial.ids", true},
        {"o200k_base.tiktoken", "o200k_base.ordinary.ids", false},   {"o200k_base.tiktoken", "o200k_base.allspecial.ids", true},
        {"llama3.tiktoken", "llama3.ordinary.ids", false},           {"llama3.tiktoken", "llama3.allspecial.ids", true},
        {"llama2_sp_bpe.tokenizer.json", "llama2_sp_bpe.ordinary.ids", false},
        {"mistral_sp_bpe.tokenizer.json", "mistral_sp_bpe.ordinary.ids", false},
    };
    for (const run& r : runs) {
        CAPTURE(r.golden);
        const auto tok = llm::tokenizer::load_tokenizer(llm_test::tokenizer_data(r.vocab));  // encoding from the file name
        const auto policy = r.all ? llm::tokenizer::special_policy::all() : llm::tokenizer::special_policy::none();
        const std::string expected = llm::io::read_file(llm_test::tokenizer_data("golden/" + r.golden), llm::io::default_read_limit, "test");
        const auto ids = llm::tokenizer::encode_batch(tok, docs, policy, pool);
        CHECK(format_ids(ids) == expected);
        // --decode direction: ids back to the documents.
        std::string decoded;
        for (std::size_t d = 0; d < ids.size(); ++d) decoded += (d ? "\n\f\n" : "") + tok.decode_bytes(ids[d]);
        CHECK(decoded == corpus);
    }
}

TEST_CASE("decode_stream: streams every document of the SentencePiece corpus back") {
    const auto tok = llm::tokenizer::load_tokenizer(llm_test::tokenizer_data("mistral_sp_bpe.tokenizer.json"));
    const auto docs = llm_test::corpus_documents();
    for (std::size_t d = 0; d < docs.size(); d += 5) {
        llm::tokenizer::decode_stream ds(tok);
        std::string text;
        for (const auto id : tok.encode(docs[d])) text += ds.push(id);
        text += ds.finish();
        CHECK(text == docs[d]);
    }
}
