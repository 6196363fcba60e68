/// The emulated provider's NIC thread (emu_device.hpp): per process, it executes the send requests that
/// peers posted on the queue pairs connected to this device, as a responder HCA does. Data moves with
/// process_vm_readv/writev; atomics are CPU atomics on this process's memory; keys, access flags and the
/// QPs' states are checked per request; completion status goes back into the requester's ring.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>

#include "emu_device.hpp"

namespace copro::transport::verbs::emu {

namespace {

using Clock = std::chrono::steady_clock;

/// Copies `len` bytes between this process and `pid` (toRemote: local -> remote). Returns a wc status.
ibv_wc_status crossCopy(pid_t pid, void* local, std::uint64_t remote, std::uint64_t len, bool toRemote) {
  std::uint64_t done = 0;
  while (done < len) {
    iovec l{static_cast<std::byte*>(local) + done, static_cast<std::size_t>(len - done)};
    iovec r{reinterpret_cast<void*>(remote + done), static_cast<std::size_t>(len - done)};
    const ssize_t n = toRemote ? process_vm_writev(pid, &l, 1, &r, 1, 0) : process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (n <= 0) return errno == ESRCH ? IBV_WC_RETRY_EXC_ERR : IBV_WC_LOC_PROT_ERR;
    done += static_cast<std::uint64_t>(n);
  }
  return IBV_WC_SUCCESS;
}

bool receivePosted(EmuQp& qp) {
  std::lock_guard<std::mutex> lock(qp.ctx->mu);
  return !qp.recvs.empty();
}

ibv_wc_status executeWrite(EmuQp& qp, WireWr& w) {
  if ((qp.accessFlags & IBV_ACCESS_REMOTE_WRITE) == 0) return IBV_WC_REM_ACCESS_ERR;
  if (w.opcode == IBV_WR_RDMA_WRITE_WITH_IMM && qp.rnrRetry >= 7 && !receivePosted(qp)) {
    return static_cast<ibv_wc_status>(kWaitForReceive);
  }
  if (w.length > 0) {
    const MrUse use(*qp.ctx, w.rkey, w.remoteAddr, w.length, IBV_ACCESS_REMOTE_WRITE);
    if (!use) return IBV_WC_REM_ACCESS_ERR;
    auto* dst = reinterpret_cast<void*>(w.remoteAddr);
    if ((w.flags & IBV_SEND_INLINE) != 0) {
      std::memcpy(dst, w.inlineData, w.length);
    } else {
      const ibv_wc_status st = crossCopy(qp.peer.pid, dst, w.localAddr, w.length, false);
      if (st != IBV_WC_SUCCESS) return st;
    }
  }
  if (w.opcode != IBV_WR_RDMA_WRITE_WITH_IMM) return IBV_WC_SUCCESS;
  std::uint64_t recvId = 0;
  {
    std::lock_guard<std::mutex> lock(qp.ctx->mu);
    if (qp.recvs.empty()) {
      // Receiver not ready: rnr_retry 7 retries for ever (the request waits), fewer retries are not
      // modelled in time: the request fails at once.
      return qp.rnrRetry >= 7 ? static_cast<ibv_wc_status>(kWaitForReceive) : IBV_WC_RNR_RETRY_EXC_ERR;
    }
    recvId = qp.recvs.front();
    qp.recvs.pop_front();
  }
  ibv_wc wc{};
  wc.wr_id = recvId;
  wc.status = IBV_WC_SUCCESS;
  wc.opcode = IBV_WC_RECV_RDMA_WITH_IMM;
  wc.wc_flags = IBV_WC_WITH_IMM;
  wc.imm_data = w.imm;
  wc.qp_num = qp.qp.qp_num;
  wc.byte_len = static_cast<std::uint32_t>(w.length);
  auto* cq = reinterpret_cast<EmuCq*>(qp.qp.recv_cq);
  std::lock_guard<std::mutex> lock(cq->mu);
  cq->recvWcs.push_back(wc);
  return IBV_WC_SUCCESS;
}

ibv_wc_status executeRead(EmuQp& qp, WireWr& w) {
  if ((qp.accessFlags & IBV_ACCESS_REMOTE_READ) == 0) return IBV_WC_REM_ACCESS_ERR;
  if (w.length == 0) return IBV_WC_SUCCESS;
  const MrUse use(*qp.ctx, w.rkey, w.remoteAddr, w.length, IBV_ACCESS_REMOTE_READ);
  if (!use) return IBV_WC_REM_ACCESS_ERR;
  return crossCopy(qp.peer.pid, reinterpret_cast<void*>(w.remoteAddr), w.localAddr, w.length, true);
}

ibv_wc_status executeFetchAdd(EmuQp& qp, WireWr& w) {
  if ((qp.accessFlags & IBV_ACCESS_REMOTE_ATOMIC) == 0 || w.remoteAddr % 8 != 0) return IBV_WC_REM_ACCESS_ERR;
  std::uint64_t old = 0;
  {
    const MrUse use(*qp.ctx, w.rkey, w.remoteAddr, 8, IBV_ACCESS_REMOTE_ATOMIC);
    if (!use) return IBV_WC_REM_ACCESS_ERR;
    std::atomic_ref<std::uint64_t> word(*reinterpret_cast<std::uint64_t*>(w.remoteAddr));
    old = word.fetch_add(w.add, std::memory_order_acq_rel);
  }
  return crossCopy(qp.peer.pid, &old, w.localAddr, 8, true);
}

ibv_wc_status execute(EmuQp& qp, WireWr& w) {
  switch (w.opcode) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      return executeWrite(qp, w);
    case IBV_WR_RDMA_READ:
      return executeRead(qp, w);
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      return executeFetchAdd(qp, w);
    default:
      return IBV_WC_REM_INV_REQ_ERR;
  }
}

/// Executes the requests the peer of `qp` posted; returns whether it executed any.
bool serveIncoming(EmuQp& qp) {
  // The state first: modifyQp stores RTR after toRtr wrote the peer fields, so reading it first orders
  // those writes before the reads below (ThreadSanitizer saw peerSlot read while toRtr wrote it).
  if (qp.state.load() < IBV_QPS_RTR || qp.peerSlot < 0) return false;
  Slot& s = qp.peer.seg->slots[qp.peerSlot];
  if (s.h.generation.load(std::memory_order_acquire) != qp.peerGen) return false;
  std::uint64_t e = s.h.executed.load(std::memory_order_relaxed);
  const std::uint64_t p = s.h.posted.load(std::memory_order_acquire);
  if (e == p) return false;
  const std::uint64_t first = e;
  for (; e < p; ++e) {
    WireWr& w = s.ring[e % kRingDepth];
    const bool inError = s.h.error.load(std::memory_order_acquire) != 0 || qp.state.load() == IBV_QPS_ERR;
    const ibv_wc_status st = inError ? IBV_WC_WR_FLUSH_ERR : execute(qp, w);
    if (static_cast<std::uint32_t>(st) == kWaitForReceive) break;  // retried when a receive is posted
    w.status = st;
    if (st != IBV_WC_SUCCESS && st != IBV_WC_WR_FLUSH_ERR) {
      qpToError(qp, st);
      raiseAsyncEvent(*qp.ctx, &qp.qp, st == IBV_WC_REM_ACCESS_ERR ? IBV_EVENT_QP_ACCESS_ERR : IBV_EVENT_QP_REQ_ERR);
    }
    s.h.executed.store(e + 1, std::memory_order_release);
  }
  return e != first;
}

std::vector<std::shared_ptr<EmuQp>> snapshot(EmuContext& ctx) {
  std::lock_guard<std::mutex> lock(ctx.mu);
  std::vector<std::shared_ptr<EmuQp>> out;
  out.reserve(ctx.qps.size());
  for (auto& [slot, qp] : ctx.qps) out.push_back(qp);
  return out;
}

/// A peer process that exited fails the QPs connected to it (its HCA would stop acknowledging).
void checkPeersAlive(EmuContext& ctx, const std::vector<std::shared_ptr<EmuQp>>& qps) {
  for (const auto& qp : qps) {
    const int state = qp->state.load();  // first: it orders toRtr's writes of the peer fields (serveIncoming)
    if (state < IBV_QPS_RTR || state == IBV_QPS_ERR || qp->peerSlot < 0) continue;
    if (!processAlive(qp->peer.pid)) {
      qpToError(*qp, IBV_WC_RETRY_EXC_ERR);
      raiseAsyncEvent(ctx, &qp->qp, IBV_EVENT_QP_FATAL);
    }
  }
}

void sleepOnDoorbell(DeviceSegment& seg, std::uint32_t seen) {
  seg.sleeping.store(1, std::memory_order_seq_cst);
  if (seg.doorbell.load(std::memory_order_seq_cst) == seen) {
    timespec ts{0, 2'000'000};  // 2 ms: also paces the liveness checks
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&seg.doorbell), FUTEX_WAIT, seen, &ts, nullptr, 0);
  }
  seg.sleeping.store(0, std::memory_order_relaxed);
}

