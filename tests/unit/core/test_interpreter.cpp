// Tests of the reference interpreter on small hand-written Programs.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "copro/core/interpreter.hpp"
#include "copro/core/program.hpp"
#include "program_fixtures.hpp"

namespace copro::core {
namespace {

std::vector<std::byte> bytesOf(const std::vector<std::uint32_t>& words) {
  std::vector<std::byte> b(words.size() * 4);
  std::memcpy(b.data(), words.data(), b.size());
  return b;
}
std::vector<std::uint32_t> wordsOf(const std::vector<std::byte>& b) {
  std::vector<std::uint32_t> w(b.size() / 4);
  std::memcpy(w.data(), b.data(), w.size() * 4);
  return w;
}
std::vector<std::byte> floatsToBytes(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}
std::vector<float> bytesToFloats(const std::vector<std::byte>& b) {
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

using fixtures::ringAllGather;
using fixtures::self;

TEST(Interpreter, RingAllGatherThreeRanks) {
  const Program p = ringAllGather(3, 8);
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<InterpreterRank> ranks(3);
    for (int r = 0; r < 3; ++r) {
      ranks[static_cast<std::size_t>(r)].input =
          bytesOf({static_cast<std::uint32_t>(100 + r), static_cast<std::uint32_t>(200 + r)});
      ranks[static_cast<std::size_t>(r)].output.assign(24, std::byte{0});
    }
    const Status st = interpretProgram(p, ranks, false, seed);
    ASSERT_TRUE(st.ok()) << "seed " << seed << ": " << st.toString();
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ(wordsOf(ranks[static_cast<std::size_t>(r)].output),
                (std::vector<std::uint32_t>{100, 200, 101, 201, 102, 202}))
          << "rank " << r << " seed " << seed;
      EXPECT_EQ(ranks[static_cast<std::size_t>(r)].semaphores, (std::vector<std::uint64_t>{2}));
    }
  }
}

TEST(Interpreter, RingAllReduceMatchesReference) {
  for (std::int32_t n = 2; n <= 5; ++n) {
    const std::uint64_t elems = 3;
    const Program p = fixtures::ringAllReduce(n, elems);
    std::vector<InterpreterRank> mem(static_cast<std::size_t>(n));
    std::vector<float> expect(elems * static_cast<std::uint64_t>(n), 0.0F);
    for (std::int32_t r = 0; r < n; ++r) {
      std::vector<float> in(expect.size());
      // Small integers: every summation order gives the same float result.
      for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>((r + 1) * 10 + static_cast<int>(i));
      for (std::size_t i = 0; i < in.size(); ++i) expect[i] += in[i];
      mem[static_cast<std::size_t>(r)].input = floatsToBytes(in);
      mem[static_cast<std::size_t>(r)].output.resize(in.size() * 4);
    }
    const Status st = interpretProgramRepeated(p, mem, 16, false, 100);
    ASSERT_TRUE(st.ok()) << "n " << n << ": " << st.toString();
    for (std::int32_t r = 0; r < n; ++r) {
      EXPECT_EQ(bytesToFloats(mem[static_cast<std::size_t>(r)].output), expect) << "n " << n << " rank " << r;
    }
  }
}

TEST(Interpreter, InPlaceInputAliasesOutput) {
  // In place, rank r's own chunk sits in its output at r*chunk, read through the Input buffer.
  const std::int32_t n = 4;
  ProgramHeader h;
  h.nranks = n;
  h.numSemaphores = 1;
  h.outputBytes.assign(n, 16);
  std::vector<RankProgram> ranks(n);
  for (std::int32_t r = 0; r < n; ++r) {
    for (std::int32_t q = 0; q < n; ++q) {
      if (q == r) continue;
      const std::uint64_t off = 4ULL * static_cast<std::uint64_t>(r);
      ranks[static_cast<std::size_t>(r)].emit(
          0, Op::put(q, Addr{q, BufferId::kOutput, off}, self(BufferId::kInput, off), 4, 0));
    }
    ranks[static_cast<std::size_t>(r)].emit(0, Op::wait(0, n - 1));
  }
  const Program p(h, std::move(ranks));
  std::vector<InterpreterRank> mem(n);
  for (std::int32_t r = 0; r < n; ++r) {
    std::vector<std::uint32_t> out(n, 0);
    out[static_cast<std::size_t>(r)] = 7U * static_cast<std::uint32_t>(r) + 1;
    mem[static_cast<std::size_t>(r)].output = bytesOf(out);
  }
  const Status st = interpretProgramRepeated(p, mem, 8, /*inPlace=*/true, 3);
  ASSERT_TRUE(st.ok()) << st.toString();
  for (std::int32_t r = 0; r < n; ++r) {
    EXPECT_EQ(wordsOf(mem[static_cast<std::size_t>(r)].output), (std::vector<std::uint32_t>{1, 8, 15, 22}));
  }
}

TEST(Interpreter, TwoRankAllReduceWithReduce) {
  // Each rank puts its input into the peer's scratch, waits, and reduces input + scratch into output.
  ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  h.scratchBytes = 16;
  h.inputBytes = {16, 16};
  h.outputBytes = {16, 16};
  std::vector<RankProgram> ranks(2);
  for (std::int32_t r = 0; r < 2; ++r) {
    RankProgram& rp = ranks[static_cast<std::size_t>(r)];
    rp.emit(0, Op::put(1 - r, Addr{1 - r, BufferId::kScratch, 0}, self(BufferId::kInput), 16, 0));
    rp.emit(0, Op::wait(0, 1));
    rp.emit(0, Op::reduce(self(BufferId::kOutput), {self(BufferId::kInput), self(BufferId::kScratch)}, 4,
                          DataType::kFloat32, ReduceOp::kSum));
  }
  const Program p(h, std::move(ranks));
  std::vector<InterpreterRank> mem(2);
  mem[0].input = floatsToBytes({1.5F, -2.0F, 3.25F, 100.0F});
  mem[1].input = floatsToBytes({0.5F, 4.0F, -3.25F, 0.125F});
  mem[0].output.resize(16);
  mem[1].output.resize(16);
  const Status st = interpretProgramRepeated(p, mem, 10);
  ASSERT_TRUE(st.ok()) << st.toString();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(bytesToFloats(mem[static_cast<std::size_t>(r)].output), (std::vector<float>{2.0F, 2.0F, 0.0F, 100.125F}));
  }
}

