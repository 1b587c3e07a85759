// SPDX-License-Identifier: Apache-2.0
// llm::dist::nccl: the NCCL communicator over GPU memory, one rank per GPU, its unique id
// bootstrapped over MPI (needs LLM_HAS_NCCL: link the llm::nccl CMake target). Compiled in CI;
// run only where GPUs are (docs/dist.md says which paths have run).
#pragma once

#include <llm/dist/communicator.hpp>
#include <llm/dist/mpi.hpp>

// Without LLM_HAS_NCCL (the llm::nccl CMake target defines it, with LLM_HAS_MPI) this header
// declares nothing beyond llm/dist/mpi.hpp.
#if defined(LLM_HAS_NCCL) && LLM_HAS_NCCL && defined(LLM_HAS_MPI) && LLM_HAS_MPI

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace llm::dist {

namespace detail {

template <class T>
ncclDataType_t nccl_type() {
    if constexpr (std::same_as<T, float>) return ncclFloat32;
    else if constexpr (std::same_as<T, double>) return ncclFloat64;
    else if constexpr (std::same_as<T, bf16>) return ncclBfloat16;
    else if constexpr (std::same_as<T, std::byte> || std::same_as<T, char>) return ncclUint8;
    else if constexpr (std::is_signed_v<T> && sizeof(T) == 1) return ncclInt8;
    else if constexpr (std::is_signed_v<T> && sizeof(T) == 4) return ncclInt32;
    else if constexpr (std::is_signed_v<T> && sizeof(T) == 8) return ncclInt64;
    else if constexpr (std::is_unsigned_v<T> && sizeof(T) == 1) return ncclUint8;
    else if constexpr (std::is_unsigned_v<T> && sizeof(T) == 4) return ncclUint32;
    else if constexpr (std::is_unsigned_v<T> && sizeof(T) == 8) return ncclUint64;
    else static_assert(sizeof(T) == 0, "llm::dist::nccl: NCCL has no type for this element type (16-bit integers, long double)");
}

}  // namespace detail

/// Options of the NCCL communicator.
struct nccl_options {
    /// Watchdog: a collective whose stream has not finished after this long (a peer died or hung)
    /// aborts the NCCL communicator (ncclCommAbort) and raises llm::error; 0: wait forever.
    std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

/// The NCCL communicator: the ranks of an llm::dist::mpi communicator, each driving one GPU.
/// Rank 0 makes NCCL's unique id and broadcasts it over MPI; every rank then joins with
/// ncclCommInitRank. Spans passed to the collectives address GPU memory (cudaMalloc'd, on
/// `device()`); each call is enqueued on stream() and waited for (polling the stream and
/// NCCL's asynchronous error, under the watchdog), so it returns with the results in place like
/// the other backends. Counts are size_t in NCCL: no chunking needed. reduce_op::mean is ncclAvg.
/// Example: `llm::dist::mpi boot; llm::dist::nccl comm(boot, local_rank); llm::dist::all_reduce(grad_gpu, llm::dist::reduce_op::mean, comm);`
class nccl {
public:
    /// Joins the NCCL communicator of bootstrap's ranks on GPU `device` (cudaSetDevice).
    /// Example: `llm::dist::nccl comm(boot, static_cast<int>(boot.rank() % gpus_per_node));`
    nccl(mpi& bootstrap, int device, nccl_options options = {})
        : options_(options), device_(device), rank_(bootstrap.rank()), size_(bootstrap.size()) {
        ncclUniqueId id{};
        if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        bootstrap.broadcast(std::span<std::byte>(reinterpret_cast<std::byte*>(&id), sizeof id), 0);
        check_cuda(cudaSetDevice(device_), "cudaSetDevice");
        check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        check_cuda(cudaMalloc(reinterpret_cast<void**>(&scratch_), sizeof(float)), "cudaMalloc");
        check(ncclCommInitRank(&comm_, static_cast<int>(size_), id, static_cast<int>(rank_)), "ncclCommInitRank");
    }
    nccl(const nccl&) = delete;
    nccl& operator=(const nccl&) = delete;
    ~nccl() {
        if (comm_) {
            if (failed_) ncclCommAbort(comm_);
            else ncclCommDestroy(comm_);
        }
        if (scratch_) cudaFree(scratch_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    std::size_t rank() const noexcept { return rank_; }               ///< this process's rank
    std::size_t size() const noexcept { return size_; }               ///< number of ranks (GPUs)
    int device() const noexcept { return device_; }                   ///< this rank's GPU
    cudaStream_t stream() const noexcept { return stream_; }          ///< the stream collectives run on
    ncclComm_t native() const noexcept { return comm_; }              ///< the NCCL communicator (owned)

    /// out = op over ranks of in (GPU memory); out == in is in place. Example: `comm.all_reduce(g, g, llm::dist::reduce_op::mean);`
    template <reducible T>
    void all_reduce(std::span<T> out, std::span<const T> in, reduce_op op) {
        detail::check_op<T>("nccl::all_reduce", op);
        detail::check_all_reduce("nccl::all_reduce", out.size(), in.size(), out.data() == in.data(), detail::overlap(out, in));
        check(ncclAllReduce(in.data(), out.data(), out.size(), detail::nccl_type<T>(), nccl_op(op), comm_, stream_), "ncclAllReduce");
        sync("ncclAllReduce");
    }
    /// buffer = root's buffer. Example: `comm.broadcast(w, 0);`
    template <transferable T>
    void broadcast(std::span<T> buffer, std::size_t root) {
        detail::check_root("nccl::broadcast", root, size_);
        check(ncclBroadcast(buffer.data(), buffer.data(), buffer.size(), detail::nccl_type<T>(), static_cast<int>(root), comm_, stream_),
              "ncclBroadcast");
        sync("ncclBroadcast");
    }
    /// out[r * n, (r + 1) * n) = rank r's in. Example: `comm.all_gather(out, in);`
    template <transferable T>
    void all_gather(std::span<T> out, std::span<const T> in) {
        detail::check_all_gather("nccl::all_gather", out.size(), in.size(), size_);
        check(ncclAllGather(in.data(), out.data(), in.size(), detail::nccl_type<T>(), comm_, stream_), "ncclAllGather");
        sync("ncclAllGather");
    }
    /// out = op over ranks of in's block rank(). Example: `comm.reduce_scatter(shard, grad, llm::dist::reduce_op::mean);`
    template <reducible T>
    void reduce_scatter(std::span<T> out, std::span<const T> in, reduce_op op) {
        detail::check_op<T>("nccl::reduce_scatter", op);
        detail::check_reduce_scatter("nccl::reduce_scatter", out.size(), in.size(), size_, detail::overlap(out, in));
        check(ncclReduceScatter(in.data(), out.data(), out.size(), detail::nccl_type<T>(), nccl_op(op), comm_, stream_), "ncclReduceScatter");
        sync("ncclReduceScatter");
    }
    /// Block r of out = rank r's block rank() of in (grouped ncclSend / ncclRecv). Example: `comm.all_to_all(out, in);`
    template <transferable T>
    void all_to_all(std::span<T> out, std::span<const T> in) {
        detail::check_all_to_all("nccl::all_to_all", out.size(), in.size(), size_, detail::overlap(out, in));
        const std::vector<std::size_t> counts(size_, in.size() / size_);
        exchange_grouped(out, counts, in, counts, "ncclSend/ncclRecv (all_to_all)");
    }
    /// all_to_all with per-rank counts (grouped ncclSend / ncclRecv). Example: `comm.all_to_allv(out, oc, in, ic);`
    template <transferable T>
    void all_to_allv(std::span<T> out, std::span<const std::size_t> out_counts, std::span<const T> in, std::span<const std::size_t> in_counts) {
        detail::check_all_to_allv("nccl::all_to_allv", out.size(), out_counts, in.size(), in_counts, size_, detail::overlap(out, in));
        exchange_grouped(out, out_counts, in, in_counts, "ncclSend/ncclRecv (all_to_allv)");
    }
    /// Returns once every rank's stream has reached it (a one-element all-reduce). Example: `comm.barrier();`
    void barrier() {
        check(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce (barrier)");
        sync("ncclAllReduce (barrier)");
    }

private:
    static ncclRedOp_t nccl_op(reduce_op op) noexcept { return op == reduce_op::mean ? ncclAvg : ncclSum; }

    void check(ncclResult_t rc, const char* what) {
        if (rc == ncclSuccess || rc == ncclInProgress) [[likely]]
            return;
        failed_ = true;
        llm::fail("llm::dist::nccl: ", what, " failed on rank ", rank_, " of ", size_, ": ", ncclGetErrorString(rc));
    }
    void check_cuda(cudaError_t rc, const char* what) {
        if (rc == cudaSuccess) [[likely]]
            return;
        failed_ = true;
        llm::fail("llm::dist::nccl: ", what, " failed on rank ", rank_, " of ", size_, " (device ", device_, "): ", cudaGetErrorString(rc));
    }

    // Waits for the stream, polling NCCL's asynchronous error; past the timeout, aborts the communicator.
    void sync(const char* what) {
        const auto start = std::chrono::steady_clock::now();
        for (;;) {
            const cudaError_t q = cudaStreamQuery(stream_);
            if (q == cudaSuccess) return;
            if (q != cudaErrorNotReady) check_cuda(q, what);
            ncclResult_t async = ncclSuccess;
            check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
            check(async, what);
            if (options_.timeout.count() != 0 && std::chrono::steady_clock::now() - start > options_.timeout) {
                failed_ = true;
                ncclCommAbort(comm_);
                comm_ = nullptr;
                llm::fail("llm::dist::nccl: ", what, " on rank ", rank_, " of ", size_, " did not complete within ", options_.timeout.count(),
                          " ms: a peer rank died, hung or left the job; the NCCL communicator was aborted");
            }
            std::this_thread::yield();
        }
    }

    template <class T>
    void exchange_grouped(std::span<T> out, std::span<const std::size_t> out_counts, std::span<const T> in,
                          std::span<const std::size_t> in_counts, const char* what) {
        check(ncclGroupStart(), "ncclGroupStart");
        std::size_t so = 0, ro = 0;
        for (std::size_t r = 0; r < size_; ++r) {
            if (in_counts[r]) check(ncclSend(in.data() + so, in_counts[r], detail::nccl_type<T>(), static_cast<int>(r), comm_, stream_), "ncclSend");
            if (out_counts[r]) check(ncclRecv(out.data() + ro, out_counts[r], detail::nccl_type<T>(), static_cast<int>(r), comm_, stream_), "ncclRecv");
            so += in_counts[r];
            ro += out_counts[r];
        }
        check(ncclGroupEnd(), "ncclGroupEnd");
        sync(what);
    }

    nccl_options options_;
    int device_ = 0;
    std::size_t rank_ = 0, size_ = 1;
    cudaStream_t stream_ = nullptr;
    ncclComm_t comm_ = nullptr;
    float* scratch_ = nullptr;
    bool failed_ = false;
};

static_assert(communicator<nccl>);

}  // namespace llm::dist

#endif  // LLM_HAS_NCCL
