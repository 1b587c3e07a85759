// SPDX-License-Identifier: Apache-2.0
// Internals shared by the attention entry points: strided tensor descriptors, shape checks, sequence segments.
#pragma once

#include <llm/attention/mask.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/concepts.hpp>

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

/// What kernels see of a tensor: pointer, extents and element strides. Kernels are templates
/// on this, not on the tensor type, which keeps instantiations to one per element type.
template <class T, std::size_t R>
struct strided {
    T* data = nullptr;
    std::array<std::size_t, R> n{};  // extents
    std::array<std::size_t, R> s{};  // strides in elements

    template <class... I>
    LLM_FORCE_INLINE T& operator()(I... i) const noexcept {
        static_assert(sizeof...(I) == R);
        std::size_t off = 0;
        std::size_t r = 0;
        ((off += static_cast<std::size_t>(i) * s[r++]), ...);
        return data[off];
    }
    /// Pointer to element (i...), for row access along the last (unit-stride) dimension.
    template <class... I>
    LLM_FORCE_INLINE T* ptr(I... i) const noexcept {
        return &(*this)(i...);
    }
};

template <std::size_t R, class X>
strided<view_element_t<std::remove_reference_t<X>>, R> as_strided(X&& x) {
    strided<view_element_t<std::remove_reference_t<X>>, R> out;
    out.data = x.data();
    for (std::size_t r = 0; r < R; ++r) {
        out.n[r] = static_cast<std::size_t>(x.extent(r));
        out.s[r] = static_cast<std::size_t>(x.stride(r));
    }
    return out;
}

template <class T, std::size_t R>
std::string shape_of(const strided<T, R>& t) {
    std::string s = "[";
    for (std::size_t r = 0; r < R; ++r) {
        s += (r ? ", " : "") + std::to_string(t.n[r]);
    }
    return s + "]";
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

/// Checks q, k, v (and o, lse when given: o may be null data with zero extents) and returns
/// the sizes. Messages name `fn` and the offending tensors.
template <class TQ, class TK, class TV>
shape check_qkv(const char* fn, const strided<TQ, 4>& q, const strided<TK, 4>& k, const strided<TV, 4>& v) {
    const shape sh{q.n[0], q.n[1], k.n[1], q.n[2], k.n[2], q.n[3]};
    llm::check(k.n[0] == sh.batch && v.n[0] == sh.batch, fn, ": batch differs: q ", shape_of(q), ", k ", shape_of(k), ", v ",
               shape_of(v), " (layout: batch, seq, heads, head_dim)");
    llm::check(k.n == v.n, fn, ": k ", shape_of(k), " and v ", shape_of(v), " must have the same shape");
    llm::check(k.n[3] == sh.head_dim, fn, ": q has head_dim ", sh.head_dim, " but k has ", k.n[3]);
    llm::check(sh.head_dim > 0, fn, ": head_dim is 0");
    llm::check(sh.kv_heads > 0 && sh.heads % sh.kv_heads == 0, fn, ": q has ", sh.heads, " heads but k has ",
               sh.kv_heads, "; q heads must be a multiple of kv heads");
    llm::check(q.s[3] == 1 && k.s[3] == 1 && v.s[3] == 1, fn,
               ": head_dim must be the unit-stride dimension of q, k and v (strides ", q.s[3], ", ", k.s[3], ", ", v.s[3], ")");
    return sh;
}

template <class T>
void check_like_q(const char* fn, const char* name, const strided<T, 4>& x, const shape& sh) {
    llm::check(x.n == std::array<std::size_t, 4>{sh.batch, sh.seq_q, sh.heads, sh.head_dim}, fn, ": ", name, " is ",
               shape_of(x), " but q is [", sh.batch, ", ", sh.seq_q, ", ", sh.heads, ", ", sh.head_dim, "]");
}

template <class T>
void check_like_k(const char* fn, const char* name, const strided<T, 4>& x, const shape& sh) {
    llm::check(x.n == std::array<std::size_t, 4>{sh.batch, sh.seq_k, sh.kv_heads, sh.head_dim}, fn, ": ", name, " is ",
               shape_of(x), " but k is [", sh.batch, ", ", sh.seq_k, ", ", sh.kv_heads, ", ", sh.head_dim, "]");
}

template <class T>
void check_lse(const char* fn, const strided<T, 3>& lse, const shape& sh) {
    llm::check(lse.n == std::array<std::size_t, 3>{sh.batch, sh.heads, sh.seq_q}, fn, ": lse is ", shape_of(lse),
               " but must be [batch, heads, seq_q] = [", sh.batch, ", ", sh.heads, ", ", sh.seq_q, "]");
}

/// The strided views of a forward call's q, k, v, o, lse and their checked sizes.
template <class Q, class K, class V, class O, class L>
struct forward_views {
    Q q;
    K k;
    V v;
    O o;
    L lse;
    shape sh;
};

/// Views q, k, v, o, lse as strided tensors and checks their shapes (one place for every
/// forward entry point: CPU, reference, CUDA). Messages name `fn`.
template <class Q, class K, class V, class O, class L>
auto check_forward(const char* fn, Q&& q, K&& k, V&& v, O&& o, L&& lse) {
    auto qs = as_strided<4>(q);
    auto ks = as_strided<4>(k);
    auto vs = as_strided<4>(v);
    auto os = as_strided<4>(o);
    auto ls = as_strided<3>(lse);
    const shape sh = check_qkv(fn, qs, ks, vs);
    check_like_q(fn, "o", os, sh);
    check_lse(fn, ls, sh);
    return forward_views<decltype(qs), decltype(ks), decltype(vs), decltype(os), decltype(ls)>{qs, ks, vs, os, ls, sh};
}

}  // namespace llm::attention::detail
