/// The emulated provider's entry points (emu_provider.hpp): device list, context (a memfd segment of send
/// rings and a NIC thread), protection domain, memory regions with keys, completion queues, RC queue pairs
/// and their state machine, post_send/post_recv/poll_cq, asynchronous events and fault injection.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "emu_device.hpp"
#include "emu_provider.hpp"

namespace copro::transport::verbs::emu {

namespace {

using Clock = std::chrono::steady_clock;

EmuContext& ctxOf(ibv_context* c) {
  return *reinterpret_cast<EmuContext*>(c);
}
EmuQp& qpOf(ibv_qp* q) {
  return *reinterpret_cast<EmuQp*>(q);
}

FaultSpec& faultSpec() {
  static FaultSpec spec;
  return spec;
}

// ---- device list and context ----

ibv_device* theDevice() {
  static ibv_device dev = [] {
    ibv_device d{};
    d.node_type = IBV_NODE_CA;
    d.transport_type = IBV_TRANSPORT_IB;
    std::strncpy(d.name, "copro_emu0", sizeof(d.name) - 1);
    std::strncpy(d.dev_name, "uverbs_emu0", sizeof(d.dev_name) - 1);
    return d;
  }();
  return &dev;
}

ibv_device** getDeviceList(int* num) {
  auto** list = static_cast<ibv_device**>(std::calloc(2, sizeof(ibv_device*)));
  if (list == nullptr) return nullptr;
  list[0] = theDevice();
  if (num != nullptr) *num = 1;
  return list;
}
void freeDeviceList(ibv_device** list) {
  std::free(static_cast<void*>(list));
}
const char* getDeviceName(ibv_device* device) {
  return device->name;
}

ibv_context* openDevice(ibv_device* device) {
  auto* c = new EmuContext();
  c->ctx.device = device;
  c->pid = getpid();
  c->fault = faultSpec();
  c->memfd = memfd_create("copro-verbs-emu", MFD_CLOEXEC);
  c->ctx.async_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->memfd < 0 || c->ctx.async_fd < 0 || ftruncate(c->memfd, sizeof(DeviceSegment)) != 0) {
    if (c->memfd >= 0) close(c->memfd);
    if (c->ctx.async_fd >= 0) close(c->ctx.async_fd);
    delete c;
    return nullptr;
  }
  void* m = mmap(nullptr, sizeof(DeviceSegment), PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
  if (m == MAP_FAILED) {
    close(c->memfd);
    close(c->ctx.async_fd);
    delete c;
    return nullptr;
  }
  c->seg = static_cast<DeviceSegment*>(m);  // zero-filled by ftruncate
  c->seg->magic = kMagic;
  return &c->ctx;
}

int closeDevice(ibv_context* context) {
  EmuContext& c = ctxOf(context);
  stopNic(c);
  for (auto& [pid, r] : c.remotes) {
    if (r.seg != c.seg) munmap(r.seg, sizeof(DeviceSegment));  // a loopback QP's "remote" is this segment
  }
  munmap(c.seg, sizeof(DeviceSegment));
  close(c.memfd);
  close(c.ctx.async_fd);
  delete &c;
  return 0;
}

int queryDevice(ibv_context* /*context*/, ibv_device_attr* attr) {
  *attr = ibv_device_attr{};
  std::strncpy(attr->fw_ver, "copro-emu", sizeof(attr->fw_ver) - 1);
  attr->max_qp = kMaxQps;
  attr->max_qp_wr = kRingDepth;
  attr->max_sge = 1;
  attr->max_cqe = 1 << 16;
  attr->max_mr = 1 << 20;
  attr->max_pd = 1 << 10;
  attr->max_qp_rd_atom = 16;
  attr->max_qp_init_rd_atom = 16;
  attr->atomic_cap = IBV_ATOMIC_HCA;
  attr->phys_port_cnt = 1;
  attr->max_mr_size = UINT64_MAX;
  return 0;
}

int queryPort(ibv_context* context, std::uint8_t port, ibv_port_attr* attr) {
  if (port != 1) return EINVAL;
  *attr = ibv_port_attr{};
  attr->state = IBV_PORT_ACTIVE;
  attr->max_mtu = IBV_MTU_4096;
  attr->active_mtu = IBV_MTU_4096;
  attr->gid_tbl_len = 4;
  attr->lid = static_cast<std::uint16_t>(1 + ctxOf(context).pid % 0xbffe);
  attr->active_width = 2;   // 4x
  attr->active_speed = 64;  // HDR: 50 Gb/s per lane, 200 Gb/s on 4x
  attr->phys_state = 5;     // LinkUp
  attr->link_layer = IBV_LINK_LAYER_ETHERNET;
  return 0;
}

/// The GID names the device: "coproemu", the pid and the memfd (any index of the table).
int queryGid(ibv_context* context, std::uint8_t port, int index, ibv_gid* gid) {
  if (port != 1 || index < 0 || index >= 4) return EINVAL;
  const EmuContext& c = ctxOf(context);
  std::memcpy(gid->raw, &kMagic, 8);
  const auto pid = static_cast<std::uint32_t>(c.pid);
  const auto fd = static_cast<std::uint32_t>(c.memfd);
  std::memcpy(gid->raw + 8, &pid, 4);
  std::memcpy(gid->raw + 12, &fd, 4);
  return 0;
}

// ---- PD and MR ----

ibv_pd* allocPd(ibv_context* context) {
  auto* pd = new ibv_pd{};
  pd->context = context;
  return pd;
}
int deallocPd(ibv_pd* pd) {
  delete pd;
  return 0;
}

ibv_mr* regMr(ibv_pd* pd, void* addr, std::size_t length, int access) {
  EmuContext& c = ctxOf(pd->context);
  if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) != 0 && (access & IBV_ACCESS_LOCAL_WRITE) == 0) {
    errno = EINVAL;  // as the spec requires
    return nullptr;
  }
  auto* m = new EmuMr();
  m->access = access;
  m->mr.context = pd->context;
  m->mr.pd = pd;
  m->mr.addr = addr;
  m->mr.length = length;
  std::lock_guard<std::mutex> lock(c.mu);
  m->mr.lkey = c.nextKey++;
  m->mr.rkey = c.nextKey++;
  c.mrsByLkey[m->mr.lkey] = m;
  c.mrsByRkey[m->mr.rkey] = m;
  return &m->mr;
}

