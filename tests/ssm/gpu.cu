// SPDX-License-Identifier: Apache-2.0
// GPU test of selective_scan_cuda against the CPU selective_scan (doctest suite "gpu"); needs nvcc and a device.
//
// Compiled by nvcc into test_ssm_gpu (ctest label `gpu`) when CUDA is enabled. Without a device the
// program exits with code 77 before any test runs, and ctest (SKIP_RETURN_CODE 77) reports it as
// skipped: never as passed with nothing checked.
#include "helpers.hpp"

#include <llm/config.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/ssm/ssm.hpp>

#include <doctest/doctest.h>

#if !LLM_CUDA_COMPILE
#error "tests/ssm/gpu.cu must be compiled by nvcc"
#endif
#include <llm/ssm/cuda.cuh>

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace {

using namespace ssm_test;
namespace ssm = llm::ssm;

constexpr int exit_skipped = 77;

const bool device_present = [] {
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("test_ssm_gpu: skipped: no CUDA device (cudaGetDeviceCount: %s, %d devices)\n",
                    cudaGetErrorString(err), devices);
        std::exit(exit_skipped);
    }
    return true;
}();

/// A device copy of a host tensor, as a tensor_view-like kernel_view over device memory.
template <class T, std::size_t R>
struct device_copy {
    T* ptr = nullptr;
    llm::strided_view<T, R> view;
    explicit device_copy(const tensor<T, R>& h) {
        REQUIRE(cudaMalloc(&ptr, h.size() * sizeof(T)) == cudaSuccess);
        REQUIRE(cudaMemcpy(ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
        std::array<std::size_t, R> e{}, s{};
        for (std::size_t r = 0; r < R; ++r) {
            e[r] = h.extent(r);
        }
        std::size_t st = 1;
        for (std::size_t r = R; r-- > 0;) {
            s[r] = st;
            st *= e[r];
        }
        view = llm::strided_view<T, R>(ptr, llm::dims<R>(e), llm::dims<R>(s));
    }
    tensor<T, R> to_host(const tensor<T, R>& like) const {
        tensor<T, R> h(like.extents());
        REQUIRE(cudaMemcpy(h.data(), ptr, h.size() * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
        return h;
    }
    ~device_copy() { cudaFree(ptr); }
    device_copy(const device_copy&) = delete;
    device_copy& operator=(const device_copy&) = delete;
};

}  // namespace

TEST_CASE("gpu: selective_scan_cuda matches the CPU selective_scan" * doctest::test_suite("gpu")) {
    for (std::size_t L : {1, 100, 1000}) {
        CAPTURE(L);
        const std::size_t B = 2, D = 37, N = 16, G = 1;
        const auto u = randn<float>(1, 0, 1, B, D, L);
        const auto delta = randn<float>(2, -1.0f, 0.7f, B, D, L);
        const auto z = randn<float>(3, 0, 1, B, D, L);
        const auto A = uniform<float>(4, -2.0f, -0.1f, D, N);
        const auto Bm = randn<float>(5, 0, 1, B, G, N, L);
        const auto Cm = randn<float>(6, 0, 1, B, G, N, L);
        const auto Dk = randn<float>(7, 0, 1, D);
        const auto bias = randn<float>(8, 0, 0.3f, D);
        tensor<float, 3> y_cpu(B, D, L), st_cpu(B, D, N);
        ssm::selective_scan(y_cpu, st_cpu, u, delta, Bm, Cm, z, A, Dk, bias, {.delta_softplus = true},
                            llm::parallel::sequential{});
        device_copy<float, 3> du(u), ddl(delta), dz(z);
        device_copy<float, 2> dA(A);
        device_copy<float, 4> dB(Bm), dC(Cm);
        device_copy<float, 1> dD(Dk), db(bias);
        tensor<float, 3> y0(B, D, L), s0(B, D, N);
        poison(y0), poison(s0);
        device_copy<float, 3> dy(y0), ds(s0);
        ssm::selective_scan_cuda(dy.view, ds.view, du.view, ddl.view, dB.view, dC.view, dz.view, dA.view, dD.view,
                                 db.view, {.delta_softplus = true});
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        const auto y = dy.to_host(y0), st = ds.to_host(s0);
        // Both fp32; different orders (lane runs combined vs sequential): 2e-5 as tests/ssm/warp.cpp.
        CHECK(rel(y, y_cpu) < 2e-5);
        CHECK(rel(st, st_cpu) < 2e-5);
    }
}
