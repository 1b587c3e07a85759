// SPDX-License-Identifier: Apache-2.0
// The ssm oracle: sequential loops in double for the selective scan (mamba-ssm's selective_scan_ref), its backward, the causal conv1d and the Mamba-2 SSD recurrence.
#pragma once

#include <llm/core/error.hpp>
#include <llm/ssm/detail/shape.hpp>
#include <llm/ssm/options.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <tuple>
#include <vector>

namespace llm::ssm {

namespace detail {

/// Elements the reference reads: fp32, bf16 or double (the finite-difference tests feed double).
template <class T>
concept ref_in = float_or_bf16<T> || std::same_as<std::remove_const_t<T>, double>;

/// A reference input of rank R: a view with ref_in elements.
template <class V, std::size_t R>
concept ref_view = view_of_rank<V, R> && ref_in<view_element_t<V>>;

/// A reference output of rank R: a view of mutable float or double.
template <class V, std::size_t R>
concept ref_out = view_of_rank<V, R> && (std::same_as<view_element_t<V>, float> || std::same_as<view_element_t<V>, double>);

template <class V, std::size_t R>
concept ref_opt_in = is_none<V> || ref_view<V, R>;
template <class V, std::size_t R>
concept ref_opt_out = is_none<V> || ref_out<V, R>;
template <class V>
concept ref_bc = ref_view<V, 2> || ref_view<V, 4>;
template <class V>
concept ref_bc_out = is_none<V> || ref_out<V, 2> || ref_out<V, 4>;

template <class T>
double dbl(T x) {
    if constexpr (std::is_floating_point_v<std::remove_const_t<T>>) {
        return static_cast<double>(x);
    } else {
        return static_cast<double>(static_cast<float>(x));
    }
}

/// A strided view of any rank-correct argument, or none_t kept as it is.
template <std::size_t R, class V>
auto view_or_none(V&& v) {
    if constexpr (is_none<V>) {
        return none_t{};
    } else {
        return llm::to_kernel_view<R>(v);
    }
}

/// The rank of a B / C argument (2 or 4).
template <class V>
constexpr std::size_t bc_rank() {
    if constexpr (view_of_rank<V, 2>) {
        return 2;
    } else {
        return 4;
    }
}

/// Element (b, d, n, t) of B / C: a (D, N) matrix or a (batch, G, N, L) tensor (d's group is
/// d / (D / G)).
template <class V>
auto& bc_at(const V& v, std::size_t b, std::size_t d, std::size_t dim, std::size_t n, std::size_t t) {
    if constexpr (std::remove_cvref_t<V>::rank() == 2) {
        (void)b, (void)dim, (void)t;
        return v(d, n);
    } else {
        return v(b, d / (dim / v.extent(1)), n, t);
    }
}

/// A gradient accumulated in double over one call and added to its view once at the end, so
/// that every element receives exactly one addition per call (two calls on zeroed gradients
/// give exactly twice one call). V: a strided view, or none_t (then nothing is kept).
template <class V>
class grad_acc {
public:
    explicit grad_acc(V v) : v_(v) {
        if constexpr (!is_none<V>) {
            buf_.assign(v.size(), 0.0);
        }
    }
    static constexpr std::size_t rank() noexcept {
        if constexpr (is_none<V>) {
            return 0;
        } else {
            return V::rank();
        }
    }
    std::size_t extent(std::size_t r) const noexcept { return v_.extent(r); }
    template <class... I>
    double& operator()(I... i) const {
        const std::size_t idx[] = {static_cast<std::size_t>(i)...};
        std::size_t k = 0;
        for (std::size_t r = 0; r < sizeof...(I); ++r) {
            k = k * v_.extent(r) + idx[r];
        }
        return buf_[k];
    }
    /// Adds the accumulated values to the view.
    void flush() {
        if constexpr (!is_none<V>) {
            using T = std::remove_reference_t<decltype(*v_.data())>;
            std::array<std::size_t, V::rank()> idx{};
            for (std::size_t k = 0; k < buf_.size(); ++k) {
                std::size_t rem = k, off = 0;
                for (std::size_t r = V::rank(); r-- > 0;) {
                    idx[r] = rem % v_.extent(r);
                    rem /= v_.extent(r);
                    off += idx[r] * v_.stride(r);
                }
                v_.data()[off] = static_cast<T>(static_cast<double>(v_.data()[off]) + buf_[k]);
            }
        }
    }

private:
    V v_;
    mutable std::vector<double> buf_;
};

}  // namespace detail

namespace detail {

/// The checked views of a reference scan's inputs and their shape, as a tuple (u, delta, B, C, z,
/// A, D, delta_bias, scan_shape): the argument preamble selective_scan_ref and its backward share.
template <class U, class Dl, class Bv, class Cv, class Z, class Av, class Dv, class DB>
auto ref_scan_views(const char* fn, U& u, Dl& delta, Bv& B, Cv& C, Z& z, Av& A, Dv& Dskip, DB& delta_bias) {
    const auto us = llm::to_kernel_view<3>(u);
    const auto ds = llm::to_kernel_view<3>(delta);
    const auto bs = llm::to_kernel_view<bc_rank<Bv>()>(B);
    const auto cs = llm::to_kernel_view<bc_rank<Cv>()>(C);
    const auto zs = view_or_none<3>(z);
    const auto as = llm::to_kernel_view<2>(A);
    const auto dks = view_or_none<1>(Dskip);
    const auto dbs = view_or_none<1>(delta_bias);
    const auto sh = check_scan(fn, us, ds, bs, cs, zs, as, dks, dbs);
    return std::tuple{us, ds, bs, cs, zs, as, dks, dbs, sh};
}

}  // namespace detail

/// Reference selective scan (Mamba-1), sequentially in double, exactly the maths of mamba-ssm's
/// `selective_scan_ref`: for every batch b and channel d,
///   delta_t = delta[b, d, t] (+ delta_bias[d]), then softplus if opt.delta_softplus;
///   h_t[n]  = exp(delta_t A[d, n]) h_{t-1}[n] + delta_t B_t[n] u[b, d, t],  h_{-1} = 0;
///   y[b, d, t] = (sum_n C_t[n] h_t[n] + D[d] u[b, d, t]) * silu(z[b, d, t]);
/// last_state[b, d, n] = h_{L-1}[n]. B_t / C_t are B[d, :] for a (D, N) B, or B[b, g, :, t] for a
/// (batch, G, N, L) B, g = d / (D / G). The oracle of the tests; never the fast path.
/// Arguments (docs/conventions.md): output y (batch, D, L); saved state last_state (batch, D, N)
/// or none; inputs u, delta (batch, D, L), B, C, z (batch, D, L) or none; parameters A (D, N),
/// D (D) or none, delta_bias (D) or none; options. Elements: inputs fp32, bf16 or double;
/// outputs fp32 or double.
/// Example: `llm::ssm::selective_scan_ref(y, llm::ssm::none, u, delta, B, C, z, A, D, llm::ssm::none, {.delta_softplus = true});`
template <detail::ref_out<3> Y, detail::ref_opt_out<3> St, detail::ref_view<3> U, detail::ref_view<3> Dl,
          detail::ref_bc Bv, detail::ref_bc Cv, detail::ref_opt_in<3> Z, detail::ref_view<2> Av,
          detail::ref_opt_in<1> Dv, detail::ref_opt_in<1> DB>
void selective_scan_ref(Y&& y, St&& last_state, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& Dskip,
                        DB&& delta_bias, const scan_options& opt = {}) {
    constexpr const char* fn = "selective_scan_ref";
    const auto [us, ds, bs, cs, zs, as, dks, dbs, sh] = detail::ref_scan_views(fn, u, delta, B, C, z, A, Dskip, delta_bias);
    detail::check_extents<3>(fn, "y", y, {sh.batch, sh.dim, sh.len}, "u's shape (batch, D, L)");
    if constexpr (!is_none<St>) {
        detail::check_extents<3>(fn, "last_state", last_state, {sh.batch, sh.dim, sh.n}, "(batch, D, N)");
    }
    const auto ys = llm::to_kernel_view<3>(y);
    using TY = std::remove_reference_t<decltype(ys(0, 0, 0))>;
    std::vector<double> h(sh.n);
    for (std::size_t b = 0; b < sh.batch; ++b) {
        for (std::size_t d = 0; d < sh.dim; ++d) {
            std::fill(h.begin(), h.end(), 0.0);
            for (std::size_t t = 0; t < sh.len; ++t) {
                double dt = detail::dbl(ds(b, d, t));
                if constexpr (!is_none<DB>) {
                    dt += detail::dbl(dbs(d));
                }
                if (opt.delta_softplus) {
                    dt = dt > 20.0 ? dt : std::log1p(std::exp(dt));
                }
                const double ut = detail::dbl(us(b, d, t));
                double yt = 0;
                for (std::size_t n = 0; n < sh.n; ++n) {
                    const double a = std::exp(dt * detail::dbl(as(d, n)));
                    h[n] = a * h[n] + dt * detail::dbl(detail::bc_at(bs, b, d, sh.dim, n, t)) * ut;
                    yt += detail::dbl(detail::bc_at(cs, b, d, sh.dim, n, t)) * h[n];
                }
                if constexpr (!is_none<Dv>) {
                    yt += detail::dbl(dks(d)) * ut;
                }
                if constexpr (!is_none<Z>) {
                    const double zt = detail::dbl(zs(b, d, t));
                    yt *= zt / (1.0 + std::exp(-zt));
                }
                ys(b, d, t) = static_cast<TY>(yt);
            }
            if constexpr (!is_none<St>) {
                const auto ss = llm::to_kernel_view<3>(last_state);
                using TS = std::remove_reference_t<decltype(ss(0, 0, 0))>;
                for (std::size_t n = 0; n < sh.n; ++n) {
                    ss(b, d, n) = static_cast<TS>(h[n]);
                }
            }
        }
    }
}

/// Reference backward of selective_scan_ref in double: the gradients of sum(y * dout) ADDED to
/// du, ddelta (of the raw delta, before bias and softplus), dB, dC, dz, dA, dD, ddelta_bias
/// (gradients accumulate, docs/conventions.md). Any gradient may be none (not computed); dz
/// must be none when z is, dD when D is, ddelta_bias when delta_bias is. dB and dC have B's
/// and C's shapes (a (D, N) B gets a (D, N) dB). Recomputes the forward itself (storing every
/// state: O(L N) memory per channel), then runs the recurrence backwards:
/// g_t = dy_t C_t + a_{t+1} g_{t+1}, da_t = g_t h_{t-1}, db_t = g_t.
/// Arguments (docs/conventions.md): gradients du, ddelta, dB, dC, dz, dA, dD, ddelta_bias;
/// inputs dout, u, delta, B, C, z; parameters A, D, delta_bias; options (the forward's).
/// Example: `llm::ssm::selective_scan_backward_ref(du, ddelta, dB, dC, dz, dA, dD, ddb, dout, u, delta, B, C, z, A, D, db, opt);`
template <detail::ref_opt_out<3> GU, detail::ref_opt_out<3> GDl, detail::ref_bc_out GB, detail::ref_bc_out GC,
          detail::ref_opt_out<3> GZ, detail::ref_opt_out<2> GA, detail::ref_opt_out<1> GD, detail::ref_opt_out<1> GDB,
          detail::ref_view<3> DO, detail::ref_view<3> U, detail::ref_view<3> Dl, detail::ref_bc Bv, detail::ref_bc Cv,
          detail::ref_opt_in<3> Z, detail::ref_view<2> Av, detail::ref_opt_in<1> Dv, detail::ref_opt_in<1> DB>
void selective_scan_backward_ref(GU&& du, GDl&& ddelta, GB&& dB, GC&& dC, GZ&& dz, GA&& dA, GD&& dD, GDB&& ddelta_bias,
                                 DO&& dout, U&& u, Dl&& delta, Bv&& B, Cv&& C, Z&& z, Av&& A, Dv&& Dskip,
                                 DB&& delta_bias, const scan_options& opt = {}) {
    constexpr const char* fn = "selective_scan_backward_ref";
    const auto [us, ds, bs, cs, zs, as, dks, dbs, sh] = detail::ref_scan_views(fn, u, delta, B, C, z, A, Dskip, delta_bias);
    detail::check_extents<3>(fn, "dout", dout, {sh.batch, sh.dim, sh.len}, "u's shape (batch, D, L)");
    const auto gos = llm::to_kernel_view<3>(dout);
    static_assert(!(is_none<Z> && !is_none<GZ>), "selective_scan_backward_ref: dz given without z");
    static_assert(!(is_none<Dv> && !is_none<GD>), "selective_scan_backward_ref: dD given without D");
    static_assert(!(is_none<DB> && !is_none<GDB>), "selective_scan_backward_ref: ddelta_bias given without delta_bias");
    detail::grad_acc gu(detail::view_or_none<3>(du));
    detail::grad_acc gdl(detail::view_or_none<3>(ddelta));
    detail::grad_acc gz(detail::view_or_none<3>(dz));
    detail::grad_acc ga(detail::view_or_none<2>(dA));
    detail::grad_acc gd(detail::view_or_none<1>(dD));
    detail::grad_acc gdb(detail::view_or_none<1>(ddelta_bias));
    auto gbv = [&] {
        if constexpr (is_none<GB>) {
            return none_t{};
        } else {
            return llm::to_kernel_view<detail::bc_rank<GB>()>(dB);
        }
    }();
    auto gcv = [&] {
        if constexpr (is_none<GC>) {
            return none_t{};
        } else {
            return llm::to_kernel_view<detail::bc_rank<GC>()>(dC);
        }
    }();
    if constexpr (!is_none<GB>) {
        static_assert(detail::bc_rank<GB>() == detail::bc_rank<Bv>(), "selective_scan_backward_ref: dB must have B's rank");
        for (std::size_t r = 0; r < gbv.rank(); ++r) {
            llm::check(gbv.extent(r) == bs.extent(r), fn, ": dB must have B's shape (dim ", r, ": ", gbv.extent(r),
                       " vs ", bs.extent(r), ")");
        }
    }
    if constexpr (!is_none<GC>) {
        static_assert(detail::bc_rank<GC>() == detail::bc_rank<Cv>(), "selective_scan_backward_ref: dC must have C's rank");
        for (std::size_t r = 0; r < gcv.rank(); ++r) {
            llm::check(gcv.extent(r) == cs.extent(r), fn, ": dC must have C's shape (dim ", r, ": ", gcv.extent(r),
                       " vs ", cs.extent(r), ")");
        }
    }
    detail::grad_acc gb(gbv);
    detail::grad_acc gc(gcv);
    auto add = [](double& ref, double v) { ref += v; };
    const std::size_t N = sh.n, Lq = sh.len;
    std::vector<double> hs((Lq + 1) * N), dt(Lq), raw(Lq), g(N), a(N);
    for (std::size_t b = 0; b < sh.batch; ++b) {
        for (std::size_t d = 0; d < sh.dim; ++d) {
            // Forward, keeping h_t in hs[(t + 1) N + n] (hs[0 .. N) is h_{-1} = 0).
            std::fill(hs.begin(), hs.begin() + static_cast<std::ptrdiff_t>(N), 0.0);
            for (std::size_t t = 0; t < Lq; ++t) {
                raw[t] = detail::dbl(ds(b, d, t));
                if constexpr (!is_none<DB>) {
                    raw[t] += detail::dbl(dbs(d));
                }
                dt[t] = opt.delta_softplus ? (raw[t] > 20.0 ? raw[t] : std::log1p(std::exp(raw[t]))) : raw[t];
                const double ut = detail::dbl(us(b, d, t));
                for (std::size_t n = 0; n < N; ++n) {
                    hs[(t + 1) * N + n] = std::exp(dt[t] * detail::dbl(as(d, n))) * hs[t * N + n] +
                                          dt[t] * detail::dbl(detail::bc_at(bs, b, d, sh.dim, n, t)) * ut;
                }
            }
            std::fill(g.begin(), g.end(), 0.0);
            double gD = 0, gDB = 0;
            for (std::size_t t = Lq; t-- > 0;) {
                const double ut = detail::dbl(us(b, d, t));
                double yt = 0;
                for (std::size_t n = 0; n < N; ++n) {
                    yt += detail::dbl(detail::bc_at(cs, b, d, sh.dim, n, t)) * hs[(t + 1) * N + n];
                }
                if constexpr (!is_none<Dv>) {
                    yt += detail::dbl(dks(d)) * ut;
                }
                double dy = detail::dbl(gos(b, d, t));
                if constexpr (!is_none<Z>) {
                    const double zt = detail::dbl(zs(b, d, t));
                    const double s = 1.0 / (1.0 + std::exp(-zt));
                    if constexpr (!is_none<GZ>) {
                        add(gz(b, d, t), dy * yt * s * (1.0 + zt * (1.0 - s)));
                    }
                    dy *= zt * s;
                }
                double gu_t = 0, gdt = 0;
                if constexpr (!is_none<Dv>) {
                    gu_t += dy * detail::dbl(dks(d));
                    gD += dy * ut;
                }
                for (std::size_t n = 0; n < N; ++n) {
                    const double an = detail::dbl(as(d, n));
                    const double bn = detail::dbl(detail::bc_at(bs, b, d, sh.dim, n, t));
                    const double cn = detail::dbl(detail::bc_at(cs, b, d, sh.dim, n, t));
                    const double at = std::exp(dt[t] * an);
                    if constexpr (!is_none<GC>) {
                        add(detail::bc_at(gc, b, d, sh.dim, n, t), dy * hs[(t + 1) * N + n]);
                    }
                    g[n] += dy * cn;  // dL/dh_t
                    const double da = g[n] * hs[t * N + n];
                    gdt += da * at * an + g[n] * bn * ut;
                    if constexpr (!is_none<GA>) {
                        add(ga(d, n), da * at * dt[t]);
                    }
                    if constexpr (!is_none<GB>) {
                        add(detail::bc_at(gb, b, d, sh.dim, n, t), g[n] * dt[t] * ut);
                    }
                    gu_t += g[n] * dt[t] * bn;
                    g[n] *= at;  // dL/dh_{t-1} through h_t
                }
                if (opt.delta_softplus) {
                    gdt *= raw[t] > 20.0 ? 1.0 : 1.0 / (1.0 + std::exp(-raw[t]));
                }
                gDB += gdt;
                if constexpr (!is_none<GU>) {
                    add(gu(b, d, t), gu_t);
                }
                if constexpr (!is_none<GDl>) {
                    add(gdl(b, d, t), gdt);
                }
            }
            if constexpr (!is_none<GD>) {
                add(gd(d), gD);
            }
            if constexpr (!is_none<GDB>) {
                add(gdb(d), gDB);
            }
        }
    }
    gu.flush(), gdl.flush(), gb.flush(), gc.flush(), gz.flush(), ga.flush(), gd.flush(), gdb.flush();
}

/// Reference causal depthwise conv1d (causal-conv1d's causal_conv1d_fn) in double:
/// y[b, d, t] = bias[d] + sum_{k < W} weight[d, k] x[b, d, t - (W - 1) + k] (x = 0 before t = 0),
/// then SiLU if opt.silu. final_state (batch, D, W - 1), when given, receives the last W - 1
/// inputs (zeros before t = 0): the rolling state conv1d_step continues from.
/// Arguments: output y (batch, D, L); saved state final_state or none; input x (batch, D, L);
/// parameters weight (D, W), bias (D) or none; options.
/// Example: `llm::ssm::conv1d_ref(y, llm::ssm::none, x, weight, bias, {.silu = true});`
template <detail::ref_out<3> Y, detail::ref_opt_out<3> St, detail::ref_view<3> X, detail::ref_view<2> Wt,
          detail::ref_opt_in<1> Bi>
void conv1d_ref(Y&& y, St&& final_state, X&& x, Wt&& weight, Bi&& bias, const conv_options& opt = {}) {
    constexpr const char* fn = "conv1d_ref";
    const auto xs = llm::to_kernel_view<3>(x);
    const auto ws = llm::to_kernel_view<2>(weight);
    const std::size_t B = xs.extent(0), D = xs.extent(1), L = xs.extent(2), W = ws.extent(1);
    detail::check_extents<2>(fn, "weight", ws, {D, W}, "(D, width) with D from x");
    detail::check_extents<3>(fn, "y", y, {B, D, L}, "x's shape (batch, D, L)");
    const auto bs = detail::view_or_none<1>(bias);
    if constexpr (!is_none<Bi>) {
        detail::check_extents<1>(fn, "bias", bs, {D}, "one bias per channel");
    }
    const auto ys = llm::to_kernel_view<3>(y);
    using TY = std::remove_reference_t<decltype(ys(0, 0, 0))>;
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t d = 0; d < D; ++d) {
            for (std::size_t t = 0; t < L; ++t) {
                double acc = 0;
                if constexpr (!is_none<Bi>) {
                    acc = detail::dbl(bs(d));
                }
                for (std::size_t k = 0; k < W; ++k) {
                    if (t + k + 1 >= W) {
                        acc += detail::dbl(ws(d, k)) * detail::dbl(xs(b, d, t + k + 1 - W));
                    }
                }
                ys(b, d, t) = static_cast<TY>(opt.silu ? acc / (1.0 + std::exp(-acc)) : acc);
            }
        }
    }
    if constexpr (!is_none<St>) {
        detail::check_extents<3>(fn, "final_state", final_state, {B, D, W - 1}, "(batch, D, width - 1)");
        const auto ss = llm::to_kernel_view<3>(final_state);
        using TS = std::remove_reference_t<decltype(ss(0, 0, 0))>;
        for (std::size_t b = 0; b < B; ++b) {
            for (std::size_t d = 0; d < D; ++d) {
                for (std::size_t k = 0; k + 1 < W; ++k) {
                    const std::size_t back = W - 1 - k;  // position L - back
                    ss(b, d, k) = static_cast<TS>(back <= L ? detail::dbl(xs(b, d, L - back)) : 0.0);
                }
            }
        }
    }
}

