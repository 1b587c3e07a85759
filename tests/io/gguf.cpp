// SPDX-License-Identifier: Apache-2.0
// GGUF: the writer against gguf-py's GGUFWriter byte for byte, the reader on every value of those
// files, and hostile files (truncations, lying lengths and counts, bad offsets and alignments).
#include <doctest/doctest.h>

#include <llm/io/gguf.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

using llm::io::ggml_type;
using llm::io::gguf_file;
using llm::io::gguf_type;
using llm::io::gguf_writer;

std::string golden(const std::string& name) { return std::string(LLM_SOURCE_DIR) + "/tests/golden/io/" + name; }

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("llm_test_gguf_" + std::to_string(::getpid()) + "_" + name)).string();
}

// The tensor values of make_gguf_golden.py: (i - offset) * scale.
std::vector<float> ramp(std::size_t n, float scale, float offset) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = (static_cast<float>(i) - offset) * scale;
    return v;
}

std::vector<std::byte> q8_0_bytes(std::size_t blocks) {
    std::vector<std::byte> b(blocks * 34);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>(static_cast<std::uint8_t>((i * 7 + 3) % 256) % 251);
    return b;
}

// The tensors of the goldens; they must outlive the writer's output.
struct golden_tensors {
    std::vector<float> matrix = ramp(6, 0.25f, 5);
    std::vector<llm::f16> cube;
    std::vector<std::byte> q8 = q8_0_bytes(2);
    std::vector<llm::bf16> vec;
    std::vector<float> four = ramp(12, 1.0f, 0);
    golden_tensors() {
        for (float x : ramp(24, 0.5f, 3)) cube.emplace_back(x);
        for (float x : ramp(5, 1.0f, 2)) vec.emplace_back(x);
    }
};

// The same key-values and tensors make_gguf_golden.py gives GGUFWriter.
gguf_writer golden_writer(const golden_tensors& t, bool align64) {
    gguf_writer w;
    w.add("general.architecture", "llama");
    if (align64) w.set_alignment(64);
    w.add<std::uint8_t>("test.u8", 200);
    w.add<std::int8_t>("test.i8", -100);
    w.add<std::uint16_t>("test.u16", 60000);
    w.add<std::int16_t>("test.i16", -30000);
    w.add<std::uint32_t>("test.u32", 4000000000u);
    w.add<std::int32_t>("test.i32", -2000000000);
    w.add("test.f32", 3.25f);
    w.add("test.bool", true);
    w.add("test.string", "h\xc3\xa9llo \xe2\x9c\x93");
    w.add<std::uint64_t>("test.u64", (std::uint64_t{1} << 63) + 5);
    w.add<std::int64_t>("test.i64", -(std::int64_t{1} << 62));
    w.add("test.f64", 0.1);
    w.add_array("arr.u8", std::vector<std::uint8_t>{0, 1, 255});
    w.add_array("arr.i8", std::vector<std::int8_t>{-128, 127});
    w.add_array("arr.u16", std::vector<std::uint16_t>{65535, 7});
    w.add_array("arr.i16", std::vector<std::int16_t>{-32768, 5});
    w.add_array("arr.u32", std::vector<std::uint32_t>{1, 4294967295u});
    w.add_array("arr.i32", std::vector<std::int32_t>{1, -2, 3});
    w.add_array("arr.f32", std::vector<float>{0.5f, -1.5f, 1e-3f});
    const bool bools[] = {true, false, true};
    w.add_array("arr.bool", std::span<const bool>(bools));
    w.add_array("arr.string", std::vector<std::string>{"a", "", "\xc3\xbcn\xc3\xaf", "x y"});
    w.add_array("arr.u64", std::vector<std::uint64_t>{~std::uint64_t{0}});
    w.add_array("arr.i64", std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()});
    w.add_array("arr.f64", std::vector<double>{1e300, -2.5});
    w.add_tensor("f32.matrix", llm::tensor_view<const float, llm::dims<2>>(t.matrix.data(), 2, 3));
    w.add_tensor("f16.cube", llm::tensor_view<const llm::f16, llm::dims<3>>(t.cube.data(), 2, 3, 4));
    const std::uint64_t q8_shape[] = {2, 32};
    w.add_tensor("q8_0.rows", ggml_type::q8_0, q8_shape, t.q8);
    w.add_tensor("bf16.vector", llm::tensor_view<const llm::bf16, llm::dims<1>>(t.vec.data(), 5));
    w.add_tensor("f32.4d", llm::tensor_view<const float, llm::dims<4>>(t.four.data(), 2, 1, 3, 2));
    return w;
}

