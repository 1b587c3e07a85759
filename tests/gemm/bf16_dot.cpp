// SPDX-License-Identifier: Apache-2.0
// Tests of the bf16 dot-product GEMM path (vdpbf16ps on bf16 k-pairs): which path runs, its exact
// per-lane semantics, and randomized comparison with the double reference on awkward sizes.
//
// Tolerance (derived, not tuned). Inputs are bf16, so every product a*b is exact in fp32 (two
// 8-bit significands give at most 16 bits) and the reference sees the same values. What the
// path rounds is the sum: inside one KC block (2 * kc k steps) each output starts from 0 and
// adds its products one at a time, one rounding each (k roundings in all, over all blocks);
// each block's store then rounds alpha * acc, beta * C and their sum (3 more per block); the
// reference's result is rounded once to fp32. So with N = k + 3 * blocks + 1 roundings of
// partial sums, |c - ref| <= gamma_N * (|alpha| * sum_p |a_ip b_pj| + |beta c_ij|), gamma_N =
// N u / (1 - N u), u = 2^-24 (Higham, Accuracy and Stability, eq. 3.5). The bound is checked
// per element. Flushing (DAZ/FTZ) only changes values below 2^-126: random inputs in [-1, 1]
// rounded to bf16 have products far above it (a separate case checks the flush itself).
#include "bf16_check.hpp"
#include "helpers.hpp"

#include <llm/gemm/bf16_dot.hpp>
#include <llm/gemm/f16_panels.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/nn/linear.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

using namespace gemm_test;

namespace {

using S = llm::simd::default_backend;
using blocking = llm::blas::measured_blocking_t<S::width>;
using own_auto = llm::blas::own<S, blocking>;
using own_dot = llm::blas::own<S, blocking, llm::blas::bf16_path::dot>;
using own_widen = llm::blas::own<S, blocking, llm::blas::bf16_path::widen>;
using own_round = llm::blas::own<S, blocking, llm::blas::bf16_path::dot_round_fp32>;
// Tiny blocks: kc 8 (16 k steps per block on the dot path), mc 2 tiles, nc 2 panels, so the
// awkward sizes cross every block edge, with odd k inside and at the end of blocks.
using tiny = llm::blas::fixed_blocking<blocking::mr, blocking::nr_vectors, 2 * blocking::mr, 8,
                                       2 * blocking::nr_vectors * S::width>;
using own_tiny = llm::blas::own<S, tiny, llm::blas::bf16_path::dot>;

// Whether the forced dot path (bf16_path::dot) runs here: compiled in, CPU has it, AVX-512 backend.
bool dot_runs() { return llm::blas::bf16_dot_selected<llm::bf16, llm::bf16>(llm::blas::bf16_path::dot, S::width); }

// Whether O::run_packed over weights laid out once (`panels`) writes exactly the bits O::run writes
// for the row-major weights (wt: the W^T view), c [m, n] row-major.
template <class O, class TW, class Panels, class Exec>
bool packed_equals_run(std::size_t m, std::size_t n, const llm::strided_view<const float, 2>& a,
                       const llm::strided_view<const TW, 2>& wt, const Panels& panels, llm::workspace& ws, Exec& exec) {
    std::vector<float> want(m * n), got(m * n, -1.0f);
    O::run(llm::strided_view<float, 2>(want.data(), llm::dims<2>(m, n), llm::dims<2>(n, 1)), a, wt, 1.0f, 0.0f, ws, exec);
    O::run_packed(llm::strided_view<float, 2>(got.data(), llm::dims<2>(m, n), llm::dims<2>(n, 1)), a, panels, ws, exec);
    return std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0;
}

constexpr std::size_t sizes_m[] = {1, 2, 3, 5, 6, 7, 13, 33, 65};
constexpr std::size_t sizes_n[] = {1, 4, 7, 13, 31, 65, 257};
constexpr std::size_t sizes_k[] = {1, 2, 3, 6, 7, 13, 31, 33, 257};

}  // namespace

