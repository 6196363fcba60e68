// Rooted collectives (broadcast, reduce, gather, scatter): every algorithm over ranks {1,2,3,4,5,7,8,16},
// counts {0,1,7,4097}, roots {0, p-1, p/2}, in and out of place (in place on the root only, as the
// communicator calls it), data types and reduce ops chosen pairwise.
// Each Program is validated, run by the reference interpreter with two seeds (which must agree byte for
// byte), and every output element is compared against a float64 reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
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
using core::ReduceOp;

const std::vector<std::int32_t> kRanks{1, 2, 3, 4, 5, 7, 8, 16};
const std::vector<std::uint64_t> kCounts{0, 1, 7, 4097};
constexpr std::uint64_t kSeed = 20240611;  // interleaving seeds are kSeed + case index (printed on failure)

std::vector<std::int32_t> rootsFor(std::int32_t p) {
  std::vector<std::int32_t> roots{0, p - 1, p / 2};
  std::sort(roots.begin(), roots.end());
  roots.erase(std::unique(roots.begin(), roots.end()), roots.end());
  return roots;
}

/// Walks every (dtype, op) pair: c -> (c mod 12, c mod 5) is a bijection on 0..59 (12 and 5 are coprime),
/// so 60 consecutive non-empty cases of one algorithm cover every pair.
struct PairwiseCursor {
  int c = 0;
  [[nodiscard]] DataType dtype() const { return static_cast<DataType>(c % core::kNumDataTypes); }
  [[nodiscard]] ReduceOp op() const { return static_cast<ReduceOp>(c % core::kNumReduceOps); }
};

bool isUnsigned(DataType t) {
  return t == DataType::kUint8 || t == DataType::kUint32 || t == DataType::kUint64;
}

/// Input element i of `rank`: small integers (or quarters for floats) so sums are exact and never overflow
/// int8 with 16 ranks; for prod, values whose products stay in range.
double inputValue(DataType t, ReduceOp op, std::int32_t rank, std::uint64_t i, std::int32_t p) {
  const bool fp = core::isFloatingPoint(t);
  if (op == ReduceOp::kProd) {
    if (fp) {
      static const double kProdValues[4] = {1.0, -1.0, 2.0, 0.5};
      return kProdValues[(static_cast<std::uint64_t>(rank) * 3 + i) % 4];
    }
    if (static_cast<std::uint64_t>(rank) == i % static_cast<std::uint64_t>(p)) return 2.0;
    if (isUnsigned(t)) return 1.0;
    return (static_cast<std::uint64_t>(rank) + i) % 3 == 0 ? -1.0 : 1.0;
  }
  const double k = static_cast<double>((static_cast<std::uint64_t>(rank) * 131 + i * 7) % 15) - 7.0;
  if (fp) return k * 0.25;
  return isUnsigned(t) ? k + 7.0 : k;
}

std::vector<std::byte> makeInput(DataType t, ReduceOp op, std::int32_t rank, std::uint64_t count, std::int32_t p) {
  std::vector<std::byte> buf(count * core::dataTypeSize(t));
  for (std::uint64_t i = 0; i < count; ++i) core::storeFromDouble(t, buf.data(), i, inputValue(t, op, rank, i, p));
  return buf;
}

/// Garbage that a correct Program overwrites (or must leave alone).
std::vector<std::byte> sentinel(std::uint64_t bytes) {
  return std::vector<std::byte>(bytes, std::byte{0xA5});
}

double epsOf(DataType t) {
  // Machine epsilon: twice the unit roundoff.
  return 2.0 * core::unitRoundoff(t);
}

std::string caseName(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed) {
  return std::string(collectiveName(a.kind)) + "." + algo + " p=" + std::to_string(a.nranks) +
         " count=" + std::to_string(a.count) + " root=" + std::to_string(a.root) +
         " dtype=" + std::string(core::dataTypeName(a.dtype)) + " op=" + std::string(core::reduceOpName(a.op)) +
         (a.inPlace ? " in-place" : "") + " chunk=" + std::to_string(a.chunkBytes) + " seed=" + std::to_string(seed);
}

