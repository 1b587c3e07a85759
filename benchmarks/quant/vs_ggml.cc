// SPDX-License-Identifier: Apache-2.0
// llm::quant::gemv / gemm against ggml's CPU MUL_MAT (the op `test-backend-ops perf -o MUL_MAT` times: ggml_mul_mat of
// a quantized [k, m] weight by f32 [k, n] activations, the llamafile / vec_dot paths ggml picks), alternating ours and
// ggml's in one process on the same weight bytes, so both see the same machine load. Built by hand against a ggml
// build (never part of the CMake build, ggml is not a dependency; the .cc suffix keeps it out of bench_quant,
// whose sources are benchmarks/quant/*.cpp):
//
//   g++ -O3 -march=native -fopenmp -std=c++20 -Iinclude -I$GGML/include benchmarks/quant/vs_ggml.cc
//       -L$GGML/build/src -lggml -lggml-base -lggml-cpu -Wl,-rpath,$GGML/build/src -o /tmp/vs_ggml
//   /tmp/vs_ggml [threads=1] [rounds=3] [k=14336] [n_gemm=512]
//
// Prints per type and shape the best of `rounds` alternations: wall ms and CPU ms (process CPU time, every thread)
// for each, and ours / ggml as speed ratios (ggml time / our time). On a shared machine the CPU-time ratio is the
// steadier one; with threads = 1 the two agree when the machine is quiet. For the GEMV (n = 1) each round also
// runs a STREAM read pass (benchmarks/support/stream.hpp, the read ceiling of bench_ceilings) on the same
// threads: the line reports our weight bytes per second against the best read pass of the run. k = 14336 and
// m = 4096 give weights larger than a 16 MiB L3 (Q4_0: 33 MB); pass a larger k where the L3 is larger.
// The packable formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) also run llm::quant::pack's 8-row interleaved weights (packed.hpp) in the same alternation: a
// second line per shape, "packed", with its ratios to ggml and to our unpacked path. ggml runs its plain
// vec_dot / llamafile path here (tensors in a plain context; its CPU repack applies only to weights in its
// extra buffer type, as llama-bench loads them).
#include <llm/core/cpu_info.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/packed.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tensor/tensor.hpp>

#include "../support/stream.hpp"

#include <ggml-cpu.h>
#include <ggml.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <span>
#include <vector>

