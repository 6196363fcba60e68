/// The `verbs` backend's transport (docs/verbs.md): RC queue pairs over libibverbs (or the emulated
/// provider), as a RemoteTransport port of the remote engine.
///
/// - One device per process (VerbsDevice), one completion queue per communicator, `COPRO_IB_CHANNELS` RC
///   QPs per peer; lane l of a Program uses channel l mod channels, so a lane's ops to a peer stay in order.
///   QPs are connected through the Bootstrap (LID or GID, QPN and PSN; the path MTU is the smaller port MTU).
/// - A *control* region per rank, registered for remote access, holds per peer the counters `entered`,
///   `failed` and `leaving`, and a descriptor mailbox. Entering call k, a rank RDMA-writes its descriptor
///   (addresses, limits and rkeys of the call's buffers and of its semaphore array) into every peer's
///   mailbox and then adds 1 to the peer's `entered` with FETCH_AND_ADD on the same QP (executed after the
///   write). A lane reaches a peer in call k once that counter reads k.
/// - put = RDMA WRITE (inline up to kInlineBytes); signal = zero-byte RDMA WRITE WITH IMMEDIATE whose 32-bit
///   immediate carries semaphore << 12 | increment; put with signal = the put's last write carries the
///   immediate. The target keeps kRecvDepth receives posted per QP; its progress polls the receive
///   completions, adds the increments to its semaphore array (only its CPU writes that array) and reposts.
///   RC delivers a QP's requests in order, so a signal's completion at the target follows the lane's writes.
///   get = RDMA READ; flush = completion of the lane's last work request on every QP it used (a zero-byte
///   signalled write when the last one was unsignalled). Every kSignalEvery-th request is signalled; the
///   send-queue depth is the credit.
/// - Work completion errors, QP/port asynchronous events, and the peers' `failed` counters fail the call
///   with a Status naming the peer, the op and the verbs status string; the communicator is unusable then.
#include <arpa/inet.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "../backend_registration.hpp"
#include "../remote_engine.hpp"
#include "../vnode_transport.hpp"
#include "copro/core/log.hpp"
#include "copro/transport/verbs.hpp"
#include "verbs_device.hpp"
#include "verbs_rails.hpp"

namespace copro::transport {

namespace verbs {
namespace {

using namespace remote::transport_names;  // NOLINT(google-build-using-namespace): the port vocabulary
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kSqDepth = 256;      ///< send work requests per QP (credits)
constexpr std::uint32_t kSignalEvery = 16;   ///< selective signalling period
constexpr std::uint32_t kRecvDepth = 128;    ///< receives kept posted per QP (immediates)
constexpr std::uint32_t kImmValueBits = 12;  ///< an immediate: semaphore << 12 | increment (< 4096)
constexpr std::uint32_t kImmMaxSemaphores = 1U << (32 - kImmValueBits);
constexpr std::uint32_t kInlineBytes = 64;         ///< puts up to this size are posted inline
constexpr std::uint64_t kMaxWrBytes = 1ULL << 30;  ///< larger transfers are split
constexpr std::size_t kMailboxBytes = 8192;
constexpr const char* kFinishedEarly = "the Program lets it complete before this access (a missing signal/wait pair)";
constexpr std::size_t kMaxPinned = 4096;  ///< registerBuffer()/allocate() registrations per communicator
constexpr int kMrAccess =
    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;

/// The control region of a rank with n peers: entered[n], failed[n], leaving[n], sink, mailbox[n].
struct ControlLayout {
  int n = 0;
  [[nodiscard]] std::size_t counter(int which, int q) const { return (static_cast<std::size_t>(which) * n + q) * 8; }
  [[nodiscard]] std::size_t sink() const { return static_cast<std::size_t>(3 * n) * 8; }
  [[nodiscard]] std::size_t mailbox(int q) const { return sink() + 64 + static_cast<std::size_t>(q) * kMailboxBytes; }
  [[nodiscard]] std::size_t bytes() const { return mailbox(n); }
};
enum Counter { kEntered = 0, kFailed = 1, kLeaving = 2 };

/// Descriptor wire format: DescHeader (remote_engine.hpp), then `numRegions` of these.
struct DescRegion {
  std::uint64_t addr = 0;
  std::uint64_t limit = 0;
  std::uint32_t rkey = 0;
  std::uint32_t writable = 0;
};

/// Memory registered with the device; `owned` memory was allocated here.
struct Registration : RegisteredRange {
  ibv_mr* mr = nullptr;
  bool owned = false;
  bool pinned = false;  ///< registerBuffer()/allocate(): never evicted
  std::uint64_t lastUse = 0;
};

struct WrInfo {
  const char* kind = "";
  std::uint32_t opIndex = 0;
  int lane = -1;
};

/// One RC QP to a peer and its credit/completion counters.
struct Channel {
  ibv_qp* qp = nullptr;
  std::uint64_t posted = 0;        ///< wr_id of the last posted request (1, 2, ...)
  std::uint64_t completed = 0;     ///< every request up to this wr_id has completed
  std::uint64_t lastSignaled = 0;  ///< wr_id of the last signalled request
  std::uint32_t unsignaled = 0;
  std::vector<WrInfo> info = std::vector<WrInfo>(kSqDepth);
};

struct RemoteRegion {
  std::uint64_t addr = 0;
  std::uint64_t limit = 0;
  std::uint32_t rkey = 0;
  bool writable = false;
};

struct Peer {
  std::vector<Channel> ch;
  std::uint64_t controlAddr = 0;
  std::uint32_t controlRkey = 0;
  std::uint64_t descSeq = 0;
  std::vector<RemoteRegion> regions;  ///< BufferId order, semaphores last
};

/// The wr_id a lane must see completed per (peer, channel) before its flush is done.
struct LaneState {
  std::vector<std::uint64_t> need;
};

/// Per-rank record exchanged at connection: addressing and the QPNs this rank created for each peer.
struct ConnHeader {
  std::uint8_t gid[16] = {};
  std::uint16_t lid = 0;
  std::uint8_t mtu = 0;
  std::uint8_t pad = 0;
  std::uint32_t psn = 0;
  std::uint64_t controlAddr = 0;
  std::uint32_t controlRkey = 0;
  std::uint32_t pad2 = 0;
};

class VerbsTransport final : public remote::NamedTransport {
 public:
  /// `splitSemaphores`: local signals and the peers' immediates land in two arrays (the engine sums them);
  /// false when a composite (shm+verbs) owns the local array.
  VerbsTransport(std::shared_ptr<core::Bootstrap> bootstrap, const core::Config& config, bool splitSemaphores,
                 std::string name);
  ~VerbsTransport() override;

