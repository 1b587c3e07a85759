// SPDX-License-Identifier: Apache-2.0
// Tests of the GEMM store epilogue (llm::gemm_epilogue, own::run_epilogue): fused equals unfused bit for bit.
#include "helpers.hpp"

#include <llm/core/bf16.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/kernel_view.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

using namespace gemm_test;

namespace {
constexpr std::size_t dnv = llm::blas::measured_blocking_t<llm::simd::default_backend::width>::nr_vectors;
constexpr std::size_t dmr = llm::blas::measured_blocking_t<llm::simd::default_backend::width>::mr;
// kc = 8: every k > 8 crosses KC steps, so the epilogue must run at the last one only.
using own_tiny = llm::blas::own<llm::simd::default_backend,
                                llm::blas::fixed_blocking<dmr, dnv, 2 * dmr, 8, 2 * dnv * llm::simd::default_backend::width>>;
using own_cache = llm::blas::own<llm::simd::default_backend,
                                 llm::blas::cache_blocking<llm::simd::default_backend::width>>;
using own_scalar = llm::blas::own<llm::simd::scalar, llm::blas::fixed_blocking<4, 4, 8, 8, 8>>;

// bias + a nonlinear map (tanh-GELU written out in scalar code) + a bf16 copy, and a count of
// how often each element was passed (must be exactly once).
struct test_epilogue {
    const float* bias;
    llm::bf16* out;        // m x n, row-major
    unsigned* visits;      // m x n
    std::size_t n;
    void operator()(std::size_t i, std::size_t j, float* p, std::size_t count) const {
        for (std::size_t t = 0; t < count; ++t) {
            const float x = p[t] + bias[j + t];
            const float y = 0.5f * x * (1.0f + std::tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
            p[t] = y;
            out[i * n + j + t] = llm::bf16(y);
            ++visits[i * n + j + t];  // disjoint stretches: no two threads touch one element
        }
    }
};

template <class Backend, class Exec>
void check_fused(std::size_t m, std::size_t k, std::size_t n, bool bt, Exec& exec) {
    CAPTURE(m);
    CAPTURE(k);
    CAPTURE(n);
    CAPTURE(bt);
    std::mt19937 rng(static_cast<unsigned>(m * 131 + k * 7 + n));
    auto a = make_operand<float>(m, k, layout_kind::row, rng);
    auto b = make_operand<float>(k, n, bt ? layout_kind::col : layout_kind::row, rng);
    std::vector<float> bias(n);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto& v : bias) {
        v = dist(rng);
    }
    llm::tensor<float, llm::dims<2>> fused(m, n), plain(m, n);
    std::vector<llm::bf16> out(m * n);
    std::vector<unsigned> visits(m * n, 0);
    llm::workspace ws;
    const test_epilogue ep{bias.data(), out.data(), visits.data(), n};
    Backend::run_epilogue(llm::to_kernel_view<2>(fused), llm::to_kernel_view<2>(std::as_const(a.view)),
                          llm::to_kernel_view<2>(std::as_const(b.view)), ep, ws, exec);
    // Unfused: the same backend's product (same blocking, so the same fp32 sums), then the
    // same epilogue over every row. Equal bit for bit: the epilogue sees the same values.
    Backend::run(llm::to_kernel_view<2>(plain), llm::to_kernel_view<2>(std::as_const(a.view)),
                 llm::to_kernel_view<2>(std::as_const(b.view)), 1.0f, 0.0f, ws, exec);
    std::vector<llm::bf16> out2(m * n);
    std::vector<unsigned> visits2(m * n, 0);
    const test_epilogue ep2{bias.data(), out2.data(), visits2.data(), n};
    for (std::size_t i = 0; i < m; ++i) {
        ep2(i, 0, plain.data() + i * n, n);
    }
    std::size_t bad_value = 0, bad_visit = 0, bad_bf16 = 0;
    for (std::size_t e = 0; e < m * n; ++e) {
        bad_value += std::memcmp(fused.data() + e, plain.data() + e, sizeof(float)) != 0;
        bad_visit += visits[e] != 1;
        bad_bf16 += std::memcmp(&out[e], &out2[e], sizeof(llm::bf16)) != 0;
    }
    CHECK(bad_value == 0);
    CHECK(bad_visit == 0);
    CHECK(bad_bf16 == 0);
}
}  // namespace

TEST_CASE_TEMPLATE("gemm epilogue: fused bias + GELU + bf16 copy equals the unfused passes, each element once", Backend,
                   llm::blas::own<>, own_tiny, own_cache, own_scalar) {
    llm::parallel::thread_pool pool(2);
    llm::parallel::sequential seq;
    for (const auto& s : awkward) {
        check_fused<Backend>(s.m, s.k, s.n, false, pool);
        check_fused<Backend>(s.m, s.k, s.n, true, seq);
    }
    check_fused<Backend>(70, 520, 410, true, pool);  // several KC steps and column tasks
    check_fused<Backend>(5, 0, 9, false, seq);       // k = 0: C = 0, then the epilogue
}

TEST_CASE("gemm_epilogue: the public entry adds a bias in the store and rejects a strided C") {
    std::mt19937 rng(3);
    auto a = make_operand<float>(37, 45, layout_kind::row, rng);
    auto b = make_operand<float>(45, 29, layout_kind::col, rng);
    llm::tensor<float, llm::dims<2>> c(37, 29), ref(37, 29);
    llm::workspace ws;
    llm::gemm(ref, a.view, b.view, 1.0f, 0.0f, ws, llm::parallel::sequential{});
    llm::gemm_epilogue(
        c, a.view, b.view, [](std::size_t i, std::size_t j, float* p, std::size_t n) {
            for (std::size_t t = 0; t < n; ++t) {
                p[t] += static_cast<float>(i * 100 + j + t);
            }
        },
        ws, llm::parallel::sequential{});
    for (std::size_t i = 0; i < 37; ++i) {
        for (std::size_t j = 0; j < 29; ++j) {
            REQUIRE(c(i, j) == ref(i, j) + static_cast<float>(i * 100 + j));
        }
    }
    llm::tensor<float, llm::dims<2>> wide(29, 37);
    auto strided = llm::transpose(wide, 0, 1);
    CHECK_THROWS_AS(llm::gemm_epilogue(strided, a.view, b.view, [](std::size_t, std::size_t, float*, std::size_t) {}, ws,
                                       llm::parallel::sequential{}),
                    llm::error);
}
