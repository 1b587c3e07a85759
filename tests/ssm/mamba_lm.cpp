// SPDX-License-Identifier: Apache-2.0
// A tiny random MambaForCausalLM saved by Hugging Face transformers 4.44.2
// (tests/golden/ssm/make_mamba_lm_golden.py): config.json and model.safetensors load through
// mamba_dims_from_hf_config and load_safetensors into llm::model::mamba<>, and the decoder's
// logits match transformers' (computed in float64 from the float32 weights); from_hf_config
// dispatches the same config.json to family::mamba.
#include <llm/model/mamba_family.hpp>
#include <llm/model/model.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

const std::string dir = "tests/golden/ssm/mamba_lm/";

double rel_err(const float* a, const float* b, std::size_t n) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = double(a[i]) - double(b[i]);
        num += d * d;
        den += double(b[i]) * double(b[i]);
    }
    return std::sqrt(num / den);
}

}  // namespace

TEST_CASE("mamba_lm: a transformers MambaForCausalLM checkpoint gives transformers' logits through llm::model::mamba") {
    const llm::model::dims d = llm::model::mamba_dims_from_hf_config(dir + "config.json");
    CHECK(d.vocab == 64);
    CHECK(d.d_model == 32);
    CHECK(d.n_layers == 2);
    CHECK(d.d_ff == 64);
    CHECK(d.tie_embeddings);
    using model_t = llm::model::mamba<>;
    model_t model(d);
    auto p = model.make_params<float>();
    llm::model::load_safetensors(p, dir + "model.safetensors");
    std::size_t counted = 0;
    p.for_each_param([&](std::string_view, auto& t) { counted += t.size(); });
    CHECK(counted == model_t::parameter_count(d));

    const llm::io::safetensors_file golden(dir + "golden.safetensors");
    const auto ids_view = golden.view<std::int32_t, 2>("input_ids");
    const std::size_t batch = ids_view.extent(0), seq = ids_view.extent(1), n = batch * seq;
    std::vector<std::int32_t> ids(ids_view.data(), ids_view.data() + n);
    llm::model::arena arena;
    auto cache = llm::model::make_cache(model, arena, {.batch = batch, .seq = seq});
    llm::workspace ws;
    model.forward(cache.logits, cache, llm::model::token_ids(ids.data(), n), p, ws, llm::parallel::sequential{});

    // Tolerance: the reference is float64 from the same float32 weights; ours is float32
    // throughout. Each dot product (K <= 64) is off by a few ulps (~sqrt(K) 2^-24 ~ 5e-7
    // relative), the scan's exp and its 8-step recurrence add a few ulps each, over 2 layers and
    // the tied head: ~1e-6 expected. The issue's bound is 1e-4 relative (norm-wise); a wrong
    // name, transposition, softplus or gating moves the logits by 1e-2 or more.
    const auto ref = golden.view<float, 3>("logits");
    REQUIRE(ref.size() == cache.logits.size());
    const double e = rel_err(cache.logits.data(), ref.data(), ref.size());
    INFO("mamba logits rel err " << e);
    CHECK(e < 1e-4);

    // the same model run with a mismatched dims type fails by name
    CHECK_THROWS_WITH_AS(llm::model::mamba_dims_from_hf_config<8>(dir + "config.json"),
                         doctest::Contains("state_size = 16"), llm::error);
}

