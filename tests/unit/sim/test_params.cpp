/// SimParams::fromFabric and the text parsers of simulator settings.
#include <gtest/gtest.h>

#include "copro/core/status.hpp"
#include "copro/sim/params.hpp"
#include "copro/sim/simulator.hpp"
#include "sim_fabrics.hpp"

namespace copro::sim {
namespace {

TEST(SimParamsTest, DefaultsWithoutASimSection) {
  const auto f = testing::starFabric(2, core::Bandwidth::gbps(1), {}, {});
  const SimParams p = SimParams::fromFabric(f);
  EXPECT_EQ(p.routing, Routing::kEcmp);
  EXPECT_EQ(p.signalBytes, 8U);
  EXPECT_EQ(p.chunkBytes, 0U);
  EXPECT_EQ(p.ecmpSeed, 0U);
  EXPECT_EQ(p.reduceBandwidth.bytesPerSecond(), 0.0);
  EXPECT_EQ(p.copyBandwidth.bytesPerSecond(), 0.0);
  for (const auto& c : p.initiation) {
    EXPECT_EQ(c.issue.picoseconds(), 0);
    EXPECT_EQ(c.extraLatency.picoseconds(), 0);
    EXPECT_EQ(c.messageRate, 0.0);
  }
}

TEST(SimParamsTest, ReadsEveryKey) {
  auto f = testing::starFabric(2, core::Bandwidth::gbps(1), {}, {});
  f.simParams = {{"routing", "rail_aware"},
                 {"initiation.proxy.issue", "2us"},
                 {"initiation.proxy.extra_latency", "1.5us"},
                 {"initiation.device.issue", "700ns"},
                 {"initiation.device.message_rate", "1.8M"},
                 {"initiation.offload.message_rate", "2.5e7"},
                 {"reduce_bw", "50GB/s"},
                 {"copy_bw", "400Gb/s"},
                 {"signal_bytes", "16"},
                 {"chunk_size", "1M"},
                 {"ecmp_seed", "42"}};
  const SimParams p = SimParams::fromFabric(f);
  EXPECT_EQ(p.routing, Routing::kRailAware);
  EXPECT_EQ(p.initiation[0].issue.picoseconds(), 2'000'000);
  EXPECT_EQ(p.initiation[0].extraLatency.picoseconds(), 1'500'000);
  EXPECT_EQ(p.initiation[1].issue.picoseconds(), 700'000);
  EXPECT_DOUBLE_EQ(p.initiation[1].messageRate, 1.8e6);
  EXPECT_DOUBLE_EQ(p.initiation[2].messageRate, 2.5e7);
  EXPECT_DOUBLE_EQ(p.reduceBandwidth.bytesPerSecond(), 50e9);
  EXPECT_DOUBLE_EQ(p.copyBandwidth.bytesPerSecond(), 50e9);
  EXPECT_EQ(p.signalBytes, 16U);
  EXPECT_EQ(p.chunkBytes, 1U << 20);
  EXPECT_EQ(p.ecmpSeed, 42U);
}

TEST(SimParamsTest, UnknownKeySuggestsTheNearestWithItsOrigin) {
  auto f = testing::starFabric(2, core::Bandwidth::gbps(1), {}, {});
  f.simParams = {{"reduce_bww", "1GB/s"}};
  f.simParamOrigin = {{"reduce_bww", "cluster.yaml:12"}};
  try {
    (void)SimParams::fromFabric(f);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_EQ(e.code(), core::ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("cluster.yaml:12"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("unknown sim key 'reduce_bww' (did you mean 'reduce_bw'?)"), std::string::npos)
        << e.message();
  }
  f.simParams = {{"initiation.proxy.isue", "1us"}};
  try {
    (void)SimParams::fromFabric(f);
    FAIL() << "expected an error";
  } catch (const core::Error& e) {
    EXPECT_NE(e.message().find("did you mean 'initiation.proxy.issue'"), std::string::npos) << e.message();
  }
}

TEST(SimParamsTest, BadValuesNameTheKey) {
  auto f = testing::starFabric(2, core::Bandwidth::gbps(1), {}, {});
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"routing", "ecmpp"}, {"reduce_bw", "fast"}, {"initiation.device.issue", "soon"}, {"signal_bytes", "-1"}}) {
    f.simParams = {{key, value}};
    try {
      (void)SimParams::fromFabric(f);
      FAIL() << key << " = " << value << " was accepted";
    } catch (const core::Error& e) {
      EXPECT_EQ(e.code(), core::ErrorCode::kInvalidArgument);
      EXPECT_NE(e.message().find("'" + key + "'"), std::string::npos) << e.message();
    }
  }
}

TEST(SimParamsTest, ParseBandwidth) {
  EXPECT_DOUBLE_EQ(parseBandwidth("50GB/s").bytesPerSecond(), 50e9);
  EXPECT_DOUBLE_EQ(parseBandwidth("400Gb/s").bytesPerSecond(), 50e9);
  EXPECT_DOUBLE_EQ(parseBandwidth("400Gbps").bytesPerSecond(), 50e9);
  EXPECT_DOUBLE_EQ(parseBandwidth("2.5e10").bytesPerSecond(), 2.5e10);
  EXPECT_DOUBLE_EQ(parseBandwidth(" 12 MB/s ").bytesPerSecond(), 12e6);
  EXPECT_DOUBLE_EQ(parseBandwidth("1GiB/s").bytesPerSecond(), 1024.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(parseBandwidth("8b/s").bytesPerSecond(), 1.0);
  for (const char* bad : {"", "GB/s", "50GB", "50XB/s", "-1GB/s", "50 GB/h"}) {
    EXPECT_THROW((void)parseBandwidth(bad), core::Error) << bad;
  }
  Routing r{};
  EXPECT_TRUE(parseRouting("adaptive", r));
  EXPECT_EQ(r, Routing::kAdaptive);
  EXPECT_FALSE(parseRouting("random", r));
  EXPECT_EQ(routingName(Routing::kRailAware), "rail_aware");
}

}  // namespace
}  // namespace copro::sim
