// SPDX-License-Identifier: Apache-2.0
// Element-wise activations SiLU, GELU (erf and tanh forms) and SwiGLU, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/nn/detail/elementwise.hpp>
#include <llm/nn/detail/rows.hpp>
#include <llm/nn/detail/vmath.hpp>

#include <concepts>
#include <cstddef>

namespace llm::nn {

/// GELU forms, as policy types with the value and the derivative on SIMD vectors.
/// gelu_erf: the exact x * Phi(x) (PyTorch's default, BERT). gelu_tanh (below): the tanh
/// approximation (GPT-2, PyTorch approximate="tanh").
struct gelu_erf {
    /// gelu(x) = x * Phi(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 value(typename S::f32 x) {
        const auto half = S::set1(0.5f);
        const auto cdf = S::fma(half, detail::erf<S>(S::mul(x, S::set1(0.7071067811865476f))), half);
        return S::mul(x, cdf);
    }
    /// d gelu / dx = Phi(x) + x * phi(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 derivative(typename S::f32 x) {
        const auto half = S::set1(0.5f);
        const auto cdf = S::fma(half, detail::erf<S>(S::mul(x, S::set1(0.7071067811865476f))), half);
        // pdf = exp(-x^2 / 2) / sqrt(2 pi)
        const auto pdf = S::mul(S::set1(0.3989422804014327f), S::exp(S::mul(S::set1(-0.5f), S::mul(x, x))));
        return S::fma(x, pdf, cdf);
    }
};
/// GELU, tanh approximation: 0.5 x (1 + tanh(k (x + a x^3))) (GPT-2, PyTorch approximate="tanh").
struct gelu_tanh {
    static constexpr float k = 0.7978845608028654f;  ///< sqrt(2 / pi).
    static constexpr float a = 0.044715f;            ///< Coefficient of the cubic term.
    /// The tanh-approximated gelu(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 value(typename S::f32 x) {
        const auto u = S::mul(S::set1(k), S::fma(S::mul(S::set1(a), x), S::mul(x, x), x));
        const auto half = S::set1(0.5f);
        return S::mul(S::mul(half, x), S::add(S::set1(1.0f), detail::tanh<S>(u)));
    }
    /// The exact derivative of the tanh approximation, lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 derivative(typename S::f32 x) {
        const auto x2 = S::mul(x, x);
        const auto u = S::mul(S::set1(k), S::fma(S::mul(S::set1(a), x), x2, x));
        const auto t = detail::tanh<S>(u);
        const auto half = S::set1(0.5f), one = S::set1(1.0f);
        const auto du = S::mul(S::set1(k), S::fma(S::set1(3.0f * a), x2, one));  // du/dx
        // 0.5 (1 + t) + 0.5 x (1 - t^2) du
        return S::fma(S::mul(half, x), S::mul(S::sub(one, S::mul(t, t)), du), S::mul(half, S::add(one, t)));
    }
};
template <class G>
concept gelu_form = std::same_as<G, gelu_erf> || std::same_as<G, gelu_tanh>;

namespace detail {

template <simd::backend S>
LLM_FORCE_INLINE typename S::f32 silu_value(typename S::f32 x) {
    return S::mul(x, sigmoid<S>(x));
}
/// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x)
template <simd::backend S>
LLM_FORCE_INLINE typename S::f32 silu_derivative(typename S::f32 x) {
    const auto s = sigmoid<S>(x);
    const auto one = S::set1(1.0f);
    return S::mul(s, S::fma(x, S::sub(one, s), one));
}

}  // namespace detail

/// y = x * sigmoid(x). Shapes: x, y [rows, cols] (> 0, rows contiguous); y may alias x.
/// Elements: fp32 or bf16. S: SIMD backend. Exec: sequential or a thread_pool.
/// Example: `llm::nn::silu_forward(h, h);`
template <simd::backend S = simd::default_backend, class X, class Y, class Exec = parallel::thread_pool>
void silu_forward(X&& x, Y&& y, Exec& exec = parallel::default_pool()) {
    detail::elementwise<S>("silu_forward", exec, [](auto v) { return detail::silu_value<S>(v); },
                           detail::as_rows("silu_forward", "y", y), detail::as_rows("silu_forward", "x", x));
}

