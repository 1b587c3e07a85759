// SPDX-License-Identifier: Apache-2.0
// MoE routers, losses and statistics: selection rules, tie-breaking, a user's router outside llm::, backward by finite differences and accumulation, the warp top-k on emulated_warp<32>, bad input.
//
// Tolerances. Router weights are a softmax (or sigmoid) of E <= 256 logits: exp errs by < 1.25e-7
// relative, the sum of E terms by E u, the division by u, so weights agree with a double
// computation within (E + 4) u relative; the tests use 1e-5 absolute on values <= 1 (E <= 64:
// 68 u = 4e-6). Losses are sums over T tokens of such values, computed in double: 1e-5 relative.
// Finite differences: h = 1e-3 on logits of magnitude ~1, fp32 loss of magnitude ~1 (rounding
// 1e-7 / 2h = 5e-5) plus truncation h^2 |f'''| ~ 1e-6: tolerance 2e-3 (1 + |g|).
#include "helpers.hpp"

#include <llm/moe/moe.hpp>
#include <llm/moe/reference.hpp>
#include <llm/moe/tile.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/lanes.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

// A router written by a user, outside llm::: top-k by logit, weights = softmax over the k
// chosen logits at temperature tau (so the weights sum to 1 and depend only on the chosen).
// probs saved: the full softmax at temperature tau. It has the members llm::moe::router names
// and nothing else.
namespace user {

struct tempered_top_k {
    std::size_t k = 2;
    float tau = 2.0f;

    [[nodiscard]] std::size_t slots(std::size_t /*E*/) const { return k; }

    void forward(const llm::moe::routing& out, llm::row_view<const float, 2> logits,
                 llm::parallel::policy auto&& /*exec*/) const {
        const std::size_t T = logits.extent(0), E = logits.extent(1);
        std::vector<float> scaled(E);
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t e = 0; e < E; ++e) {
                scaled[e] = logits(t, e) / tau;
            }
            llm::moe::tile::softmax_row(out.probs.ptr(t, 0), scaled.data(), E);
            llm::moe::tile::top_k(out.experts.ptr(t, 0), logits.ptr(t, 0), E, k, ~0ull, E);
            float s = 0.0f;
            for (std::size_t j = 0; j < k; ++j) {
                s += out.probs(t, static_cast<std::size_t>(out.experts(t, j)));
            }
            for (std::size_t j = 0; j < k; ++j) {
                out.weights(t, j) = out.probs(t, static_cast<std::size_t>(out.experts(t, j))) / s;
            }
        }
    }

    void backward(llm::row_view<float, 2> dlogits, const llm::moe::const_routing& saved,
                  llm::row_view<const float, 2> dweights, llm::row_view<const float, 2> /*logits*/,
                  llm::parallel::policy auto&& /*exec*/) const {
        // w_j = softmax over the chosen of l / tau: dl_i = w_i (g_i - sum_j w_j g_j) / tau.
        for (std::size_t t = 0; t < saved.experts.extent(0); ++t) {
            float gw = 0.0f;
            for (std::size_t j = 0; j < k; ++j) {
                gw += saved.weights(t, j) * dweights(t, j);
            }
            for (std::size_t j = 0; j < k; ++j) {
                dlogits(t, static_cast<std::size_t>(saved.experts(t, j))) +=
                    saved.weights(t, j) * (dweights(t, j) - gw) / tau;
            }
        }
    }
};

}  // namespace user

static_assert(llm::moe::router<user::tempered_top_k>);