void nicLoop(EmuContext& ctx) {
  int idle = 0;
  auto lastLiveness = Clock::now();
  while (!ctx.stop.load(std::memory_order_acquire)) {
    const std::uint32_t seen = ctx.seg->doorbell.load(std::memory_order_acquire);
    bool did = false;
    {
      // One pass over the QPs that exist now, under nicPass: ibv_destroy_qp waits for it to end, and the
      // snapshot (the last owner of a QP destroyed meanwhile) goes before the lock does.
      const std::lock_guard<std::mutex> pass(ctx.nicPass);
      const auto qps = snapshot(ctx);
      for (const auto& qp : qps) did = serveIncoming(*qp) || did;
      if (Clock::now() - lastLiveness > std::chrono::milliseconds(100)) {
        lastLiveness = Clock::now();
        checkPeersAlive(ctx, qps);
      }
    }
    if (did) {
      idle = 0;
    } else if (++idle < 64) {
      sched_yield();
    } else {
      sleepOnDoorbell(*ctx.seg, seen);
    }
  }
}

}  // namespace

void ringDoorbell(DeviceSegment& seg) {
  seg.doorbell.fetch_add(1, std::memory_order_seq_cst);
  if (seg.sleeping.load(std::memory_order_seq_cst) != 0) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&seg.doorbell), FUTEX_WAKE, 1, nullptr, nullptr, 0);
  }
}

void startNic(EmuContext& ctx) {
  if (ctx.nic.joinable()) return;
  ctx.nic = std::thread([&ctx] { nicLoop(ctx); });
}

void stopNic(EmuContext& ctx) {
  if (!ctx.nic.joinable()) return;
  ctx.stop.store(true, std::memory_order_release);
  ringDoorbell(*ctx.seg);
  ctx.nic.join();
}

bool processAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return kill(pid, 0) == 0 || errno != ESRCH;
  const std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');  // "pid (comm) S ...": the state follows the last ')'
  if (paren == std::string::npos || paren + 2 >= text.size()) return true;
  return text[paren + 2] != 'Z' && text[paren + 2] != 'X';
}

}  // namespace copro::transport::verbs::emu
