#pragma once
/// copro_torch's engine: the part of the PyTorch backend that does not depend on torch's process-group
/// class. It creates this process's copro Communicator through a Bootstrap over the c10d::Store torch
/// hands the backend, turns tensor operations into Jobs (validated on the caller's thread, so an
/// unsupported op or dtype raises at once), and runs them in order, one thread at a time (a Communicator is
/// driven by one thread at a time): a synchronous call on the thread that waits for it, an asynchronous
/// one on the worker thread, which a call neither wakes nor hands anything to unless it is observed or
/// left waiting (kHandOff). process_group.cpp
/// adapts it to torch 1.13's c10d::ProcessGroup/Work; a later torch's c10d::Backend needs only that file.
#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "copro/copro.hpp"

namespace c10d {
class Store;
}

namespace copro_torch {

class StoreBootstrap;

/// One operation for the worker thread: `run` issues copro calls, waits for them and copies results
/// back (throws on failure); `outputs` are the tensors the Work's future resolves to.
struct Job {
  std::vector<at::Tensor> outputs;
  std::function<void(copro::Communicator&)> run;
};

/// Called on the worker thread when a Job finished (null on success).
using DoneCallback = std::function<void(std::exception_ptr)>;

/// The reductions torch names; the process-group layer maps torch's enum onto it.
enum class Reduction { kSum, kAvg, kProduct, kMin, kMax };

class Engine {
 public:
  /// Collective over the `size` processes: creates the communicator on `transport` ("auto": shm when
  /// every rank runs on this host, else ucx; "shm", "ucx", "mpi", "shm+ucx", ...). Throws
  /// std::runtime_error with a message that says what to do.
  Engine(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, const std::string& transport,
         std::chrono::milliseconds timeout);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// The transport actually used ("shm", ...).
  [[nodiscard]] const std::string& transport() const { return transport_; }

  /// A CPU uint8 tensor of `bytes` whose storage every rank of the group maps (Communicator::allocate
  /// on `shm`), so collectives on it (or on views of it as another dtype) need no Cross Memory Attach
  /// copy; on other transports a plain at::empty. The memory is released when the tensor's storage is
  /// freed while the group lives; storage that outlives the group stays mapped until the process exits.
  at::Tensor emptyShared(std::int64_t bytes);

  /// Queues `job`; `done` runs when it finished (in submission order), on the thread that ran it: the
  /// thread that waits for it when it does so within kHandOff (a synchronous call: no hand-off between
  /// threads), else the worker thread.
  void submit(Job job, DoneCallback done);
  /// Someone observes the queued Jobs' progress without running them (Work::getFuture, as DDP does, or
  /// is_completed): the worker takes them now instead of after kHandOff.
  void expedite();
  /// Finishes queued jobs, stops the worker and destroys the communicator (idempotent; later submits fail).
  void shutdown();

  /// Called by a thread about to wait for a Job (Work::wait): when no other thread is running Jobs, runs
  /// the queued ones itself, in order, until `done()` holds or the queue is empty, so a synchronous call
  /// costs no hand-off to the worker thread and back. When the worker is busy, expedites and returns.
  void runQueuedUntil(const std::function<bool()>& done);

