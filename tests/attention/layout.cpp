// SPDX-License-Identifier: Apache-2.0
// The canonical activation layout: attention runs on [batch, seq, heads, head_dim] views of
// [tokens, heads * head_dim] activations (what a linear layer writes), reshaped without a copy.
#include "helpers.hpp"

#include <llm/attention/attention.hpp>
#include <llm/attention/reference.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <random>

namespace {

namespace at = llm::attention;
using namespace attn_test;

using t2f = llm::tensor<float, llm::dims<2>>;

/// A [rows, cols] activation filled with N(0, 1) values, as a projection would output it.
t2f random_activation(std::size_t rows, std::size_t cols, std::uint64_t seed) {
    t2f t(rows, cols);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = nd(rng);
    }
    return t;
}

TEST_CASE("attention runs on [batch, seq, heads, head_dim] views of [tokens, heads * head_dim] activations") {
    // GQA (4 query heads share 2 kv heads), a length that is not a tile multiple, causal.
    constexpr std::size_t B = 2, S = 37, H = 4, Hk = 2, D = 24, tokens = B * S;
    // q = x Wq, k = x Wk, v = x Wv: token-wise ops produce [tokens, features].
    const t2f q2 = random_activation(tokens, H * D, 11);
    const t2f k2 = random_activation(tokens, Hk * D, 12);
    const t2f v2 = random_activation(tokens, Hk * D, 13);
    t2f o2(tokens, H * D);
    poison(o2);  // every element must be written through the view

    // The attention layout is a view: same elements, same pointer, no copy.
    const auto q = llm::reshape(q2, llm::dims<4>(B, S, H, D));
    const auto k = llm::reshape(k2, llm::dims<4>(B, S, Hk, D));
    const auto v = llm::reshape(v2, llm::dims<4>(B, S, Hk, D));
    auto o = llm::reshape(o2, llm::dims<4>(B, S, H, D));
    CHECK(q.data() == q2.data());
    CHECK(k.data() == k2.data());
    CHECK(v.data() == v2.data());
    CHECK(o.data() == o2.data());
    CHECK(q.extent(0) == B);
    CHECK(q.extent(1) == S);
    CHECK(q.extent(2) == H);
    CHECK(q.extent(3) == D);
    // token t = b * S + s, head h, column d sits at row t, column h * D + d of the activation
    CHECK(&q(1, 5, 3, 7) == &q2(1 * S + 5, 3 * D + 7));
    CHECK(&k(0, 36, 1, 0) == &k2(36, 1 * D));

    t3f lse(B, H, S);
    llm::parallel::thread_pool pool(2);
    at::flash_forward(o, lse, q, k, v, at::causal{}, {}, pool);

    t4d o_ref(B, S, H, D);
    t3d lse_ref(B, H, S);
    at::reference_forward(o_ref, lse_ref, q, k, v, at::causal{});
    // o2 holds the result in [tokens, heads * head_dim] order, which is o_ref's element order.
    // Tolerance as in flash.cpp: fp32 products and sums of <= 37 terms and a fast exp
    // (rel. error 1e-7) against double stay far below 2e-5 in relative norm; lse is an
    // absolute error of log(sum) with terms <= 1, so 1e-4 is generous.
    CHECK(rel_norm(o2, o_ref) < 2e-5);
    CHECK(max_abs_diff(lse, lse_ref) < 1e-4);
}

}  // namespace
