// SPDX-License-Identifier: Apache-2.0
// What every GEMM backend shares about its operands (llm::strided_view<T, 2>): shape checks, sub-blocks, the overlap test.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) && defined(__F16C__)
#include <immintrin.h>
#endif

namespace llm::blas {

/// The element types the own backend reads (const or not): fp32, bf16, and f16 (IEEE half,
/// a GGUF file's f16 weights), each widened exactly to fp32 while packing; arithmetic is fp32.
/// Example: `static_assert(llm::blas::own_operand<const llm::f16>);`
template <class T>
concept own_operand = float_or_bf16<T> || std::same_as<std::remove_const_t<T>, f16>;

// What backends see of a matrix is llm::strided_view<T, 2> (<llm/tensor/kernel_view.hpp>):
// element (i, j) at data()[i * stride(0) + j * stride(1)], any layout, a transpose being
// transposed<0, 1>(). One descriptor type per element type keeps the number of kernel
// instantiations (and compile time) independent of the tensor's layout type.

namespace detail {

/// Reads any input element as fp32 (exact for bf16 and f16).
template <class T>
[[nodiscard]] LLM_FORCE_INLINE float to_float(T x) {
    return static_cast<float>(x);
}
/// f16 through F16C's conversion where the target has it (llm::f16's portable decoder takes
/// tens of cycles, and the edges of a packed f16 panel are widened element by element).
[[nodiscard]] LLM_FORCE_INLINE float to_float(f16 x) {
#if defined(__x86_64__) && defined(__F16C__)
    return _cvtsh_ss(x.bits());
#else
    return static_cast<float>(x);
#endif
}

/// The rows x cols block of `m` whose element (0, 0) is m(i0, j0), strides kept; unchecked.
template <class T>
[[nodiscard]] LLM_FORCE_INLINE strided_view<T, 2> block(const strided_view<T, 2>& m, std::size_t i0, std::size_t j0,
                                                        std::size_t rows, std::size_t cols) {
    return {m.ptr(i0, j0), dims<2>(rows, cols), m.strides()};
}

/// Shape checks shared by every backend: C (m x n) = A (m x k) * B (k x n).
template <class TA, class TB>
void check_shapes(const char* fn, const strided_view<TA, 2>& a, const strided_view<TB, 2>& b,
                  const strided_view<float, 2>& c) {
    llm::check(a.extent(1) == b.extent(0), fn, ": A is ", a.extent(0), " x ", a.extent(1), " but B is ", b.extent(0), " x ",
               b.extent(1), "; A columns must equal B rows");
    llm::check(c.extent(0) == a.extent(0) && c.extent(1) == b.extent(1), fn, ": C is ", c.extent(0), " x ", c.extent(1),
               " but A * B is ", a.extent(0), " x ", b.extent(1));
}

/// True when C's unit stride is its row stride (column-major C): a backend that stores along
/// C's rows computes C^T = B^T A^T instead.
[[nodiscard]] inline bool column_major(const strided_view<float, 2>& c) noexcept {
    return c.stride(1) != 1 && c.stride(0) == 1;
}

/// Calls run(c^T, b^T, a^T) when `transpose` (C^T = B^T A^T, the same product), else
/// run(c, a, b): how every backend orients its problem.
template <class TA, class TB, class F>
LLM_FORCE_INLINE void oriented(bool transpose, const strided_view<float, 2>& c, const strided_view<TA, 2>& a,
                               const strided_view<TB, 2>& b, F&& run) {
    if (transpose) {
        run(c.transposed<0, 1>(), b.template transposed<0, 1>(), a.template transposed<0, 1>());
    } else {
        run(c, a, b);
    }
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
matrix_bytes bytes_of(const strided_view<T, 2>& m) {
    const std::size_t rows = m.extent(0), cols = m.extent(1), rs = m.stride(0), cs = m.stride(1);
    const bool by_rows = rows == 1 || (cols != 1 && cs <= rs);
    const std::size_t count = by_rows ? rows : cols;
    const std::size_t len = by_rows ? cols : rows;
    const std::size_t inner = (by_rows ? cs : rs) * sizeof(T);
    const std::size_t outer = (by_rows ? rs : cs) * sizeof(T);
    return {{reinterpret_cast<std::uintptr_t>(m.data()), count, outer, (len - 1) * inner + sizeof(T)}, len, inner, sizeof(T)};
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

/// True when two matrices share a byte (empty ones share none); exact, see bytes_meet.
template <class TX, class TY>
[[nodiscard]] bool overlaps(const strided_view<TX, 2>& x, const strided_view<TY, 2>& y) {
    if (x.empty() || y.empty()) {
        return false;
    }
    const matrix_bytes bx = bytes_of(x), by = bytes_of(y);
    return bx.lines.count <= by.lines.count ? bytes_meet(bx, by) : bytes_meet(by, bx);
}

/// Checks that C shares no memory with an operand (`name`: "A" or "B"): the product would
/// read elements it has already overwritten. Exact: views of one buffer are accepted whenever
/// no element of C is an element of the operand (top and bottom halves, left and right
/// halves, different columns).
template <class TX>
void check_no_overlap(const char* fn, const char* name, const strided_view<TX, 2>& x, const strided_view<float, 2>& c) {
    llm::check(!overlaps(c, x), fn, ": C (", c.extent(0), " x ", c.extent(1), ", strides ", c.stride(0), ", ", c.stride(1),
               ") overlaps ", name, " (", x.extent(0), " x ", x.extent(1), ", strides ", x.stride(0), ", ", x.stride(1),
               "); C must not share memory with A or B");
}

}  // namespace detail
}  // namespace llm::blas
