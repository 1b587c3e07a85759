// SPDX-License-Identifier: Apache-2.0
// Mixtral (attention with a KV cache, the MoE FFN) and Mamba (a recurrent state per slot, no KV
// cache) through open_hf and the engine: greedy tokens equal transformers' (the goldens of
// tests/golden/generate/make_golden_mixtral_mamba.py) token for token, alone and in slots of
// different prompt lengths joining and leaving, prefill chunked or token by token; Mamba's
// decoder step_tokens against its step, its slot reset, and its bad input.
#include "common.hpp"

#include <llm/generate/generate.hpp>
#include <llm/model/mamba_family.hpp>
#include <llm/moe/mixtral.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using tokens = std::vector<std::int32_t>;

// The transformers checkpoints of the moe and ssm tests.
std::string dir_of(const std::string& family) { return family == "mixtral" ? "tests/golden/moe/mixtral" : "tests/golden/ssm/mamba_lm"; }

template <class Engine>
std::map<std::size_t, tokens> drain(Engine& eng, auto&& exec) {
    std::map<std::size_t, tokens> out;
    while (!eng.idle()) {
        for (const auto& e : eng.step(exec)) out[e.request].push_back(e.token);
    }
    return out;
}

}  // namespace

TEST_CASE("engine: Mixtral and Mamba greedy tokens equal transformers' token for token, alone and in slots of different prompt lengths") {
    for (const std::string family : {"mixtral", "mamba"}) {
        CAPTURE(family);
        const auto cases = gen_test::goldens(family);
        int opened = 0;
        llm::generate::open_hf(dir_of(family), [&](const auto& m, const auto& p, const auto& cfg) {
            using M = std::remove_cvref_t<decltype(m)>;
            using E = llm::generate::engine<M, float>;
            const bool mamba = family == "mamba";
            CHECK(cfg.family == (mamba ? llm::model::family::mamba : llm::model::family::mixtral));
            CHECK(std::is_same_v<M, llm::model::mamba<>> == mamba);
            CHECK(std::is_same_v<M, llm::moe::mixtral<>> == !mamba);
            CHECK(M::recurrent == mamba);       // Mamba's state is its layers' own, not a KV cache
            CHECK(E::reuses_prefix == !mamba);  // so no prefix reuse for it
            llm::parallel::thread_pool pool(2);
            // prefill token by token (0), in chunks of 3 (across the prompt of 11), in one chunk
            for (const std::size_t chunk : {0u, 3u, 256u}) {
                CAPTURE(chunk);
                for (const auto& c : cases) {
                    E eng(m, p, {.slots = 1, .context = 32, .prefill_chunk = chunk});
                    eng.add(c.prompt, {.max_tokens = c.greedy.size()}, llm::generate::make_sampler({}));
                    CHECK(drain(eng, llm::parallel::sequential{})[0] == c.greedy);
                }
                // prompts of 1, 4 and 11 tokens in two slots: two run together, the third joins the
                // slot the first leaves (a used slot: its KV cache or recurrent state reset)
                E two(m, p, {.slots = 2, .context = 32, .prefill_chunk = chunk});
                for (const auto& c : cases) two.add(c.prompt, {.max_tokens = c.greedy.size()}, llm::generate::make_sampler({}));
                const auto out2 = drain(two, pool);
                for (std::size_t i = 0; i < cases.size(); ++i) CHECK(out2.at(i) == cases[i].greedy);
                // three slots, the longest prompt first and the others joining two steps later
                E three(m, p, {.slots = 3, .context = 32, .prefill_chunk = chunk});
                three.add(cases[2].prompt, {.max_tokens = cases[2].greedy.size()}, llm::generate::make_sampler({}));
                std::map<std::size_t, tokens> out3;
                for (int s = 0; !three.idle(); ++s) {
                    if (s == 2) {
                        three.add(cases[0].prompt, {.max_tokens = cases[0].greedy.size()}, llm::generate::make_sampler({}));
                        three.add(cases[1].prompt, {.max_tokens = cases[1].greedy.size()}, llm::generate::make_sampler({}));
                    }
                    for (const auto& e : three.step(pool)) out3[e.request].push_back(e.token);
                }
                CHECK(out3.at(0) == cases[2].greedy);
                CHECK(out3.at(1) == cases[0].greedy);
                CHECK(out3.at(2) == cases[1].greedy);
            }
            ++opened;
            return 0;
        });
        CHECK(opened == 1);
    }
}

