// SPDX-License-Identifier: Apache-2.0
// llm::moe::moe_forward / moe_backward against the dense reference (every expert on every token, masked, in double), finite differences, accumulation, determinism, capacity mode, shared experts.
//
// Tolerances.
// Forward: y[t, c] = sum_e m_e sum_f w2[c, f] act_f with act = SiLU(g) u, g = w1 x, u = w3 x.
// In fp32 each dot product of n terms errs by at most n u (sum of |terms|) (u = 2^-24); SiLU's
// exp and division add 3 u relative and |SiLU'| <= 1.1, so |act error| <= 2.2 (d + 4) u G U with
// G = sum |w1| |x|, U = sum |w3| |x| (bounds of |g|, |u|, |SiLU g|). Summing over ff and the k
// slots: |y error| <= ((ff + k + 2) + 2.2 (d + 4)) u M, M = sum_e m_e sum_f |w2| G_f U_f. The
// test uses 4 (d + ff + 8) u M per element (the bound rounded up); a wrong element (a missing
// expert, a wrong weight) is off by O(|y|), far above.
// Backward: every gradient element is a sum of at most n = T k + d + ff products of the
// forward's quantities; the test checks a normwise relative error max|err| / max|ref| <= 1e-4,
// above n u (<= 1e-5 for these sizes) times the cancellation the SiLU derivative adds (< 10),
// and far below the O(1) normwise error of any missing or misrouted term.
#include "helpers.hpp"

#include <llm/moe/moe.hpp>
#include <llm/moe/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <set>
#include <vector>

namespace {

using namespace moe_test;
namespace moe = llm::moe;

/// M of the forward bound, per element [T * d], for the routing in the cache.
std::vector<double> forward_scale(const t2f& x, const moe::moe_weights& w, const moe::const_routing& r) {
    const std::size_t T = x.extent(0), E = w.experts(), d = w.d_model(), ff = w.d_ff();
    const std::vector<double> m = moe::reference::mask(r.experts, r.weights, E);
    std::vector<double> M(T * d, 0.0);
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t e = 0; e < E; ++e) {
            if (m[t * E + e] == 0.0) {
                continue;
            }
            for (std::size_t f = 0; f < ff; ++f) {
                double G = 0.0, U = 0.0;
                for (std::size_t c = 0; c < d; ++c) {
                    G += std::fabs(w.w1(e, f, c) * x(t, c));
                    U += std::fabs(w.w3(e, f, c) * x(t, c));
                }
                for (std::size_t c = 0; c < d; ++c) {
                    M[t * d + c] += std::fabs(m[t * E + e]) * std::fabs(w.w2(e, c, f)) * G * U;
                }
            }
        }
    }
    return M;
}

void check_forward(const t2f& y, const t2f& x, const moe::moe_weights& w, const moe::moe_cache& cache) {
    const moe::const_routing r = cache.routing_views();
    const std::vector<double> ref = moe::reference::moe_forward(x, w, r.experts, r.weights);
    const std::vector<double> M = forward_scale(x, w, r);
    const double n = static_cast<double>(w.d_model() + w.d_ff() + 8);
    for (std::size_t i = 0; i < ref.size(); ++i) {
        REQUIRE(std::fabs(static_cast<double>(y.data()[i]) - ref[i]) <= 4.0 * n * u32 * M[i] + 1e-30);
    }
}

}  // namespace

TEST_CASE("moe_forward matches the dense reference (every expert on every token, masked) on awkward sizes") {
    std::mt19937 rng(7);
    struct shape {
        std::size_t T, E, d, ff, k;
    };
    for (const shape s : {shape{37, 6, 24, 40, 2}, shape{1, 8, 16, 16, 2}, shape{5, 3, 7, 9, 3}, shape{64, 8, 33, 17, 1}}) {
        CAPTURE(s.T);
        CAPTURE(s.E);
        const layer l(s.E, s.d, s.ff, 0, rng);
        const auto w = l.weights();
        const t2f x = rand2(s.T, s.d, rng);
        t2f y(s.T, s.d);
        poison(y.data(), y.size());
        moe::moe_cache cache;
        moe::moe_forward(y, cache, x, w, moe::softmax_top_k{.k = s.k}, {}, llm::parallel::sequential{});
        check_forward(y, x, w, cache);
        // The routing is the reference's Mixtral routing (softmax, top-k, renormalised).
        std::vector<std::int32_t> ex;
        std::vector<double> wt;
        const auto lg = moe::reference::logits(x, w);
        (void)moe::reference::softmax_top_k(ex, wt, lg, s.T, s.E, s.k, true, 1.0);
        const auto rt = cache.routing_views();
        for (std::size_t t = 0; t < s.T; ++t) {
            for (std::size_t j = 0; j < s.k; ++j) {
                CHECK(rt.experts(t, j) == ex[t * s.k + j]);
                CHECK(std::fabs(rt.weights(t, j) - wt[t * s.k + j]) <= 1e-5);
            }
        }
    }
}

