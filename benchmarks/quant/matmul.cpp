// SPDX-License-Identifier: Apache-2.0
// llm::quant::gemv (decode) and gemm (prefill, n = 512) against block-quantized weights: GEMV in GB/s of weights
// read beside the STREAM read bandwidth measured in this run, GEMM in GFLOP/s; ggml's test-backend-ops shapes
// (m = 4096 outputs, k = 14336).
//
//   bench_quant --benchmark_filter='quant_(gemv|gemm)' --benchmark_min_time=2
//
// The GEMV's weights are sized from the L3 this machine reports (llm::cpu_cache_sizes): at least
// 4096 rows and at least 4 times the L3 (STREAM's rule), so every call streams them from memory,
// as a decode step does. (1.25 times was too little where the L3 is not LRU: on a Zen 5 with a
// 32 MiB L3, 41 MiB of weights read at 1.7-2x the read ceiling on 2 threads, L3 hits.) One buffer
// serves every format in turn, so the formats' weights are never all resident at once.
// ggml reports MUL_MAT m=4096 n=1 k=14336: the same shape wherever 4096 rows exceed 4 L3s.
// LLM_BENCH_QUANT_K overrides k (e.g. 4096 for a quick run).
// quant_gemv_packed / quant_gemm_packed run the same shapes on llm::quant::pack's 8-row interleaved
// Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K weights (packed.hpp; the same number of bytes). quant_gemv/f16 and
// /bf16: linear_forward's one-row dot kernel over 16-bit weights (decode of f16 / bf16 files).
#include <llm/core/cpu_info.hpp>
#include <llm/core/workspace.hpp>
#include <llm/quant/any_matrix.hpp>
#include <llm/quant/channel.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/packed.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tensor/tensor.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../support/stream.hpp"

namespace {

namespace q = llm::quant;

std::size_t k_dim() {
    if (const char* text = std::getenv("LLM_BENCH_QUANT_K"); text != nullptr && *text != '\0') {
        return std::max<std::size_t>(256, static_cast<std::size_t>(std::strtol(text, nullptr, 10)) / 256 * 256);
    }
    return 14336;
}

constexpr std::size_t gemm_rows = 4096;  // m in ggml's naming: the outputs
constexpr std::size_t gemm_n = 512;      // activation rows (prompt tokens)

// GEMV weight rows: 4096, or more so that the weights are at least 4 times the reported L3.
std::size_t gemv_rows(std::size_t row_bytes) {
    const std::size_t l3 = llm::cpu_cache_sizes().l3;
    const std::size_t need = (4 * l3 + row_bytes - 1) / row_bytes;
    return std::max<std::size_t>(gemm_rows, (need + 255) / 256 * 256);
}

// The one weight buffer (8-byte words) and what it holds now.
struct weight_buffer {
    std::vector<std::uint64_t> words;
    const void* tag = nullptr;
    std::size_t count = 0;
};

// The shared buffer as `count` values of type T, made by make(span) unless it already holds
// what `tag` names in that count.
template <class T, class Make>
std::span<T> shared_weights(std::size_t count, const void* tag, Make&& make) {
    static_assert(alignof(T) <= alignof(std::uint64_t));
    static weight_buffer buffer;
    if (buffer.tag != tag || buffer.count != count) {
        buffer.words.assign((count * sizeof(T) + 7) / 8, 0);
        make(std::span<T>(reinterpret_cast<T*>(buffer.words.data()), count));
        buffer.tag = tag;
        buffer.count = count;
    }
    return {reinterpret_cast<T*>(buffer.words.data()), count};
}

// Random bytes with finite scales: the values do not matter for speed, and random blocks are
// made in milliseconds where the reference quantizers of the K formats take seconds.
template <class F>
std::span<const typename F::block> random_blocks(std::size_t count) {
    static const char tag = 0;
    return shared_weights<typename F::block>(count, &tag, [](std::span<typename F::block> blocks) {
        std::mt19937_64 rng(7);
        auto* bytes = reinterpret_cast<unsigned char*>(blocks.data());
        for (std::size_t i = 0; i + 8 <= blocks.size_bytes(); i += 8) {
            const std::uint64_t r = rng();
            std::memcpy(bytes + i, &r, 8);
        }
        for (auto& b : blocks) {
            b.d = llm::f16(0.01f);
            if constexpr (requires { b.m; }) b.m = llm::f16(-0.05f);
            if constexpr (requires { b.dmin; }) b.dmin = llm::f16(0.001f);
        }
    });
}

std::vector<float> random_floats(std::size_t n) {
    std::vector<float> v(n);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& x : v) x = normal(rng);
    return v;
}

