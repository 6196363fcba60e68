// Reduction and copy kernels against element-wise scalar references.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/reduce.hpp"

namespace copro::core {
namespace detail {
// Defined in core/src/reduce.cpp, deliberately not in a public header: restricts the kernels to the
// portable baseline code so both it and the run-time dispatched paths (F16C for float16) get tested.
void setReduceBaselineOnlyForTesting(bool baselineOnly) noexcept;
}  // namespace detail

namespace {

/// Runs the kernels on the portable code path for the lifetime of the object.
class BaselineOnly {
 public:
  BaselineOnly() { detail::setReduceBaselineOnlyForTesting(true); }
  ~BaselineOnly() { detail::setReduceBaselineOnlyForTesting(false); }
  BaselineOnly(const BaselineOnly&) = delete;
  BaselineOnly& operator=(const BaselineOnly&) = delete;
};

constexpr ReduceOp kAllOps[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax, ReduceOp::kAvg};

bool isNarrow(DataType t) {
  return t == DataType::kFloat16 || t == DataType::kBfloat16 || t == DataType::kFloat8E4M3 ||
         t == DataType::kFloat8E5M2;
}

std::string caseName(DataType t, ReduceOp op, int nsrcs, std::size_t count, std::uint32_t divisor) {
  return std::string(dataTypeName(t)) + " " + std::string(reduceOpName(op)) + " nsrcs=" + std::to_string(nsrcs) +
         " count=" + std::to_string(count) + " divisor=" + std::to_string(divisor);
}

/// A byte buffer whose data starts `offset` bytes past a 64-byte boundary, with guard bytes before
/// and after it.
class Buffer {
 public:
  static constexpr std::size_t kGuard = 64;
  static constexpr unsigned char kGuardByte = 0xa5;
  Buffer(std::size_t bytes, std::size_t offset)
      : storage_(kGuard + 64 + offset + bytes + kGuard, kGuardByte), bytes_(bytes) {
    const auto base = reinterpret_cast<std::uintptr_t>(storage_.data() + kGuard);
    data_ = storage_.data() + kGuard + ((64 - base % 64) % 64) + offset;
  }
  unsigned char* data() { return data_; }
  [[nodiscard]] const unsigned char* data() const { return data_; }
  [[nodiscard]] bool guardIntact() const {
    for (std::size_t i = 0; i < kGuard; ++i) {
      if (data_[bytes_ + i] != kGuardByte) return false;
    }
    return true;
  }

 private:
  std::vector<unsigned char> storage_;
  unsigned char* data_;
  std::size_t bytes_;
};

/// Random contents: full-range bits for integers; for floats mostly moderate values with some
/// NaN/inf/zero mixed in (so min/max NaN propagation and inf arithmetic are exercised).
void fillRandom(DataType t, unsigned char* p, std::size_t count, std::mt19937_64& rng) {
  const std::size_t size = dataTypeSize(t);
  if (!isFloatingPoint(t)) {
    for (std::size_t i = 0; i < count * size; ++i) p[i] = static_cast<unsigned char>(rng());
    return;
  }
  std::uniform_real_distribution<double> value(-6.0, 6.0);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t pick = rng() % 256;
    double v = value(rng);
    if (pick == 0) v = std::numeric_limits<double>::quiet_NaN();
    if (pick == 1) v = std::numeric_limits<double>::infinity();
    if (pick == 2) v = -std::numeric_limits<double>::infinity();
    if (pick == 3) v = 0.0;
    if (pick == 4) v = -0.0;
    if (pick >= 5 && pick < 20 && isNarrow(t)) {
      // Raw bit patterns: subnormals, the largest values, NaN encodings.
      for (std::size_t b = 0; b < size; ++b) p[i * size + b] = static_cast<unsigned char>(rng());
      continue;
    }
    storeFromDouble(t, p, i, v);
  }
}

// ---------------------------------------------------------------------------------------------
// Scalar references. Integers: computed in 64-bit unsigned arithmetic (wrapping modulo 2^64 and
// then truncated, which is wrapping modulo 2^bits). Floats: a left fold in the element type, or in
// float32 through the scalar conversions for the narrow formats; min/max return NaN if any input is.

struct Expected {
  bool nan = false;
  std::uint64_t bits = 0;
};

template <class T>
T loadAt(const void* p, std::size_t i) {
  T v;
  std::memcpy(&v, static_cast<const unsigned char*>(p) + i * sizeof(T), sizeof(T));
  return v;
}

template <class T>
std::uint64_t bitsOf(T v) {
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

template <class T>
Expected referenceInt(ReduceOp op, const void* const* srcs, int nsrcs, std::size_t i, std::uint32_t divisor) {
  // Sign-extend signed values so the 64-bit wrap-around matches the narrow one.
  const auto widen = [](T v) {
    return static_cast<std::uint64_t>(
        static_cast<std::conditional_t<std::is_signed_v<T>, std::int64_t, std::uint64_t>>(v));
  };
  T best = loadAt<T>(srcs[0], i);
  std::uint64_t acc = widen(best);
  for (int k = 1; k < nsrcs; ++k) {
    const T v = loadAt<T>(srcs[k], i);
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        acc += widen(v);
        break;
      case ReduceOp::kProd:
        acc *= widen(v);
        break;
      case ReduceOp::kMin:
        best = v < best ? v : best;
        break;
      case ReduceOp::kMax:
        best = v > best ? v : best;
        break;
    }
  }
  T r = (op == ReduceOp::kMin || op == ReduceOp::kMax) ? best : static_cast<T>(acc);
  if (divisor > 0) {
    if constexpr (std::is_signed_v<T>) {
      r = static_cast<T>(static_cast<std::int64_t>(r) / static_cast<std::int64_t>(divisor));
    } else {
      r = static_cast<T>(static_cast<std::uint64_t>(r) / divisor);
    }
  }
  return {false, bitsOf(r)};
}

template <class F>
F combineFloat(ReduceOp op, F a, F b) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return a + b;
    case ReduceOp::kProd:
      return a * b;
    case ReduceOp::kMin:
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<F>::quiet_NaN();
      return b < a ? b : a;
    case ReduceOp::kMax:
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<F>::quiet_NaN();
      return b > a ? b : a;
  }
  return a;
}

