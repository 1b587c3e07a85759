// SPDX-License-Identifier: Apache-2.0
// llm::quant::gemv / gemm: exact integer block sums (Q4_0 x Q8_0), every format on every code path the CPU
// has against the dequantize-then-fp32 reference within derived bounds, on awkward sizes with poisoned
// outputs; paths agree bit for bit; gemm rows equal gemv; bad input is llm::error; non-finite scales.
#include <llm/quant/matmul.hpp>
#include <llm/quant/quant.hpp>
#include <llm/quant/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace {

namespace q = llm::quant;
using matrix = llm::tensor<float, llm::dims<2>>;

template <class F>
using wview = decltype(q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(), 0, 0));

// Weights with awkward blocks: normal values, an all-zero block, a block with one outlier, a
// negative-dominated block.
std::vector<float> weight_values(std::size_t n, std::size_t k, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(n * k);
    for (float& v : w) v = normal(rng);
    for (std::size_t j = 0; j < std::min<std::size_t>(k, 32); ++j) w[j] = 0.0f;  // row 0: a zero block
    if (n > 1) w[k + k / 2] = 40.0f;                                              // row 1: an outlier
    if (n > 2) {
        for (std::size_t j = 0; j < k; ++j) w[2 * k + j] = -std::fabs(w[2 * k + j]) + 0.1f;
    }
    return w;
}

matrix activations(std::size_t m, std::size_t k, unsigned seed) {
    matrix x(m, k);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    if (m * k > 7) x.data()[7] = -25.0f;  // an activation outlier
    return x;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// The paths to run: every one this CPU has; absent ones are listed for the caller to skip.
std::vector<q::kernel_isa> present_paths() {
    std::vector<q::kernel_isa> v;
    for (auto p : {q::kernel_isa::generic, q::kernel_isa::avx2, q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (q::isa_available(p)) v.push_back(p);
    }
    return v;
}

// What the integer paths multiply: x quantized as gemv/gemm document (q8_0 / q8_k::quantize_block
// per block of each row), decoded exactly in double (code x scale), with each block's largest
// |x| kept for the bound below.
template <class F>
struct quantized_activations {
    std::vector<double> xq;    // m x k
    std::vector<double> amax;  // m x (k / activation block)
    std::size_t ab = 0;        // activation block size
};

template <class F>
quantized_activations<F> quantize_activations(const matrix& x) {
    const std::size_t m = x.extent(0), k = x.extent(1);
    quantized_activations<F> r;
    r.ab = q::detail::int_kernel_k<F> ? q::qk_k : 32;
    r.xq.resize(m * k);
    r.amax.resize(m * (k / r.ab));
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t b = 0; b < k / r.ab; ++b) {
            const float* xb = x.data() + i * k + b * r.ab;
            double amax = 0.0;
            for (std::size_t j = 0; j < r.ab; ++j) amax = std::max(amax, std::fabs(static_cast<double>(xb[j])));
            r.amax[i * (k / r.ab) + b] = amax;
            if (r.ab == 32) {
                q::block_q8_0 blk;
                q::q8_0::quantize_block(xb, blk);
                for (std::size_t j = 0; j < 32; ++j) r.xq[i * k + b * 32 + j] = double(blk.qs[j]) * double(float(blk.d));
            } else {
                q::block_q8_k blk;
                q::q8_k::quantize_block(xb, blk);
                for (std::size_t j = 0; j < q::qk_k; ++j) r.xq[i * k + b * q::qk_k + j] = double(blk.qs[j]) * double(blk.d);
            }
        }
    }
    return r;
}

