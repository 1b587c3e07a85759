// SPDX-License-Identifier: Apache-2.0
// The MoE layer's CPU path: gather into per-expert blocks, grouped SwiGLU GEMMs on llm::gemm, weighted combine, and their backward.
#pragma once

#include <llm/core/workspace.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/moe/params.hpp>
#include <llm/moe/tile.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace llm::moe::detail {

using mat = llm::strided_view<float, 2>;
using cmat = llm::strided_view<const float, 2>;

/// A row-major [r, c] block at p with row stride ld.
inline mat rows_of(float* p, std::size_t r, std::size_t c, std::size_t ld) {
    return {p, llm::dims<2>(r, c), llm::dims<2>(ld, 1)};
}
inline cmat crows_of(const float* p, std::size_t r, std::size_t c, std::size_t ld) {
    return {p, llm::dims<2>(r, c), llm::dims<2>(ld, 1)};
}
/// Expert e's [b, c] slice of a rank-3 view [E, b, c].
template <class T>
llm::strided_view<T, 2> slice(const llm::strided_view<T, 3>& w, std::size_t e) {
    return {w.ptr(e, 0, 0), llm::dims<2>(w.extent(1), w.extent(2)), llm::dims<2>(w.stride(1), w.stride(2))};
}

/// Rows per parallel chunk of row-wise passes over `cols` columns (about 16 K elements).
inline std::size_t grain_for(std::size_t cols) { return std::max<std::size_t>(1, 16384 / std::max<std::size_t>(cols, 1)); }

/// xp[i, :] = x[rows[i], :]. P: dispatch_plan or plan_ref.
template <class X, class P>
void gather(float* xp, const X& x, const P& plan, std::size_t d, auto& exec) {
    parallel::parallel_for(exec, plan.size(), grain_for(d), [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1; ++i) {
            const auto t = static_cast<std::size_t>(plan.rows[i]);
            for (std::size_t c = 0; c < d; ++c) {
                xp[i * d + c] = x(t, c);
            }
        }
    });
}

/// The SwiGLU FFN of n rows (x [n, d] with row stride ldx) through weights w1, w3 [ff, d] and
/// w2 [d, ff]: gate = x w1^T, up = x w3^T, act = SiLU(gate) * up, y = act w2^T (beta: 0
/// overwrites y, 1 adds).
template <class TW>
void swiglu_forward(mat y, float* gate, float* up, float* act, cmat x, llm::strided_view<const TW, 2> w1,
                    llm::strided_view<const TW, 2> w3, llm::strided_view<const TW, 2> w2, float beta, llm::workspace& ws,
                    auto& exec) {
    const std::size_t n = x.extent(0), ff = w1.extent(0);
    if (n == 0) {
        return;
    }
    llm::gemm(rows_of(gate, n, ff, ff), x, w1.template transposed<0, 1>(), 1.0f, 0.0f, ws, exec);
    llm::gemm(rows_of(up, n, ff, ff), x, w3.template transposed<0, 1>(), 1.0f, 0.0f, ws, exec);
    parallel::parallel_for(exec, n, grain_for(ff), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t i = r0 * ff; i < r1 * ff; ++i) {
            act[i] = tile::swiglu(gate[i], up[i]);
        }
    });
    llm::gemm(y, crows_of(act, n, ff, ff), w2.template transposed<0, 1>(), 1.0f, beta, ws, exec);
}

