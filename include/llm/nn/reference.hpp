// SPDX-License-Identifier: Apache-2.0
// Double-precision reference NN primitives (forward and backward): the oracle the fast kernels and finite differences are checked against.
#pragma once

#include <llm/nn/loss_options.hpp>
#include <llm/nn/rope_config.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

// Every tensor is a view (any llm::view_of_rank, any strides; elements double, or anything
// convertible to double for inputs), arguments in the order of docs/conventions.md:
// outputs, saved state, inputs, parameters, options. An empty parameter or parameter gradient
// (extent 0) means none. Backward oracles write the input gradient (dx = ...) and add into
// parameter gradients (dweight += ...). Written for clarity: one loop per formula, no fusion,
// double everywhere.
namespace llm::nn::reference {
namespace detail {

/// log(sum_j exp(x(r, j))), shifted by the row's maximum.
template <class X>
double row_logsumexp(const X& x, std::size_t r) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < x.extent(1); ++j) {
        m = std::max(m, static_cast<double>(x(r, j)));
    }
    double s = 0.0;
    for (std::size_t j = 0; j < x.extent(1); ++j) {
        s += std::exp(static_cast<double>(x(r, j)) - m);
    }
    return m + std::log(s);
}

/// Parameter j of an optional per-column parameter, or `absent` when it is empty.
template <class W>
double param(const W& w, std::size_t j, double absent) {
    return w.extent(0) == 0 ? absent : static_cast<double>(w(j));
}

}  // namespace detail

// ---- softmax / log-softmax over the last dim ---------------------------------------------
/// y = exp(x - logsumexp(x)) per row. Shapes: y, x [rows, cols].
/// Example: `llm::nn::reference::softmax_forward(y, x);`
template <view_of_rank<2> Y, view_of_rank<2> X>
void softmax_forward(Y&& y_view, X&& x_view) {
    const auto y = to_kernel_view<2>(y_view);
    const auto x = to_kernel_view<2>(x_view);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        const double lse = detail::row_logsumexp(x, r);
        for (std::size_t j = 0; j < x.extent(1); ++j) {
            y(r, j) = std::exp(static_cast<double>(x(r, j)) - lse);
        }
    }
}
/// dx = y * (dy - sum(dy * y)) per row (written). Shapes: dx, y, dy [rows, cols].
/// Example: `llm::nn::reference::softmax_backward(dx, y, dy);`
template <view_of_rank<2> DX, view_of_rank<2> Y, view_of_rank<2> DY>
void softmax_backward(DX&& dx_view, Y&& y_view, DY&& dy_view) {
    const auto dx = to_kernel_view<2>(dx_view);
    const auto y = to_kernel_view<2>(y_view);
    const auto dy = to_kernel_view<2>(dy_view);
    for (std::size_t r = 0; r < y.extent(0); ++r) {
        double dot = 0.0;
        for (std::size_t j = 0; j < y.extent(1); ++j) {
            dot += static_cast<double>(dy(r, j)) * static_cast<double>(y(r, j));
        }
        for (std::size_t j = 0; j < y.extent(1); ++j) {
            dx(r, j) = static_cast<double>(y(r, j)) * (static_cast<double>(dy(r, j)) - dot);
        }
    }
}
/// y = x - logsumexp(x) per row. Shapes: y, x [rows, cols].
/// Example: `llm::nn::reference::log_softmax_forward(y, x);`
template <view_of_rank<2> Y, view_of_rank<2> X>
void log_softmax_forward(Y&& y_view, X&& x_view) {
    const auto y = to_kernel_view<2>(y_view);
    const auto x = to_kernel_view<2>(x_view);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        const double lse = detail::row_logsumexp(x, r);
        for (std::size_t j = 0; j < x.extent(1); ++j) {
            y(r, j) = static_cast<double>(x(r, j)) - lse;
        }
    }
}
/// dx = dy - exp(y) * sum(dy) per row (written). Shapes: dx, y, dy [rows, cols].
/// Example: `llm::nn::reference::log_softmax_backward(dx, y, dy);`
template <view_of_rank<2> DX, view_of_rank<2> Y, view_of_rank<2> DY>
void log_softmax_backward(DX&& dx_view, Y&& y_view, DY&& dy_view) {
    const auto dx = to_kernel_view<2>(dx_view);
    const auto y = to_kernel_view<2>(y_view);
    const auto dy = to_kernel_view<2>(dy_view);
    for (std::size_t r = 0; r < y.extent(0); ++r) {
        double s = 0.0;
        for (std::size_t j = 0; j < y.extent(1); ++j) {
            s += static_cast<double>(dy(r, j));
        }
        for (std::size_t j = 0; j < y.extent(1); ++j) {
            dx(r, j) = static_cast<double>(dy(r, j)) - std::exp(static_cast<double>(y(r, j))) * s;
        }
    }
}

