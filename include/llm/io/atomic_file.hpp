// SPDX-License-Identifier: Apache-2.0
// Writing files so that no reader ever sees a half-written one: a unique temporary in the target's
// directory, written, fsynced and renamed over the target; several files committed as a group.
#pragma once

#include <llm/core/error.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llm::io {

namespace detail {

inline std::string parent_directory(const std::string& path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
}

// Refuses targets that renaming would destroy or that are not files: symlinks, FIFOs, devices,
// sockets and directories. A target that does not exist yet is fine.
inline void check_output_target(const std::string& path, const char* function) {
    check(!path.empty(), function, ": output path is empty");
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        check(errno == ENOENT, function, ": cannot stat output '", path, "': ", std::strerror(errno));
        return;
    }
    check(S_ISREG(st.st_mode), function, ": output '", path, "' exists and is not a regular file (",
          S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a device or socket",
          "); refusing to replace it");
}

inline void fsync_directory(const std::string& dir) noexcept {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);  // best effort: some file systems refuse fsync on directories
        ::close(fd);
    }
}

}  // namespace detail

/// One output file written atomically. The bytes go to a fresh temporary file (unique name,
/// created with `mkstemp` in the target's directory so the final rename stays on one file
/// system); `commit()` flushes, fsyncs and renames it over the target. Until then the target is
/// untouched, and a destroyed uncommitted `atomic_file` removes its temporary. The path `"-"`
/// means standard output (written through directly; commit flushes it).
///
/// Targets that exist and are not regular files (symlinks, FIFOs, devices) are refused.
/// Example:
/// ```
/// llm::io::atomic_file out("model.safetensors", "save_safetensors");
/// out.write(header);
/// out.write(bytes);
/// out.commit();
/// ```
class atomic_file {
public:
    /// Creates the temporary for `target`; `function` names the caller in error messages.
    explicit atomic_file(std::string target, const char* function = "atomic_file")
        : target_(std::move(target)), function_(function) {
        if (target_ == "-") {
            fd_ = STDOUT_FILENO;
            return;
        }
        detail::check_output_target(target_, function_);
        const std::string name = std::filesystem::path(target_).filename().string();
        check(!name.empty() && name != "." && name != "..", function_, ": output '", target_, "' names no file");
        temp_ = (std::filesystem::path(detail::parent_directory(target_)) / ("." + name + ".tmp.XXXXXX")).string();
        std::vector<char> templ(temp_.begin(), temp_.end());
        templ.push_back('\0');
        fd_ = ::mkstemp(templ.data());
        check(fd_ >= 0, function_, ": cannot create a temporary file beside '", target_, "': ", std::strerror(errno));
        temp_.assign(templ.data());
        // mkstemp creates mode 0600; give the file the mode an ordinary create would (0644, or the
        // existing target's mode when it is replaced).
        struct stat st {};
        const mode_t mode = ::stat(target_.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
        ::fchmod(fd_, mode);
    }

    /// Takes over `o`'s temporary (o is left without one).
    atomic_file(atomic_file&& o) noexcept
        : target_(std::move(o.target_)), temp_(std::move(o.temp_)), function_(o.function_),
          fd_(std::exchange(o.fd_, -1)), buffer_(std::move(o.buffer_)), finished_(o.finished_), committed_(o.committed_) {}
    atomic_file& operator=(atomic_file&&) = delete;
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;

    /// Removes the temporary unless committed.
    ~atomic_file() { discard(); }

    /// Appends bytes.
    void write(const void* data, std::size_t n) {
        check(!finished_, function_, ": write to '", target_, "' after it was finished");
        const char* p = static_cast<const char*>(data);
        if (buffer_.size() + n > buffer_limit) {
            flush_buffer();
            if (n >= buffer_limit) return write_fully(p, n);
        }
        buffer_.append(p, n);
    }
    /// Appends a string's bytes.
    void write(std::string_view s) { write(s.data(), s.size()); }
    /// Appends bytes.
    void write(std::span<const std::byte> s) { write(s.data(), s.size()); }

    /// Flushes and fsyncs the temporary (the first half of a commit); safe to call twice.
    void finish() {
        if (finished_) return;
        flush_buffer();
        if (!is_stdout()) {
            check(::fsync(fd_) == 0, function_, ": fsync of '", temp_, "' failed: ", std::strerror(errno));
            const int rc = ::close(std::exchange(fd_, -1));
            check(rc == 0, function_, ": closing '", temp_, "' failed: ", std::strerror(errno));
        }
        finished_ = true;
    }

    /// finish(), then renames the temporary over the target and fsyncs the directory.
    void commit() {
        finish();
        if (committed_) return;
        if (!is_stdout()) {
            detail::check_output_target(target_, function_);  // it may have changed meanwhile
            check(::rename(temp_.c_str(), target_.c_str()) == 0, function_, ": cannot rename '", temp_, "' to '", target_,
                  "': ", std::strerror(errno));
            detail::fsync_directory(detail::parent_directory(target_));
        }
        committed_ = true;
    }

    /// The final path.
    const std::string& target() const noexcept { return target_; }
    /// The temporary's path (empty for standard output).
    const std::string& temp_path() const noexcept { return temp_; }
    /// True once committed.
    bool committed() const noexcept { return committed_; }

private:
    static constexpr std::size_t buffer_limit = std::size_t{1} << 20;

    bool is_stdout() const noexcept { return target_ == "-"; }

    void write_fully(const char* p, std::size_t n) {
        while (n > 0) {
            const ssize_t w = ::write(fd_, p, n);
            if (w < 0 && errno == EINTR) continue;
            check(w > 0, function_, ": writing '", is_stdout() ? std::string("standard output") : temp_,
                  "' failed: ", std::strerror(errno));
            p += w;
            n -= static_cast<std::size_t>(w);
        }
    }

    void flush_buffer() {
        if (buffer_.empty()) return;
        write_fully(buffer_.data(), buffer_.size());
        buffer_.clear();
    }

    void discard() noexcept {
        if (is_stdout() || committed_) return;
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
        if (!temp_.empty()) ::unlink(temp_.c_str());
    }

    std::string target_;
    std::string temp_;
    const char* function_;
    int fd_ = -1;
    std::string buffer_;
    bool finished_ = false;
    bool committed_ = false;
};

/// Commits several files as a group: every temporary is written and fsynced first, and only
/// then are they renamed, so a failure while writing any of them replaces none of the targets.
/// Example: `llm::io::commit_together({&kept, &clusters, &report});`
inline void commit_together(std::initializer_list<atomic_file*> files) {
    for (atomic_file* f : files)
        if (f) f->finish();
    for (atomic_file* f : files)
        if (f) f->commit();
}

/// Refuses a set of output paths where two name the same file, or an output names one of the
/// inputs (both would be corrupted). Paths are compared after resolving `.`/`..` and symlinks
/// of existing parents; `"-"` (standard output/input) and empty paths are ignored.
/// Example: `llm::io::check_distinct_paths("dedup", {out, clusters}, {in});`
inline void check_distinct_paths(const char* function, std::initializer_list<std::string_view> outputs,
                                 std::initializer_list<std::string_view> inputs = {}) {
    auto canonical = [](std::string_view p) {
        std::error_code ec;
        // Absolute first: weakly_canonical leaves "x" relative but makes "./x" absolute when x does not exist.
        const auto a = std::filesystem::absolute(std::filesystem::path(p), ec);
        const auto c = ec ? a : std::filesystem::weakly_canonical(a, ec);
        return ec ? std::filesystem::path(p).lexically_normal().string() : c.string();
    };
    std::vector<std::pair<std::string, std::string_view>> seen;
    for (std::string_view out : outputs) {
        if (out.empty() || out == "-") continue;
        const std::string c = canonical(out);
        for (const auto& [other, original] : seen)
            check(other != c, function, ": outputs '", original, "' and '", out, "' name the same file");
        for (std::string_view in : inputs)
            check(in.empty() || in == "-" || canonical(in) != c, function, ": output '", out, "' names the input '", in, "'");
        seen.emplace_back(c, out);
    }
}

/// Writes `data` to `path` atomically (one-file form of atomic_file).
/// Example: `llm::io::write_file_atomically("vocab.tiktoken", text, "save_tiktoken");`
inline void write_file_atomically(const std::string& path, std::string_view data, const char* function = "write_file") {
    atomic_file f(path, function);
    f.write(data);
    f.commit();
}

}  // namespace llm::io
