/// The executor core of the multi-process network backends (see remote_engine.hpp).
#include "remote_engine.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include "call_reports.hpp"
#include "call_setup.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/flat_interpreter.hpp"
#include "copro/core/log.hpp"
#include "copro/core/reduce.hpp"
#include "copro/transport/op_trace.hpp"
#include "driven_call_handle.hpp"
#include "lane_util.hpp"
#include "op_messages.hpp"
#include "stopped_peer_watch.hpp"

namespace copro::transport::remote {

using core::Addr;
using core::BufferId;
using core::ErrorCode;
using core::Op;
using core::OpCode;
using core::Status;
using Clock = std::chrono::steady_clock;
using calls::formatSeconds;

std::vector<int> nodeIdsFromHostnames(core::Bootstrap& bootstrap) {
  constexpr std::size_t kName = 256;
  std::vector<char> mine(kName, 0);
  (void)gethostname(mine.data(), kName - 1);
  std::vector<char> all(kName * static_cast<std::size_t>(bootstrap.size()), 0);
  bootstrap.allGather(mine.data(), all.data(), kName).throwIfError();
  std::vector<std::string> names;
  std::vector<int> out;
  for (int r = 0; r < bootstrap.size(); ++r) {
    const std::string name(all.data() + static_cast<std::size_t>(r) * kName);
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      names.push_back(name);
      it = std::prev(names.end());
    }
    out.push_back(static_cast<int>(it - names.begin()));
  }
  return out;
}

