// SPDX-License-Identifier: Apache-2.0
// Mamba-2 SSD: the chunked forward and the recurrent forward against the sequential double reference (awkward
// lengths, chunk sizes, groups), the backward against the reference backward and finite differences,
// accumulation, the decode step over many tokens, and bad input.
//
// Tolerances: the chunked form sums the same terms as the recurrence in another order: within a chunk the
// products of decays become exp(s_t - s_s) (one exp, relative error 1.25e-7, instead of a product of up to
// 64 exps), the sums run over up to chunk + N terms of mixed sign. With |terms| of order 1 and sums over
// at most 128 + 32 terms (chunk 0 picks 128 at these N, P from a 512 KiB L2), the error is about 160 u ~ 1e-5
// of the sum of |terms| in the worst case, far less norm-wise (errors of random sign): 3e-5 norm-wise. The
// backward (recurrence, fp32) is bounded likewise: 1e-4.
#include "helpers.hpp"

#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/ssm/reference.hpp>
#include <llm/ssm/ssm.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;

struct ssd_inputs {
    tensor<float, 4> x, B, C;
    tensor<float, 3> dt;
    tensor<float, 1> A;
    ssd_inputs(std::size_t b, std::size_t L, std::size_t H, std::size_t P, std::size_t G, std::size_t N, std::uint64_t s)
        : x(randn<float>(s, 0, 1, b, L, H, P)),
          B(randn<float>(s + 1, 0, 1, b, L, G, N)),
          C(randn<float>(s + 2, 0, 1, b, L, G, N)),
          dt(uniform<float>(s + 3, 0.01f, 0.3f, b, L, H)),
          A(uniform<float>(s + 4, -3.0f, -0.2f, H)) {}
};

}  // namespace

TEST_CASE("ssd_forward (chunked) and ssd_forward_recurrent match the sequential reference") {
    struct cfg {
        std::size_t b, L, H, P, G, N, chunk;
    };
    const cfg cfgs[] = {{1, 1, 1, 1, 1, 1, 64}, {1, 7, 2, 3, 1, 5, 4},     {2, 63, 4, 8, 2, 16, 16},
                        {1, 65, 3, 7, 3, 9, 64}, {1, 130, 2, 16, 1, 32, 64}, {1, 50, 1, 5, 1, 7, 1},
                        {1, 300, 2, 8, 1, 16, 0},   // chunk 0: from the L2 size
                        {1, 150, 2, 80, 2, 40, 64}};  // P 80 on the GEMM tile's 6-row side, a short last chunk
    llm::parallel::thread_pool pool(2);
    for (const auto& c : cfgs) {
        CAPTURE(c.L);
        CAPTURE(c.chunk);
        CAPTURE(c.P);
        CAPTURE(c.N);
        ssd_inputs in(c.b, c.L, c.H, c.P, c.G, c.N, c.L * 3 + c.N);
        tensor<double, 4> y_ref(c.b, c.L, c.H, c.P), st_ref(c.b, c.H, c.P, c.N);
        ssm::ssd_ref(y_ref, st_ref, in.x, in.dt, in.B, in.C, in.A);
        tensor<float, 4> y(c.b, c.L, c.H, c.P), st(c.b, c.H, c.P, c.N);
        poison(y), poison(st);
        ssm::ssd_forward(y, st, in.x, in.dt, in.B, in.C, in.A, {.chunk = c.chunk}, pool);
        CHECK(rel(y, y_ref) < 3e-5);
        CHECK(rel(st, st_ref) < 3e-5);
        poison(y), poison(st);
        ssm::ssd_forward_recurrent<llm::simd::scalar>(y, st, in.x, in.dt, in.B, in.C, in.A, llm::parallel::sequential{});
        CHECK(rel(y, y_ref) < 3e-5);
        CHECK(rel(st, st_ref) < 3e-5);
    }
}

