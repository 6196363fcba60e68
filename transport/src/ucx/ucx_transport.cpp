/// The `ucx` backend's transport: UCP one-sided RMA and 64-bit atomics (docs/ucx.md).
///
/// - One UCP context, one worker and an endpoint to every peer per communicator; worker addresses are
///   exchanged through the Bootstrap, endpoints use UCP_ERR_HANDLING_MODE_PEER (where the transports
///   support it) so that a dead peer fails the calls that need it.
/// - A *control* region per rank (allocated by UCX, so that shared-memory transports can reach it) holds
///   one descriptor mailbox and three counters per peer: `entered` (calls the peer entered), `failed`.
///   Entering call k, a rank writes its descriptor (addresses, sizes and packed rkeys of input, output,
///   scratch, layout, extras and semaphores) into every peer's mailbox, flushes, and then adds 1 to the
///   peer's `entered` word. A lane reaches a peer in call k once that word reads k.
/// - put/get are ucp_put_nbx/ucp_get_nbx; a signal is ucp_atomic_op_nbx(ADD) on the target's semaphore,
///   issued after an endpoint flush that covers the lane's earlier puts to that peer (signal after data
///   even when data and atomics take different UCT lanes); flush is ucp_ep_flush_nbx per peer written.
/// - User buffers are registered on demand (ucp_mem_map) and kept in a cache keyed by address range;
///   registerBuffer() puts them there ahead of time.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/types.h>
#include <ucp/api/ucp.h>
#include <ucs/debug/log_def.h>
#include <ucs/sys/sock.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../backend_registration.hpp"
#include "../process_state.hpp"
#include "../remote_engine.hpp"
#include "../vnode_transport.hpp"
#include "copro/core/log.hpp"
#include "copro/transport/ucx.hpp"
#include "ucx_entry_notices.hpp"

namespace copro::transport {

namespace ucx {
namespace {

using namespace remote::transport_names;  // NOLINT(google-build-using-namespace): the port vocabulary
using Clock = std::chrono::steady_clock;

Status ucsStatus(ucs_status_t s, const std::string& what) {
  if (s == UCS_OK) return {};
  // What a failed or unreachable peer looks like (with peer error handling, UCX reports these instead of
  // aborting): the peer's failure, not this process's.
  const bool peerSide = s == UCS_ERR_ENDPOINT_TIMEOUT || s == UCS_ERR_CONNECTION_RESET || s == UCS_ERR_UNREACHABLE ||
                        s == UCS_ERR_NOT_CONNECTED || s == UCS_ERR_REJECTED || s == UCS_ERR_CANCELED;
  return {peerSide ? ErrorCode::kRemoteError : ErrorCode::kSystemError, what + ": " + ucs_status_string(s)};
}
void ucsCheck(ucs_status_t s, const std::string& what) {
  ucsStatus(s, what).throwIfError();
}

/// Whether every transport in a UCX_TLS list is tcp or on-host: only then does UCX_NET_DEVICES select
/// nothing but IP interfaces (with RDMA transports it would also pick the RDMA devices).
bool ipOrLocalOnly(const std::string& tls) {
  static const std::set<std::string> kIpOrLocal = {"tcp", "self", "sm", "shm", "posix", "sysv", "cma", "knem", "xpmem"};
  if (tls.empty()) return false;  // every transport, RDMA included
  std::stringstream list(tls);
  std::string t;
  while (std::getline(list, t, ',')) {
    if (kIpOrLocal.count(t) == 0) return false;
  }
  return true;
}

/// The network interface that holds IPv4 address `ip` ("" when none does).
std::string interfaceOf(const std::string& ip) {
  in_addr want{};
  if (ip.empty() || inet_pton(AF_INET, ip.c_str(), &want) != 1) return {};
  ifaddrs* all = nullptr;
  if (getifaddrs(&all) != 0) return {};
  std::string name;
  for (const ifaddrs* i = all; i != nullptr && name.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if (reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == want.s_addr) name = i->ifa_name;
  }
  freeifaddrs(all);
  return name;
}

/// How long a failing rank waits for its peers to acknowledge its failure notice (announceFailure).
constexpr double kAnnounceSeconds = 1.0;

/// Bytes of one descriptor mailbox (descriptor of one call: regions and their packed rkeys).
constexpr std::size_t kMailboxBytes = 32 * 1024;

/// The control region: per peer q, entered[q], failed[q], leaving[q], then mailbox[q].
struct ControlLayout {
  int n = 0;
  [[nodiscard]] std::size_t entered(int q) const { return static_cast<std::size_t>(q) * 8; }
  [[nodiscard]] std::size_t failed(int q) const { return static_cast<std::size_t>(n + q) * 8; }
  [[nodiscard]] std::size_t leaving(int q) const { return static_cast<std::size_t>(2 * n + q) * 8; }
  [[nodiscard]] std::size_t mailbox(int q) const {
    return static_cast<std::size_t>(3 * n) * 8 + static_cast<std::size_t>(q) * kMailboxBytes;
  }
  [[nodiscard]] std::size_t bytes() const { return mailbox(n); }
};

/// Descriptor wire format: DescHeader (remote_engine.hpp), `numRegions` of these, then the packed rkeys.
struct DescRegion {
  std::uint64_t addr = 0;
  std::uint64_t limit = 0;
  std::uint64_t regId = 0;  ///< 0: no memory (empty region)
  std::uint32_t rkeyOffset = 0;
  std::uint32_t rkeyBytes = 0;
  std::uint32_t writable = 0;
  std::uint32_t pad = 0;
};

/// Registered memory of this rank.
struct Registration : RegisteredRange {
  ucp_mem_h memh = nullptr;
  std::vector<std::byte> packed;
  std::uint64_t id = 0;
  bool allocated = false;  ///< memory allocated by UCX (scratch, semaphores, control, allocate())
};

/// A peer's region of the current call, rkey unpacked.
struct RemoteRegion {
  std::uint64_t addr = 0;
  std::uint64_t limit = 0;
  bool writable = false;
  ucp_rkey_h rkey = nullptr;
};

struct Peer {
  ucp_ep_h ep = nullptr;
  bool dead = false;
  std::string deadReason;
  pid_t pid = 0;
  bool sameHost = false;
  std::uint64_t controlAddr = 0;
  ucp_rkey_h controlRkey = nullptr;
  std::map<std::uint64_t, ucp_rkey_h> rkeys;  ///< unpacked rkeys by registration id
  std::uint64_t descSeq = 0;                  ///< call whose descriptor `regions` holds
  std::vector<RemoteRegion> regions;          ///< BufferId order, semaphores last
  EntryNotices notices;                       ///< this rank's entry notices to the peer, in the background
};

struct PendingSignal {
  void* flushReq = nullptr;  ///< the ep flush this signal must follow (nullptr: none)
  int peer = 0;
  std::int32_t sem = 0;
  std::uint64_t value = 0;
};

struct LaneState {
  std::vector<std::pair<void*, int>> reqs;  ///< (request, peer) in flight
  std::vector<bool> dirty;                  ///< puts to the peer since its last ep flush by this lane
  std::vector<bool> unflushed;              ///< any op to the peer since the lane's last flush (incl. atomics)
  std::deque<PendingSignal> signals;        ///< signals waiting for their flush, in order
  std::deque<std::uint64_t> operands;       ///< atomic operands, alive until the lane's flush
};

struct EpErrorArg;

/// The endpoints (of every UcxTransport in the process) whose peer failed, for the acknowledgement hook
/// below. An endpoint leaves the set when it is closed, before UCX may reuse its memory.
class FailedEndpoints {
 public:
  void note(ucp_ep_h ep) {
    const std::lock_guard<std::mutex> lock(mutex_);
    eps_.insert(ep);
  }
  void forget(ucp_ep_h ep) {
    const std::lock_guard<std::mutex> lock(mutex_);
    eps_.erase(ep);
  }
  bool has(ucp_ep_h ep) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return eps_.count(ep) != 0;
  }