// ---- RMSNorm: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps); w may be empty --------
/// Shapes: y, x [rows, cols]; rstd [rows]; weight [cols] or empty.
/// Example: `llm::nn::reference::rmsnorm_forward(y, rstd, x, weight, 1e-5);`
template <view_of_rank<2> Y, view_of_rank<1> R, view_of_rank<2> X, view_of_rank<1> W>
void rmsnorm_forward(Y&& y_view, R&& rstd_view, X&& x_view, W&& weight, double eps) {
    const auto y = to_kernel_view<2>(y_view);
    const auto rstd = to_kernel_view<1>(rstd_view);
    const auto x = to_kernel_view<2>(x_view);
    const auto w = to_kernel_view<1>(weight);
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        double ss = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            ss += static_cast<double>(x(r, j)) * static_cast<double>(x(r, j));
        }
        rstd(r) = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
        for (std::size_t j = 0; j < cols; ++j) {
            y(r, j) = static_cast<double>(x(r, j)) * rstd(r) * detail::param(w, j, 1.0);
        }
    }
}
/// dx = rstd * (g - xhat * mean(g * xhat)), g = dy * w (written); dweight += sum_rows dy * xhat
/// (dweight may be empty). Shapes: dx, dy, x [rows, cols]; rstd [rows]; weight, dweight [cols] or empty.
/// Example: `llm::nn::reference::rmsnorm_backward(dx, dweight, rstd, dy, x, weight);`
template <view_of_rank<2> DX, view_of_rank<1> DW, view_of_rank<1> R, view_of_rank<2> DY, view_of_rank<2> X,
          view_of_rank<1> W>
void rmsnorm_backward(DX&& dx_view, DW&& dweight, R&& rstd_view, DY&& dy_view, X&& x_view, W&& weight) {
    const auto dx = to_kernel_view<2>(dx_view);
    const auto dw = to_kernel_view<1>(dweight);
    const auto rstd = to_kernel_view<1>(rstd_view);
    const auto dy = to_kernel_view<2>(dy_view);
    const auto x = to_kernel_view<2>(x_view);
    const auto w = to_kernel_view<1>(weight);
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        const double rs = static_cast<double>(rstd(r));
        double dot = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            dot += static_cast<double>(dy(r, j)) * detail::param(w, j, 1.0) * static_cast<double>(x(r, j)) * rs;
        }
        dot /= static_cast<double>(cols);
        for (std::size_t j = 0; j < cols; ++j) {
            const double xhat = static_cast<double>(x(r, j)) * rs;
            dx(r, j) = rs * (static_cast<double>(dy(r, j)) * detail::param(w, j, 1.0) - xhat * dot);
            if (!dw.empty()) {
                dw(j) += static_cast<double>(dy(r, j)) * xhat;
            }
        }
    }
}

// ---- LayerNorm: y = (x - mean) * rstd * w + b; w, b may be empty --------------------------
/// Shapes: y, x [rows, cols]; mean, rstd [rows]; weight, bias [cols] or empty.
/// Example: `llm::nn::reference::layernorm_forward(y, mean, rstd, x, weight, bias, 1e-5);`
template <view_of_rank<2> Y, view_of_rank<1> M, view_of_rank<1> R, view_of_rank<2> X, view_of_rank<1> W,
          view_of_rank<1> B>
void layernorm_forward(Y&& y_view, M&& mean_view, R&& rstd_view, X&& x_view, W&& weight, B&& bias, double eps) {
    const auto y = to_kernel_view<2>(y_view);
    const auto mean = to_kernel_view<1>(mean_view);
    const auto rstd = to_kernel_view<1>(rstd_view);
    const auto x = to_kernel_view<2>(x_view);
    const auto w = to_kernel_view<1>(weight);
    const auto b = to_kernel_view<1>(bias);
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        double m = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            m += static_cast<double>(x(r, j));
        }
        m /= static_cast<double>(cols);
        double var = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            var += (static_cast<double>(x(r, j)) - m) * (static_cast<double>(x(r, j)) - m);
        }
        var /= static_cast<double>(cols);
        mean(r) = m;
        rstd(r) = 1.0 / std::sqrt(var + eps);
        for (std::size_t j = 0; j < cols; ++j) {
            y(r, j) = (static_cast<double>(x(r, j)) - m) * rstd(r) * detail::param(w, j, 1.0) + detail::param(b, j, 0.0);
        }
    }
}
/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w (written); dweight += dy * xhat,
/// dbias += dy summed over rows (either may be empty).
/// Shapes: dx, dy, x [rows, cols]; mean, rstd [rows]; weight, dweight, dbias [cols] or empty.
/// Example: `llm::nn::reference::layernorm_backward(dx, dweight, dbias, mean, rstd, dy, x, weight);`
template <view_of_rank<2> DX, view_of_rank<1> DW, view_of_rank<1> DB, view_of_rank<1> M, view_of_rank<1> R,
          view_of_rank<2> DY, view_of_rank<2> X, view_of_rank<1> W>
