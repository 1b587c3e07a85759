// SPDX-License-Identifier: Apache-2.0
// The MoE block with llm::model::quantized params (experts as stacked llm::quant::any_matrix views,
// as open_gguf points them at a GGUF file's ffn_*_exps): forward against the block's params<float>
// of the dequantized weights, step against forward, every dispatch of moe_forward_quantized's
// any_matrix overload (row-major typed, packed, mixed types / f16 through the per-expert
// fallback), and bad input.
#include "helpers.hpp"

#include <llm/model/block.hpp>
#include <llm/model/weights.hpp>
#include <llm/moe/block.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/quant.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <algorithm>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace moe_test;
namespace moe = llm::moe;
namespace mdl = llm::model;
using llm::io::ggml_type;
using llm::quant::any_matrix;

// One stacked expert tensor in GGUF type `type`: its bytes (kept), the any_matrix view of them
// (repacked into 8-row groups when asked) and the dequantized fp32 values.
struct stacked {
    std::vector<std::byte> bytes;
    llm::aligned_buffer<std::byte> packed;
    any_matrix m;
    std::vector<float> deq;
    stacked(ggml_type type, const t3f& w, bool repack) {
        const std::size_t rows = w.extent(0) * w.extent(1), cols = w.extent(2);
        const std::span<const float> x(w.data(), w.size());
        deq.resize(w.size());
        if (type == ggml_type::f16) {
            bytes.resize(2 * w.size());
            for (std::size_t i = 0; i < w.size(); ++i) {
                const llm::f16 h(x[i]);
                std::memcpy(bytes.data() + 2 * i, &h, 2);
                deq[i] = static_cast<float>(h);
            }
        } else {
            const bool ok = llm::quant::detail::visit_block_format(type, [&](auto id) {
                using F = typename decltype(id)::type;
                const auto blocks = llm::quant::quantize<F>(x);
                bytes.resize(blocks.size() * sizeof(typename F::block));
                std::memcpy(bytes.data(), blocks.data(), bytes.size());
                llm::quant::dequantize<F>(std::span<const typename F::block>(blocks), std::span<float>(deq));
            });
            REQUIRE(ok);
        }
        m = any_matrix(type, bytes, rows, cols);
        if (repack) {
            m = llm::quant::repack(m, packed);
        }
    }
};

struct fixture {
    static constexpr std::size_t E = 4, k = 2;
    std::size_t d, ff;
    moe::moe_ffn<4, 2> f;
    layer l;
    fixture(std::size_t d_model, std::size_t d_ff, std::mt19937& rng)
        : d(d_model), ff(d_ff), f(d_model, d_ff, E, moe::softmax_top_k{.k = k}), l(E, d_model, d_ff, 0, rng) {}
};

