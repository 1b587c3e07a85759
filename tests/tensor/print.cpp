// SPDX-License-Identifier: Apache-2.0
// Tests of llm::to_string and operator<<: numpy's layout, alignment, summarising, element types.
#include <llm/core/bf16.hpp>
#include <llm/tensor/print.hpp>
#include <llm/tensor/views.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

namespace {

llm::tensor<float, llm::dims<3>> counting(std::size_t a, std::size_t b, std::size_t c) {
    llm::tensor<float, llm::dims<3>> t(a, b, c);
    for (std::size_t i = 0; i < t.size(); ++i) {
        t.data()[i] = static_cast<float>(i);
    }
    return t;
}

}  // namespace

TEST_CASE("to_string: ranks 0 to 3 in numpy's layout") {
    llm::tensor<float, llm::extents<>> s;
    s() = 3.5f;
    CHECK(llm::to_string(s) == "3.5");
    const auto t = counting(2, 2, 3);
    CHECK(llm::to_string(llm::select(llm::select(t, 0, 0), 0, 0)) == "[0, 1, 2]");
    CHECK(llm::to_string(llm::select(t, 0, 0)) == "[[0, 1, 2],\n [3, 4, 5]]");
    CHECK(llm::to_string(t) == "[[[ 0,  1,  2],\n  [ 3,  4,  5]],\n\n [[ 6,  7,  8],\n  [ 9, 10, 11]]]");
}

TEST_CASE("to_string: elements are right-aligned to the widest") {
    llm::tensor<float, llm::dims<1>> t(3);
    t(0) = 1.0f;
    t(1) = -10.0f;
    t(2) = 0.25f;
    CHECK(llm::to_string(t) == "[   1,  -10, 0.25]");
}

TEST_CASE("to_string: views print their logical order, not memory order") {
    const auto t = counting(1, 2, 3);
    CHECK(llm::to_string(llm::transpose(llm::select(t, 0, 0), 0, 1)) == "[[0, 3],\n [1, 4],\n [2, 5]]");
}

TEST_CASE("to_string: more than threshold elements are summarised with edge items") {
    llm::tensor<float, llm::dims<1>> v(2000);
    for (std::size_t i = 0; i < 2000; ++i) {
        v(i) = static_cast<float>(i);
    }
    CHECK(llm::to_string(v) == "[   0,    1,    2, ..., 1997, 1998, 1999]");
    CHECK(llm::to_string(v, {.threshold = 5000}).size() > 5000);
    const auto m = counting(1, 10, 10);
    CHECK(llm::to_string(llm::select(m, 0, 0), {.threshold = 50, .edge_items = 1}) ==
          "[[ 0, ...,  9],\n ...,\n [90, ..., 99]]");
    // Dimensions no longer than 2 * edge_items are not elided.
    CHECK(llm::to_string(llm::select(m, 0, 0), {.threshold = 50, .edge_items = 5}) == llm::to_string(llm::select(m, 0, 0)));
}

TEST_CASE("to_string: precision, element types and empty tensors") {
    llm::tensor<double, llm::dims<1>> pi(1);
    pi(0) = 3.14159265358979;
    CHECK(llm::to_string(pi) == "[3.14159]");
    CHECK(llm::to_string(pi, {.precision = 3}) == "[3.14]");
    llm::tensor<std::int8_t, llm::dims<1>> i8(2);
    i8(0) = -3;
    i8(1) = 65;  // would print as 'A' if streamed as a character
    CHECK(llm::to_string(i8) == "[-3, 65]");
    llm::tensor<llm::bf16, llm::dims<1>> b(2);
    b(0) = llm::bf16(1.5f);
    b(1) = llm::bf16(-2.0f);
    CHECK(llm::to_string(b) == "[1.5,  -2]");
    CHECK(llm::to_string(llm::tensor<float, llm::dims<1>>(0)) == "[]");
    CHECK(llm::to_string(llm::tensor<float, llm::dims<2>>(2, 0)) == "[[],\n []]");
}

TEST_CASE("operator<< writes to_string for views and tensors") {
    const auto t = counting(1, 1, 3);
    std::ostringstream out;
    out << t << ' ' << llm::select(llm::select(t, 0, 0), 0, 0);
    CHECK(out.str() == "[[[0, 1, 2]]] [0, 1, 2]");
}
