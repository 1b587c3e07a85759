// SPDX-License-Identifier: Apache-2.0
// The whole-model training step (micro-batches with gradient accumulation, loss guard,
// clipping, schedule, optimizer) over a model's zipped parameter walk, on one process or data
// parallel over a communicator (llm::dist: parameters broadcast from rank 0, gradients
// all-reduced in buckets, optionally ZeRO-1); language-model batches from llm.c token files;
// held-out loss and perplexity.
#pragma once

#include <llm/core/error.hpp>
#include <llm/dist/communicator.hpp>
#include <llm/dist/data_parallel.hpp>
#include <llm/dist/single_process.hpp>
#include <llm/model/arena.hpp>
#include <llm/model/block.hpp>
#include <llm/model/decoder.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/core/workspace.hpp>
#include <llm/train/clip.hpp>
#include <llm/train/guard.hpp>
#include <llm/train/loader.hpp>
#include <llm/train/optimizer.hpp>
#include <llm/train/token_file.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
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
    bool zero1 = false;                ///< data parallel: ZeRO-1 (optimizer state sharded over the ranks: reduce-scatter, update the shard, all-gather)
    std::size_t bucket_bytes = std::size_t{25} << 20;  ///< data parallel: gradient bucket size (llm::dist::gradient_buckets; PyTorch DDP's 25 MB)
};

/// What one update did: the mean loss of its micro-batches before the update, the learning
/// rate, the gradient norm before clipping, and whether the loss guard skipped it (and why).
/// Data parallel: loss and gradient norm are global (the mean over ranks, the norm of the
/// averaged gradients), the same on every rank.
struct step_report {
    double loss = 0;        ///< mean loss of the micro-batches (before the update; data parallel: the mean over ranks)
    double lr = 0;          ///< learning rate of the update (0 when skipped)
    double grad_norm = 0;   ///< global L2 norm of the averaged gradients before clipping (NaN when skipped)
    bool skipped = false;   ///< the loss guard refused the batch: no update
    std::string reason{};   ///< why it was skipped
};

/// The model's parameter struct type (`model.make_params<float>()`).
template <class Model>
using model_params_t = decltype(std::declval<const Model&>().template make_params<float>());

namespace detail {

/// The communicator a trainer without one uses (single_process has no state).
inline dist::single_process& default_communicator() noexcept {
    static dist::single_process c;
    return c;
}

/// The elements of a parameter tensor as a span (it is contiguous).
template <class T>
auto tensor_span(T& t) {
    return dist::detail::as_span(t, "trainer", "parameter");
}

}  // namespace detail

