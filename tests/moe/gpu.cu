// SPDX-License-Identifier: Apache-2.0
// GPU test of moe/cuda.cuh (router, plan, gather, combine) against the CPU path; needs nvcc and a device, else reports skipped (exit 77).
//
// Tolerances: as tests/moe/warp.cpp (the device runs the same warp_route): probabilities within
// 4e-5 relative of the CPU router's, picks equal; plan, gather and combine are exact (the
// combine sums the same products in the same slot order; fma contraction may differ from the
// host compiler's: 1e-6 relative).
#include "helpers.hpp"

#include <llm/config.hpp>
#include <llm/moe/moe.hpp>
#include <llm/parallel/sequential.hpp>

#include <doctest/doctest.h>

#if !LLM_CUDA_COMPILE
#error "tests/moe/gpu.cu must be compiled by nvcc"
#endif
#include <llm/moe/cuda.cuh>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using namespace moe_test;
namespace moe = llm::moe;

constexpr int exit_skipped = 77;

const bool device_present = [] {
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("test_moe_gpu: skipped: no CUDA device (cudaGetDeviceCount: %s, %d devices)\n",
                    cudaGetErrorString(err), devices);
        std::exit(exit_skipped);
    }
    return true;
}();

template <class T>
T* to_device(const T* host, std::size_t n) {
    T* p = nullptr;
    REQUIRE(cudaMalloc(&p, std::max<std::size_t>(n, 1) * sizeof(T)) == cudaSuccess);
    if (n != 0 && host != nullptr) {
        REQUIRE(cudaMemcpy(p, host, n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    }
    return p;
}

template <class T>
std::vector<T> to_host(const T* dev, std::size_t n) {
    std::vector<T> h(n);
    if (n != 0) {
        REQUIRE(cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    }
    return h;
}

template <class T>
llm::row_view<T, 2> rv(T* p, std::size_t r, std::size_t c) {
    return {p, llm::dims<2>(r, c), llm::unit_last_stride<2>(c)};
}

}  // namespace

TEST_CASE("gpu: moe::cuda::route, plan_dispatch, gather and combine agree with the CPU path" * doctest::test_suite("gpu")) {
    std::mt19937 rng(5);
    const std::size_t T = 517, E = 64, k = 6, d = 40;
    const t2f logits = rand2(T, E, rng, 3.0f);
    const moe::softmax_top_k r{.k = k};
    t2i ex(T, k);
    t2f w(T, k), p(T, E);
    moe::route(ex, w, p, logits, r, llm::parallel::sequential{});

    float* dl = to_device(logits.data(), T * E);
    std::int32_t* dex = to_device<std::int32_t>(nullptr, T * k);
    float* dw = to_device<float>(nullptr, T * k);
    float* dp = to_device<float>(nullptr, T * E);
    moe::cuda::route(moe::routing{rv(dex, T, k), rv(dw, T, k), rv(dp, T, E)}, rv<const float>(dl, T, E), r);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    const auto hex = to_host(dex, T * k);
    const auto hw = to_host(dw, T * k);
    const auto hp = to_host(dp, T * E);
    for (std::size_t i = 0; i < T * E; ++i) {
        REQUIRE(std::fabs(hp[i] - p.data()[i]) <= 4e-5f * p.data()[i] + 1e-30f);
    }
    for (std::size_t i = 0; i < T * k; ++i) {
        REQUIRE(hex[i] == ex.data()[i]);
        REQUIRE(std::fabs(hw[i] - w.data()[i]) <= 4e-5f * float(k) * w.data()[i]);
    }

    moe::dispatch_plan plan;
    moe::plan_dispatch(plan, ex, E);
    std::size_t* doff = to_device<std::size_t>(nullptr, E + 1);
    std::int32_t* drows = to_device<std::int32_t>(nullptr, T * k);
    std::int32_t* dpos = to_device<std::int32_t>(nullptr, T * k);
    unsigned long long* ddrop = to_device<unsigned long long>(nullptr, 1);
    REQUIRE(cudaMemset(ddrop, 0, sizeof(unsigned long long)) == cudaSuccess);
    moe::cuda::plan_dispatch(doff, drows, dpos, ddrop, rv<const std::int32_t>(dex, T, k), E);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(to_host(doff, E + 1) == plan.offsets);
    CHECK(to_host(dpos, T * k) == plan.pos);
    const auto hrows = to_host(drows, plan.size());
    CHECK(hrows == plan.rows);
    CHECK(to_host(ddrop, 1)[0] == 0);

    const t2f x = rand2(T, d, rng);
    const t2f yp = rand2(plan.size(), d, rng);
    float* dx = to_device(x.data(), T * d);
    float* dxp = to_device<float>(nullptr, plan.size() * d);
    moe::cuda::gather(rv(dxp, plan.size(), d), rv<const float>(dx, T, d), drows);
    float* dyp = to_device(yp.data(), plan.size() * d);
    float* dy = to_device<float>(nullptr, T * d);
    moe::cuda::combine(rv(dy, T, d), dyp, dpos, dw, k, false);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    const auto hxp = to_host(dxp, plan.size() * d);
    const auto hy = to_host(dy, T * d);
    for (std::size_t i = 0; i < plan.size(); ++i) {
        for (std::size_t c = 0; c < d; ++c) {
            REQUIRE(hxp[i * d + c] == x(std::size_t(plan.rows[i]), c));
        }
    }
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t c = 0; c < d; ++c) {
            const float ref = moe::tile::combine_column(yp.data(), d, plan.pos.data() + t * k, hw.data() + t * k, k, c);
            REQUIRE(std::fabs(hy[t * d + c] - ref) <= 1e-6f * (1.0f + std::fabs(ref)));
        }
    }
    for (void* q : {static_cast<void*>(dl), static_cast<void*>(dex), static_cast<void*>(dw), static_cast<void*>(dp),
                    static_cast<void*>(doff), static_cast<void*>(drows), static_cast<void*>(dpos),
                    static_cast<void*>(ddrop), static_cast<void*>(dx), static_cast<void*>(dxp),
                    static_cast<void*>(dyp), static_cast<void*>(dy)}) {
        cudaFree(q);
    }
}
