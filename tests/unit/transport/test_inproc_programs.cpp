// The inproc executor runs hand-written Programs correctly, in both initiation modes: rings of
// put+signal, load/store reductions over peers' buffers, the fused reduce+multicast path, epochs over
// back-to-back calls, several calls in flight, get/copy/put_reduce and indirect ops.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "inproc_test_util.hpp"

namespace copro::transport::testing {
namespace {

using core::Status;

class InprocPrograms : public ::testing::TestWithParam<std::string> {
 protected:
  [[nodiscard]] core::Config config() const { return testConfig(GetParam()); }
};

/// Runs the ring all-gather once on every rank and checks every output block.
void checkRing(std::vector<std::unique_ptr<core::Executor>>& execs, const std::shared_ptr<const core::Program>& prog,
               std::uint64_t block, std::mt19937& rng) {
  const int n = static_cast<int>(execs.size());
  std::vector<std::vector<std::uint8_t>> in(static_cast<std::size_t>(n));
  std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    in[static_cast<std::size_t>(r)] = randomBytes(block, rng);
    out[static_cast<std::size_t>(r)].assign(block * static_cast<std::uint64_t>(n), 0xEE);
  }
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[static_cast<std::size_t>(r)].data();
    b.output = out[static_cast<std::size_t>(r)].data();
    return runCall(*execs[static_cast<std::size_t>(r)], prog, b);
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[static_cast<std::size_t>(r)].ok()) << st[static_cast<std::size_t>(r)].toString();
    for (int j = 0; j < n; ++j) {
      ASSERT_EQ(0, std::memcmp(out[static_cast<std::size_t>(r)].data() + static_cast<std::uint64_t>(j) * block,
                               in[static_cast<std::size_t>(j)].data(), block))
          << "rank " << r << " block " << j;
    }
  }
}

TEST_P(InprocPrograms, RingOfPutsWithSignalsFrom2To16Ranks) {
  std::mt19937 rng(testSeed(1234));
  for (int n : {2, 3, 5, 8, 16}) {
    SCOPED_TRACE("ranks " + std::to_string(n));
    auto execs = makeExecutors(n, config());
    const std::uint64_t block = 1000 + static_cast<std::uint64_t>(n);  // odd sizes on purpose
    checkRing(execs, ringAllGather(n, block), block, rng);
    // Two lanes per rank, each with its own semaphore.
    checkRing(execs, ringAllGather(n, block, 2), block, rng);
  }
}

TEST_P(InprocPrograms, SingleRankRing) {
  std::mt19937 rng(testSeed(7));
  auto execs = makeExecutors(1, config());
  checkRing(execs, ringAllGather(1, 64), 64, rng);
}

/// Runs lsaAllReduce and checks the sums (inputs are small integers, so any summation order is exact).
void checkAllReduce(int n, std::uint64_t count, Spread spread, bool inPlace, const core::Config& cfg, int calls,
                    std::mt19937& rng) {
  auto execs = makeExecutors(n, cfg);
  auto prog = lsaAllReduce(n, count, spread, inPlace);
  std::vector<std::vector<float>> in(static_cast<std::size_t>(n));
  std::vector<std::vector<float>> out(static_cast<std::size_t>(n));
  for (int call = 0; call < calls; ++call) {
    std::vector<float> expect(count, 0.0F);
    for (int r = 0; r < n; ++r) {
      auto& v = in[static_cast<std::size_t>(r)];
      v = randomInts(count, rng);
      for (std::uint64_t i = 0; i < count; ++i) expect[i] += v[i];
      out[static_cast<std::size_t>(r)].assign(count, -1.0F);
      if (inPlace) out[static_cast<std::size_t>(r)] = v;
    }
    const std::uint64_t fusedBefore = detail::inprocFusedReducesForTesting();
    const auto st = onEveryRank(n, [&](int r) {
      core::CallBuffers b;
      auto ri = static_cast<std::size_t>(r);
      b.output = out[ri].data();
      b.input = inPlace ? out[ri].data() : in[ri].data();
      return runCall(*execs[ri], prog, b);
    });
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(st[static_cast<std::size_t>(r)].ok()) << st[static_cast<std::size_t>(r)].toString();
      ASSERT_EQ(out[static_cast<std::size_t>(r)], expect) << "rank " << r << " call " << call;
    }
    // Every rank's reduce ran fused with its multicast or puts (unless kept apart on purpose).
    const std::uint64_t fused = (spread == Spread::kUnfused || n == 1) ? 0 : static_cast<std::uint64_t>(n);
    EXPECT_EQ(detail::inprocFusedReducesForTesting() - fusedBefore, fused) << "call " << call;
  }
}

