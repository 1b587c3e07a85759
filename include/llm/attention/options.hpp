// SPDX-License-Identifier: Apache-2.0
// Run-time options (softmax scale, soft-cap) and the tile-size policy of the attention kernels.
#pragma once

#include <llm/core/error.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>

namespace llm::attention {

/// Run-time options shared by every attention entry point.
/// Example: `llm::attention::options opt{.scale = 0.125f, .softcap = 50.0f};`
struct options {
    /// Softmax scale applied to q . k; 0 means 1 / sqrt(head_dim). Must be finite.
    float scale = 0.0f;
    /// Logit soft-cap (Gemma 2): scores become softcap * tanh(score / softcap) after
    /// scaling; 0 means off. Must be finite and >= 0.
    float softcap = 0.0f;
    /// decode_attention only (the other entry points ignore it): parts each (sequence, kv head)
    /// of the cache is split into, processed as independent tasks and merged by log-sum-exp;
    /// 0 chooses enough parts for 4 tasks per thread, each part >= 512 positions.
    std::size_t splits = 0;
};

/// Tile sizes of the tiled kernels: BQ query rows per tile (rows a thread keeps in its
/// accumulator) and BK keys per tile (the columns of one score tile).
/// BQ, BK: tile sizes; BQ a multiple of 4 (the register block), BK a multiple of the SIMD width.
/// Example: `llm::attention::flash_forward<llm::attention::tiles<64, 64>>(o, lse, q, k, v);`
template <std::size_t BQ, std::size_t BK>
struct tiles {
    static constexpr std::size_t q = BQ;  ///< query rows per tile
    static constexpr std::size_t k = BK;  ///< keys per tile
};

/// A tile policy: static q and k, both > 0, q a multiple of 4.
/// T: the candidate policy type.
template <class T>
concept tile_policy = std::convertible_to<decltype(T::q), std::size_t> && std::convertible_to<decltype(T::k), std::size_t> &&
                      (T::q > 0) && (T::k > 0) && (T::q % 4 == 0);

/// Default tiles for a SIMD width W (floats per vector). 64 x 64 keeps, for head_dim 128, the
/// query tile, the score tile, the accumulator and one K/V tile (32 + 16 + 32 + 32 KiB) in the
/// 1 MiB L2 with the score tile in L1; BK = 64 is four 16-float AVX-512 vectors, the register
/// block's width. Narrow backends use the same sizes (64 is a multiple of 1, 4 and 8).
/// W: floats per SIMD vector.
template <std::size_t W>
using default_tiles_t = tiles<64, (W > 64 ? W : 64)>;

namespace detail {

/// The scale to use: opt.scale, or 1 / sqrt(head_dim) when it is 0; checks both options.
inline float resolve_scale(const char* fn, const options& opt, std::size_t head_dim) {
    llm::check(std::isfinite(opt.scale), fn, ": options.scale = ", opt.scale, " must be finite (0 for 1/sqrt(head_dim))");
    llm::check(std::isfinite(opt.softcap) && opt.softcap >= 0.0f, fn, ": options.softcap = ", opt.softcap,
               " must be finite and >= 0 (0 for off)");
    return opt.scale != 0.0f ? opt.scale : 1.0f / std::sqrt(static_cast<float>(head_dim == 0 ? 1 : head_dim));
}

}  // namespace detail
}  // namespace llm::attention
