// SPDX-License-Identifier: Apache-2.0
// Linear layer y = act(x W^T + b) (PyTorch nn.Linear layout, W [out, in]) on llm::gemm, bias and activation in the GEMM's store; accumulating backward.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/gemm/matrix.hpp>
#include <llm/nn/activations.hpp>
#include <llm/nn/detail/rows.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm::nn {
namespace detail::linear {

/// The absent bias of the overloads without one.
struct no_bias {};

template <class T>
LLM_FORCE_INLINE float widen(T v) {
    return static_cast<float>(v);
}

/// Writes an fp32 value to an fp32 or bf16 element (bf16: round to nearest even).
template <class T>
LLM_FORCE_INLINE void store(T& out, float v) {
    out = T(v);
}

/// Rows per parallel_for chunk for element-wise passes over a rows x cols matrix: about 16 K
/// elements a chunk, a few microseconds, well above the hand-off cost.
inline std::size_t row_grain(std::size_t cols) { return std::max<std::size_t>(1, 16384 / std::max<std::size_t>(cols, 1)); }

/// y[i, :] = b (fp32 out), or 0 when there is no bias.
template <class B, class Exec>
void fill_rows(strided_view<float, 2> y, const B& bias, Exec& exec) {
    parallel::parallel_for(exec, y.extent(0), row_grain(y.extent(1)), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t i = r0; i < r1; ++i) {
            for (std::size_t j = 0; j < y.extent(1); ++j) {
                if constexpr (std::is_same_v<B, no_bias>) {
                    y(i, j) = 0.0f;
                } else {
                    y(i, j) = widen(bias(j));
                }
            }
        }
    });
}

/// Shapes of a linear layer: x [tokens, in], weight [out, in], y [tokens, out], bias [out].
template <class TX, class TW>
void check_layer(const char* fn, const char* x_name, const strided_view<TX, 2>& x, const strided_view<TW, 2>& w) {
    llm::check(x.extent(1) == w.extent(1), fn, ": ", x_name, " is [", x.extent(0), ", ", x.extent(1), "] but weight is [",
               w.extent(0), ", ", w.extent(1), "]; ", x_name, " columns (in features) must equal weight columns");
}

template <class T>
void check_shape(const char* fn, const char* name, const strided_view<T, 2>& m, std::size_t rows, std::size_t cols,
                 const char* expected) {
    llm::check(m.extent(0) == rows && m.extent(1) == cols, fn, ": ", name, " is [", m.extent(0), ", ", m.extent(1),
               "] but must be [", rows, ", ", cols, "] (", expected, ")");
}

template <class T>
void check_bias(const char* fn, const char* name, const strided_view<T, 1>& b, std::size_t out) {
    llm::check(b.extent(0) == out, fn, ": ", name, " has ", b.extent(0), " elements but weight has ", out,
               " rows (out features)");
}

/// llm::error when `out` (written) shares an element with `in` (read): the layer would read
/// values it has already overwritten.
template <class TO, class TI>
void check_disjoint(const char* fn, const char* out_name, const strided_view<TO, 2>& out, const char* in_name,
                    const strided_view<TI, 2>& in) {
    llm::check(!blas::detail::overlaps(out, in), fn, ": ", out_name, " shares memory with ", in_name,
               "; an output must not overlap an input");
}

template <class B>
constexpr bool has_bias = !std::is_same_v<B, no_bias>;

/// A dense row-major rows x cols fp32 matrix taken from the workspace (inside the caller's frame).
inline strided_view<float, 2> fp32_buffer(workspace& ws, std::size_t rows, std::size_t cols, const char* fn,
                                          const char* what) {
    float* buf = ws.take<float>(checked_mul(rows, cols, fn, what), fn, what);
    return {buf, dims<2>(rows, cols), dims<2>(cols, 1)};
}

