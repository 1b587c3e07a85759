// SPDX-License-Identifier: Apache-2.0
// llm::nn::linear_forward / linear_backward: against a double reference with derived rounding
// bounds, finite differences of the backward, accumulation (2x on a second call), bad shapes.
//
// Tolerances. Every output element is a dot product of n terms (n = in features for y, out
// features for dx, tokens for dweight and dbias) computed in fp32 with unit roundoff u = 2^-24,
// in any order, plus at most two more roundings (the bias add or the accumulation into the
// gradient already there, and the widening of nothing: bf16 -> fp32 is exact). The classical
// bound is |computed - exact| <= (n + 2) u S with S = sum of |terms| (+ |bias| or |previous
// value|); the tests check every element against its own bound, computed in double next to the
// reference, so a wrong element (an error of the order of S) cannot pass. A bf16 output adds one
// rounding to nearest even: 2^-9 of the value (half an ulp of an 8-bit significand), doubled here
// for the fp32 error underneath it.
#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/nn/linear.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <type_traits>
#include <vector>

namespace {

constexpr double u32 = 1.0 / (1 << 24);  // fp32 unit roundoff
constexpr double ubf16 = 1.0 / (1 << 9);  // bf16 rounding to nearest: half an ulp, relative

template <class T>
using mat = llm::tensor<T, llm::dims<2>>;
template <class T>
using vec = llm::tensor<T, llm::dims<1>>;

template <class T>
double d(T v) {
    return static_cast<double>(static_cast<float>(v));
}

template <class T>
mat<T> random_mat(std::size_t r, std::size_t c, std::mt19937& rng) {
    mat<T> m(r, c);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < m.size(); ++i) {
        m.data()[i] = T(dist(rng));
    }
    return m;
}

template <class T>
vec<T> random_vec(std::size_t n, std::mt19937& rng) {
    vec<T> v(n);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) {
        v(i) = T(dist(rng));
    }
    return v;
}

/// The output element type's extra rounding (relative), 0 for fp32.
template <class T>
constexpr double out_rounding = std::is_same_v<T, float> ? 0.0 : 2 * ubf16;

/// Checks y (any element type) against the double reference x W^T (+ b), element by element
/// within its bound (n + 2) u S, plus the bf16 rounding of the output.
template <class TY, class TX, class TW, class TB>
void check_forward(const mat<TY>& y, const mat<TX>& x, const mat<TW>& w, const vec<TB>* b) {
    const std::size_t tokens = x.extent(0), in = x.extent(1), out = w.extent(0);
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t o = 0; o < out; ++o) {
            double exact = b != nullptr ? d((*b)(o)) : 0.0;
            double s = std::fabs(exact);
            for (std::size_t i = 0; i < in; ++i) {
                exact += d(x(t, i)) * d(w(o, i));
                s += std::fabs(d(x(t, i)) * d(w(o, i)));
            }
            const double bound = static_cast<double>(in + 2) * u32 * s * (1 + out_rounding<TY>) +
                                 out_rounding<TY> * std::fabs(exact);
            INFO("t=", t, " o=", o, " tokens=", tokens, " in=", in, " out=", out, " exact=", exact);
            CHECK(std::fabs(d(y(t, o)) - exact) <= bound);
        }
    }
}

template <class TX, class TW, class TY>
void forward_case(std::size_t tokens, std::size_t in, std::size_t out, bool with_bias, std::mt19937& rng) {
    const auto x = random_mat<TX>(tokens, in, rng);
    const auto w = random_mat<TW>(out, in, rng);
    const auto b = random_vec<TW>(out, rng);
    mat<TY> y(tokens, out);
    llm::fill(y, TY(12345.0f));  // overwritten, never read
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    if (with_bias) {
        llm::nn::linear_forward(y, x, w, b, ws, pool);
    } else {
        llm::nn::linear_forward(y, x, w, ws, pool);
    }
    check_forward(y, x, w, with_bias ? &b : nullptr);
    // The sequential temporary and the overloads without a workspace give the same values.
    mat<TY> y2(tokens, out);
    if (with_bias) {
        llm::nn::linear_forward(y2, x, w, b, llm::parallel::sequential{});
    } else {
        llm::nn::linear_forward(y2, x, w, llm::parallel::sequential{});
    }
    check_forward(y2, x, w, with_bias ? &b : nullptr);
}

