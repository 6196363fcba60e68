// Hostile simulator settings and workload files (issue 16, docs/simulator.md and docs/config.md "Limits"):
// every `sim:` duration and bandwidth needs its unit, every quantity lies in a stated physical range, and
// workload numbers are range-checked before they are narrowed or allocated from.
#include <gtest/gtest.h>

#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/params.hpp"
#include "copro/sim/workload.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::sim {
namespace {

using core::Error;

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

std::string simError(const std::string& simSection) {
  try {
    const topo::Fabric f = topo::loadTopologyText("builder: h800_node\nsim:\n" + simSection, "t.yaml");
    (void)SimParams::fromFabric(f);
  } catch (const Error& e) {
    return e.message();
  }
  ADD_FAILURE() << "accepted: " << simSection;
  return {};
}

TEST(SimParamLimits, DurationsAndBandwidthsNeedUnits) {
  EXPECT_HAS(simError("  initiation: {device: {issue: 500}}\n"),
             "t.yaml:3: sim key 'initiation.device.issue': '500' has no unit");
  EXPECT_HAS(simError("  initiation: {proxy: {extra_latency: 1}}\n"), "'1' has no unit");
  EXPECT_HAS(simError("  reduce_bw: 2.5e10\n"), "sim key 'reduce_bw': '2.5e10' has no unit");
  // A bare 0 needs no unit, as for builder parameters.
  const topo::Fabric f =
      topo::loadTopologyText("builder: h800_node\nsim: {reduce_bw: 0, initiation: {device: {issue: 0}}}\n", "t.yaml");
  EXPECT_NO_THROW((void)SimParams::fromFabric(f));
}

TEST(SimParamLimits, PhysicalRanges) {
  EXPECT_HAS(simError("  initiation: {device: {issue: 2s}}\n"), "'2s' is outside the range 0..1s");
  EXPECT_HAS(simError("  copy_bw: 1e-300GB/s\n"), "is outside the range 1MB/s..1PB/s");
  EXPECT_HAS(simError("  initiation: {device: {message_rate: 1e-300}}\n"), "'1e-300' is outside the range 1..1T ops/s");
  EXPECT_HAS(simError("  compute: {flops: 1}\n"), "outside the range 1G..1000P");
  EXPECT_HAS(simError("  signal_bytes: 1G\n"), "outside the range 0..1M");
}

std::string workloadError(const std::string& yaml) {
  try {
    (void)parseWorkload(yaml, "w.yaml");
  } catch (const Error& e) {
    return e.message();
  }
  ADD_FAILURE() << "accepted:\n" << yaml;
  return {};
}

TEST(WorkloadLimits, DuplicateKeysAndDocuments) {
  const std::string head = "topology: h800-node\nranks: 8\n";
  EXPECT_HAS(workloadError(head + "ranks: 4\ntasks:\n  - {name: a, type: compute, flops: 1T}\n"),
             "workload 'w.yaml' line 3: key 'ranks' is given twice in one mapping (first on line 2)");
  EXPECT_HAS(workloadError(head + "tasks:\n  - {name: a, type: compute, flops: 1T}\n---\nranks: 4\n"),
             "a second YAML document");
}

TEST(WorkloadLimits, NumbersAreRangeChecked) {
  const std::string head = "topology: h800-node\nranks: 8\ntasks:\n  - {name: a, type: moe_dispatch, group: 8, ";
  EXPECT_HAS(workloadError(head + "tokens: 2000000000, hidden: 256, topk: 2, experts: 16}\n"),
             "workload 'w.yaml' line 4: key 'tokens': 2000000000 is outside 0..1048576");
  EXPECT_HAS(workloadError(head + "tokens: 16, hidden: 256, topk: 4294967297, experts: 16}\n"),
             "key 'topk': 4294967297 is outside 1..65536");
  EXPECT_HAS(workloadError(head + "tokens: 16, hidden: 256, topk: 2, experts: 16, sms: 1e9}\n"),
             "key 'sms': 1000000000 is outside 0..65536");
}

}  // namespace
}  // namespace copro::sim
