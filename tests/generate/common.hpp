// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the generate tests: the golden cases of tests/golden/generate/<family>.txt.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace gen_test {

/// One golden case: a prompt and transformers' greedy continuation.
struct golden_case {
    std::vector<std::int32_t> prompt;
    std::vector<std::int32_t> greedy;
};

inline std::vector<std::int32_t> parse_ids(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::int32_t> out;
    std::int32_t v;
    while (in >> v) out.push_back(v);
    return out;
}

/// The cases of tests/golden/generate/<family>.txt (written by make_golden.py there).
inline std::vector<golden_case> goldens(const std::string& family) {
    std::ifstream f("tests/golden/generate/" + family + ".txt");
    REQUIRE(f.good());
    std::vector<golden_case> out;
    std::string a, b;
    while (std::getline(f, a) && std::getline(f, b)) {
        REQUIRE(a.rfind("prompt: ", 0) == 0);
        REQUIRE(b.rfind("greedy: ", 0) == 0);
        out.push_back({parse_ids(a.substr(8)), parse_ids(b.substr(8))});
    }
    REQUIRE(out.size() == 3);
    return out;
}

inline std::string model_dir(const std::string& family) { return "tests/golden/model/" + family; }

}  // namespace gen_test
