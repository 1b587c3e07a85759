// SPDX-License-Identifier: Apache-2.0
// Double-precision reference NN primitives (forward and backward): the oracle the fast kernels and finite differences are checked against.
#pragma once

#include <llm/nn/loss_options.hpp>
#include <llm/nn/rope_config.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <vector>

// Every tensor is an llm::strided_view (any strides; llm::to_kernel_view<R>(v) makes one of
// any view), arguments in the order of docs/conventions.md: outputs, saved state, inputs,
// parameters, options. An empty parameter or parameter gradient (extent 0) means none.
// Backward oracles write the input gradient (dx = ...) and add into parameter gradients
// (dweight += ...). Written for clarity: one loop per formula, no fusion, double everywhere.
namespace llm::nn::reference {

/// A double matrix (rows, cols) written by an oracle.
using matrix = strided_view<double, 2>;
/// A double matrix an oracle reads.
using const_matrix = strided_view<const double, 2>;
/// A double vector (one value per row or per column) written by an oracle.
using vec = strided_view<double, 1>;
/// A double vector an oracle reads.
using const_vec = strided_view<const double, 1>;
/// Integer indices (token ids, targets, positions).
using index_vec = strided_view<const std::int64_t, 1>;

namespace detail {

/// log(sum_j exp(x(r, j))), shifted by the row's maximum.
inline double row_logsumexp(const_matrix x, std::size_t r) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < x.extent(1); ++j) {
        m = std::max(m, x(r, j));
    }
    double s = 0.0;
    for (std::size_t j = 0; j < x.extent(1); ++j) {
        s += std::exp(x(r, j) - m);
    }
    return m + std::log(s);
}

/// Element j of an optional per-column parameter, or `absent` when it is empty.
inline double param(const_vec w, std::size_t j, double absent) { return w.empty() ? absent : w(j); }

/// softmax (Log false) or log-softmax (Log true) of each row.
template <bool Log>
void softmax_forward(matrix y, const_matrix x) {
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        const double lse = row_logsumexp(x, r);
        for (std::size_t j = 0; j < x.extent(1); ++j) {
            y(r, j) = Log ? x(r, j) - lse : std::exp(x(r, j) - lse);
        }
    }
}

/// softmax: dx = y (dy - sum(dy y));  log-softmax: dx = dy - exp(y) sum(dy).
template <bool Log>
void softmax_backward(matrix dx, const_matrix y, const_matrix dy) {
    for (std::size_t r = 0; r < y.extent(0); ++r) {
        double k = 0.0;
        for (std::size_t j = 0; j < y.extent(1); ++j) {
            k += Log ? dy(r, j) : dy(r, j) * y(r, j);
        }
        for (std::size_t j = 0; j < y.extent(1); ++j) {
            dx(r, j) = Log ? dy(r, j) - std::exp(y(r, j)) * k : y(r, j) * (dy(r, j) - k);
        }
    }
}

}  // namespace detail

// ---- softmax / log-softmax over the last dim ---------------------------------------------
/// y = exp(x - logsumexp(x)) per row. Shapes: y, x [rows, cols].
/// Example: `llm::nn::reference::softmax_forward(y, x);`
inline void softmax_forward(matrix y, const_matrix x) { detail::softmax_forward<false>(y, x); }
/// dx = y * (dy - sum(dy * y)) per row (written). Shapes: dx, y, dy [rows, cols].
/// Example: `llm::nn::reference::softmax_backward(dx, y, dy);`
inline void softmax_backward(matrix dx, const_matrix y, const_matrix dy) { detail::softmax_backward<false>(dx, y, dy); }
/// y = x - logsumexp(x) per row. Shapes: y, x [rows, cols].
/// Example: `llm::nn::reference::log_softmax_forward(y, x);`
inline void log_softmax_forward(matrix y, const_matrix x) { detail::softmax_forward<true>(y, x); }
/// dx = dy - exp(y) * sum(dy) per row (written). Shapes: dx, y, dy [rows, cols].
/// Example: `llm::nn::reference::log_softmax_backward(dx, y, dy);`
inline void log_softmax_backward(matrix dx, const_matrix y, const_matrix dy) { detail::softmax_backward<true>(dx, y, dy); }

