// SPDX-License-Identifier: Apache-2.0
// Skipping bad batches: a loss that is NaN or infinite, or that spikes above k times the
// running mean of recent accepted losses, is refused before the update, with a reason to log.
#pragma once

#include <llm/core/error.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace llm::train {

/// When loss_guard refuses a batch.
/// Example: `llm::train::loss_guard_options o{.spike_factor = 3.0, .window = 100, .min_history = 10};`
struct loss_guard_options {
    double spike_factor = 3.0;      ///< refuse a loss > spike_factor x the running mean
    std::size_t window = 100;       ///< the running mean is over the last `window` accepted losses
    std::size_t min_history = 10;   ///< no spike test until this many losses were accepted
};

/// The decision on one batch: skip it or not, and why (for the log).
struct loss_verdict {
    bool skip = false;   ///< true: do not update on this batch
    std::string reason{};  ///< empty when accepted; else e.g. "loss 7.1 > 3 x running mean 2.05"
    double loss = 0;     ///< the loss tested
    double mean = 0;     ///< the running mean before this batch (NaN when there is no history)
};

/// The loss-spike / NaN guard large runs use: `check(loss)` before the optimizer step; a
/// skipped batch leaves the running mean unchanged. Its state (accepted history, counters) can
/// be saved and restored, so a resumed run decides exactly as the uninterrupted one.
/// Example:
/// ```
/// llm::train::loss_guard guard;
/// if (auto v = guard.check(loss); v.skip) log(v.reason); else opt.step(walk, pool);
/// ```
class loss_guard {
public:
    /// With options (spike_factor > 1, window >= 1).
    explicit loss_guard(const loss_guard_options& o = {}) : o_(o) {
        llm::check(o.spike_factor > 1 && o.window >= 1, "loss_guard: spike_factor = ", o.spike_factor, " must be > 1 and window = ",
              o.window, " >= 1");
    }

    /// Decides on a batch's loss; an accepted loss enters the running mean.
    loss_verdict check(double loss) {
        loss_verdict v;
        v.loss = loss;
        v.mean = mean();
        if (!std::isfinite(loss)) {
            v.skip = true;
            v.reason = std::isnan(loss) ? "loss is NaN" : "loss is infinite";
        } else if (history_.size() >= o_.min_history && loss > o_.spike_factor * v.mean) {
            v.skip = true;
            std::ostringstream s;
            s << "loss " << loss << " > " << o_.spike_factor << " x running mean " << v.mean;
            v.reason = s.str();
        }
        if (v.skip) {
            ++skipped_;
            return v;
        }
        if (history_.size() < o_.window) {
            history_.push_back(loss);
        } else {
            history_[next_] = loss;
            next_ = (next_ + 1) % o_.window;
        }
        return v;
    }

    /// The mean of the accepted losses in the window (NaN when there are none).
    double mean() const noexcept {
        if (history_.empty()) return std::nan("");
        double s = 0;
        for (std::size_t i = 0; i < history_.size(); ++i) s += history_[(next_ + i) % history_.size()];
        return s / static_cast<double>(history_.size());
    }
    /// Batches skipped so far.
    std::int64_t skipped() const noexcept { return skipped_; }
    /// The accepted losses in the window, oldest first (for saving).
    std::vector<double> history() const {
        std::vector<double> h;
        for (std::size_t i = 0; i < history_.size(); ++i) h.push_back(history_[(next_ + i) % history_.size()]);
        return h;
    }
    /// Restores a saved state: the history (oldest first, at most `window` values) and the count of skips.
    void restore(const std::vector<double>& history, std::int64_t skipped) {
        llm::check(history.size() <= o_.window, "loss_guard::restore: ", history.size(), " losses exceed the window of ",
                   o_.window);
        llm::check(skipped >= 0, "loss_guard::restore: skipped = ", skipped, " must be >= 0");
        history_ = history;
        next_ = 0;
        skipped_ = skipped;
    }
    /// The options.
    const loss_guard_options& options() const noexcept { return o_; }

private:
    loss_guard_options o_;
    std::vector<double> history_;
    std::size_t next_ = 0;
    std::int64_t skipped_ = 0;
};

}  // namespace llm::train