/// Reference backward of conv1d_ref in double: dx, dweight, dbias of sum(y * dy), ADDED
/// (gradients accumulate); any may be none (dbias must be none when bias is).
/// Arguments: gradients dx (batch, D, L), dweight (D, W), dbias (D); inputs dy, x; parameters
/// weight, bias; options (the forward's).
/// Example: `llm::ssm::conv1d_backward_ref(dx, dw, db, dy, x, weight, bias, {.silu = true});`
template <detail::ref_opt_out<3> GX, detail::ref_opt_out<2> GW, detail::ref_opt_out<1> GB, detail::ref_view<3> DY,
          detail::ref_view<3> X, detail::ref_view<2> Wt, detail::ref_opt_in<1> Bi>
void conv1d_backward_ref(GX&& dx, GW&& dweight, GB&& dbias, DY&& dy, X&& x, Wt&& weight, Bi&& bias,
                         const conv_options& opt = {}) {
    constexpr const char* fn = "conv1d_backward_ref";
    const auto xs = llm::to_kernel_view<3>(x);
    const auto ws = llm::to_kernel_view<2>(weight);
    const std::size_t B = xs.extent(0), D = xs.extent(1), L = xs.extent(2), W = ws.extent(1);
    detail::check_extents<2>(fn, "weight", ws, {D, W}, "(D, width) with D from x");
    detail::check_extents<3>(fn, "dy", dy, {B, D, L}, "x's shape (batch, D, L)");
    const auto gys = llm::to_kernel_view<3>(dy);
    const auto bs = detail::view_or_none<1>(bias);
    static_assert(!(is_none<Bi> && !is_none<GB>), "conv1d_backward_ref: dbias given without bias");
    detail::grad_acc gx(detail::view_or_none<3>(dx));
    detail::grad_acc gw(detail::view_or_none<2>(dweight));
    detail::grad_acc gb(detail::view_or_none<1>(dbias));
    auto add = [](double& ref, double v) { ref += v; };
    std::vector<double> g(L);
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t d = 0; d < D; ++d) {
            for (std::size_t t = 0; t < L; ++t) {
                double acc = 0;
                if constexpr (!is_none<Bi>) {
                    acc = detail::dbl(bs(d));
                }
                for (std::size_t k = 0; k < W; ++k) {
                    if (t + k + 1 >= W) {
                        acc += detail::dbl(ws(d, k)) * detail::dbl(xs(b, d, t + k + 1 - W));
                    }
                }
                const double s = 1.0 / (1.0 + std::exp(-acc));
                g[t] = detail::dbl(gys(b, d, t)) * (opt.silu ? s * (1.0 + acc * (1.0 - s)) : 1.0);
                if constexpr (!is_none<GB>) {
                    add(gb(d), g[t]);
                }
                for (std::size_t k = 0; k < W; ++k) {
                    if (t + k + 1 >= W) {
                        if constexpr (!is_none<GW>) {
                            add(gw(d, k), g[t] * detail::dbl(xs(b, d, t + k + 1 - W)));
                        }
                        if constexpr (!is_none<GX>) {
                            add(gx(b, d, t + k + 1 - W), g[t] * detail::dbl(ws(d, k)));
                        }
                    }
                }
            }
        }
    }
    gx.flush(), gw.flush(), gb.flush();
}

