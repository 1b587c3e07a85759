// SPDX-License-Identifier: Apache-2.0
// The decode steps (selective_state_update, conv1d_step) against full-sequence results, and the causal conv1d
// forward / backward against the double reference, finite differences, accumulation and bad input.
//
// Tolerances: the conv1d sums W <= 5 products in fp32 (relative error <= W u ~ 3e-7 of the sum of |terms|)
// and SiLU through the facade's sigmoid (2.5e-7): 2e-6 norm-wise. The decode step performs the scan's
// arithmetic for one position (the same per-step error as the scan, see scan.cpp): 2e-5 as there.
#include "helpers.hpp"

#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/ssm/reference.hpp>
#include <llm/ssm/ssm.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;

}  // namespace

TEST_CASE("selective_state_update: 1000 steps equal the full scan at every position, and the last state") {
    const std::size_t B = 2, D = 13, L = 1000, N = 16, G = 1;
    const auto u = randn<float>(1, 0, 1, B, D, L);
    const auto delta = randn<float>(2, -1.0f, 0.7f, B, D, L);
    const auto z = randn<float>(3, 0, 1, B, D, L);
    const auto A = uniform<float>(4, -2.0f, -0.1f, D, N);
    const auto Bv = randn<float>(5, 0, 1, B, G, N, L);
    const auto Cv = randn<float>(6, 0, 1, B, G, N, L);
    const auto Dk = randn<float>(7, 0, 1, D);
    const auto bias = randn<float>(8, 0, 0.3f, D);
    tensor<double, 3> y_ref(B, D, L), st_ref(B, D, N);
    ssm::selective_scan_ref(y_ref, st_ref, u, delta, Bv, Cv, z, A, Dk, bias, {.delta_softplus = true});
    tensor<float, 3> state(B, D, N), y_steps(B, D, L);
    zero(state);
    poison(y_steps);
    tensor<float, 2> x(B, D), dt(B, D), zt(B, D), y(B, D);
    tensor<float, 3> bt(B, G, N), ct(B, G, N);
    llm::parallel::thread_pool pool(2);
    for (std::size_t t = 0; t < L; ++t) {
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                x(b, d) = u(b, d, t);
                dt(b, d) = delta(b, d, t);
                zt(b, d) = z(b, d, t);
            }
            for (std::size_t n = 0; n < N; ++n) {
                bt(b, 0, n) = Bv(b, 0, n, t);
                ct(b, 0, n) = Cv(b, 0, n, t);
            }
        }
        poison(y);
        ssm::selective_state_update(y, state, x, dt, bt, ct, zt, A, Dk, bias, {.delta_softplus = true}, pool);
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                y_steps(b, d, t) = y(b, d);
            }
        }
    }
    CHECK(rel(y_steps, y_ref) < 2e-5);
    CHECK(rel(state, st_ref) < 2e-5);
    // Position by position too: the worst position's error relative to its own norm.
    double worst = 0;
    for (std::size_t t = 0; t < L; ++t) {
        double num = 0, den = 0;
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                const double e = y_steps(b, d, t) - y_ref(b, d, t);
                num += e * e;
                den += y_ref(b, d, t) * y_ref(b, d, t);
            }
        }
        worst = std::max(worst, std::sqrt(num) / std::max(std::sqrt(den), 1e-3));
    }
    CHECK(worst < 1e-4);

    // A fixed (D, N) B and C, the scalar backend, no z / D / bias.
    const auto Bf = randn<float>(9, 0, 1, D, N), Cf = randn<float>(10, 0, 1, D, N);
    const auto dpos = uniform<float>(11, 0.01f, 0.5f, B, D, 50);
    const auto u2 = randn<float>(12, 0, 1, B, D, 50);
    tensor<double, 3> y2_ref(B, D, 50);
    ssm::selective_scan_ref(y2_ref, ssm::none, u2, dpos, Bf, Cf, ssm::none, A, ssm::none, ssm::none);
    zero(state);
    tensor<float, 3> y2(B, D, 50);
    for (std::size_t t = 0; t < 50; ++t) {
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                x(b, d) = u2(b, d, t);
                dt(b, d) = dpos(b, d, t);
            }
        }
        ssm::selective_state_update<llm::simd::scalar>(y, state, x, dt, Bf, Cf, ssm::none, A, ssm::none, ssm::none, {},
                                                       llm::parallel::sequential{});
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                y2(b, d, t) = y(b, d);
            }
        }
    }
    CHECK(rel(y2, y2_ref) < 2e-5);
}