/// The store epilogue of the forward (llm::gemm_epilogue): adds the bias to each row stretch
/// of the fp32 product as the GEMM stores it, and writes the result to y: in place when y is
/// the fp32 product itself, rounded to bf16 otherwise (y any strides).
template <class B, class TY>
struct bias_store {
    B bias;                    ///< The bias view, or no_bias.
    strided_view<TY, 2> y;     ///< The output (unused for an fp32 y computed in place).
    void operator()(std::size_t i, std::size_t j, float* p, std::size_t n) const {
        using S = simd::default_backend;
        constexpr std::size_t W = S::width;
        std::size_t t = 0;
        if constexpr (has_bias<B>) {
            if (bias.stride(0) == 1) {
                const auto* bp = bias.ptr(j);
                for (; t + W <= n; t += W) {
                    const auto v = S::add(S::loadu(p + t), blas::detail::load_any<S>(bp + t));
                    if constexpr (std::is_same_v<TY, float>) {
                        S::storeu(p + t, v);
                    } else if (y.stride(1) == 1) {
                        S::store_bf16(y.ptr(i, j + t), v);
                    } else {
                        S::storeu(p + t, v);
                        for (std::size_t u = 0; u < W; ++u) {
                            store(y(i, j + t + u), p[t + u]);
                        }
                    }
                }
            }
            for (; t < n; ++t) {
                const float v = p[t] + widen(bias(j + t));
                if constexpr (std::is_same_v<TY, float>) {
                    p[t] = v;
                } else {
                    store(y(i, j + t), v);
                }
            }
        } else if constexpr (!std::is_same_v<TY, float>) {
            if (y.stride(1) == 1) {
                for (; t + W <= n; t += W) {
                    S::store_bf16(y.ptr(i, j + t), S::loadu(p + t));
                }
            }
            for (; t < n; ++t) {
                store(y(i, j + t), p[t]);
            }
        }
    }
};

/// The forward's shape checks: x [tokens, in] against W [out, in], y [tokens, out], the bias [out].
template <class MY, class MX, class MW, class B>
void check_forward(const char* fn, const MY& my, const MX& mx, const MW& mw, const B& bias) {
    check_layer(fn, "x", mx, mw);
    check_shape(fn, "y", my, mx.extent(0), mw.extent(0), "tokens of x, out features = weight rows");
    if constexpr (has_bias<B>) {
        check_bias(fn, "bias", bias, mw.extent(0));
    }
}

template <class Y, class X, class W, class B, class Exec>
void forward(Y&& y, X&& x, W&& weight, const B& bias, workspace& ws, Exec& exec) {
    constexpr const char* fn = "linear_forward";
    const auto my = to_kernel_view<2>(y);
    const auto mx = to_kernel_view<2>(x);
    const auto mw = to_kernel_view<2>(weight);
    check_forward(fn, my, mx, mw, bias);
    using TY = view_element_t<Y>;
    const auto wt = mw.template transposed<0, 1>();  // W^T [in, out]: a stride swap, no copy
    if constexpr (std::is_same_v<TY, float>) {
        if constexpr (has_bias<B>) {
            check_disjoint(fn, "y", my, "x", mx);
            check_disjoint(fn, "y", my, "weight", mw);
            if (my.stride(1) == 1 || my.extent(1) <= 1) {
                // The bias is added as the GEMM stores each tile of y (gemm_epilogue): no
                // pass over y before or after the product.
                llm::gemm_epilogue(my, mx, wt, bias_store<B, float>{bias, my}, ws, exec);
            } else {
                // A y with strided rows: the bias goes in first, the product is added on top.
                fill_rows(my, bias, exec);
                llm::gemm(my, mx, wt, 1.0f, 1.0f, ws, exec);
            }
        } else {
            llm::gemm(my, mx, wt, 1.0f, 0.0f, ws, exec);
        }
    } else {
        // bf16 y: the product is computed in fp32 in the workspace (it is accumulated over the
        // KC steps there) and the last step's store adds the bias and rounds to y once, while
        // each tile is in L1 (gemm_epilogue): no pass over the buffer after the product.
        check_disjoint(fn, "y", my, "x", mx);
        check_disjoint(fn, "y", my, "weight", mw);
        const workspace::frame frame(ws);
        const auto acc = fp32_buffer(ws, my.extent(0), my.extent(1), fn, "the fp32 output buffer (tokens * out)");
        llm::gemm_epilogue(acc, mx, wt, bias_store<B, TY>{bias, my}, ws, exec);
    }
}

