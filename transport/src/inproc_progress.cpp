/// Who runs the lanes, per lane (docs/initiation.md): the rank's own thread inside wait()/test() (device
/// lanes) or a pool of progress threads shared by the world (one pool for proxy lanes, one for offload
/// lanes). A call may mix them. All spin briefly, then sleep on a futex.
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "call_driver.hpp"
#include "inproc_world.hpp"

namespace copro::transport::inproc {

using core::ErrorCode;
using core::Status;

namespace {

/// How long a waiter on pooled lanes lets a blocked call sit before failing it because a peer is gone (the
/// progress threads may simply not have reached it yet).
constexpr double kPoisonGraceSec = 0.01;
using calls::secondsSince;
using calls::sleepLength;

}  // namespace

bool World::runLanesOnce(RankState& rs, const std::shared_ptr<Call>& call) {
  bool progressed = false;
  for (int i = 0; i < call->numLanes; ++i) {
    const LaneState& l = call->lanes[static_cast<std::size_t>(i)];
    if (l.mode != core::Initiation::kDevice || l.done.load(std::memory_order_acquire)) continue;
    Status err;
    const LaneRun run = runLane(*this, rs, *call, i, err);
    progressed = progressed || run.progressed;
    if (run.finishedNow && call->lanesLeft.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      completeCall(rs, *call);
      return true;
    }
    if (run.end == LaneEnd::kFailed) {
      // A peer that is gone already told the world; do not blame this rank for it.
      failCalls(
          rs, call.get(), [&](const Call&) { return err; }, err.code(), "not run: an earlier call failed",
          err.code() != ErrorCode::kRemoteError);
      return true;
    }
    if (run.end == LaneEnd::kStopped) return true;
  }
  return progressed;
}

Status World::progress(int r, const std::shared_ptr<Call>& target, bool block, bool& done) {
  RankState& rs = rank(r);
  Status st = drive(rs, target, block, done);
  if (done && target->phase.load(std::memory_order_acquire) == Phase::kFailed) {
    // The user may free the buffers once we return: nobody may still be touching them.
    drain(rs);
  }
  return st;
}

Status World::drive(RankState& rs, const std::shared_ptr<Call>& target, bool block, bool& done) {
  std::unique_lock<std::mutex> driving(rs.driveMutex);
  /// The rank's side of calls::driveCall: its futex word, and the pools' grace when a peer is gone.
  struct Host {
    World& world;
    RankState& rs;
    std::shared_ptr<Call> frontCall() { return world.frontCall(rs); }
    bool runDeviceLanes(const std::shared_ptr<Call>& call) { return world.runLanesOnce(rs, call); }
    bool checkStall(const std::shared_ptr<Call>& front, double stalled) {
      return world.checkStall(rs, front, stalled, front->anyPooled() ? kPoisonGraceSec : 0.0);
    }
    std::uint32_t armSleep() {
      const std::uint32_t seen = rs.notifier.prepareSleep();
      world.sleepingRanks.fetch_add(1, std::memory_order_seq_cst);
      return seen;
    }
    void disarmSleep() {
      rs.notifier.finishSleep();
      world.sleepingRanks.fetch_sub(1, std::memory_order_seq_cst);
    }
    void sleep(std::uint32_t seen, const Call& front, double stalled) {
      auto length = sleepLength(world.config().timeoutSec, stalled);
      if (front.anyPooled() && world.poisonedRank() >= 0) {
        // A peer is gone: look again as soon as the grace period is over.
        length = std::min(length, sleepLength(kPoisonGraceSec, stalled));
      }
      rs.notifier.sleep(seen, length);
    }
    [[nodiscard]] double spinSeconds() const { return world.spinSeconds(); }
    void spinPause() const { world.waitPolicy().pause(); }
  };
  Host host{*this, rs};
  return calls::driveCall(host, target, block, done);
}

// ---------------------------------------------------------------------------------------------------------
// Progress threads

ProgressPool::ProgressPool(World& world, int threads, core::Initiation mode) : world_(world), mode_(mode) {
  threads_.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { threadMain(i); });
}

