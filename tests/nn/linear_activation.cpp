// SPDX-License-Identifier: Apache-2.0
// llm::nn::linear_forward with an activation fused into the GEMM's store: y = act(x W^T + b)
// equals the unfused chain (linear_forward into an fp32 buffer, then activation_forward<Form>
// into y) bit for bit, for every built-in form, fp32 and bf16 y, awkward sizes, strided views
// and any executor.
//
// No tolerance: the fused call computes the same fp32 product (the same GEMM, the epilogue
// only runs after the last step over k), the same fp32 bias add and the same Form::value on
// lanes of the same SIMD backend (a lane's result does not depend on the other lanes), then
// rounds once to y. Any difference in a bit (an element activated twice or not at all, the
// activation applied before the product is complete, a bias added twice, a second rounding
// through bf16) is a failure.
#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/nn/activations.hpp>
#include <llm/nn/linear.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <type_traits>

namespace {

template <class T>
using mat = llm::tensor<T, llm::dims<2>>;
template <class T>
using vec = llm::tensor<T, llm::dims<1>>;

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

/// The bits of an fp32 or bf16 element.
inline std::uint32_t bits(float v) { return std::bit_cast<std::uint32_t>(v); }
inline std::uint32_t bits(llm::bf16 v) { return std::bit_cast<std::uint16_t>(v); }

/// Elements of a (any view) and b (any view) of the same shape whose bits differ.
template <class A, class B>
std::size_t differing(const A& a, const B& b) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < a.extent(0); ++i) {
        for (std::size_t j = 0; j < a.extent(1); ++j) {
            n += bits(a(i, j)) != bits(b(i, j)) ? 1u : 0u;
        }
    }
    return n;
}

/// The unfused chain: linear_forward into an fp32 buffer (sequential), then the activation
/// kernel into a y of element TY.
template <class Form, class TY, class X, class W, class B>
mat<TY> unfused(const X& x, const W& w, const B* b) {
    mat<float> pre(x.extent(0), w.extent(0));
    if (b != nullptr) {
        llm::nn::linear_forward(pre, x, w, *b, llm::parallel::sequential{});
    } else {
        llm::nn::linear_forward(pre, x, w, llm::parallel::sequential{});
    }
    mat<TY> y(x.extent(0), w.extent(0));
    if (y.size() != 0) {
        llm::nn::activation_forward<Form>(y, pre, llm::parallel::sequential{});
    }
    return y;
}

/// Fused on sequential{}, a 2-thread pool (warmed workspace: a second call) and
/// default_pool(); each equal to the unfused chain bit for bit.
template <class Form, class TY, class TX, class TW>
void fused_case(std::size_t m, std::size_t n, std::size_t k, bool with_bias, std::mt19937& rng,
                llm::parallel::thread_pool& pool, llm::workspace& ws) {
    const auto x = random_mat<TX>(m, k, rng);
    const auto w = random_mat<TW>(n, k, rng);
    const auto b = random_vec<TW>(n, rng);
    const auto want = unfused<Form, TY>(x, w, with_bias ? &b : nullptr);
    mat<TY> y_seq(m, n), y_pool(m, n), y_default(m, n);
    llm::fill(y_seq, TY(12345.0f));  // overwritten, never read
    llm::fill(y_pool, TY(12345.0f));
    if (with_bias) {
        llm::nn::linear_forward(y_seq, x, w, b, Form{}, llm::parallel::sequential{});
        llm::nn::linear_forward(y_pool, x, w, b, Form{}, ws, pool);
        llm::nn::linear_forward(y_pool, x, w, b, Form{}, ws, pool);
        llm::nn::linear_forward(y_default, x, w, b, Form{});
    } else {
        llm::nn::linear_forward(y_seq, x, w, Form{}, llm::parallel::sequential{});
        llm::nn::linear_forward(y_pool, x, w, Form{}, ws, pool);
        llm::nn::linear_forward(y_pool, x, w, Form{}, ws, pool);
        llm::nn::linear_forward(y_default, x, w, Form{});
    }
    INFO("m=", m, " n=", n, " k=", k, " bias=", with_bias, " y ", std::is_same_v<TY, float> ? "fp32" : "bf16", " x ",
         std::is_same_v<TX, float> ? "fp32" : "bf16", " w ", std::is_same_v<TW, float> ? "fp32" : "bf16");
    CHECK(differing(y_seq, want) == 0);
    CHECK(differing(y_pool, want) == 0);
    CHECK(differing(y_default, want) == 0);
}

