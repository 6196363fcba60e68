// The inproc executor's failure paths and communicator management: timeouts that name the missing
// ranks, abort from another thread, bounds errors that do not corrupt memory, bad arguments, split,
// allocation, and destroying executors with calls in flight.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "inproc_test_util.hpp"

namespace copro::transport::testing {
namespace {

using core::ErrorCode;
using core::Status;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

class InprocFailures : public ::testing::TestWithParam<std::string> {};

TEST_P(InprocFailures, MissingRankTimesOutNamingIt) {
  const int n = 4;
  const int missing = 2;
  auto execs = makeExecutors(n, testConfig(GetParam(), 0.5));
  const std::uint64_t block = 256;
  auto ring = ringAllGather(n, block);
  std::vector<std::vector<std::uint8_t>> in(n, std::vector<std::uint8_t>(block)), out(n);
  for (auto& o : out) o.resize(block * n);
  const auto t0 = Clock::now();
  const auto st = onEveryRank(n, [&](int r) {
    if (r == missing) return Status();
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*execs[r], ring, b);
  });
  const double took = secondsSince(t0);
  EXPECT_LT(took, 3.0);
  for (int r = 0; r < n; ++r) {
    if (r == missing) continue;
    EXPECT_EQ(st[r].code(), ErrorCode::kTimeout) << st[r].toString();
    EXPECT_NE(st[r].message().find("allgather.ring (call 1) on rank " + std::to_string(r)), std::string::npos)
        << st[r].message();
    EXPECT_NE(st[r].message().find("timed out after 0.5 s"), std::string::npos) << st[r].message();
    EXPECT_NE(st[r].message().find("rank 2 never entered this call"), std::string::npos) << st[r].message();
  }
  // The communicator stays unusable, and says so quickly.
  core::CallBuffers b;
  b.input = in[0].data();
  b.output = out[0].data();
  const auto t1 = Clock::now();
  std::unique_ptr<core::CallHandle> h;
  const Status again = execs[0]->start(ring, b, h);
  EXPECT_EQ(again.code(), ErrorCode::kTimeout) << again.toString();
  EXPECT_NE(again.message().find("unusable"), std::string::npos) << again.message();
  EXPECT_LT(secondsSince(t1), 0.1);
}

TEST_P(InprocFailures, TimeoutWithEveryRankPresentNamesTheBlockedLane) {
  // Rank 1 waits for a signal nobody sends.
  const int n = 2;
  core::ProgramHeader h = makeHeader("stuck", n, 2, 8, 8);
  std::vector<core::RankProgram> ranks(n);
  ranks[0].emit(0, Op::put(1, self(BufferId::kOutput), self(BufferId::kInput), 8, 0));
  ranks[1].emit(0, Op::wait(0, 1));
  ranks[1].emit(0, Op::wait(1, 1));
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  auto execs = makeExecutors(n, testConfig(GetParam(), 0.3));
  std::vector<std::uint64_t> in(n), out(n);
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = &in[r];
    b.output = &out[r];
    return runCall(*execs[r], prog, b);
  });
  EXPECT_TRUE(st[0].ok()) << st[0].toString();
  EXPECT_EQ(st[1].code(), ErrorCode::kTimeout);
  EXPECT_NE(st[1].message().find("every rank entered this call"), std::string::npos) << st[1].message();
  EXPECT_NE(st[1].message().find("lane 0 op 1 (wait) waits for semaphore 1 >= 1 (it is 0)"), std::string::npos)
      << st[1].message();
}

