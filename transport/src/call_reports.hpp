#pragma once
/// The words every engine uses about its calls, written once: rank lists, seconds, the label of an op,
/// and the stall report of a call that timed out (which ranks never entered it or left, else what each
/// blocked lane waits for).
#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::transport::calls {

/// "rank 3" or "ranks 1, 2, 5" (at most 32 listed, then "and N more").
std::string rankList(const std::vector<int>& ranks);
/// A duration in seconds as a user reads it ("0.5", "30").
std::string formatSeconds(double s);

/// The status of a call (`label`) that made no progress for `timeoutSec`: kTimeout, "<label>: timed out
/// after T s: <report>" (`report`: the stall report, what blocks it).
core::Status timeoutStatus(const std::string& label, double timeoutSec, const std::string& report);

/// "<label> lane L op I (code)" for messages. `CallT` has `label` and `rankProgram`.
template <typename CallT>
std::string opLabelOf(const CallT& call, int lane, std::uint32_t index) {
  std::string out = call.label() + " lane " + std::to_string(lane) + " op " + std::to_string(index);
  const auto& ops = call.rankProgram->lanes[static_cast<std::size_t>(lane)].ops;
  if (index < ops.size()) out += " (" + std::string(core::opCodeName(ops[index].code)) + ")";
  return out;
}

/// What a blocked lane at `op` waits for: " waits for semaphore S >= V (it is X)" for a wait on a
/// semaphore the rank has (`semKnown`; `semProgress` is its value above the epoch base), else " waits
/// for rank R to enter the call" when `blockedOnRank` >= 0, else nothing.
std::string laneWaitText(const core::Op& op, bool semKnown, std::uint64_t semProgress, std::int32_t blockedOnRank);

/// What a stall report reads of one lane: whether it finished, its current op, the rank it waits to
/// enter the call (-1: none) and its ops.
struct LaneSnapshot {
  bool done = false;
  std::uint32_t pc = 0;
  std::int32_t blockedOnRank = -1;
  const std::vector<core::Op>* ops = nullptr;
};

/// The unfinished lanes of `call` (at most 16 of its `numLanes`), each " lane L op I (code)" plus what it
/// waits for, joined by ";". `laneAt(i)` gives lane i's LaneSnapshot; `semProgress(sem, out)` reads the rank's
/// own semaphore above its epoch base (false: no such semaphore); `pastEnd` is said of a lane that has
/// issued every op but still waits for them. Empty when every lane finished.
template <typename CallT, typename LaneAt, typename SemProgress>
std::string blockedLanes(const CallT& call, int numLanes, LaneAt laneAt, SemProgress semProgress, const char* pastEnd) {
  std::string out;
  int listed = 0;
  for (int i = 0; i < numLanes && listed < 16; ++i) {
    const LaneSnapshot l = laneAt(i);
    if (l.done) continue;
    out += (listed++ == 0 ? " " : "; ") + opLabelOf(call, i, l.pc).substr(call.label().size() + 1);
    if (l.pc >= l.ops->size()) {
      out += pastEnd;
      continue;
    }
    const core::Op& op = (*l.ops)[l.pc];
    std::uint64_t progress = 0;
    const bool known = op.code == core::OpCode::kWait && semProgress(op.sem, progress);
    out += laneWaitText(op, known, progress, l.blockedOnRank);
  }
  return out;
}

/// Why a blocked call of rank `self` does not progress, on an engine whose ranks publish `2*seq` on
/// entering call `seq` (`stateOf(r)`) and `deadState` when gone: the ranks that never entered or left,
/// else its blocked lanes (at most 16). `semProgress(sem, out)` reads the rank's own semaphore above its
/// epoch base (false: no such semaphore). `CallT` has `seq`, `label`, `rankProgram`, `numLanes` and
/// `lanes[]` with atomic `done`, `pc`, `blockedOnRank` and `ops`.
template <typename CallT, typename StateOf, typename SemProgress>
std::string stallReport(const CallT& call, int nranks, int self, std::uint64_t deadState, StateOf stateOf,
                        SemProgress semProgress) {
  const std::uint64_t want = 2 * call.seq;
  std::vector<int> missing;
  std::vector<int> dead;
  for (int r = 0; r < nranks; ++r) {
    const std::uint64_t s = stateOf(r);
    if (s == deadState) {
      if (r != self) dead.push_back(r);
    } else if (s < want) {
      missing.push_back(r);
    }
  }
  if (!missing.empty()) {
    std::string out = rankList(missing) + " never entered this call";
    if (!dead.empty()) out += "; " + rankList(dead) + " failed or left";
    return out;
  }
  if (!dead.empty()) return rankList(dead) + " failed or left the communicator";
  const auto laneAt = [&call](int i) {
    const auto& l = call.lanes[static_cast<std::size_t>(i)];
    return LaneSnapshot{l.done.load(std::memory_order_acquire), l.pc.load(std::memory_order_relaxed),
                        l.blockedOnRank.load(std::memory_order_relaxed), l.ops};
  };
  return "every rank entered this call; blocked lanes:" + blockedLanes(call, call.numLanes, laneAt, semProgress, "");
}

}  // namespace copro::transport::calls
