// SPDX-License-Identifier: Apache-2.0
// llm::quant::gemv / gemm: fp32 or bf16 activations times block-quantized weights (y = x W^T), activations
// quantized on the fly to Q8_0 / Q8_K, integer dot products (AVX2 maddubs, AVX-VNNI / AVX-512 VNNI vpdpbusd).
#pragma once

#include <llm/config.hpp>
#include <llm/core/bf16.hpp>
#include <llm/core/cpu_info.hpp>
#include <llm/core/error.hpp>
#include <llm/core/workspace.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/quant/accessor.hpp>
#include <llm/quant/basic_formats.hpp>
#include <llm/quant/blocks.hpp>
#include <llm/quant/format.hpp>
#include <llm/quant/isa.hpp>
#include <llm/quant/k_formats.hpp>
#include <llm/quant/tile.hpp>
#include <llm/quant/weights.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <cmath>
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

/// One quantized activation block of a 32-value weight format: the Q8_0 codes and scale of
/// q8_0::quantize_block (d as the stored f16, widened), and the sum of the codes (for the
/// formats whose codes carry an offset or a minimum).
struct act_q8_0 {
    std::int8_t qs[32];  ///< the Q8_0 codes
    float d;             ///< float(f16 scale)
    std::int32_t sum;    ///< sum of qs
};

/// Formats with an integer kernel against Q8_0 activations.
template <class F>
inline constexpr bool int_kernel_32 = std::is_same_v<F, q4_0> || std::is_same_v<F, q4_1> ||
                                      std::is_same_v<F, q5_0> || std::is_same_v<F, q5_1> || std::is_same_v<F, q8_0>;

/// Formats with an integer kernel against Q8_K activations.
template <class F>
inline constexpr bool int_kernel_k = std::is_same_v<F, q2_k> || std::is_same_v<F, q3_k> || std::is_same_v<F, q4_k> ||
                                     std::is_same_v<F, q5_k> || std::is_same_v<F, q6_k>;

/// Formats with a panel GEMM.
template <class F>
inline constexpr bool has_panel =
    std::is_same_v<F, q4_0> || std::is_same_v<F, q8_0> || std::is_same_v<F, q4_k> || std::is_same_v<F, q6_k>;

/// The activation block of an integer-kernel format: Q8_0 (act_q8_0) or Q8_K.
template <class F>
using act_block_t = std::conditional_t<int_kernel_32<F>, act_q8_0, block_q8_k>;

/// The quantized activations' layout of an integer-kernel format: 1 Q8_0 (Q4_0, Q4_1, Q5_0,
/// Q5_1, Q8_0), 2 Q8_K (Q2_K, Q3_K, Q5_K, Q6_K), 3 Q8_K with the codes transposed (Q4_K); 0 none.
template <class F>
constexpr int act_layout() {
    if constexpr (int_kernel_32<F>) {
        return 1;
    } else if constexpr (std::is_same_v<F, q4_k>) {
        return 3;
    } else if constexpr (int_kernel_k<F>) {
        return 2;
    } else {
        return 0;
    }
}

/// Bytes of one weight row's panel: per 32-value block of Q4_0 / Q8_0 the 32 codes (Q4_0's as
/// bytes) and the float scale; per 256-value super-block of Q4_K the 256 codes (transposed, as
/// q4k_decode gives them), the int16 group-scale pairs and minimum pairs (32 bytes each) and d,
/// dmin; of Q6_K the 256 codes in element order, 8 scale vectors (scale_pair layout, one per 32
/// values), the 16 group scales as int16 and d (and an unused float).
template <class F>
constexpr std::size_t panel_block_bytes() {
    if constexpr (std::is_same_v<F, q4_0> || std::is_same_v<F, q8_0>) {
        return 32 + 4;
    } else if constexpr (std::is_same_v<F, q4_k>) {
        return 256 + 32 + 32 + 8;
    } else {
        return 256 + 8 * 32 + 32 + 8;
    }
}

/// Bytes of a K format's panel super-block before its two floats: codes, scale vectors, extra.
template <class F>
constexpr std::size_t panel_vector_bytes() {
    return panel_block_bytes<F>() - 8;
}

}  // namespace detail

}  // namespace llm::quant

// ---- the integer kernels, compiled once per instruction set ---------------------------------
#if LLM_QUANT_X86
#define LLM_PER_ISA_FILE <llm/quant/detail/int_kernels.inc>
#define LLM_PER_ISA_PREFIX qk
#include <llm/quant/detail/per_isa.inc>
#undef LLM_PER_ISA_FILE
#undef LLM_PER_ISA_PREFIX
#endif  // LLM_QUANT_X86

