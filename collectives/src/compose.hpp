#pragma once
/// Building blocks for Programs over rank groups.
///
/// A hierarchical algorithm is a sequence of stages, each a flat algorithm run by a *group* of ranks
/// (the ranks of one node, or the ranks with the same local index across nodes: a rail). A stage is
/// emitted for one rank at a time into one lane, with its own semaphore range [semBase, semBase + n)
/// and scratch range [scratchBase, scratchBase + bytes), so stages placed one after another in the
/// lane combine into one Program without interfering. The flat algorithms use the same emitters with
/// the group of all ranks.
///
/// Element offsets and counts are in elements of the stage's dtype; Region offsets are in bytes.
///
/// Emitters are coroutines (core::OpStream): a stage yields its ops one at a time, so the same code
/// serves streaming cursors (core::StreamProgram::openLane, memory independent of the op count) and
/// materialized ranks (StreamProgram::rank, or drainInto a RankProgram). Coroutines take their
/// parameters by value, and the per-rank state they keep is O(1) in the rank count: groups and block
/// lists shared by every rank live behind shared_ptrs (a 16,384-rank simulation opens a cursor per rank).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/generator.hpp"
#include "copro/core/program.hpp"

namespace copro::collectives::detail {

// ---- small shared helpers --------------------------------------------------------------------------

/// Elements per pipelining chunk: args.chunkBytes rounded down to whole elements, at least one.
/// chunkBytes == 0 means unchunked: kUnchunkedBytes worth of elements, one chunk per step for any real
/// buffer (small enough that chunk arithmetic on byte offsets cannot overflow).
std::uint64_t chunkElemsOf(const CollectiveArgs& args);
inline constexpr std::uint64_t kUnchunkedBytes = std::uint64_t{1} << 60;
/// A reduce of two sources. Coroutine bodies build ops through functions like this one: GCC 12 rejects a
/// braced source list inside a co_yield expression.
core::Op reduce2(core::Addr dst, core::Addr a, core::Addr b, std::uint64_t count, core::DataType dtype,
                 core::ReduceOp op, std::uint32_t divisor = 0);
/// The divisor a final reduction passes: nranks for kAvg (the kernel divides once), 0 otherwise.
std::uint32_t finalDivisor(core::ReduceOp op, std::int32_t nranks);
/// Offset of part `i` when `count` elements are split into `parts` near-equal parts (the first
/// count % parts parts get one element more).
std::uint64_t partOffset(std::uint64_t count, std::uint64_t parts, std::uint64_t i);
inline std::uint64_t partSize(std::uint64_t count, std::uint64_t parts, std::uint64_t i) {
  return partOffset(count, parts, i + 1) - partOffset(count, parts, i);
}
/// Largest power of two <= n (n >= 1), and its log2.
std::int32_t floorPow2(std::int32_t n);
int log2Floor(std::uint64_t n);
int log2Ceil(std::uint64_t n);
/// Ceiling division (b > 0).
inline std::uint64_t ceilDiv(std::uint64_t a, std::uint64_t b) {
  return (a + b - 1) / b;
}
/// A header with the fields every algorithm fills the same way.
/// A local address of the executing rank, and an address in a peer's buffer.
inline core::Addr localAddr(core::BufferId buf, std::uint64_t offset) {
  return core::Addr{core::kSelf, buf, offset};
}
inline core::Addr remoteAddr(std::int32_t peer, core::BufferId buf, std::uint64_t offset) {
  return core::Addr{peer, buf, offset};
}

/// "" when the rank count is usable; else why not.
std::string basicProblem(const CollectiveArgs& args);
/// basicProblem plus every rank on one node and in one load/store domain (when args name domains) and at most
/// args.llMaxBytes (COPRO_LL_MAX_BYTES capped by the backend's mailboxes) in each LL put of `bytesPerPut`:
/// whether an algorithm over the LL protocol may run. One rank needs no LL.
std::string llProblem(const CollectiveArgs& args, std::uint64_t bytesPerPut);
/// basicProblem plus one per-rank count (`what`: "send" or "receive") per rank for the v-collectives.
std::string vCountsProblem(const CollectiveArgs& args, const char* what);

core::ProgramHeader baseHeader(const CollectiveArgs& args, const std::string& algorithm);
/// Empty, or why `nodeOfRank` is unusable for this rank count (wrong length, negative node id).
std::string nodeMapProblem(const CollectiveArgs& args);
/// Number of distinct nodes in args.nodeOfRank (1 when empty).
int numNodes(const CollectiveArgs& args);

/// Alpha-beta-gamma constants in microseconds and microseconds per byte.
struct LinkCost {
  double alpha = 0;  ///< per message step
  double beta = 0;   ///< per byte moved over one link
};
/// The link constants a flat algorithm over all ranks pays: inter-node ones when args.nodeOfRank spans
/// more than one node (a flat ring or tree is as slow as its slowest hop), intra-node ones otherwise.
LinkCost flatLinkCost(const CollectiveArgs& args, const CostModel& cm);
LinkCost intraLinkCost(const CostModel& cm);
LinkCost interLinkCost(const CostModel& cm);
/// Reduction cost per byte (microseconds).
double gammaUsPerByte(const CostModel& cm);
/// Local memory copy cost per byte (microseconds; a copy reads and writes).
double copyUsPerByte(const CostModel& cm);

// ---- stage description -----------------------------------------------------------------------------

/// A run of elements [offset, offset + count).
struct Segment {
  std::uint64_t offset = 0;
  std::uint64_t count = 0;
};
/// The data one group position owns in a ring stage: one or more segments (a hierarchical stage's
/// block is scattered over the buffer, one segment per node).
using Block = std::vector<Segment>;
/// The blocks of a stage, one per group position, described without an O(positions) copy per rank:
/// computed (even split, equal strided blocks) or built once per Program and shared by every rank's
/// generator (offsets, explicit lists). Copies are cheap.
class BlockList {
 public:
  BlockList() = default;
  /// `parts` near-equal single-segment blocks of `count` elements (partOffset/partSize).
  static BlockList even(std::uint64_t count, std::uint64_t parts);
  /// `parts` blocks of `count` elements back to back: block b = [b * count, (b + 1) * count).
  static BlockList strided(std::uint64_t count, std::uint64_t parts);
  /// Block b = [offsets[b], offsets[b + 1]) (offsets has one more entry than there are blocks).
  static BlockList fromOffsets(std::vector<std::uint64_t> offsets);
  /// Arbitrary (multi-segment) blocks.
  static BlockList fromBlocks(std::vector<Block> blocks);

  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::size_t numSegments(std::size_t b) const;
  [[nodiscard]] Segment segment(std::size_t b, std::size_t j) const;
  /// The most segments any block has.
  [[nodiscard]] std::size_t maxSegments() const;
  /// The largest count (elements) of segment j over the blocks that have one.
  [[nodiscard]] std::uint64_t maxSegmentCount(std::size_t j) const;
  /// The largest segment count of any block.
  [[nodiscard]] std::uint64_t maxSegmentCount() const;
  /// Elements of block b before its segment j (the offset of segment j in the compact layout).
  [[nodiscard]] std::uint64_t compactPrefix(std::size_t b, std::size_t j) const;
  /// Chunks of `chunkElems` that block b splits into (its segments chunked separately).
  [[nodiscard]] std::uint64_t chunks(std::size_t b, std::uint64_t chunkElems) const;
  /// The sum of chunks() over all blocks (closed form for computed lists).
  [[nodiscard]] std::uint64_t totalChunks(std::uint64_t chunkElems) const;

