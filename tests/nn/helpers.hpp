// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the NN tests: random and poisoned tensors, double copies, relative errors, finite differences.
#pragma once

#include "../support/numeric.hpp"

#include <llm/core/bf16.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/tensor/kernel_view.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

namespace nn_test {

/// An element type on a SIMD backend: the kernel tests run on every (fp32, bf16) x backend pair.
template <class T, class S>
struct elem_on {
    using elem = T;
    using simd = S;
};
template <class Backends>
struct every_elem_on;
template <class... S>
struct every_elem_on<std::tuple<S...>> {
    using type = std::tuple<elem_on<float, S>..., elem_on<llm::bf16, S>...>;
};
/// Every compiled SIMD backend (llm_test::kernel_backends).
using backends = llm_test::kernel_backends;
/// fp32 and bf16 on every compiled SIMD backend.
using elem_backend_cases = every_elem_on<backends>::type;

using mat_f = llm::tensor<float, llm::dims<2>>;
using mat_h = llm::tensor<llm::bf16, llm::dims<2>>;
using vec_f = llm::tensor<float, llm::dims<1>>;

/// Awkward widths: 1, below/above one AVX-512 vector, 63/65 around 4 vectors, a long row.
constexpr std::size_t awkward_cols[] = {1, 7, 16, 63, 65, 1000};
constexpr std::size_t awkward_rows[] = {1, 7, 65};

/// Tolerances as relative norms ||out - ref|| / ||ref||. fp32: the facade's exp has ~1e-7
/// relative error and sums of 1000 terms add ~1e-6, so 1e-5 passes with margin and any
/// wrong element (error ~1) fails. bf16 storage: each output is rounded to 8 bits of
/// mantissa (relative error <= 2^-9 = 2e-3 per element), so 5e-3 on the norm.
constexpr double tol_f32 = 1e-5;
constexpr double tol_bf16 = 5e-3;
template <class T>
constexpr double tolerance = std::is_same_v<T, float> ? tol_f32 : tol_bf16;

template <class T>
llm::tensor<T, llm::dims<2>> random_matrix(std::size_t rows, std::size_t cols, std::mt19937& rng, float lo = -2.0f,
                                           float hi = 2.0f) {
    llm::tensor<T, llm::dims<2>> t(rows, cols);
    std::uniform_real_distribution<float> dist(lo, hi);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            t(i, j) = T(dist(rng));
        }
    }
    return t;
}

template <class T>
llm::tensor<T, llm::dims<1>> random_vector(std::size_t n, std::mt19937& rng, float lo = 0.5f, float hi = 1.5f) {
    llm::tensor<T, llm::dims<1>> t(n);
    std::uniform_real_distribution<float> dist(lo, hi);
    for (std::size_t i = 0; i < n; ++i) {
        t(i) = T(dist(rng));
    }
    return t;
}

/// A tensor filled with NaN: an output that must be fully overwritten.
template <class T, std::size_t R, class... Sizes>
llm::tensor<T, llm::dims<R>> poisoned(Sizes... sizes) {
    llm::tensor<T, llm::dims<R>> t(sizes...);
    llm::fill(t, T(std::numeric_limits<float>::quiet_NaN()));
    return t;
}

/// Every element of a tensor, in row-major order, as double.
template <class V>
std::vector<double> to_double(const V& v) {
    std::vector<double> out;
    if constexpr (V::rank() == 1) {
        for (std::size_t i = 0; i < v.extent(0); ++i) {
            out.push_back(static_cast<double>(static_cast<float>(v(i))));
        }
    } else if constexpr (V::rank() == 2) {
        for (std::size_t i = 0; i < v.extent(0); ++i) {
            for (std::size_t j = 0; j < v.extent(1); ++j) {
                out.push_back(static_cast<double>(static_cast<float>(v(i, j))));
            }
        }
    } else {
        for (std::size_t i = 0; i < v.extent(0); ++i) {
            for (std::size_t j = 0; j < v.extent(1); ++j) {
                for (std::size_t k = 0; k < v.extent(2); ++k) {
                    out.push_back(static_cast<double>(static_cast<float>(v(i, j, k))));
                }
            }
        }
    }
    return out;
}

/// ||x - ref|| / ||ref|| (absolute when ref is 0); NaN anywhere gives +inf, so it fails.
inline double rel_error(const std::vector<double>& x, const std::vector<double>& ref) {
    REQUIRE(x.size() == ref.size());
    double num = 0.0, den = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!std::isfinite(x[i])) {
            return std::numeric_limits<double>::infinity();
        }
        num += (x[i] - ref[i]) * (x[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

/// ||x - ref|| / max(||ref||, ||scale||): the error relative to the size of the problem's
/// input. For activations, whose outputs can be far smaller than their inputs (gelu(-10) is
/// 1e-22, which fp32 and PyTorch give as 0), an error of 1e-22 there is not a relative
/// error of 1; with |f(x)| <= |x| and |f'(x)| <= 1.2, scaling by the input keeps the bound tight.
inline double rel_error_scaled(const std::vector<double>& x, const std::vector<double>& ref, const std::vector<double>& scale) {
    REQUIRE(x.size() == ref.size());
    double num = 0.0, r = 0.0, s = 0.0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        if (!std::isfinite(x[i])) {
            return std::numeric_limits<double>::infinity();
        }
        num += (x[i] - ref[i]) * (x[i] - ref[i]);
        r += ref[i] * ref[i];
        s += scale[i] * scale[i];
    }
    return std::sqrt(num / std::max({r, s, std::numeric_limits<double>::min()}));
}

using llm_test::finite_difference;

/// Finite differences in double have truncation error O(h^2) ~ 1e-10 and rounding
/// error ~ 1e-16 / h = 1e-11 relative to the function: 1e-7 on the gradient norm is loose
/// enough for both and still catches any wrong term.
constexpr double tol_fd = 1e-7;

inline std::vector<double> random_doubles(std::size_t n, std::mt19937& rng, double lo = -2.0, double hi = 2.0) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<double> v(n);
    for (double& x : v) {
        x = dist(rng);
    }
    return v;
}

/// A std::vector seen as a row-major llm::strided_view of the given extents: what the
/// reference oracles (<llm/nn/reference.hpp>) take. view_of(v, rows, cols), view_of(v, n).
template <class T, class... Sizes>
llm::strided_view<T, sizeof...(Sizes)> view_of(std::vector<T>& v, Sizes... sizes) {
    return llm::to_kernel_view<sizeof...(Sizes)>(llm::tensor_view<T, llm::dims<sizeof...(Sizes)>>(v.data(), sizes...));
}
template <class T, class... Sizes>
llm::strided_view<const T, sizeof...(Sizes)> view_of(const std::vector<T>& v, Sizes... sizes) {
    return llm::to_kernel_view<sizeof...(Sizes)>(llm::tensor_view<const T, llm::dims<sizeof...(Sizes)>>(v.data(), sizes...));
}
/// A whole std::vector as a rank-1 view.
template <class T>
auto view_of(std::vector<T>& v) {
    return view_of(v, v.size());
}
template <class T>
auto view_of(const std::vector<T>& v) {
    return view_of(v, v.size());
}
/// A tensor's kernel view (the oracles take llm::strided_view): ids, targets, positions.
template <class V>
auto view_of(const V& t) -> decltype(llm::to_kernel_view<V::rank()>(t)) {
    return llm::to_kernel_view<V::rank()>(t);
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        s += a[i] * b[i];
    }
    return s;
}

}  // namespace nn_test