void idlePause(double idleSeconds) noexcept {
  if (idleSeconds < 0.05) {
    sched_yield();
  } else {
    // Long waits (a late peer, a compute phase elsewhere): sleep so that oversubscribed ranks run.
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

namespace {

constexpr std::uint64_t kUnknown = std::numeric_limits<std::uint64_t>::max();

enum class Phase { kQueued, kRunning, kDone, kFailed };

struct LaneRt {
  const std::vector<Op>* ops = nullptr;
  core::FlatLaneView flat;  ///< the same ops, flat (what the interpreter reads)
  bool pooled = false;      ///< a proxy or offload lane that the progress thread runs
  std::uint32_t pc = 0;
  bool done = false;
  std::int32_t blockedOnRank = -1;
  // put_reduce runs as get -> flush -> reduce -> put through this temporary.
  int prStage = 0;
  bool prPending = false;  ///< the temporary is the source of a put not yet flushed
  std::vector<std::byte> prTemp;
  std::uint32_t timedPc = ~0U;  ///< per-op timing: the op first tried at opBegin
  Clock::time_point opBegin;
};

struct Call : calls::CallBase {
  int pooledLanes = 0;  ///< lanes the progress thread runs
  std::vector<LaneRt> lanes;
  int lanesLeft = 0;
  Phase phase = Phase::kQueued;
  Status status;
  std::vector<Region> regions;
  bool finishing = false;
  [[nodiscard]] bool finished() const { return phase == Phase::kDone || phase == Phase::kFailed; }
};

using lanes::copyBytes;
using lanes::overlaps;
using OpResult = core::OpStep;

class Engine {
 public:
  Engine(std::unique_ptr<RemoteTransport> t, core::Config config, std::vector<int> nodeOfRank)
      : t_(std::move(t)), backendName_(t_->backend()), config_(std::move(config)), nodeOfRank_(std::move(nodeOfRank)) {
    if (nodeOfRank_.empty()) nodeOfRank_.assign(static_cast<std::size_t>(t_->size()), 0);
  }

  RemoteTransport& transport() { return *t_; }
  const core::Config& config() const { return config_; }
  const std::vector<int>& nodeOfRank() const { return nodeOfRank_; }
  std::mutex& mutex() { return mutex_; }

  Status start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
               std::shared_ptr<Call>& out);
  Status drive(const std::shared_ptr<Call>& target, bool block, bool& done);
  void abort() { aborted_.store(true, std::memory_order_release); }
  void retire() {
    retired_.store(true, std::memory_order_release);
    aborted_.store(true, std::memory_order_release);
    stopProgress_.store(true, std::memory_order_release);
    if (progressThread_.joinable()) progressThread_.join();
  }
  ~Engine() { retire(); }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- the flat interpreter's port (copro/core/flat_interpreter.hpp), for the op of cur_ ----
  COPRO_FLAT_PORT_OPS;  // put, get, signal, wait, reduce, putReduce, multicast, copy, flush
  OpResult unknownOp(const core::FlatOpView& v) {
    return fail("unknown op code " + std::to_string(static_cast<int>(v.rec->code)));
  }
  OpResult badGeometry(const core::FlatOpView& v, const core::OpGeometry& g) {
    return fail(lanes::geometryFaultMessage(*v.rec, g, cur_.call->header->layoutWords));
  }

 private:
  /// The op being interpreted: its call, lane and lane state.
  struct CurrentOp {
    Call* call = nullptr;
    int lane = 0;
    LaneRt* l = nullptr;
  };
  CurrentOp cur_;
  std::vector<const void*> reduceSrcs_;  ///< reused by reduce so executing does not allocate
  bool notedInitiation_ = false;         ///< the INFO line about non-device lanes was written
  [[nodiscard]] int me() const { return t_->rank(); }
  void enter(Call& call);
  /// Marks the lanes the progress thread runs (proxy and offload lanes, where the transport allows it)
  /// and starts the thread.
  Status assignLanes(Call& call, const std::string& who);
  void failFront(const Status& status, bool poison);
  void complete(Call& call);
  /// Runs the caller's lanes (`pooled` false) or the progress thread's (true) as far as they go.
  bool runLanes(Call& call, bool pooled);
  /// The progress thread of `proxy` and `offload` lanes (transports that allow it), started on first use.
  void ensureProgressThread();
  void progressMain();
  /// Interprets lane `lane`'s current op, reporting it to the per-op observer once it completed.
  OpResult runCurrentOp(Call& call, int lane, LaneRt& l);
  std::string opLabel(const Call& call, int lane, std::uint32_t pc) const;
  std::string stallReport(const Call& call);

  // Op helpers; on failure they set error_ (without the label) and return false.
  bool offsets(const core::FlatOp& op, const core::OpGeometry& g, std::uint64_t& srcOff, std::uint64_t& dstOff);
  bool localSource(const core::FlatOp& op);
  OpResult putToSelf(const core::FlatOp& op, std::uint64_t dstOff, const std::byte* src, std::uint64_t bytes);
  OpResult putReduceRemote(const core::FlatOp& op, std::uint64_t bytes, std::uint64_t dstOff, const std::byte* src,
                           std::size_t count);
  bool locateLocal(const Call& call, const char* role, const Addr& a, std::uint64_t offset, std::uint64_t bytes,
                   bool write, std::byte*& out);
  bool checkPeer(std::int32_t r, const char* role);
  bool checkRemote(const Call& call, const char* role, std::int32_t peer, BufferId buf, std::uint64_t offset,
                   std::uint64_t bytes);
  bool checkSem(const Call& call, std::int32_t sem);
  bool checkElements(const core::FlatOp& op, std::uint64_t bytes);
  OpResult reach(LaneRt& l, std::int32_t peer);
  void signalLocal(std::int32_t sem, std::uint64_t value) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    sems_[sem].fetch_add(value, std::memory_order_seq_cst);
  }
  /// Signals received on semaphore `s` so far, over every slot array.
  [[nodiscard]] std::uint64_t semValue(std::int32_t s) const {
    std::uint64_t v = sems_[s].load(std::memory_order_acquire);
    if (extraSems_ != nullptr) v += extraSems_[s].load(std::memory_order_acquire);
    return v;
  }
  OpResult fail(std::string what, ErrorCode code = ErrorCode::kInvalidProgram) {
    error_ = Status(code, std::move(what));
    return OpResult::kFailed;
  }

  std::mutex mutex_;
  std::unique_ptr<RemoteTransport> t_;
  std::string backendName_;  ///< for per-op traces
  core::Config config_;
  /// COPRO_INITIATION=proxy without per-scale modes: `device` lanes run as `proxy` (call_setup.hpp).
  const bool proxyDefault_ = calls::deviceLanesRunAsProxy(config_);
  std::vector<int> nodeOfRank_;
  std::deque<std::shared_ptr<Call>> queue_;
  std::uint64_t nextSeq_ = 1;
  bool broken_ = false;
  Status brokenStatus_;
  std::atomic<bool> aborted_{false};
  std::atomic<bool> retired_{false};
  bool abortHandled_ = false;
  std::thread progressThread_;  ///< runs pooled lanes (transport::progressFromAnyThread)
  std::atomic<bool> stopProgress_{false};
  // Semaphores and layout of the current call.
  std::atomic<std::uint64_t>* sems_ = nullptr;
  std::atomic<std::uint64_t>* extraSems_ = nullptr;  ///< RemoteTransport::extraSemaphores; summed with sems_
  std::int32_t numSems_ = 0;
  std::vector<std::uint64_t> semBase_;
  std::uint64_t* layout_ = nullptr;
  calls::PreparedRankCache advanceCache_{16};
  Status error_;
  Clock::time_point lastProgress_ = Clock::now();
  StoppedPeerWatch stoppedWatch_;  ///< a peer seen stopped during the current stall
};

Status Engine::start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
                     std::shared_ptr<Call>& out) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string who = std::string(t_->backend()) + " rank " + std::to_string(me()) + ": ";
  auto call = std::make_shared<Call>();
  COPRO_RETURN_IF_ERROR(calls::openCall(*call, std::move(program), b, me(), t_->size(), advanceCache_, nullptr, who));
  const bool aborted = retired_.load(std::memory_order_acquire) || aborted_.load(std::memory_order_acquire);
  call->seq = nextSeq_;
  COPRO_RETURN_IF_ERROR(calls::refusal(*call, aborted, broken_, brokenStatus_));
  ++nextSeq_;
  call->lanes.resize(call->rankProgram->lanes.size());
  for (std::size_t i = 0; i < call->lanes.size(); ++i) {
    call->lanes[i].ops = &call->rankProgram->lanes[i].ops;
    call->lanes[i].flat = call->flat->lane(i);
  }
  call->lanesLeft = static_cast<int>(call->lanes.size());
  COPRO_RETURN_IF_ERROR(assignLanes(*call, who));
  queue_.push_back(call);
  // Entering early lets the peers reach this rank while the user still prepares other work.
  if (queue_.front() == call) enter(*call);
  out = std::move(call);
  return {};
}

