/// All-gather algorithms: allgather "ring", "rdoubling", "bruck", "oneshot_ll"; allgatherv "ring".
/// docs/algorithms.md explains each with its cost formula. Every algorithm writes blocks straight into
/// the peers' outputs at their final places, so none needs scratch.
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
  return vCountsProblem(args, "send");
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

/// Block b of the output: [offsets[b], offsets[b + 1]) elements. Built once per Program and shared by the
/// per-rank generators (a log-step rank must not pay O(p) to be generated).
using Offsets = std::shared_ptr<const std::vector<std::uint64_t>>;
std::vector<std::uint64_t> blockOffsets(const CollectiveArgs& args) {
  const auto p = static_cast<std::size_t>(args.nranks);
  std::vector<std::uint64_t> off(p + 1, 0);
  for (std::size_t b = 0; b < p; ++b) {
    off[b + 1] = off[b] + (args.kind == CollectiveKind::kAllGatherV ? args.counts[b] : args.count);
  }
  return off;
}

/// Not in place, the rank's own block is copied from the input into its place in the output (in place
/// it already is there: the input is that part of the output, and the Program never names kInput).
void emitOwnCopy(const CollectiveArgs& args, std::int32_t rank, const std::vector<std::uint64_t>& off,
                 RankProgram& out) {
  const std::uint64_t es = elemBytes(args);
  const auto r = static_cast<std::size_t>(rank);
  const std::uint64_t bytes = (off[r + 1] - off[r]) * es;
  if (!args.inPlace && bytes > 0) {
    out.emit(0, Op::copy(Addr{kSelf, BufferId::kOutput, off[r] * es}, Addr{kSelf, BufferId::kInput, 0}, bytes));
  }
}

double totalBytes(const CollectiveArgs& args) {
  const std::vector<std::uint64_t> off = blockOffsets(args);
  return static_cast<double>(off.back() * elemBytes(args));
}

double singleRankUs(const CollectiveArgs& args, const CostModel& cm) {
  return 0.01 + (args.inPlace ? 0.0 : totalBytes(args) * copyUsPerByte(cm));
}

// ---- ring (allgather and allgatherv) ---------------------------------------------------------------

double ringEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double p = args.nranks;
  const std::vector<std::uint64_t> off = blockOffsets(args);
  std::uint64_t maxBlock = 0;
  for (std::size_t b = 0; b + 1 < off.size(); ++b) maxBlock = std::max(maxBlock, off[b + 1] - off[b]);
  const double es = static_cast<double>(elemBytes(args));
  const double chunk = static_cast<double>(chunkElemsOf(args)) * es;
  const double rounds = std::max(1.0, std::ceil(static_cast<double>(maxBlock) * es / chunk));
  // Each step lasts as long as its largest block; with equal blocks this is (p-1)/p * n * beta.
  return (p - 1 + rounds - 1) * l.alpha + (p - 1) * static_cast<double>(maxBlock) * es * l.beta;
}

/// One rank's ring, then (not in place) its own block's local copy. The arguments and the block list are
/// shared by every rank's coroutine.
core::OpStream ringStream(std::shared_ptr<const CollectiveArgs> args, BlockList blocks, std::int32_t rank) {
  const Segment own = blocks.segment(static_cast<std::size_t>(rank), 0);
  RingAllGather::Spec spec;
  spec.blocks = std::move(blocks);
  spec.buf = Region{BufferId::kOutput, 0};
  if (args->inPlace) {
    spec.ownSrc = Region{BufferId::kOutput, 0};
    spec.ownCompact = false;
  } else {
    // The first send reads the input, so it need not wait for the local copy.
    spec.ownSrc = Region{BufferId::kInput, 0};
    spec.ownCompact = true;
  }
  RingAllGather ag(flatContext(*args, rank), std::move(spec));
  co_yield ag.all();
  const std::uint64_t es = elemBytes(*args);
  if (!args->inPlace && own.count > 0) {
    co_yield Op::copy(Addr{kSelf, BufferId::kOutput, own.offset * es}, Addr{kSelf, BufferId::kInput, 0},
                      own.count * es);
  }
}

std::shared_ptr<const core::ProgramSource> ringBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "ring");
  h.numSemaphores = args.nranks > 1 ? RingAllGather::kSemaphores : 0;
  const BlockList blocks = args.kind == CollectiveKind::kAllGatherV
                               ? BlockList::fromOffsets(blockOffsets(args))
                               : BlockList::strided(args.count, static_cast<std::uint64_t>(args.nranks));
  auto shared = std::make_shared<const CollectiveArgs>(args);
  return std::make_shared<core::StreamProgram>(
      std::move(h), 1, [shared, blocks](std::int32_t rank, int) { return ringStream(shared, blocks, rank); });
}

// ---- rdoubling -------------------------------------------------------------------------------------

double rdoublingEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double p = args.nranks;
  const double n = totalBytes(args);
  const double pp = floorPow2(args.nranks);
  double t = log2Floor(static_cast<std::uint64_t>(pp)) * l.alpha + (pp - 1) / pp * n * l.beta;
  if (pp != p) t += 2 * l.alpha + n / p * l.beta + n * l.beta;  // fold one block in, send everything back
  return t;
}

