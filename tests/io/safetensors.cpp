// SPDX-License-Identifier: Apache-2.0
// safetensors: golden files written by the Python package (read back, and written byte for byte
// by our writer), sharded checkpoints, and hostile files.
#include <llm/io/safetensors.hpp>

#include "../support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>


namespace fs = std::filesystem;
using llm::io::dtype;
using llm::io::safetensors_file;
using llm::io::safetensors_tensor;
using llm_test::temp_dir;

namespace {

const std::string golden = "tests/golden/io/";

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot open ", path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::span<const std::byte> as_bytes(const std::string& s) { return std::as_bytes(std::span<const char>(s)); }

// A safetensors file from its header text and data bytes (no padding added).
std::string make_file(const std::string& header, const std::string& data = "") {
    std::string out(8, '\0');
    const std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + header + data;
}

safetensors_file parse(const std::string& bytes) { return safetensors_file::parse(as_bytes(bytes), "hostile.safetensors"); }

void put(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// The formulas of make_safetensors_golden.py over the row-major element index i.
template <class T>
T formula(std::size_t i) {
    if constexpr (std::is_same_v<T, bool>) {
        return i % 2 == 1;
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
        return static_cast<T>(3 * static_cast<long long>(i) - 4);
    } else if constexpr (std::is_integral_v<T>) {
        return static_cast<T>(7 * i + 1);
    } else {
        return T(static_cast<float>((static_cast<double>(i) - 2) * 0.25));  // exact in every float type
    }
}

template <class T>
double as_double(T x) {
    if constexpr (std::is_arithmetic_v<T>) return static_cast<double>(x);
    else return static_cast<double>(static_cast<float>(x));
}

// Tensors built in C++ from the formulas: the same tensors the generator wrote.
struct tensor_set {
    std::vector<std::vector<std::byte>> storage;
    std::vector<safetensors_tensor> tensors;

    template <class T>
    tensor_set& add(std::string name, std::vector<std::size_t> shape) {
        safetensors_tensor t{std::move(name), llm::io::dtype_of<T>, std::move(shape), {}};
        std::vector<std::byte> bytes(t.elements() * sizeof(T));
        for (std::size_t i = 0; i < t.elements(); ++i) {
            const T v = formula<T>(i);
            std::memcpy(bytes.data() + i * sizeof(T), &v, sizeof(T));
        }
        return raw(std::move(t), std::move(bytes));
    }
    tensor_set& raw(safetensors_tensor t, std::vector<std::byte> bytes) {
        storage.push_back(std::move(bytes));
        t.data = storage.back();
        tensors.push_back(std::move(t));
        return *this;
    }
    tensor_set& raw(std::string name, dtype type, std::vector<std::size_t> shape, std::vector<unsigned char> bits) {
        std::vector<std::byte> bytes(bits.size());
        std::memcpy(bytes.data(), bits.data(), bits.size());
        return raw(safetensors_tensor{std::move(name), type, std::move(shape), {}}, std::move(bytes));
    }
};

tensor_set numpy_tensors() {
    tensor_set s;
    s.add<double>("a", {}).add<float>("b", {2, 3}).add<std::int64_t>("c", {4}).add<std::uint64_t>("d", {2});
    s.add<std::int32_t>("e", {3}).add<std::uint32_t>("f", {1, 1}).add<llm::f16>("g", {5}).add<std::int16_t>("h", {2, 2});
    s.add<std::uint16_t>("i", {3}).add<std::int8_t>("j", {7}).add<std::uint8_t>("k", {0}).add<bool>("l", {2, 3});
    s.add<float>("m", {0, 4});
    return s;
}

tensor_set torch_tensors() {
    tensor_set s;
    s.add<llm::bf16>("x.bf16", {2, 2}).add<llm::f16>("y.f16", {3}).add<float>("z", {}).add<llm::bf16>("alpha", {0});
    return s;
}

tensor_set fp8_tensors() {
    tensor_set s;
    s.raw("q.e4m3", dtype::F8_E4M3, {2, 2}, {0x38, 0xC0, 0x30, 0x7E});
    s.raw("q.e5m2", dtype::F8_E5M2, {4}, {0x3C, 0xC0, 0x38, 0x7B});
    s.raw("s.e8m0", dtype::F8_E8M0, {2}, {127, 128});
    s.add<float>("scale", {1});
    return s;
}

const std::string escaped_name = "a\b\f\n\"\\/\xc3\xa9\x01";

tensor_set escaped_tensors() {
    tensor_set s;
    s.add<std::uint8_t>(escaped_name, {1});
    return s;
}

// Every element of `name` read through a typed view equals the formula.
template <class T>
void check_formula(const llm::io::safetensors_reader& f, const std::string& name) {
    const auto v = f.flat_view<T>(name);
    REQUIRE(v.size() == f.tensor(name).elements());
    for (std::size_t i = 0; i < v.size(); ++i) CHECK_MESSAGE(as_double(v(i)) == as_double(formula<T>(i)), name, "[", i, "]");
}

// Every tensor of `s` is in `f` with the same dtype, shape and bytes.
void check_same(const llm::io::safetensors_reader& f, const tensor_set& s) {
    CHECK(f.size() == s.tensors.size());
    for (const safetensors_tensor& t : s.tensors) {
        CAPTURE(t.name);
        REQUIRE(f.contains(t.name));
        const safetensors_tensor& r = f.tensor(t.name);
        CHECK(r.dtype == t.dtype);
        CHECK(r.shape == t.shape);
        REQUIRE(r.data.size() == t.data.size());
        CHECK(std::equal(r.data.begin(), r.data.end(), t.data.begin()));
    }
}

}  // namespace

TEST_CASE("safetensors: golden numpy file reads with the right dtypes, shapes and values") {
    const safetensors_file f(golden + "numpy.safetensors");
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "np"}});
    check_same(f, numpy_tensors());
    // File order is the data order: dtype descending, then name.
    CHECK(f.names() == std::vector<std::string_view>{"d", "c", "a", "b", "m", "f", "e", "g", "i", "h", "j", "k", "l"});
    check_formula<double>(f, "a");
    check_formula<float>(f, "b");
    check_formula<std::int64_t>(f, "c");
    check_formula<std::uint64_t>(f, "d");
    check_formula<std::int32_t>(f, "e");
    check_formula<std::uint32_t>(f, "f");
    check_formula<llm::f16>(f, "g");
    check_formula<std::int16_t>(f, "h");
    check_formula<std::uint16_t>(f, "i");
    check_formula<std::int8_t>(f, "j");
    check_formula<std::uint8_t>(f, "k");
    check_formula<bool>(f, "l");
    check_formula<float>(f, "m");

    const auto b = f.view<float, 2>("b");
    CHECK(b.extent(0) == 2);
    CHECK(b.extent(1) == 3);
    CHECK(b(1, 2) == formula<float>(5));
    const auto a = f.view<double, 0>("a");  // 0-d: one element
    CHECK(a.size() == 1);
    CHECK(a() == formula<double>(0));
    const auto m = f.view<float, 2>("m");  // empty
    CHECK(m.empty());
    CHECK(m.extent(1) == 4);
    CHECK(f.bytes("k").empty());
    CHECK(f.data_offset("d") == 8 + f.header_size());
}

