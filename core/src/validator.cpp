/// The Program validator. Static checks per op (malformed, bounds, domain), semaphore accounting
/// (satisfiable waits, leftover signals), a greedy execution with cursors and counters (deadlock; it is
/// exact because semaphores are monotone, so greedy execution is confluent), and a vector-clock
/// happens-before analysis over that execution (races). See docs/program-ir.md for the rules.
#include "copro/core/validator.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "program_access.hpp"
#include "validator_ll.hpp"

namespace copro::core {
namespace {

using Kind = ValidationIssue::Kind;
constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
/// Above this much memory for vector clocks the race check is skipped (with a note).
constexpr std::uint64_t kMaxClockBytes = 512ULL << 20;
/// Race pairs examined before the check gives up (with a note): bounds the quadratic worst case.
constexpr std::uint64_t kMaxPairChecks = 400'000'000ULL;
/// Race issues listed at most; more are counted in the note.
constexpr std::size_t kMaxRaceIssues = 200;

std::uint64_t saturatingAdd(std::uint64_t a, std::uint64_t b) {
  return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max() : a + b;
}

struct LaneRef {
  std::int32_t rank = 0;
  int lane = 0;
  const std::vector<Op>* ops = nullptr;
};

/// The signals one lane sends into one (rank, semaphore), in program order.
struct SignalSource {
  std::uint32_t lane = 0;
  std::vector<std::uint32_t> index;  ///< op index of each signal
  std::vector<std::uint64_t> cum;    ///< cumulative add up to and including it
  [[nodiscard]] std::uint64_t total() const { return cum.empty() ? 0 : cum.back(); }
};

struct SemAccount {
  std::vector<SignalSource> sources;
  std::uint64_t total = 0;
  std::uint64_t maxWait = 0;
};

/// A release of an asynchronous access: it is complete once a lane knows channel `chan` reached `index`.
struct Release {
  std::uint32_t chan = 0;
  std::uint32_t index = 0;
};

/// One memory access of one op.
struct Access {
  std::uint32_t lane = 0;  ///< global lane id
  std::uint32_t index = 0;
  std::int32_t rank = 0;  ///< whose memory
  std::uint16_t buf = 0;
  bool write = false;
  bool async = false;
  std::uint64_t lo = 0, hi = 0;
  std::uint32_t flush = kNone;  ///< the lane's next flush (async only)
  std::uint32_t relBegin = 0, relCount = 0;
  std::uint32_t snap = 0;  ///< clock snapshot of the issuing lane (filled after the execution)
};

class Validator {
 public:
  Validator(const ProgramSource& program, const ValidatorOptions& options)
      : program_(program), h_(program.header()), options_(options) {}

  ValidationResult run() {
    if (!checkHeader()) return std::move(result_);
    for (std::int32_t r = 0; r < h_.nranks; ++r) {
      const RankProgram& rp = program_.rank(r);
      for (std::size_t l = 0; l < rp.lanes.size(); ++l) {
        lanes_.push_back(LaneRef{r, static_cast<int>(l), &rp.lanes[l].ops});
        totalOps_ += rp.lanes[l].ops.size();
        if (static_cast<std::uint8_t>(rp.lanes[l].initiation) > static_cast<std::uint8_t>(Initiation::kOffload)) {
          addIssue(Kind::kMalformed, r, static_cast<int>(l), -1,
                   "rank " + std::to_string(r) + " lane " + std::to_string(l) + ": unknown initiation " +
                       std::to_string(static_cast<int>(rp.lanes[l].initiation)));
        }
      }
    }
    domains_ = std::make_unique<detail::DomainMap>(h_);
    semAccounts_.resize(static_cast<std::size_t>(h_.nranks) * numSems());

    raceCheck_ = options_.checkRaces;
    if (raceCheck_ && totalOps_ > options_.maxOpsForRaceCheck) {
      raceCheck_ = false;
      addNote("race check skipped: " + std::to_string(totalOps_) + " ops (maxOpsForRaceCheck " +
              std::to_string(options_.maxOpsForRaceCheck) + ")");
    }

    for (std::uint32_t id = 0; id < lanes_.size(); ++id) checkLane(id);
    for (detail::LLIssue& i : detail::llProtocolIssues(program_, *domains_)) {
      addIssue(Kind::kMalformed, i.rank, i.lane, i.op, std::move(i.message));
    }
    if (raceCheck_ && malformed_) {
      raceCheck_ = false;
      addNote("race check skipped: malformed ops");
    }
    checkAccounting();
    simulate();
    if (raceCheck_) checkRaces();
    return std::move(result_);
  }

 private:
  [[nodiscard]] std::size_t numSems() const { return static_cast<std::size_t>(std::max(h_.numSemaphores, 0)); }
  [[nodiscard]] bool validRank(std::int32_t r) const { return r >= 0 && r < h_.nranks; }
  [[nodiscard]] bool validSem(std::int32_t s) const { return s >= 0 && s < h_.numSemaphores; }
  SemAccount& account(std::int32_t r, std::int32_t s) {
    return semAccounts_[static_cast<std::size_t>(r) * numSems() + static_cast<std::size_t>(s)];
  }

