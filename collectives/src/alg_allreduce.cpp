/// All-reduce algorithms: ring, rhd (Rabenseifner), tree (double binary tree), oneshot, lsa.
/// docs/algorithms.md explains each with its cost formula.
#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "algorithms_internal.hpp"
#include "compose.hpp"

namespace copro::collectives::detail {

namespace {

using core::Addr;
using core::BufferId;
using core::kSelf;
using core::Op;
using core::RankProgram;

constexpr CollectiveKind kKind = CollectiveKind::kAllReduce;

/// Where a rank's contribution lives: the output itself in place (the executor aliases the two).
Region inputRegion(const CollectiveArgs& args) {
  return args.inPlace ? Region{BufferId::kOutput, 0} : Region{BufferId::kInput, 0};
}

StageContext flatContext(const CollectiveArgs& args, std::int32_t rank) {
  StageContext ctx;
  ctx.identitySize = args.nranks;
  ctx.self = rank;
  ctx.dtype = args.dtype;
  ctx.op = args.op;
  ctx.chunkElems = chunkElemsOf(args);
  return ctx;
}

/// The one-rank call: the output is the input.
core::OpStream copyIfNeeded(std::uint64_t bytes, bool inPlace) {
  if (!inPlace && bytes > 0)
    co_yield Op::copy(Addr{kSelf, BufferId::kOutput, 0}, Addr{kSelf, BufferId::kInput, 0}, bytes);
}
void emitCopyIfNeeded(const CollectiveArgs& args, RankProgram& out) {
  out.addLane();
  copyIfNeeded(args.count * elemBytes(args), args.inPlace).drainInto(out, 0);
}

/// The stream of a flat all-reduce stage over all ranks (one lane per rank). The arguments are shared by
/// every rank's coroutine, so a cursor does not copy the call's vectors.
using SharedArgs = std::shared_ptr<const CollectiveArgs>;
template <typename Stage>
core::OpStream flatAllReduce(SharedArgs args, std::int32_t rank) {
  if (args->nranks == 1) {
    co_yield copyIfNeeded(args->count * elemBytes(*args), args->inPlace);
    co_return;
  }
  typename Stage::Spec spec{args->count, inputRegion(*args), Region{BufferId::kOutput, 0},
                            finalDivisor(args->op, args->nranks)};
  co_yield Stage::stream(flatContext(*args, rank), spec);
}

template <typename Stage>
std::shared_ptr<core::StreamProgram> flatAllReduceProgram(core::ProgramHeader h, const CollectiveArgs& args) {
  auto shared = std::make_shared<const CollectiveArgs>(args);
  return std::make_shared<core::StreamProgram>(
      std::move(h), 1, [shared](std::int32_t rank, int) { return flatAllReduce<Stage>(shared, rank); });
}

double bytesOf(const CollectiveArgs& args) {
  return static_cast<double>(args.count * elemBytes(args));
}

/// A positive cost for the one-rank call: a local copy.
double singleRankUs(const CollectiveArgs& args, const CostModel& cm) {
  return 0.01 + (args.inPlace ? 0.0 : bytesOf(args) * copyUsPerByte(cm));
}

// ---- ring ------------------------------------------------------------------------------------------

double ringEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const double p = args.nranks;
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double n = bytesOf(args);
  const double chunk = static_cast<double>(chunkElemsOf(args) * elemBytes(args));
  const double rounds = std::max(1.0, std::ceil(n / p / chunk));
  // 2(p-1) latencies for one chunk to go around twice, plus one per further pipelined chunk round.
  return (2 * (p - 1) + rounds - 1) * l.alpha + 2 * (p - 1) / p * n * l.beta + (p - 1) / p * n * gammaUsPerByte(cm);
}

std::shared_ptr<const core::ProgramSource> ringBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "ring");
  h.numSemaphores = RingAllReduce::kSemaphores;
  h.scratchBytes = RingAllReduce::scratchBytes(args.count, args.nranks, chunkElemsOf(args), elemBytes(args));
  auto program = flatAllReduceProgram<RingAllReduce>(std::move(h), args);
  // Equal blocks: rank r + m runs rank r's ring steps on the blocks m further on, so every rank's ops are
  // rank 0's with the ranks shifted (RingReduceScatter, RingAllGather); unequal blocks break it.
  if (args.nranks > 1 && args.count % static_cast<std::uint64_t>(args.nranks) == 0) program->declareRotationPeriod(1);
  return program;
}