TEST_CASE("safetensors: golden torch file (bf16, f16, 0-d, empty)") {
    const safetensors_file f(golden + "torch.safetensors");
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
    check_same(f, torch_tensors());
    check_formula<llm::bf16>(f, "x.bf16");
    check_formula<llm::f16>(f, "y.f16");
    CHECK(f.view<float, 0>("z")() == -0.5f);
    CHECK(f.view<llm::bf16, 1>("alpha").size() == 0);
    CHECK(static_cast<float>(f.view<llm::bf16, 2>("x.bf16")(1, 1)) == 0.25f);
}

TEST_CASE("safetensors: golden fp8 file (F8_E4M3, F8_E5M2 typed; F8_E8M0 raw)") {
    const safetensors_file f(golden + "fp8.safetensors");
    CHECK(f.metadata().empty());
    check_same(f, fp8_tensors());
    const auto e4 = f.view<llm::fp8_e4m3, 2>("q.e4m3");
    CHECK(static_cast<float>(e4(0, 0)) == 1.0f);
    CHECK(static_cast<float>(e4(0, 1)) == -2.0f);
    CHECK(static_cast<float>(e4(1, 0)) == 0.5f);
    CHECK(static_cast<float>(e4(1, 1)) == 448.0f);
    const auto e5 = f.flat_view<llm::fp8_e5m2>("q.e5m2");
    CHECK(static_cast<float>(e5(0)) == 1.0f);
    CHECK(static_cast<float>(e5(1)) == -2.0f);
    CHECK(static_cast<float>(e5(2)) == 0.5f);
    CHECK(static_cast<float>(e5(3)) == 57344.0f);
    CHECK(f.tensor("s.e8m0").dtype == dtype::F8_E8M0);
    CHECK(std::to_integer<int>(f.bytes("s.e8m0")[1]) == 128);
}

