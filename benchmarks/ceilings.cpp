// SPDX-License-Identifier: Apache-2.0
// This machine's ceilings: fp32 FMA peak (AVX-512, AVX2) and STREAM memory bandwidth, 1 and 2 threads.
//
// Every kernel in BENCHMARKS.md is reported as a fraction of these figures, measured in the
// same session. Two threads run through llm::parallel::thread_pool (the caller plus one
// worker), exactly as the library's kernels do.
//
//   bench_ceilings --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// LLM_BENCH_STREAM_MIB=<n> overrides the size of each STREAM array (default: the last-level
// cache size, at least 256 MiB, at most 1/8 of physical memory).
#include <llm/parallel/parallel_for.hpp>

#include "support/stream.hpp"

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LLM_BENCH_X86 1
#else
#define LLM_BENCH_X86 0
#endif

namespace {

namespace par = llm::parallel;

using llm_bench::pool_of;

// ---------------------------------------------------------------------------------------
// FMA peak. Each thread runs `Chains` independent accumulator chains acc = acc * m + a.
// An FMA has 4 cycles of latency and up to 2 issue per cycle on current x86 cores (Zen 4,
// Golden Cove), so at least 8 chains must be in flight to fill both pipes; AVX-512 uses 16
// (32 zmm registers), AVX2 12 (16 ymm registers, two hold the constants). m and a keep the
// values bounded and normal (no denormal slow path). No memory traffic in the loop.
// ---------------------------------------------------------------------------------------
#if LLM_BENCH_X86
constexpr std::size_t fma_iterations = std::size_t{1} << 20;  // a few ms per call

// Sums a vector's lanes after a store (not _mm512_reduce_add_ps: GCC 12 warns about an
// uninitialised value inside it).
float sum_lanes(const float* lanes, int n) {
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) {
        sum += lanes[i];
    }
    return sum;
}

constexpr int avx512_chains = 16;
__attribute__((target("avx512f"))) float fma_chains_avx512(std::size_t iterations) {
    __m512 acc[avx512_chains];
    for (int j = 0; j < avx512_chains; ++j) {
        acc[j] = _mm512_set1_ps(static_cast<float>(j));
    }
    const __m512 m = _mm512_set1_ps(0.999999f);
    const __m512 a = _mm512_set1_ps(1e-6f);
    for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < avx512_chains; ++j) {
            acc[j] = _mm512_fmadd_ps(acc[j], m, a);
        }
    }
    for (int j = 1; j < avx512_chains; ++j) {
        acc[0] = _mm512_add_ps(acc[0], acc[j]);
    }
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[0]);
    return sum_lanes(lanes, 16);
}

constexpr int avx2_chains = 12;
__attribute__((target("avx2,fma"))) float fma_chains_avx2(std::size_t iterations) {
    __m256 acc[avx2_chains];
    for (int j = 0; j < avx2_chains; ++j) {
        acc[j] = _mm256_set1_ps(static_cast<float>(j));
    }
    const __m256 m = _mm256_set1_ps(0.999999f);
    const __m256 a = _mm256_set1_ps(1e-6f);
    for (std::size_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < avx2_chains; ++j) {
            acc[j] = _mm256_fmadd_ps(acc[j], m, a);
        }
    }
    for (int j = 1; j < avx2_chains; ++j) {
        acc[0] = _mm256_add_ps(acc[0], acc[j]);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[0]);
    return sum_lanes(lanes, 8);
}

