// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: the GGUF model loader (llm::generate::open_gguf) on hostile bytes; a model it
// accepts decodes one token.
#include <llm/generate/gguf_model.hpp>
#include <llm/parallel/sequential.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    try {
        const auto file = llm::io::gguf_file::parse(bytes, "fuzz");
        llm::generate::open_gguf(file, "fuzz", [](const auto& m, const auto& p, const auto&) {
            auto st = m.make_state(1, 2);
            llm::tensor<float, llm::dims<2>> logits(1, m.config().vocab);
            llm::workspace ws;
            const std::int32_t id = 0;
            m.step(logits.view(), st, llm::model::token_ids(&id, 1), p, ws, llm::parallel::sequential{});
            return 0;
        });
    } catch (const llm::error&) {
    }
    return 0;
}
