#pragma once
/// The Communicator: the library API frameworks link against (one object per rank, as NCCL's ncclComm_t).
///
/// Count conventions follow NCCL: all-reduce, broadcast, reduce: elements of the buffer; all-gather:
/// send count; reduce-scatter: receive count; all-to-all: elements to each peer. Every collective is
/// asynchronous and returns a Request; `.wait()` blocks. See docs/api.md for the rules on several calls
/// in flight and calls from several threads.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/collectives/moe.hpp"
#include "copro/core/config.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/executor.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {

/// Per-call options.
struct CallOptions {
  std::string algorithm;  ///< force an algorithm by name ("ring", "rhd", ...); empty: planner / COPRO_ALGO
};

/// An in-flight collective. Move-only. Destroying an unfinished Request waits for it.
class Request {
 public:
  Request() = default;
  Request(Request&&) noexcept;
  Request& operator=(Request&&) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request();

  /// Blocks until the call finished; returns its status (errors name ranks and causes).
  Status wait();
  /// Makes progress; true when finished (then wait() returns immediately).
  bool test();
  /// True when this Request refers to a call (false for a default-constructed one).
  [[nodiscard]] bool valid() const { return state_ != nullptr; }
  /// A finished Request carrying `status` (calls that complete before they return, e.g. MoE).
  static Request finished(Status status);

  struct State;
  explicit Request(std::shared_ptr<State> s) : state_(std::move(s)) {}

 private:
  std::shared_ptr<State> state_;
};

class Communicator;

/// Calls recorded between Communicator::beginCapture() and endCapture() (as a CUDA graph, or MPI's
/// persistent collectives): replay() starts them again, in the order recorded, with the same buffers and
/// arguments, and skips what a call pays before it reaches the executor (argument checks, planning, the
/// Program cache). Every rank replays the same graphs in the same order; the buffers must stay valid
/// while a graph may be replayed. docs/latency.md.
class CallGraph {
 public:
  CallGraph() = default;
  /// Starts every recorded call; the Request finishes when all have (its status: the first error).
  Request replay();
  /// Calls recorded.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] bool valid() const { return impl_ != nullptr; }

  struct Impl;

 private:
  friend class Communicator;
  std::shared_ptr<Impl> impl_;
};

class Communicator {
 public:
  Communicator() = default;  ///< an empty handle (what split returns for color < 0)
  /// Wraps one executor (one rank). Use createAll / the umbrella helpers instead in user code.
  explicit Communicator(std::unique_ptr<core::Executor> executor);
  /// Creates every rank of a backend that hosts all ranks in this process (inproc), or this process's
  /// rank of a multi-process backend. Backends come from core::ExecutorRegistry::instance().
  static std::vector<Communicator> createAll(const std::string& backend, const core::ExecutorOptions& options);

  [[nodiscard]] bool valid() const { return impl_ != nullptr; }
  [[nodiscard]] int rank() const;
  [[nodiscard]] int size() const;
  [[nodiscard]] std::string backend() const;
  [[nodiscard]] const core::Config& config() const;
  /// Node of each rank (COPRO_NODE_MAP when set, else the backend's).
  [[nodiscard]] const std::vector<int>& nodeOfRank() const;

  /// Collective: a communicator of the ranks with the same color ordered by (key, rank); color < 0 gives
  /// an empty handle. Frameworks build TP/DP/EP groups this way.
  Communicator split(int color, int key);
  /// Collective: a communicator with the same ranks and its own sequence of calls.
  Communicator dup();

  /// Registers memory so calls on it avoid copies (backend-dependent; harmless elsewhere).
  Status registerBuffer(void* ptr, std::size_t bytes);
  Status deregisterBuffer(void* ptr);
  /// Memory suited to the backend; free with deallocate.
  void* allocate(std::size_t bytes);
  void deallocate(void* ptr);