// Arg 0: threads. Each thread runs one chunk: `kernel(fma_iterations)`.
template <class Kernel>
void run_fma(benchmark::State& state, Kernel kernel, double flops_per_call, bool supported,
             const char* missing) {
    if (!supported) {
        state.SkipWithError(missing);
        return;
    }
    const auto threads = static_cast<std::size_t>(state.range(0));
    par::thread_pool& pool = pool_of(threads);
    for (auto _ : state) {
        par::parallel_for(pool, threads, 1, [&](std::size_t, std::size_t) {
            benchmark::DoNotOptimize(kernel(fma_iterations));
        });
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(flops_per_call * static_cast<double>(threads) * 1e-9,
                           benchmark::Counter::kIsIterationInvariantRate);
}

void BM_fma_avx512(benchmark::State& state) {
    // 16 lanes, 2 flops per FMA.
    constexpr double flops = double(fma_iterations) * avx512_chains * 16 * 2;
    run_fma(state, fma_chains_avx512, flops, __builtin_cpu_supports("avx512f"),
            "this CPU has no AVX-512F");
}
BENCHMARK(BM_fma_avx512)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_fma_avx2(benchmark::State& state) {
    // 8 lanes, 2 flops per FMA.
    constexpr double flops = double(fma_iterations) * avx2_chains * 8 * 2;
    run_fma(state, fma_chains_avx2, flops,
            __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
            "this CPU has no AVX2+FMA");
}
BENCHMARK(BM_fma_avx2)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
#endif  // LLM_BENCH_X86

// ---------------------------------------------------------------------------------------
// Memory bandwidth, STREAM style: three float arrays far larger than the last-level cache,
// bytes counted as STREAM counts them (read 1, copy 2, triad 3 arrays' worth per pass;
// the write-allocate read of the destination is not counted). Plain vectorised loops with
// ordinary stores, which is what the library's kernels do; memcpy (glibc switches to
// non-temporal stores for copies this large) is shown beside copy for reference.
// ---------------------------------------------------------------------------------------
// The arrays and kernels live in benchmarks/support/stream.hpp (shared with the benchmarks that
// report a fraction of the read bandwidth of their own run).
using llm_bench::arrays;
using llm_bench::block;
using llm_bench::copy_kernel;
using llm_bench::mib;
using llm_bench::read_kernel;
using llm_bench::stream_arrays;
using llm_bench::triad_kernel;

// Arg 0: threads. `kernel(begin, end)` processes one thread's half; `arrays_counted` is
// how many arrays' bytes STREAM counts per pass.
template <class Kernel>
void run_stream(benchmark::State& state, double arrays_counted, Kernel kernel) {
    stream_arrays& s = arrays();
    const auto threads = static_cast<std::size_t>(state.range(0));
    const std::size_t share = (s.n / threads + block - 1) / block * block;
    par::thread_pool& pool = pool_of(threads);
    for (auto _ : state) {
        par::parallel_for(pool, s.n, share, kernel);
        benchmark::ClobberMemory();
    }
    state.counters["GB/s"] =
        benchmark::Counter(arrays_counted * static_cast<double>(s.n * sizeof(float)) * 1e-9,
                           benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel("3 x " + std::to_string(s.n * sizeof(float) / mib) + " MiB");
}

void BM_stream_read(benchmark::State& state) {
    const stream_arrays& s = arrays();
    run_stream(state, 1, [&](std::size_t begin, std::size_t end) {
        benchmark::DoNotOptimize(read_kernel(s.a.get() + begin, end - begin));
    });
}
BENCHMARK(BM_stream_read)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_stream_copy(benchmark::State& state) {
    const stream_arrays& s = arrays();
    run_stream(state, 2, [&](std::size_t begin, std::size_t end) {
        copy_kernel(s.a.get() + begin, s.b.get() + begin, end - begin);
    });
}
BENCHMARK(BM_stream_copy)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_stream_copy_memcpy(benchmark::State& state) {
    const stream_arrays& s = arrays();
    run_stream(state, 2, [&](std::size_t begin, std::size_t end) {
        std::memcpy(s.a.get() + begin, s.b.get() + begin, (end - begin) * sizeof(float));
    });
}
BENCHMARK(BM_stream_copy_memcpy)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_stream_triad(benchmark::State& state) {
    const stream_arrays& s = arrays();
    run_stream(state, 3, [&](std::size_t begin, std::size_t end) {
        triad_kernel(s.a.get() + begin, s.b.get() + begin, s.c.get() + begin, 3.0f, end - begin);
    });
}
BENCHMARK(BM_stream_triad)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
