// expect: policy
// An int where llm::parallel::parallel_for takes its executor: the call must fail at the call
// site, naming the concept llm::parallel::policy.
#include <llm/parallel/parallel_for.hpp>

#include <cstddef>

int main() {
    int threads = 4;
    std::size_t total = 0;
    llm::parallel::parallel_for(threads, 100, 10, [&](std::size_t b, std::size_t e) { total += e - b; });
    return static_cast<int>(total);
}
