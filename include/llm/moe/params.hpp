// SPDX-License-Identifier: Apache-2.0
// The MoE layer's parameter, gradient, option and saved-state types, and the dispatch plan (counting sort of (token, expert) pairs).
#pragma once

#include <llm/core/error.hpp>
#include <llm/moe/router.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

namespace llm::moe {

/// The weights of an MoE FFN layer in Hugging Face Mixtral's layout (nn.Linear: [out, in]):
/// gate [E, d] (the router, `block_sparse_moe.gate`), per expert w1 (gate projection) and w3
/// (up projection) [E, ff, d], w2 (down projection) [E, d, ff]; optional shared always-on
/// SwiGLU experts (DeepSeek / Qwen-MoE) shared_w1, shared_w3 [ffs, d], shared_w2 [d, ffs]
/// (null views: none). Elements T: fp32 or bf16 (widened exactly by llm::gemm; the maths is
/// fp32), any strides. Views, not owners: build with make_moe_weights.
/// Example: `llm::moe::basic_moe_weights<llm::bf16> w = llm::moe::make_moe_weights(gate, w1, w3, w2);`
template <class T>
struct basic_moe_weights {
    using element_type = T;                   ///< The weights' element type (float or llm::bf16).
    llm::strided_view<const T, 2> gate;       ///< [E, d] router weight.
    llm::strided_view<const T, 3> w1;         ///< [E, ff, d] gate projections.
    llm::strided_view<const T, 3> w3;         ///< [E, ff, d] up projections.
    llm::strided_view<const T, 3> w2;         ///< [E, d, ff] down projections.
    llm::strided_view<const T, 2> shared_w1;  ///< [ffs, d] shared gate projection (null: none).
    llm::strided_view<const T, 2> shared_w3;  ///< [ffs, d] shared up projection.
    llm::strided_view<const T, 2> shared_w2;  ///< [d, ffs] shared down projection.

