// SPDX-License-Identifier: Apache-2.0
// Tests of the AMX bf16 GEMM path on every CPU: its panels and micro-kernel run on emulated tiles (each tile
// instruction as the Intel SDM states it), so the packing, the tile addressing, the k tails and the C update
// are checked where no AMX exists; which path llm::gemm selects. The same code on the hardware tiles is
// tested by tests/gemm_amx (skipped without AMX). Tolerance: the bound derived in bf16_dot.cpp (the AMX
// path rounds as the dot path: products exact, one rounding per addition, three per KC block's store).
#include "amx_backend.hpp"
#include "bf16_check.hpp"
#include "helpers.hpp"

#include <llm/gemm/amx.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <random>

using namespace gemm_test;

namespace {

using S = llm::simd::default_backend;
using emulated_tiny = amx_backend<llm::blas::detail::amx_emulated, amx_tiny>;
using emulated_full = amx_backend<llm::blas::detail::amx_emulated, amx_full>;

constexpr std::size_t sizes_m[] = {1, 5, 31, 32, 33, 65};
constexpr std::size_t sizes_n[] = {1, 13, 31, 32, 33, 65};
constexpr std::size_t sizes_k[] = {1, 2, 3, 31, 32, 33, 48, 49, 97};

}  // namespace

TEST_CASE("AMX path: selected for bf16 x bf16 where amx_bf16_available, never for dot, widen or fp32 x fp32") {
    using llm::blas::bf16_path;
    using bf = llm::bf16;
    CHECK_FALSE(llm::blas::bf16_amx_selected<bf, bf>(bf16_path::widen, 16));
    CHECK_FALSE(llm::blas::bf16_amx_selected<bf, bf>(bf16_path::dot, 16));
    CHECK_FALSE(llm::blas::bf16_amx_selected<float, float>(bf16_path::automatic, 16));
    CHECK_FALSE(llm::blas::bf16_amx_selected<float, bf>(bf16_path::automatic, 16));
    CHECK_FALSE(llm::blas::bf16_amx_selected<float, bf>(bf16_path::amx, 16));
    CHECK_FALSE(llm::blas::bf16_amx_selected<bf, bf>(bf16_path::automatic, 8));
    const bool amx = llm::blas::amx_bf16_available();
    CHECK(llm::blas::bf16_amx_selected<bf, bf>(bf16_path::automatic, 16) == amx);
    CHECK(llm::blas::bf16_amx_selected<bf, bf>(bf16_path::amx, 16) == amx);
    CHECK(llm::blas::bf16_amx_selected<float, bf>(bf16_path::dot_round_fp32, 16) == amx);
    CHECK(llm::blas::bf16_amx_selected<bf, float>(bf16_path::dot_round_fp32, 16) == amx);
    CHECK((!amx || llm::blas::cpu_has_amx_bf16()));
    if (amx) {
        MESSAGE("this CPU runs the AMX path (tests/gemm_amx checks it on the tiles)");
    } else {
        MESSAGE("no AMX here: the AMX path runs on emulated tiles only (tests/gemm_amx reports skipped)");
    }
}

TEST_CASE("AMX path (emulated tiles) matches the double reference on awkward sizes, layouts, alpha and beta") {
    std::mt19937 rng(31);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    for_each_size(sizes_m, sizes_n, sizes_k, rng, [&](auto m, auto n, auto k, auto la, auto lb, std::size_t i) {
        const auto lc = rng() % 3 == 0 ? layout_kind::padded_row : layout_kind::row;
        // beta 0 and 1 with alpha 1 take the tiles-to-C route, the others the buffer.
        const float beta = i % 3 == 0 ? 0.0f : (i % 3 == 1 ? 1.0f : 0.5f);
        const float alpha = i % 4 == 3 ? -0.75f : 1.0f;
        if (i % 2 == 0) {
            check_case<emulated_tiny, llm::bf16, llm::bf16>(m, k, n, la, lb, lc, alpha, beta, 2 * amx_tiny::kc, pool, rng);
        } else {
            check_case<emulated_full, llm::bf16, llm::bf16>(m, k, n, la, lb, lc, alpha, beta, 2 * amx_full::kc, seq, rng);
        }
    });
    // Column-major C through the small tile of the macro-kernel, k over several tiny blocks.
    check_case<emulated_tiny, llm::bf16, llm::bf16>(70, 301, 45, layout_kind::row, layout_kind::col, layout_kind::col,
                                                    1.0f, 1.0f, 2 * amx_tiny::kc, pool, rng);
}

TEST_CASE("AMX path (emulated tiles): an fp32 operand is rounded to bf16 while packing (dot_round_fp32)") {
    std::mt19937 rng(8);
    llm::parallel::thread_pool pool(2);
    for (const std::size_t k : {1u, 33u, 100u}) {
        check_case<emulated_tiny, float, llm::bf16>(33, k, 65, layout_kind::row, layout_kind::col, layout_kind::row, 1.0f,
                                                    0.0f, 2 * amx_tiny::kc, pool, rng, true);
    }
}

TEST_CASE("AMX path (emulated tiles): one and two threads give the same bits") {
    std::mt19937 rng(12);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    const std::size_t m = 67, k = 131, n = 97;
    auto a = make_operand<llm::bf16>(m, k, layout_kind::row, rng);
    auto b = make_operand<llm::bf16>(k, n, layout_kind::col, rng);
    llm::tensor<float, llm::dims<2>> c1(m, n), c2(m, n);
    llm::gemm<emulated_tiny>(c1, a.view, b.view, 1.0f, 0.0f, seq);
    llm::gemm<emulated_tiny>(c2, a.view, b.view, 1.0f, 0.0f, pool);
    CHECK(std::memcmp(c1.data(), c2.data(), m * n * sizeof(float)) == 0);
}

TEST_CASE("AMX emulated tdpbf16ps: the SDM's order per k-pair (even product first), DAZ and FTZ") {
    namespace d = llm::blas::detail;
    using tiles = d::amx_emulated;
    alignas(64) std::uint32_t a[32 * 16] = {}, b[16 * 32] = {};
    // C(0, 0), pairs (even, odd) of products: (1, 2^-24), (2^-24, 0), (-1, 2^-24). Even first:
    // 1, 1 + 2^-24 -> 1 (a tie, to even), 1, 1, 0, 2^-24. Odd first would end at 0.
    const auto pair = [](float lo, float hi) { return d::bf16_pair(llm::bf16(lo), llm::bf16(hi)); };
    a[0] = pair(1.0f, 0x1p-24f);
    a[1] = pair(0x1p-24f, 0.0f);
    a[2] = pair(-1.0f, 0x1p-24f);
    for (std::size_t p = 0; p < 3; ++p) {
        b[p * 32] = pair(1.0f, 1.0f);
    }
    // C(1, 1): a subnormal input times 1 (DAZ: 0) and 2^-70 * 2^-70 = 2^-140 (FTZ: 0).
    a[16] = pair(0x1p-130f, 0x1p-70f);
    b[1] = pair(1.0f, 0x1p-70f);
    alignas(64) float c[32 * 32];
    tiles::zero_c();
    tiles::dot_bf16(a, a + 16 * 16, 64, b, b + 16, 128);
    tiles::store_c(c, 32);
    tiles::release();
    CHECK(c[0] == 0x1p-24f);
    CHECK(c[33] == 0.0f);
    CHECK(c[32] == 0x1p-70f);  // row 1 times column 0, (1, 1): 2^-130 read as 0, then 2^-70 * 1
}
