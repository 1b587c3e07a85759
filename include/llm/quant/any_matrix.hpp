// SPDX-License-Identifier: Apache-2.0
// llm::quant::any_matrix: a [rows, cols] weight matrix whose element type is known at run time (a GGUF
// tensor's: f32, f16, bf16 or a block format), held as a view of bytes it does not own, and
// llm::quant::linear_forward, y = x W^T over it (quant::gemm for block formats, an F16C / bf16 dot kernel
// or a widened fp32 GEMM for f16 / bf16, nn::linear_forward for f32).
#pragma once

#include <llm/core/bf16.hpp>
#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/core/f16.hpp>
#include <llm/core/workspace.hpp>
#include <llm/gemm/cpu.hpp>
#include <llm/io/ggml_type.hpp>
#include <llm/nn/linear.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/accessor.hpp>
#include <llm/quant/basic_formats.hpp>
#include <llm/quant/detail/panel_rows.hpp>
#include <llm/quant/isa.hpp>
#include <llm/quant/k_formats.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/quant/packed.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/storage.hpp>
#include <llm/tensor/tensor.hpp>
#include <llm/tensor/views.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if LLM_QUANT_X86
#include <immintrin.h>
#endif

namespace llm::quant {

namespace detail {

/// Calls f(std::type_identity<F>{}) for the block format F stored as GGUF type t (q4_0, q4_1,
/// q5_0, q5_1, q8_0, q2_K .. q6_K) and returns true; false for any other type.
template <class Fn>
bool visit_block_format(io::ggml_type t, Fn&& f) {
    switch (t) {
        case io::ggml_type::q4_0: f(std::type_identity<q4_0>{}); return true;
        case io::ggml_type::q4_1: f(std::type_identity<q4_1>{}); return true;
        case io::ggml_type::q5_0: f(std::type_identity<q5_0>{}); return true;
        case io::ggml_type::q5_1: f(std::type_identity<q5_1>{}); return true;
        case io::ggml_type::q8_0: f(std::type_identity<q8_0>{}); return true;
        case io::ggml_type::q2_k: f(std::type_identity<q2_k>{}); return true;
        case io::ggml_type::q3_k: f(std::type_identity<q3_k>{}); return true;
        case io::ggml_type::q4_k: f(std::type_identity<q4_k>{}); return true;
        case io::ggml_type::q5_k: f(std::type_identity<q5_k>{}); return true;
        case io::ggml_type::q6_k: f(std::type_identity<q6_k>{}); return true;
        default: return false;
    }
}

/// 16-bit float bits to fp32: f16 (IEEE half; F16C's conversion where the target has it, the
/// portable decoder taking tens of cycles) or bf16 (the high half of an fp32).
template <bool F16>
inline float half_to_float(std::uint16_t b) noexcept {
    if constexpr (F16) {
        return blas::detail::to_float(f16::from_bits(b));
    } else {
        return static_cast<float>(bf16::from_bits(b));
    }
}

/// Portable rows [n0, n1) of y(m, n) = sum_j x(m, j) W(n, j), W f16 / bf16 bits, m < mrows.
template <bool F16>
void half_rows_generic(const std::uint16_t* w, std::size_t k, std::size_t n0, std::size_t n1, const float* x, std::size_t x_rs,
                       std::size_t mrows, float* y, std::size_t y_rs, std::size_t y_cs) noexcept {
    for (std::size_t n = n0; n < n1; ++n) {
        const std::uint16_t* wr = w + n * k;
        for (std::size_t m = 0; m < mrows; ++m) {
            float acc = 0.0f;
            for (std::size_t j = 0; j < k; ++j) {
                acc += half_to_float<F16>(wr[j]) * x[m * x_rs + j];
            }
            y[m * y_rs + n * y_cs] = acc;
        }
    }
}

#if LLM_QUANT_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

template <bool F16>
inline __m256 half8(const std::uint16_t* p) noexcept {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (F16) {
        return _mm256_cvtph_ps(h);
    } else {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
}

inline float hsum8(__m256 v) noexcept {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// The activation row x[0, k) as the bf16 kernel reads it: each 16-value block j as its even
/// values then its odd ones (bf16 weights widen without a shuffle: a 32-bit lane of 16 weights'
/// 32 bytes holds weights 2i and 2i + 1, a shift makes the first an fp32, a mask the second);
/// the values past the last whole block stay in place.
inline void bf16_pair_order(const float* x, std::size_t k, float* out) noexcept {
    std::size_t j = 0;
    for (; j + 16 <= k; j += 16) {
        for (std::size_t i = 0; i < 8; ++i) {
            out[j + i] = x[j + 2 * i];
            out[j + 8 + i] = x[j + 2 * i + 1];
        }
    }
    for (; j < k; ++j) out[j] = x[j];
}

/// MM activation rows (1 .. 4) against R weight rows at once from row n (R 4 for one activation
/// row, else 2: several weight streams in flight keep the memory busy, where one row at a time
/// left it a third idle). Per 64-byte line of each weight row: a prefetch 2 KiB ahead (near the
/// row's end, into the row R on), the weights widened once (f16: F16C per 8 values; bf16: 16
/// values as even / odd halves, x in bf16_pair_order) and multiplied into each activation row's
/// fp32 accumulators (two sets alternate when R x MM <= 4, to cover the FMA latency); then
/// 16-value and scalar tails.
template <bool F16, std::size_t R, std::size_t MM>
void half_row_group_avx2(const std::uint16_t* w, std::size_t k, std::size_t n, const float* x, std::size_t x_rs, float* y,
                         std::size_t y_rs, std::size_t y_cs) noexcept {
    constexpr std::size_t sets = R * MM <= 4 ? 2 : 1;
    // values: 2 KiB of 16-bit weights per stream (Zen 5, 42 GB/s per core, 4 x L3 of weights: 1 KiB
    // read 27-33 GB/s, 2 KiB 36-41, 4 KiB 34-42; Emerald Rapids reached its 13 GB/s with 1 KiB)
    constexpr std::size_t ahead = 1024;
    const std::uint16_t* wr[R];
    for (std::size_t i = 0; i < R; ++i) wr[i] = w + (n + i) * k;
    __m256 acc[sets][R][MM];
    for (auto& set : acc) {
        for (auto& row : set) {
            for (auto& a : row) a = _mm256_setzero_ps();
        }
    }
    // 16 values from j into accumulator set `set`
    const auto step = [&](std::size_t set, std::size_t j) {
        __m256 lo[R], hi[R];
        for (std::size_t i = 0; i < R; ++i) {
            if constexpr (F16) {
                lo[i] = half8<true>(wr[i] + j);
                hi[i] = half8<true>(wr[i] + j + 8);
            } else {
                const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[i] + j));
                lo[i] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                hi[i] = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
            }
        }
        for (std::size_t r = 0; r < MM; ++r) {
            const __m256 x0 = _mm256_loadu_ps(x + r * x_rs + j), x1 = _mm256_loadu_ps(x + r * x_rs + j + 8);
            for (std::size_t i = 0; i < R; ++i) {
                acc[set][i][r] = _mm256_fmadd_ps(lo[i], x0, acc[set][i][r]);
                acc[set][i][r] = _mm256_fmadd_ps(hi[i], x1, acc[set][i][r]);
            }
        }
    };
    std::size_t j = 0;
    for (; j + 32 <= k; j += 32) {
        // Near a row's end each stream prefetches its row in the next group, R rows on
        // (ahead_block). The address is an integer: past the matrix's end it names memory that
        // is never read.
        const std::size_t q = ahead_block(j, ahead, k, R);
        for (std::size_t i = 0; i < R; ++i) {
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(wr[i]) + 2 * q), _MM_HINT_T0);
        }
        step(0, j);
        step(sets - 1, j + 16);
    }
    for (; j + 16 <= k; j += 16) step(0, j);
    for (std::size_t i = 0; i < R; ++i) {
        for (std::size_t r = 0; r < MM; ++r) {
            float s = hsum8(sets == 2 ? _mm256_add_ps(acc[0][i][r], acc[sets - 1][i][r]) : acc[0][i][r]);
            for (std::size_t t = j; t < k; ++t) s += half_to_float<F16>(wr[i][t]) * x[r * x_rs + t];
            y[r * y_rs + (n + i) * y_cs] = s;
        }
    }
}

