// SPDX-License-Identifier: Apache-2.0
// sequence_logprobs and its backward against the double reference, finite differences, threads, strides, bad input.
#include "../support/numeric.hpp"

#include <llm/align/logprobs.hpp>
#include <llm/align/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

namespace al = llm::align;
using llm::bf16;
using llm::dims;

using backends = llm_test::kernel_backends;
using llm_test::rel_norm;

template <class E>
struct problem {
    std::size_t B, S, V;
    std::vector<E> logits;
    std::vector<std::int32_t> labels;
    std::vector<std::uint8_t> mask;

    problem(std::size_t b, std::size_t s, std::size_t v, std::uint64_t seed, float scale = 4.0f)
        : B(b), S(s), V(v), logits(b * s * v), labels(b * s), mask(b * s) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, scale);
        std::uniform_int_distribution<std::int32_t> lab(0, static_cast<std::int32_t>(v - 1));
        for (auto& x : logits) {
            x = E(nd(rng));
        }
        for (std::size_t i = 0; i < B * S; ++i) {
            labels[i] = lab(rng);
            mask[i] = (rng() % 3) != 0;
        }
        for (std::size_t bb = 0; bb < B; ++bb) {
            mask[bb * S + S - 1] = 1;  // every sequence has a response token
        }
    }
    llm::tensor_view<const E, dims<3>> x() const { return {logits.data(), B, S, V}; }
    llm::tensor_view<const std::int32_t, dims<2>> y() const { return {labels.data(), B, S}; }
    llm::tensor_view<const std::uint8_t, dims<2>> m() const { return {mask.data(), B, S}; }
    double get(std::size_t i) const { return static_cast<double>(static_cast<float>(logits[i])); }
    al::reference::logprob_result ref() const {
        return al::reference::sequence_logprobs(B, S, V, [&](std::size_t i) { return get(i); }, labels.data(),
                                                mask.data());
    }
};

template <class Out>
struct fwd_out {
    std::vector<Out> sum, mean;
    std::vector<std::size_t> tokens;
    std::vector<float> lse;
    std::size_t B, S;
    fwd_out(std::size_t b, std::size_t s)
        : sum(b, Out(NAN)), mean(b, Out(NAN)), tokens(b, 12345), lse(b * s, NAN), B(b), S(s) {}
    al::logprob_outputs<Out> views() {
        return {{sum.data(), B}, {mean.data(), B}, {tokens.data(), B}, {lse.data(), B, S}};
    }
};

