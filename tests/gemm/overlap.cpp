// SPDX-License-Identifier: Apache-2.0
// llm::gemm refuses a C that shares memory with A or B, and accepts disjoint blocks of one buffer.
#include <llm/gemm/gemm.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cstddef>

namespace {

using mat = llm::tensor<float, llm::dims<2>>;

mat filled(std::size_t rows, std::size_t cols, float base) {
    mat m(rows, cols);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            m(i, j) = base + static_cast<float>(i * cols + j) / 16.0f;
        }
    }
    return m;
}

// C = A * B computed from copies, so aliasing cannot affect the expected values. Small
// integers / 16 are exact in fp32 and their products sum exactly at these sizes.
template <class A, class B>
mat product(const A& a, const B& b) {
    mat c(a.extent(0), b.extent(1));
    for (std::size_t i = 0; i < a.extent(0); ++i) {
        for (std::size_t j = 0; j < b.extent(1); ++j) {
            double s = 0;
            for (std::size_t p = 0; p < a.extent(1); ++p) {
                s += static_cast<double>(a(i, p)) * b(p, j);
            }
            c(i, j) = static_cast<float>(s);
        }
    }
    return c;
}

template <class V>
void require_equal(const V& got, const mat& want) {
    for (std::size_t i = 0; i < want.extent(0); ++i) {
        for (std::size_t j = 0; j < want.extent(1); ++j) {
            REQUIRE(got(i, j) == want(i, j));
        }
    }
}

}  // namespace

TEST_CASE("gemm: C aliasing A or B is llm::error") {
    llm::parallel::sequential seq;
    mat a = filled(4, 4, 1.0f), b = filled(4, 4, 2.0f);
    CHECK_THROWS_WITH_AS(llm::gemm(a, a, b, 1.0f, 0.0f, seq),
                         "gemm: C (4 x 4, strides 4, 1) overlaps A (4 x 4, strides 4, 1); C must not share memory with "
                         "A or B",
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::gemm(b, a, b, 1.0f, 0.0f, seq), doctest::Contains("gemm: C (4 x 4, strides 4, 1) overlaps B"),
                         llm::error);
    // A transposed view of C's own memory overlaps too.
    CHECK_THROWS_WITH_AS(llm::gemm(a, llm::transpose(a, 0, 1), b, 1.0f, 0.0f, seq), doctest::Contains("overlaps A"),
                         llm::error);
}

TEST_CASE("gemm: C a sub-view overlapping part of B is llm::error") {
    llm::parallel::sequential seq;
    mat buf = filled(8, 6, 0.5f), a = filled(4, 4, 1.0f);
    auto b = llm::slice(buf, 0, 0, 4);  // rows 0..3
    auto c = llm::slice(buf, 0, 3, 7);  // rows 3..6: row 3 is shared
    CHECK_THROWS_WITH_AS(llm::gemm(c, a, b, 1.0f, 0.0f, seq), doctest::Contains("gemm: C (4 x 6, strides 6, 1) overlaps B"),
                         llm::error);
    // One shared element: C's first column against B's last column, B rows 0..3 and C rows 3..6.
    auto b_last = llm::slice(llm::slice(buf, 0, 0, 4), 1, 5, 6);   // 4 x 1
    auto c_first = llm::slice(llm::slice(buf, 0, 3, 7), 1, 0, 1);  // 4 x 1 at rows 3..6, column 0
    mat one = filled(4, 4, 1.0f);
    CHECK_NOTHROW(llm::gemm(c_first, one, b_last, 1.0f, 0.0f, seq));  // (3, 5) and (3, 0) differ: no overlap
    auto c_col5 = llm::slice(llm::slice(buf, 0, 3, 7), 1, 5, 6);      // shares element (3, 5) with b_last
    CHECK_THROWS_AS(llm::gemm(c_col5, one, b_last, 1.0f, 0.0f, seq), llm::error);
}

TEST_CASE("gemm: disjoint blocks of one buffer are accepted and computed exactly") {
    llm::parallel::sequential seq;
    SUBCASE("top and bottom rows, adjacent in memory") {
        mat buf = filled(8, 4, 0.25f), a = filled(4, 4, 1.0f);
        auto b = llm::slice(buf, 0, 0, 4);
        auto c = llm::slice(buf, 0, 4, 8);
        const mat want = product(a, b);
        llm::gemm(c, a, b, 1.0f, 0.0f, seq);
        require_equal(c, want);
    }
    SUBCASE("left and right columns, interleaved address ranges") {
        mat buf = filled(4, 8, 0.25f), b = filled(4, 4, 1.0f);
        auto a = llm::slice(buf, 1, 0, 4);  // columns 0..3
        auto c = llm::slice(buf, 1, 4, 8);  // columns 4..7
        const mat want = product(a, b);
        llm::gemm(c, a, b, 1.0f, 0.0f, seq);
        require_equal(c, want);
    }
    SUBCASE("C directly after A in one allocation") {
        mat buf = filled(2, 16, 0.5f), b = filled(4, 4, 1.0f);
        llm::tensor_view<float, llm::dims<2>> a44(buf.data(), llm::dims<2>(4, 4));
        llm::tensor_view<float, llm::dims<2>> c44(buf.data() + 16, llm::dims<2>(4, 4));
        const mat want = product(a44, b);
        llm::gemm(c44, a44, b, 1.0f, 0.0f, seq);
        require_equal(c44, want);
    }
}
