// SPDX-License-Identifier: Apache-2.0
// A fresh temporary directory for a test, removed with everything in it at scope exit.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <iterator>
#include <string>
#include <system_error>

#include <stdlib.h>

namespace llm_test {

/// `temp_dir d; std::string p = d / "file";` creates a unique directory under the system's
/// temporary directory (mkdtemp) and removes it recursively on destruction.
struct temp_dir {
    std::filesystem::path path;  ///< The directory.
    temp_dir() {
        std::string templ = (std::filesystem::temp_directory_path() / "llm_test.XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        path = templ;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    /// The path of `name` inside the directory.
    std::string operator/(const std::string& name) const { return (path / name).string(); }
    /// Number of entries in the directory.
    std::size_t entries() const {
        return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(path), std::filesystem::directory_iterator()));
    }
};

}  // namespace llm_test