int deregMr(ibv_mr* mr) {
  EmuContext& c = ctxOf(mr->context);
  auto* m = reinterpret_cast<EmuMr*>(mr);
  std::unique_lock<std::mutex> lock(c.mu);
  c.mrsByLkey.erase(mr->lkey);
  c.mrsByRkey.erase(mr->rkey);
  // A request that found the key before it went may still be copying into the region (MrUse): wait for
  // it, so that the caller can unmap the memory as soon as this returns.
  while (m->users > 0) {
    lock.unlock();
    std::this_thread::yield();
    lock.lock();
  }
  lock.unlock();
  delete m;
  return 0;
}

bool covers(const EmuMr& m, std::uint64_t addr, std::uint64_t len, int access) {
  const auto base = reinterpret_cast<std::uint64_t>(m.mr.addr);
  return addr >= base && len <= m.mr.length && addr - base <= m.mr.length - len && (m.access & access) == access;
}

bool localKeyOk(EmuContext& c, std::uint32_t lkey, std::uint64_t addr, std::uint64_t len, int access) {
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.mrsByLkey.find(lkey);
  return it != c.mrsByLkey.end() && covers(*it->second, addr, len, access);
}

// ---- CQ ----

ibv_cq* createCq(ibv_context* context, int cqe, void* cqContext, ibv_comp_channel* /*channel*/, int /*vector*/) {
  auto* cq = new EmuCq();
  cq->cq.context = context;
  cq->cq.cqe = cqe;
  cq->cq.cq_context = cqContext;
  return &cq->cq;
}
int destroyCq(ibv_cq* cq) {
  EmuContext& c = ctxOf(cq->context);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    for (const auto& [slot, qp] : c.qps) {
      if (qp->qp.send_cq == cq || qp->qp.recv_cq == cq) return EBUSY;  // as libibverbs: QPs first
    }
  }
  delete reinterpret_cast<EmuCq*>(cq);
  return 0;
}

