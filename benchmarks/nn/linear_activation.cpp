// SPDX-License-Identifier: Apache-2.0
// The activation fused into the linear layer's GEMM store (linear_forward with an activation form) against linear_forward followed by a separate activation pass over y, at a GPT-2 MLP shape and a Llama-7B prefill shape, 1 thread.
#include <llm/core/workspace.hpp>
#include <llm/nn/activations.hpp>
#include <llm/nn/linear.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include <time.h>

namespace {

template <class T>
llm::tensor<T, llm::dims<2>> random_matrix(std::size_t r, std::size_t c) {
    llm::tensor<T, llm::dims<2>> t(r, c);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = T(dist(rng));
    }
    return t;
}

/// One linear layer with an activation: x [tokens, in], W [out, in], b [out], y [tokens, out].
template <class TY>
struct layer {
    std::size_t tokens, in, out;
    llm::tensor<float, llm::dims<2>> x, w, b2;
    llm::tensor<TY, llm::dims<2>> y;
    llm::workspace ws;  // kept across calls, as a model's step loop keeps it
    layer(std::size_t t, std::size_t i, std::size_t o)
        : tokens(t), in(i), out(o), x(random_matrix<float>(t, i)), w(random_matrix<float>(o, i)),
          b2(random_matrix<float>(1, o)), y(t, o) {}
    auto bias() const { return llm::select(b2, 0, 0); }
    /// y = act(x W^T + b) in the GEMM's store.
    template <class Form, class Exec>
    void fused(Exec& exec) {
        llm::nn::linear_forward(y, x, w, bias(), Form{}, ws, exec);
    }
    /// y = x W^T + b, then y = act(y) in a second pass (in place, y's element type).
    template <class Form, class Exec>
    void unfused(Exec& exec) {
        llm::nn::linear_forward(y, x, w, bias(), ws, exec);
        llm::nn::activation_forward<Form>(y, y, exec);
    }
    double flops() const { return 2.0 * static_cast<double>(tokens) * static_cast<double>(in) * static_cast<double>(out); }
    /// The bytes a call must move at least: x, W, b read once, y written once; the separate
    /// pass reads and writes y once more.
    double bytes(bool separate_pass) const {
        const double y_bytes = static_cast<double>(tokens * out * sizeof(TY));
        return static_cast<double>((tokens * in + out * in + out) * sizeof(float)) + y_bytes * (separate_pass ? 3.0 : 1.0);
    }
};

void set_counters(benchmark::State& state, double flops, double bytes) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bytes"] = benchmark::Counter(bytes);
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes) * state.iterations());
}

/// Args: tokens, in, out. One thread (inline on the caller). Separate: fused (false) or a
/// second pass (true). Rates per CPU-second.
template <class Form, class TY, bool Separate>
void bm_linear_act(benchmark::State& state) {
    layer<TY> l(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)),
                static_cast<std::size_t>(state.range(2)));
    llm::parallel::thread_pool pool(1);
    for (auto _ : state) {
        if constexpr (Separate) {
            l.template unfused<Form>(pool);
        } else {
            l.template fused<Form>(pool);
        }
        benchmark::DoNotOptimize(l.y.data());
        benchmark::ClobberMemory();
    }
    set_counters(state, l.flops(), l.bytes(Separate));
}

