// SPDX-License-Identifier: Apache-2.0
// The communicator policy of llm::dist (an open, structural concept), the element types it carries,
// and the collective operations as free functions over llm views and contiguous ranges.
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/error.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <ranges>
#include <span>
#include <type_traits>
#include <vector>

namespace llm::dist {

/// How all_reduce and reduce_scatter combine the ranks' values: their sum, or their mean
/// (the sum divided by the number of ranks; floating-point element types only).
enum class reduce_op { sum, mean };

/// Element types a communicator carries: arithmetic types, llm::bf16 and std::byte.
/// Example: `static_assert(llm::dist::transferable<llm::bf16>);`
template <class T>
concept transferable = (std::is_arithmetic_v<T> && !std::same_as<T, bool>) || std::same_as<T, bf16> || std::same_as<T, std::byte>;

/// Element types all_reduce and reduce_scatter can add: arithmetic types and llm::bf16.
/// Example: `static_assert(llm::dist::reducible<llm::bf16>);`
template <class T>
concept reducible = transferable<T> && !std::same_as<T, std::byte>;

/// A communicator policy: a group of `size()` ranks, this process being `rank()`, and the
/// collectives every backend (single_process, mpi, nccl, or a user's own type outside llm::)
/// provides over spans. Every rank calls every collective in the same order with matching
/// sizes; each call returns when this rank's part is done (outputs written, inputs reusable).
///   all_reduce(out, in, op)               out = op over ranks of in (out == in: in place)
///   broadcast(buffer, root)               buffer = root's buffer
///   all_gather(out, in)                   out[r * n, (r + 1) * n) = rank r's in (n = in.size())
///   reduce_scatter(out, in, op)           out = op over ranks of in[rank * n, (rank + 1) * n) (n = out.size())
///   all_to_all(out, in)                   out block r = rank r's in block rank (blocks of in.size() / size())
///   all_to_allv(out, out_counts, in, in_counts)  the same with per-rank counts (in order of rank)
///   barrier()                             returns once every rank has entered it
/// Models: llm::dist::single_process, llm::dist::mpi, llm::dist::nccl.
/// Example: `static_assert(llm::dist::communicator<llm::dist::single_process>);`
template <class C>
concept communicator = requires(C& c, std::span<float> out, std::span<const float> in, std::span<std::uint64_t> out64,
                                std::span<const std::uint64_t> in64, std::span<const std::size_t> counts) {
    { c.rank() } -> std::convertible_to<std::size_t>;
    { c.size() } -> std::convertible_to<std::size_t>;
    c.all_reduce(out, in, reduce_op::sum);
    c.broadcast(out, std::size_t{0});
    c.all_gather(out, in);
    c.reduce_scatter(out, in, reduce_op::mean);
    c.all_to_all(out64, in64);
    c.all_to_allv(out64, counts, in64, counts);
    c.barrier();
};

/// A communicator that can also start an in-place all-reduce and complete it later, so it
/// overlaps computation: `h = c.start_all_reduce(buffer, op)`, `c.test(h)` (progress; true when
/// done), `c.wait(h)`. llm::dist::mpi is one; gradient_buckets uses it when available.
/// Example: `static_assert(llm::dist::async_all_reduce<llm::dist::mpi>);`
template <class C>
concept async_all_reduce =
    communicator<C> && requires(C& c, std::span<float> buffer) { c.start_all_reduce(buffer, reduce_op::mean); } &&
    requires(C& c, decltype(std::declval<C&>().start_all_reduce(std::declval<std::span<float>>(), reduce_op::mean))& h) {
        { c.test(h) } -> std::convertible_to<bool>;
        c.wait(h);
    };

/// A buffer the free collectives take: a contiguous range (std::vector, std::span, std::array)
/// or a contiguous llm view of any rank (an llm::tensor_view or an lvalue llm::tensor whose
/// strides are row-major without gaps), with transferable elements.
/// Example: `static_assert(llm::dist::buffer<std::vector<float>&>);`
template <class B>
concept buffer =
    (std::ranges::contiguous_range<B> && std::ranges::sized_range<B> && transferable<std::remove_cv_t<std::ranges::range_value_t<B>>>) ||
    (requires(B& b) {
        { b.data() };
        { b.extent(0) } -> std::convertible_to<std::size_t>;
        { b.stride(0) } -> std::convertible_to<std::size_t>;
        std::remove_cvref_t<B>::rank();
    } && std::is_pointer_v<decltype(std::declval<B&>().data())> &&
     transferable<std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<B&>().data())>>>);

