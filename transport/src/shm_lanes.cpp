/// The shm lane runner: executes one lane's ops synchronously, in order (as inproc does), against the
/// buffers of the executing rank and its peers. A peer's buffer is reached directly when it lives in
/// shared memory (scratch, layout, semaphores, allocate()d memory, staging shadows) and through Cross
/// Memory Attach otherwise; reductions over peers' user buffers read them into a per-lane staging block
/// by block. Ops that reach a peer first wait (without blocking the thread) until it entered the call.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"
#include "copro/core/reduce.hpp"
#include "lane_ops.hpp"
#include "lane_util.hpp"
#include "shm_internal.hpp"

namespace copro::transport::shm {

using core::Addr;
using core::BufferId;
using core::ErrorCode;
using core::Op;
using core::OpCode;
using core::Status;

std::string opLabel(const Call& call, int lane, std::uint32_t index) {
  return lanes::opLabelOf(call, lane, index);
}

namespace {

/// Block size of reductions that stage peers' data: large enough that the system calls cost little
/// against the copy, small enough that the staged blocks stay in cache for the reduction.
constexpr std::uint64_t kStageBlock = 256 * 1024;

using lanes::copyBytes;
using lanes::Geometry;
using lanes::overlaps;

using lanes::Access;
using lanes::OpResult;

/// How shm ranks reach each other: their control blocks in the shared control segment (lane_ops.hpp).
struct ShmPeers {
  ShmComm* comm;
  [[nodiscard]] int size() const { return comm->size(); }
  [[nodiscard]] RankCtl& ctl(std::int32_t r) const { return comm->ctl(r); }
  [[nodiscard]] static bool dead(std::uint64_t state) { return state == kDeadState; }
  [[nodiscard]] std::string deadReason(std::int32_t r) const {
    std::string why = "rank " + std::to_string(r) + " failed, was aborted or left and can no longer be reached";
    if (comm->poisonedRank() >= 0) why += " (" + comm->poisonReason() + ")";
    return why;
  }
  [[nodiscard]] const std::uint64_t* ownLayout() const { return comm->ownLayout(); }
};

struct PendingSignal {
  std::int32_t rank;
  std::int32_t sem;
  std::uint64_t value;
};

class OpRunner : private lanes::LaneOpCore<ShmPeers, Call, LaneState> {
 public:
  OpRunner(ShmComm& comm, Call& call, int lane, Status& error)
      : LaneOpCore(ShmPeers{&comm}, call, lane, error, comm.rank()), comm_(comm) {}

  OpResult run(std::uint32_t pc, std::uint32_t& consumed) {
    pc_ = pc;
    consumed = 1;
    const Op& op = ops_[pc];
    l_.peers.clear();
    OpResult r = OpResult::kFailed;
    switch (op.code) {
      case OpCode::kPut:
        r = runPut(op);
        break;
      case OpCode::kMulticast:
        r = runMulticast(op);
        break;
      case OpCode::kGet:
        r = runGet(op);
        break;
      case OpCode::kSignal:
        r = runSignal(op);
        break;
      case OpCode::kWait:
        r = runWait(op);
        break;
      case OpCode::kReduce:
        r = runReduce(op, consumed);
        break;
      case OpCode::kPutReduce:
        r = runPutReduce(op);
        break;
      case OpCode::kCopy:
        r = runCopy(op);
        break;
      case OpCode::kFlush:
        r = OpResult::kDone;  // every op completed when it executed
        break;
      default:
        r = fail("unknown op code " + std::to_string(static_cast<int>(op.code)));
        break;
    }
    releaseAll();
    return r;
  }

 private:
  // ---- addresses ----
  void mapFailed(std::int32_t r, const std::string& why) {
    if (comm_.knownGone(r)) {
      fail("rank " + std::to_string(r) + " (pid " + std::to_string(comm_.ctl(r).pid) + ") exited or was killed",
           ErrorCode::kRemoteError);
    } else {
      fail("cannot map the shared memory of rank " + std::to_string(r) + ": " + why, ErrorCode::kRemoteError);
    }
  }

