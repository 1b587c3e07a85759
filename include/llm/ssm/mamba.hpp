// SPDX-License-Identifier: Apache-2.0
// The Mamba-1 mixer block (Hugging Face MambaMixer: in_proj, conv1d, x_proj, dt_proj, selective scan, out_proj) as an llm::model::block_like with a decode step.
#pragma once

#include <llm/core/workspace.hpp>
#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/nn/linear.hpp>
#include <llm/ssm/ssm.hpp>
#include <llm/tensor/kernel_view.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <array>
#include <cmath>
#include <cstddef>

namespace llm::ssm {

namespace detail {

/// A strided fp32 view of rank R at p with the given extents and strides (no copy).
template <std::size_t R, class T = float>
strided_view<T, R> view_of(T* p, std::array<std::size_t, R> e, std::array<std::size_t, R> s) {
    return strided_view<T, R>(p, llm::dims<R>(e), llm::dims<R>(s));
}

}  // namespace detail

/// The Mamba-1 mixer of Hugging Face's `MambaForCausalLM` (`backbone.layers.N.mixer.*`), the
/// slow path of `MambaMixer` (use_bias = false, use_conv_bias = true), for activations
/// [tokens, d_model] of `batch` sequences of `seq` tokens:
///   xz = x in_proj^T (x and z halves of d_inner); u = silu(causal conv1d(x half));
///   (dt_r, B, C) = u x_proj^T; delta = dt_r dt_proj.weight^T; A = -exp(A_log);
///   y = selective_scan(u, delta, B, C, z, A, D, dt_proj.bias, softplus); out = y out_proj^T.
/// The scan reads its (batch, d_inner, L) operands as strided views of the token-major
/// buffers (no transposes are copied). Parameters (Hugging Face names, relative to `mixer.`):
/// in_proj.weight [2 d_inner, d_model], conv1d.weight [d_inner, 1, d_conv], conv1d.bias,
/// x_proj.weight [dt_rank + 2 d_state, d_inner], dt_proj.weight [d_inner, dt_rank],
/// dt_proj.bias, A_log [d_inner, d_state], D [d_inner], out_proj.weight [d_model, d_inner].
/// Example: `llm::ssm::mamba_mixer m{.d_model = 768, .d_inner = 1536, .d_state = 16, .d_conv = 4, .dt_rank = 48};`
struct mamba_mixer {
    std::size_t d_model = 0;  ///< width of the block's input and output
    std::size_t d_inner = 0;  ///< expanded width (expand * d_model)
    std::size_t d_state = 16; ///< N
    std::size_t d_conv = 4;   ///< conv1d width
    std::size_t dt_rank = 0;  ///< rank of the delta projection

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        tensor<T, llm::dims<2>> in_proj;     ///< in_proj.weight [2 d_inner, d_model]
        tensor<T, llm::dims<3>> conv_w;      ///< conv1d.weight [d_inner, 1, d_conv]
        tensor<T, llm::dims<1>> conv_b;      ///< conv1d.bias [d_inner]
        tensor<T, llm::dims<2>> x_proj;      ///< x_proj.weight [dt_rank + 2 d_state, d_inner]
        tensor<T, llm::dims<2>> dt_proj_w;   ///< dt_proj.weight [d_inner, dt_rank]
        tensor<T, llm::dims<1>> dt_proj_b;   ///< dt_proj.bias [d_inner]
        tensor<T, llm::dims<2>> A_log;       ///< A_log [d_inner, d_state]
        tensor<T, llm::dims<1>> D;           ///< D [d_inner]
        tensor<T, llm::dims<2>> out_proj;    ///< out_proj.weight [d_model, d_inner]
        /// Visits the members with their Hugging Face names.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            f("in_proj.weight", p.in_proj...);
            f("conv1d.weight", p.conv_w...);
            f("conv1d.bias", p.conv_b...);
            f("x_proj.weight", p.x_proj...);
            f("dt_proj.weight", p.dt_proj_w...);
            f("dt_proj.bias", p.dt_proj_b...);
            f("A_log", p.A_log...);
            f("D", p.D...);
            f("out_proj.weight", p.out_proj...);
        }
    };
    /// Parameters (Hugging Face names).
    template <class T>
    using params = model::param_list<fields<T>>;

    /// What backward needs: the forward's intermediate activations (token-major) and the shape.
    struct cache {
        model::batch_shape shape;                  ///< batch and sequence length
        tensor_view<float, llm::dims<2>> xz;       ///< in_proj output [tokens, 2 d_inner]
        tensor_view<float, llm::dims<2>> u;        ///< conv1d + SiLU output [tokens, d_inner]
        tensor_view<float, llm::dims<2>> xdbl;     ///< x_proj output [tokens, dt_rank + 2 d_state]
        tensor_view<float, llm::dims<2>> delta;    ///< dt_proj output without bias [tokens, d_inner]
        tensor_view<float, llm::dims<2>> y;        ///< scan output [tokens, d_inner]
    };

    /// Zero-filled parameters.
    template <class T>
    params<T> make_params() const {
        return {tensor<T, llm::dims<2>>(2 * d_inner, d_model), tensor<T, llm::dims<3>>(d_inner, 1, d_conv),
                tensor<T, llm::dims<1>>(d_inner),           tensor<T, llm::dims<2>>(dt_rank + 2 * d_state, d_inner),
                tensor<T, llm::dims<2>>(d_inner, dt_rank),    tensor<T, llm::dims<1>>(d_inner),
                tensor<T, llm::dims<2>>(d_inner, d_state),    tensor<T, llm::dims<1>>(d_inner),
                tensor<T, llm::dims<2>>(d_model, d_inner)};
    }

    /// The cache for a batch shape.
    cache make_cache(model::arena& a, model::batch_shape s) const {
        const std::size_t n = s.tokens();
        return {s,
                a.take<float>(n, 2 * d_inner),
                a.take<float>(n, d_inner),
                a.take<float>(n, dt_rank + 2 * d_state),
                a.take<float>(n, d_inner),
                a.take<float>(n, d_inner)};
    }

    /// y = mixer(x); writes the cache.
    template <class T>
    void forward(model::activations out, cache& c, model::const_activations x, const params<T>& p, workspace& ws,
                 parallel::policy auto&& exec) const {
        const std::size_t Bt = c.shape.batch, L = c.shape.seq, Di = d_inner, N = d_state, R = dt_rank;
        const std::size_t XD = R + 2 * N;
        workspace::frame frame(ws);
        nn::linear_forward(c.xz, x, p.in_proj, ws, exec);
        const auto xs = detail::view_of<3>(c.xz.data(), {Bt, Di, L}, {L * 2 * Di, 1, 2 * Di});
        const auto us = detail::view_of<3>(c.u.data(), {Bt, Di, L}, {L * Di, 1, Di});
        conv1d_forward(us, none, xs, conv_weight(p), p.conv_b, {.silu = true}, exec);
        nn::linear_forward(c.xdbl, c.u, p.x_proj, ws, exec);
        const auto dtr = detail::view_of<2>(c.xdbl.data(), {Bt * L, R}, {XD, 1});
        nn::linear_forward(c.delta, dtr, p.dt_proj_w, ws, exec);
        const auto A = neg_exp(p, ws);
        run_scan(c, p, A, exec);
        nn::linear_forward(out, c.y, p.out_proj, ws, exec);
    }

    /// dx += ..., every gradient += ... (accumulates).
    template <class T>
    void backward(model::activations dx, params<float>& g, model::const_activations dout, const cache& c,
                  model::const_activations x, const params<T>& p, workspace& ws, parallel::policy auto&& exec) const {
        const std::size_t Bt = c.shape.batch, L = c.shape.seq, n = Bt * L, Di = d_inner, N = d_state, R = dt_rank;
        const std::size_t XD = R + 2 * N;
        workspace::frame frame(ws);
        auto zeros = [&](std::size_t rows, std::size_t cols) {
            float* q = ws.take<float>(rows * cols, "mamba_mixer::backward", "a gradient buffer");
            std::fill(q, q + rows * cols, 0.0f);
            return detail::view_of<2>(q, {rows, cols}, {cols, 1});
        };
        const auto dy = zeros(n, Di), du = zeros(n, Di), ddelta = zeros(n, Di), dxdbl = zeros(n, XD),
                   dxz = zeros(n, 2 * Di), dA = zeros(Di, N);
        nn::linear_backward(dy, g.out_proj, dout, c.y, p.out_proj, ws, exec);
        const auto A = neg_exp(p, ws);
        // The scan's backward, its operands as strided views of the token-major buffers.
        const auto v3 = [&](const auto& m, std::size_t col, std::size_t width) {
            return detail::view_of<3>(m.data() + col, {Bt, width, L}, {L * m.stride(0), 1, m.stride(0)});
        };
        const auto bc = [&](const auto& m, std::size_t col) {
            return detail::view_of<4>(m.data() + col, {Bt, 1, N, L}, {L * XD, 0, 1, XD});
        };
        selective_scan_backward(v3(du, 0, Di), v3(ddelta, 0, Di), bc(dxdbl, R), bc(dxdbl, R + N), v3(dxz, Di, Di), dA,
                                g.D, g.dt_proj_b, v3(dy, 0, Di), v3(c.u, 0, Di), v3(c.delta, 0, Di), bc(c.xdbl, R),
                                bc(c.xdbl, R + N), v3(c.xz, Di, Di), A, p.D, p.dt_proj_b, {.delta_softplus = true},
                                exec);
        for (std::size_t d = 0; d < Di; ++d) {  // A = -exp(A_log): dA_log = dA * A
            for (std::size_t k = 0; k < N; ++k) {
                g.A_log(d, k) += dA(d, k) * A(d, k);
            }
        }
        const auto dtr = detail::view_of<2>(c.xdbl.data(), {n, R}, {XD, 1});
        const auto ddtr = detail::view_of<2>(dxdbl.data(), {n, R}, {XD, 1});
        nn::linear_backward(ddtr, g.dt_proj_w, ddelta, dtr, p.dt_proj_w, ws, exec);
        nn::linear_backward(du, g.x_proj, dxdbl, c.u, p.x_proj, ws, exec);
        const auto gw = detail::view_of<2>(g.conv_w.data(), {Di, d_conv}, {d_conv, 1});
        conv1d_backward(v3(dxz, 0, Di), gw, g.conv_b, v3(du, 0, Di), v3(c.xz, 0, Di), conv_weight(p), p.conv_b,
                        {.silu = true}, exec);
        nn::linear_backward(dx, g.in_proj, dxz, x, p.in_proj, ws, exec);
    }

    /// The decode state of one sequence: the conv1d's last d_conv - 1 inputs and the scan state.
    struct state {
        tensor<float, llm::dims<3>> conv;  ///< (1, d_inner, d_conv - 1)
        tensor<float, llm::dims<3>> ssm;   ///< (1, d_inner, d_state)
    };
    /// A zeroed decode state (the state before the first token).
    state make_state() const { return {tensor<float, llm::dims<3>>(1, d_inner, d_conv - 1), tensor<float, llm::dims<3>>(1, d_inner, d_state)}; }

    /// One token: y [1, d_model] from x [1, d_model], the state updated in place.
    template <class T>
    void step(model::activations out, state& s, model::const_activations x, const params<T>& p, workspace& ws,
              parallel::policy auto&& exec) const {
        const std::size_t Di = d_inner, N = d_state, R = dt_rank, XD = R + 2 * N;
        workspace::frame frame(ws);
        auto buf = [&](std::size_t cols) {
            return detail::view_of<2>(ws.take<float>(cols, "mamba_mixer::step", "a row"), {1, cols}, {cols, 1});
        };
        const auto xz = buf(2 * Di), u = buf(Di), xdbl = buf(XD), delta = buf(Di), y = buf(Di);
        nn::linear_forward(xz, x, p.in_proj, ws, exec);
        conv1d_step(u, s.conv, detail::view_of<2>(xz.data(), {1, Di}, {2 * Di, 1}), conv_weight(p), p.conv_b,
                    {.silu = true}, exec);
        nn::linear_forward(xdbl, u, p.x_proj, ws, exec);
        nn::linear_forward(delta, detail::view_of<2>(xdbl.data(), {1, R}, {XD, 1}), p.dt_proj_w, ws, exec);
        const auto A = neg_exp(p, ws);
        const auto b3 = detail::view_of<3>(xdbl.data() + R, {1, 1, N}, {XD, N, 1});
        const auto c3 = detail::view_of<3>(xdbl.data() + R + N, {1, 1, N}, {XD, N, 1});
        selective_state_update(y, s.ssm, u, delta, b3, c3, detail::view_of<2>(xz.data() + Di, {1, Di}, {2 * Di, 1}), A,
                               p.D, p.dt_proj_b, {.delta_softplus = true}, exec);
        nn::linear_forward(out, y, p.out_proj, ws, exec);
    }

