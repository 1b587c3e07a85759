// SPDX-License-Identifier: Apache-2.0
// GGUF vocabularies with hostile token types and scores: llm::error, never a float -> int cast.
#include <doctest/doctest.h>

#include <llm/io/gguf.hpp>
#include <llm/tokenizer/gguf_vocab.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

const std::vector<std::string> tokens = {"<unk>", "\xe2\x96\x81", "a", "b", "ab", "\xe2\x96\x81" "ab"};

// A llama (SentencePiece) vocabulary; `extra` adds token_type / scores as the case needs.
template <class Extra>
std::string llama_vocab(Extra extra) {
    llm::io::gguf_writer w;
    w.add("general.architecture", "llama");
    w.add("tokenizer.ggml.model", "llama");
    w.add_array("tokenizer.ggml.tokens", tokens);
    w.add<std::uint32_t>("tokenizer.ggml.unknown_token_id", 0);
    extra(w);
    return w.to_bytes();
}

const std::vector<float> good_scores = {0, -1, -2, -3, -4, -5};

void check_error(const std::string& bytes, const char* expected) {
    CAPTURE(expected);
    CHECK_THROWS_WITH_AS(llm::tokenizer::gguf_tokenizer(bytes, "vocab.gguf"), doctest::Contains(expected), llm::error);
}

}  // namespace

TEST_CASE("gguf vocab: a llama vocabulary with integer token types and f32 scores loads") {
    const std::string bytes = llama_vocab([](llm::io::gguf_writer& w) {
        w.add_array("tokenizer.ggml.scores", good_scores);
        w.add_array("tokenizer.ggml.token_type", std::vector<std::int32_t>{2, 1, 1, 1, 1, 1});
    });
    const auto tok = llm::tokenizer::gguf_tokenizer(bytes, "vocab.gguf");
    const auto& sp = std::get<llm::tokenizer::sp_bpe>(tok);
    CHECK(sp.encode("ab") == std::vector<std::uint32_t>{5});
}

TEST_CASE("gguf vocab: NaN, infinite or out-of-range scores and token types are refused") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    check_error(llama_vocab([&](auto& w) { w.add_array("tokenizer.ggml.scores", std::vector<float>{0, -1, nan, -3, -4, -5}); }),
                "'tokenizer.ggml.scores' of token 2 is nan, not a finite f32");
    check_error(llama_vocab([&](auto& w) {
                    w.add_array("tokenizer.ggml.scores", std::vector<float>{0, -1, -2, -3, std::numeric_limits<float>::infinity(), -5});
                }),
                "of token 4 is inf, not a finite f32");
    check_error(llama_vocab([&](auto& w) { w.add_array("tokenizer.ggml.scores", std::vector<double>{0, -1, -2, -3, -4, 1e300}); }),
                "of token 5 is 1e+300, not a finite f32");
    check_error(llama_vocab([&](auto& w) { w.add_array("tokenizer.ggml.scores", std::vector<std::int32_t>{0, 1, 2, 3, 4, 5}); }),
                "'tokenizer.ggml.scores' must be an f32 array of 6 entries");
    check_error(llama_vocab([&](auto& w) { w.add_array("tokenizer.ggml.scores", std::vector<float>{0, -1}); }),
                "'tokenizer.ggml.scores' must be an f32 array of 6 entries");
    check_error(llama_vocab([](auto&) {}), "needs one 'tokenizer.ggml.scores' entry per token");
    auto with_types = [&](auto types) {
        return llama_vocab([&](auto& w) {
            w.add_array("tokenizer.ggml.scores", good_scores);
            w.add_array("tokenizer.ggml.token_type", types);
        });
    };
    check_error(with_types(std::vector<float>{1, 1, nan, 1, 1, 1}), "'tokenizer.ggml.token_type' must be an integer array");
    check_error(with_types(std::vector<float>{1, 1, 3.7f, 1, 1, 1}), "'tokenizer.ggml.token_type' must be an integer array");
    check_error(with_types(std::vector<std::int32_t>{1, 1, 99, 1, 1, 1}), "token_type' of token 2 is 99, not a token type (0 to 6)");
    check_error(with_types(std::vector<std::int32_t>{1, 1, 1, -1, 1, 1}), "of token 3 is -1, not a token type");
    check_error(with_types(std::vector<std::int64_t>{1, 1, 1, 1, 1, std::numeric_limits<std::int64_t>::min()}), "of token 5 is");
    check_error(with_types(std::vector<std::int32_t>{1, 1, 1}), "must be an array of 6 integers, one per token");
    check_error(llama_vocab([&](llm::io::gguf_writer& w) {
                    w.add_array("tokenizer.ggml.scores", good_scores);
                    w.add<std::int32_t>("tokenizer.ggml.token_type", 1);
                }),
                "must be an array of 6 integers");
}

TEST_CASE("gguf vocab: wrongly typed keys name the key and the offset") {
    llm::io::gguf_writer w;
    w.add("tokenizer.ggml.model", 7.0f);
    check_error(w.to_bytes(), "'tokenizer.ggml.model' must be string");
    check_error(llama_vocab([&](auto& w2) {
                    w2.add_array("tokenizer.ggml.scores", good_scores);
                    w2.add("tokenizer.ggml.add_space_prefix", 1.0f);
                }),
                "'tokenizer.ggml.add_space_prefix' must be bool");
}