TEST_CASE("safetensors: golden files with escapes, no tensors, several metadata keys") {
    const safetensors_file e(golden + "escaped.safetensors");
    check_same(e, escaped_tensors());
    CHECK(e.metadata() == std::map<std::string, std::string>{{"k\n\"", "v\t\xe2\x80\xa8\xc3\xa9"}});
    const safetensors_file empty(golden + "empty.safetensors");
    CHECK(empty.empty());
    CHECK(empty.metadata().empty());
    const safetensors_file m(golden + "metadata3.safetensors");
    CHECK(m.metadata() == std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}, {"c", "3"}});
    check_formula<std::int32_t>(m, "t");
}

TEST_CASE("safetensors: the writer's bytes equal the Python package's") {
    struct golden_case {
        const char* file;
        tensor_set tensors;
        std::map<std::string, std::string> metadata;
    };
    const golden_case cases[] = {
        {"numpy.safetensors", numpy_tensors(), {{"format", "np"}}},
        {"torch.safetensors", torch_tensors(), {{"format", "pt"}}},
        {"fp8.safetensors", fp8_tensors(), {}},
        {"escaped.safetensors", escaped_tensors(), {{"k\n\"", "v\t\xe2\x80\xa8\xc3\xa9"}}},
        {"empty.safetensors", tensor_set{}, {}},
    };
    temp_dir d;
    for (const golden_case& c : cases) {
        CAPTURE(c.file);
        const std::string expected = slurp(golden + c.file);
        CHECK(llm::io::serialize_safetensors(c.tensors.tensors, c.metadata) == expected);
        // The same tensors in another order give the same bytes.
        std::vector<safetensors_tensor> reversed(c.tensors.tensors.rbegin(), c.tensors.tensors.rend());
        llm::io::save_safetensors(d / c.file, reversed, c.metadata);
        CHECK(slurp(d / c.file) == expected);
    }
}

TEST_CASE("safetensors: from_view round trip, typed view of what was written") {
    std::vector<float> w(12);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) * 1.5f;
    const llm::tensor_view<const float, llm::dims<2>> wv(w.data(), 3, 4);
    const std::vector<safetensors_tensor> ts = {safetensors_tensor::from_view("w", wv)};
    const std::string bytes = llm::io::serialize_safetensors(ts, {{"format", "llm"}});
    // Copy into 8-aligned storage so the typed view's alignment check passes by construction.
    std::vector<std::uint64_t> aligned((bytes.size() + 7) / 8);
    std::memcpy(aligned.data(), bytes.data(), bytes.size());
    const auto f = safetensors_file::parse(std::as_bytes(std::span(aligned)).first(bytes.size()), "memory");
    const auto v = f.view<float, 2>("w");
    CHECK(v.extent(0) == 3);
    CHECK(v(2, 3) == 16.5f);
    CHECK(f.metadata().at("format") == "llm");

    // A strided (transposed) view is refused.
    const llm::tensor_view<const float, llm::dims<2>, llm::layout_left> t(w.data(), 3, 4);
    CHECK_THROWS_WITH_AS(safetensors_tensor::from_view("t", t), doctest::Contains("is not contiguous"), llm::error);
}

