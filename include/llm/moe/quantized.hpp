// SPDX-License-Identifier: Apache-2.0
// The MoE layer's forward (inference) with block-quantized expert weights through llm::quant::gemm.
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/moe/moe.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/quant/any_matrix.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/packed.hpp>
#include <llm/quant/weights.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace llm::moe {

/// The MoE layer's weights with quantized experts (inference): the router's gate fp32
/// `[E, d]`, and every expert's w1 (gate projection), w3 (up) as one stacked quantized_matrix
/// `[E * ff, d]` each and w2 (down) as `[E * d, ff]` (rows of expert e at `e * ff` resp.
/// `e * d`; GGUF's ffn_gate_exps / ffn_up_exps / ffn_down_exps, and Mixtral's
/// experts.E.w1 / w3 / w2 quantized row by row, stacked). W: a view from
/// llm::quant::matrix_view (rows of consecutive blocks); d and ff multiples of the format's
/// block size (32 for Q8_0 / Q4_0, 256 for Q4_K).
/// Example: `llm::moe::quantized_moe_weights<decltype(w1)> w{gate, w1, w3, w2, 4, 512};`
template <llm::quant::quantized_matrix W>
struct quantized_moe_weights {
    llm::strided_view<const float, 2> gate;  ///< router [E, d], fp32
    W w1;                                    ///< gate projections, stacked [E * ff, d]
    W w3;                                    ///< up projections, stacked [E * ff, d]
    W w2;                                    ///< down projections, stacked [E * d, ff]
    std::size_t experts = 0;                 ///< E
    std::size_t d_ff = 0;                    ///< ff
};

/// The MoE layer's weights with packed experts (inference; llm::quant::packed_view, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
/// Q2_K, Q3_K, Q4_K, Q5_K or Q6_K in groups of 8 interleaved rows): the router's gate fp32 `[E, d]` and, per
/// expert e, w1[e] (gate projection) and w3[e] (up) `[ff, d]`, w2[e] (down) `[d, ff]`, each packed on its own
/// (so an expert's rows need not be a multiple of 8). Made by llm::moe::packed_experts::weights
/// or from views the caller owns (llm::quant::pack_into over a checkpoint's bytes).
/// Example: `llm::moe::packed_moe_weights<llm::quant::q4_0> w = experts.weights(gate);`
template <llm::quant::packable_format F>
struct packed_moe_weights {
    llm::strided_view<const float, 2> gate;           ///< router [E, d], fp32
    std::span<const llm::quant::packed_view<F>> w1;  ///< gate projections, E views of [ff, d]
    std::span<const llm::quant::packed_view<F>> w3;  ///< up projections, E views of [ff, d]
    std::span<const llm::quant::packed_view<F>> w2;  ///< down projections, E views of [d, ff]
    std::size_t d_ff = 0;                             ///< ff
};

/// Every expert's w1 / w3 / w2 repacked (llm::quant::pack) from stacked row-major quantized
/// weights (quantized_moe_weights), owning the packed bytes; weights(gate) gives the views the
/// packed moe_forward_quantized takes. Move-only (the views point into the owned buffers).
/// Example: `llm::moe::packed_experts<llm::quant::q4_0> p(w); auto wp = p.weights(w.gate);`
template <llm::quant::packable_format F>
class packed_experts {
public:
    /// No experts.
    packed_experts() = default;
    /// Packs every expert of w (W's format must be F). Errors (llm::error): as quantized_moe_weights' shape checks.
    template <llm::quant::quantized_matrix W>
        requires std::same_as<llm::quant::weight_format_t<W>, F>
    explicit packed_experts(const quantized_moe_weights<W>& w);
    packed_experts(packed_experts&&) noexcept = default;             ///< moves the buffers (views stay valid)
    packed_experts& operator=(packed_experts&&) noexcept = default;  ///< moves the buffers (views stay valid)
    packed_experts(const packed_experts&) = delete;             ///< not copyable (views into the source)
    packed_experts& operator=(const packed_experts&) = delete;  ///< not copyable
    ~packed_experts() = default;                                ///< frees the packed bytes

    /// E.
    [[nodiscard]] std::size_t experts() const noexcept { return v1_.size(); }
    /// ff.
    [[nodiscard]] std::size_t d_ff() const noexcept { return ff_; }
    /// Packed bytes of one expert's three matrices (what a token routed to it reads).
    [[nodiscard]] std::size_t expert_bytes() const noexcept {
        return v1_.empty() ? 0 : v1_[0].bytes() + v3_[0].bytes() + v2_[0].bytes();
    }
    /// The views, with the router's gate [E, d].
    [[nodiscard]] packed_moe_weights<F> weights(llm::strided_view<const float, 2> gate) const noexcept {
        return {gate, v1_, v3_, v2_, ff_};
    }

private:
    std::vector<llm::quant::packed_matrix<F>> m1_, m3_, m2_;
    std::vector<llm::quant::packed_view<F>> v1_, v3_, v2_;
    std::size_t ff_ = 0;
};

