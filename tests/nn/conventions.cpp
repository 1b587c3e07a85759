// SPDX-License-Identifier: Apache-2.0
// Tests of the kernel convention in llm::nn: backwards accumulate, the executor is last (a temporary, a pool or none),
// constraints reject wrong arguments at the call, and the policy families (activation form, RoPE style) are open.
#include "helpers.hpp"

#include <llm/nn/nn.hpp>
#include <llm/nn/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/math.hpp>
#include <llm/tensor/algorithm.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>

using namespace nn_test;
namespace nn = llm::nn;

// ---- policies written by a user, outside llm:: --------------------------------------------------
namespace user_policies {

/// Quick GELU (CLIP): x * sigmoid(1.702 x), written with the SIMD facade's operations and its
/// shared maths (llm::simd::sigmoid) only.
struct quick_gelu {
    static constexpr float k = 1.702f;
    template <llm::simd::backend S>
    static typename S::f32 sigmoid(typename S::f32 x) {
        return llm::simd::sigmoid<S>(S::mul(S::set1(k), x));
    }
    template <llm::simd::backend S>
    static typename S::f32 value(typename S::f32 x) {
        return S::mul(x, sigmoid<S>(x));
    }
    /// s + k x s (1 - s), s = sigmoid(k x).
    template <llm::simd::backend S>
    static typename S::f32 derivative(typename S::f32 x) {
        const auto s = sigmoid<S>(x);
        return S::fma(S::mul(S::set1(k), x), S::mul(s, S::sub(S::set1(1.0f), s)), s);
    }
};

/// A RoPE layout no library type has: offset i pairs with its mirror head_dim - 1 - i.
struct mirror_pairs {
    static constexpr std::size_t first(std::size_t i, std::size_t /*half*/) { return i; }
    static constexpr std::size_t second(std::size_t i, std::size_t half) { return 2 * half - 1 - i; }
};

/// The rotate-half layout written again by a user: same members, a different type.
struct my_rotate_half {
    static constexpr std::size_t first(std::size_t i, std::size_t /*half*/) { return i; }
    static constexpr std::size_t second(std::size_t i, std::size_t half) { return i + half; }
};

/// A broken layout: every pair uses offset 0.
struct broken_pairs {
    static constexpr std::size_t first(std::size_t /*i*/, std::size_t /*half*/) { return 0; }
    static constexpr std::size_t second(std::size_t i, std::size_t /*half*/) { return i + 1; }
};

}  // namespace user_policies

static_assert(nn::activation_form<user_policies::quick_gelu> && nn::activation_form<user_policies::quick_gelu, llm::simd::scalar>);
static_assert(!nn::activation_form<int> && !nn::activation_form<user_policies::mirror_pairs>);
static_assert(nn::rope_style<user_policies::mirror_pairs> && !nn::rope_style<user_policies::quick_gelu>);

// ---- constraints in the head: a wrong argument makes the call ill-formed, not the body ----------
namespace {
template <class Y, class X>
concept can_softmax = requires(Y&& y, X&& x) { nn::softmax_forward(std::forward<Y>(y), std::forward<X>(x)); };
template <class DX, class DW, class R>
concept can_rmsnorm_backward = requires(DX&& dx, DW&& dw, R&& rstd, const mat_f& m, const vec_f& w) {
    nn::rmsnorm_backward(std::forward<DX>(dx), std::forward<DW>(dw), std::forward<R>(rstd), m, m, w);
};
template <class I>
concept can_embed = requires(I&& ids, mat_f& out, const mat_f& table) { nn::embedding_forward(out, std::forward<I>(ids), table); };
template <class E>
concept can_softmax_on = requires(mat_f& y, const mat_f& x, E&& exec) { nn::softmax_forward(y, x, std::forward<E>(exec)); };
}  // namespace

