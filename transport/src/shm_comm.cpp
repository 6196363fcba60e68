/// The shm communicator of one process: creation (control segment, CMA probe), calls (start, entry,
/// completion, failure), liveness of peers, device/proxy progress, split and allocation.
#include <sched.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "call_driver.hpp"
#include "call_reports.hpp"
#include "copro/core/log.hpp"
#include "copro/transport/bootstrap_tcp.hpp"
#include "ll_mailbox.hpp"
#include "process_state.hpp"
#include "shm_internal.hpp"

// ThreadSanitizer builds (GCC's macro, clang's feature test) allocate every Call: see reusableCall().
#if defined(__SANITIZE_THREAD__)
#define COPRO_SHM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COPRO_SHM_TSAN 1
#endif
#endif

namespace copro::transport::shm {

using core::Error;
using core::ErrorCode;
using core::Status;

namespace {

constexpr std::uint64_t kCtlMagic = 0x314c5443'4f52504fULL;  // "OPROCTL1"
/// A stalled call checks whether its peers are alive this often.
constexpr double kLivenessPeriodSec = 0.1;

std::size_t roundUp(std::size_t v, std::size_t a) {
  return (v + a - 1) / a * a;
}

using calls::formatSeconds;
using calls::rankList;
using calls::secondsSince;
using calls::sleepLength;

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

void spinPause() noexcept {
  // Yield rather than burn: on an oversubscribed host the peer we wait for needs the core.
  std::this_thread::yield();
}

struct RankInfo {
  std::int32_t pid;
  std::int32_t ok;
  std::uint64_t startTime;
  std::uint64_t token;
  std::uint64_t probeAddr;
  std::uint64_t probeValue;
  cpu_set_t cpus;  ///< the process's affinity mask (the wait policy counts the cores of all ranks)
};

/// Cores in the union of the ranks' affinity masks: a launcher that pins each rank to its own core (mpirun
/// does for 2 ranks) gives each process one core, yet the ranks still fit the host's cores.
int coresOfRanks(const std::vector<RankInfo>& infos) {
  cpu_set_t all;
  CPU_ZERO(&all);
  for (const RankInfo& i : infos) CPU_OR(&all, &all, &i.cpus);
  return CPU_COUNT(&all);
}

Status gatherOk(core::Bootstrap& bs, bool ok, bool& all) {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(bs.size()));
  const std::uint8_t mine = ok ? 1 : 0;
  COPRO_RETURN_IF_ERROR(bs.allGather(&mine, v.data(), 1));
  all = std::all_of(v.begin(), v.end(), [](std::uint8_t x) { return x == 1; });
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Creation and teardown

ShmComm::ShmComm(std::shared_ptr<core::Bootstrap> bootstrap, core::Config config, std::vector<int> nodeOfRank)
    : bootstrap_(std::move(bootstrap)), config_(std::move(config)), nodeOfRank_(std::move(nodeOfRank)) {
  rank_ = bootstrap_->rank();
  size_ = bootstrap_->size();
  if (nodeOfRank_.empty()) nodeOfRank_.assign(static_cast<std::size_t>(size_), 0);
  proxyDefault_ = calls::deviceLanesRunAsProxy(config_);
  who_ = "shm rank " + std::to_string(rank_) + ": ";
  const std::string& me = who_;

  RankInfo mine{};
  mine.pid = static_cast<std::int32_t>(getpid());
  mine.startTime = processStartTime(getpid());
  std::uint64_t random[2] = {};
  randomBytes(random, sizeof(random));
  mine.token = random[0];
  probe_ = random[1] | 1;
  mine.probeAddr = reinterpret_cast<std::uint64_t>(&probe_);
  mine.probeValue = probe_;
  CPU_ZERO(&mine.cpus);
  if (sched_getaffinity(0, sizeof(mine.cpus), &mine.cpus) != 0) CPU_ZERO(&mine.cpus);
  std::vector<RankInfo> infos(static_cast<std::size_t>(size_));
  bootstrap_->allGather(&mine, infos.data(), sizeof(RankInfo)).throwIfError();
  prefix_ = "copro-" + std::to_string(infos[0].pid) + "-" + hex64(infos[0].token) + "-";
  wait_ = calls::WaitPolicy::resolve(config_, size_, coresOfRanks(infos));
  pids_.resize(static_cast<std::size_t>(size_));
  for (int r = 0; r < size_; ++r) pids_[static_cast<std::size_t>(r)] = infos[static_cast<std::size_t>(r)].pid;

  // The control segment: rank 0 creates it, everyone maps it, then it is unlinked at once, so it cannot
  // outlive the processes whatever happens to them.
  const std::string ctlName = prefix_ + "ctl";
  const std::size_t headerBytes = roundUp(sizeof(CtlHeader), 64);
  const std::size_t mailboxAt = roundUp(headerBytes + sizeof(RankCtl) * static_cast<std::size_t>(size_), 64);
  const std::size_t ctlBytes = mailboxAt + lanes::llMailboxBytes(size_);
  std::string why;
  if (rank_ == 0) {
    try {
      ctlMap_ = createSegment(ctlName, ctlBytes);
      auto* h = new (ctlMap_.base) CtlHeader{};
      h->magic = kCtlMagic;
      h->nranks = size_;
      h->poisonRank.store(-1);
      for (int r = 0; r < size_; ++r) new (ctlMap_.base + headerBytes + sizeof(RankCtl) * r) RankCtl{};
    } catch (const Error& e) {
      why = e.message();
    }
  }
  bool allOk = false;
  gatherOk(*bootstrap_, why.empty(), allOk).throwIfError();
  if (!allOk) {
    unmap(ctlMap_);
    if (rank_ == 0) unlinkSegment(ctlName);
    throw Error(ErrorCode::kSystemError,
                me + "rank 0 could not create the shared control segment" + (why.empty() ? std::string() : ": " + why));
  }
  if (rank_ != 0 && !openSegment(ctlName, ctlMap_)) why = "cannot map /" + ctlName + ": " + std::strerror(errno);
  if (why.empty() && ctlMap_.bytes < ctlBytes) why = "/" + ctlName + " is too small";
  if (why.empty()) {
    ctlHeader_ = reinterpret_cast<CtlHeader*>(ctlMap_.base);
    ranks_ = reinterpret_cast<RankCtl*>(ctlMap_.base + headerBytes);
    if (lanes::llMailboxBytes(size_) > 0) llMailbox_ = ctlMap_.base + mailboxAt;
    if (ctlHeader_->magic != kCtlMagic || ctlHeader_->nranks != size_) why = "/" + ctlName + " has a wrong header";
  }
  if (why.empty()) {
    RankCtl& c = ranks_[rank_];
    c.pid = mine.pid;
    c.startTime = mine.startTime;
    c.probeAddr = mine.probeAddr;
  }
  const Status gathered = gatherOk(*bootstrap_, why.empty(), allOk);
  if (rank_ == 0) unlinkSegment(ctlName);
  if (!gathered.ok() || !allOk) {
    unmap(ctlMap_);
    throw Error(ErrorCode::kSystemError, me + "mapping the shared control segment failed" +
                                             (why.empty() ? std::string(" on another rank") : ": " + why));
  }

  // Cross Memory Attach: read a word of the next rank's private memory. Any failure anywhere: stage.
  bool cmaOk = true;
  std::string cmaWhy;
  if (!config_.shmCma) {
    cmaOk = false;
    cmaWhy = "disabled by COPRO_SHM_CMA=0";
  } else if (size_ > 1) {
    const RankInfo& next = infos[static_cast<std::size_t>((rank_ + 1) % size_)];
    std::uint64_t v = 0;
    const int e = cmaRead(next.pid, &v, next.probeAddr, sizeof(v));
    if (e != 0 || v != next.probeValue) {
      cmaOk = false;
      cmaWhy = e != 0 ? std::string(std::strerror(e)) : "read a wrong value";
    }
  }
  gatherOk(*bootstrap_, cmaOk, cma_).throwIfError();
  if (!cma_) {
    COPRO_LOG(Warn, Transport,
              me << "Cross Memory Attach (process_vm_readv) is not available"
                 << (cmaWhy.empty() ? std::string(" on another rank") : " (" + cmaWhy + ")")
                 << ": user buffers are staged through shared memory (two extra copies per call). Allow ptrace "
                    "between the ranks (kernel.yama.ptrace_scope=0, no seccomp filter) or use Communicator::"
                    "allocate() buffers for zero copy");
  }
  peerData_.resize(static_cast<std::size_t>(size_));
  deadSeen_.assign(static_cast<std::size_t>(size_), false);
  COPRO_LOG(Info, Init,
            me << "shm communicator of " << size_ << " ranks, segments /dev/shm/" << prefix_ << "*, "
               << (cma_ ? "Cross Memory Attach" : "staging through shared memory") << ", "
               << (proxyDefault_ ? "proxy" : "per-lane") << " initiation");
  if (proxyDefault_) ensureProgressThread(0);
}

namespace {
/// An allocation is published by name to this communicator's peers when it is this communicator's (its
/// peers map it before its name goes), or while its name still exists.
bool allocPublishable(const AllocInfo& a, const std::string& prefix) {
  const AllocTail* tail = allocTail(a.base, a.bytes);
  if (strncmp(tail->commPrefix, prefix.c_str(), sizeof(tail->commPrefix)) == 0) return true;
  return tail->unlinked.load(std::memory_order_acquire) == 0;
}
}  // namespace

ShmComm::~ShmComm() {
  bool inFlight = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inFlight = !queue_.empty();
  }
  if (inFlight) {
    failCalls(nullptr, Status(), ErrorCode::kAborted,
              "the executor of rank " + std::to_string(rank_) + " was destroyed with calls in flight", true);
  }
  ranks_[rank_].left.store(1, std::memory_order_seq_cst);
  ranks_[rank_].state.store(kDeadState, std::memory_order_seq_cst);
  notifyAll();
  {
    std::lock_guard<std::mutex> lock(threadMutex_);
    stop_.store(true, std::memory_order_seq_cst);
    notifyRank(rank_);
    for (std::thread& t : progressThreads_) {
      if (t.joinable()) t.join();
    }
  }
  drainAccessors(true);
  if (data_.base != nullptr) {
    unlinkSegment(data_.name);
    unmap(data_);
  }
  {
    std::lock_guard<std::mutex> lock(allocMutex_);
    // The memory stays mapped in this process (the user may still free it); only the names go.
    for (const std::string& n : ownAllocNames_) unlinkSegment(n);
  }
  {
    std::lock_guard<std::mutex> lock(mapMutex_);
    for (PeerData& p : peerData_) unmap(p.map);
    for (auto& kv : allocMaps_) unmap(kv.second);
  }
  unmap(ctlMap_);
}

// ---------------------------------------------------------------------------------------------------------
// Peers' shared memory

const DataHeader* ShmComm::peerData(int r, std::string& why) {
  const std::uint64_t gen = ranks_[r].dataGen.load(std::memory_order_acquire);
  std::lock_guard<std::mutex> lock(mapMutex_);
  PeerData& p = peerData_[static_cast<std::size_t>(r)];
  if (p.map.base == nullptr || p.gen != gen) {
    unmap(p.map);
    const std::string name = prefix_ + "r" + std::to_string(r) + "-d" + std::to_string(gen);
    if (!openSegment(name, p.map)) {
      why = "/" + name + ": " + std::strerror(errno);
      return nullptr;
    }
    p.gen = gen;
    countDataMapping(r, gen, name);
  }
  return reinterpret_cast<const DataHeader*>(p.map.base);
}

void ShmComm::countDataMapping(int r, std::uint64_t gen, const std::string& name) noexcept {
  std::atomic<std::uint64_t>& word = ranks_[r].dataMapped;
  std::uint64_t v = word.load(std::memory_order_acquire);
  while ((v >> 32) == (gen & 0xffffffffULL)) {
    const std::uint64_t n = (v & 0xffffffffULL) + 1;
    if (word.compare_exchange_weak(v, (v & ~0xffffffffULL) | n, std::memory_order_acq_rel)) {
      if (n == static_cast<std::uint64_t>(size_ - 1)) unlinkSegment(name);
      return;
    }
  }
}

void ShmComm::countAllocMapping(Mapping& m) noexcept {
  if (m.bytes < sizeof(AllocTail)) return;
  AllocTail* tail = allocTail(m.base, m.bytes);
  if (strncmp(tail->commPrefix, prefix_.c_str(), sizeof(tail->commPrefix)) != 0) return;
  if (tail->mapped.fetch_add(1, std::memory_order_acq_rel) + 1 == tail->peers) {
    tail->unlinked.store(1, std::memory_order_release);
    unlinkSegment(m.name);
  }
}

void ShmComm::mapEnteredPeers(Call& call) {
  if (call.peersMapped.load(std::memory_order_acquire)) return;
  std::unique_lock<std::mutex> lock(earlyMapMutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another thread of this rank is at it
  if (earlyMappedSeq_.size() != static_cast<std::size_t>(size_))
    earlyMappedSeq_.assign(static_cast<std::size_t>(size_), 0);
  const std::uint64_t want = 2 * call.seq;
  bool all = true;
  for (int q = 0; q < size_; ++q) {
    if (q == rank_ || earlyMappedSeq_[static_cast<std::size_t>(q)] == call.seq) continue;
    RankCtl& t = ranks_[q];
    std::uint64_t s = t.state.load(std::memory_order_acquire);
    if (s < want) all = false;
    if (s != want) continue;  // not there yet, dead, or already in a later call (mapped then)
    earlyMappedSeq_[static_cast<std::size_t>(q)] = call.seq;
    // Hold an access (as a lane does) so that the peer keeps its published state while we read it.
    t.accessors.fetch_add(1, std::memory_order_seq_cst);
    s = t.state.load(std::memory_order_seq_cst);
    if (s == want) {
      std::string why;
      const DataHeader* h = peerData(q, why);
      if (h != nullptr) {
        const auto* regs = reinterpret_cast<const SharedRegion*>(reinterpret_cast<const std::byte*>(h) + h->regionsOff);
        for (std::uint32_t i = 0; i < h->numRegions && i < h->regionCapacity; ++i) {
          if (regs[i].kind == RegionKind::kAlloc) (void)mapAllocation(regs[i].allocName, 0, why);
        }
      }
    }
    t.accessors.fetch_sub(1, std::memory_order_release);
  }
  if (all) call.peersMapped.store(true, std::memory_order_release);
}

void ShmComm::mapNewPeerGenerations() noexcept {
  if (seenPeerGen_.size() != static_cast<std::size_t>(size_)) seenPeerGen_.assign(static_cast<std::size_t>(size_), 0);
  for (int q = 0; q < size_; ++q) {
    const std::uint64_t gen = q == rank_ ? 0 : ranks_[q].dataGen.load(std::memory_order_acquire);
    // Usually nothing new: no lock, no mapping lookup.
    if (gen == 0 || gen == seenPeerGen_[static_cast<std::size_t>(q)]) continue;
    seenPeerGen_[static_cast<std::size_t>(q)] = gen;
    std::string why;
    try {
      (void)peerData(q, why);  // a name already gone (the peer moved on or died) is not this call's problem
    } catch (...) {
    }
  }
}

std::byte* ShmComm::mapAllocation(const char* name, std::uint64_t needBytes, std::string& why) {
  std::string n(name, strnlen(name, sizeof(SharedRegion::allocName)));
  std::lock_guard<std::mutex> lock(mapMutex_);
  auto it = allocMaps_.find(n);
  if (it == allocMaps_.end()) {
    Mapping m;
    if (!openSegment(n, m)) {
      why = "/" + n + ": " + std::strerror(errno);
      return nullptr;
    }
    it = allocMaps_.emplace(n, m).first;
    countAllocMapping(it->second);
  }
  if (it->second.bytes < needBytes) {
    why = "/" + n + " is smaller than the published buffer";
    return nullptr;
  }
  return it->second.base;
}

void ShmComm::notifyRank(int r) noexcept {
  RankCtl& c = ranks_[r];
  if (c.sleepers.load(std::memory_order_seq_cst) == 0) return;
  c.wakeWord.fetch_add(1, std::memory_order_seq_cst);
  futexWakeShared(&c.wakeWord);
}

void ShmComm::notifyAll() noexcept {
  for (int r = 0; r < size_; ++r) notifyRank(r);
}

void ShmComm::sleepOnSelf(std::uint32_t seen, std::chrono::nanoseconds d) noexcept {
  futexWaitShared(&ranks_[rank_].wakeWord, seen, d);
}

// ---------------------------------------------------------------------------------------------------------
// Calls

std::shared_ptr<Call> ShmComm::frontCall() {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.empty() ? nullptr : queue_.front();
}

std::shared_ptr<Call> ShmComm::reusableCall() {
#if !defined(COPRO_SHM_TSAN)
  // The last call is free once nobody else holds it (its handle, the queue, a driver or progress thread):
  // the acquire fence pairs with the release of their last reference, so their accesses happened before.
  // (ThreadSanitizer does not model the fence: its builds allocate every call.)
  std::shared_ptr<Call> call;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (lastCall_ && lastCall_.use_count() == 1) call = std::move(lastCall_);
  }
  if (call) {
    std::atomic_thread_fence(std::memory_order_acquire);
    call->phase.store(Phase::kQueued, std::memory_order_relaxed);
    call->progress.store(0, std::memory_order_relaxed);
    call->peersMapped.store(false, std::memory_order_relaxed);
    call->status = Status();
    call->copyBack.clear();
    call->copyBackBytes.clear();
    return call;
  }
#endif
  return std::make_shared<Call>();
}

Status ShmComm::start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
                      std::shared_ptr<Call>& out) {
  std::shared_ptr<Call> call = reusableCall();
  COPRO_RETURN_IF_ERROR(calls::openCall(*call, std::move(program), b, rank_, size_, advanceCache_, &mutex_, who_));
  calls::initLanes(*call, proxyDefault_);
  COPRO_RETURN_IF_ERROR(calls::startProgressThreads(*call, who_, [this](int k) { ensureProgressThread(k); }));

  std::lock_guard<std::mutex> lock(mutex_);
  call->seq = nextSeq_;
  COPRO_RETURN_IF_ERROR(calls::refusal(*call, aborted_.load(std::memory_order_acquire), broken_, brokenStatus_));
  ++nextSeq_;
  queue_.push_back(call);
  if (queue_.size() == 1) {
    try {
      enterQueuedLocked();
    } catch (const Error& e) {
      queue_.pop_back();
      const Status st(e.code(), call->label() + ": " + e.message());
      broken_ = true;
      brokenStatus_ = st;
      ranks_[rank_].state.store(kDeadState, std::memory_order_seq_cst);
      notifyAll();
      return st;
    }
  }
  lastCall_ = call;
  out = std::move(call);
  return {};
}

