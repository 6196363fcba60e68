/// The inproc lane runner: executes one lane's ops synchronously, in order, against the published
/// buffers of the executing rank and its peers. Ops that reach a peer wait (without blocking the
/// thread: the lane reports kBlocked) until that peer has entered the same call.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"
#include "copro/core/reduce.hpp"
#include "copro/transport/inproc.hpp"
#include "inproc_world.hpp"
#include "lane_ops.hpp"
#include "lane_util.hpp"

namespace copro::transport {

namespace {
/// Reduces executed fused with their followers (for the tests, which check that fusion happens).
std::atomic<std::uint64_t> gFusedReduces{0};

// The op observer (setInprocOpObserver). The flag keeps the untimed path to one relaxed load per lane run;
// the function itself is only replaced while no call runs (the documented contract).
std::atomic<bool> gOpObserverOn{false};
std::function<void(const InprocOpTiming&)>& opObserver() {
  static std::function<void(const InprocOpTiming&)> observer;
  return observer;
}
}  // namespace

void setInprocOpObserver(std::function<void(const InprocOpTiming&)> observer) {
  gOpObserverOn.store(false, std::memory_order_seq_cst);
  opObserver() = std::move(observer);
  gOpObserverOn.store(static_cast<bool>(opObserver()), std::memory_order_seq_cst);
}

namespace detail {
/// Not part of the public API (the tests declare it): how many reduce+multicast/put groups ran fused.
std::uint64_t inprocFusedReducesForTesting() noexcept {
  return gFusedReduces.load(std::memory_order_relaxed);
}
}  // namespace detail

namespace inproc {

using core::Addr;
using core::BufferId;
using core::Op;
using core::OpCode;
using core::Status;

std::string opLabel(const Call& call, int lane, std::uint32_t index) {
  return lanes::opLabelOf(call, lane, index);
}

namespace {

using lanes::copyBytes;
using lanes::Geometry;
using lanes::overlaps;

using lanes::Access;
using lanes::OpResult;

/// How inproc ranks reach each other: their RankState in the shared World (lane_ops.hpp).
struct InprocPeers {
  World* world;
  RankState* self;
  [[nodiscard]] int size() const { return world->size(); }
  [[nodiscard]] RankState& ctl(std::int32_t r) const { return world->rank(r); }
  [[nodiscard]] static bool dead(std::uint64_t state) { return state == RankState::kDead; }
  [[nodiscard]] static std::string deadReason(std::int32_t r) {
    return "rank " + std::to_string(r) + " failed or was aborted and can no longer be reached";
  }
  [[nodiscard]] const std::uint64_t* ownLayout() const { return self->layout; }
};

/// Executes single ops of one lane. Peers touched by the current op are "acquired" (their accessor
/// count raised after checking they are in this call) and released when the op ends.
class OpRunner : private lanes::LaneOpCore<InprocPeers, Call, LaneState> {
 public:
  OpRunner(World& world, RankState& self, Call& call, int lane, Status& error)
      : LaneOpCore(InprocPeers{&world, &self}, call, lane, error, self.rank()), world_(world), self_(self) {}

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
  /// Resolves [offset, offset+bytes) of buffer `buf` of rank `r` (self or an acquired peer).
  bool locate(const char* role, std::int32_t r, BufferId buf, std::uint64_t offset, std::uint64_t bytes, bool write,
              std::byte*& out, bool report = true) {
    const std::vector<Region>& regs = world_.rank(r).regions;
    const auto b = static_cast<std::size_t>(buf);
    if (b >= regs.size()) return noSuchBuffer(role, r, buf, regs.size(), report);
    const Region& reg = regs[b];
    if (!boundsOk(role, r, buf, offset, bytes, reg.limit, reg.writable, write, report)) return false;
    out = reg.base + offset;
    return true;
  }

