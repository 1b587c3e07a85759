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

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

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

TEST_SUITE("gpu") {
    TEST_CASE("gpu: flash_forward_cuda matches the CPU flash_forward") {
        REQUIRE(device_present);
        const std::size_t B = 2, Sq = 100, Sk = 130, H = 8, Hk = 2;
        for (std::size_t D : {64, 80, 128, 256}) {
            CAPTURE(D);
            auto q = random4<float>(B, Sq, H, D, 1);
            auto k = random4<float>(B, Sk, Hk, D, 2);
            auto v = random4<float>(B, Sk, Hk, D, 3);
            t4f o(B, Sq, H, D), o_gpu(B, Sq, H, D);
            t3f lse(B, H, Sq), lse_gpu(B, H, Sq);
            at::flash_forward(q, k, v, o, lse, at::causal{}, {}, llm::parallel::sequential{});
            float *dq, *dk, *dv, *dout, *dl;
            REQUIRE(cudaMalloc(&dq, q.size() * 4) == cudaSuccess);
            REQUIRE(cudaMalloc(&dk, k.size() * 4) == cudaSuccess);
            REQUIRE(cudaMalloc(&dv, v.size() * 4) == cudaSuccess);
            REQUIRE(cudaMalloc(&dout, o.size() * 4) == cudaSuccess);
            REQUIRE(cudaMalloc(&dl, lse.size() * 4) == cudaSuccess);
            cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dk, k.data(), k.size() * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dv, v.data(), v.size() * 4, cudaMemcpyHostToDevice);
            llm::tensor_view<const float, llm::dims<4>, llm::layout_right, llm::cuda> qv(dq, B, Sq, H, D), kv(dk, B, Sk, Hk, D),
                vv(dv, B, Sk, Hk, D);
            llm::tensor_view<float, llm::dims<4>, llm::layout_right, llm::cuda> ov(dout, B, Sq, H, D);
            llm::tensor_view<float, llm::dims<3>, llm::layout_right, llm::cuda> lv(dl, B, H, Sq);
            at::flash_forward_cuda(qv, kv, vv, ov, lv, at::causal{});
            REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
            cudaMemcpy(o_gpu.data(), dout, o.size() * 4, cudaMemcpyDeviceToHost);
            cudaMemcpy(lse_gpu.data(), dl, lse.size() * 4, cudaMemcpyDeviceToHost);
            for (float* p : {dq, dk, dv, dout, dl}) {
                cudaFree(p);
            }
            t4d o_ref(B, Sq, H, D);
            llm::convert(o, o_ref);
            CHECK(rel_norm(o_gpu, o_ref) < 2e-5);
            t3d l_ref(B, H, Sq);
            llm::convert(lse, l_ref);
            CHECK(max_abs_diff(lse_gpu, l_ref) < 1e-4);
        }
    }
}

}  // namespace
