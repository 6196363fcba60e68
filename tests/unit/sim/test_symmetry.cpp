/// Rank folding (docs/simulator.md, "Symmetry"): a Program with a declared rotation symmetry on a fabric
/// whose routes follow it is simulated one rank per class, with the full run's results; anything that
/// breaks the symmetry (ECMP, a fabric whose shifted routes differ, unequal blocks, a trace) runs every
/// rank. Each case compares the run against RunOptions::symmetry = false. The 1024- and 4096-rank rings
/// are in tests/full.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "copro/sim/communicator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using collectives::CollectiveKind;

CollectiveCall call(CollectiveKind kind, const char* algorithm, std::uint64_t bytes) {
  CollectiveCall c;
  c.kind = kind;
  c.algorithm = algorithm;
  c.size = bytes;
  return c;
}

/// Runs `c` folded (when possible) and with every rank; returns the folded result after comparing the two.
Result runBoth(const topo::Fabric& f, const CollectiveCall& c, std::optional<SimParams> params = {}) {
  CommunicatorOptions options;
  options.params = std::move(params);
  Communicator comm(f, options);
  const PreparedCall prepared = comm.prepare(c);
  RunOptions full;
  full.symmetry = false;
  const Result a = comm.run(*prepared.program);
  const Result b = comm.run(*prepared.program, full);
  EXPECT_EQ(b.symmetryMultiplicity, 1);
  EXPECT_EQ(a.time, b.time);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.flows, b.flows);
  EXPECT_EQ(a.ops, b.ops);
  EXPECT_EQ(a.bytesPut, b.bytesPut);
  EXPECT_EQ(a.bytesDelivered, b.bytesDelivered);
  EXPECT_EQ(a.peakActiveFlows, b.peakActiveFlows);
  EXPECT_EQ(a.rateRecomputations, b.rateRecomputations);
  EXPECT_EQ(a.jobFinish, b.jobFinish);
  EXPECT_EQ(a.ranks.size(), b.ranks.size());
  for (std::size_t r = 0; r < a.ranks.size() && r < b.ranks.size(); ++r) {
    EXPECT_EQ(a.ranks[r].finish, b.ranks[r].finish) << "rank " << r;
    EXPECT_EQ(a.ranks[r].bytesSent, b.ranks[r].bytesSent) << "rank " << r;
    EXPECT_EQ(a.ranks[r].bytesReceived, b.ranks[r].bytesReceived) << "rank " << r;
  }
  EXPECT_EQ(a.channels.size(), b.channels.size());
  for (std::size_t i = 0; i < a.channels.size() && i < b.channels.size(); ++i) {
    EXPECT_EQ(a.channels[i].link, b.channels[i].link);
    EXPECT_EQ(a.channels[i].direction, b.channels[i].direction);
    EXPECT_EQ(a.channels[i].bytes, b.channels[i].bytes) << "channel " << i;
    EXPECT_EQ(a.channels[i].busy, b.channels[i].busy) << "channel " << i;
  }
  return a;
}

topo::Fabric star(int p) {
  return testing::starFabric(p, core::Bandwidth::gbps(400), core::Time::ns(500), core::Time{});
}

TEST(Symmetry, RingOnOneSwitchFoldsToOneRank) {
  const Result r = runBoth(star(256), call(CollectiveKind::kAllReduce, "ring", 16 << 20));
  EXPECT_EQ(r.symmetryMultiplicity, 256);
}

TEST(Symmetry, ChunkedRingFolds) {
  CollectiveCall c = call(CollectiveKind::kAllReduce, "ring", 4 << 20);
  c.chunkBytes = 4096;
  const Result r = runBoth(star(32), c);
  EXPECT_EQ(r.symmetryMultiplicity, 32);
}

TEST(Symmetry, PairwiseAllToAllFolds) {
  const Result r = runBoth(star(64), call(CollectiveKind::kAllToAll, "pairwise", 8 << 20));
  EXPECT_EQ(r.symmetryMultiplicity, 64);
}

TEST(Symmetry, UnequalRingBlocksRunEveryRank) {
  // 1000 floats over 24 ranks: blocks of 41 and 42 elements, so the ranks' steps differ.
  const Result r = runBoth(star(24), call(CollectiveKind::kAllReduce, "ring", 4000));
  EXPECT_EQ(r.symmetryMultiplicity, 1);
}

TEST(Symmetry, FatTreeWhoseShiftedRoutesDifferRunsEveryRank) {
  // Two GPUs per leaf: 0 -> 1 stays in a leaf, 1 -> 2 crosses a spine.
  const Result r =
      runBoth(testing::fatTree(4, 2, 2, core::Bandwidth::gbps(100)), call(CollectiveKind::kAllReduce, "ring", 8 << 20));
  EXPECT_EQ(r.symmetryMultiplicity, 1);
}

TEST(Symmetry, EcmpOnAnOversubscribedFatTreeRunsEveryRank) {
  // Four GPUs per leaf and two uplinks (2:1), ECMP over the spines: routes depend on the flow.
  const topo::Fabric f = testing::fatTree(4, 4, 2, core::Bandwidth::gbps(100));
  SimParams params = SimParams::fromFabric(f);
  params.routing = Routing::kEcmp;
  const Result r = runBoth(f, call(CollectiveKind::kAllReduce, "ring", 8 << 20), params);
  EXPECT_EQ(r.symmetryMultiplicity, 1);
}

TEST(Symmetry, TracedRunsSimulateEveryRank) {
  const topo::Fabric f = star(8);
  Communicator comm(f);
  const PreparedCall prepared = comm.prepare(call(CollectiveKind::kAllReduce, "ring", 1 << 20));
  RunOptions traced;
  std::int32_t lastSender = -1;
  traced.trace = [&](const TraceEvent& t) {
    if (t.kind == TraceEvent::Kind::kFlow) lastSender = std::max(lastSender, t.rank);
  };
  const Result r = comm.run(*prepared.program, traced);
  EXPECT_EQ(r.symmetryMultiplicity, 1);
  EXPECT_EQ(lastSender, 7);  // every rank's transfers are in the trace
}

}  // namespace
}  // namespace copro::sim