namespace {

namespace q = llm::quant;

struct times {
    double wall = 1e30, cpu = 1e30;
};

double cpu_now() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

template <class Fn>
void time_once(times& best, Fn&& fn) {
    const double c0 = cpu_now();
    const auto w0 = std::chrono::steady_clock::now();
    fn();
    const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count();
    best.wall = std::min(best.wall, wall);
    best.cpu = std::min(best.cpu, cpu_now() - c0);
}

template <class F>
void compare(ggml_type gt, std::size_t m, std::size_t n, std::size_t k, int threads, int rounds) {
    const std::size_t nb = k / F::block_size;
    std::vector<typename F::block> blocks(m * nb);
    std::mt19937_64 rng(7);
    auto* bytes = reinterpret_cast<unsigned char*>(blocks.data());
    for (std::size_t i = 0; i + 8 <= blocks.size() * sizeof(typename F::block); i += 8) {
        const std::uint64_t r = rng();
        std::memcpy(bytes + i, &r, 8);
    }
    for (auto& b : blocks) {
        b.d = llm::f16(0.01f);
        if constexpr (requires { b.m; }) b.m = llm::f16(-0.05f);
        if constexpr (requires { b.dmin; }) b.dmin = llm::f16(0.001f);
    }
    std::vector<float> xs(n * k);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::mt19937 rf(3);
    for (float& v : xs) v = normal(rf);
    std::vector<float> ys(n * m);

    // ggml: a [k, m] weight tensor holding the same bytes, b [k, n], c = mul_mat(a, b) [m, n].
    ggml_init_params params{blocks.size() * sizeof(typename F::block) + (n * k + n * m) * sizeof(float) + (64u << 20),
                            nullptr, false};
    ggml_context* ctx = ggml_init(params);
    ggml_tensor* a = ggml_new_tensor_2d(ctx, gt, static_cast<int64_t>(k), static_cast<int64_t>(m));
    ggml_tensor* b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, static_cast<int64_t>(k), static_cast<int64_t>(n));
    std::memcpy(a->data, blocks.data(), ggml_nbytes(a));
    std::memcpy(b->data, xs.data(), ggml_nbytes(b));
    ggml_tensor* c = ggml_mul_mat(ctx, a, b);
    ggml_cgraph* gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, c);

    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), m, k);
    llm::tensor_view<const float, llm::dims<2>> x(xs.data(), n, k);
    llm::tensor_view<float, llm::dims<2>> y(ys.data(), n, m);
    llm::parallel::thread_pool pool(static_cast<std::size_t>(threads));
    llm::workspace ws;
    auto ours = [&] {
        if (n == 1) {
            q::gemv(llm::tensor_view<float, llm::dims<1>>(ys.data(), m), llm::tensor_view<const float, llm::dims<1>>(xs.data(), k), w,
                    {}, ws, pool);
        } else {
            q::gemm(y, x, w, {}, ws, pool);
        }
    };
    auto theirs = [&] { ggml_graph_compute_with_ctx(ctx, gf, threads); };
    constexpr bool packable = q::packable_format<F>;
    std::vector<float> yp(n * m);
    auto packed = [&] {
        if constexpr (packable) {
            static q::packed_matrix<F> wp;
            if (wp.rows() != m || wp.cols() != k) wp = q::pack(w);
            if (n == 1) {
                q::gemv(llm::tensor_view<float, llm::dims<1>>(yp.data(), m),
                        llm::tensor_view<const float, llm::dims<1>>(xs.data(), k), wp, {}, ws, pool);
            } else {
                q::gemm(llm::tensor_view<float, llm::dims<2>>(yp.data(), n, m), x, wp, {}, ws, pool);
            }
        }
    };
    ours();
    theirs();
    packed();
    // Same results (ggml's Q8 activation path differs in rounding only where its own kernels round differently).
    double err = 0.0, ref = 0.0;
    for (std::size_t i = 0; i < n * m; ++i) {
        const double d = static_cast<double>(ys[i]) - static_cast<double>(static_cast<float*>(c->data)[i]);
        err = std::max(err, std::abs(d));
        ref = std::max(ref, std::abs(static_cast<double>(ys[i])));
    }
    double perr = 0.0;
    if (packable) {
        for (std::size_t i = 0; i < n * m; ++i) {
            perr = std::max(perr, std::abs(static_cast<double>(yp[i]) - static_cast<double>(static_cast<float*>(c->data)[i])));
        }
    }
    times to, tg, tp;
    double read_gbs = 0.0, read_cpu_ms = 1e30;  // the read pass: best wall GB/s, best CPU time
    for (int r = 0; r < rounds; ++r) {
        time_once(to, ours);
        time_once(tg, theirs);
        if (packable) time_once(tp, packed);
        if (n == 1) {
            const double c0 = cpu_now();
            read_gbs = std::max(read_gbs, llm_bench::stream_read_pass(static_cast<std::size_t>(threads)));
            read_cpu_ms = std::min(read_cpu_ms, cpu_now() - c0);
        }
    }
    const double flop = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    std::printf("%-5s m=%zu n=%zu k=%zu threads=%d | ours %8.1f ms wall %8.1f ms cpu (%6.1f GFLOP/s cpu-time) | ggml %8.1f ms wall "
                "%8.1f ms cpu (%6.1f) | ratio wall %.2fx cpu %.2fx | max |diff| %.3g of max |y| %.3g\n",
                F::name.data(), m, n, k, threads, to.wall, to.cpu, flop / to.cpu * 1e-6 * threads, tg.wall, tg.cpu,
                flop / tg.cpu * 1e-6 * threads, tg.wall / to.wall, tg.cpu / to.cpu, err, ref);
    if (n == 1) {
        const double gbs = static_cast<double>(blocks.size() * sizeof(typename F::block)) / to.wall * 1e-6;
        std::printf("%-5s GEMV weights %.1f MB: ours %.2f GB/s, read ceiling %.2f GB/s this run: %.0f%% (L3 %zu MiB)\n",
                    F::name.data(), static_cast<double>(blocks.size() * sizeof(typename F::block)) * 1e-6, gbs, read_gbs,
                    100.0 * gbs / read_gbs, llm::cpu_cache_sizes().l3 >> 20);
    }
    if (packable) {
        std::printf("%-5s packed m=%zu n=%zu k=%zu threads=%d | packed %8.1f ms wall %8.1f ms cpu (%6.1f GFLOP/s cpu-time) | "
                    "vs ggml: wall %.2fx cpu %.2fx | vs unpacked: wall %.2fx cpu %.2fx | max |diff| to ggml %.3g\n",
                    F::name.data(), m, n, k, threads, tp.wall, tp.cpu, flop / tp.cpu * 1e-6 * threads, tg.wall / tp.wall,
                    tg.cpu / tp.cpu, to.wall / tp.wall, to.cpu / tp.cpu, perr);
        if (n == 1) {
            const double gbs = static_cast<double>(blocks.size() * sizeof(typename F::block)) / tp.wall * 1e-6;
            // In CPU time as well (a loaded machine stretches wall time): weight bytes per CPU second of
            // ours (unpacked, packed) against the read pass's bytes per CPU second.
            const double wb = static_cast<double>(blocks.size() * sizeof(typename F::block));
            const double read_cpu = static_cast<double>(llm_bench::arrays().n * sizeof(float)) / read_cpu_ms * 1e-6;
            std::printf("%-5s packed GEMV: %.2f GB/s, read ceiling %.2f GB/s this run: %.0f%%; CPU time: unpacked %.2f, packed "
                        "%.2f, read %.2f GB/s: unpacked %.0f%%, packed %.0f%% of the read ceiling\n",
                        F::name.data(), gbs, read_gbs, 100.0 * gbs / read_gbs, wb / to.cpu * 1e-6, wb / tp.cpu * 1e-6, read_cpu,
                        100.0 * wb / to.cpu * 1e-6 / read_cpu, 100.0 * wb / tp.cpu * 1e-6 / read_cpu);
        }
    }
    std::fflush(stdout);
    ggml_free(ctx);
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    const std::size_t k = argc > 3 ? static_cast<std::size_t>(std::atol(argv[3])) : 14336;
    const std::size_t ng = argc > 4 ? static_cast<std::size_t>(std::atol(argv[4])) : 512;
    const char* only = std::getenv("VS_GGML_TYPES");  // e.g. "q4_0,q6_K"
    auto want = [&](const char* t) { return only == nullptr || std::strstr(only, t) != nullptr; };
    ggml_cpu_init();
    const std::size_t m = 4096;
    for (std::size_t n : {std::size_t{1}, ng}) {
        if (n == 0) continue;
        if (want("q4_0")) compare<q::q4_0>(GGML_TYPE_Q4_0, m, n, k, threads, rounds);
        if (want("q8_0")) compare<q::q8_0>(GGML_TYPE_Q8_0, m, n, k, threads, rounds);
        if (want("q4_K")) compare<q::q4_k>(GGML_TYPE_Q4_K, m, n, k, threads, rounds);
        if (want("q6_K")) compare<q::q6_k>(GGML_TYPE_Q6_K, m, n, k, threads, rounds);
        if (want("q4_1")) compare<q::q4_1>(GGML_TYPE_Q4_1, m, n, k, threads, rounds);
        if (want("q5_0")) compare<q::q5_0>(GGML_TYPE_Q5_0, m, n, k, threads, rounds);
        if (want("q5_1")) compare<q::q5_1>(GGML_TYPE_Q5_1, m, n, k, threads, rounds);
        if (want("q2_K")) compare<q::q2_k>(GGML_TYPE_Q2_K, m, n, k, threads, rounds);
        if (want("q3_K")) compare<q::q3_k>(GGML_TYPE_Q3_K, m, n, k, threads, rounds);
        if (want("q5_K")) compare<q::q5_k>(GGML_TYPE_Q5_K, m, n, k, threads, rounds);
    }
    return 0;
}
