// SPDX-License-Identifier: Apache-2.0
// The (bands, rows) choice for a Jaccard threshold by datasketch's integral method.
#pragma once

#include <llm/core/error.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>

namespace llm::data {

/// LSH banding: a signature is cut into `bands` bands of `rows` values; two documents are
/// candidates when any band is identical. bands * rows <= num_perm.
struct lsh_params {
    std::size_t bands = 0;  ///< number of bands b
    std::size_t rows = 0;   ///< values per band r
    /// Equal when bands and rows are.
    friend bool operator==(const lsh_params&, const lsh_params&) = default;
};

namespace detail {

/// Nodes and weights of 16-point Gauss-Legendre on [-1, 1] (Newton on P_16, computed once).
struct gauss_legendre16 {
    std::array<double, 16> x{}, w{};
    gauss_legendre16() {
        constexpr int n = 16;
        const double pi = std::acos(-1.0);
        for (int i = 0; i < n; ++i) {
            double z = std::cos(pi * (i + 0.75) / (n + 0.5));
            double dp = 0;
            for (int it = 0; it < 100; ++it) {
                double p0 = 1, p1 = z;
                for (int k = 2; k <= n; ++k) {
                    const double p2 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p0) / k;
                    p0 = p1;
                    p1 = p2;
                }
                dp = n * (z * p1 - p0) / (z * z - 1);
                const double dz = p1 / dp;
                z -= dz;
                if (std::abs(dz) < 1e-16) break;
            }
            x[i] = z;
            w[i] = 2 / ((1 - z * z) * dp * dp);
        }
    }
};

/// Integral of f over [lo, hi]: 64 panels of 16-point Gauss-Legendre. The integrands here
/// are polynomials of degree rows*bands <= num_perm; this is exact to ~1e-15, well inside
/// the ~1.5e-8 tolerance of scipy's quad that datasketch uses, so the argmin agrees unless
/// two (b, r) pairs tie within that tolerance.
template <class F>
double integrate(F&& f, double lo, double hi) {
    static const gauss_legendre16 gl;
    constexpr int panels = 64;
    const double width = (hi - lo) / panels;
    double total = 0;
    for (int p = 0; p < panels; ++p) {
        const double mid = lo + (p + 0.5) * width;
        double s = 0;
        for (int i = 0; i < 16; ++i) s += gl.w[i] * f(mid + 0.5 * width * gl.x[i]);
        total += s * 0.5 * width;
    }
    return total;
}

}  // namespace detail

/// The (bands, rows) with bands * rows <= num_perm minimising
/// fp_weight * FP + fn_weight * FN, where FP = integral over [0, threshold] of the candidate
/// probability 1 - (1 - s^r)^b and FN = integral over [threshold, 1] of its complement:
/// datasketch's `_optimal_param` (same search order, same strict `<`, so ties pick the same pair).
/// Example: `auto p = llm::data::optimal_params(0.8, 128);  // {9, 13}`
inline lsh_params optimal_params(double threshold, std::size_t num_perm, double fp_weight = 0.5, double fn_weight = 0.5) {
    llm::check(threshold > 0 && threshold < 1, "optimal_params: threshold = ", threshold, " must be in (0, 1)");
    llm::check(num_perm >= 1 && num_perm <= 4096, "optimal_params: num_perm = ", num_perm, " must be in [1, 4096]");
    llm::check(fp_weight >= 0 && fn_weight >= 0 && fp_weight + fn_weight > 0, "optimal_params: weights (", fp_weight,
               ", ", fn_weight, ") must be >= 0 and not both 0");
    lsh_params best{0, 0};
    double best_error = std::numeric_limits<double>::infinity();
    for (std::size_t b = 1; b <= num_perm; ++b) {
        for (std::size_t r = 1; r <= num_perm / b; ++r) {
            const double bd = static_cast<double>(b), rd = static_cast<double>(r);
            const double fp = detail::integrate([&](double s) { return 1 - std::pow(1 - std::pow(s, rd), bd); }, 0.0, threshold);
            const double fn = detail::integrate([&](double s) { return std::pow(1 - std::pow(s, rd), bd); }, threshold, 1.0);
            const double error = fp * fp_weight + fn * fn_weight;
            if (error < best_error) {
                best_error = error;
                best = {b, r};
            }
        }
    }
    return best;
}

}  // namespace llm::data
