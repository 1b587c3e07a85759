// SPDX-License-Identifier: Apache-2.0
// Tests of the stable scalar helpers in llm/core/math.hpp against naive formulas in long double.
#include <llm/core/math.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

// References: the textbook formulas, evaluated in x87 long double (64-bit mantissa, exponent
// range to ~1e4932), where e^x for |x| <= 1e4 neither overflows nor underflows, so no
// rearrangement is needed and the result carries 11+ more bits than double.
long double sigmoid_ref(long double x) {
    return 1.0L / (1.0L + std::exp(-x));
}
long double softplus_ref(long double x) {
    return std::log1p(std::exp(x));
}
long double log_sigmoid_ref(long double x) {
    return -std::log1p(std::exp(-x));
}
long double logsumexp_ref(long double a, long double b) {
    return std::log(std::exp(a) + std::exp(b));
}
// log(1 - e^x): near 0 from expm1 (1 - e^x cancels), elsewhere from log1p.
long double log1mexp_ref(long double x) {
    return x > -1 ? std::log(-std::expm1(x)) : std::log1p(-std::exp(x));
}

// Stated tolerance: |got - want| <= 4 eps(T) * scale + denorm_min(T), scale = |want| unless a
// caller passes a larger magnitude whose rounding the result inherits (logsumexp's max(a, b)).
// The denorm_min term admits results that underflow T's range.
template <class T>
bool close(T got, long double want, long double scale) {
    if (std::isnan(want)) {
        return std::isnan(got);
    }
    if (std::isinf(want)) {
        return got == want;
    }
    const long double eps = std::numeric_limits<T>::epsilon();
    return std::isfinite(got) && std::fabs((long double)got - want) <=
                                     4 * eps * scale + (long double)std::numeric_limits<T>::denorm_min();
}

// Inputs around every threshold that matters for float or double: exp overflow (88.7, 709.8),
// exp underflow (-103, -745), log1p(e^-x) vanishing against x (17, 37), and the 1e4 the
// contract promises.
template <class T>
std::vector<T> inputs() {
    std::vector<T> out = {T(0), std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::min(), T(1e-30),
                          T(1e-8)};
    for (const double x : {1e-3,   0.1,    0.5,    0.6931471805599453,
                           0.7,    1.0,    2.0,    5.0,
                           10.0,   15.0,   16.0,   17.0,
                           20.0,   30.0,   36.0,   37.0,
                           38.0,   50.0,   87.0,   88.0,
                           88.8,   89.0,   100.0,  103.0,
                           104.0,  200.0,  700.0,  709.0,
                           710.0,  744.0,  745.0,  746.0,
                           1000.0, 5000.0, 9999.0, 1e4}) {
        out.push_back(T(x));
    }
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> log_magnitude(std::log(1e-6), std::log(1e4));
    std::uniform_real_distribution<double> linear(0.0, 1e4);
    for (int i = 0; i < 2000; ++i) {
        out.push_back(T(std::exp(log_magnitude(rng))));
        out.push_back(T(linear(rng)));
    }
    const std::size_t positives = out.size();
    for (std::size_t i = 0; i < positives; ++i) {
        out.push_back(-out[i]);
    }
    return out;
}

struct failures {
    std::size_t count = 0;
    std::string first;
    template <class T>
    void check(bool ok, const char* what, T x, T got, long double want) {
        if (!ok && count++ < 6) {
            std::ostringstream line;
            line.precision(21);
            line << what << "(" << x << ") = " << got << ", want " << want << "\n";
            first += line.str();
        }
    }
};

}  // namespace

TEST_CASE_TEMPLATE("sigmoid, softplus, log_sigmoid, log1mexp match long double references", T, float,
                   double) {
    failures bad;
    for (const T x : inputs<T>()) {
        const long double lx = x;
        const T s = llm::sigmoid(x);
        bad.check(close(s, sigmoid_ref(lx), std::fabs(sigmoid_ref(lx))), "sigmoid", x, s, sigmoid_ref(lx));
        const T sp = llm::softplus(x);
        bad.check(close(sp, softplus_ref(lx), std::fabs(softplus_ref(lx))), "softplus", x, sp,
                  softplus_ref(lx));
        const T ls = llm::log_sigmoid(x);
        bad.check(close(ls, log_sigmoid_ref(lx), std::fabs(log_sigmoid_ref(lx))), "log_sigmoid", x, ls,
                  log_sigmoid_ref(lx));
        if (x < 0) {
            const T lm = llm::log1mexp(x);
            bad.check(close(lm, log1mexp_ref(lx), std::fabs(log1mexp_ref(lx))), "log1mexp", x, lm,
                      log1mexp_ref(lx));
        }
    }
    CHECK_MESSAGE(bad.count == 0, bad.first);
}

