// All-to-all (pairwise, bruck) and all-to-allv (pairwise, data-dependent): every algorithm over ranks
// {1,2,3,4,5,7,8,16}, counts {0,1,7,4097}, in and out of place, every data type; all-to-allv with
// irregular counts (zeros included) and non-contiguous, permuted displacements. Programs are validated and
// interpreted with two seeds; every output byte is checked, gaps included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "collective_harness.hpp"
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
const std::vector<std::uint64_t> kCounts{0, 1, 7, 4097};
constexpr std::uint64_t kSeed = 77031;  // data and interleaving seeds derive from it (printed on failure)

/// Distinct bytes per (rank, element): element i of rank r's input, as data of type t.
std::vector<std::byte> makeData(DataType t, std::int32_t rank, std::uint64_t count) {
  std::vector<std::byte> buf(count * core::dataTypeSize(t));
  for (std::uint64_t i = 0; i < count; ++i) {
    const double k = static_cast<double>((static_cast<std::uint64_t>(rank) * 131 + i * 7) % 17) - 8.0;
    core::storeFromDouble(t, buf.data(), i, core::isFloatingPoint(t) ? k * 0.25 : k + 8.0);
  }
  return buf;
}

std::vector<std::byte> sentinel(std::uint64_t bytes) {
  return std::vector<std::byte>(bytes, std::byte{0xA5});
}

void runProgram(const core::ProgramSource& program, std::vector<InterpreterRank>& ranks, bool inPlace,
                std::uint64_t seed, const core::ValidatorOptions& options = {}) {
  const core::ValidationResult v = core::validateProgram(program, options);
  ASSERT_TRUE(v.ok()) << v.summary();
  const Status st = core::interpretProgramRepeated(program, ranks, 2, inPlace, seed);
  ASSERT_TRUE(st.ok()) << st.toString();
}

bool sameBytes(const std::vector<std::byte>& a, std::uint64_t aOff, const std::vector<std::byte>& b, std::uint64_t bOff,
               std::uint64_t n) {
  return std::equal(a.begin() + static_cast<std::ptrdiff_t>(aOff), a.begin() + static_cast<std::ptrdiff_t>(aOff + n),
                    b.begin() + static_cast<std::ptrdiff_t>(bOff));
}

// ---- all-to-all ----------------------------------------------------------------------------------------

void runAllToAll(const std::string& algo) {
  std::uint64_t index = 0;
  int dtype = 0;
  for (std::int32_t p : kRanks) {
    for (std::uint64_t count : kCounts) {
      for (bool inPlace : {false, true}) {
        CollectiveArgs a;
        a.kind = CollectiveKind::kAllToAll;
        a.nranks = p;
        a.count = count;
        a.inPlace = inPlace;
        a.dtype = static_cast<DataType>(dtype % core::kNumDataTypes);
        if (count > 0) ++dtype;  // every data type meets every algorithm (64 non-empty cases > 12)
        const std::uint64_t seed = kSeed + index++;
        SCOPED_TRACE("alltoall." + algo + " p=" + std::to_string(p) + " count=" + std::to_string(count) +
                     " dtype=" + std::string(core::dataTypeName(a.dtype)) + (inPlace ? " in-place" : "") +
                     " seed=" + std::to_string(seed));
        const auto program = buildProgram(a, algo);
        const std::uint64_t n = count * core::dataTypeSize(a.dtype);
        const std::uint64_t all = n * static_cast<std::uint64_t>(p);
        std::vector<std::vector<std::byte>> inputs;
        std::vector<InterpreterRank> ranks(static_cast<std::size_t>(p));
        for (std::int32_t r = 0; r < p; ++r) {
          inputs.push_back(makeData(a.dtype, r, count * static_cast<std::uint64_t>(p)));
          InterpreterRank& ir = ranks[static_cast<std::size_t>(r)];
          if (inPlace) {
            ir.output = inputs.back();
          } else {
            ir.input = inputs.back();
            ir.output = sentinel(all);
          }
        }
        runProgram(*program, ranks, inPlace, seed);
        if (::testing::Test::HasFatalFailure()) return;
        for (std::int32_t r = 0; r < p; ++r) {
          for (std::int32_t q = 0; q < p; ++q) {
            // Block q of r's output is block r of q's input.
            ASSERT_TRUE(sameBytes(ranks[static_cast<std::size_t>(r)].output, static_cast<std::uint64_t>(q) * n,
                                  inputs[static_cast<std::size_t>(q)], static_cast<std::uint64_t>(r) * n, n))
                << "rank " << r << " output block " << q;
          }
          if (!inPlace) {
            ASSERT_EQ(ranks[static_cast<std::size_t>(r)].input, inputs[static_cast<std::size_t>(r)]);
          }
        }
      }
    }
  }
}