TEST(Interpreter, PutReduceMulticastGetAndDirectCopy) {
  // rank 0 and 2 put_reduce into rank 1's output (serialized by a token), rank 1 multicasts the sum to
  // ranks 0 and 2; rank 2 then gets rank 0's input and copies rank 0's output directly (one domain).
  ProgramHeader h;
  h.nranks = 3;
  h.numSemaphores = 3;
  h.inputBytes = {8, 8, 8};
  h.outputBytes = {8, 8, 8};
  h.scratchBytes = 16;
  std::vector<RankProgram> rp(3);
  const auto i64 = DataType::kInt64;
  rp[0].emit(0, Op::putReduce(1, Addr{1, BufferId::kOutput, 0}, self(BufferId::kInput), 1, i64, ReduceOp::kSum, 0));
  rp[0].emit(0, Op::signal(2, 1));  // token: rank 2 may add now
  rp[0].emit(0, Op::wait(2, 1));    // the multicast result
  rp[2].emit(0, Op::wait(1, 1));
  rp[2].emit(0, Op::putReduce(1, Addr{1, BufferId::kOutput, 0}, self(BufferId::kInput), 1, i64, ReduceOp::kSum, 0));
  rp[2].emit(0, Op::wait(2, 1));
  rp[2].emit(0, Op::get(0, self(BufferId::kScratch), Addr{0, BufferId::kInput, 0}, 8));
  rp[2].emit(0, Op::flush());
  rp[2].emit(0, Op::copy(self(BufferId::kScratch, 8), Addr{0, BufferId::kOutput, 0}, 8));
  rp[1].emit(0, Op::wait(0, 2));
  rp[1].emit(0, Op::multicast({0, 2}, self(BufferId::kOutput), self(BufferId::kOutput), 8, 2));
  const Program p(h, std::move(rp));
  std::vector<InterpreterRank> mem(3);
  const std::int64_t in[3] = {5, 1000, -12};
  for (int r = 0; r < 3; ++r) {
    mem[static_cast<std::size_t>(r)].input.resize(8);
    std::memcpy(mem[static_cast<std::size_t>(r)].input.data(), &in[r], 8);
    const std::int64_t out = r == 1 ? 1000 : 0;  // rank 1 starts its output with its own value
    mem[static_cast<std::size_t>(r)].output.resize(8);
    std::memcpy(mem[static_cast<std::size_t>(r)].output.data(), &out, 8);
  }
  const Status st = interpretProgramRepeated(p, mem, 10);
  ASSERT_TRUE(st.ok()) << st.toString();
  for (int r = 0; r < 3; ++r) {
    std::int64_t v = 0;
    std::memcpy(&v, mem[static_cast<std::size_t>(r)].output.data(), 8);
    EXPECT_EQ(v, 993) << "rank " << r;
  }
  std::int64_t got[2] = {0, 0};
  std::memcpy(got, mem[2].scratch.data(), 16);
  EXPECT_EQ(got[0], 5);
  EXPECT_EQ(got[1], 993);
}

