/// Multi-rack GB200 NVL72 (gb200_nvl72 with `racks` and a scale-out network): the bundled two-rack file is a
/// short topology file that loads, has one NVLink domain per rack and 800 Gb/s NICs, and simulates with
/// cross-rack traffic on the network; fat_tree and rail scale-out both build; bad combinations name the key;
/// the planner's scale-up domain is the rack's NVLink domain (72 GPUs), not the 4-GPU tray.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::sim {
namespace {

int countKind(const topo::Fabric& f, topo::NodeKind kind) {
  int n = 0;
  for (const topo::Node& node : f.nodes()) n += node.kind == kind ? 1 : 0;
  return n;
}

TEST(Gb200Racks, TwoRackFileIsShortLoadsAndSimulates) {
  std::ifstream in(std::string(COPRO_SOURCE_TOPOLOGY_DIR) + "/gb200-nvl72-2rack.yaml");
  ASSERT_TRUE(in.good());
  int lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  EXPECT_LE(lines, 10);

  const topo::Fabric f = topo::loadTopology("gb200-nvl72-2rack");
  EXPECT_EQ(f.gpus().size(), 144U);
  EXPECT_EQ(f.numHosts(), 36);
  EXPECT_EQ(countKind(f, topo::NodeKind::kNvSwitch), 2);
  EXPECT_GT(countKind(f, topo::NodeKind::kSwitch), 0);
  for (const char* sw : {"r0.nvswitch", "r1.nvswitch"}) {
    const std::int32_t id = f.find(sw);
    ASSERT_GE(id, 0) << sw;
    EXPECT_EQ(f.linksOf(id).size(), 72U) << sw;
  }
  int nicLinks = 0;
  for (const topo::Link& l : f.links()) {
    const bool nicEnd = f.node(l.a).kind == topo::NodeKind::kNic || f.node(l.b).kind == topo::NodeKind::kNic;
    if (l.kind == topo::LinkKind::kNetwork && nicEnd) {
      ++nicLinks;
      EXPECT_DOUBLE_EQ(l.bandwidth.bytesPerSecond(), 100e9);  // 800 Gb/s
    }
  }
  EXPECT_EQ(nicLinks, 144);

  Communicator comm(f);
  CollectiveCall call;
  call.kind = collectives::CollectiveKind::kAllToAll;
  call.size = std::uint64_t{4} << 20;
  const PreparedCall prepared = comm.prepare(call);
  const Result r = comm.run(*prepared.program);
  EXPECT_GT(r.time.picoseconds(), 0);
  EXPECT_EQ(r.bytesDelivered, r.bytesPut);
  std::uint64_t networkBytes = 0;
  for (const ChannelStats& c : r.channels) {
    if (f.link(c.link).kind == topo::LinkKind::kNetwork) networkBytes += c.bytes;
  }
  EXPECT_GT(networkBytes, 0U) << "the racks share no NVLink: cross-rack bytes must cross the network";
}

TEST(Gb200Racks, NicFasterThanItsPcieLinkIsWarnedAbout) {
  EXPECT_TRUE(topo::fabricWarnings(topo::loadTopology("gb200-nvl72-2rack")).empty());
  const auto w = topo::fabricWarnings(topo::loadTopology("gb200-nvl72-2rack", {"pcie_bw=64GB/s"}));
  ASSERT_EQ(w.size(), 1U);
  EXPECT_NE(w[0].find("144 NICs"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("raise pcie_bw"), std::string::npos) << w[0];
  EXPECT_TRUE(topo::fabricWarnings(topo::loadTopology("deepseek-v3")).empty());
}

TEST(Gb200Racks, FatTreeAndRailBuildAndMistakesNameTheKey) {
  const topo::Fabric ft = topo::buildTopology("gb200_nvl72", {{"racks", "3"}, {"scale_out", "fat_tree"}});
  EXPECT_EQ(ft.gpus().size(), 216U);
  EXPECT_EQ(countKind(ft, topo::NodeKind::kNvSwitch), 3);
  const topo::Fabric rail = topo::buildTopology("gb200_nvl72", {{"racks", "2"}, {"scale_out", "rail"}});
  int railLeaves = 0;
  for (const topo::Node& n : rail.nodes()) railLeaves += n.kind == topo::NodeKind::kSwitch && n.rail >= 0 ? 1 : 0;
  EXPECT_EQ(railLeaves, 8);  // 36 trays per rail on 32-port leaf downlinks: two leaves per rail
  // One rack stays the NVL72 of before: no network.
  EXPECT_EQ(countKind(topo::buildTopology("gb200_nvl72", {}), topo::NodeKind::kSwitch), 0);
  try {
    (void)topo::buildTopology("gb200_nvl72", {{"racks", "2"}, {"scale_out", "none"}});
    FAIL() << "two racks without a network must be refused";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("scale_out"), std::string::npos) << e.what();
  }
}

TEST(Gb200Racks, PlannerScaleUpDomainIsTheNvLinkDomainNotTheTray) {
  // Trays are hosts of 4 GPUs, but the rack's NVLink switch joins all 72: the communicator (and so the
  // planner, hierarchical algorithms and PXN) sees one node per rack, with NVLink inside and the NICs out.
  const topo::Fabric f = topo::loadTopology("gb200-nvl72-2rack");
  Communicator comm(f);
  EXPECT_EQ(comm.nodes(), 2);
  const auto& node = comm.nodeOfRank();
  for (std::int32_t r = 0; r < 144; ++r) EXPECT_EQ(node[static_cast<std::size_t>(r)], node[r < 72 ? 0 : 72]) << r;
  EXPECT_NE(node[0], node[72]);
  ASSERT_EQ(comm.loadStoreDomains().size(), 2U);
  EXPECT_EQ(comm.loadStoreDomains()[0].size(), 72U);
  EXPECT_DOUBLE_EQ(comm.costModel().bandwidthGBps, 720.0);       // NVLink per GPU (achievable)
  EXPECT_DOUBLE_EQ(comm.costModel().interBandwidthGBps, 100.0);  // the 800 Gb/s NIC
  // Ranks of one rack only: one node, no scale-out.
  CommunicatorOptions oneRack;
  oneRack.ranks = 72;
  EXPECT_EQ(Communicator(f, oneRack).nodes(), 1);
  // Servers whose NVLink stays inside them keep one node per server.
  const topo::Fabric h = topo::loadTopology("deepseek-v3");
  CommunicatorOptions sixtyFour;
  sixtyFour.ranks = 64;
  EXPECT_EQ(Communicator(h, sixtyFour).nodes(), 8);
}

}  // namespace
}  // namespace copro::sim