/// The store epilogue of the activated forward (llm::gemm_epilogue): on each row stretch of
/// the fp32 product, v = Form::value(p + bias) on vectors of the default SIMD backend (the
/// last one partial, as activation_forward's loop over a row), written to y: in place when y
/// is the fp32 product itself, else through y's strides (rounded once for bf16). Every lane
/// is computed as activation_forward computes it, so the bits are those of the product, the
/// bias add of bias_store, and the activation kernel.
/// Never inlined: the GEMM's macro-kernel (one instantiation per epilogue, used at every step
/// over k) stayed as lean as with bias_store only while a call, not the activation's
/// polynomials, sat in it; with silu inlined, 512 x 4096 x 11008 on 1 thread ran 4% slower
/// (30 ms, at every step over k, not only the last) than linear_forward plus a separate pass.
template <class Form, class B, class TY>
struct activation_store {
    B bias;                  ///< The bias view, or no_bias.
    strided_view<TY, 2> y;   ///< The output.
    bool in_place = false;   ///< y is the fp32 product itself (p points into y).
    LLM_GEMM_NOINLINE void operator()(std::size_t i, std::size_t j, float* p, std::size_t n) const {
        using S = simd::default_backend;
        constexpr std::size_t W = S::width;
        for (std::size_t t = 0; t < n; t += W) {
            const std::size_t c = std::min(W, n - t);
            auto v = nn::detail::load<S>(p + t, c);
            if constexpr (has_bias<B>) {
                if (bias.stride(0) == 1) {
                    v = S::add(v, nn::detail::load<S>(bias.ptr(j + t), c));
                } else {
                    alignas(64) float lanes[W] = {};
                    for (std::size_t u = 0; u < c; ++u) {
                        lanes[u] = widen(bias(j + t + u));
                    }
                    v = S::add(v, S::loadu(lanes));
                }
            }
            v = Form::template value<S>(v);
            if constexpr (std::is_same_v<TY, float>) {
                if (in_place) {
                    nn::detail::store<S>(p + t, v, c);
                    continue;
                }
            }
            if (y.stride(1) == 1) {
                nn::detail::store<S>(y.ptr(i, j + t), v, c);
            } else {
                alignas(64) float lanes[W];
                S::storeu(lanes, v);
                for (std::size_t u = 0; u < c; ++u) {
                    store(y(i, j + t + u), lanes[u]);
                }
            }
        }
    }
};

/// y = Form(x W^T + b): the activation applied in the GEMM's store (activation_store); an
/// fp32 y with contiguous rows is computed in place, any other y (bf16, or fp32 with strided
/// rows) from an fp32 buffer of tokens x out floats in the workspace. The identity is the
/// plain forward (the same call, the same bits).
template <class Form, class Y, class X, class W, class B, class Exec>
void forward_activated(Y&& y, X&& x, W&& weight, const B& bias, workspace& ws, Exec& exec) {
    if constexpr (std::is_same_v<Form, identity>) {
        forward(y, x, weight, bias, ws, exec);
    } else {
        constexpr const char* fn = "linear_forward";
        const auto my = to_kernel_view<2>(y);
        const auto mx = to_kernel_view<2>(x);
        const auto mw = to_kernel_view<2>(weight);
        check_forward(fn, my, mx, mw, bias);
        check_disjoint(fn, "y", my, "x", mx);
        check_disjoint(fn, "y", my, "weight", mw);
        using TY = view_element_t<Y>;
        const auto wt = mw.template transposed<0, 1>();  // W^T [in, out]: a stride swap, no copy
        if constexpr (std::is_same_v<TY, float>) {
            if (my.stride(1) == 1 || my.extent(1) <= 1) {
                llm::gemm_epilogue(my, mx, wt, activation_store<Form, B, float>{bias, my, true}, ws, exec);
                return;
            }
        }
        const workspace::frame frame(ws);
        const auto acc = fp32_buffer(ws, my.extent(0), my.extent(1), fn, "the fp32 output buffer (tokens * out)");
        llm::gemm_epilogue(acc, mx, wt, activation_store<Form, B, TY>{bias, my, false}, ws, exec);
    }
}

