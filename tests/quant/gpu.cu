// SPDX-License-Identifier: Apache-2.0
// GPU test of llm::quant::dequantize_cuda and gemv_cuda (Q4_0, Q8_0, Q4_K) against the CPU; needs nvcc and a
// device. Without a device the program exits with code 77 before any test runs, and ctest
// (SKIP_RETURN_CODE 77) reports it as skipped, never as passed with nothing checked.
#include <llm/config.hpp>
#include <llm/quant/quant.hpp>
#include <llm/quant/reference.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#if !LLM_CUDA_COMPILE
#error "tests/quant/gpu.cu must be compiled by nvcc"
#endif
#include <llm/quant/cuda.cuh>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace {

namespace q = llm::quant;

constexpr int exit_skipped = 77;

const bool device_present = [] {
    int devices = 0;
    const cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("test_quant_gpu: skipped: no CUDA device (cudaGetDeviceCount: %s, %d devices)\n",
                    cudaGetErrorString(err), devices);
        std::exit(exit_skipped);
    }
    return true;
}();

template <class T>
T* to_device(const T* p, std::size_t n) {
    T* d = nullptr;
    REQUIRE(cudaMalloc(&d, n * sizeof(T) + 1) == cudaSuccess);
    REQUIRE(cudaMemcpy(d, p, n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}

template <class F>
void check_format(std::size_t n, std::size_t k) {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> wf(n * k), xf(k);
    for (float& v : wf) v = normal(rng);
    for (float& v : xf) v = normal(rng);
    const auto blocks = q::quantize<F>(wf);
    const auto wd = q::dequantize<F>(std::span<const typename F::block>(blocks));
    auto* dblocks = to_device(blocks.data(), blocks.size());
    float* dx = to_device(xf.data(), k);
    float *dy = nullptr, *dw = nullptr;
    REQUIRE(cudaMalloc(&dy, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMalloc(&dw, n * k * sizeof(float)) == cudaSuccess);
    const auto w = q::matrix_view<q::block_accessor<F>>(std::span<const typename F::block>(dblocks, blocks.size()), n, k);
    q::dequantize_cuda(llm::tensor_view<float, llm::dims<2>>(dw, n, k), w);
    q::gemv_cuda(llm::tensor_view<float, llm::dims<1>>(dy, n), llm::tensor_view<const float, llm::dims<1>>(dx, k), w);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    std::vector<float> back(n * k), y(n);
    REQUIRE(cudaMemcpy(back.data(), dw, n * k * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    REQUIRE(cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    // Dequantize: the shared decoder, bit for bit.
    CHECK(std::memcmp(back.data(), wd.data(), n * k * sizeof(float)) == 0);
    // GEMV: fp32 sums of the same values in another order: within (k + 32) 2^-24 sum |w x|.
    for (std::size_t j = 0; j < n; ++j) {
        double exact = 0.0, mag = 0.0;
        for (std::size_t p = 0; p < k; ++p) {
            exact += double(wd[j * k + p]) * xf[p];
            mag += std::fabs(double(wd[j * k + p]) * xf[p]);
        }
        CHECK(std::fabs(y[j] - exact) <= double(k + 32) * std::ldexp(mag, -24));
    }
    cudaFree(dblocks);
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dw);
}

}  // namespace

TEST_CASE("gpu: dequantize_cuda equals dequantize bit for bit; gemv_cuda matches the CPU reference (Q4_0, Q8_0, Q4_K)") {
    check_format<q::q4_0>(37, 32 * 70);
    check_format<q::q8_0>(37, 32 * 70);
    check_format<q::q4_k>(19, 256 * 9);
}
