// SPDX-License-Identifier: Apache-2.0
// GEMM GFLOP/s and % of the FMA peak measured in the same run: llm::gemm (own), Eigen and OpenBLAS, 1 and 2 threads; bf16 rows (own's default, its vdpbf16ps path forced, its AMX path where present, its widening path, OpenBLAS sbgemm) with the bf16 dot-product peak.
// GCC 12 reports a false -Wmaybe-uninitialized inside its AVX-512 intrinsics when Eigen's
// packing is inlined (GCC PR 105593); the pragma must precede every include to apply.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <llm/core/workspace.hpp>
#include <llm/gemm/eigen.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/tensor.hpp>

#include "../support/fma.hpp"

#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdlib>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

// ---- ceilings measured in this process -----------------------------------------------------

/// fp32 FMA throughput of one core through the SIMD facade: 12 independent accumulator
/// chains (enough for 2 FMA ports x 4-5 cycles latency), 2 flops per lane per FMA.
double fma_peak_one_thread() {
    using S = llm::simd::default_backend;
    constexpr std::size_t chains = 12;
    typename S::f32 acc[chains];
    for (std::size_t i = 0; i < chains; ++i) {
        acc[i] = S::set1(0.001f * static_cast<float>(i));
    }
    const auto a = S::set1(0.999f), b = S::set1(1e-4f);
    constexpr long iters = 20'000'000;
    const auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < iters; ++it) {
        // Constant indices (as in the GEMM micro-kernel) keep the chains in registers.
        llm::simd::unroll<chains>([&](auto i) { acc[i] = S::fma(acc[i], a, b); });
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    float sink = 0.0f;
    for (std::size_t i = 0; i < chains; ++i) {
        sink += S::reduce_add(acc[i]);
    }
    benchmark::DoNotOptimize(sink);
    return static_cast<double>(iters * chains * S::width) * 2.0 / s;
}

/// Best of 3 short runs (other processes share the machine); flop/s of one core.
double fma_peak() {
    static const double peak = [] {
        double best = 0.0;
        for (int r = 0; r < 3; ++r) {
            best = std::max(best, fma_peak_one_thread());
        }
        return best;
    }();
    return peak;
}

/// The bf16 dot-product peak of one core (vdpbf16ps chains, support/fma.hpp: the method of
/// bench_ceilings), best of 3; 0 where the CPU lacks AVX512_BF16.
double dpbf16_peak() {
    static const double peak = [] {
        if (!llm::blas::cpu_has_avx512_bf16()) {
            return 0.0;
        }
        double best = 0.0;
        for (int r = 0; r < 3; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            benchmark::DoNotOptimize(llm_bench::dpbf16_chains_avx512(llm_bench::fma_iterations));
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            best = std::max(best, llm_bench::dpbf16_flops_per_call / s);
        }
        return best;
    }();
    return peak;
}

// ---- OpenBLAS, loaded at run time (a benchmark-only peer, no link dependency) ---------------

using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using sbgemm_fn = void (*)(int, int, int, int, int, int, float, const llm::bf16*, int, const llm::bf16*, int, float,
                          float*, int);
using set_threads_fn = void (*)(int);
struct openblas {
    sgemm_fn sgemm = nullptr;
    sbgemm_fn sbgemm = nullptr;  // only in builds with BUILD_BFLOAT16 (Debian's 0.3.21 has none)
    set_threads_fn set_threads = nullptr;
};

const openblas& load_openblas() {
    static const openblas lib = [] {
        // OpenBLAS 0.3.21 does not recognise some AVX-512 CPU models under KVM and falls back to
        // its generic "Prescott" kernels (5x slower); on a CPU with AVX-512 name the AVX-512
        // kernels it does have, unless the user chose a core type. Elsewhere its own detection
        // stands (naming SkylakeX on an AVX2-only CPU, a Zen 2, died of SIGILL).
        if (__builtin_cpu_supports("avx512f")) setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
        openblas l;
        if (void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL)) {
            l.sgemm = reinterpret_cast<sgemm_fn>(dlsym(h, "cblas_sgemm"));
            l.sbgemm = reinterpret_cast<sbgemm_fn>(dlsym(h, "cblas_sbgemm"));
            l.set_threads = reinterpret_cast<set_threads_fn>(dlsym(h, "openblas_set_num_threads"));
        }
        return l;
    }();
    return lib;
}

// ---- the benchmark ---------------------------------------------------------------------------

enum class peer { own, own_measured, own_dot, own_widen, own_amx, eigen, openblas };
enum class b_layout { row_major, transposed };  // transposed: B = W^T with W [n, k] row-major

