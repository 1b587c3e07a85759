// SPDX-License-Identifier: Apache-2.0
// llm::dist::mpi under mpirun (any number of ranks, 2 in ctest): every collective against values
// each rank can compute for itself, for fp32, fp64, bf16 and integers, in place and out of place,
// with and without the watchdog, with the real chunk limit (INT_MAX) and with an artificial one of
// 3 elements, which sends every buffer in several pieces and takes the fallback paths (per-rank
// broadcasts and reduces, the pairwise exchange) that counts above INT_MAX take.
#include <llm/dist/communicator.hpp>
#include <llm/dist/mpi.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <numeric>
#include <vector>

namespace dist = llm::dist;

namespace {

// Both limits: no chunking, and chunks of 3 (every size below is cut into several pieces); each
// with the watchdog (60 s: generous, it fires only on a real hang) and without.
std::vector<dist::mpi_options> all_options() {
    return {{.timeout = std::chrono::seconds(60)},
            {.timeout = std::chrono::seconds(60), .max_count = 3},
            {.timeout = std::chrono::milliseconds(0)},
            {.timeout = std::chrono::milliseconds(0), .max_count = 3}};
}

// Rank r's i-th value: small integers, so fp32 sums are exact.
double value(std::size_t r, std::size_t i) { return static_cast<double>((r + 1) * 100 + i % 50); }
double sum_over_ranks(std::size_t p, std::size_t i) {
    double s = 0;
    for (std::size_t r = 0; r < p; ++r) s += value(r, i);
    return s;
}

}  // namespace

TEST_CASE("mpi: all_reduce sum and mean, fp32 / fp64 / bf16 / uint64, in place and out of place, chunked and not") {
    for (const auto& o : all_options()) {
        dist::mpi comm(MPI_COMM_WORLD, o);
        const std::size_t p = comm.size(), r = comm.rank();
        CAPTURE(o.max_count);
        for (const std::size_t n : {0u, 1u, 7u, 1000u}) {
            CAPTURE(n);
            std::vector<float> x(n), y(n);
            std::vector<double> d(n);
            std::vector<std::uint64_t> u(n);
            std::vector<llm::bf16> h(n);
            for (std::size_t i = 0; i < n; ++i) {
                x[i] = static_cast<float>(value(r, i));
                d[i] = value(r, i);
                u[i] = static_cast<std::uint64_t>(value(r, i));
                h[i] = llm::bf16(static_cast<float>(r + 1));  // sums of small integers: exact in bf16
            }
            dist::all_reduce(y, x, dist::reduce_op::sum, comm);
            dist::all_reduce(x, dist::reduce_op::mean, comm);
            dist::all_reduce(d, dist::reduce_op::sum, comm);
            dist::all_reduce(u, dist::reduce_op::sum, comm);
            dist::all_reduce(h, dist::reduce_op::sum, comm);
            bool ok = true;
            for (std::size_t i = 0; i < n; ++i) {
                const double s = sum_over_ranks(p, i);
                // fp32 mean: s is exact in fp32; s * (1/p) is one rounding of 2^-24 relative.
                ok = ok && y[i] == static_cast<float>(s) && d[i] == s && u[i] == static_cast<std::uint64_t>(s) &&
                     std::abs(x[i] - s / static_cast<double>(p)) <= s * 0x1p-23 &&
                     static_cast<float>(h[i]) == static_cast<float>(p * (p + 1) / 2);
            }
            CHECK(ok);
        }
    }
}

TEST_CASE("mpi: start_all_reduce / test / wait, two in flight, chunked and not") {
    for (const auto& o : all_options()) {
        dist::mpi comm(MPI_COMM_WORLD, o);
        const std::size_t p = comm.size(), r = comm.rank();
        std::vector<float> a(10), b(7);
        for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(value(r, i));
        for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(value(r, i + 3));
        auto ha = comm.start_all_reduce(std::span<float>(a), dist::reduce_op::sum);
        auto hb = comm.start_all_reduce(std::span<float>(b), dist::reduce_op::mean);
        CHECK(ha.requests.size() == (o.max_count == 3 ? 4u : 1u));
        while (!comm.test(hb)) {
        }
        comm.wait(hb);
        comm.wait(ha);
        bool ok = true;
        for (std::size_t i = 0; i < a.size(); ++i) ok = ok && a[i] == static_cast<float>(sum_over_ranks(p, i));
        for (std::size_t i = 0; i < b.size(); ++i)
            ok = ok && std::abs(b[i] - sum_over_ranks(p, i + 3) / static_cast<double>(p)) <= sum_over_ranks(p, i + 3) * 0x1p-23;
        CHECK(ok);
    }
}

