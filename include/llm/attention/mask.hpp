// SPDX-License-Identifier: Apache-2.0
// Attention mask policies (none, causal, sliding window, varlen packed batches) and the concept they satisfy.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace llm::attention {

/// A half-open index range [lo, hi) of rows or columns of one sequence's score matrix;
/// empty when hi <= lo.
struct index_range {
    std::int64_t lo;  ///< first index in the range
    std::int64_t hi;  ///< one past the last index
    /// True when the range holds no index.
    LLM_HD constexpr bool empty() const noexcept { return hi <= lo; }
};

/// A window bound meaning "no limit" (FlashAttention's -1). Large enough for any sequence,
/// small enough that adding two of them to an index cannot overflow std::int64_t.
inline constexpr std::int64_t unbounded = std::int64_t{1} << 60;

/// A mask policy decides which key columns j each query row i of one sequence may see, in
/// that sequence's own coordinates (i in [0, lq), j in [0, lk)). Members, all LLM_HD
/// constexpr so the CPU kernel, the CUDA kernel and the reference share them:
/// - `allowed(i, j, lq, lk)`: true when row i sees column j;
/// - `cols(i0, i1, lq, lk)`: an index_range within [0, lk) holding every column some row of
///   [i0, i1) sees (kernels never visit key tiles outside it: fully masked tiles are skipped);
/// - `rows(j0, j1, lq, lk)`: the same for the rows that see some column of [j0, j1) (backward);
/// - `full(i0, i1, j0, j1, lq, lk)`: true only when every pair of the tile is allowed (then
///   kernels skip the per-element test).
/// Models: no_mask, causal, sliding_window, and any user type with these members (the concept
/// is structural: a mask written outside llm:: needs no registration; see docs/attention.md).
/// varlen<M> wraps any of them for packed batches.
/// M: the candidate policy type.
/// Example: `static_assert(llm::attention::mask_policy<llm::attention::causal>);`
template <class M>
concept mask_policy = requires(const M& m, std::int64_t i, std::int64_t n) {
    { m.allowed(i, i, n, n) } -> std::same_as<bool>;
    { m.cols(i, i, n, n) } -> std::same_as<index_range>;
    { m.rows(i, i, n, n) } -> std::same_as<index_range>;
    { m.full(i, i, i, i, n, n) } -> std::same_as<bool>;
};

namespace detail {

LLM_HD constexpr std::int64_t imax(std::int64_t a, std::int64_t b) noexcept { return a > b ? a : b; }
LLM_HD constexpr std::int64_t imin(std::int64_t a, std::int64_t b) noexcept { return a < b ? a : b; }

/// The band every built-in mask is: row i sees column j when
/// -left <= j - i - (lk - lq) <= right. The (lk - lq) shift aligns the band to the bottom-right
/// corner (FlashAttention >= 2.1): the last query row is the newest token and sees the last key.
struct band {
    std::int64_t left;   // columns before the diagonal that stay visible (>= 0, or unbounded)
    std::int64_t right;  // columns after it (>= 0, or unbounded)

    LLM_HD constexpr bool allowed(std::int64_t i, std::int64_t j, std::int64_t lq, std::int64_t lk) const noexcept {
        const std::int64_t d = j - i - (lk - lq);
        return d >= -left && d <= right;
    }
    LLM_HD constexpr index_range cols(std::int64_t i0, std::int64_t i1, std::int64_t lq, std::int64_t lk) const noexcept {
        const std::int64_t off = lk - lq;
        return {imax(0, i0 + off - left), imin(lk, i1 + off + right)};
    }
    LLM_HD constexpr index_range rows(std::int64_t j0, std::int64_t j1, std::int64_t lq, std::int64_t lk) const noexcept {
        const std::int64_t off = lk - lq;
        return {imax(0, j0 - off - right), imin(lq, j1 - off + left)};
    }
    LLM_HD constexpr bool full(std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1, std::int64_t lq,
                               std::int64_t lk) const noexcept {
        const std::int64_t off = lk - lq;
        return j0 - (i1 - 1) - off >= -left && (j1 - 1) - i0 - off <= right;
    }
};

}  // namespace detail

