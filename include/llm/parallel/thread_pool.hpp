// SPDX-License-Identifier: Apache-2.0
// llm::parallel::thread_pool: a fixed set of std::jthread workers plus the caller, and default_pool().
#pragma once

#include <llm/core/error.hpp>
#include <llm/parallel/detail/spin.hpp>
#include <llm/parallel/policy.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace llm::parallel {

/// The largest thread count a pool accepts: a guard against typos such as
/// LLM_NUM_THREADS=80000 rather than a limit of the design.
inline constexpr std::size_t max_threads = 4096;

namespace detail {

/// True on a pool's worker threads, and on a calling thread while it runs chunks of a
/// distributed job. A parallel_for issued there runs inline: the workers are already busy
/// with the outer job, and waiting for them from inside that job could deadlock.
inline thread_local bool in_parallel_region = false;

class region_guard {
public:
    region_guard() noexcept : saved_(in_parallel_region) { in_parallel_region = true; }
    ~region_guard() { in_parallel_region = saved_; }
    region_guard(const region_guard&) = delete;
    region_guard& operator=(const region_guard&) = delete;

private:
    bool saved_;
};

/// Parses a thread count such as the value of LLM_NUM_THREADS: a plain decimal integer in
/// [1, max_threads], nothing else (no sign, no spaces, no suffix). `name` is what the
/// message calls the value. Throws llm::error otherwise.
inline std::size_t parse_thread_count(std::string_view text, std::string_view name) {
    std::size_t value = 0;
    const char* const first = text.data();
    const char* const last = first + text.size();
    const auto [end, status] = std::from_chars(first, last, value);
    llm::check(status == std::errc{} && end == last && value >= 1 && value <= max_threads,
               "default_thread_count: ", name, " = \"", text,
               "\" is not a thread count; expected an integer in [1, ", max_threads, "]");
    return value;
}

}  // namespace detail

/// The thread count a default-constructed pool gets: the environment variable
/// LLM_NUM_THREADS when it is set and not empty (a bad value throws llm::error naming it:
/// a silently ignored typo would make benchmarks lie), else
/// std::thread::hardware_concurrency() (1 when that is unknown).
/// Example: `std::size_t n = llm::parallel::default_thread_count();  // LLM_NUM_THREADS=2 -> 2`
inline std::size_t default_thread_count() {
    const char* const text = std::getenv("LLM_NUM_THREADS");
    if (text != nullptr && *text != '\0') {
        return detail::parse_thread_count(text, "LLM_NUM_THREADS");
    }
    const std::size_t hardware = std::thread::hardware_concurrency();
    return std::clamp<std::size_t>(hardware, 1, max_threads);
}

/// A pool of `size()` threads that run the chunks of parallel_for: `size() - 1` std::jthread
/// workers started once in the constructor, plus the thread that calls parallel_for, which
/// works on chunks too. So thread_pool(2) keeps two cores busy, and thread_pool(1) has no
/// workers and runs everything inline.
///
/// Scheduling: chunks are claimed one at a time from a shared counter, so fast threads take
/// more chunks; which thread runs a chunk varies, the chunk boundaries never do.
/// Waiting: threads spin for at most detail::spin_budget (2 ms) after a job and then sleep
/// in the kernel (std::atomic::wait), so back-to-back calls are cheap and an idle pool uses
/// no CPU. Measured hand-off costs are in BENCHMARKS.md (bench_parallel).
/// Runs inline (on the caller, in chunk order) instead of handing off when: there is one
/// chunk, the pool has one thread, the caller is itself inside a parallel_for (nesting), or
/// another thread is using the pool at that moment (concurrent callers never wait on each
/// other; the later one runs alone).
/// Exceptions: the first exception caught is rethrown to the caller once every chunk already
/// started has finished; chunks not yet started are skipped. The pool stays usable. (Without
/// exceptions, LLM_NO_EXCEPTIONS, an error in a chunk aborts the program.)
/// Not movable (workers refer to it). Destroying it while a call on it is running is an error.
/// Example: `llm::parallel::thread_pool pool(2); llm::parallel::parallel_for(pool, n, 256, body);`
class thread_pool {
public:
    /// Starts `n_threads - 1` workers. n_threads in [1, max_threads], else llm::error.
    explicit thread_pool(std::size_t n_threads = default_thread_count()) : n_threads_(n_threads) {
        llm::check(n_threads >= 1 && n_threads <= max_threads, "thread_pool: n_threads = ",
                   n_threads, " must be in [1, ", max_threads, "]");
        workers_.reserve(n_threads - 1);
#if defined(LLM_NO_EXCEPTIONS)
        start_workers();  // a failure to start a thread terminates
#else
        try {
            start_workers();
        } catch (...) {
            stop_workers();  // the destructor will not run: join what was started
            throw;
        }
#endif
    }

    ~thread_pool() { stop_workers(); }

    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    /// Number of threads that run chunks, the calling thread included.
    [[nodiscard]] std::size_t size() const noexcept { return n_threads_; }