/// dbias[j] += sum over tokens of dy[t, j]: columns split into chunks, each summed over all
/// rows in fixed row order (fp32, one accumulator per column), so the result does not depend
/// on the thread count.
template <class TDY, class Exec>
void bias_grad(strided_view<float, 1> db, const strided_view<TDY, 2>& dy, Exec& exec) {
    constexpr std::size_t chunk = 256;
    parallel::parallel_for(exec, dy.extent(1), chunk, [&](std::size_t j0, std::size_t j1) {
        float acc[chunk] = {};
        const std::size_t n = j1 - j0;
        for (std::size_t t = 0; t < dy.extent(0); ++t) {
            for (std::size_t j = 0; j < n; ++j) {
                acc[j] += widen(dy(t, j0 + j));
            }
        }
        for (std::size_t j = 0; j < n; ++j) {
            db(j0 + j) += acc[j];
        }
    });
}

template <class DX, class DW, class DB, class DY, class X, class W, class Exec>
void backward(DX&& dx, DW&& dweight, const DB& dbias, DY&& dy, X&& x, W&& weight, workspace& ws, Exec& exec) {
    constexpr const char* fn = "linear_backward";
    const auto mdx = to_kernel_view<2>(dx);
    const auto mdw = to_kernel_view<2>(dweight);
    const auto mdy = to_kernel_view<2>(dy);
    const auto mx = to_kernel_view<2>(x);
    const auto mw = to_kernel_view<2>(weight);
    check_layer(fn, "x", mx, mw);
    check_shape(fn, "dy", mdy, mx.extent(0), mw.extent(0), "tokens of x, out features = weight rows");
    check_shape(fn, "dx", mdx, mx.extent(0), mx.extent(1), "the shape of x");
    check_shape(fn, "dweight", mdw, mw.extent(0), mw.extent(1), "the shape of weight");
    if constexpr (has_bias<DB>) {
        check_bias(fn, "dbias", dbias, mw.extent(0));
    }
    // dweight += dy^T x: [out, tokens] x [tokens, in].
    llm::gemm(mdw, mdy.template transposed<0, 1>(), mx, 1.0f, 1.0f, ws, exec);
    // dx += dy W: [tokens, out] x [out, in].
    using TDX = view_element_t<DX>;
    if constexpr (std::is_same_v<TDX, float>) {
        llm::gemm(mdx, mdy, mw, 1.0f, 1.0f, ws, exec);
    } else {
        // bf16 dx: widened into an fp32 buffer, accumulated there, rounded back once.
        check_disjoint(fn, "dx", mdx, "dy", mdy);
        check_disjoint(fn, "dx", mdx, "weight", mw);
        const workspace::frame frame(ws);
        const auto acc = fp32_buffer(ws, mdx.extent(0), mdx.extent(1), fn, "the fp32 dx buffer (tokens * in)");
        const std::size_t grain = row_grain(mdx.extent(1));
        parallel::parallel_for(exec, mdx.extent(0), grain, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t i = r0; i < r1; ++i) {
                for (std::size_t j = 0; j < mdx.extent(1); ++j) {
                    acc(i, j) = widen(mdx(i, j));
                }
            }
        });
        llm::gemm(acc, mdy, mw, 1.0f, 1.0f, ws, exec);
        parallel::parallel_for(exec, mdx.extent(0), grain, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t i = r0; i < r1; ++i) {
                for (std::size_t j = 0; j < mdx.extent(1); ++j) {
                    store(mdx(i, j), acc(i, j));
                }
            }
        });
    }
    if constexpr (has_bias<DB>) {
        bias_grad(dbias, mdy, exec);
    }
}

}  // namespace detail::linear

