#pragma once
/// The lane engine of the load/store backends (inproc, shm): runs one lane's ops synchronously, in
/// order, through the flat interpreter (copro/core/flat_interpreter.hpp), with the meaning of every op
/// (checks, peer acquisition, copies, reductions, signals, reduce fusion) written once here.
///
/// A backend is a *port*: a class deriving from `LoadStoreLane<Port, Loc, CallT, LaneT>` (CRTP) that
/// says only how its memory is reached:
///
///   int size() const;                              ranks of the communicator
///   Ctl& ctl(std::int32_t r) const;                a rank's control block (atomic `state`, `accessors`)
///   static bool dead(std::uint64_t state);         the state of a failed, aborted or departed rank
///   std::string deadReason(std::int32_t r) const;  why such a rank cannot be reached
///   const std::uint64_t* ownLayout() const;        the executing rank's layout words
///   bool locate(role, rank, buf, offset, bytes, write, Loc& out, bool report);
///   bool semaphore(rank, sem, std::atomic<std::uint64_t>*& out, bool report);
///   std::uint64_t semBase(std::int32_t sem) const; the executing rank's epoch base of `sem`
///   bool move(const Loc& dst, const Loc& src, std::uint64_t bytes);
///   bool reduceLocs(dsts, srcs, bytes, const core::FlatOp& op);   dsts[j] = op(srcs...)
///   bool lockTarget(std::int32_t r); void unlockTarget(std::int32_t r);  put_reduce serialization
///   void notify(std::int32_t r);                   wakes whoever runs r's lanes after a signal
///   static bool clash(const Loc& a, const Loc& b, std::uint64_t bytes, bool equalOk);
///   static constexpr const char* kBackend;         the backend's name in per-op traces
///   std::byte* llSlot(from, to, seq);              the LL mailbox slot from -> to of call seq (nullptr:
///                                                  none; LL ops then run as simple ones, ll_mailbox.hpp)
///
/// `Loc` has `ptr` (the directly addressable byte, or nullptr). Lanes keep a `LaneScratch<Loc>`
/// (lane_state.hpp) as `scratch`.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "call_reports.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/flat_interpreter.hpp"
#include "copro/core/program.hpp"
#include "copro/core/reduce.hpp"
#include "copro/core/status.hpp"
#include "copro/transport/op_trace.hpp"
#include "lane_state.hpp"
#include "lane_util.hpp"
#include "ll_mailbox.hpp"
#include "op_messages.hpp"

namespace copro::transport::lanes {

using OpResult = core::OpStep;
enum class Access { kReady, kNotYet, kFailed };

using calls::opLabelOf;

/// The engine. `CallT` has `seq`, `label`, `header`, `rankProgram`, `flat`, `lanes`, `phase` and `progress`;
/// `LaneT` has `ops`, `pc`, `done`, `blockedOnRank` and `scratch`.
template <typename Port, typename Loc, typename CallT, typename LaneT>
class LoadStoreLane {
 public:
  /// Runs the lane until it blocks, finishes, fails or the call stops (on kFailed `error_` holds why),
  /// reporting each completed op to the per-op observer when one is installed (op_trace.hpp).
  LaneRun runLane();

  // ---- the flat interpreter's port (copro/core/flat_interpreter.hpp) ----
  COPRO_FLAT_PORT_OPS;  // put, get, signal, wait, reduce, putReduce, multicast, copy, flush
  OpResult unknownOp(const core::FlatOpView& op) {
    return fail("unknown op code " + std::to_string(static_cast<int>(op.rec->code)));
  }
  OpResult badGeometry(const core::FlatOpView& op, const core::OpGeometry& g) {
    return fail(geometryFaultMessage(*op.rec, g, call_.header->layoutWords));
  }

 protected:
  LoadStoreLane(CallT& call, int lane, core::Status& error, std::int32_t me)
      : call_(call),
        lane_(lane),
        l_(call.lanes[static_cast<std::size_t>(lane)]),
        s_(l_.scratch),
        ops_(*l_.ops),
        flat_(call.flat->lane(static_cast<std::size_t>(lane))),
        error_(error),
        me_(me) {}