    /// True when shared experts are present.
    /// Example: `if (w.has_shared()) { ... }`
    [[nodiscard]] bool has_shared() const noexcept { return shared_w1.data() != nullptr; }
    /// Experts E.
    /// Example: `std::size_t E = w.experts();`
    [[nodiscard]] std::size_t experts() const noexcept { return w1.extent(0); }
    /// Model width d.
    /// Example: `std::size_t d = w.d_model();`
    [[nodiscard]] std::size_t d_model() const noexcept { return w1.extent(2); }
    /// Expert hidden width ff.
    /// Example: `std::size_t ff = w.d_ff();`
    [[nodiscard]] std::size_t d_ff() const noexcept { return w1.extent(1); }
    /// Shared experts' hidden width (0 without).
    /// Example: `std::size_t ffs = w.d_ff_shared();`
    [[nodiscard]] std::size_t d_ff_shared() const noexcept { return has_shared() ? shared_w1.extent(0) : 0; }
};

/// fp32 MoE weights (see basic_moe_weights).
/// Example: `llm::moe::moe_weights w = llm::moe::make_moe_weights(gate, w1, w3, w2);`
using moe_weights = basic_moe_weights<float>;

/// The gradients of moe_weights, same shapes, fp32, written by accumulation (null shared views
/// when the layer has no shared experts).
/// Example: `auto g = llm::moe::make_moe_grads(dgate, dw1, dw3, dw2);`
struct moe_grads {
    llm::strided_view<float, 2> gate;       ///< [E, d]
    llm::strided_view<float, 3> w1;         ///< [E, ff, d]
    llm::strided_view<float, 3> w3;         ///< [E, ff, d]
    llm::strided_view<float, 3> w2;         ///< [E, d, ff]
    llm::strided_view<float, 2> shared_w1;  ///< [ffs, d]
    llm::strided_view<float, 2> shared_w3;  ///< [ffs, d]
    llm::strided_view<float, 2> shared_w2;  ///< [d, ffs]
};

namespace detail {

template <class T>
void check_shape3(const char* fn, const char* name, const llm::strided_view<const T, 3>& v, std::size_t a,
                         std::size_t b, std::size_t c, const char* what) {
    llm::check(v.extent(0) == a && v.extent(1) == b && v.extent(2) == c, fn, ": ", name, " is [", v.extent(0), ", ",
               v.extent(1), ", ", v.extent(2), "] but must be [", a, ", ", b, ", ", c, "] (", what, ")");
}

template <class T>
void check_shape2(const char* fn, const char* name, const llm::strided_view<const T, 2>& v, std::size_t a,
                         std::size_t b, const char* what) {
    llm::check(v.extent(0) == a && v.extent(1) == b, fn, ": ", name, " is [", v.extent(0), ", ", v.extent(1),
               "] but must be [", a, ", ", b, "] (", what, ")");
}

template <class T>
void check_weights(const char* fn, const basic_moe_weights<T>& w) {
    const std::size_t E = w.experts(), ff = w.d_ff(), d = w.d_model();
    llm::check(E >= 1, fn, ": the layer needs at least one expert");
    check_shape3(fn, "w3", w.w3, E, ff, d, "experts, d_ff, d_model like w1");
    check_shape3(fn, "w2", w.w2, E, d, ff, "experts, d_model, d_ff");
    check_shape2(fn, "gate", w.gate, E, d, "experts, d_model");
    if (w.has_shared()) {
        const std::size_t fs = w.shared_w1.extent(0);
        check_shape2(fn, "shared_w1", w.shared_w1, fs, d, "d_ff_shared, d_model");
        check_shape2(fn, "shared_w3", w.shared_w3, fs, d, "d_ff_shared, d_model");
        check_shape2(fn, "shared_w2", w.shared_w2, d, fs, "d_model, d_ff_shared");
    }
}

}  // namespace detail

/// The MoE weights' element type: that of w1 (fp32 or bf16).
template <class W1>
using weight_element_t = std::remove_const_t<view_element_t<W1>>;

/// basic_moe_weights from views gate [E, d], w1 [E, ff, d], w3 [E, ff, d], w2 [E, d, ff], all
/// fp32 or all bf16; llm::error when the shapes disagree.
/// Example: `auto w = llm::moe::make_moe_weights(gate, w1, w3, w2);`
template <dense_view<2> G, dense_view<3> W1, dense_view<3> W3, dense_view<3> W2>
    requires std::same_as<std::remove_const_t<view_element_t<G>>, weight_element_t<W1>> &&
             std::same_as<std::remove_const_t<view_element_t<W3>>, weight_element_t<W1>> &&
             std::same_as<std::remove_const_t<view_element_t<W2>>, weight_element_t<W1>>
[[nodiscard]] basic_moe_weights<weight_element_t<W1>> make_moe_weights(G&& gate, W1&& w1, W3&& w3, W2&& w2) {
    basic_moe_weights<weight_element_t<W1>> w{llm::to_kernel_view<2>(gate), llm::to_kernel_view<3>(w1), llm::to_kernel_view<3>(w3),
                  llm::to_kernel_view<3>(w2), {}, {}, {}};
    detail::check_weights("moe::make_moe_weights", w);
    return w;
}

/// As make_moe_weights plus shared experts shared_w1, shared_w3 [ffs, d], shared_w2 [d, ffs].
/// Example: `auto w = llm::moe::make_moe_weights(gate, w1, w3, w2, sw1, sw3, sw2);`
template <dense_view<2> G, dense_view<3> W1, dense_view<3> W3, dense_view<3> W2, dense_view<2> S1, dense_view<2> S3,
          dense_view<2> S2>
    requires std::same_as<std::remove_const_t<view_element_t<G>>, weight_element_t<W1>> &&
             std::same_as<std::remove_const_t<view_element_t<W3>>, weight_element_t<W1>> &&
             std::same_as<std::remove_const_t<view_element_t<W2>>, weight_element_t<W1>> &&
             std::same_as<std::remove_const_t<view_element_t<S1>>, weight_element_t<W1>> &&
             std::same_as<std::remove_const_t<view_element_t<S3>>, weight_element_t<W1>> &&
             std::same_as<std::remove_const_t<view_element_t<S2>>, weight_element_t<W1>>
[[nodiscard]] basic_moe_weights<weight_element_t<W1>> make_moe_weights(G&& gate, W1&& w1, W3&& w3, W2&& w2, S1&& sw1,
                                                                       S3&& sw3, S2&& sw2) {
    basic_moe_weights<weight_element_t<W1>> w{llm::to_kernel_view<2>(gate), llm::to_kernel_view<3>(w1), llm::to_kernel_view<3>(w3),
                  llm::to_kernel_view<3>(w2),   llm::to_kernel_view<2>(sw1), llm::to_kernel_view<2>(sw3),
                  llm::to_kernel_view<2>(sw2)};
    detail::check_weights("moe::make_moe_weights", w);
    return w;
}

/// moe_grads from fp32 views shaped like the weights (no shared experts).
/// Example: `auto g = llm::moe::make_moe_grads(dgate, dw1, dw3, dw2);`
template <view_of_rank<2> G, view_of_rank<3> W1, view_of_rank<3> W3, view_of_rank<3> W2>
    requires std::same_as<view_element_t<G>, float> && std::same_as<view_element_t<W1>, float> &&
             std::same_as<view_element_t<W3>, float> && std::same_as<view_element_t<W2>, float>
[[nodiscard]] moe_grads make_moe_grads(G&& gate, W1&& w1, W3&& w3, W2&& w2) {
    return {llm::to_kernel_view<2>(gate), llm::to_kernel_view<3>(w1), llm::to_kernel_view<3>(w3),
            llm::to_kernel_view<3>(w2), {}, {}, {}};
}

/// moe_grads with shared-expert gradients.
/// Example: `auto g = llm::moe::make_moe_grads(dgate, dw1, dw3, dw2, dsw1, dsw3, dsw2);`
template <view_of_rank<2> G, view_of_rank<3> W1, view_of_rank<3> W3, view_of_rank<3> W2, view_of_rank<2> S1,
          view_of_rank<2> S3, view_of_rank<2> S2>
    requires std::same_as<view_element_t<G>, float> && std::same_as<view_element_t<W1>, float> &&
             std::same_as<view_element_t<W3>, float> && std::same_as<view_element_t<W2>, float> &&
             std::same_as<view_element_t<S1>, float> && std::same_as<view_element_t<S3>, float> &&
             std::same_as<view_element_t<S2>, float>
[[nodiscard]] moe_grads make_moe_grads(G&& gate, W1&& w1, W3&& w3, W2&& w2, S1&& sw1, S3&& sw3, S2&& sw2) {
    return {llm::to_kernel_view<2>(gate), llm::to_kernel_view<3>(w1), llm::to_kernel_view<3>(w3),
            llm::to_kernel_view<3>(w2),   llm::to_kernel_view<2>(sw1), llm::to_kernel_view<2>(sw3),
            llm::to_kernel_view<2>(sw2)};
}

/// Options of the MoE layer.
/// Example: `llm::moe::moe_options opt{.capacity_factor = 1.25, .aux_loss_coef = 0.02f};`
struct moe_options {
    /// Capacity mode: each expert takes at most ceil(capacity_factor * T * slots / E) (token,
    /// expert) pairs, in token order; later pairs are dropped (contribute 0). Unset (the
    /// default): dropless, every pair is computed (variable-size groups, as MegaBlocks).
    /// A value <= 0 is llm::error.
    std::optional<double> capacity_factor{};
    /// Coefficient of the load-balancing loss (load_balancing_loss) added by the backward
    /// (transformers' router_aux_loss_coef; 0: not added). The forward stores the loss value.
    float aux_loss_coef = 0.0f;
    /// Coefficient of the router z-loss added by the backward (0: not added).
    float z_loss_coef = 0.0f;
};

/// Where each (token, slot) pair goes: a counting sort by expert, stable in token order.
/// offsets [E + 1]: expert e's rows are [offsets[e], offsets[e + 1]) of the permuted order;
/// rows [N]: the token of permuted row i; pos [T * slots]: the permuted row of pair (t, j), or
/// -1 (empty slot or dropped); dropped: pairs dropped by the capacity.
/// Example: `llm::moe::dispatch_plan plan; llm::moe::plan_dispatch(plan, experts, 8);`
struct dispatch_plan {
    std::vector<std::size_t> offsets;  ///< [E + 1] group starts.
    std::vector<std::int32_t> rows;    ///< [N] token of each permuted row.
    std::vector<std::int32_t> pos;     ///< [T * slots] permuted row of each pair, -1 if none.
    std::size_t dropped = 0;           ///< Pairs dropped by the capacity.
    std::vector<std::size_t> cursor;   ///< [E] scratch of the placing pass (kept: no allocation next time).

