// SPDX-License-Identifier: Apache-2.0
// The reference GEMM backend: the plainest triple loop with double accumulation, the oracle for tests.
#pragma once

#include <llm/gemm/matrix.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/concepts.hpp>

#include <cstddef>

namespace llm::blas {

/// Backend policy: C = alpha * A * B + beta * C by the textbook triple loop, each dot product
/// accumulated in double. Never the default; it documents the maths and is what tests compare
/// the fast backends against. Single-threaded whatever executor it is given.
/// Example: `llm::gemm<llm::blas::reference>(c, a, b);`
struct reference {
    /// c: m x n, a: m x k, b: k x n (shapes checked by the caller). beta == 0 overwrites C
    /// without reading it (BLAS semantics: NaN in C does not propagate). Uses no workspace.
    template <float_or_bf16 TA, float_or_bf16 TB, parallel::policy Exec>
    static void run(strided_view<float, 2> c, strided_view<TA, 2> a, strided_view<TB, 2> b, float alpha, float beta,
                    llm::workspace& /*ws*/, Exec& /*exec*/) {
        // Extents read once: an unoptimised (sanitizer) build does not hoist them out of the loops.
        const std::size_t m = c.extent(0), n = c.extent(1), k = a.extent(1);
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                double sum = 0.0;
                for (std::size_t p = 0; p < k; ++p) {
                    sum += static_cast<double>(detail::to_float(a(i, p))) * static_cast<double>(detail::to_float(b(p, j)));
                }
                double out = static_cast<double>(alpha) * sum;
                if (beta != 0.0f) {
                    out += static_cast<double>(beta) * static_cast<double>(c(i, j));
                }
                c(i, j) = static_cast<float>(out);
            }
        }
    }
};

}  // namespace llm::blas
