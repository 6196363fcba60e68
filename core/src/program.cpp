/// The Program IR: names, op builders, materialized and lazy Programs, lane cursors.
#include "copro/core/program.hpp"

#include <algorithm>
#include <utility>

#include "copro/core/status.hpp"

namespace copro::core {

std::string bufferName(BufferId b) {
  switch (b) {
    case BufferId::kInput:
      return "input";
    case BufferId::kOutput:
      return "output";
    case BufferId::kScratch:
      return "scratch";
    case BufferId::kLayout:
      return "layout";
    default:
      break;
  }
  return "extra" + std::to_string(static_cast<int>(b) - static_cast<int>(BufferId::kExtra0));
}

std::string_view opCodeName(OpCode c) noexcept {
  switch (c) {
    case OpCode::kPut:
      return "put";
    case OpCode::kGet:
      return "get";
    case OpCode::kSignal:
      return "signal";
    case OpCode::kWait:
      return "wait";
    case OpCode::kReduce:
      return "reduce";
    case OpCode::kPutReduce:
      return "put_reduce";
    case OpCode::kMulticast:
      return "multicast";
    case OpCode::kCopy:
      return "copy";
    case OpCode::kFlush:
      return "flush";
  }
  return "unknown";
}

bool parseInitiation(std::string_view text, Initiation& out) noexcept {
  for (Initiation i : {Initiation::kProxy, Initiation::kDevice, Initiation::kOffload}) {
    if (text == initiationName(i)) {
      out = i;
      return true;
    }
  }
  return false;
}

std::string_view initiationName(Initiation i) noexcept {
  switch (i) {
    case Initiation::kProxy:
      return "proxy";
    case Initiation::kDevice:
      return "device";
    case Initiation::kOffload:
      return "offload";
  }
  return "unknown";
}

std::uint64_t Op::count() const {
  const std::size_t size = dataTypeSize(dtype);
  return size == 0 ? 0 : bytes / size;
}

Op Op::put(std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes, std::int32_t signalSem,
           std::uint64_t signalAdd) {
  Op op;
  op.code = OpCode::kPut;
  op.peer = peer;
  op.dst = dst;
  op.src = src;
  op.bytes = bytes;
  op.sem = signalSem;
  // Without a signal the add is meaningless; keep the default so JSON omits it and == stays exact.
  op.value = signalSem >= 0 ? signalAdd : 0;
  return op;
}

Op Op::get(std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes) {
  Op op;
  op.code = OpCode::kGet;
  op.peer = peer;
  op.dst = dst;
  op.src = src;
  op.bytes = bytes;
  return op;
}

Op Op::signal(std::int32_t peer, std::int32_t sem, std::uint64_t add) {
  Op op;
  op.code = OpCode::kSignal;
  op.peer = peer;
  op.sem = sem;
  op.value = add;
  return op;
}

Op Op::putLL(std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes, std::int32_t signalSem) {
  Op op = put(peer, dst, src, bytes, signalSem, 1);
  op.protocol = Protocol::kLL;
  return op;
}

Op Op::waitLL(std::int32_t from, Addr dst, std::uint64_t bytes, std::int32_t sem, std::uint64_t atLeast) {
  Op op = wait(sem, atLeast);
  op.peer = from;
  op.dst = dst;
  op.bytes = bytes;
  op.protocol = Protocol::kLL;
  return op;
}

std::string_view protocolName(Protocol p) noexcept {
  return p == Protocol::kLL ? "ll" : "simple";
}

bool parseProtocol(std::string_view text, Protocol& out) noexcept {
  if (text == "simple") {
    out = Protocol::kSimple;
  } else if (text == "ll") {
    out = Protocol::kLL;
  } else {
    return false;
  }
  return true;
}

Op Op::wait(std::int32_t sem, std::uint64_t atLeast) {
  Op op;
  op.code = OpCode::kWait;
  op.sem = sem;
  op.value = atLeast;
  return op;
}

Op Op::reduce(Addr dst, std::vector<Addr> srcs, std::uint64_t count, DataType dtype, ReduceOp redop,
              std::uint32_t divisor) {
  Op op;
  op.code = OpCode::kReduce;
  op.dst = dst;
  op.srcs = std::move(srcs);
  op.bytes = count * dataTypeSize(dtype);
  op.dtype = dtype;
  op.redop = redop;
  op.divisor = divisor;
  return op;
}

Op Op::putReduce(std::int32_t peer, Addr dst, Addr src, std::uint64_t count, DataType dtype, ReduceOp redop,
                 std::int32_t signalSem, std::uint64_t signalAdd) {
  Op op;
  op.code = OpCode::kPutReduce;
  op.peer = peer;
  op.dst = dst;
  op.src = src;
  op.bytes = count * dataTypeSize(dtype);
  op.dtype = dtype;
  op.redop = redop;
  op.sem = signalSem;
  op.value = signalSem >= 0 ? signalAdd : 0;
  return op;
}

Op Op::multicast(std::vector<std::int32_t> ranks, Addr dst, Addr src, std::uint64_t bytes, std::int32_t signalSem,
                 std::uint64_t signalAdd) {
  Op op;
  op.code = OpCode::kMulticast;
  op.ranks = std::move(ranks);
  op.dst = dst;
  op.src = src;
  op.bytes = bytes;
  op.sem = signalSem;
  op.value = signalSem >= 0 ? signalAdd : 0;
  return op;
}

Op Op::copy(Addr dst, Addr src, std::uint64_t bytes) {
  Op op;
  op.code = OpCode::kCopy;
  op.dst = dst;
  op.src = src;
  op.bytes = bytes;
  return op;
}

Op Op::flush() {
  Op op;
  op.code = OpCode::kFlush;
  return op;
}

int RankProgram::addLane(Initiation init) {
  Lane lane;
  lane.initiation = init;
  lanes.push_back(std::move(lane));
  return static_cast<int>(lanes.size()) - 1;
}

void RankProgram::emit(int lane, Op op) {
  if (lane < 0) throw Error(ErrorCode::kInvalidArgument, "RankProgram::emit: negative lane " + std::to_string(lane));
  if (static_cast<std::size_t>(lane) >= lanes.size()) lanes.resize(static_cast<std::size_t>(lane) + 1);
  lanes[static_cast<std::size_t>(lane)].ops.push_back(std::move(op));
}

std::size_t RankProgram::numOps() const {
  std::size_t n = 0;
  for (const Lane& lane : lanes) n += lane.ops.size();
  return n;
}

namespace {

/// Cursor over a materialized lane. Holds a pointer into the RankProgram, which the source keeps alive.
class VectorLaneCursor final : public LaneCursor {
 public:
  explicit VectorLaneCursor(const std::vector<Op>* ops) : ops_(ops) {}
  bool next(Op& op) override {
    if (pos_ >= ops_->size()) return false;
    op = (*ops_)[pos_++];
    return true;
  }
  [[nodiscard]] std::unique_ptr<LaneCursor> clone() const override { return std::make_unique<VectorLaneCursor>(*this); }