/// CPU time of the calling thread, seconds (a 1-thread pool runs inline on the caller).
double thread_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Three calls alternated in one loop (the order rotating), each timed in thread CPU time (a neighbour on a shared
/// core stretches wall time, not this): the fused call, the separate pass, and the plain
/// linear_forward without the activation (the floor both build on). Counters: fused_ms,
/// separate_ms, linear_ms, separate_over_fused (> 1: the fused call is faster), and the
/// activation's own cost in each form, fused_act_ms = fused - linear and separate_act_ms =
/// separate - linear (per call), and median_ratio, the median over iterations of each
/// iteration's separate / fused (a slow moment of the machine spoils one pair, not the sum).
template <class Form, class TY>
void bm_linear_act_alternated(benchmark::State& state) {
    layer<TY> l(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)),
                static_cast<std::size_t>(state.range(2)));
    llm::parallel::thread_pool pool(1);
    double seconds[3] = {0, 0, 0};  // fused, separate, linear
    std::vector<double> ratios;      // separate / fused, per iteration
    std::size_t iteration = 0;
    for (auto _ : state) {
        double t[3] = {0, 0, 0};
        // The order rotates every iteration, so no call always runs first (after the others
        // warmed or flushed the caches).
        for (std::size_t c = 0; c < 3; ++c) {
            const std::size_t which = (iteration + c) % 3;
            const double t0 = thread_seconds();
            if (which == 0) {
                l.template fused<Form>(pool);
            } else if (which == 1) {
                l.template unfused<Form>(pool);
            } else {
                llm::nn::linear_forward(l.y, l.x, l.w, l.bias(), l.ws, pool);
            }
            benchmark::ClobberMemory();
            t[which] = thread_seconds() - t0;
            seconds[which] += t[which];
        }
        ratios.push_back(t[1] / t[0]);
        ++iteration;
    }
    std::sort(ratios.begin(), ratios.end());
    const double fused_s = seconds[0], separate_s = seconds[1], linear_s = seconds[2];
    const auto n = static_cast<double>(state.iterations());
    state.counters["fused_ms"] = benchmark::Counter(1e3 * fused_s / n);
    state.counters["separate_ms"] = benchmark::Counter(1e3 * separate_s / n);
    state.counters["linear_ms"] = benchmark::Counter(1e3 * linear_s / n);
    state.counters["fused_act_ms"] = benchmark::Counter(1e3 * (fused_s - linear_s) / n);
    state.counters["separate_act_ms"] = benchmark::Counter(1e3 * (separate_s - linear_s) / n);
    state.counters["separate_over_fused"] = benchmark::Counter(separate_s / fused_s);
    state.counters["median_ratio"] = benchmark::Counter(ratios[ratios.size() / 2]);
    state.counters["fused_GFLOP/s"] = benchmark::Counter(1e-9 * l.flops() * n / fused_s);
    state.counters["separate_GFLOP/s"] = benchmark::Counter(1e-9 * l.flops() * n / separate_s);
}

void gpt2(benchmark::internal::Benchmark* b) {
    b->ArgNames({"tokens", "in", "out"});
    b->Args({512, 768, 3072});  // GPT-2 small c_fc over a 512-token prefill
    b->Unit(benchmark::kMillisecond);  // rates per CPU-second of the (only) thread
}

void llama(benchmark::internal::Benchmark* b) {
    b->ArgNames({"tokens", "in", "out"});
    b->Args({512, 4096, 11008});  // Llama-7B gate_proj over a 512-token prefill
    b->Args({512, 64, 11008});    // the same y with k = 64: the activation's share is large
    b->Unit(benchmark::kMillisecond);  // rates per CPU-second of the (only) thread
}

using llm::bf16;
using llm::nn::gelu_tanh;
using llm::nn::relu;
using llm::nn::silu;

BENCHMARK(bm_linear_act<gelu_tanh, float, false>)->Name("linear_act/gelu_tanh_fp32/fused")->Apply(gpt2);
BENCHMARK(bm_linear_act<gelu_tanh, float, true>)->Name("linear_act/gelu_tanh_fp32/separate")->Apply(gpt2);
BENCHMARK(bm_linear_act_alternated<gelu_tanh, float>)->Name("linear_act/gelu_tanh_fp32/alternated")->Apply(gpt2);
BENCHMARK(bm_linear_act<gelu_tanh, bf16, false>)->Name("linear_act/gelu_tanh_bf16y/fused")->Apply(gpt2);
BENCHMARK(bm_linear_act<gelu_tanh, bf16, true>)->Name("linear_act/gelu_tanh_bf16y/separate")->Apply(gpt2);
BENCHMARK(bm_linear_act_alternated<gelu_tanh, bf16>)->Name("linear_act/gelu_tanh_bf16y/alternated")->Apply(gpt2);
BENCHMARK(bm_linear_act<silu, float, false>)->Name("linear_act/silu_fp32/fused")->Apply(llama);
BENCHMARK(bm_linear_act<silu, float, true>)->Name("linear_act/silu_fp32/separate")->Apply(llama);
BENCHMARK(bm_linear_act_alternated<silu, float>)->Name("linear_act/silu_fp32/alternated")->Apply(llama);
// relu costs almost nothing per element: what is left of fused - linear is the epilogue itself.
BENCHMARK(bm_linear_act_alternated<relu, float>)->Name("linear_act/relu_fp32/alternated")->Apply(llama);

}  // namespace
