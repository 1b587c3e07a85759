// SPDX-License-Identifier: Apache-2.0
// llm::simd::xsimd_backend: the SIMD facade over xsimd (8.1 as in Debian 12, and newer), widest arch the flags allow.
#pragma once

#include <llm/config.hpp>

#if LLM_HAS_XSIMD

#include <llm/core/bf16.hpp>
#include <llm/core/f16.hpp>
#include <llm/simd/detail/buffered.hpp>
#include <llm/simd/detail/exp.hpp>
#include <llm/simd/scalar.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#if defined(__SSE4_1__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace llm::simd {

namespace detail {

/// Which family of x86 intrinsics the half-precision conversions and masked tails of an
/// xsimd arch can use. xsimd 8.1 has no 16-bit float conversions, no masked loads and no
/// narrowing, so those few operations are written with intrinsics per family; `none`
/// (AVX without AVX2, NEON, ...) goes through a buffer and the scalar conversions.
enum class xsimd_family { none, sse41, avx2, avx512 };

template <class Arch>
constexpr xsimd_family xsimd_family_of() noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
        return xsimd_family::avx512;
    }
#endif
#if XSIMD_WITH_AVX2
    if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
        return xsimd_family::avx2;
    }
#endif
#if XSIMD_WITH_SSE4_1
    // AVX (without AVX2) also derives from sse4_1 but has 8-float registers: excluded.
    if constexpr (std::is_base_of_v<xsimd::sse4_1, Arch> && xsimd::batch<float, Arch>::size == 4) {
        return xsimd_family::sse41;
    }
#endif
    return xsimd_family::none;
}

template <class Arch>
constexpr bool xsimd_has_fma() noexcept {
    bool fused = false;
#if XSIMD_WITH_AVX512F
    fused = fused || std::is_base_of_v<xsimd::avx512f, Arch>;
#endif
#if XSIMD_WITH_FMA3_AVX2
    fused = fused || std::is_base_of_v<xsimd::fma3<xsimd::avx2>, Arch>;
#endif
#if XSIMD_WITH_FMA3_AVX
    fused = fused || std::is_base_of_v<xsimd::fma3<xsimd::avx>, Arch>;
#endif
#if XSIMD_WITH_FMA3_SSE
    fused = fused || std::is_base_of_v<xsimd::fma3<xsimd::sse4_2>, Arch>;
#endif
#if XSIMD_WITH_NEON64
    fused = fused || std::is_base_of_v<xsimd::neon64, Arch>;
#endif
    return fused;
}

/// "xsimd-<arch>", built at compile time for the backend's name.
template <class Arch>
struct xsimd_name {
    static constexpr std::string_view prefix = "xsimd-";
    static constexpr std::string_view arch = Arch::name();
    static constexpr std::array<char, prefix.size() + arch.size()> chars = [] {
        std::array<char, prefix.size() + arch.size()> out{};
        std::copy(prefix.begin(), prefix.end(), out.begin());
        std::copy(arch.begin(), arch.end(), out.begin() + static_cast<std::ptrdiff_t>(prefix.size()));
        return out;
    }();
    static constexpr std::string_view value{chars.data(), chars.size()};
};

}  // namespace detail

/// The facade over xsimd for one instruction set Arch (xsimd::avx512f, xsimd::fma3<xsimd::avx2>,
/// xsimd::sse4_2, ...). Contracts of every member: see the concept llm::simd::backend in
/// <llm/simd/simd.hpp>. Use `xsimd_backend` (the widest arch the compile flags allow) unless
/// you want a narrower one on purpose, e.g. AVX2 on a CPU whose AVX-512 clocks down.
/// Arch: an xsimd architecture type enabled by the compile flags (XSIMD_WITH_<ARCH> = 1).
/// Works with xsimd 8.1 (Debian 12) and newer (tests pass with 14.3): the two reductions whose
/// names changed in xsimd 9 (hadd -> reduce_add, reduce_max added) go through a version
/// check. Two xsimd 8.1 avx512f kernels are bypassed: fma (8.1 multiplies, then adds) and
/// neg (8.1 computes 0 - a, which gives +0 for +0).
/// min/max are the arch's min/max instructions (on x86: the second operand when either is NaN).
/// Example: `using S = llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>; float s = S::reduce_add(S::loadu(p));`
template <class Arch>
struct xsimd_arch {
    static_assert(!std::is_void_v<Arch>, "xsimd_arch: the compile flags enable no xsimd architecture (x86 or NEON64)");
    /// Members required by llm::simd::backend; see it for their contracts.
    ///@{
    using f32 = xsimd::batch<float, Arch>;
    static constexpr std::size_t width = f32::size;
    static constexpr std::string_view name = detail::xsimd_name<Arch>::value;
    /// fma is one instruction on AVX-512, the fma3<...> arches and NEON64; on plain SSE/AVX
    /// arches xsimd multiplies and adds (two roundings, unless the compiler contracts them).
    static constexpr bool fused_fma = detail::xsimd_has_fma<Arch>();