namespace {

using namespace moe_test;
namespace moe = llm::moe;

struct routed {
    t2i experts;
    t2f weights, probs;
    routed(std::size_t T, std::size_t S, std::size_t E) : experts(T, S), weights(T, S), probs(T, E) {}
};

template <class R>
routed route_of(const t2f& logits, const R& r) {
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    routed out(T, r.slots(E), E);
    poison(out.weights.data(), out.weights.size());
    moe::route(out.experts, out.weights, out.probs, logits, r, llm::parallel::sequential{});
    return out;
}

/// L = sum c . weights; returns dL/dlogits by route_backward and checks it against central
/// differences where the routing does not change.
template <class R>
void check_route_fd(const R& r, std::size_t T, std::size_t E, unsigned seed) {
    std::mt19937 rng(seed);
    t2f logits = rand2(T, E, rng, 2.0f);
    const routed base = route_of(logits, r);
    const t2f c = rand2(T, base.weights.extent(1), rng);
    t2f dl(T, E);
    moe::route_backward(dl, base.experts, base.weights, base.probs, c, logits, r, llm::parallel::sequential{});
    auto loss = [&] {
        const routed o = route_of(logits, r);
        double s = 0.0;
        for (std::size_t i = 0; i < o.weights.size(); ++i) {
            s += double(c.data()[i]) * double(o.weights.data()[i]);
        }
        return s;
    };
    const float h = 1e-3f;
    std::size_t checked = 0;
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t e = 0; e < E; ++e) {
            const float keep = logits(t, e);
            logits(t, e) = keep + h;
            const routed rp = route_of(logits, r);
            const double lp = loss();
            logits(t, e) = keep - h;
            const routed rm = route_of(logits, r);
            const double lm = loss();
            logits(t, e) = keep;
            const bool same = std::equal(rp.experts.data(), rp.experts.data() + rp.experts.size(), base.experts.data()) &&
                              std::equal(rm.experts.data(), rm.experts.data() + rm.experts.size(), base.experts.data());
            if (!same) {
                continue;
            }
            ++checked;
            const double fd = (lp - lm) / (2.0 * h);
            CHECK(std::fabs(fd - double(dl(t, e))) <= 2e-3 * (1.0 + std::fabs(double(dl(t, e)))));
        }
    }
    CHECK(checked >= T * E / 2);
    // Accumulation: a second call adds the same again (exactly 2x).
    t2f dl2(T, E);
    moe::route_backward(dl2, base.experts, base.weights, base.probs, c, logits, r, llm::parallel::sequential{});
    moe::route_backward(dl2, base.experts, base.weights, base.probs, c, logits, r, llm::parallel::sequential{});
    for (std::size_t i = 0; i < dl.size(); ++i) {
        REQUIRE(dl2.data()[i] == 2.0f * dl.data()[i]);
    }
}

}  // namespace

TEST_CASE("routers: ties go to the lower expert index (documented), in serial and warp top-k") {
    t2f logits(3, 6);
    for (std::size_t e = 0; e < 6; ++e) {
        logits(0, e) = 1.0f;                       // all equal: 0, 1 chosen
        logits(1, e) = e == 4 || e == 2 ? 3.0f : 0.0f;  // 2 and 4 tie: 2 first
        logits(2, e) = e == 5 ? 2.0f : (e == 1 || e == 3 ? 1.0f : 0.0f);
    }
    const routed r = route_of(logits, moe::softmax_top_k{.k = 2});
    CHECK(r.experts(0, 0) == 0);
    CHECK(r.experts(0, 1) == 1);
    CHECK(r.experts(1, 0) == 2);
    CHECK(r.experts(1, 1) == 4);
    CHECK(r.experts(2, 0) == 5);
    CHECK(r.experts(2, 1) == 1);
    CHECK(r.weights(0, 0) == doctest::Approx(0.5));
}