namespace llm::quant {

/// Options of gemv / gemm.
/// Example: `llm::quant::gemm(y, x, w, {.path = llm::quant::kernel_isa::generic});`
struct matmul_options {
    kernel_isa path = kernel_isa::best;  ///< the code path (run-time dispatch by default)
};

namespace detail {

template <class T>
LLM_FORCE_INLINE float widen(T v) noexcept {
    return static_cast<float>(v);
}

/// Quantizes activation row x[0, k) (stride xs) into Q8_0 act blocks (k / 32 of them).
template <class TX>
void quantize_row_q8_0(const TX* x, std::size_t xs, std::size_t nb, act_q8_0* out) noexcept {
    float tmp[32];
    for (std::size_t b = 0; b < nb; ++b) {
        for (std::size_t j = 0; j < 32; ++j) {
            tmp[j] = widen(x[(32 * b + j) * xs]);
        }
        block_q8_0 q;
        q8_0::quantize_block(tmp, q);
        std::int32_t sum = 0;
        for (std::size_t j = 0; j < 32; ++j) {
            out[b].qs[j] = q.qs[j];
            sum += q.qs[j];
        }
        out[b].d = static_cast<float>(q.d);
        out[b].sum = sum;
    }
}

/// Quantizes activation row x[0, k) (stride xs) into Q8_K blocks (k / 256 of them).
template <class TX>
void quantize_row_q8_k(const TX* x, std::size_t xs, std::size_t nb, block_q8_k* out) noexcept {
    float tmp[qk_k];
    for (std::size_t b = 0; b < nb; ++b) {
        for (std::size_t j = 0; j < qk_k; ++j) {
            tmp[j] = widen(x[(qk_k * b + j) * xs]);
        }
        q8_k::quantize_block(tmp, out[b]);
    }
}

/// Q8_K codes in the order of Q4_K's integer kernels: the 256 codes as an 8 x 8 matrix of
/// 4-byte groups, transposed (group g's codes 4v..4v+3 move to bytes 32v + 4g..); bsums stay.
inline void transpose_q8_k_codes(block_q8_k& a) noexcept {
    std::uint32_t in[64], out[64];
    std::memcpy(in, a.qs, sizeof in);
    for (std::size_t g = 0; g < 8; ++g) {
        for (std::size_t v = 0; v < 8; ++v) {
            out[8 * v + g] = in[8 * g + v];
        }
    }
    std::memcpy(a.qs, out, sizeof out);
}

/// The portable path: out(m, n) = sum over blocks of block_dot (tile.hpp: the dequantized weight
/// block . the fp32 activations, the decoding the CUDA kernels share; the activations are not
/// quantized), for rows n in [n0, n1), 4 activation rows at a time.
template <class F>
void generic_rows(const typename F::block* w, std::size_t w_rs, std::size_t n0, std::size_t n1, const float* x,
                  std::size_t x_rs, std::size_t mrows, std::size_t nb, float* out, std::size_t out_rs,
                  std::size_t out_cs) noexcept {
    constexpr std::size_t B = F::block_size;
    for (std::size_t n = n0; n < n1; ++n) {
        for (std::size_t m0 = 0; m0 < mrows; m0 += 4) {
            const std::size_t mr = std::min<std::size_t>(4, mrows - m0);
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (std::size_t b = 0; b < nb; ++b) {
                for (std::size_t m = 0; m < mr; ++m) {
                    acc[m] += block_dot<F>(w[n * w_rs + b], x + (m0 + m) * x_rs + b * B);
                }
            }
            for (std::size_t m = 0; m < mr; ++m) {
                out[(m0 + m) * out_rs + n * out_cs] = acc[m];
            }
        }
    }
}

/// Weight rows per parallel chunk: for a GEMV (m = 1) enough chunks to balance the threads (8
/// per thread, each at least 4 KiB of weights); for a GEMM a chunk's weights fill half the L2, so
/// they stay there while every activation row passes over them.
inline std::size_t weight_chunk_rows(std::size_t n, std::size_t m, std::size_t row_bytes, std::size_t threads) {
    threads = std::max<std::size_t>(threads, 1);
    std::size_t rows = 0;
    if (m == 1) {
        rows = std::max<std::size_t>((n + 8 * threads - 1) / (8 * threads), (4096 + row_bytes - 1) / std::max<std::size_t>(row_bytes, 1));
    } else {
        const std::size_t l2 = cpu_cache_sizes().l2 != 0 ? cpu_cache_sizes().l2 : (std::size_t{512} << 10);
        rows = std::max<std::size_t>(l2 / 2 / std::max<std::size_t>(row_bytes, 1), 4);
        rows = std::min(rows, (n + threads - 1) / threads);
    }
    rows = std::max<std::size_t>(rows, 2);
    return (rows + 1) / 2 * 2;
}

/// Activation rows from which gemm unpacks weight panels (fewer rows do not pay the unpacking back).
inline constexpr std::size_t panel_min_rows = 8;

/// Weight rows per panel chunk: the unpacked rows (prow bytes each) fill half the L2, at least 2
/// rows and at most an even share of the rows per thread.
inline std::size_t panel_chunk_rows(std::size_t n, std::size_t prow, std::size_t threads) {
    threads = std::max<std::size_t>(threads, 1);
    const std::size_t l2 = cpu_cache_sizes().l2 != 0 ? cpu_cache_sizes().l2 : (std::size_t{512} << 10);
    std::size_t rows = std::max<std::size_t>(l2 / 2 / std::max<std::size_t>(prow, 1), 2);
    rows = std::min(rows, (n + threads - 1) / threads);
    rows = std::max<std::size_t>(rows, 2);
    return (rows + 1) / 2 * 2;
}

/// The integer-kernel half of matmul_impl: y(m, n) for m < mrows, n < n_out from activation
/// rows already quantized (act rows of nb blocks, act_rs blocks apart; Q4_K's codes transposed).
/// isa is resolved and not generic.
template <block_format F, class Act, class Exec>
void matmul_quantized(float* y, std::size_t y_rs, std::size_t y_cs, const Act* a, std::size_t act_rs,
                      std::size_t mrows, std::size_t nb, const typename F::block* w, std::size_t w_rs,
                      std::size_t n_out, kernel_isa isa, Exec& exec) {
#if LLM_QUANT_X86
    if (mrows == 0 || n_out == 0) {
        return;
    }
    const std::size_t threads = static_cast<std::size_t>(exec.size());
    if constexpr (has_panel<F>) {
        if (mrows >= panel_min_rows) {
            // Panel chunks: the unpacked rows fill half the L2 (each thread unpacks into its own
            // thread_local buffer, grown once, so a warmed call allocates nothing).
            const std::size_t prow = nb * panel_block_bytes<F>();
            const std::size_t pchunk = panel_chunk_rows(n_out, prow, threads);
            parallel::parallel_for(exec, n_out, pchunk, [&](std::size_t n0, std::size_t n1) {
                thread_local std::vector<std::uint8_t> panel;
                if (panel.size() < (n1 - n0) * prow) {
                    panel.resize((n1 - n0) * prow);
                }
                switch (isa) {
                case kernel_isa::avx512_vnni:
                    qk_avx512_vnni::panel_rows<F, Act>(w, w_rs, n0, n1, a, act_rs, mrows, nb, y, y_rs, y_cs, panel.data());
                    break;
                case kernel_isa::avx_vnni:
                    qk_avx_vnni::panel_rows<F, Act>(w, w_rs, n0, n1, a, act_rs, mrows, nb, y, y_rs, y_cs, panel.data());
                    break;
                default:
                    qk_avx2::panel_rows<F, Act>(w, w_rs, n0, n1, a, act_rs, mrows, nb, y, y_rs, y_cs, panel.data());
                    break;
                }
            });
            return;
        }
    }
    const std::size_t chunk = weight_chunk_rows(n_out, mrows, nb * sizeof(typename F::block), threads);
    parallel::parallel_for(exec, n_out, chunk, [&](std::size_t n0, std::size_t n1) {
        switch (isa) {
        case kernel_isa::avx512_vnni:
            qk_avx512_vnni::rows<F, Act>(w, w_rs, n0, n1, a, act_rs, mrows, nb, y, y_rs, y_cs);
            break;
        case kernel_isa::avx_vnni: qk_avx_vnni::rows<F, Act>(w, w_rs, n0, n1, a, act_rs, mrows, nb, y, y_rs, y_cs); break;
        default: qk_avx2::rows<F, Act>(w, w_rs, n0, n1, a, act_rs, mrows, nb, y, y_rs, y_cs); break;
        }
    });
#else
    (void)y, (void)y_rs, (void)y_cs, (void)a, (void)act_rs, (void)mrows, (void)nb, (void)w, (void)w_rs, (void)n_out,
        (void)isa, (void)exec;
#endif
}

/// Quantizes activation row x[0, nb blocks) (columns xs apart) into a: Q8_0 for the 32-value
/// formats, Q8_K for the K formats. Unit-stride fp32 rows on AVX2 take the vector quantizers,
/// which give the bits of the scalar loops (tests/quant/activations.cpp compares them).
template <block_format F, class TX>
void quantize_act_row(const TX* x, std::size_t xs, std::size_t nb, act_block_t<F>* a) noexcept {
#if LLM_QUANT_X86
    if constexpr (std::is_same_v<std::remove_const_t<TX>, float>) {
        if (xs == 1 && isa_available(kernel_isa::avx2)) {
            if constexpr (int_kernel_32<F>) {
                qk_avx2::quantize_act_q8_0(x, nb, a);
            } else {
                qk_avx2::quantize_act_q8_k(x, nb, a);
            }
            return;
        }
    }
#endif
    if constexpr (int_kernel_32<F>) {
        quantize_row_q8_0(x, xs, nb, a);
    } else {
        quantize_row_q8_k(x, xs, nb, a);
    }
}

/// Quantizes activation rows [m0, m1) of x (rows x_rs apart, columns x_cs apart, nb blocks of
/// the activation format of F each) into a + m * nb: quantize_act_row's blocks (Q4_K's codes
/// then transposed for its kernels).
template <block_format F, class TX>
void quantize_act_rows(const TX* x, std::size_t x_rs, std::size_t x_cs, std::size_t m0, std::size_t m1,
                       std::size_t nb, act_block_t<F>* a) noexcept {
    for (std::size_t m = m0; m < m1; ++m) {
        quantize_act_row<F>(x + m * x_rs, x_cs, nb, a + m * nb);
        if constexpr (std::is_same_v<F, q4_k>) {
            for (std::size_t b = 0; b < nb; ++b) {
                transpose_q8_k_codes(a[m * nb + b]);
            }
        }
    }
}

/// The shared body of gemv and gemm: y(m, n) = sum_k x(m, k) W(n, k) for m < mrows, n < n_out.
template <block_format F, class TX, class Exec>
void matmul_impl(const char* fn, float* y, std::size_t y_rs, std::size_t y_cs, const TX* x, std::size_t x_rs,
                 std::size_t x_cs, std::size_t mrows, std::size_t k, const typename F::block* w, std::size_t w_rs,
                 std::size_t n_out, kernel_isa path, llm::workspace& ws, Exec& exec) {
    constexpr std::size_t B = F::block_size;
    const kernel_isa isa = resolve_isa(path, fn);
    if (mrows == 0 || n_out == 0) {
        return;
    }
    const std::size_t nb = k / B;
    const std::size_t threads = static_cast<std::size_t>(exec.size());
    const std::size_t chunk = weight_chunk_rows(n_out, mrows, nb * sizeof(typename F::block), threads);
    const llm::workspace::frame frame(ws);
    const std::size_t row_grain = std::max<std::size_t>(1, (mrows + 2 * threads - 1) / (2 * threads));
#if LLM_QUANT_X86
    if constexpr (int_kernel_32<F> || int_kernel_k<F>) {
        if (isa != kernel_isa::generic) {
            using act = act_block_t<F>;
            act* a = ws.take<act>(mrows * nb, fn, "the quantized activations");
            parallel::parallel_for(exec, mrows, row_grain, [&](std::size_t m0, std::size_t m1) {
                quantize_act_rows<F>(x, x_rs, x_cs, m0, m1, nb, a);
            });
            matmul_quantized<F>(y, y_rs, y_cs, a, nb, mrows, nb, w, w_rs, n_out, isa, exec);
            return;
        }
    }
#endif
    (void)isa;
    const float* xf = nullptr;
    std::size_t xf_rs = x_rs;
    if constexpr (std::is_same_v<std::remove_const_t<TX>, float>) {
        xf = x_cs == 1 ? x : nullptr;
    }
    if (xf == nullptr) {
        float* wide = ws.take<float>(mrows * k, fn, "the widened activations");
        for (std::size_t m = 0; m < mrows; ++m) {
            for (std::size_t j = 0; j < k; ++j) {
                wide[m * k + j] = widen(x[m * x_rs + j * x_cs]);
            }
        }
        xf = wide;
        xf_rs = k;
    }
    parallel::parallel_for(exec, n_out, chunk, [&](std::size_t n0, std::size_t n1) {
        generic_rows<F>(w, w_rs, n0, n1, xf, xf_rs, mrows, nb, y, y_rs, y_cs);
    });
}

template <class T>
void check_finite_field(std::string_view format, std::size_t i, const char* field, T v) {
    const float f = static_cast<float>(v);
    llm::check(std::isfinite(f), "validate_weights<", format, ">: block ", i, " has a non-finite ", field, " (", f,
               ")");
}

}  // namespace detail

/// Checks every block's scales (the fields `d`, `m` and `dmin` the block has) for NaN and
/// infinity, as ggml_validate_row_data does for these formats (llama.cpp's --check-tensors):
/// llm::error naming the first bad block and field. gemv / gemm do not check (a scan of the
/// weights per call): a non-finite scale gives non-finite outputs in its row, as in ggml, so
/// validate weights once when loading them.
/// Example: `llm::quant::validate_weights<llm::quant::q4_0>(blocks);`
template <block_format F>
void validate_weights(std::span<const typename F::block> blocks) {
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        const auto& b = blocks[i];
        if constexpr (requires { b.d; }) {
            detail::check_finite_field(F::name, i, "d", b.d);
        }
        if constexpr (requires { b.m; }) {
            detail::check_finite_field(F::name, i, "m", b.m);
        }
        if constexpr (requires { b.dmin; }) {
            detail::check_finite_field(F::name, i, "dmin", b.dmin);
        }
    }
}