/// Reference decode step of the causal conv1d in double: y[b, d] = bias[d] + sum_{k < W-1}
/// weight[d, k] state[b, d, k] + weight[d, W-1] x[b, d] (SiLU when opt.silu), then the state
/// (batch, D, W - 1) drops its oldest input and appends x.
/// Arguments: output y (batch, D); saved state `state` (read and written); input x (batch, D);
/// parameters weight (D, W), bias (D) or none; options.
/// Example: `llm::ssm::conv1d_step_ref(y, state, x, weight, bias, {.silu = true});`
template <detail::ref_out<2> Y, detail::ref_out<3> St, detail::ref_view<2> X, detail::ref_view<2> Wt,
          detail::ref_opt_in<1> Bi>
void conv1d_step_ref(Y&& y, St&& state, X&& x, Wt&& weight, Bi&& bias, const conv_options& opt = {}) {
    constexpr const char* fn = "conv1d_step_ref";
    const auto xs = llm::to_kernel_view<2>(x);
    const auto ws = llm::to_kernel_view<2>(weight);
    const std::size_t B = xs.extent(0), D = xs.extent(1), W = ws.extent(1);
    detail::check_extents<2>(fn, "weight", ws, {D, W}, "(D, width) with D from x");
    detail::check_extents<3>(fn, "state", state, {B, D, W - 1}, "(batch, D, width - 1)");
    detail::check_extents<2>(fn, "y", y, {B, D}, "x's shape (batch, D)");
    const auto ss = llm::to_kernel_view<3>(state);
    const auto ys = llm::to_kernel_view<2>(y);
    const auto bs = detail::view_or_none<1>(bias);
    using TY = std::remove_reference_t<decltype(ys(0, 0))>;
    using TS = std::remove_reference_t<decltype(ss(0, 0, 0))>;
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t d = 0; d < D; ++d) {
            double acc = 0;
            if constexpr (!is_none<Bi>) {
                acc = detail::dbl(bs(d));
            }
            for (std::size_t k = 0; k + 1 < W; ++k) {
                acc += detail::dbl(ws(d, k)) * detail::dbl(ss(b, d, k));
            }
            acc += detail::dbl(ws(d, W - 1)) * detail::dbl(xs(b, d));
            ys(b, d) = static_cast<TY>(opt.silu ? acc / (1.0 + std::exp(-acc)) : acc);
            for (std::size_t k = 0; k + 2 < W; ++k) {
                ss(b, d, k) = ss(b, d, k + 1);
            }
            if (W >= 2) {
                ss(b, d, W - 2) = static_cast<TS>(detail::dbl(xs(b, d)));
            }
        }
    }
}

