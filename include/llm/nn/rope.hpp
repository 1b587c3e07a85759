// SPDX-License-Identifier: Apache-2.0
// Rotary position embeddings (rotate-half and interleaved; theta, linear and Llama 3 scaling), forward and backward.
#pragma once

#include <llm/nn/detail/rows.hpp>
#include <llm/nn/rope_config.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <numbers>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::nn {
namespace detail {

/// Rotates every head of every token by angle sign * positions[t] * inv_freq[i] per pair.
template <simd::backend S, rope_style Style, class X, class P, class Y, class Scaling, class Exec>
void rope_apply(const char* fn, X&& x, P&& positions, Y&& y, const rope_params<Scaling>& params, float sign, Exec& exec) {
    static_assert(view_of_rank<std::remove_reference_t<X>, 3> && view_of_rank<std::remove_reference_t<Y>, 3>,
                  "rope: x and y must be rank-3 views [tokens, heads, head_dim]");
    using TX = elem_t<std::remove_reference_t<X>>;
    using TY = elem_t<std::remove_reference_t<Y>>;
    static_assert(storage_element<TX> && storage_element<TY>, "rope: x and y must hold float or llm::bf16");
    const std::size_t tokens = x.extent(0), heads = x.extent(1), dim = x.extent(2);
    llm::check(y.extent(0) == tokens && y.extent(1) == heads && y.extent(2) == dim, fn, ": y is ", y.extent(0), " x ",
               y.extent(1), " x ", y.extent(2), " but x is ", tokens, " x ", heads, " x ", dim);
    llm::check(tokens > 0 && heads > 0, fn, ": x is ", tokens, " x ", heads, " x ", dim, "; every dimension must be > 0");
    llm::check((dim <= 1 || (x.stride(2) == 1 && y.stride(2) == 1)), fn, ": x and y must have a contiguous last dimension");
    const std::vector<double> inv_freq = rope_inverse_frequencies(fn, dim, params);
    const auto pos = as_vector(fn, "positions", positions);
    using I = std::remove_const_t<std::remove_pointer_t<decltype(pos.first)>>;
    static_assert(std::integral<I>, "rope: positions must be an integer type");
    llm::check(pos.second == tokens, fn, ": positions has ", pos.second, " elements but x has ", tokens, " tokens");
    const std::size_t half = dim / 2;
    parallel::parallel_for(exec, tokens, row_grain(heads * dim), [&](std::size_t t0, std::size_t t1) {
        std::vector<float> cos_v(half), sin_v(half);
        for (std::size_t t = t0; t < t1; ++t) {
            // Angles in double, reduced mod 2 pi before the float sin/cos: position * inv_freq
            // reaches 1e5 at long contexts, where a float angle would lose 3 digits.
            for (std::size_t i = 0; i < half; ++i) {
                const double angle = std::fmod(static_cast<double>(pos.first[t]) * inv_freq[i], 2.0 * std::numbers::pi);
                cos_v[i] = std::cos(static_cast<float>(angle));
                sin_v[i] = sign * std::sin(static_cast<float>(angle));
            }
            for (std::size_t h = 0; h < heads; ++h) {
                const TX* in = x.data() + t * x.stride(0) + h * x.stride(1);
                TY* out = y.data() + t * y.stride(0) + h * y.stride(1);
                if constexpr (std::is_same_v<Style, rope_rotate_half>) {
                    for_vectors<S>(half, [&](std::size_t i, std::size_t c) {
                        const auto a = load<S>(in + i, c), b = load<S>(in + half + i, c);
                        const auto cv = load<S>(cos_v.data() + i, c), sv = load<S>(sin_v.data() + i, c);
                        // Both halves are loaded before either is stored, so y may alias x.
                        store<S>(out + i, S::sub(S::mul(a, cv), S::mul(b, sv)), c);
                        store<S>(out + half + i, S::fma(a, sv, S::mul(b, cv)), c);
                    });
                } else {
                    // Adjacent pairs: the facade has no lane swizzle, so this is scalar code
                    // (GCC vectorises it with permutes at -O3).
                    for (std::size_t i = 0; i < half; ++i) {
                        const float a = static_cast<float>(in[2 * i]), b = static_cast<float>(in[2 * i + 1]);
                        out[2 * i] = TY(a * cos_v[i] - b * sin_v[i]);
                        out[2 * i + 1] = TY(b * cos_v[i] + a * sin_v[i]);
                    }
                }
            }
        }
    });
}

}  // namespace detail

/// y = RoPE(x): pair (a, b) of each head at token t is rotated by angle
/// positions[t] * inv_freq_i, inv_freq_i = scaling(theta^(-2i / head_dim)).
/// Shapes: x, y [tokens, heads, head_dim] (head_dim even, last dimension contiguous; y may
/// alias x); positions [tokens] (any integer type: absolute positions, so a KV-cache decode
/// step passes its offset).
/// Style: rope_rotate_half (Llama / Hugging Face, default) or rope_interleaved (GPT-J).
/// Scaling: rope_scaling::none, ::linear, ::llama3 (through rope_params).
/// Example: `llm::nn::rope_forward(q, pos, q, llm::nn::rope_params<>{.theta = 500000.0});`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, class X, class P, class Y,
          class Scaling = rope_scaling::none, class Exec = parallel::thread_pool>
void rope_forward(X&& x, P&& positions, Y&& y, const rope_params<Scaling>& params = {}, Exec& exec = parallel::default_pool()) {
    detail::rope_apply<S, Style>("rope_forward", x, positions, y, params, 1.0f, exec);
}

/// Backward of rope_forward: the rotation is orthogonal, so dx = rotation by -angle of dy.
/// Shapes as rope_forward (dx may alias dy). Example: `llm::nn::rope_backward(dq, pos, dq);`
template <rope_style Style = rope_rotate_half, simd::backend S = simd::default_backend, class DY, class P, class DX,
          class Scaling = rope_scaling::none, class Exec = parallel::thread_pool>
void rope_backward(DY&& dy, P&& positions, DX&& dx, const rope_params<Scaling>& params = {}, Exec& exec = parallel::default_pool()) {
    detail::rope_apply<S, Style>("rope_backward", dy, positions, dx, params, -1.0f, exec);
}

}  // namespace llm::nn
