// copro-perf's measurement core (perf_bench.hpp): rank teams, buffers, the timed loops of copro and of the
// --compare peers, result checking against a float64 reference, and nccl-tests' conventions (sizes,
// counts, bus-bandwidth factors, type names, the -a time column).
#include "perf_bench.hpp"

#include <signal.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <thread>

#include "copro/transport/inproc.hpp"

namespace copro::bench {

using collectives::CollectiveKind;

bool isRooted(CollectiveKind k) {
  return k == CollectiveKind::kBroadcast || k == CollectiveKind::kReduce || k == CollectiveKind::kGather ||
         k == CollectiveKind::kScatter;
}
bool hasOp(CollectiveKind k) {
  return k == CollectiveKind::kAllReduce || k == CollectiveKind::kReduceScatter || k == CollectiveKind::kReduce;
}

double busFactor(CollectiveKind k, int p) {
  switch (k) {
    case CollectiveKind::kAllReduce:
      return 2.0 * (p - 1) / p;
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll:
    case CollectiveKind::kGather:
    case CollectiveKind::kScatter:
      return static_cast<double>(p - 1) / p;
    default:
      return 1.0;
  }
}

std::uint64_t countFor(CollectiveKind k, std::uint64_t bytes, std::size_t esize, int p) {
  std::uint64_t elems = bytes / esize;
  switch (k) {
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll:
    case CollectiveKind::kGather:
    case CollectiveKind::kScatter:
      return elems / static_cast<std::uint64_t>(p);
    default:
      return elems;
  }
}

std::uint64_t bufferBytesPerRank(CollectiveKind k, std::uint64_t count, std::size_t esize, int p) {
  const auto ranks = static_cast<std::uint64_t>(p);
  const bool sendAll =
      k == CollectiveKind::kReduceScatter || k == CollectiveKind::kAllToAll || k == CollectiveKind::kScatter;
  const bool recvAll =
      k == CollectiveKind::kAllGather || k == CollectiveKind::kAllToAll || k == CollectiveKind::kGather;
  return (count * (sendAll ? ranks : 1) + count * (recvAll ? ranks : 1)) * esize;
}

std::string_view ncclTypeName(DataType t) {
  switch (t) {
    case DataType::kFloat16:
      return "half";
    case DataType::kFloat32:
      return "float";
    case DataType::kFloat64:
      return "double";
    case DataType::kFloat8E4M3:
      return "f8e4m3";
    case DataType::kFloat8E5M2:
      return "f8e5m2";
    default:
      return core::dataTypeName(t);  // int8 uint8 int32 uint32 int64 uint64 bfloat16: the same spelling
  }
}

const std::vector<DataType>& ncclTypeOrder() {
  static const std::vector<DataType> order{DataType::kInt8,     DataType::kUint8,      DataType::kInt32,
                                           DataType::kUint32,   DataType::kInt64,      DataType::kUint64,
                                           DataType::kFloat16,  DataType::kFloat32,    DataType::kFloat64,
                                           DataType::kBfloat16, DataType::kFloat8E4M3, DataType::kFloat8E5M2};
  return order;
}

const std::vector<ReduceOp>& ncclOpOrder() {
  static const std::vector<ReduceOp> order{ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMax, ReduceOp::kMin,
                                           ReduceOp::kAvg};
  return order;
}

double reportedTimeUs(const Result& r, int average) {
  switch (average) {
    case 0:
      return r.rank0TimeUs;
    case 2:
      return r.minTimeUs;
    case 3:
      return r.maxTimeUs;
    default:
      return r.avgTimeUs;
  }
}

std::vector<std::uint64_t> sweepSizes(const Options& o) {
  auto fail = [](const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); };
  if (o.minBytes == 0 || o.maxBytes == 0) {
    fail("-b/-e: a size of 0 bytes moves nothing; start at one element or more (e.g. -b 8)");
  }
  if (o.minBytes > o.maxBytes) {
    fail("-b " + std::to_string(o.minBytes) + " is larger than -e " + std::to_string(o.maxBytes) +
         ": the range is empty (swap them, or give -e at least -b)");
  }
  if (o.stepFactor <= 1 && o.stepBytes == 0) fail("-i 0 with -f 1: the size never grows (use -f 2 or -i 1M)");
  std::vector<std::uint64_t> sizes;
  for (std::uint64_t s = o.minBytes; s <= o.maxBytes;) {
    sizes.push_back(s);
    const std::uint64_t next = o.stepFactor > 1 ? s * o.stepFactor : s + o.stepBytes;
    if (next <= s || (o.stepFactor > 1 && next / o.stepFactor != s)) break;  // overflow
    s = next;
  }
  return sizes;
}