/// One whole-model update per call of step(): zero the gradients, run K micro-batches (each
/// adds 1/K of its gradients, so the sum is their mean, as PyTorch's `loss / K`), check the mean
/// loss with the loss guard (a refused batch takes no update and is reported), clip by global
/// norm, set the learning rate from the schedule at the optimizer's step count, and step the
/// optimizer over the zipped walk (name, param, grad). The trainer borrows the parameters and
/// the optimizer (their owner saves and restores them); it owns the gradients and the guard.
/// Optimizer: llm::train::adamw_optimizer or sgd_optimizer (anything with options().lr,
/// steps(), states() and step(walk, exec)).
///
/// Data parallel: given a communicator (llm::dist::mpi, or any llm::dist::communicator), the
/// constructor broadcasts the parameters from rank 0, and each step
/// - all-reduces (mean) the gradients in buckets of options.bucket_bytes (gradient_buckets;
///   formed from the last parameters back, the order in which backward finishes them); with a
///   micro-batch that passes step's ready_hook to the model's backward, a bucket's all-reduce
///   starts as soon as its gradients are final, during the last micro-batch's backward
///   (non-blocking with llm::dist::mpi: it overlaps the earlier layers' backward); otherwise
///   once backward has returned; all complete before clipping;
/// - all-reduces the loss (mean), so the guard decides, and the report logs, the same global
///   value on every rank: every rank skips or updates together;
/// - clips by the norm of the averaged gradients and updates every parameter on every rank;
///   or, with options.zero1, reduce-scatters the gradients (mean) over a flat buffer padded to
///   a multiple of the ranks, clips by the global norm (its square all-reduced), updates only
///   this rank's shard (the optimizer holds state for those elements only: 1/ranks of it) and
///   all-gathers the parameters.
/// Each rank's micro(k, dloss) reads its share of the global batch (batch_loader with
/// loader_options::rank / ranks), so N ranks of batch B compute what one process of batch N B
/// does, up to the order of float sums. Checkpoints: see with_full_optimizer_state().
/// Example:
/// ```
/// llm::train::trainer t(model, params, opt, llm::train::cosine_lr{6e-4, 10, 100, 6e-5}, {.clip = 1.0});
/// auto r = t.step([&](std::size_t, float dloss) { return lm.forward_backward(t.grads(), dloss, model, params, pool); }, pool);
/// llm::train::trainer dp(model, params, opt, schedule, {.zero1 = true}, comm);  // data parallel over llm::dist::mpi comm
/// ```
template <class Model, class Params, class Optimizer, dist::communicator Comm = dist::single_process>
class trainer {
public:
    /// One process. Borrows model, params and optimizer (they must outlive the trainer);
    /// `schedule` is any double(std::int64_t step) (llm::train::lr_schedule), read at
    /// opt.steps() before each update.
    trainer(const Model& model, Params& params, Optimizer& opt, std::function<double(std::int64_t)> schedule,
            const trainer_options& options = {})
        requires std::same_as<Comm, dist::single_process>
        : trainer(model, params, opt, std::move(schedule), options, detail::default_communicator()) {}

    /// Data parallel over `comm` (borrowed; every rank constructs its trainer with the same
    /// model shape and options): the parameters are broadcast from rank 0 here (collective).
    trainer(const Model& model, Params& params, Optimizer& opt, std::function<double(std::int64_t)> schedule,
            const trainer_options& options, Comm& comm)
        : model_(&model), params_(&params), opt_(&opt), schedule_(std::move(schedule)), o_(options),
          grads_(model.template make_params<float>()), guard_(options.guard_options), comm_(&comm) {
        llm::check(o_.grad_accum >= 1, "trainer: grad_accum = ", o_.grad_accum, " must be >= 1");
        llm::check(o_.clip >= 0 && std::isfinite(o_.clip), "trainer: clip = ", o_.clip, " must be finite and >= 0");
        llm::check(static_cast<bool>(schedule_), "trainer: the schedule is empty");
        if (comm_->size() > 1) {
            model::for_each_tensor([&](std::string_view, auto& p) { dist::broadcast(detail::tensor_span(p), std::size_t{0}, *comm_); }, *params_);
        }
        if (comm_->size() > 1 || o_.zero1) {
            std::vector<std::span<float>> spans;
            std::size_t offset = 0;
            model::for_each_tensor(
                [&](std::string_view name, auto& p, auto& g) {
                    spans.push_back(detail::tensor_span(g));
                    std::size_t rank = 0;
                    if constexpr (requires { std::remove_cvref_t<decltype(p)>::rank(); }) rank = std::remove_cvref_t<decltype(p)>::rank();
                    layout_.push_back({std::string(name), offset, spans.back().size(), rank});
                    offset += spans.back().size();
                },
                *params_, grads_);
            if (o_.zero1) {
                part_.emplace_back(offset, comm_->size());
                flat_params_.assign(part_[0].padded_size(), 0.0f);
                flat_grads_.assign(part_[0].padded_size(), 0.0f);
                grad_shard_.assign(part_[0].shard_size(), 0.0f);
            } else {
                buckets_.emplace_back(std::move(spans), o_.bucket_bytes);
            }
        }
    }

