// SPDX-License-Identifier: Apache-2.0
// The Mamba-2 mixer block (Hugging Face Mamba2Mixer: in_proj to z, xBC, dt; conv1d; SSD with grouped B / C; D skip; gated RMSNorm; out_proj) as an llm::model::block_like with a decode step.
#pragma once

#include <llm/core/workspace.hpp>
#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/nn/linear.hpp>
#include <llm/ssm/mamba.hpp>
#include <llm/ssm/ssm.hpp>
#include <llm/ssm/tile.hpp>
#include <llm/tensor/kernel_view.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace llm::ssm {

/// The Mamba-2 mixer of Hugging Face's `Mamba2ForCausalLM` (`backbone.layers.N.mixer.*`), the
/// computation of `Mamba2Mixer.torch_forward` without its MLP split (d_mlp = 0) and with the
/// heads of a group consecutive (head h reads group h / (heads / groups), as mamba-ssm; with one
/// group every convention agrees): for activations [tokens, d_model],
///   (z, xBC, dt_raw) = x in_proj^T;  xBC = silu(causal conv1d(xBC));  (x, B, C) = xBC;
///   dt = max(softplus(dt_raw + dt_bias), dt_min);  A = -exp(A_log) (one per head);
///   y = ssd(x, dt, B, C, A) + D x;  out = (rmsnorm(y silu(z)) * norm.weight) out_proj^T,
/// the RMSNorm over all of d_inner (transformers' MambaRMSNormGated). SSD runs chunked
/// (ssd_forward) on the token-major buffers viewed as (batch, L, heads, head_dim), no copy.
/// Parameters (Hugging Face names, relative to `mixer.`): in_proj.weight [2 d_inner + 2 G N +
/// heads, d_model], conv1d.weight [d_inner + 2 G N, 1, d_conv], conv1d.bias, dt_bias [heads],
/// A_log [heads], D [heads], norm.weight [d_inner], out_proj.weight [d_model, d_inner].
/// Example: `llm::ssm::mamba2_mixer m{.d_model = 768, .heads = 24, .head_dim = 64, .groups = 1, .d_state = 128};`
struct mamba2_mixer {
    std::size_t d_model = 0;   ///< width of the block's input and output
    std::size_t heads = 0;     ///< H
    std::size_t head_dim = 64; ///< P (d_inner = H P)
    std::size_t groups = 1;    ///< G groups of B and C
    std::size_t d_state = 128; ///< N
    std::size_t d_conv = 4;    ///< conv1d width
    float dt_min = 0.001f;     ///< lower clamp of dt (transformers' time_step_min)
    float eps = 1e-6f;         ///< RMSNorm epsilon
    std::size_t chunk = 64;    ///< SSD chunk length

