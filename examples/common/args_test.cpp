// SPDX-License-Identifier: Apache-2.0
// The examples' shared flag parser: numbers are read strictly and in range, unknown flags and
// missing values are errors, and run_main maps every exception to exit status 2.
#include "common/args.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// argv for {"tool", words...}; the strings live as long as the object.
struct argv_of {
    std::vector<std::string> words;
    std::vector<char*> ptrs;
    explicit argv_of(std::vector<std::string> w) : words(std::move(w)) {
        words.insert(words.begin(), "tool");
        for (auto& s : words) ptrs.push_back(s.data());
    }
    int argc() const { return static_cast<int>(ptrs.size()); }
    char** argv() { return ptrs.data(); }
};

// The message of the llm::error raised by `f` on the first flag of `words`, or "" when none is.
template <class F>
std::string error_of(std::vector<std::string> words, F f) {
    argv_of a(std::move(words));
    cli::args p(a.argc(), a.argv(), "usage\n");
    try {
        REQUIRE(p.next());
        f(p);
    } catch (const llm::error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("args: integers are whole decimal strings within the stated range") {
    const auto u64 = [](cli::args& p) { return p.integer<std::uint64_t>(256, 16777216); };
    for (const char* bad : {"abc", "-1", "+300", " 300", "300 ", "300x", "0x100", "3e2", "", "255", "16777217",
                            "18446744073709551616", "99999999999999999999999"}) {
        CAPTURE(bad);
        CHECK(error_of({"--vocab-size", bad}, u64) == std::string("--vocab-size '") + bad + "' is not an integer in [256, 16777216]");
    }
    argv_of a({"--n", "256", "--m", "16777216", "--s", "-5"});
    cli::args p(a.argc(), a.argv(), "");
    REQUIRE(p.next());
    CHECK(p.integer<std::uint64_t>(256, 16777216) == 256);
    REQUIRE(p.next());
    CHECK(p.integer<std::size_t>(256, 16777216) == 16777216);
    REQUIRE(p.next());
    CHECK(p.integer<int>(-10, 10) == -5);
    CHECK_FALSE(p.next());
}

TEST_CASE("args: numbers in an open interval are finite decimals") {
    const auto unit = [](cli::args& p) { return p.number_in_open(0, 1); };
    for (const char* bad : {"0", "1", "1.5", "-0.5", "abc", "nan", "inf", "0x0.8p0", " 0.5", "0.5 ", "0.5x", ""}) {
        CAPTURE(bad);
        CHECK(error_of({"--threshold", bad}, unit) == std::string("--threshold '") + bad + "' is not a number in (0, 1)");
    }
    double x = 0;
    CHECK(error_of({"--threshold", "0.75"}, [&](cli::args& p) { x = p.number_in_open(0, 1); }) == "");
    CHECK(x == 0.75);
    CHECK(error_of({"--threshold", "5e-1"}, [&](cli::args& p) { x = p.number_in_open(0, 1); }) == "");
    CHECK(x == 0.5);
}

TEST_CASE("args: missing values, flags as values, choices and unknown flags are errors") {
    CHECK(error_of({"--out"}, [](cli::args& p) { p.value(); }) == "--out needs a value");
    CHECK(error_of({"--out", "--vocab-size"}, [](cli::args& p) { p.value(); }) == "--out needs a value, got the flag '--vocab-size'");
    CHECK(error_of({"--out", "-"}, [](cli::args& p) { CHECK(p.value() == "-"); }) == "");
    CHECK(error_of({"--special", "some"}, [](cli::args& p) { p.choice({"none", "all"}); }) == "--special 'some' is not one of none, all");
    CHECK(error_of({"--special", "all"}, [](cli::args& p) { CHECK(p.choice({"none", "all"}) == "all"); }) == "");
    CHECK(error_of({"--bogus"}, [](cli::args& p) { p.unknown(); }) == "unknown option '--bogus' (see --help)");
    CHECK(error_of({"stray"}, [](cli::args& p) { p.unknown(); }) == "unexpected argument 'stray' (see --help)");
}

TEST_CASE("run_main: every exception is exit status 2; --help is 0; the body's status otherwise") {
    CHECK(cli::run_main("t", [] { return 0; }) == 0);
    CHECK(cli::run_main("t", [] { return 1; }) == 1);
    CHECK(cli::run_main("t", []() -> int { llm::fail("bad"); }) == 2);
    CHECK(cli::run_main("t", []() -> int { throw std::bad_alloc(); }) == 2);
    CHECK(cli::run_main("t", []() -> int { throw std::length_error("vector"); }) == 2);
    CHECK(cli::run_main("t", []() -> int { throw 42; }) == 2);
    argv_of a({"--help"});
    CHECK(cli::run_main("t", [&] {
              cli::args p(a.argc(), a.argv(), "");
              p.next();
              return 1;
          }) == 0);
}

TEST_CASE("error_line: one line, the tool named once") {
    CHECK(cli::error_line("dedup", "--num-perm '0' is not an integer in [2, 8192]") == "dedup: --num-perm '0' is not an integer in [2, 8192]");
    CHECK(cli::error_line("dedup", "dedup: --output is required") == "dedup: --output is required");
    CHECK(cli::error_line("tokenize", "a\nb\r\nc") == "tokenize: a b  c");
}