/// Backward of swiglu_forward for n rows given dy [n, d]: dw2 += dy^T act, dw1 += dgate^T x,
/// dw3 += dup^T x, and dx = dgate w1 + dup w3 (beta_dx: 0 overwrites dx, 1 adds). dgate and dup
/// are [n, ff] scratch.
template <class TW>
void swiglu_backward(mat dx, mat dw1, mat dw3, mat dw2, float* dgate, float* dup, cmat dy, const float* gate,
                     const float* up, const float* act, cmat x, llm::strided_view<const TW, 2> w1,
                     llm::strided_view<const TW, 2> w3, llm::strided_view<const TW, 2> w2, float beta_dx,
                     llm::workspace& ws, auto& exec) {
    const std::size_t n = x.extent(0), ff = w1.extent(0);
    if (n == 0) {
        return;
    }
    // dact = dy w2: [n, d] x [d, ff] (into dgate, then split into the two products in place).
    llm::gemm(rows_of(dgate, n, ff, ff), dy, w2, 1.0f, 0.0f, ws, exec);
    llm::gemm(dw2, dy.transposed<0, 1>(), crows_of(act, n, ff, ff), 1.0f, 1.0f, ws, exec);
    parallel::parallel_for(exec, n, grain_for(ff), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t i = r0 * ff; i < r1 * ff; ++i) {
            const float g = gate[i], da = dgate[i];
            dup[i] = da * g * tile::sigmoid_f(g);
            dgate[i] = da * up[i] * tile::silu_grad(g);
        }
    });
    const cmat dg = crows_of(dgate, n, ff, ff), du = crows_of(dup, n, ff, ff);
    llm::gemm(dw1, dg.transposed<0, 1>(), x, 1.0f, 1.0f, ws, exec);
    llm::gemm(dw3, du.transposed<0, 1>(), x, 1.0f, 1.0f, ws, exec);
    llm::gemm(dx, dg, w1, 1.0f, beta_dx, ws, exec);
    llm::gemm(dx, du, w3, 1.0f, 1.0f, ws, exec);
}

/// y[t, :] = sum over slots j of w[t, j] * yp[pos[t, j], :] (slot order), plus `add` when
/// add_existing (y already holds the shared experts' output). P: dispatch_plan or plan_ref.
template <class Y, class P>
void combine(Y& y, const float* yp, const P& plan, const float* w, std::size_t T, std::size_t S,
             std::size_t d, bool add_existing, auto& exec) {
    parallel::parallel_for(exec, T, grain_for(d * S), [&](std::size_t t0, std::size_t t1) {
        for (std::size_t t = t0; t < t1; ++t) {
            const std::int32_t* pos = &plan.pos[t * S];
            const float* wt = w + t * S;
            for (std::size_t c = 0; c < d; ++c) {
                const float v = tile::combine_column(yp, d, pos, wt, S, c);
                y(t, c) = add_existing ? y(t, c) + v : v;
            }
        }
    });
}

/// Backward of combine: dweights[t, j] = dy[t] . yp[pos[t, j]] (written), dyp[pos[t, j]] =
/// w[t, j] dy[t] (written; every permuted row is one pair's).
template <class DY>
void combine_backward(float* dweights, float* dyp, const DY& dy, const float* yp, const dispatch_plan& plan,
                      const float* w, std::size_t T, std::size_t S, std::size_t d, auto& exec) {
    parallel::parallel_for(exec, T, grain_for(d * S), [&](std::size_t t0, std::size_t t1) {
        for (std::size_t t = t0; t < t1; ++t) {
            for (std::size_t j = 0; j < S; ++j) {
                const std::int32_t p = plan.pos[t * S + j];
                float dot = 0.0f;
                if (p >= 0) {
                    const auto r = static_cast<std::size_t>(p);
                    for (std::size_t c = 0; c < d; ++c) {
                        dot += dy(t, c) * yp[r * d + c];
                        dyp[r * d + c] = w[t * S + j] * dy(t, c);
                    }
                }
                dweights[t * S + j] = dot;
            }
        }
    });
}

/// Backward of gather: dx[t, :] += sum over the token's slots (slot order) of dxp[pos[t, j], :].
template <class DX>
void gather_backward(DX& dx, const float* dxp, const dispatch_plan& plan, std::size_t T, std::size_t S, std::size_t d,
                     auto& exec) {
    parallel::parallel_for(exec, T, grain_for(d * S), [&](std::size_t t0, std::size_t t1) {
        for (std::size_t t = t0; t < t1; ++t) {
            for (std::size_t j = 0; j < S; ++j) {
                const std::int32_t p = plan.pos[t * S + j];
                if (p >= 0) {
                    const float* src = dxp + static_cast<std::size_t>(p) * d;
                    for (std::size_t c = 0; c < d; ++c) {
                        dx(t, c) += src[c];
                    }
                }
            }
        }
    });
}

}  // namespace llm::moe::detail
