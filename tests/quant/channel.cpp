// SPDX-License-Identifier: Apache-2.0
// W8A8 (int8 per-channel weights, per-token int8 activations), FP8 E4M3 weights (per tensor, per channel) and
// NF4 (bitsandbytes): round-trip bounds, exact W8A8 integer sums, GEMM / GEMV against the dequantized reference
// within derived bounds, bad input.
#include <llm/quant/channel.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/nf4.hpp>
#include <llm/quant/quant.hpp>
#include <llm/quant/reference.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <vector>

namespace {

namespace q = llm::quant;
using matrix = llm::tensor<float, llm::dims<2>>;

matrix random_matrix(std::size_t r, std::size_t c, unsigned seed, float sigma = 1.0f) {
    matrix m(r, c);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, sigma);
    for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
    return m;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

// x W'^T in double, W' the dequantized weights (row-major n x k).
std::vector<double> reference(const matrix& x, const std::vector<float>& wd, std::size_t n) {
    const std::size_t m = x.extent(0), k = x.extent(1);
    std::vector<double> y(m * n);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0.0;
            for (std::size_t p = 0; p < k; ++p) s += double(wd[j * k + p]) * double(x(i, p));
            y[i * n + j] = s;
        }
    return y;
}

}  // namespace

TEST_CASE("fp8 weights: the register decoder equals fp8_e4m3's conversion for all 256 codes") {
    for (unsigned b = 0; b < 256; ++b) {
        CAPTURE(b);
        const float want = static_cast<float>(llm::fp8_e4m3::from_bits(static_cast<std::uint8_t>(b)));
        const float got = q::detail::fp8_e4m3_value(static_cast<std::uint8_t>(b));
        CHECK((std::isnan(want) ? std::isnan(got) : same_bits(got, want)));
    }
}

TEST_CASE("int8 weights: per-channel round trip within half a step; a zero row has scale 0") {
    matrix w = random_matrix(9, 77, 1);
    for (std::size_t j = 0; j < 77; ++j) w(3, j) = 0.0f;
    w(5, 10) = 50.0f;
    const auto w8 = q::quantize_int8(w);
    const auto back = q::dequantize(w8);
    CHECK(w8.scale[3] == 0.0f);
    for (std::size_t i = 0; i < 9; ++i) {
        float amax = 0.0f;
        for (std::size_t j = 0; j < 77; ++j) amax = std::max(amax, std::fabs(w(i, j)));
        CHECK(w8.scale[i] == amax / 127.0f);
        for (std::size_t j = 0; j < 77; ++j) {
            CHECK(std::abs(int(w8.q[i * 77 + j])) <= 127);
            // Half a step, plus the roundings of w * (127 / amax) and of scale * q (2^-23 amax each).
            CHECK(std::fabs(back[i * 77 + j] - w(i, j)) <= w8.scale[i] / 2 + std::ldexp(amax, -22));
        }
    }
}

