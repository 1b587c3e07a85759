// SPDX-License-Identifier: Apache-2.0
// Token embedding block (and learned absolute positions, GPT-2), as llm::model::block_like.
#pragma once

#include <llm/model/block.hpp>
#include <llm/model/config.hpp>
#include <llm/model/weights.hpp>
#include <llm/nn/embedding.hpp>
#include <llm/tensor/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llm::model {

/// Token embedding: out[t] = table[ids[t]] (+ positions[t % seq] with learned positions).
/// Names: `weight` (Llama's `embed_tokens.weight`; the model adds the prefix) or, with learned
/// positions, GPT-2's `wte.weight` and `wpe.weight`. The input is llm::model::token_ids, so
/// backward takes llm::model::no_grad as d_input.
/// LearnedPositions: add a [max_seq, d_model] position table (GPT-2).
/// Example: `llm::model::token_embedding<> emb(d); emb.forward(h, c, ids, p, ws, pool);`
template <bool LearnedPositions = false>
struct token_embedding {
    using input_type = token_ids;  ///< reads token ids
    std::size_t vocab = 0;         ///< table rows
    std::size_t width = 0;         ///< d_model
    std::size_t positions = 0;     ///< position table rows (learned positions only)

    /// From a model's dims.
    explicit token_embedding(const dims& d) : vocab(d.vocab), width(d.d_model), positions(LearnedPositions ? d.max_seq : 0) {}
    /// Parameters for dims d (vocab d_model, plus max_seq d_model with learned positions).
    static constexpr std::size_t param_count(const dims& d) noexcept {
        return d.vocab * d.d_model + (LearnedPositions ? d.max_seq * d.d_model : 0);
    }

    /// The members of params<T>, listed once in walk.
    template <class T>
    struct fields {
        tensor<scalar_t<T>, llm::dims<2>> weight;  ///< token table (`weight` / `wte.weight`)
        tensor<scalar_t<T>, llm::dims<2>> wpe;     ///< position table (`wpe.weight`), empty without learned positions
        /// Visits the tables under their Hugging Face names.
        template <class F, class... P>
        static void walk(F&& f, P&... p) {
            if constexpr (LearnedPositions) {
                f("wte.weight", p.weight...);
                f("wpe.weight", p.wpe...);
            } else {
                f("weight", p.weight...);
            }
        }
    };
    /// Parameters: the token table [vocab, d_model] and, with learned positions, the
    /// position table [max_seq, d_model].
    template <class T>
    using params = param_list<fields<T>>;
    /// The batch shape (positions are t % seq).
    struct cache {
        batch_shape shape;  ///< the batch this cache was made for
    };
    /// Zero-filled tables.
    template <class T>
    params<T> make_params() const {
        return {tensor<scalar_t<T>, llm::dims<2>>(vocab, width), tensor<scalar_t<T>, llm::dims<2>>(positions, LearnedPositions ? width : 0)};
    }
    /// Keeps the shape; no activations.
    cache make_cache(arena&, batch_shape s) const { return {s}; }

    /// out [tokens, d_model] = table[ids] (+ wpe[position]).
    template <class T>
    void forward(activations out, cache& c, token_ids ids, const params<T>& p, workspace&, parallel::policy auto&& exec) const {
        nn::embedding_forward(out, ids, p.weight, exec);
        if constexpr (LearnedPositions) {
            add_positions(out, p, c.shape.seq, 0);
        }
    }
    /// dtable[ids[t]] += dout[t]; dwpe[t % seq] += dout[t] (accumulates).
    template <class T>
    void backward(no_grad, params<float>& g, const_activations dout, const cache& c, token_ids ids, const params<T>&, workspace&,
                  parallel::policy auto&& exec) const {
        nn::embedding_backward(g.weight, dout, ids, exec);
        if constexpr (LearnedPositions) {
            const std::size_t seq = c.shape.seq;
            llm::check(seq <= positions, "token_embedding: sequence length ", seq, " exceeds the ", positions, " learned positions");
            for (std::size_t t = 0; t < dout.extent(0); ++t) {
                float* dst = g.wpe.data() + (t % seq) * width;
                const float* src = dout.data() + t * dout.stride(0);
                for (std::size_t i = 0; i < width; ++i) {
                    dst[i] += src[i];
                }
            }
        }
    }
    /// Positions of the next token of each sequence (learned positions only).
    struct state {
        std::size_t position = 0;  ///< position of the row being embedded
    };
    /// out [n, d_model] for one new token per row, all at position s.position.
    template <class T>
    void step(activations out, state& s, token_ids ids, const params<T>& p, workspace&, parallel::policy auto&& exec) const {
        nn::embedding_forward(out, ids, p.weight, exec);
        if constexpr (LearnedPositions) {
            add_positions(out, p, 1, s.position);
        }
    }

private:
    template <class T>
    void add_positions(activations out, const params<T>& p, std::size_t seq, std::size_t offset) const {
        for (std::size_t t = 0; t < out.extent(0); ++t) {
            const std::size_t pos = t % seq + offset;
            llm::check(pos < positions, "token_embedding: position ", pos, " is beyond the ", positions, " learned positions");
            float* dst = out.data() + t * out.stride(0);
            for (std::size_t i = 0; i < width; ++i) {
                dst[i] += static_cast<float>(p.wpe(pos, i));
            }
        }
    }
};

}  // namespace llm::model
