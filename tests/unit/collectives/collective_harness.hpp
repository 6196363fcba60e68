#pragma once
// Shared helpers of the all-reduce, reduce-scatter/all-gather and hierarchical tests: input values that
// keep every reduction exact or within a stated tolerance, float64 references, and a runner that
// validates a Program and interprets it with two seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/interpreter.hpp"
#include "copro/core/program.hpp"
#include "copro/core/validator.hpp"

namespace copro::collectives::harness {

using core::DataType;
using core::ReduceOp;

inline const std::vector<std::int32_t> kRankCounts{1, 2, 3, 4, 5, 7, 8, 16};
inline const std::vector<std::uint64_t> kCounts{0, 1, 7, 4097};

/// Case g gets data type g % 12 and op g % 5: 12 and 5 are coprime, so 60 consecutive cases meet every
/// (data type, op) pair, and any 12 consecutive cases every data type.
inline DataType dtypeOf(std::uint64_t g) {
  return static_cast<DataType>(g % core::kNumDataTypes);
}
inline ReduceOp opOf(std::uint64_t g) {
  return static_cast<ReduceOp>(g % core::kNumReduceOps);
}
/// Small pipelining chunks so that every algorithm's chunking runs (64 to 512 bytes), and now and then
/// the default.
inline std::uint64_t chunkOf(std::uint64_t g) {
  return g % 7 == 6 ? (1U << 20) : (64U << (g % 4));
}

inline bool isSignedInt(DataType t) {
  return t == DataType::kInt8 || t == DataType::kInt32 || t == DataType::kInt64;
}

/// Element i of rank r's contribution: ((r*131 + i*7) % 17 - 8) / 4 for floats (exact binary fractions),
/// the same pattern unscaled for integers (halved for 8-bit types so 16-rank sums fit), and for prod a
/// cycle through {1, -1, 2, 0.5} by (r + i) % 4 so that products over consecutive ranks stay near 1.
inline double inputValue(DataType t, ReduceOp op, std::int32_t r, std::uint64_t i) {
  const auto v = static_cast<std::int64_t>((static_cast<std::uint64_t>(r) * 131 + i * 7) % 17);
  if (op == ReduceOp::kProd) {
    const std::uint64_t k = (static_cast<std::uint64_t>(r) + i) % 4;
    static constexpr double kFloat[4] = {1, -1, 2, 0.5};
    static constexpr double kSigned[4] = {1, -1, 2, 1};
    static constexpr double kUnsigned[4] = {1, 1, 2, 1};
    if (core::isFloatingPoint(t)) return kFloat[k];
    return isSignedInt(t) ? kSigned[k] : kUnsigned[k];
  }
  if (core::isFloatingPoint(t)) return static_cast<double>(v - 8) * 0.25;
  // Halved (truncating: integers are wanted) for the 8-bit types.
  if (t == DataType::kInt8) {
    const std::int64_t h = (v - 8) / 2;
    return static_cast<double>(h);
  }
  if (t == DataType::kUint8) {
    const std::int64_t h = v / 2;
    return static_cast<double>(h);
  }
  return static_cast<double>(isSignedInt(t) ? v - 8 : v);
}

/// `count` elements of rank r's contribution starting at element `first`.
inline std::vector<std::byte> makeData(DataType t, ReduceOp op, std::int32_t r, std::uint64_t first,
                                       std::uint64_t count) {
  std::vector<std::byte> buf(count * core::dataTypeSize(t));
  for (std::uint64_t i = 0; i < count; ++i) core::storeFromDouble(t, buf.data(), i, inputValue(t, op, r, first + i));
  return buf;
}

inline std::vector<std::byte> sentinel(std::uint64_t bytes) {
  return std::vector<std::byte>(bytes, std::byte{0xA5});
}

inline double epsOf(DataType t) {
  // Machine epsilon: twice the unit roundoff.
  return 2.0 * core::unitRoundoff(t);
}

/// A float64 reference of one reduced element and the error allowed for it: exact for integers and
/// min/max; for floats nranks * eps(dtype) times the sum of absolute values (sum, avg) or the product of
/// absolute values (prod).
struct Expected {
  double value = 0;
  double tolerance = 0;
};

inline Expected reduceReference(DataType t, ReduceOp op, const std::vector<double>& xs) {
  Expected e;
  double sumAbs = 0;
  double prodAbs = 1;
  double acc = op == ReduceOp::kProd ? 1.0 : 0.0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const double x = xs[k];
    sumAbs += std::fabs(x);
    prodAbs *= std::fabs(x);
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        acc += x;
        break;
      case ReduceOp::kProd:
        acc *= x;
        break;
      case ReduceOp::kMin:
        acc = k == 0 ? x : std::min(acc, x);
        break;
      case ReduceOp::kMax:
        acc = k == 0 ? x : std::max(acc, x);
        break;
    }
  }
  const auto n = static_cast<double>(xs.size());
  if (op == ReduceOp::kAvg) acc = core::isFloatingPoint(t) ? acc / n : std::trunc(acc / n);
  e.value = acc;
  if (core::isFloatingPoint(t) && op != ReduceOp::kMin && op != ReduceOp::kMax) {
    e.tolerance = n * epsOf(t) * (op == ReduceOp::kProd ? prodAbs : sumAbs);
  }
  return e;
}

