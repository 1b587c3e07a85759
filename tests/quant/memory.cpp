// SPDX-License-Identifier: Apache-2.0
// A warmed llm::workspace makes llm::quant::gemv / gemm calls allocation-free (sequential and thread pool, every
// path this CPU has): counted by replacing operator new (tests/support/counting_new.hpp, once per program).
#include <llm/core/cpu_info.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/channel.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/packed.hpp>
#include <llm/quant/quant.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../support/counting_new.hpp"

namespace {

namespace q = llm::quant;

template <class F>
std::int64_t allocations_of(F&& f) {
    return llm_test::heap::watch(f).allocations;
}

// A cold workspace allocates (the count sees the call; except the generic path on contiguous fp32
// activations, which takes no scratch at all), the warmed one does not, twice, and the result is
// unchanged.
template <class Run>
void check_warm(bool cold_allocates, const std::vector<float>& out, Run&& run) {
    llm::workspace ws;
    const std::int64_t cold = allocations_of([&] { run(ws); });
    CHECK((cold > 0) == cold_allocates);
    const std::vector<float> first = out;
    CHECK(allocations_of([&] { run(ws); }) == 0);
    CHECK(allocations_of([&] { run(ws); }) == 0);
    CHECK(out == first);
}

template <class F>
void check_format(llm::parallel::thread_pool& pool) {
    const std::size_t m = 6, n = 37, k = 512;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> wf(n * k), xf(m * k);
    for (float& v : wf) v = normal(rng);
    for (float& v : xf) v = normal(rng);
    const auto blocks = q::quantize<F>(wf);
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(blocks), n, k);
    std::vector<float> y(m * n);
    llm::tensor_view<float, llm::dims<2>> yv(y.data(), m, n);
    llm::tensor_view<const float, llm::dims<2>> xv(xf.data(), m, k);
    llm::tensor_view<float, llm::dims<1>> y1(y.data(), n);
    llm::tensor_view<const float, llm::dims<1>> x1(xf.data(), k);
    for (auto path : {q::kernel_isa::generic, q::kernel_isa::avx2, q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (!q::isa_available(path)) continue;
        CAPTURE(std::string(q::isa_name(path)));
        const bool scratch = path != q::kernel_isa::generic;
        check_warm(scratch, y, [&](llm::workspace& ws) { q::gemm(yv, xv, w, {.path = path}, ws, pool); });
        check_warm(scratch, y, [&](llm::workspace& ws) { q::gemv(y1, x1, w, {.path = path}, ws, llm::parallel::sequential{}); });
    }
}

}  // namespace

TEST_CASE("quant memory: gemv and gemm with a warmed workspace allocate nothing (sequential and thread_pool)") {
    // The cache sizes are read from sysfs once per process (strings); read them before counting,
    // so the cold call's count does not depend on which test cases ran first.
    (void)llm::cpu_cache_sizes();
    llm::parallel::thread_pool pool(2);
    check_format<q::q4_0>(pool);
    check_format<q::q4_k>(pool);
    check_format<q::q6_k>(pool);
    check_format<q::q8_0>(pool);
}