  [[nodiscard]] bool progressFromAnyThread() const override { return true; }

  std::byte* scratch(std::uint64_t bytes) override {
    return ownedAtLeast(scratch_, std::max<std::uint64_t>(bytes, 64));
  }
  std::atomic<std::uint64_t>* semaphores(std::int32_t count) override {
    if (!split_) return nicSemaphores(count);
    const auto want = static_cast<std::size_t>(std::max(count, 1));
    if (localSems_.size() < want) {
      localSemStore_ = std::make_unique<std::atomic<std::uint64_t>[]>(want);
      localSems_.assign(want, 0);
    }
    return localSemStore_.get();
  }
  std::atomic<std::uint64_t>* extraSemaphores(std::int32_t count) override {
    return split_ ? nicSemaphores(count) : nullptr;
  }
  std::uint64_t* layout(std::uint32_t words) override {
    return reinterpret_cast<std::uint64_t*>(ownedAtLeast(layout_, remote::wordBytes(words)));
  }

  Status enter(const remote::CallEntry& entry) override;
  Reach reach(int peer, Status& error) override;
  [[nodiscard]] std::uint64_t remoteLimit(int peer, BufferId buf) const override;
  Status put(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, const std::byte* src,
             std::uint64_t bytes, std::int32_t sem, std::uint64_t value) override;
  /// `peer`'s region `buf` of the current call, or nullptr with `error` naming it (`role`: "src"/"dst").
  const RemoteRegion* remoteRegion(int peer, BufferId buf, const char* role, Status& error) const;
  Status get(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, std::byte* dst,
             std::uint64_t bytes) override;
  Status signal(int lane, std::uint32_t opIndex, int peer, std::int32_t sem, std::uint64_t value) override;
  Status flushLane(int lane, bool& done) override { return flushState(laneState(lane), done); }
  Status progress(bool& progressed) override;
  Status finishCall(bool& done) override { return flushState(entryOps_, done); }
  void leave() override {}
  [[nodiscard]] std::string stallReport() override;
  void markBroken() override { failed_ = true; }
  void announceFailure(const std::string& reason) override;

  Status registerBuffer(void* ptr, std::size_t bytes) override;
  Status deregisterBuffer(void* ptr) override;
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr) override;
  std::unique_ptr<remote::RemoteTransport> split(int color, int key, std::vector<int>& members) override;

 private:
  /// The NIC of this rank's rail (docs/verbs.md): empty with COPRO_IB_HCA set or the emulated provider.
  /// Collective over the bootstrap otherwise (the ranks' local indexes come from their host names).
  std::string railNic();
  void createQps();
  void connect();
  void connectQp(ibv_qp* qp, const ConnHeader& remote, std::uint32_t remoteQpn);
  std::unique_ptr<Registration> registerMemory(std::byte* base, std::size_t bytes, bool owned);
  void release(Registration& reg);
  /// The base of the owned region in `slot`, replaced by a larger zeroed one when it has fewer than `bytes`.
  std::byte* ownedAtLeast(std::unique_ptr<Registration>& slot, std::size_t bytes);
  std::atomic<std::uint64_t>* nicSemaphores(std::int32_t count);
  Registration& registrationFor(const std::byte* ptr, std::size_t bytes);
  void dropOnDemand();
  std::atomic<std::uint64_t>& controlWord(int which, int q) {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(control_->base + ctl_.counter(which, q));
  }
  LaneState& laneState(int lane);
  Channel& channelOf(int peer, int lane) {
    return peers_[static_cast<std::size_t>(peer)].ch[static_cast<std::size_t>(lane) % nch_];
  }
  /// Posts `wr` on the QP of (peer, lane); waits for a credit when the send queue is full.
  Status post(LaneState& l, int lane, int peer, ibv_send_wr& wr, WrInfo info, bool signal);
  Status postFetchAdd(LaneState& l, int lane, int peer, std::uint64_t raddr, std::uint32_t rkey, std::uint64_t value,
                      WrInfo info);
  Status pollCompletions(bool& progressed);
  /// Posts one zero-byte receive (a WRITE WITH IMMEDIATE consumes it); 0 or an errno.
  int postReceive(ibv_qp* qp);
  /// Applies a received immediate (a signal) to the semaphore array and posts the receive again.
  Status applyImmediate(const ibv_wc& wc, int peer, ibv_qp* qp);
  /// Posts the signal `sem` += `value` to `peer` as WRITE WITH IMMEDIATE: `last` (the lane's final write of
  /// a put, or nullptr) carries the first increment, zero-byte writes carry the rest.
  Status postSignal(LaneState& l, int lane, int peer, std::int32_t sem, std::uint64_t value, ibv_send_wr* last,
                    WrInfo info);
  Status completionError(const ibv_wc& wc);
  Status flushState(LaneState& l, bool& done);
  Status checkFailures();
  Status peerFailed(int peer, const std::string& why);
  void progressFor(double seconds, const std::function<bool()>& done);

