// SPDX-License-Identifier: Apache-2.0
// moe_forward_quantized: experts' w1 / w3 / w2 as Q8_0, Q4_0 and Q4_K through llm::quant::gemm,
// against moe_forward on the dequantized (fp32) weights.
#include "helpers.hpp"

#include <llm/moe/quantized.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/quant.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace {

using namespace moe_test;

template <class F>
struct quantized_layer {
    std::vector<typename F::block> b1, b3, b2;
    t3f d1, d3, d2;  // the dequantized weights
    explicit quantized_layer(const layer& l)
        : b1(llm::quant::quantize<F>(std::span<const float>(l.w1.data(), l.w1.size()))),
          b3(llm::quant::quantize<F>(std::span<const float>(l.w3.data(), l.w3.size()))),
          b2(llm::quant::quantize<F>(std::span<const float>(l.w2.data(), l.w2.size()))),
          d1(l.w1.extent(0), l.w1.extent(1), l.w1.extent(2)), d3(l.w3.extent(0), l.w3.extent(1), l.w3.extent(2)),
          d2(l.w2.extent(0), l.w2.extent(1), l.w2.extent(2)) {
        llm::quant::dequantize<F>(std::span<const typename F::block>(b1), std::span<float>(d1.data(), d1.size()));
        llm::quant::dequantize<F>(std::span<const typename F::block>(b3), std::span<float>(d3.data(), d3.size()));
        llm::quant::dequantize<F>(std::span<const typename F::block>(b2), std::span<float>(d2.data(), d2.size()));
    }
    auto weights(const layer& l) const {
        using A = llm::quant::block_accessor<F>;
        const std::size_t E = l.w1.extent(0), ff = l.w1.extent(1), d = l.w1.extent(2);
        auto v1 = llm::quant::matrix_view<A>(std::span<const typename F::block>(b1), E * ff, d);
        auto v3 = llm::quant::matrix_view<A>(std::span<const typename F::block>(b3), E * ff, d);
        auto v2 = llm::quant::matrix_view<A>(std::span<const typename F::block>(b2), E * d, ff);
        return llm::moe::quantized_moe_weights<decltype(v1)>{llm::to_kernel_view<2>(l.gate), v1, v3, v2, E, ff};
    }
};

template <class F>
void check_format(double tol_best) {
    std::mt19937 rng(17);
    const std::size_t E = 4, d = 256, ff = 512, T = 7;
    const layer l(E, d, ff, 0, rng);
    const quantized_layer<F> q(l);
    const t2f x = rand2(T, d, rng);
    const llm::moe::softmax_top_k router{.k = 2};
    t2f ref(T, d), got(T, d);
    llm::moe::moe_cache c_ref, c;
    llm::moe::moe_forward(ref, c_ref, x, llm::moe::make_moe_weights(l.gate, q.d1, q.d3, q.d2), router, {},
                          llm::parallel::sequential{});
    const auto w = q.weights(l);
    // generic path: dequantized weight blocks times the fp32 activations, so only the fp32
    // summation order differs from moe_forward's GEMM: per dot product of length K <= 512 about
    // sqrt(K) u ~ 1.3e-6 relative (K u = 3e-5 worst case, never approached with random signs),
    // through two products and SwiGLU: bound 2e-5.
    llm::moe::moe_forward_quantized(got, c, x, w, router, {}, {.path = llm::quant::kernel_isa::generic},
                                    llm::parallel::sequential{});
    const double e_generic = rel_norm(got, ref);
    INFO(F::name << " generic rel err " << e_generic);
    CHECK(e_generic < 2e-5);
    // the routing is the fp32 router on both sides, identical
    CHECK(c.expert_ids == c_ref.expert_ids);
    // best path: the activations are quantized to 8 bits (Q8_0 per 32 values, Q8_K per 256):
    // rounding error uniform within half a step amax / 127, rms amax / (127 sqrt 12); for x
    // uniform in [-1, 1] (amax ~ 1, rms 1/sqrt 3) 0.4% relative per value, and the SwiGLU
    // activations fed to w2 have amax / rms ~ 4-6 (0.9-1.4%); the errors of independent
    // values add in quadrature through each dot product, so the output is off by ~1-1.5%
    // relative rms (measured: Q8_0 1.04%, Q4_0 1.05%, Q4_K 1.59%; generic path 3e-7 .. 6e-7).
    // Bound tol_best (2-3x that); an error in the expert layout, a wrong expert's
    // rows or a missing SwiGLU moves it to ~1.
    llm::moe::moe_forward_quantized(got, c, x, w, router, {}, {}, llm::parallel::sequential{});
    const double e_best = rel_norm(got, ref);
    INFO(F::name << " best-path rel err " << e_best);
    CHECK(e_best < tol_best);
    // the same on a pool: identical to the sequential result
    t2f par(T, d);
    llm::moe::moe_forward_quantized(par, c, x, w, router, {}, {}, llm::parallel::default_pool());
    CHECK(rel_norm(par, got) == 0.0);
}

}  // namespace

