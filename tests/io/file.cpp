// SPDX-License-Identifier: Apache-2.0
// Bounded reads, memory maps and the atomic writer.
#include <llm/io/atomic_file.hpp>
#include <llm/io/file.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string templ = (fs::temp_directory_path() / "llm_io_test.XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        path = templ;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string operator/(const char* name) const { return (path / name).string(); }
    std::size_t entries() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};

void put(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("read_file: bounded by the limit, before allocating") {
    temp_dir d;
    put(d / "a", "hello");
    CHECK(llm::io::read_file(d / "a", 5, "t") == "hello");
    CHECK_THROWS_WITH_AS(llm::io::read_file(d / "a", 4, "t"), doctest::Contains("more than the limit of 4"), llm::error);
    CHECK_THROWS_WITH_AS(llm::io::read_file(d / "missing", 4, "t"), doctest::Contains("cannot open"), llm::error);
    CHECK_THROWS_WITH_AS(llm::io::read_file(d.path.string(), 4, "t"), doctest::Contains("is a directory"), llm::error);
    // A device that never ends is read up to the limit only.
    CHECK_THROWS_WITH_AS(llm::io::read_file("/dev/zero", 1 << 20, "t"), doctest::Contains("longer than the limit"), llm::error);
    bool complete = true;
    CHECK(llm::io::read_file_prefix("/dev/zero", 10, "t", &complete).size() == 10);
    CHECK_FALSE(complete);
    CHECK(llm::io::read_file_prefix(d / "a", 10, "t", &complete) == "hello");
    CHECK(complete);
}

TEST_CASE("mapped_file: maps regular files only") {
    temp_dir d;
    put(d / "a", "abc");
    llm::io::mapped_file m(d / "a");
    REQUIRE(m.size() == 3);
    CHECK(static_cast<char>(m.bytes()[2]) == 'c');
    llm::io::mapped_file moved = std::move(m);
    CHECK(moved.size() == 3);
    CHECK(m.size() == 0);
    put(d / "empty", "");
    CHECK(llm::io::mapped_file(d / "empty").bytes().empty());
    CHECK_THROWS_WITH_AS(llm::io::mapped_file("/dev/zero", "t"), doctest::Contains("not a regular file"), llm::error);
}

TEST_CASE("atomic_file: the target changes only on commit, temporaries are unique and removed") {
    temp_dir d;
    const std::string target = d / "out.txt";
    put(target, "old");
    {
        llm::io::atomic_file a(target, "t"), b(target, "t");
        CHECK(a.temp_path() != b.temp_path());
        CHECK(fs::path(a.temp_path()).parent_path() == d.path);
        a.write("new");
        a.finish();
        CHECK(llm::io::read_file(target) == "old");
        a.commit();
        CHECK(llm::io::read_file(target) == "new");
    }  // b is destroyed uncommitted: its temporary goes
    CHECK(d.entries() == 1);
    llm::io::write_file_atomically(target, std::string(3 << 20, 'x'), "t");  // larger than the buffer
    CHECK(fs::file_size(target) == (3u << 20));
}

TEST_CASE("atomic_file: refuses symlinks, FIFOs, devices and directories") {
    temp_dir d;
    put(d / "real", "keep");
    fs::create_symlink(d / "real", d / "link");
    CHECK_THROWS_WITH_AS(llm::io::atomic_file(d / "link", "t"), doctest::Contains("symbolic link"), llm::error);
    REQUIRE(::mkfifo((d / "fifo").c_str(), 0600) == 0);
    CHECK_THROWS_WITH_AS(llm::io::atomic_file(d / "fifo", "t"), doctest::Contains("FIFO"), llm::error);
    CHECK_THROWS_WITH_AS(llm::io::atomic_file("/dev/null", "t"), doctest::Contains("not a regular file"), llm::error);
    CHECK_THROWS_WITH_AS(llm::io::atomic_file(d.path.string(), "t"), doctest::Contains("directory"), llm::error);
    CHECK(llm::io::read_file(d / "real") == "keep");
}

TEST_CASE("commit_together: a failure before the renames replaces nothing") {
    temp_dir d;
    put(d / "a", "old a");
    put(d / "b", "old b");
    llm::io::atomic_file a(d / "a", "t"), b(d / "b", "t");
    a.write("new a");
    b.write("new b");
    // Both temporaries are complete and fsynced before any target is replaced.
    a.finish();
    b.finish();
    CHECK(llm::io::read_file(d / "a") == "old a");
    CHECK(llm::io::read_file(d / "b") == "old b");
    llm::io::commit_together({&a, &b});
    CHECK(llm::io::read_file(d / "a") == "new a");
    CHECK(llm::io::read_file(d / "b") == "new b");
}

TEST_CASE("check_distinct_paths: two outputs naming one file, or an output naming an input") {
    temp_dir d;
    CHECK_NOTHROW(llm::io::check_distinct_paths("t", {d / "x", d / "y", "-", "-"}, {d / "z"}));
    CHECK_THROWS_WITH_AS(llm::io::check_distinct_paths("t", {d / "x", (d.path / "." / "x").string()}), doctest::Contains("name the same file"), llm::error);
    CHECK_THROWS_WITH_AS(llm::io::check_distinct_paths("t", {d / "x"}, {d / "x"}), doctest::Contains("names the input"), llm::error);
}

TEST_CASE("check_distinct_paths: relative spellings of a file that does not exist yet") {
    // Relative paths are resolved against the working directory, so the test runs in a fresh one
    // where x.txt does not exist (weakly_canonical alone would leave "x.txt" relative but make
    // "./x.txt" absolute, and miss the clash).
    temp_dir d;
    const fs::path before = fs::current_path();
    fs::current_path(d.path);
    struct restore {
        fs::path p;
        ~restore() {
            std::error_code ec;
            fs::current_path(p, ec);
        }
    } back{before};
    REQUIRE_FALSE(fs::exists("x.txt"));
    CHECK_THROWS_WITH_AS(llm::io::check_distinct_paths("t", {"x.txt", "./x.txt"}), doctest::Contains("outputs 'x.txt' and './x.txt' name the same file"),
                         llm::error);
    CHECK_THROWS_WITH_AS(llm::io::check_distinct_paths("t", {"sub/../x.txt"}, {"x.txt"}), doctest::Contains("names the input"), llm::error);
    CHECK_NOTHROW(llm::io::check_distinct_paths("t", {"x.txt", "./y.txt"}, {"z.txt"}));
    CHECK_FALSE(fs::exists("x.txt"));  // checking creates nothing
}
