// Tests of the Program validator on correct and deliberately broken Programs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/validator.hpp"
#include "program_fixtures.hpp"

namespace copro::core {
namespace {

using fixtures::on;
using fixtures::self;
using Kind = ValidationIssue::Kind;

ProgramHeader header(std::int32_t n, std::int32_t sems = 2, std::uint64_t scratch = 64) {
  ProgramHeader h;
  h.name = "test";
  h.nranks = n;
  h.numSemaphores = sems;
  h.scratchBytes = scratch;
  h.inputBytes.assign(static_cast<std::size_t>(n), 64);
  h.outputBytes.assign(static_cast<std::size_t>(n), 64);
  return h;
}

/// The issues of one kind.
std::vector<ValidationIssue> ofKind(const ValidationResult& r, Kind k) {
  std::vector<ValidationIssue> out;
  for (const auto& i : r.issues) {
    if (i.kind == k) out.push_back(i);
  }
  return out;
}

bool anyMessageContains(const ValidationResult& r, Kind k, const std::string& text) {
  for (const auto& i : ofKind(r, k)) {
    if (i.message.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(Validator, CorrectRingsPass) {
  for (std::int32_t n = 1; n <= 6; ++n) {
    const ValidationResult ag = validateProgram(fixtures::ringAllGather(n, 16));
    EXPECT_TRUE(ag.ok()) << "allgather n " << n << "\n" << ag.summary();
    const ValidationResult ar = validateProgram(fixtures::ringAllReduce(n, 4));
    EXPECT_TRUE(ar.ok()) << "allreduce n " << n << "\n" << ar.summary();
    EXPECT_TRUE(ar.note.empty()) << ar.note;
  }
  EXPECT_NO_THROW(requireValidProgram(fixtures::ringAllReduce(4, 4)));
}

TEST(Validator, UnsatisfiableWaitNamesRankLaneOp) {
  Program p(header(2), {});
  p.mutableRank(0).emit(0, Op::signal(1, 0));
  p.mutableRank(1).emit(0, Op::flush());
  p.mutableRank(1).emit(0, Op::flush());
  p.mutableRank(1).emit(0, Op::wait(0, 2));
  const ValidationResult r = validateProgram(p);
  ASSERT_EQ(r.issues.size(), 1U) << r.summary();
  const ValidationIssue& i = r.issues[0];
  EXPECT_EQ(i.kind, Kind::kUnsatisfiableWait);
  EXPECT_EQ(i.rank, 1);
  EXPECT_EQ(i.lane, 0);
  EXPECT_EQ(i.opIndex, 2);
  EXPECT_NE(i.message.find("rank 1 lane 0 op 2"), std::string::npos) << i.message;
  EXPECT_EQ(i.message,
            "rank 1 lane 0 op 2 (wait): waits for semaphore 0 >= 2, but all signals into rank 1 semaphore 0 add up to "
            "1 (it can never pass)");
  try {
    requireValidProgram(p);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidProgram);
    EXPECT_NE(e.message().find("rank 1 lane 0 op 2 (wait)"), std::string::npos) << e.message();
  }
}

TEST(Validator, LeftoverSignals) {
  Program p(header(2), {});
  p.mutableRank(0).emit(0, Op::put(1, on(1, BufferId::kOutput), self(BufferId::kInput), 8, 1, 1));
  p.mutableRank(0).emit(0, Op::signal(1, 1, 2));
  p.mutableRank(1).emit(0, Op::wait(1, 1));
  const ValidationResult r = validateProgram(p);
  const auto left = ofKind(r, Kind::kLeftoverSignals);
  ASSERT_EQ(left.size(), 1U) << r.summary();
  EXPECT_EQ(left[0].rank, 0);
  EXPECT_EQ(left[0].opIndex, 1);
  EXPECT_NE(left[0].message.find("rank 0 lane 0 op 1 (signal): signals into rank 1 semaphore 1 add up to 3 but the "
                                 "largest wait on it is 1"),
            std::string::npos)
      << left[0].message;
}

TEST(Validator, TwoRankDeadlock) {
  Program p(header(2), {});
  for (std::int32_t r = 0; r < 2; ++r) {
    p.mutableRank(r).emit(0, Op::wait(0, 1));
    p.mutableRank(r).emit(0, Op::signal(1 - r, 0));
  }
  const ValidationResult r = validateProgram(p);
  const auto dl = ofKind(r, Kind::kDeadlock);
  ASSERT_EQ(dl.size(), 2U) << r.summary();
  EXPECT_EQ(r.issues.size(), 2U) << r.summary();
  EXPECT_EQ(dl[0].message,
            "rank 0 lane 0 op 0 (wait): deadlock: blocked forever waiting for semaphore 0 >= 1, reached only 0; the "
            "missing signals would come from rank 1 lane 0 (blocked at op 0)");
  EXPECT_EQ(dl[1].rank, 1);
  EXPECT_EQ(dl[1].opIndex, 0);
  EXPECT_NE(r.note.find("race check skipped"), std::string::npos) << r.note;
}

TEST(Validator, DeadlockAcrossLanesOfOneRank) {
  // Lane 1 signals only after lane 0 got something that lane 1 sends later: a cycle through rank 1.
  Program p(header(2), {});
  p.mutableRank(0).emit(0, Op::wait(0, 1));
  p.mutableRank(0).emit(0, Op::signal(1, 0));
  p.mutableRank(0).emit(1, Op::signal(1, 1));  // unrelated lane: runs to completion
  p.mutableRank(1).emit(0, Op::wait(1, 1));
  p.mutableRank(1).emit(0, Op::wait(0, 1));
  p.mutableRank(1).emit(0, Op::signal(0, 0));
  const ValidationResult r = validateProgram(p);
  const auto dl = ofKind(r, Kind::kDeadlock);
  ASSERT_EQ(dl.size(), 2U) << r.summary();
  EXPECT_EQ(dl[1].message.rfind("rank 1 lane 0 op 1 (wait): deadlock", 0), 0U) << dl[1].message;
}

TEST(Validator, OutOfBoundsPut) {
  Program p(header(2, 1, 64), {});
  p.mutableRank(0).emit(0, Op::put(1, on(1, BufferId::kScratch, 48), self(BufferId::kInput), 32, 0));
  p.mutableRank(1).emit(0, Op::wait(0, 1));
  const ValidationResult r = validateProgram(p);
  const auto oob = ofKind(r, Kind::kOutOfBounds);
  ASSERT_EQ(oob.size(), 1U) << r.summary();
  EXPECT_EQ(oob[0].message,
            "rank 0 lane 0 op 0 (put): dst scratch[48, 80) of rank 1 is out of bounds (scratch has 64 bytes)");
  EXPECT_EQ(r.issues.size(), 1U) << r.summary();
}

TEST(Validator, MalformedOps) {
  const auto check = [](Op op, const std::string& expected, Kind kind = Kind::kMalformed) {
    ProgramHeader h = header(3, 2, 64);
    h.layoutWords = 2;
    Program p(h, {});
    p.mutableRank(2).emit(0, Op::flush());
    p.mutableRank(2).emit(0, std::move(op));
    const ValidationResult r = validateProgram(p);
    bool found = false;
    for (const auto& i : r.issues) found = found || (i.kind == kind && i.message == expected);
    EXPECT_TRUE(found) << "expected: " << expected << "\ngot:\n" << r.summary();
  };
  check(Op::put(3, on(3, BufferId::kOutput), self(BufferId::kInput), 4),
        "rank 2 lane 0 op 1 (put): peer rank 3 is out of range (nranks 3)");
  check(Op::signal(0, 2), "rank 2 lane 0 op 1 (signal): semaphore 2 is out of range (numSemaphores 2)");
  check(Op::wait(-1, 0), "rank 2 lane 0 op 1 (wait): semaphore -1 is out of range (numSemaphores 2)");
  check(Op::put(0, on(0, BufferId::kOutput), self(BufferId::kInput), 4, 7),
        "rank 2 lane 0 op 1 (put): semaphore 7 is out of range (numSemaphores 2)");
  check(Op::reduce(self(BufferId::kOutput), {}, 2, DataType::kFloat32, ReduceOp::kSum),
        "rank 2 lane 0 op 1 (reduce): reduce has no sources");
  Op odd = Op::reduce(self(BufferId::kOutput), {self(BufferId::kInput)}, 2, DataType::kFloat32, ReduceOp::kSum);
  odd.bytes = 6;
  check(odd, "rank 2 lane 0 op 1 (reduce): 6 bytes is not a whole number of float32 elements (4 bytes each)");
  check(Op::multicast({}, self(BufferId::kOutput), self(BufferId::kInput), 4),
        "rank 2 lane 0 op 1 (multicast): multicast has no target ranks");
  check(Op::multicast({0, 1, 0}, self(BufferId::kOutput), self(BufferId::kInput), 4),
        "rank 2 lane 0 op 1 (multicast): rank 0 appears twice in ranks");
  check(Op::put(0, on(1, BufferId::kOutput), self(BufferId::kInput), 4),
        "rank 2 lane 0 op 1 (put): dst names rank 1 but peer is 0");
  check(Op::put(0, on(0, BufferId::kOutput), on(1, BufferId::kInput), 4),
        "rank 2 lane 0 op 1 (put): src names rank 1, but the source of a put is local (rank 2)");
  check(
      Op::copy(self(BufferId::kInput), self(BufferId::kOutput), 4),
      "rank 2 lane 0 op 1 (copy): dst writes the input buffer of rank 2, which is read-only (the user's send buffer)");
  check(Op::copy(on(5, BufferId::kOutput), self(BufferId::kOutput, 8), 4),
        "rank 2 lane 0 op 1 (copy): dst rank 5 is out of range (nranks 3)");
  Op ind = Op::put(0, on(0, BufferId::kOutput), self(BufferId::kInput), 0);
  ind.indirect.bytesSlot = 2;
  check(ind, "rank 2 lane 0 op 1 (put): indirect slot 2 is outside the layout (2 words)");
}

TEST(Validator, HeaderProblems) {
  ProgramHeader h = header(2);
  h.inputBytes = {1};
  h.loadStoreDomains = {{0, 1}, {1}};
  const ValidationResult r = validateProgram(Program(h, {}));
  EXPECT_EQ(
      r.summary(),
      "header: inputBytes has 1 entries for 2 ranks\nheader: rank 1 is in loadStoreDomains[0] and loadStoreDomains[1]");
}

TEST(Validator, DirectAccessOutsideTheDomain) {
  ProgramHeader h = header(4);
  h.loadStoreDomains = {{0, 1}, {2, 3}};
  Program p(h, {});
  // Inside the domain: fine. Across: a domain issue.
  p.mutableRank(0).emit(0, Op::reduce(self(BufferId::kScratch), {on(1, BufferId::kInput), self(BufferId::kInput)}, 4,
                                      DataType::kInt32, ReduceOp::kSum));
  p.mutableRank(0).emit(0, Op::copy(self(BufferId::kScratch, 16), on(2, BufferId::kInput), 16));
  const ValidationResult r = validateProgram(p);
  ASSERT_EQ(r.issues.size(), 1U) << r.summary();
  EXPECT_EQ(r.issues[0].kind, Kind::kDomain);
  EXPECT_EQ(r.issues[0].message,
            "rank 0 lane 0 op 1 (copy): src addresses rank 2 directly, but rank 2 is outside the load/store domain of "
            "rank 0 (use put/get across domains)");
}

/// Rank 0 streams `chunks` chunks of 16 bytes to rank 1 through `slots` scratch slots; rank 1 adds each into
/// its output. With `credits`, rank 0 waits until rank 1 consumed a slot before refilling it.
Program stream(int chunks, int slots, bool credits) {
  Program p(header(2, 2, static_cast<std::uint64_t>(slots) * 16), {});
  RankProgram& s = p.mutableRank(0);
  RankProgram& r = p.mutableRank(1);
  for (int i = 0; i < chunks; ++i) {
    const std::uint64_t slot = static_cast<std::uint64_t>(i % slots) * 16;
    if (credits && i >= slots) s.emit(0, Op::wait(1, static_cast<std::uint64_t>(i - slots) + 1));
    s.emit(0, Op::put(1, on(1, BufferId::kScratch, slot), self(BufferId::kInput, 16ULL * static_cast<std::uint64_t>(i)),
                      16, 0));
    r.emit(0, Op::wait(0, static_cast<std::uint64_t>(i) + 1));
    r.emit(0,
           Op::reduce(self(BufferId::kOutput, 16ULL * static_cast<std::uint64_t>(i)),
                      {self(BufferId::kOutput, 16ULL * static_cast<std::uint64_t>(i)), self(BufferId::kScratch, slot)},
                      4, DataType::kFloat32, ReduceOp::kSum));
    if (credits && i + slots < chunks) r.emit(0, Op::signal(0, 1));
  }
  return p;
}

TEST(Validator, ScratchReuseWithoutCreditIsARace) {
  const ValidationResult bad = validateProgram(stream(4, 2, false));
  ASSERT_FALSE(bad.ok());
  // put 2 (rank 0 op 2) refills slot 0 while rank 1's reduce of chunk 0 (op 1) may still read it.
  EXPECT_TRUE(anyMessageContains(bad, Kind::kRace,
                                 "rank 0 lane 0 op 2 (put) may overwrite scratch[0, 16) of rank 1 before rank 1 lane 0 "
                                 "op 1 (reduce) has consumed it (no credit/wait orders them)"))
      << bad.summary();
  for (const auto& i : bad.issues) EXPECT_EQ(i.kind, Kind::kRace) << i.message;

  const ValidationResult good = validateProgram(stream(4, 2, true));
  EXPECT_TRUE(good.ok()) << good.summary();
  // One slot with credits is also fine; the ring all-reduce without credits is not.
  EXPECT_TRUE(validateProgram(stream(4, 1, true)).ok());
  const ValidationResult ring = validateProgram(fixtures::ringAllReduce(4, 4, false));
  EXPECT_FALSE(ofKind(ring, Kind::kRace).empty()) << ring.summary();
}

TEST(Validator, SourceReuseNeedsAFlush) {
  // Rank 0 puts from its scratch, then overwrites that scratch: a race unless a flush comes between.
  for (const bool flush : {false, true}) {
    Program p(header(2, 1, 64), {});
    p.mutableRank(0).emit(0, Op::put(1, on(1, BufferId::kOutput), self(BufferId::kScratch), 16, 0));
    if (flush) p.mutableRank(0).emit(0, Op::flush());
    p.mutableRank(0).emit(0, Op::copy(self(BufferId::kScratch), self(BufferId::kInput), 16));
    p.mutableRank(1).emit(0, Op::wait(0, 1));
    const ValidationResult r = validateProgram(p);
    if (flush) {
      EXPECT_TRUE(r.ok()) << r.summary();
    } else {
      ASSERT_EQ(r.issues.size(), 1U) << r.summary();
      EXPECT_EQ(r.issues[0].message,
                "rank 0 lane 0 op 1 (copy) may overwrite scratch[0, 16) of rank 0 before rank 0 lane 0 op 0 (put) has "
                "consumed it (no credit/wait orders them)");
    }
  }
}

TEST(Validator, GetCompletesAtFlushNotAtSignal) {
  for (const bool flush : {false, true}) {
    Program p(header(2, 1, 64), {});
    p.mutableRank(0).emit(0, Op::get(1, self(BufferId::kScratch), on(1, BufferId::kInput), 16));
    if (flush) p.mutableRank(0).emit(0, Op::flush());
    p.mutableRank(0).emit(0, Op::copy(self(BufferId::kOutput), self(BufferId::kScratch), 16));
    const ValidationResult r = validateProgram(p);
    EXPECT_EQ(r.ok(), flush) << r.summary();
  }
}

TEST(Validator, UnorderedPutReducesToTheSameBytesRace) {
  Program p(header(3, 1, 64), {});
  for (std::int32_t r = 1; r < 3; ++r) {
    p.mutableRank(r).emit(0, Op::putReduce(0, on(0, BufferId::kScratch), self(BufferId::kInput), 4, DataType::kFloat32,
                                           ReduceOp::kSum, 0));
  }
  p.mutableRank(0).emit(0, Op::wait(0, 2));
  const ValidationResult r = validateProgram(p);
  const auto races = ofKind(r, Kind::kRace);
  ASSERT_EQ(races.size(), 1U) << r.summary();
  EXPECT_EQ(races[0].message,
            "rank 1 lane 0 op 0 (put_reduce) and rank 2 lane 0 op 0 (put_reduce) both write scratch[0, 16) of rank 0 "
            "with nothing ordering them (a missing wait, credit or flush)");
  // Serialized by a token, they are fine, but only with a flush before the token: the token goes to rank 2,
  // and a signal orders only the data sent to its own target.
  for (const bool flush : {false, true}) {
    Program q(header(3, 2, 64), {});
    q.mutableRank(1).emit(0, Op::putReduce(0, on(0, BufferId::kScratch), self(BufferId::kInput), 4, DataType::kFloat32,
                                           ReduceOp::kSum, 0));
    if (flush) q.mutableRank(1).emit(0, Op::flush());
    q.mutableRank(1).emit(0, Op::signal(2, 1));
    q.mutableRank(2).emit(0, Op::wait(1, 1));
    q.mutableRank(2).emit(0, Op::putReduce(0, on(0, BufferId::kScratch), self(BufferId::kInput), 4, DataType::kFloat32,
                                           ReduceOp::kSum, 0));
    q.mutableRank(0).emit(0, Op::wait(0, 2));
    const ValidationResult rq = validateProgram(q);
    EXPECT_EQ(rq.ok(), flush) << rq.summary();
  }
}

TEST(Validator, SignalOrdersOnlyDataToItsOwnPeer) {
  // Rank 0 puts to rank 1 and then signals rank 2; rank 2 then reads rank 1's buffer directly. The signal
  // to rank 2 says nothing about the put to rank 1, so that is a race; a flush before the signal fixes it.
  for (const bool flush : {false, true}) {
    Program p(header(3, 1, 64), {});
    p.mutableRank(0).emit(0, Op::put(1, on(1, BufferId::kScratch), self(BufferId::kInput), 16));
    if (flush) p.mutableRank(0).emit(0, Op::flush());
    p.mutableRank(0).emit(0, Op::signal(2, 0));
    p.mutableRank(2).emit(0, Op::wait(0, 1));
    p.mutableRank(2).emit(0, Op::copy(self(BufferId::kOutput), on(1, BufferId::kScratch), 16));
    const ValidationResult r = validateProgram(p);
    EXPECT_EQ(r.ok(), flush) << r.summary();
  }
}

TEST(Validator, MulticastSignalsOrderEachTarget) {
  Program p(header(3, 1, 64), {});
  p.mutableRank(0).emit(0, Op::multicast({1, 2}, self(BufferId::kScratch), self(BufferId::kInput), 16, 0));
  for (std::int32_t r = 1; r < 3; ++r) {
    p.mutableRank(r).emit(0, Op::wait(0, 1));
    p.mutableRank(r).emit(0, Op::copy(self(BufferId::kOutput), self(BufferId::kScratch), 16));
  }
  const ValidationResult r = validateProgram(p);
  EXPECT_TRUE(r.ok()) << r.summary();
}

/// Counts exchange: rank 0 puts a count into rank 1's layout; rank 1 issues an indirect put sized by it.
Program countsExchange(bool waitForCounts) {
  ProgramHeader h = header(2, 1, 64);
  h.layoutWords = 1;
  h.inputBytes = {256, 256};
  Program p(h, {});
  p.mutableRank(0).emit(0, Op::put(1, on(1, BufferId::kLayout), self(BufferId::kInput), 8, 0));
  p.mutableRank(0).emit(0, Op::wait(0, 1));
  if (waitForCounts) p.mutableRank(1).emit(0, Op::wait(0, 1));
  Op put = Op::put(0, on(0, BufferId::kScratch), self(BufferId::kInput), 0, 0);
  put.indirect.bytesSlot = 0;
  put.indirect.bytesScale = 4;
  p.mutableRank(1).emit(0, put);
  return p;
}

TEST(Validator, IndirectOpsReadTheLayoutAfterTheCountsArrive) {
  const ValidationResult good = validateProgram(countsExchange(true));
  EXPECT_TRUE(good.ok()) << good.summary();
  const ValidationResult bad = validateProgram(countsExchange(false));
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(anyMessageContains(bad, Kind::kRace,
                                 "rank 0 lane 0 op 0 (put) may overwrite layout[0, 8) of rank 1 before rank 1 lane 0 "
                                 "op 0 (put) has consumed it"))
      << bad.summary();
}

TEST(Validator, IndirectBoundsUseTheGivenLayout) {
  ValidatorOptions opt;
  opt.layout = {{0}, {16}};  // 16 elements of 4 bytes = 64 bytes: fits the 64-byte scratch
  EXPECT_TRUE(validateProgram(countsExchange(true), opt).ok());
  opt.layout = {{0}, {17}};
  const ValidationResult r = validateProgram(countsExchange(true), opt);
  const auto oob = ofKind(r, Kind::kOutOfBounds);
  ASSERT_EQ(oob.size(), 1U) << r.summary();
  EXPECT_EQ(oob[0].message,
            "rank 1 lane 0 op 1 (put): dst scratch[0, 68) of rank 0 is out of bounds (scratch has 64 bytes)");
  opt.layout = {{0}};
  EXPECT_THROW((void)validateProgram(countsExchange(true), opt), Error);
}

TEST(Validator, RaceCheckRespectsTheOpLimit) {
  ValidatorOptions opt;
  opt.maxOpsForRaceCheck = 5;
  const ValidationResult r = validateProgram(stream(4, 2, false), opt);
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_NE(r.note.find("race check skipped: 12 ops (maxOpsForRaceCheck 5)"), std::string::npos) << r.note;
  opt = {};
  opt.checkRaces = false;
  EXPECT_TRUE(validateProgram(stream(4, 2, false), opt).ok());
}

TEST(Validator, LazyProgramsAndThrowingGenerators) {
  const Program ring = fixtures::ringAllReduce(3, 2);
  LazyProgram lazy(ring.header(), [&](std::int32_t r, RankProgram& out) { out = ring.rank(r); });
  EXPECT_TRUE(validateProgram(lazy).ok());
  LazyProgram broken(ring.header(),
                     [](std::int32_t, RankProgram&) { throw Error(ErrorCode::kInvalidArgument, "no such algorithm"); });
  const ValidationResult r = validateProgram(broken);
  ASSERT_EQ(r.issues.size(), 1U);
  EXPECT_NE(r.issues[0].message.find("no such algorithm"), std::string::npos) << r.issues[0].message;
}

TEST(Validator, SummaryLimitsLines) {
  ValidationResult r;
  for (int i = 0; i < 5; ++i) {
    std::string message = "m";
    message += std::to_string(i);
    r.issues.push_back(ValidationIssue{Kind::kMalformed, 0, 0, i, message});
  }
  EXPECT_EQ(r.summary(3), "m0\nm1\nm2\n... and 2 more");
  EXPECT_EQ(r.summary(), "m0\nm1\nm2\nm3\nm4");
}

/// A 2-rank LL exchange: each rank LL-puts its 8 input bytes into the other's scratch slot.
Program llExchange(std::uint64_t bytes = 8) {
  ProgramHeader h = header(2, 2, 2 * kLLSlotBytes + 64);
  h.inputBytes.assign(2, kLLSlotBytes + 64);
  Program p(h, {});
  for (std::int32_t r = 0; r < 2; ++r) {
    const std::int32_t q = 1 - r;
    p.mutableRank(r).emit(0, Op::putLL(q, Addr{q, BufferId::kScratch, 0}, self(BufferId::kInput, 0), bytes, r));
    p.mutableRank(r).emit(0, Op::waitLL(q, self(BufferId::kScratch, 0), bytes, q, 1));
  }
  return p;
}

TEST(ValidatorLL, PairedLLOpsPass) {
  const ValidationResult r = validateProgram(llExchange());
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_TRUE(validateProgram(llExchange(kLLSlotBytes)).ok());
}

TEST(ValidatorLL, RejectsBadLLOps) {
  const auto expectMalformed = [](const Program& p, const std::string& text) {
    const ValidationResult r = validateProgram(p);
    EXPECT_TRUE(anyMessageContains(r, Kind::kMalformed, text)) << "want '" << text << "' in\n" << r.summary();
  };
  expectMalformed(llExchange(kLLSlotBytes + 1), "more than an LL mailbox slot");
  {
    Program p = llExchange();
    p.mutableRank(0).lanes[0].ops.push_back(Op::copy(self(BufferId::kOutput, 0), self(BufferId::kInput, 0), 8));
    p.mutableRank(0).lanes[0].ops.back().protocol = Protocol::kLL;
    expectMalformed(p, "protocol ll is for put and wait only");
  }
  {
    Program p = llExchange();
    p.mutableRank(1).lanes[0].ops[1].bytes = 4;  // the wait does not repeat the put's size
    expectMalformed(p, "does not match the LL put");
  }
  {
    Program p = llExchange();
    p.mutableRank(0).lanes[0].ops[0].sem = -1;
    expectMalformed(p, "needs a semaphore");
  }
  {
    Program p = llExchange();
    p.mutableRank(0).emit(0, Op::signal(1, 0));  // a simple signal into the LL pair's semaphore
    p.mutableRank(1).emit(0, Op::wait(0, 2));
    expectMalformed(p, "must pair exactly one LL put with one LL wait");
  }
  {
    Program p = llExchange();
    p.mutableRank(0).lanes[0].ops[0].value = 2;
    expectMalformed(p, "must have value 1");
  }
  {
    Program p = llExchange();
    p.mutableHeader().loadStoreDomains = {{0}, {1}};
    expectMalformed(p, "in its load/store domain");
  }
  {
    Program p = llExchange();
    p.mutableRank(0).lanes[0].ops[0].indirect.bytesSlot = 0;
    expectMalformed(p, "cannot be indirect");
  }
  {
    // Two LL puts from rank 0 to rank 1 in one call would share one mailbox slot.
    ProgramHeader h = header(2, 2, 64);
    Program p(h, {});
    for (std::int32_t s = 0; s < 2; ++s) {
      p.mutableRank(0).emit(0, Op::putLL(1, Addr{1, BufferId::kScratch, 8U * static_cast<std::uint64_t>(s)},
                                         self(BufferId::kInput, 0), 8, s));
      p.mutableRank(1).emit(0, Op::waitLL(0, self(BufferId::kScratch, 8U * static_cast<std::uint64_t>(s)), 8, s, 1));
    }
    expectMalformed(p, "a second LL put from rank 0 to rank 1");
  }
}

}  // namespace
}  // namespace copro::core
