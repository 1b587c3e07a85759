// SPDX-License-Identifier: Apache-2.0
// The MoE FFN block (router + experts + optional shared experts) under the model module's block contract, with Hugging Face Mixtral names.
#pragma once

#include <llm/core/workspace.hpp>
#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/weights.hpp>
#include <llm/moe/moe.hpp>
#include <llm/moe/quantized.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

namespace llm::moe {

/// Sub-block names of a Mixtral decoder layer (`MixtralDecoderLayer`): the FFN is
/// `block_sparse_moe.`, so a moe_ffn's parameters read `model.layers.N.block_sparse_moe.gate.weight`
/// and `model.layers.N.block_sparse_moe.experts.E.w1.weight`.
/// Example: `llm::model::residual_layer<llm::model::rms_norm, llm::model::attention_mixer<>, llm::moe::moe_ffn<8, 2>, llm::moe::mixtral_layer_names>`
struct mixtral_layer_names {
    static constexpr std::string_view norm1 = "input_layernorm.";           ///< before the mixer
    static constexpr std::string_view mixer = "self_attn.";                 ///< the mixer
    static constexpr std::string_view norm2 = "post_attention_layernorm.";  ///< before the FFN
    static constexpr std::string_view ffn = "block_sparse_moe.";            ///< the MoE FFN
};

/// The MoE FFN block (llm::model::block_like): y = moe_forward(x) with E experts of width
/// d_ff, k experts per token by the router R (Mixtral: softmax_top_k{.k = 2}), optional shared
/// experts of width shared_inner. Parameters under Hugging Face Mixtral names relative to the
/// block: `gate.weight` [E, d], `experts.E.w1.weight` / `w3` [ff, d], `experts.E.w2.weight`
/// [d, ff] (stored stacked [E, ...], visited per expert), and, with shared experts,
/// `shared_expert.gate_proj.weight`, `.up_proj.weight` [ffs, d], `.down_proj.weight` [d, ffs]
/// (Qwen2-MoE's names). The router, the options (capacity, aux-loss coefficients) and the
/// widths live in the block object; a model that is Mixtral-shaped is a layer pattern:
/// `residual_layer<rms_norm, attention_mixer<>, moe_ffn<8, 2>, mixtral_layer_names>`.
/// Cache: the layer's moe_cache (routing, plan, activations, losses), owned by the cache
/// object rather than the model's arena, because the grouped rows' count depends on the routing;
/// it is allocated once and reused. `aux_loss()` and `z_loss()` read the last forward's losses
/// (the model adds coef * loss to its loss; the backward adds their gradients when the options'
/// coefficients are set). step (decoding) runs moe_infer: the routing, plan and activations of
/// the step live in the workspace, so a step with a warmed workspace allocates nothing (the
/// state between tokens stays empty).
/// Experts, TopK: the defaults the dims constructor uses when dims.n_experts /
/// dims.experts_per_token are 0.
/// R: a router policy.
/// Example: `llm::moe::moe_ffn<8, 2> f(dims); auto p = f.make_params<float>(); f.forward(y, c, x, p, ws, pool);`
template <std::size_t Experts = 8, std::size_t TopK = 2, router R = softmax_top_k>
struct moe_ffn {
    std::size_t width = 0;         ///< d_model
    std::size_t inner = 0;         ///< d_ff of each expert
    std::size_t experts = Experts;  ///< E
    std::size_t shared_inner = 0;  ///< width of the shared experts (0: none)
    R route{};                     ///< the router policy
    moe_options options{};         ///< capacity and aux-loss coefficients

    /// From a model's dims: d_model, d_ff; d.n_experts experts (Experts when 0), the router
    /// with k = d.experts_per_token (TopK when 0) when R has a `k` member (softmax_top_k,
    /// sigmoid_top_k, noisy_top_k).
    /// Example: `llm::moe::moe_ffn<8, 2> f(d);`
    explicit moe_ffn(const model::dims& d)
        : width(d.d_model), inner(d.ff()), experts(d.n_experts != 0 ? d.n_experts : Experts) {
        if constexpr (requires { route.k; }) {
            route.k = d.experts_per_token != 0 ? d.experts_per_token : TopK;
        }
    }
    /// Every setting given.
    /// Example: `llm::moe::moe_ffn<> f(64, 96, 4, llm::moe::softmax_top_k{.k = 2}, {}, 32);`
    moe_ffn(std::size_t d_model, std::size_t d_ff, std::size_t n_experts, R r, moe_options opt = {},
            std::size_t d_ff_shared = 0)
        : width(d_model), inner(d_ff), experts(n_experts), shared_inner(d_ff_shared), route(r), options(opt) {}

