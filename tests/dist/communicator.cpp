// SPDX-License-Identifier: Apache-2.0
// Tests of llm::dist's communicator policy with single_process: the free collectives over views and
// ranges, their size checks, a user's communicator outside llm::, and the chunking of large counts.
#include <llm/dist/communicator.hpp>
#include <llm/dist/single_process.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <array>
#include <climits>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace dist = llm::dist;

namespace user {

// A communicator written outside llm:: (open policy family): one rank that counts its calls.
struct counting_comm {
    std::size_t calls = 0;
    std::size_t rank() const { return 0; }
    std::size_t size() const { return 1; }
    template <class T>
    void all_reduce(std::span<T> out, std::span<const T> in, dist::reduce_op) {
        ++calls;
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = in[i];
    }
    template <class T>
    void broadcast(std::span<T>, std::size_t) {
        ++calls;
    }
    template <class T>
    void all_gather(std::span<T> out, std::span<const T> in) {
        ++calls;
        std::copy(in.begin(), in.end(), out.begin());
    }
    template <class T>
    void reduce_scatter(std::span<T> out, std::span<const T> in, dist::reduce_op) {
        ++calls;
        std::copy(in.begin(), in.end(), out.begin());
    }
    template <class T>
    void all_to_all(std::span<T> out, std::span<const T> in) {
        ++calls;
        std::copy(in.begin(), in.end(), out.begin());
    }
    template <class T>
    void all_to_allv(std::span<T> out, std::span<const std::size_t>, std::span<const T> in, std::span<const std::size_t>) {
        ++calls;
        std::copy(in.begin(), in.end(), out.begin());
    }
    void barrier() { ++calls; }
};

// Not a communicator: no barrier.
struct no_barrier {
    std::size_t rank() const { return 0; }
    std::size_t size() const { return 1; }
};

}  // namespace user

static_assert(dist::communicator<dist::single_process>);
static_assert(dist::communicator<user::counting_comm>);
static_assert(!dist::communicator<user::no_barrier>);
static_assert(dist::buffer<std::vector<float>&> && dist::buffer<std::span<const llm::bf16>> && dist::buffer<std::array<std::uint64_t, 3>&>);
static_assert(dist::buffer<llm::tensor<float, llm::dims<2>>&> && !dist::buffer<std::vector<bool>&>);
static_assert(dist::reducible<llm::bf16> && !dist::reducible<std::byte> && dist::transferable<std::byte>);

TEST_CASE("dist: single_process collectives are the identity on vectors, arrays and llm tensors") {
    dist::single_process comm;
    CHECK(comm.rank() == 0);
    CHECK(comm.size() == 1);
    std::vector<float> x{1, 2, 3}, y(3);
    dist::all_reduce(y, x, dist::reduce_op::mean, comm);
    CHECK(y == x);
    dist::all_reduce(x, dist::reduce_op::sum, comm);  // in place
    CHECK(x == std::vector<float>{1, 2, 3});
    std::array<std::uint64_t, 4> a{5, 6, 7, 8}, b{};
    dist::all_to_all(b, a, comm);
    CHECK(b == a);
    dist::broadcast(a, 0, comm);
    CHECK(a == std::array<std::uint64_t, 4>{5, 6, 7, 8});

    llm::tensor<float, llm::dims<2>> t(2, 3), u(2, 3);
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j) t(i, j) = static_cast<float>(10 * i + j);
    dist::all_gather(u, t, comm);
    dist::reduce_scatter(u.view(), t.view(), dist::reduce_op::sum, comm);
    CHECK(u(1, 2) == 12.0f);
    std::vector<llm::bf16> h{llm::bf16(1.5f)}, g(1);
    dist::all_reduce(g, h, dist::reduce_op::mean, comm);
    CHECK(static_cast<float>(g[0]) == 1.5f);
    dist::barrier(comm);
}