  /// Resolves [offset, offset+bytes) of buffer `buf` of rank `r` (self or an acquired peer).
  bool locate(const char* role, std::int32_t r, BufferId buf, std::uint64_t offset, std::uint64_t bytes, bool write,
              Loc& out, bool report = true) {
    out = Loc{};
    const auto b = static_cast<std::size_t>(buf);
    if (r == me_) {
      const std::vector<Region>& regs = comm_.ownRegions();
      if (b >= regs.size()) return noSuchBuffer(role, r, buf, regs.size(), report);
      const Region& reg = regs[b];
      if (!boundsOk(role, r, buf, offset, bytes, reg.limit, reg.writable, write, report)) return false;
      out.ptr = reg.base == nullptr ? nullptr : reg.base + offset;
      return true;
    }
    std::string why;
    const DataHeader* h = comm_.peerData(r, why);
    if (h == nullptr) {
      if (report) mapFailed(r, why);
      return false;
    }
    const auto* base = reinterpret_cast<const std::byte*>(h);
    const auto* regs = reinterpret_cast<const SharedRegion*>(base + h->regionsOff);
    if (b >= h->numRegions) return noSuchBuffer(role, r, buf, h->numRegions, report);
    const SharedRegion& reg = regs[b];
    if (!boundsOk(role, r, buf, offset, bytes, reg.limit, reg.writable != 0, write, report)) return false;
    switch (reg.kind) {
      case RegionKind::kData:
        out.ptr = const_cast<std::byte*>(base) + reg.offset + offset;
        return true;
      case RegionKind::kAlloc: {
        std::byte* a = comm_.mapAllocation(reg.allocName, reg.offset + reg.limit, why);
        if (a == nullptr) {
          if (report) {
            fail("cannot map buffer " + core::bufferName(buf) + " of rank " + std::to_string(r) + ": " + why,
                 ErrorCode::kRemoteError);
          }
          return false;
        }
        out.ptr = a + reg.offset + offset;
        return true;
      }
      case RegionKind::kUser:
        out.remote = reg.ownerAddr + offset;
        out.pid = comm_.ctl(r).pid;
        out.rank = r;
        return true;
      case RegionKind::kNone:
        return true;  // a null buffer with limit 0: only empty accesses pass the bounds check
    }
    return false;
  }

  bool checkSem(std::int32_t r, std::int32_t sem, std::atomic<std::uint64_t>*& out, bool report = true) {
    std::int32_t n = 0;
    if (r == me_) {
      n = comm_.ownNumSems();
      if (sem >= 0 && sem < n) {
        out = comm_.ownSems() + sem;
        return true;
      }
    } else {
      std::string why;
      const DataHeader* h = comm_.peerData(r, why);
      if (h == nullptr) {
        if (report) mapFailed(r, why);
        return false;
      }
      n = h->numSems;
      if (sem >= 0 && sem < n) {
        auto* base = reinterpret_cast<std::byte*>(const_cast<DataHeader*>(h));
        out = reinterpret_cast<std::atomic<std::uint64_t>*>(base + h->semsOff) + sem;
        return true;
      }
    }
    if (report) {
      fail("semaphore " + std::to_string(sem) + " of rank " + std::to_string(r) + " is out of range (numSemaphores " +
           std::to_string(n) + ")");
    }
    return false;
  }

  // ---- data movement ----
  bool cmaFailed(int err, const Loc& peer, const char* what) {
    const std::string who = "rank " + std::to_string(peer.rank) + " (pid " + std::to_string(peer.pid) + ")";
    if (err == ESRCH) {
      comm_.peerGone(peer.rank);
      fail(who + " exited or was killed (Cross Memory Attach: " + std::strerror(err) + ")", ErrorCode::kRemoteError);
    } else {
      fail(std::string("Cross Memory Attach ") + what + " " + who + " failed: " + std::strerror(err),
           ErrorCode::kRemoteError);
    }
    return false;
  }

