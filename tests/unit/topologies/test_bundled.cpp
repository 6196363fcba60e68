// Every bundled topology file loads, and each builder makes the counts it promises (docs/topologies.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "copro/topologies/topology.hpp"

namespace copro::topo {
namespace {

namespace fs = std::filesystem;

std::int64_t countKind(const Fabric& f, NodeKind kind) {
  std::int64_t c = 0;
  for (const Node& n : f.nodes()) c += n.kind == kind ? 1 : 0;
  return c;
}

std::int64_t countLinks(const Fabric& f, LinkKind kind) {
  std::int64_t c = 0;
  for (const Link& l : f.links()) c += l.kind == kind ? 1 : 0;
  return c;
}

std::int64_t countSwitches(const Fabric& f, std::int32_t tier, std::int32_t plane = -2) {
  std::int64_t c = 0;
  for (const Node& n : f.nodes()) {
    c += (n.kind == NodeKind::kSwitch && n.tier == tier && (plane == -2 || n.plane == plane)) ? 1 : 0;
  }
  return c;
}

std::int64_t degree(const Fabric& f, const std::string& name) {
  const std::int32_t id = f.find(name);
  EXPECT_GE(id, 0) << name;
  return id < 0 ? -1 : static_cast<std::int64_t>(f.linksOf(id).size());
}

TEST(TopologyFiles, EveryFileInTheFolderLoads) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(COPRO_SOURCE_TOPOLOGY_DIR)) {
    const auto ext = e.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") files.push_back(e.path());
  }
  ASSERT_GE(files.size(), 13U) << "expected the bundled files in " << COPRO_SOURCE_TOPOLOGY_DIR;
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const auto start = std::chrono::steady_clock::now();
    const Fabric f = loadTopology(path.string());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("  %-32s %6zu GPUs %6zu nodes %6zu links  %.0f ms\n", path.filename().c_str(), f.gpus().size(),
                f.nodes().size(), f.links().size(), ms);
    EXPECT_GT(f.gpus().size(), 0U);
    EXPECT_FALSE(f.name.empty());
    EXPECT_FALSE(f.builder.empty());
    EXPECT_EQ(f.name, path.stem().string()) << "a bundled file's name matches its file name";
    // Every GPU rank maps back to its node, and every simParams key has an origin.
    for (std::size_t r = 0; r < f.gpus().size(); ++r) EXPECT_EQ(f.node(f.gpus()[r]).rank, static_cast<int>(r));
    for (const auto& [k, v] : f.simParams) EXPECT_EQ(f.simParamOrigin.count(k), 1U) << k;
  }
}

TEST(TopologyFiles, BundledNamesResolve) {
  const auto names = bundledTopologies();
  const std::set<std::string> have(names.begin(), names.end());
  for (const char* expected :
       {"deepseek-v3", "h800-node", "h100-node", "gb200-nvl72", "single-switch-1024", "single-switch-4096",
        "single-switch-16384", "fat-tree-2tier-1024", "fat-tree-2tier-1024-2to1", "fat-tree-3tier",
        "rail-optimized-128", "mpft-16384", "dragonfly", "example-graph"}) {
    EXPECT_EQ(have.count(expected), 1U) << expected;
  }
  // Found in the build tree's share/copro (a copy of the source folder), as an install finds its own.
  EXPECT_EQ(resolveTopologyPath("deepseek-v3"), bundledTopologyDirectory() + "/deepseek-v3.yaml");
  EXPECT_TRUE(fs::exists(fs::path(bundledTopologyDirectory()) / "deepseek-v3.yaml"));
}

