/// Rooted collectives: broadcast, reduce, gather and scatter (binomial trees, pipelined chains, direct).
///
/// Steps, costs and scratch of every algorithm here are documented in docs/algorithms-rooted.md.
///
/// Conventions shared by the algorithms of this file:
///   - "relative rank" v = (r - root) mod p, so the root is v = 0 whatever args.root is.
///   - The binomial tree is the one whose subtrees are contiguous in relative ranks: the parent of v > 0
///     is v with its lowest set bit cleared, the children of v are v + 2^k for every 2^k below v's lowest
///     set bit (below p for the root). The subtree of v is [v, v + min(lowbit(v), p - v)).
///   - In place is a property of the root alone (the communicator sets args.inPlace only on the root, where
///     the send and receive buffers coincide as below), so the header and every non-root rank's ops do not
///     depend on it: ranks built with different flags still run one consistent Program. On the root:
///       broadcast, reduce: Input == Output (the root's ops read Input and write Output at equal offsets);
///       gather: Input == Output + root*count (the root never reads its Input);
///       scatter: Output == Input + root*count (the root never touches its Output).
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

// ----------------------------------------------------------------------------------------------------------
// Shared helpers.

std::int32_t relRank(std::int32_t r, std::int32_t root, std::int32_t p) {
  return (r - root + p) % p;
}
std::int32_t absRank(std::int32_t v, std::int32_t root, std::int32_t p) {
  return (v + root) % p;
}

/// Number of tree levels: the count of k with 2^k < p (ceil(log2 p)).
int treeLevels(std::int32_t p) {
  int l = 0;
  while ((std::int64_t{1} << l) < p) ++l;
  return l;
}

std::int32_t lowBit(std::int32_t v) {
  return v & -v;
}

/// Parent of relative rank v > 0 in the binomial tree.
std::int32_t treeParent(std::int32_t v) {
  return v & (v - 1);
}

/// Size of v's subtree (v = 0: all ranks).
std::int32_t subtreeSize(std::int32_t v, std::int32_t p) {
  return v == 0 ? p : std::min(lowBit(v), p - v);
}

/// A child of a tree node: its relative rank and the index k of its edge (child = parent + 2^k).
struct TreeChild {
  std::int32_t rel;
  int k;
};

/// Children of v, largest subtree first (so the deepest branch starts earliest).
std::vector<TreeChild> treeChildren(std::int32_t v, std::int32_t p) {
  std::vector<TreeChild> out;
  const std::int64_t limit = v == 0 ? std::int64_t{p} : std::int64_t{lowBit(v)};
  for (int k = treeLevels(p); k >= 0; --k) {
    const std::int64_t d = std::int64_t{1} << k;
    if (d >= limit) continue;
    if (v + d < p) out.push_back({static_cast<std::int32_t>(v + d), k});
  }
  return out;
}

/// Edge index of v > 0 towards its parent (v = parent + 2^k).
int edgeIndex(std::int32_t v) {
  int k = 0;
  while ((std::int32_t{1} << k) != lowBit(v)) ++k;
  return k;
}

/// Largest subtree below the root: the scratch (in blocks) of the binomial gather and scatter.
std::int32_t largestChildSubtree(std::int32_t p) {
  std::int32_t best = 0;
  for (const TreeChild& c : treeChildren(0, p)) best = std::max(best, subtreeSize(c.rel, p));
  return best;
}

/// Pipelining chunk in elements: args.chunkBytes rounded down to whole elements, at least one; 0 means
/// unchunked (chunkElemsOf).
std::uint64_t chunkElems(const CollectiveArgs& a) {
  return chunkElemsOf(a);
}

std::uint64_t numChunks(std::uint64_t count, std::uint64_t ce) {
  return (count + ce - 1) / ce;
}

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

