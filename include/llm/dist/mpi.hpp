// SPDX-License-Identifier: Apache-2.0
// llm::dist::mpi: the MPI communicator (needs LLM_HAS_MPI: link the llm::mpi CMake target). Counts
// above INT_MAX are chunked, MPI errors become llm::error naming the call, and a watchdog ends the
// job, with a message naming the call, when a dead or stalled peer never completes a collective.
#pragma once

#include <llm/dist/communicator.hpp>

// Without LLM_HAS_MPI (the llm::mpi CMake target defines it) this header declares nothing, so
// code can include it unconditionally and test `#if LLM_HAS_MPI` around its use.
#if defined(LLM_HAS_MPI) && LLM_HAS_MPI

// MPI's C API only: the deprecated C++ bindings are not needed (and do not build warning-free).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace llm::dist {

namespace detail {

/// "MPI_ERR_xxx: text" for an MPI error code.
inline std::string mpi_error_text(int code) {
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
        return "MPI error code " + std::to_string(code);
    return std::string(text, static_cast<std::size_t>(length));
}

/// Raises llm::error naming the MPI call, the rank and the MPI error text when rc is not MPI_SUCCESS.
inline void check_mpi(int rc, const char* call, std::size_t rank, std::size_t size) {
    if (rc != MPI_SUCCESS) [[unlikely]]
        llm::fail("llm::dist::mpi: ", call, " failed on rank ", rank, " of ", size, ": ", mpi_error_text(rc));
}

template <class T>
MPI_Datatype mpi_type() {
    if constexpr (std::same_as<T, float>)
        return MPI_FLOAT;
    else if constexpr (std::same_as<T, double>)
        return MPI_DOUBLE;
    else if constexpr (std::same_as<T, long double>)
        return MPI_LONG_DOUBLE;
    else if constexpr (std::same_as<T, bf16>)
        return MPI_UINT16_T;  // reduced by the bf16 operations below
    else if constexpr (std::same_as<T, std::byte>)
        return MPI_BYTE;
    else if constexpr (std::same_as<T, char>)
        return MPI_CHAR;
    else if constexpr (std::is_signed_v<T> && sizeof(T) == 1)
        return MPI_INT8_T;
    else if constexpr (std::is_signed_v<T> && sizeof(T) == 2)
        return MPI_INT16_T;
    else if constexpr (std::is_signed_v<T> && sizeof(T) == 4)
        return MPI_INT32_T;
    else if constexpr (std::is_signed_v<T> && sizeof(T) == 8)
        return MPI_INT64_T;
    else if constexpr (sizeof(T) == 1)
        return MPI_UINT8_T;
    else if constexpr (sizeof(T) == 2)
        return MPI_UINT16_T;
    else if constexpr (sizeof(T) == 4)
        return MPI_UINT32_T;
    else if constexpr (sizeof(T) == 8)
        return MPI_UINT64_T;
    else
        static_assert(sizeof(T) == 0, "llm::dist::mpi: no MPI datatype for this element type");
}

// bf16 sum: each pair added in fp32 and rounded to bf16 (MPI has no bf16 type).
extern "C" inline void llm_mpi_bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
    const auto* a = static_cast<const bf16*>(in);
    auto* b = static_cast<bf16*>(inout);
    for (int i = 0; i < *len; ++i)
        b[i] = bf16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

}  // namespace detail

/// Options of the MPI communicator.
struct mpi_options {
    /// Watchdog: a collective not complete after this long (a peer died, hung or left the job)
    /// makes this rank print the call, its size and its rank to stderr and exit with status 75,
    /// so that mpirun ends the whole job instead of letting it hang. A thread of the communicator
    /// checks the deadline (every timeout / 8, at most 1 s); the collectives themselves are MPI's
    /// blocking calls, at MPI's speed. 0: no watchdog.
    std::chrono::milliseconds timeout{std::chrono::minutes(5)};
    /// The most elements one MPI call moves (MPI counts are int); larger transfers are cut into
    /// pieces of this many. Lower it only to test the chunking.
    std::size_t max_count = INT_MAX;
};

