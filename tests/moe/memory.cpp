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

#include <llm/moe/moe.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <random>

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
