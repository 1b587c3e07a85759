// SPDX-License-Identifier: Apache-2.0
// Tests of llm::tensor_view: zero-cost layout, construction, access, bounds checks, conversions, constness.
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

namespace {

using llm::dyn;
template <class T, class E, class L = llm::layout_right>
using view = llm::tensor_view<T, E, L>;

// A view with fully static extents and a layout_right / layout_left mapping is one pointer;
// each dynamic extent adds one size_t; a strided view adds its strides.
static_assert(sizeof(view<float, llm::extents<3, 4>>) == sizeof(float*));
static_assert(sizeof(view<float, llm::extents<3, 4>, llm::layout_left>) == sizeof(float*));
static_assert(sizeof(view<float, llm::extents<dyn, 64>>) == sizeof(float*) + sizeof(std::size_t));
static_assert(sizeof(view<float, llm::dims<2>>) == sizeof(float*) + 2 * sizeof(std::size_t));
static_assert(sizeof(view<float, llm::extents<3, 4>, llm::layout_strided>) == sizeof(float*) + 2 * sizeof(std::size_t));
static_assert(std::is_trivially_copyable_v<view<float, llm::dims<3>>>);

// Const-correctness: writing through a view of const elements does not compile, reading
// does; the view object's own constness does not matter (views are shallow, like std::span).
// (Concepts wrap the requires-expressions: outside a template an invalid requirement is an
// error rather than false.)
template <class V>
concept writable_through_call = requires(V v) { v(0, 0) = 1.0f; };
template <class V>
concept writable_through_at = requires(V v) { v.at(0, 0) = 1.0f; };
template <class V>
concept writable_through_data = requires(V v) { *v.data() = 1.0f; };
template <class V>
concept readable = requires(V v) { static_cast<float>(v(0, 0)); };
template <class V>
concept fillable = requires(V v) { llm::fill(v, 1.0f); };
template <class V>
concept callable_with_one_index = requires(V v) { v(0); };
template <class V>
concept callable_with_three_indices = requires(V v) { v(0, 0, 0); };
template <class V>
concept checked_access = requires(V v) { v.at(0); };

static_assert(writable_through_call<view<float, llm::dims<2>>>);
static_assert(writable_through_call<const view<float, llm::dims<2>>>);
static_assert(!writable_through_call<view<const float, llm::dims<2>>>);
static_assert(!writable_through_at<view<const float, llm::dims<2>>>);
static_assert(!writable_through_data<view<const float, llm::dims<2>>>);
static_assert(readable<view<const float, llm::dims<2>>>);
static_assert(fillable<view<float, llm::dims<2>>>);
static_assert(!fillable<view<const float, llm::dims<2>>>);

// Index arity is checked at compile time.
static_assert(!callable_with_one_index<view<float, llm::dims<2>>>);
static_assert(!callable_with_three_indices<view<float, llm::dims<2>>>);

// Conversions: adding const, forgetting static extents, and right/left -> strided are
// implicit; asserting static extents is explicit; removing const or strided -> right is not
// possible.
static_assert(std::is_convertible_v<view<float, llm::dims<2>>, view<const float, llm::dims<2>>>);
static_assert(!std::is_constructible_v<view<float, llm::dims<2>>, view<const float, llm::dims<2>>>);
static_assert(std::is_convertible_v<view<float, llm::extents<3, 4>>, view<const float, llm::dims<2>>>);
static_assert(!std::is_convertible_v<view<float, llm::dims<2>>, view<float, llm::extents<3, 4>>>);
static_assert(std::is_constructible_v<view<float, llm::extents<3, 4>>, view<float, llm::dims<2>>>);
static_assert(std::is_convertible_v<view<float, llm::dims<2>>, view<float, llm::dims<2>, llm::layout_strided>>);
static_assert(
    std::is_convertible_v<view<float, llm::dims<2>, llm::layout_left>, view<float, llm::dims<2>, llm::layout_strided>>);
static_assert(!std::is_constructible_v<view<float, llm::dims<2>>, view<float, llm::dims<2>, llm::layout_strided>>);
static_assert(!std::is_constructible_v<view<float, llm::dims<2>>, view<double, llm::dims<2>>>);
static_assert(!std::is_constructible_v<view<float, llm::dims<2>>, view<float, llm::dims<3>>>);
static_assert(!std::is_convertible_v<float*, view<float, llm::extents<4>>>);  // pointer alone: explicit

// Devices: a cuda view exists (kernels take it) but host code cannot touch its elements
// through the checked or whole-tensor entry points.
using cuda_view = llm::tensor_view<float, llm::dims<1>, llm::layout_right, llm::cuda>;
static_assert(!checked_access<cuda_view>);
static_assert(checked_access<view<float, llm::dims<1>>>);
static_assert(!fillable<cuda_view>);
static_assert(!std::is_convertible_v<cuda_view, view<float, llm::dims<1>>>);
static_assert(llm::device_tag<llm::cuda> && !llm::host_device_tag<llm::cuda>);
struct not_a_device {};
static_assert(!llm::device_tag<not_a_device>);
template <class D>
concept view_device = requires { typename llm::tensor_view<float, llm::dims<1>, llm::layout_right, D>; };
static_assert(view_device<llm::cuda> && !view_device<not_a_device>);

std::vector<float> iota(std::size_t n) {
    std::vector<float> v(n);
    std::iota(v.begin(), v.end(), 0.0f);
    return v;
}

}  // namespace