TEST_CASE("moe quantized: Q8_0, Q4_0, Q4_K experts match moe_forward on the dequantized weights") {
    check_format<llm::quant::q8_0>(3e-2);
    check_format<llm::quant::q4_0>(3e-2);
    check_format<llm::quant::q4_k>(4e-2);
}

TEST_CASE("moe quantized: shapes that disagree and an empty batch") {
    std::mt19937 rng(3);
    const std::size_t E = 2, d = 64, ff = 32;
    const layer l(E, d, ff, 0, rng);
    const quantized_layer<llm::quant::q8_0> q(l);
    auto w = q.weights(l);
    const llm::moe::softmax_top_k router{.k = 2};
    llm::moe::moe_cache c;
    t2f y0(0, d);
    const t2f x0(0, d);
    llm::moe::moe_forward_quantized(y0, c, x0, w, router, {}, {}, llm::parallel::sequential{});
    CHECK(c.plan.size() == 0);
    t2f y(3, d);
    const t2f x = rand2(3, d, rng);
    w.d_ff = 64;  // w1 is [E * 32, d], not [E * 64, d]
    CHECK_THROWS_AS(llm::moe::moe_forward_quantized(y, c, x, w, router, {}, {}, llm::parallel::sequential{}), llm::error);
    w.d_ff = ff;
    const t2f bad = rand2(3, d + 32, rng);
    CHECK_THROWS_AS(llm::moe::moe_forward_quantized(y, c, bad, w, router, {}, {}, llm::parallel::sequential{}), llm::error);
}

TEST_CASE("moe quantized: the grouped products (threads across experts, or each expert split by rows) are llm::quant::gemm's bits") {
    // Six experts' groups of 3, 0, 2, 5, 1, 4 rows: five non-empty groups, so a 2-thread pool
    // takes whole experts (>= 2 groups per thread) while sequential{} and a pool over only the
    // first group split each product by rows; every output must equal quant::gemm of its group.
    using F = llm::quant::q4_0;
    std::mt19937 rng(29);
    const std::size_t E = 6, m = 64, k = 128;
    const std::size_t offsets[E + 1] = {0, 3, 3, 5, 10, 11, 15};
    const std::size_t N = offsets[E];
    const t2f wf = rand2(E * m, k, rng);
    const auto blocks = llm::quant::quantize<F>(std::span<const float>(wf.data(), wf.size()));
    const auto w = llm::quant::matrix_view<llm::quant::block_accessor<F>>(std::span<const F::block>(blocks), E * m, k);
    const t2f x = rand2(N, k, rng);
    t2f ref(N, m), seq(N, m), par(N, m);
    llm::workspace ws;
    for (std::size_t e = 0; e < E; ++e) {
        const std::size_t o = offsets[e], n = offsets[e + 1] - o;
        if (n != 0) {
            llm::quant::gemm(llm::moe::detail::rows_of(ref.data() + o * m, n, m, m),
                             llm::moe::detail::crows_of(x.data() + o * k, n, k, k), llm::moe::detail::quant_rows(w, e * m, m),
                             {}, ws, llm::parallel::sequential{});
        }
    }
    llm::parallel::sequential s;
    llm::parallel::thread_pool pool(2);
    llm::moe::detail::grouped_gemm_quantized(seq.data(), x.data(), offsets, E, w, m, k, {}, ws, s);
    llm::moe::detail::grouped_gemm_quantized(par.data(), x.data(), offsets, E, w, m, k, {}, ws, pool);
    CHECK(rel_norm(seq, ref) == 0.0);
    CHECK(rel_norm(par, ref) == 0.0);
    t2f one(N, m);
    const std::size_t first[3] = {0, 3, 3};  // two experts, one non-empty group: split by rows
    llm::moe::detail::grouped_gemm_quantized(one.data(), x.data(), first, 2, w, m, k, {}, ws, pool);
    for (std::size_t i = 0; i < 3 * m; ++i) {
        REQUIRE(one.data()[i] == ref.data()[i]);
    }
}

