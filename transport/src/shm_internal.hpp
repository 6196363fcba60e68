#pragma once
/// Internals of the shm backend (docs/shm.md has the user-facing version).
///
/// Each process holds one `ShmComm` per communicator. Shared state:
/// - the control segment (created by rank 0, unlinked as soon as every rank mapped it): a `CtlHeader`
///   with the world's poison (first failed rank and why) and one `RankCtl` per rank — its call state
///   (2*seq: in call seq, 2*seq-1: entering, kDead), the count of peers in the middle of an access, the
///   futex word its sleepers wait on, the put_reduce lock, its pid and start time (liveness), and the
///   generation of its data segment;
/// - the LL mailboxes (ll_mailbox.hpp) after the RankCtl array, when the world has at most
///   lanes::kLLMaxRanks ranks;
/// - one data segment per rank (owner-created, "<prefix>r<rank>-d<gen>", replaced when a call needs
///   more room): the region table of the current call, the semaphores, the layout words, scratch, and
///   in staging mode the shadows of the user buffers;
/// - segments of Executor::allocate() ("<prefix>r<rank>-a<id>"), which peers map on first use.
/// The call protocol is inproc's (transport/src/inproc_world.hpp) with the state in shared memory.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "call_setup.hpp"
#include "copro/core/bootstrap.hpp"
#include "copro/core/config.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "lane_state.hpp"
#include "wait_policy.hpp"

