// SPDX-License-Identifier: Apache-2.0
// Umbrella header of the tensor module: extents, layouts, devices, storage, views, tensors, algorithms.
#pragma once

#include <llm/tensor/algorithm.hpp>
#include <llm/tensor/concepts.hpp>
#include <llm/tensor/device.hpp>
#include <llm/tensor/extents.hpp>
#include <llm/tensor/layout.hpp>
#include <llm/tensor/owning_tensor.hpp>
#include <llm/tensor/storage.hpp>
#include <llm/tensor/tensor_view.hpp>
#include <llm/tensor/views.hpp>

// The rules every tensor function follows, in one place:
// - Sizes, indices and strides are std::size_t; strides are in elements and never negative.
// - Zero-size dimensions (static or dynamic) are allowed everywhere: size() is 0, an owning
//   tensor allocates nothing (data() == nullptr), a view may have a null data(); at() then
//   always throws, select() of such a dimension throws (no index is valid), slices,
//   transposes, reshapes between empty shapes, fill, copy, convert and printing work.
// - is_contiguous(): row-major dense (data()[k] is the k-th element in row-major order), as
//   numpy's C_CONTIGUOUS and PyTorch's is_contiguous(); is_exhaustive(): dense in some order;
//   is_unique(): no two indices share an element.
// - llm::tensor is a value (copies deep, moves steal); tensor_view is a shallow handle whose
//   element constness is in its type. Views of temporary tensors do not compile.
// - Bad input (shape mismatch, index or range out of bounds, impossible reshape, static
//   extent contradicted) throws llm::error naming the function, the argument and the values.
//
// Printing (operator<<, llm::to_string) is in <llm/tensor/print.hpp>: every kernel header
// includes this one, and most never print.
