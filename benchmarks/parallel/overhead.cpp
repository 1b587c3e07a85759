// SPDX-License-Identifier: Apache-2.0
// Per-call cost of parallel_for with an empty body: what a kernel pays for each hand-off.
#include <llm/parallel/parallel_for.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <cstddef>
#include <thread>

#if LLM_HAS_OPENMP
#include <omp.h>
#endif

namespace {

namespace par = llm::parallel;

using clock = std::chrono::steady_clock;

// The counter ns_per_call: timed here rather than derived from a rate counter, whose
// console suffix would read "s" for a value in ns.
void report_ns_per_call(benchmark::State& state, clock::duration timed) {
    state.counters["ns_per_call"] =
        std::chrono::duration<double, std::nano>(timed).count() /
        static_cast<double>(state.iterations());
}

auto empty_body = [](std::size_t begin, std::size_t end) {
    benchmark::DoNotOptimize(begin);
    benchmark::DoNotOptimize(end);
};

// Arg 0: number of chunks (grain 1). Two chunks is the common case on a two-core machine.
void BM_sequential(benchmark::State& state) {
    const auto n_chunks = static_cast<std::size_t>(state.range(0));
    const auto start = clock::now();
    for (auto _ : state) {
        par::parallel_for(par::sequential{}, n_chunks, 1, empty_body);
    }
    report_ns_per_call(state, clock::now() - start);
}
BENCHMARK(BM_sequential)->Arg(2)->Arg(16)->Arg(256)->UseRealTime();

// Arg 0: chunks, Arg 1: pool size. Back-to-back calls: the workers are still spinning from
// the previous call (the steady state inside a kernel loop).
void BM_thread_pool(benchmark::State& state) {
    const auto n_chunks = static_cast<std::size_t>(state.range(0));
    par::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    const auto start = clock::now();
    for (auto _ : state) {
        par::parallel_for(pool, n_chunks, 1, empty_body);
    }
    report_ns_per_call(state, clock::now() - start);
}
BENCHMARK(BM_thread_pool)
    ->ArgNames({"chunks", "threads"})
    ->ArgsProduct({{2, 16, 256}, {1, 2}})
    ->UseRealTime();

// A call after 1 ms of idling: the workers are asleep in the kernel and the call pays the
// futex wake-up. The timer is paused during the idle gap.
void BM_thread_pool_cold(benchmark::State& state) {
    par::thread_pool pool(2);
    clock::duration timed{};
    for (auto _ : state) {
        state.PauseTiming();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        state.ResumeTiming();
        const auto start = clock::now();
        par::parallel_for(pool, 2, 1, empty_body);
        timed += clock::now() - start;
    }
    report_ns_per_call(state, timed);
}
// Fixed iterations: min_time counts only the timed part, so it would sleep for minutes.
BENCHMARK(BM_thread_pool_cold)->Iterations(300)->UseRealTime();

// CPU time a pool of 5 threads burns per second of idling after a job (counter
// cpu_s_per_idle_s, process CPU time over wall time): the workers spin for their 50 us
// budget, then sleep, so ~0; a pool that kept spinning would show ~4. Moved here from the
// unit test, where a CPU-time bound depends on the machine's load.
void BM_thread_pool_idle_cpu(benchmark::State& state) {
    par::thread_pool pool(5);
    double cpu = 0, wall = 0;
    for (auto _ : state) {
        par::parallel_for(pool, 16, 1, empty_body);
        const std::clock_t c0 = std::clock();
        const auto t0 = clock::now();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        cpu += static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
        wall += std::chrono::duration<double>(clock::now() - t0).count();
    }
    state.counters["cpu_s_per_idle_s"] = cpu / wall;
}
BENCHMARK(BM_thread_pool_idle_cpu)->Iterations(10)->UseRealTime();

#if LLM_HAS_OPENMP
// The peer: an OpenMP parallel loop over the same chunks (libgomp), dynamic schedule like
// the pool's chunk claiming, and static for the cheapest OpenMP form.
void BM_openmp_dynamic(benchmark::State& state) {
    const auto n_chunks = static_cast<long>(state.range(0));
    const auto threads = static_cast<int>(state.range(1));
    const auto start = clock::now();
    for (auto _ : state) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (long k = 0; k < n_chunks; ++k) {
            empty_body(static_cast<std::size_t>(k), static_cast<std::size_t>(k + 1));
        }
    }
    report_ns_per_call(state, clock::now() - start);
}
BENCHMARK(BM_openmp_dynamic)
    ->ArgNames({"chunks", "threads"})
    ->ArgsProduct({{2, 16, 256}, {2}})
    ->UseRealTime();

void BM_openmp_static(benchmark::State& state) {
    const auto n_chunks = static_cast<long>(state.range(0));
    const auto threads = static_cast<int>(state.range(1));
    const auto start = clock::now();
    for (auto _ : state) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (long k = 0; k < n_chunks; ++k) {
            empty_body(static_cast<std::size_t>(k), static_cast<std::size_t>(k + 1));
        }
    }
    report_ns_per_call(state, clock::now() - start);
}
BENCHMARK(BM_openmp_static)
    ->ArgNames({"chunks", "threads"})
    ->ArgsProduct({{2, 16, 256}, {2}})
    ->UseRealTime();
#endif

}  // namespace
