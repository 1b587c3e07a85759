// SPDX-License-Identifier: Apache-2.0
// llm::tensor_view: a non-owning pointer + layout mapping over elements that live elsewhere.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/accessor.hpp>
#include <llm/tensor/device.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/layout.hpp>
#include <llm/tensor/storage.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

namespace llm {

namespace detail::tensor_impl {
// U* converts to T* by adding const (or volatile) only: the rule for view conversions
// (std::span's), which forbids derived -> base since the elements are arrays.
template <class U, class T>
concept adds_const_only = std::convertible_to<U (*)[], T (*)[]>;

// Whether a mapping of OtherLayout / OtherExtents converts to Mapping, explicitly or
// implicitly: decides the same for views.
template <class Mapping, class OtherLayout, class OtherExtents>
inline constexpr bool mapping_constructible =
    std::constructible_from<Mapping, const typename OtherLayout::template mapping<OtherExtents>&>;
template <class Mapping, class OtherLayout, class OtherExtents>
inline constexpr bool mapping_convertible =
    std::convertible_to<const typename OtherLayout::template mapping<OtherExtents>&, Mapping>;

// Whether a view with accessor OtherAccessor converts to one with Accessor (std::mdspan's
// rule): the accessor and the data handle must, explicitly or implicitly. For default
// accessors that is adding const to the elements.
template <class Accessor, class OtherAccessor>
inline constexpr bool accessor_constructible =
    std::constructible_from<Accessor, const OtherAccessor&> &&
    std::constructible_from<typename Accessor::data_handle_type, const typename OtherAccessor::data_handle_type&>;
template <class Accessor, class OtherAccessor>
inline constexpr bool accessor_convertible =
    std::convertible_to<const OtherAccessor&, Accessor> &&
    std::convertible_to<const typename OtherAccessor::data_handle_type&, typename Accessor::data_handle_type>;
}  // namespace detail::tensor_impl

/// A non-owning view of elements laid out by a mapping, read through an accessor policy (as
/// std::mdspan): the data handle, the mapping and the accessor are all it holds. With the
/// default accessor the handle is a plain `T*` and the accessor is empty, so a view with
/// fully static extents and a layout_right / layout_left mapping is exactly one pointer.
/// Copying a view is cheap and shallow; constness of the elements is in T
/// (`tensor_view<const float, ...>`), not in the view object.
///
/// Element (i...) is `accessor().access(data(), mapping()(i...))`: with the default accessor
/// `data()[mapping()(i...)]`; other accessors decode elements from another storage (e.g.
/// llm::quant::q8_0_accessor over quantization blocks, <llm/quant/accessor.hpp>). Only views
/// with the default accessor are llm::direct_access, so only they reach the dense kernels,
/// fill, copy and printing; slice, select, transpose, reshape and subtensor work for any
/// accessor (slicing moves the handle with `accessor().offset(p, i)`, as std::submdspan).
///
/// Shape contract: data() addresses at least mapping().required_span_size() elements.
/// Element access: operator() is unchecked (LLM_ASSERT in debug builds); at() checks bounds
/// and throws llm::error.
/// Template parameters:
///   T        — element type, possibly const (trivially copyable); Accessor::element_type.
///   Extents  — an llm::extents (static and/or dynamic dimensions).
///   Layout   — a layout policy: layout_right (default), layout_left, layout_strided.
///   Device   — where the elements live: llm::cpu (default) or llm::cuda.
///   Accessor — an llm::accessor_policy whose element_type is T: llm::default_accessor<T>
///              (default) or a user's.
/// Example: `llm::tensor_view<const float, llm::dims<2>> a(ptr, rows, cols); float x = a(i, j);`
template <tensor_element T, extents_like Extents, layout_policy Layout = layout_right, device_tag Device = cpu,
          accessor_policy Accessor = default_accessor<T>>
class tensor_view {
    static_assert(std::is_same_v<typename Accessor::element_type, T>,
                  "tensor_view<T, Extents, Layout, Device, Accessor>: Accessor::element_type must be T");

public:
    using element_type = T;                                           ///< The element type, const kept.
    using value_type = std::remove_cv_t<T>;                           ///< The element type, unqualified.
    using extents_type = Extents;                                     ///< The shape policy.
    using layout_type = Layout;                                       ///< The layout policy.
    using mapping_type = typename Layout::template mapping<Extents>;  ///< Index -> offset.
    using device_type = Device;                                       ///< Where the elements live.
    using accessor_type = Accessor;                                   ///< Offset -> element.
    using data_handle_type = typename Accessor::data_handle_type;     ///< What data() returns (T* by default).
    using pointer = data_handle_type;                                 ///< Same as data_handle_type.
    using reference = typename Accessor::reference;                   ///< What operator() returns (T& by default).
    using index_type = std::size_t;                                   ///< Indices and sizes.

