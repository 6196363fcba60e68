/// In-switch reduction and multicast (docs/simulator.md, "In-switch reduction and multicast"): the `nvls`
/// all-reduce on an H100 server and the `sharp` all-reduce on a SHARP fat-tree against their bandwidth term
/// S (1 + 1/n) / B to 0.1%, and the same Programs without the switch capabilities (one transfer per peer).
/// Latencies and issue costs are set to zero so that the difference of two sizes isolates the bandwidth term.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "copro/core/status.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::sim {
namespace {

constexpr std::uint64_t kSmall = 64ULL << 20;
constexpr std::uint64_t kLarge = 256ULL << 20;

double allReduceUs(const topo::Fabric& f, const std::string& algo, std::uint64_t bytes) {
  Communicator comm(f);
  CollectiveCall call;
  call.size = bytes;
  call.algorithm = algo;
  call.chunkBytes = 1ULL << 20;
  const PreparedCall p = comm.prepare(call);
  return comm.run(*p.program).time.microseconds();
}

/// T(256 MiB) - T(64 MiB): fixed costs and the pipeline's fill (one chunk) cancel.
double slopeUs(const topo::Fabric& f, const std::string& algo) {
  return allReduceUs(f, algo, kLarge) - allReduceUs(f, algo, kSmall);
}

double formulaUs(double n, double bytesPerSecond) {
  return static_cast<double>(kLarge - kSmall) * (1 + 1 / n) / bytesPerSecond * 1e6;
}

/// The rate of GPU 0's first link of `kind` (its NVLink, or its PCIe/network hop) in bytes/s.
double gpuLinkRate(const topo::Fabric& f, topo::LinkKind kind) {
  for (const std::int32_t l : f.linksOf(f.gpus()[0])) {
    if (f.link(l).kind == kind) return f.link(l).bandwidth.bytesPerSecond();
  }
  return 0;
}

const std::vector<std::string> kNoLatency{"nvlink_latency=0", "nvswitch_delay=0", "sim.initiation.device.issue=0"};

TEST(InSwitch, NvlsOnOneNvSwitchMatchesItsBandwidthTerm) {
  const topo::Fabric f = topo::loadTopology("h100-node", kNoLatency);
  EXPECT_TRUE(Communicator(f).inNetworkReduction());
  const double rate = gpuLinkRate(f, topo::LinkKind::kNvLink);
  EXPECT_DOUBLE_EQ(rate, 360e9);  // the h100 template's NVLink per direction (achievable)
  const double want = formulaUs(8, rate);
  EXPECT_NEAR(slopeUs(f, "nvls"), want, want * 1e-3);
}

TEST(InSwitch, WithoutNvlsTheSameProgramSendsOneCopyPerPeer) {
  std::vector<std::string> off = kNoLatency;
  off.emplace_back("nvls=false");
  const topo::Fabric plain = topo::loadTopology("h100-node", off);
  const topo::Fabric nvls = topo::loadTopology("h100-node", kNoLatency);
  EXPECT_FALSE(Communicator(plain).inNetworkReduction());
  const double with = allReduceUs(nvls, "nvls", kLarge);
  const double without = allReduceUs(plain, "nvls", kLarge);
  EXPECT_NEAR(without, allReduceUs(plain, "lsa", kLarge), 1e-6 * without);
  // Without the switch each GPU link carries every peer's copy: about 2S/B instead of S(1 + 1/n)/B.
  EXPECT_GT(without, 1.5 * with);
}

topo::Fabric sharpFatTree(bool sharp) {
  return topo::loadTopology(
      "fat-tree-2tier-1024",
      {"node=gpu", "nodes=16", "radix=8", std::string("sharp=") + (sharp ? "true" : "false"), "link_latency=0",
       "switch_delay=0", "nic_latency=0", "pcie_latency=0", "pcie_switch_delay=0", "sim.initiation.device.issue=0",
       "sim.initiation.device.message_rate=0"});
}

TEST(InSwitch, SharpOnAFatTreeMatchesItsBandwidthTerm) {
  const topo::Fabric f = sharpFatTree(true);
  EXPECT_TRUE(Communicator(f).inNetworkReduction());
  // 16 one-GPU servers on 400 Gb/s NICs, two leaves: every switch reduces and replicates.
  const double want = formulaUs(16, 50e9);
  EXPECT_NEAR(slopeUs(f, "sharp"), want, want * 1e-3);
}

TEST(InSwitch, SharpNeedsSwitchesThatReduceAcrossServers) {
  const topo::Fabric f = sharpFatTree(false);
  Communicator comm(f);
  EXPECT_FALSE(comm.inNetworkReduction());
  CollectiveCall call;
  call.size = kSmall;
  call.algorithm = "sharp";
  try {
    (void)comm.prepare(call);
    FAIL() << "sharp ran across servers whose switches do not reduce";
  } catch (const core::Error& e) {
    EXPECT_NE(e.message().find("sharp: true"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace copro::sim
