// SPDX-License-Identifier: Apache-2.0
// Tests of llm::fill, llm::copy and llm::convert over every layout, with poisoned outputs.
#include <llm/core/bf16.hpp>
#include <llm/core/element_type.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/fp8.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using llm::dyn;

template <class S, class D>
concept copyable_between = requires(S s, D d) { llm::copy(s, d); };
template <class S, class D>
concept convertible_between = requires(S s, D d) { llm::convert(s, d); };

// Type rules: copy keeps the element type (convert changes it); ranks match at compile time;
// the destination is writable host memory.
static_assert(copyable_between<llm::tensor_view<const float, llm::dims<1>>, llm::tensor_view<float, llm::dims<1>>>);
static_assert(!copyable_between<llm::tensor_view<const float, llm::dims<1>>, llm::tensor_view<const float, llm::dims<1>>>);
static_assert(!copyable_between<llm::tensor_view<const float, llm::dims<1>>, llm::tensor_view<double, llm::dims<1>>>);
static_assert(!copyable_between<llm::tensor_view<const float, llm::dims<1>>,
                                llm::tensor_view<float, llm::dims<1>, llm::layout_right, llm::cuda>>);
static_assert(!copyable_between<llm::tensor_view<const float, llm::dims<2>>, llm::tensor_view<float, llm::dims<1>>>);
static_assert(!convertible_between<llm::tensor_view<const float, llm::dims<2>>, llm::tensor_view<double, llm::dims<3>>>);
static_assert(convertible_between<llm::tensor_view<const float, llm::dims<1>>, llm::tensor_view<llm::bf16, llm::dims<1>>>);
static_assert(convertible_between<llm::tensor_view<const llm::fp8_e4m3, llm::dims<1>>, llm::tensor_view<double, llm::dims<1>>>);
static_assert(!convertible_between<llm::tensor_view<const float, llm::dims<1>>, llm::tensor_view<int, llm::dims<1>>>);
static_assert(!convertible_between<llm::tensor_view<const float, llm::dims<1>>, llm::tensor_view<const double, llm::dims<1>>>);

constexpr float poison = std::numeric_limits<float>::quiet_NaN();

template <class Tensor>
void poison_all(Tensor& t) {
    for (std::size_t i = 0; i < t.required_span_size(); ++i) {
        t.data()[i] = poison;
    }
}

llm::tensor<float, llm::dims<3>> random_tensor(std::size_t a, std::size_t b, std::size_t c, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist;
    llm::tensor<float, llm::dims<3>> t(a, b, c);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = dist(rng);
    }
    return t;
}

}  // namespace

TEST_CASE("fill: contiguous, strided and empty views; only the view's elements change") {
    llm::tensor<float, llm::dims<2>> t(7, 65);
    llm::fill(t, 2.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        CHECK(t.data()[i] == 2.0f);
    }
    llm::fill(llm::slice(t, 1, 3, 60), -1.0f);
    for (std::size_t i = 0; i < 7; ++i) {
        for (std::size_t j = 0; j < 65; ++j) {
            CHECK(t(i, j) == ((j >= 3 && j < 60) ? -1.0f : 2.0f));
        }
    }
    llm::fill(llm::select(t, 1, 64), 5.0f);  // a column: stride 65
    CHECK(t(6, 64) == 5.0f);
    CHECK(t(6, 63) == 2.0f);
    llm::fill(llm::slice(t, 0, 2, 2), 9.0f);  // empty: nothing happens
    CHECK(t(2, 0) == 2.0f);
    llm::tensor<float, llm::extents<>> scalar;
    llm::fill(scalar, 4.0f);
    CHECK(scalar() == 4.0f);
    float broadcast = 0;
    const llm::tensor_view<float, llm::dims<2>, llm::layout_strided> b(
        &broadcast, llm::layout_strided::mapping<llm::dims<2>>(llm::dims<2>(3, 4), {0, 0}));
    llm::fill(b, 3.0f);  // non-unique destination: allowed, every element is the same value
    CHECK(broadcast == 3.0f);
}

TEST_CASE("copy: between every pair of layouts, awkward sizes, against the source values") {
    for (const auto& shape : {std::array<std::size_t, 3>{1, 1, 1}, {1, 7, 63}, {3, 65, 2}, {7, 1, 9}, {2, 3, 1000}}) {
        const auto src = random_tensor(shape[0], shape[1], shape[2], 7);
        llm::tensor<float, llm::dims<3>> right(shape[0], shape[1], shape[2]);
        llm::tensor<float, llm::dims<3>, llm::layout_left> left(shape[0], shape[1], shape[2]);
        using padded_t = llm::tensor<float, llm::dims<3>, llm::layout_strided>;
        padded_t padded(padded_t::mapping_type(llm::dims<3>(shape[0], shape[1], shape[2]),
                                               {(shape[1] * (shape[2] + 3)), shape[2] + 3, 1}));
        poison_all(right);
        poison_all(left);
        poison_all(padded);
        llm::copy(src, left);
        llm::copy(left, padded);
        llm::copy(padded, right);
        for (std::size_t i = 0; i < shape[0]; ++i) {
            for (std::size_t j = 0; j < shape[1]; ++j) {
                for (std::size_t k = 0; k < shape[2]; ++k) {
                    REQUIRE(left(i, j, k) == src(i, j, k));
                    REQUIRE(padded(i, j, k) == src(i, j, k));
                    REQUIRE(right(i, j, k) == src(i, j, k));
                }
            }
        }
        // Padding is never written (element shape[2] of the buffer is padding when a second row exists).
        if (shape[0] * shape[1] > 1) {
            CHECK(std::isnan(padded.data()[shape[2]]));
        }
    }
}