 private:
  enum class Kind : std::uint8_t { kEven, kStrided, kOffsets, kExplicit };
  struct Shared {
    std::vector<std::uint64_t> offsets;        ///< kOffsets
    std::vector<Block> blocks;                 ///< kExplicit
    std::vector<std::uint64_t> maxPerSegment;  ///< per segment index, over the blocks
    std::uint64_t maxCount = 0;
  };
  Kind kind_ = Kind::kEven;
  std::uint64_t count_ = 0;
  std::uint64_t parts_ = 0;
  std::shared_ptr<const Shared> shared_;
};

/// A buffer region: buffer and byte offset, the same on every rank of the group.
struct Region {
  core::BufferId buf = core::BufferId::kOutput;
  std::uint64_t offset = 0;
};

/// Where a stage runs and which resources it may use.
struct StageContext {
  /// Global ranks; stage position i is (*group)[i], shared by the group's generators. Null: the
  /// identity group 0..identitySize-1 (a flat algorithm over all ranks).
  std::shared_ptr<const std::vector<std::int32_t>> group;
  std::int32_t identitySize = 0;
  std::int32_t self = 0;          ///< the global rank being generated (a member of the group)
  std::int32_t semBase = 0;       ///< the stage uses semaphores [semBase, semBase + its count)
  std::uint64_t scratchBase = 0;  ///< and scratch bytes [scratchBase, scratchBase + its size)
  core::DataType dtype = core::DataType::kFloat32;
  core::ReduceOp op = core::ReduceOp::kSum;
  std::uint64_t chunkElems = 1;

