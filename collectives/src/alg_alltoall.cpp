/// All-to-all and all-to-allv: pairwise exchange, Bruck's log-p algorithm, and the data-dependent pairwise
/// all-to-allv (counts exchange + indirect puts). Steps, costs and scratch: docs/algorithms-rooted.md.
#include <algorithm>
#include <cstdint>
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

ProgramHeader makeHeader(const CollectiveArgs& a, const char* algo, std::int32_t sems, std::uint64_t scratch,
                         std::uint32_t layoutWords, std::uint64_t inBytes, std::uint64_t outBytes) {
  ProgramHeader h;
  h.name = std::string(collectiveName(a.kind)) + "." + algo;
  h.nranks = a.nranks;
  h.numSemaphores = sems;
  h.scratchBytes = scratch;
  h.layoutWords = layoutWords;
  h.loadStoreDomains = a.loadStoreDomains;
  h.inputBytes.assign(static_cast<std::size_t>(a.nranks), inBytes);
  h.outputBytes.assign(static_cast<std::size_t>(a.nranks), outBytes);
  return h;
}

struct LinkCost {
  double alphaUs;
  double usPerByte;
};
LinkCost linkCost(const CollectiveArgs& a, const CostModel& m) {
  const std::set<int> nodes(a.nodeOfRank.begin(), a.nodeOfRank.end());
  if (nodes.size() > 1) return {m.interAlphaUs, 1.0 / (m.interBandwidthGBps * 1e3)};
  return {m.alphaUs, 1.0 / (m.bandwidthGBps * 1e3)};
}
double memoryUsPerByte(const CostModel& m) {
  return 1.0 / (m.memoryGBps * 1e3);
}
constexpr double kMinEstimateUs = 1e-3;

std::string allToAllReason(const CollectiveArgs& a) {
  if (a.nranks < 1) return "needs at least one rank (nranks is " + std::to_string(a.nranks) + ")";
  const std::uint64_t es = elemBytes(a);
  if (es == 0) return "unknown data type";
  if (a.count > UINT64_MAX / es / static_cast<std::uint64_t>(a.nranks) / 4) {
    return "count " + std::to_string(a.count) + " overflows 64-bit byte offsets";
  }
  return "";
}

/// Bytes of one block (count elements).
std::uint64_t blockBytes(const CollectiveArgs& a) {
  return a.count * elemBytes(a);
}

// ----------------------------------------------------------------------------------------------------------
// All-to-all, pairwise: in step s = 1..p-1 rank r puts its block for d = (r+s) % p straight into d's output
// at position r and signals semaphore 0 there; then it waits for the p-1 blocks addressed to it. The own
// block is a local copy.
//
// In place (input == output) a peer's output block r is still the peer's unsent input block r, so the
// blocks go to the receiver's scratch at position r instead (scratch p*count), and each rank copies them
// into its output after it has received all and its own puts have read their sources (flush).

/// Rank r's lane. A coroutine of three numbers: it keeps no per-peer state.
core::OpStream pairwiseStream(std::int32_t p, std::uint64_t n, bool inPlace, std::int32_t r) {
  const auto block = [n](std::int32_t i) { return static_cast<std::uint64_t>(i) * n; };
  const BufferId landing = inPlace ? BufferId::kScratch : BufferId::kOutput;
  if (!inPlace) co_yield Op::copy(localAddr(BufferId::kOutput, block(r)), localAddr(BufferId::kInput, block(r)), n);
  for (std::int32_t s = 1; s < p; ++s) {
    const std::int32_t d = (r + s) % p;
    co_yield Op::put(d, remoteAddr(d, landing, block(r)), localAddr(BufferId::kInput, block(d)), n, 0, 1);
  }
  if (p == 1) co_return;
  co_yield Op::wait(0, static_cast<std::uint64_t>(p - 1));
  if (inPlace) {
    // Our own puts read our output (== input); they must be done before we overwrite it.
    co_yield Op::flush();
    if (r > 0) co_yield Op::copy(localAddr(BufferId::kOutput, 0), localAddr(BufferId::kScratch, 0), block(r));
    if (r + 1 < p) {
      co_yield Op::copy(localAddr(BufferId::kOutput, block(r + 1)), localAddr(BufferId::kScratch, block(r + 1)),
                        block(p - r - 1));
    }
  }
}