TEST_CASE("copy: a transpose into a row-major tensor materialises it") {
    const auto a = random_tensor(5, 7, 3, 11);
    llm::tensor<float, llm::dims<3>> at(3, 7, 5);
    poison_all(at);
    llm::copy(llm::transpose(a, 0, 2), at);
    for (std::size_t i = 0; i < 5; ++i) {
        for (std::size_t j = 0; j < 7; ++j) {
            for (std::size_t k = 0; k < 3; ++k) {
                REQUIRE(at(k, j, i) == a(i, j, k));
            }
        }
    }
    // Static destination extents, dynamic source extents.
    llm::tensor<float, llm::extents<7, 3>> row;
    llm::copy(llm::select(a, 0, 4), row);
    CHECK(row(6, 2) == a(4, 6, 2));
}

TEST_CASE("copy: shape mismatches and non-unique destinations throw") {
    const auto a = random_tensor(2, 3, 4, 1);
    llm::tensor<float, llm::dims<3>> b(2, 4, 3);
    CHECK_THROWS_WITH_AS(llm::copy(a, b), "copy: src extents [2, 3, 4] differ from dst extents [2, 4, 3]", llm::error);
    llm::tensor<float, llm::extents<2, 4, 3>> c;
    CHECK_THROWS_WITH_AS(llm::copy(a, c), "copy: src extents [2, 3, 4] differ from dst extents [2, 4, 3]", llm::error);
    float one = 0;
    const llm::tensor_view<float, llm::dims<3>, llm::layout_strided> broadcast(
        &one, llm::layout_strided::mapping<llm::dims<3>>(llm::dims<3>(2, 3, 4), {0, 0, 0}));
    CHECK_THROWS_WITH_AS(llm::copy(a, broadcast),
                         "copy: dst (extents [2, 3, 4]) has a non-unique layout (some elements share memory), so the result would depend on order",
                         llm::error);
    llm::tensor<float, llm::dims<3>> empty_a(0, 3, 4);
    llm::tensor<float, llm::dims<3>> empty_b(0, 3, 4);
    CHECK_NOTHROW(llm::copy(empty_a, empty_b));
}

TEST_CASE("convert: float <-> bf16 / f16 / fp8 round to nearest even, in any layout") {
    const auto src = random_tensor(3, 7, 65, 3);
    llm::tensor<llm::bf16, llm::dims<3>> b(3, 7, 65);
    llm::convert(src, b);
    llm::tensor<llm::f16, llm::dims<3>, llm::layout_left> h(3, 7, 65);
    llm::convert(src, h);
    llm::tensor<llm::fp8_e4m3, llm::dims<3>> q(3, 7, 65);
    llm::convert(llm::transpose(llm::transpose(src, 0, 2), 0, 2), q);
    llm::tensor<float, llm::dims<3>> back(3, 7, 65);
    poison_all(back);
    llm::convert(h, back);
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 7; ++j) {
            for (std::size_t k = 0; k < 65; ++k) {
                const float x = src(i, j, k);
                REQUIRE(b(i, j, k).bits() == llm::bf16(x).bits());
                REQUIRE(h(i, j, k).bits() == llm::f16(x).bits());
                REQUIRE(q(i, j, k).bits() == llm::fp8_e4m3(x).bits());
                REQUIRE(back(i, j, k) == static_cast<float>(llm::f16(x)));
            }
        }
    }
}

TEST_CASE("convert: double sources round once, not through float") {
    // 1 + 2^-8 + 2^-52: float rounds it to 1 + 2^-8 (a bf16 tie, which goes to even: 1.0);
    // rounded directly it is above the tie and becomes 1 + 2^-7.
    const double x = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -52);
    llm::tensor<double, llm::dims<1>> d(1);
    d(0) = x;
    llm::tensor<llm::bf16, llm::dims<1>> b(1);
    llm::convert(d, b);
    CHECK(static_cast<float>(b(0)) == 1.0f + 0x1p-7f);
    llm::tensor<double, llm::dims<1>> wide(1);
    llm::convert(b, wide);
    CHECK(wide(0) == 1.0 + 0x1p-7);
}

TEST_CASE("convert: saturate clamps overflow to the largest finite value") {
    llm::tensor<float, llm::dims<1>> big(3);
    big(0) = 1000.0f;
    big(1) = -1e9f;
    big(2) = 1.0f;
    llm::tensor<llm::fp8_e4m3, llm::dims<1>> q(3);
    llm::convert(big, q, llm::saturate);
    CHECK(static_cast<float>(q(0)) == 448.0f);
    CHECK(static_cast<float>(q(1)) == -448.0f);
    CHECK(static_cast<float>(q(2)) == 1.0f);
    llm::convert(big, q);
    CHECK(std::isnan(static_cast<float>(q(0))));  // e4m3 has no infinity: overflow is NaN
}

TEST_CASE("convert: shape mismatch throws") {
    llm::tensor<float, llm::dims<2>> a(2, 3);
    llm::tensor<llm::bf16, llm::dims<2>> b(3, 2);
    CHECK_THROWS_WITH_AS(llm::convert(a, b), "convert: src extents [2, 3] differ from dst extents [3, 2]", llm::error);
    llm::tensor<llm::bf16, llm::extents<2, 3>> ok;
    CHECK_NOTHROW(llm::convert(a, ok));
}
