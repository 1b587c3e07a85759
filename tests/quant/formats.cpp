// SPDX-License-Identifier: Apache-2.0
// llm::quant block formats: bytes identical to ggml's reference quantizers, dequantized values identical to
// ggml's, round-trip error within what each format's grid allows, size and value checks.
#include <llm/quant/quant.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace q = llm::quant;

// ---- golden file: tests/golden/quant/formats.txt (make_quant_golden.py) --------------------------

std::vector<std::uint8_t> from_hex(const std::string& hex) {
    REQUIRE_MESSAGE(hex.size() % 2 == 0, "odd hex length ", hex.size());
    std::vector<std::uint8_t> out(hex.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const std::string byte = hex.substr(2 * i, 2);
        char* end = nullptr;
        out[i] = static_cast<std::uint8_t>(std::strtoul(byte.c_str(), &end, 16));
        REQUIRE_MESSAGE(end == byte.c_str() + 2, "bad hex byte '", byte, "'");
    }
    return out;
}

std::vector<float> floats_from_bytes(const std::vector<std::uint8_t>& bytes) {
    REQUIRE(bytes.size() % 4 == 0);
    std::vector<float> out(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), bytes.size());  // the file is little-endian, as the hosts we test
    return out;
}

std::uint64_t fnv1a64(const void* data, std::size_t n) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < n; ++i) {
        h = (h ^ static_cast<const std::uint8_t*>(data)[i]) * 0x100000001b3ull;
    }
    return h;
}

struct golden {
    std::map<std::string, std::vector<float>> inputs;         // case -> 256 values
    std::map<std::string, std::vector<std::uint8_t>> blocks;  // "format case" -> bytes
    std::map<std::string, std::vector<float>> dequant;        // "format case" -> values
    std::map<std::string, std::uint64_t> dequant_fnv;         // "format case" -> hash of the values
};

const golden& golden_data() {
    static const golden g = [] {
        golden out;
        const std::string path = LLM_SOURCE_DIR "/tests/golden/quant/formats.txt";
        std::ifstream in(path);
        REQUIRE_MESSAGE(in.good(), "cannot open ", path);
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line[0] == '#') {
                continue;
            }
            std::istringstream ls(line);
            std::string kind, a, b, c;
            ls >> kind >> a >> b;
            if (kind == "input") {
                out.inputs[a] = floats_from_bytes(from_hex(b));
                continue;
            }
            ls >> c;
            REQUIRE_MESSAGE(!c.empty(), path, ": short line '", line.substr(0, 40), "'");
            const std::string key = a + " " + b;
            if (kind == "blocks") {
                out.blocks[key] = from_hex(c);
            } else if (kind == "dequant") {
                out.dequant[key] = floats_from_bytes(from_hex(c));
            } else {
                REQUIRE_MESSAGE(kind == "dequant_fnv", path, ": unknown record ", kind);
                out.dequant_fnv[key] = std::stoull(c, nullptr, 16);
            }
        }
        REQUIRE(out.inputs.size() == 8);
        return out;
    }();
    return g;
}