// Runs gemm on every present path with poisoned outputs and checks:
//  (a) integer paths against x_q W^T in double (x_q: the quantized activations, W dequantized):
//      only fp32 rounding differs. Per output, nb block terms each rounded twice (dw dx, then its
//      product with the exact integer sum: fma) and summed in 8 lanes then a horizontal sum: at
//      most (nb + 5) roundings of 2^-24 relative to T = sum_j (|w_j| + 2 a_b) |xq_j|, where a_b is
//      the largest |w| of the weight block (the decomposition d q + m or d sc q - dmin m has
//      terms up to |w| + 2 a_b). Bound used: (nb + 8) 2^-23 T.
//  (b) every path against reference_gemm (x itself, W dequantized, double): (a) plus the
//      activation rounding, |xq - x| <= amax_x / 127 * (1/2 + 127 * 2^-11) per value (half a
//      Q8 step, plus the f16 rounding of Q8_0's scale times the largest code), times |w_j|.
//      The generic path (no activation rounding): (K + 8) 2^-23 sum |w_j x_j|.
template <class F>
void check_format(std::size_t m, std::size_t n, std::size_t k, unsigned seed, llm::parallel::thread_pool& pool) {
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const auto wf = weight_values(n, k, seed);
    const auto blocks = q::quantize<F>(wf);
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), n, k);
    const auto wd = q::dequantize<F>(std::span<const typename F::block>(blocks));
    const matrix x = activations(m, k, seed + 1);
    matrix ref(m, n);
    q::reference_gemm(ref, x, w);
    const auto xq = quantize_activations<F>(x);
    constexpr std::size_t B = F::block_size;
    std::vector<double> wamax(n * (k / B));
    for (std::size_t j = 0; j < n; ++j)
        for (std::size_t b = 0; b < k / B; ++b)
            for (std::size_t i = 0; i < B; ++i)
                wamax[j * (k / B) + b] = std::max(wamax[j * (k / B) + b], std::fabs(double(wd[j * k + b * B + i])));
    const double eps23 = std::ldexp(1.0, -23);
    for (const auto path : present_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        const bool integer = path != q::kernel_isa::generic && (q::detail::int_kernel_32<F> || q::detail::int_kernel_k<F>);
        matrix y(m, n);
        for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = std::numeric_limits<float>::quiet_NaN();
        q::gemm(y, x, w, {.path = path}, pool);
        const std::size_t nbq = k / xq.ab;
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                double exact_q = 0.0, t = 0.0, act_err = 0.0, abs_wx = 0.0;
                for (std::size_t p = 0; p < k; ++p) {
                    const double wv = wd[j * k + p];
                    exact_q += wv * xq.xq[i * k + p];
                    t += (std::fabs(wv) + 2.0 * wamax[j * (k / B) + p / B]) * std::fabs(xq.xq[i * k + p]);
                    act_err += std::fabs(wv) * xq.amax[i * nbq + p / xq.ab] / 127.0 * (0.5 + 127.0 / 2048.0);
                    abs_wx += std::fabs(wv * double(x(i, p)));
                }
                const double got = y(i, j);
                REQUIRE(std::isfinite(got));
                if (integer) {
                    const double tight = double(k / B + 8) * eps23 * t;
                    CHECK(std::fabs(got - exact_q) <= tight);
                    CHECK(std::fabs(got - double(ref(i, j))) <= tight + act_err + eps23 * std::fabs(double(ref(i, j))));
                } else {
                    CHECK(std::fabs(got - double(ref(i, j))) <= double(k + 8) * eps23 * abs_wx);
                }
            }
        }
    }
}

template <class F>
void check_sizes(std::initializer_list<std::size_t> ks) {
    llm::parallel::thread_pool pool(2);
    unsigned seed = 10;
    for (std::size_t k : ks)
        for (std::size_t m : {1, 2, 5, 9})
            for (std::size_t n : {1, 3, 6, 17}) check_format<F>(m, n, k, seed++, pool);
}

}  // namespace

