// SPDX-License-Identifier: Apache-2.0
// Tests of the Eigen GEMM backend against the reference (its own translation unit: Eigen is slow to compile).
// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen's
// packing code is inlined (GCC PR 105593); the pragma must precede every include to apply.
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning (and -Werror rejects an unknown one)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "helpers.hpp"

#include <llm/gemm/eigen.hpp>

#include <doctest/doctest.h>

using namespace gemm_test;

#if LLM_HAS_EIGEN
TEST_CASE("gemm eigen backend matches the reference") {
    llm::parallel::sequential seq;
    for (const auto& s : awkward) {
        check_against_reference<llm::blas::eigen, float>(s.m, s.k, s.n, seq, 1.0f, 0.0f);
    }
    check_against_reference<llm::blas::eigen, llm::bf16>(7, 63, 65, seq, 1.0f, 2.0f);
}
#endif
