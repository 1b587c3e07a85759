// SPDX-License-Identifier: Apache-2.0
// Fuzz harness: encode/decode round trip of arbitrary bytes through every pre-tokenizer and both BPE kinds.
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/decode.hpp>
#include <llm/tokenizer/sp_bpe.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

// A small vocabulary: every byte, plus merges of frequent ASCII pairs and triples, so the
// merge loops run on every input.
std::vector<std::pair<std::string, std::uint32_t>> small_vocab() {
    std::vector<std::pair<std::string, std::uint32_t>> v;
    for (int b = 0; b < 256; ++b) v.emplace_back(std::string(1, static_cast<char>(b)), static_cast<std::uint32_t>(v.size()));
    for (const char* s : {"th", "he", "the", " t", " the", "in", "ing", "an", "  ", "   ", "\n\n", "ab", "abc", "aa", "aaa", "aaaa", "\xc3\xa9"}) {
        v.emplace_back(s, static_cast<std::uint32_t>(v.size()));
    }
    return v;
}

const llm::tokenizer::byte_bpe& byte_level(int k) {
    static const llm::tokenizer::byte_bpe encs[3] = {
        llm::tokenizer::byte_bpe({"r50k", llm::tokenizer::pattern::r50k, small_vocab(), {{"<|eot|>", 1000}}, {}, false}),
        llm::tokenizer::byte_bpe({"cl100k", llm::tokenizer::pattern::cl100k, small_vocab(), {{"<|eot|>", 1000}}, {}, false}),
        llm::tokenizer::byte_bpe({"o200k", llm::tokenizer::pattern::o200k, small_vocab(), {{"<|eot|>", 1000}}, {}, false}),
    };
    return encs[k];
}

const llm::tokenizer::sp_bpe& sentencepiece() {
    static const llm::tokenizer::sp_bpe sp = [] {
        llm::tokenizer::sp_bpe_spec spec;
        spec.name = "sp";
        for (int b = 0; b < 256; ++b) {
            char name[8];
            std::snprintf(name, sizeof name, "<0x%02X>", b);
            spec.pieces.emplace_back(name, static_cast<std::uint32_t>(b));
        }
        for (const char* s : {"\xe2\x96\x81", "a", "b", "c", "\xe2\x96\x81" "a", "ab", "abc", "\xc3\xa9"}) {
            spec.pieces.emplace_back(s, static_cast<std::uint32_t>(spec.pieces.size()));
        }
        spec.scores.assign(spec.pieces.size(), 0.0f);
        for (std::size_t k = 256; k < spec.scores.size(); ++k) spec.scores[k] = -static_cast<float>(k);
        return llm::tokenizer::sp_bpe(std::move(spec));
    }();
    return sp;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        for (int k = 0; k < 3; ++k) {
            const auto& enc = byte_level(k);
            llm::tokenizer::encode_context ctx;
            std::vector<std::uint32_t> ids;
            enc.encode(text, ids, llm::tokenizer::special_policy::all(), ctx);
            if (enc.decode_bytes(ids) != text) __builtin_trap();
            // Streaming decode equals whole decode.
            llm::tokenizer::utf8_stream s;
            std::string streamed;
            for (const auto id : ids) streamed += s.push(enc.token_bytes(id));
            streamed += s.finish();
            if (streamed != llm::tokenizer::to_utf8(text)) __builtin_trap();
            // The fast merge equals the reference on the whole input as one piece.
            std::vector<std::uint32_t> fast, ref;
            enc.encode_piece_uncached(text.substr(0, 512), fast, ctx, false);
            enc.encode_piece_uncached(text.substr(0, 512), ref, ctx, true);
            if (fast != ref) __builtin_trap();
        }
        const auto& sp = sentencepiece();
        const auto ids = sp.encode(text);
        // U+2581 in the input decodes as the space it stands for.
        std::string expect(text);
        for (std::size_t at; (at = expect.find("\xe2\x96\x81")) != std::string::npos;) expect.replace(at, 3, " ");
        if (sp.decode_bytes(ids) != expect) __builtin_trap();
    } catch (const llm::error&) {
        __builtin_trap();  // every vocabulary here covers every byte: nothing may fail
    }
    return 0;
}
