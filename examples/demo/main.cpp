// SPDX-License-Identifier: Apache-2.0
// The foundation demo: tensors and views, element types, a SIMD kernel per backend, the thread pool.
//
// Computes log-sum-exp of every row of a matrix (the softmax denominator every attention and
// loss kernel needs) with the SIMD facade, checks it against a double-precision loop, and
// reports throughput per SIMD backend and for 1 and 2 threads.
#include <llm/llm.hpp>
#include <llm/simd/simd.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string_view>

namespace {

/// log(sum(exp(row))) with the facade: one pass for the max, one for the sum of exp.
template <llm::simd::backend S>
float row_logsumexp(const float* x, std::size_t n) {
    auto max_v = S::set1(-INFINITY);
    std::size_t i = 0;
    for (; i + S::width <= n; i += S::width) {
        max_v = S::max(max_v, S::loadu(x + i));
    }
    float m = S::reduce_max(max_v);
    for (; i < n; ++i) {
        m = std::max(m, x[i]);
    }
    auto sum_v = S::zero();
    const auto m_v = S::set1(m);
    for (i = 0; i + S::width <= n; i += S::width) {
        sum_v = S::add(sum_v, S::exp(S::sub(S::loadu(x + i), m_v)));
    }
    float sum = S::reduce_add(sum_v);
    for (; i < n; ++i) {  // the tail: fewer than S::width elements
        sum += std::exp(x[i] - m);
    }
    return m + std::log(sum);
}

template <llm::simd::backend S, class Policy>
double run(Policy& pool, llm::tensor_view<const float, llm::dims<2>> x, llm::tensor_view<float, llm::dims<1>> out) {
    const auto start = std::chrono::steady_clock::now();
    llm::parallel::parallel_for(pool, x.extent(0), 64, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            out(r) = row_logsumexp<S>(&x(r, 0), x.extent(1));
        }
    });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Reports throughput and accuracy of one backend; returns false when an error exceeds its bound.
template <llm::simd::backend S>
bool report(llm::tensor_view<const float, llm::dims<2>> x, const std::vector<double>& ref) {
    llm::tensor<float, llm::dims<1>> out(x.extent(0));
    bool all_ok = true;
    const double gb = double(x.size()) * sizeof(float) / 1e9;
    for (std::size_t threads : {1, 2}) {
        llm::parallel::thread_pool pool(threads);
        run<S>(pool, x, out.view());  // warm up
        double best = 1e30;
        for (int rep = 0; rep < 3; ++rep) {
            best = std::min(best, run<S>(pool, x, out.view()));
        }
        // Bound per row: the sum of n = cols exp terms in fp32 (each exp within 2u, u = 2^-24) is
        // off by at most (n + 2) u of itself, which log turns into an absolute error; adding m
        // and log(sum) rounds once more (u |lse|).
        double worst_rel = 0;
        bool ok = true;
        for (std::size_t r = 0; r < x.extent(0); ++r) {
            const double err = std::abs(out(r) - ref[r]);
            ok = ok && err <= (double(x.extent(1)) + 2) * 0x1p-24 + 2 * 0x1p-24 * std::abs(ref[r]);
            worst_rel = std::max(worst_rel, err / std::abs(ref[r]));
        }
        all_ok = all_ok && ok;
        std::printf("  %-14s width %2zu, %zu thread%s: %7.2f GB/s, max relative error vs double %.1e (%s)\n",
                    std::string(S::name).c_str(), S::width, threads, threads == 1 ? " " : "s", gb / best,
                    worst_rel, ok ? "OK" : "MISMATCH");
    }
    return all_ok;
}

}  // namespace

int main() {
    std::printf("llm %s: eigen %d, xsimd %d, highway %d, openmp %d, cuda %d\n", llm::version(), LLM_HAS_EIGEN,
                LLM_HAS_XSIMD, LLM_HAS_HWY, LLM_HAS_OPENMP, LLM_HAS_CUDA);
    std::printf("default SIMD backend: %s (%zu floats per vector); default pool: %zu threads\n",
                std::string(llm::simd::default_backend::name).c_str(), llm::simd::default_backend::width,
                llm::parallel::default_pool().size());

    // Tensors: an owning, aligned matrix with awkward sizes, views without copies, conversions.
    const std::size_t rows = 4096, cols = 4099;
    llm::tensor<float, llm::dims<2>> x(rows, cols);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            x(r, c) = normal(rng);
        }
    }
    auto block = llm::subtensor(x, {2, 3}, std::array<std::size_t, 2>{2, 4});
    auto block_t = llm::transpose(block, 0, 1);
    llm::tensor<llm::bf16, llm::dims<2>> block_bf16(block_t.extent(0), block_t.extent(1));
    llm::convert(block_t, block_bf16);
    std::printf("x: %zu x %zu floats (%.1f MB); a 2x4 block, transposed (a strided view), in bf16:\n%s\n", rows,
                cols, double(x.size()) * 4 / 1e6, llm::to_string(block_bf16).c_str());

    // Reference: log-sum-exp of every row in double.
    std::vector<double> ref(rows);
    for (std::size_t r = 0; r < rows; ++r) {
        double m = -INFINITY, s = 0;
        for (std::size_t c = 0; c < cols; ++c) {
            m = std::max(m, double(x(r, c)));
        }
        for (std::size_t c = 0; c < cols; ++c) {
            s += std::exp(double(x(r, c)) - m);
        }
        ref[r] = m + std::log(s);
    }

    std::printf("row log-sum-exp (max pass + exp pass over the matrix), per SIMD backend and thread count:\n");
    bool ok = report<llm::simd::scalar>(x, ref);
#if LLM_HAS_XSIMD
    ok = report<llm::simd::xsimd_backend>(x, ref) && ok;
#endif
#if LLM_HAS_HWY
    ok = report<llm::simd::highway>(x, ref) && ok;
#endif

    // Errors are llm::error with the function, the argument and the values.
    bool caught = false;
    try {
        (void)llm::slice(x, 0, 10, rows + 1);
    } catch (const llm::error& e) {
        caught = true;
        std::printf("bad slice -> llm::error: %s\n", e.what());
    }
    if (!caught) {
        std::printf("bad slice -> no llm::error: MISMATCH\n");
    }
    ok = ok && caught;
    std::printf("demo: %s\n", ok ? "all checks passed" : "a check FAILED (MISMATCH above)");
    return ok ? 0 : 1;
}
