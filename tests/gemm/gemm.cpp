// SPDX-License-Identifier: Apache-2.0
// Tests of llm::gemm: own backend (default and scalar SIMD) and Eigen against the double-accumulating reference.
#include <llm/gemm/eigen.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

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
                llm::gemm<llm::blas::reference>(a.view, b.view, expected.view, alpha, beta, seq);
                llm::gemm<Backend>(a.view, b.view, c.view, alpha, beta, exec);
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
// that cross the KC (256) and MC (336) block boundaries.
constexpr size3 awkward[] = {{1, 1, 1},   {1, 7, 63},   {7, 63, 65}, {65, 1000, 7}, {1, 513, 129},
                             {129, 300, 1}, {63, 1, 65}, {29, 257, 100}, {345, 70, 67}};

using own_default = llm::blas::own<>;
using own_scalar = llm::blas::own<llm::simd::scalar>;

}  // namespace

TEST_CASE_TEMPLATE("gemm own backend matches the reference on awkward sizes and layouts", Backend, own_default, own_scalar) {
    llm::parallel::thread_pool pool(2);
    llm::parallel::sequential seq;
    for (const auto& s : awkward) {
        check_against_reference<Backend, float>(s.m, s.k, s.n, pool, 1.0f, 0.0f);
        check_against_reference<Backend, float>(s.m, s.k, s.n, seq, -0.5f, 0.75f);
    }
}

TEST_CASE("gemm own backend with bf16 inputs matches the reference on the same bf16 values") {
    llm::parallel::thread_pool pool(2);
    for (const auto& s : awkward) {
        check_against_reference<own_default, llm::bf16>(s.m, s.k, s.n, pool, 1.5f, 0.0f);
    }
}

TEST_CASE("gemm own backend: a block-crossing size with 2 threads and both GEMV orientations") {
    llm::parallel::thread_pool pool(2);
    check_against_reference<own_default, float>(700, 520, 4100, pool, 1.0f, 1.0f, false);
    check_against_reference<own_default, float>(1, 4100, 700, pool, 2.0f, 0.0f, false);
    check_against_reference<own_default, llm::bf16>(1, 1000, 1031, pool, 1.0f, 0.5f);
}

#if LLM_HAS_EIGEN
TEST_CASE("gemm eigen backend matches the reference") {
    llm::parallel::sequential seq;
    for (const auto& s : awkward) {
        check_against_reference<llm::blas::eigen, float>(s.m, s.k, s.n, seq, 1.0f, 0.0f);
    }
    check_against_reference<llm::blas::eigen, llm::bf16>(7, 63, 65, seq, 1.0f, 2.0f);
}
#endif

TEST_CASE("gemm reference is exact on small integers") {
    // 2x3 * 3x2 with integer values: every product and sum is exact in fp32.
    llm::tensor<float, llm::dims<2>> a(2, 3), b(3, 2), c(2, 2);
    const float av[] = {1, 2, 3, 4, 5, 6}, bv[] = {7, 8, 9, 10, 11, 12};
    for (std::size_t i = 0; i < 6; ++i) {
        a(i / 3, i % 3) = av[i];
        b(i / 2, i % 2) = bv[i];
    }
    llm::gemm<llm::blas::reference>(a, b, c);
    CHECK(c(0, 0) == 58);
    CHECK(c(0, 1) == 64);
    CHECK(c(1, 0) == 139);
    CHECK(c(1, 1) == 154);
    llm::gemm(a, b, c, 1.0f, -1.0f);  // own: C = A B - C = 0
    CHECK(c(0, 0) == 0);
    CHECK(c(1, 1) == 0);
}

TEST_CASE("gemm zero-size dimensions have defined results") {
    llm::tensor<float, llm::dims<2>> a(3, 0), b(0, 4), c(3, 4);
    llm::fill(c, 2.0f);
    llm::gemm(a, b, c, 1.0f, 0.5f);  // k = 0: C = beta * C
    CHECK(c(2, 3) == 1.0f);
    llm::fill(c, NAN);
    llm::gemm(a, b, c, 1.0f, 0.0f);  // beta = 0 overwrites even NaN
    CHECK(c(0, 0) == 0.0f);
    llm::tensor<float, llm::dims<2>> e(0, 5), f(5, 4), g(0, 4);
    llm::gemm(e, f, g);  // m = 0: nothing to do, no throw
}

TEST_CASE("gemm rejects mismatched shapes naming them") {
    llm::tensor<float, llm::dims<2>> a(3, 4), b(5, 6), c(3, 6), d(2, 6), bk(4, 6);
    CHECK_THROWS_WITH_AS(llm::gemm(a, b, c), "gemm: A is 3 x 4 but B is 5 x 6; A columns must equal B rows", llm::error);
    CHECK_THROWS_WITH_AS(llm::gemm(a, bk, d), "gemm: C is 2 x 6 but A * B is 3 x 6", llm::error);
    CHECK_THROWS_AS(llm::gemm<llm::blas::reference>(a, b, c), llm::error);
}
