// SPDX-License-Identifier: Apache-2.0
// llm::kernel_view: what every CPU and CUDA kernel sees of a tensor: a pointer, a shape and strides, each static or dynamic per dimension.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/extents.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

namespace llm {

/// A pointer with a shape and strides, both `llm::extents` (as CuTe's `Layout<Shape, Stride>`):
/// each extent and each stride is a compile-time constant or stored at run time. It is the one
/// descriptor kernels take (CPU `.hpp` and CUDA `.cuh` alike): public entry points accept any
/// `llm::view_of_rank`, check it once with `llm::to_kernel_view`, and hand the kernel this.
/// A static stride of 1 on the last dimension lets the compiler vectorise rows without a
/// run-time check; a static extent (head_dim 128) unrolls loops over it.
///
/// Usable in device code (every member is `LLM_HD`); trivially copyable, so it can be a
/// kernel parameter. Element (i...) is `data()[sum i_r * stride(r)]`. It satisfies
/// llm::view_of_rank, so it can also be passed back into any public kernel.
/// Template parameters:
///   T      — element type, possibly const.
///   Shape  — an llm::extents: the extents (static or llm::dyn per dimension).
///   Stride — an llm::extents of the same rank: the strides in elements (static or llm::dyn).
/// Example: `llm::kernel_view<const float, llm::dims<2>, llm::extents<llm::dyn, 1>> x = llm::to_kernel_view<llm::dims<2>, llm::extents<llm::dyn, 1>>("f", "x", t);`
template <class T, extents_like Shape, extents_like Stride = dims<Shape::rank()>>
    requires(Shape::rank() == Stride::rank())
class kernel_view {
public:
    using element_type = T;          ///< The element type, const kept.
    using shape_type = Shape;        ///< The extents policy.
    using stride_type = Stride;      ///< The strides policy.

    /// A null view; dynamic extents and strides are 0.
    LLM_HD constexpr kernel_view() noexcept = default;
    /// `p` with the given shape and strides. Unchecked: see llm::to_kernel_view for the checked way.
    LLM_HD constexpr kernel_view(T* p, const Shape& shape, const Stride& stride) noexcept
        : shape_(shape), stride_(stride), data_(p) {}

    /// From a kernel_view whose static extents and strides are a subset of ours (forgetting
    /// static information; adding const). Implicit: nothing can go wrong.
    template <class U, class S2, class D2>
        requires(std::is_convertible_v<U (*)[], T (*)[]> && std::is_convertible_v<S2, Shape> &&
                 std::is_convertible_v<D2, Stride>)
    LLM_HD constexpr kernel_view(const kernel_view<U, S2, D2>& other) noexcept  // NOLINT(google-explicit-constructor)
        : shape_(other.shape()), stride_(other.strides()), data_(other.data()) {}

    /// Number of dimensions.
    LLM_HD static constexpr std::size_t rank() noexcept { return Shape::rank(); }
    /// Pointer to element (0, ..., 0).
    LLM_HD constexpr T* data() const noexcept { return data_; }
    /// The extents.
    LLM_HD constexpr const Shape& shape() const noexcept { return shape_; }
    /// The strides, as an extents object.
    LLM_HD constexpr const Stride& strides() const noexcept { return stride_; }
    /// Extent of dimension r (a constant when static).
    LLM_HD constexpr std::size_t extent(std::size_t r) const noexcept { return shape_.extent(r); }
    /// Stride of dimension r in elements (a constant when static).
    LLM_HD constexpr std::size_t stride(std::size_t r) const noexcept { return stride_.extent(r); }
    /// Number of elements.
    LLM_HD constexpr std::size_t size() const noexcept { return shape_.size(); }
    /// True when some extent is 0.
    LLM_HD constexpr bool empty() const noexcept { return size() == 0; }

    /// Offset of element (i...) in elements; unchecked.
    template <class... I>
        requires(sizeof...(I) == Shape::rank())
    LLM_HD LLM_FORCE_INLINE constexpr std::size_t offset(I... i) const noexcept {
        return offset_of(std::make_index_sequence<Shape::rank()>{}, i...);
    }
    /// Element (i...); unchecked.
    template <class... I>
        requires(sizeof...(I) == Shape::rank())
    LLM_HD LLM_FORCE_INLINE constexpr T& operator()(I... i) const noexcept {
        return data_[offset(i...)];
    }
    /// Pointer to element (i...): with a unit last stride, the start of a contiguous row.
    template <class... I>
        requires(sizeof...(I) == Shape::rank())
    LLM_HD LLM_FORCE_INLINE constexpr T* ptr(I... i) const noexcept {
        return data_ + offset(i...);
    }

