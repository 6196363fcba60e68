// Tests of the Program IR: names, builders, lane cursors, lazy generation, materialization, epochs.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::core {
namespace {

TEST(Program, Names) {
  EXPECT_EQ(bufferName(BufferId::kInput), "input");
  EXPECT_EQ(bufferName(BufferId::kOutput), "output");
  EXPECT_EQ(bufferName(BufferId::kScratch), "scratch");
  EXPECT_EQ(bufferName(BufferId::kLayout), "layout");
  EXPECT_EQ(bufferName(BufferId::kExtra0), "extra0");
  EXPECT_EQ(bufferName(extraBuffer(3)), "extra3");
  const char* names[] = {"put", "get", "signal", "wait", "reduce", "put_reduce", "multicast", "copy", "flush"};
  for (int i = 0; i < kNumOpCodes; ++i) EXPECT_EQ(opCodeName(static_cast<OpCode>(i)), names[i]);
  EXPECT_EQ(initiationName(Initiation::kProxy), "proxy");
  EXPECT_EQ(initiationName(Initiation::kDevice), "device");
  EXPECT_EQ(initiationName(Initiation::kOffload), "offload");
}

TEST(Program, Builders) {
  const Addr dst{1, BufferId::kScratch, 64};
  const Addr src{kSelf, BufferId::kInput, 8};
  const Op put = Op::put(1, dst, src, 32, 2, 3);
  EXPECT_EQ(put.code, OpCode::kPut);
  EXPECT_EQ(put.peer, 1);
  EXPECT_EQ(put.dst, dst);
  EXPECT_EQ(put.src, src);
  EXPECT_EQ(put.bytes, 32U);
  EXPECT_EQ(put.sem, 2);
  EXPECT_EQ(put.value, 3U);
  // Without a signal the add stays at its default, so equal ops compare equal however they were built.
  EXPECT_EQ(Op::put(1, dst, src, 32).value, 0U);
  EXPECT_EQ(Op::put(1, dst, src, 32).sem, -1);

  const Op get = Op::get(2, Addr{kSelf, BufferId::kOutput, 0}, Addr{2, BufferId::kInput, 16}, 8);
  EXPECT_EQ(get.code, OpCode::kGet);
  EXPECT_EQ(get.peer, 2);
  EXPECT_EQ(get.src.offset, 16U);

  const Op sig = Op::signal(3, 1, 5);
  EXPECT_EQ(sig.code, OpCode::kSignal);
  EXPECT_EQ(sig.peer, 3);
  EXPECT_EQ(sig.sem, 1);
  EXPECT_EQ(sig.value, 5U);
  EXPECT_EQ(Op::signal(3, 1).value, 1U);

  const Op wait = Op::wait(4, 7);
  EXPECT_EQ(wait.code, OpCode::kWait);
  EXPECT_EQ(wait.sem, 4);
  EXPECT_EQ(wait.value, 7U);

  const Op red = Op::reduce(Addr{kSelf, BufferId::kOutput, 0},
                            {Addr{kSelf, BufferId::kInput, 0}, Addr{kSelf, BufferId::kScratch, 0}}, 10,
                            DataType::kFloat32, ReduceOp::kMax, 4);
  EXPECT_EQ(red.code, OpCode::kReduce);
  EXPECT_EQ(red.bytes, 40U);
  EXPECT_EQ(red.count(), 10U);
  EXPECT_EQ(red.srcs.size(), 2U);
  EXPECT_EQ(red.redop, ReduceOp::kMax);
  EXPECT_EQ(red.divisor, 4U);

  const Op pr = Op::putReduce(1, dst, src, 6, DataType::kFloat64, ReduceOp::kSum, 0);
  EXPECT_EQ(pr.code, OpCode::kPutReduce);
  EXPECT_EQ(pr.bytes, 48U);
  EXPECT_EQ(pr.count(), 6U);
  EXPECT_EQ(pr.sem, 0);
  EXPECT_EQ(pr.value, 1U);

  const Op mc = Op::multicast({1, 2, 3}, Addr{kSelf, BufferId::kOutput, 0}, src, 16, 1);
  EXPECT_EQ(mc.code, OpCode::kMulticast);
  EXPECT_EQ(mc.ranks, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(mc.value, 1U);

  const Op cp = Op::copy(Addr{kSelf, BufferId::kOutput, 0}, src, 12);
  EXPECT_EQ(cp.code, OpCode::kCopy);
  EXPECT_EQ(cp.bytes, 12U);
  EXPECT_EQ(Op::flush().code, OpCode::kFlush);
  EXPECT_EQ(Op::flush(), Op{});
}

TEST(Program, RankProgramLanes) {
  RankProgram rp;
  EXPECT_EQ(rp.addLane(Initiation::kProxy), 0);
  rp.emit(2, Op::flush());  // creates lanes 1 and 2
  ASSERT_EQ(rp.lanes.size(), 3U);
  EXPECT_EQ(rp.lanes[0].initiation, Initiation::kProxy);
  EXPECT_EQ(rp.lanes[1].initiation, Initiation::kDevice);
  rp.emit(0, Op::wait(0, 1));
  rp.emit(0, Op::signal(1, 0));
  EXPECT_EQ(rp.numOps(), 3U);
  EXPECT_EQ(rp.addLane(), 3);
  EXPECT_THROW(rp.emit(-1, Op::flush()), Error);
}

ProgramHeader smallHeader(std::int32_t n) {
  ProgramHeader h;
  h.name = "test.small";
  h.nranks = n;
  h.numSemaphores = 2;
  h.scratchBytes = 64;
  return h;
}

TEST(Program, CursorsAndClone) {
  RankProgram rp;
  for (int i = 0; i < 5; ++i) rp.emit(0, Op::wait(0, static_cast<std::uint64_t>(i)));
  rp.emit(1, Op::flush());
  Program p(smallHeader(2), {rp});
  EXPECT_EQ(p.numLanes(0), 2);
  EXPECT_EQ(p.numLanes(1), 0);  // missing rank programs are empty
  auto cur = p.openLane(0, 0);
  Op op;
  ASSERT_TRUE(cur->next(op));
  EXPECT_EQ(op.value, 0U);
  ASSERT_TRUE(cur->next(op));
  EXPECT_EQ(op.value, 1U);
  auto fork = cur->clone();  // resumes at op 2, independently
  ASSERT_TRUE(cur->next(op));
  EXPECT_EQ(op.value, 2U);
  ASSERT_TRUE(cur->next(op));
  ASSERT_TRUE(cur->next(op));
  EXPECT_EQ(op.value, 4U);
  EXPECT_FALSE(cur->next(op));
  ASSERT_TRUE(fork->next(op));
  EXPECT_EQ(op.value, 2U);
  EXPECT_THROW((void)p.openLane(0, 2), Error);
  EXPECT_THROW((void)p.openLane(2, 0), Error);
}

TEST(Program, RankOutOfRangeThrows) {
  Program p(smallHeader(2), {});
  try {
    (void)p.rank(2);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("rank 2"), std::string::npos) << e.message();
  }
  EXPECT_THROW((void)p.rank(-1), Error);
  EXPECT_THROW(p.mutableRank(5), Error);
  EXPECT_THROW(Program(smallHeader(1), std::vector<RankProgram>(2)), Error);
}

TEST(Program, MutableRankAndNumOps) {
  Program p(smallHeader(3), {});
  p.mutableRank(1).emit(0, Op::signal(2, 0));
  p.mutableRank(2).emit(0, Op::wait(0, 1));
  p.mutableRank(2).emit(1, Op::flush());
  EXPECT_EQ(p.numOps(), 3U);
  p.mutableHeader().nranks = 4;  // a grown header gets an empty rank program
  p.mutableRank(3).emit(0, Op::flush());
  EXPECT_EQ(p.numOps(), 4U);
}

TEST(Program, LazyGeneratesOncePerRankFromManyThreads) {
  constexpr int kRanks = 8;
  std::vector<std::atomic<int>> calls(kRanks);
  LazyProgram lazy(smallHeader(kRanks), [&](std::int32_t r, RankProgram& out) {
    calls[static_cast<std::size_t>(r)].fetch_add(1);
    for (int i = 0; i <= r; ++i) out.emit(0, Op::signal((r + 1) % kRanks, 0));
    std::this_thread::yield();
  });
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 50; ++k) {
        const std::int32_t r = (t + k) % kRanks;
        const RankProgram& rp = lazy.rank(r);
        if (rp.numOps() != static_cast<std::size_t>(r) + 1) bad.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(calls[static_cast<std::size_t>(r)].load(), 1) << "rank " << r;
  // The reference is stable.
  EXPECT_EQ(&lazy.rank(3), &lazy.rank(3));
  EXPECT_THROW((void)lazy.rank(kRanks), Error);
  EXPECT_THROW((void)lazy.rank(-1), Error);
}

TEST(Program, LazyRetriesAfterAThrowingGenerator) {
  int calls = 0;
  LazyProgram lazy(smallHeader(1), [&](std::int32_t, RankProgram& out) {
    out.emit(0, Op::flush());
    // The first call fails after emitting: the retry must not see its leftovers.
    if (calls++ == 0) throw Error(ErrorCode::kInvalidArgument, "first call fails");
  });
  EXPECT_THROW((void)lazy.rank(0), Error);
  EXPECT_EQ(lazy.rank(0).numOps(), 1U);
}

TEST(Program, MaterializeEqualsLazy) {
  ProgramHeader h = smallHeader(3);
  h.inputBytes = {8, 8, 8};
  h.outputBytes = {24, 24, 24};
  const auto gen = [](std::int32_t r, RankProgram& out) {
    const int lane = out.addLane(r == 0 ? Initiation::kProxy : Initiation::kDevice);
    out.emit(lane, Op::put((r + 1) % 3, Addr{kSelf, BufferId::kOutput, 8ULL * static_cast<std::uint64_t>(r)},
                           Addr{kSelf, BufferId::kInput, 0}, 8, 0));
    out.emit(lane, Op::wait(0, 1));
  };
  LazyProgram lazy(h, gen);
  const Program p = Program::materialize(lazy);
  EXPECT_EQ(p.header(), h);
  ASSERT_EQ(p.numOps(), 6U);
  for (std::int32_t r = 0; r < 3; ++r) EXPECT_EQ(p.rank(r), lazy.rank(r));
  EXPECT_EQ(p.rank(0).lanes[0].initiation, Initiation::kProxy);
  EXPECT_EQ(Program::materialize(p), p);
}

TEST(Program, SemaphoreAdvanceIsTheLargestWaitPerSemaphore) {
  RankProgram rp;
  rp.emit(0, Op::wait(0, 2));
  rp.emit(0, Op::wait(0, 5));
  rp.emit(1, Op::wait(0, 3));
  rp.emit(1, Op::wait(2, 1));
  rp.emit(1, Op::signal(1, 1, 9));  // signals sent do not advance this rank's semaphores
  EXPECT_EQ(semaphoreAdvance(rp, 4), (std::vector<std::uint64_t>{5, 0, 1, 0}));
  EXPECT_EQ(semaphoreAdvance(RankProgram{}, 2), (std::vector<std::uint64_t>{0, 0}));
}

}  // namespace
}  // namespace copro::core
