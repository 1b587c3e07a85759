// SPDX-License-Identifier: Apache-2.0
// Conan test package: the umbrella header compiles, links and runs; prints the backends seen.
#include <llm/llm.hpp>

#include <cstdio>

int main() {
    std::printf("llm %s (eigen %d, xsimd %d, highway %d)\n", llm::version(), LLM_HAS_EIGEN, LLM_HAS_XSIMD,
                LLM_HAS_HWY);
    return 0;
}
