/// Stage emitters shared by the flat and the hierarchical algorithms (see compose.hpp).
#include "compose.hpp"

#include <algorithm>
#include <set>

#include "copro/core/status.hpp"

namespace copro::collectives::detail {

using core::Addr;
using core::BufferId;
using core::kSelf;
using core::Op;
using core::RankProgram;

// ---- small shared helpers --------------------------------------------------------------------------

std::uint64_t chunkElemsOf(const CollectiveArgs& args) {
  const std::uint64_t es = elemBytes(args);
  if (es == 0) return 1;
  const std::uint64_t bytes = args.chunkBytes == 0 ? kUnchunkedBytes : std::min(args.chunkBytes, kUnchunkedBytes);
  return std::max<std::uint64_t>(1, bytes / es);
}

Op reduce2(Addr dst, Addr a, Addr b, std::uint64_t count, core::DataType dtype, core::ReduceOp op,
           std::uint32_t divisor) {
  return Op::reduce(dst, {a, b}, count, dtype, op, divisor);
}

std::uint32_t finalDivisor(core::ReduceOp op, std::int32_t nranks) {
  return op == core::ReduceOp::kAvg ? static_cast<std::uint32_t>(nranks) : 0;
}

std::uint64_t partOffset(std::uint64_t count, std::uint64_t parts, std::uint64_t i) {
  const std::uint64_t base = count / parts;
  const std::uint64_t rem = count % parts;
  return i * base + std::min(i, rem);
}

std::int32_t floorPow2(std::int32_t n) {
  std::int32_t p = 1;
  while (p <= n / 2) p *= 2;
  return p;
}

int log2Floor(std::uint64_t n) {
  int l = 0;
  while (n > 1) {
    n >>= 1;
    ++l;
  }
  return l;
}

int log2Ceil(std::uint64_t n) {
  int l = 0;
  std::uint64_t v = 1;
  while (v < n) {
    v <<= 1;
    ++l;
  }
  return l;
}

core::ProgramHeader baseHeader(const CollectiveArgs& args, const std::string& algorithm) {
  core::ProgramHeader h;
  h.name = std::string(collectiveName(args.kind)) + "." + algorithm;
  h.nranks = args.nranks;
  h.loadStoreDomains = args.loadStoreDomains;
  const std::uint64_t es = elemBytes(args);
  const auto p = static_cast<std::uint64_t>(std::max(args.nranks, 0));
  std::uint64_t total = 0;
  for (std::uint64_t c : args.counts) total += c;
  h.inputBytes.resize(p);
  h.outputBytes.resize(p);
  for (std::size_t r = 0; r < p; ++r) {
    const std::uint64_t mine = r < args.counts.size() ? args.counts[r] : 0;
    switch (args.kind) {
      case CollectiveKind::kReduceScatter:
        h.inputBytes[r] = args.count * p * es;
        h.outputBytes[r] = args.count * es;
        break;
      case CollectiveKind::kReduceScatterV:
        h.inputBytes[r] = total * es;
        h.outputBytes[r] = mine * es;
        break;
      case CollectiveKind::kAllGather:
        h.inputBytes[r] = args.count * es;
        h.outputBytes[r] = args.count * p * es;
        break;
      case CollectiveKind::kAllGatherV:
        h.inputBytes[r] = mine * es;
        h.outputBytes[r] = total * es;
        break;
      case CollectiveKind::kAllToAll:
        h.inputBytes[r] = args.count * p * es;
        h.outputBytes[r] = args.count * p * es;
        break;
      default:  // all-reduce and anything element-for-element
        h.inputBytes[r] = args.count * es;
        h.outputBytes[r] = args.count * es;
        break;
    }
  }
  return h;
}

std::string nodeMapProblem(const CollectiveArgs& args) {
  if (args.nodeOfRank.empty()) return {};
  if (args.nodeOfRank.size() != static_cast<std::size_t>(args.nranks)) {
    return "nodeOfRank has " + std::to_string(args.nodeOfRank.size()) + " entries for " + std::to_string(args.nranks) +
           " ranks";
  }
  for (std::size_t r = 0; r < args.nodeOfRank.size(); ++r) {
    if (args.nodeOfRank[r] < 0) {
      return "nodeOfRank[" + std::to_string(r) + "] is negative (" + std::to_string(args.nodeOfRank[r]) + ")";
    }
  }
  return {};
}

int numNodes(const CollectiveArgs& args) {
  if (args.nodeOfRank.empty()) return 1;
  std::set<int> nodes(args.nodeOfRank.begin(), args.nodeOfRank.end());
  return static_cast<int>(nodes.size());
}

LinkCost intraLinkCost(const CostModel& cm) {
  return {cm.alphaUs, 1.0 / (cm.bandwidthGBps * 1e3)};
}
LinkCost interLinkCost(const CostModel& cm) {
  return {cm.interAlphaUs, 1.0 / (cm.interBandwidthGBps * 1e3)};
}
LinkCost flatLinkCost(const CollectiveArgs& args, const CostModel& cm) {
  return numNodes(args) > 1 ? interLinkCost(cm) : intraLinkCost(cm);
}
double gammaUsPerByte(const CostModel& cm) {
  return 1.0 / (cm.reduceGBps * 1e3);
}
double copyUsPerByte(const CostModel& cm) {
  return 2.0 / (cm.memoryGBps * 1e3);
}

core::OpStream chunkedPuts(std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes, std::uint64_t chunkBytes,
                           std::int32_t sem) {
  for (std::uint64_t off = 0; off < bytes; off += chunkBytes) {
    const std::uint64_t len = std::min(chunkBytes, bytes - off);
    co_yield Op::put(peer, Addr{dst.rank, dst.buf, dst.offset + off}, Addr{src.rank, src.buf, src.offset + off}, len,
                     sem, 1);
  }
}

std::uint64_t emitChunkedPut(RankProgram& out, int lane, std::int32_t peer, Addr dst, Addr src, std::uint64_t bytes,
                             std::uint64_t chunkBytes, std::int32_t sem) {
  chunkedPuts(peer, dst, src, bytes, chunkBytes, sem).drainInto(out, lane);
  return chunkedPutCount(bytes, chunkBytes);
}

// ---- BlockList -------------------------------------------------------------------------------------

BlockList BlockList::even(std::uint64_t count, std::uint64_t parts) {
  BlockList b;
  b.kind_ = Kind::kEven;
  b.count_ = count;
  b.parts_ = parts;
  return b;
}

BlockList BlockList::strided(std::uint64_t count, std::uint64_t parts) {
  BlockList b;
  b.kind_ = Kind::kStrided;
  b.count_ = count;
  b.parts_ = parts;
  return b;
}

BlockList BlockList::fromOffsets(std::vector<std::uint64_t> offsets) {
  auto sh = std::make_shared<Shared>();
  for (std::size_t i = 0; i + 1 < offsets.size(); ++i)
    sh->maxCount = std::max(sh->maxCount, offsets[i + 1] - offsets[i]);
  if (offsets.size() > 1) sh->maxPerSegment = {sh->maxCount};
  sh->offsets = std::move(offsets);
  BlockList b;
  b.kind_ = Kind::kOffsets;
  b.parts_ = sh->offsets.empty() ? 0 : sh->offsets.size() - 1;
  b.shared_ = std::move(sh);
  return b;
}

BlockList BlockList::fromBlocks(std::vector<Block> blocks) {
  auto sh = std::make_shared<Shared>();
  for (const Block& blk : blocks) {
    if (sh->maxPerSegment.size() < blk.size()) sh->maxPerSegment.resize(blk.size(), 0);
    for (std::size_t j = 0; j < blk.size(); ++j) {
      sh->maxPerSegment[j] = std::max(sh->maxPerSegment[j], blk[j].count);
      sh->maxCount = std::max(sh->maxCount, blk[j].count);
    }
  }
  sh->blocks = std::move(blocks);
  BlockList b;
  b.kind_ = Kind::kExplicit;
  b.parts_ = sh->blocks.size();
  b.shared_ = std::move(sh);
  return b;
}

std::size_t BlockList::size() const {
  return static_cast<std::size_t>(parts_);
}

std::size_t BlockList::numSegments(std::size_t b) const {
  return kind_ == Kind::kExplicit ? shared_->blocks[b].size() : 1;
}

Segment BlockList::segment(std::size_t b, std::size_t j) const {
  switch (kind_) {
    case Kind::kEven:
      return Segment{partOffset(count_, parts_, b), partSize(count_, parts_, b)};
    case Kind::kStrided:
      return Segment{b * count_, count_};
    case Kind::kOffsets:
      return Segment{shared_->offsets[b], shared_->offsets[b + 1] - shared_->offsets[b]};
    case Kind::kExplicit:
      break;
  }
  return shared_->blocks[b][j];
}

std::size_t BlockList::maxSegments() const {
  if (parts_ == 0) return 0;
  return kind_ == Kind::kExplicit ? shared_->maxPerSegment.size() : 1;
}

std::uint64_t BlockList::maxSegmentCount(std::size_t j) const {
  switch (kind_) {
    case Kind::kEven:
      return parts_ > 0 && j == 0 ? partSize(count_, parts_, 0) : 0;  // the first parts are the larger ones
    case Kind::kStrided:
      return parts_ > 0 && j == 0 ? count_ : 0;
    case Kind::kOffsets:
    case Kind::kExplicit:
      break;
  }
  return j < shared_->maxPerSegment.size() ? shared_->maxPerSegment[j] : 0;
}

std::uint64_t BlockList::maxSegmentCount() const {
  if (kind_ == Kind::kEven || kind_ == Kind::kStrided) return maxSegmentCount(0);
  return shared_->maxCount;
}

std::uint64_t BlockList::compactPrefix(std::size_t b, std::size_t j) const {
  if (kind_ != Kind::kExplicit) return 0;  // single-segment blocks
  std::uint64_t off = 0;
  const Block& blk = shared_->blocks[b];
  for (std::size_t i = 0; i < j && i < blk.size(); ++i) off += blk[i].count;
  return off;
}

std::uint64_t BlockList::chunks(std::size_t b, std::uint64_t chunkElems) const {
  std::uint64_t n = 0;
  for (std::size_t j = 0; j < numSegments(b); ++j) n += ceilDiv(segment(b, j).count, chunkElems);
  return n;
}

std::uint64_t BlockList::totalChunks(std::uint64_t chunkElems) const {
  if (parts_ == 0) return 0;
  if (kind_ == Kind::kEven) {
    const std::uint64_t q = count_ / parts_;
    const std::uint64_t rem = count_ % parts_;
    return rem * ceilDiv(q + 1, chunkElems) + (parts_ - rem) * ceilDiv(q, chunkElems);
  }
  if (kind_ == Kind::kStrided) return parts_ * ceilDiv(count_, chunkElems);
  std::uint64_t n = 0;
  for (std::size_t b = 0; b < size(); ++b) n += chunks(b, chunkElems);
  return n;
}

// ---- StageContext, RingRounds ----------------------------------------------------------------------

int StageContext::size() const {
  return group ? static_cast<int>(group->size()) : identitySize;
}

std::int32_t StageContext::member(int pos) const {
  return group ? (*group)[static_cast<std::size_t>(pos)] : pos;
}

int StageContext::position() const {
  if (!group && self >= 0 && self < identitySize) return self;
  const std::size_t n = group ? group->size() : 0;
  for (std::size_t i = 0; i < n; ++i) {
    if ((*group)[i] == self) return static_cast<int>(i);
  }
  throw core::Error(core::ErrorCode::kInternal,
                    "stage emitter: rank " + std::to_string(self) + " is not a member of its stage group");
}

std::uint64_t StageContext::elemSize() const {
  return core::dataTypeSize(dtype);
}

RingRounds::RingRounds(const BlockList& blocks, std::uint64_t chunkElems) : chunkElems_(chunkElems) {
  const std::size_t maxSegs = blocks.maxSegments();
  firstRound_.reserve(maxSegs + 1);
  for (std::size_t j = 0; j < maxSegs; ++j) {
    firstRound_.push_back(total_);
    total_ += static_cast<std::size_t>(ceilDiv(blocks.maxSegmentCount(j), chunkElems));
  }
  firstRound_.push_back(total_);
}

RingRounds::Round RingRounds::round(std::size_t k) const {
  // The segment whose rounds contain k: the last j with firstRound_[j] <= k (few segments: linear).
  std::size_t j = 0;
  while (j + 2 < firstRound_.size() && firstRound_[j + 1] <= k) ++j;
  return Round{j, static_cast<std::uint64_t>(k - firstRound_[j])};
}

Segment RingRounds::piece(const BlockList& blocks, std::size_t b, std::size_t k) const {
  const Round r = round(k);
  if (r.segment >= blocks.numSegments(b)) return {};
  const Segment s = blocks.segment(b, r.segment);
  const std::uint64_t start = r.chunk * chunkElems_;
  if (start >= s.count) return {};
  return Segment{s.offset + start, std::min(chunkElems_, s.count - start)};
}

std::uint64_t RingRounds::compactOffset(const BlockList& blocks, std::size_t b, std::size_t k) const {
  const Round r = round(k);
  return blocks.compactPrefix(b, r.segment) + r.chunk * chunkElems_;
}

namespace {

/// The trivial one-member stage: the result is the rank's own contribution (divided for kAvg).
core::OpStream singleton(StageContext ctx, Addr dst, Addr src, std::uint64_t count, std::uint32_t divisor) {
  if (count == 0) co_return;
  if (divisor > 0) {
    co_yield Op::reduce(dst, std::vector<Addr>(1, src), count, ctx.dtype, ctx.op, divisor);
  } else if (!(dst.buf == src.buf && dst.offset == src.offset)) {
    co_yield Op::copy(dst, src, count * ctx.elemSize());
  }
}

}  // namespace

// ---- RingReduceScatter -----------------------------------------------------------------------------

std::uint64_t RingReduceScatter::scratchBytes(const Spec& spec, std::uint64_t chunkElems, std::uint64_t elemSize) {
  if (spec.blocks.size() <= 1) return 0;
  const std::uint64_t slot = std::min(chunkElems, spec.blocks.maxSegmentCount()) * elemSize;
  return slot * (spec.partialsInRegion ? 2 : 4);
}

RingReduceScatter::RingReduceScatter(StageContext ctx, Spec spec)
    : ctx_(std::move(ctx)), spec_(std::move(spec)), rounds_(spec_.blocks, ctx_.chunkElems) {
  m_ = ctx_.size();
  if (spec_.blocks.size() != static_cast<std::size_t>(m_)) {
    throw core::Error(core::ErrorCode::kInternal, "ring reduce-scatter: one block per group member expected");
  }
  pos_ = ctx_.position();
  next_ = ctx_.member((pos_ + 1) % m_);
  prev_ = ctx_.member((pos_ + m_ - 1) % m_);
  es_ = ctx_.elemSize();
  slotBytes_ = std::min(ctx_.chunkElems, spec_.blocks.maxSegmentCount()) * es_;
  // Messages this rank receives: a piece of every block but its predecessor's (which the predecessor
  // reduces first and never receives back); the receiver returns a credit only while the sender still
  // needs one. O(1) for computed block lists, so opening a cursor does not cost O(rounds * m).
  if (m_ > 1) {
    const auto pred = static_cast<std::size_t>((pos_ + m_ - 1) % m_);
    totalRecv_ = spec_.blocks.totalChunks(ctx_.chunkElems) - spec_.blocks.chunks(pred, ctx_.chunkElems);
  }
}

Addr RingReduceScatter::recvSlot(std::int32_t rank, std::uint64_t seq) const {
  return Addr{rank, BufferId::kScratch, ctx_.scratchBase + (seq % 2) * slotBytes_};
}

Addr RingReduceScatter::sendSlot(std::uint64_t seq) const {
  return Addr{kSelf, BufferId::kScratch, ctx_.scratchBase + (2 + seq % 2) * slotBytes_};
}

Addr RingReduceScatter::at(const Region& r, std::uint64_t elem) const {
  return Addr{kSelf, r.buf, r.offset + elem * es_};
}

Addr RingReduceScatter::srcAt(std::uint64_t elem) const {
  const Segment& a = spec_.srcAlias;
  if (spec_.hasSrcAlias && elem >= a.offset && elem < a.offset + a.count) {
    return at(spec_.srcAliasRegion, elem - a.offset);
  }
  return at(spec_.src, elem);
}

Addr RingReduceScatter::resultAddr(std::size_t k, const Segment& pc) const {
  if (!spec_.resultCompact) return at(spec_.result, pc.offset);
  return at(spec_.result, rounds_.compactOffset(spec_.blocks, static_cast<std::size_t>(pos_), k));
}

core::OpStream RingReduceScatter::round(std::size_t k) {
  const std::int32_t dataSem = ctx_.semBase;
  const std::int32_t creditSem = ctx_.semBase + 1;
  const auto own = static_cast<std::size_t>(pos_);
  if (m_ == 1) {
    const Segment pc = rounds_.piece(spec_.blocks, own, k);
    co_yield singleton(ctx_, resultAddr(k, pc), srcAt(pc.offset), pc.count, spec_.divisor);
    co_return;
  }
  // Slot seq % 2 of the receiver is free once it consumed message seq - 2 (credits count consumptions);
  // a credit is returned only while the sender still needs one.
  for (int s = 0; s + 1 < m_; ++s) {
    const auto b = static_cast<std::size_t>(((pos_ - s - 1) % m_ + m_) % m_);
    const Segment pc = rounds_.piece(spec_.blocks, b, k);
    if (pc.count == 0) continue;
    const std::uint64_t bytes = pc.count * es_;
    if (s == 0) {
      if (seqSend_ >= 2) co_yield Op::wait(creditSem, seqSend_ - 1);
      co_yield Op::put(next_, recvSlot(next_, seqSend_), srcAt(pc.offset), bytes, dataSem);
      ++seqSend_;
      continue;
    }
    // Block b arrived from prev in step s - 1: add our contribution and pass it on.
    co_yield Op::wait(dataSem, seqRecv_ + 1);
    // The credit before writing a send slot too: its previous put has been consumed by then.
    if (seqSend_ >= 2) co_yield Op::wait(creditSem, seqSend_ - 1);
    const Addr partial = spec_.partialsInRegion ? at(spec_.partials, pc.offset) : sendSlot(seqSend_);
    co_yield reduce2(partial, recvSlot(kSelf, seqRecv_), srcAt(pc.offset), pc.count, ctx_.dtype, ctx_.op);
    if (seqRecv_ + 2 < totalRecv_) co_yield Op::signal(prev_, creditSem, 1);
    ++seqRecv_;
    co_yield Op::put(next_, recvSlot(next_, seqSend_), partial, bytes, dataSem);
    ++seqSend_;
  }
  const Segment pc = rounds_.piece(spec_.blocks, own, k);
  if (pc.count == 0) co_return;
  co_yield Op::wait(dataSem, seqRecv_ + 1);
  co_yield reduce2(resultAddr(k, pc), recvSlot(kSelf, seqRecv_), srcAt(pc.offset), pc.count, ctx_.dtype, ctx_.op,
                   spec_.divisor);
  if (seqRecv_ + 2 < totalRecv_) co_yield Op::signal(prev_, creditSem, 1);
  ++seqRecv_;
}

core::OpStream RingReduceScatter::all() {
  for (std::size_t k = 0; k < rounds_.size(); ++k) co_yield round(k);
}

// ---- RingAllGather ---------------------------------------------------------------------------------

RingAllGather::RingAllGather(StageContext ctx, Spec spec)
    : ctx_(std::move(ctx)), spec_(std::move(spec)), rounds_(spec_.blocks, ctx_.chunkElems) {
  m_ = ctx_.size();
  if (spec_.blocks.size() != static_cast<std::size_t>(m_)) {
    throw core::Error(core::ErrorCode::kInternal, "ring all-gather: one block per group member expected");
  }
  pos_ = ctx_.position();
  next_ = ctx_.member((pos_ + 1) % m_);
  es_ = ctx_.elemSize();
}

core::OpStream RingAllGather::round(std::size_t k) {
  if (m_ == 1) co_return;
  const std::int32_t dataSem = ctx_.semBase;
  const auto own = static_cast<std::size_t>(pos_);
  for (int s = 0; s + 1 < m_; ++s) {
    const auto b = static_cast<std::size_t>(((pos_ - s) % m_ + m_) % m_);
    const Segment pc = rounds_.piece(spec_.blocks, b, k);
    if (pc.count == 0) continue;
    Addr src;
    if (s == 0) {
      const std::uint64_t off = spec_.ownCompact ? rounds_.compactOffset(spec_.blocks, own, k) : pc.offset;
      src = Addr{kSelf, spec_.ownSrc.buf, spec_.ownSrc.offset + off * es_};
    } else {
      co_yield Op::wait(dataSem, ++seqRecv_);  // block b arrived from prev in step s - 1
      src = Addr{kSelf, spec_.buf.buf, spec_.buf.offset + pc.offset * es_};
    }
    const Addr dst{next_, spec_.buf.buf, spec_.buf.offset + pc.offset * es_};
    co_yield Op::put(next_, dst, src, pc.count * es_, dataSem);
  }
  const Segment last = rounds_.piece(spec_.blocks, static_cast<std::size_t>((pos_ + 1) % m_), k);
  if (last.count > 0) co_yield Op::wait(dataSem, ++seqRecv_);
}

core::OpStream RingAllGather::all() {
  for (std::size_t k = 0; k < rounds_.size(); ++k) co_yield round(k);
}

// ---- RingAllReduce ---------------------------------------------------------------------------------

std::uint64_t RingAllReduce::scratchBytes(std::uint64_t count, int groupSize, std::uint64_t chunkElems,
                                          std::uint64_t elemSize) {
  RingReduceScatter::Spec spec;
  spec.blocks = BlockList::even(count, static_cast<std::uint64_t>(groupSize));
  spec.partialsInRegion = true;
  return RingReduceScatter::scratchBytes(spec, chunkElems, elemSize);
}

core::OpStream RingAllReduce::stream(StageContext ctx, Spec spec) {
  const BlockList blocks = BlockList::even(spec.count, static_cast<std::uint64_t>(ctx.size()));
  RingReduceScatter::Spec rs;
  rs.blocks = blocks;
  rs.src = spec.src;
  rs.partialsInRegion = true;  // partial sums live in dst; the all-gather overwrites them with finals
  rs.partials = spec.dst;
  rs.result = spec.dst;
  rs.resultCompact = false;
  rs.divisor = spec.divisor;
  RingAllGather::Spec ag;
  ag.blocks = blocks;
  ag.buf = spec.dst;
  ag.ownSrc = spec.dst;
  StageContext agCtx = ctx;
  agCtx.semBase = ctx.semBase + RingReduceScatter::kSemaphores;
  RingReduceScatter rsEmitter(ctx, std::move(rs));
  RingAllGather agEmitter(std::move(agCtx), std::move(ag));
  // The all-gather of a chunk round starts as soon as its reduction is done.
  for (std::size_t k = 0; k < rsEmitter.rounds(); ++k) {
    co_yield rsEmitter.round(k);
    co_yield agEmitter.round(k);
  }
}

// ---- RhdAllReduce ----------------------------------------------------------------------------------

namespace {

/// Scratch layout of the Rabenseifner stage: [fold: count][step 0 receive][step 1 receive]...
struct RhdLayout {
  std::int32_t pp = 1;     ///< power-of-two core size
  std::int32_t extra = 0;  ///< positions folded into a partner
  int steps = 0;           ///< log2(pp)
  std::uint64_t foldBytes = 0;
  std::vector<std::uint64_t> stepOffset;  ///< relative to the stage's scratch base
  std::uint64_t total = 0;