    /// Parameters (Hugging Face Mixtral / Qwen2-MoE names). T = llm::model::quantized (inference
    /// only: forward and step): gate stays an fp32 tensor, and w1, w3, w2 are each one
    /// llm::quant::any_matrix of the stacked experts, w1 / w3 [E * d_ff, d_model] and w2
    /// [E * d_model, d_ff] (expert e's rows from e * d_ff resp. e * d_model: GGUF's
    /// ffn_gate_exps / ffn_up_exps / ffn_down_exps, which a loader points them at), visited as
    /// `experts.w1.weight`, `experts.w3.weight`, `experts.w2.weight`; no shared experts.
    template <class T>
    struct params {
        /// The stacked experts' type: tensor<T, dims<3>>, or one any_matrix for quantized.
        using experts_t = std::conditional_t<std::is_same_v<T, model::quantized>, quant::any_matrix, tensor<T, llm::dims<3>>>;
        tensor<model::scalar_t<T>, llm::dims<2>> gate;  ///< gate.weight [E, d_model]
        experts_t w1;                 ///< experts.E.w1.weight, stacked [E, d_ff, d_model] (quantized: [E * d_ff, d_model])
        experts_t w3;                 ///< experts.E.w3.weight, stacked [E, d_ff, d_model] (quantized: [E * d_ff, d_model])
        experts_t w2;                 ///< experts.E.w2.weight, stacked [E, d_model, d_ff] (quantized: [E * d_model, d_ff])
        model::matrix_t<T> sw1;       ///< shared_expert.gate_proj.weight [d_ff_shared, d_model] (empty: none)
        model::matrix_t<T> sw3;       ///< shared_expert.up_proj.weight [d_ff_shared, d_model]
        model::matrix_t<T> sw2;       ///< shared_expert.down_proj.weight [d_model, d_ff_shared]

        /// Visits gate, then every expert's w1, w2, w3 (one [ff, d] or [d, ff] view of the
        /// stacked tensor each, named experts.E.wI.weight; quantized: the stacked matrices as
        /// experts.wI.weight), then the shared experts when present.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("gate.weight", p.gate...);
            const auto& first = std::get<0>(std::forward_as_tuple(p...));
            if constexpr (std::is_same_v<T, model::quantized>) {
                f("experts.w1.weight", p.w1...);
                f("experts.w2.weight", p.w2...);
                f("experts.w3.weight", p.w3...);
            } else {
                const std::size_t n = first.w1.extent(0);
                for (std::size_t e = 0; e < n; ++e) {
                    const std::string pre = "experts." + std::to_string(e) + ".";
                    auto visit = [&](const char* name, auto... views) { f(std::string_view(pre + name), views...); };
                    visit("w1.weight", llm::select(p.w1, 0, e)...);
                    visit("w2.weight", llm::select(p.w2, 0, e)...);
                    visit("w3.weight", llm::select(p.w3, 0, e)...);
                }
            }
            if (first.sw1.size() != 0) {
                f("shared_expert.gate_proj.weight", p.sw1...);
                f("shared_expert.up_proj.weight", p.sw3...);
                f("shared_expert.down_proj.weight", p.sw2...);
            }
        }
        /// Visits (name, tensor) pairs.
        template <class F>
        void for_each_param(F&& f) {
            walk(f, *this);
        }
        /// Visits (name, tensor) pairs, read-only.
        template <class F>
        void for_each_param(F&& f) const {
            walk(f, *this);
        }
    };

    /// The layer's saved state: a moe_cache of its own (see the block's comment).
    struct cache {
        std::shared_ptr<moe_cache> layer;  ///< routing, plan, activations and losses of the last forward
        /// load_balancing_loss of the last forward (when options.aux_loss_coef != 0).
        [[nodiscard]] float aux_loss() const noexcept { return layer->aux_loss; }
        /// router_z_loss of the last forward (when options.z_loss_coef != 0).
        [[nodiscard]] float z_loss() const noexcept { return layer->z_loss; }
    };