TEST(Builders, DeepSeekV3) {
  const Fabric f = loadTopology("deepseek-v3");
  EXPECT_EQ(f.name, "deepseek-v3");
  EXPECT_EQ(f.builder, "mpft");
  EXPECT_EQ(f.gpus().size(), 2048U);
  EXPECT_EQ(f.numHosts(), 256);
  EXPECT_EQ(countKind(f, NodeKind::kNic), 2048);
  EXPECT_EQ(countKind(f, NodeKind::kNvSwitch), 256);
  EXPECT_EQ(countKind(f, NodeKind::kPcieSwitch), 2048);
  EXPECT_EQ(countKind(f, NodeKind::kHost), 256);
  // 8 planes x (64 leaves + 32 spines).
  EXPECT_EQ(countKind(f, NodeKind::kSwitch), 768);
  for (int p = 0; p < 8; ++p) {
    EXPECT_EQ(countSwitches(f, 0, p), 64) << "plane " << p;
    EXPECT_EQ(countSwitches(f, 1, p), 32) << "plane " << p;
  }
  EXPECT_EQ(countLinks(f, LinkKind::kNvLink), 2048);
  EXPECT_EQ(countLinks(f, LinkKind::kPcie), 3 * 2048);  // GPU-PCIe, NIC-PCIe, PCIe-host
  EXPECT_EQ(countLinks(f, LinkKind::kNetwork), 2048 + 8 * 64 * 32);
  const auto counts = f.counts();
  EXPECT_EQ(counts.at("gpu"), 2048);
  EXPECT_EQ(counts.at("hosts"), 256);
  // Each spine meets every leaf of its plane once; a used leaf has 32 NICs and 32 uplinks.
  EXPECT_EQ(degree(f, "p3.spine17"), 64);
  EXPECT_EQ(degree(f, "p3.leaf0"), 64);
  EXPECT_EQ(degree(f, "p3.leaf63"), 32);  // capacity for servers 256..2047
  // NIC i of each server is in plane i, on a leaf of plane i; GPU r uses NIC r % 8 of its server.
  for (std::int32_t r : {0, 7, 9, 2047}) {
    const std::int32_t nic = f.nicOf(r);
    ASSERT_GE(nic, 0);
    const Node& n = f.node(nic);
    EXPECT_EQ(n.host, r / 8);
    EXPECT_EQ(n.rail, r % 8);
    EXPECT_EQ(n.plane, r % 8);
    for (std::int32_t l : f.linksOf(nic)) {
      const Node& other = f.node(f.peer(l, nic));
      if (other.kind == NodeKind::kSwitch) {
        EXPECT_EQ(other.plane, r % 8);
        EXPECT_EQ(other.tier, 0);
        EXPECT_DOUBLE_EQ(f.link(l).bandwidth.bytesPerSecond(), 50e9);
      }
    }
  }
  const Node& gpu = f.node(f.gpus()[5]);
  EXPECT_EQ(gpu.sms, 132);
  EXPECT_DOUBLE_EQ(gpu.memoryBandwidth.bytesPerSecond(), 3.35e12);
  // Bisection: half of 2048 NICs x 50 GB/s (every plane non-blocking).
  ASSERT_TRUE(f.bisectionBandwidth.has_value());
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 2048 * 50e9 / 2);
  // The sim section, flattened, with file:line origins.
  EXPECT_EQ(f.simParams.at("routing"), "ecmp");
  EXPECT_EQ(f.simParams.at("chunk_size"), "1M");
  // The bundled hardware templates' per-message convention (docs/simulator.md; its figures are checked in
  // tests/unit/sim/test_link_conventions.cpp).
  EXPECT_EQ(f.simParams.at("initiation.preset"), "hopper_cx7_thread");
  EXPECT_NE(f.simParamOrigin.at("routing").find("deepseek-v3.yaml:"), std::string::npos);
}

TEST(Builders, Mpft16384) {
  const Fabric f = loadTopology("mpft-16384");
  EXPECT_EQ(f.gpus().size(), 16384U);
  EXPECT_EQ(f.numHosts(), 2048);
  EXPECT_EQ(countKind(f, NodeKind::kSwitch), 768);
  // Complete planes: every leaf and spine uses all 64 ports.
  for (const Node& n : f.nodes()) {
    if (n.kind == NodeKind::kSwitch) {
      ASSERT_EQ(f.linksOf(f.find(n.name)).size(), 64U) << n.name;
    }
  }
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 16384 * 50e9 / 2);
}

