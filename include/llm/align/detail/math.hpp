// SPDX-License-Identifier: Apache-2.0
// The slope of log(1 - exp(x)), which ORPO's gradient needs beside llm::log1mexp.
#pragma once

#include <llm/config.hpp>

#include <cmath>

namespace llm::align::detail {

/// d/dx log(1 - e^x) = -1 / expm1(-x) for x < 0: finite everywhere below 0 (about -1/|x| near 0,
/// about -e^x far below), with no cancellation since expm1 is exact for small arguments.
template <class T>
LLM_HD inline T log1mexp_slope(T x) {
    return T(-1) / std::expm1(-x);
}

}  // namespace llm::align::detail
