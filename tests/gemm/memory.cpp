// SPDX-License-Identifier: Apache-2.0
// A warmed llm::workspace makes gemm / gemv calls and the linear layer built on them (nn/linear.hpp)
// allocation-free: counted by replacing operator new (one replacement per program, so the linear
// layer's count lives here, next to the gemm it calls).
//
// How the count works: tests/support/counting_new.hpp replaces the global operator new / delete
// (every form) for the whole test_gemm executable and counts allocations while a watch is on.
// Each test first shows that the count sees the call's allocations (a cold workspace, or the
// overload without one, allocates), then that the same call with the warmed workspace does not.
#include "helpers.hpp"

#include <llm/gemm/gemm.hpp>
#include <llm/nn/linear.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>

#include "../support/counting_new.hpp"

namespace {

/// Runs f with the heap watch on and returns the number of heap allocations it made.
template <class F>
std::int64_t allocations_of(F&& f) {
    return llm_test::heap::watch(f).allocations;
}

}  // namespace

namespace {

using matrix = llm::tensor<float, llm::dims<2>>;
using bmatrix = llm::tensor<llm::bf16, llm::dims<2>>;

template <class T>
llm::tensor<T, llm::dims<2>> random_matrix(std::size_t rows, std::size_t cols, unsigned seed) {
    llm::tensor<T, llm::dims<2>> t(rows, cols);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = T(dist(rng));
    }
    return t;
}

/// Calls `run(ws)` with a cold workspace (which must allocate: proof that the count sees the
/// call), then twice more with the warmed one: zero allocations, and the same result.
template <class Run>
void check_warm_calls_allocate_nothing(const matrix& out, Run&& run) {
    llm::workspace ws;
    CHECK(allocations_of([&] { run(ws); }) > 0);
    const matrix first = out;
    CHECK(ws.capacity() >= ws.high_water());
    CHECK(allocations_of([&] { run(ws); }) == 0);
    CHECK(allocations_of([&] { run(ws); }) == 0);
    CHECK(gemm_test::rel_error(out, first) == 0.0);
}

}  // namespace

TEST_CASE("gemm: a second call with a warmed workspace performs no heap allocation") {
    llm::parallel::thread_pool pool(2);
    // Blocked GEMM: m, n, k cross the MC (120 on AVX2; on AVX-512 345 rows are one 516-row block),
    // KC (256 on AVX2, 512 on AVX-512) and micro-tile edges.
    const matrix a = random_matrix<float>(345, 520, 1), b = random_matrix<float>(520, 129, 2);
    const bmatrix ah = random_matrix<llm::bf16>(345, 520, 3), wh = random_matrix<llm::bf16>(129, 520, 4);
    matrix c(345, 129);
    SUBCASE("fp32, thread pool") {
        check_warm_calls_allocate_nothing(c, [&](llm::workspace& ws) { llm::gemm(c, a, b, 1.0f, 0.0f, ws, pool); });
    }
    SUBCASE("fp32, sequential temporary, beta = 1") {
        check_warm_calls_allocate_nothing(
            c, [&](llm::workspace& ws) {
                llm::fill(c, 1.0f);  // beta = 1 accumulates: start each call from the same C
                llm::gemm(c, a, b, 0.5f, 1.0f, ws, llm::parallel::sequential{});
            });
    }
    SUBCASE("bf16 A and B = W^T, thread pool") {
        check_warm_calls_allocate_nothing(
            c, [&](llm::workspace& ws) { llm::gemm(c, ah, llm::transpose(wh, 0, 1), 1.0f, 0.0f, ws, pool); });
    }
    SUBCASE("C column-major (computed as C^T = B^T A^T)") {
        matrix ct(129, 345);
        check_warm_calls_allocate_nothing(
            ct, [&](llm::workspace& ws) { llm::gemm(llm::transpose(ct, 0, 1), a, b, 1.0f, 0.0f, ws, pool); });
    }
}

TEST_CASE("gemv: a second call with a warmed workspace performs no heap allocation") {
    llm::parallel::thread_pool pool(2);
    // A bf16 or strided x row is widened into the workspace (k floats); a dense fp32 x is read
    // in place, so that call allocates nothing even cold.
    const bmatrix xh = random_matrix<llm::bf16>(1, 1000, 5);
    const matrix xs = random_matrix<float>(1000, 3, 6);  // column 1 of xs^T: a strided row
    const matrix w = random_matrix<float>(1031, 1000, 7), b = random_matrix<float>(1000, 1031, 8);
    matrix y(1, 1031);
    SUBCASE("bf16 x, y = x W^T") {
        check_warm_calls_allocate_nothing(
            y, [&](llm::workspace& ws) { llm::gemm(y, xh, llm::transpose(w, 0, 1), 1.0f, 0.0f, ws, pool); });
    }
    SUBCASE("strided fp32 x, y = x B") {
        const auto x = llm::slice(llm::transpose(xs, 0, 1), 0, 1, 2);
        check_warm_calls_allocate_nothing(y, [&](llm::workspace& ws) { llm::gemm(y, x, b, 1.0f, 0.0f, ws, pool); });
    }
    SUBCASE("dense fp32 x needs no scratch at all") {
        const matrix x = random_matrix<float>(1, 1000, 9);
        llm::workspace ws;
        CHECK(allocations_of([&] { llm::gemm(y, x, llm::transpose(w, 0, 1), 1.0f, 0.0f, ws, pool); }) == 0);
        CHECK(ws.high_water() == 0);
    }
}

