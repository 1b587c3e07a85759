// SPDX-License-Identifier: Apache-2.0
// Learning-rate schedules: constant, linear warmup + cosine to a floor, linear decay,
// warmup-stable-decay (WSD) and multi-stage schedules that re-warm at each stage.
#pragma once

#include <llm/core/error.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numbers>
#include <utility>
#include <vector>

namespace llm::train {

/// A learning-rate schedule: `s(step)` gives the rate of update `step` (0-based: the first
/// update is step 0, as llm.c's get_lr). Open: any such callable is one.
/// Example: `static_assert(llm::train::lr_schedule<llm::train::cosine_lr>);`
template <class S>
concept lr_schedule = requires(const S& s, std::int64_t step) {
    { s(step) } -> std::convertible_to<double>;
};

namespace detail {

inline void check_warmup(const char* fn, std::int64_t warmup, std::int64_t total, std::int64_t step) {
    check(warmup >= 0 && total > warmup, fn, ": warmup = ", warmup, " and total = ", total,
          " must satisfy 0 <= warmup < total");
    check(step >= 0, fn, ": step = ", step, " must be >= 0");
}

// Linear warmup as llm.c: max_lr * (step + 1) / warmup for step < warmup.
inline double warmup_lr(double max_lr, std::int64_t step, std::int64_t warmup) {
    return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
}

}  // namespace detail

/// The same rate at every step. Example: `llm::train::constant_lr s{3e-4}; double lr = s(10);`
struct constant_lr {
    double lr = 1e-3;  ///< the rate
    /// lr.
    double operator()(std::int64_t /*step*/) const noexcept { return lr; }
};

/// Linear warmup then cosine decay to a floor (llm.c's train_gpt2 get_lr, nanoGPT):
/// step < warmup: max_lr (step + 1) / warmup; then, with r = (step - warmup) / (total - warmup),
/// min_lr + (max_lr - min_lr) (1 + cos(pi r)) / 2; step >= total: min_lr.
/// Example: `llm::train::cosine_lr s{.max_lr = 6e-4, .warmup = 700, .total = 19073, .min_lr = 6e-5};`
struct cosine_lr {
    double max_lr = 1e-3;     ///< the peak rate
    std::int64_t warmup = 0;  ///< warmup steps
    std::int64_t total = 1;   ///< the step where the floor is reached (> warmup)
    double min_lr = 0;        ///< the floor
    /// The rate of update `step`.
    double operator()(std::int64_t step) const {
        detail::check_warmup("cosine_lr", warmup, total, step);
        if (step < warmup) return detail::warmup_lr(max_lr, step, warmup);
        if (step >= total) return min_lr;
        const double r = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
        return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * r));
    }
};

/// Linear warmup then linear decay from max_lr to min_lr (0 by default: "linear decay to
/// zero") at step `total`: max_lr + (min_lr - max_lr) (step - warmup) / (total - warmup).
/// Example: `llm::train::linear_lr s{.max_lr = 1e-3, .warmup = 100, .total = 1000};`
struct linear_lr {
    double max_lr = 1e-3;     ///< the peak rate
    std::int64_t warmup = 0;  ///< warmup steps
    std::int64_t total = 1;   ///< the step where min_lr is reached (> warmup)
    double min_lr = 0;        ///< the final rate
    /// The rate of update `step`.
    double operator()(std::int64_t step) const {
        detail::check_warmup("linear_lr", warmup, total, step);
        if (step < warmup) return detail::warmup_lr(max_lr, step, warmup);
        if (step >= total) return min_lr;
        const double r = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
        return max_lr + (min_lr - max_lr) * r;
    }
};

/// The shape of WSD's final decay, x in [0, 1) the position in the ramp: linear (1 - x),
/// cosine ((1 + cos(pi x)) / 2), or 1 - sqrt(x) (Hägele et al. 2024, "Scaling Laws and
/// Compute-Optimal Training Beyond Fixed Training Durations", their best cooldown).
enum class decay_shape {
    linear,         ///< 1 - x
    cosine,         ///< (1 + cos(pi x)) / 2
    one_minus_sqrt  ///< 1 - sqrt(x)
};

