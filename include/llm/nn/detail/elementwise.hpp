// SPDX-License-Identifier: Apache-2.0
// The element-wise loop over equal-shaped row views shared by activations and the residual add.
#pragma once

#include <llm/nn/detail/rows.hpp>

#include <cstddef>

namespace llm::nn::detail {

/// out = f(a [, b]) element-wise over equal-shaped [rows, cols] views, rows split over threads.
template <simd::backend S, class Exec, class F, class Out, class... In>
void elementwise(const char* fn, Exec& exec, F f, const row_view<Out, 2>& out, const row_view<In, 2>&... in) {
    check_nonempty(fn, "input", out.extent(0), out.extent(1));
    (check_same_shape(fn, "output", out, "an input", in), ...);
    for_rows(exec, out.extent(0), out.extent(1), [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            Out* o = out.ptr(r, 0);
            for_vectors<S>(out.extent(1),
                           [&](std::size_t i, std::size_t c) { store<S>(o + i, f(load<S>(in.ptr(r, 0) + i, c)...), c); });
        }
    });
}

}  // namespace llm::nn::detail