/// The Program a communicator's ranks run. In place is the root's flag alone (the communicator sets it where
/// the root's send and receive buffers coincide), so the root runs the Program built with args.inPlace and
/// every other rank the one built without. Checks that this mix is consistent: one header, and non-root ops
/// that do not depend on the flag.
std::shared_ptr<const core::ProgramSource> communicatorProgram(const CollectiveArgs& a, const std::string& algo) {
  auto built = buildProgram(a, algo);
  if (!a.inPlace) return built;
  CollectiveArgs others = a;
  others.inPlace = false;
  auto other = buildProgram(others, algo);
  EXPECT_TRUE(built->header() == other->header()) << "the header may not depend on the root's in-place flag";
  std::vector<core::RankProgram> ranks;
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    if (r == a.root) {
      ranks.push_back(built->rank(r));
    } else {
      EXPECT_TRUE(built->rank(r) == other->rank(r)) << "rank " << r << "'s ops depend on the root's in-place flag";
      ranks.push_back(other->rank(r));
    }
  }
  return std::make_shared<core::Program>(other->header(), std::move(ranks));
}

/// Validates and interprets (two seeds that must agree); returns the first run's final state.
///
/// The interpreter's in-place mode aliases every rank's buffers, which is not what a rooted call does; the
/// root's aliasing is emulated instead by giving its Input and Output the contents they share in place.
void runProgram(const core::ProgramSource& program, std::vector<InterpreterRank>& ranks, std::uint64_t seed) {
  const core::ValidationResult v = core::validateProgram(program);
  ASSERT_TRUE(v.ok()) << v.summary();
  const Status st = core::interpretProgramRepeated(program, ranks, 2, false, seed);
  ASSERT_TRUE(st.ok()) << st.toString();
}

void expectBytesEqual(const std::vector<std::byte>& got, const std::vector<std::byte>& want, std::uint64_t offset,
                      const std::string& what) {
  ASSERT_LE(offset + want.size(), got.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (got[offset + i] != want[i]) {
      FAIL() << what << ": byte " << i << " is " << static_cast<int>(got[offset + i]) << ", expected "
             << static_cast<int>(want[i]);
    }
  }
}

/// Runs every (p, count, root, inPlace) for one algorithm, with dtype/op from the pairwise cursor.
template <typename RunCase>
void forEachCase(CollectiveKind kind, const std::string& algo, RunCase runCase) {
  PairwiseCursor cursor;
  std::uint64_t index = 0;
  for (std::int32_t p : kRanks) {
    for (std::uint64_t count : kCounts) {
      for (std::int32_t root : rootsFor(p)) {
        for (bool inPlace : {false, true}) {
          CollectiveArgs a;
          a.kind = kind;
          a.nranks = p;
          a.count = count;
          a.root = root;
          a.inPlace = inPlace;
          a.dtype = cursor.dtype();
          a.op = cursor.op();
          // Small, odd chunks on every other case so 4097 elements pipeline through many chunks (and
          // exercise the credits); the default elsewhere.
          a.chunkBytes = index % 2 == 0 ? 1000 : (1U << 20);
          const std::uint64_t seed = kSeed + index++;
          SCOPED_TRACE(caseName(a, algo, seed));
          runCase(a, algo, seed);
          if (::testing::Test::HasFatalFailure()) return;
          if (count > 0) ++cursor.c;
        }
      }
    }
  }
}

// ---- broadcast -----------------------------------------------------------------------------------------

