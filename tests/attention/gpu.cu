// SPDX-License-Identifier: Apache-2.0
// GPU test of flash_forward_cuda against the CPU kernel (doctest suite "gpu"); needs nvcc and a device.
//
// The build compiles tests/<module>/*.cu with nvcc into test_<module>_gpu (ctest label `gpu`)
// when CUDA is enabled. Without a device the program exits with code 77 before any test runs,
// and ctest (SKIP_RETURN_CODE 77) reports the test as skipped: never as passed with nothing checked.
#include "helpers.hpp"

#include <llm/attention/attention.hpp>
#include <llm/config.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#if !LLM_CUDA_COMPILE
#error "tests/attention/gpu.cu must be compiled by nvcc"
#endif
#include <llm/attention/cuda.cuh>
#include <llm/simd/lanes.hpp>
#include <llm/simd/scalar.hpp>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

namespace {

namespace at = llm::attention;
using namespace attn_test;

/// The exit code ctest's SKIP_RETURN_CODE maps to "skipped" (the Automake convention).
constexpr int exit_skipped = 77;

// Runs before doctest's main: with no usable device (none present, or no driver) there is
// nothing this program can check, so it says why and exits as skipped.
const bool device_present = [] {
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("test_attention_gpu: skipped: no CUDA device (cudaGetDeviceCount: %s, %d devices)\n",
                    cudaGetErrorString(err), devices);
        std::exit(exit_skipped);
    }
    return true;
}();

