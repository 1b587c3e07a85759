// SPDX-License-Identifier: Apache-2.0
// llm::simd::transpose on every compiled backend: the register shuffles (AVX 8 x 8, AVX-512 16 x 16) and
// the buffered fallback (other widths) against a plain index swap, bit for bit (NaN payloads and signed
// zeros included).
#include "backends.hpp"

#include <llm/simd/transpose.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

// On AVX2 targets the 8-lane backends take the register shuffles, not the buffer.
#if defined(__AVX2__) && !defined(__AVX512F__)
#if LLM_HAS_HWY
static_assert(llm::simd::detail::one_register_backend<llm::simd::highway>);
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_FMA3_AVX2
static_assert(llm::simd::detail::one_register_backend<llm::simd::xsimd_arch<xsimd::fma3<xsimd::avx2>>>);
#endif
#endif
// On AVX-512 targets the 16-lane backends take the 16 x 16 register shuffles (Highway's static
// target may still be AVX2, 8 lanes, on some AVX-512 flag sets).
#if defined(__AVX512F__)
#if LLM_HAS_HWY
static_assert(llm::simd::highway::width != 16 || llm::simd::detail::one_register_backend<llm::simd::highway>);
#endif
#if LLM_HAS_XSIMD && XSIMD_WITH_AVX512F
static_assert(llm::simd::detail::one_register_backend<llm::simd::xsimd_arch<xsimd::avx512f>>);
#endif
#endif

namespace {

TEST_CASE_TEMPLATE_DEFINE("simd transpose: a width x width block, bit for bit, on every backend", S,
                          simd_transpose) {
    constexpr std::size_t W = S::width;
    std::vector<float> in(W * W);
    for (std::size_t i = 0; i < W * W; ++i) {
        in[i] = static_cast<float>(i) * 1.25f - 3.0f;  // distinct values: a wrong lane shows
    }
    in[0] = -0.0f;
    in[W * W - 1] = llm_test::from_bits(0x7fc12345u);  // a quiet NaN with a payload
    typename S::f32 r[W];
    for (std::size_t i = 0; i < W; ++i) {
        r[i] = S::loadu(in.data() + i * W);
    }
    llm::simd::transpose<S>(r);
    std::vector<float> out(W * W);
    for (std::size_t i = 0; i < W; ++i) {
        S::storeu(out.data() + i * W, r[i]);
    }
    for (std::size_t i = 0; i < W; ++i) {
        for (std::size_t j = 0; j < W; ++j) {
            CAPTURE(i);
            CAPTURE(j);
            CHECK(llm_test::bits(out[i * W + j]) == llm_test::bits(in[j * W + i]));
        }
    }
    // Twice is the identity.
    llm::simd::transpose<S>(r);
    for (std::size_t i = 0; i < W; ++i) {
        S::storeu(out.data() + i * W, r[i]);
    }
    for (std::size_t e = 0; e < W * W; ++e) {
        CHECK(llm_test::bits(out[e]) == llm_test::bits(in[e]));
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_transpose, llm_test::simd_backends);

}  // namespace
