// SPDX-License-Identifier: Apache-2.0
// The optimised CPU paths of llm::ssm: the selective scan vectorised over channels through llm::simd (chunked over L across threads when channels are few), its backward, the decode step, the causal conv1d, and Mamba-2 SSD (chunked and recurrent).
#pragma once

#include <llm/core/error.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/simd/math.hpp>
#include <llm/simd/simd.hpp>
#include <llm/ssm/detail/shape.hpp>
#include <llm/ssm/options.hpp>
#include <llm/ssm/tile.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <type_traits>
#include <vector>

namespace llm::ssm::detail {

template <class T>
LLM_FORCE_INLINE float to_f(const T& x) noexcept {
    return static_cast<float>(x);
}

/// A float buffer aligned for any backend's aligned loads (64 bytes), zero-filled.
class fbuf {
public:
    fbuf() = default;
    explicit fbuf(std::size_t n) : v_(n + 16, 0.0f) {
        const auto addr = reinterpret_cast<std::uintptr_t>(v_.data());
        off_ = ((64 - addr % 64) % 64) / sizeof(float);
    }
    float* data() noexcept { return v_.data() + off_; }

private:
    std::vector<float> v_;
    std::size_t off_ = 0;
};

/// Positions per staged time chunk of the selective scan.
inline constexpr std::size_t scan_chunk = 64;

/// The checked views and sizes of one selective scan call.
template <class U, class Dl, class Bv, class Cv, class Z, class A, class Dv, class DB>
struct scan_problem {
    U u;
    Dl delta;
    Bv b;
    Cv c;
    Z z;
    A a;
    Dv dskip;
    DB dbias;
    scan_shape sh;
    bool softplus;
    /// Channels per block boundary segment: blocks never straddle a group of B or of C.
    std::size_t seg() const noexcept {
        const std::size_t gb = sh.var_b ? sh.dim / sh.groups_b : sh.dim;
        const std::size_t gc = sh.var_c ? sh.dim / sh.groups_c : sh.dim;
        return std::gcd(gb, gc);
    }
};

/// Blocks of up to W channels inside segments of `seg` channels: block k starts at d0(k).
struct block_map {
    std::size_t seg, W, per_seg, count;
    block_map(std::size_t dim, std::size_t seg_, std::size_t W_)
        : seg(seg_), W(W_), per_seg((seg_ + W_ - 1) / W_), count(dim / seg_ * ((seg_ + W_ - 1) / W_)) {}
    std::size_t d0(std::size_t k) const noexcept { return k / per_seg * seg + k % per_seg * W; }
    std::size_t width(std::size_t k) const noexcept { return std::min(W, seg - k % per_seg * W); }
};

/// Per-thread staging of one channel block of the selective scan.
template <class S>
struct scan_stage {
    static constexpr std::size_t W = S::width;
    std::size_t N, T;
    fbuf at, bfix, cfix, h, dt, raw, u, z, y, bs, cs;
    scan_stage(std::size_t n, std::size_t t)
        : N(n), T(t), at(n * W), bfix(n * W), cfix(n * W), h(n * W), dt(t * W), raw(t * W), u(t * W), z(t * W),
          y(t * W), bs(t * n), cs(t * n) {}
};

/// Loads the per-block parameters: A (and fixed B / C) transposed to [n][lane].
template <class S, class P>
void stage_params(scan_stage<S>& st, const P& pr, std::size_t d0, std::size_t w) {
    constexpr std::size_t W = S::width;
    const std::size_t N = pr.sh.n;
    for (std::size_t n = 0; n < N; ++n) {
        for (std::size_t j = 0; j < W; ++j) {
            const bool in = j < w;
            st.at.data()[n * W + j] = in ? to_f(pr.a(d0 + j, n)) : 0.0f;
            if constexpr (std::remove_cvref_t<decltype(pr.b)>::rank() == 2) {
                st.bfix.data()[n * W + j] = in ? to_f(pr.b(d0 + j, n)) : 0.0f;
            }
            if constexpr (std::remove_cvref_t<decltype(pr.c)>::rank() == 2) {
                st.cfix.data()[n * W + j] = in ? to_f(pr.c(d0 + j, n)) : 0.0f;
            }
        }
    }
}

/// Stages positions [t0, t0 + T) of a block: delta processed (bias, softplus, finite check),
/// u, z, and variable B / C as [t][n]. Lanes >= w and positions >= len are 0.
template <class S, class P>
void stage_inputs(const char* fn, scan_stage<S>& st, const P& pr, std::size_t b, std::size_t d0, std::size_t w,
                  std::size_t t0, std::size_t T) {
    constexpr std::size_t W = S::width;
    const std::size_t N = pr.sh.n;
    std::fill(st.dt.data(), st.dt.data() + st.T * W, 0.0f);
    std::fill(st.raw.data(), st.raw.data() + st.T * W, 0.0f);
    std::fill(st.u.data(), st.u.data() + st.T * W, 0.0f);
    for (std::size_t j = 0; j < w; ++j) {
        const std::size_t d = d0 + j;
        float bias = 0.0f;
        if constexpr (!is_none<decltype(pr.dbias)>) {
            bias = to_f(pr.dbias(d));
        }
        for (std::size_t t = 0; t < T; ++t) {
            const float r = to_f(pr.delta(b, d, t0 + t)) + bias;
            const float dt = pr.softplus ? tile::softplus(r) : r;
            llm::check(std::isfinite(dt), fn, ": delta", pr.softplus ? " after bias and softplus" : "",
                       " is not finite at (batch ", b, ", d ", d, ", t ", t0 + t, "): ", dt);
            st.raw.data()[t * W + j] = r;
            st.dt.data()[t * W + j] = dt;
            st.u.data()[t * W + j] = to_f(pr.u(b, d, t0 + t));
        }
        if constexpr (!is_none<decltype(pr.z)>) {
            for (std::size_t t = 0; t < T; ++t) {
                st.z.data()[t * W + j] = to_f(pr.z(b, d, t0 + t));
            }
        }
    }
    if constexpr (std::remove_cvref_t<decltype(pr.b)>::rank() == 4) {
        const std::size_t g = d0 / (pr.sh.dim / pr.sh.groups_b);
        for (std::size_t n = 0; n < N; ++n) {
            for (std::size_t t = 0; t < T; ++t) {
                st.bs.data()[t * N + n] = to_f(pr.b(b, g, n, t0 + t));
            }
        }
    }
    if constexpr (std::remove_cvref_t<decltype(pr.c)>::rank() == 4) {
        const std::size_t g = d0 / (pr.sh.dim / pr.sh.groups_c);
        for (std::size_t n = 0; n < N; ++n) {
            for (std::size_t t = 0; t < T; ++t) {
                st.cs.data()[t * N + n] = to_f(pr.c(b, g, n, t0 + t));
            }
        }
    }
}

/// The scan over the T staged positions of a block from the state st.h (updated in place):
/// st.y[t] = C_t . h_t when WithY, else only the state moves.
template <class S, bool VarB, bool VarC, bool WithY>
void scan_staged(scan_stage<S>& st, std::size_t T) {
    constexpr std::size_t W = S::width;
    const std::size_t N = st.N;
    float* y = st.y.data();
    if constexpr (WithY) {
        std::fill(y, y + T * W, 0.0f);
    }
    for (std::size_t n = 0; n < N; ++n) {
        const auto an = S::load(st.at.data() + n * W);
        auto h = S::load(st.h.data() + n * W);
        [[maybe_unused]] const auto bf = S::load(st.bfix.data() + n * W);
        [[maybe_unused]] const auto cf = S::load(st.cfix.data() + n * W);
        for (std::size_t t = 0; t < T; ++t) {
            const auto dt = S::load(st.dt.data() + t * W);
            const auto a = simd::exp<S>(S::mul(dt, an));
            const auto du = S::mul(dt, S::load(st.u.data() + t * W));
            const auto bt = VarB ? S::set1(st.bs.data()[t * N + n]) : bf;
            h = S::fma(a, h, S::mul(du, bt));
            if constexpr (WithY) {
                const auto ct = VarC ? S::set1(st.cs.data()[t * N + n]) : cf;
                S::store(y + t * W, S::fma(h, ct, S::load(y + t * W)));
            }
        }
        S::store(st.h.data() + n * W, h);
    }
}

/// Writes out = (y + D u) * silu(z) of T staged positions of a block to the output.
template <class S, class P, class Y>
void write_output(scan_stage<S>& st, const P& pr, const Y& out, std::size_t b, std::size_t d0, std::size_t w,
                  std::size_t t0, std::size_t T) {
    constexpr std::size_t W = S::width;
    float dsk[W] = {};
    if constexpr (!is_none<decltype(pr.dskip)>) {
        for (std::size_t j = 0; j < w; ++j) {
            dsk[j] = to_f(pr.dskip(d0 + j));
        }
    }
    const auto dv = S::loadu(dsk);
    for (std::size_t t = 0; t < T; ++t) {
        auto v = S::fma(dv, S::load(st.u.data() + t * W), S::load(st.y.data() + t * W));
        if constexpr (!is_none<decltype(pr.z)>) {
            const auto z = S::load(st.z.data() + t * W);
            v = S::mul(v, S::mul(z, simd::sigmoid<S>(z)));
        }
        S::store(st.y.data() + t * W, v);
    }
    using TY = std::remove_reference_t<decltype(out(0, 0, 0))>;
    for (std::size_t j = 0; j < w; ++j) {
        for (std::size_t t = 0; t < T; ++t) {
            out(b, d0 + j, t0 + t) = TY(st.y.data()[t * W + j]);
        }
    }
}

/// Runs positions [t_begin, t_end) of block (b, d0, w) from the state in st.h.
template <class S, bool WithY, class P, class Y>
void scan_block_range(const char* fn, scan_stage<S>& st, const P& pr, const Y& out, std::size_t b, std::size_t d0,
                      std::size_t w, std::size_t t_begin, std::size_t t_end) {
    constexpr bool var_b = std::remove_cvref_t<decltype(pr.b)>::rank() == 4;
    constexpr bool var_c = std::remove_cvref_t<decltype(pr.c)>::rank() == 4;
    for (std::size_t t0 = t_begin; t0 < t_end; t0 += st.T) {
        const std::size_t T = std::min(st.T, t_end - t0);
        stage_inputs(fn, st, pr, b, d0, w, t0, T);
        scan_staged<S, var_b, var_c, WithY>(st, T);
        if constexpr (WithY) {
            write_output(st, pr, out, b, d0, w, t0, T);
        }
    }
}

template <class S, class St>
void store_state(const scan_stage<S>& st, const St& state, std::size_t b, std::size_t d0, std::size_t w) {
    constexpr std::size_t W = S::width;
    if constexpr (!is_none<St>) {
        for (std::size_t n = 0; n < st.N; ++n) {
            for (std::size_t j = 0; j < w; ++j) {
                state(b, d0 + j, n) = const_cast<scan_stage<S>&>(st).h.data()[n * W + j];
            }
        }
    }
}

/// The selective scan forward on the CPU. Work items are (batch, channel block); when they are
/// fewer than twice the threads, L is split into chunks too: each chunk is scanned from h = 0
/// (the first writes y), the chunk-state pass (tile::combine) gives every chunk its true
/// starting state, and the other chunks are rescanned from it writing y.
template <class S, class P, class Y, class St>
void scan_forward_cpu(const char* fn, const P& pr, const Y& out, const St& state, parallel::policy auto&& exec) {
    constexpr std::size_t W = S::width;
    const auto& sh = pr.sh;
    const block_map bm(sh.dim, pr.seg(), W);
    const std::size_t items = sh.batch * bm.count;
    const std::size_t threads = exec.size();
    std::size_t chunks = 1;
    if (items < 2 * threads && sh.len >= 4 * scan_chunk) {
        chunks = std::min(sh.len / (2 * scan_chunk), (2 * threads + items - 1) / items);
    }
    if (items == 0 || sh.len == 0) {
        if constexpr (!is_none<St>) {
            for (std::size_t b = 0; b < sh.batch; ++b) {
                for (std::size_t d = 0; d < sh.dim; ++d) {
                    for (std::size_t n = 0; n < sh.n; ++n) {
                        state(b, d, n) = 0.0f;
                    }
                }
            }
        }
        return;
    }
    if (chunks <= 1) {
        parallel::parallel_for(exec, items, 1, [&](std::size_t i0, std::size_t i1) {
            scan_stage<S> st(sh.n, scan_chunk);
            for (std::size_t i = i0; i < i1; ++i) {
                const std::size_t b = i / bm.count, k = i % bm.count, d0 = bm.d0(k), w = bm.width(k);
                stage_params(st, pr, d0, w);
                std::fill(st.h.data(), st.h.data() + sh.n * W, 0.0f);
                scan_block_range<S, true>(fn, st, pr, out, b, d0, w, 0, sh.len);
                store_state(st, state, b, d0, w);
            }
        });
        return;
    }
    // Chunked over L. Chunk boundaries are multiples of scan_chunk.
    const std::size_t per = (sh.len / chunks + scan_chunk - 1) / scan_chunk * scan_chunk;
    auto bounds = [&](std::size_t c) { return std::pair{std::min(sh.len, c * per), std::min(sh.len, (c + 1) * per)}; };
    const std::size_t NW = sh.n * W;
    std::vector<float> runs_a(items * chunks * NW), runs_b(items * chunks * NW);
    // Phase 1: every chunk from h = 0; chunk 0 writes y. Runs (decay product, end state) per chunk.
    parallel::parallel_for(exec, items * chunks, 1, [&](std::size_t i0, std::size_t i1) {
        scan_stage<S> st(sh.n, scan_chunk);
        for (std::size_t i = i0; i < i1; ++i) {
            const std::size_t item = i / chunks, c = i % chunks;
            const std::size_t b = item / bm.count, k = item % bm.count, d0 = bm.d0(k), w = bm.width(k);
            const auto [t0, t1] = bounds(c);
            stage_params(st, pr, d0, w);
            std::fill(st.h.data(), st.h.data() + NW, 0.0f);
            if (c == 0) {
                scan_block_range<S, true>(fn, st, pr, out, b, d0, w, t0, t1);
            } else {
                scan_block_range<S, false>(fn, st, pr, out, b, d0, w, t0, t1);
            }
            // Decay product over the chunk: exp(A[n] * sum_t dt_t), lane by lane.
            float dtsum[W] = {};
            for (std::size_t j = 0; j < w; ++j) {
                double s = 0;
                for (std::size_t t = t0; t < t1; ++t) {
                    float r = to_f(pr.delta(b, d0 + j, t));
                    if constexpr (!is_none<decltype(pr.dbias)>) {
                        r += to_f(pr.dbias(d0 + j));
                    }
                    s += pr.softplus ? tile::softplus(r) : r;
                }
                dtsum[j] = static_cast<float>(s);
            }
            float* ra = runs_a.data() + i * NW;
            float* rb = runs_b.data() + i * NW;
            for (std::size_t n = 0; n < sh.n; ++n) {
                for (std::size_t j = 0; j < W; ++j) {
                    ra[n * W + j] = std::exp(st.at.data()[n * W + j] * dtsum[j]);
                    rb[n * W + j] = st.h.data()[n * W + j];
                }
            }
        }
    });
    // Phase 2: the chunk-state pass; runs_b[c] becomes the state entering chunk c (c >= 1).
    std::vector<float> last(items * NW);
    for (std::size_t item = 0; item < items; ++item) {
        std::vector<tile::affine<float>> run(chunks);
        std::vector<float> start(chunks);
        for (std::size_t e = 0; e < NW; ++e) {
            for (std::size_t c = 0; c < chunks; ++c) {
                run[c] = {runs_a[(item * chunks + c) * NW + e], runs_b[(item * chunks + c) * NW + e]};
            }
            last[item * NW + e] = tile::chunk_state_pass(run.data(), start.data(), chunks, 0.0f);
            for (std::size_t c = 0; c < chunks; ++c) {
                runs_b[(item * chunks + c) * NW + e] = start[c];
            }
        }
    }
    // Phase 3: chunks 1.. rescanned from their true starting states, writing y.
    parallel::parallel_for(exec, items * (chunks - 1), 1, [&](std::size_t i0, std::size_t i1) {
        scan_stage<S> st(sh.n, scan_chunk);
        for (std::size_t i = i0; i < i1; ++i) {
            const std::size_t item = i / (chunks - 1), c = i % (chunks - 1) + 1;
            const std::size_t b = item / bm.count, k = item % bm.count, d0 = bm.d0(k), w = bm.width(k);
            const auto [t0, t1] = bounds(c);
            stage_params(st, pr, d0, w);
            std::copy_n(runs_b.data() + (item * chunks + c) * NW, NW, st.h.data());
            scan_block_range<S, true>(fn, st, pr, out, b, d0, w, t0, t1);
        }
    });
    if constexpr (!is_none<St>) {
        for (std::size_t item = 0; item < items; ++item) {
            const std::size_t b = item / bm.count, k = item % bm.count, d0 = bm.d0(k), w = bm.width(k);
            for (std::size_t n = 0; n < sh.n; ++n) {
                for (std::size_t j = 0; j < w; ++j) {
                    state(b, d0 + j, n) = last[item * NW + n * W + j];
                }
            }
        }
    }
}

/// Gradient views of the scan backward (each a strided view or none_t).
template <class GU, class GDl, class GB, class GC, class GZ, class GA, class GD, class GDB>
struct scan_grads {
    GU du;
    GDl ddelta;
    GB db;
    GC dc;
    GZ dz;
    GA da;
    GD dd;
    GDB ddb;
};

/// The selective scan backward on the CPU: per (batch, channel block), a forward pass keeps the
/// state at every staged chunk's start; chunks are then visited last to first, their states
/// recomputed from the checkpoint, and the recurrence run backwards (g_t = dy_t C_t + a_{t+1}
/// g_{t+1}). Variable dB / dC (shared by the channels of a group) go to per-part buffers that
/// are added in part order afterwards, so the result does not depend on the thread count.
template <class S, class P, class G, class DO>
void scan_backward_cpu(const char* fn, const P& pr, const G& gr, const DO& dout, parallel::policy auto&& exec) {
    constexpr std::size_t W = S::width;
    constexpr bool var_b = std::remove_cvref_t<decltype(pr.b)>::rank() == 4;
    constexpr bool var_c = std::remove_cvref_t<decltype(pr.c)>::rank() == 4;
    constexpr bool has_z = !is_none<decltype(pr.z)>;
    const auto& sh = pr.sh;
    const std::size_t N = sh.n, L = sh.len;
    const block_map bm(sh.dim, pr.seg(), W);
    if (sh.batch == 0 || bm.count == 0 || L == 0) {
        return;
    }
    const std::size_t parts = std::min<std::size_t>(bm.count, 4);
    const std::size_t per_part = (bm.count + parts - 1) / parts;
    const std::size_t gsz_b = var_b ? sh.groups_b * N * L : 0, gsz_c = var_c ? sh.groups_c * N * L : 0;
    std::vector<float> pb(sh.batch * parts * gsz_b), pc(sh.batch * parts * gsz_c);
    // Per-batch values of the parameter gradients, summed over the batch and added once at the
    // end (each element gets one addition per call).
    const std::size_t DN = sh.dim * N;
    std::vector<float> pda(sh.batch * DN), pdbf(var_b ? 0 : sh.batch * DN), pdcf(var_c ? 0 : sh.batch * DN),
        pdd(sh.batch * sh.dim), pddb(sh.batch * sh.dim);
    const std::size_t n_ck = (L + scan_chunk - 1) / scan_chunk;
    parallel::parallel_for(exec, sh.batch * parts, 1, [&](std::size_t i0, std::size_t i1) {
        scan_stage<S> st(N, scan_chunk);
        fbuf ck(n_ck * N * W), hs(scan_chunk * N * W), g(N * W), gdt(scan_chunk * W), gu(scan_chunk * W),
            dy(scan_chunk * W), dbv(scan_chunk * N * W), dcv(scan_chunk * N * W), dacc(N * W), dbacc(N * W),
            dcacc(N * W);
        for (std::size_t i = i0; i < i1; ++i) {
            const std::size_t b = i / parts, part = i % parts;
            float* part_b = pb.data() + i * gsz_b;
            float* part_c = pc.data() + i * gsz_c;
            for (std::size_t k = part * per_part; k < std::min(bm.count, (part + 1) * per_part); ++k) {
                const std::size_t d0 = bm.d0(k), w = bm.width(k);
                stage_params(st, pr, d0, w);
                std::fill(st.h.data(), st.h.data() + N * W, 0.0f);
                for (std::size_t c = 0; c < n_ck; ++c) {
                    std::copy_n(st.h.data(), N * W, ck.data() + c * N * W);
                    const std::size_t t0 = c * scan_chunk, T = std::min(scan_chunk, L - t0);
                    stage_inputs(fn, st, pr, b, d0, w, t0, T);
                    scan_staged<S, var_b, var_c, false>(st, T);
                }
                float dsk[W] = {};
                if constexpr (!is_none<decltype(pr.dskip)>) {
                    for (std::size_t j = 0; j < w; ++j) {
                        dsk[j] = to_f(pr.dskip(d0 + j));
                    }
                }
                const auto dskv = S::loadu(dsk);
                std::fill(g.data(), g.data() + N * W, 0.0f);
                std::fill(dacc.data(), dacc.data() + N * W, 0.0f);
                std::fill(dbacc.data(), dbacc.data() + N * W, 0.0f);
                std::fill(dcacc.data(), dcacc.data() + N * W, 0.0f);
                auto dD = S::zero(), dDB = S::zero();
                for (std::size_t c = n_ck; c-- > 0;) {
                    const std::size_t t0 = c * scan_chunk, T = std::min(scan_chunk, L - t0);
                    stage_inputs(fn, st, pr, b, d0, w, t0, T);
                    // States h_t of the chunk (hs[t]) and y_t = C_t . h_t (st.y).
                    std::fill(st.y.data(), st.y.data() + T * W, 0.0f);
                    for (std::size_t n = 0; n < N; ++n) {
                        const auto an = S::load(st.at.data() + n * W);
                        auto h = S::load(ck.data() + c * N * W + n * W);
                        const auto bf = S::load(st.bfix.data() + n * W);
                        const auto cf = S::load(st.cfix.data() + n * W);
                        for (std::size_t t = 0; t < T; ++t) {
                            const auto dt = S::load(st.dt.data() + t * W);
                            const auto a = simd::exp<S>(S::mul(dt, an));
                            const auto bt = var_b ? S::set1(st.bs.data()[t * N + n]) : bf;
                            h = S::fma(a, h, S::mul(S::mul(dt, S::load(st.u.data() + t * W)), bt));
                            S::store(hs.data() + (t * N + n) * W, h);
                            const auto ct = var_c ? S::set1(st.cs.data()[t * N + n]) : cf;
                            S::store(st.y.data() + t * W, S::fma(h, ct, S::load(st.y.data() + t * W)));
                        }
                    }
                    // dy, dz, dD, and du's D term.
                    float dov[W];
                    for (std::size_t t = 0; t < T; ++t) {
                        for (std::size_t j = 0; j < W; ++j) {
                            dov[j] = j < w ? to_f(dout(b, d0 + j, t0 + t)) : 0.0f;
                        }
                        auto gy = S::loadu(dov);
                        const auto ut = S::load(st.u.data() + t * W);
                        if constexpr (has_z) {
                            const auto z = S::load(st.z.data() + t * W);
                            const auto s = simd::sigmoid<S>(z);
                            const auto pre = S::fma(dskv, ut, S::load(st.y.data() + t * W));
                            // silu'(z) = s (1 + z (1 - s))
                            const auto sg = S::mul(s, S::fma(z, S::sub(S::set1(1.0f), s), S::set1(1.0f)));
                            if constexpr (!is_none<decltype(gr.dz)>) {
                                float dzv[W];
                                S::storeu(dzv, S::mul(gy, S::mul(pre, sg)));
                                for (std::size_t j = 0; j < w; ++j) {
                                    gr.dz(b, d0 + j, t0 + t) += dzv[j];
                                }
                            }
                            gy = S::mul(gy, S::mul(z, s));
                        }
                        S::store(dy.data() + t * W, gy);
                        dD = S::fma(gy, ut, dD);
                        S::store(gu.data() + t * W, S::mul(gy, dskv));
                        S::store(gdt.data() + t * W, S::zero());
                    }
                    // The recurrence backwards over the chunk.
                    for (std::size_t t = T; t-- > 0;) {
                        const auto dt = S::load(st.dt.data() + t * W);
                        const auto ut = S::load(st.u.data() + t * W);
                        const auto gy = S::load(dy.data() + t * W);
                        const auto dtu = S::mul(dt, ut);
                        auto gdt_t = S::load(gdt.data() + t * W);
                        auto gu_t = S::load(gu.data() + t * W);
                        const float* hprev = t > 0 ? hs.data() + (t - 1) * N * W : ck.data() + c * N * W;
                        for (std::size_t n = 0; n < N; ++n) {
                            const auto an = S::load(st.at.data() + n * W);
                            const auto bt = var_b ? S::set1(st.bs.data()[t * N + n]) : S::load(st.bfix.data() + n * W);
                            const auto ct = var_c ? S::set1(st.cs.data()[t * N + n]) : S::load(st.cfix.data() + n * W);
                            const auto ht = S::load(hs.data() + (t * N + n) * W);
                            if constexpr (var_c) {
                                S::store(dcv.data() + (t * N + n) * W, S::mul(gy, ht));
                            } else {
                                S::store(dcacc.data() + n * W, S::fma(gy, ht, S::load(dcacc.data() + n * W)));
                            }
                            auto gn = S::fma(gy, ct, S::load(g.data() + n * W));
                            const auto a = simd::exp<S>(S::mul(dt, an));
                            const auto da = S::mul(S::mul(gn, S::load(hprev + n * W)), a);
                            gdt_t = S::fma(da, an, gdt_t);
                            S::store(dacc.data() + n * W, S::fma(da, dt, S::load(dacc.data() + n * W)));
                            gdt_t = S::fma(S::mul(gn, bt), ut, gdt_t);
                            if constexpr (var_b) {
                                S::store(dbv.data() + (t * N + n) * W, S::mul(gn, dtu));
                            } else {
                                S::store(dbacc.data() + n * W, S::fma(gn, dtu, S::load(dbacc.data() + n * W)));
                            }
                            gu_t = S::fma(S::mul(gn, dt), bt, gu_t);
                            S::store(g.data() + n * W, S::mul(gn, a));
                        }
                        S::store(gdt.data() + t * W, gdt_t);
                        S::store(gu.data() + t * W, gu_t);
                    }
                    // Softplus and bias, then the per-position gradients.
                    for (std::size_t t = 0; t < T; ++t) {
                        for (std::size_t j = 0; j < w; ++j) {
                            float gd = gdt.data()[t * W + j];
                            if (pr.softplus) {
                                gd *= tile::softplus_grad(st.raw.data()[t * W + j]);
                            }
                            gdt.data()[t * W + j] = gd;
                            if constexpr (!is_none<decltype(gr.ddelta)>) {
                                gr.ddelta(b, d0 + j, t0 + t) += gd;
                            }
                            if constexpr (!is_none<decltype(gr.du)>) {
                                gr.du(b, d0 + j, t0 + t) += gu.data()[t * W + j];
                            }
                        }
                        dDB = S::add(dDB, S::load(gdt.data() + t * W));
                    }
                    if constexpr (var_b) {
                        const std::size_t gidx = d0 / (sh.dim / sh.groups_b);
                        for (std::size_t t = 0; t < T; ++t) {
                            for (std::size_t n = 0; n < N; ++n) {
                                float s = 0.0f;
                                for (std::size_t j = 0; j < w; ++j) {
                                    s += dbv.data()[(t * N + n) * W + j];
                                }
                                part_b[(gidx * N + n) * L + t0 + t] += s;
                            }
                        }
                    }
                    if constexpr (var_c) {
                        const std::size_t gidx = d0 / (sh.dim / sh.groups_c);
                        for (std::size_t t = 0; t < T; ++t) {
                            for (std::size_t n = 0; n < N; ++n) {
                                float s = 0.0f;
                                for (std::size_t j = 0; j < w; ++j) {
                                    s += dcv.data()[(t * N + n) * W + j];
                                }
                                part_c[(gidx * N + n) * L + t0 + t] += s;
                            }
                        }
                    }
                }
                float tmp[W];
                S::storeu(tmp, dD);
                std::copy_n(tmp, w, pdd.data() + b * sh.dim + d0);
                S::storeu(tmp, dDB);
                std::copy_n(tmp, w, pddb.data() + b * sh.dim + d0);
                for (std::size_t n = 0; n < N; ++n) {
                    for (std::size_t j = 0; j < w; ++j) {
                        const std::size_t e = b * DN + (d0 + j) * N + n;
                        pda[e] = dacc.data()[n * W + j];
                        if constexpr (!var_b) {
                            pdbf[e] = dbacc.data()[n * W + j];
                        }
                        if constexpr (!var_c) {
                            pdcf[e] = dcacc.data()[n * W + j];
                        }
                    }
                }
            }
        }
    });
    auto batch_sum = [&](const std::vector<float>& part_buf, std::size_t e, std::size_t stride) {
        float s = 0.0f;
        for (std::size_t b = 0; b < sh.batch; ++b) {
            s += part_buf[b * stride + e];
        }
        return s;
    };
    for (std::size_t d = 0; d < sh.dim; ++d) {
        if constexpr (!is_none<decltype(gr.dd)>) {
            gr.dd(d) += batch_sum(pdd, d, sh.dim);
        }
        if constexpr (!is_none<decltype(gr.ddb)>) {
            gr.ddb(d) += batch_sum(pddb, d, sh.dim);
        }
        for (std::size_t n = 0; n < N; ++n) {
            if constexpr (!is_none<decltype(gr.da)>) {
                gr.da(d, n) += batch_sum(pda, d * N + n, DN);
            }
            if constexpr (!var_b && !is_none<decltype(gr.db)>) {
                gr.db(d, n) += batch_sum(pdbf, d * N + n, DN);
            }
            if constexpr (!var_c && !is_none<decltype(gr.dc)>) {
                gr.dc(d, n) += batch_sum(pdcf, d * N + n, DN);
            }
        }
    }
    // Variable dB / dC: the parts' sums added in part order.
    auto reduce = [&](const std::vector<float>& part_buf, std::size_t groups, const auto& grad) {
        const std::size_t gsz = groups * N * L;
        parallel::parallel_for(exec, sh.batch * groups * N, 16, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                const std::size_t b = r / (groups * N), gn = r % (groups * N);
                for (std::size_t t = 0; t < L; ++t) {
                    float s = 0.0f;
                    for (std::size_t part = 0; part < parts; ++part) {
                        s += part_buf[(b * parts + part) * gsz + gn * L + t];
                    }
                    grad(b, gn / N, gn % N, t) += s;
                }
            }
        });
    };
    if constexpr (var_b && !is_none<decltype(gr.db)>) {
        reduce(pb, sh.groups_b, gr.db);
    }
    if constexpr (var_c && !is_none<decltype(gr.dc)>) {
        reduce(pc, sh.groups_c, gr.dc);
    }
}

}  // namespace llm::ssm::detail