void ShmComm::enterQueuedLocked() {
  while (!queue_.empty()) {
    std::shared_ptr<Call> front = queue_.front();
    if (front->phase.load(std::memory_order_acquire) != Phase::kQueued) return;
    enterLocked(front);
    if (front->lanesLeft.load(std::memory_order_acquire) > 0) return;
    front->advanceEpochs(semBase_);
    for (std::size_t i = 0; i < front->copyBack.size(); ++i) {
      std::memcpy(front->copyBack[i].first, front->copyBack[i].second, front->copyBackBytes[i]);
    }
    front->status = Status();
    front->phase.store(Phase::kDone, std::memory_order_seq_cst);
    queue_.pop_front();
  }
}

void ShmComm::ensureData(const core::ProgramHeader& h, std::size_t regions, std::uint64_t shadowBytes) {
  const auto* cur = reinterpret_cast<const DataHeader*>(data_.base);
  if (cur != nullptr && cur->regionCapacity >= regions && cur->semCapacity >= h.numSemaphores &&
      cur->layoutCapacity >= h.layoutWords && cur->scratchCapacity >= h.scratchBytes &&
      cur->shadowCapacity >= shadowBytes) {
    return;
  }
  // Grow every part at least to what it was, so alternating Programs do not replace the segment each call.
  const std::uint32_t regionCap =
      std::max<std::uint32_t>(static_cast<std::uint32_t>(regions), cur != nullptr ? cur->regionCapacity : 0);
  const std::int32_t semCap = std::max<std::int32_t>(h.numSemaphores, cur != nullptr ? cur->semCapacity : 0);
  const std::uint64_t layoutCap = std::max<std::uint64_t>(h.layoutWords, cur != nullptr ? cur->layoutCapacity : 0);
  const std::uint64_t scratchCap = std::max<std::uint64_t>(h.scratchBytes, cur != nullptr ? cur->scratchCapacity : 0);
  const std::uint64_t shadowCap = std::max<std::uint64_t>(shadowBytes, cur != nullptr ? cur->shadowCapacity : 0);
  DataHeader nh{};
  nh.regionCapacity = regionCap;
  nh.semCapacity = semCap;
  nh.regionsOff = roundUp(sizeof(DataHeader), 64);
  nh.semsOff = roundUp(nh.regionsOff + sizeof(SharedRegion) * regionCap, 64);
  nh.layoutOff = roundUp(nh.semsOff + sizeof(std::uint64_t) * static_cast<std::size_t>(semCap), 64);
  nh.layoutCapacity = layoutCap;
  nh.scratchOff = roundUp(nh.layoutOff + sizeof(std::uint64_t) * layoutCap, 4096);
  nh.scratchCapacity = scratchCap;
  nh.shadowOff = roundUp(nh.scratchOff + scratchCap, 4096);
  nh.shadowCapacity = shadowCap;
  nh.bytes = roundUp(nh.shadowOff + shadowCap, 4096);
  const std::uint64_t gen = dataGen_ + 1;
  Mapping m = createSegment(prefix_ + "r" + std::to_string(rank_) + "-d" + std::to_string(gen), nh.bytes);
  std::memcpy(m.base, &nh, sizeof(nh));
  for (std::int32_t s = 0; s < semCap; ++s) {
    new (m.base + nh.semsOff + sizeof(std::uint64_t) * static_cast<std::size_t>(s)) std::atomic<std::uint64_t>(0);
  }
  if (data_.base != nullptr) {
    // Peers reach the old segment only inside a call of ours, and none is in one now (accessors are 0).
    unlinkSegment(data_.name);
    unmap(data_);
  }
  data_ = m;
  dataGen_ = gen;
  // Peers count their mappings of this generation (published with dataGen when the call is entered).
  ranks_[rank_].dataMapped.store((gen & 0xffffffffULL) << 32, std::memory_order_release);
  if (size_ == 1) unlinkSegment(data_.name);
  // Every signal of the previous calls was consumed (value == base), so fresh zeros keep the invariant.
  semBase_.assign(static_cast<std::size_t>(semCap), 0);
  COPRO_LOG(Trace, Transport, "shm rank " << rank_ << ": data segment " << data_.name << " (" << nh.bytes << " bytes)");
}

