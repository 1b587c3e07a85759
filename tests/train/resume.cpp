// SPDX-License-Identifier: Apache-2.0
// A resumed run is bit-identical to the uninterrupted one: a toy quadratic problem trained with
// every llm::train piece (loader with shuffle, RNG noise, loss guard, clipping, schedule, AdamW
// with an fp32 and a bf16 parameter), N steps straight against k steps, save, load, N - k steps.
#include <llm/io/safetensors.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/train/train.hpp>

#include <doctest/doctest.h>

#include "../support/temp_dir.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr std::size_t B = 2, T = 8;

struct toy_run {
    llm::tensor<float, llm::dims<2>> w{T, 6};
    llm::tensor<float, llm::dims<1>> b{6};
    llm::tensor<llm::bf16, llm::dims<2>> wb{4, 4};
    llm::tensor<float, llm::dims<2>> dw{T, 6};
    llm::tensor<float, llm::dims<1>> db{6};
    llm::tensor<llm::bf16, llm::dims<2>> dwb{4, 4};
    llm::train::adamw_optimizer<> opt{{.lr = 0, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1}};
    llm::train::cosine_lr schedule{.max_lr = 0.05, .warmup = 3, .total = 20, .min_lr = 0.005};
    llm::train::loss_guard guard{{.spike_factor = 1.5, .window = 5, .min_history = 2}};
    llm::train::rng rng{1234};
    llm::train::batch_loader loader;
    llm::parallel::thread_pool& pool;

    toy_run(const llm::train::token_file& f, llm::parallel::thread_pool& p)
        : loader(f, B, T, {.shuffle = true, .seed = 99}), pool(p) {
        for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = std::sin(static_cast<float>(i));
        for (std::size_t i = 0; i < b.size(); ++i) b.data()[i] = std::cos(static_cast<float>(i));
        for (std::size_t i = 0; i < wb.size(); ++i) wb.data()[i] = llm::bf16(0.1f * static_cast<float>(i));
    }

    auto walk() {
        return [this](auto&& f) {
            f("model.w", w, dw);
            f("model.b", b, db);
            f("model.wb", wb, dwb);
        };
    }

    // One step: loss 0.5 sum (p - target)^2 with targets from the batch's tokens, plus noise.
    void step() {
        llm::tensor<std::int32_t, llm::dims<2>> x(B, T), y(B, T);
        loader.next(x, y);
        llm::zero_grad(dw, db, dwb);
        double loss = 0;
        for (std::size_t i = 0; i < w.size(); ++i) {
            const float target = static_cast<float>(y.data()[i % (B * T)] % 17) / 17.0f;
            const float d = w.data()[i] - target;
            loss += 0.5 * d * d;
            dw.data()[i] += d + 0.01f * static_cast<float>(rng.normal());
        }
        for (std::size_t i = 0; i < b.size(); ++i) {
            const float d = b.data()[i] - static_cast<float>(x.data()[i] % 5);
            loss += 0.5 * d * d;
            db.data()[i] += d;
        }
        for (std::size_t i = 0; i < wb.size(); ++i) dwb.data()[i] = llm::bf16(static_cast<float>(wb.data()[i]) - 0.5f);
        if (loader.position().batch % 7 == 4) loss *= 10;  // a bad batch now and then
        if (guard.check(loss).skip) return;
        llm::train::clip_grad_norm(walk(), 1.0, pool);
        opt.options().lr = schedule(opt.steps());
        opt.step(walk(), pool);
    }

    void save(const std::string& dir) {
        std::vector<llm::io::safetensors_tensor> ts{llm::io::safetensors_tensor::from_view("model.w", w.view()),
                                                    llm::io::safetensors_tensor::from_view("model.b", b.view()),
                                                    llm::io::safetensors_tensor::from_view("model.wb", wb.view())};
        llm::io::save_safetensors(dir + "/model.safetensors", ts);
        llm::train::train_state s{opt.steps(), loader.position(), rng.state(), guard.history(), guard.skipped(), {{"note", "toy"}}};
        llm::train::save_resume_state(dir, opt, s);
    }

    void load(const std::string& dir) {
        llm::io::safetensors_file f(dir + "/model.safetensors");
        llm::copy(f.view<float, 2>("model.w"), w);
        llm::copy(f.view<float, 1>("model.b"), b);
        llm::copy(f.view<llm::bf16, 2>("model.wb"), wb);
        const llm::train::train_state s = llm::train::load_resume_state(dir, opt);
        CHECK(s.step == opt.steps());
        CHECK(s.extra.at("note") == "toy");
        loader.seek(s.data);
        REQUIRE(rng.set_state(s.rng_state));
        guard.restore(s.loss_history, s.skipped);
    }
};

template <class A>
bool same_bits(const A& a, const A& b) {
    return std::memcmp(a.data(), b.data(), a.size() * sizeof(*a.data())) == 0;
}

}  // namespace