TEST(AllToAll, Pairwise) {
  runAllToAll("pairwise");
}
TEST(AllToAll, Bruck) {
  runAllToAll("bruck");
}

TEST(AllToAll, PairwiseOverSeveralChannels) {
  // Simulated plans spread the peers over channels (CollectiveArgs::channels); the data must not change.
  std::uint64_t seed = kSeed * 5;
  for (std::int32_t channels : {2, 3, 8}) {
    for (std::int32_t p : {2, 5, 8}) {
      for (bool inPlace : {false, true}) {
        CollectiveArgs a;
        a.kind = CollectiveKind::kAllToAll;
        a.nranks = p;
        a.count = 7;
        a.inPlace = inPlace;
        a.channels = channels;
        const int lanes = buildProgram(a, "pairwise")->numLanes(0);
        EXPECT_EQ(lanes, inPlace ? 1 : std::min(channels, std::max(1, p - 1))) << "p=" << p;
        harness::checkAllToAll(a, "pairwise", seed++);
        if (HasFatalFailure()) return;
      }
    }
  }
  CollectiveArgs one;  // the real backends' default: one lane
  one.kind = CollectiveKind::kAllToAll;
  one.nranks = 8;
  one.count = 7;
  EXPECT_EQ(buildProgram(one, "pairwise")->numLanes(3), 1);
}

TEST(AllToAll, BruckSendsLog2Messages) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAll;
  a.nranks = 5;
  a.count = 3;
  a.dtype = DataType::kFloat32;
  const auto program = buildProgram(a, "bruck");
  // W (p blocks) + send pack (m) + two receive areas (2m); m = 2 blocks for p = 5 (j in {1,3} and {2,3}).
  EXPECT_EQ(program->header().scratchBytes, (5U + 3 * 2) * 12);
  EXPECT_EQ(program->header().numSemaphores, 6);
  for (std::int32_t r = 0; r < 5; ++r) {
    int puts = 0;
    for (const auto& lane : program->rank(r).lanes) {
      for (const auto& op : lane.ops) puts += op.code == core::OpCode::kPut ? 1 : 0;
    }
    EXPECT_EQ(puts, 3) << "rank " << r;  // ceil(log2 5) rounds
  }
  const auto pairwise = buildProgram(a, "pairwise");
  EXPECT_EQ(pairwise->header().scratchBytes, 0U);
  a.inPlace = true;
  EXPECT_EQ(buildProgram(a, "pairwise")->header().scratchBytes, 5U * 12);
}

// ---- all-to-allv ---------------------------------------------------------------------------------------

/// A random all-to-allv layout: counts[r][s] elements from r to s, displacements in a permuted order with
/// gaps between blocks.
struct VLayout {
  std::int32_t p = 0;
  std::vector<std::vector<std::uint64_t>> counts;   // [sender][receiver]
  std::vector<std::vector<std::uint64_t>> sdispls;  // [sender][receiver]
  std::vector<std::vector<std::uint64_t>> rdispls;  // [receiver][sender]
  std::vector<std::uint64_t> inElems;               // input size of each rank (elements)
  std::vector<std::uint64_t> outElems;

