// SPDX-License-Identifier: Apache-2.0
// Public attention entry points: flash_forward and flash_backward (tiled, online softmax) with mask, tile and SIMD policies.
#pragma once

#include <llm/attention/cpu.hpp>
#include <llm/attention/detail/problem.hpp>
#include <llm/attention/mask.hpp>
#include <llm/attention/options.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/simd/simd.hpp>

#include <concepts>
#include <type_traits>

namespace llm::attention {

/// The tile sizes used when none are named: default_tiles_t for the default SIMD backend.
using default_tiles = default_tiles_t<simd::default_backend::width>;

/// Tiled attention forward (FlashAttention-2): o = softmax(mask(softcap(scale * q k^T))) v and
/// the per-row log-sum-exp lse, without ever materialising the seq_q x seq_k scores: extra
/// memory is O(seq_k * head_dim) (the packed K and V of one kv head) plus O(tile) per thread.
/// Key tiles the mask hides entirely are skipped. A query row that sees no key gets o = 0 and
/// lse = -inf.
/// Non-finite inputs (NaN, +-inf) give NaN, as softmax attention does for NaN: a non-finite
/// element in q row i makes o row i and lse_i NaN; one in k row j or v row j makes NaN every
/// query row the mask lets see key j, and leaves rows that cannot see j as they would be
/// without it. (Detected while packing the operands, so the tile loop costs nothing extra.)
/// Shapes (FlashAttention's layout): q (batch, seq_q, heads, D); k, v (batch, seq_k, kv_heads, D);
/// o like q; lse (batch, heads, seq_q). heads must be a multiple of kv_heads (GQA; MQA is
/// kv_heads = 1): q head h reads kv head h / (heads / kv_heads). Any strides, except that D
/// must be the unit-stride dimension of q, k and v. Any D (64, 80, 96, 128, 256 and others).
/// Elements: q, k, v fp32 or bf16 (each independently), o fp32 or bf16, lse fp32; fp32 maths.
/// Tiles: a tile_policy (default_tiles). Mask: no_mask, causal, sliding_window or
/// varlen<one of them> (packed sequences; then batch is 1). S: the SIMD backend.
/// Q, K, V, O: strided_tensor<4>; L: strided_tensor<3>. Exec: an llm::parallel policy.
/// Example: `llm::attention::flash_forward(q, k, v, o, lse, llm::attention::causal{}, {}, pool);`
template <tile_policy Tiles = default_tiles, class Mask = no_mask, simd::backend S = simd::default_backend, class Q,
          class K, class V, class O, class L, class Exec>
    requires strided_tensor<Q, 4> && strided_tensor<K, 4> && strided_tensor<V, 4> && strided_tensor<O, 4> &&
             strided_tensor<L, 3> && parallel::policy<std::remove_cvref_t<Exec>>
void flash_forward(Q&& q, K&& k, V&& v, O&& o, L&& lse, const Mask& mask, const options& opt, Exec&& exec) {
    constexpr const char* fn = "flash_forward";
    using TQ = detail::element_of<std::remove_reference_t<Q>>;
    using TK = detail::element_of<std::remove_reference_t<K>>;
    using TV = detail::element_of<std::remove_reference_t<V>>;
    using TO = detail::element_of<std::remove_reference_t<O>>;
    using TL = detail::element_of<std::remove_reference_t<L>>;
    static_assert(detail::is_input_element<TQ> && detail::is_input_element<TK> && detail::is_input_element<TV>,
                  "flash_forward: q, k and v must hold float or llm::bf16");
    static_assert(!std::is_const_v<TO> && detail::is_input_element<TO>, "flash_forward: o must be mutable float or llm::bf16");
    static_assert(std::same_as<TL, float>, "flash_forward: lse must be mutable float");
    const auto [qs, ks, vs, os, ls, sh] = detail::check_forward(fn, q, k, v, o, lse);
    const float scale = detail::resolve_scale(fn, opt, sh.head_dim);
    const auto segs = detail::make_segments(fn, mask, sh);
    detail::forward_cpu<S, Tiles>(qs, ks, vs, os, ls, sh, segs, detail::inner_mask(mask), scale, opt.softcap, exec);
}

/// flash_forward on llm::parallel::default_pool().
/// Example: `llm::attention::flash_forward(q, k, v, o, lse, llm::attention::causal{});`
template <tile_policy Tiles = default_tiles, class Mask = no_mask, simd::backend S = simd::default_backend, class Q,
          class K, class V, class O, class L>
    requires strided_tensor<Q, 4> && strided_tensor<K, 4> && strided_tensor<V, 4> && strided_tensor<O, 4> &&
             strided_tensor<L, 3>
void flash_forward(Q&& q, K&& k, V&& v, O&& o, L&& lse, const Mask& mask = {}, const options& opt = {}) {
    flash_forward<Tiles, Mask, S>(q, k, v, o, lse, mask, opt, parallel::default_pool());
}

/// Tiled attention backward (FlashAttention-2): from q, k, v, the forward's o and lse and the
/// output gradient dout, the gradients dq, dk, dv of sum(o * dout). P is recomputed tile by
/// tile as exp(S - lse); D = rowsum(dout * o); dS = P * (dP - D) (times the soft-cap
/// derivative); extra memory O((seq_q * heads / kv_heads + seq_k) * D) per kv head, never
/// O(seq_q * seq_k). dq, dk, dv are overwritten; under GQA dk and dv sum over the q heads
/// sharing a kv head. Deterministic for a given thread count.
/// Non-finite inputs: a row i touching one (q row i, dout row i, k or v row j of a key j it
/// sees, or the forward's NaN o or lse row) gets dq row i NaN and NaN dk and dv rows for every
/// key it sees; every other gradient is exactly what it would be without that row.
/// Shapes: as flash_forward; dout and dq like q; dk and dv like k. D must be the unit-stride
/// dimension of every tensor. Elements: q, k, v, o, dout fp32 or bf16; lse, dq, dk, dv fp32.
/// Tiles, Mask, S, Exec: as flash_forward (use the same mask and options as the forward).
/// Example: `llm::attention::flash_backward(q, k, v, o, lse, dout, dq, dk, dv, llm::attention::causal{}, {}, pool);`
template <tile_policy Tiles = default_tiles, class Mask = no_mask, simd::backend S = simd::default_backend, class Q,
          class K, class V, class O, class L, class DO, class DQ, class DK, class DV, class Exec>
    requires strided_tensor<Q, 4> && strided_tensor<K, 4> && strided_tensor<V, 4> && strided_tensor<O, 4> &&
             strided_tensor<L, 3> && strided_tensor<DO, 4> && strided_tensor<DQ, 4> && strided_tensor<DK, 4> &&
             strided_tensor<DV, 4> && parallel::policy<std::remove_cvref_t<Exec>>
void flash_backward(Q&& q, K&& k, V&& v, O&& o, L&& lse, DO&& dout, DQ&& dq, DK&& dk, DV&& dv, const Mask& mask,
                    const options& opt, Exec&& exec) {
    constexpr const char* fn = "flash_backward";
    static_assert(detail::is_input_element<detail::element_of<std::remove_reference_t<Q>>> &&
                      detail::is_input_element<detail::element_of<std::remove_reference_t<K>>> &&
                      detail::is_input_element<detail::element_of<std::remove_reference_t<V>>> &&
                      detail::is_input_element<detail::element_of<std::remove_reference_t<O>>> &&
                      detail::is_input_element<detail::element_of<std::remove_reference_t<DO>>>,
                  "flash_backward: q, k, v, o and dout must hold float or llm::bf16");
    static_assert(std::same_as<std::remove_const_t<detail::element_of<std::remove_reference_t<L>>>, float>,
                  "flash_backward: lse must hold float");
    static_assert(std::same_as<detail::element_of<std::remove_reference_t<DQ>>, float> &&
                      std::same_as<detail::element_of<std::remove_reference_t<DK>>, float> &&
                      std::same_as<detail::element_of<std::remove_reference_t<DV>>, float>,
                  "flash_backward: dq, dk and dv must be mutable float");
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
    const auto segs = detail::make_segments(fn, mask, sh);
    detail::backward_cpu<S, Tiles>(qs, ks, vs, os, gs, ls, dqs, dks, dvs, sh, segs, detail::inner_mask(mask), scale,
                                   opt.softcap, exec);
}

/// flash_backward on llm::parallel::default_pool().
/// Example: `llm::attention::flash_backward(q, k, v, o, lse, dout, dq, dk, dv);`
template <tile_policy Tiles = default_tiles, class Mask = no_mask, simd::backend S = simd::default_backend, class Q,
          class K, class V, class O, class L, class DO, class DQ, class DK, class DV>
    requires strided_tensor<Q, 4> && strided_tensor<K, 4> && strided_tensor<V, 4> && strided_tensor<O, 4> &&
             strided_tensor<L, 3> && strided_tensor<DO, 4> && strided_tensor<DQ, 4> && strided_tensor<DK, 4> &&
             strided_tensor<DV, 4>
void flash_backward(Q&& q, K&& k, V&& v, O&& o, L&& lse, DO&& dout, DQ&& dq, DK&& dk, DV&& dv, const Mask& mask = {},
                    const options& opt = {}) {
    flash_backward<Tiles, Mask, S>(q, k, v, o, lse, dout, dq, dk, dv, mask, opt, parallel::default_pool());
}

}  // namespace llm::attention