namespace detail {

// Rows [r0, r0 + rows) of a contiguous quantized matrix, as the same view type.
template <class W>
W quant_rows(const W& w, std::size_t r0, std::size_t rows) {
    constexpr std::size_t B = llm::quant::weight_format_t<W>::block_size;
    const std::size_t cols = static_cast<std::size_t>(w.extent(1));
    return W(w.data() + r0 * (cols / B), rows, cols);
}

/// The experts' products over their groups of rows: y[i, :] = x[i, :] W_e^T for the rows i in
/// [offsets[e], offsets[e + 1]) of expert e, x [N, k] and y [N, m] contiguous, W the stacked
/// [E * m, k] quantized matrix (expert e's rows from e * m). With at least two non-empty groups
/// per thread, the threads take whole experts (one parallel region for all of them, the
/// groups balanced between threads; each thread's llm::quant::gemm runs inline with a
/// workspace of that thread's own, kept between calls); otherwise each expert's product is
/// split over the threads by rows of W. Either way every output is llm::quant::gemm's, bit
/// for bit (its row m equals gemv of row m, whatever the thread split).
template <class W>
void grouped_gemm_quantized(float* y, const float* x, const std::size_t* offsets, std::size_t E, const W& w,
                            std::size_t m, std::size_t k, llm::quant::matmul_options qopt, llm::workspace& ws,
                            auto& exec) {
    const std::size_t threads = static_cast<std::size_t>(exec.size());
    std::size_t groups = 0;
    for (std::size_t e = 0; e < E; ++e) {
        groups += offsets[e + 1] > offsets[e] ? 1 : 0;
    }
    auto product = [&](std::size_t e, llm::workspace& wse, auto& ex) {
        const std::size_t o = offsets[e], n = offsets[e + 1] - o;
        if (n != 0) {
            llm::quant::gemm(rows_of(y + o * m, n, m, m), crows_of(x + o * k, n, k, k), quant_rows(w, e * m, m), qopt,
                             wse, ex);
        }
    };
    if (threads <= 1 || groups < 2 * threads) {
        for (std::size_t e = 0; e < E; ++e) {
            product(e, ws, exec);
        }
        return;
    }
    parallel::parallel_for(exec, E, 1, [&](std::size_t e0, std::size_t e1) {
        thread_local llm::workspace own;  // this thread's, grown once to its largest expert
        parallel::sequential seq;
        for (std::size_t e = e0; e < e1; ++e) {
            product(e, own, seq);
        }
    });
}

/// The non-empty experts among E (offsets [E + 1]), largest group first (ties: lower expert
/// first), so threads taking whole experts in turn end close together.
inline void busy_experts(std::vector<std::size_t>& order, const std::size_t* offsets, std::size_t E) {
    order.clear();
    order.reserve(E);  // once: later calls push without allocating, whatever the routing
    for (std::size_t e = 0; e < E; ++e) {
        if (offsets[e + 1] > offsets[e]) {
            order.push_back(e);
        }
    }
    // std::sort with the expert as tie-break: stable_sort's order, without its temporary buffer
    // (a decode step allocates nothing)
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const std::size_t na = offsets[a + 1] - offsets[a], nb = offsets[b + 1] - offsets[b];
        return na != nb ? na > nb : a < b;
    });
}

/// Runs product(e, r0, r1) for every expert e with rows (offsets[e] < offsets[e + 1]) and every
/// piece [r0, r1) of its m weight rows, each piece inline on one of exec's threads (claimed one
/// at a time, largest expert first). The pieces are whole 8-row groups, at least 64 rows, and
/// so many that each thread has about 16 to claim: a thread then never waits long on another's
/// last piece (at n = 1 with 8 busy experts of 768 rows and 2 threads: 4 pieces of 192 rows;
/// with 128 busy experts: whole experts). The results do not depend on the cut: every output
/// column is one weight row's.
template <class Product>
void for_each_expert_piece(const std::size_t* offsets, std::size_t E, std::size_t m, Product&& product, auto& exec) {
    const std::size_t threads = static_cast<std::size_t>(exec.size());
    thread_local std::vector<std::size_t> order;
    busy_experts(order, offsets, E);
    if (order.empty() || m == 0) {
        return;
    }
    constexpr std::size_t group = llm::quant::pack_group_rows, min_rows = 64;
    const std::size_t groups = (m + group - 1) / group;
    const std::size_t wanted = threads <= 1 ? 1 : (16 * threads + order.size() - 1) / order.size();
    const std::size_t pieces = std::clamp<std::size_t>(std::min(wanted, m / min_rows), 1, groups);
    const std::size_t piece_rows = (groups + pieces - 1) / pieces * group;
    const std::size_t per_expert = (m + piece_rows - 1) / piece_rows;
    const std::vector<std::size_t>& busy = order;
    parallel::parallel_for(exec, busy.size() * per_expert, 1, [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1; ++i) {
            const std::size_t r0 = i % per_expert * piece_rows;
            product(busy[i / per_expert], r0, std::min(m, r0 + piece_rows));
        }
    });
}