namespace {

/// Input value of element i on rank r: small numbers every type represents exactly.
double inputValue(DataType t, ReduceOp op, int r, std::uint64_t i) {
  if (op == ReduceOp::kProd)
    return ((static_cast<std::uint64_t>(r) + i) % 3 == 0 && core::isFloatingPoint(t)) ? -1.0 : 1.0;
  bool isUnsigned = t == DataType::kUint8 || t == DataType::kUint32 || t == DataType::kUint64;
  bool narrow8 = t == DataType::kFloat8E4M3 || t == DataType::kFloat8E5M2;
  double v = static_cast<double>((static_cast<std::uint64_t>(r) * 31 + i * 7) % (narrow8 ? 3 : 13));
  return isUnsigned ? v : v - (narrow8 ? 1 : 6);
}

/// Reference of a reduction of element i over all ranks, and the scale of its rounding error.
void reduceRef(const Options& o, int p, std::uint64_t i, double& value, double& sumAbs) {
  value = 0;
  sumAbs = 0;
  for (int r = 0; r < p; ++r) {
    double v = inputValue(o.dtype, o.op, r, i);
    sumAbs += std::fabs(v);
    if (r == 0) {
      value = v;
      continue;
    }
    switch (o.op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        value += v;
        break;
      case ReduceOp::kProd:
        value *= v;
        break;
      case ReduceOp::kMin:
        value = std::min(value, v);
        break;
      case ReduceOp::kMax:
        value = std::max(value, v);
        break;
    }
  }
  if (o.op == ReduceOp::kAvg) {
    value = core::isFloatingPoint(o.dtype) ? value / p : std::trunc(value / p);
  }
}

class ThreadTeam final : public Team {
 public:
  explicit ThreadTeam(int n)
      : n_(n),
        sync_(n),
        times_(static_cast<std::size_t>(n)),
        wrong_(static_cast<std::size_t>(n)),
        errors_(static_cast<std::size_t>(n)) {}

  [[nodiscard]] int size() const override { return n_; }
  [[nodiscard]] bool printer() const override { return true; }

  void forEachLocalRank(const std::function<void(int)>& fn) override {
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(n_));
    for (int r = 0; r < n_; ++r) threads.emplace_back([&fn, r] { fn(r); });
    for (auto& t : threads) t.join();
  }

  void barrier() override { sync_.arrive_and_wait(); }

  Result combine(int rank, double timeUs, std::uint64_t wrong, const std::string& error) override {
    const auto i = static_cast<std::size_t>(rank);
    times_[i] = timeUs;
    wrong_[i] = wrong;
    errors_[i] = error;
    sync_.arrive_and_wait();
    Result out;
    out.maxTimeUs = *std::max_element(times_.begin(), times_.end());
    out.minTimeUs = *std::min_element(times_.begin(), times_.end());
    double sum = 0;
    for (double t : times_) sum += t;
    out.avgTimeUs = sum / n_;
    out.timeUs = out.maxTimeUs;
    out.rank0TimeUs = times_.front();
    for (auto w : wrong_) out.wrong += w;
    for (const auto& e : errors_) {
      if (!e.empty() && out.error.empty()) {
        out.error = e;
        out.supported = false;
      }
    }
    // Nobody may overwrite the arrays before every rank read them.
    sync_.arrive_and_wait();
    return out;
  }

