// SPDX-License-Identifier: Apache-2.0
// Mixtral as a model family: a tiny random MixtralForCausalLM built and saved by Hugging Face
// transformers 4.44.2 (tests/golden/moe/make_mixtral_golden.py) loads through from_hf_config
// and load_safetensors (model.layers.N.block_sparse_moe.gate / experts.E.w1/w2/w3); logits,
// loss and parameter gradients match PyTorch's.
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

const std::string mixtral_dir = "tests/golden/moe/mixtral/";

// ||a - b|| / ||b|| in double
template <class A, class B>
double rel_err(const A& a, const B& b, std::size_t n) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = double(a[i]) - double(b[i]);
        num += d * d;
        den += double(b[i]) * double(b[i]);
    }
    return std::sqrt(num / den);
}

const char* mixtral_config(const char* extra) {
    static std::string s;
    s = std::string(R"({"architectures": ["MixtralForCausalLM"], "vocab_size": 64, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 48)") +
        extra + "}";
    return s.c_str();
}

}  // namespace

TEST_CASE("mixtral: from_hf_config reads MixtralForCausalLM (experts, top-k, window) and refuses what it does not implement") {
    const auto cfg = llm::model::from_hf_config(mixtral_dir + "config.json");
    CHECK(cfg.family == llm::model::family::mixtral);
    CHECK(cfg.dims.n_experts == 4);
    CHECK(cfg.dims.experts_per_token == 2);
    CHECK(cfg.dims.sliding_window == 0);  // null in the golden's config.json
    CHECK(cfg.dims.kv_heads() == 2);
    const llm::moe::moe_ffn<> f(cfg.dims);
    CHECK(f.experts == 4);
    CHECK(f.route.k == 2);
    // transformers' defaults: 8 experts, top-2
    const auto dflt = llm::model::from_hf_config_text(mixtral_config(""), "config.json");
    CHECK(dflt.dims.n_experts == 8);
    CHECK(dflt.dims.experts_per_token == 2);
    CHECK(llm::model::from_hf_config_text(mixtral_config(R"(, "sliding_window": 4096)"), "c.json").dims.sliding_window == 4096);
    CHECK_THROWS_AS(llm::model::from_hf_config_text(mixtral_config(R"(, "output_router_logits": true)"), "c.json"), llm::error);
    CHECK_THROWS_AS(llm::model::from_hf_config_text(mixtral_config(R"(, "router_jitter_noise": 0.01)"), "c.json"), llm::error);
    CHECK_THROWS_AS(
        llm::model::from_hf_config_text(mixtral_config(R"(, "num_local_experts": 4, "num_experts_per_tok": 5)"), "c.json"),
        llm::error);
}

TEST_CASE("mixtral: logits, loss and gradients match transformers 4.44.2 MixtralForCausalLM (4 experts top-2, GQA)") {
    const auto cfg = llm::model::from_hf_config(mixtral_dir + "config.json");
    llm::moe::mixtral<> model(cfg.dims);
    auto p = model.make_params<float>();
    llm::model::load_safetensors(p, mixtral_dir + "model.safetensors");
    const llm::io::safetensors_file golden(mixtral_dir + "golden.safetensors");
    const auto ids_view = golden.view<std::int32_t, 2>("input_ids");
    const std::size_t batch = ids_view.extent(0), seq = ids_view.extent(1), n = batch * seq;
    std::vector<std::int32_t> ids(ids_view.data(), ids_view.data() + n);
    // labels = input_ids, shifted inside the model: token t predicts t + 1
    std::vector<std::int32_t> targets(n);
    for (std::size_t t = 0; t < n; ++t) targets[t] = (t % seq == seq - 1) ? -100 : ids[t + 1];

    llm::model::arena arena;
    auto cache = llm::model::make_cache(model, arena, {.batch = batch, .seq = seq});
    llm::workspace ws;
    const llm::model::token_ids tid(ids.data(), n);
    const llm::tensor_view<const std::int32_t, llm::dims<1>> tgt(targets.data(), n);
    const float loss = model.forward_loss(cache, tid, tgt, p, ws, llm::parallel::sequential{});

    // Measured (x86-64, AVX2): logits 4.8e-7 relative, gradients 3.6e-7 .. 1.8e-6.
    // Tolerances: as the dense families' golden (tests/model/golden.cpp): fp32 on both sides
    // with different summation orders, dot products of length <= 48 (~sqrt(K) 2^-24 typical,
    // K 2^-24 ~ 3e-6 bound per product) through 2 layers of norm, attention, router softmax and
    // the SwiGLU experts. The routing is discrete: the top-2 choice of every token is the same
    // on both sides as long as no two router logits are within ~1e-6 of each other (with these
    // random weights the closest gap between a token's 2nd and 3rd logit is 2.3e-2, layer 0;
    // a different choice would move the logits by ~1e-1). Bounds: 1e-5 for logits and loss, 3e-5 for gradients; a wrong expert layout,
    // router renormalisation or name moves them by 1e-2 or more.
    const auto ref_logits = golden.view<float, 3>("logits");
    REQUIRE(ref_logits.size() == cache.logits.size());
    const double e_logits = rel_err(cache.logits.data(), ref_logits.data(), ref_logits.size());
    INFO("logits rel err " << e_logits);
    CHECK(e_logits < 1e-5);
    const float ref_loss = golden.view<float, 1>("loss")(0);
    INFO("loss " << loss << " vs " << ref_loss);
    CHECK(std::abs(loss - ref_loss) <= 1e-5 * std::abs(ref_loss));

    auto g = model.make_params<float>();
    model.backward_loss(g, 1.0f, cache, tid, tgt, p, ws, llm::parallel::sequential{});
    std::size_t compared = 0;
    g.for_each_param([&](std::string_view name, const auto& t) {
        const std::string key = "grad." + std::string(name);
        if (golden.find(key) == nullptr) return;
        const auto ref = golden.flat_view<float>(key);
        REQUIRE(ref.size() == t.size());
        const double e = rel_err(t.data(), ref.data(), t.size());
        INFO(name << " grad rel err " << e);
        CHECK(e < 3e-5);
        ++compared;
    });
    CHECK(compared == 8);
}