/// The experts' products over activation rows quantized once (llm::quant::quantize_activations,
/// rows in the plan's grouped order): y_j[i, :] = a[i] (W_j)_e^T for each of the `count` (1 or
/// 2) stacked matrices w[j] ([E * m, k]) and the rows i of expert e, y_j [N, m] contiguous; the
/// gate and up projections share one pass over the experts and one quantization. Threads take
/// pieces of the experts' weight rows (for_each_expert_piece). Every output is llm::quant::gemm's
/// of the fp32 rows `a` came from, bit for bit.
template <class A, class W>
void grouped_gemm_prequantized(float* const* y, const W* const* w, std::size_t count, const A& a,
                               const std::size_t* offsets, std::size_t E, std::size_t m,
                               llm::quant::matmul_options qopt, auto& exec) {
    for_each_expert_piece(offsets, E, m, [&](std::size_t e, std::size_t r0, std::size_t r1) {
        const std::size_t o = offsets[e], n = offsets[e + 1] - o;
        parallel::sequential seq;
        for (std::size_t j = 0; j < count; ++j) {
            llm::quant::gemm(rows_of(y[j] + o * m + r0, n, r1 - r0, m), a.rows(o, n), quant_rows(*w[j], e * m + r0, r1 - r0),
                             qopt, seq);
        }
    }, exec);
}

/// qxp's row i = qx's row rows[i] (i < n): the gathered rows of quantized activations.
template <class QA>
void gather_quantized(QA& qxp, const QA& qx, const std::int32_t* rows, std::size_t n, auto& exec) {
    qxp.resize(n, qx.cols());
    const std::size_t bytes = qx.blocks_per_row() * sizeof(typename QA::block_type);
    parallel::parallel_for(exec, n, std::max<std::size_t>(1, (std::size_t{1} << 16) / std::max<std::size_t>(bytes, 1)),
                           [&](std::size_t i0, std::size_t i1) {
                               for (std::size_t i = i0; i < i1; ++i) {
                                   std::memcpy(qxp.row(i), qx.row(static_cast<std::size_t>(rows[i])), bytes);
                               }
                           });
}

template <class W>
void check_quantized(const char* fn, const quantized_moe_weights<W>& w) {
    const std::size_t E = w.experts, ff = w.d_ff, d = w.gate.extent(1);
    llm::check(E > 0 && ff > 0 && w.gate.extent(0) == E, fn, ": gate is [", w.gate.extent(0), ", ", d,
               "] for experts = ", E, " (d_ff = ", ff, ")");
    auto is = [&](const W& m, std::size_t r, std::size_t c, const char* name) {
        llm::check(static_cast<std::size_t>(m.extent(0)) == r && static_cast<std::size_t>(m.extent(1)) == c, fn, ": ",
                   name, " is [", m.extent(0), ", ", m.extent(1), "], want [", r, ", ", c, "]");
        llm::check(r <= 1 || static_cast<std::size_t>(m.stride(0)) == c, fn, ": ", name,
                   " must be contiguous rows (row stride ", m.stride(0), ", cols ", c, ")");
    };
    is(w.w1, E * ff, d, "w1");
    is(w.w3, E * ff, d, "w3");
    is(w.w2, E * d, ff, "w2");
}

/// The packed experts' products over activation rows quantized once (rows in the plan's grouped
/// order): y_j[i, :] = a[i] (w[j][e])^T for each of the `count` (1 or 2) per-expert view lists
/// w[j] and the rows i of expert e, y_j [N, m] contiguous. Threads take pieces of the experts'
/// 8-row groups (for_each_expert_piece), each piece's products inline. Every output row is the
/// packed gemv's of its activation row, bit for bit (the packed kernels' rows do not depend on M
/// or the thread split), so a token's result does not depend on its batch.
template <class A, class F>
void grouped_gemm_packed(float* const* y, const std::span<const llm::quant::packed_view<F>>* w, std::size_t count,
                         const A& a, const std::size_t* offsets, std::size_t E, std::size_t m,
                         llm::quant::matmul_options qopt, auto& exec) {
    for_each_expert_piece(offsets, E, m, [&](std::size_t e, std::size_t r0, std::size_t r1) {
        const std::size_t o = offsets[e], n = offsets[e + 1] - o, g0 = r0 / llm::quant::pack_group_rows;
        parallel::sequential seq;
        for (std::size_t j = 0; j < count; ++j) {
            const llm::quant::packed_view<F>& v = w[j][e];
            const llm::quant::packed_view<F> piece{v.group_codes(g0), v.group_scales(g0), r1 - r0, v.cols};
            llm::quant::gemm(rows_of(y[j] + o * m + r0, n, r1 - r0, m), a.rows(o, n), piece, qopt, seq);
        }
    }, exec);
}

