// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the GEMM tests: operands in every layout and the comparison with the reference.
#pragma once

#include <llm/gemm/gemm.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

namespace gemm_test {


// How an operand of logical shape rows x cols is laid out in memory.
enum class layout_kind { row, col, padded_row, padded_col };
constexpr layout_kind all_layouts[] = {layout_kind::row, layout_kind::col, layout_kind::padded_row, layout_kind::padded_col};

// An operand: its storage and a strided view of it with the requested layout.
template <class T>
struct operand {
    llm::tensor<T, llm::dims<2>> storage;
    llm::tensor_view<T, llm::dims<2>, llm::layout_strided> view;
};

template <class T>
operand<T> make_operand(std::size_t rows, std::size_t cols, layout_kind kind, std::mt19937& rng, bool poison = false) {
    const bool col = kind == layout_kind::col || kind == layout_kind::padded_col;
    const std::size_t pad = (kind == layout_kind::padded_row || kind == layout_kind::padded_col) ? 3 : 0;
    // Column-major rows x cols = the transpose of a row-major cols x rows; padding widens
    // the leading dimension so rows are not adjacent (a slice of a bigger matrix).
    llm::tensor<T, llm::dims<2>> storage(col ? cols : rows, (col ? rows : cols) + pad);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < storage.extent(0); ++i) {
        for (std::size_t j = 0; j < storage.extent(1); ++j) {
            storage(i, j) = T(poison ? std::numeric_limits<float>::quiet_NaN() : dist(rng));
        }
    }
    auto inner = llm::slice(storage, 1, 0, col ? rows : cols);
    llm::tensor_view<T, llm::dims<2>, llm::layout_strided> view = col ? llm::transpose(inner, 0, 1) : inner;
    return {std::move(storage), view};
}

// ||x - y|| / ||y|| over all elements of two equal-shaped views.
template <class V>
double rel_error(const V& x, const V& y) {
    double num = 0.0, den = 0.0;
    for (std::size_t i = 0; i < x.extent(0); ++i) {
        for (std::size_t j = 0; j < x.extent(1); ++j) {
            const double d = static_cast<double>(x(i, j)) - static_cast<double>(y(i, j));
            num += d * d;
            den += static_cast<double>(y(i, j)) * static_cast<double>(y(i, j));
        }
    }
    return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

// fp32 accumulation of k products in blocks of 256: the error grows ~ sqrt(k) * 2^-24;
// 2e-6 leaves a factor > 5 at k = 1000 and still catches any wrong element (error ~1).
constexpr double fp32_tolerance = 2e-6;

template <class Backend, class T, class Exec>
void check_against_reference(std::size_t m, std::size_t k, std::size_t n, Exec& exec, float alpha, float beta,
                             bool every_layout = true) {
    std::mt19937 rng(static_cast<unsigned>(m * 7919 + k * 104729 + n));
    // Big sizes: only row-major A and C with B both ways (the reference costs m * n * k).
    const std::vector<layout_kind> a_layouts = every_layout ? std::vector(std::begin(all_layouts), std::end(all_layouts))
                                                           : std::vector{layout_kind::row};
    const std::vector<layout_kind> b_layouts = every_layout ? a_layouts : std::vector{layout_kind::row, layout_kind::col};
    const std::vector<layout_kind> c_layouts = every_layout ? std::vector{layout_kind::row, layout_kind::col, layout_kind::padded_row}
                                                           : std::vector{layout_kind::row};
    for (layout_kind la : a_layouts) {
        for (layout_kind lb : b_layouts) {
            for (layout_kind lc : c_layouts) {
                auto a = make_operand<T>(m, k, la, rng);
                auto b = make_operand<T>(k, n, lb, rng);
                // beta == 0: C is poisoned and must not leak NaN; otherwise C holds values.
                auto c = make_operand<float>(m, n, lc, rng, beta == 0.0f);
                auto expected = make_operand<float>(m, n, layout_kind::row, rng);
                for (std::size_t i = 0; i < m; ++i) {
                    for (std::size_t j = 0; j < n; ++j) {
                        expected.view(i, j) = c.view(i, j);
                    }
                }
                llm::parallel::sequential seq;
                llm::gemm<llm::blas::reference>(expected.view, a.view, b.view, alpha, beta, seq);
                llm::gemm<Backend>(c.view, a.view, b.view, alpha, beta, exec);
                INFO("m=", m, " k=", k, " n=", n, " layouts ", int(la), int(lb), int(lc), " beta=", beta);
                CHECK(rel_error(c.view, expected.view) < fp32_tolerance);
            }
        }
    }
}

struct size3 {
    std::size_t m, k, n;
};
// Awkward sizes: edges of every micro-tile shape, GEMV (m = 1 and n = 1), k = 1, and sizes
// that cross the KC (256 on AVX2, 512 on AVX-512: k 1000) and MC (120 on AVX2, 516 on AVX-512:
// m 345 and 530) block boundaries: one A block (B packed a pair of panels at a time) and several.
constexpr size3 awkward[] = {{1, 1, 1},     {1, 7, 63},  {7, 63, 65},    {65, 1000, 7}, {1, 513, 129},
                             {129, 300, 1}, {63, 1, 65}, {29, 257, 100}, {345, 70, 67}, {530, 70, 131}};

}  // namespace gemm_test
