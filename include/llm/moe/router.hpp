// SPDX-License-Identifier: Apache-2.0
// MoE routers as policies (an open concept): softmax top-k (Mixtral, Qwen-MoE), Switch top-1 with capacity, noisy top-k, expert choice, sigmoid + bias (DeepSeek-V3), group limits; route / route_backward.
#pragma once

#include <llm/core/error.hpp>
#include <llm/moe/tile.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/kernel_view.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

namespace llm::moe {

/// What a router writes for a batch of T tokens and E experts, and what its backward reads:
/// `experts` [T, slots] expert indices (int32; -1 = empty slot: dropped, or not chosen),
/// `weights` [T, slots] the routing weights (0 in empty slots), `probs` [T, E] the router's
/// scores (softmax probabilities, or sigmoid scores), saved for the backward and the losses.
/// Example: `llm::moe::routing r{experts_view, weights_view, probs_view};`
struct routing {
    llm::row_view<std::int32_t, 2> experts;  ///< [T, slots] chosen experts, -1 where empty.
    llm::row_view<float, 2> weights;         ///< [T, slots] routing weights, 0 where empty.
    llm::row_view<float, 2> probs;           ///< [T, E] router scores (saved state).
};

/// The read-only form of `routing`, as a router's backward receives it.
/// Example: `llm::moe::const_routing saved = r;`
struct const_routing {
    llm::row_view<const std::int32_t, 2> experts;  ///< [T, slots] chosen experts, -1 where empty.
    llm::row_view<const float, 2> weights;         ///< [T, slots] routing weights.
    llm::row_view<const float, 2> probs;           ///< [T, E] router scores.
    /// Example: `llm::moe::const_routing c{};`
    const_routing() = default;
    /// From a writable routing (adds const).
    /// Example: `llm::moe::const_routing c = r;`
    const_routing(const routing& r)  // NOLINT(google-explicit-constructor)
        : experts(r.experts), weights(r.weights), probs(r.probs) {}
    /// From its three views.
    /// Example: `llm::moe::const_routing c{e, w, p};`
    const_routing(llm::row_view<const std::int32_t, 2> e, llm::row_view<const float, 2> w,
                  llm::row_view<const float, 2> p)
        : experts(e), weights(w), probs(p) {}
};

/// A router policy: one type with
/// - `slots(n_experts)`: slots per token of its `routing` (k for top-k routers; E for
///   expert choice, where a token may get any number of experts);
/// - `forward(routing out, row_view<const float, 2> logits, exec)`: writes experts, weights and
///   probs for the batch (logits [T, E], never NaN: route() checks);
/// - `backward(row_view<float, 2> dlogits, const_routing saved, row_view<const float, 2>
///   dweights, row_view<const float, 2> logits, exec)`: ADDS dL/dlogits given dL/dweights.
/// `exec` is any llm::parallel policy (the concept checks sequential and thread_pool). A user
/// adds a router by writing such a type outside llm:: (tests/moe/router.cpp has one).
/// Example: `static_assert(llm::moe::router<llm::moe::softmax_top_k>);`
template <class R>
concept router = requires(const R& r, std::size_t n, const routing& out, const const_routing& saved,
                          llm::row_view<const float, 2> logits, llm::row_view<float, 2> dlogits,
                          parallel::sequential& seq, parallel::thread_pool& pool) {
    { r.slots(n) } -> std::convertible_to<std::size_t>;
    r.forward(out, logits, seq);
    r.forward(out, logits, pool);
    r.backward(dlogits, saved, logits, logits, seq);
    r.backward(dlogits, saved, logits, logits, pool);
};

/// Group-limited selection (DeepSeek-V2/V3): experts form n_group equal groups, only the
/// topk_group groups with the best scores (sum of each group's per_group largest selection
/// keys) may be chosen. n_group 1 (the default) is no limit.
/// Example: `llm::moe::group_limit g{.n_group = 8, .topk_group = 4, .per_group = 2};`
struct group_limit {
    std::size_t n_group = 1;     ///< Groups (divides E; at most 64).
    std::size_t topk_group = 1;  ///< Groups kept per token.
    std::size_t per_group = 1;   ///< Keys summed per group score (1: max, V2; 2: V3).
};

namespace detail {

/// Tokens per parallel chunk of a per-token router pass.
inline constexpr std::size_t router_grain = 64;

/// Per-chunk scratch of n values: on the stack up to 256 (every router's k, and E up to 256),
/// on the heap beyond, so a warmed layer call with E <= 256 allocates nothing.
template <class T>
struct small_buffer {
    static constexpr std::size_t inline_size = 256;
    std::array<T, inline_size> local{};
    std::vector<T> heap;
    T* data;
    explicit small_buffer(std::size_t n) : heap(n > inline_size ? n : 0), data(n > inline_size ? heap.data() : local.data()) {}
    small_buffer(const small_buffer&) = delete;
    small_buffer& operator=(const small_buffer&) = delete;
    T& operator[](std::size_t i) noexcept { return data[i]; }
};

inline void check_group(const char* fn, const group_limit& g, std::size_t E, std::size_t k) {
    llm::check(g.n_group >= 1 && g.n_group <= 64 && E % g.n_group == 0, fn, ": n_group = ", g.n_group,
               " must be in [1, 64] and divide the ", E, " experts");
    if (g.n_group > 1) {
        llm::check(g.topk_group >= 1 && g.topk_group <= g.n_group, fn, ": topk_group = ", g.topk_group,
                   " must be in [1, n_group = ", g.n_group, "]");
        llm::check(k <= g.topk_group * (E / g.n_group), fn, ": k = ", k, " exceeds the ",
                   g.topk_group * (E / g.n_group), " experts of the topk_group = ", g.topk_group, " groups kept");
        llm::check(g.per_group >= 1 && g.per_group <= E / g.n_group, fn, ": per_group = ", g.per_group,
                   " must be in [1, group size ", E / g.n_group, "]");
    }
}

inline void check_k(const char* fn, std::size_t k, std::size_t E) {
    llm::check(k >= 1 && k <= E, fn, ": k = ", k, " must be in [1, n_experts = ", E, "]");
}

inline void check_routing(const char* fn, const routing& out, std::size_t T, std::size_t E, std::size_t slots) {
    llm::check(out.experts.extent(0) == T && out.experts.extent(1) == slots && out.weights.extent(0) == T &&
                   out.weights.extent(1) == slots,
               fn, ": experts and weights must be [", T, ", ", slots, "] (tokens, slots)");
    llm::check(out.probs.extent(0) == T && out.probs.extent(1) == E, fn, ": probs must be [", T, ", ", E,
               "] (tokens, experts)");
}

/// Shared per-token top-k over softmax (or sigmoid) scores with an optional selection bias.
template <bool Sigmoid, class Exec>
void score_top_k(const char* fn, const routing& out, llm::row_view<const float, 2> logits, std::size_t k,
                 bool renormalize, float scale, const group_limit& g, std::span<const float> bias, Exec& exec) {
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    check_k(fn, k, E);
    check_group(fn, g, E, k);
    check_routing(fn, out, T, E, k);
    llm::check(bias.empty() || bias.size() == E, fn, ": bias has ", bias.size(), " entries for ", E, " experts");
    for (std::size_t e = 0; e < bias.size(); ++e) {
        llm::check(std::isfinite(bias[e]), fn, ": selection bias of expert ", e, " is ", bias[e]);
    }
    parallel::parallel_for(exec, T, router_grain, [&](std::size_t t0, std::size_t t1) {
        small_buffer<float> key(bias.empty() ? 0 : E);
        for (std::size_t t = t0; t < t1; ++t) {
            float* p = out.probs.ptr(t, 0);
            if constexpr (Sigmoid) {
                for (std::size_t e = 0; e < E; ++e) {
                    p[e] = tile::sigmoid_f(logits(t, e));
                }
            } else {
                tile::softmax_row(p, logits.ptr(t, 0), E);
            }
            const float* sel = p;
            if (!bias.empty()) {
                for (std::size_t e = 0; e < E; ++e) {
                    key[e] = p[e] + bias[e];
                }
                sel = key.data;
            }
            const std::uint64_t allowed = tile::group_mask(sel, E, g.n_group, g.topk_group, g.per_group);
            std::int32_t* idx = out.experts.ptr(t, 0);
            tile::top_k(idx, sel, E, k, allowed, E / g.n_group);
            float S = 0.0f;
            for (std::size_t j = 0; j < k; ++j) {
                S += p[idx[j]];
            }
            const float c = renormalize ? scale / S : scale;
            for (std::size_t j = 0; j < k; ++j) {
                out.weights(t, j) = p[idx[j]] * c;
            }
        }
    });
}

/// Backward of score_top_k: dweights -> dscores (renorm_backward) -> dlogits (softmax or
/// sigmoid backward), added into dlogits. Empty slots (-1) contribute nothing.
template <bool Sigmoid, class Exec>
void score_top_k_backward(llm::row_view<float, 2> dlogits, const const_routing& s,
                          llm::row_view<const float, 2> dweights, bool renormalize, float scale, Exec& exec) {
    const std::size_t T = s.probs.extent(0), E = s.probs.extent(1), k = s.experts.extent(1);
    parallel::parallel_for(exec, T, router_grain, [&](std::size_t t0, std::size_t t1) {
        small_buffer<float> g(k), sv(k), ds(k);
        small_buffer<std::int32_t> idx(k);
        for (std::size_t t = t0; t < t1; ++t) {
            std::size_t m = 0;
            for (std::size_t j = 0; j < k; ++j) {
                const std::int32_t e = s.experts(t, j);
                if (e >= 0) {
                    idx[m] = e;
                    g[m] = dweights(t, j);
                    sv[m] = s.probs(t, static_cast<std::size_t>(e));
                    ++m;
                }
            }
            if (m == 0) {
                continue;
            }
            tile::renorm_backward(ds.data, g.data, sv.data, m, renormalize, scale);
            if constexpr (Sigmoid) {
                for (std::size_t j = 0; j < m; ++j) {
                    dlogits(t, static_cast<std::size_t>(idx[j])) += ds[j] * sv[j] * (1.0f - sv[j]);
                }
            } else {
                tile::softmax_backward_sparse(dlogits.ptr(t, 0), s.probs.ptr(t, 0), idx.data, ds.data, E, m);
            }
        }
    });
}

/// splitmix64: the counter-based generator behind noisy_top_k's noise.
constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

}  // namespace detail

/// Softmax over the experts, the k largest probabilities chosen; weights are the chosen
/// probabilities renormalised to sum 1 (Mixtral; `renormalize = true`) or kept as they are
/// (Qwen-MoE's norm_topk_prob = false), times `scale` (the routed scaling factor). Optional
/// group limit (DeepSeek-V2: group score = the group's largest probability). Ties: the lower
/// expert index first. probs (saved) are the softmax.
/// Example: `llm::moe::route(experts, weights, probs, logits, llm::moe::softmax_top_k{.k = 2}, pool);`
struct softmax_top_k {
    std::size_t k = 2;         ///< Experts per token.
    bool renormalize = true;   ///< Renormalise the k weights to sum 1 (Mixtral) or not (Qwen-MoE option).
    float scale = 1.0f;        ///< Routed scaling factor on every weight.
    group_limit groups{};      ///< Group-limited selection (none by default).

