// SPDX-License-Identifier: Apache-2.0
// llm::workspace: caller-owned, reusable scratch memory that kernels borrow for one call, so repeated calls allocate nothing.
#pragma once

#include <llm/config.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm {

/// Scratch memory a kernel borrows for the length of one call (attention's packed K and V
/// tiles, per-thread accumulators, decode's partial outputs), owned by the caller so that
/// repeated calls (a decode loop, a training step) allocate nothing once it has grown to their
/// size. Kernels that take one have it as their last argument before the executor
/// (docs/conventions.md); their overloads without it use a temporary workspace.
///
/// How it works: one 64-byte aligned block, handed out as a stack. A kernel opens a
/// workspace::frame, takes regions with take<T>(n), and the frame's destructor gives them back.
/// A request that does not fit the block gets a block of its own (the call still succeeds);
/// when its frame closes, the block is kept, and the next request that does not fit takes the
/// smallest kept block that fits (one it fits in none of frees the kept blocks smaller than it
/// and allocates): a model's first step spills the same buffers in every layer, and freed and
/// allocated again each would be page-faulted in anew (852M model, 128-token prefill on one
/// core: 62 allocations of 1-3 MiB and a sixth of the time in the kernel's page handling).
/// When the outermost frame closes, the kept blocks are freed and the main block is regrown to
/// the largest total that was in use at once, so the next call of the same sizes takes
/// everything from it, allocation-free.
///
/// Pointers from take() stay valid until the frame that took them closes. Not thread-safe: one
/// workspace serves one call at a time (a kernel carves its per-thread regions out of it before
/// its parallel loop); threads calling kernels concurrently each need their own workspace.
/// Example: `llm::workspace ws; for (int t = 0; t < n; ++t) llm::attention::decode_attention(out, cache, q, llm::attention::causal{}, {}, ws, pool);`
class workspace {
public:
    /// Alignment in bytes of every region take() returns: a cache line, one AVX-512 vector.
    static constexpr std::size_t alignment = 64;

    /// Empty: the first call that uses it allocates.
    workspace() noexcept = default;

    /// Pre-sized to `bytes` (rounded up to the alignment), so calls that need at most that much
    /// never allocate. Throws llm::error when the size exceeds the allocation limit or the
    /// allocation fails.
    explicit workspace(std::size_t bytes) : main_(block::make(round_up(bytes))) {}

    workspace(const workspace&) = delete;             ///< Not copyable: regions point into it.
    workspace& operator=(const workspace&) = delete;  ///< Not copyable: regions point into it.
    /// Takes the memory of `other` (no frame may be open on it), which is left empty.
    workspace(workspace&& other) noexcept
        : main_(std::exchange(other.main_, {})), spills_(std::move(other.spills_)), kept_(std::move(other.kept_)),
          offset_(std::exchange(other.offset_, 0)),
          used_(std::exchange(other.used_, 0)), peak_(std::exchange(other.peak_, 0)), depth_(std::exchange(other.depth_, 0)) {}
    /// Frees ours and takes the memory of `other` (no frame may be open on either).
    workspace& operator=(workspace&& other) noexcept {
        if (this != &other) {
            workspace moved(std::move(other));
            swap(moved);
        }
        return *this;
    }
    /// Frees the memory.
    ~workspace() {
        block::free(main_);
        for (auto& b : spills_) {
            block::free(b);
        }
        free_kept();
    }

    /// Bytes of the main block: what calls can take without allocating.
    [[nodiscard]] std::size_t capacity() const noexcept { return main_.bytes; }

    /// The most bytes that were in use at once since construction (a kernel's need, once it has
    /// run): a workspace constructed with this many serves those calls allocation-free.
    [[nodiscard]] std::size_t high_water() const noexcept { return peak_; }

    /// Scope of a kernel's borrowing: regions taken while it is open are returned when it
    /// closes. Frames nest (a layer's frame holds its buffer while a kernel it calls opens its
    /// own); they close in reverse order of opening, which the RAII object guarantees.
    /// Example: `llm::workspace::frame f(ws); float* p = ws.take<float>(n);`
    class frame {
    public:
        /// Opens a frame on `ws`.
        explicit frame(workspace& ws) noexcept
            : ws_(ws), offset_(ws.offset_), used_(ws.used_), spills_(ws.spills_.size()) {
            ++ws_.depth_;
        }
        frame(const frame&) = delete;             ///< A frame is a scope, not a value.
        frame& operator=(const frame&) = delete;  ///< A frame is a scope, not a value.
        /// Returns the regions taken since the frame opened; the outermost frame also regrows
        /// the main block when requests spilled out of it.
        ~frame() { ws_.close(offset_, used_, spills_); }

    private:
        workspace& ws_;
        std::size_t offset_;
        std::size_t used_;
        std::size_t spills_;
    };

