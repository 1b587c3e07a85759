// SPDX-License-Identifier: Apache-2.0
// The engine over a paged KV cache (engine_options::block_size, kv_blocks): the same tokens and
// log-probs as the contiguous cache bit for bit, with sequences of different lengths joining and
// leaving and prefix reuse on or off (full blocks of a shared prefix shared, vLLM's prefix
// caching); memory in blocks follows the tokens in flight; a small budget makes requests wait
// (never preempted: the goldens' tokens); Mamba ignores the layout; bad options are llm::error.
#include "common.hpp"

#include <llm/generate/generate.hpp>
#include <llm/model/mamba_family.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using tokens = std::vector<std::int32_t>;

// The engine's paged KV cache, or nullptr (a contiguous cache; a recurrent state has none: open_hf
// instantiates every family's branch).
template <class Engine>
const llm::attention::paged_kv_cache<float>* paged_of(const Engine& eng) {
    if constexpr (requires { eng.state().kv.paged(); }) {
        return eng.state().kv.paged();
    } else {
        return nullptr;
    }
}

// Blocks the running sequences would hold without sharing: ceil(length / block_size) each.
template <class Engine>
std::size_t blocks_by_length(const Engine& eng, std::size_t slots) {
    const auto* pc = paged_of(eng);
    std::size_t n = 0;
    for (std::size_t s = 0; s < slots; ++s) n += (pc->length(s) + pc->block_size() - 1) / pc->block_size();
    return n;
}

// What a run produced: per step, every event's (request, token, log-prob bits, finish reason).
using trace = std::vector<std::tuple<std::size_t, std::size_t, std::int32_t, std::uint32_t, int>>;

struct outcome {
    trace events;
    std::size_t reused = 0;
    std::size_t steps = 0;
    std::size_t shared_seen = 0;  // most blocks saved by sharing at once (paged)
};

}  // namespace

