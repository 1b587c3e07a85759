// SPDX-License-Identifier: Apache-2.0
// Double-precision reference NN primitives (forward and backward): the oracle the fast kernels and finite differences are checked against.
#pragma once

#include <llm/nn/loss_options.hpp>
#include <llm/nn/rope_config.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <vector>

// Every array is row-major and contiguous: [rows, cols] unless stated. Written for clarity:
// one loop per formula, no fusion, double everywhere.
namespace llm::nn::reference {

// ---- softmax / log-softmax over the last dim ---------------------------------------------
inline void softmax_forward(const double* x, double* y, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        const double* xr = x + r * cols;
        const double m = *std::max_element(xr, xr + cols);
        double s = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            s += std::exp(xr[j] - m);
        }
        for (std::size_t j = 0; j < cols; ++j) {
            y[r * cols + j] = std::exp(xr[j] - m) / s;
        }
    }
}
/// dx = y * (dy - sum(dy * y))
inline void softmax_backward(const double* y, const double* dy, double* dx, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        double dot = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            dot += dy[r * cols + j] * y[r * cols + j];
        }
        for (std::size_t j = 0; j < cols; ++j) {
            dx[r * cols + j] = y[r * cols + j] * (dy[r * cols + j] - dot);
        }
    }
}
inline void log_softmax_forward(const double* x, double* y, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        const double* xr = x + r * cols;
        const double m = *std::max_element(xr, xr + cols);
        double s = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            s += std::exp(xr[j] - m);
        }
        for (std::size_t j = 0; j < cols; ++j) {
            y[r * cols + j] = xr[j] - m - std::log(s);
        }
    }
}
/// dx = dy - exp(y) * sum(dy)
inline void log_softmax_backward(const double* y, const double* dy, double* dx, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        double s = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            s += dy[r * cols + j];
        }
        for (std::size_t j = 0; j < cols; ++j) {
            dx[r * cols + j] = dy[r * cols + j] - std::exp(y[r * cols + j]) * s;
        }
    }
}

// ---- RMSNorm: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps); w may be null --------
inline void rmsnorm_forward(const double* x, const double* w, double* y, double* rstd, std::size_t rows, std::size_t cols,
                            double eps) {
    for (std::size_t r = 0; r < rows; ++r) {
        double ss = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            ss += x[r * cols + j] * x[r * cols + j];
        }
        rstd[r] = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
        for (std::size_t j = 0; j < cols; ++j) {
            y[r * cols + j] = x[r * cols + j] * rstd[r] * (w ? w[j] : 1.0);
        }
    }
}
/// dx = rstd * (g - xhat * mean(g * xhat)), g = dy * w; dw += sum_rows dy * xhat (dw may be null)
inline void rmsnorm_backward(const double* x, const double* w, const double* rstd, const double* dy, double* dx, double* dw,
                             std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        double dot = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            dot += dy[r * cols + j] * (w ? w[j] : 1.0) * x[r * cols + j] * rstd[r];
        }
        dot /= static_cast<double>(cols);
        for (std::size_t j = 0; j < cols; ++j) {
            const double xhat = x[r * cols + j] * rstd[r];
            dx[r * cols + j] = rstd[r] * (dy[r * cols + j] * (w ? w[j] : 1.0) - xhat * dot);
            if (dw) {
                dw[j] += dy[r * cols + j] * xhat;
            }
        }
    }
}