  [[nodiscard]] int size() const;
  [[nodiscard]] std::int32_t member(int position) const;
  /// Position of `self` in the group (throws Error(kInternal) when absent: a bug of the caller).
  [[nodiscard]] int position() const;
  [[nodiscard]] std::uint64_t elemSize() const;
};

/// The (segment, chunk) rounds a ring stage walks through: round (j, c) moves chunk c of segment j of
/// every block (the pieces of shorter blocks may be empty; both ends of a link skip them alike). Holds
/// one entry per segment index, not per round.
class RingRounds {
 public:
  RingRounds(const BlockList& blocks, std::uint64_t chunkElems);
  [[nodiscard]] std::size_t size() const { return total_; }
  /// Piece of block `b` in round `k`: element offset and count (count 0 when empty).
  [[nodiscard]] Segment piece(const BlockList& blocks, std::size_t b, std::size_t k) const;
  /// Offset of that piece inside the block laid out compactly (segments back to back).
  [[nodiscard]] std::uint64_t compactOffset(const BlockList& blocks, std::size_t b, std::size_t k) const;

 private:
  struct Round {
    std::size_t segment;
    std::uint64_t chunk;
  };
  [[nodiscard]] Round round(std::size_t k) const;
  std::vector<std::size_t> firstRound_;  ///< per segment index: its first round (prefix sums of chunks)
  std::size_t total_ = 0;
  std::uint64_t chunkElems_;
};

/// Ring reduce-scatter over a group: position i ends with block i reduced over the group. Chunked and
/// pipelined; incoming pieces land in two scratch slots (double buffering) guarded by credits.
class RingReduceScatter {
 public:
  struct Spec {
    BlockList blocks;  ///< per position: the block it ends with
    Region src;        ///< contributions: segment (o, n) lives at src.offset + o * elemSize
    /// Where partial sums go before they are forwarded: over `partials` in the src layout (all-reduce:
    /// the output, which the all-gather overwrites later) or, when false, two scratch send slots.
    bool partialsInRegion = false;
    Region partials;
    Region result;               ///< the position's own block, finally reduced
    bool resultCompact = false;  ///< result segments back to back (true) or in the src layout (false)
    std::uint32_t divisor = 0;   ///< divisor of the final reduction (kAvg finish), 0 for none
    /// In place (reduce-scatter: output == input + own block): the src segment `srcAlias` is read from
    /// `srcAliasRegion` (compact) instead, so the Program names the shared bytes one way only. It must be
    /// a whole segment of the position's own block, which the ring reads only in its final reduction.
    bool hasSrcAlias = false;
    Segment srcAlias;
    Region srcAliasRegion;
  };
  static constexpr int kSemaphores = 2;
  static std::uint64_t scratchBytes(const Spec& spec, std::uint64_t chunkElems, std::uint64_t elemSize);

  RingReduceScatter(StageContext ctx, Spec spec);
  [[nodiscard]] std::size_t rounds() const { return rounds_.size(); }
  /// The ops of round k (rounds in order; the emitter must outlive the stream).
  core::OpStream round(std::size_t k);
  /// Every round.
  core::OpStream all();

 private:
  [[nodiscard]] core::Addr recvSlot(std::int32_t rank, std::uint64_t seq) const;
  [[nodiscard]] core::Addr sendSlot(std::uint64_t seq) const;
  [[nodiscard]] core::Addr at(const Region& r, std::uint64_t elem) const;
  [[nodiscard]] core::Addr srcAt(std::uint64_t elem) const;
  [[nodiscard]] core::Addr resultAddr(std::size_t k, const Segment& piece) const;

