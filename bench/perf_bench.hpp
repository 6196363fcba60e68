#pragma once
// copro-perf's measurement core: buffers, result checking and timing of copro and of the --compare
// peers, for ranks that are threads of this process (inproc) or processes under mpirun (one rank each).
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "copro/copro.hpp"
#include "peers/peer.hpp"

namespace copro::bench {

/// copro-perf's settings; the defaults are nccl-tests' (docs/perf.md lists the flags).
struct Options {
  collectives::CollectiveKind kind = collectives::CollectiveKind::kAllReduce;
  std::uint64_t minBytes = 32ULL << 20;
  std::uint64_t maxBytes = 32ULL << 20;
  std::uint64_t stepFactor = 1;          ///< -f: sizes multiply by this when > 1 ...
  std::uint64_t stepBytes = 1ULL << 20;  ///< -i: ... else grow by this
  int iters = 20;
  int warmup = 5;
  int aggIters = 1;  ///< -m: calls per timed iteration (one after another: copro has no group call)
  int cycles = 1;    ///< -N: how many times the whole sweep runs (0: until interrupted)
  int average = 1;   ///< -a: the time column: 0 rank 0's, 1 the mean over ranks, 2 the fastest, 3 the slowest
  int check = 1;
  DataType dtype = DataType::kFloat32;               ///< the type being run (one of dtypes)
  ReduceOp op = ReduceOp::kSum;                      ///< the operator being run (one of ops)
  std::vector<DataType> dtypes{DataType::kFloat32};  ///< -d (all: every type, nccl-tests' order)
  std::vector<ReduceOp> ops{ReduceOp::kSum};         ///< -o (all: every operator)
  bool osuFull = false;                              ///< --format osu -f: min, max and iterations columns
  int root = 0;
  int ranks = 4;
  std::string transport;  ///< empty: inproc, or shm under mpirun
  std::string algo;
  std::string json;
  std::string compare;           ///< "mpi,gloo"
  std::string format = "nccl";   ///< nccl or osu
  std::string nodeMap;           ///< --node-map (else COPRO_NODE_MAP)
  std::string buffers = "comm";  ///< comm: Communicator::allocate; heap: new[]
  bool noBound = false;
  std::string trace;     ///< --trace: Chrome trace of one extra out-of-place iteration per size
  bool predict = false;  ///< --predict: simulate every row's Program on a probed topology
  std::string topology;  ///< --topology: the topology --predict uses (else this host, probed now)
};

/// One slice of a traced iteration. inproc: one per op (or fused op group) of every lane; every backend
/// also gets one per rank for the whole call (lane -1, op unset).
struct TracedOp {
  int rank = 0;
  int lane = -1;
  std::uint32_t index = 0;
  std::uint32_t count = 0;  ///< ops executed as one (0 for the whole call)
  core::OpCode op = core::OpCode::kFlush;
  int peer = -1;
  std::uint64_t bytes = 0;
  double beginNs = 0;  ///< steady_clock (CLOCK_MONOTONIC, one time base for every process of a host)
  double endNs = 0;
};

/// One configuration's result over all ranks (meaningful on the printing rank).
struct Result {
  double timeUs = 0;     ///< mean per call of the slowest rank (nccl-tests)
  double avgTimeUs = 0;  ///< mean over ranks of each rank's mean per call (OSU's "Avg Latency")
  double minTimeUs = 0;
  double maxTimeUs = 0;
  double rank0TimeUs = 0;   ///< the printing rank's own mean (nccl-tests -a 0)
  std::uint64_t wrong = 0;  ///< mismatching elements summed over ranks
  bool supported = true;
  std::string error;  ///< the first failing rank's message
};

/// The ranks of a run and how they meet: threads of this process with std::barrier, or processes
/// with MPI. Every method but forEachLocalRank is called by every rank (collective).
class Team {
 public:
  virtual ~Team() = default;
  /// All ranks of the run.
  [[nodiscard]] virtual int size() const = 0;
  /// True on the process that prints (global rank 0's).
  [[nodiscard]] virtual bool printer() const = 0;
  /// Runs fn(local index) once for every rank this process drives and returns when all returned.
  virtual void forEachLocalRank(const std::function<void(int)>& fn) = 0;
  virtual void barrier() = 0;
  /// Combines one rank's figures (max/min/avg time, summed #wrong, first error); the result is
  /// complete on the printing rank.
  virtual Result combine(int rank, double timeUs, std::uint64_t wrong, const std::string& error) = 0;
  /// Sum over ranks of one value each (every local rank calls it; complete on the printing rank).
  virtual double sum(int rank, double value) = 0;
  /// Called by a rank whose copro call failed, before its next Team call. Processes under MPI end the
  /// job here (a stopped or dead peer would leave every other rank waiting in MPI); threads go on.
  virtual void coproFailed(int /*rank*/, const std::string& /*error*/) {}
};

/// Ranks as threads (inproc).
std::unique_ptr<Team> makeThreadTeam(int nranks);

/// SIGINT and SIGTERM end the run between two calls instead of killing the process, so the
/// communicators' destructors run (the library installs no handler; docs/shm.md). A second signal
/// kills as usual.
void installInterruptHandlers();
/// The signal that interrupted the run, or 0.
int interruptSignal() noexcept;

/// A rank's measurements of one size.
struct SizeResult {
  Result outOfPlace;
  Result inPlace;
  std::vector<Result> peers;    ///< one per peer (out of place)
  std::string algorithm;        ///< what the communicator ran out of place ("allreduce.ring")
  std::vector<TracedOp> trace;  ///< with Options::trace, on the printing process
};

class Bench {
 public:
  /// `comms`: the communicators this process drives (one per local rank of `team`), `peers`: one list
  /// per local rank (empty without --compare).
  Bench(Options o, Team& team, std::vector<Communicator> comms, std::vector<std::unique_ptr<Peer>> peers);
  ~Bench();
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  /// The data type and operator of the next runSize calls (-d all, -o all).
  void setType(DataType dtype, ReduceOp op);

