// SPDX-License-Identifier: Apache-2.0
// The instruction sets the quantized matrix kernels can use, detected at run time.
#pragma once

#include <llm/core/error.hpp>

#include <string_view>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace llm::quant {

/// The code path of llm::quant::gemv / gemm. `best` picks, at run time, the fastest the CPU
/// has: avx512_vnni (256-bit `vpdpbusd`, AVX-512 VNNI + VL), then avx_vnni (the VEX form,
/// Alder Lake and later), then avx2 (`vpmaddubsw` + `vpmaddwd`, with FMA), then generic
/// (any CPU: each weight block dequantized to fp32 and dotted with the fp32 activations).
/// The integer paths give identical results to each other (exact integer block sums, the same
/// float accumulation order). Asking for a path the CPU lacks is an llm::error.
/// Example: `llm::quant::gemv(y, x, w, {.path = llm::quant::kernel_isa::avx2});`
enum class kernel_isa {
    best,         ///< the fastest available (the default)
    generic,      ///< portable C++: dequantize each weight block, fp32 dot products
    avx2,         ///< AVX2 + FMA + F16C: `_mm256_maddubs_epi16` integer dot products
    avx_vnni,     ///< AVX-VNNI: `_mm256_dpbusd_avx_epi32`
    avx512_vnni,  ///< AVX-512 VNNI with VL: `_mm256_dpbusd_epi32`
};

/// The name of a path, as in test names and benchmark labels ("avx2", ...).
/// Example: `std::puts(llm::quant::isa_name(llm::quant::kernel_isa::avx2).data());`
constexpr std::string_view isa_name(kernel_isa isa) noexcept {
    switch (isa) {
    case kernel_isa::best: return "best";
    case kernel_isa::generic: return "generic";
    case kernel_isa::avx2: return "avx2";
    case kernel_isa::avx_vnni: return "avx_vnni";
    case kernel_isa::avx512_vnni: return "avx512_vnni";
    }
    return "unknown";
}

namespace detail {

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define LLM_QUANT_X86 1
#else
#define LLM_QUANT_X86 0
#endif

struct isa_flags {
    bool avx2 = false;
    bool avx_vnni = false;
    bool avx512_vnni = false;
};

inline isa_flags detect_isa() noexcept {
    isa_flags f;
#if LLM_QUANT_X86
    __builtin_cpu_init();
    unsigned a = 0, b = 0, c = 0, d = 0;
    // F16C (CPUID 1, ECX bit 29) converts the blocks' f16 scales; every AVX2 CPU has it.
    const bool f16c = __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & (1u << 29)) != 0;
    f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    f.avx512_vnni = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    // AVX-VNNI: CPUID leaf 7 sub-leaf 1, EAX bit 4 (not every compiler's __builtin_cpu_supports
    // knows the name; the OS saves YMM state, as avx2 above implies).
    a = b = c = d = 0;
    f.avx_vnni = f.avx2 && __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0 && (a & (1u << 4)) != 0;
#endif
    return f;
}

inline const isa_flags& cpu_isa() noexcept {
    static const isa_flags f = detect_isa();
    return f;
}

}  // namespace detail

/// True when this CPU (and this build: x86-64 with GCC or clang for the vector paths) can run
/// `isa`; `best` and `generic` always can.
/// Example: `if (llm::quant::isa_available(llm::quant::kernel_isa::avx512_vnni)) { ... }`
inline bool isa_available(kernel_isa isa) noexcept {
    const auto& f = detail::cpu_isa();
    switch (isa) {
    case kernel_isa::best:
    case kernel_isa::generic: return true;
    case kernel_isa::avx2: return f.avx2;
    case kernel_isa::avx_vnni: return f.avx_vnni;
    case kernel_isa::avx512_vnni: return f.avx512_vnni;
    }
    return false;
}

/// The path `best` selects on this CPU.
/// Example: `std::printf("%s\n", llm::quant::isa_name(llm::quant::best_isa()).data());`
inline kernel_isa best_isa() noexcept {
    const auto& f = detail::cpu_isa();
    return f.avx512_vnni ? kernel_isa::avx512_vnni
           : f.avx_vnni  ? kernel_isa::avx_vnni
           : f.avx2      ? kernel_isa::avx2
                         : kernel_isa::generic;
}

namespace detail {

/// `isa` resolved (best -> best_isa()); llm::error naming `fn` when the CPU lacks it.
inline kernel_isa resolve_isa(kernel_isa isa, const char* fn) {
    if (isa == kernel_isa::best) {
        return best_isa();
    }
    llm::check(isa_available(isa), fn, ": the ", isa_name(isa), " path is not available on this CPU (best is ",
               isa_name(best_isa()), ")");
    return isa;
}

}  // namespace detail

}  // namespace llm::quant