Status Engine::assignLanes(Call& call, const std::string& who) {
  const bool threaded = t_->progressFromAnyThread();
  for (std::size_t i = 0; i < call.lanes.size(); ++i) {
    const core::Initiation mode = calls::laneMode(call.rankProgram->lanes[i].initiation, proxyDefault_);
    if (mode == core::Initiation::kDevice) continue;
    if (!threaded) {
      if (!notedInitiation_) {
        // docs/initiation.md: this transport cannot be driven from another thread; the lanes still run,
        // on the caller's thread.
        COPRO_LOG(
            Info, Transport,
            who << "'" << core::initiationName(mode)
                << "' lanes run on the caller's thread inside wait()/test() on this backend (no progress thread)");
        notedInitiation_ = true;
      }
      continue;
    }
    call.lanes[i].pooled = true;
    ++call.pooledLanes;
  }
  if (call.pooledLanes == 0) return {};
  try {
    ensureProgressThread();
  } catch (const std::system_error& e) {
    return {ErrorCode::kInternal, who + "cannot start progress threads: " + e.what()};
  }
  return {};
}

void Engine::enter(Call& call) {
  const core::ProgramHeader& h = *call.header;
  const core::CallBuffers& b = call.buffers;
  CallEntry entry;
  try {
    std::byte* scratch = t_->scratch(h.scratchBytes);
    std::atomic<std::uint64_t>* sems = t_->semaphores(h.numSemaphores);
    std::atomic<std::uint64_t>* extra = t_->extraSemaphores(h.numSemaphores);
    if (extra == nullptr && extraSems_ == nullptr) {
      if (sems != sems_) {
        // A new (zeroed) array: every signal of the earlier calls has been consumed, so bases restart at 0.
        sems_ = sems;
        semBase_.assign(static_cast<std::size_t>(std::max(h.numSemaphores, numSems_)), 0);
      }
    } else if (sems != sems_ || extra != extraSems_) {
      // Two slot arrays, one of which may be new (zeroed) while the other kept its count: no peer can
      // signal this call before it is entered, so the current sums are exactly the consumed signals.
      sems_ = sems;
      extraSems_ = extra;
      semBase_.assign(static_cast<std::size_t>(std::max(h.numSemaphores, numSems_)), 0);
      for (std::int32_t s = 0; s < h.numSemaphores; ++s) semBase_[static_cast<std::size_t>(s)] = semValue(s);
    }
    if (semBase_.size() < static_cast<std::size_t>(h.numSemaphores)) semBase_.resize(h.numSemaphores, 0);
    numSems_ = h.numSemaphores;
    layout_ = t_->layout(h.layoutWords);
    std::fill(layout_, layout_ + h.layoutWords, 0);
    std::copy(b.layoutInit.begin(), b.layoutInit.end(), layout_);
    calls::userRegions(h, b, me(), call.regions);
    call.regions[static_cast<std::size_t>(BufferId::kScratch)] = Region{scratch, h.scratchBytes, true};
    call.regions[static_cast<std::size_t>(BufferId::kLayout)] =
        Region{reinterpret_cast<std::byte*>(layout_), std::uint64_t{h.layoutWords} * sizeof(std::uint64_t), true};
  } catch (const core::Error& e) {
    call.phase = Phase::kRunning;
    failFront(Status(e.code(), call.label() + ": " + e.message()), true);
    return;
  }
  entry.seq = call.seq;
  entry.header = &h;
  entry.program = call.program;
  entry.regions = call.regions;
  entry.semaphores = sems_;
  entry.numSemaphores = h.numSemaphores;
  entry.numLanes = static_cast<int>(call.lanes.size());
  entry.label = call.label();
  call.phase = Phase::kRunning;
  lastProgress_ = Clock::now();
  Status s = t_->enter(entry);
  if (!s.ok()) {
    failFront(Status(s.code(), call.label() + ": " + s.message()), s.code() != ErrorCode::kRemoteError);
    return;
  }
  COPRO_LOG(Trace, Transport, call.label() << ": entered");
}

void Engine::complete(Call& call) {
  call.advanceEpochs(semBase_);
  t_->leave();
  call.status = Status();
  call.phase = Phase::kDone;
  queue_.pop_front();
}

void Engine::failFront(const Status& statusSeen, bool poison) {
  if (queue_.empty()) return;
  std::shared_ptr<Call> front = queue_.front();
  // A stopped peer is the likely cause of a timeout or of peers that gave up: name it first.
  Status status = statusSeen;
  if (status.code() == ErrorCode::kTimeout || status.code() == ErrorCode::kRemoteError) {
    const std::string stopped = stoppedWatch_.blame(t_->stoppedPeer(), lastProgress_, Clock::now());
    if (!stopped.empty()) {
      status = Status(status.code(),
                      front->label() + ": " + stopped + " (what this rank saw: " + statusSeen.message() + ")");
    }
  }
  if (front->phase == Phase::kRunning) t_->leave();
  (void)calls::failQueued(queue_, front.get(), status, status.code(),
                          "not run: an earlier call failed (" + status.message() + ")", me(), Phase::kFailed,
                          [](Call&) {});
  broken_ = true;
  brokenStatus_ = status;
  t_->markBroken();
  if (poison) t_->announceFailure(status.message());
  COPRO_LOG(Warn, Transport, status.toString());
}

std::string Engine::opLabel(const Call& call, int lane, std::uint32_t pc) const {
  return calls::opLabelOf(call, lane, pc);
}