template <class F>
Expected referenceFloat(ReduceOp op, const void* const* srcs, int nsrcs, std::size_t i, std::uint32_t divisor) {
  F acc = loadAt<F>(srcs[0], i);
  for (int k = 1; k < nsrcs; ++k) acc = combineFloat(op, acc, loadAt<F>(srcs[k], i));
  if (divisor > 0) acc = acc / static_cast<F>(divisor);
  return {std::isnan(acc), bitsOf(acc)};
}

Expected referenceNarrow(DataType t, ReduceOp op, const void* const* srcs, int nsrcs, std::size_t i,
                         std::uint32_t divisor) {
  const std::size_t size = dataTypeSize(t);
  const auto raw = [&](int k) {
    std::uint32_t v = 0;
    std::memcpy(&v, static_cast<const unsigned char*>(srcs[k]) + i * size, size);
    return v;
  };
  if (nsrcs == 1 && divisor == 0) return {false, raw(0)};  // a single source is copied bit for bit
  const auto toF = [&](std::uint32_t v) {
    switch (t) {
      case DataType::kFloat16:
        return halfToFloat(static_cast<std::uint16_t>(v));
      case DataType::kBfloat16:
        return bfloat16ToFloat(static_cast<std::uint16_t>(v));
      case DataType::kFloat8E4M3:
        return fp8e4m3ToFloat(static_cast<std::uint8_t>(v));
      default:
        return fp8e5m2ToFloat(static_cast<std::uint8_t>(v));
    }
  };
  float acc = toF(raw(0));
  for (int k = 1; k < nsrcs; ++k) acc = combineFloat(op, acc, toF(raw(k)));
  if (divisor > 0) acc = acc / static_cast<float>(divisor);
  std::uint32_t bits = 0;
  switch (t) {
    case DataType::kFloat16:
      bits = floatToHalf(acc);
      break;
    case DataType::kBfloat16:
      bits = floatToBfloat16(acc);
      break;
    case DataType::kFloat8E4M3:
      bits = floatToFp8e4m3(acc);
      break;
    default:
      bits = floatToFp8e5m2(acc);
      break;
  }
  return {std::isnan(acc), bits};
}

