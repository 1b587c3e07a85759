// SPDX-License-Identifier: Apache-2.0
// llm::train optimizers and clipping against PyTorch 1.13 (tests/golden/train/make_golden.py),
// the weight-decay rule, bf16 master weights, policies and errors.
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/train/clip.hpp>
#include <llm/train/optimizer.hpp>
#include <llm/train/ema.hpp>
#include <llm/train/schedule.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include "../support/golden.hpp"

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

namespace {

using llm::dims;
using t1 = llm::tensor<float, dims<1>>;
using t2 = llm::tensor<float, dims<2>>;

const llm_test::golden_file& golden() {
    static const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/train/golden.txt");
    return file;
}

template <class T>
void fill_from(T& t, const llm_test::golden_array& a) {
    REQUIRE(a.values.size() == t.size());
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(a.values[i]);
}

// Tolerance against PyTorch, fp32: every operation of a step is the one PyTorch performs, in its
// order, so the remaining differences are fma contraction in PyTorch's scalar tail loops and the
// clip coefficient (our norm sums in double, PyTorch's in float: a few ulp of the coefficient).
// Each step then moves a parameter by at most a few roundings of |p| and of the update (<= lr
// for AdamW, <= lr |d| for SGD): 4u (|p| + scale) per step, accumulated over the steps taken,
// u = 2^-24. Observed: SGD and the undecayed AdamW tensor bit for bit; the decayed AdamW tensor
// within 0.49 of the tolerance (about 2 ulp of p): GCC contracts p * (1 - lr wd) + update into one
// fma (its default -ffp-contract=fast reaches the vector intrinsics), where PyTorch rounds the
// product first (checked: a NumPy float32 emulation of PyTorch's order reproduces it exactly). A wrong formula moves it by far more: eps
// inside the square root or a missing bias correction by > 1e-5 here (eps = 1e-4), missing
// weight decay by lr * 0.1 * |p| ~ 6e-4 |p|.
double tolerance(int steps, double p, double scale) {
    return steps * 4.0 * 0x1p-24 * (std::abs(p) + scale);
}

template <class T>
void check_close(const T& got, const llm_test::golden_array& want, int steps, double scale, const std::string& what) {
    REQUIRE(want.values.size() == got.size());
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double d = std::abs(static_cast<double>(got.data()[i]) - want.values[i]);
        worst = std::max(worst, d / tolerance(steps, want.values[i], scale));
    }
    INFO(what, ": worst error / tolerance = ", worst);
    CHECK(worst <= 1.0);
}

}  // namespace

TEST_CASE("adamw with clip_grad_norm and a cosine schedule matches torch.optim.AdamW + clip_grad_norm_ (10 steps)") {
    const auto& g = golden();
    t2 p0(4, 5), g0(4, 5);
    t1 p1(7), g1(7);
    fill_from(p0, g.get("adamw_p0_init"));
    fill_from(p1, g.get("adamw_p1_init"));
    // Weight decay on p0 (2-D) only: decay_matrices, the default rule.
    llm::train::adamw_optimizer<> opt({.lr = 0, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-4, .weight_decay = 0.1});
    const llm::train::cosine_lr schedule{.max_lr = 6e-3, .warmup = 2, .total = 8, .min_lr = 6e-4};
    llm::parallel::thread_pool pool(3);
    auto walk = [&](auto&& f) {
        f("p0", p0, g0);
        f("p1", p1, g1);
    };
    const auto& lrs = g.get("adamw_lr");
    const auto& norms = g.get("adamw_norm");
    for (int k = 0; k < 10; ++k) {
        fill_from(g0, g.get("adamw_g0_" + std::to_string(k)));
        fill_from(g1, g.get("adamw_g1_" + std::to_string(k)));
        const double norm = llm::train::clip_grad_norm(walk, 1.0, pool);
        CHECK(norm == doctest::Approx(norms.values[static_cast<std::size_t>(k)]).epsilon(1e-6));
        opt.options().lr = schedule(k);
        CHECK(opt.options().lr == doctest::Approx(lrs.values[static_cast<std::size_t>(k)]).epsilon(1e-15));
        opt.step(walk, pool);
        check_close(p0, g.get("adamw_p0_" + std::to_string(k)), k + 1, 6e-3, "p0 step " + std::to_string(k));
        check_close(p1, g.get("adamw_p1_" + std::to_string(k)), k + 1, 6e-3, "p1 step " + std::to_string(k));
    }
    CHECK(opt.steps() == 10);
}