    /// The same memory with dimensions A and B swapped (a matrix's transpose): no copy.
    /// Example: `auto at = a.transposed<0, 1>();  // at(j, i) == a(i, j)`
    template <std::size_t A, std::size_t B>
        requires(A < Shape::rank() && B < Shape::rank())
    LLM_HD constexpr auto transposed() const noexcept {
        using S = swapped_t<Shape, A, B>;
        using D = swapped_t<Stride, A, B>;
        return kernel_view<T, S, D>(data_, S(swap_values<A, B>(shape_)), D(swap_values<A, B>(stride_)));
    }

private:
    template <class E, std::size_t A, std::size_t B, class Seq = std::make_index_sequence<E::rank()>>
    struct swapped;
    template <class E, std::size_t A, std::size_t B, std::size_t... R>
    struct swapped<E, A, B, std::index_sequence<R...>> {
        using type = extents<E::static_extent(R == A ? B : R == B ? A : R)...>;
    };
    template <class E, std::size_t A, std::size_t B>
    using swapped_t = typename swapped<E, A, B>::type;

    template <std::size_t A, std::size_t B, class E>
    LLM_HD static constexpr std::array<std::size_t, E::rank()> swap_values(const E& e) noexcept {
        std::array<std::size_t, E::rank()> v{};
        for (std::size_t r = 0; r < E::rank(); ++r) {
            v[r] = e.extent(r == A ? B : r == B ? A : r);
        }
        return v;
    }

    template <std::size_t... R, class... I>
    LLM_HD LLM_FORCE_INLINE constexpr std::size_t offset_of(std::index_sequence<R...>, I... i) const noexcept {
        return ((static_cast<std::size_t>(i) * stride_.extent(R)) + ... + std::size_t{0});
    }

