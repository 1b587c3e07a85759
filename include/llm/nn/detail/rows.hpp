// SPDX-License-Identifier: Apache-2.0
// Row views (llm::row_view) and their checks, fp32/bf16 vector load/store and the row-parallel loop shared by the NN kernels.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/nn/concepts.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/simd/simd.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm::nn {
namespace detail {

template <class V>
using elem_t = llm::view_element_t<std::remove_reference_t<V>>;

/// `v` (any view of rank R) as the llm::row_view<T, R> the kernels take: the last dimension
/// must be contiguous, which llm::to_kernel_view checks, naming fn and arg in the llm::error.
/// Rank 1: a contiguous vector (a parameter, a per-row statistic, token ids).
template <class V, std::size_t R = std::remove_cvref_t<V>::rank()>
    requires llm::view_of_rank<V, R>
[[nodiscard]] row_view<elem_t<V>, R> rows_of(const char* fn, const char* arg, V&& v) {
    return llm::to_kernel_view<dims<R>, unit_last_stride<R>>(fn, arg, v);
}

template <class A, class B>
void check_same_shape(const char* fn, const char* a_name, const row_view<A, 2>& a, const char* b_name,
                      const row_view<B, 2>& b) {
    llm::check(a.extent(0) == b.extent(0) && a.extent(1) == b.extent(1), fn, ": ", b_name, " is ", b.extent(0), " x ",
               b.extent(1), " but ", a_name, " is ", a.extent(0), " x ", a.extent(1));
}

inline void check_nonempty(const char* fn, const char* name, std::size_t rows, std::size_t cols) {
    llm::check(rows > 0 && cols > 0, fn, ": ", name, " is ", rows, " x ", cols, "; both dimensions must be > 0");
}

template <class X>
void check_same_shapes(const char*, const char*, const row_view<X, 2>&) {}
template <class X, class O, class... Rest>
void check_same_shapes(const char* fn, const char* x_name, const row_view<X, 2>& x, const char* o_name,
                       const row_view<O, 2>& o, const Rest&... rest) {
    check_same_shape(fn, x_name, x, o_name, o);
    check_same_shapes(fn, x_name, x, rest...);
}

/// The checks of a row-wise kernel: `x` is non-empty and every further operand, given as
/// (name, row_view) pairs, has its shape.
template <class X, class... Rest>
void check_rows(const char* fn, const char* x_name, const row_view<X, 2>& x, const Rest&... rest) {
    check_nonempty(fn, x_name, x.extent(0), x.extent(1));
    check_same_shapes(fn, x_name, x, rest...);
}

/// A per-row fp32 statistic (rstd, mean, lse): contiguous, one element per row of `of`.
template <class V>
[[nodiscard]] auto per_row(const char* fn, const char* arg, V&& v, std::size_t rows, const char* of) {
    const auto r = rows_of(fn, arg, v);
    llm::check(r.extent(0) == rows, fn, ": ", arg, " has ", r.extent(0), " elements but ", of, " has ", rows, " rows");
    return r;
}

/// Loads n <= W elements (fp32 or bf16) as fp32 lanes; lanes past n are 0.
template <simd::backend S, class T>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 load(const T* p, std::size_t n) {
    if constexpr (std::is_same_v<std::remove_const_t<T>, float>) {
        return n == S::width ? S::loadu(p) : S::load_partial(p, n);
    } else {
        return n == S::width ? S::load_bf16(p) : S::load_bf16_partial(p, n);
    }
}

/// Stores the first n <= W lanes of v (rounded to nearest even for bf16).
template <simd::backend S, class T>
LLM_FORCE_INLINE void store(T* p, typename S::f32 v, std::size_t n) {
    if constexpr (std::is_same_v<T, float>) {
        if (n == S::width) {
            S::storeu(p, v);
        } else {
            S::store_partial(p, v, n);
        }
    } else {
        if (n == S::width) {
            S::store_bf16(p, v);
        } else {
            S::store_bf16_partial(p, v, n);
        }
    }
}

/// p[0, n) += v (the first n <= W lanes): a gradient's accumulation, one fp32 add and, for
/// bf16, one rounding of the sum. A second identical call gives exactly twice the first
/// result r: it rounds r + q where r is q rounded, and |q - r| <= ulp(r) / 2 is less than
/// half an ulp of 2r, so the sum rounds to 2r (exact in fp32, and in bf16).
template <simd::backend S, class T>
LLM_FORCE_INLINE void accumulate(T* p, typename S::f32 v, std::size_t n) {
    store<S>(p, S::add(load<S>(p, n), v), n);
}

/// v with lanes >= n replaced by `fill` (so a partial tail cannot pollute a max or a sum).
template <simd::backend S>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 keep_first(typename S::f32 v, std::size_t n, float fill) {
    static_assert(S::width <= 64, "keep_first: lane index table holds 64 lanes");
    alignas(64) static constexpr float lane_index[64] = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
        22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
        44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    if (n == S::width) {
        return v;
    }
    return S::select_lt(S::loadu(lane_index), S::set1(static_cast<float>(n)), v, S::set1(fill));
}

/// Calls f(offset, count) over [0, n) in steps of W; only the last count may be < W.
template <simd::backend S, class F>
LLM_FORCE_INLINE void for_vectors(std::size_t n, F&& f) {
    std::size_t i = 0;
    for (; i + S::width <= n; i += S::width) {
        f(i, S::width);
    }
    if (i < n) {
        f(i, n - i);
    }
}

/// Rows per parallel chunk: about 16K elements, so a chunk amortises the scheduling cost
/// (~1 us) over ~10 us of memory-bound work. It depends on the shape only, never on the
/// thread count, so per-chunk partial sums (weight gradients) are combined identically
/// whatever the executor: results are bitwise reproducible across thread counts.
[[nodiscard]] inline std::size_t row_grain(std::size_t cols) {
    return std::max<std::size_t>(1, (std::size_t{1} << 14) / std::max<std::size_t>(cols, 1));
}

/// Runs f(row_begin, row_end) over [0, rows) in chunks of row_grain(cols) rows.
template <class Exec, class F>
void for_rows(Exec&& exec, std::size_t rows, std::size_t cols, F&& f) {
    parallel::parallel_for(exec, rows, row_grain(cols), std::forward<F>(f));
}

/// Views an optional rank-1 parameter (weight or bias): an empty view (extent 0) means absent;
/// otherwise its length must be `cols`.
template <class V>
[[nodiscard]] auto as_param(const char* fn, const char* arg, V&& v, std::size_t cols) {
    const auto p = rows_of(fn, arg, v);
    llm::check(p.extent(0) == 0 || p.extent(0) == cols, fn, ": ", arg, " has ", p.extent(0), " elements but rows have ",
               cols, " (0 means none)");
    return p;
}

/// Loads n <= W lanes of an optional parameter from element i, or `absent` in every lane.
template <simd::backend S, class T>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 load_param(const row_view<T, 1>& p, std::size_t i, std::size_t n,
                                                          float absent) {
    return p.empty() ? S::set1(absent) : load<S>(p.ptr(i), n);
}

/// Chunking of a row loop that also reduces over rows into per-column partial sums (weight
/// gradients): at most 64 chunks so the partials stay small (64 x cols floats), a count that
/// depends on the shape only (deterministic combination order).
[[nodiscard]] inline std::size_t reduce_grain(std::size_t rows, std::size_t cols) {
    return std::max(row_grain(cols), (rows + 63) / 64);
}

/// dst[j] += sum over chunks c (in order) of partials[c * cols + j], for a fp32 gradient.
inline void add_partials(float* dst, const float* partials, std::size_t chunks, std::size_t cols) {
    for (std::size_t j = 0; j < cols; ++j) {
        float s = 0.0f;
        for (std::size_t c = 0; c < chunks; ++c) {
            s += partials[c * cols + j];
        }
        dst[j] += s;
    }
}

}  // namespace detail
}  // namespace llm::nn