TEST_CASE("gemm without a workspace allocates its scratch per call (what the workspace form avoids)") {
    llm::parallel::thread_pool pool(2);
    const matrix a = random_matrix<float>(64, 300, 10), b = random_matrix<float>(300, 64, 11);
    matrix c(64, 64);
    llm::gemm(c, a, b, 1.0f, 0.0f, pool);
    CHECK(allocations_of([&] { llm::gemm(c, a, b, 1.0f, 0.0f, pool); }) > 0);
}

TEST_CASE("linear_forward / linear_backward: a second call with a warmed workspace performs no heap allocation") {
    llm::parallel::thread_pool pool(2);
    const matrix x = random_matrix<float>(67, 129, 12), dy = random_matrix<float>(67, 300, 13);
    const bmatrix w = random_matrix<llm::bf16>(300, 129, 14);
    llm::tensor<float, llm::dims<1>> b(300), db(300);
    matrix y(67, 300), dx(67, 129), dw(300, 129);
    bmatrix yh(67, 300);
    SUBCASE("forward, fp32 y with bias") {
        check_warm_calls_allocate_nothing(y, [&](llm::workspace& ws) { llm::nn::linear_forward(y, x, w, b, ws, pool); });
    }
    SUBCASE("forward, bf16 y (fp32 buffer in the workspace)") {
        matrix y_seen(67, 300);
        check_warm_calls_allocate_nothing(y_seen, [&](llm::workspace& ws) {
            llm::nn::linear_forward(yh, x, w, b, ws, pool);
            for (std::size_t i = 0; i < yh.size(); ++i) {
                y_seen.data()[i] = static_cast<float>(yh.data()[i]);
            }
        });
    }
    SUBCASE("backward with bias, then decode-sized (1 token)") {
        check_warm_calls_allocate_nothing(dw, [&](llm::workspace& ws) {
            llm::zero_grad(dx, dw, db);
            llm::nn::linear_backward(dx, dw, db, dy, x, w, ws, pool);
        });
        const bmatrix x1 = random_matrix<llm::bf16>(1, 129, 15);  // a bf16 row is widened in the workspace
        matrix y1(1, 300);
        check_warm_calls_allocate_nothing(y1, [&](llm::workspace& ws) { llm::nn::linear_forward(y1, x1, w, b, ws, pool); });
    }
}

TEST_CASE("workspace: spills of several sizes at once, repeated (a model's layers in its first step), allocate only the first time") {
    llm::workspace ws;
    const llm::workspace::frame outer(ws);
    ws.take<float>(16)[0] = 1.0f;  // keeps the main block busy: everything below spills
    auto layer = [&] {
        const llm::workspace::frame f(ws);
        float* big = ws.take<float>(3 << 16);
        big[0] = 2.0f;
        {
            const llm::workspace::frame inner(ws);
            float* small = ws.take<float>(1 << 16);  // while `big` is held
            small[0] = 3.0f;
            float* tiny = ws.take<float>(1000);
            tiny[0] = 4.0f;
        }
        float* again = ws.take<float>(1 << 16);  // after the inner frame gave its blocks back
        again[0] = big[0];
    };
    CHECK(allocations_of(layer) > 0);
    for (int i = 0; i < 3; ++i) {
        CHECK(allocations_of(layer) == 0);
    }
}

TEST_CASE("workspace: a spill given back serves the next one in the same outer frame, then the main block regrows") {
    llm::workspace ws;
    {
        const llm::workspace::frame outer(ws);
        float* held = ws.take<float>(16);  // the outer frame's region keeps the main block busy
        held[0] = 1.0f;
        // the first spill allocates its block (the outer region spilled too, the main block being
        // empty, and reserved the list slots); the next ones (as large or smaller) take the block
        // it gave back
        CHECK(allocations_of([&] {
                  const llm::workspace::frame inner(ws);
                  ws.take<float>(1 << 16)[0] = 2.0f;
              }) == 1);
        CHECK(allocations_of([&] {
                  const llm::workspace::frame inner(ws);
                  ws.take<float>(1 << 16)[0] = 3.0f;
              }) == 0);
        CHECK(allocations_of([&] {
                  const llm::workspace::frame inner(ws);
                  ws.take<float>(1000)[0] = 4.0f;
              }) == 0);
        // a larger one replaces it
        CHECK(allocations_of([&] {
                  const llm::workspace::frame inner(ws);
                  ws.take<float>(1 << 17)[0] = 5.0f;
              }) == 1);
        CHECK(held[0] == 1.0f);
    }
    // the outermost frame regrew the main block to the peak: the same calls allocate nothing
    CHECK(ws.capacity() >= ws.high_water());
    CHECK(ws.high_water() >= (std::size_t{1} << 17) * sizeof(float));
    CHECK(allocations_of([&] {
              const llm::workspace::frame outer(ws);
              ws.take<float>(16)[0] = 1.0f;
              const llm::workspace::frame inner(ws);
              ws.take<float>(1 << 17)[0] = 5.0f;
          }) == 0);
}
