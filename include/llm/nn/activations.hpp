// SPDX-License-Identifier: Apache-2.0
// Element-wise activations SiLU, GELU (erf and tanh forms), ReLU and SwiGLU, forward and backward, vectorised and threaded over rows.
#pragma once

#include <llm/nn/detail/elementwise.hpp>
#include <llm/nn/detail/rows.hpp>
#include <llm/simd/math.hpp>

#include <concepts>
#include <cstddef>

namespace llm::nn {

/// An element-wise activation form, an open policy: any type with static member templates
/// `value<S>(x)` and `derivative<S>(x)` mapping a SIMD vector of fp32 lanes (`S::f32` of the
/// llm::simd backend S) to f(x) and f'(x) lane by lane. activation_forward /
/// activation_backward (and the gelu kernels) call exactly these two members, so a form
/// written outside llm:: (a quick GELU, a squared ReLU) works like the built-in ones.
/// Built-in models: gelu_erf, gelu_tanh, silu, relu, identity (each also an epilogue of
/// llm::nn::linear_forward, applied as the GEMM stores y).
/// Example: `static_assert(llm::nn::activation_form<llm::nn::gelu_tanh, llm::simd::scalar>);`
template <class F, class S = simd::default_backend>
concept activation_form = simd::backend<S> && requires(typename S::f32 x) {
    { F::template value<S>(x) } -> std::same_as<typename S::f32>;
    { F::template derivative<S>(x) } -> std::same_as<typename S::f32>;
};

/// GELU, exact erf form: x * Phi(x) (PyTorch's default, BERT). An activation_form.
struct gelu_erf {
    /// gelu(x) = x * Phi(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 value(typename S::f32 x) {
        const auto half = S::set1(0.5f);
        const auto cdf = S::fma(half, simd::erf<S>(S::mul(x, S::set1(0.7071067811865476f))), half);
        return S::mul(x, cdf);
    }
    /// d gelu / dx = Phi(x) + x * phi(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 derivative(typename S::f32 x) {
        const auto half = S::set1(0.5f);
        const auto cdf = S::fma(half, simd::erf<S>(S::mul(x, S::set1(0.7071067811865476f))), half);
        // pdf = exp(-x^2 / 2) / sqrt(2 pi)
        const auto pdf = S::mul(S::set1(0.3989422804014327f), S::exp(S::mul(S::set1(-0.5f), S::mul(x, x))));
        return S::fma(x, pdf, cdf);
    }
};
/// GELU, tanh approximation: 0.5 x (1 + tanh(k (x + a x^3))) (GPT-2, PyTorch approximate="tanh").
/// An activation_form.
struct gelu_tanh {
    static constexpr float k = 0.7978845608028654f;  ///< sqrt(2 / pi).
    static constexpr float a = 0.044715f;            ///< Coefficient of the cubic term.
    /// The tanh-approximated gelu(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 value(typename S::f32 x) {
        const auto u = S::mul(S::set1(k), S::fma(S::mul(S::set1(a), x), S::mul(x, x), x));
        const auto half = S::set1(0.5f);
        return S::mul(S::mul(half, x), S::add(S::set1(1.0f), simd::tanh<S>(u)));
    }
    /// The exact derivative of the tanh approximation, lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 derivative(typename S::f32 x) {
        const auto x2 = S::mul(x, x);
        const auto u = S::mul(S::set1(k), S::fma(S::mul(S::set1(a), x), x2, x));
        const auto t = simd::tanh<S>(u);
        const auto half = S::set1(0.5f), one = S::set1(1.0f);
        const auto du = S::mul(S::set1(k), S::fma(S::set1(3.0f * a), x2, one));  // du/dx
        // 0.5 (1 + t) + 0.5 x (1 - t^2) du
        return S::fma(S::mul(half, x), S::mul(S::sub(one, S::mul(t, t)), du), S::mul(half, S::add(one, t)));
    }
};
static_assert(activation_form<gelu_erf> && activation_form<gelu_tanh>);

/// SiLU as an activation form: silu(x) = x sigmoid(x) (Llama's gate, PyTorch's nn.SiLU),
/// silu'(x) = s (1 + x (1 - s)) with s = sigmoid(x). silu_forward / silu_backward run it
/// through the shared activation kernels.
/// Example: `llm::nn::linear_forward(h, x, w, llm::nn::silu{}, ws, pool);  // h = silu(x w^T)`
struct silu {
    /// silu(x) = x sigmoid(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 value(typename S::f32 x) {
        return S::mul(x, simd::sigmoid<S>(x));
    }
    /// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 derivative(typename S::f32 x) {
        const auto s = simd::sigmoid<S>(x);
        const auto one = S::set1(1.0f);
        return S::mul(s, S::fma(x, S::sub(one, s), one));
    }
};
/// ReLU as an activation form: max(0, x); relu'(x) = 1 for x > 0, else 0 (torch.relu's
/// backward, 0 at x = 0). A NaN stays NaN on x86 and the scalar backend (S::max returns
/// its second operand, x, when one is NaN); -0 gives -0.
/// Example: `llm::nn::activation_forward<llm::nn::relu>(h, h, pool);`
struct relu {
    /// max(0, x), lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 value(typename S::f32 x) {
        return S::max(S::zero(), x);
    }
    /// 1 where x > 0, else 0, lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 derivative(typename S::f32 x) {
        return S::select_lt(S::zero(), x, S::set1(1.0f), S::zero());
    }
};
/// The identity as an activation form: f(x) = x, f'(x) = 1. With llm::nn::linear_forward it
/// is the plain linear layer (the same call, the same bits).
/// Example: `llm::nn::linear_forward(y, x, w, b, llm::nn::identity{}, ws, pool);  // y = x w^T + b`
struct identity {
    /// x, lane by lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 value(typename S::f32 x) {
        return x;
    }
    /// 1 in every lane.
    template <simd::backend S>
    static LLM_FORCE_INLINE typename S::f32 derivative(typename S::f32) {
        return S::set1(1.0f);
    }
};
static_assert(activation_form<silu> && activation_form<relu> && activation_form<identity>);

