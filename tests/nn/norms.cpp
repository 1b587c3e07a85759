// SPDX-License-Identifier: Apache-2.0
// Tests of RMSNorm and LayerNorm: fast kernels vs the double reference, finite differences, determinism, errors.
#include "helpers.hpp"

#include <llm/nn/layernorm.hpp>
#include <llm/nn/reference.hpp>
#include <llm/nn/rmsnorm.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

using namespace nn_test;
namespace ref = llm::nn::reference;

namespace {
constexpr double eps_d = 1e-5;
constexpr float eps_f = 1e-5f;
}  // namespace

TEST_CASE("rmsnorm and layernorm reference backward match finite differences (x, weight, bias)") {
    std::mt19937 rng(11);
    const std::size_t rows = 3, cols = 6;
    const auto x = random_doubles(rows * cols, rng);
    const auto w = random_doubles(cols, rng, 0.5, 1.5);
    const auto b = random_doubles(cols, rng);
    const auto dy = random_doubles(rows * cols, rng);
    std::vector<double> y(x.size()), mean(rows), rstd(rows), dx(x.size()), dw(cols, 0.0), db(cols, 0.0);
    const auto yv = view_of(y, rows, cols), dxv = view_of(dx, rows, cols);
    const auto dyv = view_of(dy, rows, cols);

    SUBCASE("rmsnorm") {
        auto loss_x = [&](const std::vector<double>& xv) {
            ref::rmsnorm_forward(yv, view_of(rstd), view_of(xv, rows, cols), view_of(w), eps_d);
            return dot(dy, y);
        };
        auto loss_w = [&](const std::vector<double>& wv) {
            ref::rmsnorm_forward(yv, view_of(rstd), view_of(x, rows, cols), view_of(wv), eps_d);
            return dot(dy, y);
        };
        ref::rmsnorm_forward(yv, view_of(rstd), view_of(x, rows, cols), view_of(w), eps_d);
        ref::rmsnorm_backward(dxv, view_of(dw), view_of(rstd), dyv, view_of(x, rows, cols), view_of(w));
        CHECK(rel_error(dx, finite_difference(loss_x, x)) < tol_fd);
        CHECK(rel_error(dw, finite_difference(loss_w, w)) < tol_fd);
    }
    SUBCASE("layernorm") {
        auto fwd = [&](const std::vector<double>& xv, const std::vector<double>& wv, const std::vector<double>& bv) {
            ref::layernorm_forward(yv, view_of(mean), view_of(rstd), view_of(xv, rows, cols), view_of(wv), view_of(bv), eps_d);
            return dot(dy, y);
        };
        ref::layernorm_forward(yv, view_of(mean), view_of(rstd), view_of(x, rows, cols), view_of(w), view_of(b), eps_d);
        ref::layernorm_backward(dxv, view_of(dw), view_of(db), view_of(mean), view_of(rstd), dyv, view_of(x, rows, cols),
                                view_of(w));
        CHECK(rel_error(dx, finite_difference([&](const auto& v) { return fwd(v, w, b); }, x)) < tol_fd);
        CHECK(rel_error(dw, finite_difference([&](const auto& v) { return fwd(x, v, b); }, w)) < tol_fd);
        CHECK(rel_error(db, finite_difference([&](const auto& v) { return fwd(x, w, v); }, b)) < tol_fd);
    }
}

