// SPDX-License-Identifier: Apache-2.0
// llm::quant::packed_matrix (8-row interleaved Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 and the K formats) and its gemv / gemm: packing round-trips every
// block; products match the quantized-activation product (and the fp32 reference) within derived bounds on
// awkward sizes; every path gives the same bits; gemm rows equal gemv; a pool equals sequential; pre-quantized
// activations equal the plain call; Q4_0 with power-of-two scales is exact; bad input is llm::error.
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/any_matrix.hpp>
#include <llm/quant/packed.hpp>
#include <llm/quant/quant.hpp>
#include <llm/quant/reference.hpp>
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
#include <type_traits>
#include <vector>

namespace {

namespace q = llm::quant;
using matrix = llm::tensor<float, llm::dims<2>>;

// Weights with awkward blocks: normal values, a zero block (row 0), an outlier (row 1), a
// negative-dominated row (row 2).
std::vector<float> weight_values(std::size_t n, std::size_t k, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(n * k);
    for (float& v : w) v = normal(rng);
    for (std::size_t j = 0; j < std::min<std::size_t>(k, 32); ++j) w[j] = 0.0f;
    if (n > 1) w[k + k / 2] = 40.0f;
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
    if (m * k > 7) x.data()[7] = -25.0f;
    return x;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// The first path's result is kept in `first`; every later path's must have the same bits.
void same_bits_across_paths(const matrix& y, matrix& first, bool& have_first) {
    if (!have_first) {
        first = y;
        have_first = true;
        return;
    }
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(same_bits(y.data()[i], first.data()[i]));
}

std::vector<q::kernel_isa> present_paths() {
    std::vector<q::kernel_isa> v;
    for (auto p : {q::kernel_isa::generic, q::kernel_isa::avx2, q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (q::isa_available(p)) v.push_back(p);
    }
    return v;
}

void poison(matrix& y) {
    for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = std::numeric_limits<float>::quiet_NaN();
}

// The exact weights of a 32-value block in double, read from the block's fields here (ggml's
// dequantize_row_*: code j the low nibble of qs[j] (j < 16) or the high nibble of qs[j - 16], Q5's
// fifth bit bit j of the little-endian qh), and the magnitudes the error bound sums: Q4_0 d (q - 8),
// Q5_0 d (q - 16), Q8_0 d q, |w|; Q4_1 / Q5_1 d q + m, |.| taken as |d q| + |m| (the kernel adds the
// two terms separately).
template <class F>
void exact_32_weights(const typename F::block& blk, double* w, double* mag) {
    const double d = double(float(blk.d));
    for (int j = 0; j < 32; ++j) {
        int code = 0;
        if constexpr (std::is_same_v<F, q::q8_0>) {
            code = blk.qs[j];
        } else {
            code = j < 16 ? blk.qs[j] & 0xF : blk.qs[j - 16] >> 4;
            if constexpr (std::is_same_v<F, q::q5_0> || std::is_same_v<F, q::q5_1>) code += 16 * ((blk.qh[j / 8] >> (j % 8)) & 1);
        }
        if constexpr (std::is_same_v<F, q::q4_1> || std::is_same_v<F, q::q5_1>) {
            const double a = d * code, b = double(float(blk.m));
            w[j] = a + b;
            mag[j] = std::fabs(a) + std::fabs(b);
        } else {
            const int offset = std::is_same_v<F, q::q4_0> ? 8 : std::is_same_v<F, q::q5_0> ? 16 : 0;
            w[j] = d * (code - offset);
            mag[j] = std::fabs(w[j]);
        }
    }
}

// Checks gemm of packed weights on every present path against
//  (a) x_q W^T in double (x_q: x quantized to Q8_0 per 32-value block, decoded exactly; W exact,
//      exact_32_weights). Per output the kernel computes acc <- fma(S_b, fl(d_w d_x), acc) over nb
//      blocks, S_b exact (Q4_1 / Q5_1: then acc <- fma(m_w, fl(d_x sum_b), acc)): each block term
//      carries one rounding of its scale product (relative u = 2^-24) and each of the F fma steps
//      (F = nb, 2 nb with minimums) one rounding of the running sum, |acc| <= T = sum_j mag_j |xq_j|,
//      so |error| <= (F + 1) u T plus second-order terms; bound used: (F + 2) 2^-24 T.
//  (b) the fp32-activation reference (reference_gemm, double, on the fp32 dequantized weights, which
//      Q4_1 / Q5_1 round once: u mag_j): (a) plus the activation rounding, at most amax_b / 127 (1/2 +
//      127 2^-11) per value (half a Q8 step plus the f16 rounding of the scale times the largest
//      code), times mag_j, plus u sum_j mag_j |x_j| and one fp32 rounding of the reference.
// and that every path gives the same bits.
template <class F>
void check_against_reference(std::size_t m, std::size_t n, std::size_t k, unsigned seed,
                             llm::parallel::thread_pool& pool) {
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const auto wf = weight_values(n, k, seed);
    const auto blocks = q::quantize<F>(wf);
    const auto wv = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), n, k);
    std::vector<double> wd(n * k), mag(n * k);
    for (std::size_t i = 0; i < n * (k / 32); ++i) exact_32_weights<F>(blocks[i], wd.data() + 32 * i, mag.data() + 32 * i);
    const auto wp = q::pack(wv);
    const matrix x = activations(m, k, seed + 1);
    matrix ref(m, n);
    q::reference_gemm(ref, x, wv);
    std::vector<double> xq(m * k), amax(m * (k / 32));
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t b = 0; b < k / 32; ++b) {
            const float* xb = x.data() + i * k + b * 32;
            q::block_q8_0 blk;
            q::q8_0::quantize_block(xb, blk);
            for (std::size_t j = 0; j < 32; ++j) {
                xq[i * k + b * 32 + j] = double(blk.qs[j]) * double(float(blk.d));
                amax[i * (k / 32) + b] = std::max(amax[i * (k / 32) + b], std::fabs(double(xb[j])));
            }
        }
    }
    const double u = std::ldexp(1.0, -24);
    constexpr bool mins = std::is_same_v<F, q::q4_1> || std::is_same_v<F, q::q5_1>;
    const double steps = double(mins ? 2 * (k / 32) : k / 32);
    matrix first(m, n);
    bool have_first = false;
    for (const auto path : present_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        matrix y(m, n);
        poison(y);
        q::gemm(y, x, wp, {.path = path}, pool);
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                double exact_q = 0.0, t = 0.0, act_err = 0.0;
                for (std::size_t p = 0; p < k; ++p) {
                    const double w = wd[j * k + p], a = mag[j * k + p];
                    exact_q += w * xq[i * k + p];
                    t += a * std::fabs(xq[i * k + p]);
                    act_err += a * amax[i * (k / 32) + p / 32] / 127.0 * (0.5 + 127.0 / 2048.0) +
                               (mins ? u * a * std::fabs(double(x(i, p))) : 0.0);
                }
                const double got = y(i, j);
                REQUIRE(std::isfinite(got));
                const double tight = (steps + 2) * u * t;
                CHECK(std::fabs(got - exact_q) <= tight);
                CHECK(std::fabs(got - double(ref(i, j))) <= tight + act_err + u * std::fabs(double(ref(i, j))));
            }
        }
        same_bits_across_paths(y, first, have_first);
    }
}