TEST_CASE("sgd with momentum, dampening, Nesterov and weight decay matches torch.optim.SGD (10 steps)") {
    const auto& g = golden();
    for (const char* c : {"sgd_damp", "sgd_nesterov"}) {
        const std::string name = c;
        INFO(name);
        const bool nesterov = name == "sgd_nesterov";
        t2 w(3, 6), dw(3, 6);
        fill_from(w, g.get(name + "_init"));
        llm::train::sgd_optimizer<> opt(
            {.lr = 0.05, .momentum = 0.9, .dampening = nesterov ? 0.0 : 0.1, .weight_decay = 0.01, .nesterov = nesterov});
        for (int k = 0; k < 10; ++k) {
            fill_from(dw, g.get(name + "_g_" + std::to_string(k)));
            opt.step(std::vector{std::tuple<std::string, t2&, t2&>{"w", w, dw}}, llm::parallel::sequential{});
            // |d| <= |g| + momentum buffer <= about 10 |g|; scale lr * 30.
            check_close(w, g.get(name + "_p_" + std::to_string(k)), k + 1, 0.05 * 30, name + " step " + std::to_string(k));
        }
    }
}

TEST_CASE("adamw per tensor: the decay flag, thread counts and backends give the documented results") {
    const std::size_t n = 1000;
    t1 p(n), m(n), v(n), gr(n);
    for (std::size_t i = 0; i < n; ++i) {
        p.data()[i] = std::sin(0.1f * static_cast<float>(i));
        gr.data()[i] = std::cos(0.37f * static_cast<float>(i));
    }
    const llm::train::adamw_options o{.lr = 1e-2, .weight_decay = 0.5};
    // Reference: the formula in double per element (one step from zero moments).
    t1 p_ref = p;
    for (std::size_t i = 0; i < n; ++i) {
        const double gi = gr.data()[i];
        const double mi = 0.1 * gi, vi = 0.001 * gi * gi;
        const double mh = mi / 0.1, vh = vi / 0.001;
        p_ref.data()[i] = static_cast<float>(p.data()[i] * (1 - 1e-2 * 0.5) - 1e-2 * mh / (std::sqrt(vh) + 1e-8));
    }
    t1 a = p, ma(n), va(n);
    llm::train::adamw(a, ma, va, gr, o, 1, true, llm::parallel::sequential{});
    for (std::size_t i = 0; i < n; ++i) CHECK(a.data()[i] == doctest::Approx(p_ref.data()[i]).epsilon(1e-5));
    // Same bits on a pool.
    t1 b = p, mb(n), vb(n), c = p, mc(n), vc(n);
    llm::parallel::thread_pool pool(2);
    llm::train::adamw(b, mb, vb, gr, o, 1, true, pool);
    llm::train::adamw<llm::simd::scalar>(c, mc, vc, gr, o, 1, true, pool);
    CHECK(std::memcmp(a.data(), b.data(), n * 4) == 0);
    // The scalar backend's plain C++ may be contracted into fmas by the compiler: close, not equal.
    for (std::size_t i = 0; i < n; ++i) CHECK(c.data()[i] == doctest::Approx(a.data()[i]).epsilon(1e-6));
    // decay = false leaves out exactly the factor 1 - lr * wd.
    t1 d = p, md(n), vd(n);
    llm::train::adamw(d, md, vd, gr, o, 1, false);
    t1 e = p, me(n), ve(n);
    llm::train::adamw(e, me, ve, gr, {.lr = 1e-2, .weight_decay = 0}, 1, true);
    CHECK(std::memcmp(d.data(), e.data(), n * 4) == 0);
    CHECK(std::memcmp(d.data(), a.data(), n * 4) != 0);
}