 private:
  std::mutex mutex_;
  std::set<ucp_ep_h> eps_;
};
FailedEndpoints& failedEndpoints() {
  static FailedEndpoints* set = new FailedEndpoints;  // never destroyed: the hook may run during exit
  return *set;
}

class UcxTransport final : public remote::NamedTransport {
 public:
  /// `tls` non-empty: this context's UCX_TLS (set with ucp_config_modify, whatever the environment says);
  /// `name`: what backend() reports (a sub-transport of a composite names its role).
  explicit UcxTransport(std::shared_ptr<core::Bootstrap> bootstrap, std::string tls = {}, std::string name = "ucx");
  ~UcxTransport() override;

  /// The worker is UCS_THREAD_MODE_SERIALIZED and only copro uses it: any thread may drive it under the
  /// engine's lock.
  [[nodiscard]] bool progressFromAnyThread() const override { return true; }

  std::byte* scratch(std::uint64_t bytes) override {
    return ownedAtLeast(scratch_, std::max<std::uint64_t>(bytes, 64));
  }
  std::atomic<std::uint64_t>* semaphores(std::int32_t count) override {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(ownedAtLeast(sems_, remote::wordBytes(count)));
  }
  std::uint64_t* layout(std::uint32_t words) override {
    return reinterpret_cast<std::uint64_t*>(ownedAtLeast(layout_, remote::wordBytes(words)));
  }

  Status enter(const remote::CallEntry& entry) override;
  Reach reach(int peer, Status& error) override;
  [[nodiscard]] std::uint64_t remoteLimit(int peer, BufferId buf) const override {
    const Peer& p = peers_[static_cast<std::size_t>(peer)];
    const auto b = static_cast<std::size_t>(buf);
    if (p.descSeq != seq_ || b + 1 >= p.regions.size()) return UINT64_MAX;
    return p.regions[b].limit;
  }
  Status put(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, const std::byte* src,
             std::uint64_t bytes, std::int32_t sem, std::uint64_t value) override;
  Status get(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, std::byte* dst,
             std::uint64_t bytes) override;
  Status signal(int lane, std::uint32_t opIndex, int peer, std::int32_t sem, std::uint64_t value) override;
  Status flushLane(int lane, bool& done) override;
  Status flushLaneState(LaneState& l, bool& done, bool background = false);
  Status finishLane(int lane, bool& done) override { return flushLaneState(laneState(lane), done, true); }
  /// Completes what finished lanes left in flight (endpoint flushes); frees what is done.
  void reapBackground();
  /// A barrier over UCX itself (progressing the worker, unlike the bootstrap's) before the endpoints
  /// close; gives up after `seconds`.
  void leavingBarrier(double seconds);
  Status progress(bool& progressed) override;
  Status finishCall(bool& done) override;
  void leave() override {}
  [[nodiscard]] std::string stallReport() override;
  [[nodiscard]] std::string stoppedPeer() override {
    for (int q = 0; q < size_; ++q) {
      const Peer& p = peers_[static_cast<std::size_t>(q)];
      if (q != rank_ && p.sameHost && processStopped(p.pid)) return stoppedPeerText(q, p.pid);
    }
    return {};
  }
  void announceFailure(const std::string& reason) override;
  /// A rank that gave up because a peer failed tells the others which one (announceFailure), so that
  /// they blame that peer, not this rank whose endpoints close next.
  void markBroken() override {
    failed_ = true;
    if (firstFailedPeer_ >= 0) announceFailure({});
  }

  Status registerBuffer(void* ptr, std::size_t bytes) override;
  Status deregisterBuffer(void* ptr) override;
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr) override;
  std::unique_ptr<remote::RemoteTransport> split(int color, int key, std::vector<int>& members) override;

  /// Endpoint error callback (UCP_ERR_HANDLING_MODE_PEER).
  void onEpError(int peer, ucs_status_t status) {
    markDead(peer, std::string("UCX reported '") + ucs_status_string(status) + "' on its endpoint");
  }

 private:
  /// UCX's tcp transport listens on every IP interface it uses, for the whole job. Unless the user chose
  /// (UCX_NET_DEVICES), and when the transports are tcp or on-host only, the interface is the one the
  /// bootstrap uses.
  void keepListenersOnBootstrapInterface(ucp_config_t* config);
  /// `peer` failed for this rank (first reason kept): no operation goes to it any more, and UCX sends
  /// nothing over its endpoint (failedEndpoints).
  void markDead(int peer, const std::string& reason);
  std::unique_ptr<Registration> mapMemory(void* address, std::size_t bytes, bool allocate);
  void unmap(Registration& reg);
  /// The base of the owned region in `slot`, replaced by a larger zeroed one when it has fewer than `bytes`.
  std::byte* ownedAtLeast(std::unique_ptr<Registration>& slot, std::size_t bytes);
  /// The registration covering [ptr, ptr+bytes), registering it on demand.
  Registration& registrationFor(std::byte* ptr, std::size_t bytes);
  Status track(LaneState& l, ucs_status_ptr_t r, int peer, const char* what);
  Status issueSignals(LaneState& l, bool& progressed);
  Status issueAtomicAdd(LaneState& l, int peer, std::uint64_t raddr, ucp_rkey_h rkey, std::uint64_t value);
  /// The failure of `peer` as this rank reports it: when the peer only followed another rank's failure
  /// (its `failed` word says which), that rank is named as the cause.
  Status peerFailure(int peer);
  Status checkPeers();
  /// Moves the entry notices to every live peer on (ucx_entry_notices.hpp).
  Status advanceNotices(bool& progressed);
  /// What is in flight (requests not completed, signals waiting for their endpoint flush), for timeouts.
  std::string inFlightReport();
  [[nodiscard]] std::string laneInFlight(const LaneState& l) const;
  std::atomic<std::uint64_t>& controlWord(std::size_t offset) {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(control_->base + offset);
  }
  void progressFor(double seconds, const std::function<bool()>& done);
  LaneState& laneState(int lane) {
    if (static_cast<std::size_t>(lane) >= lanes_.size()) lanes_.resize(static_cast<std::size_t>(lane) + 1);
    LaneState& l = lanes_[static_cast<std::size_t>(lane)];
    if (l.dirty.size() != static_cast<std::size_t>(size_)) {
      l.dirty.assign(static_cast<std::size_t>(size_), false);
      l.unflushed.assign(static_cast<std::size_t>(size_), false);
    }
    return l;
  }

