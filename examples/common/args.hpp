// SPDX-License-Identifier: Apache-2.0
// Command-line handling shared by the example tools: strict flag parsing and one way to turn any
// exception into a one-line message and exit status 2. It is not library API (a CLI parser is no
// LLM building block); the examples include it as "common/args.hpp".
#pragma once

#include <llm/core/error.hpp>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <new>
#include <string>
#include <string_view>
#include <system_error>

namespace cli {

/// Thrown by args::next() after printing the usage for --help; run_main then exits 0.
struct help_shown {};

/// Walks argv flag by flag. Every problem (unknown flag, missing value, a number that is not
/// wholly a number in its range) raises llm::error naming the flag and the value; run_main puts
/// the tool's name in front. Example:
/// ```
/// cli::args a(argc, argv, usage);
/// while (a.next()) {
///     if (a.is("--out")) out = a.value();
///     else if (a.is("--vocab-size")) n = a.integer<std::size_t>(256, 1 << 24);
///     else a.unknown();
/// }
/// ```
class args {
public:
    /// `usage` is printed for --help / -h.
    args(int argc, char** argv, std::string_view usage) : argc_(argc), argv_(argv), usage_(usage) {}

    /// Moves to the next flag; false after the last. --help and -h print the usage to stdout and
    /// throw help_shown.
    bool next() {
        if (++i_ >= argc_) return false;
        flag_ = argv_[i_];
        if (flag_ == "--help" || flag_ == "-h") {
            std::fwrite(usage_.data(), 1, usage_.size(), stdout);
            throw help_shown{};
        }
        return true;
    }

    /// The current flag, as written.
    std::string_view flag() const noexcept { return flag_; }
    /// True when the current flag is `name`.
    bool is(std::string_view name) const noexcept { return flag_ == name; }

    /// The current flag's value (the next argument). A missing value, or one that is itself a
    /// flag ("--out --vocab-size 5"), is an error.
    std::string value() {
        llm::check(i_ + 1 < argc_, flag_, " needs a value");
        const std::string_view v = argv_[i_ + 1];
        llm::check(!(v.size() > 2 && v.starts_with("--")), flag_, " needs a value, got the flag '", v, "'");
        ++i_;
        return std::string(v);
    }

    /// The value as an integer in [lo, hi]. The whole string must be decimal digits, with a
    /// leading '-' only for a signed T (no '+', spaces, hex or exponent), so "-1" is never read
    /// as 2^64 - 1 nor "abc" as 0.
    template <std::integral T>
    T integer(T lo, T hi) {
        const std::string v = value();
        T x{};
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        llm::check(!v.empty() && ec == std::errc{} && end == v.data() + v.size() && x >= lo && x <= hi, flag_, " '", v,
                   "' is not an integer in [", +lo, ", ", +hi, "]");
        return x;
    }

    /// The value as a finite decimal number in the open interval (lo, hi) (no spaces, hex,
    /// inf or nan).
    double number_in_open(double lo, double hi) {
        const std::string v = value();
        char* end = nullptr;
        const bool plain = !v.empty() && v.find_first_not_of("0123456789.eE+-") == std::string::npos;
        const double x = plain ? std::strtod(v.c_str(), &end) : 0.0;
        llm::check(plain && end == v.c_str() + v.size() && std::isfinite(x) && x > lo && x < hi, flag_, " '", v,
                   "' is not a number in (", lo, ", ", hi, ")");
        return x;
    }

    /// The value, which must be one of `choices`.
    std::string choice(std::initializer_list<std::string_view> choices) {
        const std::string v = value();
        std::string list;
        for (const std::string_view c : choices) {
            if (c == v) return v;
            list += (list.empty() ? "" : ", ") + std::string(c);
        }
        llm::fail(flag_, " '", v, "' is not one of ", list);
    }

    /// Raises the error for the current flag, which no branch recognised.
    [[noreturn]] void unknown() const {
        if (flag_.starts_with("-") && flag_ != "-") llm::fail("unknown option '", flag_, "' (see --help)");
        llm::fail("unexpected argument '", flag_, "' (see --help)");
    }

private:
    int argc_;
    char** argv_;
    std::string_view usage_;
    int i_ = 0;
    std::string_view flag_;
};

/// The one line printed for an error: "tool: message" (the prefix is not doubled when the
/// message already starts with it), line breaks replaced by spaces.
inline std::string error_line(std::string_view tool, std::string_view message) {
    std::string line(tool);
    line += ": ";
    if (message.starts_with(line)) line.clear();
    for (const char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;
    return line;
}

/// Runs `body()` (which returns the exit status) and turns every exception into a one-line
/// message on stderr and exit status 2: llm::error, std::bad_alloc (out of memory), any other
/// std::exception. --help exits 0. Example:
/// `int main(int argc, char** argv) { return cli::run_main("dedup", [&] { return run(parse(argc, argv)); }); }`
template <class Body>
int run_main(std::string_view tool, Body&& body) noexcept {
    std::string message;
    try {
        return body();
    } catch (const help_shown&) {
        return 0;
    } catch (const std::bad_alloc&) {
        message = "out of memory (std::bad_alloc)";
    } catch (const std::exception& e) {
        message = e.what();
    } catch (...) {
        message = "unknown exception";
    }
    try {
        const std::string line = error_line(tool, message) + "\n";
        std::fwrite(line.data(), 1, line.size(), stderr);
    } catch (...) {
        std::fputs("error (out of memory while reporting it)\n", stderr);
    }
    return 2;
}

}  // namespace cli
