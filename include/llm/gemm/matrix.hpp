// SPDX-License-Identifier: Apache-2.0
// The strided matrix descriptor every GEMM backend works on, and the conversion of a rank-2 view into it.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace llm::blas {

/// A matrix of `rows x cols` elements at `data[i * rs + j * cs]`. This is what backends see:
/// templates on it stay independent of the tensor's layout type, which keeps the number of
/// kernel instantiations (and compile time) to one per element type.
template <class T>
struct matrix_ref {
    T* data;           ///< Address of element (0, 0).
    std::size_t rows;  ///< Number of rows.
    std::size_t cols;  ///< Number of columns.
    std::size_t rs;    ///< Row stride in elements (distance from (i, j) to (i + 1, j)).
    std::size_t cs;    ///< Column stride in elements (distance from (i, j) to (i, j + 1)).

    /// Element (i, j), i.e. data[i * rs + j * cs]; no bounds check.
    [[nodiscard]] T& operator()(std::size_t i, std::size_t j) const { return data[i * rs + j * cs]; }
    /// The same memory seen as the transpose: no copy.
    [[nodiscard]] matrix_ref t() const { return {data, cols, rows, cs, rs}; }
};

/// Views any rank-2 tensor or tensor view (llm::view_of_rank<2>) as a matrix_ref.
/// Example: `auto a = llm::blas::as_matrix(tensor.view());`
template <view_of_rank<2> M>
[[nodiscard]] matrix_ref<view_element_t<M>> as_matrix(M&& m) {
    return {m.data(), static_cast<std::size_t>(m.extent(0)), static_cast<std::size_t>(m.extent(1)),
            static_cast<std::size_t>(m.stride(0)), static_cast<std::size_t>(m.stride(1))};
}

namespace detail {

/// Reads any input element as fp32 (exact for bf16).
template <class T>
[[nodiscard]] LLM_FORCE_INLINE float to_float(T x) {
    return static_cast<float>(x);
}

/// Shape checks shared by every backend: C (m x n) = A (m x k) * B (k x n).
template <class TA, class TB>
void check_shapes(const char* fn, const matrix_ref<TA>& a, const matrix_ref<TB>& b, const matrix_ref<float>& c) {
    llm::check(a.cols == b.rows, fn, ": A is ", a.rows, " x ", a.cols, " but B is ", b.rows, " x ", b.cols,
               "; A columns must equal B rows");
    llm::check(c.rows == a.rows && c.cols == b.cols, fn, ": C is ", c.rows, " x ", c.cols, " but A * B is ", a.rows,
               " x ", b.cols);
}

/// `count` byte intervals of `span` bytes, the i-th starting at first + i * step (step >= 0):
/// the rows (or columns) of a matrix, or the elements of one row.
struct progression {
    std::uintptr_t first;  ///< first byte of member 0
    std::size_t count;     ///< number of members (> 0)
    std::size_t step;      ///< bytes between the starts of consecutive members
    std::size_t span;      ///< bytes in each member

    std::uintptr_t start(std::size_t i) const noexcept { return first + i * step; }
    std::uintptr_t end() const noexcept { return start(count - 1) + span; }  ///< one past the last byte

    /// The members [lo_index, hi_index] that share a byte with [lo, hi); empty when lo_index > hi_index.
    std::pair<std::size_t, std::size_t> meeting(std::uintptr_t lo, std::uintptr_t hi) const noexcept {
        // Member j meets [lo, hi) iff start(j) < hi and start(j) + span > lo.
        if (first >= hi) {
            return {1, 0};
        }
        if (step == 0) {
            return first + span > lo ? std::pair<std::size_t, std::size_t>{0, count - 1} : std::pair<std::size_t, std::size_t>{1, 0};
        }
        const std::size_t j_hi = std::min<std::size_t>(count - 1, (hi - 1 - first) / step);
        const std::size_t j_lo = first + span > lo ? 0 : (lo - (first + span)) / step + 1;
        return {j_lo, j_hi};
    }
};

/// A non-empty matrix as lines (the dimension with the larger stride enumerates them: rows of a
/// row-major matrix, columns of a transposed one) and each line as elements. Dense lines (unit
/// inner stride) cover exactly their byte interval.
struct matrix_bytes {
    progression lines;    ///< each member: a line's bytes from its first element to the end of its last
    std::size_t len;      ///< elements per line
    std::size_t inner;    ///< bytes between consecutive elements of a line
    std::size_t element;  ///< bytes per element

    bool dense() const noexcept { return len == 1 || inner == element; }
    progression elements(std::size_t line) const noexcept { return {lines.start(line), len, inner, element}; }
};

template <class T>
matrix_bytes bytes_of(const matrix_ref<T>& m) {
    const bool by_rows = m.rows == 1 || (m.cols != 1 && m.cs <= m.rs);
    const std::size_t count = by_rows ? m.rows : m.cols;
    const std::size_t len = by_rows ? m.cols : m.rows;
    const std::size_t inner = (by_rows ? m.cs : m.rs) * sizeof(T);
    const std::size_t outer = (by_rows ? m.rs : m.cs) * sizeof(T);
    return {{reinterpret_cast<std::uintptr_t>(m.data), count, outer, (len - 1) * inner + sizeof(T)}, len, inner, sizeof(T)};
}

/// True when the two matrices share a byte. O(1) when their address ranges are disjoint (the
/// usual case); otherwise each line of x is matched against the index range of y's lines that
/// can meet it, and two lines that are not both dense are compared element by element.
inline bool bytes_meet(const matrix_bytes& x, const matrix_bytes& y) {
    if (x.lines.end() <= y.lines.first || y.lines.end() <= x.lines.first) {
        return false;
    }
    for (std::size_t l = 0; l < x.lines.count; ++l) {
        const auto [j0, j1] = y.lines.meeting(x.lines.start(l), x.lines.start(l) + x.lines.span);
        for (std::size_t j = j0; j0 <= j1 && j <= j1; ++j) {
            if (x.dense() && y.dense()) {
                return true;
            }
            progression a = x.elements(l), b = y.elements(j);
            if (a.count > b.count) {
                std::swap(a, b);
            }
            for (std::size_t i = 0; i < a.count; ++i) {
                const auto [e0, e1] = b.meeting(a.start(i), a.start(i) + a.span);
                if (e0 <= e1) {
                    return true;
                }
            }
        }
    }
    return false;
}

/// Checks that C shares no memory with an operand (`name`: "A" or "B"): the product would
/// read elements it has already overwritten. Exact: views of one buffer are accepted whenever
/// no element of C is an element of the operand (top and bottom halves, left and right
/// halves, different columns).
template <class TX>
void check_no_overlap(const char* fn, const char* name, const matrix_ref<TX>& x, const matrix_ref<float>& c) {
    if (x.rows == 0 || x.cols == 0 || c.rows == 0 || c.cols == 0) {
        return;
    }
    const matrix_bytes bc = bytes_of(c), bx = bytes_of(x);
    const bool overlap = bc.lines.count <= bx.lines.count ? bytes_meet(bc, bx) : bytes_meet(bx, bc);
    llm::check(!overlap, fn, ": C (", c.rows, " x ", c.cols, ", strides ", c.rs, ", ", c.cs, ") overlaps ", name, " (",
               x.rows, " x ", x.cols, ", strides ", x.rs, ", ", x.cs, "); C must not share memory with A or B");
}

}  // namespace detail
}  // namespace llm::blas
