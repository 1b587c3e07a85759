// SPDX-License-Identifier: Apache-2.0
// llm::model::decoder<Structure, Dims>: a compile-time stack of blocks with static or run-time dims.
#pragma once

#include <llm/attention/kv_cache.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/detected.hpp>
#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/detail/ops.hpp>
#include <llm/nn/cross_entropy.hpp>
#include <llm/nn/linear.hpp>
#include <llm/tensor/tensor.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::model {

/// The layer pattern of a stack: layer i has type Layers[i % sizeof...(Layers)]. One type is a
/// uniform stack; several make hybrids (`pattern<mamba_layer, attention_layer>` alternates,
/// `pattern<L, L, L, A>` puts attention every 4th layer, Jamba-style).
/// Example: `llm::model::pattern<llama_layer>`
template <class... Layers>
struct pattern {
    static constexpr std::size_t size = sizeof...(Layers);  ///< layers in one period
};

/// Tensor name prefixes of a Llama-family checkpoint (`LlamaForCausalLM`).
/// Example: `llm::model::stack<..., llm::model::llama_names>`
struct llama_names {
    static constexpr std::string_view embedding = "model.embed_tokens.";  ///< token table
    static constexpr std::string_view layers = "model.layers.";           ///< + "<i>."
    static constexpr std::string_view final_norm = "model.norm.";         ///< last norm
    static constexpr std::string_view head = "lm_head.";                  ///< LM head
    static constexpr std::string_view base = "model.";                    ///< the base model's prefix
};

/// Tensor name prefixes of GPT-2 (`GPT2LMHeadModel`).
/// Example: `llm::model::stack<..., llm::model::gpt2_names>`
struct gpt2_names {
    static constexpr std::string_view embedding = "transformer.";   ///< + wte.weight, wpe.weight
    static constexpr std::string_view layers = "transformer.h.";    ///< + "<i>."
    static constexpr std::string_view final_norm = "transformer.ln_f.";  ///< last norm
    static constexpr std::string_view head = "lm_head.";            ///< LM head (tied in GPT-2)
    static constexpr std::string_view base = "transformer.";        ///< the base model's prefix
};

/// Every layer has the model's dims (the default layer-width policy of llm::model::stack).
/// Example: `static_assert(llm::model::uniform_widths::for_layer(d, 3).d_ff == d.d_ff);`
struct uniform_widths {
    /// The dims of layer `layer`: the model's.
    static constexpr dims for_layer(const dims& d, std::size_t /*layer*/) noexcept { return d; }
};

/// OpenELM's layer-wise scaling (Mehta et al. 2024): layer l of L gets t = l / (L - 1) and
/// query heads round((QMin + (QMax - QMin) t) d_model / head_dim) (a multiple of the GQA group
/// n_heads / n_kv_heads, at least one group), kv heads that / group, and an FFN width
/// (FMin + (FMax - FMin) t) d_model rounded to a multiple of Divisor. Computed by a constexpr
/// function, so with static dims every layer's widths are constants.
/// Example: `using s = llm::model::stack<emb, llm::model::pattern<layer>, llm::model::rms_norm, llm::model::llama_names, llm::model::openelm_widths<0.5, 1.0, 0.5, 4.0>>;`
template <double QMin, double QMax, double FMin, double FMax, std::size_t Divisor = 16>
struct openelm_widths {
    /// The dims of layer `layer` (sizes as the class comment says).
    static constexpr dims for_layer(const dims& d, std::size_t layer) noexcept {
        const double t = d.n_layers > 1 ? static_cast<double>(layer) / static_cast<double>(d.n_layers - 1) : 0.0;
        const std::size_t group = d.n_heads / d.kv_heads();
        const double q = (QMin + (QMax - QMin) * t) * static_cast<double>(d.d_model) / static_cast<double>(d.head_width());
        std::size_t groups = static_cast<std::size_t>(q / static_cast<double>(group) + 0.5);
        groups = groups == 0 ? 1 : groups;
        const double f = (FMin + (FMax - FMin) * t) * static_cast<double>(d.d_model);
        std::size_t ff = static_cast<std::size_t>(f / static_cast<double>(Divisor) + 0.5) * Divisor;
        ff = ff == 0 ? Divisor : ff;
        dims out = d;
        out.head_dim = d.head_width();
        out.n_heads = groups * group;
        out.n_kv_heads = groups;
        out.d_ff = ff;
        return out;
    }
};

/// A decoder's structure: the token embedding block, the layer pattern (a llm::model::pattern
/// of layer blocks), the final norm block, the checkpoint names and the per-layer widths
/// (uniform_widths, or openelm_widths: each layer is built from Widths::for_layer(dims, l)).
/// The LM head is a linear [vocab, d_model] map, tied to the embedding when dims.tie_embeddings.
/// Example: `using s = llm::model::stack<llm::model::token_embedding<>, llm::model::pattern<layer>, llm::model::rms_norm, llm::model::llama_names>;`
template <class Embedding, class Pattern, class FinalNorm, class Names = llama_names, class Widths = uniform_widths>
struct stack {
    using embedding = Embedding;    ///< first block (reads token ids)
    using layers = Pattern;         ///< the layer pattern
    using final_norm = FinalNorm;   ///< norm before the head
    using names = Names;            ///< checkpoint names
    using widths = Widths;          ///< per-layer dims
};

namespace detail {
template <class P>
struct all_layers_are_blocks : std::false_type {};
template <class... L>
struct all_layers_are_blocks<pattern<L...>>
    : std::bool_constant<(sizeof...(L) > 0) && (block_like<L> && ...) && (std::constructible_from<L, const dims&> && ...)> {};
}  // namespace detail