    static LLM_FORCE_INLINE f32 zero() noexcept { return f32(0.0f); }
    static LLM_FORCE_INLINE f32 set1(float x) noexcept { return f32(x); }

    static LLM_FORCE_INLINE f32 load(const float* p) noexcept { return f32::load_aligned(p); }
    static LLM_FORCE_INLINE f32 loadu(const float* p) noexcept { return f32::load_unaligned(p); }
    static LLM_FORCE_INLINE f32 load_partial(const float* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
#if XSIMD_WITH_AVX512F
        if constexpr (family == detail::xsimd_family::avx512) {
            return f32(_mm512_maskz_loadu_ps(mask16(n), p));  // masked lanes never fault
        }
#endif
        return detail::buffered_load_partial<xsimd_arch>(p, n);
    }
    static LLM_FORCE_INLINE void store(float* p, f32 v) noexcept { v.store_aligned(p); }
    static LLM_FORCE_INLINE void storeu(float* p, f32 v) noexcept { v.store_unaligned(p); }
    static LLM_FORCE_INLINE void store_partial(float* p, f32 v, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
#if XSIMD_WITH_AVX512F
        if constexpr (family == detail::xsimd_family::avx512) {
            _mm512_mask_storeu_ps(p, mask16(n), v);
            return;
        }
#endif
        detail::buffered_store_partial<xsimd_arch>(p, v, n);
    }

    static LLM_FORCE_INLINE f32 add(f32 a, f32 b) noexcept { return a + b; }
    static LLM_FORCE_INLINE f32 sub(f32 a, f32 b) noexcept { return a - b; }
    static LLM_FORCE_INLINE f32 mul(f32 a, f32 b) noexcept { return a * b; }
    static LLM_FORCE_INLINE f32 div(f32 a, f32 b) noexcept { return a / b; }
    static LLM_FORCE_INLINE f32 fma(f32 a, f32 b, f32 c) noexcept {
#if XSIMD_WITH_AVX512F
        // xsimd 8.1 has no avx512f kernel for fma: its generic one multiplies and adds
        // (two instructions, two roundings).
        if constexpr (family == detail::xsimd_family::avx512) {
            return f32(_mm512_fmadd_ps(a, b, c));
        }
#endif
        return xsimd::fma(a, b, c);
    }
    static LLM_FORCE_INLINE f32 min(f32 a, f32 b) noexcept { return xsimd::min(a, b); }
    static LLM_FORCE_INLINE f32 max(f32 a, f32 b) noexcept { return xsimd::max(a, b); }
    static LLM_FORCE_INLINE f32 abs(f32 a) noexcept { return xsimd::abs(a); }
    /// A sign flip (xsimd 8.1's avx512f neg computes 0 - a, which maps +0 to +0).
    static LLM_FORCE_INLINE f32 neg(f32 a) noexcept { return a ^ f32(-0.0f); }

    static LLM_FORCE_INLINE float reduce_add(f32 v) noexcept {
#if XSIMD_VERSION_MAJOR >= 9
        return xsimd::reduce_add(v);
#else
        return xsimd::hadd(v);
#endif
    }
    static LLM_FORCE_INLINE float reduce_max(f32 v) noexcept {
#if XSIMD_VERSION_MAJOR >= 9
        return xsimd::reduce_max(v);
#else
#if XSIMD_WITH_AVX512F
        if constexpr (family == detail::xsimd_family::avx512) {
            return _mm512_reduce_max_ps(v);
        }
#endif
        alignas(64) float lanes[width];
        v.store_aligned(lanes);
        float m = lanes[0];
        for (std::size_t i = 1; i < width; ++i) {
            m = lanes[i] > m ? lanes[i] : m;
        }
        return m;
#endif
    }

