// SPDX-License-Identifier: Apache-2.0
// Weights with one scale per output channel (or per tensor): W8A8 (int8 weights, dynamic per-token int8
// activations) and FP8 E4M3 weights; quantize, dequantize and their GEMV / GEMM.
#pragma once

#include <llm/core/checked.hpp>
#include <llm/core/error.hpp>
#include <llm/core/fp8.hpp>
#include <llm/core/saturate.hpp>
#include <llm/core/workspace.hpp>
#include <llm/gemm/amx.hpp>
#include <llm/quant/isa.hpp>
#include <llm/quant/matmul.hpp>
#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/thread_pool.hpp>
#include <llm/tensor/concepts.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace llm::quant {

/// Symmetric int8 weights with one scale per output channel (row): W(r, c) = scale[r] * q[r][c],
/// scale[r] = max_c |W(r, c)| / 127, q = round-half-away-from-zero(W / scale) in [-127, 127]
/// (a zero row has scale 0 and codes 0). Round trip: |W - W'| <= scale[r] / 2 (+ the float
/// roundings of W / scale and scale q: 2^-23 max |W(r, .)|).
/// Example: `auto w8 = llm::quant::quantize_int8(w);  // w: [rows, cols] fp32 view`
struct int8_weights {
    std::size_t rows = 0;          ///< output channels
    std::size_t cols = 0;          ///< input features (K)
    std::vector<std::int8_t> q;    ///< rows x cols codes, row-major
    std::vector<float> scale;      ///< one per row
};

/// Which scales FP8 weights carry.
/// Example: `auto w = llm::quant::quantize_fp8(w32, llm::quant::scale_granularity::per_tensor);`
enum class scale_granularity {
    per_tensor,   ///< one scale: max |W| / 448
    per_channel,  ///< one per row: max |W(r, .)| / 448
};

/// FP8 E4M3 weights: W(r, c) = scale[r or 0] * float(q[r][c]); scale = max |W| / 448 over the row
/// (per_channel) or the tensor (per_tensor), q = fp8_e4m3(W / scale, llm::saturate) (round to
/// nearest even). Round trip: |W - W'| <= max(|W| 2^-4, scale 2^-10) (half an E4M3 step: 3
/// mantissa bits; subnormal step 2^-9 scale) plus the float roundings (2^-22 |W|).
/// Example: `auto w8 = llm::quant::quantize_fp8(w, llm::quant::scale_granularity::per_channel);`
struct fp8_weights {
    std::size_t rows = 0;                                         ///< output channels
    std::size_t cols = 0;                                         ///< input features (K)
    scale_granularity granularity = scale_granularity::per_channel;  ///< which scales
    std::vector<fp8_e4m3> q;                                      ///< rows x cols codes, row-major
    std::vector<float> scale;                                     ///< rows scales, or 1

    /// The scale of row r.
    [[nodiscard]] float scale_of(std::size_t r) const noexcept {
        return granularity == scale_granularity::per_tensor ? scale[0] : scale[r];
    }
};

namespace detail {

/// E4M3 byte to float with integer operations only (no table, no denormal arithmetic), so the
/// compiler vectorizes a loop over codes: normal codes rebias the exponent (7 -> 127), subnormal
/// ones are 2^-6 (1 + m / 8) - 2^-6 computed exactly; 0x7F / 0xFF are NaN. Equals
/// static_cast<float>(fp8_e4m3) for all 256 codes (tested).
inline float fp8_e4m3_value(std::uint8_t b) noexcept {
    const std::uint32_t v = static_cast<std::uint32_t>(b & 0x7F) << 20;
    const float normal = std::bit_cast<float>(v + (120u << 23));
    const float sub = std::bit_cast<float>(v | (121u << 23)) - 0x1p-6f;
    float r = (b & 0x78) != 0 ? normal : sub;
    r = (b & 0x7F) == 0x7F ? std::numeric_limits<float>::quiet_NaN() : r;
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(r) | (static_cast<std::uint32_t>(b & 0x80) << 24));
}