TEST_CASE_TEMPLATE("logsumexp matches a long double reference on pairs of extreme inputs", T, float, double) {
    failures bad;
    std::vector<T> xs = inputs<T>();
    xs.resize(90);  // the fixed thresholds and a few random ones, both signs below
    const std::size_t n = xs.size();
    for (std::size_t i = 0; i < n; ++i) {
        xs.push_back(-xs[i]);
    }
    for (const T a : xs) {
        for (const T b : xs) {
            const long double want = logsumexp_ref(a, b);
            const T got = llm::logsumexp(a, b);
            const long double scale =
                std::fmax(std::fabs(want), std::fmax(std::fabs((long double)a), std::fabs((long double)b)));
            bad.check(close(got, want, scale) && got == llm::logsumexp(b, a), "logsumexp", a, got, want);
        }
    }
    CHECK_MESSAGE(bad.count == 0, bad.first);
}

TEST_CASE_TEMPLATE("limits at infinities and NaN propagation", T, float, double) {
    const T inf = std::numeric_limits<T>::infinity();
    const T nan = std::numeric_limits<T>::quiet_NaN();
    CHECK(llm::sigmoid(inf) == 1);
    CHECK(llm::sigmoid(-inf) == 0);
    CHECK(llm::softplus(inf) == inf);
    CHECK(llm::softplus(-inf) == 0);
    CHECK(llm::log_sigmoid(inf) == 0);
    CHECK(llm::log_sigmoid(-inf) == -inf);
    CHECK(llm::logsumexp(-inf, -inf) == -inf);
    CHECK(llm::logsumexp(inf, -inf) == inf);
    CHECK(llm::logsumexp(inf, inf) == inf);
    CHECK(llm::logsumexp(T(3), -inf) == T(3));
    CHECK(llm::logsumexp(-inf, T(-7)) == T(-7));
    CHECK(llm::log1mexp(T(0)) == -inf);
    CHECK(llm::log1mexp(-inf) == 0);
    CHECK(std::isnan(llm::log1mexp(T(1))));
    for (const T x : {nan, -nan}) {
        CHECK(std::isnan(llm::sigmoid(x)));
        CHECK(std::isnan(llm::softplus(x)));
        CHECK(std::isnan(llm::log_sigmoid(x)));
        CHECK(std::isnan(llm::log1mexp(x)));
        CHECK(std::isnan(llm::logsumexp(x, T(1))));
        CHECK(std::isnan(llm::logsumexp(T(1), x)));
        CHECK(std::isnan(llm::logsumexp(inf, x)));
        CHECK(std::isnan(llm::logsumexp(x, -inf)));
    }
}

TEST_CASE("the naive formulas' failure points give the right answers") {
    CHECK(llm::log_sigmoid(-1e4f) == -1e4f);  // log(1 / (1 + e^1e4)): e^1e4 overflows
    CHECK(llm::softplus(1e4f) == 1e4f);       // log(1 + e^1e4)
    CHECK(llm::softplus(-1e4) == 0.0);        // e^-1e4 underflows double: 0, not NaN
    CHECK(llm::softplus(-50.0f) ==
          doctest::Approx(std::exp(-50.0)).epsilon(1e-6));  // 1 + e^-50 == 1 in float
    CHECK(llm::log_sigmoid(40.0) == doctest::Approx(-std::exp(-40.0)).epsilon(1e-14));
    CHECK(llm::sigmoid(-1e4f) == 0.0f);
    CHECK(llm::sigmoid(-80.0f) ==
          doctest::Approx(std::exp(-80.0)).epsilon(1e-6));  // not 1 - 1/(1 + e^-80) = 0
    CHECK(llm::logsumexp(1e4f, 1e4f) == doctest::Approx(1e4 + std::log(2.0)).epsilon(1e-7));
    CHECK(llm::logsumexp(-1e4, -1e4) == doctest::Approx(-1e4 + std::log(2.0)).epsilon(1e-15));
    CHECK(llm::log1mexp(-1e-10) == doctest::Approx(std::log(1e-10)).epsilon(1e-9));  // 1 - e^x cancels
    CHECK(llm::log1mexp(-50.0) == doctest::Approx(-std::exp(-50.0)).epsilon(1e-14));
}