TEST_CASE("dist: the size rules of every collective are llm::error naming the call and the sizes") {
    dist::single_process comm;
    std::vector<float> x(3), y(4);
    CHECK_THROWS_WITH_AS(dist::all_reduce(y, x, dist::reduce_op::sum, comm),
                         "single_process::all_reduce: out has 4 elements but in has 3; they must be equal", llm::error);
    CHECK_THROWS_WITH_AS(dist::all_reduce(std::span(x).subspan(1), std::span(x).first(2), dist::reduce_op::sum, comm),
                         "single_process::all_reduce: out and in overlap without being the same buffer", llm::error);
    CHECK_THROWS_WITH_AS(dist::broadcast(x, 1, comm), "single_process::broadcast: root = 1 but the communicator has 1 ranks", llm::error);
    CHECK_THROWS_WITH_AS(dist::all_gather(y, x, comm), "single_process::all_gather: out has 4 elements, expected in (3) x 1 ranks", llm::error);
    CHECK_THROWS_WITH_AS(dist::reduce_scatter(x, y, dist::reduce_op::sum, comm),
                         "single_process::reduce_scatter: in has 4 elements, expected out (3) x 1 ranks", llm::error);
    const std::vector<std::size_t> two{3}, wrong{2};
    CHECK_THROWS_WITH_AS(dist::all_to_allv(x, two, x, two, comm), "single_process::all_to_allv: out and in overlap", llm::error);
    std::vector<float> z(3);
    CHECK_THROWS_WITH_AS(dist::all_to_allv(z, wrong, x, wrong, comm),
                         "single_process::all_to_allv: out_counts add up to 2 (out has 3), in_counts to 2 (in has 3)", llm::error);
    const std::vector<std::size_t> none{};
    CHECK_THROWS_WITH_AS(dist::all_to_allv(z, none, x, two, comm),
                         "single_process::all_to_allv: out_counts has 0 and in_counts 1 entries; both need one per rank (1)", llm::error);
    // A strided view (a transposed matrix) is refused by name, not sent with its gaps.
    llm::tensor<float, llm::dims<2>> t(2, 3), u(3, 2);
    CHECK_THROWS_WITH_AS(dist::all_reduce(u, llm::transpose(t, 0, 1), dist::reduce_op::sum, comm),
                         "all_reduce: in is not contiguous (a strided view); communicate a contiguous copy", llm::error);
}

TEST_CASE("dist: a communicator defined outside llm:: runs through the free collectives") {
    user::counting_comm comm;
    std::vector<std::uint64_t> in{1, 2, 3}, out;
    std::vector<std::size_t> out_counts;
    const std::vector<std::size_t> in_counts{3};
    dist::exchange(out, out_counts, in, in_counts, comm);  // counts all_to_all, then all_to_allv
    CHECK(out == in);
    CHECK(out_counts == std::vector<std::size_t>{3});
    std::vector<float> f{1, 2};
    dist::all_reduce(f, dist::reduce_op::sum, comm);
    dist::barrier(comm);
    CHECK(comm.calls == 4);
}

TEST_CASE("dist: for_each_chunk cuts counts into pieces of at most the limit, covering each element once") {
    std::vector<std::pair<std::size_t, std::size_t>> seen;
    const auto record = [&](std::size_t off, std::size_t n) { seen.emplace_back(off, n); };
    dist::detail::for_each_chunk(10, 3, record);
    CHECK(seen == std::vector<std::pair<std::size_t, std::size_t>>{{0, 3}, {3, 3}, {6, 3}, {9, 1}});
    seen.clear();
    dist::detail::for_each_chunk(6, 3, record);
    CHECK(seen == std::vector<std::pair<std::size_t, std::size_t>>{{0, 3}, {3, 3}});
    seen.clear();
    dist::detail::for_each_chunk(0, 3, record);  // an empty buffer is still one (empty) call: every rank takes part
    CHECK(seen == std::vector<std::pair<std::size_t, std::size_t>>{{0, 0}});
    seen.clear();
    // The real limit: 2^32 + 5 elements need 3 MPI calls of at most INT_MAX.
    const std::size_t big = (std::size_t{1} << 32) + 5;
    dist::detail::for_each_chunk(big, INT_MAX, record);
    REQUIRE(seen.size() == 3);
    CHECK(seen[0] == std::pair<std::size_t, std::size_t>{0, INT_MAX});
    CHECK(seen[1] == std::pair<std::size_t, std::size_t>{INT_MAX, INT_MAX});
    CHECK(seen[2].first + seen[2].second == big);
    CHECK_THROWS_AS(dist::detail::for_each_chunk(1, 0, record), llm::error);
}