std::string Engine::stallReport(const Call& call) {
  std::string out = t_->stallReport();
  const auto laneAt = [&call](int i) {
    const LaneRt& l = call.lanes[static_cast<std::size_t>(i)];
    return calls::LaneSnapshot{l.done, l.pc, l.blockedOnRank, l.ops};
  };
  const auto semProgress = [this](std::int32_t sem, std::uint64_t& progress) {
    if (sem < 0 || sem >= numSems_) return false;
    progress = semValue(sem) - semBase_[static_cast<std::size_t>(sem)];
    return true;
  };
  const std::string lanes = calls::blockedLanes(call, static_cast<int>(call.lanes.size()), laneAt, semProgress,
                                                " waits for its last operations to complete");
  if (!lanes.empty()) out += (out.empty() ? "" : "; ") + std::string("blocked lanes:") + lanes;
  if (call.pooledLanes > 0) {
    // Proxy and offload lanes run on the progress thread: say whether it still runs (docs/initiation.md).
    const bool running = progressThread_.joinable() && !stopProgress_.load(std::memory_order_acquire);
    out += "; " + std::to_string(call.pooledLanes) + " of the lanes run on the progress thread, which " +
           (running ? "is running" : "has stopped");
  }
  return out;
}

Status Engine::drive(const std::shared_ptr<Call>& target, bool block, bool& done) {
  std::unique_lock<std::mutex> lock(mutex_);
  const double timeout = config_.timeoutSec;
  while (true) {
    if (target->finished()) {
      done = true;
      return target->status;
    }
    if (aborted_.load(std::memory_order_acquire) && !abortHandled_) {
      abortHandled_ = true;
      const bool retired = retired_.load(std::memory_order_acquire);
      const std::string why = retired ? "the executor was destroyed" : "aborted by Executor::abort()";
      failFront(Status(ErrorCode::kAborted, queue_.front()->label() + ": " + why), true);
      continue;
    }
    Call& call = *queue_.front();
    if (call.phase == Phase::kQueued) {
      enter(call);
      continue;
    }
    bool progressed = false;
    Status s = t_->progress(progressed);
    if (!s.ok()) {
      failFront(Status(s.code(), call.label() + ": " + s.message()), s.code() != ErrorCode::kRemoteError);
      continue;
    }
    if (runLanes(call, false)) progressed = true;
    if (call.phase != Phase::kRunning) continue;  // failed in a lane
    if (call.lanesLeft == 0) {
      bool finished = false;
      s = t_->finishCall(finished);
      if (!s.ok()) {
        failFront(Status(s.code(), call.label() + ": " + s.message()), s.code() != ErrorCode::kRemoteError);
        continue;
      }
      if (finished) {
        complete(call);
        lastProgress_ = Clock::now();
        if (!queue_.empty()) enter(*queue_.front());
        continue;
      }
    }
    const auto now = Clock::now();
    if (progressed) {
      lastProgress_ = now;
      if (!block) {
        done = target->finished();
        return done ? target->status : Status();
      }
      continue;
    }
    const double idle = std::chrono::duration<double>(now - lastProgress_).count();
    stoppedWatch_.look(lastProgress_, now, timeout, [this] { return t_->stoppedPeer(); });
    if (idle > timeout) {
      failFront(calls::timeoutStatus(call.label(), timeout, stallReport(call)), false);
      continue;
    }
    if (!block) {
      done = false;
      return {};
    }
    // Let the progress thread (proxy and offload lanes) in while this thread has nothing to do.
    lock.unlock();
    idlePause(idle);
    lock.lock();
  }
}

void Engine::ensureProgressThread() {
  if (progressThread_.joinable()) return;
  progressThread_ = std::thread([this] { progressMain(); });
}

void Engine::progressMain() {
  Clock::time_point idleSince = Clock::now();
  while (!stopProgress_.load(std::memory_order_acquire)) {
    bool progressed = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!queue_.empty() && queue_.front()->phase == Phase::kRunning && queue_.front()->pooledLanes > 0) {
        Call& call = *queue_.front();
        const Status s = t_->progress(progressed);
        if (!s.ok()) {
          failFront(Status(s.code(), call.label() + ": " + s.message()), s.code() != ErrorCode::kRemoteError);
        } else if (runLanes(call, true)) {
          progressed = true;
        }
        if (progressed) lastProgress_ = Clock::now();
      }
    }
    const auto now = Clock::now();
    if (progressed) idleSince = now;
    idlePause(std::chrono::duration<double>(now - idleSince).count());
  }
}

OpResult Engine::runCurrentOp(Call& call, int lane, LaneRt& l) {
  error_ = Status();
  cur_ = CurrentOp{&call, lane, &l};
  const bool traced = lanes::opTraceOn();
  if (traced && l.timedPc != l.pc) {
    // An op that blocks is retried later: its slice starts at the first try.
    l.timedPc = l.pc;
    l.opBegin = Clock::now();
  }
  const OpResult r = core::interpretOp(*this, l.flat.op(l.pc), layout_, call.header->layoutWords);
  if (traced && r == OpResult::kDone) {
    lanes::traceOp(LaneOpTiming{backendName_.c_str(), me(), lane, l.pc, 1, &(*l.ops)[l.pc], l.opBegin, Clock::now()});
  }
  return r;
}