    static LLM_FORCE_INLINE f32 floor(f32 v) noexcept { return xsimd::floor(v); }
    /// 2^n for integral n in [-126, 127]: see detail::pow2i_shifter.
    static LLM_FORCE_INLINE f32 pow2i(f32 n) noexcept {
        return std::bit_cast<f32>(std::bit_cast<i32>(n + f32(detail::pow2i_shifter)) << 23);
    }
    static LLM_FORCE_INLINE f32 select_lt(f32 a, f32 b, f32 t, f32 f) noexcept { return xsimd::select(a < b, t, f); }
    /// Fast exp; accuracy and behaviour out of range: llm::simd::detail::fast_exp.
    static LLM_FORCE_INLINE f32 exp(f32 x) noexcept { return detail::fast_exp<xsimd_arch>(x); }

    static LLM_FORCE_INLINE f32 load_bf16(const llm::bf16* p) noexcept {
        // bf16 is the top half of a float: widen the codes to 32 bits and shift them up.
#if XSIMD_WITH_AVX512F
        if constexpr (family == detail::xsimd_family::avx512) {
            const __m512i codes = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
            return f32(_mm512_castsi512_ps(_mm512_slli_epi32(codes, 16)));
        }
#endif
#if XSIMD_WITH_AVX2
        if constexpr (family == detail::xsimd_family::avx2) {
            const __m256i codes = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
            return f32(_mm256_castsi256_ps(_mm256_slli_epi32(codes, 16)));
        }
#endif
#if XSIMD_WITH_SSE4_1
        if constexpr (family == detail::xsimd_family::sse41) {
            const __m128i codes = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
            return f32(_mm_castsi128_ps(_mm_slli_epi32(codes, 16)));
        }
#endif
        return detail::decode_each<xsimd_arch>(p);
    }
    static LLM_FORCE_INLINE f32 load_bf16_partial(const llm::bf16* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
#if XSIMD_WITH_AVX512F && defined(__AVX512BW__) && defined(__AVX512VL__)
        if constexpr (family == detail::xsimd_family::avx512) {
            const __m512i codes = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask16(n), p));
            return f32(_mm512_castsi512_ps(_mm512_slli_epi32(codes, 16)));
        }
#endif
        return detail::buffered_load_half_partial<xsimd_arch>(p, n);
    }
    static LLM_FORCE_INLINE f32 load_f16(const llm::f16* p) noexcept {
#if XSIMD_WITH_AVX512F
        if constexpr (family == detail::xsimd_family::avx512) {
            return f32(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
        }
#endif
#if XSIMD_WITH_AVX2 && defined(__F16C__)
        if constexpr (family == detail::xsimd_family::avx2) {
            return f32(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
        }
#endif
#if XSIMD_WITH_SSE4_1 && defined(__F16C__)
        if constexpr (family == detail::xsimd_family::sse41) {
            return f32(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
        }
#endif
        return detail::decode_each<xsimd_arch>(p);
    }
    static LLM_FORCE_INLINE f32 load_f16_partial(const llm::f16* p, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
#if XSIMD_WITH_AVX512F && defined(__AVX512BW__) && defined(__AVX512VL__)
        if constexpr (family == detail::xsimd_family::avx512) {
            return f32(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(n), p)));
        }
#endif
        return detail::buffered_load_half_partial<xsimd_arch>(p, n);
    }
    static LLM_FORCE_INLINE void store_bf16(llm::bf16* p, f32 v) noexcept {
#if XSIMD_WITH_AVX512F
        if constexpr (family == detail::xsimd_family::avx512) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(bf16_codes(v)));
            return;
        }
#endif
#if XSIMD_WITH_AVX2
        if constexpr (family == detail::xsimd_family::avx2) {
            // Codes are in [0, 0xffff], so unsigned saturation packs them exactly.
            const __m256i c = bf16_codes(v);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                             _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1)));
            return;
        }
