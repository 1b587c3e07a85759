// SPDX-License-Identifier: Apache-2.0
// Row descriptors, fp32/bf16 vector load/store and the row-parallel loop shared by the NN kernels.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/nn/concepts.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/simd/simd.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm::nn {
namespace detail {

template <class V>
using elem_t = llm::view_element_t<std::remove_reference_t<V>>;

/// `rows` rows of `cols` contiguous elements, row i at data + i * ld.
template <class T>
struct rows_ref {
    T* data;
    std::size_t rows;
    std::size_t cols;
    std::size_t ld;
    [[nodiscard]] T* row(std::size_t i) const { return data + i * ld; }
};

/// Views a rank-2 [rows, cols] view as rows_ref; the last dimension must be contiguous.
template <class V>
    requires llm::view_of_rank<V, 2>
[[nodiscard]] rows_ref<elem_t<V>> as_rows(const char* fn, const char* arg, V&& v) {
    const std::size_t rows = v.extent(0), cols = v.extent(1);
    llm::check(cols <= 1 || v.stride(1) == 1, fn, ": ", arg, " must have a contiguous last dimension (stride(1) = ",
               v.stride(1), ")");
    return {v.data(), rows, cols, rows <= 1 ? cols : static_cast<std::size_t>(v.stride(0))};
}

/// Views a rank-1 view as (pointer, size); it must be contiguous.
template <class V>
    requires llm::view_of_rank<V, 1>
[[nodiscard]] std::pair<elem_t<V>*, std::size_t> as_vector(const char* fn, const char* arg, V&& v) {
    const std::size_t n = v.extent(0);
    llm::check(n <= 1 || v.stride(0) == 1, fn, ": ", arg, " must be contiguous (stride(0) = ", v.stride(0), ")");
    return {v.data(), n};
}

template <class A, class B>
void check_same_shape(const char* fn, const char* a_name, const rows_ref<A>& a, const char* b_name, const rows_ref<B>& b) {
    llm::check(a.rows == b.rows && a.cols == b.cols, fn, ": ", b_name, " is ", b.rows, " x ", b.cols, " but ", a_name, " is ",
               a.rows, " x ", a.cols);
}

inline void check_nonempty(const char* fn, const char* name, std::size_t rows, std::size_t cols) {
    llm::check(rows > 0 && cols > 0, fn, ": ", name, " is ", rows, " x ", cols, "; both dimensions must be > 0");
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

/// An optional per-column parameter (weight or bias): null data means "absent".
template <class T>
struct param_ref {
    T* data = nullptr;
    [[nodiscard]] explicit operator bool() const { return data != nullptr; }
};

/// Views an optional rank-1 parameter: an empty view (extent 0) means absent; otherwise its
/// length must be `cols`.
template <class V>
[[nodiscard]] auto as_param(const char* fn, const char* arg, V&& v, std::size_t cols) {
    const auto pn = as_vector(fn, arg, v);
    using T = std::remove_pointer_t<decltype(pn.first)>;
    llm::check(pn.second == 0 || pn.second == cols, fn, ": ", arg, " has ", pn.second, " elements but rows have ", cols,
               " (0 means none)");
    return param_ref<T>{pn.second == 0 ? nullptr : pn.first};
}

/// Loads n <= W lanes of an optional parameter, or `absent` in every lane.
template <simd::backend S, class T>
[[nodiscard]] LLM_FORCE_INLINE typename S::f32 load_param(param_ref<T> p, std::size_t i, std::size_t n, float absent) {
    return p ? load<S>(p.data + i, n) : S::set1(absent);
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
