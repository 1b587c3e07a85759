// SPDX-License-Identifier: Apache-2.0
// Lane-wise helpers over a lanes policy (serial, emulated_warp<N>, cuda_warp): build, access and read back per-lane values.
#pragma once

#include <llm/config.hpp>
#include <llm/simd/lanes.hpp>

#include <cstddef>
#include <type_traits>

namespace llm::attention::detail {

// Code written against a lanes policy L describes what each lane of a group does. On the
// GPU (cuda_warp) values<T> is T and "each lane" is the calling thread; on the CPU
// (emulated_warp<N>) values<T> is std::array<T, N> and one thread runs every lane in turn.
// These helpers hide that difference so the tile maths is written once.

/// True when L holds one value per thread (serial, cuda_warp), false for emulated lanes.
template <class L>
inline constexpr bool scalar_lanes = std::is_same_v<typename L::template values<float>, float>;

/// The calling thread's lane index: L::lane() when the policy has one (cuda_warp), else 0.
template <class L>
LLM_HD constexpr std::size_t own_lane() noexcept {
    if constexpr (requires { L::lane(); }) {
        return L::lane();
    } else {
        return 0;
    }
}

/// Lane `ln`'s element of v (v itself for scalar lanes, where ln is the calling lane).
template <class L, class V>
LLM_HD constexpr auto& lane_ref(V& v, std::size_t ln) noexcept {
    if constexpr (scalar_lanes<L>) {
        (void)ln;
        return v;
    } else {
        return v[ln];
    }
}

/// Runs f(ln) for every lane ln of the group: once, for the calling lane, under scalar lanes;
/// for ln = 0, 1, ..., N-1 in turn under emulated lanes. F: callable as f(std::size_t lane).
template <class L, class F>
LLM_HD void for_lanes(F&& f) {
    if constexpr (scalar_lanes<L>) {
        f(own_lane<L>());
    } else {
        for (std::size_t ln = 0; ln < L::size; ++ln) {
            f(ln);
        }
    }
}

/// values<float> whose lane ln holds f(ln) (see for_lanes). F: callable as f(std::size_t lane) -> float.
template <class L, class F>
LLM_HD typename L::template values<float> lane_map(F&& f) {
    typename L::template values<float> v{};
    for_lanes<L>([&](std::size_t ln) { lane_ref<L>(v, ln) = f(ln); });
    return v;
}

/// Lane 0's value of an all-reduced v (after reduce_sum / reduce_max every lane holds it).
template <class L>
LLM_HD constexpr float uniform(const typename L::template values<float>& v) noexcept {
    if constexpr (scalar_lanes<L>) {
        return v;
    } else {
        return v[0];
    }
}

}  // namespace llm::attention::detail
