// SPDX-License-Identifier: Apache-2.0
// The Eigen backend copies bf16 and fully strided operands to dense fp32: a broadcast operand
// (stride 0) claiming absurd extents is llm::error naming the copy, never a wrapped size.
// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen's
// packing code is inlined (GCC PR 105593); the pragma must precede every include to apply.
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning (and -Werror rejects an unknown one)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <llm/gemm/eigen.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <vector>

#if LLM_HAS_EIGEN
TEST_CASE("gemm eigen backend: a broadcast bf16 operand too large to copy is llm::error") {
    using strided2 = llm::layout_strided::mapping<llm::dims<2>>;
    using bview = llm::tensor_view<const llm::bf16, llm::dims<2>, llm::layout_strided>;
    llm::parallel::sequential seq;
    const llm::bf16 one(1.0f);
    const std::size_t m = std::size_t{1} << 20;
    std::vector<float> c(m);
    const llm::tensor_view<float, llm::dims<2>> cv(c.data(), m, 1);
    // A is m x 2^44: m * k = 2^64 wraps to 0, which would copy into an empty buffer.
    const std::size_t k_wrap = std::size_t{1} << 44;
    CHECK_THROWS_WITH_AS(llm::gemm<llm::blas::eigen>(cv, bview(&one, strided2(llm::dims<2>(m, k_wrap), {0, 0})),
                                                     bview(&one, strided2(llm::dims<2>(k_wrap, 1), {0, 0})), 1.0f, 0.0f,
                                                     seq),
                         "gemm: the dense fp32 copy of an operand (rows * cols) = 1048576 * 17592186044416 overflows "
                         "std::size_t",
                         llm::error);
    // A is m x 2^28: 2^48 floats, representable but beyond the allocation limit.
    const std::size_t k_big = std::size_t{1} << 28;
    CHECK_THROWS_WITH_AS(llm::gemm<llm::blas::eigen>(cv, bview(&one, strided2(llm::dims<2>(m, k_big), {0, 0})),
                                                     bview(&one, strided2(llm::dims<2>(k_big, 1), {0, 0})), 1.0f, 0.0f,
                                                     seq),
                         doctest::Contains("more than the allocation limit"), llm::error);
    // A small broadcast product still works: every element is k * 1 * 1.
    llm::gemm<llm::blas::eigen>(cv, bview(&one, strided2(llm::dims<2>(m, 3), {0, 0})),
                                bview(&one, strided2(llm::dims<2>(3, 1), {0, 0})), 1.0f, 0.0f, seq);
    CHECK(c[0] == 3.0f);
    CHECK(c[m - 1] == 3.0f);
}
#endif