std::shared_ptr<const core::ProgramSource> rdoublingBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "rdoubling");
  const std::int32_t pp = args.nranks > 1 ? floorPow2(args.nranks) : 1;
  const int steps = log2Floor(static_cast<std::uint64_t>(pp));
  h.numSemaphores = args.nranks > 1 ? steps + 2 : 0;  // fold, one per step, unfold
  const Offsets offsets = std::make_shared<const std::vector<std::uint64_t>>(blockOffsets(args));
  return std::make_shared<core::LazyProgram>(
      std::move(h), [args, pp, steps, offsets](std::int32_t rank, RankProgram& out) {
        out.addLane();
        const std::vector<std::uint64_t>& off = *offsets;
        emitOwnCopy(args, rank, off, out);  // first: every put below reads the output
        if (args.nranks == 1) return;
        const std::uint64_t es = elemBytes(args);
        const std::uint64_t chunkBytes = chunkElemsOf(args) * es;
        const std::int32_t p = args.nranks;
        const std::int32_t extra = p - pp;
        const std::int32_t foldSem = 0;
        const std::int32_t unfoldSem = steps + 1;
        // New rank i (of pp) holds blocks [firstBlock(i), firstBlock(i + 1)): two for the folded pairs.
        const auto firstBlock = [&](std::int32_t nr) { return nr <= extra ? 2 * nr : nr + extra; };
        const auto rankOf = [&](std::int32_t nr) { return nr < extra ? 2 * nr + 1 : nr + extra; };
        const auto elem = [&](std::int32_t block) { return off[static_cast<std::size_t>(block)]; };
        const auto putRange = [&](std::int32_t peer, std::uint64_t lo, std::uint64_t hi, std::int32_t sem) {
          return emitChunkedPut(out, 0, peer, Addr{peer, BufferId::kOutput, lo * es},
                                Addr{kSelf, BufferId::kOutput, lo * es}, (hi - lo) * es, chunkBytes, sem);
        };
        const auto putsFor = [&](std::uint64_t lo, std::uint64_t hi) {
          return chunkedPutCount((hi - lo) * es, chunkBytes);
        };

        if (rank < 2 * extra && rank % 2 == 0) {
          putRange(rank + 1, elem(rank), elem(rank + 1), foldSem);
          const std::uint64_t n = putsFor(elem(0), elem(rank)) + putsFor(elem(rank + 1), elem(p));
          if (n > 0) out.emit(0, Op::wait(unfoldSem, n));
          return;
        }
        std::int32_t nr = rank - extra;
        if (rank < 2 * extra) {
          nr = rank / 2;
          const std::uint64_t n = putsFor(elem(rank - 1), elem(rank));
          if (n > 0) out.emit(0, Op::wait(foldSem, n));
        }
        for (int k = 0; k < steps; ++k) {
          const std::int32_t size = 1 << k;
          const std::int32_t partnerNr = nr ^ size;
          const std::int32_t myLo = nr & ~(size - 1);
          const std::int32_t theirLo = partnerNr & ~(size - 1);
          putRange(rankOf(partnerNr), elem(firstBlock(myLo)), elem(firstBlock(myLo + size)), 1 + k);
          const std::uint64_t n = putsFor(elem(firstBlock(theirLo)), elem(firstBlock(theirLo + size)));
          if (n > 0) out.emit(0, Op::wait(1 + k, n));
        }
        if (rank < 2 * extra) {
          const std::int32_t partner = rank - 1;
          putRange(partner, elem(0), elem(partner), unfoldSem);  // everything but the partner's own block
          putRange(partner, elem(partner + 1), elem(p), unfoldSem);
        }
      });
}

// ---- bruck -----------------------------------------------------------------------------------------

double bruckEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = flatLinkCost(args, cm);
  const double p = args.nranks;
  const double n = totalBytes(args);
  return log2Ceil(static_cast<std::uint64_t>(args.nranks)) * l.alpha + (p - 1) / p * n * l.beta;
}