TEST_CASE("bf16 dot path: selected for bf16 x bf16 where the CPU has AVX512_BF16, never when widening is forced") {
    using llm::blas::bf16_path;
    CHECK_FALSE(llm::blas::bf16_dot_selected<llm::bf16, llm::bf16>(bf16_path::widen, S::width));
    CHECK_FALSE(llm::blas::bf16_dot_selected<float, llm::bf16>(bf16_path::automatic, S::width));
    CHECK_FALSE(llm::blas::bf16_dot_selected<float, llm::bf16>(bf16_path::dot, S::width));
    CHECK_FALSE(llm::blas::bf16_dot_selected<float, float>(bf16_path::dot_round_fp32, S::width));
    CHECK_FALSE(llm::blas::bf16_dot_selected<llm::bf16, llm::bf16>(bf16_path::dot, 8));
    // automatic takes the dot path exactly where it is available and pays.
    CHECK(llm::blas::bf16_dot_selected<llm::bf16, llm::bf16>(bf16_path::automatic, S::width) ==
          (S::width == 16 && llm::blas::bf16_dot_pays()));
    CHECK((!llm::blas::bf16_dot_pays() || llm::blas::bf16_dot_available()));
#if LLM_GEMM_BF16_DOT
    CHECK(llm::blas::bf16_dot_available() == llm::blas::cpu_has_avx512_bf16());
#else
    CHECK_FALSE(llm::blas::bf16_dot_available());
#endif
    if (llm::blas::bf16_dot_available() && S::width == 16) {
        CHECK(dot_runs());
        CHECK(llm::blas::bf16_dot_selected<float, llm::bf16>(bf16_path::dot_round_fp32, S::width));
        CHECK(llm::blas::bf16_dot_selected<llm::bf16, float>(bf16_path::dot_round_fp32, S::width));
        if (llm::blas::bf16_dot_pays()) {
            MESSAGE("automatic picks the dot-product path on this CPU");
        } else {
            MESSAGE("automatic picks the widening path on this CPU (vdpbf16ps does not pay here)");
        }
    } else {
        MESSAGE("AVX512_BF16 not compiled in or not on this CPU: the dot path is not exercised here");
    }
}

TEST_CASE("bf16 dot path: an fp32 A panel packs the words bf16(x) gives (vector and pair-by-pair packing)") {
    if (!dot_runs()) {
        MESSAGE("skipped: no AVX512_BF16 dot path here");
        return;
    }
    // 11 rows (a full 6-row panel, packed 32 k steps at a time by vcvtne2ps2bf16, and a 5-row
    // one, pair by pair) x k 71 (two vector blocks, 3 pairs and the odd pad), row stride 75.
    // Special values everywhere: ties to even, NaN payloads (quieted, top bits kept), infinities,
    // FLT_MAX (rounds to Inf), -0, subnormals (the vector path reads them as zero, keeping the
    // sign; bf16(x) rounds them, 0x007F8000 up to 2^-126).
    constexpr std::size_t m = 11, k = 71, lda = 75, MR = blocking::mr, NV = blocking::nr_vectors;
#if LLM_GEMM_BF16_DOT
    static_assert(MR == 6, "the vector packing is the 6-row panel's");
#endif
    const std::uint32_t specials[] = {0x3F808000u, 0x3F818000u, 0xBF808000u, 0x7FA00000u, 0xFF812345u, 0x7FC00001u,
                                      0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0x80000000u, 0x00400000u, 0x807FFFFFu,
                                      0x007F8000u, 0x00800000u, 0x3F80FFFFu};
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
    std::vector<float> a(m * lda);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = dist(rng) * std::ldexp(1.0f, static_cast<int>(i % 41) - 20);
        if (i % 7 == 3) {
            std::memcpy(&a[i], &specials[(i / 7) % std::size(specials)], sizeof(float));
        }
    }
    const llm::strided_view<const float, 2> av(a.data(), llm::dims<2>(m, k), llm::dims<2>(lda, 1));
    const std::size_t kw = (k + 1) / 2, panels = (m + MR - 1) / MR;
    std::vector<std::uint32_t> packed(panels * MR * kw, 0xDEADBEEFu);
    llm::blas::detail::bf16_panels<MR, NV>::pack_a(av, reinterpret_cast<float*>(packed.data()));
    std::size_t bad = 0, flushed = 0;
    for (std::size_t i = 0; i < panels * MR; ++i) {
        for (std::size_t q = 0; q < kw; ++q) {
            std::uint32_t want = 0;
            for (std::size_t h = 0; h < 2 && i < m; ++h) {
                const std::size_t p = 2 * q + h;
                if (p >= k) {
                    continue;
                }
                const float x = a[i * lda + p];
                std::uint32_t bits = llm::bf16(x).bits();
                // The vector path: whole 6-row panels, 16-pair blocks.
                const bool vector = i < m / MR * MR && q < (k / 2) / 16 * 16;
                if (vector && std::fpclassify(x) == FP_SUBNORMAL) {
                    bits = std::signbit(x) ? 0x8000u : 0u;
                    ++flushed;
                }
                want |= bits << (16 * h);
            }
            bad += packed[(i / MR) * MR * kw + q * MR + i % MR] != want;
        }
    }
    CHECK(bad == 0);
    CHECK(flushed > 0);  // the subnormal case was exercised
}