void check_golden_values(const gguf_file& f, std::uint32_t alignment) {
    CHECK(f.version() == 3);
    CHECK(f.alignment() == alignment);
    CHECK(f.data_offset() % alignment == 0);
    const auto md = f.metadata();
    REQUIRE(md.size() == (alignment == 32 ? 25u : 26u));
    CHECK(md[0].key == "general.architecture");
    CHECK(md.back().key == "arr.f64");  // file order
    CHECK(f.get_string("general.architecture") == "llama");
    CHECK(f.get<std::uint8_t>("test.u8") == 200);
    CHECK(f.get<std::int8_t>("test.i8") == -100);
    CHECK(f.get<std::uint16_t>("test.u16") == 60000);
    CHECK(f.get<std::int16_t>("test.i16") == -30000);
    CHECK(f.get<std::uint32_t>("test.u32") == 4000000000u);
    CHECK(f.get<std::int32_t>("test.i32") == -2000000000);
    CHECK(f.get<float>("test.f32") == 3.25f);
    CHECK(f.get<bool>("test.bool"));
    CHECK(f.get_string("test.string") == "h\xc3\xa9llo \xe2\x9c\x93");
    CHECK(f.get<std::uint64_t>("test.u64") == (std::uint64_t{1} << 63) + 5);
    CHECK(f.get<std::int64_t>("test.i64") == -(std::int64_t{1} << 62));
    CHECK(f.get<double>("test.f64") == 0.1);
    CHECK(f.at("test.u16").as_integer<int>() == 60000);
    CHECK_THROWS_WITH_AS(f.at("test.u64").as_integer<std::int64_t>(), doctest::Contains("does not fit"), llm::error);

    CHECK(f.get_array<std::uint8_t>("arr.u8").to_vector() == std::vector<std::uint8_t>{0, 1, 255});
    CHECK(f.get_array<std::int8_t>("arr.i8").to_vector() == std::vector<std::int8_t>{-128, 127});
    CHECK(f.get_array<std::uint16_t>("arr.u16").to_vector() == std::vector<std::uint16_t>{65535, 7});
    CHECK(f.get_array<std::int16_t>("arr.i16").to_vector() == std::vector<std::int16_t>{-32768, 5});
    CHECK(f.get_array<std::uint32_t>("arr.u32").to_vector() == std::vector<std::uint32_t>{1, 4294967295u});
    CHECK(f.get_array<std::int32_t>("arr.i32").to_vector() == std::vector<std::int32_t>{1, -2, 3});
    CHECK(f.get_array<float>("arr.f32").to_vector() == std::vector<float>{0.5f, -1.5f, 1e-3f});
    CHECK(f.get_array<bool>("arr.bool").to_vector() == std::vector<bool>{true, false, true});
    CHECK(f.get_array<std::uint64_t>("arr.u64")[0] == ~std::uint64_t{0});
    CHECK(f.get_array<std::int64_t>("arr.i64").to_vector() ==
          std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()});
    CHECK(f.get_array<double>("arr.f64").to_vector() == std::vector<double>{1e300, -2.5});
    const auto strings = f.get_strings("arr.string");
    CHECK(strings.size() == 4);
    CHECK(strings.to_vector() == std::vector<std::string_view>{"a", "", "\xc3\xbcn\xc3\xaf", "x y"});
    CHECK(f.at("arr.string").is_array());
    CHECK(f.at("arr.string").element_type() == gguf_type::string);
    CHECK(f.find("missing") == nullptr);

    // Wrong types and missing keys name the file, the key and the offset.
    CHECK_THROWS_WITH_AS(f.get<std::int32_t>("test.u32"), doctest::Contains("key 'test.u32' is u32, not i32"), llm::error);
    CHECK_THROWS_WITH_AS(f.get_strings("arr.i32"), doctest::Contains("is an array of i32, not an array of string"), llm::error);
    CHECK_THROWS_WITH_AS(f.get<float>("nope"), doctest::Contains("no metadata key 'nope'"), llm::error);

    const golden_tensors t;
    REQUIRE(f.tensors().size() == 5);
    const auto m = f.view<float, 2>("f32.matrix");
    CHECK(m.extent(0) == 2);
    CHECK(m.extent(1) == 3);
    CHECK(f.tensor("f32.matrix").ne[0] == 3);  // ggml order: ne[0] is the innermost dim
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j) CHECK(m(i, j) == t.matrix[i * 3 + j]);
    const auto cube = f.view<llm::f16, 3>("f16.cube");
    CHECK(f.tensor("f16.cube").shape() == std::vector<std::uint64_t>{2, 3, 4});
    CHECK(cube(1, 2, 3).bits() == t.cube[23].bits());
    CHECK(static_cast<float>(cube(0, 1, 0)) == (4.0f - 3.0f) * 0.5f);
    const auto v = f.view<llm::bf16, 1>("bf16.vector");
    CHECK(v.extent(0) == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(static_cast<float>(v(i)) == static_cast<float>(i) - 2.0f);
    const auto four = f.view<float, 4>("f32.4d");
    CHECK(four.extent(0) == 2);
    CHECK(four.extent(1) == 1);
    CHECK(four.extent(2) == 3);
    CHECK(four.extent(3) == 2);
    CHECK(four(1, 0, 2, 1) == 11.0f);
    const auto& q = f.tensor("q8_0.rows");
    CHECK(q.type == ggml_type::q8_0);
    CHECK(q.shape() == std::vector<std::uint64_t>{2, 32});
    CHECK(q.n_elements == 64);
    CHECK(q.n_bytes == 68);
    const auto qb = f.tensor_bytes(q);
    CHECK(std::equal(qb.begin(), qb.end(), t.q8.begin(), t.q8.end()));
    for (const auto& info : f.tensors()) CHECK(info.file_offset % alignment == 0);
    CHECK_THROWS_WITH_AS((f.view<llm::f16, 2>("f32.matrix")), doctest::Contains("'f32.matrix' is f32, not f16"), llm::error);
    CHECK_THROWS_WITH_AS((f.view<float, 3>("f32.matrix")), doctest::Contains("has 2 dimensions, not 3"), llm::error);
    CHECK_THROWS_WITH_AS(f.tensor("nope"), doctest::Contains("no tensor 'nope'"), llm::error);
}

