// SPDX-License-Identifier: Apache-2.0
// bench_dist_allreduce: all-reduce latency and bandwidth of llm::dist::mpi against Open MPI's own
// MPI_Allreduce, osu_allreduce-style, in the same run. Run under mpirun, e.g. over loopback TCP:
//   mpirun -np 2 --mca btl self,tcp --mca btl_tcp_if_include lo bench_dist_allreduce [max_bytes] [seconds] [rounds]
// For each message size (fp32 sum, in place), rank 0 prints the mean time per call of
//   MPI_Allreduce        the blocking call (what osu_allreduce times),
//   llm watchdog         llm::dist::all_reduce on llm::dist::mpi with its default watchdog (MPI_Allreduce,
//                        a deadline armed for the watchdog thread around it),
//   llm no-wdog          the same with timeout 0 (the wrapper alone),
// and the bus bandwidth of each: bytes * 2 (p - 1) / p / time (nccl-tests' busbw: the bytes each
// rank sends and receives in a ring all-reduce). A round times each variant's mean over its
// iterations (the slowest rank's, between barriers), the variants interleaved; each figure is the
// best of `rounds` rounds (default 5), since a shared machine only ever adds time.
#include <llm/dist/mpi.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace {

double time_loop(MPI_Comm world, int iters, const std::function<void()>& f) {
    for (int i = 0; i < std::max(1, iters / 10); ++i) f();  // warm-up
    MPI_Barrier(world);
    const double t0 = MPI_Wtime();
    for (int i = 0; i < iters; ++i) f();
    double t = (MPI_Wtime() - t0) / iters;
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, world);
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t max_bytes = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : std::size_t{64} << 20;
    const double seconds = argc > 2 ? std::atof(argv[2]) : 0.1;  // per variant and round
    const int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
    llm::dist::mpi comm;                                            // default watchdog (5 min)
    llm::dist::mpi plain(MPI_COMM_WORLD, {.timeout = std::chrono::milliseconds(0)});
    MPI_Comm world = comm.native();
    const std::size_t p = comm.size();
    if (comm.rank() == 0) {
        std::printf("all-reduce, fp32 sum in place, %zu ranks; time per call (us) and bus bandwidth (GB/s)\n", p);
        std::printf("%12s %14s %10s %14s %10s %14s %10s\n", "bytes", "MPI_Allreduce", "GB/s", "llm watchdog", "GB/s", "llm no-wdog", "GB/s");
    }
    for (std::size_t bytes = 4; bytes <= max_bytes; bytes *= 4) {
        const std::size_t n = bytes / sizeof(float);
        std::vector<float> buf(n, 1.0f);
        // Iterations: enough for `seconds` at the rate of a first timed call, at least 3.
        double t1 = time_loop(world, 1, [&] { MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, world); });
        int iters = static_cast<int>(std::clamp(seconds / std::max(t1, 1e-7), 3.0, 100000.0));
        MPI_Bcast(&iters, 1, MPI_INT, 0, world);
        double t_mpi = 1e30, t_llm = 1e30, t_plain = 1e30;
        for (int round = 0; round < rounds; ++round) {
            t_mpi = std::min(t_mpi, time_loop(world, iters, [&] {
                MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, world);
            }));
            t_llm = std::min(t_llm, time_loop(world, iters, [&] { llm::dist::all_reduce(buf, llm::dist::reduce_op::sum, comm); }));
            t_plain = std::min(t_plain, time_loop(world, iters, [&] { llm::dist::all_reduce(buf, llm::dist::reduce_op::sum, plain); }));
        }
        const double bus = static_cast<double>(bytes) * 2.0 * static_cast<double>(p - 1) / static_cast<double>(p) / 1e9;
        if (comm.rank() == 0) {
            std::printf("%12zu %14.2f %10.3f %14.2f %10.3f %14.2f %10.3f\n", bytes, t_mpi * 1e6, bus / t_mpi, t_llm * 1e6, bus / t_llm,
                        t_plain * 1e6, bus / t_plain);
            std::fflush(stdout);
        }
    }
    return 0;
}