// ---- rhd -------------------------------------------------------------------------------------------

double rhdEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double n = bytesOf(args);
  const double g = gammaUsPerByte(cm);
  const double pp = floorPow2(args.nranks);
  const double steps = log2Floor(static_cast<std::uint64_t>(pp));
  double t = 2 * steps * l.alpha + 2 * (pp - 1) / pp * n * l.beta + (pp - 1) / pp * n * g;
  if (pp != args.nranks) t += 2 * l.alpha + 2 * n * l.beta + n * g;  // fold in, unfold out
  return t;
}

std::shared_ptr<const core::ProgramSource> rhdBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "rhd");
  h.numSemaphores = RhdAllReduce::numSemaphores(args.nranks);
  h.scratchBytes = RhdAllReduce::scratchBytes(args.count, args.nranks, elemBytes(args));
  return flatAllReduceProgram<RhdAllReduce>(std::move(h), args);
}

// ---- tree: double binary tree ----------------------------------------------------------------------

/// One binary tree over p ranks, in-order over positions x = 1..p: node x at height ctz(x) has children
/// x - 2^(h-1) and the largest-height node in (x, min(p, x + 2^h)); the root is the largest power of two
/// <= p. Every odd x is a leaf. Tree 1 renumbers positions (mirror for even p, shift by one for odd p)
/// so that the leaves of one tree are the inner nodes of the other, as in NCCL's double binary tree.
struct TreeNode {
  std::int32_t parent = -1;                   ///< rank, -1 at the root
  std::array<std::int32_t, 2> child{-1, -1};  ///< ranks, -1 when absent
  int childIndex = 0;                         ///< which child of its parent this rank is (0 left, 1 right)
};

std::int32_t treeRankOf(std::int32_t x, int tree, std::int32_t p) {
  const std::int32_t pos = x - 1;
  if (tree == 0) return pos;
  return p % 2 == 0 ? p - 1 - pos : (pos + 1) % p;
}

std::int32_t treeXOf(std::int32_t rank, int tree, std::int32_t p) {
  if (tree == 0) return rank + 1;
  const std::int32_t pos = p % 2 == 0 ? p - 1 - rank : (rank - 1 + p) % p;
  return pos + 1;
}

TreeNode treeNode(std::int32_t rank, int tree, std::int32_t p) {
  TreeNode n;
  const std::int32_t x = treeXOf(rank, tree, p);
  const int h = __builtin_ctz(static_cast<unsigned>(x));
  if (h > 0) {
    n.child[0] = treeRankOf(x - (1 << (h - 1)), tree, p);
    for (std::int32_t step = 1 << (h - 1); step >= 1; step /= 2) {
      if (x + step <= p) {
        n.child[1] = treeRankOf(x + step, tree, p);
        break;
      }
    }
  }
  if (x != floorPow2(p)) {
    // Climb through virtual nodes (> p) until a real ancestor.
    std::int64_t y = x;
    for (int guard = 0; guard < 64; ++guard) {
      const int hy = __builtin_ctzll(static_cast<unsigned long long>(y));
      const std::int64_t bit = std::int64_t{1} << hy;
      const std::int64_t up = (y & (bit << 1)) != 0 ? y - bit : y + bit;
      if (up <= p) {
        n.parent = treeRankOf(static_cast<std::int32_t>(up), tree, p);
        n.childIndex = x < up ? 0 : 1;
        break;
      }
      y = up;
    }
  }
  return n;
}

int treeDepth(std::int32_t p) {
  return log2Floor(static_cast<std::uint64_t>(floorPow2(p))) + 1;
}

double treeEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double n = bytesOf(args);
  const double chunk = static_cast<double>(chunkElemsOf(args) * elemBytes(args));
  const double c = std::min(chunk, std::max(n / 2, 1.0));
  const double rounds = std::max(1.0, std::ceil(n / 2 / chunk));
  const double depth = treeDepth(args.nranks);
  // Reduce up then broadcast down, each a pipeline of `rounds` chunks through `depth` levels; per phase a
  // rank moves about n bytes in total over both trees (its half as an inner node of one tree, sent to two
  // children or received from them, plus its half as a leaf of the other).
  return 2 * (depth + rounds - 1) * l.alpha + 2 * n * l.beta + 2 * depth * c * l.beta + n * gammaUsPerByte(cm);
}

