// SPDX-License-Identifier: Apache-2.0
// llm::simd::highway: the SIMD facade over Google Highway, static dispatch, header-only (no libhwy needed).
#pragma once

#include <llm/config.hpp>

#if LLM_HAS_HWY

#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/simd/detail/buffered.hpp>
#include <llm/simd/detail/exp.hpp>

// Highway 1.0.3 (Debian 12) fails with "#error Logic error: best baseline should be included
// in dynamic targets" when the flags enable every AVX3_DL feature (-march=native on Ice Lake
// and later Intel, e.g. this project's Emerald Rapids hosts): detect_targets.h tests an
// undefined HWY_BASELINE instead of HWY_BASELINE_TARGETS, so AVX3_DL is never "attainable"
// although it is the static target (upstream fix f0f688b, "AVX3_DL not appearing in
// ATTAINABLE_TARGETS", in 1.0.5). Asking for AVX3_DL is Highway's own opt-in and avoids it;
// it only adds that target where dynamic dispatch is used.
// It must precede the first inclusion of Highway's headers in the translation unit.
#if !defined(HWY_WANT_AVX3_DL) && !defined(HIGHWAY_HWY_DETECT_TARGETS_H_)
#define HWY_WANT_AVX3_DL
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

// Highway is used with static dispatch only: the one target the compile flags select
// (HWY_STATIC_TARGET; AVX3 or AVX3_DL with -march=native on AVX-512 machines). Nothing here calls
// what lives in libhwy (hwy::Abort through HWY_ASSERT, AllocateAlignedBytes,
// SupportedTargets), so consumers need its headers only. Highway 1.0.3 quirk: its SSE4,
// AVX2 and AVX3 targets also need -maes -mpclmul (implied by -march=native); without them
// the static target silently drops to SSSE3, which still works here, only narrower.
HWY_BEFORE_NAMESPACE();
namespace llm::simd::detail::HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

static_assert(!HWY_HAVE_SCALABLE,
              "llm::simd::highway needs a fixed vector width (SVE/RVV targets are not supported)");

/// The facade over Highway's static target. It lives in a namespace named after that target
/// (like Highway's own code), so translation units compiled with different -march flags do
/// not violate the one-definition rule. Contracts of every member: see the concept
/// llm::simd::backend in <llm/simd/simd.hpp>.
/// Example: `using S = llm::simd::highway; float m = S::reduce_max(S::loadu(p));`
struct highway_backend {
private:
    using tag = hn::ScalableTag<float>;
    using tag_u32 = hn::RebindToUnsigned<tag>;
    using tag_i32 = hn::RebindToSigned<tag>;
    using tag_u16 = hn::Rebind<std::uint16_t, tag>;
    using tag_f16 = hn::Rebind<hwy::float16_t, tag>;

public:
    /// Members required by llm::simd::backend; see it for their contracts.
    ///@{
    using f32 = hn::Vec<tag>;
    static constexpr std::size_t width = hn::MaxLanes(tag{});
    static constexpr std::string_view name = "highway";
    /// MulAdd is one fma instruction from AVX2 on (and on NEON64); Highway's SSE4/SSSE3 and
    /// emulated targets multiply and add with two roundings.
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2) || HWY_ARCH_ARM_A64
    static constexpr bool fused_fma = true;
#else
    static constexpr bool fused_fma = false;