TEST_CASE("adamw_optimizer: the decay rule is the user's; bf16 parameters keep fp32 master weights") {
    t2 w(3, 4), dw(3, 4);
    t1 b(4), db(4);
    llm::fill(w, 1.0f);
    llm::fill(b, 1.0f);
    llm::fill(dw, 0.0f);
    llm::fill(db, 0.0f);
    SUBCASE("default: matrices decay, vectors do not") {
        llm::train::adamw_optimizer<> opt({.lr = 0.1, .weight_decay = 0.5});
        opt.step([&](auto&& f) { f("w", w, dw); f("b", b, db); });
        CHECK(w.data()[0] == 0.95f);
        CHECK(b.data()[0] == 1.0f);
    }
    SUBCASE("a rule by name") {
        llm::train::adamw_optimizer<> opt({.lr = 0.1, .weight_decay = 0.5},
                                          [](std::string_view name, std::size_t) { return name == "b"; });
        opt.step([&](auto&& f) { f("w", w, dw); f("b", b, db); });
        CHECK(w.data()[0] == 1.0f);
        CHECK(b.data()[0] == 0.95f);
    }
    SUBCASE("bf16 parameter, bf16 gradient: the master is updated and rounded into the parameter") {
        llm::tensor<llm::bf16, dims<2>> wb(3, 4), gb(3, 4);
        for (std::size_t i = 0; i < 12; ++i) {
            wb.data()[i] = llm::bf16(1.0f + static_cast<float>(i) / 64);
            gb.data()[i] = llm::bf16(static_cast<float>(i) - 5.5f);
        }
        t2 master(3, 4), grad32(3, 4), m(3, 4), v(3, 4);
        llm::convert(wb, master);
        llm::convert(gb, grad32);
        llm::train::adamw_optimizer<> opt({.lr = 1e-3, .weight_decay = 0.1});
        for (int k = 1; k <= 3; ++k) {
            opt.step([&](auto&& f) { f("w", wb, gb); });
            llm::train::adamw(master, m, v, grad32, opt.options(), k, true);
        }
        const auto& st = opt.states().at("w");
        CHECK(std::memcmp(st.master.data(), master.data(), 48) == 0);
        for (std::size_t i = 0; i < 12; ++i) CHECK(wb.data()[i].bits() == llm::bf16(master.data()[i]).bits());
        // 3 steps of lr 1e-3 move the master by ~3e-3: below bf16's resolution near 1 (2^-7) for
        // some elements, which only master weights keep.
        CHECK(st.master.data()[0] != static_cast<float>(wb.data()[0]));
    }
}

TEST_CASE("optimizers refuse bad input with messages naming the values") {
    t1 p(4), m(4), v(4), g(5);
    CHECK_THROWS_WITH_AS(llm::train::adamw(p, m, v, g, {}, 1, true), doctest::Contains("grad has 5"), llm::error);
    t1 g4(4);
    CHECK_THROWS_WITH_AS(llm::train::adamw(p, m, v, g4, {}, 0, true), doctest::Contains("step = 0"), llm::error);
    CHECK_THROWS_WITH_AS(llm::train::adamw(p, m, v, g4, {.beta2 = 1.0}, 1, true), doctest::Contains("beta2 = 1"), llm::error);
    t1 empty;
    CHECK_THROWS_WITH_AS(llm::train::sgd(p, empty, g4, {.momentum = 0.9}, 1), doctest::Contains("momentum_buffer has 0"),
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::train::sgd(p, m, g4, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}, 1),
                         doctest::Contains("dampening = 0.1"), llm::error);
    llm::train::sgd(p, empty, g4, {.lr = 0.1}, 1);  // no momentum: no buffer needed
    // A strided (non-contiguous) view is refused.
    t2 big(4, 4);
    CHECK_THROWS_WITH_AS(llm::train::adamw(llm::transpose(big.view(), 0, 1), m, v, g4, {}, 1, true),
                         doctest::Contains("not contiguous"), llm::error);
    // The walk must visit the same parameters every step.
    llm::train::adamw_optimizer<> opt;
    opt.step([&](auto&& f) { f("a", p, g4); });
    t1 q(4);
    CHECK_THROWS_WITH_AS(opt.step([&](auto&& f) { f("a", p, g4); f("b", q, g4); }),
                         doctest::Contains("parameter 'b' has no optimizer state"), llm::error);
    CHECK_THROWS_WITH_AS(opt.step([&](auto&& f) { (void)f; }), doctest::Contains("did not visit it"), llm::error);
    CHECK_THROWS_WITH_AS(opt.step([&](auto&& f) { f("a", p, g4); f("a", p, g4); }), doctest::Contains("twice"), llm::error);
}

TEST_CASE("clip_grad_norm: the global norm, the coefficient max_norm / (norm + 1e-6) clamped to 1, any walk") {
    t1 a(3), b(4);
    llm::fill(a, 3.0f);  // sum of squares 27
    llm::fill(b, 1.5f);  // 9
    auto walk = [&](auto&& f) {
        f("a", a);
        f("b", b);
    };
    CHECK(llm::train::grad_norm(walk) == doctest::Approx(6.0));
    // max_norm above the norm: nothing changes
    CHECK(llm::train::clip_grad_norm(walk, 10.0, llm::parallel::sequential{}) == doctest::Approx(6.0));
    CHECK(a.data()[0] == 3.0f);
    const double norm = llm::train::clip_grad_norm(walk, 2.0);
    CHECK(norm == doctest::Approx(6.0));
    const float coef = 2.0f / (6.0f + 1e-6f);
    CHECK(a.data()[0] == 3.0f * coef);
    CHECK(b.data()[3] == 1.5f * coef);
    // The same norm from a range of (name, param, grad) tuples (the grad is the last view), and
    // the same bits for any thread count on a large tensor.
    t1 big(100000), dummy(1);
    for (std::size_t i = 0; i < big.size(); ++i) big.data()[i] = std::sin(static_cast<float>(i));
    std::vector<std::tuple<std::string, t1&, t1&>> range{{"big", dummy, big}};
    llm::parallel::thread_pool p3(3);
    const double n1 = llm::train::grad_norm(range, llm::parallel::sequential{});
    const double n3 = llm::train::grad_norm(range, p3);
    CHECK(n1 == n3);
    double ref = 0;
    for (std::size_t i = 0; i < big.size(); ++i) ref += static_cast<double>(big.data()[i]) * big.data()[i];
    CHECK(n1 == doctest::Approx(std::sqrt(ref)).epsilon(1e-6));
    CHECK_THROWS_WITH_AS(llm::train::clip_grad_norm(walk, 0.0), doctest::Contains("max_norm = 0"), llm::error);
}