// Requests of 11, 8, 9 (sharing 6 tokens with the 8), 1, 4 and 12 (sharing 11 with the first)
// tokens in three slots: the first two start together, the others join at steps 3 and 6 and
// wait for slots, so sequences leave and join throughout. The contiguous cache and paged caches
// of blocks of 1, 3, 4 and 16 tokens (a prefix shared in full blocks and copied rows, or copied
// whole when shorter than a block) must give the same events bit for bit (log-probs compared as
// bits), with prompts prefilled token by token, in chunks of 3 (across blocks) or whole, and
// the goldens' tokens for the golden prompts (b joins at step 3 sharing 6 tokens with a, which
// a chunked prefill has fed by then: full blocks shared when blocks are <= 4 tokens). Paged: the
// pool holds exactly the running sequences' blocks (fewer when a prefix is shared) and is whole
// again at the end.
TEST_CASE("engine (paged): tokens and log-probs equal the contiguous cache's bit for bit, requests joining and leaving, prefix reuse on and off") {
    for (const std::string family : {"llama", "mistral", "qwen2", "gpt2"}) {
        CAPTURE(family);
        const auto cases = gen_test::goldens(family);
        llm::generate::open_hf(gen_test::model_dir(family), [&](const auto& m, const auto& p, const auto& cfg) {
            using M = std::remove_cvref_t<decltype(m)>;
            const bool gpt2 = cfg.family == llm::model::family::gpt2;
            const tokens a = {5, 6, 7, 8, 9, 10, 11, 12}, b = {5, 6, 7, 8, 9, 10, 40, 41, 42};
            tokens c = cases[2].prompt;
            c.push_back(7);
            llm::parallel::thread_pool pool(2);
            auto run = [&](std::size_t block_size, bool reuse, std::size_t chunk) {
                llm::generate::engine<M, float> eng(m, p, {.slots = 3, .context = 32, .learned_positions = gpt2, .reuse_prefix = reuse,
                                                           .logprobs = true, .prefill_chunk = chunk, .block_size = block_size});
                outcome o;
                eng.add(cases[2].prompt, {.max_tokens = 12}, llm::generate::make_sampler({}));
                eng.add(a, {.max_tokens = 10}, llm::generate::make_sampler({}));
                for (std::size_t s = 0; !eng.idle() || s < 7; ++s) {
                    if (s == 3) {
                        eng.add(b, {.max_tokens = 10}, llm::generate::make_sampler({}));
                        eng.add(cases[0].prompt, {.max_tokens = 16}, llm::generate::make_sampler({}));
                    }
                    if (s == 6) {
                        eng.add(cases[1].prompt, {.max_tokens = 8}, llm::generate::make_sampler({}));
                        eng.add(c, {.max_tokens = 6}, llm::generate::make_sampler({}));
                    }
                    for (const auto& e : eng.step(pool)) {
                        o.events.emplace_back(s, e.request, e.token, std::bit_cast<std::uint32_t>(e.logprob), static_cast<int>(e.finished));
                    }
                    if (const auto* pc = paged_of(eng)) {
                        const std::size_t held = pc->blocks() - pc->free_blocks(), by_length = blocks_by_length(eng, 3);
                        CHECK(held <= by_length);
                        if (!reuse) CHECK(held == by_length);
                        o.shared_seen = std::max(o.shared_seen, by_length - held);
                    }
                }
                if (const auto* pc = paged_of(eng)) CHECK(pc->free_blocks() == pc->blocks());
                o.reused = eng.reused_tokens();
                o.steps = eng.steps();
                return o;
            };
            for (const bool reuse : {false, true}) {
                CAPTURE(reuse);
                for (const std::size_t chunk : {0u, 3u, 256u}) {
                    CAPTURE(chunk);
                    const outcome want = run(0, reuse, chunk);
                    std::map<std::size_t, tokens> out;
                    for (const auto& [s, r, t, lp, f] : want.events) out[r].push_back(t);
                    CHECK(out.at(0) == tokens(cases[2].greedy.begin(), cases[2].greedy.begin() + 12));
                    CHECK(out.at(3) == cases[0].greedy);
                    CHECK(out.at(4) == tokens(cases[1].greedy.begin(), cases[1].greedy.begin() + 8));
                    CHECK(out.size() == 6);
                    CHECK((want.reused > 0) == (reuse && !gpt2));
                    for (const std::size_t bs : {1u, 3u, 4u, 16u}) {
                        CAPTURE(bs);
                        const outcome got = run(bs, reuse, chunk);
                        CHECK(got.events == want.events);
                        CHECK(got.reused == want.reused);
                        CHECK(got.steps == want.steps);
                        // a prefix of 6 (b on a) or 11 tokens (c on the first) shares full blocks
                        if (reuse && !gpt2 && bs <= 4 && chunk != 0) CHECK(got.shared_seen > 0);
                        if (!reuse || bs == 16) CHECK(got.shared_seen == 0);
                    }
                }
            }
            return 0;
        });
    }
}

