// SPDX-License-Identifier: Apache-2.0
// The vector activation quantizers (Q8_0 and Q8_K blocks, AVX2) against the scalar loops they
// replace, byte for byte: random rows, rounding ties, the signed maximum's first occurrence,
// zeros, subnormals, huge values, infinities and NaN.
#include <llm/quant/matmul.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#if LLM_QUANT_X86

namespace {

namespace q = llm::quant;
namespace qd = llm::quant::detail;

/// Rows of 2048 values, one per kind of hostile input, then random ones of varied scale.
std::vector<std::vector<float>> rows() {
    constexpr std::size_t k = 2048;
    std::vector<std::vector<float>> out;
    std::mt19937 rng(17);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto random_row = [&](float scale) {
        std::vector<float> r(k);
        for (float& v : r) v = scale * normal(rng);
        return r;
    };
    for (const float scale : {1.0f, 1e-3f, 1e4f, 1e-30f, 1e30f}) out.push_back(random_row(scale));
    // Products landing on .5 exactly: amax 127 makes id 1, so x itself is the code before rounding.
    std::vector<float> ties(k);
    for (std::size_t j = 0; j < k; ++j) ties[j] = static_cast<float>(static_cast<int>(j % 255) - 127) * 0.5f;
    for (std::size_t j = 0; j < k; j += 32) ties[j] = 127.0f;
    out.push_back(ties);
    std::vector<float> zeros(k, 0.0f);
    out.push_back(zeros);
    std::vector<float> neg_zero(k, -0.0f);
    out.push_back(neg_zero);
    // +a and -a in one block: the signed maximum is the first of them.
    std::vector<float> both = random_row(0.5f);
    for (std::size_t j = 0; j < k; j += 64) {
        both[j + 5] = -3.0f;
        both[j + 40] = 3.0f;
        both[j + 300 < k ? j + 300 : j] = ((j / 64) % 2 ? 3.5f : -3.5f);
    }
    out.push_back(both);
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    const float sub = std::numeric_limits<float>::denorm_min();
    for (const float special : {inf, -inf, nan, sub, -sub * 3.0f, 3e38f, -3e38f}) {
        std::vector<float> r = random_row(1.0f);
        for (std::size_t j = 0; j < k; j += 97) r[j] = special;
        out.push_back(r);
    }
    std::vector<float> all_sub(k);
    for (std::size_t j = 0; j < k; ++j) all_sub[j] = sub * static_cast<float>(static_cast<int>(j % 7) - 3);
    out.push_back(all_sub);
    return out;
}

}  // namespace

TEST_CASE("quant activations: the vector Q8_0 and Q8_K quantizers give the scalar loops' bytes") {
    if (!q::isa_available(q::kernel_isa::avx2)) {
        MESSAGE("skipped: this CPU has no AVX2");
        return;
    }
    for (const auto& x : rows()) {
        const std::size_t nb32 = x.size() / 32, nb256 = x.size() / q::qk_k;
        std::vector<qd::act_q8_0> want32(nb32), got32(nb32);
        std::memset(want32.data(), 0x5a, nb32 * sizeof(qd::act_q8_0));
        std::memset(got32.data(), 0xa5, nb32 * sizeof(qd::act_q8_0));
        qd::quantize_row_q8_0(x.data(), 1, nb32, want32.data());
        qd::qk_avx2::quantize_act_q8_0(x.data(), nb32, got32.data());
        for (std::size_t b = 0; b < nb32; ++b) {
            CAPTURE(b);
            CHECK(std::memcmp(want32[b].qs, got32[b].qs, 32) == 0);
            CHECK(std::memcmp(&want32[b].d, &got32[b].d, sizeof(float)) == 0);
            CHECK(want32[b].sum == got32[b].sum);
        }
        std::vector<q::block_q8_k> want256(nb256), got256(nb256);
        std::memset(want256.data(), 0x5a, nb256 * sizeof(q::block_q8_k));
        std::memset(got256.data(), 0xa5, nb256 * sizeof(q::block_q8_k));
        qd::quantize_row_q8_k(x.data(), 1, nb256, want256.data());
        qd::qk_avx2::quantize_act_q8_k(x.data(), nb256, got256.data());
        for (std::size_t b = 0; b < nb256; ++b) {
            CAPTURE(b);
            CHECK(std::memcmp(want256[b].qs, got256[b].qs, q::qk_k) == 0);
            CHECK(std::memcmp(want256[b].bsums, got256[b].bsums, sizeof want256[b].bsums) == 0);
            CHECK(std::memcmp(&want256[b].d, &got256[b].d, sizeof(float)) == 0);
        }
    }
}

TEST_CASE("quant activations: the tie rows do round half away from zero (the test above can fail)") {
    // amax 127 gives d = 1 and id = 1: 2.5 -> 3, -2.5 -> -3, 0.5 -> 1, as C's roundf.
    std::vector<float> x(32, 0.0f);
    x[0] = 127.0f;
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 0.5f;
    x[4] = -0.49999997f;
    qd::act_q8_0 a{};
    qd::quantize_act_row<q::q4_0>(x.data(), 1, 1, &a);
    CHECK(a.qs[0] == 127);
    CHECK(a.qs[1] == 3);
    CHECK(a.qs[2] == -3);
    CHECK(a.qs[3] == 1);
    CHECK(a.qs[4] == 0);
    CHECK(a.sum == 127 + 3 - 3 + 1);
    CHECK(a.d == 1.0f);
}

#endif  // LLM_QUANT_X86