/// Reference Mamba-2 SSD as the sequential recurrence, in double: for batch b and head h (of
/// group g = h / (H / G)), state h_t (P, N):
///   h_t = exp(dt_t A[h]) h_{t-1} + dt_t x_t B_t^T,  y_t = h_t C_t,  h_{-1} = 0,
/// with x_t = x[b, t, h, :], dt_t = dt[b, t, h], B_t = B[b, t, g, :], C_t likewise: what
/// ssd_minimal_discrete computes from X = x dt and A dt. final_state (batch, H, P, N), when
/// given, receives h_{L-1}.
/// Arguments: output y (batch, L, H, P); saved state final_state or none; inputs x
/// (batch, L, H, P), dt (batch, L, H), B, C (batch, L, G, N); parameter A (H).
/// Example: `llm::ssm::ssd_ref(y, state, x, dt, B, C, A);`
template <detail::ref_out<4> Y, detail::ref_opt_out<4> St, detail::ref_view<4> X, detail::ref_view<3> Dt,
          detail::ref_view<4> Bv, detail::ref_view<4> Cv, detail::ref_view<1> Av>
void ssd_ref(Y&& y, St&& final_state, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A) {
    constexpr const char* fn = "ssd_ref";
    const auto xs = llm::to_kernel_view<4>(x);
    const auto ts = llm::to_kernel_view<3>(dt);
    const auto bs = llm::to_kernel_view<4>(B);
    const auto cs = llm::to_kernel_view<4>(C);
    const auto as = llm::to_kernel_view<1>(A);
    const auto sh = detail::check_ssd(fn, xs, ts, bs, cs, as);
    detail::check_extents<4>(fn, "y", y, {sh.batch, sh.len, sh.heads, sh.p}, "x's shape (batch, L, heads, P)");
    const auto ys = llm::to_kernel_view<4>(y);
    using TY = std::remove_reference_t<decltype(ys(0, 0, 0, 0))>;
    std::vector<double> st(sh.p * sh.n);
    for (std::size_t b = 0; b < sh.batch; ++b) {
        for (std::size_t h = 0; h < sh.heads; ++h) {
            const std::size_t g = h / (sh.heads / sh.groups);
            std::fill(st.begin(), st.end(), 0.0);
            for (std::size_t t = 0; t < sh.len; ++t) {
                const double dtt = detail::dbl(ts(b, t, h));
                const double a = std::exp(dtt * detail::dbl(as(h)));
                for (std::size_t p = 0; p < sh.p; ++p) {
                    const double xp = dtt * detail::dbl(xs(b, t, h, p));
                    double acc = 0;
                    for (std::size_t n = 0; n < sh.n; ++n) {
                        double& s = st[p * sh.n + n];
                        s = a * s + xp * detail::dbl(bs(b, t, g, n));
                        acc += s * detail::dbl(cs(b, t, g, n));
                    }
                    ys(b, t, h, p) = static_cast<TY>(acc);
                }
            }
            if constexpr (!is_none<St>) {
                detail::check_extents<4>(fn, "final_state", final_state, {sh.batch, sh.heads, sh.p, sh.n},
                                         "(batch, heads, P, N)");
                const auto ss = llm::to_kernel_view<4>(final_state);
                using TS = std::remove_reference_t<decltype(ss(0, 0, 0, 0))>;
                for (std::size_t p = 0; p < sh.p; ++p) {
                    for (std::size_t n = 0; n < sh.n; ++n) {
                        ss(b, h, p, n) = static_cast<TS>(st[p * sh.n + n]);
                    }
                }
            }
        }
    }
}

