// SPDX-License-Identifier: Apache-2.0
// Printing tensors and views like numpy: operator<< and llm::to_string with elision of big ones.
#pragma once

#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/tensor_view.hpp>

#include <cstddef>
#include <ios>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace llm {

/// How llm::to_string prints. The defaults are numpy's (threshold 1000, edgeitems 3).
struct print_options {
    /// Tensors with more elements than this are summarised: each dimension longer than
    /// 2 * edge_items shows its first and last edge_items entries around "...".
    std::size_t threshold = 1000;
    /// Entries shown at each end of a summarised dimension.
    std::size_t edge_items = 3;
    /// Significant digits of floating-point elements (std::setprecision).
    int precision = 6;
};

namespace detail::tensor_impl {

template <class T>
void print_element(std::ostream& out, const T& x) {
    if constexpr (std::is_same_v<T, bool>) {
        out << (x ? "true" : "false");
    } else if constexpr (std::is_integral_v<T>) {
        out << +x;  // int8_t and uint8_t print as numbers, not characters
    } else if constexpr (std::is_arithmetic_v<T>) {
        out << x;
    } else {
        out << static_cast<float>(x);  // bf16, f16, fp8: exact in float
    }
}

// Walks the printed elements in order: `element(offset)` for each one shown, `text(s)` for
// brackets, separators and "...". Used twice: once to measure the widest element, once to
// write them right-aligned to that width (as numpy does).
template <class V, class Element, class Text>
void walk(const V& v, std::size_t dim, std::size_t offset, bool summarise, std::size_t edge, Element& element,
          Text& text) {
    constexpr std::size_t rank = V::rank();
    if constexpr (rank == 0) {
        element(offset);
    } else {
        const std::size_t n = v.extent(dim);
        const bool elide = summarise && n > 2 * edge;
        const std::size_t remaining = rank - dim;
        // numpy's separators: ", " inside a row; otherwise a comma, one line break per
        // remaining dimension beyond the row, and indentation under the opening brackets.
        std::string separator = ",";
        if (remaining == 1) {
            separator += ' ';
        } else {
            separator.append(remaining - 1, '\n');
            separator.append(dim + 1, ' ');
        }
        text("[");
        for (std::size_t i = 0; i < n; ++i) {
            if (elide && i == edge) {
                text("...");
                text(separator);
                i = n - edge;
            }
            if (remaining == 1) {
                element(offset + i * v.stride(dim));
            } else {
                walk(v, dim + 1, offset + i * v.stride(dim), summarise, edge, element, text);
            }
            if (i + 1 < n) {
                text(separator);
            }
        }
        text("]");
    }
}

}  // namespace detail::tensor_impl

/// The elements as nested brackets, numpy style: `[[1, 2, 3],\n [4, 5, 6]]`; elements
/// right-aligned to a common width; more than options.threshold elements are summarised.
/// Template parameters:
///   X — a host view or an llm::tensor (a temporary one too); elements arithmetic or
///       llm::bf16 / f16 / fp8.
/// Example: `std::string s = llm::to_string(t, {.threshold = 10});`
template <readable_host_view X>
std::string to_string(X&& x, const print_options& options = {}) {
    const auto v = std::as_const(x).view();
    const bool summarise = v.size() > options.threshold;
    const auto* p = v.data();
    std::ostringstream element_out;
    element_out.precision(options.precision);
    std::vector<std::string> elements;
    auto collect = [&](std::size_t offset) {
        element_out.str("");
        detail::tensor_impl::print_element(element_out, p[offset]);
        elements.push_back(element_out.str());
    };
    auto ignore = [](const std::string&) {};
    detail::tensor_impl::walk(v, 0, 0, summarise, options.edge_items, collect, ignore);

    std::size_t width = 0;
    for (const std::string& e : elements) {
        width = e.size() > width ? e.size() : width;
    }
    std::string out;
    std::size_t next = 0;
    auto write = [&](std::size_t) {
        out.append(width - elements[next].size(), ' ');
        out += elements[next++];
    };
    auto append = [&](const std::string& s) { out += s; };
    detail::tensor_impl::walk(v, 0, 0, summarise, options.edge_items, write, append);
    return out;
}

/// Writes llm::to_string(v) with the default options.
template <class T, class Extents, class Layout, class Device>
    requires host_device_tag<Device>
std::ostream& operator<<(std::ostream& out, const tensor_view<T, Extents, Layout, Device>& v) {
    return out << to_string(v);
}

/// Writes llm::to_string(t) with the default options.
template <class T, class Extents, class Layout, class Device>
std::ostream& operator<<(std::ostream& out, const tensor<T, Extents, Layout, Device>& t) {
    return out << to_string(t);
}

}  // namespace llm
