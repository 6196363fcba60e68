#pragma once
/// Internals of the inproc backend: the world shared by all ranks, per-rank state, calls and lanes.
///
/// Concurrency model (docs/inproc.md has the user-facing version):
/// - Each rank's calls run in order. A rank *enters* call `seq` by publishing its buffers and then
///   storing `state = 2*seq`. Every access to a peer's state in call seq first checks that the peer is
///   in exactly that call (an odd state means "entering"); accesses bracket themselves with the peer's
///   `accessors` counter so that the peer can wait them out before it republishes its buffers or
///   returns a failed call to its user.
/// - Semaphores are monotone 64-bit counters; a call waits relative to a per-semaphore epoch base that
///   advances by core::semaphoreAdvance() when the call completes.
/// - Each lane runs where its initiation says (docs/initiation.md): `device` lanes on the rank's own
///   thread inside wait()/test(), `proxy` lanes on the world's proxy progress threads, `offload` lanes on
///   the world's offload threads (the co-processor of a CPU host). One call may mix them. The pools are
///   created on first use.
/// - Sleepers use a futex word per rank (the rank's own thread) or one per pool (its progress threads);
///   whoever changes something a sleeper may wait for notifies the rank's word and every pool's.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "call_setup.hpp"
#include "copro/core/config.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "lane_state.hpp"
#include "wait_policy.hpp"

namespace copro::transport::inproc {

using Clock = std::chrono::steady_clock;

/// One pause of a spin loop.
void cpuRelax() noexcept;
/// One step of a spinning wait: a pause, or a yield of the core when there are more runnable threads
/// than cores (ranks on an oversubscribed machine must let the peer they wait for run).
void spinPause() noexcept;

/// An event word that threads can sleep on (a futex on Linux). notify() costs one load when nobody
/// sleeps; a sleeper announces itself before its final check, so no wake-up is lost.
class Notifier {
 public:
  /// Wakes every sleeper (called after the state change a sleeper may wait for).
  void notify() noexcept;
  /// Announces a sleeper; returns the word to pass to sleep(). Check the wait condition after this.
  std::uint32_t prepareSleep() noexcept;
  /// Sleeps until notified (or the word changed since prepareSleep) or `timeout` passed.
  void sleep(std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept;
  void finishSleep() noexcept;
  [[nodiscard]] bool hasSleepers() const noexcept { return sleepers_.load(std::memory_order_seq_cst) > 0; }

 private:
  alignas(64) std::atomic<std::uint32_t> word_{0};
  std::atomic<int> sleepers_{0};
};

/// Memory with explicit alignment (scratch, allocate()).
struct AlignedBlock {
  std::byte* data = nullptr;
  std::size_t bytes = 0;
};
AlignedBlock allocateAligned(std::size_t bytes);  ///< throws Error(kOutOfMemory)
void freeAligned(AlignedBlock& block) noexcept;

using calls::Region;

/// States of a call.
enum class Phase : int { kQueued = 0, kRunning = 1, kDone = 2, kFailed = 3 };

/// A lane: a resumable position in its ops (the cursor) plus what it waits for.
struct LaneState {
  const std::vector<core::Op>* ops = nullptr;
  std::atomic<std::uint32_t> pc{0};  ///< next op (atomic so a timeout report may read it)
  std::atomic<bool> done{false};
  std::atomic<bool> claimed{false};                   ///< a progress thread runs this lane
  core::Initiation mode = core::Initiation::kDevice;  ///< who runs it: the caller, the proxy or the offload pool
  std::atomic<std::int32_t> blockedOnRank{-1};        ///< a peer that has not entered the call yet, or -1
  lanes::LaneScratch<lanes::DirectLoc> scratch;       ///< reused per op so executing does not allocate
};

class RankState;

/// One call of one rank.
struct Call : calls::CallBase {
  RankState* rank = nullptr;

  std::unique_ptr<LaneState[]> lanes;
  int numLanes = 0;
  std::atomic<int> lanesLeft{0};
  std::atomic<Phase> phase{Phase::kQueued};
  std::atomic<std::uint64_t> progress{0};  ///< ops executed (the timeout watches it)
  int deviceLanes = 0;                     ///< lanes with ops that the caller's thread runs
  bool pooled[2] = {false, false};         ///< lanes with ops for the proxy / offload pool

  /// The result; written once, before `phase` becomes kDone or kFailed.
  core::Status status;
  [[nodiscard]] bool anyPooled() const noexcept { return pooled[0] || pooled[1]; }
  [[nodiscard]] bool finished() const noexcept {
    const Phase p = phase.load(std::memory_order_acquire);
    return p == Phase::kDone || p == Phase::kFailed;
  }
};

class World;

/// Everything of one rank that peers may reach, plus its queue of calls.
class RankState {
 public:
  RankState(World& world, int rank) : world_(world), rank_(rank) {}
  ~RankState();
  RankState(const RankState&) = delete;
  RankState& operator=(const RankState&) = delete;

  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] World& world() const noexcept { return world_; }