// Forward of params<quantized> (w1 / w3 / w2 in types t1, t3, t2) against the block's fp32
// forward of the dequantized weights (w1 / w3 repacked into 8-row groups when `repack`, w2 when
// `repack_down`); returns the relative error, checks the routing is the same, and step(x) == the
// forward's rows.
double check_types(fixture& fx, ggml_type t1, ggml_type t3, ggml_type t2, bool repack, double tol, std::size_t T,
                   bool step_bits, bool repack_down) {
    CAPTURE(static_cast<int>(t1));
    CAPTURE(static_cast<int>(t2));
    CAPTURE(repack);
    std::mt19937 rng(5);
    const stacked s1(t1, fx.l.w1, repack), s3(t3, fx.l.w3, repack), s2(t2, fx.l.w2, repack_down);
    auto pq = fx.f.make_params<mdl::quantized>();
    CHECK(!pq.w1.has_data());
    CHECK(pq.w1.extent(0) == fx.E * fx.ff);
    CHECK(pq.w2.extent(0) == fx.E * fx.d);
    std::memcpy(pq.gate.data(), fx.l.gate.data(), fx.l.gate.size() * sizeof(float));
    pq.w1 = s1.m;
    pq.w3 = s3.m;
    pq.w2 = s2.m;
    auto pf = fx.f.make_params<float>();
    std::memcpy(pf.gate.data(), fx.l.gate.data(), fx.l.gate.size() * sizeof(float));
    std::memcpy(pf.w1.data(), s1.deq.data(), s1.deq.size() * sizeof(float));
    std::memcpy(pf.w3.data(), s3.deq.data(), s3.deq.size() * sizeof(float));
    std::memcpy(pf.w2.data(), s2.deq.data(), s2.deq.size() * sizeof(float));
    const t2f x = rand2(T, fx.d, rng);
    t2f ref(T, fx.d), got(T, fx.d);
    poison(got.data(), got.size());
    llm::model::arena a;
    auto cf = fx.f.make_cache(a, {.batch = 1, .seq = T});
    auto cq = fx.f.make_cache(a, {.batch = 1, .seq = T});
    llm::workspace ws;
    llm::parallel::sequential seq;
    fx.f.forward(ref, cf, x, pf, ws, seq);
    fx.f.forward(got, cq, x, pq, ws, seq);
    CHECK(cq.layer->expert_ids == cf.layer->expert_ids);
    const double e = rel_norm(got, ref);
    INFO("rel err " << e);
    CHECK(e < tol);
    // a pool gives the sequential bits
    llm::parallel::thread_pool pool(2);
    t2f par(T, fx.d);
    fx.f.forward(par, cq, x, pq, ws, pool);
    CHECK(rel_norm(par, got) == 0.0);
    // step on each token alone: the forward's row (bit for bit on the packed path, whose routing
    // and products are batch-invariant; else within fp32 reordering of the router GEMM and the
    // products, ~1e-6: bound 1e-5)
    typename moe::moe_ffn<4, 2>::state st;
    double worst = 0;
    for (std::size_t t = 0; t < T; ++t) {
        t2f xt(1, fx.d), yt(1, fx.d), rt(1, fx.d);
        std::memcpy(xt.data(), x.data() + t * fx.d, fx.d * sizeof(float));
        std::memcpy(rt.data(), got.data() + t * fx.d, fx.d * sizeof(float));
        if (t % 2 == 0) {
            fx.f.step(yt, st, xt, pq, ws, seq);
        } else {
            fx.f.step(yt, st, xt, pq, ws, pool);
        }
        if (step_bits) {
            CHECK(std::memcmp(yt.data(), rt.data(), fx.d * sizeof(float)) == 0);
        }
        worst = std::max(worst, rel_norm(yt, rt));
    }
    INFO("step vs forward rows: worst rel " << worst);
    CHECK(worst < 1e-5);
    return e;
}

}  // namespace

TEST_CASE("moe block quantized: params<quantized> forward matches params<float> of the dequantized weights; step == forward rows") {
    std::mt19937 rng(29);
    fixture fx(64, 96, rng);
    const std::size_t T = 9;
    // Row-major Q8_0 / Q4_0 (the typed moe_forward_quantized) and repacked (the packed kernels):
    // the activations quantized to 8 bits, ~1% rms relative (tests/moe/quantized.cpp derives it
    // for moe_forward_quantized; measured 1.0-1.6%), bound 3e-2 as there. A wrong expert's rows,
    // group offset or stacked order gives ~1.
    for (const ggml_type t : {ggml_type::q8_0, ggml_type::q4_0}) {
        check_types(fx, t, t, t, false, 3e-2, T, false, false);
        check_types(fx, t, t, t, true, 3e-2, T, true, true);
        check_types(fx, t, t, t, true, 3e-2, 1, true, true);  // decode: one token
    }
    // Mixed types (gate / up Q4_0, down Q8_0: a K-quant mix's shape), row-major, and with gate /
    // up repacked (each expert's 8-row groups sliced out): the per-expert fallback, the same
    // 8-bit activations: bound 3e-2.
    check_types(fx, ggml_type::q4_0, ggml_type::q4_0, ggml_type::q8_0, false, 3e-2, T, false, false);
    check_types(fx, ggml_type::q4_0, ggml_type::q4_0, ggml_type::q8_0, true, 3e-2, T, false, false);
    // f16 experts (the fallback through quant::linear_forward): the f16 values widen exactly, so
    // only the fp32 summation order differs from the fp32 block: sqrt(K) u per dot product of
    // K <= 96 (~6e-7), through two products and SwiGLU: bound 2e-5 as tests/moe/quantized.cpp's
    // generic path.
    check_types(fx, ggml_type::f16, ggml_type::f16, ggml_type::f16, false, 2e-5, T, false, false);
}

