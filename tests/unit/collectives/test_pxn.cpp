// PXN (docs/pxn.md): the transformed Programs of all-to-all, all-to-allv and all-reduce (ring, hier) on 2-4
// nodes of 2-4 ranks (uneven and interleaved node maps included) validate clean and give byte-identical
// results to PXN off on the reference interpreter; the transformation really relays (no off-rail put
// leaves a node directly) and level 2 aggregates; an inproc communicator on virtual nodes runs
// all-to-all(v) twice back to back with PXN on.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/collectives/transform.hpp"
#include "copro/copro.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/interpreter.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/core/validator.hpp"

namespace copro::collectives {
namespace {

using core::DataType;
using core::InterpreterRank;
using core::OpCode;

constexpr std::uint64_t kSeed = 52117;  // data and interleaving seeds derive from it (printed on failure)

std::string mapName(const std::vector<int>& map) {
  std::string s;
  for (int n : map) s += std::to_string(n);
  return s;
}

/// Node maps: node-major, interleaved, uneven (3 + 2, 4 + 2 + 3), 2-4 nodes of 2-4 ranks.
const std::vector<std::vector<int>> kMaps{
    {0, 0, 1, 1},
    {0, 0, 0, 0, 1, 1, 1, 1},
    {0, 0, 0, 1, 1, 1, 2, 2, 2},
    {0, 0, 1, 1, 2, 2, 3, 3},
    {0, 1, 0, 1, 0, 1},
    {0, 0, 0, 1, 1},
    {0, 0, 0, 0, 1, 1, 2, 2, 2},
    {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3},
};

std::vector<std::byte> randomBytes(std::uint64_t n, std::mt19937_64& rng) {
  std::vector<std::byte> b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng() & 0xFF);
  return b;
}

/// Validates `program` (with `options`) and interprets it with two seeds.
void runChecked(const core::ProgramSource& program, std::vector<InterpreterRank>& ranks, bool inPlace,
                std::uint64_t seed, const core::ValidatorOptions& options = {}) {
  const core::ValidationResult v = core::validateProgram(program, options);
  ASSERT_TRUE(v.ok()) << v.summary();
  const Status st = core::interpretProgramRepeated(program, ranks, 2, inPlace, seed);
  ASSERT_TRUE(st.ok()) << st.toString();
}

/// Builds `args` with PXN 0 and `level`, runs both on the same inputs, and compares every output byte.
void compareWithPxnOff(CollectiveArgs args, const std::string& algo, int level, std::uint64_t seed,
                       const std::function<void(std::vector<InterpreterRank>&)>& fill,
                       const core::ValidatorOptions& options = {}) {
  args.pxnLevel = 0;
  const auto plain = buildProgram(args, algo);
  args.pxnLevel = level;
  const auto pxn = buildProgram(args, algo);
  std::vector<InterpreterRank> a(static_cast<std::size_t>(args.nranks));
  fill(a);
  std::vector<InterpreterRank> b = a;
  runChecked(*plain, a, args.inPlace, seed, options);
  if (::testing::Test::HasFatalFailure()) return;
  runChecked(*pxn, b, args.inPlace, seed + 1, options);
  if (::testing::Test::HasFatalFailure()) return;
  for (std::size_t r = 0; r < a.size(); ++r) {
    ASSERT_EQ(a[r].output, b[r].output) << "rank " << r << " output differs with PXN " << level;
  }
}

/// Local index of each rank (position among its node's ranks).
std::vector<int> localIndex(const std::vector<int>& map) {
  std::map<int, int> seen;
  std::vector<int> local;
  local.reserve(map.size());
  for (int n : map) local.push_back(seen[n]++);
  return local;
}
int ranksOn(const std::vector<int>& map, int node) {
  int k = 0;
  for (int n : map) k += n == node ? 1 : 0;
  return k;
}

CollectiveArgs allToAllArgs(const std::vector<int>& map, std::uint64_t count, DataType t, bool inPlace) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAll;
  a.nranks = static_cast<std::int32_t>(map.size());
  a.nodeOfRank = map;
  a.count = count;
  a.dtype = t;
  a.inPlace = inPlace;
  return a;
}