/// The MPI communicator: a duplicate of MPI_COMM_WORLD (or of a given communicator), with
/// MPI_ERRORS_RETURN so every MPI failure is an llm::error naming the call. Constructing the
/// first one initialises MPI (MPI_THREAD_FUNNELED) if nobody did; destroying it finalises MPI
/// again (or aborts the job if a collective failed, or an exception is unwinding).
/// Collectives are MPI's blocking calls, each under a watchdog (options().timeout) that ends the
/// job if it does not complete.
/// Element types: llm::dist::transferable; bf16 sums are done in fp32 per pair.
/// Example: `llm::dist::mpi comm; llm::dist::all_reduce(grad, llm::dist::reduce_op::mean, comm);`
class mpi {
public:
    /// MPI_COMM_WORLD (MPI initialised here if needed).
    /// Example: `llm::dist::mpi comm({.timeout = std::chrono::minutes(1)});`
    explicit mpi(mpi_options options = {}) : options_(options) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (!initialized) {
            int provided = 0;
            detail::check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided),
                              "MPI_Init_thread", 0, 1);
            owns_mpi_ = true;
            // Errors of non-blocking collectives can be raised on MPI_COMM_WORLD (Open MPI's
            // schedules do): returned, not fatal, so they become llm::error too.
            detail::check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
                              "MPI_Comm_set_errhandler", 0, 1);
        }
        setup(MPI_COMM_WORLD);
    }
    /// A duplicate of `comm` (MPI already initialised by the caller, who also finalises it).
    /// Example: `llm::dist::mpi comm(MPI_COMM_WORLD, {});`
    mpi(MPI_Comm comm, mpi_options options) : options_(options) { setup(comm); }

    mpi(const mpi&) = delete;
    mpi& operator=(const mpi&) = delete;

    ~mpi() {
        if (watchdog_.joinable()) {
            {
                const std::lock_guard lock(watch_mutex_);
                watch_stop_ = true;
            }
            watch_cv_.notify_all();
            watchdog_.join();
        }
        const bool abort = failed_ || std::uncaught_exceptions() > 0;
        if (abort) {
            // A peer may be gone: MPI_Comm_free and MPI_Finalize could wait for it forever. The
            // reason goes to stderr first: the exception carrying it may never be caught.
            std::fprintf(stderr, "llm::dist::mpi: rank %zu of %zu aborts the job: %s\n", rank_, size_,
                         failed_ ? last_error_.c_str()
                                 : "an exception left the communicator's scope, so the ranks may disagree");
            std::fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 3);
            return;
        }
        if (bf16_sum_ != MPI_OP_NULL)
            MPI_Op_free(&bf16_sum_);
        if (comm_ != MPI_COMM_NULL)
            MPI_Comm_free(&comm_);
        if (owns_mpi_)
            MPI_Finalize();
    }

    std::size_t rank() const noexcept { return rank_; }               ///< this process's rank
    std::size_t size() const noexcept { return size_; }               ///< number of ranks
    const mpi_options& options() const noexcept { return options_; }  ///< the options given
    MPI_Comm native() const noexcept { return comm_; }                ///< the MPI communicator (owned)
    bool failed() const noexcept { return failed_; }  ///< whether a collective failed or timed out

    /// Ends the whole job now (MPI_Abort with `code`): for a rank that failed on its own (bad
    /// input, say) while the others may be waiting in a collective. Example: `comm.abort(2);`
    [[noreturn]] void abort(int code) {
        failed_ = true;
        MPI_Abort(MPI_COMM_WORLD, code);
        std::abort();  // MPI_Abort does not return; this tells the compiler so
    }

    /// out = op over ranks of in; out == in is in place.
    /// Example: `comm.all_reduce(out, in, llm::dist::reduce_op::sum);`
    template <reducible T>
    void all_reduce(std::span<T> out, std::span<const T> in, reduce_op op) {
        detail::check_op<T>("mpi::all_reduce", op);
        const bool same = out.data() == in.data();
        detail::check_all_reduce("mpi::all_reduce", out.size(), in.size(), same, detail::overlap(out, in));
        detail::for_each_chunk(out.size(), options_.max_count, [&](std::size_t off, std::size_t n) {
            const void* src = same ? MPI_IN_PLACE : in.data() + off;
            guarded("MPI_Allreduce", n, [&] {
                return MPI_Allreduce(src, out.data() + off, static_cast<int>(n), detail::mpi_type<T>(),
                                     sum_op<T>(), comm_);
            });
        });
        if (op == reduce_op::mean)
            divide(out);
    }

    /// An in-place all-reduce started by start_all_reduce and not yet waited for.
    template <reducible T>
    struct pending_all_reduce {
        std::span<T> buffer;                ///< the buffer being reduced (in place)
        reduce_op op = reduce_op::sum;      ///< sum or mean
        std::vector<MPI_Request> requests;  ///< one per chunk of max_count elements
    };

    /// Starts an in-place all-reduce of buffer and returns at once (MPI_Iallreduce, chunked), so
    /// computation can overlap it; test() drives it, wait() completes it (mean divides there).
    /// Several may be in flight; every rank starts them in the same order.
    /// Example: `auto h = comm.start_all_reduce(std::span<float>(b), llm::dist::reduce_op::mean); comm.wait(h);`
    template <reducible T>
    pending_all_reduce<T> start_all_reduce(std::span<T> buffer, reduce_op op) {
        detail::check_op<T>("mpi::start_all_reduce", op);
        pending_all_reduce<T> h{buffer, op, {}};
        detail::for_each_chunk(buffer.size(), options_.max_count, [&](std::size_t off, std::size_t n) {
            MPI_Request req;
            call(MPI_Iallreduce(MPI_IN_PLACE, buffer.data() + off, static_cast<int>(n), detail::mpi_type<T>(),
                                sum_op<T>(), comm_, &req),
                 "MPI_Iallreduce");
            h.requests.push_back(req);
        });
        return h;
    }
    /// Lets MPI progress a started all-reduce; true once it is complete (then wait() returns at once).
    /// Example: `while (!comm.test(h)) do_other_work();`
    template <reducible T>
    bool test(pending_all_reduce<T>& h) {
        int done = 0;
        call(MPI_Testall(static_cast<int>(h.requests.size()), h.requests.data(), &done, MPI_STATUSES_IGNORE),
             "MPI_Iallreduce");
        return done != 0;
    }
    /// Completes a started all-reduce (under the watchdog). Example: `comm.wait(h);`
    template <reducible T>
    void wait(pending_all_reduce<T>& h) {
        for (MPI_Request& r : h.requests)
            wait(r, "MPI_Iallreduce", h.buffer.size());
        h.requests.clear();
        if (h.op == reduce_op::mean)
            divide(h.buffer);
    }

    /// buffer = root's buffer. Example: `comm.broadcast(weights, 0);`
    template <transferable T>
    void broadcast(std::span<T> buffer, std::size_t root) {
        detail::check_root("mpi::broadcast", root, size_);
        detail::for_each_chunk(buffer.size(), options_.max_count, [&](std::size_t off, std::size_t n) {
            guarded("MPI_Bcast", n, [&] {
                return MPI_Bcast(buffer.data() + off, static_cast<int>(n), detail::mpi_type<T>(),
                                 static_cast<int>(root), comm_);
            });
        });
    }

    /// out[r * n, (r + 1) * n) = rank r's in. Above max_count: one chunked broadcast per rank.
    /// Example: `comm.all_gather(out, in);`
    template <transferable T>
    void all_gather(std::span<T> out, std::span<const T> in) {
        detail::check_all_gather("mpi::all_gather", out.size(), in.size(), size_);
        const std::size_t n = in.size();
        T* mine = out.data() + rank_ * n;
        if (mine != in.data())
            std::memmove(static_cast<void*>(mine), in.data(), n * sizeof(T));
        if (n <= options_.max_count) {
            guarded("MPI_Allgather", n * size_, [&] {
                return MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out.data(), static_cast<int>(n),
                                     detail::mpi_type<T>(), comm_);
            });
            return;
        }
        for (std::size_t r = 0; r < size_; ++r)
            broadcast(out.subspan(r * n, n), r);
    }

    /// out = op over ranks of in's block rank(). Above max_count: one chunked reduce per rank.
    /// Example: `comm.reduce_scatter(shard, grad, llm::dist::reduce_op::mean);`
    template <reducible T>
    void reduce_scatter(std::span<T> out, std::span<const T> in, reduce_op op) {
        detail::check_op<T>("mpi::reduce_scatter", op);
        detail::check_reduce_scatter("mpi::reduce_scatter", out.size(), in.size(), size_,
                                     detail::overlap(out, in));
        const std::size_t n = out.size();
        if (n <= options_.max_count) {
            guarded("MPI_Reduce_scatter_block", n * size_, [&] {
                return MPI_Reduce_scatter_block(in.data(), out.data(), static_cast<int>(n),
                                                detail::mpi_type<T>(), sum_op<T>(), comm_);
            });
        } else {
            for (std::size_t r = 0; r < size_; ++r) {
                detail::for_each_chunk(n, options_.max_count, [&](std::size_t off, std::size_t c) {
                    const T* src = in.data() + r * n + off;
                    T* dst = r == rank_ ? out.data() + off : nullptr;
                    guarded("MPI_Reduce", c, [&] {
                        return MPI_Reduce(src, dst, static_cast<int>(c), detail::mpi_type<T>(), sum_op<T>(),
                                          static_cast<int>(r), comm_);
                    });
                });
            }
        }
        if (op == reduce_op::mean)
            divide(out);
    }

    /// Block r of out = rank r's block rank() of in. Above max_count: chunked pairwise exchange.
    /// Example: `comm.all_to_all(out, in);`
    template <transferable T>
    void all_to_all(std::span<T> out, std::span<const T> in) {
        detail::check_all_to_all("mpi::all_to_all", out.size(), in.size(), size_, detail::overlap(out, in));
        const std::size_t block = in.size() / size_;
        if (block <= options_.max_count) {
            const int b = static_cast<int>(block);
            guarded("MPI_Alltoall", in.size(), [&] {
                return MPI_Alltoall(in.data(), b, detail::mpi_type<T>(), out.data(), b, detail::mpi_type<T>(),
                                    comm_);
            });
            return;
        }
        const std::vector<std::size_t> counts(size_, block);
        pairwise(out, counts, in, counts);
    }

    /// all_to_all with per-rank counts. Counts or offsets above max_count: chunked pairwise exchange.
    /// Example: `comm.all_to_allv(out, out_counts, in, in_counts);`
    template <transferable T>
    void all_to_allv(std::span<T> out, std::span<const std::size_t> out_counts, std::span<const T> in,
                     std::span<const std::size_t> in_counts) {
        detail::check_all_to_allv("mpi::all_to_allv", out.size(), out_counts, in.size(), in_counts, size_,
                                  detail::overlap(out, in));
        // The displacements are int too: the whole buffers must fit, not just each count; the
        // ranks' buffers differ, so they agree on the path with one small all-reduce.
        int fits = out.size() <= options_.max_count && in.size() <= options_.max_count ? 1 : 0;
        guarded("MPI_Allreduce (all_to_allv path)", 1,
                [&] { return MPI_Allreduce(MPI_IN_PLACE, &fits, 1, MPI_INT, MPI_MIN, comm_); });
        if (fits) {
            std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
            std::size_t so = 0, ro = 0;
            for (std::size_t r = 0; r < size_; ++r) {
                sc[r] = static_cast<int>(in_counts[r]);
                sd[r] = static_cast<int>(so);
                rc[r] = static_cast<int>(out_counts[r]);
                rd[r] = static_cast<int>(ro);
                so += in_counts[r];
                ro += out_counts[r];
            }
            guarded("MPI_Alltoallv", in.size(), [&] {
                return MPI_Alltoallv(in.data(), sc.data(), sd.data(), detail::mpi_type<T>(), out.data(),
                                     rc.data(), rd.data(), detail::mpi_type<T>(), comm_);
            });
            return;
        }
        pairwise(out, out_counts, in, in_counts);
    }

    /// Returns once every rank has entered it. Example: `comm.barrier();`
    void barrier() {
        guarded("MPI_Barrier", 0, [&] { return MPI_Barrier(comm_); });
    }