  static constexpr std::uint64_t kDead = ~std::uint64_t{0};
  /// 2*seq: in call seq with its buffers published; 2*seq-1: entering call seq; kDead: failed, aborted
  /// or destroyed.
  alignas(64) std::atomic<std::uint64_t> state{0};
  /// Peers in the middle of an access to this rank's buffers or semaphores.
  alignas(64) std::atomic<std::int64_t> accessors{0};
  /// Progress threads running lanes of this rank's calls (proxy and offload lanes).
  alignas(64) std::atomic<int> runners{0};
  Notifier notifier;
  std::atomic<bool> aborted{false};

  // Published at entry (owner writes while `state` is odd; peers read after seeing 2*seq).
  std::vector<Region> regions;  ///< indexed by BufferId value
  std::atomic<std::uint64_t>* sems = nullptr;
  std::int32_t numSems = 0;
  const core::ProgramHeader* header = nullptr;
  std::uint64_t* layout = nullptr;

  // Owner only.
  AlignedBlock scratch;
  std::vector<std::uint64_t> layoutWords;
  std::unique_ptr<std::atomic<std::uint64_t>[]> semStorage;
  std::int32_t semCapacity = 0;
  std::vector<std::uint64_t> semBase;
  std::uint64_t splitCount = 0;

  /// Serializes concurrent put_reduce ops into this rank (write-with-reduce is atomic at the target).
  std::mutex putReduceMutex;
  /// Serializes device-mode drivers of this rank (one executor is used by one thread at a time, but a
  /// handle may be waited on from another).
  std::mutex driveMutex;

  // Queue of started calls; guarded by `mutex`.
  std::mutex mutex;
  std::deque<std::shared_ptr<Call>> queue;
  std::uint64_t nextSeq = 1;
  bool broken = false;                       ///< a call failed: the communicator is unusable
  core::Status brokenStatus;                 ///< the failure, for later calls
  calls::PreparedRankCache advanceCache{8};  ///< semaphore advance per recently used Program

 private:
  World& world_;
  int rank_;
};

class ProgressPool;

/// State shared by all ranks of one communicator.
class World {
 public:
  World(int nranks, core::Config config, std::vector<int> nodeOfRank);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  [[nodiscard]] int size() const noexcept { return static_cast<int>(ranks_.size()); }
  [[nodiscard]] RankState& rank(int r) const noexcept { return *ranks_[static_cast<std::size_t>(r)]; }
  [[nodiscard]] const core::Config& config() const noexcept { return config_; }
  [[nodiscard]] const std::vector<int>& nodeOfRank() const noexcept { return nodeOfRank_; }
  /// COPRO_INITIATION=proxy without per-scale modes: `device` lanes run as `proxy` (a hand-written Program
  /// that chose no modes follows the Config, as before lanes carried a mode).
  [[nodiscard]] bool proxyDefault() const noexcept { return proxyDefault_; }
  [[nodiscard]] double spinSeconds() const noexcept { return wait_.spinSec; }
  /// COPRO_WAIT resolved for this world's ranks (wait_policy.hpp).
  [[nodiscard]] const calls::WaitPolicy& waitPolicy() const noexcept { return wait_; }

  /// Executor::start.
  core::Status start(int rank, std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& buffers,
                     std::shared_ptr<Call>& out);
  /// CallHandle::test (block = false) and wait (block = true).
  core::Status progress(int rank, const std::shared_ptr<Call>& target, bool block, bool& done);
  /// Executor::abort.
  void abort(int rank);
  /// Executor destructor: fails in-flight calls, marks the rank dead, waits until nothing touches it.
  void retire(int rank);

  /// Wakes whoever runs the lanes of `r` (after a signal into r).
  void notifyRank(RankState& r) noexcept;
  /// Wakes every sleeper of the world (entry, abort, failure).
  void notifyAll() noexcept;

  /// Completes a call whose lanes all finished (any thread).
  void completeCall(RankState& rs, Call& call);
  /// The queue's front call (nullptr when empty).
  std::shared_ptr<Call> frontCall(RankState& rs);
  /// Fails `which` (when it is still running; nullptr: whatever the rank has in flight) and every call
  /// queued behind it, and marks the rank broken and dead. `statusOf` gives `which`'s status; it runs
  /// under the rank's lock, so it may read the rank's semaphore bases. Other calls get `code` and
  /// "<label>: <reason>". `poison` makes the failure visible to blocked peers (kRemoteError).
  /// Returns false when `which` had already finished (nothing was failed).
  bool failCalls(RankState& rs, const Call* which, const std::function<core::Status(const Call&)>& statusOf,
                 core::ErrorCode code, const std::string& reason, bool poison);

