// SPDX-License-Identifier: Apache-2.0
// Tests of softmax and log-softmax: fast kernels vs the double reference, finite differences, errors.
#include "helpers.hpp"

#include <llm/nn/reference.hpp>
#include <llm/nn/softmax.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

using namespace nn_test;
namespace ref = llm::nn::reference;

TEST_CASE("softmax reference backward matches finite differences") {
    std::mt19937 rng(1);
    const std::size_t rows = 3, cols = 7;
    const auto x = random_doubles(rows * cols, rng);
    const auto w = random_doubles(rows * cols, rng);  // loss = <w, y>, so dy = w
    for (bool log : {false, true}) {
        auto forward = [&](std::vector<double>& y, const std::vector<double>& xv) {
            log ? ref::log_softmax_forward(view_of(y, rows, cols), view_of(xv, rows, cols))
                : ref::softmax_forward(view_of(y, rows, cols), view_of(xv, rows, cols));
        };
        auto loss = [&](const std::vector<double>& xv) {
            std::vector<double> y(xv.size());
            forward(y, xv);
            return dot(w, y);
        };
        std::vector<double> y(x.size()), dx(x.size());
        forward(y, x);
        const auto dxv = view_of(dx, rows, cols);
        log ? ref::log_softmax_backward(dxv, view_of(y, rows, cols), view_of(w, rows, cols))
            : ref::softmax_backward(dxv, view_of(y, rows, cols), view_of(w, rows, cols));
        CHECK(rel_error(dx, finite_difference(loss, x)) < tol_fd);
    }
}

TEST_CASE_TEMPLATE_DEFINE("softmax and log-softmax match the reference on awkward sizes", C, softmax_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    std::mt19937 rng(2);
    llm::parallel::thread_pool pool(2);
    llm::parallel::sequential seq;
    for (std::size_t rows : awkward_rows) {
        for (std::size_t cols : awkward_cols) {
            // Logits up to +-30: exp spans 26 orders of magnitude, so an unstabilised kernel fails.
            const auto x = random_matrix<T>(rows, cols, rng, -30.0f, 30.0f);
            const auto dy = random_matrix<T>(rows, cols, rng);
            const auto xd = to_double(x), dyd = to_double(dy);
            for (bool log : {false, true}) {
                std::vector<double> y_ref(xd.size()), dx_ref(xd.size());
                const auto y_refv = view_of(y_ref, rows, cols);
                const auto xdv = view_of(xd, rows, cols);
                log ? ref::log_softmax_forward(y_refv, xdv) : ref::softmax_forward(y_refv, xdv);
                auto y = poisoned<T, 2>(rows, cols);
                llm::tensor<T, llm::dims<2>> dx(rows, cols);
                llm::zero_grad(dx);  // the backward accumulates
                if (log) {
                    llm::nn::log_softmax_forward<S>(y, x, pool);
                } else {
                    llm::nn::softmax_forward<S>(y, x, seq);
                }
                INFO("rows=", rows, " cols=", cols, " log=", log);
                CHECK(rel_error(to_double(y), y_ref) < tolerance<T>);
                // Backward from our (rounded) forward output, compared with the reference
                // backward evaluated on that same output.
                const auto yd = to_double(y);
                const auto dx_refv = view_of(dx_ref, rows, cols);
                const auto ydv = view_of(yd, rows, cols), dydv = view_of(dyd, rows, cols);
                log ? ref::log_softmax_backward(dx_refv, ydv, dydv) : ref::softmax_backward(dx_refv, ydv, dydv);
                if (log) {
                    llm::nn::log_softmax_backward<S>(dx, y, dy, seq);
                } else {
                    llm::nn::softmax_backward<S>(dx, y, dy, pool);
                }
                CHECK(rel_error(to_double(dx), dx_ref) < 2 * tolerance<T>);
            }
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(softmax_vs_reference, elem_backend_cases);

TEST_CASE_TEMPLATE_DEFINE("softmax in place on every SIMD backend", S, softmax_in_place) {
    std::mt19937 rng(3);
    auto x = random_matrix<float>(5, 33, rng);
    const auto xd = to_double(x);
    std::vector<double> y_ref(xd.size());
    ref::softmax_forward(view_of(y_ref, 5, 33), view_of(xd, 5, 33));
    llm::nn::softmax_forward<S>(x, x, llm::parallel::sequential{});
    CHECK(rel_error(to_double(x), y_ref) < tol_f32);
}
TEST_CASE_TEMPLATE_APPLY(softmax_in_place, backends);

TEST_CASE("softmax rejects bad shapes") {
    mat_f x(3, 4), y(3, 5), empty(0, 4);
    CHECK_THROWS_WITH_AS(llm::nn::softmax_forward(y, x), "softmax_forward: y is 3 x 5 but x is 3 x 4", llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::softmax_forward(empty, empty), "softmax_forward: x is 0 x 4; both dimensions must be > 0",
                         llm::error);
    CHECK_THROWS_AS(llm::nn::log_softmax_backward(y, x, x), llm::error);
    // A transposed view has a strided last dimension: rejected, not silently misread.
    // The error (llm::to_kernel_view's) names the call and the argument.
    CHECK_THROWS_WITH_AS(llm::nn::softmax_forward(y, llm::transpose(x, 0, 1)),
                         "softmax_forward: x must have stride 1 in dim 1 (its strides are [1, 4])", llm::error);
    mat_f sq(4, 4);
    CHECK_THROWS_WITH_AS(llm::nn::softmax_backward(llm::transpose(sq, 0, 1), sq, sq),
                         "softmax_backward: dx must have stride 1 in dim 1 (its strides are [1, 4])", llm::error);
}