/// The weight formats whose gemv / gemm quantize the activations for integer kernels (Q4_0,
/// Q4_1, Q5_0, Q5_1, Q8_0 against Q8_0; Q2_K, Q3_K, Q4_K, Q5_K, Q6_K against Q8_K), the
/// formats quantize_activations takes.
/// Example: `static_assert(llm::quant::integer_kernel_format<llm::quant::q4_0>);`
template <class F>
concept integer_kernel_format = block_format<F> && (detail::int_kernel_32<F> || detail::int_kernel_k<F>);

template <integer_kernel_format F>
class quantized_activations;

/// A non-owning view of rows of llm::quant::quantized_activations (its rows(r0, n) or all()):
/// gemv / gemm take it like the owner.
/// Example: `llm::quant::gemm(y, qa.rows(0, 4), w, {}, pool);`
template <integer_kernel_format F>
struct quantized_rows {
    const detail::act_block_t<F>* data = nullptr;  ///< row m's blocks at data + m * row_stride
    std::size_t rows = 0;                          ///< M
    std::size_t cols = 0;                          ///< K (values per row)
    std::size_t row_stride = 0;                    ///< blocks between rows
};

/// Activations quantized once for the weight formats that share F's activation layout
/// (activation_compatible), to multiply by several weight matrices without quantizing again
/// (q / k / v of one input, gate / up, every MoE expert a token goes to): M rows of K values
/// as Q8_0 blocks (F = Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) or Q8_K blocks (Q2_K, Q3_K, Q5_K, Q6_K; Q4_K with
/// the codes in its kernels' transposed order), exactly the blocks gemv / gemm make from the
/// same rows, so the products are theirs bit for bit. Owning: quantize_activations into an
/// existing object reuses its memory (a warmed call allocates nothing). rows(r0, n) is a
/// non-owning view of rows [r0, r0 + n); gemv / gemm take either.
/// Example: `llm::quant::quantized_activations<llm::quant::q4_0> qa; llm::quant::quantize_activations(qa, x, pool);`
template <integer_kernel_format F>
class quantized_activations {
public:
    /// The activation block type (Q8_0 codes, scale and code sum; or block_q8_k).
    using block_type = detail::act_block_t<F>;

