// SPDX-License-Identifier: Apache-2.0
// Per-token MoE maths shared by the CPU path and moe/cuda.cuh: softmax / sigmoid rows, top-k selection (serial and a warp through a lanes policy), router backward rows, the combine sum.
#pragma once

#include <llm/config.hpp>
#include <llm/simd/lanes.hpp>
#include <llm/simd/math.hpp>
#include <llm/simd/scalar.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

// Everything here is LLM_HD and allocation-free, written for one token's row of E router
// logits (E experts), so a CPU thread and a CUDA warp run the same arithmetic.
//
// Ordering and ties. Experts are ranked by their selection key (a probability, a sigmoid score
// plus a bias, ...) in decreasing order; equal keys rank the LOWER expert index first. Every
// selection here (serial and warp) uses this one total order (`ranks_before`), so results do
// not depend on the thread count or on the lanes policy. Keys are never NaN (the public entry
// points reject NaN and +inf logits, rows of -inf and non-finite biases before any selection).

namespace llm::moe::tile {

/// exp through the library's one fast exp (llm::simd::scalar, usable in device code).
/// Example: `float e = llm::moe::tile::exp_f(0.5f);`
LLM_HD inline constexpr float exp_f(float x) noexcept { return llm::simd::exp<llm::simd::scalar>(x); }

/// The logistic sigmoid through llm::simd::sigmoid (relative error <= 2.5e-7).
/// Example: `float s = llm::moe::tile::sigmoid_f(0.0f);  // 0.5`
LLM_HD inline constexpr float sigmoid_f(float x) noexcept { return llm::simd::sigmoid<llm::simd::scalar>(x); }

/// True when expert a ranks before expert b under keys `key`: a larger key, or an equal key
/// and a lower index (the documented tie-break).
/// Example: `bool first = llm::moe::tile::ranks_before(k, 0, 3);`
LLM_HD inline constexpr bool ranks_before(const float* key, std::size_t a, std::size_t b) noexcept {
    return key[a] > key[b] || (key[a] == key[b] && a < b);
}

/// Softmax of one row: p[i] = exp(l[i] - max) / sum, the sum in index order.
/// Example: `llm::moe::tile::softmax_row(p, logits, 8);`
LLM_HD inline constexpr void softmax_row(float* p, const float* l, std::size_t n) noexcept {
    float m = l[0];
    for (std::size_t i = 1; i < n; ++i) {
        m = l[i] > m ? l[i] : m;
    }
    float s = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = exp_f(l[i] - m);
        s += p[i];
    }
    const float inv = 1.0f / s;
    for (std::size_t i = 0; i < n; ++i) {
        p[i] *= inv;
    }
}

/// Log-sum-exp of one row (max-shifted, sum in index order); host code.
/// Example: `float lse = llm::moe::tile::logsumexp_row(logits, 8);`
inline float logsumexp_row(const float* l, std::size_t n) noexcept {
    float m = l[0];
    for (std::size_t i = 1; i < n; ++i) {
        m = l[i] > m ? l[i] : m;
    }
    float s = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        s += exp_f(l[i] - m);
    }
    return m + std::log(s);
}

/// Which experts a group limit lets through: bit g of the result is set when group g is one of
/// the `topk_group` best of `n_group` equal groups, a group's score being the sum of its
/// `per_group` largest keys (DeepSeek-V2: per_group 1, the group maximum; V3: 2). n_group <= 64;
/// n_group == 1 lets every expert through. Ties between groups: lower group index first.
/// Example: `auto mask = llm::moe::tile::group_mask(key, 64, 8, 4, 2);`
LLM_HD inline std::uint64_t group_mask(const float* key, std::size_t n, std::size_t n_group, std::size_t topk_group,
                                       std::size_t per_group) noexcept {
    if (n_group <= 1) {
        return ~std::uint64_t{0};
    }
    const std::size_t gs = n / n_group;
    float score[64] = {};
    for (std::size_t g = 0; g < n_group; ++g) {
        // The per_group largest keys of the group (per_group is small: 1 or 2), in rank order.
        std::size_t prev = n;
        float sum = 0.0f;
        for (std::size_t r = 0; r < per_group && r < gs; ++r) {
            std::size_t best = n;
            for (std::size_t i = g * gs; i < (g + 1) * gs; ++i) {
                if ((prev == n || ranks_before(key, prev, i)) && (best == n || ranks_before(key, i, best))) {
                    best = i;
                }
            }
            sum += key[best];
            prev = best;
        }
        score[g] = sum;
    }
    std::uint64_t mask = 0;
    std::size_t prev = n_group;
    for (std::size_t r = 0; r < topk_group; ++r) {
        std::size_t best = n_group;
        for (std::size_t g = 0; g < n_group; ++g) {
            if ((prev == n_group || ranks_before(score, prev, g)) && (best == n_group || ranks_before(score, g, best))) {
                best = g;
            }
        }
        mask |= std::uint64_t{1} << best;
        prev = best;
    }
    return mask;
}