    /// Slots per token: k.
    /// Example: `std::size_t s = r.slots(8);`
    [[nodiscard]] std::size_t slots(std::size_t /*n_experts*/) const noexcept { return k; }
    /// Routes a batch (see llm::moe::router).
    /// Example: `r.forward(out, logits, llm::parallel::sequential{});`
    void forward(const routing& out, llm::row_view<const float, 2> logits, parallel::policy auto&& exec) const {
        detail::score_top_k<false>("softmax_top_k", out, logits, k, renormalize, scale, groups, {}, exec);
    }
    /// Adds dL/dlogits (see llm::moe::router).
    /// Example: `r.backward(dlogits, saved, dweights, logits, pool);`
    void backward(llm::row_view<float, 2> dlogits, const const_routing& saved, llm::row_view<const float, 2> dweights,
                  llm::row_view<const float, 2> /*logits*/, parallel::policy auto&& exec) const {
        detail::score_top_k_backward<false>(dlogits, saved, dweights, renormalize, scale, exec);
    }
};

/// Sigmoid scores s = sigmoid(logit); the k experts with the largest s + bias chosen (the bias
/// only selects: DeepSeek-V3's auxiliary-loss-free balancing, updated by llm::moe::update_bias);
/// weights are the chosen s renormalised to sum 1 (`renormalize`, V3's norm_topk_prob) times
/// `scale` (V3's routed_scaling_factor, 2.5). Group limit as V3 with per_group = 2. probs
/// (saved) are the sigmoid scores. `bias` may be empty (no bias) or hold E values; it is read,
/// not copied, so it must outlive the router.
/// Example: `llm::moe::sigmoid_top_k r{.k = 8, .scale = 2.5f, .groups = {8, 4, 2}, .bias = bias};`
struct sigmoid_top_k {
    std::size_t k = 2;              ///< Experts per token.
    bool renormalize = true;        ///< Renormalise the k weights to sum 1.
    float scale = 1.0f;             ///< Routed scaling factor.
    group_limit groups{};           ///< Group-limited selection.
    std::span<const float> bias{};  ///< Per-expert selection bias (empty: none).

