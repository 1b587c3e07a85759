// SPDX-License-Identifier: Apache-2.0
// This machine's ceilings: fp32 FMA peak (AVX-512, AVX2), the bf16 dot-product peak (vdpbf16ps) and STREAM memory bandwidth, 1 and 2 threads.
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

#include "support/fma.hpp"
#include "support/stream.hpp"

#include <benchmark/benchmark.h>

#include <unistd.h>
#if LLM_BENCH_X86
#include <cpuid.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>

namespace {

namespace par = llm::parallel;

using llm_bench::pool_of;

// ---------------------------------------------------------------------------------------
// FMA peak: independent FMA chains through AVX-512 and AVX2 intrinsics (support/fma.hpp, the
// same functions bench_attention divides by).
// ---------------------------------------------------------------------------------------
#if LLM_BENCH_X86
using llm_bench::avx2_flops_per_call;
using llm_bench::avx512_flops_per_call;
using llm_bench::fma_chains_avx2;
using llm_bench::fma_chains_avx512;
using llm_bench::fma_iterations;

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
    run_fma(state, fma_chains_avx512, avx512_flops_per_call, __builtin_cpu_supports("avx512f"),
            "this CPU has no AVX-512F");
}
BENCHMARK(BM_fma_avx512)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

// The bf16 dot-product ceiling (vdpbf16ps, AVX512_BF16): what the bf16 GEMM is measured against.
void BM_dpbf16_avx512(benchmark::State& state) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    const bool bf16 = __builtin_cpu_supports("avx512f") && __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0 &&
                      (a & (1u << 5)) != 0;
    run_fma(state, llm_bench::dpbf16_chains_avx512, llm_bench::dpbf16_flops_per_call, bf16,
            "this CPU has no AVX512_BF16");
}
BENCHMARK(BM_dpbf16_avx512)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_fma_avx2(benchmark::State& state) {
    run_fma(state, fma_chains_avx2, avx2_flops_per_call,
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
    // a, b then c: three caches' worth per pass, so no pass reads what the last left in the L3
    // (stream_read_pass, benchmarks/support/stream.hpp)
    run_stream(state, 3, [&](std::size_t begin, std::size_t end) {
        for (const float* x : {s.a.get(), s.b.get(), s.c.get()}) {
            benchmark::DoNotOptimize(read_kernel(x + begin, end - begin));
        }
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
