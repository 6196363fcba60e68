/// The inproc world: starting, entering, completing and failing calls; abort; split; reports.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "call_reports.hpp"
#include "copro/core/log.hpp"
#include "inproc_world.hpp"
#include "ll_mailbox.hpp"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace copro::transport::inproc {

using calls::formatSeconds;
using calls::rankList;

using core::ErrorCode;
using core::Status;

// ---------------------------------------------------------------------------------------------------------
// Spinning and sleeping

void cpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void spinPause() noexcept {
  // Yielding costs little when no other thread is runnable and gives the core away when one is, so a
  // spinning rank on a 2-core machine does not delay the rank that will signal it.
  std::this_thread::yield();
}

namespace {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "futex word must be a plain uint32");

void futexWait(std::atomic<std::uint32_t>* word, std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept {
#ifdef __linux__
  const auto ns = std::max<std::int64_t>(timeout.count(), 1000);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  // EINTR, EAGAIN (the word changed) and ETIMEDOUT all mean "look again".
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
#else
  if (word->load() == seen)
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(timeout, std::chrono::microseconds(50)));
#endif
}

void futexWakeAll(std::atomic<std::uint32_t>* word) noexcept {
#ifdef __linux__
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

}  // namespace

void Notifier::notify() noexcept {
  if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
  word_.fetch_add(1, std::memory_order_seq_cst);
  futexWakeAll(&word_);
}

std::uint32_t Notifier::prepareSleep() noexcept {
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  return word_.load(std::memory_order_seq_cst);
}

void Notifier::sleep(std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept {
  futexWait(&word_, seen, timeout);
}

void Notifier::finishSleep() noexcept {
  sleepers_.fetch_sub(1, std::memory_order_seq_cst);
}

// ---------------------------------------------------------------------------------------------------------
// Memory

AlignedBlock allocateAligned(std::size_t bytes) {
  // Large blocks are page aligned (so the kernel can back them with whole pages), small ones cache-line
  // aligned; aligned_alloc wants a size that is a multiple of the alignment.
  const std::size_t align = bytes >= (std::size_t{1} << 20) ? 4096 : 64;
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) {
    throw core::Error(ErrorCode::kOutOfMemory, "inproc: cannot allocate " + std::to_string(bytes) + " bytes");
  }
  return AlignedBlock{static_cast<std::byte*>(p), bytes};
}

void freeAligned(AlignedBlock& block) noexcept {
  std::free(block.data);
  block = AlignedBlock{};
}

RankState::~RankState() {
  freeAligned(scratch);
}

// ---------------------------------------------------------------------------------------------------------
// World

World::World(int nranks, core::Config config, std::vector<int> nodeOfRank)
    : config_(std::move(config)),
      nodeOfRank_(std::move(nodeOfRank)),
      proxyDefault_(calls::deviceLanesRunAsProxy(config_)),
      wait_(calls::WaitPolicy::resolve(config_, nranks)) {
  ranks_.reserve(static_cast<std::size_t>(nranks));
  for (int r = 0; r < nranks; ++r) ranks_.push_back(std::make_unique<RankState>(*this, r));
  llMailboxBytes_ = lanes::llMailboxBytes(nranks);
  if (llMailboxBytes_ > 0) {
    void* m = mmap(nullptr, llMailboxBytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      llMailboxBytes_ = 0;  // LL ops then run as simple ones
    } else {
      llMailbox_ = static_cast<std::byte*>(m);
    }
  }
  // Keep the old behaviour of COPRO_INITIATION=proxy: its threads exist from the start.
  if (proxyDefault_) ensurePool(0);
}

World::~World() {
  // The progress threads run lanes of these ranks: stop them first.
  for (auto& p : pools_) p.reset();
  if (llMailbox_ != nullptr) munmap(llMailbox_, llMailboxBytes_);
}

ProgressPool& World::ensurePool(int which) {
  ProgressPool* p = poolPtr_[which].load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  std::lock_guard<std::mutex> lock(poolMutex_);
  if (!pools_[which]) {
    int threads = config_.threads;
    if (threads <= 0) threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    const core::Initiation mode = which == 0 ? core::Initiation::kProxy : core::Initiation::kOffload;
    pools_[which] = std::make_unique<ProgressPool>(*this, threads, mode);
    COPRO_LOG(Info, Transport,
              "inproc: " << threads << " progress thread(s) for " << core::initiationName(mode) << " lanes");
    poolPtr_[which].store(pools_[which].get(), std::memory_order_release);
  }
  return *pools_[which];
}