  void addIssue(Kind kind, std::int32_t rank, int lane, std::int64_t op, std::string message) {
    if (kind == Kind::kMalformed) malformed_ = true;
    result_.issues.push_back(ValidationIssue{kind, rank, lane, op, std::move(message)});
  }
  void addOpIssue(Kind kind, std::uint32_t laneId, std::uint32_t index, const std::string& what) {
    const LaneRef& l = lanes_[laneId];
    const Op& op = (*l.ops)[index];
    addIssue(kind, l.rank, l.lane, index, detail::opLabel(l.rank, l.lane, index, op) + ": " + what);
  }
  void addNote(const std::string& note) {
    if (!result_.note.empty()) result_.note += "; ";
    result_.note += note;
  }

  // ---- header ----------------------------------------------------------------------------------

  bool checkHeader() {
    if (h_.nranks < 0) {
      addIssue(Kind::kMalformed, -1, -1, -1, "header: nranks is " + std::to_string(h_.nranks));
      return false;
    }
    if (h_.numSemaphores < 0) {
      addIssue(Kind::kMalformed, -1, -1, -1, "header: numSemaphores is " + std::to_string(h_.numSemaphores));
      return false;
    }
    const auto perRank = [&](const std::vector<std::uint64_t>& v, const char* what) {
      if (!v.empty() && v.size() != static_cast<std::size_t>(h_.nranks)) {
        addIssue(Kind::kMalformed, -1, -1, -1,
                 std::string("header: ") + what + " has " + std::to_string(v.size()) + " entries for " +
                     std::to_string(h_.nranks) + " ranks");
        return false;
      }
      return true;
    };
    bool ok = perRank(h_.inputBytes, "inputBytes");
    ok = perRank(h_.outputBytes, "outputBytes") && ok;
    std::vector<int> group(static_cast<std::size_t>(h_.nranks), -1);
    for (std::size_t g = 0; g < h_.loadStoreDomains.size(); ++g) {
      for (std::int32_t r : h_.loadStoreDomains[g]) {
        if (!validRank(r)) {
          addIssue(Kind::kMalformed, -1, -1, -1,
                   "header: loadStoreDomains[" + std::to_string(g) + "] lists rank " + std::to_string(r) +
                       ", out of range (nranks " + std::to_string(h_.nranks) + ")");
          ok = false;
        } else if (group[static_cast<std::size_t>(r)] >= 0) {
          addIssue(Kind::kMalformed, -1, -1, -1,
                   "header: rank " + std::to_string(r) + " is in loadStoreDomains[" +
                       std::to_string(group[static_cast<std::size_t>(r)]) + "] and loadStoreDomains[" +
                       std::to_string(g) + "]");
          ok = false;
        } else {
          group[static_cast<std::size_t>(r)] = static_cast<int>(g);
        }
      }
    }
    if (!options_.layout.empty() && options_.layout.size() != static_cast<std::size_t>(h_.nranks)) {
      throw Error(ErrorCode::kInvalidArgument, "validateProgram: options.layout has " +
                                                   std::to_string(options_.layout.size()) + " ranks, the Program " +
                                                   std::to_string(h_.nranks));
    }
    if (!ok) malformed_ = true;
    return ok;
  }

  // ---- per-op checks ---------------------------------------------------------------------------

  /// The declared size of a buffer, or kNone-like max when it is not declared (extras).
  [[nodiscard]] bool bufferLimit(std::int32_t rank, BufferId buf, std::uint64_t& limit) const {
    const auto r = static_cast<std::size_t>(rank);
    switch (buf) {
      case BufferId::kInput:
        if (h_.inputBytes.empty()) return false;
        limit = h_.inputBytes[r];
        return true;
      case BufferId::kOutput:
        if (h_.outputBytes.empty()) return false;
        limit = h_.outputBytes[r];
        return true;
      case BufferId::kScratch:
        limit = h_.scratchBytes;
        return true;
      case BufferId::kLayout:
        limit = static_cast<std::uint64_t>(h_.layoutWords) * sizeof(std::uint64_t);
        return true;
      default:
        return false;  // extra buffers: their sizes are the call's, not the Program's
    }
  }

  /// Context of the op being checked.
  struct OpCtx {
    std::uint32_t laneId;
    std::uint32_t index;
    std::int32_t self;
    const Op* op;
    detail::Geometry geo;
    bool geoKnown;  ///< false for an indirect op without layout words to resolve it
  };

  bool checkAddrRank(const OpCtx& c, std::int32_t r, const std::string& role) {
    if (validRank(r)) return true;
    addOpIssue(Kind::kMalformed, c.laneId, c.index,
               role + " rank " + std::to_string(r) + " is out of range (nranks " + std::to_string(h_.nranks) + ")");
    return false;
  }