    /// Slots per token: k.
    /// Example: `std::size_t s = r.slots(8);`
    [[nodiscard]] std::size_t slots(std::size_t /*n_experts*/) const noexcept { return k; }
    /// Routes a batch (see llm::moe::router).
    /// Example: `r.forward(out, logits, llm::parallel::sequential{});`
    void forward(const routing& out, llm::row_view<const float, 2> logits, parallel::policy auto&& exec) const {
        detail::score_top_k<true>("sigmoid_top_k", out, logits, k, renormalize, scale, groups, bias, exec);
    }
    /// Adds dL/dlogits (the bias gets no gradient: it is not learned by backpropagation).
    /// Example: `r.backward(dlogits, saved, dweights, logits, pool);`
    void backward(llm::row_view<float, 2> dlogits, const const_routing& saved, llm::row_view<const float, 2> dweights,
                  llm::row_view<const float, 2> /*logits*/, parallel::policy auto&& exec) const {
        detail::score_top_k_backward<true>(dlogits, saved, dweights, renormalize, scale, exec);
    }
};

/// Switch Transformer routing: softmax, the top-1 expert, weight = its probability; each expert
/// takes at most capacity = ceil(capacity_factor * T / E) tokens, in token order, and later
/// tokens sent to a full expert are dropped (expert -1, weight 0: the layer passes them
/// through as 0, the residual carries them). capacity_factor <= 0 is llm::error.
/// Example: `llm::moe::route(experts, weights, probs, logits, llm::moe::switch_top1{.capacity_factor = 1.25}, pool);`
struct switch_top1 {
    double capacity_factor = 1.25;  ///< Capacity per expert as a multiple of T / E.