    /// A null view; its dynamic extents are zero.
    LLM_HD constexpr tensor_view() noexcept = default;

    /// Views `p` through `m`. Unchecked (usable in device code): p must address
    /// m.required_span_size() elements.
    LLM_HD constexpr tensor_view(data_handle_type p, const mapping_type& m) noexcept
        requires std::default_initializable<Accessor>
        : map_(m), ptr_(std::move(p)) {}

    /// Views `p` through `m` and the accessor `a` (for accessors with state). Unchecked.
    /// Example: `tensor_view<const float, dims<1>, layout_right, cpu, scaled> v(p, m, scaled{2.0f});`
    LLM_HD constexpr tensor_view(data_handle_type p, const mapping_type& m, const Accessor& a) noexcept
        : map_(m), acc_(a), ptr_(std::move(p)) {}

    /// Views `p` with extents `e` (for layout_strided: row-major strides). Throws llm::error
    /// when p is a null pointer but the extents are not empty.
    tensor_view(data_handle_type p, const Extents& e)
        requires std::constructible_from<mapping_type, const Extents&> && std::default_initializable<Accessor>
        : tensor_view(std::move(p), e, Accessor{}) {}

    /// Views `p` with extents `e` through the accessor `a`; checked as above.
    tensor_view(data_handle_type p, const Extents& e, const Accessor& a)
        requires std::constructible_from<mapping_type, const Extents&>
        : map_(mapping_type(e)), acc_(a), ptr_(std::move(p)) {
        if constexpr (std::is_pointer_v<data_handle_type>) {
            if (ptr_ == nullptr && map_.required_span_size() != 0) [[unlikely]] {
                llm::fail("tensor_view: data pointer is null for extents ", detail::tensor_impl::shape_string(e));
            }
        }
    }

    /// Views `p` with the given sizes: rank_dynamic() of them, or rank() (static ones must
    /// match). Example: `tensor_view<float, extents<dyn, 64>> v(p, n);`
    template <std::integral... Sizes>
        requires(sizeof...(Sizes) > 0 && std::constructible_from<Extents, Sizes...> &&
                 std::constructible_from<mapping_type, const Extents&> && std::default_initializable<Accessor>)
    tensor_view(data_handle_type p, Sizes... sizes) : tensor_view(std::move(p), Extents(sizes...)) {}

    /// Views `p` with fully static extents. Explicit: a bare pointer does not become a view
    /// by accident. Example: `tensor_view<float, extents<3, 4>> v(p);`
    explicit tensor_view(data_handle_type p)
        requires(Extents::rank_dynamic() == 0 && std::constructible_from<mapping_type, const Extents&> &&
                 std::default_initializable<Accessor>)
        : tensor_view(std::move(p), Extents{}) {}

    /// From another view, implicitly where nothing can go wrong: adding const
    /// (view<float> -> view<const float>), forgetting static extents, and turning
    /// layout_right / layout_left into layout_strided. Accessors convert as std::mdspan's do
    /// (the accessor and the data handle must convert); default accessors only add const.
    template <class U, class OtherExtents, class OtherLayout, class OtherAccessor>
        requires detail::tensor_impl::accessor_constructible<Accessor, OtherAccessor> &&
                 detail::tensor_impl::accessor_convertible<Accessor, OtherAccessor> &&
                 detail::tensor_impl::mapping_convertible<mapping_type, OtherLayout, OtherExtents>
    LLM_HD constexpr tensor_view(
        const tensor_view<U, OtherExtents, OtherLayout, Device, OtherAccessor>& other) noexcept
        : map_(other.mapping()), acc_(other.accessor()), ptr_(other.data()) {}

