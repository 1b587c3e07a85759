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

#include <concepts>
#include <span>
#include <type_traits>

namespace llm::attention {

/// The tile sizes used when none are named: default_tiles_t for the default SIMD backend.
using default_tiles = default_tiles_t<simd::default_backend::width>;

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
          mutable_dense_view<4> O, view_of_rank<3> L, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<view_element_t<L>, float>
void flash_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask, const options& opt, llm::workspace& ws,
                   parallel::policy auto&& exec) {
    constexpr const char* fn = "flash_forward";
    const auto [qs, ks, vs, os, ls, sh] = detail::check_forward(fn, q, k, v, o, lse);
    const float scale = detail::resolve_scale(fn, opt, sh.head_dim);
    const std::size_t n_segs = detail::check_segments(fn, mask, sh);
    llm::workspace::frame frame(ws);
    detail::segment* segs = ws.take<detail::segment>(n_segs, fn, "the segments");
    for (std::size_t s = 0; s < n_segs; ++s) {
        segs[s] = detail::segment_at(mask, sh, s);
    }
    detail::forward_cpu<S, Tiles>(qs, ks, vs, os, ls, sh, std::span<const detail::segment>(segs, n_segs),
                                  detail::inner_mask(mask), scale, opt.softcap, ws, exec);
}

/// flash_forward with a workspace of its own (allocated for this call).
/// Example: `llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{}, {}, pool);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          mutable_dense_view<4> O, view_of_rank<3> L, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<view_element_t<L>, float>
void flash_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask, const options& opt,
                   parallel::policy auto&& exec) {
    llm::workspace ws;
    flash_forward<Tiles, Mask, S>(o, lse, q, k, v, mask, opt, ws, exec);
}

/// flash_forward on llm::parallel::default_pool(), with the caller's workspace.
/// Example: `llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{}, {}, ws);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          mutable_dense_view<4> O, view_of_rank<3> L, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<view_element_t<L>, float>
void flash_forward(O&& o, L&& lse, Q&& q, K&& k, V&& v, const Mask& mask, const options& opt, llm::workspace& ws) {
    flash_forward<Tiles, Mask, S>(o, lse, q, k, v, mask, opt, ws, parallel::default_pool());
}

/// flash_forward on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{});`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          mutable_dense_view<4> O, view_of_rank<3> L, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<view_element_t<L>, float>
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
          mutable_dense_view<4> DQ, mutable_dense_view<4> DK, mutable_dense_view<4> DV, dense_view<4> O,
          view_of_rank<3> L, dense_view<4> DO, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<std::remove_const_t<view_element_t<L>>, float> &&
             std::same_as<view_element_t<DQ>, float> && std::same_as<view_element_t<DK>, float> &&
             std::same_as<view_element_t<DV>, float>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask,
                    const options& opt, llm::workspace& ws, parallel::policy auto&& exec) {
    constexpr const char* fn = "flash_backward";
    const auto qs = detail::as_strided<4>(q);
    const auto ks = detail::as_strided<4>(k);
    const auto vs = detail::as_strided<4>(v);
    const auto os = detail::as_strided<4>(o);
    const auto gs = detail::as_strided<4>(dout);
    const auto lsm = detail::as_strided<3>(lse);
    const detail::strided<const float, 3> ls{lsm.data, lsm.n, lsm.s};
    const auto dqs = detail::as_strided<4>(dq);
    const auto dks = detail::as_strided<4>(dk);
    const auto dvs = detail::as_strided<4>(dv);
    const auto sh = detail::check_qkv(fn, qs, ks, vs);
    detail::check_like_q(fn, "o", os, sh);
    detail::check_like_q(fn, "dout", gs, sh);
    detail::check_like_q(fn, "dq", dqs, sh);
    detail::check_like_k(fn, "dk", dks, sh);
    detail::check_like_k(fn, "dv", dvs, sh);
    detail::check_lse(fn, ls, sh);
    llm::check(os.s[3] == 1 && gs.s[3] == 1 && dqs.s[3] == 1 && dks.s[3] == 1 && dvs.s[3] == 1, fn,
               ": head_dim must be the unit-stride dimension of o, dout, dq, dk and dv (strides ", os.s[3], ", ", gs.s[3],
               ", ", dqs.s[3], ", ", dks.s[3], ", ", dvs.s[3], ")");
    const float scale = detail::resolve_scale(fn, opt, sh.head_dim);
    const std::size_t n_segs = detail::check_segments(fn, mask, sh);
    llm::workspace::frame frame(ws);
    detail::segment* segs = ws.take<detail::segment>(n_segs, fn, "the segments");
    for (std::size_t s = 0; s < n_segs; ++s) {
        segs[s] = detail::segment_at(mask, sh, s);
    }
    detail::backward_cpu<S, Tiles>(qs, ks, vs, os, gs, ls, dqs, dks, dvs, sh, std::span<const detail::segment>(segs, n_segs),
                                   detail::inner_mask(mask), scale, opt.softcap, ws, exec);
}