/// MM activation rows (1 .. 4) against weight rows [n0, n1): half_row_group_avx2 over groups of
/// rows, then the rows left one at a time. bf16: x in bf16_pair_order.
template <bool F16, std::size_t MM>
void half_rows_avx2(const std::uint16_t* w, std::size_t k, std::size_t n0, std::size_t n1, const float* x, std::size_t x_rs,
                    float* y, std::size_t y_rs, std::size_t y_cs) noexcept {
    constexpr std::size_t group = MM == 1 ? 4 : 2;
    std::size_t n = n0;
    for (; n + group <= n1; n += group) half_row_group_avx2<F16, group, MM>(w, k, n, x, x_rs, y, y_rs, y_cs);
    for (; n < n1; ++n) half_row_group_avx2<F16, 1, MM>(w, k, n, x, x_rs, y, y_rs, y_cs);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // LLM_QUANT_X86

/// Activation rows up to which f16 / bf16 weights are dotted row by row (each weight row read
/// once per 4 activation rows); more rows run llm::blas::own's GEMM (weights widened as packed).
inline constexpr std::size_t half_dot_max_rows = 8;

}  // namespace detail

/// How an any_matrix's bytes hold its rows: one row after another as GGUF stores them, (Q4_0, Q8_0,
/// Q4_K and Q6_K only) llm::quant::packed_view's groups of 8 interleaved rows (llm::quant::repack makes
/// them), (bf16 only) llm::blas::bf16_weight_panels' 64-row panels of k-pairs (llm::quant::pack_bf16_panels),
/// or (f16 only) llm::blas::f16_weight_panels' 64-row panels (llm::quant::pack_f16_panels).
/// Example: `if (w.layout() == llm::quant::weight_layout::interleaved8) { ... }`
enum class weight_layout {
    row_major,     ///< GGUF's: rows of blocks one after another
    interleaved8,  ///< llm::quant::packed_view's 8-row groups (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)
    bf16_panels,   ///< llm::blas::bf16_weight_panels: the `vdpbf16ps` GEMM's B panels (bf16)
    f16_panels,    ///< llm::blas::f16_weight_panels: 64-row panels, k-major (f16)
};

namespace detail {

/// What a 64-row panel layout of half-precision weights holds: bf16 k-pair words
/// (llm::blas::bf16_weight_panels) or f16 halves (llm::blas::f16_weight_panels), and their bytes.
struct half_panels {
    io::ggml_type type;
    std::string_view name;
    std::size_t bytes;

    static half_panels of(weight_layout layout, std::size_t rows, std::size_t cols, const char* fn) {
        if (layout == weight_layout::bf16_panels) {
            return {io::ggml_type::bf16, "bf16", checked_mul(blas::bf16_weight_panels::word_count(rows, cols), 4, fn, "the panel bytes")};
        }
        return {io::ggml_type::f16, "f16", checked_mul(blas::f16_weight_panels::element_count(rows, cols), 2, fn, "the panel bytes")};
    }
};

}  // namespace detail

