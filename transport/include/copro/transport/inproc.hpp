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
struct InprocOpTiming {
  std::int32_t rank = 0;
  std::int32_t lane = 0;
  std::uint32_t index = 0;       ///< position of the first op in the lane
  std::uint32_t count = 1;       ///< ops executed as one (the executor fuses reduce + multicast), from `op` on
  const core::Op* op = nullptr;  ///< the first op; valid only during the callback
  /// When the lane first tried the op (a wait that blocks starts here) and when it completed.
  std::chrono::steady_clock::time_point begin;
  std::chrono::steady_clock::time_point end;
};

/// Installs a process-wide observer of every op every inproc lane completes (nullptr: none, the default;
/// then executing costs one relaxed atomic load per lane run). The observer is called from the threads
/// that run lanes, concurrently, and must be thread-safe. Install or remove it only while no inproc call
/// is running.
void setInprocOpObserver(std::function<void(const InprocOpTiming&)> observer);

}  // namespace copro::transport
