// SPDX-License-Identifier: Apache-2.0
// The scale searches of the K-quant reference quantizers, operation for operation (byte-exact output).
#pragma once

#include <llm/quant/detail/rounding.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

// Every float operation below is in the reference's order (products of three are
// (a * b) * c, integer codes convert to float at the multiply) and every product goes
// through mul() so no FMA changes a sum: a different last bit in one sum can flip which
// candidate scale wins and change the block's bytes.

namespace llm::quant::detail {

/// Blocks whose largest |x| is below this are stored as all zero codes (ggml's GROUP_MAX_EPS).
inline constexpr float group_max_eps = 1e-15f;

/// The value of largest magnitude of x[0, n) with its sign (the first one on ties), 0 for
/// all zeros; `amax` receives its magnitude.
LLM_HD inline float signed_absmax(const float* x, int n, float& amax) noexcept {
    float max = 0.0f;
    amax = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    return max;
}

/// True (and L[0, n) set to 0) when max |x| over x[0, n) is below group_max_eps; else `max`
/// receives the signed value of largest magnitude.
LLM_HD inline bool all_but_zero(const float* x, int n, std::int8_t* L, float& max) noexcept {
    float amax = 0.0f;
    max = signed_absmax(x, n, amax);
    if (amax >= group_max_eps) {
        return false;
    }
    for (int i = 0; i < n; ++i) {
        L[i] = 0;
    }
    return true;
}

/// Symmetric codes L[i] in [0, 2 nmax) for x[0, n), x ~ scale * (L - nmax), with the error
/// weighted by x^2 (the reference's rmse_type 1, no importance weights): 19 candidate scales
/// around -nmax / max, the best kept. Returns the scale (0 when the group is all but zero).
LLM_HD inline float make_qx_quants(int n, int nmax, const float* x, std::int8_t* L) noexcept {
    float max = 0.0f;
    if (all_but_zero(x, n, L, max)) {
        return 0.0f;
    }
    const auto code = [&](float iscale, int i) {
        return std::max(-nmax, std::min(nmax - 1, nearest_int(mul(iscale, x[i]))));
    };
    float iscale = static_cast<float>(-nmax) / max;
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
        const int l = code(iscale, i);
        L[i] = static_cast<std::int8_t>(l + nmax);
        const float w = mul(x[i], x[i]);
        const auto fl = static_cast<float>(l);
        sumlx += mul(mul(w, x[i]), fl);
        suml2 += mul(mul(w, fl), fl);
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = mul(scale, sumlx);
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) {
            continue;
        }
        iscale = -(static_cast<float>(nmax) + mul(0.1f, static_cast<float>(is))) / max;
        sumlx = 0.0f;
        suml2 = 0.0f;
        for (int i = 0; i < n; ++i) {
            const auto fl = static_cast<float>(code(iscale, i));
            const float w = mul(x[i], x[i]);
            sumlx += mul(mul(w, x[i]), fl);
            suml2 += mul(mul(w, fl), fl);
        }
        if (suml2 > 0.0f && mul(sumlx, sumlx) > mul(best, suml2)) {
            for (int i = 0; i < n; ++i) {
                L[i] = static_cast<std::int8_t>(nmax + code(iscale, i));
            }
            scale = sumlx / suml2;
            best = mul(scale, sumlx);
        }
    }
    return scale;
}

