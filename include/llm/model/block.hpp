// SPDX-License-Identifier: Apache-2.0
// The block contract (llm::model::block_like): what every layer type that sits in a model provides.
#pragma once

#include <llm/core/detected.hpp>
#include <llm/core/workspace.hpp>
#include <llm/model/arena.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace llm::model {

/// Activations between blocks: fp32, [tokens, width] (a batch of sequences is batch * seq
/// tokens, docs/conventions.md section 4), what a block's forward writes and backward's d_input is.
/// Example: `llm::model::activations h(buf.data(), tokens, d_model);`
using activations = tensor_view<float, llm::dims<2>>;

/// Read-only activations: what a block's forward reads and backward's upstream gradient is.
/// Example: `llm::model::const_activations x = h;`
using const_activations = tensor_view<const float, llm::dims<2>>;

/// Token ids [tokens]: the input of a block that starts a model (the token embedding).
/// Example: `llm::model::token_ids ids(tokens.data(), n);`
using token_ids = tensor_view<const std::int32_t, llm::dims<1>>;

/// The shape of a batch: `batch` sequences of `seq` tokens each, laid out sequence after
/// sequence, so activations are [batch * seq, width] and token t is position t % seq of
/// sequence t / seq. A block's cache is made for one shape (`make_cache(arena&, shape)`), and
/// forward and backward read the shape from it (attention needs the sequences, a scan too).
/// Example: `llm::model::batch_shape s{.batch = 4, .seq = 64};  // s.tokens() == 256`
struct batch_shape {
    std::size_t batch = 1;  ///< Number of sequences.
    std::size_t seq = 1;    ///< Tokens per sequence.
    /// batch * seq: the rows of the activations.
    [[nodiscard]] constexpr std::size_t tokens() const noexcept { return batch * seq; }
};

/// The d_input of a block whose input has no gradient (token ids): backward takes it and
/// writes nothing there.
/// Example: `emb.backward(llm::model::no_grad{}, grads, dy, cache, ids, params, ws, exec);`
struct no_grad {};

namespace detail {

// A visitor that accepts every (name, tensor...) call: what param_struct checks walk with.
struct visitor_archetype {
    template <class... Ts>
    void operator()(std::string_view, Ts&...) const {}
};

template <class B>
using input_type_of = typename B::input_type;

}  // namespace detail

/// A block's parameters: a plain struct of tensors (llm::tensor members) that lists its
/// members once, in a static `walk(f, ps...)` calling `f(name, ps.member...)` for each member
/// (the same member of every struct passed, as gemma.cpp's ForEachTensor), and
/// `for_each_param(f)` visiting (name, tensor) pairs through it (const and non-const). Names
/// follow Hugging Face (`q_proj.weight`, `input_layernorm.weight`), relative to the block:
/// the model prefixes them (`model.layers.3.self_attn.`). The optimiser, checkpoint IO,
/// initialisation and gradient clipping all walk parameters through this one list, and
/// llm::model::for_each_tensor zips parameters, gradients and optimiser state.
/// Example:
/// ```
/// template <class T> struct params {
///     llm::tensor<T, llm::dims<1>> weight;
///     template <class F, class... P> static void walk(F&& f, P&... p) { f("weight", p.weight...); }
///     template <class F> void for_each_param(F&& f) { walk(f, *this); }
///     template <class F> void for_each_param(F&& f) const { walk(f, *this); }
/// };
/// ```
/// (llm::model::param_list writes the two for_each_param members from walk.)
template <class P>
concept param_struct = std::default_initializable<P> && std::movable<P> &&
                       requires(P& p, const P& cp, detail::visitor_archetype f) {
                           P::walk(f, p);
                           P::walk(f, p, p, p);
                           p.for_each_param(f);
                           cp.for_each_param(f);
                       };

/// A parameter struct made from a plain struct of tensors `Fields` that lists its members in a
/// static `walk(f, ps...)`: adds `for_each_param(f)` (const and non-const), visiting (name,
/// tensor) pairs through that walk, so each block writes its member list once. Brace
/// initialisation stays as for Fields (`return {weight, bias};`), and `P::walk` is Fields'.
/// Example:
/// ```
/// template <class T> struct fields {
///     llm::tensor<T, llm::dims<1>> weight;
///     template <class F, class... P> static void walk(F&& f, P&... p) { f("weight", p.weight...); }
/// };
/// template <class T> using params = llm::model::param_list<fields<T>>;
/// ```
template <class Fields>
struct param_list : Fields {
    /// Visits (name, tensor) pairs.
    template <class F>
    void for_each_param(F&& f) {
        Fields::walk(f, *this);
    }
    /// Visits (name, tensor) pairs, read-only.
    template <class F>
    void for_each_param(F&& f) const {
        Fields::walk(f, *this);
    }
};