/// Per-token int8 codes of x[0, k) (stride xs): scale = max |x| / 127, returned (0 for a zero
/// row; NaN when any x is NaN, infinite when any is infinite: that token's outputs are then NaN);
/// codes round(x * (127 / max)), half away from zero, clamped to [-127, 127], 0 where the product
/// is NaN; *sum (when given) = the sum of the codes.
template <class T>
float quantize_token_i8(const T* x, std::size_t xs, std::size_t k, std::int8_t* q, std::int32_t* sum = nullptr) noexcept {
    float amax = 0.0f;
    bool nan = false;
    for (std::size_t j = 0; j < k; ++j) {
        const float v = static_cast<float>(x[j * xs]);
        nan = nan || std::isnan(v);
        amax = std::fabs(v) > amax ? std::fabs(v) : amax;
    }
    if (nan) {
        amax = std::numeric_limits<float>::quiet_NaN();
    }
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    std::int32_t s = 0;
    for (std::size_t j = 0; j < k; ++j) {
        q[j] = round_away_i8(static_cast<float>(x[j * xs]) * inv);
        s += q[j];
    }
    if (sum != nullptr) {
        *sum = s;
    }
    return amax / 127.0f;
}

/// quantize_token_i8 of m rows (x_rs apart) into qx (rows k apart), sx and xsum; unit-stride fp32
/// rows take the AVX2 quantizer where the CPU has it (the same codes: tests/quant/channel.cpp).
template <class T>
void quantize_tokens_i8(const T* x, std::size_t x_rs, std::size_t x_cs, std::size_t m, std::size_t k, std::int8_t* qx,
                        float* sx, std::int32_t* xsum) noexcept {
    for (std::size_t i = 0; i < m; ++i) {
#if LLM_QUANT_X86
        if constexpr (std::is_same_v<T, float>) {
            if (x_cs == 1 && isa_available(kernel_isa::avx2)) {
                sx[i] = qk_avx2::quantize_token_i8_row(x + i * x_rs, k, qx + i * k, xsum + i);
                continue;
            }
        }
#endif
        sx[i] = quantize_token_i8(x + i * x_rs, x_cs, k, qx + i * k, xsum + i);
    }
}

/// Exact int32 dot product of int8 rows (|sum| <= 127^2 k < 2^31 for k < 133000).
inline std::int32_t dot_i8(const std::int8_t* a, const std::int8_t* b, std::size_t k) noexcept {
    std::int32_t s = 0;
    for (std::size_t j = 0; j < k; ++j) {
        s += static_cast<std::int32_t>(a[j]) * static_cast<std::int32_t>(b[j]);
    }
    return s;
}