// Quantizes every golden input with F and requires the golden bytes; dequantizes the golden
// bytes and requires the golden values (bit for bit, -0.0 included).
template <class F>
void check_golden() {
    const golden& g = golden_data();
    for (const auto& input : g.inputs) {
        const std::string& name = input.first;  // not a structured binding: clang 14 cannot capture those
        const std::vector<float>& x = input.second;
        CAPTURE(name);
        const std::string key = std::string(F::name) + " " + name;
        REQUIRE(g.blocks.count(key) == 1);
        const std::vector<std::uint8_t>& expected = g.blocks.at(key);
        const std::size_t nblocks = x.size() / F::block_size;
        REQUIRE(expected.size() == nblocks * sizeof(typename F::block));

        std::vector<typename F::block> ours(nblocks);
        std::memset(static_cast<void*>(ours.data()), 0xA5, nblocks * sizeof(typename F::block));  // poison
        q::quantize<F>(x, ours);
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(ours.data());
        const auto mismatch = std::mismatch(expected.begin(), expected.end(), bytes).first;
        const auto at = static_cast<std::size_t>(mismatch - expected.begin());
        CHECK_MESSAGE(mismatch == expected.end(), F::name, " ", name, ": byte ", at, " (block ",
                      at / sizeof(typename F::block), ", offset ", at % sizeof(typename F::block), ") is ",
                      int(bytes[at < expected.size() ? at : 0]), ", ggml writes ",
                      int(expected[at < expected.size() ? at : 0]));

        std::vector<typename F::block> gold(nblocks);
        std::memcpy(static_cast<void*>(gold.data()), expected.data(), expected.size());
        std::vector<float> y(x.size(), std::numeric_limits<float>::quiet_NaN());
        q::dequantize<F>(std::span<const typename F::block>(gold), y);
        if (g.dequant.count(key) != 0) {
            const std::vector<float>& want = g.dequant.at(key);
            REQUIRE(want.size() == y.size());
            for (std::size_t i = 0; i < y.size(); ++i) {
                CHECK_MESSAGE(std::memcmp(&want[i], &y[i], 4) == 0, F::name, " ", name, ": y[", i,
                              "] = ", y[i], ", ggml gives ", want[i]);
            }
        } else {
            REQUIRE(g.dequant_fnv.count(key) == 1);
            CHECK_MESSAGE(fnv1a64(y.data(), y.size() * 4) == g.dequant_fnv.at(key), F::name, " ", name,
                          ": dequantized values differ from ggml's (hash)");
        }
    }
}

// ---- round-trip bounds -------------------------------------------------------------------------

// Slack for the float arithmetic around a grid of magnitude `mag`: the quantizer's x * id and
// + offset, the decoder's product and add each round by at most half an ulp of a value below
// 2 mag, so 4 roundings of 2^-24 * 2 mag.
float slack(float mag) {
    return 4.0f * 2.0f * mag * 0x1p-24f;
}

// Distance from v to [lo, hi].
float outside(float v, float lo, float hi) {
    return v < lo ? lo - v : (v > hi ? v - hi : 0.0f);
}

// Random inputs of the kinds the golden file has, in more blocks: each run of `unit` values is
// normal, tiny (1e-3), large (300) or negative-dominated, and every 32 values have one outlier.
std::vector<float> random_values(std::size_t n, std::size_t unit, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> kind(0, 3);
    std::vector<float> x(n);
    int k = 0;
    for (std::size_t b = 0; b < n / 32; ++b) {
        if (b % (unit / 32) == 0) {
            k = kind(rng);
        }
        const float scale = k == 1 ? 1e-3f : (k == 2 ? 300.0f : 1.0f);
        for (std::size_t j = 0; j < 32; ++j) {
            float v = normal(rng) * scale;
            x[32 * b + j] = k == 3 ? -std::fabs(v) - 0.5f : v;
        }
        x[32 * b + rng() % 32] *= 25.0f;  // an outlier
    }
    return x;
}