constexpr int kTreeSems = 4;  // per tree: up from child 0, up from child 1, credit from parent, down

std::shared_ptr<const core::ProgramSource> treeBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "tree");
  const std::uint64_t es = elemBytes(args);
  const std::uint64_t ch = chunkElemsOf(args);
  const std::uint64_t half0 = (args.count + 1) / 2;
  const std::uint64_t slotBytes = std::min(ch, half0) * es;
  h.numSemaphores = args.nranks > 1 ? 2 * kTreeSems : 0;
  h.scratchBytes = args.nranks > 1 ? 8 * slotBytes : 0;  // 2 trees x 2 children x 2 slots
  return std::make_shared<core::LazyProgram>(
      std::move(h), [args, ch, es, half0, slotBytes](std::int32_t rank, RankProgram& out) {
        if (args.nranks == 1) return emitCopyIfNeeded(args, out);
        const std::int32_t p = args.nranks;
        const BufferId inBuf = args.inPlace ? BufferId::kOutput : BufferId::kInput;
        const std::uint32_t divisor = finalDivisor(args.op, p);
        for (int t = 0; t < 2; ++t) {
          const int lane = out.addLane();
          const std::uint64_t start = t == 0 ? 0 : half0;
          const std::uint64_t len = t == 0 ? half0 : args.count - half0;
          const std::uint64_t nch = ceilDiv(len, ch);
          if (nch == 0) continue;
          const TreeNode node = treeNode(rank, t, p);
          const std::int32_t upSem0 = t * kTreeSems;
          const std::int32_t creditSem = t * kTreeSems + 2;
          const std::int32_t downSem = t * kTreeSems + 3;
          const auto slot = [&](int child, std::uint64_t c) {
            return (static_cast<std::uint64_t>(t * 2 + child) * 2 + c % 2) * slotBytes;
          };
          const bool hasChildren = node.child[0] >= 0 || node.child[1] >= 0;
          // Reduce up: a chunk leaves for the parent as soon as both children's parts are in.
          for (std::uint64_t c = 0; c < nch; ++c) {
            const std::uint64_t off = (start + c * ch) * es;
            const std::uint64_t n = std::min(ch, len - c * ch);
            if (hasChildren) {
              std::vector<Addr> srcs{Addr{kSelf, inBuf, off}};
              for (int j = 0; j < 2; ++j) {
                if (node.child[j] < 0) continue;
                out.emit(lane, Op::wait(upSem0 + j, c + 1));
                srcs.push_back(Addr{kSelf, BufferId::kScratch, slot(j, c)});
              }
              // The output holds the partial sum until the final value comes down the tree.
              out.emit(lane, Op::reduce(Addr{kSelf, BufferId::kOutput, off}, std::move(srcs), n, args.dtype, args.op,
                                        node.parent < 0 ? divisor : 0));
              for (int j = 0; j < 2; ++j) {
                if (node.child[j] >= 0 && c + 2 < nch) out.emit(lane, Op::signal(node.child[j], creditSem, 1));
              }
            }
            if (node.parent >= 0) {
              if (c >= 2) out.emit(lane, Op::wait(creditSem, c - 1));
              const Addr src{kSelf, hasChildren ? BufferId::kOutput : inBuf, off};
              out.emit(lane, Op::put(node.parent, Addr{node.parent, BufferId::kScratch, slot(node.childIndex, c)}, src,
                                     n * es, upSem0 + node.childIndex));
            }
          }
          // Broadcast down, straight into the children's outputs.
          for (std::uint64_t c = 0; c < nch; ++c) {
            const std::uint64_t off = (start + c * ch) * es;
            const std::uint64_t n = std::min(ch, len - c * ch);
            if (node.parent >= 0) out.emit(lane, Op::wait(downSem, c + 1));
            for (int j = 0; j < 2; ++j) {
              if (node.child[j] < 0) continue;
              out.emit(lane, Op::put(node.child[j], Addr{node.child[j], BufferId::kOutput, off},
                                     Addr{kSelf, BufferId::kOutput, off}, n * es, downSem));
            }
          }
        }
      });
}

// ---- oneshot ---------------------------------------------------------------------------------------

double oneshotEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double n = bytesOf(args);
  const double p = args.nranks;
  return l.alpha + (p - 1) * n * l.beta + (p - 1) * n * gammaUsPerByte(cm);
}