  std::shared_ptr<core::Bootstrap> bootstrap_;
  core::Config config_;
  bool split_ = true;
  std::size_t nch_ = 1;
  std::shared_ptr<VerbsDevice> dev_;
  const VerbsApi* api_ = nullptr;
  ibv_cq* cq_ = nullptr;
  std::vector<Peer> peers_;
  std::map<std::uint32_t, std::pair<int, int>> qpnToPeer_;  ///< qp_num -> (peer, channel)
  ControlLayout ctl_;
  std::unique_ptr<Registration> control_;
  std::unique_ptr<Registration> desc_;  ///< this rank's descriptor of the current call
  std::unique_ptr<Registration> scratch_;
  std::unique_ptr<Registration> nicSems_;
  std::unique_ptr<Registration> layout_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> localSemStore_;
  std::vector<std::uint64_t> localSems_;            ///< size of localSemStore_
  std::list<std::unique_ptr<Registration>> cache_;  ///< user memory, most recently used first
  std::vector<LaneState> lanes_;
  LaneState entryOps_;
  std::uint64_t seq_ = 0;
  std::uint64_t seenErrorEpoch_ = 0;
  bool failed_ = false;
  Status error_;  ///< the first failure, repeated by later calls
};

VerbsTransport::VerbsTransport(std::shared_ptr<core::Bootstrap> bootstrap, const core::Config& config,
                               bool splitSemaphores, std::string name)
    : NamedTransport(std::move(name), bootstrap->rank(), bootstrap->size()),
      bootstrap_(std::move(bootstrap)),
      config_(config),
      split_(splitSemaphores) {
  nch_ = static_cast<std::size_t>(std::max(config_.ibChannels, 1));
  dev_ = VerbsDevice::open(config_, railNic());
  api_ = &dev_->api();
  const int cqe = std::min(dev_->deviceAttr().max_cqe > 0 ? dev_->deviceAttr().max_cqe : 4096, 1 << 16);
  cq_ = api_->createCq(dev_->context(), cqe, nullptr, nullptr, 0);
  if (cq_ == nullptr) throw core::Error(ErrorCode::kSystemError, "verbs: ibv_create_cq failed on " + dev_->name());
  peers_.resize(static_cast<std::size_t>(size_));
  ctl_.n = size_;
  control_ = registerMemory(nullptr, ctl_.bytes(), true);
  desc_ = registerMemory(nullptr, kMailboxBytes, true);
  createQps();
  connect();
}

std::string VerbsTransport::railNic() {
  const VerbsApi* api = nullptr;
  if (!config_.ibHca.empty() || !loadVerbsApi(config_, api).ok() || api->emulated) return {};
  const std::vector<int> nodes = remote::nodeIdsFromHostnames(*bootstrap_);
  const int localIndex =
      static_cast<int>(std::count(nodes.begin(), nodes.begin() + rank_, nodes[static_cast<std::size_t>(rank_)]));
  RailMap map;
  std::string error;
  if (!loadRailMap({}, map, error)) {
    COPRO_LOG(Info, Init, "verbs: no rail map (" << error << "); using the first active device");
    return {};
  }
  std::string nic = railNicFor(map, localIndex);
  COPRO_LOG(Info, Init, "verbs: rank " << rank_ << " (local index " << localIndex << ") -> rail NIC " << nic);
  return nic;
}

void VerbsTransport::createQps() {
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    Peer& p = peers_[static_cast<std::size_t>(q)];
    p.ch.resize(nch_);
    for (std::size_t c = 0; c < nch_; ++c) {
      ibv_qp_init_attr a{};
      a.send_cq = cq_;
      a.recv_cq = cq_;
      a.qp_type = IBV_QPT_RC;
      a.cap.max_send_wr = kSqDepth;
      a.cap.max_recv_wr = kRecvDepth;
      a.cap.max_send_sge = 1;
      a.cap.max_recv_sge = 1;
      a.cap.max_inline_data = kInlineBytes;
      p.ch[c].qp = api_->createQp(dev_->pd(), &a);
      if (p.ch[c].qp == nullptr) {
        throw core::Error(ErrorCode::kSystemError, "verbs: ibv_create_qp for rank " + std::to_string(q) + " failed: " +
                                                       std::strerror(errno) + " (device " + dev_->name() + ")");
      }
      qpnToPeer_[p.ch[c].qp->qp_num] = {q, static_cast<int>(c)};
      ibv_qp_attr init{};
      init.qp_state = IBV_QPS_INIT;
      init.port_num = static_cast<std::uint8_t>(dev_->port());
      init.qp_access_flags = kMrAccess & ~IBV_ACCESS_LOCAL_WRITE;
      const int rc =
          api_->modifyQp(p.ch[c].qp, &init, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
      if (rc != 0) throw core::Error(ErrorCode::kSystemError, "verbs: QP to INIT: " + std::string(std::strerror(rc)));
    }
  }
}

void VerbsTransport::connect() {
  // Record: header, then for every peer q and channel c the QPN this rank created for (q, c).
  const std::size_t qpnBytes = static_cast<std::size_t>(size_) * nch_ * 4;
  const std::size_t rec = sizeof(ConnHeader) + qpnBytes;
  std::vector<std::byte> mine(rec, std::byte{0});
  ConnHeader h;
  std::memcpy(h.gid, dev_->gid().raw, 16);
  h.lid = dev_->portAttr().lid;
  h.mtu = static_cast<std::uint8_t>(dev_->portAttr().active_mtu);
  h.psn = static_cast<std::uint32_t>(rank_ * 4099 + 17) & 0xffffff;
  h.controlAddr = reinterpret_cast<std::uint64_t>(control_->base);
  h.controlRkey = control_->mr->rkey;
  std::memcpy(mine.data(), &h, sizeof(h));
  for (int q = 0; q < size_; ++q) {
    for (std::size_t c = 0; q != rank_ && c < nch_; ++c) {
      const std::uint32_t qpn = peers_[static_cast<std::size_t>(q)].ch[c].qp->qp_num;
      std::memcpy(mine.data() + sizeof(ConnHeader) + (static_cast<std::size_t>(q) * nch_ + c) * 4, &qpn, 4);
    }
  }
  std::vector<std::byte> all(rec * static_cast<std::size_t>(size_));
  bootstrap_->allGather(mine.data(), all.data(), rec).throwIfError();
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    const std::byte* r = all.data() + static_cast<std::size_t>(q) * rec;
    ConnHeader rh;
    std::memcpy(&rh, r, sizeof(rh));
    Peer& p = peers_[static_cast<std::size_t>(q)];
    p.controlAddr = rh.controlAddr;
    p.controlRkey = rh.controlRkey;
    for (std::size_t c = 0; c < nch_; ++c) {
      std::uint32_t qpn = 0;
      std::memcpy(&qpn, r + sizeof(ConnHeader) + (static_cast<std::size_t>(rank_) * nch_ + c) * 4, 4);
      connectQp(p.ch[c].qp, rh, qpn);
    }
  }
  // Every QP is ready to receive before anyone sends.
  bootstrap_->barrier().throwIfError();
}

void VerbsTransport::connectQp(ibv_qp* qp, const ConnHeader& remote, std::uint32_t remoteQpn) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = std::min(dev_->portAttr().active_mtu, static_cast<ibv_mtu>(remote.mtu));
  a.dest_qp_num = remoteQpn;
  a.rq_psn = remote.psn;
  a.max_dest_rd_atomic = static_cast<std::uint8_t>(std::min(dev_->deviceAttr().max_qp_rd_atom, 16));
  a.min_rnr_timer = 12;
  a.ah_attr.port_num = static_cast<std::uint8_t>(dev_->port());
  a.ah_attr.dlid = remote.lid;
  if (dev_->global()) {
    a.ah_attr.is_global = 1;
    std::memcpy(a.ah_attr.grh.dgid.raw, remote.gid, 16);
    a.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(dev_->gidIndex());
    a.ah_attr.grh.hop_limit = 255;
  }
  int rc = api_->modifyQp(qp, &a,
                          IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                              IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
  if (rc != 0) throw core::Error(ErrorCode::kSystemError, "verbs: QP to RTR: " + std::string(std::strerror(rc)));
  for (std::uint32_t i = 0; i < kRecvDepth; ++i) {
    rc = postReceive(qp);
    if (rc != 0) throw core::Error(ErrorCode::kSystemError, "verbs: ibv_post_recv: " + std::string(std::strerror(rc)));
  }
  ibv_qp_attr s{};
  s.qp_state = IBV_QPS_RTS;
  s.timeout = 14;  // 4.096 us * 2^14 = 67 ms per retry
  s.retry_cnt = 7;
  s.rnr_retry = 7;
  s.sq_psn = static_cast<std::uint32_t>(rank_ * 4099 + 17) & 0xffffff;
  s.max_rd_atomic = a.max_dest_rd_atomic;
  rc = api_->modifyQp(
      qp, &s,
      IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
  if (rc != 0) throw core::Error(ErrorCode::kSystemError, "verbs: QP to RTS: " + std::string(std::strerror(rc)));
}

VerbsTransport::~VerbsTransport() {
  entryOps_.need.assign(static_cast<std::size_t>(size_) * nch_, 0);
  if (!failed_) {
    // Every peer stops issuing to this rank before the QPs go (leaving += 1 everywhere, then wait).
    for (int q = 0; q < size_; ++q) {
      if (q == rank_) continue;
      (void)postFetchAdd(entryOps_, 0, q,
                         peers_[static_cast<std::size_t>(q)].controlAddr + ctl_.counter(kLeaving, rank_),
                         peers_[static_cast<std::size_t>(q)].controlRkey, 1, WrInfo{"leaving notice", 0, -1});
    }
    progressFor(10.0, [&] {
      bool done = false;
      if (!flushState(entryOps_, done).ok()) return true;
      for (int q = 0; q < size_; ++q) {
        if (q != rank_ && controlWord(kLeaving, q).load(std::memory_order_acquire) == 0) return false;
      }
      return done;
    });
  }
  for (Peer& p : peers_) {
    for (Channel& c : p.ch) {
      if (c.qp == nullptr) continue;
      const std::uint32_t qpn = c.qp->qp_num;
      api_->destroyQp(c.qp);  // after it, no event names the QP: forget its errors (a new QP may reuse qpn)
      dev_->forgetQp(qpn);
    }
  }
  for (auto* slot : {&scratch_, &nicSems_, &layout_, &control_, &desc_}) {
    if (*slot) release(**slot);
  }
  for (auto& reg : cache_) release(*reg);
  if (cq_ != nullptr) api_->destroyCq(cq_);
}

void VerbsTransport::progressFor(double seconds, const std::function<bool()>& done) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (!done() && Clock::now() < end) {
    bool progressed = false;
    if (!pollCompletions(progressed).ok()) return;
    if (!progressed) remote::idlePause(0);
  }
}

// ---- memory ----

std::unique_ptr<Registration> VerbsTransport::registerMemory(std::byte* base, std::size_t bytes, bool owned) {
  auto reg = std::make_unique<Registration>();
  reg->bytes = std::max<std::size_t>(bytes, 8);
  reg->owned = owned;
  if (owned) {
    void* m = mmap(nullptr, reg->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      throw core::Error(ErrorCode::kOutOfMemory, "verbs: cannot allocate " + std::to_string(bytes) + " bytes");
    }
    base = static_cast<std::byte*>(m);
  }
  reg->base = base;
  reg->mr = api_->regMr(dev_->pd(), base, reg->bytes, kMrAccess);
  if (reg->mr == nullptr && !owned && (errno == EFAULT || errno == EACCES)) {
    // Read-only pages (a const input buffer): readable by the peers, and a source of writes.
    reg->mr = api_->regMr(dev_->pd(), base, reg->bytes, IBV_ACCESS_REMOTE_READ);
  }
  if (reg->mr == nullptr) {
    const int err = errno;
    if (owned) munmap(base, reg->bytes);
    throw core::Error(err == ENOMEM ? ErrorCode::kOutOfMemory : ErrorCode::kSystemError,
                      "verbs: ibv_reg_mr of " + std::to_string(bytes) + " bytes failed: " + std::strerror(err) +
                          " (check `ulimit -l`, the locked-memory limit)");
  }
  return reg;
}

void VerbsTransport::release(Registration& reg) {
  if (reg.mr != nullptr) api_->deregMr(reg.mr);
  reg.mr = nullptr;
  if (reg.owned && reg.base != nullptr) munmap(reg.base, reg.bytes);
  reg.base = nullptr;
}

std::byte* VerbsTransport::ownedAtLeast(std::unique_ptr<Registration>& slot, std::size_t bytes) {
  if (slot && slot->bytes >= bytes) return slot->base;
  // Only when entering a call: no peer still accesses the old memory, the new descriptor names the new one.
  auto fresh = registerMemory(nullptr, bytes, true);  // anonymous memory starts zeroed
  if (slot) release(*slot);
  slot = std::move(fresh);
  return slot->base;
}

std::atomic<std::uint64_t>* VerbsTransport::nicSemaphores(std::int32_t count) {
  return reinterpret_cast<std::atomic<std::uint64_t>*>(ownedAtLeast(nicSems_, remote::wordBytes(count)));
}

Registration& VerbsTransport::registrationFor(const std::byte* ptr, std::size_t bytes) {
  for (auto* owned : {&scratch_, &nicSems_, &layout_}) {
    if (*owned && (*owned)->contains(ptr, bytes)) return **owned;
  }
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if ((*it)->contains(ptr, bytes)) {
      (*it)->lastUse = seq_;
      cache_.splice(cache_.begin(), cache_, it);  // most recently used first
      return *cache_.front();
    }
  }
  cache_.push_front(registerMemory(const_cast<std::byte*>(ptr), bytes, false));
  cache_.front()->lastUse = seq_;
  COPRO_LOG(Trace, Alloc, "verbs: registered " << bytes << " bytes at " << static_cast<const void*>(ptr));
  return *cache_.front();
}

