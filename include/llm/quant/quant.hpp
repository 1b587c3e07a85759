// SPDX-License-Identifier: Apache-2.0
// Umbrella header of the block quantization formats: GGUF blocks, the built-in formats, quantize and
// dequantize, tensor_view accessors over blocks.
#pragma once

#include <llm/quant/accessor.hpp>
#include <llm/quant/basic_formats.hpp>
#include <llm/quant/channel.hpp>
#include <llm/quant/blocks.hpp>
#include <llm/quant/dequantize.hpp>
#include <llm/quant/format.hpp>
#include <llm/quant/isa.hpp>
#include <llm/quant/k_formats.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/nf4.hpp>
#include <llm/quant/quantize.hpp>
#include <llm/quant/simd_dequantize.hpp>