TEST_CASE("W8A8 gemm: exact int32 sums scaled once; within half an activation step of the dequantized reference") {
    const std::size_t m = 5, n = 13, k = 301;
    const matrix w = random_matrix(n, k, 2, 0.05f);
    const matrix x = random_matrix(m, k, 3);
    const auto w8 = q::quantize_int8(w);
    const auto wd = q::dequantize(w8);
    const auto ref = reference(x, wd, n);
    llm::parallel::thread_pool pool(2);
    matrix y(m, n);
    for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = std::numeric_limits<float>::quiet_NaN();
    llm::workspace ws;
    q::gemm_w8a8(y, x, w8, ws, pool);
    for (std::size_t i = 0; i < m; ++i) {
        // The documented per-token quantization, redone here: s = max |x| / 127, q = round(x * 127 / max).
        float amax = 0.0f;
        for (std::size_t p = 0; p < k; ++p) amax = std::max(amax, std::fabs(x(i, p)));
        const float sx = amax / 127.0f;
        std::vector<int> qx(k);
        for (std::size_t p = 0; p < k; ++p) qx[p] = int(std::round(x(i, p) * (127.0f / amax)));
        for (std::size_t j = 0; j < n; ++j) {
            std::int64_t isum = 0;
            double wabs = 0.0;
            for (std::size_t p = 0; p < k; ++p) {
                isum += std::int64_t(qx[p]) * w8.q[j * k + p];
                wabs += std::fabs(double(wd[j * k + p]));
            }
            CHECK(same_bits(y(i, j), float(isum) * (sx * w8.scale[j])));
            // |x - sx q| <= sx / 2 (+ the rounding of x * 127 / max, 2^-24 |x|); fp32: 3 ulps of the result.
            const double bound = wabs * (sx / 2.0 + std::ldexp(double(amax), -23)) + 3 * std::ldexp(std::fabs(ref[i * n + j]), -23);
            CHECK(std::fabs(double(y(i, j)) - ref[i * n + j]) <= bound);
        }
    }
    matrix bad(m, n + 1);
    CHECK_THROWS_WITH_AS(q::gemm_w8a8(bad, x, w8), doctest::Contains("gemm_w8a8: y is [5, 14] but x w^T is [5, 13]"), llm::error);
    matrix xk(m, k + 1);
    CHECK_THROWS_WITH_AS(q::gemm_w8a8(y, xk, w8), doctest::Contains("gemm_w8a8: x has 302 columns but w has 301"), llm::error);
}

TEST_CASE("fp8 weights: per-tensor and per-channel round trip within half an E4M3 step; gemm within fp32 summation error") {
    const std::size_t m = 4, n = 11, k = 203;
    matrix w = random_matrix(n, k, 4, 0.02f);
    w(2, 5) = 3.0f;          // an outlier: per-tensor scales crush the other rows
    w(7, 9) = 1e-7f;         // subnormal after scaling
    const matrix x = random_matrix(m, k, 5);
    llm::parallel::thread_pool pool(2);
    for (auto g : {q::scale_granularity::per_tensor, q::scale_granularity::per_channel}) {
        CAPTURE(int(g));
        const auto w8 = q::quantize_fp8(w, g);
        CHECK(w8.scale.size() == (g == q::scale_granularity::per_tensor ? 1u : n));
        const auto wd = q::dequantize(w8);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < k; ++j) {
                const double s = w8.scale_of(i), v = w(i, j);
                // 3 mantissa bits: half a step is 2^-4 relative (normal), 2^-10 s absolute (subnormal);
                // plus the roundings of w / s and s * q (2^-22 |w|).
                CHECK(std::fabs(wd[i * k + j] - v) <= std::max(std::fabs(v) * 0.0625, s * std::ldexp(1.0, -10)) + std::ldexp(std::fabs(v), -22));
            }
        const auto ref = reference(x, wd, n);
        matrix y(m, n);
        for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = std::numeric_limits<float>::quiet_NaN();
        llm::workspace ws;
        q::gemm_fp8(y, x, w8, ws, pool);
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                double mag = 0.0;
                for (std::size_t p = 0; p < k; ++p) mag += std::fabs(double(wd[j * k + p]) * x(i, p));
                // 8 partial sums of k / 8 terms, 3 combining adds, the scale: (k / 8 + 6) roundings.
                CHECK(std::fabs(double(y(i, j)) - ref[i * n + j]) <= double(k / 8 + 6) * std::ldexp(mag, -23));
            }
    }
    matrix bad = w;
    bad(1, 1) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(q::quantize_fp8(bad), doctest::Contains("quantize_fp8: w(1, 1) = inf is not finite"), llm::error);
}