namespace {

// moe_forward_quantized quantizes each token's row once for gate and up (quantize_activations,
// blocks gathered per expert); the cache's gate / up must equal llm::quant::gemm of the gathered
// fp32 rows (the per-expert quantization) bit for bit, sequentially and on a pool.
template <class F>
void check_quantize_once(std::size_t T, std::size_t k) {
    CAPTURE(T);
    std::mt19937 rng(41);
    const std::size_t E = 8, d = 256, ff = 512;
    const layer l(E, d, ff, 0, rng);
    const quantized_layer<F> q(l);
    const auto w = q.weights(l);
    const t2f x = rand2(T, d, rng);
    const llm::moe::softmax_top_k router{.k = k};
    llm::parallel::thread_pool pool(2);
    llm::parallel::sequential s;
    for (int run = 0; run < 2; ++run) {
        t2f y(T, d);
        llm::moe::moe_cache c;
        if (run == 0) {
            llm::moe::moe_forward_quantized(y, c, x, w, router, {}, {}, s);
        } else {
            llm::moe::moe_forward_quantized(y, c, x, w, router, {}, {}, pool);
        }
        const std::size_t N = c.plan.size();
        REQUIRE(N == T * k);
        std::vector<float> g(N * ff), u(N * ff);
        llm::workspace ws;
        llm::moe::detail::grouped_gemm_quantized(g.data(), c.xp.data(), c.plan.offsets.data(), E, w.w1, ff, d, {}, ws, s);
        llm::moe::detail::grouped_gemm_quantized(u.data(), c.xp.data(), c.plan.offsets.data(), E, w.w3, ff, d, {}, ws, s);
        CHECK(std::memcmp(g.data(), c.gate.data(), N * ff * sizeof(float)) == 0);
        CHECK(std::memcmp(u.data(), c.up.data(), N * ff * sizeof(float)) == 0);
    }
}

}  // namespace

TEST_CASE("moe quantized: each token quantized once for gate and up gives the per-expert quantization's bits") {
    check_quantize_once<llm::quant::q4_0>(1, 2);   // decode: one token, 2 experts (split by rows)
    check_quantize_once<llm::quant::q4_0>(1, 8);   // 8 experts: threads take whole experts
    check_quantize_once<llm::quant::q4_0>(19, 2);  // prefill, panel GEMM for groups of >= 8 rows
    check_quantize_once<llm::quant::q8_0>(19, 3);
    check_quantize_once<llm::quant::q4_k>(1, 8);
    check_quantize_once<llm::quant::q4_k>(19, 2);
}

