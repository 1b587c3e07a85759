// SPDX-License-Identifier: Apache-2.0
// Memory throughput of one optimizer step over a GPT-2-sized parameter buffer: AdamW (fp32, and
// bf16 parameters with fp32 master weights), SGD with momentum, and the global gradient norm.
// An optimizer step is memory-bound: the GB/s counter is the figure to compare with the
// machine's memory bandwidth (BENCHMARKS.md's ceilings).
//
// Sizes: 16M parameters by default (256 MiB of fp32 AdamW state), so the ctest smoke run stays
// light on shared machines; set LLM_BENCH_TRAIN_FULL=1 to add GPT-2 124M's 124,439,808
// parameters (about 2 GiB for params, grads, m and v).
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/train/clip.hpp>
#include <llm/train/optimizer.hpp>

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>

namespace {

constexpr long gpt2_124m_params = 124'439'808;

void sizes(benchmark::internal::Benchmark* b) {
    for (const long threads : {1, 2}) {
        b->Args({16l << 20, threads});
        if (const char* full = std::getenv("LLM_BENCH_TRAIN_FULL"); full && *full && *full != '0')
            b->Args({gpt2_124m_params, threads});
    }
    b->ArgNames({"params", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

template <class T>
llm::tensor<T, llm::dims<1>> filled(std::size_t n, float scale) {
    llm::tensor<T, llm::dims<1>> t(llm::uninitialized, n);
    for (std::size_t i = 0; i < n; ++i) t.data()[i] = T(scale * std::sin(0.001f * static_cast<float>(i % 100003)));
    return t;
}

// Counters: GB/s of memory traffic (bytes read + written per step / time), parameters per
// second, and the bytes counted per parameter.
void counters(benchmark::State& state, double n, double bytes_per_param) {
    state.counters["GB/s"] = benchmark::Counter(n * bytes_per_param * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["Mparams/s"] = benchmark::Counter(n * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bytes/param"] = bytes_per_param;
}

// AdamW fp32: reads p, m, v, g and writes p, m, v: 28 bytes per parameter.
void BM_adamw_fp32(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    auto p = filled<float>(n, 1.0f), g = filled<float>(n, 0.01f);
    llm::tensor<float, llm::dims<1>> m(n), v(n);
    const llm::train::adamw_options o{.lr = 6e-4, .beta2 = 0.95, .weight_decay = 0.1};
    std::int64_t step = 0;
    for (auto _ : state) {
        llm::train::adamw(p, m, v, g, o, ++step, true, pool);
        benchmark::ClobberMemory();
    }
    counters(state, static_cast<double>(n), 28);
}
BENCHMARK(BM_adamw_fp32)->Apply(sizes);

// The baseline: the same AdamW update as a plain C++ loop (what a straightforward port of
// PyTorch's per-element formula compiles to under the same flags), one thread, same 28 bytes.
void BM_adamw_plain_loop(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    auto p = filled<float>(n, 1.0f), g = filled<float>(n, 0.01f);
    llm::tensor<float, llm::dims<1>> m(n), v(n);
    const double lr = 6e-4, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    std::int64_t step = 0;
    for (auto _ : state) {
        ++step;
        const float decay = static_cast<float>(1 - lr * wd), fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
        const float neg_step = static_cast<float>(-lr / (1 - std::pow(b1, static_cast<double>(step))));
        const float bc2s = static_cast<float>(std::sqrt(1 - std::pow(b2, static_cast<double>(step))));
        float* pp = p.data();
        float* mp = m.data();
        float* vp = v.data();
        const float* gp = g.data();
        for (std::size_t i = 0; i < n; ++i) {
            const float pi = pp[i] * decay;
            const float mi = mp[i] * fb1 + (1 - fb1) * gp[i];
            const float vi = vp[i] * fb2 + (1 - fb2) * gp[i] * gp[i];
            mp[i] = mi;
            vp[i] = vi;
            pp[i] = pi + neg_step * mi / (std::sqrt(vi) / bc2s + static_cast<float>(eps));
        }
        benchmark::ClobberMemory();
    }
    counters(state, static_cast<double>(n), 28);
}
BENCHMARK(BM_adamw_plain_loop)->Apply([](benchmark::internal::Benchmark* b) {
    b->Args({16l << 20, 1});
    if (const char* full = std::getenv("LLM_BENCH_TRAIN_FULL"); full && *full && *full != '0') b->Args({gpt2_124m_params, 1});
    b->ArgNames({"params", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
});

// AdamW with bf16 parameters and gradients, fp32 master weights: reads master, m, v (4 B each)
// and g (2 B), writes master, m, v and the bf16 copy: 28 bytes per parameter.
void BM_adamw_bf16_master(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    auto master = filled<float>(n, 1.0f);
    auto g = filled<llm::bf16>(n, 0.01f);
    llm::tensor<llm::bf16, llm::dims<1>> p(n);
    llm::tensor<float, llm::dims<1>> m(n), v(n);
    const llm::train::adamw_options o{.lr = 6e-4, .beta2 = 0.95, .weight_decay = 0.1};
    std::int64_t step = 0;
    for (auto _ : state) {
        llm::train::adamw_master(p, master, m, v, g, o, ++step, true, pool);
        benchmark::ClobberMemory();
    }
    counters(state, static_cast<double>(n), 28);
}
BENCHMARK(BM_adamw_bf16_master)->Apply(sizes);

// SGD with momentum (after the first step): reads p, buf, g, writes p, buf: 20 bytes per parameter.
void BM_sgd_momentum(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    auto p = filled<float>(n, 1.0f), g = filled<float>(n, 0.01f);
    llm::tensor<float, llm::dims<1>> buf(n);
    const llm::train::sgd_options o{.lr = 0.01, .momentum = 0.9};
    std::int64_t step = 1;
    for (auto _ : state) {
        llm::train::sgd(p, buf, g, o, ++step, pool);
        benchmark::ClobberMemory();
    }
    counters(state, static_cast<double>(n), 20);
}
BENCHMARK(BM_sgd_momentum)->Apply(sizes);

// The global gradient norm (the first half of clip_grad_norm): reads g, 4 bytes per parameter.
void BM_grad_norm(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    auto g = filled<float>(n, 0.01f);
    for (auto _ : state) {
        double norm = llm::train::grad_norm([&](auto&& f) { f("g", g); }, pool);
        benchmark::DoNotOptimize(norm);
    }
    counters(state, static_cast<double>(n), 4);
}
BENCHMARK(BM_grad_norm)->Apply(sizes);

}  // namespace
