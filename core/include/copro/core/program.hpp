#pragma once
/// The Program IR: one collective call, for all ranks, as lanes of simple primitives.
///
/// See docs/program-ir.md. A Program is generated per rank on demand through `ProgramSource`; the
/// materialized form `Program` (all ranks, all ops) is for small rank counts, JSON, tests and the
/// validator.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "copro/core/dtype.hpp"

namespace copro::core {

/// Named per-rank buffers. Input/Output are the user's buffers of this call; Scratch is owned by the
/// communicator (size declared by the Program); Layout is an array of uint64 words per rank, filled
/// partly from the call's arguments (counts/displacements of v-collectives) and partly by puts of a
/// counts-exchange phase, read by indirect ops.
/// Values from kExtra0 on name the call's extra buffers (CallBuffers::extra[id - kExtra0]): grouped
/// send/recv gives each operation of the group its own buffer.
enum class BufferId : std::uint16_t { kInput = 0, kOutput = 1, kScratch = 2, kLayout = 3, kExtra0 = 4 };
inline constexpr int kNumBuffers = 4;  ///< the named buffers; extras follow
inline constexpr BufferId extraBuffer(int i) {
  return static_cast<BufferId>(4 + i);
}
std::string bufferName(BufferId b);  ///< "input", "output", "scratch", "layout", "extra3"

/// Rank value meaning "the rank executing the op".
inline constexpr std::int32_t kSelf = -1;

/// An address: (rank, buffer, byte offset). rank == kSelf is the executing rank; any other rank is a
/// peer's buffer, accessible directly only inside a load/store domain.
struct Addr {
  std::int32_t rank = kSelf;
  BufferId buf = BufferId::kInput;
  std::uint64_t offset = 0;
  friend bool operator==(const Addr&, const Addr&) = default;
};

enum class OpCode : std::uint8_t {
  kPut = 0,    ///< write src (local) to dst on `peer`; optional signal carried with the data
  kGet,        ///< read src on `peer` into dst (local); complete at the lane's next flush
  kSignal,     ///< add `value` to semaphore `sem` on `peer`, after every earlier put of this lane to `peer`
  kWait,       ///< block until own semaphore `sem` >= epoch base + `value`
  kReduce,     ///< dst = op(srcs...), count elements of dtype; srcs/dst may be peers' (load/store domain)
  kPutReduce,  ///< dst on `peer` = op(dst, src): write-with-reduce at the target; optional signal
  kMulticast,  ///< write src (local) to dst on each of `ranks`; optional signal to each
  kCopy,       ///< local copy src -> dst (either may be a peer's inside a load/store domain)
  kFlush,      ///< until this completes, earlier puts/gets of the lane are in flight; afterwards their
               ///< sources may be reused and gets' data is present
};
inline constexpr int kNumOpCodes = 9;
std::string_view opCodeName(OpCode c) noexcept;  ///< "put", "get", "signal", ...

/// How a put's bytes and its signal travel (docs/program-ir.md, "Protocols"). `kSimple`: the bytes land
/// in the destination, then the signal is added. `kLL` (low latency, after NCCL's LL protocols): on a
/// load/store backend the bytes and their arrival flag travel together in flag-carrying lines through a
/// per-peer mailbox mapped once, and the receiver's matching `wait` (also `kLL`) polls the flags, lands the
/// bytes in its own destination and counts the signal itself. The meaning of the Program is the same
/// either way; backends without a mailbox run LL ops as simple ones.
enum class Protocol : std::uint8_t { kSimple = 0, kLL = 1 };
std::string_view protocolName(Protocol p) noexcept;  ///< "simple" or "ll"
/// "simple" or "ll"; false for anything else.
bool parseProtocol(std::string_view text, Protocol& out) noexcept;
/// The data bytes of one LL mailbox slot: the largest LL put.
inline constexpr std::uint64_t kLLSlotBytes = 16 * 1024;
/// An LL line: one cache line of 56 data bytes and an 8-byte flag (the call's epoch) at its end.
inline constexpr std::uint64_t kLLLineBytes = 64;
inline constexpr std::uint64_t kLLLineData = 56;
/// Lines of an LL payload of `bytes` (an empty payload still sends one flag).
inline constexpr std::uint64_t llLines(std::uint64_t bytes) {
  return bytes == 0 ? 1 : (bytes + kLLLineData - 1) / kLLLineData;
}

/// Indirect ops read sizes and offsets from the executing rank's Layout words at run time. A slot of
/// kNoSlot means "use the op's own field".
inline constexpr std::int32_t kNoSlot = -1;
struct Indirect {
  std::int32_t bytesSlot = kNoSlot;      ///< bytes = layout[bytesSlot] * bytesScale
  std::int32_t srcOffsetSlot = kNoSlot;  ///< src.offset += layout[srcOffsetSlot] * bytesScale
  std::int32_t dstOffsetSlot = kNoSlot;  ///< dst.offset += layout[dstOffsetSlot] * bytesScale
  std::uint32_t bytesScale = 1;          ///< element size when the layout holds element counts
  [[nodiscard]] bool active() const {
    return bytesSlot != kNoSlot || srcOffsetSlot != kNoSlot || dstOffsetSlot != kNoSlot;
  }
  friend bool operator==(const Indirect&, const Indirect&) = default;
};

/// One primitive. Fields not used by an op code keep their defaults (JSON omits them).
struct Op {
  OpCode code = OpCode::kFlush;
  std::int32_t peer = kSelf;  ///< put/put_reduce/signal: target rank; get: source rank
  Addr dst{};                 ///< put/get/copy/reduce/put_reduce/multicast destination
  Addr src{};                 ///< put/get/copy/put_reduce/multicast source
  std::uint64_t bytes = 0;    ///< payload bytes (put, get, copy, multicast); count*size for reductions
  std::int32_t sem = -1;      ///< signal/wait semaphore; put/put_reduce/multicast: signal sem (-1: none)
  std::uint64_t value = 0;    ///< signal: amount added; wait: threshold relative to the epoch base
  DataType dtype = DataType::kUint8;
  ReduceOp redop = ReduceOp::kSum;
  std::uint32_t divisor = 0;        ///< reduce/put_reduce: divide the result by this (avg finish)
  std::vector<Addr> srcs;           ///< reduce: the sources (>= 1)
  std::vector<std::int32_t> ranks;  ///< multicast: target ranks
  Indirect indirect{};
  Protocol protocol = Protocol::kSimple;  ///< put and wait only (kLL: see Protocol)