  double sum(int rank, double value) override {
    times_[static_cast<std::size_t>(rank)] = value;
    sync_.arrive_and_wait();
    double total = 0;
    for (double t : times_) total += t;
    sync_.arrive_and_wait();
    return total;
  }

 private:
  int n_;
  std::barrier<> sync_;
  std::vector<double> times_;
  std::vector<std::uint64_t> wrong_;
  std::vector<std::string> errors_;
};

/// Runs f unless an earlier step failed; turns exceptions into the rank's error text. Every rank
/// still reaches every Team call, so a failure on one rank never leaves the others in a mismatched
/// barrier.
template <typename F>
void guarded(std::string& error, F&& f) {
  if (!error.empty()) return;
  try {
    f();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "unknown error";
  }
}

}  // namespace

namespace {
volatile sig_atomic_t gInterrupt = 0;
extern "C" void onInterrupt(int sig) {
  gInterrupt = sig;
}
}  // namespace

void installInterruptHandlers() {
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  sa.sa_flags = SA_RESETHAND;  // a second signal takes the default action
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int interruptSignal() noexcept {
  return gInterrupt;
}

std::unique_ptr<Team> makeThreadTeam(int nranks) {
  return std::make_unique<ThreadTeam>(nranks);
}

/// One rank's send and receive buffers for one size, from the communicator when it offers memory
/// (shared memory for the shm backend) so every library runs on the same pages.
struct Bench::Buffers {
  Communicator* comm = nullptr;
  std::byte* send = nullptr;
  std::byte* recv = nullptr;
  std::size_t sendBytes = 0;
  std::size_t recvBytes = 0;
  bool fromComm = false;

  Buffers(Communicator& c, std::size_t s, std::size_t r, bool useComm) : comm(&c), sendBytes(s), recvBytes(r) {
    if (useComm) {
      try {
        send = static_cast<std::byte*>(c.allocate(s));
        recv = static_cast<std::byte*>(c.allocate(r));
        fromComm = send != nullptr && recv != nullptr;
      } catch (const Error&) {
        fromComm = false;
      }
      if (!fromComm) release();
    }
    if (!fromComm) {
      send = new std::byte[s];
      recv = new std::byte[r];
    }
  }
  ~Buffers() { release(); }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;

  void release() {
    if (fromComm) {
      if (send != nullptr) comm->deallocate(send);
      if (recv != nullptr) comm->deallocate(recv);
    } else {
      delete[] send;
      delete[] recv;
    }
    send = nullptr;
    recv = nullptr;
  }
};

Bench::Bench(Options o, Team& team, std::vector<Communicator> comms, std::vector<std::unique_ptr<Peer>> peers)
    : o_(std::move(o)), team_(team), comms_(std::move(comms)), peers_(std::move(peers)) {
  p_ = team_.size();
  esize_ = core::dataTypeSize(o_.dtype);
  peersPerRank_ = comms_.empty() ? 0 : peers_.size() / comms_.size();
}

Bench::~Bench() = default;

std::vector<std::string> Bench::peerNames() const {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < peersPerRank_; ++i) out.push_back(peers_[i]->name());
  return out;
}

std::vector<std::string> Bench::peerReasons() const {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < peersPerRank_; ++i) out.push_back(peers_[i]->unsupportedReason(o_.kind, o_.dtype, o_.op));
  return out;
}

std::uint64_t Bench::sendElems(std::uint64_t count) const {
  switch (o_.kind) {
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll:
    case CollectiveKind::kScatter:
      return count * static_cast<std::uint64_t>(p_);
    default:
      return count;
  }
}

std::uint64_t Bench::recvElems(std::uint64_t count) const {
  switch (o_.kind) {
    case CollectiveKind::kAllGather:
    case CollectiveKind::kAllToAll:
    case CollectiveKind::kGather:
      return count * static_cast<std::uint64_t>(p_);
    default:
      return count;
  }
}