    /// Slots per token: 1.
    /// Example: `std::size_t s = r.slots(8);`
    [[nodiscard]] std::size_t slots(std::size_t /*n_experts*/) const noexcept { return 1; }
    /// The per-expert capacity for T tokens over E experts.
    /// Example: `std::size_t c = r.capacity(512, 8);`
    [[nodiscard]] std::size_t capacity(std::size_t T, std::size_t E) const noexcept {
        return static_cast<std::size_t>(std::ceil(capacity_factor * static_cast<double>(T) / static_cast<double>(E)));
    }
    /// Routes a batch (see llm::moe::router).
    /// Example: `r.forward(out, logits, llm::parallel::sequential{});`
    void forward(const routing& out, llm::row_view<const float, 2> logits, parallel::policy auto&& exec) const {
        llm::check(capacity_factor > 0.0 && std::isfinite(capacity_factor), "switch_top1: capacity_factor = ",
                   capacity_factor, " must be > 0");
        detail::score_top_k<false>("switch_top1", out, logits, 1, false, 1.0f, {}, {}, exec);
        const std::size_t T = logits.extent(0), E = logits.extent(1), cap = capacity(T, E);
        std::vector<std::size_t> used(E, 0);
        for (std::size_t t = 0; t < T; ++t) {  // token order decides who is dropped
            const auto e = static_cast<std::size_t>(out.experts(t, 0));
            if (used[e] == cap) {
                out.experts(t, 0) = -1;
                out.weights(t, 0) = 0.0f;
            } else {
                ++used[e];
            }
        }
    }
    /// Adds dL/dlogits (dropped tokens contribute nothing).
    /// Example: `r.backward(dlogits, saved, dweights, logits, pool);`
    void backward(llm::row_view<float, 2> dlogits, const const_routing& saved, llm::row_view<const float, 2> dweights,
                  llm::row_view<const float, 2> /*logits*/, parallel::policy auto&& exec) const {
        detail::score_top_k_backward<false>(dlogits, saved, dweights, false, 1.0f, exec);
    }
};

/// Noisy top-k gating for training (Shazeer et al. 2017, fixed noise scale): logits + noise_std
/// * n(t, e), n a standard normal drawn from (seed, token, expert) by a counter-based generator
/// (the same for every thread count; a new seed per step gives new noise), then as
/// softmax_top_k on the noisy logits. probs (saved) are the softmax of the noisy logits, so the
/// backward is softmax_top_k's (the noise is a constant shift).
/// Example: `llm::moe::noisy_top_k r{.k = 2, .noise_std = 1.0f, .seed = step};`
struct noisy_top_k {
    std::size_t k = 2;         ///< Experts per token.
    float noise_std = 1.0f;    ///< Standard deviation of the added noise.
    std::uint64_t seed = 0;    ///< Noise seed (change it per step).
    bool renormalize = true;   ///< Renormalise the k weights to sum 1.