void ShmComm::enterLocked(const std::shared_ptr<Call>& call) {
  const core::ProgramHeader& h = *call->header;
  RankCtl& me = ranks_[rank_];
  me.state.store(2 * call->seq - 1, std::memory_order_seq_cst);
  drainAccessors(false);
  if (call->llOnly && (size_ == 1 || llMailbox_ != nullptr)) {
    enterOwnBuffersOnly(*call);
  } else {
    publishRegions(*call);
  }
  auto* dh = reinterpret_cast<DataHeader*>(data_.base);
  sems_ = reinterpret_cast<std::atomic<std::uint64_t>*>(data_.base + dh->semsOff);
  numSems_ = h.numSemaphores;
  layout_ = reinterpret_cast<std::uint64_t*>(data_.base + dh->layoutOff);
  std::fill(layout_, layout_ + h.layoutWords, 0);
  std::copy(call->buffers.layoutInit.begin(), call->buffers.layoutInit.end(), layout_);

  me.dataGen.store(dataGen_, std::memory_order_release);
  call->phase.store(Phase::kRunning, std::memory_order_seq_cst);
  me.state.store(2 * call->seq, std::memory_order_seq_cst);
  COPRO_LOG(Trace, Transport, call->label() << ": entered");
  notifyAll();  // peers' lanes may wait for this entry; in proxy mode our progress thread runs it
}