    trainer(const trainer&) = delete;             ///< not copied or moved: its gradient buckets point into its gradients
    trainer& operator=(const trainer&) = delete;  ///< not copied or moved

    /// The backward hook a step hands a micro-batch that takes one (`micro(k, dloss, ready)`):
    /// pass it to the model's backward (llm::model::decoder::backward_loss, lm_batch's
    /// forward_backward), which calls it as each block's gradients become final. Data parallel
    /// (not ZeRO-1), on the last micro-batch of the step, it marks those gradients ready in the
    /// buckets, so each bucket's all-reduce starts (non-blocking with llm::dist::mpi) while the
    /// earlier layers' backward still runs; otherwise it does nothing.
    /// Example: `t.step([&](std::size_t, float dl, auto ready) { return lm.forward_backward(t.grads(), dl, model, params, ready, pool); }, pool);`
    class ready_hook {
    public:
        /// Marks the reported tensors (indices into the parameter walk) ready, last first.
        void operator()(const model::grads_ready& r) const {
            if (t_ != nullptr) t_->mark_ready(r);
        }

    private:
        friend class trainer;
        explicit ready_hook(trainer* t) noexcept : t_(t) {}
        trainer* t_;
    };

    /// One update. `micro(k, dloss)` runs micro-batch k (0 .. grad_accum - 1) of this rank's
    /// share of the batch: forward, then backward adding dloss x its gradients into grads(); it
    /// returns that micro-batch's loss. Data parallel: a collective (every rank calls it).
    /// A micro taking a third argument, `micro(k, dloss, ready)`, gets a ready_hook to pass to
    /// the model's backward: the gradient buckets are then all-reduced during the last
    /// micro-batch's backward (overlap); gradients the hook did not report are marked after it
    /// returns (last parameters first), and every reduction completes before clipping.
    template <class Micro>
        requires(std::invocable<Micro&, std::size_t, float> || std::invocable<Micro&, std::size_t, float, ready_hook>)
    step_report step(Micro&& micro, parallel::policy auto&& exec) {
        model::zero_grad(grads_);
        const float dloss = 1.0f / static_cast<float>(o_.grad_accum);
        double sum = 0;
        const bool bucketed = !buckets_.empty();
        for (std::size_t k = 0; k < o_.grad_accum; ++k) {
            if constexpr (std::invocable<Micro&, std::size_t, float, ready_hook>) {
                // only the last micro-batch's gradients are final for the step: its backward reduces
                sum += static_cast<double>(micro(k, dloss, ready_hook(bucketed && k + 1 == o_.grad_accum ? this : nullptr)));
            } else {
                sum += static_cast<double>(micro(k, dloss));
            }
        }
        step_report r;
        r.loss = sum / static_cast<double>(o_.grad_accum);
        if (bucketed) {
            gradient_buckets& b = buckets_[0];
            for (std::size_t i = layout_.size(); i-- > 0;)  // what the hook did not report, in backward's order: last parameters first
                if (!b.marked(i)) b.ready(i, *comm_);
            b.finish(*comm_);  // waits for every reduction in flight
        } else if (o_.zero1) {
            pack(flat_grads_, grads_);
            dist::reduce_scatter(grad_shard_, flat_grads_, dist::reduce_op::mean, *comm_);
        }
        if (comm_->size() > 1) dist::all_reduce(std::span<double>(&r.loss, 1), dist::reduce_op::mean, *comm_);
        if (o_.guard) {
            if (auto v = guard_.check(r.loss); v.skip) {
                r.skipped = true;
                r.reason = std::move(v.reason);
                r.grad_norm = std::numeric_limits<double>::quiet_NaN();
                return r;
            }
        }
        r.lr = schedule_(opt_->steps());
        opt_->options().lr = r.lr;
        if (!o_.zero1) {
            auto walk = [&](auto&& f) { model::for_each_tensor(f, *params_, grads_); };
            r.grad_norm = o_.clip > 0 ? clip_grad_norm(walk, o_.clip, exec) : grad_norm(walk, exec);
            opt_->step(walk, exec);
        } else {
            r.grad_norm = zero1_update(exec);
        }
        return r;
    }