// The exact weights of a K super-block in double (the codes, group scales and minimums read from
// the block's fields here, independently of the kernels) and the magnitudes the error bound sums:
// Q4_K w = d sc_j q - dmin m_j, |.| taken as d sc_j q + dmin m_j (the kernel adds the two terms
// separately); Q5_K the same with q = low nibble + 16 x bit j of qh[e % 32] (ggml's
// dequantize_row_q5_K: group j's high bit is bit j); Q6_K w = d sc_g (q - 32), |w|; Q3_K w = d sc_g
// (q - 4), sc_g the signed 6-bit scale, q = 2 bits of qs | bit e / 32 of hmask[e % 32] << 2 (ggml's
// dequantize_row_q3_K), |w|; Q2_K w = d sc_g q - dmin m_g (sc_g, m_g the low and high nibbles of
// scales[g]), q = bits 2 k, 2 k + 1 of qs[32 h + l] (ggml's dequantize_row_q2_K), |.| as d sc_g q + dmin m_g.
template <class F>
void exact_k_weights(const typename F::block& blk, double* w, double* mag) {
    if constexpr (std::is_same_v<F, q::q4_k> || std::is_same_v<F, q::q5_k>) {
        for (int j = 0; j < 8; ++j) {
            std::uint8_t sc = 0, mn = 0;
            q::detail::scale_min_k4(j, blk.scales, sc, mn);
            for (int l = 0; l < 32; ++l) {
                const int e = 32 * j + l;
                int code = (blk.qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0xF;
                if constexpr (std::is_same_v<F, q::q5_k>) code += 16 * ((blk.qh[e % 32] >> j) & 1);
                const double a = double(float(blk.d)) * sc * code, b = double(float(blk.dmin)) * mn;
                w[e] = a - b;
                mag[e] = a + b;
            }
        }
    } else if constexpr (std::is_same_v<F, q::q2_k>) {
        for (int e = 0; e < 256; ++e) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const int code = (blk.qs[32 * h + l] >> (2 * k)) & 3;
            const double a = double(float(blk.d)) * (blk.scales[e / 16] & 0xF) * code;
            const double b = double(float(blk.dmin)) * (blk.scales[e / 16] >> 4);
            w[e] = a - b;
            mag[e] = a + b;
        }
    } else if constexpr (std::is_same_v<F, q::q3_k>) {
        for (int e = 0; e < 256; ++e) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const int code = ((blk.qs[32 * h + l] >> (2 * k)) & 3) | (((blk.hmask[l] >> (e / 32)) & 1) << 2);
            w[e] = double(float(blk.d)) * q::detail::scale_q3_k(blk.scales, e / 16) * (code - 4);
            mag[e] = std::fabs(w[e]);
        }
    } else {
        for (int e = 0; e < 256; ++e) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const int low = (blk.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
            const int code = low | (((blk.qh[32 * h + l] >> (2 * k)) & 3) << 4);
            w[e] = double(float(blk.d)) * blk.scales[e / 16] * (code - 32);
            mag[e] = std::fabs(w[e]);
        }
    }
}