TEST_CASE("nf4: bitsandbytes packing (first value in the high nibble), nearest code, round trip within half the widest gap") {
    // A block by hand: x = [absmax, -absmax, 0, 0, ...] -> codes 15, 0, 7, 7 -> bytes 0xF0, 0x77.
    std::vector<float> x(64, 0.0f);
    x[0] = 2.0f;
    x[1] = -2.0f;
    q::block_nf4 b;
    q::nf4::quantize_block(x.data(), b);
    CHECK(b.absmax == 2.0f);
    CHECK(b.qs[0] == 0xF0);
    CHECK(b.qs[1] == 0x77);
    // All zeros: absmax 0, every code 7 (the value 0), decoded to zeros.
    std::vector<float> z(64, 0.0f), back(64, 1.0f);
    q::nf4::quantize_block(z.data(), b);
    q::nf4::dequantize_block(b, back.data());
    CHECK(b.absmax == 0.0f);
    for (int j = 0; j < 32; ++j) CHECK(b.qs[j] == 0x77);
    for (float v : back) CHECK(v == 0.0f);
    // Random blocks: each code is a nearest value of x / absmax, and the round trip error is at most
    // half the widest gap between code values (-1 .. -0.6961928: 0.1519036) times absmax.
    const matrix w = random_matrix(1, 64 * 50, 6);
    const auto blocks = q::quantize<q::nf4>(std::span<const float>(w.data(), w.size()));
    const auto wd = q::dequantize<q::nf4>(std::span<const q::block_nf4>(blocks));
    double widest = 0.0;
    for (int i = 0; i < 15; ++i) widest = std::max(widest, double(q::nf4_values[i + 1]) - double(q::nf4_values[i]));
    CHECK(widest / 2 == doctest::Approx(0.1519036).epsilon(1e-6));
    for (std::size_t i = 0; i < w.size(); ++i) {
        const auto& blk = blocks[i / 64];
        const int code = (i % 64) % 2 == 0 ? blk.qs[(i % 64) / 2] >> 4 : blk.qs[(i % 64) / 2] & 0x0F;
        const double t = double(w.data()[i] * (1.0f / blk.absmax));
        for (float v : q::nf4_values) CHECK(std::fabs(t - q::nf4_values[code]) <= std::fabs(t - v) + 1e-7);
        CHECK(std::fabs(double(wd[i]) - w.data()[i]) <= blk.absmax * (widest / 2 + std::ldexp(1.0, -22)));
    }
}

TEST_CASE("nf4 gemv / gemm: the dequantizing path within fp32 summation error of the reference") {
    const std::size_t m = 3, n = 7, k = 64 * 5;
    const matrix wf = random_matrix(n, k, 7);
    const auto blocks = q::quantize<q::nf4>(std::span<const float>(wf.data(), wf.size()));
    const auto w = q::matrix_view<q::block_accessor<q::nf4>>(std::span<const q::block_nf4>(blocks), n, k);
    const matrix x = random_matrix(m, k, 8);
    matrix y(m, n), ref(m, n);
    q::reference_gemm(ref, x, w);
    q::gemm(y, x, w, {}, llm::parallel::sequential{});
    const auto wd = q::dequantize<q::nf4>(std::span<const q::block_nf4>(blocks));
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double mag = 0.0;
            for (std::size_t p = 0; p < k; ++p) mag += std::fabs(double(wd[j * k + p]) * x(i, p));
            // Per block a sequential sum of 64 products, then k / 64 block sums: (k + 8) roundings.
            CHECK(std::fabs(double(y(i, j)) - double(ref(i, j))) <= double(k + 8) * std::ldexp(mag, -24));
        }
}