/// The router's logits token by token (logits [T, E] = x gate^T): each a dot product of 8 fp32
/// partial sums over k in a fixed order, then summed pairwise, so a token's logits (and routing)
/// are the same bits whatever T and the thread split (the batched llm::gemm's need not be).
template <class XS>
void router_logits_by_row(float* logits, const XS& xs, const llm::strided_view<const float, 2>& gate, auto& exec) {
    const std::size_t T = static_cast<std::size_t>(xs.extent(0)), E = gate.extent(0), d = gate.extent(1);
    const auto xr = static_cast<std::size_t>(xs.stride(0)), xc = static_cast<std::size_t>(xs.stride(1));
    const auto gr = static_cast<std::size_t>(gate.stride(0)), gc = static_cast<std::size_t>(gate.stride(1));
    parallel::parallel_for(exec, T, std::max<std::size_t>(1, 65536 / std::max<std::size_t>(E * d, 1)),
                           [&](std::size_t t0, std::size_t t1) {
                               for (std::size_t t = t0; t < t1; ++t) {
                                   const float* xt = xs.data() + t * xr;
                                   for (std::size_t e = 0; e < E; ++e) {
                                       const float* ge = gate.data() + e * gr;
                                       float acc[8] = {};
                                       std::size_t k = 0;
                                       for (; k + 8 <= d; k += 8) {
                                           for (std::size_t l = 0; l < 8; ++l) {
                                               acc[l] = std::fma(xt[(k + l) * xc], ge[(k + l) * gc], acc[l]);
                                           }
                                       }
                                       for (; k < d; ++k) {
                                           acc[k % 8] = std::fma(xt[k * xc], ge[k * gc], acc[k % 8]);
                                       }
                                       logits[t * E + e] =
                                           ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
                                   }
                               }
                           });
}

/// The frame of the row-major quantized forwards (moe_forward_quantized over quantized_moe_weights
/// and the any_matrix experts' fallback): the cache's buffers, route and gather (the batched
/// gate GEMM), gate_up(b, N) writing b.gate and b.up [N, ff], SwiGLU into b.act, down(b, N)
/// writing b.yp [N, d], the weighted combine into ys.
template <class YS, class XS, router R, class GateUp, class Down>
void quantized_forward_into(const char* fn, YS& ys, moe_cache& cache, const XS& xs,
                            const llm::strided_view<const float, 2>& gate, std::size_t ff, const R& r,
                            const moe_options& opt, llm::workspace& ws, auto& exec, GateUp&& gate_up, Down&& down) {
    const std::size_t d = gate.extent(1), E = gate.extent(0);
    const forward_shape shape = check_forward(fn, xs, ys, d, E, r, opt);
    forward_buffers b = cache_buffers(cache, shape.tokens, E, shape.slots, d, ff, 0);
    if (shape.tokens == 0) {
        plan_empty(b);
        cache_done(cache, b);
        return;
    }
    const std::size_t N = route_and_gather(fn, b, xs, gate, r, shape.capacity, ws, exec);
    gate_up(b, N);
    parallel::parallel_for(exec, N, grain_for(ff), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t i = r0 * ff; i < r1 * ff; ++i) {
            b.act[i] = tile::swiglu(b.gate[i], b.up[i]);
        }
    });
    down(b, N);
    combine(ys, b.yp, b.plan, b.weights, shape.tokens, shape.slots, d, false, exec);
    cache_done(cache, b);
}

template <class F>
void check_packed(const char* fn, const packed_moe_weights<F>& w) {
    const std::size_t E = w.gate.extent(0), ff = w.d_ff, d = w.gate.extent(1);
    llm::check(E > 0 && ff > 0 && w.w1.size() == E && w.w3.size() == E && w.w2.size() == E, fn, ": gate is [", E,
               ", ", d, "] but the experts' views number w1 ", w.w1.size(), ", w3 ", w.w3.size(), ", w2 ",
               w.w2.size(), " (d_ff = ", ff, ")");
    for (std::size_t e = 0; e < E; ++e) {
        auto is = [&](const llm::quant::packed_view<F>& v, std::size_t r, std::size_t c, const char* name) {
            llm::check(v.rows == r && v.cols == c, fn, ": expert ", e, "'s ", name, " is [", v.rows, ", ", v.cols,
                       "], want [", r, ", ", c, "]");
        };
        is(w.w1[e], ff, d, "w1");
        is(w.w3[e], ff, d, "w3");
        is(w.w2[e], d, ff, "w2");
    }
}

}  // namespace detail

