// SPDX-License-Identifier: Apache-2.0
// Speculative decoding on the tiny checkpoints: greedy output is the target's own greedy output
// (transformers' tokens), with a different draft model and with the target as its own draft.
#include "common.hpp"

#include <llm/generate/generate.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#include <type_traits>

TEST_CASE("speculative: greedy tokens equal the target's greedy tokens for any draft and k; acceptance rate reported") {
    const auto cases = gen_test::goldens("llama");
    // open_hf instantiates its callback for every family it opens; speculative decoding takes
    // KV-cache models only (these two are Llama-shaped), so the recurrent family's is compiled away.
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& tm, const auto& tp, const auto&) {
        constexpr bool target_kv = llm::generate::kv_cached_state<typename std::remove_cvref_t<decltype(tm)>::state>;
        REQUIRE(target_kv);
        if constexpr (target_kv) {
        llm::generate::open_hf(gen_test::model_dir("qwen2"), [&](const auto& dm, const auto& dp, const auto&) {
            constexpr bool draft_kv = llm::generate::kv_cached_state<typename std::remove_cvref_t<decltype(dm)>::state>;
            REQUIRE(draft_kv);
            if constexpr (draft_kv) {
            for (const std::size_t k : {1u, 3u, 5u}) {
                for (const auto& c : cases) {
                    llm::generate::speculative_stats st;
                    const auto out = llm::generate::speculative_generate(tm, tp, dm, dp, c.prompt, c.greedy.size(), k, {.greedy = true}, st,
                                                                         llm::parallel::sequential{});
                    CHECK(out == c.greedy);
                    CHECK(st.proposed > 0);
                    CHECK(st.acceptance_rate() < 1.0);  // an unrelated draft misses some
                }
            }
            }
            return 0;
        });
        // the target as its own draft: every proposal accepted, k + 1 tokens per round
        llm::generate::speculative_stats st;
        const auto out = llm::generate::speculative_generate(tm, tp, tm, tp, cases[1].prompt, 16, 3, {.greedy = true}, st,
                                                             llm::parallel::sequential{});
        CHECK(out == cases[1].greedy);
        CHECK(st.acceptance_rate() == 1.0);
        CHECK(st.rounds == 4);
        // sampling with the target as draft: every proposal accepted too (p == q)
        llm::generate::speculative_stats ss;
        const auto sampled = llm::generate::speculative_generate(tm, tp, tm, tp, cases[1].prompt, 16, 3,
                                                                 {.greedy = false, .temp = 1.0f, .seed = 4}, ss, llm::parallel::sequential{});
        CHECK(sampled.size() == 16);
        CHECK(ss.acceptance_rate() > 0.999);
        }
        return 0;
    });
}