static_assert(can_softmax<mat_f&, const mat_f&> && can_softmax<mat_h&, const mat_h&>);
static_assert(!can_softmax<const mat_f&, const mat_f&>);                           // the output is const
static_assert(!can_softmax<mat_f&, const llm::tensor<int, llm::dims<2>>&>);        // int elements
static_assert(!can_softmax<mat_f&, const vec_f&>);                                 // wrong rank
static_assert(can_rmsnorm_backward<mat_f&, vec_f&, const vec_f&>);
static_assert(!can_rmsnorm_backward<mat_f&, llm::tensor<llm::bf16, llm::dims<1>>&, const vec_f&>);  // dweight is fp32
static_assert(!can_rmsnorm_backward<mat_f&, vec_f&, const llm::tensor<llm::bf16, llm::dims<1>>&>);  // rstd is fp32
static_assert(can_embed<const llm::tensor<std::int32_t, llm::dims<1>>&> && !can_embed<const vec_f&>);  // ids are integers
static_assert(can_softmax_on<llm::parallel::sequential> && can_softmax_on<llm::parallel::thread_pool&> &&
              can_softmax_on<const llm::parallel::sequential&> && !can_softmax_on<int>);

// ---- gradients accumulate ------------------------------------------------------------------------
namespace {

/// Checks twice == 2 * once element by element, exactly. Why exact: the second call adds to
/// the first result r the same value q the first call rounded to r (the kernels are
/// deterministic), and r + q rounds to 2r because |q - r| <= ulp(r) / 2 is under half an ulp
/// of 2r; for fp32 q = r and r + r is exact, for bf16 the sum rounds back onto 2r.
/// (Embedding rows hit by several ids are the exception; see the embedding subcase.)
template <class V>
void check_twice(const V& once, const V& twice, const char* name) {
    INFO(name);
    const auto a = to_double(once), b = to_double(twice);
    REQUIRE(a.size() == b.size());
    std::size_t mismatches = 0, nonzero = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        mismatches += b[i] == 2.0 * a[i] ? 0 : 1;
        nonzero += a[i] != 0.0 ? 1 : 0;
    }
    CHECK(mismatches == 0);
    CHECK(nonzero > a.size() / 2);  // an all-zero gradient would pass trivially
}

/// Runs `backward(grads...)` once on zeroed copies and twice on other zeroed copies, and checks
/// every gradient of the second set is exactly twice the first.
template <class Backward, class... G>
void check_accumulates(Backward backward, std::initializer_list<const char*> names, G... grads) {
    auto once = std::make_tuple(G(grads)...);
    auto twice = std::make_tuple(G(grads)...);
    std::apply([](auto&... g) { llm::zero_grad(g...); }, once);
    std::apply([](auto&... g) { llm::zero_grad(g...); }, twice);
    std::apply(backward, once);
    std::apply(backward, twice);
    std::apply(backward, twice);
    const char* const* name = names.begin();
    std::apply([&](const auto&... o) { std::apply([&](const auto&... t) { (check_twice(o, t, *name++), ...); }, twice); }, once);
}

}  // namespace