/// The k experts that rank first under `key` among those whose group (index / group_size) has
/// its bit set in `allowed`, written to idx[0..k) in rank order. O(n k), no scratch: the j-th
/// pick is the best expert ranking after pick j - 1. The caller guarantees k allowed experts.
/// Example: `llm::moe::tile::top_k(idx, key, 8, 2, ~0ull, 8);`
LLM_HD inline void top_k(std::int32_t* idx, const float* key, std::size_t n, std::size_t k, std::uint64_t allowed,
                         std::size_t group_size) noexcept {
    std::size_t prev = n;
    for (std::size_t j = 0; j < k; ++j) {
        std::size_t best = n;
        for (std::size_t i = 0; i < n; ++i) {
            if (((allowed >> (i / group_size)) & 1u) == 0) {
                continue;
            }
            if ((prev == n || ranks_before(key, prev, i)) && (best == n || ranks_before(key, i, best))) {
                best = i;
            }
        }
        idx[j] = static_cast<std::int32_t>(best);
        prev = best;
    }
}

/// A float's bits mapped so that unsigned order is float order (-inf lowest, +inf highest).
/// Example: `auto u = llm::moe::tile::ordered_bits(1.0f);`
LLM_HD inline std::uint32_t ordered_bits(float f) noexcept {
    std::uint32_t u = 0;
    std::memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
}

/// One 64-bit word per (key, expert) whose unsigned order is ranks_before: the key's ordered
/// bits above, the complement of the index below (a lower index is the larger word). A warp's
/// max-reduction of these picks the same expert as the serial top_k.
/// Example: `auto w = llm::moe::tile::rank_word(0.3f, 5);`
LLM_HD inline std::uint64_t rank_word(float key, std::size_t i) noexcept {
    return (std::uint64_t{ordered_bits(key)} << 32) | (0xFFFFFFFFu - static_cast<std::uint32_t>(i));
}

/// The expert index a rank_word encodes.
/// Example: `std::size_t e = llm::moe::tile::rank_index(w);`
LLM_HD inline std::size_t rank_index(std::uint64_t w) noexcept {
    return static_cast<std::size_t>(0xFFFFFFFFu - static_cast<std::uint32_t>(w & 0xFFFFFFFFu));
}

/// top_k by a group of L::size lanes (a CUDA warp with cuda_warp, or emulated_warp<32> on the
/// CPU): lane ln owns experts ln, ln + N, ln + 2N, ... (EPL per lane, EPL * N >= n); each of
/// the k rounds takes every lane's best word ranking after the previous pick and max-reduces
/// it across the lanes in the butterfly order. Same picks as top_k (same total order); every
/// lane ends with the k indices in idx.
/// L: a lanes policy; EPL: experts per lane.
/// Example: `llm::moe::tile::warp_top_k<llm::simd::emulated_warp<32>, 2>(idx, key, 64, 8, ~0ull, 64);`
template <class L, std::size_t EPL>
LLM_HD void warp_top_k(std::int32_t* idx, const float* key, std::size_t n, std::size_t k, std::uint64_t allowed,
                       std::size_t group_size) noexcept {
    namespace ld = llm::simd;
    constexpr std::size_t N = L::size;
    std::uint64_t prev = ~std::uint64_t{0};
    for (std::size_t j = 0; j < k; ++j) {
        typename L::template values<std::uint64_t> best{};
        ld::for_lanes<L>([&](std::size_t ln) {
            std::uint64_t b = 0;
            for (std::size_t m = 0; m < EPL; ++m) {
                const std::size_t i = ln + m * N;
                if (i < n && ((allowed >> (i / group_size)) & 1u) != 0) {
                    const std::uint64_t w = rank_word(key[i], i);
                    if (w < prev && w > b) {
                        b = w;
                    }
                }
            }
            ld::lane_ref<L>(best, ln) = b;
        });
        best = L::combine_xor(best, llm::simd::detail::lanes_max{});
        if constexpr (ld::scalar_lanes<L>) {
            prev = best;
        } else {
            prev = best[0];
        }
        idx[j] = static_cast<std::int32_t>(rank_index(prev));
    }
}