Request Bench::launch(int local, const void* send, void* recv, std::uint64_t count, const std::string& algo) {
  auto& c = comms_[static_cast<std::size_t>(local)];
  CallOptions opts{algo};
  switch (o_.kind) {
    case CollectiveKind::kAllReduce:
      return c.allReduce(send, recv, count, o_.dtype, o_.op, opts);
    case CollectiveKind::kReduceScatter:
      return c.reduceScatter(send, recv, count, o_.dtype, o_.op, opts);
    case CollectiveKind::kAllGather:
      return c.allGather(send, recv, count, o_.dtype, opts);
    case CollectiveKind::kBroadcast:
      return c.broadcast(send, recv, count, o_.dtype, o_.root, opts);
    case CollectiveKind::kReduce:
      return c.reduce(send, recv, count, o_.dtype, o_.op, o_.root, opts);
    case CollectiveKind::kGather:
      return c.gather(send, recv, count, o_.dtype, o_.root, opts);
    case CollectiveKind::kScatter:
      return c.scatter(send, recv, count, o_.dtype, o_.root, opts);
    case CollectiveKind::kAllToAll:
      return c.allToAll(send, recv, count, o_.dtype, opts);
    default:
      throw Error(ErrorCode::kUnsupported, "copro-perf does not run this collective");
  }
}

void Bench::pointers(int r, Buffers& b, std::uint64_t count, bool inPlace, const void*& send, void*& recv) const {
  send = b.send;
  recv = b.recv;
  if (!inPlace) return;
  // In-place layouts follow NCCL.
  const std::uint64_t blk = count * esize_ * static_cast<std::uint64_t>(r);
  switch (o_.kind) {
    case CollectiveKind::kAllGather:
      send = b.recv + blk;
      break;
    case CollectiveKind::kReduceScatter:
      recv = b.send + blk;
      break;
    case CollectiveKind::kGather:
      send = b.recv + count * esize_ * static_cast<std::uint64_t>(o_.root);
      break;
    case CollectiveKind::kScatter:
      recv = b.send + count * esize_ * static_cast<std::uint64_t>(o_.root);
      break;
    default:
      send = b.recv;
      break;
  }
}

void Bench::fillInputs(int r, Buffers& b, std::uint64_t count, bool inPlace) const {
  const void* send = nullptr;
  void* recv = nullptr;
  pointers(r, b, count, inPlace, send, recv);
  std::memset(b.recv, 0, b.recvBytes);
  const std::uint64_t n = sendElems(count);
  // In-place inputs alias the output buffer; the cast only drops the const of the aliasing pointer.
  void* in = const_cast<void*>(send);  // NOLINT
  for (std::uint64_t i = 0; i < n; ++i) core::storeFromDouble(o_.dtype, in, i, inputValue(o_.dtype, o_.op, r, i));
}