  OpResult fail(const std::string& what, core::ErrorCode code = core::ErrorCode::kInvalidProgram) {
    error_ = core::Status(code, opLabelOf(call_, lane_, pc_) + ": " + what);
    return OpResult::kFailed;
  }

  bool noSuchBuffer(const char* role, std::int32_t r, core::BufferId buf, std::size_t have, bool report) {
    if (report) {
      fail(std::string(role) + " buffer " + core::bufferName(buf) + " of rank " + std::to_string(r) +
           " does not exist (the call has " + std::to_string(have - core::kNumBuffers) + " extra buffers)");
    }
    return false;
  }

  /// [offset, offset+bytes) inside a buffer of `limit` bytes, and writable when written.
  bool boundsOk(const char* role, std::int32_t r, core::BufferId buf, std::uint64_t offset, std::uint64_t bytes,
                std::uint64_t limit, bool writable, bool write, bool report);

  CallT& call_;
  int lane_;
  LaneT& l_;
  LaneScratch<Loc>& s_;
  const std::vector<core::Op>& ops_;  ///< the lane's ops (labels and traces)
  const core::FlatLaneView flat_;     ///< the same ops, flat: what the interpreter reads
  core::Status& error_;
  std::int32_t me_;
  std::uint32_t pc_ = 0;
  std::uint32_t consumed_ = 1;  ///< ops the current op ran as one (a reduce fused with its followers)

 private:
  Port& port() { return static_cast<Port&>(*this); }
  OpResult runOne(std::uint32_t pc, std::uint32_t& consumed);

  // ---- checks ----
  bool checkRank(std::int32_t r, const char* role);
  bool checkElements(const core::FlatOp& op, std::uint64_t bytes);
  bool localSource(const core::FlatOp& op);
  bool offsets(const core::FlatOp& op, const core::OpGeometry& g, std::uint64_t& srcOff, std::uint64_t& dstOff);
  std::int32_t rankOf(std::int32_t r) const { return r == core::kSelf ? me_ : r; }

  // ---- peers ----
  Access acquire(std::int32_t target, bool report = true);
  void releaseFrom(std::size_t mark);
  void releaseAll() { releaseFrom(0); }
  OpResult blockedOr(Access a) const { return a == Access::kNotYet ? OpResult::kBlocked : OpResult::kFailed; }

  // ---- pieces of ops ----
  void addSignal(std::atomic<std::uint64_t>* sem, std::uint64_t value) {
    // Non-temporal stores of the copy kernels are weakly ordered: fence them before the signal.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    sem->fetch_add(value, std::memory_order_seq_cst);
  }
  OpResult signalOne(std::int32_t peer, std::atomic<std::uint64_t>* sem, std::uint64_t value);
  struct PutEnds {
    Loc src;
    Loc dst;
    std::atomic<std::uint64_t>* sem = nullptr;
  };
  OpResult resolvePut(const core::FlatOp& op, const core::OpGeometry& g, bool reduces, PutEnds& e);
  OpResult putLL(const core::FlatOp& op, const core::OpGeometry& g, std::byte* slot);
  OpResult waitLL(const core::FlatOp& op, std::byte* slot);
  OpResult gatherReduceSources(const core::FlatOpView& op, const core::OpGeometry& g, const Loc& dst);
  int fuseFollowers(std::byte* d, std::uint64_t bytes);
  int fuseOne(const core::FlatOpView& f, std::byte* d, std::uint64_t bytes, const std::int32_t* targets,
              std::size_t ntargets);
  int fuseTarget(const core::FlatOp& f, std::int32_t t, std::uint64_t dstOff, std::uint64_t bytes);
  bool clashesWithGroup(const Loc& x, std::uint64_t bytes) const;
};

}  // namespace copro::transport::lanes

#include "loadstore_lane_engine_impl.hpp"
