// SPDX-License-Identifier: Apache-2.0
// Umbrella header: includes every module's public headers.
#pragma once

#include <llm/config.hpp>
#include <llm/version.hpp>

#include <llm/core/error.hpp>
