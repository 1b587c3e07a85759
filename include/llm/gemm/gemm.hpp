// SPDX-License-Identifier: Apache-2.0
// llm::gemm(c, a, b, alpha, beta, ws, exec): C = alpha * A * B + beta * C on tensor views of any layout, with the backend as a policy.
#pragma once

#include <llm/core/error.hpp>
#include <llm/gemm/cpu.hpp>
#include <llm/gemm/matrix.hpp>
#include <llm/gemm/reference.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

// The module's namespace is llm::blas (backends, blocking) because the
// entry point itself is the function llm::gemm, and a namespace cannot share its name.
namespace llm::blas {

/// A GEMM backend policy: a type with a static `run(llm::strided_view<float, 2> c,
/// llm::strided_view<TA, 2> a, llm::strided_view<TB, 2> b, alpha, beta, llm::workspace& ws,
/// executor&)` for TA, TB in {float, bf16} (const), computing c = alpha * a * b + beta * c
/// (shapes checked, C disjoint from A and B). Provided: llm::blas::own<> (default),
/// llm::blas::reference, llm::blas::eigen (<llm/gemm/eigen.hpp>).
template <class B>
concept backend = requires(strided_view<float, 2> c, strided_view<const float, 2> f, strided_view<const llm::bf16, 2> h,
                           llm::workspace& ws, parallel::sequential& seq) {
    B::run(c, f, f, 1.0f, 0.0f, ws, seq);
    B::run(c, h, h, 1.0f, 0.0f, ws, seq);
};

/// The backend llm::gemm uses when none is named.
using default_backend = own<>;

}  // namespace llm::blas