  RhdLayout(std::uint64_t count, int m, std::uint64_t es) {
    if (m <= 1) return;
    pp = floorPow2(m);
    extra = m - pp;
    steps = log2Floor(static_cast<std::uint64_t>(pp));
    foldBytes = extra > 0 ? count * es : 0;
    std::uint64_t off = foldBytes;
    const std::uint64_t perBlock = ceilDiv(count, static_cast<std::uint64_t>(pp)) * es;
    for (int k = 0; k < steps; ++k) {
      stepOffset.push_back(off);
      off += static_cast<std::uint64_t>(pp >> (k + 1)) * perBlock;
    }
    total = off;
  }
};

}  // namespace

int RhdAllReduce::numSemaphores(int groupSize) {
  if (groupSize <= 1) return 0;
  return 2 * log2Floor(static_cast<std::uint64_t>(floorPow2(groupSize))) + 2;
}

std::uint64_t RhdAllReduce::scratchBytes(std::uint64_t count, int groupSize, std::uint64_t elemSize) {
  return RhdLayout(count, groupSize, elemSize).total;
}

core::OpStream RhdAllReduce::stream(StageContext ctx, Spec spec) {
  const int m = ctx.size();
  const int pos = ctx.position();
  const std::uint64_t es = ctx.elemSize();
  const auto at = [es](const Region& r, std::uint64_t elem) { return Addr{kSelf, r.buf, r.offset + elem * es}; };
  if (m == 1) {
    co_yield singleton(ctx, at(spec.dst, 0), at(spec.src, 0), spec.count, spec.divisor);
    co_return;
  }
  const RhdLayout lay(spec.count, m, es);
  const std::uint64_t chunkBytes = ctx.chunkElems * es;
  const std::int32_t foldSem = ctx.semBase;
  const std::int32_t rsSemBase = ctx.semBase + 1;              // + step
  const std::int32_t agSemBase = ctx.semBase + 1 + lay.steps;  // + step
  const std::int32_t unfoldSem = ctx.semBase + 1 + 2 * lay.steps;
  const std::int32_t extra = lay.extra;
  const auto rankOf = [&ctx, extra](std::int32_t nr) { return ctx.member(nr < extra ? 2 * nr + 1 : nr + extra); };
  const std::uint64_t count = spec.count;
  const auto pp = static_cast<std::uint64_t>(lay.pp);
  const auto blockOff = [count, pp](std::int32_t q) { return partOffset(count, pp, static_cast<std::uint64_t>(q)); };
  const std::uint64_t totalBytes = spec.count * es;

  // Fold: an extra position hands its whole vector to its partner and waits for the result.
  if (pos < 2 * lay.extra && pos % 2 == 0) {
    const std::int32_t partner = ctx.member(pos + 1);
    co_yield chunkedPuts(partner, Addr{partner, BufferId::kScratch, ctx.scratchBase}, at(spec.src, 0), totalBytes,
                         chunkBytes, foldSem);
    const std::uint64_t n = chunkedPutCount(totalBytes, chunkBytes);
    if (n > 0) co_yield Op::wait(unfoldSem, n);
    co_return;
  }
  Region cur = spec.src;
  std::int32_t nr = 0;
  if (pos < 2 * lay.extra) {
    nr = pos / 2;
    for (std::uint64_t e = 0, i = 0; e < spec.count; e += ctx.chunkElems, ++i) {
      const std::uint64_t len = std::min(ctx.chunkElems, spec.count - e);
      co_yield Op::wait(foldSem, i + 1);
      co_yield reduce2(at(spec.dst, e), at(spec.src, e), Addr{kSelf, BufferId::kScratch, ctx.scratchBase + e * es}, len,
                       ctx.dtype, ctx.op);
    }
    cur = spec.dst;
  } else {
    nr = pos - lay.extra;
  }

  // Recursive halving: keep the half of the current block range that contains us, send the other.
  std::int32_t lo = 0;
  std::int32_t span = lay.pp;
  for (int k = 0; k < lay.steps; ++k) {
    const std::int32_t half = span / 2;
    const std::int32_t partnerNr = nr ^ half;
    const std::int32_t partner = rankOf(partnerNr);
    const bool upper = (nr & half) != 0;
    const std::int32_t keepLo = upper ? lo + half : lo;
    const std::int32_t sendLo = upper ? lo : lo + half;
    const std::uint64_t sendStart = blockOff(sendLo);
    const std::uint64_t sendEnd = blockOff(sendLo + half);
    const std::uint64_t keepStart = blockOff(keepLo);
    const std::uint64_t keepEnd = blockOff(keepLo + half);
    const std::uint64_t stepBase = ctx.scratchBase + lay.stepOffset[static_cast<std::size_t>(k)];
    co_yield chunkedPuts(partner, Addr{partner, BufferId::kScratch, stepBase}, at(cur, sendStart),
                         (sendEnd - sendStart) * es, chunkBytes, rsSemBase + k);
    const std::uint32_t div = k + 1 == lay.steps ? spec.divisor : 0;
    std::uint64_t i = 0;
    for (std::uint64_t e = keepStart; e < keepEnd; e += ctx.chunkElems, ++i) {
      const std::uint64_t len = std::min(ctx.chunkElems, keepEnd - e);
      co_yield Op::wait(rsSemBase + k, i + 1);
      co_yield reduce2(at(spec.dst, e), at(cur, e), Addr{kSelf, BufferId::kScratch, stepBase + (e - keepStart) * es},
                       len, ctx.dtype, ctx.op, div);
    }
    cur = spec.dst;
    lo = keepLo;
    span = half;
  }

  // Recursive doubling: exchange the finished ranges straight into the partner's dst.
  for (int k = 0; k < lay.steps; ++k) {
    const std::int32_t size = 1 << k;
    const std::int32_t partnerNr = nr ^ size;
    const std::int32_t partner = rankOf(partnerNr);
    const std::int32_t myLo = nr & ~(size - 1);
    const std::int32_t theirLo = partnerNr & ~(size - 1);
    const std::uint64_t myStart = blockOff(myLo);
    const std::uint64_t myEnd = blockOff(myLo + size);
    const std::uint64_t theirBytes = (blockOff(theirLo + size) - blockOff(theirLo)) * es;
    co_yield chunkedPuts(partner, Addr{partner, spec.dst.buf, spec.dst.offset + myStart * es}, at(spec.dst, myStart),
                         (myEnd - myStart) * es, chunkBytes, agSemBase + k);
    const std::uint64_t n = chunkedPutCount(theirBytes, chunkBytes);
    if (n > 0) co_yield Op::wait(agSemBase + k, n);
  }

  // Unfold: the folded partner gets the whole result.
  if (pos < 2 * lay.extra) {
    const std::int32_t partner = ctx.member(pos - 1);
    co_yield chunkedPuts(partner, Addr{partner, spec.dst.buf, spec.dst.offset}, at(spec.dst, 0), totalBytes, chunkBytes,
                         unfoldSem);
  }
}

std::string basicProblem(const CollectiveArgs& args) {
  if (args.nranks < 1) return "needs at least one rank";
  return {};
}

std::string llProblem(const CollectiveArgs& args, std::uint64_t bytesPerPut) {
  if (std::string why = basicProblem(args); !why.empty()) return why;
  if (args.nranks <= 1) return {};
  if (const int nodes = numNodes(args); nodes > 1) {
    return "needs every rank on one node (the LL mailboxes are one host's shared memory); the ranks span " +
           std::to_string(nodes) + " nodes";
  }
  if (!args.loadStoreDomains.empty()) {
    bool one = false;
    for (const auto& group : args.loadStoreDomains) {
      const std::set<std::int32_t> members(group.begin(), group.end());
      bool all = true;
      for (std::int32_t r = 0; r < args.nranks && all; ++r) all = members.count(r) > 0;
      one = one || all;
    }
    if (!one) {
      return "needs every rank in one load/store domain (the ranks span " +
             std::to_string(args.loadStoreDomains.size()) + " domains)";
    }
  }
  if (bytesPerPut > args.llMaxBytes) {
    return "sends " + std::to_string(bytesPerPut) + " bytes per peer with the LL protocol, above the limit of " +
           std::to_string(args.llMaxBytes) +
           " (COPRO_LL_MAX_BYTES, capped by the backend's mailboxes; 0: the backend has none)";
  }
  return {};
}

std::string vCountsProblem(const CollectiveArgs& args, const char* what) {
  if (std::string why = basicProblem(args); !why.empty()) return why;
  if (args.counts.size() != static_cast<std::size_t>(args.nranks)) {
    return "counts has " + std::to_string(args.counts.size()) + " entries for " + std::to_string(args.nranks) +
           " ranks (one " + what + " count per rank expected)";
  }
  return {};
}

}  // namespace copro::collectives::detail
