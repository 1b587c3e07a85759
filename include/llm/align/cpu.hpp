// SPDX-License-Identifier: Apache-2.0
// The optimised CPU row kernel behind sequence_logprobs_backward: the one-pass gradient (the log-sum-exp is llm::simd::row_logsumexp).
#pragma once

#include <llm/align/tile.hpp>
#include <llm/config.hpp>
#include <llm/core/bf16.hpp>

#include <cstddef>

namespace llm::align::detail {

template <class S>
LLM_FORCE_INLINE typename S::f32 load_row(const float* p) noexcept {
    return S::loadu(p);
}
template <class S>
LLM_FORCE_INLINE typename S::f32 load_row(const llm::bf16* p) noexcept {
    return S::load_bf16(p);
}
template <class S>
LLM_FORCE_INLINE void store_row(float* p, typename S::f32 v) noexcept {
    S::storeu(p, v);
}
template <class S>
LLM_FORCE_INLINE void store_row(llm::bf16* p, typename S::f32 v) noexcept {
    S::store_bf16(p, v);
}

/// d[v] += g * (onehot(label)[v] - exp(x[v] - lse)) for v < V, in one read of x and one read and
/// write of d (backward passes accumulate into their gradients). The label's entry is updated
/// once, from its value before the call, so a bf16 d is rounded once there as everywhere else.
template <class S, class E, class G>
void row_logprob_grad_add(const E* x, G* d, std::size_t V, float lse, float g, std::size_t label) noexcept {
    using f32 = typename S::f32;
    constexpr std::size_t W = S::width;
    const float d_label = static_cast<float>(d[label]);
    const std::size_t nv = V / W * W;
    const f32 vl = S::set1(lse);
    const f32 vg = S::set1(-g);
    std::size_t i = 0;
    for (; i + 2 * W <= nv; i += 2 * W) {
        const f32 e0 = S::exp(S::sub(load_row<S>(x + i), vl));
        const f32 e1 = S::exp(S::sub(load_row<S>(x + i + W), vl));
        store_row<S>(d + i, S::fma(e0, vg, load_row<S>(d + i)));
        store_row<S>(d + i + W, S::fma(e1, vg, load_row<S>(d + i + W)));
    }
    for (; i < nv; i += W) {
        store_row<S>(d + i, S::fma(S::exp(S::sub(load_row<S>(x + i), vl)), vg, load_row<S>(d + i)));
    }
    for (std::size_t j = nv; j < V; ++j) {
        d[j] = G(static_cast<float>(d[j]) + logprob_grad(g, static_cast<float>(x[j]), lse, false));
    }
    d[label] = G(d_label + logprob_grad(g, static_cast<float>(x[label]), lse, true));
}

}  // namespace llm::align::detail