 private:
  const std::vector<Op>* ops_;
  std::size_t pos_ = 0;
};

[[noreturn]] void throwRankOutOfRange(std::int32_t r, std::int32_t nranks) {
  throw Error(ErrorCode::kInvalidArgument,
              "rank " + std::to_string(r) + " out of range: the Program has " + std::to_string(nranks) + " ranks");
}

}  // namespace

std::unique_ptr<LaneCursor> ProgramSource::openLane(std::int32_t r, int lane) const {
  const RankProgram& rp = rank(r);
  if (lane < 0 || static_cast<std::size_t>(lane) >= rp.lanes.size()) {
    throw Error(ErrorCode::kInvalidArgument, "rank " + std::to_string(r) + " has no lane " + std::to_string(lane) +
                                                 " (it has " + std::to_string(rp.lanes.size()) + ")");
  }
  return std::make_unique<VectorLaneCursor>(&rp.lanes[static_cast<std::size_t>(lane)].ops);
}

Program::Program(ProgramHeader header, std::vector<RankProgram> ranks)
    : header_(std::move(header)), ranks_(std::move(ranks)) {
  if (header_.nranks < 0) {
    throw Error(ErrorCode::kInvalidArgument, "Program: negative rank count " + std::to_string(header_.nranks));
  }
  // A Program built with fewer rank programs than ranks gets empty ones (ranks without work).
  if (ranks_.size() > static_cast<std::size_t>(header_.nranks)) {
    throw Error(ErrorCode::kInvalidArgument, "Program: " + std::to_string(ranks_.size()) +
                                                 " rank programs for a header of " + std::to_string(header_.nranks) +
                                                 " ranks");
  }
  ranks_.resize(static_cast<std::size_t>(header_.nranks));
}

Program Program::materialize(const ProgramSource& source) {
  const ProgramHeader& header = source.header();
  std::vector<RankProgram> ranks;
  ranks.reserve(static_cast<std::size_t>(std::max(header.nranks, 0)));
  for (std::int32_t r = 0; r < header.nranks; ++r) ranks.push_back(source.rank(r));
  return Program(header, std::move(ranks));
}

const RankProgram& Program::rank(std::int32_t r) const {
  if (r < 0 || static_cast<std::size_t>(r) >= ranks_.size()) throwRankOutOfRange(r, header_.nranks);
  return ranks_[static_cast<std::size_t>(r)];
}

RankProgram& Program::mutableRank(std::int32_t r) {
  // mutableHeader() may have grown nranks since construction; follow it.
  if (r >= 0 && r < header_.nranks && static_cast<std::size_t>(r) >= ranks_.size()) {
    ranks_.resize(static_cast<std::size_t>(header_.nranks));
  }
  if (r < 0 || static_cast<std::size_t>(r) >= ranks_.size()) throwRankOutOfRange(r, header_.nranks);
  return ranks_[static_cast<std::size_t>(r)];
}

std::size_t Program::numOps() const {
  std::size_t n = 0;
  for (const RankProgram& rp : ranks_) n += rp.numOps();
  return n;
}

const RankProgram& LazyProgram::rank(std::int32_t r) const {
  if (r < 0 || r >= header_.nranks) throwRankOutOfRange(r, header_.nranks);
  Slot& slot = slots_[static_cast<std::size_t>(r)];
  // call_once also publishes the generated program to every thread that waits on it.
  std::call_once(slot.once, [&] {
    // A generator that threw earlier may have left ops behind; call_once lets the next caller retry.
    slot.program = RankProgram{};
    emit_->run(r, slot.program);
  });
  return slot.program;
}

std::vector<std::uint64_t> semaphoreAdvance(const RankProgram& rp, std::int32_t numSemaphores) {
  std::vector<std::uint64_t> advance(static_cast<std::size_t>(std::max(numSemaphores, 0)), 0);
  for (const RankProgram::Lane& lane : rp.lanes) {
    for (const Op& op : lane.ops) {
      if (op.code != OpCode::kWait || op.sem < 0 || op.sem >= numSemaphores) continue;
      std::uint64_t& a = advance[static_cast<std::size_t>(op.sem)];
      a = std::max(a, op.value);
    }
  }
  return advance;
}

}  // namespace copro::core
