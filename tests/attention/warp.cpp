// SPDX-License-Identifier: Apache-2.0
// The CUDA kernel's per-warp maths (tile.hpp warp_row_step) run on the CPU with emulated_warp<32> lanes, against the reference.
#include "helpers.hpp"

#include <llm/attention/reference.hpp>
#include <llm/attention/tile.hpp>
#include <llm/simd/lanes.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

namespace {

namespace at = llm::attention;
using namespace attn_test;

// Mirrors flash_forward_kernel in attention/cuda.cuh step by step: blocks of `rows` query
// rows (one warp each) share key tiles of N * KPL keys staged as fp32, the tile range comes
// from the mask over the block's rows, and each warp calls warp_row_step / warp_row_finish.
// Only the staging differs (host vectors instead of shared memory; the sync is a no-op
// because the emulation runs the lanes of a step one after another).
template <class L, std::size_t KPL, std::size_t DPL, class Mask>
void emulated_forward(const t4f& q, const t4f& k, const t4f& v, t4f& o, t3f& lse, const Mask& mask, float scale, float cap) {
    constexpr std::size_t rows = 4;
    constexpr std::size_t BK = L::size * KPL;
    const std::size_t B = q.extent(0), Sq = q.extent(1), H = q.extent(2), D = q.extent(3);
    const std::size_t Sk = k.extent(1), Hk = k.extent(2);
    const auto lq = static_cast<std::int64_t>(Sq), lk = static_cast<std::int64_t>(Sk);
    std::vector<float> k_tile(BK * D), v_tile(BK * D), q_rows(rows * D), p_stage(rows * BK);
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t h = 0; h < H; ++h) {
            const std::size_t g = h / (H / Hk);
            for (std::size_t i0 = 0; i0 < Sq; i0 += rows) {
                const std::size_t i1 = std::min(Sq, i0 + rows);
                std::vector<at::warp_row<L, DPL>> w(rows);
                for (std::size_t i = i0; i < i1; ++i) {
                    for (std::size_t d = 0; d < D; ++d) {
                        q_rows[(i - i0) * D + d] = q(b, i, h, d) * scale;
                    }
                }
                const auto cr = mask.cols(static_cast<std::int64_t>(i0), static_cast<std::int64_t>(i1), lq, lk);
                for (std::int64_t j0 = cr.empty() ? cr.hi : cr.lo / std::int64_t(BK) * std::int64_t(BK); j0 < cr.hi;
                     j0 += std::int64_t(BK)) {
                    for (std::size_t j = 0; j < BK; ++j) {
                        const std::size_t key = static_cast<std::size_t>(j0) + j;
                        for (std::size_t d = 0; d < D; ++d) {
                            k_tile[j * D + d] = key < Sk ? k(b, key, g, d) : 0.0f;
                            v_tile[j * D + d] = key < Sk ? v(b, key, g, d) : 0.0f;
                        }
                    }
                    const std::int64_t cols = std::min<std::int64_t>(lk - j0, std::int64_t(BK));
                    const bool full = cols == std::int64_t(BK) && mask.full(std::int64_t(i0), std::int64_t(i1), j0,
                                                                              j0 + std::int64_t(BK), lq, lk);
                    for (std::size_t i = i0; i < i1; ++i) {
                        at::warp_row_step<L, KPL, DPL>(w[i - i0], q_rows.data() + (i - i0) * D, k_tile.data(), v_tile.data(),
                                                       D, D, std::int64_t(i), j0, cols, lq, lk, mask, full, cap,
                                                       p_stage.data() + (i - i0) * BK, [] {});
                    }
                }
                for (std::size_t i = i0; i < i1; ++i) {
                    at::warp_row_finish(w[i - i0], &o(b, i, h, 0), D, &lse(b, h, i));
                }
            }
        }
    }
}