// A little-endian byte builder for hand-made (hostile) files.
struct raw {
    std::string s;
    raw& u32(std::uint32_t v) { return put(v); }
    raw& u64(std::uint64_t v) { return put(v); }
    raw& str(std::string_view v) {
        u64(v.size());
        s += v;
        return *this;
    }
    raw& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
        s += "GGUF";
        return u32(version).u64(n_tensors).u64(n_kv);
    }
    raw& kv_u32(std::string_view key, std::uint32_t v) { return str(key).u32(4).u32(v); }
    // A tensor info with ggml order ne.
    raw& tensor(std::string_view name, std::vector<std::uint64_t> ne, ggml_type t, std::uint64_t offset) {
        str(name).u32(static_cast<std::uint32_t>(ne.size()));
        for (auto n : ne) u64(n);
        return u32(static_cast<std::uint32_t>(t)).u64(offset);
    }
    raw& pad_to(std::size_t a) {
        s.append((a - s.size() % a) % a, '\0');
        return *this;
    }
    raw& zeros(std::size_t n) {
        s.append(n, '\0');
        return *this;
    }
    template <class T>
    raw& put(T v) {
        char b[sizeof v];
        std::memcpy(b, &v, sizeof v);
        s.append(b, sizeof b);
        return *this;
    }
};

void check_rejects(const std::string& bytes, const char* expected) {
    CAPTURE(expected);
    CHECK_THROWS_WITH_AS(gguf_file::parse(bytes, "hostile.gguf"), doctest::Contains(expected), llm::error);
    try {
        (void)gguf_file::parse(bytes, "hostile.gguf");
    } catch (const llm::error& e) {
        CHECK(std::string(e.what()).find("hostile.gguf: offset ") == 0);  // the file and the byte offset
    }
}

}  // namespace

TEST_CASE("gguf: the writer gives gguf-py GGUFWriter's bytes (every metadata type, f32/f16/bf16/q8_0 tensors, alignments 32 and 64)") {
    const golden_tensors t;
    for (const bool align64 : {false, true}) {
        const std::string name = align64 ? "all_types_align64.gguf" : "all_types.gguf";
        CAPTURE(name);
        const std::string expected = llm::io::read_file(golden(name));
        const gguf_writer w = golden_writer(t, align64);
        CHECK(w.to_bytes() == expected);
        const std::string out = temp_path(name);
        w.write(out);
        CHECK(llm::io::read_file(out) == expected);
        std::filesystem::remove(out);
    }
}

