// SPDX-License-Identifier: Apache-2.0
// An open-addressing hash map from token-id pairs to merges (priority, merged id), for merges-list BPE.
#pragma once

#include <llm/config.hpp>
#include <llm/tokenizer/bpe.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace llm::tokenizer::detail {

class pair_map {
public:
    // Inserts (a, b) -> m; returns false (and changes nothing) when the pair is present.
    bool insert(std::uint32_t a, std::uint32_t b, bpe_merge m) {
        if (2 * (size_ + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
        const std::uint64_t key = pack(a, b);
        for (std::size_t i = slot_of(key);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i].key == empty) {
                slots_[i] = {key, m};
                ++size_;
                return true;
            }
            if (slots_[i].key == key) return false;
        }
    }

    // The entry of (a, b), or nullptr when absent.
    LLM_FORCE_INLINE const bpe_merge* lookup(std::uint32_t a, std::uint32_t b) const noexcept {
        if (slots_.empty()) return nullptr;
        const std::uint64_t key = pack(a, b);
        for (std::size_t i = slot_of(key);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i].key == key) return &slots_[i].merge;
            if (slots_[i].key == empty) return nullptr;
        }
    }

    // Removes every entry, keeping the capacity.
    void clear() noexcept {
        std::fill(slots_.begin(), slots_.end(), slot{});
        size_ = 0;
    }

    LLM_FORCE_INLINE bpe_merge find(std::uint32_t a, std::uint32_t b) const noexcept {
        if (slots_.empty()) return {};
        const std::uint64_t key = pack(a, b);
        for (std::size_t i = slot_of(key);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i].key == key) return slots_[i].merge;
            if (slots_[i].key == empty) return {};
        }
    }

    std::size_t size() const noexcept { return size_; }

private:
    static constexpr std::uint64_t empty = ~std::uint64_t{0};  // (npos, npos) is never a real pair
    struct slot {
        std::uint64_t key = empty;
        bpe_merge merge;
    };
    static std::uint64_t pack(std::uint32_t a, std::uint32_t b) noexcept {
        return (static_cast<std::uint64_t>(a) << 32) | b;
    }
    // Fibonacci hashing: the top bits of key * 2^64/phi spread both ids over the table.
    std::size_t slot_of(std::uint64_t key) const noexcept {
        return static_cast<std::size_t>(((key ^ (key >> 29)) * 0x9e3779b97f4a7c15ull) >> shift_);
    }
    void rehash(std::size_t cap) {
        std::vector<slot> old = std::move(slots_);
        slots_.assign(cap, slot{});
        shift_ = 64;
        for (std::size_t c = cap; c > 1; c >>= 1) --shift_;
        for (const slot& s : old) {
            if (s.key == empty) continue;
            std::size_t i = slot_of(s.key);
            while (slots_[i].key != empty) i = (i + 1) & (cap - 1);
            slots_[i] = s;
        }
    }

    std::vector<slot> slots_;
    std::size_t size_ = 0;
    int shift_ = 64;
};

}  // namespace llm::tokenizer::detail
