// SPDX-License-Identifier: Apache-2.0
// llm.c token files (reader, writer, hostile input) and the batch loader (llm.c's order, the
// seeded shuffle, saved positions).
#include <llm/tensor/tensor.hpp>
#include <llm/train/loader.hpp>
#include <llm/train/token_file.hpp>

#include <doctest/doctest.h>

#include "../support/temp_dir.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace {

std::string header(std::int32_t magic, std::int32_t version, std::int32_t count) {
    std::string h(1024, '\0');
    std::memcpy(h.data(), &magic, 4);
    std::memcpy(h.data() + 4, &version, 4);
    std::memcpy(h.data() + 8, &count, 4);
    return h;
}

llm::train::token_file parse(const std::string& bytes) {
    return llm::train::token_file::parse(std::as_bytes(std::span<const char>(bytes)), "test.bin");
}

}  // namespace

TEST_CASE("token_file: version 1 (uint16) and 2 (uint32) written atomically read back; llm.c's byte layout") {
    llm_test::temp_dir dir;
    std::vector<std::uint16_t> t16{1, 2, 50256, 65535, 0};
    llm::train::write_token_file(dir / "a.bin", std::span<const std::uint16_t>(t16));
    CHECK(dir.entries() == 1);  // no temporary left beside it
    llm::train::token_file a(dir / "a.bin");
    CHECK(a.version() == 1);
    REQUIRE(a.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(a[i] == t16[i]);
    // The bytes are llm.c's: int32 header words, then little-endian uint16 tokens.
    std::ifstream in(dir / "a.bin", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(bytes.size() == 1024 + 10);
    CHECK(bytes.substr(0, 1024) == header(20240520, 1, 5));
    CHECK(static_cast<unsigned char>(bytes[1024 + 4]) == (50256 & 0xFF));

    std::vector<std::uint32_t> t32{7, 100000, 4000000000u};
    llm::train::write_token_file(dir / "b.bin", std::span<const std::uint32_t>(t32));
    llm::train::token_file b(dir / "b.bin");
    CHECK(b.version() == 2);
    CHECK(b.at(2) == 4000000000u);
    CHECK_THROWS_WITH_AS(b.at(3), doctest::Contains("index 3 out of range"), llm::error);
    CHECK_THROWS_WITH_AS(b.check_vocab(100001), doctest::Contains("token 2 is 4000000000"), llm::error);
    CHECK_THROWS_WITH_AS(llm::train::write_token_file(dir / "c.bin", std::span<const std::uint32_t>(t32), 1),
                         doctest::Contains("token 1 is 100000, too large for version 1"), llm::error);
    CHECK(dir.entries() == 2);
}

TEST_CASE("token_file: truncated and hostile files are llm::error naming the values") {
    CHECK_THROWS_WITH_AS(parse(std::string(100, '\0')), doctest::Contains("has 100 bytes, fewer than the 1024-byte header"),
                         llm::error);
    CHECK_THROWS_WITH_AS(parse(header(20240521, 1, 0)), doctest::Contains("magic number 20240521 at byte 0"), llm::error);
    CHECK_THROWS_WITH_AS(parse(header(20240520, 3, 0)), doctest::Contains("version 3 at byte 4"), llm::error);
    CHECK_THROWS_WITH_AS(parse(header(20240520, 1, -5)), doctest::Contains("token count -5 at byte 8 is negative"),
                         llm::error);
    CHECK_THROWS_WITH_AS(parse(header(20240520, 1, 4) + std::string(7, '\0')),
                         doctest::Contains("has 1031 bytes but its header says 4 tokens of 2 bytes: expected 1032 bytes (truncated)"),
                         llm::error);
    CHECK_THROWS_WITH_AS(parse(header(20240520, 2, 1) + std::string(8, '\0')), doctest::Contains("(trailing data)"), llm::error);
    // A count of 2^31 - 1 in a small file: refused by the size check before anything is read.
    CHECK_THROWS_WITH_AS(parse(header(20240520, 2, 2147483647)), doctest::Contains("expected 8589935612 bytes"), llm::error);
    CHECK(parse(header(20240520, 1, 0)).size() == 0);
}

TEST_CASE("batch_loader without shuffle: batch k row i is the window of T + 1 tokens at (k B + i) T, as llm.c") {
    const std::size_t n = 1000, B = 3, T = 7;
    std::vector<std::uint16_t> tokens(n);
    for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<std::uint16_t>(i * 7 % 65521);
    const std::string bytes = llm::train::serialize_token_file(std::span<const std::uint16_t>(tokens));
    const auto f = parse(bytes);
    llm::train::batch_loader loader(f, B, T);
    CHECK(loader.batches_per_epoch() == (n - 1) / (B * T));
    llm::tensor<std::int32_t, llm::dims<2>> x(B, T), y(B, T);
    for (std::size_t k = 0; k < loader.batches_per_epoch() + 2; ++k) {
        const std::size_t kk = k % loader.batches_per_epoch();
        loader.next(x, y);
        for (std::size_t i = 0; i < B; ++i)
            for (std::size_t j = 0; j < T; ++j) {
                CHECK(x(i, j) == tokens[(kk * B + i) * T + j]);
                CHECK(y(i, j) == tokens[(kk * B + i) * T + j + 1]);
            }
    }
    CHECK(loader.position() == llm::train::data_position{1, 2});
    // A flat [B * T] view of a 64-bit type works too; a narrow type refuses a large token.
    llm::tensor<std::int64_t, llm::dims<1>> xf(B * T), yf(B * T);
    loader.next(xf, yf);
    CHECK(xf(0) == tokens[2 * B * T]);
    llm::tensor<std::int8_t, llm::dims<1>> xs(B * T), ys(B * T);
    CHECK_THROWS_WITH_AS(loader.next(xs, ys), doctest::Contains("too large for the 8-bit element type"), llm::error);
    llm::tensor<std::int32_t, llm::dims<2>> wrong(B, T + 1);
    CHECK_THROWS_WITH_AS(loader.next(wrong, y), doctest::Contains("inputs have 24 and targets 21 elements"), llm::error);
    CHECK_THROWS_WITH_AS(llm::train::batch_loader(f, 100, 10), doctest::Contains("fewer than one batch of 100 x 10 + 1 = 1001"),
                         llm::error);
    CHECK_THROWS_WITH_AS(loader.seek({0, 1000}), doctest::Contains("batch 1000 is not below"), llm::error);
}

TEST_CASE("batch_loader with shuffle: each epoch a seeded permutation of the windows; a saved position resumes exactly") {
    const std::size_t n = 2000, B = 4, T = 5;
    std::vector<std::uint32_t> tokens(n);
    for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<std::uint32_t>(i);
    const std::string bytes = llm::train::serialize_token_file(std::span<const std::uint32_t>(tokens), 2);
    const auto f = parse(bytes);
    llm::train::batch_loader loader(f, B, T, {.shuffle = true, .seed = 42});
    const std::size_t nb = loader.batches_per_epoch();
    llm::tensor<std::int32_t, llm::dims<2>> x(B, T), y(B, T);
    std::set<std::int32_t> starts;
    std::vector<std::int32_t> epoch0;
    for (std::size_t k = 0; k < nb; ++k) {
        loader.next(x, y);
        for (std::size_t i = 0; i < B; ++i) {
            CHECK(x(i, 0) % static_cast<std::int32_t>(T) == 0);
            CHECK(y(i, T - 1) == x(i, 0) + static_cast<std::int32_t>(T));
            starts.insert(x(i, 0));
            epoch0.push_back(x(i, 0));
        }
    }
    CHECK(starts.size() == nb * B);  // every window once
    CHECK(!std::is_sorted(epoch0.begin(), epoch0.end()));
    // Epoch 1 has another order; a loader seeked to a saved position reads the same batches.
    const auto saved = llm::train::data_position{1, 3};
    llm::train::batch_loader other(f, B, T, {.shuffle = true, .seed = 42});
    other.seek(saved);
    for (std::size_t k = 0; k < 3; ++k) loader.next(x, y);
    REQUIRE(loader.position() == saved);
    llm::tensor<std::int32_t, llm::dims<2>> x2(B, T), y2(B, T);
    for (std::size_t k = 0; k < nb; ++k) {  // across the next epoch boundary too
        loader.next(x, y);
        other.next(x2, y2);
        CHECK(std::memcmp(x.data(), x2.data(), B * T * 4) == 0);
        CHECK(std::memcmp(y.data(), y2.data(), B * T * 4) == 0);
    }
    CHECK(loader.window_start({1, 0}, 0) != loader.window_start({0, 0}, 0));
    // Another seed, another order.
    llm::train::batch_loader seed7(f, B, T, {.shuffle = true, .seed = 7});
    CHECK(seed7.window_start({0, 0}, 0) != loader.window_start({0, 0}, 0));
}
