/// Initiation cost models (docs/simulator.md, "Initiation cost models"): per-op issue cost, per-lane rate,
/// the per-rank server shared by all lanes of a mode (proxy thread, co-processor), the per-NIC ceiling
/// that only network transfers pay, and the `sim:` keys that set them.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/params.hpp"
#include "copro/sim/simulator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

using core::Addr;
using core::BufferId;
using core::Initiation;
using core::Op;

constexpr int kProxy = static_cast<int>(Initiation::kProxy);
constexpr int kDevice = static_cast<int>(Initiation::kDevice);
constexpr int kOffload = static_cast<int>(Initiation::kOffload);

// boxFabric defaults: every link 500 ns; PCIe switch, leaf and NVSwitch 100 ns; PCIe 25 GB/s, NVLink
// 160 GB/s, network 50 GB/s. Rank 0 -> rank 4 (other server): gpu-pcie-nic-leaf-nic-pcie-gpu, 6 links and
// 3 switches; an 8-B transfer is limited by PCIe (320 ps). Rank 0 -> rank 1: gpu-nvswitch-gpu (50 ps).
constexpr std::int64_t kRemote8B = 6 * 500'000 + 3 * 100'000 + 320;
constexpr std::int64_t kLocal8B = 2 * 500'000 + 100'000 + 50;

topo::Fabric box() {
  testing::BoxParams bp;
  bp.hosts = 2;
  bp.gpusPerHost = 4;
  return testing::boxFabric(bp);
}

/// Rank 0 runs `lanes` lanes in mode `mode`, each `puts` puts of `bytes` to `peer` with a signal; `peer`
/// waits for all of them.
core::Program fanIn(int lanes, int puts, std::uint64_t bytes, std::int32_t peer, Initiation mode) {
  core::ProgramHeader h;
  h.name = "fan-in";
  h.nranks = 8;
  h.numSemaphores = 1;
  std::vector<core::RankProgram> ranks(8);
  for (int l = 0; l < lanes; ++l) {
    ranks[0].addLane(mode);
    for (int i = 0; i < puts; ++i)
      ranks[0].emit(l, Op::put(peer, Addr{peer, BufferId::kOutput, 0}, Addr{}, bytes, 0, 1));
    ranks[0].emit(l, Op::flush());
  }
  ranks[static_cast<std::size_t>(peer)].emit(0, Op::wait(0, static_cast<std::uint64_t>(lanes * puts)));
  return core::Program(h, std::move(ranks));
}

std::int64_t runPs(const topo::Fabric& f, const SimParams& p, const core::Program& program) {
  Simulator sim(f, p);
  return sim.run(program).time.picoseconds();
}

TEST(SimInitiation, OnePutTakesThePathLatencyWhenInitiationIsFree) {
  const auto f = box();
  EXPECT_EQ(runPs(f, SimParams{}, fanIn(1, 1, 8, 4, Initiation::kDevice)), kRemote8B);
  EXPECT_EQ(runPs(f, SimParams{}, fanIn(1, 1, 8, 1, Initiation::kDevice)), kLocal8B);
}

