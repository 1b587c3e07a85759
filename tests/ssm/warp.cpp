// SPDX-License-Identifier: Apache-2.0
// The CUDA path's scan maths on the CPU: tile::warp_scan_chunk and tile::lane_exclusive_scan run with
// llm::simd::emulated_warp<32> (the lane exchange of __shfl_xor_sync) and llm::simd::serial, against the
// double reference; the associative combine and the chunk-state pass on their own.
//
// Tolerance: the lanes compute the scan as runs combined by lane_exclusive_scan (products of decays,
// 5 combine levels) instead of step by step; each combine adds a few roundings, so the state's relative
// error grows by ~ (2u per step + 5 levels x 3u), about 1e-6 on top of scan.cpp's bound: 2e-5 norm-wise.
#include "helpers.hpp"

#include <llm/simd/lanes.hpp>
#include <llm/ssm/reference.hpp>
#include <llm/ssm/tile.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;
namespace tile = llm::ssm::tile;

/// y of one whole scan computed chunk by chunk with warp_scan_chunk<L, K>, as the CUDA kernel does.
template <class L, std::size_t K>
tensor<float, 3> lanes_scan(const tensor<float, 3>& u, const tensor<float, 3>& delta, const tensor<float, 2>& A,
                            const tensor<float, 4>& B, const tensor<float, 4>& C, tensor<float, 3>& last) {
    const std::size_t Bt = u.extent(0), D = u.extent(1), Lq = u.extent(2), N = A.extent(1), G = B.extent(1);
    tensor<float, 3> y(Bt, D, Lq);
    for (std::size_t b = 0; b < Bt; ++b) {
        for (std::size_t d = 0; d < D; ++d) {
            const std::size_t g = d / (D / G);
            std::vector<float> carry(N, 0.0f), a_row(N);
            for (std::size_t n = 0; n < N; ++n) {
                a_row[n] = A(d, n);
            }
            tile::warp_chunk<L, K> c{};
            for (std::size_t t0 = 0; t0 < Lq; t0 += L::size * K) {
                llm::simd::for_lanes<L>([&](std::size_t ln) {
                    for (std::size_t k = 0; k < K; ++k) {
                        const std::size_t t = t0 + ln * K + k;
                        llm::simd::lane_ref<L>(c.dt[k], ln) = t < Lq ? tile::softplus(delta(b, d, t)) : 0.0f;
                        llm::simd::lane_ref<L>(c.u[k], ln) = t < Lq ? u(b, d, t) : 0.0f;
                    }
                });
                tile::warp_scan_chunk<L, K>(c, carry.data(), a_row.data(), N, &B(b, g, 0, 0), Lq, 1, &C(b, g, 0, 0),
                                            Lq, 1, t0, Lq);
                llm::simd::for_lanes<L>([&](std::size_t ln) {
                    for (std::size_t k = 0; k < K; ++k) {
                        const std::size_t t = t0 + ln * K + k;
                        if (t < Lq) {
                            y(b, d, t) = llm::simd::lane_ref<L>(c.y[k], ln);
                        }
                    }
                });
            }
            for (std::size_t n = 0; n < N; ++n) {
                last(b, d, n) = carry[n];
            }
        }
    }
    return y;
}

}  // namespace

TEST_CASE("tile: combine is associative with identity (1, 0); chunk_state_pass gives the sequential states") {
    std::vector<tile::affine<double>> runs = {{0.5, 1.0}, {0.25, -2.0}, {0.9, 0.3}, {1.0, 0.0}, {0.1, 4.0}};
    const auto ab_c = tile::combine(tile::combine(runs[0], runs[1]), runs[2]);
    const auto a_bc = tile::combine(runs[0], tile::combine(runs[1], runs[2]));
    CHECK(ab_c.a == doctest::Approx(a_bc.a).epsilon(1e-15));
    CHECK(ab_c.b == doctest::Approx(a_bc.b).epsilon(1e-15));
    CHECK(tile::combine(tile::affine<double>{}, runs[0]).b == runs[0].b);
    std::vector<double> start(runs.size());
    const double end = tile::chunk_state_pass(runs.data(), start.data(), runs.size(), 3.0);
    double h = 3.0;
    for (std::size_t k = 0; k < runs.size(); ++k) {
        CHECK(start[k] == h);
        h = runs[k].a * h + runs[k].b;
    }
    CHECK(end == h);
}

TEST_CASE("tile: lane_exclusive_scan over emulated_warp<32> gives every lane the combine of the lanes before it") {
    using L = llm::simd::emulated_warp<32>;
    L::values<float> a{}, b{}, ta{}, tb{};
    for (std::size_t i = 0; i < 32; ++i) {
        a[i] = 0.5f + 0.015f * static_cast<float>(i);
        b[i] = std::sin(static_cast<float>(i));
    }
    const auto a0 = a, b0 = b;
    tile::lane_exclusive_scan<L>(a, b, ta, tb);
    tile::affine<double> run{};
    for (std::size_t i = 0; i < 32; ++i) {
        CAPTURE(i);
        CHECK(a[i] == doctest::Approx(run.a).epsilon(1e-5));
        CHECK(b[i] == doctest::Approx(run.b).epsilon(1e-5));
        run = tile::combine(run, tile::affine<double>{a0[i], b0[i]});
    }
    for (std::size_t i = 0; i < 32; ++i) {
        CHECK(ta[i] == ta[0]);  // every lane holds the same bits
        CHECK(tb[i] == tb[0]);
    }
    CHECK(ta[0] == doctest::Approx(run.a).epsilon(1e-5));
    CHECK(tb[0] == doctest::Approx(run.b).epsilon(1e-5));
}

TEST_CASE_TEMPLATE("tile: warp_scan_chunk (the CUDA kernel's maths) matches the reference on the CPU", L,
                   llm::simd::emulated_warp<32>, llm::simd::serial) {
    for (std::size_t Lq : {1, 7, 127, 128, 129, 300}) {
        CAPTURE(Lq);
        const std::size_t B = 1, D = 4, N = 16, G = 2;
        const auto u = randn<float>(Lq, 0, 1, B, D, Lq);
        const auto delta = randn<float>(Lq + 1, -1.0f, 0.7f, B, D, Lq);
        const auto A = uniform<float>(3, -2.0f, -0.1f, D, N);
        const auto Bm = randn<float>(4, 0, 1, B, G, N, Lq);
        const auto Cm = randn<float>(5, 0, 1, B, G, N, Lq);
        tensor<double, 3> y_ref(B, D, Lq), st_ref(B, D, N);
        ssm::selective_scan_ref(y_ref, st_ref, u, delta, Bm, Cm, ssm::none, A, ssm::none, ssm::none,
                                {.delta_softplus = true});
        tensor<float, 3> last(B, D, N);
        const auto y = lanes_scan<L, 4>(u, delta, A, Bm, Cm, last);
        CHECK(rel(y, y_ref) < 2e-5);
        CHECK(rel(last, st_ref) < 2e-5);
    }
}
