// SPDX-License-Identifier: Apache-2.0
// Rotary embedding parameters: pair layout policies, frequency scaling policies and the inverse frequencies they give.
#pragma once

#include <llm/core/error.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <numbers>
#include <vector>

namespace llm::nn {

/// Pair layouts. rotate_half (Llama, Hugging Face): dimension i pairs with i + d/2.
/// interleaved (GPT-J, GPT-NeoX "rotary_interleaved", Meta's original Llama): 2i with 2i+1.
struct rope_rotate_half {};
struct rope_interleaved {};
template <class P>
concept rope_style = std::same_as<P, rope_rotate_half> || std::same_as<P, rope_interleaved>;

/// Frequency scaling policies: each maps an unscaled inverse frequency to the one used.
namespace rope_scaling {

/// No scaling: inv_freq_i = theta^(-2i/d).
struct none {
    /// Returns inv_freq unchanged.
    [[nodiscard]] double apply(double inv_freq) const { return inv_freq; }
};

/// Linear (position interpolation, Chen et al. 2023): positions divided by `factor`.
struct linear {
    double factor = 1.0;  ///< Interpolation factor (> 0).
    /// Returns inv_freq / factor.
    [[nodiscard]] double apply(double inv_freq) const { return inv_freq / factor; }
};

/// Llama 3.1 frequency scaling (as in Hugging Face `_compute_llama3_parameters`): long
/// wavelengths are divided by `factor`, short ones kept, the band between interpolated.
struct llama3 {
    double factor = 8.0;                    ///< Divisor for long wavelengths.
    double low_freq_factor = 1.0;           ///< Wavelengths above original_max_position / low_freq_factor are divided by factor.
    double high_freq_factor = 4.0;          ///< Wavelengths below original_max_position / high_freq_factor are kept.
    double original_max_position = 8192.0;  ///< Context length the model was trained with.
    /// The scaled inverse frequency (kept, divided by factor, or interpolated between the two).
    [[nodiscard]] double apply(double inv_freq) const {
        const double wavelen = 2.0 * std::numbers::pi / inv_freq;
        const double low_freq_wavelen = original_max_position / low_freq_factor;
        const double high_freq_wavelen = original_max_position / high_freq_factor;
        if (wavelen < high_freq_wavelen) {
            return inv_freq;
        }
        if (wavelen > low_freq_wavelen) {
            return inv_freq / factor;
        }
        const double smooth = (original_max_position / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
        return (1.0 - smooth) * inv_freq / factor + smooth * inv_freq;
    }
};

}  // namespace rope_scaling

template <class P>
concept rope_scaling_policy = requires(const P& p, double f) {
    { p.apply(f) } -> std::convertible_to<double>;
};

/// RoPE parameters: base theta and a scaling policy.
/// Scaling: rope_scaling::none, rope_scaling::linear or rope_scaling::llama3 (or any type with apply(double)).
/// Example: `llm::nn::rope_params<llm::nn::rope_scaling::llama3> p{.theta = 500000.0, .scaling = {.factor = 8.0}};`
template <rope_scaling_policy Scaling = rope_scaling::none>
struct rope_params {
    double theta = 10000.0;  ///< Base of the frequencies theta^(-2i/d).
    Scaling scaling{};       ///< Frequency scaling policy applied to each inverse frequency.
};

/// The head_dim / 2 inverse frequencies theta^(-2i/d), scaled, in double (the shared maths
/// of the reference and the fast kernel: both rotate by exactly the same angles' source).
template <class Scaling>
[[nodiscard]] std::vector<double> rope_inverse_frequencies(const char* fn, std::size_t head_dim, const rope_params<Scaling>& p) {
    llm::check(head_dim > 0 && head_dim % 2 == 0, fn, ": head_dim = ", head_dim, " must be even and > 0");
    llm::check(p.theta > 1.0, fn, ": theta = ", p.theta, " must be > 1");
    std::vector<double> inv(head_dim / 2);
    for (std::size_t i = 0; i < inv.size(); ++i) {
        inv[i] = p.scaling.apply(std::pow(p.theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim)));
        llm::check(std::isfinite(inv[i]) && inv[i] > 0.0, fn, ": scaling gives inverse frequency ", inv[i], " for pair ", i);
    }
    return inv;
}

}  // namespace llm::nn