/// Linear layer forward, PyTorch's nn.Linear: y = x W^T + b.
/// Shapes: x [tokens, in], weight [out, in] (the PyTorch / Hugging Face layout), bias [out],
/// y [tokens, out]; any strides. in == 0 gives y = b. Elements: x, weight, bias fp32 or bf16
/// (widened exactly), accumulated in fp32 by llm::gemm; y fp32 or bf16 (rounded once, to
/// nearest even). The bias is added, and a bf16 y rounded, in the GEMM's store of each tile
/// (llm::gemm_epilogue), so neither costs a pass over y; a bf16 y is accumulated in an fp32
/// buffer of tokens x out floats taken from the workspace; an fp32 y whose rows are not
/// contiguous gets the bias written first and the product added (gemm with beta = 1).
/// y must not overlap x or weight (llm::error).
/// Bad shapes raise llm::error naming the argument and the values seen.
/// ws: scratch (the gemm packing panels, the fp32 buffer of a bf16 y); once grown, calls of
/// the same shapes allocate nothing. exec: any llm::parallel::policy.
/// Example: `llm::nn::linear_forward(y, x, w, b, ws, pool);  // y = x w^T + b`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B, parallel::policy Exec>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias, workspace& ws, Exec&& exec) {
    detail::linear::forward(y, x, weight, to_kernel_view<1>(bias), ws, exec);
}

/// Linear layer forward without bias: y = x W^T. As the form with a bias otherwise.
/// Example: `llm::nn::linear_forward(y, x, w, ws, pool);  // y = x w^T`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, parallel::policy Exec>
void linear_forward(Y&& y, X&& x, W&& weight, workspace& ws, Exec&& exec) {
    detail::linear::forward(y, x, weight, detail::linear::no_bias{}, ws, exec);
}

/// y = x W^T + b with a workspace of its own (allocated for this call).
/// Example: `llm::nn::linear_forward(y, x, w, b, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B, parallel::policy Exec>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias, Exec&& exec) {
    workspace ws;
    linear_forward(y, x, weight, bias, ws, exec);
}

/// y = x W^T with a workspace of its own (allocated for this call).
/// Example: `llm::nn::linear_forward(y, x, w, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, parallel::policy Exec>
void linear_forward(Y&& y, X&& x, W&& weight, Exec&& exec) {
    workspace ws;
    linear_forward(y, x, weight, ws, exec);
}

/// y = x W^T + b on llm::parallel::default_pool().
/// Example: `llm::nn::linear_forward(y, x, w, b, ws);`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias, workspace& ws) {
    linear_forward(y, x, weight, bias, ws, parallel::default_pool());
}

/// y = x W^T on llm::parallel::default_pool().
/// Example: `llm::nn::linear_forward(y, x, w, ws);`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W>
void linear_forward(Y&& y, X&& x, W&& weight, workspace& ws) {
    linear_forward(y, x, weight, ws, parallel::default_pool());
}

/// y = x W^T + b on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::nn::linear_forward(y, x, w, b);`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias) {
    workspace ws;
    linear_forward(y, x, weight, bias, ws, parallel::default_pool());
}

/// y = x W^T on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::nn::linear_forward(y, x, w);`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W>
void linear_forward(Y&& y, X&& x, W&& weight) {
    workspace ws;
    linear_forward(y, x, weight, ws, parallel::default_pool());
}

/// Linear layer with an activation fused into the GEMM's store: y = act(x W^T + b).
/// act: an activation form value (llm::nn::gelu_tanh{}, gelu_erf{}, silu{}, relu{},
/// identity{} or any activation_form). Shapes, elements, workspace and errors as the
/// linear_forward without act. The activation runs on each row stretch of a micro-tile as
/// the GEMM stores it (llm::gemm_epilogue), vectorised through llm::simd::default_backend:
/// no second pass over y.
/// Bits: y equals linear_forward into an fp32 [tokens, out] buffer followed by
/// activation_forward<Form>(y, buffer) (the default backend) bit for bit: the same fp32
/// product, the same bias add, the same Form::value on every lane, and for a bf16 y one
/// rounding of the activated value (linear_forward to a bf16 y, then the activation, rounds
/// twice and differs). For an fp32 y with contiguous rows that is linear_forward(y, ...)
/// then activation_forward<Form>(y, y). identity{} is linear_forward itself.
/// Memory: an fp32 y with contiguous rows is written in place; a bf16 y, or an fp32 y with
/// strided rows, takes an fp32 buffer of tokens x out floats from the workspace.
/// Example: `llm::nn::linear_forward(h, x, w, b, llm::nn::gelu_tanh{}, ws, pool);  // h = gelu(x w^T + b)`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B, class Form, parallel::policy Exec>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias, Form /*act*/, workspace& ws, Exec&& exec) {
    detail::linear::forward_activated<Form>(y, x, weight, to_kernel_view<1>(bias), ws, exec);
}