void ShmComm::enterOwnBuffersOnly(Call& call) {
  const core::ProgramHeader& h = *call.header;
  calls::userRegions(h, call.buffers, rank_, regions_);
  ensureData(h, 0, 0);
  auto* dh = reinterpret_cast<DataHeader*>(data_.base);
  regions_[static_cast<std::size_t>(core::BufferId::kScratch)] =
      Region{data_.base + dh->scratchOff, h.scratchBytes, true};
  regions_[static_cast<std::size_t>(core::BufferId::kLayout)] =
      Region{data_.base + dh->layoutOff, std::uint64_t{h.layoutWords} * sizeof(std::uint64_t), true};
  // No peer of an LL-only call reads this table; one that runs another Program by mistake finds no
  // buffer (a clear error), not the previous call's.
  dh->numRegions = 0;
  dh->numSems = 0;
  call.copyBack.clear();
  call.copyBackBytes.clear();
}

void ShmComm::publishRegions(Call& call) {
  const core::ProgramHeader& h = *call.header;
  const core::CallBuffers& b = call.buffers;
  std::vector<Region> user;
  calls::userRegions(h, b, rank_, user);
  const std::size_t nregions = user.size();
  // Staging mode: every user buffer that peers cannot map gets a shadow in the data segment.
  std::vector<AllocInfo> alloc(nregions);
  std::vector<bool> inAlloc(nregions, false);
  std::vector<std::uint64_t> shadowAt(nregions, ~std::uint64_t{0});
  std::uint64_t shadowBytes = 0;
  for (std::size_t i = 0; i < nregions; ++i) {
    if (i == static_cast<std::size_t>(core::BufferId::kScratch) ||
        i == static_cast<std::size_t>(core::BufferId::kLayout))
      continue;
    const Region& u = user[i];
    if (u.base == nullptr || u.limit == 0) continue;
    inAlloc[i] = findAllocation(u.base, u.limit, alloc[i]) && allocPublishable(alloc[i], prefix_);
    if (inAlloc[i] || cma_) continue;
    // An exact alias (an in-place call) shares its shadow.
    for (std::size_t j = 0; j < i; ++j) {
      if (user[j].base == u.base && shadowAt[j] != ~std::uint64_t{0} && user[j].limit >= u.limit)
        shadowAt[i] = shadowAt[j];
    }
    if (shadowAt[i] == ~std::uint64_t{0}) {
      shadowAt[i] = shadowBytes;
      shadowBytes += roundUp(u.limit, 64);
    }
  }
  ensureData(h, nregions, shadowBytes);
  auto* dh = reinterpret_cast<DataHeader*>(data_.base);
  auto* shared = reinterpret_cast<SharedRegion*>(data_.base + dh->regionsOff);
  regions_.assign(nregions, Region{});
  call.copyBack.clear();
  call.copyBackBytes.clear();
  for (std::size_t i = 0; i < nregions; ++i) {
    SharedRegion sr{};
    Region lr{};
    if (i == static_cast<std::size_t>(core::BufferId::kScratch)) {
      lr = Region{data_.base + dh->scratchOff, h.scratchBytes, true};
      sr.kind = RegionKind::kData;
      sr.offset = dh->scratchOff;
    } else if (i == static_cast<std::size_t>(core::BufferId::kLayout)) {
      lr = Region{data_.base + dh->layoutOff, std::uint64_t{h.layoutWords} * sizeof(std::uint64_t), true};
      sr.kind = RegionKind::kData;
      sr.offset = dh->layoutOff;
    } else {
      const Region& u = user[i];
      lr = u;
      if (u.base == nullptr || u.limit == 0) {
        sr.kind = u.base == nullptr ? RegionKind::kNone : RegionKind::kUser;
      } else if (inAlloc[i]) {
        sr.kind = RegionKind::kAlloc;
        sr.offset = static_cast<std::uint64_t>(u.base - alloc[i].base);
        std::snprintf(sr.allocName, sizeof(sr.allocName), "%s", alloc[i].name.c_str());
      } else if (cma_) {
        sr.kind = RegionKind::kUser;
      } else {
        std::byte* shadow = data_.base + dh->shadowOff + shadowAt[i];
        bool first = true;
        for (std::size_t j = 0; j < i; ++j) first = first && !(user[j].base == u.base && shadowAt[j] == shadowAt[i]);
        if (first) {
          std::memcpy(shadow, u.base, u.limit);
          if (u.writable) {
            call.copyBack.emplace_back(u.base, shadow);
            call.copyBackBytes.push_back(u.limit);
          }
        }
        lr.base = shadow;
        sr.kind = RegionKind::kData;
        sr.offset = dh->shadowOff + shadowAt[i];
      }
      sr.ownerAddr = reinterpret_cast<std::uint64_t>(u.base);
    }
    sr.limit = lr.limit;
    sr.writable = lr.writable ? 1 : 0;
    shared[i] = sr;
    regions_[i] = lr;
  }
  dh->numRegions = static_cast<std::uint32_t>(nregions);
  dh->numSems = h.numSemaphores;
}