  /// Bounds check plus, for the race check, the access record.
  void access(const OpCtx& c, const std::string& role, std::int32_t rank, BufferId buf, std::uint64_t offset,
              bool write, bool async, std::vector<Release> releases, std::uint32_t flush) {
    if (!c.geoKnown) return;
    const std::uint64_t bytes = c.geo.bytes;
    std::uint64_t limit = 0;
    if (buf == BufferId::kInput && write) {
      addOpIssue(Kind::kMalformed, c.laneId, c.index,
                 role + " writes the input buffer of rank " + std::to_string(rank) +
                     ", which is read-only (the user's send buffer)");
      return;
    }
    if (bufferLimit(rank, buf, limit) && (offset > limit || bytes > limit - offset)) {
      addOpIssue(Kind::kOutOfBounds, c.laneId, c.index,
                 role + " " + detail::rangeText(buf, offset, bytes) + " of rank " + std::to_string(rank) +
                     " is out of bounds (" + bufferName(buf) + " has " + std::to_string(limit) + " bytes)");
      return;
    }
    if (!raceCheck_ || bytes == 0) return;
    Access a;
    a.lane = c.laneId;
    a.index = c.index;
    a.rank = rank;
    a.buf = static_cast<std::uint16_t>(buf);
    a.write = write;
    a.async = async;
    a.lo = offset;
    a.hi = offset + bytes;
    a.flush = flush;
    a.relBegin = static_cast<std::uint32_t>(releases_.size());
    a.relCount = static_cast<std::uint32_t>(releases.size());
    releases_.insert(releases_.end(), releases.begin(), releases.end());
    accesses_.push_back(a);
  }

  std::uint32_t channel(std::uint32_t laneId, std::int32_t target) {
    const std::uint64_t key = (static_cast<std::uint64_t>(laneId) << 32) | static_cast<std::uint32_t>(target);
    auto [it, inserted] = channels_.try_emplace(key, static_cast<std::uint32_t>(lanes_.size() + channels_.size()));
    return it->second;
  }