void runBroadcast(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed) {
  const auto program = communicatorProgram(a, algo);
  const std::uint64_t n = a.count * core::dataTypeSize(a.dtype);
  const std::vector<std::byte> data = makeInput(a.dtype, a.op, a.root, a.count, a.nranks);
  std::vector<InterpreterRank> ranks(static_cast<std::size_t>(a.nranks));
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    InterpreterRank& ir = ranks[static_cast<std::size_t>(r)];
    ir.output = sentinel(n);
    if (r == a.root) {
      ir.input = data;
      if (a.inPlace) ir.output = data;  // one buffer on the root
    }
  }
  runProgram(*program, ranks, seed);
  if (::testing::Test::HasFatalFailure()) return;
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    expectBytesEqual(ranks[static_cast<std::size_t>(r)].output, data, 0, "rank " + std::to_string(r) + " output");
    if (r == a.root) expectBytesEqual(ranks[static_cast<std::size_t>(r)].input, data, 0, "root input changed");
  }
}

TEST(RootedBroadcast, Binomial) {
  forEachCase(CollectiveKind::kBroadcast, "binomial", runBroadcast);
}
TEST(RootedBroadcast, Chain) {
  forEachCase(CollectiveKind::kBroadcast, "chain", runBroadcast);
}

// ---- reduce --------------------------------------------------------------------------------------------

double combine(ReduceOp op, double acc, double x) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return acc + x;
    case ReduceOp::kProd:
      return acc * x;
    case ReduceOp::kMin:
      return std::min(acc, x);
    case ReduceOp::kMax:
      return std::max(acc, x);
  }
  return acc;
}

void runReduce(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed) {
  const auto program = communicatorProgram(a, algo);
  const std::uint64_t n = a.count * core::dataTypeSize(a.dtype);
  std::vector<std::vector<std::byte>> inputs;
  std::vector<InterpreterRank> ranks(static_cast<std::size_t>(a.nranks));
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    inputs.push_back(makeInput(a.dtype, a.op, r, a.count, a.nranks));
    InterpreterRank& ir = ranks[static_cast<std::size_t>(r)];
    ir.input = inputs.back();
    if (r == a.root) ir.output = a.inPlace ? inputs.back() : sentinel(n);  // in place: one buffer on the root
  }
  runProgram(*program, ranks, seed);
  if (::testing::Test::HasFatalFailure()) return;

  const std::vector<std::byte>& out = ranks[static_cast<std::size_t>(a.root)].output;
  ASSERT_EQ(out.size(), n);
  const bool fp = core::isFloatingPoint(a.dtype);
  const double p = a.nranks;
  for (std::uint64_t i = 0; i < a.count; ++i) {
    double ref = core::loadAsDouble(a.dtype, inputs[0].data(), i);
    double absSum = std::fabs(ref);
    for (std::int32_t r = 1; r < a.nranks; ++r) {
      const double x = core::loadAsDouble(a.dtype, inputs[static_cast<std::size_t>(r)].data(), i);
      ref = combine(a.op, ref, x);
      absSum += std::fabs(x);
    }
    if (a.op == ReduceOp::kAvg) ref = fp ? ref / p : std::trunc(ref / p);
    const double got = core::loadAsDouble(a.dtype, out.data(), i);
    double tol = 0.0;
    if (fp && (a.op == ReduceOp::kSum || a.op == ReduceOp::kAvg)) tol = p * epsOf(a.dtype) * absSum;
    if (fp && a.op == ReduceOp::kProd) tol = p * epsOf(a.dtype) * std::fabs(ref);
    if (std::fabs(got - ref) > tol) {
      FAIL() << "element " << i << ": got " << got << ", expected " << ref << " (tolerance " << tol << ")";
    }
  }
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    expectBytesEqual(ranks[static_cast<std::size_t>(r)].input, inputs[static_cast<std::size_t>(r)], 0,
                     "rank " + std::to_string(r) + " input must be unchanged");
  }
}

TEST(RootedReduce, Binomial) {
  forEachCase(CollectiveKind::kReduce, "binomial", runReduce);
}
TEST(RootedReduce, Chain) {
  forEachCase(CollectiveKind::kReduce, "chain", runReduce);
}