TEST(Interpreter, IndirectPutReadsLayout) {
  // Rank 0's layout holds (count, destination element offset); the put scales them by the element size.
  ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  h.layoutWords = 2;
  h.inputBytes = {32, 32};
  h.outputBytes = {32, 32};
  std::vector<RankProgram> rp(2);
  Op put = Op::put(1, Addr{1, BufferId::kOutput, 0}, self(BufferId::kInput, 4), 0, 0);
  put.indirect.bytesSlot = 0;
  put.indirect.dstOffsetSlot = 1;
  put.indirect.bytesScale = 4;
  rp[0].emit(0, put);
  rp[1].emit(0, Op::wait(0, 1));
  const Program p(h, std::move(rp));
  std::vector<InterpreterRank> mem(2);
  mem[0].input = bytesOf({10, 11, 12, 13, 14, 15, 16, 17});
  mem[0].output.resize(32);
  mem[0].layoutInit = {3, 4};
  mem[1].input.resize(32);
  mem[1].output = bytesOf({0, 0, 0, 0, 0, 0, 0, 0});
  const Status st = interpretProgram(p, mem, false, 1);
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_EQ(wordsOf(mem[1].output), (std::vector<std::uint32_t>{0, 0, 0, 0, 11, 12, 13, 0}));
  EXPECT_EQ(mem[0].layout, (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(mem[1].layout, (std::vector<std::uint64_t>{0, 0}));
}

TEST(Interpreter, DeadlockNamesTheBlockedLanes) {
  ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  std::vector<RankProgram> rp(2);
  for (std::int32_t r = 0; r < 2; ++r) {
    rp[static_cast<std::size_t>(r)].emit(0, Op::wait(0, 1));
    rp[static_cast<std::size_t>(r)].emit(0, Op::signal(1 - r, 0));
  }
  const Program p(h, std::move(rp));
  std::vector<InterpreterRank> mem(2);
  const Status st = interpretProgram(p, mem);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), ErrorCode::kInvalidProgram);
  EXPECT_NE(st.message().find("deadlock"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("rank 0 lane 0 op 0 (wait): waits for semaphore 0 >= 1 (current 0)"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("rank 1 lane 0 op 0 (wait): waits for semaphore 0 >= 1 (current 0)"), std::string::npos)
      << st.message();
}

TEST(Interpreter, OutOfBoundsNamesTheOp) {
  ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  h.scratchBytes = 64;
  h.inputBytes = {16, 16};
  std::vector<RankProgram> rp(2);
  rp[0].emit(0, Op::flush());
  rp[0].emit(0, Op::put(1, Addr{1, BufferId::kScratch, 60}, self(BufferId::kInput), 8));
  const Program p(h, std::move(rp));
  std::vector<InterpreterRank> mem(2);
  for (auto& m : mem) m.input.resize(16);
  const Status st = interpretProgram(p, mem);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "rank 0 lane 0 op 1 (put): dst scratch[60, 68) of rank 1 is out of bounds (scratch has 64 bytes)");
}

TEST(Interpreter, BuffersSmallerThanDeclaredAreRejected) {
  const Program p = ringAllGather(2, 8);
  std::vector<InterpreterRank> mem(2);
  for (auto& m : mem) {
    m.input.resize(8);
    m.output.resize(12);
  }
  const Status st = interpretProgram(p, mem);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("rank 0: output has 12 bytes, the Program needs 16"), std::string::npos) << st.message();
  std::vector<InterpreterRank> wrongCount(3);
  EXPECT_EQ(interpretProgram(p, wrongCount).code(), ErrorCode::kInvalidArgument);
}

