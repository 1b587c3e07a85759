// SPDX-License-Identifier: Apache-2.0
// Sampling: logit processors (an open concept), the seeded per-sequence RNG, and the sampler
// that turns a row of logits into the next token (with log-probs on request).
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/random.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

namespace llm::generate {

/// What a logit processor may read besides the logits: the sequence's tokens so far (prompt
/// and generated) and how many of them are the prompt.
struct sample_context {
    std::span<const std::int32_t> tokens;  ///< every token of the sequence so far
    std::size_t prompt_length = 0;         ///< the first prompt_length of tokens are the prompt
};

/// A logit processor: `p.process(logits, ctx)` rewrites a row of logits [vocab] in place
/// (a removed token gets -infinity). The sampler runs its processors in order, then picks the
/// token (argmax when greedy, else a draw from the softmax). A user's processor is one type
/// with this member, anywhere (tested with one outside llm::).
/// Example: `static_assert(llm::generate::logit_processor<llm::generate::top_k>);`
template <class P>
concept logit_processor = requires(P& p, std::span<float> logits, const sample_context& ctx) {
    { p.process(logits, ctx) };
};

/// Divides the logits by `value` (> 0). Temperature 0 is greedy: set sampler_options::greedy.
/// Example: `llm::generate::temperature{0.7f}`
struct temperature {
    float value = 1.0f;  ///< the temperature
    /// logits /= value.
    void process(std::span<float> logits, const sample_context&) const {
        llm::check(value > 0.0f, "temperature: ", value, " must be > 0 (use greedy sampling for 0)");
        const float inv = 1.0f / value;
        for (float& l : logits) {
            l *= inv;
        }
    }
};

namespace detail {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

/// Sorted (descending logit) indices of the finite logits, in a buffer reused across calls.
inline std::span<std::int32_t> sorted_candidates(std::vector<std::int32_t>& buf, std::span<const float> logits) {
    buf.resize(logits.size());  // capacity kept: no allocation once warmed
    std::size_t n = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
        if (logits[i] != neg_inf) {
            buf[n++] = static_cast<std::int32_t>(i);
        }
    }
    // ties broken by the smaller id, so the order (and every result) is deterministic
    std::sort(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n), [&](std::int32_t a, std::int32_t b) {
        return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)] ||
               (logits[static_cast<std::size_t>(a)] == logits[static_cast<std::size_t>(b)] && a < b);
    });
    return {buf.data(), n};
}

/// Softmax probabilities of the sorted candidates into probs (same order).
inline void sorted_probs(std::vector<double>& probs, std::span<const std::int32_t> idx, std::span<const float> logits) {
    probs.resize(idx.size());
    if (idx.empty()) {
        return;
    }
    const double m = logits[static_cast<std::size_t>(idx[0])];
    double sum = 0;
    for (std::size_t i = 0; i < idx.size(); ++i) {
        probs[i] = std::exp(static_cast<double>(logits[static_cast<std::size_t>(idx[i])]) - m);
        sum += probs[i];
    }
    for (double& p : probs) {
        p /= sum;
    }
}

}  // namespace detail

/// Keeps the k largest logits (ties at the k-th value kept in id order; k = 0 keeps all).
/// Example: `llm::generate::top_k{40}`
struct top_k {
    std::size_t k = 0;  ///< tokens kept (0: all)
    top_k() = default;
    /// Keeps the k largest.
    explicit top_k(std::size_t keep) : k(keep) {}
    /// Sets every logit outside the top k to -infinity.
    void process(std::span<float> logits, const sample_context&) {
        if (k == 0 || k >= logits.size()) {
            return;
        }
        auto idx = detail::sorted_candidates(buf_, logits);
        for (std::size_t i = k; i < idx.size(); ++i) {
            logits[static_cast<std::size_t>(idx[i])] = detail::neg_inf;
        }
    }

private:
    std::vector<std::int32_t> buf_;
};