// ---- gather --------------------------------------------------------------------------------------------

void runGather(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed) {
  const auto program = communicatorProgram(a, algo);
  const std::uint64_t n = a.count * core::dataTypeSize(a.dtype);
  const auto p = static_cast<std::uint64_t>(a.nranks);
  std::vector<std::vector<std::byte>> inputs;
  std::vector<InterpreterRank> ranks(static_cast<std::size_t>(a.nranks));
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    inputs.push_back(makeInput(a.dtype, a.op, r, a.count, a.nranks));
    InterpreterRank& ir = ranks[static_cast<std::size_t>(r)];
    ir.input = inputs.back();
    if (r == a.root) {
      ir.output = sentinel(n * p);
      if (a.inPlace) {
        // In place the root's input is its block inside the output.
        std::copy(inputs.back().begin(), inputs.back().end(),
                  ir.output.begin() + static_cast<std::ptrdiff_t>(static_cast<std::uint64_t>(r) * n));
      }
    }
  }
  runProgram(*program, ranks, seed);
  if (::testing::Test::HasFatalFailure()) return;
  const std::vector<std::byte>& out = ranks[static_cast<std::size_t>(a.root)].output;
  ASSERT_EQ(out.size(), n * p);
  for (std::int32_t q = 0; q < a.nranks; ++q) {
    expectBytesEqual(out, inputs[static_cast<std::size_t>(q)], static_cast<std::uint64_t>(q) * n,
                     "root output block " + std::to_string(q));
  }
}

TEST(RootedGather, Direct) {
  forEachCase(CollectiveKind::kGather, "direct", runGather);
}
TEST(RootedGather, Binomial) {
  forEachCase(CollectiveKind::kGather, "binomial", runGather);
}

// ---- scatter -------------------------------------------------------------------------------------------

void runScatter(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed) {
  const auto program = communicatorProgram(a, algo);
  const std::uint64_t n = a.count * core::dataTypeSize(a.dtype);
  // The root's input: block q is what rank q receives (made from q's generator so blocks differ).
  std::vector<std::byte> all;
  std::vector<std::vector<std::byte>> blocks;
  for (std::int32_t q = 0; q < a.nranks; ++q) {
    blocks.push_back(makeInput(a.dtype, a.op, q, a.count, a.nranks));
    all.insert(all.end(), blocks.back().begin(), blocks.back().end());
  }
  std::vector<InterpreterRank> ranks(static_cast<std::size_t>(a.nranks));
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    InterpreterRank& ir = ranks[static_cast<std::size_t>(r)];
    ir.output = sentinel(n);
    if (r == a.root) {
      ir.input = all;
      // In place the root's output is its own block inside the input.
      if (a.inPlace) ir.output = blocks[static_cast<std::size_t>(r)];
    }
  }
  runProgram(*program, ranks, seed);
  if (::testing::Test::HasFatalFailure()) return;
  for (std::int32_t r = 0; r < a.nranks; ++r) {
    expectBytesEqual(ranks[static_cast<std::size_t>(r)].output, blocks[static_cast<std::size_t>(r)], 0,
                     "rank " + std::to_string(r) + " output");
  }
  expectBytesEqual(ranks[static_cast<std::size_t>(a.root)].input, all, 0, "root input changed");
}

TEST(RootedScatter, Direct) {
  forEachCase(CollectiveKind::kScatter, "direct", runScatter);
}
TEST(RootedScatter, Binomial) {
  forEachCase(CollectiveKind::kScatter, "binomial", runScatter);
}

// ---- coverage, headers, estimates, unsupported ---------------------------------------------------------

