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

/// Views a rank-1 integer index vector and checks every index is in [0, bound).
template <class V>
[[nodiscard]] auto as_indices(const char* fn, const char* arg, V&& v, std::size_t bound) {
    const auto pn = as_vector(fn, arg, v);
    for (std::size_t i = 0; i < pn.second; ++i) {
        const auto id = pn.first[i];
        llm::check(std::cmp_greater_equal(id, 0) && std::cmp_less(id, bound), fn, ": ", arg, "[", i, "] = ", +id,
                   " is out of range [0, ", bound, ")");
    }
    return pn;
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
    const auto tab = detail::as_rows(fn, "table", table);
    const auto o = detail::as_rows(fn, "out", out);
    detail::check_nonempty(fn, "table", tab.rows, tab.cols);
    const auto idv = detail::as_indices(fn, "ids", ids, tab.rows);
    llm::check(o.rows == idv.second && o.cols == tab.cols, fn, ": out is ", o.rows, " x ", o.cols, " but ids has ",
               idv.second, " tokens of dim ", tab.cols);
    detail::for_rows(exec, o.rows, o.cols, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            const auto* src = tab.row(static_cast<std::size_t>(idv.first[r]));
            auto* dst = o.row(r);
            detail::for_vectors<S>(o.cols, [&](std::size_t i, std::size_t c) {
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
    const auto dt = detail::as_rows(fn, "dtable", dtable);
    const auto d = detail::as_rows(fn, "dout", dout);
    detail::check_nonempty(fn, "dtable", dt.rows, dt.cols);
    const auto idv = detail::as_indices(fn, "ids", ids, dt.rows);
    llm::check(d.rows == idv.second && d.cols == dt.cols, fn, ": dout is ", d.rows, " x ", d.cols, " but ids has ",
               idv.second, " tokens of dim ", dt.cols);
    // Column blocks of 64 floats (one cache line per 16 lanes x 4) per chunk at least.
    const std::size_t grain = std::max<std::size_t>(64, (dt.cols + 2 * exec.size() - 1) / (2 * exec.size()) / 16 * 16);
    parallel::parallel_for(exec, dt.cols, grain, [&](std::size_t c0, std::size_t c1) {
        for (std::size_t r = 0; r < d.rows; ++r) {
            float* dst = dt.row(static_cast<std::size_t>(idv.first[r])) + c0;
            const auto* src = d.row(r) + c0;
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