TEST_CASE("engine: Mamba reuses no prefix (its state after a prefix is not in a longer sequence's); the tokens are those of each prompt alone") {
    llm::generate::open_hf(dir_of("mamba"), [&](const auto& m, const auto& p, const auto&) {
        using M = std::remove_cvref_t<decltype(m)>;
        const tokens a = {5, 6, 7, 8, 9, 10, 11, 12}, b = {5, 6, 7, 8, 9, 10, 40, 41, 42};
        auto alone = [&](const tokens& prompt) {
            llm::generate::engine<M, float> eng(m, p, {.slots = 1, .context = 32});
            eng.add(prompt, {.max_tokens = 10}, llm::generate::make_sampler({}));
            return drain(eng, llm::parallel::sequential{}).at(0);
        };
        llm::generate::engine<M, float> eng(m, p, {.slots = 2, .context = 32, .reuse_prefix = true});
        eng.add(a, {.max_tokens = 10}, llm::generate::make_sampler({}));
        std::map<std::size_t, tokens> out;
        for (int s = 0; s < 9; ++s) for (const auto& e : eng.step(llm::parallel::sequential{})) out[e.request].push_back(e.token);
        eng.add(b, {.max_tokens = 10}, llm::generate::make_sampler({}));  // shares 6 tokens with a, which is in the cache
        for (auto& [k, v] : drain(eng, llm::parallel::sequential{})) out[k].insert(out[k].end(), v.begin(), v.end());
        CHECK(eng.reused_tokens() == 0);
        CHECK(out.at(0) == alone(a));
        CHECK(out.at(1) == alone(b));
        return 0;
    });
}

// The decoder's recurrent step_tokens runs each token through the same per-row layer steps as
// step, so the layer states after it are the steps' bit for bit; the logits go through the final
// norm and head as [T, vocab] rows instead of T single rows, which changes only the summation
// order of the head's dot products of d_model = 32 terms: |error| <= 32 eps sum |w h| (eps =
// 2^-24), below 1e-5 for these logits (|logit| < 10, sum |w h| < 100): tolerance 1e-5.
TEST_CASE("decoder (Mamba): step_tokens equals T steps (states bit for bit); reset restarts a sequence; bad input is llm::error") {
    const auto cfg = llm::model::from_hf_config(dir_of("mamba") + "/config.json");
    const llm::model::mamba<> m(cfg.dims);
    auto p = m.make_params<float>();
    llm::model::load_safetensors(p, dir_of("mamba") + "/model.safetensors");
    const std::size_t vocab = cfg.dims.vocab;
    const tokens ids = {5, 6, 7, 8, 9, 10, 11, 12, 13, 2, 33};
    const std::size_t T = ids.size();
    llm::workspace ws;
    llm::parallel::sequential seq;

    auto one = m.make_state(1, 64);
    llm::tensor<float, llm::dims<2>> step_logits(T, vocab), row(1, vocab);
    for (std::size_t t = 0; t < T; ++t) {
        m.step(row.view(), one, llm::model::token_ids(ids.data() + t, 1), p, ws, seq);
        std::copy_n(row.data(), vocab, step_logits.data() + t * vocab);
    }
    CHECK(one.length(0) == T);

    auto two = m.make_state(2, 64);  // sequence 1 takes the tokens, sequence 0 stays fresh
    llm::tensor<float, llm::dims<2>> tok_logits(T, vocab);
    m.step_tokens(tok_logits.view(), two, 1, llm::model::token_ids(ids.data(), T), p, ws, seq);
    CHECK(two.length(1) == T);
    CHECK(two.length(0) == 0);
    double worst = 0.0;
    for (std::size_t i = 0; i < T * vocab; ++i) worst = std::max(worst, std::abs(double(tok_logits.data()[i]) - step_logits.data()[i]));
    CHECK(worst < 1e-5);
    const auto& a = std::get<0>(one.layers);
    const auto& b = std::get<0>(two.layers);
    REQUIRE(a.size() == cfg.dims.n_layers);
    REQUIRE(b.size() == 2 * cfg.dims.n_layers);
    for (std::size_t l = 0; l < cfg.dims.n_layers; ++l) {
        CHECK(std::memcmp(a[l].mixer.conv.data(), b[l * 2 + 1].mixer.conv.data(), a[l].mixer.conv.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(a[l].mixer.ssm.data(), b[l * 2 + 1].mixer.ssm.data(), a[l].mixer.ssm.size() * sizeof(float)) == 0);
    }

    // reset: sequence 1 starts again and gives the first step's logits bit for bit
    two.reset(1);
    CHECK(two.length(1) == 0);
    llm::tensor<float, llm::dims<2>> first(1, vocab);
    m.step_tokens(first.view(), two, 1, llm::model::token_ids(ids.data(), 1), p, ws, seq);
    auto fresh = m.make_state(1, 64);
    m.step(row.view(), fresh, llm::model::token_ids(ids.data(), 1), p, ws, seq);
    CHECK(std::memcmp(first.data(), row.data(), vocab * sizeof(float)) == 0);

    // bad input: a clear llm::error, the state unchanged
    const std::size_t before = two.length(1);
    CHECK_THROWS_WITH_AS(m.step_tokens(first.view(), two, 2, llm::model::token_ids(ids.data(), 1), p, ws, seq),
                         doctest::Contains("sequence 2 of a state of 2 sequences"), llm::error);
    CHECK_THROWS_WITH_AS(m.step(row.view(), two, llm::model::token_ids(ids.data(), 1), p, ws, seq), doctest::Contains("1 tokens for a state of 2"),
                         llm::error);
    CHECK_THROWS_WITH_AS(m.step_tokens(tok_logits.view(), two, 1, llm::model::token_ids(ids.data(), 2), p, ws, seq),
                         doctest::Contains("logits has 11 rows for 2 tokens"), llm::error);
    CHECK_THROWS_AS(two.reset(2), llm::error);
    CHECK(two.length(1) == before);
    CHECK(two.length(0) == 0);
}
