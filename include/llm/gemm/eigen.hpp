// SPDX-License-Identifier: Apache-2.0
// The Eigen GEMM backend (when LLM_HAS_EIGEN): strided matrices mapped onto Eigen's own blocked product.
#pragma once

#include <llm/config.hpp>
#include <llm/core/checked.hpp>
#include <llm/gemm/matrix.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/concepts.hpp>

#if LLM_HAS_EIGEN
// Note for -Werror builds with GCC 12: Eigen's AVX-512 packing trips a false
// -Wmaybe-uninitialized inside GCC's own intrinsics headers (GCC PR 105593). It can only be
// silenced by a `#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"` placed before the
// first include of the translation unit (see tests/gemm/eigen.cpp).
#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace llm::blas {
namespace detail {

/// Dense row-major fp32 copy of any matrix (bf16 widened, arbitrary strides gathered). A
/// broadcast operand (stride 0) may claim any extents, so its size is checked for llm::gemm.
template <class T>
std::vector<float> dense_copy(const matrix_ref<T>& m) {
    const char* what = "the dense fp32 copy of an operand (rows * cols)";
    std::vector<float> out = checked_vector<float>(checked_mul(m.rows, m.cols, "gemm", what), "gemm", what);
    for (std::size_t i = 0; i < m.rows; ++i) {
        for (std::size_t j = 0; j < m.cols; ++j) {
            out[i * m.cols + j] = to_float(m(i, j));
        }
    }
    return out;
}

/// Calls f with an Eigen::Map of `m`: row-major or column-major with an outer stride. Only
/// these two map types exist, so the Eigen product is instantiated for 4 operand orders.
template <class F>
void with_eigen_map(const matrix_ref<const float>& m, F&& f) {
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using col_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
    const auto rows = static_cast<Eigen::Index>(m.rows);
    const auto cols = static_cast<Eigen::Index>(m.cols);
    if (m.cs == 1) {
        f(Eigen::Map<const row_major, 0, Eigen::OuterStride<>>(m.data, rows, cols,
                                                              Eigen::OuterStride<>(static_cast<Eigen::Index>(std::max(m.rs, m.cols)))));
    } else {
        f(Eigen::Map<const col_major, 0, Eigen::OuterStride<>>(m.data, rows, cols,
                                                              Eigen::OuterStride<>(static_cast<Eigen::Index>(std::max(m.cs, m.rows)))));
    }
}

}  // namespace detail

/// Backend policy: Eigen's GEMM (its own packing and kernels). Operands with a unit stride
/// are mapped in place; bf16 or fully strided operands are first copied to dense fp32.
/// Threads: Eigen's own (OpenMP, Eigen::setNbThreads), not the executor passed to llm::gemm.
/// Example: `llm::gemm<llm::blas::eigen>(c, a, b);`
struct eigen {
    /// c = alpha * a * b + beta * c through Eigen; `exec` is unused (Eigen threads itself), and
    /// so is `ws` (the dense copies of bf16 or fully strided operands are allocated per call).
    template <float_or_bf16 TA, float_or_bf16 TB, parallel::policy Exec>
    static void run(matrix_ref<float> c, matrix_ref<TA> a, matrix_ref<TB> b, float alpha, float beta, llm::workspace& ws,
                    Exec& exec) {
        if (c.rows == 0 || c.cols == 0) {
            return;
        }
        if (c.cs != 1 && c.rs == 1 && c.cols > 1) {
            run(c.t(), b.t(), a.t(), alpha, beta, ws, exec);  // C^T = B^T A^T: keep C row-major
            return;
        }
        std::vector<float> a_copy, b_copy, c_copy;
        auto mapped = [](const auto& m, std::vector<float>& copy) {
            using T = std::remove_const_t<std::remove_pointer_t<decltype(m.data)>>;
            if constexpr (std::is_same_v<T, float>) {
                if (m.cs == 1 || m.rs == 1) {
                    return matrix_ref<const float>{m.data, m.rows, m.cols, m.rs, m.cs};
                }
            }
            copy = detail::dense_copy(m);
            return matrix_ref<const float>{copy.data(), m.rows, m.cols, m.cols, 1};
        };
        const matrix_ref<const float> fa = mapped(a, a_copy);
        const matrix_ref<const float> fb = mapped(b, b_copy);
        matrix_ref<float> fc = c;
        if (c.cs != 1 && c.rows > 0) {
            c_copy = detail::dense_copy(c);
            fc = {c_copy.data(), c.rows, c.cols, c.cols, 1};
        }
        using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        Eigen::Map<row_major, 0, Eigen::OuterStride<>> out(fc.data, static_cast<Eigen::Index>(fc.rows),
                                                           static_cast<Eigen::Index>(fc.cols),
                                                           Eigen::OuterStride<>(static_cast<Eigen::Index>(std::max(fc.rs, fc.cols))));
        // One product form (+=) whatever beta is, so Eigen instantiates its GEMM once per
        // operand order; beta == 0 zeroes C first instead of scaling it (NaN must not survive).
        if (beta == 0.0f) {
            out.setZero();
        } else if (beta != 1.0f) {
            out *= beta;
        }
        detail::with_eigen_map(fa, [&](const auto& ea) {
            detail::with_eigen_map(fb, [&](const auto& eb) { out.noalias() += alpha * (ea * eb); });
        });
        if (!c_copy.empty()) {
            for (std::size_t i = 0; i < c.rows; ++i) {
                for (std::size_t j = 0; j < c.cols; ++j) {
                    c(i, j) = c_copy[i * c.cols + j];
                }
            }
        }
    }
};

}  // namespace llm::blas
#endif
