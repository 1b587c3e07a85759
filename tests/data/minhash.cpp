// SPDX-License-Identifier: Apache-2.0
// MinHash kernels against their references on awkward sizes; OPH and the Jaccard estimate; bad input.
#include <doctest/doctest.h>

#include <llm/data/detail/murmur3.hpp>
#include <llm/data/minhash.hpp>
#include <llm/data/oph.hpp>
#include <llm/data/sketch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

std::vector<std::uint64_t> random_hashes(std::mt19937_64& rng, std::size_t n, bool bits32) {
    std::vector<std::uint64_t> h(n);
    for (auto& x : h) x = bits32 ? rng() >> 32 : rng();
    return h;
}

/// Two random sets with |A ∩ B| = common and |A| = |B| = common + extra: J = common / (common + 2 extra).
void overlapping_sets(std::mt19937_64& rng, std::size_t common, std::size_t extra, std::vector<std::uint64_t>& a,
                      std::vector<std::uint64_t>& b) {
    a = random_hashes(rng, common, false);
    b = a;
    for (std::size_t i = 0; i < extra; ++i) {
        a.push_back(rng());
        b.push_back(rng());
    }
}

}  // namespace

TEST_CASE("minhash<mersenne61>::sketch equals the literal datasketch formula") {
    std::mt19937_64 rng(11);
    for (std::size_t num_perm : {1, 7, 31, 32, 33, 63, 65, 128, 256, 1000}) {
        llm::data::minhash<> mh(num_perm, static_cast<std::uint32_t>(num_perm));
        for (std::size_t n_hashes : {0, 1, 7, 1000}) {
            for (bool bits32 : {true, false}) {
                const auto h = random_hashes(rng, n_hashes, bits32);
                std::vector<std::uint32_t> got(num_perm, 0xDEADBEEF), want(num_perm, 0xDEADBEEF);
                mh.sketch(h, got);
                llm::data::minhash_reference(mh.a(), mh.b(), h, want);
                INFO("num_perm ", num_perm, " hashes ", n_hashes, " 32-bit ", bits32);
                CHECK(got == want);
            }
        }
    }
}

TEST_CASE("minhash<affine32>::sketch equals fmix32 then a*h + b mod 2^32") {
    std::mt19937_64 rng(12);
    for (std::size_t num_perm : {1, 7, 63, 64, 65, 1000}) {
        llm::data::minhash<llm::data::affine32> mh(num_perm, 5);
        for (const auto a : mh.a()) REQUIRE(a % 2 == 1);
        const auto h = random_hashes(rng, 333, true);
        std::vector<std::uint32_t> got(num_perm, 0xDEADBEEF);
        mh.sketch(h, got);
        for (std::size_t k = 0; k < num_perm; ++k) {
            std::uint32_t m = 0xFFFFFFFFu;
            for (const auto x : h) {
                const std::uint32_t v = mh.a()[k] * llm::data::detail::fmix32(static_cast<std::uint32_t>(x)) + mh.b()[k];
                m = v < m ? v : m;
            }
            CHECK(got[k] == m);
        }
    }
}

TEST_CASE("empty sets give 2^32-1 everywhere; sketch rejects a wrong output size") {
    std::vector<std::uint32_t> sig(64, 0);
    llm::data::minhash<> mh(64);
    mh.sketch({}, sig);
    for (auto v : sig) CHECK(v == 0xFFFFFFFFu);
    llm::data::one_permutation oph(64);
    std::fill(sig.begin(), sig.end(), 0u);
    oph.sketch({}, sig);
    for (auto v : sig) CHECK(v == 0xFFFFFFFFu);
    std::vector<std::uint32_t> wrong(63);
    CHECK_THROWS_WITH_AS(mh.sketch({}, wrong), "minhash::sketch: out has 63 values, num_perm is 64", llm::error);
    CHECK_THROWS_WITH_AS(oph.sketch({}, wrong), "one_permutation::sketch: out has 63 values, num_bins is 64", llm::error);
    CHECK_THROWS_WITH_AS(llm::data::minhash<>(0), "minhash: num_perm = 0 must be in [1, 2^20]", llm::error);
    CHECK_THROWS_AS(llm::data::one_permutation(0), llm::error);
    CHECK_THROWS_AS(llm::data::one_permutation(8193), llm::error);
    CHECK_THROWS_WITH_AS(llm::data::estimate_jaccard(sig, wrong),
                         "estimate_jaccard: signatures have 64 and 63 values; they must come from the same sketcher",
                         llm::error);
}

