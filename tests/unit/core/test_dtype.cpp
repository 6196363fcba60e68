// Data type names, parsing and the scalar conversions, checked against an independent reference
// that rounds with frexp/ldexp/nearbyint in double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "copro/core/dtype.hpp"

namespace copro::core {
namespace {

// ---------------------------------------------------------------------------------------------
// Reference model of a narrow binary format (1 sign, E exponent, M mantissa bits).

struct Format {
  const char* name;
  int expBits;
  int mantBits;
  bool hasInf;  // IEEE-like; otherwise "fn": finite only, saturating, all-ones is NaN
  int bits() const { return 1 + expBits + mantBits; }
  int bias() const { return (1 << (expBits - 1)) - 1; }
  int emin() const { return 1 - bias(); }
  int emax() const { return hasInf ? (1 << expBits) - 2 - bias() : (1 << expBits) - 1 - bias(); }
  double maxFinite() const {
    // "fn" formats give up the all-ones mantissa in the top binade for NaN.
    const double topMant = hasInf ? 2.0 - std::ldexp(1.0, -mantBits) : 2.0 - std::ldexp(2.0, -mantBits);
    return std::ldexp(topMant, emax());
  }
};

/// Lets GoogleTest print the parameter by name rather than as raw bytes.
void PrintTo(const Format& f, std::ostream* os) {  // NOLINT(readability-identifier-naming): gtest hook
  *os << f.name;
}

constexpr Format kHalf{"float16", 5, 10, true};
constexpr Format kBf16{"bfloat16", 8, 7, true};
constexpr Format kE4M3{"float8e4m3", 4, 3, false};
constexpr Format kE5M2{"float8e5m2", 5, 2, true};

/// Value of a bit pattern, decoded from the definition.
double decodeRef(const Format& f, std::uint32_t bits) {
  const bool neg = (bits >> (f.expBits + f.mantBits)) & 1u;
  const std::uint32_t e = (bits >> f.mantBits) & ((1u << f.expBits) - 1u);
  const std::uint32_t m = bits & ((1u << f.mantBits) - 1u);
  double v;
  if (f.hasInf && e == (1u << f.expBits) - 1u) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (!f.hasInf && e == (1u << f.expBits) - 1u && m == (1u << f.mantBits) - 1u) {
    v = std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<double>(m), f.emin() - f.mantBits);
  } else {
    v = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -f.mantBits), static_cast<int>(e) - f.bias());
  }
  return neg ? -v : v;
}

/// Correctly rounded (nearest, ties to even) value of x in the format; overflow goes to inf
/// (IEEE-like) or saturates (fn). NaN stays NaN.
double roundRef(const Format& f, double x) {
  if (std::isnan(x)) return x;
  const double a = std::fabs(x);
  double r;
  if (std::isinf(a)) {
    r = f.hasInf ? a : f.maxFinite();
  } else {
    int ex = 0;
    std::frexp(a, &ex);  // a = m * 2^ex, m in [0.5, 1)
    const int e = std::max(ex - 1, f.emin());
    const double quantum = std::ldexp(1.0, e - f.mantBits);
    r = std::nearbyint(a / quantum) * quantum;  // an even multiple == an even mantissa
    if (r > f.maxFinite()) r = f.hasInf ? std::numeric_limits<double>::infinity() : f.maxFinite();
  }
  return std::signbit(x) ? -r : r;
}

float toFloat(const Format& f, std::uint32_t bits) {
  if (f.expBits == 5 && f.mantBits == 10) return halfToFloat(static_cast<std::uint16_t>(bits));
  if (f.expBits == 8) return bfloat16ToFloat(static_cast<std::uint16_t>(bits));
  if (f.expBits == 4) return fp8e4m3ToFloat(static_cast<std::uint8_t>(bits));
  return fp8e5m2ToFloat(static_cast<std::uint8_t>(bits));
}

std::uint32_t fromFloat(const Format& f, float x) {
  if (f.expBits == 5 && f.mantBits == 10) return floatToHalf(x);
  if (f.expBits == 8) return floatToBfloat16(x);
  if (f.expBits == 4) return floatToFp8e4m3(x);
  return floatToFp8e5m2(x);
}