TEST_CASE("moe block quantized: Q4_K experts (256-wide rows), row-major through the typed forward, repacked Q4_K / Q6_K through the packed kernels, mixed through the fallback") {
    std::mt19937 rng(31);
    fixture fx(256, 256, rng);
    // Q8_K activations: tests/moe/quantized.cpp's bound for Q4_K (measured 1.6%): 4e-2
    check_types(fx, ggml_type::q4_k, ggml_type::q4_k, ggml_type::q4_k, false, 4e-2, 5, false, false);
    // Repacked Q4_K / Q6_K experts (quant::repack's 8-row groups, each expert's groups sliced
    // out): the packed MoE kernels (batch-invariant: step gives the forward's bits), the same
    // Q8_K activations, bound 4e-2.
    check_types(fx, ggml_type::q4_k, ggml_type::q4_k, ggml_type::q4_k, true, 4e-2, 5, true, true);
    check_types(fx, ggml_type::q6_k, ggml_type::q6_k, ggml_type::q6_k, true, 4e-2, 1, true, true);
    // Mixed (Q6_K gate / up repacked, Q4_K down row-major): the per-expert fallback.
    check_types(fx, ggml_type::q6_k, ggml_type::q6_k, ggml_type::q4_k, true, 4e-2, 5, false, false);
}

TEST_CASE("moe block quantized: placeholders, shapes, groups spanning experts and shared experts are llm::error") {
    std::mt19937 rng(37);
    fixture fx(64, 36, rng);  // ff = 36: not a multiple of 8
    const t2f x = rand2(3, fx.d, rng);
    t2f y(3, fx.d);
    llm::model::arena a;
    auto c = fx.f.make_cache(a, {.batch = 1, .seq = 3});
    llm::workspace ws;
    llm::parallel::sequential seq;
    auto pq = fx.f.make_params<mdl::quantized>();
    CHECK_THROWS_WITH_AS(fx.f.forward(y, c, x, pq, ws, seq), doctest::Contains("has no data"), llm::error);
    // w1 with the wrong row count
    const stacked s1(ggml_type::q8_0, fx.l.w1, false), s3(ggml_type::q8_0, fx.l.w3, false), s2(ggml_type::f16, fx.l.w2, false);
    pq.w1 = any_matrix(ggml_type::q8_0, std::span<const std::byte>(s1.bytes).first(s1.m.row_bytes() * 8), 8, fx.d);
    pq.w3 = s3.m;
    pq.w2 = s2.m;
    CHECK_THROWS_WITH_AS(fx.f.forward(y, c, x, pq, ws, seq), doctest::Contains("w1 is [8, 64], want [144, 64]"), llm::error);
    pq.w1 = s1.m;
    CHECK_NOTHROW(fx.f.forward(y, c, x, pq, ws, seq));
    // repacked rows of 36 per expert: a group of 8 would hold two experts' rows
    llm::aligned_buffer<std::byte> buf;
    pq.w3 = llm::quant::repack(s3.m, buf);
    CHECK_THROWS_WITH_AS(fx.f.forward(y, c, x, pq, ws, seq), doctest::Contains("an expert has 36 rows"), llm::error);
    // shared experts have no quantized form here
    moe::moe_ffn<4, 2> fs(64, 36, 4, moe::softmax_top_k{.k = 2}, {}, 32);
    auto ps = fs.make_params<mdl::quantized>();
    CHECK(ps.sw1.extent(0) == 32);
    CHECK_THROWS_WITH_AS(fs.forward(y, c, x, ps, ws, seq), doctest::Contains("shared experts"), llm::error);
}

TEST_CASE("moe block quantized: the stacked experts are visited under experts.wI.weight") {
    const moe::moe_ffn<4, 2> f(64, 96, 4, moe::softmax_top_k{.k = 2});
    auto p = f.make_params<mdl::quantized>();
    std::vector<std::string> names;
    p.for_each_param([&](std::string_view n, const auto&) { names.emplace_back(n); });
    CHECK(names == std::vector<std::string>{"gate.weight", "experts.w1.weight", "experts.w2.weight", "experts.w3.weight"});
}