    [[no_unique_address]] Shape shape_{};
    [[no_unique_address]] Stride stride_{};
    T* data_ = nullptr;
};

namespace detail::tensor_impl {
template <std::size_t R, std::size_t... I>
auto unit_last(std::index_sequence<I...>) -> extents<(I + 1 == R ? std::size_t{1} : dyn)...>;
}  // namespace detail::tensor_impl

/// Strides of rank R whose last one is statically 1 (rows contiguous), the others dynamic:
/// `llm::unit_last_stride<3>` is `llm::extents<llm::dyn, llm::dyn, 1>`.
/// Example: `llm::kernel_view<float, llm::dims<2>, llm::unit_last_stride<2>> rows;`
template <std::size_t R>
using unit_last_stride = decltype(detail::tensor_impl::unit_last<R>(std::make_index_sequence<R>{}));

/// A kernel_view with every extent and stride dynamic: `llm::strided_view<float, 2>` is a
/// general strided matrix (any layout, transposes included).
/// Example: `llm::strided_view<const float, 2> a = llm::to_kernel_view<2>("gemm", "A", a_view);`
template <class T, std::size_t R>
using strided_view = kernel_view<T, dims<R>, dims<R>>;

/// A kernel_view of rank R whose last dimension is contiguous (static stride 1): rows of
/// tokens, heads of head_dim. Example: `llm::row_view<const float, 2> x;  // x.ptr(i, 0) is row i`
template <class T, std::size_t R>
using row_view = kernel_view<T, dims<R>, unit_last_stride<R>>;

namespace detail::tensor_impl {
template <class V>
std::string kernel_shape_string(const V& v, bool strides) {
    std::string s = "[";
    for (std::size_t r = 0; r < std::remove_cvref_t<V>::rank(); ++r) {
        s += r ? ", " : "";
        s += std::to_string(strides ? static_cast<std::size_t>(v.stride(r)) : static_cast<std::size_t>(v.extent(r)));
    }
    return s + "]";
}
}  // namespace detail::tensor_impl

/// Checks `v` against the static extents of Shape and the static strides of Stride and returns
/// it as a kernel_view; `fn` and `arg` name the call and the argument in the llm::error thrown
/// on a mismatch ("rmsnorm_forward: x must have stride 1 in dim 1 (its strides are [1, 7])").
/// A dimension of extent <= 1 is never refused for its stride (no two elements are that far
/// apart); its stride is then recorded as the static value so that the view stays consistent.
/// Template parameters:
///   Shape  — required extents (llm::dyn where any extent is fine).
///   Stride — required strides (llm::dyn where any stride is fine).
/// Example: `auto q = llm::to_kernel_view<llm::dims<4>, llm::unit_last_stride<4>>("flash_forward", "q", q_view);`
template <extents_like Shape, extents_like Stride = dims<Shape::rank()>, class V>
    requires view_of_rank<V, Shape::rank()>
[[nodiscard]] kernel_view<view_element_t<std::remove_reference_t<V>>, Shape, Stride> to_kernel_view(const char* fn,
                                                                                                   const char* arg,
                                                                                                   V&& v) {
    constexpr std::size_t R = Shape::rank();
    std::array<std::size_t, R> e{}, s{};
    for (std::size_t r = 0; r < R; ++r) {
        e[r] = static_cast<std::size_t>(v.extent(r));
        s[r] = static_cast<std::size_t>(v.stride(r));
        const std::size_t want_e = Shape::static_extent(r), want_s = Stride::static_extent(r);
        llm::check(want_e == dyn || want_e == e[r], fn, ": ", arg, " must have extent ", want_e, " in dim ", r,
                   " (its extents are ", detail::tensor_impl::kernel_shape_string(v, false), ")");
        if (want_s != dyn && s[r] != want_s) {
            llm::check(e[r] <= 1, fn, ": ", arg, " must have stride ", want_s, " in dim ", r, " (its strides are ",
                       detail::tensor_impl::kernel_shape_string(v, true), ")");
            s[r] = want_s;
        }
    }
    return {v.data(), Shape(e), Stride(s)};
}

/// to_kernel_view with every extent and stride dynamic (never throws): `llm::strided_view<T, R>`.
/// Example: `auto a = llm::to_kernel_view<2>(a_view);`
template <std::size_t R, class V>
    requires view_of_rank<V, R>
[[nodiscard]] strided_view<view_element_t<std::remove_reference_t<V>>, R> to_kernel_view(V&& v) {
    return to_kernel_view<dims<R>, dims<R>>("to_kernel_view", "view", std::forward<V>(v));
}

namespace detail::tensor_impl {
template <class E, std::size_t Dim, std::size_t X, class Seq = std::make_index_sequence<E::rank()>>
struct with_extent;
template <class E, std::size_t Dim, std::size_t X, std::size_t... R>
struct with_extent<E, Dim, X, std::index_sequence<R...>> {
    using type = extents<(R == Dim ? X : E::static_extent(R))...>;
};

template <std::size_t Dim, std::size_t First, std::size_t... Rest, class T, class Shape, class Stride, class F>
decltype(auto) dispatch_extent(const kernel_view<T, Shape, Stride>& v, F& f) {
    using result = decltype(f(v));
    if (v.extent(Dim) == First) {
        using S = typename with_extent<Shape, Dim, First>::type;
        std::array<std::size_t, Shape::rank()> e{};
        for (std::size_t r = 0; r < Shape::rank(); ++r) {
            e[r] = v.extent(r);
        }
        return static_cast<result>(f(kernel_view<T, S, Stride>(v.data(), S(e), v.strides())));
    }
    if constexpr (sizeof...(Rest) == 0) {
        return static_cast<result>(f(v));
    } else {
        return dispatch_extent<Dim, Rest...>(v, f);
    }
}
}  // namespace detail::tensor_impl

/// Calls f(w) where w is `v` with dimension Dim's extent made static when it equals one of
/// Candidates, else f(v) unchanged: the one place where a run-time size (head_dim, d_state)
/// becomes a compile-time one, so a kernel written once is instantiated per common size and
/// a fallback, instead of switching by hand. f must return the same type for every w.
/// Example: `llm::with_static_extent<3, 64, 128>(q, [&](auto qs) { kernel(qs, ...); });`
template <std::size_t Dim, std::size_t... Candidates, class T, class Shape, class Stride, class F>
    requires(Dim < Shape::rank())
decltype(auto) with_static_extent(const kernel_view<T, Shape, Stride>& v, F&& f) {
    using result = decltype(f(v));
    if constexpr (sizeof...(Candidates) == 0 || Shape::static_extent(Dim) != dyn) {
        return static_cast<result>(f(v));
    } else {
        return detail::tensor_impl::dispatch_extent<Dim, Candidates...>(v, f);
    }
}

}  // namespace llm