namespace llm {

/// C = alpha * A * B + beta * C.
/// Shapes: C is m x n, A is m x k, B is k x n; any strides, so a transposed operand is just
/// llm::transpose(view, 0, 1). Elements: A and B fp32 or bf16 (widened exactly, accumulated
/// in fp32), C fp32. beta == 0 overwrites C without reading it (beta == 1 accumulates, as a
/// backward's gradients do). k == 0 gives C = beta * C; m == 0 or n == 0 does nothing. C must
/// not overlap A or B: llm::error when an element of C shares memory with A or B; disjoint
/// blocks of one buffer (other rows, other columns) are fine.
/// Arguments (docs/conventions.md): the output C, the inputs A and B, the options alpha and
/// beta, the workspace, the executor.
/// Backend: the algorithm policy (llm::blas::own<> by default; blas::reference; blas::eigen).
/// ws: scratch for the packed panels (llm::workspace, <llm/core/workspace.hpp>); once it has
/// grown to a shape, calls of that shape or smaller allocate nothing. One workspace serves one
/// call at a time.
/// exec: llm::parallel::sequential{} (a temporary is fine), a thread_pool, any policy.
/// Example: `llm::workspace ws; llm::gemm(y, x, llm::transpose(w, 0, 1), 1.0f, 0.0f, ws, pool);  // y = x w^T`
template <blas::backend Backend = blas::default_backend, mutable_dense_view<2> C, dense_view<2> A, dense_view<2> B,
          parallel::policy Exec>
    requires std::same_as<view_element_t<C>, float>
void gemm(C&& c, A&& a, B&& b, float alpha, float beta, llm::workspace& ws, Exec&& exec) {
    using TA = std::remove_const_t<view_element_t<A>>;
    using TB = std::remove_const_t<view_element_t<B>>;
    const strided_view<float, 2> mc = to_kernel_view<2>(c);
    const strided_view<const TA, 2> ma = to_kernel_view<2>(a);
    const strided_view<const TB, 2> mb = to_kernel_view<2>(b);
    blas::detail::check_shapes("gemm", ma, mb, mc);
    blas::detail::check_no_overlap("gemm", "A", ma, mc);
    blas::detail::check_no_overlap("gemm", "B", mb, mc);
    Backend::run(mc, ma, mb, alpha, beta, ws, exec);
}

/// As above with a workspace of its own for this call (allocated and freed here; pass one to
/// make repeated calls allocation-free).
/// Example: `llm::gemm(c, a, b, 1.0f, 0.0f, llm::parallel::sequential{});  // c = a * b on this thread`
template <blas::backend Backend = blas::default_backend, mutable_dense_view<2> C, dense_view<2> A, dense_view<2> B,
          parallel::policy Exec>
    requires std::same_as<view_element_t<C>, float>
void gemm(C&& c, A&& a, B&& b, float alpha, float beta, Exec&& exec) {
    llm::workspace ws;
    gemm<Backend>(c, a, b, alpha, beta, ws, exec);
}

/// C = A * B with an epilogue fused into the store of C (the own backend): ep(i, j, p, count)
/// is called once for every stretch of a row of C as the micro-kernel stores it (row i,
/// columns j .. j + count - 1, p pointing at those count fp32 values of C), at the last step
/// over k, while the tile is in L1; it may change the values in place (bias, activation) or
/// write them elsewhere (rounded to bf16 into the real output), so neither costs a second
/// pass over C. Every element of C is passed exactly once; calls may come from several
/// threads at once (on disjoint stretches). Shapes and elements as llm::gemm; C must have
/// unit column stride (llm::error otherwise).
/// Example: `llm::gemm_epilogue(y, x, llm::transpose(w, 0, 1), [&](std::size_t, std::size_t j, float* p, std::size_t n) { for (std::size_t t = 0; t < n; ++t) p[t] += bias[j + t]; }, ws, pool);`
template <mutable_dense_view<2> C, dense_view<2> A, dense_view<2> B, class Ep, parallel::policy Exec>
    requires std::same_as<view_element_t<C>, float> &&
             std::invocable<const Ep&, std::size_t, std::size_t, float*, std::size_t>
void gemm_epilogue(C&& c, A&& a, B&& b, const Ep& ep, llm::workspace& ws, Exec&& exec) {
    using TA = std::remove_const_t<view_element_t<A>>;
    using TB = std::remove_const_t<view_element_t<B>>;
    const strided_view<float, 2> mc = to_kernel_view<2>(c);
    const strided_view<const TA, 2> ma = to_kernel_view<2>(a);
    const strided_view<const TB, 2> mb = to_kernel_view<2>(b);
    blas::detail::check_shapes("gemm_epilogue", ma, mb, mc);
    blas::detail::check_no_overlap("gemm_epilogue", "A", ma, mc);
    blas::detail::check_no_overlap("gemm_epilogue", "B", mb, mc);
    llm::check(mc.stride(1) == 1 || mc.extent(1) <= 1, "gemm_epilogue", ": C has column stride ", mc.stride(1),
               "; the epilogue needs unit column stride (rows contiguous)");
    blas::default_backend::run_epilogue(mc, ma, mb, ep, ws, exec);
}

/// As the first form on llm::parallel::default_pool().
/// Example: `llm::gemm(c, a, b, 1.0f, 1.0f, ws);  // c += a * b, scratch from ws`
template <blas::backend Backend = blas::default_backend, mutable_dense_view<2> C, dense_view<2> A, dense_view<2> B>
    requires std::same_as<view_element_t<C>, float>
void gemm(C&& c, A&& a, B&& b, float alpha, float beta, llm::workspace& ws) {
    gemm<Backend>(c, a, b, alpha, beta, ws, parallel::default_pool());
}

/// As the first form on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::gemm(c, a, b);  // c = a * b`
template <blas::backend Backend = blas::default_backend, mutable_dense_view<2> C, dense_view<2> A, dense_view<2> B>
    requires std::same_as<view_element_t<C>, float>
void gemm(C&& c, A&& a, B&& b, float alpha = 1.0f, float beta = 0.0f) {
    llm::workspace ws;
    gemm<Backend>(c, a, b, alpha, beta, ws, parallel::default_pool());
}

}  // namespace llm
