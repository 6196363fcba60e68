#include "copro/collectives/communicator.hpp"
#include "copro/collectives/transform.hpp"

#include <algorithm>
#include <cstring>
#include <list>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "copro/collectives/planner.hpp"
#include "copro/core/log.hpp"
#include "copro/core/reduce.hpp"
#include "copro/core/validator.hpp"

namespace copro::collectives {

using core::CallBuffers;
using core::DataType;
using core::Error;
using core::ErrorCode;
using core::ReduceOp;
using core::Status;

// ---------------------------------------------------------------------------------------------------------------
// Request

/// The communicator's sticky asynchronous error (Communicator::asyncError): the first failure of one of its
/// calls that leaves it unusable. Shared by the Communicator and its Requests, which may outlive it.
struct AsyncErrorSink {
  std::mutex mu;
  Status first;

  /// Errors of one call's arguments or usage leave the communicator usable; the others do not.
  static bool fatal(ErrorCode code) {
    return code == ErrorCode::kTimeout || code == ErrorCode::kRemoteError || code == ErrorCode::kAborted ||
           code == ErrorCode::kSystemError || code == ErrorCode::kInternal;
  }
  void record(const Status& s) {
    if (s.ok() || !fatal(s.code())) return;
    std::lock_guard<std::mutex> lock(mu);
    if (first.ok()) first = s;
  }
  Status get() {
    std::lock_guard<std::mutex> lock(mu);
    return first;
  }
};

struct Request::State {
  std::shared_ptr<AsyncErrorSink> sink;  // the communicator's; null for requests that never started
  std::unique_ptr<core::CallHandle> handle;
  std::shared_ptr<const core::ProgramSource> program;  // kept alive while the call runs
  CallBuffers buffers;
  std::vector<std::uint64_t> checkOutput;  // storage of the call-check all-gather
  std::shared_ptr<const void> keepAlive;   // a replayed CallGraph's Programs and buffers
  Status status;
  bool done = false;
};

Request::Request(Request&&) noexcept = default;
Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    if (state_ && !state_->done) (void)wait();
    state_ = std::move(other.state_);
  }
  return *this;
}
Request::~Request() {
  if (state_ && !state_->done) (void)wait();
}

Status Request::wait() {
  if (!state_) return Status(ErrorCode::kInvalidUsage, "wait() on an empty Request");
  if (!state_->done) {
    state_->status = state_->handle ? state_->handle->wait() : Status();
    if (state_->sink) state_->sink->record(state_->status);
    state_->done = true;
    state_->handle.reset();
  }
  return state_->status;
}

bool Request::test() {
  if (!state_) return true;
  if (state_->done) return true;
  bool done = false;
  Status s = state_->handle ? state_->handle->test(done) : Status();
  if (!s.ok()) {
    state_->status = s;
    if (state_->sink) state_->sink->record(s);
    done = true;
  }
  if (done) {
    state_->done = true;
    state_->handle.reset();
  }
  return done;
}

namespace {

Request failedRequest(Status s) {
  auto st = std::make_shared<Request::State>();
  st->status = std::move(s);
  st->done = true;
  return Request(st);
}

}  // namespace

Request Request::finished(Status status) {
  return failedRequest(std::move(status));
}

// ---------------------------------------------------------------------------------------------------------------
// Communicator::Impl

struct Communicator::Impl {
  std::unique_ptr<core::Executor> exec;
  std::shared_ptr<AsyncErrorSink> asyncErrors = std::make_shared<AsyncErrorSink>();
  core::Config config;
  std::vector<int> nodeOfRank;
  core::Initiation scaleUpInitiation = core::Initiation::kDevice;  ///< parsed once from config
  core::Initiation scaleOutInitiation = core::Initiation::kDevice;
  std::uint64_t seq = 0;

  struct CacheEntry {
    CollectiveArgs args;
    std::string algo;
    std::shared_ptr<const core::ProgramSource> program;
  };
  std::list<CacheEntry> cache;  // most recently used first
  std::unordered_multimap<std::size_t, std::list<CacheEntry>::iterator> cacheIndex;
  std::uint64_t cacheHits = 0;
  std::string lastProgram;

  /// One recorded call of a capture (CallGraph).
  struct Captured {
    std::shared_ptr<const core::ProgramSource> program;
    CallBuffers buffers;
  };
  bool capturing = false;
  std::vector<Captured> captured;
  /// exec->loadStoreDomains(), asked once: it does not change while the executor lives.
  std::vector<std::vector<std::int32_t>> domains;
  std::uint64_t llCapacity = 0;  ///< exec->llMaxBytes(), asked once

  bool inGroup = false;
  std::vector<P2POp> groupOps;
  std::vector<void*> groupBufs;
  DataType groupDtype = DataType::kUint8;

