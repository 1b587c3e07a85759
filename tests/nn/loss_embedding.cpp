// SPDX-License-Identifier: Apache-2.0
// Tests of the fused cross-entropy and the embedding lookup/scatter-add: vs the double reference, finite differences, errors.
#include "helpers.hpp"

#include <llm/nn/cross_entropy.hpp>
#include <llm/nn/embedding.hpp>
#include <llm/nn/reference.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <cstdint>

using namespace nn_test;
namespace ref = llm::nn::reference;
using llm::nn::cross_entropy_options;
using llm::nn::reduction;

namespace {
using ids_t = llm::tensor<std::int64_t, llm::dims<1>>;

ids_t random_targets(std::size_t n, std::size_t vocab, std::mt19937& rng, std::int64_t ignore_index, double p_ignore) {
    ids_t t(n);
    std::uniform_int_distribution<std::int64_t> dist(0, static_cast<std::int64_t>(vocab) - 1);
    std::bernoulli_distribution ignore(p_ignore);
    for (std::size_t i = 0; i < n; ++i) {
        t(i) = ignore(rng) ? ignore_index : dist(rng);
    }
    t(0) = dist(rng);  // at least one counted row
    return t;
}
}  // namespace

TEST_CASE("cross-entropy reference backward matches finite differences") {
    std::mt19937 rng(31);
    const std::size_t rows = 4, vocab = 9;
    const auto x = random_doubles(rows * vocab, rng, -4.0, 4.0);
    const std::vector<std::int64_t> t = {3, -100, 0, 8};
    for (float smoothing : {0.0f, 0.2f}) {
        for (reduction red : {reduction::mean, reduction::sum}) {
            const cross_entropy_options o{.ignore_index = -100, .label_smoothing = smoothing, .red = red};
            std::vector<double> d(x.size());
            ref::cross_entropy_backward(view_of(d, rows, vocab), 1.0, view_of(x, rows, vocab), view_of(t), o);
            auto loss = [&](const std::vector<double>& xv) {
                return ref::cross_entropy_forward(view_of(xv, rows, vocab), view_of(t), o);
            };
            CHECK(rel_error(d, finite_difference(loss, x)) < tol_fd);
        }
    }
}