void World::notifyRank(RankState& r) noexcept {
  // The rank's own thread may run (or wait for) its device lanes, the pools its other lanes.
  r.notifier.notify();
  for (int k = 0; k < 2; ++k) {
    if (ProgressPool* p = pool(k)) p->notifier().notify();
  }
}

void World::notifyAll() noexcept {
  for (int k = 0; k < 2; ++k) {
    if (ProgressPool* p = pool(k)) p->notifier().notify();
  }
  for (const auto& r : ranks_) r->notifier.notify();
}

std::shared_ptr<Call> World::frontCall(RankState& rs) {
  std::lock_guard<std::mutex> lock(rs.mutex);
  return rs.queue.empty() ? nullptr : rs.queue.front();
}

Status World::start(int r, std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
                    std::shared_ptr<Call>& out) {
  RankState& rs = rank(r);
  const std::string who = "inproc rank " + std::to_string(r) + ": ";
  auto call = std::make_shared<Call>();
  COPRO_RETURN_IF_ERROR(calls::openCall(*call, std::move(program), b, r, size(), rs.advanceCache, &rs.mutex, who));
  call->rank = &rs;
  calls::initLanes(*call, proxyDefault_);
  COPRO_RETURN_IF_ERROR(calls::startProgressThreads(*call, who, [this](int k) { ensurePool(k); }));

  std::lock_guard<std::mutex> lock(rs.mutex);
  call->seq = rs.nextSeq;
  COPRO_RETURN_IF_ERROR(calls::refusal(*call, rs.aborted.load(std::memory_order_acquire), rs.broken, rs.brokenStatus));
  ++rs.nextSeq;
  rs.queue.push_back(call);
  if (rs.queue.size() == 1) enterQueuedLocked(rs);
  out = std::move(call);
  return {};
}

void World::enterQueuedLocked(RankState& rs) {
  while (!rs.queue.empty()) {
    std::shared_ptr<Call> front = rs.queue.front();
    if (front->phase.load(std::memory_order_acquire) != Phase::kQueued) return;
    enterLocked(rs, front);
    if (front->lanesLeft.load(std::memory_order_acquire) > 0) return;
    // No ops on this rank: the call is complete as soon as it is entered.
    front->advanceEpochs(rs.semBase);
    front->status = Status();
    front->phase.store(Phase::kDone, std::memory_order_seq_cst);
    rs.queue.pop_front();
  }
}

void World::enterLocked(RankState& rs, const std::shared_ptr<Call>& call) {
  const core::ProgramHeader& h = *call->header;
  const core::CallBuffers& b = call->buffers;
  const std::uint64_t seq = call->seq;
  rs.state.store(2 * seq - 1, std::memory_order_seq_cst);
  // Only a Program that lets this rank finish before a peer's access is done can leave a peer inside;
  // wait it out rather than change the buffers under it.
  while (rs.accessors.load(std::memory_order_seq_cst) != 0) cpuRelax();

  if (rs.scratch.bytes < h.scratchBytes) {
    freeAligned(rs.scratch);
    rs.scratch = allocateAligned(h.scratchBytes);
    // Zeroed so a Program that reads scratch before writing it sees the same bytes on every run.
    std::memset(rs.scratch.data, 0, h.scratchBytes);
  }
  if (rs.semCapacity < h.numSemaphores) {
    // Every signal of the previous calls has been consumed (value == base), so starting the larger
    // array at zero keeps that invariant.
    rs.semStorage = std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(h.numSemaphores));
    for (std::int32_t s = 0; s < h.numSemaphores; ++s) rs.semStorage[static_cast<std::size_t>(s)].store(0);
    rs.semCapacity = h.numSemaphores;
    rs.semBase.assign(static_cast<std::size_t>(h.numSemaphores), 0);
  }
  rs.sems = rs.semStorage.get();
  rs.numSems = h.numSemaphores;
  rs.layoutWords.assign(h.layoutWords, 0);
  std::copy(b.layoutInit.begin(), b.layoutInit.end(), rs.layoutWords.begin());
  rs.layout = rs.layoutWords.data();

  calls::userRegions(h, b, rs.rank(), rs.regions);
  rs.regions[static_cast<std::size_t>(core::BufferId::kScratch)] = Region{rs.scratch.data, h.scratchBytes, true};
  rs.regions[static_cast<std::size_t>(core::BufferId::kLayout)] =
      Region{reinterpret_cast<std::byte*>(rs.layout), std::uint64_t{h.layoutWords} * sizeof(std::uint64_t), true};
  rs.header = &h;

  call->phase.store(Phase::kRunning, std::memory_order_seq_cst);
  rs.state.store(2 * seq, std::memory_order_seq_cst);
  COPRO_LOG(Trace, Transport, call->label() << ": entered");
  const bool live = call->lanesLeft.load(std::memory_order_acquire) > 0;
  for (int k = 0; k < 2; ++k) {
    ProgressPool* p = pool(k);
    if (p == nullptr) continue;
    if (live && call->pooled[k]) p->activate(call);
    p->notifier().notify();  // peers' lanes may wait for this entry
  }
  if (sleepingRanks.load(std::memory_order_seq_cst) > 0) {
    for (const auto& r : ranks_) r->notifier.notify();
  }
}

