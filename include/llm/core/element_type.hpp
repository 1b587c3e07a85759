// SPDX-License-Identifier: Apache-2.0
// llm::element_type: the tensor element types and generic conversions between them.
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/detail/minifloat.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/fp8.hpp>

#include <string_view>
#include <type_traits>

namespace llm {

namespace detail {

template <class T>
struct element_name {};
template <>
struct element_name<float> {
    static constexpr std::string_view value = "float";
};
template <>
struct element_name<double> {
    static constexpr std::string_view value = "double";
};
template <>
struct element_name<bf16> {
    static constexpr std::string_view value = "bf16";
};
template <>
struct element_name<f16> {
    static constexpr std::string_view value = "f16";
};
template <>
struct element_name<fp8_e4m3> {
    static constexpr std::string_view value = "fp8_e4m3";
};
template <>
struct element_name<fp8_e5m2> {
    static constexpr std::string_view value = "fp8_e5m2";
};

}  // namespace detail

/// Facts about an element type: empty for a type that is not one (see llm::element_type).
/// T: any type.
/// Example: `llm::element_traits<llm::bf16>::name;  // "bf16"`
template <class T>
struct element_traits {};

/// Facts about one of the library's element types (float, double, bf16, f16, fp8_e4m3,
/// fp8_e5m2).
/// T: a cv-unqualified element type.
template <class T>
requires requires {
    detail::element_name<T>::value;
}
struct element_traits<T> {
    /// The type's name as spelled in C++ (`"bf16"`), for messages and printing.
    static constexpr std::string_view name = detail::element_name<T>::value;
};

/// The floating-point element types tensors and kernels handle: float, double, bf16, f16,
/// fp8_e4m3, fp8_e5m2 (cv-qualified too, so `tensor_view<const bf16, ...>` qualifies).
template <class T>
concept element_type = requires {
    { element_traits<std::remove_cv_t<T>>::name } -> std::convertible_to<std::string_view>;
};

/// x as float: exact for every element type but double, which is rounded to nearest (and
/// overflows to +-Inf like static_cast<float>).
/// T: an element_type.
/// Example: `float y = llm::to_float(llm::bf16(2.5f));  // 2.5f`
template <element_type T>
LLM_HD constexpr float to_float(T x) noexcept {
    return static_cast<float>(x);
}

/// x converted from one element type to another with a single rounding (to nearest even):
/// double sources are rounded directly, every other source goes through float exactly.
/// To, From: element_types.
/// Example: `llm::element_cast<llm::bf16>(1.0039062500000002);  // 1.0078125 (through float: 1.0)`
template <element_type To, element_type From>
LLM_HD constexpr std::remove_cv_t<To> element_cast(From x) noexcept {
    using U = std::remove_cv_t<To>;
    if constexpr (std::is_same_v<std::remove_cv_t<From>, double>) {
        return static_cast<U>(x);
    } else {
        return static_cast<U>(static_cast<float>(x));
    }
}

/// element_cast with saturation (llm::saturate_t, OCP "satfinite"): every result is finite
/// unless x is NaN. What would overflow to +-Inf, and +-Inf itself, becomes +-max of To
/// (also for To = float or double); NaN stays NaN.
/// To, From: element_types.
/// Example: `auto q = llm::element_cast<llm::fp8_e5m2>(llm::f16(65504.0f), llm::saturate);  // 57344`
template <element_type To, element_type From>
LLM_HD constexpr std::remove_cv_t<To> element_cast(From x, saturate_t) noexcept {
    using U = std::remove_cv_t<To>;
    using Source = std::conditional_t<std::is_same_v<std::remove_cv_t<From>, double>, double, float>;
    const Source s = static_cast<Source>(x);
    if constexpr (detail::minifloat_type<U>) {
        return U(s, saturate_t{});
    } else {
        // FLT_MAX / DBL_MAX spelt out, so nvcc needs no host constexpr call. NaN fails both
        // comparisons and stays NaN.
        constexpr U max = std::is_same_v<U, float> ? U(0x1.fffffep127f) : U(0x1.fffffffffffffp1023);
        const U r = static_cast<U>(s);
        return r > max ? max : r < -max ? -max : r;
    }
}

/// f rounded to T (nearest, ties to even; see each type for overflow and NaN); exact for
/// float and double.
/// T: an element_type.
/// Example: `auto h = llm::from_float<llm::f16>(0.1f);  // bits 0x2e66`
template <element_type T>
LLM_HD constexpr std::remove_cv_t<T> from_float(float f) noexcept {
    return element_cast<T>(f);
}

/// f rounded to T with saturation (llm::saturate_t): the result is finite unless f is NaN;
/// overflow and +-Inf give +-max of T (float and double included).
/// T: an element_type.
/// Example: `auto q = llm::from_float<llm::fp8_e4m3>(1e6f, llm::saturate);  // 448`
template <element_type T>
LLM_HD constexpr std::remove_cv_t<T> from_float(float f, saturate_t) noexcept {
    return element_cast<T>(f, saturate_t{});
}

}  // namespace llm