TEST_CASE("W8A8 and FP8 gemv: one token equals its row of gemm bit for bit (strided x and y too)") {
    const std::size_t m = 3, n = 9, k = 130;
    const matrix w = random_matrix(n, k, 9, 0.1f);
    const matrix x = random_matrix(m, k, 10);
    const auto w8 = q::quantize_int8(w);
    const auto f8 = q::quantize_fp8(w);
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    matrix y8(m, n), yf(m, n);
    q::gemm_w8a8(y8, x, w8, ws, pool);
    q::gemm_fp8(yf, x, f8, ws, pool);
    // x row i and y as strided views: column i of a [k, m] / [n, m] matrix.
    matrix xt(k, m), yt(n, 2 * m);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t p = 0; p < k; ++p) xt(p, i) = x(i, p);
    for (std::size_t i = 0; i < m; ++i) {
        const auto xi = llm::select<0>(llm::transpose<0, 1>(xt), i);      // [k], stride m
        const auto y1 = llm::select<0>(llm::transpose<0, 1>(yt), i);      // [n], stride 2m
        const auto y2 = llm::select<0>(llm::transpose<0, 1>(yt), m + i);  // [n], stride 2m
        REQUIRE(xi.stride(0) == m);
        q::gemv_w8a8(y1, xi, w8, ws, llm::parallel::sequential{});
        q::gemv_fp8(y2, xi, f8, ws, pool);
        for (std::size_t j = 0; j < n; ++j) {
            CHECK(same_bits(yt(j, i), y8(i, j)));
            CHECK(same_bits(yt(j, m + i), yf(i, j)));
        }
    }
}

TEST_CASE("W8A8 on AMX-INT8 tiles (emulated here): the row path's exact sums, so its bits, on awkward sizes") {
    // The tile path (llm::quant::detail::w8a8_amx) with the emulated tiles against the row-by-row dot
    // products on the same int8 activations: m, n across 32-row tiles and panels, k across 64-byte steps.
    std::mt19937 rng(41);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    std::size_t cases = 0;
    for (const std::size_t m : {1u, 5u, 16u, 31u, 33u, 70u}) {
        for (const std::size_t n : {1u, 17u, 32u, 45u, 97u}) {
            for (const std::size_t k : {1u, 3u, 63u, 64u, 65u, 200u}) {
                const auto w8 = q::quantize_int8(random_matrix(n, k, static_cast<unsigned>(rng())));
                std::vector<std::int8_t> qx(m * k);
                std::vector<float> sx(m);
                for (std::size_t i = 0; i < m; ++i) {
                    std::vector<float> row(k);
                    for (auto& v : row) v = dist(rng);
                    sx[i] = q::detail::quantize_token_i8(row.data(), 1, k, qx.data() + i * k);
                }
                std::vector<float> rows(m * n, -1.0f), tiles(m * n, -2.0f);
                q::detail::w8a8_rows(rows.data(), n, 1, qx.data(), sx.data(), m, w8, 0, n);
                llm::workspace ws;
                const llm::workspace::frame frame(ws);
                if (cases++ % 2 == 0) {
                    q::detail::w8a8_amx<llm::blas::detail::amx_emulated>(tiles.data(), n, 1, qx.data(), sx.data(), m, w8, ws,
                                                                          seq);
                } else {
                    q::detail::w8a8_amx<llm::blas::detail::amx_emulated>(tiles.data(), n, 1, qx.data(), sx.data(), m, w8, ws,
                                                                          pool);
                }
                INFO("m=", m, " n=", n, " k=", k);
                CHECK(std::memcmp(rows.data(), tiles.data(), m * n * sizeof(float)) == 0);
            }
        }
    }
    // Which path gemm_w8a8 takes here.
    CHECK((!llm::blas::amx_int8_available() || llm::blas::cpu_has_amx_int8()));
    if (!llm::blas::amx_int8_available()) {
        MESSAGE("no AMX-INT8 here: gemm_w8a8 runs the vpdpbusd panels; tests/gemm_amx runs the tiles where AMX exists");
    }
}