/// Nucleus sampling (Holtzman et al.): keeps the smallest set of most likely tokens whose
/// probability sum reaches p (at least one token). p >= 1 keeps all.
/// Example: `llm::generate::top_p{0.9f}`
struct top_p {
    float p = 1.0f;  ///< cumulative probability kept
    top_p() = default;
    /// Keeps the nucleus of mass q.
    explicit top_p(float q) : p(q) {}
    /// Sets the logits outside the nucleus to -infinity.
    void process(std::span<float> logits, const sample_context&) {
        if (p >= 1.0f) {
            return;
        }
        auto idx = detail::sorted_candidates(buf_, logits);
        detail::sorted_probs(probs_, idx, logits);
        double cum = 0;
        std::size_t keep = 0;
        while (keep < idx.size()) {
            cum += probs_[keep++];
            if (cum >= static_cast<double>(p)) {
                break;
            }
        }
        for (std::size_t i = keep; i < idx.size(); ++i) {
            logits[static_cast<std::size_t>(idx[i])] = detail::neg_inf;
        }
    }

private:
    std::vector<std::int32_t> buf_;
    std::vector<double> probs_;
};

/// Min-p: keeps the tokens whose probability is at least p times the most likely one's.
/// Example: `llm::generate::min_p{0.05f}`
struct min_p {
    float p = 0.0f;  ///< relative threshold (0: keep all)
    /// Sets the logits below max_logit + log(p) to -infinity.
    void process(std::span<float> logits, const sample_context&) const {
        if (p <= 0.0f || logits.empty()) {
            return;
        }
        const float m = *std::max_element(logits.begin(), logits.end());
        const float cut = m + std::log(p);
        for (float& l : logits) {
            l = l < cut ? detail::neg_inf : l;
        }
    }
};

/// Locally typical sampling (Meister et al., transformers' TypicalLogitsWarper): keeps the
/// tokens whose surprisal is closest to the entropy until their probability sum reaches p.
/// Example: `llm::generate::typical{0.95f}`
struct typical {
    float p = 1.0f;  ///< cumulative probability kept
    typical() = default;
    /// Keeps the typical set of mass q.
    explicit typical(float q) : p(q) {}
    /// Sets the logits outside the typical set to -infinity.
    void process(std::span<float> logits, const sample_context&) {
        if (p >= 1.0f) {
            return;
        }
        auto idx = detail::sorted_candidates(buf_, logits);
        detail::sorted_probs(probs_, idx, logits);
        double entropy = 0;
        for (double q : probs_) {
            entropy -= q > 0 ? q * std::log(q) : 0.0;
        }
        dev_.resize(idx.size());
        order_.resize(idx.size());
        for (std::size_t i = 0; i < idx.size(); ++i) {
            dev_[i] = probs_[i] > 0 ? std::abs(-std::log(probs_[i]) - entropy) : std::numeric_limits<double>::infinity();
            order_[i] = i;
        }
        // ties keep the probability order (std::sort with the index as tie-break: stable_sort would allocate)
        std::sort(order_.begin(), order_.end(), [&](std::size_t a, std::size_t b) { return dev_[a] < dev_[b] || (dev_[a] == dev_[b] && a < b); });
        double cum = 0;
        std::size_t keep = 0;
        while (keep < order_.size()) {
            cum += probs_[order_[keep++]];
            if (cum >= static_cast<double>(p)) {
                break;
            }
        }
        for (std::size_t i = keep; i < order_.size(); ++i) {
            logits[static_cast<std::size_t>(idx[order_[i]])] = detail::neg_inf;
        }
    }

private:
    std::vector<std::int32_t> buf_;
    std::vector<double> probs_, dev_;
    std::vector<std::size_t> order_;
};

/// Repetition penalty (CTRL; transformers' and llama.cpp's): a logit of a token already in the
/// sequence is divided by `penalty` when positive, multiplied when negative. `prompt` includes
/// the prompt's tokens (transformers does; llama.cpp's window is the last tokens).
/// Example: `llm::generate::repetition_penalty{1.1f}`
struct repetition_penalty {
    float penalty = 1.0f;  ///< 1: none
    bool prompt = true;    ///< whether prompt tokens count
    repetition_penalty() = default;
    /// A penalty r, counting the prompt's tokens when with_prompt.
    explicit repetition_penalty(float r, bool with_prompt = true) : penalty(r), prompt(with_prompt) {}
    /// Penalises each distinct seen token once.
    void process(std::span<float> logits, const sample_context& ctx) {
        if (penalty == 1.0f) {
            return;
        }
        seen_.assign(logits.size(), 0);
        const std::size_t from = prompt ? 0 : ctx.prompt_length;
        for (std::size_t i = from; i < ctx.tokens.size(); ++i) {
            const auto t = static_cast<std::size_t>(ctx.tokens[i]);
            if (t < logits.size() && !seen_[t]) {
                seen_[t] = 1;
                logits[t] = logits[t] > 0 ? logits[t] / penalty : logits[t] * penalty;
            }
        }
    }

private:
    std::vector<unsigned char> seen_;
};

