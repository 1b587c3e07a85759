// SPDX-License-Identifier: Apache-2.0
// llm::quant::packed_matrix: Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K weights repacked into groups of 8 interleaved rows (as llama.cpp's CPU
// "repack" does at load), and gemv / gemm on them: one 256-bit vector holds 4 codes of each of 8 rows, so
// the lanes are the rows and a decode GEMV runs at the memory's read speed on one AVX2 core.
#pragma once

#include <llm/config.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/basic_formats.hpp>
#include <llm/quant/isa.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/weights.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#if LLM_QUANT_X86
#include <immintrin.h>
#endif

namespace llm::quant {

/// The formats llm::quant::pack repacks: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (against Q8_0 activations),
/// Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (against Q8_K activations).
/// Example: `static_assert(llm::quant::packable_format<llm::quant::q4_k>);`
template <class F>
concept packable_format =
    block_format<F> && (std::is_same_v<F, q4_0> || std::is_same_v<F, q4_1> || std::is_same_v<F, q5_0> ||
                        std::is_same_v<F, q5_1> || std::is_same_v<F, q8_0> || std::is_same_v<F, q2_k> || std::is_same_v<F, q3_k> ||
                        std::is_same_v<F, q4_k> || std::is_same_v<F, q5_k> || std::is_same_v<F, q6_k>);

/// Weight rows per packed group (the lanes of one 256-bit vector of int32 or float).
inline constexpr std::size_t pack_group_rows = 8;

namespace detail {

/// True for the packed K formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): a group's block holds its scales inline.
template <class F>
inline constexpr bool packed_k = std::is_same_v<F, q2_k> || std::is_same_v<F, q3_k> || std::is_same_v<F, q4_k> ||
                                 std::is_same_v<F, q5_k> || std::is_same_v<F, q6_k>;

/// True for the packed K formats with group minimums (Q2_K, Q4_K, Q5_K: w = d sc_j q - dmin m_j).
template <class F>
inline constexpr bool packed_k_mins = std::is_same_v<F, q2_k> || std::is_same_v<F, q4_k> || std::is_same_v<F, q5_k>;

/// True for the packed 32-value formats with a fifth code bit (Q5_0, Q5_1: qh).
template <class F>
inline constexpr bool packed_q5 = std::is_same_v<F, q5_0> || std::is_same_v<F, q5_1>;

/// True for the packed 32-value formats with a minimum (Q4_1, Q5_1: w = d q + m).
template <class F>
inline constexpr bool packed_min = std::is_same_v<F, q4_1> || std::is_same_v<F, q5_1>;

/// True for the packed formats whose blocks are interleaved field by field, scales inline (the K
/// formats, Q4_1, Q5_0, Q5_1); Q4_0 and Q8_0 keep their f16 scales apart from the codes.
template <class F>
inline constexpr bool packed_inline = packed_k<F> || packed_q5<F> || std::is_same_v<F, q4_1>;

/// Bytes of one packed block's codes for a group of 8 rows: Q4_0 128 (4 vectors of nibbles), Q8_0
/// 256; the inline formats the whole of the 8 rows' blocks (Q4_1 8 x 20, Q5_0 8 x 22, Q5_1 8 x 24, Q2_K
/// 8 x 84, Q3_K 8 x 110, Q4_K 8 x 144, Q5_K 8 x 176, Q6_K 8 x 210), scales included.
template <class F>
constexpr std::size_t packed_code_bytes() {
    if constexpr (packed_inline<F>) {
        return pack_group_rows * sizeof(typename F::block);
    } else {
        return std::is_same_v<F, q4_0> ? 128 : 256;
    }
}

/// Bytes of one packed block's separate scales for a group of 8 rows: Q4_0 / Q8_0 8 f16; 0 for
/// the inline formats (their scales are in their code bytes).
template <class F>
constexpr std::size_t packed_scale_bytes() {
    return packed_inline<F> ? 0 : pack_group_rows * sizeof(f16);
}

/// One field of a K-format block as packed: bytes [offset, offset + length) of every row's block,
/// in units of `unit` bytes (2 for an f16, 1 for Q6_K's scales, else 4); unit u of row r lands at byte
/// 8 offset + 8 unit u + unit r of the group's packed block.
struct packed_field {
    std::size_t offset, length, unit;
};

/// The fields of a packed inline block, in block order (so the packed offsets are 8 x the block's).
/// Q4_1: d, m, qs[16]; Q5_0: d, qh[4], qs[16]; Q5_1: d, m, qh[4], qs[16] (qh's bits reordered,
/// packed_qh); Q4_K: d, dmin, scales[12], qs[128]; Q5_K: d, dmin, scales[12], then qh[32] and qs[128]
/// as one field of 4-byte units; Q6_K: ql[128], qh[64], scales[16] (bytes: the 8 rows' scale of group g
/// contiguous), d; Q3_K: hmask[32], qs[64], scales[12], d; Q2_K: scales[16], qs[64], d, dmin.
template <class F>
constexpr auto packed_fields() {
    if constexpr (std::is_same_v<F, q4_1>) {
        static_assert(offsetof(block_q4_1, m) == 2 && offsetof(block_q4_1, qs) == 4);
        return std::array<packed_field, 3>{{{0, 2, 2}, {2, 2, 2}, {4, 16, 4}}};
    } else if constexpr (std::is_same_v<F, q5_0>) {
        static_assert(offsetof(block_q5_0, qh) == 2 && offsetof(block_q5_0, qs) == 6);
        return std::array<packed_field, 3>{{{0, 2, 2}, {2, 4, 4}, {6, 16, 4}}};
    } else if constexpr (std::is_same_v<F, q5_1>) {
        static_assert(offsetof(block_q5_1, m) == 2 && offsetof(block_q5_1, qh) == 4 && offsetof(block_q5_1, qs) == 8);
        return std::array<packed_field, 4>{{{0, 2, 2}, {2, 2, 2}, {4, 4, 4}, {8, 16, 4}}};
    } else if constexpr (std::is_same_v<F, q2_k>) {
        static_assert(offsetof(block_q2_k, qs) == 16 && offsetof(block_q2_k, d) == 80 && offsetof(block_q2_k, dmin) == 82);
        return std::array<packed_field, 4>{{{0, 16, 4}, {16, 64, 4}, {80, 2, 2}, {82, 2, 2}}};
    } else if constexpr (std::is_same_v<F, q3_k>) {
        static_assert(offsetof(block_q3_k, qs) == 32 && offsetof(block_q3_k, scales) == 96 &&
                      offsetof(block_q3_k, d) == 108);
        return std::array<packed_field, 4>{{{0, 32, 4}, {32, 64, 4}, {96, 12, 4}, {108, 2, 2}}};
    } else if constexpr (std::is_same_v<F, q4_k>) {
        static_assert(offsetof(block_q4_k, dmin) == 2 && offsetof(block_q4_k, scales) == 4 &&
                      offsetof(block_q4_k, qs) == 16);
        return std::array<packed_field, 4>{{{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 128, 4}}};
    } else if constexpr (std::is_same_v<F, q5_k>) {
        static_assert(offsetof(block_q5_k, dmin) == 2 && offsetof(block_q5_k, scales) == 4 &&
                      offsetof(block_q5_k, qh) == 16 && offsetof(block_q5_k, qs) == 48);
        return std::array<packed_field, 4>{{{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 160, 4}}};
    } else {
        static_assert(offsetof(block_q6_k, qh) == 128 && offsetof(block_q6_k, scales) == 192 &&
                      offsetof(block_q6_k, d) == 208);
        return std::array<packed_field, 4>{{{0, 128, 4}, {128, 64, 4}, {192, 16, 1}, {208, 2, 2}}};
    }
}

/// Q5_0 / Q5_1's qh (a little-endian word, bit j the fifth bit of element j) as packed (to_packed) or
/// back: packed, byte t holds in bit v the fifth bit of element 4 v + t and in bit 4 + v that of
/// element 16 + 4 v + t (v < 4), so code vector v (byte t of a row's dword: qs[4 v + t], elements
/// 4 v + t and 16 + 4 v + t) takes its fifth bits by one 16-bit shift each (shift_bit).
inline void packed_qh(std::uint8_t* qh, bool to_packed) noexcept {
    std::uint32_t from = 0, to = 0;
    std::memcpy(&from, qh, 4);
    for (unsigned j = 0; j < 32; ++j) {
        const unsigned e = j % 16, at = 8 * (e % 4) + 4 * (j / 16) + e / 4;  // element j's bit when packed
        if (to_packed) {
            to |= ((from >> j) & 1u) << at;
        } else {
            to |= ((from >> at) & 1u) << j;
        }
    }
    std::memcpy(qh, &to, 4);
}

/// Copies row `lane`'s block between its packed group block `packed` and `blk` (to_packed: blk
/// into packed; else packed into blk), field by field (packed_fields); the caller reorders Q5_0 /
/// Q5_1's qh (packed_qh).
template <class F>
void move_k_block(std::uint8_t* packed, std::uint8_t* blk, std::size_t lane, bool to_packed) noexcept {
    for (const packed_field& f : packed_fields<F>()) {
        for (std::size_t u = 0; u < f.length / f.unit; ++u) {
            std::uint8_t* p = packed + 8 * f.offset + pack_group_rows * f.unit * u + f.unit * lane;
            std::uint8_t* b = blk + f.offset + f.unit * u;
            if (to_packed) {
                std::memcpy(p, b, f.unit);
            } else {
                std::memcpy(b, p, f.unit);
            }
        }
    }
}

}  // namespace detail

/// A non-owning view of packed weights (llm::quant::packed_matrix::view, or bytes the caller
/// owns filled by llm::quant::pack_into): a [rows, cols] matrix of F blocks in groups of 8 rows.
/// Layout: first the codes of every group, group g's blocks one after another (block b of group
/// g at codes + (g nb + b) C, C = 128 bytes for Q4_0, 256 for Q8_0), as C / 32 vectors of 32 bytes
/// whose dword r holds 4 bytes of row 8 g + r (vector v: Q4_0 row's qs[4 v .. 4 v + 3], so low
/// nibbles are codes 4 v .. 4 v + 3 and high nibbles codes 16 + 4 v ..; Q8_0 codes 4 v .. 4 v + 3);
/// then the f16 scales, the 8 rows' of block b of group g at scales + 8 (g nb + b). The inline formats
/// (Q4_1, Q5_0, Q5_1, Q3_K, Q4_K, Q5_K, Q6_K): no separate scales (`scales` points past the codes); block b
/// of group g (C = 8 x 20, 8 x 22, 8 x 24, 8 x 110, 8 x 144, 8 x 176 or 8 x 210 bytes) is the 8 rows' blocks
/// field by field in block order, each field's 4-byte units (f16 fields: 2-byte; Q6_K's scales 1-byte)
/// interleaved, unit u of row r at 8 offset + 8 w u + w r (offset the field's offset in the block, w its
/// unit): Q4_1 d at 0, m 16, qs 32 (4 vectors as Q4_0's); Q5_0 d at 0, qh 16 (one vector, each row's
/// word with its bits reordered: byte t bit v the fifth bit of code 4 v + t, bit 4 + v that of code 16 +
/// 4 v + t), qs 48; Q5_1 d 0, m 16, qh 32, qs 64; Q2_K scales at 0 (4 vectors), qs 128 (16), d 640, dmin 656; Q4_K d at 0, dmin 16, scales 32 (3 vectors), qs 128
/// (32 vectors: dword r of vector v is row r's qs[4 v .. 4 v + 3]); Q5_K as Q4_K with qh at 128 (8
/// vectors: dword r of vector i is row r's qh[4 i .. 4 i + 3]) and qs at 384; Q6_K ql at 0 (32 vectors), qh
/// 1024 (16), scales 1536 (1-byte units: group g's 8 rows at 1536 + 8 g), d 1664; Q3_K hmask at 0 (8
/// vectors), qs 256 (16), scales 768 (3), d 864. Rows past `rows` in the last group are zero (codes 0,
/// scale 0). The bytes equal those of the padded rows' blocks in number: groups x 8 x nb x
/// sizeof(F::block).
/// Example: `llm::quant::packed_view<llm::quant::q4_0> v = packed.view(); float y0 = v.value(0, 0);`
template <packable_format F>
struct packed_view {
    /// The format tag (packed_weights detects packed views by it).
    using packed_format = F;