constexpr std::size_t token_sizes[] = {1, 3, 17, 67};
constexpr std::size_t feature_sizes[] = {1, 5, 64, 129};

}  // namespace

TEST_CASE("linear_forward matches the double reference on awkward sizes (fp32 / bf16 weights, bias or not)") {
    std::mt19937 rng(42);
    for (std::size_t tokens : token_sizes) {
        for (std::size_t in : feature_sizes) {
            for (std::size_t out : feature_sizes) {
                for (bool with_bias : {false, true}) {
                    forward_case<float, float, float>(tokens, in, out, with_bias, rng);
                    forward_case<float, llm::bf16, float>(tokens, in, out, with_bias, rng);
                    forward_case<llm::bf16, llm::bf16, llm::bf16>(tokens, in, out, with_bias, rng);
                }
            }
        }
    }
}

TEST_CASE("linear_forward: strided views (x a column slice, W^T given as the transpose of a transpose)") {
    std::mt19937 rng(7);
    const auto xs = random_mat<float>(17, 70, rng);
    const auto x = llm::slice(xs, 1, 3, 67);  // [17, 64], row stride 70
    const auto wt = random_mat<float>(64, 33, rng);
    const auto w = llm::transpose(wt, 0, 1);  // [33, 64] with unit row stride
    const auto b = random_vec<float>(33, rng);
    mat<float> y(17, 33);
    llm::nn::linear_forward(y, x, w, b, llm::parallel::sequential{});
    mat<float> xc(17, 64), wc(33, 64);
    for (std::size_t t = 0; t < 17; ++t) {
        for (std::size_t i = 0; i < 64; ++i) {
            xc(t, i) = x(t, i);
        }
    }
    for (std::size_t o = 0; o < 33; ++o) {
        for (std::size_t i = 0; i < 64; ++i) {
            wc(o, i) = w(o, i);
        }
    }
    check_forward(y, xc, wc, &b);
}

TEST_CASE("linear_forward: the bias added in the GEMM's store equals the product, then + bias, bit for bit") {
    // The forward adds the bias (and rounds a bf16 y) as the GEMM stores each finished tile
    // (llm::gemm_epilogue): every element must be exactly fp32(product) + bias, rounded once
    // more for bf16, as a plain gemm followed by a pass over y gives; an element missed, added
    // twice, or added before the product is complete differs. Sizes cross kc (k 300), several
    // row and column blocks and tile edges, 1 and 2 threads.
    std::mt19937 rng(5);
    llm::parallel::thread_pool pool(2);
    for (const std::size_t tokens : {1u, 7u, 40u}) {
        for (const std::size_t out : {1u, 29u, 70u}) {
            const std::size_t in = 300;
            const auto x = random_mat<float>(tokens, in, rng);
            const auto w = random_mat<float>(out, in, rng);
            const auto b = random_vec<float>(out, rng);
            mat<float> prod(tokens, out), y(tokens, out), y2(tokens, out);
            mat<llm::bf16> yh(tokens, out);
            llm::gemm(prod, x, llm::transpose(w, 0, 1), 1.0f, 0.0f, llm::parallel::sequential{});
            llm::nn::linear_forward(y, x, w, b, llm::parallel::sequential{});
            llm::nn::linear_forward(y2, x, w, b, pool);
            llm::nn::linear_forward(yh, x, w, b, pool);
            std::size_t differ = 0;
            for (std::size_t t = 0; t < tokens; ++t) {
                for (std::size_t o = 0; o < out; ++o) {
                    const float want = prod(t, o) + b(o);
                    differ += y(t, o) != want ? 1u : 0u;
                    differ += y2(t, o) != want ? 1u : 0u;
                    differ += static_cast<float>(yh(t, o)) != static_cast<float>(llm::bf16(want)) ? 1u : 0u;
                }
            }
            INFO("tokens=", tokens, " out=", out);
            CHECK(differ == 0);
        }
    }
}

TEST_CASE("linear_forward: in = 0 gives y = bias, tokens = 0 does nothing") {
    mat<float> x(3, 0), w(4, 0), y(3, 4);
    vec<float> b(4);
    for (std::size_t o = 0; o < 4; ++o) {
        b(o) = static_cast<float>(o) + 0.5f;
    }
    llm::fill(y, NAN);
    llm::nn::linear_forward(y, x, w, b, llm::parallel::sequential{});
    CHECK(y(2, 3) == 3.5f);
    CHECK(y(0, 0) == 0.5f);
    llm::nn::linear_forward(y, x, w, llm::parallel::sequential{});
    CHECK(y(1, 1) == 0.0f);
    mat<float> x0(0, 5), w0(4, 5), y0(0, 4);
    CHECK_NOTHROW(llm::nn::linear_forward(y0, x0, w0, b, llm::parallel::sequential{}));
}

