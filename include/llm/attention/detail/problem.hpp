// SPDX-License-Identifier: Apache-2.0
// Internals shared by the attention entry points: the kernel views of q, k, v, shape checks, sequence segments.
#pragma once

#include <llm/attention/mask.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm::attention::detail {

/// What the kernels see of q, k, v, o and their gradients: a rank-R llm::kernel_view whose
/// last dimension (head_dim) has the static stride 1, so rows are read as contiguous arrays.
/// Kernels are templates on the element type only (one instantiation per element type).
template <class T, std::size_t R = 4>
using heads_view = llm::row_view<T, R>;

/// x as a heads_view: llm::error naming fn and the tensor when its last dimension is not
/// unit-stride ("flash_forward: q must have stride 1 in dim 3 (its strides are [...])").
template <std::size_t R, class X>
heads_view<view_element_t<std::remove_reference_t<X>>, R> heads_of(const char* fn, const char* name, X&& x) {
    return llm::to_kernel_view<llm::dims<R>, llm::unit_last_stride<R>>(fn, name, x);
}

/// "[a, b, c]": the extents of a view, for messages.
template <class V>
std::string shape_of(const V& x) {
    return llm::detail::tensor_impl::kernel_shape_string(x, false);
}

/// True when x has exactly the extents `want`.
template <class V, std::size_t R>
bool has_extents(const V& x, const std::array<std::size_t, R>& want) {
    for (std::size_t r = 0; r < R; ++r) {
        if (static_cast<std::size_t>(x.extent(r)) != want[r]) {
            return false;
        }
    }
    return true;
}

/// Sizes of one attention call. Tensors: q (batch, seq_q, heads, head_dim), k and v
/// (batch, seq_k, kv_heads, head_dim), o like q, lse (batch, heads, seq_q).
struct shape {
    std::size_t batch, seq_q, seq_k, heads, kv_heads, head_dim;
    std::size_t group() const noexcept { return heads / kv_heads; }
};

/// One sequence of the call: query tokens [q0, q0 + lq) and key tokens [k0, k0 + lk) of batch
/// entry b. A dense batch has one segment per entry; a varlen batch one per packed sequence.
struct segment {
    std::size_t b, q0, lq, k0, lk;
};

/// The mask applied inside each segment.
template <class M>
const auto& inner_mask(const M& m) {
    if constexpr (varlen_mask<M>) {
        return m.inner;
    } else {
        return m;
    }
}

inline void check_offsets(const char* fn, const char* name, std::span<const std::int32_t> cu, std::size_t total) {
    llm::check(cu.size() >= 2, fn, ": varlen ", name, " has ", cu.size(), " entries; it needs >= 2 (sequences + 1)");
    llm::check(cu[0] == 0, fn, ": varlen ", name, "[0] = ", cu[0], " must be 0");
    for (std::size_t s = 1; s < cu.size(); ++s) {
        llm::check(cu[s] >= cu[s - 1], fn, ": varlen ", name, " is not increasing: ", name, "[", s - 1, "] = ", cu[s - 1],
                   " > ", name, "[", s, "] = ", cu[s]);
    }
    llm::check(static_cast<std::size_t>(cu.back()) == total, fn, ": varlen ", name, " ends at ", cu.back(),
               " but the tensors hold ", total, " tokens");
}

/// Checks a call's varlen offsets (if any) and returns the number of segments (see segment):
/// one per batch entry, or one per packed sequence.
template <attention_mask M>
std::size_t check_segments(const char* fn, const M& mask, const shape& sh) {
    if constexpr (varlen_mask<M>) {
        llm::check(sh.batch == 1, fn, ": varlen inputs must have batch 1 (sequences packed along the token axis), got batch ",
                   sh.batch);
        check_offsets(fn, "cu_q", mask.cu_q, sh.seq_q);
        check_offsets(fn, "cu_k", mask.cu_k, sh.seq_k);
        llm::check(mask.cu_q.size() == mask.cu_k.size(), fn, ": varlen cu_q has ", mask.cu_q.size(), " entries but cu_k has ",
                   mask.cu_k.size());
        return mask.cu_q.size() - 1;
    } else {
        return sh.batch;
    }
}