/// The tail of oneshot and oneshot_ll: every peer's vector is in scratch slot q; reduce them with ours.
void emitOneshotReduce(const CollectiveArgs& args, std::int32_t rank, std::uint64_t bytes, RankProgram& out) {
  const std::int32_t p = args.nranks;
  const std::uint64_t es = elemBytes(args);
  const BufferId inBuf = args.inPlace ? BufferId::kOutput : BufferId::kInput;
  // In place the reduction overwrites the input our puts read: make sure they have.
  if (args.inPlace) out.emit(0, Op::flush());
  // Every rank reduces the same sources in the same (rank) order, so all results agree bit for bit.
  const std::uint64_t ch = chunkElemsOf(args);
  for (std::uint64_t e = 0; e < args.count; e += ch) {
    const std::uint64_t n = std::min(ch, args.count - e);
    std::vector<Addr> srcs;
    srcs.reserve(static_cast<std::size_t>(p));
    for (std::int32_t q = 0; q < p; ++q) {
      srcs.push_back(q == rank ? Addr{kSelf, inBuf, e * es}
                               : Addr{kSelf, BufferId::kScratch, static_cast<std::uint64_t>(q) * bytes + e * es});
    }
    out.emit(0, Op::reduce(Addr{kSelf, BufferId::kOutput, e * es}, std::move(srcs), n, args.dtype, args.op,
                           finalDivisor(args.op, p)));
  }
}

std::shared_ptr<const core::ProgramSource> oneshotBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "oneshot");
  const std::uint64_t bytes = args.count * elemBytes(args);
  h.numSemaphores = args.nranks > 1 ? 1 : 0;
  h.scratchBytes = args.nranks > 1 ? bytes * static_cast<std::uint64_t>(args.nranks) : 0;
  return std::make_shared<core::LazyProgram>(std::move(h), [args, bytes](std::int32_t rank, RankProgram& out) {
    if (args.nranks == 1) return emitCopyIfNeeded(args, out);
    out.addLane();
    if (bytes == 0) return;
    const std::int32_t p = args.nranks;
    const BufferId inBuf = args.inPlace ? BufferId::kOutput : BufferId::kInput;
    for (std::int32_t q = 0; q < p; ++q) {
      if (q == rank) continue;
      out.emit(0, Op::put(q, Addr{q, BufferId::kScratch, static_cast<std::uint64_t>(rank) * bytes},
                          Addr{kSelf, inBuf, 0}, bytes, 0));
    }
    out.emit(0, Op::wait(0, static_cast<std::uint64_t>(p - 1)));
    emitOneshotReduce(args, rank, bytes, out);
  });
}

// ---- lsa: load/store domain ------------------------------------------------------------------------

std::string lsaProblem(const CollectiveArgs& args) {
  if (std::string why = basicProblem(args); !why.empty()) return why;
  if (args.loadStoreDomains.empty()) return {};
  for (const auto& group : args.loadStoreDomains) {
    std::set<std::int32_t> members(group.begin(), group.end());
    bool all = true;
    for (std::int32_t r = 0; r < args.nranks && all; ++r) all = members.count(r) > 0;
    if (all) return {};
  }
  return "needs every rank in one load/store domain (the ranks span " + std::to_string(args.loadStoreDomains.size()) +
         " domains)";
}

double lsaEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = intraLinkCost(cm);
  const double n = bytesOf(args);
  const double p = args.nranks;
  // Every input byte is read once and every output byte written once, through memory the domain shares.
  return 2 * l.alpha + 2 * p * n / (cm.memoryGBps * 1e3) + (p - 1) / p * n * gammaUsPerByte(cm);
}

// ---- oneshot_ll: oneshot over the LL protocol ---------------------------------------------------

std::string oneshotLLProblem(const CollectiveArgs& args) {
  if (std::string why = lsaProblem(args); !why.empty()) return why;
  const std::uint64_t bytes = bytesOf(args);
  if (args.nranks > 1 && bytes > args.llMaxBytes) {
    return "sends " + std::to_string(bytes) + " bytes per peer with the LL protocol, above the limit of " +
           std::to_string(args.llMaxBytes) +
           " (COPRO_LL_MAX_BYTES, capped by the backend's mailboxes; 0: the backend has none)";
  }
  return {};
}

double oneshotLLEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = intraLinkCost(cm);
  const double n = bytesOf(args);
  const double p = args.nranks;
  // No separate signal (half the step latency), but the flags halve the effective bandwidth.
  return 0.5 * l.alpha + (p - 1) * n * 2 * l.beta + (p - 1) * n * gammaUsPerByte(cm);
}

std::shared_ptr<const core::ProgramSource> oneshotLLBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "oneshot_ll");
  const std::uint64_t bytes = args.count * elemBytes(args);
  // Semaphore q pairs rank q's LL put with our LL wait for it (one pair per semaphore).
  h.numSemaphores = args.nranks > 1 ? args.nranks : 0;
  h.scratchBytes = args.nranks > 1 ? bytes * static_cast<std::uint64_t>(args.nranks) : 0;
  return std::make_shared<core::LazyProgram>(std::move(h), [args, bytes](std::int32_t rank, RankProgram& out) {
    if (args.nranks == 1) return emitCopyIfNeeded(args, out);
    out.addLane();
    const std::int32_t p = args.nranks;
    const BufferId inBuf = args.inPlace ? BufferId::kOutput : BufferId::kInput;
    const auto at = [bytes](std::int32_t q) { return static_cast<std::uint64_t>(q) * bytes; };
    for (std::int32_t q = 0; q < p; ++q) {
      if (q != rank)
        out.emit(0, Op::putLL(q, Addr{q, BufferId::kScratch, at(rank)}, Addr{kSelf, inBuf, 0}, bytes, rank));
    }
    for (std::int32_t q = 0; q < p; ++q) {
      if (q != rank) out.emit(0, Op::waitLL(q, Addr{kSelf, BufferId::kScratch, at(q)}, bytes, q, 1));
    }
    emitOneshotReduce(args, rank, bytes, out);
  });
}

/// The reduce + multicast Program of `lsa`, `nvls` and `sharp` under the algorithm's name. `anyDomain`: the
/// fabric's switches reduce for every rank, so the reduce may read ranks of other load/store domains (the
/// header then declares one domain).
std::shared_ptr<const core::ProgramSource> reduceMulticastBuild(const CollectiveArgs& args, const char* name,
                                                                bool anyDomain) {
  core::ProgramHeader h = baseHeader(args, name);
  if (anyDomain) h.loadStoreDomains.clear();
  h.numSemaphores = args.nranks > 1 ? 1 : 0;
  h.scratchBytes = 0;
  return std::make_shared<core::LazyProgram>(std::move(h), [args](std::int32_t rank, RankProgram& out) {
    if (args.nranks == 1) return emitCopyIfNeeded(args, out);
    out.addLane();
    const std::int32_t p = args.nranks;
    const auto up = static_cast<std::uint64_t>(p);
    const std::uint64_t es = elemBytes(args);
    const std::uint64_t ch = chunkElemsOf(args);
    std::vector<std::int32_t> others;
    for (std::int32_t q = 0; q < p; ++q) {
      if (q != rank) others.push_back(q);
    }
    // Rank r owns block r: it reads block r of every input directly and writes the result into block r
    // of every output. Reduce + multicast of one chunk is the pattern the executor fuses.
    const std::uint64_t lo = partOffset(args.count, up, static_cast<std::uint64_t>(rank));
    const std::uint64_t hi = partOffset(args.count, up, static_cast<std::uint64_t>(rank) + 1);
    for (std::uint64_t e = lo; e < hi; e += ch) {
      const std::uint64_t n = std::min(ch, hi - e);
      std::vector<Addr> srcs;
      srcs.reserve(static_cast<std::size_t>(p));
      for (std::int32_t q = 0; q < p; ++q) srcs.push_back(Addr{q, BufferId::kInput, e * es});
      const Addr mine{kSelf, BufferId::kOutput, e * es};
      out.emit(0, Op::reduce(mine, std::move(srcs), n, args.dtype, args.op, finalDivisor(args.op, p)));
      out.emit(0, Op::multicast(others, mine, mine, n * es, 0, 1));
    }
    // Each multicast signals its targets after its data; waiting for all of them means (a) our output is
    // complete and (b) every peer has finished reading our input (each reads it before its multicast).
    std::uint64_t incoming = 0;
    for (std::int32_t q = 0; q < p; ++q) {
      if (q != rank) incoming += ceilDiv(partSize(args.count, up, static_cast<std::uint64_t>(q)), ch);
    }
    if (incoming > 0) out.emit(0, Op::wait(0, incoming));
  });
}

