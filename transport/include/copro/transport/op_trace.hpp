#pragma once
/// Per-op tracing of the real backends: one observer interface that every lane engine (the load/store
/// engine of `inproc` and `shm`, the remote engine of `mpi`, `ucx` and the virtual-node pairs) calls after
/// each op it completed, for timelines (`copro-perf --trace`) and tests.
#include <chrono>
#include <cstdint>
#include <functional>

#include "copro/core/program.hpp"

namespace copro::transport {

/// One op (or fused group of ops) a lane executed.
struct LaneOpTiming {
  const char* backend = "";  ///< "inproc", "shm", or the remote transport's name ("mpi", "ucx", ...)
  std::int32_t rank = 0;
  std::int32_t lane = 0;
  std::uint32_t index = 0;       ///< position of the first op in the lane
  std::uint32_t count = 1;       ///< ops executed as one (the load/store engine fuses reduce + puts), from `op` on
  const core::Op* op = nullptr;  ///< the first op; valid only during the callback
  /// When the lane first tried the op (a wait that blocks starts here) and when it completed (for the
  /// remote engine: when its work was handed to the network).
  std::chrono::steady_clock::time_point begin;
  std::chrono::steady_clock::time_point end;
};

/// Installs a process-wide observer of every op every lane of every real backend completes (nullptr:
/// none, the default; then executing costs one relaxed atomic load per lane run). The observer is
/// called from the threads that run lanes, concurrently, and must be thread-safe. Install or remove it
/// only while no call is running.
void setLaneOpObserver(std::function<void(const LaneOpTiming&)> observer);

namespace lanes {
/// Whether an observer is installed (one relaxed load).
bool opTraceOn() noexcept;
/// Calls the observer (only after opTraceOn() said yes).
void traceOp(const LaneOpTiming& timing);
}  // namespace lanes

}  // namespace copro::transport