TEST_CASE("tensor_view: indexing a row-major buffer") {
    auto buf = iota(3 * 7);
    const view<float, llm::dims<2>> v(buf.data(), 3, 7);
    CHECK(v.rank() == 2);
    CHECK(v.extent(0) == 3);
    CHECK(v.extent(1) == 7);
    CHECK(v.stride(0) == 7);
    CHECK(v.stride(1) == 1);
    CHECK(v.size() == 21);
    CHECK(v.is_contiguous());
    CHECK(v.data() == buf.data());
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 7; ++j) {
            CHECK(v(i, j) == static_cast<float>(i * 7 + j));
        }
    }
    v(2, 6) = -1.0f;
    CHECK(buf[20] == -1.0f);
}

TEST_CASE("tensor_view: layout_left and layout_strided against hand-computed offsets") {
    auto buf = iota(200);
    const view<float, llm::extents<dyn, 5, 3>, llm::layout_left> l(buf.data(), 4);
    CHECK(l(3, 4, 2) == static_cast<float>(3 + 4 * 4 + 2 * 20));
    CHECK(l(1, 2, 0) == static_cast<float>(1 + 2 * 4));
    using strided = view<float, llm::dims<2>, llm::layout_strided>;
    const strided s(buf.data() + 3, strided::mapping_type(llm::dims<2>(5, 6), {13, 2}));
    CHECK(s(4, 5) == static_cast<float>(3 + 4 * 13 + 5 * 2));
    CHECK(s(1, 0) == 16.0f);
    CHECK(s.required_span_size() == 1 + 4 * 13 + 5 * 2);
    CHECK_FALSE(s.is_contiguous());
    CHECK(s.is_unique());
}

TEST_CASE("tensor_view: static, mixed and rank-0 views") {
    auto buf = iota(64 * 5);
    const view<const float, llm::extents<dyn, 64>> m(buf.data(), 5);
    CHECK(m.extent(1) == 64);
    CHECK(m(4, 63) == static_cast<float>(4 * 64 + 63));
    const view<const float, llm::extents<5, 64>> s(buf.data());
    CHECK(s(4, 63) == m(4, 63));
    float x = 3.5f;
    const view<float, llm::extents<>> scalar(&x);
    CHECK(scalar() == 3.5f);
    CHECK(scalar.size() == 1);
    CHECK(scalar.rank() == 0);
}

TEST_CASE("tensor_view: construction from all rank() sizes checks static ones") {
    auto buf = iota(64 * 5);
    const view<float, llm::extents<dyn, 64>> ok(buf.data(), 5, 64);
    CHECK(ok.extent(0) == 5);
    CHECK_THROWS_WITH_AS((view<float, llm::extents<dyn, 64>>(buf.data(), 5, 32)),
                         "extents: dim 1 is static with extent 64 but 32 was given", llm::error);
}

