// SPDX-License-Identifier: Apache-2.0
// The SIMD backends compiled into this test binary, as a type list for TEST_CASE_TEMPLATE_APPLY, and test helpers.
#pragma once

#include <llm/simd/simd.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace llm_test {

// Every backend the flags allow, and for xsimd every family of code paths it has: the
// AVX-512 masked paths, AVX2 and SSE4.1 intrinsics with buffered tails, and xsimd::avx
// (no AVX2, no FMA) which takes the generic element-by-element fallbacks.
using simd_backends = std::tuple<llm::simd::scalar
#if LLM_HAS_XSIMD && XSIMD_WITH_AVX512F
                                 , llm::simd::xsimd_arch<xsimd::avx512f>
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_FMA3_AVX2
                                 , llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_AVX
                                 , llm::simd::xsimd_arch<xsimd::avx>
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_SSE4_2
                                 , llm::simd::xsimd_arch<xsimd::sse4_2>
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_SSE2 && !XSIMD_WITH_SSE4_2
                                 , llm::simd::xsimd_arch<xsimd::sse2>
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_NEON64
                                 , llm::simd::xsimd_arch<xsimd::neon64>
#endif
#if LLM_HAS_HWY
                                 , llm::simd::highway
#endif
                                 >;

/// Float bits, for bit-exact comparisons.
inline std::uint32_t bits(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}
inline float from_bits(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

/// The lanes of a vector, through an unaligned store.
template <class S>
struct lanes {
    float v[S::width];
    explicit lanes(typename S::f32 x) { S::storeu(v, x); }
    float operator[](std::size_t i) const { return v[i]; }
};

/// `count` elements of T placed so that the last one ends exactly at a page boundary
/// followed by an inaccessible page: any read or write past the end faults, whether or not
/// the access is instrumented by AddressSanitizer (intrinsics may not be). Falls back to a
/// plain exact-size heap block where mmap is not available.
template <class T>
class guarded_span {
public:
    explicit guarded_span(std::size_t count) : count_(count) {
#if defined(__linux__)
        page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        const std::size_t bytes = count * sizeof(T);
        const std::size_t data_pages = (bytes + page_ - 1) / page_ + 1;
        map_bytes_ = (data_pages + 1) * page_;
        void* base = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(base != MAP_FAILED);
        base_ = static_cast<unsigned char*>(base);
        REQUIRE(mprotect(base_ + data_pages * page_, page_, PROT_NONE) == 0);
        data_ = reinterpret_cast<T*>(base_ + data_pages * page_ - bytes);
#else
        heap_ = new T[count == 0 ? 1 : count];
        data_ = heap_;
#endif
    }
    guarded_span(const guarded_span&) = delete;
    guarded_span& operator=(const guarded_span&) = delete;
    ~guarded_span() {
#if defined(__linux__)
        munmap(base_, map_bytes_);
#else
        delete[] heap_;
#endif
    }
    T* data() { return data_; }
    std::size_t size() const { return count_; }
    T& operator[](std::size_t i) { return data_[i]; }

private:
    std::size_t count_;
    T* data_ = nullptr;
#if defined(__linux__)
    std::size_t page_ = 0;
    std::size_t map_bytes_ = 0;
    unsigned char* base_ = nullptr;
#else
    T* heap_ = nullptr;
#endif
};

}  // namespace llm_test

TYPE_TO_STRING(llm::simd::scalar);
#if LLM_HAS_XSIMD && XSIMD_WITH_AVX512F
TYPE_TO_STRING(llm::simd::xsimd_arch<xsimd::avx512f>);
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_FMA3_AVX2
TYPE_TO_STRING(llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>);
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_AVX
TYPE_TO_STRING(llm::simd::xsimd_arch<xsimd::avx>);
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_SSE4_2
TYPE_TO_STRING(llm::simd::xsimd_arch<xsimd::sse4_2>);
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_SSE2 && !XSIMD_WITH_SSE4_2
TYPE_TO_STRING(llm::simd::xsimd_arch<xsimd::sse2>);
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_NEON64
TYPE_TO_STRING(llm::simd::xsimd_arch<xsimd::neon64>);
#endif
#if LLM_HAS_HWY
TYPE_TO_STRING(llm::simd::highway);
#endif