/// Symmetric codes L[i] in [0, 2 nmax) for the Q3_K groups: start at -nmax / max, then up to
/// five passes that move single codes while the x^2-weighted fit improves. Returns the scale.
LLM_HD inline float make_q3_quants(int n, int nmax, const float* x, std::int8_t* L) noexcept {
    float max = 0.0f;
    if (all_but_zero(x, n, L, max)) {
        return 0.0f;
    }
    const auto clamp = [&](int l) { return std::max(-nmax, std::min(nmax - 1, l)); };
    const float iscale = static_cast<float>(-nmax) / max;
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
        const int l = clamp(nearest_int(mul(iscale, x[i])));
        L[i] = static_cast<std::int8_t>(l);
        const float w = mul(x[i], x[i]);
        const auto fl = static_cast<float>(l);
        sumlx += mul(mul(w, x[i]), fl);
        suml2 += mul(mul(w, fl), fl);
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = mul(x[i], x[i]);
            const auto li = static_cast<float>(L[i]);
            float slx = sumlx - mul(mul(w, x[i]), li);
            if (slx > 0.0f) {
                float sl2 = suml2 - mul(mul(w, li), li);
                const int new_l = clamp(nearest_int(mul(x[i], sl2) / slx));
                if (new_l != L[i]) {
                    const auto fl = static_cast<float>(new_l);
                    slx += mul(mul(w, x[i]), fl);
                    sl2 += mul(mul(w, fl), fl);
                    if (sl2 > 0.0f && mul(mul(slx, slx), suml2) > mul(mul(sumlx, sumlx), sl2)) {
                        L[i] = static_cast<std::int8_t>(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (n_changed == 0) {
            break;
        }
    }
    for (int i = 0; i < n; ++i) {
        L[i] = static_cast<std::int8_t>(L[i] + nmax);
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/// Asymmetric codes L[i] in [0, nmax] for x[0, n), x ~ scale * L - the_min, minimising the
/// weighted squared (or, with use_mad, absolute) error over nstep + 1 candidate scales
/// (nmax + rmin + rdelta * is) / (max - min); each candidate's scale and min come from the
/// weighted least-squares fit to its codes. Laux: n bytes of scratch. Returns the scale;
/// the_min receives the (non-negative) offset to subtract.
LLM_HD inline float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, std::uint8_t* L,
                                     float& the_min, std::uint8_t* Laux, float rmin, float rdelta, int nstep,
                                     bool use_mad) noexcept {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = mul(sum_w, x[0]);
    for (int i = 1; i < n; ++i) {
        min = x[i] < min ? x[i] : min;
        max = x[i] > max ? x[i] : max;
        sum_w += weights[i];
        sum_x += mul(weights[i], x[i]);
    }
    if (min > 0.0f) {
        min = 0.0f;
    }
    if (max == min) {
        for (int i = 0; i < n; ++i) {
            L[i] = 0;
        }
        the_min = -min;
        return 0.0f;
    }
    const auto code = [&](float iscale, int i) {
        return static_cast<std::uint8_t>(std::max(0, std::min(nmax, nearest_int(mul(iscale, x[i] - min)))));
    };
    // Weighted error of codes q under scale s and offset m.
    const auto error = [&](const std::uint8_t* q, float s, float m) {
        float e = 0.0f;
        for (int i = 0; i < n; ++i) {
            float diff = mul(s, static_cast<float>(q[i])) + m - x[i];
            diff = use_mad ? std::fabs(diff) : mul(diff, diff);
            e += mul(weights[i], diff);
        }
        return e;
    };
    float iscale = static_cast<float>(nmax) / (max - min);
    float scale = 1.0f / iscale;
    for (int i = 0; i < n; ++i) {
        L[i] = code(iscale, i);
    }
    float best_error = error(L, scale, min);
    if (nstep < 1) {
        the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + mul(rdelta, static_cast<float>(is)) + static_cast<float>(nmax)) / (max - min);
        float sum_l = 0.0f;
        float sum_l2 = 0.0f;
        float sum_xl = 0.0f;
        for (int i = 0; i < n; ++i) {
            Laux[i] = code(iscale, i);
            const auto fl = static_cast<float>(Laux[i]);
            const float wl = mul(weights[i], fl);
            sum_l += wl;
            sum_l2 += mul(wl, fl);
            sum_xl += mul(wl, x[i]);
        }
        const float D = mul(sum_w, sum_l2) - mul(sum_l, sum_l);
        if (D > 0.0f) {
            float this_scale = (mul(sum_w, sum_xl) - mul(sum_x, sum_l)) / D;
            float this_min = (mul(sum_l2, sum_x) - mul(sum_l, sum_xl)) / D;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            const float cur_error = error(Laux, this_scale, this_min);
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) {
                    L[i] = Laux[i];
                }
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    the_min = -min;
    return scale;
}

}  // namespace llm::quant::detail