#endif

    static LLM_FORCE_INLINE f32 zero() noexcept { return hn::Zero(tag{}); }
    static LLM_FORCE_INLINE f32 set1(float x) noexcept { return hn::Set(tag{}, x); }

    static LLM_FORCE_INLINE f32 load(const float* p) noexcept { return hn::Load(tag{}, p); }
    static LLM_FORCE_INLINE f32 loadu(const float* p) noexcept { return hn::LoadU(tag{}, p); }
    static LLM_FORCE_INLINE f32 load_partial(const float* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        if constexpr (masked_memory_is_fault_free) {
            return hn::MaskedLoad(hn::FirstN(tag{}, n), tag{}, p);
        } else {
            return detail::buffered_load_partial<highway_backend>(p, n);
        }
    }
    static LLM_FORCE_INLINE void store(float* p, f32 v) noexcept { hn::Store(v, tag{}, p); }
    static LLM_FORCE_INLINE void storeu(float* p, f32 v) noexcept { hn::StoreU(v, tag{}, p); }
    static LLM_FORCE_INLINE void store_partial(float* p, f32 v, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        if constexpr (masked_memory_is_fault_free) {
            hn::BlendedStore(v, hn::FirstN(tag{}, n), tag{}, p);
        } else {
            detail::buffered_store_partial<highway_backend>(p, v, n);
        }
    }

    static LLM_FORCE_INLINE f32 add(f32 a, f32 b) noexcept { return hn::Add(a, b); }
    static LLM_FORCE_INLINE f32 sub(f32 a, f32 b) noexcept { return hn::Sub(a, b); }
    static LLM_FORCE_INLINE f32 mul(f32 a, f32 b) noexcept { return hn::Mul(a, b); }
    static LLM_FORCE_INLINE f32 div(f32 a, f32 b) noexcept { return hn::Div(a, b); }
    static LLM_FORCE_INLINE f32 fma(f32 a, f32 b, f32 c) noexcept { return hn::MulAdd(a, b, c); }
    static LLM_FORCE_INLINE f32 min(f32 a, f32 b) noexcept { return hn::Min(a, b); }
    static LLM_FORCE_INLINE f32 max(f32 a, f32 b) noexcept { return hn::Max(a, b); }
    static LLM_FORCE_INLINE f32 abs(f32 a) noexcept { return hn::Abs(a); }
    static LLM_FORCE_INLINE f32 neg(f32 a) noexcept { return hn::Neg(a); }

    static LLM_FORCE_INLINE float reduce_add(f32 v) noexcept { return hn::GetLane(hn::SumOfLanes(tag{}, v)); }
    static LLM_FORCE_INLINE float reduce_max(f32 v) noexcept { return hn::GetLane(hn::MaxOfLanes(tag{}, v)); }

    static LLM_FORCE_INLINE f32 floor(f32 v) noexcept { return hn::Floor(v); }
    /// 2^n for integral n in [-126, 127]: see detail::pow2i_shifter. (Highway's ConvertTo
    /// would add four instructions to saturate out-of-range lanes, which cannot occur here.)
    static LLM_FORCE_INLINE f32 pow2i(f32 n) noexcept {
        const tag_u32 du;
        return hn::BitCast(tag{}, hn::ShiftLeft<23>(hn::BitCast(du, hn::Add(n, hn::Set(tag{}, detail::pow2i_shifter)))));
    }
    static LLM_FORCE_INLINE f32 select_lt(f32 a, f32 b, f32 t, f32 f) noexcept {
        return hn::IfThenElse(hn::Lt(a, b), t, f);
    }
    /// Fast exp; accuracy and behaviour out of range: llm::simd::detail::fast_exp.
    static LLM_FORCE_INLINE f32 exp(f32 x) noexcept { return detail::fast_exp<highway_backend>(x); }

    static LLM_FORCE_INLINE f32 load_bf16(const llm::bf16* p) noexcept {
        return bf16_codes_to_f32(hn::LoadU(tag_u16{}, codes(p)));
    }
    static LLM_FORCE_INLINE f32 load_bf16_partial(const llm::bf16* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        if constexpr (masked_memory_is_fault_free) {
            return bf16_codes_to_f32(hn::MaskedLoad(hn::FirstN(tag_u16{}, n), tag_u16{}, codes(p)));
        } else {
            return detail::buffered_load_half_partial<highway_backend>(p, n);
        }
    }
    static LLM_FORCE_INLINE f32 load_f16(const llm::f16* p) noexcept {
        if constexpr (f16_in_hardware) {
            return hn::PromoteTo(tag{}, hn::LoadU(tag_f16{}, halves(p)));
        } else {
            return detail::decode_each<highway_backend>(p);
        }
    }
    static LLM_FORCE_INLINE f32 load_f16_partial(const llm::f16* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        if constexpr (masked_memory_is_fault_free && f16_in_hardware) {
            return hn::PromoteTo(tag{}, hn::MaskedLoad(hn::FirstN(tag_f16{}, n), tag_f16{}, halves(p)));
        } else {
            return detail::buffered_load_half_partial<highway_backend>(p, n);
        }
    }
    static LLM_FORCE_INLINE void store_bf16(llm::bf16* p, f32 v) noexcept {
        hn::StoreU(bf16_codes(v), tag_u16{}, codes(p));
    }
    static LLM_FORCE_INLINE void store_bf16_partial(llm::bf16* p, f32 v, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
        if constexpr (masked_memory_is_fault_free) {
            hn::BlendedStore(bf16_codes(v), hn::FirstN(tag_u16{}, n), tag_u16{}, codes(p));
        } else {
            detail::buffered_store_bf16_partial<highway_backend>(p, v, n);
        }
    }

    ///@}
