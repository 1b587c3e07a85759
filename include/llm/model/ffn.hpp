// SPDX-License-Identifier: Apache-2.0
// Dense FFN blocks: SwiGLU (Llama, Mistral, Qwen2) and the GELU MLP (GPT-2), as llm::model::block_like.
#pragma once

#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/detail/ops.hpp>
#include <llm/model/weights.hpp>
#include <llm/nn/activations.hpp>
#include <llm/tensor/tensor.hpp>

#include <cstddef>

namespace llm::model {

/// SwiGLU FFN (Hugging Face `LlamaMLP`): y = down(silu(gate(x)) * up(x)); `gate_proj`,
/// `up_proj` [d_ff, d_model], `down_proj` [d_model, d_ff], no biases (llm::quant::any_matrix
/// views with params<llm::model::quantized>: forward and step only). Cache: gate, up and
/// their product, [tokens, d_ff] each. silu(gate) is not fused into gate's GEMM store: it
/// is multiplied by up, a second product, and one fused product would need gate and up
/// stored as one [2 d_ff, d_model] weight (the checkpoints keep them apart).
/// Example: `llm::model::swiglu_ffn f(d); f.forward(y, c, x, p, ws, pool);`
struct swiglu_ffn {
    std::size_t width = 0;  ///< d_model
    std::size_t inner = 0;  ///< d_ff

    /// From a model's dims (d_model, d_ff).
    explicit swiglu_ffn(const dims& d) : width(d.d_model), inner(d.ff()) {}
    /// Parameters for dims d (3 d_model d_ff).
    static constexpr std::size_t param_count(const dims& d) noexcept { return 3 * d.d_model * d.ff(); }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        matrix_t<T> gate;  ///< gate_proj.weight [d_ff, d_model]
        matrix_t<T> up;    ///< up_proj.weight [d_ff, d_model]
        matrix_t<T> down;  ///< down_proj.weight [d_model, d_ff]
        /// Visits gate_proj, up_proj, down_proj.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("gate_proj.weight", p.gate...);
            f("up_proj.weight", p.up...);
            f("down_proj.weight", p.down...);
        }
    };
    /// Parameters (Hugging Face names).
    template <class T>
    using params = param_list<fields<T>>;
    /// gate(x), up(x) and h = silu(gate) * up.
    struct cache {
        activations gate;  ///< [tokens, d_ff]
        activations up;    ///< [tokens, d_ff]
        activations h;     ///< [tokens, d_ff]
    };
    /// Zero-filled parameters.
    template <class T>
    params<T> make_params() const {
        return {matrix_t<T>(inner, width), matrix_t<T>(inner, width), matrix_t<T>(width, inner)};
    }
    /// Three [tokens, d_ff] activations.
    cache make_cache(arena& a, batch_shape s) const {
        return {a.take<float>(s.tokens(), inner), a.take<float>(s.tokens(), inner), a.take<float>(s.tokens(), inner)};
    }
    /// y = down(silu(gate x) * up x).
    template <class T>
    void forward(activations y, cache& c, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        if constexpr (is_any_matrix<decltype(p.gate)>) {
            // one quantization of x serves gate and up
            detail::linear_group<2>({c.gate, c.up}, x, {&p.gate, &p.up}, ws, exec);
        } else {
            detail::linear(c.gate, x, p.gate, ws, exec);
            detail::linear(c.up, x, p.up, ws, exec);
        }
        nn::swiglu_forward(c.h, c.gate, c.up, exec);
        detail::linear(y, c.h, p.down, ws, exec);
    }
    /// dx and the gradients += ... (accumulates).
    template <class T>
    void backward(activations dx, params<float>& g, const_activations dy, const cache& c, const_activations x, const params<T>& p,
                  workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame frame(ws);
        const std::size_t n = x.extent(0);
        auto dh = detail::zeroed(ws, n, inner);
        nn::linear_backward(dh, g.down, dy, c.h, p.down, ws, exec);
        auto dgate = detail::zeroed(ws, n, inner);
        auto dup = detail::zeroed(ws, n, inner);
        nn::swiglu_backward(dgate, dup, dh, c.gate, c.up, exec);
        nn::linear_backward(dx, g.gate, dgate, x, p.gate, ws, exec);
        nn::linear_backward(dx, g.up, dup, x, p.up, ws, exec);
    }
    /// No state between tokens.
    struct state {};
    /// The forward for the rows of x with buffers from the workspace.
    template <class T>
    void step(activations y, state&, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame frame(ws);
        const std::size_t n = x.extent(0);
        cache c{detail::scratch(ws, n, inner), detail::scratch(ws, n, inner), detail::scratch(ws, n, inner)};
        forward(y, c, x, p, ws, exec);
    }
    /// Multiply-adds per token (3 d_model d_ff).
    [[nodiscard]] std::size_t macs() const noexcept { return 3 * width * inner; }
};