#endif
#if XSIMD_WITH_SSE4_1
        if constexpr (family == detail::xsimd_family::sse41) {
            const __m128i c = bf16_codes(v);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi32(c, c));
            return;
        }
#endif
        alignas(64) float lanes[width];
        v.store_aligned(lanes);
        for (std::size_t i = 0; i < width; ++i) {
            scalar::store_bf16(p + i, lanes[i]);
        }
    }
    static LLM_FORCE_INLINE void store_bf16_partial(llm::bf16* p, f32 v, std::size_t n) noexcept {
        LLM_ASSERT(n <= width);
#if XSIMD_WITH_AVX512F
        if constexpr (family == detail::xsimd_family::avx512) {
            _mm512_mask_cvtepi32_storeu_epi16(p, mask16(n), bf16_codes(v));  // truncating masked store
            return;
        }
#endif
        detail::buffered_store_bf16_partial<xsimd_arch>(p, v, n);
    }

    ///@}
private:
    using i32 = xsimd::batch<std::int32_t, Arch>;
    static constexpr detail::xsimd_family family = detail::xsimd_family_of<Arch>();

#if XSIMD_WITH_AVX512F
    static LLM_FORCE_INLINE __mmask16 mask16(std::size_t n) noexcept {
        return static_cast<__mmask16>((1u << n) - 1u);  // n <= 16: 1u << 16 still fits
    }
#endif

    /// The bf16 code of each lane in the low 16 bits of an int32 lane (high bits zero):
    /// round to nearest even by adding 0x7fff plus the lowest kept bit, then dropping the
    /// low 16 bits (a carry into the exponent is the correct rounding, up to Inf); NaN is
    /// quietened (bit 6 of the code) and keeps its sign and top payload bits, as llm::bf16 does.
    static LLM_FORCE_INLINE i32 bf16_codes(f32 v) noexcept {
        const i32 bits = std::bit_cast<i32>(v);
        // Arithmetic shifts of negative lanes bring in ones: the & 0xffff drops them.
        const i32 high = (bits >> 16) & 0xffff;
        const i32 rounded = ((bits + ((high & 1) + 0x7fff)) >> 16) & 0xffff;
        const auto is_nan = (bits & 0x7fffffff) > i32(0x7f800000);
        return xsimd::select(is_nan, high | 0x40, rounded);
    }
};

namespace detail {
// The widest arch the compile flags allow; the chain ends where this backend stops being
// worth more than the scalar one.
#if XSIMD_WITH_AVX512F
using xsimd_widest_arch = xsimd::avx512f;
#elif XSIMD_WITH_FMA3_AVX2
using xsimd_widest_arch = xsimd::fma3<xsimd::avx2>;
#elif XSIMD_WITH_AVX2
using xsimd_widest_arch = xsimd::avx2;
#elif XSIMD_WITH_FMA3_AVX
using xsimd_widest_arch = xsimd::fma3<xsimd::avx>;
#elif XSIMD_WITH_AVX
using xsimd_widest_arch = xsimd::avx;
#elif XSIMD_WITH_FMA3_SSE
using xsimd_widest_arch = xsimd::fma3<xsimd::sse4_2>;
#elif XSIMD_WITH_SSE4_2
using xsimd_widest_arch = xsimd::sse4_2;
#elif XSIMD_WITH_SSE2
using xsimd_widest_arch = xsimd::sse2;
#elif XSIMD_WITH_NEON64
using xsimd_widest_arch = xsimd::neon64;
#else
using xsimd_widest_arch = void;  // xsimd_backend unusable; default_backend skips it
#endif
}  // namespace detail

/// The xsimd backend for the widest arch the compile flags allow: avx512f, else
/// fma3<avx2>, avx2, fma3<avx>, avx, fma3<sse4_2>, sse4_2, sse2, neon64.
/// Example: `using S = llm::simd::xsimd_backend; S::f32 v = S::loadu(p);`
using xsimd_backend = xsimd_arch<detail::xsimd_widest_arch>;

}  // namespace llm::simd

#endif  // LLM_HAS_XSIMD