TEST_CASE("quant gemm: Q4_0 x Q8_0 block sums are exact (power-of-two scales: the fp32 result is exact)") {
    // Weights: each block's signed value of largest magnitude is -8 * 2^e, so d = 2^e exactly and
    // every value is an integer multiple of d; activations: largest |x| 127 * 2^f, integer
    // multiples of 2^f, so Q8_0 keeps them exactly (d = 2^f, codes = x / 2^f). Each block's term
    // d_w d_x sum(q_w q_x) is then an exact dyadic number and every fp32 sum of them is exact
    // (|y| < 2^24 units of the smallest d_w d_x), whatever the order: y must equal the
    // integer-exact value computed in int64.
    const std::size_t n = 13, k = 32 * 37, m = 9;
    std::mt19937 rng(3);
    std::vector<float> wf(n * k);
    std::vector<float> xf(m * k);
    std::vector<int> we(n * k / 32), xe(m * k / 32);
    std::uniform_int_distribution<int> code(-8, 7), xcode(-127, 127), ex(-3, 2);
    for (std::size_t b = 0; b < n * k / 32; ++b) {
        we[b] = ex(rng);
        for (std::size_t j = 0; j < 32; ++j) wf[b * 32 + j] = std::ldexp(float(code(rng)), we[b]);
        wf[b * 32 + (b % 32)] = std::ldexp(-8.0f, we[b]);
    }
    for (std::size_t b = 0; b < m * k / 32; ++b) {
        xe[b] = ex(rng);
        for (std::size_t j = 0; j < 32; ++j) xf[b * 32 + j] = std::ldexp(float(xcode(rng)), xe[b]);
        xf[b * 32 + (b * 7 % 32)] = std::ldexp(b % 2 ? 127.0f : -127.0f, xe[b]);
    }
    const auto blocks = q::quantize<q::q4_0>(wf);
    const auto w = q::matrix_view<q::q4_0_accessor>(std::span<const q::block_q4_0>(blocks), n, k);
    matrix x(m, k);
    std::copy(xf.begin(), xf.end(), x.data());
    llm::parallel::thread_pool pool(2);
    // mm = 6 rows: per-tile decoding; mm = 9: the unpacked weight panel (gemm's path from 8 rows).
    for (const auto path : present_paths())
      for (std::size_t mm : {6, 9}) {
        CAPTURE(std::string(q::isa_name(path)));
        CAPTURE(mm);
        matrix y(m, n);
        for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = std::numeric_limits<float>::quiet_NaN();
        q::gemm(llm::tensor_view<float, llm::dims<2>>(y.data(), mm, n), llm::tensor_view<const float, llm::dims<2>>(x.data(), mm, k),
                w, {.path = path}, pool);
        for (std::size_t i = 0; i < mm; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                // sum over blocks of 2^(we + xe) * sum(q_w q_x), in units of 2^-6 (the smallest scale product).
                std::int64_t units = 0;
                for (std::size_t b = 0; b < k / 32; ++b) {
                    std::int64_t isum = 0;
                    for (std::size_t t = 0; t < 32; ++t) {
                        const auto qw = std::int64_t(std::ldexp(wf[j * k + b * 32 + t], -we[j * k / 32 + b]));
                        const auto qx = std::int64_t(std::ldexp(xf[i * k + b * 32 + t], -xe[i * k / 32 + b]));
                        isum += qw * qx;
                    }
                    units += isum << (we[j * k / 32 + b] + xe[i * k / 32 + b] + 6);
                }
                CHECK(y(i, j) == std::ldexp(double(units), -6));
            }
        }
    }
}

TEST_CASE("quant gemm: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 on every path match the reference within the derived bounds") {
    check_sizes<q::q4_0>({32, 96, 544});
    check_sizes<q::q4_1>({32, 544});
    check_sizes<q::q5_0>({32, 544});
    check_sizes<q::q5_1>({32, 544});
    check_sizes<q::q8_0>({32, 544});
}