/// Checks fromFloat(x) against the reference: same value and same sign (so -0 stays -0).
void expectRounds(const Format& f, float x) {
  const std::uint32_t bits = fromFloat(f, x);
  ASSERT_LT(bits, 1u << f.bits()) << f.name << " x=" << x;
  const double got = decodeRef(f, bits);
  const double want = roundRef(f, x);
  if (std::isnan(want)) {
    ASSERT_TRUE(std::isnan(got)) << f.name << " NaN input gave bits 0x" << std::hex << bits;
    ASSERT_EQ(std::signbit(got), std::signbit(x)) << f.name << " NaN sign";
    return;
  }
  ASSERT_EQ(got, want) << f.name << " x=" << x << " (bits 0x" << std::hex << std::bit_cast<std::uint32_t>(x)
                       << ") gave 0x" << bits;
  ASSERT_EQ(std::signbit(got), std::signbit(want)) << f.name << " x=" << x;
}

class NarrowFormatTest : public ::testing::TestWithParam<Format> {};

TEST_P(NarrowFormatTest, EveryPatternDecodesExactlyAndRoundTrips) {
  const Format f = GetParam();
  for (std::uint32_t bits = 0; bits < (1u << f.bits()); ++bits) {
    const float v = toFloat(f, bits);
    const double want = decodeRef(f, bits);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(v)) << f.name << " 0x" << std::hex << bits;
      ASSERT_EQ(std::signbit(v), std::signbit(want)) << f.name << " 0x" << std::hex << bits;
      ASSERT_TRUE(std::isnan(toFloat(f, fromFloat(f, v)))) << f.name << " NaN 0x" << std::hex << bits;
      continue;
    }
    ASSERT_EQ(static_cast<double>(v), want) << f.name << " 0x" << std::hex << bits;
    ASSERT_EQ(std::signbit(v), std::signbit(want)) << f.name << " 0x" << std::hex << bits;
    ASSERT_EQ(fromFloat(f, v), bits) << f.name << " round trip of 0x" << std::hex << bits;
  }
}

TEST_P(NarrowFormatTest, MidpointsTiesAndNeighboursRoundToNearestEven) {
  const Format f = GetParam();
  // Every pair of adjacent finite positive values: the exact midpoint (a tie, exact in float32
  // since these formats have fewer mantissa bits) and the floats just either side of it.
  for (std::uint32_t bits = 0; bits + 1 < (1u << (f.bits() - 1)); ++bits) {
    const double lo = decodeRef(f, bits);
    const double hi = decodeRef(f, bits + 1);
    if (std::isnan(hi) || std::isinf(hi)) break;
    const auto mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    for (const float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
      expectRounds(f, x);
      expectRounds(f, -x);
    }
    // The tie goes to the even mantissa.
    ASSERT_EQ(fromFloat(f, mid), (bits & 1u) ? bits + 1 : bits) << f.name << " tie above 0x" << std::hex << bits;
  }
}

TEST_P(NarrowFormatTest, RandomFloatsMatchReference) {
  const Format f = GetParam();
  const std::uint32_t seed = 20240611;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int i = 0; i < 1 << 20; ++i) {
    expectRounds(f, std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  }
  // Concentrate on the format's own range too, where random float32 bits rarely land.
  std::uniform_real_distribution<double> expo(f.emin() - f.mantBits - 2, f.emax() + 2);
  for (int i = 0; i < 1 << 18; ++i) {
    const auto x = static_cast<float>(std::exp2(expo(rng)));
    expectRounds(f, x);
    expectRounds(f, -x);
  }
  for (const float x : {0.0f, -0.0f, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                        std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                        -std::numeric_limits<float>::quiet_NaN()}) {
    expectRounds(f, x);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, NarrowFormatTest, ::testing::Values(kHalf, kBf16, kE4M3, kE5M2),
                         [](const ::testing::TestParamInfo<Format>& paramInfo) {
                           return std::string(paramInfo.param.name);
                         });

// ---------------------------------------------------------------------------------------------
// Named cases that document the rules.

TEST(DataTypeConversion, HalfKnownValues) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00);  // tie with the (virtual) 65536 goes up: inf
  EXPECT_EQ(floatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(floatToHalf(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -24)), 0x0001);                                 // smallest subnormal
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000);                                 // tie to even: 0
  EXPECT_EQ(floatToHalf(std::ldexp(3.0f, -25)), 0x0002);                                 // tie to even: 2
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);                          // tie, even below
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(3.0f, -11)), 0x3c02);                          // tie, even above
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);  // past the tie
  EXPECT_EQ(halfToFloat(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lives only in the low float bits must not become inf.
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(std::bit_cast<float>(0x7f800001u)))));
}

