// SPDX-License-Identifier: Apache-2.0
// A user's program: includes the umbrella header and uses a few building blocks.
#include <llm/llm.hpp>

#include <cstdio>

int main() {
    std::printf("llm %s\n", llm::version());
    try {
        llm::fail("consumer: expected error ", 42);
    } catch (const llm::error& e) {
        std::printf("caught: %s\n", e.what());
    }
    return 0;
}