TEST_CASE("ssd_backward matches ssd_backward_ref; the reference matches finite differences; both accumulate") {
    llm::parallel::thread_pool pool(2);
    for (std::size_t L : {1, 17, 40}) {
        CAPTURE(L);
        const std::size_t b = 2, H = 4, P = 5, G = 2, N = 6;
        ssd_inputs in(b, L, H, P, G, N, 50 + L);
        const auto dy = randn<float>(9, 0, 1, b, L, H, P);
        tensor<double, 4> dx_r(b, L, H, P), dB_r(b, L, G, N), dC_r(b, L, G, N);
        tensor<double, 3> dt_r(b, L, H);
        tensor<double, 1> dA_r(H);
        tensor<float, 4> dx(b, L, H, P), dB(b, L, G, N), dC(b, L, G, N);
        tensor<float, 3> ddt(b, L, H);
        tensor<float, 1> dA(H);
        zero(dx_r), zero(dB_r), zero(dC_r), zero(dt_r), zero(dA_r);
        llm::zero_grad(dx, dB, dC, ddt, dA);
        ssm::ssd_backward_ref(dx_r, dt_r, dB_r, dC_r, dA_r, dy, in.x, in.dt, in.B, in.C, in.A);
        ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, in.x, in.dt, in.B, in.C, in.A, pool);
        CHECK(rel(dx, dx_r) < 1e-4);
        CHECK(rel(ddt, dt_r) < 1e-4);
        CHECK(rel(dB, dB_r) < 1e-4);
        CHECK(rel(dC, dC_r) < 1e-4);
        CHECK(rel(dA, dA_r) < 1e-4);
        const tensor<float, 4> dx1(dx), dB1(dB), dC1(dC);
        const tensor<float, 3> ddt1(ddt);
        const tensor<float, 1> dA1(dA);
        ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, in.x, in.dt, in.B, in.C, in.A, llm::parallel::sequential{});
        auto twice = [](const auto& g, const auto& g1) {
            for (std::size_t i = 0; i < g.size(); ++i) {
                if (g.data()[i] != 2.0f * g1.data()[i]) {
                    return false;
                }
            }
            return true;
        };
        // One addition per element per call, and the same values on any thread count: exactly 2x.
        CHECK(twice(dx, dx1));
        CHECK(twice(ddt, ddt1));
        CHECK(twice(dB, dB1));
        CHECK(twice(dC, dC1));
        CHECK(twice(dA, dA1));
    }
    // Finite differences of the double reference (h = 1e-6: truncation ~1e-12, rounding ~1e-10).
    const std::size_t b = 1, L = 5, H = 2, P = 2, G = 1, N = 3;
    ssd_inputs in(b, L, H, P, G, N, 7);
    auto x = convert<double>(in.x), Bm = convert<double>(in.B), Cm = convert<double>(in.C);
    auto dt = convert<double>(in.dt);
    auto A = convert<double>(in.A);
    const auto dy = convert<double>(randn<float>(3, 0, 1, b, L, H, P));
    auto loss = [&] {
        tensor<double, 4> y(b, L, H, P);
        ssm::ssd_ref(y, ssm::none, x, dt, Bm, Cm, A);
        double s = 0;
        for (std::size_t i = 0; i < y.size(); ++i) {
            s += y.data()[i] * dy.data()[i];
        }
        return s;
    };
    tensor<double, 4> gx(b, L, H, P), gB(b, L, G, N), gC(b, L, G, N);
    tensor<double, 3> gt(b, L, H);
    tensor<double, 1> gA(H);
    zero(gx), zero(gB), zero(gC), zero(gt), zero(gA);
    ssm::ssd_backward_ref(gx, gt, gB, gC, gA, dy, x, dt, Bm, Cm, A);
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
    CHECK(fd(x, gx) < 1e-7);
    CHECK(fd(dt, gt) < 1e-7);
    CHECK(fd(Bm, gB) < 1e-7);
    CHECK(fd(Cm, gC) < 1e-7);
    CHECK(fd(A, gA) < 1e-7);
}