private:
    void setup(MPI_Comm parent) {
        detail::check_mpi(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup", 0, 1);
        detail::check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", 0, 1);
        int r = 0, s = 1;
        detail::check_mpi(MPI_Comm_rank(comm_, &r), "MPI_Comm_rank", 0, 1);
        detail::check_mpi(MPI_Comm_size(comm_, &s), "MPI_Comm_size", 0, 1);
        rank_ = static_cast<std::size_t>(r);
        size_ = static_cast<std::size_t>(s);
        detail::check_mpi(MPI_Op_create(&detail::llm_mpi_bf16_sum, 1, &bf16_sum_), "MPI_Op_create", rank_,
                          size_);
        if (options_.timeout.count() > 0)
            watchdog_ = std::thread([this] { watch(); });
    }

    // The watchdog thread: makes no MPI call; past an armed deadline it reports and exits the process.
    void watch() {
        const auto period = std::clamp<std::chrono::milliseconds>(
            options_.timeout / 8, std::chrono::milliseconds(1), std::chrono::seconds(1));
        std::unique_lock lock(watch_mutex_);
        while (!watch_stop_) {
            watch_cv_.wait_for(lock, period);
            const std::int64_t deadline = deadline_ns_.load();
            if (deadline != 0 && now_ns() > deadline) {
                std::fprintf(stderr,
                             "llm::dist::mpi: %s (%zu elements) on rank %zu of %zu did not complete within "
                             "%lld ms: a peer rank died, hung "
                             "or left the job; exiting with status 75 so that mpirun ends the job\n",
                             watched_call_.load(), watched_count_.load(), rank_, size_,
                             static_cast<long long>(options_.timeout.count()));
                std::fflush(stderr);
                std::_Exit(75);  // EX_TEMPFAIL: restart from the last checkpoint
            }
        }
    }
    static std::int64_t now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    // Runs one blocking MPI call under the watchdog; MPI errors become llm::error naming it.
    template <class F>
    void guarded(const char* what, std::size_t count, F&& f) {
        if (!watchdog_.joinable()) {
            call(f(), what);
            return;
        }
        watched_call_.store(what);
        watched_count_.store(count);
        deadline_ns_.store(now_ns() +
                           std::chrono::duration_cast<std::chrono::nanoseconds>(options_.timeout).count());
        const int rc = f();
        deadline_ns_.store(0);
        call(rc, what);
    }

    template <class T>
    MPI_Op sum_op() const noexcept {
        if constexpr (std::same_as<T, bf16>)
            return bf16_sum_;
        else
            return MPI_SUM;
    }

    template <class T>
    void divide(std::span<T> out) const {
        if constexpr (std::is_floating_point_v<T> || std::same_as<T, bf16>) {
            const float inv = 1.0f / static_cast<float>(size_);
            for (T& x : out)
                x = T(static_cast<float>(x) * inv);
        }
    }

    void call(int rc, const char* what) {
        if (rc == MPI_SUCCESS) [[likely]]
            return;
        failed_ = true;
        last_error_ = llm::detail::concat("llm::dist::mpi: ", what, " failed on rank ", rank_, " of ", size_,
                                          ": ", detail::mpi_error_text(rc));
        llm::fail(last_error_);
    }

    // Completes the requests (at most 2) with MPI_Waitall under the watchdog; MPI_ERR_IN_STATUS is
    // reported as the request's own error.
    void wait_all(std::span<MPI_Request> reqs, const char* what, std::size_t count) {
        MPI_Status st[2] = {};
        guarded(what, count, [&] {
            const int rc = MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), st);
            if (rc != MPI_ERR_IN_STATUS)
                return rc;
            for (std::size_t i = 0; i < reqs.size(); ++i)
                if (st[i].MPI_ERROR != MPI_SUCCESS && st[i].MPI_ERROR != MPI_ERR_PENDING)
                    return st[i].MPI_ERROR;
            return rc;
        });
    }
    void wait(MPI_Request& req, const char* what, std::size_t count) {
        wait_all(std::span<MPI_Request>(&req, 1), what, count);
    }

    // Chunked exchange with every peer in turn (rank + s, rank - s), for counts or buffers that
    // do not fit the int counts and displacements of MPI_Alltoall(v).
    template <class T>
    void pairwise(std::span<T> out, std::span<const std::size_t> out_counts, std::span<const T> in,
                  std::span<const std::size_t> in_counts) {
        std::vector<std::size_t> out_off(size_ + 1, 0), in_off(size_ + 1, 0);
        for (std::size_t r = 0; r < size_; ++r) {
            out_off[r + 1] = out_off[r] + out_counts[r];
            in_off[r + 1] = in_off[r] + in_counts[r];
        }
        std::copy_n(in.data() + in_off[rank_], in_counts[rank_], out.data() + out_off[rank_]);
        const int tag = 7301;
        for (std::size_t s = 1; s < size_; ++s) {
            const std::size_t to = (rank_ + s) % size_, from = (rank_ + size_ - s) % size_;
            const std::size_t ns = in_counts[to], nr = out_counts[from];
            for (std::size_t off = 0; off < std::max(ns, nr); off += options_.max_count) {
                MPI_Request reqs[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
                if (off < nr) {
                    call(MPI_Irecv(out.data() + out_off[from] + off,
                                   static_cast<int>(std::min(options_.max_count, nr - off)),
                                   detail::mpi_type<T>(), static_cast<int>(from), tag, comm_, &reqs[0]),
                         "MPI_Irecv");
                }
                if (off < ns) {
                    call(MPI_Isend(in.data() + in_off[to] + off,
                                   static_cast<int>(std::min(options_.max_count, ns - off)),
                                   detail::mpi_type<T>(), static_cast<int>(to), tag, comm_, &reqs[1]),
                         "MPI_Isend");
                }
                wait_all(reqs, "MPI_Isend/MPI_Irecv (all_to_allv)",
                         std::min(options_.max_count, std::max(ns, nr) - off));
            }
        }
    }

    mpi_options options_;
    MPI_Comm comm_ = MPI_COMM_NULL;
    MPI_Op bf16_sum_ = MPI_OP_NULL;
    std::size_t rank_ = 0, size_ = 1;
    bool owns_mpi_ = false, failed_ = false;
    std::string last_error_;
    // The watchdog: an armed deadline (steady clock, ns; 0: none) and the call it guards.
    std::thread watchdog_;
    std::mutex watch_mutex_;
    std::condition_variable watch_cv_;
    bool watch_stop_ = false;
    std::atomic<std::int64_t> deadline_ns_{0};
    std::atomic<const char*> watched_call_{""};
    std::atomic<std::size_t> watched_count_{0};
};

static_assert(communicator<mpi>);

}  // namespace llm::dist

#endif  // LLM_HAS_MPI
