// SPDX-License-Identifier: Apache-2.0
// dequantize_simd: Q8_0 and Q4_0 decoded with the multiply in llm::simd vectors, bit-identical to dequantize.
#pragma once

#include <llm/quant/basic_formats.hpp>
#include <llm/quant/dequantize.hpp>
#include <llm/simd/simd.hpp>

#include <concepts>
#include <cstddef>
#include <span>

namespace llm::quant {

namespace detail {

/// The 32 codes of a block as exact floats (Q8_0: q; Q4_0: q - 8), written by plain loops the
/// compiler widens with integer vector instructions (the facade has only float vectors).
LLM_HD inline void block_codes(const block_q8_0& b, float* c) noexcept {
    for (int j = 0; j < 32; ++j) {
        c[j] = static_cast<float>(b.qs[j]);
    }
}
LLM_HD inline void block_codes(const block_q4_0& b, float* c) noexcept {
    nibble_codes(b.qs, nullptr, 8, c);
}

}  // namespace detail

/// Formats whose values are d * code with one f16 d per 32 values: what dequantize_simd handles.
template <class F>
concept scaled_code_format = std::same_as<F, q8_0> || std::same_as<F, q4_0>;

/// dequantize<F>(x, y) with the scale multiply done S::width values at a time: each value is
/// the one rounding of code * d, so the result is bit-identical to dequantize<F> for every
/// block (tests/quant/simd_dequantize.cpp checks it on random bytes). Same size checks.
/// Example: `llm::quant::dequantize_simd<llm::quant::q8_0>(blocks, out);`
template <scaled_code_format F, simd::backend S = simd::default_backend>
void dequantize_simd(std::span<const typename F::block> x, std::span<float> y) {
    detail::check_dequantize_sizes<F>(x.size(), y.size(), "dequantize_simd");
    alignas(64) float codes[32];
    for (std::size_t i = 0; i < x.size(); ++i) {
        detail::block_codes(x[i], codes);
        const auto d = S::set1(static_cast<float>(x[i].d));
        float* out = y.data() + i * 32;
        std::size_t j = 0;
        for (; j + S::width <= 32; j += S::width) {
            S::storeu(out + j, S::mul(S::loadu(codes + j), d));
        }
        if (j < 32) {
            S::store_partial(out + j, S::mul(S::load_partial(codes + j, 32 - j), d), 32 - j);
        }
    }
}

}  // namespace llm::quant