TEST_CASE("ssd_step: 300 tokens one at a time equal ssd_forward at every position; bad input") {
    const std::size_t b = 2, L = 300, H = 4, P = 8, G = 2, N = 16;
    ssd_inputs in(b, L, H, P, G, N, 99);
    tensor<double, 4> y_ref(b, L, H, P), st_ref(b, H, P, N);
    ssm::ssd_ref(y_ref, st_ref, in.x, in.dt, in.B, in.C, in.A);
    tensor<float, 4> state(b, H, P, N), y_steps(b, L, H, P);
    zero(state);
    tensor<float, 3> xt(b, H, P), yt(b, H, P), bt(b, G, N), ct(b, G, N);
    tensor<float, 2> dtt(b, H);
    for (std::size_t t = 0; t < L; ++t) {
        for (std::size_t i = 0; i < b; ++i) {
            for (std::size_t h = 0; h < H; ++h) {
                dtt(i, h) = in.dt(i, t, h);
                for (std::size_t p = 0; p < P; ++p) {
                    xt(i, h, p) = in.x(i, t, h, p);
                }
            }
            for (std::size_t g = 0; g < G; ++g) {
                for (std::size_t n = 0; n < N; ++n) {
                    bt(i, g, n) = in.B(i, t, g, n);
                    ct(i, g, n) = in.C(i, t, g, n);
                }
            }
        }
        ssm::ssd_step(yt, state, xt, dtt, bt, ct, in.A, llm::parallel::sequential{});
        for (std::size_t i = 0; i < b; ++i) {
            for (std::size_t h = 0; h < H; ++h) {
                for (std::size_t p = 0; p < P; ++p) {
                    y_steps(i, t, h, p) = yt(i, h, p);
                }
            }
        }
    }
    CHECK(rel(y_steps, y_ref) < 3e-5);
    CHECK(rel(state, st_ref) < 3e-5);

    tensor<float, 4> bad(b, H, P, N + 1);
    CHECK_THROWS_WITH_AS(ssm::ssd_step(yt, bad, xt, dtt, bt, ct, in.A, llm::parallel::sequential{}),
                         doctest::Contains("ssd_step: state has shape [2, 4, 8, 17] but must be [2, 4, 8, 16]"),
                         llm::error);
    tensor<float, 4> y(b, L, H, P);
    const auto B3 = randn<float>(1, 0, 1, b, L, 3, N);
    CHECK_THROWS_WITH_AS(ssm::ssd_forward(y, ssm::none, in.x, in.dt, B3, B3, in.A, {}, llm::parallel::sequential{}),
                         doctest::Contains("ssd_forward: B has 3 groups, which must divide the 4 heads of x"), llm::error);
    const auto Cshort = randn<float>(1, 0, 1, b, L - 1, G, N);
    CHECK_THROWS_WITH_AS(ssm::ssd_forward(y, ssm::none, in.x, in.dt, in.B, Cshort, in.A, {}, llm::parallel::sequential{}),
                         doctest::Contains("ssd_forward: C has shape [2, 299, 2, 16] but must be [2, 300, 2, 16]"),
                         llm::error);
}

