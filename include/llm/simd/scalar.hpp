// SPDX-License-Identifier: Apache-2.0
// llm::simd::scalar: the width-1 SIMD backend in plain C++, always available; the facade's reference.
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/simd/detail/exp.hpp>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace llm::simd {

/// The scalar backend: one float per "vector", every operation a plain C++ expression. It
/// is always available, compiles anywhere, and is the oracle the vector backends are tested
/// against (same exp algorithm, same conversions as llm::bf16 / llm::f16). Contracts of
/// every member: see the concept llm::simd::backend in <llm/simd/simd.hpp>.
/// min(a, b) is `a < b ? a : b` and max(a, b) is `a > b ? a : b`: the second operand when
/// either is NaN, like x86 minps/maxps, so scalar and x86 vector backends agree lane by lane.
/// Every member is LLM_HD (host and device): under nvcc the same scalar code runs in a CUDA
/// thread (std::fma, std::fabs and std::floor have float device overloads in CUDA's `<cmath>`).
/// Example: `float y = llm::simd::scalar::exp(llm::simd::scalar::set1(1.0f));`
struct scalar {
    /// Members required by llm::simd::backend; see it for their contracts.
    ///@{
    using f32 = float;
    static constexpr std::size_t width = 1;
    static constexpr std::string_view name = "scalar";
    /// std::fma is always correctly rounded (in software where the CPU has no fma).
    static constexpr bool fused_fma = true;

    LLM_HD static LLM_FORCE_INLINE f32 zero() noexcept { return 0.0f; }
    LLM_HD static LLM_FORCE_INLINE f32 set1(float x) noexcept { return x; }

    LLM_HD static LLM_FORCE_INLINE f32 load(const float* p) noexcept { return *p; }
    LLM_HD static LLM_FORCE_INLINE f32 loadu(const float* p) noexcept { return *p; }
    LLM_HD static LLM_FORCE_INLINE f32 load_partial(const float* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        return n != 0 ? *p : 0.0f;
    }
    LLM_HD static LLM_FORCE_INLINE void store(float* p, f32 v) noexcept { *p = v; }
    LLM_HD static LLM_FORCE_INLINE void storeu(float* p, f32 v) noexcept { *p = v; }
    LLM_HD static LLM_FORCE_INLINE void store_partial(float* p, f32 v, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        if (n != 0) {
            *p = v;
        }
    }

    LLM_HD static LLM_FORCE_INLINE f32 add(f32 a, f32 b) noexcept { return a + b; }
    LLM_HD static LLM_FORCE_INLINE f32 sub(f32 a, f32 b) noexcept { return a - b; }
    LLM_HD static LLM_FORCE_INLINE f32 mul(f32 a, f32 b) noexcept { return a * b; }
    LLM_HD static LLM_FORCE_INLINE f32 div(f32 a, f32 b) noexcept { return a / b; }
    /// a * b + c with one rounding (std::fma: a hardware fma wherever -mfma or better is on).
    LLM_HD static LLM_FORCE_INLINE f32 fma(f32 a, f32 b, f32 c) noexcept { return std::fma(a, b, c); }
    LLM_HD static LLM_FORCE_INLINE f32 min(f32 a, f32 b) noexcept { return a < b ? a : b; }
    LLM_HD static LLM_FORCE_INLINE f32 max(f32 a, f32 b) noexcept { return a > b ? a : b; }
    LLM_HD static LLM_FORCE_INLINE f32 abs(f32 a) noexcept { return std::fabs(a); }
    LLM_HD static LLM_FORCE_INLINE f32 neg(f32 a) noexcept { return -a; }

    LLM_HD static LLM_FORCE_INLINE float reduce_add(f32 v) noexcept { return v; }
    LLM_HD static LLM_FORCE_INLINE float reduce_max(f32 v) noexcept { return v; }

    LLM_HD static LLM_FORCE_INLINE f32 floor(f32 v) noexcept { return std::floor(v); }
    /// 2^n for integral n in [-126, 127]: see detail::pow2i_shifter.
    LLM_HD static LLM_FORCE_INLINE f32 pow2i(f32 n) noexcept {
        LLM_ASSERT(n >= -126.0f && n <= 127.0f);
        return std::bit_cast<float>(std::bit_cast<std::uint32_t>(n + detail::pow2i_shifter) << 23);
    }
    LLM_HD static LLM_FORCE_INLINE f32 select_lt(f32 a, f32 b, f32 t, f32 f) noexcept {
        return a < b ? t : f;
    }
    /// Fast exp; accuracy and behaviour out of range: llm::simd::detail::fast_exp.
    LLM_HD static LLM_FORCE_INLINE f32 exp(f32 x) noexcept { return detail::fast_exp<scalar>(x); }

    /// bf16 is the top half of a float: the code shifted up, as every backend does it (so a
    /// signalling bf16 NaN stays signalling, where static_cast<float>(llm::bf16) quietens it).
    LLM_HD static LLM_FORCE_INLINE f32 load_bf16(const llm::bf16* p) noexcept {
        return std::bit_cast<float>(static_cast<std::uint32_t>(p->bits()) << 16);
    }
    LLM_HD static LLM_FORCE_INLINE f32 load_bf16_partial(const llm::bf16* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        return n != 0 ? load_bf16(p) : 0.0f;
    }
    LLM_HD static LLM_FORCE_INLINE f32 load_f16(const llm::f16* p) noexcept { return static_cast<float>(*p); }
    LLM_HD static LLM_FORCE_INLINE f32 load_f16_partial(const llm::f16* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        return n != 0 ? static_cast<float>(*p) : 0.0f;
    }
    LLM_HD static LLM_FORCE_INLINE void store_bf16(llm::bf16* p, f32 v) noexcept { *p = llm::bf16(v); }
    LLM_HD static LLM_FORCE_INLINE void store_bf16_partial(llm::bf16* p, f32 v, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        if (n != 0) {
            *p = llm::bf16(v);
        }
    }
    ///@}
};

}  // namespace llm::simd