    const std::uint8_t* codes = nullptr;  ///< every group's code vectors, 32-byte aligned where the owner aligns
    const f16* scales = nullptr;          ///< every group's scales, 8 per block
    std::size_t rows = 0;                 ///< N (weight rows)
    std::size_t cols = 0;                 ///< K (values per row)

    /// K / block size (32 or 256).
    [[nodiscard]] std::size_t blocks_per_row() const noexcept { return cols / F::block_size; }
    /// Groups of 8 rows (the last padded).
    [[nodiscard]] std::size_t groups() const noexcept { return (rows + pack_group_rows - 1) / pack_group_rows; }
    /// Group g's first block's codes.
    [[nodiscard]] const std::uint8_t* group_codes(std::size_t g) const noexcept {
        return codes + g * blocks_per_row() * detail::packed_code_bytes<F>();
    }
    /// Group g's first block's 8 scales (the K formats: `scales` itself, their scales being inline).
    [[nodiscard]] const f16* group_scales(std::size_t g) const noexcept {
        return scales + g * blocks_per_row() * (detail::packed_scale_bytes<F>() / sizeof(f16));
    }
    /// Block b of row r as F stores it (the block that was packed), r < rows, b < blocks_per_row().
    [[nodiscard]] typename F::block block(std::size_t r, std::size_t b) const noexcept {
        typename F::block out{};
        const std::size_t g = r / pack_group_rows, lane = r % pack_group_rows;
        const std::uint8_t* c = group_codes(g) + b * detail::packed_code_bytes<F>();
        if constexpr (detail::packed_inline<F>) {
            detail::move_k_block<F>(const_cast<std::uint8_t*>(c), reinterpret_cast<std::uint8_t*>(&out), lane, false);
            if constexpr (detail::packed_q5<F>) {
                detail::packed_qh(out.qh, false);
            }
            return out;
        } else {
        out.d = group_scales(g)[pack_group_rows * b + lane];
        for (std::size_t v = 0; v < detail::packed_code_bytes<F>() / 32; ++v) {
            std::memcpy(reinterpret_cast<std::uint8_t*>(out.qs) + 4 * v, c + 32 * v + 4 * lane, 4);
        }
        return out;
        }
    }
    /// The value W(r, c) (as F dequantizes it).
    [[nodiscard]] float value(std::size_t r, std::size_t c) const noexcept {
        const typename F::block blk = block(r, c / F::block_size);
        float v[F::block_size];
        F::dequantize_block(blk, v);
        return v[c % F::block_size];
    }
    /// Bytes of codes and scales together.
    [[nodiscard]] std::size_t bytes() const noexcept { return packed_bytes(rows, cols); }
    /// Itself (as packed_matrix::view(), so gemv / gemm take either).
    [[nodiscard]] packed_view view() const noexcept { return *this; }
    /// Bytes a [rows, cols] packed matrix takes (codes, then scales).
    [[nodiscard]] static constexpr std::size_t packed_bytes(std::size_t rows, std::size_t cols) noexcept {
        return (rows + pack_group_rows - 1) / pack_group_rows * (cols / F::block_size) *
               (detail::packed_code_bytes<F>() + detail::packed_scale_bytes<F>());
    }
};

namespace detail {

/// Where a prefetch `ahead` units past unit b of a row asks for, in a kernel that reads `streams`
/// adjacent rows side by side (units: a packed group's blocks, or a 16-bit row's values; nb per
/// row). Past the row's end it moves on to the row this stream reads next, `streams` rows on:
/// the rows are contiguous, so running straight on would name the neighbouring stream's row,
/// already being read, and leave every row of the next pass to start cold (rows of 1024 values
/// then read 18-25% slower than rows of 4096: BENCHMARKS.md, 2026-12-06 09:36). An `ahead` of more
/// than a row (Q4_K's sixteen super-blocks on rows of eight) lands further on, in rows the
/// kernel's later passes read.
constexpr std::size_t ahead_block(std::size_t b, std::size_t ahead, std::size_t nb, std::size_t streams) {
    const std::size_t at = b + ahead;
    return at >= nb ? at + (streams - 1) * nb : at;
}

/// Checks a packing request: cols a whole number of blocks, `count` blocks in rows of w_rs.
template <class F>
void check_pack(const char* fn, std::size_t count, std::size_t rows, std::size_t cols, std::size_t w_rs) {
    llm::check(cols % F::block_size == 0, fn, "<", F::name, ">: cols = ", cols, " is not a multiple of the block size ",
               F::block_size);
    const std::size_t nb = cols / F::block_size;
    llm::check(w_rs >= nb, fn, "<", F::name, ">: the row stride ", w_rs, " blocks is less than a row's ", nb,
               " blocks");
    llm::check(rows == 0 || count >= (rows - 1) * w_rs + nb, fn, "<", F::name, ">: ", count,
               " blocks hold fewer than ", rows, " rows of ", cols, " values (", nb, " blocks each)");
}

/// Writes the packed layout of rows [0, rows) of `src` (row r's blocks at src + r w_rs) into
/// codes / scales (packed_view's layout; the padding rows zeroed): the 8-row groups [g_begin,
/// g_end) only (clamped to the groups), so threads may pack disjoint ranges.
template <class F>
void pack_blocks(const typename F::block* src, std::size_t w_rs, std::size_t rows, std::size_t cols,
                 std::uint8_t* codes, f16* scales, std::size_t g_begin = 0, std::size_t g_end = SIZE_MAX) noexcept {
    constexpr std::size_t cb = packed_code_bytes<F>();
    const std::size_t nb = cols / F::block_size, groups = (rows + pack_group_rows - 1) / pack_group_rows;
    for (std::size_t g = g_begin; g < std::min(g_end, groups); ++g) {
        for (std::size_t b = 0; b < nb; ++b) {
            std::uint8_t* c = codes + (g * nb + b) * cb;
            if constexpr (packed_inline<F>) {
                (void)scales;
                for (std::size_t lane = 0; lane < pack_group_rows; ++lane) {
                    const std::size_t r = pack_group_rows * g + lane;
                    typename F::block blk{};  // the padding rows: every byte 0
                    if (r < rows) {
                        blk = src[r * w_rs + b];
                    }
                    if constexpr (packed_q5<F>) {
                        packed_qh(blk.qh, true);
                    }
                    move_k_block<F>(c, reinterpret_cast<std::uint8_t*>(&blk), lane, true);
                }
                continue;
            } else {
            f16* d = scales + (g * nb + b) * pack_group_rows;
            for (std::size_t lane = 0; lane < pack_group_rows; ++lane) {
                const std::size_t r = pack_group_rows * g + lane;
                if (r < rows) {
                    const auto& blk = src[r * w_rs + b];
                    d[lane] = blk.d;
                    for (std::size_t v = 0; v < cb / 32; ++v) {
                        std::memcpy(c + 32 * v + 4 * lane, reinterpret_cast<const std::uint8_t*>(blk.qs) + 4 * v, 4);
                    }
                } else {
                    d[lane] = f16::from_bits(0);
                    for (std::size_t v = 0; v < cb / 32; ++v) {
                        std::memset(c + 32 * v + 4 * lane, 0, 4);
                    }
                }
            }
            }
        }
    }
}

}  // namespace detail

/// Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K weights [rows, cols] repacked for gemv / gemm in groups of 8 interleaved rows
/// (packed_view's layout), owning its bytes (64-byte aligned; as many as the blocks of the rows
/// padded to a multiple of 8). Made by llm::quant::pack; view() is the non-owning view.
/// Example: `auto wp = llm::quant::pack<llm::quant::q4_0>(blocks, n, k); llm::quant::gemv(y, x, wp);`
template <packable_format F>
class packed_matrix {
public:
    /// The format tag (packed_weights detects packed matrices by it).
    using packed_format = F;