/// Checks element `index` of `buf` against `e`; returns "" or what is wrong.
inline std::string checkElement(DataType t, const std::vector<std::byte>& buf, std::uint64_t index, const Expected& e) {
  const double got = core::loadAsDouble(t, buf.data(), index);
  if (std::fabs(got - e.value) <= e.tolerance) return {};
  std::ostringstream os;
  os << "element " << index << ": got " << got << ", expected " << e.value << " (tolerance " << e.tolerance << ")";
  return os.str();
}

/// Validates the Program (the race check runs below the validator's op limit) and interprets it with
/// two seeds, which must agree byte for byte.
inline void runChecked(const core::ProgramSource& program, std::vector<core::InterpreterRank>& ranks, bool inPlace,
                       std::uint64_t seed) {
  const core::ValidationResult v = core::validateProgram(program);
  ASSERT_TRUE(v.ok()) << v.summary();
  const Status st = core::interpretProgramRepeated(program, ranks, 2, inPlace, seed);
  ASSERT_TRUE(st.ok()) << st.toString();
}

/// A readable case label for SCOPED_TRACE.
inline std::string describe(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed) {
  std::ostringstream os;
  os << collectiveName(a.kind) << '.' << algo << " p=" << a.nranks << " count=" << a.count
     << " dtype=" << core::dataTypeName(a.dtype) << " op=" << core::reduceOpName(a.op) << " chunk=" << a.chunkBytes
     << (a.inPlace ? " in-place" : "") << " seed=" << seed;
  if (!a.counts.empty()) {
    os << " counts=";
    for (std::uint64_t c : a.counts) os << c << ',';
  }
  if (!a.nodeOfRank.empty()) {
    os << " nodes=";
    for (int n : a.nodeOfRank) os << n << ',';
  }
  return os.str();
}

// ---- one case of each collective: buffers, run, check ---------------------------------------------------

/// The Program of a case. With `mixed`, a composite: odd ranks from the in-place build, even ranks from the
/// out-of-place one. The in-place flag is per rank in a real call (each rank passes its own buffers), so
/// the two builds must have the same header and the same protocol between ranks.
inline std::shared_ptr<const core::ProgramSource> programFor(const CollectiveArgs& a, const std::string& algo,
                                                             bool mixed) {
  if (!mixed) return buildProgram(a, algo);
  CollectiveArgs in = a;
  in.inPlace = true;
  CollectiveArgs notIn = a;
  notIn.inPlace = false;
  const auto pi = buildProgram(in, algo);
  const auto po = buildProgram(notIn, algo);
  EXPECT_EQ(pi->header(), po->header()) << "the in-place flag changes the header";
  std::vector<core::RankProgram> ranks(static_cast<std::size_t>(a.nranks));
  for (std::int32_t r = 0; r < a.nranks; ++r)
    ranks[static_cast<std::size_t>(r)] = r % 2 == 1 ? pi->rank(r) : po->rank(r);
  return std::make_shared<core::Program>(po->header(), std::move(ranks));
}

/// Whether rank r runs in place in a case.
inline bool rankInPlace(const CollectiveArgs& a, bool mixed, std::size_t r) {
  return a.inPlace && (!mixed || r % 2 == 1);
}

inline std::vector<std::uint64_t> blockSizes(const CollectiveArgs& a) {
  if (!a.counts.empty()) return a.counts;
  return std::vector<std::uint64_t>(static_cast<std::size_t>(a.nranks), a.count);
}

inline std::vector<std::uint64_t> prefixOf(const std::vector<std::uint64_t>& sizes) {
  std::vector<std::uint64_t> off(sizes.size() + 1, 0);
  for (std::size_t i = 0; i < sizes.size(); ++i) off[i + 1] = off[i] + sizes[i];
  return off;
}