namespace detail {

/// The SiLU form under its earlier internal name.
using silu_form = silu;

/// y = Form::value(x) element-wise: the one forward kernel of activation_forward, silu_forward
/// and gelu_forward (fn names the public call in errors).
template <class Form, simd::backend S, class Y, class X, class Exec>
void activation_forward(const char* fn, Y&& y, X&& x, Exec& exec) {
    elementwise<S>(fn, exec, [](auto v) { return Form::template value<S>(v); }, rows_of(fn, "y", y), rows_of(fn, "x", x));
}

/// dx += dy * Form::derivative(x) element-wise: the one backward kernel of the activations.
template <class Form, simd::backend S, class DX, class DY, class X, class Exec>
void activation_backward(const char* fn, DX&& dx, DY&& dy, X&& x, Exec& exec) {
    const auto dxr = rows_of(fn, "dx", dx);
    elementwise<S>(
        fn, exec, [](auto o, auto d, auto v) { return S::add(o, S::mul(d, Form::template derivative<S>(v))); }, dxr, dxr,
        rows_of(fn, "dy", dy), rows_of(fn, "x", x));
}

}  // namespace detail

/// y = f(x) element-wise, f = Form::value (any activation_form).
/// Shapes: y, x [rows, cols] (> 0, rows contiguous); y may alias x. Elements: fp32 or bf16.
/// S: SIMD backend. exec: an llm::parallel::policy (sequential{} or a thread_pool).
/// Example: `llm::nn::activation_forward<llm::nn::gelu_tanh>(h, h, llm::parallel::sequential{});`
template <class Form, simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
    requires activation_form<Form, S>
void activation_forward(Y&& y, X&& x, parallel::policy auto&& exec) {
    detail::activation_forward<Form, S>("activation_forward", y, x, exec);
}

/// activation_forward on llm::parallel::default_pool().
/// Example: `llm::nn::activation_forward<llm::nn::gelu_tanh>(h, h);`
template <class Form, simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
    requires activation_form<Form, S>
void activation_forward(Y&& y, X&& x) {
    activation_forward<Form, S>(y, x, parallel::default_pool());
}

/// dx += dy * f'(x) element-wise, f' = Form::derivative (accumulated, docs/conventions.md).
/// Shapes: dx, dy, x [rows, cols]; dx must not alias dy or x.
/// Example: `llm::nn::activation_backward<llm::nn::gelu_tanh>(dh, dy, h, pool);`
template <class Form, simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> DY, dense_view<2> X>
    requires activation_form<Form, S>
void activation_backward(DX&& dx, DY&& dy, X&& x, parallel::policy auto&& exec) {
    detail::activation_backward<Form, S>("activation_backward", dx, dy, x, exec);
}

/// activation_backward on llm::parallel::default_pool().
/// Example: `llm::nn::activation_backward<llm::nn::gelu_tanh>(dh, dy, h);`
template <class Form, simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> DY, dense_view<2> X>
    requires activation_form<Form, S>
void activation_backward(DX&& dx, DY&& dy, X&& x) {
    activation_backward<Form, S>(dx, dy, x, parallel::default_pool());
}

/// y = x * sigmoid(x). Shapes: y, x [rows, cols] (> 0, rows contiguous); y may alias x.
/// Elements: fp32 or bf16. S: SIMD backend. exec: an llm::parallel::policy.
/// Example: `llm::nn::silu_forward(h, h, llm::parallel::sequential{});`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
void silu_forward(Y&& y, X&& x, parallel::policy auto&& exec) {
    detail::activation_forward<detail::silu_form, S>("silu_forward", y, x, exec);
}

/// silu_forward on llm::parallel::default_pool(). Example: `llm::nn::silu_forward(h, h);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
void silu_forward(Y&& y, X&& x) {
    silu_forward<S>(y, x, parallel::default_pool());
}

/// dx += dy * silu'(x) (accumulated). Shapes: dx, dy, x [rows, cols]; dx must not alias dy or x.
/// Example: `llm::nn::silu_backward(dh, dy, h, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> DY, dense_view<2> X>
void silu_backward(DX&& dx, DY&& dy, X&& x, parallel::policy auto&& exec) {
    detail::activation_backward<detail::silu_form, S>("silu_backward", dx, dy, x, exec);
}