TEST_P(InprocPrograms, ReduceAcrossPeersInputsThenMulticastIsFusedAndCorrect) {
  std::mt19937 rng(testSeed(99));
  for (int n : {1, 2, 3, 4, 7}) {
    for (bool inPlace : {false, true}) {
      SCOPED_TRACE("ranks " + std::to_string(n) + (inPlace ? " in place" : " out of place"));
      const std::uint64_t count = 1021 * static_cast<std::uint64_t>(n);
      checkAllReduce(n, count, Spread::kMulticast, inPlace, config(), 2, rng);
    }
  }
}

TEST_P(InprocPrograms, ReduceThenRunOfPutsIsFusedAndCorrect) {
  std::mt19937 rng(testSeed(100));
  for (int n : {2, 4, 5}) {
    for (bool inPlace : {false, true}) {
      SCOPED_TRACE("ranks " + std::to_string(n) + (inPlace ? " in place" : " out of place"));
      checkAllReduce(n, 4096 * static_cast<std::uint64_t>(n), Spread::kPuts, inPlace, config(), 2, rng);
    }
  }
}

TEST_P(InprocPrograms, UnfusedReduceAndMulticastAgree) {
  std::mt19937 rng(testSeed(101));
  checkAllReduce(4, 4000, Spread::kUnfused, false, config(), 2, rng);
  checkAllReduce(4, 4000, Spread::kUnfused, true, config(), 2, rng);
}

TEST_P(InprocPrograms, HundredBackToBackCallsReuseSemaphoresThroughEpochs) {
  std::mt19937 rng(testSeed(5));
  checkAllReduce(4, 256, Spread::kMulticast, false, config(), 100, rng);
}

TEST_P(InprocPrograms, TwoProgramsAlternating) {
  std::mt19937 rng(testSeed(6));
  const int n = 4;
  auto execs = makeExecutors(n, config());
  const std::uint64_t block = 333;
  auto ring = ringAllGather(n, block, 2);
  const std::uint64_t count = 512;
  auto ar = lsaAllReduce(n, count, Spread::kMulticast);
  std::vector<std::vector<std::uint8_t>> gin(n), gout(n);
  std::vector<std::vector<float>> ain(n), aout(n);
  for (int iter = 0; iter < 20; ++iter) {
    std::vector<float> expect(count, 0.0F);
    for (int r = 0; r < n; ++r) {
      gin[r] = randomBytes(block, rng);
      gout[r].assign(block * n, 0);
      ain[r] = randomInts(count, rng);
      aout[r].assign(count, 0.0F);
      for (std::uint64_t i = 0; i < count; ++i) expect[i] += ain[r][i];
    }
    const auto st = onEveryRank(n, [&](int r) {
      core::CallBuffers g;
      g.input = gin[r].data();
      g.output = gout[r].data();
      core::CallBuffers a;
      a.input = ain[r].data();
      a.output = aout[r].data();
      COPRO_RETURN_IF_ERROR(runCall(*execs[r], ring, g));
      return runCall(*execs[r], ar, a);
    });
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(st[r].ok()) << st[r].toString();
      ASSERT_EQ(aout[r], expect) << "iteration " << iter << " rank " << r;
      for (int j = 0; j < n; ++j) {
        ASSERT_EQ(0, std::memcmp(gout[r].data() + j * block, gin[j].data(), block)) << "iteration " << iter;
      }
    }
  }
}