TEST_CASE("moe_forward with shared experts and each router matches the dense reference") {
    std::mt19937 rng(11);
    const std::size_t T = 29, E = 8, d = 20, ff = 24, fs = 12;
    const layer l(E, d, ff, fs, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng);
    std::vector<float> bias(E);
    randomize(bias.data(), E, rng, 0.2f);
    auto run = [&](const auto& router) {
        t2f y(T, d);
        poison(y.data(), y.size());
        moe::moe_cache cache;
        moe::moe_forward(y, cache, x, w, router, {}, llm::parallel::sequential{});
        // Shared experts: y - shared(x) must be the routed part.
        const moe::const_routing r = cache.routing_views();
        std::vector<double> ref = moe::reference::moe_forward(x, w, r.experts, r.weights);
        const std::vector<double> M = forward_scale(x, w, r);
        std::vector<double> xr(d), out(d), g(fs), u(fs);
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t f = 0; f < fs; ++f) {
                double a = 0.0, b = 0.0;
                for (std::size_t c = 0; c < d; ++c) {
                    a += double(l.sw1(f, c)) * double(x(t, c));
                    b += double(l.sw3(f, c)) * double(x(t, c));
                }
                g[f] = a / (1.0 + std::exp(-a)) * b;
            }
            for (std::size_t c = 0; c < d; ++c) {
                double s = 0.0;
                for (std::size_t f = 0; f < fs; ++f) {
                    s += double(l.sw2(c, f)) * g[f];
                }
                ref[t * d + c] += s;
            }
        }
        // The shared part adds its own dot-product error: covered by a 1e-5 absolute floor
        // (d + fs = 32 terms of magnitude <= 1: 32 * 2 u * 1 < 4e-6).
        for (std::size_t i = 0; i < ref.size(); ++i) {
            REQUIRE(std::fabs(double(y.data()[i]) - ref[i]) <= 4.0 * double(d + ff + 8) * u32 * M[i] + 1e-5);
        }
    };
    run(moe::softmax_top_k{.k = 2});
    run(moe::softmax_top_k{.k = 3, .renormalize = false, .scale = 1.5f});
    run(moe::softmax_top_k{.k = 2, .groups = {.n_group = 4, .topk_group = 2, .per_group = 1}});
    run(moe::sigmoid_top_k{.k = 2, .scale = 2.5f, .groups = {.n_group = 4, .topk_group = 2, .per_group = 2}, .bias = bias});
    run(moe::switch_top1{.capacity_factor = 1.0});
    run(moe::noisy_top_k{.k = 2, .noise_std = 0.5f, .seed = 3});
    run(moe::expert_choice{.capacity_factor = 1.5});
}

TEST_CASE("moe_backward matches the dense reference's gradients (Mixtral router, dropless)") {
    std::mt19937 rng(5);
    const std::size_t T = 23, E = 5, d = 12, ff = 18, k = 2;
    const layer l(E, d, ff, 0, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng), dy = rand2(T, d, rng);
    const moe::softmax_top_k router{.k = k};
    t2f y(T, d);
    moe::moe_cache cache;
    moe::moe_forward(y, cache, x, w, router, {}, llm::parallel::sequential{});
    grads g(l);
    t2f dx(T, d);
    moe::moe_backward(dx, g.views(), cache, dy, x, w, router, {}, llm::parallel::sequential{});

    const moe::const_routing r = cache.routing_views();
    const auto ref = moe::reference::moe_backward(dy, x, w, r.experts, r.weights);
    // Router: dweights -> dlogits (reference, double) -> dgate, dx.
    std::vector<std::int32_t> ex;
    std::vector<double> wt;
    const auto lg = moe::reference::logits(x, w);
    const auto p = moe::reference::softmax_top_k(ex, wt, lg, T, E, k, true, 1.0);
    const auto dl = moe::reference::softmax_top_k_backward(ref.dweights, p, ex, T, E, k, true, 1.0);
    std::vector<double> dgate(E * d, 0.0), dxr = ref.dx;
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t e = 0; e < E; ++e) {
            for (std::size_t c = 0; c < d; ++c) {
                dgate[e * d + c] += dl[t * E + e] * double(x(t, c));
                dxr[t * d + c] += dl[t * E + e] * double(l.gate(e, c));
            }
        }
    }
    CHECK(normwise(dx.data(), dxr.data(), dxr.size()) <= 1e-4);
    CHECK(normwise(g.w1.data(), ref.dw1.data(), ref.dw1.size()) <= 1e-4);
    CHECK(normwise(g.w3.data(), ref.dw3.data(), ref.dw3.size()) <= 1e-4);
    CHECK(normwise(g.w2.data(), ref.dw2.data(), ref.dw2.size()) <= 1e-4);
    CHECK(normwise(g.gate.data(), dgate.data(), dgate.size()) <= 1e-4);
}