/// GELU MLP of GPT-2 (`GPT2MLP`): y = c_proj(gelu_tanh(c_fc(x))); `c_fc` and `c_proj` are
/// Conv1D (weights stored [in, out], as Hugging Face and llm.c keep them) with biases.
/// Cache: the pre-activation and the activation, [tokens, d_ff] each (forward keeps the
/// pre-activation for backward; step fuses gelu into c_fc's store).
/// Form: the GELU form (llm::nn::gelu_tanh, GPT-2's "gelu_new"; llm::nn::gelu_erf).
/// Example: `llm::model::gelu_mlp<> f(d);`
template <class Form = nn::gelu_tanh>
struct gelu_mlp {
    std::size_t width = 0;  ///< d_model
    std::size_t inner = 0;  ///< d_ff

    /// From a model's dims (d_model, d_ff).
    explicit gelu_mlp(const dims& d) : width(d.d_model), inner(d.ff()) {}
    /// Parameters for dims d (2 d_model d_ff + d_ff + d_model).
    static constexpr std::size_t param_count(const dims& d) noexcept { return 2 * d.d_model * d.ff() + d.ff() + d.d_model; }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        tensor<T, llm::dims<2>> fc_w;    ///< c_fc.weight [d_model, d_ff]
        tensor<T, llm::dims<1>> fc_b;    ///< c_fc.bias [d_ff]
        tensor<T, llm::dims<2>> proj_w;  ///< c_proj.weight [d_ff, d_model]
        tensor<T, llm::dims<1>> proj_b;  ///< c_proj.bias [d_model]
        /// Visits c_fc and c_proj.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("c_fc.weight", p.fc_w...);
            f("c_fc.bias", p.fc_b...);
            f("c_proj.weight", p.proj_w...);
            f("c_proj.bias", p.proj_b...);
        }
    };
    /// Parameters (Hugging Face GPT-2 names, Conv1D layout).
    template <class T>
    using params = param_list<fields<T>>;
    /// Pre-activation and activation.
    struct cache {
        activations pre;  ///< c_fc(x) [tokens, d_ff]
        activations act;  ///< gelu(pre) [tokens, d_ff]
    };
    /// Zero-filled parameters.
    template <class T>
    params<T> make_params() const {
        return {tensor<T, llm::dims<2>>(width, inner), tensor<T, llm::dims<1>>(inner), tensor<T, llm::dims<2>>(inner, width),
                tensor<T, llm::dims<1>>(width)};
    }
    /// Two [tokens, d_ff] activations.
    cache make_cache(arena& a, batch_shape s) const { return {a.take<float>(s.tokens(), inner), a.take<float>(s.tokens(), inner)}; }
    /// y = c_proj(gelu(c_fc(x))).
    template <class T>
    void forward(activations y, cache& c, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        nn::linear_forward(c.pre, x, detail::weight_view<true>(p.fc_w), p.fc_b, ws, exec);
        nn::gelu_forward<Form>(c.act, c.pre, exec);
        nn::linear_forward(y, c.act, detail::weight_view<true>(p.proj_w), p.proj_b, ws, exec);
    }
    /// dx and the gradients += ... (accumulates).
    template <class T>
    void backward(activations dx, params<float>& g, const_activations dy, const cache& c, const_activations x, const params<T>& p,
                  workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame frame(ws);
        const std::size_t n = x.extent(0);
        auto dact = detail::zeroed(ws, n, inner);
        nn::linear_backward(dact, detail::weight_view<true>(g.proj_w), g.proj_b, dy, c.act, detail::weight_view<true>(p.proj_w), ws, exec);
        auto dpre = detail::zeroed(ws, n, inner);
        nn::gelu_backward<Form>(dpre, dact, c.pre, exec);
        nn::linear_backward(dx, detail::weight_view<true>(g.fc_w), g.fc_b, dpre, x, detail::weight_view<true>(p.fc_w), ws, exec);
    }
    /// No state between tokens.
    struct state {};
    /// The forward for the rows of x with a buffer from the workspace. No backward follows, so
    /// the pre-activation is not kept: gelu runs in c_fc's GEMM store (linear_forward with an
    /// activation), one [tokens, d_ff] buffer and no pass over it; the bits are forward's
    /// (c_fc, then gelu_forward<Form>).
    template <class T>
    void step(activations y, state&, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame frame(ws);
        const activations act = detail::scratch(ws, x.extent(0), inner);
        nn::linear_forward(act, x, detail::weight_view<true>(p.fc_w), p.fc_b, Form{}, ws, exec);
        nn::linear_forward(y, act, detail::weight_view<true>(p.proj_w), p.proj_b, ws, exec);
    }
    /// Multiply-adds per token (2 d_model d_ff).
    [[nodiscard]] std::size_t macs() const noexcept { return 2 * width * inner; }
};

}  // namespace llm::model