// ---- QP ----

ibv_qp* createQp(ibv_pd* pd, ibv_qp_init_attr* attr) {
  EmuContext& c = ctxOf(pd->context);
  if (attr->qp_type != IBV_QPT_RC || attr->cap.max_send_wr > static_cast<std::uint32_t>(kRingDepth) ||
      attr->cap.max_send_sge > 1 || attr->cap.max_inline_data > static_cast<std::uint32_t>(kMaxInline)) {
    errno = EINVAL;
    return nullptr;
  }
  auto qp = std::make_shared<EmuQp>();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    int slot = 0;
    while (slot < kMaxQps && c.qps.count(slot) != 0) ++slot;
    if (slot == kMaxQps) {
      errno = ENOMEM;
      return nullptr;
    }
    Slot& s = c.seg->slots[slot];
    s.h.posted.store(0);
    s.h.executed.store(0);
    s.h.error.store(0);
    s.h.generation.fetch_add(1, std::memory_order_release);
    qp->slot = slot;
    c.qps[slot] = qp;
  }
  qp->ctx = &c;
  qp->maxSendWr = attr->cap.max_send_wr;
  qp->maxRecvWr = attr->cap.max_recv_wr;
  qp->qp.context = pd->context;
  qp->qp.pd = pd;
  qp->qp.send_cq = attr->send_cq;
  qp->qp.recv_cq = attr->recv_cq;
  qp->qp.qp_context = attr->qp_context;
  qp->qp.qp_type = IBV_QPT_RC;
  qp->qp.qp_num = static_cast<std::uint32_t>(qp->slot + 1);
  qp->qp.state = IBV_QPS_RESET;
  startNic(c);
  return &qp->qp;
}

/// Drops the queued events that name `qp`; under c.mu.
void dropEventsOf(EmuContext& c, const ibv_qp* qp) {
  std::erase_if(c.events, [qp](const ibv_async_event& ev) { return isQpEvent(ev.event_type) && ev.element.qp == qp; });
}

/// As libibverbs: when ibv_destroy_qp returns, the NIC serves the QP no more and no event names it (queued
/// ones are dropped; one handed out waits for its ibv_ack_async_event), so its memory, CQs and the
/// regions it reached may go.
int destroyQp(ibv_qp* q) {
  EmuQp& qp = qpOf(q);
  EmuContext& c = *qp.ctx;
  const std::shared_ptr<EmuQp> keep = [&] {
    std::lock_guard<std::mutex> lock(c.mu);
    c.seg->slots[qp.slot].h.generation.fetch_add(1, std::memory_order_release);  // the peer stops serving it
    qp.destroyed = true;
    dropEventsOf(c, q);
    auto it = c.qps.find(qp.slot);
    std::shared_ptr<EmuQp> owner = it != c.qps.end() ? it->second : nullptr;
    if (it != c.qps.end()) c.qps.erase(it);
    return owner;
  }();
  { const std::lock_guard<std::mutex> pass(c.nicPass); }  // the pass serving it, if any, is over
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(c.mu);
      if (qp.unackedEvents == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // the event thread acks right after reading
  }
  return 0;  // `keep`, the last owner (the NIC's snapshot went with its pass), frees the QP
}

