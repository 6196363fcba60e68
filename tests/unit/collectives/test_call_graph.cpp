// Captured calls (Communicator::beginCapture/endCapture, CallGraph::replay) on the inproc backend: a replay
// computes what the calls compute on the buffers' current contents, several calls replay in order, captures
// run nothing, misuse is an error, and a replay that fails (a peer that never replays) names the problem.
#include <gtest/gtest.h>

#include <functional>
#include <numeric>
#include <thread>
#include <vector>

#include "copro/copro.hpp"
#include "unit/collectives/rank_threads.hpp"

namespace copro {
namespace {

using test::onRanks;
using test::testConfig;

TEST(CallGraph, ReplaysAllReduceThenAllGatherOnCurrentBufferContents) {
  constexpr int kRanks = 3;
  constexpr std::uint64_t kCount = 1000;
  auto comms = createInproc(kRanks, testConfig());
  onRanks(kRanks, [&](int r) {
    Communicator& c = comms[static_cast<std::size_t>(r)];
    std::vector<float> in(kCount);
    std::vector<float> sum(kCount, -1.0F);
    std::vector<float> gathered(kCount * kRanks, -1.0F);
    c.beginCapture();
    EXPECT_TRUE(c.capturing());
    Request a = c.allReduce(in.data(), sum.data(), kCount, DataType::kFloat32, ReduceOp::kSum);
    Request b = c.allGather(sum.data(), gathered.data(), kCount, DataType::kFloat32);
    EXPECT_FALSE(a.valid());  // recorded, not run
    EXPECT_FALSE(b.valid());
    CallGraph g = c.endCapture();
    EXPECT_FALSE(c.capturing());
    ASSERT_EQ(g.size(), 2U);
    EXPECT_EQ(sum[0], -1.0F) << "a capture must not run the call";
    for (int iter = 1; iter <= 5; ++iter) {
      // New contents each round: the replay reads the buffers when it runs.
      for (std::uint64_t i = 0; i < kCount; ++i) in[i] = static_cast<float>(iter * (r + 1)) + static_cast<float>(i);
      ASSERT_TRUE(g.replay().wait().ok());
      const float rankSum = static_cast<float>(iter * kRanks * (kRanks + 1) / 2);
      for (std::uint64_t i = 0; i < kCount; i += 97) {
        const float want = rankSum + static_cast<float>(kRanks) * static_cast<float>(i);
        ASSERT_EQ(sum[i], want) << "iteration " << iter << " element " << i;
        for (int q = 0; q < kRanks; ++q) ASSERT_EQ(gathered[q * kCount + i], want);
      }
    }
  });
}

TEST(CallGraph, ReplayInterleavesWithOrdinaryCalls) {
  constexpr int kRanks = 2;
  auto comms = createInproc(kRanks, testConfig());
  onRanks(kRanks, [&](int r) {
    Communicator& c = comms[static_cast<std::size_t>(r)];
    std::int32_t one = r + 1;
    std::int32_t replayed = 0;
    std::int32_t direct = 0;
    c.beginCapture();
    (void)c.allReduce(&one, &replayed, 1, DataType::kInt32, ReduceOp::kMax);
    CallGraph g = c.endCapture();
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(g.replay().wait().ok());
      ASSERT_TRUE(c.allReduce(&one, &direct, 1, DataType::kInt32, ReduceOp::kSum).wait().ok());
      ASSERT_EQ(replayed, kRanks);
      ASSERT_EQ(direct, kRanks * (kRanks + 1) / 2);
    }
  });
}

TEST(CallGraph, MisuseIsAnError) {
  auto comms = createInproc(1, testConfig());
  Communicator& c = comms[0];
  EXPECT_THROW((void)c.endCapture(), Error);
  c.beginCapture();
  EXPECT_THROW(c.beginCapture(), Error);
  // An argument error is reported at capture time and nothing is recorded.
  Request bad = c.allReduce(nullptr, nullptr, 4, DataType::kFloat32, ReduceOp::kSum);
  EXPECT_EQ(bad.wait().code(), ErrorCode::kInvalidArgument);
  collectives::MoeConfig mc;
  collectives::MoeDispatchOut out;
  collectives::MoeHandle h;
  Request moe = c.moeDispatch(mc, nullptr, nullptr, nullptr, nullptr, 0, out, h);
  const Status ms = moe.wait();
  EXPECT_EQ(ms.code(), ErrorCode::kInvalidUsage);
  EXPECT_NE(ms.message().find("cannot be captured"), std::string::npos) << ms.message();
  CallGraph g = c.endCapture();
  EXPECT_EQ(g.size(), 0U);
  EXPECT_TRUE(g.replay().wait().ok());  // an empty graph finishes at once
  CallGraph empty;
  EXPECT_EQ(empty.replay().wait().code(), ErrorCode::kInvalidUsage);
  c.groupStart();
  EXPECT_THROW(c.beginCapture(), Error);
  (void)c.groupEnd();
}

TEST(CallGraph, ReplayWithoutThePeerTimesOutNamingIt) {
  Config cfg = testConfig();
  cfg.timeoutSec = 0.5;
  auto comms = createInproc(2, cfg);
  std::vector<CallGraph> graphs(2);
  float x = 1;
  float y = 0;
  onRanks(2, [&](int r) {
    Communicator& c = comms[static_cast<std::size_t>(r)];
    c.beginCapture();
    (void)c.allReduce(&x, &y, 1, DataType::kFloat32, ReduceOp::kSum);
    graphs[static_cast<std::size_t>(r)] = c.endCapture();
  });
  const Status s = graphs[0].replay().wait();  // rank 1 never replays
  EXPECT_EQ(s.code(), ErrorCode::kTimeout);
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
  comms[1].abort();
}

TEST(WaitPolicy, EveryPolicyGivesCorrectResultsAndABadValueNamesTheVariable) {
  for (const char* policy : {"spin", "yield", "adaptive"}) {
    Config cfg = testConfig();
    cfg.set("COPRO_WAIT", policy);
    cfg.spinUs = 5;
    auto comms = createInproc(4, cfg);
    onRanks(4, [&](int r) {
      std::vector<double> in(257, r + 1.0);
      std::vector<double> out(257);
      for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(comms[static_cast<std::size_t>(r)]
                        .allReduce(in.data(), out.data(), in.size(), DataType::kFloat64, ReduceOp::kSum)
                        .wait()
                        .ok());
        ASSERT_EQ(out[256], 10.0) << policy;
      }
    });
  }
  Config cfg;
  try {
    cfg.set("COPRO_WAIT", "busy");
    FAIL() << "COPRO_WAIT=busy was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("COPRO_WAIT"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace copro
