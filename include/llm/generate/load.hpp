// SPDX-License-Identifier: Apache-2.0
// Opening a Hugging Face checkpoint directory as the matching model family (run-time dims).
#pragma once

#include <llm/core/error.hpp>
#include <llm/model/model.hpp>

#include <filesystem>
#include <string>
#include <utility>

namespace llm::generate {

/// The weight file of a Hugging Face directory: model.safetensors, or the sharded
/// checkpoint's model.safetensors.index.json. Throws llm::error naming the directory when
/// neither exists.
/// Example: `auto w = llm::generate::hf_weights_path("tiny-llama");`
inline std::string hf_weights_path(const std::string& dir) {
    namespace fs = std::filesystem;
    const fs::path d(dir);
    if (fs::exists(d / "model.safetensors")) {
        return (d / "model.safetensors").string();
    }
    if (fs::exists(d / "model.safetensors.index.json")) {
        return (d / "model.safetensors.index.json").string();
    }
    llm::fail("generate::open_hf: ", dir, " holds neither model.safetensors nor model.safetensors.index.json");
}

/// Opens the Hugging Face directory `dir` (config.json and model.safetensors or a sharded
/// index) as its family with run-time dims, loads the fp32 parameters and calls
/// f(model, params, config), returning what f returns. Llama, Mistral and Qwen2 open as
/// llm::model::llama<> (one structure; the differences are dims options), GPT-2 as gpt2<>.
/// A missing or wrong-shape tensor, an unknown architecture or option, or a Mixtral or Mamba
/// checkpoint (not served by the engine yet) is llm::error.
/// Example: `llm::generate::open_hf("tiny", [](const auto& m, const auto& p, const auto& cfg) { ... });`
template <class F>
decltype(auto) open_hf(const std::string& dir, F&& f) {
    const auto cfg = model::from_hf_config((std::filesystem::path(dir) / "config.json").string());
    // from_hf_config knows these families, the engine does not serve them yet: say so here
    // rather than fail later on tensor names.
    llm::check(cfg.family != model::family::mixtral && cfg.family != model::family::mamba, "generate::open_hf: ", dir,
               " is a ", cfg.family == model::family::mamba ? "MambaForCausalLM" : "MixtralForCausalLM",
               " checkpoint; generation serves Llama, Mistral, Qwen2 and GPT-2 (load it with llm::model::load_safetensors "
               "into the family's model instead)");
    const std::string weights = hf_weights_path(dir);
    auto run = [&](auto tag) -> decltype(auto) {
        using M = typename decltype(tag)::type;
        const M m(cfg.dims);
        auto params = m.template make_params<float>();
        model::load_safetensors(params, weights);
        return std::forward<F>(f)(m, std::as_const(params), cfg);
    };
    if (cfg.family == model::family::gpt2) {
        return run(std::type_identity<model::gpt2<>>{});
    }
    return run(std::type_identity<model::llama<>>{});
}

}  // namespace llm::generate
