#pragma once
/// The executor core shared by the multi-process network backends (`mpi`, `ucx`): one executor per
/// process, the caller's thread runs the lanes (device initiation), and a `RemoteTransport` moves the
/// bytes. The engine keeps everything that does not depend on the network: the in-order queue of calls,
/// semaphores with epoch bases, local buffers and their bounds, reduce/copy, indirect ops, put_reduce (as
/// get + reduce + put), timeouts, abort and the "unusable after a failure" rule of docs/inproc.md.
///
/// A transport implements one-sided access to the peers' buffers of the *same* call: put (with a signal
/// ordered after the data), get, signal, a per-lane flush, and progress. Each rank is its own load/store
/// domain, so reduce and copy addresses are always local.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "call_reports.hpp"
#include "call_setup.hpp"
#include "copro/core/bootstrap.hpp"
#include "copro/core/config.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::transport::remote {

/// A buffer of this rank as published for the current call (call_setup.hpp).
using calls::Region;

/// Whether a peer's state of the current call can be reached yet.
enum class Reach { kReady, kNotYet, kFailed };

/// A range of this rank's memory that a transport registered (the base of its registration records).
struct RegisteredRange {
  std::byte* base = nullptr;
  std::size_t bytes = 0;
  /// Whether [ptr, ptr+n) lies inside the range.
  [[nodiscard]] bool contains(const std::byte* ptr, std::size_t n) const {
    return ptr >= base && ptr + n <= base + bytes;
  }
};

/// Releases (`release`) and erases the first record of `regs` (owning pointers to RegisteredRange records)
/// that starts at `ptr` and satisfies `match`; false when there is none.
template <typename List, typename Match, typename Release>
bool dropRegistration(List& regs, const void* ptr, Match match, Release release) {
  const auto it =
      std::find_if(regs.begin(), regs.end(), [&](const auto& reg) { return reg->base == ptr && match(*reg); });
  if (it == regs.end()) return false;
  release(**it);
  regs.erase(it);
  return true;
}

/// The head of a call descriptor, the record a transport publishes for its peers when it enters a call
/// (ucx, verbs): `numRegions` region records follow (the call's buffers in BufferId order, the semaphore
/// array last), then whatever the transport appends (packed rkeys); `totalBytes` counts it all.
struct DescHeader {
  std::uint64_t seq = 0;
  std::uint32_t numRegions = 0;
  std::uint32_t totalBytes = 0;
};

/// The names every transport below the engine uses (mpi, ucx and the virtual-node pair import them with
/// one using-directive).
namespace transport_names {
using core::BufferId;
using core::ErrorCode;
using core::Status;
using remote::DescHeader;
using remote::dropRegistration;
using remote::Reach;
using remote::Region;
using remote::RegisteredRange;
}  // namespace transport_names

/// What the engine tells a transport when this rank enters a call.
struct CallEntry {
  std::uint64_t seq = 0;  ///< 1, 2, ... per communicator; every rank numbers its calls alike
  const core::ProgramHeader* header = nullptr;
  /// The call's Program (every rank's ops), for a transport that prepares for its peers' operations.
  std::shared_ptr<const core::ProgramSource> program;
  std::vector<Region> regions;  ///< this rank's buffers, indexed by BufferId value (extras follow)
  std::atomic<std::uint64_t>* semaphores = nullptr;
  std::int32_t numSemaphores = 0;
  int numLanes = 0;
  std::string label;  ///< "allreduce.ring (call 3) on rank 0"
};

/// The network part of a multi-process executor. Every method but `requestAbort` is called under the
/// engine's lock, by the thread that drives the rank or by the engine's progress thread. Methods returning Status
/// report errors without the op label; the engine prefixes it.
class RemoteTransport {
 public:
  virtual ~RemoteTransport() = default;
  [[nodiscard]] virtual std::string_view backend() const = 0;
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;

  /// Memory the transport owns (registered where that matters). Called when entering a call; they only
  /// grow. A grown semaphore array starts at zero (every earlier signal has been consumed).
  virtual std::byte* scratch(std::uint64_t bytes) = 0;
  virtual std::atomic<std::uint64_t>* semaphores(std::int32_t count) = 0;
  /// A second semaphore array (a slot per source transport) for a transport that receives signals over
  /// two networks, or nullptr (the default: one array). The engine's wait sums `semaphores` and this
  /// array; local signals go to `semaphores`. Called right after `semaphores`; same growth rule.
  virtual std::atomic<std::uint64_t>* extraSemaphores(std::int32_t /*count*/) { return nullptr; }
  virtual std::uint64_t* layout(std::uint32_t words) = 0;

  /// Makes `entry` the current call (publishes this rank's buffers to the peers as the transport needs).
  virtual core::Status enter(const CallEntry& entry) = 0;
  /// Whether `peer`'s buffers of the current call are reachable; kFailed sets `error`.
  virtual Reach reach(int peer, core::Status& error) = 0;
  /// Remote bytes of `peer`'s `buf` in the current call, when the transport knows them (else UINT64_MAX).
  [[nodiscard]] virtual std::uint64_t remoteLimit(int peer, core::BufferId buf) const = 0;

