// SPDX-License-Identifier: Apache-2.0
// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_), gradient scaling and the
// bookkeeping of gradient accumulation over micro-batches.
#pragma once

#include <llm/core/error.hpp>
#include <llm/parallel/parallel_reduce.hpp>
#include <llm/simd/simd.hpp>
#include <llm/train/detail/flat.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace llm::train {

namespace detail {

inline constexpr std::size_t norm_grain = std::size_t{1} << 14;

// The last argument of a pack.
template <class... A>
decltype(auto) last(A&&... a) {
    return std::get<sizeof...(A) - 1>(std::forward_as_tuple(std::forward<A>(a)...));
}

// Sum of squares of n fp32/bf16 elements: fp32 vector accumulation within the run.
template <simd::backend S, class T>
float sum_squares(const T* x, std::size_t n) noexcept {
    // Four independent accumulators, so the fma latency does not bound the loop.
    auto a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
    std::size_t i = 0;
    for (; i + 4 * S::width <= n; i += 4 * S::width) {
        const auto v0 = load_any<S>(x + i), v1 = load_any<S>(x + i + S::width), v2 = load_any<S>(x + i + 2 * S::width),
                   v3 = load_any<S>(x + i + 3 * S::width);
        a0 = S::fma(v0, v0, a0);
        a1 = S::fma(v1, v1, a1);
        a2 = S::fma(v2, v2, a2);
        a3 = S::fma(v3, v3, a3);
    }
    for (; i + S::width <= n; i += S::width) {
        const auto v = load_any<S>(x + i);
        a0 = S::fma(v, v, a0);
    }
    const auto v = load_any_partial<S>(x + i, n - i);
    a0 = S::fma(v, v, a0);
    return S::reduce_add(S::add(S::add(a0, a1), S::add(a2, a3)));
}

template <simd::backend S, class T>
void scale_run(T* x, std::size_t n, float c) noexcept {
    const auto cv = S::set1(c);
    std::size_t i = 0;
    for (; i + S::width <= n; i += S::width) store_any<S>(x + i, S::mul(load_any<S>(x + i), cv));
    if (i < n) store_any_partial<S>(x + i, S::mul(load_any_partial<S>(x + i, n - i), cv), n - i);
}

}  // namespace detail

/// The global L2 norm of every gradient a walk visits, as if they were one vector:
/// sqrt(sum of squares). The walk passes (name, ..., grad): the last view of each call is the
/// gradient, so the (name, param, grad) walk of an optimizer and a (name, grad) walk both work
/// (callable taking a visitor, or a range of tuple-likes). Squares are summed in fp32 vectors
/// within chunks of 16384 elements and in double across chunks and tensors; the chunks depend
/// only on the sizes, so the result is the same bits on any policy and thread count.
/// Example: `double n = llm::train::grad_norm([&](auto&& f) { f("w", dw); f("b", db); }, pool);`
template <simd::backend S = simd::default_backend, class Walk>
double grad_norm(Walk&& walk, parallel::policy auto&& exec) {
    double total = 0;
    detail::visit(walk, [&](std::string_view name, auto&&... views) {
        static_assert(sizeof...(views) >= 1, "grad_norm: the walk must pass (name, ..., grad)");
        auto&& g = detail::last(views...);
        static_assert(any_dense_view<decltype(g)>, "grad_norm: the gradient must be an fp32 or bf16 view");
        const auto f = detail::flat_of("grad_norm", std::string("grad of '") + std::string(name) + "'", g);
        total += parallel::parallel_reduce(
            exec, f.size, detail::norm_grain, 0.0,
            [&](std::size_t b, std::size_t e) { return static_cast<double>(detail::sum_squares<S>(f.data + b, e - b)); },
            [](double a, double b) { return a + b; });
    });
    return std::sqrt(total);
}

/// grad_norm on llm::parallel::default_pool(). Example: `double n = llm::train::grad_norm(walk);`
template <simd::backend S = simd::default_backend, class Walk>
double grad_norm(Walk&& walk) {
    return grad_norm<S>(walk, parallel::default_pool());
}

