#pragma once
/// The member definitions of LoadStoreLane (loadstore_lane_engine.hpp): what each op does on a
/// load/store backend, in terms of the port's locate/move/reduceLocs/semaphore/notify.
#include "loadstore_lane_engine.hpp"

namespace copro::transport::lanes {

#define COPRO_LSL_TEMPLATE template <typename Port, typename Loc, typename CallT, typename LaneT>
#define COPRO_LSL LoadStoreLane<Port, Loc, CallT, LaneT>

// ---- the lane loop ----

COPRO_LSL_TEMPLATE
LaneRun COPRO_LSL::runLane() {
  LaneRun out;
  if (l_.done.load(std::memory_order_acquire)) {
    out.end = LaneEnd::kDone;
    return out;
  }
  const std::size_t n = ops_.size();
  std::uint32_t pc = l_.pc.load(std::memory_order_relaxed);
  const bool traced = opTraceOn();
  while (pc < n) {
    if (call_.phase.load(std::memory_order_acquire) != decltype(call_.phase.load())::kRunning) {
      out.end = LaneEnd::kStopped;
      return out;
    }
    if (traced && s_.timedPc != pc) {
      // An op that blocks is retried later: its slice starts at the first try.
      s_.timedPc = pc;
      s_.opBegin = std::chrono::steady_clock::now();
    }
    std::uint32_t consumed = 1;
    const OpResult r = runOne(pc, consumed);
    if (r != OpResult::kDone) {
      out.end = r == OpResult::kBlocked ? LaneEnd::kBlocked : LaneEnd::kFailed;
      return out;
    }
    if (traced) {
      traceOp(LaneOpTiming{Port::kBackend, me_, lane_, pc, consumed, &ops_[pc], s_.opBegin,
                           std::chrono::steady_clock::now()});
    }
    pc += consumed;
    l_.pc.store(pc, std::memory_order_relaxed);
    l_.blockedOnRank.store(-1, std::memory_order_relaxed);
    call_.progress.fetch_add(consumed, std::memory_order_relaxed);
    out.progressed = true;
  }
  // The copy kernels' non-temporal stores must be visible to whoever sees the call complete.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  l_.done.store(true, std::memory_order_release);
  out.progressed = true;
  out.finishedNow = true;
  out.end = LaneEnd::kDone;
  return out;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::runOne(std::uint32_t pc, std::uint32_t& consumed) {
  pc_ = pc;
  consumed_ = 1;
  s_.peers.clear();
  const OpResult r = core::interpretOp(*this, flat_.op(pc), port().ownLayout(), call_.header->layoutWords);
  releaseAll();
  consumed = consumed_;
  return r;
}

// ---- checks ----

COPRO_LSL_TEMPLATE
bool COPRO_LSL::checkRank(std::int32_t r, const char* role) {
  if (r >= 0 && r < port().size()) return true;
  fail(std::string(role) + " rank " + std::to_string(r) + " is out of range (the communicator has " +
       std::to_string(port().size()) + " ranks)");
  return false;
}

COPRO_LSL_TEMPLATE
bool COPRO_LSL::checkElements(const core::FlatOp& op, std::uint64_t bytes) {
  core::ErrorCode code = core::ErrorCode::kInvalidProgram;
  const std::string why = elementsProblem(op, bytes, code);
  if (why.empty()) return true;
  fail(why, code);
  return false;
}

COPRO_LSL_TEMPLATE
bool COPRO_LSL::localSource(const core::FlatOp& op) {
  if (op.src.rank == core::kSelf || op.src.rank == me_) return true;
  fail("src names rank " + std::to_string(op.src.rank) + ", but the source of a " +
       std::string(core::opCodeName(op.code)) + " is local");
  return false;
}

COPRO_LSL_TEMPLATE
bool COPRO_LSL::offsets(const core::FlatOp& op, const core::OpGeometry& g, std::uint64_t& srcOff,
                        std::uint64_t& dstOff) {
  if (core::shiftOffset(op.src.offset, g.srcShift, srcOff) && core::shiftOffset(op.dst.offset, g.dstShift, dstOff)) {
    return true;
  }
  fail("indirect offset overflows");
  return false;
}

COPRO_LSL_TEMPLATE
bool COPRO_LSL::boundsOk(const char* role, std::int32_t r, core::BufferId buf, std::uint64_t offset,
                         std::uint64_t bytes, std::uint64_t limit, bool writable, bool write, bool report) {
  // An empty access touches nothing, wherever it points (all-to-all-v displacements of empty blocks).
  if (bytes > 0 && (offset > limit || bytes > limit - offset)) {
    if (report) {
      fail(std::string(role) + " " + core::bufferName(buf) + "[" + std::to_string(offset) + ", " +
           std::to_string(offset + bytes) + ") of rank " + std::to_string(r) + " is out of bounds (" +
           core::bufferName(buf) + " has " + std::to_string(limit) + " bytes in this call)");
    }
    return false;
  }
  if (write && !writable && bytes > 0) {
    if (report) {
      fail(std::string(role) + " " + core::bufferName(buf) + " of rank " + std::to_string(r) +
           " is read-only (the input of an out-of-place call)");
    }
    return false;
  }
  return true;
}

// ---- peers ----

/// Makes `target`'s published state usable for this op: it must be in this very call.
COPRO_LSL_TEMPLATE
Access COPRO_LSL::acquire(std::int32_t target, bool report) {
  if (target == me_) return Access::kReady;
  for (std::int32_t p : s_.peers) {
    if (p == target) return Access::kReady;
  }
  auto& t = port().ctl(target);
  const std::uint64_t want = 2 * call_.seq;
  std::uint64_t s = t.state.load(std::memory_order_acquire);
  if (s == want) {
    // Announce the access, then re-check: the owner stores its state before it waits for accessors
    // to drain, so either it sees us or we see its new state.
    t.accessors.fetch_add(1, std::memory_order_seq_cst);
    s = t.state.load(std::memory_order_seq_cst);
    if (s == want) {
      s_.peers.push_back(target);
      return Access::kReady;
    }
    t.accessors.fetch_sub(1, std::memory_order_release);
  }
  if (s < want) {
    l_.blockedOnRank.store(target, std::memory_order_relaxed);
    return Access::kNotYet;
  }
  if (!report) return Access::kFailed;
  if (Port::dead(s)) {
    fail(port().deadReason(target), core::ErrorCode::kRemoteError);
  } else {
    fail("rank " + std::to_string(target) + " already finished call " + std::to_string(call_.seq) +
         ": the Program lets it complete before this access (a missing signal/wait pair)");
  }
  return Access::kFailed;
}

COPRO_LSL_TEMPLATE
void COPRO_LSL::releaseFrom(std::size_t mark) {
  for (std::size_t i = mark; i < s_.peers.size(); ++i) {
    port().ctl(s_.peers[i]).accessors.fetch_sub(1, std::memory_order_release);
  }
  s_.peers.resize(mark);
}

// ---- ops ----

/// Adds a signal to an acquired peer, then lets the peer go and wakes it.
COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::signalOne(std::int32_t peer, std::atomic<std::uint64_t>* sem, std::uint64_t value) {
  addSignal(sem, value);
  releaseAll();
  port().notify(peer);
  return OpResult::kDone;
}

/// The two ends and the signal of a put or put_reduce, checked and located (the peer acquired).
COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::resolvePut(const core::FlatOp& op, const core::OpGeometry& g, bool reduces, PutEnds& e) {
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff)) return OpResult::kFailed;
  if ((reduces && !checkElements(op, g.bytes)) || !localSource(op) || !checkRank(op.peer, "peer")) {
    return OpResult::kFailed;
  }
  if (op.dst.rank != core::kSelf && op.dst.rank != op.peer) {
    return fail("dst names rank " + std::to_string(op.dst.rank) + " but peer is " + std::to_string(op.peer));
  }
  if (!port().locate("src", me_, op.src.buf, srcOff, g.bytes, false, e.src, true)) return OpResult::kFailed;
  const Access a = acquire(op.peer);
  if (a != Access::kReady) return blockedOr(a);
  if (!port().locate("dst", op.peer, op.dst.buf, dstOff, g.bytes, true, e.dst, true)) return OpResult::kFailed;
  if (op.sem >= 0 && !port().semaphore(op.peer, op.sem, e.sem, true)) return OpResult::kFailed;
  return OpResult::kDone;
}

