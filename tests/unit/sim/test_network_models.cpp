/// The network model interface (docs/simulator.md, "Network models"): the registered models by name, the
/// `sim.network` key, and the two models against each other and the formulas — equal on a transfer alone
/// on its path, different under contention (flow shares the link max-min fairly, alpha_beta does not).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/params.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/topology.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using core::Addr;
using core::BufferId;
using core::Op;

constexpr double kB = 10e9;               // bytes/s per link
constexpr std::int64_t kLPs = 1'000'000;  // 1 us per link
constexpr std::int64_t kDPs = 500'000;    // 0.5 us switch delay
constexpr std::uint64_t kBytes = 10'000'000;

/// Ranks `senders` each put kBytes to rank 0 with a signal; rank 0 waits for all of them.
core::Program incast(int senders) {
  core::ProgramHeader h;
  h.name = "incast";
  h.nranks = senders + 1;
  h.numSemaphores = 1;
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(senders + 1));
  for (int s = 1; s <= senders; ++s) {
    ranks[static_cast<std::size_t>(s)].emit(0, Op::put(0, Addr{0, BufferId::kOutput, 0}, Addr{}, kBytes, 0, 1));
    ranks[static_cast<std::size_t>(s)].emit(0, Op::flush());
  }
  ranks[0].emit(0, Op::wait(0, static_cast<std::uint64_t>(senders)));
  return core::Program(h, std::move(ranks));
}

std::int64_t simulatePs(const std::string& model, int senders) {
  const auto f =
      testing::starFabric(senders + 1, core::Bandwidth::bytesPerSec(kB), core::Time::ps(kLPs), core::Time::ps(kDPs));
  SimParams p;
  p.network = model;
  Simulator sim(f, p);
  return sim.run(incast(senders)).time.picoseconds();
}

TEST(NetworkModels, AgreeOnATransferAloneOnItsPath) {
  // One put: 2 links of latency, the switch delay, 10 MB at 10 GB/s = 1 ms.
  const std::int64_t want = 2 * kLPs + kDPs + 1'000'000'000;
  EXPECT_EQ(simulatePs("flow", 1), want);
  EXPECT_EQ(simulatePs("alpha_beta", 1), want);
}

TEST(NetworkModels, DifferUnderContention) {
  // Three senders into one port: flow shares the switch -> rank 0 channel (3 ms); alpha_beta lets each
  // transfer take the full rate (1 ms), as a congestion-unaware model does.
  const std::int64_t alpha = 2 * kLPs + kDPs;
  EXPECT_EQ(simulatePs("flow", 3), alpha + 3'000'000'000);
  EXPECT_EQ(simulatePs("alpha_beta", 3), alpha + 1'000'000'000);
}

TEST(NetworkModels, SelectedByTheSimNetworkKey) {
  EXPECT_EQ(SimParams{}.network, "flow");
  const topo::Fabric f = topo::loadTopology("h800-node", {"sim.network=alpha_beta"});
  EXPECT_EQ(SimParams::fromFabric(f).network, "alpha_beta");
  const auto& keys = simParamKeys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "network"), keys.end());
}

TEST(NetworkModels, SelectedInATopologyFile) {
  const std::string path = ::testing::TempDir() + "copro_network_model_topology.yaml";
  {
    std::ofstream f(path);
    f << "name: tiny\nbuilder: single_switch\nparams: {gpus: 4, bw: 10GB/s, latency: 1us}\n"
         "sim:\n  network: alpha_beta\n";
  }
  const topo::Fabric f = topo::loadTopology(path);
  EXPECT_EQ(SimParams::fromFabric(f).network, "alpha_beta");
  std::remove(path.c_str());
}

TEST(NetworkModels, UnknownNameListsTheKnownModels) {
  topo::Fabric f = testing::starFabric(2, core::Bandwidth::bytesPerSec(kB), core::Time{}, core::Time{});
  f.simParams["network"] = "flw";
  try {
    (void)SimParams::fromFabric(f);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    const std::string& m = e.message();
    EXPECT_NE(m.find("sim key 'network'"), std::string::npos) << m;
    EXPECT_NE(m.find("unknown network model 'flw' (did you mean 'flow'?)"), std::string::npos) << m;
    EXPECT_NE(m.find("known models: flow, alpha_beta"), std::string::npos) << m;
  }
  SimParams p;
  p.network = "packet";
  const auto star = testing::starFabric(2, core::Bandwidth::bytesPerSec(kB), core::Time{}, core::Time{});
  Simulator sim(star, p);
  try {
    (void)sim.run(incast(1));
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(e.message().find("known models: flow, alpha_beta"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace copro::sim