template <llm::quant::packable_format F>
template <llm::quant::quantized_matrix W>
    requires std::same_as<llm::quant::weight_format_t<W>, F>
packed_experts<F>::packed_experts(const quantized_moe_weights<W>& w) : ff_(w.d_ff) {
    detail::check_quantized("packed_experts", w);
    const std::size_t E = w.experts, d = w.gate.extent(1), ff = w.d_ff;
    m1_.reserve(E);
    m3_.reserve(E);
    m2_.reserve(E);
    for (std::size_t e = 0; e < E; ++e) {
        m1_.push_back(llm::quant::pack(detail::quant_rows(w.w1, e * ff, ff)));
        m3_.push_back(llm::quant::pack(detail::quant_rows(w.w3, e * ff, ff)));
        m2_.push_back(llm::quant::pack(detail::quant_rows(w.w2, e * d, d)));
    }
    for (std::size_t e = 0; e < E; ++e) {
        v1_.push_back(m1_[e].view());
        v3_.push_back(m3_[e].view());
        v2_.push_back(m2_[e].view());
    }
}

/// The MoE layer's forward with quantized experts (forward only, for inference): the same
/// routing (fp32 router logits x gate^T, the router r), dispatch (counting sort, dropless or
/// capacity by opt) and weighted combine as moe_forward, with every expert's three products
/// by llm::quant::gemm over its group of rows (the activations quantized to Q8_0 / Q8_K as
/// llm::quant::gemm does; `qopt.path = generic` multiplies dequantized weight blocks by the fp32
/// activations instead). On the integer paths each token's row is quantized once
/// (llm::quant::quantize_activations) and serves the gate and up projections of all its
/// experts, with the same bits as quantizing every gathered row. y [T, d] is written; the cache holds the routing, plan and
/// activations (no backward reads it). Errors as moe_forward, plus shapes of w.
/// Arguments (docs/conventions.md): output y; saved state cache; input x; parameters w;
/// options r, opt, qopt; workspace; executor.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, w, llm::moe::softmax_top_k{.k = 2}, {}, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, llm::quant::quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const quantized_moe_weights<W>& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, llm::workspace& ws,
                           parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_forward_quantized";
    const auto xs = llm::to_kernel_view<2>(x);
    auto ys = llm::to_kernel_view<2>(y);
    detail::check_quantized(fn, w);
    const std::size_t d = w.gate.extent(1), E = w.experts, ff = w.d_ff;
    auto gate_up = [&](detail::forward_buffers& b, std::size_t N) {
        const std::size_t* offsets = b.plan.offsets;
        using F = llm::quant::weight_format_t<W>;
        if constexpr (llm::quant::integer_kernel_format<F>) {
            if (llm::quant::detail::resolve_isa(qopt.path, fn) != llm::quant::kernel_isa::generic) {
                // Each token's row quantized once (not once per expert and projection), the blocks
                // gathered into the plan's order, gate and up in one pass over the experts.
                thread_local llm::quant::quantized_activations<F> qx, qxp;
                llm::quant::quantize_activations(qx, xs, exec);
                detail::gather_quantized(qxp, qx, b.plan.rows, N, exec);
                float* const outs[2] = {b.gate, b.up};
                const W* const mats[2] = {&w.w1, &w.w3};
                detail::grouped_gemm_prequantized(outs, mats, 2, qxp, offsets, E, ff, qopt, exec);
                return;
            }
        }
        detail::grouped_gemm_quantized(b.gate, b.xp, offsets, E, w.w1, ff, d, qopt, ws, exec);
        detail::grouped_gemm_quantized(b.up, b.xp, offsets, E, w.w3, ff, d, qopt, ws, exec);
    };
    auto down = [&](detail::forward_buffers& b, std::size_t /*N*/) {
        detail::grouped_gemm_quantized(b.yp, b.act, b.plan.offsets, E, w.w2, d, ff, qopt, ws, exec);
    };
    detail::quantized_forward_into(fn, ys, cache, xs, w.gate, ff, r, opt, ws, exec, gate_up, down);
}

/// moe_forward_quantized with a workspace of its own for this call.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, w, llm::moe::softmax_top_k{}, {}, {}, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, llm::quant::quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const quantized_moe_weights<W>& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, parallel::policy auto&& exec) {
    llm::workspace ws;
    moe_forward_quantized(y, cache, x, w, r, opt, qopt, ws, exec);
}

