// SPDX-License-Identifier: Apache-2.0
// Attention forward/backward GFLOP/s: flash (tiled) vs materialised-on-llm::gemm vs the double reference, plus the FMA ceiling.
#include <llm/attention/attention.hpp>
#include <llm/attention/reference.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include "../support/fma.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <memory>
#include <random>
#include <vector>

// Problems: batch 1, 8 q heads, kv heads 8 or 2, S = seq_q = seq_k, D in {64, 128}, full or
// causal, 1 or 2 threads. FLOPs counted as the issue asks: 4 * S^2 * D per head for the full
// forward (QK^T and PV), half for causal; the backward counts 2.5x the forward (five
// matmuls of the same size: S, dP, dV, dK, dQ), as FlashAttention's benchmarks do.
// Counters: GFLOP/s (wall clock), peak_frac = GFLOP/s / (one core's fp32 FMA ceiling x
// threads), GFLOP/cpu_s (per CPU-second of the whole process) and cpu_peak_frac (that over the
// FMA ceiling per CPU-second): on a shared machine the CPU-second figures are the stable ones.
// The ceiling is measured in the same process by BM_fma_peak/1 (registered first), with
// bench_ceilings' own FMA chains (support/fma.hpp: intrinsics, chains started apart so none can
// be folded) for the ISA of the default SIMD backend, and shown as peak_ref; when BM_fma_peak
// is filtered out, 114 GFLOP/s (../shared/PEERS.md, Zen 4) is used. The machine kind varies:
// on a 2-FMA-port AVX-512 core the ceiling is about twice Zen 4's, so always read peak_ref.
// Sizes: S in {512, 2048} by default (each smoke iteration well under 2 s); LLM_BENCH_FULL=1
// adds S = 4096 and 8192 (and the reference at S = 2048).

