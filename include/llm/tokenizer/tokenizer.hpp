// SPDX-License-Identifier: Apache-2.0
// llm::tokenizer::tokenizer: any supported vocabulary file behind one encode/decode interface, and load_tokenizer.
#pragma once

#include <llm/core/error.hpp>
#include <llm/io/file.hpp>
#include <llm/tokenizer/byte_bpe.hpp>
#include <llm/tokenizer/decode.hpp>
#include <llm/tokenizer/gguf_vocab.hpp>
#include <llm/tokenizer/gpt2_files.hpp>
#include <llm/tokenizer/hf_tokenizer.hpp>
#include <llm/tokenizer/limits.hpp>
#include <llm/tokenizer/sp_bpe.hpp>
#include <llm/tokenizer/tiktoken.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace llm::tokenizer {

/// A byte-level or SentencePiece-style BPE tokenizer behind one interface (a std::variant
/// inside: one branch per call, no virtual dispatch per piece). Thread-safe for concurrent
/// const calls with one encode_context per thread.
/// Example: `auto tok = llm::tokenizer::load_tokenizer("cl100k_base.tiktoken"); auto ids = tok.encode("hi");`
class tokenizer {
    // One branch instead of std::visit's table: both alternatives return the same type.
    template <class F>
    decltype(auto) visit(F&& f) const {
        if (const auto* b = std::get_if<byte_bpe>(&impl_)) return f(*b);
        return f(std::get<sp_bpe>(impl_));
    }

public:
    /// Wraps a loaded tokenizer.
    explicit tokenizer(any_bpe impl) : impl_(std::move(impl)) {}
    /// Wraps a byte-level BPE.
    tokenizer(byte_bpe b) : impl_(std::move(b)) {}
    /// Wraps a SentencePiece-style BPE.
    tokenizer(sp_bpe s) : impl_(std::move(s)) {}

    /// The tokenizer inside.
    const any_bpe& impl() const noexcept { return impl_; }
    /// Its name (usually the file it came from).
    const std::string& name() const noexcept { return visit([](const auto& t) -> const std::string& { return t.name(); }); }
    /// One more than the largest id.
    std::size_t n_vocab() const noexcept { return visit([](const auto& t) { return t.n_vocab(); }); }
    /// The special tokens.
    const std::vector<special_token>& specials() const noexcept {
        return visit([](const auto& t) -> const std::vector<special_token>& { return t.specials(); });
    }
    /// Id of a special token by its text.
    std::optional<std::uint32_t> special_id(std::string_view text) const noexcept {
        return visit([&](const auto& t) { return t.special_id(text); });
    }

    /// Appends the ids of `text` to `out` (see byte_bpe::encode / sp_bpe::encode).
    void encode(std::string_view text, std::vector<std::uint32_t>& out, const special_policy& policy, encode_context& ctx) const {
        visit([&](const auto& t) { t.encode(text, out, policy, ctx); });
    }
    /// The ids of `text` under `policy` (default: specials are plain text).
    std::vector<std::uint32_t> encode(std::string_view text, const special_policy& policy = {}) const {
        return visit([&](const auto& t) { return t.encode(text, policy); });
    }
    /// Bytes of one token as decode produces them.
    std::string_view token_bytes(std::uint32_t id) const { return visit([&](const auto& t) { return t.token_bytes(id); }); }
    /// Concatenated bytes of `ids`.
    std::string decode_bytes(std::span<const std::uint32_t> ids) const {
        return visit([&](const auto& t) { return t.decode_bytes(ids); });
    }
    /// Decoded text, ill-formed UTF-8 handled by `policy`.
    std::string decode(std::span<const std::uint32_t> ids, utf8_policy policy = utf8_policy::replace) const {
        return to_utf8(decode_bytes(ids), policy);
    }
    /// True when decoding drops one leading space (SentencePiece dummy prefix).
    bool strips_leading_space() const noexcept {
        return std::holds_alternative<sp_bpe>(impl_) && std::get<sp_bpe>(impl_).strips_leading_space();
    }

private:
    any_bpe impl_;
};

/// Streaming detokenizer for generation: push ids one at a time, get back text that never
/// ends inside a UTF-8 character; handles the SentencePiece leading space.
/// Example: `llm::tokenizer::decode_stream ds(tok); for (auto id : generated) std::cout << ds.push(id); std::cout << ds.finish();`
class decode_stream {
public:
    /// A stream over `tok` (which must outlive it).
    explicit decode_stream(const tokenizer& tok, utf8_policy policy = utf8_policy::replace)
        : tok_(&tok), utf8_(policy), strip_(tok.strips_leading_space()) {}

    /// The complete characters available after token `id` (possibly empty).
    std::string push(std::uint32_t id) {
        std::string_view bytes = tok_->token_bytes(id);
        if (strip_ && !bytes.empty()) {
            if (bytes[0] == ' ') bytes.remove_prefix(1);
            strip_ = false;
        }
        return utf8_.push(bytes);
    }
    /// Flushes the held-back bytes at the end of the stream.
    std::string finish() { return utf8_.finish(); }

private:
    const tokenizer* tok_;
    utf8_stream utf8_;
    bool strip_;
};

/// Loads any supported vocabulary file, detecting its format from the content:
/// - GGUF (magic "GGUF"): `tokenizer.ggml.*` metadata;
/// - JSON with a "model" member: Hugging Face tokenizer.json;
/// - other JSON: GPT-2 vocab.json, with merges.txt in the same directory;
/// - otherwise a tiktoken rank file: `encoding` names the built-in pattern and specials
///   (r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base, llama3); when empty, the file
///   name before its first '.' is tried (cl100k_base.tiktoken -> cl100k_base).
/// Text files over max_vocab_file_bytes (256 MiB; also /dev/zero, endless pipes) raise llm::error.
/// Example: `auto tok = llm::tokenizer::load_tokenizer("o200k_base.tiktoken");`
inline tokenizer load_tokenizer(const std::string& path, std::string_view encoding = {}) {
    if (io::read_file_prefix(path, 4, "load_tokenizer") == "GGUF") return tokenizer(load_gguf_tokenizer(path));
    const std::string data = io::read_file(path, max_vocab_file_bytes, "load_tokenizer");
    const std::size_t first = data.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && data[first] == '{') {
        const io::json_value doc = io::parse_json(data, path);
        if (const io::json_value* m = doc.find("model"); m && m->is_object()) return tokenizer(hf_tokenizer_from_document(doc, path));
        const std::string merges = (std::filesystem::path(path).parent_path() / "merges.txt").string();
        check(std::filesystem::exists(merges), "load_tokenizer: '", path, "' looks like a GPT-2 vocab.json but '", merges,
              "' does not exist");
        return tokenizer(gpt2_from_document(doc, io::read_file(merges, max_vocab_file_bytes, "load_tokenizer"), path, merges));
    }
    std::string name(encoding);
    if (name.empty()) {
        name = std::filesystem::path(path).filename().string();
        name = name.substr(0, name.find('.'));
        check(known_encoding(name).has_value(), "load_tokenizer: '", path,
              "' looks like a tiktoken rank file; name its encoding (r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base, llama3)");
    }
    return tokenizer(tiktoken_from_text(data, name, path));
}

}  // namespace llm::tokenizer
