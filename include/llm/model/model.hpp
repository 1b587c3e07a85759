// SPDX-License-Identifier: Apache-2.0
// The model module's public headers: the block contract, blocks, decoder, families, config.json and checkpoints.
#pragma once

#include <llm/model/arena.hpp>
#include <llm/model/attention_mixer.hpp>
#include <llm/model/block.hpp>
#include <llm/model/checkpoint.hpp>
#include <llm/model/config.hpp>
#include <llm/model/decoder.hpp>
#include <llm/model/embedding.hpp>
#include <llm/model/families.hpp>
#include <llm/model/ffn.hpp>
#include <llm/model/hf_config.hpp>
#include <llm/model/layer.hpp>
#include <llm/model/lora.hpp>
#include <llm/model/norm.hpp>
