// SPDX-License-Identifier: Apache-2.0
// The MoE FFN block under the model module's contract: Hugging Face Mixtral names, the same numbers as moe_forward / moe_backward, the transformers golden through the names, accumulation, and a Mixtral-shaped residual layer.
//
// Tolerances: the block calls moe_forward / moe_backward, so it is compared bit for bit; the
// golden comparison is the one of tests/moe/golden.cpp (normwise 2e-5 for the output).
#include "helpers.hpp"

#include "../support/golden.hpp"
#include "../support/temp_dir.hpp"

#include <llm/model/attention_mixer.hpp>
#include <llm/model/block.hpp>
#include <llm/model/checkpoint.hpp>
#include <llm/model/layer.hpp>
#include <llm/model/norm.hpp>
#include <llm/moe/block.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace moe_test;
namespace moe = llm::moe;
namespace mdl = llm::model;

using mixtral_layer = mdl::residual_layer<mdl::rms_norm, mdl::attention_mixer<>, moe::moe_ffn<4, 2>, moe::mixtral_layer_names>;
static_assert(mdl::block_like<moe::moe_ffn<8, 2>>);
static_assert(mdl::block_like<moe::moe_ffn<8, 1, moe::switch_top1>>);
static_assert(mdl::block_like<mixtral_layer>);

template <class P>
void randomize_params(P& p, std::mt19937& rng) {
    p.for_each_param([&](std::string_view name, auto& t) {
        auto flat = llm::reshape(t, t.size());
        const float scale = name == "gate.weight" ? 1.0f : 0.3f;
        std::uniform_real_distribution<float> dist(-scale, scale);
        for (std::size_t i = 0; i < flat.size(); ++i) {
            flat(i) = dist(rng);
        }
    });
}

}  // namespace

TEST_CASE("moe block: Hugging Face Mixtral names, per expert, prefixed by the layer") {
    const moe::moe_ffn<> f(8, 12, 2, moe::softmax_top_k{.k = 2}, {}, 6);
    auto p = f.make_params<float>();
    std::vector<std::string> names;
    p.for_each_param([&](std::string_view n, auto& t) {
        names.emplace_back(n);
        CHECK(t.rank() == 2);
    });
    CHECK(names == std::vector<std::string>{"gate.weight", "experts.0.w1.weight", "experts.0.w2.weight",
                                            "experts.0.w3.weight", "experts.1.w1.weight", "experts.1.w2.weight",
                                            "experts.1.w3.weight", "shared_expert.gate_proj.weight",
                                            "shared_expert.up_proj.weight", "shared_expert.down_proj.weight"});
    CHECK(mdl::count_params(p) == 2 * 8 + 3 * 2 * 12 * 8 + 3 * 6 * 8);
    // A view visited as experts.1.w2.weight writes the stacked tensor's expert 1.
    p.for_each_param([&](std::string_view n, auto& t) {
        if (n == "experts.1.w2.weight") {
            CHECK(t.extent(0) == 8);
            CHECK(t.extent(1) == 12);
            t(3, 4) = 7.0f;
        }
    });
    CHECK(p.w2(1, 3, 4) == 7.0f);
    // Inside a Mixtral-shaped layer the names are the checkpoint's.
    const mdl::dims d{.vocab = 16, .d_model = 8, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .d_ff = 12};
    const mixtral_layer layer(d);
    auto lp = layer.make_params<float>();
    std::vector<std::string> full;
    auto collect = [&](std::string_view n, auto&) { full.emplace_back(n); };
    mixtral_layer::params<float>::walk(mdl::prefixed("model.layers.3.", collect), lp);
    CHECK(std::find(full.begin(), full.end(), "model.layers.3.block_sparse_moe.gate.weight") != full.end());
    CHECK(std::find(full.begin(), full.end(), "model.layers.3.block_sparse_moe.experts.3.w2.weight") != full.end());
    CHECK(std::find(full.begin(), full.end(), "model.layers.3.post_attention_layernorm.weight") != full.end());
}