TEST_P(InprocFailures, AbortFromAnotherThreadReleasesAStuckRank) {
  const int n = 2;
  auto execs = makeExecutors(n, testConfig(GetParam(), 60.0));
  auto ring = ringAllGather(n, 64);
  std::vector<std::uint8_t> in(64), out(128);
  Status result;
  std::atomic<bool> finished{false};
  std::thread rank0([&] {
    core::CallBuffers b;
    b.input = in.data();
    b.output = out.data();
    result = runCall(*execs[0], ring, b);  // rank 1 never calls
    finished = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(finished.load());
  const auto t0 = Clock::now();
  execs[0]->abort();
  rank0.join();
  EXPECT_LT(secondsSince(t0), 0.5);
  EXPECT_EQ(result.code(), ErrorCode::kAborted) << result.toString();
  // Later calls fail at once with kAborted.
  core::CallBuffers b;
  b.input = in.data();
  b.output = out.data();
  std::unique_ptr<core::CallHandle> h;
  EXPECT_EQ(execs[0]->start(ring, b, h).code(), ErrorCode::kAborted);
}

TEST_P(InprocFailures, PeersOfAnAbortedRankFailFastNamingIt) {
  const int n = 3;
  auto execs = makeExecutors(n, testConfig(GetParam(), 60.0));
  auto ring = ringAllGather(n, 64);
  std::vector<std::vector<std::uint8_t>> in(n, std::vector<std::uint8_t>(64)), out(n, std::vector<std::uint8_t>(192));
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    execs[0]->abort();
  });
  const auto t0 = Clock::now();
  const auto st = onEveryRank(n, [&](int r) {
    if (r == 0) return Status();  // rank 0 never calls; it is aborted instead
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*execs[r], ring, b);
  });
  aborter.join();
  EXPECT_LT(secondsSince(t0), 2.0);
  for (int r = 1; r < n; ++r) {
    EXPECT_EQ(st[r].code(), ErrorCode::kRemoteError) << st[r].toString();
    EXPECT_NE(st[r].message().find("rank 0"), std::string::npos) << st[r].message();
  }
}

TEST_P(InprocFailures, OutOfBoundsPutFailsWithAMessageAndTouchesNothing) {
  const int n = 2;
  core::ProgramHeader h = makeHeader("bad.put", n, 1, 64, 64);
  std::vector<core::RankProgram> ranks(n);
  ranks[0].emit(0, Op::put(1, self(BufferId::kOutput, 32), self(BufferId::kInput), 64, 0));  // 32 bytes too many
  ranks[1].emit(0, Op::wait(0, 1));
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  auto execs = makeExecutors(n, testConfig(GetParam(), 5.0));
  // Guard bytes after the declared 64 output bytes must stay untouched.
  std::vector<std::vector<std::uint8_t>> in(n, std::vector<std::uint8_t>(64, 1)),
      out(n, std::vector<std::uint8_t>(128, 9));
  const auto t0 = Clock::now();
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*execs[r], prog, b);
  });
  EXPECT_EQ(st[0].code(), ErrorCode::kInvalidProgram) << st[0].toString();
  EXPECT_NE(st[0].message().find("bad.put (call 1) on rank 0 lane 0 op 0 (put)"), std::string::npos) << st[0].message();
  EXPECT_NE(st[0].message().find("dst output[32, 96) of rank 1 is out of bounds (output has 64 bytes"),
            std::string::npos)
      << st[0].message();
  // The receiver learns that its peer failed instead of waiting for the full timeout.
  EXPECT_EQ(st[1].code(), ErrorCode::kRemoteError) << st[1].toString();
  EXPECT_LT(secondsSince(t0), 2.0);
  EXPECT_EQ(out[1], std::vector<std::uint8_t>(128, 9));
}

