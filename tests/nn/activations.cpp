// SPDX-License-Identifier: Apache-2.0
// Tests of SiLU, GELU (erf, tanh), SwiGLU and the residual add: fast kernels vs the double reference, finite differences.
#include "helpers.hpp"

#include <llm/nn/activations.hpp>
#include <llm/nn/reference.hpp>
#include <llm/nn/residual.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

using namespace nn_test;
namespace ref = llm::nn::reference;

TEST_CASE("activation reference derivatives match finite differences") {
    std::mt19937 rng(21);
    const auto x = random_doubles(40, rng, -6.0, 6.0);
    struct fn_pair {
        double (*f)(double);
        double (*df)(double);
    };
    for (const fn_pair& p : {fn_pair{ref::silu, ref::silu_grad}, fn_pair{ref::gelu_erf, ref::gelu_erf_grad},
                             fn_pair{ref::gelu_tanh, ref::gelu_tanh_grad}}) {
        std::vector<double> analytic;
        for (double v : x) {
            analytic.push_back(p.df(v));
        }
        auto loss = [&](const std::vector<double>& xv) {
            double s = 0.0;
            for (double v : xv) {
                s += p.f(v);
            }
            return s;
        };
        CHECK(rel_error(analytic, finite_difference(loss, x)) < tol_fd);
    }
}