bool Engine::runLanes(Call& call, bool pooled) {
  bool any = false;
  for (std::size_t i = 0; i < call.lanes.size(); ++i) {
    LaneRt& l = call.lanes[i];
    if (l.done || l.pooled != pooled) continue;
    const int lane = static_cast<int>(i);
    while (true) {
      if (l.pc >= l.ops->size()) {
        // The end of a lane flushes it: the user may reuse the buffers once the call completed.
        bool flushed = false;
        Status s = t_->finishLane(lane, flushed);
        if (!s.ok()) {
          failFront(Status(s.code(), opLabel(call, lane, l.pc) + ": " + s.message()),
                    s.code() != ErrorCode::kRemoteError);
          return true;
        }
        if (flushed) {
          l.done = true;
          --call.lanesLeft;
          any = true;
        }
        break;
      }
      const OpResult r = runCurrentOp(call, lane, l);
      if (r == OpResult::kBlocked) break;
      if (r == OpResult::kFailed) {
        failFront(Status(error_.code(), opLabel(call, lane, l.pc) + ": " + error_.message()),
                  error_.code() != ErrorCode::kRemoteError);
        return true;
      }
      ++l.pc;
      l.blockedOnRank = -1;
      any = true;
    }
  }
  return any;
}

bool Engine::locateLocal(const Call& call, const char* role, const Addr& a, std::uint64_t offset, std::uint64_t bytes,
                         bool write, std::byte*& out) {
  if (a.rank != core::kSelf && a.rank != me()) {
    fail(std::string(role) + " names rank " + std::to_string(a.rank) + ", outside this rank's load/store domain (the " +
         std::string(t_->backend()) + " backend gives every rank its own domain)");
    return false;
  }
  const auto b = static_cast<std::size_t>(a.buf);
  if (b >= call.regions.size()) {
    fail(std::string(role) + " buffer " + core::bufferName(a.buf) + " of rank " + std::to_string(me()) +
         " does not exist (the call has " + std::to_string(call.regions.size() - core::kNumBuffers) +
         " extra buffers)");
    return false;
  }
  const Region& reg = call.regions[b];
  if (bytes > 0 && (offset > reg.limit || bytes > reg.limit - offset)) {
    fail(std::string(role) + " " + core::bufferName(a.buf) + "[" + std::to_string(offset) + ", " +
         std::to_string(offset + bytes) + ") of rank " + std::to_string(me()) + " is out of bounds (" +
         core::bufferName(a.buf) + " has " + std::to_string(reg.limit) + " bytes in this call)");
    return false;
  }
  if (write && !reg.writable && bytes > 0) {
    fail(std::string(role) + " " + core::bufferName(a.buf) + " of rank " + std::to_string(me()) +
         " is read-only (the input of an out-of-place call)");
    return false;
  }
  out = reg.base + offset;
  return true;
}

bool Engine::checkPeer(std::int32_t r, const char* role) {
  if (r >= 0 && r < t_->size()) return true;
  fail(std::string(role) + " rank " + std::to_string(r) + " is out of range (the communicator has " +
       std::to_string(t_->size()) + " ranks)");
  return false;
}

bool Engine::checkRemote(const Call& call, const char* role, std::int32_t peer, BufferId buf, std::uint64_t offset,
                         std::uint64_t bytes) {
  const core::ProgramHeader& h = *call.header;
  const auto pi = static_cast<std::size_t>(peer);
  std::uint64_t limit = kUnknown;
  switch (buf) {
    case BufferId::kInput:
      limit = h.inputBytes.empty() ? 0 : h.inputBytes[pi];
      break;
    case BufferId::kOutput:
      limit = h.outputBytes.empty() ? 0 : h.outputBytes[pi];
      break;
    case BufferId::kScratch:
      limit = h.scratchBytes;
      break;
    case BufferId::kLayout:
      limit = std::uint64_t{h.layoutWords} * sizeof(std::uint64_t);
      break;
    default:
      break;
  }
  limit = std::min(limit, t_->remoteLimit(peer, buf));
  if (bytes > 0 && limit != kUnknown && (offset > limit || bytes > limit - offset)) {
    fail(std::string(role) + " " + core::bufferName(buf) + "[" + std::to_string(offset) + ", " +
         std::to_string(offset + bytes) + ") of rank " + std::to_string(peer) + " is out of bounds (" +
         core::bufferName(buf) + " has " + std::to_string(limit) + " bytes in this call)");
    return false;
  }
  return true;
}

bool Engine::checkSem(const Call& call, std::int32_t sem) {
  if (sem >= 0 && sem < call.header->numSemaphores) return true;
  fail("semaphore " + std::to_string(sem) + " is out of range (numSemaphores " +
       std::to_string(call.header->numSemaphores) + ")");
  return false;
}

bool Engine::checkElements(const core::FlatOp& op, std::uint64_t bytes) {
  ErrorCode code = ErrorCode::kInvalidProgram;
  const std::string why = lanes::elementsProblem(op, bytes, code);
  if (why.empty()) return true;
  fail(why, code);
  return false;
}

OpResult Engine::reach(LaneRt& l, std::int32_t peer) {
  Status err;
  switch (t_->reach(peer, err)) {
    case Reach::kReady:
      return OpResult::kDone;
    case Reach::kNotYet:
      l.blockedOnRank = peer;
      return OpResult::kBlocked;
    case Reach::kFailed:
    default:
      error_ = err;
      return OpResult::kFailed;
  }
}

bool Engine::offsets(const core::FlatOp& op, const core::OpGeometry& g, std::uint64_t& srcOff, std::uint64_t& dstOff) {
  if (core::shiftOffset(op.src.offset, g.srcShift, srcOff) && core::shiftOffset(op.dst.offset, g.dstShift, dstOff)) {
    return true;
  }
  fail("indirect offset overflows");
  return false;
}

bool Engine::localSource(const core::FlatOp& op) {
  if (op.src.rank == core::kSelf || op.src.rank == me()) return true;
  fail("src names rank " + std::to_string(op.src.rank) + ", but the source of a " +
       std::string(core::opCodeName(op.code)) + " is local");
  return false;
}

