#pragma once
/// The first steps of every engine's Executor::start, written once: the executing rank's ops (with the
/// Program named in the error when generating them fails), the semaphore epoch advance of a Program
/// (cached per Program, as a communicator runs few Programs many times) and the lanes of a call with
/// their initiation modes.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "copro/core/config.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/flat_program.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::transport::calls {

/// A rank's buffer in its current call, as every engine indexes them (BufferId order, extra buffers after
/// kNumBuffers) and publishes them to peers.
struct Region {
  std::byte* base = nullptr;
  std::uint64_t limit = 0;  ///< bytes the Program may access
  bool writable = true;
};

/// The user's buffers of `rank` in a call of `h` with buffers `b`, in BufferId order: the input (as many
/// bytes as both the Program and the caller give; written only when the call is in place), the output and
/// the extra buffers, into `out` (its memory reused from call to call). The scratch and layout slots stay
/// empty: the engine owns that memory.
void userRegions(const core::ProgramHeader& h, const core::CallBuffers& b, std::int32_t rank, std::vector<Region>& out);

/// What every engine keeps of a started call: the Program, the executing rank's ops, the buffers, the
/// semaphore epoch advance, the sequence number and the executing rank (its label in messages is formatted
/// only when a message needs it).
struct CallBase {
  std::shared_ptr<const core::ProgramSource> program;
  const core::ProgramHeader* header = nullptr;
  const core::RankProgram* rankProgram = nullptr;
  core::CallBuffers buffers;
  std::shared_ptr<const std::vector<std::uint64_t>> advance;  ///< semaphore epoch advance of this rank
  std::shared_ptr<const core::FlatRankProgram> flat;          ///< the rank's ops, flat (what lanes interpret)
  std::uint64_t seq = 0;
  std::int32_t execRank = 0;  ///< the executing rank (for the label)
  /// Every op of every rank is an LL put/wait or local and this rank's ops hold an LL op (callIsLLOnly):
  /// no rank reads another's published buffers or semaphores in this call.
  bool llOnly = false;

  /// "allreduce.ring (call 3) on rank 0": formatted on demand (errors, traces), not on every call.
  [[nodiscard]] std::string label() const;

  /// Moves the executing rank's semaphore epoch bases past this call, once it completed.
  void advanceEpochs(std::vector<std::uint64_t>& semBase) const {
    for (std::size_t s = 0; s < advance->size() && s < semBase.size(); ++s) semBase[s] += (*advance)[s];
  }
};

/// The ops of `rank` in `program` (named `name`), or a Status prefixed with `who` when generating them failed.
core::Status rankProgramOf(const core::ProgramSource& program, std::int32_t rank, const std::string& who,
                           const std::string& name, const core::RankProgram*& out);

/// What an engine derives once per (Program, rank): the semaphore epoch advance and the flat form of
/// the rank's ops (core/flat_program.hpp), which the lane engines interpret.
struct PreparedRank {
  std::shared_ptr<const std::vector<std::uint64_t>> advance;
  std::shared_ptr<const core::FlatRankProgram> flat;
  bool llOnly = false;  ///< callIsLLOnly() of the Program and rank
};

/// True when every op of every one of the `size` ranks of `program` is an LL put or LL wait (a peer in
/// range, at most one slot, no indirect size) or touches only the executing rank's own memory (copy,
/// reduce and wait on its own buffers and semaphores, flush): a call of it needs no published buffers.
bool programIsLLOnly(const core::ProgramSource& program, int size);
/// Whether a call of `program` by `rank` of `size` ranks may skip publishing its buffers (CallBase::llOnly):
/// at most lanes::kLLMaxRanks ranks, programIsLLOnly, and this rank's own ops hold an LL op (one rank: none
/// needed). The last rule keeps out Programs that a rank builds for itself alone, such as send/recv, where
/// the other ranks' ops in its Program are not the ones those ranks run: a receiver whose own ops are a
/// wait and a copy must still publish the scratch its sender puts into.
bool callIsLLOnly(const core::ProgramSource& program, std::int32_t rank, int size);

/// The prepared ranks of the most recently used Programs (a communicator runs few Programs many times).
/// Not thread-safe: the owner locks.
class PreparedRankCache {
 public:
  explicit PreparedRankCache(std::size_t capacity) : capacity_(capacity) {}
  /// The cached entry of `program` (it becomes the most recent), or an empty one.
  PreparedRank find(const std::shared_ptr<const core::ProgramSource>& program);
  /// Caches `prepared` for `program`, evicting the least recently used entry when full.
  void insert(std::shared_ptr<const core::ProgramSource> program, PreparedRank prepared);

 private:
  std::size_t capacity_;
  std::vector<std::pair<std::shared_ptr<const core::ProgramSource>, PreparedRank>> entries_;  ///< most recent last
};

/// Fills `call.advance`, `call.flat` and `call.llOnly` for `program` run by `size` ranks from `cache`
/// (locking `mutex` around it when given), preparing them on a miss; a Status prefixed with `who` when the
/// ops cannot be flattened.
core::Status prepareCall(CallBase& call, const std::shared_ptr<const core::ProgramSource>& program,
                         PreparedRankCache& cache, std::mutex* mutex, const std::string& who, int size);

/// The first step of every engine's start(): checks that there is a Program and that the buffers fit it
/// for `rank` of `size` ranks, then fills `call` (the Program, its header, the rank's ops, the buffers, the
/// rank, and the epoch advance, flat ops and LL-only flag prepared through `cache`, locked with `mutex` when
/// given). Errors are prefixed with `who` ("shm rank 2: ").
core::Status openCall(CallBase& call, std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
                      std::int32_t rank, int size, PreparedRankCache& cache, std::mutex* mutex, const std::string& who);