TEST_CASE("mamba_lm: from_hf_config dispatches MambaForCausalLM to the Mamba family") {
    const llm::model::hf_config cfg = llm::model::from_hf_config(dir + "config.json");
    CHECK(cfg.architecture == "MambaForCausalLM");
    CHECK(cfg.family == llm::model::family::mamba);
    CHECK(cfg.ssm.state == 16);
    CHECK(cfg.ssm.conv == 4);
    CHECK(cfg.ssm.dt_rank == 2);
    // the same dims as the family's own reader, and the model built from them loads the checkpoint
    const llm::model::dims d = llm::model::mamba_dims_from_hf_config(dir + "config.json");
    CHECK(cfg.dims.vocab == d.vocab);
    CHECK(cfg.dims.d_model == d.d_model);
    CHECK(cfg.dims.n_layers == d.n_layers);
    CHECK(cfg.dims.n_heads == 1);
    CHECK(cfg.dims.d_ff == d.d_ff);
    CHECK(cfg.dims.norm_eps == d.norm_eps);
    CHECK(cfg.dims.tie_embeddings == d.tie_embeddings);
    llm::model::mamba<> model(cfg.dims);
    auto p = model.make_params<float>();
    llm::model::load_safetensors(p, dir + "model.safetensors");

    // options the family does not implement are refused by name; "auto" rank is ceil(d / 16)
    const std::string head = R"({"architectures": ["MambaForCausalLM"], "vocab_size": 64, "hidden_size": 40, "num_hidden_layers": 1)";
    CHECK(llm::model::from_hf_config_text(head + "}", "c.json").ssm.dt_rank == 3);
    CHECK(llm::model::from_hf_config_text(head + R"(, "time_step_rank": "auto"})", "c.json").ssm.dt_rank == 3);
    CHECK_THROWS_WITH_AS(llm::model::from_hf_config_text(head + R"(, "time_step_rank": "x"})", "c.json"),
                         doctest::Contains("time_step_rank = 'x'"), llm::error);
    CHECK_THROWS_WITH_AS(llm::model::from_hf_config_text(head + R"(, "use_bias": true})", "c.json"), doctest::Contains("use_bias"),
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::model::from_hf_config_text(head + R"(, "use_conv_bias": false})", "c.json"),
                         doctest::Contains("use_conv_bias"), llm::error);
    CHECK_THROWS_WITH_AS(llm::model::from_hf_config_text(head + R"(, "hidden_act": "gelu"})", "c.json"), doctest::Contains("hidden_act"),
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::model::mamba_dims_from_hf_config_text(head + R"(, "conv_kernel": 3})", "c.json"),
                         doctest::Contains("conv_kernel = 3"), llm::error);
    CHECK_THROWS_WITH_AS(llm::model::mamba_dims_from_hf_config_text(head + R"(, "time_step_rank": 4})", "c.json"),
                         doctest::Contains("time_step_rank = 4"), llm::error);
    CHECK_THROWS_WITH_AS(llm::model::mamba_dims_from_hf_config_text(
                             R"({"architectures": ["GPT2LMHeadModel"], "vocab_size": 8, "n_embd": 8, "n_layer": 1, "n_head": 1})", "c.json"),
                         doctest::Contains("is not MambaForCausalLM"), llm::error);
}

TEST_CASE("mamba_lm: backward through the decoder accumulates (2x on a second call)") {
    const llm::model::dims d{.vocab = 16, .d_model = 8, .n_layers = 2, .n_heads = 1, .d_ff = 16, .tie_embeddings = true};
    llm::model::mamba<> model(d);
    auto p = model.make_params<float>();
    std::uint32_t s = 7;
    p.for_each_param([&](std::string_view name, auto& t) {
        for (std::size_t i = 0; i < t.size(); ++i) {
            s = s * 1664525u + 1013904223u;
            const float r = static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
            t.data()[i] = name.ends_with("A_log") ? 0.5f + r : name.ends_with("norm.weight") || name.ends_with("norm_f.weight") ? 1.0f + r : r;
        }
    });
    const std::size_t batch = 2, seq = 5, n = batch * seq;
    std::vector<std::int32_t> ids(n), targets(n);
    for (std::size_t t = 0; t < n; ++t) ids[t] = static_cast<std::int32_t>((t * 7 + 3) % d.vocab);
    for (std::size_t t = 0; t < n; ++t) targets[t] = t % seq == seq - 1 ? -100 : ids[t + 1];
    llm::model::arena arena;
    auto cache = llm::model::make_cache(model, arena, {.batch = batch, .seq = seq});
    llm::workspace ws;
    const llm::model::token_ids tid(ids.data(), n);
    const llm::tensor_view<const std::int32_t, llm::dims<1>> tgt(targets.data(), n);
    const float loss = model.forward_loss(cache, tid, tgt, p, ws, llm::parallel::sequential{});
    CHECK(std::isfinite(loss));
    auto g1 = model.make_params<float>();
    model.backward_loss(g1, 1.0f, cache, tid, tgt, p, ws, llm::parallel::sequential{});
    auto g2 = model.make_params<float>();
    model.backward_loss(g2, 1.0f, cache, tid, tgt, p, ws, llm::parallel::sequential{});
    model.backward_loss(g2, 1.0f, cache, tid, tgt, p, ws, llm::parallel::sequential{});
    double max_rel = 0.0, nonzero = 0.0;
    std::vector<float*> g1s, g2s;
    g1.for_each_param([&](std::string_view, auto& t) { g1s.push_back(t.data()); });
    std::size_t k = 0;
    g2.for_each_param([&](std::string_view, auto& t) {
        for (std::size_t i = 0; i < t.size(); ++i) {
            const double a = g1s[k][i], b = t.data()[i];
            max_rel = std::max(max_rel, std::abs(b - 2 * a) / (std::abs(2 * a) + 1e-6));
            nonzero += std::abs(a);
        }
        ++k;
    });
    CHECK(nonzero > 0.0);
    CHECK(max_rel < 1e-5);  // the same sums twice: exact up to one rounding per addition
}