  bool checkSem(std::int32_t r, std::int32_t sem, bool report = true) {
    const std::int32_t n = world_.rank(r).numSems;
    if (sem >= 0 && sem < n) return true;
    if (report) {
      fail("semaphore " + std::to_string(sem) + " of rank " + std::to_string(r) + " is out of range (numSemaphores " +
           std::to_string(n) + ")");
    }
    return false;
  }

  // ---- signals ----
  /// Adds to an acquired rank's semaphore after the data of this op (and earlier ops) is visible.
  void signal(std::int32_t r, std::int32_t sem, std::uint64_t value) {
    // Non-temporal stores of the copy kernels are weakly ordered: fence them before the signal.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    world_.rank(r).sems[sem].fetch_add(value, std::memory_order_seq_cst);
  }

  // ---- ops ----
  bool localSource(const Op& op) {
    if (op.src.rank == core::kSelf || op.src.rank == me_) return true;
    fail("src names rank " + std::to_string(op.src.rank) + ", but the source of a " +
         std::string(core::opCodeName(op.code)) + " is local");
    return false;
  }

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
    std::byte* src = nullptr;
    if (!locate("src", me_, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    std::byte* dst = nullptr;
    if (!locate("dst", op.peer, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    if (op.sem >= 0 && !checkSem(op.peer, op.sem)) return OpResult::kFailed;
    copyBytes(dst, src, g.bytes);
    if (op.sem >= 0) {
      signal(op.peer, op.sem, op.value);
      releaseAll();
      world_.notifyRank(world_.rank(op.peer));
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
    std::byte* src = nullptr;
    if (!locate("src", me_, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    for (std::int32_t t : op.ranks) {
      if (!checkRank(t, "target")) return OpResult::kFailed;
      const Access a = acquire(t);
      if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    }
    l_.dstPtrs.clear();
    for (std::int32_t t : op.ranks) {
      std::byte* dst = nullptr;
      if (!locate("dst", t, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
      if (op.sem >= 0 && !checkSem(t, op.sem)) return OpResult::kFailed;
      l_.dstPtrs.push_back(dst);
    }
    for (std::size_t i = 0; i < op.ranks.size(); ++i) {
      copyBytes(static_cast<std::byte*>(l_.dstPtrs[i]), src, g.bytes);
      if (op.sem >= 0) signal(op.ranks[i], op.sem, op.value);
    }
    if (op.sem >= 0) {
      releaseAll();
      for (std::int32_t t : op.ranks) world_.notifyRank(world_.rank(t));
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
    std::byte* dst = nullptr;
    if (!locate("dst", me_, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    std::byte* src = nullptr;
    if (!locate("src", op.peer, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    copyBytes(dst, src, g.bytes);
    return OpResult::kDone;
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
      if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    }
    std::byte* src = nullptr;
    std::byte* dst = nullptr;
    if (!locate("src", sr, op.src.buf, srcOff, g.bytes, false, src) ||
        !locate("dst", dr, op.dst.buf, dstOff, g.bytes, true, dst)) {
      return OpResult::kFailed;
    }
    copyBytes(dst, src, g.bytes);
    return OpResult::kDone;
  }

  OpResult runSignal(const Op& op) {
    if (!checkRank(op.peer, "peer")) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    if (!checkSem(op.peer, op.sem)) return OpResult::kFailed;
    signal(op.peer, op.sem, op.value);
    releaseAll();
    world_.notifyRank(world_.rank(op.peer));
    return OpResult::kDone;
  }

  OpResult runWait(const Op& op) {
    if (!checkSem(me_, op.sem)) return OpResult::kFailed;
    const std::uint64_t v = self_.sems[op.sem].load(std::memory_order_acquire);
    if (v >= self_.semBase[static_cast<std::size_t>(op.sem)] + op.value) return OpResult::kDone;
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
    std::byte* src = nullptr;
    if (!locate("src", me_, op.src.buf, srcOff, g.bytes, false, src)) return OpResult::kFailed;
    const Access a = acquire(op.peer);
    if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    std::byte* dst = nullptr;
    if (!locate("dst", op.peer, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    if (op.sem >= 0 && !checkSem(op.peer, op.sem)) return OpResult::kFailed;
    if (dst != src && overlaps(dst, src, g.bytes)) return fail("src and dst overlap partially");
    {
      // Several ranks may reduce into the same target bytes at once (in-network reduction semantics).
      std::lock_guard<std::mutex> lock(world_.rank(op.peer).putReduceMutex);
      const void* srcs[2] = {dst, src};
      core::reduceInto(dst, srcs, 2, g.bytes / core::dataTypeSize(op.dtype), op.dtype, op.redop, op.divisor);
    }
    if (op.sem >= 0) {
      signal(op.peer, op.sem, op.value);
      releaseAll();
      world_.notifyRank(world_.rank(op.peer));
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
      if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    }
    for (const Addr& s : op.srcs) {
      const Access a = acquire(s.rank == core::kSelf ? me_ : s.rank);
      if (a != Access::kReady) return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed;
    }
    std::byte* dst = nullptr;
    if (!locate("dst", dr, op.dst.buf, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
    l_.srcPtrs.clear();
    for (std::size_t i = 0; i < op.srcs.size(); ++i) {
      const Addr& s = op.srcs[i];
      const std::string role = "srcs[" + std::to_string(i) + "]";
      std::uint64_t off = 0;
      std::byte* p = nullptr;
      if (!shifted(s.offset, g.srcShift, off) ||
          !locate(role.c_str(), s.rank == core::kSelf ? me_ : s.rank, s.buf, off, g.bytes, false, p)) {
        return OpResult::kFailed;
      }
      if (p != dst && overlaps(p, dst, g.bytes)) return fail(role + " and dst overlap partially");
      l_.srcPtrs.push_back(p);
    }
    l_.dstPtrs.clear();
    l_.dstPtrs.push_back(dst);
    l_.signals.clear();
    std::uint32_t fused = 0;
    if (dr == me_ && g.bytes > 0) {
      const int f = fuseFollowers(dst, g.bytes);
      if (f < 0) return OpResult::kBlocked;
      fused = static_cast<std::uint32_t>(f);
    }
    const std::size_t count = g.bytes / core::dataTypeSize(op.dtype);
    const int nsrcs = static_cast<int>(l_.srcPtrs.size());
    if (l_.dstPtrs.size() > 1) {
      gFusedReduces.fetch_add(1, std::memory_order_relaxed);
      core::reduceToMany(l_.dstPtrs.data(), static_cast<int>(l_.dstPtrs.size()), l_.srcPtrs.data(), nsrcs, count,
                         op.dtype, op.redop, op.divisor);
    } else if (count > 0) {
      core::reduceInto(dst, l_.srcPtrs.data(), nsrcs, count, op.dtype, op.redop, op.divisor);
    }
    for (const LaneState::PendingSignal& s : l_.signals) signal(s.rank, s.sem, s.value);
    if (!l_.signals.empty()) {
      releaseAll();
      for (const LaneState::PendingSignal& s : l_.signals) world_.notifyRank(world_.rank(s.rank));
    }
    consumed = 1 + fused;
    return OpResult::kDone;
  }

  /// Fusion: a reduce into local D followed by a multicast of D, or by a run of puts of D, of the same
  /// size, runs as one reduceToMany (each source read once, each destination written once). Followers
  /// that would fail on their own are not fused, so they report their own error. Returns the number of
  /// ops fused, or -1 when a target has not entered the call yet (the whole reduce then waits).
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

  /// 1: fused, 0: not fusable, -1: a target has not entered yet.
  int fuseOne(const Op& f, std::byte* d, std::uint64_t bytes, const std::int32_t* targets, std::size_t ntargets) {
    Geometry g;
    std::uint64_t srcOff = 0;
    std::uint64_t dstOff = 0;
    if (!geometry(f, g, false) || g.bytes != bytes || !shifted(f.src.offset, g.srcShift, srcOff, false) ||
        !shifted(f.dst.offset, g.dstShift, dstOff, false)) {
      return 0;
    }
    if (f.src.rank != core::kSelf && f.src.rank != me_) return 0;
    std::byte* src = nullptr;
    if (!locate("src", me_, f.src.buf, srcOff, bytes, false, src, false) || src != d) return 0;
    const std::size_t peerMark = l_.peers.size();
    const std::size_t dstMark = l_.dstPtrs.size();
    const std::size_t sigMark = l_.signals.size();
    auto rollback = [&] {
      releaseFrom(peerMark);
      l_.dstPtrs.resize(dstMark);
      l_.signals.resize(sigMark);
    };
    for (std::size_t i = 0; i < ntargets; ++i) {
      const std::int32_t t = targets[i];
      if (t < 0 || t >= world_.size()) {
        rollback();
        return 0;
      }
      const Access a = acquire(t, false);
      if (a == Access::kNotYet) {
        rollback();
        return -1;
      }
      if (a == Access::kFailed) {
        rollback();
        return 0;
      }
      std::byte* x = nullptr;
      if (!locate("dst", t, f.dst.buf, dstOff, bytes, true, x, false)) {
        rollback();
        return 0;
      }
      if (f.sem >= 0 && !checkSem(t, f.sem, false)) {
        rollback();
        return 0;
      }
      // reduceToMany allows a destination to equal a source exactly, nothing else overlapping.
      for (const void* s : l_.srcPtrs) {
        const auto* sp = static_cast<const std::byte*>(s);
        if (sp != x && overlaps(sp, x, bytes)) {
          rollback();
          return 0;
        }
      }
      for (const void* o : l_.dstPtrs) {
        if (overlaps(static_cast<const std::byte*>(o), x, bytes)) {
          rollback();
          return 0;
        }
      }
      l_.dstPtrs.push_back(x);
      if (f.sem >= 0) l_.signals.push_back({t, f.sem, f.value});
    }
    return 1;
  }

  World& world_;
  RankState& self_;
};

}  // namespace

LaneRun runLane(World& world, RankState& rs, Call& call, int lane, Status& error) {
  LaneState& l = call.lanes[static_cast<std::size_t>(lane)];
  LaneRun out;
  if (l.done.load(std::memory_order_acquire)) {
    out.end = LaneEnd::kDone;
    return out;
  }
  OpRunner runner(world, rs, call, lane, error);
  const std::size_t n = l.ops->size();
  std::uint32_t pc = l.pc.load(std::memory_order_relaxed);
  const bool timed = gOpObserverOn.load(std::memory_order_relaxed);
  while (pc < n) {
    if (call.phase.load(std::memory_order_acquire) != Phase::kRunning) {
      out.end = LaneEnd::kStopped;
      return out;
    }
    if (timed && l.timedPc != pc) {
      // An op that blocks is retried later: its slice starts at the first try.
      l.timedPc = pc;
      l.opBegin = std::chrono::steady_clock::now();
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
    if (timed) {
      InprocOpTiming t;
      t.rank = rs.rank();
      t.lane = lane;
      t.index = pc;
      t.count = consumed;
      t.op = &(*l.ops)[pc];
      t.begin = l.opBegin;
      t.end = std::chrono::steady_clock::now();
      opObserver()(t);
    }
    pc += consumed;
    l.pc.store(pc, std::memory_order_relaxed);
    l.blockedOnRank.store(-1, std::memory_order_relaxed);
    call.progress.fetch_add(consumed, std::memory_order_relaxed);
    out.progressed = true;
  }
  // The copy kernels' non-temporal stores must be visible to whoever sees the call complete.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  l.done.store(true, std::memory_order_release);
  out.progressed = true;
  out.finishedNow = true;
  out.end = LaneEnd::kDone;
  return out;
}

}  // namespace inproc
}  // namespace copro::transport
