// SPDX-License-Identifier: Apache-2.0
// Tests of llm::extents and llm::dims: static/dynamic mixing, conversions, checks, zero cost.
#include <llm/tensor/extents.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <span>
#include <type_traits>

namespace {

using llm::dyn;

static_assert(llm::dyn == std::dynamic_extent);

// Static extents carry no data: an all-static extents is an empty class, and each dynamic
// dimension costs exactly one std::size_t.
static_assert(std::is_empty_v<llm::extents<3, 4>>);
static_assert(sizeof(llm::extents<3, 4>) == 1);
static_assert(std::is_empty_v<llm::extents<>>);
static_assert(sizeof(llm::extents<dyn, 64>) == sizeof(std::size_t));
static_assert(sizeof(llm::extents<dyn, 8, dyn>) == 2 * sizeof(std::size_t));
static_assert(std::is_trivially_copyable_v<llm::dims<3>>);

static_assert(std::is_same_v<llm::dims<2>, llm::extents<dyn, dyn>>);
static_assert(std::is_same_v<llm::dims<0>, llm::extents<>>);
static_assert(llm::extents_like<llm::extents<1, dyn>> && llm::extents_like<const llm::dims<2>>);
static_assert(!llm::extents_like<int> && !llm::extents_like<std::array<std::size_t, 2>>);

// Everything about static extents is a constant expression.
static_assert(llm::extents<3, dyn, 5>::rank() == 3);
static_assert(llm::extents<3, dyn, 5>::rank_dynamic() == 1);
static_assert(llm::extents<3, dyn, 5>::static_extent(1) == dyn);
static_assert(llm::extents<3, 4>{}.size() == 12);
static_assert(llm::extents<3, dyn, 5>(7).extent(1) == 7);
static_assert(llm::extents<3, dyn, 5>(7).size() == 105);
static_assert(llm::extents<>{}.size() == 1);

// Conversions: static -> dynamic implicit; dynamic -> static explicit; contradictory
// static extents not at all.
static_assert(std::is_convertible_v<llm::extents<3, 4>, llm::dims<2>>);
static_assert(std::is_convertible_v<llm::extents<3, 4>, llm::extents<dyn, 4>>);
static_assert(!std::is_convertible_v<llm::dims<2>, llm::extents<3, 4>>);
static_assert(std::is_constructible_v<llm::extents<3, 4>, llm::dims<2>>);
static_assert(!std::is_constructible_v<llm::extents<3, 4>, llm::extents<3, 5>>);
static_assert(!std::is_constructible_v<llm::extents<3, 4>, llm::dims<3>>);
// Sizes: rank_dynamic() of them or rank() of them, nothing else.
static_assert(std::is_constructible_v<llm::extents<dyn, 4>, int>);
static_assert(std::is_constructible_v<llm::extents<dyn, 4>, int, int>);
static_assert(!std::is_constructible_v<llm::extents<dyn, 4>, int, int, int>);
static_assert(!std::is_convertible_v<int, llm::extents<dyn>>);  // explicit

}  // namespace

TEST_CASE("extents: dynamic dimensions hold their run-time values") {
    const llm::extents<dyn, 64, dyn> e(5, 7);
    CHECK(e.rank() == 3);
    CHECK(e.rank_dynamic() == 2);
    CHECK(e.extent(0) == 5);
    CHECK(e.extent(1) == 64);
    CHECK(e.extent(2) == 7);
    CHECK(e.size() == 5 * 64 * 7);
    CHECK(e.static_extent(0) == dyn);
    CHECK(e.static_extent(1) == 64);
}

TEST_CASE("extents: all rank() sizes may be given; static ones must match") {
    const llm::extents<dyn, 64> e(5, 64);
    CHECK(e.extent(0) == 5);
    CHECK_THROWS_WITH_AS((llm::extents<dyn, 64>(5, 63)), "extents: dim 1 is static with extent 64 but 63 was given",
                         llm::error);
    CHECK_THROWS_AS((llm::extents<3, 4>(std::array<std::size_t, 2>{3, 5})), llm::error);
}

TEST_CASE("extents: default construction zeroes the dynamic dimensions") {
    const llm::extents<dyn, 4> e;
    CHECK(e.extent(0) == 0);
    CHECK(e.extent(1) == 4);
    CHECK(e.size() == 0);
}

TEST_CASE("extents: from std::array and by deduction") {
    const llm::dims<3> a(std::array<std::size_t, 3>{2, 3, 4});
    CHECK(a.size() == 24);
    const llm::extents deduced(2u, 3u);
    static_assert(std::is_same_v<std::remove_const_t<decltype(deduced)>, llm::dims<2>>);
    CHECK(deduced.extent(1) == 3);
}

TEST_CASE("extents: conversions keep the values and check static landings") {
    const llm::extents<3, 4> s;
    const llm::dims<2> d = s;
    CHECK(d.extent(0) == 3);
    CHECK(d.extent(1) == 4);
    const llm::extents<3, 4> back(d);
    CHECK(back == s);
    CHECK_THROWS_WITH_AS((llm::extents<3, 4>(llm::dims<2>(3, 5))), "extents: dim 1 is static with extent 4 but 5 was given",
                         llm::error);
}

TEST_CASE("extents: equality compares values across static and dynamic") {
    CHECK(llm::extents<3, 4>{} == llm::dims<2>(3, 4));
    CHECK_FALSE(llm::extents<3, 4>{} == llm::dims<2>(4, 3));
    CHECK_FALSE(llm::extents<3, 4>{} == llm::dims<3>(3, 4, 1));
    CHECK(llm::extents<>{} == llm::dims<0>{});
}

TEST_CASE("extents: zero-size dimensions are allowed") {
    const llm::extents<0, dyn> e(5);
    CHECK(e.size() == 0);
    const llm::dims<3> z(4, 0, 2);
    CHECK(z.size() == 0);
    CHECK(z.extent(2) == 2);
}

TEST_CASE("extents: shape_string formats the extents for messages") {
    CHECK(llm::detail::tensor_impl::shape_string(llm::extents<dyn, 4>(3)) == "[3, 4]");
    CHECK(llm::detail::tensor_impl::shape_string(llm::extents<>{}) == "[]");
}