TEST_CASE_TEMPLATE("every backward accumulates: two calls on zeroed gradients give exactly twice one call", T, float, llm::bf16) {
    using mat = llm::tensor<T, llm::dims<2>>;
    std::mt19937 rng(51);
    llm::parallel::thread_pool pool(2);
    // 300 x 97: several row chunks for the weight-gradient partial sums, a partial vector per row.
    const std::size_t rows = 300, cols = 97;
    const auto x = random_matrix<T>(rows, cols, rng);
    const auto dy = random_matrix<T>(rows, cols, rng);
    const auto w = random_vector<T>(cols, rng);
    const auto b = random_vector<T>(cols, rng, -1.0f, 1.0f);

    SUBCASE("rmsnorm_backward: dx and dweight") {
        mat y(rows, cols);
        vec_f rstd(rows);
        nn::rmsnorm_forward(y, rstd, x, w, 1e-5f, pool);
        check_accumulates([&](mat& dx, vec_f& dw) { nn::rmsnorm_backward(dx, dw, rstd, dy, x, w, pool); }, {"dx", "dweight"},
                          mat(rows, cols), vec_f(cols));
    }
    SUBCASE("layernorm_backward: dx, dweight and dbias") {
        mat y(rows, cols);
        vec_f mean(rows), rstd(rows);
        nn::layernorm_forward(y, mean, rstd, x, w, b, 1e-5f, pool);
        check_accumulates([&](mat& dx, vec_f& dw, vec_f& db) { nn::layernorm_backward(dx, dw, db, mean, rstd, dy, x, w, pool); },
                          {"dx", "dweight", "dbias"}, mat(rows, cols), vec_f(cols), vec_f(cols));
    }
    SUBCASE("silu, gelu (both forms), a user's activation form") {
        check_accumulates([&](mat& dx) { nn::silu_backward(dx, dy, x, pool); }, {"silu dx"}, mat(rows, cols));
        check_accumulates([&](mat& dx) { nn::gelu_backward<nn::gelu_erf>(dx, dy, x, pool); }, {"gelu_erf dx"}, mat(rows, cols));
        check_accumulates([&](mat& dx) { nn::gelu_backward<nn::gelu_tanh>(dx, dy, x); }, {"gelu_tanh dx"}, mat(rows, cols));
        check_accumulates([&](mat& dx) { nn::activation_backward<user_policies::quick_gelu>(dx, dy, x, pool); },
                          {"quick_gelu dx"}, mat(rows, cols));
    }
    SUBCASE("swiglu_backward: dgate and dup") {
        const auto up = random_matrix<T>(rows, cols, rng);
        check_accumulates([&](mat& dg, mat& du) { nn::swiglu_backward(dg, du, dy, x, up, pool); },
                          {"dgate", "dup"}, mat(rows, cols), mat(rows, cols));
    }
    SUBCASE("softmax_backward and log_softmax_backward") {
        mat y(rows, cols), logp(rows, cols);
        nn::softmax_forward(y, x, pool);
        nn::log_softmax_forward(logp, x, pool);
        check_accumulates([&](mat& dx) { nn::softmax_backward(dx, y, dy, pool); }, {"softmax dx"}, mat(rows, cols));
        check_accumulates([&](mat& dx) { nn::log_softmax_backward(dx, logp, dy, llm::parallel::sequential{}); },
                          {"log_softmax dx"}, mat(rows, cols));
    }
    SUBCASE("residual_add_backward: dx and dresidual") {
        check_accumulates([&](mat& dx, mat& dr) { nn::residual_add_backward(dx, dr, dy, pool); }, {"dx", "dresidual"},
                          mat(rows, cols), mat(rows, cols));
    }
    SUBCASE("cross_entropy_backward: dlogits, with smoothing and ignored rows") {
        llm::tensor<std::int64_t, llm::dims<1>> t(rows);
        for (std::size_t r = 0; r < rows; ++r) {
            t(r) = r % 5 == 3 ? -100 : static_cast<std::int64_t>((r * 37) % cols);
        }
        vec_f lse(rows);
        const nn::cross_entropy_options o{.label_smoothing = 0.1f};
        (void)nn::cross_entropy_forward(lse, x, t, o, pool);
        // The gradients are ~1 / (rows * vocab), so mostly tiny but nonzero: the check is exact.
        check_accumulates([&](mat& d) { nn::cross_entropy_backward(d, lse, 2.0f, x, t, o, pool); }, {"dlogits"}, mat(rows, cols));
    }
    SUBCASE("embedding_backward: dtable") {
        // Distinct ids: each row of dtable gets one addition per call, so twice is exact.
        const std::size_t vocab = 400, n = 150;
        llm::tensor<std::int32_t, llm::dims<1>> ids(n);
        for (std::size_t i = 0; i < n; ++i) {
            ids(i) = static_cast<std::int32_t>((i * 7) % vocab);  // 7 is coprime to 400: all distinct
        }
        const auto dout = random_matrix<T>(n, cols, rng);
        mat_f once(vocab, cols), twice(vocab, cols);
        llm::zero_grad(once, twice);
        nn::embedding_backward(once, dout, ids, pool);
        nn::embedding_backward(twice, dout, ids, pool);
        nn::embedding_backward(twice, dout, ids, llm::parallel::sequential{});
        const auto a = to_double(once), c = to_double(twice);
        std::size_t mismatches = 0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            mismatches += c[i] == 2.0 * a[i] ? 0 : 1;
        }
        CHECK(mismatches == 0);
        // Repeated ids: a row's k additions round after each, so the second call is 2x only to
        // within k roundings of fp32 (relative 1e-7 each, k <= 50 here): 1e-5 on the norm.
        llm::tensor<std::int32_t, llm::dims<1>> rep(n);
        for (std::size_t i = 0; i < n; ++i) {
            rep(i) = static_cast<std::int32_t>(i % 3);
        }
        llm::zero_grad(once, twice);
        nn::embedding_backward(once, dout, rep, pool);
        nn::embedding_backward(twice, dout, rep);
        nn::embedding_backward(twice, dout, rep);
        std::vector<double> doubled = to_double(once);
        for (double& v : doubled) {
            v *= 2.0;
        }
        CHECK(rel_error(to_double(twice), doubled) < tol_f32);
    }
    SUBCASE("rope_backward: both built-in layouts and a user's") {
        using cube = llm::tensor<T, llm::dims<3>>;
        const std::size_t tokens = 9, heads = 3, dim = 66;
        cube dq(tokens, heads, dim);
        for (std::size_t i = 0; i < dq.size(); ++i) {
            dq.data()[i] = T(std::sin(static_cast<float>(i)));
        }
        llm::tensor<std::int64_t, llm::dims<1>> pos(tokens);
        for (std::size_t t = 0; t < tokens; ++t) {
            pos(t) = static_cast<std::int64_t>(3 * t + 1);
        }
        const nn::rope_params<nn::rope_scaling::llama3> p{.theta = 5e5};
        check_accumulates([&](cube& dx) { nn::rope_backward(dx, dq, pos, p, pool); }, {"rotate_half dx"}, cube(tokens, heads, dim));
        check_accumulates([&](cube& dx) { nn::rope_backward<nn::rope_interleaved>(dx, dq, pos, pool); }, {"interleaved dx"},
                          cube(tokens, heads, dim));
        check_accumulates([&](cube& dx) { nn::rope_backward<user_policies::mirror_pairs>(dx, dq, pos); }, {"mirror dx"},
                          cube(tokens, heads, dim));
    }
}

