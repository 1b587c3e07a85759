// SPDX-License-Identifier: Apache-2.0
// sequence_logprobs and its backward against the double reference, finite differences, threads, strides,
// accumulation, views of the user's own types, bad input.
#include "../support/numeric.hpp"

#include <llm/align/logprobs.hpp>
#include <llm/align/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/algorithm.hpp>
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
    al::logprob_outputs<Out> views() { return {{sum.data(), B}, {mean.data(), B}, {tokens.data(), B}}; }
    llm::tensor_view<float, dims<2>> lse_view() { return {lse.data(), B, S}; }
    llm::tensor_view<const float, dims<2>> saved_lse() const { return {lse.data(), B, S}; }
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
                    al::sequence_logprobs<S>(o.views(), o.lse_view(), p.x(), p.y(), p.m(), pool);
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
            al::sequence_logprobs<S>(o.views(), o.lse_view(), p.x(), p.y(), p.m(), pool);
            const std::vector<double> d_sum{0.5, -1.25, 2.0}, d_mean{0.3, 0.0, -0.7};
            std::vector<D> d(B * T * V, D(0.0f));
            al::sequence_logprobs_backward<S>(llm::tensor_view<D, dims<3>>(d.data(), B, T, V), o.saved_lse(),
                                              llm::tensor_view<const double, dims<1>>(d_sum.data(), B),
                                              llm::tensor_view<const double, dims<1>>(d_mean.data(), B), p.x(), p.y(),
                                              p.m(), pool);
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
    al::sequence_logprobs(o.views(), o.lse_view(), p.x(), p.y(), p.m(), seq);
    std::vector<float> d(B * T * V, 0.0f);
    al::sequence_logprobs_backward(llm::tensor_view<float, dims<3>>(d.data(), B, T, V), o.saved_lse(),
                                   llm::tensor_view<const double, dims<1>>(d_sum.data(), B),
                                   llm::tensor_view<const double, dims<1>>(d_mean.data(), B), p.x(), p.y(), p.m(), seq);
    CHECK(rel_norm(as_double(d), fd) <= 1e-5);
}

