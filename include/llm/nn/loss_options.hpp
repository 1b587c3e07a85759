// SPDX-License-Identifier: Apache-2.0
// Options of the cross-entropy loss: reduction, ignore_index and label smoothing.
#pragma once

#include <cstdint>

namespace llm::nn {

/// How per-token losses combine: mean over the tokens not ignored, or their sum.
enum class reduction { mean, sum };

/// Cross-entropy options, with PyTorch's defaults and meaning.
/// ignore_index: targets equal to it contribute no loss and no gradient (-100 as in PyTorch).
/// label_smoothing: eps in [0, 1]; the target distribution is (1 - eps) one-hot + eps / V.
/// Example: `llm::nn::cross_entropy_options o{.label_smoothing = 0.1f, .red = llm::nn::reduction::sum};`
struct cross_entropy_options {
    std::int64_t ignore_index = -100;  ///< Targets equal to this are skipped (no loss, no gradient).
    float label_smoothing = 0.0f;      ///< Smoothing eps in [0, 1].
    reduction red = reduction::mean;   ///< How per-token losses combine.
};

}  // namespace llm::nn