TEST_CASE("safetensors: typed access errors name the tensor, the stored dtype and the request") {
    const safetensors_file f(golden + "numpy.safetensors");
    CHECK_THROWS_WITH_AS((f.view<float, 1>("g")), doctest::Contains("tensor 'g'"), llm::error);
    CHECK_THROWS_WITH_AS((f.view<float, 1>("g")), doctest::Contains("stores F16 but float (F32) was requested"), llm::error);
    CHECK_THROWS_WITH_AS((f.view<float, 1>("b")), doctest::Contains("has rank 2 (shape [2, 3]), requested rank 1"), llm::error);
    CHECK_THROWS_WITH_AS(f.tensor("nope"), doctest::Contains("no tensor 'nope' in 'tests/golden/io/numpy.safetensors'"),
                         llm::error);
    CHECK(f.find("nope") == nullptr);

    // Valid by the format, but the F32 data starts at byte 1 of the buffer: misaligned for float.
    std::string header = R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                         R"("w":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
    header.resize((header.size() + 7) / 8 * 8, ' ');  // data starts 8-aligned, so w sits at 1 mod 8
    const std::string bytes = make_file(header, std::string("\x07\x00\x00\x80\x3f", 5));
    std::vector<std::uint64_t> aligned((bytes.size() + 7) / 8);
    std::memcpy(aligned.data(), bytes.data(), bytes.size());
    const auto h = safetensors_file::parse(std::as_bytes(std::span(aligned)).first(bytes.size()), "misaligned");
    const std::size_t at = h.data_offset("w");
    REQUIRE(at % 4 != 0);
    CHECK_THROWS_WITH_AS((h.view<float, 1>("w")), doctest::Contains("is not aligned to 4 bytes"), llm::error);
    float x;
    std::memcpy(&x, h.bytes("w").data(), 4);  // raw bytes always work
    CHECK(x == 1.0f);

    // A BOOL tensor holding 2 is refused by the typed view, readable as bytes.
    const std::string bools = make_file(R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2));
    const auto b = parse(bools);  // borrows `bools`
    CHECK_THROWS_WITH_AS((b.view<bool, 1>("b")), doctest::Contains("holds byte 2 at file byte"), llm::error);
    CHECK(std::to_integer<int>(b.bytes("b")[1]) == 2);
}