TEST_CASE("moe quantized: grouped_gemm_prequantized (two matrices, largest group first) is llm::quant::gemm's bits") {
    // m = 131: 2 threads cut each expert into pieces of 72 and 59 rows (for_each_expert_piece).
    for (const std::size_t m : {std::size_t{32}, std::size_t{131}}) {
        CAPTURE(m);
        using F = llm::quant::q6_k;
        std::mt19937 rng(31);
        const std::size_t E = 6, k = 256;
        const std::size_t offsets[E + 1] = {0, 3, 3, 5, 14, 15, 19};
        const std::size_t N = offsets[E];
        const t2f wf1 = rand2(E * m, k, rng), wf2 = rand2(E * m, k, rng);
        const auto b1 = llm::quant::quantize<F>(std::span<const float>(wf1.data(), wf1.size()));
        const auto b2 = llm::quant::quantize<F>(std::span<const float>(wf2.data(), wf2.size()));
        using A = llm::quant::block_accessor<F>;
        const auto w1 = llm::quant::matrix_view<A>(std::span<const F::block>(b1), E * m, k);
        const auto w2 = llm::quant::matrix_view<A>(std::span<const F::block>(b2), E * m, k);
        const t2f x = rand2(N, k, rng);
        llm::quant::quantized_activations<F> qa;
        llm::quant::quantize_activations(qa, x, llm::parallel::sequential{});
        t2f r1(N, m), r2(N, m);
        llm::workspace ws;
        llm::parallel::sequential s;
        llm::moe::detail::grouped_gemm_quantized(r1.data(), x.data(), offsets, E, w1, m, k, {}, ws, s);
        llm::moe::detail::grouped_gemm_quantized(r2.data(), x.data(), offsets, E, w2, m, k, {}, ws, s);
        llm::parallel::thread_pool pool(2);
        for (int run = 0; run < 2; ++run) {
            t2f y1(N, m), y2(N, m);
            float* const ys[2] = {y1.data(), y2.data()};
            const decltype(w1)* const ws2[2] = {&w1, &w2};
            if (run == 0) {
                llm::moe::detail::grouped_gemm_prequantized(ys, ws2, 2, qa, offsets, E, m, {}, s);
            } else {
                llm::moe::detail::grouped_gemm_prequantized(ys, ws2, 2, qa, offsets, E, m, {}, pool);
            }
            CHECK(rel_norm(y1, r1) == 0.0);
            CHECK(rel_norm(y2, r2) == 0.0);
        }
        std::vector<std::size_t> order;
        llm::moe::detail::busy_experts(order, offsets, E);
        CHECK(order == std::vector<std::size_t>{3, 5, 0, 2, 4});
    }
}

