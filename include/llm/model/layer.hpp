// SPDX-License-Identifier: Apache-2.0
// The pre-norm residual layer: h = x + mixer(norm1(x)); y = h + ffn(norm2(h)), itself a block.
#pragma once

#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/detail/ops.hpp>
#include <llm/nn/residual.hpp>

#include <cstddef>
#include <string_view>

namespace llm::model {

/// Sub-block names of a Llama-family layer (Hugging Face `LlamaDecoderLayer`).
/// Example: `llm::model::residual_layer<llm::model::rms_norm, llm::model::attention_mixer<>, llm::model::swiglu_ffn, llm::model::llama_layer_names>`
struct llama_layer_names {
    static constexpr std::string_view norm1 = "input_layernorm.";           ///< before the mixer
    static constexpr std::string_view mixer = "self_attn.";                 ///< the mixer
    static constexpr std::string_view norm2 = "post_attention_layernorm.";  ///< before the FFN
    static constexpr std::string_view ffn = "mlp.";                         ///< the FFN
};

/// Sub-block names of a GPT-2 layer (`GPT2Block`).
/// Example: `llm::model::residual_layer<llm::model::layer_norm, llm::model::attention_mixer<llm::model::gpt2_qkv>, llm::model::gelu_mlp<>, llm::model::gpt2_layer_names>`
struct gpt2_layer_names {
    static constexpr std::string_view norm1 = "ln_1.";  ///< before the mixer
    static constexpr std::string_view mixer = "attn.";  ///< the mixer
    static constexpr std::string_view norm2 = "ln_2.";  ///< before the FFN
    static constexpr std::string_view ffn = "mlp.";     ///< the FFN
};

/// A pre-norm residual layer built from three blocks: h = x + mixer(norm1(x)), y = h +
/// ffn(norm2(h)). It is a block itself (llm::model::block_like), so a decoder stacks layers
/// and a user can put any mixer (attention, Mamba) and any FFN (dense, MoE) in it; a
/// steppable layer (step) when all three blocks are steppable.
/// Norm, Mixer, Ffn: block_like types constructible from llm::model::dims. Names: the
/// sub-block prefixes (llama_layer_names, gpt2_layer_names, or a user's type with the four
/// std::string_view members).
/// Example: `using layer = llm::model::residual_layer<llm::model::rms_norm, llm::model::attention_mixer<>, llm::model::swiglu_ffn>;`
template <block_like Norm, block_like Mixer, block_like Ffn, class Names = llama_layer_names>
struct residual_layer {
    Norm norm1;   ///< before the mixer
    Mixer mixer;  ///< attention (or another token mixer)
    Norm norm2;   ///< before the FFN
    Ffn ffn;      ///< the feed-forward block
    std::size_t width = 0;  ///< d_model

    /// Every sub-block from the model's dims.
    explicit residual_layer(const dims& d) : norm1(d), mixer(d), norm2(d), ffn(d), width(d.d_model) {}