/// Maps the device segment the GID names (another process's memfd, through /proc).
RemoteDevice* mapRemote(EmuContext& c, const ibv_gid& gid) {
  std::uint64_t magic = 0;
  std::uint32_t pid = 0;
  std::uint32_t fd = 0;
  std::memcpy(&magic, gid.raw, 8);
  std::memcpy(&pid, gid.raw + 8, 4);
  std::memcpy(&fd, gid.raw + 12, 4);
  if (magic != kMagic) return nullptr;
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.remotes.find(static_cast<pid_t>(pid));
  if (it != c.remotes.end()) return &it->second;
  void* m = c.seg;
  if (static_cast<pid_t>(pid) != c.pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
    const int rfd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (rfd < 0) return nullptr;
    m = mmap(nullptr, sizeof(DeviceSegment), PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
    close(rfd);
    if (m == MAP_FAILED || static_cast<DeviceSegment*>(m)->magic != kMagic) return nullptr;
  }
  RemoteDevice r{static_cast<pid_t>(pid), static_cast<DeviceSegment*>(m)};
  return &c.remotes.emplace(r.pid, r).first->second;
}

int toRtr(EmuQp& qp, const ibv_qp_attr& attr, int mask) {
  if ((mask & IBV_QP_AV) == 0 || (mask & IBV_QP_DEST_QPN) == 0 || attr.ah_attr.is_global == 0) return EINVAL;
  RemoteDevice* r = mapRemote(*qp.ctx, attr.ah_attr.grh.dgid);
  const int peerSlot = static_cast<int>(attr.dest_qp_num) - 1;
  if (r == nullptr || peerSlot < 0 || peerSlot >= kMaxQps) return EINVAL;
  qp.peer = *r;
  qp.peerSlot = peerSlot;
  qp.peerGen = r->seg->slots[peerSlot].h.generation.load(std::memory_order_acquire);
  return 0;
}

int modifyQp(ibv_qp* q, ibv_qp_attr* attr, int mask) {
  EmuQp& qp = qpOf(q);
  if ((mask & IBV_QP_ACCESS_FLAGS) != 0) qp.accessFlags = static_cast<int>(attr->qp_access_flags);
  if ((mask & IBV_QP_RNR_RETRY) != 0) qp.rnrRetry = attr->rnr_retry;
  if ((mask & IBV_QP_STATE) == 0) return 0;
  const ibv_qp_state next = attr->qp_state;
  const int cur = qp.state.load();
  if (next == IBV_QPS_ERR) {
    qpToError(qp, IBV_WC_WR_FLUSH_ERR);
    return 0;
  }
  const bool ok = (next == IBV_QPS_INIT && (cur == IBV_QPS_RESET || cur == IBV_QPS_INIT)) ||
                  (next == IBV_QPS_RTR && cur == IBV_QPS_INIT) || (next == IBV_QPS_RTS && cur == IBV_QPS_RTR) ||
                  next == IBV_QPS_RESET;
  if (!ok) return EINVAL;
  if (next == IBV_QPS_RTR) {
    const int rc = toRtr(qp, *attr, mask);
    if (rc != 0) return rc;
  }
  qp.state.store(next);
  qp.qp.state = next;
  return 0;
}

// ---- posting ----

/// Applies COPRO_VERBS_EMU_FAULT when this is the process's N-th posted request.
void injectFault(EmuQp& qp, WireWr& w) {
  const FaultSpec& f = qp.ctx->fault;
  if (f.kind.empty()) return;
  const bool due = qp.ctx->postedCount.fetch_add(1) + 1 == f.at;
  if (!due && !(f.kind == "bad-rkey" && qp.ctx->rkeyFaultPending)) return;
  if (f.kind == "die") {
    raise(SIGKILL);
  } else if (f.kind == "bad-rkey") {
    // A zero-byte write checks no key (as on an HCA): the fault waits for a request that does.
    qp.ctx->rkeyFaultPending = w.length == 0;
    if (w.length > 0) w.rkey ^= 0x40000000U;
  } else if (f.kind == "qp-error") {
    qpToError(qp, IBV_WC_RETRY_EXC_ERR);
    raiseAsyncEvent(*qp.ctx, &qp.qp, IBV_EVENT_QP_FATAL);
  }
}

int checkLocal(EmuQp& qp, const ibv_send_wr& wr) {
  if (wr.num_sge > 1) return EINVAL;
  if (wr.num_sge == 0 || wr.sg_list[0].length == 0) return 0;
  const ibv_sge& sge = wr.sg_list[0];
  if ((wr.send_flags & IBV_SEND_INLINE) != 0) {
    return sge.length <= static_cast<std::uint32_t>(kMaxInline) && wr.opcode != IBV_WR_RDMA_READ ? 0 : EINVAL;
  }
  const bool writesLocal = wr.opcode == IBV_WR_RDMA_READ || wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD;
  return localKeyOk(*qp.ctx, sge.lkey, sge.addr, sge.length, writesLocal ? IBV_ACCESS_LOCAL_WRITE : 0) ? 0 : EINVAL;
}

void fillWire(const ibv_send_wr& wr, WireWr& w) {
  w.opcode = wr.opcode;
  w.flags = wr.send_flags;
  w.wrId = wr.wr_id;
  w.status = IBV_WC_SUCCESS;
  w.imm = wr.imm_data;
  w.localAddr = wr.num_sge > 0 ? wr.sg_list[0].addr : 0;
  w.length = wr.num_sge > 0 ? wr.sg_list[0].length : 0;
  if (wr.opcode == IBV_WR_ATOMIC_FETCH_AND_ADD) {
    w.remoteAddr = wr.wr.atomic.remote_addr;
    w.rkey = wr.wr.atomic.rkey;
    w.add = wr.wr.atomic.compare_add;
  } else {
    w.remoteAddr = wr.wr.rdma.remote_addr;
    w.rkey = wr.wr.rdma.rkey;
  }
  if ((wr.send_flags & IBV_SEND_INLINE) != 0 && w.length > 0) {
    std::memcpy(w.inlineData, reinterpret_cast<const void*>(w.localAddr), w.length);
  }
}

int postSend(ibv_qp* q, ibv_send_wr* wr, ibv_send_wr** bad) {
  EmuQp& qp = qpOf(q);
  Slot& s = qp.ctx->seg->slots[qp.slot];
  for (; wr != nullptr; wr = wr->next) {
    const int st = qp.state.load();
    std::uint64_t p = s.h.posted.load(std::memory_order_relaxed);
    int rc = (st != IBV_QPS_RTS && st != IBV_QPS_ERR) ? EINVAL : 0;
    if (rc == 0 && p - qp.polled >= qp.maxSendWr) rc = ENOMEM;
    if (rc == 0) rc = checkLocal(qp, *wr);
    if (rc != 0) {
      *bad = wr;
      return rc;
    }
    WireWr& w = s.ring[p % kRingDepth];
    fillWire(*wr, w);
    injectFault(qp, w);
    s.h.posted.store(p + 1, std::memory_order_release);
  }
  if (qp.peerSlot >= 0) ringDoorbell(*qp.peer.seg);
  return 0;
}

int postRecv(ibv_qp* q, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  EmuQp& qp = qpOf(q);
  std::lock_guard<std::mutex> lock(qp.ctx->mu);
  for (; wr != nullptr; wr = wr->next) {
    if (qp.recvs.size() >= qp.maxRecvWr || qp.state.load() == IBV_QPS_RESET) {
      *bad = wr;
      return ENOMEM;
    }
    qp.recvs.push_back(wr->wr_id);
  }
  ringDoorbell(*qp.ctx->seg);  // a request waiting for a receive may go on
  return 0;
}

// ---- completions ----

ibv_wc_opcode wcOpcode(std::uint32_t op) {
  switch (op) {
    case IBV_WR_RDMA_READ:
      return IBV_WC_RDMA_READ;
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      return IBV_WC_FETCH_ADD;
    default:
      return IBV_WC_RDMA_WRITE;
  }
}

/// A peer process that is gone never executes what is queued for it: fail it here.
void failIfPeerDead(EmuQp& qp, Slot& s) {
  const std::uint64_t posted = s.h.posted.load(std::memory_order_acquire);
  const auto now = Clock::now();
  if (qp.polled == posted || now - qp.lastProgress < std::chrono::milliseconds(100)) return;
  qp.lastProgress = now;
  if (qp.peerSlot < 0 || processAlive(qp.peer.pid)) return;
  qpToError(qp, IBV_WC_RETRY_EXC_ERR);
  for (std::uint64_t e = s.h.executed.load(); e < posted; ++e) {
    s.ring[e % kRingDepth].status = e == qp.polled ? IBV_WC_RETRY_EXC_ERR : IBV_WC_WR_FLUSH_ERR;
    s.h.executed.store(e + 1, std::memory_order_release);
  }
}

int pollSend(EmuQp& qp, int entries, ibv_wc* wc) {
  Slot& s = qp.ctx->seg->slots[qp.slot];
  const std::uint64_t executed = s.h.executed.load(std::memory_order_acquire);
  int n = 0;
  if (qp.polled < executed) qp.lastProgress = Clock::now();
  for (; qp.polled < executed && n < entries; ++qp.polled) {
    const WireWr& w = s.ring[qp.polled % kRingDepth];
    if ((w.flags & IBV_SEND_SIGNALED) == 0 && w.status == IBV_WC_SUCCESS) continue;
    ibv_wc& out = wc[n++];
    out = ibv_wc{};
    out.wr_id = w.wrId;
    out.status = static_cast<ibv_wc_status>(w.status);
    out.opcode = wcOpcode(w.opcode);
    out.qp_num = qp.qp.qp_num;
    out.byte_len = static_cast<std::uint32_t>(w.length);
  }
  if (qp.polled == executed) failIfPeerDead(qp, s);
  return n;
}

int pollCq(ibv_cq* cq, int entries, ibv_wc* wc) {
  auto* ecq = reinterpret_cast<EmuCq*>(cq);
  int n = 0;
  {
    std::lock_guard<std::mutex> lock(ecq->mu);
    while (n < entries && !ecq->recvWcs.empty()) {
      wc[n++] = ecq->recvWcs.front();
      ecq->recvWcs.pop_front();
    }
  }
  EmuContext& c = ctxOf(cq->context);
  std::vector<std::shared_ptr<EmuQp>> qps;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto& [slot, qp] : c.qps) {
      if (qp->qp.send_cq == cq) qps.push_back(qp);
    }
  }
  for (auto& qp : qps) n += pollSend(*qp, entries - n, wc + n);
  return n;
}