    /// Rows in the permuted order (N).
    /// Example: `std::size_t n = plan.size();`
    [[nodiscard]] std::size_t size() const noexcept { return rows.size(); }
};

/// No capacity: every pair is kept.
inline constexpr std::size_t dropless = std::numeric_limits<std::size_t>::max();

namespace detail {

/// A dispatch plan in borrowed memory (the fields of dispatch_plan as pointers): the decode
/// step keeps it in a workspace. rows holds up to T * slots entries, of which n are used.
struct plan_ref {
    std::size_t* offsets = nullptr;  ///< [E + 1]
    std::int32_t* rows = nullptr;    ///< [T * slots], n used
    std::int32_t* pos = nullptr;     ///< [T * slots]
    std::size_t* cursor = nullptr;   ///< [E] scratch of the placing pass
    std::size_t n = 0;               ///< rows used (N)
    std::size_t dropped = 0;         ///< pairs dropped by the capacity
    [[nodiscard]] std::size_t size() const noexcept { return n; }
};

/// The counting sort of plan_dispatch into borrowed memory (plan_dispatch and the decode
/// step share it): count, prefix sum with the capacity, place in (token, slot) order.
template <class EX>
void plan_into(plan_ref& plan, const EX& ex, std::size_t E, std::size_t capacity) {
    constexpr const char* fn = "moe::plan_dispatch";
    const std::size_t T = ex.extent(0), S = ex.extent(1);
    std::fill(plan.offsets, plan.offsets + E + 1, std::size_t{0});
    std::fill(plan.pos, plan.pos + T * S, std::int32_t{-1});
    plan.dropped = 0;
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t j = 0; j < S; ++j) {
            const std::int32_t e = ex(t, j);
            llm::check(e >= -1 && e < static_cast<std::int32_t>(E), fn, ": experts(", t, ", ", j, ") = ", e,
                       " is outside [-1, ", E, ")");
            if (e >= 0) {
                ++plan.offsets[static_cast<std::size_t>(e) + 1];
            }
        }
    }
    for (std::size_t e = 0; e < E; ++e) {
        const std::size_t kept = std::min(plan.offsets[e + 1], capacity);
        plan.dropped += plan.offsets[e + 1] - kept;
        plan.offsets[e + 1] = plan.offsets[e] + kept;
    }
    plan.n = plan.offsets[E];
    std::copy(plan.offsets, plan.offsets + E, plan.cursor);
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t j = 0; j < S; ++j) {
            const std::int32_t e = ex(t, j);
            if (e < 0) {
                continue;
            }
            std::size_t& n = plan.cursor[static_cast<std::size_t>(e)];
            if (n < plan.offsets[static_cast<std::size_t>(e) + 1]) {
                plan.rows[n] = static_cast<std::int32_t>(t);
                plan.pos[t * S + j] = static_cast<std::int32_t>(n);
                ++n;
            }
        }
    }
}