  void checkLane(std::uint32_t laneId) {
    const LaneRef& lane = lanes_[laneId];
    const std::vector<Op>& ops = *lane.ops;
    const std::int32_t self = lane.rank;

    // What completes an op's asynchronous data: the lane's next flush, and the lane's next signal to the
    // target (its own signal included). Signal positions per target, for a binary search.
    std::vector<std::uint32_t> nextFlush;
    std::unordered_map<std::int32_t, std::vector<std::uint32_t>> signalsTo;
    if (raceCheck_) {
      nextFlush.assign(ops.size(), kNone);
      std::uint32_t flush = kNone;
      for (std::size_t k = ops.size(); k-- > 0;) {
        nextFlush[k] = flush;
        if (ops[k].code == OpCode::kFlush) flush = static_cast<std::uint32_t>(k);
      }
      for (std::uint32_t k = 0; k < ops.size(); ++k) {
        const Op& op = ops[k];
        if (!detail::carriesSignal(op)) continue;
        if (op.code == OpCode::kMulticast) {
          for (std::int32_t t : op.ranks) signalsTo[t].push_back(k);
        } else {
          signalsTo[op.peer].push_back(k);
        }
      }
    }

    const std::vector<std::uint64_t>* layoutWords = nullptr;
    if (!options_.layout.empty()) layoutWords = &options_.layout[static_cast<std::size_t>(self)];

    for (std::uint32_t k = 0; k < ops.size(); ++k) {
      const Op& op = ops[k];
      OpCtx c{laneId, k, self, &op, {}, true};
      const auto bad = [&](const std::string& what) { addOpIssue(Kind::kMalformed, laneId, k, what); };

      if (static_cast<int>(op.code) >= kNumOpCodes) {
        bad("unknown op code " + std::to_string(static_cast<int>(op.code)));
        continue;
      }
      const bool reduction = op.code == OpCode::kReduce || op.code == OpCode::kPutReduce;
      if (reduction) {
        if (static_cast<int>(op.dtype) >= kNumDataTypes) {
          bad("unknown data type " + std::to_string(static_cast<int>(op.dtype)));
          continue;
        }
        if (static_cast<int>(op.redop) >= kNumReduceOps) {
          bad("unknown reduce op " + std::to_string(static_cast<int>(op.redop)));
          continue;
        }
      }

      // Indirect fields.
      const Indirect& ind = op.indirect;
      if (ind.active()) {
        bool indOk = true;
        for (std::int32_t slot : {ind.bytesSlot, ind.srcOffsetSlot, ind.dstOffsetSlot}) {
          if (slot != kNoSlot && (slot < 0 || static_cast<std::uint32_t>(slot) >= h_.layoutWords)) {
            bad("indirect slot " + std::to_string(slot) + " is outside the layout (" + std::to_string(h_.layoutWords) +
                " words)");
            indOk = false;
          }
        }
        if (ind.bytesScale == 0) {
          bad("indirect bytesScale is 0");
          indOk = false;
        }
        if (!indOk) continue;
        if (layoutWords != nullptr) {
          std::vector<std::uint64_t> words(h_.layoutWords, 0);
          std::copy_n(layoutWords->begin(), std::min<std::size_t>(layoutWords->size(), words.size()), words.begin());
          if (std::string err = detail::resolveGeometry(op, words.data(), words.size(), c.geo); !err.empty()) {
            addOpIssue(Kind::kOutOfBounds, laneId, k, err);
            continue;
          }
        } else {
          c.geoKnown = false;
        }
        // The executor reads the layout words when it issues the op.
        OpCtx wordCtx = c;
        wordCtx.geoKnown = true;
        wordCtx.geo.bytes = sizeof(std::uint64_t);
        for (std::int32_t slot : {ind.bytesSlot, ind.srcOffsetSlot, ind.dstOffsetSlot}) {
          if (slot == kNoSlot) continue;
          access(wordCtx, "indirect slot", self, BufferId::kLayout,
                 static_cast<std::uint64_t>(slot) * sizeof(std::uint64_t), false, false, {}, kNone);
        }
      } else {
        c.geo = detail::Geometry{op.bytes, 0, 0};
      }
      const std::uint64_t srcOff = op.src.offset + c.geo.srcShift;
      const std::uint64_t dstOff = op.dst.offset + c.geo.dstShift;
      if (c.geoKnown && (srcOff < op.src.offset || dstOff < op.dst.offset)) {
        addOpIssue(Kind::kOutOfBounds, laneId, k, "indirect offset overflows");
        continue;
      }
      if (reduction && c.geoKnown && c.geo.bytes % dataTypeSize(op.dtype) != 0) {
        bad(std::to_string(c.geo.bytes) + " bytes is not a whole number of " + std::string(dataTypeName(op.dtype)) +
            " elements (" + std::to_string(dataTypeSize(op.dtype)) + " bytes each)");
        continue;
      }

      const auto checkSignalSem = [&]() -> bool {
        if (op.sem == -1 && op.code != OpCode::kSignal && op.code != OpCode::kWait) return true;
        if (validSem(op.sem)) return true;
        bad("semaphore " + std::to_string(op.sem) + " is out of range (numSemaphores " +
            std::to_string(h_.numSemaphores) + ")");
        return false;
      };
      const auto releasesTo = [&](std::int32_t target) {
        std::vector<Release> rel;
        if (!raceCheck_) return rel;
        const auto it = signalsTo.find(target);
        if (it == signalsTo.end()) return rel;
        const auto next = std::lower_bound(it->second.begin(), it->second.end(), k);
        if (next != it->second.end()) rel.push_back(Release{channel(laneId, target), *next});
        return rel;
      };
      const auto localSrc = [&]() -> bool {
        if (op.src.rank == kSelf || op.src.rank == self) return true;
        bad("src names rank " + std::to_string(op.src.rank) + ", but the source of a " +
            std::string(opCodeName(op.code)) + " is local (rank " + std::to_string(self) + ")");
        return false;
      };
      const auto recordSignal = [&](std::int32_t target) {
        if (!validRank(target) || !validSem(op.sem)) return;
        SemAccount& acc = account(target, op.sem);
        if (acc.sources.empty() || acc.sources.back().lane != laneId)
          acc.sources.push_back(SignalSource{laneId, {}, {}});
        SignalSource& src = acc.sources.back();
        src.index.push_back(k);
        src.cum.push_back(saturatingAdd(src.total(), op.value));
        acc.total = saturatingAdd(acc.total, op.value);
      };

      switch (op.code) {
        case OpCode::kPut:
        case OpCode::kPutReduce: {
          if (!checkAddrRank(c, op.peer, "peer")) break;
          if (!checkSignalSem()) break;
          if (op.dst.rank != kSelf && op.dst.rank != op.peer) {
            bad("dst names rank " + std::to_string(op.dst.rank) + " but peer is " + std::to_string(op.peer));
            break;
          }
          if (!localSrc()) break;
          const std::uint32_t flush = raceCheck_ ? nextFlush[k] : kNone;
          access(c, "src", self, op.src.buf, srcOff, false, true, releasesTo(op.peer), flush);
          access(c, "dst", op.peer, op.dst.buf, dstOff, true, true, releasesTo(op.peer), flush);
          if (op.sem >= 0) recordSignal(op.peer);
          break;
        }
        case OpCode::kMulticast: {
          if (op.ranks.empty()) {
            bad("multicast has no target ranks");
            break;
          }
          bool ranksOk = true;
          for (std::size_t i = 0; i < op.ranks.size() && ranksOk; ++i) {
            ranksOk = checkAddrRank(c, op.ranks[i], "ranks[" + std::to_string(i) + "]");
            for (std::size_t j = 0; j < i && ranksOk; ++j) {
              if (op.ranks[j] == op.ranks[i]) {
                bad("rank " + std::to_string(op.ranks[i]) + " appears twice in ranks");
                ranksOk = false;
              }
            }
          }
          if (!ranksOk || !checkSignalSem()) break;
          if (op.dst.rank != kSelf) {
            bad("dst names rank " + std::to_string(op.dst.rank) + "; a multicast's targets are its ranks");
            break;
          }
          if (!localSrc()) break;
          const std::uint32_t flush = raceCheck_ ? nextFlush[k] : kNone;
          std::vector<Release> srcRel;
          for (std::int32_t t : op.ranks) {
            std::vector<Release> rel = releasesTo(t);
            srcRel.insert(srcRel.end(), rel.begin(), rel.end());
          }
          access(c, "src", self, op.src.buf, srcOff, false, true, srcRel, flush);
          for (std::int32_t t : op.ranks) {
            access(c, "dst", t, op.dst.buf, dstOff, true, true, releasesTo(t), flush);
            if (op.sem >= 0) recordSignal(t);
          }
          break;
        }
        case OpCode::kGet: {
          if (!checkAddrRank(c, op.peer, "peer")) break;
          if (op.src.rank != kSelf && op.src.rank != op.peer) {
            bad("src names rank " + std::to_string(op.src.rank) + " but peer is " + std::to_string(op.peer));
            break;
          }
          if (op.dst.rank != kSelf && op.dst.rank != self) {
            bad("dst names rank " + std::to_string(op.dst.rank) + ", but the destination of a get is local (rank " +
                std::to_string(self) + ")");
            break;
          }
          // A get completes only at the lane's next flush (signals do not order it).
          const std::uint32_t flush = raceCheck_ ? nextFlush[k] : kNone;
          access(c, "src", op.peer, op.src.buf, srcOff, false, true, {}, flush);
          access(c, "dst", self, op.dst.buf, dstOff, true, true, {}, flush);
          break;
        }
        case OpCode::kSignal:
          if (!checkAddrRank(c, op.peer, "peer")) break;
          if (!checkSignalSem()) break;
          recordSignal(op.peer);
          break;
        case OpCode::kWait:
          if (!checkSignalSem()) break;
          {
            SemAccount& acc = account(self, op.sem);
            acc.maxWait = std::max(acc.maxWait, op.value);
          }
          break;
        case OpCode::kReduce:
        case OpCode::kCopy: {
          std::vector<std::pair<std::string, Addr>> srcs;
          if (op.code == OpCode::kReduce) {
            if (op.srcs.empty()) {
              bad("reduce has no sources");
              break;
            }
            for (std::size_t i = 0; i < op.srcs.size(); ++i)
              srcs.emplace_back("srcs[" + std::to_string(i) + "]", op.srcs[i]);
          } else {
            srcs.emplace_back("src", op.src);
          }
          bool ok = true;
          const auto direct = [&](const std::string& role, const Addr& a) {
            const std::int32_t r = detail::addrRank(a, self);
            if (!checkAddrRank(c, r, role)) return false;
            if (!domains_->same(self, r)) {
              addOpIssue(Kind::kDomain, laneId, k,
                         role + " addresses rank " + std::to_string(r) + " directly, but rank " + std::to_string(r) +
                             " is outside the load/store domain of rank " + std::to_string(self) +
                             " (use put/get across domains)");
              return false;
            }
            return true;
          };
          ok = direct("dst", op.dst);
          for (const auto& [role, a] : srcs) ok = direct(role, a) && ok;
          if (!ok) break;
          for (const auto& [role, a] : srcs) {
            access(c, role, detail::addrRank(a, self), a.buf, a.offset + c.geo.srcShift, false, false, {}, kNone);
          }
          access(c, "dst", detail::addrRank(op.dst, self), op.dst.buf, dstOff, true, false, {}, kNone);
          break;
        }
        case OpCode::kFlush:
          break;
      }
    }
  }

