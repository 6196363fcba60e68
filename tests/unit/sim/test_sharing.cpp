/// Max-min fair sharing of the flow network: exact completion times against hand-computed rates.
#include <gtest/gtest.h>

#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/simulator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using core::Addr;
using core::BufferId;
using core::Op;
using testing::makeNode;
using topo::channelOf;

constexpr double kGBps = 1e9;

/// A chain of switches x0 - x1 - ... - x<n>, links of `bw` and `lat`, nodes with forwarding `delay`.
topo::Fabric chain(int links, core::Bandwidth bw, core::Time lat, core::Time delay) {
  topo::Fabric f;
  std::int32_t prev = f.addNode(makeNode(topo::NodeKind::kSwitch, "x0", -1, delay));
  for (int i = 1; i <= links; ++i) {
    const std::int32_t cur = f.addNode(makeNode(topo::NodeKind::kSwitch, "x" + std::to_string(i), -1, delay));
    f.addLink(prev, cur, topo::LinkKind::kNetwork, bw, lat);
    prev = cur;
  }
  f.finalize();
  return f;
}

TEST(SimSharing, TwoFlowsOnOneChannelGetHalfEach) {
  // x0 -> x1 -> x2: path latency 2 x 1 us + the delay of x1 (0.5 us).
  const auto f = chain(2, core::Bandwidth::bytesPerSec(kGBps), core::Time::us(1), core::Time::ns(500));
  const std::vector<std::int32_t> path = {channelOf(0, 0), channelOf(1, 0)};
  const auto done = simulateFlows(f, {{path, 1'000'000, {}}, {path, 3'000'000, {}}});
  ASSERT_EQ(done.size(), 2U);
  const std::int64_t lat = 2'500'000;  // ps
  // Both at 0.5 GB/s until the first has sent 1 MB (2 ms); the second then has 2 MB left at 1 GB/s (2 ms).
  EXPECT_EQ(done[0].picoseconds(), 2'000'000'000 + lat);
  EXPECT_EQ(done[1].picoseconds(), 4'000'000'000 + lat);
  // Equal flows end together.
  const auto same = simulateFlows(f, {{path, 1'000'000, {}}, {path, 1'000'000, {}}});
  EXPECT_EQ(same[0].picoseconds(), 2'000'000'000 + lat);
  EXPECT_EQ(same[1].picoseconds(), 2'000'000'000 + lat);
  // The opposite direction is a separate channel: no sharing.
  const auto dup = simulateFlows(f, {{path, 1'000'000, {}}, {{channelOf(1, 1), channelOf(0, 1)}, 1'000'000, {}}});
  EXPECT_EQ(dup[0].picoseconds(), 1'000'000'000 + lat);
  EXPECT_EQ(dup[1].picoseconds(), 1'000'000'000 + lat);
}

TEST(SimSharing, LaterStartSharesFromItsStart) {
  const auto f = chain(1, core::Bandwidth::bytesPerSec(kGBps), {}, {});
  const std::vector<std::int32_t> path = {channelOf(0, 0)};
  // Flow 0 alone for 1 ms (1 MB sent), then both at half: flow 0's last 1 MB takes 2 ms (ends at 3 ms);
  // flow 1 has sent 1 MB by then and finishes its last 1 MB alone at 4 ms.
  const auto done = simulateFlows(f, {{path, 2'000'000, {}}, {path, 2'000'000, core::Time::ms(1)}});
  EXPECT_EQ(done[0].picoseconds(), 3'000'000'000);
  EXPECT_EQ(done[1].picoseconds(), 4'000'000'000);
}

TEST(SimSharing, IncastGetsOneNthEach) {
  for (const int n : {2, 3, 4, 7}) {
    const auto f = testing::starFabric(n + 1, core::Bandwidth::bytesPerSec(kGBps), {}, {});
    std::vector<FlowSpec> flows;
    // GPU i is link i; direction 0 is gpu -> switch. Everybody sends 1 MB to the last GPU.
    for (int i = 0; i < n; ++i) flows.push_back({{channelOf(i, 0), channelOf(n, 1)}, 1'000'000, {}});
    const auto done = simulateFlows(f, flows);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(done[static_cast<std::size_t>(i)].picoseconds(), std::int64_t{n} * 1'000'000'000) << "n = " << n;
    }
  }
}

TEST(SimSharing, MaxMinDiffersFromProportionalFairness) {
  // Three links in a row. The long flow L crosses links 0 and 1; A uses link 0 only; B1 and B2 link 1 only;
  // C link 2 only. Max-min: link 1 is the bottleneck of L, B1, B2 (1/3 each); A takes the rest of link 0
  // (2/3); C is alone (1). Proportional fairness would give L only 1/4 (maximize sum log x: x_L = 1/4).
  const auto f = chain(3, core::Bandwidth::bytesPerSec(kGBps), {}, {});
  const std::vector<FlowSpec> flows = {
      {{channelOf(0, 0), channelOf(1, 0)}, 1'000'000, {}},  // L
      {{channelOf(0, 0)}, 10'000'000, {}},                  // A
      {{channelOf(1, 0)}, 10'000'000, {}},                  // B1
      {{channelOf(1, 0)}, 10'000'000, {}},                  // B2
      {{channelOf(2, 0)}, 1'000'000, {}},                   // C
  };
  const auto done = simulateFlows(f, flows);
  // L: 1 MB at 1/3 GB/s = 3 ms (proportional fairness would take 4 ms).
  EXPECT_EQ(done[0].picoseconds(), 3'000'000'000);
  // A: 2 MB sent by 3 ms at 2/3, then 8 MB at full rate: 11 ms.
  EXPECT_EQ(done[1].picoseconds(), 11'000'000'000);
  // B1, B2: 1 MB each by 3 ms, then 9 MB at 1/2 each: 3 + 18 = 21 ms.
  EXPECT_EQ(done[2].picoseconds(), 21'000'000'000);
  EXPECT_EQ(done[3].picoseconds(), 21'000'000'000);
  // C: alone on link 2.
  EXPECT_EQ(done[4].picoseconds(), 1'000'000'000);
}

TEST(SimSharing, ZeroByteFlowTakesOnlyTheLatency) {
  const auto f = chain(2, core::Bandwidth::bytesPerSec(kGBps), core::Time::us(1), core::Time::ns(300));
  const auto done = simulateFlows(f, {{{channelOf(0, 0), channelOf(1, 0)}, 0, core::Time::us(5)}});
  EXPECT_EQ(done[0].picoseconds(), 5'000'000 + 2'000'000 + 300'000);
}

TEST(SimSharing, BadChannelIsAnError) {
  const auto f = chain(1, core::Bandwidth::bytesPerSec(kGBps), {}, {});
  EXPECT_THROW(simulateFlows(f, {{{7}, 10, {}}}), core::Error);
}

/// Every rank r in `senders` puts `bytes` to `dst(r)` with a signal; every receiver waits for it.
core::Program permutation(int nranks, const std::vector<std::pair<int, int>>& pairs, std::uint64_t bytes) {
  core::ProgramHeader h;
  h.name = "permutation";
  h.nranks = nranks;
  h.numSemaphores = 1;
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(nranks));
  for (const auto& [s, d] : pairs) {
    ranks[static_cast<std::size_t>(s)].emit(0, Op::put(d, Addr{d, BufferId::kOutput, 0}, Addr{}, bytes, 0, 1));
    ranks[static_cast<std::size_t>(d)].emit(1, Op::wait(0, 1));
  }
  return core::Program(h, std::move(ranks));
}

TEST(SimSharing, OversubscribedFatTreeHalvesCrossPodBandwidth) {
  // Two leaves of 4 GPUs, 2 spines: each leaf has 4 GPU links up but only 2 spine links (2:1).
  const double bw = 10 * kGBps;
  const auto f = testing::fatTree(2, 4, 2, core::Bandwidth::bytesPerSec(bw));
  SimParams params;
  params.routing = Routing::kAdaptive;  // spreads the 4 cross-pod flows 2 + 2 over the spines
  Simulator sim(f, params);
  const std::uint64_t bytes = 10'000'000;
  // Intra-pod: a shift inside each leaf; every GPU link carries one flow each way.
  const auto intra = sim.run(permutation(8, {{0, 1}, {1, 2}, {2, 3}, {3, 0}, {4, 5}, {5, 6}, {6, 7}, {7, 4}}, bytes));
  // Cross-pod: leaf 0 sends to leaf 1 and back; 4 flows share 2 uplinks per leaf.
  const auto cross = sim.run(permutation(8, {{0, 4}, {1, 5}, {2, 6}, {3, 7}, {4, 0}, {5, 1}, {6, 2}, {7, 3}}, bytes));
  const double tIntra = bytes / bw;
  EXPECT_NEAR(intra.time.seconds(), tIntra, tIntra * 1e-9);
  EXPECT_NEAR(cross.time.seconds(), 2 * tIntra, tIntra * 1e-9);
}

TEST(SimSharing, SimultaneousStartsAndEndsAreOneRecomputationEach) {
  const auto f = testing::starFabric(8, core::Bandwidth::bytesPerSec(kGBps), core::Time::us(1), {});
  Simulator sim(f, SimParams{});
  std::vector<std::pair<int, int>> ring;
  for (int r = 0; r < 8; ++r) ring.emplace_back(r, (r + 1) % 8);
  const auto res = sim.run(permutation(8, ring, 1'000'000));
  EXPECT_EQ(res.flows, 8U);
  // 8 flows start at t = 0 (one batch) and end together (one batch).
  EXPECT_EQ(res.rateRecomputations, 2U);
  EXPECT_EQ(res.peakActiveFlows, 8U);
  EXPECT_EQ(res.time.picoseconds(), 1'000'000'000 + 2'000'000);
}

}  // namespace
}  // namespace copro::sim