  CollectiveArgs baseArgs(CollectiveKind kind) const {
    CollectiveArgs a;
    a.kind = kind;
    a.nranks = exec->size();
    a.nodeOfRank = nodeOfRank;
    a.chunkBytes = config.chunkBytes;
    a.llMaxBytes = std::min(config.llMaxBytes, llCapacity);
    a.pxnLevel = config.pxn;
    a.scaleUpInitiation = scaleUpInitiation;
    a.scaleOutInitiation = scaleOutInitiation;
    if (domains.size() > 1) a.loadStoreDomains = domains;
    return a;
  }

  std::shared_ptr<const core::ProgramSource> programFor(const CollectiveArgs& args, const std::string& forced) {
    std::size_t h = hashArgs(args) ^ (std::hash<std::string>{}(forced)*31);
    auto range = cacheIndex.equal_range(h);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second->args == args && it->second->algo == forced) {
        cache.splice(cache.begin(), cache, it->second);
        ++cacheHits;
        return cache.front().program;
      }
    }
    Plan p = plan(args, costModelFrom(config), forced, config.algo);
    COPRO_LOG(Info, Plan,
              collectiveName(args.kind) << " count " << args.count << " on " << args.nranks
                                        << " ranks: " << p.chosen->name << " (" << p.why << ")");
    auto program = applyTransforms(p.chosen->build(args), args);
    if (config.validate && args.kind != CollectiveKind::kSendRecv) core::requireValidProgram(*program);
    if (config.programCacheEntries > 0) {
      cache.push_front(CacheEntry{args, forced, program});
      cacheIndex.emplace(h, cache.begin());
      while (cache.size() > config.programCacheEntries) {
        auto last = std::prev(cache.end());
        std::size_t lh = hashArgs(last->args) ^ (std::hash<std::string>{}(last->algo) * 31);
        auto r = cacheIndex.equal_range(lh);
        for (auto it = r.first; it != r.second; ++it) {
          if (it->second == last) {
            cacheIndex.erase(it);
            break;
          }
        }
        cache.pop_back();
      }
    }
    return program;
  }

  /// COPRO_CHECK_CALLS: all-gathers a signature of the call and compares. Returns an error naming the
  /// first rank whose call differs from rank 0's.
  Status checkCall(const CollectiveArgs& args, std::uint64_t callSeq) {
    constexpr int kWords = 8;
    std::uint64_t countsHash = 1469598103934665603ULL;
    for (auto c : args.counts) countsHash = (countsHash ^ c) * 1099511628211ULL;
    std::uint64_t mine[kWords] = {callSeq,
                                  static_cast<std::uint64_t>(args.kind),
                                  args.count,
                                  static_cast<std::uint64_t>(args.dtype),
                                  static_cast<std::uint64_t>(args.op),
                                  static_cast<std::uint64_t>(args.root),
                                  countsHash,
                                  args.inPlace ? 1ULL : 0ULL};
    // The in-place flag may legitimately differ between ranks; only compare the first seven words.
    CollectiveArgs ag = baseArgs(CollectiveKind::kAllGather);
    ag.count = kWords;
    ag.dtype = DataType::kUint64;
    ag.op = ReduceOp::kSum;
    auto program = programFor(ag, "ring");
    std::vector<std::uint64_t> all(static_cast<std::size_t>(kWords) * exec->size());
    CallBuffers b;
    b.input = mine;
    b.output = all.data();
    std::unique_ptr<core::CallHandle> h;
    COPRO_RETURN_IF_ERROR(exec->start(program, b, h));
    COPRO_RETURN_IF_ERROR(h->wait());
    auto describe = [&](int r) {
      const std::uint64_t* w = &all[static_cast<std::size_t>(r) * kWords];
      std::ostringstream os;
      os << collectiveName(static_cast<CollectiveKind>(w[1])) << "(count=" << w[2]
         << ", dtype=" << core::dataTypeName(static_cast<DataType>(w[3]))
         << ", op=" << core::reduceOpName(static_cast<ReduceOp>(w[4])) << ", root=" << w[5] << ", call #" << w[0]
         << (w[6] != all[6] ? ", different per-rank counts" : "") << ")";
      return os.str();
    };
    for (int r = 1; r < exec->size(); ++r) {
      if (std::memcmp(&all[static_cast<std::size_t>(r) * kWords], all.data(), 7 * sizeof(std::uint64_t)) != 0) {
        return Status(ErrorCode::kInvalidUsage, "COPRO_CHECK_CALLS: rank " + std::to_string(r) + " called " +
                                                    describe(r) + " but rank 0 called " + describe(0));
      }
    }
    return {};
  }

  Request run(const CollectiveArgs& args, CallBuffers buffers, const CallOptions& opts) {
    try {
      std::uint64_t callSeq = seq++;
      if (config.checkCalls && args.kind != CollectiveKind::kSendRecv) {
        Status s = checkCall(args, callSeq);
        if (!s.ok()) return failedRequest(s);
      }
      auto program = programFor(args, opts.algorithm);
      lastProgram = program->header().name;
      if (capturing) {
        captured.push_back(Captured{std::move(program), std::move(buffers)});
        return Request();
      }
      auto st = std::make_shared<Request::State>();
      st->sink = asyncErrors;
      st->program = program;
      st->buffers = std::move(buffers);
      Status s = exec->start(program, st->buffers, st->handle);
      asyncErrors->record(s);
      if (!s.ok()) return failedRequest(s);
      return Request(st);
    } catch (const Error& e) {
      return failedRequest(Status(e.code(), e.message()));
    }
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Argument checks

namespace {

Status checkTypeOp(DataType dtype, ReduceOp op, bool needsOp) {
  if (static_cast<int>(dtype) >= core::kNumDataTypes) {
    return {ErrorCode::kUnsupported, "unsupported data type value " + std::to_string(static_cast<int>(dtype)) +
                                         " (see copro::DataType for the supported ones)"};
  }
  if (needsOp) {
    if (static_cast<int>(op) >= core::kNumReduceOps) {
      return {ErrorCode::kUnsupported, "unsupported reduction operator value " + std::to_string(static_cast<int>(op)) +
                                           " (sum, prod, min, max, avg)"};
    }
    if (!core::reduceSupported(dtype, op)) {
      return {ErrorCode::kUnsupported, std::string("reduction ") + std::string(core::reduceOpName(op)) +
                                           " is not supported on " + std::string(core::dataTypeName(dtype))};
    }
  }
  return {};
}

Status checkBytes(std::uint64_t count, std::uint64_t factor, DataType dtype, const char* what, std::uint64_t& out) {
  std::uint64_t elems = 0;
  if (__builtin_mul_overflow(count, factor, &elems) ||
      __builtin_mul_overflow(elems, static_cast<std::uint64_t>(core::dataTypeSize(dtype)), &out)) {
    return {ErrorCode::kInvalidArgument, std::string(what) + ": count " + std::to_string(count) + " of " +
                                             std::string(core::dataTypeName(dtype)) + " overflows a 64-bit byte size"};
  }
  return {};
}

Status checkPtr(const void* p, std::uint64_t bytes, const char* what) {
  if (p == nullptr && bytes > 0) {
    return {ErrorCode::kInvalidArgument,
            std::string(what) + " is null but " + std::to_string(bytes) + " bytes are to be accessed"};
  }
  return {};
}

Status checkRoot(int root, int size) {
  if (root < 0 || root >= size) {
    return {ErrorCode::kInvalidArgument, "root " + std::to_string(root) + " is not a rank of this communicator (0.." +
                                             std::to_string(size - 1) + ")"};
  }
  return {};
}

Status checkVector(const std::vector<std::uint64_t>& v, int size, const char* what) {
  if (static_cast<int>(v.size()) != size) {
    return {ErrorCode::kInvalidArgument, std::string(what) + " has " + std::to_string(v.size()) +
                                             " entries; it needs one per rank (" + std::to_string(size) + ")"};
  }
  return {};
}

CallBuffers makeBuffers(const void* input, void* output) {
  CallBuffers b;
  b.input = input;
  b.output = output;
  return b;
}

const char* bytePtr(const void* p, std::uint64_t offset) {
  return static_cast<const char*>(p) + offset;
}

/// The lane initiation of scale-up and scale-out lanes from the Config, parsed once per communicator; a
/// value that names no mode is an error naming its variable.
void resolveInitiation(const core::Config& config, core::Initiation& scaleUp, core::Initiation& scaleOut) {
  auto parse = [](const char* var, const std::string& text, core::Initiation& out) {
    if (core::parseInitiation(text, out)) return;
    throw Error(ErrorCode::kInvalidArgument,
                std::string(var) + "='" + text + "' is not an initiation mode ('device', 'proxy' or 'offload')");
  };
  core::Initiation base = core::Initiation::kDevice;
  parse("COPRO_INITIATION", config.initiation, base);
  scaleUp = base;
  scaleOut = base;
  if (!config.initiationScaleUp.empty()) parse("COPRO_INITIATION_SCALEUP", config.initiationScaleUp, scaleUp);
  if (!config.initiationScaleOut.empty()) parse("COPRO_INITIATION_SCALEOUT", config.initiationScaleOut, scaleOut);
}

}  // namespace

#define COPRO_REQUEST_IF_ERROR(expr)                    \
  do {                                                  \
    Status copro_s_ = (expr);                           \
    if (!copro_s_.ok()) return failedRequest(copro_s_); \
  } while (0)

// ---------------------------------------------------------------------------------------------------------------
// Communicator

Communicator::Communicator(std::unique_ptr<core::Executor> executor) : impl_(std::make_shared<Impl>()) {
  if (!executor) throw Error(ErrorCode::kInvalidArgument, "Communicator needs an executor");
  impl_->config = executor->config();
  resolveInitiation(impl_->config, impl_->scaleUpInitiation, impl_->scaleOutInitiation);
  impl_->nodeOfRank = parseNodeMap(impl_->config.nodeMap, executor->size());
  if (impl_->nodeOfRank.empty()) {
    auto nodes = executor->nodeOfRank();
    bool multi = false;
    for (int n : nodes) multi = multi || n != nodes.front();
    if (multi) {
      impl_->nodeOfRank = parseNodeMap(
          [&] {
            std::string s;
            for (std::size_t i = 0; i < nodes.size(); ++i) s += (i ? "," : "") + std::to_string(nodes[i]);
            return s;
          }(),
          executor->size());
    }
  }
  impl_->domains = executor->loadStoreDomains();
  impl_->llCapacity = executor->llMaxBytes();
  impl_->exec = std::move(executor);
}

std::vector<Communicator> Communicator::createAll(const std::string& backend, const core::ExecutorOptions& options) {
  auto execs = core::ExecutorRegistry::instance().create(backend, options);
  std::vector<Communicator> comms;
  comms.reserve(execs.size());
  for (auto& e : execs) comms.emplace_back(std::move(e));
  return comms;
}

namespace {
void requireValid(const std::shared_ptr<Communicator::Impl>& impl) {
  if (!impl) throw Error(ErrorCode::kInvalidUsage, "this Communicator handle is empty (split with color < 0?)");
}
}  // namespace

int Communicator::rank() const {
  requireValid(impl_);
  return impl_->exec->rank();
}
int Communicator::size() const {
  requireValid(impl_);
  return impl_->exec->size();
}
std::string Communicator::backend() const {
  requireValid(impl_);
  return std::string(impl_->exec->backend());
}
const core::Config& Communicator::config() const {
  requireValid(impl_);
  return impl_->config;
}
const std::vector<int>& Communicator::nodeOfRank() const {
  requireValid(impl_);
  return impl_->nodeOfRank;
}

Communicator Communicator::split(int color, int key) {
  requireValid(impl_);
  auto child = impl_->exec->split(color, key);
  if (!child) return {};
  return Communicator(std::move(child));
}

Communicator Communicator::dup() {
  return split(0, rank());
}

Status Communicator::registerBuffer(void* ptr, std::size_t bytes) {
  requireValid(impl_);
  COPRO_RETURN_IF_ERROR(checkPtr(ptr, bytes == 0 ? 1 : bytes, "registerBuffer: pointer"));
  return impl_->exec->registerBuffer(ptr, bytes);
}
Status Communicator::deregisterBuffer(void* ptr) {
  requireValid(impl_);
  return impl_->exec->deregisterBuffer(ptr);
}
void* Communicator::allocate(std::size_t bytes) {
  requireValid(impl_);
  return impl_->exec->allocate(bytes);
}
void Communicator::deallocate(void* ptr) {
  requireValid(impl_);
  impl_->exec->deallocate(ptr);
}
void Communicator::abort() {
  requireValid(impl_);
  impl_->asyncErrors->record(Status(ErrorCode::kAborted, "the communicator was aborted (Communicator::abort)"));
  impl_->exec->abort();
}
Status Communicator::asyncError() const {
  requireValid(impl_);
  return impl_->asyncErrors->get();
}
std::size_t Communicator::programCacheSize() const {
  requireValid(impl_);
  return impl_->cache.size();
}
std::uint64_t Communicator::programCacheHits() const {
  requireValid(impl_);
  return impl_->cacheHits;
}
std::string Communicator::lastProgramName() const {
  requireValid(impl_);
  return impl_->lastProgram;
}

Request Communicator::allReduce(const void* send, void* recv, std::uint64_t count, DataType dtype, ReduceOp op,
                                const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t bytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, op, true));
  COPRO_REQUEST_IF_ERROR(checkBytes(count, 1, dtype, "allReduce", bytes));
  COPRO_REQUEST_IF_ERROR(checkPtr(send, bytes, "allReduce: send buffer"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, bytes, "allReduce: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kAllReduce);
  a.count = count;
  a.dtype = dtype;
  a.op = op;
  a.inPlace = send == recv;
  return impl_->run(a, makeBuffers(send, recv), opts);
}

Request Communicator::reduceScatter(const void* send, void* recv, std::uint64_t recvCount, DataType dtype, ReduceOp op,
                                    const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t inBytes = 0;
  std::uint64_t outBytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, op, true));
  COPRO_REQUEST_IF_ERROR(checkBytes(recvCount, static_cast<std::uint64_t>(size()), dtype, "reduceScatter", inBytes));
  COPRO_REQUEST_IF_ERROR(checkBytes(recvCount, 1, dtype, "reduceScatter", outBytes));
  COPRO_REQUEST_IF_ERROR(checkPtr(send, inBytes, "reduceScatter: send buffer"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, outBytes, "reduceScatter: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kReduceScatter);
  a.count = recvCount;
  a.dtype = dtype;
  a.op = op;
  a.inPlace = recv == bytePtr(send, outBytes * static_cast<std::uint64_t>(rank()));
  return impl_->run(a, makeBuffers(send, recv), opts);
}

Request Communicator::reduceScatterV(const void* send, void* recv, const std::vector<std::uint64_t>& recvCounts,
                                     DataType dtype, ReduceOp op, const CallOptions& opts) {
  requireValid(impl_);
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, op, true));
  COPRO_REQUEST_IF_ERROR(checkVector(recvCounts, size(), "reduceScatterV: recvCounts"));
  std::uint64_t total = 0;
  std::uint64_t before = 0;
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) before = total;
    if (__builtin_add_overflow(total, recvCounts[static_cast<std::size_t>(r)], &total)) {
      return failedRequest({ErrorCode::kInvalidArgument, "reduceScatterV: the sum of recvCounts overflows"});
    }
  }
  std::uint64_t inBytes = 0;
  std::uint64_t outBytes = 0;
  COPRO_REQUEST_IF_ERROR(checkBytes(total, 1, dtype, "reduceScatterV", inBytes));
  COPRO_REQUEST_IF_ERROR(
      checkBytes(recvCounts[static_cast<std::size_t>(rank())], 1, dtype, "reduceScatterV", outBytes));
  COPRO_REQUEST_IF_ERROR(checkPtr(send, inBytes, "reduceScatterV: send buffer"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, outBytes, "reduceScatterV: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kReduceScatterV);
  a.counts = recvCounts;
  a.count = recvCounts[static_cast<std::size_t>(rank())];
  a.dtype = dtype;
  a.op = op;
  a.inPlace = recv == bytePtr(send, before * core::dataTypeSize(dtype));
  return impl_->run(a, makeBuffers(send, recv), opts);
}

Request Communicator::allGather(const void* send, void* recv, std::uint64_t sendCount, DataType dtype,
                                const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t inBytes = 0;
  std::uint64_t outBytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  COPRO_REQUEST_IF_ERROR(checkBytes(sendCount, 1, dtype, "allGather", inBytes));
  COPRO_REQUEST_IF_ERROR(checkBytes(sendCount, static_cast<std::uint64_t>(size()), dtype, "allGather", outBytes));
  COPRO_REQUEST_IF_ERROR(checkPtr(send, inBytes, "allGather: send buffer"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, outBytes, "allGather: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kAllGather);
  a.count = sendCount;
  a.dtype = dtype;
  a.inPlace = send == bytePtr(recv, inBytes * static_cast<std::uint64_t>(rank()));
  return impl_->run(a, makeBuffers(send, recv), opts);
}

Request Communicator::allGatherV(const void* send, void* recv, const std::vector<std::uint64_t>& recvCounts,
                                 DataType dtype, const CallOptions& opts) {
  requireValid(impl_);
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  COPRO_REQUEST_IF_ERROR(checkVector(recvCounts, size(), "allGatherV: recvCounts"));
  std::uint64_t total = 0;
  std::uint64_t before = 0;
  for (int r = 0; r < size(); ++r) {
    if (r == rank()) before = total;
    if (__builtin_add_overflow(total, recvCounts[static_cast<std::size_t>(r)], &total)) {
      return failedRequest({ErrorCode::kInvalidArgument, "allGatherV: the sum of recvCounts overflows"});
    }
  }
  std::uint64_t inBytes = 0;
  std::uint64_t outBytes = 0;
  COPRO_REQUEST_IF_ERROR(checkBytes(recvCounts[static_cast<std::size_t>(rank())], 1, dtype, "allGatherV", inBytes));
  COPRO_REQUEST_IF_ERROR(checkBytes(total, 1, dtype, "allGatherV", outBytes));
  COPRO_REQUEST_IF_ERROR(checkPtr(send, inBytes, "allGatherV: send buffer"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, outBytes, "allGatherV: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kAllGatherV);
  a.counts = recvCounts;
  a.count = recvCounts[static_cast<std::size_t>(rank())];
  a.dtype = dtype;
  a.inPlace = send == bytePtr(recv, before * core::dataTypeSize(dtype));
  return impl_->run(a, makeBuffers(send, recv), opts);
}

Request Communicator::broadcast(const void* send, void* recv, std::uint64_t count, DataType dtype, int root,
                                const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t bytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  COPRO_REQUEST_IF_ERROR(checkRoot(root, size()));
  COPRO_REQUEST_IF_ERROR(checkBytes(count, 1, dtype, "broadcast", bytes));
  const bool isRoot = rank() == root;
  if (isRoot) COPRO_REQUEST_IF_ERROR(checkPtr(send, bytes, "broadcast: send buffer of the root"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, bytes, "broadcast: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kBroadcast);
  a.count = count;
  a.dtype = dtype;
  a.root = root;
  a.inPlace = isRoot && send == recv;
  return impl_->run(a, makeBuffers(isRoot ? send : nullptr, recv), opts);
}

Request Communicator::reduce(const void* send, void* recv, std::uint64_t count, DataType dtype, ReduceOp op, int root,
                             const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t bytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, op, true));
  COPRO_REQUEST_IF_ERROR(checkRoot(root, size()));
  COPRO_REQUEST_IF_ERROR(checkBytes(count, 1, dtype, "reduce", bytes));
  const bool isRoot = rank() == root;
  COPRO_REQUEST_IF_ERROR(checkPtr(send, bytes, "reduce: send buffer"));
  if (isRoot) COPRO_REQUEST_IF_ERROR(checkPtr(recv, bytes, "reduce: receive buffer of the root"));
  auto a = impl_->baseArgs(CollectiveKind::kReduce);
  a.count = count;
  a.dtype = dtype;
  a.op = op;
  a.root = root;
  a.inPlace = isRoot && send == recv;
  return impl_->run(a, makeBuffers(send, isRoot ? recv : nullptr), opts);
}

Request Communicator::gather(const void* send, void* recv, std::uint64_t sendCount, DataType dtype, int root,
                             const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t inBytes = 0;
  std::uint64_t outBytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  COPRO_REQUEST_IF_ERROR(checkRoot(root, size()));
  COPRO_REQUEST_IF_ERROR(checkBytes(sendCount, 1, dtype, "gather", inBytes));
  COPRO_REQUEST_IF_ERROR(checkBytes(sendCount, static_cast<std::uint64_t>(size()), dtype, "gather", outBytes));
  const bool isRoot = rank() == root;
  COPRO_REQUEST_IF_ERROR(checkPtr(send, inBytes, "gather: send buffer"));
  if (isRoot) COPRO_REQUEST_IF_ERROR(checkPtr(recv, outBytes, "gather: receive buffer of the root"));
  auto a = impl_->baseArgs(CollectiveKind::kGather);
  a.count = sendCount;
  a.dtype = dtype;
  a.root = root;
  a.inPlace = isRoot && send == bytePtr(recv, inBytes * static_cast<std::uint64_t>(root));
  return impl_->run(a, makeBuffers(send, isRoot ? recv : nullptr), opts);
}

Request Communicator::scatter(const void* send, void* recv, std::uint64_t recvCount, DataType dtype, int root,
                              const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t inBytes = 0;
  std::uint64_t outBytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  COPRO_REQUEST_IF_ERROR(checkRoot(root, size()));
  COPRO_REQUEST_IF_ERROR(checkBytes(recvCount, static_cast<std::uint64_t>(size()), dtype, "scatter", inBytes));
  COPRO_REQUEST_IF_ERROR(checkBytes(recvCount, 1, dtype, "scatter", outBytes));
  const bool isRoot = rank() == root;
  if (isRoot) COPRO_REQUEST_IF_ERROR(checkPtr(send, inBytes, "scatter: send buffer of the root"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, outBytes, "scatter: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kScatter);
  a.count = recvCount;
  a.dtype = dtype;
  a.root = root;
  a.inPlace = isRoot && recv == bytePtr(send, outBytes * static_cast<std::uint64_t>(root));
  return impl_->run(a, makeBuffers(isRoot ? send : nullptr, recv), opts);
}

Request Communicator::allToAll(const void* send, void* recv, std::uint64_t count, DataType dtype,
                               const CallOptions& opts) {
  requireValid(impl_);
  std::uint64_t bytes = 0;
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  COPRO_REQUEST_IF_ERROR(checkBytes(count, static_cast<std::uint64_t>(size()), dtype, "allToAll", bytes));
  COPRO_REQUEST_IF_ERROR(checkPtr(send, bytes, "allToAll: send buffer"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, bytes, "allToAll: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kAllToAll);
  a.count = count;
  a.dtype = dtype;
  a.inPlace = send == recv && bytes > 0;
  return impl_->run(a, makeBuffers(send, recv), opts);
}

Request Communicator::allToAllV(const void* send, const std::vector<std::uint64_t>& sendCounts,
                                const std::vector<std::uint64_t>& sendDispls, void* recv,
                                const std::vector<std::uint64_t>& recvCounts,
                                const std::vector<std::uint64_t>& recvDispls, DataType dtype, const CallOptions& opts) {
  requireValid(impl_);
  const int p = size();
  COPRO_REQUEST_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  COPRO_REQUEST_IF_ERROR(checkVector(sendCounts, p, "allToAllV: sendCounts"));
  COPRO_REQUEST_IF_ERROR(checkVector(sendDispls, p, "allToAllV: sendDispls"));
  COPRO_REQUEST_IF_ERROR(checkVector(recvCounts, p, "allToAllV: recvCounts"));
  COPRO_REQUEST_IF_ERROR(checkVector(recvDispls, p, "allToAllV: recvDispls"));
  const std::uint64_t esize = core::dataTypeSize(dtype);
  std::uint64_t sendExtent = 0;
  std::uint64_t recvExtent = 0;
  for (int r = 0; r < p; ++r) {
    auto i = static_cast<std::size_t>(r);
    std::uint64_t endS = 0;
    std::uint64_t endR = 0;
    std::uint64_t bS = 0;
    std::uint64_t bR = 0;
    if (__builtin_add_overflow(sendDispls[i], sendCounts[i], &endS) ||
        __builtin_add_overflow(recvDispls[i], recvCounts[i], &endR) || __builtin_mul_overflow(endS, esize, &bS) ||
        __builtin_mul_overflow(endR, esize, &bR)) {
      return failedRequest({ErrorCode::kInvalidArgument,
                            "allToAllV: displacement + count for rank " + std::to_string(r) + " overflows"});
    }
    if (sendCounts[i] > 0) sendExtent = std::max(sendExtent, bS);
    if (recvCounts[i] > 0) recvExtent = std::max(recvExtent, bR);
  }
  COPRO_REQUEST_IF_ERROR(checkPtr(send, sendExtent, "allToAllV: send buffer"));
  COPRO_REQUEST_IF_ERROR(checkPtr(recv, recvExtent, "allToAllV: receive buffer"));
  auto a = impl_->baseArgs(CollectiveKind::kAllToAllV);
  a.dtype = dtype;
  a.inPlace = send == recv && sendExtent > 0;
  CallBuffers b = makeBuffers(send, recv);
  b.layoutInit.reserve(4 * static_cast<std::size_t>(p));
  for (const auto* v : {&sendCounts, &sendDispls, &recvCounts, &recvDispls}) {
    b.layoutInit.insert(b.layoutInit.end(), v->begin(), v->end());
  }
  b.inputBytes = sendExtent;
  b.outputBytes = recvExtent;
  return impl_->run(a, std::move(b), opts);
}

Request Communicator::barrier(const CallOptions& opts) {
  requireValid(impl_);
  auto a = impl_->baseArgs(CollectiveKind::kBarrier);
  a.dtype = DataType::kUint8;
  return impl_->run(a, CallBuffers(), opts);
}

Request Communicator::runProgram(std::shared_ptr<const core::ProgramSource> program, CallBuffers buffers) {
  requireValid(impl_);
  try {
    if (!program) return failedRequest({ErrorCode::kInvalidArgument, "runProgram: the Program is null"});
    if (impl_->config.validate) core::requireValidProgram(*program);
    ++impl_->seq;
    impl_->lastProgram = program->header().name;
    if (impl_->capturing) {
      impl_->captured.push_back(Impl::Captured{std::move(program), std::move(buffers)});
      return Request();
    }
    auto st = std::make_shared<Request::State>();
    st->sink = impl_->asyncErrors;
    st->program = std::move(program);
    st->buffers = std::move(buffers);
    Status s = impl_->exec->start(st->program, st->buffers, st->handle);
    impl_->asyncErrors->record(s);
    if (!s.ok()) return failedRequest(s);
    return Request(st);
  } catch (const Error& e) {
    return failedRequest(Status(e.code(), e.message()));
  }
}

void Communicator::groupStart() {
  requireValid(impl_);
  if (impl_->inGroup) throw Error(ErrorCode::kInvalidUsage, "groupStart() called twice without groupEnd()");
  impl_->inGroup = true;
  impl_->groupOps.clear();
  impl_->groupBufs.clear();
}

namespace {

Status addP2P(Communicator::Impl& impl, bool isSend, void* buf, std::uint64_t count, DataType dtype, int peer,
              int size) {
  COPRO_RETURN_IF_ERROR(checkTypeOp(dtype, ReduceOp::kSum, false));
  if (peer < 0 || peer >= size) {
    return {ErrorCode::kInvalidArgument, std::string(isSend ? "send" : "recv") + ": peer " + std::to_string(peer) +
                                             " is not a rank of this communicator (0.." + std::to_string(size - 1) +
                                             ")"};
  }
  std::uint64_t bytes = 0;
  COPRO_RETURN_IF_ERROR(checkBytes(count, 1, dtype, isSend ? "send" : "recv", bytes));
  COPRO_RETURN_IF_ERROR(checkPtr(buf, bytes, isSend ? "send: buffer" : "recv: buffer"));
  if (!impl.groupOps.empty() && dtype != impl.groupDtype) {
    // Sizes are carried in elements of one type per group; convert to bytes when types differ.
    return {ErrorCode::kUnsupported, "send/recv in one group must use one data type (use uint8 and bytes to mix)"};
  }
  impl.groupDtype = dtype;
  impl.groupOps.push_back(P2POp{isSend, peer, count});
  impl.groupBufs.push_back(buf);
  return {};
}

}  // namespace

Request Communicator::send(const void* buf, std::uint64_t count, DataType dtype, int peer) {
  requireValid(impl_);
  const bool standalone = !impl_->inGroup;
  if (standalone) groupStart();
  Status s = addP2P(*impl_, true, const_cast<void*>(buf), count, dtype, peer, size());  // NOLINT
  if (!s.ok()) {
    if (standalone) impl_->inGroup = false;
    return failedRequest(s);
  }
  return standalone ? groupEnd() : Request();
}

Request Communicator::recv(void* buf, std::uint64_t count, DataType dtype, int peer) {
  requireValid(impl_);
  const bool standalone = !impl_->inGroup;
  if (standalone) groupStart();
  Status s = addP2P(*impl_, false, buf, count, dtype, peer, size());
  if (!s.ok()) {
    if (standalone) impl_->inGroup = false;
    return failedRequest(s);
  }
  return standalone ? groupEnd() : Request();
}

Request Communicator::groupEnd() {
  requireValid(impl_);
  if (!impl_->inGroup) return failedRequest({ErrorCode::kInvalidUsage, "groupEnd() without groupStart()"});
  impl_->inGroup = false;
  if (impl_->groupOps.empty()) return failedRequest({});
  auto a = impl_->baseArgs(CollectiveKind::kSendRecv);
  a.dtype = impl_->groupDtype;
  a.rank = rank();
  a.p2p = std::move(impl_->groupOps);
  CallBuffers b;
  const std::uint64_t esize = core::dataTypeSize(a.dtype);
  for (std::size_t i = 0; i < a.p2p.size(); ++i) {
    b.extra.push_back(impl_->groupBufs[i]);
    b.extraBytes.push_back(a.p2p[i].count * esize);
  }
  impl_->groupOps.clear();
  impl_->groupBufs.clear();
  return impl_->run(a, std::move(b), CallOptions{});
}

// ---------------------------------------------------------------------------------------------------------------
// Capture and replay

struct CallGraph::Impl {
  std::shared_ptr<Communicator::Impl> comm;
  std::vector<Communicator::Impl::Captured> calls;
};

namespace {

/// The calls of one replay, finished in the order they were started; the first error is the result.
class ReplayHandle final : public core::CallHandle {
 public:
  explicit ReplayHandle(std::vector<std::unique_ptr<core::CallHandle>> calls) : calls_(std::move(calls)) {}

  Status test(bool& done) override {
    while (next_ < calls_.size()) {
      bool one = false;
      Status s = calls_[next_]->test(one);
      if (!s.ok()) return finishAfterError(std::move(s), done);
      if (!one) {
        done = false;
        return {};
      }
      ++next_;
    }
    done = true;
    return {};
  }

  Status wait() override {
    for (; next_ < calls_.size(); ++next_) {
      Status s = calls_[next_]->wait();
      if (!s.ok()) {
        bool done = false;
        return finishAfterError(std::move(s), done);
      }
    }
    return {};
  }

 private:
  /// After one call failed, the later ones end too (the communicator is unusable); wait for them so that
  /// no call still touches the buffers when the Request returns.
  Status finishAfterError(Status first, bool& done) {
    for (++next_; next_ < calls_.size(); ++next_) (void)calls_[next_]->wait();
    done = true;
    return first;
  }

  std::vector<std::unique_ptr<core::CallHandle>> calls_;
  std::size_t next_ = 0;
};

}  // namespace

void Communicator::beginCapture() {
  requireValid(impl_);
  if (impl_->capturing) throw Error(ErrorCode::kInvalidUsage, "beginCapture() inside a capture (call endCapture())");
  if (impl_->inGroup) throw Error(ErrorCode::kInvalidUsage, "beginCapture() inside groupStart()/groupEnd()");
  impl_->capturing = true;
  impl_->captured.clear();
}

CallGraph Communicator::endCapture() {
  requireValid(impl_);
  if (!impl_->capturing) throw Error(ErrorCode::kInvalidUsage, "endCapture() without beginCapture()");
  if (impl_->inGroup) throw Error(ErrorCode::kInvalidUsage, "endCapture() inside groupStart()/groupEnd()");
  impl_->capturing = false;
  CallGraph g;
  g.impl_ = std::make_shared<CallGraph::Impl>();
  g.impl_->comm = impl_;
  g.impl_->calls = std::move(impl_->captured);
  impl_->captured.clear();
  return g;
}

bool Communicator::capturing() const {
  requireValid(impl_);
  return impl_->capturing;
}

std::size_t CallGraph::size() const {
  return impl_ ? impl_->calls.size() : 0;
}

Request CallGraph::replay() {
  if (!impl_) return failedRequest({ErrorCode::kInvalidUsage, "replay() on an empty CallGraph"});
  Communicator::Impl& comm = *impl_->comm;
  if (comm.capturing) return failedRequest({ErrorCode::kInvalidUsage, "replay() inside a capture"});
  if (comm.inGroup) return failedRequest({ErrorCode::kInvalidUsage, "replay() inside groupStart()/groupEnd()"});
  std::vector<std::unique_ptr<core::CallHandle>> handles;
  handles.reserve(impl_->calls.size());
  Status failed;
  for (const auto& c : impl_->calls) {
    std::unique_ptr<core::CallHandle> h;
    comm.seq++;
    Status s = comm.exec->start(c.program, c.buffers, h);
    comm.asyncErrors->record(s);
    if (!s.ok()) {
      failed = s;
      break;
    }
    handles.push_back(std::move(h));
  }
  if (!impl_->calls.empty()) comm.lastProgram = impl_->calls.back().program->header().name;
  auto st = std::make_shared<Request::State>();
  st->sink = comm.asyncErrors;
  st->keepAlive = impl_;
  if (handles.size() == 1 && failed.ok()) {
    st->handle = std::move(handles.front());
  } else {
    st->handle = std::make_unique<ReplayHandle>(std::move(handles));
  }
  if (!failed.ok()) {
    // The calls already started still run: wait for them, then report the failed start.
    (void)st->handle->wait();
    return failedRequest(failed);
  }
  return Request(st);
}

}  // namespace copro::collectives
