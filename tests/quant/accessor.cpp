// SPDX-License-Identifier: Apache-2.0
// llm::quant accessors: a tensor_view over quantized rows reads, element for element, exactly what the block
// dequantizer writes (Q8_0, Q4_0, and block_accessor<F> for Q8_0 and Q4_K), through operator(), slices of
// whole blocks, transpose and reshape; offsets inside a block and bad matrix sizes are llm::error.
#include <llm/quant/accessor.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace q = llm::quant;
using llm::dyn;

template <class A, class E = llm::dims<2>>
using qview = llm::tensor_view<const float, E, llm::layout_right, llm::cpu, A>;

// Empty accessors: a quantized view is a block pointer plus its mapping, nothing more.
static_assert(sizeof(qview<q::q8_0_accessor, llm::extents<4, 64>>) == sizeof(const q::block_q8_0*));
static_assert(sizeof(qview<q::q4_0_accessor, llm::extents<dyn, 64>>) == sizeof(void*) + sizeof(std::size_t));
static_assert(std::is_same_v<decltype(std::declval<qview<q::q8_0_accessor>>().data()), const q::block_q8_0*>);
static_assert(std::is_same_v<qview<q::q8_0_accessor>::reference, float>);
static_assert(q::block_accessor_policy<q::block_accessor<q::q4_k>> && q::block_accessor_policy<q::q4_0_accessor>);

// Dense kernels, fill, copy and printing refuse quantized views at compile time; views.hpp takes them.
template <class V>
concept fillable = requires(V v) { llm::fill(v, 1.0f); };
static_assert(!llm::view_of_rank<qview<q::q8_0_accessor>, 2> && !llm::dense_view<qview<q::q8_0_accessor>, 2>);
static_assert(!llm::readable_host_view<qview<q::q8_0_accessor>> && !fillable<qview<q::q8_0_accessor>>);
static_assert(llm::viewable<qview<q::q8_0_accessor>>);
// Accessors do not mix: a Q8_0 view is not a Q4_0 one, nor a plain float view.
static_assert(!std::is_constructible_v<qview<q::q4_0_accessor>, qview<q::q8_0_accessor>>);
static_assert(!std::is_constructible_v<llm::tensor_view<const float, llm::dims<2>>, qview<q::q8_0_accessor>>);
static_assert(std::is_convertible_v<qview<q::q8_0_accessor, llm::extents<4, 64>>, qview<q::q8_0_accessor>>);

std::vector<float> weights(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(n);
    for (float& x : w) x = normal(rng);
    return w;
}

// Bit equality, so that -0.0 and +0.0 are told apart too.
bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// Every element of v (rows x cols) against the dequantizer's output: exact, since each accessor
// computes the dequantizer's single rounding (code * d) or calls the dequantizer itself.
template <class V>
void check_all(const V& v, const std::vector<float>& oracle, std::size_t rows, std::size_t cols) {
    REQUIRE(v.extent(0) == rows);
    REQUIRE(v.extent(1) == cols);
    std::size_t bad = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            if (!same_bits(v(r, c), oracle[r * cols + c])) {
                if (bad++ < 5) FAIL_CHECK("element (" << r << ", " << c << "): " << v(r, c) << " != " << oracle[r * cols + c]);
            }
        }
    }
    CHECK(bad == 0);
}

