// SPDX-License-Identifier: Apache-2.0
// Speculative decoding (Leviathan et al. 2023): a draft model proposes k tokens, the target
// checks all of them in one multi-token step (GEMMs over k + 1 rows), a rejected one
// is replaced by a draw from the residual distribution, so the output has the target's
// distribution (greedy: exactly the target's greedy tokens).
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/generate/engine.hpp>
#include <llm/generate/sampling.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace llm::generate {

/// Softmax of processed logits into probs (removed tokens: probability 0).
/// Example: `llm::generate::softmax_probs(row, probs);`
inline void softmax_probs(std::span<const float> logits, std::vector<double>& probs) {
    probs.resize(logits.size());
    float m = detail::neg_inf;
    for (float l : logits) {
        m = std::max(m, l);
    }
    double sum = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
        probs[i] = logits[i] == detail::neg_inf ? 0.0 : std::exp(static_cast<double>(logits[i]) - m);
        sum += probs[i];
    }
    for (double& p : probs) {
        p /= sum;
    }
}

/// A draw from the distribution probs (summing to 1).
/// Example: `std::int32_t t = llm::generate::draw(probs, r);`
inline std::int32_t draw(std::span<const double> probs, rng& r) {
    double u = r.uniform();
    std::size_t last = 0;
    for (std::size_t i = 0; i < probs.size(); ++i) {
        if (probs[i] <= 0) {
            continue;
        }
        last = i;
        u -= probs[i];
        if (u < 0) {
            return static_cast<std::int32_t>(i);
        }
    }
    return static_cast<std::int32_t>(last);
}

/// Leviathan et al.'s acceptance rule for a draft token d drawn from q, under target p: accept
/// with probability min(1, p(d) / q(d)) (returns d), otherwise return a draw from
/// norm(max(0, p - q)). The returned token is distributed as p. `residual` is scratch.
/// Example: `auto t = llm::generate::accept_or_resample(p, q, d, r, scratch); bool accepted = t == d;`
inline std::int32_t accept_or_resample(std::span<const double> p, std::span<const double> q, std::int32_t d, rng& r,
                                       std::vector<double>& residual, bool* accepted = nullptr) {
    const auto i = static_cast<std::size_t>(d);
    const bool ok = q[i] > 0 && r.uniform() * q[i] < p[i];
    if (accepted != nullptr) {
        *accepted = ok;
    }
    if (ok) {
        return d;
    }
    residual.resize(p.size());
    double sum = 0;
    for (std::size_t t = 0; t < p.size(); ++t) {
        residual[t] = std::max(0.0, p[t] - q[t]);
        sum += residual[t];
    }
    if (sum <= 0) {  // p == q up to rounding: any draw from p is right
        return draw(p, r);
    }
    for (double& x : residual) {
        x /= sum;
    }
    return draw(residual, r);
}

/// Counts of a speculative run.
struct speculative_stats {
    std::size_t rounds = 0;    ///< draft-then-verify rounds
    std::size_t proposed = 0;  ///< draft tokens proposed
    std::size_t accepted = 0;  ///< of those, accepted by the target
    /// accepted / proposed (0 when none was proposed).
    [[nodiscard]] double acceptance_rate() const noexcept {
        return proposed == 0 ? 0.0 : static_cast<double>(accepted) / static_cast<double>(proposed);
    }
};

/// Generates up to max_tokens tokens after `prompt` with target model `tm` (parameters tp) and
/// draft model `dm` (dp), k draft tokens per round, one sequence, the sampler settings o for
/// both (greedy: the target's greedy tokens exactly; sampling: the target's distribution).
/// The target checks the k proposals in one multi-token step (the model's step_tokens over its
/// last token and the k drafts, every row's logits: row j is the target's distribution after
/// draft j - 1); the prompt is prefilled the same way (chunks of 256 tokens) in both models. A
/// rejected proposal rolls both caches back (contiguous_kv_cache::truncate), so both models
/// need a KV-cache state (llm::generate::kv_cached_state: not Mamba's recurrent state, which
/// cannot be rolled back). Returns the new tokens.
/// Example: `auto out = llm::generate::speculative_generate(target, tp, draft, dp, prompt, 32, 4, {.greedy = true}, stats, pool);`
template <class TM, class TP, class DM, class DP>
    requires kv_cached_state<typename TM::state> && kv_cached_state<typename DM::state>
