/// The reference interpreter: all ranks of a Program in one thread, over real memory, in a seeded
/// pseudo-random interleaving of lanes.
#include "copro/core/interpreter.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "copro/core/reduce.hpp"
#include "program_access.hpp"

namespace copro::core {
namespace {

/// splitmix64: a tiny, fully specified generator, so an interleaving is reproducible from its seed on any
/// platform.
class SplitMix {
 public:
  explicit SplitMix(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }

 private:
  std::uint64_t state_;
};

struct Region {
  std::byte* base = nullptr;
  std::uint64_t limit = 0;  ///< accessible bytes
};

class Interpreter {
 public:
  Interpreter(const ProgramSource& program, std::vector<InterpreterRank>& ranks, bool inPlace, std::uint64_t seed)
      : program_(program), header_(program.header()), ranks_(ranks), inPlace_(inPlace), seed_(seed), rng_(seed) {}

  Status run() {
    COPRO_RETURN_IF_ERROR(setup());
    while (!runnable_.empty()) {
      const std::size_t pick = rng_.below(runnable_.size());
      const int id = runnable_[pick];
      // A short burst from one lane, then another random lane: interleavings differ at every op boundary
      // without making runs of one lane rare.
      const std::size_t burst = 1 + rng_.below(4);
      for (std::size_t b = 0; b < burst; ++b) {
        LaneState& l = lanes_[static_cast<std::size_t>(id)];
        if (!l.has) {
          ++finished_;
          removeRunnable(pick);
          break;
        }
        if (l.op.code == OpCode::kWait) {
          COPRO_RETURN_IF_ERROR(checkSem(l, l.op.sem));
          if (sem(l.rank, l.op.sem) < l.op.value) {
            waiters_[semIndex(l.rank, l.op.sem)].push_back(id);
            removeRunnable(pick);
            break;
          }
        } else {
          COPRO_RETURN_IF_ERROR(execute(l));
        }
        COPRO_RETURN_IF_ERROR(fetch(l));
      }
    }
    if (finished_ != lanes_.size()) return deadlock();
    for (std::size_t r = 0; r < ranks_.size(); ++r) {
      InterpreterRank& ir = ranks_[r];
      ir.scratch = std::move(scratch_[r]);
      ir.layout = std::move(layout_[r]);
      ir.semaphores.assign(sems_.begin() + static_cast<std::ptrdiff_t>(r * numSems()),
                           sems_.begin() + static_cast<std::ptrdiff_t>((r + 1) * numSems()));
    }
    return {};
  }

 private:
  struct LaneState {
    std::int32_t rank = 0;
    int lane = 0;
    std::unique_ptr<LaneCursor> cursor;
    Op op;
    bool has = false;
    std::int64_t index = -1;
  };

  [[nodiscard]] std::size_t numSems() const { return static_cast<std::size_t>(std::max(header_.numSemaphores, 0)); }
  [[nodiscard]] std::size_t semIndex(std::int32_t r, std::int32_t s) const {
    return static_cast<std::size_t>(r) * numSems() + static_cast<std::size_t>(s);
  }
  std::uint64_t& sem(std::int32_t r, std::int32_t s) { return sems_[semIndex(r, s)]; }

