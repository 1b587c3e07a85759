// SPDX-License-Identifier: Apache-2.0
// Partial (tail) loads and stores through a stack buffer, and per-lane 16-bit float decoding, for targets lacking the instructions.
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/simd/scalar.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace llm::simd::detail {

// Each helper copies exactly n elements between memory and a zero-filled buffer of one
// vector, then does a full-width access on the buffer: it never touches p[n] or beyond
// (AddressSanitizer stays clean and no page past the end can fault). Backends use them
// where the target has no masked load/store that suppresses faults (everything below
// AVX-512 here); the cost is a store-to-load forward on one vector per tail.
// S: a type satisfying llm::simd::backend; n <= S::width.

template <class S>
LLM_FORCE_INLINE typename S::f32 buffered_load_partial(const float* p, std::size_t n) noexcept {
    alignas(64) float buf[S::width] = {};
    std::memcpy(buf, p, n * sizeof(float));
    return S::load(buf);
}

template <class S>
LLM_FORCE_INLINE void buffered_store_partial(float* p, typename S::f32 v, std::size_t n) noexcept {
    alignas(64) float buf[S::width];
    S::store(buf, v);
    std::memcpy(p, buf, n * sizeof(float));
}

template <class S, class Half>
LLM_FORCE_INLINE typename S::f32 buffered_load_half_partial(const Half* p, std::size_t n) noexcept {
    alignas(64) Half buf[S::width];
    std::memset(static_cast<void*>(buf), 0, sizeof(buf));
    std::memcpy(static_cast<void*>(buf), p, n * sizeof(Half));
    if constexpr (std::is_same_v<Half, llm::bf16>) {
        return S::load_bf16(buf);
    } else {
        return S::load_f16(buf);
    }
}

template <class S>
LLM_FORCE_INLINE void buffered_store_bf16_partial(llm::bf16* p, typename S::f32 v, std::size_t n) noexcept {
    alignas(64) llm::bf16 buf[S::width];
    S::store_bf16(buf, v);
    std::memcpy(static_cast<void*>(p), buf, n * sizeof(llm::bf16));
}

/// width bf16 or f16 values decoded one by one by the scalar backend, then loaded: for
/// targets without a vector conversion (Highway 1.0.3 emulates f16 below AVX2 and maps Inf
/// and NaN codes to finite numbers; xsimd 8.1 has no 16-bit floats at all).
template <class S, class Half>
LLM_FORCE_INLINE typename S::f32 decode_each(const Half* p) noexcept {
    alignas(64) float lanes[S::width];
    for (std::size_t i = 0; i < S::width; ++i) {
        if constexpr (std::is_same_v<Half, llm::bf16>) {
            lanes[i] = scalar::load_bf16(p + i);
        } else {
            lanes[i] = scalar::load_f16(p + i);
        }
    }
    return S::load(lanes);
}

}  // namespace llm::simd::detail
