// SPDX-License-Identifier: Apache-2.0
// The attention mixer block: projections, optional QK-norm, RoPE, flash attention, output projection; KV-cache step.
#pragma once

#include <llm/attention/attention.hpp>
#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/detail/ops.hpp>
#include <llm/model/weights.hpp>
#include <llm/nn/rmsnorm.hpp>
#include <llm/nn/rope.hpp>
#include <llm/tensor/tensor.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

namespace llm::model {

/// Projection layout of Llama, Mistral, Qwen2 (Hugging Face `LlamaAttention`): separate
/// `q_proj`, `k_proj`, `v_proj`, `o_proj` (nn.Linear, [out, in]), q/k/v biases when
/// dims.qkv_bias, `q_norm` / `k_norm` when dims.qk_norm, RoPE on q and k.
/// Example: `llm::model::attention_mixer<llm::model::separate_qkv> a(d);`
struct separate_qkv {
    static constexpr bool fused = false;  ///< separate q/k/v tensors
    static constexpr bool rope = true;    ///< rotary positions
};

/// Projection layout of GPT-2 (`GPT2Attention`): one `c_attn` Conv1D ([in, out] = [d_model,
/// 3 d_model], with bias) whose output columns are q, k, v, and `c_proj` (Conv1D with bias);
/// no RoPE (GPT-2 has learned positions in its embedding).
/// Example: `llm::model::attention_mixer<llm::model::gpt2_qkv> a(d);`
struct gpt2_qkv {
    static constexpr bool fused = true;  ///< one fused, transposed q/k/v tensor
    static constexpr bool rope = false;  ///< no rotary positions
};

/// Causal self-attention as a block: q, k, v projections (optional biases), optional QK-norm
/// (RMSNorm per head), RoPE (any llm::nn::rope_style, dims.rope's theta and scaling:
/// none, linear, llama3), grouped-query attention (n_kv_heads), optional sliding window (each
/// token sees the last dims.sliding_window tokens, itself included: Hugging Face Mistral's
/// eager mask) and logit soft-cap, through llm::attention::flash_forward / flash_backward;
/// output projection. step() decodes one token per sequence through a KV cache layer and
/// llm::attention::decode_attention; step_tokens() takes T new tokens of one sequence at once.
/// Cache (per layer, in the model's arena): q, k, v after RoPE, the attention output and its
/// log-sum-exp, positions, and with QK-norm the pre-norm q, k and their rstd.
/// Layout: separate_qkv (Llama family) or gpt2_qkv. Style: the RoPE pair layout.
/// Example: `llm::model::attention_mixer<> attn(d); attn.forward(y, cache, x, params, ws, pool);`
template <class Layout = separate_qkv, nn::rope_style Style = nn::rope_rotate_half>
struct attention_mixer {
    std::size_t width = 0;     ///< d_model
    std::size_t heads = 0;     ///< query heads
    std::size_t kv_heads = 0;  ///< key/value heads
    std::size_t head_dim = 0;  ///< per-head width
    bool qkv_bias = false;     ///< q/k/v biases
    bool qk_norm = false;      ///< per-head RMSNorm on q and k
    std::size_t window = 0;    ///< sliding window (0: full causal)
    float softcap = 0.0f;      ///< attention logit soft-cap (0: off)
    float eps = 1e-5f;         ///< QK-norm epsilon
    rope_config rope{};        ///< RoPE theta and scaling
    nn::rope_table rope_tab{};  ///< RoPE frequencies and pairs of rope and Style, made once (forward and step allocate none)