  Status setup() {
    const std::int32_t n = header_.nranks;
    if (n < 0 || static_cast<std::size_t>(n) != ranks_.size()) {
      return {ErrorCode::kInvalidArgument, "interpretProgram: the Program has " + std::to_string(n) + " ranks but " +
                                               std::to_string(ranks_.size()) + " InterpreterRanks were given"};
    }
    const auto checkDeclared = [&](const std::vector<std::uint64_t>& declared, const char* what) -> Status {
      if (!declared.empty() && declared.size() != static_cast<std::size_t>(n)) {
        return {ErrorCode::kInvalidArgument, std::string("interpretProgram: header.") + what + " has " +
                                                 std::to_string(declared.size()) + " entries for " + std::to_string(n) +
                                                 " ranks"};
      }
      return {};
    };
    COPRO_RETURN_IF_ERROR(checkDeclared(header_.inputBytes, "inputBytes"));
    COPRO_RETURN_IF_ERROR(checkDeclared(header_.outputBytes, "outputBytes"));

    scratch_.resize(static_cast<std::size_t>(n));
    layout_.resize(static_cast<std::size_t>(n));
    regions_.resize(static_cast<std::size_t>(n));
    sems_.assign(static_cast<std::size_t>(n) * numSems(), 0);
    waiters_.assign(static_cast<std::size_t>(n) * numSems(), {});
    SplitMix garbage(seed_ ^ 0x5c7a7c4bULL);
    for (std::int32_t r = 0; r < n; ++r) {
      const auto ri = static_cast<std::size_t>(r);
      InterpreterRank& ir = ranks_[ri];
      const std::string who = "interpretProgram: rank " + std::to_string(r) + ": ";
      std::uint64_t outLimit = ir.output.size();
      // UINT64_MAX in the header means "fixed by the call" (all-to-all-v): use the buffer as given.
      constexpr std::uint64_t kByCall = std::numeric_limits<std::uint64_t>::max();
      if (!header_.outputBytes.empty() && header_.outputBytes[ri] != kByCall) {
        if (ir.output.size() < header_.outputBytes[ri]) {
          return {ErrorCode::kInvalidArgument, who + "output has " + std::to_string(ir.output.size()) +
                                                   " bytes, the Program needs " +
                                                   std::to_string(header_.outputBytes[ri])};
        }
        outLimit = header_.outputBytes[ri];
      }
      Region input{ir.input.data(), ir.input.size()};
      if (inPlace_) {
        input = Region{ir.output.data(), outLimit};
      } else if (!header_.inputBytes.empty() && header_.inputBytes[ri] != kByCall) {
        if (ir.input.size() < header_.inputBytes[ri]) {
          return {ErrorCode::kInvalidArgument, who + "input has " + std::to_string(ir.input.size()) +
                                                   " bytes, the Program needs " +
                                                   std::to_string(header_.inputBytes[ri])};
        }
        input.limit = header_.inputBytes[ri];
      }
      if (ir.layoutInit.size() > header_.layoutWords) {
        return {ErrorCode::kInvalidArgument, who + "layoutInit has " + std::to_string(ir.layoutInit.size()) +
                                                 " words, the Program's layout has " +
                                                 std::to_string(header_.layoutWords)};
      }
      scratch_[ri].resize(header_.scratchBytes);
      for (std::byte& b : scratch_[ri]) b = static_cast<std::byte>(garbage.next());
      layout_[ri].assign(header_.layoutWords, 0);
      std::copy(ir.layoutInit.begin(), ir.layoutInit.end(), layout_[ri].begin());

      std::vector<Region>& regs = regions_[ri];
      regs.resize(static_cast<std::size_t>(kNumBuffers) + ir.extra.size());
      regs[static_cast<std::size_t>(BufferId::kInput)] = input;
      regs[static_cast<std::size_t>(BufferId::kOutput)] = Region{ir.output.data(), outLimit};
      regs[static_cast<std::size_t>(BufferId::kScratch)] = Region{scratch_[ri].data(), scratch_[ri].size()};
      regs[static_cast<std::size_t>(BufferId::kLayout)] =
          Region{reinterpret_cast<std::byte*>(layout_[ri].data()), layout_[ri].size() * sizeof(std::uint64_t)};
      for (std::size_t e = 0; e < ir.extra.size(); ++e) {
        regs[static_cast<std::size_t>(kNumBuffers) + e] = Region{ir.extra[e].data(), ir.extra[e].size()};
      }
    }
    domains_ = std::make_unique<detail::DomainMap>(header_);

    for (std::int32_t r = 0; r < n; ++r) {
      const int nl = program_.numLanes(r);
      for (int l = 0; l < nl; ++l) {
        LaneState s;
        s.rank = r;
        s.lane = l;
        s.cursor = program_.openLane(r, l);
        lanes_.push_back(std::move(s));
      }
    }
    for (std::size_t i = 0; i < lanes_.size(); ++i) {
      COPRO_RETURN_IF_ERROR(fetch(lanes_[i]));
      runnable_.push_back(static_cast<int>(i));
    }
    return {};
  }