// The chunked backward (ssd_backward) against finite differences of the double reference, at awkward sizes: L not
// a multiple of the chunk, one chunk longer than L, chunks of 1, groups > 1, several chunks. The kernel runs in
// fp32 on inputs that are exactly representable; the differences (h = 1e-6, central) are exact to ~1e-9. The
// kernel's sums run over at most L + N + P <= 30 terms of magnitude <= ~10 (decays <= 1, |x|, |B|, |C| ~ 1-3),
// each rounded at u = 6e-8: about 30 * 10 * 6e-8 = 2e-5 absolute on gradients of norm >= 1: 1e-4 norm-wise.
TEST_CASE("ssd_backward (chunked) matches finite differences of ssd_ref at awkward sizes") {
    struct cfg {
        std::size_t L, H, P, G, N, chunk;
    };
    const cfg cfgs[] = {{7, 2, 3, 1, 4, 3}, {5, 1, 2, 1, 3, 8}, {6, 2, 2, 1, 3, 1}, {9, 4, 3, 2, 5, 4}, {10, 2, 4, 2, 2, 2}};
    for (const auto& c : cfgs) {
        CAPTURE(c.L);
        CAPTURE(c.chunk);
        CAPTURE(c.G);
        const std::size_t b = 2;
        ssd_inputs in(b, c.L, c.H, c.P, c.G, c.N, 300 + c.L);
        const auto dyf = randn<float>(17 + c.L, 0, 1, b, c.L, c.H, c.P);
        auto x = convert<double>(in.x), Bm = convert<double>(in.B), Cm = convert<double>(in.C);
        auto dtd = convert<double>(in.dt);
        auto A = convert<double>(in.A);
        const auto dy = convert<double>(dyf);
        auto loss = [&] {
            tensor<double, 4> y(b, c.L, c.H, c.P);
            ssm::ssd_ref(y, ssm::none, x, dtd, Bm, Cm, A);
            double s = 0;
            for (std::size_t i = 0; i < y.size(); ++i) {
                s += y.data()[i] * dy.data()[i];
            }
            return s;
        };
        tensor<float, 4> gx(b, c.L, c.H, c.P), gB(b, c.L, c.G, c.N), gC(b, c.L, c.G, c.N);
        tensor<float, 3> gt(b, c.L, c.H);
        tensor<float, 1> gA(c.H);
        llm::zero_grad(gx, gB, gC, gt, gA);
        ssm::ssd_backward(gx, gt, gB, gC, gA, dyf, in.x, in.dt, in.B, in.C, in.A, {.chunk = c.chunk},
                          llm::parallel::sequential{});
        auto fd = [&](auto& p) {
            tensor<double, std::remove_reference_t<decltype(p)>::rank()> g(p);
            for (std::size_t i = 0; i < p.size(); ++i) {
                const double keep = p.data()[i];
                p.data()[i] = keep + 1e-6;
                const double up = loss();
                p.data()[i] = keep - 1e-6;
                const double down = loss();
                p.data()[i] = keep;
                g.data()[i] = (up - down) / 2e-6;
            }
            return g;
        };
        CHECK(rel(gx, fd(x)) < 1e-4);
        CHECK(rel(gt, fd(dtd)) < 1e-4);
        CHECK(rel(gB, fd(Bm)) < 1e-4);
        CHECK(rel(gC, fd(Cm)) < 1e-4);
        CHECK(rel(gA, fd(A)) < 1e-4);
    }
}