Expected reference(DataType t, ReduceOp op, const void* const* srcs, int nsrcs, std::size_t i, std::uint32_t divisor) {
  switch (t) {
    case DataType::kInt8:
      return referenceInt<std::int8_t>(op, srcs, nsrcs, i, divisor);
    case DataType::kUint8:
      return referenceInt<std::uint8_t>(op, srcs, nsrcs, i, divisor);
    case DataType::kInt32:
      return referenceInt<std::int32_t>(op, srcs, nsrcs, i, divisor);
    case DataType::kUint32:
      return referenceInt<std::uint32_t>(op, srcs, nsrcs, i, divisor);
    case DataType::kInt64:
      return referenceInt<std::int64_t>(op, srcs, nsrcs, i, divisor);
    case DataType::kUint64:
      return referenceInt<std::uint64_t>(op, srcs, nsrcs, i, divisor);
    case DataType::kFloat32:
      return referenceFloat<float>(op, srcs, nsrcs, i, divisor);
    case DataType::kFloat64:
      return referenceFloat<double>(op, srcs, nsrcs, i, divisor);
    default:
      return referenceNarrow(t, op, srcs, nsrcs, i, divisor);
  }
}

/// Checks every element of `dst` against the reference; returns the first mismatch as a message.
std::string checkAgainstReference(DataType t, ReduceOp op, const void* const* srcs, int nsrcs, std::size_t count,
                                  std::uint32_t divisor, const void* dst) {
  const std::size_t size = dataTypeSize(t);
  for (std::size_t i = 0; i < count; ++i) {
    const Expected want = reference(t, op, srcs, nsrcs, i, divisor);
    std::uint64_t got = 0;
    std::memcpy(&got, static_cast<const unsigned char*>(dst) + i * size, size);
    if (want.nan) {
      if (!std::isnan(loadAsDouble(t, dst, i))) return "element " + std::to_string(i) + ": expected NaN";
    } else if (got != want.bits) {
      return "element " + std::to_string(i) + ": got bits " + std::to_string(got) + " (" +
             std::to_string(loadAsDouble(t, dst, i)) + "), want " + std::to_string(want.bits);
    }
  }
  return {};
}

struct Sources {
  std::vector<Buffer> buffers;
  std::vector<const void*> ptrs;
};

Sources makeSources(DataType t, int nsrcs, std::size_t count, std::mt19937_64& rng, std::size_t offsetStep = 0) {
  Sources s;
  s.buffers.reserve(static_cast<std::size_t>(nsrcs));
  for (int k = 0; k < nsrcs; ++k) {
    s.buffers.emplace_back(count * dataTypeSize(t), (static_cast<std::size_t>(k) * offsetStep) % 64);
    fillRandom(t, s.buffers.back().data(), count, rng);
  }
  for (const Buffer& b : s.buffers) s.ptrs.push_back(b.data());
  return s;
}

// ---------------------------------------------------------------------------------------------

/// reduceInto for every op, 1..5 sources, odd counts and divisors 0 and 3, against the reference.
void sweepAgainstReference(DataType t, std::mt19937_64& rng) {
  for (const ReduceOp op : kAllOps) {
    ASSERT_TRUE(reduceSupported(t, op));
    for (int nsrcs = 1; nsrcs <= 5; ++nsrcs) {
      for (const std::size_t count : {0, 1, 7, 33, 4097}) {
        for (const std::uint32_t divisor : {0u, 3u}) {
          SCOPED_TRACE(caseName(t, op, nsrcs, count, divisor));
          Sources s = makeSources(t, nsrcs, count, rng, dataTypeSize(t));
          Buffer dst(count * dataTypeSize(t), 0);
          reduceInto(dst.data(), s.ptrs.data(), nsrcs, count, t, op, divisor);
          ASSERT_EQ(checkAgainstReference(t, op, s.ptrs.data(), nsrcs, count, divisor, dst.data()), "");
          ASSERT_TRUE(dst.guardIntact());
        }
      }
    }
  }
}

TEST(ReduceInto, EveryTypeOpSourceCountAndDivisorMatchesReference) {
  const std::uint64_t seed = 12345;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int ti = 0; ti < kNumDataTypes; ++ti) sweepAgainstReference(static_cast<DataType>(ti), rng);
}

TEST(ReduceInto, Float16PortablePathMatchesReference) {
  const std::uint64_t seed = 54321;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const BaselineOnly baseline;
  sweepAgainstReference(DataType::kFloat16, rng);
}

