// SPDX-License-Identifier: Apache-2.0
// Scalar bulk conversion throughput float <-> bf16/f16/fp8 against Eigen, hardware instructions, memcpy.
#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/fp8.hpp>

#include <benchmark/benchmark.h>

#if LLM_HAS_EIGEN
#include <Eigen/Core>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cstddef>
#include <cstring>
#include <random>
#include <vector>

// Two sizes: 64 Ki elements (256 KiB of floats plus the output fit in a 1 MiB L2: the
// conversion's own cost) and 16 Mi elements (64 MiB of floats: beyond the 32 MiB L3 of the
// Zen 4 machines PEERS.md describes, so it shows how close a pass over real tensors gets to
// memory bandwidth; a CPU with a larger L3 measures that cache instead). Larger sizes would
// make the ctest smoke run slow.
namespace {

constexpr std::size_t max_elements = std::size_t(1) << 24;

// N(0, 4^2) floats shared by every benchmark, made once: fp8 sees normals, subnormals and
// (for e4m3) no overflow, like scaled activations.
const std::vector<float>& inputs() {
    static const std::vector<float> data = [] {
        std::vector<float> v(max_elements);
        std::mt19937 rng(1);
        std::normal_distribution<float> normal(0.0f, 4.0f);
        for (float& x : v) {
            x = normal(rng);
        }
        return v;
    }();
    return data;
}

// Counters for a pass that reads n elements of In and writes n of Out.
template <class In, class Out>
void set_counters(benchmark::State& state, std::size_t n) {
    const double elements = double(n) * double(state.iterations());
    state.counters["elements/s"] = benchmark::Counter(elements, benchmark::Counter::kIsRate);
    state.counters["bytes/s"] = benchmark::Counter(elements * double(sizeof(In) + sizeof(Out)),
                                                   benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// float -> T, one element at a time through T's constructor (what a scalar kernel does).
template <class T, class... Tag>
void encode(benchmark::State& state) {
    const std::size_t n = std::size_t(state.range(0));
    const float* in = inputs().data();
    std::vector<T> out(n);
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = T(in[i], Tag{}...);
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters<float, T>(state, n);
}

// T -> float.
template <class T>
void decode(benchmark::State& state) {
    const std::size_t n = std::size_t(state.range(0));
    std::vector<T> in(n);
    for (std::size_t i = 0; i < n; ++i) {
        in[i] = T(inputs()[i]);
    }
    std::vector<float> out(n);
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = static_cast<float>(in[i]);
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters<T, float>(state, n);
}

// Ceiling: memcpy of the float array (read 4 + write 4 bytes per element).
void copy_floats(benchmark::State& state) {
    const std::size_t n = std::size_t(state.range(0));
    const float* in = inputs().data();
    std::vector<float> out(n);
    for (auto _ : state) {
        std::memcpy(out.data(), in, n * sizeof(float));
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters<float, float>(state, n);
}

#if defined(__AVX512F__)
// Hardware: AVX-512 vcvtps2ph / vcvtph2ps, 16 elements per instruction (n is a multiple of 16).
void encode_f16_vcvtps2ph(benchmark::State& state) {
    const std::size_t n = std::size_t(state.range(0));
    const float* in = inputs().data();
    std::vector<llm::f16> out(n);
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; i += 16) {
            // The masked forms: GCC 12 warns about the unmasked ones' undefined source operand.
            const __m256i h = _mm512_mask_cvtps_ph(_mm256_setzero_si256(), 0xFFFF, _mm512_loadu_ps(in + i),
                                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.data() + i), h);
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters<float, llm::f16>(state, n);
}

void decode_f16_vcvtph2ps(benchmark::State& state) {
    const std::size_t n = std::size_t(state.range(0));
    std::vector<llm::f16> in(n);
    for (std::size_t i = 0; i < n; ++i) {
        in[i] = llm::f16(inputs()[i]);
    }
    std::vector<float> out(n);
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; i += 16) {
            const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in.data() + i));
            _mm512_storeu_ps(out.data() + i, _mm512_mask_cvtph_ps(_mm512_setzero_ps(), 0xFFFF, h));
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters<llm::f16, float>(state, n);
}
#endif

#if defined(__AVX512BF16__)
// Hardware: AVX512-BF16 vcvtne2ps2bf16 (round to nearest even), 32 elements per instruction.
void encode_bf16_vcvtne2ps2bf16(benchmark::State& state) {
    const std::size_t n = std::size_t(state.range(0));
    const float* in = inputs().data();
    std::vector<llm::bf16> out(n);
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; i += 32) {
            const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(in + i + 16), _mm512_loadu_ps(in + i));
            _mm512_storeu_si512(out.data() + i, reinterpret_cast<const __m512i&>(b));
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_counters<float, llm::bf16>(state, n);
}
#endif

}  // namespace

BENCHMARK(copy_floats)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(encode, llm::bf16)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(encode, llm::f16)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(encode, llm::fp8_e4m3)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(encode, llm::fp8_e4m3, llm::saturate_t)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(encode, llm::fp8_e5m2)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(decode, llm::bf16)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(decode, llm::f16)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(decode, llm::fp8_e4m3)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(decode, llm::fp8_e5m2)->Arg(1 << 16)->Arg(1 << 24);
#if LLM_HAS_EIGEN
BENCHMARK_TEMPLATE(encode, Eigen::bfloat16)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(encode, Eigen::half)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(decode, Eigen::bfloat16)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK_TEMPLATE(decode, Eigen::half)->Arg(1 << 16)->Arg(1 << 24);
#endif
#if defined(__AVX512F__)
BENCHMARK(encode_f16_vcvtps2ph)->Arg(1 << 16)->Arg(1 << 24);
BENCHMARK(decode_f16_vcvtph2ps)->Arg(1 << 16)->Arg(1 << 24);
#endif
#if defined(__AVX512BF16__)
BENCHMARK(encode_bf16_vcvtne2ps2bf16)->Arg(1 << 16)->Arg(1 << 24);
#endif