TEST_CASE("bf16 dot path: bit for bit the vdpbf16ps order (odd product, then even, one rounding each)") {
    if (!dot_runs()) {
        MESSAGE("skipped: no AVX512_BF16 dot path here");
        return;
    }
    // One KC block (k <= 2 * kc), alpha 1, beta 0: each output is exactly the lane's
    // accumulator, which the emulation below reproduces; the widening path's order (0, 1, 2, ...)
    // gives other bits for many outputs, which the second count checks.
    std::mt19937 rng(11);
    llm::parallel::sequential seq;
    for (const std::size_t k : {2u, 7u, 64u, 257u, 512u}) {
        const std::size_t m = 13, n = 70;
        auto a = make_operand<llm::bf16>(m, k, layout_kind::row, rng);
        auto b = make_operand<llm::bf16>(k, n, layout_kind::col, rng);
        llm::tensor<float, llm::dims<2>> c(m, n);
        llm::gemm<own_dot>(c, a.view, b.view, 1.0f, 0.0f, seq);
        std::size_t differ = 0, order_matters = 0;
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                float dp = 0.0f, seqsum = 0.0f;
                for (std::size_t q = 0; 2 * q < k; ++q) {
                    const std::size_t p = 2 * q;
                    if (p + 1 < k) {
                        dp += static_cast<float>(a.view(i, p + 1)) * static_cast<float>(b.view(p + 1, j));
                    }
                    dp += static_cast<float>(a.view(i, p)) * static_cast<float>(b.view(p, j));
                }
                for (std::size_t p = 0; p < k; ++p) {
                    seqsum += static_cast<float>(a.view(i, p)) * static_cast<float>(b.view(p, j));
                }
                differ += std::memcmp(&dp, &c(i, j), sizeof dp) != 0;
                order_matters += std::memcmp(&dp, &seqsum, sizeof dp) != 0;
            }
        }
        INFO("k=", k);
        CHECK(differ == 0);
        if (k >= 64) {
            CHECK(order_matters > 0);  // the check tells the two paths apart
        }
    }
}

TEST_CASE("bf16 dot path: subnormal inputs read as zero and subnormal results flush to zero (DAZ, FTZ)") {
    if (!dot_runs()) {
        MESSAGE("skipped: no AVX512_BF16 dot path here");
        return;
    }
    llm::parallel::sequential seq;
    // 2 x 2 x 2 so the GEMM path (not the GEMV) runs. Row 0: a subnormal input times 1;
    // row 1: 2^-70 * 2^-70 = 2^-140, a subnormal product.
    llm::tensor<llm::bf16, llm::dims<2>> a(2, 2), b(2, 2);
    a(0, 0) = llm::bf16(0x1p-130f);
    a(0, 1) = llm::bf16(0.0f);
    a(1, 0) = llm::bf16(0x1p-70f);
    a(1, 1) = llm::bf16(0.0f);
    for (std::size_t p = 0; p < 2; ++p) {
        b(p, 0) = llm::bf16(p == 0 ? 1.0f : 0.0f);
        b(p, 1) = llm::bf16(p == 0 ? 0x1p-70f : 0.0f);
    }
    llm::tensor<float, llm::dims<2>> c(2, 2), w(2, 2);
    llm::gemm<own_dot>(c, a, b, 1.0f, 0.0f, seq);
    llm::gemm<own_widen>(w, a, b, 1.0f, 0.0f, seq);
    CHECK(c(0, 0) == 0.0f);                  // DAZ: 2^-130 * 1 reads as 0
    CHECK(w(0, 0) == 0x1p-130f);             // the widening path keeps it
    CHECK(c(1, 1) == 0.0f);                  // FTZ: 2^-140 flushed
    CHECK(w(1, 1) == 0x1p-140f);
    CHECK(c(1, 0) == 0x1p-70f);              // normal values as usual
}