TEST_CASE("gguf: the reader gives every value of the golden files, through mmap and from bytes") {
    check_golden_values(gguf_file::open(golden("all_types.gguf")), 32);
    check_golden_values(gguf_file::open(golden("all_types_align64.gguf")), 64);
    const std::string bytes = llm::io::read_file(golden("all_types.gguf"));
    gguf_file moved = gguf_file::parse(bytes, "in-memory");
    const gguf_file f = std::move(moved);  // values and views survive a move
    check_golden_values(f, 32);
    CHECK_THROWS_WITH_AS(f.get<bool>("test.u8"), doctest::Contains("in-memory: offset "), llm::error);
}

TEST_CASE("gguf: truncated at every byte, a file is refused with the file's name, or parses when only padding is cut") {
    const std::string data = llm::io::read_file(golden("all_types.gguf"));
    const gguf_file whole = gguf_file::parse(data, "whole");
    const auto& last = whole.tensors().back();
    const std::size_t needed = static_cast<std::size_t>(last.file_offset + last.n_bytes);
    REQUIRE(needed < data.size());  // the last tensor's padding
    for (std::size_t len = 0; len < data.size(); ++len) {
        CAPTURE(len);
        const std::string_view cut = std::string_view(data).substr(0, len);
        if (len < needed) {
            CHECK_THROWS_WITH_AS(gguf_file::parse(cut, "cut.gguf"), doctest::Contains("cut.gguf: offset "), llm::error);
        } else {
            CHECK(gguf_file::parse(cut, "cut.gguf").tensors().size() == 5);
        }
    }
}

TEST_CASE("gguf: hostile headers and metadata") {
    constexpr std::uint64_t huge = ~std::uint64_t{0};
    check_rejects("GGU", "truncated magic");
    check_rejects("GGML\3\0\0\0", "not a GGUF file");
    check_rejects(raw{}.header(0, 0, 1).s, "GGUF version 1 is not supported");
    check_rejects(raw{}.header(0, 0, 0x03000000).s, "byte-swapped");
    check_rejects(raw{}.header(0, 0).s.substr(0, 20), "truncated key-value count");
    // Counts larger than the bytes could hold, refused before any allocation.
    check_rejects(raw{}.header(0, huge).s, "key-value count 18446744073709551615 is more than");
    check_rejects(raw{}.header(huge, 0).s, "tensor count 18446744073709551615 is more than");
    check_rejects(raw{}.header(1000, 1).kv_u32("a", 1).zeros(100).s, "tensor count 1000 is more than");
    // String and array lengths of 2^64 - 1.
    check_rejects(raw{}.header(0, 1).u64(huge).zeros(16).s, "key length 18446744073709551615 exceeds the limit");
    check_rejects(raw{}.header(0, 1).u64(100).zeros(16).s, "key length 100 runs past the end");
    check_rejects(raw{}.header(0, 1).str("k").u32(8).u64(huge).zeros(8).s, "string length 18446744073709551615");
    check_rejects(raw{}.header(0, 1).str("k").u32(9).u32(0).u64(huge).zeros(8).s, "array 'k' length 18446744073709551615 exceeds");
    check_rejects(raw{}.header(0, 1).str("k").u32(9).u32(8).u64(1000).zeros(100).s, "array 'k' length 1000 runs past the end");
    check_rejects(raw{}.header(0, 1).str("k").u32(9).u32(8).u64(2).u64(3).s + "abc" + std::string(5, '\0'), "truncated array string");
    check_rejects(raw{}.header(0, 1).str("k").u32(4).zeros(2).s, "truncated value");
    // Keys: empty, duplicate, unknown types, nested arrays.
    check_rejects(raw{}.header(0, 1).str("").u32(0).zeros(1).s, "key 0 is empty");
    check_rejects(raw{}.header(0, 2).kv_u32("a", 1).kv_u32("a", 2).s, "duplicate key 'a'");
    check_rejects(raw{}.header(0, 1).str("k").u32(13).zeros(8).s, "unknown value type 13");
    check_rejects(raw{}.header(0, 1).str("k").u32(9).u32(77).u64(1).zeros(8).s, "unknown element type 77");
    check_rejects(raw{}.header(0, 1).str("k").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5).s, "nested arrays are not supported");
    // general.alignment: a u32 power of two.
    check_rejects(raw{}.header(0, 1).kv_u32("general.alignment", 0).s, "general.alignment 0 is not a power of two");
    check_rejects(raw{}.header(0, 1).kv_u32("general.alignment", 3).s, "general.alignment 3 is not a power of two");
    check_rejects(raw{}.header(0, 1).kv_u32("general.alignment", 1u << 21).s, "is not a power of two up to");
    check_rejects(raw{}.header(0, 1).str("general.alignment").u32(10).u64(32).s, "'general.alignment' must be u32, not u64");
    const gguf_file ok = gguf_file::parse(raw{}.header(0, 1).kv_u32("general.alignment", 1).s, "ok");
    CHECK(ok.alignment() == 1);
}