namespace detail {

/// The elements of a buffer as a span; a strided llm view with gaps is an llm::error naming the call.
template <class B>
auto as_span(B&& b, const char* fn, const char* arg) {
    if constexpr (std::ranges::contiguous_range<B>) {
        (void)fn;
        (void)arg;
        return std::span(std::ranges::data(b), std::ranges::size(b));
    } else {
        using V = std::remove_cvref_t<B>;
        std::size_t n = 1, expect = 1;
        bool contiguous = true;
        for (std::size_t r = V::rank(); r-- > 0;) {
            const std::size_t e = b.extent(r);
            if (e != 1 && static_cast<std::size_t>(b.stride(r)) != expect) contiguous = false;
            expect *= e;
            n *= e;
        }
        llm::check(contiguous || n == 0, fn, ": ", arg, " is not contiguous (a strided view); communicate a contiguous copy");
        return std::span(b.data(), n);
    }
}

template <class B>
using buffer_element_t = typename decltype(as_span(std::declval<B&>(), "", ""))::element_type;

/// Calls f(offset, count) over [0, n) in pieces of at most `limit` elements (one call for n == 0).
/// The one place large counts are cut for APIs that take `int` counts (MPI).
template <class F>
void for_each_chunk(std::size_t n, std::size_t limit, F&& f) {
    llm::check(limit >= 1, "llm::dist: chunk limit must be >= 1");
    if (n == 0) {
        f(std::size_t{0}, std::size_t{0});
        return;
    }
    for (std::size_t off = 0; off < n; off += std::min(limit, n - off)) f(off, std::min(limit, n - off));
}

/// Whether two spans share memory.
template <class A, class B>
bool overlap(std::span<A> a, std::span<B> b) noexcept {
    if (a.empty() || b.empty()) return false;
    const auto* a0 = reinterpret_cast<const std::byte*>(a.data());
    const auto* b0 = reinterpret_cast<const std::byte*>(b.data());
    return std::less<>{}(a0, b0 + b.size_bytes()) && std::less<>{}(b0, a0 + a.size_bytes());
}

/// reduce_op::mean on integer elements is refused (the mean of integers is not one).
template <class T>
void check_op(const char* fn, reduce_op op) {
    llm::check(op != reduce_op::mean || std::is_floating_point_v<T> || std::same_as<T, bf16>, fn,
               ": reduce_op::mean needs floating-point elements (fp32, fp64, bf16)");
}

// The size rules of each collective, checked by every backend with the same messages.
inline void check_all_reduce(const char* fn, std::size_t out, std::size_t in, bool same, bool overlapping) {
    llm::check(out == in, fn, ": out has ", out, " elements but in has ", in, "; they must be equal");
    llm::check(same || !overlapping, fn, ": out and in overlap without being the same buffer");
}
inline void check_root(const char* fn, std::size_t root, std::size_t size) {
    llm::check(root < size, fn, ": root = ", root, " but the communicator has ", size, " ranks");
}
inline void check_all_gather(const char* fn, std::size_t out, std::size_t in, std::size_t size) {
    llm::check(in <= out / size && out == in * size, fn, ": out has ", out, " elements, expected in (", in, ") x ", size, " ranks");
}
inline void check_reduce_scatter(const char* fn, std::size_t out, std::size_t in, std::size_t size, bool overlapping) {
    llm::check(out <= in / size && in == out * size, fn, ": in has ", in, " elements, expected out (", out, ") x ", size, " ranks");
    llm::check(!overlapping, fn, ": out and in overlap");
}
inline void check_all_to_all(const char* fn, std::size_t out, std::size_t in, std::size_t size, bool overlapping) {
    llm::check(out == in && in % size == 0, fn, ": out has ", out, " and in ", in, " elements; they must be equal and a multiple of ", size,
               " ranks");
    llm::check(!overlapping, fn, ": out and in overlap");
}
inline void check_all_to_allv(const char* fn, std::size_t out, std::span<const std::size_t> out_counts, std::size_t in,
                              std::span<const std::size_t> in_counts, std::size_t size, bool overlapping) {
    llm::check(out_counts.size() == size && in_counts.size() == size, fn, ": out_counts has ", out_counts.size(), " and in_counts ",
               in_counts.size(), " entries; both need one per rank (", size, ")");
    std::size_t so = 0, si = 0;
    for (std::size_t r = 0; r < size; ++r) {
        llm::check(out_counts[r] <= out - std::min(out, so) && in_counts[r] <= in - std::min(in, si), fn, ": counts for rank ", r,
                   " run past the buffers (out ", out, ", in ", in, " elements)");
        so += out_counts[r];
        si += in_counts[r];
    }
    llm::check(so == out && si == in, fn, ": out_counts add up to ", so, " (out has ", out, "), in_counts to ", si, " (in has ", in, ")");
    llm::check(!overlapping, fn, ": out and in overlap");
}

}  // namespace detail

