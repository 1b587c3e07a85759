// SPDX-License-Identifier: Apache-2.0
// GB/s of the memory-bound NN primitives at Llama sizes (4096 rows x 4096), against a copy measured in the same run.
#include <llm/nn/nn.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>

namespace {

// Rows x width of every benchmark: a 4096-token batch of Llama-7B-width activations
// (64 MiB per fp32 tensor, far beyond L3, so every byte comes from memory).
constexpr std::size_t rows = 4096, width = 4096;

template <class T>
llm::tensor<T, llm::dims<2>> random_matrix(std::size_t r, std::size_t c) {
    llm::tensor<T, llm::dims<2>> t(r, c);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = T(dist(rng));
    }
    return t;
}

/// Sets GB/s from the bytes one call reads plus writes.
void set_bytes(benchmark::State& state, double bytes) {
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// The ceiling: y = x (one read and one write stream, like most primitives here) by
/// memcpy over row blocks, 1 or 2 threads.
void bm_copy(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto x = random_matrix<float>(rows, width);
    llm::tensor<float, llm::dims<2>> y(rows, width);
    for (auto _ : state) {
        llm::parallel::parallel_for(pool, rows, 64, [&](std::size_t r0, std::size_t r1) {
            std::memcpy(y.data() + r0 * width, x.data() + r0 * width, (r1 - r0) * width * sizeof(float));
        });
        benchmark::ClobberMemory();
    }
    set_bytes(state, 2.0 * rows * width * sizeof(float));
}

template <class T>
void bm_softmax(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto x = random_matrix<T>(rows, width);
    llm::tensor<T, llm::dims<2>> y(rows, width);
    for (auto _ : state) {
        llm::nn::softmax_forward(y, x, pool);
        benchmark::ClobberMemory();
    }
    set_bytes(state, 2.0 * rows * width * sizeof(T));
}

template <class T>
void bm_rmsnorm_forward(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto x = random_matrix<T>(rows, width);
    llm::tensor<T, llm::dims<2>> y(rows, width);
    llm::tensor<T, llm::dims<1>> w(width);
    llm::fill(w, T(1.0f));
    llm::tensor<float, llm::dims<1>> rstd(rows);
    for (auto _ : state) {
        llm::nn::rmsnorm_forward(y, rstd, x, w, 1e-5f, pool);
        benchmark::ClobberMemory();
    }
    set_bytes(state, 2.0 * rows * width * sizeof(T));
}

template <class T>
void bm_rmsnorm_backward(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto x = random_matrix<T>(rows, width);
    const auto dy = random_matrix<T>(rows, width);
    llm::tensor<T, llm::dims<2>> dx(rows, width);
    llm::tensor<T, llm::dims<1>> w(width);
    llm::fill(w, T(1.0f));
    llm::tensor<float, llm::dims<1>> rstd(rows), dw(width);
    llm::tensor<T, llm::dims<2>> y(rows, width);
    llm::nn::rmsnorm_forward(y, rstd, x, w, 1e-5f, pool);
    llm::zero_grad(dx, dw);
    for (auto _ : state) {
        llm::nn::rmsnorm_backward(dx, dw, rstd, dy, x, w, pool);  // accumulates: dx grows, the time does not
        benchmark::ClobberMemory();
    }
    set_bytes(state, 4.0 * rows * width * sizeof(T));  // reads x, dy and dx, writes dx
}

template <class T>
void bm_layernorm_forward(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto x = random_matrix<T>(rows, width);
    llm::tensor<T, llm::dims<2>> y(rows, width);
    llm::tensor<T, llm::dims<1>> w(width), b(width);
    llm::fill(w, T(1.0f));
    llm::fill(b, T(0.0f));
    llm::tensor<float, llm::dims<1>> mean(rows), rstd(rows);
    for (auto _ : state) {
        llm::nn::layernorm_forward(y, mean, rstd, x, w, b, 1e-5f, pool);
        benchmark::ClobberMemory();
    }
    set_bytes(state, 2.0 * rows * width * sizeof(T));
}

template <class T, class Form>
void bm_gelu(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto x = random_matrix<T>(rows, width);
    llm::tensor<T, llm::dims<2>> y(rows, width);
    for (auto _ : state) {
        llm::nn::gelu_forward<Form>(y, x, pool);
        benchmark::ClobberMemory();
    }
    set_bytes(state, 2.0 * rows * width * sizeof(T));
}

template <class T>
void bm_swiglu(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto g = random_matrix<T>(rows, width);
    const auto u = random_matrix<T>(rows, width);
    llm::tensor<T, llm::dims<2>> y(rows, width);
    for (auto _ : state) {
        llm::nn::swiglu_forward(y, g, u, pool);
        benchmark::ClobberMemory();
    }
    set_bytes(state, 3.0 * rows * width * sizeof(T));
}

template <class T>
void bm_rope(benchmark::State& state) {
    // 4096 tokens x 32 heads x 128: Llama-7B queries, rotated in place.
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    llm::tensor<T, llm::dims<3>> q(rows, 32, 128);
    llm::fill(q, T(0.5f));
    llm::tensor<std::int32_t, llm::dims<1>> pos(rows);
    for (std::size_t t = 0; t < rows; ++t) {
        pos(t) = static_cast<std::int32_t>(t);
    }
    for (auto _ : state) {
        llm::nn::rope_forward(q, q, pos, llm::nn::rope_params<>{.theta = 500000.0}, pool);
        benchmark::ClobberMemory();
    }
    set_bytes(state, 2.0 * static_cast<double>(q.size() * sizeof(T)));
}

template <class T>
void bm_cross_entropy(benchmark::State& state) {
    // 512 tokens x a 32K vocabulary: forward reads the logits once, backward reads them and
    // adds into the gradient (a read and a write).
    constexpr std::size_t tokens = 512, vocab = 32768;
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto logits = random_matrix<T>(tokens, vocab);
    llm::tensor<T, llm::dims<2>> d(tokens, vocab);
    llm::tensor<std::int64_t, llm::dims<1>> targets(tokens);
    for (std::size_t t = 0; t < tokens; ++t) {
        targets(t) = static_cast<std::int64_t>((t * 7919) % vocab);
    }
    llm::tensor<float, llm::dims<1>> lse(tokens);
    llm::zero_grad(d);
    for (auto _ : state) {
        benchmark::DoNotOptimize(llm::nn::cross_entropy_forward(lse, logits, targets, pool));
        llm::nn::cross_entropy_backward(d, lse, 1.0f, logits, targets, pool);  // accumulates into d
        benchmark::ClobberMemory();
    }
    set_bytes(state, 4.0 * tokens * vocab * sizeof(T));
}

void threads(benchmark::internal::Benchmark* b) {
    b->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(bm_copy)->Name("nn/ceiling_copy/f32")->Apply(threads);
BENCHMARK(bm_softmax<float>)->Name("nn/softmax/f32")->Apply(threads);
BENCHMARK(bm_softmax<llm::bf16>)->Name("nn/softmax/bf16")->Apply(threads);
BENCHMARK(bm_rmsnorm_forward<float>)->Name("nn/rmsnorm_forward/f32")->Apply(threads);
BENCHMARK(bm_rmsnorm_forward<llm::bf16>)->Name("nn/rmsnorm_forward/bf16")->Apply(threads);
BENCHMARK(bm_rmsnorm_backward<float>)->Name("nn/rmsnorm_backward/f32")->Apply(threads);
BENCHMARK(bm_layernorm_forward<float>)->Name("nn/layernorm_forward/f32")->Apply(threads);
BENCHMARK(bm_gelu<float, llm::nn::gelu_erf>)->Name("nn/gelu_erf/f32")->Apply(threads);
BENCHMARK(bm_gelu<float, llm::nn::gelu_tanh>)->Name("nn/gelu_tanh/f32")->Apply(threads);
BENCHMARK(bm_swiglu<float>)->Name("nn/swiglu/f32")->Apply(threads);
BENCHMARK(bm_swiglu<llm::bf16>)->Name("nn/swiglu/bf16")->Apply(threads);
BENCHMARK(bm_rope<float>)->Name("nn/rope/f32")->Apply(threads);
BENCHMARK(bm_cross_entropy<float>)->Name("nn/cross_entropy_fwd_bwd/f32")->Apply(threads);

}  // namespace