/// Reference backward of ssd_ref in double: dx, ddt, dB, dC, dA of sum(y * dy), ADDED
/// (gradients accumulate); any may be none. Stores every state of a (batch, head) pair
/// (O(L P N) memory) and runs the recurrence backwards.
/// Arguments: gradients dx, ddt, dB, dC, dA; inputs dy, x, dt, B, C; parameter A.
/// Example: `llm::ssm::ssd_backward_ref(dx, ddt, dB, dC, dA, dy, x, dt, B, C, A);`
template <detail::ref_opt_out<4> GX, detail::ref_opt_out<3> GT, detail::ref_opt_out<4> GB, detail::ref_opt_out<4> GC,
          detail::ref_opt_out<1> GA, detail::ref_view<4> DY, detail::ref_view<4> X, detail::ref_view<3> Dt,
          detail::ref_view<4> Bv, detail::ref_view<4> Cv, detail::ref_view<1> Av>
void ssd_backward_ref(GX&& dx, GT&& ddt, GB&& dB, GC&& dC, GA&& dA, DY&& dy, X&& x, Dt&& dt, Bv&& B, Cv&& C, Av&& A) {
    constexpr const char* fn = "ssd_backward_ref";
    const auto xs = llm::to_kernel_view<4>(x);
    const auto ts = llm::to_kernel_view<3>(dt);
    const auto bs = llm::to_kernel_view<4>(B);
    const auto cs = llm::to_kernel_view<4>(C);
    const auto as = llm::to_kernel_view<1>(A);
    const auto sh = detail::check_ssd(fn, xs, ts, bs, cs, as);
    detail::check_extents<4>(fn, "dy", dy, {sh.batch, sh.len, sh.heads, sh.p}, "x's shape (batch, L, heads, P)");
    const auto gys = llm::to_kernel_view<4>(dy);
    detail::grad_acc gx(detail::view_or_none<4>(dx));
    detail::grad_acc gt(detail::view_or_none<3>(ddt));
    detail::grad_acc gb(detail::view_or_none<4>(dB));
    detail::grad_acc gc(detail::view_or_none<4>(dC));
    detail::grad_acc ga(detail::view_or_none<1>(dA));
    auto add = [](double& ref, double v) { ref += v; };
    const std::size_t P = sh.p, N = sh.n, L = sh.len;
    std::vector<double> hs((L + 1) * P * N), g(P * N);
    for (std::size_t b = 0; b < sh.batch; ++b) {
        for (std::size_t h = 0; h < sh.heads; ++h) {
            const std::size_t grp = h / (sh.heads / sh.groups);
            const double Ah = detail::dbl(as(h));
            std::fill(hs.begin(), hs.begin() + static_cast<std::ptrdiff_t>(P * N), 0.0);
            for (std::size_t t = 0; t < L; ++t) {
                const double dtt = detail::dbl(ts(b, t, h));
                const double a = std::exp(dtt * Ah);
                for (std::size_t p = 0; p < P; ++p) {
                    for (std::size_t n = 0; n < N; ++n) {
                        hs[(t + 1) * P * N + p * N + n] = a * hs[t * P * N + p * N + n] +
                                                          dtt * detail::dbl(xs(b, t, h, p)) * detail::dbl(bs(b, t, grp, n));
                    }
                }
            }
            std::fill(g.begin(), g.end(), 0.0);
            double gA = 0;
            for (std::size_t t = L; t-- > 0;) {
                const double dtt = detail::dbl(ts(b, t, h));
                const double a = std::exp(dtt * Ah);
                double gdt = 0, gdecay = 0;
                for (std::size_t p = 0; p < P; ++p) {
                    const double dyp = detail::dbl(gys(b, t, h, p));
                    const double xp = detail::dbl(xs(b, t, h, p));
                    double gxp = 0;
                    for (std::size_t n = 0; n < N; ++n) {
                        const double hn = hs[(t + 1) * P * N + p * N + n];
                        const double bn = detail::dbl(bs(b, t, grp, n));
                        if constexpr (!is_none<GC>) {
                            add(gc(b, t, grp, n), dyp * hn);
                        }
                        double& gn = g[p * N + n];
                        gn += dyp * detail::dbl(cs(b, t, grp, n));
                        gdecay += gn * hs[t * P * N + p * N + n];
                        gdt += gn * xp * bn;
                        gxp += gn * bn;
                        if constexpr (!is_none<GB>) {
                            add(gb(b, t, grp, n), gn * dtt * xp);
                        }
                        gn *= a;
                    }
                    if constexpr (!is_none<GX>) {
                        add(gx(b, t, h, p), gxp * dtt);
                    }
                }
                gdt += gdecay * a * Ah;
                gA += gdecay * a * dtt;
                if constexpr (!is_none<GT>) {
                    add(gt(b, t, h), gdt);
                }
            }
            if constexpr (!is_none<GA>) {
                add(ga(h), gA);
            }
        }
    }
    gx.flush(), gt.flush(), gb.flush(), gc.flush(), ga.flush();
}

}  // namespace llm::ssm