    /// Empty (0 x 0).
    packed_matrix() = default;

    /// Rows [0, rows) of src (row r's blocks at src + r w_rs), packed.
    packed_matrix(const typename F::block* src, std::size_t w_rs, std::size_t rows, std::size_t cols)
        : storage_((packed_view<F>::packed_bytes(rows, cols) + sizeof(line) - 1) / sizeof(line)), rows_(rows),
          cols_(cols) {
        const packed_view<F> v = view();
        detail::pack_blocks<F>(src, w_rs, rows, cols, const_cast<std::uint8_t*>(v.codes), const_cast<f16*>(v.scales));
    }

    /// N.
    [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
    /// K.
    [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
    /// Bytes of codes and scales.
    [[nodiscard]] std::size_t bytes() const noexcept { return packed_view<F>::packed_bytes(rows_, cols_); }
    /// The non-owning view (valid while this object lives and is not moved into).
    [[nodiscard]] packed_view<F> view() const noexcept {
        const auto* base = reinterpret_cast<const std::uint8_t*>(storage_.data());
        const std::size_t groups = (rows_ + pack_group_rows - 1) / pack_group_rows, nb = cols_ / F::block_size;
        return {base, reinterpret_cast<const f16*>(base + groups * nb * detail::packed_code_bytes<F>()), rows_, cols_};
    }

private:
    struct alignas(64) line {
        std::uint8_t bytes[64];
    };
    std::vector<line> storage_;
    std::size_t rows_ = 0, cols_ = 0;
};

/// Packs `rows` rows of `cols` values from blocks in row order (row r at block r cols / 32).
/// Errors (llm::error): cols not a multiple of 32, fewer blocks than rows x cols / 32.
/// Example: `auto wp = llm::quant::pack<llm::quant::q8_0>(std::span<const llm::quant::block_q8_0>(blocks), n, k);`
template <packable_format F>
[[nodiscard]] packed_matrix<F> pack(std::span<const typename F::block> blocks, std::size_t rows, std::size_t cols) {
    detail::check_pack<F>("pack", blocks.size(), rows, cols, cols / F::block_size);
    return packed_matrix<F>(blocks.data(), cols / F::block_size, rows, cols);
}

/// Packs a quantized_matrix view (llm::quant::matrix_view of packable blocks, any row stride).
/// Errors (llm::error): as gemv's checks on w (unit column stride, rows on block boundaries).
/// Example: `auto wp = llm::quant::pack(llm::quant::matrix_view<llm::quant::q4_0_accessor>(blocks, n, k));`
template <quantized_matrix W>
    requires packable_format<weight_format_t<W>>
[[nodiscard]] packed_matrix<weight_format_t<W>> pack(const W& w) {
    using F = weight_format_t<W>;
    const std::size_t w_rs = detail::check_weights("pack", w);
    return packed_matrix<F>(w.data(), w_rs, static_cast<std::size_t>(w.extent(0)), static_cast<std::size_t>(w.extent(1)));
}

/// Packs into bytes the caller owns (e.g. to replace a memory-mapped tensor's bytes, the same
/// count): `out` must hold packed_view<F>::packed_bytes(rows, cols) bytes and must not overlap
/// `blocks`. The 8-row groups are shared among the threads of `exec` (each writes its own bytes,
/// so fresh memory is also first touched by them); the bytes do not depend on the policy.
/// Returns the view of `out`. Errors (llm::error): sizes as pack, `out` too small.
/// Example: `auto v = llm::quant::pack_into<llm::quant::q4_0>(bytes, blocks, n, k, pool);`
template <packable_format F>
packed_view<F> pack_into(std::span<std::uint8_t> out, std::span<const typename F::block> blocks, std::size_t rows,
                         std::size_t cols, parallel::policy auto&& exec) {
    detail::check_pack<F>("pack_into", blocks.size(), rows, cols, cols / F::block_size);
    const std::size_t need = packed_view<F>::packed_bytes(rows, cols);
    llm::check(out.size() >= need, "pack_into<", F::name, ">: ", out.size(), " bytes, the packed [", rows, ", ", cols,
               "] matrix needs ", need);
    const std::size_t groups = (rows + pack_group_rows - 1) / pack_group_rows, nb = cols / F::block_size;
    auto* scales = reinterpret_cast<f16*>(out.data() + groups * nb * detail::packed_code_bytes<F>());
    // About 256 KiB of codes per chunk: a few hundred microseconds of copying against the
    // microseconds of a hand-off.
    const std::size_t grain = std::max<std::size_t>(1, (256u << 10) / std::max<std::size_t>(1, nb * detail::packed_code_bytes<F>()));
    parallel::parallel_for(exec, groups, grain, [&](std::size_t g0, std::size_t g1) {
        detail::pack_blocks<F>(blocks.data(), nb, rows, cols, out.data(), scales, g0, g1);
    });
    return {out.data(), scales, rows, cols};
}

/// pack_into on the calling thread.
/// Example: `auto v = llm::quant::pack_into<llm::quant::q4_0>(bytes, blocks, n, k);`
template <packable_format F>
packed_view<F> pack_into(std::span<std::uint8_t> out, std::span<const typename F::block> blocks, std::size_t rows,
                         std::size_t cols) {
    return pack_into<F>(out, blocks, rows, cols, parallel::sequential{});
}

/// Packed weights as gemv / gemm take them: llm::quant::packed_matrix or packed_view.
/// Example: `static_assert(llm::quant::packed_weights<llm::quant::packed_matrix<llm::quant::q4_0>>);`
template <class W>
concept packed_weights = requires(const std::remove_cvref_t<W>& w) {
    typename std::remove_cvref_t<W>::packed_format;
    { w.view() } -> std::same_as<packed_view<typename std::remove_cvref_t<W>::packed_format>>;
};

/// The block format of packed weights.
/// Example: `using F = llm::quant::packed_format_t<decltype(wp)>;  // llm::quant::q4_0`
template <packed_weights W>
using packed_format_t = typename std::remove_cvref_t<W>::packed_format;

}  // namespace llm::quant

// ---- the kernels, compiled once per instruction set -------------------------------------------
#if LLM_QUANT_X86
#define LLM_PER_ISA_FILE <llm/quant/detail/packed_kernels.inc>
#define LLM_PER_ISA_PREFIX qp
#include <llm/quant/detail/per_isa.inc>
#undef LLM_PER_ISA_FILE
#undef LLM_PER_ISA_PREFIX
#endif  // LLM_QUANT_X86

namespace llm::quant {

namespace detail {

template <class W>
auto as_packed(const W& w) noexcept {
    return w.view();
}

/// The exact integer terms of one K super-block (row block `blk`) against Q8_K activations `a`
/// (Q4_K's codes in its transposed order: element 4 i + t of group j at qs[32 i + 4 j + t]):
/// Q4_K: s = sum_j sc_j sum_l q x, mins = sum_j m_j (bsums[2 j] + bsums[2 j + 1]); Q5_K the same
/// with q = low nibble + 16 x bit j of qh[l] and the activations in their natural order; Q3_K: s =
/// sum_g sc_g (sum_l q x - 4 bsums[g]) (q the unsigned 3-bit code, sc_g signed), mins = 0; Q2_K: s =
/// sum_g sc_g sum_l q x, mins = sum_g m_g bsums[g] (sc_g, m_g the low and high nibbles of scales[g]); Q6_K: s =
/// sum_g sc_g sum_l q x - 32 sum_g sc_g bsums[g] (q the unsigned 6-bit code), mins = 0.
template <class F>
void k_block_terms(const typename F::block& blk, const block_q8_k& a, std::int32_t& s, std::int32_t& mins) noexcept {
    s = 0;
    mins = 0;
    if constexpr (std::is_same_v<F, q4_k>) {
        for (int j = 0; j < 8; ++j) {
            std::uint8_t sc = 0, mn = 0;
            scale_min_k4(j, blk.scales, sc, mn);
            std::int32_t sj = 0;
            for (int l = 0; l < 32; ++l) {
                const int q = (blk.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
                sj += q * a.qs[32 * (l / 4) + 4 * j + l % 4];
            }
            s += sc * sj;
            mins += mn * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
        }
    } else if constexpr (std::is_same_v<F, q2_k>) {
        for (int g = 0; g < 16; ++g) {
            std::int32_t sg = 0;
            for (int e = 16 * g; e < 16 * g + 16; ++e) {
                const int h = e / 128, k = (e % 128) / 32, l = e % 32;
                sg += ((blk.qs[32 * h + l] >> (2 * k)) & 3) * a.qs[e];
            }
            s += (blk.scales[g] & 0xF) * sg;
            mins += (blk.scales[g] >> 4) * a.bsums[g];
        }
    } else if constexpr (std::is_same_v<F, q3_k>) {
        for (int g = 0; g < 16; ++g) {
            std::int32_t sg = 0;
            for (int e = 16 * g; e < 16 * g + 16; ++e) {
                const int h = e / 128, k = (e % 128) / 32, l = e % 32;
                const int q = ((blk.qs[32 * h + l] >> (2 * k)) & 3) | (((blk.hmask[l] >> (4 * h + k)) & 1) << 2);
                sg += q * a.qs[e];
            }
            s += scale_q3_k(blk.scales, g) * (sg - 4 * a.bsums[g]);
        }
    } else if constexpr (std::is_same_v<F, q5_k>) {
        for (int j = 0; j < 8; ++j) {
            std::uint8_t sc = 0, mn = 0;
            scale_min_k4(j, blk.scales, sc, mn);
            std::int32_t sj = 0;
            for (int l = 0; l < 32; ++l) {
                const int q = ((blk.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF) | (((blk.qh[l] >> j) & 1) << 4);
                sj += q * a.qs[32 * j + l];
            }
            s += sc * sj;
            mins += mn * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
        }
    } else {
        std::int32_t off = 0;
        for (int e = 0; e < 256; ++e) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const int low = (blk.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
            const int q = low | (((blk.qh[32 * h + l] >> (2 * k)) & 3) << 4);
            s += blk.scales[e / 16] * q * a.qs[e];
        }
        for (int g = 0; g < 16; ++g) {
            off += blk.scales[g] * a.bsums[g];
        }
        s -= 32 * off;
    }
}

/// The exact int32 sum of a 32-value block's codes times the activation codes, less the codes'
/// offset (Q4_0's 8, Q5_0's 16) times the activation block's code sum: sum_j (q_j - offset) x_j.
template <class F>
std::int32_t block_sum_32(const typename F::block& blk, const act_q8_0& a) noexcept {
    [[maybe_unused]] std::uint32_t qh = 0;
    if constexpr (packed_q5<F>) {
        std::memcpy(&qh, blk.qh, 4);
    }
    std::int32_t s = 0;
    for (int j = 0; j < 32; ++j) {
        int q = 0;
        if constexpr (std::is_same_v<F, q8_0>) {
            q = blk.qs[j];
        } else {
            q = (blk.qs[j % 16] >> (4 * (j / 16))) & 0xF;
            if constexpr (packed_q5<F>) {
                q |= static_cast<int>((qh >> j) & 1u) << 4;
            }
        }
        s += q * a.qs[j];
    }
    constexpr int offset = std::is_same_v<F, q4_0> ? 8 : std::is_same_v<F, q5_0> ? 16 : 0;
    return s - offset * a.sum;
}

/// The portable packed kernel: the SIMD kernels' bits (the same exact int32 block sums, the same
/// fp32 products float(d_w) x d_x and fma per block in block order), one output at a time, the
/// output itself the accumulator. 32-value formats: per block acc = fma(float(S), float(d) x d_x,
/// acc), then (Q4_1, Q5_1) acc = fma(float(m), d_x x float(sum x), acc). K formats: per super-block
/// acc = fma(float(s), float(d) x d_x, acc), then (Q4_K, Q5_K) acc = fma(float(mins), -(float(dmin)
/// x d_x), acc).
template <class F>
void packed_generic_groups(const packed_view<F>& w, std::size_t g0, std::size_t g1, const act_block_t<F>* act,
                           std::size_t act_rs, std::size_t mrows, float* out, std::size_t out_rs,
                           std::size_t out_cs) noexcept {
    const std::size_t nb = w.blocks_per_row();
    for (std::size_t r = pack_group_rows * g0; r < std::min(w.rows, pack_group_rows * g1); ++r) {
        for (std::size_t m = 0; m < mrows; ++m) {
            out[m * out_rs + r * out_cs] = 0.0f;
        }
        for (std::size_t b = 0; b < nb; ++b) {
            const typename F::block blk = w.block(r, b);
            for (std::size_t m = 0; m < mrows; ++m) {
                const act_block_t<F>& a = act[m * act_rs + b];
                float& o = out[m * out_rs + r * out_cs];
                if constexpr (packed_k<F>) {
                    std::int32_t s = 0, mins = 0;
                    k_block_terms<F>(blk, a, s, mins);
                    o = std::fma(static_cast<float>(s), static_cast<float>(blk.d) * a.d, o);
                    if constexpr (packed_k_mins<F>) {
                        o = std::fma(static_cast<float>(mins), -(static_cast<float>(blk.dmin) * a.d), o);
                    }
                } else {
                    o = std::fma(static_cast<float>(block_sum_32<F>(blk, a)), static_cast<float>(blk.d) * a.d, o);
                    if constexpr (packed_min<F>) {
                        o = std::fma(static_cast<float>(blk.m), a.d * static_cast<float>(a.sum), o);
                    }
                }
            }
        }
    }
}

/// Groups per parallel chunk: a GEMV (m = 1) gets enough chunks to balance the threads (2 per
/// thread, each at least 4 KiB of weights: with 8 the threads' chunks interleave, and each chunk
/// starts cold while its last prefetches land in the other thread's rows; Zen 5, 852M model, Q4_K
/// decode on 2 threads 77-81 -> 83-84 tokens/s in 5 of 5 alternated runs); a GEMM's chunk fills
/// at most half the L2, so its weights stay there while every activation row passes over them,
/// with the chunks a whole number of rounds of the threads (3 chunks on 2 threads left one idle a
/// third of the time) and an even number of groups (the AVX-512 prefill tiles take two at a time).
inline std::size_t packed_chunk_groups(std::size_t groups, std::size_t m, std::size_t group_bytes,
                                       std::size_t threads) {
    threads = std::max<std::size_t>(threads, 1);
    group_bytes = std::max<std::size_t>(group_bytes, 1);
    std::size_t g = 0;
    if (m == 1) {
        g = std::max<std::size_t>((groups + 2 * threads - 1) / (2 * threads), (4096 + group_bytes - 1) / group_bytes);
    } else {
        const std::size_t l2 = cpu_cache_sizes().l2 != 0 ? cpu_cache_sizes().l2 : (std::size_t{512} << 10);
        const std::size_t cap = std::max<std::size_t>(l2 / 2 / group_bytes, 1);
        const std::size_t chunks = ((groups + cap - 1) / cap + threads - 1) / threads * threads;
        g = (groups + chunks - 1) / chunks;
        g += g % 2;
    }
    return std::max<std::size_t>(g, 1);
}

/// y(m, n) for m < mrows, n < w.rows from activation rows quantized to Q8_0 / Q8_K (act_rs blocks apart).
template <class F, class Exec>
void packed_matmul(float* y, std::size_t y_rs, std::size_t y_cs, const act_block_t<F>* a, std::size_t act_rs,
                   std::size_t mrows, const packed_view<F>& w, kernel_isa isa, Exec& exec) {
    if (mrows == 0 || w.rows == 0) {
        return;
    }
    const std::size_t groups = w.groups();
    const std::size_t gbytes = w.blocks_per_row() * (packed_code_bytes<F>() + packed_scale_bytes<F>());
    const std::size_t chunk = packed_chunk_groups(groups, mrows, gbytes, static_cast<std::size_t>(exec.size()));
    parallel::parallel_for(exec, groups, chunk, [&](std::size_t g0, std::size_t g1) {
        switch (isa) {
#if LLM_QUANT_X86
        case kernel_isa::avx512_vnni: qp_avx512_vnni::groups<F>(w, g0, g1, a, act_rs, mrows, y, y_rs, y_cs); break;
        case kernel_isa::avx_vnni: qp_avx_vnni::groups<F>(w, g0, g1, a, act_rs, mrows, y, y_rs, y_cs); break;
        case kernel_isa::avx2: qp_avx2::groups<F>(w, g0, g1, a, act_rs, mrows, y, y_rs, y_cs); break;
#endif
        default: packed_generic_groups<F>(w, g0, g1, a, act_rs, mrows, y, y_rs, y_cs); break;
        }
    });
}

/// The shared body of the packed gemv and gemm: quantizes the activation rows to Q8_0 / Q8_K (as the
/// unpacked integer paths do), then packed_matmul.
template <class F, class TX, class Exec>
void packed_impl(const char* fn, float* y, std::size_t y_rs, std::size_t y_cs, const TX* x, std::size_t x_rs,
                 std::size_t x_cs, std::size_t mrows, const packed_view<F>& w, kernel_isa path, llm::workspace& ws,
                 Exec& exec) {
    const kernel_isa isa = resolve_isa(path, fn);
    if (mrows == 0 || w.rows == 0) {
        return;
    }
    const std::size_t nb = w.blocks_per_row(), threads = static_cast<std::size_t>(exec.size());
    const llm::workspace::frame frame(ws);
    act_block_t<F>* a = ws.take<act_block_t<F>>(mrows * nb, fn, "the quantized activations");
    const std::size_t row_grain = std::max<std::size_t>(1, (mrows + 2 * threads - 1) / (2 * threads));
    parallel::parallel_for(exec, mrows, row_grain, [&](std::size_t m0, std::size_t m1) {
        quantize_act_rows<F>(x, x_rs, x_cs, m0, m1, nb, a);
    });
    packed_matmul<F>(y, y_rs, y_cs, a, nb, mrows, w, isa, exec);
}

}  // namespace detail

/// y = x W^T for one activation row (decode) with packed weights: y[n] = sum_k x[k] W(n, k).
/// x is quantized to Q8_0 (Q3_K / Q4_K / Q5_K / Q6_K: Q8_K) as the unpacked gemv does; each output is
///   sum over blocks b, in block order, of fma(float(S(n, b)), float(d_w) x d_x, acc),
/// S the exact int32 block sum of code products (Q4_0's offset 8 removed through the activation
/// block's code sum; K formats per super-block: S = sum of group scale x code x activation
/// products, Q3_K's offset 4 and Q6_K's 32 removed through the activation group sums, then for Q4_K / Q5_K a second
/// fma(float(M), -(float(dmin_w) x d_x), acc) of the minimums' sum M), one fp32 accumulator per
/// output and no horizontal sum. Every path
/// (generic portable C++, avx2, avx_vnni, avx512_vnni) gives these bits, and gemm's rows equal
/// gemv's for any M and executor. The bits differ from the unpacked gemv's (8-lane partial sums
/// there); both are within the same derived bound of the exact product of the quantized values.
///   y: [N] fp32 (any stride); x: [K] fp32 or bf16 (any stride); w: packed_matrix / packed_view;
///   options: the path; ws: K / 32 activation blocks (a warmed call allocates nothing); exec last.
/// Errors (llm::error): x or y of the wrong length, a path the CPU lacks.
/// Example: `llm::quant::gemv(y, x, wp, {}, ws, pool);`
template <view_of_rank<1> Y, dense_view<1> X, packed_weights W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, const W& w, matmul_options options, llm::workspace& ws, Exec&& exec) {
    using F = packed_format_t<W>;
    const packed_view<F> v = detail::as_packed(w);
    llm::check(static_cast<std::size_t>(x.extent(0)) == v.cols, "gemv<packed ", F::name, ">: x has ", x.extent(0),
               " values but w has ", v.cols, " columns");
    llm::check(static_cast<std::size_t>(y.extent(0)) == v.rows, "gemv<packed ", F::name, ">: y has ", y.extent(0),
               " values but w has ", v.rows, " rows");
    detail::packed_impl<F>("gemv", y.data(), 0, static_cast<std::size_t>(y.stride(0)), x.data(), 0,
                           static_cast<std::size_t>(x.stride(0)), 1, v, options.path, ws, exec);
}

/// Packed gemv with a temporary workspace.
/// Example: `llm::quant::gemv(y, x, wp, {}, llm::parallel::sequential{});`
template <view_of_rank<1> Y, dense_view<1> X, packed_weights W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, const W& w, matmul_options options, Exec&& exec) {
    llm::workspace ws;
    gemv(y, x, w, options, ws, exec);
}

/// Packed gemv on llm::parallel::default_pool().
/// Example: `llm::quant::gemv(y, x, wp, {}, ws);`
template <view_of_rank<1> Y, dense_view<1> X, packed_weights W>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, const W& w, matmul_options options, llm::workspace& ws) {
    gemv(y, x, w, options, ws, parallel::default_pool());
}

/// Packed gemv with a temporary workspace on llm::parallel::default_pool().
/// Example: `llm::quant::gemv(y, x, wp);`
template <view_of_rank<1> Y, dense_view<1> X, packed_weights W>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, const W& w, matmul_options options = {}) {
    llm::workspace ws;
    gemv(y, x, w, options, ws, parallel::default_pool());
}

/// y = x W^T for M activation rows (prefill) with packed weights: each row's outputs are the
/// packed gemv's of that row, bit for bit (the same per-output fma chain); tiles of 4 activation
/// rows by one group of 8 weight rows unpack each weight block once for 4 rows (AVX-512 VNNI: 6 rows
/// by two groups, 16 weight rows per 512-bit vector).
///   y: [M, N] fp32 (any strides); x: [M, K] fp32 or bf16 (any strides); w: packed weights;
///   ws: M K / 32 activation blocks (40 bytes each; K formats M K / 256 of 292). Errors as gemv.
/// Example: `llm::quant::gemm(y, x, wp, {}, ws, pool);`
template <view_of_rank<2> Y, dense_view<2> X, packed_weights W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, const W& w, matmul_options options, llm::workspace& ws, Exec&& exec) {
    using F = packed_format_t<W>;
    const packed_view<F> v = detail::as_packed(w);
    const std::size_t m = static_cast<std::size_t>(x.extent(0));
    llm::check(static_cast<std::size_t>(x.extent(1)) == v.cols, "gemm<packed ", F::name, ">: x has ", x.extent(1),
               " columns but w has ", v.cols);
    llm::check(static_cast<std::size_t>(y.extent(0)) == m && static_cast<std::size_t>(y.extent(1)) == v.rows,
               "gemm<packed ", F::name, ">: y is [", y.extent(0), ", ", y.extent(1), "] but x W^T is [", m, ", ",
               v.rows, "]");
    detail::packed_impl<F>("gemm", y.data(), static_cast<std::size_t>(y.stride(0)),
                           static_cast<std::size_t>(y.stride(1)), x.data(), static_cast<std::size_t>(x.stride(0)),
                           static_cast<std::size_t>(x.stride(1)), m, v, options.path, ws, exec);
}

