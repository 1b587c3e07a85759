// SPDX-License-Identifier: Apache-2.0
// generate::open_hf on the families from_hf_config knows but the engine does not serve.
#include <llm/generate/load.hpp>

#include <doctest/doctest.h>

TEST_CASE("open_hf: Mixtral and Mamba checkpoints are refused by name, not on a tensor name") {
    // Both directories are transformers' own tiny checkpoints (tests/golden/moe, tests/golden/ssm).
    auto open = [](const char* dir) { return llm::generate::open_hf(dir, [](const auto&...) { return 0; }); };
    CHECK_THROWS_WITH_AS(open("tests/golden/moe/mixtral"), doctest::Contains("MixtralForCausalLM"), llm::error);
    CHECK_THROWS_WITH_AS(open("tests/golden/ssm/mamba_lm"), doctest::Contains("MambaForCausalLM"), llm::error);
}
