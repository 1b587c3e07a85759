// SPDX-License-Identifier: Apache-2.0
// llm.c's token files: a header of 256 little-endian int32 (magic 20240520, version, token
// count), then the tokens as uint16 (version 1) or uint32 (version 2). A validating, zero-copy
// reader and an atomic writer.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/atomic_file.hpp>
#include <llm/io/file.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <utility>

namespace llm::train {

/// The magic number of llm.c's token files (header word 0).
inline constexpr std::int32_t token_file_magic = 20240520;
/// The header: 256 int32 words (1024 bytes).
inline constexpr std::size_t token_file_header_bytes = 256 * 4;

namespace detail {

inline std::int32_t read_i32le(const std::byte* p) noexcept {
    std::uint32_t x = 0;
    for (int i = 3; i >= 0; --i) x = (x << 8) | std::to_integer<std::uint32_t>(p[i]);
    return static_cast<std::int32_t>(x);
}

inline void write_i32le(unsigned char* p, std::uint32_t x) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(x >> (8 * i));
}

}  // namespace detail

/// A token file of llm.c's format, validated on open and read without copying (memory-mapped).
/// Checked before any token is read, each failure an llm::error naming the file and the values:
/// at least 1024 bytes, magic 20240520, version 1 (uint16 tokens) or 2 (uint32 tokens), a
/// token count >= 0, and a file size of exactly 1024 + count x token size (a truncated or
/// padded file is refused, as llm.c's loader does).
/// Example:
/// ```
/// llm::train::token_file f("fineweb_train_000001.bin");
/// std::uint32_t first = f[0];
/// ```
class token_file {
public:
    /// An empty file (no tokens).
    token_file() = default;

    /// Maps and validates the file at `path`.
    explicit token_file(const std::string& path) : map_(path, "token_file") { parse_bytes(map_.bytes(), path); }

    /// Validates a token file held in memory; the result borrows `bytes`, which must outlive it.
    /// Example: `auto f = llm::train::token_file::parse(std::as_bytes(std::span(buf)), "buffer");`
    static token_file parse(std::span<const std::byte> bytes, std::string name) {
        token_file f;
        f.parse_bytes(bytes, std::move(name));
        return f;
    }

    /// The format version: 1 (uint16 tokens) or 2 (uint32 tokens).
    int version() const noexcept { return version_; }
    /// Bytes per token: 2 or 4.
    std::size_t token_bytes() const noexcept { return version_ == 2 ? 4 : 2; }
    /// The number of tokens.
    std::size_t size() const noexcept { return size_; }
    /// The path or name it was opened with.
    const std::string& name() const noexcept { return name_; }

    /// Token i (i < size(), unchecked; use at() for a checked read).
    std::uint32_t operator[](std::size_t i) const noexcept {
        if (version_ == 2) {
            std::uint32_t x;
            std::memcpy(&x, tokens_.data() + 4 * i, 4);
            return x;
        }
        std::uint16_t x;
        std::memcpy(&x, tokens_.data() + 2 * i, 2);
        return x;
    }
    /// Token i; llm::error when i >= size().
    std::uint32_t at(std::size_t i) const {
        check(i < size_, "token_file::at: index ", i, " out of range ('", name_, "' has ", size_, " tokens)");
        return (*this)[i];
    }

