// SPDX-License-Identifier: Apache-2.0
// Checkpoints and config.json: round trip, and bad input (wrong shape, missing and extra
// tensors, unknown architectures and options) as llm::error naming what is wrong.
#include <llm/model/model.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <unistd.h>
#include <string>

namespace {

const std::string golden_dir = "tests/golden/model/";

std::string temp_path(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / ("llm_model_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return (dir / name).string();
}

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const llm::error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("model checkpoint: save then load gives the same parameters; bf16 checkpoints convert") {
    const llm::model::dims d{.vocab = 19, .d_model = 8, .n_layers = 2, .n_heads = 2, .d_ff = 12, .qkv_bias = true};
    llm::model::qwen2<> m(d);
    auto p = m.make_params<float>();
    m.init(p, {.seed = 9});
    const std::string path = temp_path("roundtrip.safetensors");
    llm::model::save_safetensors(p, path);
    auto q = m.make_params<float>();
    llm::model::load_safetensors(q, path);
    std::size_t diff = 0;
    llm::model::for_each_tensor(
        [&](std::string_view, const auto& a, const auto& b) {
            for (std::size_t i = 0; i < a.size(); ++i) diff += a.data()[i] != b.data()[i];
        },
        p, q);
    CHECK(diff == 0);
    // bf16 parameters saved as BF16, read back into fp32 exactly
    auto pb = m.make_params<llm::bf16>();
    m.init(pb, {.seed = 9});
    llm::model::save_safetensors(pb, path);
    llm::model::load_safetensors(q, path);
    CHECK(q.embedding.weight(3, 2) == static_cast<float>(pb.embedding.weight(3, 2)));
}

TEST_CASE("model checkpoint: wrong shape, missing and extra tensors are llm::error naming the tensor") {
    const auto cfg = llm::model::from_hf_config(golden_dir + "llama/config.json");
    const std::string file = golden_dir + "llama/model.safetensors";
    {
        auto d = cfg.dims;
        d.d_ff = 40;  // the file's FFN is 48 wide
        llm::model::llama<> m(d);
        auto p = m.make_params<float>();
        const auto e = error_of([&] { llm::model::load_safetensors(p, file); });
        CHECK(contains(e, "model.layers.0.mlp.gate_proj.weight"));
        CHECK(contains(e, "[48, 32]"));
        CHECK(contains(e, "[40, 32]"));
    }
    {
        auto d = cfg.dims;
        d.qkv_bias = true;  // the file has no biases
        llm::model::llama<> m(d);
        auto p = m.make_params<float>();
        const auto e = error_of([&] { llm::model::load_safetensors(p, file); });
        CHECK(contains(e, "'model.layers.0.self_attn.q_proj.bias' is missing"));
    }
    {
        auto d = cfg.dims;
        d.tie_embeddings = true;  // the file has its own lm_head.weight
        llm::model::llama<> m(d);
        auto p = m.make_params<float>();
        const auto e = error_of([&] { llm::model::load_safetensors(p, file); });
        CHECK(contains(e, "1 tensor(s) the model does not have: 'lm_head.weight'"));
        // accepted when the caller says so
        llm::model::load_safetensors(p, file, {.ignore = {"lm_head.weight"}});
    }
    {
        auto d = cfg.dims;
        d.n_layers = 1;
        llm::model::llama<> m(d);
        auto p = m.make_params<float>();
        const auto e = error_of([&] { llm::model::load_safetensors(p, file); });
        CHECK(contains(e, "'model.layers.1.input_layernorm.weight'"));
    }
}

TEST_CASE("model hf config: unknown architectures and unsupported options are refused by name") {
    const std::string llama = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 32, "hidden_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 24)";
    CHECK(llm::model::from_hf_config_text(llama + "}", "c.json").dims.ff() == 24);
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(R"({"architectures": ["FalconForCausalLM"]})", "c.json"); }),
                   "architecture 'FalconForCausalLM' is not supported"));
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(R"({"vocab_size": 3})", "c.json"); }), "architectures"));
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(llama + R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4})" + "}", "c.json"); }),
                   "rope_scaling type 'yarn' is not supported"));
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(llama + R"(, "attention_bias": true})", "c.json"); }),
                   "attention_bias = 1 is not supported"));
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(llama + R"(, "hidden_act": "gelu"})", "c.json"); }),
                   "hidden_act = 'gelu' is not supported"));
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(llama + R"(, "num_key_value_heads": 3})", "c.json"); }),
                   "multiple of n_kv_heads = 3"));
    const std::string gpt2 = R"({"architectures": ["GPT2LMHeadModel"], "vocab_size": 32, "n_embd": 16, "n_layer": 1, "n_head": 2)";
    CHECK(llm::model::from_hf_config_text(gpt2 + "}", "c.json").dims.tie_embeddings);
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(gpt2 + R"(, "activation_function": "relu"})", "c.json"); }),
                   "activation_function = 'relu' is not supported"));
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(gpt2 + R"(, "scale_attn_by_inverse_layer_idx": true})", "c.json"); }),
                   "scale_attn_by_inverse_layer_idx"));
    CHECK(contains(error_of([&] { (void)llm::model::from_hf_config_text(R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 24, "use_sliding_window": true})", "c.json"); }),
                   "use_sliding_window"));
}
