#pragma once
/// The flat op encoding: a rank's Program as arrays of trivially copyable records.
///
/// `core::Op` carries two `std::vector`s (the sources of a reduce, the targets of a multicast), so an
/// executor cannot hold ops without allocating and device code cannot read them at all. A `FlatOp` is
/// the same op as a fixed-size record whose variable parts live in side arrays of its rank program
/// (`FlatRankProgram::addrs` for reduce sources, `FlatRankProgram::ranks` for multicast targets), named by
/// index and count. Views (`FlatLaneView`, `FlatOpView`) are plain pointers that can be copied to a
/// device; `copro/core/flat_interpreter.hpp` gives every op its meaning over them. `flatten` and
/// `unflatten` convert from and to `RankProgram` losslessly; `viewOf` lends a flat view of one `core::Op`
/// without copying its vectors.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "copro/core/host_device.hpp"
#include "copro/core/program.hpp"

namespace copro::core {

/// One op as a record. Fields mean what `Op`'s fields of the same names mean; `firstSrc`/`numSrcs`
/// name a reduce's sources in the side array of addresses, `firstRank`/`numRanks` a multicast's
/// targets in the side array of ranks (both 0 for other ops).
struct FlatOp {
  OpCode code = OpCode::kFlush;
  DataType dtype = DataType::kUint8;
  ReduceOp redop = ReduceOp::kSum;
  Protocol protocol = Protocol::kSimple;
  std::int32_t peer = kSelf;
  Addr dst{};
  Addr src{};
  std::uint64_t bytes = 0;
  std::uint64_t value = 0;
  std::int32_t sem = -1;
  std::uint32_t divisor = 0;
  Indirect indirect{};
  std::uint32_t firstSrc = 0;
  std::uint32_t numSrcs = 0;
  std::uint32_t firstRank = 0;
  std::uint32_t numRanks = 0;
};

static_assert(std::is_trivially_copyable_v<Addr>, "flat side arrays copy addresses as bytes");
static_assert(std::is_trivially_copyable_v<Indirect>, "flat records copy indirect fields as bytes");
static_assert(std::is_trivially_copyable_v<FlatOp>, "flat ops must be copyable as bytes (to a device, a ring)");
static_assert(std::is_standard_layout_v<FlatOp>, "flat ops must have one layout for host and device compilers");

/// One op with its side arrays resolved: what an interpreter reads.
struct FlatOpView {
  const FlatOp* rec = nullptr;
  const Addr* srcs = nullptr;           ///< rec->numSrcs entries
  const std::int32_t* ranks = nullptr;  ///< rec->numRanks entries
};
static_assert(std::is_trivially_copyable_v<FlatOpView>);

/// One lane of a flat rank program, as pointers (valid while the owning FlatRankProgram lives).
struct FlatLaneView {
  const FlatOp* ops = nullptr;
  std::uint32_t numOps = 0;
  const Addr* addrs = nullptr;          ///< the rank program's side array of addresses
  const std::int32_t* ranks = nullptr;  ///< the rank program's side array of ranks
  Initiation initiation = Initiation::kDevice;

  [[nodiscard]] COPRO_HD FlatOpView op(std::uint32_t i) const {
    const FlatOp* r = ops + i;
    return FlatOpView{r, addrs + r->firstSrc, ranks + r->firstRank};
  }
};
static_assert(std::is_trivially_copyable_v<FlatLaneView>);

/// A lane's place in the op array.
struct FlatLane {
  Initiation initiation = Initiation::kDevice;
  std::uint32_t firstOp = 0;
  std::uint32_t numOps = 0;
};
static_assert(std::is_trivially_copyable_v<FlatLane>);

/// The ops of one rank, flat: the lanes' ops one after another, and the two side arrays.
struct FlatRankProgram {
  std::vector<FlatLane> lanes;
  std::vector<FlatOp> ops;
  std::vector<Addr> addrs;
  std::vector<std::int32_t> ranks;

  [[nodiscard]] FlatLaneView lane(std::size_t i) const {
    const FlatLane& l = lanes[i];
    return FlatLaneView{ops.data() + l.firstOp, l.numOps, addrs.data(), ranks.data(), l.initiation};
  }
};

/// The record of `op` with empty side references (a reduce's sources and a multicast's targets are not
/// copied: `flatten` and `viewOf` place them).
FlatOp flatRecord(const Op& op);
/// `op` as a flat view that borrows its vectors; `storage` holds the record and must outlive the view.
FlatOpView viewOf(const Op& op, FlatOp& storage);
/// The flat form of a rank program (throws copro::Error when a lane or side array exceeds 2^32 entries).
FlatRankProgram flatten(const RankProgram& rp);
/// Back to the vector form: `unflatten(flatten(rp)) == rp`.
RankProgram unflatten(const FlatRankProgram& flat);
/// The op of a flat view as an `Op` (allocates; for messages, tests and tools).
Op toOp(const FlatOpView& op);

}  // namespace copro::core