// ---- LayerNorm: y = (x - mean) * rstd * w + b; w, b may be null ---------------------------
inline void layernorm_forward(const double* x, const double* w, const double* b, double* y, double* mean, double* rstd,
                              std::size_t rows, std::size_t cols, double eps) {
    for (std::size_t r = 0; r < rows; ++r) {
        double m = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            m += x[r * cols + j];
        }
        m /= static_cast<double>(cols);
        double var = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            var += (x[r * cols + j] - m) * (x[r * cols + j] - m);
        }
        var /= static_cast<double>(cols);
        mean[r] = m;
        rstd[r] = 1.0 / std::sqrt(var + eps);
        for (std::size_t j = 0; j < cols; ++j) {
            y[r * cols + j] = (x[r * cols + j] - m) * rstd[r] * (w ? w[j] : 1.0) + (b ? b[j] : 0.0);
        }
    }
}
/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w; dw += dy * xhat; db += dy
inline void layernorm_backward(const double* x, const double* w, const double* mean, const double* rstd, const double* dy,
                               double* dx, double* dw, double* db, std::size_t rows, std::size_t cols) {
    for (std::size_t r = 0; r < rows; ++r) {
        double mg = 0.0, mgx = 0.0;
        for (std::size_t j = 0; j < cols; ++j) {
            const double g = dy[r * cols + j] * (w ? w[j] : 1.0);
            mg += g;
            mgx += g * (x[r * cols + j] - mean[r]) * rstd[r];
        }
        mg /= static_cast<double>(cols);
        mgx /= static_cast<double>(cols);
        for (std::size_t j = 0; j < cols; ++j) {
            const double xhat = (x[r * cols + j] - mean[r]) * rstd[r];
            const double g = dy[r * cols + j] * (w ? w[j] : 1.0);
            dx[r * cols + j] = rstd[r] * (g - mg - xhat * mgx);
            if (dw) {
                dw[j] += dy[r * cols + j] * xhat;
            }
            if (db) {
                db[j] += dy[r * cols + j];
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
inline void embedding_forward(const double* table, const std::int64_t* ids, double* out, std::size_t n, std::size_t dim) {
    for (std::size_t i = 0; i < n; ++i) {
        std::copy(table + ids[i] * static_cast<std::int64_t>(dim), table + (ids[i] + 1) * static_cast<std::int64_t>(dim),
                  out + i * dim);
    }
}
inline void embedding_backward(const std::int64_t* ids, const double* dout, double* dtable, std::size_t n, std::size_t dim) {
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < dim; ++j) {
            dtable[static_cast<std::size_t>(ids[i]) * dim + j] += dout[i * dim + j];
        }
    }
}

// ---- cross-entropy from logits [rows, V] ----------------------------------------------------
/// loss_i = (1 - eps) (lse - x_t) + eps (lse - mean_j x_j); mean over non-ignored rows, or sum.
/// All rows ignored: NaN for mean (0/0, PyTorch's result), 0 for sum.
inline double cross_entropy_forward(const double* logits, const std::int64_t* targets, std::size_t rows, std::size_t vocab,
                                    const cross_entropy_options& o) {
    double total = 0.0;
    std::size_t count = 0;
    const double eps = o.label_smoothing;
    for (std::size_t r = 0; r < rows; ++r) {
        if (targets[r] == o.ignore_index) {
            continue;
        }
        const double* x = logits + r * vocab;
        const double m = *std::max_element(x, x + vocab);
        double s = 0.0, sum_x = 0.0;
        for (std::size_t j = 0; j < vocab; ++j) {
            s += std::exp(x[j] - m);
            sum_x += x[j];
        }
        const double lse = m + std::log(s);
        total += (1.0 - eps) * (lse - x[targets[r]]) + eps * (lse - sum_x / static_cast<double>(vocab));
        ++count;
    }
    if (o.red == reduction::sum) {
        return total;
    }
    return count == 0 ? std::numeric_limits<double>::quiet_NaN() : total / static_cast<double>(count);
}
/// dlogits = dloss * scale * (softmax(x) - (1 - eps) onehot(t) - eps / V); ignored rows 0.
inline void cross_entropy_backward(const double* logits, const std::int64_t* targets, double dloss, double* dlogits,
                                   std::size_t rows, std::size_t vocab, const cross_entropy_options& o) {
    std::size_t count = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        count += targets[r] != o.ignore_index ? 1 : 0;
    }
    const double scale = o.red == reduction::sum ? dloss : dloss / static_cast<double>(count);
    const double eps = o.label_smoothing;
    for (std::size_t r = 0; r < rows; ++r) {
        double* d = dlogits + r * vocab;
        if (targets[r] == o.ignore_index) {
            std::fill(d, d + vocab, 0.0);
            continue;
        }
        softmax_forward(logits + r * vocab, d, 1, vocab);
        for (std::size_t j = 0; j < vocab; ++j) {
            d[j] = scale * (d[j] - eps / static_cast<double>(vocab) -
                            (static_cast<std::int64_t>(j) == targets[r] ? 1.0 - eps : 0.0));
        }
    }
}

// ---- rotary embeddings on x [tokens, heads, head_dim] ----------------------------------------
/// Rotates each pair (Style::first(i), Style::second(i)) by angle positions[t] * inv_freq[i]
/// (sign = -1 gives the inverse rotation, which is the backward: the rotation matrix is
/// orthogonal). Writes y (no accumulation).
template <rope_style Style>
void rope_apply(const double* x, const std::int64_t* positions, double* y, std::size_t tokens, std::size_t heads,
                std::size_t head_dim, const std::vector<double>& inv_freq, double sign) {
    const std::size_t half = head_dim / 2;
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t h = 0; h < heads; ++h) {
            const double* xv = x + (t * heads + h) * head_dim;
            double* yv = y + (t * heads + h) * head_dim;
            for (std::size_t i = 0; i < half; ++i) {
                const double angle = static_cast<double>(positions[t]) * inv_freq[i];
                const double c = std::cos(angle), s = sign * std::sin(angle);
                const std::size_t a = Style::first(i, half), b = Style::second(i, half);
                const double xa = xv[a], xb = xv[b];
                yv[a] = xa * c - xb * s;
                yv[b] = xb * c + xa * s;
            }
        }
    }
}

}  // namespace llm::nn::reference
