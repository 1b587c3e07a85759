// SPDX-License-Identifier: Apache-2.0
// Internals of llm::train: a contiguous view of any rank seen as one flat array, the lane-wise
// square root the optimisers need, and the walks (visitor or range) over named tensors.
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/concepts.hpp>

#include <cmath>
#include <cstddef>
#include <ranges>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace llm::train {

/// A strided view of any rank (llm::view_of_rank for its own rank): what the optimisers, the
/// gradient clipping and EMA take for one parameter, gradient or state tensor. Used flat, so it
/// must be contiguous (row-major, checked at run time with a message naming the tensor).
/// Example: `static_assert(llm::train::any_view<llm::tensor<float, llm::dims<3>>&>);`
template <class V>
concept any_view = requires { std::remove_cvref_t<V>::rank(); } && view_of_rank<V, std::remove_cvref_t<V>::rank()>;

/// An any_view of fp32 or bf16 elements (const or not).
/// Example: `static_assert(llm::train::any_dense_view<llm::tensor_view<const llm::bf16, llm::dims<2>>>);`
template <class V>
concept any_dense_view = any_view<V> && float_or_bf16<view_element_t<V>>;

/// An any_view of writable fp32 elements: master weights and optimiser state.
/// Example: `static_assert(llm::train::any_f32_view<llm::tensor<float, llm::dims<2>>&>);`
template <class V>
concept any_f32_view = any_view<V> && std::same_as<view_element_t<V>, float>;

namespace detail {

// A contiguous run of elements with the rank of the view it came from.
template <class T>
struct flat {
    T* data = nullptr;
    std::size_t size = 0;
    std::size_t rank = 0;
};

// The elements of `v` as one flat run; llm::error naming `fn` and `what` when not contiguous.
template <any_view V>
flat<view_element_t<V>> flat_of(const char* fn, std::string_view what, V&& v) {
    constexpr std::size_t R = std::remove_cvref_t<V>::rank();
    std::size_t n = 1;
    std::size_t expect = 1;
    bool contiguous = true;
    for (std::size_t r = R; r-- > 0;) {
        const std::size_t e = static_cast<std::size_t>(v.extent(r));
        if (e > 1 && static_cast<std::size_t>(v.stride(r)) != expect) contiguous = false;
        expect *= e;
        n *= e;
    }
    check(contiguous, fn, ": ", what, " is not contiguous (row-major without gaps); copy it first");
    return {v.data(), n, R};
}

// Checks that two flat runs have the same number of elements.
template <class A, class B>
void check_same_size(const char* fn, std::string_view name, const char* a_name, const flat<A>& a, const char* b_name,
                     const flat<B>& b) {
    check(a.size == b.size, fn, ": tensor '", name, "': ", a_name, " has ", a.size, " elements but ", b_name, " has ",
          b.size);
}

// Loads S::width elements of fp32 or bf16 as floats (whole vector or the first n).
template <simd::backend S, class T>
LLM_FORCE_INLINE typename S::f32 load_any(const T* p) noexcept {
    if constexpr (std::is_same_v<std::remove_const_t<T>, bf16>) return S::load_bf16(p);
    else return S::loadu(p);
}
template <simd::backend S, class T>
LLM_FORCE_INLINE typename S::f32 load_any_partial(const T* p, std::size_t n) noexcept {
    if constexpr (std::is_same_v<std::remove_const_t<T>, bf16>) return S::load_bf16_partial(p, n);
    else return S::load_partial(p, n);
}
template <simd::backend S, class T>
LLM_FORCE_INLINE void store_any(T* p, typename S::f32 v) noexcept {
    if constexpr (std::is_same_v<T, bf16>) S::store_bf16(p, v);
    else S::storeu(p, v);
}
template <simd::backend S, class T>
LLM_FORCE_INLINE void store_any_partial(T* p, typename S::f32 v, std::size_t n) noexcept {
    if constexpr (std::is_same_v<T, bf16>) S::store_bf16_partial(p, v, n);
    else S::store_partial(p, v, n);
}

template <class S>
struct is_xsimd : std::false_type {};
#if LLM_HAS_XSIMD
template <class A>
struct is_xsimd<simd::xsimd_arch<A>> : std::true_type {};
#endif

// Correctly rounded square root lane-wise (IEEE sqrt, as torch's Tensor.sqrt): the backend's
// own instruction where the facade's vector type is known, else one std::sqrt per lane.
template <simd::backend S>
LLM_FORCE_INLINE typename S::f32 sqrt(typename S::f32 v) noexcept {
    if constexpr (std::is_same_v<S, simd::scalar>) {
        return std::sqrt(v);
    }
#if LLM_HAS_HWY
    else if constexpr (std::is_same_v<S, simd::highway>) {
        return hwy::HWY_NAMESPACE::Sqrt(v);
    }
#endif
#if LLM_HAS_XSIMD
    else if constexpr (is_xsimd<S>::value) {
        return xsimd::sqrt(v);
    }
#endif
    else {
        float lanes[S::width];
        S::storeu(lanes, v);
        for (float& x : lanes) x = std::sqrt(x);
        return S::loadu(lanes);
    }
}

// Calls f(name, views...) for every entry of `walk`: a callable taking a visitor (walk(f)
// calls f(name, views...) per tensor, as a model's for_each_param does) or a range of
// tuple-likes (name, views...).
template <class Walk, class F>
void visit(Walk&& walk, F&& f) {
    if constexpr (std::ranges::range<Walk>) {
        for (auto&& e : walk) std::apply(f, e);
    } else {
        walk(f);
    }
}

}  // namespace detail
}  // namespace llm::train
