// SPDX-License-Identifier: Apache-2.0
// llm::ssm argument types: the `none` placeholder for optional tensors, the concepts of the scan's arguments, options.
#pragma once

#include <llm/tensor/concepts.hpp>

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm::ssm {

/// The placeholder for an optional tensor argument that is absent (no z gating, no D skip,
/// no last-state output): pass `llm::ssm::none`.
/// Example: `llm::ssm::selective_scan(y, llm::ssm::none, u, delta, B, C, llm::ssm::none, A, D, llm::ssm::none);`
struct none_t {};

/// The value of none_t to pass where an optional tensor is absent.
inline constexpr none_t none{};

/// True when V is llm::ssm::none_t (an absent optional tensor).
/// Example: `static_assert(llm::ssm::is_none<const llm::ssm::none_t&>);`
template <class V>
inline constexpr bool is_none = std::same_as<std::remove_cvref_t<V>, none_t>;

/// An optional input of rank R: llm::ssm::none or an llm::dense_view<R> (fp32 or bf16).
/// Example: `void f(llm::ssm::optional_input<3> auto&& z);`
template <class V, std::size_t R>
concept optional_input = is_none<V> || dense_view<V, R>;

/// An optional output of rank R: llm::ssm::none or a writable fp32 view of rank R (states and
/// gradients are fp32).
/// Example: `void f(llm::ssm::optional_output<3> auto&& last_state);`
template <class V, std::size_t R>
concept optional_output =
    is_none<V> || (view_of_rank<V, R> && std::same_as<view_element_t<V>, float>);

/// B or C of the selective scan: a (D, N) matrix shared by every batch and position, or an
/// input-dependent (batch, groups, N, L) tensor (Mamba's selective B and C).
/// Example: `static_assert(llm::ssm::scan_bc<llm::tensor<float, llm::dims<4>>&>);`
template <class V>
concept scan_bc = dense_view<V, 2> || dense_view<V, 4>;

/// A gradient of B or C: llm::ssm::none, or a writable fp32 view of rank 2 or 4 (B's shape).
/// Example: `static_assert(llm::ssm::scan_bc_grad<llm::ssm::none_t>);`
template <class V>
concept scan_bc_grad = is_none<V> || ((view_of_rank<V, 2> || view_of_rank<V, 4>) &&
                                      std::same_as<view_element_t<V>, float>);

/// Options of the selective scan (mamba-ssm's `delta_softplus`).
/// Example: `llm::ssm::scan_options opt{.delta_softplus = true};`
struct scan_options {
    /// delta <- softplus(delta + delta_bias) before the scan (PyTorch's F.softplus: x above 20 stays x).
    bool delta_softplus = false;
};

/// Options of the causal depthwise conv1d.
/// Example: `llm::ssm::conv_options opt{.silu = true};`
struct conv_options {
    /// Apply SiLU to the convolution's output (Mamba's `activation="silu"`).
    bool silu = false;
};

/// Options of the Mamba-2 SSD scan.
/// Example: `llm::ssm::ssd_options opt{.chunk = 64};`
struct ssd_options {
    /// Chunk length of the chunked algorithm (mamba-ssm's `block_len` / `chunk_size`); 0 (the
    /// default) picks it from this CPU's L2 size (the longest of 256, 128, 64, 32 whose chunk
    /// working set fits in half of it; 64 on a Zen 2 core's 512 KiB at N 128, P 64).
    std::size_t chunk = 0;
};

}  // namespace llm::ssm
