// Reduce-scatter (ring, rhalving), reduce-scatterv (ring), all-gather (ring, rdoubling, bruck) and
// all-gatherv (ring): ranks {1,2,3,4,5,7,8,16} x counts {0,1,7,4097} x in/out of place, data types and ops
// rotated pairwise, small pipelining chunks. Each Program is validated and interpreted with two seeds;
// every output element is checked (against a float64 reference for the reductions, byte for byte for the
// gathers).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "collective_harness.hpp"
#include "copro/collectives/collective.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {
namespace {

using harness::checkAllGather;
using harness::checkReduceScatter;

constexpr std::uint64_t kSeed = 90210;  // interleaving seeds are kSeed + case number (printed on failure)

// Algorithm i of a collective starts at case number 48 * i: each meets every dtype and op, and the
// reduce-scatter ones together (with the v variant) every (dtype, op) pair.
TEST(ReduceScatter, Ring) {
  std::uint64_t g = 0;
  harness::sweep(CollectiveKind::kReduceScatter, "ring", true, g, kSeed, checkReduceScatter);
}

TEST(ReduceScatter, Rhalving) {
  std::uint64_t g = 48;
  harness::sweep(CollectiveKind::kReduceScatter, "rhalving", true, g, kSeed, checkReduceScatter);
}

/// Per-rank counts for the v collectives: drawn from {0, 1, 7, 4097} (or {0..3} when small) with a
/// fixed seed, so zeros, tiny and chunked blocks mix.
std::vector<std::uint64_t> vCounts(std::int32_t p, std::mt19937_64& rng, bool small) {
  const std::vector<std::uint64_t> choices =
      small ? std::vector<std::uint64_t>{0, 1, 2, 3} : std::vector<std::uint64_t>{0, 1, 7, 4097};
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(p));
  for (auto& c : counts) c = choices[rng() % choices.size()];
  return counts;
}

template <typename Check>
void sweepV(CollectiveKind kind, std::uint64_t g, Check check) {
  std::mt19937_64 rng(kSeed + g);
  for (std::int32_t p : harness::kRankCounts) {
    for (int variant = 0; variant < 3; ++variant) {
      for (int place = 0; place < 2; ++place) {
        CollectiveArgs a;
        a.kind = kind;
        a.nranks = p;
        a.counts =
            variant == 0 ? std::vector<std::uint64_t>(static_cast<std::size_t>(p), 0) : vCounts(p, rng, variant == 1);
        a.inPlace = place == 1;
        a.dtype = harness::dtypeOf(g);
        a.op = harness::opOf(g);
        a.chunkBytes = harness::chunkOf(g);
        check(a, "ring", kSeed + g, false);
        if (::testing::Test::HasFatalFailure()) return;
        ++g;
      }
    }
  }
}

TEST(ReduceScatterV, Ring) {
  sweepV(CollectiveKind::kReduceScatterV, 96, checkReduceScatter);
}

TEST(AllGather, Ring) {
  std::uint64_t g = 0;
  harness::sweep(CollectiveKind::kAllGather, "ring", true, g, kSeed, checkAllGather);
}

TEST(AllGather, Rdoubling) {
  std::uint64_t g = 48;
  harness::sweep(CollectiveKind::kAllGather, "rdoubling", true, g, kSeed, checkAllGather);
}

TEST(AllGather, Bruck) {
  std::uint64_t g = 96;
  harness::sweep(CollectiveKind::kAllGather, "bruck", true, g, kSeed, checkAllGather);
}

TEST(AllGatherV, Ring) {
  sweepV(CollectiveKind::kAllGatherV, 144, checkAllGather);
}