/// All-reduce: every output element of every rank against the reference; ranks agree bit for bit; an
/// out-of-place input is left untouched.
///
/// In place shares one buffer, which the interpreter's in-place mode models exactly. Mixed (see
/// programFor) cannot use that mode; there an in-place rank gets its data in both buffers.
inline void checkAllReduce(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed, bool mixed = false) {
  SCOPED_TRACE(describe(a, algo, seed) + (mixed ? " mixed" : ""));
  const auto program = programFor(a, algo, mixed);
  const auto p = static_cast<std::size_t>(a.nranks);
  const std::uint64_t bytes = a.count * core::dataTypeSize(a.dtype);
  std::vector<std::vector<std::byte>> inputs;
  std::vector<core::InterpreterRank> ranks(p);
  for (std::size_t r = 0; r < p; ++r) {
    inputs.push_back(makeData(a.dtype, a.op, static_cast<std::int32_t>(r), 0, a.count));
    if (a.inPlace) {
      ranks[r].output = inputs[r];
      if (mixed) ranks[r].input = inputs[r];
    } else {
      ranks[r].input = inputs[r];
      ranks[r].output = sentinel(bytes);
    }
    if (mixed && !rankInPlace(a, mixed, r)) ranks[r].output = sentinel(bytes);
  }
  runChecked(*program, ranks, a.inPlace && !mixed, seed);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<double> xs(p);
  for (std::uint64_t i = 0; i < a.count; ++i) {
    for (std::size_t q = 0; q < p; ++q) xs[q] = core::loadAsDouble(a.dtype, inputs[q].data(), i);
    const Expected e = reduceReference(a.dtype, a.op, xs);
    const std::string why = checkElement(a.dtype, ranks[0].output, i, e);
    ASSERT_TRUE(why.empty()) << "rank 0 " << why;
  }
  for (std::size_t r = 1; r < p; ++r) ASSERT_EQ(ranks[r].output, ranks[0].output) << "rank " << r << " disagrees";
  if (!a.inPlace || mixed) {
    for (std::size_t r = 0; r < p; ++r) ASSERT_EQ(ranks[r].input, inputs[r]) << "rank " << r << " input changed";
  }
}

/// Reduce-scatter(v): rank r's output is block r reduced over all inputs.
///
/// In place follows NCCL's (and the communicator's) convention: output == input + offset of block r. The
/// interpreter's in-place mode shares a base pointer instead, so the aliasing is emulated: the output starts
/// with block r, and block r of the separate input holds garbage that a Program must never read (it has to
/// read the shared bytes through the output).
inline void checkReduceScatter(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed,
                               bool mixed = false) {
  SCOPED_TRACE(describe(a, algo, seed) + (mixed ? " mixed" : ""));
  const auto program = programFor(a, algo, mixed);
  const auto p = static_cast<std::size_t>(a.nranks);
  const std::uint64_t es = core::dataTypeSize(a.dtype);
  const std::vector<std::uint64_t> sizes = blockSizes(a);
  const std::vector<std::uint64_t> off = prefixOf(sizes);
  std::vector<std::vector<std::byte>> inputs;
  std::vector<core::InterpreterRank> ranks(p);
  for (std::size_t r = 0; r < p; ++r) {
    inputs.push_back(makeData(a.dtype, a.op, static_cast<std::int32_t>(r), 0, off.back()));
    ranks[r].input = inputs[r];
    if (rankInPlace(a, mixed, r)) {
      const auto own = inputs[r].begin() + static_cast<std::ptrdiff_t>(off[r] * es);
      ranks[r].output.assign(own, own + static_cast<std::ptrdiff_t>(sizes[r] * es));
      std::fill_n(ranks[r].input.begin() + static_cast<std::ptrdiff_t>(off[r] * es), sizes[r] * es, std::byte{0x7f});
    } else {
      ranks[r].output = sentinel(sizes[r] * es);
    }
  }
  std::vector<std::vector<std::byte>> before(p);
  for (std::size_t r = 0; r < p; ++r) before[r] = ranks[r].input;
  runChecked(*program, ranks, false, seed);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<double> xs(p);
  for (std::size_t r = 0; r < p; ++r) {
    for (std::uint64_t i = 0; i < sizes[r]; ++i) {
      for (std::size_t q = 0; q < p; ++q) xs[q] = core::loadAsDouble(a.dtype, inputs[q].data(), off[r] + i);
      const std::string why = checkElement(a.dtype, ranks[r].output, i, reduceReference(a.dtype, a.op, xs));
      ASSERT_TRUE(why.empty()) << "rank " << r << ' ' << why;
    }
    ASSERT_EQ(ranks[r].input, before[r]) << "rank " << r << " input changed";
  }
}