/// The owning plan's memory sized for T * S pairs over E experts, as a plan_ref (rows at
/// their most, T * S; plan_done trims them to the plan's N).
inline plan_ref plan_memory(dispatch_plan& plan, std::size_t T, std::size_t S, std::size_t E) {
    plan.offsets.resize(E + 1);
    plan.pos.resize(T * S);
    plan.rows.resize(T * S);
    plan.cursor.resize(E);
    return {plan.offsets.data(), plan.rows.data(), plan.pos.data(), plan.cursor.data(), 0, 0};
}

/// Trims the owning plan to what plan_into wrote into its memory.
inline void plan_done(dispatch_plan& plan, const plan_ref& ref) {
    plan.rows.resize(ref.n);
    plan.dropped = ref.dropped;
}

}  // namespace detail

/// Builds the plan for experts [T, slots] (int32, -1 = empty) over n_experts: one counting pass,
/// a prefix sum, one placing pass in (token, slot) order, so it is deterministic and stable.
/// capacity: pairs kept per expert (llm::moe::dropless: all). Reuses the plan's memory.
/// llm::error on an expert index outside [-1, n_experts).
/// Example: `llm::moe::plan_dispatch(plan, experts, 8, llm::moe::dropless);`
template <view_of_rank<2> X>
    requires std::same_as<std::remove_const_t<view_element_t<X>>, std::int32_t>
