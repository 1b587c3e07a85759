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

// Pools are made once per thread count and kept: a benchmark function is entered several
// times per run, and worker start-up is not what is being measured.
par::thread_pool& pool_of(std::size_t threads) {
    static par::thread_pool one(1);
    static par::thread_pool two(2);
    return threads == 1 ? one : two;
}

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
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t block = 64;  // floats; arrays and thread halves are multiples of this

std::size_t stream_array_bytes() {
    if (const char* text = std::getenv("LLM_BENCH_STREAM_MIB"); text != nullptr && *text != '\0') {
        const long value = std::strtol(text, nullptr, 10);
        return static_cast<std::size_t>(std::max(1L, value)) * mib;
    }
    // Each array at least as large as the last-level cache and at least 256 MiB, so the three
    // are at least three times the cache. STREAM's own rule (four times the cache per array)
    // would take 3 GiB here (L3 = 260 MiB) and risk running a shared machine out of memory
    // when several smoke runs coincide; measured on this machine, 1040 MiB arrays give the
    // same figures as 256 MiB ones within 3% (BENCHMARKS.md). At most 1/8 of memory.
    const long l3 = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    std::size_t bytes = std::max<std::size_t>(256 * mib, l3 > 0 ? static_cast<std::size_t>(l3) : 0);
    if (pages > 0 && page > 0) {
        bytes = std::min(bytes, static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 8);
    }
    return bytes / (block * sizeof(float)) * (block * sizeof(float));
}

struct aligned_free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
};
using buffer = std::unique_ptr<float[], aligned_free>;

buffer make_buffer(std::size_t n) {
    return buffer(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t{64})));
}

struct stream_arrays {
    std::size_t n;
    buffer a, b, c;
};

// Allocated on first use (the FMA benchmarks alone need none of it) and first touched by
// both threads, half each, as the 2-thread kernels will use them.
stream_arrays& arrays() {
    static stream_arrays s = [] {
        const std::size_t n = stream_array_bytes() / sizeof(float);
        stream_arrays r{n, make_buffer(n), make_buffer(n), make_buffer(n)};
        const std::size_t half = (n / 2 + block - 1) / block * block;
        par::parallel_for(pool_of(2), n, half, [&](std::size_t begin, std::size_t end) {
            std::fill(r.a.get() + begin, r.a.get() + end, 0.0f);
            std::fill(r.b.get() + begin, r.b.get() + end, 1.0f);
            std::fill(r.c.get() + begin, r.c.get() + end, 2.0f);
        });
        return r;
    }();
    return s;
}

float read_kernel(const float* LLM_RESTRICT x, std::size_t n) {
    // 64 independent lanes: the compiler keeps them in vector registers as several
    // independent add chains (a single running sum would be latency-bound, not memory-bound).
    float acc[block] = {};
    for (std::size_t i = 0; i < n; i += block) {
        for (std::size_t j = 0; j < block; ++j) {
            acc[j] += x[i + j];
        }
    }
    float sum = 0.0f;
    for (float v : acc) {
        sum += v;
    }
    return sum;
}

void copy_kernel(float* LLM_RESTRICT dst, const float* LLM_RESTRICT src, std::size_t n) {
    // "+ 0.0f" is not an identity in IEEE arithmetic (-0 + 0 = +0), so the compiler must
    // keep the loop instead of calling memcpy; the add costs nothing next to the memory.
    for (std::size_t i = 0; i < n; ++i) {
        dst[i] = src[i] + 0.0f;
    }
}

void triad_kernel(float* LLM_RESTRICT a, const float* LLM_RESTRICT b,
                  const float* LLM_RESTRICT c, float s, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        a[i] = b[i] + s * c[i];
    }
}

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