TEST_CASE("tensor_view: class template argument deduction gives all-dynamic row-major") {
    auto buf = iota(12);
    llm::tensor_view v(buf.data(), 3, 4);
    static_assert(std::is_same_v<decltype(v), view<float, llm::dims<2>>>);
    const float* cp = buf.data();
    llm::tensor_view c(cp, 12);
    static_assert(std::is_same_v<decltype(c), view<const float, llm::dims<1>>>);
    CHECK(v(2, 3) == c(11));
}

TEST_CASE("tensor_view: null data is refused unless the view is empty") {
    CHECK_THROWS_WITH_AS((view<float, llm::dims<2>>(nullptr, 3, 4)), "tensor_view: data pointer is null for extents [3, 4]",
                         llm::error);
    const view<float, llm::dims<2>> empty(nullptr, 3, 0);
    CHECK(empty.empty());
    CHECK(empty.size() == 0);
    const view<float, llm::dims<2>> defaulted;
    CHECK(defaulted.data() == nullptr);
    CHECK(defaulted.extent(0) == 0);
}

TEST_CASE("tensor_view: at() checks every index and names it") {
    auto buf = iota(12);
    const view<float, llm::dims<2>> v(buf.data(), 3, 4);
    CHECK(v.at(2, 3) == 11.0f);
    v.at(0, 1) = 7.0f;
    CHECK(buf[1] == 7.0f);
    CHECK_THROWS_WITH_AS(v.at(3, 0), "tensor_view::at: index 3 is out of range for dim 0 of extent 3 (indices [3, 0], extents [3, 4])",
                         llm::error);
    CHECK_THROWS_WITH_AS(v.at(1, 4), "tensor_view::at: index 4 is out of range for dim 1 of extent 4 (indices [1, 4], extents [3, 4])",
                         llm::error);
    CHECK_THROWS_WITH_AS(v.at(1, -1), "tensor_view::at: index -1 is out of range for dim 1 of extent 4 (indices [1, -1], extents [3, 4])",
                         llm::error);
    CHECK_THROWS_AS(v.at(std::int64_t{-5}, 0), llm::error);
    const view<float, llm::dims<2>> empty(buf.data(), 0, 4);
    CHECK_THROWS_AS(empty.at(0, 0), llm::error);
}

TEST_CASE("tensor_view: conversions keep pointer and mapping") {
    auto buf = iota(12);
    const view<float, llm::extents<3, 4>> s(buf.data());
    const view<const float, llm::dims<2>> d = s;
    CHECK(d.data() == s.data());
    CHECK(d.extent(0) == 3);
    CHECK(d(2, 1) == 9.0f);
    const view<const float, llm::dims<2>, llm::layout_strided> st = d;
    CHECK(st.stride(0) == 4);
    CHECK(st(2, 1) == 9.0f);
    const view<const float, llm::extents<3, 4>> back(d);
    CHECK(back(2, 1) == 9.0f);
    CHECK_THROWS_AS((view<const float, llm::extents<4, 3>>(d)), llm::error);
    const view<float, llm::dims<2>, llm::layout_left> l(buf.data(), 3, 4);
    const view<float, llm::dims<2>, llm::layout_strided> ls = l;
    CHECK(ls.stride(0) == 1);
    CHECK(ls.stride(1) == 3);
    CHECK(ls(2, 3) == l(2, 3));
}

TEST_CASE("tensor_view: view() is the view itself") {
    auto buf = iota(6);
    const view<float, llm::dims<1>> v(buf.data(), 6);
    static_assert(std::is_same_v<decltype(v.view()), view<float, llm::dims<1>>>);
    CHECK(v.view().data() == v.data());
    static_assert(llm::viewable<view<float, llm::dims<1>>>);
    static_assert(llm::viewable<const view<float, llm::dims<1>>&>);
    static_assert(!llm::viewable<std::vector<float>>);
}