  Status fetch(LaneState& l) {
    l.has = l.cursor->next(l.op);
    if (l.has) ++l.index;
    return {};
  }

  void removeRunnable(std::size_t pick) {
    runnable_[pick] = runnable_.back();
    runnable_.pop_back();
  }

  Status fail(const LaneState& l, const std::string& what) const {
    return {ErrorCode::kInvalidProgram, detail::opLabel(l.rank, l.lane, l.index, l.op) + ": " + what};
  }

  Status checkRank(const LaneState& l, std::int32_t r, const char* role) const {
    if (r < 0 || r >= header_.nranks) {
      return fail(l, std::string(role) + " rank " + std::to_string(r) + " is out of range (nranks " +
                         std::to_string(header_.nranks) + ")");
    }
    return {};
  }

  Status checkSem(const LaneState& l, std::int32_t s) const {
    if (s < 0 || s >= header_.numSemaphores) {
      return fail(l, "semaphore " + std::to_string(s) + " is out of range (numSemaphores " +
                         std::to_string(header_.numSemaphores) + ")");
    }
    return {};
  }

  /// Resolves (rank, buf, [offset, offset+bytes)) to memory, checking that it exists and is in bounds.
  Status locate(const LaneState& l, const char* role, std::int32_t r, BufferId buf, std::uint64_t offset,
                std::uint64_t bytes, std::byte*& out) const {
    COPRO_RETURN_IF_ERROR(checkRank(l, r, role));
    const std::vector<Region>& regs = regions_[static_cast<std::size_t>(r)];
    const auto b = static_cast<std::size_t>(buf);
    if (b >= regs.size()) {
      return fail(l, std::string(role) + " buffer " + bufferName(buf) + " of rank " + std::to_string(r) +
                         " does not exist (the call has " + std::to_string(regs.size() - kNumBuffers) +
                         " extra buffers)");
    }
    const Region& reg = regs[b];
    if (offset > reg.limit || bytes > reg.limit - offset) {
      return fail(l, std::string(role) + " " + detail::rangeText(buf, offset, bytes) + " of rank " + std::to_string(r) +
                         " is out of bounds (" + bufferName(buf) + " has " + std::to_string(reg.limit) + " bytes)");
    }
    out = reg.base + offset;
    return {};
  }

  Status signal(const LaneState& l, std::int32_t target, std::int32_t s, std::uint64_t add) {
    COPRO_RETURN_IF_ERROR(checkRank(l, target, "signal target"));
    COPRO_RETURN_IF_ERROR(checkSem(l, s));
    std::uint64_t& v = sem(target, s);
    v += add;
    // Wake the lanes of `target` waiting on `s` whose threshold is now reached.
    std::vector<int>& w = waiters_[semIndex(target, s)];
    for (std::size_t i = 0; i < w.size();) {
      if (lanes_[static_cast<std::size_t>(w[i])].op.value <= v) {
        runnable_.push_back(w[i]);
        w[i] = w.back();
        w.pop_back();
      } else {
        ++i;
      }
    }
    return {};
  }

  static bool overlaps(const std::byte* a, const std::byte* b, std::uint64_t n) {
    const auto pa = reinterpret_cast<std::uintptr_t>(a);
    const auto pb = reinterpret_cast<std::uintptr_t>(b);
    return pa < pb + n && pb < pa + n;
  }