/// Segment s of a call whose segments check_segments has checked.
template <attention_mask M>
segment segment_at(const M& mask, const shape& sh, std::size_t s) {
    if constexpr (varlen_mask<M>) {
        const auto q0 = static_cast<std::size_t>(mask.cu_q[s]);
        const auto k0 = static_cast<std::size_t>(mask.cu_k[s]);
        return {0, q0, static_cast<std::size_t>(mask.cu_q[s + 1]) - q0, k0, static_cast<std::size_t>(mask.cu_k[s + 1]) - k0};
    } else {
        return {s, 0, sh.seq_q, 0, sh.seq_k};
    }
}

/// The segments of a call (see segment), after checking varlen offsets (for the reference,
/// which allocates freely; the fast kernels put them in their workspace).
template <attention_mask M>
std::vector<segment> make_segments(const char* fn, const M& mask, const shape& sh) {
    std::vector<segment> segs(check_segments(fn, mask, sh));
    for (std::size_t s = 0; s < segs.size(); ++s) {
        segs[s] = segment_at(mask, sh, s);
    }
    return segs;
}

/// The segments of a call (see segment), after checking varlen offsets, taken from the
/// workspace inside the caller's frame (the fast kernels allocate nothing).
template <attention_mask M>
std::span<const segment> take_segments(const char* fn, const M& mask, const shape& sh, llm::workspace& ws) {
    const std::size_t n = check_segments(fn, mask, sh);
    segment* segs = ws.take<segment>(n, fn, "the segments");
    for (std::size_t s = 0; s < n; ++s) {
        segs[s] = segment_at(mask, sh, s);
    }
    return {segs, n};
}

/// Checks the sizes of q, k, v (heads_of views: head_dim is unit-stride) and returns them.
/// Messages name `fn` and the offending tensors.
template <class Q, class K, class V>
shape check_qkv(const char* fn, const Q& q, const K& k, const V& v) {
    const shape sh{q.extent(0), q.extent(1), k.extent(1), q.extent(2), k.extent(2), q.extent(3)};
    llm::check(k.extent(0) == sh.batch && v.extent(0) == sh.batch, fn, ": batch differs: q ", shape_of(q), ", k ",
               shape_of(k), ", v ", shape_of(v), " (layout: batch, seq, heads, head_dim)");
    llm::check(k.shape() == v.shape(), fn, ": k ", shape_of(k), " and v ", shape_of(v), " must have the same shape");
    llm::check(k.extent(3) == sh.head_dim, fn, ": q has head_dim ", sh.head_dim, " but k has ", k.extent(3));
    llm::check(sh.head_dim > 0, fn, ": head_dim is 0");
    llm::check(sh.kv_heads > 0 && sh.heads % sh.kv_heads == 0, fn, ": q has ", sh.heads, " heads but k has ",
               sh.kv_heads, "; q heads must be a multiple of kv heads");
    return sh;
}

template <class X>
void check_like_q(const char* fn, const char* name, const X& x, const shape& sh) {
    llm::check(has_extents(x, std::array<std::size_t, 4>{sh.batch, sh.seq_q, sh.heads, sh.head_dim}), fn, ": ", name,
               " is ", shape_of(x), " but q is [", sh.batch, ", ", sh.seq_q, ", ", sh.heads, ", ", sh.head_dim, "]");
}

template <class X>
void check_like_k(const char* fn, const char* name, const X& x, const shape& sh) {
    llm::check(has_extents(x, std::array<std::size_t, 4>{sh.batch, sh.seq_k, sh.kv_heads, sh.head_dim}), fn, ": ", name,
               " is ", shape_of(x), " but k is [", sh.batch, ", ", sh.seq_k, ", ", sh.kv_heads, ", ", sh.head_dim, "]");
}