  // ---- semaphore accounting --------------------------------------------------------------------

  void checkAccounting() {
    for (std::uint32_t id = 0; id < lanes_.size(); ++id) {
      const LaneRef& l = lanes_[id];
      for (std::uint32_t k = 0; k < l.ops->size(); ++k) {
        const Op& op = (*l.ops)[k];
        if (op.code != OpCode::kWait || !validSem(op.sem)) continue;
        const SemAccount& acc = account(l.rank, op.sem);
        if (op.value > acc.total) {
          unsatisfiable_ = true;
          addOpIssue(Kind::kUnsatisfiableWait, id, k,
                     "waits for semaphore " + std::to_string(op.sem) + " >= " + std::to_string(op.value) +
                         ", but all signals into rank " + std::to_string(l.rank) + " semaphore " +
                         std::to_string(op.sem) + " add up to " + std::to_string(acc.total) + " (it can never pass)");
        }
      }
    }
    for (std::int32_t r = 0; r < h_.nranks; ++r) {
      for (std::int32_t s = 0; s < h_.numSemaphores; ++s) {
        const SemAccount& acc = account(r, s);
        if (acc.total <= acc.maxWait) continue;
        // Name the last signal into it: the one an epoch would carry over.
        const SignalSource& src = acc.sources.back();
        addOpIssue(Kind::kLeftoverSignals, src.lane, src.index.back(),
                   "signals into rank " + std::to_string(r) + " semaphore " + std::to_string(s) + " add up to " +
                       std::to_string(acc.total) + " but the largest wait on it is " + std::to_string(acc.maxWait) +
                       " (leftover signals: the next call's epoch base advances by " + std::to_string(acc.maxWait) +
                       " only, so its waits would pass early)");
      }
    }
  }