void ShmComm::completeCall(Call& call) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (call.phase.load(std::memory_order_acquire) != Phase::kRunning) return;
    call.advanceEpochs(semBase_);
    for (std::size_t i = 0; i < call.copyBack.size(); ++i) {
      std::memcpy(call.copyBack[i].first, call.copyBack[i].second, call.copyBackBytes[i]);
    }
    call.status = Status();
    call.phase.store(Phase::kDone, std::memory_order_seq_cst);
    if (!queue_.empty() && queue_.front().get() == &call) queue_.pop_front();
    try {
      enterQueuedLocked();
    } catch (const Error& e) {
      // Entering the next call failed (no shared memory left): fail it and what follows.
      const Status st(e.code(), e.message());
      for (const auto& c : queue_) {
        c->status = Status(e.code(), c->label() + ": " + e.message());
        c->phase.store(Phase::kFailed, std::memory_order_seq_cst);
      }
      queue_.clear();
      broken_ = true;
      brokenStatus_ = st;
      ranks_[rank_].state.store(kDeadState, std::memory_order_seq_cst);
    }
  }
  notifyRank(rank_);
}

bool ShmComm::failCalls(const Call* which, const Status& whichStatus, ErrorCode code, const std::string& reason,
                        bool poisonWorld, int culprit) {
  Status first;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (which != nullptr) {
      if (queue_.empty() || queue_.front().get() != which ||
          which->phase.load(std::memory_order_acquire) != Phase::kRunning) {
        return false;
      }
    }
    first = calls::failQueued(queue_, which, whichStatus, code, reason, rank_, Phase::kFailed, [](Call&) {});
    if (!broken_) {
      broken_ = true;
      brokenStatus_ = first;
    }
    // Poison before the state says dead: a peer that finds this rank dead reads the reason with it.
    if (poisonWorld) poison(culprit >= 0 ? culprit : rank_, first.message());
    ranks_[rank_].state.store(kDeadState, std::memory_order_seq_cst);
  }
  COPRO_LOG(Warn, Transport, first.message());
  notifyAll();
  // A failure is often a peer's death (Cross Memory Attach to it fails at once): clean up after it now.
  if (code != ErrorCode::kAborted) findDeadPeer(true);
  return true;
}

