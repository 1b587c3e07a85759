// SPDX-License-Identifier: Apache-2.0
// Data-parallel building blocks that need no model: gradient buckets all-reduced as soon as they
// are complete (DDP's bucketing), and ZeRO-1 partitioning of flat fp32 buffers (optimizer state
// sharded by reduce-scatter of gradients and all-gather of parameters).
#pragma once

#include <llm/core/error.hpp>
#include <llm/dist/communicator.hpp>

#include <algorithm>
#include <any>
#include <cstddef>
#include <concepts>
#include <cstdint>
#include <span>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace llm::dist {

/// Gradients of a model all-reduced (mean over ranks) in buckets of about `bucket_bytes`, each
/// bucket as soon as all its gradients are final, so the reduction of late layers' gradients
/// overlaps the backward of earlier ones (PyTorch DDP's bucketing, 25 MB by default). With a
/// communicator that can start an all-reduce and finish it later (llm::dist::async_all_reduce:
/// llm::dist::mpi), ready() starts the bucket's reduction and returns, later ready() calls drive
/// the ones in flight, and finish() completes them: the transfer runs while backward computes.
/// Otherwise ready() reduces the completed bucket before returning.
/// Buckets are formed in reverse order of the list (backward produces the last parameters'
/// gradients first); a gradient larger than a bucket is a bucket of its own. Each step: call
/// ready(i) once per gradient when backward has finished writing it, then finish(), which
/// reduces what is left and checks every gradient was marked; then the next step may begin.
/// A bucket is packed into one contiguous fp32 buffer (one collective per bucket), reduced, and
/// unpacked. Gradients are fp32 views (std::span<float>, or any contiguous buffer of floats).
/// Example: `llm::dist::gradient_buckets b(grads, 25 << 20); ... b.ready(i, comm); ... b.finish(comm);`
class gradient_buckets {
public:
    /// Buckets over `grads` (their storage must outlive this object and stay in place).
    /// Example: `llm::dist::gradient_buckets b({std::span<float>(g1), std::span<float>(g2)}, 1 << 20);`
    gradient_buckets(std::vector<std::span<float>> grads, std::size_t bucket_bytes = std::size_t{25} << 20) : grads_(std::move(grads)) {
        llm::check(bucket_bytes >= sizeof(float), "gradient_buckets: bucket_bytes = ", bucket_bytes, " must hold at least one float");
        const std::size_t cap = bucket_bytes / sizeof(float);
        bucket_of_.assign(grads_.size(), 0);
        std::size_t filled = 0;
        for (std::size_t k = grads_.size(); k-- > 0;) {
            const std::size_t n = grads_[k].size();
            if (buckets_.empty() || (filled + n > cap && filled > 0)) {
                buckets_.push_back({});
                filled = 0;
            }
            buckets_.back().members.push_back(k);
            buckets_.back().elements += n;
            bucket_of_[k] = buckets_.size() - 1;
            filled += n;
        }
        // One staging buffer per bucket: several may be in flight at once.
        std::size_t total = 0;
        for (auto& b : buckets_) {
            b.offset = total;
            total += b.elements;
        }
        staging_.resize(total);
        marked_.assign(grads_.size(), 0);
    }

    std::size_t buckets() const noexcept { return buckets_.size(); }  ///< number of buckets
    /// The gradients (indices into the list) of bucket b, in the order they are packed.
    std::span<const std::size_t> bucket(std::size_t b) const { return buckets_.at(b).members; }
    std::size_t reductions() const noexcept { return reductions_; }  ///< collectives started so far (one per bucket per step)
    /// Whether gradient i has been marked ready in this step (since the last finish()).
    /// Example: `if (!b.marked(i)) b.ready(i, comm);`
    bool marked(std::size_t i) const { return marked_.at(i) != 0; }

    /// Gradient i is final for this step; reduces its bucket if that completes it.
    /// Example: `b.ready(layer, comm);`
    template <communicator Comm>
    void ready(std::size_t i, Comm&& comm) {
        llm::check(i < grads_.size(), "gradient_buckets::ready: gradient ", i, " but there are ", grads_.size());
        llm::check(!marked_[i], "gradient_buckets::ready: gradient ", i, " marked twice in one step (call finish() between steps)");
        marked_[i] = 1;
        bucket_state& b = buckets_[bucket_of_[i]];
        if constexpr (async_all_reduce<std::remove_cvref_t<Comm>>) {
            using handle = decltype(comm.start_all_reduce(std::span<float>(), reduce_op::mean));
            if (in_flight_.type() != typeid(std::vector<std::pair<std::size_t, handle>>)) in_flight_ = std::vector<std::pair<std::size_t, handle>>{};
            auto& flying = std::any_cast<std::vector<std::pair<std::size_t, handle>>&>(in_flight_);
            for (auto& f : flying) (void)comm.test(f.second);  // progress for the buckets already in flight
            if (++b.marked == b.members.size()) {
                pack(b);
                flying.emplace_back(static_cast<std::size_t>(&b - buckets_.data()), comm.start_all_reduce(bucket_buffer(b), reduce_op::mean));
                ++reductions_;
            }
        } else {
            if (++b.marked == b.members.size()) {
                pack(b);
                const std::span<float> flat = bucket_buffer(b);
                comm.all_reduce(flat, std::span<const float>(flat), reduce_op::mean);
                unpack(b);
                ++reductions_;
            }
        }
    }