    /// `n` uninitialised elements of T, 64-byte aligned, valid until the innermost open frame
    /// closes (T is an implicit-lifetime type: trivially copyable and destructible). n == 0
    /// gives a valid pointer to no elements. Must be called inside a frame. `fn` and `what`
    /// name the caller and the region in the llm::error thrown when the byte count overflows,
    /// exceeds llm::max_allocation_bytes or a needed allocation fails.
    template <class T>
        requires std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T> && (alignof(T) <= alignment)
    [[nodiscard]] T* take(std::size_t n, const char* fn = "workspace::take", const char* what = "a region") {
        llm::check(depth_ > 0, fn, ": no llm::workspace::frame is open (open one before take)");
        const std::size_t bytes = round_up(checked_bytes<T>(n, fn, what));
        used_ = checked_add(used_, bytes, fn, "the workspace in use");
        peak_ = std::max(peak_, used_);
        if (bytes <= main_.bytes - offset_) {
            std::byte* p = main_.data + offset_;
            offset_ += bytes;
            return reinterpret_cast<T*>(p);
        }
        // Room for this spill, and for every spill to be kept when its frame closes (close()
        // cannot allocate): kept_.size() + spills_.size() never exceeds kept_'s capacity.
        allocating(2 * sizeof(block), fn, what, [&] {
            const std::size_t slots = std::max<std::size_t>(8, kept_.size() + spills_.size() + 1);
            spills_.reserve(slots);
            kept_.reserve(slots);
        });
        std::size_t best = kept_.size();  // the smallest kept block that fits
        for (std::size_t i = 0; i < kept_.size(); ++i) {
            if (kept_[i].bytes >= bytes && (best == kept_.size() || kept_[i].bytes < kept_[best].bytes)) {
                best = i;
            }
        }
        if (best < kept_.size()) {
            spills_.push_back(kept_[best]);
            kept_[best] = kept_.back();
            kept_.pop_back();
        } else {
            // none fits: the kept blocks are all smaller, so they go, and a new one takes their place
            free_kept();
            spills_.push_back(block::make(std::max(bytes, alignment), fn, what));
        }
        return reinterpret_cast<T*>(spills_.back().data);
    }

    /// Exchanges the memory of two workspaces (no frame may be open on either).
    void swap(workspace& other) noexcept {
        std::swap(main_, other.main_);
        spills_.swap(other.spills_);
        kept_.swap(other.kept_);
        std::swap(offset_, other.offset_);
        std::swap(used_, other.used_);
        std::swap(peak_, other.peak_);
        std::swap(depth_, other.depth_);
    }

private:
    struct block {
        std::byte* data = nullptr;
        std::size_t bytes = 0;

        // nothrow aligned new: a failure becomes llm::error naming the size, with or without exceptions.
        static block make(std::size_t bytes, const char* fn = "workspace", const char* what = "its memory") {
            if (bytes == 0) {
                return {};
            }
            llm::check(bytes <= max_allocation_bytes, fn, ": ", what, " need ", bytes,
                       " bytes, more than the allocation limit of ", max_allocation_bytes, " bytes");
            void* p = ::operator new(bytes, std::align_val_t{alignment}, std::nothrow);
            llm::check(p != nullptr, fn, ": allocating ", what, " (", bytes, " bytes of workspace) failed: out of memory");
            return {static_cast<std::byte*>(p), bytes};
        }
        static void free(block& b) noexcept {
            if (b.data != nullptr) {
                ::operator delete(b.data, std::align_val_t{alignment});
            }
            b = {};
        }
    };

    static std::size_t round_up(std::size_t bytes) {
        llm::check(bytes <= static_cast<std::size_t>(-1) - alignment, "workspace: ", bytes, " bytes overflow std::size_t");
        return (bytes + alignment - 1) / alignment * alignment;
    }

    void close(std::size_t offset, std::size_t used, std::size_t spills) noexcept {
        offset_ = offset;
        used_ = used;
        for (std::size_t i = spills; i < spills_.size(); ++i) {
            kept_.push_back(spills_[i]);  // within the capacity take() reserved
        }
        spills_.resize(spills);
        if (--depth_ == 0) {
            free_kept();
        }
        if (depth_ == 0 && peak_ > main_.bytes) {
            // Regrow to the high-water mark. Out of memory here only means the next call spills
            // again, so a failure leaves the block empty rather than throwing from a destructor.
            block::free(main_);
            if (void* p = ::operator new(peak_, std::align_val_t{alignment}, std::nothrow); p != nullptr) {
                main_ = {static_cast<std::byte*>(p), peak_};
            }
        }
    }

    void free_kept() noexcept {
        for (auto& b : kept_) {
            block::free(b);
        }
        kept_.clear();
    }

    block main_;                 // the main block
    std::vector<block> spills_;  // requests that did not fit, until their frame closes
    std::vector<block> kept_;    // spills given back, until the outermost frame closes
    std::size_t offset_ = 0;     // bytes of main_ in use
    std::size_t used_ = 0;       // bytes in use, main_ and spills together
    std::size_t peak_ = 0;       // the most bytes in use at once
    int depth_ = 0;              // frames open
};

}  // namespace llm
