// SPDX-License-Identifier: Apache-2.0
// Per-row tile maths of tiled attention shared by the CPU and CUDA kernels: online-softmax state, rescale, merges, soft-capping.
#pragma once

#include <llm/config.hpp>
#include <llm/simd/lanes.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
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

/// rescale, except that the running maximum is kept while the tile's maximum exceeds it by at
/// most `margin` (then alpha = 1 and the accumulator needs no rescale): the terms
/// exp(score - m) are then at most e^margin, far from overflow for margin <= 64, and acc / l and
/// lse = m + log l are the same numbers. After the first tiles of a row the maximum rarely
/// grows by more than a few units, so most tiles skip the rescale and its exp (the conditional
/// rescaling of FlashAttention 4).
/// Example: `float a = llm::attention::lazy_rescale(st, tile_max, 8.0f);`
LLM_HD inline float lazy_rescale(softmax_state& s, float tile_max, float margin) noexcept {
    if (s.m != -std::numeric_limits<float>::infinity() && tile_max <= s.m + margin) {
        return 1.0f;
    }
    return rescale(s, tile_max);
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

/// The per-row state of a query row processed by a group of lanes (a CUDA warp, or
/// emulated_warp<32> on the CPU): the online-softmax statistics (the same in every lane) and
/// the unnormalised output, lane t owning columns t, t + N, t + 2N, ... (N = L::size).
/// L: a lanes policy. DPL: output columns per lane, ceil(head_dim / N).
template <class L, std::size_t DPL>
struct warp_row {
    softmax_state st{};                          ///< statistics of the keys seen so far
    typename L::template values<float> acc[DPL]{};  ///< unnormalised output, DPL columns per lane
};

/// One key tile for one query row, computed by the N = L::size lanes of a group: lane t scores
/// keys t, t + N, ..., (KPL keys per lane: the tile has N * KPL keys), the tile's maximum and
/// sum are all-reduced with L::reduce_max / L::reduce_sum (the butterfly order of
/// __shfl_xor_sync), the probabilities are staged in p_stage (N * KPL floats shared by the
/// group: shared memory on the GPU), then each lane updates its output columns.
/// q: the row's query, already scaled (head_dim D floats); k, v: the tile's keys and values,
/// row j at k + j * ld (rows >= cols are ignored); i: the row's index and j0 the tile's first key
/// in sequence coordinates (lq x lk, for the mask); full: every pair of the tile is visible
/// (skips the mask test); cap: soft-cap (0 = off). sync(): makes one lane's p_stage writes
/// visible to the others (__syncwarp on the GPU, nothing on the CPU).
/// Every lane must call it with the same arguments except its own lane's values.
/// L: lanes policy; KPL, DPL: keys and output columns per lane; Mask: a mask_policy; Sync: callable.
/// Example: `llm::attention::warp_row_step<llm::simd::emulated_warp<32>, 1, 4>(w, q, k, v, D, D, i, j0, cols, lq, lk, mask, false, 0.0f, p, [] {});`
template <class L, std::size_t KPL, std::size_t DPL, class Mask, class Sync>
LLM_HD void warp_row_step(warp_row<L, DPL>& w, const float* q, const float* k, const float* v, std::size_t ld,
                          std::size_t D, std::int64_t i, std::int64_t j0, std::int64_t cols, std::int64_t lq,
                          std::int64_t lk, const Mask& mask, bool full, float cap, float* p_stage, Sync&& sync) {
    constexpr std::size_t N = L::size;
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    typename L::template values<float> s[KPL];
    const auto local_max = llm::simd::lane_map<L>([&](std::size_t ln) {
        float m = neg_inf;
        for (std::size_t t = 0; t < KPL; ++t) {
            const std::size_t j = t * N + ln;
            float x = neg_inf;
            if (static_cast<std::int64_t>(j) < cols && (full || mask.allowed(i, j0 + static_cast<std::int64_t>(j), lq, lk))) {
                float dot = 0.0f;
                for (std::size_t d = 0; d < D; ++d) {
                    dot += q[d] * k[j * ld + d];
                }
                x = softcap(dot, cap);
            }
            llm::simd::lane_ref<L>(s[t], ln) = x;
            m = x > m ? x : m;
        }
        return m;
    });
    const float alpha = rescale(w.st, llm::simd::lane_uniform<L>(L::reduce_max(local_max)));
    if (row_is_empty(w.st)) {
        return;  // every key so far masked: nothing to add (the same branch in every lane)
    }
    const float m = w.st.m;
    const auto local_sum = llm::simd::lane_map<L>([&](std::size_t ln) {
        float sum = 0.0f;
        for (std::size_t t = 0; t < KPL; ++t) {
            const float p = std::exp(llm::simd::lane_ref<L>(s[t], ln) - m);  // masked: exp(-inf) = 0
            p_stage[t * N + ln] = p;
            sum += p;
        }
        return sum;
    });
    w.st.l = w.st.l * alpha + llm::simd::lane_uniform<L>(L::reduce_sum(local_sum));
    sync();
    for (std::size_t c = 0; c < DPL; ++c) {
        w.acc[c] = llm::simd::lane_map<L>([&](std::size_t ln) {
            const std::size_t d = c * N + ln;
            float a = llm::simd::lane_ref<L>(w.acc[c], ln) * alpha;
            if (d < D) {
                for (std::int64_t j = 0; j < cols; ++j) {
                    a += p_stage[j] * v[static_cast<std::size_t>(j) * ld + d];
                }
            }
            return a;
        });
    }
    sync();  // p_stage is reused by the next tile
}

/// Writes a finished warp_row: out[d] = acc / l for d < D (each lane its own columns) and, from
/// lane 0, *lse = log-sum-exp (-inf and a zero row when the row saw no key).
/// TO: output element type (float or llm::bf16).
/// Example: `llm::attention::warp_row_finish(w, out_row, D, &lse[i]);`
template <class L, std::size_t DPL, class TO>
LLM_HD void warp_row_finish(const warp_row<L, DPL>& w, TO* out, std::size_t D, float* lse) {
    const float inv = output_scale(w.st);
    llm::simd::for_lanes<L>([&](std::size_t ln) {
        for (std::size_t c = 0; c < DPL; ++c) {
            const std::size_t d = c * L::size + ln;
            if (d < D) {
                out[d] = TO(llm::simd::lane_ref<L>(w.acc[c], ln) * inv);
            }
        }
        if (ln == 0) {
            *lse = row_lse(w.st);
        }
    });
}

}  // namespace llm::attention
