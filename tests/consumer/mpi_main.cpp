// SPDX-License-Identifier: Apache-2.0
// A user's program on llm::mpi (find_package(llm) then link llm::mpi): one all-reduce over the
// ranks (one rank when started without mpirun).
#include <llm/dist/mpi.hpp>

#include <cstdio>
#include <vector>

#if !LLM_HAS_MPI
#error "llm::mpi must define LLM_HAS_MPI"
#endif

int main() {
    llm::dist::mpi comm;
    std::vector<float> x{1.0f, 2.0f};
    llm::dist::all_reduce(x, llm::dist::reduce_op::sum, comm);
    std::printf("llm::mpi: rank %zu of %zu, sum %g\n", comm.rank(), comm.size(), static_cast<double>(x[1]));
    return x[1] == 2.0f * static_cast<float>(comm.size()) ? 0 : 1;
}
