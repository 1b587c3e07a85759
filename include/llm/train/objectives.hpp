// SPDX-License-Identifier: Apache-2.0
// Fine-tuning objectives through a whole model: SFT on (prompt, response) with the loss masked
// to the response tokens, and preference optimisation on (prompt, chosen, rejected) with the
// align module's paired losses (DPO family, SimPO, ORPO, CPO), a frozen reference model or
// precomputed reference log-probs, and TRL's logged reward statistics.
#pragma once

#include <llm/align/logprobs.hpp>
#include <llm/align/kto.hpp>
#include <llm/align/pair_loss.hpp>
#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/io/file.hpp>
#include <llm/io/json.hpp>
#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llm::train {

/// One SFT example: prompt and response token ids.
struct sft_example {
    std::vector<std::int32_t> prompt{};    ///< prompt tokens (no loss)
    std::vector<std::int32_t> response{};  ///< response tokens (the loss is taken on these)
};

/// One preference example: a prompt, the chosen and the rejected response (token ids), and
/// optionally the reference model's summed log-probs of each response (NaN when absent).
struct preference_example {
    std::vector<std::int32_t> prompt{};    ///< prompt tokens
    std::vector<std::int32_t> chosen{};    ///< preferred response
    std::vector<std::int32_t> rejected{};  ///< dispreferred response
    double ref_chosen = std::numeric_limits<double>::quiet_NaN();    ///< precomputed reference log-prob of chosen
    double ref_rejected = std::numeric_limits<double>::quiet_NaN();  ///< precomputed reference log-prob of rejected
};

/// Turns the text of a JSONL field into token ids: `tokenize(text, what)`, `what` naming the file,
/// line and field (for its error messages). read_sft_jsonl and read_preference_jsonl call it for
/// fields that are strings; an empty one (the default) makes a string field an llm::error.
/// Example: `llm::train::text_tokenizer tok = [&](std::string_view s, const std::string&) { return ids_of(s); };`
using text_tokenizer = std::function<std::vector<std::int32_t>(std::string_view text, const std::string& what)>;

