// SPDX-License-Identifier: Apache-2.0
// The generation loop: requests join a fixed set of KV-cache slots; a new request's prompt (all
// but its last token) is prefilled in chunks through the model's multi-token step (step_tokens:
// GEMMs over the chunk's rows), then the running slots step through the model's decode step
// together (so sequences of different lengths share each step), requests leave when done and
// waiting ones take their slots (continuous batching). The KV cache is contiguous (every slot's
// context reserved) or paged (vLLM's blocks: memory follows the tokens in flight; a request
// waits until the block budget holds it). A new prompt reuses the keys and values of the
// longest prefix it shares with a sequence in the cache (paged: its full blocks shared, as
// vLLM's prefix caching). A model whose state is recurrent (Mamba: a conv window and an SSM
// state per slot, no KV cache) runs through the same loop; prefix reuse does not apply to it.
#pragma once

#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/generate/sampling.hpp>
#include <llm/model/model.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tokenizer/decode.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace llm::generate {

/// Why a request ended.
enum class finish_reason : std::uint8_t {
    none,        ///< still running
    max_tokens,  ///< generated max_tokens tokens
    stop_token,  ///< generated one of stop_tokens (it is reported, not part of the text)
    stop_string, ///< the text reached one of stop_strings (the text ends before it)
    context,     ///< the KV cache slot is full
    cancelled,   ///< engine::cancel
};

/// One request's settings.
struct request_options {
    std::size_t max_tokens = 16;               ///< tokens to generate at most
    std::vector<std::int32_t> stop_tokens{};   ///< any of these ends the request
    std::vector<std::string> stop_strings{};   ///< the text containing one of these ends it
    std::uint64_t seed = 0;                    ///< the request's RNG seed (with its id as stream: engine::options)
};

/// Engine settings: slots (sequences stepped together), their capacity (context length),
/// whether the model has learned positions (GPT-2: every slot stepped together must be at the
/// same position, so a request joins only an empty batch), and the KV cache's layout:
/// contiguous (block_size 0: slots x context tokens reserved up front) or paged (block_size > 0:
/// a pool of kv_blocks blocks of block_size tokens, taken as sequences grow and returned when a
/// request leaves, so memory follows the tokens in flight rather than slots x context).
/// A paged engine admits a waiting request (in arrival order) only when the pool, less what
/// the running requests may still take, holds every token the request may come to hold
/// (prompt + max_tokens - 1, at most context - 1); otherwise it waits for running requests to
/// leave. Requests are never preempted, so a request's tokens do not depend on the load (vLLM
/// admits on the prompt alone and preempts by recomputation when decoding runs out of
/// blocks; this is TGI's max-total-tokens rule). A request that could not fit in the whole
/// pool is refused by add() with llm::error. A recurrent model (Mamba) ignores the layout.
/// Example: `llm::generate::engine_options o{.slots = 16, .context = 4096, .block_size = 16, .kv_blocks = 2048};`
struct engine_options {
    std::size_t slots = 1;              ///< sequences in the KV cache
    std::size_t context = 256;          ///< tokens each slot holds (prompt + generated)
    bool learned_positions = false;     ///< one position for the whole batch (GPT-2)
    bool reuse_prefix = true;           ///< copy a shared prompt prefix's keys and values
    std::size_t top_logprobs = 0;       ///< top tokens' log-probs reported per event
    bool logprobs = false;              ///< report the chosen token's log-prob
    std::size_t prefill_chunk = 256;    ///< prompt tokens per multi-token step (model step_tokens); 0: one per step
    std::size_t block_size = 0;         ///< paged KV cache: tokens per block; 0: contiguous cache
    std::size_t kv_blocks = 0;          ///< paged: the block budget; 0: slots x ceil(context / block_size)
};

/// What a step produced for one request: its new token, the complete UTF-8 text it completes
/// (when the engine has a detokeniser), its log-probs on request, and whether it finished.
struct event {
    std::size_t request = 0;             ///< the id add() returned
    std::int32_t token = 0;              ///< the generated token
    std::string_view text;               ///< new complete text (valid until the next step)
    float logprob = 0.0f;                ///< log-prob of token (options.logprobs)
    std::span<const token_logprob> top;  ///< the top tokens (options.top_logprobs; valid until the next step)
    finish_reason finished = finish_reason::none;  ///< none while the request runs
};