TEST_CASE("mpi: broadcast from every root, chunked and not") {
    for (const auto& o : all_options()) {
        dist::mpi comm(MPI_COMM_WORLD, o);
        for (std::size_t root = 0; root < comm.size(); ++root) {
            std::vector<std::int32_t> b(11, static_cast<std::int32_t>(comm.rank()));
            if (comm.rank() == root) std::iota(b.begin(), b.end(), 1000);
            dist::broadcast(b, root, comm);
            std::vector<std::int32_t> expect(11);
            std::iota(expect.begin(), expect.end(), 1000);
            CHECK(b == expect);
        }
    }
}

TEST_CASE("mpi: all_gather and reduce_scatter, chunked (per-rank broadcasts and reduces) and not") {
    for (const auto& o : all_options()) {
        dist::mpi comm(MPI_COMM_WORLD, o);
        const std::size_t p = comm.size(), r = comm.rank(), n = 10;
        std::vector<double> in(n), out(n * p);
        for (std::size_t i = 0; i < n; ++i) in[i] = value(r, i);
        dist::all_gather(out, in, comm);
        bool ok = true;
        for (std::size_t q = 0; q < p; ++q)
            for (std::size_t i = 0; i < n; ++i) ok = ok && out[q * n + i] == value(q, i);
        CHECK(ok);
        // In place: this rank's block of out is already its input.
        std::vector<double> again(n * p, -1);
        for (std::size_t i = 0; i < n; ++i) again[r * n + i] = value(r, i);
        dist::all_gather(again, std::span<const double>(again).subspan(r * n, n), comm);
        CHECK(again == out);

        std::vector<float> full(n * p), mine(n), mean(n);
        for (std::size_t i = 0; i < n * p; ++i) full[i] = static_cast<float>(value(r, i));
        dist::reduce_scatter(mine, full, dist::reduce_op::sum, comm);
        dist::reduce_scatter(mean, full, dist::reduce_op::mean, comm);
        ok = true;
        for (std::size_t i = 0; i < n; ++i) {
            const double s = sum_over_ranks(p, r * n + i);
            ok = ok && mine[i] == static_cast<float>(s) && std::abs(mean[i] - s / static_cast<double>(p)) <= s * 0x1p-23;
        }
        CHECK(ok);
    }
}

TEST_CASE("mpi: all_to_all, all_to_allv with uneven and empty counts, and exchange, chunked (pairwise) and not") {
    for (const auto& o : all_options()) {
        dist::mpi comm(MPI_COMM_WORLD, o);
        const std::size_t p = comm.size(), r = comm.rank(), block = 5;
        // all_to_all: element i of the block for rank q encodes (sender, receiver, i).
        std::vector<std::uint64_t> in(block * p), out(block * p);
        for (std::size_t q = 0; q < p; ++q)
            for (std::size_t i = 0; i < block; ++i) in[q * block + i] = r * 10000 + q * 100 + i;
        dist::all_to_all(out, in, comm);
        bool ok = true;
        for (std::size_t q = 0; q < p; ++q)
            for (std::size_t i = 0; i < block; ++i) ok = ok && out[q * block + i] == q * 10000 + r * 100 + i;
        CHECK(ok);

        // all_to_allv: rank s sends (s + 2 * q) % 7 elements to rank q (0 for some pairs).
        const auto count = [](std::size_t s, std::size_t q) { return (s + 2 * q) % 7; };
        std::vector<std::size_t> in_counts(p), out_counts(p);
        std::vector<std::uint64_t> send;
        for (std::size_t q = 0; q < p; ++q) {
            in_counts[q] = count(r, q);
            out_counts[q] = count(q, r);
            for (std::size_t i = 0; i < in_counts[q]; ++i) send.push_back(r * 10000 + q * 100 + i);
        }
        std::vector<std::uint64_t> got(std::accumulate(out_counts.begin(), out_counts.end(), std::size_t{0}));
        dist::all_to_allv(got, out_counts, send, in_counts, comm);
        std::vector<std::uint64_t> expect;
        for (std::size_t q = 0; q < p; ++q)
            for (std::size_t i = 0; i < count(q, r); ++i) expect.push_back(q * 10000 + r * 100 + i);
        CHECK(got == expect);

        std::vector<std::uint64_t> got2;
        std::vector<std::size_t> got_counts;
        dist::exchange(got2, got_counts, send, in_counts, comm);
        CHECK(got2 == expect);
        CHECK(got_counts == out_counts);
        dist::barrier(comm);
    }
}