/// Every op on a buffer pairing each bit pattern of a narrow type with another pattern (all 256x256
/// pairs for fp8), on both code paths: the vector conversions against the scalar ones.
TEST(ReduceInto, NarrowFloatsEveryBitPatternMatchesReference) {
  for (const bool baselineOnly : {false, true}) {
    if (baselineOnly) detail::setReduceBaselineOnlyForTesting(true);
    for (const DataType t : {DataType::kFloat16, DataType::kBfloat16, DataType::kFloat8E4M3, DataType::kFloat8E5M2}) {
      if (baselineOnly && t != DataType::kFloat16) continue;  // only float16 has a dispatched path
      const std::size_t size = dataTypeSize(t);
      const std::size_t count = 65536;
      std::vector<unsigned char> a(count * size), b(count * size), d(count * size);
      for (std::size_t i = 0; i < count; ++i) {
        if (size == 2) {
          const auto x = static_cast<std::uint16_t>(i);
          const auto y = static_cast<std::uint16_t>(i * 40503u + 12345u);  // odd multiplier: a permutation
          std::memcpy(&a[i * 2], &x, 2);
          std::memcpy(&b[i * 2], &y, 2);
        } else {
          a[i] = static_cast<unsigned char>(i & 0xff);
          b[i] = static_cast<unsigned char>(i >> 8);
        }
      }
      const void* srcs[] = {a.data(), b.data()};
      for (const ReduceOp op : kAllOps) {
        for (const std::uint32_t divisor : {0u, 7u}) {
          SCOPED_TRACE(caseName(t, op, 2, count, divisor) + (baselineOnly ? " baseline" : " dispatched"));
          reduceInto(d.data(), srcs, 2, count, t, op, divisor);
          ASSERT_EQ(checkAgainstReference(t, op, srcs, 2, count, divisor, d.data()), "");
        }
      }
      // One source with a divisor of 1: a plain round trip through float32.
      reduceInto(d.data(), srcs, 1, count, t, ReduceOp::kSum, 1);
      ASSERT_EQ(checkAgainstReference(t, ReduceOp::kSum, srcs, 1, count, 1, d.data()), "");
    }
  }
  detail::setReduceBaselineOnlyForTesting(false);
}

TEST(ReduceInto, Float32TwoSourceSumEqualsRoundedFloat64Sum) {
  const std::uint64_t seed = 99;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> expo(-40.0, 40.0);
  const std::size_t count = 10007;
  std::vector<float> a(count), b(count), d(count);
  for (std::size_t i = 0; i < count; ++i) {
    a[i] = static_cast<float>(((rng() & 1) ? -1 : 1) * std::exp2(expo(rng)));
    b[i] = static_cast<float>(((rng() & 1) ? -1 : 1) * std::exp2(expo(rng)));
  }
  const void* srcs[] = {a.data(), b.data()};
  reduceInto(d.data(), srcs, 2, count, DataType::kFloat32, ReduceOp::kSum);
  for (std::size_t i = 0; i < count; ++i) {
    ASSERT_EQ(d[i], static_cast<float>(static_cast<double>(a[i]) + static_cast<double>(b[i]))) << i;
  }
  // Five sources: within the bound of four float32 roundings of the float64 reference.
  std::vector<std::vector<float>> more(5, std::vector<float>(count));
  std::uniform_real_distribution<float> value(-100.0f, 100.0f);
  std::vector<const void*> ptrs;
  for (auto& v : more) {
    for (float& x : v) x = value(rng);
    ptrs.push_back(v.data());
  }
  reduceInto(d.data(), ptrs.data(), 5, count, DataType::kFloat32, ReduceOp::kSum);
  for (std::size_t i = 0; i < count; ++i) {
    double exact = 0.0;
    double magnitude = 0.0;
    for (const auto& v : more) {
      exact += v[i];
      magnitude += std::fabs(v[i]);
    }
    ASSERT_NEAR(d[i], exact, 4 * magnitude * std::numeric_limits<float>::epsilon()) << i;
  }
}

