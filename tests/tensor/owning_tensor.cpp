// SPDX-License-Identifier: Apache-2.0
// Tests of llm::tensor and llm::aligned_buffer: alignment, zero-init, value semantics, views of owners.
#include <llm/core/bf16.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/storage.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using llm::dyn;

// The owner is the buffer (pointer + count) plus the mapping: static extents add nothing.
static_assert(sizeof(llm::tensor<float, llm::extents<3, 4>>) == sizeof(void*) + sizeof(std::size_t));
static_assert(sizeof(llm::tensor<float, llm::dims<2>>) == sizeof(void*) + 3 * sizeof(std::size_t));

// Value semantics: copyable and nothrow-movable.
static_assert(std::is_copy_constructible_v<llm::tensor<float, llm::dims<2>>>);
static_assert(std::is_nothrow_move_constructible_v<llm::tensor<float, llm::dims<2>>>);
static_assert(std::is_nothrow_move_assignable_v<llm::tensor<float, llm::dims<2>>>);

// Not owning: const elements, CUDA memory, non-trivially-copyable elements. (Checks of what
// must not compile go through concepts: a requires-expression outside a template with an
// invalid requirement is an error, not false.)
template <class T, class Device = llm::cpu>
concept ownable = requires { typename llm::tensor<T, llm::dims<1>, llm::layout_right, Device>; };
static_assert(!ownable<const float>);
static_assert(!ownable<float, llm::cuda>);
static_assert(!ownable<std::vector<int>>);
static_assert(ownable<llm::bf16> && ownable<float>);

// Deep constness, and no views of temporaries.
using t2 = llm::tensor<float, llm::dims<2>>;
template <class X>
concept assignable_element = requires(X&& x) { std::forward<X>(x)(0, 0) = 1.0f; };
template <class X>
concept has_view = requires(X&& x) { std::forward<X>(x).view(); };
template <class X>
concept sliceable = requires(X&& x) { llm::slice(std::forward<X>(x), 0, 0, 1); };
static_assert(!assignable_element<const t2&>);
static_assert(assignable_element<t2&>);
static_assert(std::is_same_v<decltype(std::declval<const t2&>().view()), llm::tensor_view<const float, llm::dims<2>>>);
static_assert(has_view<t2&> && has_view<const t2&>);
static_assert(!has_view<t2> && !has_view<const t2>);  // rvalues: the view would dangle
static_assert(!std::is_convertible_v<t2&&, llm::tensor_view<const float, llm::dims<2>>>);
static_assert(std::is_convertible_v<t2&, llm::tensor_view<float, llm::dims<2>>>);
static_assert(std::is_convertible_v<const t2&, llm::tensor_view<const float, llm::dims<2>>>);
static_assert(!std::is_convertible_v<const t2&, llm::tensor_view<float, llm::dims<2>>>);
static_assert(std::is_convertible_v<t2&, llm::tensor_view<const float, llm::dims<2>, llm::layout_strided>>);
static_assert(sliceable<t2&> && !sliceable<t2>);
static_assert(!std::is_convertible_v<std::size_t, llm::tensor<float, llm::dims<1>>>);  // sizes: explicit

bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % llm::tensor_alignment == 0; }

// A kernel-like function taking views: tensors bind to it without a copy.
float sum(llm::tensor_view<const float, llm::dims<2>> v) {
    float s = 0;
    for (std::size_t i = 0; i < v.extent(0); ++i) {
        for (std::size_t j = 0; j < v.extent(1); ++j) {
            s += v(i, j);
        }
    }
    return s;
}

}  // namespace

TEST_CASE_TEMPLATE("tensor: storage is 64-byte aligned and zero-initialised", T, float, double, llm::bf16, std::int8_t) {
    // Dirty the allocator first so that zeroes must come from the constructor.
    for (std::size_t n : {1u, 7u, 63u, 65u, 1000u}) {
        llm::tensor<T, llm::dims<1>> dirty(llm::uninitialized, n);
        std::memset(static_cast<void*>(dirty.data()), 0x5a, n * sizeof(T));
    }
    for (std::size_t n : {1u, 7u, 63u, 65u, 1000u}) {
        llm::tensor<T, llm::dims<1>> t(n);
        CHECK(aligned(t.data()));
        CHECK(t.size() == n);
        std::vector<unsigned char> zero(n * sizeof(T), 0);
        CHECK(std::memcmp(t.data(), zero.data(), n * sizeof(T)) == 0);
    }
}

TEST_CASE("tensor: construction from sizes, extents and mappings") {
    llm::tensor<float, llm::extents<dyn, 64>> a(5);
    CHECK(a.extent(0) == 5);
    CHECK(a.extent(1) == 64);
    CHECK(a.size() == 320);
    llm::tensor<float, llm::extents<dyn, 64>> b(5, 64);
    CHECK(b.size() == 320);
    CHECK_THROWS_WITH_AS((llm::tensor<float, llm::extents<dyn, 64>>(5, 63)),
                         "extents: dim 1 is static with extent 64 but 63 was given", llm::error);
    llm::tensor<float, llm::extents<3, 4>> s;
    CHECK(s.size() == 12);
    CHECK(s(2, 3) == 0.0f);
    llm::tensor<float, llm::dims<2>> d;
    CHECK(d.size() == 0);
    CHECK(d.data() == nullptr);
    llm::tensor<float, llm::dims<3>> e(llm::dims<3>(2, 3, 4));
    CHECK(e.size() == 24);
    llm::tensor<float, llm::dims<2>> u(llm::uninitialized, 3, 5);
    CHECK(u.size() == 15);
    CHECK(aligned(u.data()));
}

