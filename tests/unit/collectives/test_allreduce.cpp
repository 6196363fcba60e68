// All-reduce algorithms (ring, rhd, tree, oneshot, lsa): ranks {1,2,3,4,5,7,8,16} x counts {0,1,7,4097} x
// in/out of place, data types and ops rotated pairwise, small pipelining chunks. Each Program is validated
// and interpreted with two seeds; every output element is checked against a float64 reference and all
// ranks must agree bit for bit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "collective_harness.hpp"
#include "copro/collectives/collective.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {
namespace {

using harness::checkAllReduce;

constexpr std::uint64_t kSeed = 5150;  // interleaving seeds are kSeed + case number (printed on failure)

const std::vector<std::string> kAlgorithms{"ring", "rhd", "tree", "oneshot", "lsa"};

// Algorithm i starts at case number 48 * i (48 non-empty cases each): each meets every dtype and every
// op, and together they meet all 60 (dtype, op) pairs, also when ctest runs each test on its own.
void sweepAllReduce(const std::string& algo, std::uint64_t index) {
  std::uint64_t g = 48 * index;
  harness::sweep(CollectiveKind::kAllReduce, algo, true, g, kSeed, checkAllReduce);
}

TEST(AllReduce, Ring) {
  sweepAllReduce("ring", 0);
}
TEST(AllReduce, Rhd) {
  sweepAllReduce("rhd", 1);
}
TEST(AllReduce, Tree) {
  sweepAllReduce("tree", 2);
}
TEST(AllReduce, Oneshot) {
  sweepAllReduce("oneshot", 3);
}
TEST(AllReduce, Lsa) {
  sweepAllReduce("lsa", 4);
}
TEST(AllReduce, Nvls) {
  sweepAllReduce("nvls", 5);
}
TEST(AllReduce, Sharp) {
  sweepAllReduce("sharp", 6);
}

TEST(AllReduce, SharpReadsAcrossDomainsOnlyWhereTheSwitchesReduce) {
  CollectiveArgs a;
  a.nranks = 4;
  a.count = 4097;
  a.loadStoreDomains = {{0, 1}, {2, 3}};
  const Algorithm* sharp = findAlgorithm(CollectiveKind::kAllReduce, "sharp");
  const std::string why = sharp->unsupportedReason(a);
  EXPECT_NE(why.find("load/store domain"), std::string::npos) << why;
  EXPECT_NE(why.find("sharp: true"), std::string::npos) << why;
  EXPECT_NE(findAlgorithm(CollectiveKind::kAllReduce, "nvls")->unsupportedReason(a), "");
  // Switches that reduce for every rank (the simulator's SHARP fabrics): one domain, and correct sums.
  a.inNetworkReduction = true;
  EXPECT_EQ(sharp->unsupportedReason(a), "");
  EXPECT_TRUE(buildProgram(a, "sharp")->header().loadStoreDomains.empty());
  checkAllReduce(a, "sharp", kSeed + 2);
}

TEST(AllReduce, RanksMayDifferInPlacement) {
  // Odd ranks in place, even ranks not, in one call: the Programs built with either flag must fit together.
  std::uint64_t g = 7;
  for (const auto& algo : kAlgorithms) {
    for (std::int32_t p : {3, 4, 5, 8}) {
      for (std::uint64_t count : {7ULL, 4097ULL}) {
        CollectiveArgs a;
        a.nranks = p;
        a.count = count;
        a.inPlace = true;
        a.dtype = harness::dtypeOf(g);
        a.op = harness::opOf(g);
        a.chunkBytes = harness::chunkOf(g);
        checkAllReduce(a, algo, kSeed + g++, true);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(AllReduce, LsaWithExplicitDomain) {
  CollectiveArgs a;
  a.nranks = 6;
  a.count = 1001;
  a.dtype = core::DataType::kFloat32;
  a.op = core::ReduceOp::kAvg;
  a.chunkBytes = 256;
  a.loadStoreDomains = {{5, 4, 3, 2, 1, 0}};
  checkAllReduce(a, "lsa", kSeed);
  a.inPlace = true;
  checkAllReduce(a, "lsa", kSeed + 1);
}

TEST(AllReduce, LsaIsReduceThenMulticastPerChunk) {
  CollectiveArgs a;
  a.nranks = 4;
  a.count = 100;
  a.dtype = core::DataType::kFloat32;
  a.chunkBytes = 40;  // 10 elements: block r (25 elements) in 3 chunks
  const auto program = buildProgram(a, "lsa");
  for (std::int32_t r = 0; r < 4; ++r) {
    const auto& ops = program->rank(r).lanes.at(0).ops;
    ASSERT_EQ(ops.size(), 7U) << "rank " << r;  // 3 x (reduce, multicast) + the final wait
    for (std::size_t i = 0; i < 6; i += 2) {
      EXPECT_EQ(ops[i].code, core::OpCode::kReduce);
      EXPECT_EQ(ops[i].srcs.size(), 4U);
      EXPECT_EQ(ops[i + 1].code, core::OpCode::kMulticast);
      EXPECT_EQ(ops[i + 1].ranks.size(), 3U);
      EXPECT_EQ(ops[i + 1].src, ops[i].dst);
    }
    EXPECT_EQ(ops[6].code, core::OpCode::kWait);
    EXPECT_EQ(ops[6].value, 9U);  // 3 chunks from each of the 3 peers
  }
}

TEST(AllReduce, HeadersDeclareTheirResources) {
  CollectiveArgs a;
  a.nranks = 8;
  a.count = 1000;
  a.dtype = core::DataType::kFloat32;
  a.chunkBytes = 64;                                                   // 16 elements
  EXPECT_EQ(buildProgram(a, "ring")->header().scratchBytes, 2U * 64);  // two receive slots
  EXPECT_EQ(buildProgram(a, "ring")->header().numSemaphores, 3);
  EXPECT_EQ(buildProgram(a, "tree")->header().scratchBytes, 8U * 64);  // 2 trees x 2 children x 2 slots
  EXPECT_EQ(buildProgram(a, "oneshot")->header().scratchBytes, 8U * 4000);
  EXPECT_EQ(buildProgram(a, "lsa")->header().scratchBytes, 0U);
  EXPECT_EQ(buildProgram(a, "rhd")->header().numSemaphores, 2 * 3 + 2);
  EXPECT_EQ(buildProgram(a, "rhd")->header().name, "allreduce.rhd");
  for (const auto& algo : kAlgorithms) {
    const auto program = buildProgram(a, algo);
    const core::ProgramHeader& h = program->header();
    EXPECT_EQ(h.inputBytes, std::vector<std::uint64_t>(8, 4000)) << algo;
    EXPECT_EQ(h.outputBytes, std::vector<std::uint64_t>(8, 4000)) << algo;
  }
}

TEST(AllReduce, TreeLeavesOfOneTreeAreInnerNodesOfTheOther) {
  // A rank is a leaf of a tree when its lane of that tree never waits for a child (no reduce).
  for (std::int32_t p : {6, 8, 16}) {
    CollectiveArgs a;
    a.nranks = p;
    a.count = 64;
    a.dtype = core::DataType::kFloat32;
    const auto program = buildProgram(a, "tree");
    int leafInBoth = 0;
    for (std::int32_t r = 0; r < p; ++r) {
      int leaves = 0;
      for (const auto& lane : program->rank(r).lanes) {
        bool reduces = false;
        for (const auto& op : lane.ops) reduces = reduces || op.code == core::OpCode::kReduce;
        leaves += reduces ? 0 : 1;
      }
      leafInBoth += leaves == 2 ? 1 : 0;
    }
    EXPECT_EQ(leafInBoth, 0) << "p=" << p;
  }
}

TEST(AllReduce, LogStepAlgorithmsGenerateOneRankOfAHugeProgram) {
  // Generation is per rank and on demand: one rank of a 2^16-rank Rabenseifner or tree all-reduce is a
  // few dozen ops.
  CollectiveArgs a;
  a.nranks = 1 << 16;
  a.count = 1 << 17;  // two elements per rank
  a.dtype = core::DataType::kFloat32;
  a.chunkBytes = 1U << 30;  // one chunk per step
  const auto rhd = buildProgram(a, "rhd");
  // 16 halving steps (put, wait, reduce) and 16 doubling steps (put, wait).
  EXPECT_EQ(rhd->rank(12345).numOps(), 16U * 3 + 16U * 2);
  const auto tree = buildProgram(a, "tree");
  // Per tree at most: 2 waits, a reduce, a put up; a wait and 2 puts down.
  EXPECT_LE(tree->rank(777).numOps(), 2U * 7);
}

TEST(AllReduce, EstimatesArePositiveAndGrowWithCount) {
  const CostModel cm;
  for (const auto& algo : kAlgorithms) {
    const Algorithm* alg = findAlgorithm(CollectiveKind::kAllReduce, algo);
    ASSERT_NE(alg, nullptr) << algo;
    for (std::int32_t p : {1, 2, 5, 8}) {
      CollectiveArgs a;
      a.nranks = p;
      a.dtype = core::DataType::kFloat32;
      double prev = 0;
      for (std::uint64_t count : {0ULL, 1000ULL, 1000000ULL, 100000000ULL}) {
        a.count = count;
        const double t = alg->estimateUs(a, cm);
        EXPECT_GT(t, 0) << algo << " p=" << p << " count=" << count;
        if (count > 0 && p > 1) {
          EXPECT_GT(t, prev) << algo << " p=" << p << " count=" << count;
        }
        prev = t;
      }
    }
  }
  // The formulas' shapes: oneshot wins small messages, ring beats oneshot on large ones.
  CollectiveArgs a;
  a.nranks = 8;
  a.dtype = core::DataType::kFloat32;
  a.count = 16;
  EXPECT_LT(findAlgorithm(CollectiveKind::kAllReduce, "oneshot")->estimateUs(a, cm),
            findAlgorithm(CollectiveKind::kAllReduce, "ring")->estimateUs(a, cm));
  a.count = 1 << 24;
  EXPECT_LT(findAlgorithm(CollectiveKind::kAllReduce, "ring")->estimateUs(a, cm),
            findAlgorithm(CollectiveKind::kAllReduce, "oneshot")->estimateUs(a, cm));
}

TEST(AllReduce, UnsupportedReasons) {
  CollectiveArgs a;
  a.nranks = 4;
  a.count = 10;
  for (const auto& algo : kAlgorithms) {
    EXPECT_EQ(findAlgorithm(CollectiveKind::kAllReduce, algo)->unsupportedReason(a), "") << algo;
  }
  a.loadStoreDomains = {{0, 1}, {2, 3}};
  const std::string why = findAlgorithm(CollectiveKind::kAllReduce, "lsa")->unsupportedReason(a);
  EXPECT_NE(why.find("load/store domain"), std::string::npos) << why;
  EXPECT_EQ(findAlgorithm(CollectiveKind::kAllReduce, "ring")->unsupportedReason(a), "");
  try {
    (void)buildProgram(a, "lsa");
    FAIL() << "lsa built across two load/store domains";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
  a.loadStoreDomains = {{0, 1, 2, 3}};
  EXPECT_EQ(findAlgorithm(CollectiveKind::kAllReduce, "lsa")->unsupportedReason(a), "");
  a.nranks = 0;
  for (const auto& algo : kAlgorithms) {
    EXPECT_NE(findAlgorithm(CollectiveKind::kAllReduce, algo)->unsupportedReason(a), "") << algo;
  }
}

}  // namespace
}  // namespace copro::collectives