TEST_CASE("warp_top_k on emulated_warp<32> picks exactly what the serial top_k picks (ties, groups, E not a multiple of 32)") {
    using L = llm::simd::emulated_warp<32>;
    std::mt19937 rng(3);
    for (const std::size_t E : {8u, 60u, 64u, 128u, 160u, 256u}) {
        for (int rep = 0; rep < 20; ++rep) {
            std::vector<float> key(E);
            std::uniform_int_distribution<int> coarse(-3, 3);  // many ties
            for (auto& v : key) {
                v = rep % 2 == 0 ? static_cast<float>(coarse(rng)) : std::uniform_real_distribution<float>(-1, 1)(rng);
            }
            const std::size_t k = std::min<std::size_t>(E, 1 + static_cast<std::size_t>(rep) % 8);
            const std::size_t n_group = rep % 3 == 0 && E % 4 == 0 ? 4 : 1;
            const std::uint64_t allowed = llm::moe::tile::group_mask(key.data(), E, n_group, 2, 1);
            const std::size_t kk = n_group == 1 ? k : std::min(k, 2 * E / 4);
            std::array<std::int32_t, 8> a{}, b{};
            llm::moe::tile::top_k(a.data(), key.data(), E, kk, allowed, E / n_group);
            llm::moe::tile::warp_top_k<L, 8>(b.data(), key.data(), E, kk, allowed, E / n_group);
            for (std::size_t j = 0; j < kk; ++j) {
                REQUIRE(a[j] == b[j]);
            }
            // The serial pick is the sorted order with lower-index ties.
            std::vector<std::int32_t> order(E);
            for (std::size_t i = 0; i < E; ++i) {
                order[i] = static_cast<std::int32_t>(i);
            }
            std::stable_sort(order.begin(), order.end(), [&](std::int32_t x, std::int32_t y) { return key[x] > key[y]; });
            if (n_group == 1) {
                for (std::size_t j = 0; j < kk; ++j) {
                    REQUIRE(a[j] == order[j]);
                }
            }
        }
    }
}