/// What decoder<Structure, Dims> needs of Structure (a llm::model::stack): an embedding block
/// reading llm::model::token_ids, a llm::model::pattern of at least one block_like layer
/// (each constructible from llm::model::dims and mapping [tokens, d_model] to itself), a
/// block_like final norm, and a names policy with the prefixes. A wrong composition fails at
/// `decoder<...>` naming this concept.
/// Example: `static_assert(llm::model::decoder_structure<llm::model::llama_structure>);`
template <class S>
concept decoder_structure =
    requires {
        typename S::embedding;
        typename S::layers;
        typename S::final_norm;
        typename S::names;
        { S::names::embedding } -> std::convertible_to<std::string_view>;
        { S::names::layers } -> std::convertible_to<std::string_view>;
        { S::names::final_norm } -> std::convertible_to<std::string_view>;
        { S::names::head } -> std::convertible_to<std::string_view>;
    } && block_like<typename S::embedding> && std::same_as<block_input_t<typename S::embedding>, token_ids> &&
    detail::all_layers_are_blocks<typename S::layers>::value && block_like<typename S::final_norm> &&
    std::constructible_from<typename S::embedding, const dims&> && std::constructible_from<typename S::final_norm, const dims&>;

/// Dims known at compile time: `static_dims<dims{...}>` (a C++20 class-type template
/// argument), so sizes, parameter count and FLOPs are constant expressions.
/// Example: `using d = llm::model::static_dims<llm::model::dims{.vocab = 256, .d_model = 64, .n_layers = 2, .n_heads = 4}>;`
template <dims D>
struct static_dims {
    static constexpr dims value = D;  ///< the dims
    /// The dims.
    static constexpr dims get() noexcept { return D; }
};

/// Dims read at run time (from a config.json: llm::model::from_hf_config).
/// Example: `llm::model::dynamic_dims d{cfg};`
struct dynamic_dims {
    dims value;  ///< the dims
    /// The dims.
    [[nodiscard]] dims get() const noexcept { return value; }
};

/// Which block of a decoder a backward has just finished (llm::model::grads_ready::part).
enum class grads_part {
    head,        ///< the LM head (untied only: a tied head's gradient is the embedding's)
    final_norm,  ///< the final norm
    layer,       ///< layer grads_ready::layer
    embedding,   ///< the embedding (and, tied, the LM head)
};

/// What a decoder's backward reports to its hook after a block: the gradients of the tensors
/// [first, first + count) of the model's parameter walk (for_each_param / for_each_tensor
/// order, counting from 0) are final for this backward: nothing after this point adds to them.
/// Blocks finish in reverse walk order: the LM head (when untied), the final norm, layers
/// n_layers - 1 .. 0, the embedding (with a tied head's gradient) last. Data-parallel training
/// starts a gradient bucket's all-reduce as soon as its tensors are reported.
/// Example: `model.backward_loss(g, 1.0f, c, ids, y, p, [&](const llm::model::grads_ready& r) { bucket.ready(r.first, r.count); }, ws, pool);`
struct grads_ready {
    std::size_t first = 0;            ///< the first tensor's index in the parameter walk
    std::size_t count = 0;            ///< tensors in the block (contiguous in the walk)
    grads_part part = grads_part::layer;  ///< which block
    std::size_t layer = 0;            ///< the layer index (part == layer; otherwise 0)
};

/// A backward hook: called as `hook(const grads_ready&)` once per block, when that block's
/// gradients are final (llm::model::no_hook: none).
/// Example: `static_assert(llm::model::backward_hook<llm::model::no_hook>);`
template <class H>
concept backward_hook = std::invocable<H&, const grads_ready&>;

/// The hook that does nothing: the backward without a hook compiles the reporting away.
/// Example: `model.backward_loss(g, 1.0f, c, ids, y, p, llm::model::no_hook{}, ws, pool);`
struct no_hook {
    void operator()(const grads_ready&) const noexcept {}  ///< nothing
};

/// A dims policy: static_dims<...> or dynamic_dims (anything with get() returning dims).
/// Example: `static_assert(llm::model::dims_policy<llm::model::dynamic_dims>);`
template <class D>
concept dims_policy = std::default_initializable<D> && requires(const D& d) {
    { d.get() } -> std::same_as<dims>;
};

/// Initialisation options (GPT-2 / llm.c): weights normal(0, std), residual output
/// projections (`o_proj`, `down_proj`, `c_proj`) std / sqrt(2 n_layers), biases 0, norm
/// weights 1.
/// Example: `model.init(params, {.seed = 42});`
struct init_options {
    std::uint64_t seed = 1337;  ///< the generator's seed (std::mt19937_64)
    float std = 0.02f;          ///< standard deviation of the weights
};

/// How a decoder's KV state keeps keys and values (decoder::make_state): block_size 0, a
/// contiguous cache reserving every sequence's whole capacity up front; block_size > 0, a paged
/// cache (vLLM's PagedAttention layout, attention::paged_kv_cache) whose sequences take blocks
/// of block_size tokens from a pool of `blocks` as they grow and give them back when reset, so
/// memory follows the tokens held. A recurrent stack (Mamba) has no KV cache and ignores it.
/// Example: `auto st = model.make_state(8, 4096, {.block_size = 16, .blocks = 512});`
struct kv_layout {
    std::size_t block_size = 0;  ///< tokens per block; 0: contiguous
    std::size_t blocks = 0;      ///< blocks in the pool (paged); 0: enough for every sequence's capacity
};