ProgressPool::~ProgressPool() {
  stop_.store(true, std::memory_order_seq_cst);
  notifier_.notify();
  for (std::thread& t : threads_) t.join();
}

void ProgressPool::activate(std::shared_ptr<Call> call) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    active_.push_back(std::move(call));
    version_.fetch_add(1, std::memory_order_seq_cst);
  }
  notifier_.notify();
}

void ProgressPool::deactivate(const Call* call) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find_if(active_.begin(), active_.end(), [&](const auto& c) { return c.get() == call; });
  if (it == active_.end()) return;
  active_.erase(it);
  version_.fetch_add(1, std::memory_order_seq_cst);
}

bool ProgressPool::scan(std::vector<std::shared_ptr<Call>>& local, std::uint64_t& seenVersion, int index) {
  if (version_.load(std::memory_order_acquire) != seenVersion) {
    std::lock_guard<std::mutex> lock(mutex_);
    local = active_;
    seenVersion = version_.load(std::memory_order_relaxed);
  }
  bool progressed = false;
  const std::size_t n = local.size();
  for (std::size_t k = 0; k < n; ++k) {
    // Threads start at different calls and lanes so they rarely contend for the same lane.
    Call& c = *local[(k + static_cast<std::size_t>(index)) % n];
    if (c.phase.load(std::memory_order_acquire) != Phase::kRunning) continue;
    RankState& rs = *c.rank;
    const auto lanes = static_cast<std::size_t>(c.numLanes);
    for (std::size_t j = 0; j < lanes; ++j) {
      const std::size_t li = (j + static_cast<std::size_t>(index)) % lanes;
      LaneState& l = c.lanes[li];
      if (l.mode != mode_ || l.done.load(std::memory_order_acquire)) continue;
      if (l.claimed.exchange(true, std::memory_order_acquire)) continue;
      rs.runners.fetch_add(1, std::memory_order_seq_cst);
      Status err;
      LaneRun run;
      if (c.phase.load(std::memory_order_seq_cst) == Phase::kRunning) {
        run = runLane(world_, rs, c, static_cast<int>(li), err);
      } else {
        run.end = LaneEnd::kStopped;
      }
      l.claimed.store(false, std::memory_order_release);
      progressed = progressed || run.progressed;
      if (run.finishedNow && c.lanesLeft.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        world_.completeCall(rs, c);
      } else if (run.end == LaneEnd::kFailed) {
        world_.failCalls(
            rs, &c, [&](const Call&) { return err; }, err.code(), "not run: an earlier call failed",
            err.code() != ErrorCode::kRemoteError);
      }
      rs.runners.fetch_sub(1, std::memory_order_seq_cst);
      if (c.phase.load(std::memory_order_acquire) != Phase::kRunning) break;
    }
  }
  return progressed;
}

void ProgressPool::threadMain(int index) {
  std::vector<std::shared_ptr<Call>> local;
  std::uint64_t seenVersion = ~std::uint64_t{0};
  auto idleSince = Clock::now();
  bool armed = false;
  std::uint32_t seen = 0;
  const double spin = world_.spinSeconds();
  while (!stop_.load(std::memory_order_acquire)) {
    if (scan(local, seenVersion, index)) {
      if (armed) {
        notifier_.finishSleep();
        armed = false;
      }
      idleSince = Clock::now();
      continue;
    }
    if (!armed && !local.empty() && secondsSince(idleSince, Clock::now()) < spin) {
      world_.waitPolicy().pause();
      continue;
    }
    if (!armed) {
      seen = notifier_.prepareSleep();
      armed = true;
      continue;  // scan once more before sleeping
    }
    notifier_.sleep(seen, std::chrono::milliseconds(100));
    notifier_.finishSleep();
    armed = false;
    idleSince = Clock::now();
  }
  if (armed) notifier_.finishSleep();
  local.clear();
}

}  // namespace copro::transport::inproc