void VerbsTransport::dropOnDemand() {
  // A registration pins the pages its range had when it was made: once the user frees a buffer, a new one
  // at the same address is other memory. So registrations made on demand serve one call only (the
  // earlier calls' ops have completed); registerBuffer()/allocate() ones stay until deregistered.
  for (auto it = cache_.begin(); it != cache_.end();) {
    if ((*it)->pinned) {
      ++it;
      continue;
    }
    release(**it);
    it = cache_.erase(it);
  }
}

Status VerbsTransport::registerBuffer(void* ptr, std::size_t bytes) {
  if (ptr == nullptr || bytes == 0)
    return {ErrorCode::kInvalidArgument, "verbs registerBuffer: null pointer or zero bytes"};
  if (cache_.size() >= kMaxPinned) {
    return {ErrorCode::kOutOfMemory, "verbs registerBuffer: " + std::to_string(kMaxPinned) +
                                         " buffers are registered already; deregister some first"};
  }
  try {
    registrationFor(static_cast<std::byte*>(ptr), bytes).pinned = true;
  } catch (const core::Error& e) {
    return {e.code(), e.message()};
  }
  return {};
}

Status VerbsTransport::deregisterBuffer(void* ptr) {
  // Invalidates every cached registration inside the buffer (copro's own deregistration).
  bool found = false;
  for (auto it = cache_.begin(); it != cache_.end();) {
    if ((*it)->base == ptr && !(*it)->owned) {
      release(**it);
      it = cache_.erase(it);
      found = true;
    } else {
      ++it;
    }
  }
  if (found) return {};
  return {ErrorCode::kInvalidArgument, "verbs deregisterBuffer: no registration starts at this address"};
}