std::vector<std::int32_t> speculative_generate(const TM& tm, const TP& tp, const DM& dm, const DP& dp, std::span<const std::int32_t> prompt,
                                               std::size_t max_tokens, std::size_t k, const sampler_options& o, speculative_stats& stats,
                                               parallel::policy auto&& exec) {
    const std::size_t vocab = tm.config().vocab;
    llm::check(dm.config().vocab == vocab, "speculative_generate: the draft's vocabulary (", dm.config().vocab,
               ") differs from the target's (", vocab, ")");
    llm::check(k > 0, "speculative_generate: k must be > 0");
    llm::check(!prompt.empty(), "speculative_generate: empty prompt");
    for (std::size_t i = 0; i < prompt.size(); ++i) {
        llm::check(prompt[i] >= 0 && static_cast<std::size_t>(prompt[i]) < vocab, "speculative_generate: prompt token ", i, " is ",
                   prompt[i], ", outside the vocabulary of ", vocab);
    }
    const std::size_t context = prompt.size() + max_tokens + k + 1;
    auto ts = tm.make_state(1, context);
    auto ds = dm.make_state(1, context);
    tensor<float, llm::dims<2>> tl(k + 1, vocab), dl(1, vocab);
    workspace ws;
    auto tsamp = make_sampler(o), dsamp = make_sampler(o);
    rng r(o.seed, 0);
    std::vector<std::int32_t> tokens(prompt.begin(), prompt.end());
    const std::size_t start = tokens.size();
    std::vector<std::vector<double>> q(k);
    std::vector<float> qlog(vocab);
    std::vector<double> p, residual;
    std::vector<std::int32_t> drafts(k), verify(k + 1);
    auto feed = [&](const auto& m, const auto& params, auto& st, auto& logits, std::int32_t id) {
        st.position = st.kv.length(0);
        m.step(logits.view(), st, model::token_ids(&id, 1), params, ws, exec);
    };
    auto row = [&](auto& logits, std::size_t j = 0) { return std::span<float>(logits.data() + j * vocab, vocab); };
    // the tokens [length, n - 1) a cache lacks, in chunks through step_tokens, no logits
    auto catch_up = [&](const auto& m, const auto& params, auto& st, std::size_t n) {
        constexpr std::size_t chunk = 256;
        while (st.kv.length(0) + 1 < n) {
            const std::size_t at = st.kv.length(0);
            const std::size_t c = std::min(chunk, n - 1 - at);
            m.step_tokens(model::activations(tl.data(), llm::dims<2>(0, vocab)), st, 0, model::token_ids(tokens.data() + at, c), params,
                          ws, exec);
        }
    };
    auto verify_step = [&](std::size_t c) {
        tm.step_tokens(model::activations(tl.data(), llm::dims<2>(c, vocab)), ts, 0, model::token_ids(verify.data(), c), tp, ws, exec);
    };
    while (tokens.size() - start < max_tokens) {
        const std::size_t n = tokens.size();
        // both caches hold every token but the last
        catch_up(tm, tp, ts, n);
        catch_up(dm, dp, ds, n);
        const std::size_t kk = std::min(k, max_tokens - (n - start));
        // draft proposes kk tokens
        std::int32_t last = tokens[n - 1];
        for (std::size_t i = 0; i < kk; ++i) {
            feed(dm, dp, ds, dl, last);
            const sample_context ctx{tokens, prompt.size()};
            auto lg = row(dl);
            dsamp.process(lg, ctx);
            softmax_probs(lg, q[i]);
            last = o.greedy ? dsamp.pick(lg, r) : draw(q[i], r);
            drafts[i] = last;
        }
        ++stats.rounds;
        stats.proposed += kk;
        // target checks them: its last token and the kk drafts in one multi-token step
        verify[0] = tokens[n - 1];
        std::copy_n(drafts.begin(), kk, verify.begin() + 1);
        verify_step(kk + 1);
        std::size_t j = 0;
        bool rejected = false;
        for (; j < kk; ++j) {
            const sample_context ctx{tokens, prompt.size()};
            auto lg = row(tl, j);
            tsamp.process(lg, ctx);
            std::int32_t t;
            bool ok;
            if (o.greedy) {
                t = tsamp.pick(lg, r);
                ok = t == drafts[j];
            } else {
                softmax_probs(lg, p);
                t = accept_or_resample(p, q[j], drafts[j], r, residual, &ok);
            }
            tokens.push_back(t);
            if (!ok) {
                rejected = true;
                break;
            }
            ++stats.accepted;
            if (tokens.size() - start >= max_tokens) {
                break;
            }
        }
        if (!rejected && tokens.size() - start < max_tokens) {
            // all accepted: the target's next distribution is already computed, a bonus token
            const sample_context ctx{tokens, prompt.size()};
            auto lg = row(tl, kk);
            tsamp.process(lg, ctx);
            tokens.push_back(tsamp.pick(lg, r));
        }
        // roll the caches back to every token but the last
        const std::size_t keep = tokens.size() - 1;
        if (ds.kv.length(0) > keep) {
            ds.kv.truncate(0, keep);
        }
        if (ts.kv.length(0) > keep) {
            ts.kv.truncate(0, keep);
        }
    }
    return {tokens.begin() + static_cast<std::ptrdiff_t>(start), tokens.end()};
}

}  // namespace llm::generate