TEST_CASE("quant gemm: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K match the reference within the derived bounds") {
    check_sizes<q::q4_k>({256, 768});
    check_sizes<q::q5_k>({256, 768});
    check_sizes<q::q6_k>({256, 768});
    check_sizes<q::q2_k>({256, 768});
    check_sizes<q::q3_k>({256, 768});
}

namespace {

// gemm row i equals gemv of row i bit for bit; sequential equals a pool; bf16 activations equal
// their fp32 widening; strided x and y equal contiguous ones.
// m = 7 takes the per-tile decoding; m = 13 (>= panel_min_rows: 3 tiles of 4 and a row) the
// unpacked weight panel, with n = 11 split over two threads so a chunk ends in a single weight row.
template <class F>
void check_consistency(q::kernel_isa path, std::size_t m = 7) {
    const std::size_t n = 11, k = 2 * 256 + (F::block_size == 32 ? 64 : 0);
    const auto wf = weight_values(n, k, 5);
    const auto blocks = q::quantize<F>(wf);
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), n, k);
    matrix x = activations(m, k, 6);
    llm::tensor<llm::bf16, llm::dims<2>> xb(m, k);
    for (std::size_t i = 0; i < x.size(); ++i) {
        xb.data()[i] = llm::bf16(x.data()[i]);
        x.data()[i] = float(xb.data()[i]);
    }
    llm::parallel::thread_pool pool(2);
    matrix y(m, n), ys(m, n), yb(m, n);
    q::gemm(y, x, w, {.path = path}, pool);
    q::gemm(ys, x, w, {.path = path}, llm::parallel::sequential{});
    q::gemm(yb, xb, w, {.path = path}, pool);
    // Strided: x as the transpose of a [k, m] matrix, y as the transpose of [n, m].
    matrix xt(k, m), yt(n, m);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t p = 0; p < k; ++p) xt(p, i) = x(i, p);
    q::gemm(llm::transpose<0, 1>(yt), llm::transpose<0, 1>(xt), w, {.path = path}, pool);
    for (std::size_t i = 0; i < m; ++i) {
        std::vector<float> yv(n, std::numeric_limits<float>::quiet_NaN());
        llm::tensor_view<float, llm::dims<1>> yvv(yv.data(), n);
        llm::tensor_view<const float, llm::dims<1>> xr(x.data() + i * k, k);
        q::gemv(yvv, xr, w, {.path = path}, pool);
        for (std::size_t j = 0; j < n; ++j) {
            CHECK(same_bits(yv[j], y(i, j)));
            CHECK(same_bits(ys(i, j), y(i, j)));
            CHECK(same_bits(yb(i, j), y(i, j)));
            CHECK(same_bits(yt(j, i), y(i, j)));
        }
    }
}

template <class F>
void check_paths_agree() {
    const std::size_t m = 5, n = 9, k = 3 * 256;
    const auto blocks = q::quantize<F>(weight_values(n, k, 8));
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), n, k);
    const matrix x = activations(m, k, 9);
    matrix y2(m, n);
    q::gemm(y2, x, w, {.path = q::kernel_isa::avx2}, llm::parallel::sequential{});
    for (auto path : {q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (!q::isa_available(path)) continue;
        matrix y(m, n);
        q::gemm(y, x, w, {.path = path}, llm::parallel::sequential{});
        for (std::size_t i = 0; i < y.size(); ++i) CHECK(same_bits(y.data()[i], y2.data()[i]));
    }
}

}  // namespace

TEST_CASE("quant gemm: gemm rows equal gemv; sequential equals a pool; bf16 equals its fp32 widening; strided views") {
    for (const auto path : present_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        check_consistency<q::q4_0>(path);
        check_consistency<q::q4_1>(path);
        check_consistency<q::q5_0>(path);
        check_consistency<q::q5_1>(path);
        check_consistency<q::q8_0>(path);
        check_consistency<q::q4_k>(path);
        check_consistency<q::q5_k>(path);
        check_consistency<q::q6_k>(path);
        check_consistency<q::q2_k>(path);
        check_consistency<q::q3_k>(path);
        for (std::size_t m : {8, 13, 33}) {
            CAPTURE(m);
            check_consistency<q::q4_0>(path, m);
            check_consistency<q::q8_0>(path, m);
            check_consistency<q::q4_k>(path, m);
            check_consistency<q::q6_k>(path, m);
        }
    }
}

