// SPDX-License-Identifier: Apache-2.0
// Bounded spin-then-sleep waiting on an atomic word, used by the thread pool's hand-offs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace llm::parallel::detail {

/// Tells the core we are spinning (x86 `pause`, Arm `yield`), which saves power and frees
/// the sibling hyper-thread; a plain no-op elsewhere.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/// How long a thread spins before it sleeps in the kernel. A futex wake costs the waker a
/// system call and the sleeper several microseconds before it runs again, and far more on a
/// virtual machine whose idle vCPU the host has given to someone else; kernels call
/// parallel_for back to back (layer after layer), so threads that finished a job stay
/// awake this long and pick up the next one in well under a microsecond. Idle longer than
/// this, a thread sleeps and costs nothing, so an idle pool never burns a core. 2 ms rather
/// than 50 us: a model's prefill has serial stretches longer than 50 us between its parallel
/// kernels, and on a shared 2-vCPU KVM guest (Emerald Rapids) 2 ms ran the 2-thread prefill
/// 0-30% faster than 50 us in 13 of 14 alternated runs (BENCHMARKS.md, 2026-12-06 10:35).
/// OpenMP runtimes spin longer still by default (libgomp: 300 000 iterations).
inline constexpr std::chrono::microseconds spin_budget{2000};

/// Blocks until `done(word.load())` holds, spinning for at most spin_budget and then
/// sleeping in std::atomic::wait. Whoever makes `done` true must call word.notify_*()
/// after its store (a no-op system-call-wise when nobody sleeps). Returns the value seen.
template <class Done>
std::uint32_t wait_until(const std::atomic<std::uint32_t>& word, Done done) {
    // The clock is read once every 64 relax steps: cheap, and still a fine-grained budget.
    constexpr unsigned steps_per_clock_read = 64;
    const auto deadline = std::chrono::steady_clock::now() + spin_budget;
    for (unsigned step = 1;; ++step) {
        const std::uint32_t value = word.load(std::memory_order_acquire);
        if (done(value)) {
            return value;
        }
        if (step % steps_per_clock_read == 0 && std::chrono::steady_clock::now() > deadline) {
            break;
        }
        cpu_relax();
    }
    for (;;) {
        const std::uint32_t value = word.load(std::memory_order_acquire);
        if (done(value)) {
            return value;
        }
        word.wait(value, std::memory_order_acquire);
    }
}

}  // namespace llm::parallel::detail
