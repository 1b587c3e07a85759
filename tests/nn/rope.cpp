// SPDX-License-Identifier: Apache-2.0
// Tests of rotary embeddings: both pair layouts and all scalings vs the double reference, finite differences, errors.
#include "helpers.hpp"

#include <llm/nn/reference.hpp>
#include <llm/nn/rope.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <cstdint>

using namespace nn_test;
namespace ref = llm::nn::reference;
namespace nn = llm::nn;

namespace {
template <class T>
using mat3 = llm::tensor<T, llm::dims<3>>;

template <class T>
mat3<T> random_3d(std::size_t a, std::size_t b, std::size_t c, std::mt19937& rng) {
    mat3<T> t(a, b, c);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    for (std::size_t i = 0; i < a; ++i) {
        for (std::size_t j = 0; j < b; ++j) {
            for (std::size_t k = 0; k < c; ++k) {
                t(i, j, k) = T(dist(rng));
            }
        }
    }
    return t;
}

template <class Style, class T, class S, class Scaling>
void check_rope(std::size_t tokens, std::size_t heads, std::size_t dim, const nn::rope_params<Scaling>& p, std::mt19937& rng) {
    llm::parallel::thread_pool pool(2);
    const auto x = random_3d<T>(tokens, heads, dim, rng);
    llm::tensor<std::int64_t, llm::dims<1>> pos(tokens);
    std::uniform_int_distribution<std::int64_t> pd(0, 131071);  // up to a 128K context
    for (std::size_t t = 0; t < tokens; ++t) {
        pos(t) = t == 0 ? 0 : pd(rng);
    }
    const auto xd = to_double(x);
    const auto inv = nn::rope_inverse_frequencies("test", dim, p);
    std::vector<double> y_ref(xd.size()), back_ref(xd.size());
    ref::rope_apply<Style>(view_of(y_ref, tokens, heads, dim), view_of(xd, tokens, heads, dim), view_of(pos), inv, 1.0);
    ref::rope_apply<Style>(view_of(back_ref, tokens, heads, dim), view_of(xd, tokens, heads, dim), view_of(pos), inv, -1.0);
    auto y = poisoned<T, 3>(tokens, heads, dim);
    nn::rope_forward<Style, S>(y, x, pos, p, pool);
    INFO("tokens=", tokens, " heads=", heads, " dim=", dim);
    CHECK(rel_error(to_double(y), y_ref) < tolerance<T>);
    mat3<T> back(tokens, heads, dim);
    llm::zero_grad(back);  // the backward accumulates
    nn::rope_backward<Style, S>(back, x, pos, p, pool);
    CHECK(rel_error(to_double(back), back_ref) < tolerance<T>);
    // Forward in place, and backward undoes it.
    auto z = x;
    nn::rope_forward<Style, S>(z, z, pos, p, pool);
    mat3<T> undone(tokens, heads, dim);
    llm::zero_grad(undone);
    nn::rope_backward<Style, S>(undone, z, pos, p, pool);
    CHECK(rel_error(to_double(undone), xd) < 2 * tolerance<T>);
}
}  // namespace

TEST_CASE("rope reference backward (inverse rotation) matches finite differences") {
    std::mt19937 rng(41);
    const std::size_t tokens = 3, heads = 2, dim = 6;
    const auto x = random_doubles(tokens * heads * dim, rng);
    const auto w = random_doubles(x.size(), rng);
    const std::vector<std::int64_t> pos = {0, 5, 1000};
    const auto inv = nn::rope_inverse_frequencies("test", dim, nn::rope_params<>{});
    auto loss = [&](const std::vector<double>& xv) {
        std::vector<double> y(xv.size());
        ref::rope_apply<nn::rope_interleaved>(view_of(y, tokens, heads, dim), view_of(xv, tokens, heads, dim), view_of(pos),
                                              inv, 1.0);
        return dot(w, y);
    };
    std::vector<double> g(x.size());
    ref::rope_apply<nn::rope_interleaved>(view_of(g, tokens, heads, dim), view_of(w, tokens, heads, dim), view_of(pos), inv,
                                          -1.0);
    CHECK(rel_error(g, finite_difference(loss, x)) < tol_fd);
}

TEST_CASE_TEMPLATE_DEFINE("rope matches the reference for both layouts and every scaling", C, rope_vs_reference) {
    using T = typename C::elem;
    using S = typename C::simd;
    std::mt19937 rng(42);
    for (std::size_t dim : {2, 6, 64, 66, 128}) {
        check_rope<nn::rope_rotate_half, T, S>(9, 3, dim, nn::rope_params<>{}, rng);
        check_rope<nn::rope_interleaved, T, S>(9, 3, dim, nn::rope_params<>{}, rng);
    }
    check_rope<nn::rope_rotate_half, T, S>(17, 4, 128, nn::rope_params<nn::rope_scaling::linear>{.theta = 1e4, .scaling = {4.0}}, rng);
    check_rope<nn::rope_rotate_half, T, S>(17, 4, 128, nn::rope_params<nn::rope_scaling::llama3>{.theta = 5e5}, rng);
    check_rope<nn::rope_interleaved, T, S>(5, 1, 64, nn::rope_params<nn::rope_scaling::llama3>{.theta = 5e5}, rng);
}
TEST_CASE_TEMPLATE_APPLY(rope_vs_reference, elem_backend_cases);

TEST_CASE("rope frequency scalings") {
    const auto plain = nn::rope_inverse_frequencies("test", 128, nn::rope_params<>{.theta = 5e5});
    const auto lin = nn::rope_inverse_frequencies("test", 128, nn::rope_params<nn::rope_scaling::linear>{.theta = 5e5, .scaling = {2.0}});
    const auto l3 = nn::rope_inverse_frequencies("test", 128, nn::rope_params<nn::rope_scaling::llama3>{.theta = 5e5});
    CHECK(plain[0] == 1.0);
    CHECK(lin[10] == doctest::Approx(plain[10] / 2.0));
    // Llama 3: short wavelengths (high frequencies) kept, long ones divided by 8.
    CHECK(l3[0] == plain[0]);
    CHECK(l3[63] == doctest::Approx(plain[63] / 8.0));
}

TEST_CASE("rope rejects bad input") {
    mat3<float> x(2, 1, 4), odd(2, 1, 5), y_bad(3, 1, 4);
    llm::tensor<std::int32_t, llm::dims<1>> pos(2), pos_bad(3);
    CHECK_THROWS_WITH_AS(nn::rope_forward(odd, odd, pos), "rope_forward: head_dim = 5 must be even and > 0", llm::error);
    CHECK_THROWS_AS(nn::rope_forward(x, x, pos_bad), llm::error);
    CHECK_THROWS_AS(nn::rope_forward(y_bad, x, pos), llm::error);
    CHECK_THROWS_WITH_AS(nn::rope_forward(x, x, pos, nn::rope_params<>{.theta = 1.0}), "rope_forward: theta = 1 must be > 1",
                         llm::error);
}