// The one-scale formats: element j of a block decodes to d' * (q - zero) + m' (m' = 0 for the
// symmetric ones), where d' = f16(d) and m' = f16(m) are what the block stores and d, m the
// float scale and minimum the quantizer computed from the block. The quantizer picks the
// nearest code (to x / d) within [0, qmax], so against the exact grid of d and m the error is
// at most d / 2 plus the distance from x to the grid's range; storing d and m in f16 moves
// every level by at most qmax |d - d'| + |m - m'|. Bound per element:
//   dist(x, [m + (0 - zero) d, m + (qmax - zero) d]) + d / 2 + qmax |d - d'| + |m - m'| + slack.
// The range covers the block except, for Q4_0 / Q5_0, values beyond (qmax - zero + 1/2) d on the
// side opposite the largest magnitude (d = max / -(zero)): those saturate at qmax.
template <class F>
void check_one_scale_bound(int zero, int qmax, bool with_min, std::span<const float> x) {
    const auto blocks = q::quantize<F>(x);
    const auto y = q::dequantize<F>(std::span<const typename F::block>(blocks));
    for (std::size_t b = 0; b < blocks.size(); ++b) {
        const float* xb = x.data() + b * 32;
        float d = 0.0f;
        float m = 0.0f;
        float mag = 0.0f;
        if (with_min) {
            const float mn = *std::min_element(xb, xb + 32);
            const float mx = *std::max_element(xb, xb + 32);
            d = (mx - mn) / static_cast<float>(qmax);
            m = mn;
            mag = std::max(std::fabs(mn), std::fabs(mx));
        } else {
            float amax = 0.0f;
            const float max = q::detail::signed_absmax(xb, 32, amax);
            d = zero == 0 ? amax / static_cast<float>(qmax)
                          : max / static_cast<float>(-zero);  // Q8: amax / 127
            mag = amax;
        }
        const float stored_d = static_cast<float>(blocks[b].d);
        float stored_m = 0.0f;
        if constexpr (requires { blocks[b].m; }) {
            stored_m = static_cast<float>(blocks[b].m);
        }
        const float ad = std::fabs(d);
        const float lo = std::min(m - static_cast<float>(zero) * d, m + static_cast<float>(qmax - zero) * d);
        const float hi = std::max(m - static_cast<float>(zero) * d, m + static_cast<float>(qmax - zero) * d);
        for (std::size_t j = 0; j < 32; ++j) {
            const float err = std::fabs(y[b * 32 + j] - xb[j]);
            const float bound = outside(xb[j], lo, hi) + ad / 2 +
                                static_cast<float>(qmax) * std::fabs(d - stored_d) + std::fabs(m - stored_m) +
                                slack(mag);
            CHECK_MESSAGE(err <= bound, F::name, ": block ", b, " x[", j, "] = ", xb[j], " decodes to ",
                          y[b * 32 + j], ", error ", err, " > bound ", bound);
        }
    }
}

// The K formats: group g of a super-block decodes code c to dg * c - mg (asymmetric) or
// dg * (c - zero) (symmetric), dg and mg from the stored scales. After choosing the group
// scales the reference re-codes every value of a group with dg != 0 to the nearest code of that
// stored grid, so the error is at most dg / 2 plus the distance from x to the grid's range.
// (Groups whose quantized scale is 0 keep the codes of the search and decode to -mg; they hold
// values below half a scale step of the super-block and are counted, not bounded, here.)
struct group_grid {
    float dg, mg;  // value = dg * (c - zero) - mg
    int zero, qmax;
};

template <class F, class Grid>
void check_k_bound(std::span<const float> x, std::size_t group, Grid grid_of) {
    const auto blocks = q::quantize<F>(x);
    const auto y = q::dequantize<F>(std::span<const typename F::block>(blocks));
    std::size_t checked = 0;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
        for (std::size_t g = 0; g < q::qk_k / group; ++g) {
            const group_grid gr = grid_of(blocks[b], static_cast<int>(g));
            if (gr.dg == 0.0f) {
                continue;
            }
            const float a = gr.dg * static_cast<float>(0 - gr.zero) - gr.mg;
            const float c = gr.dg * static_cast<float>(gr.qmax - gr.zero) - gr.mg;
            const float lo = std::min(a, c);
            const float hi = std::max(a, c);
            for (std::size_t l = 0; l < group; ++l) {
                const std::size_t e = b * q::qk_k + g * group + l;
                const float err = std::fabs(y[e] - x[e]);
                const float mag = std::max({std::fabs(lo), std::fabs(hi), std::fabs(x[e])});
                const float bound = outside(x[e], lo, hi) + std::fabs(gr.dg) / 2 + slack(mag);
                CHECK_MESSAGE(err <= bound, F::name, ": x[", e, "] = ", x[e], " decodes to ", y[e],
                              ", error ", err, " > bound ", bound);
                ++checked;
            }
        }
    }
    CHECK(checked > x.size() / 2);  // the bound covered most values
}

