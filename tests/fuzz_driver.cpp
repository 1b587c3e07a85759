// SPDX-License-Identifier: Apache-2.0
// Replays a libFuzzer harness without libFuzzer: the seed files, then deterministic mutations.
//
// Usage: fuzz_replay_<name> --seeds DIR [--iterations N] [--max-len BYTES] [--seed S]
// DIR must hold at least one seed file (otherwise exit 2 with a message). Every seed file is run as is, then N inputs made by mutating seeds (bit flips, byte
// insertions and deletions, truncation, splicing two seeds, random bytes). The harness decides
// what is a bug (it catches llm::error itself); a crash or sanitizer report fails the test.
// This keeps a short fuzz pass in every build, including the g++ ones where libFuzzer is absent.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

using bytes = std::vector<std::uint8_t>;

// The seed files of `dir`, in name order. A missing, unreadable or empty directory is an error
// (exit 2 with a message): without seeds the mutations start from nothing and the pass would
// test almost nothing while still reporting success.
std::vector<bytes> read_seeds(const std::filesystem::path& dir) {
    std::vector<bytes> seeds;
    if (dir.empty()) {
        std::fprintf(stderr, "fuzz driver: no seed directory given (--seeds DIR is required)\n");
        std::exit(2);
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        std::fprintf(stderr, "fuzz driver: seed directory '%s' does not exist or is not a directory\n", dir.string().c_str());
        std::exit(2);
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.is_regular_file()) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());  // directory order is not deterministic
    for (const auto& file : files) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "fuzz driver: cannot read seed file '%s'\n", file.string().c_str());
            std::exit(2);
        }
        seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (seeds.empty()) {
        std::fprintf(stderr, "fuzz driver: seed directory '%s' has no seed files\n", dir.string().c_str());
        std::exit(2);
    }
    return seeds;
}

bytes mutate(const std::vector<bytes>& seeds, std::mt19937_64& rng, std::size_t max_len) {
    auto pick = [&](std::size_t n) { return n == 0 ? std::size_t{0} : std::size_t(rng() % n); };
    bytes out = seeds.empty() ? bytes{} : seeds[pick(seeds.size())];
    const std::size_t steps = 1 + pick(8);
    for (std::size_t s = 0; s < steps; ++s) {
        switch (pick(7)) {
            case 0:  // flip one bit
                if (!out.empty()) {
                    out[pick(out.size())] ^= std::uint8_t(1u << pick(8));
                }
                break;
            case 1:  // overwrite a byte with an interesting value
                if (!out.empty()) {
                    static constexpr std::uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, '"', '\\',
                                                                   '{', '}', '\n', ' ', 0xc3, 0xe2};
                    out[pick(out.size())] = interesting[pick(std::size(interesting))];
                }
                break;
            case 2:  // insert random bytes
                for (std::size_t k = 0, n = 1 + pick(16); k < n; ++k) {
                    out.insert(out.begin() + std::ptrdiff_t(pick(out.size() + 1)), std::uint8_t(rng()));
                }
                break;
            case 3:  // delete a range
                if (!out.empty()) {
                    const std::size_t at = pick(out.size());
                    const std::size_t n = 1 + pick(std::min<std::size_t>(out.size() - at, 64));
                    out.erase(out.begin() + std::ptrdiff_t(at), out.begin() + std::ptrdiff_t(at + n));
                }
                break;
            case 4:  // truncate
                out.resize(pick(out.size() + 1));
                break;
            case 5:  // splice a piece of another seed
                if (!seeds.empty()) {
                    const bytes& other = seeds[pick(seeds.size())];
                    if (!other.empty()) {
                        const std::size_t from = pick(other.size());
                        const std::size_t n = 1 + pick(other.size() - from);
                        out.insert(out.begin() + std::ptrdiff_t(pick(out.size() + 1)), other.begin() + std::ptrdiff_t(from),
                                   other.begin() + std::ptrdiff_t(from + n));
                    }
                }
                break;
            default:  // duplicate a range (repetition finds quadratic paths and length bugs)
                if (!out.empty()) {
                    const std::size_t at = pick(out.size());
                    const std::size_t n = 1 + pick(std::min<std::size_t>(out.size() - at, 256));
                    bytes piece(out.begin() + std::ptrdiff_t(at), out.begin() + std::ptrdiff_t(at + n));
                    out.insert(out.begin() + std::ptrdiff_t(at), piece.begin(), piece.end());
                }
                break;
        }
    }
    if (out.size() > max_len) {
        out.resize(max_len);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::filesystem::path seed_dir;
    std::size_t iterations = 2000;
    std::size_t max_len = 1 << 16;
    std::uint64_t seed = 20261123;
    for (int i = 1; i < argc; i += 2) {
        const std::string flag = argv[i];
        if (i + 1 == argc) {
            std::fprintf(stderr, "fuzz driver: flag %s has no value\n", flag.c_str());
            return 2;
        }
        const char* value = argv[i + 1];
        if (flag == "--seeds") {
            seed_dir = value;
        } else if (flag == "--iterations") {
            iterations = std::strtoull(value, nullptr, 10);
        } else if (flag == "--max-len") {
            max_len = std::strtoull(value, nullptr, 10);
        } else if (flag == "--seed") {
            seed = std::strtoull(value, nullptr, 10);
        } else {
            std::fprintf(stderr, "fuzz driver: unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    const std::vector<bytes> seeds = read_seeds(seed_dir);
    for (const bytes& s : seeds) {
        LLVMFuzzerTestOneInput(s.data(), s.size());
    }
    std::mt19937_64 rng(seed);
    for (std::size_t i = 0; i < iterations; ++i) {
        const bytes input = mutate(seeds, rng, max_len);
        LLVMFuzzerTestOneInput(input.data(), input.size());
    }
    std::printf("fuzz driver: %zu seeds, %zu mutated inputs, no crash\n", seeds.size(), iterations);
    return 0;
}