/// y = act(x W^T), the activated forward without a bias. As the form with a bias otherwise.
/// Example: `llm::nn::linear_forward(h, x, w, llm::nn::silu{}, ws, pool);  // h = silu(x w^T)`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, class Form, parallel::policy Exec>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, Form /*act*/, workspace& ws, Exec&& exec) {
    detail::linear::forward_activated<Form>(y, x, weight, detail::linear::no_bias{}, ws, exec);
}

/// y = act(x W^T + b) with a workspace of its own (allocated for this call).
/// Example: `llm::nn::linear_forward(h, x, w, b, llm::nn::gelu_tanh{}, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B, class Form, parallel::policy Exec>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias, Form act, Exec&& exec) {
    workspace ws;
    linear_forward(y, x, weight, bias, act, ws, exec);
}

/// y = act(x W^T) with a workspace of its own (allocated for this call).
/// Example: `llm::nn::linear_forward(h, x, w, llm::nn::relu{}, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, class Form, parallel::policy Exec>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, Form act, Exec&& exec) {
    workspace ws;
    linear_forward(y, x, weight, act, ws, exec);
}

/// y = act(x W^T + b) on llm::parallel::default_pool().
/// Example: `llm::nn::linear_forward(h, x, w, b, llm::nn::gelu_tanh{}, ws);`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B, class Form>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias, Form act, workspace& ws) {
    linear_forward(y, x, weight, bias, act, ws, parallel::default_pool());
}

/// y = act(x W^T) on llm::parallel::default_pool().
/// Example: `llm::nn::linear_forward(h, x, w, llm::nn::silu{}, ws);`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, class Form>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, Form act, workspace& ws) {
    linear_forward(y, x, weight, act, ws, parallel::default_pool());
}

/// y = act(x W^T + b) on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::nn::linear_forward(h, x, w, b, llm::nn::gelu_erf{});`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, dense_view<1> B, class Form>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, B&& bias, Form act) {
    workspace ws;
    linear_forward(y, x, weight, bias, act, ws, parallel::default_pool());
}

/// y = act(x W^T) on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::nn::linear_forward(h, x, w, llm::nn::silu{});`
template <mutable_dense_view<2> Y, dense_view<2> X, dense_view<2> W, class Form>
    requires activation_form<Form>
void linear_forward(Y&& y, X&& x, W&& weight, Form act) {
    workspace ws;
    linear_forward(y, x, weight, act, ws, parallel::default_pool());
}

/// Backward of linear_forward. ACCUMULATES (docs/conventions.md rule 2):
///   dx      += dy W        [tokens, in]   (gemm with beta = 1)
///   dweight += dy^T x      [out, in]      (gemm with beta = 1)
///   dbias   += sum_t dy[t] [out]
/// so zero the gradients first (llm::zero_grad) unless adding to earlier ones is the intent.
/// Shapes as in the forward, dy [tokens, out]. Elements: dy, x, weight fp32 or bf16; dx fp32
/// or bf16 (a bf16 dx is widened into an fp32 buffer from the workspace, accumulated there
/// and rounded once); dweight and dbias fp32 always, also for bf16 weights (the optimiser's
/// master gradients). dbias sums over tokens in a fixed order (independent of the threads).
/// A gradient must not overlap dy, x or weight (llm::error).
/// Example: `llm::nn::linear_backward(dx, dw, db, dy, x, w, ws, pool);`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, mutable_dense_view<1> DB, dense_view<2> DY,
          dense_view<2> X, dense_view<2> W, parallel::policy Exec>
    requires std::same_as<view_element_t<DW>, float> && std::same_as<view_element_t<DB>, float>
void linear_backward(DX&& dx, DW&& dweight, DB&& dbias, DY&& dy, X&& x, W&& weight, workspace& ws, Exec&& exec) {
    detail::linear::backward(dx, dweight, to_kernel_view<1>(dbias), dy, x, weight, ws, exec);
}