namespace {

// The packed experts (llm::moe::packed_experts, the packed moe_forward_quantized) against moe_forward on
// the dequantized weights and against the row-major quantized path, for format F.
template <class F>
void check_packed_format(std::size_t E, std::size_t d, std::size_t ff, std::size_t T, double tol = 3e-2) {
    CAPTURE(F::name);
    CAPTURE(T);
    std::mt19937 rng(53);
    const layer l(E, d, ff, 0, rng);
    const quantized_layer<F> q(l);
    const auto w = q.weights(l);
    const llm::moe::packed_experts<F> p(w);
    REQUIRE(p.experts() == E);
    const auto wp = p.weights(w.gate);
    const t2f x = rand2(T, d, rng);
    const llm::moe::softmax_top_k router{.k = 2};
    t2f ref(T, d), rm(T, d), got(T, d), par(T, d);
    llm::moe::moe_cache c_ref, c_rm, c;
    llm::moe::moe_forward(ref, c_ref, x, llm::moe::make_moe_weights(l.gate, q.d1, q.d3, q.d2), router, {},
                          llm::parallel::sequential{});
    llm::moe::moe_forward_quantized(rm, c_rm, x, w, router, {}, {}, llm::parallel::sequential{});
    llm::moe::moe_forward_quantized(got, c, x, wp, router, {}, {}, llm::parallel::sequential{});
    CHECK(c.expert_ids == c_ref.expert_ids);
    // vs the exact maths on the dequantized weights: the activations quantized to Q8_0 (Q8_K for
    // the K formats) as on the row-major path, so the bound derived for it above (check_format:
    // ~1% rms measured, bound 3e-2; Q4_K 1.6%, bound 4e-2).
    const double e_ref = rel_norm(got, ref);
    INFO("packed vs fp32 rel err " << e_ref << ", row-major vs fp32 " << rel_norm(rm, ref));
    CHECK(e_ref < tol);
    // vs the row-major quantized path: the same Q8_0 activation blocks of x times the same weight
    // codes; the int32 block sums are exact on both, only the fp32 order of the per-block products
    // differs (one fma chain here, 8-lane partial sums there): ~sqrt(K / 32) u ~ 3e-7 relative per
    // output of gate / up. That can flip the rounding of a SwiGLU value to its Q8_0 code at a
    // half-step boundary (rare: probability ~1e-6 per value), one step amax / 127 of one input of a
    // 512-long dot product: ~1e-4 of that output at most. Bound 1e-4 rms relative (measured ~1e-7);
    // a wrong expert, row order or group padding gives ~1.
    const double e_rm = rel_norm(got, rm);
    INFO("packed vs row-major rel err " << e_rm);
    CHECK(e_rm < 1e-4);
    // sequential == pool, and the portable kernel gives the same bits as the CPU's best
    llm::parallel::thread_pool pool(2);
    llm::moe::moe_forward_quantized(par, c, x, wp, router, {}, {}, pool);
    CHECK(rel_norm(par, got) == 0.0);
    llm::moe::moe_forward_quantized(par, c, x, wp, router, {}, {.path = llm::quant::kernel_isa::generic}, pool);
    CHECK(rel_norm(par, got) == 0.0);
    // batch invariance: each token alone gives its row of the batch's output, bit for bit
    for (std::size_t t = 0; t < T; ++t) {
        t2f xt(1, d), yt(1, d);
        std::memcpy(xt.data(), x.data() + t * d, d * sizeof(float));
        if (t % 2 == 0) {
            llm::moe::moe_forward_quantized(yt, c, xt, wp, router, {}, {}, llm::parallel::sequential{});
        } else {
            llm::moe::moe_forward_quantized(yt, c, xt, wp, router, {}, {}, pool);
        }
        CHECK(std::memcmp(yt.data(), got.data() + t * d, d * sizeof(float)) == 0);
    }
}

}  // namespace

TEST_CASE("moe packed: Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K packed experts match moe_forward on the dequantized weights and the row-major path") {
    check_packed_format<llm::quant::q8_0>(4, 256, 512, 7);
    check_packed_format<llm::quant::q4_0>(4, 256, 512, 7);
    check_packed_format<llm::quant::q4_1>(4, 256, 256, 5);
    check_packed_format<llm::quant::q5_0>(3, 256, 512, 1);  // decode
    check_packed_format<llm::quant::q5_1>(4, 96, 160, 7);   // 12 and 20 groups
    check_packed_format<llm::quant::q4_k>(4, 256, 512, 7, 4e-2);  // Q8_K activations (256-value blocks)
    check_packed_format<llm::quant::q6_k>(3, 256, 256, 1, 4e-2);  // decode
    check_packed_format<llm::quant::q5_k>(4, 256, 256, 5, 4e-2);
    check_packed_format<llm::quant::q5_k>(3, 256, 512, 1, 4e-2);  // decode
    check_packed_format<llm::quant::q2_k>(4, 256, 256, 5, 4e-2);  // Q8_K activations as the K formats' (1.6% measured)
    check_packed_format<llm::quant::q2_k>(3, 256, 512, 1, 4e-2);  // decode
    check_packed_format<llm::quant::q3_k>(4, 256, 256, 5, 4e-2);
    check_packed_format<llm::quant::q3_k>(3, 256, 512, 1, 4e-2);  // decode
    check_packed_format<llm::quant::q4_0>(8, 96, 160, 1);   // decode; 96 = 12 groups, 160 = 20 groups
    check_packed_format<llm::quant::q4_0>(8, 96, 160, 23);  // some experts with 0 or 1 tokens
}

