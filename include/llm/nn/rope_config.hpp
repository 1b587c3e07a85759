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

/// A RoPE pair layout, an open policy: which two elements of a head the i-th frequency
/// rotates. Any type with static `first(i, half)` and `second(i, half)` (i in [0, half),
/// half = head_dim / 2) giving the two offsets within the head: the pair (a, b) becomes
/// (a cos - b sin, b cos + a sin). Together the pairs must visit every offset of the head
/// exactly once (the kernels check this, once per call). A layout written outside llm::
/// works like the built-in ones: the kernels call these members and nothing else; where a
/// layout's pairs are (i, i + half) they use whole SIMD vectors.
/// Built-in models: rope_rotate_half, rope_interleaved.
/// Example: `static_assert(llm::nn::rope_style<llm::nn::rope_interleaved>);`
template <class P>
concept rope_style = requires(std::size_t i, std::size_t half) {
    { P::first(i, half) } -> std::convertible_to<std::size_t>;
    { P::second(i, half) } -> std::convertible_to<std::size_t>;
};

/// Rotate-half layout (Llama, Hugging Face): dimension i pairs with i + head_dim / 2.
struct rope_rotate_half {
    /// The pair's first offset: i.
    [[nodiscard]] static constexpr std::size_t first(std::size_t i, std::size_t /*half*/) { return i; }
    /// The pair's second offset: i + half.
    [[nodiscard]] static constexpr std::size_t second(std::size_t i, std::size_t half) { return i + half; }
};

/// Interleaved layout (GPT-J, GPT-NeoX "rotary_interleaved", Meta's original Llama): 2i pairs with 2i + 1.
struct rope_interleaved {
    /// The pair's first offset: 2i.
    [[nodiscard]] static constexpr std::size_t first(std::size_t i, std::size_t /*half*/) { return 2 * i; }
    /// The pair's second offset: 2i + 1.
    [[nodiscard]] static constexpr std::size_t second(std::size_t i, std::size_t /*half*/) { return 2 * i + 1; }
};

static_assert(rope_style<rope_rotate_half> && rope_style<rope_interleaved>);

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

/// A frequency scaling policy, an open concept: any type with `apply(double inv_freq)`
/// returning the inverse frequency used. Models: rope_scaling::none, linear, llama3.
/// Example: `static_assert(llm::nn::rope_scaling_policy<llm::nn::rope_scaling::llama3>);`
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
/// Example: `auto inv = llm::nn::rope_inverse_frequencies("mine", 128, llm::nn::rope_params<>{.theta = 5e5});`
template <rope_scaling_policy Scaling>
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