  std::shared_ptr<core::Bootstrap> bootstrap_;
  std::string tls_;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::vector<Peer> peers_;
  std::vector<std::unique_ptr<EpErrorArg>> errArgs_;
  ControlLayout ctl_;
  std::unique_ptr<Registration> control_;
  std::unique_ptr<Registration> scratch_;
  std::unique_ptr<Registration> sems_;
  std::unique_ptr<Registration> layout_;
  std::vector<std::unique_ptr<Registration>> userRegs_;  ///< registerBuffer, allocate() and on-demand
  std::uint64_t nextRegId_ = 1;
  std::uint64_t seq_ = 0;
  std::vector<LaneState> lanes_;
  LaneState background_;  ///< endpoint flushes left by finished lanes
  std::vector<std::vector<std::byte>> peerDescCopy_;
  bool failed_ = false;     ///< this rank failed or aborted, or saw a peer fail
  bool announced_ = false;  ///< announceFailure ran
  /// The first peer whose failure this rank saw (-1: none); announced to the others with our own failure.
  int firstFailedPeer_ = -1;
  Clock::time_point lastLivenessCheck_ = Clock::now();
};

struct EpErrorArg {
  UcxTransport* transport;
  int peer;
};

/// Whether process `pid` of this host still runs (an exited child that nobody reaped yet is a zombie:
/// it exists for kill(), but it will never answer).
bool processAlive(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return true;  // no procfs: trust kill()
  char buf[512] = {};
  const std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  // "pid (comm) S ...": the state follows the last ')'.
  const char* close = std::strrchr(buf, ')');
  if (n == 0 || close == nullptr || close[1] == 0 || close[2] == 0) return true;
  return close[2] != 'Z' && close[2] != 'X';
}

/// Swallows UCX's log lines while probing whether the transports can report peer failures (the probe's
/// failure is expected with shm, whose transports cannot).
ucs_log_func_rc_t quietLog(const char* /*file*/, unsigned /*line*/, const char* /*function*/, ucs_log_level_t /*level*/,
                           const ucs_log_component_config_t* /*comp*/, const char* /*message*/, va_list /*ap*/) {
  return UCS_LOG_FUNC_RC_STOP;
}

void epErrorCallback(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* a = static_cast<EpErrorArg*>(arg);
  a->transport->onEpError(a->peer, status);
}

UcxTransport::UcxTransport(std::shared_ptr<core::Bootstrap> bootstrap, std::string tls, std::string name)
    : NamedTransport(std::move(name), bootstrap->rank(), bootstrap->size()),
      bootstrap_(std::move(bootstrap)),
      tls_(std::move(tls)) {
  peers_.resize(static_cast<std::size_t>(size_));
  ctl_.n = size_;

  ucp_config_t* config = nullptr;
  ucsCheck(ucp_config_read(nullptr, nullptr, &config), "ucp_config_read");  // honours UCX_TLS etc.
  if (!tls_.empty()) {
    const ucs_status_t ms = ucp_config_modify(config, "TLS", tls_.c_str());
    if (ms != UCS_OK) {
      ucp_config_release(config);
      ucsCheck(ms, "ucx: ucp_config_modify(TLS=" + tls_ + ")");
    }
  }
  keepListenersOnBootstrapInterface(config);
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AMO64;
  const ucs_status_t st = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  ucsCheck(st, "ucx: ucp_init (check UCX_TLS)");

  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // one thread at a time drives a rank (the engine's lock)
  ucsCheck(ucp_worker_create(context_, &wp, &worker_), "ucx: ucp_worker_create");

  // Worker addresses, with pid and host for the liveness check of peers on this host.
  ucp_address_t* addr = nullptr;
  std::size_t addrLen = 0;
  ucsCheck(ucp_worker_get_address(worker_, &addr, &addrLen), "ucx: ucp_worker_get_address");
  std::vector<std::uint64_t> lens(static_cast<std::size_t>(size_));
  std::uint64_t myLen = addrLen;
  bootstrap_->allGather(&myLen, lens.data(), sizeof(myLen)).throwIfError();
  const std::size_t maxLen = *std::max_element(lens.begin(), lens.end());
  constexpr std::size_t kHost = 64;
  const std::size_t rec = maxLen + kHost + sizeof(std::uint64_t);
  std::vector<std::byte> mine(rec, std::byte{0});
  std::memcpy(mine.data(), addr, addrLen);
  ucp_worker_release_address(worker_, addr);
  (void)gethostname(reinterpret_cast<char*>(mine.data() + maxLen), kHost - 1);
  const std::uint64_t pid = static_cast<std::uint64_t>(getpid());
  std::memcpy(mine.data() + maxLen + kHost, &pid, sizeof(pid));
  std::vector<std::byte> all(rec * static_cast<std::size_t>(size_));
  bootstrap_->allGather(mine.data(), all.data(), rec).throwIfError();
  const std::string myHost(reinterpret_cast<const char*>(mine.data() + maxLen));

  std::vector<int> noPeerErrors;  // peers whose endpoint has no peer error handling
  std::string noPeerErrorsWhy;
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    const std::byte* r = all.data() + static_cast<std::size_t>(q) * rec;
    Peer& p = peers_[static_cast<std::size_t>(q)];
    std::uint64_t qpid = 0;
    std::memcpy(&qpid, r + maxLen + kHost, sizeof(qpid));
    p.pid = static_cast<pid_t>(qpid);
    p.sameHost = std::string(reinterpret_cast<const char*>(r + maxLen)) == myHost;
    errArgs_.push_back(std::make_unique<EpErrorArg>(EpErrorArg{this, q}));
    ucp_ep_params_t ep{};
    ep.field_mask =
        UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep.address = reinterpret_cast<const ucp_address_t*>(r);
    // Peer error handling, so that a failed peer (dead, or stopped past UCX's keepalive) fails the calls
    // that need it: without it UCX aborts the whole process on the first failed request.
    ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler.cb = epErrorCallback;
    ep.err_handler.arg = errArgs_.back().get();
    ucs_log_push_handler(quietLog);
    ucs_status_t es = ucp_ep_create(worker_, &ep, &p.ep);
    ucs_log_pop_handler();
    if (es != UCS_OK) {
      if (noPeerErrors.empty()) noPeerErrorsWhy = ucs_status_string(es);
      noPeerErrors.push_back(q);
      ep.err_mode = UCP_ERR_HANDLING_MODE_NONE;
      es = ucp_ep_create(worker_, &ep, &p.ep);
    }
    ucsCheck(es, "ucx: ucp_ep_create to rank " + std::to_string(q));
  }
  if (!noPeerErrors.empty()) {
    // Some transports cannot report peer failures (UCX 1.13's shared-memory ones: "Destination is
    // unreachable" in this mode). Not silently: the user learns at creation what a failed peer will do.
    const char* tlsEnv = std::getenv("UCX_TLS");
    COPRO_LOG(Warn, Init,
              "ucx: rank " << rank_ << ": no peer error handling to " << noPeerErrors.size() << " of " << size_ - 1
                           << " peers (first: rank " << noPeerErrors.front() << ", UCP_ERR_HANDLING_MODE_PEER: "
                           << noPeerErrorsWhy << ") with UCX_TLS=" << (tlsEnv != nullptr ? tlsEnv : "(all)")
                           << ": if such a peer dies or stops, UCX may abort this process instead of failing the "
                              "call. Transports with peer failure reports: tcp, rc/ud/dc (e.g. UCX_TLS=tcp,self), or "
                              "use the shm backend");
  }

  // Control regions: allocate, register, exchange addresses and rkeys.
  control_ = mapMemory(nullptr, ctl_.bytes(), true);
  std::memset(control_->base, 0, ctl_.bytes());
  std::vector<std::uint64_t> keyLens(static_cast<std::size_t>(size_));
  std::uint64_t myKeyLen = control_->packed.size();
  bootstrap_->allGather(&myKeyLen, keyLens.data(), sizeof(myKeyLen)).throwIfError();
  const std::size_t maxKey = *std::max_element(keyLens.begin(), keyLens.end());
  const std::size_t krec = sizeof(std::uint64_t) + maxKey;
  std::vector<std::byte> kmine(krec, std::byte{0});
  const auto caddr = reinterpret_cast<std::uint64_t>(control_->base);
  std::memcpy(kmine.data(), &caddr, sizeof(caddr));
  std::memcpy(kmine.data() + sizeof(caddr), control_->packed.data(), control_->packed.size());
  std::vector<std::byte> kall(krec * static_cast<std::size_t>(size_));
  bootstrap_->allGather(kmine.data(), kall.data(), krec).throwIfError();
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    Peer& p = peers_[static_cast<std::size_t>(q)];
    const std::byte* r = kall.data() + static_cast<std::size_t>(q) * krec;
    std::memcpy(&p.controlAddr, r, sizeof(p.controlAddr));
    ucsCheck(ucp_ep_rkey_unpack(p.ep, r + sizeof(std::uint64_t), &p.controlRkey),
             "ucx: ucp_ep_rkey_unpack (control region of rank " + std::to_string(q) + ")");
  }
  peerDescCopy_.resize(static_cast<std::size_t>(size_));
  // Every control region is zeroed before anyone may write into it.
  bootstrap_->barrier().throwIfError();
}

