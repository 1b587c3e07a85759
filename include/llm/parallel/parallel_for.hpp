// SPDX-License-Identifier: Apache-2.0
// llm::parallel::parallel_for: runs f(begin, end) over fixed chunks of [0, n) under a policy.
#pragma once

#include <llm/core/error.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm::parallel {

namespace detail {

/// Number of chunks of [0, n) for a grain, after checking the grain (`function` names the
/// public entry point in the message).
inline std::size_t chunk_count(const char* function, std::size_t n, std::size_t grain) {
    llm::check(grain > 0, function, ": grain = 0 must be >= 1 (n = ", n, ")");
    return n / grain + (n % grain != 0 ? 1 : 0);
}

}  // namespace detail

/// Calls `f(begin, end)` once for every chunk [k*grain, min(n, (k+1)*grain)), k = 0, 1, ...,
/// using the threads of `pol`. The chunks depend only on n and grain, never on the policy or
/// on timing, so per-chunk partial results combined in chunk order are deterministic.
/// Chunks may run concurrently and in any order: f must be safe to call from several
/// threads at once (write only to per-chunk outputs). n == 0 calls nothing; grain == 0
/// throws llm::error. The first exception thrown by f reaches the caller after the chunks
/// already running have finished; chunks not yet started are skipped. Called from inside
/// another parallel_for, it runs its chunks inline on the calling thread, in order.
/// Choose grain so one chunk is worth at least a few microseconds of work: a hand-off to a
/// 2-thread pool costs ~0.45 us while its workers are awake, ~4 us once they sleep, plus
/// ~20 ns per chunk (BENCHMARKS.md, bench_parallel).
///   pol: an llm::parallel::policy (sequential, thread_pool or your own), taken by reference
///        (a temporary such as `sequential{}` too); anything else fails at the call, naming
///        the concept.
///   F:   callable as f(std::size_t begin, std::size_t end).
/// Example: `parallel_for(pool, rows, 16, [&](std::size_t r0, std::size_t r1) { for (auto r = r0; r < r1; ++r) y[r] = dot(W[r], x); });`
template <class F>
    requires std::invocable<F&, std::size_t, std::size_t>
void parallel_for(policy auto&& pol, std::size_t n, std::size_t grain, F&& f) {
    const std::size_t n_chunks = detail::chunk_count("parallel_for", n, grain);
    if (n_chunks == 0) {
        return;
    }
    auto chunk = [&](std::size_t k) {
        const std::size_t begin = k * grain;  // < n, so no overflow
        f(begin, begin + std::min(grain, n - begin));
    };
    pol.run(n_chunks, chunk_task(chunk));
}

/// parallel_for on default_pool() (LLM_NUM_THREADS or hardware_concurrency threads).
///   F: callable as f(std::size_t begin, std::size_t end).
/// Example: `llm::parallel::parallel_for(n, 4096, [&](std::size_t b, std::size_t e) { scale(x + b, e - b, 2.0f); });`
template <class F>
    requires std::invocable<F&, std::size_t, std::size_t>
void parallel_for(std::size_t n, std::size_t grain, F&& f) {
    parallel_for(default_pool(), n, grain, std::forward<F>(f));
}

}  // namespace llm::parallel
