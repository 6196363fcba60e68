/// The virtual-node backends "shm+ucx" and "shm+mpi" (copro/transport/vnode.hpp, docs/virtual-nodes.md):
/// a RemoteTransport that routes each peer to one of two sub-transports by node. Every sub-transport spans
/// all ranks of the communicator (so calls, liveness and splits stay collective in the same order on every
/// rank); the composite only picks which one carries the ops to a given peer. Ops to one peer always take
/// the same sub-transport, so the ordering promise of RemoteTransport::put/signal carries over unchanged.
#include "copro/transport/vnode.hpp"

#include <atomic>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "backend_registration.hpp"
#include "copro/core/log.hpp"
#include "copro/core/status.hpp"
#include "remote_engine.hpp"
#include "vnode_transport.hpp"

namespace copro::transport {

namespace {

using core::BufferId;
using core::ErrorCode;
using core::Status;
using remote::Reach;

struct Counters {
  std::atomic<std::uint64_t> bytes[2] = {};
  std::atomic<std::uint64_t> ops[2] = {};
};

Counters& counters() {
  static Counters c;
  return c;
}

#if COPRO_HAVE_UCX
/// COPRO_NODE_MAP syntax: "0,0,1,1" (a node per rank) or "2" (ranks per node, consecutive).
std::vector<int> parseMap(const std::string& text, int nranks) {
  std::vector<int> out;
  if (text.empty()) return out;
  const auto bad = [&](const std::string& why) {
    return core::Error(ErrorCode::kInvalidArgument,
                       "node map '" + text + "' for " + std::to_string(nranks) + " ranks: " + why +
                           " (expected a node per rank, \"0,0,1,1\", or ranks per node, \"2\")");
  };
  std::vector<long> values;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0) throw bad("'" + item + "' is not a non-negative integer");
    values.push_back(v);
    pos = comma + 1;
  }
  if (values.size() == 1 && nranks > 1) {
    if (values[0] <= 0) throw bad("ranks per node must be > 0");
    for (int r = 0; r < nranks; ++r) out.push_back(static_cast<int>(r / values[0]));
    return out;
  }
  if (values.size() != static_cast<std::size_t>(nranks)) {
    throw bad(std::to_string(values.size()) + " entries");
  }
  for (long v : values) out.push_back(static_cast<int>(v));
  return out;
}
#endif

/// Index of the sub-transport that reaches a peer.
enum Route : int { kIntra = 0, kInter = 1 };

class VnodeTransport final : public remote::RemoteTransport {
 public:
  VnodeTransport(std::string name, std::unique_ptr<RemoteTransport> intra, std::unique_ptr<RemoteTransport> inter,
                 std::vector<int> nodeOfRank)
      : name_(std::move(name)), nodes_(std::move(nodeOfRank)) {
    subs_[kIntra] = std::move(intra);
    subs_[kInter] = std::move(inter);
    const int me = subs_[kIntra]->rank();
    route_.assign(nodes_.size(), kIntra);
    for (std::size_t q = 0; q < nodes_.size(); ++q) {
      route_[q] = nodes_[q] == nodes_[static_cast<std::size_t>(me)] ? kIntra : kInter;
    }
  }
  ~VnodeTransport() override {
    // The inter-node transport goes first on every rank (its teardown is collective, like the intra one's).
    subs_[kInter].reset();
    subs_[kIntra].reset();
  }
  VnodeTransport(const VnodeTransport&) = delete;
  VnodeTransport& operator=(const VnodeTransport&) = delete;

  [[nodiscard]] std::string_view backend() const override { return name_; }
  [[nodiscard]] bool progressFromAnyThread() const override {
    return subs_[kIntra]->progressFromAnyThread() && subs_[kInter]->progressFromAnyThread();
  }
  [[nodiscard]] int rank() const override { return subs_[kIntra]->rank(); }
  [[nodiscard]] int size() const override { return subs_[kIntra]->size(); }

  std::byte* scratch(std::uint64_t bytes) override { return subs_[kIntra]->scratch(bytes); }
  std::atomic<std::uint64_t>* semaphores(std::int32_t count) override { return subs_[kIntra]->semaphores(count); }
  std::atomic<std::uint64_t>* extraSemaphores(std::int32_t count) override {
    // The slot that the inter-node transport's signals land in; the engine sums it with the intra one.
    interSems_ = subs_[kInter]->semaphores(count);
    return interSems_;
  }
  std::uint64_t* layout(std::uint32_t words) override { return subs_[kIntra]->layout(words); }

  Status enter(const remote::CallEntry& entry) override {
    COPRO_RETURN_IF_ERROR(subs_[kIntra]->enter(entry));
    remote::CallEntry inter = entry;
    inter.semaphores = interSems_;
    return subs_[kInter]->enter(inter);
  }
  Reach reach(int peer, Status& error) override { return sub(peer).reach(peer, error); }
  [[nodiscard]] std::uint64_t remoteLimit(int peer, BufferId buf) const override {
    return subs_[route_[static_cast<std::size_t>(peer)]]->remoteLimit(peer, buf);
  }