TEST(Rooted, PairwiseCursorCoversEveryDtypeOpPair) {
  // Each algorithm runs 126 non-empty cases (21 (p, root) pairs x 3 counts x 2); 60 cover all pairs.
  std::size_t nonEmpty = 0;
  for (std::int32_t p : kRanks) nonEmpty += rootsFor(p).size() * 3 * 2;
  EXPECT_GE(nonEmpty, static_cast<std::size_t>(core::kNumDataTypes * core::kNumReduceOps));
}

TEST(Rooted, HeadersFollowTheBufferConventions) {
  CollectiveArgs a;
  a.nranks = 5;
  a.count = 10;
  a.root = 3;
  a.dtype = DataType::kFloat32;
  a.chunkBytes = 16;  // 4 elements per chunk
  a.kind = CollectiveKind::kBroadcast;
  auto h = buildProgram(a, "binomial")->header();
  EXPECT_EQ(h.name, "broadcast.binomial");
  EXPECT_EQ(h.inputBytes, (std::vector<std::uint64_t>{0, 0, 0, 40, 0}));
  EXPECT_EQ(h.outputBytes, (std::vector<std::uint64_t>(5, 40)));

  a.kind = CollectiveKind::kReduce;
  h = buildProgram(a, "binomial")->header();
  EXPECT_EQ(h.name, "reduce.binomial");
  EXPECT_EQ(h.outputBytes, (std::vector<std::uint64_t>{0, 0, 0, 40, 0}));
  EXPECT_EQ(h.numSemaphores, 4);                 // ceil(log2 5) data semaphores + 1 credit
  EXPECT_EQ(h.scratchBytes, (2 * 3 + 2) * 16U);  // 2 slots per edge + 2 staging, 16-byte chunks
  h = buildProgram(a, "chain")->header();
  EXPECT_EQ(h.scratchBytes, 4 * 16U);

  a.kind = CollectiveKind::kGather;
  h = buildProgram(a, "binomial")->header();
  EXPECT_EQ(h.outputBytes, (std::vector<std::uint64_t>{0, 0, 0, 200, 0}));
  EXPECT_EQ(h.scratchBytes, 2 * 40U);  // largest subtree below the root of 5 ranks has 2 blocks
  a.kind = CollectiveKind::kScatter;
  h = buildProgram(a, "direct")->header();
  EXPECT_EQ(h.inputBytes, (std::vector<std::uint64_t>{0, 0, 0, 200, 0}));
  EXPECT_EQ(h.outputBytes, (std::vector<std::uint64_t>(5, 40)));

  // The root's in-place flag changes no header (the ranks that do not set it must agree).
  a.llMaxBytes = 4096;  // the LL algorithms (oneshot_ll) run only where the backend has mailboxes
  for (CollectiveKind kind :
       {CollectiveKind::kBroadcast, CollectiveKind::kReduce, CollectiveKind::kGather, CollectiveKind::kScatter}) {
    for (const Algorithm* alg : algorithmsFor(kind)) {
      a.kind = kind;
      a.inPlace = false;
      const auto out = buildProgram(a, alg->name)->header();
      a.inPlace = true;
      EXPECT_TRUE(buildProgram(a, alg->name)->header() == out) << collectiveName(kind) << "." << alg->name;
    }
  }
}

TEST(Rooted, BinomialBroadcastReachesEveryRankInLog2Steps) {
  // Count the longest chain of puts from the root: depth of the tree.
  CollectiveArgs a;
  a.kind = CollectiveKind::kBroadcast;
  a.nranks = 16;
  a.count = 1;
  a.root = 5;
  const auto program = buildProgram(a, "binomial");
  std::vector<int> depth(16, -1);
  depth[5] = 0;
  for (int round = 0; round < 16; ++round) {
    for (std::int32_t r = 0; r < 16; ++r) {
      if (depth[static_cast<std::size_t>(r)] < 0) continue;
      for (const auto& lane : program->rank(r).lanes) {
        for (const auto& op : lane.ops) {
          if (op.code != core::OpCode::kPut) continue;
          int& d = depth[static_cast<std::size_t>(op.peer)];
          if (d < 0) d = depth[static_cast<std::size_t>(r)] + 1;
        }
      }
    }
  }
  EXPECT_EQ(*std::max_element(depth.begin(), depth.end()), 4);
  EXPECT_EQ(std::count(depth.begin(), depth.end(), -1), 0);
}