/// A decoder-only language model: the structure's embedding, `n_layers` layers following the
/// pattern, the final norm and the LM head (logits = norm(h) W^T, W the embedding table when
/// dims.tie_embeddings). Itself a block (llm::model::block_like with token_ids input and
/// logits [tokens, vocab] output), plus forward_loss / backward_loss with cross-entropy, a
/// decode step through a KV cache (step: one token per sequence; step_tokens: T tokens of one
/// sequence at once), initialisation, parameter count and FLOPs per token.
/// Structure: a llm::model::decoder_structure (stack<...>; the families in
/// <llm/model/families.hpp>). Dims: static_dims<dims{...}> or dynamic_dims: the same code
/// serves both (the block objects hold the sizes; kernels see run-time extents in both cases).
/// Example:
/// ```
/// llm::model::llama<> m(llm::model::dims{.vocab = 256, .d_model = 64, .n_layers = 2, .n_heads = 4, .d_ff = 128});
/// auto p = m.make_params<float>(); m.init(p, {.seed = 1});
/// llm::model::arena a; auto c = m.make_cache(a, {.batch = 2, .seq = 16}); // twice: see llm::model::arena
/// ```
template <decoder_structure Structure, dims_policy Dims = dynamic_dims>
class decoder {
    using names = typename Structure::names;
    using emb_t = typename Structure::embedding;
    using norm_t = typename Structure::final_norm;
    template <class S>
    using widths_of = typename S::widths;
    using widths = detected_or_t<uniform_widths, widths_of, Structure>;
    template <class P>
    struct kinds_of;
    template <class... L>
    struct kinds_of<pattern<L...>> {
        using tuple = std::tuple<L...>;
        template <class T>
        using params = std::tuple<std::vector<params_t<L, T>>...>;
        using caches = std::tuple<std::vector<typename L::cache>...>;
        using objects = std::tuple<std::vector<L>...>;
        static constexpr std::size_t count = sizeof...(L);
    };
    using kinds = kinds_of<typename Structure::layers>;
    // A layer kind that makes its own decode state (make_state(): a recurrent mixer such as
    // Mamba's conv window and SSM state) instead of reading a KV cache layer.
    template <class L>
    static constexpr bool makes_own_state = requires(const L& l) {
        { l.make_state() } -> std::same_as<typename L::state>;
    };
    template <class P>
    struct recurrent_of;
    template <class... L>
    struct recurrent_of<pattern<L...>> {
        static constexpr bool value = (makes_own_state<L> && ...);
        using states = std::tuple<std::vector<typename L::state>...>;
    };
    static constexpr std::size_t period = kinds::count;
    template <std::size_t K>
    using layer_t = std::tuple_element_t<K, typename kinds::tuple>;

    // Calls f(integral_constant<K>) for the kind K of layer i.
    template <class F>
    static void for_kind(std::size_t i, F&& f) {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            ((i % period == K ? (f(std::integral_constant<std::size_t, K>{}), 0) : 0), ...);
        }(std::make_index_sequence<period>{});
    }

