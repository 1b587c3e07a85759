// SPDX-License-Identifier: Apache-2.0
// Tests of <llm/simd/math.hpp> on every compiled backend: exp, tanh, sigmoid, erf and the row reductions against std:: in double.
#include "../support/numeric.hpp"

#include <llm/core/bf16.hpp>
#include <llm/simd/math.hpp>
#include <llm/simd/simd.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

namespace sm = llm::simd;

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();
constexpr double u = 0x1p-24;  // float rounding, relative

/// exp's relative error (the contract of llm::simd::exp, checked in simd.cpp over every float).
template <class S>
constexpr double exp_rel = S::fused_fma ? 1.0e-7 : 1.25e-7;

/// exp2's relative error on [-126, 127] as stated in math.hpp.
template <class S>
constexpr double exp2_rel = S::fused_fma ? 1.0e-7 : 1.6e-7;

/// The bounds stated (and derived) in the doc comments of math.hpp.
constexpr double tanh_abs = 2.5e-7;
constexpr double tanh_rel_from_055 = 5e-7;
constexpr double sigmoid_rel = 2.5e-7;
constexpr double erf_abs = 8e-7;

/// The sizes every function is run on: empty, one element, a tail of W - 1, one vector and one
/// more element, many vectors and a tail.
template <class S>
std::vector<std::size_t> awkward_sizes() {
    return {0, 1, S::width - 1, S::width + 1, 1000};
}

std::vector<float> uniform(std::size_t n, float lo, float hi, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) {
        x = d(rng);
    }
    return v;
}

/// y[i] = f(x[i]) for i < n through whole vectors and one partial one; y has 8 sentinels after
/// n that must stay untouched (store_partial writes y[0, n) only).
template <class S, class F>
std::vector<float> apply(F f, const std::vector<float>& x, std::size_t n) {
    std::vector<float> y(n + 8, -12345.0f);
    std::size_t i = 0;
    for (; i + S::width <= n; i += S::width) {
        S::storeu(y.data() + i, f(S::loadu(x.data() + i)));
    }
    if (i < n) {
        S::store_partial(y.data() + i, f(S::load_partial(x.data() + i, n - i)), n - i);
    }
    for (std::size_t k = n; k < n + 8; ++k) {
        REQUIRE(y[k] == -12345.0f);
    }
    y.resize(n);
    return y;
}

/// Every 4099th positive float below `top` and its negative: ~500K points, all binades.
std::vector<float> sweep(float top) {
    std::vector<float> v;
    for (std::uint32_t b = 0; b < std::bit_cast<std::uint32_t>(top); b += 4099) {
        v.push_back(std::bit_cast<float>(b));
        v.push_back(-std::bit_cast<float>(b));
    }
    return v;
}

/// f's vector values, one lane per input (all of a vector set to it): a scalar view of f.
template <class S, class F>
float lane0(F f, float x) {
    float out[S::width];
    S::storeu(out, f(S::set1(x)));
    return out[0];
}

// Checkers: one input and the function's result against the double reference, with the bound.
template <class S>
void check_exp(float x, float y) {
    if (x < -87.33654f) {
        CHECK(y == 0.0f);
    } else if (x > 88.72283f) {
        CHECK(y == inf);
    } else {
        const double ref = std::exp(static_cast<double>(x));
        CHECK_MESSAGE(std::fabs(y - ref) <= exp_rel<S> * ref, "exp(", x, ") = ", y, ", exact ", ref);
    }
}
void check_tanh(float x, float y) {
    const double ref = std::tanh(static_cast<double>(x));
    CHECK_MESSAGE(std::fabs(y - ref) <= tanh_abs, "tanh(", x, ") = ", y, ", exact ", ref);
    if (std::fabs(x) >= 0.55f) {
        CHECK_MESSAGE(std::fabs(y - ref) <= tanh_rel_from_055 * std::fabs(ref), "tanh(", x, ") = ", y);
    }
}
void check_sigmoid(float x, float y) {
    const double ref = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    if (x >= -87.3f) {
        CHECK_MESSAGE(std::fabs(y - ref) <= sigmoid_rel * ref, "sigmoid(", x, ") = ", y, ", exact ", ref);
    } else {
        CHECK_MESSAGE(std::fabs(y - ref) < std::numeric_limits<float>::min(), "sigmoid(", x, ") = ", y);
    }
}
void check_erf(float x, float y) {
    const double ref = std::erf(static_cast<double>(x));
    CHECK_MESSAGE(std::fabs(y - ref) <= erf_abs, "erf(", x, ") = ", y, ", exact ", ref);
}