    /// From a model's dims.
    explicit attention_mixer(const dims& d)
        : width(d.d_model), heads(d.n_heads), kv_heads(d.kv_heads()), head_dim(d.head_width()), qkv_bias(d.qkv_bias || Layout::fused),
          qk_norm(d.qk_norm), window(d.sliding_window), softcap(d.attn_softcap), eps(d.norm_eps), rope(d.rope) {
        if constexpr (Layout::rope) {
            rope_tab = nn::make_rope_table<Style>(head_dim, rope_params());
        }
        llm::check(heads % kv_heads == 0, "attention_mixer: ", heads, " heads are not a multiple of ", kv_heads, " kv heads");
        llm::check(!(Layout::fused && qk_norm), "attention_mixer: qk_norm is not supported with the fused GPT-2 layout");
    }
    /// Parameters for dims d.
    static constexpr std::size_t param_count(const dims& d) noexcept {
        const std::size_t qd = d.n_heads * d.head_width();
        const std::size_t kd = d.kv_heads() * d.head_width();
        if constexpr (Layout::fused) {
            return d.d_model * (qd + 2 * kd) + (qd + 2 * kd) + qd * d.d_model + d.d_model;
        } else {
            return d.d_model * (qd + 2 * kd) + qd * d.d_model + (d.qkv_bias ? qd + 2 * kd : 0) + (d.qk_norm ? 2 * d.head_width() : 0);
        }
    }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        matrix_t<T> w_q;     ///< q_proj.weight [heads * head_dim, d_model]
        tensor<scalar_t<T>, llm::dims<1>> b_q;     ///< q_proj.bias (qkv_bias)
        matrix_t<T> w_k;     ///< k_proj.weight [kv_heads * head_dim, d_model]
        tensor<scalar_t<T>, llm::dims<1>> b_k;     ///< k_proj.bias (qkv_bias)
        matrix_t<T> w_v;     ///< v_proj.weight [kv_heads * head_dim, d_model]
        tensor<scalar_t<T>, llm::dims<1>> b_v;     ///< v_proj.bias (qkv_bias)
        matrix_t<T> w_o;     ///< o_proj.weight [d_model, heads * head_dim] (c_proj.weight [in, out] for GPT-2)
        tensor<scalar_t<T>, llm::dims<1>> b_o;     ///< c_proj.bias (GPT-2)
        tensor<scalar_t<T>, llm::dims<1>> q_norm;  ///< q_norm.weight [head_dim] (qk_norm)
        tensor<scalar_t<T>, llm::dims<1>> k_norm;  ///< k_norm.weight [head_dim] (qk_norm)
        matrix_t<T> w_qkv;   ///< c_attn.weight [d_model, (heads + 2 kv_heads) head_dim] (GPT-2)
        tensor<scalar_t<T>, llm::dims<1>> b_qkv;   ///< c_attn.bias (GPT-2)
        /// Visits the tensors this layout uses under their Hugging Face names.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            if constexpr (Layout::fused) {
                f("c_attn.weight", p.w_qkv...);
                f("c_attn.bias", p.b_qkv...);
                f("c_proj.weight", p.w_o...);
                f("c_proj.bias", p.b_o...);
            } else {
                f("q_proj.weight", p.w_q...);
                if (detail::present(p.b_q...)) {
                    f("q_proj.bias", p.b_q...);
                }
                f("k_proj.weight", p.w_k...);
                if (detail::present(p.b_k...)) {
                    f("k_proj.bias", p.b_k...);
                }
                f("v_proj.weight", p.w_v...);
                if (detail::present(p.b_v...)) {
                    f("v_proj.bias", p.b_v...);
                }
                f("o_proj.weight", p.w_o...);
                if (detail::present(p.q_norm...)) {
                    f("q_norm.weight", p.q_norm...);
                    f("k_norm.weight", p.k_norm...);
                }
            }
        }
    };
    /// Parameters (Hugging Face names; absent tensors have size 0 and are not visited).
    template <class T>
    using params = param_list<fields<T>>;

    /// What backward reads (views into the model's arena).
    struct cache {
        batch_shape shape;                            ///< batch this cache was made for
        activations q;                                ///< [tokens, heads * head_dim], after QK-norm and RoPE
        activations k;                                ///< [tokens, kv_heads * head_dim], after QK-norm and RoPE
        activations v;                                ///< [tokens, kv_heads * head_dim]
        activations o;                                ///< attention output [tokens, heads * head_dim]
        tensor_view<float, llm::dims<3>> lse;         ///< [batch, heads, seq]
        tensor_view<std::int32_t, llm::dims<1>> pos;  ///< position of each token
        activations q_raw;                            ///< pre-norm q (qk_norm)
        activations k_raw;                            ///< pre-norm k (qk_norm)
        tensor_view<float, llm::dims<1>> rstd_q;      ///< [tokens * heads] (qk_norm)
        tensor_view<float, llm::dims<1>> rstd_k;      ///< [tokens * kv_heads] (qk_norm)
    };

    /// Zero-filled parameters at their shapes.
    template <class T>
    params<T> make_params() const {
        params<T> p;
        const std::size_t qd = heads * head_dim;
        const std::size_t kd = kv_heads * head_dim;
        using t1 = tensor<scalar_t<T>, llm::dims<1>>;
        using t2 = matrix_t<T>;
        if constexpr (Layout::fused) {
            p.w_qkv = t2(width, qd + 2 * kd);
            p.b_qkv = t1(qd + 2 * kd);
            p.w_o = t2(qd, width);
            p.b_o = t1(width);
        } else {
            p.w_q = t2(qd, width);
            p.w_k = t2(kd, width);
            p.w_v = t2(kd, width);
            p.w_o = t2(width, qd);
            if (qkv_bias) {
                p.b_q = t1(qd);
                p.b_k = t1(kd);
                p.b_v = t1(kd);
            }
            if (qk_norm) {
                p.q_norm = t1(head_dim);
                p.k_norm = t1(head_dim);
            }
        }
        return p;
    }

    /// The cache for a batch (see cache).
    cache make_cache(arena& a, batch_shape s) const {
        const std::size_t n = s.tokens();
        cache c;
        c.shape = s;
        c.q = a.take<float>(n, heads * head_dim);
        c.k = a.take<float>(n, kv_heads * head_dim);
        c.v = a.take<float>(n, kv_heads * head_dim);
        c.o = a.take<float>(n, heads * head_dim);
        c.lse = a.take<float>(s.batch, heads, s.seq);
        c.pos = a.take<std::int32_t>(n);
        if (qk_norm) {
            c.q_raw = a.take<float>(n, heads * head_dim);
            c.k_raw = a.take<float>(n, kv_heads * head_dim);
            c.rstd_q = a.take<float>(n * heads);
            c.rstd_k = a.take<float>(n * kv_heads);
        }
        return c;
    }

    /// y [tokens, d_model] = attention(x) for the batch of the cache; fills the cache.
    template <class T>
    void forward(activations y, cache& c, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        const std::size_t n = c.shape.tokens();
        llm::check(x.extent(0) == n && y.extent(0) == n, "attention_mixer::forward: x has ", x.extent(0), " rows, y ", y.extent(0),
                   ", the cache was made for ", n, " tokens");
        for (std::size_t t = 0; t < n; ++t) {
            c.pos(t) = static_cast<std::int32_t>(t % c.shape.seq);
        }
        project(qk_norm ? c.q_raw : c.q, qk_norm ? c.k_raw : c.k, c.v, x, p, ws, exec);
        if (qk_norm) {
            nn::rmsnorm_forward(heads_rows(c.q, heads), c.rstd_q, heads_rows(c.q_raw, heads), p.q_norm, eps, exec);
            nn::rmsnorm_forward(heads_rows(c.k, kv_heads), c.rstd_k, heads_rows(c.k_raw, kv_heads), p.k_norm, eps, exec);
        }
        if constexpr (Layout::rope) {
            auto q3 = llm::reshape(c.q, n, heads, head_dim);
            auto k3 = llm::reshape(c.k, n, kv_heads, head_dim);
            nn::rope_forward(q3, q3, c.pos, rope_tab, exec);
            nn::rope_forward(k3, k3, c.pos, rope_tab, exec);
        }
        const auto b = c.shape.batch;
        const auto s = c.shape.seq;
        with_mask([&](const auto& mask) {
            attention::flash_forward(llm::reshape(c.o, b, s, heads, head_dim), c.lse, llm::reshape(c.q, b, s, heads, head_dim),
                                     llm::reshape(c.k, b, s, kv_heads, head_dim), llm::reshape(c.v, b, s, kv_heads, head_dim), mask,
                                     attn_options(), ws, exec);
        });
        detail::linear(y, c.o, wo(p), bo(p), ws, exec);
    }

    /// dx and every gradient in g += ... (accumulates); dy [tokens, d_model].
    template <class T>
    void backward(activations dx, params<float>& g, const_activations dy, const cache& c, const_activations x, const params<T>& p,
                  workspace& ws, parallel::policy auto&& exec) const {
        const std::size_t n = c.shape.tokens();
        const auto b = c.shape.batch;
        const auto s = c.shape.seq;
        const std::size_t qd = heads * head_dim;
        const std::size_t kd = kv_heads * head_dim;
        workspace::frame frame(ws);
        auto d_o = detail::zeroed(ws, n, qd);
        detail::linear_grad(d_o, wo(g), bo(g), dy, c.o, wo(p), ws, exec);
        auto dq = detail::zeroed(ws, n, qd);
        auto dk = detail::zeroed(ws, n, kd);
        auto dv = detail::zeroed(ws, n, kd);
        with_mask([&](const auto& mask) {
            attention::flash_backward(llm::reshape(dq, b, s, heads, head_dim), llm::reshape(dk, b, s, kv_heads, head_dim),
                                      llm::reshape(dv, b, s, kv_heads, head_dim), llm::reshape(c.o, b, s, heads, head_dim), c.lse,
                                      llm::reshape(d_o, b, s, heads, head_dim), llm::reshape(c.q, b, s, heads, head_dim),
                                      llm::reshape(c.k, b, s, kv_heads, head_dim), llm::reshape(c.v, b, s, kv_heads, head_dim), mask,
                                      attn_options(), ws, exec);
        });
        if constexpr (Layout::rope) {
            auto dq0 = detail::zeroed(ws, n, qd);
            auto dk0 = detail::zeroed(ws, n, kd);
            nn::rope_backward<Style>(llm::reshape(dq0, n, heads, head_dim), llm::reshape(dq, n, heads, head_dim), c.pos, rope_params(),
                                     exec);
            nn::rope_backward<Style>(llm::reshape(dk0, n, kv_heads, head_dim), llm::reshape(dk, n, kv_heads, head_dim), c.pos,
                                     rope_params(), exec);
            dq = dq0;
            dk = dk0;
        }
        if (qk_norm) {
            auto dq0 = detail::zeroed(ws, n, qd);
            auto dk0 = detail::zeroed(ws, n, kd);
            nn::rmsnorm_backward(heads_rows(dq0, heads), g.q_norm, c.rstd_q, heads_rows(dq, heads), heads_rows(c.q_raw, heads), p.q_norm,
                                 exec);
            nn::rmsnorm_backward(heads_rows(dk0, kv_heads), g.k_norm, c.rstd_k, heads_rows(dk, kv_heads), heads_rows(c.k_raw, kv_heads),
                                 p.k_norm, exec);
            dq = dq0;
            dk = dk0;
        }
        detail::linear_grad(dx, wq(g), bq(g), dq, x, wq(p), ws, exec);
        detail::linear_grad(dx, wk(g), bk(g), dk, x, wk(p), ws, exec);
        detail::linear_grad(dx, wv(g), bv(g), dv, x, wv(p), ws, exec);
    }

    /// The decode state: one layer of the model's KV cache (contiguous or paged:
    /// attention::any_kv_cache) and the sequences that step (empty: all of the cache's, in order;
    /// otherwise row r of a step is sequence seqs[r]: continuous batching steps the running ones).
    struct state {
        attention::any_kv_cache<float>::layer_type layer;  ///< `cache.layer(l)`
        std::span<const std::size_t> seqs;                 ///< the stepping sequences (distinct; empty: all)
    };

    /// One new token per stepping sequence: x, y [n, d_model]; row r is the next token of
    /// sequence st.seqs[r] (r when st.seqs is empty: then n is the cache's sequence count) at
    /// position layer.length of it. Appends its k and v to the layer (the model commits with
    /// cache.advance after every layer) and attends over the cache.
    template <class T>
    void step(activations y, state& st, const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        const std::size_t n = x.extent(0);
        const bool subset = !st.seqs.empty();
        llm::check(n == (subset ? st.seqs.size() : st.layer.sequences()), "attention_mixer::step: x has ", n, " rows but ",
                   subset ? st.seqs.size() : st.layer.sequences(), subset ? " sequences step" : " sequences are in the cache",
                   " (one new token per sequence)");
        const auto seq_of = [&](std::size_t r) { return subset ? st.seqs[r] : r; };
        workspace::frame frame(ws);
        const std::size_t qd = heads * head_dim;
        const std::size_t kd = kv_heads * head_dim;
        auto q = detail::scratch(ws, n, qd);
        auto k = detail::scratch(ws, n, kd);
        auto v = detail::scratch(ws, n, kd);
        auto o = detail::scratch(ws, n, qd);
        tensor_view<std::int32_t, llm::dims<1>> pos(ws.take<std::int32_t>(n), llm::dims<1>(n));
        for (std::size_t r = 0; r < n; ++r) {
            pos(r) = static_cast<std::int32_t>(st.layer.length(seq_of(r)));
        }
        project_rotate(q, k, v, x, pos, p, ws, exec);
        auto q3 = llm::reshape(q, n, heads, head_dim);
        auto k3 = llm::reshape(k, n, kv_heads, head_dim);
        auto v3 = llm::reshape(v, n, kv_heads, head_dim);
        for (std::size_t r = 0; r < n; ++r) {
            st.layer.append(seq_of(r), llm::slice(k3, 0, r, r + 1), llm::slice(v3, 0, r, r + 1));
        }
        const auto attend = [&](const auto& cache) {
            with_mask([&](const auto& mask) {
                attention::decode_attention(llm::reshape(o, n, heads, head_dim), cache, q3, mask, attn_options(), ws, exec);
            });
        };
        if (subset) {
            attend(rows_view<decltype(st.layer)>{st.layer, st.seqs});
        } else {
            attend(st.layer);
        }
        detail::linear(y, o, wo(p), bo(p), ws, exec);
    }

    /// T new tokens of one sequence at once (prefill in chunks, speculative verification):
    /// x, y [T, d_model]; row t is token t of sequence `seq` of the cache, at position
    /// layer.length(seq) + t. The projections run as GEMMs over the T rows, RoPE at those
    /// positions, the T keys and values are appended to the layer (the model commits with
    /// cache.advance(seq, T) after every layer), and token t attends over the cached prefix and
    /// the new tokens up to itself (causal; a sliding window still holds): decode_attention with
    /// each new token as a query over its own prefix of the sequence. The same result as T
    /// single-token steps up to summation order (the GEMMs' row blocking, the attention's split).
    /// Example: `attn.step_tokens(y, st, 0, x, p, ws, pool);`
    template <class T>
    void step_tokens(activations y, state& st, std::size_t seq, const_activations x, const params<T>& p, workspace& ws,
                     parallel::policy auto&& exec) const {
        const std::size_t n = x.extent(0);
        llm::check(seq < st.layer.sequences(), "attention_mixer::step_tokens: sequence ", seq, " of a cache of ", st.layer.sequences(),
                   " sequences");
        llm::check(n > 0 && y.extent(0) == n, "attention_mixer::step_tokens: x has ", n, " rows and y ", y.extent(0),
                   " (one row per new token, at least one)");
        workspace::frame frame(ws);
        const std::size_t qd = heads * head_dim;
        const std::size_t kd = kv_heads * head_dim;
        auto q = detail::scratch(ws, n, qd);
        auto k = detail::scratch(ws, n, kd);
        auto v = detail::scratch(ws, n, kd);
        auto o = detail::scratch(ws, n, qd);
        const std::size_t start = st.layer.length(seq);
        tensor_view<std::int32_t, llm::dims<1>> pos(ws.take<std::int32_t>(n), llm::dims<1>(n));
        for (std::size_t t = 0; t < n; ++t) {
            pos(t) = static_cast<std::int32_t>(start + t);
        }
        project_rotate(q, k, v, x, pos, p, ws, exec);
        auto q3 = llm::reshape(q, n, heads, head_dim);
        auto k3 = llm::reshape(k, n, kv_heads, head_dim);
        auto v3 = llm::reshape(v, n, kv_heads, head_dim);
        st.layer.append(seq, k3, v3);
        if (n >= flash_min_tokens) {
            attend_tiled(o, q3, st.layer, seq, start + n, ws, exec);
        } else {
            const prefix_view<decltype(st.layer)> prefixes{st.layer, seq, start, n};
            with_mask([&](const auto& mask) {
                attention::decode_attention(llm::reshape(o, n, heads, head_dim), prefixes, q3, mask, attn_options(), ws, exec);
            });
        }
        detail::linear(y, o, wo(p), bo(p), ws, exec);
    }

    /// New tokens from which step_tokens attends with the tiled kernel (flash_forward: a tile of
    /// queries shares each tile of keys) instead of one decode_attention query per token. A q4_0
    /// Llama of 246M (16 heads of 64) on an Emerald Rapids core: prefill of 512 tokens 569 -> 642
    /// tokens/s, of 128 tokens 624 -> 643, of 16 and 32 tokens the same within noise.
    static constexpr std::size_t flash_min_tokens = 16;

    /// Multiply-adds per token of the projections (2 * this is the FLOPs), excluding attention scores.
    [[nodiscard]] std::size_t projection_macs() const noexcept {
        return width * (heads + 2 * kv_heads) * head_dim + heads * head_dim * width;
    }