TEST_CASE("quant gemm: the AVX-VNNI path gives the AVX2 path's bits" *
          doctest::skip(!q::isa_available(q::kernel_isa::avx_vnni))) {
    REQUIRE(q::isa_available(q::kernel_isa::avx2));
    check_paths_agree<q::q4_0>();
    check_paths_agree<q::q4_1>();
    check_paths_agree<q::q5_0>();
    check_paths_agree<q::q5_1>();
    check_paths_agree<q::q8_0>();
    check_paths_agree<q::q4_k>();
    check_paths_agree<q::q5_k>();
    check_paths_agree<q::q6_k>();
    check_paths_agree<q::q2_k>();
    check_paths_agree<q::q3_k>();
}

TEST_CASE("quant gemm: the AVX-512 VNNI path gives the AVX2 path's bits" *
          doctest::skip(!q::isa_available(q::kernel_isa::avx512_vnni))) {
    REQUIRE(q::isa_available(q::kernel_isa::avx2));
    check_paths_agree<q::q4_0>();
    check_paths_agree<q::q4_1>();
    check_paths_agree<q::q5_0>();
    check_paths_agree<q::q5_1>();
    check_paths_agree<q::q8_0>();
    check_paths_agree<q::q4_k>();
    check_paths_agree<q::q5_k>();
    check_paths_agree<q::q6_k>();
    check_paths_agree<q::q2_k>();
    check_paths_agree<q::q3_k>();
}

TEST_CASE("quant gemm: the AVX2 path is selected where the CPU has it" *
          doctest::skip(!q::isa_available(q::kernel_isa::avx2))) {
    CHECK(q::best_isa() != q::kernel_isa::generic);
}

