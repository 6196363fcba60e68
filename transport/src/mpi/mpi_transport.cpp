/// The `mpi` backend's transport: two-sided MPI. A put is a header message (with the data inline when it
/// is small) followed by the data; the target's progress engine, run by the target's own wait()/test(),
/// receives the header, places the data into the buffer of its current call and then adds the signal.
/// Headers from one source are handled in arrival order and their signals applied only after all earlier
/// data from that source was placed, which gives "signal after data". A header of a later call waits
/// until the target has entered that call. The data of the puts a Program fixes in advance goes to
/// receives the target posted when it entered the call (put_plan.hpp, preposted_receives.hpp), so that it
/// does not take MPI's unexpected-message path. See docs/mpi.md.
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../backend_registration.hpp"
#include "../process_state.hpp"
#include "../remote_engine.hpp"
#include "../vnode_transport.hpp"
#include "copro/core/log.hpp"
#include "copro/transport/mpi.hpp"
#include "mpi_common.hpp"
#include "preposted_receives.hpp"
#include "put_plan.hpp"

namespace copro::transport {

namespace mpi {
namespace {

using namespace remote::transport_names;  // NOLINT(google-build-using-namespace): the port vocabulary

constexpr int kTagHeader = 11;
constexpr int kTagData = 12;
constexpr int kTagReply = 13;
/// MPI counts are ints: larger transfers go as several messages of at most this size.
constexpr std::uint64_t kChunk = std::uint64_t{1} << 30;

enum class Kind : std::uint8_t { kPut = 1, kGet = 2, kSignal = 3, kFail = 4 };
/// How a put's data travels: its own message on kTagData, inside the header, or its own message on the
/// tag of a planned put (preposted_receives.hpp), which the target posted a receive for in advance.
enum class DataMode : std::uint8_t { kSeparate = 0, kInline = 1, kPlanned = 2 };

/// The header of every message on kTagHeader.
struct Wire {
  std::uint64_t seq = 0;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  std::uint64_t value = 0;
  std::int32_t sem = -1;
  std::uint32_t lane = 0;
  std::uint32_t opIndex = 0;
  std::uint16_t buf = 0;
  Kind kind = Kind::kPut;
  DataMode mode = DataMode::kSeparate;
};

/// Header messages are at most this long; puts up to kInlineMax bytes carry their data inline (one
/// message instead of two; 4 KiB is Open MPI's shared-memory eager limit).
constexpr std::size_t kMsgMax = 4096;
constexpr std::size_t kInlineMax = kMsgMax - sizeof(Wire);

/// Memory with 64-byte (4 KiB from 1 MiB on) alignment, zeroed.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    const std::size_t align = bytes >= (std::size_t{1} << 20) ? 4096 : 64;
    const std::size_t rounded = (bytes + align - 1) / align * align;
    data_ = static_cast<std::byte*>(std::aligned_alloc(align, rounded));
    if (data_ == nullptr) {
      throw core::Error(ErrorCode::kOutOfMemory, "cannot allocate " + std::to_string(bytes) + " bytes");
    }
    std::memset(data_, 0, rounded);
  }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_) {
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  [[nodiscard]] std::byte* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return bytes_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
};

/// An operation of a peer on this rank, in arrival order.
struct Incoming {
  Wire w;
  std::vector<std::byte> payload;  ///< inline data
  std::vector<MPI_Request> reqs;   ///< data receives or reply sends
  bool started = false;
};

struct Source {
  std::vector<std::byte> buf = std::vector<std::byte>(kMsgMax);
  MPI_Request req = MPI_REQUEST_NULL;
  std::deque<Incoming> fifo;
  std::uint64_t lastSeq = 0;  ///< highest call sequence number heard from this peer
};

struct LaneOut {
  std::vector<MPI_Request> reqs;
  std::vector<std::unique_ptr<std::byte[]>> bufs;  ///< header messages in flight
};

std::string opName(Kind k) {
  switch (k) {
    case Kind::kPut:
      return "put";
    case Kind::kGet:
      return "get";
    case Kind::kSignal:
      return "signal";
    default:
      return "message";
  }
}

class MpiTransport final : public remote::RemoteTransport {
 public:
  /// Takes ownership of `comm` (with MPI_ERRORS_RETURN set).
  /// `prepost`: pre-post the receives of planned puts, when every rank asks for it.
  MpiTransport(MPI_Comm comm, bool prepost) : comm_(comm) {
    mpiCheck(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    mpiCheck(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    sources_.resize(static_cast<std::size_t>(size_));
    // Pids and a host hash of every rank, so that a stopped peer on this host can be named.
    char host[256] = {};
    (void)gethostname(host, sizeof(host) - 1);
    const long long mine[3] = {static_cast<long long>(getpid()),
                               static_cast<long long>(std::hash<std::string>{}(std::string(host)) >> 1),
                               prepost ? 1 : 0};
    std::vector<long long> all(3 * static_cast<std::size_t>(size_));
    mpiCheck(MPI_Allgather(mine, 3, MPI_LONG_LONG, all.data(), 3, MPI_LONG_LONG, comm_), "MPI_Allgather");
    prepost_ = true;
    for (int q = 0; q < size_; ++q) {
      const std::size_t at = 3 * static_cast<std::size_t>(q);
      if (all[at + 1] == mine[1]) localPids_.emplace_back(q, static_cast<pid_t>(all[at]));
      prepost_ = prepost_ && all[at + 2] != 0;
    }
    planLimits_ = planLimits(comm_);
    for (int s = 0; s < size_; ++s) {
      if (s != rank_) postHeader(s);
    }
  }
  ~MpiTransport() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // too late to release anything (the user finalized first)
    posted_.cancel();
    cancelIncomingData();
    for (Source& src : sources_) {
      if (src.req != MPI_REQUEST_NULL) {
        MPI_Cancel(&src.req);
        MPI_Wait(&src.req, MPI_STATUS_IGNORE);
      }
    }
    for (MPI_Request& r : failReqs_) MPI_Wait(&r, MPI_STATUS_IGNORE);
    MPI_Comm_free(&comm_);
  }
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  [[nodiscard]] std::string_view backend() const override { return "mpi"; }
  /// Only under MPI_THREAD_MULTIPLE: with less, the user's own MPI calls could overlap a progress thread's.
  [[nodiscard]] bool progressFromAnyThread() const override {
    int provided = MPI_THREAD_SINGLE;
    return MPI_Query_thread(&provided) == MPI_SUCCESS && provided == MPI_THREAD_MULTIPLE;
  }
  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }

  std::byte* scratch(std::uint64_t bytes) override {
    if (scratch_.size() < bytes) scratch_ = AlignedBuffer(bytes);
    return scratch_.data();
  }
  std::atomic<std::uint64_t>* semaphores(std::int32_t count) override {
    if (semCapacity_ < count || !sems_) {
      sems_ = std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(std::max(count, 1)));
      for (std::int32_t s = 0; s < std::max(count, 1); ++s) sems_[static_cast<std::size_t>(s)].store(0);
      semCapacity_ = std::max(count, 1);
    }
    return sems_.get();
  }
  std::uint64_t* layout(std::uint32_t words) override {
    if (layout_.size() < std::max<std::size_t>(words, 1)) layout_.resize(std::max<std::size_t>(words, 1));
    return layout_.data();
  }

  Status enter(const remote::CallEntry& entry) override {
    seq_ = entry.seq;
    inCall_ = true;
    regions_ = entry.regions;
    callSems_ = entry.semaphores;
    numSems_ = entry.numSemaphores;
    lanes_.resize(static_cast<std::size_t>(std::max(entry.numLanes, 0)));
    for (LaneOut& l : lanes_) {
      l.reqs.clear();
      l.bufs.clear();
    }
    return prepare(entry);
  }

  Reach reach(int peer, Status& error) override {
    if (failedRank_ == peer) {
      error = remoteFailure();
      return Reach::kFailed;
    }
    return Reach::kReady;  // the target places data only once it is in the call; nothing to wait for here
  }
  [[nodiscard]] std::uint64_t remoteLimit(int /*peer*/, BufferId /*buf*/) const override { return UINT64_MAX; }

