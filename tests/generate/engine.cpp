// SPDX-License-Identifier: Apache-2.0
// The generation engine on the tiny transformers checkpoints: greedy tokens equal transformers'
// generate(do_sample=False) (tests/golden/generate/), alone and batched with other sequences of
// different lengths, joining and leaving (continuous batching), with prefix reuse; seeded
// sampling independent of batch and threads; streaming text and stop strings; bad input.
#include "common.hpp"

#include <llm/generate/generate.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"

namespace {

using tokens = std::vector<std::int32_t>;

// Runs every request to the end; returns each request's generated tokens.
template <class Engine>
std::map<std::size_t, tokens> drain(Engine& eng, auto&& exec) {
    std::map<std::size_t, tokens> out;
    while (!eng.idle()) {
        for (const auto& e : eng.step(exec)) out[e.request].push_back(e.token);
    }
    return out;
}

llm::generate::engine_options opts(const llm::model::hf_config& cfg, std::size_t slots, std::size_t context = 32, std::size_t chunk = 256) {
    return {.slots = slots, .context = context, .learned_positions = cfg.family == llm::model::family::gpt2, .prefill_chunk = chunk};
}

}  // namespace

TEST_CASE("engine: greedy tokens equal transformers' generate(do_sample=False) for every family, one at a time and batched") {
    for (const std::string family : {"llama", "mistral", "qwen2", "gpt2"}) {
        CAPTURE(family);
        const auto cases = gen_test::goldens(family);
        llm::generate::open_hf(gen_test::model_dir(family), [&](const auto& m, const auto& p, const auto& cfg) {
            using M = std::remove_cvref_t<decltype(m)>;
            for (const auto& c : cases) {
                llm::generate::engine<M, float> eng(m, p, opts(cfg, 1));
                eng.add(c.prompt, {.max_tokens = c.greedy.size()}, llm::generate::make_sampler({}));
                CHECK(drain(eng, llm::parallel::sequential{})[0] == c.greedy);
            }
            // three prompts of lengths 1, 4, 11 in two slots: they run together, the third joins
            // when a slot frees (GPT-2's learned positions: only into an empty batch)
            llm::parallel::thread_pool pool(2);
            llm::generate::engine<M, float> eng(m, p, opts(cfg, 2));
            for (const auto& c : cases) eng.add(c.prompt, {.max_tokens = c.greedy.size()}, llm::generate::make_sampler({}));
            const auto out = drain(eng, pool);
            for (std::size_t i = 0; i < cases.size(); ++i) CHECK(out.at(i) == cases[i].greedy);
            return 0;
        });
    }
}

// Chunked prefill (the model's step_tokens): prompts of 11 tokens in chunks of 3 (Mistral's
// sliding window is 4: chunks cross it), of 7, or in one chunk, alone and two slots batched,
// give transformers' greedy tokens as token-by-token prefill (chunk 0) does; with chunks the
// engine runs fewer model steps.
TEST_CASE("engine: chunked prefill through the multi-token step gives the goldens' greedy tokens in fewer steps") {
    for (const std::string family : {"llama", "mistral", "qwen2", "gpt2"}) {
        CAPTURE(family);
        const auto cases = gen_test::goldens(family);
        llm::generate::open_hf(gen_test::model_dir(family), [&](const auto& m, const auto& p, const auto& cfg) {
            using M = std::remove_cvref_t<decltype(m)>;
            llm::parallel::thread_pool pool(2);
            std::size_t steps_by_chunk[4] = {};
            const std::size_t chunks[4] = {0, 3, 7, 256};
            for (std::size_t k = 0; k < 4; ++k) {
                CAPTURE(chunks[k]);
                for (const auto& c : cases) {
                    llm::generate::engine<M, float> eng(m, p, opts(cfg, 1, 32, chunks[k]));
                    eng.add(c.prompt, {.max_tokens = c.greedy.size()}, llm::generate::make_sampler({}));
                    CHECK(drain(eng, llm::parallel::sequential{})[0] == c.greedy);
                    steps_by_chunk[k] += eng.steps();
                }
                llm::generate::engine<M, float> eng(m, p, opts(cfg, 2, 32, chunks[k]));
                for (const auto& c : cases) eng.add(c.prompt, {.max_tokens = c.greedy.size()}, llm::generate::make_sampler({}));
                const auto out = drain(eng, pool);
                for (std::size_t i = 0; i < cases.size(); ++i) CHECK(out.at(i) == cases[i].greedy);
            }
            // prompts of 1, 4 and 11 tokens. Chunk 0: 0 + 3 + 10 steps of single prompt tokens,
            // then one step per generated token. With chunks a prompt's last chunk of 2 tokens or
            // more samples its first token (one joint step fewer): chunk 256, 0 + 1 + 1 chunks and
            // 2 joint steps fewer; chunk 3, 4 = 3 + 1 (the last token alone in the joint step)
            // and 11 = 3 + 3 + 3 + 2, so 0 + 1 + 4 chunks and 1 joint step fewer; chunk 7,
            // 0 + 1 + 2 chunks and 2 joint steps fewer.
            CHECK(steps_by_chunk[0] == steps_by_chunk[3] + 13);
            CHECK(steps_by_chunk[1] == steps_by_chunk[3] + 4);
            CHECK(steps_by_chunk[2] == steps_by_chunk[3] + 1);
            return 0;
        });
    }
}