public:
    using structure = Structure;  ///< the structure
    using dims_type = Dims;       ///< the dims policy
    using input_type = token_ids; ///< a decoder reads token ids

    /// The model for the dims of the policy (static: nothing to pass; dynamic: the dims read).
    /// Throws llm::error when the dims do not make a model (llm::model::dims::validate).
    explicit decoder(Dims d = {})
        : dims_(validated(d)), emb_(d.get()), layers_(make_layers(d.get())), norm_(d.get()) {}
    /// From run-time dims (dynamic_dims only).
    explicit decoder(const dims& d)
        requires std::same_as<Dims, dynamic_dims>
        : decoder(dynamic_dims{d}) {}

    /// The dims.
    [[nodiscard]] dims config() const noexcept { return dims_.get(); }

    /// Parameters of a model of dims d (constexpr: `static_assert(m::parameter_count(d) == ...)`),
    /// the tied head counted once.
    static constexpr std::size_t parameter_count(const dims& d) noexcept {
        std::size_t n = emb_t::param_count(d) + norm_t::param_count(d) + (d.tie_embeddings ? 0 : d.vocab * d.d_model);
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            [&]<std::size_t... K>(std::index_sequence<K...>) {
                ((n += i % period == K ? layer_t<K>::param_count(widths::for_layer(d, i)) : 0), ...);
            }(std::make_index_sequence<period>{});
        }
        return n;
    }

    /// Training FLOPs per token at context length seq, llm.c's estimate (gpt2_estimate_mfu,
    /// after PaLM appendix B): 6 N + 12 n_layers n_heads head_dim seq, N = parameter_count.
    static constexpr double training_flops_per_token(const dims& d, std::size_t seq) noexcept {
        double attention = 0.0;
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            const dims l = widths::for_layer(d, i);
            attention += 12.0 * static_cast<double>(l.n_heads * l.head_width() * seq);
        }
        return 6.0 * static_cast<double>(parameter_count(d)) + attention;
    }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        using element_type = T;                        ///< the parameter kind (float, bf16, llm::model::quantized)
        params_t<emb_t, T> embedding;                  ///< the embedding block's
        typename kinds::template params<T> layers;     ///< layer i: std::get<i % period>(layers)[i / period]
        params_t<norm_t, T> final_norm;                ///< the final norm's
        matrix_t<T> head;                              ///< lm_head.weight [vocab, d_model]; empty when tied (quantized: set by the loader, tied or not)
        std::size_t n_layers = 0;                      ///< layers

        /// Visits every tensor under its Hugging Face name (`model.layers.3.mlp.up_proj.weight`).
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            params_t<emb_t, T>::walk(prefixed(std::string(names::embedding), f), p.embedding...);
            const std::size_t n = first(p...).n_layers;
            for (std::size_t i = 0; i < n; ++i) {
                for_kind(i, [&](auto k) {
                    using L = layer_t<decltype(k)::value>;
                    params_t<L, T>::walk(prefixed(std::string(names::layers) + std::to_string(i) + ".", f),
                                         std::get<decltype(k)::value>(p.layers)[i / period]...);
                });
            }
            params_t<norm_t, T>::walk(prefixed(std::string(names::final_norm), f), p.final_norm...);
            if (first(p...).head.size() != 0) {
                std::string name(names::head);
                name += "weight";
                f(std::string_view(name), p.head...);
            }
        }
    private:
        template <class A, class... R>
        static A& first(A& a, R&...) {
            return a;
        }
    };
    /// The parameters: embedding, layers (one vector per layer kind), final norm, head.
    template <class T>
    using params = param_list<fields<T>>;

    /// Activation caches of every block, the residual stream between layers, the final norm's
    /// output, the logits and their log-sum-exps (for the loss): views into one arena.
    struct cache {
        batch_shape shape;                               ///< the batch
        typename emb_t::cache embedding;                 ///< the embedding's
        typename kinds::caches layers;                   ///< per layer
        std::vector<activations> stream;                 ///< stream[l]: layer l's input; stream[n_layers]: the last output
        typename norm_t::cache final_norm;               ///< the final norm's
        activations normed;                              ///< final_norm(stream[n_layers])
        activations logits;                              ///< [tokens, vocab]
        tensor_view<float, llm::dims<1>> lse;            ///< per-token log-sum-exp of the logits
    };

    /// Zero-filled parameters at their shapes (the head empty when tied).
    template <class T>
    params<T> make_params() const {
        const dims d = config();
        params<T> p;
        p.embedding = emb_.template make_params<T>();
        p.n_layers = d.n_layers;
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            for_kind(i, [&](auto k) {
                std::get<decltype(k)::value>(p.layers).push_back(std::get<decltype(k)::value>(layers_)[i / period].template make_params<T>());
            });
        }
        p.final_norm = norm_.template make_params<T>();
        if (!d.tie_embeddings) {
            p.head = matrix_t<T>(d.vocab, d.d_model);
        }
        return p;
    }

    /// Every cache of the model for a batch, from the arena (call twice: counting, then on the
    /// memory; llm::model::make_cache does both).
    cache make_cache(arena& a, batch_shape s) const {
        const dims d = config();
        llm::check(s.batch > 0 && s.seq > 0, "decoder::make_cache: batch = ", s.batch, " and seq = ", s.seq, " must be > 0");
        cache c;
        c.shape = s;
        c.embedding = emb_.make_cache(a, s);
        c.stream.push_back(a.take<float>(s.tokens(), d.d_model));
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            for_kind(i, [&](auto k) {
                std::get<decltype(k)::value>(c.layers).push_back(std::get<decltype(k)::value>(layers_)[i / period].make_cache(a, s));
            });
            c.stream.push_back(a.take<float>(s.tokens(), d.d_model));
        }
        c.final_norm = norm_.make_cache(a, s);
        c.normed = a.take<float>(s.tokens(), d.d_model);
        c.logits = a.take<float>(s.tokens(), d.vocab);
        c.lse = a.take<float>(s.tokens());
        return c;
    }

    /// logits [tokens, vocab] for token ids [tokens] (the batch of the cache).
    template <class T>
    void forward(activations logits, cache& c, token_ids ids, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        const dims d = config();
        llm::check(ids.extent(0) == c.shape.tokens(), "decoder::forward: ", ids.extent(0), " token ids but the cache was made for ",
                   c.shape.tokens(), " tokens (batch ", c.shape.batch, " x seq ", c.shape.seq, ")");
        emb_.forward(c.stream[0], c.embedding, ids, p.embedding, ws, exec);
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            for_kind(i, [&](auto k) {
                constexpr std::size_t K = decltype(k)::value;
                std::get<K>(layers_)[i / period].forward(c.stream[i + 1], std::get<K>(c.layers)[i / period], c.stream[i],
                                             std::get<K>(p.layers)[i / period], ws, exec);
            });
        }
        norm_.forward(c.normed, c.final_norm, c.stream[d.n_layers], p.final_norm, ws, exec);
        detail::linear(logits, c.normed, head_weight(p), ws, exec);
    }

    /// Backward from dlogits [tokens, vocab]: every gradient in g += ... (accumulates; token ids
    /// have no gradient).
    template <class T>
    void backward(no_grad, params<float>& g, const_activations dlogits, const cache& c, token_ids ids, const params<T>& p, workspace& ws,
                  parallel::policy auto&& exec) const {
        backward(no_grad{}, g, dlogits, c, ids, p, no_hook{}, ws, exec);
    }

    /// backward, calling `hook(grads_ready{...})` after each block whose gradients are then final
    /// (the head when untied, the final norm, layers n_layers - 1 .. 0, the embedding last).
    /// Example: `model.backward(llm::model::no_grad{}, g, dlogits, c, ids, p, [&](const llm::model::grads_ready& r) { ... }, ws, pool);`
    template <class T, backward_hook Hook>
    void backward(no_grad, params<float>& g, const_activations dlogits, const cache& c, token_ids ids, const params<T>& p, Hook&& hook,
                  workspace& ws, parallel::policy auto&& exec) const {
        const dims d = config();
        const std::size_t n = c.shape.tokens();
        workspace::frame frame(ws);
        auto dnormed = detail::zeroed(ws, n, d.d_model);
        nn::linear_backward(dnormed, head_weight(g), dlogits, c.normed, head_weight(p), ws, exec);
        if constexpr (!std::same_as<std::remove_cvref_t<Hook>, no_hook>) {
            if (g.head.size() != 0) hook(grads_ready{tensor_count(g) - 1, 1, grads_part::head, 0});
        }
        backward_hidden(no_grad{}, g, dnormed, c, ids, p, hook, ws, exec);
    }

    /// Backward from the gradient of the final hidden state c.normed [tokens, d_model] (the
    /// final norm's output, which the LM head reads), for heads other than the LM head (a reward
    /// head): every gradient but the head's in g += ... (accumulates).
    /// Example: `model.backward_hidden(llm::model::no_grad{}, g, dnormed, c, ids, p, ws, pool);`
    template <class T>
    void backward_hidden(no_grad, params<float>& g, const_activations dnormed, const cache& c, token_ids ids, const params<T>& p, workspace& ws,
                         parallel::policy auto&& exec) const {
        backward_hidden(no_grad{}, g, dnormed, c, ids, p, no_hook{}, ws, exec);
    }

    /// backward_hidden, calling `hook(grads_ready{...})` after the final norm, each layer
    /// (n_layers - 1 .. 0) and the embedding (the head is not touched, so not reported).
    /// Example: `model.backward_hidden(llm::model::no_grad{}, g, dnormed, c, ids, p, hook, ws, pool);`
    template <class T, backward_hook Hook>
    void backward_hidden(no_grad, params<float>& g, const_activations dnormed, const cache& c, token_ids ids, const params<T>& p, Hook&& hook,
                         workspace& ws, parallel::policy auto&& exec) const {
        constexpr bool hooked = !std::same_as<std::remove_cvref_t<Hook>, no_hook>;
        const dims d = config();
        const std::size_t n = c.shape.tokens();
        llm::check(dnormed.extent(0) == n && dnormed.extent(1) == d.d_model, "decoder::backward_hidden: dnormed is [", dnormed.extent(0), ", ",
                   dnormed.extent(1), "], expected [", n, ", ", d.d_model, "]");
        workspace::frame frame(ws);
        auto dh = detail::zeroed(ws, n, d.d_model);
        auto dprev = detail::scratch(ws, n, d.d_model);
        // end: one past the last tensor of the next block to report (walking back from the head).
        [[maybe_unused]] std::size_t end = 0;
        if constexpr (hooked) end = tensor_count(g) - (g.head.size() != 0 ? 1 : 0);
        auto report = [&](auto& block_grads, grads_part part, std::size_t layer) {
            if constexpr (hooked) {
                const std::size_t k = tensor_count(block_grads);
                end -= k;
                hook(grads_ready{end, k, part, layer});
            } else {
                (void)block_grads, (void)part, (void)layer;
            }
        };
        norm_.backward(dh, g.final_norm, dnormed, c.final_norm, c.stream[d.n_layers], p.final_norm, ws, exec);
        report(g.final_norm, grads_part::final_norm, 0);
        for (std::size_t i = d.n_layers; i-- > 0;) {
            llm::zero_grad(dprev);
            for_kind(i, [&](auto k) {
                constexpr std::size_t K = decltype(k)::value;
                std::get<K>(layers_)[i / period].backward(dprev, std::get<K>(g.layers)[i / period], dh, std::get<K>(c.layers)[i / period], c.stream[i],
                                              std::get<K>(p.layers)[i / period], ws, exec);
                report(std::get<K>(g.layers)[i / period], grads_part::layer, i);
            });
            std::swap(dh, dprev);
        }
        emb_.backward(no_grad{}, g.embedding, dh, c.embedding, ids, p.embedding, ws, exec);
        report(g.embedding, grads_part::embedding, 0);
    }

    /// The mean cross-entropy of the logits against targets [tokens] (Hugging Face's loss when
    /// targets are the ids shifted by one, ignore_index -100); the logits stay in c.logits.
    template <class T, class Targets>
    float forward_loss(cache& c, token_ids ids, Targets&& targets, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        forward(c.logits, c, ids, p, ws, exec);
        return nn::cross_entropy_forward(c.lse, c.logits, targets, exec);
    }

    /// Backward of forward_loss scaled by dloss (1 for the mean loss itself): gradients += ...
    template <class T, class Targets>
    void backward_loss(params<float>& g, float dloss, const cache& c, token_ids ids, Targets&& targets, const params<T>& p, workspace& ws,
                       parallel::policy auto&& exec) const {
        backward_loss(g, dloss, c, ids, targets, p, no_hook{}, ws, exec);
    }

    /// backward_loss, calling `hook(grads_ready{...})` after each block (see backward).
    /// Example: `model.backward_loss(g, 1.0f, c, ids, y, p, hook, ws, pool);`
    template <class T, class Targets, backward_hook Hook>
    void backward_loss(params<float>& g, float dloss, const cache& c, token_ids ids, Targets&& targets, const params<T>& p, Hook&& hook,
                       workspace& ws, parallel::policy auto&& exec) const {
        const dims d = config();
        workspace::frame frame(ws);
        auto dlogits = detail::zeroed(ws, c.shape.tokens(), d.vocab);
        nn::cross_entropy_backward(dlogits, c.lse, dloss, c.logits, targets, exec);
        backward(no_grad{}, g, dlogits, c, ids, p, hook, ws, exec);
    }

    /// True when every layer keeps a decode state of its own (the layer has make_state():
    /// Mamba's conv window and SSM state) rather than a KV cache: the decoder's state is then a
    /// recurrent_state, otherwise a kv_state. (A hybrid of both is not served by step yet.)
    static constexpr bool recurrent = recurrent_of<typename Structure::layers>::value;

    /// Decoding state of a stack with attention: the KV cache of all layers (contiguous or
    /// paged, chosen by make_state's kv_layout) and the position of learned-position models.
    struct kv_state {
        attention::any_kv_cache<float> kv;  ///< keys and values of every layer
        std::size_t position = 0;           ///< tokens stepped so far (learned positions)
    };

    /// Decoding state of a recurrent stack (decoder::recurrent): every layer's own state for
    /// every sequence (a fixed size, whatever the length: no KV cache, so nothing to share
    /// between sequences), each sequence's length, and the fresh states reset() restores.
    struct recurrent_state {
        /// Per layer kind of the pattern: entry (i / period) * sequences() + seq is layer i's state of sequence seq.
        typename recurrent_of<typename Structure::layers>::states layers;
        /// Per layer kind: entry i / period is layer i's state before its first token.
        typename recurrent_of<typename Structure::layers>::states initial;
        std::vector<std::size_t> lengths;  ///< tokens stepped so far, per sequence
        std::size_t position = 0;          ///< tokens stepped so far by the last step (the decoder's step API)

        /// Sequences the state holds.
        [[nodiscard]] std::size_t sequences() const noexcept { return lengths.size(); }
        /// Tokens sequence `seq` has stepped (checked).
        [[nodiscard]] std::size_t length(std::size_t seq) const {
            llm::check(seq < lengths.size(), "decoder::recurrent_state::length: sequence ", seq, " of ", lengths.size());
            return lengths[seq];
        }
        /// Sequence `seq` starts again: every layer's state of it back to the fresh one, length 0.
        /// Example: `st.reset(0);`
        void reset(std::size_t seq) {
            llm::check(seq < lengths.size(), "decoder::recurrent_state::reset: sequence ", seq, " of ", lengths.size());
            const std::size_t n = lengths.size();
            [&]<std::size_t... K>(std::index_sequence<K...>) {
                ((reset_kind(std::get<K>(layers), std::get<K>(initial), seq, n)), ...);
            }(std::make_index_sequence<period>{});
            lengths[seq] = 0;
        }

    private:
        template <class V>
        static void reset_kind(V& states, const V& fresh, std::size_t seq, std::size_t n) {
            for (std::size_t j = 0; j < fresh.size(); ++j) {
                states[j * n + seq] = fresh[j];
            }
        }
    };

    /// The decoding state: recurrent_state when decoder::recurrent, otherwise kv_state.
    using state = std::conditional_t<recurrent, recurrent_state, kv_state>;

    /// A decoding state for `sequences` sequences of up to `capacity` tokens: a KV cache, or,
    /// for a recurrent stack, every layer's fresh state per sequence (its size does not depend
    /// on the length, so capacity is no limit there).
    [[nodiscard]] state make_state(std::size_t sequences, std::size_t capacity) const { return make_state(sequences, capacity, {}); }

    /// make_state with the KV cache's layout: contiguous (layout.block_size 0) or paged, blocks
    /// of layout.block_size tokens from a pool of layout.blocks (0: sequences x
    /// ceil(capacity / block_size), room for every sequence's capacity), each sequence's block
    /// table sized for capacity tokens (a step allocates nothing). A sequence still holds at
    /// most capacity tokens only where the caller keeps it so (the engine's context); the pool
    /// is the limit, an append beyond it is llm::error. A recurrent stack ignores the layout.
    /// Throws llm::error for layout.blocks without a block_size.
    /// Example: `auto st = model.make_state(4, 512, {.block_size = 16, .blocks = 64});`
    [[nodiscard]] state make_state(std::size_t sequences, std::size_t capacity, const kv_layout& layout) const {
        const dims d = config();
        if constexpr (recurrent) {
            (void)layout;  // no KV cache
            llm::check(sequences > 0, "decoder::make_state: sequences = 0 (capacity ", capacity, ")");
            state st;
            st.lengths.assign(sequences, 0);
            for (std::size_t i = 0; i < d.n_layers; ++i) {
                for_kind(i, [&](auto k) {
                    constexpr std::size_t K = decltype(k)::value;
                    const auto& layer = std::get<K>(layers_)[i / period];
                    std::get<K>(st.initial).push_back(layer.make_state());
                    for (std::size_t s = 0; s < sequences; ++s) {
                        std::get<K>(st.layers).push_back(layer.make_state());
                    }
                });
            }
            return st;
        } else {
            return make_kv_state(sequences, capacity, layout);
        }
    }