void* VerbsTransport::allocate(std::size_t bytes) {
  cache_.push_front(registerMemory(nullptr, bytes, true));
  cache_.front()->pinned = true;
  return cache_.front()->base;
}

void VerbsTransport::deallocate(void* ptr) {
  dropRegistration(
      cache_, ptr, [](const Registration& r) { return r.owned; }, [this](Registration& r) { release(r); });
}

// ---- calls ----

LaneState& VerbsTransport::laneState(int lane) {
  if (static_cast<std::size_t>(lane) >= lanes_.size()) lanes_.resize(static_cast<std::size_t>(lane) + 1);
  LaneState& l = lanes_[static_cast<std::size_t>(lane)];
  if (l.need.size() != static_cast<std::size_t>(size_) * nch_) l.need.assign(static_cast<std::size_t>(size_) * nch_, 0);
  return l;
}

Status VerbsTransport::enter(const remote::CallEntry& entry) {
  seq_ = entry.seq;
  if (failed_) return error_.ok() ? Status(ErrorCode::kRemoteError, "verbs: the communicator failed earlier") : error_;
  const std::size_t nregions = entry.regions.size() + 1;
  std::vector<DescRegion> recs(nregions);
  try {
    dropOnDemand();
    for (std::size_t i = 0; i < entry.regions.size(); ++i) {
      const Region& r = entry.regions[i];
      recs[i].addr = reinterpret_cast<std::uint64_t>(r.base);
      recs[i].limit = r.limit;
      recs[i].writable = r.writable ? 1 : 0;
      if (r.base != nullptr && r.limit > 0) recs[i].rkey = registrationFor(r.base, r.limit).mr->rkey;
    }
  } catch (const core::Error& e) {
    return {e.code(), e.message()};
  }
  if (!nicSems_) (void)nicSemaphores(entry.numSemaphores);
  // Remote signals land in the NIC's semaphore array (the composite passes it as entry.semaphores).
  recs.back() = DescRegion{reinterpret_cast<std::uint64_t>(nicSems_->base),
                           static_cast<std::uint64_t>(entry.numSemaphores) * 8, nicSems_->mr->rkey, 1};
  const std::size_t bytes = sizeof(DescHeader) + nregions * sizeof(DescRegion);
  if (bytes > kMailboxBytes) {
    return {ErrorCode::kUnsupported, "verbs: the call's buffer descriptor needs " + std::to_string(bytes) +
                                         " bytes, more than a mailbox holds (" + std::to_string(kMailboxBytes) +
                                         "); use fewer extra buffers per call"};
  }
  const DescHeader h{seq_, static_cast<std::uint32_t>(nregions), static_cast<std::uint32_t>(bytes)};
  std::memcpy(desc_->base, &h, sizeof(h));
  std::memcpy(desc_->base + sizeof(h), recs.data(), nregions * sizeof(DescRegion));
  LaneState& l = entryOps_;
  l.need.assign(static_cast<std::size_t>(size_) * nch_, 0);
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    Peer& p = peers_[static_cast<std::size_t>(q)];
    ibv_sge sge{reinterpret_cast<std::uint64_t>(desc_->base), static_cast<std::uint32_t>(bytes), desc_->mr->lkey};
    ibv_send_wr wr{};
    wr.opcode = IBV_WR_RDMA_WRITE;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.wr.rdma.remote_addr = p.controlAddr + ctl_.mailbox(rank_);
    wr.wr.rdma.rkey = p.controlRkey;
    COPRO_RETURN_IF_ERROR(post(l, 0, q, wr, WrInfo{"call descriptor write", 0, -1}, false));
    COPRO_RETURN_IF_ERROR(postFetchAdd(l, 0, q, p.controlAddr + ctl_.counter(kEntered, rank_), p.controlRkey, 1,
                                       WrInfo{"call entry notice", 0, -1}));
  }
  return {};
}