// Checks the packed Q2_K / Q3_K / Q4_K / Q5_K / Q6_K gemm on every present path against
//  (a) x_q W^T in double (x_q: x quantized to Q8_K per 256-value block, decoded exactly; W exact,
//      exact_k_weights). Per output and super-block the kernel adds fma(float(S), fl(d_w d_x), acc)
//      (Q2_K, Q4_K, Q5_K: then fma(float(M), -fl(dmin_w d_x), acc)), S and M exact int32: each term carries
//      the rounding of float(S) (|S| may pass 2^24) and of the scale product (2 u, u = 2^-24), each
//      of the F fma steps (F = 2 nb for Q2_K / Q4_K / Q5_K, nb for Q3_K / Q6_K) one rounding of the running sum, and
//      every partial sum is at most T = sum_e mag_e |xq_e|: |error| <= (F + 2) u T plus second-order
//      terms; bound used: (F + 3) u T.
//  (b) the row-major kernel on the same path (the same Q8_K activations and exact integer terms,
//      another fp32 order: per block an fma into 8 lanes, the minimums into a second 8-lane
//      accumulator, two horizontal sums of 3 additions and one addition; lane terms exact in
//      float (|.| < 2^22), so its error is at most (nb + 1 + 3 + 1) u T + the d_w d_x rounding u T,
//      bound used (nb + 7) u T), so the two are within (F + 3) u T + (nb + 7) u T of each other.
// and that every path gives the same bits.
template <class F>
void check_k_against_reference(std::size_t m, std::size_t n, std::size_t k, unsigned seed,
                               llm::parallel::thread_pool& pool) {
    INFO("m = ", m, ", n = ", n, ", k = ", k);
    const std::size_t nb = k / 256;
    const auto wf = weight_values(n, k, seed);
    const auto blocks = q::quantize<F>(wf);
    const auto wv = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), n, k);
    const auto wp = q::pack(wv);
    std::vector<double> w(n * k), mag(n * k);
    for (std::size_t i = 0; i < n * nb; ++i) exact_k_weights<F>(blocks[i], w.data() + 256 * i, mag.data() + 256 * i);
    const matrix x = activations(m, k, seed + 1);
    std::vector<double> xq(m * k);
    for (std::size_t i = 0; i < m * nb; ++i) {
        q::block_q8_k blk;
        q::q8_k::quantize_block(x.data() + 256 * i, blk);
        for (std::size_t j = 0; j < 256; ++j) xq[256 * i + j] = double(blk.qs[j]) * double(blk.d);
    }
    const double u = std::ldexp(1.0, -24);
    const double steps = double(std::is_same_v<F, q::q6_k> || std::is_same_v<F, q::q3_k> ? nb : 2 * nb);
    matrix first(m, n);
    bool have_first = false;
    for (const auto path : present_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        matrix y(m, n), yr(m, n);
        poison(y);
        q::gemm(y, x, wp, {.path = path}, pool);
        const bool row_major = path != q::kernel_isa::generic;  // the row-major generic path is fp32, unquantized
        if (row_major) q::gemm(yr, x, wv, {.path = path}, pool);
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                double exact = 0.0, t = 0.0;
                for (std::size_t p = 0; p < k; ++p) {
                    exact += w[j * k + p] * xq[i * k + p];
                    t += mag[j * k + p] * std::fabs(xq[i * k + p]);
                }
                const double got = y(i, j);
                REQUIRE(std::isfinite(got));
                CHECK(std::fabs(got - exact) <= (steps + 3) * u * t);
                if (row_major) CHECK(std::fabs(got - double(yr(i, j))) <= (steps + 3 + double(nb) + 7) * u * t);
            }
        }
        same_bits_across_paths(y, first, have_first);
    }
}

// The awkward sizes: K of 1 and of several blocks, M = 1 .. 5 and 9 (every tile height, a tail),
// N = 1, 7, 8, 9, 17 (partial, whole and padded groups).
template <class F>
void check_sizes() {
    llm::parallel::thread_pool pool(2);
    unsigned seed = F::block_size == 32 ? 20 : 40;
    for (std::size_t k : {F::block_size, F::block_size * (F::block_size == 32 ? 13 : 3)})
        for (std::size_t m : {1, 2, 3, 4, 5, 9})
            for (std::size_t n : {1, 7, 8, 9, 17}) {
                if constexpr (F::block_size == 32) {
                    check_against_reference<F>(m, n, k, seed++, pool);
                } else {
                    check_k_against_reference<F>(m, n, k, seed++, pool);
                }
            }
}

