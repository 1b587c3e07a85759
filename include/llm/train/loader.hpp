// SPDX-License-Identifier: Apache-2.0
// Batches of (inputs, targets) from a token file, as llm.c's loader reads them, with an optional
// seeded shuffle and a position that can be saved and restored.
#pragma once

#include <llm/core/error.hpp>
#include <llm/train/detail/flat.hpp>
#include <llm/train/rng.hpp>
#include <llm/train/token_file.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace llm::train {

/// Where a batch_loader is: the epoch and the index of the next batch within it.
struct data_position {
    std::uint64_t epoch = 0;  ///< passes over the file completed
    std::uint64_t batch = 0;  ///< the next batch of this epoch
    /// Equal when both fields are.
    friend bool operator==(const data_position&, const data_position&) = default;
};

/// How a batch_loader orders its windows, and which share of each batch it reads.
/// Example: `llm::train::loader_options o{.shuffle = true, .seed = 1, .rank = comm.rank(), .ranks = comm.size()};`
struct loader_options {
    bool shuffle = false;    ///< permute the windows each epoch (seeded; llm.c order when false)
    std::uint64_t seed = 0;  ///< the shuffle's seed
    std::size_t rank = 0;    ///< data parallel: this rank (reads rows rank B .. rank B + B - 1 of each global batch)
    std::size_t ranks = 1;   ///< data parallel: the number of ranks (a global batch has ranks x B rows)
};

/// Batches of B rows of T + 1 consecutive tokens: inputs are the first T, targets the last T.
/// Without shuffling, batch k row i starts at token (k B + i) T, as llm.c's DataLoader reads a
/// shard; an epoch has (N - 1) / (B T) batches (what is left at the end is not read) and the
/// next epoch starts over. With shuffling, the epoch's windows (each starting at a multiple of
/// T) are permuted by a seeded Fisher-Yates shuffle that depends only on (seed, epoch), so a
/// position (epoch, batch) determines the batch: save position(), seek() to resume.
/// Data parallel (options.ranks = N > 1): the loader of rank r with batch B reads rows r B ..
/// r B + B - 1 of the batch a single loader with batch N B reads at the same position (same
/// windows, same shuffle), so N ranks together read exactly the single process's batches and
/// every rank's position is the same (any rank's position() resumes all of them).
/// The loader borrows the token file, which must outlive it.
/// Example:
/// ```
/// llm::train::batch_loader loader(file, 4, 64);
/// llm::tensor<std::int32_t, llm::dims<2>> x(4, 64), y(4, 64);
/// loader.next(x, y);
/// ```
class batch_loader {
public:
    /// B >= 1 rows of T >= 1 tokens; llm::error when the file holds no batch (fewer than B T + 1 tokens).
    batch_loader(const token_file& tokens, std::size_t batch, std::size_t seq, const loader_options& options = {})
        : f_(&tokens), b_(batch), t_(seq), o_(options) {
        constexpr const char* fn = "batch_loader";
        check(batch >= 1 && seq >= 1, fn, ": batch = ", batch, " and seq = ", seq, " must be >= 1");
        check(options.ranks >= 1 && options.rank < options.ranks, fn, ": rank = ", options.rank, " must be below ranks = ", options.ranks);
        check(batch <= std::numeric_limits<std::size_t>::max() / seq / options.ranks, fn, ": ranks x batch x seq = ", options.ranks, " x ",
              batch, " x ", seq, " overflows");
        const std::size_t bt = options.ranks * batch * seq;
        check(tokens.size() >= 1 && (tokens.size() - 1) / bt >= 1, fn, ": '", tokens.name(), "' has ", tokens.size(),
              " tokens, fewer than one batch of ", options.ranks * batch, " x ", seq, " + 1 = ", bt + 1,
              options.ranks > 1 ? " (the global batch of all ranks)" : "");
        batches_ = (tokens.size() - 1) / bt;
        load_epoch();
    }

    /// Batches per epoch: (N - 1) / (B T) (with ranks: (N - 1) / (ranks B T), global batches).
    std::size_t batches_per_epoch() const noexcept { return batches_; }
    /// Rows per batch.
    std::size_t batch() const noexcept { return b_; }
    /// Tokens per row.
    std::size_t seq() const noexcept { return t_; }
    /// The position of the next batch.
    data_position position() const noexcept { return pos_; }

