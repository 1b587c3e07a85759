// SPDX-License-Identifier: Apache-2.0
// Reader of the golden-value text files written by tests/golden/*/make_golden.py: named arrays of doubles.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace llm_test {

/// One named array of a golden file: its dimensions and its values in row-major order.
struct golden_array {
    std::vector<std::size_t> dims;
    std::vector<double> values;
};

/// The arrays of a golden file: after `#` comment lines, per array a header line
/// `name d0 d1 ...` and one line of its values. Values are parsed by strtod, so `inf`, `-inf`
/// and `nan` read as such. The committed file is ours, but it is still parsed defensively: a
/// truncated or edited file fails the test with a message, never reads out of bounds.
class golden_file {
public:
    /// path: the file to read (REQUIRE fails when it cannot be opened or is malformed).
    explicit golden_file(const std::string& path) {
        std::ifstream in(path);
        REQUIRE_MESSAGE(in.good(), "cannot open ", path);
        std::string header, values;
        while (std::getline(in, header)) {
            if (header.empty() || header[0] == '#') {
                continue;
            }
            REQUIRE_MESSAGE(std::getline(in, values), path, ": no values line after '", header, "'");
            std::istringstream hs(header), vs(values);
            std::string name, word;
            golden_array a;
            hs >> name;
            std::size_t d = 0, count = 1;
            while (hs >> d) {
                a.dims.push_back(d);
                count *= d;
            }
            REQUIRE_MESSAGE(hs.eof(), path, ": bad dimensions in '", header, "'");
            std::string bad;
            while (vs >> word) {
                char* end = nullptr;
                a.values.push_back(std::strtod(word.c_str(), &end));
                if (end != word.c_str() + word.size() && bad.empty()) {
                    bad = word;
                }
            }
            REQUIRE_MESSAGE(bad.empty(), path, ": ", name, ": bad value '", bad, "'");
            REQUIRE_MESSAGE(a.values.size() == count, path, ": ", name, ": expected ", count, " values, found ",
                            a.values.size());
            REQUIRE_MESSAGE(arrays_.emplace(name, std::move(a)).second, path, ": ", name, " appears twice");
        }
    }

    /// The array called `name` (REQUIRE fails when the file has none).
    const golden_array& get(const std::string& name) const {
        const auto it = arrays_.find(name);
        REQUIRE_MESSAGE(it != arrays_.end(), "golden array missing: ", name);
        return it->second;
    }

    /// True when the file holds an array called `name`.
    bool has(const std::string& name) const { return arrays_.count(name) != 0; }

private:
    std::map<std::string, golden_array> arrays_;
};

}  // namespace llm_test