// ---- asynchronous events ----

int getAsyncEvent(ibv_context* context, ibv_async_event* event) {
  EmuContext& c = ctxOf(context);
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.events.empty()) {
    std::uint64_t drain = 0;
    (void)read(c.ctx.async_fd, &drain, sizeof(drain));
    errno = EAGAIN;
    return -1;
  }
  *event = c.events.front();
  c.events.pop_front();
  if (isQpEvent(event->event_type)) ++qpOf(event->element.qp).unackedEvents;
  return 0;
}
void ackAsyncEvent(ibv_async_event* event) {
  if (event == nullptr || !isQpEvent(event->event_type)) return;
  EmuQp& qp = qpOf(event->element.qp);
  std::lock_guard<std::mutex> lock(qp.ctx->mu);
  if (qp.unackedEvents > 0) --qp.unackedEvents;
}
int forkInit() {
  return 0;  // nothing is pinned: fork is safe
}

const char* wcStatusStr(ibv_wc_status status) {
  switch (status) {
    case IBV_WC_SUCCESS:
      return "success";
    case IBV_WC_LOC_PROT_ERR:
      return "local protection error";
    case IBV_WC_WR_FLUSH_ERR:
      return "Work Request Flushed Error";
    case IBV_WC_REM_INV_REQ_ERR:
      return "remote invalid request error";
    case IBV_WC_REM_ACCESS_ERR:
      return "remote access error";
    case IBV_WC_RETRY_EXC_ERR:
      return "transport retry counter exceeded";
    case IBV_WC_RNR_RETRY_EXC_ERR:
      return "RNR retry counter exceeded";
    default:
      return "unknown";
  }
}

