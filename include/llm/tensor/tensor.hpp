// SPDX-License-Identifier: Apache-2.0
// Umbrella header of the tensor module: extents, layouts, devices, storage, views, tensors, algorithms.
#pragma once

#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/device.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/layout.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/storage.hpp>
#include <llm/tensor/tensor_view.hpp>
#include <llm/tensor/views.hpp>

// Printing (operator<<, llm::to_string) is in <llm/tensor/print.hpp>: every kernel header
// includes this one, and most never print.
