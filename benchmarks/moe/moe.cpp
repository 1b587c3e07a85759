// SPDX-License-Identifier: Apache-2.0
// The MoE layer (8 experts, top-2): the share of router + dispatch + combine, tokens/s against a dense SwiGLU FFN with the same active parameters, and the n = 1 read bandwidth of the selected experts' weights.
//
// Sizes: Mixtral's d_model 4096 / d_ff 14336 scaled by 1/8 (512 / 1792) so the weights (88 MB
// fp32) stay well above the last-level cache and one smoke iteration stays short.
#include <llm/core/workspace.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/moe/moe.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include "../support/stream.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace {

namespace moe = llm::moe;
using t2f = llm::tensor<float, llm::dims<2>>;
using t3f = llm::tensor<float, llm::dims<3>>;

constexpr std::size_t E = 8, K = 2, D = 512, FF = 1792;

void fill(float* p, std::size_t n, unsigned seed, float scale) {
    std::minstd_rand rng(seed);  // fast: the tensors are large
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = scale * (static_cast<float>(rng()) * (2.0f / 2147483647.0f) - 1.0f);
    }
}

struct layer {
    t2f gate{E, D};
    t3f w1{E, FF, D}, w3{E, FF, D}, w2{E, D, FF};
    layer() {
        fill(gate.data(), gate.size(), 1, 1.0f);
        fill(w1.data(), w1.size(), 2, 0.05f);
        fill(w3.data(), w3.size(), 3, 0.05f);
        fill(w2.data(), w2.size(), 4, 0.05f);
    }
    [[nodiscard]] moe::moe_weights weights() const { return moe::make_moe_weights(gate, w1, w3, w2); }
};

const layer& the_layer() {
    static const layer l;
    return l;
}