/// Checks shared by every rooted algorithm.
std::string rootedReason(const CollectiveArgs& a) {
  if (a.nranks < 1) return "needs at least one rank (nranks is " + std::to_string(a.nranks) + ")";
  if (a.root < 0 || a.root >= a.nranks) {
    return "root " + std::to_string(a.root) + " is out of range for " + std::to_string(a.nranks) + " ranks";
  }
  const std::uint64_t es = elemBytes(a);
  if (es == 0) return "unknown data type";
  // Gather/scatter address count*p elements; keep every byte offset representable.
  if (a.count > UINT64_MAX / es / static_cast<std::uint64_t>(a.nranks)) {
    return "count " + std::to_string(a.count) + " overflows 64-bit byte offsets";
  }
  return "";
}

/// Alpha and beta (microseconds per byte) of the slowest link the call uses: inter-node when the ranks
/// span several nodes.
struct LinkCost {
  double alphaUs;
  double usPerByte;
};
LinkCost linkCost(const CollectiveArgs& a, const CostModel& m) {
  const std::set<int> nodes(a.nodeOfRank.begin(), a.nodeOfRank.end());
  if (nodes.size() > 1) return {m.interAlphaUs, 1.0 / (m.interBandwidthGBps * 1e3)};
  return {m.alphaUs, 1.0 / (m.bandwidthGBps * 1e3)};
}
double reduceUsPerByte(const CostModel& m) {
  return 1.0 / (m.reduceGBps * 1e3);
}
double memoryUsPerByte(const CostModel& m) {
  return 1.0 / (m.memoryGBps * 1e3);
}

/// A zero-byte call on one rank still costs something; keeps every estimate positive.
constexpr double kMinEstimateUs = 1e-3;

/// The one-rank case shared by every rooted collective: copy input to output unless in place.
void emitSingleRank(const CollectiveArgs& a, RankProgram& out) {
  const std::uint64_t n = a.count * elemBytes(a);
  if (!a.inPlace && n > 0) out.emit(0, Op::copy(localAddr(BufferId::kOutput, 0), localAddr(BufferId::kInput, 0), n));
}

// ----------------------------------------------------------------------------------------------------------
// Broadcast: a pipelined tree (binomial or chain). Every non-root rank waits for chunk c on semaphore 0
// (one signal per chunk from its parent) and forwards it into its children's outputs.

ProgramHeader broadcastHeader(const CollectiveArgs& a, const char* algo) {
  ProgramHeader h = makeHeader(a, algo, 1, 0);
  const std::uint64_t n = a.count * elemBytes(a);
  h.inputBytes[static_cast<std::size_t>(a.root)] = n;
  for (auto& b : h.outputBytes) b = n;
  return h;
}

/// `children` are absolute ranks; `hasParent` says whether chunks arrive from a parent.
void emitBroadcastRank(const CollectiveArgs& a, std::int32_t r, bool hasParent,
                       const std::vector<std::int32_t>& children, RankProgram& out) {
  const std::uint64_t es = elemBytes(a);
  const std::uint64_t n = a.count * es;
  if (a.nranks == 1) return emitSingleRank(a, out);
  if (n == 0) return;
  const bool isRoot = r == a.root;
  const std::uint64_t ce = chunkElems(a);
  const std::uint64_t nc = numChunks(a.count, ce);
  // The root sends from its input (in place that is its output), others forward from their output.
  const BufferId src = isRoot ? BufferId::kInput : BufferId::kOutput;
  for (std::uint64_t c = 0; c < nc; ++c) {
    const std::uint64_t off = c * ce * es;
    const std::uint64_t len = std::min(ce, a.count - c * ce) * es;
    if (hasParent) out.emit(0, Op::wait(0, c + 1));
    for (std::int32_t child : children) {
      out.emit(0, Op::put(child, remoteAddr(child, BufferId::kOutput, off), localAddr(src, off), len, 0, 1));
    }
  }
  // Last, so the sends are not delayed by the root's own copy.
  if (isRoot && !a.inPlace) out.emit(0, Op::copy(localAddr(BufferId::kOutput, 0), localAddr(BufferId::kInput, 0), n));
}

