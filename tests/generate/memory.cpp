// SPDX-License-Identifier: Apache-2.0
// A decode step of the engine with warmed workspaces allocates nothing: tests/support/
// counting_new.hpp replaces the global operator new for the whole test_generate executable.
#include "common.hpp"
#include "quant_model.hpp"

#include <llm/generate/generate.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../support/counting_new.hpp"

// The model's own decode step (RoPE tables made once in the attention layers) is measured alone and
// must allocate nothing; the engine must add nothing to it.
TEST_CASE("memory: a model decode step and an engine step (two sequences, sampling with top-k / top-p / penalties) allocate nothing") {
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& m, const auto& p, const auto&) {
        using M = std::remove_cvref_t<decltype(m)>;
        llm::generate::engine<M, float> eng(m, p, {.slots = 2, .context = 48, .top_logprobs = 3, .logprobs = true});
        const llm::generate::sampler_options so{.greedy = false, .temp = 0.9f, .top_k = 10, .top_p = 0.9f, .min_p = 0.01f,
                                                .typical_p = 0.99f, .repeat_penalty = 1.1f, .frequency_penalty = 0.1f};
        eng.add(std::vector<std::int32_t>{1, 2, 3}, {.max_tokens = 40, .seed = 3}, llm::generate::make_sampler(so));
        eng.add(std::vector<std::int32_t>{4, 5}, {.max_tokens = 40, .seed = 4}, llm::generate::make_sampler(so));
        for (int i = 0; i < 6; ++i) eng.step(llm::parallel::sequential{});  // warm: both sequences sample
        std::size_t events = 0;
        const auto r = llm_test::heap::watch([&] {
            for (int i = 0; i < 4; ++i) events += eng.step(llm::parallel::sequential{}).size();
        });
        auto st = m.make_state(2, 48);
        llm::tensor<float, llm::dims<2>> logits(2, m.config().vocab);
        llm::workspace ws;
        const std::int32_t ids[2] = {1, 2};
        for (int i = 0; i < 2; ++i) m.step(logits.view(), st, llm::model::token_ids(ids, 2), p, ws, llm::parallel::sequential{});
        const auto model_step = llm_test::heap::watch([&] {
            for (int i = 0; i < 4; ++i) m.step(logits.view(), st, llm::model::token_ids(ids, 2), p, ws, llm::parallel::sequential{});
        });
        CHECK(events == 8);
        CHECK(model_step.allocations == 0);
        CHECK(r.allocations == 0);
        return 0;
    });
}

// A paged engine's KV memory is its block budget, not slots x context: constructing an engine of
// 8 slots of 256 tokens holds the contiguous cache's 2 (K, V) x layers x 8 x 256 x kv_heads x
// head_dim floats; with blocks of 16 tokens and a budget of 32 blocks (512 tokens, a quarter)
// it holds a quarter of that. Everything else the two engines allocate is the same but the
// paged cache's block tables, free list and reference counts (under 2 KiB) and malloc's
// rounding of the four stores (under a page each): the peaks differ by the two caches' sizes
// within 64 KiB. A warmed paged step, with sequences taking new blocks during the watch (blocks
// of 2 tokens), allocates nothing.
TEST_CASE("memory: a paged engine holds its block budget, not slots x context; its warmed step allocates nothing") {
    llm::generate::open_hf(gen_test::model_dir("llama"), [&](const auto& m, const auto& p, const auto&) {
        using M = std::remove_cvref_t<decltype(m)>;
        if constexpr (M::recurrent) {
            FAIL("llama opened as a recurrent model");  // open_hf instantiates every family
            return 0;
        } else {
            const auto d = m.config();
            const auto kv_bytes = [&](std::size_t tokens) {
                return static_cast<std::int64_t>(2 * d.n_layers * tokens * d.kv_heads() * d.head_width() * sizeof(float));
            };
            const auto contiguous = llm_test::heap::watch([&] { llm::generate::engine<M, float> eng(m, p, {.slots = 8, .context = 256}); });
            const auto paged = llm_test::heap::watch(
                [&] { llm::generate::engine<M, float> eng(m, p, {.slots = 8, .context = 256, .block_size = 16, .kv_blocks = 32}); });
            CHECK(contiguous.peak_bytes >= kv_bytes(8 * 256));
            const std::int64_t saved = contiguous.peak_bytes - paged.peak_bytes, want = kv_bytes(8 * 256) - kv_bytes(32 * 16);
            CHECK(saved > want - 65536);
            CHECK(saved < want + 65536);

            llm::generate::engine<M, float> eng(m, p, {.slots = 2, .context = 48, .block_size = 2, .kv_blocks = 40});
            eng.add(std::vector<std::int32_t>{1, 2, 3}, {.max_tokens = 40}, llm::generate::make_sampler({}));
            eng.add(std::vector<std::int32_t>{4, 5}, {.max_tokens = 30}, llm::generate::make_sampler({}));
            for (int i = 0; i < 3; ++i) eng.step(llm::parallel::sequential{});
            const std::size_t free_before = eng.state().kv.paged()->free_blocks();
            std::size_t events = 0;
            const auto r = llm_test::heap::watch([&] {
                for (int i = 0; i < 6; ++i) events += eng.step(llm::parallel::sequential{}).size();
            });
            CHECK(events == 12);
            CHECK(eng.state().kv.paged()->free_blocks() == free_before - 6);  // 6 new tokens each, a block per 2
            CHECK(r.allocations == 0);
            return 0;
        }
    });
}

