// SPDX-License-Identifier: Apache-2.0
// The Bradley-Terry reward model through a tiny Llama: the loss from the rewards, and the
// gradients (head and model, via decoder::backward_hidden) against central finite differences.
#include <llm/model/model.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/train/reward.hpp>

#include <doctest/doctest.h>

#include "../support/temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using tiny = llm::model::llama<>;
const llm::model::dims tiny_dims{.vocab = 16, .d_model = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .d_ff = 24, .max_seq = 64};

}  // namespace

TEST_CASE("reward_batch: -log sigmoid(r_chosen - r_rejected) at the last real token; gradients match central finite differences") {
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    model.init(p, {.seed = 21, .std = 0.3f});
    std::vector<float> head(16), dhead(16, 0.0f);
    for (std::size_t j = 0; j < head.size(); ++j) head[j] = 0.5f * std::sin(1.0f + static_cast<float>(j));
    const std::vector<llm::train::preference_example> ex{{{1, 2}, {3, 4, 5}, {6, 7}}, {{9}, {10, 11}, {12, 13, 14, 15}}};
    llm::train::reward_batch<tiny> rb(model, 2, 6);
    rb.fill(ex, 0);
    CHECK(rb.last() == std::vector<std::size_t>{4, 2, 3, 4});  // prompt + response - 1 (the second rejected truncated to 6)
    llm::parallel::sequential seq;
    const llm::tensor_view<const float, llm::dims<1>> w(head.data(), head.size());
    auto g = model.make_params<float>();
    const auto s = rb.forward_backward(g, llm::tensor_view<float, llm::dims<1>>(dhead.data(), dhead.size()), 1.0f, model, p, w, seq);

    auto eval = [&](const tiny::params<float>& q) {
        const std::vector<double> r = rb.rewards(model, q, w, seq);
        return 0.5 * (std::log1p(std::exp(-(r[0] - r[2]))) + std::log1p(std::exp(-(r[1] - r[3]))));
    };
    const std::vector<double> r = rb.rewards(model, p, w, seq);
    CHECK(s.loss == doctest::Approx(eval(p)).epsilon(1e-12));
    CHECK(s.margin == doctest::Approx(0.5 * ((r[0] - r[2]) + (r[1] - r[3]))).epsilon(1e-12));
    CHECK(s.accuracy == doctest::Approx(0.5 * ((r[0] > r[2] ? 1 : 0) + (r[1] > r[3] ? 1 : 0))));
    CHECK(r[0] != doctest::Approx(r[1]));  // rows differ, so the test sees which token is read

    // Central differences, h = 1e-2: fp32 hidden states carry ~1e-7 relative error, the rewards
    // are O(1), so (up - dn) / 2h has ~1e-5 absolute error; the O(h^2) truncation is ~1e-4
    // relative for these smooth functions. Tolerance 1e-3 absolute + 1e-2 relative.
    const float h = 1e-2f;
    auto fd_check = [&](float& x, double analytic, std::string_view what) {
        const float x0 = x;
        x = x0 + h;
        const double up = eval(p);
        x = x0 - h;
        const double dn = eval(p);
        x = x0;
        const double fd = (up - dn) / (2.0 * static_cast<double>(h));
        INFO(what, ": backward ", analytic, ", finite differences ", fd);
        CHECK(std::abs(fd) > 1e-4);  // a zero gradient would pass trivially
        CHECK(std::abs(fd - analytic) < 1e-3 + 1e-2 * std::abs(fd));
    };
    std::size_t jh = 0;
    for (std::size_t j = 1; j < dhead.size(); ++j) jh = std::abs(dhead[j]) > std::abs(dhead[jh]) ? j : jh;
    fd_check(head[jh], static_cast<double>(dhead[jh]), "score.weight");
    int checked = 0;
    llm::model::for_each_tensor(
        [&](std::string_view name, auto& t, const auto& dt) {
            if (name.find("q_proj") == std::string_view::npos && name.find("embed_tokens") == std::string_view::npos &&
                name.find("down_proj") == std::string_view::npos && name.find("model.norm") == std::string_view::npos)
                return;
            std::size_t best = 0;
            for (std::size_t i = 1; i < dt.size(); ++i) best = std::abs(dt.data()[i]) > std::abs(dt.data()[best]) ? i : best;
            fd_check(t.data()[best], static_cast<double>(dt.data()[best]), name);
            ++checked;
        },
        p, g);
    CHECK(checked >= 5);

    // dloss scales, gradients accumulate
    auto g2 = model.make_params<float>();
    std::vector<float> dhead2(16, 0.0f);
    (void)rb.forward_backward(g2, llm::tensor_view<float, llm::dims<1>>(dhead2.data(), 16), 0.5f, model, p, w, seq);
    (void)rb.forward_backward(g2, llm::tensor_view<float, llm::dims<1>>(dhead2.data(), 16), 0.5f, model, p, w, seq);
    CHECK(dhead2[jh] == doctest::Approx(dhead[jh]).epsilon(1e-5));
}