/// Router scores of one token's row by a group of L::size lanes: softmax (Sigmoid false) or
/// sigmoid of l[0..n) into p[0..n), lane ln handling experts ln, ln + N, ... (EPL per lane).
/// The softmax's max and sum are warp reductions in the butterfly order (L::reduce_max,
/// L::reduce_sum), so the result differs from softmax_row (index-order sum) by rounding only:
/// at most (n + 4) u relative. `sync` runs between the writes of p and the reads of other lanes'
/// entries (__syncwarp on the GPU, nothing for emulated lanes).
/// Example: `llm::moe::tile::warp_scores<llm::simd::emulated_warp<32>, 2, false>(p, l, 64, [] {});`
template <class L, std::size_t EPL, bool Sigmoid, class Sync>
LLM_HD void warp_scores(float* p, const float* l, std::size_t n, Sync&& sync) {
    namespace ld = llm::simd;
    constexpr std::size_t N = L::size;
    if constexpr (Sigmoid) {
        ld::for_lanes<L>([&](std::size_t ln) {
            for (std::size_t m = 0; m < EPL; ++m) {
                const std::size_t i = ln + m * N;
                if (i < n) {
                    p[i] = sigmoid_f(l[i]);
                }
            }
        });
    } else {
        typename L::template values<float> mx{}, sum{};
        ld::for_lanes<L>([&](std::size_t ln) {
            float v = -std::numeric_limits<float>::infinity();
            for (std::size_t m = 0; m < EPL; ++m) {
                const std::size_t i = ln + m * N;
                v = i < n && l[i] > v ? l[i] : v;
            }
            ld::lane_ref<L>(mx, ln) = v;
        });
        mx = L::reduce_max(mx);
        ld::for_lanes<L>([&](std::size_t ln) {
            const float m0 = ld::lane_ref<L>(mx, ln);
            float s = 0.0f;
            for (std::size_t m = 0; m < EPL; ++m) {
                const std::size_t i = ln + m * N;
                if (i < n) {
                    p[i] = exp_f(l[i] - m0);
                    s += p[i];
                }
            }
            ld::lane_ref<L>(sum, ln) = s;
        });
        sum = L::reduce_sum(sum);
        ld::for_lanes<L>([&](std::size_t ln) {
            const float inv = 1.0f / ld::lane_ref<L>(sum, ln);
            for (std::size_t m = 0; m < EPL; ++m) {
                const std::size_t i = ln + m * N;
                if (i < n) {
                    p[i] *= inv;
                }
            }
        });
    }
    sync();
}

/// Largest k the warp router supports (its picks live in registers).
inline constexpr std::size_t max_warp_k = 32;

/// One token routed by a group of lanes (the CUDA router kernel's whole per-token body):
/// scores into p[0..n) (warp_scores), selection keys p + bias into key[0..n) when bias is not
/// null (else the scores select), the group mask, warp_top_k into idx[0..k), and the weights
/// w[0..k) = p[idx[j]] * (renormalize ? scale / sum_j p[idx[j]] : scale), the sum in j order as
/// the CPU routers do. p and key are per-token scratch visible to every lane (shared memory).
/// k <= max_warp_k. Example: `llm::moe::tile::warp_route<llm::simd::emulated_warp<32>, 2, false>(idx, w, p, key, l, nullptr, 64, 2, true, 1.0f, 1, 1, 1, [] {});`
template <class L, std::size_t EPL, bool Sigmoid, class Sync>
LLM_HD void warp_route(std::int32_t* idx, float* w, float* p, float* key, const float* l, const float* bias,
                       std::size_t n, std::size_t k, bool renormalize, float scale, std::size_t n_group,
                       std::size_t topk_group, std::size_t per_group, Sync&& sync) {
    namespace ld = llm::simd;
    constexpr std::size_t N = L::size;
    warp_scores<L, EPL, Sigmoid>(p, l, n, sync);
    const float* sel = p;
    if (bias != nullptr) {
        ld::for_lanes<L>([&](std::size_t ln) {
            for (std::size_t m = 0; m < EPL; ++m) {
                const std::size_t i = ln + m * N;
                if (i < n) {
                    key[i] = p[i] + bias[i];
                }
            }
        });
        sync();
        sel = key;
    }
    const std::uint64_t allowed = group_mask(sel, n, n_group, topk_group, per_group);
    warp_top_k<L, EPL>(idx, sel, n, k, allowed, n / (n_group < 1 ? 1 : n_group));
    float S = 0.0f;
    for (std::size_t j = 0; j < k; ++j) {
        S += p[idx[j]];
    }
    const float c = renormalize ? scale / S : scale;
    for (std::size_t j = 0; j < k; ++j) {
        w[j] = p[idx[j]] * c;
    }
}

