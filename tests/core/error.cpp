// SPDX-License-Identifier: Apache-2.0
// Tests of llm::error, llm::fail and llm::check.
#include <llm/core/error.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("fail throws llm::error with the concatenated message") {
    try {
        llm::fail("rmsnorm: eps = ", 0.0, " must be > 0 (rows ", 7, ")");
        FAIL("fail returned");
    } catch (const llm::error& e) {
        CHECK(std::string(e.what()) == "rmsnorm: eps = 0 must be > 0 (rows 7)");
    }
}

TEST_CASE("llm::error is a std::runtime_error") {
    CHECK_THROWS_AS(llm::fail("x"), std::runtime_error);
}

TEST_CASE("check passes silently and throws on a false condition") {
    CHECK_NOTHROW(llm::check(true, "never"));
    CHECK_THROWS_WITH_AS(llm::check(3 == 4, "add: x has ", 3, " rows but y has ", 4),
                         "add: x has 3 rows but y has 4", llm::error);
}
