// SPDX-License-Identifier: Apache-2.0
// Test helpers shared by the kernel tests: the SIMD backends to run on, relative norms, finite differences.
#pragma once

#include <llm/simd/simd.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

namespace llm_test {

/// Backends every kernel test runs on: each one compiled in (default_backend is one of them).
using kernel_backends = std::tuple<llm::simd::scalar
#if LLM_HAS_XSIMD
                                   ,
                                   llm::simd::xsimd_backend
#endif
#if LLM_HAS_HWY
                                   ,
                                   llm::simd::highway
#endif
                                   >;

namespace detail {
template <class T>
double as_double(const T& x) {
    if constexpr (std::is_arithmetic_v<T>) {
        return static_cast<double>(x);
    } else {
        return static_cast<double>(static_cast<float>(x));  // llm::bf16, llm::f16, ...
    }
}
}  // namespace detail

/// ||a - b|| / max(||b||, floor) over b.size() elements (anything with data() and size(),
/// elements read as double). An entry that is the same infinity in a and b counts as equal
/// (masked scores); any other non-finite entry of a makes the result +inf, so the check fails.
/// `floor` turns the norm absolute where the exact result is (near) 0.
template <class A, class B>
double rel_norm(const A& a, const B& b, double floor = 1e-300) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double x = detail::as_double(a.data()[i]);
        const double y = detail::as_double(b.data()[i]);
        if (std::isinf(x) && x == y) {
            continue;
        }
        if (!std::isfinite(x)) {
            return std::numeric_limits<double>::infinity();
        }
        num += (x - y) * (x - y);
        den += std::isfinite(y) ? y * y : 0.0;
    }
    return std::sqrt(num) / std::max(std::sqrt(den), floor);
}

/// Central finite differences of a scalar function f at x (double): df/dx_i for every i, with
/// step h, or h * max(1, |x_i|) when `relative_step` (for inputs spanning many magnitudes).
/// Truncation error O(h^2), rounding error ~ 1e-16 / h relative to f.
inline std::vector<double> finite_difference(const std::function<double(const std::vector<double>&)>& f,
                                             std::vector<double> x, double h = 1e-5, bool relative_step = false) {
    std::vector<double> g(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double keep = x[i];
        const double step = relative_step ? h * std::max(1.0, std::fabs(keep)) : h;
        x[i] = keep + step;
        const double up = f(x);
        x[i] = keep - step;
        const double down = f(x);
        x[i] = keep;
        g[i] = (up - down) / (2.0 * step);
    }
    return g;
}

}  // namespace llm_test