namespace detail {

// A field's token ids: an array of ids, or a string tokenized by `tokenize` (ids checked below vocab).
inline std::vector<std::int32_t> token_array(const io::json_value& obj, std::string_view key, const std::string& what,
                                             std::size_t vocab, const text_tokenizer& tokenize = {}) {
    const std::string w = what + ": \"" + std::string(key) + "\"";
    const io::json_value& field = obj.at(key, w);
    if (field.is_string()) {
        llm::check(static_cast<bool>(tokenize), w, " is text, and no tokenizer was given (a tokenizer.json) to turn it into token ids");
        std::vector<std::int32_t> out = tokenize(field.as_string(w), w);
        for (const std::int32_t id : out)
            llm::check(id >= 0 && static_cast<std::size_t>(id) < vocab, w, ": the tokenizer gave id ", id, ", outside the model's vocabulary of ", vocab);
        return out;
    }
    std::vector<std::int32_t> out;
    for (const io::json_value& v : field.as_array(w))
        out.push_back(static_cast<std::int32_t>(v.as_int(w, 0, static_cast<std::int64_t>(vocab) - 1)));
    return out;
}

template <class F>
void for_each_jsonl(const std::string& path, F&& f) {
    const std::string text = io::read_file(path, std::size_t{1} << 34, "jsonl");
    std::istringstream lines(text);
    std::string line;
    std::size_t n = 0;
    while (std::getline(lines, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string what = path + " line " + std::to_string(n);
        f(io::parse_json(line, what), what);
    }
}

// One row of T inputs: sequence s = prompt + response truncated to T + 1 tokens; ids[t] = s[t],
// labels[t] = s[t + 1], mask[t] = 1 where s[t + 1] is a response token.
inline std::size_t pack_row(std::int32_t* ids, std::int32_t* labels, std::uint8_t* mask, std::size_t T,
                            const std::vector<std::int32_t>& prompt, const std::vector<std::int32_t>& response) {
    std::size_t counted = 0;
    const std::size_t n = std::min(prompt.size() + response.size(), T + 1);
    auto at = [&](std::size_t i) { return i < prompt.size() ? prompt[i] : response[i - prompt.size()]; };
    for (std::size_t t = 0; t < T; ++t) {
        ids[t] = t < n ? at(t) : 0;
        const bool in = t + 1 < n && t + 1 >= prompt.size();
        labels[t] = in ? at(t + 1) : 0;
        mask[t] = in ? 1 : 0;
        counted += in ? 1 : 0;
    }
    return counted;
}

}  // namespace detail

/// Reads SFT examples from JSONL, one object per line with token-id arrays
/// `{"prompt": [..], "response": [..]}` (ids below `vocab`); blank lines are skipped. A missing
/// key, a non-integer or an id outside the vocabulary is llm::error naming the file and line.
/// A field may instead be a string: `tokenize` turns it into ids (prompt and response each on
/// their own, then concatenated, as TRL tokenizes them); without one a string is llm::error.
/// Example: `auto ex = llm::train::read_sft_jsonl("sft.jsonl", 50257);`
inline std::vector<sft_example> read_sft_jsonl(const std::string& path, std::size_t vocab, const text_tokenizer& tokenize = {}) {
    std::vector<sft_example> out;
    detail::for_each_jsonl(path, [&](const io::json_value& v, const std::string& what) {
        out.push_back({detail::token_array(v, "prompt", what, vocab, tokenize), detail::token_array(v, "response", what, vocab, tokenize)});
        llm::check(!out.back().response.empty(), "read_sft_jsonl: ", what, ": empty response");
    });
    llm::check(!out.empty(), "read_sft_jsonl: '", path, "' holds no examples");
    return out;
}

/// Reads preference examples from JSONL: `{"prompt": [..], "chosen": [..], "rejected": [..]}`
/// token-id arrays, optionally `"ref_chosen_logp"` and `"ref_rejected_logp"` (the reference
/// model's summed log-probs of the responses, as TRL's precompute_ref_log_probs stores them).
/// Fields may be strings, tokenized by `tokenize` each on its own (see read_sft_jsonl).
/// Example: `auto ex = llm::train::read_preference_jsonl("pairs.jsonl", 50257);`
inline std::vector<preference_example> read_preference_jsonl(const std::string& path, std::size_t vocab, const text_tokenizer& tokenize = {}) {
    std::vector<preference_example> out;
    detail::for_each_jsonl(path, [&](const io::json_value& v, const std::string& what) {
        preference_example e{detail::token_array(v, "prompt", what, vocab, tokenize), detail::token_array(v, "chosen", what, vocab, tokenize),
                             detail::token_array(v, "rejected", what, vocab, tokenize)};
        llm::check(!e.chosen.empty() && !e.rejected.empty(), "read_preference_jsonl: ", what, ": empty chosen or rejected response");
        if (const auto* c = v.find("ref_chosen_logp")) e.ref_chosen = c->as_number(what + ": ref_chosen_logp");
        if (const auto* r = v.find("ref_rejected_logp")) e.ref_rejected = r->as_number(what + ": ref_rejected_logp");
        out.push_back(std::move(e));
    });
    llm::check(!out.empty(), "read_preference_jsonl: '", path, "' holds no examples");
    return out;
}

/// SFT batches: B rows of T tokens, row i the example `(first + i) mod N` packed as prompt +
/// response (truncated to T + 1 tokens, padded); the targets are the next tokens where they are
/// response tokens and -100 elsewhere, so the loss is the mean cross-entropy over response tokens
/// (transformers' loss with prompt labels set to -100).
/// Example: `llm::train::sft_batch<M> sft(model, {.batch = 4, .seq = 128}); sft.fill(examples, k * 4);`
template <class Model>
class sft_batch {
public:
    /// Buffers for `shape`.
    sft_batch(const Model& model, model::batch_shape shape)
        : shape_(shape), ids_(shape.tokens()), targets_(shape.tokens()), mask_(shape.tokens()),
          cache_(model::make_cache(model, arena_, shape)) {}
    sft_batch(const sft_batch&) = delete;
    sft_batch& operator=(const sft_batch&) = delete;