UcxTransport::~UcxTransport() {
  if (!failed_) {
    // Every peer gets here (progressing, so that the last acknowledgements flow) before the endpoints go.
    leavingBarrier(10.0);
    ucp_request_param_t prm{};
    void* r = ucp_worker_flush_nbx(worker_, &prm);
    if (UCS_PTR_IS_PTR(r)) {
      progressFor(2.0, [&] { return ucp_request_check_status(r) != UCS_INPROGRESS; });
      ucp_request_free(r);
    }
  }
  for (auto& [req, peer] : background_.reqs) {
    if (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_request_cancel(worker_, req);
    ucp_request_free(req);
  }
  background_.reqs.clear();
  for (auto& l : lanes_) {
    for (auto& [req, peer] : l.reqs) {
      ucp_request_cancel(worker_, req);
      ucp_request_free(req);
    }
  }
  for (Peer& p : peers_) p.notices.cancel(worker_);
  for (Peer& p : peers_) {
    // Closing: nothing more goes to the peer, acknowledgements of its late messages included.
    if (p.ep != nullptr) failedEndpoints().note(p.ep);
  }
  for (Peer& p : peers_) {
    for (auto& [id, key] : p.rkeys) ucp_rkey_destroy(key);
    if (p.controlRkey != nullptr) ucp_rkey_destroy(p.controlRkey);
    if (p.ep != nullptr) {
      ucp_request_param_t cp{};
      cp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      cp.flags = UCP_EP_CLOSE_FLAG_FORCE;
      void* r = ucp_ep_close_nbx(p.ep, &cp);
      if (UCS_PTR_IS_PTR(r)) {
        progressFor(1.0, [&] { return ucp_request_check_status(r) != UCS_INPROGRESS; });
        ucp_request_free(r);
      }
    }
  }
  for (auto* slot : {&scratch_, &sems_, &layout_, &control_}) {
    if (*slot) unmap(**slot);
  }
  for (auto& reg : userRegs_) unmap(*reg);
  if (worker_ != nullptr) ucp_worker_destroy(worker_);
  // Only now can no handler run for these endpoints; their memory may serve a later worker's.
  for (Peer& p : peers_) failedEndpoints().forget(p.ep);
  if (context_ != nullptr) ucp_cleanup(context_);
}

void UcxTransport::keepListenersOnBootstrapInterface(ucp_config_t* config) {
  const char* tlsEnv = std::getenv("UCX_TLS");
  const std::string tls = !tls_.empty() ? tls_ : (tlsEnv != nullptr ? tlsEnv : "");
  if (std::getenv("UCX_NET_DEVICES") != nullptr || !ipOrLocalOnly(tls)) return;
  const std::string address = bootstrap_->localAddress();
  const std::string device = interfaceOf(address);
  if (device.empty()) return;
  if (ucp_config_modify(config, "NET_DEVICES", device.c_str()) == UCS_OK) {
    COPRO_LOG(
        Info, Init,
        "ucx: rank " << rank_ << ": UCX_NET_DEVICES=" << device << " (the bootstrap's interface, " << address << ")");
  }
}

void UcxTransport::markDead(int peer, const std::string& reason) {
  Peer& p = peers_[static_cast<std::size_t>(peer)];
  if (!p.dead) {
    p.dead = true;
    p.deadReason = reason;
  }
  failedEndpoints().note(p.ep);
}

void UcxTransport::progressFor(double seconds, const std::function<bool()>& done) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (!done() && Clock::now() < end) {
    if (ucp_worker_progress(worker_) == 0) remote::idlePause(0);
  }
}

std::unique_ptr<Registration> UcxTransport::mapMemory(void* address, std::size_t bytes, bool allocate) {
  auto reg = std::make_unique<Registration>();
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  mp.address = address;
  mp.length = std::max<std::size_t>(bytes, 1);
  mp.flags = allocate ? UCP_MEM_MAP_ALLOCATE : 0;
  const ucs_status_t st = ucp_mem_map(context_, &mp, &reg->memh);
  if (st != UCS_OK) {
    throw core::Error(st == UCS_ERR_NO_MEMORY ? ErrorCode::kOutOfMemory : ErrorCode::kSystemError,
                      "ucx: ucp_mem_map of " + std::to_string(bytes) + " bytes: " + ucs_status_string(st));
  }
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  ucsCheck(ucp_mem_query(reg->memh, &attr), "ucx: ucp_mem_query");
  reg->base = static_cast<std::byte*>(attr.address);
  reg->bytes = allocate ? bytes : attr.length;
  reg->allocated = allocate;
  void* packed = nullptr;
  std::size_t packedLen = 0;
  ucsCheck(ucp_rkey_pack(context_, reg->memh, &packed, &packedLen), "ucx: ucp_rkey_pack");
  reg->packed.assign(static_cast<std::byte*>(packed), static_cast<std::byte*>(packed) + packedLen);
  ucp_rkey_buffer_release(packed);
  reg->id = nextRegId_++;
  return reg;
}

void UcxTransport::unmap(Registration& reg) {
  if (reg.memh != nullptr) ucp_mem_unmap(context_, reg.memh);
  reg.memh = nullptr;
}

std::byte* UcxTransport::ownedAtLeast(std::unique_ptr<Registration>& slot, std::size_t bytes) {
  if (slot != nullptr && slot->bytes >= bytes) return slot->base;
  // Called only when entering a call: no peer can still write the old memory (every access of the
  // earlier calls happened before this rank completed them), and the new descriptor names the new one.
  auto fresh = mapMemory(nullptr, bytes, true);
  std::memset(fresh->base, 0, bytes);
  if (slot) unmap(*slot);
  slot = std::move(fresh);
  return slot->base;
}

Registration& UcxTransport::registrationFor(std::byte* ptr, std::size_t bytes) {
  for (auto* owned : {&scratch_, &sems_, &layout_}) {
    if (*owned && (*owned)->contains(ptr, bytes)) return **owned;
  }
  for (auto& reg : userRegs_) {
    if (reg->contains(ptr, bytes)) return *reg;
  }
  userRegs_.push_back(mapMemory(ptr, bytes, false));
  COPRO_LOG(Trace, Alloc, "ucx: registered " << bytes << " bytes at " << static_cast<const void*>(ptr) << " on demand");
  return *userRegs_.back();
}