TEST(SimInitiation, DeviceBackToBackPutsPayIssueEachAndLatencyOnce) {
  // N back-to-back 8-B puts on one lane: N * issue + latency (+ extra latency once, on the last delivery).
  const auto f = box();
  SimParams p;
  p.initiation[kDevice].issue = core::Time::ns(700);
  const int n = 10;
  EXPECT_EQ(runPs(f, p, fanIn(1, n, 8, 4, Initiation::kDevice)), n * 700'000 + kRemote8B);
  p.initiation[kDevice].extraLatency = core::Time::ns(250);
  EXPECT_EQ(runPs(f, p, fanIn(1, n, 8, 4, Initiation::kDevice)), n * 700'000 + kRemote8B + 250'000);
  // A lane of another mode does not pay the device costs: its N puts start at once and share PCIe.
  EXPECT_EQ(runPs(f, p, fanIn(1, n, 8, 4, Initiation::kOffload)), kRemote8B - 320 + n * 320);
}

TEST(SimInitiation, ProxyRateIsSharedByAllProxyLanesOfARank) {
  // One proxy thread per GPU at 1 M ops/s: two lanes of N puts each make 2N ops, one per microsecond, so
  // the last starts at (2N - 1) us. With the same rate per lane instead, the lanes run side by side.
  const auto f = box();
  const int n = 5;
  SimParams shared;
  shared.initiation[kProxy].rankMessageRate = 1e6;
  shared.initiation[kProxy].extraLatency = core::Time::us(1);
  EXPECT_EQ(runPs(f, shared, fanIn(2, n, 8, 4, Initiation::kProxy)), (2 * n - 1) * 1'000'000 + kRemote8B + 1'000'000);
  SimParams perLane;
  perLane.initiation[kProxy].messageRate = 1e6;
  perLane.initiation[kProxy].extraLatency = core::Time::us(1);
  // (the two lanes' puts start together and share PCIe: 640 ps)
  EXPECT_EQ(runPs(f, perLane, fanIn(2, n, 8, 4, Initiation::kProxy)),
            (n - 1) * 1'000'000 + kRemote8B + 320 + 1'000'000);
  // Device lanes of the same rank do not queue behind the proxy: all 2N puts start at once.
  EXPECT_EQ(runPs(f, shared, fanIn(2, n, 8, 4, Initiation::kDevice)), kRemote8B - 320 + 2 * n * 320);
}

TEST(SimInitiation, NicCeilingBindsWhenManyLanesShareOneNic) {
  // 16 device lanes at 21.6 M/s each (one warp per lane) offer 345.6 M ops/s to one NIC that takes 260 M/s:
  // the NIC is busy from the first op on, so the last of the 16N ops enters the network at
  // (16N - 1) / 260 M/s (3847 ps per op, rounded up to the picosecond).
  const auto f = box();
  SimParams p;
  p.initiation[kDevice].messageRate = 21.6e6;
  p.initiation[kDevice].nicMessageRate = 260e6;
  const int lanes = 16;
  const int n = 20;
  EXPECT_EQ(runPs(f, p, fanIn(lanes, n, 8, 4, Initiation::kDevice)), std::int64_t{lanes * n - 1} * 3847 + kRemote8B);
  // Two lanes (43.2 M/s) stay under the ceiling: the per-lane rate decides, (N - 1) * 46297 ps, plus one
  // NIC slot for the second lane's op issued at the same time as the first's.
  EXPECT_EQ(runPs(f, p, fanIn(2, n, 8, 4, Initiation::kDevice)), std::int64_t{n - 1} * 46297 + 3847 + kRemote8B);
  // Inside the server (NVLink) there is no NIC on the path: the ceiling does not apply; the 16 puts issued
  // together share the 160 GB/s link (16 x 50 ps).
  EXPECT_EQ(runPs(f, p, fanIn(lanes, n, 8, 1, Initiation::kDevice)),
            std::int64_t{n - 1} * 46297 + kLocal8B - 50 + lanes * 50);
}

TEST(SimInitiation, OffloadEngineThroughputInOpsAndBytes) {
  // The co-processor of rank 0 holds each op for 1 / rank_message_rate + bytes / rank_bw: 2 lanes x N puts
  // of 1000 B at 10 M ops/s and 1 GB/s -> 0.1 us + 1 us per op, one after the other.
  const auto f = box();
  SimParams p;
  p.initiation[kOffload].rankMessageRate = 10e6;
  p.initiation[kOffload].rankBandwidth = core::Bandwidth::bytesPerSec(1e9);
  const int n = 4;
  // The last op starts at (2N - 1) * 1.1 us; 1000 B cross the 25 GB/s PCIe in 40 ns.
  EXPECT_EQ(runPs(f, p, fanIn(2, n, 1000, 4, Initiation::kOffload)),
            (2 * n - 1) * 1'100'000 + kRemote8B - 320 + 40'000);
}

topo::Fabric withSim(std::map<std::string, std::string> keys) {
  auto f = box();
  f.simParams = std::move(keys);
  return f;
}

TEST(SimInitiation, KeysPresetAndComputeSettings) {
  auto f = withSim({{"initiation.device.nic_message_rate", "260M"},
                    {"initiation.proxy.rank_message_rate", "2M/s"},
                    {"initiation.offload.rank_bw", "100GB/s"},
                    {"compute.flops", "1979T"},
                    {"compute.comm_sms", "24"},
                    {"compute.efficiency", "0.5"}});
  const SimParams p = SimParams::fromFabric(f);
  EXPECT_EQ(p.initiation[kDevice].nicMessageRate, 260e6);
  EXPECT_EQ(p.initiation[kProxy].rankMessageRate, 2e6);
  EXPECT_EQ(p.initiation[kOffload].rankBandwidth.bytesPerSecond(), 100e9);
  EXPECT_EQ(p.compute.flops, 1979e12);
  EXPECT_EQ(p.compute.commSms, 24);
  EXPECT_EQ(p.compute.efficiency, 0.5);
  EXPECT_EQ(p.compute.sms, 132);  // boxFabric's GPUs carry no SM count: H800's

  // The preset sets every mode; a key next to it overrides one value, whatever the key order.
  const SimParams hopper =
      SimParams::fromFabric(withSim({{"initiation.preset", "hopper_cx7"}, {"initiation.device.issue", "1us"}}));
  EXPECT_EQ(hopper.initiation[kDevice].issue, core::Time::us(1));
  EXPECT_EQ(hopper.initiation[kDevice].messageRate, 21.6e6);
  EXPECT_EQ(hopper.initiation[kDevice].nicMessageRate, 260e6);
  EXPECT_EQ(hopper.initiation[kProxy].extraLatency, core::Time::us(1));
  EXPECT_EQ(hopper.initiation[kProxy].rankMessageRate, 2e6);
  EXPECT_EQ(hopper.initiation[kOffload].issue, core::Time{});
  // The defaults cost nothing (the golden outputs and the formula tests rely on it).
  const SimParams none = SimParams::fromFabric(withSim({}));
  for (const InitiationCost& c : none.initiation) EXPECT_TRUE(c == InitiationCost{});

  // A GPU's own SM count is the default.
  testing::BoxParams bp;
  topo::Fabric g;
  const std::int32_t sw = g.addNode(testing::makeNode(topo::NodeKind::kSwitch, "sw"));
  topo::Node gpu = testing::makeNode(topo::NodeKind::kGpu, "gpu0");
  gpu.sms = 78;
  const std::int32_t id = g.addNode(gpu);
  g.addLink(id, sw, topo::LinkKind::kNetwork, bp.netBw, bp.lat);
  g.finalize();
  EXPECT_EQ(SimParams::fromFabric(g).compute.sms, 78);
}

std::string errorOf(std::map<std::string, std::string> keys) {
  try {
    (void)SimParams::fromFabric(withSim(std::move(keys)));
  } catch (const core::Error& e) {
    return e.message();
  }
  return "no error";
}

TEST(SimInitiation, BadKeysAndValuesSayWhatToDo) {
  EXPECT_NE(
      errorOf({{"initiation.device.nic_msg_rate", "1M"}}).find("did you mean 'initiation.device.nic_message_rate'"),
      std::string::npos);
  EXPECT_NE(errorOf({{"compute.comm_sm", "20"}}).find("did you mean 'compute.comm_sms'"), std::string::npos);
  EXPECT_NE(errorOf({{"initiation.preset", "hopper-cx7"}}).find("did you mean 'hopper_cx7'"), std::string::npos);
  EXPECT_NE(
      errorOf({{"compute.sms", "16"}, {"compute.comm_sms", "20"}}).find("20 SMs for communication but the GPU has 16"),
      std::string::npos);
  EXPECT_NE(errorOf({{"compute.efficiency", "1.5"}}).find("fraction of peak in (0, 1]"), std::string::npos);
  EXPECT_NE(errorOf({{"initiation.offload.rank_message_rate", "fast"}}).find("'fast' is not a rate"),
            std::string::npos);
}

}  // namespace
}  // namespace copro::sim