TEST(ReduceScatterAllGather, RanksMayDifferInPlacement) {
  // Odd ranks in place, even ranks not, in one call: the Programs built with either flag must fit together.
  std::uint64_t g = 3;
  const std::vector<std::pair<CollectiveKind, std::string>> algos{
      {CollectiveKind::kReduceScatter, "ring"},  {CollectiveKind::kReduceScatter, "rhalving"},
      {CollectiveKind::kReduceScatterV, "ring"}, {CollectiveKind::kAllGather, "ring"},
      {CollectiveKind::kAllGather, "rdoubling"}, {CollectiveKind::kAllGather, "bruck"},
      {CollectiveKind::kAllGatherV, "ring"}};
  for (const auto& [kind, algo] : algos) {
    for (std::int32_t p : {3, 4, 5, 8}) {
      for (std::uint64_t count : {7ULL, 4097ULL}) {
        CollectiveArgs a;
        a.kind = kind;
        a.nranks = p;
        a.count = count;
        if (kind == CollectiveKind::kReduceScatterV || kind == CollectiveKind::kAllGatherV) {
          for (std::int32_t r = 0; r < p; ++r) a.counts.push_back((count * static_cast<std::uint64_t>(r + 1)) % 11);
        }
        a.inPlace = true;
        a.dtype = harness::dtypeOf(g);
        a.op = harness::opOf(g);
        a.chunkBytes = harness::chunkOf(g);
        const bool reduces = kind == CollectiveKind::kReduceScatter || kind == CollectiveKind::kReduceScatterV;
        if (reduces) {
          checkReduceScatter(a, algo, kSeed + g++, true);
        } else {
          checkAllGather(a, algo, kSeed + g++, true);
        }
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(ReduceScatterAllGather, InPlaceAllGatherNeverNamesTheInput) {
  // In place the rank's block already sits in the output; the Program must read it from there (the
  // executor's input pointer is output + r * count, not the output base).
  for (const std::string algo : {"ring", "rdoubling", "bruck"}) {
    CollectiveArgs a;
    a.kind = CollectiveKind::kAllGather;
    a.nranks = 5;
    a.count = 33;
    a.chunkBytes = 64;
    a.inPlace = true;
    const auto program = buildProgram(a, algo);
    for (std::int32_t r = 0; r < 5; ++r) {
      int dataOps = 0;
      for (const auto& lane : program->rank(r).lanes) {
        for (const auto& op : lane.ops) {
          if (op.code != core::OpCode::kPut && op.code != core::OpCode::kCopy) continue;
          ++dataOps;
          EXPECT_NE(op.src.buf, core::BufferId::kInput) << algo << " rank " << r;
          EXPECT_NE(op.dst.buf, core::BufferId::kInput) << algo << " rank " << r;
        }
      }
      EXPECT_GT(dataOps, 0) << algo << " rank " << r;
    }
  }
}

TEST(ReduceScatterAllGather, BruckTakesCeilLog2Steps) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllGather;
  a.nranks = 7;
  a.count = 10;
  a.dtype = core::DataType::kFloat32;
  const auto program = buildProgram(a, "bruck");
  EXPECT_EQ(program->header().numSemaphores, 3);
  EXPECT_EQ(program->header().scratchBytes, 0U);
  for (std::int32_t r = 0; r < 7; ++r) {
    int waits = 0;
    for (const auto& op : program->rank(r).lanes.at(0).ops) waits += op.code == core::OpCode::kWait ? 1 : 0;
    EXPECT_EQ(waits, 3) << "rank " << r;
  }
}

TEST(ReduceScatterAllGather, EstimatesArePositiveAndGrowWithCount) {
  const CostModel cm;
  const std::vector<std::pair<CollectiveKind, std::string>> algos{
      {CollectiveKind::kReduceScatter, "ring"},  {CollectiveKind::kReduceScatter, "rhalving"},
      {CollectiveKind::kReduceScatterV, "ring"}, {CollectiveKind::kAllGather, "ring"},
      {CollectiveKind::kAllGather, "rdoubling"}, {CollectiveKind::kAllGather, "bruck"},
      {CollectiveKind::kAllGatherV, "ring"}};
  for (const auto& [kind, name] : algos) {
    const Algorithm* alg = findAlgorithm(kind, name);
    ASSERT_NE(alg, nullptr) << name;
    for (std::int32_t p : {1, 3, 8}) {
      CollectiveArgs a;
      a.kind = kind;
      a.nranks = p;
      double prev = 0;
      for (std::uint64_t count : {0ULL, 1000ULL, 1000000ULL}) {
        a.count = count;
        a.counts.assign(static_cast<std::size_t>(p), count);
        const double t = alg->estimateUs(a, cm);
        EXPECT_GT(t, 0) << name << " p=" << p;
        if (count > 0 && p > 1) {
          EXPECT_GT(t, prev) << collectiveName(kind) << '.' << name << " p=" << p << " count=" << count;
        }
        prev = t;
      }
    }
  }
}

TEST(ReduceScatterAllGather, UnsupportedReasons) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kReduceScatterV;
  a.nranks = 3;
  a.counts = {1, 2};
  const std::string why = findAlgorithm(CollectiveKind::kReduceScatterV, "ring")->unsupportedReason(a);
  EXPECT_NE(why.find("counts has 2 entries for 3 ranks"), std::string::npos) << why;
  a.kind = CollectiveKind::kAllGatherV;
  EXPECT_NE(findAlgorithm(CollectiveKind::kAllGatherV, "ring")->unsupportedReason(a), "");
  a.counts = {1, 2, 3};
  EXPECT_EQ(findAlgorithm(CollectiveKind::kAllGatherV, "ring")->unsupportedReason(a), "");
  a.kind = CollectiveKind::kReduceScatter;
  a.nranks = 0;
  EXPECT_NE(findAlgorithm(CollectiveKind::kReduceScatter, "rhalving")->unsupportedReason(a), "");
  EXPECT_NE(findAlgorithm(CollectiveKind::kAllGather, "bruck")->unsupportedReason(a), "");
}

}  // namespace
}  // namespace copro::collectives