private:
    template <class T>
    auto conv_weight(const params<T>& p) const {
        return detail::view_of<2, const T>(p.conv_w.data(), {d_inner, d_conv}, {d_conv, 1});
    }
    /// A = -exp(A_log) as fp32 in the workspace.
    template <class T>
    strided_view<float, 2> neg_exp(const params<T>& p, workspace& ws) const {
        float* a = ws.take<float>(d_inner * d_state, "mamba_mixer", "A");
        for (std::size_t d = 0; d < d_inner; ++d) {
            for (std::size_t k = 0; k < d_state; ++k) {
                a[d * d_state + k] = -std::exp(static_cast<float>(p.A_log(d, k)));
            }
        }
        return detail::view_of<2>(a, {d_inner, d_state}, {d_state, 1});
    }
    template <class T>
    void run_scan(cache& c, const params<T>& p, const strided_view<float, 2>& A, parallel::policy auto&& exec) const {
        const std::size_t Bt = c.shape.batch, L = c.shape.seq, Di = d_inner, N = d_state, R = dt_rank;
        const std::size_t XD = R + 2 * N;
        const auto v3 = [&](float* q, std::size_t ld) { return detail::view_of<3>(q, {Bt, Di, L}, {L * ld, 1, ld}); };
        const auto bc = [&](std::size_t col) {
            return detail::view_of<4>(c.xdbl.data() + col, {Bt, 1, N, L}, {L * XD, 0, 1, XD});
        };
        selective_scan(v3(c.y.data(), Di), none, v3(c.u.data(), Di), v3(c.delta.data(), Di), bc(R), bc(R + N),
                       v3(c.xz.data() + Di, 2 * Di), A, p.D, p.dt_proj_b, {.delta_softplus = true}, exec);
    }
};

}  // namespace llm::ssm
