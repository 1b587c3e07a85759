// SPDX-License-Identifier: Apache-2.0
// Opening a Hugging Face checkpoint directory as the matching model family (run-time dims).
#pragma once

#include <llm/core/error.hpp>
#include <llm/model/mamba_family.hpp>
#include <llm/model/model.hpp>
#include <llm/moe/mixtral.hpp>

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
/// llm::model::llama<> (one structure; the differences are dims options), GPT-2 as gpt2<>,
/// Mixtral as llm::moe::mixtral<> (attention with a KV cache, the MoE FFN decoding through
/// moe_infer), Mamba as llm::model::mamba<> (a recurrent state per sequence, no KV cache: the
/// engine serves it without prefix reuse). f is instantiated for every one of these types.
/// A missing or wrong-shape tensor, an unknown architecture or option, or a Mamba checkpoint
/// whose state_size, conv_kernel or time_step_rank differ from mamba<>'s (16, 4,
/// ceil(hidden_size / 16)) is llm::error.
/// Example: `llm::generate::open_hf("tiny", [](const auto& m, const auto& p, const auto& cfg) { ... });`
template <class F>
decltype(auto) open_hf(const std::string& dir, F&& f) {
    const auto cfg = model::from_hf_config((std::filesystem::path(dir) / "config.json").string());
    if (cfg.family == model::family::mamba) {
        // mamba<>'s sizes that dims has no field for are template arguments: say which differs.
        using mixer = model::mamba_mixer_of<>;
        llm::check(cfg.ssm.state == 16 && cfg.ssm.conv == 4 && cfg.ssm.dt_rank == mixer::rank_for(cfg.dims.d_model), "generate::open_hf: ",
                   dir, " is a MambaForCausalLM checkpoint with state_size ", cfg.ssm.state, ", conv_kernel ", cfg.ssm.conv,
                   ", time_step_rank ", cfg.ssm.dt_rank, "; generation serves llm::model::mamba<> (16, 4, ",
                   mixer::rank_for(cfg.dims.d_model), ")");
    }
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
    if (cfg.family == model::family::mixtral) {
        return run(std::type_identity<moe::mixtral<>>{});
    }
    if (cfg.family == model::family::mamba) {
        return run(std::type_identity<model::mamba<>>{});
    }
    return run(std::type_identity<model::llama<>>{});
}

}  // namespace llm::generate