TEST_CASE("engine: requests join and leave between steps; max_tokens and stop tokens end them") {
    const auto cases = gen_test::goldens("llama");
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& m, const auto& p, const auto& cfg) {
        using M = std::remove_cvref_t<decltype(m)>;
        llm::generate::engine<M, float> eng(m, p, opts(cfg, 3));
        eng.add(cases[2].prompt, {.max_tokens = 16}, llm::generate::make_sampler({}));
        std::map<std::size_t, tokens> out;
        std::vector<llm::generate::finish_reason> why(3);
        int step = 0;
        while (!eng.idle()) {
            if (step == 3) eng.add(cases[1].prompt, {.max_tokens = 5}, llm::generate::make_sampler({}));
            // the stop token: the 7th greedy token of case 0 (its first occurrence there)
            if (step == 6) eng.add(cases[0].prompt, {.max_tokens = 16, .stop_tokens = {cases[0].greedy[6]}}, llm::generate::make_sampler({}));
            for (const auto& e : eng.step(llm::parallel::sequential{})) {
                out[e.request].push_back(e.token);
                if (e.finished != llm::generate::finish_reason::none) why[e.request] = e.finished;
            }
            CHECK(eng.running() <= 3);
            ++step;
        }
        CHECK(out[0] == cases[2].greedy);
        CHECK(out[1] == tokens(cases[1].greedy.begin(), cases[1].greedy.begin() + 5));
        CHECK(out[2] == tokens(cases[0].greedy.begin(), cases[0].greedy.begin() + 7));
        CHECK(why[0] == llm::generate::finish_reason::max_tokens);
        CHECK(why[2] == llm::generate::finish_reason::stop_token);
        // a full context ends a request
        llm::generate::engine<M, float> small(m, p, opts(cfg, 1, 6));
        small.add(cases[1].prompt, {.max_tokens = 16}, llm::generate::make_sampler({}));
        std::vector<llm::generate::event> ev;
        while (!small.idle()) for (const auto& e : small.step(llm::parallel::sequential{})) ev.push_back(e);
        REQUIRE(ev.size() == 2);  // 4 prompt tokens + 2 generated fill 6 slots
        CHECK(ev.back().finished == llm::generate::finish_reason::context);
        return 0;
    });
}

