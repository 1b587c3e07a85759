// SPDX-License-Identifier: Apache-2.0
// Benchmarks of the SIMD facade per backend: dot and axpy bandwidth (GB/s), exp throughput, against peers in the same run.
//
// Peers: a plain C++ loop (what the compiler makes of it at -O3 -march=native), Eigen 3.4
// (header-only, when compiled in), OpenBLAS's cblas_sdot / cblas_saxpy (loaded at run time
// with dlopen so the build needs nothing; skipped when absent), std::exp, and the exp
// functions of the two libraries behind our backends (xsimd::exp, Highway's contrib Exp).
// Sizes: bytes per array; 1 MiB arrays live in L2, 64 MiB arrays are past a 32 MiB L3 (Zen 4)
// but not past a larger one; LLM_BENCH_FULL=1 adds 512 MiB arrays (see sizes()).
#include <llm/simd/simd.hpp>

#if LLM_HAS_EIGEN
#include <Eigen/Core>
#endif
#if LLM_HAS_HWY
#include <hwy/contrib/math/math-inl.h>
#endif

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#if defined(__linux__)
#include <dlfcn.h>
#endif

namespace {

struct free_deleter {
    void operator()(float* p) const noexcept { std::free(p); }
};
using buffer = std::unique_ptr<float[], free_deleter>;

/// n floats, 64-byte aligned, filled with values in [-1, 1] (the pages are touched before timing).
buffer random_buffer(std::size_t n, unsigned seed) {
    buffer b(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64)));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = dist(rng);
    }
    return b;
}

std::size_t floats_of(const benchmark::State& state) { return static_cast<std::size_t>(state.range(0)) / sizeof(float); }

