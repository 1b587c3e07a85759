// SPDX-License-Identifier: Apache-2.0
// What a training run reports per step: one JSON object per line (metrics.jsonl) and a
// progress line (step/N, loss, lr, tokens/s, ETA).
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/json.hpp>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace llm::train {

/// The metrics of one step: the batch's mean loss before the update, the learning rate used,
/// the gradient norm before clipping, the throughput; whether the batch was skipped (and why);
/// and any further named numbers (e.g. "val_loss", "tokens").
struct step_metrics {
    std::int64_t step = 0;                                ///< the update's index (0-based)
    double loss = 0;                                      ///< mean cross-entropy of the batch, before the update
    double lr = 0;                                        ///< the learning rate of the update
    double grad_norm = 0;                                 ///< global gradient norm before clipping
    double tokens_per_s = 0;                              ///< throughput of the step
    bool skipped = false;                                 ///< the batch was skipped (loss_guard)
    std::string reason{};                                 ///< why it was skipped
    std::vector<std::pair<std::string, double>> extra{};  ///< further fields, in order
};

namespace detail {

// The shortest decimal that reads back as x; NaN and infinities as null (JSON has neither).
inline std::string json_number(double x) {
    if (!std::isfinite(x)) return "null";
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}

}  // namespace detail

/// The JSON object of one step, on one line without the newline:
/// `{"step": 12, "loss": 3.2861, "lr": 6e-04, "grad_norm": 1.04, "tokens_per_s": 5231.5}`, then
/// `"skipped": true, "reason": "..."` for a skipped batch, then the extra fields. Numbers are the
/// shortest decimals that read back exactly; NaN and infinities are written as null.
/// Example: `std::string line = llm::train::metrics_json({.step = 0, .loss = 10.9, .lr = 6e-4});`
inline std::string metrics_json(const step_metrics& m) {
    std::string s = "{\"step\": " + std::to_string(m.step) + ", \"loss\": " + detail::json_number(m.loss) +
                    ", \"lr\": " + detail::json_number(m.lr) + ", \"grad_norm\": " + detail::json_number(m.grad_norm) +
                    ", \"tokens_per_s\": " + detail::json_number(m.tokens_per_s);
    if (m.skipped) s += ", \"skipped\": true, \"reason\": " + io::json_quote(m.reason);
    for (const auto& [k, v] : m.extra) s += ", " + io::json_quote(k) + ": " + detail::json_number(v);
    s += "}";
    return s;
}

/// A metrics.jsonl file: one metrics_json line per step, flushed after each line so a crashed
/// or killed run keeps every finished step. `append` continues the file of a resumed run.
/// Example: `llm::train::metrics_log log("metrics.jsonl"); log.write({.step = 0, .loss = 10.9});`
class metrics_log {
public:
    /// Opens `path` for writing (truncating), or for appending.
    explicit metrics_log(const std::string& path, bool append = false)
        : path_(path), f_(std::fopen(path.c_str(), append ? "ab" : "wb")) {
        check(f_ != nullptr, "metrics_log: cannot open '", path, "': ", std::strerror(errno));
    }
    metrics_log(const metrics_log&) = delete;
    metrics_log& operator=(const metrics_log&) = delete;
    /// Closes the file.
    ~metrics_log() {
        if (f_) std::fclose(f_);
    }
    /// Writes one line and flushes it.
    void write(const step_metrics& m) {
        const std::string line = metrics_json(m) + "\n";
        check(std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0, "metrics_log: writing '",
              path_, "' failed: ", std::strerror(errno));
    }

private:
    std::string path_;
    std::FILE* f_;
};

/// The progress line of a step: `step 120/5000 | loss 3.2861 | lr 6.00e-04 | 5232 tok/s | ETA 1h02m`
/// (ETA from the mean seconds per step so far; `--` until known).
/// Example: `std::puts(llm::train::progress_line(step + 1, steps, loss, lr, tok_s, elapsed_s).c_str());`
inline std::string progress_line(std::int64_t done, std::int64_t total, double loss, double lr, double tokens_per_s,
                                 double elapsed_seconds) {
    char eta[32] = "--";
    if (done > 0 && total >= done && elapsed_seconds > 0) {
        const auto left = static_cast<std::int64_t>(elapsed_seconds / static_cast<double>(done) * static_cast<double>(total - done) + 0.5);
        if (left >= 3600)
            std::snprintf(eta, sizeof eta, "%lldh%02lldm", static_cast<long long>(left / 3600), static_cast<long long>(left % 3600 / 60));
        else
            std::snprintf(eta, sizeof eta, "%lldm%02llds", static_cast<long long>(left / 60), static_cast<long long>(left % 60));
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "step %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s", static_cast<long long>(done),
                  static_cast<long long>(total), loss, lr, tokens_per_s, eta);
    return buf;
}

}  // namespace llm::train