void ShmComm::poison(int who, const std::string& reason) {
  // Several processes may fail at once: a tiny spin lock in shared memory picks the first.
  std::uint32_t expected = 0;
  while (!ctlHeader_->poisonLock.compare_exchange_weak(expected, 1, std::memory_order_acquire)) {
    expected = 0;
    spinPause();
  }
  if (ctlHeader_->poisonRank.load(std::memory_order_relaxed) < 0) {
    std::snprintf(ctlHeader_->poisonReason, sizeof(ctlHeader_->poisonReason), "%s", reason.c_str());
    ctlHeader_->poisonRank.store(who, std::memory_order_seq_cst);
  }
  ctlHeader_->poisonLock.store(0, std::memory_order_release);
}

int ShmComm::poisonedRank() const noexcept {
  return ctlHeader_->poisonRank.load(std::memory_order_acquire);
}

std::string ShmComm::poisonReason() const {
  char buf[sizeof(CtlHeader::poisonReason)];
  std::memcpy(buf, ctlHeader_->poisonReason, sizeof(buf));
  buf[sizeof(buf) - 1] = '\0';
  return buf;
}

void ShmComm::abort() {
  aborted_.store(true, std::memory_order_seq_cst);
  failCalls(nullptr, Status(), ErrorCode::kAborted,
            "aborted (Executor::abort() was called on rank " + std::to_string(rank_) + ")", true);
}