/// Frequency and presence penalties (OpenAI's): logit -= frequency * count + presence * (count > 0),
/// counting generated tokens only.
/// Example: `llm::generate::frequency_presence_penalty{0.5f, 0.2f}`
struct frequency_presence_penalty {
    float frequency = 0.0f;  ///< per occurrence
    float presence = 0.0f;   ///< once, for any occurrence
    frequency_presence_penalty() = default;
    /// Penalties per occurrence (f) and for presence (pr).
    frequency_presence_penalty(float f, float pr) : frequency(f), presence(pr) {}
    /// Subtracts the penalties from the generated tokens' logits.
    void process(std::span<float> logits, const sample_context& ctx) {
        if (frequency == 0.0f && presence == 0.0f) {
            return;
        }
        count_.assign(logits.size(), 0);
        for (std::size_t i = ctx.prompt_length; i < ctx.tokens.size(); ++i) {
            const auto t = static_cast<std::size_t>(ctx.tokens[i]);
            if (t < logits.size()) {
                ++count_[t];
            }
        }
        for (std::size_t t = 0; t < logits.size(); ++t) {
            if (count_[t] > 0) {
                logits[t] -= frequency * static_cast<float>(count_[t]) + presence;
            }
        }
    }

private:
    std::vector<std::uint32_t> count_;
};

/// Generation's generator: llm::xoshiro256ss (`<llm/core/random.hpp>`) on stream (seed,
/// sequence index), so the tokens do not depend on thread count or batch composition; uniform()
/// draws doubles (53 bits), which the samplers compare against probabilities.
/// Example: `llm::generate::rng r(42); double u = r.uniform();`
class rng : public llm::xoshiro256ss {
public:
    /// A generator for `seed` and stream `stream` (e.g. the request's index).
    explicit rng(std::uint64_t seed = 0, std::uint64_t stream = 0) noexcept
        : llm::xoshiro256ss(llm::xoshiro256ss::for_stream(seed, stream)) {}
    /// Uniform in [0, 1) with 53 random bits.
    double uniform() noexcept { return uniform_double(); }
};

/// A token with its log-probability.
struct token_logprob {
    std::int32_t token = 0;  ///< token id
    float logprob = 0.0f;    ///< natural log of its probability under the sampled distribution
};

/// The common sampling settings (what the generate tool's flags set); see make_sampler.
struct sampler_options {
    bool greedy = true;                  ///< argmax (temperature 0); otherwise draw
    float temp = 1.0f;                   ///< temperature when not greedy
    std::size_t top_k = 0;               ///< 0: off
    float top_p = 1.0f;                  ///< 1: off
    float min_p = 0.0f;                  ///< 0: off
    float typical_p = 1.0f;              ///< 1: off
    float repeat_penalty = 1.0f;         ///< 1: off
    float frequency_penalty = 0.0f;      ///< 0: off
    float presence_penalty = 0.0f;       ///< 0: off
    std::uint64_t seed = 0;              ///< RNG seed
    std::size_t top_logprobs = 0;        ///< how many top tokens' log-probs to report (0: none)
    bool logprobs = false;               ///< report the chosen token's log-prob
};

/// Turns logits into tokens: runs the processors in order, then picks argmax (greedy) or
/// draws from the softmax with the caller's rng. Buffers are kept, so once warmed (one call at
/// the vocabulary size) a call allocates nothing. Processors: logit_processor types.
/// Example: `llm::generate::sampler s(false, llm::generate::temperature{0.8f}, llm::generate::top_k{40}); auto t = s.sample(row, ctx, r);`
template <logit_processor... Ps>
class sampler {
public:
    /// A sampler with greedy selection or not, and its processors.
    explicit sampler(bool greedy, Ps... ps) : greedy_(greedy), ps_(std::move(ps)...) {}

    /// Whether the pick is argmax.
    [[nodiscard]] bool greedy() const noexcept { return greedy_; }
    /// The processors (to change their settings between calls).
    std::tuple<Ps...>& processors() noexcept { return ps_; }

    /// Applies the processors to logits in place (the sampled distribution's logits).
    void process(std::span<float> logits, const sample_context& ctx) {
        std::apply([&](auto&... p) { (p.process(logits, ctx), ...); }, ps_);
    }