  [[nodiscard]] std::uint64_t count() const;  ///< elements for reduce/put_reduce (bytes / dtype size)
  friend bool operator==(const Op&, const Op&) = default;

  // Builders: the usual way to make ops.
  static Op put(std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes, std::int32_t signalSem = -1,
                std::uint64_t signalAdd = 1);
  static Op get(std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes);
  static Op signal(std::int32_t peer, std::int32_t sem, std::uint64_t add = 1);
  static Op wait(std::int32_t sem, std::uint64_t atLeast);
  /// An LL put (adds 1 to `signalSem` on `peer` when the bytes are there) and the receiver's matching
  /// wait: `from` is the putting rank, `dst`/`bytes` repeat the put's, `atLeast` counts this LL wait
  /// among those on `sem` (docs/program-ir.md, "Protocols").
  static Op putLL(std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes, std::int32_t signalSem);
  static Op waitLL(std::int32_t from, Addr dst, std::uint64_t bytes, std::int32_t sem, std::uint64_t atLeast);
  static Op reduce(Addr dst, std::vector<Addr> srcs, std::uint64_t count, DataType dtype, ReduceOp op,
                   std::uint32_t divisor = 0);
  static Op putReduce(std::int32_t peer, Addr dst, Addr src, std::uint64_t count, DataType dtype, ReduceOp op,
                      std::int32_t signalSem = -1, std::uint64_t signalAdd = 1);
  static Op multicast(std::vector<std::int32_t> ranks, Addr dst, Addr src, std::uint64_t bytes,
                      std::int32_t signalSem = -1, std::uint64_t signalAdd = 1);
  static Op copy(Addr dst, Addr src, std::uint64_t bytes);
  static Op flush();
};

/// Who posts a lane's network work (docs/design.md, "Lanes and initiation"; docs/initiation.md): a CPU
/// progress thread, the computing thread itself (IBGDA/GDAKI style), or a communication co-processor.
enum class Initiation : std::uint8_t { kProxy = 0, kDevice = 1, kOffload = 2 };
std::string_view initiationName(Initiation i) noexcept;
/// "proxy", "device" or "offload"; false for anything else.
bool parseInitiation(std::string_view text, Initiation& out) noexcept;

/// Sizes and names that hold for the whole Program.
struct ProgramHeader {
  std::string name;  ///< e.g. "allreduce.ring"
  std::int32_t nranks = 0;
  std::int32_t numSemaphores = 0;          ///< per rank
  std::uint64_t scratchBytes = 0;          ///< per rank
  std::uint32_t layoutWords = 0;           ///< per rank, uint64 words
  std::vector<std::uint64_t> inputBytes;   ///< per rank (what the call's input buffer must hold)
  std::vector<std::uint64_t> outputBytes;  ///< per rank
  /// Groups of ranks that share a load/store domain (ranks in one group may address each other's
  /// buffers directly). Empty: all ranks form one domain (inproc, one node).
  std::vector<std::vector<std::int32_t>> loadStoreDomains;
  friend bool operator==(const ProgramHeader&, const ProgramHeader&) = default;
};

/// A resumable reader of one lane's ops. `clone()` copies the position (the validator and the simulator
/// fork cursors).
class LaneCursor {
 public:
  virtual ~LaneCursor() = default;
  /// Writes the next op into `op` and returns true, or returns false at the end of the lane.
  virtual bool next(Op& op) = 0;
  [[nodiscard]] virtual std::unique_ptr<LaneCursor> clone() const = 0;
};

/// The ops of one rank: its lanes, materialized.
struct RankProgram {
  struct Lane {
    Initiation initiation = Initiation::kDevice;
    std::vector<Op> ops;
    friend bool operator==(const Lane&, const Lane&) = default;
  };
  std::vector<Lane> lanes;
  /// Appends a lane and returns its index.
  int addLane(Initiation init = Initiation::kDevice);
  /// Appends an op to lane `lane` (creating lanes up to it).
  void emit(int lane, Op op);
  [[nodiscard]] std::size_t numOps() const;
  friend bool operator==(const RankProgram&, const RankProgram&) = default;
};

/// A Program as a generator: per rank, on demand. Implementations must be safe to call from several
/// threads at once (the inproc executor asks for every rank concurrently).
class ProgramSource {
 public:
  virtual ~ProgramSource() = default;
  [[nodiscard]] virtual const ProgramHeader& header() const = 0;
  /// The ops of one rank. May generate on first use and cache; the reference stays valid for the
  /// lifetime of the source.
  [[nodiscard]] virtual const RankProgram& rank(std::int32_t r) const = 0;
  [[nodiscard]] virtual int numLanes(std::int32_t r) const { return static_cast<int>(rank(r).lanes.size()); }
  [[nodiscard]] virtual std::unique_ptr<LaneCursor> openLane(std::int32_t r, int lane) const;
  /// The initiation mode of rank r's lane (sources that generate lazily answer without materializing).
  [[nodiscard]] virtual Initiation laneInitiation(std::int32_t r, int lane) const {
    return rank(r).lanes.at(static_cast<std::size_t>(lane)).initiation;
  }
  /// A rotation symmetry the source guarantees (0: none). A period k > 0 promises, for every rank r and
  /// every multiple m of k: rank (r + m) % nranks has the lanes, initiations and ops of rank r, op for op
  /// with the same codes, bytes, semaphores and values, every rank field shifted by m (mod nranks); only
  /// buffer offsets may differ. The simulator then simulates one rank per class (docs/simulator.md,
  /// "Symmetry").
  [[nodiscard]] virtual std::int32_t rotationPeriod() const { return 0; }
};

/// A fully materialized Program (all ranks). Used for JSON, tests and user-written plans.
class Program final : public ProgramSource {
 public:
  Program() = default;
  Program(ProgramHeader header, std::vector<RankProgram> ranks);
  /// Materializes every rank of a source.
  static Program materialize(const ProgramSource& source);