TEST(ReduceInto, AvgDividesAndTruncatesTowardZero) {
  {
    const std::int32_t a[] = {-7, 7, -8, 1, -1, -2147483647, 2147483647, -5};
    const std::int32_t b[] = {0, 0, 0, 0, 0, -1, 0, 5};
    std::int32_t d[8];
    const void* srcs[] = {a, b};
    reduceInto(d, srcs, 2, 8, DataType::kInt32, ReduceOp::kAvg, 2);
    const std::int32_t want[] = {-3, 3, -4, 0, 0, -1073741824, 1073741823, 0};
    for (int i = 0; i < 8; ++i) EXPECT_EQ(d[i], want[i]) << i;
    // kSum with a divisor is the same; kAvg without one is a sum.
    reduceInto(d, srcs, 2, 8, DataType::kInt32, ReduceOp::kSum, 2);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(d[i], want[i]) << i;
    reduceInto(d, srcs, 2, 8, DataType::kInt32, ReduceOp::kAvg, 0);
    EXPECT_EQ(d[0], -7);
    EXPECT_EQ(d[5], std::numeric_limits<std::int32_t>::min());
  }
  {
    const std::int8_t a[] = {100, -100, -7, 127};
    const std::int8_t b[] = {100, -100, 0, 127};
    const std::int8_t c[] = {0, 0, 0, 127};
    std::int8_t d[4];
    const void* srcs[] = {a, b, c};
    reduceInto(d, srcs, 3, 4, DataType::kInt8, ReduceOp::kAvg, 3);
    // 200 wraps to -56, -200 to 56, 381 to 125; then truncating division by 3.
    EXPECT_EQ(d[0], -18);
    EXPECT_EQ(d[1], 18);
    EXPECT_EQ(d[2], -2);
    EXPECT_EQ(d[3], 41);
  }
  {
    const std::int64_t a[] = {-9, std::numeric_limits<std::int64_t>::min(), 9};
    const std::int64_t b[] = {0, 0, 0};
    std::int64_t d[3];
    const void* srcs[] = {a, b};
    reduceInto(d, srcs, 2, 3, DataType::kInt64, ReduceOp::kAvg, 4);
    EXPECT_EQ(d[0], -2);
    EXPECT_EQ(d[1], std::numeric_limits<std::int64_t>::min() / 4);
    EXPECT_EQ(d[2], 2);
  }
  {
    const std::uint32_t a[] = {4000000000u, 7u};
    const std::uint32_t b[] = {4000000000u, 0u};
    std::uint32_t d[2];
    const void* srcs[] = {a, b};
    reduceInto(d, srcs, 2, 2, DataType::kUint32, ReduceOp::kAvg, 2);
    EXPECT_EQ(d[0], static_cast<std::uint32_t>(8000000000ull) / 2);  // wraps first, then divides
    EXPECT_EQ(d[1], 3u);
  }
  {
    // Narrow floats divide in float32 and round once: (1 + 2^-10) * 3 / 3 is exact in float32.
    const std::uint16_t one = floatToHalf(1.0f + std::ldexp(1.0f, -10));
    const std::uint16_t a[] = {one, floatToHalf(-3.0f)};
    std::uint16_t d[2];
    const void* srcs[] = {a, a, a};
    reduceInto(d, srcs, 3, 2, DataType::kFloat16, ReduceOp::kAvg, 3);
    EXPECT_EQ(d[0], one);
    EXPECT_EQ(halfToFloat(d[1]), -3.0f);
  }
}

TEST(ReduceInto, FloatMinMaxPropagateNaNFromAnySource) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const ReduceOp op : {ReduceOp::kMin, ReduceOp::kMax}) {
    for (int nanAt = 0; nanAt < 5; ++nanAt) {
      std::vector<std::vector<float>> v(5, std::vector<float>(37, 1.0f));
      for (int k = 0; k < 5; ++k) v[static_cast<std::size_t>(k)][5] = static_cast<float>(k);
      v[static_cast<std::size_t>(nanAt)][5] = nan;
      std::vector<const void*> ptrs;
      ptrs.reserve(v.size());
      for (auto& x : v) ptrs.push_back(x.data());
      std::vector<float> d(37);
      reduceInto(d.data(), ptrs.data(), 5, 37, DataType::kFloat32, op);
      EXPECT_TRUE(std::isnan(d[5])) << reduceOpName(op) << " NaN in source " << nanAt;
      EXPECT_EQ(d[4], 1.0f);
      // The same through a narrow type.
      std::vector<std::vector<std::uint16_t>> h(5, std::vector<std::uint16_t>(37, floatToBfloat16(1.0f)));
      h[static_cast<std::size_t>(nanAt)][5] = floatToBfloat16(nan);
      std::vector<const void*> hp;
      hp.reserve(h.size());
      for (auto& x : h) hp.push_back(x.data());
      std::vector<std::uint16_t> hd(37);
      reduceInto(hd.data(), hp.data(), 5, 37, DataType::kBfloat16, op);
      EXPECT_TRUE(std::isnan(bfloat16ToFloat(hd[5]))) << reduceOpName(op) << " bf16 NaN in source " << nanAt;
    }
  }
}

