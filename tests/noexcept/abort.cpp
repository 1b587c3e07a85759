// SPDX-License-Identifier: Apache-2.0
// Built with -fno-exceptions (cmake/llmTestChecks.cmake): bad input must print llm::error's
// message and abort. The ctest entry passes only when the process was aborted and the message
// is on stderr; reaching the end of main prints a marker and exits 0, which fails the test.
#include <llm/tensor/tensor.hpp>

#include <cstddef>
#include <cstdio>

int main(int argc, char**) {
    // 2^40 x 2^40 floats overflows std::size_t; argc keeps the size out of constant folding.
    const std::size_t huge = std::size_t{1} << (39 + argc);
    llm::tensor<float, llm::dims<2>> t(huge, huge);
    std::printf("noexcept_abort: still running after bad input (%zu elements)\n", t.size());
    return 0;
}