  Status checkReduceShape(const LaneState& l, const Op& op, std::uint64_t bytes) const {
    const std::size_t size = dataTypeSize(op.dtype);
    if (size == 0 || bytes % size != 0) {
      return fail(l, std::to_string(bytes) + " bytes is not a whole number of " + std::string(dataTypeName(op.dtype)) +
                         " elements");
    }
    return {};
  }

  Status checkDomain(const LaneState& l, const Addr& a, const char* role) const {
    if (a.rank == kSelf || a.rank == l.rank) return {};
    COPRO_RETURN_IF_ERROR(checkRank(l, a.rank, role));
    if (!domains_->same(l.rank, a.rank)) {
      return fail(l, std::string(role) + " addresses rank " + std::to_string(a.rank) +
                         " directly, outside the load/store domain of rank " + std::to_string(l.rank));
    }
    return {};
  }

  Status execute(LaneState& l) {
    const Op& op = l.op;
    const std::int32_t self = l.rank;
    detail::Geometry g;
    const std::vector<std::uint64_t>& words = layout_[static_cast<std::size_t>(self)];
    if (std::string err = detail::resolveGeometry(op, words.data(), words.size(), g); !err.empty()) return fail(l, err);
    const std::uint64_t srcOff = op.src.offset + g.srcShift;
    const std::uint64_t dstOff = op.dst.offset + g.dstShift;
    if ((g.srcShift != 0 && srcOff < op.src.offset) || (g.dstShift != 0 && dstOff < op.dst.offset)) {
      return fail(l, "indirect offset overflows");
    }

    switch (op.code) {
      case OpCode::kPut:
      case OpCode::kPutReduce:
      case OpCode::kMulticast: {
        if (op.src.rank != kSelf && op.src.rank != self) {
          return fail(l, "src names rank " + std::to_string(op.src.rank) + ", but the source of a " +
                             std::string(opCodeName(op.code)) + " is local");
        }
        std::vector<std::int32_t> targets;
        if (op.code == OpCode::kMulticast) {
          if (op.ranks.empty()) return fail(l, "multicast has no target ranks");
          if (op.dst.rank != kSelf) return fail(l, "a multicast dst names no rank (the targets are `ranks`)");
          targets = op.ranks;
        } else {
          if (op.dst.rank != kSelf && op.dst.rank != op.peer) {
            return fail(l, "dst names rank " + std::to_string(op.dst.rank) + " but peer is " + std::to_string(op.peer));
          }
          targets.push_back(op.peer);
        }
        if (op.code == OpCode::kPutReduce) COPRO_RETURN_IF_ERROR(checkReduceShape(l, op, g.bytes));
        std::byte* src = nullptr;
        COPRO_RETURN_IF_ERROR(locate(l, "src", self, op.src.buf, srcOff, g.bytes, src));
        for (std::int32_t t : targets) {
          std::byte* dst = nullptr;
          COPRO_RETURN_IF_ERROR(checkRank(l, t, "target"));
          COPRO_RETURN_IF_ERROR(locate(l, "dst", t, op.dst.buf, dstOff, g.bytes, dst));
          if (op.code == OpCode::kPutReduce) {
            if (dst != src && overlaps(dst, src, g.bytes)) return fail(l, "src and dst overlap partially");
            const void* srcs[2] = {dst, src};
            reduceInto(dst, srcs, 2, g.bytes / dataTypeSize(op.dtype), op.dtype, op.redop, op.divisor);
          } else if (g.bytes > 0) {
            std::memmove(dst, src, g.bytes);
          }
          if (op.sem >= 0) COPRO_RETURN_IF_ERROR(signal(l, t, op.sem, op.value));
        }
        return {};
      }
      case OpCode::kGet: {
        if (op.src.rank != kSelf && op.src.rank != op.peer) {
          return fail(l, "src names rank " + std::to_string(op.src.rank) + " but peer is " + std::to_string(op.peer));
        }
        if (op.dst.rank != kSelf && op.dst.rank != self) {
          return fail(l, "dst names rank " + std::to_string(op.dst.rank) + ", but the destination of a get is local");
        }
        std::byte* src = nullptr;
        std::byte* dst = nullptr;
        COPRO_RETURN_IF_ERROR(locate(l, "src", op.peer, op.src.buf, srcOff, g.bytes, src));
        COPRO_RETURN_IF_ERROR(locate(l, "dst", self, op.dst.buf, dstOff, g.bytes, dst));
        if (g.bytes > 0) std::memmove(dst, src, g.bytes);
        return {};
      }
      case OpCode::kSignal:
        return signal(l, op.peer, op.sem, op.value);
      case OpCode::kWait:
        return {};  // handled by the scheduler
      case OpCode::kReduce: {
        if (op.srcs.empty()) return fail(l, "reduce has no sources");
        COPRO_RETURN_IF_ERROR(checkReduceShape(l, op, g.bytes));
        COPRO_RETURN_IF_ERROR(checkDomain(l, op.dst, "dst"));
        std::byte* dst = nullptr;
        COPRO_RETURN_IF_ERROR(locate(l, "dst", detail::addrRank(op.dst, self), op.dst.buf, dstOff, g.bytes, dst));
        std::vector<const void*> srcs;
        srcs.reserve(op.srcs.size());
        for (std::size_t i = 0; i < op.srcs.size(); ++i) {
          const Addr& a = op.srcs[i];
          const std::string role = "srcs[" + std::to_string(i) + "]";
          COPRO_RETURN_IF_ERROR(checkDomain(l, a, role.c_str()));
          const std::uint64_t off = a.offset + g.srcShift;
          if (off < a.offset) return fail(l, "indirect offset overflows");
          std::byte* p = nullptr;
          COPRO_RETURN_IF_ERROR(locate(l, role.c_str(), detail::addrRank(a, self), a.buf, off, g.bytes, p));
          if (p != dst && overlaps(p, dst, g.bytes)) return fail(l, role + " and dst overlap partially");
          srcs.push_back(p);
        }
        reduceInto(dst, srcs.data(), static_cast<int>(srcs.size()), g.bytes / dataTypeSize(op.dtype), op.dtype,
                   op.redop, op.divisor);
        return {};
      }
      case OpCode::kCopy: {
        COPRO_RETURN_IF_ERROR(checkDomain(l, op.dst, "dst"));
        COPRO_RETURN_IF_ERROR(checkDomain(l, op.src, "src"));
        std::byte* src = nullptr;
        std::byte* dst = nullptr;
        COPRO_RETURN_IF_ERROR(locate(l, "src", detail::addrRank(op.src, self), op.src.buf, srcOff, g.bytes, src));
        COPRO_RETURN_IF_ERROR(locate(l, "dst", detail::addrRank(op.dst, self), op.dst.buf, dstOff, g.bytes, dst));
        if (g.bytes > 0) std::memmove(dst, src, g.bytes);
        return {};
      }
      case OpCode::kFlush:
        return {};  // every op completed when it executed
    }
    return fail(l, "unknown op code " + std::to_string(static_cast<int>(op.code)));
  }