/// All-gather(v): every rank's output holds every rank's input at its block offset, byte for byte.
///
/// In place follows NCCL's convention, input == output + offset of block r: the output starts with block r
/// and the separate input holds garbage that a Program must never read.
inline void checkAllGather(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed, bool mixed = false) {
  SCOPED_TRACE(describe(a, algo, seed) + (mixed ? " mixed" : ""));
  const auto program = programFor(a, algo, mixed);
  const auto p = static_cast<std::size_t>(a.nranks);
  const std::uint64_t es = core::dataTypeSize(a.dtype);
  const std::vector<std::uint64_t> sizes = blockSizes(a);
  const std::vector<std::uint64_t> off = prefixOf(sizes);
  std::vector<std::vector<std::byte>> inputs;
  std::vector<core::InterpreterRank> ranks(p);
  for (std::size_t r = 0; r < p; ++r) {
    inputs.push_back(makeData(a.dtype, a.op, static_cast<std::int32_t>(r), 0, sizes[r]));
    ranks[r].output = sentinel(off.back() * es);
    if (rankInPlace(a, mixed, r)) {
      std::copy(inputs[r].begin(), inputs[r].end(), ranks[r].output.begin() + static_cast<std::ptrdiff_t>(off[r] * es));
      ranks[r].input = std::vector<std::byte>(inputs[r].size(), std::byte{0x7f});
    } else {
      ranks[r].input = inputs[r];
    }
  }
  runChecked(*program, ranks, false, seed);
  if (::testing::Test::HasFatalFailure()) return;
  for (std::size_t r = 0; r < p; ++r) {
    for (std::size_t q = 0; q < p; ++q) {
      const auto begin = ranks[r].output.begin() + static_cast<std::ptrdiff_t>(off[q] * es);
      ASSERT_TRUE(std::equal(inputs[q].begin(), inputs[q].end(), begin)) << "rank " << r << " block " << q;
    }
    if (!rankInPlace(a, mixed, r)) {
      ASSERT_EQ(ranks[r].input, inputs[r]) << "rank " << r << " input changed";
    }
  }
}

/// All-to-all: block q of rank r's output is block r of rank q's input, byte for byte.
inline void checkAllToAll(const CollectiveArgs& a, const std::string& algo, std::uint64_t seed, bool mixed = false) {
  SCOPED_TRACE(describe(a, algo, seed) + (mixed ? " mixed" : ""));
  const auto program = programFor(a, algo, mixed);
  const auto p = static_cast<std::size_t>(a.nranks);
  const std::uint64_t n = a.count * core::dataTypeSize(a.dtype);
  std::vector<std::vector<std::byte>> inputs;
  std::vector<core::InterpreterRank> ranks(p);
  for (std::size_t r = 0; r < p; ++r) {
    inputs.push_back(makeData(a.dtype, a.op, static_cast<std::int32_t>(r), 0, a.count * p));
    if (rankInPlace(a, mixed, r)) {
      ranks[r].output = inputs[r];
      if (mixed) ranks[r].input = std::vector<std::byte>(inputs[r].size(), std::byte{0x7f});
    } else {
      ranks[r].input = inputs[r];
      ranks[r].output = sentinel(n * p);
    }
  }
  runChecked(*program, ranks, a.inPlace && !mixed, seed);
  if (::testing::Test::HasFatalFailure()) return;
  for (std::size_t r = 0; r < p; ++r) {
    for (std::size_t q = 0; q < p; ++q) {
      const auto want = inputs[q].begin() + static_cast<std::ptrdiff_t>(r * n);
      const auto got = ranks[r].output.begin() + static_cast<std::ptrdiff_t>(q * n);
      ASSERT_TRUE(std::equal(want, want + static_cast<std::ptrdiff_t>(n), got)) << "rank " << r << " block " << q;
    }
    if (!rankInPlace(a, mixed, r)) {
      ASSERT_EQ(ranks[r].input, inputs[r]) << "rank " << r << " input changed";
    }
  }
}

/// Runs `check` for every rank count x count x placement, rotating data types, ops and chunk sizes by the
/// running case number `g` (shared across calls so that algorithms together meet every pair).
template <typename Check>
void sweep(CollectiveKind kind, const std::string& algo, bool inPlaceToo, std::uint64_t& g, std::uint64_t seedBase,
           Check check) {
  for (std::int32_t p : kRankCounts) {
    for (std::uint64_t count : kCounts) {
      for (int place = 0; place < (inPlaceToo ? 2 : 1); ++place) {
        CollectiveArgs a;
        a.kind = kind;
        a.nranks = p;
        a.count = count;
        a.inPlace = place == 1;
        a.dtype = dtypeOf(g);
        a.op = opOf(g);
        a.chunkBytes = chunkOf(g);
        check(a, algo, seedBase + g, false);
        if (::testing::Test::HasFatalFailure()) return;
        if (count > 0) ++g;
      }
    }
  }
}

}  // namespace copro::collectives::harness