namespace {

/// L = sum c . y for fixed random c, in double, from an fp32 forward.
template <class R>
double loss_of(const layer& l, const t2f& x, const t2f& c, const R& router, const moe::moe_options& opt = {}) {
    t2f y(x.extent(0), x.extent(1));
    moe::moe_cache cache;
    moe::moe_forward(y, cache, x, l.weights(), router, opt, llm::parallel::sequential{});
    double s = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        s += double(c.data()[i]) * double(y.data()[i]);
    }
    return s + double(opt.aux_loss_coef) * cache.aux_loss + double(opt.z_loss_coef) * cache.z_loss;
}

/// Central differences of loss_of against the backward for a few entries of x, the gate, w1 and
/// the shared w3. Step h = 1e-2 on values of magnitude <= 1: truncation O(h^2 |L'''|) ~ 1e-4,
/// fp32 rounding of L (|L| ~ 10, relative 1e-6) over 2h ~ 5e-4; tolerance 5e-3 (1 + |g|). A
/// perturbation that changes the routing (a discontinuity) is skipped: it is detected by the
/// two one-sided slopes disagreeing beyond the same tolerance.
template <class R>
void check_fd(const R& router, bool shared, const moe::moe_options& opt = {}) {
    std::mt19937 rng(13);
    const std::size_t T = 9, E = 4, d = 6, ff = 8, fs = shared ? 5 : 0;
    layer l(E, d, ff, fs, rng);
    t2f x = rand2(T, d, rng);
    const t2f c = rand2(T, d, rng);
    t2f y(T, d);
    moe::moe_cache cache;
    moe::moe_forward(y, cache, x, l.weights(), router, opt, llm::parallel::sequential{});
    grads g(l);
    t2f dx(T, d);
    moe::moe_backward(dx, g.views(), cache, c, x, l.weights(), router, opt, llm::parallel::sequential{});
    const float h = 1e-2f;
    std::size_t checked = 0;
    auto probe = [&](float* param, float grad) {
        const float keep = *param;
        const double l0 = loss_of(l, x, c, router, opt);
        *param = keep + h;
        const double lp = loss_of(l, x, c, router, opt);
        *param = keep - h;
        const double lm = loss_of(l, x, c, router, opt);
        *param = keep;
        const double fwd = (lp - l0) / h, bwd = (l0 - lm) / h;
        if (std::fabs(fwd - bwd) > 5e-2 * (1.0 + std::fabs(grad))) {
            return;  // the routing changed inside [-h, h]
        }
        ++checked;
        const double fd = (lp - lm) / (2.0 * h);
        CHECK(std::fabs(fd - double(grad)) <= 5e-3 * (1.0 + std::fabs(double(grad))));
    };
    for (std::size_t i = 0; i < 6; ++i) {
        const std::size_t t = (i * 5) % T, a = (i * 7) % d;
        probe(&x(t, a), dx(t, a));
        probe(&l.gate(i % E, a), g.gate(i % E, a));
        probe(&l.w1(i % E, i % ff, a), g.w1(i % E, i % ff, a));
        probe(&l.w2(i % E, a, i % ff), g.w2(i % E, a, i % ff));
        if (shared) {
            probe(&l.sw3(i % fs, a), g.sw3(i % fs, a));
        }
    }
    CHECK(checked >= 20);
}

}  // namespace

