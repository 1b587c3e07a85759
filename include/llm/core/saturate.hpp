// SPDX-License-Identifier: Apache-2.0
// llm::saturate: the tag that selects saturating (satfinite) conversions to narrow element types.
#pragma once

namespace llm {

/// Tag selecting saturating conversion (OCP FP8 "satfinite", PTX `cvt.satfinite`): a value
/// beyond the largest finite magnitude, and +-Inf, become +-max instead of Inf (or NaN for
/// fp8_e4m3, which has no Inf). NaN stays NaN. Quantisers use it after scaling.
/// Example: `llm::fp8_e4m3 q(1000.0f, llm::saturate);  // 448`
struct saturate_t {
    explicit saturate_t() = default;
};
/// The saturate_t value to pass to conversions.
inline constexpr saturate_t saturate{};

}  // namespace llm