  /// Copies n bytes between two resolved locations (at most one copy; two through staging when both are
  /// peers' user buffers).
  bool move(const Loc& dst, const Loc& src, std::uint64_t n) {
    if (n == 0) return true;
    if (dst.direct() && src.direct()) {
      copyBytes(dst.ptr, src.ptr, n);
      return true;
    }
    if (dst.direct()) {
      const int e = cmaRead(src.pid, dst.ptr, src.remote, n);
      return e == 0 || cmaFailed(e, src, "read from");
    }
    if (src.direct()) {
      const int e = cmaWrite(dst.pid, dst.remote, src.ptr, n);
      return e == 0 || cmaFailed(e, dst, "write to");
    }
    stage(std::min(n, kStageBlock));
    for (std::uint64_t off = 0; off < n; off += kStageBlock) {
      const std::uint64_t k = std::min(kStageBlock, n - off);
      int e = cmaRead(src.pid, l_.staging.data(), src.remote + off, k);
      if (e != 0) return cmaFailed(e, src, "read from");
      e = cmaWrite(dst.pid, dst.remote + off, l_.staging.data(), k);
      if (e != 0) return cmaFailed(e, dst, "write to");
    }
    return true;
  }

  void stage(std::uint64_t bytes) {
    if (l_.staging.size() < bytes) l_.staging.resize(bytes);
  }

  /// dsts[j] = op(srcs...) over `bytes`. Direct locations are used in place; peers' user buffers are read
  /// into staging and written back from the first direct destination (or a staging block), block by block.
  bool reduceLocs(const std::vector<Loc>& dsts, const std::vector<Loc>& srcs, std::uint64_t bytes, const Op& op) {
    const std::size_t esize = core::dataTypeSize(op.dtype);
    if (bytes == 0) return true;
    bool allDirect = true;
    for (const Loc& d : dsts) allDirect = allDirect && d.direct();
    for (const Loc& s : srcs) allDirect = allDirect && s.direct();
    directDsts_.clear();
    srcPtrs_.clear();
    if (allDirect) {
      for (const Loc& d : dsts) directDsts_.push_back(d.ptr);
      for (const Loc& s : srcs) srcPtrs_.push_back(s.ptr);
      runKernel(bytes / esize, op);
      return true;
    }
    std::size_t remoteSrcs = 0;
    int firstDirect = -1;
    for (std::size_t j = 0; j < dsts.size(); ++j) {
      if (dsts[j].direct() && firstDirect < 0) firstDirect = static_cast<int>(j);
    }
    for (const Loc& s : srcs) remoteSrcs += s.direct() ? 0 : 1;
    const std::uint64_t block = kStageBlock / esize * esize;
    stage(block * (remoteSrcs + (firstDirect < 0 ? 1 : 0)));
    std::byte* stageOut = l_.staging.data() + block * remoteSrcs;
    for (std::uint64_t off = 0; off < bytes; off += block) {
      const std::uint64_t k = std::min(block, bytes - off);
      srcPtrs_.clear();
      std::size_t slot = 0;
      for (const Loc& s : srcs) {
        if (s.direct()) {
          srcPtrs_.push_back(s.ptr + off);
          continue;
        }
        std::byte* st = l_.staging.data() + block * slot++;
        const int e = cmaRead(s.pid, st, s.remote + off, k);
        if (e != 0) return cmaFailed(e, s, "read from");
        srcPtrs_.push_back(st);
      }
      directDsts_.clear();
      for (const Loc& d : dsts) {
        if (d.direct()) directDsts_.push_back(d.ptr + off);
      }
      if (firstDirect < 0) directDsts_.push_back(stageOut);
      runKernel(k / esize, op);
      const auto* from = static_cast<const std::byte*>(directDsts_.front());
      for (const Loc& d : dsts) {
        if (d.direct()) continue;
        const int e = cmaWrite(d.pid, d.remote + off, from, k);
        if (e != 0) return cmaFailed(e, d, "write to");
      }
    }
    return true;
  }

  void runKernel(std::size_t count, const Op& op) {
    if (count == 0) return;
    const int nsrcs = static_cast<int>(srcPtrs_.size());
    if (directDsts_.size() == 1) {
      core::reduceInto(directDsts_[0], srcPtrs_.data(), nsrcs, count, op.dtype, op.redop, op.divisor);
    } else {
      core::reduceToMany(directDsts_.data(), static_cast<int>(directDsts_.size()), srcPtrs_.data(), nsrcs, count,
                         op.dtype, op.redop, op.divisor);
    }
  }

  // ---- signals ----
  void signal(std::atomic<std::uint64_t>* sem, std::uint64_t value) {
    // Non-temporal stores of the copy kernels are weakly ordered: fence them before the signal.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    sem->fetch_add(value, std::memory_order_seq_cst);
  }