void World::completeCall(RankState& rs, Call& call) {
  {
    std::lock_guard<std::mutex> lock(rs.mutex);
    if (call.phase.load(std::memory_order_acquire) != Phase::kRunning) return;
    call.advanceEpochs(rs.semBase);
    call.status = Status();
    call.phase.store(Phase::kDone, std::memory_order_seq_cst);
    for (int k = 0; k < 2; ++k) {
      if (call.pooled[k]) pool(k)->deactivate(&call);
    }
    if (!rs.queue.empty() && rs.queue.front().get() == &call) rs.queue.pop_front();
    enterQueuedLocked(rs);
  }
  rs.notifier.notify();
}

bool World::failCalls(RankState& rs, const Call* which, const std::function<Status(const Call&)>& statusOf,
                      ErrorCode code, const std::string& reason, bool poisonWorld) {
  Status first;
  {
    std::lock_guard<std::mutex> lock(rs.mutex);
    if (which != nullptr) {
      if (rs.queue.empty() || rs.queue.front().get() != which ||
          which->phase.load(std::memory_order_acquire) != Phase::kRunning) {
        return false;
      }
    }
    const Status whichStatus = which != nullptr ? statusOf(*which) : Status();
    first = calls::failQueued(rs.queue, which, whichStatus, code, reason, rs.rank(), Phase::kFailed, [this](Call& c) {
      for (int k = 0; k < 2; ++k) {
        if (c.pooled[k]) pool(k)->deactivate(&c);
      }
    });
    if (!rs.broken) {
      rs.broken = true;
      rs.brokenStatus = first;
    }
    rs.state.store(RankState::kDead, std::memory_order_seq_cst);
  }
  COPRO_LOG(Warn, Transport, first.message());
  if (poisonWorld) poison(rs.rank(), first.message());
  notifyAll();
  return true;
}

void World::poison(int rank, const std::string& reason) {
  std::lock_guard<std::mutex> lock(poisonMutex_);
  if (poisonRank_.load(std::memory_order_acquire) >= 0) return;
  poisonReason_ = reason;
  poisonRank_.store(rank, std::memory_order_seq_cst);
}

std::string World::poisonReason() const {
  std::lock_guard<std::mutex> lock(poisonMutex_);
  return poisonReason_;
}

void World::abort(int r) {
  RankState& rs = rank(r);
  rs.aborted.store(true, std::memory_order_seq_cst);
  failCalls(rs, nullptr, nullptr, ErrorCode::kAborted,
            "aborted (Executor::abort() was called on rank " + std::to_string(r) + ")", true);
}

void World::retire(int r) {
  RankState& rs = rank(r);
  bool inFlight = false;
  {
    std::lock_guard<std::mutex> lock(rs.mutex);
    inFlight = !rs.queue.empty();
    if (!inFlight) {
      // The usual teardown: nothing to fail and nobody to alarm; peers must not reach this rank again.
      if (!rs.broken) {
        rs.broken = true;
        rs.brokenStatus = Status(ErrorCode::kAborted, "rank " + std::to_string(r) + ": the executor was destroyed");
      }
      rs.state.store(RankState::kDead, std::memory_order_seq_cst);
    }
  }
  if (inFlight) {
    failCalls(rs, nullptr, nullptr, ErrorCode::kAborted,
              "the executor of rank " + std::to_string(r) + " was destroyed with calls in flight", true);
  }
  drain(rs);
}

void World::drain(RankState& rs) noexcept {
  while (rs.runners.load(std::memory_order_seq_cst) != 0 || rs.accessors.load(std::memory_order_seq_cst) != 0) {
    std::this_thread::yield();
  }
}