    /// Packs examples first .. first + B - 1 (cyclically). llm::error when a row has no
    /// response token within T + 1 tokens (a prompt too long for --seq).
    void fill(const std::vector<sft_example>& examples, std::size_t first) {
        llm::check(!examples.empty(), "sft_batch::fill: no examples");
        const std::size_t T = shape_.seq;
        for (std::size_t r = 0; r < shape_.batch; ++r) {
            const std::size_t k = (first + r) % examples.size();
            const auto& e = examples[k];
            const std::size_t n = detail::pack_row(ids_.data() + r * T, targets_.data() + r * T, mask_.data() + r * T, T, e.prompt, e.response);
            llm::check(n > 0, "sft_batch::fill: example ", k, " has no response token within ", T + 1, " tokens (prompt of ",
                       e.prompt.size(), ")");
            for (std::size_t t = 0; t < T; ++t)
                if (mask_[r * T + t] == 0) targets_[r * T + t] = -100;
        }
    }
    /// Forward and backward: grads += dloss x d(mean response cross-entropy); returns the loss.
    template <class Params, class Grads>
    float forward_backward(Grads& grads, float dloss, const Model& model, const Params& params, parallel::policy auto&& exec) {
        const model::token_ids ids(ids_.data(), ids_.size());
        const tensor_view<const std::int32_t, llm::dims<1>> y(targets_.data(), targets_.size());
        const float l = model.forward_loss(cache_, ids, y, params, ws_, exec);
        model.backward_loss(grads, dloss, cache_, ids, y, params, ws_, exec);
        return l;
    }
    /// The token ids [B T].
    const std::vector<std::int32_t>& ids() const noexcept { return ids_; }
    /// The targets [B T] (-100 outside the responses).
    const std::vector<std::int32_t>& targets() const noexcept { return targets_; }

private:
    model::batch_shape shape_;
    std::vector<std::int32_t> ids_, targets_;
    std::vector<std::uint8_t> mask_;
    model::arena arena_;
    typename Model::cache cache_;
    workspace ws_;
};

/// A paired preference loss chosen at run time: evaluates the batch loss from pair_inputs and
/// writes pair_outputs (the slopes d_chosen, d_rejected included), as llm::align::pair_loss.
/// Example: `llm::train::preference_loss f = [](auto& out, auto& in) { return llm::align::pair_loss(out, in, "sigmoid"); };`
using preference_loss = std::function<align::pair_stats(const align::pair_outputs<double>&, const align::pair_inputs<double>&)>;

/// Preference batches through a whole model: B pairs as 2B rows of T tokens (chosen rows first,
/// then rejected), each prompt + response; the policy's summed response log-probs come from
/// one forward (llm::align::sequence_logprobs on the logits), the reference's from a forward of
/// the frozen reference parameters or from the examples' precomputed values; the loss's slopes
/// go back through sequence_logprobs_backward and the model's backward. The statistics are
/// TRL's (rewards/chosen, rejected, margins, accuracies, logps).
/// Example:
/// ```
/// llm::train::preference_batch<M> pb(model, 4, 128);
/// pb.fill(examples, 0);
/// auto s = pb.forward_backward(grads, 1.0f, model, params, &ref_params, loss, pool);
/// ```
template <class Model>
class preference_batch {
public:
    /// Buffers for `pairs` pairs of `seq` tokens (2 x pairs rows).
    preference_batch(const Model& model, std::size_t pairs, std::size_t seq)
        : pairs_(pairs), seq_(seq), vocab_(model.config().vocab), ids_(2 * pairs * seq), labels_(2 * pairs * seq), mask_(2 * pairs * seq),
          lse_(2 * pairs, seq), sums_(2 * pairs), tokens_(2 * pairs), ref_(2 * pairs), rows_(2 * pairs),
          cache_(model::make_cache(model, arena_, model::batch_shape{.batch = 2 * pairs, .seq = seq})) {}
    preference_batch(const preference_batch&) = delete;
    preference_batch& operator=(const preference_batch&) = delete;

    /// Packs pairs first .. first + B - 1 (cyclically); keeps their precomputed reference
    /// log-probs (NaN where absent). llm::error when a response has no token within T + 1.
    /// The examples must outlive the next forward_backward_unpaired (it repacks them).
    void fill(const std::vector<preference_example>& examples, std::size_t first) {
        llm::check(!examples.empty(), "preference_batch::fill: no examples");
        const std::size_t T = seq_;
        for (std::size_t r = 0; r < 2 * pairs_; ++r) {
            const std::size_t k = (first + r % pairs_) % examples.size();
            const auto& e = examples[k];
            const bool chosen = r < pairs_;
            const std::size_t n = detail::pack_row(ids_.data() + r * T, labels_.data() + r * T, mask_.data() + r * T, T, e.prompt,
                                                   chosen ? e.chosen : e.rejected);
            llm::check(n > 0, "preference_batch::fill: example ", k, " has no ", chosen ? "chosen" : "rejected",
                       " token within ", T + 1, " tokens (prompt of ", e.prompt.size(), ")");
            ref_[r] = chosen ? e.ref_chosen : e.ref_rejected;
            rows_[r] = {&e.prompt, chosen ? &e.chosen : &e.rejected};
        }
    }