private:
    [[nodiscard]] kv_state make_kv_state(std::size_t sequences, std::size_t capacity, const kv_layout& layout) const {
        const dims d = config();
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            const dims l = widths::for_layer(d, i);
            llm::check(l.kv_heads() == d.kv_heads() && l.head_width() == d.head_width(), "decoder::make_state: layer ", i, " has ",
                       l.kv_heads(), " kv heads of ", l.head_width(), " but layer 0 has ", d.kv_heads(), " of ", d.head_width(),
                       "; the KV cache needs the same in every layer");
        }
        llm::check(layout.block_size != 0 || layout.blocks == 0, "decoder::make_state: kv_layout.blocks = ", layout.blocks,
                   " needs a block_size (0 means a contiguous cache)");
        if (layout.block_size == 0) {
            return kv_state{attention::contiguous_kv_cache<float>(d.n_layers, sequences, capacity, d.kv_heads(), d.head_width()), 0};
        }
        const std::size_t per_sequence = capacity / layout.block_size + (capacity % layout.block_size != 0);
        const std::size_t blocks = layout.blocks != 0 ? layout.blocks
                                                      : checked_mul(sequences, per_sequence, "decoder::make_state", "the default block count");
        attention::paged_kv_cache<float> cache(d.n_layers, blocks, layout.block_size, d.kv_heads(), d.head_width());
        for (std::size_t s = 0; s < sequences; ++s) {
            cache.add_sequence(capacity);
        }
        return kv_state{std::move(cache), 0};
    }

    // The final norm and the LM head on the last logits.extent(0) rows of h [n, d_model] (none
    // when logits has no rows); h2 (as large as h) takes the normed rows.
    template <class T>
    void final_rows(activations logits, activations h, activations h2, const params<T>& p, workspace& ws,
                    parallel::policy auto&& exec) const {
        const std::size_t rows = logits.extent(0), n = h.extent(0), width = h.extent(1);
        if (rows == 0) {
            return;
        }
        const auto last = activations(h.data() + (n - rows) * width, llm::dims<2>(rows, width));
        const auto normed = activations(h2.data(), llm::dims<2>(rows, width));
        typename norm_t::state ns{};
        norm_.step(normed, ns, last, p.final_norm, ws, exec);
        detail::linear(logits, normed, head_weight(p), ws, exec);
    }

    // A recurrent stack's step of rows[r] = token t of sequence seq_of(r), in order: each
    // layer steps each row through that sequence's state (one row at a time: the layer's state
    // is one sequence's), then the final norm and the head on the last `rows` rows.
    template <class T, class SeqOf>
    void step_rows(activations logits, recurrent_state& st, token_ids ids, std::size_t first_position, SeqOf seq_of, const params<T>& p,
                   workspace& ws, parallel::policy auto&& exec) const {
        const dims d = config();
        const std::size_t n = ids.extent(0), S = st.sequences();
        workspace::frame frame(ws);
        auto h = detail::scratch(ws, n, d.d_model);
        auto h2 = detail::scratch(ws, n, d.d_model);
        auto row = [&](auto& a, std::size_t r) { return activations(a.data() + r * d.d_model, llm::dims<2>(1, d.d_model)); };
        for (std::size_t r = 0; r < n; ++r) {
            typename emb_t::state es{first_position + r};
            emb_.step(row(h, r), es, token_ids(ids.data() + r * ids.stride(0), llm::dims<1>(1)), p.embedding, ws, exec);
        }
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            for_kind(i, [&](auto k) {
                constexpr std::size_t K = decltype(k)::value;
                auto& states = std::get<K>(st.layers);
                for (std::size_t r = 0; r < n; ++r) {
                    std::get<K>(layers_)[i / period].step(row(h2, r), states[(i / period) * S + seq_of(r)], row(h, r),
                                                          std::get<K>(p.layers)[i / period], ws, exec);
                }
            });
            std::swap(h, h2);
        }
        final_rows(logits, h, h2, p, ws, exec);
    }