/// Packed gemm with a temporary workspace.
/// Example: `llm::quant::gemm(y, x, wp, {}, pool);`
template <view_of_rank<2> Y, dense_view<2> X, packed_weights W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, const W& w, matmul_options options, Exec&& exec) {
    llm::workspace ws;
    gemm(y, x, w, options, ws, exec);
}

/// Packed gemm on llm::parallel::default_pool().
/// Example: `llm::quant::gemm(y, x, wp, {}, ws);`
template <view_of_rank<2> Y, dense_view<2> X, packed_weights W>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, const W& w, matmul_options options, llm::workspace& ws) {
    gemm(y, x, w, options, ws, parallel::default_pool());
}

/// Packed gemm with a temporary workspace on llm::parallel::default_pool().
/// Example: `llm::quant::gemm(y, x, wp);`
template <view_of_rank<2> Y, dense_view<2> X, packed_weights W>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, const W& w, matmul_options options = {}) {
    llm::workspace ws;
    gemm(y, x, w, options, ws, parallel::default_pool());
}

/// Packed gemm with activations quantized beforehand (quantize_activations for a format sharing
/// F's activation blocks, activation_compatible: any 32-value format for Q4_0 / Q8_0, Q2_K / Q3_K /
/// Q5_K / Q6_K for Q3_K, Q5_K and Q6_K, Q4_K for Q4_K): bit for bit gemm(y, x, w, ...) of the rows `a` was quantized from.
///   y: [M, N] fp32; a: M rows of K values; w: packed weights; exec last.
/// Errors (llm::error): y not [M, N], K disagreeing, a path the CPU lacks.
/// Example: `llm::quant::gemm(y, qa, wp, {}, pool);`
template <view_of_rank<2> Y, prequantized A, packed_weights W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float> && activation_compatible<prequantized_format_t<A>, packed_format_t<W>>
void gemm(Y&& y, const A& a, const W& w, matmul_options options, Exec&& exec) {
    using F = packed_format_t<W>;
    const packed_view<F> v = detail::as_packed(w);
    const auto rows = detail::as_rows(a);
    llm::check(rows.cols == v.cols, "gemm<packed ", F::name, ">: the quantized activations have ", rows.cols,
               " columns but w has ", v.cols);
    llm::check(static_cast<std::size_t>(y.extent(0)) == rows.rows && static_cast<std::size_t>(y.extent(1)) == v.rows,
               "gemm<packed ", F::name, ">: y is [", y.extent(0), ", ", y.extent(1), "] but a W^T is [", rows.rows,
               ", ", v.rows, "]");
    const kernel_isa isa = detail::resolve_isa(options.path, "gemm");
    detail::packed_matmul<F>(y.data(), static_cast<std::size_t>(y.stride(0)), static_cast<std::size_t>(y.stride(1)),
                             rows.data, rows.row_stride, rows.rows, v, isa, exec);
}

/// Packed gemv with activations quantized beforehand (one row): bit for bit gemv(y, x, w, ...).
/// Example: `llm::quant::gemv(y, qa, wp, {}, pool);`
template <view_of_rank<1> Y, prequantized A, packed_weights W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float> && activation_compatible<prequantized_format_t<A>, packed_format_t<W>>
void gemv(Y&& y, const A& a, const W& w, matmul_options options, Exec&& exec) {
    using F = packed_format_t<W>;
    const packed_view<F> v = detail::as_packed(w);
    const auto rows = detail::as_rows(a);
    llm::check(rows.rows == 1 && rows.cols == v.cols, "gemv<packed ", F::name, ">: the quantized activations are [",
               rows.rows, ", ", rows.cols, "], want [1, ", v.cols, "]");
    llm::check(static_cast<std::size_t>(y.extent(0)) == v.rows, "gemv<packed ", F::name, ">: y has ", y.extent(0),
               " values but w has ", v.rows, " rows");
    const kernel_isa isa = detail::resolve_isa(options.path, "gemv");
    detail::packed_matmul<F>(y.data(), 0, static_cast<std::size_t>(y.stride(0)), rows.data, rows.row_stride, 1, v, isa,
                             exec);
}

}  // namespace llm::quant
