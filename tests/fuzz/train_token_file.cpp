// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: llm.c token files (llm::train::token_file) on hostile bytes must be accepted or
// raise llm::error, never crash or read out of bounds; what is accepted reads every token, feeds
// the batch loader, and serializes back to the same bytes (header words 3..255 aside, which the
// format leaves unused).
#include <llm/tensor/tensor_view.hpp>
#include <llm/train/loader.hpp>
#include <llm/train/token_file.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span<const std::uint8_t>(data, size));
    std::optional<llm::train::token_file> parsed;
    try {
        parsed.emplace(llm::train::token_file::parse(bytes, "fuzz.bin"));
    } catch (const llm::error&) {
        return 0;
    }
    const llm::train::token_file& f = *parsed;
    std::vector<std::uint32_t> tokens(f.size());
    for (std::size_t i = 0; i < f.size(); ++i) tokens[i] = f[i];
    // Round trip: the same header words 0..2 and the same token bytes.
    const std::string out = f.version() == 1 ? [&] {
        std::vector<std::uint16_t> t16(tokens.begin(), tokens.end());
        return llm::train::serialize_token_file(std::span<const std::uint16_t>(t16), 1);
    }()
                                             : llm::train::serialize_token_file(std::span<const std::uint32_t>(tokens), 2);
    if (out.size() != size || std::memcmp(out.data(), data, 12) != 0 ||
        std::memcmp(out.data() + 1024, data + 1024, size - 1024) != 0)
        __builtin_trap();
    // The loader reads in bounds for every shape that fits.
    for (const std::size_t bt : {1u, 2u, 3u}) {
        try {
            llm::train::batch_loader loader(f, bt, bt, {.shuffle = bt == 2, .seed = 1});
            std::vector<std::int64_t> x(bt * bt), y(bt * bt);
            for (std::size_t k = 0; k < 3; ++k)
                loader.next(llm::tensor_view<std::int64_t, llm::dims<1>>(x.data(), x.size()),
                            llm::tensor_view<std::int64_t, llm::dims<1>>(y.data(), y.size()));
        } catch (const llm::error&) {
            if (f.size() > bt * bt) __builtin_trap();  // only a file without a batch may refuse
        }
    }
    return 0;
}