TEST_P(InprocPrograms, SeveralCallsInFlightCompleteInStreamOrder) {
  std::mt19937 rng(testSeed(8));
  const int n = 3;
  const int depth = 4;
  auto execs = makeExecutors(n, config());
  const std::uint64_t count = 300;
  auto ar = lsaAllReduce(n, count, Spread::kMulticast);
  std::vector<std::vector<std::vector<float>>> in(depth, std::vector<std::vector<float>>(n));
  std::vector<std::vector<std::vector<float>>> out(depth, std::vector<std::vector<float>>(n));
  std::vector<std::vector<float>> expect(depth, std::vector<float>(count, 0.0F));
  for (int k = 0; k < depth; ++k) {
    for (int r = 0; r < n; ++r) {
      in[k][r] = randomInts(count, rng);
      out[k][r].assign(count, 0.0F);
      for (std::uint64_t i = 0; i < count; ++i) expect[k][i] += in[k][r][i];
    }
  }
  const auto st = onEveryRank(n, [&](int r) {
    std::vector<std::unique_ptr<core::CallHandle>> handles(depth);
    for (int k = 0; k < depth; ++k) {
      core::CallBuffers b;
      b.input = in[k][r].data();
      b.output = out[k][r].data();
      COPRO_RETURN_IF_ERROR(execs[r]->start(ar, b, handles[k]));
    }
    // Waiting on the last call first must drive the earlier ones too.
    for (int k = depth - 1; k >= 0; --k) COPRO_RETURN_IF_ERROR(handles[k]->wait());
    return Status();
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[r].ok()) << st[r].toString();
    for (int k = 0; k < depth; ++k) ASSERT_EQ(out[k][r], expect[k]) << "call " << k << " rank " << r;
  }
}

TEST_P(InprocPrograms, TestPollsUntilDone) {
  std::mt19937 rng(testSeed(9));
  const int n = 4;
  auto execs = makeExecutors(n, config());
  const std::uint64_t block = 4096;
  auto ring = ringAllGather(n, block);
  std::vector<std::vector<std::uint8_t>> in(n), out(n);
  for (int r = 0; r < n; ++r) {
    in[r] = randomBytes(block, rng);
    out[r].assign(block * n, 0);
  }
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    std::unique_ptr<core::CallHandle> h;
    COPRO_RETURN_IF_ERROR(execs[r]->start(ring, b, h));
    bool done = false;
    while (!done) {
      COPRO_RETURN_IF_ERROR(h->test(done));
      if (!done) std::this_thread::yield();
    }
    return Status();
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[r].ok()) << st[r].toString();
    for (int j = 0; j < n; ++j) ASSERT_EQ(0, std::memcmp(out[r].data() + j * block, in[j].data(), block));
  }
}

TEST_P(InprocPrograms, GetCopyAndBarrier) {
  // Each rank gets its left neighbour's input into its output and tells the neighbour it is done
  // reading; a local copy duplicates the result into the second half of the output.
  std::mt19937 rng(testSeed(10));
  const int n = 5;
  const std::uint64_t bytes = 777;
  core::ProgramHeader h = makeHeader("get.shift", n, 1, bytes, 2 * bytes);
  std::vector<core::RankProgram> ranks(n);
  for (int r = 0; r < n; ++r) {
    const int left = (r + n - 1) % n;
    const int right = (r + 1) % n;
    ranks[r].emit(0, Op::get(left, self(BufferId::kOutput), on(left, BufferId::kInput), bytes));
    ranks[r].emit(0, Op::signal(left, 0));
    ranks[r].emit(0, Op::copy(self(BufferId::kOutput, bytes), self(BufferId::kOutput), bytes));
    ranks[r].emit(0, Op::wait(0, 1));  // the right neighbour has read my input
    (void)right;
  }
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  auto execs = makeExecutors(n, config());
  std::vector<std::vector<std::uint8_t>> in(n), out(n);
  for (int r = 0; r < n; ++r) {
    in[r] = randomBytes(bytes, rng);
    out[r].assign(2 * bytes, 0);
  }
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*execs[r], prog, b);
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[r].ok()) << st[r].toString();
    const int left = (r + n - 1) % n;
    EXPECT_EQ(0, std::memcmp(out[r].data(), in[left].data(), bytes));
    EXPECT_EQ(0, std::memcmp(out[r].data() + bytes, in[left].data(), bytes));
  }
}