TEST_CASE("moe block: forward and backward are moe_forward / moe_backward; backward accumulates (2x)") {
    std::mt19937 rng(81);
    const std::size_t T = 13, d = 10, ff = 14, E = 4;
    const moe::moe_ffn<> f(d, ff, E, moe::softmax_top_k{.k = 2}, moe::moe_options{.aux_loss_coef = 0.01f}, 5);
    auto p = f.make_params<float>();
    randomize_params(p, rng);
    const t2f x = rand2(T, d, rng), dy = rand2(T, d, rng);
    t2f y(T, d), y2(T, d), dx(T, d), dx2(T, d);
    mdl::arena a;
    auto c = mdl::make_cache(f, a, {.batch = 1, .seq = T});
    llm::workspace ws;
    f.forward(y.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    auto g = f.make_params<float>();
    f.backward(dx.view(), g, dy.view(), c, x.view(), p, ws, llm::parallel::sequential{});

    moe::moe_cache mc;
    const auto w = moe::make_moe_weights(p.gate, p.w1, p.w3, p.w2, p.sw1, p.sw3, p.sw2);
    moe::moe_forward(y2, mc, x, w, f.route, f.options, llm::parallel::sequential{});
    auto g2 = f.make_params<float>();
    moe::moe_backward(dx2, moe::make_moe_grads(g2.gate, g2.w1, g2.w3, g2.w2, g2.sw1, g2.sw3, g2.sw2), mc, dy, x, w,
                      f.route, f.options, llm::parallel::sequential{});
    for (std::size_t i = 0; i < y.size(); ++i) {
        REQUIRE(y.data()[i] == y2.data()[i]);
        REQUIRE(dx.data()[i] == dx2.data()[i]);
    }
    CHECK(c.aux_loss() == mc.aux_loss);
    CHECK(c.aux_loss() > 0.0f);
    // Accumulation: a second backward doubles every gradient and dx.
    const t2f dx1 = dx;
    const auto g1 = g;
    f.backward(dx.view(), g, dy.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    for (std::size_t i = 0; i < dx.size(); ++i) {
        REQUIRE(dx.data()[i] == 2.0f * dx1.data()[i]);
    }
    for (std::size_t i = 0; i < g.w1.size(); ++i) {
        REQUIRE(g.w1.data()[i] == 2.0f * g1.w1.data()[i]);
    }
    for (std::size_t i = 0; i < g.sw2.size(); ++i) {
        REQUIRE(g.sw2.data()[i] == 2.0f * g1.sw2.data()[i]);
    }
    // step: one token per row, the forward's result.
    mdl::params_t<moe::moe_ffn<>> const& pc = p;
    t2f ys(T, d);
    moe::moe_ffn<>::state st;
    f.step(ys.view(), st, x.view(), pc, ws, llm::parallel::sequential{});
    for (std::size_t i = 0; i < y.size(); ++i) {
        REQUIRE(ys.data()[i] == y.data()[i]);
    }
}

TEST_CASE("moe block: parameters filled by their Hugging Face names reproduce transformers' MixtralSparseMoeBlock") {
    const llm_test::golden_file file(LLM_SOURCE_DIR "/tests/golden/moe/golden.txt");
    const auto& gx = file.get("x");
    const auto& gw1 = file.get("w1");
    const std::size_t T = gx.dims[0], d = gx.dims[1], E = gw1.dims[0], ff = gw1.dims[1];
    const moe::moe_ffn<> f(d, ff, E, moe::softmax_top_k{.k = 2});
    auto p = f.make_params<float>();
    // What a checkpoint loader does: each named tensor from the file's per-expert matrices.
    p.for_each_param([&](std::string_view name, auto& t) {
        const std::string n(name);
        const llm_test::golden_array* src = nullptr;
        std::size_t e = 0;
        if (n == "gate.weight") {
            src = &file.get("gate");
        } else {
            e = static_cast<std::size_t>(std::stoul(n.substr(8)));  // "experts.E.wI.weight"
            src = &file.get(n.substr(n.find(".w") + 1, 2));
        }
        const std::size_t per = t.size();
        for (std::size_t i = 0; i < t.extent(0); ++i) {
            for (std::size_t j = 0; j < t.extent(1); ++j) {
                t(i, j) = static_cast<float>(src->values[e * per + i * t.extent(1) + j]);
            }
        }
    });
    t2f x(T, d), y(T, d);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x.data()[i] = static_cast<float>(gx.values[i]);
    }
    mdl::arena a;
    auto c = mdl::make_cache(f, a, {.batch = 2, .seq = T / 2});
    llm::workspace ws;
    f.forward(y.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    CHECK(normwise(y.data(), file.get("y").values.data(), y.size()) <= 2e-5);
}

TEST_CASE("moe block: a Mixtral-shaped residual layer (RMSNorm, attention, MoE FFN) runs forward and backward") {
    std::mt19937 rng(83);
    const mdl::dims d{.vocab = 16, .d_model = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .d_ff = 24};
    const mixtral_layer layer(d);
    auto p = layer.make_params<float>();
    randomize_params(p, rng);
    p.for_each_param([](std::string_view n, auto& t) {
        if (n.ends_with("layernorm.weight")) {
            llm::fill(t, 1.0f);
        }
    });
    const std::size_t T = 10;
    const t2f x = rand2(T, d.d_model, rng), dy = rand2(T, d.d_model, rng);
    t2f y(T, d.d_model), dx(T, d.d_model);
    mdl::arena a;
    auto c = mdl::make_cache(layer, a, {.batch = 2, .seq = 5});
    llm::workspace ws;
    layer.forward(y.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    auto g = layer.make_params<float>();
    layer.backward(dx.view(), g, dy.view(), c, x.view(), p, ws, llm::parallel::sequential{});
    double gs = 0.0, ys = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        REQUIRE(std::isfinite(y.data()[i]));
        REQUIRE(std::isfinite(dx.data()[i]));
        ys += std::fabs(y.data()[i] - x.data()[i]);
    }
    for (std::size_t i = 0; i < g.ffn.w1.size(); ++i) {
        gs += std::fabs(g.ffn.w1.data()[i]);
    }
    CHECK(ys > 0.0);  // the layer changed the stream
    CHECK(gs > 0.0);  // the experts got gradients through the layer
}

TEST_CASE("moe block: save_safetensors / load_safetensors round-trip every expert under its Mixtral name") {
    std::mt19937 rng(89);
    const moe::moe_ffn<> f(6, 10, 3, moe::softmax_top_k{.k = 2}, {}, 4);
    auto p = f.make_params<float>();
    randomize_params(p, rng);
    const llm_test::temp_dir dir;
    const std::string path = dir / "moe.safetensors";
    mdl::save_safetensors(p, path);
    auto q = f.make_params<float>();
    mdl::load_safetensors(q, path);
    for (std::size_t i = 0; i < p.w1.size(); ++i) {
        REQUIRE(q.w1.data()[i] == p.w1.data()[i]);
        REQUIRE(q.w2.data()[i] == p.w2.data()[i]);
        REQUIRE(q.w3.data()[i] == p.w3.data()[i]);
    }
    for (std::size_t i = 0; i < p.sw2.size(); ++i) {
        REQUIRE(q.sw2.data()[i] == p.sw2.data()[i]);
    }
    // A checkpoint with fewer experts is refused by name.
    const moe::moe_ffn<> bigger(6, 10, 4, moe::softmax_top_k{.k = 2}, {}, 4);
    auto r = bigger.make_params<float>();
    CHECK_THROWS_WITH_AS(mdl::load_safetensors(r, path), doctest::Contains("gate.weight"), llm::error);
}