// gemm row i equals gemv of row i bit for bit, for every M (1 .. 9, so every tile height and
// tail) and a pool equals sequential{}; strided x and y equal contiguous ones; pre-quantized
// activations give the plain call's bits.
template <class F>
void check_consistency(q::kernel_isa path) {
    const std::size_t n = 27, k = F::block_size == 32 ? 32 * 9 : 256 * 3;
    const auto wf = weight_values(n, k, 7);
    const auto blocks = q::quantize<F>(wf);
    const auto wp = q::pack<F>(std::span<const typename F::block>(blocks), n, k);
    llm::parallel::thread_pool pool(2);
    const matrix x = activations(9, k, 8);
    std::vector<matrix> rows;
    for (std::size_t i = 0; i < 9; ++i) {
        llm::tensor<float, llm::dims<1>> y(n);
        q::gemv(y, llm::tensor_view<const float, llm::dims<1>>(x.data() + i * k, k), wp, {.path = path},
                llm::parallel::sequential{});
        matrix r(1, n);
        std::copy(y.data(), y.data() + n, r.data());
        rows.push_back(r);
    }
    for (std::size_t m = 1; m <= 9; ++m) {
        CAPTURE(m);
        const auto xm = llm::tensor_view<const float, llm::dims<2>>(x.data(), m, k);
        matrix ys(m, n), yp(m, n);
        poison(ys);
        poison(yp);
        q::gemm(ys, xm, wp, {.path = path}, llm::parallel::sequential{});
        q::gemm(yp, xm, wp.view(), {.path = path}, pool);
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                REQUIRE(same_bits(ys(i, j), rows[i](0, j)));
                REQUIRE(same_bits(yp(i, j), rows[i](0, j)));
            }
    }
    // Strided: x as the transpose of [k, m], y as the transpose of [n, m].
    const std::size_t m = 6;
    matrix xt(k, m), yt(n, m);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t p = 0; p < k; ++p) xt(p, i) = x(i, p);
    q::gemm(llm::transpose<0, 1>(yt), llm::transpose<0, 1>(xt), wp, {.path = path}, pool);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) REQUIRE(same_bits(yt(j, i), rows[i](0, j)));
    // Pre-quantized activations (quantized for another format with the same blocks: Q5_0 for the
    // 32-value formats, Q5_K for Q6_K, Q2_K for Q5_K and Q3_K, Q3_K for Q2_K; Q4_K's transposed Q8_K
    // serve only Q4_K).
    using A = std::conditional_t<
        F::block_size == 32, q::q5_0,
        std::conditional_t<std::is_same_v<F, q::q6_k>, q::q5_k,
                           std::conditional_t<std::is_same_v<F, q::q5_k> || std::is_same_v<F, q::q3_k>, q::q2_k,
                                              std::conditional_t<std::is_same_v<F, q::q2_k>, q::q3_k, F>>>>;
    const auto xm = llm::tensor_view<const float, llm::dims<2>>(x.data(), 5, k);
    const auto qa = q::quantize_activations<A>(xm, pool);
    matrix yq(5, n);
    poison(yq);
    q::gemm(yq, qa, wp, {.path = path}, pool);
    llm::tensor<float, llm::dims<1>> y1(n);
    q::gemv(y1, qa.rows(3, 1), wp, {.path = path}, pool);
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = 0; j < n; ++j) REQUIRE(same_bits(yq(i, j), rows[i](0, j)));
    for (std::size_t j = 0; j < n; ++j) REQUIRE(same_bits(y1(j), rows[3](0, j)));
}

}  // namespace

TEST_CASE("quant packed: pack keeps every block (view.block equals the packed block), pads to 8 rows with zeros") {
    for (std::size_t n : {1, 7, 8, 9, 20}) {
        CAPTURE(n);
        const std::size_t k = 32 * 5;
        const auto wf = weight_values(n, k, unsigned(n));
        const auto b4 = q::quantize<q::q4_0>(wf);
        const auto b8 = q::quantize<q::q8_0>(wf);
        const auto p4 = q::pack<q::q4_0>(std::span<const q::block_q4_0>(b4), n, k);
        const auto p8 = q::pack<q::q8_0>(std::span<const q::block_q8_0>(b8), n, k);
        CHECK(p4.rows() == n);
        CHECK(p4.cols() == k);
        CHECK(p4.bytes() == (n + 7) / 8 * 8 * (k / 32) * sizeof(q::block_q4_0));
        CHECK(p8.bytes() == (n + 7) / 8 * 8 * (k / 32) * sizeof(q::block_q8_0));
        for (std::size_t r = 0; r < n; ++r)
            for (std::size_t b = 0; b < k / 32; ++b) {
                const auto x4 = p4.view().block(r, b);
                const auto x8 = p8.view().block(r, b);
                REQUIRE(std::memcmp(&x4, &b4[r * (k / 32) + b], sizeof x4) == 0);
                REQUIRE(std::memcmp(&x8, &b8[r * (k / 32) + b], sizeof x8) == 0);
            }
        // Padding rows: zero scale and codes.
        const auto v = p4.view();
        for (std::size_t r = n; r < v.groups() * 8; ++r) {
            const auto z = v.block(r, 0);
            CHECK(z.d.bits() == 0);
            for (auto c : z.qs) CHECK(c == 0);
        }
        CHECK(v.value(n - 1, k - 1) == q::dequantize<q::q4_0>(std::span<const q::block_q4_0>(b4))[n * k - 1]);
    }
    // pack_into: the same bytes into a caller's buffer of exactly packed_bytes.
    const std::size_t n = 11, k = 64;
    const auto blocks = q::quantize<q::q4_0>(weight_values(n, k, 3));
    const auto owned = q::pack<q::q4_0>(std::span<const q::block_q4_0>(blocks), n, k);
    std::vector<std::uint8_t> bytes(q::packed_view<q::q4_0>::packed_bytes(n, k));
    const auto v = q::pack_into<q::q4_0>(bytes, std::span<const q::block_q4_0>(blocks), n, k);
    CHECK(std::memcmp(bytes.data(), owned.view().codes, bytes.size()) == 0);
    CHECK(v.rows == n);
}

