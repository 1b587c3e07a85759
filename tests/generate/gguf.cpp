// SPDX-License-Identifier: Apache-2.0
// GGUF models in llama.cpp's layout (written by tests/golden/generate/make_gguf.py with gguf-py
// as convert_hf_to_gguf.py writes them): the same greedy tokens as the Hugging Face checkpoints;
// bad files are clear errors.
#include "common.hpp"

#include <llm/generate/generate.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/tokenizer/tokenizer.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"

namespace {
template <class M, class P>
std::vector<std::int32_t> greedy(const M& m, const P& p, const std::vector<std::int32_t>& prompt, std::size_t n) {
    llm::generate::engine<M, typename P::element_type> eng(m, p, {.slots = 1, .context = 32});
    eng.add(prompt, {.max_tokens = n}, llm::generate::make_sampler({}));
    std::vector<std::int32_t> out;
    while (!eng.idle()) for (const auto& e : eng.step(llm::parallel::sequential{})) out.push_back(e.token);
    return out;
}
std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("gguf: Qwen2 in f32 gives transformers' greedy tokens; f16 weights load and agree on most") {
    const auto cases = gen_test::goldens("qwen2");
    llm::generate::open_gguf("tests/golden/generate/qwen2.gguf", [&](const auto& m, const auto& p, const auto& cfg) {
        CHECK(cfg.architecture == "qwen2");
        CHECK(cfg.dims.qkv_bias);
        CHECK(cfg.dims.tie_embeddings);
        for (const auto& c : cases) CHECK(greedy(m, p, c.prompt, 16) == c.greedy);
        return 0;
    });
    llm::generate::open_gguf("tests/golden/generate/qwen2-f16.gguf", [&](const auto& m, const auto& p, const auto&) {
        // f16 rounding (relative 2^-11 per weight) may flip a near tie late in a 16-token run:
        // the first token of each case must agree.
        for (const auto& c : cases) CHECK(greedy(m, p, c.prompt, 1)[0] == c.greedy[0]);
        return 0;
    });
}

TEST_CASE("gguf: architecture llama with permuted Q/K rows gives the HF checkpoint's tokens") {
    // Mistral's tiny checkpoint without its sliding window (llama.cpp's llama has none)
    auto cfg = llm::model::from_hf_config(gen_test::model_dir("mistral") + "/config.json");
    cfg.dims.sliding_window = 0;
    const llm::model::llama<> hm(cfg.dims);
    auto hp = hm.make_params<float>();
    llm::model::load_safetensors(hp, gen_test::model_dir("mistral") + "/model.safetensors");
    llm::generate::open_gguf("tests/golden/generate/mistral.gguf", [&](const auto& m, const auto& p, const auto& gc) {
        CHECK(gc.architecture == "llama");
        for (const auto& c : gen_test::goldens("mistral")) CHECK(greedy(m, p, c.prompt, 16) == greedy(hm, hp, c.prompt, 16));
        return 0;
    });
}

TEST_CASE("gguf: unknown architecture, missing or wrong-shape tensor, truncated file: clear llm::error") {
    const std::string good = slurp("tests/golden/generate/qwen2.gguf");
    auto load = [](const std::string& bytes) {
        const auto f = llm::io::gguf_file::parse(bytes, "test.gguf");
        llm::generate::open_gguf(f, "test.gguf", [](const auto&...) { return 0; });
    };
    auto replaced = [&](const std::string& from, const std::string& to) {
        REQUIRE(from.size() == to.size());
        std::string b = good;
        const auto at = b.find(from);
        REQUIRE(at != std::string::npos);
        b.replace(at, from.size(), to);
        return b;
    };
    CHECK_NOTHROW(load(good));
    // "qwen2" -> "qwen9" in general.architecture (the first occurrence)
    CHECK_THROWS_WITH_AS(load(replaced("qwen2", "qwen9")), doctest::Contains("architecture 'qwen9' is not supported"), llm::error);
    CHECK_THROWS_WITH_AS(load(replaced("blk.1.ffn_down.weight", "blk.1.ffn_dowX.weight")), doctest::Contains("blk.1.ffn_down.weight"),
                         llm::error);
    // a wrong shape: the file's feed_forward_length disagrees with the tensors
    {
        std::string b = good;
        const std::string key = "qwen2.feed_forward_length";
        const auto at = b.find(key);
        REQUIRE(at != std::string::npos);
        b[at + key.size() + 4] = 40;  // after the u32 type tag: the value 48 -> 40
        CHECK_THROWS_WITH_AS(load(b), doctest::Contains("feed_forward_length"), llm::error);
    }
    CHECK_THROWS_AS(load(good.substr(0, good.size() - 100)), llm::error);
    CHECK_THROWS_AS(load(good.substr(0, 200)), llm::error);
}

// Files written by llama.cpp's own convert_hf_to_gguf.py (tests/golden/generate/make_llamacpp_gguf.py:
// the tiny checkpoints with a 64-token byte-level BPE tokenizer added).
TEST_CASE("gguf: convert_hf_to_gguf.py's Qwen2 (f32, q8_0) and Mistral files give transformers' greedy tokens") {
    const auto cases = gen_test::goldens("qwen2");
    llm::generate::open_gguf("tests/golden/generate/llamacpp-qwen2-f32.gguf", [&](const auto& m, const auto& p, const auto& cfg) {
        CHECK(cfg.architecture == "qwen2");
        CHECK(cfg.dims.qkv_bias);
        CHECK(cfg.dims.tie_embeddings);
        for (const auto& c : cases) CHECK(greedy(m, p, c.prompt, 16) == c.greedy);
        return 0;
    });
    llm::generate::open_gguf("tests/golden/generate/llamacpp-qwen2-q8_0.gguf", [&](const auto& m, const auto& p, const auto&) {
        // Q8_0 rounds each weight by up to half a step (|w|max / 254 per block of 32): a near tie
        // may flip late in a run; the first token of each case must agree.
        for (const auto& c : cases) CHECK(greedy(m, p, c.prompt, 1)[0] == c.greedy[0]);
        return 0;
    });
    auto cfg = llm::model::from_hf_config(gen_test::model_dir("mistral") + "/config.json");
    cfg.dims.sliding_window = 0;  // llama.cpp's llama architecture has no window; the script drops it
    const llm::model::llama<> hm(cfg.dims);
    auto hp = hm.make_params<float>();
    llm::model::load_safetensors(hp, gen_test::model_dir("mistral") + "/model.safetensors");
    llm::generate::open_gguf("tests/golden/generate/llamacpp-mistral-f32.gguf", [&](const auto& m, const auto& p, const auto& gc) {
        CHECK(gc.architecture == "llama");
        CHECK(gc.dims.n_kv_heads == 2);
        for (const auto& c : gen_test::goldens("mistral")) CHECK(greedy(m, p, c.prompt, 16) == greedy(hm, hp, c.prompt, 16));
        return 0;
    });
    // its tokenizer.ggml.* opens as the BPE tokenizer of tiny-tokenizer/tokenizer.json
    const auto from_gguf = llm::tokenizer::load_tokenizer("tests/golden/generate/llamacpp-qwen2-f32.gguf");
    const auto from_json = llm::tokenizer::load_tokenizer("tests/golden/generate/tiny-tokenizer/tokenizer.json");
    const std::string text = "the cat sat on the mat, it is red.\nwe went";
    CHECK(from_gguf.encode(text) == from_json.encode(text));
    CHECK(from_gguf.encode(text).size() < text.size());  // merges applied
}

// Our converter against llama.cpp's: the same tensors byte for byte (names, types, shapes, the
// permuted Q/K rows of "llama", q8_0 blocks) and the same metadata except general.name /
// general.size_label (from the directory) and tokenizer.ggml.add_eos_token (gguf-py adds it).
TEST_CASE("convert_hf_to_gguf: the tiny Qwen2 (f32, q8_0) and Mistral files equal llama.cpp's convert_hf_to_gguf.py output") {
    llm_test::temp_dir tmp;
    const std::string tok = "tests/golden/generate/tiny-tokenizer/tokenizer.json";
    const std::pair<std::string, std::pair<std::string, llm::io::ggml_type>> cases[] = {
        {"llamacpp-qwen2-f32", {"qwen2", llm::io::ggml_type::f32}},
        {"llamacpp-qwen2-q8_0", {"qwen2", llm::io::ggml_type::q8_0}},
        {"llamacpp-mistral-f32", {"mistral", llm::io::ggml_type::f32}}};
    for (const auto& one : cases) {
        const std::string& ref_name = one.first;  // not a structured binding: CAPTURE's lambda (clang 14)
        const auto& what = one.second;
        CAPTURE(ref_name);
        const std::string out = (tmp.path / (ref_name + ".gguf")).string();
        const auto st = llm::generate::convert_hf_to_gguf(gen_test::model_dir(what.first), out, {.type = what.second, .tokenizer = tok});
        const auto ours = llm::io::gguf_file::open(out);
        const auto ref = llm::io::gguf_file::open("tests/golden/generate/" + ref_name + ".gguf");
        CHECK(st.tensors == ref.tensors().size());
        REQUIRE(ours.tensors().size() == ref.tensors().size());
        for (const auto& t : ref.tensors()) {
            CAPTURE(t.name);
            const auto* o = ours.find_tensor(t.name);
            REQUIRE(o != nullptr);
            CHECK(o->type == t.type);
            CHECK(o->shape() == t.shape());
            const auto a = ours.tensor_bytes(*o);
            const auto b = ref.tensor_bytes(t);
            CHECK((a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0));
        }
        std::size_t compared = 0;
        for (const auto& kv : ref.metadata()) {
            if (kv.key == "general.name" || kv.key == "general.size_label" || kv.key == "tokenizer.ggml.add_eos_token") continue;
            CAPTURE(kv.key);
            const auto* v = ours.find(kv.key);
            REQUIRE(v != nullptr);
            CHECK(v->type() == kv.value.type());
            if (kv.value.type() == llm::io::gguf_type::string) CHECK(v->as_string() == kv.value.as_string());
            if (kv.value.type() == llm::io::gguf_type::u32) CHECK(v->as<std::uint32_t>() == kv.value.as<std::uint32_t>());
            if (kv.value.type() == llm::io::gguf_type::f32) CHECK(v->as<float>() == kv.value.as<float>());
            if (kv.value.type() == llm::io::gguf_type::array && kv.value.element_type() == llm::io::gguf_type::string) {
                CHECK(v->as_strings().to_vector() == kv.value.as_strings().to_vector());
            }
            if (kv.value.type() == llm::io::gguf_type::array && kv.value.element_type() == llm::io::gguf_type::i32) {
                CHECK(v->as_array<std::int32_t>().to_vector() == kv.value.as_array<std::int32_t>().to_vector());
            }
            ++compared;
        }
        CHECK(compared >= 20);
    }
    // a type that is not written (a Mamba whose SSM sizes mamba<> does not hold: gguf_families.cpp)
    CHECK_THROWS_WITH_AS(llm::generate::convert_hf_to_gguf(gen_test::model_dir("qwen2"), (tmp.path / "g.gguf").string(),
                                                          {.type = llm::io::ggml_type::q8_1}),
                         doctest::Contains("is not written"), llm::error);
}