    /// KTO through the model on the filled pairs as 2B unpaired examples (chosen desirable,
    /// rejected undesirable, as TRL unpairs a preference dataset): the KL estimate z_ref is TRL's,
    /// max(0, mean(policy - reference log-probs)) over mismatched (prompt, completion) rows
    /// (row r's prompt with the completion of row 2B - 1 - r, the reversed batch), without
    /// gradient; then `llm::align::unpaired_loss<Policy>` (kto or apo_zero_unpaired) with
    /// `cfg.kl` set, its slopes back through the model. The reference model is required.
    /// grads += dloss x d(loss). Example:
    /// `auto s = pb.forward_backward_unpaired<llm::align::kto>(grads, 1.0f, model, params, ref, {.beta = 0.1}, pool);`
    template <class Policy, class Params, class Grads>
    align::unpaired_stats forward_backward_unpaired(Grads& grads, float dloss, const Model& model, const Params& params, const Params& ref_params,
                                                    align::kto_config cfg, parallel::policy auto&& exec) {
        const std::size_t N = 2 * pairs_, T = seq_;
        const auto saved = rows_;
        for (std::size_t r = 0; r < N; ++r) {
            const std::size_t n = detail::pack_row(ids_.data() + r * T, labels_.data() + r * T, mask_.data() + r * T, T, *saved[r].first,
                                                   *saved[N - 1 - r].second);
            llm::check(n > 0, "preference_batch: the KL row ", r, " has no completion token within ", T + 1, " tokens");
        }
        forward_logprobs(model, params, exec);
        const std::vector<double> kl_pol = sums_;
        forward_logprobs(model, ref_params, exec);
        cfg.kl = align::kto_kl_estimate(tensor_view<const double, llm::dims<1>>(kl_pol.data(), N),
                                        tensor_view<const double, llm::dims<1>>(sums_.data(), N));
        for (std::size_t r = 0; r < N; ++r)
            (void)detail::pack_row(ids_.data() + r * T, labels_.data() + r * T, mask_.data() + r * T, T, *saved[r].first, *saved[r].second);
        forward_logprobs(model, ref_params, exec);
        const std::vector<double> ref = sums_;
        forward_logprobs(model, params, exec);
        std::vector<std::uint8_t> desirable(N);
        for (std::size_t r = 0; r < N; ++r) desirable[r] = r < pairs_ ? 1 : 0;
        std::vector<double> losses(N), rewards(N), d(N);
        const align::unpaired_inputs<double> in{.logps = {sums_.data(), N}, .ref_logps = {ref.data(), N}, .desirable = {desirable.data(), N}};
        const align::unpaired_outputs<double> out{.losses = {losses.data(), N}, .rewards = {rewards.data(), N}, .d_logps = {d.data(), N}};
        const align::unpaired_stats stats = align::unpaired_loss<Policy>(out, in, cfg);
        std::vector<float> d_sum(N);
        for (std::size_t r = 0; r < N; ++r) d_sum[r] = static_cast<float>(dloss * d[r]);
        backward_from_sums(grads, d_sum, model, params, exec);
        return stats;
    }

    /// Summed response log-probs of every row under `params` (chosen rows, then rejected).
    template <class Params>
    const std::vector<double>& logprobs(const Model& model, const Params& params, parallel::policy auto&& exec) {
        forward_logprobs(model, params, exec);
        return sums_;
    }