    /// Moves to a saved position (llm::error when its batch is not below batches_per_epoch()).
    void seek(const data_position& p) {
        check(p.batch < batches_, "batch_loader::seek: batch ", p.batch, " is not below the ", batches_,
              " batches per epoch of '", f_->name(), "'");
        const bool new_epoch = p.epoch != pos_.epoch;
        pos_ = p;
        if (new_epoch) load_epoch();
    }

    /// Writes the batch at position() into inputs and targets and moves to the next one.
    /// inputs, targets: writable integral views, [B, T] or [B T], contiguous; an element type
    /// too narrow for a token is llm::error naming the token.
    template <any_view I, any_view T>
    void next(I&& inputs, T&& targets) {
        read(pos_, inputs, targets);
        if (++pos_.batch == batches_) {
            pos_.batch = 0;
            ++pos_.epoch;
            load_epoch();
        }
    }

    /// The first token of row `row` of the batch at `p` (for tests and logs).
    std::uint64_t window_start(const data_position& p, std::size_t row) const {
        check(p.batch < batches_ && row < b_, "batch_loader::window_start: batch ", p.batch, ", row ", row, " out of range");
        const std::uint64_t w = (p.batch * o_.ranks + o_.rank) * b_ + row;
        if (!o_.shuffle) return w * t_;
        return (p.epoch == pos_.epoch ? perm_ : permutation(p.epoch))[static_cast<std::size_t>(w)] * t_;
    }

private:
    std::vector<std::uint64_t> permutation(std::uint64_t epoch) const {
        std::uint64_t s = o_.seed ^ (0xD1B54A32D192ED03ull * (epoch + 1));
        return seeded_permutation(static_cast<std::uint64_t>(batches_) * o_.ranks * b_, splitmix64(s));
    }
    void load_epoch() {
        if (o_.shuffle) perm_ = permutation(pos_.epoch);
    }

    template <class I, class T>
    void read(const data_position& p, I& inputs, T& targets) const {
        constexpr const char* fn = "batch_loader::next";
        using EI = view_element_t<I>;
        using ET = view_element_t<T>;
        static_assert(std::integral<EI> && !std::is_const_v<EI> && std::integral<ET> && !std::is_const_v<ET>,
                      "batch_loader::next: inputs and targets must be writable views of an integral type");
        static_assert(std::remove_cvref_t<I>::rank() <= 2 && std::remove_cvref_t<T>::rank() <= 2,
                      "batch_loader::next: inputs and targets are [B, T] or [B * T]");
        const auto x = detail::flat_of(fn, "inputs", inputs);
        const auto y = detail::flat_of(fn, "targets", targets);
        check(x.size == b_ * t_ && y.size == b_ * t_, fn, ": inputs have ", x.size, " and targets ", y.size,
              " elements; a batch has B x T = ", b_, " x ", t_, " = ", b_ * t_);
        if constexpr (std::remove_cvref_t<I>::rank() == 2)
            check(static_cast<std::size_t>(inputs.extent(0)) == b_, fn, ": inputs have ", inputs.extent(0), " rows, expected B = ", b_);
        if constexpr (std::remove_cvref_t<T>::rank() == 2)
            check(static_cast<std::size_t>(targets.extent(0)) == b_, fn, ": targets have ", targets.extent(0), " rows, expected B = ", b_);
        for (std::size_t r = 0; r < b_; ++r) {
            const std::size_t start = static_cast<std::size_t>(window_start(p, r));
            for (std::size_t j = 0; j < t_; ++j) {
                x.data[r * t_ + j] = cast<EI>(fn, (*f_)[start + j], start + j);
                y.data[r * t_ + j] = cast<ET>(fn, (*f_)[start + j + 1], start + j + 1);
            }
        }
    }

    template <class E>
    E cast(const char* fn, std::uint32_t t, std::size_t i) const {
        if constexpr (sizeof(E) < 4 || (sizeof(E) == 4 && std::is_signed_v<E>))
            check(t <= static_cast<std::uint64_t>(std::numeric_limits<E>::max()), fn, ": token ", i, " of '", f_->name(),
                  "' is ", t, ", too large for the ", sizeof(E) * 8, "-bit element type");
        return static_cast<E>(t);
    }

    const token_file* f_;
    std::size_t b_, t_;
    loader_options o_;
    std::size_t batches_ = 0;
    data_position pos_{};
    std::vector<std::uint64_t> perm_;
};

}  // namespace llm::train
