// SPDX-License-Identifier: Apache-2.0
// Tests of the layout policies against hand-computed offsets, strides, spans and uniqueness.
#include <llm/tensor/layout.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <set>
#include <type_traits>

namespace {

using llm::dyn;

static_assert(llm::layout_policy<llm::layout_right>);
static_assert(llm::layout_policy<llm::layout_left>);
static_assert(llm::layout_policy<llm::layout_strided>);
struct not_a_layout {};
static_assert(!llm::layout_policy<not_a_layout>);
static_assert(!llm::layout_policy<int>);

// A layout_right / layout_left mapping of fully static extents is empty; its offsets are
// constant expressions.
static_assert(std::is_empty_v<llm::layout_right::mapping<llm::extents<3, 4>>>);
static_assert(std::is_empty_v<llm::layout_left::mapping<llm::extents<3, 4>>>);
static_assert(sizeof(llm::layout_right::mapping<llm::extents<dyn, 4>>) == sizeof(std::size_t));
static_assert(llm::layout_right::mapping<llm::extents<3, 4>>{}(1, 2) == 6);
static_assert(llm::layout_left::mapping<llm::extents<3, 4>>{}(1, 2) == 7);
static_assert(llm::layout_right::mapping<llm::extents<>>{}() == 0);

// Every offset of a mapping, by brute force: checks offsets are within the span and, for
// unique mappings, distinct.
template <class M>
void check_offsets_in_span(const M& m) {
    std::set<std::size_t> seen;
    const auto& e = m.extents();
    for (std::size_t i = 0; i < e.extent(0); ++i) {
        for (std::size_t j = 0; j < e.extent(1); ++j) {
            for (std::size_t k = 0; k < e.extent(2); ++k) {
                const std::size_t off = m(i, j, k);
                CHECK(off < m.required_span_size());
                seen.insert(off);
            }
        }
    }
    if (m.is_unique()) {
        CHECK(seen.size() == e.size());
    }
    if (m.is_exhaustive()) {
        CHECK(seen.size() == m.required_span_size());
        CHECK(seen.size() == e.size());
    }
    if (m.is_contiguous()) {  // offsets are the row-major linear indices
        std::size_t linear = 0;
        for (std::size_t i = 0; i < e.extent(0); ++i) {
            for (std::size_t j = 0; j < e.extent(1); ++j) {
                for (std::size_t k = 0; k < e.extent(2); ++k) {
                    CHECK(m(i, j, k) == linear++);
                }
            }
        }
    }
}

}  // namespace

TEST_CASE("layout_right: row-major offsets and strides for awkward sizes") {
    const llm::layout_right::mapping<llm::extents<dyn, 7, dyn>> m(llm::extents<dyn, 7, dyn>(5, 3));
    CHECK(m.stride(0) == 21);
    CHECK(m.stride(1) == 3);
    CHECK(m.stride(2) == 1);
    CHECK(m(0, 0, 0) == 0);
    CHECK(m(0, 0, 2) == 2);
    CHECK(m(0, 1, 0) == 3);
    CHECK(m(4, 6, 2) == 4 * 21 + 6 * 3 + 2);
    CHECK(m(2, 5, 1) == 2 * 21 + 5 * 3 + 1);
    CHECK(m.required_span_size() == 105);
    CHECK(m.is_unique());
    CHECK(m.is_exhaustive());
    CHECK(m.is_contiguous());
    check_offsets_in_span(m);
}

TEST_CASE("layout_left: column-major offsets and strides for awkward sizes") {
    const llm::layout_left::mapping<llm::dims<3>> m(llm::dims<3>(5, 7, 3));
    CHECK(m.stride(0) == 1);
    CHECK(m.stride(1) == 5);
    CHECK(m.stride(2) == 35);
    CHECK(m(4, 6, 2) == 4 + 6 * 5 + 2 * 35);
    CHECK(m(1, 0, 0) == 1);
    CHECK(m(0, 1, 0) == 5);
    CHECK(m(3, 2, 1) == 3 + 2 * 5 + 35);
    CHECK(m.required_span_size() == 105);
    CHECK(m.is_exhaustive());
    CHECK_FALSE(m.is_contiguous());  // dense, but not in row-major order
    check_offsets_in_span(m);
    // Column-major is row-major when at most one extent exceeds 1.
    CHECK(llm::layout_left::mapping<llm::dims<3>>(llm::dims<3>(1, 7, 1)).is_contiguous());
    CHECK(llm::layout_left::mapping<llm::dims<2>>(llm::dims<2>(0, 7)).is_contiguous());
    static_assert(llm::layout_left::mapping<llm::dims<1>>::is_always_contiguous());
}

