// SPDX-License-Identifier: Apache-2.0
// Tests of tensor_view's accessor policy: the default accessor costs nothing and changes nothing (size,
// data() a pointer, conversions, constexpr access); user accessors defined outside llm:: (a scaled
// accessor with state, an aligned accessor whose offset_policy is another type) read through operator(),
// at() and every views.hpp function, and are kept away from code that reads data() directly.
#include <llm/tensor/accessor.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <numeric>
#include <type_traits>
#include <vector>

namespace user {

// Reads p[i] times a scale held in the accessor: state travels with the view through slicing.
struct scaled {
    using offset_policy = scaled;
    using element_type = const float;
    using reference = float;
    using data_handle_type = const float*;
    float scale = 1.0f;
    constexpr reference access(data_handle_type p, std::size_t i) const noexcept { return scale * p[i]; }
    constexpr data_handle_type offset(data_handle_type p, std::size_t i) const noexcept { return p + i; }
};

// std::mdspan's aligned_accessor pattern: the handle is promised aligned, which an offset
// breaks, so offset_policy is the plain default accessor (and this one converts to it).
struct aligned {
    using offset_policy = llm::default_accessor<const float>;
    using element_type = const float;
    using reference = const float&;
    using data_handle_type = const float*;
    constexpr reference access(data_handle_type p, std::size_t i) const noexcept { return p[i]; }
    constexpr data_handle_type offset(data_handle_type p, std::size_t i) const noexcept { return p + i; }
    constexpr operator llm::default_accessor<const float>() const noexcept { return {}; }  // NOLINT
};

// A writable accessor over plain memory (a restrict-qualified read, say): the library cannot know
// that its elements are data()[i], so code reading data() directly refuses it too.
struct restrict_accessor {
    using offset_policy = restrict_accessor;
    using element_type = float;
    using reference = float&;
    using data_handle_type = float*;
    constexpr reference access(data_handle_type p, std::size_t i) const noexcept { return p[i]; }
    constexpr data_handle_type offset(data_handle_type p, std::size_t i) const noexcept { return p + i; }
};

// Not accessors: offset missing; access returning something other than reference.
struct no_offset {
    using offset_policy = no_offset;
    using element_type = const float;
    using reference = float;
    using data_handle_type = const float*;
    float access(const float* p, std::size_t i) const { return p[i]; }
};
struct wrong_reference {
    using offset_policy = wrong_reference;
    using element_type = const float;
    using reference = float;
    using data_handle_type = const float*;
    double access(const float* p, std::size_t i) const { return p[i]; }
    const float* offset(const float* p, std::size_t i) const { return p + i; }
};

}  // namespace user

