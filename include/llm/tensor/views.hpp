// SPDX-License-Identifier: Apache-2.0
// Views of views without copies: slice, select, transpose, reshape and subtensor.
#pragma once

#include <llm/core/error.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/layout.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

// Every function here comes in a run-time form, whose dimension arguments are values and
// whose result is all-dynamic and layout_strided (the result type cannot depend on a value),
// and, for slice / select / transpose, a compile-time form (`slice<0>(v, b, e)`) that keeps
// the static extents it can and the layout when it survives (slicing or selecting the
// outermost dimension of a layout_right view keeps layout_right; a rank-2 transpose turns
// layout_right into layout_left), so that kernels keep their compile-time inner extents.
//
// Arguments are views or lvalue tensors; views of temporary tensors do not compile. The
// results alias the input's elements. A result with no elements keeps the input's pointer.
// Views through any accessor policy work: transpose and reshape keep the handle and the
// accessor; slice, select and subtensor move the handle with accessor().offset(p, i) and read
// through its offset_policy (std::submdspan's rule), which may refuse an offset it cannot
// represent (a block-quantized accessor takes whole blocks only, with llm::error).

namespace llm {

namespace detail::tensor_impl {

// Builds a view of layout NewLayout over handle `p` read through accessor `a`, with the given
// extents and strides. A layout_right / layout_left result derives its strides from the
// extents; the callers only ask for those layouts when the strides are the ones it derives.
template <class NewExtents, class NewLayout, class Device, class Accessor>
tensor_view<typename Accessor::element_type, NewExtents, NewLayout, Device, Accessor> make_view(
    typename Accessor::data_handle_type p, const Accessor& a, const std::array<std::size_t, NewExtents::rank()>& ext,
    const std::array<std::size_t, NewExtents::rank()>& strides) {
    using view = tensor_view<typename Accessor::element_type, NewExtents, NewLayout, Device, Accessor>;
    const NewExtents e(ext);
    if constexpr (std::is_same_v<NewLayout, layout_strided>) {
        return view(std::move(p), typename view::mapping_type(e, strides), a);
    } else {
        const typename view::mapping_type m(e);
        for (std::size_t r = 0; r < NewExtents::rank(); ++r) {
            LLM_ASSERT(e.extent(r) <= 1 || m.stride(r) == strides[r]);
        }
        return view(std::move(p), m, a);
    }
}

// A view of v's elements starting `offset` elements (mapping offsets) after v.data(): the
// handle moves with the accessor's offset(p, offset) and the result reads through its
// offset_policy (std::submdspan's rule); with the default accessor that is p + offset. An
// accessor may refuse offsets it cannot represent (llm::quant's block accessors take whole
// blocks only).
template <class NewExtents, class NewLayout, class V>
auto make_offset_view(const V& v, std::size_t offset, const std::array<std::size_t, NewExtents::rank()>& ext,
                      const std::array<std::size_t, NewExtents::rank()>& strides) {
    using offset_accessor = typename V::accessor_type::offset_policy;
    return make_view<NewExtents, NewLayout, typename V::device_type>(
        v.accessor().offset(v.data(), offset), offset_accessor(v.accessor()), ext, strides);
}

inline void check_dim(const char* function, const char* argument, std::size_t dim, std::size_t rank) {
    if (dim >= rank) [[unlikely]] {
        llm::fail(function, ": ", argument, " = ", dim, " is out of range for a view of rank ", rank);
    }
}

// slice: dimension `dim` becomes [begin, end).
template <class NewExtents, class NewLayout, class V>
auto slice_impl(const V& v, std::size_t dim, std::size_t begin, std::size_t end) {
    check_dim("slice", "dim", dim, V::rank());
    if (begin > end || end > v.extent(dim)) [[unlikely]] {
        llm::fail("slice: range [", begin, ", ", end, ") of dim ", dim, " is out of range for extent ", v.extent(dim),
             " (extents ", shape_string(v.extents()), ")");
    }
    auto ext = extents_array(v);
    ext[dim] = end - begin;
    const std::size_t offset = end > begin && v.size() != 0 ? begin * v.stride(dim) : 0;
    return make_offset_view<NewExtents, NewLayout>(v, offset, ext, strides_array(v));
}

// select: dimension `dim` is fixed at `index` and dropped.
template <class NewExtents, class NewLayout, class V>
auto select_impl(const V& v, std::size_t dim, std::size_t index) {
    check_dim("select", "dim", dim, V::rank());
    if (index >= v.extent(dim)) [[unlikely]] {
        llm::fail("select: index ", index, " of dim ", dim, " is out of range for extent ", v.extent(dim), " (extents ",
             shape_string(v.extents()), ")");
    }
    std::array<std::size_t, V::rank() - 1> ext{};
    std::array<std::size_t, V::rank() - 1> strides{};
    for (std::size_t r = 0, k = 0; r < V::rank(); ++r) {
        if (r != dim) {
            ext[k] = v.extent(r);
            strides[k] = v.stride(r);
            ++k;
        }
    }
    const std::size_t offset = v.size() != 0 ? index * v.stride(dim) : 0;
    return make_offset_view<NewExtents, NewLayout>(v, offset, ext, strides);
}

// transpose: dimensions d0 and d1 swap places.
template <class NewExtents, class NewLayout, class V>
auto transpose_impl(const V& v, std::size_t d0, std::size_t d1) {
    check_dim("transpose", "d0", d0, V::rank());
    check_dim("transpose", "d1", d1, V::rank());
    auto ext = extents_array(v);
    auto strides = strides_array(v);
    std::swap(ext[d0], ext[d1]);
    std::swap(strides[d0], strides[d1]);
    return make_view<NewExtents, NewLayout, typename V::device_type>(v.data(), v.accessor(), ext, strides);
}

template <class E, std::size_t Dim, std::size_t... I>
extents<(I == Dim ? dyn : E::static_extent(I))...> forget_extent(std::index_sequence<I...>);
template <class E, std::size_t Dim, std::size_t... I>
extents<E::static_extent(I < Dim ? I : I + 1)...> drop_extent(std::index_sequence<I...>);
template <class E, std::size_t A, std::size_t B, std::size_t... I>
extents<E::static_extent(I == A ? B : (I == B ? A : I))...> swap_extents(std::index_sequence<I...>);

// The layout kept by slicing or selecting dimension Dim: layout_right survives changes to
// its outermost dimension, layout_left to its innermost; anything else needs strides.
template <class Layout, std::size_t Dim, std::size_t Rank>
using outer_dim_layout =
    std::conditional_t<(std::is_same_v<Layout, layout_right> && Dim == 0) ||
                           (std::is_same_v<Layout, layout_left> && Dim + 1 == Rank),
                       Layout, layout_strided>;

template <class Layout, std::size_t D0, std::size_t D1, std::size_t Rank>
using transposed_layout = std::conditional_t<
    D0 == D1, Layout,
    std::conditional_t<Rank == 2 && std::is_same_v<Layout, layout_right>, layout_left,
                       std::conditional_t<Rank == 2 && std::is_same_v<Layout, layout_left>, layout_right, layout_strided>>>;

}  // namespace detail::tensor_impl

/// The elements [begin, end) of dimension `dim`; the other dimensions are kept whole.
/// Shape contract: dim < rank, begin <= end <= extent(dim); result extent(dim) = end - begin,
/// strides unchanged. Throws llm::error otherwise.
/// Template parameters:
///   X — a view or an lvalue tensor.
/// Example: `auto rows = llm::slice(a, 0, 2, 5);  // rows 2, 3, 4`
template <viewable X>
auto slice(X&& x, std::size_t dim, std::size_t begin, std::size_t end) {
    using V = view_of<X>;
    return detail::tensor_impl::slice_impl<dims<V::rank()>, layout_strided>(x.view(), dim, begin, end);
}

/// slice with a compile-time dimension: keeps the other static extents, and the layout when
/// slicing the outermost dimension of layout_right (innermost of layout_left).
/// Template parameters:
///   Dim — the dimension to slice (< rank).
///   X   — a view or an lvalue tensor.
/// Example: `auto rows = llm::slice<0>(w, 2, 5);  // tensor_view<float, extents<dyn, 64>>`
template <std::size_t Dim, viewable X>
    requires(Dim < view_of<X>::rank())
auto slice(X&& x, std::size_t begin, std::size_t end) {
    using V = view_of<X>;
    using E = decltype(detail::tensor_impl::forget_extent<typename V::extents_type, Dim>(std::make_index_sequence<V::rank()>{}));
    return detail::tensor_impl::slice_impl<E, detail::tensor_impl::outer_dim_layout<typename V::layout_type, Dim, V::rank()>>(
        x.view(), Dim, begin, end);
}

/// Fixes dimension `dim` at `index` and drops it: the result has rank - 1.
/// Shape contract: rank >= 1, dim < rank, index < extent(dim). Throws llm::error otherwise.
/// Template parameters:
///   X — a view or an lvalue tensor of rank >= 1.
/// Example: `auto row = llm::select(a, 0, i);  // a(i, :)`
template <viewable X>
    requires(view_of<X>::rank() >= 1)
auto select(X&& x, std::size_t dim, std::size_t index) {
    using V = view_of<X>;
    return detail::tensor_impl::select_impl<dims<V::rank() - 1>, layout_strided>(x.view(), dim, index);
}

/// select with a compile-time dimension: keeps the static extents, and the layout when
/// selecting the outermost dimension of layout_right (innermost of layout_left).
/// Template parameters:
///   Dim — the dimension to drop (< rank).
///   X   — a view or an lvalue tensor.
/// Example: `auto layer = llm::select<0>(w, l);  // w: extents<dyn, 64, 64> -> extents<64, 64>`
template <std::size_t Dim, viewable X>
    requires(Dim < view_of<X>::rank())
auto select(X&& x, std::size_t index) {
    using V = view_of<X>;
    using E = decltype(detail::tensor_impl::drop_extent<typename V::extents_type, Dim>(std::make_index_sequence<V::rank() - 1>{}));
    return detail::tensor_impl::select_impl<E, detail::tensor_impl::outer_dim_layout<typename V::layout_type, Dim, V::rank()>>(
        x.view(), Dim, index);
}

/// Swaps dimensions d0 and d1 (extents and strides); no element moves.
/// Shape contract: d0, d1 < rank (equal is allowed: a strided copy of the view). Throws
/// llm::error otherwise.
/// Template parameters:
///   X — a view or an lvalue tensor.
/// Example: `auto at = llm::transpose(a, 0, 1);  // at(j, i) == a(i, j)`
template <viewable X>
auto transpose(X&& x, std::size_t d0, std::size_t d1) {
    using V = view_of<X>;
    return detail::tensor_impl::transpose_impl<dims<V::rank()>, layout_strided>(x.view(), d0, d1);
}

/// transpose with compile-time dimensions: the static extents are swapped too, and a rank-2
/// layout_right view becomes layout_left (and back) instead of layout_strided.
/// Template parameters:
///   D0, D1 — the dimensions to swap (< rank).
///   X      — a view or an lvalue tensor.
/// Example: `auto at = llm::transpose<0, 1>(a);  // extents<3, 4> right -> extents<4, 3> left`
template <std::size_t D0, std::size_t D1, viewable X>
    requires(D0 < view_of<X>::rank() && D1 < view_of<X>::rank())
auto transpose(X&& x) {
    using V = view_of<X>;
    using E = decltype(detail::tensor_impl::swap_extents<typename V::extents_type, D0, D1>(std::make_index_sequence<V::rank()>{}));
    return detail::tensor_impl::transpose_impl<E, detail::tensor_impl::transposed_layout<typename V::layout_type, D0, D1, V::rank()>>(
        x.view(), D0, D1);
}

/// The same elements with other extents. Allowed only when the element order is fixed by
/// memory: layout_right and layout_left views (always contiguous) reshape in their own order
/// (row-major, column-major) and keep their layout; a layout_strided view must be
/// contiguous in row-major order and gives layout_right. The element count must not change.
/// Throws llm::error otherwise (copy into a tensor first to reshape a transpose or a slice).
/// Template parameters:
///   X          — a view or an lvalue tensor.
///   NewExtents — the result's extents (static ones kept).
/// Example: `auto m = llm::reshape(v, llm::extents<llm::dyn, 64>(n / 64));`
template <viewable X, extents_like NewExtents>
auto reshape(X&& x, const NewExtents& new_extents) {
    using V = view_of<X>;
    using layout = std::conditional_t<std::is_same_v<typename V::layout_type, layout_left>, layout_left, layout_right>;
    using result =
        tensor_view<typename V::element_type, NewExtents, layout, typename V::device_type, typename V::accessor_type>;
    const V v = x.view();
    std::size_t count = 1;
    bool overflow = false;
    for (std::size_t r = 0; r < NewExtents::rank(); ++r) {
        overflow = overflow || __builtin_mul_overflow(count, new_extents.extent(r), &count);
    }
    if (overflow || count != v.size()) [[unlikely]] {
        llm::fail("reshape: cannot view extents ", detail::tensor_impl::shape_string(v.extents()), " (", v.size(),
             " elements) as ", detail::tensor_impl::shape_string(new_extents), " (",
             overflow ? std::string("overflowing std::size_t") : std::to_string(count), " elements)");
    }
    if constexpr (std::is_same_v<typename V::layout_type, layout_strided>) {
        if (!v.is_contiguous()) [[unlikely]] {
            llm::fail("reshape: the view (extents ", detail::tensor_impl::shape_string(v.extents()), ", strides ",
                 detail::tensor_impl::strides_string(v),
                 ") is not contiguous in row-major order; copy it into a tensor first");
        }
    }
    return result(v.data(), typename result::mapping_type(new_extents), v.accessor());
}

/// reshape to all-dynamic extents given as sizes. Example: `auto m = llm::reshape(v, 3, 4);`
template <viewable X, std::integral... Sizes>
    requires(sizeof...(Sizes) > 0)
auto reshape(X&& x, Sizes... sizes) {
    return reshape(std::forward<X>(x), dims<sizeof...(Sizes)>(sizes...));
}

/// The block starting at `offsets` with extents `sizes`, in one step. What it adds over
/// chained slices: `sizes` may be static (`llm::extents<8, 8>{}`), so tiles of a
/// run-time-sized matrix get compile-time extents.
/// Shape contract: offsets[r] + sizes.extent(r) <= extent(r) for every r; the result is
/// layout_strided with the input's strides. Throws llm::error otherwise.
/// Template parameters:
///   X     — a view or an lvalue tensor.
///   Sizes — the result's extents: llm::extents (static kept) of the same rank.
/// Example: `auto tile = llm::subtensor(a, {i, k}, llm::extents<8, 8>{});`
template <viewable X, extents_like Sizes>
    requires(Sizes::rank() == view_of<X>::rank())
auto subtensor(X&& x, const std::array<std::size_t, view_of<X>::rank()>& offsets, const Sizes& sizes) {
    using V = view_of<X>;
    const V v = x.view();
    std::array<std::size_t, V::rank()> ext{};
    std::size_t offset = 0;
    for (std::size_t r = 0; r < V::rank(); ++r) {
        ext[r] = sizes.extent(r);
        if (offsets[r] > v.extent(r) || ext[r] > v.extent(r) - offsets[r]) [[unlikely]] {
            llm::fail("subtensor: offset ", offsets[r], " + size ", ext[r], " of dim ", r, " exceeds extent ", v.extent(r),
                 " (extents ", detail::tensor_impl::shape_string(v.extents()), ")");
        }
        offset += offsets[r] * v.stride(r);
    }
    return detail::tensor_impl::make_offset_view<Sizes, layout_strided>(v, sizes.size() != 0 ? offset : 0, ext,
                                                                         detail::tensor_impl::strides_array(v));
}

/// subtensor with run-time sizes (all-dynamic result).
/// Example: `auto block = llm::subtensor(a, {1, 2}, {3, 4});`
template <viewable X>
auto subtensor(X&& x, const std::array<std::size_t, view_of<X>::rank()>& offsets,
               const std::array<std::size_t, view_of<X>::rank()>& sizes) {
    return subtensor(std::forward<X>(x), offsets, dims<view_of<X>::rank()>(sizes));
}

}  // namespace llm