// ---- RMSNorm: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps); w may be empty --------
/// Shapes: y, x [rows, cols]; rstd [rows]; weight [cols] or empty.
/// Example: `llm::nn::reference::rmsnorm_forward(y, rstd, x, weight, 1e-5);`
inline void rmsnorm_forward(matrix y, vec rstd, const_matrix x, const_vec weight, double eps) {
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        double ss = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            ss += x(r, j) * x(r, j);
        }
        rstd(r) = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
        for (std::size_t j = 0; j < cols; ++j) {
            y(r, j) = x(r, j) * rstd(r) * detail::param(weight, j, 1.0);
        }
    }
}
/// dx = rstd * (g - xhat * mean(g * xhat)), g = dy * w (written); dweight += sum_rows dy * xhat
/// (dweight may be empty). Shapes: dx, dy, x [rows, cols]; rstd [rows]; weight, dweight [cols] or empty.
/// Example: `llm::nn::reference::rmsnorm_backward(dx, dweight, rstd, dy, x, weight);`
inline void rmsnorm_backward(matrix dx, vec dweight, const_vec rstd, const_matrix dy, const_matrix x,
                             const_vec weight) {
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        double dot = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            dot += dy(r, j) * detail::param(weight, j, 1.0) * x(r, j) * rstd(r);
        }
        dot /= static_cast<double>(cols);
        for (std::size_t j = 0; j < cols; ++j) {
            const double xhat = x(r, j) * rstd(r);
            dx(r, j) = rstd(r) * (dy(r, j) * detail::param(weight, j, 1.0) - xhat * dot);
            if (!dweight.empty()) {
                dweight(j) += dy(r, j) * xhat;
            }
        }
    }
}

