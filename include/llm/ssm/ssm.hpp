// SPDX-License-Identifier: Apache-2.0
// Public llm::ssm entry points: the Mamba-1 selective scan (forward, backward, decode step), the causal depthwise conv1d (forward, backward, step) and Mamba-2 SSD (chunked forward, backward, recurrent forward, step).
#pragma once

#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/ssm/cpu.hpp>
#include <llm/ssm/detail/shape.hpp>
#include <llm/ssm/options.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <tuple>
#include <type_traits>

namespace llm::ssm {

namespace detail {

/// A checked strided view of an argument, or none_t.
template <std::size_t R, class V>
auto checked_or_none(const char* fn, const char* arg, V&& v) {
    if constexpr (is_none<V>) {
        (void)fn, (void)arg;
        return none_t{};
    } else {
        return llm::to_kernel_view<dims<R>, dims<R>>(fn, arg, v);
    }
}

template <class V>
constexpr std::size_t rank_of() {
    if constexpr (is_none<V>) {
        return 0;
    } else {
        return std::remove_cvref_t<V>::rank();
    }
}

/// Checks that gradient `g` (a view or none_t) has exactly the extents of `x`.
template <class G, class X>
void check_like(const char* fn, const char* garg, const G& g, const char* xarg, const X& x) {
    if constexpr (!is_none<G>) {
        static_assert(std::remove_cvref_t<G>::rank() == std::remove_cvref_t<X>::rank(),
                      "a gradient must have the rank of its input");
        bool ok = true;
        for (std::size_t r = 0; r < x.rank(); ++r) {
            ok = ok && g.extent(r) == x.extent(r);
        }
        llm::check(ok, fn, ": ", garg, " must have the shape of ", xarg);
    }
}

template <class S, class Y, class St, class U, class Dl, class Bv, class Cv, class Z, class Av, class Dv, class DB>
void scan_entry(const char* fn, Y&& y, St&& last_state, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D,
                DB&& delta_bias, const scan_options& opt, parallel::policy auto&& exec) {
    const auto us = llm::to_kernel_view<dims<3>, dims<3>>(fn, "u", u);
    const auto ds = llm::to_kernel_view<dims<3>, dims<3>>(fn, "delta", delta);
    const auto bs = llm::to_kernel_view<dims<rank_of<Bv>()>, dims<rank_of<Bv>()>>(fn, "B", B);
    const auto cs = llm::to_kernel_view<dims<rank_of<Cv>()>, dims<rank_of<Cv>()>>(fn, "C", C);
    const auto zs = checked_or_none<3>(fn, "z", z);
    const auto as = llm::to_kernel_view<dims<2>, dims<2>>(fn, "A", A);
    const auto dks = checked_or_none<1>(fn, "D", D);
    const auto dbs = checked_or_none<1>(fn, "delta_bias", delta_bias);
    const auto sh = check_scan(fn, us, ds, bs, cs, zs, as, dks, dbs);
    check_extents<3>(fn, "y", y, {sh.batch, sh.dim, sh.len}, "u's shape (batch, D, L)");
    if constexpr (!is_none<St>) {
        check_extents<3>(fn, "last_state", last_state, {sh.batch, sh.dim, sh.n}, "(batch, D, N)");
    }
    const auto ys = llm::to_kernel_view<dims<3>, dims<3>>(fn, "y", y);
    const auto ss = checked_or_none<3>(fn, "last_state", last_state);
    const scan_problem<decltype(us), decltype(ds), decltype(bs), decltype(cs), decltype(zs), decltype(as),
                       decltype(dks), decltype(dbs)>
        pr{us, ds, bs, cs, zs, as, dks, dbs, sh, opt.delta_softplus};
    scan_forward_cpu<S>(fn, pr, ys, ss, exec);
}

}  // namespace detail

/// The Mamba-1 selective scan (mamba-ssm's `selective_scan_fn`, the maths of
/// `selective_scan_ref`): for every batch b and channel d,
///   delta_t = delta[b, d, t] + delta_bias[d], then softplus if opt.delta_softplus;
///   h_t[n]  = exp(delta_t A[d, n]) h_{t-1}[n] + delta_t B_t[n] u[b, d, t],  h_{-1} = 0;
///   y[b, d, t] = (C_t . h_t + D[d] u[b, d, t]) * silu(z[b, d, t]).
/// B_t, C_t: B[d, :] for a (D, N) B, or B[b, g, :, t] for a (batch, G, N, L) B (g = d / (D / G)).
/// last_state (batch, D, N), when not none, receives h_{L-1}: a separate output, never packed
/// into y. Vectorised over channels (S::width channels per SIMD lane group, states held in
/// registers across positions four at a time, delta u hoisted out of the state loop, the decay
/// exp(delta A) as simd::exp2(delta (A log2 e))), threads over (batch, channel block); with
/// fewer blocks than threads, L is split into chunks scanned from h = 0 and combined by the
/// chunk-state pass (tile.hpp), each later chunk then adding its true starting state's decaying
/// contribution until that is below float rounding (the whole chunk at worst, when A > 0 or
/// without softplus), so threads also work on one sequence of few channels. Results differ
/// between the two schedules by rounding only (and the dropped tail, < 2^-24 of the starting
/// state's contribution). fp32 maths.
/// Arguments (docs/conventions.md): output y; saved state last_state (or none); inputs u,
/// delta (batch, D, L), B, C, z (batch, D, L) or none; parameters A (D, N), D (D) or none,
/// delta_bias (D) or none; options; executor. mamba-ssm's order is (u, delta, A, B, C, D, z,
/// delta_bias). Elements: inputs fp32 or bf16, y fp32 or bf16, last_state fp32.
/// Errors (llm::error): mismatched batch, D, N, L or groups (naming the argument and both
/// shapes); a non-finite delta after bias and softplus (naming the position).
/// Example: `llm::ssm::selective_scan(y, state, u, delta, B, C, z, A, D, delta_bias, {.delta_softplus = true}, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<3> Y, optional_output<3> St, dense_view<3> U,
          dense_view<3> Dl, scan_bc Bv, scan_bc Cv, optional_input<3> Z, dense_view<2> Av, optional_input<1> Dv,
          optional_input<1> DB>
void selective_scan(Y&& y, St&& last_state, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& delta_bias,
                    const scan_options& opt, parallel::policy auto&& exec) {
    detail::scan_entry<S>("selective_scan", y, last_state, u, delta, B, C, z, A, D, delta_bias, opt, exec);
}

/// selective_scan on llm::parallel::default_pool().
/// Example: `llm::ssm::selective_scan(y, llm::ssm::none, u, delta, B, C, llm::ssm::none, A, llm::ssm::none, llm::ssm::none);`
template <simd::backend S = simd::default_backend, mutable_dense_view<3> Y, optional_output<3> St, dense_view<3> U,
          dense_view<3> Dl, scan_bc Bv, scan_bc Cv, optional_input<3> Z, dense_view<2> Av, optional_input<1> Dv,
          optional_input<1> DB>
void selective_scan(Y&& y, St&& last_state, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& delta_bias,
                    const scan_options& opt = {}) {
    detail::scan_entry<S>("selective_scan", y, last_state, u, delta, B, C, z, A, D, delta_bias, opt,
                          parallel::default_pool());
}

namespace detail {

template <class S, class GU, class GDl, class GB, class GC, class GZ, class GA, class GD, class GDB, class DO, class U,
          class Dl, class Bv, class Cv, class Z, class Av, class Dv, class DB>
void scan_backward_entry(GU&& du, GDl&& ddelta, GB&& dB, GC&& dC, GZ&& dz, GA&& dA, GD&& dD, GDB&& ddelta_bias,
                         DO&& dout, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& delta_bias,
                         const scan_options& opt, parallel::policy auto&& exec) {
    constexpr const char* fn = "selective_scan_backward";
    static_assert(!(is_none<Z> && !is_none<GZ>), "selective_scan_backward: dz given without z");
    static_assert(!(is_none<Dv> && !is_none<GD>), "selective_scan_backward: dD given without D");
    static_assert(!(is_none<DB> && !is_none<GDB>), "selective_scan_backward: ddelta_bias given without delta_bias");
    if constexpr (!is_none<GB>) {
        static_assert(rank_of<GB>() == rank_of<Bv>(), "selective_scan_backward: dB must have B's rank");
    }
    if constexpr (!is_none<GC>) {
        static_assert(rank_of<GC>() == rank_of<Cv>(), "selective_scan_backward: dC must have C's rank");
    }
    const auto us = llm::to_kernel_view<dims<3>, dims<3>>(fn, "u", u);
    const auto ds = llm::to_kernel_view<dims<3>, dims<3>>(fn, "delta", delta);
    const auto bs = llm::to_kernel_view<dims<rank_of<Bv>()>, dims<rank_of<Bv>()>>(fn, "B", B);
    const auto cs = llm::to_kernel_view<dims<rank_of<Cv>()>, dims<rank_of<Cv>()>>(fn, "C", C);
    const auto zs = checked_or_none<3>(fn, "z", z);
    const auto as = llm::to_kernel_view<dims<2>, dims<2>>(fn, "A", A);
    const auto dks = checked_or_none<1>(fn, "D", D);
    const auto dbs = checked_or_none<1>(fn, "delta_bias", delta_bias);
    const auto sh = check_scan(fn, us, ds, bs, cs, zs, as, dks, dbs);
    check_extents<3>(fn, "dout", dout, {sh.batch, sh.dim, sh.len}, "u's shape (batch, D, L)");
    const auto gos = llm::to_kernel_view<dims<3>, dims<3>>(fn, "dout", dout);
    const scan_grads<decltype(checked_or_none<3>(fn, "", du)), decltype(checked_or_none<3>(fn, "", ddelta)),
                     decltype(checked_or_none<rank_of<GB>()>(fn, "", dB)),
                     decltype(checked_or_none<rank_of<GC>()>(fn, "", dC)), decltype(checked_or_none<3>(fn, "", dz)),
                     decltype(checked_or_none<2>(fn, "", dA)), decltype(checked_or_none<1>(fn, "", dD)),
                     decltype(checked_or_none<1>(fn, "", ddelta_bias))>
        gr{checked_or_none<3>(fn, "du", du),
           checked_or_none<3>(fn, "ddelta", ddelta),
           checked_or_none<rank_of<GB>()>(fn, "dB", dB),
           checked_or_none<rank_of<GC>()>(fn, "dC", dC),
           checked_or_none<3>(fn, "dz", dz),
           checked_or_none<2>(fn, "dA", dA),
           checked_or_none<1>(fn, "dD", dD),
           checked_or_none<1>(fn, "ddelta_bias", ddelta_bias)};
    check_like(fn, "du", gr.du, "u", us);
    check_like(fn, "ddelta", gr.ddelta, "delta", ds);
    check_like(fn, "dB", gr.db, "B", bs);
    check_like(fn, "dC", gr.dc, "C", cs);
    check_like(fn, "dA", gr.da, "A", as);
    if constexpr (!is_none<GZ>) {
        check_like(fn, "dz", gr.dz, "z", zs);
    }
    if constexpr (!is_none<GD>) {
        check_like(fn, "dD", gr.dd, "D", dks);
    }
    if constexpr (!is_none<GDB>) {
        check_like(fn, "ddelta_bias", gr.ddb, "delta_bias", dbs);
    }
    const scan_problem<decltype(us), decltype(ds), decltype(bs), decltype(cs), decltype(zs), decltype(as),
                       decltype(dks), decltype(dbs)>
        pr{us, ds, bs, cs, zs, as, dks, dbs, sh, opt.delta_softplus};
    scan_backward_cpu<S>(fn, pr, gr, gos, exec);
}

}  // namespace detail

/// Backward of selective_scan: the gradients of sum(y * dout) with respect to u, delta (the raw
/// delta, before bias and softplus), B, C, z, A, D and delta_bias, ADDED to du, ddelta, dB,
/// dC, dz, dA, dD, ddelta_bias (gradients accumulate, docs/conventions.md: clear them first
/// with llm::zero_grad). Any gradient may be llm::ssm::none (not computed); dz, dD and
/// ddelta_bias must be none when z, D and delta_bias are. dB and dC have B's and C's shapes.
/// The states are recomputed (a forward pass keeps one state per 64 positions, each chunk is
/// recomputed from it), so the forward's outputs are not needed. Deterministic for any thread
/// count: the variable dB / dC shared by a group's channels are summed per part and the parts
/// added in a fixed order.
/// Arguments (docs/conventions.md): gradients du, ddelta, dB, dC, dz, dA, dD, ddelta_bias;
/// inputs dout, u, delta, B, C, z; parameters A, D, delta_bias; options (the forward's);
/// executor. Elements: inputs fp32 or bf16; gradients fp32.
/// Example: `llm::zero_grad(du, ddelta, dB, dC, dA); llm::ssm::selective_scan_backward(du, ddelta, dB, dC, llm::ssm::none, dA, llm::ssm::none, llm::ssm::none, dout, u, delta, B, C, llm::ssm::none, A, llm::ssm::none, llm::ssm::none, {}, pool);`
template <simd::backend S = simd::default_backend, optional_output<3> GU, optional_output<3> GDl, scan_bc_grad GB,
          scan_bc_grad GC, optional_output<3> GZ, optional_output<2> GA, optional_output<1> GD, optional_output<1> GDB,
          dense_view<3> DO, dense_view<3> U, dense_view<3> Dl, scan_bc Bv, scan_bc Cv, optional_input<3> Z,
          dense_view<2> Av, optional_input<1> Dv, optional_input<1> DB>
void selective_scan_backward(GU&& du, GDl&& ddelta, GB&& dB, GC&& dC, GZ&& dz, GA&& dA, GD&& dD, GDB&& ddelta_bias,
                             DO&& dout, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& delta_bias,
                             const scan_options& opt, parallel::policy auto&& exec) {
    detail::scan_backward_entry<S>(du, ddelta, dB, dC, dz, dA, dD, ddelta_bias, dout, u, delta, B, C, z, A, D,
                                   delta_bias, opt, exec);
}

/// selective_scan_backward on llm::parallel::default_pool().
/// Example: `llm::ssm::selective_scan_backward(du, ddelta, dB, dC, dz, dA, dD, ddb, dout, u, delta, B, C, z, A, D, db);`
template <simd::backend S = simd::default_backend, optional_output<3> GU, optional_output<3> GDl, scan_bc_grad GB,
          scan_bc_grad GC, optional_output<3> GZ, optional_output<2> GA, optional_output<1> GD, optional_output<1> GDB,
          dense_view<3> DO, dense_view<3> U, dense_view<3> Dl, scan_bc Bv, scan_bc Cv, optional_input<3> Z,
          dense_view<2> Av, optional_input<1> Dv, optional_input<1> DB>
void selective_scan_backward(GU&& du, GDl&& ddelta, GB&& dB, GC&& dC, GZ&& dz, GA&& dA, GD&& dD, GDB&& ddelta_bias,
                             DO&& dout, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& delta_bias,
                             const scan_options& opt = {}) {
    detail::scan_backward_entry<S>(du, ddelta, dB, dC, dz, dA, dD, ddelta_bias, dout, u, delta, B, C, z, A, D,
                                   delta_bias, opt, parallel::default_pool());
}


// ---- decode step of the selective scan ---------------------------------------------------------

namespace detail {

template <class S, class Y, class St, class X, class Dt, class Bv, class Cv, class Z, class Av, class Dv, class DB>
void state_update_entry(Y&& y, St&& state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& dt_bias,
                        const scan_options& opt, parallel::policy auto&& exec) {
    constexpr const char* fn = "selective_state_update";
    const auto xs = llm::to_kernel_view<dims<2>, dims<2>>(fn, "x", x);
    const auto as = llm::to_kernel_view<dims<2>, dims<2>>(fn, "A", A);
    const std::size_t batch = xs.extent(0), dim = xs.extent(1), n = as.extent(1);
    check_extents<2>(fn, "dt", dt, {batch, dim}, "x's shape (batch, D)");
    check_extents<2>(fn, "y", y, {batch, dim}, "x's shape (batch, D)");
    llm::check(as.extent(0) == dim, fn, ": A has ", as.extent(0), " rows but x has D = ", dim,
               " channels (A is (D, N))");
    check_extents<3>(fn, "state", state, {batch, dim, n}, "(batch, D, N) with N from A");
    auto bc = [&](const char* name, const auto& v) {
        using V = std::remove_cvref_t<decltype(v)>;
        if constexpr (V::rank() == 2) {
            check_extents<2>(fn, name, v, {dim, n}, "(D, N)");
        } else {
            const std::size_t groups = v.extent(1);
            llm::check(groups >= 1 && dim % groups == 0, fn, ": ", name, " has ", groups,
                       " groups, which must divide D = ", dim);
            check_extents<3>(fn, name, v, {batch, groups, n}, "(batch, groups, N)");
        }
    };
    bc("B", B);
    bc("C", C);
    if constexpr (!is_none<Z>) {
        check_extents<2>(fn, "z", z, {batch, dim}, "x's shape (batch, D)");
    }
    if constexpr (!is_none<Dv>) {
        check_extents<1>(fn, "D", D, {dim}, "one skip weight per channel");
    }
    if constexpr (!is_none<DB>) {
        check_extents<1>(fn, "dt_bias", dt_bias, {dim}, "one bias per channel");
    }
    state_update_cpu<S>(fn, llm::to_kernel_view<dims<2>, dims<2>>(fn, "y", y),
                        llm::to_kernel_view<dims<3>, dims<3>>(fn, "state", state), xs,
                        llm::to_kernel_view<dims<2>, dims<2>>(fn, "dt", dt),
                        llm::to_kernel_view<dims<rank_of<Bv>()>, dims<rank_of<Bv>()>>(fn, "B", B),
                        llm::to_kernel_view<dims<rank_of<Cv>()>, dims<rank_of<Cv>()>>(fn, "C", C),
                        checked_or_none<2>(fn, "z", z), as, checked_or_none<1>(fn, "D", D),
                        checked_or_none<1>(fn, "dt_bias", dt_bias), opt.delta_softplus, exec);
}

}  // namespace detail

/// B or C of the decode step: (D, N), or input-dependent (batch, groups, N).
/// Example: `static_assert(llm::ssm::step_bc<llm::tensor<float, llm::dims<3>>&>);`
template <class V>
concept step_bc = dense_view<V, 2> || dense_view<V, 3>;

/// One decode step of the selective scan (mamba-ssm's `selective_state_update`): for each batch b
/// and channel d, with dt' = softplus(dt + dt_bias) (as selective_scan's delta),
///   state[b, d, :] = exp(dt' A[d, :]) state[b, d, :] + dt' B x[b, d];
///   y[b, d] = (C . state[b, d, :] + D[d] x[b, d]) * silu(z[b, d]),
/// the state updated in place: running it over a sequence token by token gives selective_scan's
/// y at every position (tested over 1000 steps). Vectorised over N. Allocates nothing.
/// Arguments (docs/conventions.md): output y (batch, D); saved state `state` (batch, D, N),
/// fp32, read and written; inputs x, dt (batch, D), B, C ((batch, G, N) or (D, N)), z (batch, D)
/// or none; parameters A (D, N), D or none, dt_bias or none; options; executor.
/// Errors: a state or any argument of the wrong shape, groups not dividing D, a non-finite dt.
/// Example: `llm::ssm::selective_state_update(y, state, x, dt, B, C, z, A, D, dt_bias, {.delta_softplus = true}, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, view_of_rank<3> St, dense_view<2> X,
          dense_view<2> Dt, step_bc Bv, step_bc Cv, optional_input<2> Z, dense_view<2> Av, optional_input<1> Dv,
          optional_input<1> DB>
    requires std::same_as<view_element_t<St>, float>
void selective_state_update(Y&& y, St&& state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& dt_bias,
                            const scan_options& opt, parallel::policy auto&& exec) {
    detail::state_update_entry<S>(y, state, x, dt, B, C, z, A, D, dt_bias, opt, exec);
}

/// selective_state_update on llm::parallel::default_pool().
/// Example: `llm::ssm::selective_state_update(y, state, x, dt, B, C, llm::ssm::none, A, D, dt_bias, {.delta_softplus = true});`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, view_of_rank<3> St, dense_view<2> X,
          dense_view<2> Dt, step_bc Bv, step_bc Cv, optional_input<2> Z, dense_view<2> Av, optional_input<1> Dv,
          optional_input<1> DB>
    requires std::same_as<view_element_t<St>, float>
void selective_state_update(Y&& y, St&& state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& D, DB&& dt_bias,
                            const scan_options& opt = {}) {
    detail::state_update_entry<S>(y, state, x, dt, B, C, z, A, D, dt_bias, opt, parallel::default_pool());
}

// ---- causal depthwise conv1d -------------------------------------------------------------------

namespace detail {

template <class X, class Wt, class Bi>
std::size_t check_conv(const char* fn, const X& x, const Wt& w, const Bi& bias) {
    const std::size_t dim = x.extent(1), width = w.extent(1);
    llm::check(w.extent(0) == dim, fn, ": weight has ", w.extent(0), " rows but x has D = ", dim, " channels");
    llm::check(width >= 1, fn, ": weight has width 0");
    if constexpr (!is_none<Bi>) {
        check_extents<1>(fn, "bias", bias, {dim}, "one bias per channel");
    }
    return width;
}

}  // namespace detail

/// Causal depthwise conv1d (causal-conv1d's `causal_conv1d_fn`, Mamba's conv1d with padding
/// width - 1 cut back to L): y[b, d, t] = bias[d] + sum_{k < W} weight[d, k] x[b, d, t - W + 1 + k]
/// (x = 0 before t = 0), then SiLU when opt.silu. final_state (batch, D, W - 1), when not none,
/// receives the last W - 1 inputs (zeros before t = 0): the rolling state conv1d_step continues
/// from. Mamba's width is 4; any width >= 1 works.
/// Arguments (docs/conventions.md): output y (batch, D, L); saved state final_state or none;
/// input x (batch, D, L); parameters weight (D, W) (Hugging Face's conv1d.weight (D, 1, W)
/// viewed without its middle axis), bias (D) or none; options; executor.
/// Example: `llm::ssm::conv1d_forward(y, conv_state, x, weight, bias, {.silu = true}, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<3> Y, optional_output<3> St, dense_view<3> X,
          dense_view<2> Wt, optional_input<1> Bi>
void conv1d_forward(Y&& y, St&& final_state, X&& x, Wt&& weight, Bi&& bias, const conv_options& opt,
                    parallel::policy auto&& exec) {
    constexpr const char* fn = "conv1d_forward";
    const auto xs = llm::to_kernel_view<dims<3>, dims<3>>(fn, "x", x);
    const auto ws = llm::to_kernel_view<dims<2>, dims<2>>(fn, "weight", weight);
    const std::size_t W = detail::check_conv(fn, xs, ws, bias);
    detail::check_extents<3>(fn, "y", y, {xs.extent(0), xs.extent(1), xs.extent(2)}, "x's shape (batch, D, L)");
    if constexpr (!is_none<St>) {
        detail::check_extents<3>(fn, "final_state", final_state, {xs.extent(0), xs.extent(1), W - 1},
                                 "(batch, D, width - 1)");
    }
    detail::conv1d_forward_cpu<S>(llm::to_kernel_view<dims<3>, dims<3>>(fn, "y", y),
                                  detail::checked_or_none<3>(fn, "final_state", final_state), xs, ws,
                                  detail::checked_or_none<1>(fn, "bias", bias), opt.silu, exec);
}

/// conv1d_forward on llm::parallel::default_pool().
/// Example: `llm::ssm::conv1d_forward(y, llm::ssm::none, x, weight, bias, {.silu = true});`
template <simd::backend S = simd::default_backend, mutable_dense_view<3> Y, optional_output<3> St, dense_view<3> X,
          dense_view<2> Wt, optional_input<1> Bi>
void conv1d_forward(Y&& y, St&& final_state, X&& x, Wt&& weight, Bi&& bias, const conv_options& opt = {}) {
    conv1d_forward<S>(y, final_state, x, weight, bias, opt, parallel::default_pool());
}

/// Backward of conv1d_forward: dx, dweight, dbias of sum(y * dy), ADDED (gradients accumulate;
/// each element gets one addition per call). Any gradient may be none; dbias must be none when
/// bias is. Recomputes the pre-activation.
/// Arguments (docs/conventions.md): gradients dx (batch, D, L), dweight (D, W), dbias (D); inputs
/// dy, x; parameters weight, bias; options (the forward's); executor.
/// Example: `llm::ssm::conv1d_backward(dx, dweight, dbias, dy, x, weight, bias, {.silu = true}, pool);`
template <simd::backend S = simd::default_backend, optional_output<3> GX, optional_output<2> GW, optional_output<1> GB,
          dense_view<3> DY, dense_view<3> X, dense_view<2> Wt, optional_input<1> Bi>
void conv1d_backward(GX&& dx, GW&& dweight, GB&& dbias, DY&& dy, X&& x, Wt&& weight, Bi&& bias,
                     const conv_options& opt, parallel::policy auto&& exec) {
    constexpr const char* fn = "conv1d_backward";
    static_assert(!(is_none<Bi> && !is_none<GB>), "conv1d_backward: dbias given without bias");
    const auto xs = llm::to_kernel_view<dims<3>, dims<3>>(fn, "x", x);
    const auto ws = llm::to_kernel_view<dims<2>, dims<2>>(fn, "weight", weight);
    const std::size_t W = detail::check_conv(fn, xs, ws, bias);
    const std::array<std::size_t, 3> xe{xs.extent(0), xs.extent(1), xs.extent(2)};
    detail::check_extents<3>(fn, "dy", dy, xe, "x's shape (batch, D, L)");
    if constexpr (!is_none<GX>) {
        detail::check_extents<3>(fn, "dx", dx, xe, "x's shape (batch, D, L)");
    }
    if constexpr (!is_none<GW>) {
        detail::check_extents<2>(fn, "dweight", dweight, {xe[1], W}, "weight's shape (D, width)");
    }
    if constexpr (!is_none<GB>) {
        detail::check_extents<1>(fn, "dbias", dbias, {xe[1]}, "bias's shape (D)");
    }
    detail::conv1d_backward_cpu<S>(detail::checked_or_none<3>(fn, "dx", dx), detail::checked_or_none<2>(fn, "dweight", dweight),
                                   detail::checked_or_none<1>(fn, "dbias", dbias),
                                   llm::to_kernel_view<dims<3>, dims<3>>(fn, "dy", dy), xs, ws,
                                   detail::checked_or_none<1>(fn, "bias", bias), opt.silu, exec);
}

/// conv1d_backward on llm::parallel::default_pool().
/// Example: `llm::ssm::conv1d_backward(dx, dweight, dbias, dy, x, weight, bias, {.silu = true});`
template <simd::backend S = simd::default_backend, optional_output<3> GX, optional_output<2> GW, optional_output<1> GB,
          dense_view<3> DY, dense_view<3> X, dense_view<2> Wt, optional_input<1> Bi>
void conv1d_backward(GX&& dx, GW&& dweight, GB&& dbias, DY&& dy, X&& x, Wt&& weight, Bi&& bias,
                     const conv_options& opt = {}) {
    conv1d_backward<S>(dx, dweight, dbias, dy, x, weight, bias, opt, parallel::default_pool());
}

/// One decode step of the causal conv1d (causal-conv1d's `causal_conv1d_update`) with a rolling
/// state of the last W - 1 inputs: y[b, d] = bias[d] + sum_{k < W-1} weight[d, k] state[b, d, k]
/// + weight[d, W-1] x[b, d] (SiLU when opt.silu); then the state drops its oldest input and
/// appends x. Continuing from conv1d_forward's final_state, steps give conv1d_forward's outputs.
/// Arguments (docs/conventions.md): output y (batch, D); saved state `state` (batch, D, W - 1),
/// fp32, read and written; input x (batch, D); parameters weight (D, W), bias or none; options;
/// executor. Errors: a state of the wrong shape (or any other mismatch).
/// Example: `llm::ssm::conv1d_step(y, conv_state, x, weight, bias, {.silu = true}, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, view_of_rank<3> St, dense_view<2> X,
          dense_view<2> Wt, optional_input<1> Bi>
    requires std::same_as<view_element_t<St>, float>
void conv1d_step(Y&& y, St&& state, X&& x, Wt&& weight, Bi&& bias, const conv_options& opt,
                 parallel::policy auto&& exec) {
    constexpr const char* fn = "conv1d_step";
    const auto xs = llm::to_kernel_view<dims<2>, dims<2>>(fn, "x", x);
    const auto ws = llm::to_kernel_view<dims<2>, dims<2>>(fn, "weight", weight);
    const std::size_t W = detail::check_conv(fn, xs, ws, bias);
    detail::check_extents<2>(fn, "y", y, {xs.extent(0), xs.extent(1)}, "x's shape (batch, D)");
    detail::check_extents<3>(fn, "state", state, {xs.extent(0), xs.extent(1), W - 1}, "(batch, D, width - 1)");
    detail::conv1d_step_cpu<S>(llm::to_kernel_view<dims<2>, dims<2>>(fn, "y", y),
                            llm::to_kernel_view<dims<3>, dims<3>>(fn, "state", state), xs, ws,
                            detail::checked_or_none<1>(fn, "bias", bias), opt.silu, exec);
}

/// conv1d_step on llm::parallel::default_pool().
/// Example: `llm::ssm::conv1d_step(y, conv_state, x, weight, bias, {.silu = true});`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> Y, view_of_rank<3> St, dense_view<2> X,
          dense_view<2> Wt, optional_input<1> Bi>
    requires std::same_as<view_element_t<St>, float>
void conv1d_step(Y&& y, St&& state, X&& x, Wt&& weight, Bi&& bias, const conv_options& opt = {}) {
    conv1d_step<S>(y, state, x, weight, bias, opt, parallel::default_pool());
}

// ---- Mamba-2 SSD ---------------------------------------------------------------------------------

namespace detail {

template <class Y, class St, class X, class Dt, class Bv, class Cv, class Av>
ssd_shape check_ssd_call(const char* fn, const Y& y, const St& state, const X& x, const Dt& dt, const Bv& B,
                         const Cv& C, const Av& A) {
    const auto sh = check_ssd(fn, x, dt, B, C, A);
    check_extents<4>(fn, "y", y, {sh.batch, sh.len, sh.heads, sh.p}, "x's shape (batch, L, heads, P)");
    if constexpr (!is_none<St>) {
        check_extents<4>(fn, "final_state", state, {sh.batch, sh.heads, sh.p, sh.n}, "(batch, heads, P, N)");
    }
    return sh;
}

}  // namespace detail

/// Mamba-2 SSD forward by the chunked algorithm (mamba-ssm's `ssd_minimal_discrete`, the
/// algorithm of `mamba_chunk_scan_combined`): scalar decay A[h] per head, state (P, N) per head,
///   h_t = exp(dt_t A[h]) h_{t-1} + dt_t x_t B_t^T,  y_t = h_t C_t  (x_t = x[b, t, h, :], B_t, C_t
///   of head h's group g = h / (H / G)),
/// computed per chunk of opt.chunk positions: the intra-chunk quadratic form (C B^T masked and
/// weighted by the decays) plus the states passed between chunks. Equal to the recurrence
/// (ssd_forward_recurrent, ssd_ref) up to rounding; faster on the CPU from L = 512 (BENCHMARKS in
/// docs/ssm.md). Threads over (batch, head). D skip, z gate and dt's bias and softplus belong
/// to the Mamba-2 block, not here (dt must be the final step sizes).
/// Arguments (docs/conventions.md): output y (batch, L, H, P); saved state final_state
/// (batch, H, P, N) or none; inputs x (batch, L, H, P), dt (batch, L, H), B, C (batch, L, G, N);
/// parameter A (H); options; executor.
/// Example: `llm::ssm::ssd_forward(y, state, x, dt, B, C, A, {.chunk = 64}, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<4> Y, optional_output<4> St, dense_view<4> X,
          dense_view<3> Dt, dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_forward(Y&& y, St&& final_state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A, const ssd_options& opt,
                 parallel::policy auto&& exec) {
    constexpr const char* fn = "ssd_forward";
    const auto sh = detail::check_ssd_call(fn, y, final_state, x, dt, B, C, A);
    detail::ssd_chunked_cpu<S>(sh, opt.chunk, llm::to_kernel_view<dims<4>, dims<4>>(fn, "y", y),
                               detail::checked_or_none<4>(fn, "final_state", final_state),
                               llm::to_kernel_view<dims<4>, dims<4>>(fn, "x", x),
                               llm::to_kernel_view<dims<3>, dims<3>>(fn, "dt", dt),
                               llm::to_kernel_view<dims<4>, dims<4>>(fn, "B", B),
                               llm::to_kernel_view<dims<4>, dims<4>>(fn, "C", C),
                               llm::to_kernel_view<dims<1>, dims<1>>(fn, "A", A), exec);
}

/// ssd_forward on llm::parallel::default_pool().
/// Example: `llm::ssm::ssd_forward(y, llm::ssm::none, x, dt, B, C, A);`
template <simd::backend S = simd::default_backend, mutable_dense_view<4> Y, optional_output<4> St, dense_view<4> X,
          dense_view<3> Dt, dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_forward(Y&& y, St&& final_state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A, const ssd_options& opt = {}) {
    ssd_forward<S>(y, final_state, x, dt, B, C, A, opt, parallel::default_pool());
}

/// Mamba-2 SSD forward by the recurrence, position by position (vectorised over N): the same
/// results as ssd_forward; the baseline the chunked algorithm is measured against, and what
/// ssd_step does per token. Arguments as ssd_forward, without options.
/// Example: `llm::ssm::ssd_forward_recurrent(y, state, x, dt, B, C, A, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<4> Y, optional_output<4> St, dense_view<4> X,
          dense_view<3> Dt, dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_forward_recurrent(Y&& y, St&& final_state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A,
                           parallel::policy auto&& exec) {
    constexpr const char* fn = "ssd_forward_recurrent";
    const auto sh = detail::check_ssd_call(fn, y, final_state, x, dt, B, C, A);
    detail::ssd_recurrent_cpu<S>(sh, llm::to_kernel_view<dims<4>, dims<4>>(fn, "y", y),
                                 detail::checked_or_none<4>(fn, "final_state", final_state),
                                 llm::to_kernel_view<dims<4>, dims<4>>(fn, "x", x),
                                 llm::to_kernel_view<dims<3>, dims<3>>(fn, "dt", dt),
                                 llm::to_kernel_view<dims<4>, dims<4>>(fn, "B", B),
                                 llm::to_kernel_view<dims<4>, dims<4>>(fn, "C", C),
                                 llm::to_kernel_view<dims<1>, dims<1>>(fn, "A", A), exec);
}

/// ssd_forward_recurrent on llm::parallel::default_pool().
/// Example: `llm::ssm::ssd_forward_recurrent(y, llm::ssm::none, x, dt, B, C, A);`
template <simd::backend S = simd::default_backend, mutable_dense_view<4> Y, optional_output<4> St, dense_view<4> X,
          dense_view<3> Dt, dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_forward_recurrent(Y&& y, St&& final_state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A) {
    ssd_forward_recurrent<S>(y, final_state, x, dt, B, C, A, parallel::default_pool());
}

namespace detail {

/// The argument checks both SSD backwards share: the forward's shapes (check_ssd_call), each
/// gradient that is not none shaped as its input, every view converted once (named in errors by
/// `fn`); then run(shape, dx, ddt, dB, dC, dA, dy, x, dt, B, C, A) on the kernel views.
template <class GX, class GT, class GB, class GC, class GA, class DY, class X, class Dt, class Bv, class Cv, class Av,
          class Run>
void ssd_backward_checked(const char* fn, GX& dx, GT& ddt, GB& dB, GC& dC, GA& dA, DY& dy, X& x, Dt& dt, Bv& B,
                          Cv& C, Av& A, Run&& run) {
    const auto sh = check_ssd_call(fn, dy, none, x, dt, B, C, A);
    auto like = [&](const char* name, const auto& g, auto want, const char* what) {
        if constexpr (!is_none<decltype(g)>) {
            check_extents<std::tuple_size_v<decltype(want)>>(fn, name, g, want, what);
        }
    };
    like("dx", dx, std::array<std::size_t, 4>{sh.batch, sh.len, sh.heads, sh.p}, "x's shape");
    like("ddt", ddt, std::array<std::size_t, 3>{sh.batch, sh.len, sh.heads}, "dt's shape");
    like("dB", dB, std::array<std::size_t, 4>{sh.batch, sh.len, sh.groups, sh.n}, "B's shape");
    like("dC", dC, std::array<std::size_t, 4>{sh.batch, sh.len, sh.groups, sh.n}, "C's shape");
    like("dA", dA, std::array<std::size_t, 1>{sh.heads}, "A's shape");
    run(sh, checked_or_none<4>(fn, "dx", dx), checked_or_none<3>(fn, "ddt", ddt), checked_or_none<4>(fn, "dB", dB),
        checked_or_none<4>(fn, "dC", dC), checked_or_none<1>(fn, "dA", dA),
        llm::to_kernel_view<dims<4>, dims<4>>(fn, "dy", dy), llm::to_kernel_view<dims<4>, dims<4>>(fn, "x", x),
        llm::to_kernel_view<dims<3>, dims<3>>(fn, "dt", dt), llm::to_kernel_view<dims<4>, dims<4>>(fn, "B", B),
        llm::to_kernel_view<dims<4>, dims<4>>(fn, "C", C), llm::to_kernel_view<dims<1>, dims<1>>(fn, "A", A));
}

}  // namespace detail

/// Backward of the SSD scan: dx, ddt, dB, dC, dA of sum(y * dy), ADDED (gradients accumulate;
/// each element gets one addition per call); any may be none. The chunked algorithm run in
/// reverse: a forward pass keeps the state entering every chunk of opt.chunk positions, then per
/// chunk, last to first, the quadratic form's gradients (C B^T, the decays, dt x), the entering
/// state's part of y, and the state gradient passed to the chunk before. The same gradients as
/// ssd_backward_recurrent up to rounding; deterministic for any thread count.
/// Arguments (docs/conventions.md): gradients dx (batch, L, H, P), ddt (batch, L, H), dB, dC
/// (batch, L, G, N), dA (H); inputs dy, x, dt, B, C; parameter A; options; executor.
/// Example: `llm::zero_grad(dx, ddt, dB, dC, dA); llm::ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A, {.chunk = 64}, pool);`
template <simd::backend S = simd::default_backend, optional_output<4> GX, optional_output<3> GT, optional_output<4> GB,
          optional_output<4> GC, optional_output<1> GA, dense_view<4> DY, dense_view<4> X, dense_view<3> Dt,
          dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_backward(GX&& dx, GT&& ddt, GB&& dB, GC&& dC, GA&& dA, DY&& dy, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A,
                  const ssd_options& opt, parallel::policy auto&& exec) {
    detail::ssd_backward_checked("ssd_backward", dx, ddt, dB, dC, dA, dy, x, dt, B, C, A,
                                 [&](const detail::ssd_shape& sh, const auto&... v) {
                                     detail::ssd_backward_chunked_cpu<S>(sh, opt.chunk, v..., exec);
                                 });
}

/// ssd_backward with the default options (chunks of 64).
/// Example: `llm::ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A, pool);`
template <simd::backend S = simd::default_backend, optional_output<4> GX, optional_output<3> GT, optional_output<4> GB,
          optional_output<4> GC, optional_output<1> GA, dense_view<4> DY, dense_view<4> X, dense_view<3> Dt,
          dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_backward(GX&& dx, GT&& ddt, GB&& dB, GC&& dC, GA&& dA, DY&& dy, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A,
                  parallel::policy auto&& exec) {
    ssd_backward<S>(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A, ssd_options{}, exec);
}

/// Backward of the SSD scan through the recurrence (the baseline ssd_backward is measured and
/// tested against): same arguments and results as ssd_backward without options. The recurrence run backwards
/// (G_t = dy_t C_t^T + a_{t+1} G_{t+1}) on states recomputed from a checkpoint every 16
/// positions (a forward pass keeps them: O(L / 16 P N) memory per thread). Deterministic for any
/// thread count.
/// Arguments (docs/conventions.md): gradients dx (batch, L, H, P), ddt (batch, L, H), dB, dC
/// (batch, L, G, N), dA (H); inputs dy, x, dt, B, C; parameter A; executor.
/// Example: `llm::zero_grad(dx, ddt, dB, dC, dA); llm::ssm::ssd_backward_recurrent(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A, pool);`
template <simd::backend S = simd::default_backend, optional_output<4> GX, optional_output<3> GT, optional_output<4> GB,
          optional_output<4> GC, optional_output<1> GA, dense_view<4> DY, dense_view<4> X, dense_view<3> Dt,
          dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_backward_recurrent(GX&& dx, GT&& ddt, GB&& dB, GC&& dC, GA&& dA, DY&& dy, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A,
                  parallel::policy auto&& exec) {
    detail::ssd_backward_checked("ssd_backward_recurrent", dx, ddt, dB, dC, dA, dy, x, dt, B, C, A,
                                 [&](const detail::ssd_shape& sh, const auto&... v) {
                                     detail::ssd_backward_cpu<S>(sh, v..., exec);
                                 });
}

/// ssd_backward on llm::parallel::default_pool().
/// Example: `llm::ssm::ssd_backward(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A);`
template <simd::backend S = simd::default_backend, optional_output<4> GX, optional_output<3> GT, optional_output<4> GB,
          optional_output<4> GC, optional_output<1> GA, dense_view<4> DY, dense_view<4> X, dense_view<3> Dt,
          dense_view<4> Bv, dense_view<4> Cv, dense_view<1> Av>
void ssd_backward(GX&& dx, GT&& ddt, GB&& dB, GC&& dC, GA&& dA, DY&& dy, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A) {
    ssd_backward<S>(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A, parallel::default_pool());
}

/// One decode step of Mamba-2 SSD: state[b, h] (P, N) = exp(dt A[h]) state[b, h] + dt x B^T,
/// y[b, h, :] = state[b, h] C, the state updated in place (vectorised over N). Token by token it
/// gives ssd_forward's y at every position.
/// Arguments (docs/conventions.md): output y (batch, H, P); saved state `state` (batch, H, P, N),
/// fp32, read and written; inputs x (batch, H, P), dt (batch, H), B, C (batch, G, N); parameter
/// A (H); executor. Errors: a state or argument of the wrong shape, groups not dividing H.
/// Example: `llm::ssm::ssd_step(y, state, x, dt, B, C, A, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<3> Y, view_of_rank<4> St, dense_view<3> X,
          dense_view<2> Dt, dense_view<3> Bv, dense_view<3> Cv, dense_view<1> Av>
    requires std::same_as<view_element_t<St>, float>
void ssd_step(Y&& y, St&& state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A, parallel::policy auto&& exec) {
    constexpr const char* fn = "ssd_step";
    const auto xs = llm::to_kernel_view<dims<3>, dims<3>>(fn, "x", x);
    const std::size_t batch = xs.extent(0), H = xs.extent(1), P = xs.extent(2);
    const std::size_t G = B.extent(1), N = B.extent(2);
    llm::check(G >= 1 && H % G == 0, fn, ": B has ", G, " groups, which must divide the ", H, " heads of x");
    detail::check_extents<3>(fn, "B", B, {batch, G, N}, "(batch, groups, N)");
    detail::check_extents<3>(fn, "C", C, {batch, G, N}, "B's shape (batch, groups, N)");
    detail::check_extents<2>(fn, "dt", dt, {batch, H}, "(batch, heads)");
    detail::check_extents<1>(fn, "A", A, {H}, "one decay per head");
    detail::check_extents<3>(fn, "y", y, {batch, H, P}, "x's shape (batch, heads, P)");
    detail::check_extents<4>(fn, "state", state, {batch, H, P, N}, "(batch, heads, P, N)");
    const auto ys = llm::to_kernel_view<dims<3>, dims<3>>(fn, "y", y);
    const auto ss = llm::to_kernel_view<dims<4>, dims<4>>(fn, "state", state);
    const auto ts = llm::to_kernel_view<dims<2>, dims<2>>(fn, "dt", dt);
    const auto bs = llm::to_kernel_view<dims<3>, dims<3>>(fn, "B", B);
    const auto cs = llm::to_kernel_view<dims<3>, dims<3>>(fn, "C", C);
    const auto as = llm::to_kernel_view<dims<1>, dims<1>>(fn, "A", A);
    using TY = std::remove_reference_t<decltype(ys(0, 0, 0))>;
    // The state's rows are advanced in place when they are contiguous (a copy in and out of a
    // buffer, element by element, was most of the step: BENCHMARKS.md, 2026-12-07).
    const bool in_place = ss.stride(3) == 1 || N <= 1;
    parallel::parallel_for(exec, batch * H, 4, [&](std::size_t i0, std::size_t i1) {
        detail::fbuf hs(in_place ? 0 : P * N), xr(P), br(N), cr(N), yr(P);
        std::size_t staged = static_cast<std::size_t>(-1);
        for (std::size_t i = i0; i < i1; ++i) {
            const std::size_t b = i / H, h = i % H, g = h / (H / G);
            for (std::size_t p = 0; p < P; ++p) {
                xr.data()[p] = detail::to_f(xs(b, h, p));
            }
            if (b * G + g != staged) {  // B and C are shared by a group's heads
                for (std::size_t n = 0; n < N; ++n) {
                    br.data()[n] = detail::to_f(bs(b, g, n));
                    cr.data()[n] = detail::to_f(cs(b, g, n));
                }
                staged = b * G + g;
            }
            float* rows = hs.data();
            std::size_t rs = N;
            if (in_place) {
                rows = &ss(b, h, 0, 0), rs = static_cast<std::size_t>(ss.stride(2));
            } else {
                for (std::size_t p = 0; p < P; ++p) {
                    for (std::size_t n = 0; n < N; ++n) {
                        rows[p * N + n] = ss(b, h, p, n);
                    }
                }
            }
            const float dtt = detail::to_f(ts(b, h));
            detail::ssd_recurrent_step<S>(rows, rs, P, N, std::exp(dtt * detail::to_f(as(h))), dtt, xr.data(),
                                          br.data(), cr.data(), yr.data());
            for (std::size_t p = 0; p < P; ++p) {
                ys(b, h, p) = TY(yr.data()[p]);
            }
            if (!in_place) {
                for (std::size_t p = 0; p < P; ++p) {
                    for (std::size_t n = 0; n < N; ++n) {
                        ss(b, h, p, n) = rows[p * N + n];
                    }
                }
            }
        }
    });
}

/// ssd_step on llm::parallel::default_pool().
/// Example: `llm::ssm::ssd_step(y, state, x, dt, B, C, A);`
template <simd::backend S = simd::default_backend, mutable_dense_view<3> Y, view_of_rank<4> St, dense_view<3> X,
          dense_view<2> Dt, dense_view<3> Bv, dense_view<3> Cv, dense_view<1> Av>
    requires std::same_as<view_element_t<St>, float>
void ssd_step(Y&& y, St&& state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A) {
    ssd_step<S>(y, state, x, dt, B, C, A, parallel::default_pool());
}

}  // namespace llm::ssm