/// The MoE layer's forward with packed experts (inference): the same routing, dispatch and
/// weighted combine as moe_forward, every expert's three products by the packed
/// llm::quant::gemm over its group of rows. Each token's row is quantized once (Q8_0 for Q4_0 /
/// Q8_0 experts, Q8_K for the K formats; llm::quant::quantize_activations) and serves the gate
/// and up projections of all its experts; the SwiGLU rows are quantized once for the down
/// projections. A token's expert
/// outputs are the packed gemv's of its row, bit for bit, whatever the batch, the group sizes
/// and the executor; the router's logits are computed token by token (fixed order), so the
/// routing and the whole output row of a token are the same bits alone or in any batch. `qopt.path`
/// picks the kernel (generic: the portable one, the same bits). The workspace is unused (kept
/// for the signature; the buffers are the cache's and per-thread quantized activations).
/// y [T, d] is written; the cache holds the routing, plan and activations. Errors as
/// moe_forward, plus the shapes of w's views. Arguments (docs/conventions.md): output y; saved
/// state cache; input x; parameters w; options r, opt, qopt; workspace; executor.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, experts.weights(gate), llm::moe::softmax_top_k{.k = 2}, {}, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, llm::quant::packable_format F>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const packed_moe_weights<F>& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, [[maybe_unused]] llm::workspace& ws,
                           parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_forward_quantized";
    const auto xs = llm::to_kernel_view<2>(x);
    const auto ys = llm::to_kernel_view<2>(y);
    detail::check_packed(fn, w);
    const std::size_t d = w.gate.extent(1), E = w.gate.extent(0), ff = w.d_ff;
    const auto [T, S, cap] = detail::check_forward(fn, xs, ys, d, E, r, opt);
    detail::forward_buffers b = detail::cache_buffers(cache, T, E, S, d, ff, 0);
    if (T == 0) {
        detail::plan_empty(b);
        detail::cache_done(cache, b);
        return;
    }
    // route_and_gather with the router's logits token by token (batch-invariant routing)
    detail::router_logits_by_row(b.logits, xs, w.gate, exec);
    const routing rt = b.routing_views();
    detail::check_logits(fn, b.logits_view());
    r.forward(rt, b.logits_view(), exec);
    detail::plan_into(b.plan, rt.experts, E, cap);
    detail::gather(b.xp, xs, b.plan, d, exec);
    const std::size_t N = b.plan.size();
    const std::size_t* offsets = b.plan.offsets;
    // Q8_0 blocks for the 32-value formats' experts, Q8_K super-blocks for the K formats (as the packed gemv)
    thread_local llm::quant::quantized_activations<F> qx, qxp, qa;
    llm::quant::quantize_activations(qx, xs, exec);
    detail::gather_quantized(qxp, qx, b.plan.rows, N, exec);
    float* const outs[2] = {b.gate, b.up};
    const std::span<const llm::quant::packed_view<F>> gu[2] = {w.w1, w.w3};
    detail::grouped_gemm_packed(outs, gu, 2, qxp, offsets, E, ff, qopt, exec);
    parallel::parallel_for(exec, N, detail::grain_for(ff), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t i = r0 * ff; i < r1 * ff; ++i) {
            b.act[i] = tile::swiglu(b.gate[i], b.up[i]);
        }
    });
    llm::quant::quantize_activations(qa, detail::crows_of(b.act, N, ff, ff), exec);
    float* const down[1] = {b.yp};
    const std::span<const llm::quant::packed_view<F>> dn[1] = {w.w2};
    detail::grouped_gemm_packed(down, dn, 1, qa, offsets, E, d, qopt, exec);
    detail::combine(ys, b.yp, b.plan, b.weights, T, S, d, false, exec);
    detail::cache_done(cache, b);
}

/// The packed moe_forward_quantized with a workspace of its own for this call.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, experts.weights(gate), llm::moe::softmax_top_k{}, {}, {}, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, router R, llm::quant::packable_format F>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const packed_moe_weights<F>& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, parallel::policy auto&& exec) {
    llm::workspace ws;
    moe_forward_quantized(y, cache, x, w, r, opt, qopt, ws, exec);
}

/// The MoE layer's weights with experts as llm::quant::any_matrix views (inference), as a GGUF
/// file stores them: the router's gate fp32 `[E, d]` and the stacked w1 (ffn_gate_exps), w3
/// (ffn_up_exps) `[E * ff, d]` and w2 (ffn_down_exps) `[E * d, ff]`, each in any type any_matrix
/// holds (f32, f16, bf16, Q4_0 .. Q8_0, Q2_K .. Q6_K), row-major or in 8-row interleaved groups
/// (llm::quant::repack: then ff and d must be multiples of 8, so no group spans two experts).
/// llm::moe::moe_ffn's params<llm::model::quantized> hold these; moe_forward_quantized takes them.
/// Example: `llm::moe::any_moe_weights w{gate, w1, w3, w2, 8, 14336};`
struct any_moe_weights {
    llm::strided_view<const float, 2> gate;  ///< router [E, d], fp32
    llm::quant::any_matrix w1;               ///< gate projections, stacked [E * ff, d]
    llm::quant::any_matrix w3;               ///< up projections, stacked [E * ff, d]
    llm::quant::any_matrix w2;               ///< down projections, stacked [E * d, ff]
    std::size_t experts = 0;                 ///< E
    std::size_t d_ff = 0;                    ///< ff
};

