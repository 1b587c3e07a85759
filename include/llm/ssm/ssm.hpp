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

#include <concepts>
#include <cstddef>
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
/// into y. Vectorised over channels (S::width channels per SIMD lane group, every lane's
/// state in registers), threads over (batch, channel block); with fewer blocks than twice the
/// threads, L is split into chunks combined by the chunk-state pass (tile.hpp), so threads
/// also speed up one sequence of few channels. fp32 maths.
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

}  // namespace llm::ssm