  Status put(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, const std::byte* src,
             std::uint64_t bytes, std::int32_t sem, std::uint64_t value) override {
    Wire w = wire(Kind::kPut, lane, opIndex, buf, offset, bytes);
    w.sem = sem;
    w.value = value;
    const bool inlined = bytes <= kInlineMax;
    const bool planned = !inlined && isPlannedPut(lane, opIndex, peer, buf, offset, bytes);
    w.mode = inlined ? DataMode::kInline : (planned ? DataMode::kPlanned : DataMode::kSeparate);
    COPRO_RETURN_IF_ERROR(sendHeader(lane, peer, w, inlined ? src : nullptr, inlined ? bytes : 0));
    if (inlined) return {};
    const int tag = planned ? PrepostedReceives::tag(static_cast<std::uint32_t>(lane), seq_) : kTagData;
    return sendData(lanes_[static_cast<std::size_t>(lane)].reqs, peer, tag, src, bytes);
  }

  Status get(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset, std::byte* dst,
             std::uint64_t bytes) override {
    const Wire w = wire(Kind::kGet, lane, opIndex, buf, offset, bytes);
    COPRO_RETURN_IF_ERROR(sendHeader(lane, peer, w, nullptr, 0));
    return recvData(lanes_[static_cast<std::size_t>(lane)].reqs, peer, kTagReply, dst, bytes);
  }

  Status signal(int lane, std::uint32_t opIndex, int peer, std::int32_t sem, std::uint64_t value) override {
    Wire w = wire(Kind::kSignal, lane, opIndex, BufferId::kInput, 0, 0);
    w.sem = sem;
    w.value = value;
    return sendHeader(lane, peer, w, nullptr, 0);
  }