namespace detail {

inline void check_any(const char* fn, const any_moe_weights& w) {
    const std::size_t E = w.experts, ff = w.d_ff, d = w.gate.extent(1);
    llm::check(E > 0 && ff > 0 && w.gate.extent(0) == E, fn, ": gate is [", w.gate.extent(0), ", ", d,
               "] for experts = ", E, " (d_ff = ", ff, ")");
    auto is = [&](const llm::quant::any_matrix& m, std::size_t r, std::size_t c, std::size_t per, const char* name) {
        llm::check(m.extent(0) == r && m.extent(1) == c, fn, ": ", name, " is [", m.extent(0), ", ", m.extent(1), "], want [",
                   r, ", ", c, "]");
        llm::check(m.has_data(), fn, ": ", name, " has no data (a placeholder)");
        llm::check(m.layout() != llm::quant::weight_layout::bf16_panels && m.layout() != llm::quant::weight_layout::f16_panels, fn,
                   ": ", name, " is in 64-row panels; stacked experts must be row-major or interleaved in 8-row groups");
        llm::check(m.layout() == llm::quant::weight_layout::row_major || per % llm::quant::pack_group_rows == 0, fn, ": ", name,
                   " is interleaved in groups of ", llm::quant::pack_group_rows, " rows but an expert has ", per,
                   " rows (groups would span two experts; keep it row-major)");
    };
    is(w.w1, E * ff, d, ff, "w1");
    is(w.w3, E * ff, d, ff, "w3");
    is(w.w2, E * d, ff, d, "w2");
}

/// y [n, m] = x [n, k] (rows r0 .. r0 + m of w)^T, y and x contiguous: one expert's rows of a
/// stacked any_matrix. Block formats through llm::quant::gemm (a row-major matrix_view of those
/// rows, or the packed_view of their 8-row groups) with qopt; f32 / f16 / bf16 through
/// llm::quant::linear_forward.
inline void any_rows_product(float* yp, const float* xp, std::size_t n, const llm::quant::any_matrix& w, std::size_t r0,
                             std::size_t m, llm::quant::matmul_options qopt, llm::workspace& ws, auto& exec) {
    const std::size_t k = w.extent(1);
    const mat y = rows_of(yp, n, m, m);
    const cmat x = crows_of(xp, n, k, k);
    const std::span<const std::byte> bytes = w.bytes().subspan(r0 * w.row_bytes());
    const bool block = llm::quant::detail::visit_block_format(w.type(), [&](auto id) {
        using F = typename decltype(id)::type;
        if (w.layout() == llm::quant::weight_layout::interleaved8) {
            if constexpr (llm::quant::packable_format<F>) {
                const llm::quant::packed_view<F> p = w.packed<F>();
                const std::size_t g = r0 / llm::quant::pack_group_rows;
                llm::quant::gemm(y, x, llm::quant::packed_view<F>{p.group_codes(g), p.group_scales(g), m, k}, qopt, ws, exec);
            }
            return;
        }
        using blk = typename F::block;
        const std::span<const blk> blocks(reinterpret_cast<const blk*>(bytes.data()), m * (k / F::block_size));
        llm::quant::gemm(y, x, llm::quant::matrix_view<llm::quant::block_accessor<F>>(blocks, m, k), qopt, ws, exec);
    });
    if (!block) {
        llm::quant::linear_forward(llm::tensor_view<float, llm::dims<2>>(yp, llm::dims<2>(n, m)),
                                   llm::tensor_view<const float, llm::dims<2>>(xp, llm::dims<2>(n, k)),
                                   llm::quant::any_matrix(w.type(), bytes.first(m * w.row_bytes()), m, k), ws, exec);
    }
}

}  // namespace detail