/// No mask: every query row sees every key.
/// Example: `llm::attention::flash_forward<llm::attention::default_tiles, llm::attention::no_mask>(o, lse, q, k, v);`
struct no_mask : detail::band {
    /// The band with both sides unbounded.
    LLM_HD constexpr no_mask() noexcept : band{unbounded, unbounded} {}
};

/// Causal mask, bottom-right aligned (FlashAttention >= 2.1): row i sees column j when
/// j <= i + (lk - lq). With lq == lk this is the usual lower triangle; with lq < lk (new tokens
/// after a prefix) every row also sees the whole prefix; with lq > lk the first lq - lk rows
/// see nothing (their output is 0 and their log-sum-exp -inf).
/// Example: `llm::attention::flash_forward(o, lse, q, k, v, llm::attention::causal{});`
struct causal : detail::band {
    /// The band with left unbounded and right 0.
    LLM_HD constexpr causal() noexcept : band{unbounded, 0} {}
};

/// Sliding-window (local) attention, bottom-right aligned like causal: row i sees column j
/// when i + off - left <= j <= i + off + right, off = lk - lq (FlashAttention's window_size =
/// (left, right)). sliding_window(w, 0) is causal attention over the last w + 1 keys (Mistral).
/// Use llm::attention::unbounded for a side without limit; negative sizes throw llm::error.
/// Example: `llm::attention::sliding_window win(4096, 0);`
struct sliding_window : detail::band {
    /// left, right: visible columns before / after the diagonal, each >= 0 (or unbounded).
    constexpr sliding_window(std::int64_t left_size, std::int64_t right_size) : band{left_size, right_size} {
        llm::check(left_size >= 0 && right_size >= 0, "sliding_window: window (left = ", left_size,
                   ", right = ", right_size, ") must not be negative; use llm::attention::unbounded for no limit");
        left = left_size > unbounded ? unbounded : left_size;
        right = right_size > unbounded ? unbounded : right_size;
    }
};

static_assert(mask_policy<no_mask> && mask_policy<causal> && mask_policy<sliding_window>);

/// Variable-length packed batch (FlashAttention's varlen API): the tensors hold batch 1 and
/// the sequences one after another along the token axis; sequence s owns query tokens
/// [cu_q[s], cu_q[s+1]) and key tokens [cu_k[s], cu_k[s+1]). No token attends across
/// sequences; inside each, `inner` (any mask_policy: no_mask, causal, sliding_window or the
/// user's own) applies in the
/// sequence's own coordinates. The offsets are borrowed: they must outlive the call.
/// Checked by every entry point: same count (>= 2) for q and k, cu[0] == 0, non-decreasing
/// (empty sequences allowed), last entry == the token count of the tensors.
/// Inner: the mask policy inside each sequence.
/// Example: `std::int32_t cu[] = {0, 5, 12}; llm::attention::varlen<llm::attention::causal> m{cu, cu};`
template <mask_policy Inner = no_mask>
struct varlen {
    std::span<const std::int32_t> cu_q;  ///< query offsets, one more than sequences
    std::span<const std::int32_t> cu_k;  ///< key offsets, one more than sequences
    Inner inner{};                       ///< mask within each sequence
};

/// A packed-batch mask: members cu_q and cu_k (offsets, convertible to
/// std::span<const std::int32_t>) and `inner`, a mask_policy applied inside each sequence (see
/// varlen). Structural like mask_policy: varlen<M> is one model, a user's own type another.
/// M: the candidate mask type.
/// Example: `static_assert(llm::attention::varlen_mask<llm::attention::varlen<llm::attention::causal>>);`
template <class M>
concept varlen_mask = requires(const M& m) {
    { m.cu_q } -> std::convertible_to<std::span<const std::int32_t>>;
    { m.cu_k } -> std::convertible_to<std::span<const std::int32_t>>;
    requires mask_policy<std::remove_cvref_t<decltype(m.inner)>>;
};

/// What the prefill entry points (flash_forward, flash_backward, the reference) take as a mask:
/// a mask_policy over every batch entry, or a varlen_mask for packed sequences.
/// M: the candidate mask type.
/// Example: `static_assert(llm::attention::attention_mask<llm::attention::varlen<>>);`
template <class M>
concept attention_mask = mask_policy<M> || varlen_mask<M>;

static_assert(varlen_mask<varlen<causal>> && attention_mask<varlen<>> && attention_mask<no_mask>);

}  // namespace llm::attention