/// A put or multicast target that is this rank: a local copy and signal.
OpResult Engine::putToSelf(const core::FlatOp& op, std::uint64_t dstOff, const std::byte* src, std::uint64_t bytes) {
  std::byte* dst = nullptr;
  if (!locateLocal(*cur_.call, "dst", Addr{core::kSelf, op.dst.buf, 0}, dstOff, bytes, true, dst)) {
    return OpResult::kFailed;
  }
  copyBytes(dst, src, bytes);
  if (op.sem >= 0) signalLocal(op.sem, op.value);
  return OpResult::kDone;
}

OpResult Engine::put(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  Call& call = *cur_.call;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff) || !localSource(op) || !checkPeer(op.peer, "peer")) return OpResult::kFailed;
  if (op.dst.rank != core::kSelf && op.dst.rank != op.peer) {
    return fail("dst names rank " + std::to_string(op.dst.rank) + " but peer is " + std::to_string(op.peer));
  }
  std::byte* src = nullptr;
  if (!locateLocal(call, "src", Addr{core::kSelf, op.src.buf, 0}, srcOff, g.bytes, false, src)) {
    return OpResult::kFailed;
  }
  if (op.sem >= 0 && !checkSem(call, op.sem)) return OpResult::kFailed;
  if (op.peer == me()) return putToSelf(op, dstOff, src, g.bytes);
  const OpResult r = reach(*cur_.l, op.peer);
  if (r != OpResult::kDone) return r;
  if (!checkRemote(call, "dst", op.peer, op.dst.buf, dstOff, g.bytes)) return OpResult::kFailed;
  error_ = t_->put(cur_.lane, cur_.l->pc, op.peer, op.dst.buf, dstOff, src, g.bytes, op.sem, op.value);
  return error_.ok() ? OpResult::kDone : OpResult::kFailed;
}

OpResult Engine::multicast(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  Call& call = *cur_.call;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff) || !localSource(op)) return OpResult::kFailed;
  if (op.numRanks == 0) return fail("multicast has no target ranks");
  if (op.dst.rank != core::kSelf) return fail("a multicast dst names no rank (the targets are `ranks`)");
  std::byte* src = nullptr;
  if (!locateLocal(call, "src", Addr{core::kSelf, op.src.buf, 0}, srcOff, g.bytes, false, src)) {
    return OpResult::kFailed;
  }
  if (op.sem >= 0 && !checkSem(call, op.sem)) return OpResult::kFailed;
  const std::int32_t* targets = v.ranks;
  for (std::uint32_t i = 0; i < op.numRanks; ++i) {
    if (!checkPeer(targets[i], "target")) return OpResult::kFailed;
    if (targets[i] == me()) continue;
    const OpResult r = reach(*cur_.l, targets[i]);
    if (r != OpResult::kDone) return r;
    if (!checkRemote(call, "dst", targets[i], op.dst.buf, dstOff, g.bytes)) return OpResult::kFailed;
  }
  for (std::uint32_t i = 0; i < op.numRanks; ++i) {
    const std::int32_t t = targets[i];
    if (t == me()) {
      if (putToSelf(op, dstOff, src, g.bytes) != OpResult::kDone) return OpResult::kFailed;
      continue;
    }
    error_ = t_->put(cur_.lane, cur_.l->pc, t, op.dst.buf, dstOff, src, g.bytes, op.sem, op.value);
    if (!error_.ok()) return OpResult::kFailed;
  }
  return OpResult::kDone;
}

OpResult Engine::get(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  Call& call = *cur_.call;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff) || !checkPeer(op.peer, "peer")) return OpResult::kFailed;
  if (op.src.rank != core::kSelf && op.src.rank != op.peer) {
    return fail("src names rank " + std::to_string(op.src.rank) + " but peer is " + std::to_string(op.peer));
  }
  if (op.dst.rank != core::kSelf && op.dst.rank != me()) {
    return fail("dst names rank " + std::to_string(op.dst.rank) + ", but the destination of a get is local");
  }
  std::byte* dst = nullptr;
  if (!locateLocal(call, "dst", Addr{core::kSelf, op.dst.buf, 0}, dstOff, g.bytes, true, dst)) {
    return OpResult::kFailed;
  }
  if (op.peer == me()) {
    std::byte* src = nullptr;
    if (!locateLocal(call, "src", Addr{core::kSelf, op.src.buf, 0}, srcOff, g.bytes, false, src)) {
      return OpResult::kFailed;
    }
    copyBytes(dst, src, g.bytes);
    return OpResult::kDone;
  }
  const OpResult r = reach(*cur_.l, op.peer);
  if (r != OpResult::kDone) return r;
  if (!checkRemote(call, "src", op.peer, op.src.buf, srcOff, g.bytes)) return OpResult::kFailed;
  error_ = t_->get(cur_.lane, cur_.l->pc, op.peer, op.src.buf, srcOff, dst, g.bytes);
  return error_.ok() ? OpResult::kDone : OpResult::kFailed;
}

OpResult Engine::signal(const core::FlatOpView& v, const core::OpGeometry&) {
  const core::FlatOp& op = *v.rec;
  if (!checkPeer(op.peer, "peer") || !checkSem(*cur_.call, op.sem)) return OpResult::kFailed;
  if (op.peer == me()) {
    signalLocal(op.sem, op.value);
    return OpResult::kDone;
  }
  const OpResult r = reach(*cur_.l, op.peer);
  if (r != OpResult::kDone) return r;
  error_ = t_->signal(cur_.lane, cur_.l->pc, op.peer, op.sem, op.value);
  return error_.ok() ? OpResult::kDone : OpResult::kFailed;
}