/// GB/s as BENCHMARKS.md counts it: the bytes the algorithm must move (STREAM convention).
void set_rate(benchmark::State& state, double bytes_per_iteration, std::string label) {
    state.counters["GB/s"] = benchmark::Counter(bytes_per_iteration * 1e-9 * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
    state.SetLabel(std::move(label));
}

// ---- the kernels, written once over the facade ------------------------------------------

/// sum x[i] y[i] with four independent accumulators (an fma's latency is 4 cycles, two issue
/// per cycle: four chains keep the pipes busy from L1; memory-bound sizes do not care).
template <llm::simd::backend S>
float dot(const float* x, const float* y, std::size_t n) {
    constexpr std::size_t w = S::width;
    auto a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
    std::size_t i = 0;
    for (; i + 4 * w <= n; i += 4 * w) {
        a0 = S::fma(S::loadu(x + i), S::loadu(y + i), a0);
        a1 = S::fma(S::loadu(x + i + w), S::loadu(y + i + w), a1);
        a2 = S::fma(S::loadu(x + i + 2 * w), S::loadu(y + i + 2 * w), a2);
        a3 = S::fma(S::loadu(x + i + 3 * w), S::loadu(y + i + 3 * w), a3);
    }
    for (; i + w <= n; i += w) {
        a0 = S::fma(S::loadu(x + i), S::loadu(y + i), a0);
    }
    a0 = S::fma(S::load_partial(x + i, n - i), S::load_partial(y + i, n - i), a0);
    return S::reduce_add(S::add(S::add(a0, a1), S::add(a2, a3)));
}

/// y = a x + y.
template <llm::simd::backend S>
void axpy(float a, const float* x, float* y, std::size_t n) {
    constexpr std::size_t w = S::width;
    const auto va = S::set1(a);
    std::size_t i = 0;
    for (; i + w <= n; i += w) {
        S::storeu(y + i, S::fma(va, S::loadu(x + i), S::loadu(y + i)));
    }
    S::store_partial(y + i, S::fma(va, S::load_partial(x + i, n - i), S::load_partial(y + i, n - i)), n - i);
}

/// out = exp(in).
template <llm::simd::backend S>
void exp_array(const float* in, float* out, std::size_t n) {
    constexpr std::size_t w = S::width;
    std::size_t i = 0;
    for (; i + w <= n; i += w) {
        S::storeu(out + i, S::exp(S::loadu(in + i)));
    }
    S::store_partial(out + i, S::exp(S::load_partial(in + i, n - i)), n - i);
}

// ---- dot / axpy per backend ----------------------------------------------------------

template <class S>
void bm_dot(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    for (auto _ : state) {
        benchmark::DoNotOptimize(dot<S>(x.get(), y.get(), n));
    }
    set_rate(state, 2.0 * static_cast<double>(n * sizeof(float)), std::string(S::name));
}

template <class S>
void bm_axpy(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    for (auto _ : state) {
        axpy<S>(1e-3f, x.get(), y.get(), n);
        benchmark::ClobberMemory();
    }
    set_rate(state, 3.0 * static_cast<double>(n * sizeof(float)), std::string(S::name));  // read x, y; write y
}

// Peers for dot / axpy.

void bm_dot_plain_loop(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    for (auto _ : state) {
        float s = 0.0f;  // without -ffast-math the compiler keeps this one serial chain
        for (std::size_t i = 0; i < n; ++i) {
            s += x[i] * y[i];
        }
        benchmark::DoNotOptimize(s);
    }
    set_rate(state, 2.0 * static_cast<double>(n * sizeof(float)), "plain loop");
}

void bm_axpy_plain_loop(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    for (auto _ : state) {
        float* LLM_RESTRICT yp = y.get();
        const float* LLM_RESTRICT xp = x.get();
        for (std::size_t i = 0; i < n; ++i) {
            yp[i] = 1e-3f * xp[i] + yp[i];
        }
        benchmark::ClobberMemory();
    }
    set_rate(state, 3.0 * static_cast<double>(n * sizeof(float)), "plain loop");
}

#if LLM_HAS_EIGEN
void bm_dot_eigen(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    const Eigen::Map<const Eigen::VectorXf, Eigen::Aligned64> ex(x.get(), static_cast<Eigen::Index>(n));
    const Eigen::Map<const Eigen::VectorXf, Eigen::Aligned64> ey(y.get(), static_cast<Eigen::Index>(n));
    for (auto _ : state) {
        benchmark::DoNotOptimize(ex.dot(ey));
    }
    set_rate(state, 2.0 * static_cast<double>(n * sizeof(float)), "Eigen");
}

void bm_axpy_eigen(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    const Eigen::Map<const Eigen::VectorXf, Eigen::Aligned64> ex(x.get(), static_cast<Eigen::Index>(n));
    Eigen::Map<Eigen::VectorXf, Eigen::Aligned64> ey(y.get(), static_cast<Eigen::Index>(n));
    for (auto _ : state) {
        ey += 1e-3f * ex;
        benchmark::ClobberMemory();
    }
    set_rate(state, 3.0 * static_cast<double>(n * sizeof(float)), "Eigen");
}
#endif

/// OpenBLAS's level-1 routines, looked up at run time (one thread: the comparison is per core).
struct openblas {
    using sdot_fn = float (*)(int, const float*, int, const float*, int);
    using saxpy_fn = void (*)(int, float, const float*, int, float*, int);
    using threads_fn = void (*)(int);
    sdot_fn sdot = nullptr;
    saxpy_fn saxpy = nullptr;

    static const openblas& get() {
        static const openblas instance;
        return instance;
    }

private:
    openblas() {
#if defined(__linux__)
        void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
        if (lib == nullptr) {
            return;
        }
        sdot = reinterpret_cast<sdot_fn>(dlsym(lib, "cblas_sdot"));
        saxpy = reinterpret_cast<saxpy_fn>(dlsym(lib, "cblas_saxpy"));
        if (auto set_threads = reinterpret_cast<threads_fn>(dlsym(lib, "openblas_set_num_threads"))) {
            set_threads(1);
        }
#endif
    }
};

void bm_dot_openblas(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    if (openblas::get().sdot == nullptr) {
        state.SkipWithError("libopenblas.so.0 not found");
        return;
    }
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    for (auto _ : state) {
        benchmark::DoNotOptimize(openblas::get().sdot(static_cast<int>(n), x.get(), 1, y.get(), 1));
    }
    set_rate(state, 2.0 * static_cast<double>(n * sizeof(float)), "OpenBLAS");
}

void bm_axpy_openblas(benchmark::State& state) {
    const std::size_t n = floats_of(state);
    if (openblas::get().saxpy == nullptr) {
        state.SkipWithError("libopenblas.so.0 not found");
        return;
    }
    const buffer x = random_buffer(n, 1), y = random_buffer(n, 2);
    for (auto _ : state) {
        openblas::get().saxpy(static_cast<int>(n), 1e-3f, x.get(), 1, y.get(), 1);
        benchmark::ClobberMemory();
    }
    set_rate(state, 3.0 * static_cast<double>(n * sizeof(float)), "OpenBLAS");
}

// ---- exp throughput ------------------------------------------------------------------

/// 4096 floats in and out (32 KiB): L1-resident, so the figure is the arithmetic's.
constexpr std::size_t exp_n = 4096;

/// Gelem/s: 10^9 exp evaluations per second.
void set_exp_rate(benchmark::State& state, std::string label) {
    state.counters["Gelem/s"] = benchmark::Counter(static_cast<double>(exp_n) * 1e-9 * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
    state.SetLabel(std::move(label));
}

buffer exp_inputs() {
    buffer b = random_buffer(exp_n, 3);
    for (std::size_t i = 0; i < exp_n; ++i) {
        b[i] *= 80.0f;  // [-80, 80]: the whole useful range
    }
    return b;
}

template <class S>
void bm_exp(benchmark::State& state) {
    const buffer in = exp_inputs(), out = random_buffer(exp_n, 4);
    for (auto _ : state) {
        exp_array<S>(in.get(), out.get(), exp_n);
        benchmark::ClobberMemory();
    }
    set_exp_rate(state, std::string(S::name));
}

void bm_exp_std(benchmark::State& state) {
    const buffer in = exp_inputs(), out = random_buffer(exp_n, 4);
    for (auto _ : state) {
        for (std::size_t i = 0; i < exp_n; ++i) {
            out[i] = std::exp(in[i]);
        }
        benchmark::ClobberMemory();
    }
    set_exp_rate(state, "std::exp");
}

#if LLM_HAS_XSIMD
void bm_exp_xsimd_peer(benchmark::State& state) {
    using batch = llm::simd::xsimd_backend::f32;
    const buffer in = exp_inputs(), out = random_buffer(exp_n, 4);
    for (auto _ : state) {
        for (std::size_t i = 0; i < exp_n; i += batch::size) {
            xsimd::exp(batch::load_unaligned(in.get() + i)).store_unaligned(out.get() + i);
        }
        benchmark::ClobberMemory();
    }
    set_exp_rate(state, "xsimd::exp");
}
#endif

#if LLM_HAS_HWY
void bm_exp_highway_peer(benchmark::State& state) {
    namespace hn = hwy::HWY_NAMESPACE;
    const hn::ScalableTag<float> d;
    const buffer in = exp_inputs(), out = random_buffer(exp_n, 4);
    for (auto _ : state) {
        for (std::size_t i = 0; i < exp_n; i += hn::Lanes(d)) {
            hn::StoreU(hn::Exp(d, hn::LoadU(d, in.get() + i)), d, out.get() + i);
        }
        benchmark::ClobberMemory();
    }
    set_exp_rate(state, "hwy contrib Exp");
}
#endif

/// Bytes per array: 1 MiB and 64 MiB; with LLM_BENCH_FULL=1 also 512 MiB, past any L3
/// (64 MiB is past Zen 4's 32 MiB L3 but inside the 260 MiB of this project's Xeon hosts).
void sizes(benchmark::internal::Benchmark* b) {
    b->Arg(1 << 20)->Arg(64 << 20)->Unit(benchmark::kMicrosecond);
    if (const char* full = std::getenv("LLM_BENCH_FULL"); full != nullptr && std::string(full) == "1") {
        b->Arg(512 << 20);
    }
}

}  // namespace

BENCHMARK_TEMPLATE(bm_dot, llm::simd::scalar)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_axpy, llm::simd::scalar)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_exp, llm::simd::scalar);
#if LLM_HAS_XSIMD
BENCHMARK_TEMPLATE(bm_dot, llm::simd::xsimd_backend)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_axpy, llm::simd::xsimd_backend)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_exp, llm::simd::xsimd_backend);
BENCHMARK(bm_exp_xsimd_peer);
#if XSIMD_WITH_AVX512F && XSIMD_WITH_FMA3_AVX2
// The same code at half the width: what AVX-512 buys over AVX2 here.
BENCHMARK_TEMPLATE(bm_dot, llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_axpy, llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_exp, llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>);
#endif
#endif
#if LLM_HAS_HWY
BENCHMARK_TEMPLATE(bm_dot, llm::simd::highway)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_axpy, llm::simd::highway)->Apply(sizes);
BENCHMARK_TEMPLATE(bm_exp, llm::simd::highway);
BENCHMARK(bm_exp_highway_peer);
#endif
BENCHMARK(bm_dot_plain_loop)->Apply(sizes);
BENCHMARK(bm_axpy_plain_loop)->Apply(sizes);
#if LLM_HAS_EIGEN
BENCHMARK(bm_dot_eigen)->Apply(sizes);
BENCHMARK(bm_axpy_eigen)->Apply(sizes);
#endif
BENCHMARK(bm_dot_openblas)->Apply(sizes);
BENCHMARK(bm_axpy_openblas)->Apply(sizes);
BENCHMARK(bm_exp_std);
