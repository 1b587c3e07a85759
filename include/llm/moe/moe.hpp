// SPDX-License-Identifier: Apache-2.0
// The MoE module's public header: routers, losses, dispatch, and the MoE FFN layer's forward and accumulating backward (router -> dispatch -> grouped SwiGLU experts -> combine).
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/moe/cpu.hpp>
#include <llm/moe/losses.hpp>
#include <llm/moe/params.hpp>
#include <llm/moe/router.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace llm::moe {

namespace detail {

inline std::size_t capacity_of(const char* fn, const moe_options& opt, std::size_t T, std::size_t S, std::size_t E) {
    if (!opt.capacity_factor) {
        return dropless;
    }
    const double cf = *opt.capacity_factor;
    llm::check(cf > 0.0 && std::isfinite(cf), fn, ": capacity_factor = ", cf, " must be > 0 (unset: dropless)");
    return static_cast<std::size_t>(
        std::ceil(cf * static_cast<double>(T) * static_cast<double>(S) / static_cast<double>(E)));
}

inline void check_io(const char* fn, const char* name, std::size_t rows, std::size_t cols, std::size_t T, std::size_t d) {
    llm::check(rows == T && cols == d, fn, ": ", name, " is [", rows, ", ", cols, "] but must be [", T, ", ", d,
               "] (tokens, d_model)");
}

}  // namespace detail

/// The MoE FFN layer (Mixtral's MixtralSparseMoeBlock, generalised): logits = x gate^T, the
/// router `r` picks experts and weights per token, tokens are gathered into contiguous
/// per-expert blocks (counting sort; dropless by default, capacity mode by option), each
/// expert runs its SwiGLU FFN w2 (SiLU(x w1^T) * x w3^T) as GEMMs over its variable-size
/// group, and the outputs are scattered back weighted: y[t] = sum_j weight[t, j] expert_j(x[t])
/// (+ the shared experts' SwiGLU of x[t] when the weights have them). y is written.
/// The cache keeps what the backward needs (routing, plan, activations) and the losses.
/// An empty batch (T = 0) writes nothing and leaves an empty cache. llm::error on a NaN
/// router logit, on shapes that disagree with the weights, k > E, a capacity factor <= 0.
/// Arguments (docs/conventions.md): output y [T, d]; saved state cache; input x [T, d];
/// parameters w (make_moe_weights); options r (a router policy) and opt; workspace; executor.
/// Elements: x, y fp32; weights fp32 or bf16 (basic_moe_weights<T>); fp32 maths. Deterministic: the same result for any executor and thread count.
/// Example: `llm::moe::moe_forward(y, cache, x, w, llm::moe::softmax_top_k{.k = 2}, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward(Y&& y, moe_cache& cache, X&& x, const basic_moe_weights<TW>& w, const R& r, const moe_options& opt,
                 llm::workspace& ws, parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_forward";
    const auto xs = llm::to_kernel_view<2>(x);
    const auto ys = llm::to_kernel_view<2>(y);
    detail::check_weights(fn, w);
    const std::size_t T = xs.extent(0), d = w.d_model(), E = w.experts(), ff = w.d_ff(), fs = w.d_ff_shared();
    detail::check_io(fn, "x", xs.extent(0), xs.extent(1), T, d);
    detail::check_io(fn, "y", ys.extent(0), ys.extent(1), T, d);
    const std::size_t S = r.slots(E);
    const std::size_t cap = detail::capacity_of(fn, opt, T, S, E);
    cache.tokens = T;
    cache.experts = E;
    cache.slots = S;
    cache.d_model = d;
    cache.d_ff = ff;
    cache.d_ff_shared = fs;
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
        detail::swiglu_forward(detail::rows_of(cache.yp.data() + o * d, n, d, d), cache.gate.data() + o * ff,
                               cache.up.data() + o * ff, cache.act.data() + o * ff,
                               detail::crows_of(cache.xp.data() + o * d, n, d, d), detail::slice(w.w1, e),
                               detail::slice(w.w3, e), detail::slice(w.w2, e), 0.0f, ws, exec);
    }
    if (w.has_shared()) {
        cache.shared_gate.resize(T * fs);
        cache.shared_up.resize(T * fs);
        cache.shared_act.resize(T * fs);
        detail::swiglu_forward(ys, cache.shared_gate.data(), cache.shared_up.data(), cache.shared_act.data(), xs,
                               w.shared_w1, w.shared_w3, w.shared_w2, 0.0f, ws, exec);
    }
    detail::combine(ys, cache.yp.data(), cache.plan, cache.weights.data(), T, S, d, w.has_shared(), exec);
    if (opt.aux_loss_coef != 0.0f) {
        cache.aux_loss = load_balancing_loss(cache.logits_view(), rt.experts);
    }
    if (opt.z_loss_coef != 0.0f) {
        cache.z_loss = router_z_loss(cache.logits_view());
    }
}

