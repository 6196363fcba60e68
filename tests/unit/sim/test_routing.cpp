/// Routing rules: NVLink inside a server, own NIC across the network, the PCIe/host slow path to another
/// plane, deterministic ECMP.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "copro/core/status.hpp"
#include "copro/sim/simulator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using testing::boxFabric;
using testing::BoxParams;
using testing::pathNodes;
using V = std::vector<std::string>;

std::set<topo::LinkKind> kindsOf(const topo::Fabric& f, const std::vector<std::int32_t>& path) {
  std::set<topo::LinkKind> k;
  for (const auto ch : path) k.insert(f.link(ch / 2).kind);
  return k;
}

TEST(SimRouting, IntraHostUsesNvLink) {
  const auto f = boxFabric(BoxParams{});
  Simulator sim(f, SimParams{});
  const auto path = sim.route(0, 3);
  EXPECT_EQ(pathNodes(f, path), (V{"n0.gpu0", "n0.nvswitch", "n0.gpu3"}));
  EXPECT_EQ(kindsOf(f, path), std::set<topo::LinkKind>{topo::LinkKind::kNvLink});
}

TEST(SimRouting, IntraHostWithoutNvLinkUsesPcieThroughTheHost) {
  BoxParams bp;
  bp.nvlink = false;
  const auto f = boxFabric(bp);
  Simulator sim(f, SimParams{});
  EXPECT_EQ(pathNodes(f, sim.route(0, 2)), (V{"n0.gpu0", "n0.pcie0", "n0.cpu", "n0.pcie2", "n0.gpu2"}));
}

TEST(SimRouting, InterHostGoesThroughTheOwnNic) {
  const auto f = boxFabric(BoxParams{});
  Simulator sim(f, SimParams{});
  // GPU 1 of server 0 -> GPU 2 of server 1 (rank 6).
  EXPECT_EQ(pathNodes(f, sim.route(1, 6)),
            (V{"n0.gpu1", "n0.pcie1", "n0.nic1", "leaf", "n1.nic2", "n1.pcie2", "n1.gpu2"}));
}

TEST(SimRouting, MultiPlaneToAnotherPlaneTakesTheHostPath) {
  BoxParams bp;
  bp.planes = true;
  const auto f = boxFabric(bp);
  Simulator sim(f, SimParams{});
  // Same plane: direct.
  EXPECT_EQ(pathNodes(f, sim.route(1, 5)),
            (V{"n0.gpu1", "n0.pcie1", "n0.nic1", "plane1", "n1.nic1", "n1.pcie1", "n1.gpu1"}));
  // GPU 0 (plane 0) -> server 1 GPU 2 (plane 2): through the root complex to NIC 2 of its own server (the
  // destination's plane), never through another GPU or the NVSwitch.
  const auto path = pathNodes(f, sim.route(0, 6));
  EXPECT_EQ(path,
            (V{"n0.gpu0", "n0.pcie0", "n0.cpu", "n0.pcie2", "n0.nic2", "plane2", "n1.nic2", "n1.pcie2", "n1.gpu2"}));
}

TEST(SimRouting, LatencyIsLinksPlusIntermediateDelays) {
  // Two GPUs through one switch: 2 link latencies + the switch delay; checked through a 0-byte put.
  const auto f = testing::starFabric(2, core::Bandwidth::gbps(10), core::Time::us(1), core::Time::ns(250));
  Simulator sim(f, SimParams{});
  core::ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  std::vector<core::RankProgram> ranks(2);
  ranks[0].emit(0, core::Op::put(1, core::Addr{1, core::BufferId::kOutput, 0}, core::Addr{}, 0, 0, 1));
  ranks[1].emit(0, core::Op::wait(0, 1));
  const auto res = sim.run(core::Program(h, std::move(ranks)));
  EXPECT_EQ(res.time.picoseconds(), 2'000'000 + 250'000);
  EXPECT_EQ(res.flows, 0U);  // zero bytes: latency only, no flow
}

TEST(SimRouting, EcmpSpreadsOverSpinesDeterministically) {
  const auto f = testing::fatTree(2, 4, 4, core::Bandwidth::gbps(10));
  Simulator ecmp(f, SimParams{});
  std::set<std::string> spines;
  for (std::uint64_t h = 0; h < 64; ++h) {
    const auto path = ecmp.route(0, 5, h);
    const auto nodes = pathNodes(f, path);
    ASSERT_EQ(nodes.size(), 5U);  // gpu, leaf, spine, leaf, gpu
    spines.insert(nodes[2]);
    EXPECT_EQ(path, ecmp.route(0, 5, h)) << "flow hash " << h;
  }
  EXPECT_EQ(spines.size(), 4U);
  // Another simulator with the same seed picks the same paths; shortest always picks the first spine.
  Simulator again(f, SimParams{});
  SimParams sp;
  sp.routing = Routing::kShortest;
  Simulator shortest(f, sp);
  for (std::uint64_t h = 0; h < 16; ++h) {
    EXPECT_EQ(ecmp.route(2, 6, h), again.route(2, 6, h));
    EXPECT_EQ(pathNodes(f, shortest.route(2, 6, h))[2], "spine0");
  }
}

TEST(SimRouting, UnreachablePeerNamesBothGpus) {
  topo::Fabric f;
  const auto s0 = f.addNode(testing::makeNode(topo::NodeKind::kSwitch, "s0"));
  const auto s1 = f.addNode(testing::makeNode(topo::NodeKind::kSwitch, "s1"));
  const auto g0 = f.addNode(testing::makeNode(topo::NodeKind::kGpu, "a"));
  const auto g1 = f.addNode(testing::makeNode(topo::NodeKind::kGpu, "b"));
  f.addLink(g0, s0, topo::LinkKind::kNetwork, core::Bandwidth::gbps(1), {});
  f.addLink(g1, s1, topo::LinkKind::kNetwork, core::Bandwidth::gbps(1), {});
  f.finalize();
  Simulator sim(f, SimParams{});
  try {
    (void)sim.route(0, 1);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(e.message().find("GPU 'a' (rank 0)"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("GPU 'b' (rank 1)"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace copro::sim