namespace {

// Checks y = f(x) and dx = dy * f'(x) for a fast forward/backward pair against the reference.
template <class T, class Fwd, class Bwd>
void check_unary(Fwd fwd, Bwd bwd, double (*f)(double), double (*df)(double)) {
    std::mt19937 rng(22);
    llm::parallel::thread_pool pool(2);
    for (std::size_t rows : awkward_rows) {
        for (std::size_t cols : awkward_cols) {
            // [-12, 12] reaches the saturated tails where exp over/underflows inside sigmoid/tanh.
            const auto x = random_matrix<T>(rows, cols, rng, -12.0f, 12.0f);
            const auto dy = random_matrix<T>(rows, cols, rng);
            const auto xd = to_double(x), dyd = to_double(dy);
            std::vector<double> y_ref, dx_ref;
            for (std::size_t i = 0; i < xd.size(); ++i) {
                y_ref.push_back(f(xd[i]));
                dx_ref.push_back(dyd[i] * df(xd[i]));
            }
            auto y = poisoned<T, 2>(rows, cols);
            llm::tensor<T, llm::dims<2>> dx(rows, cols);
            llm::zero_grad(dx);  // the backward accumulates
            fwd(y, x, pool);
            bwd(dx, dy, x, pool);
            INFO("rows=", rows, " cols=", cols);
            CHECK(rel_error_scaled(to_double(y), y_ref, xd) < tolerance<T>);
            CHECK(rel_error_scaled(to_double(dx), dx_ref, dyd) < tolerance<T>);
        }
    }
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("silu and gelu match the reference on awkward sizes", C, unary_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    using llm::parallel::thread_pool;
    SUBCASE("silu") {
        check_unary<T>([](auto& y, const auto& x, thread_pool& p) { llm::nn::silu_forward<S>(y, x, p); },
                       [](auto& dx, const auto& dy, const auto& x, thread_pool& p) { llm::nn::silu_backward<S>(dx, dy, x, p); },
                       ref::silu, ref::silu_grad);
    }
    SUBCASE("gelu erf") {
        check_unary<T>([](auto& y, const auto& x, thread_pool& p) { llm::nn::gelu_forward<llm::nn::gelu_erf, S>(y, x, p); },
                       [](auto& dx, const auto& dy, const auto& x, thread_pool& p) {
                           llm::nn::gelu_backward<llm::nn::gelu_erf, S>(dx, dy, x, p);
                       },
                       ref::gelu_erf, ref::gelu_erf_grad);
    }
    SUBCASE("gelu tanh") {
        check_unary<T>([](auto& y, const auto& x, thread_pool& p) { llm::nn::gelu_forward<llm::nn::gelu_tanh, S>(y, x, p); },
                       [](auto& dx, const auto& dy, const auto& x, thread_pool& p) {
                           llm::nn::gelu_backward<llm::nn::gelu_tanh, S>(dx, dy, x, p);
                       },
                       ref::gelu_tanh, ref::gelu_tanh_grad);
    }
}
TEST_CASE_TEMPLATE_APPLY(unary_vs_reference, elem_backend_cases);

TEST_CASE_TEMPLATE_DEFINE("swiglu and residual add match the reference", C, swiglu_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    std::mt19937 rng(23);
    llm::parallel::thread_pool pool(2);
    for (std::size_t cols : awkward_cols) {
        const std::size_t rows = 7;
        const auto g = random_matrix<T>(rows, cols, rng, -8.0f, 8.0f);
        const auto u = random_matrix<T>(rows, cols, rng);
        const auto dy = random_matrix<T>(rows, cols, rng);
        const auto gd = to_double(g), ud = to_double(u), dyd = to_double(dy);
        std::vector<double> y_ref, dg_ref, du_ref, sum_ref;
        for (std::size_t i = 0; i < gd.size(); ++i) {
            y_ref.push_back(ref::silu(gd[i]) * ud[i]);
            dg_ref.push_back(dyd[i] * ud[i] * ref::silu_grad(gd[i]));
            du_ref.push_back(dyd[i] * ref::silu(gd[i]));
            sum_ref.push_back(gd[i] + ud[i]);
        }
        auto y = poisoned<T, 2>(rows, cols);
        llm::tensor<T, llm::dims<2>> dg(rows, cols), du(rows, cols);
        llm::zero_grad(dg, du);
        llm::nn::swiglu_forward<S>(y, g, u, pool);
        llm::nn::swiglu_backward<S>(dg, du, dy, g, u, pool);
        INFO("cols=", cols);
        CHECK(rel_error(to_double(y), y_ref) < tolerance<T>);
        CHECK(rel_error(to_double(dg), dg_ref) < tolerance<T>);
        CHECK(rel_error(to_double(du), du_ref) < tolerance<T>);
        auto s = poisoned<T, 2>(rows, cols);
        llm::nn::residual_add<S>(s, g, u, pool);
        CHECK(rel_error(to_double(s), sum_ref) < tolerance<T>);
        // Backward accumulates: from dx = g, dr = u, adding dy gives g + dy and u + dy.
        llm::tensor<T, llm::dims<2>> dx(g), dr(u);
        llm::nn::residual_add_backward<S>(dx, dr, dy, pool);
        std::vector<double> dx_ref, dr_ref;
        for (std::size_t i = 0; i < gd.size(); ++i) {
            dx_ref.push_back(gd[i] + dyd[i]);
            dr_ref.push_back(ud[i] + dyd[i]);
        }
        CHECK(rel_error(to_double(dx), dx_ref) < tolerance<T>);
        CHECK(rel_error(to_double(dr), dr_ref) < tolerance<T>);
    }
}
TEST_CASE_TEMPLATE_APPLY(swiglu_vs_reference, elem_backend_cases);

TEST_CASE("activations reject mismatched shapes") {
    mat_f a(3, 4), b(3, 5), empty(0, 3);
    CHECK_THROWS_WITH_AS(llm::nn::silu_forward(b, a), "silu_forward: an input is 3 x 4 but output is 3 x 5", llm::error);
    CHECK_THROWS_AS(llm::nn::gelu_backward(b, a, a), llm::error);
    CHECK_THROWS_AS(llm::nn::swiglu_forward(a, a, b), llm::error);
    CHECK_THROWS_AS(llm::nn::residual_add(b, a, a), llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::silu_forward(empty, empty), "silu_forward: input is 0 x 3; both dimensions must be > 0",
                         llm::error);
}