/// Lane `lane` of `lanes` > 1 (out of place): the puts of steps s = lane + 1, lane + 1 + lanes, ...; lane 0
/// also copies the own block and waits for the p - 1 blocks addressed to rank r (any lane's puts signal
/// semaphore 0, so one wait covers them all).
core::OpStream pairwiseChannel(std::int32_t p, std::uint64_t n, std::int32_t r, int lane, int lanes) {
  const auto block = [n](std::int32_t i) { return static_cast<std::uint64_t>(i) * n; };
  if (lane == 0) co_yield Op::copy(localAddr(BufferId::kOutput, block(r)), localAddr(BufferId::kInput, block(r)), n);
  for (std::int32_t s = lane + 1; s < p; s += lanes) {
    const std::int32_t d = (r + s) % p;
    co_yield Op::put(d, remoteAddr(d, BufferId::kOutput, block(r)), localAddr(BufferId::kInput, block(d)), n, 0, 1);
  }
  if (lane == 0) co_yield Op::wait(0, static_cast<std::uint64_t>(p - 1));
}

std::shared_ptr<const core::ProgramSource> buildAllToAllPairwise(const CollectiveArgs& args) {
  const std::uint64_t n = blockBytes(args);
  const std::uint64_t all = n * static_cast<std::uint64_t>(args.nranks);
  const std::uint64_t scratch = args.inPlace && args.nranks > 1 ? all : 0;
  const std::int32_t p = args.nranks;
  const bool inPlace = args.inPlace;
  // No ops (an empty block, or one rank in place) means no lane at all.
  const int lanes = n == 0 || (p == 1 && inPlace) ? 0 : 1;
  // Several channels (out of place only: in place, lane 0's flush must cover every put before its copies).
  const int channels = inPlace || lanes == 0 ? 1 : std::clamp(args.channels, 1, std::max(1, p - 1));
  std::shared_ptr<core::StreamProgram> program;
  if (channels > 1) {
    program = std::make_shared<core::StreamProgram>(
        makeHeader(args, "pairwise", 1, scratch, 0, all, all), channels,
        [p, n, channels](std::int32_t r, int lane) { return pairwiseChannel(p, n, r, lane, channels); });
  } else {
    program = std::make_shared<core::StreamProgram>(
        makeHeader(args, "pairwise", 1, scratch, 0, all, all), lanes,
        [p, n, inPlace](std::int32_t r, int) { return pairwiseStream(p, n, inPlace, r); });
  }
  // Out of place, rank r + m puts to (r + m + s) % p what rank r puts to (r + s) % p, with the same sizes;
  // in place, the final copies' sizes depend on r.
  if (!inPlace && p > 1) program->declareRotationPeriod(1);
  return program;
}

double estimateAllToAllPairwise(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(blockBytes(a));
  const double local = n * memoryUsPerByte(m) * (a.inPlace ? a.nranks : 1);
  if (a.nranks <= 1) return std::max(kMinEstimateUs, local);
  const LinkCost l = linkCost(a, m);
  return std::max(kMinEstimateUs, (a.nranks - 1) * (l.alphaUs + n * l.usPerByte) + local);
}

// ----------------------------------------------------------------------------------------------------------
// All-to-all, Bruck et al. (1997): after a local rotation W[j] = input[(r + j) % p], round k = 0..L-1
// (L = ceil(log2 p)) sends every block j with bit k set to rank (r + 2^k) % p, which stores it at the same
// index j; after the last round W[j] holds the block of rank (r - j) % p, copied to output[(r - j) % p].
//
// Scratch per rank (n = count bytes, m = max over rounds of the blocks with bit k set):
//   W: p*n | send pack: m*n | two receive areas: 2*m*n      total (p + 3m) * n
// The send pack is reused every round (flush first); receive area k % 2 is reused in round k + 2, so the
// receiver returns a credit (semaphore L + k + 2 on the round-(k+2) sender) after unpacking round k.
// Semaphore k carries round k's data.

struct BruckShape {
  int rounds;
  std::uint64_t maxBlocks;  ///< m: most blocks any round sends
};

/// Blocks j in [0, p) with bit k set, as runs [lo, hi) of consecutive indices.
std::vector<std::pair<std::int32_t, std::int32_t>> bruckRuns(std::int32_t p, int k) {
  std::vector<std::pair<std::int32_t, std::int32_t>> runs;
  const std::int64_t d = std::int64_t{1} << k;
  for (std::int64_t lo = d; lo < p; lo += 2 * d) {
    runs.emplace_back(static_cast<std::int32_t>(lo), static_cast<std::int32_t>(std::min<std::int64_t>(lo + d, p)));
  }
  return runs;
}

BruckShape bruckShape(std::int32_t p) {
  BruckShape s{log2Ceil(static_cast<std::uint64_t>(p)), 0};
  for (int k = 0; k < s.rounds; ++k) {
    std::uint64_t blocks = 0;
    for (const auto& [lo, hi] : bruckRuns(p, k)) blocks += static_cast<std::uint64_t>(hi - lo);
    s.maxBlocks = std::max(s.maxBlocks, blocks);
  }
  return s;
}