    /// Runs `f()` with the optimizer holding the full state of every parameter, as a
    /// single-process optimizer would (what a checkpoint saves and load_resume_state reads
    /// back). Without ZeRO-1 that is its state already; with ZeRO-1 the shards are all-gathered
    /// first (a collective: every rank calls it; rank 0 writes inside f) and put back after.
    /// Example: `t.with_full_optimizer_state([&] { if (comm.rank() == 0) llm::train::save_resume_state(dir, opt, st); });`
    template <class F>
    void with_full_optimizer_state(F&& f) {
        if (!o_.zero1 || !sharded_) {
            f();
            return;
        }
        auto shards = opt_->states();
        opt_->states() = gather_states();
        struct restore {
            Optimizer* opt;
            decltype(shards)* s;
            ~restore() { opt->states() = std::move(*s); }
        } guard_restore{opt_, &shards};
        f();
    }

    /// The gradients (params<float>), zeroed at the start of each step.
    model_params_t<Model>& grads() noexcept { return grads_; }
    /// The loss guard (save history() and skipped(), restore() on resume).
    loss_guard& guard() noexcept { return guard_; }
    /// The options.
    const trainer_options& options() const noexcept { return o_; }
    /// The communicator (llm::dist::single_process without data parallelism).
    Comm& communicator() noexcept { return *comm_; }

private:
    // One parameter's place in the flat buffer of all parameters (walk order).
    struct slot {
        std::string name;
        std::size_t offset, size, rank;
    };

    // The hook of the last micro-batch: tensors [first, first + count) of the walk are final.
    void mark_ready(const model::grads_ready& e) {
        llm::check(e.first <= layout_.size() && e.count <= layout_.size() - e.first, "trainer: the backward hook reports tensors [", e.first, ", ",
                   e.first + e.count, ") but the trainer's parameters have ", layout_.size(),
                   " (the hook's indices are the model's parameter walk: pass it to a backward of these parameters)");
        for (std::size_t i = e.first + e.count; i-- > e.first;) buckets_[0].ready(i, *comm_);
    }

    template <class P>  // the parameters (fp32 or bf16) or the fp32 gradients
    void pack(std::vector<float>& flat, P& p) {
        std::size_t i = 0;
        model::for_each_tensor(
            [&](std::string_view, auto& t) {
                const auto s = detail::tensor_span(t);
                const auto at = flat.begin() + static_cast<std::ptrdiff_t>(layout_[i++].offset);
                std::transform(s.begin(), s.end(), at, [](auto x) { return static_cast<float>(x); });
            },
            p);
    }
    void unpack(Params& p, const std::vector<float>& flat) {
        std::size_t i = 0;
        model::for_each_tensor(
            [&](std::string_view, auto& t) {
                const auto s = detail::tensor_span(t);
                const auto at = flat.begin() + static_cast<std::ptrdiff_t>(layout_[i++].offset);
                using E = std::remove_cvref_t<decltype(*s.begin())>;
                std::transform(at, at + static_cast<std::ptrdiff_t>(s.size()), s.begin(), [](float x) { return E(x); });
            },
            p);
    }

    // This rank's piece [lo, hi) of parameter k (in its own elements), empty when outside the shard.
    std::pair<std::size_t, std::size_t> piece(std::size_t k) const {
        const std::size_t begin = part_[0].shard_begin(comm_->rank()), end = begin + part_[0].shard_elements(comm_->rank());
        const slot& s = layout_[k];
        const std::size_t lo = std::clamp(begin, s.offset, s.offset + s.size), hi = std::clamp(end, s.offset, s.offset + s.size);
        return {lo - s.offset, hi - s.offset};
    }