    /// The non-owning view type.
    using view = quantized_rows<F>;

    /// Empty (0 rows).
    quantized_activations() = default;

    /// Rows (M).
    [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
    /// Values per row (K).
    [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
    /// Blocks per row (K / block size).
    [[nodiscard]] std::size_t blocks_per_row() const noexcept { return cols_ / F::block_size; }
    /// Row m's blocks (m < rows()).
    [[nodiscard]] const block_type* row(std::size_t m) const noexcept { return blocks_.data() + m * blocks_per_row(); }
    /// Row m's blocks, writable (to fill rows by copying another object's, e.g. a gather).
    [[nodiscard]] block_type* row(std::size_t m) noexcept { return blocks_.data() + m * blocks_per_row(); }
    /// Sets the shape to [m, k] (k a multiple of the block size), keeping the memory when it is
    /// large enough; the contents are unspecified until filled.
    void resize(std::size_t m, std::size_t k) {
        llm::check(k % F::block_size == 0, "quantized_activations<", F::name, ">::resize: ", k,
                   " values per row, not a multiple of the block size ", F::block_size);
        rows_ = m;
        cols_ = k;
        blocks_.resize(m * (k / F::block_size));
    }
    /// Every row.
    [[nodiscard]] view all() const noexcept { return {blocks_.data(), rows_, cols_, blocks_per_row()}; }
    /// Rows [r0, r0 + n) (llm::error past the end).
    [[nodiscard]] view rows(std::size_t r0, std::size_t n) const {
        llm::check(r0 <= rows_ && n <= rows_ - r0, "quantized_activations<", F::name, ">::rows: rows [", r0, ", ",
                   r0 + n, ") of ", rows_);
        return {blocks_.data() + r0 * blocks_per_row(), n, cols_, blocks_per_row()};
    }

private:
    std::vector<block_type> blocks_;
    std::size_t rows_ = 0, cols_ = 0;
};

/// True when activations quantized for format A serve weights of format G (the same activation
/// blocks: every 32-value format shares Q8_0; Q5_K and Q6_K share Q8_K; Q4_K only with itself).
/// Example: `static_assert(llm::quant::activation_compatible<llm::quant::q4_0, llm::quant::q8_0>);`
template <class A, class G>
concept activation_compatible = integer_kernel_format<A> && integer_kernel_format<G> &&
                                (detail::act_layout<A>() == detail::act_layout<G>());

/// Quantizes the rows of x ([M, K] fp32 or bf16, any strides) into `out` for weights of format F
/// (Q8_0 or Q8_K blocks, exactly as gemv / gemm would), threads splitting the rows. `out`'s
/// memory is reused. Errors (llm::error): K not a multiple of F's block size.
/// Example: `llm::quant::quantize_activations(qa, x, llm::parallel::sequential{});`
template <integer_kernel_format F, dense_view<2> X, parallel::policy Exec>
void quantize_activations(quantized_activations<F>& out, X&& x, Exec&& exec) {
    const std::size_t m = static_cast<std::size_t>(x.extent(0)), k = static_cast<std::size_t>(x.extent(1));
    llm::check(k % F::block_size == 0, "quantize_activations<", F::name, ">: x has ", k,
               " columns, not a multiple of the block size ", F::block_size);
    out.resize(m, k);
    if (m == 0) {
        return;
    }
    const std::size_t nb = k / F::block_size, threads = static_cast<std::size_t>(exec.size());
    const std::size_t grain = std::max<std::size_t>(1, (m + 2 * threads - 1) / (2 * threads));
    const auto* xp = x.data();
    const auto x_rs = static_cast<std::size_t>(x.stride(0)), x_cs = static_cast<std::size_t>(x.stride(1));
    typename quantized_activations<F>::block_type* a = out.row(0);
    parallel::parallel_for(exec, m, grain, [&](std::size_t m0, std::size_t m1) {
        detail::quantize_act_rows<F>(xp, x_rs, x_cs, m0, m1, nb, a);
    });
}

/// quantize_activations of one row x [K] (out gets 1 row).
/// Example: `llm::quant::quantize_activations(qa, x1, llm::parallel::sequential{});`
template <integer_kernel_format F, dense_view<1> X, parallel::policy Exec>
void quantize_activations(quantized_activations<F>& out, X&& x, Exec&& exec) {
    const std::size_t k = static_cast<std::size_t>(x.extent(0));
    llm::check(k % F::block_size == 0, "quantize_activations<", F::name, ">: x has ", k,
               " values, not a multiple of the block size ", F::block_size);
    out.resize(1, k);
    detail::quantize_act_rows<F>(x.data(), 0, static_cast<std::size_t>(x.stride(0)), 0, 1, k / F::block_size,
                                 out.row(0));
    (void)exec;
}

/// quantize_activations into a new object.
/// Example: `auto qa = llm::quant::quantize_activations<llm::quant::q4_k>(x, pool);`
template <integer_kernel_format F, class X, parallel::policy Exec>
    requires dense_view<X, 1> || dense_view<X, 2>
[[nodiscard]] quantized_activations<F> quantize_activations(X&& x, Exec&& exec) {
    quantized_activations<F> out;
    quantize_activations(out, x, exec);
    return out;
}

namespace detail {

template <class F>
quantized_rows<F> as_rows(const quantized_activations<F>& a) {
    return a.all();
}
template <class F>
quantized_rows<F> as_rows(const quantized_rows<F>& a) {
    return a;
}
template <class A>
struct prequantized_format {};
template <class F>
struct prequantized_format<quantized_activations<F>> {
    using type = F;
};
template <class F>
struct prequantized_format<quantized_rows<F>> {
    using type = F;
};

/// The pre-quantized product: checks, then matmul_quantized.
template <class F, class W, class Exec>
void matmul_prequantized(const char* fn, float* y, std::size_t y_rs, std::size_t y_cs, const quantized_rows<F>& a,
                         const W& w, matmul_options options, Exec& exec) {
    using G = weight_format_t<W>;
    const std::size_t w_rs = check_weights(fn, w);
    const std::size_t n = static_cast<std::size_t>(w.extent(0)), k = static_cast<std::size_t>(w.extent(1));
    llm::check(a.cols == k, fn, "<", G::name, ">: the quantized activations have ", a.cols, " columns but w has ", k);
    const kernel_isa isa = resolve_isa(options.path, fn);
    llm::check(isa != kernel_isa::generic, fn, "<", G::name,
               ">: pre-quantized activations need an integer kernel path, not generic");
    static_assert(std::is_same_v<act_block_t<F>, act_block_t<G>>);
    matmul_quantized<G>(y, y_rs, y_cs, a.data, a.row_stride, a.rows, k / G::block_size, w.data(), w_rs, n, isa, exec);
}

}  // namespace detail

/// Pre-quantized activations as gemv / gemm take them: llm::quant::quantized_activations or its
/// quantized_rows view.
/// Example: `static_assert(llm::quant::prequantized<llm::quant::quantized_activations<llm::quant::q4_0>>);`
template <class A>
concept prequantized = requires { typename detail::prequantized_format<std::remove_cvref_t<A>>::type; };

/// The weight format a pre-quantized activation type was quantized for.
/// Example: `static_assert(std::is_same_v<llm::quant::prequantized_format_t<decltype(qa)>, llm::quant::q4_0>);`
template <prequantized A>
using prequantized_format_t = typename detail::prequantized_format<std::remove_cvref_t<A>>::type;

/// y = x W^T for one activation row (decode, M = 1): y[n] = sum_k x[k] W(n, k), W a
/// [N, K] view of block-quantized weights (llm::quant::matrix_view). The activations are
/// quantized to Q8_0 (weights Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) or Q8_K (the K formats) exactly
/// as q8_0 / q8_k::quantize_block do, and each block's products are summed exactly in integers
/// (AVX2 maddubs, or vpdpbusd where the CPU has VNNI, chosen at run time; `options.path` pins
/// one), then scaled and accumulated in fp32. Other formats (a user's), and every
/// format on the `generic` path, dequantize each weight block and multiply it by the fp32
/// activations. Threads split the rows of W. Output is written, not accumulated.
///   y:  [N] fp32 (any stride), x: [K] fp32 or bf16 (any stride), w: [N, K] quantized.
///   options: the code path; ws: scratch (K / 32 activation blocks), so a warmed call
///   allocates nothing; exec: an llm::parallel::policy (last, as in every kernel).
/// Errors (llm::error): K not a multiple of the block size, x or y of the wrong length, W
/// without unit column stride, a path the CPU lacks. Non-finite weight scales give non-finite
/// outputs in their rows (as ggml does); llm::quant::validate_weights finds them first.
/// Example: `llm::quant::gemv(y, x, llm::quant::matrix_view<llm::quant::q4_0_accessor>(blocks, n, k), {}, ws, pool);`
template <view_of_rank<1> Y, dense_view<1> X, quantized_matrix W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, W&& w, matmul_options options, llm::workspace& ws, Exec&& exec) {
    using F = weight_format_t<W>;
    const std::size_t w_rs = detail::check_weights("gemv", w);
    const std::size_t n = static_cast<std::size_t>(w.extent(0)), k = static_cast<std::size_t>(w.extent(1));
    llm::check(static_cast<std::size_t>(x.extent(0)) == k, "gemv<", F::name, ">: x has ", x.extent(0),
               " values but w has ", k, " columns");
    llm::check(static_cast<std::size_t>(y.extent(0)) == n, "gemv<", F::name, ">: y has ", y.extent(0),
               " values but w has ", n, " rows");
    detail::matmul_impl<F>("gemv", y.data(), 0, static_cast<std::size_t>(y.stride(0)), x.data(), 0,
                           static_cast<std::size_t>(x.stride(0)), 1, k, w.data(), w_rs, n, options.path, ws, exec);
}

/// gemv with a temporary workspace.
/// Example: `llm::quant::gemv(y, x, w, {}, llm::parallel::sequential{});`
template <view_of_rank<1> Y, dense_view<1> X, quantized_matrix W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, W&& w, matmul_options options, Exec&& exec) {
    llm::workspace ws;
    gemv(y, x, w, options, ws, exec);
}