TEST(DataTypeConversion, Bfloat16KnownValues) {
  EXPECT_EQ(floatToBfloat16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);        // tie, even below
  EXPECT_EQ(floatToBfloat16(1.0f + std::ldexp(3.0f, -8)), 0x3f82);        // tie, even above
  EXPECT_EQ(floatToBfloat16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to inf
  EXPECT_EQ(bfloat16ToFloat(0x4049), 3.140625f);
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBfloat16(std::bit_cast<float>(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBfloat16(std::bit_cast<float>(0xffffffffu)))));
  EXPECT_EQ(floatToBfloat16(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(DataTypeConversion, Fp8E4M3SaturatesAndHasNoInfinity) {
  EXPECT_EQ(floatToFp8e4m3(448.0f), 0x7e);
  EXPECT_EQ(floatToFp8e4m3(1000.0f), 0x7e);
  EXPECT_EQ(fp8e4m3ToFloat(floatToFp8e4m3(1000.0f)), 448.0f);
  EXPECT_EQ(floatToFp8e4m3(std::numeric_limits<float>::infinity()), 0x7e);
  EXPECT_EQ(fp8e4m3ToFloat(floatToFp8e4m3(std::numeric_limits<float>::infinity())), 448.0f);
  EXPECT_EQ(fp8e4m3ToFloat(floatToFp8e4m3(-std::numeric_limits<float>::infinity())), -448.0f);
  EXPECT_EQ(floatToFp8e4m3(-1000.0f), 0xfe);
  EXPECT_EQ(floatToFp8e4m3(464.0f), 0x7e);  // tie between 448 and the NaN slot: stays finite
  EXPECT_EQ(floatToFp8e4m3(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(floatToFp8e4m3(-std::numeric_limits<float>::quiet_NaN()), 0xff);
  EXPECT_TRUE(std::isnan(fp8e4m3ToFloat(0x7f)));
  EXPECT_TRUE(std::isnan(fp8e4m3ToFloat(0xff)));
  EXPECT_EQ(fp8e4m3ToFloat(0x78), 256.0f);                 // exponent 15 is a normal binade in "fn"
  EXPECT_EQ(fp8e4m3ToFloat(0x01), std::ldexp(1.0f, -9));   // smallest subnormal
  EXPECT_EQ(floatToFp8e4m3(std::ldexp(1.0f, -10)), 0x00);  // tie to even: 0
  EXPECT_EQ(floatToFp8e4m3(std::ldexp(3.0f, -10)), 0x02);  // tie to even: 2
  EXPECT_EQ(floatToFp8e4m3(1.0625f), 0x38);                // tie between 1 and 1.125: even (1)
  EXPECT_EQ(floatToFp8e4m3(1.1875f), 0x3a);                // tie between 1.125 and 1.25: even (1.25)
}

TEST(DataTypeConversion, Fp8E5M2OverflowsToInfinity) {
  EXPECT_EQ(floatToFp8e5m2(57344.0f), 0x7b);  // largest finite
  EXPECT_EQ(floatToFp8e5m2(61439.0f), 0x7b);
  EXPECT_EQ(floatToFp8e5m2(61440.0f), 0x7c);  // tie with the (virtual) 65536: inf
  EXPECT_EQ(floatToFp8e5m2(1e6f), 0x7c);
  EXPECT_EQ(floatToFp8e5m2(-1e6f), 0xfc);
  EXPECT_EQ(floatToFp8e5m2(std::numeric_limits<float>::infinity()), 0x7c);
  EXPECT_TRUE(std::isinf(fp8e5m2ToFloat(0x7c)));
  EXPECT_TRUE(std::isnan(fp8e5m2ToFloat(floatToFp8e5m2(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(fp8e5m2ToFloat(0x7d)));
  EXPECT_EQ(fp8e5m2ToFloat(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(floatToFp8e5m2(1.125f), 0x3c);  // tie between 1 and 1.25: even (1)
  EXPECT_EQ(floatToFp8e5m2(1.375f), 0x3e);  // tie between 1.25 and 1.5: even (1.5)
}

// ---------------------------------------------------------------------------------------------
// Names, sizes, parsing.

TEST(DataTypeNames, SizesNamesAndFloatness) {
  struct Row {
    DataType type;
    std::size_t size;
    const char* name;
    bool floating;
  };
  const Row rows[] = {
      {DataType::kInt8, 1, "int8", false},
      {DataType::kUint8, 1, "uint8", false},
      {DataType::kInt32, 4, "int32", false},
      {DataType::kUint32, 4, "uint32", false},
      {DataType::kInt64, 8, "int64", false},
      {DataType::kUint64, 8, "uint64", false},
      {DataType::kFloat16, 2, "float16", true},
      {DataType::kBfloat16, 2, "bfloat16", true},
      {DataType::kFloat32, 4, "float32", true},
      {DataType::kFloat64, 8, "float64", true},
      {DataType::kFloat8E4M3, 1, "float8e4m3", true},
      {DataType::kFloat8E5M2, 1, "float8e5m2", true},
  };
  ASSERT_EQ(std::size(rows), static_cast<std::size_t>(kNumDataTypes));
  for (const Row& r : rows) {
    EXPECT_EQ(dataTypeSize(r.type), r.size) << r.name;
    EXPECT_EQ(dataTypeName(r.type), r.name);
    EXPECT_EQ(isFloatingPoint(r.type), r.floating) << r.name;
    EXPECT_EQ(parseDataType(r.name), r.type) << r.name;  // every canonical name parses back
  }
}

TEST(DataTypeNames, ParsesNcclTestsSpellings) {
  const std::pair<const char*, DataType> aliases[] = {
      {"char", DataType::kInt8},           {"int", DataType::kInt32},         {"half", DataType::kFloat16},
      {"fp16", DataType::kFloat16},        {"bf16", DataType::kBfloat16},     {"float", DataType::kFloat32},
      {"fp32", DataType::kFloat32},        {"double", DataType::kFloat64},    {"fp64", DataType::kFloat64},
      {"fp8_e4m3", DataType::kFloat8E4M3}, {"f8e4m3", DataType::kFloat8E4M3}, {"fp8_e5m2", DataType::kFloat8E5M2},
      {"f8e5m2", DataType::kFloat8E5M2},
  };
  for (const auto& [text, type] : aliases) EXPECT_EQ(parseDataType(text), type) << text;
  for (const char* bad : {"", "Float", "float 32", "int16", "fp8", "bfloat", "float32 "}) {
    EXPECT_FALSE(parseDataType(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(DataTypeNames, ReduceOps) {
  const std::pair<ReduceOp, const char*> ops[] = {{ReduceOp::kSum, "sum"},
                                                  {ReduceOp::kProd, "prod"},
                                                  {ReduceOp::kMin, "min"},
                                                  {ReduceOp::kMax, "max"},
                                                  {ReduceOp::kAvg, "avg"}};
  ASSERT_EQ(std::size(ops), static_cast<std::size_t>(kNumReduceOps));
  for (const auto& [op, name] : ops) {
    EXPECT_EQ(reduceOpName(op), name);
    EXPECT_EQ(parseReduceOp(name), op);
  }
  EXPECT_FALSE(parseReduceOp("mean").has_value());
  EXPECT_FALSE(parseReduceOp("SUM").has_value());
}

// ---------------------------------------------------------------------------------------------
// loadAsDouble / storeFromDouble.

template <class T>
T storeAndRead(DataType t, double v) {
  T out{};
  storeFromDouble(t, &out, 0, v);
  return out;
}

TEST(DataTypeStore, IntegersRoundToNearestEvenAndSaturate) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(storeAndRead<std::int8_t>(DataType::kInt8, 300.0), 127);
  EXPECT_EQ(storeAndRead<std::int8_t>(DataType::kInt8, -300.0), -128);
  EXPECT_EQ(storeAndRead<std::int8_t>(DataType::kInt8, 2.5), 2);
  EXPECT_EQ(storeAndRead<std::int8_t>(DataType::kInt8, 3.5), 4);
  EXPECT_EQ(storeAndRead<std::int8_t>(DataType::kInt8, -2.5), -2);
  EXPECT_EQ(storeAndRead<std::int8_t>(DataType::kInt8, -2.6), -3);
  EXPECT_EQ(storeAndRead<std::int8_t>(DataType::kInt8, nan), 0);
  EXPECT_EQ(storeAndRead<std::uint8_t>(DataType::kUint8, -5.0), 0);
  EXPECT_EQ(storeAndRead<std::uint8_t>(DataType::kUint8, 255.4), 255);
  EXPECT_EQ(storeAndRead<std::uint8_t>(DataType::kUint8, 256.0), 255);
  EXPECT_EQ(storeAndRead<std::int32_t>(DataType::kInt32, 3e9), std::numeric_limits<std::int32_t>::max());
  EXPECT_EQ(storeAndRead<std::int32_t>(DataType::kInt32, -inf), std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(storeAndRead<std::int32_t>(DataType::kInt32, -123456.7), -123457);
  EXPECT_EQ(storeAndRead<std::uint32_t>(DataType::kUint32, 4294967295.0), 4294967295u);
  EXPECT_EQ(storeAndRead<std::uint32_t>(DataType::kUint32, 5e9), 4294967295u);
  EXPECT_EQ(storeAndRead<std::int64_t>(DataType::kInt64, 1e30), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(storeAndRead<std::int64_t>(DataType::kInt64, std::ldexp(1.0, 63)),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(storeAndRead<std::int64_t>(DataType::kInt64, -std::ldexp(1.0, 63)),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(storeAndRead<std::int64_t>(DataType::kInt64, -1e30), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(storeAndRead<std::int64_t>(DataType::kInt64, nan), 0);
  EXPECT_EQ(storeAndRead<std::uint64_t>(DataType::kUint64, std::ldexp(1.0, 64)),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(storeAndRead<std::uint64_t>(DataType::kUint64, std::ldexp(1.0, 63)), std::uint64_t{1} << 63);
  EXPECT_EQ(storeAndRead<std::uint64_t>(DataType::kUint64, -1.0), 0u);
}

TEST(DataTypeStore, NarrowFloatsRoundOnceFromDouble) {
  // 1 + 2^-11 + 2^-40 lies just above a half tie; rounding through float first would land exactly
  // on the tie and go to even (1.0). The correct answer is the next half up.
  EXPECT_EQ(storeAndRead<std::uint16_t>(DataType::kFloat16, 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)), 0x3c01);
  EXPECT_EQ(storeAndRead<std::uint16_t>(DataType::kFloat16, 1.0 + std::ldexp(1.0, -11)), 0x3c00);
  EXPECT_EQ(storeAndRead<std::uint16_t>(DataType::kFloat16, 1.0 + std::ldexp(1.0, -11) - std::ldexp(1.0, -40)), 0x3c00);
  EXPECT_EQ(storeAndRead<std::uint16_t>(DataType::kBfloat16, 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40)), 0x3f81);
  EXPECT_EQ(storeAndRead<std::uint8_t>(DataType::kFloat8E4M3, 1.0625 + 1e-12), 0x39);
  EXPECT_EQ(storeAndRead<std::uint8_t>(DataType::kFloat8E4M3, 1e300), 0x7e);
  EXPECT_EQ(storeAndRead<std::uint8_t>(DataType::kFloat8E5M2, 1.125 + 1e-12), 0x3d);
  EXPECT_EQ(storeAndRead<std::uint8_t>(DataType::kFloat8E5M2, -1e300), 0xfc);
  EXPECT_EQ(storeAndRead<std::uint16_t>(DataType::kFloat16, 1e-300), 0x0000);
  EXPECT_EQ(storeAndRead<std::uint16_t>(DataType::kFloat16, -1e-300), 0x8000);
  EXPECT_EQ(storeAndRead<float>(DataType::kFloat32, 0.1), 0.1f);
  EXPECT_EQ(storeAndRead<double>(DataType::kFloat64, 0.1), 0.1);

  // Random doubles against the reference (which rounds the double directly).
  const std::uint32_t seed = 777;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> expo(-30.0, 20.0);
  const std::pair<DataType, Format> types[] = {{DataType::kFloat16, kHalf},
                                               {DataType::kBfloat16, kBf16},
                                               {DataType::kFloat8E4M3, kE4M3},
                                               {DataType::kFloat8E5M2, kE5M2}};
  for (int i = 0; i < 100000; ++i) {
    const double x = ((rng() & 1) ? -1.0 : 1.0) * std::exp2(expo(rng));
    for (const auto& [type, fmt] : types) {
      unsigned char buf[2] = {};
      storeFromDouble(type, buf, 0, x);
      ASSERT_EQ(loadAsDouble(type, buf, 0), roundRef(fmt, x)) << fmt.name << " x=" << x;
    }
  }
}

TEST(DataTypeStore, LoadAndStoreAtAnIndex) {
  std::vector<unsigned char> buf(64, 0);
  for (int t = 0; t < kNumDataTypes; ++t) {
    const auto type = static_cast<DataType>(t);
    std::fill(buf.begin(), buf.end(), 0);
    storeFromDouble(type, buf.data(), 3, -2.0);
    storeFromDouble(type, buf.data(), 4, 6.0);
    const bool isUnsigned = type == DataType::kUint8 || type == DataType::kUint32 || type == DataType::kUint64;
    EXPECT_EQ(loadAsDouble(type, buf.data(), 3), isUnsigned ? 0.0 : -2.0) << dataTypeName(type);
    EXPECT_EQ(loadAsDouble(type, buf.data(), 4), 6.0) << dataTypeName(type);
    EXPECT_EQ(loadAsDouble(type, buf.data(), 2), 0.0) << dataTypeName(type);
    EXPECT_EQ(loadAsDouble(type, buf.data(), 5), 0.0) << dataTypeName(type);
  }
}

}  // namespace
}  // namespace copro::core