namespace {

/// The loss L = sum_{t,o} y[t,o] g[t,o] of the forward (fp32 y, computed by linear_forward),
/// summed in double, and a bound on its rounding error: sum |g| (n + 2) u S per element.
struct loss_value {
    double value;
    double bound;
};

template <class TX, class TW>
loss_value loss(const mat<TX>& x, const mat<TW>& w, const vec<TW>& b, const mat<float>& g) {
    mat<float> y(x.extent(0), w.extent(0));
    llm::nn::linear_forward(y, x, w, b, llm::parallel::sequential{});
    loss_value l{0.0, 0.0};
    for (std::size_t t = 0; t < y.extent(0); ++t) {
        for (std::size_t o = 0; o < y.extent(1); ++o) {
            double s = std::fabs(d(b(o)));
            for (std::size_t i = 0; i < x.extent(1); ++i) {
                s += std::fabs(d(x(t, i)) * d(w(o, i)));
            }
            l.value += static_cast<double>(y(t, o)) * g(t, o);
            l.bound += std::fabs(g(t, o)) * static_cast<double>(x.extent(1) + 2) * u32 * s;
        }
    }
    return l;
}

/// Central difference of the loss in one element `p` of x, w or b. L is linear in every input,
/// so the difference quotient has no truncation error for any step: the step is 1 (an exact
/// change of a fp32 value in [-1, 1]; for bf16 the perturbed values are what bf16 can hold, and
/// the quotient uses the steps actually taken). Its error is the two losses' rounding bounds
/// divided by the step sum. Returns {quotient, bound}.
template <class T, class F>
loss_value central_difference(T& p, F&& eval) {
    const T saved = p;
    p = T(static_cast<float>(d(saved) + 1.0));
    const double up = d(p) - d(saved);
    const loss_value lp = eval();
    p = T(static_cast<float>(d(saved) - 1.0));
    const double down = d(saved) - d(p);
    const loss_value lm = eval();
    p = saved;
    return {(lp.value - lm.value) / (up + down), (lp.bound + lm.bound) / (up + down)};
}

template <class TX, class TW>
void finite_difference_case(std::size_t tokens, std::size_t in, std::size_t out, std::mt19937& rng) {
    auto x = random_mat<TX>(tokens, in, rng);
    auto w = random_mat<TW>(out, in, rng);
    auto b = random_vec<TW>(out, rng);
    const auto g = random_mat<float>(tokens, out, rng);
    mat<float> dx(tokens, in), dw(out, in);
    vec<float> db(out);
    llm::nn::linear_backward(dx, dw, db, g, x, w, llm::parallel::sequential{});
    auto eval = [&] { return loss(x, w, b, g); };
    // The analytic gradient's own rounding bound: (n + 2) u sum |terms| with n the length of
    // its dot product; bounded above by (n + 2) u n (every |term| <= 1 here).
    auto grad_bound = [](std::size_t n) { return static_cast<double>(n + 2) * u32 * static_cast<double>(n); };
    std::uniform_int_distribution<std::size_t> pick_t(0, tokens - 1), pick_i(0, in - 1), pick_o(0, out - 1);
    for (int trial = 0; trial < 6; ++trial) {
        const std::size_t t = pick_t(rng), i = pick_i(rng), o = pick_o(rng);
        INFO("tokens=", tokens, " in=", in, " out=", out, " t=", t, " i=", i, " o=", o);
        const loss_value fx = central_difference(x(t, i), eval);
        CHECK(std::fabs(fx.value - dx(t, i)) <= fx.bound + grad_bound(out));
        const loss_value fw = central_difference(w(o, i), eval);
        CHECK(std::fabs(fw.value - dw(o, i)) <= fw.bound + grad_bound(tokens));
        const loss_value fb = central_difference(b(o), eval);
        CHECK(std::fabs(fb.value - db(o)) <= fb.bound + grad_bound(tokens));
    }
}

}  // namespace

