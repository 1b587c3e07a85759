// SPDX-License-Identifier: Apache-2.0
// Umbrella header: includes every module's public headers.
#pragma once

#include <llm/config.hpp>
#include <llm/version.hpp>

// core: errors, element types, scalar maths
#include <llm/core/bf16.hpp>
#include <llm/core/element_type.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/fp8.hpp>
#include <llm/core/math.hpp>
#include <llm/core/saturate.hpp>
#include <llm/core/utf8.hpp>
#include <llm/core/workspace.hpp>

// tensor: extents, layouts, tensors and views
#include <llm/tensor/print.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/kernel_view.hpp>

// simd: backend facade (scalar, xsimd, Highway), cross-lane policies, shared vector maths
#include <llm/simd/lanes.hpp>
#include <llm/simd/math.hpp>
#include <llm/simd/simd.hpp>
#include <llm/simd/unroll.hpp>

// parallel: policies, thread pool, parallel_for / parallel_reduce
#include <llm/parallel/parallel.hpp>

// gemm and nn: dense GEMM (llm::gemm, backends in llm::blas) and NN primitives with backward
#include <llm/gemm/gemm.hpp>
#include <llm/nn/nn.hpp>

// io: file formats
#include <llm/io/atomic_file.hpp>
#include <llm/io/dtype.hpp>
#include <llm/io/file.hpp>
#include <llm/io/ggml_type.hpp>
#include <llm/io/gguf.hpp>
#include <llm/io/json.hpp>
#include <llm/io/jsonl.hpp>
#include <llm/io/safetensors.hpp>
#include <llm/quant/quant.hpp>

// tokenizer: tiktoken/HF-exact BPE, loaders, streaming decode, batch encode, trainer
#include <llm/tokenizer/batch.hpp>
#include <llm/tokenizer/tokenizer.hpp>
#include <llm/tokenizer/trainer.hpp>

// data: MinHash, LSH, dedup, Bloom filter, quality filters
#include <llm/data/bloom.hpp>
#include <llm/data/exact.hpp>
#include <llm/data/hash.hpp>
#include <llm/data/lsh.hpp>
#include <llm/data/lsh_params.hpp>
#include <llm/data/minhash.hpp>
#include <llm/data/near_dedup.hpp>
#include <llm/data/normalize.hpp>
#include <llm/data/oph.hpp>
#include <llm/data/quality.hpp>
#include <llm/data/shingle.hpp>
#include <llm/data/signer.hpp>
#include <llm/data/sketch.hpp>
#include <llm/data/synthetic.hpp>
#include <llm/data/union_find.hpp>

// align: sequence log-probs and preference losses
#include <llm/align/cpo.hpp>
#include <llm/align/dpo.hpp>
#include <llm/align/kto.hpp>
#include <llm/align/logprobs.hpp>
#include <llm/align/loss_by_name.hpp>
#include <llm/align/orpo.hpp>
#include <llm/align/pair_loss.hpp>
#include <llm/align/simpo.hpp>

// attention: reference, tiled flash forward/backward, masks, KV caches, decode
#include <llm/attention/attention.hpp>
#include <llm/attention/decode.hpp>
#include <llm/attention/kv_cache.hpp>
#include <llm/attention/reference.hpp>
// model: the block contract, blocks, decoder<Structure, Dims>, families, config.json, checkpoints
#include <llm/model/model.hpp>
#include <llm/ssm/ssm.hpp>
#include <llm/ssm/mamba.hpp>
#include <llm/ssm/mamba2.hpp>
#include <llm/model/mamba_family.hpp>
#include <llm/moe/moe.hpp>
#include <llm/moe/block.hpp>
#include <llm/moe/mixtral.hpp>
#include <llm/moe/quantized.hpp>
#include <llm/train/train.hpp>
#include <llm/generate/generate.hpp>
#include <llm/dist/communicator.hpp>
#include <llm/dist/single_process.hpp>
#include <llm/dist/near_dedup.hpp>
#include <llm/dist/data_parallel.hpp>
