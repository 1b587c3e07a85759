// SPDX-License-Identifier: Apache-2.0
// Tests of slice, select, transpose, reshape and subtensor: values, result types, aliasing and errors.
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <numeric>
#include <type_traits>
#include <vector>

namespace {

using llm::dyn;

// A 3-d tensor with element (i, j, k) = 100 i + 10 j + k, so every value names its index.
template <class Extents = llm::dims<3>, class Layout = llm::layout_right>
llm::tensor<float, Extents, Layout> numbered(std::size_t a, std::size_t b, std::size_t c) {
    llm::tensor<float, Extents, Layout> t(Extents(std::array<std::size_t, 3>{a, b, c}));
    for (std::size_t i = 0; i < a; ++i) {
        for (std::size_t j = 0; j < b; ++j) {
            for (std::size_t k = 0; k < c; ++k) {
                t(i, j, k) = static_cast<float>(100 * i + 10 * j + k);
            }
        }
    }
    return t;
}

}  // namespace

TEST_CASE("slice: run-time dimension, every dimension, values and strides") {
    auto t = numbered(4, 5, 6);
    for (std::size_t dim = 0; dim < 3; ++dim) {
        const auto s = llm::slice(t, dim, 1, 3);
        static_assert(std::is_same_v<std::remove_const_t<decltype(s)>, llm::tensor_view<float, llm::dims<3>, llm::layout_strided>>);
        CHECK(s.extent(dim) == 2);
        for (std::size_t r = 0; r < 3; ++r) {
            CHECK(s.stride(r) == t.stride(r));
        }
        std::array<std::size_t, 3> idx{1, 1, 1};
        CHECK(s(idx[0], idx[1], idx[2]) == t(dim == 0 ? 2 : 1, dim == 1 ? 2 : 1, dim == 2 ? 2 : 1));
    }
    const auto cols = llm::slice(t, 2, 4, 6);
    CHECK(cols(3, 4, 1) == 345.0f);
    cols(0, 0, 0) = -1.0f;  // aliases the tensor
    CHECK(t(0, 0, 4) == -1.0f);
}

TEST_CASE("slice: errors name the function, argument and values") {
    auto t = numbered(4, 5, 6);
    CHECK_THROWS_WITH_AS(llm::slice(t, 3, 0, 1), "slice: dim = 3 is out of range for a view of rank 3", llm::error);
    CHECK_THROWS_WITH_AS(llm::slice(t, 1, 2, 6),
                         "slice: range [2, 6) of dim 1 is out of range for extent 5 (extents [4, 5, 6])", llm::error);
    CHECK_THROWS_WITH_AS(llm::slice(t, 0, 3, 2),
                         "slice: range [3, 2) of dim 0 is out of range for extent 4 (extents [4, 5, 6])", llm::error);
    CHECK_THROWS_AS(llm::slice<1>(t, 0, 9), llm::error);
}

TEST_CASE("slice: empty ranges and whole ranges") {
    auto t = numbered(4, 5, 6);
    const auto empty = llm::slice(t, 1, 5, 5);
    CHECK(empty.extent(1) == 0);
    CHECK(empty.empty());
    CHECK(empty.data() == t.data());
    const auto whole = llm::slice(t, 2, 0, 6);
    CHECK(whole.is_contiguous());
    CHECK(whole(3, 4, 5) == 345.0f);
}

TEST_CASE("slice<Dim>: keeps static extents, and layout_right when slicing the outermost dimension") {
    llm::tensor<float, llm::extents<dyn, 8, 4>> t(5);
    t(3, 7, 2) = 1.0f;
    const auto rows = llm::slice<0>(t, 2, 4);
    static_assert(std::is_same_v<std::remove_const_t<decltype(rows)>, llm::tensor_view<float, llm::extents<dyn, 8, 4>>>);
    CHECK(rows.extent(0) == 2);
    CHECK(rows(1, 7, 2) == 1.0f);
    CHECK(rows.data() == t.data() + 2 * 32);
    const auto mid = llm::slice<1>(t, 6, 8);
    static_assert(std::is_same_v<std::remove_const_t<decltype(mid)>,
                                 llm::tensor_view<float, llm::extents<dyn, dyn, 4>, llm::layout_strided>>);
    CHECK(mid(3, 1, 2) == 1.0f);
    CHECK(mid.stride(0) == 32);

    llm::tensor<float, llm::extents<3, 4>, llm::layout_left> l;
    const auto last = llm::slice<1>(l, 1, 3);
    static_assert(std::is_same_v<std::remove_const_t<decltype(last)>, llm::tensor_view<float, llm::extents<3, dyn>, llm::layout_left>>);
    CHECK(last.data() == l.data() + 3);
}