OpResult Engine::wait(const core::FlatOpView& v, const core::OpGeometry&) {
  const core::FlatOp& op = *v.rec;
  if (op.sem < 0 || op.sem >= numSems_) {
    return fail("semaphore " + std::to_string(op.sem) + " is out of range (numSemaphores " + std::to_string(numSems_) +
                ")");
  }
  const std::uint64_t value = extraSems_ == nullptr ? sems_[op.sem].load(std::memory_order_acquire) : semValue(op.sem);
  return core::waitSatisfied(value, semBase_[static_cast<std::size_t>(op.sem)], op.value) ? OpResult::kDone
                                                                                          : OpResult::kBlocked;
}

OpResult Engine::reduce(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  Call& call = *cur_.call;
  const std::uint64_t dstOff = op.dst.offset + g.dstShift;
  if (op.numSrcs == 0) return fail("reduce has no sources");
  if (!checkElements(op, g.bytes)) return OpResult::kFailed;
  std::byte* dst = nullptr;
  if (!locateLocal(call, "dst", op.dst, dstOff, g.bytes, true, dst)) return OpResult::kFailed;
  reduceSrcs_.clear();
  for (std::uint32_t i = 0; i < op.numSrcs; ++i) {
    const std::string role = "srcs[" + std::to_string(i) + "]";
    std::byte* p = nullptr;
    if (!locateLocal(call, role.c_str(), v.srcs[i], v.srcs[i].offset + g.srcShift, g.bytes, false, p)) {
      return OpResult::kFailed;
    }
    if (p != dst && overlaps(p, dst, g.bytes)) return fail(role + " and dst overlap partially");
    reduceSrcs_.push_back(p);
  }
  const std::size_t count = g.bytes / core::dataTypeSize(op.dtype);
  if (count > 0) {
    core::reduceInto(dst, reduceSrcs_.data(), static_cast<int>(reduceSrcs_.size()), count, op.dtype, op.redop,
                     op.divisor);
  }
  return OpResult::kDone;
}

OpResult Engine::copy(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff)) return OpResult::kFailed;
  std::byte* src = nullptr;
  std::byte* dst = nullptr;
  if (!locateLocal(*cur_.call, "src", op.src, srcOff, g.bytes, false, src) ||
      !locateLocal(*cur_.call, "dst", op.dst, dstOff, g.bytes, true, dst)) {
    return OpResult::kFailed;
  }
  copyBytes(dst, src, g.bytes);
  return OpResult::kDone;
}

OpResult Engine::putReduce(const core::FlatOpView& v, const core::OpGeometry& g) {
  const core::FlatOp& op = *v.rec;
  Call& call = *cur_.call;
  std::uint64_t srcOff = 0;
  std::uint64_t dstOff = 0;
  if (!offsets(op, g, srcOff, dstOff)) return OpResult::kFailed;
  if (!checkElements(op, g.bytes) || !localSource(op) || !checkPeer(op.peer, "peer")) return OpResult::kFailed;
  if (op.dst.rank != core::kSelf && op.dst.rank != op.peer) {
    return fail("dst names rank " + std::to_string(op.dst.rank) + " but peer is " + std::to_string(op.peer));
  }
  if (op.sem >= 0 && !checkSem(call, op.sem)) return OpResult::kFailed;
  std::byte* src = nullptr;
  if (!locateLocal(call, "src", Addr{core::kSelf, op.src.buf, 0}, srcOff, g.bytes, false, src)) {
    return OpResult::kFailed;
  }
  const std::size_t count = g.bytes / core::dataTypeSize(op.dtype);
  if (op.peer == me()) {
    std::byte* dst = nullptr;
    if (!locateLocal(call, "dst", Addr{core::kSelf, op.dst.buf, 0}, dstOff, g.bytes, true, dst)) {
      return OpResult::kFailed;
    }
    if (dst != src && overlaps(dst, src, g.bytes)) return fail("src and dst overlap partially");
    const void* srcs[2] = {dst, src};
    if (count > 0) core::reduceInto(dst, srcs, 2, count, op.dtype, op.redop, op.divisor);
    if (op.sem >= 0) signalLocal(op.sem, op.value);
    return OpResult::kDone;
  }
  return putReduceRemote(op, g.bytes, dstOff, src, count);
}

