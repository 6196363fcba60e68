/// PXN as a Program transformation (docs/pxn.md): a put, put_reduce or signal from rank s to a rank d on
/// another node goes to the rank of s's node on d's rail (the relay), which forwards it over its own NIC.
///
/// Per source lane (s, L) and relay R, the relay runs one relay lane that waits for each message of (s, L)
/// (a "data" semaphore of R per source lane) and forwards it from its scratch slot. At each flush of the
/// source lane and at its end, the relay lane flushes and returns one ack (an "ack" semaphore of s per
/// lane) that the source waits for: a flush still means "the data reached its destination", and the next
/// call cannot overwrite a scratch slot the relay has not forwarded yet. Level 2 also gathers at the relay,
/// on one aggregation lane per run, messages of several local ranks (the relay's own included) whose
/// destination ranges are adjacent, and forwards them as one put.
///
/// The transformed Program is built per node on first request (a node's ranks host each other's relay
/// lanes), so the wrapper materializes one node at a time.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "copro/collectives/transform.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {
namespace {

using core::Addr;
using core::BufferId;
using core::kSelf;
using core::Op;
using core::OpCode;
using core::RankProgram;

constexpr std::uint64_t kSlotAlign = 64;
/// Relayed puts of at least two chunks are pipelined through the relay in chunks of this size (docs/pxn.md).
constexpr std::uint64_t kRelayChunk = std::uint64_t{1} << 20;

std::uint64_t alignUp(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) / a * a;
}

/// Nodes in order of their first rank; a rank's local index is its position among its node's ranks.
struct NodeMap {
  std::vector<std::vector<std::int32_t>> ranks;  ///< per node, ascending
  std::vector<int> node;                         ///< per rank: index into ranks
  std::vector<int> local;                        ///< per rank
  int maxLocal = 0;                              ///< most ranks on one node

  NodeMap(const std::vector<int>& nodeOfRank, std::int32_t nranks) {
    std::map<int, int> index;
    node.resize(static_cast<std::size_t>(nranks));
    local.resize(static_cast<std::size_t>(nranks));
    for (std::int32_t r = 0; r < nranks; ++r) {
      const int id = nodeOfRank[static_cast<std::size_t>(r)];
      auto [it, added] = index.emplace(id, static_cast<int>(ranks.size()));
      if (added) ranks.emplace_back();
      auto& members = ranks[static_cast<std::size_t>(it->second)];
      node[static_cast<std::size_t>(r)] = it->second;
      local[static_cast<std::size_t>(r)] = static_cast<int>(members.size());
      members.push_back(r);
      maxLocal = std::max(maxLocal, static_cast<int>(members.size()));
    }
  }
  int nodeOf(std::int32_t r) const { return node[static_cast<std::size_t>(r)]; }
  int localOf(std::int32_t r) const { return local[static_cast<std::size_t>(r)]; }
  /// The rank of node n on rail `rail`, or -1 when node n has fewer ranks.
  std::int32_t railRank(int n, int rail) const {
    const auto& m = ranks[static_cast<std::size_t>(n)];
    return rail < static_cast<int>(m.size()) ? m[static_cast<std::size_t>(rail)] : -1;
  }
};

/// Semaphores added after the source's `base` ones, the same on every rank:
///   [base, base + maxLanes)                          ack of own lane L (relays -> source)
///   [base + maxLanes * (1 + i), ... + maxLanes)      data from local rank i's lane L (source -> relay)
struct SemLayout {
  std::int32_t base = 0;
  std::int32_t maxLanes = 0;
  std::int32_t ack(int lane) const { return base + lane; }
  std::int32_t data(int sourceLocal, int lane) const { return base + maxLanes * (1 + sourceLocal) + lane; }
  std::int32_t count(int maxLocal) const { return maxLanes * (1 + maxLocal); }
};

/// The remote ranks an op involves (peer, multicast targets, addresses of other nodes).
void remoteRanksOf(const Op& op, std::int32_t self, const NodeMap& nodes, std::set<std::int32_t>& out) {
  const auto add = [&](std::int32_t r) {
    if (r >= 0 && r != self && r < static_cast<std::int32_t>(nodes.node.size()) &&
        nodes.nodeOf(r) != nodes.nodeOf(self))
      out.insert(r);
  };
  if (op.code == OpCode::kPut || op.code == OpCode::kPutReduce || op.code == OpCode::kSignal || op.code == OpCode::kGet)
    add(op.peer);
  for (std::int32_t r : op.ranks) add(r);
  add(op.dst.rank);
  add(op.src.rank);
  for (const Addr& a : op.srcs) add(a.rank);
}

