// SPDX-License-Identifier: Apache-2.0
// ggml's MUL_MAT_ID shapes (test-backend-ops perf -o MUL_MAT_ID): 128 experts, 8 used per token,
// each expert an [m = 768, k = 2048] matrix, n = 1 and n = 512 tokens, b = 0 (every (token,
// slot) pair has its own activation row), weights f32, Q4_0 and Q4_K; 2 threads as
// test-backend-ops uses (hardware_concurrency here).
//
// Ours is the MoE layer's path for one projection: plan_dispatch (counting sort of the pairs by
// expert), the rows gathered per expert, the experts' products (f32: llm::gemm per expert, as
// moe_forward; quantized: the pair rows quantized once by llm::quant::quantize_activations as
// ggml quantizes src1, the blocks gathered, moe::detail::grouped_gemm_prequantized), the
// outputs scattered back to pair order. Counters: GFLOP/s (2 m k n 8, ggml's op_flops); at
// n = 1 also GB/s of the 8 selected experts' weights and read_ceiling_GB/s, the STREAM read
// ceiling measured right after the benchmark's loop (benchmarks/support/stream.hpp, best of 5
// passes, 2 threads).
//
// Two n = 1 variants: `fixed` uses the same 8 experts every call, as ggml's test does (their
// weights, 7 MB quantized, can stay in the 16 MB L3); `rotating` steps through 64 tokens with
// different experts, so the weights come from memory, which is what the read-bandwidth
// fraction needs. benchmarks/peers/moe_mul_mat_id.py runs these and ggml alternately.
//
// `rotate:2` (packed only): rotating experts over copies of the whole expert set, 3x the L3 in
// all, for CPUs whose L3 holds the 128 experts (the read-share figure at n = 1 needs memory).
//
// `q4_0_packed` / `q8_0_packed` / `q4_K_packed`: the experts repacked (llm::quant::pack, 8
// interleaved rows) and multiplied by moe::detail::grouped_gemm_packed, the packed
// moe_forward_quantized's products.
#include <llm/core/workspace.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/moe/quantized.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tensor/tensor.hpp>

#include "../support/stream.hpp"

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <span>
#include <vector>