TEST_CASE("sequence_logprobs: thread count does not change the bits; strided slices work") {
    problem<float> p(4, 9, 3001, 11);
    fwd_out<float> a(4, 9), b(4, 9);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    al::sequence_logprobs(a.views(), a.lse_view(), p.x(), p.y(), p.m(), seq);
    al::sequence_logprobs(b.views(), b.lse_view(), p.x(), p.y(), p.m(), pool);
    CHECK(a.sum == b.sum);
    CHECK(a.lse == b.lse);

    // logits[:, :-1] against labels[:, 1:], the usual causal-LM shift, as strided views
    const auto x = llm::slice(p.x(), 1, 0, 8);
    const auto y = llm::slice(p.y(), 1, 1, 9);
    const auto m = llm::slice(p.m(), 1, 1, 9);
    fwd_out<double> s(4, 8);
    al::sequence_logprobs(s.views(), s.lse_view(), x, y, m, pool);
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

    std::vector<float> d(4 * 8 * 3001, 0.0f);
    std::vector<double> g{1, 2, 3, 4};
    al::sequence_logprobs_backward(llm::tensor_view<float, dims<3>>(d.data(), 4, 8, 3001), s.saved_lse(),
                                   llm::tensor_view<const double, dims<1>>(g.data(), 4), {}, x, y, m, pool);
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
    al::sequence_logprobs(o.views(), o.lse_view(), p.x(), p.y(), p.m(), pool);
    const auto r = p.ref();
    for (double s : o.sum) {
        CHECK(std::isfinite(s));
    }
    CHECK(rel_norm(o.sum, r.sum) <= 1e-6);
    std::vector<float> d(p.logits.size(), 0.0f);
    const std::vector<double> g{1.0, -2.0};
    al::sequence_logprobs_backward(llm::tensor_view<float, dims<3>>(d.data(), 2, 3, 262144), o.saved_lse(),
                                   llm::tensor_view<const double, dims<1>>(g.data(), 2), {}, p.x(), p.y(), p.m(), pool);
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
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(o.views(), o.lse_view(), p.x(), p.y(), p.m(), seq),
                             "sequence_logprobs: labels[1, 1] = 10 is outside the vocab [0, 10)", llm::error);
        p.labels[4] = -100;  // ignored where masked out, as Hugging Face's ignore index
        p.mask[4] = 0;
        CHECK_NOTHROW(al::sequence_logprobs(o.views(), o.lse_view(), p.x(), p.y(), p.m(), seq));
    }
    SUBCASE("empty loss mask") {
        p.mask[3] = p.mask[4] = p.mask[5] = 0;
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(o.views(), o.lse_view(), p.x(), p.y(), p.m(), seq),
                             "sequence_logprobs: sequence 1 has no masked-in tokens (empty loss mask)", llm::error);
    }
    SUBCASE("mismatched shapes") {
        const llm::tensor_view<const std::int32_t, dims<2>> y(p.labels.data(), 3, 2);
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(o.views(), o.lse_view(), p.x(), y, p.m(), seq),
                             "sequence_logprobs: labels is (3, 2) but logits is (2, 3, 10)", llm::error);
        auto v = o.views();
        v.sum = {o.sum.data(), 1};
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(v, o.lse_view(), p.x(), p.y(), p.m(), seq),
                             "sequence_logprobs: sum has 1 entries but the batch has 2", llm::error);
        std::vector<float> d(60);
        const std::vector<double> g{1, 1, 1};
        CHECK_THROWS_WITH_AS(
            al::sequence_logprobs_backward(llm::tensor_view<float, dims<3>>(d.data(), 2, 3, 10), o.saved_lse(),
                                           llm::tensor_view<const double, dims<1>>(g.data(), 3), {}, p.x(), p.y(), p.m(), seq),
            "sequence_logprobs_backward: d_sum has 3 entries but the batch has 2", llm::error);
        CHECK_THROWS_WITH_AS(
            al::sequence_logprobs_backward(llm::tensor_view<float, dims<3>>(d.data(), 2, 3, 9), o.saved_lse(),
                                           llm::tensor_view<const double, dims<1>>(g.data(), 2), {}, p.x(), p.y(), p.m(), seq),
            "sequence_logprobs_backward: dlogits is (2, 3, 9) but logits is (2, 3, 10)", llm::error);
    }
    SUBCASE("vocab not contiguous") {
        const auto xt = llm::transpose(p.x(), 1, 2);  // (2, 10, 3), vocab stride 10
        const std::vector<std::int32_t> labels(20, 0);  // a (2, 10) view needs 20 labels; p.labels has 6
        const llm::tensor_view<const std::int32_t, dims<2>> y(labels.data(), 2, 10);
        const std::vector<std::uint8_t> mask(20, 1);
        const llm::tensor_view<const std::uint8_t, dims<2>> m(mask.data(), 2, 10);
        fwd_out<float> o2(2, 10);
        CHECK_THROWS_WITH_AS(al::sequence_logprobs(o2.views(), o2.lse_view(), xt, y, m, seq),
                             "sequence_logprobs: logits must be contiguous along the vocab dim (stride 10)", llm::error);
    }
}

