// SPDX-License-Identifier: Apache-2.0
// Decode attention: one new query token per sequence against its KV cache, split over the cache length and merged by log-sum-exp (flash-decoding).
#pragma once

#include <llm/attention/cpu.hpp>
#include <llm/attention/detail/problem.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/attention/mask.hpp>
#include <llm/attention/options.hpp>
#include <llm/attention/tile.hpp>
#include <llm/config.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/math.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

namespace llm::attention {

namespace detail {

/// Loads n <= width elements of a cache row as fp32. Full: n is known to be the width (head_dim
/// a multiple of it), so no branch on n is left in the inner loops.
template <simd::backend S, bool Full, class T>
LLM_FORCE_INLINE typename S::f32 load_row(const T* p, std::size_t n) {
    if constexpr (Full && std::is_same_v<std::remove_const_t<T>, float>) {
        return S::loadu(p);
    } else if constexpr (Full) {
        return S::load_bf16(p);
    } else if constexpr (std::is_same_v<std::remove_const_t<T>, float>) {
        return n == S::width ? S::loadu(p) : S::load_partial(p, n);
    } else {
        return n == S::width ? S::load_bf16(p) : S::load_bf16_partial(p, n);
    }
}

/// Keys scored per online-softmax step: a multiple of every SIMD width, small enough that the
/// scores of a GQA group (up to 16 heads x 64 floats) stay in L1.
inline constexpr std::size_t decode_chunk = 64;

/// acc[0, NV*W) += sum_c p[c] * v[c][d0, d0 + NV*W) over the n rows v[c] (head_dim D: the last
/// vector may be partial), with the NV accumulators in registers across all n rows.
template <simd::backend S, bool Full, std::size_t NV, class T>
LLM_FORCE_INLINE void pv_block(std::size_t n, const float* p, const T* const* v, std::size_t d0, std::size_t D, float* acc) {
    constexpr std::size_t W = S::width;
    typename S::f32 a[NV];
    unroll<NV>([&](auto j) { a[j] = S::loadu(acc + j * W); });
    for (std::size_t c = 0; c < n; ++c) {
        const auto pc = S::set1(p[c]);
        unroll<NV>([&](auto j) {
            const std::size_t d = d0 + j * W;
            a[j] = S::fma(pc, load_row<S, Full>(v[c] + d, std::min(W, D - d)), a[j]);
        });
    }
    unroll<NV>([&](auto j) { S::storeu(acc + j * W, a[j]); });
}

/// Attention of the `group` query rows q (group x Dp, already scaled, zero-padded) over cache
/// positions [lo, hi) of (seq, kv head g): writes the normalised partial outputs (group x D)
/// and their log-sum-exps. Keys are taken in chunks of decode_chunk (gathered across cache
/// runs, so 16-token pages cost no more than one long run); K and V rows of a chunk are read
/// once from memory for the whole group (GQA shares them) and then stay in L1.
/// The scratch of one decode lane (one thread's share of the tasks), carved from the call's
/// workspace: scores (group x decode_chunk), accumulators (group x Dp), the chunk's key and
/// value row pointers, the softmax states and the non-finite score flags of the group.
template <class T>
struct decode_scratch {
    float* sc;
    float* acc;
    const T** kp;  // decode_chunk + 3 entries
    const T** vp;  // decode_chunk entries
    softmax_state* st;
    unsigned char* bad_score;
};

template <simd::backend S, bool Full, class C>
void decode_part(const C& cache, std::size_t seq, std::size_t g, std::size_t lo, std::size_t hi, const float* q,
                 std::size_t group, float cap, float* out, float* lse,
                 const decode_scratch<typename C::element_type>& scratch) {
    using T = typename C::element_type;
    constexpr std::size_t W = S::width;
    constexpr std::size_t CH = decode_chunk;
    const std::size_t D = cache.head_dim();
    const std::size_t Dp = (D + W - 1) / W * W;
    const std::span<float> sc(scratch.sc, group * CH), acc(scratch.acc, group * Dp);
    const std::span<const T*> kp(scratch.kp, CH + 3), vp(scratch.vp, CH);
    const std::span<softmax_state> st(scratch.st, group);
    const std::span<unsigned char> bad_score(scratch.bad_score, group);  // a score was NaN or +-inf: a non-finite q or k
    std::fill(acc.begin(), acc.end(), 0.0f);
    std::fill(st.begin(), st.end(), softmax_state{});
    std::fill(bad_score.begin(), bad_score.end(), 0);
    kv_run<T> r{};
    std::size_t left = 0;  // positions of r not yet gathered
    for (std::size_t pos = lo; pos < hi;) {
        std::size_t n = 0;
        for (; n < CH && pos < hi; ++n, ++pos, --left) {
            if (left == 0) {
                r = cache.run(seq, pos);
                r.k += g * r.head_stride;
                r.v += g * r.head_stride;
                left = r.count;
            }
            const std::size_t off = (r.count - left) * r.stride;
            kp[n] = r.k + off;
            vp[n] = r.v + off;
        }
        // Four keys at a time: four independent fma chains hide the fma latency that one dot
        // product's single chain would expose; the rows past n repeat the last key (scores
        // overwritten with -inf below).
        for (std::size_t c = n; c < round_up(n, 4); ++c) {
            kp[c] = kp[n - 1];
        }
        for (std::size_t hq = 0; hq < group; ++hq) {
            const float* qh = q + hq * Dp;
            for (std::size_t c = 0; c < n; c += 4) {
                typename S::f32 dot[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
                for (std::size_t d = 0; d < D; d += W) {
                    const auto qv = S::loadu(qh + d);
                    const std::size_t w = std::min(W, D - d);
                    unroll<4>([&](auto j) { dot[j] = S::fma(qv, load_row<S, Full>(kp[c + j] + d, w), dot[j]); });
                }
                unroll<4>([&](auto j) { sc[hq * CH + c + j] = S::reduce_add(dot[j]); });
            }
        }
        for (std::size_t hq = 0; hq < group; ++hq) {
            float* s = sc.data() + hq * CH;
            bad_score[hq] |= !all_finite(s, n);  // before the cap, which maps +-inf to finite values
            if (cap > 0.0f) {
                for (std::size_t c = 0; c < CH; c += W) {
                    S::storeu(s + c, softcap_vec<S>(S::loadu(s + c), cap));
                }
            }
            std::fill(s + n, s + CH, -std::numeric_limits<float>::infinity());  // after the cap: it maps -inf to -cap
            const float alpha = rescale(st[hq], simd::row_max<S>(s, CH));
            st[hq].l = st[hq].l * alpha + simd::row_exp_sum<S>(s, s, CH, st[hq].m);  // s becomes P = exp(s - m)
            float* a = acc.data() + hq * Dp;
            if (alpha != 1.0f) {
                for (std::size_t d = 0; d < Dp; d += W) {
                    S::storeu(a + d, S::mul(S::set1(alpha), S::loadu(a + d)));
                }
            }
            std::size_t d0 = 0;
            for (; d0 + nv * W <= Dp; d0 += nv * W) {
                pv_block<S, Full, nv>(n, s, vp.data(), d0, D, a + d0);
            }
            switch ((Dp - d0) / W) {
                case 3:
                    pv_block<S, Full, 3>(n, s, vp.data(), d0, D, a + d0);
                    break;
                case 2:
                    pv_block<S, Full, 2>(n, s, vp.data(), d0, D, a + d0);
                    break;
                case 1:
                    pv_block<S, Full, 1>(n, s, vp.data(), d0, D, a + d0);
                    break;
                default:
                    break;
            }
        }
    }
    for (std::size_t hq = 0; hq < group; ++hq) {
        // Non-finite inputs give NaN (see decode_attention): a NaN or inf key shows in the
        // scores, a value in the accumulator (NaN or inf even where p = 0), either in l.
        const bool poisoned = bad_score[hq] != 0 || !std::isfinite(st[hq].l) || !all_finite(acc.data() + hq * Dp, D);
        const float inv = poisoned ? std::numeric_limits<float>::quiet_NaN() : output_scale(st[hq]);
        for (std::size_t d = 0; d < D; ++d) {
            out[hq * D + d] = acc[hq * Dp + d] * inv;
        }
        lse[hq] = poisoned ? std::numeric_limits<float>::quiet_NaN() : row_lse(st[hq]);
    }
}

/// decode_attention's body: out (sequences, heads, D) fp32; lse null or (sequences, heads) fp32.
template <simd::backend S, class Mask, class C, class TQ, class Exec>
void decode_impl(const heads_view<float, 3>& os, const llm::strided_view<float, 2>* lse, const C& cache,
                 const heads_view<TQ, 3>& qs, const Mask& mask, const options& opt, llm::workspace& ws, Exec& exec) {
    constexpr const char* fn = "decode_attention";
    using T = typename C::element_type;
    const std::size_t n_seq = qs.extent(0), H = qs.extent(1), D = qs.extent(2), Hk = cache.kv_heads();
    llm::check(n_seq == cache.sequences(), fn, ": q has ", n_seq, " sequences but the cache has ", cache.sequences());
    llm::check(D == cache.head_dim(), fn, ": q has head_dim ", D, " but the cache has ", cache.head_dim());
    llm::check(H % Hk == 0, fn, ": q has ", H, " heads but the cache has ", Hk, " kv heads; q heads must be a multiple of kv heads");
    llm::check(os.shape() == qs.shape(), fn, ": out is ", shape_of(os), " but q is ", shape_of(qs));
    if (lse != nullptr) {
        llm::check(has_extents(*lse, std::array<std::size_t, 2>{n_seq, H}), fn, ": lse is ", shape_of(*lse),
                   " but must be [sequences, heads] = [", n_seq, ", ", H, "]");
    }
    const float scale = resolve_scale(fn, opt, D);
    const std::size_t group = H / Hk;
    constexpr std::size_t W = S::width;
    constexpr std::size_t CH = decode_chunk;
    const std::size_t Dp = (D + W - 1) / W * W;

    std::size_t max_len = 0;
    for (std::size_t s = 0; s < n_seq; ++s) {
        max_len = std::max(max_len, cache.length(s));
    }
    std::size_t parts = opt.splits;
    if (parts == 0) {
        const std::size_t base = std::max<std::size_t>(1, n_seq * Hk);
        const std::size_t want = (4 * exec.size() + base - 1) / base;
        parts = std::max<std::size_t>(1, std::min(want, max_len / 512));
    }
    const std::size_t tasks = checked_mul(checked_mul(n_seq, Hk, fn, "the tasks"), parts, fn, "the tasks");
    const std::size_t part_rows = checked_mul(tasks, group, fn, "the partial outputs");
    const std::size_t lanes = lane_count(exec.size(), tasks);
    llm::workspace::frame frame(ws);
    float* part_out = ws.take<float>(checked_mul(part_rows, D, fn, "the partial outputs"), fn, "the partial outputs");
    float* part_lse = ws.take<float>(part_rows, fn, "the partial log-sum-exps");
    unsigned char* q_bad = ws.take<unsigned char>(checked_mul(n_seq, H, fn, "the query flags"), fn, "the query flags");
    std::fill_n(q_bad, n_seq * H, 0);  // q(s, h, :) holds NaN or inf
    // Per lane: the scaled query rows of a group, then decode_part's scratch.
    float* lane_q = ws.take<float>(checked_mul(lanes, group * Dp, fn, "the query rows"), fn, "the query rows");
    float* lane_sc = ws.take<float>(checked_mul(lanes, group * CH, fn, "the score chunks"), fn, "the score chunks");
    float* lane_acc = ws.take<float>(checked_mul(lanes, group * Dp, fn, "the accumulators"), fn, "the accumulators");
    const T** lane_kp = ws.take<const T*>(lanes * (CH + 3), fn, "the key rows");
    const T** lane_vp = ws.take<const T*>(lanes * CH, fn, "the value rows");
    softmax_state* lane_st = ws.take<softmax_state>(lanes * group, fn, "the softmax states");
    unsigned char* lane_bad = ws.take<unsigned char>(lanes * group, fn, "the score flags");
    std::atomic<std::size_t> next_task{0};
    parallel::parallel_for(exec, lanes, 1, [&](std::size_t lane, std::size_t) {
        float* qrow = lane_q + lane * group * Dp;
        std::fill_n(qrow, group * Dp, 0.0f);
        const decode_scratch<T> scratch{lane_sc + lane * group * CH, lane_acc + lane * group * Dp, lane_kp + lane * (CH + 3),
                                        lane_vp + lane * CH, lane_st + lane * group, lane_bad + lane * group};
        for (std::size_t t = next_task.fetch_add(1, std::memory_order_relaxed); t < tasks;
             t = next_task.fetch_add(1, std::memory_order_relaxed)) {
            const std::size_t s = t / (Hk * parts);
            const std::size_t g = t / parts % Hk;
            const std::size_t p = t % parts;
            const auto len = static_cast<std::int64_t>(cache.length(s));
            const index_range cr = mask.cols(0, 1, 1, len);
            const auto lo = static_cast<std::size_t>(std::max<std::int64_t>(cr.lo, 0));
            const auto hi = static_cast<std::size_t>(std::max<std::int64_t>(cr.hi, cr.lo));
            const std::size_t span = hi - lo;
            for (std::size_t hq = 0; hq < group; ++hq) {
                for (std::size_t d = 0; d < D; ++d) {
                    qrow[hq * Dp + d] = static_cast<float>(qs(s, g * group + hq, d)) * scale;
                }
                if (p == 0 && !all_finite(qs.ptr(s, g * group + hq, 0), D)) {
                    q_bad[s * H + g * group + hq] = 1;  // an empty cache would not show it in the scores
                }
            }
            const std::size_t p_lo = lo + span * p / parts, p_hi = lo + span * (p + 1) / parts;
            float* po = part_out + t * group * D;
            float* pl = part_lse + t * group;
            if (D % W == 0) {
                decode_part<S, true>(cache, s, g, p_lo, p_hi, qrow, group, opt.softcap, po, pl, scratch);
            } else {
                decode_part<S, false>(cache, s, g, p_lo, p_hi, qrow, group, opt.softcap, po, pl, scratch);
            }
        }
    });
    for (std::size_t s = 0; s < n_seq; ++s) {
        for (std::size_t g = 0; g < Hk; ++g) {
            for (std::size_t hq = 0; hq < group; ++hq) {
                const std::size_t t0 = (s * Hk + g) * parts;
                float* o = os.ptr(s, g * group + hq, 0);
                float cur = part_lse[t0 * group + hq];
                std::copy_n(part_out + (t0 * group + hq) * D, D, o);
                for (std::size_t p = 1; p < parts; ++p) {
                    const std::size_t t = t0 + p;
                    const auto w = lse_merge(cur, part_lse[t * group + hq]);
                    const float* po = part_out + (t * group + hq) * D;
                    for (std::size_t d = 0; d < D; ++d) {
                        o[d] = w.wa * o[d] + w.wb * po[d];
                    }
                    cur = w.lse;
                }
                if (q_bad[s * H + g * group + hq] != 0) {
                    cur = std::numeric_limits<float>::quiet_NaN();
                    std::fill_n(o, D, cur);
                }
                if (lse != nullptr) {
                    (*lse)(s, g * group + hq) = cur;
                }
            }
        }
    }
}

}  // namespace detail

/// Decode attention (flash-decoding): for each sequence s, the single new query token
/// q(s, h, :) attends to every cached position of s in one layer of a model's cache: `cache`
/// is `model_cache.layer(l)` (a kv_cache view; append the token's own k and v to that layer
/// first: the view sees a layer's appended rows before `advance` commits the step). The cache length is split into opt.splits parts processed as independent
/// tasks, each producing a normalised partial output and its log-sum-exp; the parts are then
/// merged with the log-sum-exp rule (tile.hpp lse_merge) in part order, so the result does not
/// depend on the thread count. Splitting is what lets two threads share one long sequence.
/// K and V rows are read once per kv head for all the q heads sharing it (GQA/MQA). Scratch
/// comes from the workspace `ws`: with a warmed workspace (a previous call of the same sizes)
/// a call allocates nothing, on sequential{} or a thread_pool.
/// Arguments (docs/conventions.md): outputs out, saved state lse (the log-sum-exps; an overload
/// goes without) and cache (read), input q, options mask and opt, the workspace, the executor.
/// Shapes: q and out (sequences, heads, head_dim), sequences == cache.sequences(), heads a
/// multiple of cache.kv_heads(), head_dim == cache.head_dim() and unit-stride; lse
/// (sequences, heads), any strides. A sequence with an empty cache gets out = 0 (lse = -inf).
/// Non-finite inputs give NaN (as flash_forward): a NaN or inf in q(s, h, :) makes out(s, h, :)
/// and its lse NaN; one in a cached key or value row the query sees makes NaN every head of
/// the kv head's group. Positions outside the mask's window are never read.
/// opt.splits: parts per (sequence, kv head); 0 chooses enough parts for 4 tasks per thread,
/// each part >= 512 positions (smaller parts cost more in merging than they gain).
/// S: SIMD backend. Mask: a mask_policy, of which decode reads the column range
/// mask.cols(0, 1, 1, length) of the one-row query (no_mask and causal: every position;
/// sliding_window: the last left + 1); a mask whose last row has holes inside that range is
/// not supported here. cache: a kv_cache (one layer: `cache.layer(l)` of contiguous_kv_cache
/// or paged_kv_cache). Elements: q fp32 or bf16, out and lse fp32.
/// Example: `llm::workspace ws; llm::attention::decode_attention(out, lse, cache.layer(l), q, llm::attention::causal{}, {}, ws, pool);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out,
          view_of_rank<2> L, kv_cache C, dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float> && std::same_as<view_element_t<L>, float>
void decode_attention(Out&& out, L&& lse, const C& cache, Q&& q, const Mask& mask, const options& opt,
                      llm::workspace& ws, parallel::policy auto&& exec) {
    constexpr const char* fn = "decode_attention";
    const auto ls = llm::to_kernel_view<2>(lse);
    detail::decode_impl<S>(detail::heads_of<3>(fn, "out", out), &ls, cache, detail::heads_of<3>(fn, "q", q), mask, opt, ws,
                           exec);
}

/// decode_attention with a workspace of its own (allocated for this call).
/// Example: `llm::attention::decode_attention(out, lse, cache.layer(l), q, llm::attention::causal{}, {}, pool);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out,
          view_of_rank<2> L, kv_cache C, dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float> && std::same_as<view_element_t<L>, float>
void decode_attention(Out&& out, L&& lse, const C& cache, Q&& q, const Mask& mask, const options& opt,
                      parallel::policy auto&& exec) {
    llm::workspace ws;
    decode_attention<S, Mask>(out, lse, cache, q, mask, opt, ws, exec);
}

/// decode_attention on llm::parallel::default_pool(), with the caller's workspace.
/// Example: `llm::attention::decode_attention(out, lse, cache.layer(l), q, llm::attention::causal{}, {}, ws);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out,
          view_of_rank<2> L, kv_cache C, dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float> && std::same_as<view_element_t<L>, float>
void decode_attention(Out&& out, L&& lse, const C& cache, Q&& q, const Mask& mask, const options& opt,
                      llm::workspace& ws) {
    decode_attention<S, Mask>(out, lse, cache, q, mask, opt, ws, parallel::default_pool());
}

/// decode_attention on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::attention::decode_attention(out, lse, cache.layer(l), q);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out,
          view_of_rank<2> L, kv_cache C, dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float> && std::same_as<view_element_t<L>, float>
void decode_attention(Out&& out, L&& lse, const C& cache, Q&& q, const Mask& mask = {}, const options& opt = {}) {
    decode_attention<S, Mask>(out, lse, cache, q, mask, opt, parallel::default_pool());
}

/// decode_attention without the log-sum-exps: out only.
/// Example: `llm::workspace ws; llm::attention::decode_attention(out, cache.layer(l), q, llm::attention::causal{}, {}, ws, pool);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out, kv_cache C,
          dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float>
void decode_attention(Out&& out, const C& cache, Q&& q, const Mask& mask, const options& opt, llm::workspace& ws,
                      parallel::policy auto&& exec) {
    constexpr const char* fn = "decode_attention";
    detail::decode_impl<S>(detail::heads_of<3>(fn, "out", out), nullptr, cache, detail::heads_of<3>(fn, "q", q), mask, opt,
                           ws, exec);
}

/// decode_attention without the log-sum-exps, with a workspace of its own.
/// Example: `llm::attention::decode_attention(out, cache.layer(l), q, llm::attention::causal{}, {}, pool);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out, kv_cache C,
          dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float>
void decode_attention(Out&& out, const C& cache, Q&& q, const Mask& mask, const options& opt,
                      parallel::policy auto&& exec) {
    llm::workspace ws;
    decode_attention<S, Mask>(out, cache, q, mask, opt, ws, exec);
}

/// decode_attention without the log-sum-exps, on llm::parallel::default_pool(), with the caller's workspace.
/// Example: `llm::attention::decode_attention(out, cache.layer(l), q, llm::attention::causal{}, {}, ws);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out, kv_cache C,
          dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float>
void decode_attention(Out&& out, const C& cache, Q&& q, const Mask& mask, const options& opt, llm::workspace& ws) {
    decode_attention<S, Mask>(out, cache, q, mask, opt, ws, parallel::default_pool());
}

/// decode_attention without the log-sum-exps, on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::attention::decode_attention(out, cache.layer(l), q);`
template <simd::backend S = simd::default_backend, mask_policy Mask = causal, mutable_dense_view<3> Out, kv_cache C,
          dense_view<3> Q>
    requires std::same_as<view_element_t<Out>, float>
void decode_attention(Out&& out, const C& cache, Q&& q, const Mask& mask = {}, const options& opt = {}) {
    decode_attention<S, Mask>(out, cache, q, mask, opt, parallel::default_pool());
}

}  // namespace llm::attention