TEST(ReduceInto, NarrowFloatsAccumulateInFloat32AcrossAllSources) {
  // 2048 + 1 + 1 in float16: rounding after each step would give 2048 twice (ties to even); one
  // rounding at the end gives 2050.
  const std::uint16_t big = floatToHalf(2048.0f);
  const std::uint16_t one = floatToHalf(1.0f);
  const std::uint16_t a[] = {big};
  const std::uint16_t b[] = {one};
  std::uint16_t d[1];
  const void* srcs[] = {a, b, b};
  reduceInto(d, srcs, 3, 1, DataType::kFloat16, ReduceOp::kSum);
  EXPECT_EQ(halfToFloat(d[0]), 2050.0f);
  // fp8 e4m3 sums saturate at 448 rather than overflowing to NaN.
  const std::uint8_t e[] = {floatToFp8e4m3(448.0f)};
  std::uint8_t ed[1];
  const void* esrcs[] = {e, e};
  reduceInto(ed, esrcs, 2, 1, DataType::kFloat8E4M3, ReduceOp::kSum);
  EXPECT_EQ(ed[0], 0x7e);
  // e5m2 overflows to inf.
  const std::uint8_t f[] = {floatToFp8e5m2(57344.0f)};
  const void* fsrcs[] = {f, f};
  reduceInto(ed, fsrcs, 2, 1, DataType::kFloat8E5M2, ReduceOp::kSum);
  EXPECT_EQ(ed[0], 0x7c);
}

TEST(ReduceInto, InPlaceWithDestinationAliasingAnySource) {
  const std::uint64_t seed = 4242;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::size_t count = 8209;  // two cache blocks of 4 KiB and more for every element size
  for (int ti = 0; ti < kNumDataTypes; ++ti) {
    const auto t = static_cast<DataType>(ti);
    const std::size_t bytes = count * dataTypeSize(t);
    for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      for (const int nsrcs : {2, 5, 7}) {  // one pass; first pass + accumulate1; + accumulate2
        for (const std::uint32_t divisor : {0u, 5u}) {
          Sources s = makeSources(t, nsrcs, count, rng);
          Buffer expected(bytes, 0);
          reduceInto(expected.data(), s.ptrs.data(), nsrcs, count, t, op, divisor);
          for (int alias = 0; alias < nsrcs; ++alias) {
            SCOPED_TRACE(caseName(t, op, nsrcs, count, divisor) + " dst == srcs[" + std::to_string(alias) + "]");
            std::vector<unsigned char> saved(s.buffers[static_cast<std::size_t>(alias)].data(),
                                             s.buffers[static_cast<std::size_t>(alias)].data() + bytes);
            void* dst = s.buffers[static_cast<std::size_t>(alias)].data();
            reduceInto(dst, s.ptrs.data(), nsrcs, count, t, op, divisor);
            ASSERT_EQ(std::memcmp(dst, expected.data(), bytes), 0);
            std::memcpy(dst, saved.data(), bytes);
          }
        }
      }
    }
  }
}

TEST(ReduceInto, IgnoresEmptyAndInvalidRequests) {
  float a[4] = {1, 2, 3, 4};
  float d[4] = {9, 9, 9, 9};
  const void* srcs[] = {a};
  reduceInto(d, srcs, 0, 4, DataType::kFloat32, ReduceOp::kSum);
  reduceInto(d, srcs, 1, 0, DataType::kFloat32, ReduceOp::kSum);
  EXPECT_EQ(d[0], 9.0f);
  EXPECT_FALSE(reduceSupported(static_cast<DataType>(kNumDataTypes), ReduceOp::kSum));
  EXPECT_FALSE(reduceSupported(DataType::kFloat32, static_cast<ReduceOp>(kNumReduceOps)));
  // One source with no divisor is a copy.
  reduceInto(d, srcs, 1, 4, DataType::kFloat32, ReduceOp::kMin);
  EXPECT_EQ(d[3], 4.0f);
}

// ---------------------------------------------------------------------------------------------