/// flash_backward with a workspace of its own (allocated for this call).
/// Example: `llm::attention::flash_backward(dq, dk, dv, o, lse, dout, q, k, v, llm::attention::causal{}, {}, pool);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          mutable_dense_view<4> DQ, mutable_dense_view<4> DK, mutable_dense_view<4> DV, dense_view<4> O,
          view_of_rank<3> L, dense_view<4> DO, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<std::remove_const_t<view_element_t<L>>, float> &&
             std::same_as<view_element_t<DQ>, float> && std::same_as<view_element_t<DK>, float> &&
             std::same_as<view_element_t<DV>, float>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask,
                    const options& opt, parallel::policy auto&& exec) {
    llm::workspace ws;
    flash_backward<Tiles, Mask, S>(dq, dk, dv, o, lse, dout, q, k, v, mask, opt, ws, exec);
}

/// flash_backward on llm::parallel::default_pool(), with the caller's workspace.
/// Example: `llm::attention::flash_backward(dq, dk, dv, o, lse, dout, q, k, v, llm::attention::causal{}, {}, ws);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          mutable_dense_view<4> DQ, mutable_dense_view<4> DK, mutable_dense_view<4> DV, dense_view<4> O,
          view_of_rank<3> L, dense_view<4> DO, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<std::remove_const_t<view_element_t<L>>, float> &&
             std::same_as<view_element_t<DQ>, float> && std::same_as<view_element_t<DK>, float> &&
             std::same_as<view_element_t<DV>, float>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask,
                    const options& opt, llm::workspace& ws) {
    flash_backward<Tiles, Mask, S>(dq, dk, dv, o, lse, dout, q, k, v, mask, opt, ws, parallel::default_pool());
}

/// flash_backward on llm::parallel::default_pool() with a workspace of its own.
/// Example: `llm::zero_grad(dq, dk, dv); llm::attention::flash_backward(dq, dk, dv, o, lse, dout, q, k, v);`
template <tile_policy Tiles = default_tiles, attention_mask Mask = no_mask, simd::backend S = simd::default_backend,
          mutable_dense_view<4> DQ, mutable_dense_view<4> DK, mutable_dense_view<4> DV, dense_view<4> O,
          view_of_rank<3> L, dense_view<4> DO, dense_view<4> Q, dense_view<4> K, dense_view<4> V>
    requires std::same_as<std::remove_const_t<view_element_t<L>>, float> &&
             std::same_as<view_element_t<DQ>, float> && std::same_as<view_element_t<DK>, float> &&
             std::same_as<view_element_t<DV>, float>
void flash_backward(DQ&& dq, DK&& dk, DV&& dv, O&& o, L&& lse, DO&& dout, Q&& q, K&& k, V&& v, const Mask& mask = {},
                    const options& opt = {}) {
    flash_backward<Tiles, Mask, S>(dq, dk, dv, o, lse, dout, q, k, v, mask, opt, parallel::default_pool());
}

}  // namespace llm::attention