    /// Parameters for dims d: the sum of the sub-blocks'.
    static constexpr std::size_t param_count(const dims& d) noexcept
        requires requires { Norm::param_count(d) + Mixer::param_count(d) + Ffn::param_count(d); }
    {
        return 2 * Norm::param_count(d) + Mixer::param_count(d) + Ffn::param_count(d);
    }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        params_t<Norm, T> norm1;   ///< norm1's
        params_t<Mixer, T> mixer;  ///< mixer's
        params_t<Norm, T> norm2;   ///< norm2's
        params_t<Ffn, T> ffn;      ///< ffn's
        /// Visits every sub-block's tensors, prefixed (`self_attn.q_proj.weight`).
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            params_t<Norm, T>::walk(prefixed(std::string(Names::norm1), f), p.norm1...);
            params_t<Mixer, T>::walk(prefixed(std::string(Names::mixer), f), p.mixer...);
            params_t<Norm, T>::walk(prefixed(std::string(Names::norm2), f), p.norm2...);
            params_t<Ffn, T>::walk(prefixed(std::string(Names::ffn), f), p.ffn...);
        }
    };
    /// The sub-blocks' parameters, named with the Names prefixes.
    template <class T>
    using params = param_list<fields<T>>;

    /// The sub-blocks' caches and the two normalised activations and the mid-layer residual.
    struct cache {
        typename Norm::cache n1;   ///< norm1's
        activations a;             ///< norm1(x)
        typename Mixer::cache m;   ///< mixer's
        activations h;             ///< x + mixer(a)
        typename Norm::cache n2;   ///< norm2's
        activations b;             ///< norm2(h)
        typename Ffn::cache f;     ///< ffn's
    };

    /// Zero-filled parameters.
    template <class T>
    params<T> make_params() const {
        return {norm1.template make_params<T>(), mixer.template make_params<T>(), norm2.template make_params<T>(),
                ffn.template make_params<T>()};
    }
    /// Every cache of the layer.
    cache make_cache(arena& ar, batch_shape s) const {
        cache c{norm1.make_cache(ar, s), ar.take<float>(s.tokens(), width), mixer.make_cache(ar, s), ar.take<float>(s.tokens(), width),
                norm2.make_cache(ar, s), ar.take<float>(s.tokens(), width), ffn.make_cache(ar, s)};
        return c;
    }

    /// y = h + ffn(norm2(h)), h = x + mixer(norm1(x)). y must not alias x.
    template <class T>
    void forward(activations y, cache& c, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        norm1.forward(c.a, c.n1, x, p.norm1, ws, exec);
        mixer.forward(y, c.m, c.a, p.mixer, ws, exec);
        nn::residual_add(c.h, y, x, exec);
        norm2.forward(c.b, c.n2, c.h, p.norm2, ws, exec);
        ffn.forward(y, c.f, c.b, p.ffn, ws, exec);
        nn::residual_add(y, y, c.h, exec);
    }

    /// dx and every gradient += ... (accumulates).
    template <class T>
    void backward(activations dx, params<float>& g, const_activations dy, const cache& c, const_activations x, const params<T>& p,
                  workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame frame(ws);
        const std::size_t n = x.extent(0);
        auto db = detail::zeroed(ws, n, width);
        ffn.backward(db, g.ffn, dy, c.f, c.b, p.ffn, ws, exec);
        auto dh = detail::scratch(ws, n, width);
        llm::copy(dy, dh);  // the residual's share
        norm2.backward(dh, g.norm2, db, c.n2, c.h, p.norm2, ws, exec);
        auto da = detail::zeroed(ws, n, width);
        mixer.backward(da, g.mixer, dh, c.m, c.a, p.mixer, ws, exec);
        nn::residual_add(dx, dx, dh, exec);  // the residual path: dx += dh
        norm1.backward(dx, g.norm1, da, c.n1, x, p.norm1, ws, exec);
    }

    /// The sub-blocks' decode states.
    struct state {
        typename Mixer::state mixer;  ///< e.g. the KV cache layer of an attention mixer
    };

    /// One token per row: y = h + ffn(norm2(h)), h = x + mixer.step(norm1(x)).
    template <class T>
    void step(activations y, state& st, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const
        requires steppable_block<Norm> && steppable_block<Mixer> && steppable_block<Ffn>
    {
        workspace::frame frame(ws);
        const std::size_t n = x.extent(0);
        auto a = detail::scratch(ws, n, width);
        auto h = detail::scratch(ws, n, width);
        typename Norm::state ns{};
        typename Ffn::state fs{};
        norm1.step(a, ns, x, p.norm1, ws, exec);
        mixer.step(y, st.mixer, a, p.mixer, ws, exec);
        nn::residual_add(h, y, x, exec);
        norm2.step(a, ns, h, p.norm2, ws, exec);
        ffn.step(y, fs, a, p.ffn, ws, exec);
        nn::residual_add(y, y, h, exec);
    }

    /// T new tokens of sequence `seq` at once (rows of x, y [T, d_model]): the norms and the FFN
    /// take the T rows as a batch (GEMMs over the rows), the mixer its step_tokens.
    /// Example: `layer.step_tokens(y, st, 0, x, p, ws, pool);`
    template <class T>
    void step_tokens(activations y, state& st, std::size_t seq, const_activations x, const params<T>& p, workspace& ws,
                     parallel::policy auto&& exec) const
        requires steppable_block<Norm> && steppable_block<Mixer> && steppable_block<Ffn> &&
                 requires(const Mixer& m, typename Mixer::state& ms) { m.step_tokens(y, ms, seq, x, p.mixer, ws, exec); }
    {
        workspace::frame frame(ws);
        const std::size_t n = x.extent(0);
        auto a = detail::scratch(ws, n, width);
        auto h = detail::scratch(ws, n, width);
        typename Norm::state ns{};
        typename Ffn::state fs{};
        norm1.step(a, ns, x, p.norm1, ws, exec);
        mixer.step_tokens(y, st.mixer, seq, a, p.mixer, ws, exec);
        nn::residual_add(h, y, x, exec);
        norm2.step(a, ns, h, p.norm2, ws, exec);
        ffn.step(y, fs, a, p.ffn, ws, exec);
        nn::residual_add(y, y, h, exec);
    }
};

}  // namespace llm::model
