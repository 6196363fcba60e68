// Malformed topology files and overrides give errors that name the file, the line, the key and a suggestion;
// overrides and the search path work; describe() and toDot() say what they promise.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "copro/core/status.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::topo {
namespace {

namespace fs = std::filesystem;

class TopologyErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("copro_topo_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  /// The message of the error loading `path` throws (fails the test when it loads).
  static std::string errorOf(const std::string& path, const std::vector<std::string>& overrides = {}) {
    try {
      (void)loadTopology(path, overrides);
    } catch (const core::Error& e) {
      return e.message();
    }
    ADD_FAILURE() << path << " loaded without an error";
    return {};
  }
  fs::path dir_;
};

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST_F(TopologyErrors, UnknownBuilder) {
  const auto path = write("bad-builder.yaml", "name: x\nbuilder: mfpt\nparams:\n  nodes: 4\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "bad-builder.yaml");
  EXPECT_HAS(m, "line 2");
  EXPECT_HAS(m, "unknown builder 'mfpt'");
  EXPECT_HAS(m, "did you mean 'mpft'?");
}

TEST_F(TopologyErrors, UnknownParameter) {
  const auto path = write("bad-param.yaml", "name: x\nbuilder: fat_tree\nparams:\n  node: gpu\n  radx: 4\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "bad-param.yaml");
  EXPECT_HAS(m, "line 5");
  EXPECT_HAS(m, "unknown parameter 'radx'");
  EXPECT_HAS(m, "did you mean 'radix'?");
}

TEST_F(TopologyErrors, UnknownTopLevelKey) {
  const auto path = write("bad-key.yaml", "name: x\nbulider: mpft\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "bad-key.yaml' line 2");
  EXPECT_HAS(m, "unknown key 'bulider'");
  EXPECT_HAS(m, "did you mean 'builder'?");
}

TEST_F(TopologyErrors, BadBandwidthUnit) {
  const auto path = write("bad-unit.yaml", "name: x\nbuilder: mpft\nparams:\n  nodes: 2\n  nic_bw: 400Gbit\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "bad-unit.yaml' line 5");
  EXPECT_HAS(m, "parameter 'nic_bw' = '400Gbit'");
  EXPECT_HAS(m, "did you mean '400Gb/s'?");
  EXPECT_HAS(m, "Gb/s");
  EXPECT_HAS(m, "GB/s");
}

TEST_F(TopologyErrors, TimeWithoutUnit) {
  const auto path = write("bad-time.yaml", "builder: single_switch\nparams:\n  gpus: 4\n  latency: 500\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "line 4");
  EXPECT_HAS(m, "'latency'");
  EXPECT_HAS(m, "no unit");
}

TEST_F(TopologyErrors, MissingBuilder) {
  const auto path = write("no-builder.yaml", "name: x\nparams:\n  nodes: 4\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "no-builder.yaml");
  EXPECT_HAS(m, "missing required key 'builder'");
  EXPECT_HAS(m, "mpft");
}

TEST_F(TopologyErrors, YamlSyntax) {
  const auto path = write("bad-syntax.yaml", "name: x\nbuilder: mpft\nparams: {nodes: 4, planes: 8\nsim:\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "bad-syntax.yaml");
  EXPECT_HAS(m, "line ");
  EXPECT_HAS(m, "column ");
  EXPECT_HAS(m, "YAML syntax error");
}

TEST_F(TopologyErrors, RadixExceeded) {
  // 300 servers x 8 NICs = 2400 endpoints; 64-port switches in 2 tiers reach 2048.
  const auto path =
      write("too-big.yaml", "builder: fat_tree\nparams:\n  node: h800\n  nodes: 300\n  radix: 64\n  tiers: 2\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "too-big.yaml' line 4");
  EXPECT_HAS(m, "parameter 'nodes' = '300'");
  EXPECT_HAS(m, "radix exceeded");
  EXPECT_HAS(m, "2048");
  // An explicit graph whose switch has more links than ports fails in Fabric::finalize, named by the file.
  const auto graph = write("graph-radix.yaml",
                           "builder: graph\nnodes:\n  - {name: g0, kind: gpu}\n  - {name: g1, kind: gpu}\n"
                           "  - {name: sw, kind: switch, radix: 1}\nlinks:\n  - {a: g0, b: sw, bw: 1GB/s}\n"
                           "  - {a: g1, b: sw, bw: 1GB/s}\n");
  const std::string g = errorOf(graph);
  EXPECT_HAS(g, "graph-radix.yaml");
  EXPECT_HAS(g, "'sw' has 2 links but radix 1");
}

TEST_F(TopologyErrors, GraphLinkToUnknownNode) {
  const auto path = write("graph-link.yaml",
                          "builder: graph\nnodes:\n  - {name: gpu0, kind: gpu}\n  - {name: gpu1, kind: gpu}\n"
                          "  - {name: sw, kind: switch}\nlinks:\n  - {a: gpu0, b: sw, bw: 50GB/s}\n"
                          "  - {a: gpu11, b: sw, bw: 50GB/s}\n");
  const std::string m = errorOf(path);
  EXPECT_HAS(m, "graph-link.yaml' line 8");
  EXPECT_HAS(m, "links[1]");
  EXPECT_HAS(m, "'a' names node 'gpu11'");
  EXPECT_HAS(m, "did you mean 'gpu1'?");
}

TEST_F(TopologyErrors, GraphNodeMistakes) {
  const auto unknownKey =
      write("graph-key.yaml", "builder: graph\nnodes:\n  - name: g0\n    kind: gpu\n    rial: 3\nlinks: []\n");
  std::string m = errorOf(unknownKey);
  EXPECT_HAS(m, "graph-key.yaml' line 5");
  EXPECT_HAS(m, "unknown key 'rial'");
  EXPECT_HAS(m, "did you mean 'rail'?");

  const auto dup = write("graph-dup.yaml",
                         "builder: graph\nnodes:\n  - {name: g0, kind: gpu}\n  - {name: g0, kind: gpu}\nlinks: []\n");
  m = errorOf(dup);
  EXPECT_HAS(m, "line 4");
  EXPECT_HAS(m, "'g0' is already used at line 3");

  const auto kind = write("graph-kind.yaml", "builder: graph\nnodes:\n  - {name: g0, kind: gpuu}\nlinks: []\n");
  m = errorOf(kind);
  EXPECT_HAS(m, "line 3");
  EXPECT_HAS(m, "did you mean 'gpu'?");

  const auto noBw = write("graph-bw.yaml",
                          "builder: graph\nnodes:\n  - {name: a, kind: gpu}\n  - {name: b, kind: gpu}\nlinks:\n"
                          "  - {a: a, b: b}\n");
  m = errorOf(noBw);
  EXPECT_HAS(m, "line 6");
  EXPECT_HAS(m, "missing required key 'bw'");

  const auto noNodes = write("graph-nonodes.yaml", "builder: graph\nlinks: []\n");
  EXPECT_HAS(errorOf(noNodes), "needs the key 'nodes'");
}

TEST_F(TopologyErrors, BadOverrides) {
  std::string m = errorOf("deepseek-v3", {"planez=4"});
  EXPECT_HAS(m, "override 'planez=4'");
  EXPECT_HAS(m, "did you mean 'planes'?");
  m = errorOf("deepseek-v3", {"nodes"});
  EXPECT_HAS(m, "expected key=value");
  m = errorOf("deepseek-v3", {"nodes=4096"});
  EXPECT_HAS(m, "override 'nodes=4096'");
  EXPECT_HAS(m, "radix exceeded");
  m = errorOf("deepseek-v3", {"node=h900"});
  EXPECT_HAS(m, "did you mean 'h800'?");
}

TEST_F(TopologyErrors, UnknownName) {
  const std::string m = errorOf("deepseek-v4");
  EXPECT_HAS(m, "topology 'deepseek-v4'");
  EXPECT_HAS(m, "did you mean 'deepseek-v3'?");
  EXPECT_HAS(errorOf((dir_ / "missing.yaml").string()), "no such file");
}

TEST_F(TopologyErrors, ProgrammaticErrors) {
  try {
    (void)buildTopology("fat_tre", {});
    ADD_FAILURE();
  } catch (const core::Error& e) {
    EXPECT_HAS(e.message(), "did you mean 'fat_tree'?");
  }
  try {
    (void)buildTopology("single_switch", {{"bw", "fast"}});
    ADD_FAILURE();
  } catch (const core::Error& e) {
    EXPECT_HAS(e.message(), "parameter 'bw' = 'fast'");
  }
  EXPECT_THROW((void)buildTopology("graph", {}), core::Error);
}

TEST_F(TopologyErrors, Overrides) {
  const Fabric f = loadTopology("deepseek-v3", {"nodes=16", "nic_bw=800Gb/s", "leaves=auto", "sim.routing=shortest",
                                                "sim.initiation.offload.issue=0.2us"});
  EXPECT_EQ(f.gpus().size(), 128U);
  EXPECT_EQ(f.numHosts(), 16);
  // 16 NICs per plane: one leaf, 16 uplinks, one spine.
  std::int64_t switches = 0;
  for (const Node& n : f.nodes()) switches += n.kind == NodeKind::kSwitch ? 1 : 0;
  EXPECT_EQ(switches, 8 * 2);
  const std::int32_t nic = f.nicOf(0);
  EXPECT_DOUBLE_EQ(f.link(f.linksOf(nic).back()).bandwidth.bytesPerSecond(), 100e9);
  EXPECT_EQ(f.simParams.at("routing"), "shortest");
  EXPECT_HAS(f.simParamOrigin.at("routing"), "override");
  EXPECT_EQ(f.simParams.at("initiation.offload.issue"), "0.2us");
  EXPECT_EQ(f.simParams.at("chunk_size"), "1M");  // untouched keys stay
  EXPECT_DOUBLE_EQ(f.bisectionBandwidth->bytesPerSecond(), 128 * 100e9 / 2);
}

TEST_F(TopologyErrors, SearchPath) {
  write("my-cluster.yaml", "builder: single_switch\nparams: {gpus: 6}\n");
  const char* old = std::getenv("COPRO_TOPOLOGY_PATH");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("COPRO_TOPOLOGY_PATH", dir_.c_str(), 1);
  const Fabric f = loadTopology("my-cluster");
  const auto names = bundledTopologies();
  if (old != nullptr) {
    ::setenv("COPRO_TOPOLOGY_PATH", saved.c_str(), 1);
  } else {
    ::unsetenv("COPRO_TOPOLOGY_PATH");
  }
  EXPECT_EQ(f.gpus().size(), 6U);
  EXPECT_EQ(f.name, "my-cluster");
  EXPECT_NE(std::find(names.begin(), names.end(), "my-cluster"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "deepseek-v3"), names.end());
}

TEST(TopologyOutput, Describe) {
  const std::string d = describe(loadTopology("deepseek-v3"));
  EXPECT_HAS(d, "topology deepseek-v3 (builder mpft)");
  EXPECT_HAS(d, "2048 on 256 hosts (8 per host; SMs 132; HBM 3.35TB/s)");
  EXPECT_HAS(d, "switch 768");
  EXPECT_HAS(d, "tier 0 (leaf) 512, tier 1 (spine) 256; 8 planes of 96");
  EXPECT_HAS(d, "rails       8 (0..7)");
  EXPECT_HAS(d, "planes      8 (0..7)");
  EXPECT_HAS(d, "nvlink       2048 x 160GB/s");
  EXPECT_HAS(d, "bisection   51.2TB/s per direction");
  EXPECT_HAS(d, "initiation.preset = hopper_cx7_thread");
}

TEST(TopologyOutput, Dot) {
  const std::string small = toDot(loadTopology("h800-node"));
  EXPECT_HAS(small, "subgraph cluster_host0");
  EXPECT_HAS(small, "\"n0.gpu3\"");
  EXPECT_HAS(small, "\"n0.gpu3\" -- \"n0.nvswitch\" [label=\"160GB/s\", style=bold]");
  EXPECT_EQ(small.find("not drawn"), std::string::npos);

  // 2048 GPUs: servers collapse into boxes, and the drawing stops at max-nodes boxes.
  DotOptions options;
  options.maxNodes = 100;
  const std::string big = toDot(loadTopology("deepseek-v3"), options);
  EXPECT_HAS(big, "servers collapsed");
  EXPECT_HAS(big, "\"host0\" [shape=box3d");
  EXPECT_HAS(big, "924 of 1024 boxes not drawn");  // 256 servers + 768 switches
  std::size_t boxes = 0;
  for (std::size_t pos = big.find("[shape="); pos != std::string::npos; pos = big.find("[shape=", pos + 1)) ++boxes;
  EXPECT_EQ(boxes, 101U);  // 100 boxes and the note
}

}  // namespace
}  // namespace copro::topo
