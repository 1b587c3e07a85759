// SPDX-License-Identifier: Apache-2.0
// Device tags (llm::cpu, llm::cuda) saying where a tensor's elements live, and their concept.
#pragma once

#include <concepts>

namespace llm {

/// Elements in host memory: readable and writable by host code.
struct cpu {
    static constexpr bool host_accessible = true;  ///< Host code may touch the elements.
    static constexpr const char* name = "cpu";     ///< For messages.
};

/// Elements in CUDA device memory: only device code may dereference them. The tag exists in
/// every build so that signatures can name it; it is only meaningful with LLM_HAS_CUDA.
/// Host-side element access, fill, copy, convert and printing are refused at compile time
/// for cuda views, and llm::tensor does not own cuda memory (wrap cudaMalloc'ed memory in a
/// tensor_view<T, E, L, llm::cuda>).
struct cuda {
    static constexpr bool host_accessible = false;  ///< Only device code may touch the elements.
    static constexpr const char* name = "cuda";     ///< For messages.
};

/// A device tag: says whether host code may touch the elements, and names the device.
template <class D>
concept device_tag = requires {
    { D::host_accessible } -> std::convertible_to<bool>;
    { D::name } -> std::convertible_to<const char*>;
};

/// A device tag whose memory host code may read and write.
template <class D>
concept host_device_tag = device_tag<D> && D::host_accessible;

static_assert(host_device_tag<cpu>);
static_assert(device_tag<cuda> && !host_device_tag<cuda>);

}  // namespace llm