/// An LL put: the bytes and their flags into this rank's mailbox slot at the peer; no access to the
/// peer's buffers, so the peer need not have entered the call, only left the call that last used the slot.
COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::putLL(const core::FlatOp& op, const core::OpGeometry& g, std::byte* slot) {
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff) || !localSource(op)) return OpResult::kFailed;
  const std::uint64_t s = port().ctl(op.peer).state.load(std::memory_order_acquire);
  if (Port::dead(s)) return fail(port().deadReason(op.peer), core::ErrorCode::kRemoteError);
  if (s + 3 < 2 * call_.seq) {
    l_.blockedOnRank.store(op.peer, std::memory_order_relaxed);
    return OpResult::kBlocked;
  }
  Loc src;
  if (!port().locate("src", me_, op.src.buf, srcOff, g.bytes, false, src, true)) return OpResult::kFailed;
  if (src.ptr == nullptr && g.bytes > 0) return fail("the source of an LL put is not directly addressable");
  llWrite(slot, src.ptr, g.bytes, call_.seq);
  port().notify(op.peer);
  return OpResult::kDone;
}

/// An LL wait: the peer's lines in this rank's mailbox, once they carry this call's flag, land in dst,
/// and the semaphore counts the put's signal (so epochs advance as for a simple put).
COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::waitLL(const core::FlatOp& op, std::byte* slot) {
  std::atomic<std::uint64_t>* sem = nullptr;
  if (!port().semaphore(me_, op.sem, sem, true)) return OpResult::kFailed;
  if (op.dst.rank != core::kSelf && op.dst.rank != me_) return fail("the dst of an LL wait is local");
  if (!llArrived(slot, op.bytes, call_.seq)) {
    l_.blockedOnRank.store(op.peer, std::memory_order_relaxed);
    return OpResult::kBlocked;
  }
  Loc dst;
  if (!port().locate("dst", me_, op.dst.buf, op.dst.offset, op.bytes, true, dst, true)) return OpResult::kFailed;
  if (dst.ptr == nullptr && op.bytes > 0) return fail("the destination of an LL wait is not directly addressable");
  llRead(dst.ptr, slot, op.bytes);
  sem->fetch_add(1, std::memory_order_release);
  return OpResult::kDone;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::put(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  if (op.protocol == core::Protocol::kLL && g.bytes <= core::kLLSlotBytes && op.peer >= 0 && op.peer < port().size() &&
      op.peer != me_) {
    if (std::byte* slot = port().llSlot(me_, op.peer, call_.seq)) return putLL(op, g, slot);
  }
  PutEnds e;
  const OpResult r = resolvePut(op, g, false, e);
  if (r != OpResult::kDone) return r;
  if (!port().move(e.dst, e.src, g.bytes)) return OpResult::kFailed;
  return e.sem != nullptr ? signalOne(op.peer, e.sem, op.value) : OpResult::kDone;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::multicast(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff) || !localSource(op)) return OpResult::kFailed;
  if (op.numRanks == 0) return fail("multicast has no target ranks");
  if (op.dst.rank != core::kSelf) return fail("a multicast dst names no rank (the targets are `ranks`)");
  Loc src;
  if (!port().locate("src", me_, op.src.buf, srcOff, g.bytes, false, src, true)) return OpResult::kFailed;
  for (std::uint32_t i = 0; i < op.numRanks; ++i) {
    if (!checkRank(v.ranks[i], "target")) return OpResult::kFailed;
    const Access a = acquire(v.ranks[i]);
    if (a != Access::kReady) return blockedOr(a);
  }
  s_.dsts.clear();
  s_.sems.clear();
  for (std::uint32_t i = 0; i < op.numRanks; ++i) {
    Loc dst;
    std::atomic<std::uint64_t>* sem = nullptr;
    if (!port().locate("dst", v.ranks[i], op.dst.buf, dstOff, g.bytes, true, dst, true)) return OpResult::kFailed;
    if (op.sem >= 0 && !port().semaphore(v.ranks[i], op.sem, sem, true)) return OpResult::kFailed;
    s_.dsts.push_back(dst);
    s_.sems.push_back(sem);
  }
  for (std::uint32_t i = 0; i < op.numRanks; ++i) {
    if (!port().move(s_.dsts[i], src, g.bytes)) return OpResult::kFailed;
    if (s_.sems[i] != nullptr) addSignal(s_.sems[i], op.value);
  }
  if (op.sem >= 0) {
    releaseAll();
    for (std::uint32_t i = 0; i < op.numRanks; ++i) port().notify(v.ranks[i]);
  }
  return OpResult::kDone;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::get(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff) || !checkRank(op.peer, "peer")) return OpResult::kFailed;
  if (op.src.rank != core::kSelf && op.src.rank != op.peer) {
    return fail("src names rank " + std::to_string(op.src.rank) + " but peer is " + std::to_string(op.peer));
  }
  if (op.dst.rank != core::kSelf && op.dst.rank != me_) {
    return fail("dst names rank " + std::to_string(op.dst.rank) + ", but the destination of a get is local");
  }
  Loc dst;
  if (!port().locate("dst", me_, op.dst.buf, dstOff, g.bytes, true, dst, true)) return OpResult::kFailed;
  const Access a = acquire(op.peer);
  if (a != Access::kReady) return blockedOr(a);
  Loc src;
  if (!port().locate("src", op.peer, op.src.buf, srcOff, g.bytes, false, src, true)) return OpResult::kFailed;
  return port().move(dst, src, g.bytes) ? OpResult::kDone : OpResult::kFailed;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::flush(const core::FlatOpView& /*v*/, const core::OpGeometry& /*g*/) {
  return OpResult::kDone;  // every op completed when it executed
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::copy(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff)) return OpResult::kFailed;
  const std::int32_t dr = rankOf(op.dst.rank);
  const std::int32_t sr = rankOf(op.src.rank);
  if (!checkRank(dr, "dst") || !checkRank(sr, "src")) return OpResult::kFailed;
  for (std::int32_t r : {dr, sr}) {
    const Access a = acquire(r);
    if (a != Access::kReady) return blockedOr(a);
  }
  Loc src;
  Loc dst;
  if (!port().locate("src", sr, op.src.buf, srcOff, g.bytes, false, src, true) ||
      !port().locate("dst", dr, op.dst.buf, dstOff, g.bytes, true, dst, true)) {
    return OpResult::kFailed;
  }
  return port().move(dst, src, g.bytes) ? OpResult::kDone : OpResult::kFailed;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::signal(const core::FlatOpView& v, const core::OpGeometry&) {
  const core::FlatOp& op = *v.rec;
  if (!checkRank(op.peer, "peer")) return OpResult::kFailed;
  const Access a = acquire(op.peer);
  if (a != Access::kReady) return blockedOr(a);
  std::atomic<std::uint64_t>* sem = nullptr;
  if (!port().semaphore(op.peer, op.sem, sem, true)) return OpResult::kFailed;
  return signalOne(op.peer, sem, op.value);
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::wait(const core::FlatOpView& v, const core::OpGeometry&) {
  const core::FlatOp& op = *v.rec;
  if (op.protocol == core::Protocol::kLL && op.bytes <= core::kLLSlotBytes && op.peer >= 0 && op.peer < port().size() &&
      op.peer != me_) {
    if (std::byte* slot = port().llSlot(op.peer, me_, call_.seq)) return waitLL(op, slot);
  }
  std::atomic<std::uint64_t>* sem = nullptr;
  if (!port().semaphore(me_, op.sem, sem, true)) return OpResult::kFailed;
  if (core::waitSatisfied(sem->load(std::memory_order_acquire), port().semBase(op.sem), op.value)) {
    return OpResult::kDone;
  }
  l_.blockedOnRank.store(-1, std::memory_order_relaxed);
  return OpResult::kBlocked;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::putReduce(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  PutEnds e;
  const OpResult r = resolvePut(op, g, true, e);
  if (r != OpResult::kDone) return r;
  const Loc& src = e.src;
  const Loc& dst = e.dst;
  if (Port::clash(dst, src, g.bytes, true)) return fail("src and dst overlap partially");
  // Several ranks may reduce into the same target bytes at once (in-network reduction semantics): the
  // target's lock serializes them. A port whose lock is taken blocks the lane, not the thread.
  if (!port().lockTarget(op.peer)) {
    l_.blockedOnRank.store(-1, std::memory_order_relaxed);
    return OpResult::kBlocked;
  }
  s_.dsts.assign(1, dst);
  s_.srcs.assign({dst, src});
  const bool ok = port().reduceLocs(s_.dsts, s_.srcs, g.bytes, op);
  port().unlockTarget(op.peer);
  if (!ok) return OpResult::kFailed;
  return e.sem != nullptr ? signalOne(op.peer, e.sem, op.value) : OpResult::kDone;
}

/// Checks and locates a reduce's sources into s_.srcs (after every rank was acquired).
COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::gatherReduceSources(const core::FlatOpView& v, const core::OpGeometry& g, const Loc& dst) {
  s_.srcs.clear();
  for (std::uint32_t i = 0; i < v.rec->numSrcs; ++i) {
    const core::Addr& s = v.srcs[i];
    const std::string role = "srcs[" + std::to_string(i) + "]";
    std::uint64_t off = 0;
    if (!core::shiftOffset(s.offset, g.srcShift, off)) return fail("indirect offset overflows");
    Loc p;
    if (!port().locate(role.c_str(), rankOf(s.rank), s.buf, off, g.bytes, false, p, true)) return OpResult::kFailed;
    if (Port::clash(p, dst, g.bytes, true)) return fail(role + " and dst overlap partially");
    s_.srcs.push_back(p);
  }
  return OpResult::kDone;
}

COPRO_LSL_TEMPLATE
OpResult COPRO_LSL::reduce(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  std::uint64_t dstOff = 0;
  if (!core::shiftOffset(op.dst.offset, g.dstShift, dstOff)) return fail("indirect offset overflows");
  if (op.numSrcs == 0) return fail("reduce has no sources");
  if (!checkElements(op, g.bytes)) return OpResult::kFailed;
  const std::int32_t dr = rankOf(op.dst.rank);
  if (!checkRank(dr, "dst")) return OpResult::kFailed;
  for (std::uint32_t i = 0; i < op.numSrcs; ++i) {
    if (!checkRank(rankOf(v.srcs[i].rank), "src")) return OpResult::kFailed;
  }
  Access a = acquire(dr);
  for (std::uint32_t i = 0; i < op.numSrcs && a == Access::kReady; ++i) a = acquire(rankOf(v.srcs[i].rank));
  if (a != Access::kReady) return blockedOr(a);
  Loc dst;
  if (!port().locate("dst", dr, op.dst.buf, dstOff, g.bytes, true, dst, true)) return OpResult::kFailed;
  if (gatherReduceSources(v, g, dst) != OpResult::kDone) return OpResult::kFailed;
  s_.dsts.assign(1, dst);
  s_.signals.clear();
  std::uint32_t fused = 0;
  if (dr == me_ && g.bytes > 0) {
    const int f = fuseFollowers(dst.ptr, g.bytes);
    if (f < 0) return OpResult::kBlocked;
    fused = static_cast<std::uint32_t>(f);
  }
  if (!port().reduceLocs(s_.dsts, s_.srcs, g.bytes, op)) return OpResult::kFailed;
  for (const PendingSignal& s : s_.signals) addSignal(s.sem, s.value);
  if (!s_.signals.empty()) {
    releaseAll();
    for (const PendingSignal& s : s_.signals) port().notify(s.rank);
  }
  consumed_ = 1 + fused;
  return OpResult::kDone;
}

// ---- reduce fusion ----

/// Fusion: a reduce into local D followed by a multicast of D, or by a run of puts of D, of the same
/// size, runs as one pass (each source read once, each destination written once). Followers that would
/// fail on their own are not fused, so they report their own error. Returns the number of ops fused, or
/// -1 when a target has not entered the call yet (the whole reduce then waits).
COPRO_LSL_TEMPLATE
int COPRO_LSL::fuseFollowers(std::byte* d, std::uint64_t bytes) {
  std::uint32_t j = pc_ + 1;
  if (j >= flat_.numOps) return 0;
  if (flat_.ops[j].code == core::OpCode::kMulticast) {
    const core::FlatOpView f = flat_.op(j);
    if (f.rec->numRanks == 0 || f.rec->dst.rank != core::kSelf) return 0;
    const int r = fuseOne(f, d, bytes, f.ranks, f.rec->numRanks);
    return r < 0 ? -1 : r;
  }
  int n = 0;
  while (j < flat_.numOps && flat_.ops[j].code == core::OpCode::kPut) {
    const core::FlatOpView f = flat_.op(j);
    if (f.rec->dst.rank != core::kSelf && f.rec->dst.rank != f.rec->peer) break;
    const int r = fuseOne(f, d, bytes, &f.rec->peer, 1);
    if (r < 0) return -1;
    if (r == 0) break;
    ++n;
    ++j;
  }
  return n;
}

/// 1: fused, 0: not fusable, -1: a target has not entered yet.
COPRO_LSL_TEMPLATE
int COPRO_LSL::fuseOne(const core::FlatOpView& fv, std::byte* d, std::uint64_t bytes, const std::int32_t* targets,
                       std::size_t ntargets) {
  const core::FlatOp& f = *fv.rec;
  const core::OpGeometry g = core::resolveGeometry(f, port().ownLayout(), call_.header->layoutWords);
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (g.fault != core::GeometryFault::kNone || g.bytes != bytes ||
      !core::shiftOffset(f.src.offset, g.srcShift, srcOff) || !core::shiftOffset(f.dst.offset, g.dstShift, dstOff)) {
    return 0;
  }
  if (f.src.rank != core::kSelf && f.src.rank != me_) return 0;
  Loc src;
  if (!port().locate("src", me_, f.src.buf, srcOff, bytes, false, src, false) || src.ptr != d) return 0;
  const std::size_t peerMark = s_.peers.size();
  const std::size_t dstMark = s_.dsts.size();
  const std::size_t sigMark = s_.signals.size();
  for (std::size_t i = 0; i < ntargets; ++i) {
    const int r = fuseTarget(f, targets[i], dstOff, bytes);
    if (r <= 0) {
      releaseFrom(peerMark);
      s_.dsts.resize(dstMark);
      s_.signals.resize(sigMark);
      return r;
    }
  }
  return 1;
}

/// Adds target `t` of follower `f` to the fused group: 1, or 0 (not fusable) / -1 (not entered yet).
COPRO_LSL_TEMPLATE
int COPRO_LSL::fuseTarget(const core::FlatOp& f, std::int32_t t, std::uint64_t dstOff, std::uint64_t bytes) {
  if (t < 0 || t >= port().size()) return 0;
  const Access a = acquire(t, false);
  if (a == Access::kNotYet) return -1;
  std::atomic<std::uint64_t>* sem = nullptr;
  Loc x;
  if (a == Access::kFailed || !port().locate("dst", t, f.dst.buf, dstOff, bytes, true, x, false) ||
      (f.sem >= 0 && !port().semaphore(t, f.sem, sem, false)) || clashesWithGroup(x, bytes)) {
    return 0;
  }
  s_.dsts.push_back(x);
  if (sem != nullptr) s_.signals.push_back({t, sem, f.value});
  return 1;
}

/// A fused reduction allows a destination to equal a source exactly, nothing else overlapping.
COPRO_LSL_TEMPLATE
bool COPRO_LSL::clashesWithGroup(const Loc& x, std::uint64_t bytes) const {
  for (const Loc& s : s_.srcs) {
    if (Port::clash(s, x, bytes, true)) return true;
  }
  for (const Loc& o : s_.dsts) {
    if (Port::clash(o, x, bytes, false)) return true;
  }
  return false;
}

#undef COPRO_LSL
#undef COPRO_LSL_TEMPLATE

}  // namespace copro::transport::lanes