    // Visits f(name, param piece, grad piece) for every parameter with elements in this rank's
    // shard: views into the flat parameters and the gradient shard, [1, n] for parameters of
    // rank >= 2 (so a weight-decay rule by rank decides as on the whole tensor), [n] otherwise.
    template <class F>
    void for_each_piece(F&& f) {
        const std::size_t begin = part_[0].shard_begin(comm_->rank());
        for (std::size_t k = 0; k < layout_.size(); ++k) {
            const auto [lo, hi] = piece(k);
            if (hi == lo) continue;
            float* p = flat_params_.data() + layout_[k].offset + lo;
            float* g = grad_shard_.data() + (layout_[k].offset + lo - begin);
            if (layout_[k].rank >= 2) {
                f(std::string_view(layout_[k].name), tensor_view<float, dims<2>>(p, 1, hi - lo), tensor_view<float, dims<2>>(g, 1, hi - lo));
            } else {
                f(std::string_view(layout_[k].name), tensor_view<float, dims<1>>(p, hi - lo), tensor_view<float, dims<1>>(g, hi - lo));
            }
        }
    }

    // Full optimizer state (as loaded from a checkpoint) -> this rank's pieces.
    void shard_states() {
        auto& st = opt_->states();
        if (!st.empty()) {
            std::map<std::string, param_state, std::less<>> mine;
            for (std::size_t k = 0; k < layout_.size(); ++k) {
                const auto it = st.find(layout_[k].name);
                if (it == st.end()) continue;
                const auto range = piece(k);
                const std::size_t lo = range.first, hi = range.second;  // not a structured binding: clang 14's lambdas cannot capture one
                if (hi == lo) continue;
                auto cut = [&](const llm::tensor<float, dims<1>>& full) {
                    llm::tensor<float, dims<1>> t;
                    if (full.size() == 0) return t;
                    llm::check(full.size() == layout_[k].size, "trainer (ZeRO-1): the optimizer state of '", layout_[k].name, "' has ",
                               full.size(), " elements, the parameter ", layout_[k].size);
                    t = llm::tensor<float, dims<1>>(uninitialized, hi - lo);
                    std::copy(full.data() + lo, full.data() + hi, t.data());
                    return t;
                };
                param_state s;
                s.shape = layout_[k].rank >= 2 ? std::vector<std::size_t>{1, hi - lo} : std::vector<std::size_t>{hi - lo};
                s.m = cut(it->second.m);
                s.v = cut(it->second.v);
                s.master = cut(it->second.master);
                mine.emplace(layout_[k].name, std::move(s));
            }
            st = std::move(mine);
        }
        sharded_ = true;
    }

    // This rank's pieces -> the full state of every parameter (collective: an all-gather per moment).
    std::map<std::string, param_state, std::less<>> gather_states() {
        const auto& st = opt_->states();
        const std::size_t begin = part_[0].shard_begin(comm_->rank());
        std::map<std::string, param_state, std::less<>> full;
        for (int which = 0; which < 2; ++which) {
            std::uint64_t has = 0;
            for (const auto& [name, s] : st) has |= (which == 0 ? s.m.size() : s.v.size()) != 0;
            dist::all_reduce(std::span<std::uint64_t>(&has, 1), dist::reduce_op::sum, *comm_);
            if (has == 0) continue;
            std::vector<float> shard(part_[0].shard_size(), 0.0f), all(part_[0].padded_size(), 0.0f);
            for (std::size_t k = 0; k < layout_.size(); ++k) {
                const auto it = st.find(layout_[k].name);
                if (it == st.end()) continue;
                const auto& t = which == 0 ? it->second.m : it->second.v;
                const auto [lo, hi] = piece(k);
                if (t.size() == hi - lo && hi > lo) std::copy(t.data(), t.data() + (hi - lo), shard.begin() + static_cast<std::ptrdiff_t>(layout_[k].offset + lo - begin));
            }
            dist::all_gather(all, shard, *comm_);
            model::for_each_tensor(
                [&](std::string_view name, auto& p) {
                    const slot& s = *std::find_if(layout_.begin(), layout_.end(), [&](const slot& x) { return x.name == name; });
                    param_state& ps = full[s.name];
                    if (ps.shape.empty())
                        for (std::size_t r = 0; r < s.rank; ++r) ps.shape.push_back(static_cast<std::size_t>(p.extent(r)));
                    llm::tensor<float, dims<1>> t(uninitialized, s.size);
                    std::copy(all.begin() + static_cast<std::ptrdiff_t>(s.offset), all.begin() + static_cast<std::ptrdiff_t>(s.offset + s.size), t.data());
                    (which == 0 ? ps.m : ps.v) = std::move(t);
                },
                *params_);
        }
        return full;
    }