// A user-written format: 4 values per block, int8 codes with a float scale (for the concept).
struct user_q8x4 {
    struct block {
        float d;
        std::int8_t q[4];
    };
    static constexpr std::size_t block_size = 4;
    static constexpr std::string_view name = "user_q8x4";
    static void quantize_block(const float* x, block& b) noexcept {
        float amax = 0.0f;
        for (int i = 0; i < 4; ++i) {
            amax = std::max(amax, std::fabs(x[i]));
        }
        b.d = amax / 127.0f;
        for (int i = 0; i < 4; ++i) {
            b.q[i] = static_cast<std::int8_t>(b.d != 0.0f ? std::lround(x[i] / b.d) : 0);
        }
    }
    static void dequantize_block(const block& b, float* y) noexcept {
        for (int i = 0; i < 4; ++i) {
            y[i] = b.d * b.q[i];
        }
    }
};

struct not_a_format {
    using block = int;
    static constexpr std::size_t block_size = 4;
};

}  // namespace

TEST_CASE("block layouts match GGUF sizes and field offsets") {
    static_assert(q::ggml_format<q::q4_0> && q::ggml_format<q::q8_k> && q::block_format<user_q8x4>);
    static_assert(!q::block_format<not_a_format> && !q::ggml_format<user_q8x4>);
    // Field offsets ggml's structs have (the scales first or last as GGUF stores them).
    CHECK(offsetof(q::block_q4_0, qs) == 2);
    CHECK(offsetof(q::block_q5_0, qh) == 2);
    CHECK(offsetof(q::block_q5_0, qs) == 6);
    CHECK(offsetof(q::block_q5_1, qh) == 4);
    CHECK(offsetof(q::block_q8_1, qs) == 4);
    CHECK(offsetof(q::block_q2_k, qs) == 16);
    CHECK(offsetof(q::block_q2_k, d) == 80);
    CHECK(offsetof(q::block_q3_k, qs) == 32);
    CHECK(offsetof(q::block_q3_k, scales) == 96);
    CHECK(offsetof(q::block_q3_k, d) == 108);
    CHECK(offsetof(q::block_q4_k, scales) == 4);
    CHECK(offsetof(q::block_q4_k, qs) == 16);
    CHECK(offsetof(q::block_q5_k, qh) == 16);
    CHECK(offsetof(q::block_q5_k, qs) == 48);
    CHECK(offsetof(q::block_q6_k, qh) == 128);
    CHECK(offsetof(q::block_q6_k, scales) == 192);
    CHECK(offsetof(q::block_q6_k, d) == 208);
    CHECK(offsetof(q::block_q8_k, qs) == 4);
    CHECK(offsetof(q::block_q8_k, bsums) == 260);
}

TEST_CASE("fitting_type: the asked type where its block divides the rows, else llama.cpp's fallback chain") {
    using t = llm::io::ggml_type;
    CHECK(llm::quant::fitting_type(t::q4_k, 4096) == t::q4_k);
    CHECK(llm::quant::fitting_type(t::q4_k, 96) == t::q5_0);   // 96 % 256 != 0, 96 % 32 == 0
    CHECK(llm::quant::fitting_type(t::q5_k, 96) == t::q5_1);
    CHECK(llm::quant::fitting_type(t::q6_k, 96) == t::q8_0);
    CHECK(llm::quant::fitting_type(t::q2_k, 64) == t::q4_0);
    CHECK(llm::quant::fitting_type(t::q3_k, 64) == t::q4_0);
    CHECK(llm::quant::fitting_type(t::q4_k, 48) == t::f16);    // not even a 32-block
    CHECK(llm::quant::fitting_type(t::q8_0, 48) == t::f16);
    CHECK(llm::quant::fitting_type(t::q8_0, 64) == t::q8_0);
    static_assert(llm::quant::fitting_type(t::q6_k, 256) == t::q6_k);
}

