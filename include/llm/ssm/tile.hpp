// SPDX-License-Identifier: Apache-2.0
// The scan maths shared by the CPU and CUDA paths (LLM_HD, no intrinsics): softplus and SiLU, the associative combine of h_t = a_t h_{t-1} + b_t, the chunk-state pass, and a lane-parallel chunk scan over a lanes policy.
#pragma once

#include <llm/config.hpp>
#include <llm/simd/lanes.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>

namespace llm::ssm::tile {

/// softplus as PyTorch's F.softplus (beta 1, threshold 20): x for x > 20, else log1p(exp(x)).
/// T: float or double.
/// Example: `float d = llm::ssm::tile::softplus(0.0f);  // log 2`
template <class T>
LLM_HD inline T softplus(T x) noexcept {
    return x > T(20) ? x : std::log1p(std::exp(x));
}

/// d softplus / dx: sigmoid(x), and 1 above the threshold 20 (where softplus is the identity).
/// Example: `float g = llm::ssm::tile::softplus_grad(0.0f);  // 0.5`
template <class T>
LLM_HD inline T softplus_grad(T x) noexcept {
    return x > T(20) ? T(1) : T(1) / (T(1) + std::exp(-x));
}

/// SiLU x * sigmoid(x) (the z gate of Mamba: y * silu(z)).
/// Example: `float g = llm::ssm::tile::silu(1.0f);  // 0.7311`
template <class T>
LLM_HD inline T silu(T x) noexcept {
    return x / (T(1) + std::exp(-x));
}

/// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
/// Example: `float g = llm::ssm::tile::silu_grad(0.0f);  // 0.5`
template <class T>
LLM_HD inline T silu_grad(T x) noexcept {
    const T s = T(1) / (T(1) + std::exp(-x));
    return s * (T(1) + x * (T(1) - s));
}

/// The affine map h -> a h + b of one step (or of a run of steps) of the linear recurrence
/// h_t = a_t h_{t-1} + b_t. Runs of steps compose associatively (combine), which is what lets
/// a scan over L be split into chunks (CPU threads) or lanes (a CUDA warp).
/// Example: `llm::ssm::tile::affine<float> step{0.9f, 0.1f};`
template <class T>
struct affine {
    T a = T(1);  ///< the decay (the product of the a_t of the run)
    T b = T(0);  ///< the state the run produces from h = 0
};

/// The run `first` followed by the run `second`: h -> a2 (a1 h + b1) + b2 = (a1 a2) h + (a2 b1 + b2).
/// Associative, not commutative; (1, 0) is the identity.
/// Example: `auto ab = llm::ssm::tile::combine(first, second);  // ab.a == first.a * second.a`
template <class T>
LLM_HD constexpr affine<T> combine(const affine<T>& first, const affine<T>& second) noexcept {
    return {first.a * second.a, second.a * first.b + second.b};
}

/// Applies a run to a state: a h + b.
/// Example: `float h1 = llm::ssm::tile::apply(run, h0);`
template <class T>
LLM_HD constexpr T apply(const affine<T>& run, T h) noexcept {
    return run.a * h + run.b;
}

/// The chunk-state pass: chunk k of a sequence was scanned from h = 0 to summary run[k]
/// (its decay product and end state); on return start[k] holds the true state entering chunk
/// k (start[0] = h0) and the result is the state after the last chunk. Sequential over the
/// chunks, O(chunks): the cheap middle phase of a chunked scan.
/// Example: `float h_end = llm::ssm::tile::chunk_state_pass(runs, starts, 4, 0.0f);`
template <class T>
LLM_HD constexpr T chunk_state_pass(const affine<T>* run, T* start, std::size_t chunks, T h0) noexcept {
    T h = h0;
    for (std::size_t k = 0; k < chunks; ++k) {
        start[k] = h;
        h = apply(run[k], h);
    }
    return h;
}


/// Exclusive scan of per-lane runs across the lanes of a group (the hypercube algorithm over
/// L::shfl_xor with offsets 1, 2, ..., N/2): on return lane i's (a, b) is the combine of the
/// runs of lanes 0 .. i-1 (the identity (1, 0) in lane 0) and (ta, tb) in every lane is the
/// combine of all N runs. The combine order is fixed by the lane indices alone, so
/// emulated_warp<32> on the CPU and cuda_warp on the GPU compute the same bits.
/// L: a lanes policy. a, b: each lane's run on input, its exclusive prefix on output.
/// Example: `llm::ssm::tile::lane_exclusive_scan<llm::simd::emulated_warp<32>>(a, b, ta, tb);`
template <class L>
LLM_HD void lane_exclusive_scan(typename L::template values<float>& a, typename L::template values<float>& b,
                                typename L::template values<float>& ta, typename L::template values<float>& tb) {
    ta = a;
    tb = b;
    llm::simd::for_lanes<L>([&](std::size_t ln) {
        llm::simd::lane_ref<L>(a, ln) = 1.0f;
        llm::simd::lane_ref<L>(b, ln) = 0.0f;
    });
    for (std::size_t offset = 1; offset < L::size; offset *= 2) {
        const auto oa = L::shfl_xor(ta, offset);
        const auto ob = L::shfl_xor(tb, offset);
        llm::simd::for_lanes<L>([&](std::size_t ln) {
            const affine<float> other{llm::simd::lane_ref<L>(oa, ln), llm::simd::lane_ref<L>(ob, ln)};
            const affine<float> total{llm::simd::lane_ref<L>(ta, ln), llm::simd::lane_ref<L>(tb, ln)};
            affine<float> t;
            if ((ln ^ offset) < ln) {  // the partner's block comes first
                const affine<float> pre = combine(other, affine<float>{llm::simd::lane_ref<L>(a, ln), llm::simd::lane_ref<L>(b, ln)});
                llm::simd::lane_ref<L>(a, ln) = pre.a;
                llm::simd::lane_ref<L>(b, ln) = pre.b;
                t = combine(other, total);
            } else {
                t = combine(total, other);
            }
            llm::simd::lane_ref<L>(ta, ln) = t.a;
            llm::simd::lane_ref<L>(tb, ln) = t.b;
        });
    }
}

/// What one row (b, d) of the selective scan needs for a chunk of L::size * K positions, lane
/// ln owning positions t0 + ln * K + k (k < K): its processed delta and u, and the scan's
/// output y_t = C_t . h_t before the D skip and z gate (written by warp_scan_chunk).
/// L: lanes policy; K: positions per lane.
/// Example: `llm::ssm::tile::warp_chunk<llm::simd::emulated_warp<32>, 4> c{};`
template <class L, std::size_t K>
struct warp_chunk {
    typename L::template values<float> dt[K];  ///< delta after bias and softplus; 0 past the end
    typename L::template values<float> u[K];   ///< the input; 0 past the end
    typename L::template values<float> y[K];   ///< output: C_t . h_t
};

/// One chunk of one row of the selective scan, computed by the lanes of a group: for each state
/// n, every lane scans its K positions from h = 0 into a run (a, b), lane_exclusive_scan gives
/// each lane its starting state from carry[n] (the state entering the chunk), every lane
/// rescans its positions accumulating y_t += C_t[n] h_t, and carry[n] becomes the state after
/// the chunk. Positions at or past `len` have dt = 0 and u = 0 (the identity run). Discrete
/// maths (zero-order hold as mamba-ssm): a_t = exp(dt_t A[n]), b_t = dt_t u_t B_t[n].
/// B_t[n] is b[n * bsn + t * bst] (bst = 0 for a fixed (D, N) B row), likewise C.
/// carry: N floats, the same in every lane. a_row: A[d, 0 .. N).
/// Example: `llm::ssm::tile::warp_scan_chunk<llm::simd::emulated_warp<32>, 4>(c, carry, a_row, N, b, L, 1, cc, L, 1, t0, L);`
template <class L, std::size_t K>
LLM_HD void warp_scan_chunk(warp_chunk<L, K>& c, float* carry, const float* a_row, std::size_t n_states,
                            const float* b, std::size_t bsn, std::size_t bst, const float* cm, std::size_t csn,
                            std::size_t cst, std::size_t t0, std::size_t len) {
    using V = typename L::template values<float>;
    llm::simd::for_lanes<L>([&](std::size_t ln) {
        for (std::size_t k = 0; k < K; ++k) {
            llm::simd::lane_ref<L>(c.y[k], ln) = 0.0f;
        }
    });
    for (std::size_t n = 0; n < n_states; ++n) {
        const float an = a_row[n];
        V ra{}, rb{}, ta{}, tb{};
        V decay[K];
        llm::simd::for_lanes<L>([&](std::size_t ln) {
            affine<float> run{};
            for (std::size_t k = 0; k < K; ++k) {
                const std::size_t t = t0 + ln * K + k;
                const float dt = llm::simd::lane_ref<L>(c.dt[k], ln);
                const float a = std::exp(dt * an);
                llm::simd::lane_ref<L>(decay[k], ln) = a;
                const float bt = t < len ? b[n * bsn + t * bst] : 0.0f;
                run = combine(run, affine<float>{a, dt * llm::simd::lane_ref<L>(c.u[k], ln) * bt});
            }
            llm::simd::lane_ref<L>(ra, ln) = run.a;
            llm::simd::lane_ref<L>(rb, ln) = run.b;
        });
        lane_exclusive_scan<L>(ra, rb, ta, tb);
        const float h_in = carry[n];
        llm::simd::for_lanes<L>([&](std::size_t ln) {
            float h = llm::simd::lane_ref<L>(ra, ln) * h_in + llm::simd::lane_ref<L>(rb, ln);
            for (std::size_t k = 0; k < K; ++k) {
                const std::size_t t = t0 + ln * K + k;
                const float dt = llm::simd::lane_ref<L>(c.dt[k], ln);
                const float bt = t < len ? b[n * bsn + t * bst] : 0.0f;
                const float ct = t < len ? cm[n * csn + t * cst] : 0.0f;
                h = llm::simd::lane_ref<L>(decay[k], ln) * h + dt * llm::simd::lane_ref<L>(c.u[k], ln) * bt;
                llm::simd::lane_ref<L>(c.y[k], ln) += ct * h;
            }
        });
        // Every lane holds the same total; lane 0's (or the calling thread's) is used.
        if constexpr (llm::simd::scalar_lanes<L>) {
            carry[n] = ta * h_in + tb;
        } else {
            carry[n] = ta[0] * h_in + tb[0];
        }
    }
}

}  // namespace llm::ssm::tile