Status UcxTransport::enter(const remote::CallEntry& entry) {
  seq_ = entry.seq;
  for (LaneState& l : lanes_) {
    l.dirty.assign(static_cast<std::size_t>(size_), false);
    l.unflushed.assign(static_cast<std::size_t>(size_), false);
    l.operands.clear();
  }
  // Build the descriptor: regions (BufferId order) and the semaphore array, each rkey packed once.
  const std::size_t nregions = entry.regions.size() + 1;
  std::vector<DescRegion> recs(nregions);
  std::vector<const Registration*> regs(nregions, nullptr);
  try {
    for (std::size_t i = 0; i < entry.regions.size(); ++i) {
      const Region& r = entry.regions[i];
      recs[i].addr = reinterpret_cast<std::uint64_t>(r.base);
      recs[i].limit = r.limit;
      recs[i].writable = r.writable ? 1 : 0;
      if (r.base != nullptr && r.limit > 0) regs[i] = &registrationFor(r.base, r.limit);
    }
    const auto* semBase = reinterpret_cast<std::byte*>(entry.semaphores);
    recs.back().addr = reinterpret_cast<std::uint64_t>(semBase);
    recs.back().limit = static_cast<std::uint64_t>(entry.numSemaphores) * sizeof(std::uint64_t);
    recs.back().writable = 1;
    regs.back() = sems_.get();
  } catch (const core::Error& e) {
    return {e.code(), e.message()};
  }
  std::size_t bytes = sizeof(DescHeader) + nregions * sizeof(DescRegion);
  std::map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> blobs;  // id -> (offset, length)
  for (std::size_t i = 0; i < nregions; ++i) {
    if (regs[i] == nullptr) continue;
    recs[i].regId = regs[i]->id;
    auto it = blobs.find(regs[i]->id);
    if (it == blobs.end()) {
      it = blobs
               .emplace(regs[i]->id, std::make_pair(static_cast<std::uint32_t>(bytes),
                                                    static_cast<std::uint32_t>(regs[i]->packed.size())))
               .first;
      bytes += regs[i]->packed.size();
    }
    recs[i].rkeyOffset = it->second.first;
    recs[i].rkeyBytes = it->second.second;
  }
  if (bytes > kMailboxBytes) {
    return {ErrorCode::kUnsupported, "ucx: the call's buffer descriptor needs " + std::to_string(bytes) +
                                         " bytes, more than a mailbox holds (" + std::to_string(kMailboxBytes) +
                                         "); use fewer extra buffers per call"};
  }
  auto desc = std::make_shared<std::vector<std::byte>>(bytes, std::byte{0});
  DescHeader h;
  h.seq = seq_;
  h.numRegions = static_cast<std::uint32_t>(nregions);
  h.totalBytes = static_cast<std::uint32_t>(bytes);
  std::memcpy(desc->data(), &h, sizeof(h));
  std::memcpy(desc->data() + sizeof(h), recs.data(), nregions * sizeof(DescRegion));
  for (std::size_t i = 0; i < nregions; ++i) {
    if (regs[i] != nullptr) std::memcpy(desc->data() + recs[i].rkeyOffset, regs[i]->packed.data(), recs[i].rkeyBytes);
  }
  // Publish: descriptor into every peer's mailbox, flush, then entered += 1, in the background
  // (ucx_entry_notices.hpp): a peer that takes no part in this call need not progress for it to complete.
  for (int q = 0; q < size_; ++q) {
    Peer& p = peers_[static_cast<std::size_t>(q)];
    if (q != rank_ && !p.dead) p.notices.push(desc, seq_);
  }
  bool progressed = false;
  return advanceNotices(progressed);
}

Status UcxTransport::advanceNotices(bool& progressed) {
  for (int q = 0; q < size_; ++q) {
    Peer& p = peers_[static_cast<std::size_t>(q)];
    if (q == rank_ || p.dead || p.notices.empty()) continue;
    const NoticeTarget target{p.ep, p.controlAddr + ctl_.mailbox(rank_), p.controlAddr + ctl_.entered(rank_),
                              p.controlRkey};
    const ucs_status_t st = p.notices.advance(target, progressed);
    if (st == UCS_OK) continue;
    if (p.dead) return peerFailure(q);
    return ucsStatus(st, "ucx: entry notice to rank " + std::to_string(q));
  }
  return {};
}

Status UcxTransport::peerFailure(int peer) {
  const Peer& p = peers_[static_cast<std::size_t>(peer)];
  // A peer's `failed` word: 1 when it failed on its own, c + 2 when it gave up after rank c failed.
  const std::uint64_t v = controlWord(ctl_.failed(peer)).load(std::memory_order_acquire);
  if (v >= 2 && v - 2 < static_cast<std::uint64_t>(size_) && static_cast<int>(v - 2) != rank_ &&
      static_cast<int>(v - 2) != peer) {
    const int cause = static_cast<int>(v - 2);
    if (firstFailedPeer_ < 0) firstFailedPeer_ = cause;
    return {ErrorCode::kRemoteError, "blocked while rank " + std::to_string(cause) + " failed (peer " +
                                         std::to_string(peer) + " reported that failure before it left)"};
  }
  if (firstFailedPeer_ < 0) firstFailedPeer_ = peer;
  if (p.dead && controlWord(ctl_.leaving(peer)).load(std::memory_order_acquire) != 0) {
    // Its destructor's barrier (leavingBarrier) gave up waiting for this rank, which was still in a call.
    return {ErrorCode::kRemoteError, "rank " + std::to_string(peer) +
                                         " destroyed its communicator and closed its endpoints while this rank "
                                         "was still in this call (then " +
                                         p.deadReason + ")"};
  }
  if (p.dead) return {ErrorCode::kRemoteError, "rank " + std::to_string(peer) + " died: " + p.deadReason};
  return {ErrorCode::kRemoteError, "rank " + std::to_string(peer) + " failed or aborted"};
}

Reach UcxTransport::reach(int peer, Status& error) {
  Peer& p = peers_[static_cast<std::size_t>(peer)];
  if (p.dead || controlWord(ctl_.failed(peer)).load(std::memory_order_acquire) != 0) {
    error = peerFailure(peer);
    return Reach::kFailed;
  }
  if (p.descSeq == seq_) return Reach::kReady;
  const std::uint64_t entered = controlWord(ctl_.entered(peer)).load(std::memory_order_acquire);
  if (entered < seq_) return Reach::kNotYet;
  if (entered > seq_) {
    error = Status(ErrorCode::kInvalidProgram,
                   "rank " + std::to_string(peer) + " already finished call " + std::to_string(seq_) +
                       ": the Program lets it complete before this access (a missing signal/wait pair)");
    return Reach::kFailed;
  }
  // Copy the mailbox, then check that it still holds this call's descriptor.
  const std::byte* box = control_->base + ctl_.mailbox(peer);
  DescHeader h;
  std::memcpy(&h, box, sizeof(h));
  if (h.seq != seq_ || h.totalBytes > kMailboxBytes) {
    error = Status(ErrorCode::kInternal, "ucx: descriptor of rank " + std::to_string(peer) + " is for call " +
                                             std::to_string(h.seq) + ", not " + std::to_string(seq_));
    return Reach::kFailed;
  }
  std::vector<std::byte>& copy = peerDescCopy_[static_cast<std::size_t>(peer)];
  copy.assign(box, box + h.totalBytes);
  p.regions.assign(h.numRegions, RemoteRegion{});
  for (std::uint32_t i = 0; i < h.numRegions; ++i) {
    DescRegion rec;
    std::memcpy(&rec, copy.data() + sizeof(DescHeader) + i * sizeof(DescRegion), sizeof(rec));
    RemoteRegion& rr = p.regions[i];
    rr.addr = rec.addr;
    rr.limit = rec.limit;
    rr.writable = rec.writable != 0;
    if (rec.regId == 0) continue;
    auto it = p.rkeys.find(rec.regId);
    if (it == p.rkeys.end()) {
      ucp_rkey_h key = nullptr;
      const ucs_status_t st = ucp_ep_rkey_unpack(p.ep, copy.data() + rec.rkeyOffset, &key);
      if (st != UCS_OK) {
        error = ucsStatus(st, "ucx: ucp_ep_rkey_unpack (rank " + std::to_string(peer) + ")");
        return Reach::kFailed;
      }
      it = p.rkeys.emplace(rec.regId, key).first;
    }
    rr.rkey = it->second;
  }
  p.descSeq = seq_;
  return Reach::kReady;
}

Status UcxTransport::track(LaneState& l, ucs_status_ptr_t r, int peer, const char* what) {
  if (r == nullptr) return {};
  if (UCS_PTR_IS_ERR(r)) {
    const ucs_status_t st = UCS_PTR_STATUS(r);
    if (peers_[static_cast<std::size_t>(peer)].dead) return peerFailure(peer);
    return ucsStatus(st, std::string("ucx: ") + what + " to rank " + std::to_string(peer));
  }
  l.reqs.emplace_back(r, peer);
  return {};
}