/// The MoE layer's forward with any_matrix experts (inference; llm::moe::moe_ffn's
/// params<llm::model::quantized> run it): when w1, w3 and w2 share one type and layout it is
/// the typed moe_forward_quantized: Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K in 8-row interleaved groups
/// (llm::quant::repack) through the packed kernels (packed_moe_weights of each expert's groups;
/// batch-invariant), row-major block formats through quantized_moe_weights (the activations
/// quantized once for gate and up). Otherwise (mixed types as in K-quant mixes, f32 / f16 / bf16
/// experts) every busy expert's three products run one after another through
/// detail::any_rows_product (llm::quant::gemm with qopt per block format, quant::linear_forward
/// for f32 / f16 / bf16), with the same routing, SwiGLU and combine. y [T, d] is written; the
/// cache holds the routing, plan and activations. Errors as moe_forward, plus the shapes of w,
/// a matrix without data, interleaved groups that would span two experts.
/// Arguments (docs/conventions.md): output y; saved state cache; input x; parameters w;
/// options r, opt, qopt; workspace; executor.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, llm::moe::any_moe_weights{gate, w1, w3, w2, E, ff}, llm::moe::softmax_top_k{.k = 2}, {}, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, router R>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const any_moe_weights& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, llm::workspace& ws,
                           parallel::policy auto&& exec) {
    constexpr const char* fn = "moe_forward_quantized";
    const auto xs = llm::to_kernel_view<2>(x);
    auto ys = llm::to_kernel_view<2>(y);
    detail::check_any(fn, w);
    const std::size_t E = w.experts, ff = w.d_ff, d = w.gate.extent(1);
    const auto type = w.w1.type();
    const auto layout = w.w1.layout();
    bool done = false;
    if (w.w3.type() == type && w.w2.type() == type && w.w3.layout() == layout && w.w2.layout() == layout) {
        llm::quant::detail::visit_block_format(type, [&](auto id) {
            using F = typename decltype(id)::type;
            if (layout == llm::quant::weight_layout::interleaved8) {
                if constexpr (llm::quant::packable_format<F>) {
                    // each expert's groups as its own packed_view (ff, d multiples of 8: checked)
                    thread_local std::vector<llm::quant::packed_view<F>> views;
                    views.resize(3 * E);
                    const llm::quant::packed_view<F> p1 = w.w1.packed<F>(), p3 = w.w3.packed<F>(), p2 = w.w2.packed<F>();
                    const std::size_t g1 = ff / llm::quant::pack_group_rows, g2 = d / llm::quant::pack_group_rows;
                    for (std::size_t e = 0; e < E; ++e) {
                        views[e] = {p1.group_codes(e * g1), p1.group_scales(e * g1), ff, d};
                        views[E + e] = {p3.group_codes(e * g1), p3.group_scales(e * g1), ff, d};
                        views[2 * E + e] = {p2.group_codes(e * g2), p2.group_scales(e * g2), d, ff};
                    }
                    const std::span<const llm::quant::packed_view<F>> all(views);
                    moe_forward_quantized(ys, cache, xs, packed_moe_weights<F>{w.gate, all.first(E), all.subspan(E, E), all.subspan(2 * E, E), ff},
                                          r, opt, qopt, ws, exec);
                    done = true;
                }
                return;
            }
            using A = llm::quant::block_accessor<F>;
            using blk = typename F::block;
            auto view = [](const llm::quant::any_matrix& m) {
                const std::span<const blk> blocks(reinterpret_cast<const blk*>(m.bytes().data()),
                                                  m.extent(0) * (m.extent(1) / F::block_size));
                return llm::quant::matrix_view<A>(blocks, m.extent(0), m.extent(1));
            };
            using W = decltype(view(w.w1));
            moe_forward_quantized(ys, cache, xs, quantized_moe_weights<W>{w.gate, view(w.w1), view(w.w3), view(w.w2), E, ff}, r,
                                  opt, qopt, ws, exec);
            done = true;
        });
    }
    if (done) {
        return;
    }
    auto grouped = [&](float* out, const float* in, const llm::quant::any_matrix& m, const std::size_t* offsets,
                       std::size_t rows, std::size_t k) {
        for (std::size_t e = 0; e < E; ++e) {
            const std::size_t o = offsets[e], n = offsets[e + 1] - o;
            if (n != 0) {
                detail::any_rows_product(out + o * rows, in + o * k, n, m, e * rows, rows, qopt, ws, exec);
            }
        }
    };
    auto gate_up = [&](detail::forward_buffers& b, std::size_t /*N*/) {
        grouped(b.gate, b.xp, w.w1, b.plan.offsets, ff, d);
        grouped(b.up, b.xp, w.w3, b.plan.offsets, ff, d);
    };
    auto down = [&](detail::forward_buffers& b, std::size_t /*N*/) { grouped(b.yp, b.act, w.w2, b.plan.offsets, d, ff); };
    detail::quantized_forward_into(fn, ys, cache, xs, w.gate, ff, r, opt, ws, exec, gate_up, down);
}

/// The any_matrix moe_forward_quantized with a workspace of its own for this call.
/// Example: `llm::moe::moe_forward_quantized(y, cache, x, w, llm::moe::softmax_top_k{}, {}, {}, llm::parallel::sequential{});`
template <mutable_dense_view<2> Y, dense_view<2> X, router R>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void moe_forward_quantized(Y&& y, moe_cache& cache, X&& x, const any_moe_weights& w, const R& r,
                           const moe_options& opt, llm::quant::matmul_options qopt, parallel::policy auto&& exec) {
    llm::workspace ws;
    moe_forward_quantized(y, cache, x, w, r, opt, qopt, ws, exec);
}

}  // namespace llm::moe