TEST_CASE("engine: a prompt sharing a prefix with a running sequence reuses its keys and values, same tokens") {
    llm::generate::open_hf(gen_test::model_dir("qwen2"), [&](const auto& m, const auto& p, const auto& cfg) {
        using M = std::remove_cvref_t<decltype(m)>;
        const tokens a = {5, 6, 7, 8, 9, 10, 11, 12}, b = {5, 6, 7, 8, 9, 10, 40, 41, 42};
        auto run = [&](bool reuse) {
            auto o = opts(cfg, 2);
            o.reuse_prefix = reuse;
            llm::generate::engine<M, float> eng(m, p, o);
            eng.add(a, {.max_tokens = 10}, llm::generate::make_sampler({}));
            std::map<std::size_t, tokens> out;
            for (int s = 0; s < 9; ++s) for (const auto& e : eng.step(llm::parallel::sequential{})) out[e.request].push_back(e.token);
            eng.add(b, {.max_tokens = 10}, llm::generate::make_sampler({}));
            for (auto& [k, v] : drain(eng, llm::parallel::sequential{})) out[k].insert(out[k].end(), v.begin(), v.end());
            return std::pair(out, eng.reused_tokens());
        };
        const auto [with, reused] = run(true);
        const auto [without, none] = run(false);
        CHECK(reused == 6);
        CHECK(none == 0);
        CHECK(with == without);
        CHECK(with.at(1).size() == 10);
        return 0;
    });
}

TEST_CASE("engine: seeded sampling gives the same tokens on any thread count and batch composition") {
    llm::generate::open_hf(gen_test::model_dir("mistral"), [&](const auto& m, const auto& p, const auto& cfg) {
        using M = std::remove_cvref_t<decltype(m)>;
        const llm::generate::sampler_options so{.greedy = false, .temp = 1.5f, .top_k = 20, .top_p = 0.95f, .repeat_penalty = 1.1f};
        const tokens prompt = {3, 17, 9, 40};
        llm::generate::engine<M, float> alone(m, p, opts(cfg, 1));
        alone.add(prompt, {.max_tokens = 12, .seed = 99}, llm::generate::make_sampler(so));
        const auto ref = drain(alone, llm::parallel::sequential{}).at(0);
        llm::parallel::thread_pool pool(2);
        llm::generate::engine<M, float> batch(m, p, opts(cfg, 3));
        batch.add(tokens{1, 2}, {.max_tokens = 12, .seed = 1}, llm::generate::make_sampler(so));
        batch.add(prompt, {.max_tokens = 12, .seed = 99}, llm::generate::make_sampler(so));
        batch.add(prompt, {.max_tokens = 12, .seed = 5}, llm::generate::make_sampler(so));
        const auto out = drain(batch, pool);
        CHECK(out.at(1) == ref);
        CHECK(out.at(2) != ref);  // another seed: 12 draws from a spread distribution coincide with negligible chance
        return 0;
    });
}

namespace {
// A user's processor outside llm:: that forces a script of tokens (to drive the text tests).
struct script {
    std::vector<std::int32_t> ids;
    void process(std::span<float> logits, const llm::generate::sample_context& ctx) const {
        const std::size_t i = ctx.tokens.size() - ctx.prompt_length;
        for (std::size_t t = 0; t < logits.size(); ++t) logits[t] = static_cast<std::int32_t>(t) == ids[i % ids.size()] ? 1.0f : -1.0f;
    }
};
}  // namespace

TEST_CASE("engine: streamed text never splits a UTF-8 character; stop strings end the text before them") {
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& m, const auto& p, const auto& cfg) {
        using M = std::remove_cvref_t<decltype(m)>;
        // 1, 2, 3: the three bytes of U+20AC; 4: "S", 5: "TO", 6: "P", 7: "x"
        auto detok = [](std::int32_t t) -> std::string {
            switch (t) {
                case 1: return "\xe2";
                case 2: return "\x82";
                case 3: return "\xac";
                case 4: return "S";
                case 5: return "TO";
                case 6: return "P";
                default: return "x";
            }
        };
        using S = llm::generate::sampler<script>;
        {
            llm::generate::engine<M, float, S> eng(m, p, opts(cfg, 1));
            eng.set_detokenizer(detok);
            eng.add(tokens{1}, {.max_tokens = 7}, S(true, script{{7, 1, 2, 3, 4, 5, 7}}));
            std::vector<std::string> pieces;
            while (!eng.idle()) for (const auto& e : eng.step(llm::parallel::sequential{})) pieces.emplace_back(e.text);
            CHECK(pieces == std::vector<std::string>{"x", "", "", "\xe2\x82\xac", "S", "TO", "x"});
        }
        {
            llm::generate::engine<M, float, S> eng(m, p, opts(cfg, 1));
            eng.set_detokenizer(detok);
            eng.add(tokens{1}, {.max_tokens = 16, .stop_strings = {"STOP"}}, S(true, script{{7, 1, 2, 3, 4, 5, 6, 7}}));
            std::string text;
            std::vector<std::string> pieces;
            llm::generate::finish_reason why{};
            while (!eng.idle()) {
                for (const auto& e : eng.step(llm::parallel::sequential{})) {
                    pieces.emplace_back(e.text);
                    why = e.finished;
                }
            }
            // "S" and "STO" are held back (they may start the stop string) until "STOP" completes
            CHECK(pieces == std::vector<std::string>{"x", "", "", "\xe2\x82\xac", "", "", ""});
            CHECK(why == llm::generate::finish_reason::stop_string);
        }
        return 0;
    });
}

