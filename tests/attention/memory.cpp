// SPDX-License-Identifier: Apache-2.0
// Peak heap use of flash_forward / flash_backward at S = 16384 is O(S * D), never O(S^2): counted by replacing operator new.
//
// How the count works: tests/support/counting_new.hpp replaces the global operator new / delete
// (every form) for the whole test_attention executable; while a watch is on it adds each
// allocation's usable size to the bytes held and raises the peak, and counts the calls. The
// inputs are allocated before the watch starts, so the peak is exactly the extra memory the
// kernel allocates (std::vector, llm::tensor and every container go through operator new), and
// the count is what the warmed-workspace tests need to be zero.
#include "helpers.hpp"

#include <llm/attention/attention.hpp>
#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>

#include "../support/counting_new.hpp"

namespace {

/// Runs f with the heap watch on and returns the number of heap allocations it made (on any thread).
template <class F>
std::int64_t allocation_count(F&& f) {
    return llm_test::heap::watch(f).allocations;
}

/// Runs f with the heap watch on and returns the peak extra bytes it held at once.
template <class F>
std::int64_t peak_bytes(F&& f) {
    return llm_test::heap::watch(f).peak_bytes;
}

}  // namespace

namespace {

namespace at = llm::attention;
using namespace attn_test;

TEST_CASE("memory: the counting hook sees allocations") {
    const auto bytes = peak_bytes([] {
        std::vector<float> v(1000);
        v[7] = 1.0f;
    });
    CHECK(bytes >= 4000);
}

TEST_CASE("memory: flash_forward and flash_backward at S = 16384 use O(S * D) extra memory") {
    const std::size_t S = 16384, D = 64;
    const auto sd_bytes = static_cast<std::int64_t>(S * D * sizeof(float));  // one S x D fp32 matrix: 4 MiB
    const auto s2_bytes = static_cast<std::int64_t>(S * S * sizeof(float));  // the scores: 1 GiB
    auto q = random4<float>(1, S, 1, D, 1);
    auto k = random4<float>(1, S, 1, D, 2);
    auto v = random4<float>(1, S, 1, D, 3);
    t4f o(1, S, 1, D), dq(1, S, 1, D), dk(1, S, 1, D), dv(1, S, 1, D);
    t3f lse(1, 1, S);
    llm::parallel::sequential seq;
    // Causal halves the work of the default run; the buffers do not depend on the mask.
    const auto fwd = peak_bytes([&] { at::flash_forward(o, lse, q, k, v, at::causal{}, {}, seq); });
    MESSAGE("flash_forward S=16384 D=64: peak extra ", fwd, " bytes = ", double(fwd) / sd_bytes, " x S*D*4; S^2 scores would be ",
            s2_bytes);
    CHECK(fwd <= 3 * sd_bytes);  // packed K^T and V (2 S*D) plus per-task tiles
    CHECK(std::isfinite(o(0, S - 1, 0, D - 1)));
    // The backward's buffers do not depend on the mask either: a window keeps this test fast.
    const at::sliding_window win(512, 0);
    at::flash_forward(o, lse, q, k, v, win, {}, seq);
    const auto bwd = peak_bytes([&] { at::flash_backward(dq, dk, dv, o, lse, o, q, k, v, win, {}, seq); });
    MESSAGE("flash_backward S=16384 D=64: peak extra ", bwd, " bytes = ", double(bwd) / sd_bytes, " x S*D*4");
    // K, K^T, V^T, scaled Q, dO and one dQ partial per chunk (6 S*D) plus L, D rows and tiles.
    CHECK(bwd <= 8 * sd_bytes);
    CHECK(std::isfinite(dq(0, S - 1, 0, 0)));
}

// A decode loop reuses one caller-owned workspace: the first call grows it, every later call of
// the same sizes allocates nothing, neither in the kernel nor in the policy (the thread pool
// hands chunks to its workers through preallocated state; this checks that too).
template <class Cache, class Exec>
void check_decode_allocates_nothing(Exec&& exec) {
    const std::size_t S = 3, H = 8, Hk = 2, D = 80, len = 1500;
    const std::size_t L = 2;  // decode reads layer 1 through a cache.layer(1) view
    Cache model = [&] {
        if constexpr (std::is_same_v<Cache, at::contiguous_kv_cache<float>>) {
            return Cache(L, S, 2048, Hk, D);
        } else {
            Cache c(L, S * 100, 16, Hk, D);
            for (std::size_t s = 0; s < S; ++s) {
                c.add_sequence();
            }
            return c;
        }
    }();
    for (std::size_t s = 0; s < S; ++s) {
        const llm::tensor<float, llm::dims<3>> kv = [&] {
            llm::tensor<float, llm::dims<3>> t(len - 100 * s, Hk, D);
            for (std::size_t i = 0; i < t.size(); ++i) {
                t.data()[i] = 0.01f * static_cast<float>((i * 7 + s) % 101) - 0.5f;
            }
            return t;
        }();
        for (std::size_t l = 0; l < L; ++l) {
            model.layer(l).append(s, kv, kv);
        }
        model.advance(s, kv.extent(0));
    }
    llm::tensor<float, llm::dims<3>> q(S, H, D), out(S, H, D), out2(S, H, D);
    llm::tensor<float, llm::dims<2>> lse(S, H), lse2(S, H);
    for (std::size_t i = 0; i < q.size(); ++i) {
        q.data()[i] = 0.02f * static_cast<float>(i % 37) - 0.3f;
    }
    for (const at::options opt : {at::options{}, at::options{.splits = 3}}) {
        CAPTURE(opt.splits);
        llm::workspace ws;
        // model.layer(1) is taken inside the counted calls: the per-layer view allocates nothing.
        const auto first =
            allocation_count([&] { at::decode_attention(out, lse, model.layer(1), q, at::causal{}, opt, ws, exec); });
        CHECK(first > 0);  // a cold workspace grows: the counter sees the kernel's memory
        CHECK(ws.capacity() >= ws.high_water());
        const auto second =
            allocation_count([&] { at::decode_attention(out2, lse2, model.layer(1), q, at::causal{}, opt, ws, exec); });
        CHECK(second == 0);
        const at::sliding_window window(700, 0);
        const auto third =
            allocation_count([&] { at::decode_attention(out2, model.layer(1), q, window, opt, ws, exec); });
        CHECK(third == 0);  // a smaller window needs no more
        // Same results as the call that allocated.
        at::decode_attention(out2, lse2, model.layer(1), q, at::causal{}, opt, ws, exec);
        for (std::size_t i = 0; i < out.size(); ++i) {
            REQUIRE(out.data()[i] == out2.data()[i]);
        }
        for (std::size_t i = 0; i < lse.size(); ++i) {
            REQUIRE(lse.data()[i] == lse2.data()[i]);
        }
    }
}

TEST_CASE_TEMPLATE("memory: decode_attention with a warmed workspace allocates nothing (sequential and thread_pool)", Cache,
                   at::contiguous_kv_cache<float>, at::paged_kv_cache<llm::bf16>) {
    check_decode_allocates_nothing<Cache>(llm::parallel::sequential{});
    llm::parallel::thread_pool pool(2);
    check_decode_allocates_nothing<Cache>(pool);
    // The pool's hand-off itself: a parallel_for over several chunks allocates nothing.
    std::atomic<int> ran{0};
    const auto pool_allocs = allocation_count([&] {
        llm::parallel::parallel_for(pool, 64, 1, [&](std::size_t, std::size_t) { ran.fetch_add(1); });
    });
    CHECK(ran.load() == 64);
    CHECK(pool_allocs == 0);
}

TEST_CASE("memory: flash_forward and flash_backward with a warmed workspace allocate nothing") {
    auto q = random4<float>(2, 150, 4, 64, 1);
    auto k = random4<float>(2, 170, 2, 64, 2);
    auto v = random4<float>(2, 170, 2, 64, 3);
    t4f o(2, 150, 4, 64), dq(2, 150, 4, 64), dk(2, 170, 2, 64), dv(2, 170, 2, 64);
    t3f lse(2, 4, 150);
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    const auto run = [&](auto&& exec) {
        at::flash_forward(o, lse, q, k, v, at::causal{}, {.softcap = 20.0f}, ws, exec);
        at::flash_backward(dq, dk, dv, o, lse, o, q, k, v, at::causal{}, {.softcap = 20.0f}, ws, exec);
    };
    CHECK(allocation_count([&] { run(pool); }) > 0);
    CHECK(allocation_count([&] { run(pool); }) == 0);
    CHECK(allocation_count([&] { run(llm::parallel::sequential{}); }) == 0);
}

}  // namespace