/// fp32 dot product of FP8 codes (decoded in registers) with fp32 x, 8 interleaved partial sums.
inline float dot_fp8(const fp8_e4m3* q, const float* x, std::size_t k) noexcept {
    float acc[8] = {};
    std::size_t j = 0;
    for (; j + 8 <= k; j += 8) {
        for (std::size_t l = 0; l < 8; ++l) {
            acc[l] += fp8_e4m3_value(q[j + l].bits()) * x[j + l];
        }
    }
    for (; j < k; ++j) {
        acc[0] += fp8_e4m3_value(q[j].bits()) * x[j];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <class W>
void check_channel_shapes(const char* fn, std::size_t y0, std::size_t y1, std::size_t x0, std::size_t x1, const W& w) {
    llm::check(x1 == w.cols, fn, ": x has ", x1, " columns but w has ", w.cols);
    llm::check(y0 == x0 && y1 == w.rows, fn, ": y is [", y0, ", ", y1, "] but x w^T is [", x0, ", ", w.rows, "]");
    llm::check(w.q.size() == w.rows * w.cols, fn, ": w holds ", w.q.size(), " codes, not ", w.rows, " x ", w.cols);
}

// The public channel kernels' shared front: checks y = x W^T against w (rank 2: y [M, N],
// x [M, K]; rank 1: M = 1) and calls impl(y, y_rs, y_cs, x, x_rs, x_cs, m) with the views'
// pointers and strides (rank 1: row strides 0).
template <class Y, class X, class W, class Impl>
void channel_matmul(const char* fn, Y& y, X& x, const W& w, Impl&& impl) {
    if constexpr (view_of_rank<Y, 2>) {
        check_channel_shapes(fn, static_cast<std::size_t>(y.extent(0)), static_cast<std::size_t>(y.extent(1)),
                             static_cast<std::size_t>(x.extent(0)), static_cast<std::size_t>(x.extent(1)), w);
        impl(y.data(), static_cast<std::size_t>(y.stride(0)), static_cast<std::size_t>(y.stride(1)), x.data(),
             static_cast<std::size_t>(x.stride(0)), static_cast<std::size_t>(x.stride(1)),
             static_cast<std::size_t>(x.extent(0)));
    } else {
        check_channel_shapes(fn, 1, static_cast<std::size_t>(y.extent(0)), 1, static_cast<std::size_t>(x.extent(0)), w);
        impl(y.data(), std::size_t{0}, static_cast<std::size_t>(y.stride(0)), x.data(), std::size_t{0},
             static_cast<std::size_t>(x.stride(0)), std::size_t{1});
    }
}

}  // namespace detail

/// Quantizes a [rows, cols] fp32 or bf16 view to int8_weights (see there). Non-finite values are
/// llm::error (their scale would poison the row).
/// Example: `auto w8 = llm::quant::quantize_int8(w);`
template <dense_view<2> W>
int8_weights quantize_int8(W&& w) {
    int8_weights r;
    r.rows = static_cast<std::size_t>(w.extent(0));
    r.cols = static_cast<std::size_t>(w.extent(1));
    for (std::size_t i = 0; i < r.rows; ++i) {
        for (std::size_t j = 0; j < r.cols; ++j) {
            const float v = static_cast<float>(w.data()[i * w.stride(0) + j * w.stride(1)]);
            llm::check(std::isfinite(v), "quantize_int8: w(", i, ", ", j, ") = ", v, " is not finite");
        }
    }
    r.q.resize(r.rows * r.cols);
    r.scale.resize(r.rows);
    for (std::size_t i = 0; i < r.rows; ++i) {
        r.scale[i] = detail::quantize_token_i8(w.data() + i * w.stride(0), static_cast<std::size_t>(w.stride(1)), r.cols,
                                               r.q.data() + i * r.cols);
    }
    return r;
}

/// Quantizes a [rows, cols] fp32 or bf16 view to fp8_weights (see there). Non-finite values are
/// llm::error (their scale would poison the row).
/// Example: `auto w8 = llm::quant::quantize_fp8(w, llm::quant::scale_granularity::per_tensor);`
template <dense_view<2> W>
fp8_weights quantize_fp8(W&& w, scale_granularity g = scale_granularity::per_channel) {
    fp8_weights r;
    r.rows = static_cast<std::size_t>(w.extent(0));
    r.cols = static_cast<std::size_t>(w.extent(1));
    r.granularity = g;
    r.q.resize(r.rows * r.cols);
    auto at = [&](std::size_t i, std::size_t j) { return static_cast<float>(w.data()[i * w.stride(0) + j * w.stride(1)]); };
    std::vector<float> amax(r.rows, 0.0f);
    for (std::size_t i = 0; i < r.rows; ++i) {
        for (std::size_t j = 0; j < r.cols; ++j) {
            const float v = at(i, j);
            llm::check(std::isfinite(v), "quantize_fp8: w(", i, ", ", j, ") = ", v, " is not finite");
            amax[i] = std::max(amax[i], std::fabs(v));
        }
    }
    if (g == scale_granularity::per_tensor) {
        float all = 0.0f;
        for (float a : amax) all = std::max(all, a);
        r.scale.assign(1, all / 448.0f);
    } else {
        r.scale.resize(r.rows);
        for (std::size_t i = 0; i < r.rows; ++i) r.scale[i] = amax[i] / 448.0f;
    }
    for (std::size_t i = 0; i < r.rows; ++i) {
        const float s = r.scale_of(i);
        for (std::size_t j = 0; j < r.cols; ++j) {
            r.q[i * r.cols + j] = s > 0.0f ? fp8_e4m3(at(i, j) / s, llm::saturate) : fp8_e4m3(0.0f);
        }
    }
    return r;
}

/// The fp32 values of int8 weights, row-major rows x cols.
/// Example: `std::vector<float> w = llm::quant::dequantize(w8);`
inline std::vector<float> dequantize(const int8_weights& w) {
    std::vector<float> out(w.rows * w.cols);
    for (std::size_t i = 0; i < w.rows; ++i)
        for (std::size_t j = 0; j < w.cols; ++j) out[i * w.cols + j] = w.scale[i] * static_cast<float>(w.q[i * w.cols + j]);
    return out;
}

/// The fp32 values of FP8 weights, row-major rows x cols.
/// Example: `std::vector<float> w = llm::quant::dequantize(w8);`
inline std::vector<float> dequantize(const fp8_weights& w) {
    std::vector<float> out(w.rows * w.cols);
    for (std::size_t i = 0; i < w.rows; ++i)
        for (std::size_t j = 0; j < w.cols; ++j)
            out[i * w.cols + j] = w.scale_of(i) * detail::fp8_e4m3_value(w.q[i * w.cols + j].bits());
    return out;
}

namespace detail {

/// The W8A8 products of rows [n0, n1) of W, row by row: exact int32 dot products, then
/// y(i, n) = float(isum) * (sx[i] * scale[n]).
inline void w8a8_rows(float* y, std::size_t y_rs, std::size_t y_cs, const std::int8_t* qx, const float* sx, std::size_t m,
                      const int8_weights& w, std::size_t n0, std::size_t n1) noexcept {
    const std::size_t k = w.cols;
    for (std::size_t n = n0; n < n1; ++n) {
        for (std::size_t i = 0; i < m; ++i) {
            const std::int32_t isum = dot_i8(w.q.data() + n * k, qx + i * k, k);
            y[i * y_rs + n * y_cs] = static_cast<float>(isum) * (sx[i] * w.scale[n]);
        }
    }
}

/// Activation rows from which gemm_w8a8 takes the AMX-INT8 tiles where they exist (a full A tile;
/// fewer rows stream W through the row-by-row dot products; not measured: no AMX CPU yet).
inline constexpr std::size_t w8a8_amx_min_rows = 16;

/// Activation rows from which gemm_w8a8 packs 32-row panels of W for the vpdpbusd tiles: one row
/// (decode) does not pay the packing back, two do (Zen 5, 4096 x 4096: 0.65x and 1.31x the row
/// path; BENCHMARKS.md, 2026-12-07).
inline constexpr std::size_t w8a8_panel_min_rows = 2;

/// The largest K of W8A8: the int32 sums hold 128 x 127 x K.
inline constexpr std::size_t w8a8_max_k = std::size_t{1} << 17;

/// The W8A8 products on vpdpbusd / vpmaddubsw tiles (isa: avx2, avx_vnni or avx512_vnni, available
/// here): the same exact int32 sums as w8a8_rows, the same fp32 formula, so the same bits. The
/// activations are packed once in groups of the path's tile rows; each thread packs a 32-row
/// panel of W at a time (int_kernels.inc: w8a8_pack) and runs every group over it. xsum: the
/// activation codes' sums (for the +128 offset of the VNNI paths). ws: the packed activations (m
/// rounded up to 8, x k rounded up to 4 bytes), per thread a panel (32 x k rounded up to 4 bytes)
/// and m x 32 int32 sums.
template <class Exec>
void w8a8_panels(kernel_isa isa, float* y, std::size_t y_rs, std::size_t y_cs, const std::int8_t* qx, const float* sx,
                 const std::int32_t* xsum, std::size_t m, const int8_weights& w, llm::workspace& ws, Exec& exec) {
#if LLM_QUANT_X86
    const std::size_t k = w.cols, steps = (k + 3) / 4, panel_bytes = 128 * steps, panels = (w.rows + 31) / 32;
    const std::size_t mr = isa == kernel_isa::avx512_vnni ? qk_avx512_vnni::w8a8_mr
                           : isa == kernel_isa::avx_vnni  ? qk_avx_vnni::w8a8_mr
                                                          : qk_avx2::w8a8_mr;
    const std::size_t groups = (m + mr - 1) / mr;
    const std::size_t slots = std::min<std::size_t>(std::max<std::size_t>(1, exec.size()), panels);
    const std::size_t sums = checked_mul(m, 32, "gemm_w8a8", "the int32 sums");
    auto* xp = ws.take<std::uint8_t>(checked_mul(checked_mul(groups, 4 * mr, "gemm_w8a8", "the packed activations"), steps,
                                                 "gemm_w8a8", "the packed activations"),
                                     "gemm_w8a8", "the packed activations");
    auto* pb = ws.take<std::uint8_t>(checked_mul(slots, panel_bytes, "gemm_w8a8", "the packed weight panels"),
                                     "gemm_w8a8", "the packed weight panels");
    auto* cb = ws.take<std::int32_t>(checked_mul(slots, sums, "gemm_w8a8", "the int32 sums"), "gemm_w8a8",
                                     "the int32 sums");
    for (std::size_t g = 0; g < groups; ++g) {
        const std::size_t rows = std::min(mr, m - g * mr);
        std::uint8_t* out = xp + g * 4 * mr * steps;
        switch (isa) {
        case kernel_isa::avx512_vnni: qk_avx512_vnni::w8a8_pack_act(qx + g * mr * k, k, rows, k, out); break;
        case kernel_isa::avx_vnni: qk_avx_vnni::w8a8_pack_act(qx + g * mr * k, k, rows, k, out); break;
        default: qk_avx2::w8a8_pack_act(qx + g * mr * k, k, rows, k, out); break;
        }
    }
    const bool offset = isa != kernel_isa::avx2;
    std::atomic<std::size_t> next{0};
    parallel::parallel_for(exec, slots, 1, [&](std::size_t slot, std::size_t) {
        std::uint8_t* panel = pb + slot * panel_bytes;
        std::int32_t* c = cb + slot * sums;
        for (std::size_t p = next.fetch_add(1, std::memory_order_relaxed); p < panels;
             p = next.fetch_add(1, std::memory_order_relaxed)) {
            const std::size_t n0 = 32 * p, rows = std::min<std::size_t>(32, w.rows - n0);
            const std::int8_t* wp = w.q.data() + n0 * k;
            switch (isa) {
            case kernel_isa::avx512_vnni:
                qk_avx512_vnni::w8a8_pack(wp, k, rows, k, panel);
                qk_avx512_vnni::w8a8_panel_rows(panel, xp, m, steps, c);
                break;
            case kernel_isa::avx_vnni:
                qk_avx_vnni::w8a8_pack(wp, k, rows, k, panel);
                qk_avx_vnni::w8a8_panel_rows(panel, xp, m, steps, c);
                break;
            default:
                qk_avx2::w8a8_pack(wp, k, rows, k, panel);
                qk_avx2::w8a8_panel_rows(panel, xp, m, steps, c);
                break;
            }
            for (std::size_t i = 0; i < m; ++i) {
                // The offset sums wrap in int32 only where 128 x the codes' sum does: uint32
                // arithmetic takes the true sum back.
                const std::uint32_t corr = offset ? 128u * static_cast<std::uint32_t>(xsum[i]) : 0u;
                for (std::size_t j = 0; j < rows; ++j) {
                    const auto isum = static_cast<std::int32_t>(static_cast<std::uint32_t>(c[32 * i + j]) - corr);
                    y[i * y_rs + (n0 + j) * y_cs] = static_cast<float>(isum) * (sx[i] * w.scale[n0 + j]);
                }
            }
        }
    });
#else
    (void)isa, (void)y, (void)y_rs, (void)y_cs, (void)qx, (void)sx, (void)xsum, (void)m, (void)w, (void)ws, (void)exec;
    llm::fail("gemm_w8a8: the vpdpbusd tiles need an x86 build");
#endif
}

/// The W8A8 products on int8 tiles (Tiles: blas::detail::amx_hardware, or amx_emulated in
/// tests): the same exact int32 sums as w8a8_rows, the same fp32 formula, so the same bits. The
/// activations are packed once (32-row tiles, k padded to 64); each thread packs a 32-row panel
/// of W at a time and runs every activation tile over it. ws: (m rounded up to 32 + 32 x threads)
/// x padded k bytes.
template <class Tiles, class Exec>
void w8a8_amx(float* y, std::size_t y_rs, std::size_t y_cs, const std::int8_t* qx, const float* sx, std::size_t m,
              const int8_weights& w, llm::workspace& ws, Exec& exec) {
    using tiles = blas::detail::amx_i8<Tiles>;
    const std::size_t k = w.cols, kp = tiles::padded_k(k);
    const std::size_t row_tiles = (m + 31) / 32, panels = (w.rows + 31) / 32;
    const std::size_t slots = std::min<std::size_t>(std::max<std::size_t>(1, exec.size()), panels);
    std::int8_t* ap = ws.take<std::int8_t>(checked_mul(checked_mul(row_tiles, 32, "gemm_w8a8", "the packed activations"), kp,
                                                       "gemm_w8a8", "the packed activations"),
                                           "gemm_w8a8", "the packed activations");
    std::int8_t* bp = ws.take<std::int8_t>(checked_mul(slots, 32 * kp, "gemm_w8a8", "the packed weight panels"), "gemm_w8a8",
                                           "the packed weight panels");
    for (std::size_t t = 0; t < row_tiles; ++t) {
        tiles::pack_a(qx, m, k, 32 * t, ap + t * 32 * kp);
    }
    std::atomic<std::size_t> next{0};
    parallel::parallel_for(exec, slots, 1, [&](std::size_t slot, std::size_t) {
        std::int8_t* panel = bp + slot * 32 * kp;
        alignas(64) std::int32_t c[32 * 32];
        for (std::size_t p = next.fetch_add(1, std::memory_order_relaxed); p < panels;
             p = next.fetch_add(1, std::memory_order_relaxed)) {
            const std::size_t n0 = 32 * p, n1 = std::min(w.rows, n0 + 32);
            tiles::pack_b(w.q.data(), w.rows, k, n0, panel);
            for (std::size_t t = 0; t < row_tiles; ++t) {
                tiles::micro(kp, ap + t * 32 * kp, panel, c, 32);
                for (std::size_t i = 32 * t; i < std::min(m, 32 * t + 32); ++i) {
                    for (std::size_t n = n0; n < n1; ++n) {
                        y[i * y_rs + n * y_cs] = static_cast<float>(c[(i - 32 * t) * 32 + (n - n0)]) * (sx[i] * w.scale[n]);
                    }
                }
            }
        }
    });
}

template <class TX, class Exec>
void w8a8_impl(float* y, std::size_t y_rs, std::size_t y_cs, const TX* x, std::size_t x_rs, std::size_t x_cs,
               std::size_t m, const int8_weights& w, llm::workspace& ws, Exec& exec) {
    const std::size_t k = w.cols;
    llm::check(w.scale.size() == w.rows, "gemm_w8a8: w holds ", w.scale.size(), " scales, not one per row (", w.rows,
               ")");
    llm::check(k <= w8a8_max_k, "gemm_w8a8: w has K = ", k, " columns; the int32 sums hold K <= ", w8a8_max_k);
    const llm::workspace::frame frame(ws);
    std::int8_t* qx = ws.take<std::int8_t>(checked_mul(m, k, "gemm_w8a8", "the int8 activations"), "gemm_w8a8",
                                           "the int8 activations");
    float* sx = ws.take<float>(m, "gemm_w8a8", "the activation scales");
    std::int32_t* xsum = ws.take<std::int32_t>(m, "gemm_w8a8", "the activation code sums");
    quantize_tokens_i8(x, x_rs, x_cs, m, k, qx, sx, xsum);
#if LLM_GEMM_AMX
    if (m >= w8a8_amx_min_rows && blas::amx_int8_available()) {
        w8a8_amx<blas::detail::amx_hardware>(y, y_rs, y_cs, qx, sx, m, w, ws, exec);
        return;
    }
#endif
    if (const kernel_isa isa = best_isa(); m >= w8a8_panel_min_rows && isa != kernel_isa::generic) {
        w8a8_panels(isa, y, y_rs, y_cs, qx, sx, xsum, m, w, ws, exec);
        return;
    }
    const std::size_t grain = std::max<std::size_t>(1, (w.rows + 8 * exec.size() - 1) / (8 * exec.size()));
    parallel::parallel_for(exec, w.rows, grain,
                           [&](std::size_t n0, std::size_t n1) { w8a8_rows(y, y_rs, y_cs, qx, sx, m, w, n0, n1); });
}

}  // namespace detail

/// W8A8 y = x W^T: each row (token) of x quantized to int8 with its own scale s_x = max |x| / 127
/// (dynamic per-token), exact int32 dot products with the int8 weights, y(m, n) =
/// float(isum) * (s_x * scale[n]). Threads split the rows of W. The sums come from int8 tiles
/// chosen at run time, all exact, so every path gives the same bits: AMX-INT8 (`tdpbssd`) from 16
/// rows of x where llm::blas::amx_int8_available; else from 2 rows 32-row panels of W against 8
/// (AVX-512 VNNI, `vpdpbusd` on 512 bits) or 2 (AVX-VNNI, AVX2) rows of x; for one row (decode)
/// row-by-row dot products streaming W once (the compiler's vectors: a vpdpbusd dot product
/// measured no faster). A NaN or infinite activation makes its token's outputs NaN.
/// Errors (llm::error): shapes, K > 131072 (the int32 sums), w.scale not one per row.
///   y: [M, N] fp32, x: [M, K] fp32 or bf16, w: N x K int8_weights; ws: M x K bytes + 2 M
///   floats, and on the tile paths the packed activations and per thread 32 K + 128 M bytes.
/// Error against x W'^T (W' the dequantized weights): at most sum_k |W'(n, k)| s_x / 2 (half an
/// activation step) plus fp32 rounding (3 ulps of |y|).
/// Example: `llm::quant::gemm_w8a8(y, x, w8, ws, pool);`
template <view_of_rank<2> Y, dense_view<2> X, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemm_w8a8(Y&& y, X&& x, const int8_weights& w, llm::workspace& ws, Exec&& exec) {
    detail::channel_matmul("gemm_w8a8", y, x, w, [&](auto... a) { detail::w8a8_impl(a..., w, ws, exec); });
}

/// W8A8 for one token (decode): y[n] = float(isum) * (s_x * scale[n]), as gemm_w8a8 with M = 1.
///   y: [N] fp32, x: [K] fp32 or bf16 (any strides); ws: K bytes + 1 float.
/// Example: `llm::quant::gemv_w8a8(y, x, w8, ws, pool);`
template <view_of_rank<1> Y, dense_view<1> X, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemv_w8a8(Y&& y, X&& x, const int8_weights& w, llm::workspace& ws, Exec&& exec) {
    detail::channel_matmul("gemv_w8a8", y, x, w, [&](auto... a) { detail::w8a8_impl(a..., w, ws, exec); });
}

/// gemm_w8a8 on llm::parallel::default_pool() with a temporary workspace.
/// Example: `llm::quant::gemm_w8a8(y, x, w8);`
template <view_of_rank<2> Y, dense_view<2> X>
    requires std::same_as<view_element_t<Y>, float>
void gemm_w8a8(Y&& y, X&& x, const int8_weights& w) {
    llm::workspace ws;
    gemm_w8a8(y, x, w, ws, parallel::default_pool());
}

namespace detail {

template <class TX, class Exec>
void fp8_impl(float* y, std::size_t y_rs, std::size_t y_cs, const TX* x, std::size_t x_rs, std::size_t x_cs,
              std::size_t m, const fp8_weights& w, llm::workspace& ws, Exec& exec) {
    const std::size_t k = w.cols;
    const llm::workspace::frame frame(ws);
    const float* xf = nullptr;
    if constexpr (std::is_same_v<std::remove_const_t<TX>, float>) {
        xf = x_cs == 1 || k <= 1 ? x : nullptr;
    }
    if (xf == nullptr) {
        float* wide = ws.take<float>(m * k, "gemm_fp8", "the widened activations");
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < k; ++j) wide[i * k + j] = static_cast<float>(x[i * x_rs + j * x_cs]);
        xf = wide;
        x_rs = k;
    }
    const std::size_t grain = std::max<std::size_t>(1, (w.rows + 8 * exec.size() - 1) / (8 * exec.size()));
    parallel::parallel_for(exec, w.rows, grain, [&](std::size_t n0, std::size_t n1) {
        for (std::size_t n = n0; n < n1; ++n) {
            for (std::size_t i = 0; i < m; ++i) {
                y[i * y_rs + n * y_cs] = w.scale_of(n) * dot_fp8(w.q.data() + n * k, xf + i * x_rs, k);
            }
        }
    });
}

}  // namespace detail

