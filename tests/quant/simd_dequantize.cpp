// SPDX-License-Identifier: Apache-2.0
// dequantize_simd (Q8_0, Q4_0) against the reference dequantize, bit for bit, on every compiled SIMD backend.
#include <llm/quant/quant.hpp>

#include "../support/numeric.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <tuple>
#include <vector>

namespace {

namespace q = llm::quant;

// Random blocks: every code byte random, d a random finite f16 (subnormals, zeros of both signs
// and the largest values included) so every code meets every kind of scale.
template <class Block>
std::vector<Block> random_blocks(std::size_t n, std::mt19937& rng) {
    std::vector<Block> blocks(n);
    for (Block& b : blocks) {
        auto* bytes = reinterpret_cast<unsigned char*>(&b);
        for (std::size_t i = 0; i < sizeof(Block); ++i) {
            bytes[i] = static_cast<unsigned char>(rng());
        }
        std::uint16_t bits = 0;
        do {
            bits = static_cast<std::uint16_t>(rng());
        } while ((bits & 0x7C00) == 0x7C00);  // no Inf / NaN scale
        b.d = llm::f16::from_bits(bits);
    }
    return blocks;
}

template <class F, class S>
void check_against_reference() {
    std::mt19937 rng(5);
    for (std::size_t n : {0, 1, 7, 63, 65, 300}) {
        CAPTURE(n);
        const auto blocks = random_blocks<typename F::block>(n, rng);
        std::vector<float> want(n * 32);
        std::vector<float> got(n * 32 + 1,
                               std::numeric_limits<float>::quiet_NaN());  // poisoned, one past the end
        q::dequantize<F>(std::span<const typename F::block>(blocks), want);
        q::dequantize_simd<F, S>(std::span<const typename F::block>(blocks),
                                 std::span<float>(got.data(), n * 32));
        for (std::size_t i = 0; i < n * 32; ++i) {
            REQUIRE_MESSAGE(std::memcmp(&want[i], &got[i], sizeof(float)) == 0, F::name, " on ", S::name,
                            ": y[", i, "] = ", got[i], ", reference ", want[i]);
        }
        CHECK(got[n * 32] != got[n * 32]);  // the value past the end was not written
    }
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("dequantize_simd equals dequantize bit for bit", S, simd_dequantize_test) {
    check_against_reference<q::q8_0, S>();
    check_against_reference<q::q4_0, S>();
    std::vector<q::block_q8_0> blocks(2);
    std::vector<float> y(65);
    CHECK_THROWS_WITH_AS(
        q::dequantize_simd<q::q8_0>(std::span<const q::block_q8_0>(blocks), y),
        doctest::Contains("dequantize_simd<q8_0>: y has 65 values but x (2 blocks of 32) decodes to 64"),
        llm::error);
}
TEST_CASE_TEMPLATE_APPLY(simd_dequantize_test, llm_test::kernel_backends);