TEST_CASE("engine: bad input is a clear llm::error") {
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& m, const auto& p, const auto& cfg) {
        using M = std::remove_cvref_t<decltype(m)>;
        llm::generate::engine<M, float> eng(m, p, opts(cfg, 1, 8));
        CHECK_THROWS_WITH_AS(eng.add(tokens(8, 1), {}, llm::generate::make_sampler({})),
                             doctest::Contains("the prompt of 8 tokens is longer than the context"), llm::error);
        CHECK_THROWS_WITH_AS(eng.add(tokens{1, 64}, {}, llm::generate::make_sampler({})),
                             doctest::Contains("prompt token 1 is 64, outside the vocabulary of 64"), llm::error);
        CHECK_THROWS_WITH_AS(eng.add(tokens{1, -1}, {}, llm::generate::make_sampler({})), doctest::Contains("outside the vocabulary"),
                             llm::error);
        CHECK_THROWS_AS(eng.add(tokens{}, {}, llm::generate::make_sampler({})), llm::error);
        CHECK(eng.idle());
        return 0;
    });
    llm_test::temp_dir d;
    CHECK_THROWS_WITH_AS(llm::generate::open_hf(d.path.string(), [](const auto&...) { return 0; }), doctest::Contains("config.json"),
                         llm::error);
    // Llama's config with GPT-2's weights: a missing tensor, named
    std::filesystem::copy_file(gen_test::model_dir("llama") + "/config.json", d / "config.json");
    CHECK_THROWS_WITH_AS(llm::generate::open_hf(d.path.string(), [](const auto&...) { return 0; }), doctest::Contains("neither"), llm::error);
    std::filesystem::copy_file(gen_test::model_dir("gpt2") + "/model.safetensors", d / "model.safetensors");
    CHECK_THROWS_WITH_AS(llm::generate::open_hf(d.path.string(), [](const auto&...) { return 0; }),
                         doctest::Contains("model.embed_tokens.weight"), llm::error);
    // a config whose FFN width differs from the weights': a wrong shape, named
    std::filesystem::remove(d / "model.safetensors");
    std::filesystem::copy_file(gen_test::model_dir("llama") + "/model.safetensors", d / "model.safetensors");
    {
        std::ifstream in(gen_test::model_dir("llama") + "/config.json");
        std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        json.replace(json.find("\"intermediate_size\": 48"), 23, "\"intermediate_size\": 40");
        std::ofstream(d / "config.json", std::ios::trunc) << json;
    }
    CHECK_THROWS_WITH_AS(llm::generate::open_hf(d.path.string(), [](const auto&...) { return 0; }), doctest::Contains("shape"), llm::error);
    std::filesystem::remove(d / "model.safetensors");
    // a truncated weight file
    {
        std::ifstream in(gen_test::model_dir("llama") + "/model.safetensors", std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::ofstream(d / "model.safetensors", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    }
    CHECK_THROWS_AS(llm::generate::open_hf(d.path.string(), [](const auto&...) { return 0; }), llm::error);
}