/// dx = dy * silu'(x). Shapes: x, dy, dx [rows, cols]; dx may alias dy.
/// Example: `llm::nn::silu_backward(h, dy, dh);`
template <simd::backend S = simd::default_backend, class X, class DY, class DX, class Exec = parallel::thread_pool>
void silu_backward(X&& x, DY&& dy, DX&& dx, Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "silu_backward";
    detail::elementwise<S>(
        fn, exec, [](auto v, auto d) { return S::mul(d, detail::silu_derivative<S>(v)); }, detail::as_rows(fn, "dx", dx),
        detail::as_rows(fn, "x", x), detail::as_rows(fn, "dy", dy));
}

/// y = gelu(x). Form: gelu_erf (default) or gelu_tanh. Shapes as silu_forward.
/// Example: `llm::nn::gelu_forward<llm::nn::gelu_tanh>(h, h);`
template <gelu_form Form = gelu_erf, simd::backend S = simd::default_backend, class X, class Y, class Exec = parallel::thread_pool>
void gelu_forward(X&& x, Y&& y, Exec& exec = parallel::default_pool()) {
    detail::elementwise<S>("gelu_forward", exec, [](auto v) { return Form::template value<S>(v); },
                           detail::as_rows("gelu_forward", "y", y), detail::as_rows("gelu_forward", "x", x));
}

/// dx = dy * gelu'(x). Shapes as silu_backward. Example: `llm::nn::gelu_backward(h, dy, dh);`
template <gelu_form Form = gelu_erf, simd::backend S = simd::default_backend, class X, class DY, class DX,
          class Exec = parallel::thread_pool>
void gelu_backward(X&& x, DY&& dy, DX&& dx, Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "gelu_backward";
    detail::elementwise<S>(
        fn, exec, [](auto v, auto d) { return S::mul(d, Form::template derivative<S>(v)); }, detail::as_rows(fn, "dx", dx),
        detail::as_rows(fn, "x", x), detail::as_rows(fn, "dy", dy));
}

/// y = silu(gate) * up (the Llama FFN's gating). Shapes: gate, up, y [rows, cols]; y may
/// alias gate or up. Example: `llm::nn::swiglu_forward(gate, up, h);`
template <simd::backend S = simd::default_backend, class G, class U, class Y, class Exec = parallel::thread_pool>
void swiglu_forward(G&& gate, U&& up, Y&& y, Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "swiglu_forward";
    detail::elementwise<S>(
        fn, exec, [](auto g, auto u) { return S::mul(detail::silu_value<S>(g), u); }, detail::as_rows(fn, "y", y),
        detail::as_rows(fn, "gate", gate), detail::as_rows(fn, "up", up));
}

/// dgate = dy * up * silu'(gate), dup = dy * silu(gate). Shapes: all [rows, cols]; dgate and
/// dup must not alias the inputs (both are computed from gate and up).
/// Example: `llm::nn::swiglu_backward(gate, up, dh, dgate, dup);`
template <simd::backend S = simd::default_backend, class G, class U, class DY, class DG, class DU,
          class Exec = parallel::thread_pool>
void swiglu_backward(G&& gate, U&& up, DY&& dy, DG&& dgate, DU&& dup, Exec& exec = parallel::default_pool()) {
    constexpr const char* fn = "swiglu_backward";
    const auto g = detail::as_rows(fn, "gate", gate);
    const auto u = detail::as_rows(fn, "up", up);
    const auto d = detail::as_rows(fn, "dy", dy);
    detail::elementwise<S>(
        fn, exec, [](auto gv, auto uv, auto dv) { return S::mul(dv, S::mul(uv, detail::silu_derivative<S>(gv))); },
        detail::as_rows(fn, "dgate", dgate), g, u, d);
    detail::elementwise<S>(
        fn, exec, [](auto gv, auto dv) { return S::mul(dv, detail::silu_value<S>(gv)); }, detail::as_rows(fn, "dup", dup), g, d);
}

}  // namespace llm::nn
