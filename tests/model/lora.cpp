// SPDX-License-Identifier: Apache-2.0
// LoRA: adapters by name, merge = W + alpha/r B A, unmerge exact, adapter gradients against
// finite differences, training only the adapters.
#include <llm/model/model.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr llm::model::dims tiny{.vocab = 29, .d_model = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .d_ff = 24, .max_seq = 16};

template <class M>
struct setup {
    M model;
    typename M::template params<float> p;
    typename M::template params<float> g;
    llm::model::arena arena;
    typename M::cache cache;
    llm::workspace ws;
    std::vector<std::int32_t> ids, targets;
    explicit setup(M m)
        : model(std::move(m)), p(model.template make_params<float>()), g(model.template make_params<float>()),
          cache(llm::model::make_cache(model, arena, {.batch = 2, .seq = 4})), ids(8), targets(8) {
        model.init(p, {.seed = 21, .std = 0.2f});
        for (std::size_t t = 0; t < 8; ++t) {
            ids[t] = static_cast<std::int32_t>((t * 11 + 2) % tiny.vocab);
            targets[t] = static_cast<std::int32_t>((t * 5 + 7) % tiny.vocab);
        }
    }
    float loss() {
        return model.forward_loss(cache, llm::model::token_ids(ids.data(), 8),
                                  llm::tensor_view<const std::int32_t, llm::dims<1>>(targets.data(), 8), p, ws,
                                  llm::parallel::sequential{});
    }
    void backward() {
        llm::model::zero_grad(g);
        model.backward_loss(g, 1.0f, cache, llm::model::token_ids(ids.data(), 8),
                            llm::tensor_view<const std::int32_t, llm::dims<1>>(targets.data(), 8), p, ws, llm::parallel::sequential{});
    }
    float lora_loss(llm::model::lora& l) {
        l.merge(p);
        const float v = loss();
        l.unmerge(p);
        return v;
    }
};

template <class M>
void check_lora_gradients(M model, const llm::model::lora_options& opt) {
    setup<M> s(std::move(model));
    llm::model::lora l(s.p, opt);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 0.3f);
    for (auto& ad : l.adapters()) {
        for (std::size_t i = 0; i < ad.b.size(); ++i) ad.b.data()[i] = nd(rng);  // B = 0 would make dA = 0
    }
    l.merge(s.p);
    (void)s.loss();
    s.backward();
    l.unmerge(s.p);
    l.accumulate_grads(s.g);
    // Central differences, step 1e-2, fp32 loss: |fd - analytic| <= 3e-3 + 2e-2 |fd| (the
    // decoder test's bound: rounding ~1e-5 / 1e-2, truncation ~1e-4).
    std::size_t checked = 0, failed = 0;
    for (auto& ad : l.adapters()) {
        for (auto* which : {&ad.a, &ad.b}) {
            auto& grad = which == &ad.a ? ad.grad_a : ad.grad_b;
            for (std::size_t probe = 0; probe < 3; ++probe) {
                const std::size_t i = (probe * 131 + 5) % which->size();
                const float x0 = which->data()[i];
                which->data()[i] = x0 + 1e-2f;
                const double lp = s.lora_loss(l);
                which->data()[i] = x0 - 1e-2f;
                const double lm = s.lora_loss(l);
                which->data()[i] = x0;
                const double fd = (lp - lm) / 2e-2;
                ++checked;
                if (std::abs(fd - grad.data()[i]) > 3e-3 + 2e-2 * std::abs(fd)) {
                    ++failed;
                    MESSAGE(ad.name << (which == &ad.a ? " A[" : " B[") << i << "]: fd " << fd << " analytic " << grad.data()[i]);
                }
            }
        }
    }
    CHECK(checked >= 12);
    CHECK(failed == 0);
}

}  // namespace