namespace copro::transport::shm {

using Clock = std::chrono::steady_clock;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared-memory atomics must be lock free");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "shared-memory atomics must be lock free");

constexpr std::uint64_t kDeadState = ~std::uint64_t{0};

/// Per-rank control block in the control segment.
struct alignas(64) RankCtl {
  std::atomic<std::uint64_t> state;  ///< 2*seq, 2*seq-1 (entering) or kDeadState
  alignas(64) std::atomic<std::int64_t> accessors;
  alignas(64) std::atomic<std::uint32_t> wakeWord;  ///< futex word of whoever runs this rank's lanes
  std::atomic<std::int32_t> sleepers;
  alignas(64) std::atomic<std::uint32_t> putReduceLock;  ///< 0 free, else locker rank + 1
  alignas(64) std::atomic<std::uint64_t> dataGen;        ///< generation of the rank's data segment
  /// Early unlinking of the data segment: generation (high 32 bits) and how many peers mapped it (low
  /// 32 bits); the peer that completes the count unlinks the segment's name.
  std::atomic<std::uint64_t> dataMapped;
  std::atomic<std::uint32_t> left;  ///< 1: the executor was destroyed cleanly
  std::int32_t pid;
  std::uint64_t startTime;  ///< /proc/<pid>/stat field 22, to tell a reused pid
  std::uint64_t probeAddr;  ///< address of a word in the rank's private memory (CMA probe)
};

/// Header of the control segment; RankCtl[nranks] follows at a 64-byte boundary.
struct CtlHeader {
  std::uint64_t magic;
  std::int32_t nranks;
  std::atomic<std::int32_t> poisonRank;  ///< first rank whose failure poisons the world, or -1
  std::atomic<std::uint32_t> poisonLock;
  char poisonReason[500];
};

/// Where a region's bytes are, as seen by a peer.
enum class RegionKind : std::uint32_t { kNone = 0, kData = 1, kAlloc = 2, kUser = 3 };

/// One buffer of a rank's current call, in the rank's data segment.
struct SharedRegion {
  std::uint64_t ownerAddr;  ///< base in the owner's address space (kUser: for CMA)
  std::uint64_t limit;      ///< bytes the Program may access
  std::uint64_t offset;     ///< kData: offset in the data segment; kAlloc: offset in the allocation
  RegionKind kind;
  std::uint32_t writable;
  char allocName[64];  ///< kAlloc: shm name of the allocation
};

/// Header of a data segment.
struct DataHeader {
  std::uint64_t bytes;
  std::uint32_t regionCapacity;
  std::uint32_t numRegions;
  std::int32_t semCapacity;
  std::int32_t numSems;  ///< semaphores of the current call
  std::uint64_t regionsOff, semsOff, layoutOff, layoutCapacity, scratchOff, scratchCapacity, shadowOff, shadowCapacity;
};

/// A mapping of a shared-memory segment.
struct Mapping {
  std::byte* base = nullptr;
  std::size_t bytes = 0;
  std::string name;  ///< without the leading '/'
};
/// Creates (O_EXCL, mode 0600) and maps a segment; throws Error(kSystemError).
Mapping createSegment(const std::string& name, std::size_t bytes);
/// Maps an existing segment; returns false (errno kept) when it cannot.
bool openSegment(const std::string& name, Mapping& out);
void unmap(Mapping& m) noexcept;
void unlinkSegment(const std::string& name) noexcept;
/// Unlinks every /dev/shm entry whose name starts with `prefix` (no leading '/'); returns how many.
int unlinkByPrefix(const std::string& prefix) noexcept;

/// Process start time (/proc/<pid>/stat field 22), 0 when unreadable.
std::uint64_t processStartTime(pid_t pid) noexcept;
/// False when the process is gone, a zombie, or its pid was reused (start time differs).
bool processAlive(pid_t pid, std::uint64_t startTime) noexcept;
/// True when the process is stopped (/proc/<pid>/stat state T or t: SIGSTOP, Ctrl-Z or a tracer).
bool processStopped(pid_t pid) noexcept;

/// Futex on a shared word (FUTEX_WAIT without the private flag: the word is in shared memory).
void futexWaitShared(std::atomic<std::uint32_t>* word, std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept;
void futexWakeShared(std::atomic<std::uint32_t>* word) noexcept;

/// Cross Memory Attach. Returns 0 or an errno.
int cmaRead(pid_t pid, void* dst, std::uint64_t remoteSrc, std::size_t bytes) noexcept;
int cmaWrite(pid_t pid, std::uint64_t remoteDst, const void* src, std::size_t bytes) noexcept;

/// The tail of an Executor::allocate() segment, after the user's bytes: the communicator that allocated it
/// and how many of its peers mapped it. The peer that completes the count unlinks the name, so nothing is
/// left in /dev/shm when a process dies. Another communicator of the process publishes the memory by name
/// only while the name exists.
struct AllocTail {
  char commPrefix[48];
  std::atomic<std::uint32_t> mapped;
  std::atomic<std::uint32_t> unlinked;
  std::uint32_t peers;
};
/// Bytes of an allocation segment holding `userBytes` and its tail.
std::size_t allocSegmentBytes(std::size_t userBytes) noexcept;
/// The tail of a mapped allocation segment of `segmentBytes`.
AllocTail* allocTail(std::byte* base, std::size_t segmentBytes) noexcept;

/// Allocations of Executor::allocate() in this process, by base address: any communicator of the process
/// can publish them by name, so peers map them instead of copying.
struct AllocInfo {
  std::byte* base;
  std::size_t bytes;
  std::string name;
};
void registerAllocation(const AllocInfo& info);
/// Removes and returns the allocation starting at `base` (false when unknown).
bool takeAllocation(void* base, AllocInfo& out);
/// The allocation containing [p, p+bytes), if any.
bool findAllocation(const void* p, std::uint64_t bytes, AllocInfo& out);

using calls::Region;

enum class Phase : int { kQueued = 0, kRunning = 1, kDone = 2, kFailed = 3 };

/// A peer's buffer resolved for one access: a pointer in this process, or an address in the peer's.
struct Loc {
  std::byte* ptr = nullptr;  ///< direct (own memory or a shared mapping)
  std::uint64_t remote = 0;  ///< CMA: address in process `pid`
  pid_t pid = 0;
  std::int32_t rank = -1;  ///< CMA: the peer's rank (for messages)
  [[nodiscard]] bool direct() const noexcept { return pid == 0; }
};

struct LaneState {
  const std::vector<core::Op>* ops = nullptr;
  std::atomic<std::uint32_t> pc{0};
  std::atomic<bool> done{false};
  std::atomic<std::int32_t> blockedOnRank{-1};
  core::Initiation mode = core::Initiation::kDevice;  ///< who runs it: the caller or a progress thread
  lanes::LaneScratch<Loc> scratch;                    ///< reused per op (and CMA staging)
};

struct Call : calls::CallBase {
  std::unique_ptr<LaneState[]> lanes;
  int numLanes = 0;
  std::atomic<int> lanesLeft{0};
  std::atomic<Phase> phase{Phase::kQueued};
  std::atomic<std::uint64_t> progress{0};
  int deviceLanes = 0;              ///< lanes with ops that the caller's thread runs
  bool pooled[2] = {false, false};  ///< lanes with ops for the proxy / offload thread
  core::Status status;
  /// Staging mode: user buffers to copy back from their shadows when the call completes.
  std::vector<std::pair<void*, const std::byte*>> copyBack;
  std::atomic<bool> peersMapped{false};  ///< mapEnteredPeers found every peer entered and mapped
  std::vector<std::uint64_t> copyBackBytes;
  [[nodiscard]] bool finished() const noexcept {
    const Phase p = phase.load(std::memory_order_acquire);
    return p == Phase::kDone || p == Phase::kFailed;
  }
};

/// This process's rank of one shm communicator.
class ShmComm {
 public:
  /// Collective over the bootstrap's ranks: maps the control segment and probes Cross Memory Attach.
  ShmComm(std::shared_ptr<core::Bootstrap> bootstrap, core::Config config, std::vector<int> nodeOfRank);
  ~ShmComm();
  ShmComm(const ShmComm&) = delete;
  ShmComm& operator=(const ShmComm&) = delete;

  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int size() const noexcept { return size_; }
  [[nodiscard]] const core::Config& config() const noexcept { return config_; }
  [[nodiscard]] const std::vector<int>& nodeOfRank() const noexcept { return nodeOfRank_; }
  [[nodiscard]] const std::string& prefix() const noexcept { return prefix_; }
  [[nodiscard]] bool cma() const noexcept { return cma_; }
  /// The LL mailboxes in the control segment (ll_mailbox.hpp), nullptr when the world has none.
  [[nodiscard]] std::byte* llMailbox() const noexcept { return llMailbox_; }

  core::Status start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& buffers,
                     std::shared_ptr<Call>& out);
  core::Status progress(const std::shared_ptr<Call>& target, bool block, bool& done);
  void abort();
  std::unique_ptr<ShmComm> split(int color, int key);
  void* allocate(std::size_t bytes);
  void deallocate(void* ptr);

  // ---- used by the lane runner (shm_lanes.cpp) ----
  [[nodiscard]] RankCtl& ctl(int r) const noexcept { return ranks_[r]; }
  /// Own regions of the current call (direct pointers).
  [[nodiscard]] const std::vector<Region>& ownRegions() const noexcept { return regions_; }
  [[nodiscard]] std::atomic<std::uint64_t>* ownSems() const noexcept { return sems_; }
  [[nodiscard]] std::int32_t ownNumSems() const noexcept { return numSems_; }
  [[nodiscard]] std::uint64_t semBase(std::int32_t s) const noexcept { return semBase_[static_cast<std::size_t>(s)]; }
  [[nodiscard]] const std::uint64_t* ownLayout() const noexcept { return layout_; }
  /// The data segment header of peer `r` for its current call (maps a new generation on demand); call
  /// only while holding an access to r. nullptr when it cannot be mapped (`why` says why).
  const DataHeader* peerData(int r, std::string& why);
  /// Maps every peer that entered `call` (its data segment and the allocations it publishes), so that
  /// each segment is mapped by all ranks, and unlinked, early in the call that first publishes it.
  void mapEnteredPeers(Call& call);
  /// Maps each peer's data segment generation published since this rank last mapped it (by name only, no
  /// region reads), so that its name goes once every peer has it: a call whose lanes never look at a peer
  /// (LL puts and waits) would otherwise leave a new generation named.
  void mapNewPeerGenerations() noexcept;
  /// Maps (cached) the allocation segment `name`.
  std::byte* mapAllocation(const char* name, std::uint64_t needBytes, std::string& why);
  /// First rank whose failure or death poisons the world (-1: none) and why.
  [[nodiscard]] int poisonedRank() const noexcept;
  [[nodiscard]] std::string poisonReason() const;
  /// Records that rank q's process is gone (Cross Memory Attach said ESRCH) and unlinks its segments.
  void peerGone(int q);
  /// True once rank q's process was found gone.
  bool knownGone(int q);
  /// Wakes whoever runs rank r's lanes.
  void notifyRank(int r) noexcept;
  void notifyAll() noexcept;

 private:
  friend class CommDriver;
  /// The last call's object when nobody else holds it any more (its lanes and vectors are reused), else a
  /// new one.
  std::shared_ptr<Call> reusableCall();
  void enterQueuedLocked();
  void enterLocked(const std::shared_ptr<Call>& call);
  /// Entry of an LL-only call (CallBase::llOnly): this rank's own buffers only, nothing published for peers.
  void enterOwnBuffersOnly(Call& call);
  /// Entry of any other call: the region table peers read (allocations by name, CMA addresses or shadows).
  void publishRegions(Call& call);
  void ensureData(const core::ProgramHeader& h, std::size_t regions, std::uint64_t shadowBytes);
  void completeCall(Call& call);
  /// Fails `which` (nullptr: whatever is in flight) and every call behind it; marks this rank dead.
  /// `poisonWorld` makes the failure visible to blocked peers, blaming `culprit` (-1: this rank).
  bool failCalls(const Call* which, const core::Status& whichStatus, core::ErrorCode code, const std::string& reason,
                 bool poisonWorld, int culprit = -1);
  void poison(int who, const std::string& reason);
  std::shared_ptr<Call> frontCall();
  /// Runs the lanes of `call` whose initiation is `mode` once each; returns whether anything progressed.
  bool runLanesOnce(const std::shared_ptr<Call>& call, core::Initiation mode);
  bool checkStall(const std::shared_ptr<Call>& front, double stalledSec);
  /// Checks peers' liveness (rate limited); returns a dead peer or -1. Cleans up after a dead peer.
  int findDeadPeer(bool force);
  /// A peer whose process is stopped (SIGSTOP, a tracer), or -1.
  [[nodiscard]] int findStoppedPeer() const noexcept;
  [[nodiscard]] std::string stallReport(const Call& call) const;
  /// wait()/test(): runs the device lanes of the front calls and watches the progress threads' lanes.
  core::Status drive(const std::shared_ptr<Call>& target, bool block, bool& done);
  /// The progress thread of proxy (0) or offload (1) lanes.
  void progressMain(int which);
  /// Starts that thread on first use.
  void ensureProgressThread(int which);
  /// Waits until no peer is inside an access to this rank (gives up when a peer died).
  void drainAccessors(bool includeRunners) noexcept;
  void sleepOnSelf(std::uint32_t seen, std::chrono::nanoseconds d) noexcept;
  /// Counts this rank's first mapping of rank r's data segment `gen`; the last peer unlinks `name`.
  void countDataMapping(int r, std::uint64_t gen, const std::string& name) noexcept;
  /// Counts this rank's first mapping of an allocation segment of this communicator; the last unlinks it.
  void countAllocMapping(Mapping& m) noexcept;

  std::shared_ptr<core::Bootstrap> bootstrap_;
  const core::Config config_;
  std::vector<int> nodeOfRank_;
  int rank_ = 0;
  int size_ = 1;
  /// COPRO_INITIATION=proxy without per-scale modes: `device` lanes run as `proxy`.
  bool proxyDefault_ = false;
  calls::WaitPolicy wait_;  ///< COPRO_WAIT resolved for this host's ranks
  std::string prefix_;      ///< "copro-<pid0>-<token>-"
  std::string who_;         ///< "shm rank <r>: ", the prefix of this rank's messages
  bool cma_ = true;
  std::uint64_t probe_ = 0;

  Mapping ctlMap_;
  CtlHeader* ctlHeader_ = nullptr;
  RankCtl* ranks_ = nullptr;
  std::byte* llMailbox_ = nullptr;
  std::vector<pid_t> pids_;

  // Own data segment and current call's published state.
  Mapping data_;
  std::uint64_t dataGen_ = 0;
  std::vector<Region> regions_;
  std::atomic<std::uint64_t>* sems_ = nullptr;
  std::int32_t numSems_ = 0;
  std::vector<std::uint64_t> semBase_;
  std::uint64_t* layout_ = nullptr;

  // Peers' mappings (lanes run in one thread at a time; the mutex covers tests and reports).
  struct PeerData {
    std::uint64_t gen = 0;
    Mapping map;
  };
  std::mutex mapMutex_;
  std::vector<PeerData> peerData_;
  std::map<std::string, Mapping> allocMaps_;
  std::mutex earlyMapMutex_;                   ///< mapEnteredPeers
  std::vector<std::uint64_t> earlyMappedSeq_;  ///< per peer: the call in which mapEnteredPeers mapped it
  /// Per peer: the data generation mapNewPeerGenerations last saw (it runs once per call, when the call's
  /// lanes finish; calls complete one after another, ordered by mutex_).
  std::vector<std::uint64_t> seenPeerGen_;

  // Queue of started calls; guarded by mutex_.
  std::mutex mutex_;
  std::deque<std::shared_ptr<Call>> queue_;
  std::shared_ptr<Call> lastCall_;  ///< the last call started, reused by the next once nobody holds it
  std::uint64_t nextSeq_ = 1;
  bool broken_ = false;
  core::Status brokenStatus_;
  std::atomic<bool> aborted_{false};
  calls::PreparedRankCache advanceCache_{8};
  std::recursive_mutex driveMutex_;
  std::atomic<int> runners_{0};
  /// A drain already waited its full timeout for a peer stuck inside an access: later drains do not.
  std::atomic<bool> drainGaveUp_{false};

  // Liveness.
  std::mutex livenessMutex_;
  Clock::time_point lastLivenessCheck_{};
  std::vector<bool> deadSeen_;

  // Allocations of this communicator (unlinked at teardown; the memory stays mapped for the process).
  std::mutex allocMutex_;
  std::uint64_t nextAllocId_ = 0;
  std::vector<std::string> ownAllocNames_;

  // Progress threads: [0] runs proxy lanes, [1] offload lanes (docs/initiation.md).
  std::mutex threadMutex_;
  std::thread progressThreads_[2];
  std::atomic<bool> stop_{false};

  std::uint64_t splitCount_ = 0;
};

using lanes::LaneEnd;
using lanes::LaneRun;
/// Runs lane `lane` of `call` until it blocks, finishes, fails or the call stops (shm_lanes.cpp).
LaneRun runLane(ShmComm& comm, Call& call, int lane, core::Status& error);
std::string opLabel(const Call& call, int lane, std::uint32_t index);

}  // namespace copro::transport::shm
