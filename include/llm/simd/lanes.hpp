// SPDX-License-Identifier: Apache-2.0
// The lanes policies (serial, emulated_warp<N>, and cuda_warp under nvcc): cross-lane steps of tile maths, in __shfl_xor_sync's butterfly order.
#pragma once

#include <llm/config.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <type_traits>

namespace llm::simd {

namespace detail {
/// The combining operations of reduce_sum and reduce_max, as named host+device function
/// objects (lambdas in host+device code and in requires-expressions trip nvcc).
struct lanes_plus {
    template <class T>
    LLM_HD constexpr T operator()(const T& a, const T& b) const noexcept {
        return a + b;
    }
};
struct lanes_max {
    template <class T>
    LLM_HD constexpr T operator()(const T& a, const T& b) const noexcept {
        return b > a ? b : a;
    }
};
}  // namespace detail

// A lanes policy says how the lanes of one cooperating group (a CUDA warp, or one CPU
// thread playing all of them, or a single lane) hold their values and combine them.
// Tile maths is written once against it: `typename L::template values<float>` is what ONE
// piece of code holds for all lanes of the group, and `L::combine_xor` / `L::reduce_*`
// are the cross-lane steps. On the GPU (cuda_warp, below, nvcc only)
// values<T> is T, held per thread, and the steps are __shfl_xor_sync; on the CPU
// emulated_warp<N> holds all N lanes in a std::array and performs the very same butterfly,
// so float results are bit-identical to the GPU's wherever each lane's own arithmetic is.

/// One lane: values<T> is T and every cross-lane step is the identity.
/// Example: `float s = llm::simd::serial::reduce_sum(x);  // x`
struct serial {
    static constexpr std::size_t size = 1;  ///< Lanes in the group.
    /// What one piece of code holds for all lanes: a single T.
    template <class T>
    using values = T;

    /// The xor shuffle: lane i receives lane (i ^ offset)'s value; with one lane, itself.
    template <class T>
    LLM_HD static constexpr T shfl_xor(const T& v, std::size_t /*offset*/) noexcept {
        return v;
    }
    /// Butterfly all-reduce with `op` (no steps for one lane).
    template <class T, class Op>
    LLM_HD static constexpr T combine_xor(const T& v, Op&& /*op*/) noexcept {
        return v;
    }
    /// Sum over the lanes (with one lane: v).
    template <class T>
    LLM_HD static constexpr T reduce_sum(const T& v) noexcept {
        return v;
    }
    /// Maximum over the lanes (with one lane: v).
    template <class T>
    LLM_HD static constexpr T reduce_max(const T& v) noexcept {
        return v;
    }
};

/// N lanes emulated on one thread: values<T> is std::array<T, N>, element i being lane i.
/// Cross-lane steps happen in exactly the order a warp performs them with
/// __shfl_xor_sync(0xffffffff, v, offset, N): offsets N/2, N/4, ..., 1, and at each step
/// lane i computes op(own value, value of lane i ^ offset) from the values before the step.
/// N: lanes in the group, a power of two; 32 is a full CUDA warp, smaller N a sub-warp
/// group (the `width` argument of __shfl_xor_sync).
/// Example: `std::array<float, 32> v{...}; auto s = llm::simd::emulated_warp<32>::reduce_sum(v);  // every lane: the sum`
template <std::size_t N>
struct emulated_warp {
    static_assert(N >= 1 && (N & (N - 1)) == 0, "emulated_warp<N>: N must be a power of two (a warp or sub-warp size)");
    static constexpr std::size_t size = N;  ///< Lanes in the group.
    /// What one piece of code holds for all lanes: element i is lane i's value.
    template <class T>
    using values = std::array<T, N>;

    /// Lane i receives lane (i ^ offset)'s value (offset < N), like __shfl_xor_sync.
    template <class T>
    LLM_HD static constexpr values<T> shfl_xor(const values<T>& v, std::size_t offset) noexcept {
        values<T> out{};
        for (std::size_t i = 0; i < N; ++i) {
            out[i] = v[i ^ offset];
        }
        return out;
    }

    /// Butterfly all-reduce: for offset = N/2, ..., 1: v[i] = op(v[i], v[i ^ offset]).
    /// Afterwards every lane holds the combination of all N values; for a commutative op
    /// (float + and max are) all lanes hold the same bits.
    /// Op: callable as op(T, T) -> T, host+device when used from device code.
    template <class T, class Op>
    LLM_HD static constexpr values<T> combine_xor(values<T> v, Op&& op) {
        for (std::size_t offset = N / 2; offset >= 1; offset /= 2) {
            const values<T> other = shfl_xor(v, offset);
            for (std::size_t i = 0; i < N; ++i) {
                v[i] = op(v[i], other[i]);
            }
        }
        return v;
    }