TEST_CASE("moe_backward agrees with finite differences for every router, shared experts and the aux losses") {
    SUBCASE("softmax top-2 renormalised, shared experts") { check_fd(moe::softmax_top_k{.k = 2}, true); }
    SUBCASE("softmax top-2 not renormalised, scaled") {
        check_fd(moe::softmax_top_k{.k = 2, .renormalize = false, .scale = 2.0f}, false);
    }
    SUBCASE("sigmoid top-2 with bias, scaled") {
        static const std::vector<float> bias{0.1f, -0.2f, 0.05f, 0.0f};
        check_fd(moe::sigmoid_top_k{.k = 2, .scale = 2.5f, .bias = bias}, false);
    }
    SUBCASE("switch top-1 with capacity") { check_fd(moe::switch_top1{.capacity_factor = 1.0}, false); }
    SUBCASE("noisy top-2") { check_fd(moe::noisy_top_k{.k = 2, .noise_std = 0.3f, .seed = 9}, false); }
    SUBCASE("expert choice") { check_fd(moe::expert_choice{.capacity_factor = 1.0}, false); }
    SUBCASE("aux and z losses") {
        check_fd(moe::softmax_top_k{.k = 2}, false, moe::moe_options{.aux_loss_coef = 0.5f, .z_loss_coef = 0.1f});
    }
    SUBCASE("capacity mode") { check_fd(moe::softmax_top_k{.k = 2}, false, moe::moe_options{.capacity_factor = 0.75}); }
}

TEST_CASE("moe_backward accumulates: two calls on zeroed gradients give exactly 2x one call") {
    std::mt19937 rng(17);
    const std::size_t T = 19, E = 6, d = 10, ff = 14, fs = 6;
    const layer l(E, d, ff, fs, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng), dy = rand2(T, d, rng);
    const moe::softmax_top_k router{.k = 2};
    const moe::moe_options opt{.aux_loss_coef = 0.01f, .z_loss_coef = 0.001f};
    t2f y(T, d);
    moe::moe_cache cache;
    moe::moe_forward(y, cache, x, w, router, opt, llm::parallel::sequential{});
    grads g1(l), g2(l);
    t2f dx1(T, d), dx2(T, d);
    moe::moe_backward(dx1, g1.views(), cache, dy, x, w, router, opt, llm::parallel::sequential{});
    moe::moe_backward(dx2, g2.views(), cache, dy, x, w, router, opt, llm::parallel::sequential{});
    moe::moe_backward(dx2, g2.views(), cache, dy, x, w, router, opt, llm::parallel::sequential{});
    // Each element is a + a computed as a then a + a: exact in binary floating point.
    auto twice = [](const auto& a, const auto& b) {
        for (std::size_t i = 0; i < a.size(); ++i) {
            REQUIRE(b.data()[i] == 2.0f * a.data()[i]);
        }
    };
    twice(dx1, dx2);
    twice(g1.gate, g2.gate);
    twice(g1.w1, g2.w1);
    twice(g1.w3, g2.w3);
    twice(g1.w2, g2.w2);
    twice(g1.sw1, g2.sw1);
    twice(g1.sw3, g2.sw3);
    twice(g1.sw2, g2.sw2);
}

TEST_CASE("moe_forward and moe_backward: sequential{}, a thread_pool and default_pool() give identical results") {
    std::mt19937 rng(19);
    const std::size_t T = 200, E = 8, d = 32, ff = 48;
    const layer l(E, d, ff, 16, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng), dy = rand2(T, d, rng);
    const moe::softmax_top_k router{.k = 2};
    t2f y1(T, d), y2(T, d), y3(T, d);
    moe::moe_cache c1, c2, c3;
    llm::parallel::thread_pool pool(3);
    llm::workspace ws;
    moe::moe_forward(y1, c1, x, w, router, {}, llm::parallel::sequential{});
    moe::moe_forward(y2, c2, x, w, router, {}, ws, pool);
    moe::moe_forward(y3, c3, x, w, router, {});
    grads g1(l), g2(l);
    t2f dx1(T, d), dx2(T, d);
    moe::moe_backward(dx1, g1.views(), c1, dy, x, w, router, {}, llm::parallel::sequential{});
    moe::moe_backward(dx2, g2.views(), c2, dy, x, w, router, {}, ws, pool);
    grads g3(l);
    t2f dx3(T, d);
    moe::moe_backward(dx3, g3.views(), c3, dy, x, w, router, {});
    for (std::size_t i = 0; i < y1.size(); ++i) {
        REQUIRE(y1.data()[i] == y2.data()[i]);
        REQUIRE(y1.data()[i] == y3.data()[i]);
        REQUIRE(dx1.data()[i] == dx2.data()[i]);
        REQUIRE(dx1.data()[i] == dx3.data()[i]);
    }
    for (std::size_t i = 0; i < g1.w1.size(); ++i) {
        REQUIRE(g1.w1.data()[i] == g2.w1.data()[i]);
        REQUIRE(g1.w2.data()[i] == g2.w2.data()[i]);
    }
}