void plan_dispatch(dispatch_plan& plan, X&& experts, std::size_t n_experts, std::size_t capacity = dropless) {
    const auto ex = llm::to_kernel_view<2>(experts);
    detail::plan_ref ref = detail::plan_memory(plan, ex.extent(0), ex.extent(1), n_experts);
    detail::plan_into(ref, ex, n_experts, capacity);
    detail::plan_done(plan, ref);
}

/// What the MoE forward keeps for its backward (and what users read: the routing, the losses,
/// the plan). Owns its buffers and reuses them: once grown to a batch size, later forwards of
/// that size or smaller allocate nothing.
/// Example: `llm::moe::moe_cache cache; llm::moe::moe_forward(y, cache, x, w, router, {}, ws, pool);`
struct moe_cache {
    std::size_t tokens = 0;   ///< T of the last forward.
    std::size_t experts = 0;  ///< E.
    std::size_t slots = 0;    ///< Slots per token of the router.
    std::size_t d_model = 0;  ///< d.
    std::size_t d_ff = 0;     ///< ff.
    std::size_t d_ff_shared = 0;  ///< ffs (0: no shared experts).
    std::vector<float> logits;          ///< [T, E] router logits x gate^T.
    std::vector<float> probs;           ///< [T, E] router scores.
    std::vector<std::int32_t> expert_ids;  ///< [T, slots] chosen experts.
    std::vector<float> weights;         ///< [T, slots] routing weights.
    dispatch_plan plan;                 ///< The dispatch of the last forward.
    std::vector<float> xp;              ///< [N, d] tokens gathered per expert.
    std::vector<float> gate;            ///< [N, ff] x w1^T per row.
    std::vector<float> up;              ///< [N, ff] x w3^T per row.
    std::vector<float> act;             ///< [N, ff] SiLU(gate) * up.
    std::vector<float> yp;              ///< [N, d] expert outputs per row.
    std::vector<float> shared_gate;     ///< [T, ffs]
    std::vector<float> shared_up;       ///< [T, ffs]
    std::vector<float> shared_act;      ///< [T, ffs]
    float aux_loss = 0.0f;              ///< load_balancing_loss of the batch (when aux_loss_coef != 0).
    float z_loss = 0.0f;                ///< router_z_loss of the batch (when z_loss_coef != 0).

    /// The routing of the last forward as views (experts, weights, probs).
    /// Example: `auto r = cache.routing_views();`
    [[nodiscard]] routing routing_views() {
        return {{expert_ids.data(), llm::dims<2>(tokens, slots), llm::unit_last_stride<2>(slots)},
                {weights.data(), llm::dims<2>(tokens, slots), llm::unit_last_stride<2>(slots)},
                {probs.data(), llm::dims<2>(tokens, experts), llm::unit_last_stride<2>(experts)}};
    }
    /// The read-only routing.
    /// Example: `llm::moe::const_routing r = std::as_const(cache).routing_views();`
    [[nodiscard]] const_routing routing_views() const {
        return {{expert_ids.data(), llm::dims<2>(tokens, slots), llm::unit_last_stride<2>(slots)},
                {weights.data(), llm::dims<2>(tokens, slots), llm::unit_last_stride<2>(slots)},
                {probs.data(), llm::dims<2>(tokens, experts), llm::unit_last_stride<2>(experts)}};
    }
    /// The router logits [T, E].
    /// Example: `auto l = cache.logits_view();`
    [[nodiscard]] llm::row_view<const float, 2> logits_view() const {
        return {logits.data(), llm::dims<2>(tokens, experts), llm::unit_last_stride<2>(experts)};
    }
};

}  // namespace llm::moe