/// gemv on llm::parallel::default_pool().
/// Example: `llm::quant::gemv(y, x, w, {}, ws);`
template <view_of_rank<1> Y, dense_view<1> X, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, W&& w, matmul_options options, llm::workspace& ws) {
    gemv(y, x, w, options, ws, parallel::default_pool());
}

/// gemv with a temporary workspace on llm::parallel::default_pool().
/// Example: `llm::quant::gemv(y, x, w);`
template <view_of_rank<1> Y, dense_view<1> X, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float>
void gemv(Y&& y, X&& x, W&& w, matmul_options options = {}) {
    llm::workspace ws;
    gemv(y, x, w, options, ws, parallel::default_pool());
}

/// y = x W^T for M activation rows (prefill): y(m, n) = sum_k x(m, k) W(n, k), the
/// arithmetic of gemv per row (row m of gemm equals gemv of row m, bit for bit). Threads
/// split the rows of W in chunks that stay in L2 while every activation row passes over
/// them; each decoded weight block serves 4 activation rows. From 8 activation rows,
/// Q4_0, Q8_0, Q4_K and Q6_K chunks are first unpacked into a per-thread panel (codes as
/// bytes, scale vectors, float scales) and tiles of 4 activation rows by 2 weight rows run over
/// it, with the same integer sums and fp32 operations as gemv. Q4_K's
/// kernels (gemv's too) take each super-block's 8 groups transposed (4-byte pieces of every
/// group in each vector), so eight vpmaddubsw sums add in int16 (at most 8 x 2 x 15 x 128 =
/// 30720) before one vpmaddwd applies the group scales.
///   y: [M, N] fp32 (any strides), x: [M, K] fp32 or bf16 (any strides), w: [N, K] quantized;
///   ws: M K / 32 activation blocks (Q8_0: 40 bytes each; Q8_K: 292 bytes per 256 values).
/// Errors as gemv.
/// Example: `llm::quant::gemm(y, x, llm::quant::matrix_view<llm::quant::block_accessor<llm::quant::q4_k>>(blocks, n, k), {}, ws, pool);`
template <view_of_rank<2> Y, dense_view<2> X, quantized_matrix W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, W&& w, matmul_options options, llm::workspace& ws, Exec&& exec) {
    using F = weight_format_t<W>;
    const std::size_t w_rs = detail::check_weights("gemm", w);
    const std::size_t n = static_cast<std::size_t>(w.extent(0)), k = static_cast<std::size_t>(w.extent(1));
    const std::size_t m = static_cast<std::size_t>(x.extent(0));
    llm::check(static_cast<std::size_t>(x.extent(1)) == k, "gemm<", F::name, ">: x has ", x.extent(1),
               " columns but w has ", k);
    llm::check(static_cast<std::size_t>(y.extent(0)) == m && static_cast<std::size_t>(y.extent(1)) == n, "gemm<",
               F::name, ">: y is [", y.extent(0), ", ", y.extent(1), "] but x W^T is [", m, ", ", n, "]");
    detail::matmul_impl<F>("gemm", y.data(), static_cast<std::size_t>(y.stride(0)),
                           static_cast<std::size_t>(y.stride(1)), x.data(), static_cast<std::size_t>(x.stride(0)),
                           static_cast<std::size_t>(x.stride(1)), m, k, w.data(), w_rs, n, options.path, ws, exec);
}

