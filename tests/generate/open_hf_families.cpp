// SPDX-License-Identifier: Apache-2.0
// generate::open_hf on the Mixtral and Mamba checkpoints: each opens as its family; a Mamba
// config whose sizes llm::model::mamba<> does not hold is refused by name.
#include <llm/generate/load.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <type_traits>

#include "../support/temp_dir.hpp"

TEST_CASE("open_hf: Mixtral and Mamba checkpoints open as llm::moe::mixtral<> and llm::model::mamba<>; sizes mamba<> cannot hold are refused by name") {
    // Both directories are transformers' own tiny checkpoints (tests/golden/moe, tests/golden/ssm).
    auto kind = [](const char* dir) {
        return llm::generate::open_hf(dir, [](const auto& m, const auto&, const auto&) {
            using M = std::remove_cvref_t<decltype(m)>;
            return std::is_same_v<M, llm::moe::mixtral<>> ? 1 : std::is_same_v<M, llm::model::mamba<>> ? 2 : 0;
        });
    };
    CHECK(kind("tests/golden/moe/mixtral") == 1);
    CHECK(kind("tests/golden/ssm/mamba_lm") == 2);
    // state_size 8: mamba<> is instantiated for 16
    llm_test::temp_dir d;
    std::filesystem::copy_file("tests/golden/ssm/mamba_lm/model.safetensors", d / "model.safetensors");
    {
        std::ifstream in("tests/golden/ssm/mamba_lm/config.json");
        std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        json.replace(json.find("\"state_size\": 16"), 16, "\"state_size\": 8");
        std::ofstream(d / "config.json", std::ios::trunc) << json;
    }
    CHECK_THROWS_WITH_AS(kind(d.path.string().c_str()), doctest::Contains("MambaForCausalLM checkpoint with state_size 8"), llm::error);
}