  Status deadlock() const {
    std::vector<const LaneState*> blocked;
    for (const LaneState& l : lanes_) {
      if (l.has) blocked.push_back(&l);
    }
    std::string msg = "deadlock: " + std::to_string(blocked.size()) + " lane(s) blocked forever:";
    constexpr std::size_t kMaxListed = 16;
    for (std::size_t i = 0; i < blocked.size() && i < kMaxListed; ++i) {
      const LaneState& l = *blocked[i];
      msg += "\n  " + detail::opLabel(l.rank, l.lane, l.index, l.op) + ": waits for semaphore " +
             std::to_string(l.op.sem) + " >= " + std::to_string(l.op.value) + " (current " +
             std::to_string(sems_[semIndex(l.rank, l.op.sem)]) + ")";
    }
    if (blocked.size() > kMaxListed) msg += "\n  ... and " + std::to_string(blocked.size() - kMaxListed) + " more";
    return {ErrorCode::kInvalidProgram, msg};
  }

  const ProgramSource& program_;
  const ProgramHeader& header_;
  std::vector<InterpreterRank>& ranks_;
  bool inPlace_;
  std::uint64_t seed_;
  SplitMix rng_;

  std::vector<std::vector<std::byte>> scratch_;
  std::vector<std::vector<std::uint64_t>> layout_;
  std::vector<std::vector<Region>> regions_;
  std::vector<std::uint64_t> sems_;
  std::unique_ptr<detail::DomainMap> domains_;