/// gemm with a temporary workspace.
/// Example: `llm::quant::gemm(y, x, w, {}, pool);`
template <view_of_rank<2> Y, dense_view<2> X, quantized_matrix W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, W&& w, matmul_options options, Exec&& exec) {
    llm::workspace ws;
    gemm(y, x, w, options, ws, exec);
}

/// gemm on llm::parallel::default_pool().
/// Example: `llm::quant::gemm(y, x, w, {}, ws);`
template <view_of_rank<2> Y, dense_view<2> X, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, W&& w, matmul_options options, llm::workspace& ws) {
    gemm(y, x, w, options, ws, parallel::default_pool());
}

/// gemm with a temporary workspace on llm::parallel::default_pool().
/// Example: `llm::quant::gemm(y, x, w);`
template <view_of_rank<2> Y, dense_view<2> X, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float>
void gemm(Y&& y, X&& x, W&& w, matmul_options options = {}) {
    llm::workspace ws;
    gemm(y, x, w, options, ws, parallel::default_pool());
}

/// gemv with activations quantized beforehand (quantize_activations, one row): y[n] = sum_k
/// x[k] W(n, k) with the quantized row `a` standing for x, so one quantization serves several
/// weight matrices. Bit for bit gemv(y, x, w, ...) of the row `a` was quantized from, on the same
/// path. W's format must share the activation blocks of a's (activation_compatible: any 32-value
/// format with any other; Q5_K with Q6_K; Q4_K with itself).
///   y: [N] fp32 (any stride); a: 1 row of K values; w: [N, K] quantized; exec: last.
/// Errors (llm::error): a with other than 1 row or K columns, y of the wrong length, W's layout
/// as gemv, and the generic path (it multiplies fp32 activations, which `a` no longer has).
/// Example: `llm::quant::gemv(y, qa, wq, {}, pool); llm::quant::gemv(y2, qa, wk, {}, pool);`
template <view_of_rank<1> Y, prequantized A, quantized_matrix W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float> && activation_compatible<prequantized_format_t<A>, weight_format_t<W>>
void gemv(Y&& y, const A& a, W&& w, matmul_options options, Exec&& exec) {
    using G = weight_format_t<W>;
    const auto rows = detail::as_rows(a);
    llm::check(rows.rows == 1, "gemv<", G::name, ">: the quantized activations have ", rows.rows, " rows, want 1");
    llm::check(static_cast<std::size_t>(y.extent(0)) == static_cast<std::size_t>(w.extent(0)), "gemv<", G::name,
               ">: y has ", y.extent(0), " values but w has ", w.extent(0), " rows");
    detail::matmul_prequantized("gemv", y.data(), 0, static_cast<std::size_t>(y.stride(0)), rows, w, options, exec);
}