TEST_CASE("reward_batch: bad input is llm::error") {
    tiny model(tiny_dims);
    auto p = model.make_params<float>();
    llm::train::reward_batch<tiny> rb(model, 1, 3);
    CHECK_THROWS_AS(rb.fill({}, 0), llm::error);
    CHECK_THROWS_AS(rb.fill({{{1, 2, 3}, {4}, {5}}}, 0), llm::error);  // prompt fills the window
    rb.fill({{{1}, {4}, {5}}}, 0);
    std::vector<float> head(8);
    llm::parallel::sequential seq;
    CHECK_THROWS_AS((void)rb.rewards(model, p, llm::tensor_view<const float, llm::dims<1>>(head.data(), 8), seq), llm::error);
}

TEST_CASE("reward_model: reward_params walk the decoder's tensors then score.weight [1, d]; init_head is seeded; checkpoints round-trip") {
    tiny model(tiny_dims);
    const llm::train::reward_model<tiny> rm(model);
    auto p = rm.make_params<float>();
    model.init(p.model, {.seed = 3});
    std::vector<std::string> names, model_names;
    p.for_each_param([&](std::string_view n, const auto&) { names.emplace_back(n); });
    p.model.for_each_param([&](std::string_view n, const auto&) { model_names.emplace_back(n); });
    REQUIRE(names.size() == model_names.size() + 1);
    CHECK(std::equal(model_names.begin(), model_names.end(), names.begin()));  // the decoder's names unchanged
    CHECK(names.back() == "score.weight");
    CHECK(p.score.extent(0) == 1);
    CHECK(p.score.extent(1) == tiny_dims.d_model);

    rm.init_head(p, 7);
    auto q = rm.make_params<float>();
    rm.init_head(q, 7);
    CHECK(std::memcmp(p.score.data(), q.score.data(), p.score.size() * sizeof(float)) == 0);  // seeded
    rm.init_head(q, 8);
    CHECK(std::memcmp(p.score.data(), q.score.data(), p.score.size() * sizeof(float)) != 0);
    // std 0.02: 16 draws, the sample variance's relative spread is sqrt(2 / 15) ~ 0.37, so the
    // sample std of a correct draw lies in [0.01, 0.03] with overwhelming probability; a std of 1
    // (a missing scale) or 0 (no draw) is far outside
    double ss = 0;
    for (std::size_t j = 0; j < p.score.size(); ++j) ss += static_cast<double>(p.score.data()[j]) * p.score.data()[j];
    const double sd = std::sqrt(ss / static_cast<double>(p.score.size()));
    CHECK(sd > 0.01);
    CHECK(sd < 0.03);

    // save_safetensors / load_safetensors take the head with the model, by name
    llm_test::temp_dir dir;
    const std::string path = dir / "model.safetensors";
    llm::model::save_safetensors(p, path);
    auto r = rm.make_params<float>();
    llm::model::load_safetensors(r, path);
    llm::model::for_each_tensor(
        [&](std::string_view n, const auto& a, const auto& b) {
            INFO(n);
            CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        },
        p, r);
    // the decoder alone refuses the head as an extra tensor unless told to ignore it
    auto m = model.make_params<float>();
    CHECK_THROWS_AS(llm::model::load_safetensors(m, path), llm::error);
    llm::model::load_safetensors(m, path, {.ignore = {"score.weight"}});
}