TEST_CASE("routers: selection rules of each policy") {
    std::mt19937 rng(41);
    const std::size_t T = 50, E = 8;
    const t2f logits = rand2(T, E, rng, 2.0f);

    SUBCASE("softmax top-k: renormalised weights sum to scale, unrenormalised equal the probabilities") {
        const routed a = route_of(logits, moe::softmax_top_k{.k = 3, .scale = 2.0f});
        const routed b = route_of(logits, moe::softmax_top_k{.k = 3, .renormalize = false});
        for (std::size_t t = 0; t < T; ++t) {
            CHECK(a.weights(t, 0) + a.weights(t, 1) + a.weights(t, 2) == doctest::Approx(2.0).epsilon(1e-5));
            for (std::size_t j = 0; j < 3; ++j) {
                CHECK(b.weights(t, j) == b.probs(t, static_cast<std::size_t>(b.experts(t, j))));
                CHECK(a.experts(t, j) == b.experts(t, j));
            }
            CHECK(b.probs(t, static_cast<std::size_t>(b.experts(t, 0))) >= b.probs(t, static_cast<std::size_t>(b.experts(t, 1))));
        }
    }
    SUBCASE("group limit: the chosen experts lie in the topk_group best groups") {
        const routed r = route_of(logits, moe::softmax_top_k{.k = 3, .groups = {.n_group = 4, .topk_group = 2}});
        for (std::size_t t = 0; t < T; ++t) {
            // group score = max prob in the group of 2 experts
            std::array<float, 4> gs{};
            for (std::size_t g = 0; g < 4; ++g) {
                gs[g] = std::max(r.probs(t, 2 * g), r.probs(t, 2 * g + 1));
            }
            std::array<std::size_t, 4> ord{0, 1, 2, 3};
            std::stable_sort(ord.begin(), ord.end(), [&](std::size_t x, std::size_t y) { return gs[x] > gs[y]; });
            for (std::size_t j = 0; j < 3; ++j) {
                const auto g = static_cast<std::size_t>(r.experts(t, j)) / 2;
                CHECK((g == ord[0] || g == ord[1]));
            }
        }
    }
    SUBCASE("sigmoid + bias: the bias changes the selection, never the weights' values") {
        std::vector<float> bias(E, 0.0f);
        bias[7] = 10.0f;  // expert 7 always chosen
        const routed r = route_of(logits, moe::sigmoid_top_k{.k = 2, .renormalize = false, .bias = bias});
        for (std::size_t t = 0; t < T; ++t) {
            CHECK(r.experts(t, 0) == 7);
            CHECK(r.weights(t, 0) == doctest::Approx(1.0 / (1.0 + std::exp(-double(logits(t, 7))))).epsilon(1e-6));
        }
        // The update rule: under-loaded up, over-loaded down, average unchanged.
        std::vector<float> b(4, 0.0f);
        llm::tensor_view<float, llm::dims<1>> bv(b.data(), llm::dims<1>(4));
        const std::vector<std::size_t> load{10, 2, 6, 6};
        moe::update_bias(bv, load, 0.5f);
        CHECK(b == std::vector<float>{-0.5f, 0.5f, 0.0f, 0.0f});
    }
    SUBCASE("switch top-1: at most capacity tokens per expert, later ones dropped") {
        const moe::switch_top1 sw{.capacity_factor = 1.0};
        const routed r = route_of(logits, sw);
        const routed free = route_of(logits, moe::softmax_top_k{.k = 1, .renormalize = false});
        const std::size_t cap = sw.capacity(T, E);  // ceil(50 / 8) = 7
        CHECK(cap == 7);
        std::vector<std::size_t> used(E, 0);
        for (std::size_t t = 0; t < T; ++t) {
            const auto e = static_cast<std::size_t>(free.experts(t, 0));
            if (used[e] < cap) {
                ++used[e];
                CHECK(r.experts(t, 0) == free.experts(t, 0));
                CHECK(r.weights(t, 0) == free.weights(t, 0));
            } else {
                CHECK(r.experts(t, 0) == -1);
                CHECK(r.weights(t, 0) == 0.0f);
            }
        }
        const auto st = moe::router_stats(r.experts, r.probs);
        std::size_t dropped = 0;
        for (std::size_t t = 0; t < T; ++t) {
            dropped += r.experts(t, 0) < 0 ? 1 : 0;
        }
        CHECK(st.unrouted_tokens == dropped);
        for (std::size_t e = 0; e < E; ++e) {
            CHECK(st.tokens_per_expert[e] == used[e]);
        }
    }
    SUBCASE("expert choice: every expert picks exactly c tokens, its best ones") {
        const moe::expert_choice ec{.capacity_factor = 1.0};
        const routed r = route_of(logits, ec);
        const std::size_t c = ec.capacity(T, E);
        for (std::size_t e = 0; e < E; ++e) {
            std::size_t n = 0;
            float worst_in = 2.0f, best_out = -1.0f;
            for (std::size_t t = 0; t < T; ++t) {
                if (r.experts(t, e) == static_cast<std::int32_t>(e)) {
                    ++n;
                    worst_in = std::min(worst_in, r.probs(t, e));
                    CHECK(r.weights(t, e) == r.probs(t, e));
                } else {
                    CHECK(r.experts(t, e) == -1);
                    best_out = std::max(best_out, r.probs(t, e));
                }
            }
            CHECK(n == c);
            CHECK(worst_in >= best_out);
        }
    }
    SUBCASE("noisy top-k: seeded, thread-count independent, a different seed differs") {
        const moe::noisy_top_k a{.k = 2, .noise_std = 1.0f, .seed = 1};
        const routed r1 = route_of(logits, a);
        routed r2(T, 2, E);
        llm::parallel::thread_pool pool(3);
        moe::route(r2.experts, r2.weights, r2.probs, logits, a, pool);
        CHECK(std::equal(r1.weights.data(), r1.weights.data() + r1.weights.size(), r2.weights.data()));
        routed r4(T, 2, E);
        moe::route(r4.experts, r4.weights, r4.probs, logits, a);  // default_pool()
        CHECK(std::equal(r1.weights.data(), r1.weights.data() + r1.weights.size(), r4.weights.data()));
        t2f dl1(T, E), dl4(T, E);
        moe::route_backward(dl1, r1.experts, r1.weights, r1.probs, r1.weights, logits, a, llm::parallel::sequential{});
        moe::route_backward(dl4, r1.experts, r1.weights, r1.probs, r1.weights, logits, a);
        CHECK(std::equal(dl1.data(), dl1.data() + dl1.size(), dl4.data()));
        const routed r3 = route_of(logits, moe::noisy_top_k{.k = 2, .noise_std = 1.0f, .seed = 2});
        CHECK(!std::equal(r1.weights.data(), r1.weights.data() + r1.weights.size(), r3.weights.data()));
        // The noise is standard normal: mean ~0, variance ~1 over 10^4 draws (3-sigma bounds).
        double s = 0.0, s2 = 0.0;
        for (std::size_t i = 0; i < 10000; ++i) {
            const double n = a.noise(i, i % 7);
            s += n;
            s2 += n * n;
        }
        CHECK(std::fabs(s / 1e4) < 0.03);
        CHECK(std::fabs(s2 / 1e4 - 1.0) < 0.05);
    }
}