Status UcxTransport::put(int lane, std::uint32_t /*opIndex*/, int peer, BufferId buf, std::uint64_t offset,
                         const std::byte* src, std::uint64_t bytes, std::int32_t sem, std::uint64_t value) {
  Peer& p = peers_[static_cast<std::size_t>(peer)];
  const auto b = static_cast<std::size_t>(buf);
  if (b + 1 >= p.regions.size()) {
    return {ErrorCode::kInvalidProgram, "dst buffer " + core::bufferName(buf) + " of rank " + std::to_string(peer) +
                                            " does not exist (the call has " +
                                            std::to_string(p.regions.size() - 1 - core::kNumBuffers) +
                                            " extra buffers there)"};
  }
  const RemoteRegion& rr = p.regions[b];
  LaneState& l = laneState(lane);
  if (p.dead) return peerFailure(peer);
  if (bytes > 0) {
    if (!rr.writable) {
      return {ErrorCode::kInvalidProgram, "dst " + core::bufferName(buf) + " of rank " + std::to_string(peer) +
                                              " is read-only (the input of an out-of-place call)"};
    }
    ucp_request_param_t prm{};
    void* r = ucp_put_nbx(p.ep, src, bytes, rr.addr + offset, rr.rkey, &prm);
    COPRO_RETURN_IF_ERROR(track(l, r, peer, "ucp_put_nbx"));
    l.dirty[static_cast<std::size_t>(peer)] = true;
    l.unflushed[static_cast<std::size_t>(peer)] = true;
  }
  if (sem >= 0) return signal(lane, 0, peer, sem, value);
  return {};
}

Status UcxTransport::get(int lane, std::uint32_t /*opIndex*/, int peer, BufferId buf, std::uint64_t offset,
                         std::byte* dst, std::uint64_t bytes) {
  Peer& p = peers_[static_cast<std::size_t>(peer)];
  const auto b = static_cast<std::size_t>(buf);
  if (b + 1 >= p.regions.size()) {
    return {ErrorCode::kInvalidProgram,
            "src buffer " + core::bufferName(buf) + " of rank " + std::to_string(peer) + " does not exist there"};
  }
  if (bytes == 0) return {};
  if (p.dead) return peerFailure(peer);
  ucp_request_param_t prm{};
  void* r = ucp_get_nbx(p.ep, dst, bytes, p.regions[b].addr + offset, p.regions[b].rkey, &prm);
  return track(laneState(lane), r, peer, "ucp_get_nbx");
}

Status UcxTransport::signal(int lane, std::uint32_t /*opIndex*/, int peer, std::int32_t sem, std::uint64_t value) {
  LaneState& l = laneState(lane);
  Peer& p = peers_[static_cast<std::size_t>(peer)];
  if (p.dead) return peerFailure(peer);
  const bool earlier =
      std::any_of(l.signals.begin(), l.signals.end(), [&](const PendingSignal& s) { return s.peer == peer; });
  void* flushReq = nullptr;
  if (l.dirty[static_cast<std::size_t>(peer)]) {
    // The data before this signal must be at the target first, whatever UCT lanes carry data and atomics.
    ucp_request_param_t prm{};
    void* f = ucp_ep_flush_nbx(p.ep, &prm);
    if (UCS_PTR_IS_ERR(f)) return ucsStatus(UCS_PTR_STATUS(f), "ucx: ucp_ep_flush_nbx to rank " + std::to_string(peer));
    flushReq = UCS_PTR_IS_PTR(f) ? f : nullptr;
    l.dirty[static_cast<std::size_t>(peer)] = false;
  }
  if (flushReq == nullptr && !earlier) {
    const RemoteRegion& semRegion = p.regions.back();
    return issueAtomicAdd(l, peer, semRegion.addr + static_cast<std::uint64_t>(sem) * 8, semRegion.rkey, value);
  }
  l.signals.push_back(PendingSignal{flushReq, peer, sem, value});
  return {};
}

Status UcxTransport::issueAtomicAdd(LaneState& l, int peer, std::uint64_t raddr, ucp_rkey_h rkey, std::uint64_t value) {
  if (peers_[static_cast<std::size_t>(peer)].dead) return peerFailure(peer);
  l.operands.push_back(value);
  ucp_request_param_t prm{};
  prm.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE;
  prm.datatype = ucp_dt_make_contig(sizeof(std::uint64_t));
  void* r = ucp_atomic_op_nbx(peers_[static_cast<std::size_t>(peer)].ep, UCP_ATOMIC_OP_ADD, &l.operands.back(), 1,
                              raddr, rkey, &prm);
  // Local completion of a posted atomic says nothing about its delivery (over tcp it is an active
  // message still queued here): the end of the lane flushes the endpoint (in the background).
  if (l.unflushed.size() == static_cast<std::size_t>(size_)) l.unflushed[static_cast<std::size_t>(peer)] = true;
  return track(l, r, peer, "ucp_atomic_op_nbx");
}

Status UcxTransport::issueSignals(LaneState& l, bool& progressed) {
  // In order per peer: a signal goes out once its flush completed and every earlier one to that peer did.
  std::vector<bool> blocked(static_cast<std::size_t>(size_), false);
  for (auto it = l.signals.begin(); it != l.signals.end();) {
    PendingSignal& s = *it;
    const auto pi = static_cast<std::size_t>(s.peer);
    if (blocked[pi]) {
      ++it;
      continue;
    }
    if (s.flushReq != nullptr) {
      const ucs_status_t st = ucp_request_check_status(s.flushReq);
      if (st == UCS_INPROGRESS) {
        blocked[pi] = true;
        ++it;
        continue;
      }
      ucp_request_free(s.flushReq);
      s.flushReq = nullptr;
      if (st != UCS_OK) {
        if (peers_[pi].dead) return peerFailure(s.peer);
        return ucsStatus(st, "ucx: endpoint flush to rank " + std::to_string(s.peer));
      }
    }
    const RemoteRegion& semRegion = peers_[pi].regions.back();
    COPRO_RETURN_IF_ERROR(
        issueAtomicAdd(l, s.peer, semRegion.addr + static_cast<std::uint64_t>(s.sem) * 8, semRegion.rkey, s.value));
    it = l.signals.erase(it);
    progressed = true;
  }
  return {};
}

Status UcxTransport::flushLane(int lane, bool& done) {
  return flushLaneState(laneState(lane), done);
}

Status UcxTransport::flushLaneState(LaneState& l, bool& done, bool background) {
  bool progressed = false;
  COPRO_RETURN_IF_ERROR(issueSignals(l, progressed));
  done = false;
  if (!l.signals.empty()) return checkPeers();
  for (int q = 0; q < size_; ++q) {
    // An explicit flush completes the lane's puts (its signals need no acknowledgement: over tcp that
    // would wait for a target that may already have left the call). The end of a lane also pushes the
    // signals out, in the background.
    const auto qi = static_cast<std::size_t>(q);
    if (!(background ? l.unflushed[qi] : l.dirty[qi])) continue;
    if (peers_[qi].dead) return peerFailure(q);
    ucp_request_param_t prm{};
    void* f = ucp_ep_flush_nbx(peers_[static_cast<std::size_t>(q)].ep, &prm);
    // At the end of a lane the targets may already have completed the call (they got the signals) and
    // stopped progressing (tcp needs the target's progress to acknowledge): local completion is enough
    // there, and the flush finishes in the background.
    COPRO_RETURN_IF_ERROR(track(background ? background_ : l, f, q, "ucp_ep_flush_nbx"));
    l.dirty[static_cast<std::size_t>(q)] = false;
    l.unflushed[static_cast<std::size_t>(q)] = false;
  }
  for (auto it = l.reqs.begin(); it != l.reqs.end();) {
    const ucs_status_t st = ucp_request_check_status(it->first);
    if (st == UCS_INPROGRESS) {
      ++it;
      continue;
    }
    const int peer = it->second;
    ucp_request_free(it->first);
    it = l.reqs.erase(it);
    if (st != UCS_OK) {
      if (peers_[static_cast<std::size_t>(peer)].dead) return peerFailure(peer);
      return ucsStatus(st, "ucx: operation to rank " + std::to_string(peer));
    }
  }
  if (!l.reqs.empty()) return checkPeers();
  l.operands.clear();
  done = true;
  return {};
}