/// out = op over all ranks of in (sum or mean). out and in have the same size; out may be in
/// itself. Example: `llm::dist::all_reduce(grad, grad, llm::dist::reduce_op::mean, comm);`
template <buffer Out, buffer In, communicator Comm>
    requires reducible<std::remove_const_t<detail::buffer_element_t<Out>>> &&
             std::same_as<std::remove_const_t<detail::buffer_element_t<Out>>, std::remove_const_t<detail::buffer_element_t<In>>>
void all_reduce(Out&& out, In&& in, reduce_op op, Comm&& comm) {
    using T = std::remove_const_t<detail::buffer_element_t<Out>>;
    comm.all_reduce(std::span<T>(detail::as_span(out, "all_reduce", "out")), std::span<const T>(detail::as_span(in, "all_reduce", "in")), op);
}

/// In-place all_reduce: buffer = op over all ranks of buffer.
/// Example: `llm::dist::all_reduce(grad, llm::dist::reduce_op::sum, comm);`
template <buffer Buf, communicator Comm>
    requires reducible<std::remove_const_t<detail::buffer_element_t<Buf>>>
void all_reduce(Buf&& buf, reduce_op op, Comm&& comm) {
    using T = std::remove_const_t<detail::buffer_element_t<Buf>>;
    const std::span<T> s = detail::as_span(buf, "all_reduce", "buffer");
    comm.all_reduce(s, std::span<const T>(s), op);
}

/// buffer = root's buffer on every rank. Example: `llm::dist::broadcast(weights, 0, comm);`
template <buffer Buf, communicator Comm>
void broadcast(Buf&& buf, std::size_t root, Comm&& comm) {
    comm.broadcast(detail::as_span(buf, "broadcast", "buffer"), root);
}

/// out = the concatenation, in rank order, of every rank's in (out.size() == size() * in.size()).
/// Example: `llm::dist::all_gather(all_counts, std::span(&my_count, 1), comm);`
template <buffer Out, buffer In, communicator Comm>
    requires std::same_as<std::remove_const_t<detail::buffer_element_t<Out>>, std::remove_const_t<detail::buffer_element_t<In>>>
void all_gather(Out&& out, In&& in, Comm&& comm) {
    using T = std::remove_const_t<detail::buffer_element_t<Out>>;
    comm.all_gather(std::span<T>(detail::as_span(out, "all_gather", "out")), std::span<const T>(detail::as_span(in, "all_gather", "in")));
}

