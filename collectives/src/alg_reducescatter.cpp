/// Reduce-scatter algorithms: reducescatter "ring" and "rhalving", reducescatterv "ring".
/// docs/algorithms.md explains each with its cost formula.
#include <algorithm>
#include <cmath>

#include "algorithms_internal.hpp"
#include "compose.hpp"

namespace copro::collectives::detail {

namespace {

using core::Addr;
using core::BufferId;
using core::kSelf;
using core::Op;
using core::RankProgram;

std::string vProblem(const CollectiveArgs& args) {
  return vCountsProblem(args, "receive");
}

/// In place (NCCL's convention, which the communicator follows) the output is the rank's own block of
/// the input: output == input + offset of block r. The Programs read that block through the output, so the
/// shared bytes have one name and the validator and the interpreter see the aliasing.
void setOwnBlockAlias(const CollectiveArgs& args, std::uint64_t ownOffset, std::uint64_t ownCount,
                      RingReduceScatter::Spec& spec) {
  if (!args.inPlace) return;
  spec.hasSrcAlias = true;
  spec.srcAlias = Segment{ownOffset, ownCount};
  spec.srcAliasRegion = Region{BufferId::kOutput, 0};
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

double singleRankUs(double bytes, bool inPlace, const CostModel& cm) {
  return 0.01 + (inPlace ? 0.0 : bytes * copyUsPerByte(cm));
}

// ---- reducescatter ring ----------------------------------------------------------------------------

double ringEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const double p = args.nranks;
  const double block = static_cast<double>(args.count * elemBytes(args));
  if (args.nranks <= 1) return singleRankUs(block, args.inPlace, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double n = block * p;  // the whole input
  const double chunk = static_cast<double>(chunkElemsOf(args) * elemBytes(args));
  const double rounds = std::max(1.0, std::ceil(block / chunk));
  return (p - 1 + rounds - 1) * l.alpha + (p - 1) / p * n * (l.beta + gammaUsPerByte(cm));
}

/// The ring of reducescatter and reducescatterv: block b of the input reduces into rank b's output.
RingReduceScatter::Spec ringSpec(const CollectiveArgs& args, BlockList blocks) {
  RingReduceScatter::Spec spec;
  spec.blocks = std::move(blocks);
  spec.src = Region{BufferId::kInput, 0};
  spec.partialsInRegion = false;  // the output holds one block only: partial sums go to scratch slots
  spec.result = Region{BufferId::kOutput, 0};
  spec.resultCompact = true;
  spec.divisor = finalDivisor(args.op, args.nranks);
  return spec;
}

/// One rank's ring. The arguments and the block list are shared by every rank's coroutine.
core::OpStream ringStream(std::shared_ptr<const CollectiveArgs> args, BlockList blocks, std::int32_t rank) {
  const Segment own = blocks.segment(static_cast<std::size_t>(rank), 0);
  RingReduceScatter::Spec spec = ringSpec(*args, std::move(blocks));
  setOwnBlockAlias(*args, own.offset, own.count, spec);
  RingReduceScatter rs(flatContext(*args, rank), std::move(spec));
  co_yield rs.all();
}

std::shared_ptr<const core::ProgramSource> ringProgram(const CollectiveArgs& args, BlockList blocks) {
  core::ProgramHeader h = baseHeader(args, "ring");
  h.numSemaphores = args.nranks > 1 ? RingReduceScatter::kSemaphores : 0;
  h.scratchBytes = RingReduceScatter::scratchBytes(ringSpec(args, blocks), chunkElemsOf(args), elemBytes(args));
  auto shared = std::make_shared<const CollectiveArgs>(args);
  return std::make_shared<core::StreamProgram>(
      std::move(h), 1, [shared, blocks](std::int32_t rank, int) { return ringStream(shared, blocks, rank); });
}

std::shared_ptr<const core::ProgramSource> ringBuild(const CollectiveArgs& args) {
  return ringProgram(args, BlockList::strided(args.count, static_cast<std::uint64_t>(args.nranks)));
}

// ---- reducescatter rhalving ------------------------------------------------------------------------

/// Recursive halving over the largest power of two pp <= p "new ranks". The p - pp extra ranks fold
/// first: rank 2i sends its whole input to rank 2i + 1, which then acts as new rank i owning blocks 2i and
/// 2i + 1 and at the end returns block 2i. New rank i owns blocks [firstBlock(i), firstBlock(i + 1)).
struct HalvingPlan {
  std::int32_t p = 1, pp = 1, extra = 0;
  int steps = 0;
  std::uint64_t count = 0;  ///< elements per block
  std::uint64_t es = 1;
  std::uint64_t foldBytes = 0;
  std::vector<std::uint64_t> stepOffset;
  std::uint64_t scratch = 0;

  explicit HalvingPlan(const CollectiveArgs& args) : p(args.nranks), count(args.count), es(elemBytes(args)) {
    if (p <= 1) return;
    pp = floorPow2(p);
    extra = p - pp;
    steps = log2Floor(static_cast<std::uint64_t>(pp));
    foldBytes = extra > 0 ? static_cast<std::uint64_t>(p) * count * es : 0;
    std::uint64_t off = foldBytes;
    for (int k = 0; k < steps; ++k) {
      stepOffset.push_back(off);
      // The kept range of step k spans pp >> (k + 1) new ranks of at most two blocks each.
      const auto blocks =
          std::min<std::uint64_t>(static_cast<std::uint64_t>(p), 2ULL * static_cast<std::uint64_t>(pp >> (k + 1)));
      off += blocks * count * es;
    }
    scratch = off;
  }
  [[nodiscard]] std::int32_t firstBlock(std::int32_t nr) const { return nr <= extra ? 2 * nr : nr + extra; }
  [[nodiscard]] std::int32_t rankOf(std::int32_t nr) const { return nr < extra ? 2 * nr + 1 : nr + extra; }
  [[nodiscard]] std::uint64_t elemOf(std::int32_t nr) const {
    return static_cast<std::uint64_t>(firstBlock(nr)) * count;
  }
};

double rhalvingEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const double block = static_cast<double>(args.count * elemBytes(args));
  if (args.nranks <= 1) return singleRankUs(block, args.inPlace, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double g = gammaUsPerByte(cm);
  const double p = args.nranks;
  const double n = block * p;
  const double pp = floorPow2(args.nranks);
  double t = log2Floor(static_cast<std::uint64_t>(pp)) * l.alpha + (pp - 1) / pp * n * (l.beta + g);
  if (pp != p) t += 2 * l.alpha + n * (l.beta + g) + block * l.beta;  // fold the input in, return one block
  return t;
}

std::shared_ptr<const core::ProgramSource> rhalvingBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "rhalving");
  const HalvingPlan plan(args);
  h.numSemaphores = args.nranks > 1 ? plan.steps + 2 : 0;  // fold, one per step, unfold
  h.scratchBytes = plan.scratch;
  return std::make_shared<core::LazyProgram>(std::move(h), [args, plan](std::int32_t rank, RankProgram& out) {
    out.addLane();
    const std::uint64_t es = plan.es;
    const std::uint64_t blockBytes = plan.count * es;
    const std::uint32_t divisor = finalDivisor(args.op, args.nranks);
    if (args.nranks == 1) {
      if (!args.inPlace && blockBytes > 0) {
        out.emit(0, Op::copy(Addr{kSelf, BufferId::kOutput, 0}, Addr{kSelf, BufferId::kInput, 0}, blockBytes));
      }
      return;
    }
    const std::uint64_t ch = chunkElemsOf(args);
    const std::int32_t foldSem = 0;
    const std::int32_t unfoldSem = plan.steps + 1;
    const std::uint64_t total = static_cast<std::uint64_t>(plan.p) * plan.count;
    const std::uint64_t ownLo = static_cast<std::uint64_t>(rank) * plan.count;
    const std::uint64_t ownHi = ownLo + plan.count;
    using Range = std::pair<std::uint64_t, std::uint64_t>;

    // `cur` holds this rank's running sums: the input at first (in place its own block is read through
    // the output, see setOwnBlockAlias), later a scratch region starting at element curFirst.
    bool curIsInput = true;
    std::uint64_t curBase = 0;
    std::uint64_t curFirst = 0;
    const auto curAt = [&](std::uint64_t e) {
      if (!curIsInput) return Addr{kSelf, BufferId::kScratch, curBase + (e - curFirst) * es};
      if (args.inPlace && e >= ownLo && e < ownHi) return Addr{kSelf, BufferId::kOutput, (e - ownLo) * es};
      return Addr{kSelf, BufferId::kInput, e * es};
    };
    // [lo, hi) split where curAt switches buffers, so that every op names one contiguous region.
    const auto split = [&](std::uint64_t lo, std::uint64_t hi) {
      std::vector<Range> v;
      std::uint64_t from = lo;
      if (curIsInput && args.inPlace) {
        for (std::uint64_t cut : {ownLo, ownHi}) {
          if (cut > from && cut < hi) {
            v.emplace_back(from, cut);
            from = cut;
          }
        }
      }
      v.emplace_back(from, hi);
      return v;
    };
    // Puts cur's elements [lo, hi) to `peer`'s scratch at dstBase, one signal on `sem` per chunk.
    const auto putCur = [&](std::int32_t peer, std::uint64_t dstBase, std::uint64_t lo, std::uint64_t hi,
                            std::int32_t sem) {
      for (std::uint64_t e = lo; e < hi; e += ch) {
        const std::vector<Range> parts = split(e, std::min(hi, e + ch));
        for (std::size_t i = 0; i < parts.size(); ++i) {
          const auto [a, b] = parts[i];
          out.emit(0, Op::put(peer, Addr{peer, BufferId::kScratch, dstBase + (a - lo) * es}, curAt(a), (b - a) * es,
                              i + 1 == parts.size() ? sem : -1));
        }
      }
    };

    if (rank < 2 * plan.extra && rank % 2 == 0) {
      putCur(rank + 1, 0, 0, total, foldSem);
      const std::uint64_t n = ceilDiv(plan.count, ch);
      if (n > 0) out.emit(0, Op::wait(unfoldSem, n));
      return;
    }
    std::int32_t nr = 0;
    const bool folded = rank < 2 * plan.extra;
    if (folded) {
      nr = rank / 2;
      for (std::uint64_t e = 0, i = 0; e < total; e += ch, ++i) {
        out.emit(0, Op::wait(foldSem, i + 1));
        for (const auto& [a, b] : split(e, std::min(total, e + ch))) {
          const Addr acc{kSelf, BufferId::kScratch, a * es};
          out.emit(0, Op::reduce(acc, {acc, curAt(a)}, b - a, args.dtype, args.op));
        }
      }
      curIsInput = false;
    } else {
      nr = rank - plan.extra;
    }

    std::int32_t lo = 0;
    std::int32_t span = plan.pp;
    for (int k = 0; k < plan.steps; ++k) {
      const std::int32_t half = span / 2;
      const std::int32_t partnerNr = nr ^ half;
      const std::int32_t partner = plan.rankOf(partnerNr);
      const bool upper = (nr & half) != 0;
      const std::int32_t keepLo = upper ? lo + half : lo;
      const std::int32_t sendLo = upper ? lo : lo + half;
      const std::uint64_t keepStart = plan.elemOf(keepLo);
      const std::uint64_t keepEnd = plan.elemOf(keepLo + half);
      const std::uint64_t stepBase = plan.stepOffset[static_cast<std::size_t>(k)];
      putCur(partner, stepBase, plan.elemOf(sendLo), plan.elemOf(sendLo + half), 1 + k);
      const bool last = k + 1 == plan.steps;
      const auto recvAt = [&](std::uint64_t elem) {
        return Addr{kSelf, BufferId::kScratch, stepBase + (elem - keepStart) * es};
      };
      std::uint64_t i = 0;
      for (std::uint64_t e = keepStart; e < keepEnd; e += ch, ++i) {
        out.emit(0, Op::wait(1 + k, i + 1));
        for (const auto& [a, b] : split(e, std::min(keepEnd, e + ch))) {
          if (!last) {
            out.emit(0, Op::reduce(recvAt(a), {recvAt(a), curAt(a)}, b - a, args.dtype, args.op));
            continue;
          }
          // Final step: the kept range is this rank's block (and, folded, the partner's block before it,
          // finished in scratch and sent below).
          if (a < ownLo) {
            const std::uint64_t m = std::min(b, ownLo);
            out.emit(0, Op::reduce(recvAt(a), {recvAt(a), curAt(a)}, m - a, args.dtype, args.op, divisor));
          }
          const std::uint64_t from = std::max(a, ownLo);
          if (from < b) {
            out.emit(0, Op::reduce(Addr{kSelf, BufferId::kOutput, (from - ownLo) * es}, {recvAt(from), curAt(from)},
                                   b - from, args.dtype, args.op, divisor));
          }
        }
      }
      curIsInput = false;
      curBase = stepBase;
      curFirst = keepStart;
      lo = keepLo;
      span = half;
    }
    if (folded) {
      const std::int32_t partner = rank - 1;
      emitChunkedPut(out, 0, partner, Addr{partner, BufferId::kOutput, 0},
                     curAt(static_cast<std::uint64_t>(partner) * plan.count), blockBytes, ch * es, unfoldSem);
    }
  });
}

// ---- reducescatterv ring ---------------------------------------------------------------------------

double ringvEstimate(const CollectiveArgs& args, const CostModel& cm) {
  const double es = static_cast<double>(elemBytes(args));
  std::uint64_t maxCount = 0;
  for (std::uint64_t c : args.counts) maxCount = std::max(maxCount, c);
  const double maxBytes = static_cast<double>(maxCount) * es;
  if (args.nranks <= 1) return singleRankUs(maxBytes, args.inPlace, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double p = args.nranks;
  const double chunk = static_cast<double>(chunkElemsOf(args)) * es;
  const double rounds = std::max(1.0, std::ceil(maxBytes / chunk));
  // Each step of the ring lasts as long as its largest block.
  return (p - 1 + rounds - 1) * l.alpha + (p - 1) * maxBytes * (l.beta + gammaUsPerByte(cm));
}

std::shared_ptr<const core::ProgramSource> ringvBuild(const CollectiveArgs& args) {
  std::vector<std::uint64_t> offsets(1, 0);
  for (std::uint64_t c : args.counts) offsets.push_back(offsets.back() + c);
  return ringProgram(args, BlockList::fromOffsets(std::move(offsets)));
}

}  // namespace

void addReduceScatterAlgorithms(std::vector<Algorithm>& out) {
  out.push_back(Algorithm{"ring", CollectiveKind::kReduceScatter,
                          "ring reduce-scatter, chunked and pipelined, double-buffered scratch with credits",
                          basicProblem, ringEstimate, ringBuild});
  out.push_back(Algorithm{"rhalving", CollectiveKind::kReduceScatter,
                          "recursive halving: log2(p) steps; non-powers of two fold extra ranks into partners",
                          basicProblem, rhalvingEstimate, rhalvingBuild});
  out.push_back(Algorithm{"ring", CollectiveKind::kReduceScatterV, "ring reduce-scatter with per-rank receive counts",
                          vProblem, ringvEstimate, ringvBuild});
}

}  // namespace copro::collectives::detail