TEST(Builders, H800Node) {
  const Fabric f = loadTopology("h800-node");
  EXPECT_EQ(f.gpus().size(), 8U);
  EXPECT_EQ(f.numHosts(), 1);
  EXPECT_EQ(countKind(f, NodeKind::kNvSwitch), 1);
  EXPECT_EQ(countKind(f, NodeKind::kPcieSwitch), 8);
  EXPECT_EQ(countKind(f, NodeKind::kHost), 1);
  EXPECT_EQ(countKind(f, NodeKind::kNic), 8);
  EXPECT_EQ(countKind(f, NodeKind::kSwitch), 0);
  const std::int32_t sw = f.find("n0.nvswitch");
  ASSERT_GE(sw, 0);
  EXPECT_TRUE(f.node(sw).inSwitchReduce);
  ASSERT_EQ(f.linksOf(sw).size(), 8U);
  for (std::int32_t l : f.linksOf(sw)) {
    EXPECT_EQ(f.link(l).kind, LinkKind::kNvLink);
    EXPECT_DOUBLE_EQ(f.link(l).bandwidth.bytesPerSecond(), 160e9);
  }
  for (std::int32_t r = 0; r < 8; ++r) {
    EXPECT_EQ(f.node(f.nicOf(r)).name, "n0.nic" + std::to_string(r));
    EXPECT_EQ(f.node(f.nicOf(r)).rail, r);
  }
  // A GPU and its NIC share a PCIe switch; other NICs are only reachable through the host root complex.
  EXPECT_EQ(degree(f, "n0.pcie3"), 3);  // GPU 3, NIC 3, host
  EXPECT_EQ(degree(f, "n0.host"), 8);
}

TEST(Builders, H100NodeAndGb200) {
  const Fabric h100 = loadTopology("h100-node");
  EXPECT_EQ(h100.gpus().size(), 8U);
  for (const Link& l : h100.links()) {
    if (l.kind == LinkKind::kNvLink) {
      EXPECT_DOUBLE_EQ(l.bandwidth.bytesPerSecond(), 360e9);  // 450 nominal x 0.8
    }
  }
  const Fabric gb = loadTopology("gb200-nvl72");
  EXPECT_EQ(gb.gpus().size(), 72U);
  EXPECT_EQ(gb.numHosts(), 18);
  EXPECT_EQ(countKind(gb, NodeKind::kNvSwitch), 1);
  EXPECT_EQ(countKind(gb, NodeKind::kNic), 72);
  const std::int32_t sw = gb.find("rack.nvswitch");
  ASSERT_GE(sw, 0);
  EXPECT_EQ(gb.node(sw).host, -1);
  EXPECT_EQ(gb.linksOf(sw).size(), 72U);
  for (std::int32_t l : gb.linksOf(sw)) EXPECT_DOUBLE_EQ(gb.link(l).bandwidth.bytesPerSecond(), 720e9);
  EXPECT_EQ(gb.node(gb.gpus()[13]).host, 3);
  EXPECT_EQ(gb.node(gb.gpus()[13]).local, 1);
}

