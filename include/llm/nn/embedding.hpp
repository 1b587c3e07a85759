// SPDX-License-Identifier: Apache-2.0
// Embedding lookup and its deterministic scatter-add backward, threaded.
#pragma once

#include <llm/nn/detail/rows.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace llm::nn {
namespace detail {

/// The checks both directions share: `table` [vocab, dim] non-empty, `ids` [n] each in
/// [0, vocab), `rows` [n, dim] (the looked-up rows or their gradient). Returns the ids.
template <class TT, class TR, class V>
[[nodiscard]] auto embedding_ids(const char* fn, const char* table_name, const row_view<TT, 2>& table,
                                 const char* rows_name, const row_view<TR, 2>& rows, V&& ids) {
    const std::size_t vocab = table.extent(0), dim = table.extent(1);
    check_nonempty(fn, table_name, vocab, dim);
    const auto idv = rows_of(fn, "ids", ids);
    for (std::size_t i = 0; i < idv.extent(0); ++i) {
        const auto id = idv(i);
        llm::check(std::cmp_greater_equal(id, 0) && std::cmp_less(id, vocab), fn, ": ids[", i, "] = ", +id,
                   " is out of range [0, ", vocab, ")");
    }
    llm::check(rows.extent(0) == idv.extent(0) && rows.extent(1) == dim, fn, ": ", rows_name, " is ", rows.extent(0), " x ",
               rows.extent(1), " but ids has ", idv.extent(0), " tokens of dim ", dim);
    return idv;
}

}  // namespace detail

/// out[i, :] = table[ids[i], :].
/// Shapes: out [n, dim] (rows contiguous), ids [n] (any integer type, each in [0, vocab)),
/// table [vocab, dim]. Elements: table and out fp32 or bf16.
/// S: SIMD backend. exec: an llm::parallel::policy (sequential{} or a thread_pool; tokens are split).
/// Example: `llm::nn::embedding_forward(h, tokens, wte, pool);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> O, index_view I, dense_view<2> T>
void embedding_forward(O&& out, I&& ids, T&& table, parallel::policy auto&& exec) {
    constexpr const char* fn = "embedding_forward";
    const auto tab = detail::rows_of(fn, "table", table);
    const auto o = detail::rows_of(fn, "out", out);
    const auto idv = detail::embedding_ids(fn, "table", tab, "out", o, ids);
    const std::size_t dim = tab.extent(1);
    detail::for_rows(exec, o.extent(0), dim, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* src = tab.ptr(static_cast<std::size_t>(idv(r)), 0);
            auto* dst = o.ptr(r, 0);
            detail::for_vectors<S>(dim, [&](std::size_t i, std::size_t c) {
                detail::store<S>(dst + i, detail::load<S>(src + i, c), c);
            });
        }
    });
}

/// embedding_forward on llm::parallel::default_pool(). Example: `llm::nn::embedding_forward(h, tokens, wte);`
template <simd::backend S = simd::default_backend, mutable_dense_view<2> O, index_view I, dense_view<2> T>
void embedding_forward(O&& out, I&& ids, T&& table) {
    embedding_forward<S>(out, ids, table, parallel::default_pool());
}

/// dtable[ids[i], :] += dout[i, :] (scatter-add, accumulated like every backward).
/// Deterministic: each thread owns a range of columns and adds the tokens in order, so
/// repeated ids sum in the same order whatever the thread count, with no atomics.
/// Shapes: dtable [vocab, dim] fp32, dout [n, dim], ids [n].
/// Example: `llm::nn::embedding_backward(d_wte, dh, tokens, pool);`
template <simd::backend S = simd::default_backend, mutable_f32_view<2> DT, dense_view<2> DO, index_view I>
void embedding_backward(DT&& dtable, DO&& dout, I&& ids, parallel::policy auto&& exec) {
    constexpr const char* fn = "embedding_backward";
    const auto dt = detail::rows_of(fn, "dtable", dtable);
    const auto d = detail::rows_of(fn, "dout", dout);
    const auto idv = detail::embedding_ids(fn, "dtable", dt, "dout", d, ids);
    const std::size_t dim = dt.extent(1);
    // Column blocks of 64 floats (one cache line per 16 lanes x 4) per chunk at least.
    const std::size_t grain = std::max<std::size_t>(64, (dim + 2 * exec.size() - 1) / (2 * exec.size()) / 16 * 16);
    parallel::parallel_for(exec, dim, grain, [&](std::size_t c0, std::size_t c1) {
        for (std::size_t r = 0; r < d.extent(0); ++r) {
            float* dst = dt.ptr(static_cast<std::size_t>(idv(r)), c0);
            const auto* src = d.ptr(r, c0);
            detail::for_vectors<S>(c1 - c0, [&](std::size_t i, std::size_t c) {
                detail::accumulate<S>(dst + i, detail::load<S>(src + i, c), c);
            });
        }
    });
}

/// embedding_backward on llm::parallel::default_pool().
/// Example: `llm::zero_grad(d_wte); llm::nn::embedding_backward(d_wte, dh, tokens);`
template <simd::backend S = simd::default_backend, mutable_f32_view<2> DT, dense_view<2> DO, index_view I>
void embedding_backward(DT&& dtable, DO&& dout, I&& ids) {
    embedding_backward<S>(dtable, dout, ids, parallel::default_pool());
}

}  // namespace llm::nn
