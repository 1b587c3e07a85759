// SPDX-License-Identifier: Apache-2.0
// Batch encoding: many documents over the threads of an llm::parallel policy.
#pragma once

#include <llm/parallel/parallel_for.hpp>
#include <llm/tokenizer/piece_cache.hpp>
#include <llm/tokenizer/special_tokens.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace llm::tokenizer {

/// A tokenizer that encode_batch can drive: byte_bpe, sp_bpe, tokenizer.
template <class T>
concept batch_encoder = requires(const T& t, std::string_view text, std::vector<std::uint32_t>& out, const special_policy& p,
                                 encode_context& ctx) { t.encode(text, out, p, ctx); };

/// Encodes every document; result[d] holds the ids of docs[d], exactly as encoding them one by
/// one would. Documents are split into fixed chunks (about 16 per thread, so uneven documents
/// still balance); a chunk borrows an encode_context from a small free list and returns it,
/// so piece caches stay warm across chunks and are never used by two threads at once. The
/// ids never depend on which context or thread encoded a document.
/// Template parameters: Tokenizer, a batch_encoder; Policy, an llm::parallel::policy
/// (llm::parallel::sequential, a thread_pool, ...).
/// Example: `auto ids = llm::tokenizer::encode_batch(enc, docs, {}, llm::parallel::default_pool());`
template <batch_encoder Tokenizer, class Policy>
std::vector<std::vector<std::uint32_t>> encode_batch(const Tokenizer& tok, std::span<const std::string_view> docs,
                                                     const special_policy& policy, Policy&& pool) {
    std::vector<std::vector<std::uint32_t>> out(docs.size());
    const std::size_t threads = std::max<std::size_t>(1, pool.size());
    const std::size_t grain = std::max<std::size_t>(1, docs.size() / (16 * threads));
    std::vector<std::unique_ptr<encode_context>> idle;
    std::mutex idle_mutex;
    llm::parallel::parallel_for(pool, docs.size(), grain, [&](std::size_t begin, std::size_t end) {
        std::unique_ptr<encode_context> ctx;
        {
            const std::lock_guard<std::mutex> lock(idle_mutex);
            if (!idle.empty()) {
                ctx = std::move(idle.back());
                idle.pop_back();
            }
        }
        if (!ctx) ctx = std::make_unique<encode_context>();
        for (std::size_t d = begin; d < end; ++d) tok.encode(docs[d], out[d], policy, *ctx);
        const std::lock_guard<std::mutex> lock(idle_mutex);
        idle.push_back(std::move(ctx));
    });
    return out;
}

}  // namespace llm::tokenizer