    /// d_inner = heads * head_dim.
    [[nodiscard]] std::size_t d_inner() const noexcept { return heads * head_dim; }
    /// Width of xBC (the conv's channels): d_inner + 2 groups d_state.
    [[nodiscard]] std::size_t conv_dim() const noexcept { return d_inner() + 2 * groups * d_state; }
    /// Width of in_proj's output: z, xBC, dt.
    [[nodiscard]] std::size_t proj_dim() const noexcept { return d_inner() + conv_dim() + heads; }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        tensor<T, llm::dims<2>> in_proj;   ///< in_proj.weight [proj_dim, d_model]
        tensor<T, llm::dims<3>> conv_w;    ///< conv1d.weight [conv_dim, 1, d_conv]
        tensor<T, llm::dims<1>> conv_b;    ///< conv1d.bias [conv_dim]
        tensor<T, llm::dims<1>> dt_bias;   ///< dt_bias [heads]
        tensor<T, llm::dims<1>> A_log;     ///< A_log [heads]
        tensor<T, llm::dims<1>> D;         ///< D [heads]
        tensor<T, llm::dims<1>> norm;      ///< norm.weight [d_inner]
        tensor<T, llm::dims<2>> out_proj;  ///< out_proj.weight [d_model, d_inner]
        /// Visits the members with their Hugging Face names.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("in_proj.weight", p.in_proj...);
            f("conv1d.weight", p.conv_w...);
            f("conv1d.bias", p.conv_b...);
            f("dt_bias", p.dt_bias...);
            f("A_log", p.A_log...);
            f("D", p.D...);
            f("norm.weight", p.norm...);
            f("out_proj.weight", p.out_proj...);
        }
    };
    /// Parameters (Hugging Face names).
    template <class T>
    using params = model::param_list<fields<T>>;

    /// What backward needs (token-major) and the shape.
    struct cache {
        model::batch_shape shape;               ///< batch and sequence length
        tensor_view<float, llm::dims<2>> proj;  ///< in_proj output [tokens, proj_dim]
        tensor_view<float, llm::dims<2>> xbc;   ///< conv1d + SiLU output [tokens, conv_dim]
        tensor_view<float, llm::dims<2>> dt;    ///< dt after bias, softplus and clamp [tokens, heads]
        tensor_view<float, llm::dims<2>> y;     ///< SSD output plus D x [tokens, d_inner]
        tensor_view<float, llm::dims<1>> rstd;  ///< the norm's 1 / rms per token
        tensor_view<float, llm::dims<2>> normed;///< the norm's output [tokens, d_inner]
    };

    /// Zero-filled parameters.
    template <class T>
    params<T> make_params() const {
        return {tensor<T, llm::dims<2>>(proj_dim(), d_model), tensor<T, llm::dims<3>>(conv_dim(), 1, d_conv),
                tensor<T, llm::dims<1>>(conv_dim()),        tensor<T, llm::dims<1>>(heads),
                tensor<T, llm::dims<1>>(heads),             tensor<T, llm::dims<1>>(heads),
                tensor<T, llm::dims<1>>(d_inner()),         tensor<T, llm::dims<2>>(d_model, d_inner())};
    }

    /// The cache for a batch shape.
    cache make_cache(model::arena& a, model::batch_shape s) const {
        const std::size_t n = s.tokens();
        return {s,
                a.take<float>(n, proj_dim()),
                a.take<float>(n, conv_dim()),
                a.take<float>(n, heads),
                a.take<float>(n, d_inner()),
                a.take<float>(n),
                a.take<float>(n, d_inner())};
    }

    /// y = mixer(x); writes the cache.
    template <class T>
    void forward(model::activations out, cache& c, model::const_activations x, const params<T>& p, workspace& ws,
                 parallel::policy auto&& exec) const {
        const std::size_t Bt = c.shape.batch, L = c.shape.seq, n = Bt * L, Di = d_inner(), CD = conv_dim(),
                          PD = proj_dim();
        workspace::frame frame(ws);
        nn::linear_forward(c.proj, x, p.in_proj, ws, exec);
        conv1d_forward(detail::view_of<3>(c.xbc.data(), {Bt, CD, L}, {L * CD, 1, CD}), none,
                       detail::view_of<3>(c.proj.data() + Di, {Bt, CD, L}, {L * PD, 1, PD}), conv_weight(p), p.conv_b,
                       {.silu = true}, exec);
        for (std::size_t t = 0; t < n; ++t) {
            for (std::size_t h = 0; h < heads; ++h) {
                const float r = c.proj(t, Di + CD + h) + static_cast<float>(p.dt_bias(h));
                c.dt(t, h) = std::max(tile::softplus(r), dt_min);
            }
        }
        const auto A = neg_exp(p, ws);
        ssd_forward(y4(c.y.data(), Bt, L), none, x4(c.xbc.data(), Bt, L), dt3(c.dt.data(), Bt, L),
                    bc4(c.xbc.data() + Di, Bt, L), bc4(c.xbc.data() + Di + groups * d_state, Bt, L), A,
                    {.chunk = chunk}, exec);
        for (std::size_t t = 0; t < n; ++t) {
            for (std::size_t i = 0; i < Di; ++i) {
                c.y(t, i) += static_cast<float>(p.D(i / head_dim)) * c.xbc(t, i);
            }
        }
        gated_norm(c.normed, c.rstd, c.y, c.proj, p, n);
        nn::linear_forward(out, c.normed, p.out_proj, ws, exec);
    }

    /// dx += ..., every gradient += ... (accumulates).
    template <class T>
    void backward(model::activations dx, params<float>& g, model::const_activations dout, const cache& c,
                  model::const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        const std::size_t Bt = c.shape.batch, L = c.shape.seq, n = Bt * L, Di = d_inner(), CD = conv_dim(),
                          PD = proj_dim();
        workspace::frame frame(ws);
        auto zeros = [&](std::size_t rows, std::size_t cols) {
            float* q = ws.take<float>(rows * cols, "mamba2_mixer::backward", "a gradient buffer");
            std::fill(q, q + rows * cols, 0.0f);
            return detail::view_of<2>(q, {rows, cols}, {cols, 1});
        };
        const auto dn = zeros(n, Di), dy = zeros(n, Di), dxbc = zeros(n, CD), dproj = zeros(n, PD),
                   ddt = zeros(n, heads), dA = zeros(1, heads);
        nn::linear_backward(dn, g.out_proj, dout, c.normed, p.out_proj, ws, exec);
        // Gated RMSNorm: g = y silu(z), gh = g rstd, normed = gh w.
        for (std::size_t t = 0; t < n; ++t) {
            const float rs = c.rstd(t);
            double dot = 0;
            for (std::size_t i = 0; i < Di; ++i) {
                const float z = c.proj(t, i);
                const float gh = c.y(t, i) * tile::silu(z) * rs;
                const float dgh = dn(t, i) * static_cast<float>(p.norm(i));
                g.norm(i) += dn(t, i) * gh;
                dot += static_cast<double>(dgh) * gh;
            }
            const float mean = static_cast<float>(dot / static_cast<double>(Di));
            for (std::size_t i = 0; i < Di; ++i) {
                const float z = c.proj(t, i);
                const float gh = c.y(t, i) * tile::silu(z) * rs;
                const float dg = rs * (dn(t, i) * static_cast<float>(p.norm(i)) - gh * mean);
                dy(t, i) = dg * tile::silu(z);
                dproj(t, i) += dg * c.y(t, i) * tile::silu_grad(z);
            }
        }
        // D skip: y += D x.
        for (std::size_t t = 0; t < n; ++t) {
            for (std::size_t i = 0; i < Di; ++i) {
                g.D(i / head_dim) += dy(t, i) * c.xbc(t, i);
                dxbc(t, i) += dy(t, i) * static_cast<float>(p.D(i / head_dim));
            }
        }
        const auto A = neg_exp(p, ws);
        const auto A1 = detail::view_of<1>(A.data(), {heads}, {1});
        ssd_backward(x4(dxbc.data(), Bt, L), dt3(ddt.data(), Bt, L), bc4(dxbc.data() + Di, Bt, L),
                     bc4(dxbc.data() + Di + groups * d_state, Bt, L), detail::view_of<1>(dA.data(), {heads}, {1}),
                     y4(dy.data(), Bt, L), x4(c.xbc.data(), Bt, L), dt3(c.dt.data(), Bt, L), bc4(c.xbc.data() + Di, Bt, L),
                     bc4(c.xbc.data() + Di + groups * d_state, Bt, L), A1, exec);
        for (std::size_t h = 0; h < heads; ++h) {  // A = -exp(A_log): dA_log = dA A
            g.A_log(h) += dA(0, h) * A(h);
        }
        for (std::size_t t = 0; t < n; ++t) {  // dt = max(softplus(raw + bias), dt_min)
            for (std::size_t h = 0; h < heads; ++h) {
                const float r = c.proj(t, Di + CD + h) + static_cast<float>(p.dt_bias(h));
                const float gr = tile::softplus(r) > dt_min ? ddt(t, h) * tile::softplus_grad(r) : 0.0f;
                dproj(t, Di + CD + h) += gr;
                g.dt_bias(h) += gr;
            }
        }
        conv1d_backward(detail::view_of<3>(dproj.data() + Di, {Bt, CD, L}, {L * PD, 1, PD}),
                        detail::view_of<2>(g.conv_w.data(), {CD, d_conv}, {d_conv, 1}), g.conv_b,
                        detail::view_of<3>(dxbc.data(), {Bt, CD, L}, {L * CD, 1, CD}),
                        detail::view_of<3>(c.proj.data() + Di, {Bt, CD, L}, {L * PD, 1, PD}), conv_weight(p), p.conv_b,
                        {.silu = true}, exec);
        nn::linear_backward(dx, g.in_proj, dproj, x, p.in_proj, ws, exec);
    }

    /// The decode state of one sequence: the conv's last d_conv - 1 inputs and the SSD state.
    struct state {
        tensor<float, llm::dims<3>> conv;  ///< (1, conv_dim, d_conv - 1)
        tensor<float, llm::dims<4>> ssm;   ///< (1, heads, head_dim, d_state)
    };
    /// A zeroed decode state.
    state make_state() const {
        return {tensor<float, llm::dims<3>>(1, conv_dim(), d_conv - 1), tensor<float, llm::dims<4>>(1, heads, head_dim, d_state)};
    }

    /// One token: y [1, d_model] from x [1, d_model], the state updated in place.
    template <class T>
    void step(model::activations out, state& s, model::const_activations x, const params<T>& p, workspace& ws,
              parallel::policy auto&& exec) const {
        const std::size_t Di = d_inner(), CD = conv_dim(), PD = proj_dim(), GN = groups * d_state;
        workspace::frame frame(ws);
        auto buf = [&](std::size_t cols) {
            return detail::view_of<2>(ws.take<float>(cols, "mamba2_mixer::step", "a row"), {1, cols}, {cols, 1});
        };
        const auto proj = buf(PD), xbc = buf(CD), dt = buf(heads), y = buf(Di), normed = buf(Di);
        const auto rstd = detail::view_of<1>(ws.take<float>(1, "mamba2_mixer::step", "rstd"), {1}, {1});
        nn::linear_forward(proj, x, p.in_proj, ws, exec);
        conv1d_step(xbc, s.conv, detail::view_of<2>(proj.data() + Di, {1, CD}, {PD, 1}), conv_weight(p), p.conv_b,
                    {.silu = true}, exec);
        for (std::size_t h = 0; h < heads; ++h) {
            dt(0, h) = std::max(tile::softplus(proj(0, Di + CD + h) + static_cast<float>(p.dt_bias(h))), dt_min);
        }
        const auto A = neg_exp(p, ws);
        ssd_step(detail::view_of<3>(y.data(), {1, heads, head_dim}, {Di, head_dim, 1}), s.ssm,
                 detail::view_of<3>(xbc.data(), {1, heads, head_dim}, {CD, head_dim, 1}), dt,
                 detail::view_of<3>(xbc.data() + Di, {1, groups, d_state}, {CD, d_state, 1}),
                 detail::view_of<3>(xbc.data() + Di + GN, {1, groups, d_state}, {CD, d_state, 1}), A, exec);
        for (std::size_t i = 0; i < Di; ++i) {
            y(0, i) += static_cast<float>(p.D(i / head_dim)) * xbc(0, i);
        }
        gated_norm(normed, rstd, y, proj, p, 1);
        nn::linear_forward(out, normed, p.out_proj, ws, exec);
    }