const char* eventTypeStr(ibv_event_type type) {
  switch (type) {
    case IBV_EVENT_QP_FATAL:
      return "local work queue catastrophic error";
    case IBV_EVENT_QP_REQ_ERR:
      return "invalid request local work queue error";
    case IBV_EVENT_QP_ACCESS_ERR:
      return "local access violation work queue error";
    case IBV_EVENT_PORT_ERR:
      return "port error";
    case IBV_EVENT_DEVICE_FATAL:
      return "local catastrophic error";
    default:
      return "unknown";
  }
}

FaultSpec parseFault(const std::string& text) {
  FaultSpec f;
  const auto at = text.find('@');
  if (text.empty() || at == std::string::npos) return f;
  f.kind = text.substr(0, at);
  f.at = std::strtoull(text.c_str() + at + 1, nullptr, 10);
  return f;
}

}  // namespace

MrUse::MrUse(EmuContext& ctx, std::uint32_t rkey, std::uint64_t addr, std::uint64_t len, int access) : ctx_(ctx) {
  std::lock_guard<std::mutex> lock(ctx.mu);
  auto it = ctx.mrsByRkey.find(rkey);
  if (it == ctx.mrsByRkey.end() || !covers(*it->second, addr, len, access)) return;
  mr_ = it->second;
  ++mr_->users;
}

