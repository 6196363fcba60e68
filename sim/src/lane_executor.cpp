/// The sim executor: every lane of every rank as a resumable cursor in virtual time (the lane state machine),
/// "signal after data" ordering per (lane, peer), transfers handed to the network model, initiation costs
/// from the initiation model (docs/simulator.md, "Executor").
#include "lane_executor.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <string>

#include "copro/core/status.hpp"
#include "event_queue.hpp"
#include "index_map.hpp"
#include "initiation_model.hpp"
#include "network_model.hpp"
#include "rank_fold.hpp"
#include "switch_trees.hpp"

namespace copro::sim::detail {

namespace {

using core::Error;
using core::ErrorCode;
using core::Op;
using core::OpCode;

constexpr std::uint64_t kProgressEvery = std::uint64_t{1} << 16;
constexpr std::uint64_t kProgressWork = std::uint64_t{1} << 22;  ///< re-solve work between reports

/// Where a lane is in its current op.
enum class Stage : std::uint8_t {
  kFetch,          ///< take the next op from the cursor
  kStart,          ///< op fetched; initiation cost and message-rate spacing not yet applied
  kIssue,          ///< perform the op now
  kBlockedWait,    ///< on a semaphore
  kBlockedFlush,   ///< on its outstanding transfers
  kBlockedSync,    ///< on the flows of a synchronous op (remote reduce sources, remote copies)
  kReduceCompute,  ///< sources present: compute
  kReduceWrite,    ///< computed: write a remote destination
  kComplete,       ///< the op is done (trace it, then fetch)
  kDone,
};

struct Lane {
  std::unique_ptr<core::LaneCursor> cursor;
  Op op;
  std::int32_t rank = 0;  ///< the run's rank (a job's ranks follow the previous jobs')
  std::int32_t index = 0;
  std::int32_t job = 0;
  Stage stage = Stage::kFetch;
  Stage afterSync = Stage::kComplete;
  std::uint8_t initiation = 0;
  bool switchReduced = false;  ///< the current reduce was combined in the switches (no GPU compute)
  std::uint64_t opIndex = 0;   ///< ops fetched so far (the current op is opIndex - 1)
  std::uint32_t outstanding = 0;
  std::uint32_t syncPending = 0;
  std::int32_t nextWaiter = -1;
  std::int64_t lastIssue = kNever;
  std::int64_t opBegin = 0;
  std::int64_t finish = 0;
  std::uint64_t flowCounter = 0;
  // The lane's last (lane, peer) ordering entry, kept alive while cached: a lane talking to one peer (a
  // ring) then never touches the hash map.
  // Two slots: a ring lane alternates between its successor (data) and its predecessor (credits).
  std::array<std::int32_t, 2> orderPeer{-1, -1};
  std::array<std::int32_t, 2> orderId{-1, -1};
  std::uint8_t orderNext = 0;  ///< the slot to replace next
  std::uint8_t routeNext = 0;
  /// The lane's last routes that were fixed (no per-flow choice): GPU pair, latency, channels.
  struct CachedRoute {
    std::int32_t from = -1;
    std::int32_t to = -1;
    std::int64_t latency = 0;
    std::int32_t nic = -1;  ///< the first NIC node on the path, -1 if none
    std::vector<std::int32_t> channels;
  };
  std::array<CachedRoute, 2> routes;
};

enum class MsgKind : std::uint8_t { kData, kGet, kSignal, kSync };

struct Message {
  MsgKind kind = MsgKind::kData;
  OpCode op = OpCode::kPut;
  bool hasSignal = false;
  std::int32_t lane = -1;
  std::int32_t src = -1;  ///< program ranks
  std::int32_t dst = -1;
  std::uint64_t bytes = 0;  ///< payload (stats)
  std::uint64_t wire = 0;   ///< bytes on the wire
  std::int64_t start = 0;
  std::int64_t delay = 0;  ///< after the transfer: path latency + extra latency + target-side reduction
  std::int32_t entry = -1;
  std::uint32_t epoch = 0;
  std::int32_t nextFree = -1;
  std::int32_t nextRider = -1;     ///< the next message delivered by this one's transfer (in-switch trees)
  std::vector<std::int32_t> path;  ///< channels of a transfer waiting for its NIC slot (kFlowStart)
};

/// "Signal after data" per (lane, peer): data ops are counted in the epoch open when they were issued;
/// a signal closes the epoch and is applied once its epoch and all earlier ones are delivered.
struct OrderEntry {
  struct Epoch {
    std::uint32_t undelivered = 0;
    bool closed = false;
    bool arrived = false;
    std::int32_t sem = -1;
    std::uint64_t value = 0;
  };
  std::uint64_t key = 0;
  std::uint32_t first = 0;  ///< absolute number of epochs[0]
  std::vector<Epoch> epochs;
};

bool isNetworkOp(OpCode c) {
  return c == OpCode::kPut || c == OpCode::kGet || c == OpCode::kSignal || c == OpCode::kPutReduce ||
         c == OpCode::kMulticast;
}

/// One Program of the run and where its ranks sit among the run's ranks.
struct JobState {
  const core::ProgramSource* program = nullptr;
  std::int32_t base = 0;  ///< its rank 0 is the run's rank `base`
  std::int32_t nranks = 0;
  std::int64_t start = 0;
  std::int64_t finish = 0;  ///< its last lane's end or last delivery into its ranks
};

/// The state of one Simulator::run or runConcurrently: the lane state machine (fetch, initiation, issue,
/// block, complete), "signal after data" ordering per (lane, peer), and the event loop over the network
/// model's transfers.
class Execution {
 public:
  Execution(const topo::Fabric& fabric, const SimParams& params, Router& router, const std::vector<Job>& jobs,
            const RunOptions& options, bool tryFold)
      : fabric_(fabric),
        params_(params),
        router_(router),
        jobsIn_(jobs),
        options_(options),
        net_(makeNetworkModel(params.network, fabric)),
        trees_(fabric),
        tracing_(static_cast<bool>(options.trace)),
        tryFold_(tryFold) {}

  Result run();