namespace {

namespace moe = llm::moe;
namespace q = llm::quant;

constexpr std::size_t E = 128, used = 8, M = 768, K = 2048;
constexpr std::size_t variants = 64;  // token rows the rotating n = 1 variant steps through

// Measured after each n = 1 benchmark's loop (best of 5 STREAM read passes), so the ceiling and
// the figure it is compared with see the same load on a shared machine.
double read_ceiling() { return llm_bench::stream_read_ceiling(2); }

// Random bytes with finite scales (as benchmarks/quant/matmul.cpp): values do not matter for speed.
template <class F>
const std::vector<typename F::block>& expert_blocks() {
    static const std::vector<typename F::block> blocks = [] {
        std::vector<typename F::block> b(E * M * (K / F::block_size));
        std::mt19937_64 rng(7);
        auto* bytes = reinterpret_cast<unsigned char*>(b.data());
        for (std::size_t i = 0; i + 8 <= b.size() * sizeof(typename F::block); i += 8) {
            const std::uint64_t r = rng();
            std::memcpy(bytes + i, &r, 8);
        }
        for (auto& blk : b) {
            blk.d = llm::f16(0.01f);
            if constexpr (requires { blk.dmin; }) blk.dmin = llm::f16(0.001f);
        }
        return b;
    }();
    return blocks;
}

const std::vector<float>& expert_floats() {
    static const std::vector<float> w = [] {
        std::vector<float> v(E * M * K);
        std::minstd_rand rng(5);
        for (float& x : v) x = static_cast<float>(rng()) * (2.0f / 2147483647.0f) - 1.0f;
        return v;
    }();
    return w;
}

// ids [rows, used]: each token's 8 distinct experts (a shuffled prefix, as ggml's test).
std::vector<std::int32_t> random_ids(std::size_t rows, unsigned seed) {
    std::vector<std::int32_t> ids(rows * used);
    std::vector<std::int32_t> perm(E);
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng(seed);
    for (std::size_t t = 0; t < rows; ++t) {
        std::shuffle(perm.begin(), perm.end(), rng);
        std::copy_n(perm.begin(), used, ids.begin() + static_cast<std::ptrdiff_t>(t * used));
    }
    return ids;
}

/// One MUL_MAT_ID: out[p] = W_{ids[p]} x[p] for the n * 8 pairs p. `product` runs the experts'
/// products over the grouped rows (xp -> yp).
struct mul_mat_id {
    std::size_t n;
    std::vector<float> x, xp, yp, out;
    moe::dispatch_plan plan;
    llm::workspace ws;
    explicit mul_mat_id(std::size_t tokens)
        : n(tokens), x(tokens * used * K), xp(tokens * used * K), yp(tokens * used * M), out(tokens * used * M) {
        std::minstd_rand rng(9);
        for (float& v : x) v = static_cast<float>(rng()) * (2.0f / 2147483647.0f) - 1.0f;
    }
    /// As run() for quantized experts: the n * 8 activation rows quantized once in pair order
    /// (llm::quant::quantize_activations, as ggml quantizes src1 once per MUL_MAT_ID), the blocks
    /// gathered per expert, the experts' products on the pre-quantized rows, outputs scattered.
    template <class F, class W>
    void run_quantized(const std::int32_t* ids, const W& w) {
        const llm::row_view<const std::int32_t, 2> iv(ids, llm::dims<2>(n, used), llm::unit_last_stride<2>(used));
        moe::plan_dispatch(plan, iv, E);
        auto& pool = llm_bench::pool_of(2);
        const std::size_t P = n * used;
        // This thread's buffers, reached by reference from the pool's workers.
        thread_local q::quantized_activations<F> qx_own, qxp_own;
        q::quantized_activations<F>& qx = qx_own;
        q::quantized_activations<F>& qxp = qxp_own;
        q::quantize_activations(qx, llm::row_view<const float, 2>(x.data(), llm::dims<2>(P, K), llm::unit_last_stride<2>(K)),
                                pool);
        qxp.resize(P, K);
        const std::size_t row_bytes = qx.blocks_per_row() * sizeof(typename q::quantized_activations<F>::block_type);
        llm::parallel::parallel_for(pool, P, 64, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                std::memcpy(qxp.row(static_cast<std::size_t>(plan.pos[p])), qx.row(p), row_bytes);
            }
        });
        float* const outs[1] = {yp.data()};
        const W* const mats[1] = {&w};
        moe::detail::grouped_gemm_prequantized(outs, mats, 1, qxp, plan.offsets.data(), E, M, {}, pool);
        llm::parallel::parallel_for(pool, P, 64, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                std::memcpy(out.data() + p * M, yp.data() + static_cast<std::size_t>(plan.pos[p]) * M, M * sizeof(float));
            }
        });
    }
    /// As run_quantized with packed experts (llm::quant::packed_view per expert, Q8_0 activation
    /// blocks, Q8_K for Q4_K): moe::detail::grouped_gemm_packed, as the packed
    /// moe_forward_quantized runs them.
    template <class F>
    void run_packed(const std::int32_t* ids, std::span<const q::packed_view<F>> w) {
        const llm::row_view<const std::int32_t, 2> iv(ids, llm::dims<2>(n, used), llm::unit_last_stride<2>(used));
        moe::plan_dispatch(plan, iv, E);
        auto& pool = llm_bench::pool_of(2);
        const std::size_t P = n * used;
        thread_local q::quantized_activations<F> qx_own, qxp_own;  // Q8_0 blocks, Q8_K for K formats
        q::quantized_activations<F>& qx = qx_own;
        q::quantized_activations<F>& qxp = qxp_own;
        q::quantize_activations(qx, llm::row_view<const float, 2>(x.data(), llm::dims<2>(P, K), llm::unit_last_stride<2>(K)),
                                pool);
        qxp.resize(P, K);
        const std::size_t row_bytes = qx.blocks_per_row() * sizeof(typename q::quantized_activations<F>::block_type);
        llm::parallel::parallel_for(pool, P, 64, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                std::memcpy(qxp.row(static_cast<std::size_t>(plan.pos[p])), qx.row(p), row_bytes);
            }
        });
        float* const outs[1] = {yp.data()};
        const std::span<const q::packed_view<F>> mats[1] = {w};
        moe::detail::grouped_gemm_packed(outs, mats, 1, qxp, plan.offsets.data(), E, M, {}, pool);
        llm::parallel::parallel_for(pool, P, 64, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                std::memcpy(out.data() + p * M, yp.data() + static_cast<std::size_t>(plan.pos[p]) * M, M * sizeof(float));
            }
        });
    }
    template <class Product>
    void run(const std::int32_t* ids, Product&& product) {
        const llm::row_view<const std::int32_t, 2> iv(ids, llm::dims<2>(n, used), llm::unit_last_stride<2>(used));
        moe::plan_dispatch(plan, iv, E);
        auto& pool = llm_bench::pool_of(2);
        const std::size_t P = n * used;
        llm::parallel::parallel_for(pool, P, 64, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                std::memcpy(xp.data() + static_cast<std::size_t>(plan.pos[p]) * K, x.data() + p * K, K * sizeof(float));
            }
        });
        product(pool);
        llm::parallel::parallel_for(pool, P, 64, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                std::memcpy(out.data() + p * M, yp.data() + static_cast<std::size_t>(plan.pos[p]) * M, M * sizeof(float));
            }
        });
    }
};

void counters(benchmark::State& state, std::size_t n, double weight_bytes_per_value) {
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * M * K * double(n) * used * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    if (n == 1) {
        state.counters["GB/s"] = benchmark::Counter(double(used) * M * K * weight_bytes_per_value * 1e-9,
                                                    benchmark::Counter::kIsIterationInvariantRate);
        state.counters["read_ceiling_GB/s"] = read_ceiling();
    }
}

