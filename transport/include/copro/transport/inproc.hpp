#pragma once
/// The `inproc` backend: every rank is a thread of one process, and all ranks form one load/store domain
/// (any lane may read and write any rank's buffers directly). Used by most tests and by single-host runs
/// that need no processes. See docs/inproc.md for the execution rules (stream order, epochs, timeouts,
/// abort) and docs/initiation.md for the per-lane initiation modes.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "copro/core/executor.hpp"
#include "copro/core/program.hpp"
#include "op_trace.hpp"  // same folder: tests include this header by path

namespace copro::transport {

/// Creates `options.nranks` executors (rank i at index i) that share one world: semaphores, scratch,
/// and pools of progress threads for proxy and offload lanes (started on first use). Each executor is driven by one
/// user thread at a time; different ranks' executors are driven concurrently by different threads.
///
/// Throws Error(kInvalidArgument) for nranks < 1, a nodeOfRank of the wrong length, or an initiation
/// mode other than "device" and "proxy".
std::vector<std::unique_ptr<core::Executor>> createInprocExecutors(const core::ExecutorOptions& options);

/// Adds the backend to a registry under the name "inproc".
void registerInproc(core::ExecutorRegistry& registry);

/// One op (or fused group of ops) an inproc lane executed, for timelines (`copro-perf --trace`).
using InprocOpTiming = LaneOpTiming;

/// Installs the per-op observer (op_trace.hpp) for the ops of inproc lanes only (nullptr: none). The
/// observer is called from the threads that run lanes, concurrently, and must be thread-safe. Install or
/// remove it only while no inproc call is running.
void setInprocOpObserver(std::function<void(const InprocOpTiming&)> observer);

}  // namespace copro::transport