TEST(Builders, SingleSwitchForFormulaChecks) {
  for (const int n : {1024, 4096, 16384}) {
    const Fabric f = loadTopology("single-switch-" + std::to_string(n));
    EXPECT_EQ(f.gpus().size(), static_cast<std::size_t>(n));
    EXPECT_EQ(f.numHosts(), n);
    EXPECT_EQ(countKind(f, NodeKind::kSwitch), 1);
    EXPECT_EQ(f.links().size(), static_cast<std::size_t>(n));
    const std::int32_t sw = f.find("switch");
    // alpha = 2 x link latency + switch delay = 2 us; beta = 1 / 50 GB/s.
    EXPECT_EQ(f.node(sw).delay.picoseconds(), 1'000'000);
    for (const Link& l : f.links()) {
      ASSERT_EQ(l.latency.picoseconds(), 500'000);
      ASSERT_DOUBLE_EQ(l.bandwidth.bytesPerSecond(), 50e9);
    }
    EXPECT_EQ(f.simParams.at("chunk_size"), "0");
    EXPECT_EQ(f.simParams.at("copy_bw"), "0");
    EXPECT_EQ(f.simParams.at("reduce_bw"), "100GB/s");
    EXPECT_EQ(f.simParams.at("initiation.proxy.issue"), "0");
    EXPECT_EQ(f.simParams.at("initiation.device.issue"), "0");
    EXPECT_EQ(f.simParams.at("initiation.offload.issue"), "0");
    EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), n / 2 * 50e9);
  }
}

TEST(Builders, FatTreeTwoTier) {
  const Fabric f = loadTopology("fat-tree-2tier-1024");
  EXPECT_EQ(f.gpus().size(), 1024U);
  EXPECT_EQ(countSwitches(f, 0), 32);
  EXPECT_EQ(countSwitches(f, 1), 16);
  EXPECT_EQ(degree(f, "leaf0"), 64);
  EXPECT_EQ(degree(f, "spine15"), 64);  // two links to each of the 32 leaves
  // NICs packed in server order: servers 0..3 on leaf 0, server 4 on leaf 1.
  EXPECT_EQ(f.node(f.peer(f.linksOf(f.find("n3.nic7")).back(), f.find("n3.nic7"))).name, "leaf0");
  EXPECT_EQ(f.node(f.peer(f.linksOf(f.find("n4.nic0")).back(), f.find("n4.nic0"))).name, "leaf1");
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 1024 * 50e9 / 2);

  // 2:1 at the leaf: 42 ports down and 21 up per 64-port leaf, 25 leaves, 525 uplinks on 9 spines.
  const Fabric o = loadTopology("fat-tree-2tier-1024-2to1");
  EXPECT_EQ(countSwitches(o, 0), 25);
  EXPECT_EQ(countSwitches(o, 1), 9);
  EXPECT_EQ(degree(o, "leaf0"), 42 + 21);
  EXPECT_DOUBLE_EQ(o.bisectionBandwidth->bytesPerSecond(), 25 * 21 * 50e9 / 2);
  for (const Node& n : o.nodes()) {
    if (n.kind == NodeKind::kSwitch) {
      EXPECT_LE(o.linksOf(o.find(n.name)).size(), 64U) << n.name;
    }
  }
}

TEST(Builders, FatTreeThreeTier) {
  const Fabric f = loadTopology("fat-tree-3tier");
  EXPECT_EQ(f.gpus().size(), 8192U);
  EXPECT_EQ(countSwitches(f, 0), 512);
  EXPECT_EQ(countSwitches(f, 1), 512);
  EXPECT_EQ(countSwitches(f, 2), 256);
  EXPECT_EQ(degree(f, "pod31.edge15"), 32);
  EXPECT_EQ(degree(f, "pod0.agg3"), 32);
  EXPECT_EQ(degree(f, "core255"), 32);  // one link to each pod
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 8192 * 50e9 / 2);
}