/// A decoding state with a KV cache `kv` (the attention families' decoder::kv_state): the
/// engine can copy a shared prompt prefix's keys and values between its sequences. A recurrent
/// state (decoder::recurrent_state: Mamba) is not one: its state after a prefix cannot be
/// copied out of a longer sequence's, so prefix reuse is off for it.
/// Example: `static_assert(llm::generate::kv_cached_state<llm::model::llama<>::state>);`
template <class S>
concept kv_cached_state = requires(S& s, std::size_t i) {
    s.kv.reset(i);
    s.kv.run(i, i, i);
    s.kv.layers();
};

/// What the engine needs of a decoding state: a `position` and a way to empty slot i, the
/// KV cache's `kv.reset(i)` or the state's own `reset(i)` (decoder::recurrent_state).
/// Example: `static_assert(llm::generate::slot_state<llm::model::mamba<>::state>);`
template <class S>
concept slot_state = requires(S& s, std::size_t i) { s.position = i; } &&
                     (kv_cached_state<S> || requires(S& s, std::size_t i) { s.reset(i); });

/// The generation engine over a model (a decoder with `make_state` and `step`; its state a
/// llm::generate::slot_state: a KV cache, or a recurrent state per slot) and its parameters
/// (held by reference). Each step feeds the running slots only (the model's step over a list of
/// sequences). Prefix reuse (engine_options::reuse_prefix) applies to KV-cache
/// states only (kv_cached_state); for a recurrent state (Mamba) it is off, whatever the option. Sampler: the sampler type each request carries
/// (standard_sampler by default; any sampler<...> of the user's processors).
/// A step with warmed workspaces and no detokeniser allocates nothing beyond the model's own step.
/// Example: `llm::generate::engine eng(model, params, {.slots = 4, .context = 512}); auto id = eng.add(prompt, {.max_tokens = 32}, llm::generate::make_sampler({})); while (!eng.idle()) for (auto& e : eng.step(pool)) use(e);`
template <class Model, class T, class Sampler = standard_sampler>
    requires slot_state<typename Model::state>
class engine {
public:
    /// True when the model's state is a KV cache, so a shared prompt prefix can be reused.
    static constexpr bool reuses_prefix = kv_cached_state<typename Model::state>;

    /// Maps a token id to its bytes (a tokenizer's decode of one token), for text and stop strings.
    using detokenizer = std::function<std::string(std::int32_t)>;

    /// An engine of o.slots sequences of o.context tokens over model and params (kept by reference).
    /// Throws llm::error for 0 slots or context, or kv_blocks without a block_size.
    engine(const Model& model, const typename Model::template params<T>& params, const engine_options& o = {})
        : model_(model),
          params_(params),
          o_(checked(o)),
          state_(make_state(model, o)),
          logits_(o.slots, model.config().vocab),
          ids_(o.slots, 0),
          rows_(o.slots, 0),
          slots_(o.slots) {
        events_.reserve(o.slots);
        for (auto& s : slots_) {
            s.tokens.reserve(o.context + 1);
        }
    }

    /// Sets the detokeniser (token id -> bytes): events then carry text, and stop strings work.
    void set_detokenizer(detokenizer d) { detok_ = std::move(d); }

    /// Queues a request: its prompt, settings and sampler. It joins a free slot at the next step
    /// (in order of arrival; a paged engine: when the block budget holds it). Returns its id
    /// (0, 1, ...). Throws llm::error for an empty prompt, one that leaves no room in the
    /// context, a token id outside the vocabulary, or (paged) a request whose tokens need more
    /// blocks than the whole pool has.
    std::size_t add(std::span<const std::int32_t> prompt, request_options r, Sampler s) {
        const std::size_t vocab = model_.config().vocab;
        llm::check(!prompt.empty(), "generate::engine::add: empty prompt");
        llm::check(prompt.size() < o_.context, "generate::engine::add: the prompt of ", prompt.size(),
                   " tokens is longer than the context: ", o_.context, " tokens hold at most ", o_.context - 1, " prompt tokens");
        for (std::size_t i = 0; i < prompt.size(); ++i) {
            llm::check(prompt[i] >= 0 && static_cast<std::size_t>(prompt[i]) < vocab, "generate::engine::add: prompt token ", i, " is ",
                       prompt[i], ", outside the vocabulary of ", vocab);
        }
        if (const auto* pc = paged_cache()) {
            const std::size_t limit = token_limit(prompt.size(), r.max_tokens);
            llm::check(blocks_for(limit) <= pc->blocks(), "generate::engine::add: the request may hold ", limit, " tokens (prompt ",
                       prompt.size(), " + max_tokens ", r.max_tokens, " - 1, at most context ", o_.context, " - 1): ", blocks_for(limit),
                       " blocks of ", pc->block_size(), " tokens, but the paged KV cache has ", pc->blocks(),
                       " blocks in all (engine_options::kv_blocks)");
        }
        waiting_.push_back(pending{next_id_, std::vector<std::int32_t>(prompt.begin(), prompt.end()), std::move(r), std::move(s)});
        return next_id_++;
    }