/// Runs f over the awkward sizes on inputs in [lo, hi] and over the sweep, checking each value.
template <class S, class F, class Check>
void check_elementwise(F f, Check check, float lo, float hi, float sweep_top) {
    const auto x = uniform(1000, lo, hi, 11);
    for (const std::size_t n : awkward_sizes<S>()) {
        CAPTURE(n);
        const auto y = apply<S>(f, x, n);
        for (std::size_t i = 0; i < n; ++i) {
            check(x[i], y[i]);
        }
    }
    const auto xs = sweep(sweep_top);
    const auto ys = apply<S>(f, xs, xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) {
        check(xs[i], ys[i]);
    }
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("simd math: exp, tanh, sigmoid, erf within their stated bounds on every size", S, simd_math_elementwise) {
    const auto f_exp = [](typename S::f32 v) { return sm::exp<S>(v); };
    const auto f_tanh = [](typename S::f32 v) { return sm::tanh<S>(v); };
    const auto f_sigmoid = [](typename S::f32 v) { return sm::sigmoid<S>(v); };
    const auto f_erf = [](typename S::f32 v) { return sm::erf<S>(v); };
    SUBCASE("exp") { check_elementwise<S>(f_exp, check_exp<S>, -90.0f, 90.0f, 100.0f); }
    SUBCASE("tanh") { check_elementwise<S>(f_tanh, check_tanh, -5.0f, 5.0f, 100.0f); }
    SUBCASE("sigmoid") { check_elementwise<S>(f_sigmoid, check_sigmoid, -20.0f, 20.0f, 100.0f); }
    SUBCASE("erf") { check_elementwise<S>(f_erf, check_erf, -4.0f, 4.0f, 100.0f); }

    SUBCASE("limits, infinities and NaN") {
        CHECK(lane0<S>(f_tanh, 50.0f) == 1.0f);
        CHECK(lane0<S>(f_tanh, -50.0f) == -1.0f);
        CHECK(lane0<S>(f_tanh, inf) == 1.0f);
        CHECK(lane0<S>(f_tanh, -inf) == -1.0f);
        CHECK(std::isnan(lane0<S>(f_tanh, qnan)));
        CHECK(lane0<S>(f_sigmoid, 0.0f) == 0.5f);
        CHECK(lane0<S>(f_sigmoid, inf) == 1.0f);
        CHECK(lane0<S>(f_sigmoid, -inf) == 0.0f);
        CHECK(lane0<S>(f_sigmoid, -100.0f) == 0.0f);
        CHECK(std::isnan(lane0<S>(f_sigmoid, qnan)));
        CHECK(lane0<S>(f_erf, 10.0f) == 1.0f);
        CHECK(lane0<S>(f_erf, -10.0f) == -1.0f);
        CHECK(lane0<S>(f_erf, inf) == 1.0f);
        CHECK(lane0<S>(f_erf, -inf) == -1.0f);
        CHECK(std::isnan(lane0<S>(f_erf, qnan)));
        CHECK(lane0<S>(f_exp, -inf) == 0.0f);
        CHECK(lane0<S>(f_exp, inf) == inf);
        CHECK(std::isnan(lane0<S>(f_exp, qnan)));
        // odd functions: the sign of a (not tiny) input is the sign of the result
        CHECK(lane0<S>(f_tanh, -0.75f) < 0.0f);
        CHECK(lane0<S>(f_erf, -0.75f) < 0.0f);
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_math_elementwise, llm_test::kernel_backends);
TEST_CASE_TEMPLATE_DEFINE("simd math: exp2 within its stated bound on [-126, 127], clamped outside", S, simd_math_exp2) {
    const auto f = [](typename S::f32 v) { return sm::exp2<S>(v); };
    // every size (tails), then a dense sweep: 2.5e6 points, every binade's rounding of n and f
    for (const std::size_t n : awkward_sizes<S>()) {
        const auto x = uniform(n, -126.0f, 127.0f, 11);
        const auto y = apply<S>(f, x, n);
        for (std::size_t i = 0; i < n; ++i) {
            const double ref = std::exp2(double(x[i]));
            CHECK_MESSAGE(std::fabs(y[i] - ref) <= exp2_rel<S> * ref, "exp2(", x[i], ") = ", y[i], ", exact ", ref);
        }
    }
    std::vector<float> xs;
    for (double v = -126.0; v <= 127.0; v += 1.0 / 9973.0) {
        xs.push_back(static_cast<float>(v));
    }
    xs.push_back(-0.5f), xs.push_back(0.5f), xs.push_back(-126.0f), xs.push_back(127.0f), xs.push_back(1e-30f);
    for (int k = -126; k < 127; ++k) {
        xs.push_back(static_cast<float>(k) + 0.5f);  // ties: n rounds to even
    }
    const auto ys = apply<S>(f, xs, xs.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const double ref = std::exp2(double(xs[i]));
        worst = std::max(worst, std::fabs(ys[i] - ref) / ref);
    }
    INFO("exp2 worst relative error " << worst);
    CHECK(worst <= exp2_rel<S>);
    CHECK(worst > 0.0);  // the sweep does reach rounded values (a wrong sweep would check nothing)
    // integers are exact; outside the range the input is clamped
    CHECK(lane0<S>(f, 0.0f) == 1.0f);
    CHECK(lane0<S>(f, 10.0f) == 1024.0f);
    CHECK(lane0<S>(f, -3.0f) == 0.125f);
    CHECK(lane0<S>(f, -200.0f) == std::numeric_limits<float>::min());
    CHECK(lane0<S>(f, -inf) == std::numeric_limits<float>::min());
    CHECK(lane0<S>(f, 300.0f) == 0x1p127f);
    // Every backend gives the generic formula's bits (16-lane AVX-512 backends round and scale with
    // vrndscaleps / vscalefps), clamped inputs included.
    const auto generic = [](typename S::f32 v) {
        const auto yc = S::min(S::max(v, S::set1(-126.0f)), S::set1(127.0f));
        const auto magic = S::set1(12582912.0f);
        const auto n = S::sub(S::add(yc, magic), magic);
        return S::mul(llm::simd::detail::exp2_poly<S>(S::sub(yc, n)), S::pow2i(n));
    };
    xs.push_back(-200.0f), xs.push_back(-inf), xs.push_back(300.0f), xs.push_back(inf), xs.push_back(-126.4f);
    const auto ya = apply<S>(f, xs, xs.size());
    const auto yg = apply<S>(generic, xs, xs.size());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        differ += std::bit_cast<std::uint32_t>(ya[i]) != std::bit_cast<std::uint32_t>(yg[i]);
    }
    CHECK(differ == 0);
}
TEST_CASE_TEMPLATE_APPLY(simd_math_exp2, llm_test::kernel_backends);


namespace {

/// The relative error bound of row_exp_sum stated in math.hpp: delta_exp + u (D + ceil(n /
/// (2 W)) + log2(2 W) + 2), n the elements summed in float (a block of row_logsumexp: <= 2048)
/// and D the largest m - x over the terms.
template <class S>
double exp_sum_bound(std::size_t n, double D) {
    const double per_acc = std::ceil(static_cast<double>(n) / (2.0 * S::width));
    return exp_rel<S> + u * (D + per_acc + std::log2(2.0 * S::width) + 2.0);
}

template <class T>
std::vector<T> as(const std::vector<float>& v) {
    std::vector<T> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        out[i] = T(v[i]);
    }
    return out;
}

template <class T>
double to_double(T x) {
    return static_cast<double>(static_cast<float>(x));
}

/// Logits in [-1, 1] plus 2 per block of 2048 (so later blocks raise the running max and the
/// sum is rescaled), as T. A term dropped from any sum is a relative error >= e^-2 / n, far
/// above every bound checked below (1000 elements: 1.4e-4 against <= 3.1e-5).
template <class T>
std::vector<T> logits(std::size_t n, unsigned seed) {
    auto v = uniform(n, -1.0f, 1.0f, seed);
    for (std::size_t i = 0; i < n; ++i) {
        v[i] += 2.0f * static_cast<float>(i / 2048);
    }
    return as<T>(v);
}

template <class S, class T>
void check_rows() {
    constexpr double neg_inf = -std::numeric_limits<double>::infinity();
    auto sizes = awkward_sizes<S>();
    sizes.push_back(2049);  // one block and one element: the rescale
    sizes.push_back(5000);
    for (const std::size_t n : sizes) {
        CAPTURE(n);
        const auto x = logits<T>(n, static_cast<unsigned>(n) + 3);
        double m = neg_inf, sum = 0, sum_abs = 0;
        for (const T& v : x) {
            m = std::max(m, to_double(v));
            sum += to_double(v);
            sum_abs += std::fabs(to_double(v));
        }
        // row_max: exact
        CHECK(sm::row_max<S>(x.data(), n) == m);

        // row_exp_sum against the max, with and without storing the terms
        if (n <= 2048) {
            double ref = 0, D = 0;
            for (const T& v : x) {
                ref += std::exp(to_double(v) - m);
                D = std::max(D, m - to_double(v));
            }
            const float mf = static_cast<float>(m);
            const double bound = exp_sum_bound<S>(n, D);
            const float s = sm::row_exp_sum<S>(x.data(), n, mf);
            CHECK(std::fabs(s - ref) <= bound * ref);
            std::vector<float> y(n + 8, -7.0f);
            const float s2 = sm::row_exp_sum<S>(y.data(), x.data(), n, mf);
            CHECK(s2 == s);
            for (std::size_t i = 0; i < n; ++i) {
                const double e = std::exp(to_double(x[i]) - m);  // one term: exp plus the rounded difference
                CHECK(std::fabs(y[i] - e) <= (exp_rel<S> + u * (m - to_double(x[i]))) * e);
            }
            for (std::size_t i = n; i < n + 8; ++i) {
                CHECK(y[i] == -7.0f);
            }
        }

        // row_logsumexp and row_logsumexp_sum
        double ref_s = 0, D = 0;
        for (const T& v : x) {
            ref_s += std::exp(to_double(v) - m);
            D = std::max(D, m - to_double(v));
        }
        const double ref_lse = m + std::log(ref_s);
        const double lse = sm::row_logsumexp<S>(x.data(), n);
        if (n == 0) {
            CHECK(lse == neg_inf);
        } else {
            // log turns the sum's relative error into an absolute one
            CHECK(std::fabs(lse - ref_lse) <= exp_sum_bound<S>(std::min<std::size_t>(n, 2048), D));
        }
        const auto both = sm::row_logsumexp_sum<S>(x.data(), n);
        CHECK(both.lse == lse);
        const double sum_bound = u * (std::ceil(std::min<double>(static_cast<double>(n), 2048.0) / (4.0 * S::width)) +
                                      std::log2(4.0 * S::width) + 2.0);
        CHECK(std::fabs(both.sum - sum) <= sum_bound * sum_abs);
    }
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("simd math: row_max, row_exp_sum, row_logsumexp(_sum) on fp32 and bf16 rows", S, simd_math_rows) {
    SUBCASE("fp32") { check_rows<S, float>(); }
    SUBCASE("bf16") { check_rows<S, llm::bf16>(); }

    SUBCASE("a negative row: the zero-filled lanes of a tail never take part in the max") {
        for (const std::size_t n : awkward_sizes<S>()) {
            if (n == 0) {
                continue;
            }
            const auto x = uniform(n, -3.0f, -1.0f, 5);
            CHECK(sm::row_max<S>(x.data(), n) == *std::max_element(x.begin(), x.end()));
            double ref = 0;
            for (float v : x) {
                ref += std::exp(static_cast<double>(v));
            }
            CHECK(std::fabs(sm::row_logsumexp<S>(x.data(), n) - std::log(ref)) <= exp_sum_bound<S>(n, 2.0));
        }
    }

    SUBCASE("equal elements: lse = x + log n") {
        for (const std::size_t n : {std::size_t{1}, S::width + 1, std::size_t{4097}}) {
            const std::vector<float> x(n, 0.5f);
            CHECK(std::fabs(sm::row_logsumexp<S>(x.data(), n) - (0.5 + std::log(static_cast<double>(n)))) <=
                  exp_sum_bound<S>(std::min<std::size_t>(n, 2048), 0.0));
        }
    }

    SUBCASE("-inf, +inf and NaN elements") {
        const std::size_t n = 2 * S::width + 3;
        std::vector<float> x(n, -inf);
        CHECK(sm::row_logsumexp<S>(x.data(), n) == -inf);  // all -inf: log 0
        CHECK(sm::row_max<S>(x.data(), n) == -inf);
        x[n - 1] = 1.0f;  // one finite element, in the tail: the others add 0
        CHECK(std::fabs(sm::row_logsumexp<S>(x.data(), n) - 1.0) <= exp_rel<S> + 4 * u);
        for (const std::size_t at : {std::size_t{0}, n - 1}) {
            std::vector<float> y = uniform(n, -1.0f, 1.0f, 9);
            y[at] = qnan;
            CHECK(std::isnan(sm::row_logsumexp<S>(y.data(), n)));
            CHECK(std::isnan(sm::row_logsumexp_sum<S>(y.data(), n).sum));
            y[at] = inf;
            CHECK(std::isnan(sm::row_logsumexp<S>(y.data(), n)));
        }
        // a NaN alone in the first block of an otherwise -inf row
        std::vector<float> z(2049, -inf);
        z[3] = qnan;
        z[2048] = 0.0f;
        CHECK(std::isnan(sm::row_logsumexp<S>(z.data(), z.size())));
    }
}
TEST_CASE_TEMPLATE_APPLY(simd_math_rows, llm_test::kernel_backends);
