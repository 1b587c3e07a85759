// SPDX-License-Identifier: Apache-2.0
// Which SIMD backends hold a vector in one x86 register (__m256 or __m512), and the conversions, for
// code that drops to intrinsics where the facade has no operation (register transposes, vscalefps).
#pragma once

#include <llm/config.hpp>
// The backends first: GCC 12 then reports no false -Wmaybe-uninitialized from the AVX-512
// intrinsics that xsimd inlines (PR 105593); included first from here, <immintrin.h> made them
// errors in -Werror builds of code that never calls this header's functions.
#include <llm/simd/simd.hpp>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace llm::simd::detail {

#if defined(__AVX__)
/// Backends whose vector is one x86 register of S::width floats (__m256: 8, __m512: 16):
/// Highway's Vec (`raw`) and xsimd's batch (`register_type`), and the conversions.
inline void takes_register(__m256) noexcept {}
#if defined(__AVX512F__)
inline void takes_register(__m512) noexcept {}
#endif

template <class S>
concept one_register_backend = (S::width == 8 || S::width == 16) &&
                               (
                                   requires(typename S::f32 v) { takes_register(v.raw); } ||
                                   requires(typename S::f32 v) {
                                       typename S::f32::register_type;
                                       takes_register(static_cast<typename S::f32::register_type>(v));
                                   });

template <class S>
LLM_FORCE_INLINE auto to_register(typename S::f32 v) noexcept {
    if constexpr (requires { v.raw; }) {
        return v.raw;
    } else {
        return static_cast<typename S::f32::register_type>(v);
    }
}

template <class S>
LLM_FORCE_INLINE typename S::f32 from_register(decltype(to_register<S>(typename S::f32{})) r) noexcept {
    if constexpr (requires(typename S::f32 v) { v.raw; }) {
        return typename S::f32{r};
    } else {
        return typename S::f32(r);
    }
}
#endif

}  // namespace llm::simd::detail