    /// Ends the step: every gradient must have been marked ready; buckets are all reduced.
    /// Example: `b.finish(comm);`
    template <communicator Comm>
    void finish(Comm&& comm) {
        for (std::size_t i = 0; i < grads_.size(); ++i)
            llm::check(marked_[i], "gradient_buckets::finish: gradient ", i, " was never marked ready in this step");
        if constexpr (async_all_reduce<std::remove_cvref_t<Comm>>) {
            using handle = decltype(comm.start_all_reduce(std::span<float>(), reduce_op::mean));
            if (auto* flying = std::any_cast<std::vector<std::pair<std::size_t, handle>>>(&in_flight_)) {
                for (auto& [b, h] : *flying) {
                    comm.wait(h);
                    unpack(buckets_[b]);
                }
                flying->clear();
            }
        } else {
            (void)comm;  // every bucket was reduced by ready()
        }
        for (auto& b : buckets_) b.marked = 0;
        std::fill(marked_.begin(), marked_.end(), 0);
    }

private:
    struct bucket_state {
        std::vector<std::size_t> members;
        std::size_t elements = 0, marked = 0, offset = 0;  // offset: of its staging buffer
    };

    std::span<float> bucket_buffer(const bucket_state& b) { return std::span<float>(staging_).subspan(b.offset, b.elements); }
    void pack(const bucket_state& b) {
        auto at = staging_.begin() + static_cast<std::ptrdiff_t>(b.offset);
        for (const std::size_t k : b.members) at = std::copy(grads_[k].begin(), grads_[k].end(), at);
    }
    void unpack(const bucket_state& b) {
        auto at = staging_.begin() + static_cast<std::ptrdiff_t>(b.offset);
        for (const std::size_t k : b.members) {
            std::copy_n(at, grads_[k].size(), grads_[k].begin());
            at += static_cast<std::ptrdiff_t>(grads_[k].size());
        }
    }

    std::vector<std::span<float>> grads_;
    std::vector<bucket_state> buckets_;
    std::vector<std::size_t> bucket_of_;
    std::vector<float> staging_;
    std::vector<std::uint8_t> marked_;
    std::any in_flight_;  // (bucket, handle) of the reductions started and not yet waited for (async communicators)
    std::size_t reductions_ = 0;
};

/// ZeRO-1 partition of a flat buffer of `elements` values over `ranks` ranks: the buffer is
/// padded to padded_size() = ranks x shard_size() and rank r owns [r x shard_size(), (r + 1) x
/// shard_size()). Each rank keeps optimizer state for its shard only (1/ranks of it).
/// Example: `llm::dist::zero1_partition part(n_params, comm.size());`
struct zero1_partition {
    /// The partition of `elements` values over `ranks` ranks (ranks >= 1).
    zero1_partition(std::size_t elements, std::size_t ranks) : elements_(elements), ranks_(ranks) {
        llm::check(ranks >= 1, "zero1_partition: ranks must be >= 1");
        shard_ = (elements + ranks - 1) / ranks;
    }
    std::size_t elements() const noexcept { return elements_; }             ///< values in the unpadded buffer
    std::size_t shard_size() const noexcept { return shard_; }              ///< values per rank
    std::size_t padded_size() const noexcept { return shard_ * ranks_; }    ///< buffer size with padding
    std::size_t shard_begin(std::size_t rank) const noexcept { return rank * shard_; }  ///< first value of rank's shard
    /// Values of rank's shard that are real (not padding).
    std::size_t shard_elements(std::size_t rank) const noexcept {
        const std::size_t b = std::min(elements_, rank * shard_);
        return std::min(elements_, b + shard_) - b;
    }

private:
    std::size_t elements_, ranks_, shard_;
};

/// One ZeRO-1 step over flat fp32 buffers of padded_size() values (padding zero): the gradients
/// are reduce-scattered (mean) into grad_shard (shard_size() values, this rank's shard), then
/// `update(param_shard, grad_shard, offset)` updates this rank's parameter shard in place (with
/// optimizer state for that shard only; offset = the shard's first index in the flat buffer; the
/// spans cover the real values, padding left out), then the parameters are all-gathered so every
/// rank holds them all. The same parameters as all-reducing the gradients and updating every
/// value on every rank, with 1/ranks of the optimizer state.
/// Example: `llm::dist::zero1_step(params, grad_shard, grads, part, [&](auto p, auto g, std::size_t off) { adam(p, g, off); }, comm);`
template <communicator Comm, class Update>
    requires std::invocable<Update&, std::span<float>, std::span<const float>, std::size_t>
void zero1_step(std::span<float> params, std::span<float> grad_shard, std::span<const float> grads, const zero1_partition& part,
                Update&& update, Comm&& comm) {
    const std::size_t r = comm.rank();
    llm::check(params.size() == part.padded_size() && grads.size() == part.padded_size() && grad_shard.size() == part.shard_size(),
               "zero1_step: params has ", params.size(), " and grads ", grads.size(), " values, expected padded_size() = ", part.padded_size(),
               "; grad_shard has ", grad_shard.size(), ", expected shard_size() = ", part.shard_size());
    comm.reduce_scatter(grad_shard, grads, reduce_op::mean);
    const std::size_t begin = part.shard_begin(r), real = part.shard_elements(r);
    update(params.subspan(begin, real), std::span<const float>(grad_shard.first(real)), begin);
    // all_gather from this rank's own block of params (in place).
    comm.all_gather(params, std::span<const float>(params.subspan(begin, part.shard_size())));
}

}  // namespace llm::dist
