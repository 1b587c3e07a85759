// SPDX-License-Identifier: Apache-2.0
// The decoder's multi-token step (step_tokens: T new tokens of one sequence at once) against T
// single-token steps, for every decoder family: Llama (GQA), Mistral (sliding window shorter
// than T, soft-cap), Qwen2 (q/k/v biases), QK-norm, GPT-2 (learned positions, tied head),
// Mixtral (the MoE FFN's step, moe_infer, takes the T rows as they are).
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr llm::model::dims tiny{.vocab = 37, .d_model = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .d_ff = 24, .max_seq = 32};

std::vector<std::int32_t> make_ids(std::size_t n, std::size_t vocab, std::uint32_t seed) {
    std::vector<std::int32_t> ids(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& id : ids) {
        x = x * 1664525u + 1013904223u;
        id = static_cast<std::int32_t>((x >> 8) % vocab);
    }
    return ids;
}

// Sequence 1 of a two-sequence cache: a 3-token prefix by single steps, then `chunks` (token
// counts) through step_tokens with every row's logits, against the same tokens stepped one at a
// time (sequence 0 of the reference state stays empty; in the tested state sequence 0 holds 2
// tokens that must stay untouched).
// Tolerance: both paths compute the same sums; the GEMM over T rows blocks its reduction (at
// most max(d_model, d_ff) = 24 terms) differently from the one-row path, fp32 reassociation
// ~24 * 2^-24 ~ 1.5e-6 relative per product, through two layers and the head (weights std 0.1,
// logits O(1)): bound 2e-5 of the largest logit (3.2e-7 seen). A wrong position, a missing causal or window
// mask, or a key of the wrong token gives differences O(0.1) of it.
// layout: the tested state's KV cache (contiguous, or paged: keys and values gathered run by run
// for the tiled attention of 16 tokens or more).
template <class M>
void check_chunks(M m, std::vector<std::size_t> chunks, llm::parallel::policy auto&& exec, llm::model::kv_layout layout = {}) {
    const auto d = m.config();
    auto p = m.template make_params<float>();
    m.init(p, {.seed = 23, .std = 0.1f});
    std::size_t total = 3;
    for (auto c : chunks) total += c;
    const auto ids = make_ids(total, d.vocab, 5);
    llm::workspace ws;
    // reference: one token per step
    auto ref = m.make_state(1, total);
    llm::tensor<float, llm::dims<2>> row(1, d.vocab);
    std::vector<float> want(total * d.vocab);
    for (std::size_t t = 0; t < total; ++t) {
        ref.position = t;
        m.step(row.view(), ref, llm::model::token_ids(&ids[t], 1), p, ws, llm::parallel::sequential{});
        std::copy_n(row.data(), d.vocab, want.data() + t * d.vocab);
    }
    // tested: sequence 0 holds two other tokens, sequence 1 gets the prefix by single steps
    // (through step_tokens of one token) and the chunks
    auto st = m.make_state(2, total, layout);
    const std::int32_t other[2] = {1, 2};
    m.step_tokens(llm::model::activations(row.data(), llm::dims<2>(0, d.vocab)), st, 0, llm::model::token_ids(other, 2), p, ws, exec);
    REQUIRE(st.kv.length(0) == 2);
    for (std::size_t t = 0; t < 3; ++t) {
        m.step_tokens(row.view(), st, 1, llm::model::token_ids(&ids[t], 1), p, ws, exec);
    }
    float max_diff = 0, max_ref = 0;
    std::size_t at = 3;
    for (auto c : chunks) {
        llm::tensor<float, llm::dims<2>> lg(c, d.vocab);
        m.step_tokens(lg.view(), st, 1, llm::model::token_ids(&ids[at], c), p, ws, exec);
        CHECK(st.kv.length(1) == at + c);
        CHECK(st.position == at + c);
        for (std::size_t t = 0; t < c; ++t) {
            for (std::size_t v = 0; v < d.vocab; ++v) {
                const float w = want[(at + t) * d.vocab + v];
                max_diff = std::max(max_diff, std::abs(lg(t, v) - w));
                max_ref = std::max(max_ref, std::abs(w));
            }
        }
        at += c;
    }
    // the whole sequence in one step: last-row-only logits (the head's GEMM over one row) and
    // every row's, both against the single steps
    auto st2 = m.make_state(1, total, layout);
    llm::tensor<float, llm::dims<2>> last(1, d.vocab), all(total, d.vocab);
    m.step_tokens(last.view(), st2, 0, llm::model::token_ids(ids.data(), total), p, ws, exec);
    st2.kv.reset(0);
    m.step_tokens(all.view(), st2, 0, llm::model::token_ids(ids.data(), total), p, ws, exec);
    for (std::size_t t = 0; t < total; ++t) {
        for (std::size_t v = 0; v < d.vocab; ++v) {
            max_diff = std::max(max_diff, std::abs(all(t, v) - want[t * d.vocab + v]));
        }
    }
    for (std::size_t v = 0; v < d.vocab; ++v) {
        max_diff = std::max(max_diff, std::abs(last(0, v) - want[(total - 1) * d.vocab + v]));
    }
    CHECK(st.kv.length(0) == 2);
    CHECK(max_ref > 0.1f);
    CHECK(max_diff <= 2e-5f * max_ref);
}

}  // namespace