Status VerbsTransport::peerFailed(int peer, const std::string& why) {
  failed_ = true;
  if (error_.ok()) error_ = Status(ErrorCode::kRemoteError, "verbs: rank " + std::to_string(peer) + " " + why);
  return error_;
}

Reach VerbsTransport::reach(int peer, Status& error) {
  Peer& p = peers_[static_cast<std::size_t>(peer)];
  if (failed_ || controlWord(kFailed, peer).load(std::memory_order_acquire) != 0) {
    error = failed_ && !error_.ok() ? error_ : peerFailed(peer, "failed or aborted");
    return Reach::kFailed;
  }
  if (p.descSeq == seq_) return Reach::kReady;
  const std::uint64_t entered = controlWord(kEntered, peer).load(std::memory_order_acquire);
  if (entered < seq_) return Reach::kNotYet;
  if (entered > seq_) {
    error = Status(ErrorCode::kInvalidProgram, "rank " + std::to_string(peer) + " is past call " +
                                                   std::to_string(seq_) + " already: " + kFinishedEarly);
    return Reach::kFailed;
  }
  const std::byte* box = control_->base + ctl_.mailbox(peer);
  DescHeader h;
  std::memcpy(&h, box, sizeof(h));
  if (h.seq != seq_ || h.totalBytes > kMailboxBytes || h.numRegions == 0) {
    error = Status(ErrorCode::kInternal, "verbs: descriptor of rank " + std::to_string(peer) + " is for call " +
                                             std::to_string(h.seq) + ", not " + std::to_string(seq_));
    return Reach::kFailed;
  }
  p.regions.resize(h.numRegions);
  for (std::uint32_t i = 0; i < h.numRegions; ++i) {
    DescRegion rec;
    std::memcpy(&rec, box + sizeof(DescHeader) + i * sizeof(DescRegion), sizeof(rec));
    p.regions[i] = RemoteRegion{rec.addr, rec.limit, rec.rkey, rec.writable != 0};
  }
  p.descSeq = seq_;
  return Reach::kReady;
}

Status VerbsTransport::post(LaneState& l, int lane, int peer, ibv_send_wr& wr, WrInfo info, bool signal) {
  Channel& c = channelOf(peer, lane);
  const auto deadline = Clock::now() + std::chrono::duration<double>(config_.timeoutSec);
  while (c.posted - c.completed >= kSqDepth - 1) {  // out of credits: wait for completions
    bool progressed = false;
    COPRO_RETURN_IF_ERROR(pollCompletions(progressed));
    COPRO_RETURN_IF_ERROR(checkFailures());
    if (Clock::now() > deadline) {
      return peerFailed(peer, "completes no work request (send queue full for COPRO_TIMEOUT)");
    }
    if (!progressed) remote::idlePause(0);
  }
  const std::uint64_t id = ++c.posted;
  signal = signal || ++c.unsignaled >= kSignalEvery;
  if (signal) {
    wr.send_flags |= IBV_SEND_SIGNALED;
    c.unsignaled = 0;
    c.lastSignaled = id;
  }
  wr.wr_id = id;
  c.info[id % kSqDepth] = info;
  ibv_send_wr* bad = nullptr;
  const int rc = api_->postSend(c.qp, &wr, &bad);
  if (rc != 0) {
    return peerFailed(peer,
                      std::string("cannot be sent to: ibv_post_send (") + info.kind + ") failed: " + std::strerror(rc));
  }
  l.need[static_cast<std::size_t>(peer) * nch_ + static_cast<std::size_t>(lane) % nch_] = id;
  return {};
}

Status VerbsTransport::postFetchAdd(LaneState& l, int lane, int peer, std::uint64_t raddr, std::uint32_t rkey,
                                    std::uint64_t value, WrInfo info) {
  ibv_sge sge{reinterpret_cast<std::uint64_t>(control_->base + ctl_.sink()), 8, control_->mr->lkey};
  ibv_send_wr wr{};
  wr.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.wr.atomic.remote_addr = raddr;
  wr.wr.atomic.rkey = rkey;
  wr.wr.atomic.compare_add = value;
  return post(l, lane, peer, wr, info, false);
}

const RemoteRegion* VerbsTransport::remoteRegion(int peer, BufferId buf, const char* role, Status& error) const {
  const std::vector<RemoteRegion>& regions = peers_[static_cast<std::size_t>(peer)].regions;
  if (static_cast<std::size_t>(buf) + 1 < regions.size()) return &regions[static_cast<std::size_t>(buf)];
  error = Status(ErrorCode::kInvalidProgram, std::string(role) + " buffer " + core::bufferName(buf) +
                                                 " is not in rank " + std::to_string(peer) + "'s call");
  return nullptr;
}

std::uint64_t VerbsTransport::remoteLimit(int peer, BufferId buf) const {
  if (peers_[static_cast<std::size_t>(peer)].descSeq != seq_) return UINT64_MAX;  // not reached yet
  Status unused;
  const RemoteRegion* r = remoteRegion(peer, buf, "dst", unused);
  return r != nullptr ? r->limit : UINT64_MAX;
}

