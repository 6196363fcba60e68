// Hostile topology files (issue 16, docs/config.md "Limits"): one YAML document, no duplicate keys, a
// bounded expansion of aliases, switch radix and network size checked before building, physical ranges
// on bandwidths and delays. Each error names the file, line or parameter, the value and the limit.
#include <gtest/gtest.h>

#include <string>

#include "copro/core/status.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::topo {
namespace {

using core::Error;

std::string errorOf(const std::string& yaml) {
  try {
    (void)loadTopologyText(yaml, "t.yaml");
  } catch (const Error& e) {
    return e.message();
  }
  ADD_FAILURE() << "accepted:\n" << yaml;
  return {};
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(TopologyLimits, DuplicateKeysAreErrors) {
  EXPECT_HAS(errorOf("builder: h800_node\nname: a\nname: b\n"),
             "topology 't.yaml' line 3: key 'name' is given twice in one mapping (first on line 2)");
  EXPECT_HAS(errorOf("builder: fat_tree\nparams:\n  nodes: 2\n  nodes: 4\n"), "line 4: key 'nodes' is given twice");
  EXPECT_HAS(errorOf("builder: h800_node\nsim: {routing: ecmp, routing: shortest}\n"), "key 'routing' is given twice");
}

TEST(TopologyLimits, ASecondDocumentIsAnError) {
  EXPECT_HAS(errorOf("builder: h800_node\n---\nbuilder: mpft\n"), "a second YAML document");
  // One document with an explicit start marker is fine.
  EXPECT_NO_THROW((void)loadTopologyText("---\nbuilder: h800_node\n", "t.yaml"));
}

TEST(TopologyLimits, AliasExpansionIsBounded) {
  // Ten levels of ten aliases: 10^10 nodes if walked naively.
  std::string y = "builder: h800_node\nsim:\n  x0: &a0 [1,1,1,1,1,1,1,1,1,1]\n";
  for (int i = 1; i < 10; ++i) {
    const std::string p = "*a" + std::to_string(i - 1);
    y += "  x" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + p;
    for (int k = 1; k < 10; ++k) y += "," + p;
    y += "]\n";
  }
  EXPECT_HAS(errorOf(y), "more than 1048576 YAML nodes");
}

TEST(TopologyLimits, MpftRadixIsCheckedBeforeBuilding) {
  EXPECT_HAS(errorOf("builder: mpft\nparams: {nodes: 2, radix: 1000000}\n"),
             "parameter 'radix' = '1000000': must be between 2 and 65536");
  EXPECT_HAS(errorOf("builder: mpft\nparams: {nodes: 2, radix: 65536}\n"), "above the limit of 8388608 links");
  EXPECT_HAS(errorOf("builder: fat_tree\nparams: {nodes: 1048576}\n"),
             "parameter 'nodes' = '1048576': 1048576 servers x 8 GPUs = 8388608 GPUs, above the limit of 1048576");
}

TEST(TopologyLimits, PhysicalRangesOfLinksAndSwitches) {
  EXPECT_HAS(errorOf("builder: fat_tree\nparams: {nodes: 4, nic_bw: 1e-300GB/s}\n"),
             "parameter 'nic_bw' = '1e-300GB/s': '1e-300GB/s' is outside the physical range of a link, 1MB/s to "
             "1PB/s (or 0)");
  EXPECT_HAS(errorOf("builder: fat_tree\nparams: {nodes: 4, nic_bw: 2000TB/s}\n"), "outside the physical range");
  EXPECT_HAS(errorOf("builder: fat_tree\nparams: {nodes: 4, switch_delay: 9.3e6s}\n"),
             "parameter 'switch_delay' = '9.3e6s': '9.3e6s' is outside the physical range of a latency or delay, 0 "
             "to 1s");
  EXPECT_HAS(errorOf("builder: fat_tree\nparams: {nodes: 4, link_latency: 1e30s}\n"), "parameter 'link_latency'");
}

}  // namespace
}  // namespace copro::topo