// The estimate from k independent positions has standard deviation sqrt(J(1-J)/k); averaged
// over 40 pairs the mean must sit within 4 standard errors of J (bias), and every single
// estimate within 5 standard deviations.
TEST_CASE_TEMPLATE("Jaccard estimates are unbiased for known overlaps", K, llm::data::minhash<llm::data::mersenne61>,
                   llm::data::minhash<llm::data::affine32>, llm::data::one_permutation) {
    std::mt19937_64 rng(13);
    const std::size_t k = 256;
    const K sketcher(k, 3);
    for (const auto& [common, extra] : {std::pair{300, 50}, std::pair{100, 100}, std::pair{50, 300}, std::pair{1000, 10}}) {
        const double j = static_cast<double>(common) / (common + 2.0 * extra);
        const double sd = std::sqrt(j * (1 - j) / k);
        double sum = 0;
        const int pairs = 40;
        for (int p = 0; p < pairs; ++p) {
            std::vector<std::uint64_t> a, b;
            overlapping_sets(rng, common, extra, a, b);
            std::vector<std::uint32_t> sa(k), sb(k);
            sketcher.sketch(a, sa);
            sketcher.sketch(b, sb);
            const double est = llm::data::estimate_jaccard(sa, sb);
            CHECK(std::abs(est - j) <= 5 * sd + 1e-12);
            sum += est;
        }
        INFO("J = ", j);
        CHECK(std::abs(sum / pairs - j) <= 4 * sd / std::sqrt(double(pairs)) + 1e-12);
    }
}

TEST_CASE("one_permutation: identical sets agree everywhere, small sets are densified, seeds differ") {
    std::mt19937_64 rng(14);
    for (std::size_t n : {1, 3, 7, 100, 5000}) {
        const auto h = random_hashes(rng, n, false);
        llm::data::one_permutation oph(128, 1), other_seed(128, 2);
        std::vector<std::uint32_t> s1(128), s2(128), s3(128);
        oph.sketch(h, s1);
        auto shuffled = h;
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        shuffled.insert(shuffled.end(), h.begin(), h.end());  // repeats change nothing
        oph.sketch(shuffled, s2);
        CHECK(s1 == s2);
        other_seed.sketch(h, s3);
        if (n >= 7) CHECK(s1 != s3);
        // Densified: with one hash every bin holds that hash's value.
        if (n == 1) {
            for (auto v : s1) CHECK(v == s1[0]);
        }
    }
}

namespace {

// MurmurHash3's 64-bit finaliser, written out here so the reference shares no code with oph.hpp.
std::uint64_t mix64(std::uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

// One-permutation hashing with optimal densification straight from its definition (the
// class comment of one_permutation): each hash, mixed with the seed's salt, falls in bin
// floor(hi32 * bins / 2^32) with value lo32; a bin keeps the smallest value; an empty bin i
// takes the (undensified) value of the first filled bin among bin(mix(dsalt ^ (i << 32 | a)))
// for a = 1, 2, ...; no hashes: every bin is 2^32 - 1.
std::vector<std::uint32_t> oph_reference(std::size_t bins, std::uint32_t seed, const std::vector<std::uint64_t>& hashes) {
    const std::uint64_t salt = mix64(0x9E3779B97F4A7C15ull * (std::uint64_t{seed} + 1));
    const std::uint64_t dsalt = mix64(salt ^ 0xD6E8FEB86659FD93ull);
    const auto bin_of = [bins](std::uint64_t y) { return static_cast<std::size_t>((y >> 32) * bins / (std::uint64_t{1} << 32)); };
    std::vector<std::vector<std::uint32_t>> values(bins);
    for (const std::uint64_t h : hashes) {
        const std::uint64_t y = mix64(h ^ salt);
        values[bin_of(y)].push_back(static_cast<std::uint32_t>(y));
    }
    std::vector<std::uint32_t> out(bins, 0xFFFFFFFFu);
    if (hashes.empty()) return out;
    for (std::size_t i = 0; i < bins; ++i) {
        std::size_t from = i;
        for (std::uint64_t a = 1; values[from].empty(); ++a) from = bin_of(mix64(dsalt ^ (std::uint64_t{i} << 32 | a)));
        out[i] = *std::min_element(values[from].begin(), values[from].end());
    }
    return out;
}

}  // namespace

TEST_CASE("one_permutation::sketch equals the direct reference on random sets of awkward sizes") {
    std::mt19937_64 rng(15);
    for (const std::size_t bins : {1, 2, 7, 63, 64, 65, 128, 1000, 8192}) {
        for (const std::size_t n : {0, 1, 2, 7, 63, 100, 1000, 5000}) {
            // Densifying 8192 bins from a few filled ones takes ~bins^2 / filled draws: one repeat there.
            for (int rep = 0; rep < (bins > 1000 ? 1 : 4); ++rep) {
                const std::uint32_t seed = static_cast<std::uint32_t>(rng());
                auto h = random_hashes(rng, n, rep % 2 == 1);
                if (n > 2) h.insert(h.end(), h.begin(), h.begin() + static_cast<std::ptrdiff_t>(n / 3));  // repeats
                std::vector<std::uint32_t> got(bins, 0xDEADBEEF);
                llm::data::one_permutation(bins, seed).sketch(h, got);
                INFO("bins ", bins, " hashes ", h.size(), " seed ", seed);
                CHECK(got == oph_reference(bins, seed, h));
            }
        }
    }
}