std::uint64_t Bench::checkOutputs(int r, const void* recv, std::uint64_t count) const {
  std::uint64_t wrong = 0;
  const double eps = core::unitRoundoff(o_.dtype);
  auto cmp = [&](std::uint64_t idx, double expect, double scale) {
    double got = core::loadAsDouble(o_.dtype, recv, idx);
    double tol = (o_.op == ReduceOp::kMin || o_.op == ReduceOp::kMax) ? 0.0 : p_ * eps * scale;
    if (!(std::fabs(got - expect) <= tol)) ++wrong;
  };
  switch (o_.kind) {
    case CollectiveKind::kAllReduce:
    case CollectiveKind::kReduce:
      if (o_.kind == CollectiveKind::kReduce && r != o_.root) return 0;
      for (std::uint64_t i = 0; i < count; ++i) {
        double v = 0;
        double s = 0;
        reduceRef(o_, p_, i, v, s);
        cmp(i, v, s);
      }
      break;
    case CollectiveKind::kReduceScatter:
      for (std::uint64_t i = 0; i < count; ++i) {
        double v = 0;
        double s = 0;
        reduceRef(o_, p_, static_cast<std::uint64_t>(r) * count + i, v, s);
        cmp(i, v, s);
      }
      break;
    case CollectiveKind::kAllGather:
    case CollectiveKind::kGather:
      if (o_.kind == CollectiveKind::kGather && r != o_.root) return 0;
      for (int q = 0; q < p_; ++q) {
        for (std::uint64_t i = 0; i < count; ++i) {
          cmp(static_cast<std::uint64_t>(q) * count + i, inputValue(o_.dtype, o_.op, q, i), 0);
        }
      }
      break;
    case CollectiveKind::kBroadcast:
      for (std::uint64_t i = 0; i < count; ++i) cmp(i, inputValue(o_.dtype, o_.op, o_.root, i), 0);
      break;
    case CollectiveKind::kScatter:
      for (std::uint64_t i = 0; i < count; ++i) {
        cmp(i, inputValue(o_.dtype, o_.op, o_.root, static_cast<std::uint64_t>(r) * count + i), 0);
      }
      break;
    case CollectiveKind::kAllToAll:
      for (int q = 0; q < p_; ++q) {
        for (std::uint64_t i = 0; i < count; ++i) {
          cmp(static_cast<std::uint64_t>(q) * count + i,
              inputValue(o_.dtype, o_.op, q, static_cast<std::uint64_t>(r) * count + i), 0);
        }
      }
      break;
    default:
      break;
  }
  return wrong;
}