public:

    /// One new token per sequence: ids [sequences], logits [sequences, vocab]; appends every
    /// layer's keys and values and commits them (kv.advance). Sequences step together.
    /// A recurrent stack (decoder::recurrent): ids [sequences] must hold one token for every
    /// sequence of the state; each steps through its own layer states and its length grows by 1.
    template <class T>
    void step(activations logits, state& st, token_ids ids, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        if constexpr (recurrent) {
            const dims d = config();
            const std::size_t n = ids.extent(0);
            llm::check(n == st.sequences(), "decoder::step: ", n, " tokens for a state of ", st.sequences(), " sequences (one each)");
            llm::check(logits.extent(0) == n && logits.extent(1) == d.vocab, "decoder::step: logits is [", logits.extent(0), ", ",
                       logits.extent(1), "], expected [", n, ", ", d.vocab, "]");
            step_rows(logits, st, ids, st.position, [](std::size_t r) { return r; }, p, ws, exec);
            for (std::size_t s = 0; s < n; ++s) {
                ++st.lengths[s];
            }
            ++st.position;
        } else {
            step_kv(logits, st, {}, ids, p, ws, exec);
        }
    }

    /// One new token for each sequence of `seqs` (distinct sequence ids of the state), the
    /// others untouched: continuous batching steps only the running sequences. ids [n] and
    /// logits [n, vocab], n = seqs.size(): row r is the next token of sequence seqs[r] (at
    /// position kv.length(seqs[r]); learned positions: st.position for every row). Its keys
    /// and values are appended and committed (a recurrent stack: its state steps, its length
    /// grows by 1). Throws llm::error, the state unchanged, for a wrong count, an id out of
    /// range or repeated.
    /// Example: `const std::size_t seqs[2] = {0, 3}; model.step(logits.view(), st, seqs, llm::model::token_ids(ids, 2), p, ws, pool);`
    template <class T>
    void step(activations logits, state& st, std::span<const std::size_t> seqs, token_ids ids, const params<T>& p, workspace& ws,
              parallel::policy auto&& exec) const {
        const dims d = config();
        const std::size_t n = ids.extent(0), S = st_sequences(st);
        llm::check(seqs.size() == n && n > 0, "decoder::step: ", n, " tokens for ", seqs.size(), " sequences (one each, at least one)");
        llm::check(logits.extent(0) == n && logits.extent(1) == d.vocab, "decoder::step: logits is [", logits.extent(0), ", ",
                   logits.extent(1), "], expected [", n, ", ", d.vocab, "]");
        for (std::size_t r = 0; r < n; ++r) {
            llm::check(seqs[r] < S, "decoder::step: sequence ", seqs[r], " (row ", r, ") of a state of ", S, " sequences");
            for (std::size_t q = 0; q < r; ++q) {
                llm::check(seqs[q] != seqs[r], "decoder::step: sequence ", seqs[r], " in rows ", q, " and ", r, " (one token each)");
            }
        }
        if constexpr (recurrent) {
            step_rows(logits, st, ids, st.position, [seqs](std::size_t r) { return seqs[r]; }, p, ws, exec);
            for (std::size_t r = 0; r < n; ++r) {
                ++st.lengths[seqs[r]];
            }
            ++st.position;
        } else {
            step_kv(logits, st, seqs, ids, p, ws, exec);
        }
    }