TEST_CASE("moe capacity mode: pairs beyond ceil(cf * T * k / E) per expert are dropped in token order") {
    std::mt19937 rng(23);
    const std::size_t T = 40, E = 4, d = 8, ff = 8, k = 2;
    const layer l(E, d, ff, 0, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng);
    t2f y(T, d);
    moe::moe_cache cache;
    moe::moe_forward(y, cache, x, w, moe::softmax_top_k{.k = k}, moe::moe_options{.capacity_factor = 0.5},
                     llm::parallel::sequential{});
    const std::size_t cap = 10;  // ceil(0.5 * 40 * 2 / 4)
    std::vector<std::size_t> seen(E, 0);
    std::size_t dropped = 0;
    const auto r = cache.routing_views();
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t j = 0; j < k; ++j) {
            const auto e = static_cast<std::size_t>(r.experts(t, j));
            const bool kept = seen[e] < cap;
            seen[e] += 1;
            dropped += kept ? 0 : 1;
            CHECK((cache.plan.pos[t * k + j] >= 0) == kept);
        }
    }
    CHECK(cache.plan.dropped == dropped);
    CHECK(dropped > 0);
    for (std::size_t e = 0; e < E; ++e) {
        CHECK(cache.plan.offsets[e + 1] - cache.plan.offsets[e] == std::min(seen[e], cap));
    }
}

TEST_CASE("moe layer bad input: NaN logits, capacity <= 0, k > experts, shapes, empty batch") {
    std::mt19937 rng(29);
    const std::size_t E = 4, d = 8, ff = 8;
    const layer l(E, d, ff, 0, rng);
    const auto w = l.weights();
    t2f x = rand2(5, d, rng);
    t2f y(5, d);
    moe::moe_cache cache;
    const llm::parallel::sequential seq{};
    CHECK_THROWS_AS(moe::moe_forward(y, cache, x, w, moe::softmax_top_k{.k = 5}, {}, seq), llm::error);
    CHECK_THROWS_AS(moe::moe_forward(y, cache, x, w, moe::softmax_top_k{.k = 2}, moe::moe_options{.capacity_factor = 0.0}, seq),
                    llm::error);
    CHECK_THROWS_AS(moe::moe_forward(y, cache, x, w, moe::switch_top1{.capacity_factor = -1.0}, {}, seq), llm::error);
    t2f wrong(5, d + 1);
    CHECK_THROWS_AS(moe::moe_forward(wrong, cache, x, w, moe::softmax_top_k{}, {}, seq), llm::error);
    x(2, 3) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(moe::moe_forward(y, cache, x, w, moe::softmax_top_k{}, {}, seq),
                         doctest::Contains("NaN"), llm::error);
    // Empty batch: nothing written, backward does nothing.
    t2f x0(0, d), y0(0, d), dx0(0, d);
    moe::moe_forward(y0, cache, x0, w, moe::softmax_top_k{}, {}, seq);
    CHECK(cache.tokens == 0);
    CHECK(cache.plan.size() == 0);
    grads g(l);
    moe::moe_backward(dx0, g.views(), cache, y0, x0, w, moe::softmax_top_k{}, {}, seq);
    for (std::size_t i = 0; i < g.w1.size(); ++i) {
        REQUIRE(g.w1.data()[i] == 0.0f);
    }
}