 private:
  void setUp();
  /// Folds identical rank classes (rank_fold.hpp) when the Program declares a symmetry and nothing in the
  /// run tells the ranks of a class apart.
  void decideFold();
  /// Turns the folded run's counters and statistics into the full run's.
  void unfold(std::uint64_t& events);
  void placeJob(const Job& job, JobState& state);
  /// Turns the fetched op's job-local ranks into the run's (several jobs only).
  void remapRanks(Lane& lane) const;
  void step(std::int32_t laneId, std::int64_t now);
  /// Performs the fetched op; returns false when the lane blocked or waits for a timed event.
  bool perform(std::int32_t laneId, std::int64_t now);
  void startMessage(std::int32_t msgId, std::int64_t now, std::uint64_t flowHash);
  /// A data message of the lane's current op to `peer`, counted in its (lane, peer) ordering, not started.
  std::int32_t newDataMessage(std::int32_t laneId, std::int32_t peer, MsgKind kind, bool withSignal);
  /// Routes the lane's op from `src` to each of `peers` (or from each to `src` when `inbound`) into
  /// treePaths_; returns false when a peer shares the GPU of `src`.
  bool routeAll(Lane& lane, std::int32_t src, const std::vector<std::int32_t>& peers, bool inbound);
  /// A multicast replicated in the switches: one transfer over the tree delivers every target's message.
  bool multicastInSwitch(std::int32_t laneId, std::int64_t now);
  /// A reduce combined in the switches: one transfer over the tree brings every remote source.
  bool reduceInSwitch(std::int32_t laneId, std::int64_t now);
  /// Starts the transfer of `head` over treeChannels_ (its riders are delivered with it).
  void startTree(std::int32_t head, std::int64_t now, const Lane& lane);
  /// Puts message `msgId` on `path` at `now` (or delivers it after its delay when it has no flow).
  void enterNetwork(std::int32_t msgId, std::int64_t now, const std::int32_t* path, std::size_t pathLen);
  /// The first NIC node a path crosses (-1: none, the transfer stays inside a server).
  std::int32_t firstNic(const std::int32_t* path, std::size_t pathLen) const;
  void deliver(std::int32_t msgId, std::int64_t now);
  void applySignal(std::int32_t rank, std::int32_t sem, std::uint64_t value);
  /// Lanes released by a delivery run right after it, at the same time, without an event of their own.
  void wake(std::int32_t laneId) { woken_.push_back(laneId); }
  void runWoken(std::int64_t now) {
    for (std::size_t i = 0; i < woken_.size(); ++i) step(woken_[i], now);
    woken_.clear();
  }
  std::int32_t newMessage();
  std::int32_t orderEntry(std::int32_t laneId, std::int32_t peer);
  std::int32_t newOrderEntry(std::uint64_t key);
  /// Frees an ordering entry with nothing pending unless it is its lane's cached one.
  void releaseIfIdle(std::int32_t entryId);
  void drain(std::int32_t entryId);
  void scheduleRecompute(std::int64_t now) {
    if (!recomputeScheduled_) {
      queue_.push(now, EventKind::kRecompute, 0, 0, /*late=*/true);
      recomputeScheduled_ = true;
    }
  }
  void traceOp(const Lane& lane, std::int64_t now);
  [[noreturn]] void malformed(const Lane& lane, const std::string& why) const;
  void checkPeer(const Lane& lane, std::int32_t peer, const char* what) const;
  void checkSem(const Lane& lane, std::int32_t sem) const;
  [[noreturn]] void deadlock(std::int64_t now) const;
  std::int32_t self(const Lane& lane, std::int32_t rank) const { return rank == core::kSelf ? lane.rank : rank; }

  const topo::Fabric& fabric_;
  const SimParams& params_;
  Router& router_;
  const std::vector<Job>& jobsIn_;
  const RunOptions& options_;
  std::vector<JobState> jobs_;
  std::vector<std::int32_t> jobOfRank_;  ///< several jobs only
  std::unique_ptr<NetworkModel> net_;
  SwitchTrees trees_;
  SwitchTrees::Paths treePaths_;
  std::vector<std::int64_t> treeLatency_;
  std::vector<std::int32_t> treePeers_;
  std::vector<std::int32_t> treeChannels_;
  EventQueue queue_;
  bool tracing_;
  bool tryFold_;
  bool recomputeScheduled_ = false;
  RankFold fold_;
  std::uint64_t recomputeEvents_ = 0;  ///< events shared by all ranks (not multiplied when unfolding)