std::shared_ptr<const core::ProgramSource> buildBroadcastBinomial(const CollectiveArgs& args) {
  return std::make_shared<core::LazyProgram>(broadcastHeader(args, "binomial"),
                                             [args](std::int32_t r, RankProgram& out) {
                                               const std::int32_t p = args.nranks;
                                               const std::int32_t v = relRank(r, args.root, p);
                                               std::vector<std::int32_t> children;
                                               for (const TreeChild& c : treeChildren(v, p))
                                                 children.push_back(absRank(c.rel, args.root, p));
                                               emitBroadcastRank(args, r, v != 0, children, out);
                                             });
}

std::shared_ptr<const core::ProgramSource> buildBroadcastChain(const CollectiveArgs& args) {
  return std::make_shared<core::LazyProgram>(broadcastHeader(args, "chain"), [args](std::int32_t r, RankProgram& out) {
    const std::int32_t p = args.nranks;
    const std::int32_t v = relRank(r, args.root, p);
    std::vector<std::int32_t> children;
    if (v + 1 < p) children.push_back(absRank(v + 1, args.root, p));
    emitBroadcastRank(args, r, v != 0, children, out);
  });
}

double estimateBroadcastBinomial(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(a.count * elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  const double levels = treeLevels(a.nranks);
  const double nc = static_cast<double>(std::max<std::uint64_t>(1, numChunks(a.count, chunkElems(a))));
  // The root sends every chunk to ceil(log2 p) children; a chunk needs ceil(log2 p) steps to reach a leaf.
  return std::max(kMinEstimateUs, (nc + levels - 1) * l.alphaUs + levels * n * l.usPerByte);
}

double estimateBroadcastChain(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(a.count * elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  const std::uint64_t ncInt = std::max<std::uint64_t>(1, numChunks(a.count, chunkElems(a)));
  const double nc = static_cast<double>(ncInt);
  const double chunk = n / nc;
  return std::max(kMinEstimateUs, (a.nranks - 1 + nc - 1) * (l.alphaUs + chunk * l.usPerByte));
}

std::string broadcastReason(const CollectiveArgs& a) {
  return rootedReason(a);
}

// Broadcast over the LL protocol: the root LL-puts its whole vector straight into every peer's output; each
// peer LL-waits for it (semaphore 0 pairs the put with the wait).

std::string broadcastLLReason(const CollectiveArgs& a) {
  if (std::string why = rootedReason(a); !why.empty()) return why;
  return llProblem(a, a.count * elemBytes(a));
}

std::shared_ptr<const core::ProgramSource> buildBroadcastLL(const CollectiveArgs& args) {
  return std::make_shared<core::LazyProgram>(
      broadcastHeader(args, "oneshot_ll"), [args](std::int32_t r, RankProgram& out) {
        const std::uint64_t n = args.count * elemBytes(args);
        if (args.nranks == 1) return emitSingleRank(args, out);
        out.addLane();
        if (r != args.root) {
          out.emit(0, Op::waitLL(args.root, localAddr(BufferId::kOutput, 0), n, 0, 1));
          return;
        }
        for (std::int32_t q = 0; q < args.nranks; ++q) {
          if (q != r)
            out.emit(0, Op::putLL(q, remoteAddr(q, BufferId::kOutput, 0), localAddr(BufferId::kInput, 0), n, 0));
        }
        if (!args.inPlace && n > 0)
          out.emit(0, Op::copy(localAddr(BufferId::kOutput, 0), localAddr(BufferId::kInput, 0), n));
      });
}

double estimateBroadcastLL(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(a.count * elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const auto l = intraLinkCost(m);  // compose.hpp's alpha and beta (not this file's LinkCost)
  // One step without a separate signal; the root writes p-1 copies, the flags double the bytes.
  return std::max(kMinEstimateUs, 0.5 * l.alpha + (a.nranks - 1) * n * 2 * l.beta);
}

// ----------------------------------------------------------------------------------------------------------
// Reduce: a pipelined tree towards the root. A child puts chunk c of its partial result into its parent's
// scratch slot (edge k, c % 2) and signals semaphore k there; the parent reduces its input with the slots
// of all children, returns a credit (semaphore `slots` on the child) when the child will reuse that slot,
// and sends the result on from a double-buffered staging area (flushed before reuse). The root reduces
// straight into its output; for avg only that final reduction divides.
//
// Scratch per rank: (2 * slots + 2) * slotBytes, slots = ceil(log2 p) (binomial) or 1 (chain),
// slotBytes = min(chunk, count) elements.

struct ReduceShape {
  int slots;                ///< receive edges (semaphores 0..slots-1 carry data, `slots` carries credits)
  std::uint64_t slotBytes;  ///< bytes of one chunk slot
};

ReduceShape reduceShape(const CollectiveArgs& a, bool chain) {
  const int slots = a.nranks <= 1 ? 0 : (chain ? 1 : treeLevels(a.nranks));
  return {slots, std::min(chunkElems(a), a.count) * elemBytes(a)};
}

ProgramHeader reduceHeader(const CollectiveArgs& a, const char* algo, const ReduceShape& s) {
  const std::uint64_t scratch = s.slots == 0 ? 0 : (2 * static_cast<std::uint64_t>(s.slots) + 2) * s.slotBytes;
  ProgramHeader h = makeHeader(a, algo, s.slots + 1, scratch);
  const std::uint64_t n = a.count * elemBytes(a);
  for (auto& b : h.inputBytes) b = n;
  h.outputBytes[static_cast<std::size_t>(a.root)] = n;
  return h;
}

/// One rank of a reduction tree. `parent` is an absolute rank (-1 for the root) reached over edge
/// `parentEdge`; `children` holds (absolute rank, edge index) pairs.
void emitReduceRank(const CollectiveArgs& a, const ReduceShape& s, std::int32_t parent, int parentEdge,
                    const std::vector<TreeChild>& children, RankProgram& out) {
  const std::uint64_t es = elemBytes(a);
  if (a.nranks == 1) return emitSingleRank(a, out);
  if (a.count == 0) return;
  const std::uint64_t ce = chunkElems(a);
  const std::uint64_t nc = numChunks(a.count, ce);
  const std::int32_t creditSem = s.slots;
  const auto slotOffset = [&](int edge, std::uint64_t c) {
    return (2 * static_cast<std::uint64_t>(edge) + c % 2) * s.slotBytes;
  };
  const auto stagingOffset = [&](std::uint64_t c) {
    return (2 * static_cast<std::uint64_t>(s.slots) + c % 2) * s.slotBytes;
  };
  const bool isRoot = parent < 0;
  // avg: intermediate steps combine like sum (kAvg, divisor 0); only the root's reduction divides.
  const std::uint32_t divisor = a.op == core::ReduceOp::kAvg ? static_cast<std::uint32_t>(a.nranks) : 0;

  for (std::uint64_t c = 0; c < nc; ++c) {
    const std::uint64_t off = c * ce * es;
    const std::uint64_t elems = std::min(ce, a.count - c * ce);
    const std::uint64_t len = elems * es;
    std::vector<Addr> srcs{localAddr(BufferId::kInput, off)};
    for (const TreeChild& ch : children) {
      out.emit(0, Op::wait(ch.k, c + 1));
      srcs.push_back(localAddr(BufferId::kScratch, slotOffset(ch.k, c)));
    }
    Addr sendFrom = localAddr(BufferId::kInput, off);
    if (isRoot) {
      out.emit(0, Op::reduce(localAddr(BufferId::kOutput, off), srcs, elems, a.dtype, a.op, divisor));
    } else if (!children.empty()) {
      // The staging slot was last sent two chunks ago; its put must have read it before we overwrite it.
      if (c >= 2) out.emit(0, Op::flush());
      sendFrom = localAddr(BufferId::kScratch, stagingOffset(c));
      out.emit(0, Op::reduce(sendFrom, srcs, elems, a.dtype, a.op, 0));
    }
    // A child reuses slot c % 2 for chunk c + 2; credit only what it will wait for.
    if (c + 2 < nc) {
      for (const TreeChild& ch : children) out.emit(0, Op::signal(ch.rel, creditSem, 1));
    }
    if (!isRoot) {
      if (c >= 2) out.emit(0, Op::wait(creditSem, c - 1));
      out.emit(0, Op::put(parent, remoteAddr(parent, BufferId::kScratch, slotOffset(parentEdge, c)), sendFrom, len,
                          parentEdge, 1));
    }
  }
}

std::shared_ptr<const core::ProgramSource> buildReduceBinomial(const CollectiveArgs& args) {
  const ReduceShape shape = reduceShape(args, false);
  return std::make_shared<core::LazyProgram>(
      reduceHeader(args, "binomial", shape), [args, shape](std::int32_t r, RankProgram& out) {
        const std::int32_t p = args.nranks;
        const std::int32_t v = relRank(r, args.root, p);
        std::vector<TreeChild> children;
        for (const TreeChild& c : treeChildren(v, p)) children.push_back({absRank(c.rel, args.root, p), c.k});
        const std::int32_t parent = v == 0 ? -1 : absRank(treeParent(v), args.root, p);
        emitReduceRank(args, shape, parent, v == 0 ? 0 : edgeIndex(v), children, out);
      });
}

std::shared_ptr<const core::ProgramSource> buildReduceChain(const CollectiveArgs& args) {
  const ReduceShape shape = reduceShape(args, true);
  return std::make_shared<core::LazyProgram>(reduceHeader(args, "chain", shape),
                                             [args, shape](std::int32_t r, RankProgram& out) {
                                               // Data flows from relative rank p-1 down to the root (relative 0).
                                               const std::int32_t p = args.nranks;
                                               const std::int32_t v = relRank(r, args.root, p);
                                               std::vector<TreeChild> children;
                                               if (v + 1 < p) children.push_back({absRank(v + 1, args.root, p), 0});
                                               const std::int32_t parent = v == 0 ? -1 : absRank(v - 1, args.root, p);
                                               emitReduceRank(args, shape, parent, 0, children, out);
                                             });
}

double estimateReduceBinomial(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(a.count * elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  const double levels = treeLevels(a.nranks);
  const double nc = static_cast<double>(std::max<std::uint64_t>(1, numChunks(a.count, chunkElems(a))));
  // The root receives and reduces ceil(log2 p) contributions of every chunk.
  return std::max(kMinEstimateUs, (nc + levels - 1) * l.alphaUs + levels * n * (l.usPerByte + reduceUsPerByte(m)));
}

double estimateReduceChain(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(a.count * elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  const double nc = static_cast<double>(std::max<std::uint64_t>(1, numChunks(a.count, chunkElems(a))));
  const double chunk = n / nc;
  return std::max(kMinEstimateUs, (a.nranks - 1 + nc - 1) * (l.alphaUs + chunk * (l.usPerByte + reduceUsPerByte(m))));
}

std::string reduceReason(const CollectiveArgs& a) {
  return rootedReason(a);
}

// ----------------------------------------------------------------------------------------------------------
// Gather. In place (root only): the root's input is the block already sitting at output + root*count,
// so the root never reads its Input.

ProgramHeader gatherHeader(const CollectiveArgs& a, const char* algo, std::uint64_t scratch) {
  ProgramHeader h = makeHeader(a, algo, 1, scratch);
  const std::uint64_t n = a.count * elemBytes(a);
  for (auto& b : h.inputBytes) b = n;
  h.outputBytes[static_cast<std::size_t>(a.root)] = n * static_cast<std::uint64_t>(a.nranks);
  return h;
}

void emitRootOwnBlockGather(const CollectiveArgs& a, std::int32_t r, RankProgram& out) {
  const std::uint64_t n = a.count * elemBytes(a);
  if (!a.inPlace && n > 0) {
    out.emit(0, Op::copy(localAddr(BufferId::kOutput, static_cast<std::uint64_t>(r) * n),
                         localAddr(BufferId::kInput, 0), n));
  }
}

std::shared_ptr<const core::ProgramSource> buildGatherDirect(const CollectiveArgs& args) {
  return std::make_shared<core::LazyProgram>(gatherHeader(args, "direct", 0), [args](std::int32_t r, RankProgram& out) {
    const std::uint64_t n = args.count * elemBytes(args);
    if (n == 0) return;
    if (r == args.root) {
      emitRootOwnBlockGather(args, r, out);
      if (args.nranks > 1) out.emit(0, Op::wait(0, static_cast<std::uint64_t>(args.nranks - 1)));
      return;
    }
    out.emit(0, Op::put(args.root, remoteAddr(args.root, BufferId::kOutput, static_cast<std::uint64_t>(r) * n),
                        localAddr(BufferId::kInput, 0), n, 0, 1));
  });
}

/// Puts `blocks` blocks that start at relative rank `firstRel` from `src` into the root's output, where
/// they sit in absolute rank order: two puts when the range wraps past rank p-1. Signals on the last.
void emitPutToRootOutput(const CollectiveArgs& a, std::int32_t firstRel, std::int32_t blocks, Addr src,
                         RankProgram& out) {
  const std::uint64_t n = a.count * elemBytes(a);
  const std::int32_t p = a.nranks;
  const std::int32_t first = absRank(firstRel, a.root, p);
  const std::int32_t head = std::min(blocks, p - first);
  const bool wraps = head < blocks;
  out.emit(0, Op::put(a.root, remoteAddr(a.root, BufferId::kOutput, static_cast<std::uint64_t>(first) * n), src,
                      static_cast<std::uint64_t>(head) * n, wraps ? -1 : 0, 1));
  if (wraps) {
    Addr rest = src;
    rest.offset += static_cast<std::uint64_t>(head) * n;
    out.emit(0, Op::put(a.root, remoteAddr(a.root, BufferId::kOutput, 0), rest,
                        static_cast<std::uint64_t>(blocks - head) * n, 0, 1));
  }
}

std::shared_ptr<const core::ProgramSource> buildGatherBinomial(const CollectiveArgs& args) {
  const std::uint64_t n = args.count * elemBytes(args);
  const std::uint64_t scratch = static_cast<std::uint64_t>(largestChildSubtree(args.nranks)) * n;
  return std::make_shared<core::LazyProgram>(gatherHeader(args, "binomial", scratch), [args, n](std::int32_t r,
                                                                                                RankProgram& out) {
    if (n == 0) return;
    const std::int32_t p = args.nranks;
    const std::int32_t v = relRank(r, args.root, p);
    const std::vector<TreeChild> children = treeChildren(v, p);
    const auto nchildren = static_cast<std::uint64_t>(children.size());
    if (v == 0) {
      emitRootOwnBlockGather(args, r, out);
      if (nchildren > 0) out.emit(0, Op::wait(0, nchildren));
      return;
    }
    // A non-root collects its subtree's blocks in relative order in its scratch, then sends them up.
    const std::int32_t size = subtreeSize(v, p);
    Addr src = localAddr(BufferId::kInput, 0);
    if (size > 1) {
      out.emit(0, Op::copy(localAddr(BufferId::kScratch, 0), src, n));
      out.emit(0, Op::wait(0, nchildren));
      src = localAddr(BufferId::kScratch, 0);
    }
    const std::int32_t parentRel = treeParent(v);
    if (parentRel == 0) {
      emitPutToRootOutput(args, v, size, src, out);
    } else {
      const std::int32_t parent = absRank(parentRel, args.root, p);
      out.emit(0, Op::put(parent, remoteAddr(parent, BufferId::kScratch, static_cast<std::uint64_t>(v - parentRel) * n),
                          src, static_cast<std::uint64_t>(size) * n, 0, 1));
    }
  });
}

/// Gather and scatter, direct: p-1 messages converge on (leave) the root, whose link carries p-1 blocks.
double estimateDirectRooted(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(a.count * elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  return std::max(kMinEstimateUs, (a.nranks - 1) * (l.alphaUs + n * l.usPerByte));
}

/// Gather and scatter, binomial: log2 p steps, the root's link still carries p-1 blocks.
double estimateBinomialRooted(const CollectiveArgs& a, const CostModel& m) {
  const double n = static_cast<double>(a.count * elemBytes(a));
  if (a.nranks <= 1) return std::max(kMinEstimateUs, n * memoryUsPerByte(m));
  const LinkCost l = linkCost(a, m);
  return std::max(kMinEstimateUs, treeLevels(a.nranks) * l.alphaUs + (a.nranks - 1) * n * l.usPerByte);
}

std::string gatherReason(const CollectiveArgs& a) {
  return rootedReason(a);
}

// ----------------------------------------------------------------------------------------------------------
// Scatter. In place (root only): the root's output is the block at input + root*count, so the root writes
// nothing to its Output.

ProgramHeader scatterHeader(const CollectiveArgs& a, const char* algo, std::uint64_t scratch) {
  ProgramHeader h = makeHeader(a, algo, 1, scratch);
  const std::uint64_t n = a.count * elemBytes(a);
  const std::uint64_t all = n * static_cast<std::uint64_t>(a.nranks);
  h.inputBytes[static_cast<std::size_t>(a.root)] = all;
  for (auto& b : h.outputBytes) b = n;
  return h;
}

void emitRootOwnBlockScatter(const CollectiveArgs& a, std::int32_t r, RankProgram& out) {
  const std::uint64_t n = a.count * elemBytes(a);
  if (!a.inPlace && n > 0) {
    out.emit(0, Op::copy(localAddr(BufferId::kOutput, 0),
                         localAddr(BufferId::kInput, static_cast<std::uint64_t>(r) * n), n));
  }
}

std::shared_ptr<const core::ProgramSource> buildScatterDirect(const CollectiveArgs& args) {
  return std::make_shared<core::LazyProgram>(
      scatterHeader(args, "direct", 0), [args](std::int32_t r, RankProgram& out) {
        const std::uint64_t n = args.count * elemBytes(args);
        if (n == 0) return;
        const std::int32_t p = args.nranks;
        if (r != args.root) {
          out.emit(0, Op::wait(0, 1));
          return;
        }
        for (std::int32_t i = 1; i < p; ++i) {
          const std::int32_t q = (r + i) % p;
          out.emit(0, Op::put(q, remoteAddr(q, BufferId::kOutput, 0),
                              localAddr(BufferId::kInput, static_cast<std::uint64_t>(q) * n), n, 0, 1));
        }
        emitRootOwnBlockScatter(args, r, out);
      });
}

std::shared_ptr<const core::ProgramSource> buildScatterBinomial(const CollectiveArgs& args) {
  const std::uint64_t n = args.count * elemBytes(args);
  const std::uint64_t scratch = static_cast<std::uint64_t>(largestChildSubtree(args.nranks)) * n;
  return std::make_shared<core::LazyProgram>(
      scatterHeader(args, "binomial", scratch), [args, n](std::int32_t r, RankProgram& out) {
        if (n == 0) return;
        const std::int32_t p = args.nranks;
        const std::int32_t v = relRank(r, args.root, p);
        // A child with a subtree receives its blocks in relative order into scratch; a leaf straight into
        // its output.
        const auto childDst = [&](std::int32_t childRel) {
          const std::int32_t child = absRank(childRel, args.root, p);
          return remoteAddr(child, subtreeSize(childRel, p) > 1 ? BufferId::kScratch : BufferId::kOutput, 0);
        };
        if (v == 0) {
          for (const TreeChild& c : treeChildren(0, p)) {
            const std::int32_t child = absRank(c.rel, args.root, p);
            const std::int32_t blocks = subtreeSize(c.rel, p);
            const std::int32_t head = std::min(blocks, p - child);
            const bool wraps = head < blocks;
            Addr dst = childDst(c.rel);
            out.emit(0, Op::put(child, dst, localAddr(BufferId::kInput, static_cast<std::uint64_t>(child) * n),
                                static_cast<std::uint64_t>(head) * n, wraps ? -1 : 0, 1));
            if (wraps) {
              dst.offset += static_cast<std::uint64_t>(head) * n;
              out.emit(0, Op::put(child, dst, localAddr(BufferId::kInput, 0),
                                  static_cast<std::uint64_t>(blocks - head) * n, 0, 1));
            }
          }
          emitRootOwnBlockScatter(args, r, out);
          return;
        }
        out.emit(0, Op::wait(0, 1));
        if (subtreeSize(v, p) == 1) return;
        for (const TreeChild& c : treeChildren(v, p)) {
          const std::int32_t child = absRank(c.rel, args.root, p);
          out.emit(0, Op::put(child, childDst(c.rel),
                              localAddr(BufferId::kScratch, static_cast<std::uint64_t>(c.rel - v) * n),
                              static_cast<std::uint64_t>(subtreeSize(c.rel, p)) * n, 0, 1));
        }
        out.emit(0, Op::copy(localAddr(BufferId::kOutput, 0), localAddr(BufferId::kScratch, 0), n));
      });
}

std::string scatterReason(const CollectiveArgs& a) {
  return rootedReason(a);
}

}  // namespace

void addRootedAlgorithms(std::vector<Algorithm>& out) {
  out.push_back({"binomial", CollectiveKind::kBroadcast,
                 "binomial tree from the root, pipelined in chunks; ceil(log2 p) steps per chunk", broadcastReason,
                 estimateBroadcastBinomial, buildBroadcastBinomial});
  out.push_back({"chain", CollectiveKind::kBroadcast,
                 "pipelined chain root -> root+1 -> ...: bandwidth-optimal for large messages", broadcastReason,
                 estimateBroadcastChain, buildBroadcastChain});
  out.push_back({"oneshot_ll", CollectiveKind::kBroadcast,
                 "the root LL-puts its vector straight into every peer's output (data and arrival flags "
                 "together, no separate signal); load/store backends, small messages",
                 broadcastLLReason, estimateBroadcastLL, buildBroadcastLL});
  out.push_back({"binomial", CollectiveKind::kReduce,
                 "binomial tree towards the root, pipelined in chunks through double-buffered scratch", reduceReason,
                 estimateReduceBinomial, buildReduceBinomial});
  out.push_back({"chain", CollectiveKind::kReduce,
                 "pipelined chain reduction ending at the root: bandwidth-optimal for large messages", reduceReason,
                 estimateReduceChain, buildReduceChain});
  out.push_back({"direct", CollectiveKind::kGather, "every rank puts its block into the root's output", gatherReason,
                 estimateDirectRooted, buildGatherDirect});
  out.push_back({"binomial", CollectiveKind::kGather,
                 "binomial tree: subtrees collect their blocks in scratch and forward them; log2 p steps", gatherReason,
                 estimateBinomialRooted, buildGatherBinomial});
  out.push_back({"direct", CollectiveKind::kScatter, "the root puts block r into rank r's output", scatterReason,
                 estimateDirectRooted, buildScatterDirect});
  out.push_back({"binomial", CollectiveKind::kScatter,
                 "binomial tree: the root sends each subtree its blocks, which forward them; log2 p steps",
                 scatterReason, estimateBinomialRooted, buildScatterBinomial});
}

}  // namespace copro::collectives::detail