TEST_CASE("lora: adapters on the named weights with PEFT names; merge is W + alpha/r B A; unmerge restores the bits") {
    setup<llm::model::llama<>> s{llm::model::llama<>(tiny)};
    llm::model::lora l(s.p, {.rank = 2, .alpha = 4.0f, .targets = {"q_proj", "v_proj"}});
    REQUIRE(l.adapters().size() == 4);
    CHECK(l.adapters()[0].name == "model.layers.0.self_attn.q_proj.weight");
    CHECK(l.adapters()[1].name == "model.layers.0.self_attn.v_proj.weight");
    CHECK(l.adapters()[1].out == 8);  // kv_heads * head_dim
    std::vector<std::string> names;
    l.for_each_param([&](std::string_view n, const auto&) { names.emplace_back(n); });
    CHECK(names[0] == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    CHECK(names[1] == "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
    CHECK(l.scale() == 2.0f);

    // B = 0 at the start: merging changes nothing
    const float base_loss = s.loss();
    CHECK(s.lora_loss(l) == base_loss);

    auto& ad = l.adapters()[0];
    for (std::size_t i = 0; i < ad.b.size(); ++i) ad.b.data()[i] = 0.01f * static_cast<float>(i % 7) - 0.03f;
    const auto& w = std::get<0>(s.p.layers)[0].mixer.w_q;
    const llm::tensor<float, llm::dims<2>> before = w;
    l.merge(s.p);
    CHECK(l.merged());
    const std::size_t o = 5, i = 9;
    const double want = double(before(o, i)) + 2.0 * (double(ad.b(o, 0)) * ad.a(0, i) + double(ad.b(o, 1)) * ad.a(1, i));
    CHECK(w(o, i) == doctest::Approx(want).epsilon(1e-6));
    CHECK_THROWS_AS(l.merge(s.p), llm::error);
    l.unmerge(s.p);
    std::size_t diff = 0;
    for (std::size_t k = 0; k < w.size(); ++k) diff += w.data()[k] != before.data()[k];
    CHECK(diff == 0);
    CHECK_THROWS_AS(l.unmerge(s.p), llm::error);
    CHECK_THROWS_AS(llm::model::lora(s.p, {.targets = {"no_such_weight"}}), llm::error);
}

TEST_CASE("lora: adapter gradients match finite differences (Llama q/v, GPT-2 Conv1D c_attn with fan_in_fan_out)") {
    check_lora_gradients(llm::model::llama<>(tiny), {.rank = 2, .alpha = 4.0f, .targets = {"q_proj", "v_proj", "down_proj"}});
    auto d = tiny;
    d.n_kv_heads = 0;
    d.tie_embeddings = true;
    check_lora_gradients(llm::model::gpt2<>(d), {.rank = 3, .alpha = 3.0f, .targets = {"attn.c_attn"}, .fan_in_fan_out = true});
}

TEST_CASE("lora: training only the adapters lowers the loss and leaves the base weights unchanged") {
    setup<llm::model::llama<>> s{llm::model::llama<>(tiny)};
    llm::model::lora l(s.p, {.rank = 4, .alpha = 8.0f, .targets = {"q_proj", "k_proj", "v_proj", "o_proj"}});
    const auto base = s.p;
    const float first = s.lora_loss(l);
    for (int step = 0; step < 30; ++step) {
        l.merge(s.p);
        (void)s.loss();
        s.backward();
        l.unmerge(s.p);
        l.zero_grad();
        l.accumulate_grads(s.g);
        std::vector<float*> ws;
        l.for_each_param([&](std::string_view, auto& t) { ws.push_back(t.data()); });
        std::size_t k = 0;
        l.for_each_grad([&](std::string_view, auto& gt) {
            for (std::size_t i = 0; i < gt.size(); ++i) ws[k][i] -= 0.2f * gt.data()[i];
            ++k;
        });
    }
    const float last = s.lora_loss(l);
    INFO("lora training: loss " << first << " -> " << last);
    CHECK(last < first - 0.1f);
    std::size_t diff = 0;
    llm::model::for_each_tensor(
        [&](std::string_view, const auto& a, const auto& b) {
            for (std::size_t i = 0; i < a.size(); ++i) diff += a.data()[i] != b.data()[i];
        },
        s.p, base);
    CHECK(diff == 0);
}