template <class F, class A>
void check_format(std::size_t rows, std::size_t cols, unsigned seed) {
    CAPTURE(std::string(F::name));
    const std::vector<float> w = weights(rows * cols, seed);
    const std::vector<typename F::block> blocks = q::quantize<F>(w);
    const std::vector<float> oracle = q::dequantize<F>(std::span<const typename F::block>(blocks));
    const auto v = q::matrix_view<A>(blocks, rows, cols);
    static_assert(std::is_same_v<std::remove_const_t<decltype(v)>, qview<A>>);
    CHECK(v.data() == blocks.data());
    check_all(v, oracle, rows, cols);
    // The at() path too, on the last element.
    CHECK(same_bits(v.at(rows - 1, cols - 1), oracle.back()));
    CHECK_THROWS_AS((void)v.at(rows, 0), llm::error);

    constexpr std::size_t b = F::block_size;
    // A row is a whole number of blocks: select<0> and slice<0> keep layout_right.
    for (std::size_t r = 0; r < rows; ++r) {
        const auto row = llm::select<0>(v, r);
        static_assert(std::is_same_v<std::remove_const_t<decltype(row)>, qview<A, llm::dims<1>>>);
        CHECK(row.data() == blocks.data() + r * (cols / b));
        for (std::size_t c = 0; c < cols; ++c) {
            CHECK(same_bits(row(c), oracle[r * cols + c]));
        }
    }
    const auto tail = llm::slice<0>(v, 1, rows);
    CHECK(tail.data() == blocks.data() + cols / b);
    check_all(tail, std::vector<float>(oracle.begin() + static_cast<std::ptrdiff_t>(cols), oracle.end()), rows - 1, cols);
    // A column range of whole blocks, and a tile starting on a block boundary.
    const auto right = llm::slice<1>(v, b, cols);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols - b; ++c) {
            CHECK(same_bits(right(r, c), oracle[r * cols + b + c]));
        }
    }
    const auto tile = llm::subtensor(v, {1, b}, {rows - 1, b});
    CHECK(same_bits(tile(rows - 2, b - 1), oracle[(rows - 1) * cols + 2 * b - 1]));
    // transpose and reshape take no offset: any shape works.
    const auto t = llm::transpose<0, 1>(v);
    CHECK(same_bits(t(cols - 1, 0), oracle[cols - 1]));
    CHECK(same_bits(t(3, rows - 1), oracle[(rows - 1) * cols + 3]));
    const auto flat = llm::reshape(v, rows * cols);
    for (std::size_t i = 0; i < rows * cols; ++i) {
        CHECK(same_bits(flat(i), oracle[i]));
    }
    // An offset inside a block is refused, naming the offset and the block size.
    CHECK_THROWS_WITH_AS(llm::slice<1>(v, 1, cols), doctest::Contains("offset 1 is not a multiple of the block size"),
                         llm::error);
    CHECK_THROWS_AS(llm::select<1>(v, b + 3), llm::error);
    CHECK_THROWS_AS(llm::slice(flat, 0, b / 2, b), llm::error);
    // An empty slice takes offset 0 and keeps the handle.
    CHECK(llm::slice<1>(v, 5, 5).data() == blocks.data());
}

TEST_CASE("quant accessor: q8_0_accessor reads every element as dequantize<q8_0> writes it") {
    check_format<q::q8_0, q::q8_0_accessor>(5, 96, 1);
}

TEST_CASE("quant accessor: q4_0_accessor reads every element as dequantize<q4_0> writes it") {
    check_format<q::q4_0, q::q4_0_accessor>(5, 96, 2);
}

TEST_CASE("quant accessor: block_accessor<F> decodes through F::dequantize_block (Q8_0, Q4_K)") {
    check_format<q::q8_0, q::block_accessor<q::q8_0>>(3, 64, 3);
    check_format<q::q4_k, q::block_accessor<q::q4_k>>(3, 512, 4);
}

TEST_CASE("quant accessor: q8_0_accessor's value is d * q of the block") {
    // Hand-made blocks: the value is the code times the f16 scale, exactly (0.5 and small codes).
    q::block_q8_0 blocks[2]{};
    blocks[0].d = llm::f16(0.5f);
    blocks[1].d = llm::f16(-2.0f);
    for (int j = 0; j < 32; ++j) {
        blocks[0].qs[j] = static_cast<std::int8_t>(j - 16);
        blocks[1].qs[j] = static_cast<std::int8_t>(j);
    }
    const qview<q::q8_0_accessor, llm::extents<2, 32>> v(blocks);
    CHECK(v(0, 0) == -8.0f);
    CHECK(v(0, 31) == 7.5f);
    CHECK(v(1, 5) == -10.0f);
    CHECK(q::q8_0_accessor{}.offset(blocks, 32) == blocks + 1);
    CHECK_THROWS_WITH_AS((void)q::q8_0_accessor{}.offset(blocks, 33),
                         "q8_0_accessor::offset: element offset 33 is not a multiple of the block size 32 (views of "
                         "quantized blocks start on a block boundary: slice whole blocks)",
                         llm::error);
}

TEST_CASE("quant accessor: matrix_view checks the block count and the row length") {
    const std::vector<q::block_q8_0> blocks(6);
    CHECK(q::matrix_view<q::q8_0_accessor>(blocks, 2, 96).extent(0) == 2);
    CHECK(q::matrix_view<q::q8_0_accessor>(blocks, 3, 64).extent(1) == 64);
    CHECK_THROWS_WITH_AS(q::matrix_view<q::q8_0_accessor>(blocks, 2, 100),
                         "matrix_view<q8_0>: cols = 100 is not a multiple of the block size 32", llm::error);
    CHECK_THROWS_WITH_AS(q::matrix_view<q::q8_0_accessor>(blocks, 2, 64),
                         "matrix_view<q8_0>: 6 blocks do not hold 2 rows of 64 values (2 blocks each)", llm::error);
    CHECK_THROWS_AS(q::matrix_view<q::q8_0_accessor>(blocks, 0, 64), llm::error);
    CHECK_THROWS_AS(q::matrix_view<q::q8_0_accessor>(blocks, std::size_t{1} << 62, 64), llm::error);
    CHECK(q::matrix_view<q::q8_0_accessor>(std::span<const q::block_q8_0>(), 0, 64).empty());
}

}  // namespace
