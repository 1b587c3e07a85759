// SPDX-License-Identifier: Apache-2.0
// The library version, as macros for the preprocessor and as a string at run time.
#pragma once

#define LLM_VERSION_MAJOR 0
#define LLM_VERSION_MINOR 1
#define LLM_VERSION_PATCH 0

namespace llm {

/// The library version as "MAJOR.MINOR.PATCH".
/// Example: `std::puts(llm::version());`
constexpr const char* version() noexcept { return "0.1.0"; }

}  // namespace llm