  /// The words the communicator initialises: [sendcounts | sdispls | recvcounts | rdispls].
  [[nodiscard]] std::vector<std::uint64_t> init(std::int32_t r) const {
    std::vector<std::uint64_t> w;
    w.reserve(5 * static_cast<std::size_t>(p));
    const auto ru = static_cast<std::size_t>(r);
    for (std::int32_t s = 0; s < p; ++s) w.push_back(counts[ru][static_cast<std::size_t>(s)]);
    for (std::int32_t s = 0; s < p; ++s) w.push_back(sdispls[ru][static_cast<std::size_t>(s)]);
    for (std::int32_t s = 0; s < p; ++s) w.push_back(counts[static_cast<std::size_t>(s)][ru]);
    for (std::int32_t s = 0; s < p; ++s) w.push_back(rdispls[ru][static_cast<std::size_t>(s)]);
    return w;
  }
  /// All 5p words after the counts exchange (for the validator's bounds check of indirect ops).
  [[nodiscard]] std::vector<std::uint64_t> afterExchange(std::int32_t r) const {
    std::vector<std::uint64_t> w = init(r);
    for (std::int32_t s = 0; s < p; ++s) w.push_back(rdispls[static_cast<std::size_t>(s)][static_cast<std::size_t>(r)]);
    return w;
  }
};

VLayout randomLayout(std::int32_t p, std::mt19937_64& rng, bool big) {
  VLayout v;
  v.p = p;
  const auto up = static_cast<std::size_t>(p);
  v.counts.assign(up, std::vector<std::uint64_t>(up, 0));
  v.sdispls = v.counts;
  v.rdispls = v.counts;
  const std::vector<std::uint64_t> choices =
      big ? std::vector<std::uint64_t>{0, 1, 7, 4097} : std::vector<std::uint64_t>{0, 0, 1, 2, 3, 5, 7};
  for (auto& row : v.counts) {
    for (auto& c : row) c = choices[rng() % choices.size()];
  }
  // Blocks in a random order with 0-3 element gaps: non-contiguous, non-monotone displacements.
  const auto place = [&](const std::vector<std::uint64_t>& sizes, std::vector<std::uint64_t>& displs) {
    std::vector<std::size_t> order(up);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::uint64_t at = rng() % 3;
    for (std::size_t s : order) {
      displs[s] = at;
      at += sizes[s] + rng() % 4;
    }
    return at + rng() % 3;
  };
  for (std::size_t r = 0; r < up; ++r) {
    v.inElems.push_back(place(v.counts[r], v.sdispls[r]));
    std::vector<std::uint64_t> recv(up);
    for (std::size_t s = 0; s < up; ++s) recv[s] = v.counts[s][r];
    v.outElems.push_back(place(recv, v.rdispls[r]));
  }
  return v;
}

/// The interpreter checks the call's buffers against the header's sizes, which an all-to-allv Program
/// cannot know (UINT64_MAX). Like an executor, substitute the call's buffer sizes.
core::Program withCallSizes(const core::ProgramSource& source, const std::vector<InterpreterRank>& ranks) {
  core::Program program = core::Program::materialize(source);
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    program.mutableHeader().inputBytes[r] = ranks[r].input.size();
    program.mutableHeader().outputBytes[r] = ranks[r].output.size();
  }
  return program;
}

