// SPDX-License-Identifier: Apache-2.0
// GB/s of logits read by sequence_logprobs (and read + written by its backward) against a plain read in the same run.
#include <llm/align/logprobs.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

// Sizes: 128 MiB of fp32 logits per call (64 MiB bf16), four times the 32 MiB L3, so every call
// streams from DRAM; rows = 2^25 / V. LLM_BENCH_ALIGN_MIB overrides the size.
//
// Counters: bytes_per_second = logits bytes read (forward) or read + dlogits written (backward).
// bench_align also times a plain read (sum of the same buffer, the memory ceiling in this run),
// so the ratio to bandwidth is measured under the same load as the kernel.

namespace {

std::size_t logit_count() {
    const char* env = std::getenv("LLM_BENCH_ALIGN_MIB");
    const std::size_t mib = env != nullptr ? static_cast<std::size_t>(std::atol(env)) : 128;
    return mib * (std::size_t{1} << 20) / 4;
}

template <class E>
struct data {
    std::size_t rows, V;
    std::vector<E> logits;
    std::vector<std::int32_t> labels;
    std::vector<std::uint8_t> mask;
    std::vector<float> sum, lse;
    data(std::size_t v) : rows(logit_count() / v), V(v), logits(rows * v), labels(rows), mask(rows, 1), sum(1), lse(rows) {
        std::uint32_t s = 12345;
        for (auto& x : logits) {
            s = s * 1664525u + 1013904223u;  // LCG: cheap to fill 32M entries, values in [-8, 8)
            x = E(static_cast<float>(static_cast<std::int32_t>(s >> 8) - (1 << 23)) * (1.0f / (1 << 20)));
        }
        for (std::size_t r = 0; r < rows; ++r) {
            labels[r] = static_cast<std::int32_t>((r * 7919) % v);
        }
    }
    // one sequence of `rows` tokens: the whole batch as (1, rows, V)
    llm::tensor_view<const E, llm::dims<3>> x() const { return {logits.data(), std::size_t{1}, rows, V}; }
    llm::tensor_view<const std::int32_t, llm::dims<2>> y() const { return {labels.data(), std::size_t{1}, rows}; }
    llm::tensor_view<const std::uint8_t, llm::dims<2>> m() const { return {mask.data(), std::size_t{1}, rows}; }
};

template <class Policy>
Policy& policy_for(std::size_t threads);
template <>
llm::parallel::sequential& policy_for<llm::parallel::sequential>(std::size_t) {
    static llm::parallel::sequential seq;
    return seq;
}
template <>
llm::parallel::thread_pool& policy_for<llm::parallel::thread_pool>(std::size_t threads) {
    static llm::parallel::thread_pool pool(threads);
    return pool;
}

template <class E, class Policy>
void bm_forward(benchmark::State& state) {
    const std::size_t V = static_cast<std::size_t>(state.range(0));
    data<E> d(V);
    auto& pol = policy_for<Policy>(2);
    const llm::align::logprob_outputs<float> out{{d.sum.data(), std::size_t{1}}, {}, {}};
    const llm::tensor_view<float, llm::dims<2>> lse(d.lse.data(), std::size_t{1}, d.rows);
    for (auto _ : state) {
        llm::align::sequence_logprobs(out, lse, d.x(), d.y(), d.m(), pol);
        benchmark::DoNotOptimize(d.sum.data());
    }
    state.counters["threads"] = static_cast<double>(pol.size());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.logits.size() * sizeof(E)));
}

template <class E, class Policy>
void bm_backward(benchmark::State& state) {
    const std::size_t V = static_cast<std::size_t>(state.range(0));
    data<E> d(V);
    auto& pol = policy_for<Policy>(2);
    const llm::tensor_view<float, llm::dims<2>> lse(d.lse.data(), std::size_t{1}, d.rows);
    llm::align::sequence_logprobs(llm::align::logprob_outputs<float>{{d.sum.data(), std::size_t{1}}, {}, {}}, lse, d.x(),
                                  d.y(), d.m(), pol);
    std::vector<E> dl(d.logits.size(), E(0.0f));
    const llm::tensor_view<E, llm::dims<3>> dlogits(dl.data(), std::size_t{1}, d.rows, V);
    const float g = -1.0f;
    for (auto _ : state) {
        // accumulates into dlogits (gradients add up): every iteration reads it and writes it
        llm::align::sequence_logprobs_backward(dlogits, lse, llm::tensor_view<const float, llm::dims<1>>(&g, std::size_t{1}),
                                               {}, d.x(), d.y(), d.m(), pol);
        benchmark::DoNotOptimize(dl.data());
    }
    state.counters["threads"] = static_cast<double>(pol.size());
    // logits read, dlogits read and written
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.logits.size() * sizeof(E) * 3));
}

// The memory ceiling in this run: a vectorised sum over the same 128 MiB, split over the same threads.
template <class Policy>
void bm_read(benchmark::State& state) {
    using S = llm::simd::default_backend;
    data<float> d(32768);
    auto& pol = policy_for<Policy>(2);
    const std::size_t n = d.logits.size();
    const std::size_t chunk = 1 << 16;
    std::vector<float> partial(n / chunk + 1);
    for (auto _ : state) {
        llm::parallel::parallel_for(pol, n / chunk, 1, [&](std::size_t c0, std::size_t c1) {
            for (std::size_t c = c0; c < c1; ++c) {
                auto a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
                const float* p = d.logits.data() + c * chunk;
                for (std::size_t i = 0; i < chunk; i += 4 * S::width) {
                    a0 = S::add(a0, S::loadu(p + i));
                    a1 = S::add(a1, S::loadu(p + i + S::width));
                    a2 = S::add(a2, S::loadu(p + i + 2 * S::width));
                    a3 = S::add(a3, S::loadu(p + i + 3 * S::width));
                }
                partial[c] = S::reduce_add(S::add(S::add(a0, a1), S::add(a2, a3)));
            }
        });
        benchmark::DoNotOptimize(partial.data());
    }
    state.counters["threads"] = static_cast<double>(pol.size());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (n / chunk) * chunk * sizeof(float)));
}

using seq = llm::parallel::sequential;
using pool = llm::parallel::thread_pool;

}  // namespace

BENCHMARK(bm_read<seq>)->Name("read_ceiling/1thread")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_read<pool>)->Name("read_ceiling/2threads")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_forward<float, seq>)->Name("logprobs_fwd_f32/1thread")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_forward<float, pool>)->Name("logprobs_fwd_f32/2threads")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_forward<llm::bf16, seq>)->Name("logprobs_fwd_bf16/1thread")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_forward<llm::bf16, pool>)->Name("logprobs_fwd_bf16/2threads")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_backward<float, seq>)->Name("logprobs_bwd_f32/1thread")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_backward<float, pool>)->Name("logprobs_bwd_f32/2threads")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_backward<llm::bf16, seq>)->Name("logprobs_bwd_bf16/1thread")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_backward<llm::bf16, pool>)->Name("logprobs_bwd_bf16/2threads")->Arg(32768)->Arg(131072)->Unit(benchmark::kMillisecond)->UseRealTime();