TEST_CASE("resume: N steps straight equal k steps, save, load into fresh objects, N - k steps, bit for bit") {
    llm_test::temp_dir dir;
    std::vector<std::uint16_t> tokens(3000);
    llm::train::rng gen(5);
    for (auto& t : tokens) t = static_cast<std::uint16_t>(gen.below(50257));
    llm::train::write_token_file(dir / "train.bin", std::span<const std::uint16_t>(tokens));
    const llm::train::token_file file(dir / "train.bin");
    llm::parallel::thread_pool pool(2);
    const int N = 14, k = 6;

    toy_run straight(file, pool);
    for (int s = 0; s < N; ++s) straight.step();
    CHECK(straight.guard.skipped() > 0);  // the spike rule fired on this problem, so its state matters
    CHECK(straight.opt.steps() == N - straight.guard.skipped());

    {
        toy_run first(file, pool);
        for (int s = 0; s < k; ++s) first.step();
        first.save(dir.path.string());
    }
    toy_run resumed(file, pool);
    resumed.load(dir.path.string());
    for (int s = k; s < N; ++s) resumed.step();

    CHECK(same_bits(straight.w, resumed.w));
    CHECK(same_bits(straight.b, resumed.b));
    CHECK(same_bits(straight.wb, resumed.wb));
    CHECK(resumed.opt.steps() == straight.opt.steps());
    for (const auto& entry : straight.opt.states()) {
        const std::string& name = entry.first;  // not a structured binding: INFO's lambda (clang 14)
        const auto& st = entry.second;
        INFO(name);
        const auto& other = resumed.opt.states().at(name);
        CHECK(same_bits(st.m, other.m));
        CHECK(same_bits(st.v, other.v));
        CHECK(st.master.size() == other.master.size());
        if (st.master.size() != 0) CHECK(same_bits(st.master, other.master));
    }
    CHECK(straight.loader.position() == resumed.loader.position());
    CHECK(straight.rng.state() == resumed.rng.state());
    // A different run would differ: the check above is not vacuous.
    toy_run shorter(file, pool);
    for (int s = 0; s < N - 1; ++s) shorter.step();
    CHECK(!same_bits(straight.w, shorter.w));
}

TEST_CASE("resume state: the JSON round-trips; a wrong optimizer kind, a missing or mistyped field are errors") {
    llm::train::train_state s;
    s.step = 42;
    s.data = {3, 17};
    s.rng_state = {1, 0xFFFFFFFFFFFFFFFFull, 3, 4};
    s.loss_history = {2.5, 1.0 / 3.0};
    s.skipped = 2;
    s.extra["tokens_seen"] = "123456789012345";
    const auto r = llm::train::parse_train_state(llm::train::train_state_json(s), "x");
    CHECK(r.step == 42);
    CHECK(r.data == s.data);
    CHECK(r.rng_state == s.rng_state);
    CHECK(r.loss_history == s.loss_history);
    CHECK(r.skipped == 2);
    CHECK(r.extra == s.extra);
    CHECK_THROWS_WITH_AS(llm::train::parse_train_state("{\"format\": \"llm.train_state\", \"version\": 1}", "t.json"),
                         doctest::Contains("no member 'step'"), llm::error);
    std::string bad = llm::train::train_state_json(s);
    bad.replace(bad.find("\"42\""), 4, "\"-1\"");
    CHECK_THROWS_WITH_AS(llm::train::parse_train_state(bad, "t.json"), doctest::Contains("'-1' is not an unsigned"), llm::error);

    llm_test::temp_dir dir;
    llm::train::sgd_optimizer<> sgd({.lr = 0.1, .momentum = 0.9});
    llm::tensor<float, llm::dims<1>> p(3), g(3);
    llm::fill(g, 1.0f);
    sgd.step([&](auto&& f) { f("p", p, g); });
    llm::train::save_resume_state(dir.path.string(), sgd, s);
    CHECK(dir.entries() == 2);
    llm::train::adamw_optimizer<> adam;
    CHECK_THROWS_WITH_AS(llm::train::load_resume_state(dir.path.string(), adam),
                         doctest::Contains("holds the state of optimizer 'sgd', not 'adamw'"), llm::error);
    llm::train::sgd_optimizer<> sgd2({.lr = 0.1, .momentum = 0.9});
    const auto loaded = llm::train::load_resume_state(dir.path.string(), sgd2);
    CHECK(loaded.step == 42);
    CHECK(sgd2.steps() == 1);
    CHECK(same_bits(sgd2.states().at("p").m, sgd.states().at("p").m));
    // The loaded state is checked against the walk: another parameter name is refused.
    CHECK_THROWS_WITH_AS(sgd2.step([&](auto&& f) { f("q", p, g); }), doctest::Contains("parameter 'q' has no optimizer state"),
                         llm::error);
}

TEST_CASE("resume state: SGD without momentum and zero-size parameters need no saved state and resume") {
    llm_test::temp_dir dir;
    llm::tensor<float, llm::dims<1>> p(3), g(3), e(0), ge(0);
    llm::fill(g, 1.0f);
    llm::train::sgd_optimizer<> sgd({.lr = 0.5});
    auto walk = [&](auto&& f) {
        f("p", p, g);
        f("empty", e, ge);
    };
    sgd.step(walk);
    llm::train::save_resume_state(dir.path.string(), sgd, {});
    llm::train::sgd_optimizer<> again({.lr = 0.5});
    llm::train::load_resume_state(dir.path.string(), again);
    again.step(walk);
    CHECK(p(0) == -1.0f);
    CHECK(again.steps() == 2);
    llm::train::train_state bad;
    bad.loss_history = {NAN};
    CHECK_THROWS_WITH_AS(llm::train::train_state_json(bad), doctest::Contains("is not finite"), llm::error);
}
