// SPDX-License-Identifier: Apache-2.0
// A GEMM backend that runs the AMX path's panels with a chosen tile policy (the hardware tiles or the
// emulated ones) and blocking: what tests/gemm/amx.cpp and tests/gemm_amx check.
#pragma once

#include <llm/gemm/amx.hpp>
#include <llm/gemm/gemm.hpp>

#include <cstddef>

namespace gemm_test {

/// llm::gemm's backend interface over detail::gemm_blocked with amx_panels<Tiles>; Blocking's
/// micro-tile must be 32 x 32 (mr 32, nr_vectors * the backend's width 32).
template <class Tiles, class Blocking>
struct amx_backend {
    using S = llm::simd::default_backend;
    template <class TA, class TB, class Exec>
    static void run(llm::strided_view<float, 2> c, llm::strided_view<TA, 2> a, llm::strided_view<TB, 2> b, float alpha,
                    float beta, llm::workspace& ws, Exec& exec) {
        static_assert(Blocking::mr == 32 && Blocking::nr_vectors * S::width == 32, "the AMX micro-tile is 32 x 32");
        if (c.empty()) {
            return;
        }
        if (a.extent(1) == 0) {
            llm::blas::detail::scale(c, beta);
            return;
        }
        const llm::workspace::frame frame(ws);
        llm::blas::detail::gemm_blocked<S, Blocking, TA, TB, Exec, llm::blas::detail::no_epilogue,
                                        llm::blas::detail::amx_panels<Tiles>>(c, a, b, alpha, beta, ws, exec);
    }
};

/// Tiny blocks for the AMX panels: kc 24 k-pairs (one full tile step and a tail of 8 per block), mc two
/// micro-tiles, nc two panels, so awkward sizes cross every block edge and every tail.
using amx_tiny = llm::blas::fixed_blocking<32, 32 / llm::simd::default_backend::width, 64, 24, 64>;
/// The library's AMX blocking (kc 256 k-pairs), its nr_vectors for the backend's width.
using amx_full = llm::blas::fixed_blocking<32, 32 / llm::simd::default_backend::width, llm::blas::blocking_amx::mc,
                                           llm::blas::blocking_amx::kc, llm::blas::blocking_amx::nc>;

}  // namespace gemm_test
