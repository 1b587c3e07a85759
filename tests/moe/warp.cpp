// SPDX-License-Identifier: Apache-2.0
// The CUDA router's per-token body (tile.hpp warp_route) run on the CPU with emulated_warp<32> lanes, against the CPU routers; the combine column and the plan as the CUDA kernels use them.
//
// Tolerances. warp_scores sums the softmax in the butterfly order, the CPU router in index
// order: each is within (E + 4) u of the exact value (u = 2^-24), so they differ by at most
// 2 (E + 4) u relative: 1e-5 covers E <= 256 (260 * 2 u = 3.1e-5 relative on values <= 1 is
// 3.1e-5 absolute at most; the test uses 4e-5). The picks agree wherever the top-k gaps exceed
// that (random logits: checked exactly, with one exception allowed per thousand tokens for a
// near tie, none seen). Sigmoid scores are per-element, identical bits on both paths.
#include "helpers.hpp"

#include <llm/moe/moe.hpp>
#include <llm/moe/tile.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/simd/lanes.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using namespace moe_test;
namespace moe = llm::moe;
using L = llm::simd::emulated_warp<32>;

/// Runs warp_route for every token (what router_kernel does per warp) with EPL experts per lane.
template <std::size_t EPL, bool Sigmoid>
void emulated_route(t2i& ex, t2f& w, t2f& p, const t2f& logits, const float* bias, std::size_t k, bool renorm,
                    float scale, moe::group_limit g) {
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    std::vector<float> key(E);
    for (std::size_t t = 0; t < T; ++t) {
        std::array<std::int32_t, moe::tile::max_warp_k> idx{};
        std::array<float, moe::tile::max_warp_k> wt{};
        moe::tile::warp_route<L, EPL, Sigmoid>(idx.data(), wt.data(), &p(t, 0), key.data(), &logits(t, 0), bias, E,
                                               k, renorm, scale, g.n_group, g.topk_group, g.per_group, [] {});
        for (std::size_t j = 0; j < k; ++j) {
            ex(t, j) = idx[j];
            w(t, j) = wt[j];
        }
    }
}

template <std::size_t EPL, bool Sigmoid, class R>
void compare(std::size_t E, const R& r, const float* bias, unsigned seed) {
    std::mt19937 rng(seed);
    const std::size_t T = 300, k = r.k;
    const t2f logits = rand2(T, E, rng, 3.0f);
    t2i ex(T, k), ex_cpu(T, k);
    t2f w(T, k), p(T, E), w_cpu(T, k), p_cpu(T, E);
    moe::route(ex_cpu, w_cpu, p_cpu, logits, r, llm::parallel::sequential{});
    emulated_route<EPL, Sigmoid>(ex, w, p, logits, bias, k, r.renormalize, r.scale, r.groups);
    std::size_t differing = 0;
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t e = 0; e < E; ++e) {
            if constexpr (Sigmoid) {
                REQUIRE(p(t, e) == p_cpu(t, e));
            } else {
                REQUIRE(std::fabs(p(t, e) - p_cpu(t, e)) <= 4e-5f * p_cpu(t, e) + 1e-30f);
            }
        }
        bool same = true;
        for (std::size_t j = 0; j < k; ++j) {
            same = same && ex(t, j) == ex_cpu(t, j);
        }
        differing += same ? 0 : 1;
        if (same) {
            for (std::size_t j = 0; j < k; ++j) {
                CHECK(std::fabs(w(t, j) - w_cpu(t, j)) <= 4e-5f * (std::fabs(w_cpu(t, j)) + 1e-6f) * r.scale * float(k));
            }
        }
    }
    CHECK(differing == 0);
}

}  // namespace

TEST_CASE("warp_route on emulated_warp<32> (the CUDA router's body) matches the CPU routers") {
    SUBCASE("softmax top-2, E = 8 (1 expert per lane, lanes idle)") { compare<1, false>(8, moe::softmax_top_k{.k = 2}, nullptr, 1); }
    SUBCASE("softmax top-6, E = 60, not renormalised, scaled") {
        compare<2, false>(60, moe::softmax_top_k{.k = 6, .renormalize = false, .scale = 1.5f}, nullptr, 2);
    }
    SUBCASE("softmax top-8, E = 128, group limit (V2)") {
        compare<4, false>(128, moe::softmax_top_k{.k = 8, .groups = {.n_group = 8, .topk_group = 3, .per_group = 1}}, nullptr, 3);
    }
    SUBCASE("sigmoid top-8 with bias, E = 256, groups of V3") {
        std::vector<float> bias(256);
        std::mt19937 rng(9);
        randomize(bias.data(), bias.size(), rng, 0.05f);
        compare<8, true>(256, moe::sigmoid_top_k{.k = 8, .scale = 2.5f, .groups = {.n_group = 8, .topk_group = 4, .per_group = 2}, .bias = bias},
                         bias.data(), 4);
    }
}

TEST_CASE("combine_column (the un-permute kernel's body) equals the CPU combine; a plan round-trips every pair") {
    std::mt19937 rng(61);
    const std::size_t T = 33, E = 5, d = 7, S = 3;
    t2i ex(T, S);
    std::uniform_int_distribution<int> pick(-1, int(E) - 1);
    for (std::size_t i = 0; i < ex.size(); ++i) {
        ex.data()[i] = pick(rng);
    }
    moe::dispatch_plan plan;
    moe::plan_dispatch(plan, ex, E);
    // Every kept pair lands in its expert's block, in token order.
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t j = 0; j < S; ++j) {
            const std::int32_t p = plan.pos[t * S + j];
            CHECK((p >= 0) == (ex(t, j) >= 0));
            if (p >= 0) {
                const auto e = static_cast<std::size_t>(ex(t, j));
                CHECK(std::size_t(p) >= plan.offsets[e]);
                CHECK(std::size_t(p) < plan.offsets[e + 1]);
                CHECK(plan.rows[std::size_t(p)] == std::int32_t(t));
            }
        }
    }
    for (std::size_t e = 0; e < E; ++e) {
        for (std::size_t i = plan.offsets[e] + 1; i < plan.offsets[e + 1]; ++i) {
            CHECK(plan.rows[i - 1] <= plan.rows[i]);
        }
    }
    const t2f yp = rand2(plan.size(), d, rng), w = rand2(T, S, rng);
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t c = 0; c < d; ++c) {
            double ref = 0.0;
            for (std::size_t j = 0; j < S; ++j) {
                const std::int32_t p = plan.pos[t * S + j];
                ref += p >= 0 ? double(w(t, j)) * double(yp(std::size_t(p), c)) : 0.0;
            }
            CHECK(std::fabs(moe::tile::combine_column(yp.data(), d, plan.pos.data() + t * S, w.data() + t * S, S, c) - ref) <= 1e-6);
        }
    }
}