TEST_P(InprocFailures, BadRanksSemaphoresAndReadOnlyInputAreReported) {
  struct Case {
    Op op;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {Op::put(5, self(BufferId::kOutput), self(BufferId::kInput), 8), "peer rank 5 is out of range"},
      {Op::signal(0, 3), "semaphore 3 of rank 0 is out of range"},
      {Op::put(0, self(BufferId::kInput), self(BufferId::kOutput), 8), "input of rank 0 is read-only"},
      {Op::copy(self(core::extraBuffer(2)), self(BufferId::kInput), 8), "buffer extra2 of rank 0 does not exist"},
      {Op::reduce(self(BufferId::kOutput, 4), {self(BufferId::kOutput)}, 2, core::DataType::kFloat32,
                  core::ReduceOp::kSum),
       "srcs[0] and dst overlap partially"},
  };
  for (const Case& c : cases) {
    core::ProgramHeader h = makeHeader("bad.op", 1, 1, 16, 16);
    std::vector<core::RankProgram> ranks(1);
    ranks[0].emit(0, c.op);
    auto prog = std::make_shared<core::Program>(h, std::move(ranks));
    auto execs = makeExecutors(1, testConfig(GetParam(), 5.0));
    std::vector<std::uint8_t> in(16), out(16);
    core::CallBuffers b;
    b.input = in.data();
    b.output = out.data();
    const Status st = runCall(*execs[0], prog, b);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidProgram) << st.toString();
    EXPECT_NE(st.message().find("bad.op (call 1) on rank 0 lane 0 op 0"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(c.expect), std::string::npos) << st.message();
  }
}

TEST_P(InprocFailures, StartRejectsMismatchedProgramsAndBuffers) {
  auto execs = makeExecutors(2, testConfig(GetParam()));
  std::vector<std::uint8_t> buf(64);
  core::CallBuffers b;
  b.input = buf.data();
  b.output = buf.data();
  std::unique_ptr<core::CallHandle> h;
  Status st = execs[0]->start(ringAllGather(3, 8), b, h);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("is for 3 ranks, but this communicator has 2"), std::string::npos) << st.message();
  core::CallBuffers nullIn;
  nullIn.output = buf.data();
  st = execs[0]->start(ringAllGather(2, 8), nullIn, h);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("input is null"), std::string::npos) << st.message();
  EXPECT_EQ(execs[0]->start(nullptr, b, h).code(), ErrorCode::kInvalidArgument);
}

TEST_P(InprocFailures, DestroyingExecutorsWithCallsInFlightDoesNotCrash) {
  for (int iter = 0; iter < 5; ++iter) {
    auto execs = makeExecutors(3, testConfig(GetParam(), 30.0));
    auto ring = ringAllGather(3, 64);
    std::vector<std::uint8_t> in(64), out(192);
    core::CallBuffers b;
    b.input = in.data();
    b.output = out.data();
    std::unique_ptr<core::CallHandle> h;
    ASSERT_TRUE(execs[0]->start(ring, b, h).ok());
    // Ranks 1 and 2 never call. Destroy every executor, then the handle reports the failure.
    execs.clear();
    const Status st = h->wait();
    EXPECT_EQ(st.code(), ErrorCode::kAborted) << st.toString();
    h.reset();
  }
}