  Status flushLane(int lane, bool& done) override {
    LaneOut& l = lanes_[static_cast<std::size_t>(lane)];
    done = true;
    if (l.reqs.empty()) return {};
    int flag = 0;
    COPRO_RETURN_IF_ERROR(mpiStatus(
        MPI_Testall(static_cast<int>(l.reqs.size()), l.reqs.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Testall"));
    if (!flag) {
      done = false;
      if (failedRank_ >= 0) return remoteFailure();
      return {};
    }
    l.reqs.clear();
    l.bufs.clear();
    return {};
  }

  Status progress(bool& progressed) override {
    for (int s = 0; s < size_; ++s) {
      if (s == rank_) continue;
      COPRO_RETURN_IF_ERROR(pollSource(s, progressed));
    }
    if (failedRank_ >= 0) return remoteFailure();
    return {};
  }

  Status finishCall(bool& done) override {
    done = true;
    for (const Source& src : sources_) {
      if (!src.fifo.empty() && src.fifo.front().w.seq <= seq_) done = false;
    }
    if (done) return unclaimedPuts();
    return {};
  }

  void leave() override {
    inCall_ = false;
    posted_.cancel();  // none left after a call that completed; a failed one may leave some
  }

  void markBroken() override { cancelIncomingData(); }

  [[nodiscard]] std::string stoppedPeer() override {
    for (const auto& [q, pid] : localPids_) {
      if (q != rank_ && processStopped(pid)) return stoppedPeerText(q, pid);
    }
    return {};
  }

  [[nodiscard]] std::string stallReport() override {
    std::vector<int> heard;
    for (int s = 0; s < size_; ++s) {
      if (s != rank_ && sources_[static_cast<std::size_t>(s)].lastSeq >= seq_) heard.push_back(s);
    }
    std::string out;
    if (failedRank_ >= 0) out = "rank " + std::to_string(failedRank_) + " failed (" + failReason_ + "); ";
    out += heard.empty() ? std::string("no peer has sent this rank a message of this call")
                         : "messages of this call (or later) arrived from " + remote::rankList(heard) + " only";
    return out;
  }

  void announceFailure(const std::string& reason) override {
    Wire w;
    w.kind = Kind::kFail;
    w.seq = seq_;
    const std::size_t n = std::min(reason.size(), kInlineMax);
    w.bytes = n;
    for (int s = 0; s < size_; ++s) {
      if (s == rank_) continue;
      auto msg = std::make_unique<std::byte[]>(sizeof(Wire) + n);
      std::memcpy(msg.get(), &w, sizeof(Wire));
      std::memcpy(msg.get() + sizeof(Wire), reason.data(), n);
      MPI_Request r = MPI_REQUEST_NULL;
      if (MPI_Isend(msg.get(), static_cast<int>(sizeof(Wire) + n), MPI_BYTE, s, kTagHeader, comm_, &r) == MPI_SUCCESS) {
        failReqs_.push_back(r);
        failBufs_.push_back(std::move(msg));
      }
    }
  }

  Status registerBuffer(void* /*ptr*/, std::size_t /*bytes*/) override { return {}; }
  Status deregisterBuffer(void* /*ptr*/) override { return {}; }
  void* allocate(std::size_t bytes) override {
    const std::size_t align = bytes >= (std::size_t{1} << 20) ? 4096 : 64;
    void* p = std::aligned_alloc(align, (std::max<std::size_t>(bytes, 1) + align - 1) / align * align);
    if (p == nullptr)
      throw core::Error(ErrorCode::kOutOfMemory, "mpi: cannot allocate " + std::to_string(bytes) + " bytes");
    return p;
  }
  void deallocate(void* ptr) override { std::free(ptr); }

  std::unique_ptr<remote::RemoteTransport> split(int color, int key, std::vector<int>& members) override {
    MPI_Comm out = MPI_COMM_NULL;
    mpiCheck(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &out), "MPI_Comm_split");
    if (out == MPI_COMM_NULL) return nullptr;
    mpiCheck(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    int n = 0;
    mpiCheck(MPI_Comm_size(out, &n), "MPI_Comm_size");
    members.assign(static_cast<std::size_t>(n), 0);
    mpiCheck(MPI_Allgather(&rank_, 1, MPI_INT, members.data(), 1, MPI_INT, out), "MPI_Allgather");
    return std::make_unique<MpiTransport>(out, prepost_);
  }

 private:
  Wire wire(Kind kind, int lane, std::uint32_t opIndex, BufferId buf, std::uint64_t offset, std::uint64_t bytes) const {
    Wire w;
    w.seq = seq_;
    w.kind = kind;
    w.lane = static_cast<std::uint32_t>(lane);
    w.opIndex = opIndex;
    w.buf = static_cast<std::uint16_t>(buf);
    w.offset = offset;
    w.bytes = bytes;
    return w;
  }

  Status remoteFailure() const {
    return {ErrorCode::kRemoteError, "rank " + std::to_string(failedRank_) + " failed or aborted: " + failReason_};
  }

  void postHeader(int s) {
    Source& src = sources_[static_cast<std::size_t>(s)];
    mpiCheck(MPI_Irecv(src.buf.data(), static_cast<int>(kMsgMax), MPI_BYTE, s, kTagHeader, comm_, &src.req),
             "MPI_Irecv");
  }

  Status sendHeader(int lane, int peer, const Wire& w, const std::byte* inlineData, std::uint64_t inlineBytes) {
    LaneOut& l = lanes_[static_cast<std::size_t>(lane)];
    const std::size_t n = sizeof(Wire) + inlineBytes;
    auto msg = std::make_unique<std::byte[]>(n);
    std::memcpy(msg.get(), &w, sizeof(Wire));
    if (inlineBytes > 0) std::memcpy(msg.get() + sizeof(Wire), inlineData, inlineBytes);
    MPI_Request r = MPI_REQUEST_NULL;
    COPRO_RETURN_IF_ERROR(
        mpiStatus(MPI_Isend(msg.get(), static_cast<int>(n), MPI_BYTE, peer, kTagHeader, comm_, &r), "MPI_Isend"));
    l.reqs.push_back(r);
    l.bufs.push_back(std::move(msg));
    return {};
  }

  Status sendData(std::vector<MPI_Request>& reqs, int peer, int tag, const std::byte* src, std::uint64_t bytes) {
    for (std::uint64_t off = 0; off < bytes; off += kChunk) {
      const auto n = static_cast<int>(std::min(kChunk, bytes - off));
      MPI_Request r = MPI_REQUEST_NULL;
      COPRO_RETURN_IF_ERROR(mpiStatus(MPI_Isend(src + off, n, MPI_BYTE, peer, tag, comm_, &r), "MPI_Isend"));
      reqs.push_back(r);
    }
    return {};
  }

  Status recvData(std::vector<MPI_Request>& reqs, int peer, int tag, std::byte* dst, std::uint64_t bytes) {
    for (std::uint64_t off = 0; off < bytes; off += kChunk) {
      const auto n = static_cast<int>(std::min(kChunk, bytes - off));
      MPI_Request r = MPI_REQUEST_NULL;
      COPRO_RETURN_IF_ERROR(mpiStatus(MPI_Irecv(dst + off, n, MPI_BYTE, peer, tag, comm_, &r), "MPI_Irecv"));
      reqs.push_back(r);
    }
    return {};
  }

  std::string who(int s, const Wire& w) const {
    return "rank " + std::to_string(s) + " lane " + std::to_string(w.lane) + " op " + std::to_string(w.opIndex) + " (" +
           opName(w.kind) + ")";
  }

  Status startIncoming(int s, Incoming& in) {
    const Wire& w = in.w;
    in.started = true;
    if (w.kind == Kind::kSignal || (w.kind == Kind::kPut && w.sem >= 0)) {
      if (w.sem < 0 || w.sem >= numSems_) {
        return {ErrorCode::kInvalidProgram, who(s, w) + ": semaphore " + std::to_string(w.sem) + " of rank " +
                                                std::to_string(rank_) + " is out of range (numSemaphores " +
                                                std::to_string(numSems_) + ")"};
      }
    }
    if (w.kind == Kind::kSignal) return {};
    const bool write = w.kind == Kind::kPut;
    const char* role = write ? "dst" : "src";
    const auto bufName = core::bufferName(static_cast<BufferId>(w.buf));
    if (w.buf >= regions_.size()) {
      return {ErrorCode::kInvalidProgram, who(s, w) + ": " + role + " buffer " + bufName + " of rank " +
                                              std::to_string(rank_) + " does not exist (the call has " +
                                              std::to_string(regions_.size() - core::kNumBuffers) + " extra buffers)"};
    }
    const Region& reg = regions_[w.buf];
    if (w.bytes > 0 && (w.offset > reg.limit || w.bytes > reg.limit - w.offset)) {
      return {ErrorCode::kInvalidProgram, who(s, w) + ": " + role + " " + bufName + "[" + std::to_string(w.offset) +
                                              ", " + std::to_string(w.offset + w.bytes) + ") of rank " +
                                              std::to_string(rank_) + " is out of bounds (" + bufName + " has " +
                                              std::to_string(reg.limit) + " bytes in this call)"};
    }
    if (write && !reg.writable && w.bytes > 0) {
      return {ErrorCode::kInvalidProgram, who(s, w) + ": dst " + bufName + " of rank " + std::to_string(rank_) +
                                              " is read-only (the input of an out-of-place call)"};
    }
    std::byte* p = reg.base + w.offset;
    if (write) {
      if (w.mode == DataMode::kPlanned) return claimPlanned(s, in, p);
      if (w.mode == DataMode::kInline) {
        if (in.payload.size() != w.bytes) {
          return {ErrorCode::kInternal, who(s, w) + ": inline data of " + std::to_string(in.payload.size()) +
                                            " bytes, header says " + std::to_string(w.bytes)};
        }
        if (w.bytes > 0) std::memmove(p, in.payload.data(), w.bytes);
        return {};
      }
      countReceive(ReceiveKind::kPostedAtHeader);
      return recvData(in.reqs, s, kTagData, p, w.bytes);
    }
    return sendData(in.reqs, s, kTagReply, p, w.bytes);
  }

  Status pollSource(int s, bool& progressed) {
    Source& src = sources_[static_cast<std::size_t>(s)];
    while (src.req != MPI_REQUEST_NULL) {
      int flag = 0;
      MPI_Status st;
      COPRO_RETURN_IF_ERROR(mpiStatus(MPI_Test(&src.req, &flag, &st), "MPI_Test"));
      if (!flag) break;
      progressed = true;
      int count = 0;
      MPI_Get_count(&st, MPI_BYTE, &count);
      Incoming in;
      std::memcpy(&in.w, src.buf.data(), sizeof(Wire));
      const auto extra = static_cast<std::size_t>(count) - sizeof(Wire);
      if (in.w.kind == Kind::kFail) {
        if (failedRank_ < 0) {
          failedRank_ = s;
          failReason_.assign(reinterpret_cast<const char*>(src.buf.data() + sizeof(Wire)), extra);
        }
      } else {
        if (in.w.mode == DataMode::kInline) in.payload.assign(src.buf.data() + sizeof(Wire), src.buf.data() + count);
        src.lastSeq = std::max(src.lastSeq, in.w.seq);
        src.fifo.push_back(std::move(in));
      }
      postHeader(s);
    }
    for (Incoming& in : src.fifo) {
      if (!inCall_ || in.w.seq > seq_) break;  // for a later call: wait until this rank enters it
      if (in.w.seq < seq_) {
        return {ErrorCode::kInvalidProgram, who(s, in.w) + " of call " + std::to_string(in.w.seq) + " reached rank " +
                                                std::to_string(rank_) +
                                                " after it finished that call: the Program lets it complete before "
                                                "this access (a missing signal/wait pair)"};
      }
      if (!in.started) {
        COPRO_RETURN_IF_ERROR(startIncoming(s, in));
        progressed = true;
      }
    }
    // Retire in arrival order, so that a signal is applied only after the data sent before it.
    while (!src.fifo.empty() && src.fifo.front().started) {
      Incoming& in = src.fifo.front();
      if (!in.reqs.empty()) {
        int flag = 0;
        COPRO_RETURN_IF_ERROR(mpiStatus(
            MPI_Testall(static_cast<int>(in.reqs.size()), in.reqs.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Testall"));
        if (!flag) break;
      }
      if (in.w.sem >= 0 && (in.w.kind == Kind::kPut || in.w.kind == Kind::kSignal)) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        callSems_[in.w.sem].fetch_add(in.w.value, std::memory_order_seq_cst);
      }
      src.fifo.pop_front();
      progressed = true;
    }
    return {};
  }

  /// What qualifies a put for the pre-posted receive plan on this communicator.
  static PlanLimits planLimits(MPI_Comm comm) {
    int* ub = nullptr;
    int flag = 0;
    int tagUb = 32767;  // the least MPI guarantees
    if (MPI_Comm_get_attr(comm, MPI_TAG_UB, static_cast<void*>(&ub), &flag) == MPI_SUCCESS && flag != 0 &&
        ub != nullptr) {
      tagUb = *ub;
    }
    PlanLimits limits;
    limits.minBytes = kInlineMax;
    limits.maxBytes = kChunk;
    limits.maxLanes = std::min(PrepostedReceives::lanesWithTags(tagUb), 1 << 14);
    return limits;
  }

  /// Entering a call: the plan of its Program, the initiator's cursors into it, the posted receives.
  Status prepare(const remote::CallEntry& entry) {
    plan_ = prepost_ && entry.program ? plans_.get(entry.program, rank_, size_, planLimits_) : nullptr;
    if (plan_ && !plan_->active()) plan_.reset();
    if (plan_) {
      outCursor_.resize(plan_->out.size());
      for (std::size_t t = 0; t < plan_->out.size(); ++t) outCursor_[t].assign(plan_->out[t].size(), 0);
    }
    return posted_.post(comm_, rank_, plan_, regions_, seq_);
  }

  /// Whether this put is the next planned one of its lane to `peer` (then it takes the planned path).
  bool isPlannedPut(int lane, std::uint32_t opIndex, int peer, BufferId buf, std::uint64_t offset,
                    std::uint64_t bytes) {
    if (!plan_) return false;
    const LanePuts& lanes = plan_->out[static_cast<std::size_t>(peer)];
    if (static_cast<std::size_t>(lane) >= lanes.size()) return false;
    const std::vector<PlannedPut>& list = lanes[static_cast<std::size_t>(lane)];
    std::size_t& next = outCursor_[static_cast<std::size_t>(peer)][static_cast<std::size_t>(lane)];
    if (next >= list.size() || !list[next].same(opIndex, static_cast<std::uint16_t>(buf), offset, bytes)) return false;
    ++next;
    return true;
  }

  /// The header of a planned put (already checked against this rank's buffers): takes the receive posted
  /// for it, or posts it now.
  Status claimPlanned(int s, Incoming& in, std::byte* dst) {
    const Wire& w = in.w;
    PlannedPut expected;
    bool hasExpected = false;
    MPI_Request req = MPI_REQUEST_NULL;
    const PlannedPut got{w.opIndex, w.buf, w.offset, w.bytes};
    switch (posted_.claim(s, w.lane, got, req, expected, hasExpected)) {
      case PrepostedReceives::Claim::kClaimed:
        countReceive(ReceiveKind::kPreposted);
        in.reqs.push_back(req);
        return {};
      case PrepostedReceives::Claim::kPostNow:
        countReceive(ReceiveKind::kPostedAtHeader);
        return recvData(in.reqs, s, PrepostedReceives::tag(w.lane, w.seq), dst, w.bytes);
      case PrepostedReceives::Claim::kMismatch:
      default:
        break;
    }
    const std::string mine = hasExpected
                                 ? "op " + std::to_string(expected.opIndex) + " (" + std::to_string(expected.bytes) +
                                       " bytes into " + core::bufferName(static_cast<BufferId>(expected.buf)) + "[" +
                                       std::to_string(expected.offset) + ", ...))"
                                 : std::string("no further put from that lane");
    return {ErrorCode::kInvalidProgram,
            who(s, w) + " of " + std::to_string(w.bytes) + " bytes into " +
                core::bufferName(static_cast<BufferId>(w.buf)) + "[" + std::to_string(w.offset) + ", ...) of rank " +
                std::to_string(rank_) + " is not what rank " + std::to_string(rank_) +
                "'s Program of the call expects next from that lane (" + mine +
                "): the ranks generated different Programs (do their call arguments agree?)"};
  }

  /// After the call's headers were all handled: a planned put that never came is an error (the ranks'
  /// Programs differ, or the put is not ordered before the end of the call).
  Status unclaimedPuts() const {
    int s = 0;
    int lane = 0;
    PlannedPut p;
    if (!posted_.firstUnclaimed(s, lane, p)) return {};
    return {ErrorCode::kInvalidProgram,
            "rank " + std::to_string(s) + " lane " + std::to_string(lane) + " op " + std::to_string(p.opIndex) +
                " (put) of " + std::to_string(p.bytes) + " bytes into " +
                core::bufferName(static_cast<BufferId>(p.buf)) + "[" + std::to_string(p.offset) + ", ...) of rank " +
                std::to_string(rank_) + ", which rank " + std::to_string(rank_) +
                "'s Program of the call has, did not arrive before rank " + std::to_string(rank_) +
                " finished the call: the ranks generated different Programs (do their call arguments agree?) or "
                "the put is not followed by a signal this rank waits for"};
  }

  /// Cancels the data receives of incoming puts still in flight (the communicator failed: nothing may
  /// land in a user buffer after its call returned).
  void cancelIncomingData() {
    for (Source& src : sources_) {
      for (Incoming& in : src.fifo) {
        if (in.w.kind == Kind::kPut) cancelReceives(in.reqs);
      }
    }
  }

  std::vector<std::pair<int, pid_t>> localPids_;  ///< ranks on this host and their pids
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 0;
  std::uint64_t seq_ = 0;
  bool inCall_ = false;
  std::vector<Region> regions_;
  std::atomic<std::uint64_t>* callSems_ = nullptr;
  std::int32_t numSems_ = 0;
  std::vector<Source> sources_;
  std::vector<LaneOut> lanes_;
  AlignedBuffer scratch_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> sems_;
  std::int32_t semCapacity_ = 0;
  std::vector<std::uint64_t> layout_;
  int failedRank_ = -1;
  std::string failReason_;
  std::vector<MPI_Request> failReqs_;
  std::vector<std::unique_ptr<std::byte[]>> failBufs_;
  bool prepost_ = false;  ///< every rank asked for pre-posted receives (setMpiPrepostedReceives)
  PlanLimits planLimits_;
  CallPlanCache plans_{8};
  std::shared_ptr<const CallPlan> plan_;             ///< the current call's, when it has one
  std::vector<std::vector<std::size_t>> outCursor_;  ///< [target][lane]: the next planned put
  PrepostedReceives posted_;
};

}  // namespace
}  // namespace mpi

std::unique_ptr<remote::RemoteTransport> makeMpiTransport(const core::Bootstrap& bootstrap) {
  const MPI_Comm comm = mpiCommOf(bootstrap);
  if (comm == MPI_COMM_NULL) {
    throw core::Error(ErrorCode::kInvalidArgument,
                      "the mpi transport runs over an MPI bootstrap (createMpiBootstrap / copro::createFromMpi), not "
                      "another kind of bootstrap");
  }
  // Between virtual nodes this transport carries only some of a Program's puts: no plan.
  return std::make_unique<mpi::MpiTransport>(mpi::dupComm(comm), false);
}

std::unique_ptr<core::Executor> createMpiExecutor(const core::ExecutorOptions& options) {
  if (!options.bootstrap) {
    throw core::Error(ErrorCode::kInvalidArgument,
                      "the mpi backend needs ExecutorOptions::bootstrap from createMpiBootstrap() "
                      "(copro::createFromMpi(MPI_Comm) sets it up)");
  }
  const MPI_Comm comm = mpiCommOf(*options.bootstrap);
  if (comm == MPI_COMM_NULL) {
    throw core::Error(ErrorCode::kInvalidArgument,
                      "the mpi backend runs over an MPI bootstrap (createMpiBootstrap / copro::createFromMpi), not "
                      "another kind of bootstrap");
  }
  return remote::makeRemoteExecutor(
      std::make_unique<mpi::MpiTransport>(mpi::dupComm(comm), mpi::prepostedReceivesEnabled()), options);
}

void registerMpi(core::ExecutorRegistry& registry) {
  addOneRankPerProcessBackend(
      registry, "mpi", [](const core::ExecutorOptions& options) { return createMpiExecutor(options); },
      "processes under mpirun, two-sided MPI (puts are messages placed by the target); one rank per process");
}

}  // namespace copro::transport
