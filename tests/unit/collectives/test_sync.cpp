// Barrier (dissemination) and grouped send/recv (scratch). A send/recv Program is valid only for the rank it
// was built for, so each test builds one Program per rank from that rank's own list and combines them into
// a core::Program (rank r = program_r.rank(r), the common header), then validates and interprets that.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/interpreter.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/core/validator.hpp"

namespace copro::collectives {
namespace {

using core::DataType;
using core::InterpreterRank;

const std::vector<std::int32_t> kRanks{1, 2, 3, 4, 5, 7, 8, 16};
constexpr std::uint64_t kSeed = 4242;  // data and interleaving seeds derive from it (printed on failure)

// ---- barrier -------------------------------------------------------------------------------------------

TEST(Barrier, DisseminationIsValidAndRuns) {
  for (std::int32_t p : kRanks) {
    SCOPED_TRACE("p=" + std::to_string(p));
    CollectiveArgs a;
    a.kind = CollectiveKind::kBarrier;
    a.nranks = p;
    const auto program = buildProgram(a, "dissemination");
    EXPECT_EQ(program->header().name, "barrier.dissemination");
    const core::ValidationResult v = core::validateProgram(*program);
    ASSERT_TRUE(v.ok()) << v.summary();
    std::vector<InterpreterRank> ranks(static_cast<std::size_t>(p));
    const Status st = core::interpretProgramRepeated(*program, ranks, 2, false, kSeed + static_cast<std::uint64_t>(p));
    ASSERT_TRUE(st.ok()) << st.toString();
    int rounds = 0;
    while ((1 << rounds) < p) ++rounds;
    // Every semaphore ends at exactly the threshold waited for (one signal per round).
    for (std::int32_t r = 0; r < p; ++r) {
      for (int k = 0; k < rounds; ++k)
        EXPECT_EQ(ranks[static_cast<std::size_t>(r)].semaphores[static_cast<std::size_t>(k)], 1U);
    }
  }
}

TEST(Barrier, EveryRankHearsFromEveryRankBeforeLeaving) {
  // Follow what each rank "knows has arrived" through the rounds: the signal of round k carries everything
  // its sender knew after round k-1. After the last wait every rank must know all ranks.
  for (std::int32_t p : kRanks) {
    CollectiveArgs a;
    a.kind = CollectiveKind::kBarrier;
    a.nranks = p;
    const auto program = buildProgram(a, "dissemination");
    std::vector<std::vector<bool>> knows(static_cast<std::size_t>(p), std::vector<bool>(static_cast<std::size_t>(p)));
    for (std::int32_t r = 0; r < p; ++r) knows[static_cast<std::size_t>(r)][static_cast<std::size_t>(r)] = true;
    for (int k = 0; (1 << k) < p; ++k) {
      auto next = knows;
      for (std::int32_t r = 0; r < p; ++r) {
        for (const auto& op : program->rank(r).lanes.at(0).ops) {
          if (op.code != core::OpCode::kSignal || op.sem != k) continue;
          for (std::int32_t q = 0; q < p; ++q) {
            if (knows[static_cast<std::size_t>(r)][static_cast<std::size_t>(q)]) {
              next[static_cast<std::size_t>(op.peer)][static_cast<std::size_t>(q)] = true;
            }
          }
        }
      }
      knows = next;
    }
    for (std::int32_t r = 0; r < p; ++r) {
      EXPECT_EQ(std::count(knows[static_cast<std::size_t>(r)].begin(), knows[static_cast<std::size_t>(r)].end(), true),
                p)
          << "p=" << p << " rank " << r;
    }
  }
}

// ---- send/recv helpers ---------------------------------------------------------------------------------

using Groups = std::vector<std::vector<P2POp>>;  // per rank, its group in call order

CollectiveArgs sendRecvArgs(std::int32_t p, std::int32_t rank, const std::vector<P2POp>& ops, DataType dtype,
                            std::uint64_t chunkBytes) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kSendRecv;
  a.nranks = p;
  a.rank = rank;
  a.p2p = ops;
  a.dtype = dtype;
  a.chunkBytes = chunkBytes;
  return a;
}

/// Builds each rank's Program from its own list and combines them.
core::Program combine(const Groups& groups, DataType dtype, std::uint64_t chunkBytes) {
  const auto p = static_cast<std::int32_t>(groups.size());
  std::vector<core::RankProgram> ranks;
  core::ProgramHeader header;
  for (std::int32_t r = 0; r < p; ++r) {
    const auto program =
        buildProgram(sendRecvArgs(p, r, groups[static_cast<std::size_t>(r)], dtype, chunkBytes), "scratch");
    if (r == 0) header = program->header();
    // The header may not depend on the lists: every rank must start the same Program header.
    EXPECT_EQ(program->header(), header) << "rank " << r;
    ranks.push_back(program->rank(r));
  }
  return core::Program(header, std::move(ranks));
}

std::vector<std::byte> makeMessage(DataType t, std::uint64_t count, std::uint64_t salt) {
  std::vector<std::byte> buf(count * core::dataTypeSize(t));
  for (std::uint64_t i = 0; i < count; ++i) {
    const double k = static_cast<double>((salt * 131 + i * 7) % 17) - 8.0;
    core::storeFromDouble(t, buf.data(), i, core::isFloatingPoint(t) ? k * 0.25 : k + 8.0);
  }
  return buf;
}

/// Runs the group and checks that the k-th recv of r from s holds the k-th send of s to r.
void runGroups(const Groups& groups, DataType dtype, std::uint64_t chunkBytes, std::uint64_t seed) {
  SCOPED_TRACE("dtype=" + std::string(core::dataTypeName(dtype)) + " chunk=" + std::to_string(chunkBytes) +
               " seed=" + std::to_string(seed));
  const auto p = static_cast<std::int32_t>(groups.size());
  const core::Program program = combine(groups, dtype, chunkBytes);
  if (::testing::Test::HasFailure()) return;
  const core::ValidationResult v = core::validateProgram(program);
  ASSERT_TRUE(v.ok()) << v.summary();

  const std::uint64_t es = core::dataTypeSize(dtype);
  std::vector<InterpreterRank> ranks(static_cast<std::size_t>(p));
  // sent[(s, r)] = the messages s sends to r, in order.
  std::map<std::pair<std::int32_t, std::int32_t>, std::vector<std::vector<std::byte>>> sent;
  for (std::int32_t r = 0; r < p; ++r) {
    const auto& ops = groups[static_cast<std::size_t>(r)];
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const P2POp& op = ops[i];
      if (op.isSend) {
        auto data = makeMessage(dtype, op.count, seed + static_cast<std::uint64_t>(r) * 1000 + i);
        sent[{r, op.peer}].push_back(data);
        ranks[static_cast<std::size_t>(r)].extra.push_back(std::move(data));
      } else {
        ranks[static_cast<std::size_t>(r)].extra.emplace_back(op.count * es, std::byte{0xA5});
      }
    }
  }
  const std::vector<InterpreterRank> before = ranks;
  const Status st = core::interpretProgramRepeated(program, ranks, 2, false, seed);
  ASSERT_TRUE(st.ok()) << st.toString();