template <class L, std::size_t KPL, std::size_t DPL, class Mask>
void check_emulated(std::size_t Sq, std::size_t Sk, std::size_t D, const Mask& mask, float cap, std::uint64_t seed) {
    CAPTURE(Sq);
    CAPTURE(Sk);
    CAPTURE(D);
    CAPTURE(L::size);
    const std::size_t B = 2, H = 4, Hk = 2;
    auto q = random4<float>(B, Sq, H, D, seed);
    auto k = random4<float>(B, Sk, Hk, D, seed + 1);
    auto v = random4<float>(B, Sk, Hk, D, seed + 2);
    t4f o(B, Sq, H, D);
    t3f lse(B, H, Sq);
    poison(o);
    poison(lse);
    const at::options opt{.scale = 0.0f, .softcap = cap};
    t4d o_ref(B, Sq, H, D);
    t3d lse_ref(B, H, Sq);
    at::reference_forward(o_ref, lse_ref, q, k, v, mask, opt);
    emulated_forward<L, KPL, DPL>(q, k, v, o, lse, mask, 1.0f / std::sqrt(float(D)), cap);
    CHECK(rel_norm(o, o_ref) < 2e-5);  // fp32, exact exp (std::exp, as expf on the device): as the CPU kernel
    CHECK(max_abs_diff(lse, lse_ref) < 1e-4);
}

TEST_CASE("cuda maths on the CPU: warp_row_step with emulated_warp<32> matches the reference") {
    using warp = llm::simd::emulated_warp<32>;
    std::uint64_t seed = 1;
    // head_dim 64, 80, 96, 128, 256 and odd sizes; lengths around the 32-key tile.
    check_emulated<warp, 1, 2>(33, 31, 64, at::no_mask{}, 0.0f, seed += 3);
    check_emulated<warp, 1, 3>(65, 100, 80, at::causal{}, 0.0f, seed += 3);
    check_emulated<warp, 1, 3>(7, 63, 96, at::sliding_window(9, 2), 0.0f, seed += 3);
    check_emulated<warp, 1, 4>(100, 65, 128, at::causal{}, 20.0f, seed += 3);
    check_emulated<warp, 1, 8>(9, 40, 256, at::no_mask{}, 0.0f, seed += 3);
    check_emulated<warp, 1, 1>(1, 1, 7, at::causal{}, 0.0f, seed += 3);
    // Two keys per lane (64-key tiles) and sub-warp groups exercise KPL and N.
    check_emulated<warp, 2, 4>(70, 130, 128, at::causal{}, 0.0f, seed += 3);
    check_emulated<llm::simd::emulated_warp<8>, 4, 16>(20, 50, 128, at::no_mask{}, 0.0f, seed += 3);
}

TEST_CASE("cuda maths on the CPU: the tile maximum and sum use the warp butterfly order") {
    // One row, one tile of 32 keys: the row's l must equal the butterfly sum of the lanes'
    // exp(s - m), bit for bit, which is what __shfl_xor_sync gives on the device.
    using warp = llm::simd::emulated_warp<32>;
    const std::size_t D = 32;
    auto q = random4<float>(1, 1, 1, D, 5);
    auto k = random4<float>(1, 32, 1, D, 6, 3.0f);
    at::warp_row<warp, 1> w;
    std::vector<float> p(32);
    at::warp_row_step<warp, 1, 1>(w, q.data(), k.data(), k.data(), D, D, 0, 0, 32, 1, 32, at::no_mask{}, true, 0.0f, p.data(),
                                  [] {});
    warp::values<float> lanes{};
    for (std::size_t ln = 0; ln < 32; ++ln) {
        lanes[ln] = p[ln];
    }
    const auto sum = warp::reduce_sum(lanes);
    CHECK(w.st.l == sum[0]);
    float sequential = 0.0f;
    for (float x : p) {
        sequential += x;
    }
    CHECK(w.st.l == doctest::Approx(sequential).epsilon(1e-6));
}

}  // namespace