    /// Checks that every token is < vocab_size (llm::error naming the first one that is not).
    void check_vocab(std::uint32_t vocab_size) const {
        for (std::size_t i = 0; i < size_; ++i) {
            const std::uint32_t t = (*this)[i];
            check(t < vocab_size, "token_file: '", name_, "': token ", i, " is ", t, ", not below the vocabulary size ",
                  vocab_size);
        }
    }

private:
    void parse_bytes(std::span<const std::byte> b, std::string name) {
        static constexpr const char* fn = "token_file";
        name_ = std::move(name);
        check(b.size() >= token_file_header_bytes, fn, ": '", name_, "' has ", b.size(), " bytes, fewer than the ",
              token_file_header_bytes, "-byte header (256 int32)");
        const std::int32_t magic = detail::read_i32le(b.data());
        check(magic == token_file_magic, fn, ": '", name_, "': magic number ", magic, " at byte 0, expected ",
              token_file_magic, " (not an llm.c token file)");
        const std::int32_t version = detail::read_i32le(b.data() + 4);
        check(version == 1 || version == 2, fn, ": '", name_, "': version ", version,
              " at byte 4; supported are 1 (uint16 tokens) and 2 (uint32 tokens)");
        const std::int32_t count = detail::read_i32le(b.data() + 8);
        check(count >= 0, fn, ": '", name_, "': token count ", count, " at byte 8 is negative");
        const std::size_t per = version == 2 ? 4 : 2;
        // count < 2^31 and per <= 4: the product fits in 64 bits.
        const std::size_t expected = token_file_header_bytes + static_cast<std::size_t>(count) * per;
        check(b.size() == expected, fn, ": '", name_, "' has ", b.size(), " bytes but its header says ", count,
              " tokens of ", per, " bytes: expected ", expected, " bytes (", b.size() < expected ? "truncated" : "trailing data",
              ")");
        version_ = version;
        size_ = static_cast<std::size_t>(count);
        tokens_ = b.subspan(token_file_header_bytes);
    }

    io::mapped_file map_;
    std::string name_;
    std::span<const std::byte> tokens_;
    int version_ = 1;
    std::size_t size_ = 0;
};

/// The bytes of a token file holding `tokens` in format `version` (1: uint16, 2: uint32).
/// llm::error when there are 2^31 tokens or more (the header's count is an int32), the version
/// is not 1 or 2, or (version 1) a token does not fit in 16 bits (naming its index and value).
/// Example: `std::string bytes = llm::train::serialize_token_file(tokens, 1);`
template <class T>
    requires(std::same_as<T, std::uint16_t> || std::same_as<T, std::uint32_t>)
std::string serialize_token_file(std::span<const T> tokens, int version = 1) {
    static constexpr const char* fn = "write_token_file";
    check(version == 1 || version == 2, fn, ": version ", version, "; supported are 1 (uint16) and 2 (uint32)");
    check(tokens.size() <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()), fn, ": ", tokens.size(),
          " tokens do not fit the header's int32 count (at most 2147483647)");
    const std::size_t per = version == 2 ? 4 : 2;
    std::string out(token_file_header_bytes + tokens.size() * per, '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    detail::write_i32le(p, static_cast<std::uint32_t>(token_file_magic));
    detail::write_i32le(p + 4, static_cast<std::uint32_t>(version));
    detail::write_i32le(p + 8, static_cast<std::uint32_t>(tokens.size()));
    p += token_file_header_bytes;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const std::uint32_t t = tokens[i];
        if (version == 1) {
            check(t <= 0xFFFF, fn, ": token ", i, " is ", t, ", too large for version 1 (uint16); write version 2");
            p[2 * i] = static_cast<unsigned char>(t);
            p[2 * i + 1] = static_cast<unsigned char>(t >> 8);
        } else {
            detail::write_i32le(p + 4 * i, t);
        }
    }
    return out;
}

/// Writes `tokens` as a token file at `path` atomically (a temporary in the same directory,
/// fsynced and renamed over the target; io/atomic_file.hpp). Checks as serialize_token_file.
/// Example: `llm::train::write_token_file("val.bin", std::span<const std::uint16_t>(tokens));`
template <class T>
    requires(std::same_as<T, std::uint16_t> || std::same_as<T, std::uint32_t>)
void write_token_file(const std::string& path, std::span<const T> tokens, int version = sizeof(T) == 2 ? 1 : 2) {
    const std::string bytes = serialize_token_file(tokens, version);
    io::atomic_file out(path, "write_token_file");
    out.write(bytes);
    out.commit();
}

}  // namespace llm::train
