// SPDX-License-Identifier: Apache-2.0
// The bf16 GEMM paths' check (tests/gemm/bf16_dot.cpp, tests/gemm/amx.cpp, tests/gemm_amx): C = alpha A B + beta C
// against the double reference, per element within the derived bound stated in bf16_dot.cpp.
#pragma once

#include "helpers.hpp"

#include <llm/core/bf16.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <span>
#include <vector>

namespace gemm_test {

constexpr double u = 0x1p-24;

// Reference of |A| |B| (the bound's scale) and of A B, both in double.
template <class VA, class VB>
void reference_abs(std::vector<double>& ref, std::vector<double>& mag, const VA& a, const VB& b) {
    const std::size_t m = a.extent(0), k = a.extent(1), n = b.extent(1);
    ref.assign(m * n, 0.0);
    mag.assign(m * n, 0.0);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0.0, t = 0.0;
            for (std::size_t p = 0; p < k; ++p) {
                const double x = static_cast<double>(static_cast<float>(a(i, p))) * static_cast<float>(b(p, j));
                s += x;
                t += std::abs(x);
            }
            ref[i * n + j] = s;
            mag[i * n + j] = t;
        }
    }
}

// One randomized case: C = alpha A B + beta C by Backend against the double reference, per
// element within the bound above. kc_steps: k steps per KC block of the path that runs.
template <class Backend, class TA, class TB, class Exec>
void check_case(std::size_t m, std::size_t k, std::size_t n, layout_kind la, layout_kind lb, layout_kind lc, float alpha,
                float beta, std::size_t kc_steps, Exec& exec, std::mt19937& rng, bool round_a = false) {
    auto a = make_operand<TA>(m, k, la, rng);
    auto b = make_operand<TB>(k, n, lb, rng);
    auto c = make_operand<float>(m, n, lc, rng, beta == 0.0f);
    // The reference sees A as the path does: rounded to bf16 when round_a.
    llm::tensor<llm::bf16, llm::dims<2>> ar(m, k);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t p = 0; p < k; ++p) {
            ar(i, p) = llm::bf16(static_cast<float>(a.view(i, p)));
        }
    }
    std::vector<double> ref, mag;
    if (round_a) {
        reference_abs(ref, mag, ar, b.view);
    } else {
        reference_abs(ref, mag, a.view, b.view);
    }
    std::vector<float> c0(m * n);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            c0[i * n + j] = beta == 0.0f ? 0.0f : c.view(i, j);
        }
    }
    llm::gemm<Backend>(c.view, a.view, b.view, alpha, beta, exec);
    const std::size_t blocks = (k + kc_steps - 1) / kc_steps;
    const double nr = static_cast<double>(k + 3 * blocks + 1);
    const double gamma = nr * u / (1.0 - nr * u);
    std::size_t bad = 0;
    double worst = 0.0;
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            const double want = alpha * ref[i * n + j] + static_cast<double>(beta) * c0[i * n + j];
            const double bound = gamma * (std::abs(alpha) * mag[i * n + j] + std::abs(beta * c0[i * n + j]));
            const double err = std::abs(static_cast<double>(c.view(i, j)) - want);
            bad += !(err <= bound);
            worst = std::max(worst, bound > 0 ? err / bound : err);
        }
    }
    INFO("m=", m, " k=", k, " n=", n, " layouts ", int(la), int(lb), int(lc), " alpha=", alpha, " beta=", beta,
         " worst err/bound=", worst);
    CHECK(bad == 0);
}

// Every (m, n, k) of three size lists with random A and B layouts (drawn from rng) and the case's
// index: f(m, n, k, la, lb, index).
template <class F>
void for_each_size(std::span<const std::size_t> ms, std::span<const std::size_t> ns, std::span<const std::size_t> ks,
                   std::mt19937& rng, F f) {
    std::size_t index = 0;
    for (const std::size_t m : ms) {
        for (const std::size_t n : ns) {
            for (const std::size_t k : ks) {
                const auto la = all_layouts[rng() % 4];
                const auto lb = all_layouts[rng() % 4];
                f(m, n, k, la, lb, index++);
            }
        }
    }
}

}  // namespace gemm_test