/// gemv of pre-quantized activations on llm::parallel::default_pool().
/// Example: `llm::quant::gemv(y, qa, w);`
template <view_of_rank<1> Y, prequantized A, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float> && activation_compatible<prequantized_format_t<A>, weight_format_t<W>>
void gemv(Y&& y, const A& a, W&& w, matmul_options options = {}) {
    gemv(y, a, w, options, parallel::default_pool());
}

/// gemm with activations quantized beforehand (quantize_activations, or rows of them): y(m, n)
/// = sum_k x(m, k) W(n, k) with the quantized rows `a` standing for x. Bit for bit gemm(y, x, w,
/// ...) of the rows `a` was quantized from, on the same path (and row m equals gemv of row m).
/// W's format must share a's activation blocks (activation_compatible).
///   y: [M, N] fp32 (any strides); a: M rows of K values; w: [N, K] quantized; exec: last.
/// Errors (llm::error): y not [M, N], K disagreeing, W's layout as gemm, the generic path.
/// Example: `llm::quant::gemm(gate, qa, w1, {}, pool); llm::quant::gemm(up, qa, w3, {}, pool);`
template <view_of_rank<2> Y, prequantized A, quantized_matrix W, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float> && activation_compatible<prequantized_format_t<A>, weight_format_t<W>>
void gemm(Y&& y, const A& a, W&& w, matmul_options options, Exec&& exec) {
    using G = weight_format_t<W>;
    const auto rows = detail::as_rows(a);
    llm::check(static_cast<std::size_t>(y.extent(0)) == rows.rows &&
                   static_cast<std::size_t>(y.extent(1)) == static_cast<std::size_t>(w.extent(0)),
               "gemm<", G::name, ">: y is [", y.extent(0), ", ", y.extent(1), "] but a W^T is [", rows.rows, ", ",
               w.extent(0), "]");
    detail::matmul_prequantized("gemm", y.data(), static_cast<std::size_t>(y.stride(0)),
                                static_cast<std::size_t>(y.stride(1)), rows, w, options, exec);
}

/// gemm of pre-quantized activations on llm::parallel::default_pool().
/// Example: `llm::quant::gemm(y, qa, w);`
template <view_of_rank<2> Y, prequantized A, quantized_matrix W>
    requires std::same_as<view_element_t<Y>, float> && activation_compatible<prequantized_format_t<A>, weight_format_t<W>>
void gemm(Y&& y, const A& a, W&& w, matmul_options options = {}) {
    gemm(y, a, w, options, parallel::default_pool());
}

}  // namespace llm::quant
