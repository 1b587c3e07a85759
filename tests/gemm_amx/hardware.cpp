// SPDX-License-Identifier: Apache-2.0
// The AMX bf16 GEMM path on the hardware tiles. Without AMX (or without the kernel's permission for the
// tile data) the program exits with code 77 before any test runs, and ctest (SKIP_RETURN_CODE 77)
// reports it skipped, never passed. Where it runs: the tiles against the emulated tiles bit for bit on
// integer-valued inputs (every sum exact, so any order agrees), and llm::gemm's default backend, which
// selects the path, against the double reference within the bound derived in tests/gemm/bf16_dot.cpp.
#include "../gemm/amx_backend.hpp"
#include "../gemm/bf16_check.hpp"
#include "../gemm/helpers.hpp"

#include <llm/gemm/amx.hpp>
#include <llm/gemm/gemm.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/tensor.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

using namespace gemm_test;

namespace {

/// The exit code ctest's SKIP_RETURN_CODE maps to "skipped" (the Automake convention).
constexpr int exit_skipped = 77;

// Runs before doctest's main: with no AMX there is nothing this program can check.
const bool amx_present = [] {
    if (!llm::blas::cpu_has_amx_bf16()) {
        std::printf("test_gemm_amx: skipped: this CPU (or its OS) has no AMX-TILE / AMX-BF16\n");
        std::exit(exit_skipped);
    }
    if (!llm::blas::detail::amx_request_permission()) {
        std::printf("test_gemm_amx: skipped: the kernel did not grant the tile data (arch_prctl ARCH_REQ_XCOMP_PERM)\n");
        std::exit(exit_skipped);
    }
    return true;
}();

using S = llm::simd::default_backend;
using hardware_tiny = amx_backend<llm::blas::detail::amx_hardware, amx_tiny>;
using emulated_tiny = amx_backend<llm::blas::detail::amx_emulated, amx_tiny>;
using hardware_full = amx_backend<llm::blas::detail::amx_hardware, amx_full>;
using emulated_full = amx_backend<llm::blas::detail::amx_emulated, amx_full>;
using own_auto = llm::blas::own<>;

// Integer-valued bf16 operands in [-4, 4]: every product and partial sum of a few thousand is exact in fp32.
void fill_integers(llm::tensor<llm::bf16, llm::dims<2>>& t, std::mt19937& rng) {
    std::uniform_int_distribution<int> dist(-4, 4);
    for (std::size_t i = 0; i < t.extent(0); ++i) {
        for (std::size_t j = 0; j < t.extent(1); ++j) {
            t(i, j) = llm::bf16(static_cast<float>(dist(rng)));
        }
    }
}

// The elements where C = A W^T + beta C differs between the two tile policies.
template <class Hw, class Em>
std::size_t differing(std::size_t m, std::size_t k, std::size_t n, float beta, std::mt19937& rng) {
    llm::tensor<llm::bf16, llm::dims<2>> a(m, k), w(n, k);
    fill_integers(a, rng);
    fill_integers(w, rng);
    llm::tensor<float, llm::dims<2>> hw(m, n), em(m, n);
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            hw(i, j) = em(i, j) = static_cast<float>(static_cast<int>((i + 3 * j) % 7) - 3);
        }
    }
    llm::parallel::thread_pool pool(2);
    llm::gemm<Hw>(hw, a, llm::transpose(w, 0, 1), 1.0f, beta, pool);
    llm::gemm<Em>(em, a, llm::transpose(w, 0, 1), 1.0f, beta, pool);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            bad += std::memcmp(&hw(i, j), &em(i, j), sizeof(float)) != 0;
        }
    }
    return bad;
}

}  // namespace

TEST_CASE("AMX hardware: available (permission granted, the first tile product equals the emulated one)") {
    CHECK(amx_present);
    CHECK(llm::blas::amx_bf16_available());
    CHECK(llm::blas::bf16_amx_selected<llm::bf16, llm::bf16>(llm::blas::bf16_path::automatic, S::width));
}

TEST_CASE("AMX hardware tiles equal the emulated tiles bit for bit on integer-valued operands") {
    std::mt19937 rng(3);
    for (const size3 s : {size3{1, 1, 1}, size3{31, 33, 45}, size3{32, 32, 32}, size3{65, 97, 33},
                          size3{70, 301, 129}, size3{129, 1030, 97}}) {
        for (const float beta : {0.0f, 1.0f}) {
            INFO("m=", s.m, " k=", s.k, " n=", s.n, " beta=", beta);
            CHECK(differing<hardware_tiny, emulated_tiny>(s.m, s.k, s.n, beta, rng) == 0);
            CHECK(differing<hardware_full, emulated_full>(s.m, s.k, s.n, beta, rng) == 0);
        }
    }
}

TEST_CASE("AMX hardware: llm::gemm's default backend matches the double reference on awkward sizes") {
    std::mt19937 rng(77);
    llm::parallel::sequential seq;
    llm::parallel::thread_pool pool(2);
    std::size_t cases = 0;
    for (const auto& s : awkward) {
        for (const float beta : {0.0f, 1.0f, 0.5f}) {
            const auto la = all_layouts[rng() % 4];
            const auto lb = all_layouts[rng() % 4];
            const float alpha = cases % 2 == 0 ? 1.0f : -0.75f;
            if (cases % 2 == 0) {
                check_case<own_auto, llm::bf16, llm::bf16>(s.m, s.k, s.n, la, lb, layout_kind::row, alpha, beta,
                                                           2 * llm::blas::blocking_amx::kc, seq, rng);
            } else {
                check_case<own_auto, llm::bf16, llm::bf16>(s.m, s.k, s.n, la, lb, layout_kind::padded_row, alpha, beta,
                                                           2 * llm::blas::blocking_amx::kc, pool, rng);
            }
            ++cases;
        }
    }
    // fp32 x bf16 with dot_round_fp32 (a Linear layer's fp32 activations, bf16 weights): A rounded.
    using own_round = llm::blas::own<S, llm::blas::default_blocking_t<S::width>, llm::blas::bf16_path::dot_round_fp32>;
    CHECK(llm::blas::bf16_amx_selected<float, llm::bf16>(llm::blas::bf16_path::dot_round_fp32, S::width));
    check_case<own_round, float, llm::bf16>(67, 1000, 129, layout_kind::row, layout_kind::col, layout_kind::row, 1.0f,
                                            0.0f, 2 * llm::blas::blocking_amx::kc, pool, rng, true);
}