  std::int32_t nranks_ = 0;
  std::int32_t numSems_ = 0;
  std::vector<std::int32_t> gpuOf_;              ///< program rank -> fabric GPU rank
  std::unique_ptr<InitiationModel> initiation_;  ///< made once the ranks are known (setUp)
  std::vector<Lane> lanes_;
  std::vector<std::uint64_t> sems_;
  std::vector<std::int32_t> waiters_;  ///< per (rank, sem): first waiting lane
  std::vector<Message> msgs_;
  std::int32_t freeMsg_ = -1;
  std::vector<OrderEntry> entries_;
  std::vector<std::int32_t> freeEntries_;
  IndexMap entryOf_;
  std::vector<std::int32_t> path_;
  std::vector<std::int32_t> woken_;
  std::vector<NetworkModel::Finish> finishes_;
  FlowFinishHeap finishHeap_;
  std::uint64_t reduceMemoBytes_ = ~std::uint64_t{0};  ///< costPs(reduceMemoBytes_, reduce_bw) = reduceMemoPs_
  std::int64_t reduceMemoPs_ = 0;
  std::int64_t lastDelivery_ = 0;
  std::int64_t rateNow_ = 0;
  std::size_t doneLanes_ = 0;
  Result result_;
};

void Execution::placeJob(const Job& job, JobState& state) {
  const core::ProgramHeader& h = job.program->header();
  const auto numGpus = static_cast<std::int32_t>(fabric_.gpus().size());
  const std::string fabricName = fabric_.name.empty() ? "the fabric" : "fabric '" + fabric_.name + "'";
  state.nranks = h.nranks;
  if (!job.placement.empty()) {
    if (job.placement.size() != static_cast<std::size_t>(h.nranks)) {
      throw Error(ErrorCode::kInvalidArgument, "placement lists " + std::to_string(job.placement.size()) +
                                                   " GPUs for a Program of " + std::to_string(h.nranks) +
                                                   " ranks; give one GPU index per rank");
    }
    for (std::size_t r = 0; r < job.placement.size(); ++r) {
      const std::int32_t g = job.placement[r];
      if (g < 0 || g >= numGpus) {
        throw Error(ErrorCode::kInvalidArgument, "placement puts rank " + std::to_string(r) + " on GPU " +
                                                     std::to_string(g) + ", but " + fabricName + " has GPUs 0.." +
                                                     std::to_string(numGpus - 1));
      }
    }
    gpuOf_.insert(gpuOf_.end(), job.placement.begin(), job.placement.end());
    return;
  }
  if (h.nranks > numGpus) {
    throw Error(ErrorCode::kInvalidArgument, "the Program '" + h.name + "' has " + std::to_string(h.nranks) +
                                                 " ranks but " + fabricName + " has only " + std::to_string(numGpus) +
                                                 " GPUs; use a larger topology or fewer ranks");
  }
  for (std::int32_t r = 0; r < h.nranks; ++r) gpuOf_.push_back(r);
}

void Execution::setUp() {
  if (jobsIn_.empty()) throw Error(ErrorCode::kInvalidArgument, "a simulation needs at least one Program");
  nranks_ = 0;
  numSems_ = 0;
  for (const Job& job : jobsIn_) {
    if (job.program == nullptr) throw Error(ErrorCode::kInvalidArgument, "a simulated job has no Program");
    if (job.start.picoseconds() < 0) throw Error(ErrorCode::kInvalidArgument, "a job cannot start before time 0");
    JobState state;
    state.program = job.program;
    state.base = nranks_;
    state.start = job.start.picoseconds();
    placeJob(job, state);
    if (jobsIn_.size() > 1) {
      jobOfRank_.insert(jobOfRank_.end(), static_cast<std::size_t>(state.nranks),
                        static_cast<std::int32_t>(jobs_.size()));
    }
    nranks_ += state.nranks;
    numSems_ = std::max(numSems_, std::max(job.program->header().numSemaphores, 0));
    jobs_.push_back(state);
  }
  sems_.assign(static_cast<std::size_t>(nranks_) * static_cast<std::size_t>(numSems_), 0);
  waiters_.assign(sems_.size(), -1);
  result_.ranks.assign(static_cast<std::size_t>(nranks_), RankStats{});
  initiation_ = std::make_unique<InitiationModel>(params_, nranks_, fabric_.nodes().size());
  decideFold();
  // Skip asking for lane initiation modes when all modes cost the same (sources without a cheap
  // laneInitiation would materialize every rank up front).
  const bool uniform = initiation_->uniform();
  for (std::size_t j = 0; j < jobs_.size(); ++j) {
    const JobState& job = jobs_[j];
    const std::int32_t simulated = fold_.on() ? fold_.period() : job.nranks;
    for (std::int32_t r = 0; r < simulated; ++r) {
      const int nl = job.program->numLanes(r);
      for (int l = 0; l < nl; ++l) {
        Lane lane;
        lane.rank = job.base + r;
        lane.index = l;
        lane.job = static_cast<std::int32_t>(j);
        lane.cursor = job.program->openLane(r, l);
        lane.initiation = uniform ? static_cast<std::uint8_t>(core::Initiation::kDevice)
                                  : static_cast<std::uint8_t>(job.program->laneInitiation(r, l));
        lanes_.push_back(std::move(lane));
      }
    }
  }
}

void Execution::decideFold() {
  if (!tryFold_ || jobs_.size() != 1 || tracing_ || trees_.any()) return;
  const std::int32_t period = jobs_[0].program->rotationPeriod();
  if (period <= 0 || nranks_ % period != 0 || nranks_ / period < 2) return;
  for (std::int32_t r = 0; r < nranks_; ++r) {
    if (gpuOf_[static_cast<std::size_t>(r)] != r) return;  // a placement: the shift need not map GPUs
  }
  // A NIC's message rate is shared by the ranks behind it, not only by a class's representative.
  for (const InitiationCost& ic : params_.initiation) {
    if (ic.nicMessageRate > 0.0) return;
  }
  fold_.enable(nranks_, period, net_->numChannels());
}

void Execution::unfold(std::uint64_t& events) {
  const std::int32_t k = fold_.multiplicity();
  const auto uk = static_cast<std::uint64_t>(k);
  result_.symmetryMultiplicity = k;
  events = (events - recomputeEvents_) * uk + recomputeEvents_;
  result_.flows *= uk;
  result_.ops *= uk;
  result_.bytesPut *= uk;
  result_.bytesDelivered *= uk;
  result_.peakActiveFlows *= static_cast<std::size_t>(k);
  for (std::int32_t r = fold_.period(); r < nranks_; ++r) {
    result_.ranks[static_cast<std::size_t>(r)] = result_.ranks[static_cast<std::size_t>(fold_.rep(r))];
  }
}

void Execution::remapRanks(Lane& lane) const {
  const JobState& job = jobs_[static_cast<std::size_t>(lane.job)];
  const auto fix = [&](std::int32_t& r, const char* what) {
    if (r == core::kSelf) return;
    if (r < 0 || r >= job.nranks) {
      malformed(lane, std::string(what) + " rank " + std::to_string(r) + " is out of range (the Program has " +
                          std::to_string(job.nranks) + " ranks)");
    }
    r += job.base;
  };
  Op& op = lane.op;
  switch (op.code) {
    case OpCode::kPut:
    case OpCode::kPutReduce:
    case OpCode::kSignal:
      fix(op.peer, "target");
      break;
    case OpCode::kGet:
      fix(op.peer, "source");
      break;
    case OpCode::kMulticast:
      for (std::int32_t& r : op.ranks) fix(r, "multicast target");
      break;
    case OpCode::kReduce:
      for (core::Addr& a : op.srcs) fix(a.rank, "source");
      fix(op.dst.rank, "destination");
      break;
    case OpCode::kCopy:
      fix(op.src.rank, "source");
      fix(op.dst.rank, "destination");
      break;
    case OpCode::kWait:
    case OpCode::kFlush:
      break;
  }
}

[[noreturn]] void Execution::malformed(const Lane& lane, const std::string& why) const {
  throw Error(ErrorCode::kInvalidProgram, "rank " + std::to_string(lane.rank) + " lane " + std::to_string(lane.index) +
                                              " op " + std::to_string(lane.opIndex - 1) + " (" +
                                              std::string(core::opCodeName(lane.op.code)) + "): " + why);
}

void Execution::checkPeer(const Lane& lane, std::int32_t peer, const char* what) const {
  if (peer < 0 || peer >= nranks_) {
    malformed(lane, std::string(what) + " rank " + std::to_string(peer) + " is out of range (the Program has " +
                        std::to_string(nranks_) + " ranks)");
  }
}

void Execution::checkSem(const Lane& lane, std::int32_t sem) const {
  if (sem < 0 || sem >= numSems_) {
    malformed(lane, "semaphore " + std::to_string(sem) + " is out of range (the Program has " +
                        std::to_string(numSems_) + " per rank)");
  }
}

std::int32_t Execution::newMessage() {
  if (freeMsg_ >= 0) {
    const std::int32_t id = freeMsg_;
    freeMsg_ = msgs_[static_cast<std::size_t>(id)].nextFree;
    msgs_[static_cast<std::size_t>(id)] = Message{};
    return id;
  }
  msgs_.emplace_back();
  return static_cast<std::int32_t>(msgs_.size() - 1);
}

std::int32_t Execution::orderEntry(std::int32_t laneId, std::int32_t peer) {
  Lane& lane = lanes_[static_cast<std::size_t>(laneId)];
  for (std::size_t i = 0; i < 2; ++i) {
    if (lane.orderPeer[i] == peer) {
      lane.orderNext = static_cast<std::uint8_t>(1 - i);
      return lane.orderId[i];
    }
  }
  const std::uint64_t key = (static_cast<std::uint64_t>(laneId) << 32) | static_cast<std::uint32_t>(peer);
  std::int32_t id = entryOf_.find(key);
  if (id < 0) id = newOrderEntry(key);
  // The entry leaving the cache is released when nothing is pending on it (drain skipped it while cached).
  const std::size_t slot = lane.orderNext;
  const std::int32_t old = lane.orderId[slot];
  lane.orderPeer[slot] = peer;
  lane.orderId[slot] = id;
  lane.orderNext = static_cast<std::uint8_t>(1 - slot);
  if (old >= 0) releaseIfIdle(old);
  return id;
}

void Execution::releaseIfIdle(std::int32_t entryId) {
  OrderEntry& e = entries_[static_cast<std::size_t>(entryId)];
  if (e.epochs.size() != 1 || e.epochs[0].undelivered != 0) return;
  const Lane& lane = lanes_[static_cast<std::size_t>(e.key >> 32)];
  if (lane.orderId[0] == entryId || lane.orderId[1] == entryId) return;
  entryOf_.erase(e.key);
  freeEntries_.push_back(entryId);
}

std::int32_t Execution::newOrderEntry(std::uint64_t key) {
  std::int32_t id;
  if (!freeEntries_.empty()) {
    id = freeEntries_.back();
    freeEntries_.pop_back();
  } else {
    id = static_cast<std::int32_t>(entries_.size());
    entries_.emplace_back();
  }
  OrderEntry& e = entries_[static_cast<std::size_t>(id)];
  e.key = key;
  e.first = 0;
  e.epochs.clear();
  e.epochs.emplace_back();
  entryOf_.insert(key, id);
  return id;
}

void Execution::drain(std::int32_t entryId) {
  OrderEntry& e = entries_[static_cast<std::size_t>(entryId)];
  std::size_t head = 0;
  while (head + 1 < e.epochs.size() && e.epochs[head].undelivered == 0 && e.epochs[head].arrived) ++head;
  if (head > 0) {
    // applySignal only wakes lanes; it never touches entries_, so `e` stays valid.
    const auto rank = static_cast<std::int32_t>(e.key & 0xFFFFFFFFU);
    for (std::size_t i = 0; i < head; ++i) applySignal(rank, e.epochs[i].sem, e.epochs[i].value);
    e.epochs.erase(e.epochs.begin(), e.epochs.begin() + static_cast<std::ptrdiff_t>(head));
    e.first += static_cast<std::uint32_t>(head);
  }
  releaseIfIdle(entryId);
}

void Execution::applySignal(std::int32_t target, std::int32_t sem, std::uint64_t value) {
  const std::int32_t rank = fold_.rep(target);
  const std::size_t slot =
      static_cast<std::size_t>(rank) * static_cast<std::size_t>(numSems_) + static_cast<std::size_t>(sem);
  sems_[slot] += value;
  std::int32_t* link = &waiters_[slot];
  while (*link >= 0) {
    Lane& w = lanes_[static_cast<std::size_t>(*link)];
    if (sems_[slot] >= w.op.value) {
      const std::int32_t id = *link;
      *link = w.nextWaiter;
      w.nextWaiter = -1;
      w.stage = Stage::kComplete;
      wake(id);
    } else {
      link = &w.nextWaiter;
    }
  }
}

void Execution::startMessage(std::int32_t msgId, std::int64_t now, std::uint64_t flowHash) {
  Message& m = msgs_[static_cast<std::size_t>(msgId)];
  m.start = now;
  result_.ranks[static_cast<std::size_t>(fold_.rep(m.src))].bytesSent += m.bytes;
  result_.bytesPut += m.bytes;
  const std::int32_t g1 = gpuOf_[static_cast<std::size_t>(m.src)];
  const std::int32_t g2 = gpuOf_[static_cast<std::size_t>(m.dst)];
  const std::int32_t* path = nullptr;
  std::size_t pathLen = 0;
  std::int32_t nic = -1;
  if (g1 != g2) {
    Lane& lane = lanes_[static_cast<std::size_t>(m.lane)];
    const Lane::CachedRoute* cached = nullptr;
    for (std::size_t i = 0; i < 2; ++i) {
      if (lane.routes[i].from == g1 && lane.routes[i].to == g2) {
        cached = &lane.routes[i];  // a fixed route: the router would give the same path again
        lane.routeNext = static_cast<std::uint8_t>(1 - i);
      }
    }
    if (cached == nullptr) {
      path_.clear();
      const std::int64_t latency = fold_.on() ? fold_.route(router_, *net_, g1, g2, path_)
                                              : router_.route(g1, g2, flowHash, net_->channelLoad().data(), path_);
      m.delay += latency;
      path = path_.data();
      pathLen = path_.size();
      nic = firstNic(path, pathLen);
      if (fold_.on() || router_.lastRouteFixed()) {
        Lane::CachedRoute& r = lane.routes[lane.routeNext];
        lane.routeNext = static_cast<std::uint8_t>(1 - lane.routeNext);
        r.from = g1;
        r.to = g2;
        r.latency = latency;
        r.nic = nic;
        r.channels.assign(path_.begin(), path_.end());
      }
    } else {
      m.delay += cached->latency;
      path = cached->channels.data();
      pathLen = cached->channels.size();
      nic = cached->nic;
    }
    m.delay += initiation_->cost(lane.initiation).extraLatency.picoseconds();
    if (m.kind != MsgKind::kSync) {
      // A transfer that finds its NIC busy enters the network when its slot comes.
      const std::int64_t slot = initiation_->nicSlot(nic, lane.initiation, now);
      if (slot > now) {
        if (m.kind == MsgKind::kSignal || pathLen == 0 || m.wire == 0) {
          m.delay += slot - now;
        } else {
          m.path.assign(path, path + pathLen);
          queue_.push(slot, EventKind::kFlowStart, msgId);
          return;
        }
      }
    }
  } else if (m.kind != MsgKind::kSignal) {
    m.delay += costPs(m.bytes, params_.copyBandwidth);  // same GPU: a local copy
  }
  enterNetwork(msgId, now, path, pathLen);
}

std::int32_t Execution::firstNic(const std::int32_t* path, std::size_t pathLen) const {
  for (std::size_t i = 0; i < pathLen; ++i) {
    const topo::Link& l = fabric_.link(path[i] / 2);
    const std::int32_t to = (path[i] % 2) == 0 ? l.b : l.a;
    if (fabric_.node(to).kind == topo::NodeKind::kNic) return to;
  }
  return -1;
}

void Execution::enterNetwork(std::int32_t msgId, std::int64_t now, const std::int32_t* path, std::size_t pathLen) {
  Message& m = msgs_[static_cast<std::size_t>(msgId)];
  m.start = now;
  if (m.kind == MsgKind::kSignal && pathLen > 0 && m.wire > 0) {
    // A standalone signal is a few bytes: it does not enter the max-min sharing (where it would couple the
    // components of unrelated transfers for a fraction of a nanosecond); it takes the latency plus its
    // serialization at the narrowest channel of its path, and its bytes are counted on every channel.
    double narrowest = net_->capacity(path[0]);
    for (std::size_t i = 0; i < pathLen; ++i) {
      narrowest = std::min(narrowest, net_->capacity(path[i]));
      net_->addBytes(path[i], m.wire);
    }
    m.delay += transferPs(static_cast<double>(m.wire), narrowest);
    queue_.push(now + m.delay, EventKind::kDeliver, msgId);
    return;
  }
  if (pathLen == 0 || m.wire == 0) {
    queue_.push(now + m.delay, EventKind::kDeliver, msgId);
    return;
  }
  ++result_.flows;
  net_->start(now, path, pathLen, m.wire, static_cast<std::uint32_t>(msgId));
  result_.peakActiveFlows = std::max(result_.peakActiveFlows, net_->activeFlows());
  scheduleRecompute(now);
}

void Execution::deliver(std::int32_t msgId, std::int64_t now) {
  Message& m = msgs_[static_cast<std::size_t>(msgId)];
  lastDelivery_ = std::max(lastDelivery_, now);
  if (!jobOfRank_.empty()) {
    std::int64_t& f = jobs_[static_cast<std::size_t>(jobOfRank_[static_cast<std::size_t>(m.dst)])].finish;
    f = std::max(f, now);
  }
  result_.ranks[static_cast<std::size_t>(fold_.rep(m.dst))].bytesReceived += m.bytes;
  result_.bytesDelivered += m.bytes;
  if (tracing_) {
    TraceEvent t;
    t.kind = TraceEvent::Kind::kFlow;
    t.rank = m.src;
    t.lane = lanes_[static_cast<std::size_t>(m.lane)].index;
    t.peer = m.dst;
    t.op = m.op;
    t.begin = core::Time::ps(m.start);
    t.end = core::Time::ps(now);
    t.bytes = m.wire;
    options_.trace(t);
  }
  const std::int32_t laneId = m.lane;
  Lane& lane = lanes_[static_cast<std::size_t>(laneId)];
  const MsgKind kind = m.kind;
  const std::int32_t entry = m.entry;
  const std::uint32_t epoch = m.epoch;
  const bool hasSignal = m.hasSignal;
  m.nextFree = freeMsg_;
  freeMsg_ = msgId;
  if (kind == MsgKind::kSync) {
    if (--lane.syncPending == 0 && lane.stage == Stage::kBlockedSync) {
      lane.stage = lane.afterSync;
      wake(laneId);
    }
    return;
  }
  if (kind == MsgKind::kData || kind == MsgKind::kGet) {
    if (--lane.outstanding == 0 && lane.stage == Stage::kBlockedFlush) {
      lane.stage = Stage::kComplete;
      wake(laneId);
    }
  }
  if (entry >= 0) {
    OrderEntry& e = entries_[static_cast<std::size_t>(entry)];
    OrderEntry::Epoch& ep = e.epochs[epoch - e.first];
    if (kind == MsgKind::kData) --ep.undelivered;
    if (kind == MsgKind::kSignal || hasSignal) ep.arrived = true;
    drain(entry);
  }
}

void Execution::traceOp(const Lane& lane, std::int64_t now) {
  if (!tracing_) return;
  TraceEvent t;
  t.kind = TraceEvent::Kind::kOp;
  t.rank = lane.rank;
  t.lane = lane.index;
  t.peer = lane.op.peer;
  t.op = lane.op.code;
  t.begin = core::Time::ps(lane.opBegin);
  t.end = core::Time::ps(now);
  t.bytes = lane.op.bytes;
  options_.trace(t);
}

bool Execution::perform(std::int32_t laneId, std::int64_t now) {
  Lane& lane = lanes_[static_cast<std::size_t>(laneId)];
  const Op& op = lane.op;
  const std::uint64_t laneHash = (static_cast<std::uint64_t>(laneId) << 32);
  // Indirect ops: the simulator moves no payload, so it has no layout words; it takes op.bytes as given
  // (docs/simulator.md).
  const auto sendData = [&](std::int32_t peer, MsgKind kind, bool withSignal) {
    const std::int32_t id = newDataMessage(laneId, peer, kind, withSignal);
    startMessage(id, now, laneHash ^ lane.flowCounter++);
  };
  switch (op.code) {
    case OpCode::kPut:
    case OpCode::kPutReduce: {
      checkPeer(lane, op.peer, "target");
      if (op.sem >= 0) checkSem(lane, op.sem);
      sendData(op.peer, MsgKind::kData, op.sem >= 0);
      lane.lastIssue = now;
      return true;
    }
    case OpCode::kMulticast: {
      if (op.sem >= 0) checkSem(lane, op.sem);
      for (const std::int32_t r : op.ranks) checkPeer(lane, r, "multicast target");
      if (trees_.any() && op.ranks.size() > 1 && multicastInSwitch(laneId, now)) {
        lane.lastIssue = now;
        return true;
      }
      for (const std::int32_t r : op.ranks) sendData(r, MsgKind::kData, op.sem >= 0);
      lane.lastIssue = now;
      return true;
    }
    case OpCode::kGet: {
      checkPeer(lane, op.peer, "source");
      sendData(op.peer, MsgKind::kGet, false);
      lane.lastIssue = now;
      return true;
    }
    case OpCode::kSignal: {
      checkPeer(lane, op.peer, "target");
      checkSem(lane, op.sem);
      const std::int32_t id = newMessage();
      Message& m = msgs_[static_cast<std::size_t>(id)];
      m.kind = MsgKind::kSignal;
      m.op = op.code;
      m.lane = laneId;
      m.src = lane.rank;
      m.dst = op.peer;
      m.wire = params_.signalBytes;
      m.bytes = 0;
      m.entry = orderEntry(laneId, op.peer);
      OrderEntry& e = entries_[static_cast<std::size_t>(m.entry)];
      m.epoch = e.first + static_cast<std::uint32_t>(e.epochs.size() - 1);
      e.epochs.back().closed = true;
      e.epochs.back().sem = op.sem;
      e.epochs.back().value = op.value;
      e.epochs.emplace_back();
      lane.lastIssue = now;
      startMessage(id, now, laneHash ^ lane.flowCounter++);
      return true;
    }
    case OpCode::kWait: {
      checkSem(lane, op.sem);
      const std::size_t slot =
          static_cast<std::size_t>(lane.rank) * static_cast<std::size_t>(numSems_) + static_cast<std::size_t>(op.sem);
      if (sems_[slot] >= op.value) return true;
      lane.stage = Stage::kBlockedWait;
      lane.nextWaiter = waiters_[slot];
      waiters_[slot] = laneId;
      return false;
    }
    case OpCode::kFlush:
      if (lane.outstanding == 0) return true;
      lane.stage = Stage::kBlockedFlush;
      return false;
    case OpCode::kReduce: {
      if (op.srcs.empty()) malformed(lane, "a reduce needs at least one source");
      lane.syncPending = 0;
      for (const core::Addr& a : op.srcs) checkPeer(lane, self(lane, a.rank), "source");
      if (trees_.any() && op.srcs.size() > 1 && reduceInSwitch(laneId, now)) {
        lane.afterSync = Stage::kReduceCompute;
        lane.stage = Stage::kBlockedSync;
        return false;
      }
      for (const core::Addr& a : op.srcs) {
        const std::int32_t r = self(lane, a.rank);
        if (r == lane.rank) continue;
        const std::int32_t id = newMessage();
        Message& m = msgs_[static_cast<std::size_t>(id)];
        m.kind = MsgKind::kSync;
        m.op = op.code;
        m.lane = laneId;
        m.src = r;
        m.dst = lane.rank;
        m.bytes = op.bytes;
        m.wire = op.bytes;
        ++lane.syncPending;
        startMessage(id, now, laneHash ^ lane.flowCounter++);
      }
      lane.stage = Stage::kReduceCompute;
      if (lane.syncPending == 0) return false;  // step() continues with the compute at once
      lane.afterSync = Stage::kReduceCompute;
      lane.stage = Stage::kBlockedSync;
      return false;
    }
    case OpCode::kCopy: {
      const std::int32_t from = self(lane, op.src.rank);
      const std::int32_t to = self(lane, op.dst.rank);
      checkPeer(lane, from, "source");
      checkPeer(lane, to, "destination");
      if (from == to) {
        const std::int64_t d = costPs(op.bytes, params_.copyBandwidth);
        if (d == 0) return true;
        lane.stage = Stage::kComplete;
        queue_.push(now + d, EventKind::kLaneRun, laneId);
        return false;
      }
      const std::int32_t id = newMessage();
      Message& m = msgs_[static_cast<std::size_t>(id)];
      m.kind = MsgKind::kSync;
      m.op = op.code;
      m.lane = laneId;
      m.src = from;
      m.dst = to;
      m.bytes = op.bytes;
      m.wire = op.bytes;
      lane.syncPending = 1;
      lane.afterSync = Stage::kComplete;
      lane.stage = Stage::kBlockedSync;
      startMessage(id, now, laneHash ^ lane.flowCounter++);
      return false;
    }
  }
  malformed(lane, "unknown op code " + std::to_string(static_cast<int>(op.code)));
}

std::int32_t Execution::newDataMessage(std::int32_t laneId, std::int32_t peer, MsgKind kind, bool withSignal) {
  const std::int32_t id = newMessage();
  Lane& lane = lanes_[static_cast<std::size_t>(laneId)];
  const Op& op = lane.op;
  Message& m = msgs_[static_cast<std::size_t>(id)];
  m.kind = kind;
  m.op = op.code;
  m.lane = laneId;
  m.bytes = op.bytes;
  // An LL put carries a flag beside every data word: NCCL's LL lines are half data (docs/simulator.md).
  m.wire = op.protocol == core::Protocol::kLL ? 2 * op.bytes : op.bytes;
  m.src = kind == MsgKind::kGet ? peer : lane.rank;
  m.dst = kind == MsgKind::kGet ? lane.rank : peer;
  if (kind == MsgKind::kData) {
    if (op.code == OpCode::kPutReduce) m.delay = costPs(op.bytes, params_.reduceBandwidth);
    m.entry = orderEntry(laneId, peer);
    OrderEntry& e = entries_[static_cast<std::size_t>(m.entry)];
    ++e.epochs.back().undelivered;
    m.epoch = e.first + static_cast<std::uint32_t>(e.epochs.size() - 1);
    if (withSignal) {
      m.hasSignal = true;
      e.epochs.back().closed = true;
      e.epochs.back().sem = op.sem;
      e.epochs.back().value = op.value;
      e.epochs.emplace_back();
    }
  }
  ++lane.outstanding;
  return id;
}

bool Execution::routeAll(Lane& lane, std::int32_t src, const std::vector<std::int32_t>& peers, bool inbound) {
  treePaths_.clear();
  treeLatency_.clear();
  const std::int32_t g = gpuOf_[static_cast<std::size_t>(src)];
  const std::uint64_t laneHash = static_cast<std::uint64_t>(&lane - lanes_.data()) << 32;
  for (const std::int32_t peer : peers) {
    const std::int32_t other = gpuOf_[static_cast<std::size_t>(peer)];
    if (other == g) return false;
    const std::int64_t latency = router_.route(inbound ? other : g, inbound ? g : other, laneHash ^ lane.flowCounter++,
                                               net_->channelLoad().data(), treePaths_.channels);
    treePaths_.ends.push_back(treePaths_.channels.size());
    treeLatency_.push_back(latency);
  }
  return true;
}

bool Execution::multicastInSwitch(std::int32_t laneId, std::int64_t now) {
  Lane& lane = lanes_[static_cast<std::size_t>(laneId)];
  if (!routeAll(lane, lane.rank, lane.op.ranks, false) || !trees_.multicast(treePaths_, treeChannels_)) return false;
  std::int32_t head = -1;
  std::int32_t prev = -1;
  for (std::size_t i = 0; i < lane.op.ranks.size(); ++i) {
    const std::int32_t id = newDataMessage(laneId, lane.op.ranks[i], MsgKind::kData, lane.op.sem >= 0);
    msgs_[static_cast<std::size_t>(id)].delay += treeLatency_[i];
    if (prev >= 0) msgs_[static_cast<std::size_t>(prev)].nextRider = id;
    if (head < 0) head = id;
    prev = id;
  }
  startTree(head, now, lane);
  return true;
}

bool Execution::reduceInSwitch(std::int32_t laneId, std::int64_t now) {
  Lane& lane = lanes_[static_cast<std::size_t>(laneId)];
  treePeers_.clear();
  bool withSelf = false;
  for (const core::Addr& a : lane.op.srcs) {
    const std::int32_t r = self(lane, a.rank);
    if (r == lane.rank) {
      withSelf = true;
    } else {
      treePeers_.push_back(r);
    }
  }
  if (treePeers_.size() < 2 && !(withSelf && !treePeers_.empty())) return false;
  if (!routeAll(lane, lane.rank, treePeers_, true) || !trees_.reduce(treePaths_, withSelf, treeChannels_)) {
    return false;
  }
  std::int32_t head = -1;
  std::int32_t prev = -1;
  for (std::size_t i = 0; i < treePeers_.size(); ++i) {
    const std::int32_t id = newMessage();
    Message& m = msgs_[static_cast<std::size_t>(id)];
    m.kind = MsgKind::kSync;
    m.op = lane.op.code;
    m.lane = laneId;
    m.src = treePeers_[i];
    m.dst = lane.rank;
    m.bytes = lane.op.bytes;
    m.wire = lane.op.bytes;
    m.delay = treeLatency_[i];
    if (prev >= 0) msgs_[static_cast<std::size_t>(prev)].nextRider = id;
    if (head < 0) head = id;
    prev = id;
  }
  lane.syncPending = static_cast<std::uint32_t>(treePeers_.size());
  lane.switchReduced = true;
  startTree(head, now, lane);
  return true;
}

void Execution::startTree(std::int32_t head, std::int64_t now, const Lane& lane) {
  const std::int64_t extra = initiation_->cost(lane.initiation).extraLatency.picoseconds();
  for (std::int32_t id = head; id >= 0; id = msgs_[static_cast<std::size_t>(id)].nextRider) {
    Message& m = msgs_[static_cast<std::size_t>(id)];
    m.start = now;
    m.delay += extra;
    result_.ranks[static_cast<std::size_t>(m.src)].bytesSent += m.bytes;
    result_.bytesPut += m.bytes;
  }
  Message& h = msgs_[static_cast<std::size_t>(head)];
  if (h.kind != MsgKind::kSync) {
    const std::int64_t slot =
        initiation_->nicSlot(firstNic(treeChannels_.data(), treeChannels_.size()), lane.initiation, now);
    if (slot > now) {
      h.path.assign(treeChannels_.begin(), treeChannels_.end());
      queue_.push(slot, EventKind::kFlowStart, head);
      return;
    }
  }
  enterNetwork(head, now, treeChannels_.data(), treeChannels_.size());
}

void Execution::step(std::int32_t laneId, std::int64_t now) {
  for (;;) {
    Lane& lane = lanes_[static_cast<std::size_t>(laneId)];
    switch (lane.stage) {
      case Stage::kFetch:
        if (!lane.cursor->next(lane.op)) {
          lane.stage = Stage::kDone;
          lane.finish = now;
          lane.cursor.reset();
          RankStats& rs = result_.ranks[static_cast<std::size_t>(lane.rank)];
          rs.finish = std::max(rs.finish, core::Time::ps(now));
          ++doneLanes_;
          return;
        }
        ++lane.opIndex;
        ++result_.ops;
        lane.switchReduced = false;
        if (!jobOfRank_.empty()) remapRanks(lane);
        lane.opBegin = now;
        lane.stage = Stage::kStart;
        [[fallthrough]];
      case Stage::kStart: {
        lane.stage = Stage::kIssue;
        if (isNetworkOp(lane.op.code)) {
          const std::int64_t at = initiation_->issueAt(lane.rank, lane.initiation, lane.op, lane.lastIssue, now);
          if (at > now) {
            queue_.push(at, EventKind::kLaneRun, laneId);
            return;
          }
        }
        [[fallthrough]];
      }
      case Stage::kIssue:
        lane.stage = Stage::kFetch;
        if (perform(laneId, now)) {
          traceOp(lanes_[static_cast<std::size_t>(laneId)], now);
          continue;
        }
        if (lanes_[static_cast<std::size_t>(laneId)].stage != Stage::kReduceCompute) return;
        continue;
      case Stage::kReduceCompute: {
        if (lane.op.bytes != reduceMemoBytes_) {  // lock-step reductions repeat one size
          reduceMemoBytes_ = lane.op.bytes;
          reduceMemoPs_ = costPs(lane.op.bytes, params_.reduceBandwidth);
        }
        std::int64_t d = lane.switchReduced ? 0 : reduceMemoPs_;  // the switch reduced at line rate
        // Streaming: the arithmetic ran while the sources were read; only what is left of it remains.
        if (params_.reduceStreams) d = std::max<std::int64_t>(0, d - (now - lane.opBegin));
        lane.stage = Stage::kReduceWrite;
        if (d > 0) {
          queue_.push(now + d, EventKind::kLaneRun, laneId);
          return;
        }
        continue;
      }
      case Stage::kReduceWrite: {
        const std::int32_t to = self(lane, lane.op.dst.rank);
        checkPeer(lane, to, "destination");
        lane.stage = Stage::kComplete;
        if (to == lane.rank) continue;
        const std::int32_t id = newMessage();
        Message& m = msgs_[static_cast<std::size_t>(id)];
        m.kind = MsgKind::kSync;
        m.op = lane.op.code;
        m.lane = laneId;
        m.src = lane.rank;
        m.dst = to;
        m.bytes = lane.op.bytes;
        m.wire = lane.op.bytes;
        lane.syncPending = 1;
        lane.afterSync = Stage::kComplete;
        lane.stage = Stage::kBlockedSync;
        startMessage(id, now, (static_cast<std::uint64_t>(laneId) << 32) ^ lane.flowCounter++);
        return;
      }
      case Stage::kComplete:
        traceOp(lane, now);
        lane.stage = Stage::kFetch;
        continue;
      case Stage::kBlockedWait:
      case Stage::kBlockedFlush:
      case Stage::kBlockedSync:
      case Stage::kDone:
        return;
    }
  }
}

[[noreturn]] void Execution::deadlock(std::int64_t now) const {
  std::string msg = "the simulation deadlocked at " + std::to_string(core::Time::ps(now).microseconds()) +
                    " us: no events left but lanes are unfinished:";
  std::size_t listed = 0;
  std::size_t stuck = 0;
  for (const Lane& lane : lanes_) {
    if (lane.stage == Stage::kDone) continue;
    ++stuck;
    if (listed >= 8) continue;
    ++listed;
    msg += "\n  rank " + std::to_string(lane.rank) + " lane " + std::to_string(lane.index) + " op " +
           std::to_string(lane.opIndex - 1) + " (" + std::string(core::opCodeName(lane.op.code)) + "): ";
    switch (lane.stage) {
      case Stage::kBlockedWait: {
        const std::size_t slot = static_cast<std::size_t>(lane.rank) * static_cast<std::size_t>(numSems_) +
                                 static_cast<std::size_t>(lane.op.sem);
        msg += "waits for semaphore " + std::to_string(lane.op.sem) + " >= " + std::to_string(lane.op.value) +
               " (current " + std::to_string(sems_[slot]) + ")";
        break;
      }
      case Stage::kBlockedFlush:
        msg += "flush waits for " + std::to_string(lane.outstanding) + " transfers";
        break;
      case Stage::kBlockedSync:
        msg += "waits for " + std::to_string(lane.syncPending) + " transfers of a synchronous op";
        break;
      default:
        msg += "not blocked (internal error)";
        break;
    }
  }
  if (stuck > listed) msg += "\n  ... and " + std::to_string(stuck - listed) + " more lanes";
  throw Error(ErrorCode::kInvalidProgram, msg);
}

Result Execution::run() {
  const auto wallStart = std::chrono::steady_clock::now();
  setUp();
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    queue_.push(jobs_[static_cast<std::size_t>(lanes_[i].job)].start, EventKind::kLaneRun,
                static_cast<std::int32_t>(i));
  }
  std::function<void(std::int32_t, double)> onRate;
  if (tracing_) {
    onRate = [this](std::int32_t ch, double util) {
      TraceEvent t;
      t.kind = TraceEvent::Kind::kLinkRate;
      t.channel = ch;
      t.begin = core::Time::ps(rateNow_);
      t.end = t.begin;
      t.value = util;
      options_.trace(t);
    };
  }
  std::int64_t now = 0;
  std::uint64_t events = 0;
  std::uint64_t nextWorkReport = kProgressWork;
  while (!queue_.empty() || !finishHeap_.empty()) {
    // Flow finishes live in finishHeap_ with the sequence numbers the queue would have given them; the next
    // event is the earlier of the two in (time, late, key) order.
    Event e;
    bool fromHeap = queue_.empty();
    if (!fromHeap && !finishHeap_.empty()) {
      bool late = false;
      const Event& q = queue_.peek(late);
      const auto& f = finishHeap_.top();
      fromHeap = f.time < q.time || (f.time == q.time && (late || f.key < q.key));
    }
    if (fromHeap) {
      const auto f = finishHeap_.pop();
      e.time = f.time;
      e.key = f.key;
      e.kind = EventKind::kFlowFinish;
      e.a = f.flow;
    } else {
      e = queue_.pop();
    }
    now = e.time;
    switch (e.kind) {
      case EventKind::kLaneRun:
        step(e.a, now);
        break;
      case EventKind::kFlowFinish: {
        const auto first = static_cast<std::int32_t>(net_->tagOf(e.a));
        net_->finish(e.a, now);
        scheduleRecompute(now);
        // The transfer's message and, for an in-switch tree, its riders: each after its own path latency.
        for (std::int32_t msgId = first; msgId >= 0;) {
          const std::int32_t next = msgs_[static_cast<std::size_t>(msgId)].nextRider;
          const std::int64_t at = now + msgs_[static_cast<std::size_t>(msgId)].delay;
          if (at == now) {
            deliver(msgId, now);
          } else {
            queue_.push(at, EventKind::kDeliver, msgId);
          }
          msgId = next;
        }
        break;
      }
      case EventKind::kDeliver:
        deliver(e.a, now);
        break;
      case EventKind::kFlowStart: {
        Message& m = msgs_[static_cast<std::size_t>(e.a)];
        const std::vector<std::int32_t> path = std::move(m.path);
        m.path.clear();
        enterNetwork(e.a, now, path.data(), path.size());
        break;
      }
      case EventKind::kRecompute:
        ++recomputeEvents_;
        recomputeScheduled_ = false;
        finishes_.clear();
        rateNow_ = now;
        net_->recompute(now, finishes_, tracing_ ? &onRate : nullptr);
        for (const auto& f : finishes_) finishHeap_.set(f.flow, f.time, queue_.takeKey());
        break;
    }
    if (!woken_.empty()) runWoken(now);
    if ((++events % kProgressEvery) == 0 || net_->solveWork() >= nextWorkReport) {
      nextWorkReport = net_->solveWork() + kProgressWork;
      if (options_.progress) options_.progress(core::Time::ps(now), events);
      if (options_.maxWallSeconds > 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count() >=
              options_.maxWallSeconds) {
        result_.stopped = true;
        break;
      }
    }
  }
  if (!result_.stopped && doneLanes_ != lanes_.size()) deadlock(now);
  if (fold_.on()) unfold(events);
  result_.events = events;
  result_.rateRecomputations = net_->recomputations();
  std::int64_t makespan = result_.stopped ? now : lastDelivery_;
  for (const Lane& lane : lanes_) {
    makespan = std::max(makespan, lane.finish);
    std::int64_t& f = jobs_[static_cast<std::size_t>(lane.job)].finish;
    f = std::max(f, lane.finish);
  }
  result_.time = core::Time::ps(makespan);
  for (const JobState& job : jobs_)
    result_.jobFinish.push_back(core::Time::ps(jobs_.size() > 1 ? job.finish : makespan));
  std::vector<NetworkModel::ChannelTotals> totals = net_->totals();
  if (fold_.on()) fold_.expand(totals);
  for (std::size_t c = 0; c < totals.size(); ++c) {
    if (totals[c].bytes == 0) continue;
    ChannelStats cs;
    cs.link = static_cast<std::int32_t>(c / 2);
    cs.direction = static_cast<int>(c % 2);
    cs.bytes = totals[c].bytes;
    cs.busy = core::Time::ps(totals[c].busy);
    const double capacity = net_->capacity(static_cast<std::int32_t>(c));
    cs.utilization =
        makespan > 0 ? static_cast<double>(cs.bytes) / (capacity * core::Time::ps(makespan).seconds()) : 0.0;
    result_.channels.push_back(cs);
  }
  result_.wallSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
  return std::move(result_);
}

}  // namespace

Result execute(const topo::Fabric& fabric, const SimParams& params, Router& router, const std::vector<Job>& jobs,
               const RunOptions& options) {
  if (options.symmetry) {
    try {
      Execution folded(fabric, params, router, jobs, options, true);
      return folded.run();
    } catch (const RankFold::Broken&) {
      // A route does not follow the Program's symmetry: simulate every rank.
    }
  }
  Execution exec(fabric, params, router, jobs, options, false);
  return exec.run();
}

}  // namespace copro::sim::detail
