// SPDX-License-Identifier: Apache-2.0
// Per-row tile maths of tiled attention shared by the CPU and CUDA kernels: online-softmax state, rescale, merges, soft-capping.
#pragma once

#include <llm/config.hpp>

#include <cmath>
#include <limits>

namespace llm::attention {

// Everything here works on one query row at a time and uses no intrinsics, no shared memory
// and no vector types: the CPU kernel (llm/attention/cpu.hpp) and the CUDA kernel
// (llm/attention/cuda.cuh) call these same functions, and tests check them on the host.

/// Running online-softmax statistics of one query row over the key tiles seen so far
/// (FlashAttention-2): the running maximum m of the scores and the running sum l of
/// exp(score - m). Before any key: m = -inf, l = 0.
struct softmax_state {
    float m = -std::numeric_limits<float>::infinity();  ///< running maximum score
    float l = 0.0f;                                     ///< running sum of exp(score - m)
};

/// Folds the maximum of a new tile of scores into `s` and returns alpha = exp(m_old - m_new):
/// the factor by which the row's accumulator and s.l must be multiplied before the tile's
/// exp(score - s.m) terms are added. Rescaling once per tile, not per score, is the point of
/// the online softmax. While every score seen is -inf (masked), m stays -inf and alpha is 1
/// (nothing to rescale; the kernel must then add no terms: see row_is_empty).
/// Example: `float a = llm::attention::rescale(st, tile_max); acc *= a; st.l = st.l * a + tile_sum;`
LLM_HD inline float rescale(softmax_state& s, float tile_max) noexcept {
    const float m_new = tile_max > s.m ? tile_max : s.m;
    if (m_new == -std::numeric_limits<float>::infinity()) {
        return 1.0f;  // exp(-inf - -inf) would be NaN
    }
    const float alpha = std::exp(s.m - m_new);  // exp(-inf) = 0 on the first finite tile
    s.m = m_new;
    return alpha;
}

/// True while the row has seen no unmasked score: its probabilities are all 0, and
/// exp(score - m) must not be evaluated (it would be exp(-inf + inf) = NaN).
/// Example: `if (llm::attention::row_is_empty(st)) continue;`
LLM_HD constexpr bool row_is_empty(const softmax_state& s) noexcept {
    return s.m == -std::numeric_limits<float>::infinity();
}

/// Log-sum-exp of the row, m + log(l); -inf for a row that saw no key (log 0), which keeps
/// merges exact: such a part gets weight exp(-inf) = 0.
/// Example: `lse[i] = llm::attention::row_lse(st);`
LLM_HD inline float row_lse(const softmax_state& s) noexcept {
    return s.l > 0.0f ? s.m + std::log(s.l) : -std::numeric_limits<float>::infinity();
}

/// 1 / l, the factor that turns the accumulator into the output row; 0 for an empty row (its
/// accumulator is 0 and its output is defined as 0, as in FlashAttention).
/// Example: `o[d] = acc[d] * llm::attention::output_scale(st);`
LLM_HD constexpr float output_scale(const softmax_state& s) noexcept { return s.l > 0.0f ? 1.0f / s.l : 0.0f; }

/// Merges the states of two disjoint key ranges of the same row (split-KV, or two lanes of
/// a warp): returns the merged state and the factors wa, wb by which each part's
/// *unnormalised* accumulator is multiplied before they are added.
struct state_merge {
    softmax_state s;  ///< merged statistics
    float wa;         ///< factor for the first part's accumulator
    float wb;         ///< factor for the second part's accumulator
};

/// See state_merge. Empty parts (m = -inf) get factor 0 and never produce NaN.
/// Example: `auto mg = llm::attention::merge(a, b); acc = mg.wa * acc_a + mg.wb * acc_b;`
LLM_HD inline state_merge merge(const softmax_state& a, const softmax_state& b) noexcept {
    const float m = a.m > b.m ? a.m : b.m;
    if (m == -std::numeric_limits<float>::infinity()) {
        return {softmax_state{}, 0.0f, 0.0f};
    }
    const float wa = std::exp(a.m - m);
    const float wb = std::exp(b.m - m);
    return {softmax_state{m, a.l * wa + b.l * wb}, wa, wb};
}

/// Weights of a log-sum-exp merge of two *normalised* partial outputs (flash-decoding): with
/// lse = log(exp(lse_a) + exp(lse_b)), out = exp(lse_a - lse) * out_a + exp(lse_b - lse) * out_b.
struct lse_merge_weights {
    float lse;  ///< log-sum-exp of the union
    float wa;   ///< weight of the first partial output
    float wb;   ///< weight of the second partial output
};

/// See lse_merge_weights. A part with lse = -inf (no keys) gets weight 0; both empty gives
/// lse = -inf and weights 0.
/// Example: `auto w = llm::attention::lse_merge(la, lb); o = w.wa * oa + w.wb * ob;`
LLM_HD inline lse_merge_weights lse_merge(float lse_a, float lse_b) noexcept {
    const float hi = lse_a > lse_b ? lse_a : lse_b;
    if (hi == -std::numeric_limits<float>::infinity()) {
        return {hi, 0.0f, 0.0f};
    }
    const float ea = std::exp(lse_a - hi);
    const float eb = std::exp(lse_b - hi);
    const float sum = ea + eb;  // in [1, 2]
    return {hi + std::log(sum), ea / sum, eb / sum};
}

/// Logit soft-capping (Gemma 2): cap * tanh(x / cap); cap <= 0 means off (x unchanged).
/// Example: `s = llm::attention::softcap(s, 50.0f);`
LLM_HD inline float softcap(float x, float cap) noexcept { return cap > 0.0f ? cap * std::tanh(x / cap) : x; }

/// d softcap(x) / dx written with the capped value t = softcap(x, cap): 1 - (t / cap)^2
/// (1 when capping is off), so the backward needs no second tanh.
/// Example: `ds_raw = ds * llm::attention::softcap_grad(t, cap);`
LLM_HD constexpr float softcap_grad(float capped, float cap) noexcept {
    if (cap <= 0.0f) {
        return 1.0f;
    }
    const float u = capped / cap;
    return 1.0f - u * u;
}

/// dS of one score from the FlashAttention-2 backward: p * (dp - D) with D = rowsum(dO * O),
/// times the soft-cap derivative; the result is the gradient of the *uncapped, scaled* score.
/// Example: `ds[j] = llm::attention::score_grad(p[j], dp[j], D_i, t[j], cap);`
LLM_HD constexpr float score_grad(float p, float dp, float row_d, float capped, float cap) noexcept {
    return p * (dp - row_d) * softcap_grad(capped, cap);
}

}  // namespace llm::attention
