// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the attention tests: random tensors, relative norms, the SIMD backends to test.
#pragma once

#include "../support/numeric.hpp"

#include <llm/simd/simd.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <tuple>

namespace attn_test {

using backends = llm_test::kernel_backends;

using t4f = llm::tensor<float, llm::dims<4>>;
using t4d = llm::tensor<double, llm::dims<4>>;
using t3f = llm::tensor<float, llm::dims<3>>;
using t3d = llm::tensor<double, llm::dims<3>>;

template <class T>
llm::tensor<T, llm::dims<4>> random4(std::size_t a, std::size_t b, std::size_t c, std::size_t d, std::uint64_t seed,
                                     float sigma = 1.0f) {
    llm::tensor<T, llm::dims<4>> t(a, b, c, d);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, sigma);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = T(nd(rng));
    }
    return t;
}

template <class T>
void poison(T& t) {
    using E = std::remove_cvref_t<decltype(*t.data())>;
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = E(std::numeric_limits<float>::quiet_NaN());
    }
}

/// ||a - b|| / max(||b||, 1) over all elements (as doubles); entries where both are -inf count as
/// equal. The floor of 1 makes it an absolute norm where the exact result is 0 (dq and dk of a
/// row that sees one key: P = 1, dS = 0), where a relative norm would divide rounding by 0.
template <class A, class B>
double rel_norm(const A& a, const B& b) {
    return llm_test::rel_norm(a, b, 1.0);
}

/// Largest |a - b| over finite entries; an entry that is -inf in one must be -inf in both (else +inf).
template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
    double worst = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double x = static_cast<double>(a.data()[i]);
        const double y = static_cast<double>(b.data()[i]);
        if (std::isinf(x) || std::isinf(y)) {
            if (x != y) {
                return std::numeric_limits<double>::infinity();
            }
            continue;
        }
        worst = std::max(worst, std::abs(x - y));
    }
    return worst;
}

}  // namespace attn_test