  /// Runs one size (copro out of place, in place, then every peer) on every rank.
  SizeResult runSize(std::uint64_t count, const std::string& algo);

  [[nodiscard]] int ranks() const { return p_; }
  /// Names of the peers (columns), and why a peer cannot run this configuration (empty: it can).
  [[nodiscard]] std::vector<std::string> peerNames() const;
  [[nodiscard]] std::vector<std::string> peerReasons() const;

 private:
  struct Buffers;
  std::uint64_t sendElems(std::uint64_t count) const;
  std::uint64_t recvElems(std::uint64_t count) const;
  Request launch(int local, const void* send, void* recv, std::uint64_t count, const std::string& algo);
  void pointers(int r, Buffers& b, std::uint64_t count, bool inPlace, const void*& send, void*& recv) const;
  void fillInputs(int r, Buffers& b, std::uint64_t count, bool inPlace) const;
  std::uint64_t checkOutputs(int r, const void* recv, std::uint64_t count) const;
  Result runCopro(int local, Buffers& b, std::uint64_t count, const std::string& algo, bool inPlace);
  Result runPeer(int local, Peer& peer, Buffers& b, std::uint64_t count);
  /// One more call, timed per op (inproc) and per call (every backend), gathered on the printing process.
  void traceOnce(int local, int r, const std::function<void()>& once, std::string& err);

  Options o_;
  Team& team_;
  std::vector<Communicator> comms_;
  std::vector<std::unique_ptr<Peer>> peers_;  // local rank l's peers at [l * peersPerRank_, ...)
  std::size_t peersPerRank_ = 0;
  int p_ = 0;
  std::size_t esize_ = 4;
  std::mutex traceMutex_;
  std::vector<TracedOp> traced_;
  std::string algorithm_;
};

/// nccl-tests' bus bandwidth factor.
double busFactor(collectives::CollectiveKind k, int p);
/// Elements per rank-level "count" for a total size as nccl-tests defines it.
std::uint64_t countFor(collectives::CollectiveKind k, std::uint64_t bytes, std::size_t esize, int p);
bool isRooted(collectives::CollectiveKind k);
bool hasOp(collectives::CollectiveKind k);
/// Bytes of a rank's send and receive buffers for `count` (what runSize allocates).
std::uint64_t bufferBytesPerRank(collectives::CollectiveKind k, std::uint64_t count, std::size_t esize, int p);

/// nccl-tests' name of a type ("float", "half", "f8e4m3"); every type in nccl-tests' `-d all` order.
std::string_view ncclTypeName(DataType t);
const std::vector<DataType>& ncclTypeOrder();
/// Every reduction operator in nccl-tests' `-o all` order (sum prod max min avg).
const std::vector<ReduceOp>& ncclOpOrder();
/// The time column of a result under nccl-tests' -a (0 rank 0, 1 mean, 2 min, 3 max).
double reportedTimeUs(const Result& r, int average);

/// The sizes of one sweep (nccl-tests' loop: times stepFactor when > 1, else plus stepBytes). Throws
/// Error on a range that is empty, starts at 0 or never grows.
std::vector<std::uint64_t> sweepSizes(const Options& o);

}  // namespace copro::bench
