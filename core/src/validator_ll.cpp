/// The LL rules of the validator (validator_ll.hpp): each op on its own (kinds, sizes, ranks, domains),
/// then the pairing of LL puts with LL waits per (receiver, semaphore).
#include "validator_ll.hpp"

#include <map>
#include <utility>

namespace copro::core::detail {
namespace {

struct OpAt {
  std::int32_t rank = 0;
  int lane = 0;
  std::int64_t index = 0;
  const Op* op = nullptr;
};

/// The LL ends and other users of one (receiver, semaphore).
struct SemUse {
  std::vector<OpAt> llPuts, llWaits, others;
};

class LLChecker {
 public:
  LLChecker(const ProgramSource& p, const DomainMap& d) : p_(p), domains_(d) {}

  std::vector<LLIssue> run() {
    const std::int32_t n = p_.header().nranks;
    for (std::int32_t r = 0; r < n; ++r) {
      const RankProgram& rp = p_.rank(r);
      for (std::size_t l = 0; l < rp.lanes.size(); ++l) {
        const auto& ops = rp.lanes[l].ops;
        for (std::size_t k = 0; k < ops.size(); ++k)
          visit(OpAt{r, static_cast<int>(l), static_cast<std::int64_t>(k), &ops[k]});
      }
    }
    if (anyLL_) checkPairs();
    return std::move(issues_);
  }

 private:
  void add(const OpAt& a, const std::string& what) {
    issues_.push_back(LLIssue{a.rank, a.lane, a.index, opLabel(a.rank, a.lane, a.index, *a.op) + ": " + what});
  }
  [[nodiscard]] bool validRank(std::int32_t r) const { return r >= 0 && r < p_.header().nranks; }
  [[nodiscard]] bool validSem(std::int32_t s) const { return s >= 0 && s < p_.header().numSemaphores; }

  void visit(const OpAt& a) {
    const Op& op = *a.op;
    const bool ll = op.protocol == Protocol::kLL;
    if (static_cast<std::uint8_t>(op.protocol) > static_cast<std::uint8_t>(Protocol::kLL)) {
      add(a, "unknown protocol " + std::to_string(static_cast<int>(op.protocol)));
      return;
    }
    if (ll && op.code != OpCode::kPut && op.code != OpCode::kWait) {
      add(a, "protocol ll is for put and wait only (a " + std::string(opCodeName(op.code)) + " cannot carry it)");
      return;
    }
    anyLL_ = anyLL_ || ll;
    if (op.code == OpCode::kPut && validRank(op.peer) && validSem(op.sem)) {
      SemUse& u = uses_[{op.peer, op.sem}];
      (ll ? u.llPuts : u.others).push_back(a);
    } else if ((op.code == OpCode::kPutReduce || op.code == OpCode::kSignal) && validRank(op.peer) &&
               validSem(op.sem)) {
      uses_[{op.peer, op.sem}].others.push_back(a);
    } else if (op.code == OpCode::kMulticast && validSem(op.sem)) {
      for (std::int32_t t : op.ranks) {
        if (validRank(t)) uses_[{t, op.sem}].others.push_back(a);
      }
    } else if (op.code == OpCode::kWait && validSem(op.sem)) {
      SemUse& u = uses_[{a.rank, op.sem}];
      (ll ? u.llWaits : u.others).push_back(a);
    }
    if (ll) checkShape(a);
  }

  /// What one LL op must be on its own.
  void checkShape(const OpAt& a) {
    const Op& op = *a.op;
    const char* kind = op.code == OpCode::kPut ? "an LL put" : "an LL wait";
    if (op.bytes > kLLSlotBytes) {
      add(a, std::string(kind) + " carries " + std::to_string(op.bytes) + " bytes, more than an LL mailbox slot (" +
                 std::to_string(kLLSlotBytes) + " bytes): use protocol simple");
    }
    if (op.indirect.active()) add(a, std::string(kind) + " cannot be indirect (its size must be known to both ends)");
    if (!validRank(op.peer) || op.peer == a.rank) {
      add(a, std::string(kind) + " needs a peer other than its own rank (peer " + std::to_string(op.peer) + ")");
    } else if (!domains_.same(a.rank, op.peer)) {
      add(a, std::string(kind) + " needs rank " + std::to_string(op.peer) +
                 " in its load/store domain (the mailbox is shared memory): use protocol simple across domains");
    }
    if (!validSem(op.sem)) add(a, std::string(kind) + " needs a semaphore (it pairs the put with its wait)");
    if (op.value != 1) add(a, std::string(kind) + " must have value 1 (has " + std::to_string(op.value) + ")");
    if (op.code == OpCode::kWait && op.dst.rank != kSelf && op.dst.rank != a.rank) {
      add(a, "an LL wait lands the bytes in its own rank's buffer, but dst names rank " + std::to_string(op.dst.rank));
    }
  }

  void checkPairs() {
    std::map<std::pair<std::int32_t, std::int32_t>, int> putsPerPair;
    for (const auto& [key, u] : uses_) {
      if (u.llPuts.empty() && u.llWaits.empty()) continue;
      const std::string where = "rank " + std::to_string(key.first) + " semaphore " + std::to_string(key.second);
      if (u.llPuts.size() != 1 || u.llWaits.size() != 1 || !u.others.empty()) {
        const OpAt& at = !u.llPuts.empty() ? u.llPuts.front() : u.llWaits.front();
        add(at, where + " must pair exactly one LL put with one LL wait and serve nothing else (it has " +
                    std::to_string(u.llPuts.size()) + " LL puts, " + std::to_string(u.llWaits.size()) +
                    " LL waits and " + std::to_string(u.others.size()) + " other users)");
        continue;
      }
      const OpAt& put = u.llPuts.front();
      const OpAt& wait = u.llWaits.front();
      if (++putsPerPair[{put.rank, put.op->peer}] > 1) {
        add(put, "a second LL put from rank " + std::to_string(put.rank) + " to rank " + std::to_string(put.op->peer) +
                     " in one call (one mailbox slot per pair and call)");
      }
      const Op& p = *put.op;
      const Op& w = *wait.op;
      if (w.peer != put.rank || w.bytes != p.bytes || w.dst.buf != p.dst.buf || w.dst.offset != p.dst.offset) {
        add(wait, "does not match the LL put " + opLabel(put.rank, put.lane, put.index, p) +
                      " (an LL wait repeats its put's rank as peer, and its dst and bytes)");
      }
    }
  }

  const ProgramSource& p_;
  const DomainMap& domains_;
  std::map<std::pair<std::int32_t, std::int32_t>, SemUse> uses_;
  bool anyLL_ = false;
  std::vector<LLIssue> issues_;
};

}  // namespace

std::vector<LLIssue> llProtocolIssues(const ProgramSource& program, const DomainMap& domains) {
  return LLChecker(program, domains).run();
}

}  // namespace copro::core::detail
