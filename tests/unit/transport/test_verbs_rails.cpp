// Rail mapping of the verbs backend (docs/verbs.md, "Rail mapping") on the hwloc XML fixture of an 8-GPU,
// 8-NIC server (tests/data/hwloc_8gpu_8nic.xml: two sockets, four PCIe switches each, one GPU and one
// ConnectX NIC behind every switch, NIC names deliberately not in GPU order): every GPU gets the NIC behind
// its own switch, no NIC is shared, and a rank's local index picks its GPU's NIC.
#include <gtest/gtest.h>

#if COPRO_HAVE_VERBS && COPRO_HAVE_HWLOC

#include <set>
#include <string>

#include "../../../transport/src/verbs/verbs_rails.hpp"

namespace {

using copro::transport::verbs::RailMap;

const char* kFixture = COPRO_TEST_DATA_DIR "/hwloc_8gpu_8nic.xml";

TEST(VerbsRails, EveryGpuGetsTheNicBehindItsSwitch) {
  RailMap map;
  std::string error;
  ASSERT_TRUE(copro::transport::verbs::loadRailMap(kFixture, map, error)) << error;
  ASSERT_EQ(map.gpus.size(), 8U);
  ASSERT_EQ(map.nics.size(), 8U);
  // The fixture puts NIC mlx5_{5,3,7,1,0,6,2,4} behind the switches of GPUs 0..7.
  const char* expected[] = {"mlx5_5", "mlx5_3", "mlx5_7", "mlx5_1", "mlx5_0", "mlx5_6", "mlx5_2", "mlx5_4"};
  std::set<int> used;
  for (std::size_t g = 0; g < 8; ++g) {
    EXPECT_EQ(map.nics[static_cast<std::size_t>(map.nicOfGpu[g])], expected[g]) << "GPU " << map.gpus[g];
    EXPECT_EQ(map.hops[g], 2) << "GPU and NIC share a switch";
    used.insert(map.nicOfGpu[g]);
  }
  EXPECT_EQ(used.size(), 8U);
  EXPECT_EQ(map.gpus.front(), "0000:11:00.0");
  EXPECT_EQ(copro::transport::verbs::railNicFor(map, 3), "mlx5_1");
  EXPECT_EQ(copro::transport::verbs::railNicFor(map, 11), "mlx5_1");  // 12 ranks on 8 GPUs: wraps
}

TEST(VerbsRails, BadFileIsAnErrorNamingIt) {
  RailMap map;
  std::string error;
  EXPECT_FALSE(copro::transport::verbs::loadRailMap("/nonexistent/topology.xml", map, error));
  EXPECT_NE(error.find("/nonexistent/topology.xml"), std::string::npos) << error;
}

TEST(VerbsRails, WithoutGpusRanksTakeNicsRoundRobin) {
  RailMap map;
  map.nics = {"mlx5_0", "mlx5_1"};
  EXPECT_EQ(copro::transport::verbs::railNicFor(map, 0), "mlx5_0");
  EXPECT_EQ(copro::transport::verbs::railNicFor(map, 3), "mlx5_1");
  EXPECT_EQ(copro::transport::verbs::railNicFor(RailMap{}, 0), "");
}

}  // namespace

#endif  // COPRO_HAVE_VERBS && COPRO_HAVE_HWLOC