  std::vector<LaneState> lanes_;
  std::vector<int> runnable_;
  std::vector<std::vector<int>> waiters_;
  std::size_t finished_ = 0;
};

/// First differing byte of two buffers, or -1.
std::int64_t firstDifference(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<std::int64_t>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<std::int64_t>(n);
}

}  // namespace

Status interpretProgram(const ProgramSource& program, std::vector<InterpreterRank>& ranks, bool inPlace,
                        std::uint64_t seed) {
  try {
    Interpreter interp(program, ranks, inPlace, seed);
    return interp.run();
  } catch (const Error& e) {
    // A lazy Program's generator may throw; report it like any other failure of the call.
    return {e.code(), e.message()};
  } catch (const std::exception& e) {
    return {ErrorCode::kInternal, std::string("interpretProgram: ") + e.what()};
  }
}

Status interpretProgramRepeated(const ProgramSource& program, std::vector<InterpreterRank>& ranks, int runs,
                                bool inPlace, std::uint64_t seed) {
  if (runs < 1) return {ErrorCode::kInvalidArgument, "interpretProgramRepeated: runs must be >= 1"};
  const std::vector<InterpreterRank> initial = ranks;
  Status st = interpretProgram(program, ranks, inPlace, seed);
  if (!st.ok()) return {st.code(), "seed " + std::to_string(seed) + ": " + st.message()};
  for (int k = 1; k < runs; ++k) {
    const std::uint64_t s = seed + static_cast<std::uint64_t>(k);
    std::vector<InterpreterRank> other = initial;
    st = interpretProgram(program, other, inPlace, s);
    if (!st.ok()) return {st.code(), "seed " + std::to_string(s) + ": " + st.message()};
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      const auto differ = [&](const std::vector<std::byte>& a, const std::vector<std::byte>& b,
                              const std::string& what) -> Status {
        const std::int64_t d = firstDifference(a, b);
        if (d < 0) return {};
        return {ErrorCode::kInvalidProgram, "the result depends on the interleaving: rank " + std::to_string(r) + " " +
                                                what + " byte " + std::to_string(d) + " differs between seed " +
                                                std::to_string(seed) + " and seed " + std::to_string(s) +
                                                " (a missing wait, credit or flush?)"};
      };
      if (!inPlace) COPRO_RETURN_IF_ERROR(differ(ranks[r].input, other[r].input, "input"));
      COPRO_RETURN_IF_ERROR(differ(ranks[r].output, other[r].output, "output"));
      for (std::size_t e = 0; e < ranks[r].extra.size(); ++e) {
        COPRO_RETURN_IF_ERROR(differ(ranks[r].extra[e], other[r].extra[e], "extra" + std::to_string(e)));
      }
      if (ranks[r].layout != other[r].layout) {
        return {ErrorCode::kInvalidProgram, "the result depends on the interleaving: rank " + std::to_string(r) +
                                                " layout differs between seed " + std::to_string(seed) + " and seed " +
                                                std::to_string(s) + " (a missing wait, credit or flush?)"};
      }
    }
  }
  return {};
}

}  // namespace copro::core
