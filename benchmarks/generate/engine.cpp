// SPDX-License-Identifier: Apache-2.0
// The generation engine's decode: tokens/s of a batch of sequences stepping together, with the
// KV cache contiguous (every slot's context reserved) or paged (vLLM's blocks, 16 tokens each).
//
// Model: a random Llama of d_model 512, 4 layers, 8 query / 2 kv heads of 64, FFN 1408, vocab
// 4096 (13 MB fp32): small enough that the attention over the cache is a visible share of a
// step, which is where the two layouts differ (a paged cache is read in runs of one block).
// Each iteration: `slots` prompts of `prompt` tokens (different, so nothing is reused) are
// prefilled untimed, then 32 decode steps of every slot are timed; tokens/s counts the decoded
// tokens; two iterations per run (the untimed prefill dominates the wall time). Arguments:
// slots, prompt tokens, block size (0: contiguous).
// One thread, timed in its CPU time. Run contiguous and paged alternately:
// --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true.
#include <llm/generate/generate.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/sequential.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

constexpr llm::model::dims dims{.vocab = 4096, .d_model = 512, .n_layers = 4, .n_heads = 8, .n_kv_heads = 2, .d_ff = 1408, .max_seq = 4096};
constexpr std::size_t decode_steps = 32;

struct fixture {
    llm::model::llama<> m{dims};
    llm::model::llama<>::params<float> p = m.make_params<float>();
    fixture() { m.init(p, {.seed = 3}); }
};

const fixture& the_model() {
    static const fixture f;
    return f;
}

void BM_engine_decode(benchmark::State& state) {
    const auto& f = the_model();
    const auto slots = static_cast<std::size_t>(state.range(0));
    const auto prompt = static_cast<std::size_t>(state.range(1));
    const auto block_size = static_cast<std::size_t>(state.range(2));
    llm::parallel::sequential pool;  // one thread: its CPU time is the step's (neighbours on a shared machine do not count)
    for (auto _ : state) {
        state.PauseTiming();
        llm::generate::engine<llm::model::llama<>, float> eng(
            f.m, f.p, {.slots = slots, .context = prompt + decode_steps + 2, .reuse_prefix = false, .block_size = block_size});
        for (std::size_t s = 0; s < slots; ++s) {
            std::vector<std::int32_t> ids(prompt);
            for (std::size_t i = 0; i < prompt; ++i) ids[i] = static_cast<std::int32_t>((i * 7919 + s * 104729 + 3) % dims.vocab);
            eng.add(ids, {.max_tokens = decode_steps + 1}, llm::generate::make_sampler({}));
        }
        eng.step(pool);  // admits and prefills every prompt, samples the first tokens
        state.ResumeTiming();
        for (std::size_t t = 0; t < decode_steps; ++t) {
            benchmark::DoNotOptimize(eng.step(pool).size());
        }
    }
    state.counters["tokens/s"] =
        benchmark::Counter(static_cast<double>(slots * decode_steps), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_engine_decode)
    ->ArgNames({"slots", "prompt", "block"})
    ->Args({1, 512, 0})
    ->Args({1, 512, 16})
    ->Args({8, 512, 0})
    ->Args({8, 512, 16})
    ->Args({8, 1024, 0})
    ->Args({8, 1024, 16})
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond);