/// The zipped walk: calls `f(name, a.member, b.member, ...)` for every member of the
/// parameter structs `a, b, ...` together (parameters, gradients, optimiser moments), in the
/// order of the first struct's walk. The structs are instances of one `params<T>` template
/// (element types may differ: bf16 weights with fp32 gradients).
/// Example: `llm::model::for_each_tensor([&](std::string_view, auto& w, auto& g, auto& m) { ... }, p, g, m);`
template <class F, class First, class... Rest>
    requires param_struct<std::remove_const_t<First>>
void for_each_tensor(F&& f, First& first, Rest&... rest) {
    std::remove_const_t<First>::walk(f, first, rest...);
}

/// The input a block's forward reads: `B::input_type` when the block declares one (the token
/// embedding reads llm::model::token_ids), llm::model::const_activations otherwise.
/// Example: `static_assert(std::same_as<llm::model::block_input_t<my_norm>, llm::model::const_activations>);`
template <class B>
using block_input_t = detected_or_t<const_activations, detail::input_type_of, B>;

/// What a block's backward writes the input gradient into: llm::model::activations, or
/// llm::model::no_grad when the input has no gradient (not const_activations).
/// Example: `static_assert(std::same_as<llm::model::block_d_input_t<my_norm>, llm::model::activations>);`
template <class B>
using block_d_input_t = std::conditional_t<std::same_as<block_input_t<B>, const_activations>, activations, no_grad>;

/// The block contract: every layer type that can sit in a model (embedding, norm, attention
/// mixer, Mamba mixer, dense FFN, MoE FFN, LM head) is a type B whose objects hold its
/// configuration (dims, options; static or read at run time) and which provides:
///   - `template <class T> struct params`: a llm::model::param_struct of T (fp32 or bf16)
///     tensors, Hugging Face names; `b.make_params<T>()` returns one with every tensor
///     allocated (zero-filled) at its shape. Gradients are `params<float>`.
///   - `struct cache`: what backward needs from forward (views, e.g. a norm's rstd), taken
///     from the model's one llm::model::arena by `b.make_cache(arena&, shape)` for a
///     llm::model::batch_shape (called on a counting arena first, then on the memory: take the
///     same sizes both times). A block that needs the shape in forward keeps it in its cache.
///   - `b.forward(y, cache&, x, params, ws, exec)`: y [tokens, width_out] (activations), x
///     [tokens, width_in] (`block_input_t<B>`), writes y and the cache.
///   - `b.backward(dx, grads&, dy, const cache&, x, params, ws, exec)`: ACCUMULATES into dx
///     (`block_d_input_t<B>`) and into every gradient in grads (docs/conventions.md rule 2:
///     llm::zero_grad / llm::model::zero_grad clears them); dy [tokens, width_out].
///   - The argument order of every kernel: outputs, saved state, inputs, parameters,
///     [options in the block object,] the caller's llm::workspace, the executor last (any
///     llm::parallel::policy: write `parallel::policy auto&& exec`; the concept checks
///     llm::parallel::sequential).
/// Residual additions belong to the model (the decoder adds a block's output to its stream);
/// a block maps its input to its own output. Optional: `step` for decoding (steppable_block).
/// T: the parameter element type checked (float by default).
/// Example (a complete block: y = x * scale, one learned scale per feature):
/// ```
/// struct scale_block {
///     std::size_t width;
///     template <class T> struct params {
///         llm::tensor<T, llm::dims<1>> weight;
///         template <class F, class... P> static void walk(F&& f, P&... p) { f("weight", p.weight...); }
///         template <class F> void for_each_param(F&& f) { walk(f, *this); }
///         template <class F> void for_each_param(F&& f) const { walk(f, *this); }
///     };
///     struct cache {};
///     template <class T> params<T> make_params() const { return {llm::tensor<T, llm::dims<1>>(width)}; }
///     cache make_cache(llm::model::arena&, llm::model::batch_shape) const { return {}; }
///     template <class T> void forward(llm::model::activations y, cache&, llm::model::const_activations x,
///                                     const params<T>& p, llm::workspace&, llm::parallel::policy auto&&) const {
///         for (std::size_t t = 0; t < x.extent(0); ++t)
///             for (std::size_t i = 0; i < width; ++i) y(t, i) = x(t, i) * float(p.weight(i));
///     }
///     template <class T> void backward(llm::model::activations dx, params<float>& g, llm::model::const_activations dy,
///                                      const cache&, llm::model::const_activations x, const params<T>& p,
///                                      llm::workspace&, llm::parallel::policy auto&&) const {
///         for (std::size_t t = 0; t < x.extent(0); ++t)
///             for (std::size_t i = 0; i < width; ++i) {
///                 dx(t, i) += dy(t, i) * float(p.weight(i));
///                 g.weight(i) += dy(t, i) * x(t, i);
///             }
///     }
/// };
/// static_assert(llm::model::block_like<scale_block>);
/// ```
template <class B, class T = float>
concept block_like =
    std::copy_constructible<B> &&
    requires {
        typename B::template params<T>;
        typename B::template params<float>;
        typename B::cache;
    } && param_struct<typename B::template params<T>> && param_struct<typename B::template params<float>> &&
    requires(const B& b, arena& a, batch_shape shape, const typename B::template params<T>& p,
             typename B::template params<float>& g, typename B::cache& c, const typename B::cache& cc, activations y,
             block_input_t<B> x, block_d_input_t<B> dx, const_activations dy, workspace& ws, parallel::sequential& exec) {
        { b.template make_params<T>() } -> std::same_as<typename B::template params<T>>;
        { b.make_cache(a, shape) } -> std::same_as<typename B::cache>;
        b.forward(y, c, x, p, ws, exec);
        b.backward(dx, g, dy, cc, x, p, ws, exec);
    };