TEST(Interpreter, RepeatedRunsExposeAnUnorderedWrite) {
  // Ranks 1 and 2 write different values into the same bytes of rank 0 with nothing ordering them.
  ProgramHeader h;
  h.nranks = 3;
  h.numSemaphores = 1;
  h.outputBytes = {4, 4, 4};
  h.inputBytes = {4, 4, 4};
  std::vector<RankProgram> rp(3);
  for (std::int32_t r = 1; r < 3; ++r) {
    rp[static_cast<std::size_t>(r)].emit(0, Op::put(0, Addr{0, BufferId::kOutput, 0}, self(BufferId::kInput), 4, 0));
  }
  rp[0].emit(0, Op::wait(0, 2));
  const Program p(h, std::move(rp));
  std::vector<InterpreterRank> mem(3);
  for (std::uint32_t r = 0; r < 3; ++r) {
    mem[r].input = bytesOf({r});
    mem[r].output = bytesOf({0});
  }
  const Status st = interpretProgramRepeated(p, mem, 32, false, 0);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("depends on the interleaving: rank 0 output byte 0"), std::string::npos) << st.message();
}

TEST(Interpreter, ReadingUnwrittenScratchIsSeedDependent) {
  ProgramHeader h;
  h.nranks = 1;
  h.scratchBytes = 8;
  h.outputBytes = {8};
  std::vector<RankProgram> rp(1);
  rp[0].emit(0, Op::copy(self(BufferId::kOutput), self(BufferId::kScratch), 8));
  const Program p(h, std::move(rp));
  std::vector<InterpreterRank> mem(1);
  mem[0].output.resize(8);
  EXPECT_FALSE(interpretProgramRepeated(p, mem, 2).ok());
}

TEST(Interpreter, MalformedOpsAreReported) {
  ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  h.scratchBytes = 16;
  const auto run = [&](Op op) {
    std::vector<RankProgram> rp(2);
    rp[1].emit(0, Op::flush());
    rp[1].emit(0, std::move(op));
    const Program p(h, std::move(rp));
    std::vector<InterpreterRank> mem(2);
    return interpretProgram(p, mem).message();
  };
  EXPECT_EQ(run(Op::signal(2, 0)), "rank 1 lane 0 op 1 (signal): signal target rank 2 is out of range (nranks 2)");
  EXPECT_EQ(run(Op::signal(0, 3)), "rank 1 lane 0 op 1 (signal): semaphore 3 is out of range (numSemaphores 1)");
  EXPECT_EQ(run(Op::reduce(self(BufferId::kScratch), {}, 1, DataType::kInt32, ReduceOp::kSum)),
            "rank 1 lane 0 op 1 (reduce): reduce has no sources");
  Op odd = Op::reduce(self(BufferId::kScratch), {self(BufferId::kScratch, 8)}, 1, DataType::kInt32, ReduceOp::kSum);
  odd.bytes = 6;
  EXPECT_EQ(run(odd), "rank 1 lane 0 op 1 (reduce): 6 bytes is not a whole number of int32 elements");
  EXPECT_EQ(run(Op::copy(self(BufferId::kScratch), self(extraBuffer(0)), 4)),
            "rank 1 lane 0 op 1 (copy): src buffer extra0 of rank 1 does not exist (the call has 0 extra buffers)");
}

TEST(Interpreter, DomainIsEnforcedForDirectAccess) {
  ProgramHeader h;
  h.nranks = 2;
  h.scratchBytes = 8;
  h.loadStoreDomains = {{0}, {1}};
  std::vector<RankProgram> rp(2);
  rp[0].emit(0, Op::copy(self(BufferId::kScratch), Addr{1, BufferId::kScratch, 0}, 8));
  const Program p(h, std::move(rp));
  std::vector<InterpreterRank> mem(2);
  EXPECT_EQ(interpretProgram(p, mem).message(),
            "rank 0 lane 0 op 0 (copy): src addresses rank 1 directly, outside the load/store domain of rank 0");
}

TEST(Interpreter, ExtraBuffersAndLazyPrograms) {
  ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 1;
  LazyProgram lazy(h, [](std::int32_t r, RankProgram& out) {
    if (r == 0) {
      out.emit(0, Op::put(1, Addr{kSelf, extraBuffer(1), 2}, self(extraBuffer(0)), 2, 0));
    } else {
      out.emit(0, Op::wait(0, 1));
    }
  });
  std::vector<InterpreterRank> mem(2);
  mem[0].extra = {{std::byte{1}, std::byte{2}}};
  mem[1].extra = {{}, std::vector<std::byte>(4, std::byte{0})};
  const Status st = interpretProgram(lazy, mem);
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_EQ(mem[1].extra[1], (std::vector<std::byte>{std::byte{0}, std::byte{0}, std::byte{1}, std::byte{2}}));
}

}  // namespace
}  // namespace copro::core