    /// combine_xor with +: every lane holds the sum, added in the butterfly's order.
    template <class T>
    LLM_HD static constexpr values<T> reduce_sum(const values<T>& v) noexcept {
        return combine_xor(v, detail::lanes_plus{});
    }
    /// combine_xor with max (`b > a ? b : a`, as fmaxf would for non-NaN values).
    template <class T>
    LLM_HD static constexpr values<T> reduce_max(const values<T>& v) noexcept {
        return combine_xor(v, detail::lanes_max{});
    }
};

/// A lanes policy (see the top of <llm/simd/lanes.hpp>): `size` lanes per group,
/// `values<T>` held by one piece of code for all of them, and the cross-lane steps
/// shfl_xor, combine_xor, reduce_sum and reduce_max on values<float>.
/// L: the candidate policy type.
/// Example: `static_assert(llm::simd::lanes_policy<llm::simd::emulated_warp<32>>);`
template <class L>
concept lanes_policy =
    std::convertible_to<decltype(L::size), std::size_t> &&
    requires { typename L::template values<float>; } &&
    requires(const typename L::template values<float>& v) {
        { L::shfl_xor(v, std::size_t{1}) } -> std::same_as<typename L::template values<float>>;
        { L::combine_xor(v, detail::lanes_plus{}) } -> std::same_as<typename L::template values<float>>;
        { L::reduce_sum(v) } -> std::same_as<typename L::template values<float>>;
        { L::reduce_max(v) } -> std::same_as<typename L::template values<float>>;
    };

static_assert(lanes_policy<serial>);
static_assert(lanes_policy<emulated_warp<32>>);

#if LLM_CUDA_COMPILE

/// A full CUDA warp as a lanes policy: values<T> is T held by each thread; combine_xor is the
/// butterfly over offsets 16, 8, 4, 2, 1 with __shfl_xor_sync, the order emulated_warp<32>
/// reproduces on the CPU, so tile maths tested there reduces in the same order here. Device
/// code only (the cross-lane members are __device__); defined only when nvcc compiles the
/// translation unit (LLM_CUDA_COMPILE).
/// Example: `float s = llm::simd::cuda_warp::reduce_sum(x);  // in a kernel: the warp's sum, in every lane`
struct cuda_warp {
    static constexpr std::size_t size = 32;  ///< Lanes in the group: one warp.
    /// What one thread holds: its own lane's T.
    template <class T>
    using values = T;

    /// This thread's lane, threadIdx.x % 32 (blocks are laid out with x as the fast index).
    __device__ static std::size_t lane() noexcept { return threadIdx.x & 31u; }

    /// Lane i receives lane (i ^ offset)'s value: __shfl_xor_sync over the full warp.
    template <class T>
    __device__ static T shfl_xor(const T& v, std::size_t offset) noexcept {
        return __shfl_xor_sync(0xffffffffu, v, static_cast<int>(offset), 32);
    }
    /// Butterfly all-reduce: for offset = 16, ..., 1: v = op(v, shfl_xor(v, offset)).
    template <class T, class Op>
    __device__ static T combine_xor(T v, Op&& op) {
        for (std::size_t offset = size / 2; offset >= 1; offset /= 2) {
            v = op(v, shfl_xor(v, offset));
        }
        return v;
    }
    /// combine_xor with +: every lane holds the sum, added in the butterfly's order.
    template <class T>
    __device__ static T reduce_sum(const T& v) noexcept {
        return combine_xor(v, detail::lanes_plus{});
    }
    /// combine_xor with max (`b > a ? b : a`).
    template <class T>
    __device__ static T reduce_max(const T& v) noexcept {
        return combine_xor(v, detail::lanes_max{});
    }
};

#endif  // LLM_CUDA_COMPILE

// Lane-wise helpers over a lanes policy. Code written against a lanes policy L describes what
// each lane of a group does. On the GPU (cuda_warp) values<T> is T and "each lane" is the
// calling thread; on the CPU (emulated_warp<N>) values<T> is std::array<T, N> and one thread
// runs every lane in turn. These helpers hide that difference so tile maths is written once
// (attention, moe and ssm tiles use them).

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
/// Example: `llm::simd::for_lanes<L>([&](std::size_t ln) { llm::simd::lane_ref<L>(acc, ln) = 0.0f; });`
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
/// Example: `auto x = llm::simd::lane_map<L>([&](std::size_t ln) { return row[ln]; });`
template <class L, class F>
LLM_HD typename L::template values<float> lane_map(F&& f) {
    typename L::template values<float> v{};
    for_lanes<L>([&](std::size_t ln) { lane_ref<L>(v, ln) = f(ln); });
    return v;
}

/// Lane 0's value of an all-reduced v: after reduce_sum / reduce_max every lane holds it.
/// Example: `float total = llm::simd::lane_uniform<L>(L::reduce_sum(partial));`
template <class L>
LLM_HD constexpr float lane_uniform(const typename L::template values<float>& v) noexcept {
    if constexpr (scalar_lanes<L>) {
        return v;
    } else {
        return v[0];
    }
}

}  // namespace llm::simd