  // ---- greedy execution: deadlock and vector clocks ----------------------------------------------

  [[nodiscard]] std::size_t threads() const { return lanes_.size() + channels_.size(); }

  void simulate() {
    const std::size_t nl = lanes_.size();
    std::vector<std::uint32_t> pos(nl, 0);
    std::vector<std::uint64_t> sems(static_cast<std::size_t>(h_.nranks) * numSems(), 0);
    std::vector<std::vector<std::uint32_t>> waiters(sems.size());
    std::vector<std::uint32_t> work;
    for (std::uint32_t i = 0; i < nl; ++i) work.push_back(static_cast<std::uint32_t>(nl - 1 - i));

    if (raceCheck_) {
      std::uint64_t waits = 0;
      for (const LaneRef& l : lanes_) {
        for (const Op& op : *l.ops) waits += op.code == OpCode::kWait ? 1 : 0;
      }
      const std::uint64_t bytes = (waits + 1) * threads() * sizeof(std::uint32_t);
      if (bytes > kMaxClockBytes) {
        raceCheck_ = false;
        addNote("race check skipped: vector clocks would need " + std::to_string(bytes >> 20) + " MiB");
      } else {
        snaps_.assign(threads(), 0);  // snapshot 0: knows nothing
        laneWaits_.assign(nl, {});
      }
    }

    const auto semIdx = [&](std::int32_t r, std::int32_t s) {
      return static_cast<std::size_t>(r) * numSems() + static_cast<std::size_t>(s);
    };
    const auto addSignal = [&](std::int32_t target, std::int32_t s, std::uint64_t add) {
      if (!validRank(target) || !validSem(s)) return;
      const std::size_t i = semIdx(target, s);
      sems[i] = saturatingAdd(sems[i], add);
      std::vector<std::uint32_t>& w = waiters[i];
      for (std::size_t j = 0; j < w.size();) {
        const LaneRef& l = lanes_[w[j]];
        if ((*l.ops)[pos[w[j]]].value <= sems[i]) {
          work.push_back(w[j]);
          w[j] = w.back();
          w.pop_back();
        } else {
          ++j;
        }
      }
    };

    while (!work.empty()) {
      const std::uint32_t id = work.back();
      work.pop_back();
      const LaneRef& l = lanes_[id];
      const std::vector<Op>& ops = *l.ops;
      while (pos[id] < ops.size()) {
        const Op& op = ops[pos[id]];
        if (op.code == OpCode::kWait && validSem(op.sem)) {
          const std::size_t i = semIdx(l.rank, op.sem);
          if (sems[i] < op.value) {
            waiters[i].push_back(id);
            break;
          }
          if (raceCheck_) recordWaitClock(id, pos[id], op);
        } else if (detail::carriesSignal(op)) {
          if (op.code == OpCode::kMulticast) {
            for (std::int32_t t : op.ranks) addSignal(t, op.sem, op.value);
          } else {
            addSignal(op.peer, op.sem, op.value);
          }
        }
        ++pos[id];
      }
    }

    std::vector<std::uint32_t> blocked;
    for (std::uint32_t id = 0; id < nl; ++id) {
      if (pos[id] < lanes_[id].ops->size()) blocked.push_back(id);
    }
    if (blocked.empty()) return;
    if (raceCheck_) {
      raceCheck_ = false;
      addNote("race check skipped: the Program does not run to completion");
    }
    if (unsatisfiable_) {
      addNote("deadlock check skipped: unsatisfiable waits block " + std::to_string(blocked.size()) + " lane(s)");
      return;
    }
    for (std::uint32_t id : blocked) {
      const LaneRef& l = lanes_[id];
      const Op& op = (*l.ops)[pos[id]];
      const SemAccount& acc = account(l.rank, op.sem);
      std::string from;
      int listed = 0;
      for (const SignalSource& src : acc.sources) {
        if (pos[src.lane] > src.index.back()) continue;  // all its signals were sent
        const LaneRef& sl = lanes_[src.lane];
        if (listed++ == 4) {
          from += ", ...";
          break;
        }
        from += std::string(from.empty() ? "" : ", ") + "rank " + std::to_string(sl.rank) + " lane " +
                std::to_string(sl.lane) + " (blocked at op " + std::to_string(pos[src.lane]) + ")";
      }
      addOpIssue(Kind::kDeadlock, id, pos[id],
                 "deadlock: blocked forever waiting for semaphore " + std::to_string(op.sem) + " >= " +
                     std::to_string(op.value) + ", reached only " + std::to_string(sems[semIdx(l.rank, op.sem)]) +
                     (from.empty() ? std::string() : "; the missing signals would come from " + from));
    }
  }