TEST_CASE("bf16 dot path matches the double reference on awkward sizes, layouts, alpha and beta") {
    if (!dot_runs()) {
        MESSAGE("the dot path is not available: these sizes run the widening path, same bound");
    }
    std::mt19937 rng(2024);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    for_each_size(sizes_m, sizes_n, sizes_k, rng, [&](auto m, auto n, auto k, auto la, auto lb, std::size_t i) {
        const auto lc = rng() % 2 == 0 ? layout_kind::row : layout_kind::padded_row;
        const float beta = (i % 2 == 0) ? 0.0f : 1.0f;
        const float alpha = (i % 3 == 0) ? -0.75f : 1.0f;
        if (i % 2 == 0) {
            check_case<own_dot, llm::bf16, llm::bf16>(m, k, n, la, lb, lc, alpha, beta, 2 * blocking::kc, seq, rng);
        } else {
            check_case<own_tiny, llm::bf16, llm::bf16>(m, k, n, la, lb, lc, alpha, beta, 2 * tiny::kc, pool, rng);
        }
    });
    // Column-major C (the C^T = B^T A^T orientation) and blocks crossing MC.
    check_case<own_dot, llm::bf16, llm::bf16>(345, 515, 67, layout_kind::col, layout_kind::row, layout_kind::col, 1.0f,
                                              1.0f, 2 * blocking::kc, pool, rng);
    check_case<own_dot, llm::bf16, llm::bf16>(37, 1001, 129, layout_kind::row, layout_kind::col, layout_kind::row, 1.0f,
                                              0.0f, 2 * blocking::kc, pool, rng);
}

TEST_CASE("bf16 dot path: fp32 x bf16 stays exact widening by default; dot_round_fp32 rounds the fp32 operand") {
    std::mt19937 rng(7);
    llm::parallel::thread_pool pool(2);
    for (const std::size_t k : {1u, 33u, 257u}) {
        // Default: fp32 A widened path, the fp32 bound on the unrounded A (one rounding per product more).
        check_case<own_auto, float, llm::bf16>(33, k, 65, layout_kind::row, layout_kind::col, layout_kind::row, 1.0f, 0.0f,
                                               blocking::kc, pool, rng);
        // dot_round_fp32: the reference on A rounded to bf16.
        check_case<own_round, float, llm::bf16>(33, k, 65, layout_kind::row, layout_kind::col, layout_kind::row, 1.0f,
                                                1.0f, 2 * blocking::kc, pool, rng, true);
        check_case<own_round, llm::bf16, llm::bf16>(31, k, 13, layout_kind::col, layout_kind::padded_row, layout_kind::row,
                                                    1.0f, 0.0f, 2 * blocking::kc, pool, rng);
    }
}

TEST_CASE("bf16 dot path: one and two threads give the same bits; the epilogue sees the product's bits once each") {
    std::mt19937 rng(99);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    const std::size_t m = 67, k = 301, n = 133;
    auto a = make_operand<llm::bf16>(m, k, layout_kind::row, rng);
    auto b = make_operand<llm::bf16>(k, n, layout_kind::col, rng);
    llm::tensor<float, llm::dims<2>> c1(m, n), c2(m, n), c3(m, n);
    llm::gemm<own_dot>(c1, a.view, b.view, 1.0f, 0.0f, seq);
    llm::gemm<own_dot>(c2, a.view, b.view, 1.0f, 0.0f, pool);

    std::vector<int> visits(m * n, 0);
    llm::workspace ws;
    own_dot::run_epilogue(llm::to_kernel_view<2>(c3), llm::to_kernel_view<2>(a.view), llm::to_kernel_view<2>(b.view),
                          [&](std::size_t i, std::size_t j, float* p, std::size_t cnt) {
                              for (std::size_t t = 0; t < cnt; ++t) {
                                  ++visits[i * n + j + t];
                                  p[t] += static_cast<float>(j + t);
                              }
                          },
                          ws, pool);
    std::size_t bad_threads = 0, bad_epilogue = 0, bad_visits = 0;
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            bad_threads += std::memcmp(&c1(i, j), &c2(i, j), sizeof(float)) != 0;
            const float want = c1(i, j) + static_cast<float>(j);
            bad_epilogue += std::memcmp(&want, &c3(i, j), sizeof(float)) != 0;
            bad_visits += visits[i * n + j] != 1;
        }
    }
    CHECK(bad_threads == 0);
    CHECK(bad_epilogue == 0);
    CHECK(bad_visits == 0);
}

