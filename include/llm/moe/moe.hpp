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

/// The batch of a forward: T tokens, S slots per token, the capacity per expert.
struct forward_shape {
    std::size_t tokens, slots, capacity;
};

/// Every forward's checks of x and y [T, d] and of the options; the batch's shape.
template <class XS, class YS, class R>
forward_shape check_forward(const char* fn, const XS& xs, const YS& ys, std::size_t d, std::size_t E, const R& r,
                            const moe_options& opt) {
    const std::size_t T = xs.extent(0);
    check_io(fn, "x", xs.extent(0), xs.extent(1), T, d);
    check_io(fn, "y", ys.extent(0), ys.extent(1), T, d);
    const std::size_t S = r.slots(E);
    return {T, S, capacity_of(fn, opt, T, S, E)};
}

/// Where one forward keeps its routing, plan and per-row activations: the cache's vectors
/// (moe_forward, moe_forward_quantized) or workspace regions (moe_infer, the block's decode
/// step). The per-row buffers hold T * slots rows (N <= T * slots).
struct forward_buffers {
    std::size_t tokens = 0, experts = 0, slots = 0;  ///< T, E, S
    float* logits = nullptr;                         ///< [T, E]
    float* probs = nullptr;                          ///< [T, E]
    std::int32_t* expert_ids = nullptr;              ///< [T, S]
    float* weights = nullptr;                        ///< [T, S]
    plan_ref plan;                                   ///< the dispatch
    float* xp = nullptr;                             ///< [N, d] gathered rows
    float* yp = nullptr;                             ///< [N, d] expert outputs
    float* gate = nullptr;                           ///< [N, ff]
    float* up = nullptr;                             ///< [N, ff]
    float* act = nullptr;                            ///< [N, ff]
    float* shared_gate = nullptr;                    ///< [T, ffs]
    float* shared_up = nullptr;                      ///< [T, ffs]
    float* shared_act = nullptr;                     ///< [T, ffs]

    [[nodiscard]] routing routing_views() const {
        return {{expert_ids, llm::dims<2>(tokens, slots), llm::unit_last_stride<2>(slots)},
                {weights, llm::dims<2>(tokens, slots), llm::unit_last_stride<2>(slots)},
                {probs, llm::dims<2>(tokens, experts), llm::unit_last_stride<2>(experts)}};
    }
    [[nodiscard]] llm::row_view<const float, 2> logits_view() const {
        return {logits, llm::dims<2>(tokens, experts), llm::unit_last_stride<2>(experts)};
    }
};

/// The cache sized for a forward of T tokens (shapes recorded, losses zeroed), as buffers.
/// Reuses its memory: a cache grown to T tokens serves T or fewer without allocating.
inline forward_buffers cache_buffers(moe_cache& c, std::size_t T, std::size_t E, std::size_t S, std::size_t d,
                                     std::size_t ff, std::size_t fs) {
    c.tokens = T;
    c.experts = E;
    c.slots = S;
    c.d_model = d;
    c.d_ff = ff;
    c.d_ff_shared = fs;
    c.aux_loss = c.z_loss = 0.0f;
    const std::size_t P = T * S;
    c.logits.resize(T * E);
    c.probs.resize(T * E);
    c.expert_ids.resize(P);
    c.weights.resize(P);
    c.xp.resize(P * d);
    c.yp.resize(P * d);
    c.gate.resize(P * ff);
    c.up.resize(P * ff);
    c.act.resize(P * ff);
    c.shared_gate.resize(T * fs);
    c.shared_up.resize(T * fs);
    c.shared_act.resize(T * fs);
    return {T,        E,          S,          c.logits.data(), c.probs.data(), c.expert_ids.data(), c.weights.data(),
            plan_memory(c.plan, T, S, E), c.xp.data(), c.yp.data(), c.gate.data(), c.up.data(), c.act.data(),
            c.shared_gate.data(), c.shared_up.data(), c.shared_act.data()};
}

/// Trims the cache's plan and per-row buffers to the forward's N rows.
inline void cache_done(moe_cache& c, const forward_buffers& b) {
    plan_done(c.plan, b.plan);
    const std::size_t N = b.plan.size();
    c.xp.resize(N * c.d_model);
    c.yp.resize(N * c.d_model);
    c.gate.resize(N * c.d_ff);
    c.up.resize(N * c.d_ff);
    c.act.resize(N * c.d_ff);
}

/// The buffers of a forward of T tokens taken from ws (inside the caller's frame).
inline forward_buffers workspace_buffers(llm::workspace& ws, std::size_t T, std::size_t E, std::size_t S,
                                         std::size_t d, std::size_t ff, std::size_t fs) {
    constexpr const char* fn = "moe_infer";
    const std::size_t P = T * S;
    forward_buffers b;
    b.tokens = T;
    b.experts = E;
    b.slots = S;
    b.logits = ws.take<float>(T * E, fn, "router logits");
    b.probs = ws.take<float>(T * E, fn, "router scores");
    b.expert_ids = ws.take<std::int32_t>(P, fn, "chosen experts");
    b.weights = ws.take<float>(P, fn, "routing weights");
    b.plan.offsets = ws.take<std::size_t>(E + 1, fn, "plan offsets");
    b.plan.rows = ws.take<std::int32_t>(P, fn, "plan rows");
    b.plan.pos = ws.take<std::int32_t>(P, fn, "plan positions");
    b.plan.cursor = ws.take<std::size_t>(E, fn, "plan cursor");
    b.xp = ws.take<float>(P * d, fn, "gathered rows");
    b.yp = ws.take<float>(P * d, fn, "expert outputs");
    b.gate = ws.take<float>(P * ff, fn, "gate projections");
    b.up = ws.take<float>(P * ff, fn, "up projections");
    b.act = ws.take<float>(P * ff, fn, "activations");
    b.shared_gate = ws.take<float>(T * fs, fn, "shared gate projections");
    b.shared_up = ws.take<float>(T * fs, fn, "shared up projections");
    b.shared_act = ws.take<float>(T * fs, fn, "shared activations");
    return b;
}

