// SPDX-License-Identifier: Apache-2.0
// llm::gemm: C = alpha * A * B + beta * C on tensor views of any layout, with the backend as a policy.
#pragma once

#include <llm/core/error.hpp>
#include <llm/gemm/cpu.hpp>
#include <llm/gemm/matrix.hpp>
#include <llm/gemm/reference.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

// The module's namespace is llm::blas (backends, matrix descriptors, blocking) because the
// entry point itself is the function llm::gemm, and a namespace cannot share its name.
namespace llm::blas {

/// A GEMM backend policy: a type with a static `run(matrix_ref<TA>, matrix_ref<TB>,
/// matrix_ref<float>, alpha, beta, executor&)` for TA, TB in {float, bf16}. Provided:
/// llm::blas::own<> (default), llm::blas::reference, llm::blas::eigen (<llm/gemm/eigen.hpp>).
template <class B>
concept backend = requires(matrix_ref<const float> f, matrix_ref<const llm::bf16> h, matrix_ref<float> c,
                           parallel::sequential& seq) {
    B::run(f, f, c, 1.0f, 0.0f, seq);
    B::run(h, h, c, 1.0f, 0.0f, seq);
};

/// The backend llm::gemm uses when none is named.
using default_backend = own<>;

}  // namespace llm::blas

namespace llm {

/// C = alpha * A * B + beta * C.
/// Shapes: A is m x k, B is k x n, C is m x n; any strides, so a transposed operand is just
/// llm::transpose(view, 0, 1). Elements: A and B fp32 or bf16 (widened exactly, accumulated
/// in fp32), C fp32. beta == 0 overwrites C without reading it. k == 0 gives C = beta * C;
/// m == 0 or n == 0 does nothing. C must not overlap A or B: llm::error when an element of C
/// shares memory with A or B; disjoint blocks of one buffer (other rows, other columns) are fine.
/// Backend: the algorithm policy (llm::blas::own<> by default; blas::reference; blas::eigen).
/// A, B, C: rank-2 tensors or tensor views (concept llm::blas::matrix).
/// Exec: llm::parallel::sequential or a llm::parallel::thread_pool (default_pool() if omitted).
/// Example: `llm::gemm(a, llm::transpose(w, 0, 1), y);  // y = a * w^T`
template <blas::backend Backend = blas::default_backend, class A, class B, class C, class Exec>
    requires blas::matrix<std::remove_reference_t<A>> && blas::matrix<std::remove_reference_t<B>> &&
             blas::matrix<std::remove_reference_t<C>> && requires(Exec& e) { e.size(); }
void gemm(A&& a, B&& b, C&& c, float alpha, float beta, Exec& exec) {
    using TA = blas::element_t<std::remove_reference_t<A>>;
    using TB = blas::element_t<std::remove_reference_t<B>>;
    using TC = blas::element_t<std::remove_reference_t<C>>;
    static_assert(blas::input_element<TA>, "llm::gemm: A must hold float or llm::bf16");
    static_assert(blas::input_element<TB>, "llm::gemm: B must hold float or llm::bf16");
    static_assert(std::same_as<TC, float>, "llm::gemm: C must be a mutable fp32 matrix (float, not const)");
    const auto ma = blas::as_matrix(a);
    const auto mb = blas::as_matrix(b);
    const auto mc = blas::as_matrix(c);
    blas::detail::check_shapes("gemm", ma, mb, mc);
    blas::detail::check_no_overlap("gemm", "A", ma, mc);
    blas::detail::check_no_overlap("gemm", "B", mb, mc);
    Backend::run(blas::matrix_ref<const std::remove_const_t<TA>>{ma.data, ma.rows, ma.cols, ma.rs, ma.cs},
                 blas::matrix_ref<const std::remove_const_t<TB>>{mb.data, mb.rows, mb.cols, mb.rs, mb.cs}, mc, alpha,
                 beta, exec);
}

/// As above on llm::parallel::default_pool(). Example: `llm::gemm(a, b, c);  // c = a * b`
template <blas::backend Backend = blas::default_backend, class A, class B, class C>
    requires blas::matrix<std::remove_reference_t<A>> && blas::matrix<std::remove_reference_t<B>> &&
             blas::matrix<std::remove_reference_t<C>>
void gemm(A&& a, B&& b, C&& c, float alpha = 1.0f, float beta = 0.0f) {
    gemm<Backend>(a, b, c, alpha, beta, parallel::default_pool());
}

}  // namespace llm