    /// The batch's loss and gradients: ref_params (frozen reference) or, when null, the
    /// precomputed reference log-probs of fill() (all must be present), or none when the loss is
    /// reference-free (`reference_free`: SimPO, ORPO, CPO). grads += dloss x d(loss).
    template <class Params, class Grads>
    align::pair_stats forward_backward(Grads& grads, float dloss, const Model& model, const Params& params, const Params* ref_params,
                                       const preference_loss& loss, bool reference_free, parallel::policy auto&& exec) {
        const std::size_t B = pairs_;
        std::vector<double> ref(2 * B, 0.0);
        if (!reference_free) {
            if (ref_params != nullptr) {
                forward_logprobs(model, *ref_params, exec);
                ref = sums_;
            } else {
                for (std::size_t r = 0; r < 2 * B; ++r) {
                    llm::check(std::isfinite(ref_[r]), "preference_batch: no reference model and row ", r,
                               " has no precomputed ref_chosen_logp / ref_rejected_logp");
                    ref[r] = ref_[r];
                }
            }
        }
        forward_logprobs(model, params, exec);
        std::vector<double> losses(B), cr(B), rr(B), dc(B), dr(B);
        std::vector<std::size_t> ctok(tokens_.begin(), tokens_.begin() + static_cast<std::ptrdiff_t>(B)),
            rtok(tokens_.begin() + static_cast<std::ptrdiff_t>(B), tokens_.end());
        align::pair_inputs<double> in{.chosen = {sums_.data(), B},
                                      .rejected = {sums_.data() + B, B},
                                      .ref_chosen = reference_free ? tensor_view<const double, llm::dims<1>>{} : tensor_view<const double, llm::dims<1>>{ref.data(), B},
                                      .ref_rejected = reference_free ? tensor_view<const double, llm::dims<1>>{} : tensor_view<const double, llm::dims<1>>{ref.data() + B, B},
                                      .chosen_tokens = {ctok.data(), B},
                                      .rejected_tokens = {rtok.data(), B}};
        align::pair_outputs<double> out{.losses = {losses.data(), B},
                                        .chosen_rewards = {cr.data(), B},
                                        .rejected_rewards = {rr.data(), B},
                                        .d_chosen = {dc.data(), B},
                                        .d_rejected = {dr.data(), B}};
        const align::pair_stats stats = loss(out, in);
        std::vector<float> d_sum(2 * B);
        for (std::size_t i = 0; i < B; ++i) {
            d_sum[i] = static_cast<float>(dloss * dc[i]);
            d_sum[B + i] = static_cast<float>(dloss * dr[i]);
        }
        backward_from_sums(grads, d_sum, model, params, exec);
        return stats;
    }

private:
    // grads += the gradient of sum_r d_sum[r] x (summed log-prob of row r), from the logits of the
    // last forward (of `params`).
    template <class Params, class Grads>
    void backward_from_sums(Grads& grads, const std::vector<float>& d_sum, const Model& model, const Params& params, parallel::policy auto&& exec) {
        const std::size_t rows = 2 * pairs_;
        workspace::frame frame(ws_);
        float* dlogits = ws_.template take<float>(rows * seq_ * vocab_, "preference_batch", "the logits' gradient");
        std::fill(dlogits, dlogits + rows * seq_ * vocab_, 0.0f);
        tensor_view<float, llm::dims<3>> d3(dlogits, rows, seq_, vocab_);
        align::sequence_logprobs_backward(d3, lse_, tensor_view<const float, llm::dims<1>>(d_sum.data(), rows), tensor_view<const float, llm::dims<1>>{},
                                          logits3(), labels2(), mask2(), exec);
        const model::token_ids ids(ids_.data(), ids_.size());
        model.backward(model::no_grad{}, grads, tensor_view<const float, llm::dims<2>>(dlogits, rows * seq_, vocab_), cache_, ids,
                       params, ws_, exec);
    }

    tensor_view<const float, llm::dims<3>> logits3() const { return {cache_.logits.data(), 2 * pairs_, seq_, vocab_}; }
    tensor_view<const std::int32_t, llm::dims<2>> labels2() const { return {labels_.data(), 2 * pairs_, seq_}; }
    tensor_view<const std::uint8_t, llm::dims<2>> mask2() const { return {mask_.data(), 2 * pairs_, seq_}; }

    template <class Params>
    void forward_logprobs(const Model& model, const Params& params, parallel::policy auto&& exec) {
        const model::token_ids ids(ids_.data(), ids_.size());
        model.forward(cache_.logits, cache_, ids, params, ws_, exec);
        std::vector<std::size_t> counts(2 * pairs_);
        align::sequence_logprobs(align::logprob_outputs<double>{.sum = {sums_.data(), sums_.size()}, .mean = {}, .tokens = {counts.data(), counts.size()}},
                                 lse_, logits3(), labels2(), mask2(), exec);
        tokens_ = std::move(counts);
    }

    std::size_t pairs_, seq_, vocab_;
    std::vector<std::int32_t> ids_, labels_;
    std::vector<std::uint8_t> mask_;
    llm::tensor<float, llm::dims<2>> lse_;
    std::vector<double> sums_;
    std::vector<std::size_t> tokens_;
    std::vector<double> ref_;
    std::vector<std::pair<const std::vector<std::int32_t>*, const std::vector<std::int32_t>*>> rows_;
    model::arena arena_;
    typename Model::cache cache_;
    workspace ws_;
};

}  // namespace llm::train