    /// True when no request is running or waiting.
    [[nodiscard]] bool idle() const noexcept {
        return waiting_.empty() && std::none_of(slots_.begin(), slots_.end(), [](const slot& s) { return s.active; });
    }

    /// Requests running now.
    [[nodiscard]] std::size_t running() const noexcept {
        return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](const slot& s) { return s.active; }));
    }

    /// Ends request `id` (running or waiting) now; its slot is free at the next step.
    void cancel(std::size_t id) {
        std::erase_if(waiting_, [&](const pending& p) { return p.id == id; });
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            if (slots_[i].active && slots_[i].id == id) {
                release(i);
            }
        }
    }

    /// The tokens (prompt and generated) of the request in slot holding `id`, or empty when it is not running.
    [[nodiscard]] std::span<const std::int32_t> tokens(std::size_t id) const {
        for (const auto& s : slots_) {
            if (s.active && s.id == id) {
                return s.tokens;
            }
        }
        return {};
    }

    /// Prompt tokens whose keys and values were copied from another sequence instead of computed.
    [[nodiscard]] std::size_t reused_tokens() const noexcept { return reused_; }
    /// Model steps run so far and tokens fed through them (prompt tokens included, dummy rows not).
    [[nodiscard]] std::size_t steps() const noexcept { return steps_; }

    /// Admits waiting requests and prefills their prompts in chunks of options.prefill_chunk
    /// tokens (one model step_tokens each, when the model has it and the chunk is not 0); a
    /// prompt's last chunk (when it holds 2 tokens or more) also gives its last token's logits, from
    /// which the request's first token is sampled. Then runs one model step over the other
    /// running slots (each feeds its next prompt token or its last generated token), samples for
    /// the slots past their prompt and returns the events (one per request that sampled; valid
    /// until the next step).
    std::span<const event> step(parallel::policy auto&& exec) {
        events_.clear();
        admit();
        prefill(exec);
        std::size_t position = 0, n = 0;
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            slot& s = slots_[i];
            if (!s.active || std::exchange(s.sampled, false)) {
                continue;  // idle, or its first token came from its prompt's last chunk
            }
            llm::check(n == 0 || !o_.learned_positions || s.fed == position, "generate::engine::step: learned positions need every "
                       "running sequence at one position");
            position = s.fed;
            rows_[n] = i;
            ids_[n] = s.tokens[s.fed];
            ++n;
        }
        if (n == 0) {
            return events_;
        }
        state_.position = position;
        model_.step(model::activations(logits_.data(), llm::dims<2>(n, model_.config().vocab)), state_,
                    std::span<const std::size_t>(rows_.data(), n), model::token_ids(ids_.data(), n), params_, ws_, exec);
        ++steps_;
        for (std::size_t r = 0; r < n; ++r) {
            const std::size_t i = rows_[r];
            slot& s = slots_[i];
            ++s.fed;
            if (s.fed < s.tokens.size()) {
                continue;  // still in the prompt
            }
            emit(i, r, s);
        }
        return events_;
    }

    /// step() on llm::parallel::default_pool().
    std::span<const event> step() { return step(parallel::default_pool()); }

    /// The model's decoding state (its KV cache, or its recurrent state per slot).
    [[nodiscard]] const typename Model::state& state() const noexcept { return state_; }

