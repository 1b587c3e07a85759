// SPDX-License-Identifier: Apache-2.0
// llm::kernel_view: static and dynamic extents and strides, checked conversion, transposes, static-extent dispatch.
#include <llm/tensor/kernel_view.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <numeric>
#include <string>
#include <type_traits>

namespace {

// Static extents and strides cost no storage: a fully static view is one pointer, a row view
// stores its dynamic extents and all strides but the unit one.
static_assert(sizeof(llm::kernel_view<float, llm::extents<4, 8>, llm::extents<8, 1>>) == sizeof(float*));
static_assert(sizeof(llm::row_view<float, 2>) == sizeof(float*) + 3 * sizeof(std::size_t));
static_assert(std::is_trivially_copyable_v<llm::strided_view<const float, 4>>);
static_assert(std::is_same_v<llm::unit_last_stride<3>, llm::extents<llm::dyn, llm::dyn, 1>>);
// A kernel view is itself a view_of_rank, so it can be passed back into any public kernel.
static_assert(llm::view_of_rank<llm::row_view<const float, 2>, 2>);
static_assert(llm::dense_view<llm::strided_view<llm::bf16, 3>, 3>);
// Forgetting static information and adding const convert implicitly; the reverse does not.
static_assert(std::is_convertible_v<llm::row_view<float, 2>, llm::strided_view<const float, 2>>);
static_assert(!std::is_convertible_v<llm::strided_view<float, 2>, llm::row_view<float, 2>>);
static_assert(!std::is_convertible_v<llm::strided_view<const float, 2>, llm::strided_view<float, 2>>);

}  // namespace

TEST_CASE("kernel_view: element access equals the tensor_view's, static strides fold to constants") {
    llm::tensor<float, llm::dims<3>> t(llm::dims<3>(2, 3, 5));
    std::iota(t.data(), t.data() + t.size(), 0.0f);
    const auto k = llm::to_kernel_view<llm::dims<3>, llm::unit_last_stride<3>>("test", "t", t);
    static_assert(decltype(k)::stride_type::static_extent(2) == 1);
    CHECK(k.extent(0) == 2);
    CHECK(k.extent(2) == 5);
    CHECK(k.stride(0) == 15);
    CHECK(k.stride(1) == 5);
    CHECK(k.stride(2) == 1);
    for (std::size_t i = 0; i < 2; ++i) {
        for (std::size_t j = 0; j < 3; ++j) {
            for (std::size_t l = 0; l < 5; ++l) {
                CHECK(k(i, j, l) == t(i, j, l));
                CHECK(k.ptr(i, j, l) == &t(i, j, l));
            }
        }
    }
}

TEST_CASE("kernel_view: to_kernel_view refuses a wrong static extent or stride, naming the call and argument") {
    llm::tensor<float, llm::dims<2>> t(llm::dims<2>(4, 6));
    const auto tr = llm::transpose(t.view(), 0, 1);  // [6, 4] with strides [1, 6]
    try {
        (void)llm::to_kernel_view<llm::dims<2>, llm::unit_last_stride<2>>("rmsnorm_forward", "x", tr);
        FAIL("a transposed view has no unit last stride");
    } catch (const llm::error& e) {
        CHECK(std::string(e.what()) == "rmsnorm_forward: x must have stride 1 in dim 1 (its strides are [1, 6])");
    }
    try {
        (void)llm::to_kernel_view<llm::extents<llm::dyn, 8>>("f", "w", t);
        FAIL("extent 6 is not 8");
    } catch (const llm::error& e) {
        CHECK(std::string(e.what()) == "f: w must have extent 8 in dim 1 (its extents are [4, 6])");
    }
    // The general strided view takes the transpose as it is.
    const auto g = llm::to_kernel_view<2>(tr);
    CHECK(g.stride(0) == 1);
    CHECK(g.stride(1) == 6);
    CHECK(&g(5, 3) == &t(3, 5));
}

TEST_CASE("kernel_view: a dimension of extent 1 is accepted whatever its stride, and recorded with the static one") {
    llm::tensor<float, llm::dims<2>> t(llm::dims<2>(5, 1));
    const auto tr = llm::transpose(t.view(), 0, 1);  // [1, 5] with strides [1, 1]: fine
    auto k = llm::to_kernel_view<llm::dims<2>, llm::unit_last_stride<2>>("f", "x", tr);
    CHECK(k.extent(1) == 5);
    llm::tensor<float, llm::dims<2>> c(llm::dims<2>(3, 1));
    const auto col = llm::transpose(c.view(), 0, 1);  // [1, 3], stride(1) == 1 already
    CHECK(llm::to_kernel_view<llm::dims<2>, llm::unit_last_stride<2>>("f", "x", col).ptr(0, 2) == c.data() + 2);
    llm::tensor<float, llm::dims<2>> w(llm::dims<2>(1, 4));
    const auto wt = llm::transpose(w.view(), 0, 1);  // [4, 1] with strides [1, 4]: the unit dim's stride is moot
    const auto kw = llm::to_kernel_view<llm::dims<2>, llm::unit_last_stride<2>>("f", "x", wt);
    CHECK(kw.stride(1) == 1);
    CHECK(kw.ptr(3, 0) == w.data() + 3);
}

TEST_CASE("kernel_view: transposed swaps extents and strides, static ones included") {
    float buf[24];
    std::iota(buf, buf + 24, 0.0f);
    const llm::kernel_view<float, llm::extents<llm::dyn, 8>, llm::extents<llm::dyn, 1>> a(
        buf, llm::extents<llm::dyn, 8>(3), llm::extents<llm::dyn, 1>(8));
    const auto at = a.transposed<0, 1>();
    static_assert(std::is_same_v<std::remove_const_t<decltype(at)>,
                                 llm::kernel_view<float, llm::extents<8, llm::dyn>, llm::extents<1, llm::dyn>>>);
    CHECK(at.extent(0) == 8);
    CHECK(at.extent(1) == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 8; ++j) {
            CHECK(at(j, i) == a(i, j));
        }
    }
}

TEST_CASE("kernel_view: with_static_extent makes a listed run-time extent static, leaves others dynamic") {
    float buf[256] = {};
    for (const std::size_t d : {64u, 128u, 96u}) {
        const llm::row_view<float, 2> v(buf, llm::dims<2>(2, d), llm::unit_last_stride<2>(d));
        const std::size_t seen = llm::with_static_extent<1, 64, 128>(v, [&](auto w) -> std::size_t {
            using W = decltype(w);
            CHECK(w.extent(1) == d);
            CHECK(w.data() == buf);
            CHECK(&w(1, 3) == &v(1, 3));
            return W::shape_type::static_extent(1);
        });
        CHECK(seen == (d == 96 ? llm::dyn : d));
    }
}