Status UcxTransport::checkPeers() {
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    if (peers_[static_cast<std::size_t>(q)].dead || controlWord(ctl_.failed(q)).load(std::memory_order_acquire) != 0) {
      failed_ = true;
      return peerFailure(q);
    }
  }
  const auto now = Clock::now();
  if (now - lastLivenessCheck_ > std::chrono::milliseconds(100)) {
    lastLivenessCheck_ = now;
    // A peer process on this host that is gone cannot answer; say so instead of waiting for the timeout.
    for (int q = 0; q < size_; ++q) {
      Peer& p = peers_[static_cast<std::size_t>(q)];
      if (q == rank_ || !p.sameHost || p.pid <= 0) continue;
      if (!processAlive(p.pid)) {
        markDead(q, "its process (pid " + std::to_string(p.pid) + " on this host) has exited");
        failed_ = true;
        return peerFailure(q);
      }
    }
  }
  return {};
}

Status UcxTransport::progress(bool& progressed) {
  for (int i = 0; i < 64 && ucp_worker_progress(worker_) != 0; ++i) progressed = true;
  COPRO_RETURN_IF_ERROR(advanceNotices(progressed));
  for (LaneState& l : lanes_) COPRO_RETURN_IF_ERROR(issueSignals(l, progressed));
  reapBackground();
  return checkPeers();
}

Status UcxTransport::finishCall(bool& done) {
  // Nothing to wait for: the entry notices go on in the background (each holds its own descriptor), since
  // over tcp they need the acknowledgement of peers that may have completed the call and left.
  bool progressed = false;
  COPRO_RETURN_IF_ERROR(advanceNotices(progressed));
  done = true;
  return {};
}

void UcxTransport::reapBackground() {
  for (auto it = background_.reqs.begin(); it != background_.reqs.end();) {
    if (ucp_request_check_status(it->first) == UCS_INPROGRESS) {
      ++it;
      continue;
    }
    ucp_request_free(it->first);
    it = background_.reqs.erase(it);
  }
}

void UcxTransport::leavingBarrier(double seconds) {
  LaneState l;
  l.unflushed.assign(static_cast<std::size_t>(size_), false);
  for (int q = 0; q < size_; ++q) {
    Peer& p = peers_[static_cast<std::size_t>(q)];
    if (q == rank_ || p.dead) continue;
    (void)issueAtomicAdd(l, q, p.controlAddr + ctl_.leaving(rank_), p.controlRkey, 1);
  }
  progressFor(seconds, [&] {
    reapBackground();
    for (int q = 0; q < size_; ++q) {
      if (q == rank_ || peers_[static_cast<std::size_t>(q)].dead) continue;
      if (controlWord(ctl_.leaving(q)).load(std::memory_order_acquire) == 0) return false;
    }
    return std::all_of(l.reqs.begin(), l.reqs.end(),
                       [](const auto& r) { return ucp_request_check_status(r.first) != UCS_INPROGRESS; });
  });
  for (auto& [req, peer] : l.reqs) {
    if (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_request_cancel(worker_, req);
    ucp_request_free(req);
  }
  std::vector<int> late;
  for (int q = 0; q < size_; ++q) {
    if (q == rank_ || peers_[static_cast<std::size_t>(q)].dead) continue;
    if (controlWord(ctl_.leaving(q)).load(std::memory_order_acquire) == 0) late.push_back(q);
  }
  if (!late.empty()) {
    COPRO_LOG(Warn, Transport,
              name_ << ": rank " << rank_ << ": destroying the communicator after call " << seq_ << ": "
                    << remote::rankList(late) << " did not reach their own destruction within "
                    << calls::formatSeconds(seconds)
                    << " s (still in a call?); closing the endpoints anyway, so their calls fail");
  }
}

std::string UcxTransport::stallReport() {
  std::vector<int> missing;
  std::vector<int> dead;
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    if (peers_[static_cast<std::size_t>(q)].dead) {
      dead.push_back(q);
    } else if (controlWord(ctl_.entered(q)).load(std::memory_order_acquire) < seq_) {
      missing.push_back(q);
    }
  }
  std::string out;
  if (!missing.empty()) out = remote::rankList(missing) + " never entered this call";
  if (!dead.empty()) out += (out.empty() ? "" : "; ") + remote::rankList(dead) + " died";
  if (out.empty()) out = "every rank entered this call";
  return out + "; " + inFlightReport();
}

std::string UcxTransport::inFlightReport() {
  std::string out;
  const auto add = [this, &out](const std::string& who, const LaneState& l) {
    const std::string part = laneInFlight(l);
    if (!part.empty()) out += (out.empty() ? "" : ", ") + who + ": " + part;
  };
  for (std::size_t i = 0; i < lanes_.size(); ++i) add("lane " + std::to_string(i), lanes_[i]);
  add("background", background_);
  for (int q = 0; q < size_; ++q) {
    const std::string notice = peers_[static_cast<std::size_t>(q)].notices.describe();
    if (!notice.empty()) out += (out.empty() ? "" : ", ") + std::string("to rank ") + std::to_string(q) + ": " + notice;
  }
  return "ucx requests in flight: " + (out.empty() ? std::string("none") : out);
}

std::string UcxTransport::laneInFlight(const LaneState& l) const {
  std::map<int, int> requests;  // peer -> requests not completed
  for (const auto& [req, peer] : l.reqs) {
    if (ucp_request_check_status(req) == UCS_INPROGRESS) ++requests[peer];
  }
  std::string out;
  for (const auto& [peer, n] : requests) {
    out += (out.empty() ? "" : ", ") + std::to_string(n) + (n == 1 ? " request" : " requests") + " to rank " +
           std::to_string(peer);
  }
  for (std::size_t q = 0; q < l.dirty.size(); ++q) {
    if (l.dirty[q])
      out += (out.empty() ? "" : ", ") + std::string("puts to rank ") + std::to_string(q) + " not flushed";
  }
  for (const PendingSignal& s : l.signals) {
    out += (out.empty() ? "" : ", ") + std::string("a signal to rank ") + std::to_string(s.peer) + " (semaphore " +
           std::to_string(s.sem) + ")" + (s.flushReq != nullptr ? " waits for its endpoint flush" : " not issued yet");
  }
  return out;
}