/// Backward of the linear layer without bias: dx += dy W, dweight += dy^T x.
/// Example: `llm::nn::linear_backward(dx, dw, dy, x, w, ws, pool);`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, dense_view<2> DY, dense_view<2> X, dense_view<2> W,
          parallel::policy Exec>
    requires std::same_as<view_element_t<DW>, float>
void linear_backward(DX&& dx, DW&& dweight, DY&& dy, X&& x, W&& weight, workspace& ws, Exec&& exec) {
    detail::linear::backward(dx, dweight, detail::linear::no_bias{}, dy, x, weight, ws, exec);
}

/// linear_backward with bias and a workspace of its own.
/// Example: `llm::nn::linear_backward(dx, dw, db, dy, x, w, llm::parallel::sequential{});`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, mutable_dense_view<1> DB, dense_view<2> DY,
          dense_view<2> X, dense_view<2> W, parallel::policy Exec>
    requires std::same_as<view_element_t<DW>, float> && std::same_as<view_element_t<DB>, float>
void linear_backward(DX&& dx, DW&& dweight, DB&& dbias, DY&& dy, X&& x, W&& weight, Exec&& exec) {
    workspace ws;
    linear_backward(dx, dweight, dbias, dy, x, weight, ws, exec);
}

/// linear_backward without bias, with a workspace of its own.
/// Example: `llm::nn::linear_backward(dx, dw, dy, x, w, llm::parallel::sequential{});`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, dense_view<2> DY, dense_view<2> X, dense_view<2> W,
          parallel::policy Exec>
    requires std::same_as<view_element_t<DW>, float>
void linear_backward(DX&& dx, DW&& dweight, DY&& dy, X&& x, W&& weight, Exec&& exec) {
    workspace ws;
    linear_backward(dx, dweight, dy, x, weight, ws, exec);
}

/// linear_backward with bias on llm::parallel::default_pool().
/// Example: `llm::nn::linear_backward(dx, dw, db, dy, x, w, ws);`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, mutable_dense_view<1> DB, dense_view<2> DY,
          dense_view<2> X, dense_view<2> W>
    requires std::same_as<view_element_t<DW>, float> && std::same_as<view_element_t<DB>, float>
void linear_backward(DX&& dx, DW&& dweight, DB&& dbias, DY&& dy, X&& x, W&& weight, workspace& ws) {
    linear_backward(dx, dweight, dbias, dy, x, weight, ws, parallel::default_pool());
}

/// linear_backward without bias on llm::parallel::default_pool().
/// Example: `llm::nn::linear_backward(dx, dw, dy, x, w, ws);`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, dense_view<2> DY, dense_view<2> X, dense_view<2> W>
    requires std::same_as<view_element_t<DW>, float>
void linear_backward(DX&& dx, DW&& dweight, DY&& dy, X&& x, W&& weight, workspace& ws) {
    linear_backward(dx, dweight, dy, x, weight, ws, parallel::default_pool());
}

/// linear_backward with bias on llm::parallel::default_pool(), with a workspace of its own.
/// Example: `llm::nn::linear_backward(dx, dw, db, dy, x, w);`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, mutable_dense_view<1> DB, dense_view<2> DY,
          dense_view<2> X, dense_view<2> W>
    requires std::same_as<view_element_t<DW>, float> && std::same_as<view_element_t<DB>, float>
void linear_backward(DX&& dx, DW&& dweight, DB&& dbias, DY&& dy, X&& x, W&& weight) {
    workspace ws;
    linear_backward(dx, dweight, dbias, dy, x, weight, ws, parallel::default_pool());
}

/// linear_backward without bias on llm::parallel::default_pool(), with a workspace of its own.
/// Example: `llm::nn::linear_backward(dx, dw, dy, x, w);`
template <mutable_dense_view<2> DX, mutable_dense_view<2> DW, dense_view<2> DY, dense_view<2> X, dense_view<2> W>
    requires std::same_as<view_element_t<DW>, float>
void linear_backward(DX&& dx, DW&& dweight, DY&& dy, X&& x, W&& weight) {
    workspace ws;
    linear_backward(dx, dweight, dy, x, weight, ws, parallel::default_pool());
}

}  // namespace llm::nn