/// Runs flash_forward_cuda on copies of q, k, v in device memory; returns o and lse on the host.
template <class Mask>
std::pair<t4f, t3f> run_on_device(const t4f& q, const t4f& k, const t4f& v, const Mask& mask) {
    const std::size_t B = q.extent(0), Sq = q.extent(1), H = q.extent(2), D = q.extent(3);
    const std::size_t Sk = k.extent(1), Hk = k.extent(2);
    t4f o(B, Sq, H, D);
    t3f lse(B, H, Sq);
    float *dq, *dk, *dv, *dout, *dl;
    REQUIRE(cudaMalloc(&dq, q.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&dk, k.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&dv, v.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&dout, o.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&dl, lse.size() * 4) == cudaSuccess);
    REQUIRE(cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(dk, k.data(), k.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(dv, v.data(), v.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    llm::tensor_view<const float, llm::dims<4>, llm::layout_right, llm::cuda> qv(dq, B, Sq, H, D), kv(dk, B, Sk, Hk, D),
        vv(dv, B, Sk, Hk, D);
    llm::tensor_view<float, llm::dims<4>, llm::layout_right, llm::cuda> ov(dout, B, Sq, H, D);
    llm::tensor_view<float, llm::dims<3>, llm::layout_right, llm::cuda> lv(dl, B, H, Sq);
    at::flash_forward_cuda(ov, lv, qv, kv, vv, mask);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    REQUIRE(cudaMemcpy(o.data(), dout, o.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    REQUIRE(cudaMemcpy(lse.data(), dl, lse.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (float* p : {dq, dk, dv, dout, dl}) {
        cudaFree(p);
    }
    return {std::move(o), std::move(lse)};
}

/// One warp of device code over the shared simd pieces: lane t writes llm::simd::scalar's exp of
/// x[t] to e[t] and the warp's llm::simd::cuda_warp::reduce_sum of x to sum[t].
__global__ void simd_on_device_kernel(const float* x, float* e, float* sum) {
    using L = llm::simd::cuda_warp;
    const std::size_t t = L::lane();
    e[t] = llm::simd::scalar::exp(llm::simd::scalar::set1(x[t]));
    sum[t] = L::reduce_sum(x[t]);
}

/// Entries of a and b that are NaN in one and not the other.
template <class A, class B>
std::size_t nan_mismatches(const A& a, const B& b) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        n += std::isnan(static_cast<double>(a.data()[i])) != std::isnan(static_cast<double>(b.data()[i])) ? 1 : 0;
    }
    return n;
}

/// Entries that are NaN.
template <class A>
std::size_t nan_count(const A& a) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        n += std::isnan(static_cast<double>(a.data()[i])) ? 1 : 0;
    }
    return n;
}

TEST_SUITE("gpu") {
    TEST_CASE("gpu: flash_forward_cuda matches the CPU flash_forward") {
        REQUIRE(device_present);
        const std::size_t B = 2, Sq = 100, Sk = 130, H = 8, Hk = 2;
        // 64, 80, 128, 256 run kernels with a static head_dim; 40 and 200 the dynamic fallback.
        for (std::size_t D : {64, 80, 128, 256, 40, 200}) {
            CAPTURE(D);
            auto q = random4<float>(B, Sq, H, D, 1);
            auto k = random4<float>(B, Sk, Hk, D, 2);
            auto v = random4<float>(B, Sk, Hk, D, 3);
            t4f o(B, Sq, H, D);
            t3f lse(B, H, Sq);
            at::flash_forward(o, lse, q, k, v, at::causal{}, {}, llm::parallel::sequential{});
            const auto [o_gpu, lse_gpu] = run_on_device(q, k, v, at::causal{});
            t4d o_ref(B, Sq, H, D);
            llm::convert(o, o_ref);
            CHECK(rel_norm(o_gpu, o_ref) < 2e-5);
            t3d l_ref(B, H, Sq);
            llm::convert(lse, l_ref);
            CHECK(max_abs_diff(lse_gpu, l_ref) < 1e-4);
        }
    }

    // llm::simd::scalar runs in device code (its members are LLM_HD) and cuda_warp reduces in
    // emulated_warp<32>'s butterfly order. exp: host and device run the same fast_exp with
    // correctly rounded fma on both sides, each within 1.0e-7 relative of exp, so they differ by
    // at most 2.0e-7 relative (2.5e-7 allows for the final rounding). The sum: the same float
    // additions in the same order, so the same bits in every lane.
    TEST_CASE("gpu: llm::simd::scalar and cuda_warp in device code agree with the host") {
        REQUIRE(device_present);
        std::array<float, 32> x{}, e{}, sum{};
        for (std::size_t t = 0; t < 32; ++t) {
            x[t] = -40.0f + 2.7f * static_cast<float>(t) + 0.013f * static_cast<float>(t * t);
        }
        float *dx, *de, *ds;
        REQUIRE(cudaMalloc(&dx, sizeof x) == cudaSuccess);
        REQUIRE(cudaMalloc(&de, sizeof e) == cudaSuccess);
        REQUIRE(cudaMalloc(&ds, sizeof sum) == cudaSuccess);
        REQUIRE(cudaMemcpy(dx, x.data(), sizeof x, cudaMemcpyHostToDevice) == cudaSuccess);
        simd_on_device_kernel<<<1, 32>>>(dx, de, ds);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        REQUIRE(cudaMemcpy(e.data(), de, sizeof e, cudaMemcpyDeviceToHost) == cudaSuccess);
        REQUIRE(cudaMemcpy(sum.data(), ds, sizeof sum, cudaMemcpyDeviceToHost) == cudaSuccess);
        for (float* p : {dx, de, ds}) {
            cudaFree(p);
        }
        const auto host_sum = llm::simd::emulated_warp<32>::reduce_sum(x);
        for (std::size_t t = 0; t < 32; ++t) {
            CAPTURE(t);
            const float host_e = llm::simd::scalar::exp(x[t]);
            CHECK(std::abs(static_cast<double>(e[t]) - host_e) <= 2.5e-7 * host_e);
            CHECK(sum[t] == host_sum[t]);
        }
    }

    // The rule of flash_forward: a non-finite element of q, or of a k or v row a query row sees,
    // makes that row NaN (o and lse); every other row is unchanged. The CPU kernel is the oracle
    // for which rows; under a sliding window a poisoned key reaches only the rows whose window holds it.
    TEST_CASE("gpu: non-finite q, k, v poison exactly the rows the CPU kernel poisons") {
        REQUIRE(device_present);
        const std::size_t B = 2, Sq = 100, Sk = 100, H = 4, Hk = 2, D = 64;
        const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
        for (int which = 0; which < 3; ++which) {
            for (int masked = 0; masked < 2; ++masked) {
                CAPTURE(which);
                CAPTURE(masked);
                auto q = random4<float>(B, Sq, H, D, 11);
                auto k = random4<float>(B, Sk, Hk, D, 12);
                auto v = random4<float>(B, Sk, Hk, D, 13);
                if (which == 0) {
                    q(1, 17, 3, 5) = nan;
                } else if (which == 1) {
                    k(0, 40, 1, 63) = inf;
                } else {
                    v(1, 70, 0, 0) = nan;
                }
                t4f o(B, Sq, H, D);
                t3f lse(B, H, Sq);
                std::pair<t4f, t3f> gpu;
                if (masked == 0) {
                    at::flash_forward(o, lse, q, k, v, at::causal{}, {}, llm::parallel::sequential{});
                    gpu = run_on_device(q, k, v, at::causal{});
                } else {
                    const at::sliding_window win(16, 0);
                    at::flash_forward(o, lse, q, k, v, win, {}, llm::parallel::sequential{});
                    gpu = run_on_device(q, k, v, win);
                }
                CHECK(nan_count(lse) > 0);
                CHECK(nan_count(lse) < lse.size() / 4);  // the poison stays in the rows that see it
                CHECK(nan_mismatches(gpu.first, o) == 0);
                CHECK(nan_mismatches(gpu.second, lse) == 0);
                double worst = 0;
                for (std::size_t i = 0; i < o.size(); ++i) {
                    if (!std::isnan(o.data()[i])) {
                        worst = std::max(worst, std::abs(static_cast<double>(gpu.first.data()[i]) - o.data()[i]));
                    }
                }
                CHECK(worst < 1e-4);
            }
        }
    }
}

}  // namespace