TEST_CASE("linear_backward agrees with central differences of linear_forward (fp32 and bf16 weights)") {
    std::mt19937 rng(3);
    for (std::size_t tokens : {std::size_t{1}, std::size_t{3}, std::size_t{17}}) {
        for (std::size_t in : {std::size_t{1}, std::size_t{5}, std::size_t{64}}) {
            for (std::size_t out : {std::size_t{1}, std::size_t{5}, std::size_t{129}}) {
                finite_difference_case<float, float>(tokens, in, out, rng);
                finite_difference_case<float, llm::bf16>(tokens, in, out, rng);
                finite_difference_case<llm::bf16, llm::bf16>(tokens, in, out, rng);
            }
        }
    }
}

namespace {

template <class TDX, class TX, class TW>
void backward_reference_case(std::size_t tokens, std::size_t in, std::size_t out, bool with_bias, std::mt19937& rng) {
    const auto x = random_mat<TX>(tokens, in, rng);
    const auto w = random_mat<TW>(out, in, rng);
    const auto dy = random_mat<TX>(tokens, out, rng);
    // The gradients start non-zero: the backward adds to them.
    auto dx = random_mat<TDX>(tokens, in, rng);
    auto dw = random_mat<float>(out, in, rng);
    auto db = random_vec<float>(out, rng);
    const auto dx0 = dx;
    const auto dw0 = dw;
    const auto db0 = db;
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    if (with_bias) {
        llm::nn::linear_backward(dx, dw, db, dy, x, w, ws, pool);
    } else {
        llm::nn::linear_backward(dx, dw, dy, x, w, ws, pool);
    }
    INFO("tokens=", tokens, " in=", in, " out=", out, " bias=", with_bias);
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t i = 0; i < in; ++i) {
            double exact = d(dx0(t, i)), s = std::fabs(exact);
            for (std::size_t o = 0; o < out; ++o) {
                exact += d(dy(t, o)) * d(w(o, i));
                s += std::fabs(d(dy(t, o)) * d(w(o, i)));
            }
            const double bound = static_cast<double>(out + 2) * u32 * s * (1 + out_rounding<TDX>) +
                                 out_rounding<TDX> * std::fabs(exact);
            CHECK(std::fabs(d(dx(t, i)) - exact) <= bound);
        }
    }
    for (std::size_t o = 0; o < out; ++o) {
        for (std::size_t i = 0; i < in; ++i) {
            double exact = d(dw0(o, i)), s = std::fabs(exact);
            for (std::size_t t = 0; t < tokens; ++t) {
                exact += d(dy(t, o)) * d(x(t, i));
                s += std::fabs(d(dy(t, o)) * d(x(t, i)));
            }
            CHECK(std::fabs(d(dw(o, i)) - exact) <= static_cast<double>(tokens + 2) * u32 * s);
        }
        double exact = d(db0(o)), s = std::fabs(exact);
        for (std::size_t t = 0; t < tokens; ++t) {
            exact += d(dy(t, o));
            s += std::fabs(d(dy(t, o)));
        }
        if (with_bias) {
            CHECK(std::fabs(d(db(o)) - exact) <= static_cast<double>(tokens + 2) * u32 * s);
        } else {
            CHECK(db(o) == db0(o));  // the overload without bias leaves it alone
        }
    }
}

}  // namespace

TEST_CASE("linear_backward accumulates the double reference into non-zero gradients on awkward sizes") {
    std::mt19937 rng(11);
    for (std::size_t tokens : token_sizes) {
        for (std::size_t in : feature_sizes) {
            for (std::size_t out : feature_sizes) {
                for (bool with_bias : {false, true}) {
                    backward_reference_case<float, float, float>(tokens, in, out, with_bias, rng);
                    backward_reference_case<float, float, llm::bf16>(tokens, in, out, with_bias, rng);
                    backward_reference_case<llm::bf16, llm::bf16, llm::bf16>(tokens, in, out, with_bias, rng);
                }
            }
        }
    }
}