TEST(ReduceToMany, EveryDestinationGetsTheReduction) {
  const std::uint64_t seed = 777;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int ti = 0; ti < kNumDataTypes; ++ti) {
    const auto t = static_cast<DataType>(ti);
    const std::size_t size = dataTypeSize(t);
    for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kMin, ReduceOp::kAvg}) {
      for (int ndsts = 1; ndsts <= 4; ++ndsts) {
        for (int nsrcs = 1; nsrcs <= 3; ++nsrcs) {
          for (const std::size_t count : {0, 1, 33, 5003}) {
            const std::uint32_t divisor = op == ReduceOp::kAvg ? static_cast<std::uint32_t>(nsrcs) : 0;
            SCOPED_TRACE(caseName(t, op, nsrcs, count, divisor) + " ndsts=" + std::to_string(ndsts));
            Sources s = makeSources(t, nsrcs, count, rng, 3 * size);
            std::vector<Buffer> dsts;
            std::vector<void*> dp;
            dsts.reserve(static_cast<std::size_t>(ndsts));
            dp.reserve(static_cast<std::size_t>(ndsts));
            for (int j = 0; j < ndsts; ++j)
              dsts.emplace_back(count * size, (static_cast<std::size_t>(j) * 5 * size) % 64);
            for (Buffer& b : dsts) dp.push_back(b.data());
            reduceToMany(dp.data(), ndsts, s.ptrs.data(), nsrcs, count, t, op, divisor);
            for (int j = 0; j < ndsts; ++j) {
              ASSERT_EQ(
                  checkAgainstReference(t, op, s.ptrs.data(), nsrcs, count, divisor, dp[static_cast<std::size_t>(j)]),
                  "")
                  << "destination " << j;
              ASSERT_TRUE(dsts[static_cast<std::size_t>(j)].guardIntact()) << "destination " << j;
            }
          }
        }
      }
    }
  }
}

TEST(ReduceToMany, LargeUnalignedWithDestinationsAliasingSources) {
  const std::uint64_t seed = 31337;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::size_t count = (std::size_t{1} << 20) + 3;  // ~4 MiB of float32 per buffer: streaming path
  for (const DataType t : {DataType::kFloat32, DataType::kBfloat16}) {
    const std::size_t size = dataTypeSize(t);
    const std::size_t bytes = count * size;
    Sources s = makeSources(t, 3, count, rng, size);  // sources at 0, 1, 2 elements past 64 B
    Buffer expected(bytes, 0);
    reduceInto(expected.data(), s.ptrs.data(), 3, count, t, ReduceOp::kSum);
    ASSERT_EQ(checkAgainstReference(t, ReduceOp::kSum, s.ptrs.data(), 3, count, 0, expected.data()), "");
    const std::vector<unsigned char> saved0(s.buffers[0].data(), s.buffers[0].data() + bytes);
    const std::vector<unsigned char> saved2(s.buffers[2].data(), s.buffers[2].data() + bytes);
    for (int ndsts = 1; ndsts <= 4; ++ndsts) {
      // Destinations with one misalignment (streamed together) and with different ones.
      for (const bool sameAlignment : {true, false}) {
        SCOPED_TRACE(std::string(dataTypeName(t)) + " ndsts=" + std::to_string(ndsts) +
                     (sameAlignment ? " same alignment" : " mixed alignment"));
        std::vector<Buffer> dsts;
        std::vector<void*> dp;
        dsts.reserve(static_cast<std::size_t>(ndsts));
        dp.reserve(static_cast<std::size_t>(ndsts));
        for (int j = 0; j < ndsts; ++j)
          dsts.emplace_back(bytes, sameAlignment ? 3 * size : static_cast<std::size_t>(j + 1) * size);
        for (Buffer& b : dsts) dp.push_back(b.data());
        reduceToMany(dp.data(), ndsts, s.ptrs.data(), 3, count, t, ReduceOp::kSum);
        for (int j = 0; j < ndsts; ++j) {
          ASSERT_EQ(std::memcmp(dp[static_cast<std::size_t>(j)], expected.data(), bytes), 0) << "destination " << j;
          ASSERT_TRUE(dsts[static_cast<std::size_t>(j)].guardIntact()) << "destination " << j;
        }
        // In place: the last destination is the first source, the first one the third source.
        dp.back() = s.buffers[0].data();
        if (ndsts >= 2) dp[0] = s.buffers[2].data();
        reduceToMany(dp.data(), ndsts, s.ptrs.data(), 3, count, t, ReduceOp::kSum);
        for (int j = 0; j < ndsts; ++j) {
          ASSERT_EQ(std::memcmp(dp[static_cast<std::size_t>(j)], expected.data(), bytes), 0)
              << "in place, destination " << j;
        }
        std::memcpy(s.buffers[0].data(), saved0.data(), bytes);
        std::memcpy(s.buffers[2].data(), saved2.data(), bytes);
      }
    }
  }
}

