// SPDX-License-Identifier: Apache-2.0
// Reading files as hostile input: whole reads bounded by a stated limit, and read-only memory maps.
#pragma once

#include <llm/core/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llm::io {

/// The default limit of `read_file`: 1 GiB. Text formats (tokenizer.json, tiktoken files, JSON
/// configs) are far smaller; a larger file is refused before anything is allocated.
inline constexpr std::size_t default_read_limit = std::size_t{1} << 30;

namespace detail {

/// Closes a file descriptor when it goes out of scope.
struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

inline int open_for_reading(const std::string& path, const char* function) {
    int fd;
    do {
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    check(fd >= 0, function, ": cannot open '", path, "': ", std::strerror(errno));
    return fd;
}

}  // namespace detail

/// Reads the first `max_bytes` bytes of a file (the whole file when shorter). `complete` (when
/// given) tells whether the whole file was read. Works on pipes and devices too, reading no
/// more than `max_bytes + 1` bytes, so `/dev/zero` cannot exhaust memory.
/// Example: `auto magic = llm::io::read_file_prefix(path, 4, "load_tokenizer");`
inline std::string read_file_prefix(const std::string& path, std::size_t max_bytes, const char* function,
                                    bool* complete = nullptr) {
    detail::fd_guard f{detail::open_for_reading(path, function)};
    struct stat st {};
    check(::fstat(f.fd, &st) == 0, function, ": cannot stat '", path, "': ", std::strerror(errno));
    std::string data;
    if (S_ISREG(st.st_mode)) data.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(static_cast<std::uint64_t>(st.st_size), max_bytes)));
    char buf[1 << 16];
    bool eof = false;
    while (data.size() < max_bytes) {
        const std::size_t want = std::min(sizeof buf, max_bytes - data.size());
        const ssize_t n = ::read(f.fd, buf, want);
        if (n < 0 && errno == EINTR) continue;
        check(n >= 0, function, ": error reading '", path, "': ", std::strerror(errno));
        if (n == 0) {
            eof = true;
            break;
        }
        data.append(buf, static_cast<std::size_t>(n));
    }
    if (complete) {
        if (!eof) {
            ssize_t n;
            do {
                n = ::read(f.fd, buf, 1);
            } while (n < 0 && errno == EINTR);
            check(n >= 0, function, ": error reading '", path, "': ", std::strerror(errno));
            eof = n == 0;
        }
        *complete = eof;
    }
    return data;
}

/// Reads a whole file, refusing (with an llm::error naming the file and the limit) one larger
/// than `max_bytes`. The size of a regular file is checked before anything is allocated.
/// Example: `std::string text = llm::io::read_file("tokenizer.json", 64 << 20, "load_hf_tokenizer");`
inline std::string read_file(const std::string& path, std::size_t max_bytes = default_read_limit,
                             const char* function = "read_file") {
    {
        detail::fd_guard f{detail::open_for_reading(path, function)};
        struct stat st {};
        check(::fstat(f.fd, &st) == 0, function, ": cannot stat '", path, "': ", std::strerror(errno));
        check(!S_ISDIR(st.st_mode), function, ": '", path, "' is a directory");
        check(!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) <= max_bytes, function, ": '", path,
              "' has ", st.st_size, " bytes, more than the limit of ", max_bytes);
    }
    bool complete = false;
    std::string data = read_file_prefix(path, max_bytes, function, &complete);
    check(complete, function, ": '", path, "' is longer than the limit of ", max_bytes, " bytes");
    return data;
}

/// Reads the pages of `bytes` (part of a memory map) and maps them now, so that later reads take
/// no page faults: the kernel's MADV_POPULATE_READ (Linux 5.14), else one read per page. A model
/// whose weights stay mapped (f16 / bf16 matrices read in place) would otherwise take a fault
/// per 4 KiB page in its first forward pass: 120 000 for 470 MiB, 80 ms of a 128-token prefill
/// (llama.cpp maps with MAP_POPULATE likewise). A hint: a failure leaves the pages to fault in later.
/// Example: `llm::io::prefault(file.bytes());`
inline void prefault(std::span<const std::byte> bytes) noexcept {
    if (bytes.empty()) return;
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE) > 0 ? ::sysconf(_SC_PAGESIZE) : 4096);
    const auto first = reinterpret_cast<std::uintptr_t>(bytes.data()) / page * page;
    const auto end = reinterpret_cast<std::uintptr_t>(bytes.data()) + bytes.size();
#if defined(__linux__)
    constexpr int populate_read = 22;  // MADV_POPULATE_READ, which older C library headers lack
    if (::madvise(reinterpret_cast<void*>(first), end - first, populate_read) == 0) return;
#endif
    volatile std::byte sink{};
    for (std::uintptr_t a = std::max(first, reinterpret_cast<std::uintptr_t>(bytes.data())); a < end; a = (a / page + 1) * page) {
        sink = *reinterpret_cast<const std::byte*>(a);
    }
    (void)sink;
}

/// A regular file mapped read-only into memory: zero-copy access for model files (safetensors,
/// GGUF). Movable, not copyable; the mapping lives as long as the object. An empty file maps to
/// an empty span. Only the pages touched are read, so opening a 10 GB file costs nothing.
/// Example: `llm::io::mapped_file f("model.safetensors"); auto bytes = f.bytes();`
class mapped_file {
public:
    mapped_file() = default;

    /// Maps `path`; `function` names the caller in error messages.
    explicit mapped_file(std::string path, const char* function = "mapped_file") : path_(std::move(path)) {
        detail::fd_guard f{detail::open_for_reading(path_, function)};
        struct stat st {};
        check(::fstat(f.fd, &st) == 0, function, ": cannot stat '", path_, "': ", std::strerror(errno));
        check(S_ISREG(st.st_mode), function, ": '", path_, "' is not a regular file");
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ == 0) return;
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, f.fd, 0);
        check(p != MAP_FAILED, function, ": cannot map '", path_, "' (", size_, " bytes): ", std::strerror(errno));
        data_ = static_cast<const std::byte*>(p);
    }

    /// Takes over the mapping of `o` (left empty).
    mapped_file(mapped_file&& o) noexcept
        : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    /// Unmaps this file and takes over the mapping of `o` (left empty).
    mapped_file& operator=(mapped_file&& o) noexcept {
        if (this != &o) {
            unmap();
            path_ = std::move(o.path_);
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() { unmap(); }

    /// The file's bytes.
    std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
    /// The first byte (null for an empty file).
    const std::byte* data() const noexcept { return data_; }
    /// The file's size in bytes.
    std::size_t size() const noexcept { return size_; }
    /// The path it was opened with.
    const std::string& path() const noexcept { return path_; }

private:
    void unmap() noexcept {
        if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
        data_ = nullptr;
        size_ = 0;
    }

    std::string path_;
    const std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace llm::io