/// out = op over all ranks of this rank's block of in (in.size() == size() * out.size()).
/// Example: `llm::dist::reduce_scatter(my_shard, grad, llm::dist::reduce_op::mean, comm);`
template <buffer Out, buffer In, communicator Comm>
    requires reducible<std::remove_const_t<detail::buffer_element_t<Out>>> &&
             std::same_as<std::remove_const_t<detail::buffer_element_t<Out>>, std::remove_const_t<detail::buffer_element_t<In>>>
void reduce_scatter(Out&& out, In&& in, reduce_op op, Comm&& comm) {
    using T = std::remove_const_t<detail::buffer_element_t<Out>>;
    comm.reduce_scatter(std::span<T>(detail::as_span(out, "reduce_scatter", "out")),
                        std::span<const T>(detail::as_span(in, "reduce_scatter", "in")), op);
}

/// Block r of out = block rank() of rank r's in; blocks of in.size() / size() elements.
/// Example: `llm::dist::all_to_all(received, sent, comm);`
template <buffer Out, buffer In, communicator Comm>
    requires std::same_as<std::remove_const_t<detail::buffer_element_t<Out>>, std::remove_const_t<detail::buffer_element_t<In>>>
void all_to_all(Out&& out, In&& in, Comm&& comm) {
    using T = std::remove_const_t<detail::buffer_element_t<Out>>;
    comm.all_to_all(std::span<T>(detail::as_span(out, "all_to_all", "out")), std::span<const T>(detail::as_span(in, "all_to_all", "in")));
}

/// all_to_all with per-rank counts: in holds in_counts[r] elements for rank r (in rank order),
/// out receives out_counts[r] elements from rank r (in rank order); out_counts on this rank must
/// equal in_counts on the senders (llm::dist::exchange finds them).
/// Example: `llm::dist::all_to_allv(out, out_counts, in, in_counts, comm);`
template <buffer Out, buffer In, communicator Comm>
    requires std::same_as<std::remove_const_t<detail::buffer_element_t<Out>>, std::remove_const_t<detail::buffer_element_t<In>>>
void all_to_allv(Out&& out, std::span<const std::size_t> out_counts, In&& in, std::span<const std::size_t> in_counts, Comm&& comm) {
    using T = std::remove_const_t<detail::buffer_element_t<Out>>;
    comm.all_to_allv(std::span<T>(detail::as_span(out, "all_to_allv", "out")), out_counts,
                     std::span<const T>(detail::as_span(in, "all_to_allv", "in")), in_counts);
}

/// all_to_allv that first exchanges the counts (one all_to_all of size() values) and sizes
/// `out` and `out_counts` to what arrives. Example: `llm::dist::exchange(got, got_counts, send, send_counts, comm);`
template <transferable T, buffer In, communicator Comm>
    requires std::same_as<T, std::remove_const_t<detail::buffer_element_t<In>>>
void exchange(std::vector<T>& out, std::vector<std::size_t>& out_counts, In&& in, std::span<const std::size_t> in_counts, Comm&& comm) {
    const std::size_t p = comm.size();
    llm::check(in_counts.size() == p, "exchange: in_counts has ", in_counts.size(), " entries, expected one per rank (", p, ")");
    std::vector<std::uint64_t> send(in_counts.begin(), in_counts.end()), got(p);
    comm.all_to_all(std::span<std::uint64_t>(got), std::span<const std::uint64_t>(send));
    out_counts.assign(got.begin(), got.end());
    out.resize(std::accumulate(out_counts.begin(), out_counts.end(), std::size_t{0}));
    comm.all_to_allv(std::span<T>(out), std::span<const std::size_t>(out_counts), std::span<const T>(detail::as_span(in, "exchange", "in")),
                     in_counts);
}

/// Returns once every rank has entered the barrier. Example: `llm::dist::barrier(comm);`
template <communicator Comm>
void barrier(Comm&& comm) {
    comm.barrier();
}

}  // namespace llm::dist