  [[nodiscard]] const ProgramHeader& header() const override { return header_; }
  [[nodiscard]] const RankProgram& rank(std::int32_t r) const override;
  ProgramHeader& mutableHeader() { return header_; }
  RankProgram& mutableRank(std::int32_t r);
  [[nodiscard]] std::size_t numOps() const;
  friend bool operator==(const Program& a, const Program& b) { return a.header_ == b.header_ && a.ranks_ == b.ranks_; }

 private:
  ProgramHeader header_;
  std::vector<RankProgram> ranks_;
};

/// A ProgramSource that generates each rank's ops with a callback on first request and caches them
/// (thread-safe). Algorithms in collectives/ produce these.
class LazyProgram final : public ProgramSource {
 public:
  /// `emit(rank, out)` must fill `out` with rank's lanes; it is called at most once per rank.
  template <typename F>
  LazyProgram(ProgramHeader header, F emit)
      : header_(std::move(header)), emit_(std::make_shared<Holder<F>>(std::move(emit))) {
    slots_ = std::make_unique<Slot[]>(static_cast<std::size_t>(header_.nranks));
  }

  [[nodiscard]] const ProgramHeader& header() const override { return header_; }
  [[nodiscard]] const RankProgram& rank(std::int32_t r) const override;

 private:
  struct EmitBase {
    virtual ~EmitBase() = default;
    virtual void run(std::int32_t r, RankProgram& out) const = 0;
  };
  template <typename F>
  struct Holder final : EmitBase {
    explicit Holder(F f) : fn(std::move(f)) {}
    void run(std::int32_t r, RankProgram& out) const override { fn(r, out); }
    F fn;
  };
  struct Slot {
    std::once_flag once;
    RankProgram program;
  };
  ProgramHeader header_;
  std::shared_ptr<const EmitBase> emit_;
  std::unique_ptr<Slot[]> slots_;
};

/// Epoch advance of a rank's semaphores after one call: for each semaphore, the largest wait threshold
/// the rank uses on it (a well-formed Program's signals into (rank, sem) sum to exactly that).
std::vector<std::uint64_t> semaphoreAdvance(const RankProgram& rp, std::int32_t numSemaphores);

}  // namespace copro::core
