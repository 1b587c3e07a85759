// SPDX-License-Identifier: Apache-2.0
// dist_fault MODE: a job of 2 ranks in which one rank fails; run by tests/dist_mpi/fault.sh, which
// requires the whole job to end, non-zero, within a stated time, with a message naming the cause.
//   kill:     rank 1 kills itself (SIGKILL) in the middle of a loop of all_reduces.
//   stall:    rank 1 stops taking part (sleeps 10 minutes); rank 0's watchdog (2 s) prints the
//             call and exits with status 75, and mpirun ends the job.
//   mismatch: rank 1 receives a broadcast into a buffer too small for it (MPI_ERR_TRUNCATE):
//             the MPI error becomes an llm::error naming MPI_Ibcast.
#include <llm/dist/mpi.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode != "kill" && mode != "stall" && mode != "mismatch") {
        std::fprintf(stderr, "usage: dist_fault kill|stall|mismatch (under mpirun -np 2)\n");
        return 2;
    }
    // Declared outside the try: its destructor runs after the message is printed.
    llm::dist::mpi comm({.timeout = std::chrono::seconds(mode == "stall" ? 2 : 20)});
    try {
        std::vector<float> x(1 << 16, 1.0f);
        if (mode == "kill") {
            for (int step = 0; step < 1000000; ++step) {
                if (step == 10 && comm.rank() == 1) std::raise(SIGKILL);
                llm::dist::all_reduce(x, llm::dist::reduce_op::mean, comm);
            }
        } else if (mode == "stall") {
            llm::dist::all_reduce(x, llm::dist::reduce_op::sum, comm);
            if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::minutes(10));
            llm::dist::all_reduce(x, llm::dist::reduce_op::sum, comm);
        } else {
            std::vector<float> b(comm.rank() == 0 ? 1000 : 10, 2.0f);
            llm::dist::broadcast(b, 0, comm);
            llm::dist::barrier(comm);
        }
    } catch (const llm::error& e) {
        std::fprintf(stderr, "dist_fault: rank %zu: %s\n", comm.rank(), e.what());
        return 1;
    }
    std::fprintf(stderr, "dist_fault: rank %zu finished without a failure\n", comm.rank());
    return 0;
}