  Request allReduce(const void* send, void* recv, std::uint64_t count, DataType dtype, ReduceOp op,
                    const CallOptions& opts = {});
  Request reduceScatter(const void* send, void* recv, std::uint64_t recvCount, DataType dtype, ReduceOp op,
                        const CallOptions& opts = {});
  Request reduceScatterV(const void* send, void* recv, const std::vector<std::uint64_t>& recvCounts, DataType dtype,
                         ReduceOp op, const CallOptions& opts = {});
  Request allGather(const void* send, void* recv, std::uint64_t sendCount, DataType dtype,
                    const CallOptions& opts = {});
  Request allGatherV(const void* send, void* recv, const std::vector<std::uint64_t>& recvCounts, DataType dtype,
                     const CallOptions& opts = {});
  Request broadcast(const void* send, void* recv, std::uint64_t count, DataType dtype, int root,
                    const CallOptions& opts = {});
  Request reduce(const void* send, void* recv, std::uint64_t count, DataType dtype, ReduceOp op, int root,
                 const CallOptions& opts = {});
  Request gather(const void* send, void* recv, std::uint64_t sendCount, DataType dtype, int root,
                 const CallOptions& opts = {});
  Request scatter(const void* send, void* recv, std::uint64_t recvCount, DataType dtype, int root,
                  const CallOptions& opts = {});
  Request allToAll(const void* send, void* recv, std::uint64_t count, DataType dtype, const CallOptions& opts = {});
  /// Counts and displacements in elements, one per rank (MPI_Alltoallv's convention).
  Request allToAllV(const void* send, const std::vector<std::uint64_t>& sendCounts,
                    const std::vector<std::uint64_t>& sendDispls, void* recv,
                    const std::vector<std::uint64_t>& recvCounts, const std::vector<std::uint64_t>& recvDispls,
                    DataType dtype, const CallOptions& opts = {});
  Request barrier(const CallOptions& opts = {});

  /// MoE dispatch (docs/moe.md): exchanges counts, sends each token (x: [numTokens x hidden] of
  /// config.dispatchDtype; scales: [numTokens x ceil(hidden/128)] float32 when FP8 with scales, else null) to
  /// the ranks of its experts (topkIdx/topkWeights: [numTokens x topk], -1 = none) and fills `out` in the
  /// expert-major layout; `handle` keeps what moeCombine needs. Every rank calls it. The Request is complete
  /// on return (the host pack/unpack around the Program is synchronous).
  Request moeDispatch(const MoeConfig& config, const void* x, const float* scales, const std::int32_t* topkIdx,
                      const float* topkWeights, int numTokens, MoeDispatchOut& out, MoeHandle& handle);
  /// MoE combine: expertOut is BF16 [rows x hidden] in the dispatch's receive layout; combined is BF16
  /// [numTokens x hidden] with combined[t] = sum_k w_{t,k} * y(t, expert_k) (zero for a token without experts).
  Request moeCombine(const MoeHandle& handle, const void* expertOut, void* combined);
  /// Runs a ready-made Program on this rank (every rank must run the same one, in the same order of calls).
  Request runProgram(std::shared_ptr<const core::ProgramSource> program, core::CallBuffers buffers);

  /// Point-to-point. Outside a group each is a group of one; inside groupStart()/groupEnd() they are
  /// collected and run together (matching in order per peer pair, as NCCL), and return invalid Requests.
  Request send(const void* buf, std::uint64_t count, DataType dtype, int peer);
  Request recv(void* buf, std::uint64_t count, DataType dtype, int peer);
  void groupStart();
  /// Runs the operations collected since groupStart().
  Request groupEnd();

  /// Capture: from beginCapture() to endCapture(), collectives, groups and runProgram are checked and
  /// planned but not run; they return invalid Requests and are recorded into the CallGraph endCapture()
  /// returns. MoE calls cannot be captured (their host-side packing runs per call): they fail with
  /// kInvalidUsage. Throws Error(kInvalidUsage) on beginCapture() inside a capture or a group, and on
  /// endCapture() outside a capture.
  void beginCapture();
  CallGraph endCapture();
  [[nodiscard]] bool capturing() const;

  /// Releases this rank's in-flight and future calls with an aborted error (any thread).
  void abort();
  /// The first error that left this communicator unusable (a timeout, a dead or failed peer, abort(), a
  /// system error), as seen by any of its calls so far; ok() while there is none. Sticky; any thread. An
  /// argument or usage error of one call (kInvalidArgument, kInvalidUsage, ...) is not recorded here: the
  /// communicator stays usable after it. As ncclCommGetAsyncError: poll it from a watchdog, then abort().
  [[nodiscard]] Status asyncError() const;

  /// Number of Programs in this communicator's cache, and how many calls found theirs there.
  [[nodiscard]] std::size_t programCacheSize() const;
  [[nodiscard]] std::uint64_t programCacheHits() const;
  /// The algorithm the last call used ("allreduce.ring").
  [[nodiscard]] std::string lastProgramName() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace copro::collectives

namespace copro {
using collectives::CallGraph;
using collectives::CallOptions;
using collectives::Communicator;
using collectives::Request;
}  // namespace copro
