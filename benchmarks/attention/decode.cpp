// SPDX-License-Identifier: Apache-2.0
// Decode attention tokens/s and GB/s of K/V read against cache length, contiguous and paged caches, fp32 and bf16, 1 and 2 threads.
#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

// One decode step of one attention layer for one sequence: 8 q heads, D = 128, kv heads 8
// (MHA) or 1 (MQA: a single kv head, where only splitting the cache length keeps 2 threads
// busy; splits 1 shows the unsplit cost). Counters: tokens/s (steps per second), bytes/s of
// K and V read (the ceiling is the memory bandwidth: ~20 GB/s on 1 thread, ~35 GB/s on 2 in
// ../shared/PEERS.md; caches of 1k tokens fit in L2/L3 and run above it).
// Lengths 1k and 8k by default; LLM_BENCH_FULL=1 runs 1k, 2k, 4k, 8k, 16k and 32k.

namespace {

namespace at = llm::attention;

llm::parallel::thread_pool& pool(std::size_t threads) {
    static llm::parallel::thread_pool one(1), two(2);
    return threads == 1 ? one : two;
}

template <class Cache>
Cache make_cache(std::size_t len, std::size_t Hk, std::size_t D) {
    Cache cache = [&] {
        if constexpr (std::is_same_v<Cache, at::contiguous_kv_cache<typename Cache::element_type>>) {
            return Cache(1, 1, len, Hk, D);
        } else {
            Cache c(1, (len + 15) / 16, 16, Hk, D);
            c.add_sequence();
            return c;
        }
    }();
    constexpr std::size_t chunk = 1024;
    llm::tensor<float, llm::dims<3>> k(chunk, Hk, D);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (std::size_t i = 0; i < k.size(); ++i) {
        k.data()[i] = nd(rng);
    }
    for (std::size_t p = 0; p < len; p += chunk) {
        const auto n = std::min(chunk, len - p);
        cache.layer(0).append(0, llm::slice(k, 0, 0, n), llm::slice(k, 0, 0, n));
        cache.advance(0, n);
    }
    return cache;
}

// Args: cache length, kv heads, splits (0 = auto), threads.
template <class Cache>
void BM_decode(benchmark::State& state) {
    const auto len = static_cast<std::size_t>(state.range(0));
    const auto Hk = static_cast<std::size_t>(state.range(1));
    const auto splits = static_cast<std::size_t>(state.range(2));
    const auto threads = static_cast<std::size_t>(state.range(3));
    const std::size_t H = 8, D = 128;
    const Cache cache = make_cache<Cache>(len, Hk, D);
    llm::tensor<float, llm::dims<3>> q(1, H, D), out(1, H, D);
    for (std::size_t i = 0; i < q.size(); ++i) {
        q.data()[i] = 0.01f * static_cast<float>(i % 97);
    }
    llm::workspace ws;  // a decode loop's caller-owned scratch: grown by the first step, then reused
    for (auto _ : state) {
        at::decode_attention(out, cache.layer(0), q, at::causal{}, {.splits = splits}, ws, pool(threads));
        benchmark::DoNotOptimize(out.data());
    }
    const double bytes = 2.0 * double(len) * double(Hk) * double(D) * sizeof(typename Cache::element_type);
    state.counters["tokens/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
}

void decode_args(benchmark::internal::Benchmark* b) {
    const char* env = std::getenv("LLM_BENCH_FULL");
    const bool full = env != nullptr && env[0] == '1';
    const std::vector<std::int64_t> lens =
        full ? std::vector<std::int64_t>{1024, 2048, 4096, 8192, 16384, 32768} : std::vector<std::int64_t>{1024, 8192};
    for (auto len : lens) {
        for (std::int64_t threads : {1, 2}) {
            b->Args({len, 8, 0, threads});
            b->Args({len, 1, 0, threads});
            if (threads == 2) {
                b->Args({len, 1, 1, threads});  // MQA unsplit: one task, one thread idle
            }
        }
    }
    b->ArgNames({"len", "Hk", "splits", "threads"})->UseRealTime();
}

BENCHMARK(BM_decode<at::contiguous_kv_cache<float>>)->Apply(decode_args);
BENCHMARK(BM_decode<at::contiguous_kv_cache<llm::bf16>>)->Apply(decode_args);
BENCHMARK(BM_decode<at::paged_kv_cache<float>>)->Apply(decode_args);
BENCHMARK(BM_decode<at::paged_kv_cache<llm::bf16>>)->Apply(decode_args);

}  // namespace
