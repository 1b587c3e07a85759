// SPDX-License-Identifier: Apache-2.0
// Reference quantize and dequantize throughput of every GGUF block format (and dequantize_simd), in GB/s of
// floats.
#include <llm/quant/quant.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <random>
#include <span>
#include <vector>

// 64 Ki floats (256 KiB, plus the blocks, in a 1 MiB L2): the format's own cost, not memory
// bandwidth. GB/s counts the floats only (4 bytes per value read by quantize, written by
// dequantize), so formats compare per value; the blocks add 0.3 to 1.1 bytes per value.
namespace {

constexpr std::size_t n_values = std::size_t(1) << 16;

// N(0, 1) weights, the data GGUF quantization sees.
const std::vector<float>& inputs() {
    static const std::vector<float> data = [] {
        std::vector<float> v(n_values);
        std::mt19937 rng(1);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float& x : v) {
            x = normal(rng);
        }
        return v;
    }();
    return data;
}

void set_counters(benchmark::State& state) {
    state.counters["GB/s"] = benchmark::Counter(double(n_values * sizeof(float)) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

template <class F>
void quantize(benchmark::State& state) {
    std::vector<typename F::block> blocks(n_values / F::block_size);
    for (auto _ : state) {
        llm::quant::quantize<F>(inputs(), blocks);
        benchmark::DoNotOptimize(blocks.data());
        benchmark::ClobberMemory();
    }
    set_counters(state);
}

// Simd: dequantize_simd (the multiply in the default SIMD backend's vectors) instead of dequantize.
template <class F, bool Simd = false>
void dequantize(benchmark::State& state) {
    const auto blocks = llm::quant::quantize<F>(inputs());
    std::vector<float> out(n_values);
    for (auto _ : state) {
        if constexpr (Simd) {
            llm::quant::dequantize_simd<F>(std::span<const typename F::block>(blocks), out);
        } else {
            llm::quant::dequantize<F>(std::span<const typename F::block>(blocks), out);
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters(state);
}

#define LLM_QUANT_BENCH(F)                                             \
    BENCHMARK_TEMPLATE(quantize, llm::quant::F)->Name("quantize/" #F); \
    BENCHMARK_TEMPLATE(dequantize, llm::quant::F)->Name("dequantize/" #F)

LLM_QUANT_BENCH(q4_0);
LLM_QUANT_BENCH(q4_1);
LLM_QUANT_BENCH(q5_0);
LLM_QUANT_BENCH(q5_1);
LLM_QUANT_BENCH(q8_0);
LLM_QUANT_BENCH(q8_1);
LLM_QUANT_BENCH(q2_k);
LLM_QUANT_BENCH(q3_k);
LLM_QUANT_BENCH(q4_k);
LLM_QUANT_BENCH(q5_k);
LLM_QUANT_BENCH(q6_k);
LLM_QUANT_BENCH(q8_k);
BENCHMARK_TEMPLATE(dequantize, llm::quant::q8_0, true)->Name("dequantize_simd/q8_0");
BENCHMARK_TEMPLATE(dequantize, llm::quant::q4_0, true)->Name("dequantize_simd/q4_0");

}  // namespace