TEST_CASE("route_backward agrees with finite differences and accumulates (every router)") {
    static const std::vector<float> bias{0.3f, -0.1f, 0.0f, 0.2f, -0.3f, 0.1f};
    SUBCASE("softmax top-2 renormalised") { check_route_fd(moe::softmax_top_k{.k = 2}, 7, 6, 1); }
    SUBCASE("softmax top-3 scaled, not renormalised") {
        check_route_fd(moe::softmax_top_k{.k = 3, .renormalize = false, .scale = 1.5f}, 7, 6, 2);
    }
    SUBCASE("softmax with a group limit") {
        check_route_fd(moe::softmax_top_k{.k = 2, .groups = {.n_group = 3, .topk_group = 2}}, 7, 6, 3);
    }
    SUBCASE("sigmoid with bias, scaled") { check_route_fd(moe::sigmoid_top_k{.k = 2, .scale = 2.5f, .bias = bias}, 7, 6, 4); }
    SUBCASE("switch top-1") { check_route_fd(moe::switch_top1{.capacity_factor = 1.0}, 12, 6, 5); }
    SUBCASE("noisy top-2") { check_route_fd(moe::noisy_top_k{.k = 2, .noise_std = 0.5f, .seed = 4}, 7, 6, 6); }
    SUBCASE("expert choice") { check_route_fd(moe::expert_choice{.capacity_factor = 1.0}, 12, 6, 7); }
    SUBCASE("a user's router") { check_route_fd(user::tempered_top_k{.k = 2, .tau = 1.5f}, 7, 6, 8); }
}

TEST_CASE("a user's router outside llm:: runs through moe_forward / moe_backward and matches a plain loop") {
    std::mt19937 rng(43);
    const std::size_t T = 17, E = 5, d = 8, ff = 12;
    const layer l(E, d, ff, 0, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng);
    const user::tempered_top_k r{.k = 2, .tau = 1.5f};
    t2f y(T, d);
    moe::moe_cache cache;
    moe::moe_forward(y, cache, x, w, r, {}, llm::parallel::sequential{});
    const auto lg = moe::reference::logits(x, w);
    std::vector<double> xr(d), out(d), g(ff), u(ff);
    for (std::size_t t = 0; t < T; ++t) {
        std::vector<std::size_t> ord(E);
        for (std::size_t e = 0; e < E; ++e) {
            ord[e] = e;
        }
        std::stable_sort(ord.begin(), ord.end(), [&](std::size_t a, std::size_t b) { return lg[t * E + a] > lg[t * E + b]; });
        const double p0 = std::exp(lg[t * E + ord[0]] / 1.5), p1 = std::exp(lg[t * E + ord[1]] / 1.5);
        for (std::size_t c = 0; c < d; ++c) {
            xr[c] = x(t, c);
        }
        std::vector<double> yt(d, 0.0);
        for (std::size_t j = 0; j < 2; ++j) {
            moe::reference::swiglu(out.data(), g.data(), u.data(), xr.data(), w.w1, w.w3, w.w2, ord[j]);
            for (std::size_t c = 0; c < d; ++c) {
                yt[c] += (j == 0 ? p0 : p1) / (p0 + p1) * out[c];
            }
        }
        for (std::size_t c = 0; c < d; ++c) {
            CHECK(std::fabs(double(y(t, c)) - yt[c]) <= 1e-5);  // d + ff = 20 terms of size <= 1: 20 * 4u << 1e-5
        }
    }
    grads gr(l);
    t2f dx(T, d);
    moe::moe_backward(dx, gr.views(), cache, y, x, w, r, {}, llm::parallel::sequential{});
    double s = 0.0;
    for (std::size_t i = 0; i < gr.gate.size(); ++i) {
        s += std::fabs(gr.gate.data()[i]);
    }
    CHECK(s > 0.0);  // the router's gradient reached the gate
}