Status VerbsTransport::put(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset,
                           const std::byte* src, std::uint64_t bytes, std::int32_t sem, std::uint64_t value) {
  Status error;
  const RemoteRegion* target = remoteRegion(peer, buf, "dst", error);
  if (target == nullptr) return error;
  const RemoteRegion& rr = *target;
  if (bytes > 0 && !rr.writable) {
    return {ErrorCode::kInvalidProgram, "rank " + std::to_string(peer) + "'s " + core::bufferName(buf) +
                                            " is read-only (the input of an out-of-place call)"};
  }
  LaneState& l = laneState(lane);
  for (std::uint64_t done = 0; done < bytes;) {
    const std::uint64_t n = std::min(bytes - done, kMaxWrBytes);
    const bool inl = n <= kInlineBytes;
    ibv_sge sge{reinterpret_cast<std::uint64_t>(src + done), static_cast<std::uint32_t>(n), 0};  // inline: no key
    if (!inl) {
      try {
        sge.lkey = registrationFor(src + done, n).mr->lkey;
      } catch (const core::Error& e) {
        return {e.code(), e.message()};
      }
    }
    ibv_send_wr wr{};
    wr.opcode = IBV_WR_RDMA_WRITE;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.send_flags = inl ? IBV_SEND_INLINE : 0;
    wr.wr.rdma.remote_addr = rr.addr + offset + done;
    wr.wr.rdma.rkey = rr.rkey;
    done += n;
    if (done == bytes && sem >= 0) {
      return postSignal(l, lane, peer, sem, value, &wr, WrInfo{"put with signal (RDMA WRITE WITH IMM)", opIndex, lane});
    }
    COPRO_RETURN_IF_ERROR(post(l, lane, peer, wr, WrInfo{"put (RDMA WRITE)", opIndex, lane}, false));
  }
  if (sem >= 0) return signal(lane, opIndex, peer, sem, value);
  return {};
}

Status VerbsTransport::get(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset,
                           std::byte* dst, std::uint64_t bytes) {
  Status error;
  const RemoteRegion* source = remoteRegion(peer, buf, "src", error);
  if (source == nullptr) return error;
  LaneState& l = laneState(lane);
  for (std::uint64_t done = 0; done < bytes;) {
    const std::uint64_t n = std::min(bytes - done, kMaxWrBytes);
    ibv_sge sge{reinterpret_cast<std::uint64_t>(dst + done), static_cast<std::uint32_t>(n), 0};
    try {
      sge.lkey = registrationFor(dst + done, n).mr->lkey;
    } catch (const core::Error& e) {
      return {e.code(), e.message()};
    }
    ibv_send_wr wr{};
    wr.opcode = IBV_WR_RDMA_READ;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.wr.rdma.remote_addr = source->addr + offset + done;
    wr.wr.rdma.rkey = source->rkey;
    COPRO_RETURN_IF_ERROR(post(l, lane, peer, wr, WrInfo{"get (RDMA READ)", opIndex, lane}, false));
    done += n;
  }
  return {};
}

Status VerbsTransport::signal(int lane, std::uint32_t opIndex, int peer, std::int32_t sem, std::uint64_t value) {
  return postSignal(laneState(lane), lane, peer, sem, value, nullptr,
                    WrInfo{"signal (zero-byte RDMA WRITE WITH IMM)", opIndex, lane});
}

Status VerbsTransport::postSignal(LaneState& l, int lane, int peer, std::int32_t sem, std::uint64_t value,
                                  ibv_send_wr* last, WrInfo info) {
  if (sem < 0 || static_cast<std::uint32_t>(sem) >= kImmMaxSemaphores) {
    return {ErrorCode::kUnsupported, "verbs: semaphore " + std::to_string(sem) + " does not fit an immediate (" +
                                         std::to_string(kImmMaxSemaphores) + " semaphores at most)"};
  }
  constexpr std::uint64_t kMaxStep = (1U << kImmValueBits) - 1;
  do {
    const std::uint64_t step = std::min(value, kMaxStep);
    ibv_send_wr zero{};
    ibv_send_wr& wr = last != nullptr ? *last : zero;
    if (last == nullptr) {
      wr.wr.rdma.remote_addr = peers_[static_cast<std::size_t>(peer)].controlAddr;
      wr.wr.rdma.rkey = peers_[static_cast<std::size_t>(peer)].controlRkey;
    }
    wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
    wr.imm_data = htonl(static_cast<std::uint32_t>(sem) << kImmValueBits | static_cast<std::uint32_t>(step));
    COPRO_RETURN_IF_ERROR(post(l, lane, peer, wr, info, false));
    value -= step;
    last = nullptr;
  } while (value > 0);
  return {};
}

int VerbsTransport::postReceive(ibv_qp* qp) {
  ibv_recv_wr rwr{};
  ibv_recv_wr* bad = nullptr;
  return api_->postRecv(qp, &rwr, &bad);
}

Status VerbsTransport::applyImmediate(const ibv_wc& wc, int peer, ibv_qp* qp) {
  const std::uint32_t imm = ntohl(wc.imm_data);
  const std::uint32_t sem = imm >> kImmValueBits;
  if (!nicSems_ || static_cast<std::size_t>(sem) * 8 >= nicSems_->bytes) {
    return peerFailed(peer, "signalled semaphore " + std::to_string(sem) + ", beyond this call's array");
  }
  // Only this process's CPU writes the array (no NIC atomics on it), so a CPU atomic is enough.
  auto* sems = reinterpret_cast<std::atomic<std::uint64_t>*>(nicSems_->base);
  sems[sem].fetch_add(imm & ((1U << kImmValueBits) - 1), std::memory_order_acq_rel);
  const int rc = postReceive(qp);
  if (rc != 0) return peerFailed(peer, "cannot be signalled: ibv_post_recv failed: " + std::string(std::strerror(rc)));
  return {};
}

Status VerbsTransport::completionError(const ibv_wc& wc) {
  auto it = qpnToPeer_.find(wc.qp_num);
  if (it == qpnToPeer_.end()) {
    failed_ = true;
    return {ErrorCode::kSystemError,
            std::string("verbs: work completion error on an unknown QP: ") + api_->wcStatusStr(wc.status)};
  }
  const auto [peer, ch] = it->second;
  const WrInfo& info =
      peers_[static_cast<std::size_t>(peer)].ch[static_cast<std::size_t>(ch)].info[wc.wr_id % kSqDepth];
  std::string op = info.kind;
  if (info.lane >= 0) op += " of op " + std::to_string(info.opIndex) + " on lane " + std::to_string(info.lane);
  return peerFailed(peer, "unreachable: " + op + " completed with '" + api_->wcStatusStr(wc.status) +
                              "' (ibv_wc_status " + std::to_string(static_cast<int>(wc.status)) + ", " + dev_->name() +
                              ")");
}