TEST_CASE("moe packed: grouped products over groups of 0, 1, 7 rows and 20 or 200 weight rows are the packed gemv's bits") {
    // m = 20: the last group of 8 rows half padding; m = 200: 2 threads cut each expert into
    // pieces of 72, 72 and 56 rows (for_each_expert_piece), the last piece's group half padding.
    for (const std::size_t m : {std::size_t{20}, std::size_t{200}}) {
        CAPTURE(m);
        using F = llm::quant::q4_0;
        std::mt19937 rng(61);
        const std::size_t E = 5, k = 64;
        const std::size_t offsets[E + 1] = {0, 0, 1, 8, 8, 15};
        const std::size_t N = offsets[E];
        std::vector<llm::quant::packed_matrix<F>> mats;
        std::vector<llm::quant::packed_view<F>> views;
        for (std::size_t e = 0; e < E; ++e) {
            const t2f wf = rand2(m, k, rng);
            mats.push_back(llm::quant::pack<F>(llm::quant::quantize<F>(std::span<const float>(wf.data(), wf.size())), m, k));
        }
        for (const auto& mat : mats) {
            views.push_back(mat.view());
        }
        const t2f x = rand2(N, k, rng);
        llm::quant::quantized_activations<F> qa;
        llm::quant::quantize_activations(qa, x, llm::parallel::sequential{});
        t2f ref(N, m);
        for (std::size_t e = 0; e < E; ++e) {
            for (std::size_t i = offsets[e]; i < offsets[e + 1]; ++i) {
                llm::quant::gemv(llm::strided_view<float, 1>{ref.data() + i * m, llm::dims<1>(m), llm::dims<1>(1)},
                                 llm::strided_view<const float, 1>{x.data() + i * k, llm::dims<1>(k), llm::dims<1>(1)},
                                 views[e], {}, llm::parallel::sequential{});
            }
        }
        const std::span<const llm::quant::packed_view<F>> w[1] = {views};
        llm::parallel::sequential s;
        llm::parallel::thread_pool pool(2);
        for (int run = 0; run < 2; ++run) {
            t2f y(N, m);
            float* const ys[1] = {y.data()};
            if (run == 0) {
                llm::moe::detail::grouped_gemm_packed(ys, w, 1, qa, offsets, E, m, {}, s);
            } else {
                llm::moe::detail::grouped_gemm_packed(ys, w, 1, qa, offsets, E, m, {}, pool);
            }
            CHECK(std::memcmp(y.data(), ref.data(), N * m * sizeof(float)) == 0);
        }
    }
}

TEST_CASE("moe packed: views that disagree with the gate or d_ff raise llm::error") {
    std::mt19937 rng(5);
    const std::size_t E = 2, d = 64, ff = 32;
    const layer l(E, d, ff, 0, rng);
    const quantized_layer<llm::quant::q8_0> q(l);
    const auto w = q.weights(l);
    const llm::moe::packed_experts<llm::quant::q8_0> p(w);
    auto wp = p.weights(w.gate);
    const llm::moe::softmax_top_k router{.k = 2};
    llm::moe::moe_cache c;
    t2f y(3, d);
    const t2f x = rand2(3, d, rng);
    wp.d_ff = 64;
    CHECK_THROWS_AS(llm::moe::moe_forward_quantized(y, c, x, wp, router, {}, {}, llm::parallel::sequential{}), llm::error);
    wp.d_ff = ff;
    wp.w2 = wp.w2.first(1);
    CHECK_THROWS_AS(llm::moe::moe_forward_quantized(y, c, x, wp, router, {}, {}, llm::parallel::sequential{}), llm::error);
}