TEST_CASE("select: drops a dimension, at every position") {
    auto t = numbered(4, 5, 6);
    const auto a = llm::select(t, 0, 2);
    static_assert(std::is_same_v<std::remove_const_t<decltype(a)>, llm::tensor_view<float, llm::dims<2>, llm::layout_strided>>);
    CHECK(a(3, 4) == 234.0f);
    const auto b = llm::select(t, 1, 3);
    CHECK(b(2, 5) == 235.0f);
    CHECK(b.stride(0) == 30);
    CHECK(b.stride(1) == 1);
    const auto c = llm::select(t, 2, 5);
    CHECK(c(3, 1) == 315.0f);
    CHECK(c.stride(1) == 6);
    const auto scalar = llm::select(llm::select(c, 0, 3), 0, 1);
    static_assert(decltype(scalar)::rank() == 0);
    CHECK(scalar() == 315.0f);
    CHECK_THROWS_WITH_AS(llm::select(t, 1, 5), "select: index 5 of dim 1 is out of range for extent 5 (extents [4, 5, 6])",
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::select(t, 4, 0), "select: dim = 4 is out of range for a view of rank 3", llm::error);
}

TEST_CASE("select<Dim>: a layer of a static stack stays static and row-major") {
    llm::tensor<float, llm::extents<dyn, 4, 4>> w(3);
    w(2, 1, 3) = 7.0f;
    const auto layer = llm::select<0>(w, 2);
    static_assert(std::is_same_v<std::remove_const_t<decltype(layer)>, llm::tensor_view<float, llm::extents<4, 4>>>);
    static_assert(sizeof(layer) == sizeof(float*));
    CHECK(layer(1, 3) == 7.0f);
    const auto column = llm::select<2>(w, 3);
    static_assert(std::is_same_v<std::remove_const_t<decltype(column)>,
                                 llm::tensor_view<float, llm::extents<dyn, 4>, llm::layout_strided>>);
    CHECK(column(2, 1) == 7.0f);
    CHECK_THROWS_AS(llm::select<0>(w, 3), llm::error);
}

TEST_CASE("transpose: swaps extents and strides, no copy") {
    auto t = numbered(4, 5, 6);
    const auto tr = llm::transpose(t, 0, 2);
    CHECK(tr.extent(0) == 6);
    CHECK(tr.extent(2) == 4);
    CHECK(tr(5, 4, 3) == 345.0f);
    CHECK(tr.data() == t.data());
    CHECK_FALSE(tr.is_contiguous());  // row-major order is lost ...
    CHECK(tr.is_exhaustive());        // ... but the elements still fill the memory
    CHECK(tr.is_unique());
    const auto same = llm::transpose(t, 1, 1);
    CHECK(same(3, 4, 5) == 345.0f);
    const auto back = llm::transpose(tr, 2, 0);
    CHECK(back.is_contiguous());
    CHECK(back(1, 2, 3) == 123.0f);
    CHECK_THROWS_WITH_AS(llm::transpose(t, 0, 3), "transpose: d1 = 3 is out of range for a view of rank 3", llm::error);
}

TEST_CASE("transpose<D0, D1>: rank-2 layout_right becomes layout_left with swapped static extents") {
    llm::tensor<float, llm::extents<3, 4>> a;
    a(2, 1) = 5.0f;
    const auto at = llm::transpose<0, 1>(a);
    static_assert(std::is_same_v<std::remove_const_t<decltype(at)>, llm::tensor_view<float, llm::extents<4, 3>, llm::layout_left>>);
    CHECK(at(1, 2) == 5.0f);
    const auto att = llm::transpose<1, 0>(at);
    static_assert(std::is_same_v<std::remove_const_t<decltype(att)>, llm::tensor_view<float, llm::extents<3, 4>>>);
    CHECK(att(2, 1) == 5.0f);
    auto t = numbered<llm::extents<dyn, 5, 6>>(4, 5, 6);
    const auto t3 = llm::transpose<0, 2>(t);
    static_assert(std::is_same_v<std::remove_const_t<decltype(t3)>, llm::tensor_view<float, llm::extents<6, 5, dyn>, llm::layout_strided>>);
    CHECK(t3(5, 4, 3) == 345.0f);
}

TEST_CASE("reshape: contiguous views take new extents in their own order") {
    auto t = numbered(2, 3, 4);
    const auto flat = llm::reshape(t, 24);
    static_assert(std::is_same_v<std::remove_const_t<decltype(flat)>, llm::tensor_view<float, llm::dims<1>>>);
    CHECK(flat(23) == 123.0f);
    CHECK(flat(4) == 10.0f);
    const auto m = llm::reshape(t, llm::extents<dyn, 4>(6));
    static_assert(std::is_same_v<std::remove_const_t<decltype(m)>, llm::tensor_view<float, llm::extents<dyn, 4>>>);
    CHECK(m(5, 3) == 123.0f);
    // layout_left reshapes in column-major order and stays layout_left.
    auto l = numbered<llm::dims<3>, llm::layout_left>(2, 3, 4);
    const auto lf = llm::reshape(l, 24);
    static_assert(std::is_same_v<decltype(lf)::layout_type, llm::layout_left>);
    CHECK(lf(1) == 100.0f);
    CHECK(lf(2) == 10.0f);
    // A strided view that is row-major contiguous (a slice of whole rows) reshapes.
    const auto rows = llm::slice(t, 0, 1, 2);
    const auto r = llm::reshape(rows, 3, 4);
    static_assert(std::is_same_v<decltype(r)::layout_type, llm::layout_right>);
    CHECK(r(2, 3) == 123.0f);
    // Rank 0 and empty views.
    const auto one = llm::reshape(llm::select(llm::select(llm::select(t, 0, 1), 0, 2), 0, 3), llm::extents<1, 1>{});
    CHECK(one(0, 0) == 123.0f);
    llm::tensor<float, llm::dims<2>> empty(0, 5);
    CHECK(llm::reshape(empty, 5, 0, 7).size() == 0);
}