/// No network here reduces at the target, so: read the target bytes, reduce, write them back. Two
/// put_reduces to the same bytes must be ordered by the Program anyway (the validator calls an
/// unordered pair a race), so the read-modify-write needs no lock.
OpResult Engine::putReduceRemote(const core::FlatOp& op, std::uint64_t bytes, std::uint64_t dstOff,
                                 const std::byte* src, std::size_t count) {
  LaneRt& l = *cur_.l;
  const int lane = cur_.lane;
  bool flushed = false;
  if (l.prStage == 0) {
    if (l.prPending) {
      error_ = t_->flushLane(lane, flushed);
      if (!error_.ok()) return OpResult::kFailed;
      if (!flushed) return OpResult::kBlocked;
      l.prPending = false;
    }
    const OpResult r = reach(l, op.peer);
    if (r != OpResult::kDone) return r;
    if (!checkRemote(*cur_.call, "dst", op.peer, op.dst.buf, dstOff, bytes)) return OpResult::kFailed;
    l.prTemp.resize(bytes);
    error_ = t_->get(lane, l.pc, op.peer, op.dst.buf, dstOff, l.prTemp.data(), bytes);
    if (!error_.ok()) return OpResult::kFailed;
    l.prStage = 1;
  }
  if (l.prStage != 1) return fail("internal: bad put_reduce stage", ErrorCode::kInternal);
  error_ = t_->flushLane(lane, flushed);
  if (!error_.ok()) return OpResult::kFailed;
  if (!flushed) return OpResult::kBlocked;
  const void* srcs[2] = {l.prTemp.data(), src};
  if (count > 0) core::reduceInto(l.prTemp.data(), srcs, 2, count, op.dtype, op.redop, op.divisor);
  error_ = t_->put(lane, l.pc, op.peer, op.dst.buf, dstOff, l.prTemp.data(), bytes, op.sem, op.value);
  l.prStage = 0;
  l.prPending = true;
  return error_.ok() ? OpResult::kDone : OpResult::kFailed;
}

OpResult Engine::flush(const core::FlatOpView&, const core::OpGeometry&) {
  bool flushed = false;
  error_ = t_->flushLane(cur_.lane, flushed);
  if (!error_.ok()) return OpResult::kFailed;
  if (flushed) cur_.l->prPending = false;
  return flushed ? OpResult::kDone : OpResult::kBlocked;
}

class RemoteExecutor final : public core::Executor {
 public:
  explicit RemoteExecutor(std::shared_ptr<Engine> engine) : engine_(std::move(engine)) {}
  ~RemoteExecutor() override { engine_->retire(); }
  RemoteExecutor(const RemoteExecutor&) = delete;
  RemoteExecutor& operator=(const RemoteExecutor&) = delete;

  [[nodiscard]] std::string_view backend() const override { return engine_->transport().backend(); }
  [[nodiscard]] int rank() const override { return engine_->transport().rank(); }
  [[nodiscard]] int size() const override { return engine_->transport().size(); }
  [[nodiscard]] std::vector<int> nodeOfRank() const override { return engine_->nodeOfRank(); }
  [[nodiscard]] std::vector<std::vector<std::int32_t>> loadStoreDomains() const override {
    // Each process addresses only its own memory.
    std::vector<std::vector<std::int32_t>> out;
    for (std::int32_t r = 0; r < size(); ++r) out.push_back({r});
    return out;
  }
  Status start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& buffers,
               std::unique_ptr<core::CallHandle>& handle) override {
    std::shared_ptr<Call> call;
    COPRO_RETURN_IF_ERROR(engine_->start(std::move(program), buffers, call));
    handle = calls::makeCallHandle([engine = engine_, call = std::move(call)](bool block, bool& done) {
      return engine->drive(call, block, done);
    });
    return {};
  }
  std::unique_ptr<core::Executor> split(int color, int key) override {
    std::vector<int> members;
    std::unique_ptr<RemoteTransport> t;
    {
      std::lock_guard<std::mutex> lock(engine_->mutex());
      t = engine_->transport().split(color, key, members);
    }
    if (!t) return nullptr;
    std::vector<int> nodes;
    for (int m : members) nodes.push_back(engine_->nodeOfRank()[static_cast<std::size_t>(m)]);
    return makeRemoteExecutor(std::move(t), engine_->config(), std::move(nodes));
  }
  Status registerBuffer(void* ptr, std::size_t bytes) override {
    std::lock_guard<std::mutex> lock(engine_->mutex());
    return engine_->transport().registerBuffer(ptr, bytes);
  }
  Status deregisterBuffer(void* ptr) override {
    std::lock_guard<std::mutex> lock(engine_->mutex());
    return engine_->transport().deregisterBuffer(ptr);
  }
  void* allocate(std::size_t bytes) override {
    std::lock_guard<std::mutex> lock(engine_->mutex());
    return engine_->transport().allocate(bytes);
  }
  void deallocate(void* ptr) override {
    std::lock_guard<std::mutex> lock(engine_->mutex());
    engine_->transport().deallocate(ptr);
  }
  void abort() override { engine_->abort(); }
  [[nodiscard]] const core::Config& config() const override { return engine_->config(); }

 private:
  std::shared_ptr<Engine> engine_;
};

}  // namespace

std::unique_ptr<core::Executor> makeRemoteExecutor(std::unique_ptr<RemoteTransport> transport,
                                                   const core::ExecutorOptions& options) {
  std::vector<int> nodes = options.nodeOfRank;
  if (nodes.empty()) nodes = nodeIdsFromHostnames(*options.bootstrap);
  return makeRemoteExecutor(std::move(transport), options.config, std::move(nodes));
}

std::unique_ptr<core::Executor> makeRemoteExecutor(std::unique_ptr<RemoteTransport> transport, core::Config config,
                                                   std::vector<int> nodeOfRank) {
  if (!nodeOfRank.empty() && static_cast<int>(nodeOfRank.size()) != transport->size()) {
    throw core::Error(ErrorCode::kInvalidArgument, "nodeOfRank has " + std::to_string(nodeOfRank.size()) +
                                                       " entries for " + std::to_string(transport->size()) + " ranks");
  }
  auto engine = std::make_shared<Engine>(std::move(transport), std::move(config), std::move(nodeOfRank));
  return std::make_unique<RemoteExecutor>(std::move(engine));
}

}  // namespace copro::transport::remote