TEST_CASE("tensor: layout_left and padded layout_strided owners") {
    llm::tensor<float, llm::dims<2>, llm::layout_left> l(3, 4);
    l(2, 1) = 1.0f;
    CHECK(l.data()[2 + 1 * 3] == 1.0f);
    using padded = llm::tensor<float, llm::dims<2>, llm::layout_strided>;
    padded p(padded::mapping_type(llm::dims<2>(3, 5), {8, 1}));  // rows padded to 8
    CHECK(p.required_span_size() == 2 * 8 + 5);
    CHECK_FALSE(p.is_contiguous());
    p(2, 4) = 3.0f;
    CHECK(p.data()[2 * 8 + 4] == 3.0f);
    padded row_major(3, 5);
    CHECK(row_major.stride(0) == 5);
    CHECK(row_major.is_contiguous());
}

TEST_CASE("tensor: at() and operator()") {
    llm::tensor<int, llm::dims<2>> t(2, 3);
    t(1, 2) = 5;
    CHECK(t.at(1, 2) == 5);
    const auto& c = t;
    CHECK(c(1, 2) == 5);
    CHECK_THROWS_WITH_AS(t.at(2, 0), "tensor_view::at: index 2 is out of range for dim 0 of extent 2 (indices [2, 0], extents [2, 3])",
                         llm::error);
}

TEST_CASE("tensor: copies are deep, moves steal") {
    llm::tensor<float, llm::dims<2>> a(2, 3);
    a(1, 1) = 4.0f;
    llm::tensor<float, llm::dims<2>> b = a;
    CHECK(b.data() != a.data());
    CHECK(b(1, 1) == 4.0f);
    b(1, 1) = 5.0f;
    CHECK(a(1, 1) == 4.0f);
    llm::tensor<float, llm::dims<2>> c(7, 7);
    c = a;
    CHECK(c.extent(0) == 2);
    CHECK(c(1, 1) == 4.0f);
    CHECK(aligned(c.data()));

    const float* p = a.data();
    llm::tensor<float, llm::dims<2>> m = std::move(a);
    CHECK(m.data() == p);
    CHECK(m(1, 1) == 4.0f);
    CHECK(a.data() == nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is documented
    CHECK(a.size() == 0);
    c = std::move(m);
    CHECK(c.data() == p);
    CHECK(m.size() == 0);
}

TEST_CASE("tensor: converts to views without copying") {
    llm::tensor<float, llm::extents<2, 3>> t;
    t(1, 2) = 6.0f;
    CHECK(sum(t) == 6.0f);
    llm::tensor_view<float, llm::extents<2, 3>> v = t;
    CHECK(v.data() == t.data());
    v(0, 0) = 1.0f;
    CHECK(t(0, 0) == 1.0f);
    const auto& ct = t;
    llm::tensor_view<const float, llm::dims<2>, llm::layout_strided> cv = ct;
    CHECK(cv(1, 2) == 6.0f);
    auto explicit_static = static_cast<llm::tensor_view<float, llm::extents<2, 3>>>(t);
    CHECK(explicit_static.data() == t.data());
}

TEST_CASE("tensor: materialises a view (e.g. a transpose) as a copy") {
    llm::tensor<float, llm::dims<2>> a(2, 3);
    for (std::size_t i = 0; i < 2; ++i) {
        for (std::size_t j = 0; j < 3; ++j) {
            a(i, j) = static_cast<float>(10 * i + j);
        }
    }
    const llm::tensor<float, llm::dims<2>> at(llm::transpose(a, 0, 1));
    CHECK(at.extent(0) == 3);
    CHECK(at.extent(1) == 2);
    CHECK(at(2, 1) == 12.0f);
    CHECK(at.stride(1) == 1);  // row-major storage of the transposed shape
    const llm::tensor<float, llm::extents<3, 2>> fixed(llm::transpose(a, 0, 1));
    CHECK(fixed(2, 1) == 12.0f);
    CHECK_THROWS_AS((llm::tensor<float, llm::extents<2, 2>>(llm::transpose(a, 0, 1))), llm::error);
}

TEST_CASE("tensor: zero-size dimensions allocate nothing") {
    llm::tensor<float, llm::dims<3>> t(4, 0, 5);
    CHECK(t.size() == 0);
    CHECK(t.empty());
    CHECK(t.data() == nullptr);
    llm::tensor<float, llm::extents<0, 3>> s;
    CHECK(s.empty());
    llm::tensor<float, llm::dims<3>> copy = t;
    CHECK(copy.extent(2) == 5);
}

TEST_CASE("aligned_buffer: sizes, copies and overflow") {
    llm::aligned_buffer<double> b(65);
    CHECK(b.size() == 65);
    CHECK(aligned(b.data()));
    b.data()[64] = 2.0;
    llm::aligned_buffer<double> c = b;
    CHECK(c.data()[64] == 2.0);
    CHECK(c.data() != b.data());
    llm::aligned_buffer<double> empty;
    CHECK(empty.data() == nullptr);
    c = empty;
    CHECK(c.size() == 0);
    CHECK_THROWS_AS(llm::aligned_buffer<double>(std::size_t{1} << 62), llm::error);
}
