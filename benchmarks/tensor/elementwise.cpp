// SPDX-License-Identifier: Apache-2.0
// y = a*x + y through tensor_views with static extents, dynamic extents and a raw pointer loop.
//
// The claim checked: indexing through a view costs nothing over a raw pointer loop, and
// static extents cost nothing at all (the view is the pointer). Each kernel is a separate
// non-inlined function, so each variant is compared with the raw loop that knows the same
// things: static extents with a raw loop over compile-time sizes, dynamic extents with a raw
// loop over run-time sizes. Compare bytes_per_second within one run; they should agree
// within noise. Sizes: 4096 floats (32 KiB of x and y: L1/L2, where any per-element
// overhead would show) and 1M floats (8 MiB: L3). 12 bytes move per element (read x, read y,
// write y).
#include <llm/tensor/tensor.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>

namespace {

constexpr float alpha = 1.0001f;
constexpr std::size_t bytes_per_element = 3 * sizeof(float);
constexpr std::size_t cols = 1024;  // rank-2 cases: n / 1024 rows of 1024

// ---- the kernels ---------------------------------------------------------------------------
// Non-inlined, and each starts on a 64-byte boundary: identical machine code then sits at
// identical offsets within cache lines. Without that, the static-extents loop (byte for byte
// the raw loop) once ran 1.6x slower on 4096 floats only because its closing jne straddled a
// 32-byte boundary, which this core's branch/uop cache handles badly. align-loops=64 puts
// every hot loop at the start of a line (g++; clang ignores the attribute, hence the pragma).
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-attributes"
#endif

template <std::size_t N>
[[gnu::noinline, gnu::aligned(64), gnu::optimize("align-loops=64")]] void raw_fixed_1d(const float* x, float* y) {
    for (std::size_t i = 0; i < N; ++i) {
        y[i] = alpha * x[i] + y[i];
    }
}

[[gnu::noinline, gnu::aligned(64), gnu::optimize("align-loops=64")]] void raw_runtime_1d(const float* x, float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        y[i] = alpha * x[i] + y[i];
    }
}

template <class ConstView, class View>
[[gnu::noinline, gnu::aligned(64), gnu::optimize("align-loops=64")]] void view_1d(ConstView x, View y) {
    for (std::size_t i = 0; i < y.extent(0); ++i) {
        y(i) = alpha * x(i) + y(i);
    }
}

template <std::size_t Rows, std::size_t Cols>
[[gnu::noinline, gnu::aligned(64), gnu::optimize("align-loops=64")]] void raw_fixed_2d(const float* x, float* y) {
    for (std::size_t i = 0; i < Rows; ++i) {
        for (std::size_t j = 0; j < Cols; ++j) {
            y[i * Cols + j] = alpha * x[i * Cols + j] + y[i * Cols + j];
        }
    }
}

[[gnu::noinline, gnu::aligned(64), gnu::optimize("align-loops=64")]] void raw_runtime_2d(const float* x, float* y, std::size_t rows, std::size_t c) {
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < c; ++j) {
            y[i * c + j] = alpha * x[i * c + j] + y[i * c + j];
        }
    }
}

template <class ConstView, class View>
[[gnu::noinline, gnu::aligned(64), gnu::optimize("align-loops=64")]] void view_2d(ConstView x, View y) {
    for (std::size_t i = 0; i < y.extent(0); ++i) {
        for (std::size_t j = 0; j < y.extent(1); ++j) {
            y(i, j) = alpha * x(i, j) + y(i, j);
        }
    }
}

// ---- the benchmarks ------------------------------------------------------------------------

// x and y: N floats each in one 64-byte aligned buffer, y placed 2 KiB (mod 4 KiB) after x.
// The placement is fixed because it matters more than anything measured here: when y sits
// a little above x modulo 4 KiB, loads of x falsely wait on earlier stores to y ("4K
// aliasing"), which made identical machine code run 1.6x slower depending on where the
// allocator happened to put two separate tensors.
template <std::size_t N, class Kernel>
void run(benchmark::State& state, Kernel kernel) {
    constexpr std::size_t skew = 2048 / sizeof(float);
    llm::aligned_buffer<float> buffer(2 * N + skew);
    float* x = buffer.data();
    float* y = buffer.data() + N + skew;
    for (std::size_t i = 0; i < N; ++i) {
        x[i] = static_cast<float>(i % 7);
    }
    for (auto _ : state) {
        kernel(static_cast<const float*>(x), y);
        benchmark::DoNotOptimize(y);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * N * bytes_per_element));
}

// The run-time sizes come from the benchmark's arguments so the compiler cannot fold them.
std::size_t runtime(const benchmark::State& state, int k) { return static_cast<std::size_t>(state.range(k)); }