/// A [rows, cols] weight matrix (y = x W^T reads it as nn.Linear's [out, in]) whose element
/// type is a run-time GGUF type: f32, f16, bf16, or a block format of llm::quant (q4_0, q4_1,
/// q5_0, q5_1, q8_0, q2_K .. q6_K), rows stored one after the other as GGUF stores a matrix
/// (ggml's ne0 = cols). A view: it points at bytes it does not own (a memory-mapped GGUF
/// file's tensor data, or a buffer the loader keeps), which must outlive it. Default- or
/// shape-constructed, it has a shape and no data (a placeholder a loader fills).
/// Example: `llm::quant::any_matrix w(llm::io::ggml_type::q4_0, file.tensor_bytes(info), rows, cols);`
class any_matrix {
public:
    /// An empty 0 x 0 matrix.
    any_matrix() = default;
    /// A rows x cols placeholder without data (type f32; has_data() is false).
    /// Example: `llm::quant::any_matrix w(4096, 4096);`
    any_matrix(std::size_t rows, std::size_t cols) noexcept : rows_(rows), cols_(cols) {}
    /// A view of `bytes` as a rows x cols matrix of GGUF type `type`. llm::error unless the type
    /// is supported, cols is a multiple of its block size, bytes holds exactly rows rows and is
    /// aligned for the type's block (or element).
    /// Example: `llm::quant::any_matrix w(llm::io::ggml_type::q8_0, bytes, 64, 128);`
    any_matrix(io::ggml_type type, std::span<const std::byte> bytes, std::size_t rows, std::size_t cols)
        : type_(type), data_(bytes.data()), rows_(rows), cols_(cols) {
        const auto tr = io::ggml_traits(type);
        std::size_t align = 0;
        if (type == io::ggml_type::f32) {
            align = alignof(float);
        } else if (type == io::ggml_type::f16 || type == io::ggml_type::bf16) {
            align = alignof(std::uint16_t);
        } else {
            detail::visit_block_format(type, [&](auto id) { align = alignof(typename decltype(id)::type::block); });
        }
        llm::check(align != 0, "any_matrix: GGUF type ", tr.name.empty() ? std::string_view("(invalid)") : tr.name,
                   " (id ", static_cast<int>(type), ") is not supported (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K .. q6_K)");
        llm::check(cols % tr.block_size == 0, "any_matrix: ", tr.name, " rows of ", cols, " values are not a whole number of ",
                   tr.block_size, "-value blocks");
        const std::size_t row = cols / tr.block_size * tr.type_size;
        llm::check(rows == 0 || (row != 0 && bytes.size() / row == rows && bytes.size() % row == 0), "any_matrix: ", bytes.size(),
                   " bytes do not hold ", rows, " ", tr.name, " rows of ", cols, " values (", row, " bytes each)");
        llm::check(reinterpret_cast<std::uintptr_t>(data_) % align == 0, "any_matrix: ", tr.name, " data is not aligned to ", align,
                   " bytes");
    }
    /// A view of `bytes` in `layout`: row_major as the constructor above; interleaved8 (a
    /// packable_format's types only) as llm::quant::packed_view lays them out, bytes.size() equal to
    /// packed_view<F>::packed_bytes(rows, cols); bf16_panels (bf16 only) as
    /// llm::blas::bf16_weight_panels lays them out, 4 x word_count(rows, cols) bytes, 64-byte
    /// aligned; f16_panels (f16 only) as llm::blas::f16_weight_panels, 2 x element_count(rows,
    /// cols) bytes, 64-byte aligned. llm::error otherwise, naming the values.
    /// Example: `llm::quant::any_matrix w(llm::io::ggml_type::q4_0, packed_bytes, 64, 128, llm::quant::weight_layout::interleaved8);`
    any_matrix(io::ggml_type type, std::span<const std::byte> bytes, std::size_t rows, std::size_t cols, weight_layout layout)
        : type_(type), data_(bytes.data()), rows_(rows), cols_(cols), layout_(layout) {
        if (layout == weight_layout::row_major) {
            *this = any_matrix(type, bytes, rows, cols);
            return;
        }
        const auto tr = io::ggml_traits(type);
        if (layout == weight_layout::bf16_panels || layout == weight_layout::f16_panels) {
            const auto panels = detail::half_panels::of(layout, rows, cols, "any_matrix");
            llm::check(type == panels.type, "any_matrix: the ", panels.name, "_panels layout holds ", panels.name, ", not ",
                       tr.name.empty() ? std::string_view("(invalid)") : tr.name);
            llm::check(bytes.size() == panels.bytes, "any_matrix: ", bytes.size(), " bytes are not the ", panels.bytes, " of ", rows,
                       " x ", cols, " ", panels.name, " in 64-row panels");
            llm::check(reinterpret_cast<std::uintptr_t>(data_) % 64 == 0, "any_matrix: ", panels.name,
                       " panels are not 64-byte aligned");
            return;
        }
        std::size_t need = 0;
        const bool packable = detail::visit_block_format(type, [&](auto id) {
            using F = typename decltype(id)::type;
            if constexpr (packable_format<F>) {
                need = packed_view<F>::packed_bytes(rows, cols);
            }
        }) && need != 0;
        llm::check(packable || rows * cols == 0, "any_matrix: the interleaved8 layout holds q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K or q6_K, not ",
                   tr.name.empty() ? std::string_view("(invalid)") : tr.name);
        llm::check(cols % tr.block_size == 0, "any_matrix: ", tr.name, " rows of ", cols, " values are not a whole number of ",
                   tr.block_size, "-value blocks");
        llm::check(bytes.size() == need, "any_matrix: ", bytes.size(), " bytes are not the ", need, " of ", rows, " x ", cols, " ",
                   tr.name, " in 8-row groups");
        llm::check(reinterpret_cast<std::uintptr_t>(data_) % alignof(f16) == 0, "any_matrix: packed ", tr.name,
                   " data is not aligned to 2 bytes");
    }