TEST_P(InprocFailures, SplitIntoEvenAndOddGroupsRunsAProgramOnEach) {
  std::mt19937 rng(testSeed(21));
  const int n = 6;
  auto execs = makeExecutors(n, testConfig(GetParam()), {0, 0, 0, 1, 1, 1});
  std::vector<std::unique_ptr<core::Executor>> sub(n);
  // Key -rank reverses the order inside each group.
  const auto st = onEveryRank(n, [&](int r) {
    sub[r] = execs[r]->split(r % 2, -r);
    return Status();
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[r].ok());
    ASSERT_NE(sub[r], nullptr);
    EXPECT_EQ(sub[r]->size(), 3);
    EXPECT_EQ(sub[r]->backend(), "inproc");
  }
  // Even group: old ranks 4, 2, 0 -> new 0, 1, 2; odd: 5, 3, 1.
  EXPECT_EQ(sub[4]->rank(), 0);
  EXPECT_EQ(sub[2]->rank(), 1);
  EXPECT_EQ(sub[0]->rank(), 2);
  EXPECT_EQ(sub[5]->rank(), 0);
  EXPECT_EQ(sub[1]->rank(), 2);
  EXPECT_EQ(sub[4]->nodeOfRank(), (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(sub[5]->nodeOfRank(), (std::vector<int>{1, 1, 0}));

  const std::uint64_t block = 512;
  auto ring = ringAllGather(3, block);
  std::vector<std::vector<std::uint8_t>> in(n), out(n);
  for (int r = 0; r < n; ++r) {
    in[r] = randomBytes(block, rng);
    out[r].assign(block * 3, 0);
  }
  const auto st2 = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*sub[r], ring, b);
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st2[r].ok()) << st2[r].toString();
    for (int j = 0; j < 3; ++j) {
      // New rank j of r's group is old rank (group members ordered by descending old rank).
      const int old = (r % 2 == 0) ? 4 - 2 * j : 5 - 2 * j;
      EXPECT_EQ(0, std::memcmp(out[r].data() + j * block, in[old].data(), block)) << "rank " << r << " block " << j;
    }
  }
  // The parent communicator still works after the split.
  const auto st3 = onEveryRank(n, [&](int r) {
    std::vector<std::uint8_t> o(block * n);
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = o.data();
    return runCall(*execs[r], ringAllGather(n, block), b);
  });
  for (int r = 0; r < n; ++r) ASSERT_TRUE(st3[r].ok()) << st3[r].toString();
}

TEST_P(InprocFailures, SplitWithNegativeColorReturnsNull) {
  const int n = 4;
  auto execs = makeExecutors(n, testConfig(GetParam()));
  std::vector<std::unique_ptr<core::Executor>> sub(n);
  onEveryRank(n, [&](int r) {
    sub[r] = execs[r]->split(r == 3 ? -1 : 0, 0);
    return Status();
  });
  EXPECT_EQ(sub[3], nullptr);
  for (int r = 0; r < 3; ++r) {
    ASSERT_NE(sub[r], nullptr);
    EXPECT_EQ(sub[r]->size(), 3);
    EXPECT_EQ(sub[r]->rank(), r);
  }
}

INSTANTIATE_TEST_SUITE_P(Initiation, InprocFailures, ::testing::Values("device", "proxy"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(InprocExecutor, DescribesItself) {
  auto execs = makeExecutors(3, testConfig("device"));
  ASSERT_EQ(execs.size(), 3U);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(execs[r]->rank(), r);
    EXPECT_EQ(execs[r]->size(), 3);
    EXPECT_EQ(execs[r]->nodeOfRank(), (std::vector<int>{0, 0, 0}));
    EXPECT_EQ(execs[r]->loadStoreDomains(), (std::vector<std::vector<std::int32_t>>{{0, 1, 2}}));
    EXPECT_EQ(execs[r]->config().timeoutSec, 30.0);
  }
  int dummy = 0;
  EXPECT_TRUE(execs[0]->registerBuffer(&dummy, sizeof dummy).ok());
  EXPECT_TRUE(execs[0]->deregisterBuffer(&dummy).ok());
  for (std::size_t bytes : {std::size_t{1}, std::size_t{100}, std::size_t{5} << 20}) {
    void* p = execs[0]->allocate(bytes);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0U);
    std::memset(p, 1, bytes);
    execs[0]->deallocate(p);
  }
}

TEST(InprocExecutor, RejectsBadOptions) {
  registerBuiltinBackends();
  core::ExecutorOptions o;
  o.config = testConfig("device");
  o.nranks = 0;
  EXPECT_THROW(core::ExecutorRegistry::instance().create("inproc", o), Error);
  o.nranks = 2;
  o.nodeOfRank = {0, 1, 2};
  EXPECT_THROW(core::ExecutorRegistry::instance().create("inproc", o), Error);
  o.nodeOfRank = {};
  o.config.initiation = "offload";
  try {
    (void)core::ExecutorRegistry::instance().create("inproc", o);
    FAIL() << "offload initiation accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("initiation 'offload'"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace copro::transport::testing
