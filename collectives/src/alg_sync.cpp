/// Synchronization and point-to-point: the dissemination barrier and grouped send/recv through the
/// receiver's scratch. Steps, costs and the send/recv matching rules: docs/algorithms-rooted.md.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "algorithms_internal.hpp"
#include "compose.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives::detail {
namespace {

using core::Addr;
using core::BufferId;
using core::kSelf;
using core::Op;
using core::ProgramHeader;
using core::RankProgram;

struct LinkCost {
  double alphaUs;
  double usPerByte;
};
LinkCost linkCost(const CollectiveArgs& a, const CostModel& m) {
  const std::set<int> nodes(a.nodeOfRank.begin(), a.nodeOfRank.end());
  if (nodes.size() > 1) return {m.interAlphaUs, 1.0 / (m.interBandwidthGBps * 1e3)};
  return {m.alphaUs, 1.0 / (m.bandwidthGBps * 1e3)};
}
constexpr double kMinEstimateUs = 1e-3;

ProgramHeader makeHeader(const CollectiveArgs& a, const char* algo, std::int32_t sems, std::uint64_t scratch) {
  ProgramHeader h;
  h.name = std::string(collectiveName(a.kind)) + "." + algo;
  h.nranks = a.nranks;
  h.numSemaphores = sems;
  h.scratchBytes = scratch;
  h.layoutWords = 0;
  h.loadStoreDomains = a.loadStoreDomains;
  h.inputBytes.assign(static_cast<std::size_t>(a.nranks), 0);
  h.outputBytes.assign(static_cast<std::size_t>(a.nranks), 0);
  return h;
}

// ----------------------------------------------------------------------------------------------------------
// Barrier, dissemination (Hensgen, Finkel & Manber 1988): in round k = 0..ceil(log2 p)-1 rank r signals
// rank (r + 2^k) % p and waits for the signal of rank (r - 2^k) % p. One semaphore per round, so a fast
// rank's round-(k+1) signal can never be mistaken for round k's.

std::string barrierReason(const CollectiveArgs& a) {
  if (a.nranks < 1) return "needs at least one rank (nranks is " + std::to_string(a.nranks) + ")";
  return "";
}

std::shared_ptr<const core::ProgramSource> buildBarrierDissemination(const CollectiveArgs& args) {
  const int rounds = log2Ceil(static_cast<std::uint64_t>(args.nranks));
  return std::make_shared<core::LazyProgram>(
      makeHeader(args, "dissemination", std::max(1, rounds), 0), [args, rounds](std::int32_t r, RankProgram& out) {
        const std::int32_t p = args.nranks;
        for (int k = 0; k < rounds; ++k) {
          const auto to = static_cast<std::int32_t>((r + (std::int64_t{1} << k)) % p);
          out.emit(0, Op::signal(to, k, 1));
          out.emit(0, Op::wait(k, 1));
        }
      });
}

double estimateBarrierDissemination(const CollectiveArgs& a, const CostModel& m) {
  return std::max(kMinEstimateUs, log2Ceil(static_cast<std::uint64_t>(a.nranks)) * linkCost(a, m).alphaUs);
}

// ----------------------------------------------------------------------------------------------------------
// Grouped send/recv through the receiver's scratch.
//
// Scratch of every rank: a pair of slots per sending peer, slot (s, b) at (2s + b) * slotBytes, with
// slotBytes = min(chunkBytes, 256 KiB) rounded down to whole elements. Semaphore s (0 <= s < p) counts
// chunks that arrived from s; semaphore p + s counts credits returned by s.
//
// The messages from s to r in one group form one stream: the k-th send from s to r matches the k-th recv
// of r from s (NCCL/MPI order), and chunk g of that stream (counted over all its messages) lands in slot
// (s, g % 2). The receiver copies it to its extra buffer and returns a credit when g + 2 < G (G = the
// stream's chunk count), i.e. exactly for the chunks whose slot the sender will reuse; the sender waits
// for credit g - 1 before putting chunk g >= 2.
//
// Every stream runs on its own lane (one send lane per destination, one receive lane per source, one lane
// for sends to self), so streams never wait on each other and any order of the group's operations is
// deadlock-free.
//
// A send to self is matched with a receive from self in the same order and done as a local copy; those
// counts are known here and checked. A count mismatch between ranks cannot be detected inside the Program:
// the chunk counts then disagree, and the call fails with a timeout (interpreter: deadlock) naming the
// blocked lane, or leaves extra signals. COPRO_CHECK_CALLS catches it before the call runs.

constexpr std::uint64_t kMaxSlotBytes = 256 * 1024;

std::uint64_t slotBytesFor(const CollectiveArgs& a) {
  const std::uint64_t es = elemBytes(a);
  // chunkBytes == 0 (unchunked) takes the largest slot: the slots bound the scratch whatever the chunk.
  const std::uint64_t want = a.chunkBytes == 0 ? kMaxSlotBytes : std::min<std::uint64_t>(a.chunkBytes, kMaxSlotBytes);
  return std::max(es, want / es * es);
}

/// Indices (into args.p2p) of the sends to self and the receives from self, in order.
void selfOps(const CollectiveArgs& a, std::vector<std::size_t>& sends, std::vector<std::size_t>& recvs) {
  for (std::size_t i = 0; i < a.p2p.size(); ++i) {
    if (a.p2p[i].peer != a.rank) continue;
    (a.p2p[i].isSend ? sends : recvs).push_back(i);
  }
}

std::string sendRecvReason(const CollectiveArgs& a) {
  if (a.nranks < 1) return "needs at least one rank (nranks is " + std::to_string(a.nranks) + ")";
  const std::uint64_t es = elemBytes(a);
  if (es == 0) return "unknown data type";
  if (a.rank < 0 || a.rank >= a.nranks) {
    return "the executing rank " + std::to_string(a.rank) + " is out of range for " + std::to_string(a.nranks) +
           " ranks (set CollectiveArgs::rank)";
  }
  for (std::size_t i = 0; i < a.p2p.size(); ++i) {
    const P2POp& op = a.p2p[i];
    if (op.peer < 0 || op.peer >= a.nranks) {
      return std::string(op.isSend ? "send" : "recv") + " #" + std::to_string(i) + " names peer " +
             std::to_string(op.peer) + ", out of range for " + std::to_string(a.nranks) + " ranks";
    }
    if (op.count > UINT64_MAX / es) return "operation #" + std::to_string(i) + ": count overflows 64-bit bytes";
  }
  std::vector<std::size_t> sends;
  std::vector<std::size_t> recvs;
  selfOps(a, sends, recvs);
  if (sends.size() != recvs.size()) {
    return "the group has " + std::to_string(sends.size()) + " send(s) to self but " + std::to_string(recvs.size()) +
           " recv(s) from self; each send to self needs a matching recv";
  }
  for (std::size_t k = 0; k < sends.size(); ++k) {
    const std::uint64_t sc = a.p2p[sends[k]].count;
    const std::uint64_t rc = a.p2p[recvs[k]].count;
    if (sc != rc) {
      return "send to self #" + std::to_string(sends[k]) + " has count " + std::to_string(sc) +
             " but its matching recv #" + std::to_string(recvs[k]) + " has count " + std::to_string(rc);
    }
  }
  return "";
}

/// The header: identical on every rank (depends on nranks, dtype and chunkBytes only).
ProgramHeader sendRecvHeader(const CollectiveArgs& a) {
  const std::uint64_t p = static_cast<std::uint64_t>(std::max(a.nranks, 0));
  return makeHeader(a, "scratch", static_cast<std::int32_t>(2 * p), p * 2 * slotBytesFor(a));
}

void emitSendRecv(const CollectiveArgs& a, RankProgram& out) {
  const std::int32_t p = a.nranks;
  const std::int32_t me = a.rank;
  const std::uint64_t es = elemBytes(a);
  const std::uint64_t slot = slotBytesFor(a);
  const auto slotOffset = [slot](std::int32_t sender, std::uint64_t g) {
    return (2 * static_cast<std::uint64_t>(sender) + g % 2) * slot;
  };
  const auto chunksOf = [slot](std::uint64_t bytes) { return (bytes + slot - 1) / slot; };

  // Total chunks per stream, to know which credits the peer will wait for.
  std::map<std::int32_t, std::uint64_t> recvChunks;
  for (const P2POp& op : a.p2p) {
    if (!op.isSend && op.peer != me) recvChunks[op.peer] += chunksOf(op.count * es);
  }

  std::map<std::int32_t, int> sendLane;
  std::map<std::int32_t, int> recvLane;
  std::map<std::int32_t, std::uint64_t> sentSoFar;  // chunk index g of each outgoing stream
  std::map<std::int32_t, std::uint64_t> recvSoFar;
  const auto laneFor = [&out](std::map<std::int32_t, int>& lanes, std::int32_t peer) {
    auto it = lanes.find(peer);
    if (it != lanes.end()) return it->second;
    const int lane = out.addLane();
    lanes.emplace(peer, lane);
    return lane;
  };

  std::vector<std::size_t> selfSends;
  std::vector<std::size_t> selfRecvs;
  selfOps(a, selfSends, selfRecvs);

  for (std::size_t i = 0; i < a.p2p.size(); ++i) {
    const P2POp& op = a.p2p[i];
    const std::uint64_t bytes = op.count * es;
    const BufferId buf = core::extraBuffer(static_cast<int>(i));
    if (op.peer == me) continue;  // handled below
    if (bytes == 0) continue;     // no chunks; the peer's matching op has none either
    if (op.isSend) {
      const int lane = laneFor(sendLane, op.peer);
      std::uint64_t& g = sentSoFar[op.peer];
      for (std::uint64_t off = 0; off < bytes; off += slot, ++g) {
        const std::uint64_t len = std::min(slot, bytes - off);
        if (g >= 2) out.emit(lane, Op::wait(p + op.peer, g - 1));
        out.emit(lane, Op::put(op.peer, remoteAddr(op.peer, BufferId::kScratch, slotOffset(me, g)), localAddr(buf, off),
                               len, me, 1));
      }
    } else {
      const int lane = laneFor(recvLane, op.peer);
      std::uint64_t& g = recvSoFar[op.peer];
      const std::uint64_t total = recvChunks[op.peer];
      for (std::uint64_t off = 0; off < bytes; off += slot, ++g) {
        const std::uint64_t len = std::min(slot, bytes - off);
        out.emit(lane, Op::wait(op.peer, g + 1));
        out.emit(lane, Op::copy(localAddr(buf, off), localAddr(BufferId::kScratch, slotOffset(op.peer, g)), len));
        if (g + 2 < total) out.emit(lane, Op::signal(op.peer, p + me, 1));
      }
    }
  }

  // Sends to self: the k-th send copies into the k-th recv's buffer.
  int selfLane = -1;
  for (std::size_t k = 0; k < selfSends.size() && k < selfRecvs.size(); ++k) {
    const std::uint64_t bytes = std::min(a.p2p[selfSends[k]].count, a.p2p[selfRecvs[k]].count) * es;
    if (bytes == 0) continue;
    if (selfLane < 0) selfLane = out.addLane();
    out.emit(selfLane, Op::copy(localAddr(core::extraBuffer(static_cast<int>(selfRecvs[k])), 0),
                                localAddr(core::extraBuffer(static_cast<int>(selfSends[k])), 0), bytes));
  }
}

std::shared_ptr<const core::ProgramSource> buildSendRecvScratch(const CollectiveArgs& args) {
  if (std::string why = sendRecvReason(args); !why.empty()) {
    throw core::Error(core::ErrorCode::kInvalidArgument, "sendrecv: " + why);
  }
  return std::make_shared<core::LazyProgram>(sendRecvHeader(args), [args](std::int32_t r, RankProgram& out) {
    // Only the executing rank's operations are known here; its peers build their own Programs.
    if (r == args.rank) emitSendRecv(args, out);
  });
}

double estimateSendRecvScratch(const CollectiveArgs& a, const CostModel& m) {
  const LinkCost l = linkCost(a, m);
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t selfBytes = 0;
  for (const P2POp& op : a.p2p) {
    const std::uint64_t bytes = op.count * elemBytes(a);
    if (op.peer == a.rank) {
      if (op.isSend) selfBytes += bytes;
    } else {
      (op.isSend ? sent : received) += bytes;
    }
  }
  // Streams run in parallel; the rank's link carries all of its sends (and receives), and every received
  // byte is copied once out of scratch.
  const double memUsPerByte = 1.0 / (m.memoryGBps * 1e3);
  const double wire = static_cast<double>(std::max(sent, received)) * l.usPerByte;
  const double copies = static_cast<double>(received + selfBytes) * memUsPerByte;
  const double latency = sent + received > 0 ? l.alphaUs : 0.0;
  return std::max(kMinEstimateUs, latency + wire + copies);
}

}  // namespace

void addSyncAlgorithms(std::vector<Algorithm>& out) {
  out.push_back({"dissemination", CollectiveKind::kBarrier,
                 "dissemination barrier: ceil(log2 p) rounds of one signal and one wait", barrierReason,
                 estimateBarrierDissemination, buildBarrierDissemination});
  out.push_back({"scratch", CollectiveKind::kSendRecv,
                 "grouped send/recv through double-buffered slots in the receiver's scratch, one lane per peer",
                 sendRecvReason, estimateSendRecvScratch, buildSendRecvScratch});
}

}  // namespace copro::collectives::detail
