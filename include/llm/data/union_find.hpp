// SPDX-License-Identifier: Apache-2.0
// Disjoint sets with path compression and union by rank, for clustering candidate pairs.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace llm::data {

/// Disjoint-set forest over ids 0..size()-1. find is amortised near O(1) (path compression
/// + union by rank). Ids are 32-bit: up to 2^32 - 1 elements.
/// Example: `llm::data::union_find uf(3); uf.unite(0, 2); bool same = uf.find(0) == uf.find(2);`
class union_find {
public:
    /// `n` singleton sets, ids 0..n-1; more than 2^32 - 1 is llm::error.
    explicit union_find(std::size_t n = 0) {
        // Checked before reserving, so a huge n is refused by name instead of failing in reserve.
        llm::check(n <= 0xFFFFFFFFu, "union_find: n = ", n, " elements, more than the 2^32 - 1 that 32-bit ids allow");
        const std::size_t bytes = n * (sizeof(std::uint32_t) + sizeof(std::uint8_t));
        llm::allocating(bytes, "union_find", "the parent and rank arrays", [&] {
            parent_.reserve(n);
            rank_.reserve(n);
        });
        for (std::size_t i = 0; i < n; ++i) add();
    }

    std::size_t size() const noexcept { return parent_.size(); }  ///< number of elements

    /// Adds a singleton set; returns its id.
    std::uint32_t add() {
        llm::check(parent_.size() < 0xFFFFFFFFu, "union_find::add: more than 2^32 - 1 elements");
        const auto id = static_cast<std::uint32_t>(parent_.size());
        llm::allocating((parent_.size() + 1) * (sizeof(std::uint32_t) + sizeof(std::uint8_t)), "union_find::add",
                        "the parent and rank arrays", [&] {
                            parent_.push_back(id);
                            rank_.push_back(0);
                        });
        return id;
    }

    /// The root of x's set; compresses the path it walked.
    std::uint32_t find(std::uint32_t x) {
        llm::check(x < parent_.size(), "union_find::find: x = ", x, " but size is ", parent_.size());
        std::uint32_t root = x;
        while (parent_[root] != root) root = parent_[root];
        while (parent_[x] != root) {
            const std::uint32_t next = parent_[x];
            parent_[x] = root;
            x = next;
        }
        return root;
    }

    /// Merges the sets of a and b; returns the new root.
    std::uint32_t unite(std::uint32_t a, std::uint32_t b) {
        a = find(a);
        b = find(b);
        if (a == b) return a;
        if (rank_[a] < rank_[b]) std::swap(a, b);
        parent_[b] = a;
        if (rank_[a] == rank_[b]) ++rank_[a];
        return a;
    }

private:
    std::vector<std::uint32_t> parent_;
    std::vector<std::uint8_t> rank_;
};

}  // namespace llm::data