TEST_CASE("quant memory: packed gemv and gemm (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) with a warmed workspace allocate nothing, every path") {
    llm::parallel::thread_pool pool(2);
    const std::size_t m = 6, n = 37, k = 512;
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> wf(n * k), xf(m * k);
    for (float& v : wf) v = normal(rng);
    for (float& v : xf) v = normal(rng);
    const auto b4 = q::quantize<q::q4_0>(wf);
    const auto b8 = q::quantize<q::q8_0>(wf);
    const auto p4 = q::pack<q::q4_0>(std::span<const q::block_q4_0>(b4), n, k);
    const auto p8 = q::pack<q::q8_0>(std::span<const q::block_q8_0>(b8), n, k);
    const auto bk4 = q::quantize<q::q4_k>(wf);
    const auto bk6 = q::quantize<q::q6_k>(wf);
    const auto pk4 = q::pack<q::q4_k>(std::span<const q::block_q4_k>(bk4), n, k);
    const auto pk6 = q::pack<q::q6_k>(std::span<const q::block_q6_k>(bk6), n, k);
    const auto bk5 = q::quantize<q::q5_k>(wf);
    const auto pk5 = q::pack<q::q5_k>(std::span<const q::block_q5_k>(bk5), n, k);
    const auto bk3 = q::quantize<q::q3_k>(wf);
    const auto pk3 = q::pack<q::q3_k>(std::span<const q::block_q3_k>(bk3), n, k);
    const auto bk2 = q::quantize<q::q2_k>(wf);
    const auto pk2 = q::pack<q::q2_k>(std::span<const q::block_q2_k>(bk2), n, k);
    const auto b41 = q::quantize<q::q4_1>(wf);
    const auto p41 = q::pack<q::q4_1>(std::span<const q::block_q4_1>(b41), n, k);
    const auto b50 = q::quantize<q::q5_0>(wf);
    const auto p50 = q::pack<q::q5_0>(std::span<const q::block_q5_0>(b50), n, k);
    const auto b51 = q::quantize<q::q5_1>(wf);
    const auto p51 = q::pack<q::q5_1>(std::span<const q::block_q5_1>(b51), n, k);
    std::vector<float> y(m * n);
    llm::tensor_view<float, llm::dims<2>> yv(y.data(), m, n);
    llm::tensor_view<const float, llm::dims<2>> xv(xf.data(), m, k);
    llm::tensor_view<float, llm::dims<1>> y1(y.data(), n);
    llm::tensor_view<const float, llm::dims<1>> x1(xf.data(), k);
    for (auto path : {q::kernel_isa::generic, q::kernel_isa::avx2, q::kernel_isa::avx_vnni, q::kernel_isa::avx512_vnni}) {
        if (!q::isa_available(path)) continue;
        CAPTURE(std::string(q::isa_name(path)));
        // Every path quantizes the activations into the workspace (the portable one too).
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, p4, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemv(y1, x1, p4, {.path = path}, ws, llm::parallel::sequential{}); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, p8.view(), {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemv(y1, x1, p8, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, pk4, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemv(y1, x1, pk6, {.path = path}, ws, llm::parallel::sequential{}); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, pk5, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemv(y1, x1, pk5, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, pk3, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemv(y1, x1, pk3, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, p41, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, pk2, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemv(y1, x1, pk2, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemv(y1, x1, p50, {.path = path}, ws, pool); });
        check_warm(true, y, [&](llm::workspace& ws) { q::gemm(yv, xv, p51, {.path = path}, ws, pool); });
    }
}

TEST_CASE("quant memory: gemv_w8a8 and gemv_fp8 on bf16 activations with a warmed workspace allocate nothing") {
    llm::parallel::thread_pool pool(2);
    const std::size_t n = 21, k = 300;
    std::mt19937 rng(2);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> wf(n * k);
    for (float& v : wf) v = normal(rng);
    std::vector<llm::bf16> xb(k);
    for (auto& v : xb) v = llm::bf16(normal(rng));
    llm::tensor_view<const float, llm::dims<2>> wv(wf.data(), n, k);
    const auto w8 = q::quantize_int8(wv);
    const auto f8 = q::quantize_fp8(wv);
    std::vector<float> y(n);
    llm::tensor_view<float, llm::dims<1>> yv(y.data(), n);
    llm::tensor_view<const llm::bf16, llm::dims<1>> xv(xb.data(), k);
    check_warm(true, y, [&](llm::workspace& ws) { q::gemv_w8a8(yv, xv, w8, ws, pool); });
    check_warm(true, y, [&](llm::workspace& ws) { q::gemv_fp8(yv, xv, f8, ws, llm::parallel::sequential{}); });
}
