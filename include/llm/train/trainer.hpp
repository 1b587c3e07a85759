// SPDX-License-Identifier: Apache-2.0
// The whole-model training step (micro-batches with gradient accumulation, loss guard,
// clipping, schedule, optimizer) over a model's zipped parameter walk; language-model batches
// from llm.c token files; held-out loss and perplexity.
#pragma once

#include <llm/core/error.hpp>
#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/core/workspace.hpp>
#include <llm/train/clip.hpp>
#include <llm/train/guard.hpp>
#include <llm/train/loader.hpp>
#include <llm/train/token_file.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace llm::train {

/// How a trainer turns micro-batches into one update.
/// Example: `llm::train::trainer_options o{.clip = 1.0, .grad_accum = 4};`
struct trainer_options {
    double clip = 1.0;                 ///< max global gradient norm (torch clip_grad_norm_); 0: no clipping (the norm is still measured)
    std::size_t grad_accum = 1;        ///< micro-batches per update (gradients are their mean)
    bool guard = true;                 ///< skip a batch whose loss is NaN or a spike (loss_guard)
    loss_guard_options guard_options{};  ///< the guard's settings
};

/// What one update did: the mean loss of its micro-batches before the update, the learning
/// rate, the gradient norm before clipping, and whether the loss guard skipped it (and why).
struct step_report {
    double loss = 0;        ///< mean loss of the micro-batches (before the update)
    double lr = 0;          ///< learning rate of the update (0 when skipped)
    double grad_norm = 0;   ///< global L2 norm of the averaged gradients before clipping (NaN when skipped)
    bool skipped = false;   ///< the loss guard refused the batch: no update
    std::string reason{};   ///< why it was skipped
};

/// The model's parameter struct type (`model.make_params<float>()`).
template <class Model>
using model_params_t = decltype(std::declval<const Model&>().template make_params<float>());

/// One whole-model update per call of step(): zero the gradients, run K micro-batches (each
/// adds 1/K of its gradients, so the sum is their mean, as PyTorch's `loss / K`), check the mean
/// loss with the loss guard (a refused batch takes no update and is reported), clip by global
/// norm, set the learning rate from the schedule at the optimizer's step count, and step the
/// optimizer over the zipped walk (name, param, grad). The trainer borrows the parameters and
/// the optimizer (their owner saves and restores them); it owns the gradients and the guard.
/// Optimizer: llm::train::adamw_optimizer or sgd_optimizer (anything with options().lr,
/// steps() and step(walk, exec)).
/// Example:
/// ```
/// llm::train::trainer t(model, params, opt, llm::train::cosine_lr{6e-4, 10, 100, 6e-5}, {.clip = 1.0});
/// auto r = t.step([&](std::size_t, float dloss) { return lm.forward_backward(t.grads(), dloss, model, params, pool); }, pool);
/// ```
template <class Model, class Params, class Optimizer>
class trainer {
public:
    /// Borrows model, params and optimizer (they must outlive the trainer); `schedule` is any
    /// double(std::int64_t step) (llm::train::lr_schedule), read at opt.steps() before each update.
    trainer(const Model& model, Params& params, Optimizer& opt, std::function<double(std::int64_t)> schedule,
            const trainer_options& options = {})
        : model_(&model), params_(&params), opt_(&opt), schedule_(std::move(schedule)), o_(options),
          grads_(model.template make_params<float>()), guard_(options.guard_options) {
        llm::check(o_.grad_accum >= 1, "trainer: grad_accum = ", o_.grad_accum, " must be >= 1");
        llm::check(o_.clip >= 0 && std::isfinite(o_.clip), "trainer: clip = ", o_.clip, " must be finite and >= 0");
        llm::check(static_cast<bool>(schedule_), "trainer: the schedule is empty");
    }

    /// One update. `micro(k, dloss)` runs micro-batch k (0 .. grad_accum - 1): forward, then
    /// backward adding dloss x its gradients into grads(); it returns that micro-batch's loss.
    template <class Micro>
        requires std::invocable<Micro&, std::size_t, float>
    step_report step(Micro&& micro, parallel::policy auto&& exec) {
        model::zero_grad(grads_);
        const float dloss = 1.0f / static_cast<float>(o_.grad_accum);
        double sum = 0;
        for (std::size_t k = 0; k < o_.grad_accum; ++k) sum += static_cast<double>(micro(k, dloss));
        step_report r;
        r.loss = sum / static_cast<double>(o_.grad_accum);
        if (o_.guard) {
            if (auto v = guard_.check(r.loss); v.skip) {
                r.skipped = true;
                r.reason = std::move(v.reason);
                r.grad_norm = std::numeric_limits<double>::quiet_NaN();
                return r;
            }
        }
        auto walk = [&](auto&& f) { model::for_each_tensor(f, *params_, grads_); };
        r.grad_norm = o_.clip > 0 ? clip_grad_norm(walk, o_.clip, exec) : grad_norm(walk, exec);
        r.lr = schedule_(opt_->steps());
        opt_->options().lr = r.lr;
        opt_->step(walk, exec);
        return r;
    }

