// SPDX-License-Identifier: Apache-2.0
// Norm blocks: RMSNorm (Llama, Mistral, Qwen2) and LayerNorm (GPT-2), as llm::model::block_like.
#pragma once

#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/weights.hpp>
#include <llm/nn/layernorm.hpp>
#include <llm/nn/rmsnorm.hpp>
#include <llm/tensor/tensor.hpp>

#include <cstddef>

namespace llm::model {

/// RMSNorm block: y = x / rms(x) * weight over d_model features (Hugging Face `LlamaRMSNorm`;
/// parameter `weight`). Cache: rstd per token.
/// Example: `llm::model::rms_norm n(d); auto p = n.make_params<float>();`
struct rms_norm {
    std::size_t width = 0;  ///< features normalised
    float eps = 1e-5f;      ///< added to mean(x^2)

    /// From a model's dims (width d_model, eps norm_eps).
    explicit rms_norm(const dims& d) : width(d.d_model), eps(d.norm_eps) {}
    /// Explicit width and epsilon.
    rms_norm(std::size_t w, float e) : width(w), eps(e) {}
    /// Parameters for dims d (d_model).
    static constexpr std::size_t param_count(const dims& d) noexcept { return d.d_model; }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        tensor<scalar_t<T>, llm::dims<1>> weight;  ///< per-feature scale
        /// Visits ("weight", p.weight...) for every struct passed.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("weight", p.weight...);
        }
    };
    /// Parameters: `weight` [width] (ones at initialisation).
    template <class T>
    using params = param_list<fields<T>>;
    /// rstd [tokens] for the backward.
    struct cache {
        tensor_view<float, llm::dims<1>> rstd;  ///< 1 / rms per token
    };
    /// Zero-filled parameters of this width.
    template <class T>
    params<T> make_params() const {
        return {tensor<scalar_t<T>, llm::dims<1>>(width)};
    }
    /// The cache for `s.tokens()` tokens.
    cache make_cache(arena& a, batch_shape s) const { return {a.take<float>(s.tokens())}; }
    /// y = rmsnorm(x) * weight; writes rstd.
    template <class T>
    void forward(activations y, cache& c, const_activations x, const params<T>& p, workspace&, parallel::policy auto&& exec) const {
        nn::rmsnorm_forward(y, c.rstd, x, p.weight, eps, exec);
    }
    /// dx += ..., dweight += ... (accumulates).
    template <class T>
    void backward(activations dx, params<float>& g, const_activations dy, const cache& c, const_activations x, const params<T>& p,
                  workspace&, parallel::policy auto&& exec) const {
        nn::rmsnorm_backward(dx, g.weight, c.rstd, dy, x, p.weight, exec);
    }
    /// One token per row, no cache kept (the state is nothing).
    struct state {};
    /// y = rmsnorm(x) * weight for the rows of x (a decode step); rstd from the workspace.
    template <class T>
    void step(activations y, state&, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame f(ws);
        tensor_view<float, llm::dims<1>> rstd(ws.take<float>(x.extent(0)), llm::dims<1>(x.extent(0)));
        nn::rmsnorm_forward(y, rstd, x, p.weight, eps, exec);
    }
};

/// LayerNorm block: y = (x - mean) / std * weight + bias (PyTorch nn.LayerNorm, GPT-2's
/// ln_1 / ln_2 / ln_f; parameters `weight`, `bias`). Cache: mean and rstd per token.
/// Example: `llm::model::layer_norm n(d);`
struct layer_norm {
    std::size_t width = 0;  ///< features normalised
    float eps = 1e-5f;      ///< added to the variance

    /// From a model's dims (width d_model, eps norm_eps).
    explicit layer_norm(const dims& d) : width(d.d_model), eps(d.norm_eps) {}
    /// Explicit width and epsilon.
    layer_norm(std::size_t w, float e) : width(w), eps(e) {}
    /// Parameters for dims d (2 d_model).
    static constexpr std::size_t param_count(const dims& d) noexcept { return 2 * d.d_model; }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        tensor<scalar_t<T>, llm::dims<1>> weight;  ///< per-feature scale
        tensor<scalar_t<T>, llm::dims<1>> bias;    ///< per-feature shift
        /// Visits ("weight", ...), ("bias", ...).
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("weight", p.weight...);
            f("bias", p.bias...);
        }
    };
    /// Parameters: `weight` (ones at initialisation) and `bias` (zeros), [width] each.
    template <class T>
    using params = param_list<fields<T>>;
    /// mean and rstd [tokens] for the backward.
    struct cache {
        tensor_view<float, llm::dims<1>> mean;  ///< per-token mean
        tensor_view<float, llm::dims<1>> rstd;  ///< per-token 1 / std
    };
    /// Zero-filled parameters of this width.
    template <class T>
    params<T> make_params() const {
        return {tensor<scalar_t<T>, llm::dims<1>>(width), tensor<scalar_t<T>, llm::dims<1>>(width)};
    }
    /// The cache for `s.tokens()` tokens.
    cache make_cache(arena& a, batch_shape s) const { return {a.take<float>(s.tokens()), a.take<float>(s.tokens())}; }
    /// y = layernorm(x); writes mean and rstd.
    template <class T>
    void forward(activations y, cache& c, const_activations x, const params<T>& p, workspace&, parallel::policy auto&& exec) const {
        nn::layernorm_forward(y, c.mean, c.rstd, x, p.weight, p.bias, eps, exec);
    }
    /// dx, dweight, dbias += ... (accumulates).
    template <class T>
    void backward(activations dx, params<float>& g, const_activations dy, const cache& c, const_activations x, const params<T>& p,
                  workspace&, parallel::policy auto&& exec) const {
        nn::layernorm_backward(dx, g.weight, g.bias, c.mean, c.rstd, dy, x, p.weight, exec);
    }
    /// No state between tokens.
    struct state {};
    /// y = layernorm(x) for the rows of x (a decode step); statistics from the workspace.
    template <class T>
    void step(activations y, state&, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame f(ws);
        const std::size_t n = x.extent(0);
        tensor_view<float, llm::dims<1>> mean(ws.take<float>(n), llm::dims<1>(n));
        tensor_view<float, llm::dims<1>> rstd(ws.take<float>(n), llm::dims<1>(n));
        nn::layernorm_forward(y, mean, rstd, x, p.weight, p.bias, eps, exec);
    }
};

}  // namespace llm::model