// The read-bandwidth ceiling of this run (STREAM read, benchmarks/support/stream.hpp), measured
// once per thread count, best of 5 passes.
double read_ceiling(std::size_t threads) {
    static double ceiling[3] = {0.0, 0.0, 0.0};
    if (ceiling[threads] == 0.0) ceiling[threads] = llm_bench::stream_read_ceiling(threads);
    return ceiling[threads];
}

template <class F>
void quant_gemv(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    const std::size_t k = k_dim(), nb = k / F::block_size;
    const std::size_t rows = gemv_rows(nb * sizeof(typename F::block));
    const auto blocks = random_blocks<F>(rows * nb);
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), rows, k);
    const auto xs = random_floats(k);
    std::vector<float> ys(rows);
    llm::tensor_view<const float, llm::dims<1>> x(xs.data(), k);
    llm::tensor_view<float, llm::dims<1>> y(ys.data(), rows);
    auto& pool = llm_bench::pool_of(threads);
    const double ceiling = read_ceiling(threads);
    llm::workspace ws;
    q::gemv(y, x, w, {}, ws, pool);
    for (auto _ : state) {
        q::gemv(y, x, w, {}, ws, pool);
        benchmark::DoNotOptimize(ys.data());
        benchmark::ClobberMemory();
    }
    const double bytes = static_cast<double>(blocks.size() * sizeof(typename F::block));
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * static_cast<double>(rows * k) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["read_ceiling_GB/s"] = ceiling;
    state.SetLabel(std::string(F::name) + " " + std::string(q::isa_name(q::best_isa())) + " m=" + std::to_string(rows) +
                   " k=" + std::to_string(k) + " weights " + std::to_string(blocks.size() * sizeof(typename F::block) >> 20) +
                   " MiB, L3 " + std::to_string(llm::cpu_cache_sizes().l3 >> 20) + " MiB");
}

// Times product(y, x, ws, pool), y [tokens, rows] = x [tokens, k] W^T on random activations,
// after one warm-up call; the GFLOP/s counter.
template <class Product>
void time_product(benchmark::State& state, std::size_t threads, std::size_t tokens, std::size_t k, std::size_t rows,
                  Product&& product) {
    const auto xs = random_floats(tokens * k);
    std::vector<float> ys(tokens * rows);
    llm::tensor_view<const float, llm::dims<2>> x(xs.data(), tokens, k);
    llm::tensor_view<float, llm::dims<2>> y(ys.data(), tokens, rows);
    auto& pool = llm_bench::pool_of(threads);
    llm::workspace ws;
    product(y, x, ws, pool);
    for (auto _ : state) {
        product(y, x, ws, pool);
        benchmark::DoNotOptimize(ys.data());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(rows * k * tokens) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

template <class F>
void quant_gemm(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    const std::size_t k = k_dim(), nb = k / F::block_size, rows = gemm_rows, n = gemm_n;
    const auto blocks = random_blocks<F>(rows * nb);
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), rows, k);
    time_product(state, threads, n, k, rows, [&](auto y, auto x, llm::workspace& ws, auto& pool) { q::gemm(y, x, w, {}, ws, pool); });
    state.SetLabel(std::string(F::name) + " " + std::string(q::isa_name(q::best_isa())) + " m=" + std::to_string(rows) +
                   " n=" + std::to_string(n) + " k=" + std::to_string(k));
}