    /// The gradients (params<float>), zeroed at the start of each step.
    Params& grads() noexcept { return grads_; }
    /// The loss guard (save history() and skipped(), restore() on resume).
    loss_guard& guard() noexcept { return guard_; }
    /// The options.
    const trainer_options& options() const noexcept { return o_; }

private:
    const Model* model_;
    Params* params_;
    Optimizer* opt_;
    std::function<double(std::int64_t)> schedule_;
    trainer_options o_;
    Params grads_;
    loss_guard guard_;
};

/// Language-model batches of B sequences of T tokens for one model: the token and target
/// buffers, the activation arena and the workspace, allocated once and reused every call.
/// fill() reads the loader's next batch; forward_backward() is one pretraining micro-batch
/// (mean cross-entropy of next-token prediction; targets -100 are ignored, as Hugging Face).
/// Example:
/// ```
/// llm::train::lm_batch<llm::model::gpt2<>> lm(model, {.batch = 4, .seq = 64});
/// lm.fill(loader); float loss = lm.forward_backward(grads, 1.0f, model, params, pool);
/// ```
template <class Model>
class lm_batch {
public:
    /// Buffers for `shape` (batch x seq tokens) of `model`.
    lm_batch(const Model& model, model::batch_shape shape)
        : shape_(shape), ids_(shape.tokens()), targets_(shape.tokens()), cache_(model::make_cache(model, arena_, shape)) {}

    /// Reads the loader's next batch (inputs and next-token targets).
    void fill(batch_loader& loader) {
        tensor_view<std::int32_t, llm::dims<1>> x(ids_.data(), ids_.size()), y(targets_.data(), targets_.size());
        loader.next(x, y);
    }
    /// The token ids [batch * seq] (write them directly for other objectives).
    std::vector<std::int32_t>& ids() noexcept { return ids_; }
    /// The targets [batch * seq], -100 where no loss is taken.
    std::vector<std::int32_t>& targets() noexcept { return targets_; }
    /// The shape.
    model::batch_shape shape() const noexcept { return shape_; }
    /// The activation cache (logits in cache().logits after a forward).
    auto& cache() noexcept { return cache_; }
    /// The workspace the calls use.
    workspace& ws() noexcept { return ws_; }

    /// The batch's mean cross-entropy (forward only).
    template <class Params>
    float loss(const Model& model, const Params& params, parallel::policy auto&& exec) {
        return model.forward_loss(cache_, ids_view(), targets_view(), params, ws_, exec);
    }
    /// Forward and backward: grads += dloss x d(mean cross-entropy); returns the loss.
    template <class Params, class Grads>
    float forward_backward(Grads& grads, float dloss, const Model& model, const Params& params, parallel::policy auto&& exec) {
        const float l = loss(model, params, exec);
        model.backward_loss(grads, dloss, cache_, ids_view(), targets_view(), params, ws_, exec);
        return l;
    }

private:
    model::token_ids ids_view() const { return {ids_.data(), ids_.size()}; }
    tensor_view<const std::int32_t, llm::dims<1>> targets_view() const { return {targets_.data(), targets_.size()}; }

    model::batch_shape shape_;
    std::vector<std::int32_t> ids_, targets_;
    model::arena arena_;
    typename Model::cache cache_;
    workspace ws_;
};

/// Held-out loss: the mean next-token cross-entropy and its perplexity exp(loss).
struct eval_result {
    double loss = 0;             ///< mean cross-entropy per token (nats)
    double perplexity = 0;       ///< exp(loss)
    std::size_t batches = 0;     ///< batches evaluated
    std::size_t tokens = 0;      ///< tokens scored
};

/// Evaluates `params` on a token file: the file's batches of B x T (llm.c order, no shuffle)
/// from the start, at most `max_batches` of them (0: all), each the mean cross-entropy of its
/// B T next-token predictions; the result is their mean (every batch has B T tokens, so it is
/// the mean per token) and exp of it. Example:
/// `auto e = llm::train::evaluate(model, params, val, {.batch = 4, .seq = 64}, 20, pool);`
template <class Model, class Params>
eval_result evaluate(const Model& model, const Params& params, const token_file& file, model::batch_shape shape, std::size_t max_batches,
                     parallel::policy auto&& exec) {
    batch_loader loader(file, shape.batch, shape.seq);
    lm_batch<Model> lm(model, shape);
    const std::size_t n = max_batches == 0 ? loader.batches_per_epoch() : std::min(max_batches, loader.batches_per_epoch());
    double sum = 0;
    for (std::size_t b = 0; b < n; ++b) {
        lm.fill(loader);
        sum += static_cast<double>(lm.loss(model, params, exec));
    }
    eval_result r;
    r.batches = n;
    r.tokens = n * shape.tokens();
    r.loss = sum / static_cast<double>(n);
    r.perplexity = std::exp(r.loss);
    return r;
}

}  // namespace llm::train