private:
    static std::size_t st_sequences(const state& st) {
        if constexpr (recurrent) {
            return st.sequences();
        } else {
            return st.kv.sequences();
        }
    }

    // A paged cache must have the blocks that `tokens` new tokens of each sequence of seqs (all
    // `count` sequences when seqs is empty) take before any layer appends: a full pool is then
    // llm::error with the state unchanged.
    static void check_blocks(const char* fn, const kv_state& st, std::span<const std::size_t> seqs, std::size_t count, std::size_t tokens) {
        const auto* pc = st.kv.paged();
        if (pc == nullptr) {
            return;
        }
        const std::size_t bs = pc->block_size();
        std::size_t need = 0;
        const std::size_t rows = seqs.empty() ? count : seqs.size();
        for (std::size_t r = 0; r < rows; ++r) {
            const std::size_t s = seqs.empty() ? r : seqs[r];
            const std::size_t want = (pc->length(s) + tokens + bs - 1) / bs, have = pc->block_table(s).size();
            need += want > have ? want - have : 0;
        }
        llm::check(need <= pc->free_blocks(), fn, ": the new tokens need ", need, " more blocks of ", bs, " tokens but only ",
                   pc->free_blocks(), " of the paged KV cache's ", pc->blocks(), " blocks are free");
    }

    // The KV step of row r = sequence seqs[r] (r when seqs is empty: every sequence).
    template <class T>
    void step_kv(activations logits, kv_state& st, std::span<const std::size_t> seqs, token_ids ids, const params<T>& p, workspace& ws,
                 parallel::policy auto&& exec) const {
        const dims d = config();
        const std::size_t n = ids.extent(0);
        llm::check(!seqs.empty() || n == st.kv.sequences(), "decoder::step: ", n, " tokens for a cache of ", st.kv.sequences(),
                   " sequences (one each)");
        check_blocks("decoder::step", st, seqs, n, 1);
        workspace::frame frame(ws);
        auto h = detail::scratch(ws, n, d.d_model);
        auto h2 = detail::scratch(ws, n, d.d_model);
        typename emb_t::state es{st.position};
        emb_.step(h, es, ids, p.embedding, ws, exec);
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            for_kind(i, [&](auto k) {
                constexpr std::size_t K = decltype(k)::value;
                typename layer_t<K>::state ls{{st.kv.layer(i), seqs}};
                std::get<K>(layers_)[i / period].step(h2, ls, h, std::get<K>(p.layers)[i / period], ws, exec);
            });
            std::swap(h, h2);
        }
        final_rows(logits, h, h2, p, ws, exec);
        for (std::size_t r = 0; r < n; ++r) {
            st.kv.advance(seqs.empty() ? r : seqs[r], 1);
        }
        ++st.position;
    }