    /// Rank 2.
    static constexpr std::size_t rank() noexcept { return 2; }
    /// rows (r = 0) or cols (r = 1).
    [[nodiscard]] std::size_t extent(std::size_t r) const noexcept { return r == 0 ? rows_ : cols_; }
    /// rows * cols.
    [[nodiscard]] std::size_t size() const noexcept { return rows_ * cols_; }
    /// The GGUF element type.
    [[nodiscard]] io::ggml_type type() const noexcept { return type_; }
    /// True once it views data (a placeholder has none).
    [[nodiscard]] bool has_data() const noexcept { return data_ != nullptr || size() == 0; }
    /// Bytes per row.
    [[nodiscard]] std::size_t row_bytes() const noexcept {
        const auto tr = io::ggml_traits(type_);
        return cols_ / tr.block_size * tr.type_size;
    }
    /// The viewed bytes (rows * row_bytes() for row_major; interleaved8: rows padded to a
    /// multiple of 8, in packed_view's layout).
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        if (data_ == nullptr) {
            return {};
        }
        if (layout_ == weight_layout::interleaved8) {
            return {data_, (rows_ + pack_group_rows - 1) / pack_group_rows * pack_group_rows * row_bytes()};
        }
        if (layout_ == weight_layout::bf16_panels) {
            return {data_, 4 * blas::bf16_weight_panels::word_count(rows_, cols_)};
        }
        if (layout_ == weight_layout::f16_panels) {
            return {data_, 2 * blas::f16_weight_panels::element_count(rows_, cols_)};
        }
        return {data_, rows_ * row_bytes()};
    }
    /// How the bytes hold the rows.
    [[nodiscard]] weight_layout layout() const noexcept { return layout_; }
    /// The packed_view of an interleaved8 matrix of format F (F its type; unchecked).
    template <packable_format F>
    [[nodiscard]] packed_view<F> packed() const noexcept {
        const auto* base = reinterpret_cast<const std::uint8_t*>(data_);
        const std::size_t groups = (rows_ + pack_group_rows - 1) / pack_group_rows, nb = cols_ / F::block_size;
        return {base, reinterpret_cast<const f16*>(base + groups * nb * detail::packed_code_bytes<F>()), rows_, cols_};
    }

    /// The panels of a bf16_panels matrix (unchecked).
    [[nodiscard]] blas::bf16_weight_panels bf16_panels() const noexcept {
        return {reinterpret_cast<const std::uint32_t*>(data_), rows_, cols_};
    }
    /// The panels of an f16_panels matrix (unchecked).
    [[nodiscard]] blas::f16_weight_panels f16_panels() const noexcept {
        return {reinterpret_cast<const std::uint16_t*>(data_), rows_, cols_};
    }

private:
    io::ggml_type type_ = io::ggml_type::f32;
    const std::byte* data_ = nullptr;
    std::size_t rows_ = 0;
    std::size_t cols_ = 0;
    weight_layout layout_ = weight_layout::row_major;
};

/// True for the GGUF types llm::quant::repack interleaves (q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K; any row count,
/// the last group padded: no extra bytes when the rows are a multiple of 8).
/// Example: `if (llm::quant::repackable(info.type)) { ... }`
inline bool repackable(io::ggml_type type) noexcept {
    bool packable = false;
    detail::visit_block_format(type, [&](auto id) { packable = packable_format<typename decltype(id)::type>; });
    return packable;
}

/// A row-major Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K any_matrix repacked into 8-row interleaved groups (llm::quant::pack's
/// layout, as llama.cpp repacks at load) in `storage` (replaced by an uninitialised buffer of the
/// packed bytes, the same as the rows' blocks when rows is a multiple of 8, then filled), returned
/// as an interleaved8 any_matrix viewing `storage`, which must outlive it. The groups are packed
/// by the threads of `exec` (so the new memory's page faults are spread over them too; the bytes
/// do not depend on the policy). linear_forward then runs the packed kernels (other bits than the
/// row-major matrix's, within the same bound). Any other matrix (type, layout, no data) is
/// returned as it is and `storage` left unchanged.
/// Example: `llm::aligned_buffer<std::byte> buf; w = llm::quant::repack(w, buf, pool);`
inline any_matrix repack(const any_matrix& w, aligned_buffer<std::byte>& storage, parallel::policy auto&& exec) {
    if (!repackable(w.type()) || w.layout() != weight_layout::row_major || w.bytes().empty()) {
        return w;
    }
    any_matrix out = w;
    detail::visit_block_format(w.type(), [&](auto id) {
        using F = typename decltype(id)::type;
        if constexpr (packable_format<F>) {
            const std::size_t n = w.extent(0), k = w.extent(1);
            aligned_buffer<std::byte> buf(uninitialized, packed_view<F>::packed_bytes(n, k));
            using blk = typename F::block;
            const std::span<const blk> blocks(reinterpret_cast<const blk*>(w.bytes().data()), n * (k / F::block_size));
            (void)pack_into<F>(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(buf.data()), buf.size()), blocks, n, k, exec);
            storage.swap(buf);
            out = any_matrix(w.type(), std::span<const std::byte>(storage.data(), storage.size()), n, k, weight_layout::interleaved8);
        }
    });
    return out;
}

/// repack on the calling thread.
/// Example: `llm::aligned_buffer<std::byte> buf; w = llm::quant::repack(w, buf);`
inline any_matrix repack(const any_matrix& w, aligned_buffer<std::byte>& storage) { return repack(w, storage, parallel::sequential{}); }