// Randomized: chunked (several chunk lengths, 1 and 2 threads) against the recurrent backward and the double
// reference. Each fp32 backward is within 1e-4 of the reference norm-wise (bound stated at the top of the
// file; sums over up to chunk + N + P terms); so they are within 2e-4 of each other. Both accumulate exactly 2x.
TEST_CASE("ssd_backward (chunked) matches ssd_backward_recurrent and ssd_backward_ref on random shapes") {
    llm::parallel::thread_pool pool(2);
    std::uint64_t seed = 1234;
    auto next = [&](std::size_t lo, std::size_t hi) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        return lo + static_cast<std::size_t>((seed >> 33) % (hi - lo + 1));
    };
    for (int trial = 0; trial < 8; ++trial) {
        const std::size_t b = next(1, 2), L = next(1, 150), G = next(1, 2), H = G * next(1, 3), P = next(1, 17),
                          N = next(1, 20), chunk = trial == 0 ? 0 : std::size_t{1} << next(0, 6);  // 0: from the caches
        CAPTURE(L);
        CAPTURE(chunk);
        CAPTURE(H);
        CAPTURE(P);
        CAPTURE(N);
        ssd_inputs in(b, L, H, P, G, N, 700 + static_cast<std::uint64_t>(trial));
        const auto dy = randn<float>(800 + static_cast<std::uint64_t>(trial), 0, 1, b, L, H, P);
        tensor<double, 4> dx_r(b, L, H, P), dB_r(b, L, G, N), dC_r(b, L, G, N);
        tensor<double, 3> dt_r(b, L, H);
        tensor<double, 1> dA_r(H);
        zero(dx_r), zero(dB_r), zero(dC_r), zero(dt_r), zero(dA_r);
        ssm::ssd_backward_ref(dx_r, dt_r, dB_r, dC_r, dA_r, dy, in.x, in.dt, in.B, in.C, in.A);
        tensor<float, 4> dx(b, L, H, P), dB(b, L, G, N), dC(b, L, G, N), rx(b, L, H, P), rB(b, L, G, N),
            rC(b, L, G, N);
        tensor<float, 3> ddt(b, L, H), rt(b, L, H);
        tensor<float, 1> dA(H), rA(H);
        llm::zero_grad(dx, dB, dC, ddt, dA, rx, rB, rC, rt, rA);
        ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, in.x, in.dt, in.B, in.C, in.A, {.chunk = chunk}, pool);
        ssm::ssd_backward_recurrent(rx, rt, rB, rC, rA, dy, in.x, in.dt, in.B, in.C, in.A, pool);
        CHECK(rel(dx, dx_r) < 1e-4);
        CHECK(rel(ddt, dt_r) < 1e-4);
        CHECK(rel(dB, dB_r) < 1e-4);
        CHECK(rel(dC, dC_r) < 1e-4);
        CHECK(rel(dA, dA_r) < 1e-4);
        CHECK(rel(dx, rx) < 2e-4);
        CHECK(rel(ddt, rt) < 2e-4);
        CHECK(rel(dB, rB) < 2e-4);
        CHECK(rel(dC, rC) < 2e-4);
        CHECK(rel(dA, rA) < 2e-4);
        const tensor<float, 4> dx1(dx), dB1(dB), dC1(dC);
        const tensor<float, 3> ddt1(ddt);
        const tensor<float, 1> dA1(dA);
        ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, in.x, in.dt, in.B, in.C, in.A, {.chunk = chunk},
                          llm::parallel::sequential{});
        auto twice = [](const auto& g, const auto& g1) {
            for (std::size_t i = 0; i < g.size(); ++i) {
                if (g.data()[i] != 2.0f * g1.data()[i]) {
                    return false;
                }
            }
            return true;
        };
        CHECK(twice(dx, dx1));
        CHECK(twice(ddt, ddt1));
        CHECK(twice(dB, dB1));
        CHECK(twice(dC, dC1));
        CHECK(twice(dA, dA1));
    }
}

TEST_CASE("ssd_backward and ssd_backward_recurrent refuse a gradient of the wrong shape, naming the call and the gradient") {
    // One shared check (ssd_backward_checked): each gradient that is not none must have its input's shape.
    const std::size_t b = 1, L = 9, H = 2, P = 3, G = 1, N = 4;
    ssd_inputs in(b, L, H, P, G, N, 4242);
    const auto dy = randn<float>(4343, 0, 1, b, L, H, P);
    tensor<float, 4> dx(b, L, H, P), dB(b, L, G, N), dC(b, L, G, N), bad_dx(b, L, H, P + 1), bad_dB(b, L, G, N + 1);
    tensor<float, 3> ddt(b, L, H), bad_ddt(b, L + 1, H);
    tensor<float, 1> dA(H), bad_dA(H + 1);
    llm::parallel::sequential seq;
    for (const bool chunked : {true, false}) {
        CAPTURE(chunked);
        const std::string fn = chunked ? "ssd_backward" : "ssd_backward_recurrent";
        auto said = [&](const char* g) { return doctest::Contains(doctest::String((fn + ": " + g).c_str())); };
        auto run = [&](auto& gx, auto& gt, auto& gb, auto& gc, auto& ga) {
            if (chunked) {
                ssm::ssd_backward(gx, gt, gb, gc, ga, dy, in.x, in.dt, in.B, in.C, in.A, {}, seq);
            } else {
                ssm::ssd_backward_recurrent(gx, gt, gb, gc, ga, dy, in.x, in.dt, in.B, in.C, in.A, seq);
            }
        };
        CHECK_THROWS_WITH_AS(run(bad_dx, ddt, dB, dC, dA), said("dx"), llm::error);
        CHECK_THROWS_WITH_AS(run(dx, bad_ddt, dB, dC, dA), said("ddt"), llm::error);
        CHECK_THROWS_WITH_AS(run(dx, ddt, bad_dB, dC, dA), said("dB"), llm::error);
        CHECK_THROWS_WITH_AS(run(dx, ddt, dB, bad_dB, dA), said("dC"), llm::error);
        CHECK_THROWS_WITH_AS(run(dx, ddt, dB, dC, bad_dA), said("dA"), llm::error);
        CHECK_NOTHROW(run(dx, ddt, dB, dC, dA));
    }
}