// ---- LayerNorm: y = (x - mean) * rstd * w + b; w, b may be empty --------------------------
/// Shapes: y, x [rows, cols]; mean, rstd [rows]; weight, bias [cols] or empty.
/// Example: `llm::nn::reference::layernorm_forward(y, mean, rstd, x, weight, bias, 1e-5);`
inline void layernorm_forward(matrix y, vec mean, vec rstd, const_matrix x, const_vec weight, const_vec bias,
                              double eps) {
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        double m = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            m += x(r, j);
        }
        m /= static_cast<double>(cols);
        double var = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            var += (x(r, j) - m) * (x(r, j) - m);
        }
        var /= static_cast<double>(cols);
        mean(r) = m;
        rstd(r) = 1.0 / std::sqrt(var + eps);
        for (std::size_t j = 0; j < cols; ++j) {
            y(r, j) = (x(r, j) - m) * rstd(r) * detail::param(weight, j, 1.0) + detail::param(bias, j, 0.0);
        }
    }
}
/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w (written); dweight += dy * xhat,
/// dbias += dy summed over rows (either may be empty).
/// Shapes: dx, dy, x [rows, cols]; mean, rstd [rows]; weight, dweight, dbias [cols] or empty.
/// Example: `llm::nn::reference::layernorm_backward(dx, dweight, dbias, mean, rstd, dy, x, weight);`
inline void layernorm_backward(matrix dx, vec dweight, vec dbias, const_vec mean, const_vec rstd, const_matrix dy,
                               const_matrix x, const_vec weight) {
    const std::size_t cols = x.extent(1);
    for (std::size_t r = 0; r < x.extent(0); ++r) {
        double mg = 0.0, mgx = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            const double g = dy(r, j) * detail::param(weight, j, 1.0);
            mg += g;
            mgx += g * (x(r, j) - mean(r)) * rstd(r);
        }
        mg /= static_cast<double>(cols);
        mgx /= static_cast<double>(cols);
        for (std::size_t j = 0; j < cols; ++j) {
            const double xhat = (x(r, j) - mean(r)) * rstd(r);
            const double g = dy(r, j) * detail::param(weight, j, 1.0);
            dx(r, j) = rstd(r) * (g - mg - xhat * mgx);
            if (!dweight.empty()) {
                dweight(j) += dy(r, j) * xhat;
            }
            if (!dbias.empty()) {
                dbias(j) += dy(r, j);
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
/// Shapes: out [n, dim], ids [n] (in [0, vocab)), table [vocab, dim].
/// Example: `llm::nn::reference::embedding_forward(out, ids, table);`
inline void embedding_forward(matrix out, index_vec ids, const_matrix table) {
    for (std::size_t i = 0; i < ids.extent(0); ++i) {
        for (std::size_t j = 0; j < out.extent(1); ++j) {
            out(i, j) = table(static_cast<std::size_t>(ids(i)), j);
        }
    }
}
/// dtable[ids[i], :] += dout[i, :]. Shapes: dtable [vocab, dim], dout [n, dim], ids [n].
/// Example: `llm::nn::reference::embedding_backward(dtable, dout, ids);`
inline void embedding_backward(matrix dtable, const_matrix dout, index_vec ids) {
    for (std::size_t i = 0; i < ids.extent(0); ++i) {
        for (std::size_t j = 0; j < dout.extent(1); ++j) {
            dtable(static_cast<std::size_t>(ids(i)), j) += dout(i, j);
        }
    }
}

// ---- cross-entropy from logits [rows, V] ----------------------------------------------------
/// loss_i = (1 - eps) (lse - x_t) + eps (lse - mean_j x_j); mean over non-ignored rows, or sum.
/// All rows ignored: NaN for mean (0/0, PyTorch's result), 0 for sum.
/// Shapes: logits [rows, vocab], targets [rows].
/// Example: `double loss = llm::nn::reference::cross_entropy_forward(logits, targets, {});`
inline double cross_entropy_forward(const_matrix logits, index_vec targets, const cross_entropy_options& o) {
    const std::size_t vocab = logits.extent(1);
    double total = 0.0;
    std::size_t count = 0;
    const double eps = o.label_smoothing;
    for (std::size_t r = 0; r < logits.extent(0); ++r) {
        if (targets(r) == o.ignore_index) {
            continue;
        }
        double sum_x = 0.0;
        for (std::size_t j = 0; j < vocab; ++j) {
            sum_x += logits(r, j);
        }
        const double lse = detail::row_logsumexp(logits, r);
        total += (1.0 - eps) * (lse - logits(r, static_cast<std::size_t>(targets(r)))) +
                 eps * (lse - sum_x / static_cast<double>(vocab));
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
inline void cross_entropy_backward(matrix dlogits, double dloss, const_matrix logits, index_vec targets,
                                   const cross_entropy_options& o) {
    const std::size_t rows = logits.extent(0), vocab = logits.extent(1);
    std::size_t count = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        count += targets(r) != o.ignore_index ? 1 : 0;
    }
    const double scale = o.red == reduction::sum ? dloss : dloss / static_cast<double>(count);
    const double eps = o.label_smoothing;
    for (std::size_t r = 0; r < rows; ++r) {
        const bool ignored = targets(r) == o.ignore_index;
        const double lse = ignored ? 0.0 : detail::row_logsumexp(logits, r);
        for (std::size_t j = 0; j < vocab; ++j) {
            const double onehot = static_cast<std::int64_t>(j) == targets(r) ? 1.0 - eps : 0.0;
            dlogits(r, j) =
                ignored ? 0.0 : scale * (std::exp(logits(r, j) - lse) - eps / static_cast<double>(vocab) - onehot);
        }
    }
}

// ---- rotary embeddings on x [tokens, heads, head_dim] ----------------------------------------
/// Rotates each pair (Style::first(i), Style::second(i)) by angle positions[t] * inv_freq[i]
/// (sign = -1 gives the inverse rotation, which is the backward: the rotation matrix is
/// orthogonal). Writes y (no accumulation). Shapes: y, x [tokens, heads, head_dim];
/// positions [tokens]; inv_freq has head_dim / 2 entries.
/// Example: `llm::nn::reference::rope_apply<llm::nn::rope_rotate_half>(y, x, positions, inv_freq, 1.0);`
template <rope_style Style>
void rope_apply(strided_view<double, 3> y, strided_view<const double, 3> x, index_vec positions,
                const std::vector<double>& inv_freq, double sign) {
    const std::size_t half = x.extent(2) / 2;
    for (std::size_t t = 0; t < x.extent(0); ++t) {
        for (std::size_t h = 0; h < x.extent(1); ++h) {
            for (std::size_t i = 0; i < half; ++i) {
                const double angle = static_cast<double>(positions(t)) * inv_freq[i];
                const double c = std::cos(angle), s = sign * std::sin(angle);
                const auto a = static_cast<std::size_t>(Style::first(i, half));
                const auto b = static_cast<std::size_t>(Style::second(i, half));
                const double xa = x(t, h, a), xb = x(t, h, b);
                y(t, h, a) = xa * c - xb * s;
                y(t, h, b) = xb * c + xa * s;
            }
        }
    }
}

}  // namespace llm::nn::reference
