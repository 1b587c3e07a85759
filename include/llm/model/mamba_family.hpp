// SPDX-License-Identifier: Apache-2.0
// The Mamba family (Hugging Face MambaForCausalLM): pre-norm residual layers around llm::ssm::mamba_mixer, stacked by llm::model::decoder.
#pragma once

#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/decoder.hpp>
#include <llm/model/detail/ops.hpp>
#include <llm/model/embedding.hpp>
#include <llm/model/hf_config.hpp>
#include <llm/model/norm.hpp>
#include <llm/nn/residual.hpp>
#include <llm/ssm/mamba.hpp>

#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>

namespace llm::model {

/// The Mamba mixer sized from a model's dims: d_model, d_inner = dims.d_ff (Hugging Face
/// `intermediate_size`, expand * hidden_size), d_state and d_conv from the template arguments
/// (transformers' defaults 16 and 4), dt_rank = DtRank or, when 0, ceil(d_model / 16)
/// (`time_step_rank = "auto"`). The sizes dims has no field for are compile-time constants so
/// llm::model::dims stays the attention models' struct.
/// Example: `llm::model::mamba_mixer_of<> m(llm::model::dims{.vocab = 64, .d_model = 32, .n_layers = 2, .n_heads = 1, .d_ff = 64});`
template <std::size_t DState = 16, std::size_t DConv = 4, std::size_t DtRank = 0>
struct mamba_mixer_of : ssm::mamba_mixer {
    /// dt_rank for a width: DtRank, or ceil(d_model / 16).
    static constexpr std::size_t rank_for(std::size_t d_model) noexcept { return DtRank != 0 ? DtRank : (d_model + 15) / 16; }
    /// From a model's dims.
    explicit mamba_mixer_of(const dims& d) : ssm::mamba_mixer{d.d_model, d.ff(), DState, DConv, rank_for(d.d_model)} {}
    /// Parameters for dims d.
    static constexpr std::size_t param_count(const dims& d) noexcept {
        const std::size_t m = d.d_model, di = d.ff(), r = rank_for(m);
        return 2 * di * m + di * DConv + di + (r + 2 * DState) * di + di * r + di + di * DState + di + m * di;
    }
};

/// Sub-block names of a Mamba layer (`MambaBlock`: `norm.`, `mixer.`).
/// Example: `llm::model::mixer_layer<llm::model::rms_norm, llm::model::mamba_mixer_of<>, llm::model::mamba_layer_names>`
struct mamba_layer_names {
    static constexpr std::string_view norm = "norm.";    ///< before the mixer
    static constexpr std::string_view mixer = "mixer.";  ///< the mixer
};

/// A pre-norm residual layer with a mixer and no FFN, y = x + mixer(norm(x)) (Hugging Face
/// `MambaBlock`), itself a block (llm::model::block_like).
/// Norm, Mixer: block_like types constructible from llm::model::dims; Names: `norm` and `mixer`
/// prefixes (mamba_layer_names).
/// Example: `using layer = llm::model::mixer_layer<llm::model::rms_norm, llm::model::mamba_mixer_of<>>;`
template <block_like Norm, block_like Mixer, class Names = mamba_layer_names>
struct mixer_layer {
    Norm norm;              ///< before the mixer
    Mixer mixer;            ///< the token mixer
    std::size_t width = 0;  ///< d_model

    /// Both sub-blocks from the model's dims.
    explicit mixer_layer(const dims& d) : norm(d), mixer(d), width(d.d_model) {}