private:
    /// AVX-512 masked loads and stores suppress faults and touch no masked-off byte. On
    /// other targets Highway 1.0.3 emulates MaskedLoad with a full load and BlendedStore
    /// with a read-modify-write of the whole vector, which can read or write past p + n.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    static constexpr bool masked_memory_is_fault_free = true;
#else
    static constexpr bool masked_memory_is_fault_free = false;
#endif

    /// Highway converts f16 with F16C from its AVX2 target on and with NEON on aarch64;
    /// below (SSSE3, SSE4, emulated) 1.0.3 decodes in software and turns Inf and NaN codes
    /// into finite numbers, so those targets decode lane by lane with the scalar backend.
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2) || HWY_ARCH_ARM_A64
    static constexpr bool f16_in_hardware = true;
#else
    static constexpr bool f16_in_hardware = false;
#endif

    // llm::bf16 / llm::f16 hold only their 16 bits, as do Highway's lane types: the
    // pointers are reinterpreted for Highway's loads and stores (intrinsics, which may alias).
    static LLM_FORCE_INLINE const std::uint16_t* codes(const llm::bf16* p) noexcept {
        return reinterpret_cast<const std::uint16_t*>(p);
    }
    static LLM_FORCE_INLINE std::uint16_t* codes(llm::bf16* p) noexcept { return reinterpret_cast<std::uint16_t*>(p); }
    static LLM_FORCE_INLINE const hwy::float16_t* halves(const llm::f16* p) noexcept {
        return reinterpret_cast<const hwy::float16_t*>(p);
    }

    /// bf16 is the top half of a float: widen the codes and shift them up.
    static LLM_FORCE_INLINE f32 bf16_codes_to_f32(hn::Vec<tag_u16> c) noexcept {
        return hn::BitCast(tag{}, hn::ShiftLeft<16>(hn::PromoteTo(tag_u32{}, c)));
    }

    /// The bf16 code of each lane: round to nearest even by adding 0x7fff plus the lowest
    /// kept bit, then dropping the low 16 bits (a carry into the exponent is the correct
    /// rounding, up to Inf); NaN is quietened (bit 6 of the code) and keeps its sign and
    /// top payload bits, as llm::bf16 does. Highway's own DemoteTo to bfloat16 truncates in
    /// 1.0.3 (and rounds in later versions), so the rounding is done here and the narrowing
    /// is an exact integer demotion of codes in [0, 0xffff].
    static LLM_FORCE_INLINE hn::Vec<tag_u16> bf16_codes(f32 v) noexcept {
        const tag_u32 du;
        const auto bits = hn::BitCast(du, v);
        const auto high = hn::ShiftRight<16>(bits);
        const auto rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(hn::And(high, hn::Set(du, 1u)), hn::Set(du, 0x7fffu))));
        const auto code = hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Or(high, hn::Set(du, 0x40u)), rounded);
        return hn::DemoteTo(tag_u16{}, hn::BitCast(tag_i32{}, code));
    }
};

}  // namespace llm::simd::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

namespace llm::simd {

/// The Highway backend for the static target (see detail::<target>::highway_backend).
/// Example: `using S = llm::simd::highway; S::store(out, S::exp(S::load(in)));`
using highway = detail::HWY_NAMESPACE::highway_backend;

}  // namespace llm::simd

#endif  // LLM_HAS_HWY