TEST(Pxn, AllToAllPairwiseMatchesPxnOff) {
  std::uint64_t index = 0;
  for (const auto& map : kMaps) {
    for (int level : {1, 2}) {
      for (bool inPlace : {false, true}) {
        for (std::uint64_t count : {std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{300}}) {
          const std::uint64_t seed = kSeed + index++;
          const DataType t = static_cast<DataType>(index % core::kNumDataTypes);
          SCOPED_TRACE("map=" + mapName(map) + " pxn=" + std::to_string(level) + (inPlace ? " in-place" : "") +
                       " count=" + std::to_string(count) + " seed=" + std::to_string(seed));
          const CollectiveArgs a = allToAllArgs(map, count, t, inPlace);
          const std::uint64_t bytes = count * core::dataTypeSize(t) * map.size();
          compareWithPxnOff(a, "pairwise", level, seed, [&](std::vector<InterpreterRank>& ranks) {
            std::mt19937_64 rng(seed);
            for (auto& r : ranks) {
              r.input = randomBytes(bytes, rng);
              r.output = inPlace ? r.input : std::vector<std::byte>(bytes, std::byte{0xA5});
            }
          });
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(Pxn, AllToAllBruckMatchesPxnOff) {
  // Bruck's rounds wait between puts to the same peer: relayed at level 1, not aggregated at level 2.
  for (int level : {1, 2}) {
    const std::vector<int> map{0, 0, 0, 1, 1, 1, 2, 2};
    const std::uint64_t seed = kSeed + 1000 + static_cast<std::uint64_t>(level);
    SCOPED_TRACE("pxn=" + std::to_string(level) + " seed=" + std::to_string(seed));
    const CollectiveArgs a = allToAllArgs(map, 5, DataType::kInt32, false);
    compareWithPxnOff(a, "bruck", level, seed, [&](std::vector<InterpreterRank>& ranks) {
      std::mt19937_64 rng(seed);
      for (auto& r : ranks) {
        r.input = randomBytes(5 * 4 * map.size(), rng);
        r.output.assign(r.input.size(), std::byte{0xA5});
      }
    });
  }
}

TEST(Pxn, AllToAllVIsCorrect) {
  // Indirect puts have no size bound for a relay slot: the lanes stay direct (docs/pxn.md), and the
  // Program must still be correct.
  const std::vector<int> map{0, 0, 0, 1, 1};
  const auto p = static_cast<std::int32_t>(map.size());
  const std::uint64_t seed = kSeed + 2000;
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::uint64_t>> counts(map.size(), std::vector<std::uint64_t>(map.size()));
  for (auto& row : counts) {
    for (auto& c : row) c = rng() % 6;
  }
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAllV;
  a.nranks = p;
  a.nodeOfRank = map;
  a.dtype = DataType::kFloat32;
  // Contiguous displacements; inputs and outputs sized to fit.
  std::vector<std::vector<std::uint64_t>> init(map.size()), after(map.size());
  std::vector<std::uint64_t> inElems(map.size()), outElems(map.size());
  for (std::int32_t r = 0; r < p; ++r) {
    const auto ru = static_cast<std::size_t>(r);
    std::vector<std::uint64_t> sc(map.size()), sd(map.size()), rc(map.size()), rd(map.size());
    for (std::size_t s = 0; s < map.size(); ++s) {
      sc[s] = counts[ru][s];
      rc[s] = counts[s][ru];
      if (s > 0) sd[s] = sd[s - 1] + sc[s - 1];
      if (s > 0) rd[s] = rd[s - 1] + rc[s - 1] + 1;  // a gap element between blocks
    }
    inElems[ru] = sd.back() + sc.back();
    outElems[ru] = rd.back() + rc.back();
    for (auto* v : {&sc, &sd, &rc, &rd}) init[ru].insert(init[ru].end(), v->begin(), v->end());
  }
  for (std::int32_t r = 0; r < p; ++r) {
    const auto ru = static_cast<std::size_t>(r);
    after[ru] = init[ru];
    after[ru].resize(5 * map.size());
    for (std::size_t s = 0; s < map.size(); ++s) after[ru][4 * map.size() + s] = init[s][3 * map.size() + ru];
  }
  core::ValidatorOptions options;
  options.layout = after;
  for (int level : {1, 2}) {
    SCOPED_TRACE("pxn=" + std::to_string(level) + " seed=" + std::to_string(seed));
    a.pxnLevel = level;
    const auto pxn = buildProgram(a, "pairwise");
    std::vector<InterpreterRank> ranks(map.size());
    for (std::size_t r = 0; r < map.size(); ++r) {
      ranks[r].input = randomBytes(inElems[r] * 4, rng);
      ranks[r].output.assign(outElems[r] * 4, std::byte{0xA5});
      ranks[r].layoutInit = init[r];
    }
    // Substitute the call's sizes (the header says UINT64_MAX), as an executor does.
    core::Program sized = core::Program::materialize(*pxn);
    for (std::size_t r = 0; r < map.size(); ++r) {
      sized.mutableHeader().inputBytes[r] = ranks[r].input.size();
      sized.mutableHeader().outputBytes[r] = ranks[r].output.size();
    }
    const std::vector<InterpreterRank> before = ranks;
    runChecked(sized, ranks, false, seed, options);
    if (HasFatalFailure()) return;
    for (std::size_t r = 0; r < map.size(); ++r) {
      std::vector<std::byte> expect(outElems[r] * 4, std::byte{0xA5});
      for (std::size_t s = 0; s < map.size(); ++s) {
        const std::uint64_t n = counts[s][r] * 4;
        const std::uint64_t from = init[s][map.size() + r] * 4;
        const std::uint64_t to = init[r][3 * map.size() + s] * 4;
        for (std::uint64_t b = 0; b < n; ++b) expect[to + b] = before[s].input[from + b];
      }
      ASSERT_EQ(ranks[r].output, expect) << "rank " << r;
    }
  }
}

TEST(Pxn, AllReduceRingAndHierMatchPxnOff) {
  std::uint64_t index = 0;
  for (const auto& [algo, map] : std::vector<std::pair<std::string, std::vector<int>>>{
           {"ring", {0, 0, 0, 1, 1}},
           {"ring", {0, 1, 0, 1}},
           {"ring", {0, 0, 1, 1, 2, 2, 3, 3}},
           {"hier", {0, 0, 1, 1, 2, 2}},
           {"hier", {0, 1, 0, 1, 0, 1, 0, 1}},
           {"hier", {0, 0, 0, 0, 1, 1, 1, 1}},
       }) {
    for (int level : {1, 2}) {
      const std::uint64_t seed = kSeed + 3000 + index++;
      SCOPED_TRACE(algo + " map=" + mapName(map) + " pxn=" + std::to_string(level) + " seed=" + std::to_string(seed));
      CollectiveArgs a;
      a.kind = CollectiveKind::kAllReduce;
      a.nranks = static_cast<std::int32_t>(map.size());
      a.nodeOfRank = map;
      a.count = 1000;
      a.chunkBytes = 512;
      a.dtype = DataType::kFloat32;
      compareWithPxnOff(a, algo, level, seed, [&](std::vector<InterpreterRank>& ranks) {
        std::mt19937_64 rng(seed);
        for (auto& r : ranks) {
          std::vector<float> v(1000);
          for (auto& x : v) x = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 64.0F;
          r.input.resize(4000);
          std::memcpy(r.input.data(), v.data(), 4000);
          r.output.assign(4000, std::byte{0xA5});
        }
      });
      if (HasFatalFailure()) return;
      if (algo == "ring") {
        a.pxnLevel = level;
        EXPECT_NE(buildProgram(a, algo)->header().name.find("+pxn"), std::string::npos) << "nothing relayed";
      }
    }
  }
}

struct PutCounts {
  std::uint64_t interNode = 0;  ///< put/put_reduce to a rank of another node
  std::uint64_t offRail = 0;    ///< ... whose local index differs from the sender's
};
PutCounts countPuts(const core::ProgramSource& program, const std::vector<int>& map) {
  const std::vector<int> local = localIndex(map);
  PutCounts c;
  for (std::int32_t r = 0; r < program.header().nranks; ++r) {
    for (const auto& lane : program.rank(r).lanes) {
      for (const auto& op : lane.ops) {
        if (op.code != OpCode::kPut && op.code != OpCode::kPutReduce) continue;
        const auto ru = static_cast<std::size_t>(r);
        const auto pu = static_cast<std::size_t>(op.peer);
        if (map[pu] == map[ru]) continue;
        ++c.interNode;
        if (local[pu] != local[ru]) ++c.offRail;
      }
    }
  }
  return c;
}

TEST(Pxn, RelaysEveryOffRailPutAndLevel2Aggregates) {
  for (const auto& map : std::vector<std::vector<int>>{{0, 0, 0, 0, 1, 1, 1, 1}, {0, 0, 1, 1, 2, 2, 3, 3}}) {
    SCOPED_TRACE("map=" + mapName(map));
    CollectiveArgs a = allToAllArgs(map, 16, DataType::kFloat32, false);
    const auto p = static_cast<std::uint64_t>(map.size());
    const auto perNode = static_cast<std::uint64_t>(ranksOn(map, 0));
    const auto nodes = p / perNode;
    a.pxnLevel = 0;
    const PutCounts off = countPuts(*buildProgram(a, "pairwise"), map);
    a.pxnLevel = 1;
    const auto l1 = buildProgram(a, "pairwise");
    const PutCounts one = countPuts(*l1, map);
    a.pxnLevel = 2;
    const auto l2 = buildProgram(a, "pairwise");
    const PutCounts two = countPuts(*l2, map);
    // Without PXN every rank puts to every rank of the other nodes.
    EXPECT_EQ(off.interNode, p * (p - perNode));
    EXPECT_GT(off.offRail, 0U);
    // Level 1: the same number of messages leave each node, all rail-aligned.
    EXPECT_EQ(one.offRail, 0U);
    EXPECT_EQ(one.interNode, off.interNode);
    // Level 2: node A's perNode blocks for rank d are adjacent in d's output: one put per (node, remote rank).
    EXPECT_EQ(two.offRail, 0U);
    EXPECT_EQ(two.interNode, nodes * (p - perNode));
    EXPECT_LT(two.interNode, one.interNode);
    EXPECT_NE(l1->header().name.find("+pxn1"), std::string::npos);
    EXPECT_GT(l2->header().numSemaphores, 1);
    EXPECT_GT(l2->header().scratchBytes, 0U);
  }
  // Uneven nodes: a rank on the rail the smaller node lacks has no relay there and sends directly.
  const std::vector<int> uneven{0, 0, 0, 1, 1};
  CollectiveArgs a = allToAllArgs(uneven, 4, DataType::kInt32, false);
  a.pxnLevel = 1;
  const PutCounts c = countPuts(*buildProgram(a, "pairwise"), uneven);
  // Node 1's two ranks reach rank 2 (rail 2) only directly: 2 off-rail puts remain, nothing else.
  EXPECT_EQ(c.offRail, 2U);
}

TEST(Pxn, HandWrittenPutReduceFlushAndSignalAreRelayed) {
  // Ranks 0 and 2 (local 0) put_reduce into rank 3 / rank 1 (local 1, other node), flush, then signal:
  // both messages go through the local rank on rail 1, the flush waits for the relay's ack.
  using core::Addr;
  using core::BufferId;
  using core::Op;
  const std::vector<int> map{0, 0, 1, 1};
  core::ProgramHeader h;
  h.name = "handwritten";
  h.nranks = 4;
  h.numSemaphores = 1;
  h.inputBytes.assign(4, 16);
  h.outputBytes.assign(4, 16);
  std::vector<core::RankProgram> ranks(4);
  for (const auto& [s, d] : std::vector<std::pair<std::int32_t, std::int32_t>>{{0, 3}, {2, 1}}) {
    auto& rp = ranks[static_cast<std::size_t>(s)];
    rp.emit(0, Op::putReduce(d, Addr{d, BufferId::kOutput, 0}, Addr{core::kSelf, BufferId::kInput, 0}, 4,
                             DataType::kFloat32, core::ReduceOp::kSum));
    rp.emit(0, Op::flush());
    rp.emit(0, Op::signal(d, 0, 1));
    ranks[static_cast<std::size_t>(d)].emit(0, Op::wait(0, 1));
  }
  ranks[0].lanes[0].initiation = core::Initiation::kProxy;  // kept, and inherited by rank 0's relay lane
  const auto plain = std::make_shared<core::Program>(h, ranks);
  const auto pxn = applyPxn(plain, map, 1);
  ASSERT_NE(pxn, plain);
  EXPECT_EQ(pxn->header().numSemaphores, 1 + 1 * (1 + 2));
  // Rank 0: put to its relay (rank 1) with a data signal, flush, wait for the ack, signal to the relay.
  const auto& r0 = pxn->rank(0).lanes.at(0).ops;
  ASSERT_EQ(r0.size(), 4U);
  EXPECT_EQ(r0[0].code, OpCode::kPut);
  EXPECT_EQ(r0[0].peer, 1);
  EXPECT_EQ(r0[0].dst.buf, BufferId::kScratch);
  EXPECT_EQ(r0[1].code, OpCode::kFlush);
  EXPECT_EQ(r0[2].code, OpCode::kWait);
  EXPECT_EQ(r0[3].code, OpCode::kSignal);
  EXPECT_EQ(r0[3].peer, 1);
  // Rank 1 hosts rank 0's relay lane: wait, put_reduce to 3, flush + ack, wait, signal to 3 (no ack).
  ASSERT_EQ(pxn->rank(1).lanes.size(), 2U);
  EXPECT_EQ(pxn->laneInitiation(0, 0), core::Initiation::kProxy);
  EXPECT_EQ(pxn->laneInitiation(1, 1), core::Initiation::kProxy);
  EXPECT_EQ(pxn->laneInitiation(3, 1), core::Initiation::kDevice);  // rank 2's relay lane
  const auto& relay = pxn->rank(1).lanes[1].ops;
  ASSERT_EQ(relay.size(), 6U);
  EXPECT_EQ(relay[1].code, OpCode::kPutReduce);
  EXPECT_EQ(relay[1].peer, 3);
  EXPECT_EQ(relay[1].src.buf, BufferId::kScratch);
  EXPECT_EQ(relay[3].code, OpCode::kSignal);
  EXPECT_EQ(relay[3].peer, 0);
  EXPECT_EQ(relay[5].code, OpCode::kSignal);
  EXPECT_EQ(relay[5].peer, 3);
  const auto fill = [](std::vector<InterpreterRank>& rs) {
    for (std::size_t r = 0; r < rs.size(); ++r) {
      std::vector<float> in{1.5F * static_cast<float>(r + 1), 2, 3, 4};
      std::vector<float> out{10, 20, 30, static_cast<float>(r)};
      rs[r].input.resize(16);
      rs[r].output.resize(16);
      std::memcpy(rs[r].input.data(), in.data(), 16);
      std::memcpy(rs[r].output.data(), out.data(), 16);
    }
  };
  std::vector<InterpreterRank> a(4);
  fill(a);
  std::vector<InterpreterRank> b = a;
  runChecked(*plain, a, false, kSeed + 4000);
  runChecked(*pxn, b, false, kSeed + 4001);
  for (std::size_t r = 0; r < 4; ++r) EXPECT_EQ(a[r].output, b[r].output) << "rank " << r;
  std::vector<float> out3(4);
  std::memcpy(out3.data(), b[3].output.data(), 16);
  EXPECT_EQ(out3, (std::vector<float>{11.5F, 22, 33, 7}));
}

TEST(Pxn, LevelZeroOneNodeAndBadArguments) {
  CollectiveArgs a = allToAllArgs({0, 0, 0, 0}, 4, DataType::kInt32, false);
  const auto program = buildProgram(a, "pairwise");
  EXPECT_EQ(applyPxn(program, {0, 0, 0, 0}, 1), program);  // one node: nothing to relay
  EXPECT_EQ(applyPxn(program, {0, 0, 1, 1}, 0), program);
  try {
    (void)applyPxn(program, {0, 1, 1, 0}, 3);
    FAIL() << "level 3 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("PXN level 3 is not supported"), std::string::npos) << e.what();
  }
  try {
    (void)applyPxn(program, {0, 1}, 1);
    FAIL() << "short node map accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node map has 2 entries but the Program has 4 ranks"), std::string::npos)
        << e.what();
  }
}

TEST(Pxn, ConcurrentRankRequestsGiveTheSamePrograms) {
  const std::vector<int> map{0, 0, 0, 1, 1, 1, 2, 2, 2};
  CollectiveArgs a = allToAllArgs(map, 8, DataType::kInt32, false);
  a.pxnLevel = 2;
  const auto lazy = buildProgram(a, "pairwise");
  std::vector<const core::RankProgram*> seen(map.size() * 4, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < seen.size(); ++t) {
    threads.emplace_back([&, t] { seen[t] = &lazy->rank(static_cast<std::int32_t>(t % map.size())); });
  }
  for (auto& th : threads) th.join();
  const core::Program reference = core::Program::materialize(*buildProgram(a, "pairwise"));
  for (std::size_t t = 0; t < seen.size(); ++t) {
    EXPECT_EQ(seen[t], seen[t % map.size()]);
    EXPECT_EQ(*seen[t], reference.rank(static_cast<std::int32_t>(t % map.size())));
  }
}

// ---- real execution: inproc communicator on virtual nodes ----------------------------------------------

void onRanks(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> t;
  t.reserve(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) t.emplace_back(fn, r);
  for (auto& th : t) th.join();
}

TEST(Pxn, InprocAllToAllAndAllToAllVTwiceBackToBack) {
  const std::vector<int> map{0, 0, 0, 1, 1, 2, 2, 2};
  const int n = static_cast<int>(map.size());
  for (int level : {1, 2}) {
    SCOPED_TRACE("pxn=" + std::to_string(level));
    Config cfg;
    cfg.timeoutSec = 30;
    cfg.pxn = level;
    auto comms = createInproc(n, cfg, map);
    onRanks(n, [&](int r) {
      const std::uint64_t count = 33;
      auto& comm = comms[static_cast<std::size_t>(r)];
      for (int call = 0; call < 2; ++call) {
        std::vector<std::int32_t> in(count * n), out(count * n, -1);
        for (std::size_t i = 0; i < in.size(); ++i) in[i] = (call * 1000 + r) * 100000 + static_cast<int>(i);
        ASSERT_TRUE(comm.allToAll(in.data(), out.data(), count, DataType::kInt32, {"pairwise"}).wait().ok());
        for (int s = 0; s < n; ++s) {
          for (std::uint64_t i = 0; i < count; ++i) {
            ASSERT_EQ(out[s * count + i], (call * 1000 + s) * 100000 + static_cast<int>(r * count + i))
                << "call " << call << " rank " << r << " block " << s;
          }
        }
      }
      EXPECT_NE(comm.lastProgramName().find("+pxn"), std::string::npos) << comm.lastProgramName();
      // All-to-allv: rank r sends (r + s) % 3 + 1 elements to s.
      for (int call = 0; call < 2; ++call) {
        std::vector<std::uint64_t> sc(n), sd(n), rc(n), rd(n);
        std::uint64_t sendAt = 0;
        std::uint64_t recvAt = 0;
        for (int s = 0; s < n; ++s) {
          sc[s] = static_cast<std::uint64_t>((r + s) % 3 + 1);
          rc[s] = static_cast<std::uint64_t>((s + r) % 3 + 1);
          sd[s] = sendAt;
          rd[s] = recvAt;
          sendAt += sc[s];
          recvAt += rc[s];
        }
        std::vector<std::int32_t> in(sd.back() + sc.back()), out(rd.back() + rc.back(), -1);
        for (int s = 0; s < n; ++s) {
          for (std::uint64_t i = 0; i < sc[s]; ++i)
            in[sd[s] + i] = call * 100000 + r * 1000 + s * 10 + static_cast<int>(i);
        }
        ASSERT_TRUE(comm.allToAllV(in.data(), sc, sd, out.data(), rc, rd, DataType::kInt32).wait().ok());
        for (int s = 0; s < n; ++s) {
          for (std::uint64_t i = 0; i < rc[s]; ++i) {
            ASSERT_EQ(out[rd[s] + i], call * 100000 + s * 1000 + r * 10 + static_cast<int>(i))
                << "alltoallv call " << call << " rank " << r << " from " << s;
          }
        }
      }
    });
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace copro::collectives