void layernorm_backward(DX&& dx_view, DW&& dweight, DB&& dbias, M&& mean_view, R&& rstd_view, DY&& dy_view, X&& x_view,
                        W&& weight) {
    const auto dx = to_kernel_view<2>(dx_view);
    const auto dw = to_kernel_view<1>(dweight);
    const auto db = to_kernel_view<1>(dbias);
    const auto mean = to_kernel_view<1>(mean_view);
    const auto rstd = to_kernel_view<1>(rstd_view);
    const auto dy = to_kernel_view<2>(dy_view);
    const auto x = to_kernel_view<2>(x_view);
    const auto w = to_kernel_view<1>(weight);
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        const double mu = static_cast<double>(mean(r)), rs = static_cast<double>(rstd(r));
        double mg = 0.0, mgx = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            const double g = static_cast<double>(dy(r, j)) * detail::param(w, j, 1.0);
            mg += g;
            mgx += g * (static_cast<double>(x(r, j)) - mu) * rs;
        }
        mg /= static_cast<double>(cols);
        mgx /= static_cast<double>(cols);
        for (std::size_t j = 0; j < cols; ++j) {
            const double xhat = (static_cast<double>(x(r, j)) - mu) * rs;
            const double g = static_cast<double>(dy(r, j)) * detail::param(w, j, 1.0);
            dx(r, j) = rs * (g - mg - xhat * mgx);
            if (!dw.empty()) {
                dw(j) += static_cast<double>(dy(r, j)) * xhat;
            }
            if (!db.empty()) {
                db(j) += static_cast<double>(dy(r, j));
            }
        }
    }
}

// ---- activations (scalar functions and their derivatives) ---------------------------------
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double silu(double x) { return x * sigmoid(x); }
inline double silu_grad(double x) { return sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x))); }
/// GELU, erf form: x * Phi(x).
inline double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2)); }
inline double gelu_erf_grad(double x) {
    return 0.5 * (1.0 + std::erf(x / std::numbers::sqrt2)) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
}
/// GELU, tanh form (GPT-2, PyTorch approximate="tanh"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline double gelu_tanh(double x) {
    const double k = std::sqrt(2.0 / std::numbers::pi);
    return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