TEST(Builders, RailOptimized) {
  const Fabric f = loadTopology("rail-optimized-128");
  EXPECT_EQ(f.gpus().size(), 128U);
  EXPECT_EQ(f.numHosts(), 16);
  EXPECT_EQ(countSwitches(f, 0), 8);
  EXPECT_EQ(countSwitches(f, 1), 2);
  for (std::int32_t r = 0; r < 128; r += 13) {
    const std::int32_t nic = f.nicOf(r);
    ASSERT_EQ(f.linksOf(nic).size(), 2U);  // its PCIe switch and its rail's leaf
    const Node& leaf = f.node(f.peer(f.linksOf(nic)[1], nic));
    EXPECT_EQ(leaf.name, "rail" + std::to_string(r % 8) + ".leaf0");
    EXPECT_EQ(leaf.rail, r % 8);
  }
  EXPECT_EQ(degree(f, "rail5.leaf0"), 16 + 16);
  EXPECT_EQ(degree(f, "spine1"), 64);
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 128 * 50e9 / 2);
}

TEST(Builders, Dragonfly) {
  const Fabric f = loadTopology("dragonfly");
  EXPECT_EQ(f.gpus().size(), 33U * 8 * 4);
  EXPECT_EQ(countKind(f, NodeKind::kSwitch), 33 * 8);
  // Router ports: 4 hosts + 7 local + 4 global = 15, all used.
  for (const Node& n : f.nodes()) {
    if (n.kind == NodeKind::kSwitch) {
      ASSERT_EQ(f.linksOf(f.find(n.name)).size(), 15U) << n.name;
    }
  }
  std::int64_t global = 0;
  std::set<std::pair<std::string, std::string>> groupPairs;
  for (const Link& l : f.links()) {
    const Node& a = f.node(l.a);
    const Node& b = f.node(l.b);
    if (a.kind != NodeKind::kSwitch || b.kind != NodeKind::kSwitch) continue;
    const std::string ga = a.name.substr(0, a.name.find('.'));
    const std::string gb = b.name.substr(0, b.name.find('.'));
    if (ga != gb) {
      ++global;
      groupPairs.insert(std::minmax(ga, gb));
    }
  }
  EXPECT_EQ(global, 33 * 32 / 2);
  EXPECT_EQ(groupPairs.size(), 33U * 32 / 2);  // one link between every pair of groups
  // Cutting the groups 16 | 17: 16 x 17 global links of 50 GB/s.
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 16 * 17 * 50e9);
}

TEST(Builders, ExplicitGraph) {
  const Fabric f = loadTopology("example-graph");
  EXPECT_EQ(f.gpus().size(), 4U);
  EXPECT_EQ(f.numHosts(), 2);
  EXPECT_EQ(f.links().size(), 20U);
  EXPECT_EQ(f.node(f.nicOf(2)).name, "b.nic0");
  EXPECT_EQ(f.node(f.find("leaf")).radix, 64);
  EXPECT_EQ(f.node(f.find("a.pcie1")).delay.picoseconds(), 150'000);
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 100e9);
}

TEST(Builders, ProgrammaticBuildAndInfo) {
  const Fabric f = buildTopology("fat_tree", {{"nodes", "10"}, {"node", "gpu"}, {"radix", "8"}});
  EXPECT_EQ(f.gpus().size(), 10U);
  EXPECT_EQ(f.numHosts(), 10);
  EXPECT_EQ(countSwitches(f, 0), 3);  // 4 ports down per 8-port leaf
  EXPECT_EQ(countKind(f, NodeKind::kPcieSwitch), 0);
  EXPECT_EQ(f.node(f.nicOf(9)).name, "n9.nic0");

  const auto names = builderNames();
  for (const char* b : {"h800_node", "h100_node", "gb200_nvl72", "single_switch", "fat_tree", "rail_optimized", "mpft",
                        "dragonfly", "graph"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), b), names.end()) << b;
  }
  const BuilderInfo& mpft = builderInfo("mpft");
  bool planes = false;
  for (const auto& p : mpft.params) {
    EXPECT_FALSE(p.doc.empty()) << p.name;
    if (p.name == "planes") {
      planes = true;
      EXPECT_EQ(p.defaultValue, "8");
    }
  }
  EXPECT_TRUE(planes);
}

}  // namespace
}  // namespace copro::topo
