// SPDX-License-Identifier: Apache-2.0
// Public attention entry points: flash_forward and flash_backward (tiled, online softmax) with mask, tile and SIMD policies.
#pragma once

#include <llm/attention/cpu.hpp>
#include <llm/attention/detail/problem.hpp>
#include <llm/attention/mask.hpp>
#include <llm/attention/options.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <concepts>
#include <span>
#include <type_traits>

namespace llm::attention {

/// The tile sizes used when none are named: default_tiles_t for the default SIMD backend.
using default_tiles = default_tiles_t<simd::default_backend::width>;

namespace detail {

/// The views flash_forward takes: o a mutable dense_view<4>, lse a fp32 view_of_rank<3>, q, k,
/// v dense_view<4> (fp32 or bf16). One concept for the four overloads.
template <class O, class L, class Q, class K, class V>
concept forward_args = mutable_dense_view<O, 4> && view_of_rank<L, 3> && std::same_as<view_element_t<L>, float> &&
                       dense_view<Q, 4> && dense_view<K, 4> && dense_view<V, 4>;

/// The views flash_backward takes: dq, dk, dv mutable fp32 dense_view<4>, lse a fp32
/// view_of_rank<3> (const or not), o, dout, q, k, v dense_view<4>. One concept for the four overloads.
template <class DQ, class DK, class DV, class O, class L, class DO, class Q, class K, class V>
concept backward_args = mutable_dense_view<DQ, 4> && mutable_dense_view<DK, 4> && mutable_dense_view<DV, 4> &&
                        std::same_as<view_element_t<DQ>, float> && std::same_as<view_element_t<DK>, float> &&
                        std::same_as<view_element_t<DV>, float> && view_of_rank<L, 3> &&
                        std::same_as<std::remove_const_t<view_element_t<L>>, float> && dense_view<O, 4> &&
                        dense_view<DO, 4> && dense_view<Q, 4> && dense_view<K, 4> && dense_view<V, 4>;

}  // namespace detail

/// Tiled attention forward (FlashAttention-2): o = softmax(mask(softcap(scale * q k^T))) v and
/// the per-row log-sum-exp lse, without ever materialising the seq_q x seq_k scores: extra
/// memory is O(seq_k * head_dim) (the packed K and V of one kv head) plus O(tile) per thread,
/// all taken from the caller's workspace `ws` (a call with a warmed workspace allocates nothing).
/// Key tiles the mask hides entirely are skipped. A query row that sees no key gets o = 0 and
/// lse = -inf.
/// Non-finite inputs (NaN, +-inf) give NaN, as softmax attention does for NaN: a non-finite
/// element in q row i makes o row i and lse_i NaN; one in k row j or v row j makes NaN every
/// query row the mask lets see key j, and leaves rows that cannot see j as they would be
/// without it. (Detected while packing the operands, so the tile loop costs nothing extra.)
/// Arguments (docs/conventions.md): outputs o, saved state lse, inputs q, k, v, options mask
/// and opt, the workspace, the executor.
/// Shapes (FlashAttention's layout): q (batch, seq_q, heads, D); k, v (batch, seq_k, kv_heads, D);
/// o like q; lse (batch, heads, seq_q). heads must be a multiple of kv_heads (GQA; MQA is
/// kv_heads = 1): q head h reads kv head h / (heads / kv_heads). Any strides, except that D
/// must be the unit-stride dimension of q, k and v. Any D (64, 80, 96, 128, 256 and others).
/// Elements: q, k, v fp32 or bf16 (each independently), o fp32 or bf16, lse fp32; fp32 maths.
/// Tiles: a tile_policy (default_tiles). Mask: an attention_mask: no_mask, causal,
/// sliding_window, a user's mask_policy, or a varlen_mask of one (packed sequences; then batch
/// is 1). S: the SIMD backend. exec: an llm::parallel policy (sequential{} or a thread_pool).
/// Example: `llm::workspace ws; llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{}, {}, ws, pool);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class O, class L, class Q, class K, class V>
    requires detail::forward_args<O, L, Q, K, V>
void flash_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask, const options& opt, llm::workspace& ws,
                   parallel::policy auto&& exec) {
    constexpr const char* fn = "flash_forward";
    const auto [qs, ks, vs, os, ls, sh] = detail::check_forward(fn, q, k, v, o, lse);
    const float scale = detail::resolve_scale(fn, opt, sh.head_dim);
    llm::workspace::frame frame(ws);
    detail::forward_cpu<S, Tiles>(qs, ks, vs, os, ls, sh, detail::take_segments(fn, mask, sh, ws),
                                  detail::inner_mask(mask), scale, opt.softcap, ws, exec);
}

/// flash_forward with a workspace of its own (allocated for this call).
/// Example: `llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{}, {}, pool);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class O, class L, class Q, class K, class V>
    requires detail::forward_args<O, L, Q, K, V>
void flash_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask, const options& opt,
                   parallel::policy auto&& exec) {
    llm::workspace ws;
    flash_forward<Tiles, Mask, S>(o, lse, q, k, v, mask, opt, ws, exec);
}

/// flash_forward on llm::parallel::default_pool(), with the caller's workspace.
/// Example: `llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{}, {}, ws);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class O, class L, class Q, class K, class V>
    requires detail::forward_args<O, L, Q, K, V>