template <class Form>
void every_size(std::mt19937& rng) {
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    constexpr std::size_t sizes[] = {1, 7, 33, 129};
    for (const std::size_t m : sizes) {
        for (const std::size_t n : sizes) {
            for (const std::size_t k : sizes) {
                for (const bool with_bias : {false, true}) {
                    fused_case<Form, float, float, float>(m, n, k, with_bias, rng, pool, ws);
                    fused_case<Form, llm::bf16, float, float>(m, n, k, with_bias, rng, pool, ws);
                    fused_case<Form, float, llm::bf16, llm::bf16>(m, n, k, with_bias, rng, pool, ws);
                    fused_case<Form, llm::bf16, llm::bf16, llm::bf16>(m, n, k, with_bias, rng, pool, ws);
                }
            }
        }
    }
    // Past the GEMM's kc (several steps over k: the epilogue must wait for the last), several
    // row and column blocks.
    for (const std::size_t m : {7u, 129u}) {
        for (const std::size_t n : {33u, 300u}) {
            fused_case<Form, float, float, float>(m, n, 600, true, rng, pool, ws);
            fused_case<Form, llm::bf16, float, llm::bf16>(m, n, 600, true, rng, pool, ws);
        }
    }
}

}  // namespace

TEST_CASE("linear_forward with an activation equals linear_forward then the activation kernel, bit for bit (every form, "
          "fp32 and bf16 y, sizes 1 7 33 129, any executor)") {
    std::mt19937 rng(13);
    SUBCASE("gelu_tanh") { every_size<llm::nn::gelu_tanh>(rng); }
    SUBCASE("gelu_erf") { every_size<llm::nn::gelu_erf>(rng); }
    SUBCASE("silu") { every_size<llm::nn::silu>(rng); }
    SUBCASE("relu") { every_size<llm::nn::relu>(rng); }
    SUBCASE("identity") { every_size<llm::nn::identity>(rng); }
}

namespace user {

/// A form written outside llm:: (squared ReLU, Primer): the linear layer takes it like the
/// built-in ones.
struct relu_squared {
    template <llm::simd::backend S>
    static typename S::f32 value(typename S::f32 x) {
        const auto r = S::max(S::zero(), x);
        return S::mul(r, r);
    }
    template <llm::simd::backend S>
    static typename S::f32 derivative(typename S::f32 x) {
        return S::mul(S::set1(2.0f), S::max(S::zero(), x));
    }
};

}  // namespace user

TEST_CASE("linear_forward with an activation: a user's form outside llm:: fuses the same way, bit for bit") {
    std::mt19937 rng(17);
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    for (const std::size_t m : {1u, 33u}) {
        for (const std::size_t n : {7u, 129u}) {
            fused_case<user::relu_squared, float, float, float>(m, n, 33, true, rng, pool, ws);
            fused_case<user::relu_squared, llm::bf16, float, llm::bf16>(m, n, 33, false, rng, pool, ws);
        }
    }
}

TEST_CASE("linear_forward with an activation: the activation is applied (not the identity), relu and gelu at known points") {
    // x = [1], W = [[1], [1], [1]], b = (-2, 0, 3): pre-activations -1, 1, 4 exactly.
    mat<float> x(1, 1), w(3, 1), y(1, 3);
    vec<float> b(3);
    x(0, 0) = 1.0f;
    llm::fill(w, 1.0f);
    b(0) = -2.0f;
    b(1) = 0.0f;
    b(2) = 3.0f;
    llm::nn::linear_forward(y, x, w, b, llm::nn::relu{}, llm::parallel::sequential{});
    CHECK(y(0, 0) == 0.0f);
    CHECK(y(0, 1) == 1.0f);
    CHECK(y(0, 2) == 4.0f);
    llm::nn::linear_forward(y, x, w, b, llm::nn::gelu_erf{}, llm::parallel::sequential{});
    // gelu(v) = v Phi(v): Phi(-1) = 0.158655, Phi(1) = 0.841345, Phi(4) = 0.999968; the
    // simd erf's relative error is below 1e-6 (tests/simd/math.cpp), 1e-5 leaves margin.
    CHECK(std::fabs(y(0, 0) - -0.15865525f) <= 1e-5f);
    CHECK(std::fabs(y(0, 1) - 0.84134475f) <= 1e-5f);
    CHECK(std::fabs(y(0, 2) - 3.99987330f) <= 1e-5f);
}