TEST_CASE_TEMPLATE_DEFINE("rmsnorm matches the reference on awkward sizes, with and without weight", C, rmsnorm_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    std::mt19937 rng(12);
    llm::parallel::thread_pool pool(2);
    for (std::size_t rows : awkward_rows) {
        for (std::size_t cols : awkward_cols) {
            for (bool with_weight : {true, false}) {
                const auto x = random_matrix<T>(rows, cols, rng);
                const auto dy = random_matrix<T>(rows, cols, rng);
                const auto w = random_vector<T>(with_weight ? cols : 0, rng);
                const auto xd = to_double(x), dyd = to_double(dy), wd = to_double(w);
                // One column: dx = rstd g (1 - xhat^2) with 1 - xhat^2 = eps / (x^2 + eps), an
                // fp32 cancellation of relative size 1e-7 / 1e-5 for any implementation; a large
                // eps makes that case well conditioned so the check stays meaningful.
                const float eps = cols == 1 ? 1.0f : eps_f;
                std::vector<double> y_ref(xd.size()), rstd_ref(rows), dx_ref(xd.size()), dw_ref(cols, 0.0);
                // Without a weight, wd is empty: the reference's "no weight".
                ref::rmsnorm_forward(view_of(y_ref, rows, cols), view_of(rstd_ref), view_of(xd, rows, cols), view_of(wd), eps);
                ref::rmsnorm_backward(view_of(dx_ref, rows, cols), view_of(dw_ref), view_of(rstd_ref), view_of(dyd, rows, cols),
                                      view_of(xd, rows, cols), view_of(wd));
                auto y = poisoned<T, 2>(rows, cols);
                llm::tensor<T, llm::dims<2>> dx(rows, cols);  // gradients accumulate: start at 0
                auto rstd = poisoned<float, 1>(rows);
                vec_f dw(with_weight ? cols : 0);
                llm::zero_grad(dx, dw);
                llm::nn::rmsnorm_forward<S>(y, rstd, x, w, eps, pool);
                llm::nn::rmsnorm_backward<S>(dx, dw, rstd, dy, x, w, pool);
                INFO("rows=", rows, " cols=", cols, " weight=", with_weight);
                CHECK(rel_error(to_double(y), y_ref) < tolerance<T>);
                CHECK(rel_error(to_double(rstd), rstd_ref) < tol_f32);
                CHECK(rel_error(to_double(dx), dx_ref) < 2 * tolerance<T>);
                if (with_weight) {
                    CHECK(rel_error(to_double(dw), dw_ref) < tol_f32);
                }
            }
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(rmsnorm_vs_reference, elem_backend_cases);

TEST_CASE_TEMPLATE_DEFINE("layernorm matches the reference on awkward sizes", C, layernorm_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    std::mt19937 rng(13);
    llm::parallel::thread_pool pool(2);
    for (std::size_t rows : awkward_rows) {
        for (std::size_t cols : awkward_cols) {
            // Offset mean (+10) with small spread: E[x^2] - mean^2 would lose the variance.
            const auto x = random_matrix<T>(rows, cols, rng, 9.0f, 11.0f);
            const auto dy = random_matrix<T>(rows, cols, rng);
            const auto w = random_vector<T>(cols, rng);
            const auto b = random_vector<T>(cols, rng, -1.0f, 1.0f);
            const auto xd = to_double(x), dyd = to_double(dy), wd = to_double(w), bd = to_double(b);
            std::vector<double> y_ref(xd.size()), mean_ref(rows), rstd_ref(rows), dx_ref(xd.size()), dw_ref(cols, 0.0),
                db_ref(cols, 0.0);
            ref::layernorm_forward(view_of(y_ref, rows, cols), view_of(mean_ref), view_of(rstd_ref), view_of(xd, rows, cols),
                                   view_of(wd), view_of(bd), eps_d);
            ref::layernorm_backward(view_of(dx_ref, rows, cols), view_of(dw_ref), view_of(db_ref), view_of(mean_ref),
                                    view_of(rstd_ref), view_of(dyd, rows, cols), view_of(xd, rows, cols), view_of(wd));
            auto y = poisoned<T, 2>(rows, cols);
            llm::tensor<T, llm::dims<2>> dx(rows, cols);
            auto mean = poisoned<float, 1>(rows);
            auto rstd = poisoned<float, 1>(rows);
            vec_f dw(cols), db(cols);
            llm::zero_grad(dx, dw, db);
            llm::nn::layernorm_forward<S>(y, mean, rstd, x, w, b, eps_f, pool);
            llm::nn::layernorm_backward<S>(dx, dw, db, mean, rstd, dy, x, w, pool);
            INFO("rows=", rows, " cols=", cols);
            CHECK(rel_error(to_double(y), y_ref) < tolerance<T>);
            // cols = 1: x - mean is 0, the reference dx is exactly 0 and ours is rstd (316)
            // times the rounding of dy * w (FMA contraction keeps it): absolute, ~65 * 3e-5.
            CHECK(rel_error(to_double(dx), dx_ref) < (cols == 1 ? 1e-3 : 4 * tolerance<T>));
            CHECK(rel_error(to_double(dw), dw_ref) < (cols == 1 ? 1e-30 : 1e-4));
            CHECK(rel_error(to_double(db), db_ref) < tol_f32);
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(layernorm_vs_reference, elem_backend_cases);

TEST_CASE_TEMPLATE_DEFINE("weight gradients are bitwise identical with 1 and 2 threads", S, norm_threads) {
    std::mt19937 rng(14);
    const auto x = random_matrix<float>(300, 97, rng);
    const auto dy = random_matrix<float>(300, 97, rng);
    const auto w = random_vector<float>(97, rng);
    vec_f rstd(300), dw1(97), dw2(97);
    mat_f y(300, 97), dx(300, 97);
    llm::zero_grad(dx, dw1, dw2);
    llm::parallel::thread_pool pool(2);
    llm::nn::rmsnorm_forward<S>(y, rstd, x, w, eps_f, llm::parallel::sequential{});
    llm::nn::rmsnorm_backward<S>(dx, dw1, rstd, dy, x, w, llm::parallel::sequential{});
    llm::nn::rmsnorm_backward<S>(dx, dw2, rstd, dy, x, w, pool);
    for (std::size_t j = 0; j < 97; ++j) {
        REQUIRE(dw1(j) == dw2(j));
    }
}
TEST_CASE_TEMPLATE_APPLY(norm_threads, backends);

TEST_CASE("norms reject bad input") {
    mat_f x(2, 4), y(2, 4), y_bad(2, 5), empty(2, 0);
    vec_f w(4), w_bad(3), r(2), r_bad(3), none(0);
    CHECK_THROWS_WITH_AS(llm::nn::rmsnorm_forward(y, r, x, w, 0.0f), "rmsnorm_forward: eps = 0 must be > 0", llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::rmsnorm_forward(y, r, x, w, -1.0f), "rmsnorm_forward: eps = -1 must be > 0", llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::rmsnorm_forward(y, r, x, w_bad, 1e-5f),
                         "rmsnorm_forward: weight has 3 elements but rows have 4 (0 means none)", llm::error);
    CHECK_THROWS_AS(llm::nn::rmsnorm_forward(y_bad, r, x, w, 1e-5f), llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::rmsnorm_forward(y, r_bad, x, w, 1e-5f), "rmsnorm_forward: rstd has 3 elements but x has 2 rows",
                         llm::error);
    CHECK_THROWS_AS(llm::nn::rmsnorm_forward(empty, r, empty, none, 1e-5f), llm::error);
    CHECK_THROWS_AS(llm::nn::layernorm_forward(y, r, r, x, w, none, 0.0f), llm::error);
    CHECK_THROWS_AS(llm::nn::layernorm_backward(y_bad, none, none, r, r, y, x, w), llm::error);
}
