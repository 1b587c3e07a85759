// SPDX-License-Identifier: Apache-2.0
// dist_nccl_check: instantiates every collective of llm::dist::nccl for the element types it
// carries, so the NCCL backend is compiled wherever CUDA and NCCL are found. Built, never run by
// ctest (the build machines have no GPU); on a GPU machine, `mpirun -np <gpus> dist_nccl_check`
// runs one all-reduce per type and checks the sums.
#include <llm/dist/nccl.hpp>

#include <cstdio>
#include <vector>

namespace {

template <class T>
bool round_trip(llm::dist::nccl& comm, std::size_t n) {
    T* d = nullptr;
    if (cudaMalloc(reinterpret_cast<void**>(&d), 2 * n * comm.size() * sizeof(T)) != cudaSuccess) return false;
    const std::span<T> buf(d, n), big(d, n * comm.size()), other(d + n * comm.size(), n * comm.size());
    std::vector<T> host(n, T(1));
    cudaMemcpy(d, host.data(), n * sizeof(T), cudaMemcpyHostToDevice);
    llm::dist::all_reduce(buf, llm::dist::reduce_op::sum, comm);
    cudaMemcpy(host.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
    bool ok = true;
    for (const T& x : host) ok = ok && static_cast<double>(x) == static_cast<double>(comm.size());
    llm::dist::broadcast(buf, 0, comm);
    llm::dist::all_gather(big, std::span<const T>(buf), comm);
    llm::dist::all_to_all(other, std::span<const T>(big), comm);
    const std::vector<std::size_t> counts(comm.size(), n);
    llm::dist::all_to_allv(big, counts, std::span<const T>(other), counts, comm);
    if constexpr (llm::dist::reducible<T>) llm::dist::reduce_scatter(buf, std::span<const T>(big), llm::dist::reduce_op::sum, comm);
    llm::dist::barrier(comm);
    cudaFree(d);
    return ok;
}

}  // namespace

int main() {
    llm::dist::mpi boot;
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::fprintf(stderr, "dist_nccl_check: no GPU; nothing run\n");
        return 77;
    }
    try {
        llm::dist::nccl comm(boot, static_cast<int>(boot.rank() % static_cast<std::size_t>(devices)));
        const bool ok = round_trip<float>(comm, 1000) && round_trip<llm::bf16>(comm, 1000) && round_trip<double>(comm, 10) &&
                        round_trip<std::int64_t>(comm, 10) && round_trip<std::uint8_t>(comm, 10);
        std::fprintf(stderr, "dist_nccl_check: rank %zu of %zu: %s\n", comm.rank(), comm.size(), ok ? "passed" : "FAILED");
        return ok ? 0 : 1;
    } catch (const llm::error& e) {
        std::fprintf(stderr, "dist_nccl_check: %s\n", e.what());
        return 1;
    }
}
