// SPDX-License-Identifier: Apache-2.0
// llm::quant::quantize_activations and the gemv / gemm overloads taking its result: the same bits
// as gemv / gemm of the fp32 rows on every integer path, shared across compatible weight formats,
// row views, bf16 rows, and bad input as llm::error.
#include <llm/core/bf16.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace {

namespace q = llm::quant;
using matrix = llm::tensor<float, llm::dims<2>>;

std::vector<float> randn(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

matrix rand_matrix(std::size_t m, std::size_t k, unsigned seed) {
    matrix x(m, k);
    const auto v = randn(m * k, seed);
    std::memcpy(x.data(), v.data(), v.size() * sizeof(float));
    if (m * k > 5) x.data()[5] = 30.0f;  // an outlier
    return x;
}

bool same_bits(const matrix& a, const matrix& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<q::kernel_isa> integer_paths() {
    std::vector<q::kernel_isa> v;
    for (auto p : {q::kernel_isa::avx2, q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (q::isa_available(p)) v.push_back(p);
    }
    return v;
}

template <class F>
struct weights {
    std::vector<typename F::block> blocks;
    std::size_t n, k;
    weights(std::size_t n_, std::size_t k_, unsigned seed) : blocks(q::quantize<F>(randn(n_ * k_, seed))), n(n_), k(k_) {}
    auto view() const { return q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), n, k); }
};

// A (the activation format quantized for) against weights of G: gemm(y, qa, w) equals gemm(y, x,
// w) bit for bit for m rows (below and above gemm's panel threshold of 8 rows), every row of
// gemv(y, qa.rows(i, 1), w) equals gemv(y, x_i, w), and a row range view equals the gemm of those
// rows; on a pool and sequentially.
template <class A, class G>
void check_same_bits(std::size_t m, std::size_t n, std::size_t k, q::kernel_isa path, llm::parallel::thread_pool& pool) {
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    CAPTURE(std::string(A::name));
    CAPTURE(std::string(G::name));
    const weights<G> w(n, k, static_cast<unsigned>(m * 131 + n + k));
    const matrix x = rand_matrix(m, k, static_cast<unsigned>(m + 7 * n + k));
    q::quantized_activations<A> qa;
    q::quantize_activations(qa, x, pool);
    REQUIRE(qa.rows() == m);
    REQUIRE(qa.cols() == k);
    matrix want(m, n), got(m, n);
    q::gemm(want, x, w.view(), {.path = path}, pool);
    for (std::size_t i = 0; i < got.size(); ++i) got.data()[i] = std::numeric_limits<float>::quiet_NaN();
    q::gemm(got, qa, w.view(), {.path = path}, pool);
    CHECK(same_bits(got, want));
    q::gemm(got, qa, w.view(), {.path = path}, llm::parallel::sequential{});
    CHECK(same_bits(got, want));
    // gemv per row through a one-row view, against gemv of the fp32 row.
    for (std::size_t i = 0; i < m; ++i) {
        std::vector<float> yv(n, -1.0f), yq(n, -2.0f);
        llm::tensor_view<float, llm::dims<1>> y1(yv.data(), n), y2(yq.data(), n);
        llm::tensor_view<const float, llm::dims<1>> xi(x.data() + i * k, k);
        q::gemv(y1, xi, w.view(), {.path = path}, pool);
        q::gemv(y2, qa.rows(i, 1), w.view(), {.path = path}, pool);
        CHECK(std::memcmp(yv.data(), yq.data(), n * sizeof(float)) == 0);
    }
    // Rows [r0, m) as a view, against gemm of those fp32 rows.
    if (m > 1) {
        const std::size_t r0 = m / 3 + 1, mr = m - r0;
        matrix xr(mr, k), yr(mr, n), yg(mr, n);
        std::memcpy(xr.data(), x.data() + r0 * k, mr * k * sizeof(float));
        q::gemm(yr, xr, w.view(), {.path = path}, pool);
        q::gemm(yg, qa.rows(r0, mr), w.view(), {.path = path}, pool);
        CHECK(same_bits(yg, yr));
    }
}

}  // namespace

TEST_CASE("quant prequantized: gemm / gemv of quantize_activations give gemm / gemv's bits on every integer path") {
    llm::parallel::thread_pool pool(2);
    for (const auto path : integer_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        for (std::size_t m : {1, 3, 8, 13}) {
            check_same_bits<q::q4_0, q::q4_0>(m, 17, 96, path, pool);
            check_same_bits<q::q4_1, q::q4_1>(m, 6, 64, path, pool);
            check_same_bits<q::q5_0, q::q5_0>(m, 6, 64, path, pool);
            check_same_bits<q::q5_1, q::q5_1>(m, 6, 64, path, pool);
            check_same_bits<q::q8_0, q::q8_0>(m, 17, 96, path, pool);
            check_same_bits<q::q4_k, q::q4_k>(m, 9, 512, path, pool);
            check_same_bits<q::q5_k, q::q5_k>(m, 5, 256, path, pool);
            check_same_bits<q::q6_k, q::q6_k>(m, 9, 512, path, pool);
            check_same_bits<q::q2_k, q::q2_k>(m, 7, 512, path, pool);
            check_same_bits<q::q3_k, q::q3_k>(m, 7, 512, path, pool);
            check_same_bits<q::q3_k, q::q6_k>(m, 5, 256, path, pool);
        }
    }
}

