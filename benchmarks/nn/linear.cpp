// SPDX-License-Identifier: Apache-2.0
// GFLOP/s of the linear layer (y = x W^T + b on llm::gemm) against the bare gemm of the same shape: the price of the fused bias, bf16 weights and the backward.
#include <llm/core/workspace.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/nn/linear.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <random>

namespace {

template <class T>
llm::tensor<T, llm::dims<2>> random_matrix(std::size_t r, std::size_t c) {
    llm::tensor<T, llm::dims<2>> t(r, c);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = T(dist(rng));
    }
    return t;
}

/// GFLOP/s (wall time) of `flops` per iteration.
void set_flops(benchmark::State& state, double flops) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

enum class variant { gemm_only, linear_bias, linear_bias_bf16, backward_bias };

/// Args: tokens, in, out, threads. Forward: 2 * tokens * in * out flops (the bias adds
/// tokens * out, counted out); backward: 4 * tokens * in * out (dx and dweight).
template <variant V>
void bm_linear(benchmark::State& state) {
    const auto tokens = static_cast<std::size_t>(state.range(0));
    const auto in = static_cast<std::size_t>(state.range(1));
    const auto out = static_cast<std::size_t>(state.range(2));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(3)));
    const auto x = random_matrix<float>(tokens, in);
    const auto w = random_matrix<float>(out, in);
    const auto wh = random_matrix<llm::bf16>(out, in);
    const auto b = random_matrix<float>(1, out);
    const auto bias = llm::select(b, 0, 0);
    llm::tensor<float, llm::dims<2>> y(tokens, out), dx(tokens, in), dw(out, in);
    llm::tensor<llm::bf16, llm::dims<2>> yh(tokens, out);
    llm::tensor<float, llm::dims<1>> db(out);
    const auto dy = random_matrix<float>(tokens, out);
    llm::workspace ws;  // kept across calls, as a model's step loop keeps it
    for (auto _ : state) {
        if constexpr (V == variant::gemm_only) {
            llm::gemm(y, x, llm::transpose(w, 0, 1), 1.0f, 0.0f, ws, pool);
        } else if constexpr (V == variant::linear_bias) {
            llm::nn::linear_forward(y, x, w, bias, ws, pool);
        } else if constexpr (V == variant::linear_bias_bf16) {
            llm::nn::linear_forward(yh, x, wh, bias, ws, pool);
        } else {
            llm::nn::linear_backward(dx, dw, db, dy, x, w, ws, pool);
        }
        benchmark::DoNotOptimize(y.data());
        benchmark::DoNotOptimize(yh.data());
        benchmark::DoNotOptimize(dx.data());
        benchmark::ClobberMemory();
    }
    const double flops = (V == variant::backward_bias ? 4.0 : 2.0) * static_cast<double>(tokens) *
                         static_cast<double>(in) * static_cast<double>(out);
    set_flops(state, flops);
}

void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"tokens", "in", "out", "threads"});
    for (int threads : {1, 2}) {
        b->Args({512, 1024, 1024, threads});  // a prefill chunk through a 1024-wide projection
        b->Args({1, 1024, 1024, threads});    // one decode token (GEMV)
    }
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(bm_linear<variant::gemm_only>)->Name("linear/gemm_only_fp32")->Apply(shapes);
BENCHMARK(bm_linear<variant::linear_bias>)->Name("linear/forward_bias_fp32")->Apply(shapes);
BENCHMARK(bm_linear<variant::linear_bias_bf16>)->Name("linear/forward_bias_bf16w_bf16y")->Apply(shapes);
BENCHMARK(bm_linear<variant::backward_bias>)->Name("linear/backward_bias_fp32")->Apply(shapes);

}  // namespace