TEST_P(InprocPrograms, ConcurrentPutReducesIntoOneTargetAreAtomic) {
  // Rank 0 copies its input into its output and then lets everyone put_reduce into it at once.
  std::mt19937 rng(testSeed(11));
  const int n = 6;
  const std::uint64_t count = 20000;
  core::ProgramHeader h = makeHeader("reduce.putreduce", n, 2, count * 4, count * 4);
  std::vector<core::RankProgram> ranks(n);
  ranks[0].emit(0, Op::copy(self(BufferId::kOutput), self(BufferId::kInput), count * 4));
  for (int q = 1; q < n; ++q) ranks[0].emit(0, Op::signal(q, 1));
  ranks[0].emit(0, Op::wait(0, n - 1));
  for (int q = 1; q < n; ++q) {
    ranks[q].emit(0, Op::wait(1, 1));
    ranks[q].emit(0, Op::putReduce(0, self(BufferId::kOutput), self(BufferId::kInput), count, core::DataType::kFloat32,
                                   core::ReduceOp::kSum, 0));
  }
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  auto execs = makeExecutors(n, config());
  std::vector<std::vector<float>> in(n), out(n);
  std::vector<float> expect(count, 0.0F);
  for (int r = 0; r < n; ++r) {
    in[r] = randomInts(count, rng);
    out[r].assign(count, 0.0F);
    for (std::uint64_t i = 0; i < count; ++i) expect[i] += in[r][i];
  }
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    return runCall(*execs[r], prog, b);
  });
  for (int r = 0; r < n; ++r) ASSERT_TRUE(st[r].ok()) << st[r].toString();
  EXPECT_EQ(out[0], expect);
}

TEST_P(InprocPrograms, IndirectPutReadsSizesAndOffsetsFromLayout) {
  // Rank r sends layout[0] float32 elements from input offset layout[1] to rank r+1's output at
  // offset layout[2] (element units, bytesScale 4); a counts exchange is not needed for this check.
  const int n = 3;
  const std::uint64_t count = 64;
  core::ProgramHeader h = makeHeader("indirect.put", n, 1, count * 4, count * 4);
  h.layoutWords = 3;
  std::vector<core::RankProgram> ranks(n);
  for (int r = 0; r < n; ++r) {
    Op put = Op::put((r + 1) % n, self(BufferId::kOutput), self(BufferId::kInput), 0, 0);
    put.indirect.bytesSlot = 0;
    put.indirect.srcOffsetSlot = 1;
    put.indirect.dstOffsetSlot = 2;
    put.indirect.bytesScale = 4;
    ranks[r].emit(0, put);
    ranks[r].emit(0, Op::wait(0, 1));
  }
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  auto execs = makeExecutors(n, config());
  std::vector<std::vector<float>> in(n), out(n);
  for (int r = 0; r < n; ++r) {
    in[r].resize(count);
    for (std::uint64_t i = 0; i < count; ++i) in[r][i] = static_cast<float>(100 * r + static_cast<int>(i));
    out[r].assign(count, -1.0F);
  }
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    b.layoutInit = {static_cast<std::uint64_t>(5 + r), static_cast<std::uint64_t>(r), 10};
    return runCall(*execs[r], prog, b);
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(st[r].ok()) << st[r].toString();
    const int from = (r + n - 1) % n;
    for (std::uint64_t i = 0; i < count; ++i) {
      const bool written = i >= 10 && i < 10 + 5 + static_cast<std::uint64_t>(from);
      const float want = written ? in[from][i - 10 + static_cast<std::uint64_t>(from)] : -1.0F;
      ASSERT_EQ(out[r][i], want) << "rank " << r << " element " << i;
    }
  }
}

TEST_P(InprocPrograms, ScratchAndExtraBuffers) {
  // Rank r puts its extra0 buffer into the right neighbour's scratch, which copies it to its extra1.
  std::mt19937 rng(testSeed(12));
  const int n = 4;
  const std::uint64_t bytes = 1500;
  core::ProgramHeader h = makeHeader("extra.scratch", n, 1, 0, 0, bytes);
  std::vector<core::RankProgram> ranks(n);
  for (int r = 0; r < n; ++r) {
    const int right = (r + 1) % n;
    ranks[r].emit(0, Op::put(right, self(BufferId::kScratch), self(core::extraBuffer(0)), bytes, 0));
    ranks[r].emit(0, Op::wait(0, 1));
    ranks[r].emit(0, Op::copy(self(core::extraBuffer(1)), self(BufferId::kScratch), bytes));
  }
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  auto execs = makeExecutors(n, config());
  std::vector<std::vector<std::uint8_t>> e0(n), e1(n);
  for (int r = 0; r < n; ++r) {
    e0[r] = randomBytes(bytes, rng);
    e1[r].assign(bytes, 0);
  }
  for (int iter = 0; iter < 3; ++iter) {
    const auto st = onEveryRank(n, [&](int r) {
      core::CallBuffers b;
      b.extra = {e0[r].data(), e1[r].data()};
      b.extraBytes = {bytes, bytes};
      return runCall(*execs[r], prog, b);
    });
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(st[r].ok()) << st[r].toString();
      EXPECT_EQ(e1[r], e0[(r + n - 1) % n]);
    }
  }
}