bool relayableOp(const Op& op, std::int32_t d) {
  if (op.peer != d) return false;
  if (op.code == OpCode::kSignal) return true;
  if (op.code != OpCode::kPut && op.code != OpCode::kPutReduce) return false;
  return !op.indirect.active();  // an indirect size is known at run time only: no scratch slot bound
}

/// One message of an aggregation run.
struct AggPart {
  int local;
  int lane;
  std::size_t opIndex;
  std::uint64_t slot = 0;    ///< in the relay's scratch
  std::uint64_t waitAt = 0;  ///< data-semaphore threshold at the relay (set while emitting the source lane)
};
struct AggRun {
  std::int32_t relay;
  std::int32_t dest;
  Addr dst;  ///< first part's destination
  std::uint64_t bytes = 0;
  std::int32_t sem = -1;
  std::uint64_t value = 0;
  std::uint64_t slot = 0;
  std::vector<AggPart> parts;
};

/// The transformed ranks of one node, and the relay scratch each needs.
struct NodeResult {
  std::vector<RankProgram> ranks;  ///< by local index
  std::uint64_t scratchEnd = 0;    ///< largest scratch end over the node's ranks
  std::uint64_t relayed = 0;       ///< messages relayed or aggregated
};

NodeResult transformNode(const core::ProgramSource& src, const NodeMap& nodes, int n, int level, const SemLayout& sems,
                         std::uint64_t scratchBase) {
  const auto& members = nodes.ranks[static_cast<std::size_t>(n)];
  const std::size_t m = members.size();
  // The node's lanes, read once.
  std::vector<std::vector<std::vector<Op>>> lanes(m);
  for (std::size_t i = 0; i < m; ++i) {
    const int count = src.numLanes(members[i]);
    lanes[i].resize(static_cast<std::size_t>(count));
    for (int l = 0; l < count; ++l) {
      auto cursor = src.openLane(members[i], l);
      Op op;
      while (cursor->next(op)) lanes[i][static_cast<std::size_t>(l)].push_back(op);
    }
  }

  // Pass 1: per source lane, which remote destinations are relayed (every op touching d relayable), and at
  // level 2 which puts are aggregation candidates (the lane's only op touching d, before its first wait or
  // flush, so that it is issued whatever other ranks do and holding it for its partners cannot deadlock).
  std::vector<std::vector<std::set<std::int32_t>>> relayedDest(m);
  std::map<std::pair<std::int32_t, std::int32_t>, std::vector<AggPart>> candidates;  // (relay, dest)
  for (std::size_t i = 0; i < m; ++i) {
    const std::int32_t s = members[i];
    relayedDest[i].resize(lanes[i].size());
    for (std::size_t l = 0; l < lanes[i].size(); ++l) {
      const auto& ops = lanes[i][l];
      std::size_t prefixEnd = ops.size();
      for (std::size_t k = 0; k < ops.size(); ++k) {
        if (ops[k].code == OpCode::kWait || ops[k].code == OpCode::kFlush) {
          prefixEnd = k;
          break;
        }
      }
      std::map<std::int32_t, std::pair<bool, std::vector<std::size_t>>> uses;  // d -> (all relayable, op indices)
      std::set<std::int32_t> remote;
      for (std::size_t k = 0; k < ops.size(); ++k) {
        remote.clear();
        remoteRanksOf(ops[k], s, nodes, remote);
        for (std::int32_t d : remote) {
          auto& u = uses.try_emplace(d, true, std::vector<std::size_t>{}).first->second;
          u.first = u.first && relayableOp(ops[k], d) && !(ops[k].dst.rank != kSelf && ops[k].dst.rank != d);
          u.second.push_back(k);
        }
      }
      for (const auto& [d, u] : uses) {
        const std::int32_t relay = nodes.railRank(n, nodes.localOf(d));
        if (relay < 0 || !u.first) continue;
        const Op& op = ops[u.second.front()];
        if (level >= 2 && u.second.size() == 1 && op.code == OpCode::kPut && u.second.front() < prefixEnd) {
          candidates[{relay, d}].push_back(AggPart{static_cast<int>(i), static_cast<int>(l), u.second.front()});
        } else if (relay != s) {
          relayedDest[i][l].insert(d);
        }
      }
    }
  }

  // Level 2: runs of adjacent destination ranges (same buffer, same signal semaphore) with >= 2 parts, at
  // least one from another rank than the relay. Candidates not in a run fall back to level 1.
  std::vector<std::uint64_t> scratchUsed(m, scratchBase);
  std::vector<AggRun> runs;
  std::map<std::tuple<int, int, std::size_t>, std::pair<std::size_t, std::size_t>> aggOf;  // op -> (run, part)
  for (auto& [key, parts] : candidates) {
    const auto opOf = [&](const AggPart& p) -> const Op& {
      return lanes[static_cast<std::size_t>(p.local)][static_cast<std::size_t>(p.lane)][p.opIndex];
    };
    std::sort(parts.begin(), parts.end(), [&](const AggPart& a, const AggPart& b) {
      const Op& x = opOf(a);
      const Op& y = opOf(b);
      if (x.dst.buf != y.dst.buf) return x.dst.buf < y.dst.buf;
      if (x.dst.offset != y.dst.offset) return x.dst.offset < y.dst.offset;
      return a.local != b.local ? a.local < b.local : a.lane < b.lane;  // a total order: both passes agree
    });
    const std::int32_t relay = key.first;
    const std::int32_t dest = key.second;
    std::size_t first = 0;
    while (first < parts.size()) {
      std::size_t last = first + 1;
      std::uint64_t end = opOf(parts[first]).dst.offset + opOf(parts[first]).bytes;
      while (last < parts.size()) {
        const Op& x = opOf(parts[first]);
        const Op& y = opOf(parts[last]);
        if (y.dst.buf != x.dst.buf || y.sem != x.sem || y.dst.offset != end) break;
        end += y.bytes;
        ++last;
      }
      bool remotePart = false;
      for (std::size_t k = first; k < last; ++k)
        remotePart = remotePart || members[static_cast<std::size_t>(parts[k].local)] != relay;
      if (last - first >= 2 && remotePart) {
        AggRun run;
        run.relay = relay;
        run.dest = dest;
        const Op& head = opOf(parts[first]);
        run.dst = Addr{dest, head.dst.buf, head.dst.offset};
        run.sem = head.sem;
        std::uint64_t& used = scratchUsed[static_cast<std::size_t>(nodes.localOf(relay))];
        used = alignUp(used, kSlotAlign);
        run.slot = used;
        for (std::size_t k = first; k < last; ++k) {
          const Op& op = opOf(parts[k]);
          AggPart part = parts[k];
          part.slot = used;
          used += op.bytes;
          run.bytes += op.bytes;
          if (op.sem >= 0) run.value += op.value;
          aggOf[{part.local, part.lane, part.opIndex}] = {runs.size(), run.parts.size()};
          run.parts.push_back(part);
        }
        runs.push_back(std::move(run));
      } else {
        for (std::size_t k = first; k < last; ++k) {
          const std::int32_t s = members[static_cast<std::size_t>(parts[k].local)];
          if (s != relay) {
            relayedDest[static_cast<std::size_t>(parts[k].local)][static_cast<std::size_t>(parts[k].lane)].insert(dest);
          }
        }
      }
      first = last;
    }
  }

  // Pass 2: emit source lanes, relay lanes (per source lane and relay) and aggregation lanes.
  NodeResult result;
  result.ranks.resize(m);
  std::vector<std::vector<std::pair<core::Initiation, std::vector<Op>>>> extraLanes(m);  // per relay
  for (std::size_t i = 0; i < m; ++i) {
    const std::int32_t s = members[i];
    RankProgram& out = result.ranks[i];
    for (std::size_t l = 0; l < lanes[i].size(); ++l) {
      const int lane = static_cast<int>(l);
      const core::Initiation init = src.laneInitiation(s, lane);
      out.lanes.push_back(RankProgram::Lane{init, {}});
      std::vector<Op> emitted;
      std::vector<std::vector<Op>> relayLane(m);
      std::vector<std::uint64_t> sent(m, 0);  // messages to each relay
      std::vector<bool> pending(m, false);    // relay forwarded data since its last ack
      std::uint64_t aggPending = 0;
      std::uint64_t acks = 0;
      const auto boundary = [&]() {
        std::uint64_t add = aggPending;
        aggPending = 0;
        for (std::size_t r = 0; r < m; ++r) {
          if (!pending[r]) continue;
          pending[r] = false;
          relayLane[r].push_back(Op::flush());
          relayLane[r].push_back(Op::signal(s, sems.ack(lane), 1));
          ++add;
        }
        if (add > 0) {
          acks += add;
          emitted.push_back(Op::wait(sems.ack(lane), acks));
        }
      };
      const auto& ops = lanes[i][l];
      for (std::size_t k = 0; k < ops.size(); ++k) {
        const Op& op = ops[k];
        const auto agg = aggOf.find({static_cast<int>(i), lane, k});
        if (agg != aggOf.end()) {
          AggRun& run = runs[agg->second.first];
          AggPart& part = run.parts[agg->second.second];
          const auto rl = static_cast<std::size_t>(nodes.localOf(run.relay));
          const std::int32_t dataSem = sems.data(static_cast<int>(i), lane);
          if (run.relay == s) {
            emitted.push_back(Op::copy(Addr{kSelf, BufferId::kScratch, part.slot}, op.src, op.bytes));
            emitted.push_back(Op::signal(s, dataSem, 1));
          } else {
            emitted.push_back(
                Op::put(run.relay, Addr{run.relay, BufferId::kScratch, part.slot}, op.src, op.bytes, dataSem, 1));
          }
          part.waitAt = ++sent[rl];
          ++aggPending;
          ++result.relayed;
          continue;
        }
        if (op.code == OpCode::kFlush) {
          emitted.push_back(op);
          boundary();
          continue;
        }
        const bool peerOp = op.code == OpCode::kPut || op.code == OpCode::kPutReduce || op.code == OpCode::kSignal;
        if (!peerOp || relayedDest[i][l].count(op.peer) == 0) {
          emitted.push_back(op);
          continue;
        }
        const std::int32_t d = op.peer;
        const std::int32_t relay = nodes.railRank(n, nodes.localOf(d));
        const auto rl = static_cast<std::size_t>(nodes.localOf(relay));
        const std::int32_t dataSem = sems.data(static_cast<int>(i), lane);
        relayLane[rl].push_back(Op::wait(dataSem, ++sent[rl]));
        ++result.relayed;
        if (op.code == OpCode::kSignal) {
          // No scratch slot and no data to complete: a relayed signal needs no ack.
          emitted.push_back(Op::signal(relay, dataSem, 1));
          relayLane[rl].push_back(op);
          continue;
        }
        std::uint64_t& used = scratchUsed[rl];
        used = alignUp(used, kSlotAlign);
        const std::uint64_t slot = used;
        used += op.bytes;
        pending[rl] = true;
        if (op.code == OpCode::kPut && op.bytes >= 2 * kRelayChunk) {
          // Pipelined: the relay forwards chunk c while chunk c + 1 crosses the scale-up fabric; only the last
          // forward carries the original signal (it lands after the chunks before it: same lane, same peer).
          const std::uint64_t chunks = (op.bytes + kRelayChunk - 1) / kRelayChunk;
          for (std::uint64_t c = 0; c < chunks; ++c) {
            const std::uint64_t off = c * kRelayChunk;
            const std::uint64_t len = std::min(kRelayChunk, op.bytes - off);
            Addr chunkSrc = op.src;
            chunkSrc.offset += off;
            emitted.push_back(Op::put(relay, Addr{relay, BufferId::kScratch, slot + off}, chunkSrc, len, dataSem, 1));
            if (c > 0) relayLane[rl].push_back(Op::wait(dataSem, ++sent[rl]));
            Addr dst = op.dst;
            dst.rank = d;
            dst.offset += off;
            const bool last = c + 1 == chunks;
            relayLane[rl].push_back(Op::put(d, dst, Addr{kSelf, BufferId::kScratch, slot + off}, len,
                                            last ? op.sem : -1, last ? op.value : 1));
          }
          continue;
        }
        emitted.push_back(Op::put(relay, Addr{relay, BufferId::kScratch, slot}, op.src, op.bytes, dataSem, 1));
        Op forward = op;
        forward.src = Addr{kSelf, BufferId::kScratch, slot};
        forward.dst.rank = d;
        relayLane[rl].push_back(forward);
      }
      boundary();
      out.lanes.back().ops = std::move(emitted);
      for (std::size_t r = 0; r < m; ++r) {
        if (!relayLane[r].empty()) extraLanes[r].emplace_back(init, std::move(relayLane[r]));
      }
    }
  }
  for (const AggRun& run : runs) {
    std::vector<Op> ops;
    for (const AggPart& p : run.parts) ops.push_back(Op::wait(sems.data(p.local, p.lane), p.waitAt));
    ops.push_back(Op::put(run.dest, run.dst, Addr{kSelf, BufferId::kScratch, run.slot}, run.bytes, run.sem,
                          run.sem >= 0 ? run.value : 1));
    ops.push_back(Op::flush());
    for (const AggPart& p : run.parts) {
      ops.push_back(Op::signal(members[static_cast<std::size_t>(p.local)], sems.ack(p.lane), 1));
    }
    const AggPart& head = run.parts.front();
    const core::Initiation init = src.laneInitiation(members[static_cast<std::size_t>(head.local)], head.lane);
    extraLanes[static_cast<std::size_t>(nodes.localOf(run.relay))].emplace_back(init, std::move(ops));
  }
  for (std::size_t r = 0; r < m; ++r) {
    for (auto& [init, ops] : extraLanes[r]) result.ranks[r].lanes.push_back(RankProgram::Lane{init, std::move(ops)});
    result.scratchEnd = std::max(result.scratchEnd, scratchUsed[r]);
  }
  return result;
}