public:
    /// T new tokens of one sequence at once (chunked prefill, speculative verification): ids [T]
    /// are the next tokens of sequence `seq` of the state's cache, at positions
    /// kv.length(seq) + t (RoPE, and learned positions: GPT-2). Every linear layer runs as a GEMM
    /// over the T rows; each token attends over the cached prefix and the new tokens up to
    /// itself (attention_mixer::step_tokens); the T keys and values of every layer are committed
    /// (kv.advance(seq, T)); other sequences of the cache are untouched. logits: [T, vocab] (every
    /// token's next-token logits), [1, vocab] (the last token's only) or [0, vocab] (none: a
    /// prefill chunk whose logits are not needed skips the final norm and the head). Afterwards
    /// st.position is kv.length(seq). The same logits as T calls of step up to summation order.
    /// A recurrent stack (decoder::recurrent) runs the T tokens through each layer's step in
    /// order (its state carries one sequence), the final norm and head on the rows asked for:
    /// the same arithmetic as T calls of step.
    /// Example: `model.step_tokens(logits.view(), st, 0, llm::model::token_ids(ids.data(), ids.size()), params, ws, pool);`
    template <class T>
    void step_tokens(activations logits, state& st, std::size_t seq, token_ids ids, const params<T>& p, workspace& ws,
                     parallel::policy auto&& exec) const {
        const std::size_t n = ids.extent(0);
        llm::check(n > 0, "decoder::step_tokens: no tokens");
        llm::check(logits.extent(0) == 0 || logits.extent(0) == 1 || logits.extent(0) == n, "decoder::step_tokens: logits has ",
                   logits.extent(0), " rows for ", n, " tokens (0, 1 or ", n, ")");
        if constexpr (recurrent) {
            llm::check(seq < st.sequences(), "decoder::step_tokens: sequence ", seq, " of a state of ", st.sequences(), " sequences");
            step_rows(logits, st, ids, st.lengths[seq], [seq](std::size_t) { return seq; }, p, ws, exec);
            st.lengths[seq] += n;
            st.position = st.lengths[seq];
        } else {
            step_tokens_kv(logits, st, seq, ids, p, ws, exec);
        }
    }

private:
    template <class T>
    void step_tokens_kv(activations logits, kv_state& st, std::size_t seq, token_ids ids, const params<T>& p, workspace& ws,
                        parallel::policy auto&& exec) const {
        const dims d = config();
        const std::size_t n = ids.extent(0);
        llm::check(seq < st.kv.sequences(), "decoder::step_tokens: sequence ", seq, " of a cache of ", st.kv.sequences(), " sequences");
        const std::size_t start = st.kv.length(seq);
        check_blocks("decoder::step_tokens", st, std::span<const std::size_t>(&seq, 1), 0, n);
        workspace::frame frame(ws);
        auto h = detail::scratch(ws, n, d.d_model);
        auto h2 = detail::scratch(ws, n, d.d_model);
        for (std::size_t t = 0; t < n; ++t) {
            typename emb_t::state es{start + t};
            emb_.step(activations(h.data() + t * d.d_model, llm::dims<2>(1, d.d_model)), es,
                      token_ids(ids.data() + t * ids.stride(0), llm::dims<1>(1)), p.embedding, ws, exec);
        }
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            for_kind(i, [&](auto k) {
                constexpr std::size_t K = decltype(k)::value;
                typename layer_t<K>::state ls{{st.kv.layer(i), {}}};
                std::get<K>(layers_)[i / period].step_tokens(h2, ls, seq, h, std::get<K>(p.layers)[i / period], ws, exec);
            });
            std::swap(h, h2);
        }
        final_rows(logits, h, h2, p, ws, exec);
        st.kv.advance(seq, n);
        st.position = start + n;
    }

public:

    /// GPT-2 / llm.c initialisation, seeded: weights normal(0, std) (residual output
    /// projections std / sqrt(2 n_layers)), biases 0, norm weights 1 (norm biases 0).
    /// Deterministic across platforms: std::mt19937_64 and a Box-Muller transform written here.
    template <class T>
    void init(params<T>& p, const init_options& o = {}) const {
        const dims d = config();
        std::mt19937_64 rng(o.seed);
        const double residual_std = o.std / std::sqrt(2.0 * static_cast<double>(d.n_layers));
        p.for_each_param([&](std::string_view name, auto& t) {
            const bool bias = name.ends_with(".bias");
            const bool norm = name.find("norm") != std::string_view::npos || name.find("ln_") != std::string_view::npos;
            const bool residual = name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight") || name.ends_with("c_proj.weight");
            auto* data = t.data();
            const std::size_t size = t.size();
            if (norm && !bias) {
                for (std::size_t i = 0; i < size; ++i) {
                    data[i] = static_cast<T>(1.0f);
                }
            } else if (bias) {
                for (std::size_t i = 0; i < size; ++i) {
                    data[i] = static_cast<T>(0.0f);
                }
            } else {
                const double sd = residual ? residual_std : o.std;
                for (std::size_t i = 0; i < size; ++i) {
                    data[i] = static_cast<T>(static_cast<float>(sd * normal(rng)));
                }
            }
        });
    }

private:
    static Dims validated(const Dims& d) {
        d.get().validate("decoder");
        return d;
    }
    static typename kinds::objects make_layers(const dims& d) {
        typename kinds::objects out;
        for (std::size_t i = 0; i < d.n_layers; ++i) {
            for_kind(i, [&](auto k) { std::get<decltype(k)::value>(out).emplace_back(widths::for_layer(d, i)); });
        }
        return out;
    }

    static double normal(std::mt19937_64& rng) {
        // Box-Muller on two 53-bit uniforms in (0, 1]: the same numbers on every platform.
        const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;
        const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
    }

    // Tensors in a walk (for_each_param) of block or model parameters.
    template <class P>
    static std::size_t tensor_count(P& p) {
        std::size_t k = 0;
        p.for_each_param([&](std::string_view, auto&) { ++k; });
        return k;
    }

    template <class P>
    auto head_weight(P& p) const {
        if constexpr (is_any_matrix<decltype(p.head)>) {
            return p.head;  // quantized params: the loader sets the head (the embedding's matrix when tied)
        } else {
            return config().tie_embeddings ? llm::slice(p.embedding.weight, 0, 0, p.embedding.weight.extent(0))
                                           : llm::slice(p.head, 0, 0, p.head.extent(0));
        }
    }

    Dims dims_;
    emb_t emb_;
    typename kinds::objects layers_;
    norm_t norm_;
};

}  // namespace llm::model