    /// Slots per token: k.
    /// Example: `std::size_t s = r.slots(8);`
    [[nodiscard]] std::size_t slots(std::size_t /*n_experts*/) const noexcept { return k; }
    /// The standard normal sample of (token t, expert e) under `seed` (Box-Muller).
    /// Example: `float n = r.noise(3, 1);`
    [[nodiscard]] float noise(std::size_t t, std::size_t e) const noexcept {
        const std::uint64_t a = detail::splitmix64(seed ^ detail::splitmix64(t * 0x100000001B3ull + e));
        const std::uint64_t b = detail::splitmix64(a);
        const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
        return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
    /// Routes a batch (see llm::moe::router).
    /// Example: `r.forward(out, logits, llm::parallel::sequential{});`
    void forward(const routing& out, llm::row_view<const float, 2> logits, parallel::policy auto&& exec) const {
        const std::size_t T = logits.extent(0), E = logits.extent(1);
        std::vector<float> noisy(T * E);
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t e = 0; e < E; ++e) {
                noisy[t * E + e] = logits(t, e) + noise_std * noise(t, e);
            }
        }
        const llm::row_view<const float, 2> nv(noisy.data(), llm::dims<2>(T, E), llm::unit_last_stride<2>(E));
        detail::score_top_k<false>("noisy_top_k", out, nv, k, renormalize, 1.0f, {}, {}, exec);
    }
    /// Adds dL/dlogits (see llm::moe::router).
    /// Example: `r.backward(dlogits, saved, dweights, logits, pool);`
    void backward(llm::row_view<float, 2> dlogits, const const_routing& saved, llm::row_view<const float, 2> dweights,
                  llm::row_view<const float, 2> /*logits*/, parallel::policy auto&& exec) const {
        detail::score_top_k_backward<false>(dlogits, saved, dweights, renormalize, 1.0f, exec);
    }
};

