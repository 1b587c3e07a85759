// SPDX-License-Identifier: Apache-2.0
// CUDA selective scan forward: warp-per-channel mapping and loads over the scan maths of ssm/tile.hpp (warp_scan_chunk, lane_exclusive_scan through llm::simd::cuda_warp).
//
// STATUS: compiled with nvcc for sm_80 and sm_90 (the llm_nvcc_check target and test_ssm_gpu of a
// -DLLM_WITH_CUDA=ON build). Whether it has run on a GPU is recorded in docs/ssm.md. Its
// arithmetic and its lane-combine order are tested on the CPU: tests/ssm/warp.cpp runs the very
// same tile::warp_scan_chunk with llm::simd::emulated_warp<32> (whose shfl_xor is
// __shfl_xor_sync's exchange) against the double reference. The GPU test (tests/ssm/gpu.cu)
// compares this kernel with the CPU selective_scan when a device is present, and reports
// skipped (exit code 77) when none is.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>
#include <llm/simd/lanes.hpp>
#include <llm/ssm/detail/shape.hpp>
#include <llm/ssm/options.hpp>
#include <llm/ssm/tile.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

#if LLM_CUDA_COMPILE

#include <cuda_runtime.h>

namespace llm::ssm {

namespace detail {

/// Channels (warps) per block.
inline constexpr unsigned cuda_scan_warps = 4;
/// Positions per lane per chunk: a warp scans 32 * 4 = 128 positions per step of its loop.
inline constexpr std::size_t cuda_scan_k = 4;
/// Largest N the kernel's per-thread carry holds.
inline constexpr std::size_t cuda_scan_max_n = 256;

/// Grid: ceil(batch * D / cuda_scan_warps) blocks of 32 * cuda_scan_warps threads; warp w of block
/// i owns row r = i * cuda_scan_warps + w (batch r / D, channel r % D). Each lane loads its K
/// positions of delta (bias, softplus: tile.hpp) and u, tile::warp_scan_chunk computes the
/// chunk's C_t . h_t through cuda_warp and carries the state to the next chunk; the lane writes
/// (y + D u) * silu(z) for its positions, lane 0 the last state. A non-finite delta is not
/// reported on the device (it propagates into y): the CPU entry point checks it.
template <class U, class Dl, class Bv, class Cv, class Z, class A, class Dv, class DB, class Y, class St>
__global__ void __launch_bounds__(32 * cuda_scan_warps)
    selective_scan_kernel(U u, Dl delta, Bv bm, Cv cm, Z z, A a, Dv dskip, DB dbias, Y y, St state, scan_shape sh,
                          bool softplus) {
    using L = llm::simd::cuda_warp;
    constexpr std::size_t K = cuda_scan_k;
    const std::size_t row = static_cast<std::size_t>(blockIdx.x) * cuda_scan_warps + threadIdx.x / 32;
    if (row >= sh.batch * sh.dim) {
        return;  // the whole warp leaves together
    }
    const std::size_t b = row / sh.dim, d = row % sh.dim, lane = threadIdx.x % 32;
    float carry[cuda_scan_max_n];
    float a_row[cuda_scan_max_n];
    for (std::size_t n = 0; n < sh.n; ++n) {
        carry[n] = 0.0f;
        a_row[n] = static_cast<float>(a(d, n));
    }
    const float* bp;
    std::size_t bsn, bst;
    if constexpr (Bv::rank() == 2) {
        bp = bm.ptr(d, 0);
        bsn = bm.stride(1);
        bst = 0;
    } else {
        bp = bm.ptr(b, d / (sh.dim / sh.groups_b), 0, 0);
        bsn = bm.stride(2);
        bst = bm.stride(3);
    }
    const float* cp;
    std::size_t csn, cst;
    if constexpr (Cv::rank() == 2) {
        cp = cm.ptr(d, 0);
        csn = cm.stride(1);
        cst = 0;
    } else {
        cp = cm.ptr(b, d / (sh.dim / sh.groups_c), 0, 0);
        csn = cm.stride(2);
        cst = cm.stride(3);
    }
    float bias = 0.0f, dsk = 0.0f;
    if constexpr (!is_none<DB>) {
        bias = static_cast<float>(dbias(d));
    }
    if constexpr (!is_none<Dv>) {
        dsk = static_cast<float>(dskip(d));
    }
    tile::warp_chunk<L, K> c;
    for (std::size_t t0 = 0; t0 < sh.len; t0 += 32 * K) {
        for (std::size_t k = 0; k < K; ++k) {
            const std::size_t t = t0 + lane * K + k;
            float dt = 0.0f, ut = 0.0f;
            if (t < sh.len) {
                const float r = static_cast<float>(delta(b, d, t)) + bias;
                dt = softplus ? tile::softplus(r) : r;
                ut = static_cast<float>(u(b, d, t));
            }
            c.dt[k] = dt;
            c.u[k] = ut;
        }
        tile::warp_scan_chunk<L, K>(c, carry, a_row, sh.n, bp, bsn, bst, cp, csn, cst, t0, sh.len);
        for (std::size_t k = 0; k < K; ++k) {
            const std::size_t t = t0 + lane * K + k;
            if (t < sh.len) {
                float out = c.y[k] + dsk * c.u[k];
                if constexpr (!is_none<Z>) {
                    out *= tile::silu(static_cast<float>(z(b, d, t)));
                }
                using TY = typename Y::element_type;
                y(b, d, t) = TY(out);
            }
        }
    }
    if constexpr (!is_none<St>) {
        if (lane == 0) {
            for (std::size_t n = 0; n < sh.n; ++n) {
                state(b, d, n) = carry[n];
            }
        }
    }
}

template <std::size_t R, class V>
auto cuda_view_or_none(const char* fn, const char* arg, V&& v) {
    if constexpr (is_none<V>) {
        (void)fn, (void)arg;
        return none_t{};
    } else {
        return llm::to_kernel_view<dims<R>, dims<R>>(fn, arg, v);
    }
}

template <class V>
constexpr std::size_t cuda_rank() {
    return std::remove_cvref_t<V>::rank();
}

}  // namespace detail

/// The selective scan forward on a CUDA device: the contract of selective_scan (same shapes,
/// optional arguments, options), on device memory, asynchronous on `stream`; fp32 B and C (the
/// warp reads them through raw pointers), other inputs fp32 or bf16, y fp32 or bf16. One warp
/// per (batch, channel) row, 128 positions per step; N <= 256. A non-finite delta is not
/// detected on the device. Its arithmetic is tile.hpp's warp_scan_chunk, tested on the CPU with
/// emulated_warp<32>.
/// Arguments (docs/conventions.md): output y; saved state last_state or none; inputs u, delta,
/// B, C, z; parameters A, D, delta_bias; options; the stream last (the executor's place).
/// Example: `llm::ssm::selective_scan_cuda(y, state, u, delta, B, C, z, A, D, bias, {.delta_softplus = true}, stream);`
template <mutable_dense_view<3> Y, optional_output<3> St, dense_view<3> U, dense_view<3> Dl, scan_bc Bv, scan_bc Cv,
          optional_input<3> Z, dense_view<2> Av, optional_input<1> Dv, optional_input<1> DB>
    requires std::same_as<std::remove_const_t<view_element_t<Bv>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<Cv>>, float>
void selective_scan_cuda(Y&& y, St&& last_state, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D,
                         DB&& delta_bias, const scan_options& opt = {}, cudaStream_t stream = nullptr) {
    constexpr const char* fn = "selective_scan_cuda";
    const auto us = llm::to_kernel_view<dims<3>, dims<3>>(fn, "u", u);
    const auto ds = llm::to_kernel_view<dims<3>, dims<3>>(fn, "delta", delta);
    const auto bs = llm::to_kernel_view<dims<detail::cuda_rank<Bv>()>, dims<detail::cuda_rank<Bv>()>>(fn, "B", B);
    const auto cs = llm::to_kernel_view<dims<detail::cuda_rank<Cv>()>, dims<detail::cuda_rank<Cv>()>>(fn, "C", C);
    const auto zs = detail::cuda_view_or_none<3>(fn, "z", z);
    const auto as = llm::to_kernel_view<dims<2>, dims<2>>(fn, "A", A);
    const auto dks = detail::cuda_view_or_none<1>(fn, "D", D);
    const auto dbs = detail::cuda_view_or_none<1>(fn, "delta_bias", delta_bias);
    const auto sh = detail::check_scan(fn, us, ds, bs, cs, zs, as, dks, dbs);
    detail::check_extents<3>(fn, "y", y, {sh.batch, sh.dim, sh.len}, "u's shape (batch, D, L)");
    if constexpr (!is_none<St>) {
        detail::check_extents<3>(fn, "last_state", last_state, {sh.batch, sh.dim, sh.n}, "(batch, D, N)");
    }
    llm::check(sh.n <= detail::cuda_scan_max_n, fn, ": N = ", sh.n, " exceeds ", detail::cuda_scan_max_n);
    const auto ys = llm::to_kernel_view<dims<3>, dims<3>>(fn, "y", y);
    const auto ss = detail::cuda_view_or_none<3>(fn, "last_state", last_state);
    const std::size_t rows = sh.batch * sh.dim;
    if (rows == 0) {
        return;
    }
    const unsigned blocks = static_cast<unsigned>((rows + detail::cuda_scan_warps - 1) / detail::cuda_scan_warps);
    detail::selective_scan_kernel<<<blocks, 32 * detail::cuda_scan_warps, 0, stream>>>(
        us, ds, bs, cs, zs, as, dks, dbs, ys, ss, sh, opt.delta_softplus);
    const cudaError_t e = cudaGetLastError();
    llm::check(e == cudaSuccess, fn, ": kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace llm::ssm

#endif  // LLM_CUDA_COMPILE
