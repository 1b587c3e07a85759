// SPDX-License-Identifier: Apache-2.0
// Feature macros, portability macros and LLM_ASSERT: the only place where LLM_ macros are defined.
#pragma once

#include <cstdio>
#include <cstdlib>

// ---------------------------------------------------------------------------------------
// Optional backends. The CMake target `llm::llm` defines LLM_HAS_<X>=1 for every backend
// it was configured with; a user building without CMake may define them by hand.
// Undefined means "not available".
// ---------------------------------------------------------------------------------------
#ifndef LLM_HAS_EIGEN
#define LLM_HAS_EIGEN 0
#endif
#ifndef LLM_HAS_XSIMD
#define LLM_HAS_XSIMD 0
#endif
#ifndef LLM_HAS_HWY
#define LLM_HAS_HWY 0
#endif
#ifndef LLM_HAS_OPENMP
#define LLM_HAS_OPENMP 0
#endif
#ifndef LLM_HAS_MPI
#define LLM_HAS_MPI 0
#endif
// CUDA code paths need both the toolkit (LLM_HAS_CUDA from CMake) and nvcc compiling the
// translation unit; LLM_CUDA_COMPILE is the latter.
#ifndef LLM_HAS_CUDA
#define LLM_HAS_CUDA 0
#endif
#if defined(__CUDACC__)
#define LLM_CUDA_COMPILE 1
#else
#define LLM_CUDA_COMPILE 0
#endif

// LLM_HD marks functions callable from host and device code (tile maths, element types).
#if LLM_CUDA_COMPILE
#define LLM_HD __host__ __device__
#else
#define LLM_HD
#endif

// Exceptions: with -fno-exceptions (or LLM_NO_EXCEPTIONS defined) errors print and abort.
#if !defined(LLM_NO_EXCEPTIONS) && !defined(__cpp_exceptions) && !defined(__EXCEPTIONS)
#define LLM_NO_EXCEPTIONS 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LLM_FORCE_INLINE inline __attribute__((always_inline))
#define LLM_RESTRICT __restrict__
#else
#define LLM_FORCE_INLINE inline
#define LLM_RESTRICT
#endif

// LLM_ASSERT checks internal invariants in hot loops. It is on in debug builds
// (NDEBUG not defined) and whenever LLM_ENABLE_ASSERTS is defined (the sanitizer build
// does that); otherwise it compiles to nothing. Bad user input never relies on it: public
// entry points validate with llm::check and throw llm::error.
#if !defined(NDEBUG) || defined(LLM_ENABLE_ASSERTS)
#if defined(__CUDA_ARCH__)
// Device code cannot call fprintf/abort: print with the device printf and trap.
#define LLM_ASSERT(cond)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            printf("%s:%d: LLM_ASSERT(%s) failed\n", __FILE__, __LINE__, #cond);        \
            __trap();                                                                  \
        }                                                                              \
    } while (false)
#else
#define LLM_ASSERT(cond)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::fprintf(stderr, "%s:%d: LLM_ASSERT(%s) failed\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                   \
        }                                                                                   \
    } while (false)
#endif
#else
#define LLM_ASSERT(cond) ((void)0)
#endif