template <class F>
void quant_gemv_packed(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    const std::size_t k = k_dim(), nb = k / F::block_size;
    const std::size_t rows = gemv_rows(nb * sizeof(typename F::block));
    const auto blocks = random_blocks<F>(rows * nb);
    const auto wp = q::pack<F>(std::span<const typename F::block>(blocks), rows, k);
    const auto xs = random_floats(k);
    std::vector<float> ys(rows);
    llm::tensor_view<const float, llm::dims<1>> x(xs.data(), k);
    llm::tensor_view<float, llm::dims<1>> y(ys.data(), rows);
    auto& pool = llm_bench::pool_of(threads);
    const double ceiling = read_ceiling(threads);
    llm::workspace ws;
    q::gemv(y, x, wp, {}, ws, pool);
    for (auto _ : state) {
        q::gemv(y, x, wp, {}, ws, pool);
        benchmark::DoNotOptimize(ys.data());
        benchmark::ClobberMemory();
    }
    const double bytes = static_cast<double>(wp.bytes());
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * static_cast<double>(rows * k) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["read_ceiling_GB/s"] = ceiling;
    state.SetLabel(std::string(F::name) + " packed " + std::string(q::isa_name(q::best_isa())) + " m=" + std::to_string(rows) +
                   " k=" + std::to_string(k) + " weights " + std::to_string(wp.bytes() >> 20) + " MiB, L3 " +
                   std::to_string(llm::cpu_cache_sizes().l3 >> 20) + " MiB");
}

// Narrow: on the best 256-bit path (avx_vnni, else avx2) instead of the best path, for the ratio of
// the AVX-512 prefill tiles (16 rows per vector) to the 8-row ones in one run.
template <class F, bool Narrow = false>
void quant_gemm_packed(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    const q::kernel_isa path = !Narrow ? q::best_isa()
                               : q::isa_available(q::kernel_isa::avx_vnni) ? q::kernel_isa::avx_vnni
                                                                           : q::kernel_isa::avx2;
    if (!q::isa_available(path)) {
        state.SkipWithError("no 256-bit integer path on this CPU");
        return;
    }
    const std::size_t k = k_dim(), nb = k / F::block_size, rows = gemm_rows, n = gemm_n;
    const auto blocks = random_blocks<F>(rows * nb);
    const auto wp = q::pack<F>(std::span<const typename F::block>(blocks), rows, k);
    time_product(state, threads, n, k, rows,
                 [&](auto y, auto x, llm::workspace& ws, auto& pool) { q::gemm(y, x, wp, {.path = path}, ws, pool); });
    state.SetLabel(std::string(F::name) + " packed " + std::string(q::isa_name(path)) + " m=" + std::to_string(rows) +
                   " n=" + std::to_string(n) + " k=" + std::to_string(k));
}