void tokens_per_second(benchmark::State& state, std::size_t tokens) {
    state.counters["tokens/s"] =
        benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

/// The whole MoE forward, and the same steps timed one by one: router (gate GEMM + route),
/// dispatch (plan + gather), experts (grouped GEMMs), combine. Counters: tokens/s of the layer
/// and the share of router + dispatch + combine in the summed step times.
/// Args: tokens, threads.
void BM_moe_layer(benchmark::State& state) {
    const auto T = static_cast<std::size_t>(state.range(0));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    const auto w = the_layer().weights();
    t2f x(T, D), y(T, D);
    fill(x.data(), x.size(), 5, 1.0f);
    const moe::softmax_top_k router{.k = K};
    moe::moe_cache cache;
    llm::workspace ws;
    for (auto _ : state) {
        moe::moe_forward(y, cache, x, w, router, {}, ws, pool);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    tokens_per_second(state, T);
    state.counters["GFLOP/s"] = benchmark::Counter(6.0 * double(T) * K * D * FF * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void BM_moe_phases(benchmark::State& state) {
    using clock = std::chrono::steady_clock;
    const auto T = static_cast<std::size_t>(state.range(0));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    const auto w = the_layer().weights();
    t2f x(T, D), y(T, D);
    fill(x.data(), x.size(), 5, 1.0f);
    const moe::softmax_top_k router{.k = K};
    moe::moe_cache c;
    moe::moe_forward(y, c, x, w, router, {}, pool);  // sizes the cache
    llm::workspace ws;
    double t_router = 0, t_dispatch = 0, t_experts = 0, t_combine = 0;
    for (auto _ : state) {
        const auto t0 = clock::now();
        llm::gemm(moe::detail::rows_of(c.logits.data(), T, E, E), x, w.gate.transposed<0, 1>(), 1.0f, 0.0f, ws, pool);
        router.forward(c.routing_views(), c.logits_view(), pool);
        const auto t1 = clock::now();
        moe::plan_dispatch(c.plan, c.routing_views().experts, E);
        moe::detail::gather(c.xp.data(), x, c.plan, D, pool);
        const auto t2 = clock::now();
        for (std::size_t e = 0; e < E; ++e) {
            const std::size_t o = c.plan.offsets[e], n = c.plan.offsets[e + 1] - o;
            moe::detail::swiglu_forward(moe::detail::rows_of(c.yp.data() + o * D, n, D, D), c.gate.data() + o * FF,
                                        c.up.data() + o * FF, c.act.data() + o * FF,
                                        moe::detail::crows_of(c.xp.data() + o * D, n, D, D), moe::detail::slice(w.w1, e),
                                        moe::detail::slice(w.w3, e), moe::detail::slice(w.w2, e), 0.0f, ws, pool);
        }
        const auto t3 = clock::now();
        moe::detail::combine(y, c.yp.data(), c.plan, c.weights.data(), T, K, D, false, pool);
        const auto t4 = clock::now();
        benchmark::DoNotOptimize(y.data());
        t_router += std::chrono::duration<double>(t1 - t0).count();
        t_dispatch += std::chrono::duration<double>(t2 - t1).count();
        t_experts += std::chrono::duration<double>(t3 - t2).count();
        t_combine += std::chrono::duration<double>(t4 - t3).count();
    }
    const double total = t_router + t_dispatch + t_experts + t_combine;
    state.counters["router_%"] = 100.0 * t_router / total;
    state.counters["dispatch_%"] = 100.0 * t_dispatch / total;
    state.counters["combine_%"] = 100.0 * t_combine / total;
    state.counters["overhead_%"] = 100.0 * (t_router + t_dispatch + t_combine) / total;
    tokens_per_second(state, T);
}

/// A dense SwiGLU FFN with the MoE layer's active parameters (width K * FF), as three GEMMs.
/// Args: tokens, threads, copies: with copies = 1 the same 22 MB of weights serve every call
/// (they may stay in the last-level cache); with copies = 4 the calls turn over four layers'
/// weights (88 MB, the MoE layer's footprint), as the layers of a model do.
void BM_dense_ffn(benchmark::State& state) {
    const auto T = static_cast<std::size_t>(state.range(0));
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    const auto copies = static_cast<std::size_t>(state.range(2));
    const std::size_t F = K * FF;
    std::vector<t2f> w1, w3, w2;
    for (std::size_t i = 0; i < copies; ++i) {
        w1.emplace_back(F, D);
        w3.emplace_back(F, D);
        w2.emplace_back(D, F);
        fill(w1.back().data(), w1.back().size(), 6 + 3 * unsigned(i), 0.05f);
        fill(w3.back().data(), w3.back().size(), 7 + 3 * unsigned(i), 0.05f);
        fill(w2.back().data(), w2.back().size(), 8 + 3 * unsigned(i), 0.05f);
    }
    t2f x(T, D), y(T, D);
    fill(x.data(), x.size(), 5, 1.0f);
    std::vector<float> g(T * F), u(T * F), a(T * F);
    llm::workspace ws;
    const auto c = [](const t2f& m) { return llm::to_kernel_view<2>(m); };
    std::size_t i = 0;
    for (auto _ : state) {
        moe::detail::swiglu_forward(llm::to_kernel_view<2>(y), g.data(), u.data(), a.data(), c(x), c(w1[i]), c(w3[i]),
                                    c(w2[i]), 0.0f, ws, pool);
        i = (i + 1) % copies;
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    tokens_per_second(state, T);
    state.counters["GFLOP/s"] = benchmark::Counter(6.0 * double(T) * F * D * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

/// One token (decode): the layer reads its K selected experts' weights, 3 * D * FF floats each.
/// Counter GB/s: those bytes over the time; compare with BM_read_ceiling of the same run.
void BM_moe_decode(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const auto w = the_layer().weights();
    // 64 different tokens in turn, so successive calls select different experts and the 22 MB
    // read per call does not stay in the last-level cache from the call before.
    constexpr std::size_t rows = 64;
    t2f xs(rows, D), y(1, D);
    fill(xs.data(), xs.size(), 9, 1.0f);
    moe::moe_cache cache;
    llm::workspace ws;
    std::size_t i = 0;
    for (auto _ : state) {
        const auto x = llm::slice(xs, 0, i, i + 1);
        i = (i + 1) % rows;
        moe::moe_forward(y, cache, x, w, moe::softmax_top_k{.k = K}, {}, ws, pool);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    state.counters["GB/s"] = benchmark::Counter(double(K) * 3.0 * D * FF * sizeof(float) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

/// The read ceiling: summing all the experts' weights (w1, w3, w2: 88 MB, out of cache), split
/// over the threads as the decode's GEMVs are.
void BM_read_ceiling(benchmark::State& state) {
    llm::parallel::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const layer& l = the_layer();
    const std::size_t n = l.w1.size();
    auto sum = [&](const float* p) {
        llm::parallel::parallel_for(pool, n, 1 << 16, [&](std::size_t b, std::size_t e) {
            // The STREAM read kernel of benchmarks/ceilings.cpp on whole 64-float blocks.
            const std::size_t whole = (e - b) / llm_bench::block * llm_bench::block;
            float s = llm_bench::read_kernel(p + b, whole);
            for (std::size_t i = b + whole; i < e; ++i) {
                s += p[i];
            }
            benchmark::DoNotOptimize(s);
        });
    };
    for (auto _ : state) {
        sum(l.w1.data());
        sum(l.w3.data());
        sum(l.w2.data());
    }
    state.counters["GB/s"] =
        benchmark::Counter(3.0 * double(n) * sizeof(float) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void threads_tokens(benchmark::internal::Benchmark* b) {
    b->ArgNames({"tokens", "threads"});
    for (int t : {1, 2}) {
        b->Args({512, t});
    }
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void threads_only(benchmark::internal::Benchmark* b) {
    b->ArgNames({"threads"});
    b->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_moe_layer)->Apply(threads_tokens);
BENCHMARK(BM_moe_phases)->Apply(threads_tokens);
BENCHMARK(BM_dense_ffn)
    ->ArgNames({"tokens", "threads", "copies"})
    ->Args({512, 1, 1})
    ->Args({512, 2, 1})
    ->Args({512, 1, 4})
    ->Args({512, 2, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_moe_decode)->Apply(threads_only);
BENCHMARK(BM_read_ceiling)->Apply(threads_only);