/// Expert-choice routing (Zhou et al. 2022): softmax over the experts per token, then each
/// expert picks the c = min(T, ceil(capacity_factor * T / E)) tokens with the largest
/// probability for it (ties: the lower token index). slots = E: slot e of token t holds e when
/// expert e chose t (weight = the probability), else -1 (weight 0); a token may get no expert.
/// capacity_factor <= 0 is llm::error.
/// Example: `llm::moe::route(experts, weights, probs, logits, llm::moe::expert_choice{.capacity_factor = 2.0}, pool);`
struct expert_choice {
    double capacity_factor = 2.0;  ///< Tokens per expert as a multiple of T / E.

    /// Slots per token: every expert.
    /// Example: `std::size_t s = r.slots(8);  // 8`
    [[nodiscard]] std::size_t slots(std::size_t n_experts) const noexcept { return n_experts; }
    /// Tokens each expert picks for a batch of T over E experts.
    /// Example: `std::size_t c = r.capacity(512, 8);`
    [[nodiscard]] std::size_t capacity(std::size_t T, std::size_t E) const noexcept {
        const auto c = static_cast<std::size_t>(std::ceil(capacity_factor * static_cast<double>(T) / static_cast<double>(E)));
        return std::min(T, c);
    }
    /// Routes a batch (see llm::moe::router).
    /// Example: `r.forward(out, logits, llm::parallel::sequential{});`
    void forward(const routing& out, llm::row_view<const float, 2> logits, parallel::policy auto&& exec) const {
        constexpr const char* fn = "expert_choice";
        llm::check(capacity_factor > 0.0 && std::isfinite(capacity_factor), fn, ": capacity_factor = ",
                   capacity_factor, " must be > 0");
        const std::size_t T = logits.extent(0), E = logits.extent(1);
        detail::check_routing(fn, out, T, E, E);
        parallel::parallel_for(exec, T, detail::router_grain, [&](std::size_t t0, std::size_t t1) {
            for (std::size_t t = t0; t < t1; ++t) {
                tile::softmax_row(out.probs.ptr(t, 0), logits.ptr(t, 0), E);
                for (std::size_t e = 0; e < E; ++e) {
                    out.experts(t, e) = -1;
                    out.weights(t, e) = 0.0f;
                }
            }
        });
        const std::size_t c = capacity(T, E);
        parallel::parallel_for(exec, E, 1, [&](std::size_t e0, std::size_t e1) {
            std::vector<std::uint32_t> order(T);
            for (std::size_t e = e0; e < e1; ++e) {
                std::iota(order.begin(), order.end(), 0u);
                std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(c), order.end(),
                                  [&](std::uint32_t a, std::uint32_t b) {
                                      const float pa = out.probs(a, e), pb = out.probs(b, e);
                                      return pa > pb || (pa == pb && a < b);
                                  });
                for (std::size_t i = 0; i < c; ++i) {
                    out.experts(order[i], e) = static_cast<std::int32_t>(e);
                    out.weights(order[i], e) = out.probs(order[i], e);
                }
            }
        });
    }
    /// Adds dL/dlogits (see llm::moe::router).
    /// Example: `r.backward(dlogits, saved, dweights, logits, pool);`
    void backward(llm::row_view<float, 2> dlogits, const const_routing& saved, llm::row_view<const float, 2> dweights,
                  llm::row_view<const float, 2> /*logits*/, parallel::policy auto&& exec) const {
        detail::score_top_k_backward<false>(dlogits, saved, dweights, false, 1.0f, exec);
    }
};

static_assert(router<softmax_top_k>);
static_assert(router<sigmoid_top_k>);
static_assert(router<switch_top1>);
static_assert(router<noisy_top_k>);
static_assert(router<expert_choice>);