/// The route-and-plan preamble of every forward (fp32 and quantized experts): logits =
/// x gate^T, the NaN check, the router, the counting sort (capacity cap) and the gather of
/// the rows into per-expert blocks (b.xp). Returns N, the rows gathered. T > 0.
template <class XS, class TG, router R>
std::size_t route_and_gather(const char* fn, forward_buffers& b, const XS& xs, const llm::strided_view<const TG, 2>& gate,
                             const R& r, std::size_t cap, llm::workspace& ws, auto& exec) {
    const std::size_t T = b.tokens, E = b.experts, d = gate.extent(1);
    llm::gemm(rows_of(b.logits, T, E, E), xs, gate.template transposed<0, 1>(), 1.0f, 0.0f, ws, exec);
    const routing rt = b.routing_views();
    check_logits(fn, b.logits_view());
    r.forward(rt, b.logits_view(), exec);
    plan_into(b.plan, rt.experts, E, cap);
    gather(b.xp, xs, b.plan, d, exec);
    return b.plan.size();
}

/// An empty batch's plan: every group empty, nothing dropped.
inline void plan_empty(forward_buffers& b) {
    std::fill(b.plan.offsets, b.plan.offsets + b.experts + 1, std::size_t{0});
    b.plan.n = b.plan.dropped = 0;
}

/// The fp32 / bf16 forward after the cache or workspace has given its buffers: route and
/// gather, every expert's SwiGLU over its rows, the shared experts, the weighted combine.
template <class YS, class XS, router R, class TW>
void forward_into(const char* fn, YS& ys, forward_buffers& b, const XS& xs, const basic_moe_weights<TW>& w, const R& r,
                  std::size_t cap, llm::workspace& ws, auto& exec) {
    const std::size_t T = b.tokens, d = w.d_model(), E = w.experts(), ff = w.d_ff();
    if (T == 0) {
        plan_empty(b);
        return;
    }
    route_and_gather(fn, b, xs, w.gate, r, cap, ws, exec);
    for (std::size_t e = 0; e < E; ++e) {
        const std::size_t o = b.plan.offsets[e], n = b.plan.offsets[e + 1] - o;
        swiglu_forward(rows_of(b.yp + o * d, n, d, d), b.gate + o * ff, b.up + o * ff, b.act + o * ff,
                       crows_of(b.xp + o * d, n, d, d), slice(w.w1, e), slice(w.w3, e), slice(w.w2, e), 0.0f, ws, exec);
    }
    if (w.has_shared()) {
        swiglu_forward(ys, b.shared_gate, b.shared_up, b.shared_act, xs, w.shared_w1, w.shared_w3, w.shared_w2, 0.0f,
                       ws, exec);
    }
    combine(ys, b.yp, b.plan, b.weights, T, b.slots, d, w.has_shared(), exec);
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
/// Elements: x, y fp32; weights fp32 or bf16 (basic_moe_weights<T>); fp32 maths. Deterministic: the same result for every run with the same executor and thread count; across executors, as llm::gemm is (its one-row path differs in the last bits between sequential{} and a thread_pool, so a batch whose expert groups have single rows may differ there; larger groups give identical results).
/// Example: `llm::moe::moe_forward(y, cache, x, w, llm::moe::softmax_top_k{.k = 2}, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward(Y&& y, moe_cache& cache, X&& x, const basic_moe_weights<TW>& w, const R& r, const moe_options& opt,
                 llm::workspace& ws, parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_forward";
    const auto xs = llm::to_kernel_view<2>(x);
    const auto ys = llm::to_kernel_view<2>(y);
    detail::check_weights(fn, w);
    const auto [T, S, cap] = detail::check_forward(fn, xs, ys, w.d_model(), w.experts(), r, opt);
    detail::forward_buffers b = detail::cache_buffers(cache, T, w.experts(), S, w.d_model(), w.d_ff(), w.d_ff_shared());
    detail::forward_into(fn, ys, b, xs, w, r, cap, ws, exec);
    detail::cache_done(cache, b);
    if (T == 0) {
        return;
    }
    const const_routing rt = cache.routing_views();
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

/// The MoE forward for inference, with no cache: the routing, the dispatch plan and every
/// per-row activation live in the workspace for the length of the call, so a warmed
/// workspace makes the call allocation-free (moe_ffn's decode step runs it every token).
/// The same result as moe_forward, bit for bit; no losses are computed.
/// Arguments (docs/conventions.md): output y [T, d]; input x [T, d]; parameters w; options
/// r, opt; workspace; executor. Errors as moe_forward.
/// Example: `llm::moe::moe_infer(y, x, w, llm::moe::softmax_top_k{.k = 2}, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, float_or_bf16 TW>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_infer(Y&& y, X&& x, const basic_moe_weights<TW>& w, const R& r, const moe_options& opt, llm::workspace& ws,
               parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_infer";
    const auto xs = llm::to_kernel_view<2>(x);
    const auto ys = llm::to_kernel_view<2>(y);
    detail::check_weights(fn, w);
    const auto [T, S, cap] = detail::check_forward(fn, xs, ys, w.d_model(), w.experts(), r, opt);
    const llm::workspace::frame frame(ws);
    detail::forward_buffers b = detail::workspace_buffers(ws, T, w.experts(), S, w.d_model(), w.d_ff(), w.d_ff_shared());
    detail::forward_into(fn, ys, b, xs, w, r, cap, ws, exec);
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