namespace {

namespace at = llm::attention;
using S_be = llm::simd::default_backend;

bool full_run() {
    const char* env = std::getenv("LLM_BENCH_FULL");
    return env != nullptr && env[0] == '1';
}

llm::parallel::thread_pool& pool(std::size_t threads) {
    static llm::parallel::thread_pool one(1), two(2);
    return threads == 1 ? one : two;
}

/// CPU seconds used by every thread of this process (pool workers included). On a shared
/// machine the wall-clock rate drops when other jobs take the cores; work per CPU-second
/// (GFLOP/cpu_s) shows the kernel's own efficiency, and the FMA ceiling is reported the same way.
double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Runs the benchmark loop body `f` and records the process CPU seconds it took.
template <class F>
double timed_loop(benchmark::State& state, F&& f) {
    const double c0 = process_cpu_seconds();
    for (auto _ : state) {
        f();
    }
    return process_cpu_seconds() - c0;
}

// --- FMA ceiling: bench_ceilings' measurement (support/fma.hpp) --------------------------
double fma_peak_per_core = 114.0;      // GFLOP/s (wall clock); replaced by BM_fma_peak/1's measurement
double fma_peak_per_cpu_s = 114.0;     // GFLOP per CPU-second; likewise

/// One thread's share of the ceiling: bench_ceilings' FMA chains for the ISA the kernels are
/// compiled for (AVX-512 when the default backend's vectors are 16 floats, else AVX2), or,
/// off x86, 12 chains through the SIMD facade started from different values. Returns the flops.
double fma_chains_call() {
#if LLM_BENCH_X86
    if constexpr (S_be::width >= 16) {
        benchmark::DoNotOptimize(llm_bench::fma_chains_avx512(llm_bench::fma_iterations));
        return llm_bench::avx512_flops_per_call;
    } else {
        benchmark::DoNotOptimize(llm_bench::fma_chains_avx2(llm_bench::fma_iterations));
        return llm_bench::avx2_flops_per_call;
    }
#else
    constexpr std::size_t chains = 12;
    constexpr std::size_t iters = std::size_t{1} << 20;
    typename S_be::f32 acc[chains];
    for (std::size_t c = 0; c < chains; ++c) {
        acc[c] = S_be::set1(static_cast<float>(c));
    }
    const auto m = S_be::set1(0.999999f), a = S_be::set1(1e-6f);
    for (std::size_t i = 0; i < iters; ++i) {
        for (auto& x : acc) {
            x = S_be::fma(x, m, a);
        }
    }
    auto s = acc[0];
    for (std::size_t c = 1; c < chains; ++c) {
        s = S_be::add(s, acc[c]);
    }
    benchmark::DoNotOptimize(S_be::reduce_add(s));
    return 2.0 * chains * iters * S_be::width;
#endif
}

/// The FMA ceiling in this run, 1 or 2 threads. Every fraction of peak below divides by the
/// latest BM_fma_peak/1: run with --benchmark_repetitions and
/// --benchmark_enable_random_interleaving=true to alternate it with the kernels.
void BM_fma_peak(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    std::vector<double> flops_of(threads);
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    for (auto _ : state) {
        llm::parallel::parallel_for(pool(threads), threads, 1, [&](std::size_t t0, std::size_t t1) {
            for (std::size_t t = t0; t < t1; ++t) {
                flops_of[t] = fma_chains_call();
            }
        });
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu_s = process_cpu_seconds() - c0;
    const double flops = flops_of[0] * static_cast<double>(threads);
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/cpu_s"] = flops * 1e-9 * static_cast<double>(state.iterations()) / cpu_s;
    if (threads == 1 && state.iterations() > 0) {
        fma_peak_per_core = flops * 1e-9 * static_cast<double>(state.iterations()) / elapsed;
        fma_peak_per_cpu_s = flops * 1e-9 * static_cast<double>(state.iterations()) / cpu_s;
    }
}
BENCHMARK(BM_fma_peak)->Arg(1)->Arg(2)->UseRealTime()->MinTime(0.05);

// --- Problems ----------------------------------------------------------------------------
struct problem {
    std::size_t S, D, H, Hk;
    llm::tensor<float, llm::dims<4>> q, k, v, o, dout, dq, dk, dv;
    llm::tensor<float, llm::dims<3>> lse;
    problem(std::size_t s, std::size_t d, std::size_t h, std::size_t hk)
        : S(s), D(d), H(h), Hk(hk), q(1, s, h, d), k(1, s, hk, d), v(1, s, hk, d), o(1, s, h, d), dout(1, s, h, d),
          dq(1, s, h, d), dk(1, s, hk, d), dv(1, s, hk, d), lse(1, h, s) {
        std::mt19937 rng(1);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (auto* t : {&q, &k, &v, &dout}) {
            for (std::size_t i = 0; i < t->size(); ++i) {
                t->data()[i] = nd(rng);
            }
        }
    }
};

// Args: S, D, kv heads, causal (0/1), threads.
void set_counters(benchmark::State& state, double flops_per_iter, std::size_t threads, double cpu_s) {
    state.counters["GFLOP/cpu_s"] = flops_per_iter * 1e-9 * static_cast<double>(state.iterations()) / cpu_s;
    state.counters["cpu_peak_frac"] = state.counters["GFLOP/cpu_s"] / fma_peak_per_cpu_s;
    state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["peak_frac"] = benchmark::Counter(flops_per_iter * 1e-9 / (fma_peak_per_core * double(threads)),
                                                     benchmark::Counter::kIsIterationInvariantRate);
    state.counters["peak_ref"] = fma_peak_per_core * double(threads);
}

double forward_flops(std::size_t S, std::size_t D, std::size_t H, bool causal) {
    return 4.0 * double(S) * double(S) * double(D) * double(H) * (causal ? 0.5 : 1.0);
}

template <class Mask>
double run_flash_forward(benchmark::State& state, problem& p, const Mask& mask, std::size_t threads) {
    return timed_loop(state, [&] {
        at::flash_forward(p.o, p.lse, p.q, p.k, p.v, mask, {}, pool(threads));
        benchmark::DoNotOptimize(p.o.data());
    });
}

template <class Mask>
double run_flash_backward(benchmark::State& state, problem& p, const Mask& mask, std::size_t threads) {
    at::flash_forward(p.o, p.lse, p.q, p.k, p.v, mask, {}, pool(threads));
    return timed_loop(state, [&] {
        // Gradients accumulate over the iterations (never read); clearing them would time a fill too.
        at::flash_backward(p.dq, p.dk, p.dv, p.o, p.lse, p.dout, p.q, p.k, p.v, mask, {}, pool(threads));
        benchmark::DoNotOptimize(p.dq.data());
    });
}

void BM_flash_forward(benchmark::State& state) {
    const auto S = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    const auto Hk = static_cast<std::size_t>(state.range(2));
    const bool causal = state.range(3) != 0;
    const auto threads = static_cast<std::size_t>(state.range(4));
    problem p(S, D, 8, Hk);
    const double cpu_s = causal ? run_flash_forward(state, p, at::causal{}, threads)
                                : run_flash_forward(state, p, at::no_mask{}, threads);
    set_counters(state, forward_flops(S, D, 8, causal), threads, cpu_s);
}

void BM_flash_backward(benchmark::State& state) {
    const auto S = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    const auto Hk = static_cast<std::size_t>(state.range(2));
    const bool causal = state.range(3) != 0;
    const auto threads = static_cast<std::size_t>(state.range(4));
    problem p(S, D, 8, Hk);
    const double cpu_s = causal ? run_flash_backward(state, p, at::causal{}, threads)
                                : run_flash_backward(state, p, at::no_mask{}, threads);
    set_counters(state, 2.5 * forward_flops(S, D, 8, causal), threads, cpu_s);
}

// Tile-size policies side by side (S = 2048, D = 128, 8 heads, full, 1 thread): the data
// behind default_tiles_t.
template <std::size_t BQ, std::size_t BK>
void BM_flash_forward_tiles(benchmark::State& state) {
    problem p(2048, 128, 8, 8);
    const double cpu_s = timed_loop(state, [&] {
        at::flash_forward<at::tiles<BQ, BK>>(p.o, p.lse, p.q, p.k, p.v, at::no_mask{}, {}, pool(1));
        benchmark::DoNotOptimize(p.o.data());
    });
    set_counters(state, forward_flops(2048, 128, 8, false), 1, cpu_s);
}
BENCHMARK(BM_flash_forward_tiles<32, 64>)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_flash_forward_tiles<64, 64>)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_flash_forward_tiles<64, 128>)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_flash_forward_tiles<128, 64>)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_flash_forward_tiles<128, 128>)->UseRealTime()->Unit(benchmark::kMillisecond);