template <class T>
std::vector<double> as_double(const std::vector<T>& v) {
    std::vector<double> d;
    for (const T& x : v) {
        d.push_back(static_cast<double>(static_cast<float>(x)));
    }
    return d;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("sequence_logprobs matches the double reference (fp32 and bf16 logits)", S, fwd_test) {
    llm::parallel::thread_pool pool(2);
    for (std::size_t V : {1u, 7u, 63u, 65u, 1000u, 2049u, 4097u}) {
        for (std::size_t B : {1u, 3u}) {
            for (std::size_t T : {1u, 7u}) {
                CAPTURE(V);
                CAPTURE(B);
                CAPTURE(T);
                const auto check_one = [&](auto tag) {
                    using E = decltype(tag);
                    problem<E> p(B, T, V, 1000 * V + 10 * B + T);
                    fwd_out<double> o(B, T);
                    al::sequence_logprobs<S>(pool, p.x(), p.y(), p.m(), o.views());
                    const auto r = p.ref();
                    // fast exp (1.5e-7 relative) and float row sums: 1e-6 relative on the sums is
                    // ~20x the expected error and far below any indexing or masking mistake
                    CHECK(rel_norm(o.sum, r.sum) <= 1e-6);
                    CHECK(rel_norm(o.mean, r.mean) <= 1e-6);
                    CHECK(o.tokens == r.tokens);
                    CHECK(rel_norm(as_double(o.lse), r.lse) <= 1e-6);
                };
                check_one(float{});
                check_one(bf16{});
            }
        }
    }
}
TEST_CASE_TEMPLATE_APPLY(fwd_test, backends);

TEST_CASE_TEMPLATE_DEFINE("sequence_logprobs_backward matches the double reference", S, bwd_test) {
    llm::parallel::thread_pool pool(2);
    for (std::size_t V : {1u, 7u, 65u, 1000u, 4097u}) {
        CAPTURE(V);
        const std::size_t B = 3, T = 5;
        const auto check_one = [&](auto logit_tag, auto grad_tag) {
            using E = decltype(logit_tag);
            using D = decltype(grad_tag);
            problem<E> p(B, T, V, 77 + V);
            fwd_out<float> o(B, T);
            al::sequence_logprobs<S>(pool, p.x(), p.y(), p.m(), o.views());
            const std::vector<double> d_sum{0.5, -1.25, 2.0}, d_mean{0.3, 0.0, -0.7};
            std::vector<D> d(B * T * V, D(NAN));
            al::sequence_logprobs_backward<S>(pool, p.x(), p.y(), p.m(),
                                              llm::tensor_view<const float, dims<2>>(o.lse.data(), B, T),
                                              llm::tensor_view<const double, dims<1>>(d_sum.data(), B),
                                              llm::tensor_view<const double, dims<1>>(d_mean.data(), B),
                                              llm::tensor_view<D, dims<3>>(d.data(), B, T, V));
            const auto ref = al::reference::sequence_logprobs_backward(
                B, T, V, [&](std::size_t i) { return p.get(i); }, p.labels.data(), p.mask.data(), d_sum, d_mean);
            // fp32 gradients: float lse and fast exp, ~1e-6; bf16 storage rounds each value to
            // 8 bits of mantissa, relative error <= 2^-9
            CHECK(rel_norm(as_double(d), ref) <= (std::is_same_v<D, float> ? 1e-5 : 4e-3));
            for (std::size_t row = 0; row < B * T; ++row) {
                if (p.mask[row] == 0) {
                    bool zero = true;
                    for (std::size_t v = 0; v < V; ++v) {
                        zero = zero && static_cast<float>(d[row * V + v]) == 0.0f;
                    }
                    CHECK(zero);
                }
            }
        };
        check_one(float{}, float{});
        check_one(bf16{}, bf16{});
        check_one(bf16{}, float{});
    }
}
TEST_CASE_TEMPLATE_APPLY(bwd_test, backends);

TEST_CASE("sequence_logprobs: the reference gradient matches central finite differences in double") {
    const std::size_t B = 2, T = 3, V = 9;
    problem<float> p(B, T, V, 5);
    std::vector<double> x(p.logits.begin(), p.logits.end());
    const std::vector<double> d_sum{0.7, -1.1}, d_mean{-0.4, 0.9};
    const auto objective = [&](const std::vector<double>& at) {
        const auto r = al::reference::sequence_logprobs(B, T, V, [&](std::size_t i) { return at[i]; },
                                                        p.labels.data(), p.mask.data());
        double f = 0;
        for (std::size_t b = 0; b < B; ++b) {
            f += d_sum[b] * r.sum[b] + d_mean[b] * r.mean[b];
        }
        return f;
    };
    const auto ref = al::reference::sequence_logprobs_backward(
        B, T, V, [&](std::size_t i) { return x[i]; }, p.labels.data(), p.mask.data(), d_sum, d_mean);
    const std::vector<double> fd = llm_test::finite_difference(objective, x);
    CHECK(rel_norm(ref, fd) <= 1e-7);

    // and the kernel (fp32 logits, so the reference is evaluated on the same float values)
    fwd_out<float> o(B, T);
    llm::parallel::sequential seq;
    al::sequence_logprobs(seq, p.x(), p.y(), p.m(), o.views());
    std::vector<float> d(B * T * V, NAN);
    al::sequence_logprobs_backward(seq, p.x(), p.y(), p.m(), llm::tensor_view<const float, dims<2>>(o.lse.data(), B, T),
                                   llm::tensor_view<const double, dims<1>>(d_sum.data(), B),
                                   llm::tensor_view<const double, dims<1>>(d_mean.data(), B),
                                   llm::tensor_view<float, dims<3>>(d.data(), B, T, V));
    CHECK(rel_norm(as_double(d), fd) <= 1e-5);
}

TEST_CASE("sequence_logprobs: thread count does not change the bits; strided slices work") {
    problem<float> p(4, 9, 3001, 11);
    fwd_out<float> a(4, 9), b(4, 9);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    al::sequence_logprobs(seq, p.x(), p.y(), p.m(), a.views());
    al::sequence_logprobs(pool, p.x(), p.y(), p.m(), b.views());
    CHECK(a.sum == b.sum);
    CHECK(a.lse == b.lse);

    // logits[:, :-1] against labels[:, 1:], the usual causal-LM shift, as strided views
    const auto x = llm::slice(p.x(), 1, 0, 8);
    const auto y = llm::slice(p.y(), 1, 1, 9);
    const auto m = llm::slice(p.m(), 1, 1, 9);
    fwd_out<double> s(4, 8);
    al::sequence_logprobs(pool, x, y, m, s.views());
    std::vector<float> packed;
    std::vector<std::int32_t> labels;
    std::vector<std::uint8_t> mask;
    for (std::size_t bb = 0; bb < 4; ++bb) {
        for (std::size_t t = 0; t < 8; ++t) {
            for (std::size_t v = 0; v < 3001; ++v) {
                packed.push_back(x(bb, t, v));
            }
            labels.push_back(y(bb, t));
            mask.push_back(m(bb, t));
        }
    }
    const auto r = al::reference::sequence_logprobs(4, 8, 3001, [&](std::size_t i) { return double(packed[i]); },
                                                    labels.data(), mask.data());
    CHECK(rel_norm(s.sum, r.sum) <= 1e-6);

    std::vector<float> d(4 * 8 * 3001, NAN);
    std::vector<double> g{1, 2, 3, 4};
    al::sequence_logprobs_backward(pool, x, y, m, llm::tensor_view<const float, dims<2>>(s.lse.data(), 4, 8),
                                   llm::tensor_view<const double, dims<1>>(g.data(), 4),
                                   llm::tensor_view<const double, dims<1>>(), llm::tensor_view<float, dims<3>>(d.data(), 4, 8, 3001));
    const auto rd = al::reference::sequence_logprobs_backward(
        4, 8, 3001, [&](std::size_t i) { return double(packed[i]); }, labels.data(), mask.data(), g, {});
    CHECK(rel_norm(as_double(d), rd) <= 1e-5);
}

TEST_CASE("sequence_logprobs: extreme logits stay finite; 256k vocab") {
    problem<float> p(2, 3, 262144, 3, 1.0f);
    // a few huge and tiny logits, including at the labels
    p.logits[5] = 1e4f;
    p.logits[262144 + 17] = -1e4f;
    p.logits[static_cast<std::size_t>(p.labels[0])] = -1e4f;
    for (std::size_t i = 0; i < 6; ++i) {
        p.mask[i] = 1;
    }
    fwd_out<double> o(2, 3);
    llm::parallel::thread_pool pool(2);
    al::sequence_logprobs(pool, p.x(), p.y(), p.m(), o.views());
    const auto r = p.ref();
    for (double s : o.sum) {
        CHECK(std::isfinite(s));
    }
    CHECK(rel_norm(o.sum, r.sum) <= 1e-6);
    std::vector<float> d(p.logits.size(), NAN);
    const std::vector<double> g{1.0, -2.0};
    al::sequence_logprobs_backward(pool, p.x(), p.y(), p.m(), llm::tensor_view<const float, dims<2>>(o.lse.data(), 2, 3),
                                   llm::tensor_view<const double, dims<1>>(g.data(), 2),
                                   llm::tensor_view<const double, dims<1>>(), llm::tensor_view<float, dims<3>>(d.data(), 2, 3, 262144));
    bool finite = true;
    for (float v : d) {
        finite = finite && std::isfinite(v);
    }
    CHECK(finite);
}

TEST_CASE("sequence_logprobs: bad input raises llm::error naming the argument") {
    problem<float> p(2, 3, 10, 1);
    fwd_out<float> o(2, 3);
    llm::parallel::sequential seq;
    SUBCASE("label out of range") {
        p.labels[4] = 10;
        p.mask[4] = 1;
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(seq, p.x(), p.y(), p.m(), o.views()),
                             "sequence_logprobs: labels[1, 1] = 10 is outside the vocab [0, 10)", llm::error);
        p.labels[4] = -100;  // ignored where masked out, as Hugging Face's ignore index
        p.mask[4] = 0;
        CHECK_NOTHROW(al::sequence_logprobs(seq, p.x(), p.y(), p.m(), o.views()));
    }
    SUBCASE("empty loss mask") {
        p.mask[3] = p.mask[4] = p.mask[5] = 0;
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(seq, p.x(), p.y(), p.m(), o.views()),
                             "sequence_logprobs: sequence 1 has no masked-in tokens (empty loss mask)", llm::error);
    }
    SUBCASE("mismatched shapes") {
        const llm::tensor_view<const std::int32_t, dims<2>> y(p.labels.data(), 3, 2);
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(seq, p.x(), y, p.m(), o.views()),
                             "sequence_logprobs: labels is (3, 2) but logits is (2, 3, 10)", llm::error);
        auto v = o.views();
        v.sum = {o.sum.data(), 1};
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(seq, p.x(), p.y(), p.m(), v),
                             "sequence_logprobs: sum has 1 entries but the batch has 2", llm::error);
        std::vector<float> d(60);
        const std::vector<double> g{1, 1, 1};
        CHECK_THROWS_WITH_AS(
            al::sequence_logprobs_backward(seq, p.x(), p.y(), p.m(), llm::tensor_view<const float, dims<2>>(o.lse.data(), 2, 3),
                                           llm::tensor_view<const double, dims<1>>(g.data(), 3),
                                           llm::tensor_view<const double, dims<1>>(), llm::tensor_view<float, dims<3>>(d.data(), 2, 3, 10)),
            "sequence_logprobs_backward: d_sum has 3 entries but the batch has 2", llm::error);
        CHECK_THROWS_WITH_AS(
            al::sequence_logprobs_backward(seq, p.x(), p.y(), p.m(), llm::tensor_view<const float, dims<2>>(o.lse.data(), 2, 3),
                                           llm::tensor_view<const double, dims<1>>(g.data(), 2),
                                           llm::tensor_view<const double, dims<1>>(), llm::tensor_view<float, dims<3>>(d.data(), 2, 3, 9)),
            "sequence_logprobs_backward: dlogits is (2, 3, 9) but logits is (2, 3, 10)", llm::error);
    }
    SUBCASE("vocab not contiguous") {
        const auto xt = llm::transpose(p.x(), 1, 2);  // (2, 10, 3), vocab stride 10
        const std::vector<std::int32_t> labels(20, 0);  // a (2, 10) view needs 20 labels; p.labels has 6
        const llm::tensor_view<const std::int32_t, dims<2>> y(labels.data(), 2, 10);
        const std::vector<std::uint8_t> mask(20, 1);
        const llm::tensor_view<const std::uint8_t, dims<2>> m(mask.data(), 2, 10);
        fwd_out<float> o2(2, 10);
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(seq, xt, y, m, o2.views()),
                             "sequence_logprobs: logits must be contiguous along the vocab dim (stride 10)", llm::error);
    }
}