TEST_CASE("nearest_int rounds half to even like ggml, round_i8 half away from zero") {
    CHECK(q::detail::nearest_int(2.5f) == 2);
    CHECK(q::detail::nearest_int(3.5f) == 4);
    CHECK(q::detail::nearest_int(-2.5f) == -2);
    CHECK(q::detail::nearest_int(-0.5f) == 0);
    CHECK(q::detail::nearest_int(4194303.0f) == 4194303);
    CHECK(q::detail::round_i8(2.5f) == 3);
    CHECK(q::detail::round_i8(-2.5f) == -3);
    CHECK(q::detail::trunc_i8(std::numeric_limits<float>::quiet_NaN()) == 0);  // x86's INT32_MIN, low byte
    CHECK(q::detail::trunc_i32(std::numeric_limits<float>::infinity()) == INT32_MIN);
}

TEST_CASE("Q4_0 bytes and values equal ggml's") {
    check_golden<q::q4_0>();
}
TEST_CASE("Q4_1 bytes and values equal ggml's") {
    check_golden<q::q4_1>();
}
TEST_CASE("Q5_0 bytes and values equal ggml's") {
    check_golden<q::q5_0>();
}
TEST_CASE("Q5_1 bytes and values equal ggml's") {
    check_golden<q::q5_1>();
}
TEST_CASE("Q8_0 bytes and values equal ggml's") {
    check_golden<q::q8_0>();
}
TEST_CASE("Q8_1 bytes and values equal ggml's") {
    check_golden<q::q8_1>();
}
TEST_CASE("Q2_K bytes and values equal ggml's") {
    check_golden<q::q2_k>();
}
TEST_CASE("Q3_K bytes and values equal ggml's") {
    check_golden<q::q3_k>();
}
TEST_CASE("Q4_K bytes and values equal ggml's") {
    check_golden<q::q4_k>();
}
TEST_CASE("Q5_K bytes and values equal ggml's") {
    check_golden<q::q5_k>();
}
TEST_CASE("Q6_K bytes and values equal ggml's") {
    check_golden<q::q6_k>();
}
TEST_CASE("Q8_K bytes and values equal ggml's") {
    check_golden<q::q8_k>();
}

TEST_CASE("one-scale formats: every value within the grid's rounding bound") {
    const auto x = random_values(32 * 200, 32, 7);
    check_one_scale_bound<q::q4_0>(8, 15, false, x);
    check_one_scale_bound<q::q5_0>(16, 31, false, x);
    check_one_scale_bound<q::q4_1>(0, 15, true, x);
    check_one_scale_bound<q::q5_1>(0, 31, true, x);
    check_one_scale_bound<q::q8_0>(0, 127, false, x);
    check_one_scale_bound<q::q8_1>(0, 127, false, x);
}

TEST_CASE("K formats: every value at the nearest level of its group's stored grid") {
    const auto x = random_values(q::qk_k * 24, q::qk_k, 11);
    check_k_bound<q::q2_k>(x, 16, [](const q::block_q2_k& b, int g) {
        return group_grid{static_cast<float>(b.d) * static_cast<float>(b.scales[g] & 0xF),
                          static_cast<float>(b.dmin) * static_cast<float>(b.scales[g] >> 4), 0, 3};
    });
    check_k_bound<q::q3_k>(x, 16, [](const q::block_q3_k& b, int g) {
        return group_grid{static_cast<float>(b.d) * static_cast<float>(q::detail::scale_q3_k(b.scales, g)),
                          0.0f, 4, 7};
    });
    const auto k4 = [](int qmax) {
        return [qmax](const auto& b, int g) {
            std::uint8_t sc = 0;
            std::uint8_t m = 0;
            q::detail::scale_min_k4(g, b.scales, sc, m);
            return group_grid{static_cast<float>(b.d) * sc, static_cast<float>(b.dmin) * m, 0, qmax};
        };
    };
    check_k_bound<q::q4_k>(x, 32, k4(15));
    check_k_bound<q::q5_k>(x, 32, k4(31));
    check_k_bound<q::q6_k>(x, 16, [](const q::block_q6_k& b, int g) {
        return group_grid{static_cast<float>(b.d) * static_cast<float>(b.scales[g]), 0.0f, 32, 63};
    });
    // Q8_K: one float scale d = max / -127 for all 256 values, codes in [-128, 127].
    check_k_bound<q::q8_k>(x, q::qk_k, [](const q::block_q8_k& b, int) {
        return group_grid{b.d, 0.0f, 128, 255};
    });
}