TEST_CASE("grad_accumulation: K micro-batches summed by backward, scaled to the mean before the step") {
    llm::train::grad_accumulation acc(4);
    t1 g(3);
    int steps = 0;
    for (int micro = 0; micro < 8; ++micro) {
        for (std::size_t i = 0; i < 3; ++i) g.data()[i] += static_cast<float>(micro % 4 + 1);  // "backward" adds
        if (acc.micro_step()) {
            acc.finish([&](auto&& f) { f("g", g); }, llm::parallel::sequential{});
            CHECK(g.data()[0] == 2.5f);  // (1 + 2 + 3 + 4) / 4
            llm::zero_grad(g);
            ++steps;
        }
    }
    CHECK(steps == 2);
    CHECK(acc.pending() == 0);
    CHECK_THROWS_AS(llm::train::grad_accumulation(0), llm::error);
}

namespace user {

// A view type outside llm:: with the members view_of_rank names: a flat run of floats.
struct flat_floats {
    float* p;
    std::size_t n;
    static constexpr std::size_t rank() { return 1; }
    float* data() const { return p; }
    std::size_t extent(std::size_t) const { return n; }
    std::size_t stride(std::size_t) const { return 1; }
};

}  // namespace user

TEST_CASE("train kernels: sequential{}, a thread_pool and default_pool() give identical results; a user's view type works") {
    const std::size_t n = 70001;  // several chunks of 16384 and a tail
    t1 p0(n), g0(n);
    for (std::size_t i = 0; i < n; ++i) {
        p0.data()[i] = std::sin(0.01f * static_cast<float>(i));
        g0.data()[i] = std::cos(0.03f * static_cast<float>(i));
    }
    auto run = [&](auto&& exec) {
        t1 p = p0, g = g0, m(n), v(n), buf(n), e = p0;
        llm::train::adamw(p, m, v, g, {.lr = 1e-2}, 1, true, exec);
        llm::train::sgd(p, buf, g, {.lr = 0.1, .momentum = 0.9}, 1, exec);
        llm::train::sgd(p, buf, g, {.lr = 0.1, .momentum = 0.9}, 2, exec);
        const double norm = llm::train::clip_grad_norm([&](auto&& f) { f("g", g); }, 1.0, exec);
        llm::train::ema_update(e, p, 0.9, exec);
        return std::tuple{p, g, e, norm};
    };
    const auto a = run(llm::parallel::sequential{});
    llm::parallel::thread_pool pool(3);
    const auto b = run(pool);
    const auto c = run(llm::parallel::default_pool());
    for (const auto* r : {&b, &c}) {
        CHECK(std::memcmp(std::get<0>(a).data(), std::get<0>(*r).data(), n * 4) == 0);
        CHECK(std::memcmp(std::get<1>(a).data(), std::get<1>(*r).data(), n * 4) == 0);
        CHECK(std::memcmp(std::get<2>(a).data(), std::get<2>(*r).data(), n * 4) == 0);
        CHECK(std::get<3>(a) == std::get<3>(*r));
    }
    // The same update through a user's view type.
    t1 p = p0, g = g0, m(n), v(n);
    llm::train::adamw(user::flat_floats{p.data(), n}, user::flat_floats{m.data(), n}, user::flat_floats{v.data(), n}, g,
                      {.lr = 1e-2}, 1, true, llm::parallel::sequential{});
    t1 q = p0, mq(n), vq(n);
    llm::train::adamw(q, mq, vq, g, {.lr = 1e-2}, 1, true, llm::parallel::sequential{});
    CHECK(std::memcmp(p.data(), q.data(), n * 4) == 0);
}