  /// Snapshot id of lane `id`'s clock just before its op `index` (the last wait before it).
  [[nodiscard]] std::uint32_t snapshotBefore(std::uint32_t id, std::uint32_t index) const {
    const auto& w = laneWaits_[id];
    auto it =
        std::lower_bound(w.begin(), w.end(), index,
                         [](const std::pair<std::uint32_t, std::uint32_t>& e, std::uint32_t v) { return e.first < v; });
    if (it == w.begin()) return 0;
    return std::prev(it)->second;
  }

  /// The clock of a passed wait: the lane's clock joined with, for every lane that signals the semaphore,
  /// the prefix of its signals that this wait needs in every execution (the others may at most have sent
  /// all of theirs).
  void recordWaitClock(std::uint32_t id, std::uint32_t index, const Op& op) {
    const std::size_t t = threads();
    const LaneRef& l = lanes_[id];
    std::vector<std::uint32_t> vc(snaps_.begin() + static_cast<std::ptrdiff_t>(snapshotBefore(id, index) * t),
                                  snaps_.begin() + static_cast<std::ptrdiff_t>((snapshotBefore(id, index) + 1) * t));
    const SemAccount& acc = account(l.rank, op.sem);
    for (const SignalSource& src : acc.sources) {
      const std::uint64_t others = acc.total - src.total();
      if (op.value <= others) continue;
      const std::uint64_t need = op.value - others;
      const auto it = std::lower_bound(src.cum.begin(), src.cum.end(), need);
      if (it == src.cum.end()) continue;  // unsatisfiable; reported elsewhere
      const std::uint32_t k = src.index[static_cast<std::size_t>(it - src.cum.begin())];
      const std::uint32_t snap = snapshotBefore(src.lane, k);
      const std::uint32_t* sv = &snaps_[snap * t];
      for (std::size_t x = 0; x < t; ++x) vc[x] = std::max(vc[x], sv[x]);
      vc[src.lane] = std::max(vc[src.lane], k + 1);
      const std::uint64_t key = (static_cast<std::uint64_t>(src.lane) << 32) | static_cast<std::uint32_t>(l.rank);
      if (auto ch = channels_.find(key); ch != channels_.end()) vc[ch->second] = std::max(vc[ch->second], k + 1);
    }
    vc[id] = index + 1;
    const auto snapId = static_cast<std::uint32_t>(snaps_.size() / t);
    snaps_.insert(snaps_.end(), vc.begin(), vc.end());
    laneWaits_[id].emplace_back(index, snapId);
  }

  // ---- races -----------------------------------------------------------------------------------

  [[nodiscard]] std::uint32_t clockOf(const Access& b, std::uint32_t thread) const {
    if (thread == b.lane) return b.index + 1;
    return snaps_[static_cast<std::size_t>(b.snap) * threads() + thread];
  }

  /// True when every execution completes access `a` before access `b` happens.
  [[nodiscard]] bool happensBefore(const Access& a, const Access& b) const {
    if (!a.async) return clockOf(b, a.lane) >= a.index + 1;
    if (a.flush != kNone && clockOf(b, a.lane) >= a.flush + 1) return true;
    for (std::uint32_t i = 0; i < a.relCount; ++i) {
      const Release& r = releases_[a.relBegin + i];
      if (clockOf(b, r.chan) >= r.index + 1) return true;
    }
    return false;
  }

  void reportRace(const Access& a, const Access& b) {
    const Access& w = a.write ? a : b;
    const Access& o = a.write ? b : a;
    const std::uint64_t lo = std::max(a.lo, b.lo);
    const std::uint64_t hi = std::min(a.hi, b.hi);
    const LaneRef& wl = lanes_[w.lane];
    const LaneRef& ol = lanes_[o.lane];
    const Op& oop = (*ol.ops)[o.index];
    const std::string other = detail::opLabel(ol.rank, ol.lane, o.index, oop);
    const std::string where =
        detail::rangeText(static_cast<BufferId>(w.buf), lo, hi - lo) + " of rank " + std::to_string(w.rank);
    std::string what;
    if (o.write) {
      what = "and " + other + " both write " + where + " with nothing ordering them (a missing wait, credit or flush)";
    } else {
      what = "may overwrite " + where + " before " + other + " has consumed it (no credit/wait orders them)";
    }
    const Op& wop = (*wl.ops)[w.index];
    addIssue(Kind::kRace, wl.rank, wl.lane, w.index, detail::opLabel(wl.rank, wl.lane, w.index, wop) + " " + what);
  }