    // ZeRO-1 after the reduce-scatter: clip by the global norm, update this rank's shard, all-gather.
    double zero1_update(parallel::policy auto&& exec) {
        if (!sharded_) shard_states();
        const std::size_t r = comm_->rank(), real = part_[0].shard_elements(r);
        tensor_view<float, dims<1>> mine(grad_shard_.data(), real);
        const double local = grad_norm([&](auto&& f) { f("shard", mine); }, exec);
        double sq = local * local;
        dist::all_reduce(std::span<double>(&sq, 1), dist::reduce_op::sum, *comm_);
        const double total = std::sqrt(sq);
        if (o_.clip > 0) {  // clip_grad_norm's coefficient, from the global norm
            const float c = static_cast<float>(o_.clip) / (static_cast<float>(total) + 1e-6f);
            const float coef = c < 1.0f || std::isnan(c) ? c : 1.0f;
            if (coef != 1.0f) scale_grads([&](auto&& f) { f("shard", mine); }, coef, exec);
        }
        pack(flat_params_, *params_);
        opt_->step([&](auto&& f) { for_each_piece(f); }, exec);
        const std::size_t begin = part_[0].shard_begin(r);
        dist::all_gather(std::span<float>(flat_params_), std::span<const float>(flat_params_.data() + begin, part_[0].shard_size()), *comm_);
        unpack(*params_, flat_params_);
        return total;
    }

    using gradient_buckets = dist::gradient_buckets;

    const Model* model_;
    Params* params_;
    Optimizer* opt_;
    std::function<double(std::int64_t)> schedule_;
    trainer_options o_;
    model_params_t<Model> grads_;  // fp32, also for bf16 parameters
    loss_guard guard_;
    Comm* comm_;
    std::vector<slot> layout_;                    // data parallel: every parameter's place in the flat order
    std::vector<gradient_buckets> buckets_;       // plain data parallel: one (vector: not default-constructible)
    std::vector<dist::zero1_partition> part_;     // ZeRO-1: one
    std::vector<float> flat_params_, flat_grads_, grad_shard_;
    bool sharded_ = false;                        // ZeRO-1: the optimizer holds this rank's pieces (not full state)
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
        return forward_backward(grads, dloss, model, params, model::no_hook{}, exec);
    }
    /// forward_backward, the model's backward calling `hook` as each block's gradients become
    /// final (llm::model::grads_ready; a trainer's ready_hook overlaps the data-parallel reduce).
    /// Example: `t.step([&](std::size_t, float dl, auto ready) { return lm.forward_backward(t.grads(), dl, model, params, ready, pool); }, pool);`
    template <class Params, class Grads, model::backward_hook Hook>
    float forward_backward(Grads& grads, float dloss, const Model& model, const Params& params, Hook&& hook, parallel::policy auto&& exec) {
        const float l = loss(model, params, exec);
        model.backward_loss(grads, dloss, cache_, ids_view(), targets_view(), params, hook, ws_, exec);
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