// A partial tile at the bottom of C multiplies only its rows (micro_rows): each row of an m-row
// product equals, bit for bit, the same row inside a product with whole tiles there (the first m
// rows of A and C of an 18-row product), for every partial row count 1 .. 5 of the 6-row tile.
TEST_CASE("bf16 dot path: the rows of a partial tile have the bits they have inside a whole tile") {
    if (!dot_runs()) {
        MESSAGE("skipped: no AVX512_BF16 dot path here");
        return;
    }
    std::mt19937 rng(123);
    llm::parallel::sequential seq;
    const std::size_t big = 18, k = 77, n = 133;
    auto a = make_operand<llm::bf16>(big, k, layout_kind::row, rng);
    auto b = make_operand<llm::bf16>(k, n, layout_kind::col, rng);
    llm::tensor<float, llm::dims<2>> whole(big, n);
    llm::gemm<own_dot>(whole, a.view, b.view, 1.0f, 0.0f, seq);
    for (const std::size_t m : {13u, 14u, 15u, 16u, 17u}) {
        CAPTURE(m);
        const auto rows = llm::slice(a.view, 0, 0, m);
        llm::tensor<float, llm::dims<2>> part(m, n);
        llm::gemm<own_dot>(part, rows, b.view, 1.0f, 0.0f, seq);
        std::size_t differ = 0;
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                differ += std::memcmp(&part(i, j), &whole(i, j), sizeof(float)) != 0;
            }
        }
        CHECK(differ == 0);
    }
}

TEST_CASE("bf16 GEMM: linear_forward with bf16 x and weights runs the default backend's bf16 path (bias, bf16 y in the store)") {
    std::mt19937 rng(5);
    llm::parallel::thread_pool pool(2);
    const std::size_t tokens = 19, in = 77, out = 45;
    auto x = make_operand<llm::bf16>(tokens, in, layout_kind::row, rng);
    auto w = make_operand<llm::bf16>(out, in, layout_kind::row, rng);
    auto xf = make_operand<float>(tokens, in, layout_kind::row, rng);
    llm::tensor<float, llm::dims<1>> bias(out);
    for (std::size_t j = 0; j < out; ++j) {
        bias(j) = 0.25f * static_cast<float>(j);
    }
    llm::tensor<float, llm::dims<2>> y(tokens, out), prod(tokens, out), yf(tokens, out), prodf(tokens, out);
    llm::tensor<llm::bf16, llm::dims<2>> yb(tokens, out);
    llm::nn::linear_forward(y, x.view, w.view, bias, pool);
    llm::nn::linear_forward(yb, x.view, w.view, bias, pool);
    llm::gemm<own_auto>(prod, x.view, llm::transpose(w.view, 0, 1), 1.0f, 0.0f, pool);
    // fp32 x with bf16 weights: the exact widening path (not rounded), by default.
    llm::nn::linear_forward(yf, xf.view, w.view, pool);
    llm::gemm<own_widen>(prodf, xf.view, llm::transpose(w.view, 0, 1), 1.0f, 0.0f, pool);
    std::size_t bad = 0, bad_bf16 = 0, bad_f = 0;
    for (std::size_t i = 0; i < tokens; ++i) {
        for (std::size_t j = 0; j < out; ++j) {
            const float want = prod(i, j) + bias(j);
            bad += std::memcmp(&want, &y(i, j), sizeof want) != 0;
            bad_bf16 += llm::bf16(want).bits() != yb(i, j).bits();
            bad_f += std::memcmp(&prodf(i, j), &yf(i, j), sizeof(float)) != 0;
        }
    }
    CHECK(bad == 0);
    CHECK(bad_bf16 == 0);
    CHECK(bad_f == 0);
}

