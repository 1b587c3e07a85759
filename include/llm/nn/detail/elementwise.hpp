// SPDX-License-Identifier: Apache-2.0
// The element-wise loop over equal-shaped row views shared by activations and the residual add.
#pragma once

#include <llm/nn/detail/rows.hpp>

#include <cstddef>

namespace llm::nn::detail {

/// out = f(a [, b]) element-wise over equal-shaped [rows, cols] views, rows split over threads.
template <simd::backend S, class Exec, class F, class Out, class... In>
void elementwise(const char* fn, Exec& exec, F f, const rows_ref<Out>& out, const rows_ref<In>&... in) {
    check_nonempty(fn, "input", out.rows, out.cols);
    (check_same_shape(fn, "output", out, "an input", in), ...);
    for_rows(exec, out.rows, out.cols, [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
            Out* o = out.row(r);
            for_vectors<S>(out.cols, [&](std::size_t i, std::size_t c) { store<S>(o + i, f(load<S>(in.row(r) + i, c)...), c); });
        }
    });
}

}  // namespace llm::nn::detail