TEST_CASE("selective_state_update: a state of the wrong shape and a non-finite dt are clear errors") {
    const std::size_t B = 2, D = 4, N = 3;
    tensor<float, 2> x(B, D), dt(B, D), y(B, D);
    zero(x), zero(dt);
    const auto A = uniform<float>(1, -1, -0.1f, D, N);
    tensor<float, 3> bt(B, 1, N), ct(B, 1, N);
    zero(bt), zero(ct);
    tensor<float, 3> bad(B, D, N + 1), good(B, D, N);
    zero(good);
    llm::parallel::sequential seq;
    CHECK_THROWS_WITH_AS(ssm::selective_state_update(y, bad, x, dt, bt, ct, ssm::none, A, ssm::none, ssm::none, {}, seq),
                         doctest::Contains("selective_state_update: state has shape [2, 4, 4] but must be [2, 4, 3]"),
                         llm::error);
    tensor<float, 3> bt2(B, 3, N);
    zero(bt2);
    CHECK_THROWS_WITH_AS(ssm::selective_state_update(y, good, x, dt, bt2, ct, ssm::none, A, ssm::none, ssm::none, {}, seq),
                         doctest::Contains("selective_state_update: B has 3 groups, which must divide D = 4"), llm::error);
    dt(1, 2) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(ssm::selective_state_update(y, good, x, dt, bt, ct, ssm::none, A, ssm::none, ssm::none,
                                                     {.delta_softplus = true}, seq),
                         doctest::Contains("selective_state_update: dt after bias and softplus is not finite at (batch 1, d 2)"),
                         llm::error);
}

TEST_CASE("conv1d_forward and conv1d_backward match the reference on awkward sizes") {
    llm::parallel::thread_pool pool(2);
    for (std::size_t W : {1, 2, 4, 5}) {
        for (std::size_t L : {1, 3, 65}) {
            for (bool silu : {false, true}) {
                CAPTURE(W);
                CAPTURE(L);
                CAPTURE(silu);
                const std::size_t B = 2, D = 7;
                const auto x = randn<float>(W * 100 + L, 0, 1, B, D, L);
                const auto w = randn<float>(W + 1, 0, 0.5f, D, W);
                const auto bias = randn<float>(W + 2, 0, 0.5f, D);
                const auto dy = randn<float>(W + 3, 0, 1, B, D, L);
                tensor<double, 3> y_ref(B, D, L), st_ref(B, D, W - 1);
                tensor<float, 3> y(B, D, L), st(B, D, W - 1);
                poison(y), poison(st);
                ssm::conv1d_ref(y_ref, st_ref, x, w, bias, {.silu = silu});
                ssm::conv1d_forward(y, st, x, w, bias, {.silu = silu}, pool);
                CHECK(rel(y, y_ref) < 2e-6);
                CHECK(rel(st, st_ref) == 0.0);  // copies of inputs
                tensor<double, 3> dx_ref(B, D, L);
                tensor<double, 2> dw_ref(D, W);
                tensor<double, 1> db_ref(D);
                tensor<float, 3> dx(B, D, L);
                tensor<float, 2> dw(D, W);
                tensor<float, 1> db(D);
                zero(dx_ref), zero(dw_ref), zero(db_ref), zero(dx), zero(dw), zero(db);
                ssm::conv1d_backward_ref(dx_ref, dw_ref, db_ref, dy, x, w, bias, {.silu = silu});
                ssm::conv1d_backward(dx, dw, db, dy, x, w, bias, {.silu = silu}, pool);
                // dweight and dbias sum B * L products: relative error ~ B L u of the sum of |terms|.
                CHECK(rel(dx, dx_ref) < 2e-6);
                CHECK(rel(dw, dw_ref) < 1e-5);
                CHECK(rel(db, db_ref) < 1e-5);
            }
        }
    }
}

