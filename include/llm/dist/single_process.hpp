// SPDX-License-Identifier: Apache-2.0
// llm::dist::single_process: the communicator of one rank (no dependency; every collective is a copy).
#pragma once

#include <llm/dist/communicator.hpp>

#include <algorithm>
#include <cstddef>
#include <span>

namespace llm::dist {

/// The default communicator: one rank (rank 0 of 1), no dependency. Every collective is the
/// identity (a copy where out and in differ), with the size checks of the real backends, so code
/// written for several ranks runs and is tested unchanged in one process.
/// Example: `llm::dist::single_process comm; llm::dist::all_reduce(grad, llm::dist::reduce_op::mean, comm);`
struct single_process {
    std::size_t rank() const noexcept { return 0; }  ///< always 0
    std::size_t size() const noexcept { return 1; }  ///< always 1

    /// out = in (the sum or mean of one rank). Example: `comm.all_reduce(out, in, llm::dist::reduce_op::sum);`
    template <reducible T>
    void all_reduce(std::span<T> out, std::span<const T> in, reduce_op op) const {
        detail::check_op<T>("single_process::all_reduce", op);
        const bool same = out.data() == in.data();
        detail::check_all_reduce("single_process::all_reduce", out.size(), in.size(), same, detail::overlap(out, in));
        if (!same) std::copy(in.begin(), in.end(), out.begin());
    }
    /// Nothing to send; root must be 0. Example: `comm.broadcast(buffer, 0);`
    template <transferable T>
    void broadcast(std::span<T> buffer, std::size_t root) const {
        (void)buffer;
        detail::check_root("single_process::broadcast", root, 1);
    }
    /// out = in. Example: `comm.all_gather(out, in);`
    template <transferable T>
    void all_gather(std::span<T> out, std::span<const T> in) const {
        detail::check_all_gather("single_process::all_gather", out.size(), in.size(), 1);
        if (out.data() != in.data()) std::copy(in.begin(), in.end(), out.begin());
    }
    /// out = in. Example: `comm.reduce_scatter(out, in, llm::dist::reduce_op::sum);`
    template <reducible T>
    void reduce_scatter(std::span<T> out, std::span<const T> in, reduce_op op) const {
        detail::check_op<T>("single_process::reduce_scatter", op);
        detail::check_reduce_scatter("single_process::reduce_scatter", out.size(), in.size(), 1, detail::overlap(out, in));
        std::copy(in.begin(), in.end(), out.begin());
    }
    /// out = in. Example: `comm.all_to_all(out, in);`
    template <transferable T>
    void all_to_all(std::span<T> out, std::span<const T> in) const {
        detail::check_all_to_all("single_process::all_to_all", out.size(), in.size(), 1, detail::overlap(out, in));
        std::copy(in.begin(), in.end(), out.begin());
    }
    /// out = in (one count each). Example: `comm.all_to_allv(out, out_counts, in, in_counts);`
    template <transferable T>
    void all_to_allv(std::span<T> out, std::span<const std::size_t> out_counts, std::span<const T> in,
                     std::span<const std::size_t> in_counts) const {
        detail::check_all_to_allv("single_process::all_to_allv", out.size(), out_counts, in.size(), in_counts, 1, detail::overlap(out, in));
        std::copy(in.begin(), in.end(), out.begin());
    }
    /// Returns at once. Example: `comm.barrier();`
    void barrier() const noexcept {}
};

static_assert(communicator<single_process>);

}  // namespace llm::dist
