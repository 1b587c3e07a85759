// SPDX-License-Identifier: Apache-2.0
// y = a*x + y through tensor_views with static extents, dynamic extents and a raw pointer loop.
//
// The claim checked: indexing through a view costs nothing over a raw pointer loop, and
// static extents cost nothing at all (the view is the pointer). Compare the bytes_per_second
// of the variants for the same size and rank in one run: they should agree within noise.
// Sizes: 4096 floats (48 KiB touched: L1/L2, where any per-element overhead would show)
// and 1M floats (12 MiB: L3-resident). 12 bytes move per element (read x, read y, write y).
#include <llm/tensor/tensor.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>

namespace {

constexpr float alpha = 1.0001f;
constexpr std::size_t bytes_per_element = 3 * sizeof(float);

// Storage shared by every variant: two 64-byte aligned vectors of n floats.
struct buffers {
    explicit buffers(std::size_t n) : x(n), y(n) {
        for (std::size_t i = 0; i < n; ++i) {
            x(i) = static_cast<float>(i % 7);
        }
    }
    llm::tensor<float, llm::dims<1>> x;
    llm::tensor<float, llm::dims<1>> y;
};

void finish(benchmark::State& state, std::size_t n, const float* y) {
    benchmark::DoNotOptimize(y);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * bytes_per_element));
    state.counters["elements"] = static_cast<double>(n);
}

// ---- rank 1 -------------------------------------------------------------------------------

template <std::size_t N>
void axpy_raw_1d(benchmark::State& state) {
    buffers b(N);
    const float* x = b.x.data();
    float* y = b.y.data();
    const std::size_t n = static_cast<std::size_t>(state.range(0));  // run-time, like the view's extent
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) {
            y[i] = alpha * x[i] + y[i];
        }
        benchmark::ClobberMemory();
    }
    finish(state, N, y);
}

template <std::size_t N>
void axpy_static_1d(benchmark::State& state) {
    buffers b(N);
    const llm::tensor_view<const float, llm::extents<N>> x(b.x.data());
    const llm::tensor_view<float, llm::extents<N>> y(b.y.data());
    static_assert(sizeof(y) == sizeof(float*));
    for (auto _ : state) {
        for (std::size_t i = 0; i < y.extent(0); ++i) {
            y(i) = alpha * x(i) + y(i);
        }
        benchmark::ClobberMemory();
    }
    finish(state, N, y.data());
}

template <std::size_t N>
void axpy_dynamic_1d(benchmark::State& state) {
    buffers b(N);
    const llm::tensor_view<const float, llm::dims<1>> x = b.x;
    const llm::tensor_view<float, llm::dims<1>> y = b.y;
    for (auto _ : state) {
        for (std::size_t i = 0; i < y.extent(0); ++i) {
            y(i) = alpha * x(i) + y(i);
        }
        benchmark::ClobberMemory();
    }
    finish(state, N, y.data());
}

// ---- rank 2 (rows x 1024 columns): the offset i * cols + j goes through the mapping ----------

constexpr std::size_t cols = 1024;

template <std::size_t Rows>
void axpy_raw_2d(benchmark::State& state) {
    buffers b(Rows * cols);
    const float* x = b.x.data();
    float* y = b.y.data();
    const std::size_t rows = static_cast<std::size_t>(state.range(0));
    const std::size_t c = static_cast<std::size_t>(state.range(1));
    for (auto _ : state) {
        for (std::size_t i = 0; i < rows; ++i) {
            for (std::size_t j = 0; j < c; ++j) {
                y[i * c + j] = alpha * x[i * c + j] + y[i * c + j];
            }
        }
        benchmark::ClobberMemory();
    }
    finish(state, Rows * cols, y);
}

template <std::size_t Rows>
void axpy_static_2d(benchmark::State& state) {
    buffers b(Rows * cols);
    const llm::tensor_view<const float, llm::extents<Rows, cols>> x(b.x.data());
    const llm::tensor_view<float, llm::extents<Rows, cols>> y(b.y.data());
    static_assert(sizeof(y) == sizeof(float*));
    for (auto _ : state) {
        for (std::size_t i = 0; i < y.extent(0); ++i) {
            for (std::size_t j = 0; j < y.extent(1); ++j) {
                y(i, j) = alpha * x(i, j) + y(i, j);
            }
        }
        benchmark::ClobberMemory();
    }
    finish(state, Rows * cols, y.data());
}

template <std::size_t Rows>
void axpy_dynamic_2d(benchmark::State& state) {
    buffers b(Rows * cols);
    const llm::tensor_view<const float, llm::dims<2>> x = llm::reshape(b.x, Rows, cols);
    const llm::tensor_view<float, llm::dims<2>> y = llm::reshape(b.y, Rows, cols);
    for (auto _ : state) {
        for (std::size_t i = 0; i < y.extent(0); ++i) {
            for (std::size_t j = 0; j < y.extent(1); ++j) {
                y(i, j) = alpha * x(i, j) + y(i, j);
            }
        }
        benchmark::ClobberMemory();
    }
    finish(state, Rows * cols, y.data());
}

// A layout_strided view (row stride and unit column stride held at run time): the price of
// not knowing that the inner stride is 1.
template <std::size_t Rows>
void axpy_strided_2d(benchmark::State& state) {
    buffers b(Rows * cols);
    const llm::tensor_view<const float, llm::dims<2>, llm::layout_strided> x = llm::reshape(b.x, Rows, cols);
    const llm::tensor_view<float, llm::dims<2>, llm::layout_strided> y = llm::reshape(b.y, Rows, cols);
    for (auto _ : state) {
        for (std::size_t i = 0; i < y.extent(0); ++i) {
            for (std::size_t j = 0; j < y.extent(1); ++j) {
                y(i, j) = alpha * x(i, j) + y(i, j);
            }
        }
        benchmark::ClobberMemory();
    }
    finish(state, Rows * cols, y.data());
}

constexpr std::size_t small = 4096;
constexpr std::size_t large = std::size_t{1} << 20;

BENCHMARK_TEMPLATE(axpy_raw_1d, small)->Arg(small);
BENCHMARK_TEMPLATE(axpy_static_1d, small);
BENCHMARK_TEMPLATE(axpy_dynamic_1d, small);
BENCHMARK_TEMPLATE(axpy_raw_1d, large)->Arg(large);
BENCHMARK_TEMPLATE(axpy_static_1d, large);
BENCHMARK_TEMPLATE(axpy_dynamic_1d, large);
BENCHMARK_TEMPLATE(axpy_raw_2d, small / cols)->Args({small / cols, cols});
BENCHMARK_TEMPLATE(axpy_static_2d, small / cols);
BENCHMARK_TEMPLATE(axpy_dynamic_2d, small / cols);
BENCHMARK_TEMPLATE(axpy_strided_2d, small / cols);
BENCHMARK_TEMPLATE(axpy_raw_2d, large / cols)->Args({large / cols, cols});
BENCHMARK_TEMPLATE(axpy_static_2d, large / cols);
BENCHMARK_TEMPLATE(axpy_dynamic_2d, large / cols);
BENCHMARK_TEMPLATE(axpy_strided_2d, large / cols);

}  // namespace
