// SPDX-License-Identifier: Apache-2.0
// Tests of llm::parallel::thread_pool: sizing, LLM_NUM_THREADS, lifetime, idle behaviour.
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/thread_pool.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace par = llm::parallel;

namespace {

// Sets LLM_NUM_THREADS for the scope and restores the previous value (tests are
// single-threaded here, so setenv is safe).
class scoped_env {
public:
    explicit scoped_env(const char* value) {
        if (const char* old = std::getenv(name)) {
            saved_ = old;
        }
        if (value != nullptr) {
            ::setenv(name, value, 1);
        } else {
            ::unsetenv(name);
        }
    }
    ~scoped_env() {
        if (saved_) {
            ::setenv(name, saved_->c_str(), 1);
        } else {
            ::unsetenv(name);
        }
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    static constexpr const char* name = "LLM_NUM_THREADS";
    std::optional<std::string> saved_;
};

#if defined(__linux__)
// Ids of this process's threads (Linux: the entries of /proc/self/task).
std::set<std::string> thread_ids() {
    std::set<std::string> ids;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ids.insert(entry.path().filename().string());
    return ids;
}

// Scheduler state of one thread: the field after the parenthesised name in its stat file
// ('R' running or runnable, 'S' asleep in the kernel, ...); '?' if it cannot be read.
char thread_state(const std::string& id) {
    std::ifstream in("/proc/self/task/" + id + "/stat");
    std::string line;
    std::getline(in, line);
    const std::size_t close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
}
#endif

}  // namespace

TEST_CASE("thread_pool size counts the calling thread") {
    for (std::size_t n : {1, 2, 3, 7}) {
        par::thread_pool pool(n);
        CHECK(pool.size() == n);
    }
}

TEST_CASE("thread_pool rejects a bad thread count") {
    CHECK_THROWS_WITH_AS(par::thread_pool(0), "thread_pool: n_threads = 0 must be in [1, 4096]",
                         llm::error);
    CHECK_THROWS_WITH_AS(par::thread_pool(par::max_threads + 1),
                         "thread_pool: n_threads = 4097 must be in [1, 4096]", llm::error);
}

TEST_CASE("thread counts are parsed strictly") {
    using par::detail::parse_thread_count;
    CHECK(parse_thread_count("1", "X") == 1);
    CHECK(parse_thread_count("2", "X") == 2);
    CHECK(parse_thread_count("4096", "X") == 4096);
    CHECK(parse_thread_count("007", "X") == 7);
    for (const char* bad : {"", "0", "-1", "+2", " 2", "2 ", "2x", "abc", "4097", "1.5",
                            "99999999999999999999999999"}) {
        CAPTURE(bad);
        CHECK_THROWS_WITH_AS(parse_thread_count(bad, "LLM_NUM_THREADS"),
                             (std::string("default_thread_count: LLM_NUM_THREADS = \"") + bad +
                              "\" is not a thread count; expected an integer in [1, 4096]")
                                 .c_str(),
                             llm::error);
    }
}

TEST_CASE("LLM_NUM_THREADS sets the default thread count") {
    const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
    {
        scoped_env env("3");
        CHECK(par::default_thread_count() == 3);
        par::thread_pool pool;
        CHECK(pool.size() == 3);
    }
    {
        scoped_env env(nullptr);
        CHECK(par::default_thread_count() == hardware);
    }
    {
        scoped_env env("");  // set but empty: treated as unset
        CHECK(par::default_thread_count() == hardware);
    }
    {
        scoped_env env("two");
        CHECK_THROWS_WITH_AS(par::default_thread_count(),
                             "default_thread_count: LLM_NUM_THREADS = \"two\" is not a thread "
                             "count; expected an integer in [1, 4096]",
                             llm::error);
        CHECK_THROWS_AS(par::thread_pool(), llm::error);
    }
}

TEST_CASE("pools can be created and destroyed with no work, or right after work") {
    for (int round = 0; round < 20; ++round) {
        for (std::size_t n : {1, 2, 4, 16}) {
            par::thread_pool pool(n);
        }
    }
    for (int round = 0; round < 20; ++round) {
        par::thread_pool pool(3);
        std::atomic<std::size_t> sum{0};
        par::parallel_for(pool, 100, 1, [&](std::size_t b, std::size_t) { sum.fetch_add(b); });
        CHECK(sum.load() == 4950);
    }
}

#if defined(__linux__)  // thread states come from /proc
TEST_CASE("an idle pool sleeps instead of spinning") {
    // Counted, not timed: after a job every worker must reach the kernel's sleeping state 'S'
    // (std::atomic::wait) and all be seen there at once. Spinning workers stay 'R' forever, so
    // a pool that spins fails however long we look; a loaded machine only delays the moment
    // they get to run out their 2 ms spin budget. The 30 s limit is for a broken pool only.
    // The CPU cost of idling is measured in benchmarks/parallel/overhead.cpp.
    const auto before = thread_ids();
    par::thread_pool pool(5);
    std::set<std::string> workers;
    for (const auto& id : thread_ids()) {
        if (!before.count(id)) workers.insert(id);
    }
    REQUIRE(workers.size() == 4);
    std::atomic<std::size_t> sum{0};
    par::parallel_for(pool, 1000, 1, [&](std::size_t b, std::size_t) { sum.fetch_add(b); });
    CHECK(sum.load() == 499500);
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::size_t asleep = 0;
    int looks = 0;
    while (asleep != workers.size() && std::chrono::steady_clock::now() < limit) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        asleep = 0;
        for (const auto& id : workers) asleep += thread_state(id) == 'S';
        ++looks;
    }
    INFO("looks at the thread states: ", looks);
    CHECK(asleep == workers.size());
    // And a sleeping pool wakes up for the next job.
    sum = 0;
    par::parallel_for(pool, 1000, 1, [&](std::size_t b, std::size_t) { sum.fetch_add(b); });
    CHECK(sum.load() == 499500);
}
#endif