namespace detail {

/// pack_bf16_panels / pack_f16_panels: a row-major matrix of the layout's type laid out in its
/// panels in `storage` by the threads of `exec`, any other matrix returned as it is.
inline any_matrix pack_half_panels(const any_matrix& w, weight_layout layout, aligned_buffer<std::byte>& storage,
                                   parallel::policy auto&& exec) {
    const char* fn = layout == weight_layout::bf16_panels ? "quant::pack_bf16_panels" : "quant::pack_f16_panels";
    const std::size_t n = w.extent(0), k = w.extent(1);
    const auto panels = half_panels::of(layout, n, k, fn);
    if (w.type() != panels.type || w.layout() != weight_layout::row_major || w.bytes().empty()) {
        return w;
    }
    aligned_buffer<std::byte> buf(uninitialized, panels.bytes);  // 64-byte aligned, as the panels need
    const auto* src = reinterpret_cast<const std::uint16_t*>(w.bytes().data());
    // About 256 KiB of output per chunk (both layouts: 64-row panels of 2-byte values).
    static_assert(blas::bf16_weight_panels::rows_per_panel == 64 && blas::f16_weight_panels::rows_per_panel == 64);
    const std::size_t count = blas::bf16_weight_panels::panels(n), grain = std::max<std::size_t>(1, (256u << 10) / std::max<std::size_t>(1, 128 * k));
    parallel::parallel_for(exec, count, grain, [&](std::size_t p0, std::size_t p1) {
        if (layout == weight_layout::bf16_panels) {
            blas::bf16_weight_panels::pack(reinterpret_cast<const llm::bf16*>(src), n, k, reinterpret_cast<std::uint32_t*>(buf.data()), p0, p1);
        } else {
            blas::f16_weight_panels::pack(src, n, k, reinterpret_cast<std::uint16_t*>(buf.data()), p0, p1);
        }
    });
    storage.swap(buf);
    return any_matrix(panels.type, std::span<const std::byte>(storage.data(), storage.size()), n, k, layout);
}

}  // namespace detail

/// A row-major bf16 any_matrix packed into llm::blas::bf16_weight_panels (the `vdpbf16ps` GEMM's B
/// panels, packed once instead of per product) in `storage` (replaced by an uninitialised buffer
/// of the panels' bytes, then filled by the threads of `exec`: the bytes do not depend on the
/// policy), returned as a bf16_panels any_matrix viewing `storage`, which must outlive it.
/// linear_forward then multiplies more than 8 activation rows by llm::blas::own::run_packed (the
/// same bits as the row-major matrix's `vdpbf16ps` path) and fewer by a GEMV over the panels
/// (exact widening as the row-major kernel, other summation order). Any other matrix is returned
/// as it is and `storage` left unchanged. Pays where bf16_panels_pay().
/// Example: `llm::aligned_buffer<std::byte> buf; w = llm::quant::pack_bf16_panels(w, buf, pool);`
inline any_matrix pack_bf16_panels(const any_matrix& w, aligned_buffer<std::byte>& storage, parallel::policy auto&& exec) {
    return detail::pack_half_panels(w, weight_layout::bf16_panels, storage, exec);
}

/// pack_bf16_panels on the calling thread.
/// Example: `llm::aligned_buffer<std::byte> buf; w = llm::quant::pack_bf16_panels(w, buf);`
inline any_matrix pack_bf16_panels(const any_matrix& w, aligned_buffer<std::byte>& storage) {
    return pack_bf16_panels(w, storage, parallel::sequential{});
}

/// Whether packing bf16 weights with pack_bf16_panels pays on this CPU: where the default prefill
/// multiplies them by `vdpbf16ps` (llm::blas::bf16_dot_pays, AMD Zen 4 / Zen 5) and the GEMM can
/// read the panels (llm::blas::own::packed_available); not where AMX tiles multiply bf16 (their
/// path packs its own tiles).
/// Example: `if (llm::quant::bf16_panels_pay()) { w = llm::quant::pack_bf16_panels(w, buf); }`
inline bool bf16_panels_pay() noexcept {
    return blas::bf16_dot_pays() && !blas::amx_bf16_available() && blas::own<simd::default_backend>::packed_available();
}

/// A row-major f16 any_matrix laid out in llm::blas::f16_weight_panels (64-row panels, each k
/// step 64 contiguous halves) in `storage` (replaced by an uninitialised buffer of the panels'
/// bytes, then filled by the threads of `exec`: the bytes do not depend on the policy), returned
/// as an f16_panels any_matrix viewing `storage`, which must outlive it. linear_forward then
/// multiplies more than 8 activation rows by llm::blas::own::run_packed (the row-major matrix's
/// fp32 GEMM bits, W widened with contiguous reads) and fewer by a GEMV over the panels (exact
/// widening, one stream per panel, other summation order than the row kernel). Any other matrix
/// is returned as it is and `storage` left unchanged. Pays where f16_panels_pay().
/// Example: `llm::aligned_buffer<std::byte> buf; w = llm::quant::pack_f16_panels(w, buf, pool);`
inline any_matrix pack_f16_panels(const any_matrix& w, aligned_buffer<std::byte>& storage, parallel::policy auto&& exec) {
    return detail::pack_half_panels(w, weight_layout::f16_panels, storage, exec);
}

/// pack_f16_panels on the calling thread.
/// Example: `llm::aligned_buffer<std::byte> buf; w = llm::quant::pack_f16_panels(w, buf);`
inline any_matrix pack_f16_panels(const any_matrix& w, aligned_buffer<std::byte>& storage) {
    return pack_f16_panels(w, storage, parallel::sequential{});
}