// The straightforward materialised implementation on llm::gemm: per head, S = scale Q K^T
// (S x S, materialised), row softmax (max, exp, sum, scale: the SIMD facade's exp), O = P V.
// Causal masks the upper triangle before the softmax but computes the full products, as a
// plain implementation does; FLOPs are counted the same way as for flash (half for causal).
void BM_materialised_forward(benchmark::State& state) {
    const auto S = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    const auto Hk = static_cast<std::size_t>(state.range(2));
    const bool causal = state.range(3) != 0;
    const auto threads = static_cast<std::size_t>(state.range(4));
    problem p(S, D, 8, Hk);
    llm::tensor<float, llm::dims<2>> scores(S, S);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    auto& exec = pool(threads);
    const double cpu_s = timed_loop(state, [&] {
        for (std::size_t h = 0; h < p.H; ++h) {
            const std::size_t g = h / (p.H / p.Hk);
            auto qh = llm::select(llm::select(p.q, 0, 0), 1, h);  // (S, D), row stride H*D
            auto kh = llm::select(llm::select(p.k, 0, 0), 1, g);
            auto vh = llm::select(llm::select(p.v, 0, 0), 1, g);
            auto oh = llm::select(llm::select(p.o, 0, 0), 1, h);
            llm::gemm(scores, qh, llm::transpose(kh, 0, 1), scale, 0.0f, exec);
            llm::parallel::parallel_for(exec, S, 16, [&](std::size_t r0, std::size_t r1) {
                constexpr std::size_t W = S_be::width;
                for (std::size_t r = r0; r < r1; ++r) {
                    float* row = scores.data() + r * S;
                    const std::size_t n = causal ? r + 1 : S;
                    float mx = -std::numeric_limits<float>::infinity();
                    for (std::size_t j = 0; j < n; ++j) {
                        mx = std::max(mx, row[j]);
                    }
                    auto sum = S_be::zero();
                    const auto m = S_be::set1(mx);
                    std::size_t j = 0;
                    for (; j + W <= n; j += W) {
                        const auto e = S_be::exp(S_be::sub(S_be::loadu(row + j), m));
                        S_be::storeu(row + j, e);
                        sum = S_be::add(sum, e);
                    }
                    float tail = 0;
                    for (; j < n; ++j) {
                        row[j] = std::exp(row[j] - mx);
                        tail += row[j];
                    }
                    const float inv = 1.0f / (S_be::reduce_add(sum) + tail);
                    for (j = 0; j < n; ++j) {
                        row[j] *= inv;
                    }
                    for (; j < S; ++j) {
                        row[j] = 0.0f;
                    }
                }
            });
            llm::gemm(oh, scores, vh, 1.0f, 0.0f, exec);
        }
        benchmark::DoNotOptimize(p.o.data());
    });
    set_counters(state, forward_flops(S, D, 8, causal), threads, cpu_s);
}