TEST_CASE("memory: a warmed sampler with every processor allocates nothing") {
    const llm::generate::sampler_options so{.greedy = false, .temp = 0.9f, .top_k = 10, .top_p = 0.9f, .min_p = 0.01f,
                                            .typical_p = 0.99f, .repeat_penalty = 1.1f, .frequency_penalty = 0.1f, .presence_penalty = 0.2f};
    auto s = llm::generate::make_sampler(so);
    std::vector<float> row(1000);
    const std::vector<std::int32_t> toks = {1, 2, 3, 3, 7};
    const llm::generate::sample_context ctx{toks, 2};
    llm::generate::rng r(1);
    std::vector<llm::generate::token_logprob> top;
    auto fill = [&](int k) { for (std::size_t i = 0; i < row.size(); ++i) row[i] = static_cast<float>((i * 37 + static_cast<std::size_t>(k)) % 101) / 10.0f; };
    fill(0);
    llm::generate::logprobs(row, s.sample(row, ctx, r), 5, top);
    const auto rep = llm_test::heap::watch([&] {
        for (int k = 1; k < 5; ++k) {
            fill(k);
            llm::generate::logprobs(row, s.sample(row, ctx, r), 5, top);
        }
    });
    CHECK(rep.allocations == 0);
}

// The decode step's RoPE goes through a table made once (nn::make_rope_table): the same rotation,
// bit for bit, as the per-call rope_params overload, for both pair layouts and llama3 scaling.
TEST_CASE("memory: nn::rope_forward with a rope_table equals the rope_params overload bit for bit") {
    llm::tensor<float, llm::dims<3>> x(3, 2, 8), y(3, 2, 8), z(3, 2, 8);
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i % 7) - 3.0f;
    std::int32_t pos[3] = {0, 5, 900};
    const llm::tensor_view<std::int32_t, llm::dims<1>> pv(pos, llm::dims<1>(3));
    const llm::nn::rope_params<llm::nn::rope_scaling::llama3> pr{.theta = 5e5, .scaling = {.factor = 8.0, .original_max_position = 16}};
    auto same = [&] {
        for (std::size_t i = 0; i < x.size(); ++i) {
            if (y.data()[i] != z.data()[i]) return false;
        }
        return true;
    };
    llm::nn::rope_forward<llm::nn::rope_interleaved>(y.view(), x.view(), pv, pr, llm::parallel::sequential{});
    const auto ti = llm::nn::make_rope_table<llm::nn::rope_interleaved>(8, pr);
    const auto r = llm_test::heap::watch([&] { llm::nn::rope_forward(z.view(), x.view(), pv, ti, llm::parallel::sequential{}); });
    CHECK(r.allocations == 0);
    CHECK(same());
    llm::nn::rope_forward(y.view(), x.view(), pv, pr, llm::parallel::sequential{});
    llm::nn::rope_forward(z.view(), x.view(), pv, llm::nn::make_rope_table(8, pr), llm::parallel::sequential{});
    CHECK(same());
    CHECK_THROWS_WITH_AS(llm::nn::rope_forward(z.view(), x.view(), pv, llm::nn::make_rope_table(4, pr), llm::parallel::sequential{}),
                         doctest::Contains("the rope table was made for 4"), llm::error);
}

// The quantized path (llm::quant::any_matrix weights: Q8_0 and Q4_K kernels, f16 dot rows): a
// warmed decode step allocates nothing either.
// Allocations of 4 decode steps (two sequences) of the GGUF model in `file`, after 2 warming ones.
std::size_t warmed_step_allocations(const std::string& file, const llm::generate::gguf_options& opt) {
    const auto f = llm::io::gguf_file::parse(file, "tiny.gguf");
    return llm::generate::open_gguf(f, "tiny.gguf", opt, [&](const auto& m, const auto& p, const auto&) {
        auto st = m.make_state(2, 48);
        llm::tensor<float, llm::dims<2>> logits(2, m.config().vocab);
        llm::workspace ws;
        const std::int32_t ids[2] = {1, 2};
        for (int i = 0; i < 2; ++i) m.step(logits.view(), st, llm::model::token_ids(ids, 2), p, ws, llm::parallel::sequential{});
        const auto r = llm_test::heap::watch([&] {
            for (int i = 0; i < 4; ++i) m.step(logits.view(), st, llm::model::token_ids(ids, 2), p, ws, llm::parallel::sequential{});
        });
        return static_cast<std::size_t>(r.allocations);
    });
}

TEST_CASE("memory: a warmed decode step with quantized GGUF weights (q8_0, q4_K, f16) allocates nothing") {
    for (const auto t : {llm::io::ggml_type::q8_0, llm::io::ggml_type::q4_k, llm::io::ggml_type::f16}) {
        CAPTURE(llm::io::ggml_type_name(t));
        CHECK(warmed_step_allocations(gen_test::tiny_quant_gguf(t), {}) == 0);
    }
}

TEST_CASE("memory: a warmed decode step of a Mixtral GGUF with quantized experts (Q4_0 repacked, Q8_0 row-major) allocates nothing") {
    for (const auto t : {llm::io::ggml_type::q4_0, llm::io::ggml_type::q8_0}) {
        CAPTURE(llm::io::ggml_type_name(t));
        CHECK(warmed_step_allocations(gen_test::tiny_mixtral_gguf(t), {.repack = t == llm::io::ggml_type::q4_0}) == 0);
    }
}