std::string World::stallReport(const Call& call) const {
  const RankState& rs = *call.rank;
  return calls::stallReport(
      call, size(), rs.rank(), RankState::kDead,
      [this](int r) { return rank(r).state.load(std::memory_order_acquire); },
      [&rs](std::int32_t sem, std::uint64_t& out) {
        if (sem < 0 || sem >= rs.numSems) return false;
        out = rs.sems[sem].load(std::memory_order_acquire) - rs.semBase[static_cast<std::size_t>(sem)];
        return true;
      });
}

bool World::checkStall(RankState& rs, const std::shared_ptr<Call>& front, double stalledSec, double poisonGraceSec) {
  const int pr = poisonedRank();
  if (pr >= 0 && pr != rs.rank() && stalledSec >= poisonGraceSec) {
    const std::string reason = poisonReason();
    return failCalls(
        rs, front.get(),
        [&](const Call& c) {
          return Status(ErrorCode::kRemoteError,
                        c.label() + ": blocked while rank " + std::to_string(pr) + " is gone: " + reason);
        },
        ErrorCode::kRemoteError, "not run: rank " + std::to_string(pr) + " is gone", false);
  }
  const double timeout = config_.timeoutSec;
  if (timeout > 0 && stalledSec >= timeout) {
    return failCalls(
        rs, front.get(), [&](const Call& c) { return calls::timeoutStatus(c.label(), timeout, stallReport(c)); },
        ErrorCode::kTimeout, "not run: an earlier call timed out", false);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Split

std::unique_ptr<core::Executor> World::split(int r, int color, int key) {
  RankState& rs = rank(r);
  const std::uint64_t round = ++rs.splitCount;
  const int n = size();
  std::unique_lock<std::mutex> lock(splitMutex_);
  SplitRound& sr = splitRounds_[round];
  if (sr.arrived.empty()) {
    sr.color.assign(static_cast<std::size_t>(n), -1);
    sr.key.assign(static_cast<std::size_t>(n), 0);
    sr.arrived.assign(static_cast<std::size_t>(n), false);
    sr.results.resize(static_cast<std::size_t>(n));
  }
  const auto ri = static_cast<std::size_t>(r);
  sr.arrived[ri] = true;
  sr.color[ri] = color;
  sr.key[ri] = key;
  if (++sr.count == n) {
    // Last to arrive builds every group: ranks ordered by (key, old rank).
    std::map<int, std::vector<std::pair<int, int>>> groups;
    for (int q = 0; q < n; ++q) {
      const auto qi = static_cast<std::size_t>(q);
      if (sr.color[qi] >= 0) groups[sr.color[qi]].emplace_back(sr.key[qi], q);
    }
    for (auto& [c, members] : groups) {
      std::sort(members.begin(), members.end());
      std::vector<int> nodes;
      nodes.reserve(members.size());
      for (const auto& m : members) nodes.push_back(nodeOfRank_[static_cast<std::size_t>(m.second)]);
      auto world = std::make_shared<World>(static_cast<int>(members.size()), config_, std::move(nodes));
      for (std::size_t i = 0; i < members.size(); ++i) {
        sr.results[static_cast<std::size_t>(members[i].second)] = makeExecutor(world, static_cast<int>(i));
      }
    }
    sr.ready = true;
    splitCv_.notify_all();
  } else {
    const auto begin = Clock::now();
    while (!sr.ready) {
      splitCv_.wait_for(lock, std::chrono::milliseconds(20));
      if (sr.ready) break;
      if (rs.aborted.load(std::memory_order_acquire)) {
        throw core::Error(ErrorCode::kAborted, "inproc rank " + std::to_string(r) + ": split aborted");
      }
      const double waited = std::chrono::duration<double>(Clock::now() - begin).count();
      if (config_.timeoutSec > 0 && waited >= config_.timeoutSec) {
        std::vector<int> missing;
        for (int q = 0; q < n; ++q) {
          if (!sr.arrived[static_cast<std::size_t>(q)]) missing.push_back(q);
        }
        throw core::Error(ErrorCode::kTimeout, "inproc rank " + std::to_string(r) + ": split " + std::to_string(round) +
                                                   " timed out after " + formatSeconds(config_.timeoutSec) +
                                                   " s: " + rankList(missing) + " never called split");
      }
    }
  }
  std::unique_ptr<core::Executor> result = std::move(sr.results[ri]);
  if (++sr.taken == n) splitRounds_.erase(round);
  return result;
}

}  // namespace copro::transport::inproc
