// SPDX-License-Identifier: Apache-2.0
// The generate module: sampling, the continuous-batching engine, loading, speculative decoding.
#pragma once

#include <llm/generate/convert.hpp>
#include <llm/generate/engine.hpp>
#include <llm/generate/gguf_model.hpp>
#include <llm/generate/load.hpp>
#include <llm/generate/sampling.hpp>
#include <llm/generate/speculative.hpp>