// Decode's f16 / bf16 GEMV: llm::quant::linear_forward of one activation row over an
// any_matrix of 16-bit weights (the f16 / bf16 GGUF files' matrices), sized as quant_gemv's;
// Panels: laid out once in 64-row panels (llm::quant::pack_bf16_panels / pack_f16_panels: the
// engine's layout where bf16_panels_pay / f16_panels_pay).
template <llm::io::ggml_type T, bool Panels = false>
void half_gemv(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    const std::size_t k = k_dim(), rows = gemv_rows(2 * k);
    static const char tag = 0;
    const auto bits = shared_weights<std::uint16_t>(rows * k, &tag, [](std::span<std::uint16_t> values) {
        const auto xs = random_floats(4096);
        for (std::size_t i = 0; i < values.size(); ++i) {
            const float v = 0.02f * xs[i % 4093];
            values[i] = T == llm::io::ggml_type::f16 ? llm::f16(v).bits() : llm::bf16(v).bits();
        }
    });
    q::any_matrix w(T, std::as_bytes(std::span<const std::uint16_t>(bits)), rows, k);
    static llm::aligned_buffer<std::byte> panels;
    if constexpr (Panels) {
        w = T == llm::io::ggml_type::f16 ? q::pack_f16_panels(w, panels) : q::pack_bf16_panels(w, panels);
    }
    const auto xs = random_floats(k);
    std::vector<float> ys(rows);
    llm::tensor_view<const float, llm::dims<2>> x(xs.data(), 1, k);
    llm::tensor_view<float, llm::dims<2>> y(ys.data(), 1, rows);
    auto& pool = llm_bench::pool_of(threads);
    const double ceiling = read_ceiling(threads);
    llm::workspace ws;
    q::linear_forward(y, x, w, ws, pool);
    for (auto _ : state) {
        q::linear_forward(y, x, w, ws, pool);
        benchmark::DoNotOptimize(ys.data());
        benchmark::ClobberMemory();
    }
    const double bytes = static_cast<double>(bits.size() * 2);
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["read_ceiling_GB/s"] = ceiling;
    state.SetLabel(std::string(T == llm::io::ggml_type::f16 ? "f16" : "bf16") + (Panels ? " panels" : "") + " m=" + std::to_string(rows) + " k=" +
                   std::to_string(k) + " weights " + std::to_string(bits.size() * 2 >> 20) + " MiB, L3 " +
                   std::to_string(llm::cpu_cache_sizes().l3 >> 20) + " MiB");
}

// Prefill's f16 / bf16 GEMM: llm::quant::linear_forward of `tokens` activation rows over an
// any_matrix of 16-bit weights (llm::blas::own widens them as it packs), and of fp32 weights
// (nn::linear_forward, the same GEMM reading fp32) for the ratio in one run; quant_gemm's m and
// k. 128 tokens: one A block, B packed a pair of panels at a time; 512: the whole B block first.
// Panels: laid out once in 64-row panels (llm::quant::pack_bf16_panels: B read where it lies;
// pack_f16_panels: B widened with contiguous reads).
template <llm::io::ggml_type T, bool Panels = false>
void dense_gemm(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    const std::size_t tokens = static_cast<std::size_t>(state.range(1));
    const std::size_t k = k_dim(), rows = gemm_rows;
    constexpr std::size_t bytes_per = T == llm::io::ggml_type::f32 ? 4 : 2;
    static std::vector<std::byte> bytes;
    if (bytes.size() != rows * k * bytes_per) {
        bytes.resize(rows * k * bytes_per);
        const auto xs = random_floats(4096);
        for (std::size_t i = 0; i < rows * k; ++i) {
            const float v = 0.02f * xs[i % 4093];
            if constexpr (T == llm::io::ggml_type::f32) {
                std::memcpy(bytes.data() + 4 * i, &v, 4);
            } else {
                const std::uint16_t b = T == llm::io::ggml_type::f16 ? llm::f16(v).bits() : llm::bf16(v).bits();
                std::memcpy(bytes.data() + 2 * i, &b, 2);
            }
        }
    }
    q::any_matrix w(T, bytes, rows, k);
    static llm::aligned_buffer<std::byte> panels;
    if constexpr (Panels) {
        w = T == llm::io::ggml_type::f16 ? q::pack_f16_panels(w, panels) : q::pack_bf16_panels(w, panels);
    }
    time_product(state, threads, tokens, k, rows,
                 [&](auto y, auto x, llm::workspace& ws, auto& pool) { q::linear_forward(y, x, w, ws, pool); });
    state.SetLabel(std::string(llm::io::ggml_type_name(T)) + (Panels ? " panels" : "") + " m=" + std::to_string(rows) + " n=" + std::to_string(tokens) + " k=" +
                   std::to_string(k));
}