  // ---- ops ----
  bool localSource(const Op& op) {
    if (op.src.rank == core::kSelf || op.src.rank == me_) return true;
    fail("src names rank " + std::to_string(op.src.rank) + ", but the source of a " +
         std::string(core::opCodeName(op.code)) + " is local");
    return false;
  }

  OpResult blockedOr(Access a) { return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed; }

  OpResult runPut(const Op& op) {
    Geometry g;
    std::uint64_t srcOff = 0;
    std::uint64_t dstOff = 0;
    if (!geometry(op, g) || !shifted(op.src.offset, g.srcShift, srcOff) || !shifted(op.dst.offset, g.dstShift, dstOff))
      return OpResult::kFailed;
    if (!localSource(op) || !checkRank(op.peer, "peer")) return OpResult::kFailed;
    if (op.dst.rank != core::kSelf && op.dst.rank != op.peer) {
      return fail("dst names rank " + std::to_string(op.dst.rank) + " but peer is " + std::to_string(op.peer));
    }
    Loc src;
    if (!locate("src", me_, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return blockedOr(a);
    Loc dst;
    if (!locate("dst", op.peer, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    std::atomic<std::uint64_t>* sem = nullptr;
    if (op.sem >= 0 && !checkSem(op.peer, op.sem, sem)) return OpResult::kFailed;
    if (!move(dst, src, g.bytes)) return OpResult::kFailed;
    if (sem != nullptr) {
      signal(sem, op.value);
      releaseAll();
      comm_.notifyRank(op.peer);
    }
    return OpResult::kDone;
  }

  OpResult runMulticast(const Op& op) {
    Geometry g;
    std::uint64_t srcOff = 0;
    std::uint64_t dstOff = 0;
    if (!geometry(op, g) || !shifted(op.src.offset, g.srcShift, srcOff) || !shifted(op.dst.offset, g.dstShift, dstOff))
      return OpResult::kFailed;
    if (!localSource(op)) return OpResult::kFailed;
    if (op.ranks.empty()) return fail("multicast has no target ranks");
    if (op.dst.rank != core::kSelf) return fail("a multicast dst names no rank (the targets are `ranks`)");
    Loc src;
    if (!locate("src", me_, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    for (std::int32_t t : op.ranks) {
      if (!checkRank(t, "target")) return OpResult::kFailed;
      const Access a = acquire(t);
      if (a != Access::kReady) return blockedOr(a);
    }
    dstLocs_.clear();
    semPtrs_.clear();
    for (std::int32_t t : op.ranks) {
      Loc dst;
      if (!locate("dst", t, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
      std::atomic<std::uint64_t>* sem = nullptr;
      if (op.sem >= 0 && !checkSem(t, op.sem, sem)) return OpResult::kFailed;
      dstLocs_.push_back(dst);
      semPtrs_.push_back(sem);
    }
    for (std::size_t i = 0; i < op.ranks.size(); ++i) {
      if (!move(dstLocs_[i], src, g.bytes)) return OpResult::kFailed;
      if (semPtrs_[i] != nullptr) signal(semPtrs_[i], op.value);
    }
    if (op.sem >= 0) {
      releaseAll();
      for (std::int32_t t : op.ranks) comm_.notifyRank(t);
    }
    return OpResult::kDone;
  }

  OpResult runGet(const Op& op) {
    Geometry g;
    std::uint64_t srcOff = 0;
    std::uint64_t dstOff = 0;
    if (!geometry(op, g) || !shifted(op.src.offset, g.srcShift, srcOff) || !shifted(op.dst.offset, g.dstShift, dstOff))
      return OpResult::kFailed;
    if (!checkRank(op.peer, "peer")) return OpResult::kFailed;
    if (op.src.rank != core::kSelf && op.src.rank != op.peer) {
      return fail("src names rank " + std::to_string(op.src.rank) + " but peer is " + std::to_string(op.peer));
    }
    if (op.dst.rank != core::kSelf && op.dst.rank != me_) {
      return fail("dst names rank " + std::to_string(op.dst.rank) + ", but the destination of a get is local");
    }
    Loc dst;
    if (!locate("dst", me_, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return blockedOr(a);
    Loc src;
    if (!locate("src", op.peer, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    return move(dst, src, g.bytes) ? OpResult::kDone : OpResult::kFailed;
  }

  OpResult runCopy(const Op& op) {
    Geometry g;
    std::uint64_t srcOff = 0;
    std::uint64_t dstOff = 0;
    if (!geometry(op, g) || !shifted(op.src.offset, g.srcShift, srcOff) || !shifted(op.dst.offset, g.dstShift, dstOff))
      return OpResult::kFailed;
    const std::int32_t dr = op.dst.rank == core::kSelf ? me_ : op.dst.rank;
    const std::int32_t sr = op.src.rank == core::kSelf ? me_ : op.src.rank;
    if (!checkRank(dr, "dst") || !checkRank(sr, "src")) return OpResult::kFailed;
    for (std::int32_t r : {dr, sr}) {
      const Access a = acquire(r);
      if (a != Access::kReady) return blockedOr(a);
    }
    Loc src;
    Loc dst;
    if (!locate("src", sr, op.src.buf, srcOff, g.bytes, false, src) ||
        !locate("dst", dr, op.dst.buf, dstOff, g.bytes, true, dst)) {
      return OpResult::kFailed;
    }
    return move(dst, src, g.bytes) ? OpResult::kDone : OpResult::kFailed;
  }

  OpResult runSignal(const Op& op) {
    if (!checkRank(op.peer, "peer")) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return blockedOr(a);
    std::atomic<std::uint64_t>* sem = nullptr;
    if (!checkSem(op.peer, op.sem, sem)) return OpResult::kFailed;
    signal(sem, op.value);
    releaseAll();
    comm_.notifyRank(op.peer);
    return OpResult::kDone;
  }

  OpResult runWait(const Op& op) {
    std::atomic<std::uint64_t>* sem = nullptr;
    if (!checkSem(me_, op.sem, sem)) return OpResult::kFailed;
    if (sem->load(std::memory_order_acquire) >= comm_.semBase(op.sem) + op.value) return OpResult::kDone;
    l_.blockedOnRank.store(-1, std::memory_order_relaxed);
    return OpResult::kBlocked;
  }

  OpResult runPutReduce(const Op& op) {
    Geometry g;
    std::uint64_t srcOff = 0;
    std::uint64_t dstOff = 0;
    if (!geometry(op, g) || !shifted(op.src.offset, g.srcShift, srcOff) || !shifted(op.dst.offset, g.dstShift, dstOff))
      return OpResult::kFailed;
    if (!checkElements(op, g.bytes) || !localSource(op) || !checkRank(op.peer, "peer")) return OpResult::kFailed;
    if (op.dst.rank != core::kSelf && op.dst.rank != op.peer) {
      return fail("dst names rank " + std::to_string(op.dst.rank) + " but peer is " + std::to_string(op.peer));
    }
    Loc src;
    if (!locate("src", me_, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return blockedOr(a);
    Loc dst;
    if (!locate("dst", op.peer, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    std::atomic<std::uint64_t>* sem = nullptr;
    if (op.sem >= 0 && !checkSem(op.peer, op.sem, sem)) return OpResult::kFailed;
    if (dst.direct() && src.direct() && dst.ptr != src.ptr && overlaps(dst.ptr, src.ptr, g.bytes)) {
      return fail("src and dst overlap partially");
    }
    // Several ranks may reduce into the same target bytes at once (in-network reduction semantics): the
    // target's lock serializes them. A taken lock blocks the lane, not the thread, so a holder that dies
    // is found by the liveness check.
    std::atomic<std::uint32_t>& lock = comm_.ctl(op.peer).putReduceLock;
    std::uint32_t expected = 0;
    if (!lock.compare_exchange_strong(expected, static_cast<std::uint32_t>(me_ + 1), std::memory_order_acquire)) {
      l_.blockedOnRank.store(-1, std::memory_order_relaxed);
      return OpResult::kBlocked;
    }
    const bool ok = reduceLocs({dst}, {dst, src}, g.bytes, op);
    lock.store(0, std::memory_order_release);
    if (!ok) return OpResult::kFailed;
    if (sem != nullptr) {
      signal(sem, op.value);
      releaseAll();
      comm_.notifyRank(op.peer);
    }
    return OpResult::kDone;
  }

  OpResult runReduce(const Op& op, std::uint32_t& consumed) {
    Geometry g;
    std::uint64_t dstOff = 0;
    if (!geometry(op, g) || !shifted(op.dst.offset, g.dstShift, dstOff)) return OpResult::kFailed;
    if (op.srcs.empty()) return fail("reduce has no sources");
    if (!checkElements(op, g.bytes)) return OpResult::kFailed;
    const std::int32_t dr = op.dst.rank == core::kSelf ? me_ : op.dst.rank;
    if (!checkRank(dr, "dst")) return OpResult::kFailed;
    for (const Addr& a : op.srcs) {
      if (!checkRank(a.rank == core::kSelf ? me_ : a.rank, "src")) return OpResult::kFailed;
    }
    {
      const Access a = acquire(dr);
      if (a != Access::kReady) return blockedOr(a);
    }
    for (const Addr& s : op.srcs) {
      const Access a = acquire(s.rank == core::kSelf ? me_ : s.rank);
      if (a != Access::kReady) return blockedOr(a);
    }
    Loc dst;
    if (!locate("dst", dr, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    srcLocs_.clear();
    for (std::size_t i = 0; i < op.srcs.size(); ++i) {
      const Addr& s = op.srcs[i];
      const std::string role = "srcs[" + std::to_string(i) + "]";
      std::uint64_t off = 0;
      Loc p;
      if (!shifted(s.offset, g.srcShift, off) ||
          !locate(role.c_str(), s.rank == core::kSelf ? me_ : s.rank, s.buf, off, g.bytes, false, p)) {
        return OpResult::kFailed;
      }
      if (p.direct() && dst.direct() && p.ptr != dst.ptr && overlaps(p.ptr, dst.ptr, g.bytes)) {
        return fail(role + " and dst overlap partially");
      }
      if (!p.direct() && !dst.direct() && p.pid == dst.pid && p.remote != dst.remote &&
          overlaps(reinterpret_cast<std::byte*>(p.remote), reinterpret_cast<std::byte*>(dst.remote), g.bytes)) {
        return fail(role + " and dst overlap partially");
      }
      srcLocs_.push_back(p);
    }
    dstLocs_.clear();
    dstLocs_.push_back(dst);
    signals_.clear();
    std::uint32_t fused = 0;
    if (dr == me_ && g.bytes > 0) {
      const int f = fuseFollowers(dst.ptr, g.bytes);
      if (f < 0) return OpResult::kBlocked;
      fused = static_cast<std::uint32_t>(f);
    }
    if (!reduceLocs(dstLocs_, srcLocs_, g.bytes, op)) return OpResult::kFailed;
    for (const PendingSignal& s : signals_) {
      std::atomic<std::uint64_t>* sem = nullptr;
      if (checkSem(s.rank, s.sem, sem, false)) signal(sem, s.value);
    }
    if (!signals_.empty()) {
      releaseAll();
      for (const PendingSignal& s : signals_) comm_.notifyRank(s.rank);
    }
    consumed = 1 + fused;
    return OpResult::kDone;
  }

  /// Fusion (as inproc): a reduce into local D followed by a multicast of D, or by a run of puts of D, of
  /// the same size, runs as one pass: each block is reduced once into every directly addressable target
  /// and copied to the others. Returns the number of ops fused, or -1 when a target has not entered yet.
  int fuseFollowers(std::byte* d, std::uint64_t bytes) {
    std::uint32_t j = pc_ + 1;
    if (j >= ops_.size()) return 0;
    if (ops_[j].code == OpCode::kMulticast) {
      const Op& f = ops_[j];
      if (f.ranks.empty() || f.dst.rank != core::kSelf) return 0;
      const int r = fuseOne(f, d, bytes, f.ranks.data(), f.ranks.size());
      return r < 0 ? -1 : r;
    }
    int n = 0;
    while (j < ops_.size() && ops_[j].code == OpCode::kPut) {
      const Op& f = ops_[j];
      if (f.dst.rank != core::kSelf && f.dst.rank != f.peer) break;
      const int r = fuseOne(f, d, bytes, &f.peer, 1);
      if (r < 0) return -1;
      if (r == 0) break;
      ++n;
      ++j;
    }
    return n;
  }

  int fuseOne(const Op& f, std::byte* d, std::uint64_t bytes, const std::int32_t* targets, std::size_t ntargets) {
    Geometry g;
    std::uint64_t srcOff = 0;
    std::uint64_t dstOff = 0;
    if (!geometry(f, g, false) || g.bytes != bytes || !shifted(f.src.offset, g.srcShift, srcOff, false) ||
        !shifted(f.dst.offset, g.dstShift, dstOff, false)) {
      return 0;
    }
    if (f.src.rank != core::kSelf && f.src.rank != me_) return 0;
    Loc src;
    if (!locate("src", me_, f.src.buf, srcOff, bytes, false, src, false) || src.ptr != d) return 0;
    const std::size_t peerMark = l_.peers.size();
    const std::size_t dstMark = dstLocs_.size();
    const std::size_t sigMark = signals_.size();
    auto rollback = [&] {
      releaseFrom(peerMark);
      dstLocs_.resize(dstMark);
      signals_.resize(sigMark);
    };
    for (std::size_t i = 0; i < ntargets; ++i) {
      const std::int32_t t = targets[i];
      if (t < 0 || t >= comm_.size()) {
        rollback();
        return 0;
      }
      const Access a = acquire(t, false);
      if (a == Access::kNotYet) {
        rollback();
        return -1;
      }
      std::atomic<std::uint64_t>* sem = nullptr;
      Loc x;
      if (a == Access::kFailed || !locate("dst", t, f.dst.buf, dstOff, bytes, true, x, false) ||
          (f.sem >= 0 && !checkSem(t, f.sem, sem, false))) {
        rollback();
        return 0;
      }
      if (x.direct()) {
        // reduceToMany allows a destination to equal a source exactly, nothing else overlapping.
        bool clash = false;
        for (const Loc& s : srcLocs_) clash = clash || (s.direct() && s.ptr != x.ptr && overlaps(s.ptr, x.ptr, bytes));
        for (const Loc& o : dstLocs_) clash = clash || (o.direct() && overlaps(o.ptr, x.ptr, bytes));
        if (clash) {
          rollback();
          return 0;
        }
      }
      dstLocs_.push_back(x);
      if (f.sem >= 0) signals_.push_back({t, f.sem, f.value});
    }
    return 1;
  }

  ShmComm& comm_;
  // Reused per op so executing does not allocate.
  std::vector<Loc> srcLocs_;
  std::vector<Loc> dstLocs_;
  std::vector<PendingSignal> signals_;
  std::vector<std::atomic<std::uint64_t>*> semPtrs_;
  std::vector<void*> directDsts_;
  std::vector<const void*> srcPtrs_;
};

}  // namespace

LaneRun runLane(ShmComm& comm, Call& call, int lane, Status& error) {
  LaneState& l = call.lanes[static_cast<std::size_t>(lane)];
  LaneRun out;
  if (l.done.load(std::memory_order_acquire)) {
    out.end = LaneEnd::kDone;
    return out;
  }
  OpRunner runner(comm, call, lane, error);
  const std::size_t n = l.ops->size();
  std::uint32_t pc = l.pc.load(std::memory_order_relaxed);
  while (pc < n) {
    if (call.phase.load(std::memory_order_acquire) != Phase::kRunning) {
      out.end = LaneEnd::kStopped;
      return out;
    }
    std::uint32_t consumed = 1;
    const OpResult r = runner.run(pc, consumed);
    if (r == OpResult::kBlocked) {
      out.end = LaneEnd::kBlocked;
      return out;
    }
    if (r == OpResult::kFailed) {
      out.end = LaneEnd::kFailed;
      return out;
    }
    pc += consumed;
    l.pc.store(pc, std::memory_order_relaxed);
    l.blockedOnRank.store(-1, std::memory_order_relaxed);
    call.progress.fetch_add(consumed, std::memory_order_relaxed);
    out.progressed = true;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  l.done.store(true, std::memory_order_release);
  out.progressed = true;
  out.finishedNow = true;
  out.end = LaneEnd::kDone;
  return out;
}

}  // namespace copro::transport::shm