// The double-precision oracle (single-threaded by construction).
void BM_reference_forward(benchmark::State& state) {
    const auto S = static_cast<std::size_t>(state.range(0)), D = static_cast<std::size_t>(state.range(1));
    const auto Hk = static_cast<std::size_t>(state.range(2));
    const bool causal = state.range(3) != 0;
    problem p(S, D, 8, Hk);
    const double cpu_s = timed_loop(state, [&] {
        if (causal) {
            at::reference_forward(p.o, p.lse, p.q, p.k, p.v, at::causal{});
        } else {
            at::reference_forward(p.o, p.lse, p.q, p.k, p.v);
        }
        benchmark::DoNotOptimize(p.o.data());
    });
    set_counters(state, forward_flops(S, D, 8, causal), 1, cpu_s);
}

void flash_args(benchmark::internal::Benchmark* b) {
    std::vector<std::int64_t> sizes = {512, 2048};
    if (full_run()) {
        sizes.push_back(4096);  // issue 13 names S = 2048..8192
        sizes.push_back(8192);
    }
    for (auto S : sizes) {
        for (std::int64_t D : {64, 128}) {
            for (std::int64_t Hk : {8, 2}) {
                for (std::int64_t causal : {0, 1}) {
                    for (std::int64_t threads : {1, 2}) {
                        b->Args({S, D, Hk, causal, threads});
                    }
                }
            }
        }
    }
    b->ArgNames({"S", "D", "Hk", "causal", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

void reference_args(benchmark::internal::Benchmark* b) {
    b->Args({512, 64, 8, 0, 1});
    if (full_run()) {
        b->Args({2048, 128, 8, 0, 1});
    }
    b->ArgNames({"S", "D", "Hk", "causal", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_flash_forward)->Apply(flash_args);
BENCHMARK(BM_materialised_forward)->Apply(flash_args);
BENCHMARK(BM_flash_backward)->Apply(flash_args);
BENCHMARK(BM_reference_forward)->Apply(reference_args);

}  // namespace