  void checkRaces() {
    for (Access& a : accesses_) a.snap = snapshotBefore(a.lane, a.index);
    // Group by (rank, buffer), sort by start, sweep with the set of accesses still overlapping.
    std::vector<std::uint32_t> order(accesses_.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::uint32_t x, std::uint32_t y) {
      const Access& a = accesses_[x];
      const Access& b = accesses_[y];
      if (a.rank != b.rank) return a.rank < b.rank;
      if (a.buf != b.buf) return a.buf < b.buf;
      if (a.lo != b.lo) return a.lo < b.lo;
      // Ties in a fixed order, so messages name the ops the same way on every run.
      if (a.lane != b.lane) return a.lane < b.lane;
      return a.index < b.index;
    });
    std::set<std::pair<std::uint64_t, std::uint64_t>> reported;
    std::uint64_t checks = 0;
    std::size_t races = 0;
    std::vector<std::uint32_t> active;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const Access& b = accesses_[order[i]];
      if (i > 0) {
        const Access& prev = accesses_[order[i - 1]];
        if (prev.rank != b.rank || prev.buf != b.buf) active.clear();
      }
      std::size_t keep = 0;
      for (std::uint32_t ai : active) {
        const Access& a = accesses_[ai];
        if (a.hi <= b.lo) continue;  // expired: ends before b (and every later access) starts
        active[keep++] = ai;
        if (!a.write && !b.write) continue;
        if (a.lane == b.lane && a.index == b.index) continue;  // one op (e.g. an in-place reduce)
        if (++checks > kMaxPairChecks) {
          addNote("race check stopped after " + std::to_string(kMaxPairChecks) + " overlapping pairs");
          return;
        }
        if (happensBefore(a, b) || happensBefore(b, a)) continue;
        const std::uint64_t opA = (static_cast<std::uint64_t>(a.lane) << 32) | a.index;
        const std::uint64_t opB = (static_cast<std::uint64_t>(b.lane) << 32) | b.index;
        if (!reported.insert({std::min(opA, opB), std::max(opA, opB)}).second) continue;
        if (races++ < kMaxRaceIssues) reportRace(a, b);
      }
      active.resize(keep);
      active.push_back(order[i]);
    }
    if (races > kMaxRaceIssues) {
      addNote(std::to_string(races - kMaxRaceIssues) + " more races not listed");
    }
  }

  const ProgramSource& program_;
  const ProgramHeader& h_;
  const ValidatorOptions& options_;
  ValidationResult result_;

  std::vector<LaneRef> lanes_;
  std::uint64_t totalOps_ = 0;
  std::unique_ptr<detail::DomainMap> domains_;
  std::vector<SemAccount> semAccounts_;
  bool malformed_ = false;
  bool unsatisfiable_ = false;
  bool raceCheck_ = false;

  std::unordered_map<std::uint64_t, std::uint32_t> channels_;  ///< (lane, target rank) -> clock thread
  std::vector<Access> accesses_;
  std::vector<Release> releases_;
  std::vector<std::uint32_t> snaps_;  ///< clock snapshots, threads() entries each
  std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> laneWaits_;  ///< (wait op, snapshot)
};

}  // namespace

std::string ValidationResult::summary(std::size_t maxLines) const {
  std::string out;
  for (std::size_t i = 0; i < issues.size() && i < maxLines; ++i) {
    if (!out.empty()) out += '\n';
    out += issues[i].message;
  }
  if (issues.size() > maxLines) out += "\n... and " + std::to_string(issues.size() - maxLines) + " more";
  return out;
}

ValidationResult validateProgram(const ProgramSource& program, const ValidatorOptions& options) {
  try {
    Validator v(program, options);
    return v.run();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument && e.message().rfind("validateProgram:", 0) == 0) throw;
    ValidationResult r;
    r.issues.push_back(ValidationIssue{ValidationIssue::Kind::kMalformed, -1, -1, -1,
                                       "generating the Program failed: " + std::string(e.what())});
    return r;
  } catch (const std::exception& e) {
    ValidationResult r;
    r.issues.push_back(ValidationIssue{ValidationIssue::Kind::kMalformed, -1, -1, -1,
                                       "generating the Program failed: " + std::string(e.what())});
    return r;
  }
}

void requireValidProgram(const ProgramSource& program, const ValidatorOptions& options) {
  const ValidationResult r = validateProgram(program, options);
  if (r.ok()) return;
  const std::string& name = program.header().name;
  throw Error(ErrorCode::kInvalidProgram,
              "Program '" + name + "' is invalid (" + std::to_string(r.issues.size()) + " issue(s)):\n" + r.summary());
}

}  // namespace copro::core