void flash_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask, const options& opt, llm::workspace& ws) {
    flash_forward<Tiles, Mask, S>(o, lse, q, k, v, mask, opt, ws, parallel::default_pool());
}

/// flash_forward on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{});`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class O, class L, class Q, class K, class V>
    requires detail::forward_args<O, L, Q, K, V>
void flash_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask = {}, const options& opt = {}) {
    flash_forward<Tiles, Mask, S>(o, lse, q, k, v, mask, opt, parallel::default_pool());
}

/// Tiled attention backward (FlashAttention-2): from q, k, v, the forward's o and lse and the
/// output gradient dout, the gradients dq, dk, dv of sum(o * dout), ADDED to dq, dk and dv
/// (gradients accumulate, docs/conventions.md: clear them first with llm::zero_grad). P is
/// recomputed tile by tile as exp(S - lse); D = rowsum(dout * o); dS = P * (dP - D) (times the
/// soft-cap derivative); extra memory O((seq_q * heads / kv_heads + seq_k) * D) per kv head,
/// never O(seq_q * seq_k), all from the workspace `ws`. Under GQA dk and dv sum over the q heads
/// sharing a kv head. Deterministic for a given thread count.
/// Non-finite inputs: a row i touching one (q row i, dout row i, k or v row j of a key j it
/// sees, or the forward's NaN o or lse row) makes dq row i NaN and the dk and dv rows of every
/// key it sees NaN; every other gradient gets exactly what it would get without that row.
/// Arguments (docs/conventions.md): gradients dq, dk, dv; saved state o, lse; inputs dout, q,
/// k, v; options mask and opt (the forward's); the workspace; the executor.
/// Shapes: as flash_forward; dout and dq like q; dk and dv like k. D must be the unit-stride
/// dimension of every tensor. Elements: q, k, v, o, dout fp32 or bf16; lse, dq, dk, dv fp32.
/// Tiles, Mask, S, exec: as flash_forward (use the same mask and options as the forward).
/// Example: `llm::zero_grad(dq, dk, dv); llm::attention::flash_backward(dq, dk, dv, o, lse, dout, q, k, v, llm::attention::causal{}, {}, ws, pool);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class DQ, class DK, class DV, class O, class L, class DO, class Q, class K, class V>
    requires detail::backward_args<DQ, DK, DV, O, L, DO, Q, K, V>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask,
                    const options& opt, llm::workspace& ws, parallel::policy auto&& exec) {
    constexpr const char* fn = "flash_backward";
    const auto [qs, ks, vs, gs, dqs, dks, dvs, sh] =
        detail::check_backward<llm::unit_last_stride<4>>(fn, q, k, v, dout, dq, dk, dv);
    const auto os = detail::heads_of<4>(fn, "o", o);
    const llm::strided_view<const float, 3> ls = llm::to_kernel_view<3>(lse);
    detail::check_like_q(fn, "o", os, sh);
    detail::check_lse(fn, ls, sh);
    const float scale = detail::resolve_scale(fn, opt, sh.head_dim);
    llm::workspace::frame frame(ws);
    detail::backward_cpu<S, Tiles>(qs, ks, vs, os, gs, ls, dqs, dks, dvs, sh, detail::take_segments(fn, mask, sh, ws),
                                   detail::inner_mask(mask), scale, opt.softcap, ws, exec);
}

/// flash_backward with a workspace of its own (allocated for this call).
/// Example: `llm::attention::flash_backward(dq, dk, dv, o, lse, dout, q, k, v, llm::attention::causal{}, {}, pool);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class DQ, class DK, class DV, class O, class L, class DO, class Q, class K, class V>
    requires detail::backward_args<DQ, DK, DV, O, L, DO, Q, K, V>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask,
                    const options& opt, parallel::policy auto&& exec) {
    llm::workspace ws;
    flash_backward<Tiles, Mask, S>(dq, dk, dv, o, lse, dout, q, k, v, mask, opt, ws, exec);
}

/// flash_backward on llm::parallel::default_pool(), with the caller's workspace.
/// Example: `llm::attention::flash_backward(dq, dk, dv, o, lse, dout, q, k, v, llm::attention::causal{}, {}, ws);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class DQ, class DK, class DV, class O, class L, class DO, class Q, class K, class V>
    requires detail::backward_args<DQ, DK, DV, O, L, DO, Q, K, V>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask,
                    const options& opt, llm::workspace& ws) {
    flash_backward<Tiles, Mask, S>(dq, dk, dv, o, lse, dout, q, k, v, mask, opt, ws, parallel::default_pool());
}

/// flash_backward on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::zero_grad(dq, dk, dv); llm::attention::flash_backward(dq, dk, dv, o, lse, dout, q, k, v);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          class DQ, class DK, class DV, class O, class L, class DO, class Q, class K, class V>
    requires detail::backward_args<DQ, DK, DV, O, L, DO, Q, K, V>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask = {},
                    const options& opt = {}) {
    flash_backward<Tiles, Mask, S>(dq, dk, dv, o, lse, dout, q, k, v, mask, opt, parallel::default_pool());
}

}  // namespace llm::attention