/// FP8 y = x W^T: each weight code decoded to fp32 in registers (integer operations, no table),
/// multiplied by fp32 x (bf16 widened), the row's sum scaled once: y(m, n) = scale[n] * sum_k
/// float(q(n, k)) x(m, k). Threads split the rows of W.
///   y: [M, N] fp32, x: [M, K] fp32 or bf16, w: N x K fp8_weights; ws: M x K floats when x is
///   bf16 or strided.
/// Error against x W'^T: fp32 summation, at most (K / 8 + 6) 2^-24 sum_k |W'(n, k) x(m, k)|.
/// Example: `llm::quant::gemm_fp8(y, x, w8, ws, pool);`
template <view_of_rank<2> Y, dense_view<2> X, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemm_fp8(Y&& y, X&& x, const fp8_weights& w, llm::workspace& ws, Exec&& exec) {
    detail::channel_matmul("gemm_fp8", y, x, w, [&](auto... a) { detail::fp8_impl(a..., w, ws, exec); });
}

/// FP8 for one token (decode), as gemm_fp8 with M = 1.
///   y: [N] fp32, x: [K] fp32 or bf16 (any strides); ws: K floats when x is bf16 or strided.
/// Example: `llm::quant::gemv_fp8(y, x, w8, ws, pool);`
template <view_of_rank<1> Y, dense_view<1> X, parallel::policy Exec>
    requires std::same_as<view_element_t<Y>, float>
void gemv_fp8(Y&& y, X&& x, const fp8_weights& w, llm::workspace& ws, Exec&& exec) {
    detail::channel_matmul("gemv_fp8", y, x, w, [&](auto... a) { detail::fp8_impl(a..., w, ws, exec); });
}

/// gemm_fp8 on llm::parallel::default_pool() with a temporary workspace.
/// Example: `llm::quant::gemm_fp8(y, x, w8);`
template <view_of_rank<2> Y, dense_view<2> X>
    requires std::same_as<view_element_t<Y>, float>
void gemm_fp8(Y&& y, X&& x, const fp8_weights& w) {
    llm::workspace ws;
    gemm_fp8(y, x, w, ws, parallel::default_pool());
}

}  // namespace llm::quant