// ---- executor last: a temporary, an lvalue pool, or none ---------------------------------------
TEST_CASE("every kernel runs on sequential{}, a thread_pool and default_pool() with identical results") {
    std::mt19937 rng(52);
    const std::size_t rows = 40, cols = 33;
    const auto x = random_matrix<float>(rows, cols, rng);
    const auto w = random_vector<float>(cols, rng);
    llm::parallel::thread_pool pool(2);
    mat_f y1(rows, cols), y2(rows, cols), y3(rows, cols);
    vec_f r1(rows), r2(rows), r3(rows), m(rows);
    nn::rmsnorm_forward(y1, r1, x, w, 1e-5f, llm::parallel::sequential{});
    nn::rmsnorm_forward(y2, r2, x, w, 1e-5f, pool);
    nn::rmsnorm_forward(y3, r3, x, w, 1e-5f);
    CHECK((to_double(y1) == to_double(y2) && to_double(y1) == to_double(y3)));
    nn::layernorm_forward(y1, m, r1, x, w, w, 1e-5f, llm::parallel::sequential{});
    nn::layernorm_forward(y2, m, r2, x, w, w, 1e-5f, pool);
    nn::layernorm_forward(y3, m, r3, x, w, w, 1e-5f);
    CHECK((to_double(y1) == to_double(y2) && to_double(y1) == to_double(y3)));
    nn::swiglu_forward(y1, x, x, llm::parallel::sequential{});
    nn::swiglu_forward(y2, x, x, pool);
    nn::swiglu_forward(y3, x, x);
    CHECK((to_double(y1) == to_double(y2) && to_double(y1) == to_double(y3)));
    nn::residual_add(y1, x, x, llm::parallel::sequential{});
    nn::residual_add(y2, x, x, pool);
    nn::residual_add(y3, x, x);
    CHECK((to_double(y1) == to_double(y2) && to_double(y1) == to_double(y3)));
    llm::tensor<std::int64_t, llm::dims<1>> t(rows);
    for (std::size_t r = 0; r < rows; ++r) {
        t(r) = static_cast<std::int64_t>(r % cols);
    }
    const float l1 = nn::cross_entropy_forward(r1, x, t, llm::parallel::sequential{});
    const float l2 = nn::cross_entropy_forward(r2, x, t, {}, pool);
    const float l3 = nn::cross_entropy_forward(r3, x, t);
    CHECK((l1 == l2 && l1 == l3));
    llm::tensor<float, llm::dims<3>> q(rows, 3, 22), q1(rows, 3, 22), q2(rows, 3, 22), q3(rows, 3, 22);
    llm::fill(q, 0.25f);
    nn::rope_forward(q1, q, t, llm::parallel::sequential{});
    nn::rope_forward(q2, q, t, nn::rope_params<>{}, pool);
    nn::rope_forward(q3, q, t);
    CHECK((to_double(q1) == to_double(q2) && to_double(q1) == to_double(q3)));
}