TEST_P(InprocPrograms, RanksWithoutOpsCompleteImmediately) {
  const int n = 3;
  core::ProgramHeader h = makeHeader("p2p.one", n, 1, 16, 16);
  std::vector<core::RankProgram> ranks(n);
  ranks[0].emit(0, Op::put(1, self(BufferId::kOutput), self(BufferId::kInput), 16, 0));
  ranks[1].emit(0, Op::wait(0, 1));
  auto prog = std::make_shared<core::Program>(h, std::move(ranks));
  auto execs = makeExecutors(n, config());
  std::vector<std::vector<std::uint8_t>> in(n, std::vector<std::uint8_t>(16, 7)), out(n, std::vector<std::uint8_t>(16));
  for (int iter = 0; iter < 5; ++iter) {
    const auto st = onEveryRank(n, [&](int r) {
      core::CallBuffers b;
      b.input = in[r].data();
      b.output = out[r].data();
      return runCall(*execs[r], prog, b);
    });
    for (int r = 0; r < n; ++r) ASSERT_TRUE(st[r].ok()) << st[r].toString();
    EXPECT_EQ(out[1], in[0]);
  }
}

TEST_P(InprocPrograms, SixteenRanksOnFewCoresDoNotBurnTheMachine) {
  // 16 ranks, each waits for its neighbour in a long chain: most of them sleep most of the time. The
  // CPU time used must stay well below wall time x 16 (it would be ~16x if waits only spun).
  std::mt19937 rng(testSeed(13));
  const int n = 16;
  auto execs = makeExecutors(n, config());
  const std::uint64_t block = 64;
  auto ring = ringAllGather(n, block);
  std::vector<std::vector<std::uint8_t>> in(n), out(n);
  for (int r = 0; r < n; ++r) {
    in[r] = randomBytes(block, rng);
    out[r].assign(block * n, 0);
  }
  timespec c0{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  const auto w0 = std::chrono::steady_clock::now();
  const auto st = onEveryRank(n, [&](int r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));  // everyone else waits for rank 0
    return runCall(*execs[r], ring, b);
  });
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  timespec c1{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  const double cpu = static_cast<double>(c1.tv_sec - c0.tv_sec) + 1e-9 * static_cast<double>(c1.tv_nsec - c0.tv_nsec);
  for (int r = 0; r < n; ++r) ASSERT_TRUE(st[r].ok()) << st[r].toString();
  std::printf("16 ranks: wall %.3f s, cpu %.3f s\n", wall, cpu);
  EXPECT_LT(cpu, 0.5 * wall + 0.05);
}

INSTANTIATE_TEST_SUITE_P(Initiation, InprocPrograms, ::testing::Values("device", "proxy"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(InprocProxy, OneThreadCanStartEveryRankAndWait) {
  // Proxy initiation: progress threads run the lanes, so a single user thread may drive all ranks.
  std::mt19937 rng(testSeed(14));
  const int n = 4;
  auto execs = makeExecutors(n, testConfig("proxy"));
  const std::uint64_t count = 400;
  auto ar = lsaAllReduce(n, count, Spread::kMulticast);
  std::vector<std::vector<float>> in(n), out(n);
  std::vector<float> expect(count, 0.0F);
  for (int r = 0; r < n; ++r) {
    in[r] = randomInts(count, rng);
    out[r].assign(count, 0.0F);
    for (std::uint64_t i = 0; i < count; ++i) expect[i] += in[r][i];
  }
  std::vector<std::unique_ptr<core::CallHandle>> handles(n);
  for (int r = 0; r < n; ++r) {
    core::CallBuffers b;
    b.input = in[r].data();
    b.output = out[r].data();
    ASSERT_TRUE(execs[r]->start(ar, b, handles[r]).ok());
  }
  for (int r = 0; r < n; ++r) {
    const Status st = handles[r]->wait();
    ASSERT_TRUE(st.ok()) << st.toString();
    EXPECT_EQ(out[r], expect);
  }
}

}  // namespace
}  // namespace copro::transport::testing
