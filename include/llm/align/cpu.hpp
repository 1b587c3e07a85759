// SPDX-License-Identifier: Apache-2.0
// The optimised CPU row kernels behind sequence_logprobs: blocked online log-sum-exp with gather, and the one-pass gradient.
#pragma once

#include <llm/align/tile.hpp>
#include <llm/config.hpp>
#include <llm/core/bf16.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

namespace llm::align::detail {

/// Logits per block of the log-sum-exp: 2048 of them (8 KiB fp32, 4 KiB bf16) stay in the 32 KiB
/// L1 between the block's max pass and its exp pass, so memory is read once per logit while
/// the running sum is rescaled once per block instead of once per element (one exp per logit).
inline constexpr std::size_t lse_block = 2048;

/// Independent accumulators per pass: enough to cover the 3-4 cycle latency of a vector add or
/// max on current x86 cores at one issue per cycle.
inline constexpr std::size_t lse_unroll = 4;
static_assert(lse_unroll == 4, "row_logsumexp combines exactly four accumulators");

/// Hints that the cache line holding p will be read soon. The exp pass of one block issues these
/// for the next block, so DRAM streams it in while the exps run; without them the max pass and
/// the exp pass take turns (measured: ~half the throughput on rows that come from memory).
LLM_FORCE_INLINE void prefetch_read(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
#endif
}

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

/// log sum_v exp(x[v]) of one row of V >= 1 logits (float or bf16), x[0..V) contiguous.
/// Requires at least one finite logit; -inf entries contribute 0.
template <class S, class E>
double row_logsumexp(const E* x, std::size_t V) noexcept {
    using f32 = typename S::f32;
    constexpr std::size_t W = S::width;
    constexpr std::size_t U = lse_unroll;
    lse_state st;
    for (std::size_t b0 = 0; b0 < V; b0 += lse_block) {
        const E* p = x + b0;
        const std::size_t n = std::min(lse_block, V - b0);
        const std::size_t nv = n / W * W;

        f32 m[U];
        for (auto& v : m) {
            v = S::set1(-std::numeric_limits<float>::infinity());
        }
        std::size_t i = 0;
        for (; i + U * W <= nv; i += U * W) {
            for (std::size_t k = 0; k < U; ++k) {
                m[k] = S::max(m[k], load_row<S>(p + i + k * W));
            }
        }
        for (; i < nv; i += W) {
            m[0] = S::max(m[0], load_row<S>(p + i));
        }
        float bm = S::reduce_max(S::max(S::max(m[0], m[1]), S::max(m[2], m[3])));
        // the tail is read one element at a time: a zero-filled partial vector would take part
        // in the max (and, below, add exp(0 - max) terms)
        for (std::size_t j = nv; j < n; ++j) {
            bm = std::max(bm, static_cast<float>(p[j]));
        }
        lse_raise_max(st, bm);

        const float mx = static_cast<float>(st.max);
        const f32 vm = S::set1(mx);
        f32 a[U];
        for (auto& v : a) {
            v = S::zero();
        }
        for (i = 0; i + U * W <= nv; i += U * W) {
            // one hint per 64-byte line of the block after this one (or of the next row, which
            // the same thread usually reads next); a hint past the end of the buffer is harmless
            for (std::size_t line = 0; line < U * W * sizeof(E); line += 64) {
                prefetch_read(reinterpret_cast<const char*>(p + n + i) + line);
            }
            for (std::size_t k = 0; k < U; ++k) {
                a[k] = S::add(a[k], S::exp(S::sub(load_row<S>(p + i + k * W), vm)));
            }
        }
        for (; i < nv; i += W) {
            a[0] = S::add(a[0], S::exp(S::sub(load_row<S>(p + i), vm)));
        }
        double bs = static_cast<double>(S::reduce_add(S::add(S::add(a[0], a[1]), S::add(a[2], a[3]))));
        for (std::size_t j = nv; j < n; ++j) {
            bs += std::exp(static_cast<double>(static_cast<float>(p[j]) - mx));
        }
        st.sum += bs;
    }
    return lse_value(st);
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