void runAllToAllv(std::int32_t p, DataType dtype, bool big, std::uint64_t seed) {
  SCOPED_TRACE("alltoallv.pairwise p=" + std::to_string(p) + " dtype=" + std::string(core::dataTypeName(dtype)) +
               (big ? " big" : "") + " seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const VLayout v = randomLayout(p, rng, big);
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAllV;
  a.nranks = p;
  a.dtype = dtype;
  const auto program = buildProgram(a, "pairwise");
  const core::ProgramHeader& h = program->header();
  EXPECT_EQ(h.layoutWords, static_cast<std::uint32_t>(5 * p));
  EXPECT_EQ(h.inputBytes, std::vector<std::uint64_t>(static_cast<std::size_t>(p), UINT64_MAX));
  EXPECT_EQ(h.outputBytes, std::vector<std::uint64_t>(static_cast<std::size_t>(p), UINT64_MAX));

  const std::uint64_t es = core::dataTypeSize(dtype);
  std::vector<InterpreterRank> ranks(static_cast<std::size_t>(p));
  core::ValidatorOptions options;
  for (std::int32_t r = 0; r < p; ++r) {
    InterpreterRank& ir = ranks[static_cast<std::size_t>(r)];
    ir.input = makeData(dtype, r, v.inElems[static_cast<std::size_t>(r)]);
    ir.output = sentinel(v.outElems[static_cast<std::size_t>(r)] * es);
    ir.layoutInit = v.init(r);
    options.layout.push_back(v.afterExchange(r));
  }
  // The Program as built (sizes unknown), then with the call's sizes so indirect ops are bounds-checked.
  const core::ValidationResult asBuilt = core::validateProgram(*program, options);
  ASSERT_TRUE(asBuilt.ok()) << asBuilt.summary();
  const core::Program sized = withCallSizes(*program, ranks);
  const std::vector<InterpreterRank> before = ranks;
  runProgram(sized, ranks, false, seed, options);
  if (::testing::Test::HasFatalFailure()) return;

  for (std::int32_t r = 0; r < p; ++r) {
    const auto ru = static_cast<std::size_t>(r);
    const std::vector<std::byte>& out = ranks[ru].output;
    std::vector<bool> written(out.size(), false);
    for (std::int32_t s = 0; s < p; ++s) {
      const auto su = static_cast<std::size_t>(s);
      const std::uint64_t n = v.counts[su][ru] * es;
      const std::uint64_t at = v.rdispls[ru][su] * es;
      ASSERT_TRUE(sameBytes(out, at, before[su].input, v.sdispls[su][ru] * es, n))
          << "rank " << r << ": block from rank " << s << " at element " << v.rdispls[ru][su];
      std::fill(written.begin() + static_cast<std::ptrdiff_t>(at),
                written.begin() + static_cast<std::ptrdiff_t>(at + n), true);
    }
    for (std::size_t b = 0; b < out.size(); ++b) {
      if (!written[b]) {
        ASSERT_EQ(out[b], std::byte{0xA5}) << "rank " << r << " wrote the gap byte " << b;
      }
    }
    // The counts exchange delivered every peer's displacement (the own word is not used).
    for (std::int32_t s = 0; s < p; ++s) {
      if (s == r) continue;
      EXPECT_EQ(ranks[ru].layout[static_cast<std::size_t>(4 * p + s)], v.rdispls[static_cast<std::size_t>(s)][ru]);
    }
  }
}

TEST(AllToAllV, IrregularCountsAndDisplacements) {
  int dtype = 0;
  std::uint64_t seed = kSeed * 3;
  for (std::int32_t p : kRanks) {
    for (int rep = 0; rep < 2; ++rep) {
      runAllToAllv(p, static_cast<DataType>(dtype++ % core::kNumDataTypes), false, seed++);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(AllToAllV, LargeAndZeroCounts) {
  int dtype = 5;
  std::uint64_t seed = kSeed * 7;
  for (std::int32_t p : {2, 3, 5, 8}) {
    runAllToAllv(p, static_cast<DataType>(dtype++ % core::kNumDataTypes), true, seed++);
    if (HasFatalFailure()) return;
  }
}

TEST(AllToAllV, PhasesUseIndirectOpsOnTheLayout) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAllV;
  a.nranks = 4;
  a.dtype = DataType::kBfloat16;
  const auto program = buildProgram(a, "pairwise");
  const auto& ops = program->rank(1).lanes.at(0).ops;
  int layoutPuts = 0;
  int indirectPuts = 0;
  int indirectCopies = 0;
  for (const auto& op : ops) {
    if (op.code == core::OpCode::kPut && op.dst.buf == core::BufferId::kLayout) {
      ++layoutPuts;
      EXPECT_EQ(op.dst.offset, (4U * 4 + 1) * 8);                                    // word 4p + r on the peer
      EXPECT_EQ(op.src.offset, (3U * 4 + static_cast<std::uint64_t>(op.peer)) * 8);  // rdispls[peer]
    }
    if (op.code == core::OpCode::kPut && op.indirect.active()) {
      ++indirectPuts;
      EXPECT_EQ(op.indirect, (core::Indirect{op.peer, 4 + op.peer, 16 + op.peer, 2}));
    }
    if (op.code == core::OpCode::kCopy && op.indirect.active()) {
      ++indirectCopies;
      EXPECT_EQ(op.indirect, (core::Indirect{1, 5, 13, 2}));
    }
  }
  EXPECT_EQ(layoutPuts, 3);
  EXPECT_EQ(indirectPuts, 3);
  EXPECT_EQ(indirectCopies, 1);
}

// ---- estimates and unsupported -------------------------------------------------------------------------

TEST(AllToAll, EstimatesArePositiveAndGrowWithCount) {
  const CostModel model;
  for (const Algorithm* alg :
       {findAlgorithm(CollectiveKind::kAllToAll, "pairwise"), findAlgorithm(CollectiveKind::kAllToAll, "bruck"),
        findAlgorithm(CollectiveKind::kAllToAllV, "pairwise")}) {
    ASSERT_NE(alg, nullptr);
    for (std::int32_t p : {1, 2, 8, 16}) {
      CollectiveArgs a;
      a.kind = alg->kind;
      a.nranks = p;
      double previous = 0.0;
      for (std::uint64_t count : {0ULL, 1ULL, 1024ULL, 1ULL << 20}) {
        a.count = count;
        const double t = alg->estimateUs(a, model);
        EXPECT_GT(t, 0.0) << alg->name << " p=" << p << " count=" << count;
        if (count > 1) {
          EXPECT_GT(t, previous) << alg->name << " p=" << p << " count=" << count;
        }
        previous = t;
      }
    }
  }
  // Bruck wins for tiny blocks on many ranks (log p latencies), pairwise for large ones (no copies, n/2 data
  // per round).
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAll;
  a.nranks = 16;
  a.count = 1;
  const auto* pairwise = findAlgorithm(CollectiveKind::kAllToAll, "pairwise");
  const auto* bruck = findAlgorithm(CollectiveKind::kAllToAll, "bruck");
  EXPECT_LT(bruck->estimateUs(a, model), pairwise->estimateUs(a, model));
  a.count = 1U << 20;
  EXPECT_LT(pairwise->estimateUs(a, model), bruck->estimateUs(a, model));
}

TEST(AllToAll, UnsupportedReasons) {
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAllV;
  a.nranks = 4;
  const auto* v = findAlgorithm(CollectiveKind::kAllToAllV, "pairwise");
  EXPECT_EQ(v->unsupportedReason(a), "");
  a.inPlace = true;
  EXPECT_NE(v->unsupportedReason(a).find("in place is not supported"), std::string::npos);
  try {
    (void)buildProgram(a, "pairwise");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
  a.inPlace = false;
  a.nranks = 0;
  EXPECT_NE(v->unsupportedReason(a), "");

  for (const char* name : {"pairwise", "bruck"}) {
    const auto* alg = findAlgorithm(CollectiveKind::kAllToAll, name);
    CollectiveArgs b;
    b.kind = CollectiveKind::kAllToAll;
    b.nranks = 8;
    b.count = 100;
    EXPECT_EQ(alg->unsupportedReason(b), "") << name;
    b.count = UINT64_MAX / 16;
    EXPECT_NE(alg->unsupportedReason(b).find("overflows"), std::string::npos) << name;
    b.count = 1;
    b.nranks = 0;
    EXPECT_NE(alg->unsupportedReason(b), "") << name;
  }
}

}  // namespace
}  // namespace copro::collectives
