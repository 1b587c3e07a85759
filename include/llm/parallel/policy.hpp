// SPDX-License-Identifier: Apache-2.0
// The execution-policy concept of llm::parallel and chunk_task, the job a policy runs.
#pragma once

#include <concepts>
#include <cstddef>
#include <memory>
#include <type_traits>

namespace llm::parallel {

/// A non-owning, copyable reference to "run chunk k": what parallel_for hands to a policy.
/// It points at the caller's callable, so it must not outlive the call that created it.
/// Type-erased (one pointer to the object, one to a function) so a policy's `run` is an
/// ordinary function, not a template: the thread pool's hand-off code is compiled once.
/// Example: `auto body = [&](std::size_t k) { out[k] = f(k); }; pool.run(n, llm::parallel::chunk_task(body));`
class chunk_task {
public:
    /// F: a callable invocable as `f(std::size_t chunk_index)`; kept by address.
    template <class F>
        requires std::invocable<F&, std::size_t> &&
                 (!std::same_as<std::remove_cvref_t<F>, chunk_task>)
    explicit chunk_task(F& f) noexcept
        : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_(&call<F>) {}

    /// Runs chunk `k`; exceptions from the callable pass through.
    void operator()(std::size_t k) const { call_(object_, k); }

private:
    template <class F>
    static void call(void* object, std::size_t k) {
        (*static_cast<F*>(object))(k);
    }

    void* object_;
    void (*call_)(void*, std::size_t);
};

/// An execution policy: something that runs the chunks of a parallel_for.
/// Contract of `p.run(n_chunks, task)`: calls `task(k)` exactly once for every k in
/// [0, n_chunks), on any threads and in any order, and returns only when every call has
/// finished. If a call throws, `run` rethrows one of the exceptions (the first to be
/// caught) after the calls already started have finished; chunks not yet started may
/// then be skipped. `p.size()` is the number of threads that run chunks.
/// Models: llm::parallel::sequential, llm::parallel::thread_pool.
template <class P>
concept policy = requires(P& p, std::size_t n_chunks, chunk_task task) {
    { p.size() } -> std::convertible_to<std::size_t>;
    p.run(n_chunks, task);
};

}  // namespace llm::parallel