namespace {

using llm::cpu;
using llm::dyn;
using llm::layout_right;
template <class T, class E, class L = llm::layout_right, class A = llm::default_accessor<T>>
using view = llm::tensor_view<T, E, L, llm::cpu, A>;
template <class E, class L = llm::layout_right>
using scaled_view = view<const float, E, L, user::scaled>;

// ---- the concept ----------------------------------------------------------------------------------
static_assert(llm::accessor_policy<llm::default_accessor<float>>);
static_assert(llm::accessor_policy<llm::default_accessor<const llm::bf16>>);
static_assert(llm::accessor_policy<user::scaled> && llm::accessor_policy<user::aligned>);
static_assert(!llm::accessor_policy<user::no_offset>);
static_assert(!llm::accessor_policy<user::wrong_reference>);
static_assert(!llm::accessor_policy<int> && !llm::accessor_policy<float*>);

// ---- the default accessor costs nothing -----------------------------------------------------------
// The fifth parameter defaults to default_accessor<T>: the four-parameter spelling is the same type.
static_assert(std::is_same_v<llm::tensor_view<float, llm::dims<2>>,
                             llm::tensor_view<float, llm::dims<2>, layout_right, cpu, llm::default_accessor<float>>>);
static_assert(std::is_empty_v<llm::default_accessor<float>>);
// One pointer plus the mapping, exactly as before the accessor existed.
static_assert(sizeof(view<float, llm::extents<3, 4>>) == sizeof(float*));
static_assert(sizeof(view<float, llm::extents<3, 4>, llm::layout_left>) == sizeof(float*));
static_assert(sizeof(view<float, llm::extents<dyn, 64>>) == sizeof(float*) + sizeof(std::size_t));
static_assert(sizeof(view<float, llm::dims<2>, llm::layout_strided>) == sizeof(float*) + 4 * sizeof(std::size_t));
static_assert(std::is_trivially_copyable_v<view<float, llm::dims<2>>>);
// data() is still a plain pointer and reference a plain reference, so every kernel keeps working.
static_assert(std::is_same_v<decltype(std::declval<view<float, llm::dims<2>>>().data()), float*>);
static_assert(std::is_same_v<view<const float, llm::dims<2>>::reference, const float&>);
static_assert(std::is_same_v<view<float, llm::dims<2>>::data_handle_type, float*>);
static_assert(llm::direct_access<view<float, llm::dims<2>>> && llm::direct_access<llm::tensor<float, llm::dims<1>>>);
static_assert(llm::mutable_dense_view<view<float, llm::dims<2>>, 2>);
static_assert(llm::writable_host_view<view<float, llm::dims<2>>>);
static_assert(llm::readable_host_view<view<const float, llm::dims<2>>>);
static_assert(std::is_same_v<llm::view_of<llm::tensor<float, llm::dims<2>>&>, view<float, llm::dims<2>>>);

// Conversions of default accessors: adding const only, as before.
static_assert(std::is_convertible_v<llm::default_accessor<float>, llm::default_accessor<const float>>);
static_assert(!std::is_constructible_v<llm::default_accessor<float>, llm::default_accessor<const float>>);
static_assert(!std::is_constructible_v<llm::default_accessor<float>, llm::default_accessor<double>>);
static_assert(std::is_convertible_v<view<float, llm::dims<2>>, view<const float, llm::dims<2>>>);
static_assert(std::is_convertible_v<view<float, llm::extents<3, 4>>, view<const float, llm::dims<2>, llm::layout_strided>>);
static_assert(!std::is_constructible_v<view<float, llm::dims<2>>, view<const float, llm::dims<2>>>);
static_assert(std::is_constructible_v<view<float, llm::extents<3, 4>>, view<float, llm::dims<2>>>);
static_assert(!std::is_convertible_v<view<float, llm::dims<2>>, view<float, llm::extents<3, 4>>>);

// constexpr element access through the default accessor.
constexpr float table[6] = {0, 1, 2, 3, 4, 5};
constexpr view<const float, llm::extents<2, 3>> constant_view(table, view<const float, llm::extents<2, 3>>::mapping_type{});
static_assert(constant_view(1, 2) == 5.0f && constant_view(0, 1) == 1.0f);
static_assert(llm::default_accessor<const float>{}.access(table, 4) == 4.0f);
static_assert(llm::default_accessor<const float>{}.offset(table, 4) == table + 4);

// ---- other accessors ------------------------------------------------------------------------------
// A view through another accessor is a tensor_view (viewable: views.hpp takes it) but not
// direct_access: kernels, fill, copy and printing, which read data() as elements, refuse it.
template <class V>
concept fillable = requires(V v) { llm::fill(v, 1.0f); };
static_assert(llm::tensor_view_like<scaled_view<llm::dims<2>>> && llm::viewable<scaled_view<llm::dims<2>>>);
static_assert(!llm::direct_access<scaled_view<llm::dims<2>>>);
static_assert(!llm::view_of_rank<scaled_view<llm::dims<2>>, 2> && !llm::dense_view<scaled_view<llm::dims<2>>, 2>);
static_assert(!llm::readable_host_view<scaled_view<llm::dims<2>>>);
static_assert(!llm::readable_host_view<view<const float, llm::dims<2>, layout_right, user::aligned>>);
static_assert(fillable<view<float, llm::dims<2>>>);
static_assert(!fillable<view<float, llm::dims<2>, layout_right, user::restrict_accessor>>);
static_assert(!llm::mutable_dense_view<view<float, llm::dims<2>, layout_right, user::restrict_accessor>, 2>);
static_assert(std::is_same_v<scaled_view<llm::dims<2>>::reference, float>);
// Accessors with state cost their state: one float (padded to the pointer's alignment).
static_assert(sizeof(scaled_view<llm::extents<3, 4>>) == 2 * sizeof(const float*));
// Views of different accessors do not convert into each other unless the accessors do.
static_assert(!std::is_constructible_v<view<const float, llm::dims<2>>, scaled_view<llm::dims<2>>>);
static_assert(!std::is_constructible_v<scaled_view<llm::dims<2>>, view<const float, llm::dims<2>>>);
static_assert(std::is_convertible_v<scaled_view<llm::extents<3, 4>>, scaled_view<llm::dims<2>, llm::layout_strided>>);
static_assert(std::is_convertible_v<view<const float, llm::dims<2>, layout_right, user::aligned>,
                                    view<const float, llm::dims<2>>>);
static_assert(!std::is_constructible_v<view<const float, llm::dims<2>, layout_right, user::aligned>,
                                       view<const float, llm::dims<2>>>);

std::vector<float> iota(std::size_t n) {
    std::vector<float> v(n);
    std::iota(v.begin(), v.end(), 0.0f);
    return v;
}

TEST_CASE("accessor: default accessor views read and write as plain pointers") {
    llm::tensor<float, llm::dims<2>> t(3, 4);
    view<float, llm::dims<2>> v = t;
    v(1, 2) = 7.0f;
    CHECK(t(1, 2) == 7.0f);
    CHECK(&v(1, 2) == t.data() + 6);
    CHECK(v.accessor().access(v.data(), 6) == 7.0f);
    const view<const float, llm::dims<2>> c = v;
    CHECK(c.data() == t.data());
    CHECK(&c.at(2, 3) == t.data() + 11);
    CHECK_THROWS_AS((void)c.at(3, 0), llm::error);
    // Slices of default-accessor views are default-accessor views at p + offset.
    auto row = llm::select<0>(v, 2);
    static_assert(std::is_same_v<decltype(row)::accessor_type, llm::default_accessor<float>>);
    CHECK(row.data() == t.data() + 8);
}

TEST_CASE("accessor: a scaled accessor with state reads through operator(), at() and every view function") {
    const std::vector<float> data = iota(12);
    const user::scaled acc{2.5f};
    const scaled_view<llm::dims<2>> v(data.data(), scaled_view<llm::dims<2>>::mapping_type(llm::dims<2>(3, 4)), acc);
    CHECK(v.accessor().scale == 2.5f);
    CHECK(v.data() == data.data());
    // Products of a float by 2.5 are exact for these small integers: the checks are exact.
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 4; ++j) {
            CHECK(v(i, j) == 2.5f * data[i * 4 + j]);
            CHECK(v.at(i, j) == 2.5f * data[i * 4 + j]);
        }
    }
    CHECK_THROWS_WITH_AS((void)v.at(0, 4),
                         "tensor_view::at: index 4 is out of range for dim 1 of extent 4 (indices [0, 4], extents [3, 4])",
                         llm::error);
    // From extents and an accessor.
    const scaled_view<llm::dims<2>> w(data.data(), llm::dims<2>(3, 4), user::scaled{-1.0f});
    CHECK(w(2, 3) == -11.0f);

    // slice / select / subtensor move the handle by the accessor's offset and keep its state.
    auto rows = llm::slice<0>(v, 1, 3);
    static_assert(std::is_same_v<decltype(rows), scaled_view<llm::dims<2>>>);
    CHECK(rows.data() == data.data() + 4);
    CHECK(rows.accessor().scale == 2.5f);
    CHECK(rows(1, 3) == 2.5f * 11.0f);
    auto cols = llm::slice(v, 1, 1, 3);
    CHECK(cols(2, 1) == 2.5f * 10.0f);
    auto row = llm::select<0>(v, 2);
    CHECK(row(0) == 2.5f * 8.0f);
    auto col = llm::select(v, 1, 3);
    CHECK(col(1) == 2.5f * 7.0f);
    auto tile = llm::subtensor(v, {1, 2}, llm::extents<2, 2>{});
    CHECK(tile(1, 1) == 2.5f * 11.0f);
    // transpose and reshape keep handle and accessor.
    auto t = llm::transpose<0, 1>(v);
    static_assert(std::is_same_v<decltype(t), scaled_view<llm::dims<2>, llm::layout_left>>);
    CHECK(t(3, 1) == 2.5f * 7.0f);
    CHECK(llm::transpose(v, 0, 1)(3, 1) == 2.5f * 7.0f);
    auto flat = llm::reshape(v, 12);
    CHECK(flat.accessor().scale == 2.5f);
    CHECK(flat(11) == 2.5f * 11.0f);
    // A writable accessor writes through operator().
    std::vector<float> out(4);
    const view<float, llm::dims<1>, layout_right, user::restrict_accessor> o(out.data(), 4);
    o(2) = 3.0f;
    CHECK(out[2] == 3.0f);
    // Bad arguments are still llm::error.
    CHECK_THROWS_AS(llm::slice(v, 0, 2, 4), llm::error);
}

TEST_CASE("accessor: an offset_policy of another type: slices of an aligned view read through default_accessor") {
    const std::vector<float> data = iota(8);
    const view<const float, llm::dims<2>, layout_right, user::aligned> v(data.data(), 2, 4);
    CHECK(v(1, 1) == 5.0f);
    auto right = llm::slice<1>(v, 1, 4);
    static_assert(std::is_same_v<decltype(right)::accessor_type, llm::default_accessor<const float>>);
    CHECK(right.data() == data.data() + 1);
    CHECK(right(1, 2) == 7.0f);
    // The slice is a plain view again: kernels take it.
    static_assert(llm::view_of_rank<decltype(right), 2>);
    // transpose keeps the accessor (no offset taken).
    static_assert(std::is_same_v<decltype(llm::transpose<0, 1>(v))::accessor_type, user::aligned>);
    // The view itself converts to a plain view (its accessor converts to default_accessor).
    const view<const float, llm::dims<2>> plain = v;
    CHECK(&plain(1, 3) == data.data() + 7);
}

}  // namespace