// ---- open policy families -----------------------------------------------------------------------
TEST_CASE_TEMPLATE("a user's activation form outside llm:: works through the public kernels", T, float, llm::bf16) {
    std::mt19937 rng(53);
    const std::size_t rows = 7, cols = 65;
    const auto x = random_matrix<T>(rows, cols, rng, -8.0f, 8.0f);
    const auto dy = random_matrix<T>(rows, cols, rng);
    const auto xd = to_double(x), dyd = to_double(dy);
    std::vector<double> y_ref, dx_ref;  // plain loop in double
    for (std::size_t i = 0; i < xd.size(); ++i) {
        const double s = 1.0 / (1.0 + std::exp(-1.702 * xd[i]));
        y_ref.push_back(xd[i] * s);
        dx_ref.push_back(dyd[i] * (s + 1.702 * xd[i] * s * (1.0 - s)));
    }
    auto y = poisoned<T, 2>(rows, cols);
    llm::tensor<T, llm::dims<2>> dx(rows, cols);
    llm::zero_grad(dx);
    nn::activation_forward<user_policies::quick_gelu>(y, x, llm::parallel::sequential{});
    nn::activation_backward<user_policies::quick_gelu>(dx, dy, x);
    // Same bounds as the built-in activations (helpers.hpp): the facade's exp is good to ~1e-7.
    CHECK(rel_error_scaled(to_double(y), y_ref, xd) < tolerance<T>);
    CHECK(rel_error_scaled(to_double(dx), dx_ref, dyd) < tolerance<T>);
    // gelu_forward accepts any activation_form too, on every SIMD backend.
    auto y2 = poisoned<T, 2>(rows, cols);
    nn::gelu_forward<user_policies::quick_gelu, llm::simd::scalar>(y2, x);
    CHECK(rel_error_scaled(to_double(y2), y_ref, xd) < tolerance<T>);
}