TEST_CASE("W8A8 activation quantizer: the AVX2 rows give the scalar loop's codes, scale and sum on every input") {
    // Awkward lengths around the 8- and 32-value steps; zeros, ties at .5, outliers, tiny values, NaN, infinities.
    if (!q::isa_available(q::kernel_isa::avx2)) {
        MESSAGE("no AVX2 here: only the scalar quantizer runs");
        return;
    }
#if LLM_QUANT_X86
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::size_t checked = 0;
    for (const std::size_t k : {1u, 7u, 8u, 9u, 31u, 32u, 33u, 64u, 77u, 301u}) {
        for (int kind = 0; kind < 7; ++kind) {
            std::vector<float> x(k);
            for (auto& v : x) v = normal(rng);
            if (kind == 1) std::fill(x.begin(), x.end(), 0.0f);
            if (kind == 2) {  // values whose products with 127 / max land on .5
                for (std::size_t j = 0; j < k; ++j) x[j] = (static_cast<float>(j % 9) - 4.0f) * 0.5f;
                x[0] = 127.0f;
            }
            if (kind == 3) x[k / 2] = 1e4f;                                          // an outlier
            if (kind == 4) for (auto& v : x) v *= 1e-30f;                             // tiny magnitudes
            if (kind == 5) x[k - 1] = std::numeric_limits<float>::quiet_NaN();        // NaN (in the tail too)
            if (kind == 6) x[0] = -std::numeric_limits<float>::infinity();
            std::vector<std::int8_t> qs(k), qv(k);
            std::int32_t ss = 0, sv = 0;
            const float s1 = q::detail::quantize_token_i8(x.data(), 1, k, qs.data(), &ss);
            const float s2 = q::detail::qk_avx2::quantize_token_i8_row(x.data(), k, qv.data(), &sv);
            INFO("k=", k, " kind=", kind);
            CHECK((std::isnan(s1) ? std::isnan(s2) : same_bits(s1, s2)));
            CHECK(qs == qv);
            CHECK(ss == sv);
            std::int32_t sum = 0;
            for (const auto c : qs) {
                CHECK(c >= -127);
                sum += c;
            }
            CHECK(sum == ss);
            if (kind == 5) CHECK(std::isnan(s1));
            if (kind == 6) CHECK(std::isinf(s1));
            ++checked;
        }
    }
    CHECK(checked == 70);
#endif
}

