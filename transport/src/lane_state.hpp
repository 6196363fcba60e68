#pragma once
/// What a lane of the load/store lane engine keeps between runs (its reusable vectors and the timing of
/// its current op) and how one run of a lane ends. The backends' lane records embed `LaneScratch`; their
/// executors act on `LaneRun`.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace copro::transport::lanes {

/// A resolved address of a backend where every byte is directly addressable (inproc).
struct DirectLoc {
  std::byte* ptr = nullptr;
};

/// A signal that a fused reduce adds after its data is written.
struct PendingSignal {
  std::int32_t rank;
  std::atomic<std::uint64_t>* sem;
  std::uint64_t value;
};

/// Per-lane vectors reused op after op, so that running ops does not allocate once they have grown.
template <typename Loc>
struct LaneScratch {
  std::vector<std::int32_t> peers;  ///< peers whose accessor count the current op holds
  std::vector<Loc> srcs;
  std::vector<Loc> dsts;
  std::vector<std::atomic<std::uint64_t>*> sems;
  std::vector<PendingSignal> signals;
  std::vector<const void*> kernelSrcs;  ///< a reduction kernel's arguments
  std::vector<void*> kernelDsts;
  std::vector<std::byte> staging;  ///< a port's bounce buffer (shm: Cross Memory Attach blocks)
  std::uint32_t timedPc = ~0U;     ///< per-op timing: the op first tried at opBegin
  std::chrono::steady_clock::time_point opBegin;
};

/// How a lane run ended.
enum class LaneEnd { kBlocked, kDone, kFailed, kStopped };
struct LaneRun {
  bool progressed = false;
  bool finishedNow = false;  ///< this run completed the lane (count it once)
  LaneEnd end = LaneEnd::kBlocked;
};

}  // namespace copro::transport::lanes
