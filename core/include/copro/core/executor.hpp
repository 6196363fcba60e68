#pragma once
/// The Executor interface (one object per rank of a communicator) and the registry of backends.
///
/// An executor runs Programs: it resolves addresses of the call's buffers, keeps the semaphores, runs
/// the lanes, and reports errors (timeouts naming missing ranks, dead peers, aborts).
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "copro/core/bootstrap.hpp"
#include "copro/core/config.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::core {

/// One rank's buffers for one call.
struct CallBuffers {
  const void* input = nullptr;
  void* output = nullptr;
  /// Initial Layout words of this rank (counts/displacements of v-collectives); the rest start at zero.
  std::vector<std::uint64_t> layoutInit;
  /// Extra buffers (BufferId::kExtra0 + i) with their sizes in bytes.
  std::vector<void*> extra;
  std::vector<std::uint64_t> extraBytes;
  /// Sizes of input/output in bytes where the Program's header cannot fix them (its entry is UINT64_MAX,
  /// as for all-to-allv): the communicator computes them from the call's counts; executors bounds-check
  /// against the smaller of the two.
  std::uint64_t inputBytes = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t outputBytes = std::numeric_limits<std::uint64_t>::max();
};

/// An in-flight call on one rank.
class CallHandle {
 public:
  virtual ~CallHandle() = default;
  /// Makes progress; sets `done` when the call finished. Returns the call's error if it failed.
  virtual Status test(bool& done) = 0;
  /// Blocks until done (or failed, or timed out).
  virtual Status wait() = 0;
};

/// Options given to a backend factory.
struct ExecutorOptions {
  int nranks = 1;  ///< for backends that create all ranks in one process (inproc)
  Config config = Config::fromEnvironment();
  /// Node id of every rank (virtual nodes); empty: one node.
  std::vector<int> nodeOfRank;
  /// Multi-process backends (shm, mpi, ucx): this process's link to its peers; the factory returns one
  /// executor, for bootstrap->rank().
  std::shared_ptr<Bootstrap> bootstrap;
};

class Executor {
 public:
  virtual ~Executor() = default;
  [[nodiscard]] virtual std::string_view backend() const = 0;
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  /// Node of each rank (length size()); all zeros when there is one node.
  [[nodiscard]] virtual std::vector<int> nodeOfRank() const = 0;
  /// Groups of ranks whose buffers are mutually addressable (see ProgramHeader::loadStoreDomains).
  [[nodiscard]] virtual std::vector<std::vector<std::int32_t>> loadStoreDomains() const = 0;
  /// The largest payload an LL put (Protocol::kLL) moves through this executor's mailboxes; 0 when it has
  /// none (its LL ops then run as simple ones). The planner uses LL only up to this size.
  [[nodiscard]] virtual std::uint64_t llMaxBytes() const { return 0; }

  /// Starts one call of `program` on this rank. Every rank of the communicator must start the same
  /// Program (same header) in the same order. Returns an error for a Program this executor cannot run.
  virtual Status start(std::shared_ptr<const ProgramSource> program, const CallBuffers& buffers,
                       std::unique_ptr<CallHandle>& handle) = 0;

  /// Collective over all ranks: a new executor for the ranks with the same color, ordered by (key,
  /// rank). color < 0 returns nullptr (this rank joins no group).
  virtual std::unique_ptr<Executor> split(int color, int key) = 0;

  /// Registers user memory so calls on it avoid copies (a no-op where memory is always addressable).
  virtual Status registerBuffer(void* ptr, std::size_t bytes) = 0;
  virtual Status deregisterBuffer(void* ptr) = 0;
  /// Allocates memory suited to this backend (shared, pinned, registered).
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;

  /// Releases this rank's in-flight and future calls with kAborted (callable from any thread).
  virtual void abort() = 0;
  [[nodiscard]] virtual const Config& config() const = 0;
};

/// The checks every executor's start() makes before it queues a call: the Program is for `size` ranks,
/// its declared sizes fit, and the call's buffers for `rank` are non-null where the Program reads or
/// writes them (the smaller of the header's and the call's sizes bounds them), the layout and extra
/// buffers match. Messages start with `who` (e.g. "shm rank 2: ") and name the Program.
Status checkCallBuffers(const ProgramHeader& header, const CallBuffers& buffers, int rank, int size,
                        const std::string& who);

/// Backends by name. Filled by explicit registration calls (copro::registerBuiltinBackends()), never
/// by static constructors.
class ExecutorRegistry {
 public:
  using Factory = std::function<std::vector<std::unique_ptr<Executor>>(const ExecutorOptions&)>;
  /// The process-wide registry.
  static ExecutorRegistry& instance();
  void add(const std::string& name, Factory factory, std::string description);
  [[nodiscard]] bool has(const std::string& name) const;
  /// Creates the executors of a backend; throws Error(kUnsupported) naming the known backends.
  [[nodiscard]] std::vector<std::unique_ptr<Executor>> create(const std::string& name,
                                                              const ExecutorOptions& options) const;
  /// (name, description) of each registered backend, sorted by name.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> list() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::pair<Factory, std::string>> factories_;
};

}  // namespace copro::core
