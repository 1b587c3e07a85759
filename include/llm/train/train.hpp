// SPDX-License-Identifier: Apache-2.0
// llm::train: optimizers, clipping and accumulation, schedules, averaged weights, the loss
// guard, llm.c token files and the batch loader, and resumable state.
#pragma once

#include <llm/train/clip.hpp>
#include <llm/train/ema.hpp>
#include <llm/train/guard.hpp>
#include <llm/train/loader.hpp>
#include <llm/train/metrics.hpp>
#include <llm/train/optimizer.hpp>
#include <llm/train/rng.hpp>
#include <llm/train/schedule.hpp>
#include <llm/train/state.hpp>
#include <llm/train/token_file.hpp>