/// CPU seconds used by every thread of this process (workers and their spinning included).
double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// GFLOP/s of wall time, the peak for the thread count, the B operand's GB/s, and GFLOP per
/// CPU-second of the whole process: on a shared machine the wall-clock rate drops when other
/// jobs take the cores, while work per CPU-second shows the kernel's own efficiency (with
/// perfect 2-thread scaling it equals the 1-thread figure).
/// bf16 rows also get the bf16 dot-product peak (dp_peak_GFLOP/s).
void set_counters(benchmark::State& state, double m, double k, double n, int threads, double b_bytes, double cpu_s,
                  bool bf16 = false) {
    const double flops = 2.0 * m * k * n;
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/cpu_s"] = flops * 1e-9 * static_cast<double>(state.iterations()) / cpu_s;
    state.counters["peak_GFLOP/s"] = fma_peak() * threads * 1e-9;
    if (bf16) {
        state.counters["dp_peak_GFLOP/s"] = dpbf16_peak() * threads * 1e-9;
    }
    state.counters["B_GB/s"] = benchmark::Counter(b_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// T: the element type of A and W (fp32, or bf16 for the bf16 rows; C is fp32).
template <peer P, class T = float>
void bm_gemm(benchmark::State& state) {
    const auto m = static_cast<std::size_t>(state.range(0));
    const auto k = static_cast<std::size_t>(state.range(1));
    const auto n = static_cast<std::size_t>(state.range(2));
    const int threads = static_cast<int>(state.range(3));
    const auto layout = static_cast<b_layout>(state.range(4));
    llm::tensor<T, llm::dims<2>> a(m, k);
    llm::tensor<float, llm::dims<2>> c(m, n);
    // W is stored [k, n] for row-major B, [n, k] for B = W^T (a Linear layer's weight).
    llm::tensor<T, llm::dims<2>> w(layout == b_layout::row_major ? k : n, layout == b_layout::row_major ? n : k);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a.data()[i] = T(dist(rng));
    }
    for (std::size_t i = 0; i < w.size(); ++i) {
        w.data()[i] = T(dist(rng));
    }
    const auto b = layout == b_layout::row_major ? llm::tensor_view<T, llm::dims<2>, llm::layout_strided>(llm::slice(w, 0, 0, k))
                                                 : llm::transpose(w, 0, 1);
    llm::parallel::thread_pool pool(static_cast<std::size_t>(threads));
    if constexpr (P == peer::eigen) {
        Eigen::setNbThreads(threads);
    }
    const openblas& ob = load_openblas();
    constexpr bool bf16 = std::is_same_v<T, llm::bf16>;
    if constexpr (P == peer::openblas) {
        if (ob.sgemm == nullptr) {
            state.SkipWithError("libopenblas.so.0 not found");
            return;
        }
        if (bf16 && ob.sbgemm == nullptr) {
            state.SkipWithError("this libopenblas has no cblas_sbgemm (built without BUILD_BFLOAT16)");
            return;
        }
        if (ob.set_threads != nullptr) {
            ob.set_threads(threads);
        }
    }
    if constexpr (P == peer::own_amx) {
        if (!llm::blas::amx_bf16_available()) {
            state.SkipWithError("no AMX-BF16 on this CPU (or no permission for the tile data)");
            return;
        }
    }
    llm::workspace ws;  // the packing panels, kept across calls as a model's loop keeps them
    const double cpu0 = process_cpu_seconds();
    for (auto _ : state) {
        if constexpr (P == peer::own) {
            llm::gemm(c, a, b, 1.0f, 0.0f, ws, pool);
        } else if constexpr (P == peer::own_measured) {
            // The measured constant blocking pinned (the default derives it from the caches).
            using S = llm::simd::default_backend;
            llm::gemm<llm::blas::own<S, llm::blas::measured_blocking_t<S::width>>>(c, a, b, 1.0f, 0.0f, ws, pool);
        } else if constexpr (P == peer::own_dot) {
            // bf16: the vdpbf16ps path forced (the default takes it only where it pays).
            using S = llm::simd::default_backend;
            llm::gemm<llm::blas::own<S, llm::blas::default_blocking_t<S::width>, llm::blas::bf16_path::dot>>(
                c, a, b, 1.0f, 0.0f, ws, pool);
        } else if constexpr (P == peer::own_amx) {
            // bf16: the AMX tile path (tdpbf16ps), which the default takes wherever AMX is available.
            using S = llm::simd::default_backend;
            llm::gemm<llm::blas::own<S, llm::blas::default_blocking_t<S::width>, llm::blas::bf16_path::amx>>(
                c, a, b, 1.0f, 0.0f, ws, pool);
        } else if constexpr (P == peer::own_widen) {
            // bf16 widened to fp32 while packing, the fp32 micro-kernel (the path before vdpbf16ps).
            using S = llm::simd::default_backend;
            llm::gemm<llm::blas::own<S, llm::blas::default_blocking_t<S::width>, llm::blas::bf16_path::widen>>(
                c, a, b, 1.0f, 0.0f, ws, pool);
        } else if constexpr (P == peer::eigen) {
            llm::gemm<llm::blas::eigen>(c, a, b, 1.0f, 0.0f, ws, pool);
        } else {
            constexpr int row_major = 101, no_trans = 111, trans = 112;  // CBLAS enum values
            auto* const fn = [&] {
                if constexpr (bf16) {
                    return ob.sbgemm;
                } else {
                    return ob.sgemm;
                }
            }();
            fn(row_major, no_trans, layout == b_layout::row_major ? no_trans : trans, static_cast<int>(m),
                     static_cast<int>(n), static_cast<int>(k), 1.0f, a.data(), static_cast<int>(k), w.data(),
                     static_cast<int>(w.extent(1)), 0.0f, c.data(), static_cast<int>(n));
        }
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    const double cpu_s = process_cpu_seconds() - cpu0;
    set_counters(state, static_cast<double>(m), static_cast<double>(k), static_cast<double>(n), threads,
                 static_cast<double>(k * n * sizeof(T)), cpu_s, bf16);
}

/// Streaming read bandwidth (1 or 2 threads) over 512 MiB, the ceiling for GEMV.
void bm_read_bandwidth(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    using S = llm::simd::default_backend;
    llm::tensor<float, llm::dims<1>> buf(std::size_t{1} << 27);
    llm::fill(buf, 1.0f);
    llm::parallel::thread_pool pool(static_cast<std::size_t>(threads));
    const std::size_t n = buf.size();
    for (auto _ : state) {
        llm::parallel::parallel_for(pool, n, (n + threads - 1) / threads, [&](std::size_t b, std::size_t e) {
            auto s0 = S::zero(), s1 = S::zero();
            for (std::size_t i = b; i + 2 * S::width <= e; i += 2 * S::width) {
                s0 = S::add(s0, S::load(buf.data() + i));
                s1 = S::add(s1, S::load(buf.data() + i + S::width));
            }
            benchmark::DoNotOptimize(S::reduce_add(S::add(s0, s1)));
        });
    }
    state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n * sizeof(float)) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"m", "k", "n", "threads", "bT"});
    for (int threads : {1, 2}) {
        for (int s : {256, 512, 1024, 2048}) {
            b->Args({s, s, s, threads, 0});
        }
        b->Args({1, 4096, 4096, threads, 0});    // decode, W [k, n]
        b->Args({1, 4096, 4096, threads, 1});    // decode, y = x W^T
        b->Args({512, 4096, 4096, threads, 1});  // prefill, y = X W^T
    }
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