namespace detail {

inline llm::row_view<const float, 2> check_logits(const char* fn, llm::row_view<const float, 2> logits) {
    const std::size_t T = logits.extent(0), E = logits.extent(1);
    llm::check(E >= 1, fn, ": logits must have at least one expert column (it has ", E, ")");
    // NaN has no rank; +inf makes the softmax NaN (inf - inf); a row of -inf leaves no expert
    // with a probability. Each would let the selection index past the experts.
    constexpr float inf = std::numeric_limits<float>::infinity();
    for (std::size_t t = 0; t < T; ++t) {
        bool any_finite = false;
        for (std::size_t e = 0; e < E; ++e) {
            const float l = logits(t, e);
            llm::check(!std::isnan(l) && l != inf, fn, ": router logit (token ", t, ", expert ", e, ") is ",
                       std::isnan(l) ? "NaN" : "+inf", "; the routing of that token is undefined");
            any_finite = any_finite || std::isfinite(l);
        }
        llm::check(any_finite, fn, ": every router logit of token ", t, " is -inf; no expert can be chosen");
    }
    return logits;
}

}  // namespace detail

/// Routes T tokens over E experts: writes experts [T, slots] and weights [T, slots] (outputs)
/// and probs [T, E] (saved state) from logits [T, E], by the router policy `r`.
/// An empty batch (T = 0) does nothing. llm::error on a NaN or +inf logit (naming token and
/// expert), on a token whose logits are all -inf,
/// on shapes that disagree, k > E, or a capacity factor <= 0.
/// Arguments (docs/conventions.md): outputs experts, weights; saved state probs; input logits;
/// the option r (the router); the executor.
/// Elements: experts int32; weights, probs, logits fp32, rows contiguous.
/// Example: `llm::moe::route(experts, weights, probs, logits, llm::moe::softmax_top_k{.k = 2}, pool);`
template <view_of_rank<2> XE, view_of_rank<2> W, view_of_rank<2> P, view_of_rank<2> L, router R>
    requires std::same_as<view_element_t<XE>, std::int32_t> && std::same_as<view_element_t<W>, float> &&
             std::same_as<view_element_t<P>, float> && std::same_as<std::remove_const_t<view_element_t<L>>, float>
void route(XE&& experts, W&& weights, P&& probs, L&& logits, const R& r, parallel::policy auto&& exec) {
    constexpr const char* fn = "moe::route";
    using rows = llm::unit_last_stride<2>;
    const routing out{llm::to_kernel_view<llm::dims<2>, rows>(fn, "experts", experts),
                      llm::to_kernel_view<llm::dims<2>, rows>(fn, "weights", weights),
                      llm::to_kernel_view<llm::dims<2>, rows>(fn, "probs", probs)};
    const llm::row_view<const float, 2> lg = llm::to_kernel_view<llm::dims<2>, rows>(fn, "logits", logits);
    detail::check_logits(fn, lg);
    const std::size_t T = lg.extent(0), E = lg.extent(1);
    detail::check_routing(fn, out, T, E, r.slots(E));
    if (T == 0) {
        return;
    }
    r.forward(out, lg, exec);
}

/// route on llm::parallel::default_pool().
/// Example: `llm::moe::route(experts, weights, probs, logits, llm::moe::softmax_top_k{});`
template <view_of_rank<2> XE, view_of_rank<2> W, view_of_rank<2> P, view_of_rank<2> L, router R>
    requires std::same_as<view_element_t<XE>, std::int32_t> && std::same_as<view_element_t<W>, float> &&
             std::same_as<view_element_t<P>, float> && std::same_as<std::remove_const_t<view_element_t<L>>, float>
void route(XE&& experts, W&& weights, P&& probs, L&& logits, const R& r) {
    route(experts, weights, probs, logits, r, parallel::default_pool());
}

/// Backward of route: ADDS dL/dlogits [T, E] given dL/dweights [T, slots] and the saved
/// experts, weights and probs (as route wrote them) and the logits.
/// Arguments (docs/conventions.md): output dlogits; saved state experts, weights, probs; inputs
/// dweights (upstream) and logits; the router; the executor.
/// Example: `llm::moe::route_backward(dlogits, experts, weights, probs, dweights, logits, r, pool);`
template <view_of_rank<2> DL, view_of_rank<2> XE, view_of_rank<2> W, view_of_rank<2> P, view_of_rank<2> DW,
          view_of_rank<2> L, router R>
    requires std::same_as<view_element_t<DL>, float> &&
             std::same_as<std::remove_const_t<view_element_t<XE>>, std::int32_t> &&
             std::same_as<std::remove_const_t<view_element_t<W>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<P>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<DW>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<L>>, float>
