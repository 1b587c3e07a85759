// SPDX-License-Identifier: Apache-2.0
// One whole training step (forward, cross-entropy, backward, clip_grad_norm, AdamW) of a GPT-2
// through llm::train::trainer, the step the `train` tool takes. Counters: tokens/s, step_s (wall
// seconds per step), cpu_s (process CPU seconds per step) and the training GFLOP/s by llm.c's
// count: 6 N + 12 L H Q T FLOPs per token, N every parameter (embeddings included), L layers,
// H Q = d_model, T the sequence length (attention scores and values at full T, not halved for
// causality; the PaLM appendix B count llm.c uses). peak_frac is that over the fp32 FMA ceiling
// x threads, the ceiling measured in the same process by BM_fma_peak/1 (registered first; the
// ceilings benchmark's method: independent FMA chains, 12 per thread, through the SIMD facade's
// widest vectors), shown as peak_ref; cpu_peak_frac is GFLOP per CPU-second over the ceiling per
// CPU-second, the stable figure on a shared machine (a descheduled thread costs wall time, not
// CPU time).
//
// Sizes: a small GPT-2 (4 layers, d_model 256, vocab 4096) at B=4, T=64 by default, so the
// ctest smoke run stays light; LLM_BENCH_TRAIN_FULL=1 adds the GPT-2 124M shape (12 layers,
// d_model 768, 12 heads, vocab 50257, 1024 positions) at B=4, T=64, about 2 GB for parameters,
// gradients and AdamW state: the comparison with llm.c's train_gpt2.c and PyTorch
// (benchmarks/train/torch_step.py).
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/train/optimizer.hpp>
#include <llm/train/schedule.hpp>
#include <llm/train/trainer.hpp>

#include <llm/parallel/parallel_for.hpp>
#include <llm/simd/simd.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace {

double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The fp32 FMA ceiling of one core, wall clock and per CPU-second; until BM_fma_peak/1 has run
// (filtered out), 0 and the fractions are not reported.
double fma_peak_per_core = 0;
double fma_peak_per_cpu_s = 0;

void BM_fma_peak(benchmark::State& state) {
    using S = llm::simd::default_backend;
    const auto threads = static_cast<std::size_t>(state.range(0));
    constexpr std::size_t chains = 12;
    constexpr std::size_t iters = 1 << 18;
    llm::parallel::thread_pool pool(threads);
    std::vector<float> sink(threads * 16);
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    for (auto _ : state) {
        llm::parallel::parallel_for(pool, threads, 1, [&](std::size_t b, std::size_t e) {
            for (std::size_t t = b; t < e; ++t) {
                typename S::f32 acc[chains];
                for (std::size_t c = 0; c < chains; ++c) acc[c] = S::set1(1.0f + 0.0625f * static_cast<float>(c + t));  // distinct chains
                const auto m = S::set1(0.999999f), a = S::set1(1e-7f);
                for (std::size_t i = 0; i < iters; ++i)
                    for (auto& x : acc) x = S::fma(x, m, a);
                auto sum = acc[0];
                for (std::size_t c = 1; c < chains; ++c) sum = S::add(sum, acc[c]);
                float total = S::reduce_add(sum);
                benchmark::DoNotOptimize(total);
                sink[t * 16] = total;
            }
        });
        benchmark::DoNotOptimize(sink.data());
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = process_cpu_seconds() - c0;
    const double gflop = 2.0 * chains * iters * S::width * static_cast<double>(threads) * 1e-9 * static_cast<double>(state.iterations());
    state.counters["GFLOP/s"] = gflop / wall;
    state.counters["GFLOP/cpu_s"] = gflop / cpu;
    if (threads == 1 && state.iterations() > 0) {
        fma_peak_per_core = gflop / wall;
        fma_peak_per_cpu_s = gflop / cpu;
    }
}
BENCHMARK(BM_fma_peak)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->MinTime(0.05);

void shapes(benchmark::internal::Benchmark* b) {
    b->Args({0, 2});
    if (const char* full = std::getenv("LLM_BENCH_TRAIN_FULL"); full && *full && *full != '0') b->Args({1, 2});
    b->ArgNames({"gpt2_124m", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

void BM_train_step_gpt2(benchmark::State& state) {
    const bool full = state.range(0) != 0;
    const llm::model::dims d = full ? llm::model::dims{.vocab = 50257, .d_model = 768, .n_layers = 12, .n_heads = 12, .max_seq = 1024, .tie_embeddings = true}
                                    : llm::model::dims{.vocab = 4096, .d_model = 256, .n_layers = 4, .n_heads = 4, .max_seq = 256, .tie_embeddings = true};
    const llm::model::batch_shape shape{.batch = 4, .seq = 64};
    llm::model::gpt2<> model(d);
    auto params = model.make_params<float>();
    model.init(params, {.seed = 1});
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    llm::train::adamw_optimizer<> opt({.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.0});
    llm::train::trainer tr(model, params, opt, llm::train::constant_lr{1e-4}, {.clip = 1.0, .guard = false});
    llm::train::lm_batch<llm::model::gpt2<>> lm(model, shape);
    for (std::size_t i = 0; i < shape.tokens(); ++i) {  // llm.c's random-token batch shape
        lm.ids()[i] = static_cast<std::int32_t>((i * 7919 + 13) % d.vocab);
        lm.targets()[i] = static_cast<std::int32_t>((i * 7919 + 7932) % d.vocab);
    }
    double loss = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    for (auto _ : state) {
        const auto r = tr.step([&](std::size_t, float dl) { return lm.forward_backward(tr.grads(), dl, model, params, pool); }, pool);
        loss = r.loss;
        benchmark::DoNotOptimize(loss);
    }
    const double n = static_cast<double>(state.iterations());
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / n;
    const double cpu = (process_cpu_seconds() - c0) / n;
    const double tokens = static_cast<double>(shape.tokens());
    const double gflop = tokens * static_cast<double>(llm::model::gpt2<>::training_flops_per_token(d, shape.seq)) * 1e-9;  // per step
    const double threads = static_cast<double>(state.range(1));
    state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP_per_step"] = gflop;
    state.counters["step_s"] = wall;
    state.counters["cpu_s"] = cpu;
    state.counters["GFLOP/cpu_s"] = gflop / cpu;
    if (fma_peak_per_core > 0) {
        state.counters["peak_ref"] = fma_peak_per_core * threads;
        state.counters["peak_frac"] = gflop / wall / (fma_peak_per_core * threads);
        state.counters["cpu_peak_frac"] = gflop / cpu / fma_peak_per_cpu_s;
    }
    state.counters["params_M"] = static_cast<double>(llm::model::gpt2<>::parameter_count(d)) * 1e-6;
}
BENCHMARK(BM_train_step_gpt2)->Apply(shapes);

}  // namespace