  /// Asynchronous ops of lane `lane` to a reached peer (peer != rank()). `src`/`dst` stay valid until
  /// the lane's flush completes. A put's signal (sem >= 0) and a later `signal` to the same peer become
  /// visible only after the lane's earlier puts to that peer.
  virtual core::Status put(int lane, std::uint32_t opIndex, int peer, core::BufferId buf, std::uint64_t offset,
                           const std::byte* src, std::uint64_t bytes, std::int32_t sem, std::uint64_t value) = 0;
  virtual core::Status get(int lane, std::uint32_t opIndex, int peer, core::BufferId buf, std::uint64_t offset,
                           std::byte* dst, std::uint64_t bytes) = 0;
  virtual core::Status signal(int lane, std::uint32_t opIndex, int peer, std::int32_t sem, std::uint64_t value) = 0;
  /// Non-blocking: `done` when every earlier op of the lane completed (puts at their target).
  virtual core::Status flushLane(int lane, bool& done) = 0;
  /// Non-blocking end of a lane: like flushLane, except that the transport may finish remote completion
  /// in the background (the targets learn of the data through its signals; a target that has completed
  /// the call may not make progress until its next call).
  virtual core::Status finishLane(int lane, bool& done) { return flushLane(lane, done); }
  /// Whether a thread other than the user's may call this transport (always one at a time, under the
  /// engine's lock). Then the engine runs `proxy` and `offload` lanes on a progress thread of its own;
  /// otherwise on the caller's thread inside wait()/test() (docs/initiation.md).
  [[nodiscard]] virtual bool progressFromAnyThread() const { return false; }
  /// Moves messages and completions. An error fails the current call (kRemoteError for a failed peer).
  virtual core::Status progress(bool& progressed) = 0;
  /// After every lane finished: `done` when nothing more of the current call is pending here (incoming
  /// data placed, replies sent).
  virtual core::Status finishCall(bool& done) = 0;
  /// Leaves the current call (after finishCall or a failure).
  virtual void leave() = 0;
  /// Extra text for a timeout message: ranks that never entered, dead peers.
  [[nodiscard]] virtual std::string stallReport() = 0;
  /// A peer process on this host that is stopped (process_state.hpp's sentence), or "" (also where the
  /// transport cannot tell): a failing call blames it first.
  [[nodiscard]] virtual std::string stoppedPeer() { return {}; }
  /// The communicator is unusable from now on (a call failed); the transport skips its orderly shutdown.
  virtual void markBroken() {}
  /// Tells the peers that this rank failed or aborted (so their blocked calls fail fast). Best effort.
  virtual void announceFailure(const std::string& reason) = 0;

  virtual core::Status registerBuffer(void* ptr, std::size_t bytes) = 0;
  virtual core::Status deregisterBuffer(void* ptr) = 0;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;

  /// Collective: a transport for the ranks with the same color ordered by (key, rank); nullptr for
  /// color < 0. `members` receives the old ranks of the new communicator in new-rank order.
  virtual std::unique_ptr<RemoteTransport> split(int color, int key, std::vector<int>& members) = 0;
};

/// Bytes of `count` 64-bit words (at least one): the size of a transport-owned semaphore or layout array.
inline std::size_t wordBytes(std::int64_t count) {
  return static_cast<std::size_t>(count < 1 ? 1 : count) * sizeof(std::uint64_t);
}

/// The identity every network transport reports, kept once: its name (what backend() says; a sub-transport
/// of a composite names its role), its rank and the communicator's size. Not copyable.
class NamedTransport : public RemoteTransport {
 public:
  NamedTransport(const NamedTransport&) = delete;
  NamedTransport& operator=(const NamedTransport&) = delete;
  [[nodiscard]] std::string_view backend() const final { return name_; }
  [[nodiscard]] int rank() const final { return rank_; }
  [[nodiscard]] int size() const final { return size_; }

 protected:
  NamedTransport(std::string name, int rank, int size) : name_(std::move(name)), rank_(rank), size_(size) {}
  ~NamedTransport() override = default;

  std::string name_;
  int rank_ = 0;
  int size_ = 0;
};

/// An Executor over `transport` (this process's rank). `nodeOfRank` empty: one node.
std::unique_ptr<core::Executor> makeRemoteExecutor(std::unique_ptr<RemoteTransport> transport, core::Config config,
                                                   std::vector<int> nodeOfRank);

/// An Executor over `transport` with the options' Config and node map (`options.nodeOfRank`, else the
/// nodes of the ranks' host names, found through `options.bootstrap`).
std::unique_ptr<core::Executor> makeRemoteExecutor(std::unique_ptr<RemoteTransport> transport,
                                                   const core::ExecutorOptions& options);

/// Node of every rank from the host names (ranks on one host share a node id, numbered in order of
/// first appearance). Collective over the bootstrap; throws Error when it fails.
std::vector<int> nodeIdsFromHostnames(core::Bootstrap& bootstrap);

using calls::rankList;  ///< "rank 3" or "ranks 1, 2" (call_reports.hpp)

/// One step of an idle loop: yields the core (ranks oversubscribe the cores under mpirun and fork tests),
/// and sleeps briefly once idle for long, so blocked ranks do not burn the machine.
void idlePause(double idleSeconds) noexcept;

}  // namespace copro::transport::remote