  StageContext ctx_;
  Spec spec_;
  RingRounds rounds_;
  int m_ = 1;
  int pos_ = 0;
  std::int32_t next_ = 0, prev_ = 0;
  std::uint64_t es_ = 1;
  std::uint64_t slotBytes_ = 0;
  std::uint64_t totalRecv_ = 0;
  std::uint64_t seqSend_ = 0, seqRecv_ = 0;
};

/// Ring all-gather over a group: every position ends with every block, written straight into the
/// peers' `buf` at the blocks' final places (no scratch).
class RingAllGather {
 public:
  struct Spec {
    BlockList blocks;         ///< per position: the block it contributes
    Region buf;               ///< where every block lives on every rank
    Region ownSrc;            ///< where this rank's own block is read from for its first send
    bool ownCompact = false;  ///< own block compact at ownSrc (true) or in the buf layout (false)
  };
  static constexpr int kSemaphores = 1;

  RingAllGather(StageContext ctx, Spec spec);
  [[nodiscard]] std::size_t rounds() const { return rounds_.size(); }
  /// The ops of round k (rounds in order; the emitter must outlive the stream).
  core::OpStream round(std::size_t k);
  /// Every round.
  core::OpStream all();

 private:
  StageContext ctx_;
  Spec spec_;
  RingRounds rounds_;
  int m_ = 1;
  int pos_ = 0;
  std::int32_t next_ = 0;
  std::uint64_t es_ = 1;
  std::uint64_t seqRecv_ = 0;
};

/// Ring all-reduce over a group: ring reduce-scatter then ring all-gather, interleaved per chunk round
/// (the all-gather of a chunk starts as soon as its reduction is done). `src` and `dst` may be the same
/// region (in place).
class RingAllReduce {
 public:
  struct Spec {
    std::uint64_t count = 0;
    Region src;
    Region dst;
    std::uint32_t divisor = 0;
  };
  static constexpr int kSemaphores = RingReduceScatter::kSemaphores + RingAllGather::kSemaphores;
  static std::uint64_t scratchBytes(std::uint64_t count, int groupSize, std::uint64_t chunkElems,
                                    std::uint64_t elemSize);
  /// This rank's whole stage.
  static core::OpStream stream(StageContext ctx, Spec spec);
};

/// Rabenseifner all-reduce over a group: recursive-halving reduce-scatter then recursive-doubling
/// all-gather among the largest power of two p' <= m positions; the m - p' extra positions first fold
/// their data into a partner (position 2i into 2i + 1 for i < m - p') and get the result back at the
/// end. `src` and `dst` may be the same region.
class RhdAllReduce {
 public:
  struct Spec {
    std::uint64_t count = 0;
    Region src;
    Region dst;
    std::uint32_t divisor = 0;
  };
  static int numSemaphores(int groupSize);
  static std::uint64_t scratchBytes(std::uint64_t count, int groupSize, std::uint64_t elemSize);
  /// This rank's whole stage.
  static core::OpStream stream(StageContext ctx, Spec spec);
};

/// Puts [src, src + bytes) to `peer` at `dst` in chunks of at most `chunkBytes`, each carrying +1 on
/// `sem` of the peer (sem < 0: no signal); chunkedPutCount(bytes, chunkBytes) puts.
core::OpStream chunkedPuts(std::int32_t peer, core::Addr dst, core::Addr src, std::uint64_t bytes,
                           std::uint64_t chunkBytes, std::int32_t sem);
/// The same into lane `lane` of `out`. Returns the number of puts (what the peer waits for).
std::uint64_t emitChunkedPut(core::RankProgram& out, int lane, std::int32_t peer, core::Addr dst, core::Addr src,
                             std::uint64_t bytes, std::uint64_t chunkBytes, std::int32_t sem);
/// The number of puts emitChunkedPut makes for `bytes`.
inline std::uint64_t chunkedPutCount(std::uint64_t bytes, std::uint64_t chunkBytes) {
  return ceilDiv(bytes, chunkBytes);
}

}  // namespace copro::collectives::detail
