/// Conversions between the vector form of a rank program (`RankProgram`, `Op`) and the flat form
/// (`FlatRankProgram`, `FlatOp`): records are copied field by field, reduce sources and multicast
/// targets are appended to the side arrays and named by index and count.
#include "copro/core/flat_program.hpp"

#include <limits>
#include <string>

#include "copro/core/status.hpp"

namespace copro::core {

namespace {

std::uint32_t checkedIndex(std::size_t n, const char* what) {
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(ErrorCode::kInvalidProgram,
                std::string("flat program: ") + what + " has " + std::to_string(n) + " entries (at most 2^32 - 1)");
  }
  return static_cast<std::uint32_t>(n);
}

}  // namespace

FlatOp flatRecord(const Op& op) {
  FlatOp f;
  f.code = op.code;
  f.dtype = op.dtype;
  f.redop = op.redop;
  f.peer = op.peer;
  f.dst = op.dst;
  f.src = op.src;
  f.bytes = op.bytes;
  f.value = op.value;
  f.sem = op.sem;
  f.divisor = op.divisor;
  f.indirect = op.indirect;
  f.protocol = op.protocol;
  return f;
}

FlatOpView viewOf(const Op& op, FlatOp& storage) {
  storage = flatRecord(op);
  storage.numSrcs = static_cast<std::uint32_t>(op.srcs.size());
  storage.numRanks = static_cast<std::uint32_t>(op.ranks.size());
  return FlatOpView{&storage, op.srcs.data(), op.ranks.data()};
}

FlatRankProgram flatten(const RankProgram& rp) {
  FlatRankProgram out;
  out.lanes.reserve(rp.lanes.size());
  out.ops.reserve(rp.numOps());
  for (const RankProgram::Lane& lane : rp.lanes) {
    FlatLane fl;
    fl.initiation = lane.initiation;
    fl.firstOp = checkedIndex(out.ops.size(), "the op array");
    fl.numOps = checkedIndex(lane.ops.size(), "a lane");
    for (const Op& op : lane.ops) {
      FlatOp f = flatRecord(op);
      f.firstSrc = checkedIndex(out.addrs.size(), "the address array");
      f.numSrcs = checkedIndex(op.srcs.size(), "a reduce's sources");
      f.firstRank = checkedIndex(out.ranks.size(), "the rank array");
      f.numRanks = checkedIndex(op.ranks.size(), "a multicast's targets");
      out.addrs.insert(out.addrs.end(), op.srcs.begin(), op.srcs.end());
      out.ranks.insert(out.ranks.end(), op.ranks.begin(), op.ranks.end());
      out.ops.push_back(f);
    }
    checkedIndex(out.ops.size(), "the op array");
    out.lanes.push_back(fl);
  }
  return out;
}

Op toOp(const FlatOpView& view) {
  const FlatOp& f = *view.rec;
  Op op;
  op.code = f.code;
  op.dtype = f.dtype;
  op.redop = f.redop;
  op.peer = f.peer;
  op.dst = f.dst;
  op.src = f.src;
  op.bytes = f.bytes;
  op.value = f.value;
  op.sem = f.sem;
  op.divisor = f.divisor;
  op.indirect = f.indirect;
  op.protocol = f.protocol;
  op.srcs.assign(view.srcs, view.srcs + f.numSrcs);
  op.ranks.assign(view.ranks, view.ranks + f.numRanks);
  return op;
}

RankProgram unflatten(const FlatRankProgram& flat) {
  RankProgram rp;
  rp.lanes.resize(flat.lanes.size());
  for (std::size_t i = 0; i < flat.lanes.size(); ++i) {
    const FlatLaneView lane = flat.lane(i);
    rp.lanes[i].initiation = lane.initiation;
    rp.lanes[i].ops.reserve(lane.numOps);
    for (std::uint32_t k = 0; k < lane.numOps; ++k) rp.lanes[i].ops.push_back(toOp(lane.op(k)));
  }
  return rp;
}

}  // namespace copro::core
