// SPDX-License-Identifier: Apache-2.0
// An open-addressing hash map from byte strings to 32-bit values, the vocabulary lookup of the BPE encoders.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace llm::tokenizer::detail {

// 64-bit hash of a short byte string. Vocabulary pieces are mostly under 16 bytes, so it
// reads 8-byte words with memcpy and mixes with multiplications (wyhash-style folding);
// quality is enough for a table kept at most half full.
LLM_FORCE_INLINE std::uint64_t hash_bytes(const char* p, std::size_t n) noexcept {
    constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15ull, k1 = 0xbf58476d1ce4e5b9ull;
    auto mix = [](std::uint64_t a, std::uint64_t b) {
        const __uint128_t r = static_cast<__uint128_t>(a) * b;
        return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
    };
    std::uint64_t h = n * k0;
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = mix(h ^ w, k1);
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        std::uint64_t w = 0;
        if (n >= 4) {
            std::uint32_t a, b;
            std::memcpy(&a, p, 4);
            std::memcpy(&b, p + n - 4, 4);
            w = (static_cast<std::uint64_t>(a) << 32) | b;
        } else {
            w = (static_cast<std::uint64_t>(static_cast<unsigned char>(p[0])) << 16) |
                (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n >> 1])) << 8) |
                static_cast<unsigned char>(p[n - 1]);
        }
        h = mix(h ^ w, k1 ^ n);
    }
    return mix(h, k0);
}

// Map from byte strings to values (token ids). Keys live in one arena; a slot holds the
// hash's high half as a tag so most mismatches are rejected without touching the key.
class bytes_map {
public:
    static constexpr std::uint32_t npos = 0xffffffffu;

    bytes_map() = default;

    void reserve(std::size_t n) {
        std::size_t cap = 16;
        while (cap < 2 * n) cap *= 2;
        if (cap > slots_.size()) rehash(cap);
        keys_.reserve(n);
    }

    std::size_t size() const noexcept { return keys_.size(); }
    std::size_t arena_bytes() const noexcept { return arena_.size(); }

    // Removes every key, keeping the capacity.
    void clear() noexcept {
        std::fill(slots_.begin(), slots_.end(), slot{});
        keys_.clear();
        arena_.clear();
    }

    // Inserts key -> value; returns false (and changes nothing) when the key is present.
    bool insert(std::string_view key, std::uint32_t value) {
        check(key.size() < (1u << 31), "bytes_map: key of ", key.size(), " bytes is too long");
        if (2 * (keys_.size() + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
        const std::uint64_t h = hash_bytes(key.data(), key.size());
        const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
        std::size_t i = h & (slots_.size() - 1);
        while (slots_[i].key != npos) {
            if (slots_[i].tag == tag && key_at(slots_[i].key) == key) return false;
            i = (i + 1) & (slots_.size() - 1);
        }
        slots_[i] = {tag, static_cast<std::uint32_t>(keys_.size())};
        keys_.push_back({static_cast<std::uint64_t>(arena_.size()), static_cast<std::uint32_t>(key.size()), value});
        arena_.append(key);
        return true;
    }

    // The value of key, or npos.
    LLM_FORCE_INLINE std::uint32_t find(const char* p, std::size_t n) const noexcept {
        if (slots_.empty()) return npos;
        const std::uint64_t h = hash_bytes(p, n);
        const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32);
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = h & mask;; i = (i + 1) & mask) {
            const slot s = slots_[i];
            if (s.key == npos) return npos;
            if (s.tag == tag) {
                const key_ref& k = keys_[s.key];
                if (k.len == n && std::memcmp(arena_.data() + k.offset, p, n) == 0) return k.value;
            }
        }
    }
    std::uint32_t find(std::string_view key) const noexcept { return find(key.data(), key.size()); }

    // Keys and values in insertion order.
    template <class F>
    void for_each(F&& f) const {
        for (const key_ref& k : keys_) f(std::string_view(arena_.data() + k.offset, k.len), k.value);
    }

private:
    struct slot {
        std::uint32_t tag = 0;
        std::uint32_t key = npos;  // index into keys_
    };
    struct key_ref {
        std::uint64_t offset;
        std::uint32_t len;
        std::uint32_t value;
    };

    std::string_view key_at(std::uint32_t k) const noexcept {
        return {arena_.data() + keys_[k].offset, keys_[k].len};
    }

    void rehash(std::size_t cap) {
        std::vector<slot> fresh(cap);
        for (std::uint32_t k = 0; k < keys_.size(); ++k) {
            const std::string_view key = key_at(k);
            const std::uint64_t h = hash_bytes(key.data(), key.size());
            std::size_t i = h & (cap - 1);
            while (fresh[i].key != npos) i = (i + 1) & (cap - 1);
            fresh[i] = {static_cast<std::uint32_t>(h >> 32), k};
        }
        slots_ = std::move(fresh);
    }

    std::vector<slot> slots_;
    std::vector<key_ref> keys_;
    std::string arena_;
};

}  // namespace llm::tokenizer::detail