    /// Zero-filled parameters (quantized: the gate zero-filled, the matrices shape-only
    /// placeholders a loader points at its bytes).
    /// Example: `auto p = f.make_params<float>();`
    template <class T>
    params<T> make_params() const {
        if constexpr (std::is_same_v<T, model::quantized>) {
            return {tensor<float, llm::dims<2>>(experts, width), quant::any_matrix(experts * inner, width),
                    quant::any_matrix(experts * inner, width),   quant::any_matrix(experts * width, inner),
                    quant::any_matrix(shared_inner, width),      quant::any_matrix(shared_inner, width),
                    quant::any_matrix(width, shared_inner)};
        } else {
            return {tensor<T, llm::dims<2>>(experts, width),       tensor<T, llm::dims<3>>(experts, inner, width),
                    tensor<T, llm::dims<3>>(experts, inner, width), tensor<T, llm::dims<3>>(experts, width, inner),
                    tensor<T, llm::dims<2>>(shared_inner, width),   tensor<T, llm::dims<2>>(shared_inner, width),
                    tensor<T, llm::dims<2>>(width, shared_inner)};
        }
    }
    /// A cache (takes nothing from the arena).
    /// Example: `auto c = llm::model::make_cache(f, arena, {.batch = 1, .seq = 16});`
    cache make_cache(model::arena& /*a*/, model::batch_shape /*s*/) const { return {std::make_shared<moe_cache>()}; }

    /// y = the MoE layer of x (writes y and the cache).
    /// Example: `f.forward(y, c, x, p, ws, pool);`
    template <class T>
    void forward(model::activations y, cache& c, model::const_activations x, const params<T>& p, workspace& ws,
                 parallel::policy auto&& exec) const {
        if constexpr (std::is_same_v<T, model::quantized>) {
            moe_forward_quantized(y, *c.layer, x, weights(p), route, options, {}, ws, exec);
        } else {
            moe_forward(y, *c.layer, x, weights(p), route, options, ws, exec);
        }
    }
    /// dx and every gradient += ... (accumulates).
    /// Example: `f.backward(dx, g, dy, c, x, p, ws, pool);`
    template <class T>
    void backward(model::activations dx, params<float>& g, model::const_activations dy, const cache& c,
                  model::const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        static_assert(!std::is_same_v<T, model::quantized>,
                      "llm::model::quantized parameters are inference-only: backward needs fp32 or bf16 params");
        moe_backward(dx, grads(g), *c.layer, dy, x, weights(p), route, options, ws, exec);
    }

    /// No state between tokens (the step's buffers come from the workspace).
    struct state {};
    /// The forward for the rows of x (one token per row) by moe_infer: every buffer from the
    /// workspace, so a step with a warmed workspace allocates nothing. Quantized params: the
    /// forward's moe_forward_quantized into a per-thread moe_cache (grown once, then reused).
    /// Example: `f.step(y, st, x, p, ws, pool);`
    template <class T>
    void step(model::activations y, state& /*st*/, model::const_activations x, const params<T>& p, workspace& ws,
              parallel::policy auto&& exec) const {
        if constexpr (std::is_same_v<T, model::quantized>) {
            thread_local moe_cache c;
            moe_forward_quantized(y, c, x, weights(p), route, options, {}, ws, exec);
        } else {
            moe_infer(y, x, weights(p), route, options, ws, exec);
        }
    }

    /// Multiply-adds per token of the active parameters (3 d_model d_ff k, + the router's
    /// d_model E, + the shared experts' 3 d_model d_ff_shared).
    /// Example: `std::size_t m = f.macs();`
    [[nodiscard]] std::size_t macs() const noexcept {
        return 3 * width * inner * route.slots(experts) + width * experts + 3 * width * shared_inner;
    }

private:
    any_moe_weights weights(const params<model::quantized>& p) const {
        llm::check(p.sw1.size() == 0 && p.sw3.size() == 0 && p.sw2.size() == 0, "moe_ffn: shared experts (",
                   p.sw1.extent(0), " x ", p.sw1.extent(1), ") with llm::model::quantized params are not supported");
        return {llm::to_kernel_view<2>(p.gate), p.w1, p.w3, p.w2, experts, inner};
    }
    template <class T>
    static basic_moe_weights<T> weights(const params<T>& p) {
        if (p.sw1.size() == 0) {
            return make_moe_weights(p.gate, p.w1, p.w3, p.w2);
        }
        return make_moe_weights(p.gate, p.w1, p.w3, p.w2, p.sw1, p.sw3, p.sw2);
    }
    static moe_grads grads(params<float>& g) {
        if (g.sw1.size() == 0) {
            return make_moe_grads(g.gate, g.w1, g.w3, g.w2);
        }
        return make_moe_grads(g.gate, g.w1, g.w3, g.w2, g.sw1, g.sw3, g.sw2);
    }
};

static_assert(model::block_like<moe_ffn<>>);
static_assert(model::block_like<moe_ffn<>, llm::bf16>);
static_assert(model::steppable_block<moe_ffn<>>);
static_assert(model::steppable_block<moe_ffn<>, model::quantized>);

}  // namespace llm::moe