TEST_CASE("decoder step_tokens: T tokens at once give the logits of T single-token steps, every family, chunks of 1..9") {
    llm::parallel::thread_pool pool(2);
    SUBCASE("llama (GQA)") {
        check_chunks(llm::model::llama<>(tiny), {4, 1, 9}, llm::parallel::sequential{});
        check_chunks(llm::model::llama<>(tiny), {7, 5}, pool);
    }
    SUBCASE("mistral: sliding window 3 shorter than the chunk, soft-cap") {
        auto d = tiny;
        d.sliding_window = 3;
        d.attn_softcap = 4.0f;
        check_chunks(llm::model::mistral<>(d), {8, 2, 6}, llm::parallel::sequential{});
        check_chunks(llm::model::mistral<>(d), {9}, pool);
    }
    SUBCASE("qwen2 (q/k/v biases) and QK-norm") {
        auto d = tiny;
        d.qkv_bias = true;
        check_chunks(llm::model::qwen2<>(d), {5, 6}, llm::parallel::sequential{});
        auto q = tiny;
        q.qk_norm = true;
        check_chunks(llm::model::llama<>(q), {6, 3}, pool);
    }
    SUBCASE("mixtral (MoE FFN, 4 experts, top-2)") {
        auto d = tiny;
        d.n_experts = 4;
        d.experts_per_token = 2;
        check_chunks(llm::moe::mixtral<>(d), {6, 1, 4}, llm::parallel::sequential{});
        check_chunks(llm::moe::mixtral<>(d), {8}, pool);
    }
    SUBCASE("gpt2 (learned positions, tied head)") {
        auto g = tiny;
        g.n_kv_heads = 0;
        g.tie_embeddings = true;
        check_chunks(llm::model::gpt2<>(g), {5, 1, 7}, llm::parallel::sequential{});
        check_chunks(llm::model::gpt2<>(g), {10}, pool);
    }
}

TEST_CASE("decoder step_tokens: bad input is a clear llm::error, the cache unchanged") {
    llm::model::llama<> m(tiny);
    auto p = m.make_params<float>();
    m.init(p, {.seed = 1});
    auto st = m.make_state(2, 8);
    llm::workspace ws;
    const std::int32_t ids[3] = {1, 2, 3};
    llm::tensor<float, llm::dims<2>> two(2, tiny.vocab);
    CHECK_THROWS_AS(m.step_tokens(two.view(), st, 0, llm::model::token_ids(ids, 3), p, ws, llm::parallel::sequential{}), llm::error);
    CHECK_THROWS_AS(m.step_tokens(two.view(), st, 2, llm::model::token_ids(ids, 2), p, ws, llm::parallel::sequential{}), llm::error);
    CHECK_THROWS_AS(m.step_tokens(two.view(), st, 0, llm::model::token_ids(ids, 0), p, ws, llm::parallel::sequential{}), llm::error);
    CHECK(st.kv.length(0) == 0);
    CHECK(st.kv.length(1) == 0);
}

// Chunks of 16 tokens or more attend through the tiled kernel (flash_forward with the
// bottom-right aligned mask), after a prefix of single steps and of earlier chunks: the cache's
// own memory (contiguous) or keys and values gathered from blocks of 5 (paged, runs that end
// inside a chunk), full causal and a sliding window shorter than the chunk.
TEST_CASE("decoder step_tokens: chunks of 16 tokens or more (tiled attention) give the logits of single steps, contiguous and paged caches") {
    llm::parallel::thread_pool pool(2);
    for (const llm::model::kv_layout layout : {llm::model::kv_layout{}, llm::model::kv_layout{.block_size = 5}}) {
        CAPTURE(layout.block_size);
        check_chunks(llm::model::llama<>(tiny), {16, 3, 21}, llm::parallel::sequential{}, layout);
        check_chunks(llm::model::llama<>(tiny), {2, 17}, pool, layout);
        auto d = tiny;
        d.sliding_window = 6;
        check_chunks(llm::model::mistral<>(d), {18, 20}, pool, layout);
        auto g = tiny;
        g.n_kv_heads = 0;
        g.tie_embeddings = true;
        check_chunks(llm::model::gpt2<>(g), {16, 9}, llm::parallel::sequential{}, layout);
    }
}