template <std::size_t N>
void raw_fixed_1d_bench(benchmark::State& state) {
    run<N>(state, [](const float* x, float* y) { raw_fixed_1d<N>(x, y); });
}

template <std::size_t N>
void static_1d_bench(benchmark::State& state) {
    run<N>(state, [](const float* x, float* y) {
        view_1d(llm::tensor_view<const float, llm::extents<N>>(x), llm::tensor_view<float, llm::extents<N>>(y));
    });
}

template <std::size_t N>
void raw_runtime_1d_bench(benchmark::State& state) {
    const std::size_t n = runtime(state, 0);
    run<N>(state, [n](const float* x, float* y) { raw_runtime_1d(x, y, n); });
}

template <std::size_t N>
void dynamic_1d_bench(benchmark::State& state) {
    const std::size_t n = runtime(state, 0);
    run<N>(state, [n](const float* x, float* y) {
        view_1d(llm::tensor_view<const float, llm::dims<1>>(x, n), llm::tensor_view<float, llm::dims<1>>(y, n));
    });
}

template <std::size_t N>
void raw_fixed_2d_bench(benchmark::State& state) {
    run<N>(state, [](const float* x, float* y) { raw_fixed_2d<N / cols, cols>(x, y); });
}

template <std::size_t N>
void static_2d_bench(benchmark::State& state) {
    run<N>(state, [](const float* x, float* y) {
        using e = llm::extents<N / cols, cols>;
        view_2d(llm::tensor_view<const float, e>(x), llm::tensor_view<float, e>(y));
    });
}

template <std::size_t N>
void raw_runtime_2d_bench(benchmark::State& state) {
    const std::size_t rows = runtime(state, 0);
    const std::size_t c = runtime(state, 1);
    run<N>(state, [rows, c](const float* x, float* y) { raw_runtime_2d(x, y, rows, c); });
}

template <std::size_t N>
void dynamic_2d_bench(benchmark::State& state) {
    const std::size_t rows = runtime(state, 0);
    const std::size_t c = runtime(state, 1);
    run<N>(state, [rows, c](const float* x, float* y) {
        view_2d(llm::tensor_view<const float, llm::dims<2>>(x, rows, c), llm::tensor_view<float, llm::dims<2>>(y, rows, c));
    });
}

// layout_strided holds both strides at run time: the price of not knowing the inner one is 1.
template <std::size_t N>
void strided_2d_bench(benchmark::State& state) {
    const std::size_t rows = runtime(state, 0);
    const std::size_t c = runtime(state, 1);
    run<N>(state, [rows, c](const float* x, float* y) {
        using strided = llm::layout_strided::mapping<llm::dims<2>>;
        const strided m(llm::dims<2>(rows, c), {c, 1});
        view_2d(llm::tensor_view<const float, llm::dims<2>, llm::layout_strided>(x, m),
                llm::tensor_view<float, llm::dims<2>, llm::layout_strided>(y, m));
    });
}

constexpr std::size_t small = 4096;
constexpr std::size_t large = std::size_t{1} << 20;
constexpr std::int64_t small_rows = small / cols;
constexpr std::int64_t large_rows = large / cols;

BENCHMARK_TEMPLATE(raw_fixed_1d_bench, small);
BENCHMARK_TEMPLATE(static_1d_bench, small);
BENCHMARK_TEMPLATE(raw_runtime_1d_bench, small)->Arg(small);
BENCHMARK_TEMPLATE(dynamic_1d_bench, small)->Arg(small);
BENCHMARK_TEMPLATE(raw_fixed_1d_bench, large);
BENCHMARK_TEMPLATE(static_1d_bench, large);
BENCHMARK_TEMPLATE(raw_runtime_1d_bench, large)->Arg(large);
BENCHMARK_TEMPLATE(dynamic_1d_bench, large)->Arg(large);

BENCHMARK_TEMPLATE(raw_fixed_2d_bench, small);
BENCHMARK_TEMPLATE(static_2d_bench, small);
BENCHMARK_TEMPLATE(raw_runtime_2d_bench, small)->Args({small_rows, cols});
BENCHMARK_TEMPLATE(dynamic_2d_bench, small)->Args({small_rows, cols});
BENCHMARK_TEMPLATE(strided_2d_bench, small)->Args({small_rows, cols});
BENCHMARK_TEMPLATE(raw_fixed_2d_bench, large);
BENCHMARK_TEMPLATE(static_2d_bench, large);
BENCHMARK_TEMPLATE(raw_runtime_2d_bench, large)->Args({large_rows, cols});
BENCHMARK_TEMPLATE(dynamic_2d_bench, large)->Args({large_rows, cols});
BENCHMARK_TEMPLATE(strided_2d_bench, large)->Args({large_rows, cols});

}  // namespace