TEST_CASE("reshape: refuses a changed count and non-contiguous views") {
    auto t = numbered(2, 3, 4);
    CHECK_THROWS_WITH_AS(llm::reshape(t, 5, 5), "reshape: cannot view extents [2, 3, 4] (24 elements) as [5, 5] (25 elements)",
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::reshape(llm::transpose(t, 0, 2), 24),
                         "reshape: the view (extents [4, 3, 2], strides [1, 4, 12]) is not contiguous in row-major order; copy it into a tensor first",
                         llm::error);
    CHECK_THROWS_AS(llm::reshape(llm::slice(t, 2, 0, 2), 12), llm::error);
    const std::size_t huge = std::size_t{1} << 40;
    CHECK_THROWS_WITH_AS(llm::reshape(t, huge, huge, 24),
                         "reshape: cannot view extents [2, 3, 4] (24 elements) as [1099511627776, 1099511627776, 24] (overflowing std::size_t elements)",
                         llm::error);
    CHECK_THROWS_AS(llm::reshape(t, llm::extents<4, 7>{}), llm::error);
}

TEST_CASE("subtensor: a block, with static or dynamic sizes") {
    auto t = numbered(4, 5, 6);
    const auto block = llm::subtensor(t, {1, 2, 3}, {2, 3, 3});
    static_assert(std::is_same_v<std::remove_const_t<decltype(block)>, llm::tensor_view<float, llm::dims<3>, llm::layout_strided>>);
    CHECK(block(0, 0, 0) == 123.0f);
    CHECK(block(1, 2, 2) == 245.0f);
    // Same as chained slices.
    const auto chained = llm::slice(llm::slice(llm::slice(t, 0, 1, 3), 1, 2, 5), 2, 3, 6);
    CHECK(chained.data() == block.data());
    CHECK(chained.mapping() == block.mapping());
    const auto tile = llm::subtensor(t, {2, 1, 0}, llm::extents<2, 2, 6>{});
    static_assert(std::is_same_v<decltype(tile)::extents_type, llm::extents<2, 2, 6>>);
    CHECK(tile(1, 1, 5) == 325.0f);
    CHECK(llm::subtensor(t, {4, 5, 6}, {0, 0, 0}).empty());
    CHECK_THROWS_WITH_AS(llm::subtensor(t, {1, 3, 0}, {2, 3, 6}),
                         "subtensor: offset 3 + size 3 of dim 1 exceeds extent 5 (extents [4, 5, 6])", llm::error);
    CHECK_THROWS_AS(llm::subtensor(t, {5, 0, 0}, {0, 0, 0}), llm::error);
}

TEST_CASE("views compose: a slice of a transpose of a select, against hand-computed values") {
    auto t = numbered(7, 9, 11);
    const auto v = llm::slice(llm::transpose(llm::select(t, 1, 8), 0, 1), 0, 3, 10);  // [k in 3..10][i]
    CHECK(v.extent(0) == 7);
    CHECK(v.extent(1) == 7);
    for (std::size_t a = 0; a < 7; ++a) {
        for (std::size_t b = 0; b < 7; ++b) {
            CHECK(v(a, b) == static_cast<float>(100 * b + 80 + (a + 3)));
        }
    }
}

TEST_CASE("views of const tensors are views of const elements") {
    const auto t = numbered(2, 3, 4);
    const auto s = llm::slice(t, 0, 0, 1);
    static_assert(std::is_same_v<decltype(s)::element_type, const float>);
    const auto tr = llm::transpose<0, 2>(t);
    static_assert(std::is_same_v<decltype(tr)::element_type, const float>);
    CHECK(tr(3, 2, 1) == 123.0f);
}

TEST_CASE("zero-size dimensions pass through views") {
    llm::tensor<float, llm::dims<3>> t(3, 0, 4);
    CHECK(llm::select(t, 0, 2).empty());
    CHECK(llm::select(t, 2, 3).extent(1) == 0);
    CHECK(llm::transpose(t, 0, 1).extent(0) == 0);
    CHECK(llm::slice(t, 2, 1, 3).extent(2) == 2);
    CHECK_THROWS_AS(llm::select(t, 1, 0), llm::error);
}
