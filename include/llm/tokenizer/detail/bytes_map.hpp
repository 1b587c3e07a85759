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

// First min(n, 8) bytes of p as a little-endian word, zero-padded. Reads only [p, p + n).
LLM_FORCE_INLINE std::uint64_t head_word(const char* p, std::size_t n) noexcept {
    std::uint64_t w = 0;
    if (n >= 8) {
        std::memcpy(&w, p, 8);
    } else if (n >= 4) {
        std::uint32_t a, b;
        std::memcpy(&a, p, 4);
        std::memcpy(&b, p + n - 4, 4);
        w = a | (static_cast<std::uint64_t>(b) << ((n - 4) * 8));  // overlapping bytes agree
    } else if (n > 0) {
        w = static_cast<unsigned char>(p[0]) | (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n >> 1])) << ((n >> 1) * 8)) |
            (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n - 1])) << ((n - 1) * 8));
    }
    return w;
}

// Map from byte strings to values (token ids). A slot holds the key's length, its first 8
// bytes and the value, so a lookup of a key of up to 8 bytes (most tokens) touches one cache
// line; longer keys compare their tail in the arena.
class bytes_map {
public:
    static constexpr std::uint32_t npos = 0xffffffffu;

    bytes_map() = default;

    void reserve(std::size_t n) {
        std::size_t cap = 16;
        while (cap < 2 * n) cap *= 2;
        if (cap > slots_.size()) rehash(cap);
    }

    std::size_t size() const noexcept { return size_; }

    // Removes every key, keeping the capacity.
    void clear() noexcept {
        std::fill(slots_.begin(), slots_.end(), slot{});
        arena_.clear();
        size_ = 0;
    }

    // Inserts key -> value; returns false (and changes nothing) when the key is present.
    bool insert(std::string_view key, std::uint32_t value) {
        check(key.size() < npos, "bytes_map: key of ", key.size(), " bytes is too long");
        if (2 * (size_ + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
        const std::uint64_t head = head_word(key.data(), key.size());
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = hash_bytes(key.data(), key.size()) & mask;; i = (i + 1) & mask) {
            slot& s = slots_[i];
            if (s.len == npos) {
                s = {head, static_cast<std::uint32_t>(key.size()), value, arena_.size()};
                arena_.append(key);
                ++size_;
                return true;
            }
            if (matches(s, key.data(), key.size(), head)) return false;
        }
    }

    // The value of key, or npos.
    LLM_FORCE_INLINE std::uint32_t find(const char* p, std::size_t n) const noexcept {
        if (slots_.empty()) return npos;
        const std::uint64_t head = head_word(p, n);
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = hash_bytes(p, n) & mask;; i = (i + 1) & mask) {
            const slot& s = slots_[i];
            if (s.len == npos) return npos;
            if (matches(s, p, n, head)) return s.value;
        }
    }
    std::uint32_t find(std::string_view key) const noexcept { return find(key.data(), key.size()); }

private:
    struct slot {
        std::uint64_t head = 0;
        std::uint32_t len = npos;  // npos: empty slot
        std::uint32_t value = 0;
        std::size_t offset = 0;  // of the whole key in arena_
    };

    // GCC 12 at -O0 inlines this and then warns that memcmp may read from an empty arena
    // (-Wstringop-overread), a false positive: n > 8 here means the slot's key has n bytes there.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif
    LLM_FORCE_INLINE bool matches(const slot& s, const char* p, std::size_t n, std::uint64_t head) const noexcept {
        // The head holds bytes [0, 8); memcmp checks the rest.
        return s.len == n && s.head == head && (n <= 8 || std::memcmp(arena_.data() + s.offset + 8, p + 8, n - 8) == 0);
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

    void rehash(std::size_t cap) {
        std::vector<slot> old = std::move(slots_);
        slots_.assign(cap, slot{});
        for (const slot& s : old) {
            if (s.len == npos) continue;
            std::size_t i = hash_bytes(arena_.data() + s.offset, s.len) & (cap - 1);
            while (slots_[i].len != npos) i = (i + 1) & (cap - 1);
            slots_[i] = s;
        }
    }

    std::vector<slot> slots_;
    std::string arena_;
    std::size_t size_ = 0;
};

}  // namespace llm::tokenizer::detail