TEST_CASE("conv1d_backward_ref matches finite differences of conv1d_ref (double); conv1d_backward accumulates") {
    const std::size_t B = 2, D = 3, L = 7, W = 4;
    auto x = convert<double>(randn<float>(1, 0, 1, B, D, L));
    auto w = convert<double>(randn<float>(2, 0, 0.5f, D, W));
    auto bias = convert<double>(randn<float>(3, 0, 0.5f, D));
    const auto dy = convert<double>(randn<float>(4, 0, 1, B, D, L));
    auto loss = [&] {
        tensor<double, 3> y(B, D, L);
        ssm::conv1d_ref(y, ssm::none, x, w, bias, {.silu = true});
        double s = 0;
        for (std::size_t i = 0; i < y.size(); ++i) {
            s += y.data()[i] * dy.data()[i];
        }
        return s;
    };
    tensor<double, 3> dx(B, D, L);
    tensor<double, 2> dw(D, W);
    tensor<double, 1> db(D);
    zero(dx), zero(dw), zero(db);
    ssm::conv1d_backward_ref(dx, dw, db, dy, x, w, bias, {.silu = true});
    // Central differences, h = 1e-6: truncation ~1e-12, rounding ~1e-10; bound 1e-7.
    auto fd = [&](auto& p, const auto& g) {
        double worst = 0;
        for (std::size_t i = 0; i < p.size(); ++i) {
            const double keep = p.data()[i];
            p.data()[i] = keep + 1e-6;
            const double up = loss();
            p.data()[i] = keep - 1e-6;
            const double down = loss();
            p.data()[i] = keep;
            worst = std::max(worst, std::fabs((up - down) / 2e-6 - g.data()[i]));
        }
        return worst;
    };
    CHECK(fd(x, dx) < 1e-7);
    CHECK(fd(w, dw) < 1e-7);
    CHECK(fd(bias, db) < 1e-7);

    const auto xf = randn<float>(5, 0, 1, B, D, L);
    const auto wf = randn<float>(6, 0, 0.5f, D, W);
    const auto bf = randn<float>(7, 0, 0.5f, D);
    const auto dyf = randn<float>(8, 0, 1, B, D, L);
    tensor<float, 3> gx(B, D, L);
    tensor<float, 2> gw(D, W);
    tensor<float, 1> gb(D);
    llm::zero_grad(gx, gw, gb);
    ssm::conv1d_backward(gx, gw, gb, dyf, xf, wf, bf, {.silu = true}, llm::parallel::sequential{});
    const tensor<float, 3> gx1(gx);
    const tensor<float, 2> gw1(gw);
    const tensor<float, 1> gb1(gb);
    ssm::conv1d_backward(gx, gw, gb, dyf, xf, wf, bf, {.silu = true}, llm::parallel::sequential{});
    auto twice = [](const auto& g, const auto& g1) {
        for (std::size_t i = 0; i < g.size(); ++i) {
            if (g.data()[i] != 2.0f * g1.data()[i]) {
                return false;
            }
        }
        return true;
    };
    CHECK(twice(gx, gx1));
    CHECK(twice(gw, gw1));
    CHECK(twice(gb, gb1));
}