private:
    // o [T, heads * head_dim] = attention of the T queries q3 [T, heads, head_dim] (the last T
    // of sequence seq's `total` cached positions) over those positions, by flash_forward: its
    // bottom-right aligned causal or sliding-window mask lets query t see positions up to
    // total - T + t, as decode_attention's prefix view does. The keys and values are the cache's
    // own memory when one run holds them all (a contiguous cache), else copied out (read_cache).
    template <class Layer, class Q3>
    void attend_tiled(activations o, const Q3& q3, const Layer& layer, std::size_t seq, std::size_t total, workspace& ws,
                      parallel::policy auto&& exec) const {
        using E = typename Layer::element_type;
        const std::size_t n = o.extent(0);
        const auto first = layer.run(seq, 0);
        const E* kp = first.k;
        const E* vp = first.v;
        std::size_t pos_stride = first.stride, head_stride = first.head_stride;
        if (first.count < total) {
            E* kg = ws.take<E>(total * kv_heads * head_dim, "attention_mixer::step_tokens", "the gathered keys");
            E* vg = ws.take<E>(total * kv_heads * head_dim, "attention_mixer::step_tokens", "the gathered values");
            attention::read_cache(tensor_view<E, llm::dims<3>>(kg, llm::dims<3>(total, kv_heads, head_dim)),
                                  tensor_view<E, llm::dims<3>>(vg, llm::dims<3>(total, kv_heads, head_dim)), layer, seq);
            kp = kg;
            vp = vg;
            pos_stride = kv_heads * head_dim;
            head_stride = head_dim;
        }
        const llm::dims<4> kv_shape(1, total, kv_heads, head_dim), kv_strides(total * pos_stride, pos_stride, head_stride, 1);
        const strided_view<const E, 4> k4(kp, kv_shape, kv_strides), v4(vp, kv_shape, kv_strides);
        tensor_view<float, llm::dims<3>> lse(ws.take<float>(heads * n, "attention_mixer::step_tokens", "the log-sum-exp"),
                                             llm::dims<3>(1, heads, n));
        with_mask([&](const auto& mask) {
            attention::flash_forward(llm::reshape(o, 1, n, heads, head_dim), lse, llm::reshape(q3, 1, n, heads, head_dim), k4, v4, mask,
                                     attn_options(), ws, exec);
        });
    }

    // The T new tokens of one sequence as T one-query "sequences" for decode_attention: query t
    // sees positions [0, start + t] of sequence seq of the layer (its run view, read only).
    template <class Layer>
    struct prefix_view {
        using element_type = typename Layer::element_type;
        const Layer& layer;
        std::size_t seq;
        std::size_t start;
        std::size_t count;
        std::size_t kv_heads() const noexcept { return layer.kv_heads(); }
        std::size_t head_dim() const noexcept { return layer.head_dim(); }
        std::size_t sequences() const noexcept { return count; }
        std::size_t length(std::size_t t) const noexcept { return start + t + 1; }
        attention::kv_run<element_type> run(std::size_t, std::size_t at) const { return layer.run(seq, at); }
    };

    // The stepping sequences of a layer as decode_attention's sequences: row r is sequence seqs[r].
    template <class Layer>
    struct rows_view {
        using element_type = typename Layer::element_type;
        const Layer& layer;
        std::span<const std::size_t> seqs;
        std::size_t kv_heads() const noexcept { return layer.kv_heads(); }
        std::size_t head_dim() const noexcept { return layer.head_dim(); }
        std::size_t sequences() const noexcept { return seqs.size(); }
        std::size_t length(std::size_t r) const { return layer.length(seqs[r]); }
        attention::kv_run<element_type> run(std::size_t r, std::size_t at) const { return layer.run(seqs[r], at); }
    };

    nn::rope_params<rope_config> rope_params() const { return {.theta = rope.theta, .scaling = rope}; }
    attention::options attn_options() const { return {.scale = 0.0f, .softcap = softcap, .splits = 0}; }

    template <class F>
    void with_mask(F&& f) const {
        if (window != 0) {
            f(attention::sliding_window(static_cast<std::int64_t>(window) - 1, 0));
        } else {
            f(attention::causal{});
        }
    }

    // [tokens, h * head_dim] viewed as [tokens * h, head_dim] (rows for the per-head norm).
    auto heads_rows(activations a, std::size_t h) const { return llm::reshape(a, a.extent(0) * h, head_dim); }

    /// The decode steps' q, k, v of the rows of x at positions pos: the projections (QK-norm
    /// where the model has it) and RoPE, in q, k, v.
    template <class T, class Pos>
    void project_rotate(activations q, activations k, activations v, const_activations x, const Pos& pos, const params<T>& p,
                        workspace& ws, parallel::policy auto&& exec) const {
        const std::size_t n = x.extent(0);
        if (qk_norm) {
            workspace::frame frame(ws);
            auto q_raw = detail::scratch(ws, n, q.extent(1));
            auto k_raw = detail::scratch(ws, n, k.extent(1));
            tensor_view<float, llm::dims<1>> rq(ws.take<float>(n * heads), llm::dims<1>(n * heads));
            tensor_view<float, llm::dims<1>> rk(ws.take<float>(n * kv_heads), llm::dims<1>(n * kv_heads));
            project(q_raw, k_raw, v, x, p, ws, exec);
            nn::rmsnorm_forward(heads_rows(q, heads), rq, heads_rows(q_raw, heads), p.q_norm, eps, exec);
            nn::rmsnorm_forward(heads_rows(k, kv_heads), rk, heads_rows(k_raw, kv_heads), p.k_norm, eps, exec);
        } else {
            project(q, k, v, x, p, ws, exec);
        }
        if constexpr (Layout::rope) {
            auto q3 = llm::reshape(q, n, heads, head_dim);
            auto k3 = llm::reshape(k, n, kv_heads, head_dim);
            nn::rope_forward(q3, q3, pos, rope_tab, exec);
            nn::rope_forward(k3, k3, pos, rope_tab, exec);
        }
    }

    template <class X, class P, class Exec>
    void project(activations q, activations k, activations v, X&& x, const P& p, workspace& ws, Exec&& exec) const {
        if constexpr (is_any_matrix<decltype(wq(p))>) {
            // one quantization of x serves q, k and v
            const auto w_q = wq(p), w_k = wk(p), w_v = wv(p);
            detail::linear_group<3>({q, k, v}, x, {&w_q, &w_k, &w_v}, ws, exec);
            detail::add_bias(q, bq(p));
            detail::add_bias(k, bk(p));
            detail::add_bias(v, bv(p));
        } else {
            detail::linear(q, x, wq(p), bq(p), ws, exec);
            detail::linear(k, x, wk(p), bk(p), ws, exec);
            detail::linear(v, x, wv(p), bv(p), ws, exec);
        }
    }

    // Weight and bias views, [out, in]: separate tensors, or rows of the transposed fused one.
    template <class P>
    auto wq(P& p) const {
        if constexpr (Layout::fused) {
            return llm::slice(llm::transpose(p.w_qkv, 0, 1), 0, 0, heads * head_dim);
        } else {
            return detail::weight_view<false>(p.w_q);
        }
    }
    template <class P>
    auto wk(P& p) const {
        if constexpr (Layout::fused) {
            return llm::slice(llm::transpose(p.w_qkv, 0, 1), 0, heads * head_dim, (heads + kv_heads) * head_dim);
        } else {
            return detail::weight_view<false>(p.w_k);
        }
    }
    template <class P>
    auto wv(P& p) const {
        if constexpr (Layout::fused) {
            return llm::slice(llm::transpose(p.w_qkv, 0, 1), 0, (heads + kv_heads) * head_dim, (heads + 2 * kv_heads) * head_dim);
        } else {
            return detail::weight_view<false>(p.w_v);
        }
    }
    template <class P>
    auto wo(P& p) const {
        return detail::weight_view<Layout::fused>(p.w_o);
    }
    template <class P>
    auto bq(P& p) const {
        if constexpr (Layout::fused) {
            return llm::slice(p.b_qkv, 0, 0, heads * head_dim);
        } else {
            return llm::slice(p.b_q, 0, 0, p.b_q.extent(0));
        }
    }
    template <class P>
    auto bk(P& p) const {
        if constexpr (Layout::fused) {
            return llm::slice(p.b_qkv, 0, heads * head_dim, (heads + kv_heads) * head_dim);
        } else {
            return llm::slice(p.b_k, 0, 0, p.b_k.extent(0));
        }
    }
    template <class P>
    auto bv(P& p) const {
        if constexpr (Layout::fused) {
            return llm::slice(p.b_qkv, 0, (heads + kv_heads) * head_dim, (heads + 2 * kv_heads) * head_dim);
        } else {
            return llm::slice(p.b_v, 0, 0, p.b_v.extent(0));
        }
    }
    template <class P>
    auto bo(P& p) const {
        return llm::slice(p.b_o, 0, 0, p.b_o.extent(0));
    }
};

}  // namespace llm::model