  /// First rank whose failure or abort poisons the world (-1: none) and why.
  [[nodiscard]] int poisonedRank() const noexcept { return poisonRank_.load(std::memory_order_acquire); }
  [[nodiscard]] std::string poisonReason() const;

  /// Why a blocked call timed out (missing ranks, or its blocked lanes). Call with rs.mutex held.
  [[nodiscard]] std::string stallReport(const Call& call) const;
  /// Runs the device lanes of `call` once each; returns whether anything progressed.
  bool runLanesOnce(RankState& rs, const std::shared_ptr<Call>& call);
  /// Fails the front call `front` of `rs` when it has been blocked for `stalledSec`: with kRemoteError when
  /// a peer was aborted or failed (after `poisonGraceSec`), with kTimeout after the timeout. Returns true
  /// when it failed the call.
  bool checkStall(RankState& rs, const std::shared_ptr<Call>& front, double stalledSec, double poisonGraceSec);

  /// Executor::split rendezvous; returns this rank's new executor or nullptr.
  std::unique_ptr<core::Executor> split(int rank, int color, int key);

  std::atomic<int> sleepingRanks{0};  ///< ranks' own threads asleep (entry notifies them)

  /// The LL mailboxes of this world (ll_mailbox.hpp), nullptr when it has none.
  [[nodiscard]] std::byte* llMailbox() const noexcept { return llMailbox_; }

 private:
  void enterQueuedLocked(RankState& rs);  ///< enters the queue's front calls (rs.mutex held)
  void enterLocked(RankState& rs, const std::shared_ptr<Call>& call);
  /// The caller's side of wait()/test(): runs the device lanes of the front calls and watches the pools'
  /// progress for timeouts, then sleeps on the rank's word.
  core::Status drive(RankState& rs, const std::shared_ptr<Call>& target, bool block, bool& done);
  /// After a failed call: wait until no progress thread and no peer touches the rank.
  void drain(RankState& rs) noexcept;
  void poison(int rank, const std::string& reason);
  /// The pool of proxy (0) or offload (1) lanes, created on first use.
  ProgressPool& ensurePool(int which);
  /// The pool, or nullptr when it was never created.
  [[nodiscard]] ProgressPool* pool(int which) const noexcept { return poolPtr_[which].load(std::memory_order_acquire); }

  std::vector<std::unique_ptr<RankState>> ranks_;
  const core::Config config_;
  const std::vector<int> nodeOfRank_;
  const bool proxyDefault_;
  const calls::WaitPolicy wait_;

  std::atomic<int> poisonRank_{-1};
  mutable std::mutex poisonMutex_;
  std::string poisonReason_;

  std::byte* llMailbox_ = nullptr;  ///< mapped anonymous, zero until written
  std::size_t llMailboxBytes_ = 0;

  std::mutex poolMutex_;
  std::unique_ptr<ProgressPool> pools_[2];
  std::atomic<ProgressPool*> poolPtr_[2] = {nullptr, nullptr};

  struct SplitRound {
    std::vector<int> color;
    std::vector<int> key;
    std::vector<bool> arrived;
    int count = 0;
    int taken = 0;
    bool ready = false;
    std::vector<std::unique_ptr<core::Executor>> results;
  };
  std::mutex splitMutex_;
  std::condition_variable splitCv_;
  std::map<std::uint64_t, SplitRound> splitRounds_;
};

/// Progress threads of a world: they run the lanes of one initiation mode (proxy or offload) of every
/// rank's running call.
class ProgressPool {
 public:
  ProgressPool(World& world, int threads, core::Initiation mode);
  ~ProgressPool();  ///< stops and joins the threads
  ProgressPool(const ProgressPool&) = delete;
  ProgressPool& operator=(const ProgressPool&) = delete;
  void activate(std::shared_ptr<Call> call);
  void deactivate(const Call* call);
  Notifier& notifier() noexcept { return notifier_; }

 private:
  void threadMain(int index);
  bool scan(std::vector<std::shared_ptr<Call>>& local, std::uint64_t& seenVersion, int index);

  World& world_;
  const core::Initiation mode_;
  Notifier notifier_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<Call>> active_;
  std::atomic<std::uint64_t> version_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

using lanes::LaneEnd;
using lanes::LaneRun;
/// Runs lane `lane` of `call` (executing rank `rs`) until it blocks, finishes, fails or the call stops.
/// On kFailed `error` holds the reason. Defined in inproc_lanes.cpp.
LaneRun runLane(World& world, RankState& rs, Call& call, int lane, core::Status& error);

/// The Executor of rank `rank` of `world` (inproc_executor.cpp).
std::unique_ptr<core::Executor> makeExecutor(std::shared_ptr<World> world, int rank);

/// "<label> lane L op I (code)" for messages.
std::string opLabel(const Call& call, int lane, std::uint32_t index);

}  // namespace copro::transport::inproc
