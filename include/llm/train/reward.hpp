// SPDX-License-Identifier: Apache-2.0
// The Bradley-Terry reward model (RLHF step 1): a scalar head on the decoder's final hidden
// state at the last token of prompt + response, trained on (prompt, chosen, rejected) with
// -log sigmoid(r_chosen - r_rejected), as TRL's RewardTrainer.
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/random.hpp>
#include <llm/core/workspace.hpp>
#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/train/objectives.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace llm::train {

/// A batch's reward-model statistics (TRL's RewardTrainer logs loss and accuracy).
struct reward_stats {
    double loss = 0;             ///< mean of -log sigmoid(r_chosen - r_rejected)
    double chosen_reward = 0;    ///< mean r_chosen
    double rejected_reward = 0;  ///< mean r_rejected
    double margin = 0;           ///< mean r_chosen - r_rejected
    double accuracy = 0;         ///< fraction of pairs with r_chosen > r_rejected
};

/// A reward model's parameters: the decoder's (`model`, its Hugging Face names unchanged) and
/// the scalar head `score` [1, d_model] under transformers' `*ForSequenceClassification` name
/// `score.weight` (a bias-free Linear(d_model, 1)), visited after the decoder's tensors. A
/// parameter struct (llm::model::param_struct), so the trainer, the optimizer, clipping and
/// save_safetensors / load_safetensors take the head with the model.
/// Example: `llm::train::reward_params<llm::model::llama<>, float> p = llm::train::reward_model(m).make_params<float>();`
template <class Model, class T>
struct reward_params {
    typename Model::template params<T> model{};  ///< the decoder's parameters
    llm::tensor<T, llm::dims<2>> score{};          ///< the head, `score.weight` [1, d_model]

    /// The zipped walk: the decoder's tensors, then "score.weight".
    template <class F, class... P>
    static void walk(F&& f, P&... p) {
        Model::template params<T>::walk(f, p.model...);
        f(std::string_view("score.weight"), p.score...);
    }
    /// Visits (name, tensor) pairs.
    template <class F>
    void for_each_param(F&& f) {
        walk(f, *this);
    }
    /// Visits (name, tensor) pairs, read-only.
    template <class F>
    void for_each_param(F&& f) const {
        walk(f, *this);
    }
};

/// A decoder seen as a reward model by the trainer: make_params<T>() gives reward_params (the
/// decoder's parameters and the head), init_head() draws the head as transformers initialises
/// `score` (normal, std 0.02), from llm::xoshiro256ss(seed).
/// Example:
/// ```
/// llm::train::reward_model rm(model);
/// auto p = rm.make_params<float>(); rm.init_head(p, 1337);
/// llm::train::trainer t(rm, p, opt, schedule);
/// ```
template <class Model>
class reward_model {
public:
    /// Borrows the decoder (it must outlive this).
    explicit reward_model(const Model& model) : model_(&model) {}
    /// Zero-filled parameters: the decoder's and the head [1, d_model].
    template <class T>
    reward_params<Model, T> make_params() const {
        return {model_->template make_params<T>(), llm::tensor<T, llm::dims<2>>(1, model_->config().d_model)};
    }
    /// Draws the head: normal(0, std) from llm::xoshiro256ss(seed).
    template <class T>
    void init_head(reward_params<Model, T>& p, std::uint64_t seed, double std = 0.02) const {
        xoshiro256ss rng(seed);
        for (std::size_t j = 0; j < p.score.size(); ++j) p.score.data()[j] = static_cast<T>(std * rng.normal());
    }
    /// The decoder.
    const Model& base() const noexcept { return *model_; }

private:
    const Model* model_;
};

/// Bradley-Terry reward batches through a whole model: B pairs as 2B rows of T tokens (chosen
/// rows first, then rejected), each prompt + response truncated to T tokens and padded after
/// (the decoder is causal, so padding does not reach the last real token). The reward of a row
/// is `w . h` with h the final hidden state (the final norm's output) at its last real token and
/// w the head [d_model] (Hugging Face's `score.weight`, no bias); the loss is the mean over
/// pairs of -log sigmoid(r_chosen - r_rejected); its gradient goes into the head and, through
/// llm::model::decoder::backward_hidden, into every model parameter but the LM head.
/// Example:
/// ```
/// llm::train::reward_batch<M> rb(model, 4, 128);
/// rb.fill(examples, 0);
/// auto s = rb.forward_backward(grads, head_grad, 1.0f, model, params, head, pool);
/// ```
template <class Model>
class reward_batch {
public:
    /// Buffers for `pairs` pairs of `seq` tokens (2 x pairs rows).
    reward_batch(const Model& model, std::size_t pairs, std::size_t seq)
        : pairs_(pairs), seq_(seq), d_model_(model.config().d_model), ids_(2 * pairs * seq), last_(2 * pairs), rewards_(2 * pairs),
          cache_(model::make_cache(model, arena_, model::batch_shape{.batch = 2 * pairs, .seq = seq})) {}
    reward_batch(const reward_batch&) = delete;
    reward_batch& operator=(const reward_batch&) = delete;

