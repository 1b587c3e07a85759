// SPDX-License-Identifier: Apache-2.0
// The MoE layer with a warmed cache and workspace allocates nothing (forward and backward, sequential and thread_pool).
//
// How the count works: tests/support/counting_new.hpp replaces the global operator new / delete
// for the whole test_moe executable and counts allocations while a watch is on. Each test first
// shows that the count sees the call's allocations (a cold cache and workspace), then repeats
// the call with the warmed ones: zero allocations. (The aux losses, when their coefficients are
// set, keep per-call temporaries and are left out here.)
#include "helpers.hpp"

#include "../support/counting_new.hpp"

#include <llm/model/families.hpp>
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>
#include <llm/moe/moe.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

namespace {

using namespace moe_test;
namespace moe = llm::moe;

template <class F>
std::int64_t allocations_of(F&& f) {
    return llm_test::heap::watch(f).allocations;
}

template <class Exec, class R>
void check_warm(Exec& exec, const R& router) {
    std::mt19937 rng(71);
    const std::size_t T = 70, E = 8, d = 16, ff = 24;
    const layer l(E, d, ff, 8, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng), dy = rand2(T, d, rng);
    t2f y(T, d), dx(T, d);
    grads g(l);
    const auto gv = g.views();
    moe::moe_cache cache;
    llm::workspace ws;
    auto step = [&] {
        moe::moe_forward(y, cache, x, w, router, {}, ws, exec);
        moe::moe_backward(dx, gv, cache, dy, x, w, router, {}, ws, exec);
    };
    CHECK(allocations_of(step) > 0);  // cold: the cache and the workspace grow
    step();
    CHECK(allocations_of(step) == 0);
}

}  // namespace

TEST_CASE("memory: moe_forward + moe_backward with a warmed cache and workspace allocate nothing") {
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    static const std::vector<float> bias(8, 0.01f);
    SUBCASE("softmax top-2, sequential") { check_warm(seq, moe::softmax_top_k{.k = 2}); }
    SUBCASE("softmax top-2, thread_pool") { check_warm(pool, moe::softmax_top_k{.k = 2}); }
    SUBCASE("sigmoid top-2 with bias and groups, thread_pool") {
        check_warm(pool, moe::sigmoid_top_k{.k = 2, .groups = {.n_group = 4, .topk_group = 2, .per_group = 2}, .bias = bias});
    }
}

template <class Exec>
void check_infer(Exec& exec, std::size_t fs) {
    std::mt19937 rng(72);
    const std::size_t T = 9, E = 8, d = 16, ff = 24;
    const layer l(E, d, ff, fs, rng);
    const auto w = l.weights();
    const t2f x = rand2(T, d, rng);
    t2f y(T, d), ref(T, d);
    moe::moe_cache cache;
    const moe::softmax_top_k router{.k = 2};
    moe::moe_forward(ref, cache, x, w, router, {}, exec);
    llm::workspace ws;
    auto call = [&] { moe::moe_infer(y, x, w, router, {}, ws, exec); };
    CHECK(allocations_of(call) > 0);  // cold: the workspace grows
    call();
    CHECK(allocations_of(call) == 0);
    CHECK(std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) == 0);
}

TEST_CASE("memory: moe_infer with a warmed workspace allocates nothing and equals moe_forward bit for bit") {
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    SUBCASE("sequential") { check_infer(seq, 0); }
    SUBCASE("sequential, shared experts") { check_infer(seq, 8); }
    SUBCASE("thread_pool, shared experts") { check_infer(pool, 8); }
}

// The decode step: moe_ffn::step over 300 tokens with one warmed workspace, and the whole
// Mixtral model's step against the Llama model's of the same dims (which shows the MoE FFN
// adds no allocation to the step, whatever the rest of the layer does).
TEST_CASE("memory: the MoE block's decode step allocates nothing over 300 steps; the Mixtral step allocates what Llama's does") {
    llm::parallel::sequential seq;
    std::mt19937 rng(73);
    const llm::moe::moe_ffn<> f(32, 48, 4, moe::softmax_top_k{.k = 2});
    auto p = f.make_params<float>();
    p.for_each_param([&](std::string_view, auto& t) { randomize(t.data(), t.size(), rng, 0.3f); });
    const t2f x = rand2(300, 32, rng);
    t2f y(1, 32);
    llm::moe::moe_ffn<>::state st;
    llm::workspace ws;
    auto row = [&](std::size_t t) { return llm::model::const_activations(x.data() + t * 32, llm::dims<2>(1, 32)); };
    f.step(y.view(), st, row(0), p, ws, seq);  // warm
    const auto steps = allocations_of([&] {
        for (std::size_t t = 0; t < 300; ++t) {
            f.step(y.view(), st, row(t), p, ws, seq);
        }
    });
    CHECK(steps == 0);

    const auto cfg = llm::model::from_hf_config("tests/golden/moe/mixtral/config.json");
    auto per_step = [&](const auto& m) {
        auto mp = m.template make_params<float>();
        m.init(mp);
        auto ds = m.make_state(1, 320);
        llm::tensor<float, llm::dims<2>> logits(1, m.config().vocab);
        llm::workspace mws;
        std::int32_t id = 1;
        m.step(logits.view(), ds, llm::model::token_ids(&id, 1), mp, mws, seq);  // warm
        return allocations_of([&] {
            for (int t = 0; t < 300; ++t) {
                id = (id * 7 + 3) % 64;
                m.step(logits.view(), ds, llm::model::token_ids(&id, 1), mp, mws, seq);
            }
        });
    };
    const auto mixtral = per_step(llm::moe::mixtral<>(cfg.dims));
    const auto llama = per_step(llm::model::llama<>(cfg.dims));
    CHECK(mixtral == llama);
    MESSAGE("Mixtral decode step: ", mixtral / 300, " allocations per step, Llama of the same dims ", llama / 300);
}