std::shared_ptr<const core::ProgramSource> lsaBuild(const CollectiveArgs& args) {
  return reduceMulticastBuild(args, "lsa", false);
}

// ---- nvls / sharp: the switches reduce and multicast ------------------------------------------------

/// Bandwidth term of an in-switch all-reduce (docs/simulator.md, "In-switch reduction and multicast"):
/// each rank sends S (its share of every block's reduction, its own included) plus S/p (its block's
/// multicast), so the busiest direction of its link carries S (1 + 1/p).
double inSwitchEstimate(const CollectiveArgs& args, const LinkCost& l) {
  const double n = bytesOf(args);
  const double p = args.nranks;
  return 2 * l.alpha + n * (1 + 1 / p) * l.beta;
}

std::string nvlsProblem(const CollectiveArgs& args) {
  return lsaProblem(args);
}

double nvlsEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (!args.inNetworkReduction || args.nranks <= 1) return lsaEstimate(args, cm);
  return inSwitchEstimate(args, intraLinkCost(cm));
}

std::shared_ptr<const core::ProgramSource> nvlsBuild(const CollectiveArgs& args) {
  return reduceMulticastBuild(args, "nvls", false);
}

std::string sharpProblem(const CollectiveArgs& args) {
  if (args.inNetworkReduction) return basicProblem(args);
  if (std::string why = lsaProblem(args); !why.empty()) {
    return why +
           "; without switches that reduce in the network (a simulated fabric with sharp: true or "
           "in_switch_reduce) sharp is its software equivalent, which needs one load/store domain";
  }
  return {};
}

double sharpEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (!args.inNetworkReduction || args.nranks <= 1) return lsaEstimate(args, cm);
  return inSwitchEstimate(args, flatLinkCost(args, cm));
}

std::shared_ptr<const core::ProgramSource> sharpBuild(const CollectiveArgs& args) {
  return reduceMulticastBuild(args, "sharp", args.inNetworkReduction);
}

}  // namespace

void addAllReduceAlgorithms(std::vector<Algorithm>& out) {
  out.push_back(Algorithm{"ring", kKind,
                          "ring reduce-scatter then ring all-gather, chunked and pipelined; bandwidth-optimal",
                          basicProblem, ringEstimate, ringBuild});
  out.push_back(Algorithm{"rhd", kKind,
                          "Rabenseifner: recursive-halving reduce-scatter + recursive-doubling all-gather; "
                          "log-latency and bandwidth-optimal; non-powers of two fold extra ranks",
                          basicProblem, rhdEstimate, rhdBuild});
  out.push_back(Algorithm{"tree", kKind,
                          "double binary tree (NCCL style): two complementary trees carry half the data each, "
                          "pipelined reduce up then broadcast down",
                          basicProblem, treeEstimate, treeBuild});
  out.push_back(Algorithm{"oneshot", kKind,
                          "every rank sends its whole input to every peer and reduces locally; one step of "
                          "latency, for small messages",
                          basicProblem, oneshotEstimate, oneshotBuild});
  out.push_back(Algorithm{"oneshot_ll", kKind,
                          "oneshot over the LL protocol: each rank's vector and its arrival flags travel together "
                          "through per-peer mailboxes, no separate signal; load/store backends, small messages",
                          oneshotLLProblem, oneshotLLEstimate, oneshotLLBuild});
  out.push_back(Algorithm{"lsa", kKind,
                          "load/store domain: rank r reduces block r reading every input directly and writes it "
                          "to every output (reduce + multicast); memory-traffic bound",
                          lsaProblem, lsaEstimate, lsaBuild});
  out.push_back(Algorithm{"nvls", kKind,
                          "NVLink SHARP: the NVSwitch reduces block r of every input for rank r and multicasts "
                          "the result; the lsa Program, reduced and replicated in the switch when the simulated "
                          "NVSwitch has in_switch_reduce and multicast, in software elsewhere",
                          nvlsProblem, nvlsEstimate, nvlsBuild});
  out.push_back(Algorithm{"sharp", kKind,
                          "SHARP-style: the network switches reduce block r of every input on its way to rank r "
                          "and replicate its multicast; simulated fabrics with sharp: true, one load/store "
                          "domain (software) elsewhere",
                          sharpProblem, sharpEstimate, sharpBuild});
}

}  // namespace copro::collectives::detail