TEST_CASE("gguf: hostile tensor infos and data offsets") {
    using ne = std::vector<std::uint64_t>;
    auto one = [](std::string_view name, ne shape, ggml_type t, std::uint64_t offset, std::size_t data) {
        return raw{}.header(1, 0).tensor(name, std::move(shape), t, offset).pad_to(32).zeros(data).s;
    };
    CHECK(gguf_file::parse(one("w", {4, 2}, ggml_type::f32, 0, 32), "ok").tensor("w").shape() == std::vector<std::uint64_t>{2, 4});
    check_rejects(one(std::string(64, 'n'), {4}, ggml_type::f32, 0, 16), "has 64 bytes, more than 63");
    CHECK_NOTHROW(gguf_file::parse(one(std::string(63, 'n'), {4}, ggml_type::f32, 0, 16), "ok"));
    check_rejects(raw{}.header(1, 0).str("w").u32(5).zeros(60).s, "has 5 dimensions, more than 4");
    check_rejects(one("w", {~std::uint64_t{0}}, ggml_type::f32, 0, 16), "ne[0] = -1 is negative");
    check_rejects(one("w", {1u << 31, 1u << 31, 1u << 31}, ggml_type::i8, 0, 16), "more than 2^63 - 1 elements");
    check_rejects(one("w", {std::uint64_t{1} << 62}, ggml_type::f64, 0, 16), "byte size overflows");
    check_rejects(one("w", {16}, ggml_type::q8_0, 0, 64), "has ne[0] = 16, not a multiple of the block size 32");
    check_rejects(one("w", {4}, static_cast<ggml_type>(4), 0, 16), "invalid ggml type 4");
    check_rejects(one("w", {4}, static_cast<ggml_type>(42), 0, 16), "invalid ggml type 42");
    check_rejects(one("w", {4}, ggml_type::f32, 0, 15), "runs past the end of the file");
    check_rejects(one("w", {4}, ggml_type::f32, 32, 64), "data offset is 32, expected 0");
    check_rejects(one("w", {4}, ggml_type::f32, ~std::uint64_t{0} - 7, 16), "expected 0");
    check_rejects(raw{}.header(1, 0).tensor("w", {4}, ggml_type::f32, 0).s, "the data section would start at");
    // Two tensors: the second must sit at the first's padded end (32), not misaligned nor elsewhere.
    auto two = [](std::string_view second, std::uint64_t offset) {
        return raw{}.header(2, 0).tensor("a", {4}, ggml_type::f32, 0).tensor(second, {4}, ggml_type::f32, offset).pad_to(32).zeros(64).s;
    };
    CHECK(gguf_file::parse(two("b", 32), "ok").tensor("b").file_offset % 32 == 0);
    check_rejects(two("b", 16), "tensor 'b' data offset is 16, expected 32");
    check_rejects(two("b", 20), "tensor 'b' data offset is 20, expected 32");
    check_rejects(two("b", 64), "tensor 'b' data offset is 64, expected 32");
    check_rejects(two("b", 0), "tensor 'b' data offset is 0, expected 32");
    check_rejects(two("a", 32), "duplicate tensor name 'a'");
}