/// Whether laying f16 weights out with pack_f16_panels pays on this CPU: where the default
/// backend's GEMM has 64-column micro-tiles (llm::blas::own::f16_packed_available: AVX-512
/// builds), so prefill widens panels with contiguous reads and decode reads one stream per panel
/// (measured on AMD Zen 5; BENCHMARKS.md).
/// Example: `if (llm::quant::f16_panels_pay()) { w = llm::quant::pack_f16_panels(w, buf); }`
inline bool f16_panels_pay() noexcept { return blas::own<simd::default_backend>::f16_packed_available(); }

/// Whether linear_forward with the default options rounds the fp32 activations of a bf16-weight
/// prefill to bf16 on this CPU: where `vdpbf16ps` beats fp32 FMAs (llm::blas::bf16_dot_pays) or
/// AMX tiles multiply bf16 (llm::blas::amx_bf16_available).
/// Example: `const double allowance = llm::quant::bf16_prefill_rounds() ? 0x1p-8 : 0.0;`
inline bool bf16_prefill_rounds() noexcept { return blas::bf16_dot_pays() || blas::amx_bf16_available(); }

/// Options of linear_forward.
/// Example: `llm::quant::linear_forward(y, x, w, {.bf16 = llm::blas::bf16_path::widen}, ws, pool);`
struct linear_options {
    /// bf16 weights against more than 8 activation rows (prefill): `automatic` (default) rounds
    /// the fp32 activations to bf16 and multiplies by `vdpbf16ps` (llm::blas::bf16_path::
    /// dot_round_fp32, as llama.cpp's bf16 matmul and a bf16 PyTorch Linear do) where that is
    /// faster than fp32 FMAs (llm::blas::bf16_dot_pays: AMD Zen 4 / Zen 5, not Intel cores) or
    /// where AMX tiles multiply them (llm::blas::amx_bf16_available), else widens exactly;
    /// `widen` always widens (the exact products of the fp32 GEMM); `dot` / `dot_round_fp32` /
    /// `amx` round wherever AVX512_BF16 or AMX exists.
    blas::bf16_path bf16 = blas::bf16_path::automatic;
};