MrUse::~MrUse() {
  if (mr_ == nullptr) return;
  std::lock_guard<std::mutex> lock(ctx_.mu);
  --mr_->users;
}

void qpToError(EmuQp& qp, ibv_wc_status status) {
  qp.state.store(IBV_QPS_ERR);
  qp.qp.state = IBV_QPS_ERR;
  std::uint32_t none = 0;
  qp.ctx->seg->slots[qp.slot].h.error.compare_exchange_strong(none, static_cast<std::uint32_t>(status) + 1);
  if (qp.peerSlot >= 0) {
    none = 0;
    qp.peer.seg->slots[qp.peerSlot].h.error.compare_exchange_strong(none, static_cast<std::uint32_t>(status) + 1);
    ringDoorbell(*qp.peer.seg);  // the peer's NIC flushes what remains
  }
}

bool isQpEvent(ibv_event_type type) {
  switch (type) {
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_COMM_EST:
    case IBV_EVENT_SQ_DRAINED:
    case IBV_EVENT_PATH_MIG:
    case IBV_EVENT_PATH_MIG_ERR:
    case IBV_EVENT_QP_LAST_WQE_REACHED:
      return true;
    default:
      return false;
  }
}

void raiseAsyncEvent(EmuContext& ctx, ibv_qp* qp, ibv_event_type type) {
  ibv_async_event ev{};
  ev.event_type = type;
  if (qp != nullptr) {
    ev.element.qp = qp;
  } else {
    ev.element.port_num = 1;
  }
  {
    std::lock_guard<std::mutex> lock(ctx.mu);
    if (qp != nullptr && qpOf(qp).destroyed) return;  // the NIC's pass found it before ibv_destroy_qp
    ctx.events.push_back(ev);
  }
  const std::uint64_t one = 1;
  (void)write(ctx.ctx.async_fd, &one, sizeof(one));
}

const VerbsApi& emulatedVerbsApi(const core::Config& config) {
  static std::once_flag once;
  static VerbsApi api;
  std::call_once(once, [&config] {
    faultSpec() = parseFault(config.verbsEmuFault);
    api.provider = "emu";
    api.emulated = true;
    api.getDeviceList = getDeviceList;
    api.freeDeviceList = freeDeviceList;
    api.getDeviceName = getDeviceName;
    api.openDevice = openDevice;
    api.closeDevice = closeDevice;
    api.queryDevice = queryDevice;
    api.queryPort = queryPort;
    api.queryGid = queryGid;
    api.allocPd = allocPd;
    api.deallocPd = deallocPd;
    api.regMr = regMr;
    api.deregMr = deregMr;
    api.createCq = createCq;
    api.destroyCq = destroyCq;
    api.createQp = createQp;
    api.modifyQp = modifyQp;
    api.destroyQp = destroyQp;
    api.postSend = postSend;
    api.postRecv = postRecv;
    api.pollCq = pollCq;
    api.getAsyncEvent = getAsyncEvent;
    api.ackAsyncEvent = ackAsyncEvent;
    api.forkInit = forkInit;
    api.wcStatusStr = wcStatusStr;
    api.eventTypeStr = eventTypeStr;
  });
  return api;
}

}  // namespace copro::transport::verbs::emu