TEST_CASE("load_balancing_loss and router_z_loss: values as transformers' formulas, gradients by finite differences") {
    std::mt19937 rng(47);
    const std::size_t T = 13, E = 6, k = 2;
    t2f logits = rand2(T, E, rng, 2.0f);
    const routed r = route_of(logits, moe::softmax_top_k{.k = k});
    // E * sum_e (count_e / T) * mean_t p[t, e], in double.
    std::vector<double> cnt(E, 0.0), P(E, 0.0);
    double z = 0.0;
    for (std::size_t t = 0; t < T; ++t) {
        double m = -1e30, s = 0.0;
        for (std::size_t e = 0; e < E; ++e) {
            m = std::max(m, double(logits(t, e)));
        }
        for (std::size_t e = 0; e < E; ++e) {
            s += std::exp(double(logits(t, e)) - m);
        }
        for (std::size_t e = 0; e < E; ++e) {
            P[e] += std::exp(double(logits(t, e)) - m) / s / double(T);
        }
        for (std::size_t j = 0; j < k; ++j) {
            cnt[static_cast<std::size_t>(r.experts(t, j))] += 1.0;
        }
        z += (m + std::log(s)) * (m + std::log(s)) / double(T);
    }
    double lb = 0.0;
    for (std::size_t e = 0; e < E; ++e) {
        lb += cnt[e] / double(T) * P[e];
    }
    lb *= double(E);
    CHECK(moe::load_balancing_loss(logits, r.experts) == doctest::Approx(lb).epsilon(1e-5));
    CHECK(moe::router_z_loss(logits) == doctest::Approx(z).epsilon(1e-5));

    t2f dlb(T, E), dz(T, E);
    moe::load_balancing_loss_backward(dlb, 1.0f, logits, r.experts);
    moe::router_z_loss_backward(dz, 1.0f, logits);
    const float h = 1e-3f;
    for (std::size_t t = 0; t < T; t += 3) {
        for (std::size_t e = 0; e < E; ++e) {
            const float keep = logits(t, e);
            logits(t, e) = keep + h;
            const double lp = moe::load_balancing_loss(logits, r.experts), zp = moe::router_z_loss(logits);
            logits(t, e) = keep - h;
            const double lm = moe::load_balancing_loss(logits, r.experts), zm = moe::router_z_loss(logits);
            logits(t, e) = keep;
            CHECK(std::fabs((lp - lm) / (2 * h) - dlb(t, e)) <= 2e-3 * (1.0 + std::fabs(dlb(t, e))));
            CHECK(std::fabs((zp - zm) / (2 * h) - dz(t, e)) <= 2e-3 * (1.0 + std::fabs(dz(t, e))));
        }
    }
    // Uniform routing and probabilities give the minimum, k (E * sum_e (k/E)(1/E) = k).
    t2f flat(8, 4);
    t2i ex(8, 2);
    for (std::size_t t = 0; t < 8; ++t) {
        ex(t, 0) = static_cast<std::int32_t>(t % 4);
        ex(t, 1) = static_cast<std::int32_t>((t + 1) % 4);
    }
    CHECK(moe::load_balancing_loss(flat, ex) == doctest::Approx(2.0));
    const auto st = moe::router_stats(ex, route_of(flat, moe::softmax_top_k{.k = 2}).probs);
    CHECK(st.entropy == doctest::Approx(std::log(4.0)));
    CHECK(st.tokens_per_expert == std::vector<std::size_t>{4, 4, 4, 4});
}