void UcxTransport::announceFailure(const std::string& /*reason*/) {
  failed_ = true;
  if (announced_) return;
  announced_ = true;
  LaneState l;
  l.unflushed.assign(static_cast<std::size_t>(size_), false);
  std::vector<bool> awaited(static_cast<std::size_t>(size_), false);
  for (int q = 0; q < size_; ++q) {
    Peer& p = peers_[static_cast<std::size_t>(q)];
    if (q == rank_ || p.dead) continue;
    (void)issueAtomicAdd(l, q, p.controlAddr + ctl_.failed(rank_), p.controlRkey,
                         firstFailedPeer_ >= 0 ? static_cast<std::uint64_t>(firstFailedPeer_) + 2 : 1);
    // The flush completes when the peer has acknowledged everything this rank sent it, the notice
    // included: it then knows the cause before this rank's endpoints close and cannot be left with
    // unread messages of this rank (which UCX 1.13 would acknowledge over the failed endpoint and abort).
    ucp_request_param_t prm{};
    (void)track(l, ucp_ep_flush_nbx(p.ep, &prm), q, "ucp_ep_flush_nbx");
    awaited[static_cast<std::size_t>(q)] = !(p.sameHost && processStopped(p.pid));  // a stopped one never answers
  }
  // Best effort, bounded: a dead or stopped peer never acknowledges.
  progressFor(kAnnounceSeconds, [&] {
    return std::all_of(l.reqs.begin(), l.reqs.end(), [&](const auto& r) {
      return !awaited[static_cast<std::size_t>(r.second)] || ucp_request_check_status(r.first) != UCS_INPROGRESS;
    });
  });
  for (auto& [req, peer] : l.reqs) {
    if (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_request_cancel(worker_, req);
    ucp_request_free(req);
  }
}

Status UcxTransport::registerBuffer(void* ptr, std::size_t bytes) {
  if (ptr == nullptr || bytes == 0) {
    return {ErrorCode::kInvalidArgument, "ucx registerBuffer: null pointer or zero bytes"};
  }
  try {
    (void)registrationFor(static_cast<std::byte*>(ptr), bytes);
  } catch (const core::Error& e) {
    return {e.code(), e.message()};
  }
  return {};
}

Status UcxTransport::deregisterBuffer(void* ptr) {
  if (dropRegistration(
          userRegs_, ptr, [](const Registration& r) { return !r.allocated; }, [this](Registration& r) { unmap(r); })) {
    return {};
  }
  return {ErrorCode::kInvalidArgument, "ucx deregisterBuffer: no registration starts at this address"};
}

void* UcxTransport::allocate(std::size_t bytes) {
  userRegs_.push_back(mapMemory(nullptr, bytes, true));
  return userRegs_.back()->base;
}

void UcxTransport::deallocate(void* ptr) {
  dropRegistration(
      userRegs_, ptr, [](const Registration& r) { return r.allocated; }, [this](Registration& r) { unmap(r); });
}

std::unique_ptr<remote::RemoteTransport> UcxTransport::split(int color, int key, std::vector<int>& members) {
  std::shared_ptr<core::Bootstrap> sub = bootstrap_->split(color, key);
  if (!sub) return nullptr;
  members.assign(static_cast<std::size_t>(sub->size()), 0);
  sub->allGather(&rank_, members.data(), sizeof(int)).throwIfError();
  return std::make_unique<UcxTransport>(std::move(sub), tls_, name_);
}

}  // namespace

/// Whether `ep` is an endpoint whose peer failed (see the hook below).
bool endpointFailed(ucp_ep_h ep) {
  return failedEndpoints().has(ep);
}

}  // namespace ucx
}  // namespace copro::transport

// UCX 1.13's acknowledgement of a software-emulated put or atomic (the only kind over tcp): the handler
// of an arriving put/atomic calls ucp_rma_sw_send_cmpl(ep) on the sender's endpoint, and when that
// endpoint already failed (the sender died with the message still unread in another socket, or left
// while this rank was stopped) the send fails and UCX aborts the process ("ucp_request.inl:346 Fatal:
// unexpected error: Endpoint timeout"), peer error handling or not. This definition takes the place of
// UCX's (libucp calls it through its PLT, and the program's definition comes first): it drops the
// acknowledgement to a peer that copro saw fail (nobody waits for it) and hands every other call to
// UCX's own (looked up in libucp). Versions without the function never call it (docs/ucx.md, "Failures").
extern "C" __attribute__((visibility("default"))) void ucp_rma_sw_send_cmpl(ucp_ep_h ep) {
  if (copro::transport::ucx::endpointFailed(ep)) return;
  using Next = void (*)(ucp_ep_h);
  // UCX's definition: looked up in libucp itself (whatever the load order), else the next one.
  static const Next next = [] {
    void* lib = dlopen("libucp.so.0", RTLD_LAZY | RTLD_NOLOAD);
    void* f = lib != nullptr ? dlsym(lib, "ucp_rma_sw_send_cmpl") : nullptr;
    if (f == nullptr || f == reinterpret_cast<void*>(&ucp_rma_sw_send_cmpl))
      f = dlsym(RTLD_NEXT, "ucp_rma_sw_send_cmpl");
    return reinterpret_cast<Next>(f);
  }();
  if (next != nullptr) next(ep);
}

namespace {

/// The sockets whose failed send the hook below turned into "nothing sent yet" (one bit per descriptor
/// below 65536): the next failure on them goes to UCX as it is, and a successful send clears the bit (the
/// descriptor was reused for a new connection).
class DeferredSocketFailures {
 public:
  /// Whether `fd`'s failure was deferred already; marks it deferred otherwise.
  bool deferredBefore(int fd) {
    if (fd < 0 || fd >= kFds) return true;  // untracked: never deferred
    return (bits_[word(fd)].fetch_or(bit(fd)) & bit(fd)) != 0;
  }
  void clear(int fd) {
    if (fd < 0 || fd >= kFds) return;
    if ((bits_[word(fd)].load(std::memory_order_relaxed) & bit(fd)) != 0) bits_[word(fd)].fetch_and(~bit(fd));
  }

 private:
  static constexpr int kFds = 1 << 16;
  static std::size_t word(int fd) { return static_cast<std::size_t>(fd) / 64; }
  static std::uint64_t bit(int fd) { return std::uint64_t{1} << (static_cast<unsigned>(fd) % 64); }
  std::array<std::atomic<std::uint64_t>, kFds / 64> bits_{};
};

DeferredSocketFailures& deferredSocketFailures() {
  static auto* set = new DeferredSocketFailures;  // never destroyed: UCX may send during exit
  return *set;
}

}  // namespace

// UCX 1.13's tcp transport sends with ucs_socket_send_nb (libucs, called through libuct's PLT). When
// the send of an acknowledgement or a get reply that UCX generates inside a message handler (put, get,
// atomic from a peer) fails because the peer just died or closed, tcp returns "Endpoint timeout" and
// UCX aborts the process (ucp_request.inl:346, ucp_request_try_send), before any endpoint error reaches
// copro. This definition takes the place of libucs's for the whole process (the program's, or
// libcopro.so's, which exports it: src/libcopro.map) and reports a socket's first failed send as "nothing
// sent yet": tcp keeps the message queued, waits for the socket to become writable, and its next send
// (or receive) meets the failure on the progress path, which UCX reports as the peer's failure (peer
// error handling) instead of aborting (docs/ucx.md, "Failures").
extern "C" __attribute__((visibility("default"))) ucs_status_t ucs_socket_send_nb(int fd, const void* data,
                                                                                  size_t* length_p) {
  using Next = ucs_status_t (*)(int, const void*, size_t*);
  static const Next next = [] {
    void* lib = dlopen("libucs.so.0", RTLD_LAZY | RTLD_NOLOAD);
    void* f = lib != nullptr ? dlsym(lib, "ucs_socket_send_nb") : nullptr;
    if (f == nullptr || f == reinterpret_cast<void*>(&ucs_socket_send_nb)) f = dlsym(RTLD_NEXT, "ucs_socket_send_nb");
    return reinterpret_cast<Next>(f);
  }();
  if (next == nullptr) return UCS_ERR_UNSUPPORTED;
  const ucs_status_t status = next(fd, data, length_p);
  if (status == UCS_OK) {
    deferredSocketFailures().clear(fd);
  } else if (status != UCS_ERR_NO_PROGRESS && !deferredSocketFailures().deferredBefore(fd)) {
    *length_p = 0;
    return UCS_ERR_NO_PROGRESS;
  }
  return status;
}

namespace copro::transport {

std::unique_ptr<remote::RemoteTransport> makeUcxTransport(std::shared_ptr<core::Bootstrap> bootstrap,
                                                          const std::string& tls, const std::string& name) {
  return std::make_unique<ucx::UcxTransport>(std::move(bootstrap), tls, name);
}

std::unique_ptr<core::Executor> createUcxExecutor(const core::ExecutorOptions& options) {
  if (!options.bootstrap) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "the ucx backend needs ExecutorOptions::bootstrap (a TCP/environment or MPI bootstrap)");
  }
  return remote::makeRemoteExecutor(std::make_unique<ucx::UcxTransport>(options.bootstrap), options);
}

void registerUcx(core::ExecutorRegistry& registry) {
  addOneRankPerProcessBackend(
      registry, "ucx", [](const core::ExecutorOptions& options) { return createUcxExecutor(options); },
      "processes over UCX (UCP RMA + atomics; UCX_TLS picks shm, tcp, rc, ...); one rank per process");
}

}  // namespace copro::transport