    /// Parameters for dims d: the sum of the sub-blocks'.
    static constexpr std::size_t param_count(const dims& d) noexcept { return Norm::param_count(d) + Mixer::param_count(d); }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        params_t<Norm, T> norm;    ///< norm's
        params_t<Mixer, T> mixer;  ///< mixer's
        /// Visits the sub-blocks' tensors, prefixed (`mixer.in_proj.weight`).
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            params_t<Norm, T>::walk(prefixed(std::string(Names::norm), f), p.norm...);
            params_t<Mixer, T>::walk(prefixed(std::string(Names::mixer), f), p.mixer...);
        }
    };
    /// The sub-blocks' parameters, named with the Names prefixes.
    template <class T>
    using params = param_list<fields<T>>;

    /// The sub-blocks' caches and the normalised input.
    struct cache {
        typename Norm::cache n;   ///< norm's
        activations a;            ///< norm(x)
        typename Mixer::cache m;  ///< mixer's
    };

    /// Zero-filled parameters.
    template <class T>
    params<T> make_params() const {
        return {norm.template make_params<T>(), mixer.template make_params<T>()};
    }
    /// The layer's cache.
    cache make_cache(arena& ar, batch_shape s) const {
        cache c{norm.make_cache(ar, s), ar.take<float>(s.tokens(), width), mixer.make_cache(ar, s)};
        return c;
    }

    /// y = x + mixer(norm(x)). y must not alias x.
    template <class T>
    void forward(activations y, cache& c, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        norm.forward(c.a, c.n, x, p.norm, ws, exec);
        mixer.forward(y, c.m, c.a, p.mixer, ws, exec);
        nn::residual_add(y, y, x, exec);
    }

    /// dx and every gradient += ... (accumulates).
    template <class T>
    void backward(activations dx, params<float>& g, const_activations dy, const cache& c, const_activations x, const params<T>& p,
                  workspace& ws, parallel::policy auto&& exec) const {
        workspace::frame frame(ws);
        auto da = detail::zeroed(ws, x.extent(0), width);
        mixer.backward(da, g.mixer, dy, c.m, c.a, p.mixer, ws, exec);
        nn::residual_add(dx, dx, dy, exec);  // the residual path
        norm.backward(dx, g.norm, da, c.n, x, p.norm, ws, exec);
    }

    /// The mixer's decode state (the norm keeps none).
    struct state {
        typename Mixer::state mixer;  ///< e.g. the conv window and the SSM state
    };

    /// The layer's state before its first token: the mixer's (llm::model::decoder keeps one per
    /// sequence, so a stack of these layers decodes through decoder::step with a recurrent_state).
    /// Example: `auto st = layer.make_state();`
    state make_state() const
        requires requires(const Mixer& m) {
            { m.make_state() } -> std::same_as<typename Mixer::state>;
        }
    {
        return {mixer.make_state()};
    }

    /// One token: y = x + mixer.step(norm(x)).
    template <class T>
    void step(activations y, state& st, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const
        requires steppable_block<Norm> && steppable_block<Mixer>
    {
        workspace::frame frame(ws);
        auto a = detail::scratch(ws, x.extent(0), width);
        typename Norm::state ns{};
        norm.step(a, ns, x, p.norm, ws, exec);
        mixer.step(y, st.mixer, a, p.mixer, ws, exec);
        nn::residual_add(y, y, x, exec);
    }
};

/// Tensor name prefixes of `MambaForCausalLM`.
/// Example: `llm::model::stack<..., llm::model::mamba_names>`
struct mamba_names {
    static constexpr std::string_view embedding = "backbone.embeddings.";  ///< token table
    static constexpr std::string_view layers = "backbone.layers.";         ///< + "<i>."
    static constexpr std::string_view final_norm = "backbone.norm_f.";     ///< last norm
    static constexpr std::string_view head = "lm_head.";                   ///< LM head (tied by default)
    static constexpr std::string_view base = "backbone.";                  ///< the base model's prefix
};

/// A Mamba layer (`MambaBlock`): RMSNorm, then the Mamba mixer, with the residual.
/// Example: `static_assert(llm::model::block_like<llm::model::mamba_layer<>>);`
template <std::size_t DState = 16, std::size_t DConv = 4, std::size_t DtRank = 0>
using mamba_layer = mixer_layer<rms_norm, mamba_mixer_of<DState, DConv, DtRank>, mamba_layer_names>;

