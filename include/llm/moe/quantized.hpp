// SPDX-License-Identifier: Apache-2.0
// The MoE layer's forward (inference) with block-quantized expert weights through llm::quant::gemm.
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/moe/moe.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/weights.hpp>
#include <llm/tensor/concepts.hpp>

#include <cstddef>
#include <type_traits>

namespace llm::moe {

/// The MoE layer's weights with quantized experts (inference): the router's gate fp32
/// `[E, d]`, and every expert's w1 (gate projection), w3 (up) as one stacked quantized_matrix
/// `[E * ff, d]` each and w2 (down) as `[E * d, ff]` (rows of expert e at `e * ff` resp.
/// `e * d`; GGUF's ffn_gate_exps / ffn_up_exps / ffn_down_exps, and Mixtral's
/// experts.E.w1 / w3 / w2 quantized row by row, stacked). W: a view from
/// llm::quant::matrix_view (rows of consecutive blocks); d and ff multiples of the format's
/// block size (32 for Q8_0 / Q4_0, 256 for Q4_K).
/// Example: `llm::moe::quantized_moe_weights<decltype(w1)> w{gate, w1, w3, w2, 4, 512};`
template <llm::quant::quantized_matrix W>
struct quantized_moe_weights {
    llm::strided_view<const float, 2> gate;  ///< router [E, d], fp32
    W w1;                                    ///< gate projections, stacked [E * ff, d]
    W w3;                                    ///< up projections, stacked [E * ff, d]
    W w2;                                    ///< down projections, stacked [E * d, ff]
    std::size_t experts = 0;                 ///< E
    std::size_t d_ff = 0;                    ///< ff
};

namespace detail {

// Rows [r0, r0 + rows) of a contiguous quantized matrix, as the same view type.
template <class W>
W quant_rows(const W& w, std::size_t r0, std::size_t rows) {
    constexpr std::size_t B = llm::quant::weight_format_t<W>::block_size;
    const std::size_t cols = static_cast<std::size_t>(w.extent(1));
    return W(w.data() + r0 * (cols / B), rows, cols);
}

template <class W>
void check_quantized(const char* fn, const quantized_moe_weights<W>& w) {
    const std::size_t E = w.experts, ff = w.d_ff, d = w.gate.extent(1);
    llm::check(E > 0 && ff > 0 && w.gate.extent(0) == E, fn, ": gate is [", w.gate.extent(0), ", ", d,
               "] for experts = ", E, " (d_ff = ", ff, ")");
    auto is = [&](const W& m, std::size_t r, std::size_t c, const char* name) {
        llm::check(static_cast<std::size_t>(m.extent(0)) == r && static_cast<std::size_t>(m.extent(1)) == c, fn, ": ",
                   name, " is [", m.extent(0), ", ", m.extent(1), "], want [", r, ", ", c, "]");
        llm::check(r <= 1 || static_cast<std::size_t>(m.stride(0)) == c, fn, ": ", name,
                   " must be contiguous rows (row stride ", m.stride(0), ", cols ", c, ")");
    };
    is(w.w1, E * ff, d, "w1");
    is(w.w3, E * ff, d, "w3");
    is(w.w2, E * d, ff, "w2");
}

}  // namespace detail

/// The MoE layer's forward with quantized experts (forward only, for inference): the same
/// routing (fp32 router logits x gate^T, the router r), dispatch (counting sort, dropless or
/// capacity by opt) and weighted combine as moe_forward, with every expert's three products
/// by llm::quant::gemm over its group of rows (the activations quantized to Q8_0 / Q8_K as
/// llm::quant::gemm does; `qopt.path = generic` multiplies dequantized weight blocks by the fp32
/// activations instead). y [T, d] is written; the cache holds the routing, plan and
/// activations (no backward reads it). Errors as moe_forward, plus shapes of w.
/// Arguments (docs/conventions.md): output y; saved state cache; input x; parameters w;
/// options r, opt, qopt; workspace; executor.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, w, llm::moe::softmax_top_k{.k = 2}, {}, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, llm::quant::quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const quantized_moe_weights<W>& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, llm::workspace& ws,
                           parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_forward_quantized";
    const auto xs = llm::to_kernel_view<2>(x);
    const auto ys = llm::to_kernel_view<2>(y);
    detail::check_quantized(fn, w);
    const std::size_t T = xs.extent(0), d = w.gate.extent(1), E = w.experts, ff = w.d_ff;
    detail::check_io(fn, "x", xs.extent(0), xs.extent(1), T, d);
    detail::check_io(fn, "y", ys.extent(0), ys.extent(1), T, d);
    const std::size_t S = r.slots(E);
    const std::size_t cap = detail::capacity_of(fn, opt, T, S, E);
    cache.tokens = T;
    cache.experts = E;
    cache.slots = S;
    cache.d_model = d;
    cache.d_ff = ff;
    cache.d_ff_shared = 0;
    cache.logits.resize(T * E);
    cache.probs.resize(T * E);
    cache.expert_ids.resize(T * S);
    cache.weights.resize(T * S);
    cache.aux_loss = cache.z_loss = 0.0f;
    if (T == 0) {
        cache.plan.offsets.assign(E + 1, 0);
        cache.plan.rows.clear();
        cache.plan.pos.clear();
        cache.plan.dropped = 0;
        return;
    }
    llm::gemm(detail::rows_of(cache.logits.data(), T, E, E), xs, w.gate.template transposed<0, 1>(), 1.0f, 0.0f, ws, exec);
    const routing rt = cache.routing_views();
    detail::check_logits(fn, cache.logits_view());
    r.forward(rt, cache.logits_view(), exec);
    plan_dispatch(cache.plan, rt.experts, E, cap);
    const std::size_t N = cache.plan.size();
    cache.xp.resize(N * d);
    cache.yp.resize(N * d);
    cache.gate.resize(N * ff);
    cache.up.resize(N * ff);
    cache.act.resize(N * ff);
    detail::gather(cache.xp.data(), xs, cache.plan, d, exec);
    for (std::size_t e = 0; e < E; ++e) {
        const std::size_t o = cache.plan.offsets[e], n = cache.plan.offsets[e + 1] - o;
        if (n == 0) {
            continue;
        }
        const detail::cmat xe = detail::crows_of(cache.xp.data() + o * d, n, d, d);
        float* gate = cache.gate.data() + o * ff;
        float* up = cache.up.data() + o * ff;
        float* act = cache.act.data() + o * ff;
        llm::quant::gemm(detail::rows_of(gate, n, ff, ff), xe, detail::quant_rows(w.w1, e * ff, ff), qopt, ws, exec);
        llm::quant::gemm(detail::rows_of(up, n, ff, ff), xe, detail::quant_rows(w.w3, e * ff, ff), qopt, ws, exec);
        parallel::parallel_for(exec, n, detail::grain_for(ff), [&](std::size_t r0, std::size_t r1) {
            for (std::size_t i = r0 * ff; i < r1 * ff; ++i) {
                act[i] = tile::swiglu(gate[i], up[i]);
            }
        });
        llm::quant::gemm(detail::rows_of(cache.yp.data() + o * d, n, d, d), detail::crows_of(act, n, ff, ff),
                         detail::quant_rows(w.w2, e * d, d), qopt, ws, exec);
    }
    detail::combine(ys, cache.yp.data(), cache.plan, cache.weights.data(), T, S, d, false, exec);
}

/// moe_forward_quantized with a workspace of its own for this call.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, w, llm::moe::softmax_top_k{}, {}, {}, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, llm::quant::quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const quantized_moe_weights<W>& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, parallel::policy auto&& exec) {
    llm::workspace ws;
    moe_forward_quantized(y, cache, x, w, r, opt, qopt, ws, exec);
}

}  // namespace llm::moe