/// The gradient of renormalised or scaled routing weights with respect to the selected scores.
/// Forward: w_j = c * s_j / S (renormalised, S = sum of the k selected s) or w_j = c * s_j.
/// Backward: ds_i = (c / S) (g_i - sum_j g_j s_j / S), or ds_i = c g_i; written to ds[0..k).
/// Example: `llm::moe::tile::renorm_backward(ds, g, s_sel, 2, true, 1.0f);`
LLM_HD inline void renorm_backward(float* ds, const float* g, const float* s, std::size_t k, bool renormalize,
                                   float c) noexcept {
    if (!renormalize) {
        for (std::size_t j = 0; j < k; ++j) {
            ds[j] = c * g[j];
        }
        return;
    }
    float S = 0.0f, gs = 0.0f;
    for (std::size_t j = 0; j < k; ++j) {
        S += s[j];
        gs += g[j] * s[j];
    }
    const float inv = 1.0f / S;
    for (std::size_t j = 0; j < k; ++j) {
        ds[j] = c * inv * (g[j] - gs * inv);
    }
}

/// Softmax backward of one row given dp non-zero only on `k` entries idx[j] (values dp[j]):
/// dl[i] += p[i] (dp_i - sum_j p_idx[j] dp[j]), accumulated into dl.
/// Example: `llm::moe::tile::softmax_backward_sparse(dl, p, idx, dp, 8, 2);`
LLM_HD inline void softmax_backward_sparse(float* dl, const float* p, const std::int32_t* idx, const float* dp,
                                           std::size_t n, std::size_t k) noexcept {
    float dot = 0.0f;
    for (std::size_t j = 0; j < k; ++j) {
        dot += p[idx[j]] * dp[j];
    }
    for (std::size_t i = 0; i < n; ++i) {
        float dpi = 0.0f;
        for (std::size_t j = 0; j < k; ++j) {
            dpi = static_cast<std::size_t>(idx[j]) == i ? dp[j] : dpi;
        }
        dl[i] += p[i] * (dpi - dot);  // one addition per element: a second call adds the same
    }
}

/// Column c of the combine: sum over the token's slots j (in slot order) of
/// w[j] * yp[pos[j] * ld + c], slots with pos -1 skipped. CPU and CUDA un-permute use it.
/// Example: `y[c] = llm::moe::tile::combine_column(yp, d, pos, w, 2, c);`
LLM_HD inline float combine_column(const float* yp, std::size_t ld, const std::int32_t* pos, const float* w,
                                   std::size_t slots, std::size_t c) noexcept {
    float acc = 0.0f;
    for (std::size_t j = 0; j < slots; ++j) {
        if (pos[j] >= 0) {
            acc += w[j] * yp[static_cast<std::size_t>(pos[j]) * ld + c];
        }
    }
    return acc;
}

/// SiLU(g) * u and its two partial derivatives' factors: the SwiGLU expert's activation.
/// Example: `float h = llm::moe::tile::swiglu(g, u);`
LLM_HD inline float swiglu(float g, float u) noexcept { return g * sigmoid_f(g) * u; }

/// d/dg of SiLU(g): s (1 + g (1 - s)), s = sigmoid(g).
/// Example: `float d = llm::moe::tile::silu_grad(g);`
LLM_HD inline float silu_grad(float g) noexcept {
    const float s = sigmoid_f(g);
    return s * (1.0f + g * (1.0f - s));
}

}  // namespace llm::moe::tile