TEST_CASE("quant gemv: bad input is llm::error naming the call and the values") {
    const std::size_t n = 4, k = 64;
    const auto blocks = q::quantize<q::q4_0>(weight_values(n, k, 1));
    const auto w = q::matrix_view<q::q4_0_accessor>(std::span<const q::block_q4_0>(blocks), n, k);
    std::vector<float> xv(k, 1.0f), yv(n);
    llm::tensor_view<float, llm::dims<1>> y(yv.data(), n);
    llm::tensor_view<const float, llm::dims<1>> x(xv.data(), k);
    // K not a multiple of the block size: matrix_view refuses; so does gemv on a view built by hand.
    CHECK_THROWS_WITH_AS(q::matrix_view<q::q4_0_accessor>(std::span<const q::block_q4_0>(blocks), 2, 48),
                         doctest::Contains("not a multiple of the block size 32"), llm::error);
    llm::tensor_view<const float, llm::dims<2>, llm::layout_right, llm::cpu, q::q4_0_accessor> odd(blocks.data(), 2, 40);
    llm::tensor_view<const float, llm::dims<1>> x40(xv.data(), 40);
    llm::tensor_view<float, llm::dims<1>> y2(yv.data(), 2);
    CHECK_THROWS_WITH_AS(q::gemv(y2, x40, odd), doctest::Contains("gemv<q4_0>: w has 40 columns, not a multiple of the block size 32"), llm::error);
    // A truncated block buffer: 7 blocks cannot hold 4 rows of 2.
    CHECK_THROWS_WITH_AS(q::matrix_view<q::q4_0_accessor>(std::span<const q::block_q4_0>(blocks.data(), 7), n, k),
                         doctest::Contains("7 blocks do not hold 4 rows of 64 values"), llm::error);
    // Lengths of x and y.
    llm::tensor_view<const float, llm::dims<1>> xs(xv.data(), k - 32);
    CHECK_THROWS_WITH_AS(q::gemv(y, xs, w), doctest::Contains("gemv<q4_0>: x has 32 values but w has 64 columns"), llm::error);
    llm::tensor_view<float, llm::dims<1>> ys(yv.data(), n - 1);
    CHECK_THROWS_WITH_AS(q::gemv(ys, x, w), doctest::Contains("gemv<q4_0>: y has 3 values but w has 4 rows"), llm::error);
    // W transposed (no unit column stride).
    CHECK_THROWS_WITH_AS(q::gemv(y, x, llm::transpose<0, 1>(w)), doctest::Contains("unit column stride"), llm::error);
    // gemm shapes.
    matrix xm(3, k), ym(3, n + 1);
    CHECK_THROWS_WITH_AS(q::gemm(ym, xm, w), doctest::Contains("gemm<q4_0>: y is [3, 5] but x W^T is [3, 4]"), llm::error);
    // A path this CPU lacks.
    for (auto path : {q::kernel_isa::avx2, q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (!q::isa_available(path)) {
            CHECK_THROWS_WITH_AS(q::gemv(y, x, w, {.path = path}), doctest::Contains("is not available on this CPU"), llm::error);
        }
    }
}

TEST_CASE("quant gemv: a non-finite weight scale makes its row's output non-finite, as in ggml; validate_weights refuses it") {
    // ggml's dot products multiply each block's integer sum by its f16 scale: an inf or NaN scale
    // reaches the output of its row (inf, or NaN where a lane's sum is 0 or signs meet) and no
    // other row. ggml_validate_row_data (llama.cpp's --check-tensors) reports such blocks;
    // validate_weights is its counterpart.
    const std::size_t n = 5, k = 256;
    auto blocks = q::quantize<q::q4_0>(weight_values(n, k, 2));
    const auto wclean = blocks;
    blocks[2 * (k / 32) + 3].d = llm::f16(std::numeric_limits<float>::infinity());  // row 2, block 3
    blocks[4 * (k / 32) + 0].d = llm::f16(std::numeric_limits<float>::quiet_NaN());  // row 4, block 0
    const auto w = q::matrix_view<q::q4_0_accessor>(std::span<const q::block_q4_0>(blocks), n, k);
    const auto wc = q::matrix_view<q::q4_0_accessor>(std::span<const q::block_q4_0>(wclean), n, k);
    const matrix x = activations(1, k, 3);
    llm::tensor_view<const float, llm::dims<1>> xr(x.data(), k);
    for (const auto path : present_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        std::vector<float> yv(n), yc(n);
        q::gemv(llm::tensor_view<float, llm::dims<1>>(yv.data(), n), xr, w, {.path = path});
        q::gemv(llm::tensor_view<float, llm::dims<1>>(yc.data(), n), xr, wc, {.path = path});
        CHECK(!std::isfinite(yv[2]));
        CHECK(std::isnan(yv[4]));
        for (std::size_t j : {0, 1, 3}) CHECK(same_bits(yv[j], yc[j]));
    }
    CHECK_THROWS_WITH_AS(q::validate_weights<q::q4_0>(std::span<const q::block_q4_0>(blocks)),
                         doctest::Contains("validate_weights<q4_0>: block 19 has a non-finite d (inf)"), llm::error);
    CHECK_NOTHROW(q::validate_weights<q::q4_0>(std::span<const q::block_q4_0>(wclean)));
    auto kb = q::quantize<q::q4_k>(weight_values(2, 256, 4));
    kb[1].dmin = llm::f16(-std::numeric_limits<float>::infinity());
    CHECK_THROWS_WITH_AS(q::validate_weights<q::q4_k>(std::span<const q::block_q4_k>(kb)),
                         doctest::Contains("block 1 has a non-finite dmin (-inf)"), llm::error);
}
