// SPDX-License-Identifier: Apache-2.0
// Whole-tensor element loops on the host: llm::fill, llm::copy and llm::convert.
#pragma once

#include <llm/core/element_type.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

namespace llm {

namespace detail::tensor_impl {

// Calls f(offset_a, offset_b) for every multi-index in row-major order, where offset_x is
// the index dotted with strides_x. The innermost dimension is a plain counted loop so that
// element-wise bodies vectorise when its strides are 1. Layout mappings are strided (offset
// = sum of index * stride), which every llm layout is.
template <std::size_t R, class F>
void for_each_offset(const std::array<std::size_t, R>& ext, const std::array<std::size_t, R>& sa,
                     const std::array<std::size_t, R>& sb, F&& f) {
    if constexpr (R == 0) {
        f(std::size_t{0}, std::size_t{0});
    } else {
        for (std::size_t e : ext) {
            if (e == 0) {
                return;
            }
        }
        std::array<std::size_t, R> idx{};
        std::size_t oa = 0;
        std::size_t ob = 0;
        const std::size_t n = ext[R - 1];
        const std::size_t ia = sa[R - 1];
        const std::size_t ib = sb[R - 1];
        for (;;) {
            for (std::size_t i = 0; i < n; ++i) {
                f(oa + i * ia, ob + i * ib);
            }
            std::size_t r = R - 1;
            for (;;) {  // odometer over the outer dimensions
                if (r == 0) {
                    return;
                }
                --r;
                oa += sa[r];
                ob += sb[r];
                if (++idx[r] < ext[r]) {
                    break;
                }
                oa -= sa[r] * ext[r];
                ob -= sb[r] * ext[r];
                idx[r] = 0;
            }
        }
    }
}

// True when both views put the same multi-index at the same offset and cover 0..size()-1,
// so that one linear loop over the memory visits matching elements (in whatever order).
template <class A, class B>
bool same_dense_order(const A& a, const B& b) {
    if (!a.is_exhaustive() || !b.is_exhaustive()) {
        return false;
    }
    for (std::size_t r = 0; r < A::rank(); ++r) {
        if (a.extent(r) > 1 && a.stride(r) != b.stride(r)) {
            return false;
        }
    }
    return true;
}

template <class A, class B>
void check_same_extents(const char* function, const A& src, const B& dst) {
    if (!(src.extents() == dst.extents())) [[unlikely]] {
        llm::fail(function, ": src extents ", shape_string(src.extents()), " differ from dst extents ",
             shape_string(dst.extents()));
    }
}

template <class V>
void check_unique_dst(const char* function, const V& dst) {
    if (!dst.is_unique()) [[unlikely]] {
        llm::fail(function, ": dst (extents ", shape_string(dst.extents()),
             ") has a non-unique layout (some elements share memory), so the result would depend on order");
    }
}

}  // namespace detail::tensor_impl

/// Sets every element of `dst` to `value`.
/// Shape contract: any extents and layout; dst writable host memory. A non-unique dst (stride
/// 0) is allowed: all its elements get the same value anyway.
/// Template parameters:
///   Dst — a writable host view, or an lvalue llm::tensor.
/// Example: `llm::fill(t, 0.5f);`
template <writable_host_view Dst>
void fill(Dst&& dst, const typename view_of<Dst>::value_type& value) {
    const auto d = dst.view();
    auto* p = d.data();
    if (d.is_exhaustive()) {
        for (std::size_t i = 0, n = d.size(); i < n; ++i) {
            p[i] = value;
        }
        return;
    }
    const auto s = detail::tensor_impl::strides_array(d);
    detail::tensor_impl::for_each_offset(detail::tensor_impl::extents_array(d), s, s, [&](std::size_t o, std::size_t) { p[o] = value; });
}

/// Sets every gradient to zero: the one way gradients are cleared, since every backward of the
/// library accumulates into the gradients it writes (docs/conventions.md, rule 2).
/// Template parameters:
///   Grads — writable host views, or lvalue llm::tensors, of any element types.
/// Example: `llm::zero_grad(dx, dweight); llm::nn::rmsnorm_backward(dx, dweight, rstd, dy, x, weight);`
template <writable_host_view... Grads>
void zero_grad(Grads&&... grads) {
    (fill(grads, typename view_of<Grads>::value_type{}), ...);
}

/// Copies `src` into `dst` element by element (note the order: source first, like std::copy).
/// Shape contract: src.extents() == dst.extents() (same rank, checked at compile time, and
/// same values; static and dynamic may mix), any layouts, same element type (use llm::convert to change it); dst unique;
/// src and dst must not overlap. Throws llm::error on a shape mismatch or a non-unique dst.
/// Template parameters:
///   Src — a host view, or an llm::tensor (a temporary one too).
///   Dst — a writable host view, or an lvalue llm::tensor.
/// Example: `llm::copy(llm::transpose(a, 0, 1), b);`
template <readable_host_view Src, writable_host_view Dst>
    requires(std::same_as<typename const_view_of<Src>::value_type, typename view_of<Dst>::value_type> &&
             const_view_of<Src>::rank() == view_of<Dst>::rank())
void copy(Src&& src, Dst&& dst) {
    const auto s = std::as_const(src).view();
    const auto d = dst.view();
    detail::tensor_impl::check_same_extents("copy", s, d);
    detail::tensor_impl::check_unique_dst("copy", d);
    if (detail::tensor_impl::same_dense_order(s, d)) {
        if (d.size() != 0) {
            std::memmove(d.data(), s.data(), d.size() * sizeof(typename view_of<Dst>::value_type));
        }
        return;
    }
    const auto* ps = s.data();
    auto* pd = d.data();
    detail::tensor_impl::for_each_offset(detail::tensor_impl::extents_array(d), detail::tensor_impl::strides_array(s),
                                   detail::tensor_impl::strides_array(d), [&](std::size_t os, std::size_t od) { pd[od] = ps[os]; });
}

/// Copies `src` into `dst` converting each element between the element types float,
/// double, llm::bf16, llm::f16, llm::fp8_e4m3 and llm::fp8_e5m2 with llm::element_cast: one
/// rounding to nearest even (double sources directly, others exactly through float). Pass
/// llm::saturate to clamp overflow to the destination's largest finite value.
/// Shape contract: as llm::copy (same extents, any layouts, dst unique, no overlap).
/// Template parameters:
///   Src  — a host view, or an llm::tensor (a temporary one too), of an llm::element_type.
///   Dst  — a writable host view, or an lvalue llm::tensor, of an llm::element_type.
///   Mode — nothing, or llm::saturate_t.
/// Example: `llm::convert(weights_f32, weights_bf16);`
template <readable_host_view Src, writable_host_view Dst, class... Mode>
    requires element_type<typename const_view_of<Src>::value_type> && element_type<typename view_of<Dst>::value_type> &&
             (const_view_of<Src>::rank() == view_of<Dst>::rank()) &&
             (sizeof...(Mode) == 0 || (sizeof...(Mode) == 1 && (std::same_as<Mode, saturate_t> && ...)))
void convert(Src&& src, Dst&& dst, Mode... mode) {
    using To = typename view_of<Dst>::value_type;
    const auto s = std::as_const(src).view();
    const auto d = dst.view();
    detail::tensor_impl::check_same_extents("convert", s, d);
    detail::tensor_impl::check_unique_dst("convert", d);
    const auto* ps = s.data();
    auto* pd = d.data();
    if (detail::tensor_impl::same_dense_order(s, d)) {
        for (std::size_t i = 0, n = d.size(); i < n; ++i) {
            pd[i] = element_cast<To>(ps[i], mode...);
        }
        return;
    }
    detail::tensor_impl::for_each_offset(detail::tensor_impl::extents_array(d), detail::tensor_impl::strides_array(s),
                                   detail::tensor_impl::strides_array(d),
                                   [&](std::size_t os, std::size_t od) { pd[od] = element_cast<To>(ps[os], mode...); });
}

}  // namespace llm