/// Warmup-stable-decay (MiniCPM, Hägele et al.): linear warmup, max_lr until `total - decay`,
/// then a ramp of `decay` steps to min_lr in the chosen shape; min_lr from `total` on.
/// Example: `llm::train::wsd_lr s{.max_lr = 1e-3, .warmup = 100, .total = 10000, .decay = 2000, .shape = llm::train::decay_shape::one_minus_sqrt};`
struct wsd_lr {
    double max_lr = 1e-3;                   ///< the plateau rate
    std::int64_t warmup = 0;                ///< warmup steps
    std::int64_t total = 1;                 ///< the step where min_lr is reached
    std::int64_t decay = 0;                 ///< steps of the final ramp (<= total - warmup)
    double min_lr = 0;                      ///< the final rate
    decay_shape shape = decay_shape::linear;  ///< the ramp's shape
    /// The rate of update `step`.
    double operator()(std::int64_t step) const {
        detail::check_warmup("wsd_lr", warmup, total, step);
        check(decay >= 0 && decay <= total - warmup, "wsd_lr: decay = ", decay, " must be in [0, total - warmup = ",
              total - warmup, "]");
        if (step < warmup) return detail::warmup_lr(max_lr, step, warmup);
        if (step >= total) return min_lr;
        const std::int64_t start = total - decay;
        if (step < start) return max_lr;
        const double x = static_cast<double>(step - start) / static_cast<double>(decay);
        const double f = shape == decay_shape::linear   ? 1.0 - x
                         : shape == decay_shape::cosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * x))
                                                        : 1.0 - std::sqrt(x);
        return min_lr + (max_lr - min_lr) * f;
    }
};

/// Stages run one after another, each a schedule of its own seen from its own step 0, so each
/// re-warms (continued pretraining, curriculum stages). A stage lasts `steps` updates; past the
/// last stage its schedule goes on (with its own step count).
/// Example:
/// ```
/// llm::train::multi_stage_lr s({{1000, llm::train::cosine_lr{.max_lr = 1e-3, .warmup = 100, .total = 1000}},
///                               {500, llm::train::cosine_lr{.max_lr = 3e-4, .warmup = 50, .total = 500}}});
/// ```
class multi_stage_lr {
public:
    /// One stage: its length and its schedule.
    struct stage {
        std::int64_t steps = 0;                           ///< updates in this stage (> 0)
        std::function<double(std::int64_t)> schedule;    ///< the stage's schedule, called with the step within the stage
    };

    /// Stages in order (at least one, each at least one step long).
    explicit multi_stage_lr(std::vector<stage> stages) : stages_(std::move(stages)) {
        check(!stages_.empty(), "multi_stage_lr: no stages");
        for (std::size_t i = 0; i < stages_.size(); ++i)
            check(stages_[i].steps > 0 && stages_[i].schedule, "multi_stage_lr: stage ", i, " has ", stages_[i].steps,
                  " steps", stages_[i].schedule ? "" : " and no schedule", "; every stage needs >= 1 step and a schedule");
    }
    /// The rate of update `step`.
    double operator()(std::int64_t step) const {
        check(step >= 0, "multi_stage_lr: step = ", step, " must be >= 0");
        std::size_t i = 0;
        while (i + 1 < stages_.size() && step >= stages_[i].steps) step -= stages_[i++].steps;
        return stages_[i].schedule(step);
    }
    /// The index of the stage that update `step` belongs to.
    std::size_t stage_of(std::int64_t step) const noexcept {
        std::size_t i = 0;
        while (i + 1 < stages_.size() && step >= stages_[i].steps) step -= stages_[i++].steps;
        return i;
    }

private:
    std::vector<stage> stages_;
};

}  // namespace llm::train
