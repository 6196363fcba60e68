// assignInitiation (docs/initiation.md): a lane that issues any op to a rank on another node gets the
// scale-out mode, the others the scale-up mode; the wrapper answers lazily (no materialization), keeps
// the ops, returns the source itself when nothing changes, and is what buildProgram() hands out.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/collectives/transform.hpp"
#include "copro/core/generator.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {
namespace {

using core::Addr;
using core::BufferId;
using core::Initiation;
using core::Op;

constexpr Initiation kDev = Initiation::kDevice;
constexpr Initiation kProxy = Initiation::kProxy;
constexpr Initiation kOff = Initiation::kOffload;

Addr at(std::int32_t rank, BufferId b, std::uint64_t off = 0) {
  return Addr{rank, b, off};
}
Addr mine(BufferId b, std::uint64_t off = 0) {
  return Addr{core::kSelf, b, off};
}

/// Four ranks on nodes {0,0,1,1}; rank 0 has one lane per kind of op, each reaching rank 1 (same node)
/// or rank 2/3 (the other node). Other ranks have one empty lane.
std::shared_ptr<const core::Program> onePerOpKind() {
  core::ProgramHeader h;
  h.name = "test.kinds";
  h.nranks = 4;
  h.numSemaphores = 1;
  h.inputBytes.assign(4, 64);
  h.outputBytes.assign(4, 64);
  std::vector<core::RankProgram> ranks(4);
  core::RankProgram& r0 = ranks[0];
  r0.emit(0, Op::put(1, at(1, BufferId::kOutput), mine(BufferId::kInput), 8, 0));  // up
  r0.emit(1, Op::put(2, at(2, BufferId::kOutput), mine(BufferId::kInput), 8, 0));  // out
  r0.emit(2, Op::wait(0, 1));                                                      // up
  r0.emit(2, Op::copy(mine(BufferId::kOutput), mine(BufferId::kInput), 8));        //
  r0.emit(3, Op::reduce(mine(BufferId::kOutput), {mine(BufferId::kInput), at(3, BufferId::kInput)}, 2,
                        core::DataType::kFloat32, core::ReduceOp::kSum));                 // out
  r0.emit(4, Op::multicast({1, 3}, mine(BufferId::kOutput), mine(BufferId::kInput), 8));  // out
  r0.emit(5, Op::signal(2, 0));                                                           // out
  r0.emit(6, Op::get(1, mine(BufferId::kOutput), at(1, BufferId::kInput), 8));            // up
  r0.emit(7, Op::get(3, mine(BufferId::kOutput), at(3, BufferId::kInput), 8));            // out
  r0.emit(8, Op::putReduce(2, at(2, BufferId::kOutput), mine(BufferId::kInput), 2, core::DataType::kFloat32,
                           core::ReduceOp::kSum));                                      // out
  r0.emit(9, Op::copy(at(1, BufferId::kOutput), mine(BufferId::kInput), 8));            // up
  r0.emit(10, Op::copy(mine(BufferId::kOutput), at(2, BufferId::kInput), 8));           // out
  r0.emit(11, Op::multicast({1}, mine(BufferId::kOutput), mine(BufferId::kInput), 8));  // up
  // The remote op comes last: the whole lane is scale-out.
  r0.emit(12, Op::put(1, at(1, BufferId::kOutput), mine(BufferId::kInput), 8));
  r0.emit(12, Op::flush());
  r0.emit(12, Op::signal(3, 0));  // out
  for (int r = 1; r < 4; ++r) ranks[static_cast<std::size_t>(r)].addLane();
  return std::make_shared<core::Program>(h, std::move(ranks));
}

const std::vector<Initiation> kExpectRank0 = {kDev,   kProxy, kDev, kProxy, kProxy, kProxy, kDev,
                                              kProxy, kProxy, kDev, kProxy, kDev,   kProxy};

TEST(AssignInitiation, RemoteLanesGetScaleOutOthersScaleUp) {
  auto prog = onePerOpKind();
  auto out = assignInitiation(prog, {0, 0, 1, 1}, kDev, kProxy);
  ASSERT_NE(out.get(), prog.get());
  ASSERT_EQ(out->numLanes(0), static_cast<int>(kExpectRank0.size()));
  for (int l = 0; l < out->numLanes(0); ++l) {
    EXPECT_EQ(out->laneInitiation(0, l), kExpectRank0[static_cast<std::size_t>(l)]) << "lane " << l;
  }
  // The materialized rank carries the same modes and the same ops.
  const core::RankProgram& rp = out->rank(0);
  ASSERT_EQ(rp.lanes.size(), kExpectRank0.size());
  for (std::size_t l = 0; l < rp.lanes.size(); ++l) {
    EXPECT_EQ(rp.lanes[l].initiation, kExpectRank0[l]) << "lane " << l;
    EXPECT_EQ(rp.lanes[l].ops, prog->rank(0).lanes[l].ops) << "lane " << l;
  }
  EXPECT_EQ(out->header(), prog->header());
  // Rank 1's empty lane reaches nobody.
  EXPECT_EQ(out->laneInitiation(1, 0), kDev);
  EXPECT_EQ(out->rank(1).lanes.at(0).initiation, kDev);
}

TEST(AssignInitiation, ModesAreSwappedWhenScaleUpIsProxy) {
  auto prog = onePerOpKind();
  auto out = assignInitiation(prog, {0, 0, 1, 1}, kProxy, kOff);
  for (int l = 0; l < out->numLanes(0); ++l) {
    const Initiation want = kExpectRank0[static_cast<std::size_t>(l)] == kDev ? kProxy : kOff;
    EXPECT_EQ(out->laneInitiation(0, l), want) << "lane " << l;
    EXPECT_EQ(out->rank(0).lanes[static_cast<std::size_t>(l)].initiation, want) << "lane " << l;
  }
}

TEST(AssignInitiation, SameNodeRanksOfAnotherGroupingAreLocal) {
  // Nodes {0,1,0,1}: rank 2 shares rank 0's node, ranks 1 and 3 do not.
  auto out = assignInitiation(onePerOpKind(), {0, 1, 0, 1}, kDev, kProxy);
  EXPECT_EQ(out->laneInitiation(0, 0), kProxy);  // put to 1
  EXPECT_EQ(out->laneInitiation(0, 1), kDev);    // put to 2
  EXPECT_EQ(out->laneInitiation(0, 5), kDev);    // signal to 2
  EXPECT_EQ(out->laneInitiation(0, 2), kDev);    // wait + local copy
}

TEST(AssignInitiation, ReturnsTheSourceWhenNothingChanges) {
  auto prog = onePerOpKind();
  // One node (or no map), device everywhere: the algorithms' lanes are device already.
  EXPECT_EQ(assignInitiation(prog, {}, kDev, kProxy).get(), prog.get());
  EXPECT_EQ(assignInitiation(prog, {0, 0, 0, 0}, kDev, kOff).get(), prog.get());
  EXPECT_EQ(assignInitiation(prog, {0, 0, 1, 1}, kDev, kDev).get(), prog.get());
  // One node, proxy: every lane proxy, none scanned.
  auto all = assignInitiation(prog, {0, 0, 0, 0}, kProxy, kDev);
  ASSERT_NE(all.get(), prog.get());
  for (int l = 0; l < all->numLanes(0); ++l) EXPECT_EQ(all->laneInitiation(0, l), kProxy) << "lane " << l;
  EXPECT_EQ(all->rank(2).lanes.at(0).initiation, kProxy);
  // Same mode on both scales: uniform too, whatever the map.
  auto same = assignInitiation(prog, {0, 0, 1, 1}, kOff, kOff);
  for (int l = 0; l < same->numLanes(0); ++l) EXPECT_EQ(same->laneInitiation(0, l), kOff) << "lane " << l;
}

TEST(AssignInitiation, OutOfRangeRankAndLaneThrow) {
  auto out = assignInitiation(onePerOpKind(), {0, 0, 1, 1}, kDev, kProxy);
  EXPECT_THROW((void)out->laneInitiation(4, 0), core::Error);
  EXPECT_THROW((void)out->laneInitiation(0, 13), core::Error);
  EXPECT_THROW((void)out->rank(-1), core::Error);
}

TEST(AssignInitiation, AnswersLaneModesWithoutMaterializingStreams) {
  // A streamed Program of 64 ranks on 8 nodes: lane 0 puts to the next rank (crossing nodes at node
  // boundaries), lane 1 only waits.
  const int n = 64;
  core::ProgramHeader h;
  h.name = "test.stream";
  h.nranks = n;
  h.numSemaphores = 1;
  h.inputBytes.assign(n, 8);
  h.outputBytes.assign(n, 8);
  auto stream = std::make_shared<core::StreamProgram>(h, 2, [n](std::int32_t r, int lane) -> core::OpStream {
    if (lane == 0) {
      const std::int32_t next = (r + 1) % n;
      co_yield Op::put(next, at(next, BufferId::kOutput), mine(BufferId::kInput), 8, 0);
    } else {
      co_yield Op::wait(0, 1);
    }
  });
  std::vector<int> nodes(n);
  for (int r = 0; r < n; ++r) nodes[static_cast<std::size_t>(r)] = r / 8;
  auto out = assignInitiation(stream, nodes, kDev, kProxy);
  // Ask from several threads at once: the cached answer is computed once and consistent.
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < n; ++r) {
        const Initiation want0 = (r % 8 == 7) ? kProxy : kDev;
        if (out->laneInitiation(r, 0) != want0 || out->laneInitiation(r, 1) != kDev) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(stream->materializedRanks(), 0U);
  EXPECT_EQ(out->rank(7).lanes.at(0).initiation, kProxy);
  EXPECT_EQ(stream->materializedRanks(), 1U);
}

/// Whether a lane of `rank` reaches another node (an independent, simpler statement of the rule for the
/// ops real algorithms emit: a peer, a multicast target or a reduce/copy address on another node).
bool reachesOtherNode(const core::RankProgram::Lane& lane, int rank, const std::vector<int>& nodes) {
  const auto far = [&](std::int32_t q) {
    return q != core::kSelf && nodes[static_cast<std::size_t>(q)] != nodes[static_cast<std::size_t>(rank)];
  };
  for (const Op& op : lane.ops) {
    if (op.code == core::OpCode::kWait || op.code == core::OpCode::kFlush) continue;
    if (op.code != core::OpCode::kReduce && op.code != core::OpCode::kCopy && op.code != core::OpCode::kMulticast &&
        far(op.peer)) {
      return true;
    }
    for (std::int32_t q : op.ranks) {
      if (far(q)) return true;
    }
    for (const Addr& a : op.srcs) {
      if (far(a.rank)) return true;
    }
    if (far(op.dst.rank) || far(op.src.rank)) return true;
  }
  return false;
}

TEST(AssignInitiation, BuildProgramAssignsModesToRealAlgorithms) {
  struct Case {
    CollectiveKind kind;
    const char* algo;
  };
  const std::vector<int> nodes = {0, 0, 0, 1, 1, 1};
  for (const Case& c : {Case{CollectiveKind::kAllReduce, "ring"}, Case{CollectiveKind::kAllReduce, "hier"},
                        Case{CollectiveKind::kAllToAll, "pairwise"}, Case{CollectiveKind::kAllGather, "ring"}}) {
    SCOPED_TRACE(std::string(collectiveName(c.kind)) + " " + c.algo);
    CollectiveArgs a;
    a.kind = c.kind;
    a.nranks = 6;
    a.count = 96;
    a.nodeOfRank = nodes;
    a.scaleUpInitiation = kDev;
    a.scaleOutInitiation = kProxy;
    auto prog = buildProgram(a, c.algo);
    int proxyLanes = 0;
    int deviceLanes = 0;
    for (int r = 0; r < 6; ++r) {
      const core::RankProgram& rp = prog->rank(r);
      for (int l = 0; l < static_cast<int>(rp.lanes.size()); ++l) {
        const auto& lane = rp.lanes[static_cast<std::size_t>(l)];
        const Initiation want = reachesOtherNode(lane, r, nodes) ? kProxy : kDev;
        EXPECT_EQ(lane.initiation, want) << "rank " << r << " lane " << l;
        EXPECT_EQ(prog->laneInitiation(r, l), want) << "rank " << r << " lane " << l;
        (want == kProxy ? proxyLanes : deviceLanes) += lane.ops.empty() ? 0 : 1;
      }
    }
    EXPECT_GT(proxyLanes, 0);
    // Ring lanes stay inside a node except at node boundaries. Pairwise and hier lanes (hier composes its
    // intra- and inter-node phases in one lane per rank) all reach the other node.
    if (std::string(c.algo) == "ring") {
      EXPECT_GT(deviceLanes, 0);
    }
  }
}

}  // namespace
}  // namespace copro::collectives