Result Bench::runCopro(int local, Buffers& b, std::uint64_t count, const std::string& algo, bool inPlace) {
  const int r = comms_[static_cast<std::size_t>(local)].rank();
  const void* send = nullptr;
  void* recv = nullptr;
  pointers(r, b, count, inPlace, send, recv);
  std::uint64_t wrong = 0;
  double timeUs = 0;
  std::string err;
  auto once = [&] {
    if (const int sig = interruptSignal(); sig != 0) {
      throw Error(ErrorCode::kAborted, std::string("interrupted by ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
    }
    launch(local, send, recv, count, algo).wait().throwIfError();
  };
  // A failed copro call ends an MPI job at once (Team::coproFailed); threads meet at the next barrier.
  auto step = [&](auto&& f) {
    guarded(err, f);
    if (!err.empty()) team_.coproFailed(r, err);
  };
  if (o_.check != 0) {
    step([&] { fillInputs(r, b, count, inPlace); });
    team_.barrier();
    step([&] {
      once();
      wrong = checkOutputs(r, recv, count);
    });
  }
  step([&] {
    for (int i = 0; i < o_.warmup; ++i) once();
  });
  team_.barrier();
  step([&] {
    auto t0 = std::chrono::steady_clock::now();
    const int calls = o_.iters * std::max(1, o_.aggIters);
    for (int i = 0; i < calls; ++i) once();
    timeUs =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / std::max(1, calls);
  });
  if (!inPlace) {
    if (local == 0) algorithm_ = comms_[static_cast<std::size_t>(local)].lastProgramName();
    if (!o_.trace.empty()) traceOnce(local, r, once, err);
  }
  return team_.combine(r, err.empty() ? timeUs : 0, wrong, err);
}

namespace {
double nowNs() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double toNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::nano>(t.time_since_epoch()).count();
}
}  // namespace

void Bench::traceOnce(int local, int r, const std::function<void()>& once, std::string& err) {
  // An extra call, outside the timed loop: recording costs a lock per op, which the timing must not see.
  const bool perOp = o_.transport == "inproc";
  team_.barrier();
  if (perOp && local == 0) {
    transport::setInprocOpObserver([this](const transport::InprocOpTiming& t) {
      TracedOp op;
      op.rank = t.rank;
      op.lane = t.lane;
      op.index = t.index;
      op.count = t.count;
      op.op = t.op->code;
      op.peer = t.op->peer;
      op.bytes = t.op->bytes;
      op.beginNs = toNs(t.begin);
      op.endNs = toNs(t.end);
      std::lock_guard<std::mutex> lock(traceMutex_);
      traced_.push_back(op);
    });
  }
  team_.barrier();  // the observer is installed only while no call runs
  double begin = 0;
  double end = 0;
  guarded(err, [&] {
    begin = nowNs();
    once();
    end = nowNs();
  });
  team_.barrier();
  if (perOp && local == 0) transport::setInprocOpObserver(nullptr);
  // Every rank's call slice, summed onto the printing process (the other ranks add zeros).
  for (int q = 0; q < p_; ++q) {
    const double qb = team_.sum(r, q == r ? begin : 0.0);
    const double qe = team_.sum(r, q == r ? end : 0.0);
    if (local == 0 && team_.printer()) {
      TracedOp call;
      call.rank = q;
      call.beginNs = qb;
      call.endNs = qe;
      std::lock_guard<std::mutex> lock(traceMutex_);
      traced_.push_back(call);
    }
  }
}

Result Bench::runPeer(int local, Peer& peer, Buffers& b, std::uint64_t count) {
  const int r = comms_[static_cast<std::size_t>(local)].rank();
  PeerCall call;
  call.kind = o_.kind;
  call.send = b.send;
  call.recv = b.recv;
  call.count = count;
  call.dtype = o_.dtype;
  call.op = o_.op;
  call.root = o_.root;
  std::uint64_t wrong = 0;
  double timeUs = 0;
  std::string err = peer.unsupportedReason(o_.kind, o_.dtype, o_.op);
  const bool supported = err.empty();
  if (o_.check != 0) {
    guarded(err, [&] { fillInputs(r, b, count, false); });
    team_.barrier();
    guarded(err, [&] {
      peer.run(call);
      wrong = checkOutputs(r, Peer::output(call, r), count);
    });
  }
  guarded(err, [&] {
    for (int i = 0; i < o_.warmup; ++i) peer.run(call);
  });
  team_.barrier();
  guarded(err, [&] {
    auto t0 = std::chrono::steady_clock::now();
    const int calls = o_.iters * std::max(1, o_.aggIters);
    for (int i = 0; i < calls; ++i) peer.run(call);
    timeUs =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / std::max(1, calls);
  });
  Result res = team_.combine(r, err.empty() ? timeUs : 0, wrong, supported ? err : std::string());
  if (!supported) res.supported = false;
  return res;
}

void Bench::setType(DataType dtype, ReduceOp op) {
  o_.dtype = dtype;
  o_.op = op;
  esize_ = core::dataTypeSize(dtype);
}

SizeResult Bench::runSize(std::uint64_t count, const std::string& algo) {
  SizeResult out;
  out.peers.resize(peersPerRank_);
  const std::size_t sendBytes = std::max<std::uint64_t>(sendElems(count) * esize_, 1);
  const std::size_t recvBytes = std::max<std::uint64_t>(recvElems(count) * esize_, 1);
  team_.forEachLocalRank([&](int local) {
    Buffers b(comms_[static_cast<std::size_t>(local)], sendBytes, recvBytes, o_.buffers == "comm");
    SizeResult mine;
    mine.outOfPlace = runCopro(local, b, count, algo, false);
    mine.inPlace = runCopro(local, b, count, algo, true);
    for (std::size_t i = 0; i < peersPerRank_; ++i) {
      mine.peers.push_back(runPeer(local, *peers_[static_cast<std::size_t>(local) * peersPerRank_ + i], b, count));
    }
    // Every rank holds the combined figures; local rank 0 (global rank 0 on the printing process) keeps them.
    if (local == 0) out = std::move(mine);
  });
  out.algorithm = algorithm_;
  out.trace = std::move(traced_);
  traced_.clear();
  return out;
}

}  // namespace copro::bench