private:
    template <class T>
    auto conv_weight(const params<T>& p) const {
        return detail::view_of<2, const T>(p.conv_w.data(), {conv_dim(), d_conv}, {d_conv, 1});
    }
    template <class T>
    strided_view<float, 1> neg_exp(const params<T>& p, workspace& ws) const {
        float* a = ws.take<float>(heads, "mamba2_mixer", "A");
        for (std::size_t h = 0; h < heads; ++h) {
            a[h] = -std::exp(static_cast<float>(p.A_log(h)));
        }
        return detail::view_of<1>(a, {heads}, {1});
    }
    strided_view<float, 4> x4(float* q, std::size_t Bt, std::size_t L) const {
        const std::size_t CD = conv_dim();
        return detail::view_of<4>(q, {Bt, L, heads, head_dim}, {L * CD, CD, head_dim, 1});
    }
    strided_view<float, 4> y4(float* q, std::size_t Bt, std::size_t L) const {
        const std::size_t Di = d_inner();
        return detail::view_of<4>(q, {Bt, L, heads, head_dim}, {L * Di, Di, head_dim, 1});
    }
    strided_view<float, 3> dt3(float* q, std::size_t Bt, std::size_t L) const {
        return detail::view_of<3>(q, {Bt, L, heads}, {L * heads, heads, 1});
    }
    strided_view<float, 4> bc4(float* q, std::size_t Bt, std::size_t L) const {
        const std::size_t CD = conv_dim();
        return detail::view_of<4>(q, {Bt, L, groups, d_state}, {L * CD, CD, d_state, 1});
    }
    /// normed = rmsnorm(y silu(z)) * weight over d_inner; z is proj's first d_inner columns.
    template <class N, class R, class Y, class P, class T>
    void gated_norm(const N& normed, const R& rstd, const Y& y, const P& proj, const params<T>& p, std::size_t n) const {
        const std::size_t Di = d_inner();
        for (std::size_t t = 0; t < n; ++t) {
            double ss = 0;
            for (std::size_t i = 0; i < Di; ++i) {
                const float gv = y(t, i) * tile::silu(static_cast<float>(proj(t, i)));
                ss += static_cast<double>(gv) * gv;
            }
            const float rs = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(Di)) + eps);
            rstd(t) = rs;
            for (std::size_t i = 0; i < Di; ++i) {
                normed(t, i) = y(t, i) * tile::silu(static_cast<float>(proj(t, i))) * rs * static_cast<float>(p.norm(i));
            }
        }
    }
};

}  // namespace llm::ssm
