// SPDX-License-Identifier: Apache-2.0
// Small helpers the model blocks share: scratch views from a workspace, optional biases, weight views.
#pragma once

#include <llm/core/workspace.hpp>
#include <llm/model/block.hpp>
#include <llm/model/weights.hpp>
#include <llm/nn/linear.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <array>
#include <cstddef>
#include <cstring>
#include <span>

namespace llm::model::detail {

/// rows x cols fp32 from the workspace (inside an open frame), uninitialised.
inline activations scratch(workspace& ws, std::size_t rows, std::size_t cols) {
    float* p = ws.take<float>(rows * cols, "model", "a scratch activation");
    return activations(p, llm::dims<2>(rows, cols));
}

/// As scratch, zero-filled (a gradient that backward kernels accumulate into).
inline activations zeroed(workspace& ws, std::size_t rows, std::size_t cols) {
    auto v = scratch(ws, rows, cols);
    if (rows * cols != 0) {
        std::memset(v.data(), 0, rows * cols * sizeof(float));
    }
    return v;
}

/// True when the first tensor is present (an optional bias or norm weight has size 0 when off).
template <class First, class... Rest>
bool present(const First& first, const Rest&...) {
    return first.size() != 0;
}

/// A weight stored [out, in] (PyTorch nn.Linear) or [in, out] (GPT-2's Conv1D, Transposed),
/// as the strided [out, in] view linear_forward reads.
/// An llm::quant::any_matrix is its own view ([out, in]; a transposed layout is not supported).
template <bool Transposed, class W>
auto weight_view(W& w) {
    if constexpr (is_any_matrix<W>) {
        static_assert(!Transposed, "quantized parameters (llm::quant::any_matrix) have no transposed (Conv1D) layout");
        return w;
    } else if constexpr (Transposed) {
        return llm::transpose(w, 0, 1);
    } else {
        return llm::slice(w, 0, 0, w.extent(0));
    }
}

/// y += b per row (b of size 0: nothing).
template <class Y, class B>
void add_bias(Y&& y, const B& b) {
    if (b.size() != 0) {
        const std::size_t n = y.extent(1);
        for (std::size_t r = 0; r < static_cast<std::size_t>(y.extent(0)); ++r) {
            for (std::size_t j = 0; j < n; ++j) {
                y(r, j) += b(j);
            }
        }
    }
}

/// y = x W^T: nn::linear_forward, or llm::quant::linear_forward for an llm::quant::any_matrix W.
template <class Y, class X, class W, class Exec>
void linear(Y&& y, X&& x, W&& w, workspace& ws, Exec&& exec) {
    if constexpr (is_any_matrix<W>) {
        quant::linear_forward(y, x, w, ws, exec);
    } else {
        nn::linear_forward(y, x, w, ws, exec);
    }
}

/// y = x W^T (+ b when b has elements).
template <class Y, class X, class W, class B, class Exec>
void linear(Y&& y, X&& x, W&& w, const B& b, workspace& ws, Exec&& exec) {
    if constexpr (is_any_matrix<W>) {
        quant::linear_forward(y, x, w, ws, exec);
        add_bias(y, b);
    } else if (b.size() != 0) {
        nn::linear_forward(y, x, w, b, ws, exec);
    } else {
        nn::linear_forward(y, x, w, ws, exec);
    }
}

/// ys[i] = x W_i^T for N llm::quant::any_matrix weights of one input x (q / k / v, gate / up):
/// one quant::linear_forward over the group, so block-format weights that share activation
/// blocks quantize x once (the products are those of linear, bit for bit).
template <std::size_t N, class X, class Exec>
void linear_group(const std::array<activations, N>& ys, X&& x, const std::array<const quant::any_matrix*, N>& w, workspace& ws,
                  Exec&& exec) {
    quant::linear_forward(std::span<const activations>(ys), x, std::span<const quant::any_matrix* const>(w), ws, exec);
}

/// dx += dy W, dW += dy^T x, db += sum dy (when db has elements).
template <class DX, class DW, class DB, class DY, class X, class W, class Exec>
void linear_grad(DX&& dx, DW&& dw, DB&& db, DY&& dy, X&& x, W&& w, workspace& ws, Exec&& exec) {
    static_assert(!is_any_matrix<W>, "llm::model::quantized parameters are inference-only: backward needs fp32 or bf16 params");
    if (db.size() != 0) {
        nn::linear_backward(dx, dw, db, dy, x, w, ws, exec);
    } else {
        nn::linear_backward(dx, dw, dy, x, w, ws, exec);
    }
}

}  // namespace llm::model::detail
