// SPDX-License-Identifier: Apache-2.0
// Per-row log-softmax maths shared by the CPU kernel and any device port: online log-sum-exp state, merge, gradient.
#pragma once

#include <llm/config.hpp>

#include <cmath>
#include <limits>

namespace llm::align {

/// Running log-sum-exp of a stream of logits, kept as (max, sum of exp(x - max)); the sum is in
/// double so that a 256k-entry row adds up without losing the small terms.
struct lse_state {
    double max = -std::numeric_limits<double>::infinity();  ///< largest logit seen so far
    double sum = 0;                                          ///< sum of exp(x - max) over the logits seen
};

/// Folds a block whose maximum is `block_max` into `s` *before* its terms are summed: rescales
/// the running sum to the new maximum, so the block's exp(x - s.max) terms can then be added.
/// Rescaling once per block (not per element) is what keeps one exp per logit.
/// Example: `llm::align::lse_raise_max(s, bm); s.sum += sum_exp(block, s.max);`
LLM_HD inline void lse_raise_max(lse_state& s, double block_max) {
    if (block_max > s.max) {
        // exp(-inf) = 0 on the first block, where sum is 0 anyway
        s.sum *= std::exp(s.max - block_max);
        s.max = block_max;
    }
}

/// Merges two partial states (e.g. two halves of a row reduced by different threads or warps).
/// Example: `auto s = llm::align::lse_merge(left, right);`
LLM_HD inline lse_state lse_merge(lse_state a, lse_state b) {
    if (a.max < b.max) {
        const lse_state t = a;
        a = b;
        b = t;
    }
    if (b.sum == 0) {
        return a;
    }
    return {a.max, a.sum + b.sum * std::exp(b.max - a.max)};
}

/// log(sum exp(x)) of everything folded into s.
/// Example: `double lse = llm::align::lse_value(s);`
LLM_HD inline double lse_value(const lse_state& s) { return s.max + std::log(s.sum); }

/// d(g * log softmax(x)[label]) / d x[v] = g * (onehot(label)[v] - exp(x[v] - lse)).
/// Example: `d[v] = llm::align::logprob_grad(g, x[v], lse, v == label);`
LLM_HD inline float logprob_grad(float g, float x, float lse, bool is_label) {
    const float p = std::exp(x - lse);
    return is_label ? g * (1.0f - p) : -g * p;
}

}  // namespace llm::align