TEST_CASE("W8A8 on vpdpbusd / vpmaddubsw panels: every x86 path gives the row path's bits on awkward sizes") {
    // llm::quant::detail::w8a8_panels for each path this CPU has against the row-by-row dot products on the same
    // int8 activations: m across the 8- and 2-row tiles, n across 32-row panels, k across the 4-code steps;
    // weights with -128 codes (int8_weights built by hand) and sums past 2^31 with the +128 offset.
    std::mt19937 rng(43);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    std::vector<q::kernel_isa> paths;
    for (const auto isa : {q::kernel_isa::avx2, q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (q::isa_available(isa)) paths.push_back(isa);
    }
    if (paths.empty()) {
        MESSAGE("no x86 integer path here: gemm_w8a8 runs the row path only");
        return;
    }
    auto quantized = [&](std::size_t m, std::size_t k, std::vector<std::int8_t>& qx, std::vector<float>& sx,
                         std::vector<std::int32_t>& xsum) {
        matrix x(m, k);
        for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = dist(rng);
        qx.resize(m * k), sx.resize(m), xsum.resize(m);
        q::detail::quantize_tokens_i8(x.data(), k, 1, m, k, qx.data(), sx.data(), xsum.data());
    };
    auto compare = [&](std::size_t m, const q::int8_weights& w8, const std::vector<std::int8_t>& qx,
                       const std::vector<float>& sx, const std::vector<std::int32_t>& xsum, bool threads) {
        const std::size_t n = w8.rows;
        std::vector<float> rows(m * n, -1.0f);
        q::detail::w8a8_rows(rows.data(), n, 1, qx.data(), sx.data(), m, w8, 0, n);
        for (const auto isa : paths) {
            std::vector<float> tiles(m * n, -2.0f);
            llm::workspace ws;
            const llm::workspace::frame frame(ws);
            if (threads) {
                q::detail::w8a8_panels(isa, tiles.data(), n, 1, qx.data(), sx.data(), xsum.data(), m, w8, ws, pool);
            } else {
                q::detail::w8a8_panels(isa, tiles.data(), n, 1, qx.data(), sx.data(), xsum.data(), m, w8, ws, seq);
            }
            INFO("path ", q::isa_name(isa), " m=", m, " n=", n, " k=", w8.cols);
            CHECK(std::memcmp(rows.data(), tiles.data(), m * n * sizeof(float)) == 0);
        }
    };
    std::size_t cases = 0;
    for (const std::size_t m : {1u, 2u, 3u, 7u, 8u, 9u, 17u, 33u}) {
        for (const std::size_t n : {1u, 31u, 32u, 33u, 97u}) {
            for (const std::size_t k : {1u, 3u, 4u, 5u, 63u, 130u}) {
                auto w8 = q::quantize_int8(random_matrix(n, k, static_cast<unsigned>(rng())));
                w8.q[0] = -128;  // reachable only by hand: |w| reads 128 on the AVX2 path
                std::vector<std::int8_t> qx;
                std::vector<float> sx;
                std::vector<std::int32_t> xsum;
                quantized(m, k, qx, sx, xsum);
                compare(m, w8, qx, sx, xsum, cases++ % 2 == 1);
            }
        }
    }
    // Sums of (w + 128) x past 2^31 (255 x 127 x 70000 = 2.27e9) while the true sums (127^2 x 70000) fit.
    const std::size_t k = 70000, m = 3;
    q::int8_weights big;
    big.rows = 2, big.cols = k;
    big.q.assign(2 * k, 127);
    std::fill(big.q.begin() + k, big.q.end(), static_cast<std::int8_t>(-127));
    big.scale = {1.0f, 0.5f};
    std::vector<std::int8_t> qx(m * k, 127);
    std::vector<float> sx(m, 1.0f);
    std::vector<std::int32_t> xsum(m, 127 * static_cast<std::int32_t>(k));
    compare(m, big, qx, sx, xsum, true);
    std::vector<float> y(m * 2);
    llm::workspace ws;
    const llm::workspace::frame frame(ws);
    q::detail::w8a8_panels(paths.back(), y.data(), 2, 1, qx.data(), sx.data(), xsum.data(), m, big, ws, seq);
    CHECK(y[0] == static_cast<float>(127 * 127 * static_cast<std::int32_t>(k)));
    CHECK(y[1] == -0.5f * static_cast<float>(127 * 127 * static_cast<std::int32_t>(k)));
}

TEST_CASE("W8A8 gemm: a NaN or infinite activation makes its token's outputs NaN; bad weights are clear errors") {
    const std::size_t m = 6, n = 40, k = 70;
    const auto w8 = q::quantize_int8(random_matrix(n, k, 8, 0.1f));
    matrix x = random_matrix(m, k, 9);
    x(1, 3) = std::numeric_limits<float>::quiet_NaN();
    x(4, 69) = std::numeric_limits<float>::infinity();
    matrix y(m, n), y_clean(m, n);
    q::gemm_w8a8(y, x, w8);
    matrix xc = random_matrix(m, k, 9);
    q::gemm_w8a8(y_clean, xc, w8);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            if (i == 1 || i == 4) {
                CHECK(std::isnan(y(i, j)));
            } else {
                CHECK(same_bits(y(i, j), y_clean(i, j)));
            }
        }
    }
    matrix wbad = random_matrix(3, 5, 10);
    wbad(2, 4) = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(q::quantize_int8(wbad), doctest::Contains("quantize_int8: w(2, 4) = -inf is not finite"), llm::error);
    auto short_scales = w8;
    short_scales.scale.pop_back();
    CHECK_THROWS_WITH_AS(q::gemm_w8a8(y, x, short_scales), doctest::Contains("gemm_w8a8: w holds 39 scales, not one per row (40)"),
                         llm::error);
    q::int8_weights wide;
    wide.rows = 1, wide.cols = (std::size_t{1} << 17) + 1;
    wide.q.assign(wide.cols, 1);
    wide.scale = {1.0f};
    matrix xw(1, wide.cols), yw(1, 1);
    CHECK_THROWS_WITH_AS(q::gemm_w8a8(yw, xw, wide), doctest::Contains("gemm_w8a8: w has K = 131073 columns; the int32 sums hold K <= 131072"),
                         llm::error);
}