/// moe_forward with a workspace of its own for this call.
/// Example: `llm::moe::moe_forward(y, cache, x, w, llm::moe::softmax_top_k{}, {}, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward(Y&& y, moe_cache& cache, X&& x, const basic_moe_weights<TW>& w, const R& r, const moe_options& opt,
                 parallel::policy auto&& exec) {
    llm::workspace ws;
    moe_forward(y, cache, x, w, r, opt, ws, exec);
}

/// moe_forward on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::moe::moe_forward(y, cache, x, w, llm::moe::softmax_top_k{}, {});`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward(Y&& y, moe_cache& cache, X&& x, const basic_moe_weights<TW>& w, const R& r, const moe_options& opt) {
    llm::workspace ws;
    moe_forward(y, cache, x, w, r, opt, ws, parallel::default_pool());
}

/// Backward of moe_forward: ADDS into dx [T, d] and every gradient in g (the router's gate,
/// w1, w3, w2 of every expert, the shared experts' when present), through the combine
/// (d weights and d expert outputs), the experts, the gather and the router (route_backward
/// of `r`), plus aux_loss_coef * load_balancing_loss and z_loss_coef * router_z_loss when set.
/// Dropped pairs and empty slots contribute nothing. `cache` must come from the forward of
/// this x, w, r and opt.
/// Arguments (docs/conventions.md): outputs dx and g; saved state cache; inputs dy, x;
/// parameters w; options r, opt; workspace; executor.
/// Example: `llm::moe::moe_backward(dx, g, cache, dy, x, w, router, {}, ws, pool);`
template <mutable_dense_view<2> DX, dense_view<2> DY, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<DX>, float> && std::same_as<std::remove_const_t<view_element_t<DY>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_backward(DX&& dx, const moe_grads& g, const moe_cache& cache, DY&& dy, X&& x, const basic_moe_weights<TW>& w,
                  const R& r, const moe_options& opt, llm::workspace& ws, parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_backward";
    const auto xs = llm::to_kernel_view<2>(x);
    const auto dys = llm::to_kernel_view<2>(dy);
    const auto dxs = llm::to_kernel_view<2>(dx);
    detail::check_weights(fn, w);
    const std::size_t T = xs.extent(0), d = w.d_model(), E = w.experts(), ff = w.d_ff(), fs = w.d_ff_shared();
    const std::size_t S = r.slots(E);
    detail::check_io(fn, "x", xs.extent(0), xs.extent(1), T, d);
    detail::check_io(fn, "dy", dys.extent(0), dys.extent(1), T, d);
    detail::check_io(fn, "dx", dxs.extent(0), dxs.extent(1), T, d);
    llm::check(cache.tokens == T && cache.experts == E && cache.slots == S && cache.d_model == d &&
                   cache.d_ff == ff && cache.d_ff_shared == fs,
               fn, ": the cache holds a forward of ", cache.tokens, " tokens, ", cache.experts, " experts, ",
               cache.slots, " slots, d ", cache.d_model, ", ff ", cache.d_ff, ", not of this call's ", T, ", ", E,
               ", ", S, ", ", d, ", ", ff);
    llm::check(g.w1.extent(0) == E && g.w1.extent(1) == ff && g.w1.extent(2) == d && g.w3.extent(0) == E &&
                   g.w3.extent(1) == ff && g.w3.extent(2) == d && g.w2.extent(0) == E && g.w2.extent(1) == d &&
                   g.w2.extent(2) == ff && g.gate.extent(0) == E && g.gate.extent(1) == d,
               fn, ": the gradients must have the weights' shapes");
    llm::check(!w.has_shared() || (g.shared_w1.data() != nullptr && g.shared_w1.extent(0) == fs &&
                                   g.shared_w1.extent(1) == d && g.shared_w3.extent(0) == fs &&
                                   g.shared_w3.extent(1) == d && g.shared_w2.extent(0) == d && g.shared_w2.extent(1) == fs),
               fn, ": the shared-expert gradients must have the shared weights' shapes");
    if (T == 0) {
        return;
    }
    const std::size_t N = cache.plan.size();
    const llm::workspace::frame frame(ws);
    float* dyp = ws.take<float>(N * d, fn, "d expert outputs");
    float* dxp = ws.take<float>(N * d, fn, "d gathered inputs");
    float* dgate = ws.take<float>(std::max(N * ff, T * fs), fn, "d gate");
    float* dup = ws.take<float>(std::max(N * ff, T * fs), fn, "d up");
    float* dweights = ws.take<float>(T * S, fn, "d routing weights");
    float* dlogits = ws.take<float>(T * E, fn, "d router logits");
    // dx's three parts (gather, shared experts, router) are summed here and added to dx once,
    // so a second call adds exactly the same value (gradients accumulate: 2x on two calls).
    float* dxt = ws.take<float>(T * d, fn, "d x of this call");
    std::fill(dxt, dxt + T * d, 0.0f);
    const detail::mat dxm = detail::rows_of(dxt, T, d, d);
    detail::combine_backward(dweights, dyp, dys, cache.yp.data(), cache.plan, cache.weights.data(), T, S, d, exec);
    for (std::size_t e = 0; e < E; ++e) {
        const std::size_t o = cache.plan.offsets[e], n = cache.plan.offsets[e + 1] - o;
        detail::swiglu_backward(detail::rows_of(dxp + o * d, n, d, d), detail::slice(g.w1, e), detail::slice(g.w3, e),
                                detail::slice(g.w2, e), dgate + o * ff, dup + o * ff,
                                detail::crows_of(dyp + o * d, n, d, d), cache.gate.data() + o * ff,
                                cache.up.data() + o * ff, cache.act.data() + o * ff,
                                detail::crows_of(cache.xp.data() + o * d, n, d, d), detail::slice(w.w1, e),
                                detail::slice(w.w3, e), detail::slice(w.w2, e), 0.0f, ws, exec);
    }
    detail::gather_backward(dxm, dxp, cache.plan, T, S, d, exec);
    if (w.has_shared()) {
        detail::swiglu_backward(dxm, g.shared_w1, g.shared_w3, g.shared_w2, dgate, dup, dys, cache.shared_gate.data(),
                                cache.shared_up.data(), cache.shared_act.data(), xs, w.shared_w1, w.shared_w3,
                                w.shared_w2, 1.0f, ws, exec);
    }
    std::fill(dlogits, dlogits + T * E, 0.0f);
    const detail::mat dl = detail::rows_of(dlogits, T, E, E);
    const llm::row_view<float, 2> dlr(dlogits, llm::dims<2>(T, E), llm::unit_last_stride<2>(E));
    const llm::row_view<const float, 2> dwr(dweights, llm::dims<2>(T, S), llm::unit_last_stride<2>(S));
    r.backward(dlr, cache.routing_views(), dwr, cache.logits_view(), exec);
    const const_routing rt = cache.routing_views();
    if (opt.aux_loss_coef != 0.0f) {
        load_balancing_loss_backward(dlr, opt.aux_loss_coef, cache.logits_view(), rt.experts);
    }
    if (opt.z_loss_coef != 0.0f) {
        router_z_loss_backward(dlr, opt.z_loss_coef, cache.logits_view());
    }
    // dgate += dlogits^T x; dx += dlogits gate.
    llm::gemm(g.gate, dl.transposed<0, 1>(), xs, 1.0f, 1.0f, ws, exec);
    llm::gemm(dxm, dl, w.gate, 1.0f, 1.0f, ws, exec);
    parallel::parallel_for(exec, T, detail::grain_for(d), [&](std::size_t t0, std::size_t t1) {
        for (std::size_t t = t0; t < t1; ++t) {
            for (std::size_t c = 0; c < d; ++c) {
                dxs(t, c) += dxt[t * d + c];
            }
        }
    });
}

/// moe_backward with a workspace of its own for this call.
/// Example: `llm::moe::moe_backward(dx, g, cache, dy, x, w, router, {}, llm::parallel::sequential{});`
template <mutable_dense_view<2> DX, dense_view<2> DY, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<DX>, float> && std::same_as<std::remove_const_t<view_element_t<DY>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_backward(DX&& dx, const moe_grads& g, const moe_cache& cache, DY&& dy, X&& x, const basic_moe_weights<TW>& w,
                  const R& r, const moe_options& opt, parallel::policy auto&& exec) {
    llm::workspace ws;
    moe_backward(dx, g, cache, dy, x, w, r, opt, ws, exec);
}

/// moe_backward on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::moe::moe_backward(dx, g, cache, dy, x, w, router, {});`
template <mutable_dense_view<2> DX, dense_view<2> DY, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<DX>, float> && std::same_as<std::remove_const_t<view_element_t<DY>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_backward(DX&& dx, const moe_grads& g, const moe_cache& cache, DY&& dy, X&& x, const basic_moe_weights<TW>& w,
                  const R& r, const moe_options& opt) {
    llm::workspace ws;
    moe_backward(dx, g, cache, dy, x, w, r, opt, ws, parallel::default_pool());
}

}  // namespace llm::moe