TEST_CASE("moe_forward at DeepSeek-like routing sizes (64 experts, top-6, groups, shared) matches the dense reference" *
          doctest::test_suite("slow")) {
    std::mt19937 rng(31);
    const std::size_t T = 300, E = 64, d = 48, ff = 32, fs = 24;
    const layer l(E, d, ff, fs, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng);
    std::vector<float> bias(E);
    randomize(bias.data(), E, rng, 0.05f);
    const moe::sigmoid_top_k router{.k = 6, .scale = 2.5f, .groups = {.n_group = 8, .topk_group = 3, .per_group = 2}, .bias = bias};
    t2f y(T, d), y_shared_only(T, d);
    moe::moe_cache cache;
    llm::parallel::thread_pool pool(2);
    moe::moe_forward(y, cache, x, w, router, {}, pool);
    // The routed part: y minus the shared experts' output (a layer whose routing weights are 0).
    const moe::const_routing r = cache.routing_views();
    const std::vector<double> ref = moe::reference::moe_forward(x, w, r.experts, r.weights);
    const std::vector<double> M = forward_scale(x, w, r);
    std::vector<double> shared(T * d, 0.0);
    for (std::size_t t = 0; t < T; ++t) {
        std::vector<double> h(fs);
        for (std::size_t f = 0; f < fs; ++f) {
            double a = 0.0, b = 0.0;
            for (std::size_t c = 0; c < d; ++c) {
                a += double(l.sw1(f, c)) * double(x(t, c));
                b += double(l.sw3(f, c)) * double(x(t, c));
            }
            h[f] = a / (1.0 + std::exp(-a)) * b;
        }
        for (std::size_t c = 0; c < d; ++c) {
            for (std::size_t f = 0; f < fs; ++f) {
                shared[t * d + c] += double(l.sw2(c, f)) * h[f];
            }
        }
    }
    // As the shared-expert test above: the routed bound plus 1e-5 for the shared part
    // (d + fs = 72 terms of magnitude <= 1: 72 * 2 u < 1e-5).
    for (std::size_t i = 0; i < ref.size(); ++i) {
        REQUIRE(std::fabs(double(y.data()[i]) - ref[i] - shared[i]) <= 4.0 * double(d + ff + 8) * u32 * M[i] + 1e-5);
    }
    // Every token's experts lie in at most topk_group = 3 groups of 8.
    for (std::size_t t = 0; t < T; ++t) {
        std::set<int> groups;
        for (std::size_t j = 0; j < 6; ++j) {
            groups.insert(r.experts(t, j) / 8);
        }
        REQUIRE(groups.size() <= 3);
    }
}

TEST_CASE("moe with bf16 weights equals the fp32 layer on the same (widened) values") {
    // bf16 -> fp32 widening is exact, so both layers compute with the same numbers; the GEMM
    // may order its sums differently by element type: a normwise 1e-5 (far below bf16's own
    // 2^-9 rounding, far above fp32's n u for n <= 40).
    std::mt19937 rng(37);
    const std::size_t T = 21, E = 4, d = 16, ff = 20;
    layer l(E, d, ff, 0, rng);
    using t2h = llm::tensor<llm::bf16, llm::dims<2>>;
    using t3h = llm::tensor<llm::bf16, llm::dims<3>>;
    t2h gate(E, d);
    t3h w1(E, ff, d), w3(E, ff, d), w2(E, d, ff);
    auto round = [](auto& h, auto& f) {
        for (std::size_t i = 0; i < f.size(); ++i) {
            h.data()[i] = llm::bf16(f.data()[i]);
            f.data()[i] = static_cast<float>(h.data()[i]);
        }
    };
    round(gate, l.gate);
    round(w1, l.w1);
    round(w3, l.w3);
    round(w2, l.w2);
    const llm::moe::basic_moe_weights<llm::bf16> wh = moe::make_moe_weights(gate, w1, w3, w2);
    const auto wf = l.weights();
    const t2f x = rand2(T, d, rng), dy = rand2(T, d, rng);
    const moe::softmax_top_k router{.k = 2};
    t2f yh(T, d), yf(T, d), dxh(T, d), dxf(T, d);
    moe::moe_cache ch, cf;
    moe::moe_forward(yh, ch, x, wh, router, {}, llm::parallel::sequential{});
    moe::moe_forward(yf, cf, x, wf, router, {}, llm::parallel::sequential{});
    std::vector<double> ref(yf.data(), yf.data() + yf.size());
    CHECK(normwise(yh.data(), ref.data(), ref.size()) <= 1e-5);
    grads gh(l), gf(l);
    moe::moe_backward(dxh, gh.views(), ch, dy, x, wh, router, {}, llm::parallel::sequential{});
    moe::moe_backward(dxf, gf.views(), cf, dy, x, wf, router, {}, llm::parallel::sequential{});
    std::vector<double> rdx(dxf.data(), dxf.data() + dxf.size()), rw1(gf.w1.data(), gf.w1.data() + gf.w1.size());
    CHECK(normwise(dxh.data(), rdx.data(), rdx.size()) <= 1e-5);
    CHECK(normwise(gh.w1.data(), rw1.data(), rw1.size()) <= 1e-5);
}