  // Job builders: they check their arguments on the calling thread and throw c10::Error (NotImplementedError
  // for unsupported ops and dtypes) naming the problem and what to use instead.
  Job allReduce(const at::Tensor& tensor, Reduction op) const;
  Job allReduceCoalesced(const std::vector<at::Tensor>& tensors, Reduction op) const;
  Job broadcast(const at::Tensor& tensor, int root) const;
  Job reduce(const at::Tensor& tensor, Reduction op, int root) const;
  Job allGather(const std::vector<at::Tensor>& outputs, const at::Tensor& input) const;
  Job allGatherBase(const at::Tensor& output, const at::Tensor& input) const;
  Job allGatherCoalesced(const std::vector<std::vector<at::Tensor>>& outputs,
                         const std::vector<at::Tensor>& inputs) const;
  Job reduceScatter(const at::Tensor& output, const std::vector<at::Tensor>& inputs, Reduction op) const;
  Job reduceScatterBase(const at::Tensor& output, const at::Tensor& input, Reduction op) const;
  Job allToAllBase(const at::Tensor& output, const at::Tensor& input, const std::vector<std::int64_t>& outSplits,
                   const std::vector<std::int64_t>& inSplits) const;
  Job allToAll(const std::vector<at::Tensor>& outputs, const std::vector<at::Tensor>& inputs) const;
  Job gather(const std::vector<at::Tensor>& outputs, const at::Tensor& input, int root) const;
  Job scatter(const at::Tensor& output, const std::vector<at::Tensor>& inputs, int root) const;
  Job barrier() const;
  /// Point-to-point: `peer` is the destination (send) or source (recv). Each pair of ranks has its own
  /// communicator, created by the two on their first exchange (copro's calls are numbered per
  /// communicator, so traffic between two ranks must not count on the others). A batch (several ops)
  /// runs as one copro group per peer, all progressed together, as batch_isend_irecv needs.
  struct P2P {
    bool isSend = true;
    at::Tensor tensor;
    int peer = 0;
  };
  Job p2p(const std::vector<P2P>& ops);
  /// Checks one point-to-point operation (throws like the builders).
  void checkP2P(const P2P& op, const char* name) const;

 private:
  using Clock = std::chrono::steady_clock;
  /// How long a queued Job is left to the thread about to wait for it before the worker takes it.
  static constexpr std::chrono::microseconds kHandOff{500};
  /// While Jobs were submitted within kHot, an idle worker wakes every kTick to look at the queue (so
  /// submit wakes no thread); after kHot without a Job it sleeps until submit notifies it. The tick is
  /// long because each wake-up preempts a rank that is copying or spinning on a busy host: at 500 µs it
  /// cost a 1 MiB all_reduce of 2 processes on 2 cores about 30% (docs/torch.md).
  static constexpr std::chrono::milliseconds kHot{1000};
  static constexpr std::chrono::milliseconds kTick{10};

  void workerLoop();
  /// The worker's wait while the queue is empty (mutex_ held): a tick while hot, else until notified.
  void waitForWork(std::unique_lock<std::mutex>& lock);
  /// Pops the next Job and runs it; the caller holds driving_ (one thread runs Jobs at a time, in
  /// queue order). False when the queue was empty.
  bool runNext();
  /// The communicator of this rank and `peer` (worker thread only; created on first use).
  copro::Communicator& pairComm(int peer);
  copro::Communicator create(const std::shared_ptr<StoreBootstrap>& boot, const std::vector<int>& mpiRanks);

  int rank_;
  int size_;
  copro::Config config_;  // before transport_, whose default it holds (COPRO_TORCH_TRANSPORT)
  std::string transport_;
  std::shared_ptr<StoreBootstrap> boot_;
  std::vector<int> mpiWorldRanks_;  ///< MPI_COMM_WORLD rank of each group rank (transport mpi)
  copro::Communicator comm_;
  struct SharedMemory;  ///< what emptyShared's tensors release their memory through
  std::shared_ptr<SharedMemory> shared_;
  std::map<int, copro::Communicator> pairs_;  ///< peer -> pair communicator
  struct Task {
    Job job;
    DoneCallback done;
    Clock::time_point submitted;
  };
  std::mutex driving_;  ///< held by the thread running Jobs (the worker or a waiter)
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool sleeping_ = false;  ///< the worker waits on cv_ without a tick (submit notifies only then)
  bool urgent_ = false;    ///< expedite(): the worker runs queued Jobs without waiting kHandOff
  bool stop_ = false;
  Clock::time_point lastSubmit_{};
  std::thread worker_;
};

/// Every transport this build of copro offers to torch ("shm", "ucx", "mpi", ...).
std::vector<std::string> availableTransports();
/// Shuts every live Engine down (Python's atexit), then finalizes MPI when copro_torch initialized it.
void shutdownAll();

}  // namespace copro_torch