/// silu_backward on llm::parallel::default_pool(). Example: `llm::nn::silu_backward(dh, dy, h);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> DY, dense_view<2> X>
void silu_backward(DX&& dx, DY&& dy, X&& x) {
    silu_backward<S>(dx, dy, x, parallel::default_pool());
}

/// y = gelu(x): activation_forward with Form gelu_erf (default) or gelu_tanh (any
/// activation_form is accepted). Shapes as silu_forward.
/// Example: `llm::nn::gelu_forward<llm::nn::gelu_tanh>(h, h, pool);`
template <class Form = gelu_erf, simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
    requires activation_form<Form, S>
void gelu_forward(Y&& y, X&& x, parallel::policy auto&& exec) {
    detail::activation_forward<Form, S>("gelu_forward", y, x, exec);
}

/// gelu_forward on llm::parallel::default_pool(). Example: `llm::nn::gelu_forward(h, h);`
template <class Form = gelu_erf, simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> X>
    requires activation_form<Form, S>
void gelu_forward(Y&& y, X&& x) {
    gelu_forward<Form, S>(y, x, parallel::default_pool());
}

/// dx += dy * gelu'(x) (accumulated). Shapes as silu_backward.
/// Example: `llm::nn::gelu_backward<llm::nn::gelu_tanh>(dh, dy, h, pool);`
template <class Form = gelu_erf, simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> DY,
          dense_view<2> X>
    requires activation_form<Form, S>
void gelu_backward(DX&& dx, DY&& dy, X&& x, parallel::policy auto&& exec) {
    detail::activation_backward<Form, S>("gelu_backward", dx, dy, x, exec);
}

/// gelu_backward on llm::parallel::default_pool(). Example: `llm::nn::gelu_backward(dh, dy, h);`
template <class Form = gelu_erf, simd::backend S = simd::default_backend, mutable_dense_view<2> DX, dense_view<2> DY,
          dense_view<2> X>
    requires activation_form<Form, S>
void gelu_backward(DX&& dx, DY&& dy, X&& x) {
    gelu_backward<Form, S>(dx, dy, x, parallel::default_pool());
}

/// y = silu(gate) * up (the Llama FFN's gating). Shapes: y, gate, up [rows, cols]; y may
/// alias gate or up. Example: `llm::nn::swiglu_forward(h, gate, up, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> G, dense_view<2> U>
void swiglu_forward(Y&& y, G&& gate, U&& up, parallel::policy auto&& exec) {
    constexpr const char* fn = "swiglu_forward";
    detail::elementwise<S>(
        fn, exec, [](auto g, auto u) { return S::mul(detail::silu_form::value<S>(g), u); }, detail::rows_of(fn, "y", y),
        detail::rows_of(fn, "gate", gate), detail::rows_of(fn, "up", up));
}

/// swiglu_forward on llm::parallel::default_pool(). Example: `llm::nn::swiglu_forward(h, gate, up);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, dense_view<2> G, dense_view<2> U>
void swiglu_forward(Y&& y, G&& gate, U&& up) {
    swiglu_forward<S>(y, gate, up, parallel::default_pool());
}

/// dgate += dy * up * silu'(gate), dup += dy * silu(gate) (accumulated). Shapes: all
/// [rows, cols]; dgate and dup must not alias each other or the inputs.
/// Example: `llm::nn::swiglu_backward(dgate, dup, dh, gate, up, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DG, mutable_dense_view<2> DU, dense_view<2> DY,
          dense_view<2> G, dense_view<2> U>
void swiglu_backward(DG&& dgate, DU&& dup, DY&& dy, G&& gate, U&& up, parallel::policy auto&& exec) {
    constexpr const char* fn = "swiglu_backward";
    const auto g = detail::rows_of(fn, "gate", gate);
    const auto u = detail::rows_of(fn, "up", up);
    const auto d = detail::rows_of(fn, "dy", dy);
    const auto dg = detail::rows_of(fn, "dgate", dgate);
    const auto du = detail::rows_of(fn, "dup", dup);
    using silu = detail::silu_form;
    detail::elementwise<S>(
        fn, exec,
        [](auto o, auto gv, auto uv, auto dv) { return S::add(o, S::mul(dv, S::mul(uv, silu::derivative<S>(gv)))); }, dg,
        dg, g, u, d);
    detail::elementwise<S>(fn, exec, [](auto o, auto gv, auto dv) { return S::add(o, S::mul(dv, silu::value<S>(gv))); },
                           du, du, g, d);
}

/// swiglu_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(dgate, dup); llm::nn::swiglu_backward(dgate, dup, dh, gate, up);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> DG, mutable_dense_view<2> DU, dense_view<2> DY,
          dense_view<2> G, dense_view<2> U>
void swiglu_backward(DG&& dgate, DU&& dup, DY&& dy, G&& gate, U&& up) {
    swiglu_backward<S>(dgate, dup, dy, gate, up, parallel::default_pool());
}

}  // namespace llm::nn
