/// One convention for link rates and per-message costs across the bundled hardware templates
/// (docs/simulator.md, "Link rates and per-message costs"): every NVLink states its achievable rate, the
/// nominal rate x 0.8 (the ratio the DeepSeek-V3 report measures on H800: 160 of 200 GB/s), and every
/// hardware template charges the same initiation costs as deepseek-v3.yaml (IBGDA issue, message rates, the
/// proxy's hop). The formula-check files (single-switch-*, example-graph) are ideal on purpose and exempt.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::sim {
namespace {

/// Bundled files that model real hardware (the rest are formula checks or examples).
const char* const kHardware[] = {"deepseek-v3", "dragonfly",          "fat-tree-2tier-1024", "fat-tree-2tier-1024-2to1",
                                 "gb200-nvl72", "gb200-nvl72-2rack",  "h100-node",           "h800-node",
                                 "mrft-2048",   "rail-optimized-128", "unified-64"};

constexpr double kNvlinkEfficiency = 0.8;

/// The figures deepseek-v3.yaml stated key by key before the preset (docs/simulator.md, "Initiation cost
/// models", [1] and [2]).
SimParams threadConvention() {
  SimParams p;
  InitiationCost& device = p.initiation[static_cast<int>(core::Initiation::kDevice)];
  device.issue = core::Time::ns(700);
  device.messageRate = 1.8e6;
  device.nicMessageRate = 260e6;
  InitiationCost& proxy = p.initiation[static_cast<int>(core::Initiation::kProxy)];
  proxy.issue = core::Time::ns(1500);
  proxy.extraLatency = core::Time::us(1);
  proxy.rankMessageRate = 2e6;
  proxy.nicMessageRate = 260e6;
  InitiationCost& offload = p.initiation[static_cast<int>(core::Initiation::kOffload)];
  offload.rankMessageRate = 260e6;
  offload.nicMessageRate = 260e6;
  return p;
}

TEST(LinkConventions, EveryHardwareTemplateChargesTheSameInitiationCosts) {
  const SimParams reference = threadConvention();
  for (const char* name : kHardware) {
    const SimParams p = SimParams::fromFabric(topo::loadTopology(name));
    for (int m = 0; m < 3; ++m) EXPECT_TRUE(p.initiation[m] == reference.initiation[m]) << name << " mode " << m;
  }
}

TEST(LinkConventions, EveryHardwareTemplateGivesTheMoeKernelsTheSameNvlinkShare) {
  // sim.moe.forward_scaleup_efficiency is a property of the normal kernels (their SM budget), calibrated once
  // on DeepEP's intranode EP8 points (docs/validation.md): a comparison across fabrics must not change it.
  for (const char* name : kHardware) {
    EXPECT_EQ(SimParams::fromFabric(topo::loadTopology(name)).moeForwardScaleUpEfficiency, 0.87) << name;
  }
  EXPECT_EQ(SimParams::fromFabric(topo::loadTopology("single-switch-1024")).moeForwardScaleUpEfficiency, 1.0);
  for (const char* bad : {"0", "1.5", "-0.2", "x", "0.5x"}) {
    topo::Fabric f = topo::loadTopology("h800-node");
    f.simParams["moe.forward_scaleup_efficiency"] = bad;
    try {
      (void)SimParams::fromFabric(f);
      ADD_FAILURE() << "accepted forward_scaleup_efficiency " << bad;
    } catch (const core::Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a fraction in (0, 1]"), std::string::npos) << e.what();
    }
  }
}

TEST(LinkConventions, NvlinkRatesAreNominalTimesTheMeasuredRatio) {
  // H800 200, H100 450, GB200 900 GB/s nominal per direction.
  std::set<double> achievable;
  for (double nominal : {200e9, 450e9, 900e9}) achievable.insert(nominal * kNvlinkEfficiency);
  for (const char* name : kHardware) {
    const topo::Fabric f = topo::loadTopology(name);
    for (const topo::Link& l : f.links()) {
      if (l.kind != topo::LinkKind::kNvLink) continue;
      EXPECT_EQ(achievable.count(l.bandwidth.bytesPerSecond()), 1U) << name << ": " << l.bandwidth.bytesPerSecond();
    }
  }
}

}  // namespace
}  // namespace copro::sim
