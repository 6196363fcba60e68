// PXN on a rail-optimized fabric (topologies/rail-optimized-128.yaml, docs/pxn.md): a pairwise all-to-all
// on 4 servers x 8 GPUs sends off-rail traffic through the spine layer; with PXN (level 1 or 2) every
// inter-node put is rail-aligned, so the spine switches carry exactly 0 bytes. Prints the simulated times.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/fabric.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::sim {
namespace {

/// Payload bytes that entered a spine-tier (tier 1) switch.
std::uint64_t spineBytes(const topo::Fabric& f, const Result& r) {
  std::uint64_t bytes = 0;
  for (const ChannelStats& c : r.channels) {
    const topo::Link& link = f.links()[static_cast<std::size_t>(c.link)];
    const std::int32_t to = c.direction == 0 ? link.b : link.a;
    const topo::Node& node = f.nodes()[static_cast<std::size_t>(to)];
    if (node.kind == topo::NodeKind::kSwitch && node.tier == 1) bytes += c.bytes;
  }
  return bytes;
}

struct SimRun {
  core::Time time{};
  std::uint64_t spine = 0;
  std::uint64_t delivered = 0;
};

SimRun simulateAllToAll(const topo::Fabric& f, const std::vector<int>& nodeOfRank, int pxn, std::uint64_t count) {
  collectives::CollectiveArgs a;
  a.kind = collectives::CollectiveKind::kAllToAll;
  a.nranks = static_cast<std::int32_t>(nodeOfRank.size());
  a.nodeOfRank = nodeOfRank;
  a.count = count;
  a.dtype = core::DataType::kFloat32;
  a.pxnLevel = pxn;
  const auto program = collectives::buildProgram(a, "pairwise");
  Simulator sim(f, SimParams::fromFabric(f));
  const Result r = sim.run(*program);
  return SimRun{r.time, spineBytes(f, r), r.bytesDelivered};
}

TEST(PxnSpine, RailOptimizedAllToAllAvoidsTheSpine) {
  const topo::Fabric f = topo::loadTopology("rail-optimized-128");
  const int servers = 4;
  const int perServer = 8;
  std::vector<int> nodeOfRank;
  for (int r = 0; r < servers * perServer; ++r) {
    const std::int32_t gpu = f.gpus()[static_cast<std::size_t>(r)];
    nodeOfRank.push_back(f.nodes()[static_cast<std::size_t>(gpu)].host);
  }
  ASSERT_EQ(nodeOfRank.front(), 0);
  ASSERT_EQ(nodeOfRank.back(), servers - 1);
  const std::uint64_t count = 64 * 1024;  // 256 KiB per (source, destination) pair
  const SimRun off = simulateAllToAll(f, nodeOfRank, 0, count);
  const SimRun one = simulateAllToAll(f, nodeOfRank, 1, count);
  const SimRun two = simulateAllToAll(f, nodeOfRank, 2, count);
  std::printf(
      "alltoall 4x8 GPUs, 256 KiB blocks on rail-optimized-128: pxn0 %.3f us (spine %llu B), "
      "pxn1 %.3f us (spine %llu B), pxn2 %.3f us (spine %llu B)\n",
      off.time.microseconds(), static_cast<unsigned long long>(off.spine), one.time.microseconds(),
      static_cast<unsigned long long>(one.spine), two.time.microseconds(), static_cast<unsigned long long>(two.spine));
  // Without PXN the off-rail share of the inter-node bytes (7 of 8 destinations on each remote server)
  // crosses a spine: 32 sources x 24 remote destinations x 7/8 off-rail x 256 KiB.
  const std::uint64_t block = count * 4;
  EXPECT_EQ(off.spine, 32ULL * 21 * block);
  EXPECT_EQ(one.spine, 0U);
  EXPECT_EQ(two.spine, 0U);
  EXPECT_GT(one.time.picoseconds(), 0);
  EXPECT_GT(two.time.picoseconds(), 0);
}

}  // namespace
}  // namespace copro::sim