std::uint64_t bruckScratchBytes(const CollectiveArgs& a) {
  if (a.nranks <= 1) return 0;
  return (static_cast<std::uint64_t>(a.nranks) + 3 * bruckShape(a.nranks).maxBlocks) * blockBytes(a);
}

std::shared_ptr<const core::ProgramSource> buildAllToAllBruck(const CollectiveArgs& args) {
  const std::uint64_t n = blockBytes(args);
  const std::uint64_t all = n * static_cast<std::uint64_t>(args.nranks);
  const BruckShape shape = bruckShape(args.nranks);
  ProgramHeader h = makeHeader(args, "bruck", std::max(1, 2 * shape.rounds), bruckScratchBytes(args), 0, all, all);
  return std::make_shared<core::LazyProgram>(std::move(h), [args, n, shape](std::int32_t r, RankProgram& out) {
    const std::int32_t p = args.nranks;
    if (n == 0) return;
    if (p == 1) {
      if (!args.inPlace) out.emit(0, Op::copy(localAddr(BufferId::kOutput, 0), localAddr(BufferId::kInput, 0), n));
      return;
    }
    const auto at = [n](std::int64_t blocks) { return static_cast<std::uint64_t>(blocks) * n; };
    const std::uint64_t wBase = 0;
    const std::uint64_t sendBase = at(p);
    const auto recvBase = [&](int k) { return at(p) + at(static_cast<std::int64_t>(shape.maxBlocks)) * (1 + k % 2); };
    const int rounds = shape.rounds;

    // Rotation: W[j] = input[(r + j) % p], two contiguous pieces. In place this reads the output before
    // anything writes it (phase 3 is last).
    out.emit(0, Op::copy(localAddr(BufferId::kScratch, wBase), localAddr(BufferId::kInput, at(r)), at(p - r)));
    if (r > 0)
      out.emit(0, Op::copy(localAddr(BufferId::kScratch, wBase + at(p - r)), localAddr(BufferId::kInput, 0), at(r)));

    for (int k = 0; k < rounds; ++k) {
      const std::int64_t d = std::int64_t{1} << k;
      const auto dst = static_cast<std::int32_t>((r + d) % p);
      const auto runs = bruckRuns(p, k);
      // The previous round's put read the send pack; it must be complete before we repack.
      if (k > 0) out.emit(0, Op::flush());
      std::int64_t packed = 0;
      for (const auto& [lo, hi] : runs) {
        out.emit(0, Op::copy(localAddr(BufferId::kScratch, sendBase + at(packed)),
                             localAddr(BufferId::kScratch, wBase + at(lo)), at(hi - lo)));
        packed += hi - lo;
      }
      if (k >= 2) out.emit(0, Op::wait(rounds + k, 1));
      out.emit(0, Op::put(dst, remoteAddr(dst, BufferId::kScratch, recvBase(k)),
                          localAddr(BufferId::kScratch, sendBase), at(packed), k, 1));
      out.emit(0, Op::wait(k, 1));
      std::int64_t unpacked = 0;
      for (const auto& [lo, hi] : runs) {
        out.emit(0, Op::copy(localAddr(BufferId::kScratch, wBase + at(lo)),
                             localAddr(BufferId::kScratch, recvBase(k) + at(unpacked)), at(hi - lo)));
        unpacked += hi - lo;
      }
      if (k + 2 < rounds) {
        // The rank that sends to us in round k + 2 reuses this receive area.
        const std::int64_t d2 = std::int64_t{1} << (k + 2);
        const auto sender = static_cast<std::int32_t>(((r - d2) % p + p) % p);
        out.emit(0, Op::signal(sender, rounds + k + 2, 1));
      }
    }
    // Inverse rotation: output[(r - j) % p] = W[j].
    for (std::int32_t j = 0; j < p; ++j) {
      const std::int32_t src = ((r - j) % p + p) % p;
      out.emit(0, Op::copy(localAddr(BufferId::kOutput, at(src)), localAddr(BufferId::kScratch, wBase + at(j)), n));
    }
  });
}

