// SPDX-License-Identifier: Apache-2.0
// Umbrella header of llm::parallel: policies, thread_pool, parallel_for, parallel_reduce.
#pragma once

#include <llm/parallel/parallel_for.hpp>
#include <llm/parallel/parallel_reduce.hpp>
#include <llm/parallel/policy.hpp>
#include <llm/parallel/sequential.hpp>
#include <llm/parallel/thread_pool.hpp>
