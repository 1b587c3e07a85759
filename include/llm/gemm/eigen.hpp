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
std::vector<float> dense_copy(const strided_view<T, 2>& m) {
    const char* what = "the dense fp32 copy of an operand (rows * cols)";
    const std::size_t rows = m.extent(0), cols = m.extent(1);
    std::vector<float> out = checked_vector<float>(checked_mul(rows, cols, "gemm", what), "gemm", what);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            out[i * cols + j] = to_float(m(i, j));
        }
    }
    return out;
}

/// Calls f with an Eigen::Map of `m`: row-major or column-major with an outer stride. Only
/// these two map types exist, so the Eigen product is instantiated for 4 operand orders.
template <class F>
void with_eigen_map(const strided_view<const float, 2>& m, F&& f) {
    using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using col_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
    const auto rows = static_cast<Eigen::Index>(m.extent(0));
    const auto cols = static_cast<Eigen::Index>(m.extent(1));
    if (m.stride(1) == 1) {
        f(Eigen::Map<const row_major, 0, Eigen::OuterStride<>>(
            m.data(), rows, cols, Eigen::OuterStride<>(static_cast<Eigen::Index>(std::max(m.stride(0), m.extent(1))))));
    } else {
        f(Eigen::Map<const col_major, 0, Eigen::OuterStride<>>(
            m.data(), rows, cols, Eigen::OuterStride<>(static_cast<Eigen::Index>(std::max(m.stride(1), m.extent(0))))));
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
    static void run(strided_view<float, 2> c, strided_view<TA, 2> a, strided_view<TB, 2> b, float alpha, float beta,
                    llm::workspace& /*ws*/, Exec& /*exec*/) {
        if (!c.empty()) {
            // C^T = B^T A^T keeps C row-major, so it is written in place.
            detail::oriented(detail::column_major(c) && c.extent(1) > 1, c, a, b,
                             [&](auto oc, auto oa, auto ob) { run_row_major(oc, oa, ob, alpha, beta); });
        }
    }

private:
    /// The product once C has a unit column stride where it can (C^T = B^T A^T otherwise).
    template <class TA, class TB>
    static void run_row_major(strided_view<float, 2> c, strided_view<TA, 2> a, strided_view<TB, 2> b, float alpha,
                              float beta) {
        std::vector<float> a_copy, b_copy, c_copy;
        auto mapped = [](const auto& m, std::vector<float>& copy) {
            using T = std::remove_const_t<typename std::remove_cvref_t<decltype(m)>::element_type>;
            const std::size_t rows = m.extent(0), cols = m.extent(1);
            if constexpr (std::is_same_v<T, float>) {
                if (m.stride(1) == 1 || m.stride(0) == 1) {
                    return strided_view<const float, 2>(m);
                }
            }
            copy = detail::dense_copy(m);
            return strided_view<const float, 2>(copy.data(), dims<2>(rows, cols), dims<2>(cols, 1));
        };
        const strided_view<const float, 2> fa = mapped(a, a_copy);
        const strided_view<const float, 2> fb = mapped(b, b_copy);
        const std::size_t rows = c.extent(0), cols = c.extent(1);
        strided_view<float, 2> fc = c;
        if (c.stride(1) != 1) {
            c_copy = detail::dense_copy(c);
            fc = strided_view<float, 2>(c_copy.data(), dims<2>(rows, cols), dims<2>(cols, 1));
        }
        using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        Eigen::Map<row_major, 0, Eigen::OuterStride<>> out(
            fc.data(), static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
            Eigen::OuterStride<>(static_cast<Eigen::Index>(std::max(fc.stride(0), cols))));
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
            for (std::size_t i = 0; i < rows; ++i) {
                for (std::size_t j = 0; j < cols; ++j) {
                    c(i, j) = c_copy[i * cols + j];
                }
            }
        }
    }
};

}  // namespace llm::blas
#endif