TEST_CASE("quant packed: Q4_1 / Q5_0 / Q5_1 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K pack keeps every block, pads to 8 rows with zero blocks, pack_into writes the same bytes") {
    auto one = [](auto tag) {
        using F = decltype(tag);
        using blk = typename F::block;
        for (std::size_t n : {1, 7, 8, 9, 20}) {
            CAPTURE(n);
            const std::size_t k = 256 * 2, nb = k / F::block_size;
            const auto b = q::quantize<F>(weight_values(n, k, unsigned(n) + 50));
            const auto p = q::pack<F>(std::span<const blk>(b), n, k);
            CHECK(p.bytes() == (n + 7) / 8 * 8 * nb * sizeof(blk));
            const auto v = p.view();
            for (std::size_t r = 0; r < v.groups() * 8; ++r)
                for (std::size_t j = 0; j < nb; ++j) {
                    const blk got = v.block(r, j);
                    const blk want = r < n ? b[r * nb + j] : blk{};
                    REQUIRE(std::memcmp(&got, &want, sizeof got) == 0);
                }
            CHECK(v.value(n - 1, k - 1) == q::dequantize<F>(std::span<const blk>(b))[n * k - 1]);
            std::vector<std::uint8_t> bytes(q::packed_view<F>::packed_bytes(n, k));
            const auto vi = q::pack_into<F>(bytes, std::span<const blk>(b), n, k);
            CHECK(std::memcmp(bytes.data(), v.codes, bytes.size()) == 0);
            CHECK(vi.rows == n);
        }
    };
    one(q::q4_1{});
    one(q::q5_0{});
    one(q::q5_1{});
    one(q::q2_k{});
    one(q::q3_k{});
    one(q::q4_k{});
    one(q::q5_k{});
    one(q::q6_k{});
}

TEST_CASE("quant packed: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 on every path match the exact x_q W^T and the reference within the derived bounds; paths agree bit for bit") {
    check_sizes<q::q4_0>();
    check_sizes<q::q4_1>();
    check_sizes<q::q5_0>();
    check_sizes<q::q5_1>();
    check_sizes<q::q8_0>();
}

TEST_CASE("quant packed: Q2_K, Q3_K, Q4_K, Q5_K and Q6_K on every path match the exact x_q W^T and the row-major kernel within the derived bounds; paths agree bit for bit") {
    check_sizes<q::q2_k>();
    check_sizes<q::q3_k>();
    check_sizes<q::q4_k>();
    check_sizes<q::q5_k>();
    check_sizes<q::q6_k>();
}