TEST(Rooted, EstimatesArePositiveAndGrowWithCount) {
  const CostModel model;
  for (const Algorithm* alg :
       {findAlgorithm(CollectiveKind::kBroadcast, "binomial"), findAlgorithm(CollectiveKind::kBroadcast, "chain"),
        findAlgorithm(CollectiveKind::kReduce, "binomial"), findAlgorithm(CollectiveKind::kReduce, "chain"),
        findAlgorithm(CollectiveKind::kGather, "direct"), findAlgorithm(CollectiveKind::kGather, "binomial"),
        findAlgorithm(CollectiveKind::kScatter, "direct"), findAlgorithm(CollectiveKind::kScatter, "binomial")}) {
    ASSERT_NE(alg, nullptr);
    SCOPED_TRACE(std::string(collectiveName(alg->kind)) + "." + alg->name);
    for (std::int32_t p : {1, 2, 8, 16}) {
      CollectiveArgs a;
      a.kind = alg->kind;
      a.nranks = p;
      double previous = 0.0;
      for (std::uint64_t count : {0ULL, 1ULL, 1024ULL, 1ULL << 20, 1ULL << 24}) {
        a.count = count;
        const double t = alg->estimateUs(a, model);
        EXPECT_GT(t, 0.0) << "p=" << p << " count=" << count;
        if (count > 1) {
          EXPECT_GT(t, previous) << "p=" << p << " count=" << count;
        }
        previous = t;
      }
    }
  }
  // Large messages: the pipelined chain beats the binomial tree (root sends log2 p copies); small ones the
  // opposite.
  CollectiveArgs big;
  big.kind = CollectiveKind::kBroadcast;
  big.nranks = 16;
  big.count = 1U << 26;
  const auto* tree = findAlgorithm(CollectiveKind::kBroadcast, "binomial");
  const auto* chain = findAlgorithm(CollectiveKind::kBroadcast, "chain");
  EXPECT_LT(chain->estimateUs(big, model), tree->estimateUs(big, model));
  big.count = 1;
  EXPECT_LT(tree->estimateUs(big, model), chain->estimateUs(big, model));
}

TEST(Rooted, UnsupportedReasons) {
  for (CollectiveKind kind :
       {CollectiveKind::kBroadcast, CollectiveKind::kReduce, CollectiveKind::kGather, CollectiveKind::kScatter}) {
    for (const Algorithm* alg : algorithmsFor(kind)) {
      SCOPED_TRACE(std::string(collectiveName(kind)) + "." + alg->name);
      CollectiveArgs a;
      a.kind = kind;
      a.nranks = 4;
      a.count = 8;
      a.root = 3;
      a.llMaxBytes = 4096;  // the LL algorithms (oneshot_ll) run only where the backend has mailboxes
      EXPECT_EQ(alg->unsupportedReason(a), "");
      a.root = 4;
      EXPECT_NE(alg->unsupportedReason(a).find("root 4 is out of range"), std::string::npos);
      a.root = -1;
      EXPECT_NE(alg->unsupportedReason(a), "");
      a.root = 0;
      a.nranks = 0;
      EXPECT_NE(alg->unsupportedReason(a), "");
      a.nranks = 4;
      a.count = UINT64_MAX / 2;
      EXPECT_NE(alg->unsupportedReason(a).find("overflows"), std::string::npos);
    }
  }
  CollectiveArgs a;
  a.kind = CollectiveKind::kBroadcast;
  a.nranks = 2;
  a.root = 2;
  try {
    (void)buildProgram(a, "chain");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(e.message().find("root 2 is out of range for 2 ranks"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace copro::collectives