Status VerbsTransport::pollCompletions(bool& progressed) {
  ibv_wc wcs[32];
  for (;;) {
    const int n = api_->pollCq(cq_, 32, wcs);
    if (n < 0) return peerFailed(rank_, "cannot poll its completion queue (ibv_poll_cq failed)");
    if (n == 0) return {};
    progressed = true;
    for (int i = 0; i < n; ++i) {
      const ibv_wc& wc = wcs[i];
      const bool receive = (wc.opcode & IBV_WC_RECV) != 0;
      if (wc.status != IBV_WC_SUCCESS) {
        if (receive) continue;  // flushed receives of a QP in error: the send side reports the cause
        return completionError(wc);
      }
      auto it = qpnToPeer_.find(wc.qp_num);
      if (it == qpnToPeer_.end()) continue;
      Channel& c = peers_[static_cast<std::size_t>(it->second.first)].ch[static_cast<std::size_t>(it->second.second)];
      if (receive) {
        COPRO_RETURN_IF_ERROR(applyImmediate(wc, it->second.first, c.qp));
        continue;
      }
      c.completed = std::max<std::uint64_t>(c.completed, wc.wr_id);  // RC completes in order
    }
  }
}

Status VerbsTransport::checkFailures() {
  if (failed_ && !error_.ok()) return error_;
  if (dev_->errorEpoch() != seenErrorEpoch_) {
    seenErrorEpoch_ = dev_->errorEpoch();
    const std::string port = dev_->portError();
    if (!port.empty()) return peerFailed(rank_, "lost its port: " + port);
    for (const auto& [qpn, pc] : qpnToPeer_) {
      const std::string e = dev_->qpError(qpn);
      if (!e.empty()) return peerFailed(pc.first, "unreachable: its QP reported '" + e + "'");
    }
  }
  for (int q = 0; q < size_; ++q) {
    if (q != rank_ && controlWord(kFailed, q).load(std::memory_order_acquire) != 0) {
      return peerFailed(q, "failed or aborted");
    }
  }
  return {};
}

Status VerbsTransport::flushState(LaneState& l, bool& done) {
  bool progressed = false;
  COPRO_RETURN_IF_ERROR(pollCompletions(progressed));
  done = false;
  bool pending = false;
  for (int q = 0; q < size_; ++q) {
    for (std::size_t c = 0; q != rank_ && c < nch_; ++c) {
      const std::uint64_t need = l.need[static_cast<std::size_t>(q) * nch_ + c];
      Channel& ch = peers_[static_cast<std::size_t>(q)].ch[c];
      if (ch.completed >= need) continue;
      pending = true;
      if (ch.lastSignaled < need) {
        // The lane's last request was unsignalled: a signalled zero-byte write completes after it.
        ibv_send_wr wr{};
        wr.opcode = IBV_WR_RDMA_WRITE;
        wr.wr.rdma.remote_addr = peers_[static_cast<std::size_t>(q)].controlAddr;
        wr.wr.rdma.rkey = peers_[static_cast<std::size_t>(q)].controlRkey;
        COPRO_RETURN_IF_ERROR(
            post(l, static_cast<int>(c), q, wr, WrInfo{"flush marker (zero-byte WRITE)", 0, -1}, true));
      }
    }
  }
  if (pending) return checkFailures();
  done = true;
  return {};
}

Status VerbsTransport::progress(bool& progressed) {
  COPRO_RETURN_IF_ERROR(pollCompletions(progressed));
  return checkFailures();
}

std::string VerbsTransport::stallReport() {
  std::vector<int> missing;
  for (int q = 0; q < size_; ++q) {
    if (q != rank_ && controlWord(kEntered, q).load(std::memory_order_acquire) < seq_) missing.push_back(q);
  }
  if (!error_.ok()) return error_.message();
  return missing.empty() ? "every rank entered this call" : remote::rankList(missing) + " never entered this call";
}

void VerbsTransport::announceFailure(const std::string& /*reason*/) {
  failed_ = true;
  LaneState l;
  l.need.assign(static_cast<std::size_t>(size_) * nch_, 0);
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    const Peer& p = peers_[static_cast<std::size_t>(q)];
    (void)postFetchAdd(l, 0, q, p.controlAddr + ctl_.counter(kFailed, rank_), p.controlRkey, 1,
                       WrInfo{"failure notice", 0, -1});
  }
  // Best effort: a QP in the error state or a dead peer never completes them.
  progressFor(0.2, [&] {
    bool done = false;
    return !flushState(l, done).ok() || done;
  });
}

std::unique_ptr<remote::RemoteTransport> VerbsTransport::split(int color, int key, std::vector<int>& members) {
  std::shared_ptr<core::Bootstrap> sub = bootstrap_->split(color, key);
  if (!sub) return nullptr;
  members.assign(static_cast<std::size_t>(sub->size()), 0);
  sub->allGather(&rank_, members.data(), sizeof(int)).throwIfError();
  return std::make_unique<VerbsTransport>(std::move(sub), config_, split_, name_);
}

}  // namespace
}  // namespace verbs

std::unique_ptr<remote::RemoteTransport> makeVerbsTransport(std::shared_ptr<core::Bootstrap> bootstrap,
                                                            const core::Config& config, const std::string& name) {
  return std::make_unique<verbs::VerbsTransport>(std::move(bootstrap), config, false, name);
}

std::unique_ptr<core::Executor> createVerbsExecutor(const core::ExecutorOptions& options) {
  if (!options.bootstrap) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "the verbs backend needs ExecutorOptions::bootstrap (a TCP/environment or MPI bootstrap)");
  }
  return remote::makeRemoteExecutor(
      std::make_unique<verbs::VerbsTransport>(options.bootstrap, options.config, true, "verbs"), options);
}

void registerVerbs(core::ExecutorRegistry& registry) {
  addOneRankPerProcessBackend(
      registry, "verbs", [](const core::ExecutorOptions& options) { return createVerbsExecutor(options); },
      "processes over RDMA verbs (RC QPs: WRITE, WRITE WITH IMM, READ); libibverbs.so.1 or COPRO_VERBS_PROVIDER=emu; "
      "one rank per process");
}

}  // namespace copro::transport