void route_backward(DL&& dlogits, XE&& experts, W&& weights, P&& probs, DW&& dweights, L&& logits, const R& r,
                    parallel::policy auto&& exec) {
    constexpr const char* fn = "moe::route_backward";
    using rows = llm::unit_last_stride<2>;
    const llm::row_view<float, 2> dl = llm::to_kernel_view<llm::dims<2>, rows>(fn, "dlogits", dlogits);
    const const_routing saved{llm::to_kernel_view<llm::dims<2>, rows>(fn, "experts", experts),
                              llm::to_kernel_view<llm::dims<2>, rows>(fn, "weights", weights),
                              llm::to_kernel_view<llm::dims<2>, rows>(fn, "probs", probs)};
    const llm::row_view<const float, 2> dw = llm::to_kernel_view<llm::dims<2>, rows>(fn, "dweights", dweights);
    const llm::row_view<const float, 2> lg = llm::to_kernel_view<llm::dims<2>, rows>(fn, "logits", logits);
    const std::size_t T = lg.extent(0), E = lg.extent(1), S = saved.experts.extent(1);
    llm::check(dl.extent(0) == T && dl.extent(1) == E && saved.probs.extent(0) == T && saved.probs.extent(1) == E, fn,
               ": dlogits and probs must be [", T, ", ", E, "] like logits");
    llm::check(saved.experts.extent(0) == T && dw.extent(0) == T && dw.extent(1) == S && saved.weights.extent(0) == T &&
                   saved.weights.extent(1) == S,
               fn, ": experts, weights and dweights must be [", T, ", ", S, "]");
    if (T == 0) {
        return;
    }
    r.backward(dl, saved, dw, lg, exec);
}

/// route_backward on llm::parallel::default_pool().
/// Example: `llm::moe::route_backward(dlogits, experts, weights, probs, dweights, logits, r);`
template <view_of_rank<2> DL, view_of_rank<2> XE, view_of_rank<2> W, view_of_rank<2> P, view_of_rank<2> DW,
          view_of_rank<2> L, router R>
    requires std::same_as<view_element_t<DL>, float> &&
             std::same_as<std::remove_const_t<view_element_t<XE>>, std::int32_t> &&
             std::same_as<std::remove_const_t<view_element_t<W>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<P>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<DW>>, float> &&
             std::same_as<std::remove_const_t<view_element_t<L>>, float>
void route_backward(DL&& dlogits, XE&& experts, W&& weights, P&& probs, DW&& dweights, L&& logits, const R& r) {
    route_backward(dlogits, experts, weights, probs, dweights, logits, r, parallel::default_pool());
}

/// The auxiliary-loss-free balancing update of DeepSeek-V3: bias[e] += rate * sign(mean load -
/// load[e]) (under-loaded experts become more likely to be chosen, over-loaded less), with
/// load = tokens_per_expert (e.g. router_stats::tokens_per_expert of the step).
/// Example: `llm::moe::update_bias(bias, stats.tokens_per_expert, 0.001f);`
template <view_of_rank<1> B>
    requires std::same_as<view_element_t<B>, float>
void update_bias(B&& bias, std::span<const std::size_t> tokens_per_expert, float rate) {
    const std::size_t E = static_cast<std::size_t>(bias.extent(0));
    llm::check(tokens_per_expert.size() == E, "moe::update_bias: ", tokens_per_expert.size(),
               " token counts for a bias of ", E, " experts");
    if (E == 0) {
        return;
    }
    double mean = 0.0;
    for (const std::size_t c : tokens_per_expert) {
        mean += static_cast<double>(c);
    }
    mean /= static_cast<double>(E);
    for (std::size_t e = 0; e < E; ++e) {
        const double err = mean - static_cast<double>(tokens_per_expert[e]);
        const float s = err > 0 ? 1.0f : (err < 0 ? -1.0f : 0.0f);
        bias.data()[e * static_cast<std::size_t>(bias.stride(0))] += rate * s;
    }
}

}  // namespace llm::moe