TEST_CASE("routers bad input: k > experts, k = 0, capacity <= 0, NaN logits, wrong shapes, empty batch") {
    std::mt19937 rng(53);
    t2f logits = rand2(4, 3, rng);
    routed out(4, 4, 3);
    const llm::parallel::sequential seq{};
    CHECK_THROWS_WITH_AS(moe::route(out.experts, out.weights, out.probs, logits, moe::softmax_top_k{.k = 4}, seq),
                         doctest::Contains("k = 4"), llm::error);
    routed out0(4, 0, 3);
    CHECK_THROWS_AS(moe::route(out0.experts, out0.weights, out0.probs, logits, moe::softmax_top_k{.k = 0}, seq), llm::error);
    routed o1(4, 1, 3);
    CHECK_THROWS_WITH_AS(moe::route(o1.experts, o1.weights, o1.probs, logits, moe::switch_top1{.capacity_factor = 0.0}, seq),
                         doctest::Contains("capacity_factor"), llm::error);
    routed o3(4, 3, 3);
    CHECK_THROWS_AS(moe::route(o3.experts, o3.weights, o3.probs, logits, moe::expert_choice{.capacity_factor = -2.0}, seq),
                    llm::error);
    routed o2(4, 2, 3);
    CHECK_THROWS_AS(moe::route(o2.experts, o2.weights, o2.probs, logits, moe::softmax_top_k{.k = 2, .groups = {.n_group = 2}}, seq),
                    llm::error);  // 2 groups do not divide 3 experts
    CHECK_THROWS_AS(moe::route(o1.experts, o1.weights, o1.probs, logits, moe::softmax_top_k{.k = 2}, seq), llm::error);
    logits(1, 2) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(moe::route(o2.experts, o2.weights, o2.probs, logits, moe::softmax_top_k{.k = 2}, seq),
                         doctest::Contains("token 1, expert 2"), llm::error);
    CHECK_THROWS_AS((void)moe::load_balancing_loss(logits, o2.experts), llm::error);
    CHECK_THROWS_AS((void)moe::router_z_loss(logits), llm::error);
    // +inf makes the softmax NaN, a row of -inf has no expert to choose: both are rejected
    // (a fuzzed GGUF model once read past the experts through such a row).
    const float inf = std::numeric_limits<float>::infinity();
    logits(1, 2) = inf;
    CHECK_THROWS_WITH_AS(moe::route(o2.experts, o2.weights, o2.probs, logits, moe::softmax_top_k{.k = 2}, seq),
                         doctest::Contains("token 1, expert 2"), llm::error);
    logits(1, 0) = logits(1, 1) = logits(1, 2) = -inf;
    CHECK_THROWS_WITH_AS(moe::route(o2.experts, o2.weights, o2.probs, logits, moe::softmax_top_k{.k = 2}, seq),
                         doctest::Contains("token 1 is -inf"), llm::error);
    logits(1, 0) = 0.5f;  // one finite logit is enough: the -inf experts get probability 0
    moe::route(o2.experts, o2.weights, o2.probs, logits, moe::softmax_top_k{.k = 2}, seq);
    CHECK(o2.experts(1, 0) == 0);
    CHECK(o2.experts(1, 1) == 1);
    CHECK(o2.weights(1, 0) == 1.0f);
    CHECK(o2.weights(1, 1) == 0.0f);
    const std::vector<float> nan_bias{0.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f};
    CHECK_THROWS_WITH_AS(
        moe::route(o2.experts, o2.weights, o2.probs, logits, moe::sigmoid_top_k{.k = 2, .bias = nan_bias}, seq),
        doctest::Contains("bias of expert 1"), llm::error);
    // Empty batch: route writes nothing, losses are 0.
    t2f empty(0, 3);
    routed oe(0, 2, 3);
    moe::route(oe.experts, oe.weights, oe.probs, empty, moe::softmax_top_k{.k = 2}, seq);
    CHECK(moe::load_balancing_loss(empty, oe.experts) == 0.0f);
    CHECK(moe::router_z_loss(empty) == 0.0f);
    // A plan with an expert index out of range.
    t2i bad(1, 1);
    bad(0, 0) = 3;
    moe::dispatch_plan plan;
    CHECK_THROWS_AS(moe::plan_dispatch(plan, bad, 3), llm::error);
}