/// y = x W^T for an any_matrix W [N, K] (output written, not accumulated): block formats
/// through llm::quant::gemm (activations quantized to Q8_0 / Q8_K as gemm states), f32 through
/// llm::nn::linear_forward; f16 / bf16 weights: up to 8 activation rows, each weight row widened
/// in registers (F16C / a shift) and dotted in fp32 with every row (threads split W's rows);
/// more rows: llm::blas::own's GEMM, which widens the weights exactly as it packs them (bf16
/// weights: or rounds the activations to bf16 for `vdpbf16ps`, linear_options::bf16).
///   y: [M, N] fp32 (contiguous rows), x: [M, K] fp32 (contiguous rows); options: the bf16
///   path; ws: scratch, so a warmed call allocates nothing; exec last.
/// Errors (llm::error): shapes that disagree, a matrix without data.
/// Example: `llm::quant::linear_forward(y, x, w, {}, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void linear_forward(Y&& y, X&& x, const any_matrix& w, linear_options options, llm::workspace& ws, Exec&& exec) {
    const std::size_t n = w.extent(0), k = w.extent(1), m = static_cast<std::size_t>(x.extent(0));
    llm::check(w.has_data(), "quant::linear_forward: the ", n, " x ", k, " weight matrix has no data (a placeholder)");
    llm::check(static_cast<std::size_t>(x.extent(1)) == k && static_cast<std::size_t>(y.extent(0)) == m &&
                   static_cast<std::size_t>(y.extent(1)) == n,
               "quant::linear_forward: y [", y.extent(0), ", ", y.extent(1), "] = x [", x.extent(0), ", ", x.extent(1), "] W^T with W [",
               n, ", ", k, "]");
    const std::byte* data = w.bytes().data();
    if (w.layout() == weight_layout::bf16_panels || w.layout() == weight_layout::f16_panels) {
        if (m == 0 || n == 0) {
            return;
        }
        llm::check(static_cast<std::size_t>(x.stride(1)) == 1 || k <= 1, "quant::linear_forward: x must have contiguous rows");
        llm::check(static_cast<std::size_t>(y.stride(1)) == 1 || n <= 1, "quant::linear_forward: y must have contiguous rows");
        const std::size_t x_rs = static_cast<std::size_t>(x.stride(0)), y_rs = static_cast<std::size_t>(y.stride(0));
        using own = blas::own<simd::default_backend>;
        // More than 8 rows: the GEMM over the panels where it reads them (bf16: also unless the
        // exact widening is asked for); else each panel streamed once per two rows (decode).
        const auto product = [&](const auto& panels, bool gemm, auto rows_kernel) {
            if (m > detail::half_dot_max_rows && gemm) {
                own::run_packed(strided_view<float, 2>(y.data(), llm::dims<2>(m, n), llm::dims<2>(y_rs, 1)),
                                strided_view<const float, 2>(x.data(), llm::dims<2>(m, k), llm::dims<2>(x_rs, 1)), panels, ws, exec);
                return;
            }
            const std::size_t count = std::remove_cvref_t<decltype(panels)>::panels(n);
            const std::size_t grain = std::max<std::size_t>(1, count / (4 * static_cast<std::size_t>(exec.size())));
            parallel::parallel_for(exec, count, grain, [&](std::size_t p0, std::size_t p1) {
                rows_kernel(panels, p0, p1, x.data(), x_rs, m, y.data(), y_rs);
            });
        };
        if (w.layout() == weight_layout::bf16_panels) {
            product(w.bf16_panels(), options.bf16 != blas::bf16_path::widen && own::packed_available(),
                    [](const auto&... a) { detail::bf16_panel_rows(a...); });
        } else {
            product(w.f16_panels(), own::f16_packed_available(), [](const auto&... a) { detail::f16_panel_rows(a...); });
        }
        return;
    }
    if (w.layout() == weight_layout::interleaved8) {
        detail::visit_block_format(w.type(), [&](auto id) {
            using F = typename decltype(id)::type;
            if constexpr (packable_format<F>) {
                gemm(y, x, w.packed<F>(), matmul_options{}, ws, exec);
            }
        });
        return;
    }
    switch (w.type()) {
        case io::ggml_type::f32:
            nn::linear_forward(y, x, tensor_view<const float, llm::dims<2>>(reinterpret_cast<const float*>(data), llm::dims<2>(n, k)), ws,
                               exec);
            return;
        case io::ggml_type::bf16:
        case io::ggml_type::f16: {
            const bool is_f16 = w.type() == io::ggml_type::f16;
            const auto* wb = reinterpret_cast<const std::uint16_t*>(data);
            if (m == 0 || n == 0) {
                return;
            }
            llm::check(static_cast<std::size_t>(x.stride(1)) == 1 || k <= 1, "quant::linear_forward: x must have contiguous rows");
            llm::check(static_cast<std::size_t>(y.stride(1)) == 1 || n <= 1, "quant::linear_forward: y must have contiguous rows");
            const float* xp = x.data();
            float* yp = y.data();
            const std::size_t x_rs = static_cast<std::size_t>(x.stride(0)), y_rs = static_cast<std::size_t>(y.stride(0));
            if (m > detail::half_dot_max_rows) {
                // llm::blas::own widens the 16-bit weights exactly as it packs them (W^T: a
                // stride swap, no copy)
                const auto product = [&](auto element, auto path) {
                    using T = decltype(element);
                    using S = simd::default_backend;
                    using own = blas::own<S, blas::default_blocking_t<S::width>, decltype(path)::value>;
                    const strided_view<const T, 2> wt(reinterpret_cast<const T*>(data), llm::dims<2>(k, n), llm::dims<2>(1, k));
                    own::run(strided_view<float, 2>(yp, llm::dims<2>(m, n), llm::dims<2>(y_rs, 1)),
                             strided_view<const float, 2>(xp, llm::dims<2>(m, k), llm::dims<2>(x_rs, 1)), wt, 1.0f, 0.0f, ws,
                             exec);
                };
                using widen = std::integral_constant<blas::bf16_path, blas::bf16_path::widen>;
                using round = std::integral_constant<blas::bf16_path, blas::bf16_path::dot_round_fp32>;
                const bool rounds = options.bf16 == blas::bf16_path::automatic ? bf16_prefill_rounds()
                                                                               : options.bf16 != blas::bf16_path::widen;
                if (is_f16) {
                    product(f16{}, widen{});
                } else if (rounds) {
                    product(bf16{}, round{});
                } else {
                    product(bf16{}, widen{});
                }
                return;
            }
#if LLM_QUANT_X86
            // bf16: the activation rows in the kernel's even / odd order, once per call
            const llm::workspace::frame frame(ws);
            std::size_t xk_rs = x_rs;
            if (!is_f16 && isa_available(kernel_isa::avx2)) {
                float* xo = ws.take<float>(m * k, "quant::linear_forward", "the bf16 kernel's activation order");
                for (std::size_t r = 0; r < m; ++r) detail::bf16_pair_order(xp + r * x_rs, k, xo + r * k);
                xp = xo;
                xk_rs = k;
            }
#endif
            const std::size_t threads = static_cast<std::size_t>(exec.size());
            const std::size_t rows_per_chunk =
                std::max<std::size_t>((n + 8 * threads - 1) / (8 * threads), (std::size_t{16384} + 2 * k - 1) / std::max<std::size_t>(2 * k, 1));
            // a multiple of the kernel's 4-row group: the rows of a chunk past one go one at a time
            const std::size_t grain = (rows_per_chunk + 3) / 4 * 4;
            parallel::parallel_for(exec, n, grain, [&](std::size_t n0, std::size_t n1) {
#if LLM_QUANT_X86
                if (isa_available(kernel_isa::avx2)) {
                    for (std::size_t m0 = 0; m0 < m; m0 += 4) {
                        const std::size_t mm = std::min<std::size_t>(4, m - m0);
                        const float* xr = xp + m0 * xk_rs;
                        float* yr = yp + m0 * y_rs;
                        auto run = [&](auto f16_tag, auto rows_tag) {
                            detail::half_rows_avx2<decltype(f16_tag)::value, decltype(rows_tag)::value>(wb, k, n0, n1, xr, xk_rs, yr, y_rs, 1);
                        };
                        using t = std::true_type;
                        using f = std::false_type;
                        using c1 = std::integral_constant<std::size_t, 1>;
                        using c2 = std::integral_constant<std::size_t, 2>;
                        using c3 = std::integral_constant<std::size_t, 3>;
                        using c4 = std::integral_constant<std::size_t, 4>;
                        switch (mm) {
                            case 1: is_f16 ? run(t{}, c1{}) : run(f{}, c1{}); break;
                            case 2: is_f16 ? run(t{}, c2{}) : run(f{}, c2{}); break;
                            case 3: is_f16 ? run(t{}, c3{}) : run(f{}, c3{}); break;
                            default: is_f16 ? run(t{}, c4{}) : run(f{}, c4{}); break;
                        }
                    }
                    return;
                }
#endif
                if (is_f16) {
                    detail::half_rows_generic<true>(wb, k, n0, n1, xp, x_rs, m, yp, y_rs, 1);
                } else {
                    detail::half_rows_generic<false>(wb, k, n0, n1, xp, x_rs, m, yp, y_rs, 1);
                }
            });
            return;
        }
        default: {
            const bool known = detail::visit_block_format(w.type(), [&](auto id) {
                using F = typename decltype(id)::type;
                using blk = typename F::block;
                const std::span<const blk> blocks(reinterpret_cast<const blk*>(data), n * (k / F::block_size));
                gemm(y, x, matrix_view<block_accessor<F>>(blocks, n, k), matmul_options{}, ws, exec);
            });
            llm::check(known, "quant::linear_forward: GGUF type id ", static_cast<int>(w.type()), " is not supported");
        }
    }
}