    /// Packs pairs first .. first + B - 1 (cyclically), each row prompt + response truncated to
    /// T tokens. llm::error when a row has no response token within T tokens.
    void fill(const std::vector<preference_example>& examples, std::size_t first) {
        llm::check(!examples.empty(), "reward_batch::fill: no examples");
        const std::size_t T = seq_;
        for (std::size_t r = 0; r < 2 * pairs_; ++r) {
            const std::size_t k = (first + r % pairs_) % examples.size();
            const auto& e = examples[k];
            const bool chosen = r < pairs_;
            const auto& resp = chosen ? e.chosen : e.rejected;
            llm::check(e.prompt.size() < T && !resp.empty(), "reward_batch::fill: example ", k, " has no ", chosen ? "chosen" : "rejected",
                       " token within ", T, " tokens (prompt of ", e.prompt.size(), ")");
            const std::size_t n = std::min(e.prompt.size() + resp.size(), T);
            for (std::size_t t = 0; t < T; ++t)
                ids_[r * T + t] = t >= n ? 0 : t < e.prompt.size() ? e.prompt[t] : resp[t - e.prompt.size()];
            last_[r] = n - 1;
        }
    }

    /// The rewards of every row under `params` and `head` [d_model] (chosen rows, then rejected).
    template <class Params>
    const std::vector<double>& rewards(const Model& model, const Params& params, tensor_view<const float, llm::dims<1>> head,
                                       parallel::policy auto&& exec) {
        llm::check(head.extent(0) == d_model_, "reward_batch: the head has ", head.extent(0), " entries, d_model is ", d_model_);
        const model::token_ids ids(ids_.data(), ids_.size());
        model.forward(cache_.logits, cache_, ids, params, ws_, exec);
        for (std::size_t r = 0; r < 2 * pairs_; ++r) {
            const float* h = hidden(r);
            double s = 0;
            for (std::size_t j = 0; j < d_model_; ++j) s += static_cast<double>(head(j)) * static_cast<double>(h[j]);
            rewards_[r] = s;
        }
        return rewards_;
    }

    /// The batch's loss and gradients: grads += dloss x d(loss)/d(params) (all but the LM head),
    /// head_grad [d_model] += dloss x d(loss)/d(head).
    template <class Params, class Grads>
    reward_stats forward_backward(Grads& grads, tensor_view<float, llm::dims<1>> head_grad, float dloss, const Model& model, const Params& params,
                                  tensor_view<const float, llm::dims<1>> head, parallel::policy auto&& exec) {
        llm::check(head_grad.extent(0) == d_model_, "reward_batch: the head gradient has ", head_grad.extent(0), " entries, d_model is ", d_model_);
        (void)rewards(model, params, head, exec);
        const std::size_t B = pairs_;
        reward_stats s;
        std::vector<double> dr(2 * B, 0.0);
        for (std::size_t i = 0; i < B; ++i) {
            const double m = rewards_[i] - rewards_[B + i];
            // -log sigmoid(m) = softplus(-m), evaluated without overflow; d/dm = -sigmoid(-m)
            s.loss += (m > 0 ? std::log1p(std::exp(-m)) : -m + std::log1p(std::exp(m))) / static_cast<double>(B);
            const double sig_neg = m > 0 ? std::exp(-m) / (1.0 + std::exp(-m)) : 1.0 / (1.0 + std::exp(m));
            dr[i] = -sig_neg / static_cast<double>(B);
            dr[B + i] = sig_neg / static_cast<double>(B);
            s.chosen_reward += rewards_[i] / static_cast<double>(B);
            s.rejected_reward += rewards_[B + i] / static_cast<double>(B);
            s.margin += m / static_cast<double>(B);
            s.accuracy += (m > 0 ? 1.0 : 0.0) / static_cast<double>(B);
        }
        const std::size_t n = 2 * B * seq_;
        workspace::frame frame(ws_);
        float* dn = ws_.template take<float>(n * d_model_, "reward_batch", "the hidden state's gradient");
        std::fill(dn, dn + n * d_model_, 0.0f);
        for (std::size_t r = 0; r < 2 * B; ++r) {
            const double g = static_cast<double>(dloss) * dr[r];
            const float* h = hidden(r);
            float* d = dn + (r * seq_ + last_[r]) * d_model_;
            for (std::size_t j = 0; j < d_model_; ++j) {
                d[j] = static_cast<float>(g * static_cast<double>(head(j)));
                head_grad(j) += static_cast<float>(g * static_cast<double>(h[j]));
            }
        }
        const model::token_ids ids(ids_.data(), ids_.size());
        model.backward_hidden(model::no_grad{}, grads, tensor_view<const float, llm::dims<2>>(dn, n, d_model_), cache_, ids, params, ws_, exec);
        return s;
    }

    /// The index of each row's last real token (the reward's position).
    const std::vector<std::size_t>& last() const noexcept { return last_; }

private:
    const float* hidden(std::size_t r) const { return cache_.normed.data() + (r * seq_ + last_[r]) * d_model_; }

    std::size_t pairs_, seq_, d_model_;
    std::vector<std::int32_t> ids_;
    std::vector<std::size_t> last_;
    std::vector<double> rewards_;
    model::arena arena_;
    typename Model::cache cache_;
    workspace ws_;
};

}  // namespace llm::train