/// W8A8 prefill (int8 weights per channel, per-token int8 activations), one path per row (all give
/// the same bits): path 0 the row-by-row dot products, 1 the vpdpbusd panels of the best x86 path
/// (gemm_w8a8's choice without AMX), 2 the AVX2 panels (vpmaddubsw), 3 gemm_w8a8 on AMX-INT8 tiles
/// (skipped without AMX). Each includes quantizing the activations.
void w8a8_gemm(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    const auto path = state.range(1);
    if (path == 3 && !llm::blas::amx_int8_available()) {
        state.SkipWithError("no AMX-INT8 on this CPU (or no permission for the tile data)");
        return;
    }
    const q::kernel_isa isa = path == 2 ? q::kernel_isa::avx2 : q::best_isa();
    if ((path == 1 || path == 2) && (isa == q::kernel_isa::generic || !q::isa_available(isa))) {
        state.SkipWithError("no x86 integer dot-product path on this CPU");
        return;
    }
    const std::size_t k = k_dim(), rows = gemm_rows, n = gemm_n;
    const auto ws_values = random_floats(rows * k);
    const auto w8 = q::quantize_int8(llm::tensor_view<const float, llm::dims<2>>(ws_values.data(), rows, k));
    time_product(state, threads, n, k, rows, [&](auto y, auto x, llm::workspace& ws, auto& pool) {
        if (path == 3) {
            q::gemm_w8a8(y, x, w8, ws, pool);
            return;
        }
        const llm::workspace::frame frame(ws);
        std::int8_t* qx = ws.take<std::int8_t>(n * k, "bench", "int8 activations");
        float* sx = ws.take<float>(n, "bench", "scales");
        std::int32_t* xsum = ws.take<std::int32_t>(n, "bench", "code sums");
        q::detail::quantize_tokens_i8(x.data(), k, 1, n, k, qx, sx, xsum);
        if (path == 0) {
            llm::parallel::parallel_for(pool, rows, 64, [&](std::size_t n0, std::size_t n1) {
                q::detail::w8a8_rows(y.data(), rows, 1, qx, sx, n, w8, n0, n1);
            });
        } else {
            q::detail::w8a8_panels(isa, y.data(), rows, 1, qx, sx, xsum, n, w8, ws, pool);
        }
    });
    const char* names[] = {"row path", "panels", "panels", "amx-int8 tiles"};
    state.SetLabel(std::string(names[path]) + (path == 1 || path == 2 ? std::string(" ") + std::string(q::isa_name(isa)) : "") +
                   " m=" + std::to_string(rows) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
}

void stream_read(benchmark::State& state) {
    const auto threads = static_cast<std::size_t>(state.range(0));
    double gbs = 0.0;
    for (auto _ : state) gbs = std::max(gbs, llm_bench::stream_read_pass(threads));
    state.counters["GB/s"] = gbs;
}

BENCHMARK(w8a8_gemm)->Name("quant_gemm/w8a8")->ArgNames({"threads", "path"})->ArgsProduct({{1, 2}, {0, 1, 2, 3}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(stream_read)->Name("quant_ceiling/stream_read")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(dense_gemm<llm::io::ggml_type::f16>)->Name("quant_gemm/f16")->ArgNames({"threads", "tokens"})->ArgsProduct({{1, 2}, {128, 512}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(dense_gemm<llm::io::ggml_type::bf16>)->Name("quant_gemm/bf16")->ArgNames({"threads", "tokens"})->ArgsProduct({{1, 2}, {128, 512}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(dense_gemm<llm::io::ggml_type::f16, true>)->Name("quant_gemm/f16_panels")->ArgNames({"threads", "tokens"})->ArgsProduct({{1, 2}, {128, 512}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(dense_gemm<llm::io::ggml_type::bf16, true>)->Name("quant_gemm/bf16_panels")->ArgNames({"threads", "tokens"})->ArgsProduct({{1, 2}, {128, 512}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(dense_gemm<llm::io::ggml_type::f32>)->Name("quant_gemm/f32")->ArgNames({"threads", "tokens"})->ArgsProduct({{1, 2}, {128, 512}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(half_gemv<llm::io::ggml_type::f16>)->Name("quant_gemv/f16")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(half_gemv<llm::io::ggml_type::bf16>)->Name("quant_gemv/bf16")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(half_gemv<llm::io::ggml_type::f16, true>)->Name("quant_gemv/f16_panels")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(half_gemv<llm::io::ggml_type::bf16, true>)->Name("quant_gemv/bf16_panels")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q4_0>)->Name("quant_gemv/q4_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q8_0>)->Name("quant_gemv/q8_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q4_0>)->Name("quant_gemv_packed/q4_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q8_0>)->Name("quant_gemv_packed/q8_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q4_k>)->Name("quant_gemv/q4_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q6_k>)->Name("quant_gemv/q6_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q4_k>)->Name("quant_gemv_packed/q4_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q6_k>)->Name("quant_gemv_packed/q6_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q5_k>)->Name("quant_gemv/q5_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q5_k>)->Name("quant_gemv_packed/q5_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q4_1>)->Name("quant_gemv/q4_1")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q5_0>)->Name("quant_gemv/q5_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q5_1>)->Name("quant_gemv/q5_1")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q4_1>)->Name("quant_gemv_packed/q4_1")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q5_0>)->Name("quant_gemv_packed/q5_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q5_1>)->Name("quant_gemv_packed/q5_1")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q2_k>)->Name("quant_gemv/q2_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q2_k>)->Name("quant_gemv_packed/q2_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv<q::q3_k>)->Name("quant_gemv/q3_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemv_packed<q::q3_k>)->Name("quant_gemv_packed/q3_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm<q::q4_0>)->Name("quant_gemm/q4_0")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm<q::q8_0>)->Name("quant_gemm/q8_0")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q4_0>)->Name("quant_gemm_packed/q4_0")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q8_0>)->Name("quant_gemm_packed/q8_0")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm<q::q4_k>)->Name("quant_gemm/q4_K")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm<q::q6_k>)->Name("quant_gemm/q6_K")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm<q::q2_k>)->Name("quant_gemm/q2_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm<q::q3_k>)->Name("quant_gemm/q3_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q2_k>)->Name("quant_gemm_packed/q2_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q2_k, true>)->Name("quant_gemm_packed_256/q2_K")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q3_k>)->Name("quant_gemm_packed/q3_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q3_k, true>)->Name("quant_gemm_packed_256/q3_K")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm<q::q5_k>)->Name("quant_gemm/q5_K")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q5_k>)->Name("quant_gemm_packed/q5_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q5_k, true>)->Name("quant_gemm_packed_256/q5_K")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q4_k>)->Name("quant_gemm_packed/q4_K")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q6_k>)->Name("quant_gemm_packed/q6_K")->ArgName("threads")->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q4_0>)->Name("quant_gemm_packed/q4_0")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q4_1>)->Name("quant_gemm_packed/q4_1")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q5_0>)->Name("quant_gemm_packed/q5_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q5_1>)->Name("quant_gemm_packed/q5_1")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q8_0>)->Name("quant_gemm_packed/q8_0")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q4_k>)->Name("quant_gemm_packed/q4_K")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q4_0, true>)->Name("quant_gemm_packed_256/q4_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q8_0, true>)->Name("quant_gemm_packed_256/q8_0")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q4_k, true>)->Name("quant_gemm_packed_256/q4_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q6_k>)->Name("quant_gemm_packed/q6_K")->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(quant_gemm_packed<q::q6_k, true>)->Name("quant_gemm_packed_256/q6_K")->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