    /// From another view, explicitly where a run-time extent must land on a static one
    /// (checked, llm::error on a mismatch) or where the accessor converts only explicitly.
    /// Example: `tensor_view<float, extents<3, 4>> s(d);`
    template <class U, class OtherExtents, class OtherLayout, class OtherAccessor>
        requires detail::tensor_impl::accessor_constructible<Accessor, OtherAccessor> &&
                 detail::tensor_impl::mapping_constructible<mapping_type, OtherLayout, OtherExtents> &&
                 (!(detail::tensor_impl::accessor_convertible<Accessor, OtherAccessor> &&
                    detail::tensor_impl::mapping_convertible<mapping_type, OtherLayout, OtherExtents>))
    LLM_HD constexpr explicit tensor_view(
        const tensor_view<U, OtherExtents, OtherLayout, Device, OtherAccessor>& other)
        : map_(other.mapping()), acc_(other.accessor()), ptr_(other.data()) {}

    /// Number of dimensions.
    LLM_HD static constexpr std::size_t rank() noexcept { return Extents::rank(); }
    /// Number of dimensions whose extent is stored at run time.
    LLM_HD static constexpr std::size_t rank_dynamic() noexcept { return Extents::rank_dynamic(); }
    /// The compile-time extent of dimension r, or llm::dyn.
    LLM_HD static constexpr std::size_t static_extent(std::size_t r) noexcept { return Extents::static_extent(r); }

    /// The data handle: with the default accessor, a pointer to the element at offset 0
    /// (possibly null when the view is empty).
    LLM_HD constexpr data_handle_type data() const noexcept { return ptr_; }
    /// The accessor policy (empty for llm::default_accessor).
    LLM_HD constexpr const accessor_type& accessor() const noexcept { return acc_; }
    /// The layout mapping (extents and strides).
    LLM_HD constexpr const mapping_type& mapping() const noexcept { return map_; }
    /// The extents.
    LLM_HD constexpr const Extents& extents() const noexcept { return map_.extents(); }
    /// The extent of dimension r.
    LLM_HD constexpr std::size_t extent(std::size_t r) const noexcept { return map_.extents().extent(r); }
    /// Elements between consecutive indices of dimension r.
    LLM_HD constexpr std::size_t stride(std::size_t r) const noexcept { return map_.stride(r); }
    /// Number of elements (the product of the extents).
    LLM_HD constexpr std::size_t size() const noexcept { return map_.extents().size(); }
    /// True when size() == 0.
    LLM_HD constexpr bool empty() const noexcept { return size() == 0; }
    /// Elements data() must address: one past the largest offset.
    LLM_HD constexpr std::size_t required_span_size() const noexcept { return map_.required_span_size(); }
    /// Row-major dense: data()[k] is the k-th element in row-major order (see layout_mapping).
    LLM_HD constexpr bool is_contiguous() const noexcept { return map_.is_contiguous(); }
    /// Dense in some order: the elements are exactly data()[0 .. size()-1].
    LLM_HD constexpr bool is_exhaustive() const noexcept { return map_.is_exhaustive(); }
    /// No two indices share an element.
    LLM_HD constexpr bool is_unique() const noexcept { return map_.is_unique(); }

    /// Element at (is...), unchecked; every index must be below its extent.
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank())
    LLM_HD constexpr reference operator()(Is... is) const
        noexcept(noexcept(std::declval<const Accessor&>().access(std::declval<const data_handle_type&>(), 0))) {
#if !defined(__CUDA_ARCH__)  // LLM_ASSERT prints with fprintf, which device code lacks
        LLM_ASSERT(in_bounds(is...));
#endif
        return acc_.access(ptr_, map_(is...));
    }

    /// Element at (is...); throws llm::error naming the bad index. Host memory only.
    template <std::integral... Is>
        requires(sizeof...(Is) == Extents::rank() && host_device_tag<Device>)
    reference at(Is... is) const {
        if (!in_bounds(is...)) [[unlikely]] {
            out_of_range(is...);
        }
        return (*this)(is...);
    }