private:
    struct pending {
        std::size_t id;
        std::vector<std::int32_t> prompt;
        request_options r;
        Sampler s;
    };
    struct slot {
        bool active = false;
        std::size_t id = 0;
        std::vector<std::int32_t> tokens;  // prompt + generated
        std::size_t prompt = 0;            // prompt length
        std::size_t fed = 0;               // tokens in the cache
        std::size_t limit = 0;             // tokens it may come to hold in the cache
        bool sampled = false;              // sampled in this step's prefill (the joint step skips it)
        request_options r;
        std::optional<Sampler> s;
        generate::rng g;
        tokenizer::utf8_stream utf8;
        std::string text;       // complete text so far
        std::size_t shown = 0;  // bytes of text already reported
    };

    // Feeds every active slot's prompt through the model's multi-token step, o_.prefill_chunk
    // tokens at a time. The last chunk, when it holds 2 tokens or more, asks for its last
    // token's logits and samples the first token (the slot is marked `sampled`, so the joint step
    // passes it by): a single-sequence prompt then costs one pass over the weights per chunk
    // and none for a separate step of its last token. A last token left alone goes through the
    // joint step with the other slots.
    template <class Exec>
    void prefill(Exec& exec) {
        if constexpr (requires(model::activations l, std::size_t i, model::token_ids ids) {
                          model_.step_tokens(l, state_, i, ids, params_, ws_, exec);
                      }) {
            if (o_.prefill_chunk == 0) {
                return;
            }
            const std::size_t vocab = model_.config().vocab;
            for (std::size_t i = 0; i < slots_.size(); ++i) {
                slot& s = slots_[i];
                while (s.active && s.fed + 1 < s.prompt) {
                    const std::size_t n = std::min(o_.prefill_chunk, s.prompt - s.fed);
                    const bool last = s.fed + n == s.prompt;
                    const model::activations logits(logits_.data(), llm::dims<2>(last ? 1 : 0, vocab));
                    model_.step_tokens(logits, state_, i, model::token_ids(s.tokens.data() + s.fed, n), params_, ws_, exec);
                    s.fed += n;
                    ++steps_;
                    if (last) {
                        s.sampled = true;
                        emit(i, 0, s);
                    }
                }
            }
        }
    }

    void admit() {
        while (!waiting_.empty()) {
            if (o_.learned_positions && running() > 0) {
                return;
            }
            std::size_t free = slots_.size();
            for (std::size_t i = 0; i < slots_.size() && free == slots_.size(); ++i) {
                free = slots_[i].active ? free : i;
            }
            if (free == slots_.size()) {
                return;
            }
            const pending& next = waiting_.front();
            std::size_t from = 0, best = 0;
            if constexpr (reuses_prefix) {
                if (o_.reuse_prefix && !o_.learned_positions) {
                    std::tie(from, best) = longest_prefix(free, next.prompt);
                }
            }
            const std::size_t limit = token_limit(next.prompt.size(), next.r.max_tokens);
            if (const auto* pc = paged_cache()) {
                // the blocks it may take (less the full blocks of a shared prefix) against the
                // free blocks that the running requests may not still take: else it waits
                if (blocks_for(limit) - best / pc->block_size() > available_blocks()) {
                    return;
                }
            }
            pending p = std::move(waiting_.front());
            waiting_.pop_front();
            slot& s = slots_[free];
            reset_slot(free);
            s.active = true;
            s.id = p.id;
            s.tokens.assign(p.prompt.begin(), p.prompt.end());
            s.prompt = p.prompt.size();
            s.fed = 0;
            s.sampled = false;
            s.limit = limit;
            s.r = std::move(p.r);
            s.s.emplace(std::move(p.s));
            s.g = generate::rng(s.r.seed, 0);
            s.utf8 = tokenizer::utf8_stream{};
            s.text.clear();
            s.shown = 0;
            if constexpr (reuses_prefix) {
                if (best > 0) {
                    reuse(free, from, best);
                }
            }
        }
    }

    // The running sequence (not slot `to`) sharing the longest cached prefix with `prompt`, and
    // that length (at most the prompt's length - 1: its last token is fed); {0, 0} when none.
    std::pair<std::size_t, std::size_t> longest_prefix(std::size_t to, const std::vector<std::int32_t>& prompt) const {
        std::size_t best = 0, from = 0;
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            const slot& src = slots_[i];
            if (i == to || !src.active) {
                continue;
            }
            const std::size_t limit = std::min(src.fed, prompt.size() - 1);
            std::size_t n = 0;
            while (n < limit && src.tokens[n] == prompt[n]) {
                ++n;
            }
            if (n > best) {
                best = n;
                from = i;
            }
        }
        return {from, best};
    }

    // Gives slot `to` the keys and values of the first `best` tokens of slot `from`: a paged
    // cache shares their full blocks (share_prefix) and copies the rest; a contiguous cache
    // copies them all.
    void reuse(std::size_t to, std::size_t from, std::size_t best)
        requires reuses_prefix
    {
        auto& kv = state_.kv;
        std::size_t shared = 0;
        if constexpr (requires { kv.paged(); }) {
            if (auto* pc = kv.paged()) {
                const std::size_t count = best / pc->block_size();
                pc->share_prefix(to, from, count);
                shared = count * pc->block_size();
            }
        }
        if (const std::size_t rows = best - shared; rows > 0) {
            const std::size_t heads = kv.kv_heads(), dim = kv.head_dim();
            stage_k_.resize(rows * heads * dim);
            stage_v_.resize(rows * heads * dim);
            for (std::size_t l = 0; l < kv.layers(); ++l) {
                for (std::size_t pos = shared; pos < best;) {
                    const auto run = kv.layer(l).run(from, pos);
                    const std::size_t count = std::min(run.count, best - pos);
                    for (std::size_t p = 0; p < count; ++p) {
                        const std::size_t row = pos + p - shared;
                        for (std::size_t h = 0; h < heads; ++h) {
                            std::copy_n(run.k + h * run.head_stride + p * run.stride, dim, stage_k_.data() + (row * heads + h) * dim);
                            std::copy_n(run.v + h * run.head_stride + p * run.stride, dim, stage_v_.data() + (row * heads + h) * dim);
                        }
                    }
                    pos += count;
                }
                kv.append(l, to, tensor_view<float, llm::dims<3>>(stage_k_.data(), llm::dims<3>(rows, heads, dim)),
                          tensor_view<float, llm::dims<3>>(stage_v_.data(), llm::dims<3>(rows, heads, dim)));
            }
            kv.advance(to, rows);
        }
        slots_[to].fed = best;
        reused_ += best;
    }

    // The most tokens a request may hold in the cache: its prompt and every generated token but
    // the last (which is never fed), at most context - 1.
    std::size_t token_limit(std::size_t prompt, std::size_t max_tokens) const noexcept {
        return std::min(prompt + std::max<std::size_t>(max_tokens, 1) - 1, o_.context - 1);
    }

    // The paged KV cache, or nullptr (a contiguous cache, or a recurrent state).
    const attention::paged_kv_cache<float>* paged_cache() const noexcept {
        if constexpr (requires { state_.kv.paged(); }) {
            return state_.kv.paged();
        } else {
            return nullptr;
        }
    }

    // Blocks that hold `tokens` tokens (paged).
    std::size_t blocks_for(std::size_t tokens) const noexcept {
        const std::size_t bs = paged_cache()->block_size();
        return (tokens + bs - 1) / bs;
    }

    // Free blocks less those the running requests may still take (paged).
    std::size_t available_blocks() const noexcept {
        const auto* pc = paged_cache();
        std::size_t promised = 0;
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            if (slots_[i].active) {
                const std::size_t may = blocks_for(slots_[i].limit), has = pc->block_table(i).size();
                promised += may > has ? may - has : 0;
            }
        }
        return pc->free_blocks() > promised ? pc->free_blocks() - promised : 0;
    }

    static const engine_options& checked(const engine_options& o) {
        llm::check(o.slots > 0 && o.context > 0, "generate::engine: slots = ", o.slots, " and context = ", o.context, " must be > 0");
        llm::check(o.block_size != 0 || o.kv_blocks == 0, "generate::engine: kv_blocks = ", o.kv_blocks,
                   " needs a block_size (0 means a contiguous KV cache)");
        return o;
    }

    static typename Model::state make_state(const Model& m, const engine_options& o) {
        if constexpr (requires { m.make_state(o.slots, o.context, model::kv_layout{}); }) {
            return m.make_state(o.slots, o.context, model::kv_layout{.block_size = o.block_size, .blocks = o.kv_blocks});
        } else {
            llm::check(o.block_size == 0, "generate::engine: block_size = ", o.block_size, " but the model has no paged KV cache");
            return m.make_state(o.slots, o.context);
        }
    }

    // Samples slot i's next token from logits row r.
    void emit(std::size_t i, std::size_t r, slot& s) {
        const std::size_t vocab = model_.config().vocab;
        std::span<float> row(logits_.data() + r * vocab, vocab);
        const sample_context ctx{s.tokens, s.prompt};
        s.s->process(row, ctx);
        const std::int32_t tok = s.s->pick(row, s.g);
        event e{s.id, tok, {}, 0.0f, {}, finish_reason::none};
        if (o_.logprobs || o_.top_logprobs > 0) {
            e.logprob = logprobs(row, tok, o_.top_logprobs, top_[i]);
            e.top = top_[i];
        }
        s.tokens.push_back(tok);
        const std::size_t generated = s.tokens.size() - s.prompt;
        const bool stop_tok = std::find(s.r.stop_tokens.begin(), s.r.stop_tokens.end(), tok) != s.r.stop_tokens.end();
        if (stop_tok) {
            e.finished = finish_reason::stop_token;
        } else if (generated >= s.r.max_tokens) {
            e.finished = finish_reason::max_tokens;
        } else if (s.tokens.size() >= o_.context) {
            e.finished = finish_reason::context;  // the last token cannot be fed
        }
        if (detok_) {
            if (!stop_tok) {
                s.text += s.utf8.push(detok_(tok));
            }
            std::size_t end = s.text.size();
            for (const auto& stop : s.r.stop_strings) {
                const std::size_t from = s.shown > stop.size() ? s.shown - stop.size() : 0;
                const std::size_t at = stop.empty() ? std::string::npos : s.text.find(stop, from);
                if (at != std::string::npos && at < end) {
                    end = at;
                    e.finished = finish_reason::stop_string;
                }
            }
            if (e.finished == finish_reason::none) {
                // hold back a tail that may be the start of a stop string
                for (const auto& stop : s.r.stop_strings) {
                    for (std::size_t n = std::min(stop.size() - 1, end); n > 0; --n) {
                        if (s.text.compare(end - n, n, stop, 0, n) == 0) {
                            end -= n;
                            break;
                        }
                    }
                }
                while (end > s.shown && end < s.text.size() && (static_cast<unsigned char>(s.text[end]) & 0xc0) == 0x80) {
                    --end;  // never split a character
                }
            } else if (e.finished != finish_reason::stop_string) {
                s.text += s.utf8.finish();
                end = s.text.size();
            }
            end = std::max(end, s.shown);
            e.text = std::string_view(s.text).substr(s.shown, end - s.shown);
            s.shown = end;
        }
        if (e.finished != finish_reason::none) {
            release(i);
        }
        events_.push_back(e);
    }

    // Slot i leaves: a KV cache forgets its sequence (paged: its blocks go back to the pool).
    void release(std::size_t i) {
        slots_[i].active = false;
        if constexpr (reuses_prefix) {
            state_.kv.reset(i);
        }
    }

    // Empties slot i of the state: the KV cache's sequence, or the recurrent state's.
    void reset_slot(std::size_t i) {
        if constexpr (kv_cached_state<typename Model::state>) {
            state_.kv.reset(i);
        } else {
            state_.reset(i);
        }
    }

    const Model& model_;
    const typename Model::template params<T>& params_;
    engine_options o_;
    typename Model::state state_;
    tensor<float, llm::dims<2>> logits_;
    std::vector<std::int32_t> ids_;
    std::vector<std::size_t> rows_;  // the slot of each row of a step
    std::vector<slot> slots_;
    std::vector<std::vector<token_logprob>> top_ = std::vector<std::vector<token_logprob>>(o_.slots);
    std::deque<pending> waiting_;
    std::vector<event> events_;
    std::vector<float> stage_k_, stage_v_;
    workspace ws_;
    detokenizer detok_;
    std::size_t next_id_ = 0, reused_ = 0, steps_ = 0;
};

}  // namespace llm::generate