TEST_CASE("bf16 weight panels: pack puts word (r, q) = (W[r, 2q], W[r, 2q + 1]) where word() reads it, zero pads") {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (const auto& shape : {std::pair<std::size_t, std::size_t>{1, 1}, {64, 2}, {65, 3}, {130, 37}, {200, 64}}) {
        const std::size_t n = shape.first, k = shape.second;  // not a structured binding: clang 14 cannot capture one
        CAPTURE(n);
        CAPTURE(k);
        std::vector<llm::bf16> w(n * k);
        for (auto& v : w) v = llm::bf16(u(rng));
        using wp = llm::blas::bf16_weight_panels;
        REQUIRE(wp::word_count(n, k) == (n + 63) / 64 * 64 * ((k + 1) / 2));
        std::vector<std::uint32_t> words(wp::word_count(n, k), 0xDEADBEEFu);
        wp::pack(w.data(), n, k, words.data());
        const wp view{words.data(), n, k};
        std::size_t bad = 0, bad_pad = 0;
        for (std::size_t r = 0; r < (n + 63) / 64 * 64; ++r) {
            for (std::size_t q = 0; q < (k + 1) / 2; ++q) {
                const std::uint32_t lo = r < n ? w[r * k + 2 * q].bits() : 0u;
                const std::uint32_t hi = r < n && 2 * q + 1 < k ? w[r * k + 2 * q + 1].bits() : 0u;
                (r < n ? bad : bad_pad) += view.word(r, q) != (lo | hi << 16);
            }
        }
        CHECK(bad == 0);
        CHECK(bad_pad == 0);
    }
    CHECK_THROWS_AS((void)llm::blas::bf16_weight_panels::word_count(std::size_t{1} << 62, std::size_t{1} << 20), llm::error);
}

TEST_CASE("bf16 weight panels: run_packed gives run's dot_round_fp32 bits for the row-major weights, on 1 and 2 threads") {
    using wp = llm::blas::bf16_weight_panels;
    if (!own_round::packed_available()) {
        MESSAGE("skipped: no bf16 dot-product path with 64-column tiles here");
        return;
    }
    using own_tiny_round = llm::blas::own<S, tiny, llm::blas::bf16_path::dot_round_fp32>;
    REQUIRE(own_tiny_round::packed_available());
    std::mt19937 rng(21);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    const std::size_t shapes[][3] = {{9, 2, 1}, {13, 65, 33}, {67, 130, 301}, {200, 257, 1000}, {7, 64, 2}};
    for (const auto& s : shapes) {
        const std::size_t m = s[0], n = s[1], k = s[2];
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(k);
        std::vector<float> x(m * k);
        std::vector<llm::bf16> w(n * k);
        for (auto& v : x) v = u(rng);
        for (auto& v : w) v = llm::bf16(u(rng));
        // 64-byte aligned words, as the micro-kernel's aligned loads need
        std::vector<std::uint32_t> buf(wp::word_count(n, k) + 16);
        auto* words = buf.data() + (64 - reinterpret_cast<std::uintptr_t>(buf.data()) % 64) % 64 / 4;
        wp::pack(w.data(), n, k, words);
        const wp panels{words, n, k};
        const llm::strided_view<const float, 2> a(x.data(), llm::dims<2>(m, k), llm::dims<2>(k, 1));
        const llm::strided_view<const llm::bf16, 2> wt(w.data(), llm::dims<2>(k, n), llm::dims<2>(1, k));
        CHECK(packed_equals_run<own_round>(m, n, a, wt, panels, ws, seq));
        CHECK(packed_equals_run<own_round>(m, n, a, wt, panels, ws, pool));
        // kc 8: 16 k steps per block, panels read at every block's offset
        CHECK(packed_equals_run<own_tiny_round>(m, n, a, wt, panels, ws, seq));
        CHECK(packed_equals_run<own_tiny_round>(m, n, a, wt, panels, ws, pool));
    }
    // Bad input: shapes that disagree, a strided c, unaligned words.
    std::vector<float> x(9 * 4), y(9 * 64);
    alignas(64) std::uint32_t words[64 * 2] = {};
    const llm::strided_view<const float, 2> a(x.data(), llm::dims<2>(9, 4), llm::dims<2>(4, 1));
    const llm::strided_view<float, 2> c(y.data(), llm::dims<2>(9, 64), llm::dims<2>(64, 1));
    CHECK_NOTHROW(own_round::run_packed(c, a, wp{words, 64, 4}, ws, seq));
    CHECK_THROWS_AS(own_round::run_packed(c, a, wp{words, 64, 3}, ws, seq), llm::error);
    CHECK_THROWS_AS(own_round::run_packed(c, a, wp{words, 63, 4}, ws, seq), llm::error);
    CHECK_THROWS_AS(own_round::run_packed(c, a, wp{words + 1, 64, 4}, ws, seq), llm::error);
    const llm::strided_view<float, 2> ct(y.data(), llm::dims<2>(9, 64), llm::dims<2>(1, 9));
    CHECK_THROWS_AS(own_round::run_packed(ct, a, wp{words, 64, 4}, ws, seq), llm::error);
}