namespace {

// A logits view of the caller's own type: the arguments are structural (llm::view_of_rank), so
// anything with data(), extent(r), stride(r) and a static rank() is taken as it is.
struct my_logits {
    const float* p;
    std::size_t B, S, V;
    static constexpr std::size_t rank() { return 3; }
    const float* data() const { return p; }
    std::size_t extent(std::size_t r) const { return r == 0 ? B : r == 1 ? S : V; }
    std::size_t stride(std::size_t r) const { return r == 0 ? S * V : r == 1 ? V : 1; }
};

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("sequence_logprobs_backward accumulates: two calls on zeroed gradients give 2x one call",
                          S, acc_test) {
    llm::parallel::thread_pool pool(2);
    const std::size_t B = 3, T = 5;
    for (std::size_t V : {7u, 1000u}) {  // 1000: vector body plus a scalar tail on every backend
        CAPTURE(V);
        problem<float> p(B, T, V, 900 + V);
        fwd_out<float> o(B, T);
        al::sequence_logprobs<S>(o.views(), o.lse_view(), p.x(), p.y(), p.m(), pool);
        const std::vector<double> d_sum{0.5, -1.25, 2.0}, d_mean{0.3, 0.0, -0.7};
        const llm::tensor_view<const double, dims<1>> ds(d_sum.data(), B), dm(d_mean.data(), B);
        const auto check_one = [&](auto grad_tag, double tol) {
            using D = decltype(grad_tag);
            llm::tensor<D, dims<3>> once(B, T, V), twice(B, T, V), offset(B, T, V);
            llm::zero_grad(once, twice);
            al::sequence_logprobs_backward<S>(once, o.saved_lse(), ds, dm, p.x(), p.y(), p.m(), pool);
            al::sequence_logprobs_backward<S>(twice, o.saved_lse(), ds, dm, p.x(), p.y(), p.m(), pool);
            al::sequence_logprobs_backward<S>(twice, o.saved_lse(), ds, dm, p.x(), p.y(), p.m(), pool);
            std::vector<double> doubled, got;
            for (std::size_t i = 0; i < once.size(); ++i) {
                doubled.push_back(2.0 * static_cast<double>(static_cast<float>(once.data()[i])));
                got.push_back(static_cast<double>(static_cast<float>(twice.data()[i])));
            }
            CHECK(rel_norm(got, doubled) <= tol);
            // on a gradient that already holds 0.25 everywhere: masked-out rows keep it exactly,
            // the others hold 0.25 + one call (the default-pool overload this time)
            llm::fill(offset, D(0.25f));
            al::sequence_logprobs_backward<S>(offset, o.saved_lse(), ds, dm, p.x(), p.y(), p.m());
            std::vector<double> shifted;
            got.clear();
            bool masked_kept = true;
            for (std::size_t i = 0; i < offset.size(); ++i) {
                const double v = static_cast<double>(static_cast<float>(offset.data()[i]));
                if (p.mask[i / V] == 0) {
                    masked_kept = masked_kept && v == 0.25;
                }
                got.push_back(v);
                shifted.push_back(0.25 + static_cast<double>(static_cast<float>(once.data()[i])));
            }
            CHECK(masked_kept);
            CHECK(rel_norm(got, shifted) <= tol);
        };
        // fp32: the second call rounds (first + exact term) once more, the label entry and the
        // tail add exact copies: <= 1.5 ulp = 1.8e-7 per entry, 4e-7 leaves room. bf16: one
        // more rounding to 8 bits of mantissa, <= 2^-8 = 3.9e-3 relative. A call that
        // overwrote instead of adding would be off by 1/2 (or by 0.25 absolute).
        check_one(float{}, 4e-7);
        check_one(bf16{}, 4e-3);
    }
}
TEST_CASE_TEMPLATE_APPLY(acc_test, backends);

TEST_CASE("sequence_logprobs: any view type with the view_of_rank members, lvalue tensors, a temporary executor") {
    problem<float> p(2, 4, 33, 21);
    fwd_out<double> a(2, 4), b(2, 4);
    al::sequence_logprobs(a.views(), a.lse_view(), p.x(), p.y(), p.m(), llm::parallel::sequential{});
    llm::tensor<std::int32_t, dims<2>> labels(2, 4);
    llm::tensor<std::uint8_t, dims<2>> mask(2, 4);
    for (std::size_t i = 0; i < 8; ++i) {
        labels.data()[i] = p.labels[i];
        mask.data()[i] = p.mask[i];
    }
    const my_logits x{p.logits.data(), 2, 4, 33};
    al::sequence_logprobs(b.views(), b.lse_view(), x, labels, mask, llm::parallel::sequential{});
    CHECK(a.sum == b.sum);
    CHECK(a.lse == b.lse);
    // and with no lse saved (an empty view) on the default pool
    fwd_out<double> c(2, 4);
    al::sequence_logprobs(c.views(), {}, x, labels, mask);
    CHECK(a.sum == c.sum);
}
