// SPDX-License-Identifier: Apache-2.0
// Shared fixtures of the MoE tests: random tensors, a random layer, tolerance helpers.
#pragma once

#include <llm/moe/moe.hpp>
#include <llm/tensor/tensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace moe_test {

using t2f = llm::tensor<float, llm::dims<2>>;
using t3f = llm::tensor<float, llm::dims<3>>;
using t2i = llm::tensor<std::int32_t, llm::dims<2>>;

constexpr double u32 = 1.0 / (1 << 24);  // fp32 unit roundoff

inline void randomize(float* p, std::size_t n, std::mt19937& rng, float scale) {
    std::uniform_real_distribution<float> dist(-scale, scale);
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = dist(rng);
    }
}

inline t2f rand2(std::size_t a, std::size_t b, std::mt19937& rng, float scale = 1.0f) {
    t2f t(a, b);
    randomize(t.data(), t.size(), rng, scale);
    return t;
}

inline t3f rand3(std::size_t a, std::size_t b, std::size_t c, std::mt19937& rng, float scale = 1.0f) {
    t3f t(a, b, c);
    randomize(t.data(), t.size(), rng, scale);
    return t;
}

inline void poison(float* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = std::numeric_limits<float>::quiet_NaN();
    }
}

/// ||a - b|| / ||b|| over every element (normwise relative error, in double).
template <class A, class B>
double rel_norm(const A& a, const B& b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double dlt = double(a.data()[i]) - double(b.data()[i]);
        num += dlt * dlt;
        den += double(b.data()[i]) * double(b.data()[i]);
    }
    return std::sqrt(num / den);
}

/// A random MoE layer: E experts of width ff over d, optional shared experts of width fs.
struct layer {
    t2f gate;
    t3f w1, w3, w2;
    t2f sw1, sw3, sw2;
    layer(std::size_t E, std::size_t d, std::size_t ff, std::size_t fs, std::mt19937& rng)
        : gate(rand2(E, d, rng, 1.0f)), w1(rand3(E, ff, d, rng, 0.3f)), w3(rand3(E, ff, d, rng, 0.3f)),
          w2(rand3(E, d, ff, rng, 0.3f)), sw1(rand2(fs, d, rng, 0.3f)), sw3(rand2(fs, d, rng, 0.3f)),
          sw2(rand2(d, fs, rng, 0.3f)) {}
    [[nodiscard]] llm::moe::moe_weights weights() const {
        if (sw1.extent(0) == 0) {
            return llm::moe::make_moe_weights(gate, w1, w3, w2);
        }
        return llm::moe::make_moe_weights(gate, w1, w3, w2, sw1, sw3, sw2);
    }
};

/// Zeroed gradients shaped like a layer.
struct grads {
    t2f gate;
    t3f w1, w3, w2;
    t2f sw1, sw3, sw2;
    explicit grads(const layer& l)
        : gate(l.gate.extent(0), l.gate.extent(1)), w1(l.w1.extent(0), l.w1.extent(1), l.w1.extent(2)),
          w3(l.w3.extent(0), l.w3.extent(1), l.w3.extent(2)), w2(l.w2.extent(0), l.w2.extent(1), l.w2.extent(2)),
          sw1(l.sw1.extent(0), l.sw1.extent(1)), sw3(l.sw3.extent(0), l.sw3.extent(1)),
          sw2(l.sw2.extent(0), l.sw2.extent(1)) {}
    [[nodiscard]] llm::moe::moe_grads views() {
        if (sw1.extent(0) == 0) {
            return llm::moe::make_moe_grads(gate, w1, w3, w2);
        }
        return llm::moe::make_moe_grads(gate, w1, w3, w2, sw1, sw3, sw2);
    }
};

/// max |a - b| / max(max |b|, floor) over n values: a normwise relative error.
inline double normwise(const float* a, const double* b, std::size_t n, double floor = 1e-30) {
    double m = floor, e = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        m = std::max(m, std::fabs(b[i]));
        e = std::max(e, std::fabs(static_cast<double>(a[i]) - b[i]));
    }
    return e / m;
}

}  // namespace moe_test