TEST_CASE("conv1d_step continues conv1d_forward's final state: prefill then steps give the full sequence") {
    const std::size_t B = 2, D = 5, L = 40, L0 = 17, W = 4;
    const auto x = randn<float>(1, 0, 1, B, D, L);
    const auto w = randn<float>(2, 0, 0.5f, D, W);
    const auto bias = randn<float>(3, 0, 0.5f, D);
    tensor<float, 3> y_full(B, D, L);
    ssm::conv1d_forward(y_full, ssm::none, x, w, bias, {.silu = true}, llm::parallel::sequential{});
    tensor<float, 3> x0(B, D, L0), y0(B, D, L0), state(B, D, W - 1);
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t d = 0; d < D; ++d) {
            for (std::size_t t = 0; t < L0; ++t) {
                x0(b, d, t) = x(b, d, t);
            }
        }
    }
    ssm::conv1d_forward(y0, state, x0, w, bias, {.silu = true}, llm::parallel::sequential{});
    tensor<double, 3> state_ref(B, D, W - 1);
    for (std::size_t i = 0; i < state.size(); ++i) {
        state_ref.data()[i] = state.data()[i];
    }
    tensor<float, 2> xt(B, D), yt(B, D);
    tensor<double, 2> yt_ref(B, D);
    double worst = 0, worst_ref = 0;
    for (std::size_t t = L0; t < L; ++t) {
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                xt(b, d) = x(b, d, t);
            }
        }
        ssm::conv1d_step(yt, state, xt, w, bias, {.silu = true}, llm::parallel::sequential{});
        ssm::conv1d_step_ref(yt_ref, state_ref, xt, w, bias, {.silu = true});
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                worst = std::max(worst, static_cast<double>(std::fabs(yt(b, d) - y_full(b, d, t))));
                worst_ref = std::max(worst_ref, std::fabs(yt_ref(b, d) - y_full(b, d, t)));
            }
        }
    }
    // |y| <= ~3 here; W fp32 products and a fast sigmoid: 1e-5 absolute bounds both orders of summation.
    CHECK(worst < 1e-5);
    CHECK(worst_ref < 1e-5);
    tensor<float, 3> bad(B, D, W);
    CHECK_THROWS_WITH_AS(ssm::conv1d_step(yt, bad, xt, w, bias, {}, llm::parallel::sequential{}),
                         doctest::Contains("conv1d_step: state has shape [2, 5, 4] but must be [2, 5, 3]"), llm::error);
    const auto w_bad = randn<float>(2, 0, 0.5f, D + 1, W);
    CHECK_THROWS_WITH_AS(ssm::conv1d_forward(y_full, ssm::none, x, w_bad, ssm::none, {}, llm::parallel::sequential{}),
                         doctest::Contains("conv1d_forward: weight has 6 rows but x has D = 5 channels"), llm::error);
}

TEST_CASE("selective_state_update: a strided state (every other float) gives exactly the contiguous state's results") {
    const std::size_t B = 2, D = 5, N = 11;
    const auto A = uniform<float>(1, -2.0f, -0.1f, D, N);
    const auto Bm = randn<float>(2, 0, 1, B, 1, N), Cm = randn<float>(3, 0, 1, B, 1, N);
    const auto x = randn<float>(4, 0, 1, B, D), dt = randn<float>(5, -1, 0.5f, B, D);
    tensor<float, 3> st(B, D, N);
    zero(st);
    std::vector<float> buf(B * D * N * 2, 0.0f);
    const llm::strided_view<float, 3> sv(buf.data(), llm::dims<3>(std::array<std::size_t, 3>{B, D, N}),
                                         llm::dims<3>(std::array<std::size_t, 3>{D * N * 2, N * 2, 2}));
    tensor<float, 2> y1(B, D), y2(B, D);
    for (int step = 0; step < 20; ++step) {
        ssm::selective_state_update(y1, st, x, dt, Bm, Cm, ssm::none, A, ssm::none, ssm::none, {.delta_softplus = true},
                                    llm::parallel::sequential{});
        ssm::selective_state_update(y2, sv, x, dt, Bm, Cm, ssm::none, A, ssm::none, ssm::none, {.delta_softplus = true},
                                    llm::parallel::sequential{});
        CHECK(rel(y2, y1) == 0.0);
    }
    double worst = 0;
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t d = 0; d < D; ++d) {
            for (std::size_t n = 0; n < N; ++n) {
                worst = std::max(worst, static_cast<double>(std::fabs(sv(b, d, n) - st(b, d, n))));
            }
        }
    }
    CHECK(worst == 0.0);
}