  Status put(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, const std::byte* src,
             std::uint64_t bytes, std::int32_t sem, std::uint64_t value) override {
    count(peer, bytes);
    return sub(peer).put(lane, opIndex, peer, buf, offset, src, bytes, sem, value);
  }
  Status get(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, std::byte* dst,
             std::uint64_t bytes) override {
    count(peer, bytes);
    return sub(peer).get(lane, opIndex, peer, buf, offset, dst, bytes);
  }
  Status signal(int lane, std::uint32_t opIndex, int peer, std::int32_t sem, std::uint64_t value) override {
    count(peer, 0);
    return sub(peer).signal(lane, opIndex, peer, sem, value);
  }
  Status flushLane(int lane, bool& done) override {
    bool a = false;
    bool b = false;
    COPRO_RETURN_IF_ERROR(subs_[kIntra]->flushLane(lane, a));
    COPRO_RETURN_IF_ERROR(subs_[kInter]->flushLane(lane, b));
    done = a && b;
    return {};
  }
  Status finishLane(int lane, bool& done) override {
    bool a = false;
    bool b = false;
    COPRO_RETURN_IF_ERROR(subs_[kIntra]->finishLane(lane, a));
    COPRO_RETURN_IF_ERROR(subs_[kInter]->finishLane(lane, b));
    done = a && b;
    return {};
  }
  Status progress(bool& progressed) override {
    bool a = false;
    bool b = false;
    COPRO_RETURN_IF_ERROR(subs_[kIntra]->progress(a));
    COPRO_RETURN_IF_ERROR(subs_[kInter]->progress(b));
    progressed = a || b;
    return {};
  }
  Status finishCall(bool& done) override {
    bool a = false;
    bool b = false;
    COPRO_RETURN_IF_ERROR(subs_[kIntra]->finishCall(a));
    COPRO_RETURN_IF_ERROR(subs_[kInter]->finishCall(b));
    done = a && b;
    return {};
  }
  void leave() override {
    subs_[kIntra]->leave();
    subs_[kInter]->leave();
  }
  [[nodiscard]] std::string stallReport() override {
    return "intra-node (" + std::string(subs_[kIntra]->backend()) + "): " + subs_[kIntra]->stallReport() +
           "; inter-node (" + std::string(subs_[kInter]->backend()) + "): " + subs_[kInter]->stallReport();
  }
  void markBroken() override {
    subs_[kIntra]->markBroken();
    subs_[kInter]->markBroken();
  }
  void announceFailure(const std::string& reason) override {
    subs_[kIntra]->announceFailure(reason);
    subs_[kInter]->announceFailure(reason);
  }

  Status registerBuffer(void* ptr, std::size_t bytes) override {
    COPRO_RETURN_IF_ERROR(subs_[kIntra]->registerBuffer(ptr, bytes));
    return subs_[kInter]->registerBuffer(ptr, bytes);
  }
  Status deregisterBuffer(void* ptr) override {
    const Status a = subs_[kInter]->deregisterBuffer(ptr);
    const Status b = subs_[kIntra]->deregisterBuffer(ptr);
    return a.ok() ? b : a;
  }
  void* allocate(std::size_t bytes) override {
    void* p = subs_[kIntra]->allocate(bytes);
    const Status s = subs_[kInter]->registerBuffer(p, bytes);
    if (!s.ok()) {
      subs_[kIntra]->deallocate(p);
      throw core::Error(s.code(), s.message());
    }
    return p;
  }
  void deallocate(void* ptr) override {
    (void)subs_[kInter]->deregisterBuffer(ptr);
    subs_[kIntra]->deallocate(ptr);
  }

  std::unique_ptr<RemoteTransport> split(int color, int key, std::vector<int>& members) override {
    // Both splits are collective; every rank runs them in this order.
    auto intra = subs_[kIntra]->split(color, key, members);
    std::vector<int> interMembers;
    auto inter = subs_[kInter]->split(color, key, interMembers);
    if (!intra || !inter) return nullptr;
    if (interMembers != members) {
      throw core::Error(ErrorCode::kInternal, name_ + ": the sub-transports' splits disagree on the members");
    }
    std::vector<int> nodes;
    for (int m : members) nodes.push_back(nodes_[static_cast<std::size_t>(m)]);
    return std::make_unique<VnodeTransport>(name_, std::move(intra), std::move(inter), std::move(nodes));
  }