TEST_CASE("safetensors: sharded checkpoint through its index") {
    const llm::io::safetensors_checkpoint c(golden + "safetensors_sharded/model.safetensors.index.json");
    CHECK(c.shard_count() == 2);
    CHECK(c.size() == 4);
    CHECK(c.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
    check_formula<llm::bf16>(c, "embed");
    check_formula<float>(c, "layers.0.w");
    check_formula<float>(c, "layers.1.w");
    check_formula<float>(c, "norm");
    CHECK(c.view<llm::bf16, 2>("embed").extent(0) == 3);
    CHECK(c.file_of("norm").ends_with("model-00002-of-00002.safetensors"));
    CHECK(c.file_of("embed").ends_with("model-00001-of-00002.safetensors"));
    CHECK_THROWS_WITH_AS(c.tensor("missing"), doctest::Contains("no tensor 'missing'"), llm::error);

    // A plain file opens as a one-shard checkpoint.
    const llm::io::safetensors_checkpoint one(golden + "numpy.safetensors");
    CHECK(one.shard_count() == 1);
    check_formula<float>(one, "b");
}

TEST_CASE("safetensors: index and shards that disagree are errors") {
    temp_dir d;
    tensor_set a, b;
    a.add<float>("x", {2}).add<float>("y", {1});
    b.add<float>("y", {1}).add<float>("z", {3});
    llm::io::save_safetensors(d / "a.safetensors", a.tensors);
    llm::io::save_safetensors(d / "b.safetensors", b.tensors);
    auto index = [&](const std::string& map) {
        put(d / "model.safetensors.index.json", R"({"metadata":{"total_size":0},"weight_map":{)" + map + "}}");
        return d / "model.safetensors.index.json";
    };
    using ckpt = llm::io::safetensors_checkpoint;
    // y is present in both shards.
    CHECK_THROWS_WITH_AS(ckpt(index(R"("x":"a.safetensors","y":"a.safetensors","z":"b.safetensors")")),
                         doctest::Contains("tensor 'y' is in shard"), llm::error);
    // Listed but missing from its shard.
    tensor_set c;
    c.add<float>("z", {3});
    llm::io::save_safetensors(d / "b.safetensors", c.tensors);
    CHECK_THROWS_WITH_AS(ckpt(index(R"("x":"a.safetensors","y":"a.safetensors","w":"b.safetensors","z":"b.safetensors")")),
                         doctest::Contains("maps tensor 'w' to 'b.safetensors' but that shard has no such tensor"), llm::error);
    // In a shard but not in the index.
    CHECK_THROWS_WITH_AS(ckpt(index(R"("x":"a.safetensors","z":"b.safetensors")")),
                         doctest::Contains("tensor 'y' in shard"), llm::error);
    // Listed twice, a shard outside the directory, a missing shard, no weight_map.
    CHECK_THROWS_WITH_AS(ckpt(index(R"("x":"a.safetensors","x":"a.safetensors")")), doctest::Contains("lists tensor 'x' twice"),
                         llm::error);
    CHECK_THROWS_WITH_AS(ckpt(index(R"("x":"../a.safetensors")")), doctest::Contains("not a relative path inside"), llm::error);
    CHECK_THROWS_WITH_AS(ckpt(index(R"("x":"/etc/passwd")")), doctest::Contains("not a relative path inside"), llm::error);
    CHECK_THROWS_WITH_AS(ckpt(index(R"("x":"nope.safetensors")")), doctest::Contains("cannot open"), llm::error);
    put(d / "bad.index.json", R"({"metadata":{}})");
    CHECK_THROWS_WITH_AS(ckpt(d / "bad.index.json"), doctest::Contains("has no weight_map object"), llm::error);
    // The consistent index opens.
    const ckpt ok(index(R"("x":"a.safetensors","y":"a.safetensors","z":"b.safetensors")"));
    CHECK(ok.size() == 3);
}

TEST_CASE("safetensors: every truncation of a valid file is an llm::error") {
    const std::string full = slurp(golden + "numpy.safetensors");
    CHECK_NOTHROW(parse(full));
    for (std::size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        CHECK_THROWS_AS(parse(full.substr(0, n)), llm::error);
    }
    // And one byte too many.
    CHECK_THROWS_WITH_AS(parse(full + "x"), doctest::Contains("data ends at byte"), llm::error);
}

TEST_CASE("safetensors: hostile headers") {
    auto rejects = [](const std::string& bytes, const char* what) {
        CAPTURE(what);
        CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains(what), llm::error);
    };
    const std::string f32x2 = std::string(8, '\0');
    // Header length 2^64 - 1, just over the limit, and longer than the file.
    rejects(std::string(8, '\xff') + "{}", "header length 18446744073709551615 at byte 0 exceeds the limit");
    {
        std::string s = make_file("{}");
        const std::uint64_t n = 100'000'001;
        for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
        rejects(s, "exceeds the limit of 100000000");
    }
    rejects(make_file("{}").substr(0, 9), "runs past the end of the file");
    rejects(std::string("\x05\0\0\0\0\0\0\0{}", 10), "header length 5 at byte 0 runs past the end of the file (10 bytes)");
    rejects("1234567", "too few for the 8-byte header length");
    // Not an object, bad JSON, bad UTF-8, trailing NUL padding.
    rejects(make_file("[]"), "is not a JSON object");
    rejects(make_file("{\"a\":"), "hostile.safetensors' header");
    rejects(make_file("{\"\xff\":1}"), "not valid UTF-8 at byte 10");
    rejects(make_file(std::string("{}\0", 3)), "unexpected text after the JSON value");
    // Offsets past the end, overlap, gap, end before begin, wrong first offset.
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"), "run past the end of the file");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                      f32x2),
            "begin at 4 but the previous tensor ends at 8 (tensors overlap)");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                      f32x2 + "1234"),
            "begin at 8 but the previous tensor ends at 4 (a gap)");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "1234"), "end before they begin");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f32x2), "a gap");
    // Data left over after the last tensor.
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", f32x2), "data ends at byte");
    // Duplicate names, duplicate fields, duplicate metadata.
    rejects(make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", "12"),
            "tensor 'a' appears twice");
    rejects(make_file(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "1"), "field 'dtype' appears twice");
    rejects(make_file(R"({"__metadata__":{"k":"1","k":"2"}})"), "__metadata__ key 'k' appears twice");
    rejects(make_file(R"({"__metadata__":{},"__metadata__":{}})"), "__metadata__ appears twice");
    rejects(make_file(R"({"__metadata__":{"k":1}})"), "__metadata__ value of 'k' at byte 29 is not a string");
    // Shape overflow, element count not matching the bytes, packed types not filling bytes.
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"), "overflows std::size_t");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})"), "overflow std::size_t bits");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32x2), "hold 8 bytes but shape [3] of F32 needs 12");
    rejects(make_file(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", "1"), "do not fill whole bytes");
    // Unknown dtype, missing fields, numbers that are not exact non-negative 64-bit integers.
    rejects(make_file(R"({"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", "1234"), "unknown dtype 'F31' at byte 22");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1]}})"), "lacks the field 'data_offsets'");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "1234"), "is not a non-negative integer");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "1234"), "is not a non-negative integer");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}})", "1234"), "is not a non-negative integer");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}})", "1234"), "does not fit in 64 bits");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "1234"), "not an array of two integers");
    rejects(make_file(R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", "1234"), "shape at byte");
    rejects(make_file(R"({"a":[]})"), "tensor 'a' at byte 13 is not an object");
    // 2^53 + 1 is exact (a double would round it): shape [9007199254740993] of U8 needs that many bytes.
    rejects(make_file(R"({"a":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,9007199254740992]}})"),
            "hold 9007199254740992 bytes but shape [9007199254740993] of U8 needs 9007199254740993");

    // Accepted: unknown fields, __metadata__ null, leading spaces, empty tensors anywhere.
    const std::string good = make_file(R"( {"__metadata__":null,"e":{"dtype":"I64","shape":[0,5],"data_offsets":[0,0],"x":1},)"
                                       R"("a":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}  )",
                                       "z");
    const auto ok = parse(good);
    CHECK(std::to_integer<char>(ok.bytes("a")[0]) == 'z');
    CHECK(ok.size() == 2);
    CHECK(ok.metadata().empty());
    CHECK(ok.names() == std::vector<std::string_view>{"e", "a"});
}

TEST_CASE("safetensors: writer refuses inconsistent tensors") {
    const std::vector<std::byte> four(4);
    std::vector<safetensors_tensor> ts = {{"a", dtype::F32, {1}, four}, {"a", dtype::U8, {4}, four}};
    CHECK_THROWS_WITH_AS(llm::io::serialize_safetensors(ts), doctest::Contains("tensor 'a' appears twice"), llm::error);
    ts = {{"a", dtype::F32, {2}, four}};
    CHECK_THROWS_WITH_AS(llm::io::serialize_safetensors(ts), doctest::Contains("has 4 bytes but shape [2] of F32 needs 8"), llm::error);
    ts = {{"__metadata__", dtype::U8, {4}, four}};
    CHECK_THROWS_WITH_AS(llm::io::serialize_safetensors(ts), doctest::Contains("may not be called __metadata__"), llm::error);
    ts = {{"a", dtype::U8, {std::size_t{1} << 40, std::size_t{1} << 40}, four}};
    CHECK_THROWS_WITH_AS(llm::io::serialize_safetensors(ts), doctest::Contains("overflows std::size_t"), llm::error);
    // Nothing is left behind when writing fails.
    temp_dir d;
    CHECK_THROWS_AS(llm::io::save_safetensors(d / "x.safetensors", ts), llm::error);
    CHECK(d.entries() == 0);
}