// A budget of 8 blocks of 4 tokens (32 tokens) for slots that could hold 4 x 32: the golden
// prompts of 1, 4 and 11 tokens with 16 new tokens each may hold 16, 19 and 26 tokens (4, 5 and
// 7 blocks), so no two fit at once: each waits for the one before to leave, and every request
// still gets the goldens' tokens. With 9 blocks the first two run together. The blocks held never
// exceed the tokens in flight's (ceil(length / 4) per sequence) nor the budget.
TEST_CASE("engine (paged): a small block budget makes requests wait (not fail, not preempted); memory follows the tokens in flight") {
    const auto cases = gen_test::goldens("llama");
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& m, const auto& p, const auto&) {
        using M = std::remove_cvref_t<decltype(m)>;
        for (const std::size_t budget : {8u, 9u}) {
            CAPTURE(budget);
            llm::generate::engine<M, float> eng(m, p, {.slots = 4, .context = 32, .block_size = 4, .kv_blocks = budget});
            const auto* pc = paged_of(eng);
            REQUIRE(pc != nullptr);
            CHECK(pc->blocks() * pc->block_size() == budget * 4);  // the whole KV memory, vs 4 x 32 tokens contiguous
            for (const auto& c : cases) eng.add(c.prompt, {.max_tokens = 16}, llm::generate::make_sampler({}));
            std::map<std::size_t, tokens> out;
            std::size_t most = 0, most_blocks = 0;
            while (!eng.idle()) {
                for (const auto& e : eng.step(llm::parallel::sequential{})) out[e.request].push_back(e.token);
                most = std::max(most, eng.running());
                const std::size_t held = pc->blocks() - pc->free_blocks();
                CHECK(held == blocks_by_length(eng, 4));
                most_blocks = std::max(most_blocks, held);
            }
            CHECK(most == (budget == 8 ? 1u : 2u));
            CHECK(most_blocks <= budget);
            for (std::size_t i = 0; i < cases.size(); ++i) CHECK(out.at(i) == cases[i].greedy);
            CHECK(pc->free_blocks() == budget);
        }
        return 0;
    });
}

TEST_CASE("engine (paged): Mamba (a recurrent state, no KV cache) ignores the layout; the same tokens") {
    const auto cases = gen_test::goldens("mamba");
    llm::generate::open_hf("tests/golden/ssm/mamba_lm", [&](const auto& m, const auto& p, const auto&) {
        using M = std::remove_cvref_t<decltype(m)>;
        CHECK(M::recurrent);
        CHECK(!llm::generate::engine<M, float>::reuses_prefix);
        llm::generate::engine<M, float> eng(m, p, {.slots = 2, .context = 32, .block_size = 4, .kv_blocks = 3});
        for (const auto& c : cases) eng.add(c.prompt, {.max_tokens = c.greedy.size()}, llm::generate::make_sampler({}));
        std::map<std::size_t, tokens> out;
        while (!eng.idle()) for (const auto& e : eng.step(llm::parallel::sequential{})) out[e.request].push_back(e.token);
        for (std::size_t i = 0; i < cases.size(); ++i) CHECK(out.at(i) == cases[i].greedy);
        return 0;
    });
}

TEST_CASE("engine (paged): bad options and requests larger than the pool are a clear llm::error") {
    const auto cases = gen_test::goldens("llama");
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& m, const auto& p, const auto&) {
        using M = std::remove_cvref_t<decltype(m)>;
        using E = llm::generate::engine<M, float>;
        CHECK_THROWS_WITH_AS(E(m, p, {.slots = 2, .context = 32, .kv_blocks = 8}), doctest::Contains("kv_blocks = 8 needs a block_size"),
                             llm::error);
        CHECK_THROWS_WITH_AS(E(m, p, {.slots = 0, .context = 32}), doctest::Contains("slots = 0 and context = 32 must be > 0"), llm::error);
        E eng(m, p, {.slots = 2, .context = 32, .block_size = 4, .kv_blocks = 6});
        // 11 prompt tokens + 16 - 1 generated: 26 tokens, 7 blocks of 4 > 6
        CHECK_THROWS_WITH_AS(eng.add(cases[2].prompt, {.max_tokens = 16}, llm::generate::make_sampler({})),
                             doctest::Contains("may hold 26 tokens (prompt 11 + max_tokens 16 - 1, at most context 32 - 1): 7 blocks of 4 "
                                               "tokens, but the paged KV cache has 6 blocks"),
                             llm::error);
        CHECK(eng.idle());
        eng.add(cases[2].prompt, {.max_tokens = 13}, llm::generate::make_sampler({}));  // 23 tokens: 6 blocks
        std::size_t n = 0;
        while (!eng.idle()) n += eng.step(llm::parallel::sequential{}).size();
        CHECK(n == 13);
        return 0;
    });
}