/// The label of call `seq` of `rank` in every message about it: "allreduce.ring (call 3) on rank 0".
std::string callLabel(const std::string& name, std::uint64_t seq, std::int32_t rank);

/// Why a communicator takes no new call (labelled `label`): it was aborted, or it is unusable after the
/// failure `brokenStatus` (`broken`); ok when it takes the call.
core::Status refusal(const std::string& label, bool aborted, bool broken, const core::Status& brokenStatus);
/// The same for `call` (its seq set), formatting its label only when it is refused.
inline core::Status refusal(const CallBase& call, bool aborted, bool broken, const core::Status& brokenStatus) {
  if (!aborted && !broken) return {};
  return refusal(call.label(), aborted, broken, brokenStatus);
}

/// Fails every unfinished call of `queue` (an engine's calls, oldest first) and empties it: `which` gets
/// `whichStatus`, every other call `code` with "<its label>: <reason>". `each(call)` runs for each failed call
/// once its status and its phase (`failed`) are set. Returns the status of the first call failed, or `code`
/// with "rank <rank>: <reason>" when there was none.
template <typename Queue, typename CallT, typename Phase, typename Each>
core::Status failQueued(Queue& queue, const CallT* which, const core::Status& whichStatus, core::ErrorCode code,
                        const std::string& reason, std::int32_t rank, Phase failed, Each each) {
  core::Status first;
  for (const auto& c : queue) {
    if (c->finished()) continue;
    c->status = c.get() == which ? whichStatus : core::Status(code, c->label() + ": " + reason);
    if (first.ok()) first = c->status;
    c->phase = failed;
    each(*c);
  }
  queue.clear();
  if (first.ok()) first = core::Status(code, "rank " + std::to_string(rank) + ": " + reason);
  return first;
}

/// Whether `device` lanes run as `proxy`: COPRO_INITIATION=proxy without per-scale modes. The one rule
/// by which the Config changes a lane's mode, on every backend: a hand-written Program that chose no modes
/// follows the Config (a Communicator's Programs carry the Config's modes already).
inline bool deviceLanesRunAsProxy(const core::Config& config) {
  return config.initiation == "proxy" && config.initiationScaleUp.empty() && config.initiationScaleOut.empty();
}

/// The mode lane `mode` of a Program runs in (deviceLanesRunAsProxy: `proxyDefault`).
inline core::Initiation laneMode(core::Initiation mode, bool proxyDefault) {
  return mode == core::Initiation::kDevice && proxyDefault ? core::Initiation::kProxy : mode;
}

/// Points each lane of `call` (an array `call.lanes` of `call.numLanes` lanes with `ops`, `mode` and `done`)
/// at its ops and mode; empty lanes are done at once. Counts the lanes with ops per mode in `call.deviceLanes`
/// and `call.pooled[]` and returns how many lanes have ops. `proxyDefault`: `device` lanes run as `proxy`.
template <typename CallT>
int prepareLanes(CallT& call, bool proxyDefault) {
  int live = 0;
  for (int i = 0; i < call.numLanes; ++i) {
    auto& l = call.lanes[static_cast<std::size_t>(i)];
    const core::RankProgram::Lane& lane = call.rankProgram->lanes[static_cast<std::size_t>(i)];
    l.ops = &lane.ops;
    l.mode = laneMode(lane.initiation, proxyDefault);
    if (l.ops->empty()) {
      l.done.store(true, std::memory_order_relaxed);
      continue;
    }
    ++live;
    if (l.mode == core::Initiation::kDevice) {
      ++call.deviceLanes;
    } else {
      call.pooled[l.mode == core::Initiation::kProxy ? 0 : 1] = true;
    }
  }
  return live;
}

/// Creates the `call.numLanes` lanes of `call` (an array `lanes`) and prepares them (prepareLanes below);
/// `call.lanesLeft` counts the lanes with ops. A call object reused from an earlier call keeps its lane
/// array (and the lanes' scratch vectors) when the lane count is the same; its lanes start over.
template <typename CallT>
void initLanes(CallT& call, bool proxyDefault) {
  using Lane = std::remove_reference_t<decltype(call.lanes[0])>;
  const int n = static_cast<int>(call.rankProgram->lanes.size());
  if (call.lanes && call.numLanes == n) {
    for (int i = 0; i < n; ++i) {
      Lane& l = call.lanes[static_cast<std::size_t>(i)];
      l.pc.store(0, std::memory_order_relaxed);
      l.done.store(false, std::memory_order_relaxed);
      l.blockedOnRank.store(-1, std::memory_order_relaxed);
      l.scratch.timedPc = ~0U;
    }
  } else {
    call.numLanes = n;
    call.lanes = std::make_unique<Lane[]>(static_cast<std::size_t>(n));
  }
  call.deviceLanes = 0;
  call.pooled[0] = call.pooled[1] = false;
  call.lanesLeft.store(prepareLanes(call, proxyDefault), std::memory_order_relaxed);
}

/// Starts the progress threads the lanes of `call` need (`ensure(k)`: 0 proxy, 1 offload), or says why not.
template <typename CallT, typename Ensure>
core::Status startProgressThreads(const CallT& call, const std::string& who, Ensure ensure) {
  try {
    for (int k = 0; k < 2; ++k) {
      if (call.pooled[k]) ensure(k);
    }
  } catch (const std::system_error& e) {
    return {core::ErrorCode::kInternal, who + "cannot start progress threads: " + e.what()};
  }
  return {};
}

}  // namespace copro::transport::calls