    /// Processes `logits` in place and returns the chosen token; r is used only when not greedy.
    std::int32_t sample(std::span<float> logits, const sample_context& ctx, rng& r) {
        llm::check(!logits.empty(), "sampler::sample: empty logits");
        process(logits, ctx);
        return pick(logits, r);
    }

    /// The pick from already processed logits: argmax (the first maximum) or a softmax draw.
    std::int32_t pick(std::span<const float> logits, rng& r) const {
        std::size_t best = 0;
        for (std::size_t i = 1; i < logits.size(); ++i) {
            best = logits[i] > logits[best] ? i : best;
        }
        llm::check(logits[best] != detail::neg_inf, "sampler: every token was removed by the processors");
        if (greedy_) {
            return static_cast<std::int32_t>(best);
        }
        const double m = logits[best];
        double sum = 0;
        for (float l : logits) {
            sum += std::exp(static_cast<double>(l) - m);
        }
        double u = r.uniform() * sum;
        std::size_t last = best;
        for (std::size_t i = 0; i < logits.size(); ++i) {
            if (logits[i] == detail::neg_inf) {
                continue;
            }
            last = i;
            u -= std::exp(static_cast<double>(logits[i]) - m);
            if (u < 0) {
                return static_cast<std::int32_t>(i);
            }
        }
        return static_cast<std::int32_t>(last);  // rounding: the last candidate
    }

private:
    bool greedy_;
    std::tuple<Ps...> ps_;
};

/// The log-softmax of processed logits at `token`, and the `n` most likely tokens with theirs
/// (written into top, which is resized to min(n, candidates)).
/// Example: `float lp = llm::generate::logprobs(row, tok, 5, top);`
inline float logprobs(std::span<const float> logits, std::int32_t token, std::size_t n, std::vector<token_logprob>& top) {
    float m = detail::neg_inf;
    for (float l : logits) {
        m = std::max(m, l);
    }
    double sum = 0;
    for (float l : logits) {
        sum += std::exp(static_cast<double>(l) - m);
    }
    const double lse = m + std::log(sum);
    top.clear();
    for (std::size_t i = 0; i < logits.size() && n > 0; ++i) {
        if (logits[i] == detail::neg_inf) {
            continue;
        }
        const token_logprob t{static_cast<std::int32_t>(i), static_cast<float>(logits[i] - lse)};
        auto better = [](const token_logprob& a, const token_logprob& b) {
            return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token);
        };
        if (top.size() < n) {
            top.push_back(t);
            std::push_heap(top.begin(), top.end(), better);
        } else if (better(t, top.front())) {
            std::pop_heap(top.begin(), top.end(), better);
            top.back() = t;
            std::push_heap(top.begin(), top.end(), better);
        }
    }
    std::sort_heap(top.begin(), top.end(), [](const token_logprob& a, const token_logprob& b) {
        return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token);
    });
    return static_cast<float>(logits[static_cast<std::size_t>(token)] - lse);
}

/// The sampler the usual settings describe: penalties, then temperature, top-k, typical,
/// top-p, min-p (llama.cpp's default order), greedy when o.greedy.
using standard_sampler =
    sampler<repetition_penalty, frequency_presence_penalty, temperature, top_k, typical, top_p, min_p>;

/// Builds the standard_sampler of `o`.
/// Example: `auto s = llm::generate::make_sampler({.greedy = false, .temp = 0.8f, .top_p = 0.95f});`
inline standard_sampler make_sampler(const sampler_options& o) {
    llm::check(o.greedy || o.temp > 0.0f, "make_sampler: temperature ", o.temp, " must be > 0 when sampling");
    llm::check(o.top_p > 0.0f && o.typical_p > 0.0f && o.min_p >= 0.0f && o.min_p <= 1.0f, "make_sampler: top_p ", o.top_p,
               ", typical_p ", o.typical_p, " must be in (0, 1], min_p ", o.min_p, " in [0, 1]");
    llm::check(o.repeat_penalty > 0.0f, "make_sampler: repeat_penalty ", o.repeat_penalty, " must be > 0");
    return standard_sampler(o.greedy, repetition_penalty{o.repeat_penalty, true},
                            frequency_presence_penalty{o.frequency_penalty, o.presence_penalty}, temperature{o.greedy ? 1.0f : o.temp},
                            top_k{o.top_k}, typical{o.typical_p}, top_p{o.top_p}, min_p{o.min_p});
}

}  // namespace llm::generate