  for (std::int32_t r = 0; r < p; ++r) {
    const auto& ops = groups[static_cast<std::size_t>(r)];
    std::map<std::int32_t, std::size_t> kth;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const auto& got = ranks[static_cast<std::size_t>(r)].extra[i];
      if (ops[i].isSend) {
        EXPECT_EQ(got, before[static_cast<std::size_t>(r)].extra[i]) << "rank " << r << " send #" << i << " changed";
        continue;
      }
      const std::int32_t s = ops[i].peer;
      const auto& msgs = sent[{s, r}];
      const std::size_t k = kth[s]++;
      ASSERT_LT(k, msgs.size()) << "rank " << r << " recv #" << i << " has no matching send";
      EXPECT_EQ(got, msgs[k]) << "rank " << r << " recv #" << i << " (message " << k << " from rank " << s << ")";
    }
  }
}

const std::vector<std::uint64_t> kCounts{0, 1, 7, 4097};

// ---- send/recv scenarios -------------------------------------------------------------------------------

TEST(SendRecv, RingExchange) {
  std::uint64_t seed = kSeed;
  int dtype = 0;
  for (std::int32_t p : kRanks) {
    for (std::uint64_t count : kCounts) {
      SCOPED_TRACE("ring p=" + std::to_string(p) + " count=" + std::to_string(count));
      Groups g(static_cast<std::size_t>(p));
      for (std::int32_t r = 0; r < p; ++r) {
        const P2POp send{true, (r + 1) % p, count};
        const P2POp recv{false, (r + p - 1) % p, count};
        // Half the ranks post the recv first: the order inside a group must not matter.
        g[static_cast<std::size_t>(r)] = r % 2 == 0 ? std::vector<P2POp>{send, recv} : std::vector<P2POp>{recv, send};
      }
      runGroups(g, static_cast<DataType>(dtype++ % core::kNumDataTypes), 1000, seed++);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(SendRecv, AllPairsWithIrregularCounts) {
  std::mt19937_64 rng(kSeed);
  int dtype = 3;
  for (std::int32_t p : {2, 3, 5, 8}) {
    SCOPED_TRACE("all-pairs p=" + std::to_string(p) + " rng seed " + std::to_string(kSeed));
    std::vector<std::vector<std::uint64_t>> counts(static_cast<std::size_t>(p),
                                                   std::vector<std::uint64_t>(static_cast<std::size_t>(p)));
    for (auto& row : counts) {
      for (auto& c : row) c = kCounts[rng() % kCounts.size()];
    }
    Groups g(static_cast<std::size_t>(p));
    for (std::int32_t r = 0; r < p; ++r) {
      auto& ops = g[static_cast<std::size_t>(r)];
      for (std::int32_t s = 0; s < p; ++s) {
        if (s == r) continue;
        ops.push_back({true, s, counts[static_cast<std::size_t>(r)][static_cast<std::size_t>(s)]});
        ops.push_back({false, s, counts[static_cast<std::size_t>(s)][static_cast<std::size_t>(r)]});
      }
      std::shuffle(ops.begin(), ops.end(), rng);  // any order, per rank
    }
    runGroups(g, static_cast<DataType>(dtype++ % core::kNumDataTypes), 1000, kSeed + static_cast<std::uint64_t>(p));
    if (HasFatalFailure()) return;
  }
}

TEST(SendRecv, SeveralMessagesToTheSamePeerMatchInOrder) {
  // Rank 0 sends four messages to rank 1 (one empty, one spanning many chunks) and gets two back; the
  // streams share one slot pair, so chunk indices continue across messages.
  const std::vector<std::uint64_t> toOne{4097, 0, 7, 1};
  Groups g(3);
  for (std::uint64_t c : toOne) g[0].push_back({true, 1, c});
  g[0].push_back({false, 1, 7});
  g[0].push_back({false, 1, 4097});
  g[1].push_back({true, 0, 7});
  for (std::uint64_t c : toOne) g[1].push_back({false, 0, c});
  g[1].push_back({true, 0, 4097});
  // Rank 2 is idle (an empty group).
  for (int dtype = 0; dtype < core::kNumDataTypes; dtype += 5) {
    runGroups(g, static_cast<DataType>(dtype), 1000, kSeed + 100 + static_cast<std::uint64_t>(dtype));
    if (HasFatalFailure()) return;
  }
  // Slots of one element: every element is its own chunk, credits all the way.
  runGroups(g, DataType::kInt32, 4, kSeed + 200);
}

TEST(SendRecv, SendToSelf) {
  for (std::uint64_t count : kCounts) {
    SCOPED_TRACE("count=" + std::to_string(count));
    // One rank alone: the send to self is a local copy.
    runGroups(Groups{{{true, 0, count}, {false, 0, count}}}, DataType::kFloat16, 1000, kSeed + 300 + count);
    if (HasFatalFailure()) return;
    // Three ranks: a send to self and a ring exchange in one group, recv from self posted first on rank 1.
    Groups g(3);
    for (std::int32_t r = 0; r < 3; ++r) {
      auto& ops = g[static_cast<std::size_t>(r)];
      if (r == 1) ops.push_back({false, r, count});
      ops.push_back({true, r, count});
      ops.push_back({true, (r + 1) % 3, count + 1});
      ops.push_back({false, (r + 2) % 3, count + 1});
      if (r != 1) ops.push_back({false, r, count});
      ops.push_back({true, r, 3});  // a second message to self, matched second
      ops.push_back({false, r, 3});
    }
    runGroups(g, DataType::kFloat64, 1000, kSeed + 400 + count);
    if (HasFatalFailure()) return;
  }
}

TEST(SendRecv, HeaderDependsOnlyOnRanksDtypeAndChunk) {
  CollectiveArgs a = sendRecvArgs(4, 2, {{true, 1, 10}, {false, 3, 99}}, DataType::kFloat64, 1000);
  const auto h = buildProgram(a, "scratch")->header();
  EXPECT_EQ(h.name, "sendrecv.scratch");
  EXPECT_EQ(h.numSemaphores, 8);             // data and credit semaphore per peer
  EXPECT_EQ(h.scratchBytes, 4U * 2 * 1000);  // a slot pair per sender, 1000 = whole float64 elements
  a.dtype = DataType::kFloat32;
  a.chunkBytes = 1001;
  EXPECT_EQ(buildProgram(a, "scratch")->header().scratchBytes, 4U * 2 * 1000);  // rounded down to elements
  a.chunkBytes = 1U << 20;
  EXPECT_EQ(buildProgram(a, "scratch")->header().scratchBytes, 4U * 2 * 256 * 1024);  // capped at 256 KiB
  a.chunkBytes = 1;
  EXPECT_EQ(buildProgram(a, "scratch")->header().scratchBytes, 4U * 2 * 4);  // at least one element
  // Only the executing rank has ops.
  const auto program = buildProgram(a, "scratch");
  EXPECT_EQ(program->rank(0).numOps(), 0U);
  EXPECT_GT(program->rank(2).numOps(), 0U);
}

TEST(SendRecv, CountMismatchIsATimeoutNamingTheBlockedLane) {
  // Rank 0 sends 4097 elements, rank 1 expects 7: rank 1 returns no credits, rank 0's send lane waits for
  // one forever. The validator sees the unsatisfiable wait; the interpreter reports the blocked lane.
  Groups g{{{true, 1, 4097}}, {{false, 0, 7}}};
  const core::Program program = combine(g, DataType::kFloat32, 1000);
  const core::ValidationResult v = core::validateProgram(program);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.summary().find("rank 0 lane 0"), std::string::npos) << v.summary();
  std::vector<InterpreterRank> ranks(2);
  ranks[0].extra.push_back(makeMessage(DataType::kFloat32, 4097, 1));
  ranks[1].extra.emplace_back(7 * 4, std::byte{0});
  const Status st = core::interpretProgram(program, ranks, false, kSeed);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("deadlock"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("rank 0 lane 0"), std::string::npos) << st.message();
}

TEST(SendRecv, UnsupportedReasons) {
  const Algorithm* alg = findAlgorithm(CollectiveKind::kSendRecv, "scratch");
  ASSERT_NE(alg, nullptr);
  EXPECT_EQ(alg->unsupportedReason(sendRecvArgs(4, 0, {{true, 3, 1}}, DataType::kInt8, 1000)), "");
  EXPECT_NE(alg->unsupportedReason(sendRecvArgs(4, 0, {{true, 4, 1}}, DataType::kInt8, 1000)).find("peer 4"),
            std::string::npos);
  EXPECT_NE(alg->unsupportedReason(sendRecvArgs(4, -1, {}, DataType::kInt8, 1000)).find("executing rank -1"),
            std::string::npos);
  EXPECT_NE(alg->unsupportedReason(sendRecvArgs(4, 1, {{true, 1, 5}}, DataType::kInt8, 1000)).find("send(s) to self"),
            std::string::npos);
  EXPECT_NE(alg->unsupportedReason(sendRecvArgs(4, 1, {{true, 1, 5}, {false, 1, 6}}, DataType::kInt8, 1000))
                .find("has count 5 but its matching recv #1 has count 6"),
            std::string::npos);
  try {
    (void)buildProgram(sendRecvArgs(2, 0, {{false, 7, 1}}, DataType::kInt8, 1000), "scratch");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(e.message().find("peer 7"), std::string::npos) << e.message();
  }
}

TEST(Sync, EstimatesArePositiveAndGrowWithCount) {
  const CostModel model;
  const Algorithm* barrier = findAlgorithm(CollectiveKind::kBarrier, "dissemination");
  ASSERT_NE(barrier, nullptr);
  CollectiveArgs b;
  b.kind = CollectiveKind::kBarrier;
  double previous = 0.0;
  for (std::int32_t p : {1, 2, 8, 16}) {
    b.nranks = p;
    const double t = barrier->estimateUs(b, model);
    EXPECT_GT(t, 0.0);
    EXPECT_GE(t, previous);
    previous = t;
  }
  const Algorithm* sr = findAlgorithm(CollectiveKind::kSendRecv, "scratch");
  ASSERT_NE(sr, nullptr);
  previous = 0.0;
  for (std::uint64_t count : {0ULL, 1ULL, 1024ULL, 1ULL << 20}) {
    const double t =
        sr->estimateUs(sendRecvArgs(4, 0, {{true, 1, count}, {false, 3, count}}, DataType::kFloat32, 1U << 20), model);
    EXPECT_GT(t, 0.0) << count;
    if (count > 0) {
      EXPECT_GT(t, previous) << count;
    }
    previous = t;
  }
}

}  // namespace
}  // namespace copro::collectives