/// The Mamba structure (`MambaForCausalLM`): token embedding, Mamba layers, final RMSNorm, head
/// (tied to the embedding when dims.tie_embeddings, transformers' default).
/// Example: `static_assert(llm::model::decoder_structure<llm::model::mamba_structure<>>);`
template <std::size_t DState = 16, std::size_t DConv = 4, std::size_t DtRank = 0>
using mamba_structure = stack<token_embedding<false>, pattern<mamba_layer<DState, DConv, DtRank>>, rms_norm, mamba_names>;

/// Mamba-1 (`MambaForCausalLM`). dims: vocab, d_model (hidden_size), n_layers, d_ff
/// (intermediate_size), norm_eps, tie_embeddings; n_heads = 1 (Mamba has no heads; dims
/// validates it). Training forward and backward run through the decoder; decoding too: its
/// layers make their own states (mixer_layer::make_state), so decoder::state is the
/// recurrent_state (conv window and SSM state per layer and sequence, no KV cache) and step /
/// step_tokens run each sequence's tokens through them.
/// Example: `llm::model::mamba<> m(llm::model::from_hf_config("config.json").dims);`
template <dims_policy D = dynamic_dims, std::size_t DState = 16, std::size_t DConv = 4, std::size_t DtRank = 0>
using mamba = decoder<mamba_structure<DState, DConv, DtRank>, D>;

/// The dims of a Hugging Face `MambaForCausalLM` config.json document for llm::model::mamba<>:
/// from_hf_config_text (family::mamba: vocab_size, hidden_size, num_hidden_layers,
/// intermediate_size (d_ff), layer_norm_epsilon, tie_word_embeddings (default true); n_heads = 1;
/// use_bias = true, use_conv_bias = false, hidden_act other than silu refused by name), then the
/// sizes dims has no field for checked against the template arguments: state_size != DState,
/// conv_kernel != DConv, a time_step_rank other than mamba_mixer_of's rank_for(hidden_size) are
/// refused, as is another architecture.
/// Example: `llm::model::mamba<> m(llm::model::mamba_dims_from_hf_config_text(text, "config.json"));`
template <std::size_t DState = 16, std::size_t DConv = 4, std::size_t DtRank = 0>
dims mamba_dims_from_hf_config_text(std::string_view text, const std::string& source) {
    const hf_config cfg = from_hf_config_text(text, source);
    llm::check(cfg.family == family::mamba, "from_hf_config: ", source, ": architecture '", cfg.architecture, "' is not MambaForCausalLM");
    llm::check(cfg.ssm.state == DState, "from_hf_config: ", source, ": state_size = ", cfg.ssm.state,
               " but the model type was instantiated with DState = ", DState);
    llm::check(cfg.ssm.conv == DConv, "from_hf_config: ", source, ": conv_kernel = ", cfg.ssm.conv,
               " but the model type was instantiated with DConv = ", DConv);
    const std::size_t rank = mamba_mixer_of<DState, DConv, DtRank>::rank_for(cfg.dims.d_model);
    llm::check(cfg.ssm.dt_rank == rank, "from_hf_config: ", source, ": time_step_rank = ", cfg.ssm.dt_rank, " but the model type gives ",
               rank);
    return cfg.dims;
}

/// mamba_dims_from_hf_config_text on the file at `path` (a config.json).
/// Example: `llm::model::mamba<> m(llm::model::mamba_dims_from_hf_config("config.json"));`
template <std::size_t DState = 16, std::size_t DConv = 4, std::size_t DtRank = 0>
dims mamba_dims_from_hf_config(const std::string& path) {
    return mamba_dims_from_hf_config_text<DState, DConv, DtRank>(io::read_file(path, std::size_t{16} << 20, "from_hf_config"), path);
}

}  // namespace llm::model