TEST_CASE("linear_backward called twice on zeroed gradients gives 2x the first call") {
    // Every contraction here is <= 256 (the gemm's KC block), so each fp32 gradient element is
    // one fp32 sum s computed the same way both times, then 0 + s and s + s: exactly 2 s. A
    // bf16 dx rounds twice (s to bf16, then bf16(s) + s): within 2 bf16 roundings of 2 s.
    std::mt19937 rng(5);
    llm::parallel::thread_pool pool(2);
    for (std::size_t tokens : token_sizes) {
        for (std::size_t in : {std::size_t{5}, std::size_t{129}}) {
            const std::size_t out = 64;
            const auto x = random_mat<float>(tokens, in, rng);
            const auto w = random_mat<llm::bf16>(out, in, rng);
            const auto dy = random_mat<float>(tokens, out, rng);
            mat<float> dx(tokens, in), dw(out, in);
            mat<llm::bf16> dxh(tokens, in);
            vec<float> db(out);
            llm::zero_grad(dx, dw, db, dxh);
            llm::workspace ws;
            llm::nn::linear_backward(dx, dw, db, dy, x, w, ws, pool);
            const auto dx1 = dx;
            const auto dw1 = dw;
            const auto db1 = db;
            llm::nn::linear_backward(dx, dw, db, dy, x, w, ws, pool);
            for (std::size_t i = 0; i < dx.size(); ++i) {
                CHECK(dx.data()[i] == 2.0f * dx1.data()[i]);
            }
            for (std::size_t i = 0; i < dw.size(); ++i) {
                CHECK(dw.data()[i] == 2.0f * dw1.data()[i]);
            }
            for (std::size_t i = 0; i < db.size(); ++i) {
                CHECK(db.data()[i] == 2.0f * db1.data()[i]);
            }
            mat<float> dw_scratch(out, in);
            llm::nn::linear_backward(dxh, dw_scratch, dy, x, w, ws, pool);
            const auto dxh1 = dxh;
            llm::nn::linear_backward(dxh, dw_scratch, dy, x, w, ws, pool);
            for (std::size_t i = 0; i < dxh.size(); ++i) {
                const double twice = 2.0 * d(dxh1.data()[i]);
                CHECK(std::fabs(d(dxh.data()[i]) - twice) <= 4 * ubf16 * std::fabs(twice));
            }
        }
    }
}

TEST_CASE("linear: bad shapes raise llm::error naming the argument and the values") {
    mat<float> x(3, 5), w(4, 5), y(3, 4), w_bad(4, 6), y_bad(2, 4);
    vec<float> b(4), b_bad(5);
    llm::parallel::sequential seq;
    CHECK_THROWS_WITH_AS(llm::nn::linear_forward(y, x, w_bad, b, seq),
                         "linear_forward: x is [3, 5] but weight is [4, 6]; x columns (in features) must equal weight "
                         "columns",
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::linear_forward(y_bad, x, w, b, seq),
                         "linear_forward: y is [2, 4] but must be [3, 4] (tokens of x, out features = weight rows)",
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::linear_forward(y, x, w, b_bad, seq),
                         "linear_forward: bias has 5 elements but weight has 4 rows (out features)", llm::error);
    mat<float> dx(3, 5), dw(4, 5), dy(3, 4), dx_bad(3, 6), dw_bad(5, 4), dy_bad(3, 5);
    vec<float> db(4), db_bad(3);
    CHECK_THROWS_WITH_AS(llm::nn::linear_backward(dx_bad, dw, db, dy, x, w, seq),
                         "linear_backward: dx is [3, 6] but must be [3, 5] (the shape of x)", llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::linear_backward(dx, dw_bad, db, dy, x, w, seq),
                         "linear_backward: dweight is [5, 4] but must be [4, 5] (the shape of weight)", llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::linear_backward(dx, dw, db_bad, dy, x, w, seq),
                         "linear_backward: dbias has 3 elements but weight has 4 rows (out features)", llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::linear_backward(dx, dw, db, dy_bad, x, w, seq),
                         "linear_backward: dy is [3, 5] but must be [3, 4] (tokens of x, out features = weight rows)",
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::nn::linear_backward(dx, dw, dy, x, w_bad, seq),
                         doctest::Contains("linear_backward: x is [3, 5] but weight is [4, 6]"), llm::error);
    // An fp32 y sharing memory with x is refused before anything is written.
    mat<float> buf(3, 9);
    llm::fill(buf, 1.0f);
    const auto xs = llm::slice(buf, 1, 0, 5);
    const auto ys = llm::slice(buf, 1, 4, 8);
    CHECK_THROWS_WITH_AS(llm::nn::linear_forward(ys, xs, w, b, seq),
                         "linear_forward: y shares memory with x; an output must not overlap an input", llm::error);
    CHECK(buf(0, 4) == 1.0f);
    const auto y_disjoint = llm::slice(buf, 1, 5, 9);
    CHECK_NOTHROW(llm::nn::linear_forward(y_disjoint, xs, w, b, seq));
}