TEST_CASE_TEMPLATE("a user's RoPE layout outside llm:: works through the public kernels", T, float, llm::bf16) {
    using cube = llm::tensor<T, llm::dims<3>>;
    std::mt19937 rng(54);
    const std::size_t tokens = 5, heads = 2, dim = 18, half = dim / 2;
    cube x(tokens, heads, dim);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x.data()[i] = T(dist(rng));
    }
    llm::tensor<std::int32_t, llm::dims<1>> pos(tokens);
    for (std::size_t t = 0; t < tokens; ++t) {
        pos(t) = static_cast<std::int32_t>(100 * t + 3);
    }
    // Plain loop: element i pairs with dim - 1 - i, angle pos * 10000^(-2i / dim).
    std::vector<double> y_ref(x.size()), dx_ref(x.size());
    const auto xd = to_double(x);
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t h = 0; h < heads; ++h) {
            const std::size_t base = (t * heads + h) * dim;
            for (std::size_t i = 0; i < half; ++i) {
                const double angle = pos(t) * std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
                const double c = std::cos(angle), s = std::sin(angle);
                const double a = xd[base + i], b = xd[base + dim - 1 - i];
                y_ref[base + i] = a * c - b * s;
                y_ref[base + dim - 1 - i] = b * c + a * s;
                dx_ref[base + i] = a * c + b * s;  // backward: rotation by -angle
                dx_ref[base + dim - 1 - i] = b * c - a * s;
            }
        }
    }
    auto y = poisoned<T, 3>(tokens, heads, dim);
    cube dx(tokens, heads, dim);
    llm::zero_grad(dx);
    nn::rope_forward<user_policies::mirror_pairs>(y, x, pos, llm::parallel::sequential{});
    nn::rope_backward<user_policies::mirror_pairs>(dx, x, pos);
    // The kernel's fp32 sin/cos of angles reduced in double: ~1e-7 relative, as for the built-in layouts.
    CHECK(rel_error(to_double(y), y_ref) < tolerance<T>);
    CHECK(rel_error(to_double(dx), dx_ref) < tolerance<T>);
    // The library's double reference takes the user's layout as well.
    std::vector<double> y_lib(x.size());
    const auto inv = nn::rope_inverse_frequencies("test", dim, nn::rope_params<>{});
    const std::vector<std::int64_t> pos64(pos.data(), pos.data() + tokens);
    nn::reference::rope_apply<user_policies::mirror_pairs>(view_of(y_lib, tokens, heads, dim), view_of(xd, tokens, heads, dim),
                                                           view_of(pos64), inv, 1.0);
    CHECK(rel_error(y_lib, y_ref) < 1e-12);

    // A user's copy of rotate-half is recognised by its members and gives the built-in's bits.
    auto y_mine = poisoned<T, 3>(tokens, heads, dim), y_lib_half = poisoned<T, 3>(tokens, heads, dim);
    nn::rope_forward<user_policies::my_rotate_half>(y_mine, x, pos);
    nn::rope_forward<nn::rope_rotate_half>(y_lib_half, x, pos);
    CHECK(to_double(y_mine) == to_double(y_lib_half));

    // A layout whose pairs reuse an offset is rejected, not silently misapplied.
    CHECK_THROWS_WITH_AS(nn::rope_forward<user_policies::broken_pairs>(y, x, pos),
                         "rope_forward: the rope style's pair 1 is (0, 2), which is out of [0, 18) or reuses an offset (every "
                         "offset must be used once)",
                         llm::error);
}

TEST_CASE("the kernels take llm::kernel_view arguments, and every rank-2 view through one checked row_view") {
    // A kernel_view is itself a view_of_rank: the row_view / strided_view a kernel sees passes
    // back into the public kernels, and gives the same result as the tensors it views.
    std::mt19937 rng(71);
    const auto x = random_matrix<float>(6, 37, rng);
    const auto w = random_vector<float>(37, rng);
    mat_f y_tensor(6, 37), y_kernel(6, 37);
    vec_f rstd_tensor(6), rstd_kernel(6);
    nn::rmsnorm_forward(y_tensor, rstd_tensor, x, w, 1e-5f, llm::parallel::sequential{});
    const llm::row_view<float, 2> yk = llm::to_kernel_view<llm::dims<2>, llm::unit_last_stride<2>>("test", "y", y_kernel);
    const llm::strided_view<const float, 2> xk = llm::to_kernel_view<2>(x);
    nn::rmsnorm_forward(yk, llm::to_kernel_view<1>(rstd_kernel), xk, llm::to_kernel_view<1>(w), 1e-5f,
                        llm::parallel::sequential{});
    CHECK(to_double(y_kernel) == to_double(y_tensor));
    CHECK(to_double(rstd_kernel) == to_double(rstd_tensor));
    // A strided last dimension is refused by llm::to_kernel_view, naming the call and the argument.
    mat_f sq(37, 37);
    CHECK_THROWS_WITH_AS(nn::rmsnorm_forward(llm::transpose(sq, 0, 1), rstd_tensor, x, w, 1e-5f),
                         "rmsnorm_forward: y must have stride 1 in dim 1 (its strides are [1, 37])", llm::error);
    CHECK_THROWS_WITH_AS(nn::silu_backward(y_tensor, llm::transpose(sq, 0, 1), x),
                         "silu_backward: dy must have stride 1 in dim 1 (its strides are [1, 37])", llm::error);
    // A rank-1 argument (a parameter, a statistic) must be contiguous too.
    const auto w2 = random_matrix<float>(37, 2, rng);
    CHECK_THROWS_WITH_AS(nn::rmsnorm_forward(y_tensor, rstd_tensor, x, llm::select(w2, 1, 0), 1e-5f),
                         "rmsnorm_forward: weight must have stride 1 in dim 0 (its strides are [2])", llm::error);
}
