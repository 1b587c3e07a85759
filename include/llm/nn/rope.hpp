// SPDX-License-Identifier: Apache-2.0
// Rotary position embeddings (any pair layout: rotate-half, interleaved or a user's; theta, linear and Llama 3 scaling), forward and backward.
#pragma once

#include <llm/nn/detail/rows.hpp>
#include <llm/nn/rope_config.hpp>

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <numbers>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::nn {
namespace detail {

/// The offsets of a style's pairs for one head, validated (each in range, every offset of
/// the head used once), and whether they are (i, i + half), which whole vectors can rotate.
struct rope_pairs {
    std::vector<std::size_t> first, second;
    bool split_halves = true;
};

template <rope_style Style>
[[nodiscard]] rope_pairs rope_pair_offsets(const char* fn, std::size_t dim) {
    const std::size_t half = dim / 2;
    rope_pairs p{std::vector<std::size_t>(half), std::vector<std::size_t>(half), true};
    std::vector<unsigned char> used(dim, 0);
    for (std::size_t i = 0; i < half; ++i) {
        const std::size_t a = static_cast<std::size_t>(Style::first(i, half));
        const std::size_t b = static_cast<std::size_t>(Style::second(i, half));
        llm::check(a < dim && b < dim && a != b && used[a] == 0 && used[b] == 0, fn, ": the rope style's pair ", i, " is (", a,
                   ", ", b, "), which is out of [0, ", dim, ") or reuses an offset (every offset must be used once)");
        used[a] = used[b] = 1;
        p.first[i] = a;
        p.second[i] = b;
        p.split_halves = p.split_halves && a == i && b == i + half;
    }
    return p;
}

/// Rotates every head of every token by angle sign * positions[t] * inv_freq[i] per pair,
/// into y (Add false) or added to y (Add true: the backward's accumulation), with the
/// frequencies and pairs given (validated by their maker). Allocates nothing for head_dim <= 512.
template <simd::backend S, bool Add, class Y, class X, class P, class Exec>
void rope_apply_table(const char* fn, Y&& y, X&& x, P&& positions, std::span<const double> inv_freq, const rope_pairs& pairs, float sign,
                      Exec& exec) {
    using TX = elem_t<X>;
    using TY = elem_t<Y>;
    const auto xv = rows_of(fn, "x", x);
    const auto yv = rows_of(fn, "y", y);
    const std::size_t tokens = xv.extent(0), heads = xv.extent(1), dim = xv.extent(2);
    llm::check(yv.shape() == xv.shape(), fn, ": y is ", yv.extent(0), " x ", yv.extent(1), " x ", yv.extent(2), " but x is ",
               tokens, " x ", heads, " x ", dim);
    llm::check(tokens > 0 && heads > 0, fn, ": x is ", tokens, " x ", heads, " x ", dim, "; every dimension must be > 0");
    llm::check(inv_freq.size() * 2 == dim && pairs.first.size() * 2 == dim, fn, ": x has head_dim ", dim, " but the rope table was made for ",
               inv_freq.size() * 2);
    const auto pos = rows_of(fn, "positions", positions);
    llm::check(pos.extent(0) == tokens, fn, ": positions has ", pos.extent(0), " elements but x has ", tokens, " tokens");
    const std::size_t half = dim / 2;
    parallel::parallel_for(exec, tokens, row_grain(heads * dim), [&](std::size_t t0, std::size_t t1) {
        // cos / sin of one token: on the stack up to head_dim 512 (a decode step allocates nothing)
        constexpr std::size_t stack_half = 256;
        std::array<float, 2 * stack_half> stack_buf;
        std::vector<float> heap_buf(half > stack_half ? 2 * half : 0);
        float* const cos_v = half > stack_half ? heap_buf.data() : stack_buf.data();
        float* const sin_v = cos_v + half;
        for (std::size_t t = t0; t < t1; ++t) {
            // Angles in double, reduced mod 2 pi before the float sin/cos: position * inv_freq
            // reaches 1e5 at long contexts, where a float angle would lose 3 digits.
            for (std::size_t i = 0; i < half; ++i) {
                const double angle = std::fmod(static_cast<double>(pos(t)) * inv_freq[i], 2.0 * std::numbers::pi);
                cos_v[i] = std::cos(static_cast<float>(angle));
                sin_v[i] = sign * std::sin(static_cast<float>(angle));
            }
            for (std::size_t h = 0; h < heads; ++h) {
                const TX* in = xv.ptr(t, h, 0);
                TY* out = yv.ptr(t, h, 0);
                if (pairs.split_halves) {
                    for_vectors<S>(half, [&](std::size_t i, std::size_t c) {
                        const auto a = load<S>(in + i, c), b = load<S>(in + half + i, c);
                        const auto cv = load<S>(cos_v + i, c), sv = load<S>(sin_v + i, c);
                        // Both halves are loaded before either is stored, so y may alias x.
                        const auto ra = S::sub(S::mul(a, cv), S::mul(b, sv));
                        const auto rb = S::fma(a, sv, S::mul(b, cv));
                        if constexpr (Add) {
                            accumulate<S>(out + i, ra, c);
                            accumulate<S>(out + half + i, rb, c);
                        } else {
                            store<S>(out + i, ra, c);
                            store<S>(out + half + i, rb, c);
                        }
                    });
                } else {
                    // Any other layout: scalar pairs (the facade has no gather; GCC vectorises
                    // the adjacent pairs of the interleaved layout with permutes at -O3).
                    for (std::size_t i = 0; i < half; ++i) {
                        const std::size_t ia = pairs.first[i], ib = pairs.second[i];
                        const float a = static_cast<float>(in[ia]), b = static_cast<float>(in[ib]);
                        const float ra = a * cos_v[i] - b * sin_v[i];
                        const float rb = b * cos_v[i] + a * sin_v[i];
                        if constexpr (Add) {
                            out[ia] = TY(static_cast<float>(out[ia]) + ra);
                            out[ib] = TY(static_cast<float>(out[ib]) + rb);
                        } else {
                            out[ia] = TY(ra);
                            out[ib] = TY(rb);
                        }
                    }
                }
            }
        }
    });
}


/// rope_apply_table with the frequencies and pairs of `params` and Style, made on this call.
template <simd::backend S, rope_style Style, bool Add, class Y, class X, class P, class Scaling, class Exec>
void rope_apply(const char* fn, Y&& y, X&& x, P&& positions, const rope_params<Scaling>& params, float sign, Exec& exec) {
    const std::size_t dim = rows_of(fn, "x", x).extent(2);
    const std::vector<double> inv_freq = rope_inverse_frequencies(fn, dim, params);
    const rope_pairs pairs = rope_pair_offsets<Style>(fn, dim);
    rope_apply_table<S, Add>(fn, y, x, positions, inv_freq, pairs, sign, exec);
}

}  // namespace detail

/// RoPE's per-head constants made once: the inverse frequencies of rope_params and the pair
/// offsets of a rope_style, for one head_dim. A decoder keeps one per attention layer so that its
/// decode step's rope_forward allocates nothing (made per call, they cost three allocations).
/// Example: `auto tab = llm::nn::make_rope_table<llm::nn::rope_rotate_half>(128, llm::nn::rope_params<>{.theta = 5e5});`
struct rope_table {
    std::vector<double> inv_freq;  ///< head_dim / 2 scaled inverse frequencies
    detail::rope_pairs pairs;      ///< the style's pair offsets
};

/// The rope_table of Style and params for heads of width head_dim (even, > 0; a style's pairs
/// are validated here once).
/// Example: `auto tab = llm::nn::make_rope_table<llm::nn::rope_rotate_half>(64, llm::nn::rope_params<>{});`
template <rope_style Style = rope_rotate_half, rope_scaling_policy Scaling = rope_scaling::none>
[[nodiscard]] rope_table make_rope_table(std::size_t head_dim, const rope_params<Scaling>& params = {}) {
    return {rope_inverse_frequencies("make_rope_table", head_dim, params), detail::rope_pair_offsets<Style>("make_rope_table", head_dim)};
}

/// rope_forward with the frequencies and pairs of a rope_table (the same rotation as the
/// rope_params overload for the table's style and params, bit for bit); allocates nothing for
/// head_dim <= 512. x's head_dim must be the table's.
/// Example: `llm::nn::rope_forward(q, q, pos, tab, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<3> Y, dense_view<3> X, index_view P>
void rope_forward(Y&& y, X&& x, P&& positions, const rope_table& table, parallel::policy auto&& exec) {
    detail::rope_apply_table<S, false>("rope_forward", y, x, positions, table.inv_freq, table.pairs, 1.0f, exec);
}

/// y = RoPE(x): the pair (a, b) of each head at token t is rotated by angle
/// positions[t] * inv_freq_i, inv_freq_i = scaling(theta^(-2i / head_dim)).
/// Shapes: y, x [tokens, heads, head_dim] (head_dim even, last dimension contiguous; y may
/// alias x); positions [tokens] (any integer type: absolute positions, so a KV-cache decode
/// step passes its offset).
/// Style: any rope_style; rope_rotate_half (Llama / Hugging Face, default) or rope_interleaved (GPT-J).
/// params (an option): theta and the scaling, rope_scaling::none, ::linear, ::llama3 or any
/// rope_scaling_policy. S: SIMD backend. exec: an llm::parallel::policy (tokens are split).
/// Example: `llm::nn::rope_forward(q, q, pos, llm::nn::rope_params<>{.theta = 500000.0}, pool);`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, mutable_dense_view<3> Y,
          dense_view<3> X, index_view P, rope_scaling_policy Scaling = rope_scaling::none>
void rope_forward(Y&& y, X&& x, P&& positions, const rope_params<Scaling>& params, parallel::policy auto&& exec) {
    detail::rope_apply<S, Style, false>("rope_forward", y, x, positions, params, 1.0f, exec);
}

/// rope_forward with the default rope_params (theta 10000, no scaling).
/// Example: `llm::nn::rope_forward(q, q, pos, llm::parallel::sequential{});`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, mutable_dense_view<3> Y,
          dense_view<3> X, index_view P>
void rope_forward(Y&& y, X&& x, P&& positions, parallel::policy auto&& exec) {
    rope_forward<Style, S>(y, x, positions, rope_params<>{}, exec);
}

/// rope_forward on llm::parallel::default_pool(). Example: `llm::nn::rope_forward(q, q, pos);`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, mutable_dense_view<3> Y,
          dense_view<3> X, index_view P, rope_scaling_policy Scaling = rope_scaling::none>
void rope_forward(Y&& y, X&& x, P&& positions, const rope_params<Scaling>& params = {}) {
    rope_forward<Style, S>(y, x, positions, params, parallel::default_pool());
}

/// Backward of rope_forward: the rotation is orthogonal, so the gradient is dy rotated by
/// -angle, accumulated: dx += R(-angle) dy (docs/conventions.md).
/// Shapes as rope_forward; dx must not alias dy.
/// Example: `llm::nn::rope_backward(dq, dq_rot, pos, llm::nn::rope_params<>{}, pool);`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, mutable_dense_view<3> DX,
          dense_view<3> DY, index_view P, rope_scaling_policy Scaling = rope_scaling::none>
void rope_backward(DX&& dx, DY&& dy, P&& positions, const rope_params<Scaling>& params, parallel::policy auto&& exec) {
    detail::rope_apply<S, Style, true>("rope_backward", dx, dy, positions, params, -1.0f, exec);
}

/// rope_backward with the default rope_params.
/// Example: `llm::nn::rope_backward(dq, dq_rot, pos, llm::parallel::sequential{});`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, mutable_dense_view<3> DX,
          dense_view<3> DY, index_view P>
void rope_backward(DX&& dx, DY&& dy, P&& positions, parallel::policy auto&& exec) {
    rope_backward<Style, S>(dx, dy, positions, rope_params<>{}, exec);
}

/// rope_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(dq); llm::nn::rope_backward(dq, dq_rot, pos);`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, mutable_dense_view<3> DX,
          dense_view<3> DY, index_view P, rope_scaling_policy Scaling = rope_scaling::none>
void rope_backward(DX&& dx, DY&& dy, P&& positions, const rope_params<Scaling>& params = {}) {
    rope_backward<Style, S>(dx, dy, positions, params, parallel::default_pool());
}

}  // namespace llm::nn