/// A block that also decodes incrementally: `typename B::state` (what the block keeps between
/// tokens: a KV cache layer and the sequence for attention, the recurrent state for an SSM)
/// and `b.step(y, state&, x, params, ws, exec)`, y and x [1, width] (one token of the state's
/// sequence); a step with a warmed workspace allocates nothing. How a state is made is the
/// block's own (the model makes them).
/// Example: `static_assert(llm::model::steppable_block<llm::model::attention_mixer<>>);`
template <class B, class T = float>
concept steppable_block =
    block_like<B, T> && requires { typename B::state; } &&
    requires(const B& b, typename B::state& s, const typename B::template params<T>& p, activations y,
             block_input_t<B> x, workspace& ws, parallel::sequential& exec) { b.step(y, s, x, p, ws, exec); };

/// A block's cache in an arena of its own: sizes it with a counting pass, allocates once and
/// makes it on the memory (llm::model::make_in_arena). A model with several blocks makes all
/// caches in one arena instead (the same two passes over every block).
/// Example: `llm::model::arena a; auto c = llm::model::make_cache(blk, a, {.batch = 2, .seq = 16});`
template <block_like B>
typename B::cache make_cache(const B& block, arena& a, batch_shape shape) {
    return make_in_arena(a, [&](arena& m) { return block.make_cache(m, shape); });
}

/// Parameters of a block for element type T: `typename B::template params<T>`.
/// Example: `llm::model::params_t<my_block> grads = blk.make_params<float>();`
template <class B, class T = float>
using params_t = typename B::template params<T>;

/// Sets every tensor of a parameter struct (gradients, usually) to zero.
/// Example: `llm::model::zero_grad(grads);`
template <param_struct P>
void zero_grad(P& p) {
    p.for_each_param([](std::string_view, auto& t) { llm::zero_grad(t); });
}

/// Number of scalars in a parameter struct (the sum of its tensors' sizes).
/// Example: `std::size_t n = llm::model::count_params(p);`
template <param_struct P>
std::size_t count_params(const P& p) {
    std::size_t n = 0;
    p.for_each_param([&](std::string_view, const auto& t) { n += t.size(); });
    return n;
}

/// A visitor that calls `f(prefix + name, tensors...)`: how a model names the members of its
/// blocks (`prefixed("model.layers.3.mlp.", f)` turns `gate_proj.weight` into the Hugging Face
/// name). The name passed to f lives until f returns.
/// Example: `Block::template params<float>::walk(llm::model::prefixed("lm_head.", f), p);`
template <class F>
auto prefixed(std::string prefix, F& f) {
    return [prefix = std::move(prefix), &f](std::string_view name, auto&... ts) {
        std::string full = prefix;
        full += name;
        f(std::string_view(full), ts...);
    };
}

}  // namespace llm::model