/// The bf16 rows: the cubes and the prefill shape (GEMV rows run the widening GEMV either way).
void shapes_bf16(benchmark::internal::Benchmark* b) {
    b->ArgNames({"m", "k", "n", "threads", "bT"});
    for (int threads : {1, 2}) {
        for (int s : {256, 512, 1024, 2048}) {
            b->Args({s, s, s, threads, 0});
        }
        b->Args({512, 4096, 4096, threads, 1});  // prefill, y = X W^T, W bf16 row-major
    }
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(bm_gemm<peer::own>)->Name("gemm/own")->Apply(shapes);
BENCHMARK(bm_gemm<peer::own, llm::bf16>)->Name("gemm_bf16/own")->Apply(shapes_bf16);
BENCHMARK(bm_gemm<peer::own_dot, llm::bf16>)->Name("gemm_bf16/own_dot")->Apply(shapes_bf16);
BENCHMARK(bm_gemm<peer::own_widen, llm::bf16>)->Name("gemm_bf16/own_widen")->Apply(shapes_bf16);
BENCHMARK(bm_gemm<peer::own_amx, llm::bf16>)->Name("gemm_bf16/own_amx")->Apply(shapes_bf16);
BENCHMARK(bm_gemm<peer::openblas, llm::bf16>)->Name("gemm_bf16/openblas_sbgemm")->Apply(shapes_bf16);
BENCHMARK(bm_gemm<peer::own_measured>)->Name("gemm/own_measured")->Apply(shapes);
#if LLM_HAS_EIGEN
BENCHMARK(bm_gemm<peer::eigen>)->Name("gemm/eigen")->Apply(shapes);
#endif
BENCHMARK(bm_gemm<peer::openblas>)->Name("gemm/openblas")->Apply(shapes);
BENCHMARK(bm_read_bandwidth)->Name("ceiling/read_bandwidth")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