    /// Itself: lets generic code call .view() on tensors and views alike.
    LLM_HD constexpr tensor_view view() const noexcept { return *this; }

private:
    template <class... Is>
    LLM_HD constexpr bool in_bounds(Is... is) const noexcept {
        std::size_t r = 0;
        return ((std::cmp_greater_equal(is, 0) && static_cast<std::size_t>(is) < extent(r++)) && ...);
    }

    template <class... Is>
    [[noreturn]] void out_of_range(Is... is) const {
        const std::string shown[] = {std::to_string(is)...};
        std::string all;
        for (const std::string& i : shown) {
            all += all.empty() ? "" : ", ";
            all += i;
        }
        std::size_t r = 0;
        std::size_t bad = rank();
        ((bad = bad == rank() && !(std::cmp_greater_equal(is, 0) && static_cast<std::size_t>(is) < extent(r)) ? r : bad,
          ++r),
         ...);
        llm::fail("tensor_view::at: index ", shown[bad], " is out of range for dim ", bad, " of extent ", extent(bad),
             " (indices [", all, "], extents ", detail::tensor_impl::shape_string(extents()), ")");
    }

    [[no_unique_address]] mapping_type map_{};
    [[no_unique_address]] Accessor acc_{};
    data_handle_type ptr_{};
};

template <class T, std::integral... Sizes>
tensor_view(T*, Sizes...) -> tensor_view<T, dims<sizeof...(Sizes)>>;

namespace detail::tensor_impl {
template <class>
inline constexpr bool is_tensor_view = false;
template <class T, class E, class L, class D, class A>
inline constexpr bool is_tensor_view<tensor_view<T, E, L, D, A>> = true;

template <class V>
std::array<std::size_t, V::rank()> extents_array(const V& v) {
    std::array<std::size_t, V::rank()> e{};
    for (std::size_t r = 0; r < V::rank(); ++r) {
        e[r] = v.extent(r);
    }
    return e;
}

template <class V>
std::array<std::size_t, V::rank()> strides_array(const V& v) {
    std::array<std::size_t, V::rank()> s{};
    for (std::size_t r = 0; r < V::rank(); ++r) {
        s[r] = v.stride(r);
    }
    return s;
}

template <class V>
std::string strides_string(const V& v) {
    std::string s = "[";
    for (std::size_t r = 0; r < V::rank(); ++r) {
        s += r ? ", " : "";
        s += std::to_string(v.stride(r));
    }
    return s + "]";
}

}  // namespace detail::tensor_impl

/// Satisfied by the specialisations of llm::tensor_view (cv-ref qualifiers ignored).
template <class V>
concept tensor_view_like = detail::tensor_impl::is_tensor_view<std::remove_cvref_t<V>>;

/// Anything whose .view() gives a tensor_view: views, and owning tensors that are lvalues
/// (an rvalue llm::tensor refuses .view(), so views of temporaries do not compile).
template <class X>
concept viewable = requires(X&& x) {
    { std::forward<X>(x).view() } -> tensor_view_like;
};

/// The view type of X: `view_of<llm::tensor<float, E>&>` is `tensor_view<float, E>`.
template <viewable X>
using view_of = std::remove_cvref_t<decltype(std::declval<X>().view())>;

/// A viewable whose elements host code may write: not const, in host memory, and plain
/// memory (llm::direct_access: the default accessor).
template <class X>
concept writable_host_view = viewable<X> && direct_access<view_of<X>> &&
                             !std::is_const_v<typename view_of<X>::element_type> &&
                             host_device_tag<typename view_of<X>::device_type>;

/// The view type of X read through a const reference: `const_view_of<llm::tensor<float, E>>`
/// is `tensor_view<const float, E>`; for a view, the view itself.
template <class X>
using const_view_of = std::remove_cvref_t<decltype(std::declval<const std::remove_reference_t<X>&>().view())>;

/// Something host code may read through a const reference for the length of one call: a
/// host view, or an llm::tensor of any value category (a temporary tensor is safe to read
/// here because no view of it outlives the call); plain memory (llm::direct_access), since
/// readers such as copy and to_string use data() directly.
template <class X>
concept readable_host_view = requires(const std::remove_reference_t<X>& x) {
    { x.view() } -> tensor_view_like;
} && direct_access<const_view_of<X>> && host_device_tag<typename const_view_of<X>::device_type>;

}  // namespace llm
