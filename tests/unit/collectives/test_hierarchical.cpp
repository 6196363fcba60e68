// Hierarchical ("hier") all-reduce, all-gather, reduce-scatter and all-to-all over synthetic node maps:
// 2 nodes x 2, 2 x 4, 4 x 2, 3 x 2 and 2 x 3, contiguous and interleaved (ranks of a node need not be
// contiguous, node ids need not be 0..N-1), and one rank per node. Counts {0,1,7,4097}, in and out of
// place, data types and ops rotated pairwise, small pipelining chunks. Each Program is validated and
// interpreted with two seeds, and every output element is checked.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "collective_harness.hpp"
#include "copro/collectives/collective.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {
namespace {

constexpr std::uint64_t kSeed = 4242;  // interleaving seeds are kSeed + case number (printed on failure)

const std::vector<std::vector<int>> kNodeMaps{
    {0, 0, 1, 1},              // 2 x 2
    {0, 1, 0, 1},              // 2 x 2, interleaved
    {0, 0, 0, 0, 1, 1, 1, 1},  // 2 x 4
    {5, 2, 5, 2, 5, 2, 5, 2},  // 2 x 4, interleaved, node ids 2 and 5
    {0, 0, 1, 1, 2, 2, 3, 3},  // 4 x 2
    {0, 1, 2, 3, 3, 2, 1, 0},  // 4 x 2, scrambled
    {0, 1, 2, 0, 1, 2},        // 3 x 2, interleaved
    {0, 1, 0, 1, 0, 1},        // 2 x 3, interleaved
    {0, 1, 2},                 // 3 x 1
};

template <typename Check>
void sweepHier(CollectiveKind kind, std::uint64_t g, Check check) {
  for (const auto& map : kNodeMaps) {
    for (std::uint64_t count : harness::kCounts) {
      for (int place = 0; place < 2; ++place) {
        CollectiveArgs a;
        a.kind = kind;
        a.nranks = static_cast<std::int32_t>(map.size());
        a.nodeOfRank = map;
        a.count = count;
        a.inPlace = place == 1;
        a.dtype = harness::dtypeOf(g);
        a.op = harness::opOf(g);
        a.chunkBytes = harness::chunkOf(g);
        check(a, "hier", kSeed + g, false);
        if (::testing::Test::HasFatalFailure()) return;
        if (count > 0) ++g;
      }
    }
  }
}

// 54 non-empty cases per collective; all-reduce and reduce-scatter together cover all 60 (dtype, op) pairs.
TEST(Hierarchical, AllReduce) {
  sweepHier(CollectiveKind::kAllReduce, 0, harness::checkAllReduce);
}
TEST(Hierarchical, ReduceScatter) {
  sweepHier(CollectiveKind::kReduceScatter, 54, harness::checkReduceScatter);
}
TEST(Hierarchical, AllGather) {
  sweepHier(CollectiveKind::kAllGather, 0, harness::checkAllGather);
}
TEST(Hierarchical, AllToAll) {
  sweepHier(CollectiveKind::kAllToAll, 0, harness::checkAllToAll);
}

TEST(Hierarchical, RanksMayDifferInPlacement) {
  // Odd ranks in place, even ranks not, in one call: the Programs built with either flag must fit together.
  std::uint64_t g = 11;
  for (const auto& map : {kNodeMaps[1], kNodeMaps[3], kNodeMaps[6]}) {
    for (std::uint64_t count : {7ULL, 4097ULL}) {
      CollectiveArgs a;
      a.nranks = static_cast<std::int32_t>(map.size());
      a.nodeOfRank = map;
      a.count = count;
      a.inPlace = true;
      a.dtype = harness::dtypeOf(g);
      a.op = harness::opOf(g);
      a.chunkBytes = harness::chunkOf(g);
      const std::uint64_t seed = kSeed + g++;
      a.kind = CollectiveKind::kAllReduce;
      harness::checkAllReduce(a, "hier", seed, true);
      a.kind = CollectiveKind::kReduceScatter;
      harness::checkReduceScatter(a, "hier", seed, true);
      a.kind = CollectiveKind::kAllGather;
      harness::checkAllGather(a, "hier", seed, true);
      a.kind = CollectiveKind::kAllToAll;
      harness::checkAllToAll(a, "hier", seed, true);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(Hierarchical, AllReduceRailStageUsesRingOrRhd) {
  // 3 nodes: a piece larger than one chunk goes around a ring (3 semaphores), a small one through
  // Rabenseifner (2 log2(2) + 2 = 4); with 4 nodes it is always Rabenseifner (2 log2(4) + 2 = 6).
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllReduce;
  a.nranks = 6;
  a.nodeOfRank = {0, 1, 2, 0, 1, 2};
  a.dtype = core::DataType::kFloat32;
  a.chunkBytes = 64;
  a.count = 4097;
  EXPECT_EQ(buildProgram(a, "hier")->header().numSemaphores, 2 + 3 + 1);
  a.count = 7;
  EXPECT_EQ(buildProgram(a, "hier")->header().numSemaphores, 2 + 4 + 1);
  a.nranks = 8;
  a.nodeOfRank = {0, 0, 1, 1, 2, 2, 3, 3};
  a.count = 4097;
  EXPECT_EQ(buildProgram(a, "hier")->header().numSemaphores, 2 + 6 + 1);
}

TEST(Hierarchical, AllToAllCrossesTheNetworkOncePerNodePair) {
  // 2 nodes x 4: each rank sends one rail message to the other node (its node's 4 blocks for that peer)
  // and 3 x 2 intra-node puts; no rank sends to a rank of another node with another local index.
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAll;
  a.nranks = 8;
  a.nodeOfRank = {0, 0, 0, 0, 1, 1, 1, 1};
  a.count = 5;
  a.dtype = core::DataType::kInt32;
  const auto program = buildProgram(a, "hier");
  for (std::int32_t r = 0; r < 8; ++r) {
    int inter = 0;
    int intra = 0;
    for (const auto& op : program->rank(r).lanes.at(0).ops) {
      if (op.code != core::OpCode::kPut) continue;
      if (a.nodeOfRank[static_cast<std::size_t>(op.peer)] == a.nodeOfRank[static_cast<std::size_t>(r)]) {
        ++intra;
      } else {
        ++inter;
        EXPECT_EQ(op.peer % 4, r % 4) << "rank " << r << " leaves its rail";
        EXPECT_EQ(op.bytes, 4U * 5 * 4) << "rank " << r;
      }
    }
    EXPECT_EQ(inter, 1) << "rank " << r;
    EXPECT_EQ(intra, 3 * 2) << "rank " << r;
  }
}

TEST(Hierarchical, EstimatesArePositiveAndGrowWithCount) {
  const CostModel cm;
  for (CollectiveKind kind : {CollectiveKind::kAllReduce, CollectiveKind::kAllGather, CollectiveKind::kReduceScatter,
                              CollectiveKind::kAllToAll}) {
    const Algorithm* alg = findAlgorithm(kind, "hier");
    ASSERT_NE(alg, nullptr) << collectiveName(kind);
    CollectiveArgs a;
    a.kind = kind;
    a.nranks = 8;
    a.nodeOfRank = {0, 0, 0, 0, 1, 1, 1, 1};
    double prev = 0;
    for (std::uint64_t count : {0ULL, 1000ULL, 1000000ULL}) {
      a.count = count;
      const double t = alg->estimateUs(a, cm);
      EXPECT_GT(t, 0) << collectiveName(kind);
      if (count > 0) {
        EXPECT_GT(t, prev) << collectiveName(kind) << " count=" << count;
      }
      prev = t;
    }
  }
  // Crossing the slow network with 1/L of the data beats a flat ring over it for big all-reduces.
  CollectiveArgs a;
  a.nranks = 16;
  a.nodeOfRank.assign(16, 0);
  for (int r = 8; r < 16; ++r) a.nodeOfRank[static_cast<std::size_t>(r)] = 1;
  a.count = 1 << 24;
  EXPECT_LT(findAlgorithm(CollectiveKind::kAllReduce, "hier")->estimateUs(a, cm),
            findAlgorithm(CollectiveKind::kAllReduce, "ring")->estimateUs(a, cm));
}

TEST(Hierarchical, UnsupportedReasons) {
  const Algorithm* alg = findAlgorithm(CollectiveKind::kAllReduce, "hier");
  ASSERT_NE(alg, nullptr);
  CollectiveArgs a;
  a.nranks = 4;
  a.count = 10;
  EXPECT_NE(alg->unsupportedReason(a).find("node map"), std::string::npos) << alg->unsupportedReason(a);
  a.nodeOfRank = {3, 3, 3, 3};
  EXPECT_NE(alg->unsupportedReason(a).find("at least 2 nodes"), std::string::npos) << alg->unsupportedReason(a);
  a.nodeOfRank = {0, 0, 0, 1};
  EXPECT_NE(alg->unsupportedReason(a).find("same number of ranks"), std::string::npos) << alg->unsupportedReason(a);
  a.nodeOfRank = {0, 1, 0};
  EXPECT_NE(alg->unsupportedReason(a).find("3 entries for 4 ranks"), std::string::npos) << alg->unsupportedReason(a);
  a.nodeOfRank = {0, 1, 1, 0};
  for (CollectiveKind kind : {CollectiveKind::kAllReduce, CollectiveKind::kAllGather, CollectiveKind::kReduceScatter,
                              CollectiveKind::kAllToAll}) {
    a.kind = kind;
    EXPECT_EQ(findAlgorithm(kind, "hier")->unsupportedReason(a), "") << collectiveName(kind);
  }
  a.kind = CollectiveKind::kAllReduce;
  a.nodeOfRank = {0, 0, 0, 0};
  try {
    (void)buildProgram(a, "hier");
    FAIL() << "hier built on a single node";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
}

}  // namespace
}  // namespace copro::collectives