template <class X>
void check_lse(const char* fn, const X& lse, const shape& sh) {
    llm::check(has_extents(lse, std::array<std::size_t, 3>{sh.batch, sh.heads, sh.seq_q}), fn, ": lse is ", shape_of(lse),
               " but must be [batch, heads, seq_q] = [", sh.batch, ", ", sh.heads, ", ", sh.seq_q, "]");
}

/// The kernel views of a forward call's q, k, v, o, lse and their checked sizes.
template <class Q, class K, class V, class O, class L>
struct forward_views {
    Q q;
    K k;
    V v;
    O o;
    L lse;
    shape sh;
};

/// Views q, k, v (heads_of), o and lse as kernel views and checks their shapes (one place for
/// every forward entry point: CPU, reference, CUDA). Messages name `fn`.
/// OStride: the strides o must have: llm::dims<4> (any), or llm::unit_last_stride<4>.
template <class OStride = llm::dims<4>, class Q, class K, class V, class O, class L>
auto check_forward(const char* fn, Q&& q, K&& k, V&& v, O&& o, L&& lse) {
    const auto qs = heads_of<4>(fn, "q", q);
    const auto ks = heads_of<4>(fn, "k", k);
    const auto vs = heads_of<4>(fn, "v", v);
    const auto os = llm::to_kernel_view<llm::dims<4>, OStride>(fn, "o", o);
    const auto ls = llm::to_kernel_view<3>(lse);
    const shape sh = check_qkv(fn, qs, ks, vs);
    check_like_q(fn, "o", os, sh);
    check_lse(fn, ls, sh);
    return forward_views<decltype(qs), decltype(ks), decltype(vs), decltype(os), decltype(ls)>{qs, ks, vs, os, ls, sh};
}

/// The kernel views of a backward call's q, k, v, dout, dq, dk, dv and their checked sizes.
template <class Q, class K, class V, class DO, class DQ, class DK, class DV>
struct backward_views {
    Q q;
    K k;
    V v;
    DO dout;
    DQ dq;
    DK dk;
    DV dv;
    shape sh;
};

/// Views q, k, v (heads_of), dout, dq, dk and dv as kernel views and checks their shapes (the
/// flash and reference backward). GradStride: the strides dout, dq, dk and dv must have
/// (llm::dims<4>: any; llm::unit_last_stride<4>: head_dim unit-stride). Messages name `fn`.
template <class GradStride, class Q, class K, class V, class DO, class DQ, class DK, class DV>
auto check_backward(const char* fn, Q&& q, K&& k, V&& v, DO&& dout, DQ&& dq, DK&& dk, DV&& dv) {
    const auto qs = heads_of<4>(fn, "q", q);
    const auto ks = heads_of<4>(fn, "k", k);
    const auto vs = heads_of<4>(fn, "v", v);
    const auto gs = llm::to_kernel_view<llm::dims<4>, GradStride>(fn, "dout", dout);
    const auto dqs = llm::to_kernel_view<llm::dims<4>, GradStride>(fn, "dq", dq);
    const auto dks = llm::to_kernel_view<llm::dims<4>, GradStride>(fn, "dk", dk);
    const auto dvs = llm::to_kernel_view<llm::dims<4>, GradStride>(fn, "dv", dv);
    const shape sh = check_qkv(fn, qs, ks, vs);
    check_like_q(fn, "dout", gs, sh);
    check_like_q(fn, "dq", dqs, sh);
    check_like_k(fn, "dk", dks, sh);
    check_like_k(fn, "dv", dvs, sh);
    return backward_views<decltype(qs), decltype(ks), decltype(vs), decltype(gs), decltype(dqs), decltype(dks),
                          decltype(dvs)>{qs, ks, vs, gs, dqs, dks, dvs, sh};
}

}  // namespace llm::attention::detail
