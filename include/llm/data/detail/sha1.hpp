// SPDX-License-Identifier: Apache-2.0
// SHA-1 (FIPS 180-4) of a byte string: datasketch's default shingle hash is its first 4 bytes.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace llm::data::detail {

/// SHA-1 digest of `text` (20 bytes, big-endian words as the standard specifies).
/// Used for compatibility with datasketch's sha1_hash32, not for security.
/// Example: `auto d = llm::data::detail::sha1("abc");  // a9 99 3e 36 ...`
inline std::array<std::uint8_t, 20> sha1(std::string_view text) noexcept {
    std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    const auto compress = [&h](const std::uint8_t* block) {
        std::uint32_t w[80];
        for (int t = 0; t < 16; ++t) {
            w[t] = std::uint32_t{block[4 * t]} << 24 | std::uint32_t{block[4 * t + 1]} << 16 |
                   std::uint32_t{block[4 * t + 2]} << 8 | std::uint32_t{block[4 * t + 3]};
        }
        for (int t = 16; t < 80; ++t) w[t] = std::rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int t = 0; t < 80; ++t) {
            std::uint32_t f, k;
            if (t < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999u;
            } else if (t < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1u;
            } else if (t < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDCu;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6u;
            }
            const std::uint32_t temp = std::rotl(a, 5) + f + e + k + w[t];
            e = d;
            d = c;
            c = std::rotl(b, 30);
            b = a;
            a = temp;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
    };
    const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
    std::size_t n = text.size();
    const std::uint64_t bit_length = static_cast<std::uint64_t>(n) * 8u;
    for (; n >= 64; n -= 64, p += 64) compress(p);
    // Padding: 0x80, zeros, then the 64-bit big-endian bit length; one or two final blocks.
    std::uint8_t tail[128] = {};
    if (n > 0) std::memcpy(tail, p, n);
    tail[n] = 0x80;
    const std::size_t tail_blocks = n + 9 <= 64 ? 1 : 2;
    for (int i = 0; i < 8; ++i) {
        tail[tail_blocks * 64 - 1 - i] = static_cast<std::uint8_t>(bit_length >> (8 * i));
    }
    for (std::size_t blk = 0; blk < tail_blocks; ++blk) compress(tail + 64 * blk);
    std::array<std::uint8_t, 20> digest{};
    for (int i = 0; i < 5; ++i) {
        for (int j = 0; j < 4; ++j) digest[4 * i + j] = static_cast<std::uint8_t>(h[i] >> (24 - 8 * j));
    }
    return digest;
}

}  // namespace llm::data::detail