inline double gelu_tanh_grad(double x) {
    const double k = std::sqrt(2.0 / std::numbers::pi);
    const double t = std::tanh(k * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

// ---- embedding: out[i] = table[ids[i]]; dtable[ids[i]] += dout[i] ---------------------------
/// Shapes: out [n, dim], ids [n] (integers in [0, vocab)), table [vocab, dim].
/// Example: `llm::nn::reference::embedding_forward(out, ids, table);`
template <view_of_rank<2> O, view_of_rank<1> I, view_of_rank<2> T>
void embedding_forward(O&& out_view, I&& ids_view, T&& table_view) {
    const auto out = to_kernel_view<2>(out_view);
    const auto ids = to_kernel_view<1>(ids_view);
    const auto table = to_kernel_view<2>(table_view);
    for (std::size_t i = 0; i < ids.extent(0); ++i) {
        for (std::size_t j = 0; j < out.extent(1); ++j) {
            out(i, j) = static_cast<double>(table(static_cast<std::size_t>(ids(i)), j));
        }
    }
}
/// dtable[ids[i], :] += dout[i, :]. Shapes: dtable [vocab, dim], dout [n, dim], ids [n].
/// Example: `llm::nn::reference::embedding_backward(dtable, dout, ids);`
template <view_of_rank<2> DT, view_of_rank<2> DO, view_of_rank<1> I>
void embedding_backward(DT&& dtable_view, DO&& dout_view, I&& ids_view) {
    const auto dtable = to_kernel_view<2>(dtable_view);
    const auto dout = to_kernel_view<2>(dout_view);
    const auto ids = to_kernel_view<1>(ids_view);
    for (std::size_t i = 0; i < ids.extent(0); ++i) {
        for (std::size_t j = 0; j < dout.extent(1); ++j) {
            dtable(static_cast<std::size_t>(ids(i)), j) += static_cast<double>(dout(i, j));
        }
    }
}

// ---- cross-entropy from logits [rows, V] ----------------------------------------------------
/// loss_i = (1 - eps) (lse - x_t) + eps (lse - mean_j x_j); mean over non-ignored rows, or sum.
/// All rows ignored: NaN for mean (0/0, PyTorch's result), 0 for sum.
/// Shapes: logits [rows, vocab], targets [rows] (integers).
/// Example: `double loss = llm::nn::reference::cross_entropy_forward(logits, targets, {});`
template <view_of_rank<2> L, view_of_rank<1> I>
double cross_entropy_forward(L&& logits, I&& targets_view, const cross_entropy_options& o) {
    const auto x = to_kernel_view<2>(logits);
    const auto targets = to_kernel_view<1>(targets_view);
    const std::size_t vocab = x.extent(1);
    double total = 0.0;
    std::size_t count = 0;
    const double eps = o.label_smoothing;
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        if (std::cmp_equal(targets(r), o.ignore_index)) {
            continue;
        }
        double sum_x = 0.0;
        for (std::size_t j = 0; j < vocab; ++j) {
            sum_x += static_cast<double>(x(r, j));
        }
        const double lse = detail::row_logsumexp(x, r);
        const double xt = static_cast<double>(x(r, static_cast<std::size_t>(targets(r))));
        total += (1.0 - eps) * (lse - xt) + eps * (lse - sum_x / static_cast<double>(vocab));
        ++count;
    }
    if (o.red == reduction::sum) {
        return total;
    }
    return count == 0 ? std::numeric_limits<double>::quiet_NaN() : total / static_cast<double>(count);
}
/// dlogits = dloss * scale * (softmax(x) - (1 - eps) onehot(t) - eps / V) (written); ignored rows 0.
/// Shapes: dlogits, logits [rows, vocab], targets [rows].
/// Example: `llm::nn::reference::cross_entropy_backward(dlogits, 1.0, logits, targets, {});`
template <view_of_rank<2> D, view_of_rank<2> L, view_of_rank<1> I>
void cross_entropy_backward(D&& dlogits, double dloss, L&& logits, I&& targets_view, const cross_entropy_options& o) {
    const auto d = to_kernel_view<2>(dlogits);
    const auto x = to_kernel_view<2>(logits);
    const auto targets = to_kernel_view<1>(targets_view);
    const std::size_t rows = x.extent(0), vocab = x.extent(1);
    std::size_t count = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        count += std::cmp_equal(targets(r), o.ignore_index) ? 0 : 1;
    }
    const double scale = o.red == reduction::sum ? dloss : dloss / static_cast<double>(count);
    const double eps = o.label_smoothing;
    for (std::size_t r = 0; r < rows; ++r) {
        const bool ignored = std::cmp_equal(targets(r), o.ignore_index);
        const double lse = ignored ? 0.0 : detail::row_logsumexp(x, r);
        for (std::size_t j = 0; j < vocab; ++j) {
            const double onehot = std::cmp_equal(j, targets(r)) ? 1.0 - eps : 0.0;
            d(r, j) = ignored ? 0.0
                              : scale * (std::exp(static_cast<double>(x(r, j)) - lse) - eps / static_cast<double>(vocab) -
                                         onehot);
        }
    }
}

// ---- rotary embeddings on x [tokens, heads, head_dim] ----------------------------------------
/// Rotates each pair (Style::first(i), Style::second(i)) by angle positions[t] * inv_freq[i]
/// (sign = -1 gives the inverse rotation, which is the backward: the rotation matrix is
/// orthogonal). Writes y (no accumulation). Shapes: y, x [tokens, heads, head_dim];
/// positions [tokens] (integers); inv_freq has head_dim / 2 entries.
/// Example: `llm::nn::reference::rope_apply<llm::nn::rope_rotate_half>(y, x, positions, inv_freq, 1.0);`
template <rope_style Style, view_of_rank<3> Y, view_of_rank<3> X, view_of_rank<1> P>
void rope_apply(Y&& y_view, X&& x_view, P&& positions_view, const std::vector<double>& inv_freq, double sign) {
    const auto y = to_kernel_view<3>(y_view);
    const auto x = to_kernel_view<3>(x_view);
    const auto positions = to_kernel_view<1>(positions_view);
    const std::size_t half = x.extent(2) / 2;
    for (std::size_t t = 0; t < x.extent(0); ++t) {
        for (std::size_t h = 0; h < x.extent(1); ++h) {
            for (std::size_t i = 0; i < half; ++i) {
                const double angle = static_cast<double>(positions(t)) * inv_freq[i];
                const double c = std::cos(angle), s = sign * std::sin(angle);
                const auto a = static_cast<std::size_t>(Style::first(i, half));
                const auto b = static_cast<std::size_t>(Style::second(i, half));
                const double xa = static_cast<double>(x(t, h, a)), xb = static_cast<double>(x(t, h, b));
                y(t, h, a) = xa * c - xb * s;
                y(t, h, b) = xb * c + xa * s;
            }
        }
    }
}

}  // namespace llm::nn::reference