/// linear_forward with the default options.
/// Example: `llm::quant::linear_forward(y, x, w, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void linear_forward(Y&& y, X&& x, const any_matrix& w, llm::workspace& ws, Exec&& exec) {
    linear_forward(std::forward<Y>(y), std::forward<X>(x), w, linear_options{}, ws, exec);
}

/// ys[i] = x W_i^T for several any_matrix weights of one input x (q / k / v of a layer input,
/// gate / up): linear_forward of each pair, except that block-format weights with integer
/// kernels quantize x once per activation layout and share it (llm::quant::quantize_activations'
/// blocks: Q8_0 for every 32-value format, Q8_K for Q2_K / Q3_K / Q5_K / Q6_K, transposed Q8_K for Q4_K;
/// activation_compatible), so each product equals linear_forward's bit for bit. The quantized
/// blocks live in the workspace (a warmed call allocates nothing).
///   ys: N outputs [M, N_i] fp32 (contiguous rows); x: [M, K] fp32; w: N matrices [N_i, K];
///   ws: scratch; exec last.
/// Errors (llm::error): ys and w of different lengths, a null matrix, shapes that disagree, a
/// matrix without data.
/// Example: `const llm::quant::any_matrix* w[] = {&wq, &wk, &wv}; llm::quant::linear_forward(std::span<const decltype(q)>(ys), x, w, ws, pool);`
template <mutable_dense_view<2> Y, dense_view<2> X, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void linear_forward(std::span<const Y> ys, X&& x, std::span<const any_matrix* const> w, llm::workspace& ws, Exec&& exec) {
    llm::check(ys.size() == w.size(), "quant::linear_forward: ", ys.size(), " outputs for ", w.size(), " weight matrices");
    const std::size_t m = static_cast<std::size_t>(x.extent(0)), k = static_cast<std::size_t>(x.extent(1));
    const llm::workspace::frame frame(ws);
    [[maybe_unused]] const bool int_path = detail::resolve_isa(kernel_isa::best, "quant::linear_forward") != kernel_isa::generic;
    [[maybe_unused]] void* acts[4] = {};  // x's quantized blocks by activation layout (1 .. 3)
    for (std::size_t i = 0; i < w.size(); ++i) {
        llm::check(w[i] != nullptr, "quant::linear_forward: weight matrix ", i, " is null");
        const any_matrix& wi = *w[i];
        const Y& y = ys[i];
        bool done = false;
#if LLM_QUANT_X86
        const std::size_t n = wi.extent(0);
        if (int_path && m != 0 && n != 0 && wi.has_data() && wi.extent(1) == k && static_cast<std::size_t>(y.extent(0)) == m &&
            static_cast<std::size_t>(y.extent(1)) == n) {
            detail::visit_block_format(wi.type(), [&](auto id) {
                using F = typename decltype(id)::type;
                if constexpr (integer_kernel_format<F>) {
                    using act = detail::act_block_t<F>;
                    constexpr int layout = detail::act_layout<F>();
                    const std::size_t nb = k / F::block_size;
                    if (acts[layout] == nullptr) {
                        act* a = ws.take<act>(m * nb, "quant::linear_forward", "the shared quantized activations");
                        const std::size_t threads = static_cast<std::size_t>(exec.size());
                        const std::size_t grain = std::max<std::size_t>(1, (m + 2 * threads - 1) / (2 * threads));
                        const float* xp = x.data();
                        const auto x_rs = static_cast<std::size_t>(x.stride(0)), x_cs = static_cast<std::size_t>(x.stride(1));
                        parallel::parallel_for(exec, m, grain, [&](std::size_t m0, std::size_t m1) {
                            detail::quantize_act_rows<F>(xp, x_rs, x_cs, m0, m1, nb, a);
                        });
                        acts[layout] = a;
                    }
                    using blk = typename F::block;
                    const quantized_rows<F> qa{static_cast<const act*>(acts[layout]), m, k, nb};
                    if constexpr (packable_format<F>) {
                        if (wi.layout() == weight_layout::interleaved8) {
                            gemm(y, qa, wi.packed<F>(), matmul_options{}, exec);
                            done = true;
                            return;
                        }
                    }
                    const std::span<const blk> blocks(reinterpret_cast<const blk*>(wi.bytes().data()), n * nb);
                    gemm(y, qa, matrix_view<block_accessor<F>>(blocks, n, k), matmul_options{}, exec);
                    done = true;
                }
            });
        }
#endif
        if (!done) {
            linear_forward(y, x, wi, ws, exec);
        }
    }
}

/// linear_forward on llm::parallel::default_pool().
/// Example: `llm::quant::linear_forward(y, x, w, ws);`
template <mutable_dense_view<2> Y, dense_view<2> X>
    requires std::same_as<view_element_t<Y>, float> && std::same_as<std::remove_const_t<view_element_t<X>>, float>
void linear_forward(Y&& y, X&& x, const any_matrix& w, llm::workspace& ws) {
    linear_forward(y, x, w, ws, parallel::default_pool());
}

}  // namespace llm::quant
