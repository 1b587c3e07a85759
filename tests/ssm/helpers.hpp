// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the ssm tests: random tensors, poisoning, relative norms, the SIMD backends to run on.
#pragma once

#include "../support/numeric.hpp"

#include <llm/simd/simd.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/views.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>

namespace ssm_test {

using backends = llm_test::kernel_backends;

template <class T, std::size_t R>
using tensor = llm::tensor<T, llm::dims<R>>;

/// A tensor of the given sizes filled with normal(mean, sigma) values (rounded to T).
template <class T, class... Sz>
tensor<T, sizeof...(Sz)> randn(std::uint64_t seed, float mean, float sigma, Sz... sizes) {
    tensor<T, sizeof...(Sz)> t(static_cast<std::size_t>(sizes)...);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(mean, sigma);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = T(nd(rng));
    }
    return t;
}

/// A tensor of uniform(lo, hi) values.
template <class T, class... Sz>
tensor<T, sizeof...(Sz)> uniform(std::uint64_t seed, float lo, float hi, Sz... sizes) {
    tensor<T, sizeof...(Sz)> t(static_cast<std::size_t>(sizes)...);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> ud(lo, hi);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = T(ud(rng));
    }
    return t;
}

/// A copy of t with elements converted to U.
template <class U, class Tn>
tensor<U, Tn::rank()> convert(const Tn& t) {
    tensor<U, Tn::rank()> out(t.extents());
    for (std::size_t i = 0; i < t.size(); ++i) {
        out.data()[i] = static_cast<U>(t.data()[i]);
    }
    return out;
}

/// Fills every element with NaN (outputs are poisoned before a call that must overwrite them).
template <class T>
void poison(T& t) {
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = std::numeric_limits<std::remove_cvref_t<decltype(t.data()[0])>>::quiet_NaN();
    }
}

/// Fills every element with zero.
template <class T>
void zero(T& t) {
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = 0;
    }
}

/// ||a - b|| / max(||b||, 1e-3): relative, absolute below 1e-3 (gradients that are exactly 0).
template <class A, class B>
double rel(const A& a, const B& b) {
    return llm_test::rel_norm(a, b, 1e-3);
}

/// Largest |a_i - b_i| / (|b_i| + floor).
template <class A, class B>
double max_rel(const A& a, const B& b, double floor) {
    double worst = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double x = static_cast<double>(a.data()[i]), y = static_cast<double>(b.data()[i]);
        if (!std::isfinite(x)) {
            return std::numeric_limits<double>::infinity();
        }
        worst = std::max(worst, std::fabs(x - y) / (std::fabs(y) + floor));
    }
    return worst;
}

}  // namespace ssm_test