/// Multiplies every gradient a walk visits (the last view of each call) by `factor`.
/// Example: `llm::train::scale_grads(walk, 1.0f / micro_batches, pool);`
template <simd::backend S = simd::default_backend, class Walk>
void scale_grads(Walk&& walk, float factor, parallel::policy auto&& exec) {
    detail::visit(walk, [&](std::string_view name, auto&&... views) {
        auto&& g = detail::last(views...);
        static_assert(any_dense_view<decltype(g)>, "scale_grads: the gradient must be an fp32 or bf16 view");
        const auto f = detail::flat_of("scale_grads", std::string("grad of '") + std::string(name) + "'", g);
        parallel::parallel_for(exec, f.size, detail::norm_grain,
                               [&](std::size_t b, std::size_t e) { detail::scale_run<S>(f.data + b, e - b, factor); });
    });
}

/// scale_grads on llm::parallel::default_pool(). Example: `llm::train::scale_grads(walk, 0.25f);`
template <simd::backend S = simd::default_backend, class Walk>
void scale_grads(Walk&& walk, float factor) {
    scale_grads<S>(walk, factor, parallel::default_pool());
}

/// Clips gradients by their global norm as torch.nn.utils.clip_grad_norm_ (norm_type 2):
/// total = grad_norm(walk); coef = max_norm / (total + 1e-6) in fp32, clamped to at most 1;
/// every gradient is multiplied by coef (skipped when coef is exactly 1, which changes nothing).
/// Returns the norm before clipping. A NaN or infinite norm gives NaN or 0 gradients, as in
/// PyTorch (error_if_nonfinite=False): skip such a batch before clipping (see loss_guard).
/// Example: `double norm = llm::train::clip_grad_norm(walk, 1.0, pool);`
template <simd::backend S = simd::default_backend, class Walk>
double clip_grad_norm(Walk&& walk, double max_norm, parallel::policy auto&& exec) {
    check(max_norm > 0, "clip_grad_norm: max_norm = ", max_norm, " must be > 0");
    const double total = grad_norm<S>(walk, exec);
    const float c = static_cast<float>(max_norm) / (static_cast<float>(total) + 1e-6f);
    const float coef = c < 1.0f || std::isnan(c) ? c : 1.0f;
    if (coef != 1.0f) scale_grads<S>(walk, coef, exec);
    return total;
}

/// clip_grad_norm on llm::parallel::default_pool(). Example: `double n = llm::train::clip_grad_norm(walk, 1.0);`
template <simd::backend S = simd::default_backend, class Walk>
double clip_grad_norm(Walk&& walk, double max_norm) {
    return clip_grad_norm<S>(walk, max_norm, parallel::default_pool());
}

/// Gradient accumulation over `micro_batches` micro-batches: backward calls add into the
/// gradients (the library's rule), so K micro-batches leave the sum; `finish` scales it to the
/// mean (PyTorch's usual loss / K), `micro_step` counts and says when to take the optimizer step.
/// Example:
/// ```
/// llm::train::grad_accumulation acc(4);
/// for (;;) { backward(...); if (acc.micro_step()) { acc.finish(walk, pool); opt.step(walk, pool); llm::zero_grad(...); } }
/// ```
class grad_accumulation {
public:
    /// K >= 1 micro-batches per optimizer step.
    explicit grad_accumulation(std::int64_t micro_batches) : k_(micro_batches) {
        check(micro_batches >= 1, "grad_accumulation: micro_batches = ", micro_batches, " must be >= 1");
    }
    /// Micro-batches per optimizer step.
    std::int64_t micro_batches() const noexcept { return k_; }
    /// The factor that turns the sum into the mean: 1 / K.
    float scale() const noexcept { return 1.0f / static_cast<float>(k_); }
    /// Counts one micro-batch; true when K have been counted since the last true (then resets).
    bool micro_step() noexcept {
        if (++seen_ < k_) return false;
        seen_ = 0;
        return true;
    }
    /// Micro-batches counted towards the next step.
    std::int64_t pending() const noexcept { return seen_; }
    /// Scales the accumulated gradients by 1 / K (nothing when K is 1).
    template <class Walk>
    void finish(Walk&& walk, parallel::policy auto&& exec) const {
        if (k_ != 1) scale_grads(walk, scale(), exec);
    }

private:
    std::int64_t k_;
    std::int64_t seen_ = 0;
};

}  // namespace llm::train