TEST_CASE_TEMPLATE_DEFINE("cross-entropy matches the reference on awkward sizes and options", C, ce_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    std::mt19937 rng(32);
    llm::parallel::thread_pool pool(2);
    for (std::size_t rows : awkward_rows) {
        for (std::size_t vocab : {std::size_t{1}, std::size_t{7}, std::size_t{65}, std::size_t{1000}, std::size_t{3001}}) {
            for (const cross_entropy_options o : {cross_entropy_options{}, cross_entropy_options{7, 0.1f, reduction::sum}}) {
                // Logits up to +-40 (exp overflows fp32 without the max shift).
                const auto x = random_matrix<T>(rows, vocab, rng, -40.0f, 40.0f);
                const auto t = random_targets(rows, vocab, rng, o.ignore_index, 0.3);
                const auto xd = to_double(x);
                const double loss_ref = ref::cross_entropy_forward(view_of(xd, rows, vocab), view_of(t), o);
                std::vector<double> d_ref(xd.size());
                ref::cross_entropy_backward(view_of(d_ref, rows, vocab), 0.5, view_of(xd, rows, vocab), view_of(t), o);
                auto lse = poisoned<float, 1>(rows);
                llm::tensor<T, llm::dims<2>> d(rows, vocab);
                llm::zero_grad(d);  // the backward accumulates
                const float loss = llm::nn::cross_entropy_forward<S>(lse, x, t, o, pool);
                llm::nn::cross_entropy_backward<S>(d, lse, 0.5f, x, t, o, pool);
                INFO("rows=", rows, " vocab=", vocab, " smoothing=", o.label_smoothing);
                // The loss sums lse - x_t: fp32 lse of logits up to 40 is good to ~4e-6 absolute.
                CHECK(std::abs(loss - loss_ref) <= 1e-5 * (std::abs(loss_ref) + 1.0) * static_cast<double>(rows));
                CHECK(rel_error(to_double(d), d_ref) < 2 * tolerance<T>);
            }
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(ce_vs_reference, elem_backend_cases);

TEST_CASE("cross-entropy rejects bad targets and options") {
    mat_f x(3, 5);
    llm::fill(x, 0.0f);
    vec_f lse(3);
    ids_t t(3);
    t(0) = 1;
    t(1) = 5;
    t(2) = -100;
    CHECK_THROWS_WITH_AS(llm::nn::cross_entropy_forward(lse, x, t),
                         "cross_entropy_forward: targets[1] = 5 is outside [0, 5) and is not ignore_index (-100)", llm::error);
    t(1) = -1;
    CHECK_THROWS_AS(llm::nn::cross_entropy_forward(lse, x, t), llm::error);
    t(0) = t(1) = -100;
    CHECK_THROWS_WITH_AS(llm::nn::cross_entropy_forward(lse, x, t),
                         "cross_entropy_forward: all 3 targets equal ignore_index (-100), so the mean loss is undefined (use "
                         "reduction::sum for 0)",
                         llm::error);
    CHECK(llm::nn::cross_entropy_forward(lse, x, t, {.red = reduction::sum}) == 0.0f);
    t(0) = 2;
    CHECK_THROWS_AS(llm::nn::cross_entropy_forward(lse, x, t, {.label_smoothing = 1.5f}), llm::error);
    CHECK_THROWS_AS(llm::nn::cross_entropy_forward(lse, x, t, {.label_smoothing = -0.1f}), llm::error);
    vec_f lse_bad(2);
    CHECK_THROWS_AS(llm::nn::cross_entropy_forward(lse_bad, x, t), llm::error);
    ids_t t_bad(4);
    CHECK_THROWS_AS(llm::nn::cross_entropy_forward(lse, x, t_bad), llm::error);
    // Uniform logits: the loss is log(5) exactly in the reference, ~1e-7 away here.
    CHECK(llm::nn::cross_entropy_forward(lse, x, t) == doctest::Approx(std::log(5.0)).epsilon(1e-6));
}

TEST_CASE_TEMPLATE_DEFINE("embedding forward and deterministic backward match the reference", C, embedding_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    std::mt19937 rng(33);
    llm::parallel::thread_pool pool(2);
    llm::parallel::sequential seq;
    for (std::size_t dim : awkward_cols) {
        const std::size_t vocab = 11, n = 50;  // 50 tokens over 11 ids: many repeats
        const auto table = random_matrix<T>(vocab, dim, rng);
        const auto dout = random_matrix<T>(n, dim, rng);
        const auto ids = random_targets(n, vocab, rng, 0, 0.0);
        const auto td = to_double(table), dd = to_double(dout);
        std::vector<double> out_ref(n * dim), dt_ref(vocab * dim, 0.0);
        ref::embedding_forward(view_of(out_ref, n, dim), view_of(ids), view_of(td, vocab, dim));
        ref::embedding_backward(view_of(dt_ref, vocab, dim), view_of(dd, n, dim), view_of(ids));
        auto out = poisoned<T, 2>(n, dim);
        mat_f dt1(vocab, dim), dt2(vocab, dim);
        llm::zero_grad(dt1, dt2);
        llm::nn::embedding_forward<S>(out, ids, table, pool);
        llm::nn::embedding_backward<S>(dt1, dout, ids, seq);
        llm::nn::embedding_backward<S>(dt2, dout, ids, pool);
        INFO("dim=", dim);
        CHECK(rel_error(to_double(out), out_ref) == 0.0);  // a copy: exact
        CHECK(rel_error(to_double(dt1), dt_ref) < tol_f32);
        CHECK(to_double(dt1) == to_double(dt2));  // bitwise, whatever the thread count
    }
}
TEST_CASE_TEMPLATE_APPLY(embedding_vs_reference, elem_backend_cases);

TEST_CASE("embedding rejects out-of-range ids and shapes") {
    mat_f table(4, 3), out(2, 3), out_bad(2, 4);
    llm::tensor<std::int32_t, llm::dims<1>> ids(2);
    ids(0) = 1;
    ids(1) = 4;
    CHECK_THROWS_WITH_AS(llm::nn::embedding_forward(out, ids, table), "embedding_forward: ids[1] = 4 is out of range [0, 4)",
                         llm::error);
    ids(1) = -2;
    CHECK_THROWS_AS(llm::nn::embedding_backward(table, out, ids), llm::error);
    ids(1) = 0;
    CHECK_THROWS_AS(llm::nn::embedding_forward(out_bad, ids, table), llm::error);
}