TEST_CASE("quant prequantized: one quantization serves every weight format sharing its activation blocks") {
    static_assert(q::activation_compatible<q::q4_0, q::q8_0>);
    static_assert(q::activation_compatible<q::q8_0, q::q5_1>);
    static_assert(q::activation_compatible<q::q5_k, q::q6_k>);
    static_assert(!q::activation_compatible<q::q4_k, q::q6_k>);  // Q4_K's codes are transposed
    static_assert(!q::activation_compatible<q::q4_0, q::q4_k>);
    static_assert(q::activation_compatible<q::q2_k, q::q3_k>);
    static_assert(q::activation_compatible<q::q3_k, q::q6_k>);
    static_assert(!q::integer_kernel_format<q::q8_k>);  // an activation format
    llm::parallel::thread_pool pool(2);
    for (const auto path : integer_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        for (std::size_t m : {1, 9}) {
            check_same_bits<q::q4_0, q::q8_0>(m, 5, 64, path, pool);
            check_same_bits<q::q8_0, q::q4_0>(m, 5, 64, path, pool);
            check_same_bits<q::q4_0, q::q5_1>(m, 5, 64, path, pool);
            check_same_bits<q::q6_k, q::q5_k>(m, 3, 256, path, pool);
            check_same_bits<q::q5_k, q::q6_k>(m, 3, 256, path, pool);
        }
    }
}

TEST_CASE("quant prequantized: a one-row quantization, bf16 rows, strided rows and reuse of the object") {
    llm::parallel::thread_pool pool(2);
    const std::size_t n = 7, k = 256;
    const weights<q::q4_k> w(n, k, 3);
    const matrix x = rand_matrix(3, k, 4);
    for (const auto path : integer_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        // Rank 1: one row.
        llm::tensor_view<const float, llm::dims<1>> x1(x.data() + k, k);
        auto qa = q::quantize_activations<q::q4_k>(x1, llm::parallel::sequential{});
        REQUIRE(qa.rows() == 1);
        std::vector<float> ya(n), yb(n);
        llm::tensor_view<float, llm::dims<1>> va(ya.data(), n), vb(yb.data(), n);
        q::gemv(va, x1, w.view(), {.path = path}, pool);
        q::gemv(vb, qa, w.view(), {.path = path}, pool);
        CHECK(std::memcmp(ya.data(), yb.data(), n * sizeof(float)) == 0);
        // bf16 rows: the blocks of their fp32 widening.
        std::vector<llm::bf16> xb(3 * k);
        matrix xw(3, k);
        for (std::size_t i = 0; i < xb.size(); ++i) {
            xb[i] = llm::bf16(x.data()[i]);
            xw.data()[i] = static_cast<float>(xb[i]);
        }
        llm::tensor_view<const llm::bf16, llm::dims<2>> xbv(xb.data(), 3, k);
        q::quantize_activations(qa, xbv, pool);  // reuses qa (1 row before, 3 now)
        matrix y1(3, n), y2(3, n);
        q::gemm(y1, xw, w.view(), {.path = path}, pool);
        q::gemm(y2, qa, w.view(), {.path = path}, pool);
        CHECK(same_bits(y1, y2));
        // A transposed (column-strided) view of x^T: the same rows.
        matrix xt(k, 3);
        for (std::size_t i = 0; i < 3; ++i)
            for (std::size_t j = 0; j < k; ++j) xt(j, i) = x(i, j);
        q::quantize_activations(qa, llm::transpose<0, 1>(xt), pool);
        q::gemm(y1, x, w.view(), {.path = path}, pool);
        q::gemm(y2, qa, w.view(), {.path = path}, pool);
        CHECK(same_bits(y1, y2));
    }
}

TEST_CASE("quant prequantized: bad input is llm::error") {
    const std::size_t n = 4, k = 64;
    const weights<q::q4_0> w(n, k, 1);
    const weights<q::q8_0> w96(n, 96, 2);
    const matrix x = rand_matrix(2, k, 3);
    q::quantized_activations<q::q4_0> qa;
    // K not a multiple of the block size.
    const matrix x40(2, 40);
    CHECK_THROWS_WITH_AS(q::quantize_activations(qa, x40, llm::parallel::sequential{}),
                         doctest::Contains("quantize_activations<q4_0>: x has 40 columns, not a multiple of the block size 32"),
                         llm::error);
    q::quantize_activations(qa, x, llm::parallel::sequential{});
    matrix y(2, n);
    // K disagreeing with w.
    matrix y96(2, n);
    CHECK_THROWS_WITH_AS(q::gemm(y96, qa, w96.view()),
                         doctest::Contains("gemm<q8_0>: the quantized activations have 64 columns but w has 96"), llm::error);
    // y of the wrong shape.
    matrix y3(3, n);
    CHECK_THROWS_WITH_AS(q::gemm(y3, qa, w.view()), doctest::Contains("gemm<q4_0>: y is [3, 4] but a W^T is [2, 4]"),
                         llm::error);
    // gemv of two rows; y of the wrong length.
    std::vector<float> yv(n);
    llm::tensor_view<float, llm::dims<1>> y1(yv.data(), n), y1s(yv.data(), n - 1);
    CHECK_THROWS_WITH_AS(q::gemv(y1, qa, w.view()), doctest::Contains("gemv<q4_0>: the quantized activations have 2 rows, want 1"),
                         llm::error);
    CHECK_THROWS_WITH_AS(q::gemv(y1s, qa.rows(0, 1), w.view()), doctest::Contains("gemv<q4_0>: y has 3 values but w has 4 rows"),
                         llm::error);
    // Rows past the end.
    CHECK_THROWS_WITH_AS((void)qa.rows(1, 2), doctest::Contains("rows [1, 3) of 2"), llm::error);
    // The generic path multiplies fp32 activations: refused.
    CHECK_THROWS_WITH_AS(q::gemm(y, qa, w.view(), {.path = q::kernel_isa::generic}),
                         doctest::Contains("need an integer kernel path"), llm::error);
}