TEST_CASE("quant packed: gemm rows equal gemv (M = 1..9); a pool equals sequential; strided views; pre-quantized activations") {
    for (const auto path : present_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        check_consistency<q::q4_0>(path);
        check_consistency<q::q4_1>(path);
        check_consistency<q::q5_0>(path);
        check_consistency<q::q5_1>(path);
        check_consistency<q::q8_0>(path);
        check_consistency<q::q2_k>(path);
        check_consistency<q::q3_k>(path);
        check_consistency<q::q4_k>(path);
        check_consistency<q::q5_k>(path);
        check_consistency<q::q6_k>(path);
    }
    for (auto p : {q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (!q::isa_available(p)) MESSAGE("skipped: the ", q::isa_name(p), " path (this CPU lacks it)");
    }
}

TEST_CASE("quant packed: Q4_0 x Q8_0 with power-of-two scales is exact on every path") {
    // Weight blocks whose signed value of largest magnitude is -8 2^e (so d = 2^e, codes exact),
    // activations integer multiples of 2^f with largest |x| 127 2^f (Q8_0 keeps them exactly):
    // every block term 2^(e + f) S is an exact dyadic number and every fp32 sum of them is exact
    // (|y| < 2^24 units of 2^-6, the smallest d_w d_x), so y equals the int64 value.
    const std::size_t n = 13, k = 32 * 37, m = 9;
    std::mt19937 rng(3);
    std::vector<float> wf(n * k), xf(m * k);
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
    const auto wp = q::pack<q::q4_0>(std::span<const q::block_q4_0>(blocks), n, k);
    matrix x(m, k);
    std::copy(xf.begin(), xf.end(), x.data());
    llm::parallel::thread_pool pool(2);
    for (const auto path : present_paths()) {
        CAPTURE(std::string(q::isa_name(path)));
        matrix y(m, n);
        poison(y);
        q::gemm(y, x, wp, {.path = path}, pool);
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
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

TEST_CASE("quant packed: bad sizes are llm::error naming the values") {
    std::vector<q::block_q4_0> blocks(10);
    CHECK_THROWS_WITH_AS((void)q::pack<q::q4_0>(std::span<const q::block_q4_0>(blocks), 2, 48),
                         doctest::Contains("cols = 48 is not a multiple of the block size 32"), llm::error);
    CHECK_THROWS_WITH_AS((void)q::pack<q::q4_0>(std::span<const q::block_q4_0>(blocks), 3, 128),
                         doctest::Contains("10 blocks hold fewer than 3 rows of 128 values"), llm::error);
    std::vector<std::uint8_t> small(100);
    CHECK_THROWS_WITH_AS((void)q::pack_into<q::q4_0>(small, std::span<const q::block_q4_0>(blocks), 2, 128),
                         doctest::Contains("100 bytes"), llm::error);
    const auto wp = q::pack<q::q4_0>(std::span<const q::block_q4_0>(blocks), 2, 160);
    llm::tensor<float, llm::dims<1>> x(128), y(2), y3(3);
    CHECK_THROWS_WITH_AS(q::gemv(y, x, wp), doctest::Contains("x has 128 values but w has 160 columns"), llm::error);
    llm::tensor<float, llm::dims<1>> x160(160);
    CHECK_THROWS_WITH_AS(q::gemv(y3, x160, wp), doctest::Contains("y has 3 values but w has 2 rows"), llm::error);
    matrix xm(4, 160), ym(4, 3);
    CHECK_THROWS_WITH_AS(q::gemm(ym, xm, wp), doctest::Contains("y is [4, 3] but x W^T is [4, 2]"), llm::error);
    for (auto p : {q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (!q::isa_available(p)) {
            CHECK_THROWS_AS(q::gemv(y, x160, wp, {.path = p}), llm::error);
        }
    }
    // K formats: 256-value blocks.
    std::vector<q::block_q6_k> b6(4);
    CHECK_THROWS_WITH_AS((void)q::pack<q::q6_k>(std::span<const q::block_q6_k>(b6), 2, 384),
                         doctest::Contains("cols = 384 is not a multiple of the block size 256"), llm::error);
    CHECK_THROWS_WITH_AS((void)q::pack<q::q6_k>(std::span<const q::block_q6_k>(b6), 3, 512),
                         doctest::Contains("4 blocks hold fewer than 3 rows of 512 values"), llm::error);
    const auto w6 = q::pack<q::q6_k>(std::span<const q::block_q6_k>(b6), 2, 512);
    llm::tensor<float, llm::dims<1>> x256(256);
    CHECK_THROWS_WITH_AS(q::gemv(y, x256, w6), doctest::Contains("x has 256 values but w has 512 columns"), llm::error);
}

TEST_CASE("quant packed: any_matrix repack routes linear_forward (single and grouped) to the packed kernels, bit for bit") {
    const std::size_t k = 32 * 8, m = 3;
    const auto b4 = q::quantize<q::q4_0>(weight_values(20, k, 11));
    const auto b8 = q::quantize<q::q8_0>(weight_values(16, k, 12));
    std::vector<llm::f16> bk;  // a type without the interleaved layout
    for (float v : weight_values(5, k, 13)) bk.push_back(llm::f16(v));
    const auto b2k = q::quantize<q::q2_k>(weight_values(10, k, 13));
    const auto bq4k = q::quantize<q::q4_k>(weight_values(13, k, 15));
    const auto bq6k = q::quantize<q::q6_k>(weight_values(16, k, 16));
    const auto bq5k = q::quantize<q::q5_k>(weight_values(11, k, 17));
    const auto bq3k = q::quantize<q::q3_k>(weight_values(9, k, 18));
    const auto b51 = q::quantize<q::q5_1>(weight_values(12, k, 19));
    auto bytes_of = [](const auto& v) { return std::as_bytes(std::span(v)); };
    const q::any_matrix r4(llm::io::ggml_type::q4_0, bytes_of(b4), 20, k);
    const q::any_matrix r8(llm::io::ggml_type::q8_0, bytes_of(b8), 16, k);
    const q::any_matrix rk(llm::io::ggml_type::f16, bytes_of(bk), 5, k);
    const q::any_matrix r2k(llm::io::ggml_type::q2_k, bytes_of(b2k), 10, k);
    const q::any_matrix r4k(llm::io::ggml_type::q4_k, bytes_of(bq4k), 13, k);
    const q::any_matrix r6k(llm::io::ggml_type::q6_k, bytes_of(bq6k), 16, k);
    const q::any_matrix r5k(llm::io::ggml_type::q5_k, bytes_of(bq5k), 11, k);
    const q::any_matrix r3k(llm::io::ggml_type::q3_k, bytes_of(bq3k), 9, k);
    const q::any_matrix r51(llm::io::ggml_type::q5_1, bytes_of(b51), 12, k);
    llm::aligned_buffer<std::byte> s4, s8, sk, s4k, s6k, s5k, s3k, s51, s2k;
    const q::any_matrix p4 = q::repack(r4, s4), p8 = q::repack(r8, s8), pk = q::repack(rk, sk);
    const q::any_matrix p4k = q::repack(r4k, s4k), p6k = q::repack(r6k, s6k), p5k = q::repack(r5k, s5k);
    const q::any_matrix p3k = q::repack(r3k, s3k), p51 = q::repack(r51, s51), p2k = q::repack(r2k, s2k);
    CHECK(p2k.layout() == q::weight_layout::interleaved8);
    CHECK(s2k.size() == 16 * (k / 256) * sizeof(q::block_q2_k));  // 10 rows padded to 16
    CHECK(p51.layout() == q::weight_layout::interleaved8);
    CHECK(s51.size() == 16 * (k / 32) * sizeof(q::block_q5_1));  // 12 rows padded to 16
    CHECK(p3k.layout() == q::weight_layout::interleaved8);
    CHECK(s3k.size() == 16 * (k / 256) * sizeof(q::block_q3_k));  // 9 rows padded to 16
    CHECK(p4k.layout() == q::weight_layout::interleaved8);
    CHECK(p5k.layout() == q::weight_layout::interleaved8);
    CHECK(s5k.size() == 16 * (k / 256) * sizeof(q::block_q5_k));  // 11 rows padded to 16
    CHECK(p6k.layout() == q::weight_layout::interleaved8);
    CHECK(s4k.size() == 16 * (k / 256) * sizeof(q::block_q4_k));  // 13 rows padded to 16
    CHECK(s6k.size() == bq6k.size() * sizeof(q::block_q6_k));       // 16 rows: the same bytes
    CHECK(p4.layout() == q::weight_layout::interleaved8);
    CHECK(p8.layout() == q::weight_layout::interleaved8);
    CHECK(pk.layout() == q::weight_layout::row_major);  // f16: not repacked, storage untouched
    CHECK(sk.empty());
    CHECK(s4.size() == 24 * (k / 32) * sizeof(q::block_q4_0));  // 20 rows padded to 24
    CHECK(s8.size() == b8.size() * sizeof(q::block_q8_0));        // 16 rows: the same bytes
    CHECK(p4.bytes().size() == s4.size());
    const matrix x = activations(m, k, 14);
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    // Single calls equal packed gemm on the same packed bytes.
    const auto wp4 = q::pack<q::q4_0>(std::span<const q::block_q4_0>(b4), 20, k);
    matrix y4(m, 20), g4(m, 20), y8(m, 16), yk(m, 5), yk_row(m, 5);
    q::linear_forward(y4, x, p4, ws, pool);
    q::gemm(g4, x, wp4, {}, pool);
    for (std::size_t i = 0; i < y4.size(); ++i) REQUIRE(same_bits(y4.data()[i], g4.data()[i]));
    q::linear_forward(y8, x, p8, ws, pool);
    q::linear_forward(yk, x, pk, ws, pool);
    q::linear_forward(yk_row, x, rk, ws, pool);
    for (std::size_t i = 0; i < yk.size(); ++i) REQUIRE(same_bits(yk.data()[i], yk_row.data()[i]));
    // Q4_K / Q5_K / Q6_K repacked: linear_forward equals packed gemm on the same packed weights.
    matrix y4k(m, 13), g4k(m, 13), y6k(m, 16), g6k(m, 16), y5k(m, 11), g5k(m, 11);
    q::linear_forward(y5k, x, p5k, ws, pool);
    q::gemm(g5k, x, q::pack<q::q5_k>(std::span<const q::block_q5_k>(bq5k), 11, k), {}, pool);
    for (std::size_t i = 0; i < y5k.size(); ++i) REQUIRE(same_bits(y5k.data()[i], g5k.data()[i]));
    matrix y3k(m, 9), g3k(m, 9);
    q::linear_forward(y3k, x, p3k, ws, pool);
    q::gemm(g3k, x, q::pack<q::q3_k>(std::span<const q::block_q3_k>(bq3k), 9, k), {}, pool);
    for (std::size_t i = 0; i < y3k.size(); ++i) REQUIRE(same_bits(y3k.data()[i], g3k.data()[i]));
    matrix y2k(m, 10), g2k(m, 10);
    q::linear_forward(y2k, x, p2k, ws, pool);
    q::gemm(g2k, x, q::pack<q::q2_k>(std::span<const q::block_q2_k>(b2k), 10, k), {}, pool);
    for (std::size_t i = 0; i < y2k.size(); ++i) REQUIRE(same_bits(y2k.data()[i], g2k.data()[i]));
    matrix y51(m, 12), g51(m, 12);
    q::linear_forward(y51, x, p51, ws, pool);
    q::gemm(g51, x, q::pack<q::q5_1>(std::span<const q::block_q5_1>(b51), 12, k), {}, pool);
    for (std::size_t i = 0; i < y51.size(); ++i) REQUIRE(same_bits(y51.data()[i], g51.data()[i]));
    q::linear_forward(y4k, x, p4k, ws, pool);
    q::gemm(g4k, x, q::pack<q::q4_k>(std::span<const q::block_q4_k>(bq4k), 13, k), {}, pool);
    for (std::size_t i = 0; i < y4k.size(); ++i) REQUIRE(same_bits(y4k.data()[i], g4k.data()[i]));
    q::linear_forward(y6k, x, p6k, ws, pool);
    q::gemm(g6k, x, q::pack<q::q6_k>(std::span<const q::block_q6_k>(bq6k), 16, k), {}, pool);
    for (std::size_t i = 0; i < y6k.size(); ++i) REQUIRE(same_bits(y6k.data()[i], g6k.data()[i]));
    // Grouped over packed and row-major matrices: each product equals its single call bit for bit.
    matrix z4(m, 20), z8(m, 16), zk(m, 5), zr(m, 20), yr(m, 20), z4k(m, 13), z6k(m, 16), z5k(m, 11), z3k(m, 9), z51(m, 12), z2k(m, 10);
    q::linear_forward(yr, x, r4, ws, pool);
    using view2 = llm::tensor_view<float, llm::dims<2>>;
    const std::vector<view2> ys = {view2(z4.data(), m, 20), view2(z8.data(), m, 16), view2(zk.data(), m, 5),
                                   view2(zr.data(), m, 20), view2(z4k.data(), m, 13), view2(z6k.data(), m, 16),
                                   view2(z5k.data(), m, 11), view2(z3k.data(), m, 9), view2(z51.data(), m, 12), view2(z2k.data(), m, 10)};
    const q::any_matrix* ws_[] = {&p4, &p8, &pk, &r4, &p4k, &p6k, &p5k, &p3k, &p51, &p2k};
    q::linear_forward(std::span<const view2>(ys), x, std::span<const q::any_matrix* const>(ws_), ws, pool);
    for (std::size_t i = 0; i < z4.size(); ++i) REQUIRE(same_bits(z4.data()[i], y4.data()[i]));
    for (std::size_t i = 0; i < z8.size(); ++i) REQUIRE(same_bits(z8.data()[i], y8.data()[i]));
    for (std::size_t i = 0; i < zk.size(); ++i) REQUIRE(same_bits(zk.data()[i], yk.data()[i]));
    for (std::size_t i = 0; i < zr.size(); ++i) REQUIRE(same_bits(zr.data()[i], yr.data()[i]));
    for (std::size_t i = 0; i < z4k.size(); ++i) REQUIRE(same_bits(z4k.data()[i], y4k.data()[i]));
    for (std::size_t i = 0; i < z6k.size(); ++i) REQUIRE(same_bits(z6k.data()[i], y6k.data()[i]));
    for (std::size_t i = 0; i < z5k.size(); ++i) REQUIRE(same_bits(z5k.data()[i], y5k.data()[i]));
    for (std::size_t i = 0; i < z3k.size(); ++i) REQUIRE(same_bits(z3k.data()[i], y3k.data()[i]));
    for (std::size_t i = 0; i < z51.size(); ++i) REQUIRE(same_bits(z51.data()[i], y51.data()[i]));
    for (std::size_t i = 0; i < z2k.size(); ++i) REQUIRE(same_bits(z2k.data()[i], y2k.data()[i]));
    // The packed and row-major products of the same quantized activations x_q differ only in the
    // fp32 order: each is within its bound of the exact x_q W^T (packed: (nb + 2) 2^-24 T, T =
    // sum |w xq|, see check_against_reference; row-major: (nb + 8) 2^-23 T', T' = sum (|w| + 2
    // a_b) |xq|, a_b the block's largest |w|, tests/quant/matmul.cpp), so within the sum apart.
    const auto wd = q::dequantize<q::q4_0>(std::span<const q::block_q4_0>(b4));
    for (std::size_t i = 0; i < m; ++i) {
        std::vector<double> xq(k);
        for (std::size_t b = 0; b < k / 32; ++b) {
            q::block_q8_0 blk;
            q::q8_0::quantize_block(x.data() + i * k + b * 32, blk);
            for (std::size_t j = 0; j < 32; ++j) xq[b * 32 + j] = double(blk.qs[j]) * double(float(blk.d));
        }
        for (std::size_t j = 0; j < 20; ++j) {
            double t = 0.0, t2 = 0.0;
            for (std::size_t b = 0; b < k / 32; ++b) {
                double ab = 0.0;
                for (std::size_t p = 0; p < 32; ++p) ab = std::max(ab, std::fabs(double(wd[j * k + b * 32 + p])));
                for (std::size_t p = b * 32; p < b * 32 + 32; ++p) {
                    t += std::fabs(double(wd[j * k + p]) * xq[p]);
                    t2 += (std::fabs(double(wd[j * k + p])) + 2.0 * ab) * std::fabs(xq[p]);
                }
            }
            const double bound = double(k / 32 + 2) * std::ldexp(1.0, -24) * t + double(k / 32 + 8) * std::ldexp(1.0, -23) * t2;
            CHECK(std::fabs(double(y4(i, j)) - double(yr(i, j))) <= bound);
        }
    }
    // A wrong byte count or a type without the layout: llm::error naming the values.
    CHECK_THROWS_WITH_AS(q::any_matrix(llm::io::ggml_type::q4_0, std::span<const std::byte>(s4).first(100), 20, k,
                                       q::weight_layout::interleaved8),
                         doctest::Contains("100 bytes are not the"), llm::error);
    CHECK_THROWS_WITH_AS(q::any_matrix(llm::io::ggml_type::f16, bytes_of(bk), 5, k, q::weight_layout::interleaved8),
                         doctest::Contains("holds q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K or q6_K, not f16"), llm::error);
    CHECK_THROWS_WITH_AS(q::any_matrix(llm::io::ggml_type::q6_k, std::span<const std::byte>(s6k).first(1000), 16, k,
                                       q::weight_layout::interleaved8),
                         doctest::Contains("1000 bytes are not the"), llm::error);
}

// The groups of a large matrix split into several chunks on a pool (grain: ~256 KiB of codes):
// the same bytes as on the calling thread, for every repackable type, rows not a multiple of 8.
TEST_CASE("quant packed: repack / pack_into on a thread pool write the bytes the calling thread writes") {
    llm::parallel::thread_pool pool(2);
    const std::size_t n = 4101, k = 512;
    auto one = [&](auto tag, llm::io::ggml_type type) {
        using F = decltype(tag);
        using blk = typename F::block;
        CAPTURE(F::name);
        const auto b = q::quantize<F>(weight_values(n, k, 77));
        const std::size_t group_bytes = k / F::block_size * sizeof(blk) * 8;
        REQUIRE((n + 7) / 8 > 2 * ((256u << 10) / group_bytes));  // three chunks or more
        const q::any_matrix row(type, std::as_bytes(std::span(b)), n, k);
        llm::aligned_buffer<std::byte> seq, par;
        const q::any_matrix ps = q::repack(row, seq), pp = q::repack(row, par, pool);
        REQUIRE(pp.layout() == q::weight_layout::interleaved8);
        REQUIRE(seq.size() == par.size());
        CHECK(std::memcmp(seq.data(), par.data(), seq.size()) == 0);
        CHECK(ps.bytes().size() == pp.bytes().size());
    };
    one(q::q4_0{}, llm::io::ggml_type::q4_0);
    one(q::q4_1{}, llm::io::ggml_type::q4_1);
    one(q::q5_0{}, llm::io::ggml_type::q5_0);
    one(q::q5_1{}, llm::io::ggml_type::q5_1);
    one(q::q8_0{}, llm::io::ggml_type::q8_0);
    one(q::q4_k{}, llm::io::ggml_type::q4_k);
    one(q::q2_k{}, llm::io::ggml_type::q2_k);
    one(q::q3_k{}, llm::io::ggml_type::q3_k);
    one(q::q5_k{}, llm::io::ggml_type::q5_k);
    one(q::q6_k{}, llm::io::ggml_type::q6_k);
}