    /// The policy entry point (see llm::parallel::policy): runs task(k) for k in
    /// [0, n_chunks) on the workers and the calling thread; returns when all are done.
    void run(std::size_t n_chunks, chunk_task task) {
        if (n_chunks == 0) {
            return;
        }
        if (n_chunks == 1 || workers_.empty() || detail::in_parallel_region ||
            busy_.exchange(true, std::memory_order_acquire)) {
            for (std::size_t k = 0; k < n_chunks; ++k) {
                task(k);
            }
            return;
        }
        struct release_busy {
            std::atomic<bool>& busy;
            ~release_busy() { busy.store(false, std::memory_order_release); }
        } release{busy_};

        // Publish the job. The workers are all outside (active_ is closed), so plain writes
        // are safe; the release store that opens the job makes them visible to every
        // worker whose entry (an acquire RMW) reads it.
        n_chunks_ = n_chunks;
        task_ = &task;
        error_ = nullptr;
        failed_.store(false, std::memory_order_relaxed);
        next_chunk_.store(0, std::memory_order_relaxed);
        active_.store(open_bit, std::memory_order_release);
        epoch_.fetch_add(1, std::memory_order_release);
        epoch_.notify_all();

        {
            detail::region_guard region;
            work();
        }

        // Close: every chunk is claimed, so wait for the workers still inside to leave,
        // then clear the open bit so late-waking workers cannot enter. A worker that enters
        // between the wait and the CAS finds no chunk and leaves at once: retry.
        for (;;) {
            detail::wait_until(active_, [](std::uint32_t v) { return v == open_bit; });
            std::uint32_t expected = open_bit;
            if (active_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
                break;
            }
        }
        task_ = nullptr;
#if !defined(LLM_NO_EXCEPTIONS)
        if (error_) {
            std::rethrow_exception(std::exchange(error_, nullptr));
        }
#endif
    }

private:
    // active_ holds the open flag of the current job and the number of workers inside it.
    static constexpr std::uint32_t open_bit = 0x8000'0000u;
    // Separate cache lines: idle workers poll epoch_, every claim writes next_chunk_, and
    // entries and exits write active_. 64 bytes is the line size of x86 and most Arm cores.
    static constexpr std::size_t cache_line = 64;

    void start_workers() {
        for (std::size_t i = 1; i < n_threads_; ++i) {
            workers_.emplace_back([this] { worker_loop(); });
        }
    }

    void worker_loop() noexcept {
        detail::in_parallel_region = true;
        std::uint32_t seen = 0;
        for (;;) {
            seen = detail::wait_until(epoch_, [seen](std::uint32_t e) { return e != seen; });
            if (stop_.load(std::memory_order_acquire)) {
                return;
            }
            if (try_enter()) {
                work();
                leave();
            }
        }
    }

    // Joins a job only while it is open; the count keeps the caller from closing it (and
    // from reusing the job fields) while this worker may still read them.
    bool try_enter() noexcept {
        std::uint32_t v = active_.load(std::memory_order_relaxed);
        while ((v & open_bit) != 0) {
            if (active_.compare_exchange_weak(v, v + 1, std::memory_order_acquire,
                                              std::memory_order_relaxed)) {
                return true;
            }
        }
        return false;
    }

    void leave() noexcept {
        if (active_.fetch_sub(1, std::memory_order_release) == (open_bit | 1u)) {
            active_.notify_one();  // the last one out may have a sleeping caller to wake
        }
    }

    // Claims chunks until none are left. Never throws: a chunk's exception is kept for the
    // caller and the remaining unclaimed chunks are cancelled.
    void work() noexcept {
        const std::size_t n = n_chunks_;
        for (;;) {
            const std::size_t k = next_chunk_.fetch_add(1, std::memory_order_relaxed);
            if (k >= n) {
                return;
            }
#if defined(LLM_NO_EXCEPTIONS)
            (*task_)(k);  // errors abort (llm::fail), so there is nothing to keep
#else
            try {
                (*task_)(k);
            } catch (...) {
                if (!failed_.exchange(true, std::memory_order_relaxed)) {
                    error_ = std::current_exception();
                }
                next_chunk_.store(n, std::memory_order_relaxed);
            }
#endif
        }
    }

    void stop_workers() noexcept {
        stop_.store(true, std::memory_order_relaxed);
        epoch_.fetch_add(1, std::memory_order_release);
        epoch_.notify_all();
        workers_.clear();  // std::jthread joins on destruction
    }

    // Bumped once per published job (and once to stop); workers wait on it.
    alignas(cache_line) std::atomic<std::uint32_t> epoch_{0};
    std::atomic<bool> stop_{false};
    alignas(cache_line) std::atomic<std::uint32_t> active_{0};
    alignas(cache_line) std::atomic<std::size_t> next_chunk_{0};
    // The current job; written by the caller only while the job is closed.
    alignas(cache_line) std::size_t n_chunks_ = 0;
    const chunk_task* task_ = nullptr;
    std::atomic<bool> failed_{false};
    std::exception_ptr error_;
    std::atomic<bool> busy_{false};  // a distributed job is in flight
    std::size_t n_threads_;
    std::vector<std::jthread> workers_;  // declared last: joined before the fields above die
};

static_assert(policy<thread_pool>);

/// The process-wide pool used by parallel_for(n, grain, f): created on first use with
/// default_thread_count() threads (so LLM_NUM_THREADS is read then), joined at exit.
/// If LLM_NUM_THREADS is bad the call throws llm::error and a later call tries again.
/// Example: `std::size_t threads = llm::parallel::default_pool().size();`
inline thread_pool& default_pool() {
    static thread_pool pool(default_thread_count());
    return pool;
}

}  // namespace llm::parallel