TEST(ReduceToMany, MoreDestinationsThanOneStreamingGroup) {
  const std::uint64_t seed = 1618;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::size_t count = 70001;  // 280 KB of float32: the streaming path
  const std::size_t bytes = count * sizeof(float);
  Sources s = makeSources(DataType::kFloat32, 2, count, rng);
  Buffer expected(bytes, 0);
  reduceInto(expected.data(), s.ptrs.data(), 2, count, DataType::kFloat32, ReduceOp::kMax);
  std::vector<Buffer> dsts;
  std::vector<void*> dp;
  dsts.reserve(18);
  dp.reserve(18);
  for (int j = 0; j < 18; ++j) dsts.emplace_back(bytes, 8);
  for (Buffer& b : dsts) dp.push_back(b.data());
  reduceToMany(dp.data(), 18, s.ptrs.data(), 2, count, DataType::kFloat32, ReduceOp::kMax);
  for (int j = 0; j < 18; ++j) {
    EXPECT_EQ(std::memcmp(dp[static_cast<std::size_t>(j)], expected.data(), bytes), 0) << "destination " << j;
    EXPECT_TRUE(dsts[static_cast<std::size_t>(j)].guardIntact()) << "destination " << j;
  }
}

TEST(ReduceToMany, SmallInPlaceDestinations) {
  const std::uint64_t seed = 5150;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::size_t count = 9001;
  for (const DataType t : {DataType::kInt32, DataType::kFloat64, DataType::kFloat16}) {
    for (const int nsrcs : {2, 6}) {
      const std::size_t bytes = count * dataTypeSize(t);
      Sources s = makeSources(t, nsrcs, count, rng);
      Buffer expected(bytes, 0);
      reduceInto(expected.data(), s.ptrs.data(), nsrcs, count, t, ReduceOp::kMax);
      Buffer other(bytes, 7);
      // First destination is the last source: for wide types past the first pass, so it must
      // not be reduced into directly.
      void* dp[] = {s.buffers.back().data(), other.data(), s.buffers[0].data()};
      reduceToMany(dp, 3, s.ptrs.data(), nsrcs, count, t, ReduceOp::kMax);
      for (void* d : dp) EXPECT_EQ(std::memcmp(d, expected.data(), bytes), 0) << dataTypeName(t) << " nsrcs=" << nsrcs;
    }
  }
}

// ---------------------------------------------------------------------------------------------

TEST(StreamCopy, ThresholdIsWithinItsBounds) {
  const std::size_t t = streamCopyThreshold();
  EXPECT_GE(t, std::size_t{256} << 10);
  EXPECT_LE(t, std::size_t{16} << 20);
  EXPECT_EQ(t, streamCopyThreshold()) << "decided once";
}

TEST(StreamCopy, SizesAndAlignments) {
  const std::uint64_t seed = 2718;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::size_t t = streamCopyThreshold();
  ASSERT_GE(t, 256U << 10);
  ASSERT_LE(t, 16U << 20);
  // Both sides of the threshold (plain and non-temporal stores), and the smallest threshold.
  const std::size_t sizes[] = {
      0, 1, 15, 16, 17, 63, 64, 65, 4095, 262143, 262144, 262144 + 13, 1 << 20, (3 << 20) + 7, t - 1, t, t + 13};
  const std::pair<std::size_t, std::size_t> offsets[] = {{0, 0}, {1, 0}, {0, 3}, {5, 11}, {8, 8}, {15, 1}};
  for (const std::size_t bytes : sizes) {
    for (const auto& [srcOff, dstOff] : offsets) {
      SCOPED_TRACE("bytes=" + std::to_string(bytes) + " srcOff=" + std::to_string(srcOff) +
                   " dstOff=" + std::to_string(dstOff));
      Buffer src(bytes, srcOff);
      Buffer dst(bytes, dstOff);
      for (std::size_t i = 0; i < bytes; ++i) src.data()[i] = static_cast<unsigned char>(rng());
      streamCopy(dst.data(), src.data(), bytes);
      ASSERT_EQ(std::memcmp(dst.data(), src.data(), bytes), 0);
      ASSERT_TRUE(dst.guardIntact());
      // The byte before the destination is untouched too.
      ASSERT_EQ(dst.data()[-1], Buffer::kGuardByte);
    }
  }
  // Copying onto itself is a no-op.
  std::vector<unsigned char> same(1000, 3);
  streamCopy(same.data(), same.data(), same.size());
  EXPECT_EQ(same[999], 3);
}

}  // namespace
}  // namespace copro::core