double estimateAllToAllBruck(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(blockBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  const BruckShape s = bruckShape(a.nranks);
  // Per round one message of up to m blocks, plus packing and unpacking it; the two rotations copy p blocks.
  const double perRound = l.alphaUs + static_cast<double>(s.maxBlocks) * n * (l.usPerByte + 2 * memoryUsPerByte(m));
  return std::max(kMinEstimateUs, s.rounds * perRound + 2.0 * a.nranks * n * memoryUsPerByte(m));
}

// ----------------------------------------------------------------------------------------------------------
// All-to-allv, pairwise, data-dependent. Layout words of rank r (elements, not bytes):
//   [0, p)    sendcounts      [p, 2p)  sdispls      [2p, 3p) recvcounts      [3p, 4p) rdispls
//   [4p, 5p)  word 4p + s = the rdispl rank s chose for r's data (filled by phase 1)
// Phase 1: r puts its rdispls[s] (word 3p + s) into word 4p + r of rank s, signalling semaphore 0.
// Phase 2 (after all p-1 arrived): an indirect put per peer s of sendcounts[s] elements from
// input + sdispls[s] to s's output + word(4p + s), signalling semaphore 1; then r waits for p-1 arrivals.
// The own block is an indirect local copy to output + rdispls[r].
// Buffer sizes are unknown statically: the header says UINT64_MAX and executors/validator use the call's
// buffer sizes (every indirect access is bounds-checked against them).

std::string allToAllvReason(const CollectiveArgs& a) {
  if (a.nranks < 1) return "needs at least one rank (nranks is " + std::to_string(a.nranks) + ")";
  if (elemBytes(a) == 0) return "unknown data type";
  if (a.inPlace) {
    return "in place is not supported (a peer's output block would overwrite input it has not sent yet); "
           "use separate buffers";
  }
  if (static_cast<std::uint64_t>(a.nranks) * 5 > UINT32_MAX) return "too many ranks for the layout words";
  return "";
}

std::shared_ptr<const core::ProgramSource> buildAllToAllvPairwise(const CollectiveArgs& args) {
  const std::int32_t p = args.nranks;
  const auto words = static_cast<std::uint32_t>(5 * p);
  ProgramHeader h = makeHeader(args, "pairwise", 2, 0, words, UINT64_MAX, UINT64_MAX);
  return std::make_shared<core::LazyProgram>(std::move(h), [args, p](std::int32_t r, RankProgram& out) {
    const auto es = static_cast<std::uint32_t>(elemBytes(args));
    const auto word = [](std::int64_t w) { return static_cast<std::uint64_t>(w) * sizeof(std::uint64_t); };
    // Phase 1: tell every peer where its data lands in our output.
    for (std::int32_t i = 1; i < p; ++i) {
      const std::int32_t s = (r + i) % p;
      out.emit(0, Op::put(s, remoteAddr(s, BufferId::kLayout, word(4 * p + r)),
                          localAddr(BufferId::kLayout, word(3 * p + s)), sizeof(std::uint64_t), 0, 1));
    }
    if (p > 1) out.emit(0, Op::wait(0, static_cast<std::uint64_t>(p - 1)));
    // Phase 2: data, sizes and offsets read from the layout at run time.
    for (std::int32_t i = 1; i < p; ++i) {
      const std::int32_t s = (r + i) % p;
      Op put = Op::put(s, remoteAddr(s, BufferId::kOutput, 0), localAddr(BufferId::kInput, 0), 0, 1, 1);
      put.indirect = core::Indirect{s, p + s, 4 * p + s, es};
      out.emit(0, put);
    }
    Op self = Op::copy(localAddr(BufferId::kOutput, 0), localAddr(BufferId::kInput, 0), 0);
    self.indirect = core::Indirect{r, p + r, 3 * p + r, es};
    out.emit(0, self);
    if (p > 1) out.emit(0, Op::wait(1, static_cast<std::uint64_t>(p - 1)));
  });
}

double estimateAllToAllvPairwise(const CollectiveArgs& a, const CostModel& m) {
  // The Program does not know the counts; estimate with args.count elements per peer, or the mean of
  // args.counts when those are given.
  double perPeer = static_cast<double>(a.count);
  if (!a.counts.empty()) {
    double sum = 0;
    for (auto c : a.counts) sum += static_cast<double>(c);
    perPeer = sum / static_cast<double>(a.counts.size());
  }
  const double n = perPeer * static_cast<double>(elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  // One latency for the counts exchange, then the pairwise data exchange.
  return std::max(kMinEstimateUs, l.alphaUs + (a.nranks - 1) * (l.alphaUs + n * l.usPerByte));
}

}  // namespace

void addAllToAllAlgorithms(std::vector<Algorithm>& out) {
  out.push_back({"pairwise", CollectiveKind::kAllToAll,
                 "p-1 steps, each rank puts one block straight into a peer's output: bandwidth-optimal", allToAllReason,
                 estimateAllToAllPairwise, buildAllToAllPairwise});
  out.push_back({"bruck", CollectiveKind::kAllToAll,
                 "Bruck's algorithm: ceil(log2 p) rounds of half the data each, for small blocks", allToAllReason,
                 estimateAllToAllBruck, buildAllToAllBruck});
  out.push_back({"pairwise", CollectiveKind::kAllToAllV,
                 "counts exchange of receive displacements, then one indirect put per peer", allToAllvReason,
                 estimateAllToAllvPairwise, buildAllToAllvPairwise});
}

}  // namespace copro::collectives::detail
