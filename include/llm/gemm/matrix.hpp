// SPDX-License-Identifier: Apache-2.0
// The strided matrix descriptor every GEMM backend works on, and the concept that turns tensor views into it.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace llm::blas {

/// Element types a GEMM operand may hold: fp32, or bf16 (read as fp32, accumulated in fp32).
template <class T>
concept input_element = std::same_as<std::remove_const_t<T>, float> || std::same_as<std::remove_const_t<T>, llm::bf16>;

/// A rank-2 view with element strides: llm::tensor_view and llm::tensor of any layout
/// (layout_right, layout_left, layout_strided: a transpose is only a stride swap), or any type
/// with the same members. Example: `static_assert(llm::blas::matrix<llm::tensor_view<const float, llm::dims<2>>>);`
template <class M>
concept matrix = requires(M& m) {
    { m.data() };
    { m.extent(0) } -> std::convertible_to<std::size_t>;
    { m.stride(0) } -> std::convertible_to<std::size_t>;
    requires std::remove_cvref_t<M>::rank() == 2;
} && std::is_pointer_v<decltype(std::declval<M&>().data())>;

/// The element type a matrix-like type holds, const kept (an owning tensor passed as const
/// yields const elements; a view keeps its own element type).
template <matrix M>
using element_t = std::remove_pointer_t<decltype(std::declval<M&>().data())>;

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

/// Views any rank-2 tensor (or tensor view) as a matrix_ref.
/// Example: `auto a = llm::blas::as_matrix(tensor.view());`
template <class M>
    requires matrix<std::remove_reference_t<M>>
[[nodiscard]] matrix_ref<element_t<std::remove_reference_t<M>>> as_matrix(M&& m) {
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

}  // namespace detail
}  // namespace llm::blas