std::shared_ptr<const core::ProgramSource> bruckBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "bruck");
  const int steps = log2Ceil(static_cast<std::uint64_t>(std::max(args.nranks, 1)));
  h.numSemaphores = steps;
  const Offsets offsets = std::make_shared<const std::vector<std::uint64_t>>(blockOffsets(args));
  return std::make_shared<core::LazyProgram>(std::move(h), [args, steps, offsets](std::int32_t rank, RankProgram& out) {
    out.addLane();
    const std::vector<std::uint64_t>& off = *offsets;
    emitOwnCopy(args, rank, off, out);
    const std::int32_t p = args.nranks;
    const std::uint64_t es = elemBytes(args);
    const std::uint64_t chunkBytes = chunkElemsOf(args) * es;
    // The blocks first, first + 1, ..., first + cnt - 1 (mod p) as at most two contiguous element ranges.
    const auto ranges = [&](std::int32_t first, std::int32_t cnt) {
      std::vector<std::pair<std::uint64_t, std::uint64_t>> r;
      const std::int32_t end = first + cnt;
      if (end <= p) {
        r.emplace_back(off[static_cast<std::size_t>(first)], off[static_cast<std::size_t>(end)]);
      } else {
        r.emplace_back(off[static_cast<std::size_t>(first)], off[static_cast<std::size_t>(p)]);
        r.emplace_back(0, off[static_cast<std::size_t>(end - p)]);
      }
      return r;
    };
    // Step k: send the 2^k blocks gathered so far (ours and the following ones) to rank - 2^k, which puts
    // them at their final places; Bruck's final rotation is folded into the put offsets.
    for (int k = 0; k < steps; ++k) {
      const std::int32_t dist = 1 << k;
      const std::int32_t cnt = std::min(dist, p - dist);
      const std::int32_t to = (rank - dist + p) % p;
      const std::int32_t from = (rank + dist) % p;
      for (const auto& [lo, hi] : ranges(rank, cnt)) {
        emitChunkedPut(out, 0, to, Addr{to, BufferId::kOutput, lo * es}, Addr{kSelf, BufferId::kOutput, lo * es},
                       (hi - lo) * es, chunkBytes, k);
      }
      std::uint64_t n = 0;
      for (const auto& [lo, hi] : ranges(from, cnt)) n += chunkedPutCount((hi - lo) * es, chunkBytes);
      if (n > 0) out.emit(0, Op::wait(k, n));
    }
  });
}

// ---- oneshot_ll: every rank's block straight to every peer over the LL protocol ---------------------

std::string oneshotLLProblem(const CollectiveArgs& args) {
  return llProblem(args, args.count * elemBytes(args));
}

double oneshotLLEstimate(const CollectiveArgs& args, const CostModel& cm) {
  if (args.nranks <= 1) return singleRankUs(args, cm);
  const LinkCost l = intraLinkCost(cm);
  const double n = static_cast<double>(args.count * elemBytes(args));
  // One step without a separate signal (half the step latency); the flags double the bytes on the wire.
  return 0.5 * l.alpha + (args.nranks - 1) * n * 2 * l.beta;
}

std::shared_ptr<const core::ProgramSource> oneshotLLBuild(const CollectiveArgs& args) {
  core::ProgramHeader h = baseHeader(args, "oneshot_ll");
  // Semaphore q pairs rank q's LL put with our LL wait for it.
  h.numSemaphores = args.nranks > 1 ? args.nranks : 0;
  return std::make_shared<core::LazyProgram>(std::move(h), [args](std::int32_t rank, RankProgram& out) {
    const std::vector<std::uint64_t> off = blockOffsets(args);
    out.addLane();
    const std::uint64_t es = elemBytes(args);
    const std::uint64_t bytes = args.count * es;
    const auto at = [&](std::int32_t q) { return off[static_cast<std::size_t>(q)] * es; };
    // In place the rank's block already is in its output (the Program never names kInput then).
    const Addr own = args.inPlace ? Addr{kSelf, BufferId::kOutput, at(rank)} : Addr{kSelf, BufferId::kInput, 0};
    for (std::int32_t q = 0; q < args.nranks; ++q) {
      if (q != rank) out.emit(0, Op::putLL(q, Addr{q, BufferId::kOutput, at(rank)}, own, bytes, rank));
    }
    for (std::int32_t q = 0; q < args.nranks; ++q) {
      if (q != rank) out.emit(0, Op::waitLL(q, Addr{kSelf, BufferId::kOutput, at(q)}, bytes, q, 1));
    }
    emitOwnCopy(args, rank, off, out);
  });
}

}  // namespace

void addAllGatherAlgorithms(std::vector<Algorithm>& out) {
  out.push_back(Algorithm{"ring", CollectiveKind::kAllGather,
                          "ring all-gather, chunked and pipelined, straight into the peers' outputs", basicProblem,
                          ringEstimate, ringBuild});
  out.push_back(Algorithm{"rdoubling", CollectiveKind::kAllGather,
                          "recursive doubling: log2(p) exchanges of growing ranges; non-powers of two fold extra "
                          "ranks into partners",
                          basicProblem, rdoublingEstimate, rdoublingBuild});
  out.push_back(Algorithm{"bruck", CollectiveKind::kAllGather,
                          "Bruck: ceil(log2 p) steps for any p, blocks put at their final places (no rotation)",
                          basicProblem, bruckEstimate, bruckBuild});
  out.push_back(Algorithm{"oneshot_ll", CollectiveKind::kAllGather,
                          "every rank LL-puts its block straight into every peer's output (data and arrival "
                          "flags together, no separate signal); load/store backends, small blocks",
                          oneshotLLProblem, oneshotLLEstimate, oneshotLLBuild});
  out.push_back(Algorithm{"ring", CollectiveKind::kAllGatherV,
                          "ring all-gather with per-rank counts, straight into the peers' outputs", vProblem,
                          ringEstimate, ringBuild});
}

}  // namespace copro::collectives::detail