class PxnProgram final : public core::ProgramSource {
 public:
  PxnProgram(std::shared_ptr<const core::ProgramSource> source, NodeMap nodes, int level, SemLayout sems,
             std::uint64_t scratchBase, core::ProgramHeader header)
      : source_(std::move(source)),
        nodes_(std::move(nodes)),
        level_(level),
        sems_(sems),
        scratchBase_(scratchBase),
        header_(std::move(header)),
        slots_(std::make_unique<Slot[]>(nodes_.ranks.size())) {}

  [[nodiscard]] const core::ProgramHeader& header() const override { return header_; }
  [[nodiscard]] const RankProgram& rank(std::int32_t r) const override {
    if (r < 0 || r >= header_.nranks) {
      throw Error(ErrorCode::kInvalidArgument, "PXN Program: rank " + std::to_string(r) + " is out of range [0, " +
                                                   std::to_string(header_.nranks) + ")");
    }
    const int n = nodes_.nodeOf(r);
    Slot& slot = slots_[static_cast<std::size_t>(n)];
    std::call_once(slot.once, [&] { slot.result = transformNode(*source_, nodes_, n, level_, sems_, scratchBase_); });
    return slot.result.ranks[static_cast<std::size_t>(nodes_.localOf(r))];
  }

 private:
  struct Slot {
    std::once_flag once;
    NodeResult result;
  };
  std::shared_ptr<const core::ProgramSource> source_;
  NodeMap nodes_;
  int level_;
  SemLayout sems_;
  std::uint64_t scratchBase_;
  core::ProgramHeader header_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace

std::shared_ptr<const core::ProgramSource> applyPxn(std::shared_ptr<const core::ProgramSource> source,
                                                    const std::vector<int>& nodeOfRank, int level) {
  if (level < 0 || level > 2) {
    throw Error(ErrorCode::kInvalidArgument, "PXN level " + std::to_string(level) +
                                                 " is not supported; use 0 (off), 1 (relay) or 2 (relay and "
                                                 "aggregate): COPRO_PXN, CollectiveArgs::pxnLevel or copro-sim --pxn");
  }
  if (level == 0 || !source || nodeOfRank.empty()) return source;
  const core::ProgramHeader& h = source->header();
  if (nodeOfRank.size() != static_cast<std::size_t>(h.nranks)) {
    throw Error(ErrorCode::kInvalidArgument, "PXN: the node map has " + std::to_string(nodeOfRank.size()) +
                                                 " entries but the Program has " + std::to_string(h.nranks) +
                                                 " ranks; pass one node per rank");
  }
  NodeMap nodes(nodeOfRank, h.nranks);
  if (nodes.ranks.size() < 2) return source;
  SemLayout sems;
  sems.base = h.numSemaphores;
  for (std::int32_t r = 0; r < h.nranks; ++r) sems.maxLanes = std::max(sems.maxLanes, source->numLanes(r));
  const std::uint64_t scratchBase = alignUp(h.scratchBytes, kSlotAlign);
  // Scratch and "is anything relayed" need every node's messages: one counting pass, node by node (only one
  // node's ops are held at a time); the ranks are built again when asked for.
  std::uint64_t scratchEnd = scratchBase;
  std::uint64_t relayed = 0;
  for (int n = 0; n < static_cast<int>(nodes.ranks.size()); ++n) {
    const NodeResult r = transformNode(*source, nodes, n, level, sems, scratchBase);
    scratchEnd = std::max(scratchEnd, r.scratchEnd);
    relayed += r.relayed;
  }
  if (relayed == 0) return source;
  core::ProgramHeader header = h;
  header.name += level >= 2 ? "+pxn2" : "+pxn1";
  header.numSemaphores = sems.base + sems.count(nodes.maxLocal);
  header.scratchBytes = scratchEnd;
  return std::make_shared<PxnProgram>(std::move(source), std::move(nodes), level, sems, scratchBase, std::move(header));
}

}  // namespace copro::collectives