 private:
  RemoteTransport& sub(int peer) { return *subs_[route_[static_cast<std::size_t>(peer)]]; }
  void count(int peer, std::uint64_t bytes) {
    const int r = route_[static_cast<std::size_t>(peer)];
    counters().bytes[r].fetch_add(bytes, std::memory_order_relaxed);
    counters().ops[r].fetch_add(1, std::memory_order_relaxed);
  }

  std::string name_;
  std::vector<int> nodes_;
  std::vector<int> route_;
  std::unique_ptr<RemoteTransport> subs_[2];
  std::atomic<std::uint64_t>* interSems_ = nullptr;
};

}  // namespace

VirtualNodeTraffic virtualNodeTraffic() {
  VirtualNodeTraffic t;
  t.intraBytes = counters().bytes[kIntra].load(std::memory_order_relaxed);
  t.intraOps = counters().ops[kIntra].load(std::memory_order_relaxed);
  t.interBytes = counters().bytes[kInter].load(std::memory_order_relaxed);
  t.interOps = counters().ops[kInter].load(std::memory_order_relaxed);
  return t;
}

void resetVirtualNodeTraffic() {
  for (int r : {0, 1}) {
    counters().bytes[r].store(0, std::memory_order_relaxed);
    counters().ops[r].store(0, std::memory_order_relaxed);
  }
}

std::unique_ptr<core::Executor> createVirtualNodeExecutor(const core::ExecutorOptions& options, const char* inter) {
  const std::string kind = inter == nullptr ? std::string() : std::string(inter);
  if (kind != "ucx" && kind != "mpi" && kind != "verbs") {
    throw core::Error(ErrorCode::kInvalidArgument, "createVirtualNodeExecutor: inter-node transport '" + kind +
                                                       "' (use \"ucx\", \"mpi\" or \"verbs\")");
  }
  const std::string name = "shm+" + kind;
  if (!options.bootstrap) {
    throw core::Error(ErrorCode::kInvalidArgument,
                      "the " + name + " backend needs ExecutorOptions::bootstrap (" +
                          (kind == "mpi" ? std::string("from createMpiBootstrap / copro::createFromMpi")
                                         : std::string("a TCP/environment or MPI bootstrap")) +
                          ")");
  }
#if COPRO_HAVE_UCX
#if !COPRO_HAVE_MPI
  if (kind == "mpi") {
    throw core::Error(ErrorCode::kUnsupported, "the shm+mpi backend needs a build with MPI");
  }
#endif
  const int n = options.bootstrap->size();
  std::vector<int> nodes = options.nodeOfRank;
  if (nodes.empty()) nodes = parseMap(options.config.nodeMap, n);
  if (nodes.empty()) nodes = remote::nodeIdsFromHostnames(*options.bootstrap);
  if (static_cast<int>(nodes.size()) != n) {
    throw core::Error(ErrorCode::kInvalidArgument, name + ": nodeOfRank has " + std::to_string(nodes.size()) +
                                                       " entries for " + std::to_string(n) + " ranks");
  }
  std::unique_ptr<remote::RemoteTransport> interT;
#if COPRO_HAVE_MPI
  if (kind == "mpi") interT = makeMpiTransport(*options.bootstrap);
#endif
#if COPRO_HAVE_VERBS
  if (kind == "verbs") interT = makeVerbsTransport(options.bootstrap, options.config, name + "/inter");
#endif
  if (!interT) interT = makeUcxTransport(options.bootstrap, "tcp,self", name + "/inter");
  auto intraT = makeUcxTransport(options.bootstrap, "sm,self", name + "/intra");
  auto t = std::make_unique<VnodeTransport>(name, std::move(intraT), std::move(interT), nodes);
  return remote::makeRemoteExecutor(std::move(t), options.config, std::move(nodes));
#else
  throw core::Error(ErrorCode::kUnsupported, "the " + name + " backend needs a build with UCX");
#endif
}

void registerVirtualNodes(core::ExecutorRegistry& registry) {
#if COPRO_HAVE_UCX
  addOneRankPerProcessBackend(
      registry, "shm+ucx",
      [](const core::ExecutorOptions& options) { return createVirtualNodeExecutor(options, "ucx"); },
      "processes on virtual nodes: UCX shared memory within a node, UCX over TCP between nodes");
#if COPRO_HAVE_MPI
  addOneRankPerProcessBackend(
      registry, "shm+mpi",
      [](const core::ExecutorOptions& options) { return createVirtualNodeExecutor(options, "mpi"); },
      "processes on virtual nodes under mpirun: UCX shared memory within a node, two-sided MPI between nodes");
#endif
#if COPRO_HAVE_VERBS
  addOneRankPerProcessBackend(
      registry, "shm+verbs",
      [](const core::ExecutorOptions& options) { return createVirtualNodeExecutor(options, "verbs"); },
      "processes on virtual nodes: UCX shared memory within a node, RDMA verbs (RC QPs) between nodes");
#endif
#else
  (void)registry;
#endif
}

}  // namespace copro::transport