TEST_CASE("layout_strided: explicit strides, spans, uniqueness and contiguity") {
    using M = llm::layout_strided::mapping<llm::dims<3>>;
    SUBCASE("padded rows") {
        const M m(llm::dims<3>(2, 3, 5), {24, 8, 1});  // rows of 5 padded to 8
        CHECK(m(1, 2, 4) == 24 + 16 + 4);
        CHECK(m.required_span_size() == 1 + 24 + 16 + 4);
        CHECK(m.is_unique());
        CHECK_FALSE(m.is_exhaustive());
        CHECK_FALSE(m.is_contiguous());
        check_offsets_in_span(m);
    }
    SUBCASE("row-major strides are contiguous") {
        const M m(llm::dims<3>(2, 3, 5), {15, 5, 1});
        CHECK(m.is_exhaustive());
        CHECK(m.is_contiguous());
        check_offsets_in_span(m);
    }
    SUBCASE("a permutation of row-major strides is exhaustive, not contiguous") {
        const M m(llm::dims<3>(2, 3, 5), {1, 10, 2});  // extents 2,5 are inner, 3 outer
        CHECK(m(1, 2, 4) == 1 + 20 + 8);
        CHECK(m.is_unique());
        CHECK(m.is_exhaustive());
        CHECK_FALSE(m.is_contiguous());
        CHECK(m.required_span_size() == 30);
        check_offsets_in_span(m);
    }
    SUBCASE("stride 0 broadcasts and is not unique") {
        const M m(llm::dims<3>(4, 3, 5), {0, 5, 1});
        CHECK(m(3, 2, 4) == m(0, 2, 4));
        CHECK_FALSE(m.is_unique());
        CHECK_FALSE(m.is_exhaustive());
        CHECK_FALSE(m.is_contiguous());
        CHECK(m.required_span_size() == 15);
        check_offsets_in_span(m);
    }
    SUBCASE("overlapping strides are not unique") {
        const M m(llm::dims<3>(1, 4, 4), {100, 3, 1});
        CHECK(m(0, 1, 0) == m(0, 0, 3));
        CHECK_FALSE(m.is_unique());
    }
    SUBCASE("extents of 1 ignore their stride") {
        const M m(llm::dims<3>(1, 3, 1), {999, 1, 7});
        CHECK(m.is_unique());
        CHECK(m.is_exhaustive());
        CHECK(m.is_contiguous());
        CHECK(m.required_span_size() == 3);
    }
    SUBCASE("zero-size dimension: empty span, trivially unique and contiguous") {
        const M m(llm::dims<3>(3, 0, 2), {7, 2, 1});
        CHECK(m.required_span_size() == 0);
        CHECK(m.is_unique());
        CHECK(m.is_exhaustive());
        CHECK(m.is_contiguous());
    }
}

TEST_CASE("layout_strided: from extents alone it is row-major; from other layouts it copies strides") {
    const llm::layout_strided::mapping<llm::dims<2>> rm(llm::dims<2>(3, 4));
    CHECK(rm.stride(0) == 4);
    CHECK(rm.stride(1) == 1);
    const llm::layout_left::mapping<llm::extents<3, 4>> left;
    const llm::layout_strided::mapping<llm::dims<2>> from_left = left;
    CHECK(from_left.stride(0) == 1);
    CHECK(from_left.stride(1) == 3);
    CHECK(from_left(2, 3) == left(2, 3));
    CHECK(from_left.is_exhaustive());
    CHECK_FALSE(from_left.is_contiguous());
    const llm::layout_right::mapping<llm::extents<3, 4>> right;
    CHECK(llm::layout_strided::mapping<llm::dims<2>>(right) == rm);
    CHECK_FALSE(from_left == rm);
}

TEST_CASE("layout mappings convert with their extents") {
    const llm::layout_right::mapping<llm::extents<3, 4>> s;
    const llm::layout_right::mapping<llm::dims<2>> d = s;
    CHECK(d(2, 3) == 11);
    const llm::layout_right::mapping<llm::extents<3, 4>> back(d);
    CHECK(back == d);
    static_assert(!std::is_convertible_v<llm::layout_right::mapping<llm::dims<2>>,
                                         llm::layout_right::mapping<llm::extents<3, 4>>>);
    CHECK_THROWS_AS((llm::layout_right::mapping<llm::extents<3, 4>>(llm::layout_right::mapping<llm::dims<2>>(
                        llm::dims<2>(3, 5)))),
                    llm::error);
}

TEST_CASE("layouts with zero-size dimensions have an empty span") {
    const llm::layout_right::mapping<llm::dims<2>> r(llm::dims<2>(0, 5));
    CHECK(r.required_span_size() == 0);
    const llm::layout_left::mapping<llm::dims<2>> l(llm::dims<2>(5, 0));
    CHECK(l.required_span_size() == 0);
    CHECK(l.stride(1) == 5);
}