TEST_CASE("gguf: tensor data past 4 GiB (a sparse file) is found through 64-bit offsets") {
    // Tensor "big" (i8, 5 GiB) then "tail" (4 floats) at data offset 5 GiB.
    const std::uint64_t big = std::uint64_t{5} << 30;
    raw r;
    r.header(2, 0).tensor("big", {big}, ggml_type::i8, 0).tensor("tail", {4}, ggml_type::f32, big).pad_to(32);
    const std::uint64_t data_offset = r.s.size();
    const std::string path = temp_path("sparse.gguf");
    const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    REQUIRE(fd >= 0);
    const float tail[4] = {1.5f, -2.0f, 3.0f, 0.25f};
    bool ok = ::write(fd, r.s.data(), r.s.size()) == static_cast<ssize_t>(r.s.size()) &&
              ::ftruncate(fd, static_cast<off_t>(data_offset + big + sizeof tail)) == 0 &&
              ::pwrite(fd, tail, sizeof tail, static_cast<off_t>(data_offset + big)) == static_cast<ssize_t>(sizeof tail);
    ::close(fd);
    if (!ok) {
        std::filesystem::remove(path);
        MESSAGE("cannot create a sparse 5 GiB file here; skipped");
        return;
    }
    {
        const gguf_file f = gguf_file::open(path);
        CHECK(f.tensor("big").n_bytes == big);
        CHECK(f.tensor("tail").file_offset == data_offset + big);
        const auto v = f.view<float, 1>("tail");
        REQUIRE(v.extent(0) == 4);
        for (std::size_t i = 0; i < 4; ++i) CHECK(v(i) == tail[i]);
    }
    // One byte short of the tail's data: refused.
    CHECK(::truncate(path.c_str(), static_cast<off_t>(data_offset + big + sizeof tail - 1)) == 0);
    CHECK_THROWS_WITH_AS(gguf_file::open(path), doctest::Contains("tensor 'tail' data (16 bytes at file offset"), llm::error);
    std::filesystem::remove(path);
}

TEST_CASE("gguf: writer errors name the argument") {
    gguf_writer w;
    w.add("a", 1.0f);
    CHECK_THROWS_WITH_AS(w.add("a", 2.0f), doctest::Contains("duplicate key 'a'"), llm::error);
    CHECK_THROWS_WITH_AS(w.add("", 2.0f), doctest::Contains("key is empty"), llm::error);
    CHECK_THROWS_WITH_AS(w.set_alignment(3), doctest::Contains("alignment 3 is not a power of two"), llm::error);
    CHECK_THROWS_WITH_AS(w.set_alignment(0), doctest::Contains("alignment 0 is not a power of two"), llm::error);
    const std::vector<std::byte> bytes(33);
    const std::uint64_t shape[] = {32};
    CHECK_THROWS_WITH_AS(w.add_tensor("q", ggml_type::q8_0, shape, bytes), doctest::Contains("needs 34 bytes for its shape, got 33"), llm::error);
    const std::uint64_t bad[] = {16};
    CHECK_THROWS_WITH_AS(w.add_tensor("q", ggml_type::q8_0, bad, bytes), doctest::Contains("not a multiple of the block size 32"), llm::error);
    const std::vector<float> x(4);
    w.add_tensor("x", llm::tensor_view<const float, llm::dims<1>>(x.data(), 4));
    CHECK_THROWS_WITH_AS(w.add_tensor("x", llm::tensor_view<const float, llm::dims<1>>(x.data(), 4)), doctest::Contains("duplicate tensor name 'x'"),
                         llm::error);
    CHECK_THROWS_WITH_AS(w.add_tensor(std::string(64, 'n'), llm::tensor_view<const float, llm::dims<1>>(x.data(), 4)),
                         doctest::Contains("more than 63"), llm::error);
    // What it wrote reads back.
    const std::string out = w.to_bytes();
    const gguf_file f = gguf_file::parse(out, "w");
    CHECK(f.get<float>("a") == 1.0f);
    CHECK(f.view<float, 1>("x").extent(0) == 4);
}

TEST_CASE("gguf: ggml type table") {
    using llm::io::ggml_traits;
    CHECK(ggml_traits(ggml_type::q4_0).block_size == 32);
    CHECK(ggml_traits(ggml_type::q4_0).type_size == 18);
    CHECK(ggml_traits(ggml_type::q2_k).type_size == 84);
    CHECK(ggml_traits(ggml_type::q8_k).type_size == 292);
    CHECK(ggml_traits(ggml_type::iq4_xs).type_size == 136);
    CHECK(ggml_traits(ggml_type::tq1_0).type_size == 54);
    CHECK(ggml_traits(ggml_type::bf16).type_size == 2);
    CHECK(llm::io::ggml_type_name(ggml_type::q5_k) == "q5_K");
    CHECK(llm::io::ggml_type_name(static_cast<ggml_type>(31)) == "invalid");
    CHECK_FALSE(llm::io::ggml_type_valid(38));
}
