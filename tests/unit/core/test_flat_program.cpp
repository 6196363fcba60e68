// Tests of the flat op encoding (flat_program.hpp) and the flat interpreter (flat_interpreter.hpp):
// lossless conversion, side arrays, geometry of indirect ops and dispatch on every op code.
#include <gtest/gtest.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "copro/core/flat_interpreter.hpp"
#include "copro/core/flat_program.hpp"
#include "copro/core/status.hpp"
#include "program_fixtures.hpp"

namespace copro::core {
namespace {

using fixtures::on;
using fixtures::ringAllReduce;
using fixtures::self;

static_assert(std::is_trivially_copyable_v<FlatOp>);
static_assert(std::is_trivially_copyable_v<FlatLaneView>);

RankProgram mixedRank() {
  RankProgram rp;
  rp.addLane(Initiation::kProxy);
  rp.emit(0, Op::put(1, on(1, BufferId::kScratch, 64), self(BufferId::kInput, 8), 32, 2, 3));
  rp.emit(0, Op::reduce(self(BufferId::kOutput), {self(BufferId::kInput), on(2, BufferId::kScratch, 16)}, 4,
                        DataType::kFloat32, ReduceOp::kAvg, 2));
  rp.emit(0, Op::wait(1, 5));
  rp.addLane(Initiation::kDevice);
  rp.emit(1, Op::multicast({0, 2, 3}, self(BufferId::kOutput, 4), self(BufferId::kInput), 12, 0, 1));
  Op get = Op::get(3, self(BufferId::kOutput), on(3, BufferId::kInput), 8);
  get.indirect = Indirect{0, 1, kNoSlot, 4};
  rp.emit(1, get);
  rp.emit(1, Op::flush());
  rp.addLane(Initiation::kOffload);  // an empty lane
  return rp;
}

TEST(FlatProgram, RoundTripsEveryField) {
  const RankProgram rp = mixedRank();
  const FlatRankProgram flat = flatten(rp);
  ASSERT_EQ(flat.lanes.size(), 3U);
  EXPECT_EQ(flat.ops.size(), 6U);
  EXPECT_EQ(flat.addrs.size(), 2U);  // the reduce's sources
  EXPECT_EQ(flat.ranks.size(), 3U);  // the multicast's targets
  EXPECT_EQ(unflatten(flat), rp);
}

TEST(FlatProgram, SideArraysAreNamedByIndex) {
  const FlatRankProgram flat = flatten(mixedRank());
  const FlatLaneView lane0 = flat.lane(0);
  EXPECT_EQ(lane0.initiation, Initiation::kProxy);
  const FlatOpView red = lane0.op(1);
  ASSERT_EQ(red.rec->code, OpCode::kReduce);
  ASSERT_EQ(red.rec->numSrcs, 2U);
  EXPECT_EQ(red.srcs[1], on(2, BufferId::kScratch, 16));
  const FlatLaneView lane1 = flat.lane(1);
  EXPECT_EQ(lane1.numOps, 3U);
  const FlatOpView mc = lane1.op(0);
  ASSERT_EQ(mc.rec->numRanks, 3U);
  EXPECT_EQ(mc.ranks[0], 0);
  EXPECT_EQ(mc.ranks[2], 3);
  EXPECT_EQ(flat.lane(2).numOps, 0U);
}

TEST(FlatProgram, RecordsCopyAsBytes) {
  const FlatRankProgram flat = flatten(mixedRank());
  std::vector<FlatOp> copy(flat.ops.size());
  std::memcpy(copy.data(), flat.ops.data(), flat.ops.size() * sizeof(FlatOp));
  FlatLaneView lane = flat.lane(0);
  lane.ops = copy.data();
  EXPECT_EQ(toOp(lane.op(1)), mixedRank().lanes[0].ops[1]);
}

TEST(FlatProgram, ViewOfBorrowsVectors) {
  const Op op = Op::multicast({4, 5}, self(BufferId::kOutput), self(BufferId::kInput), 16);
  FlatOp storage;
  const FlatOpView v = viewOf(op, storage);
  EXPECT_EQ(v.rec, &storage);
  EXPECT_EQ(v.ranks, op.ranks.data());
  EXPECT_EQ(v.rec->numRanks, 2U);
  EXPECT_EQ(toOp(v), op);
}

TEST(FlatProgram, MaterializedProgramsRoundTrip) {
  const Program p = ringAllReduce(4, 1000);
  for (std::int32_t r = 0; r < 4; ++r) EXPECT_EQ(unflatten(flatten(p.rank(r))), p.rank(r)) << "rank " << r;
}

TEST(FlatInterpreter, GeometryOfDirectOps) {
  FlatOp op = flatRecord(Op::put(1, on(1, BufferId::kOutput), self(BufferId::kInput), 40));
  const OpGeometry g = resolveGeometry(op, nullptr, 0);
  EXPECT_EQ(g.fault, GeometryFault::kNone);
  EXPECT_EQ(g.bytes, 40U);
  EXPECT_EQ(g.srcShift, 0U);
  EXPECT_EQ(g.dstShift, 0U);
}

TEST(FlatInterpreter, GeometryReadsLayoutWordsTimesScale) {
  FlatOp op = flatRecord(Op::put(1, on(1, BufferId::kOutput), self(BufferId::kInput), 0));
  op.indirect = Indirect{2, 0, 1, 8};
  const std::uint64_t layout[] = {3, 5, 7};
  const OpGeometry g = resolveGeometry(op, layout, 3);
  EXPECT_EQ(g.fault, GeometryFault::kNone);
  EXPECT_EQ(g.bytes, 56U);
  EXPECT_EQ(g.srcShift, 24U);
  EXPECT_EQ(g.dstShift, 40U);
}

TEST(FlatInterpreter, GeometryFaults) {
  FlatOp op = flatRecord(Op::put(1, on(1, BufferId::kOutput), self(BufferId::kInput), 0));
  op.indirect = Indirect{kNoSlot, 4, kNoSlot, 1};
  const std::uint64_t layout[] = {1, 2};
  OpGeometry g = resolveGeometry(op, layout, 2);
  EXPECT_EQ(g.fault, GeometryFault::kSlotOutsideLayout);
  EXPECT_EQ(g.field, GeometryField::kSrcOffset);
  EXPECT_EQ(g.slot, 4);
  const std::uint64_t huge[] = {UINT64_MAX / 2};
  op.indirect = Indirect{0, kNoSlot, kNoSlot, 4};
  g = resolveGeometry(op, huge, 1);
  EXPECT_EQ(g.fault, GeometryFault::kScaleOverflow);
  EXPECT_EQ(g.field, GeometryField::kBytes);
  EXPECT_EQ(g.word, UINT64_MAX / 2);
  std::uint64_t out = 0;
  EXPECT_TRUE(shiftOffset(10, 5, out));
  EXPECT_EQ(out, 15U);
  EXPECT_FALSE(shiftOffset(UINT64_MAX, 1, out));
  EXPECT_TRUE(waitSatisfied(12, 10, 2));
  EXPECT_FALSE(waitSatisfied(11, 10, 2));
}

/// Records which member each op reached, and the geometry it got.
struct RecordingPort {
  std::vector<OpCode> seen;
  OpGeometry last;
  int unknown = 0;
  int badGeometryCalls = 0;
  OpStep hit(const FlatOpView& op, const OpGeometry& g) {
    seen.push_back(op.rec->code);
    last = g;
    return op.rec->code == OpCode::kWait ? OpStep::kBlocked : OpStep::kDone;
  }
  OpStep put(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep get(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep signal(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep wait(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep reduce(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep putReduce(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep multicast(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep copy(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep flush(const FlatOpView& op, const OpGeometry& g) { return hit(op, g); }
  OpStep unknownOp(const FlatOpView&) {
    ++unknown;
    return OpStep::kFailed;
  }
  OpStep badGeometry(const FlatOpView&, const OpGeometry&) {
    ++badGeometryCalls;
    return OpStep::kFailed;
  }
};

TEST(FlatInterpreter, DispatchesEveryCode) {
  const FlatRankProgram flat = flatten(mixedRank());
  RecordingPort port;
  const std::uint64_t layout[] = {2, 3};
  for (std::size_t l = 0; l < flat.lanes.size(); ++l) {
    const FlatLaneView lane = flat.lane(l);
    for (std::uint32_t i = 0; i < lane.numOps; ++i) {
      const OpStep s = interpretOp(port, lane.op(i), layout, 2);
      EXPECT_EQ(s, lane.op(i).rec->code == OpCode::kWait ? OpStep::kBlocked : OpStep::kDone);
    }
  }
  const std::vector<OpCode> want = {OpCode::kPut,       OpCode::kReduce, OpCode::kWait,
                                    OpCode::kMulticast, OpCode::kGet,    OpCode::kFlush};
  EXPECT_EQ(port.seen, want);
  EXPECT_EQ(port.last.bytes, 0U);  // the flush resolves no geometry
  EXPECT_EQ(port.unknown, 0);
}

TEST(FlatInterpreter, IndirectGeometryReachesThePort) {
  const FlatRankProgram flat = flatten(mixedRank());
  RecordingPort port;
  const std::uint64_t layout[] = {2, 3};
  EXPECT_EQ(interpretOp(port, flat.lane(1).op(1), layout, 2), OpStep::kDone);
  EXPECT_EQ(port.last.bytes, 8U);      // layout[0] * 4
  EXPECT_EQ(port.last.srcShift, 12U);  // layout[1] * 4
  EXPECT_EQ(interpretOp(port, flat.lane(1).op(1), layout, 1), OpStep::kFailed);
  EXPECT_EQ(port.badGeometryCalls, 1);
}

TEST(FlatInterpreter, UnknownCodesFail) {
  FlatOp rec = flatRecord(Op::flush());
  std::uint8_t code = 200;
  std::memcpy(&rec.code, &code, 1);
  RecordingPort port;
  EXPECT_EQ(interpretOp(port, FlatOpView{&rec, nullptr, nullptr}, nullptr, 0), OpStep::kFailed);
  EXPECT_EQ(port.unknown, 1);
  EXPECT_TRUE(port.seen.empty());
}

}  // namespace
}  // namespace copro::core