TEST_CASE("ssd_step: a row-padded state (advanced in place) and a strided state (copied) give the contiguous state's bits") {
    // Three layouts of the same (batch, H, P, N) state: contiguous, rows N + 3 apart (unit stride:
    // the rows advanced in place at their own stride), every other float (copied through a buffer).
    const std::size_t b = 2, H = 4, P = 5, G = 2, N = 19;
    ssd_inputs in(b, 1, H, P, G, N, 7);
    tensor<float, 3> xt(b, H, P), y1(b, H, P), y2(b, H, P), y3(b, H, P), bt(b, G, N), ct(b, G, N);
    tensor<float, 2> dtt(b, H);
    tensor<float, 4> st(b, H, P, N);
    zero(st);
    std::vector<float> padded(b * H * P * (N + 3), 0.0f), strided(b * H * P * N * 2, 0.0f);
    const llm::strided_view<float, 4> sp(padded.data(), llm::dims<4>(std::array<std::size_t, 4>{b, H, P, N}),
                                         llm::dims<4>(std::array<std::size_t, 4>{H * P * (N + 3), P * (N + 3), N + 3, 1}));
    const llm::strided_view<float, 4> sv(strided.data(), llm::dims<4>(std::array<std::size_t, 4>{b, H, P, N}),
                                         llm::dims<4>(std::array<std::size_t, 4>{H * P * N * 2, P * N * 2, N * 2, 2}));
    llm::parallel::thread_pool pool(2);
    for (std::uint64_t step = 0; step < 12; ++step) {
        xt = randn<float>(100 + step, 0, 1, b, H, P);
        bt = randn<float>(200 + step, 0, 1, b, G, N);
        ct = randn<float>(300 + step, 0, 1, b, G, N);
        dtt = uniform<float>(400 + step, 0.01f, 0.3f, b, H);
        ssm::ssd_step(y1, st, xt, dtt, bt, ct, in.A, llm::parallel::sequential{});
        ssm::ssd_step(y2, sp, xt, dtt, bt, ct, in.A, pool);
        ssm::ssd_step(y3, sv, xt, dtt, bt, ct, in.A, pool);
        CHECK(rel(y2, y1) == 0.0);
        CHECK(rel(y3, y1) == 0.0);
    }
    double worst = 0;
    for (std::size_t i = 0; i < b; ++i) {
        for (std::size_t h = 0; h < H; ++h) {
            for (std::size_t p = 0; p < P; ++p) {
                for (std::size_t n = 0; n < N; ++n) {
                    worst = std::max({worst, static_cast<double>(std::fabs(sp(i, h, p, n) - st(i, h, p, n))),
                                      static_cast<double>(std::fabs(sv(i, h, p, n) - st(i, h, p, n)))});
                }
            }
        }
    }
    CHECK(worst == 0.0);
    // The padding between rows is never written.
    for (std::size_t r = 0; r < b * H * P; ++r) {
        for (std::size_t k = N; k < N + 3; ++k) {
            CHECK(padded[r * (N + 3) + k] == 0.0f);
        }
    }
}