TEST_CASE("a user-written format works through quantize and dequantize") {
    const std::vector<float> x{1.0f, -2.0f, 0.5f, 127.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    const auto blocks = q::quantize<user_q8x4>(x);
    REQUIRE(blocks.size() == 2);
    const auto y = q::dequantize<user_q8x4>(std::span<const user_q8x4::block>(blocks));
    CHECK(y[3] == 127.0f);
    CHECK(y[4] == 0.0f);
    CHECK(std::fabs(y[1] + 2.0f) <= 0.5f * 127.0f / 127.0f);
}

TEST_CASE("quantize and dequantize reject bad sizes and non-finite values, naming them") {
    std::vector<float> x(64, 1.0f);
    std::vector<q::block_q8_0> blocks(2);
    CHECK_THROWS_WITH_AS(
        q::quantize<q::q8_0>(std::span<const float>(x.data(), 33), blocks),
        doctest::Contains("quantize<q8_0>: 33 values are not a multiple of the block size 32"), llm::error);
    CHECK_THROWS_WITH_AS(q::quantize<q::q8_0>(x, std::span<q::block_q8_0>(blocks.data(), 1)),
                         doctest::Contains("quantize<q8_0>: y has 1 blocks but x (64 values) needs 2"),
                         llm::error);
    x[37] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(q::quantize<q::q8_0>(x, blocks), doctest::Contains("x[37] = nan is not finite"),
                         llm::error);
    x[37] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(q::quantize<q::q4_k>(std::span<const float>(x)),
                         doctest::Contains("quantize<q4_K>: 64 values"), llm::error);
    std::vector<float> big(256, 1.0f);
    big[255] = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(q::quantize<q::q4_k>(std::span<const float>(big)), doctest::Contains("x[255] = inf"),
                         llm::error);
    std::vector<float> y(63);
    CHECK_THROWS_WITH_AS(
        q::dequantize<q::q8_0>(std::span<const q::block_q8_0>(blocks), y),
        doctest::Contains("dequantize<q8_0>: y has 63 values but x (2 blocks of 32) decodes to 64"),
        llm::error);
    std::vector<float> empty_y;
    q::dequantize<q::q8_0>(std::span<const q::block_q8_0>(), empty_y);  // zero blocks: nothing to do
    CHECK(q::blocks_for<q::q6_k>(512) == 2);
}

TEST_CASE("blocks whose scale underflows or whose inverse overflows stay defined") {
    // max |x| = 2^-130: d = max / 127 is subnormal and 1 / d overflows to inf; the reference
    // (C with undefined float -> int conversions) gives code 0 on x86; we give that, defined.
    std::vector<float> x(256, 0.0f);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = (i % 3 == 0 ? -1.0f : 0.5f) * 0x1p-130f;
    }
    const auto b8 = q::quantize<q::q8_0>(x);
    CHECK(b8[0].d.bits() == 0);
    const auto y = q::dequantize<q::q4_k>(std::span<const q::block_q4_k>(q::quantize<q::q4_k>(x)));
    for (float v : y) {
        CHECK(std::fabs(v) <= 0x1p-129f);
    }
}