void ShmComm::drainAccessors(bool includeRunners) noexcept {
  // A peer killed or stopped in the middle of an access never gives its count back: stop waiting once
  // one is dead or stopped. After a short spin the wait sleeps, so a survivor does not burn a core.
  auto busy = [&] {
    return (includeRunners && runners_.load(std::memory_order_seq_cst) != 0) ||
           ranks_[rank_].accessors.load(std::memory_order_seq_cst) != 0;
  };
  if (!busy()) return;  // the usual case: no clock read
  const auto begin = Clock::now();
  auto lastCheck = begin;
  while ((includeRunners && runners_.load(std::memory_order_seq_cst) != 0) ||
         ranks_[rank_].accessors.load(std::memory_order_seq_cst) != 0) {
    const auto now = Clock::now();
    if (secondsSince(begin, now) < 0.001) {
      spinPause();
      continue;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (secondsSince(lastCheck, now) < 0.01) continue;
    lastCheck = now;
    const bool runnersIdle = !includeRunners || runners_.load(std::memory_order_seq_cst) == 0;
    if (runnersIdle && (findDeadPeer(true) >= 0 || findStoppedPeer() >= 0)) return;
    if (runnersIdle && drainGaveUp_.load(std::memory_order_acquire)) return;
    if (config_.timeoutSec > 0 && secondsSince(begin, now) > config_.timeoutSec) {
      drainGaveUp_.store(true, std::memory_order_release);
      COPRO_LOG(
          Warn, Transport,
          "shm rank " << rank_ << ": peers still inside an access after " << config_.timeoutSec << " s; going on");
      return;
    }
  }
}

int ShmComm::findStoppedPeer() const noexcept {
  for (int q = 0; q < size_; ++q) {
    if (q == rank_ || ranks_[q].left.load(std::memory_order_acquire) != 0) continue;
    if (processStopped(ranks_[q].pid)) return q;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
// Stalls, liveness, reports

int ShmComm::findDeadPeer(bool force) {
  std::lock_guard<std::mutex> lock(livenessMutex_);
  const auto now = Clock::now();
  if (!force && secondsSince(lastLivenessCheck_, now) < kLivenessPeriodSec) {
    for (int q = 0; q < size_; ++q) {
      if (deadSeen_[static_cast<std::size_t>(q)]) return q;
    }
    return -1;
  }
  lastLivenessCheck_ = now;
  int dead = -1;
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    const RankCtl& c = ranks_[q];
    if (deadSeen_[static_cast<std::size_t>(q)]) {
      if (dead < 0) dead = q;
      continue;
    }
    if (c.left.load(std::memory_order_acquire) != 0) continue;
    if (processAlive(c.pid, c.startTime)) continue;
    deadSeen_[static_cast<std::size_t>(q)] = true;
    // Its segments can no longer be unlinked by their owner: do it here (every survivor tries; the first
    // wins), so nothing of the communicator stays in /dev/shm.
    const int n = unlinkByPrefix(prefix_ + "r" + std::to_string(q) + "-");
    COPRO_LOG(Warn, Transport,
              "shm rank " << rank_ << ": rank " << q << " (pid " << c.pid << ") exited or was killed; unlinked " << n
                          << " of its segments");
    if (dead < 0) dead = q;
  }
  return dead;
}

void ShmComm::peerGone(int q) {
  std::lock_guard<std::mutex> lock(livenessMutex_);
  if (q < 0 || q >= size_ || q == rank_ || deadSeen_[static_cast<std::size_t>(q)]) return;
  deadSeen_[static_cast<std::size_t>(q)] = true;
  const int n = unlinkByPrefix(prefix_ + "r" + std::to_string(q) + "-");
  COPRO_LOG(Warn, Transport,
            "shm rank " << rank_ << ": rank " << q << " (pid " << ranks_[q].pid << ") is gone; unlinked " << n
                        << " of its segments");
}

bool ShmComm::knownGone(int q) {
  std::lock_guard<std::mutex> lock(livenessMutex_);
  return q >= 0 && q < size_ && deadSeen_[static_cast<std::size_t>(q)];
}

std::string ShmComm::stallReport(const Call& call) const {
  return calls::stallReport(
      call, size_, rank_, kDeadState, [this](int r) { return ranks_[r].state.load(std::memory_order_acquire); },
      [this](std::int32_t sem, std::uint64_t& out) {
        if (sem < 0 || sem >= numSems_) return false;
        out = sems_[sem].load(std::memory_order_acquire) - semBase_[static_cast<std::size_t>(sem)];
        return true;
      });
}

bool ShmComm::checkStall(const std::shared_ptr<Call>& front, double stalledSec) {
  const int pr = poisonedRank();
  if (pr >= 0 && pr != rank_) {
    const std::string reason = poisonReason();
    return failCalls(front.get(),
                     Status(ErrorCode::kRemoteError,
                            front->label() + ": blocked while rank " + std::to_string(pr) + " failed: " + reason),
                     ErrorCode::kRemoteError, "not run: rank " + std::to_string(pr) + " failed", false);
  }
  if (stalledSec >= 0.05) {
    const int dead = findDeadPeer(false);
    if (dead >= 0) {
      const std::string why =
          "rank " + std::to_string(dead) + " (pid " + std::to_string(ranks_[dead].pid) + ") exited or was killed";
      return failCalls(front.get(), Status(ErrorCode::kRemoteError, front->label() + ": " + why + " during this call"),
                       ErrorCode::kRemoteError, "not run: " + why, true, dead);
    }
  }
  const double timeout = config_.timeoutSec;
  if (timeout > 0 && stalledSec >= timeout) {
    // A stopped peer is the likely cause: name it (and tell the world), not the ranks that gave up first.
    const int stopped = findStoppedPeer();
    if (stopped >= 0) {
      const std::string why =
          stoppedPeerText(stopped, ranks_[stopped].pid) + " and made no progress for " + formatSeconds(timeout) + " s";
      return failCalls(front.get(), Status(ErrorCode::kTimeout, front->label() + ": " + why), ErrorCode::kTimeout,
                       "not run: " + why, true, stopped);
    }
    return failCalls(front.get(), calls::timeoutStatus(front->label(), timeout, stallReport(*front)),
                     ErrorCode::kTimeout, "not run: an earlier call timed out", false);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Progress

bool ShmComm::runLanesOnce(const std::shared_ptr<Call>& call, core::Initiation mode) {
  // An LL-only call reads no peer's segments; mapNewPeerGenerations below still maps new generations.
  if (!call->llOnly) mapEnteredPeers(*call);
  bool progressed = false;
  for (int i = 0; i < call->numLanes; ++i) {
    const LaneState& l = call->lanes[static_cast<std::size_t>(i)];
    if (l.mode != mode || l.done.load(std::memory_order_acquire)) continue;
    Status err;
    const LaneRun run = runLane(*this, *call, i, err);
    progressed = progressed || run.progressed;
    if (run.finishedNow && call->lanesLeft.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      mapNewPeerGenerations();
      completeCall(*call);
      return true;
    }
    if (run.end == LaneEnd::kFailed) {
      // A peer that failed already told the world; do not blame this rank for it. A peer found dead
      // here (Cross Memory Attach to it failed) cannot tell anyone: do it for it.
      bool poisonIt = err.code() != ErrorCode::kRemoteError;
      int culprit = -1;
      for (int q = 0; q < size_ && !poisonIt; ++q) {
        if (knownGone(q)) {
          poisonIt = true;
          culprit = q;
        }
      }
      failCalls(call.get(), err, err.code(), "not run: an earlier call failed", poisonIt, culprit);
      return true;
    }
    if (run.end == LaneEnd::kStopped) return true;
  }
  return progressed;
}

Status ShmComm::progress(const std::shared_ptr<Call>& target, bool block, bool& done) {
  Status st = drive(target, block, done);
  // The user may free the buffers once we return: nobody may still be touching them.
  if (done && target->phase.load(std::memory_order_acquire) == Phase::kFailed) drainAccessors(true);
  return st;
}

Status ShmComm::drive(const std::shared_ptr<Call>& target, bool block, bool& done) {
  std::unique_lock<std::recursive_mutex> driving(driveMutex_);
  /// This process's side of calls::driveCall: the wake-up word in its control block.
  struct Host {
    ShmComm& comm;
    RankCtl& me;
    std::shared_ptr<Call> frontCall() { return comm.frontCall(); }
    bool runDeviceLanes(const std::shared_ptr<Call>& call) {
      return comm.runLanesOnce(call, core::Initiation::kDevice);
    }
    bool checkStall(const std::shared_ptr<Call>& front, double stalled) { return comm.checkStall(front, stalled); }
    std::uint32_t armSleep() {
      me.sleepers.fetch_add(1, std::memory_order_seq_cst);
      return me.wakeWord.load(std::memory_order_seq_cst);
    }
    void disarmSleep() { me.sleepers.fetch_sub(1, std::memory_order_seq_cst); }
    void sleep(std::uint32_t seen, const Call&, double stalled) {
      comm.sleepOnSelf(seen, sleepLength(comm.config_.timeoutSec, stalled));
    }
    [[nodiscard]] double spinSeconds() const { return comm.wait_.spinSec; }
    void spinPause() const { comm.wait_.pause(); }
  };
  Host host{*this, ranks_[rank_]};
  return calls::driveCall(host, target, block, done);
}

void ShmComm::ensureProgressThread(int which) {
  std::lock_guard<std::mutex> lock(threadMutex_);
  if (progressThreads_[which].joinable() || stop_.load(std::memory_order_acquire)) return;
  progressThreads_[which] = std::thread([this, which] { progressMain(which); });
  COPRO_LOG(Trace, Transport,
            "shm rank " << rank_ << ": progress thread for " << (which == 0 ? "proxy" : "offload") << " lanes");
}

void ShmComm::progressMain(int which) {
  const core::Initiation mode = which == 0 ? core::Initiation::kProxy : core::Initiation::kOffload;
  RankCtl& me = ranks_[rank_];
  auto stallStart = Clock::now();
  std::shared_ptr<Call> front;
  auto runOnce = [&] {
    if (!front || front->phase.load(std::memory_order_acquire) != Phase::kRunning || !front->pooled[which]) {
      return false;
    }
    runners_.fetch_add(1, std::memory_order_seq_cst);
    const bool progressed = runLanesOnce(front, mode);
    runners_.fetch_sub(1, std::memory_order_seq_cst);
    return progressed;
  };
  while (!stop_.load(std::memory_order_acquire)) {
    if (!front || front->finished()) {
      front = frontCall();
      stallStart = Clock::now();
    }
    double stalled = 0;
    const bool mine = front && front->pooled[which];
    if (mine && front->phase.load(std::memory_order_acquire) == Phase::kRunning) {
      if (runOnce()) {
        stallStart = Clock::now();
        continue;
      }
      stalled = secondsSince(stallStart, Clock::now());
      if (checkStall(front, stalled)) continue;
      if (stalled < wait_.spinSec) {
        wait_.pause();
        continue;
      }
    }
    // Announce the sleep, then look once more: an event from now on changes the word.
    me.sleepers.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t seen = me.wakeWord.load(std::memory_order_seq_cst);
    const bool work = frontCall() != front || runOnce();
    if (!work && !stop_.load(std::memory_order_acquire)) {
      sleepOnSelf(seen, mine ? sleepLength(config_.timeoutSec, stalled) : std::chrono::milliseconds(100));
    }
    me.sleepers.fetch_sub(1, std::memory_order_seq_cst);
    if (work) stallStart = Clock::now();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Split and allocation

std::unique_ptr<ShmComm> ShmComm::split(int color, int key) {
  std::unique_ptr<core::Bootstrap> child = bootstrap_->split(color, key);
  ++splitCount_;
  if (!child) return nullptr;
  // The child's ranks learn each other's node from their old ranks.
  std::vector<std::int32_t> oldRanks(static_cast<std::size_t>(child->size()));
  const std::int32_t mine = rank_;
  child->allGather(&mine, oldRanks.data(), sizeof(mine)).throwIfError();
  std::vector<int> nodes;
  nodes.reserve(oldRanks.size());
  for (std::int32_t r : oldRanks) nodes.push_back(nodeOfRank_[static_cast<std::size_t>(r)]);
  return std::make_unique<ShmComm>(std::shared_ptr<core::Bootstrap>(std::move(child)), config_, std::move(nodes));
}

void* ShmComm::allocate(std::size_t bytes) {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(allocMutex_);
    name = prefix_ + "r" + std::to_string(rank_) + "-a" + std::to_string(nextAllocId_++);
  }
  Mapping m = createSegment(name, allocSegmentBytes(bytes));
  AllocTail* tail = new (allocTail(m.base, m.bytes)) AllocTail{};
  std::snprintf(tail->commPrefix, sizeof(tail->commPrefix), "%s", prefix_.c_str());
  tail->peers = static_cast<std::uint32_t>(size_ - 1);
  if (size_ == 1) {
    tail->unlinked.store(1, std::memory_order_release);
    unlinkSegment(name);
  }
  registerAllocation(AllocInfo{m.base, m.bytes, name});
  std::lock_guard<std::mutex> lock(allocMutex_);
  ownAllocNames_.push_back(name);
  return m.base;
}

void ShmComm::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  AllocInfo info;
  if (!takeAllocation(ptr, info)) {
    COPRO_LOG(Warn, Alloc, "shm rank " << rank_ << ": deallocate(" << ptr << "): not memory from allocate()");
    return;
  }
  munmap(info.base, info.bytes);
  unlinkSegment(info.name);
  std::lock_guard<std::mutex> lock(allocMutex_);
  ownAllocNames_.erase(std::remove(ownAllocNames_.begin(), ownAllocNames_.end(), info.name), ownAllocNames_.end());
}

}  // namespace copro::transport::shm