TEST_CASE("linear_forward with an activation: strided views (x and W^T transposed or sliced, a strided bias, y with "
          "strided rows or columns) give the contiguous chain's bits") {
    std::mt19937 rng(21);
    llm::parallel::thread_pool pool(2);
    const std::size_t m = 33, n = 29, k = 70;
    const auto xs = random_mat<float>(m, k + 5, rng);
    const auto x = llm::slice(xs, 1, 2, 2 + k);  // [m, k], row stride k + 5
    const auto wt = random_mat<float>(k, n, rng);
    const auto w = llm::transpose(wt, 0, 1);     // [n, k], unit row stride
    const auto bs = random_mat<float>(n, 3, rng);
    const auto b = llm::select(bs, 1, 1);         // [n], stride 3
    // Contiguous copies for the unfused chain.
    mat<float> xc(m, k), wc(n, k);
    vec<float> bc(n);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t p = 0; p < k; ++p) {
            xc(i, p) = x(i, p);
        }
    }
    for (std::size_t j = 0; j < n; ++j) {
        bc(j) = b(j);
        for (std::size_t p = 0; p < k; ++p) {
            wc(j, p) = w(j, p);
        }
    }
    const auto want = unfused<llm::nn::gelu_tanh, float>(xc, wc, &bc);
    const auto want_h = unfused<llm::nn::gelu_tanh, llm::bf16>(xc, wc, &bc);
    SUBCASE("y a column slice of a wider matrix (row stride > n)") {
        mat<float> ys(m, n + 9);
        llm::fill(ys, -7.0f);
        auto y = llm::slice(ys, 1, 4, 4 + n);
        llm::nn::linear_forward(y, x, w, b, llm::nn::gelu_tanh{}, pool);
        CHECK(differing(y, want) == 0);
        CHECK(ys(m - 1, 3) == -7.0f);  // outside the slice: untouched
        CHECK(ys(0, 4 + n) == -7.0f);
    }
    SUBCASE("fp32 y with strided rows (the transpose of an [n, m] matrix)") {
        mat<float> yt(n, m);
        auto y = llm::transpose(yt, 0, 1);
        for (auto* exec : {static_cast<llm::parallel::thread_pool*>(nullptr), &pool}) {
            llm::fill(yt, 0.0f);
            if (exec == nullptr) {
                llm::nn::linear_forward(y, x, w, b, llm::nn::gelu_tanh{}, llm::parallel::sequential{});
            } else {
                llm::nn::linear_forward(y, x, w, b, llm::nn::gelu_tanh{}, *exec);
            }
            CHECK(differing(y, want) == 0);
        }
    }
    SUBCASE("bf16 y with strided rows") {
        mat<llm::bf16> yt(n, m);
        auto y = llm::transpose(yt, 0, 1);
        llm::nn::linear_forward(y, x, w, b, llm::nn::gelu_tanh{}, pool);
        CHECK(differing(y, want_h) == 0);
    }
}

TEST_CASE("linear_forward with an activation: in = 0 gives act(b); tokens = 0 does nothing; bad shapes and overlap are "
          "llm::error naming the argument") {
    mat<float> x(2, 0), w(3, 0), y(2, 3);
    vec<float> b(3);
    b(0) = -1.0f;
    b(1) = 0.5f;
    b(2) = 2.0f;
    llm::fill(y, NAN);
    llm::nn::linear_forward(y, x, w, b, llm::nn::relu{}, llm::parallel::sequential{});
    CHECK(y(1, 0) == 0.0f);
    CHECK(y(1, 1) == 0.5f);
    CHECK(y(0, 2) == 2.0f);
    mat<float> x0(0, 5), w0(3, 5), y0(0, 3);
    CHECK_NOTHROW(llm::nn::linear_forward(y0, x0, w0, b, llm::nn::silu{}, llm::parallel::sequential{}));

    mat<float> xs(4, 5), ws5(3, 5), ybad(4, 4);
    auto expect_error = [](auto&& call, const char* needle) {
        std::string what;
        try {
            call();
        } catch (const llm::error& e) {
            what = e.what();
        }
        INFO("message: ", what);
        CHECK(what.find(needle) != std::string::npos);
    };
    expect_error([&] { llm::nn::linear_forward(ybad, xs, ws5, b, llm::nn::silu{}, llm::parallel::sequential{}); },
                 "linear_forward: y is [4, 4]");
    vec<float> b4(4);
    mat<float> y4(4, 3);
    expect_error([&] { llm::nn::linear_forward(y4, xs, ws5, b4, llm::nn::silu{}, llm::parallel::sequential{}); },
                 "bias has 4 elements");
    // y overlapping x: x is the first 3 columns of a [4, 5] matrix, y its last 3.
    mat<float> shared(4, 5);
    auto xo = llm::slice(shared, 1, 0, 3);
    auto yo = llm::slice(shared, 1, 2, 5);
    mat<float> w3(3, 3);
    expect_error([&] { llm::nn::linear_forward(yo, xo, w3, llm::nn::gelu_tanh{}, llm::parallel::sequential{}); },
                 "y shares memory with x");
}