TEST_CASE("f16 weight panels: pack puts W(r, j) where element() reads it, zero pads; run_packed gives run's fp32 GEMM bits") {
    using fp = llm::blas::f16_weight_panels;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    llm::workspace ws;
    using own_f = llm::blas::own<S, blocking>;
    using own_tiny_f = llm::blas::own<S, tiny>;
    const std::size_t shapes[][3] = {{9, 2, 1}, {13, 65, 33}, {67, 130, 301}, {200, 257, 1000}, {7, 64, 17}};
    for (const auto& s : shapes) {
        const std::size_t m = s[0], n = s[1], k = s[2];
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(k);
        std::vector<float> x(m * k);
        std::vector<llm::f16> w(n * k);
        for (auto& v : x) v = u(rng);
        for (auto& v : w) v = llm::f16(u(rng));
        REQUIRE(fp::element_count(n, k) == (n + 63) / 64 * 64 * k);
        std::vector<std::uint16_t> buf(fp::element_count(n, k) + 32, 0xBEEF);
        auto* halves = buf.data() + (64 - reinterpret_cast<std::uintptr_t>(buf.data()) % 64) % 64 / 2;
        fp::pack(reinterpret_cast<const std::uint16_t*>(w.data()), n, k, halves);
        const fp panels{halves, n, k};
        std::size_t bad = 0;
        for (std::size_t r = 0; r < (n + 63) / 64 * 64; ++r) {
            for (std::size_t j = 0; j < k; ++j) bad += panels.element(r, j) != (r < n ? w[r * k + j].bits() : 0u);
        }
        CHECK(bad == 0);
        if (!own_f::f16_packed_available()) {
            continue;
        }
        const llm::strided_view<const float, 2> a(x.data(), llm::dims<2>(m, k), llm::dims<2>(k, 1));
        const llm::strided_view<const llm::f16, 2> wt(w.data(), llm::dims<2>(k, n), llm::dims<2>(1, k));
        CHECK(packed_equals_run<own_f>(m, n, a, wt, panels, ws, seq));
        CHECK(packed_equals_run<own_f>(m, n, a, wt, panels, ws, pool));
        // kc 8: every KC slice of a panel widened at its offset
        CHECK(packed_equals_run<own_tiny_f>(m, n, a, wt, panels, ws, seq));
        CHECK(packed_equals_run<own_tiny_f>(m, n, a, wt, panels, ws, pool));
    }
    if (!own_f::f16_packed_available()) {
        MESSAGE("run_packed over f16 panels skipped: this blocking's micro-tile is not 64 columns wide");
        return;
    }
    std::vector<float> x(9 * 4), y(9 * 64);
    alignas(64) std::uint16_t halves[64 * 4] = {};
    const llm::strided_view<const float, 2> a(x.data(), llm::dims<2>(9, 4), llm::dims<2>(4, 1));
    const llm::strided_view<float, 2> c(y.data(), llm::dims<2>(9, 64), llm::dims<2>(64, 1));
    CHECK_NOTHROW(own_f::run_packed(c, a, fp{halves, 64, 4}, ws, seq));
    CHECK_THROWS_AS(own_f::run_packed(c, a, fp{halves, 64, 3}, ws, seq), llm::error);
    CHECK_THROWS_AS(own_f::run_packed(c, a, fp{halves + 1, 64, 4}, ws, seq), llm::error);
}