/// Args: n (tokens), rotate (n = 1: step through 64 tokens' experts).
template <class F>
void BM_mul_mat_id_quant(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const bool rotate = state.range(1) != 0;
    const auto& blocks = expert_blocks<F>();
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), E * M, K);
    mul_mat_id mm(n);
    const auto ids = random_ids(rotate ? variants : n, 11);
    std::size_t i = 0;
    for (auto _ : state) {
        mm.run_quantized<F>(ids.data() + (rotate ? i * used : 0), w);
        i = (i + 1) % variants;
        benchmark::DoNotOptimize(mm.out.data());
        benchmark::ClobberMemory();
    }
    counters(state, n, double(sizeof(typename F::block)) / double(F::block_size));
}

/// How many copies of the whole expert set (set_bytes) the cold variant cycles through: together
/// at least 3x the L3, so each call's 8 experts come from memory even where the L3 holds all
/// 128 experts (260 MiB here: 113 MB of Q4_K experts stay in it under `rotate` alone).
std::size_t cold_copies(std::size_t set_bytes) {
    const long l3 = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
    const std::size_t want = 3 * static_cast<std::size_t>(std::max(l3, 0L));
    return std::max<std::size_t>(1, (want + set_bytes - 1) / set_bytes);
}

/// Packed experts (llm::quant::pack of each expert's [M, K] rows): the same bytes per weight.
/// rotate = 2 (cold): as rotate = 1, each call on the next of cold_copies() copies of the experts.
template <class F>
void BM_mul_mat_id_packed(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const bool rotate = state.range(1) != 0;
    const bool cold = state.range(1) == 2;
    const std::size_t expert_blocks_n = M * (K / F::block_size);
    const std::size_t copies = cold ? cold_copies(E * expert_blocks_n * sizeof(typename F::block)) : 1;
    static std::vector<q::packed_matrix<F>> packed;  // copy c's experts at [c E, (c + 1) E)
    const auto& blocks = expert_blocks<F>();
    while (packed.size() < copies * E) {
        const std::size_t e = packed.size() % E;
        const auto expert = std::span<const typename F::block>(blocks).subspan(e * expert_blocks_n, expert_blocks_n);
        packed.push_back(q::pack<F>(expert, M, K));
    }
    std::vector<q::packed_view<F>> views;
    for (const auto& m : packed) views.push_back(m.view());
    const std::span<const q::packed_view<F>> all(views);
    mul_mat_id mm(n);
    const auto ids = random_ids(rotate ? variants : n, 11);
    std::size_t i = 0, c = 0;
    for (auto _ : state) {
        mm.run_packed<F>(ids.data() + (rotate ? i * used : 0), all.subspan(c * E, E));
        i = (i + 1) % variants;
        c = (c + 1) % copies;
        benchmark::DoNotOptimize(mm.out.data());
        benchmark::ClobberMemory();
    }
    counters(state, n, double(sizeof(typename F::block)) / double(F::block_size));
}

/// f32 experts: llm::gemm per expert over its rows, as moe_forward's experts.
void BM_mul_mat_id_f32(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const bool rotate = state.range(1) != 0;
    const auto& w = expert_floats();
    mul_mat_id mm(n);
    const auto ids = random_ids(rotate ? variants : n, 11);
    std::size_t i = 0;
    for (auto _ : state) {
        mm.run(ids.data() + (rotate ? i * used : 0), [&](auto& pool) {
            for (std::size_t e = 0; e < E; ++e) {
                const std::size_t o = mm.plan.offsets[e], rows = mm.plan.offsets[e + 1] - o;
                if (rows == 0) continue;
                llm::gemm(moe::detail::rows_of(mm.yp.data() + o * M, rows, M, M),
                          moe::detail::crows_of(mm.xp.data() + o * K, rows, K, K),
                          moe::detail::crows_of(w.data() + e * M * K, M, K, K).transposed<0, 1>(), 1.0f, 0.0f, mm.ws,
                          pool);
            }
        });
        i = (i + 1) % variants;
        benchmark::DoNotOptimize(mm.out.data());
        benchmark::ClobberMemory();
    }
    counters(state, n, 4.0);
}

void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"n", "rotate"})->Args({1, 0})->Args({1, 1})->Args({512, 0})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void packed_shapes(benchmark::internal::Benchmark* b) { shapes(b->Args({1, 2})); }

}  // namespace

BENCHMARK(BM_mul_mat_id_f32)->Name("mul_mat_id/f32")->Apply(shapes);
BENCHMARK(BM_mul_mat_id_quant<q::q4_0>)->Name("mul_mat_id/q4_0")->Apply(shapes);
BENCHMARK(BM_mul_mat_id_quant<q::q4_k>)->Name("mul_mat_id/q4_K")->Apply(shapes);
BENCHMARK(BM_mul_mat_id_quant<q::q8_0>)->Name("mul_mat_id/q8_0")->Apply(shapes);
BENCHMARK(BM_mul_mat_id_packed<q::q4_0>)->Name("mul_mat_id/q4_0_packed")->Apply(packed_shapes);
BENCHMARK(BM_mul_mat_id_packed<q::q8_0>)->Name("mul_mat_id/q8_0_packed")->Apply(packed_shapes);
BENCHMARK(BM_mul_mat_id_packed<q::q4_k>)->Name("mul_mat_id/q4_K_packed")->Apply(packed_shapes);
