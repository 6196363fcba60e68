#include "copro/core/dtype.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "copro/core/narrow_float.hpp"

namespace copro::core {

namespace {

struct DataTypeInfo {
  std::size_t size;
  std::string_view name;
  bool floating;
};

constexpr std::array<DataTypeInfo, kNumDataTypes> kDataTypes = {{
    {1, "int8", false},
    {1, "uint8", false},
    {4, "int32", false},
    {4, "uint32", false},
    {8, "int64", false},
    {8, "uint64", false},
    {2, "float16", true},
    {2, "bfloat16", true},
    {4, "float32", true},
    {8, "float64", true},
    {1, "float8e4m3", true},
    {1, "float8e5m2", true},
}};

constexpr std::array<std::string_view, kNumReduceOps> kReduceOpNames = {"sum", "prod", "min", "max", "avg"};

struct Alias {
  std::string_view text;
  DataType type;
};

// copro names first, then the spellings nccl-tests (-d) and frameworks use.
constexpr std::array<Alias, 25> kDataTypeAliases = {{
    {"int8", DataType::kInt8},
    {"char", DataType::kInt8},
    {"uint8", DataType::kUint8},
    {"int32", DataType::kInt32},
    {"int", DataType::kInt32},
    {"uint32", DataType::kUint32},
    {"int64", DataType::kInt64},
    {"uint64", DataType::kUint64},
    {"float16", DataType::kFloat16},
    {"half", DataType::kFloat16},
    {"fp16", DataType::kFloat16},
    {"bfloat16", DataType::kBfloat16},
    {"bf16", DataType::kBfloat16},
    {"float32", DataType::kFloat32},
    {"float", DataType::kFloat32},
    {"fp32", DataType::kFloat32},
    {"float64", DataType::kFloat64},
    {"double", DataType::kFloat64},
    {"fp64", DataType::kFloat64},
    {"float8e4m3", DataType::kFloat8E4M3},
    {"fp8_e4m3", DataType::kFloat8E4M3},
    {"f8e4m3", DataType::kFloat8E4M3},
    {"float8e5m2", DataType::kFloat8E5M2},
    {"fp8_e5m2", DataType::kFloat8E5M2},
    {"f8e5m2", DataType::kFloat8E5M2},
}};

bool validType(DataType t) noexcept {
  return static_cast<int>(t) < kNumDataTypes;
}

template <class T>
T loadScalar(const void* base, std::size_t index) noexcept {
  T v;
  std::memcpy(&v, static_cast<const unsigned char*>(base) + index * sizeof(T), sizeof(T));
  return v;
}

template <class T>
void storeScalar(void* base, std::size_t index, T v) noexcept {
  std::memcpy(static_cast<unsigned char*>(base) + index * sizeof(T), &v, sizeof(T));
}

/// Rounds to the nearest integer (ties to even) and saturates to T's range; NaN becomes 0.
template <class T>
T saturateToInt(double value) noexcept {
  if (std::isnan(value)) return 0;
  const double r = std::nearbyint(value);
  // The bounds are computed as powers of two so they are exact doubles even for 64-bit types
  // (numeric_limits<int64_t>::max() is not representable and would round up).
  constexpr int kBits = std::numeric_limits<T>::digits;  // value bits, without the sign
  const double upper = std::ldexp(1.0, kBits);           // first value above max
  if (r >= upper) return std::numeric_limits<T>::max();
  if (r < static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
  return static_cast<T>(r);
}

/// double -> float rounding to odd: truncate, then set the lsb when inexact. A second rounding
/// from the round-to-odd float to any format at least two bits narrower is then correctly rounded,
/// which a plain double -> float -> narrow chain is not (it can hit a false tie).
float doubleToFloatRoundToOdd(double d) noexcept {
  float f = static_cast<float>(d);
  if (std::isnan(d) || std::isinf(f)) return f;
  const double back = static_cast<double>(f);
  if (back == d) return f;
  if (std::fabs(back) > std::fabs(d)) f = std::nextafter(f, 0.0f);
  return detail::bitsToFloat(detail::floatToBits(f) | 1u);
}

}  // namespace

std::size_t dataTypeSize(DataType t) noexcept {
  return validType(t) ? kDataTypes[static_cast<std::size_t>(t)].size : 0;
}

std::string_view dataTypeName(DataType t) noexcept {
  return validType(t) ? kDataTypes[static_cast<std::size_t>(t)].name : std::string_view("invalid");
}

std::string_view reduceOpName(ReduceOp op) noexcept {
  const auto i = static_cast<std::size_t>(op);
  return i < kReduceOpNames.size() ? kReduceOpNames[i] : std::string_view("invalid");
}

std::optional<DataType> parseDataType(std::string_view text) noexcept {
  for (const Alias& a : kDataTypeAliases) {
    if (a.text == text) return a.type;
  }
  return std::nullopt;
}

std::optional<ReduceOp> parseReduceOp(std::string_view text) noexcept {
  for (std::size_t i = 0; i < kReduceOpNames.size(); ++i) {
    if (kReduceOpNames[i] == text) return static_cast<ReduceOp>(i);
  }
  return std::nullopt;
}

bool isFloatingPoint(DataType t) noexcept {
  return validType(t) && kDataTypes[static_cast<std::size_t>(t)].floating;
}

float halfToFloat(std::uint16_t h) noexcept {
  return detail::narrowToFloat<detail::HalfFormat>(h);
}
std::uint16_t floatToHalf(float f) noexcept {
  return static_cast<std::uint16_t>(detail::floatToNarrow<detail::HalfFormat>(f));
}
float bfloat16ToFloat(std::uint16_t b) noexcept {
  return detail::bfloat16ToFloatInline(b);
}
std::uint16_t floatToBfloat16(float f) noexcept {
  return static_cast<std::uint16_t>(detail::floatToBfloat16Inline(f));
}
float fp8e4m3ToFloat(std::uint8_t v) noexcept {
  return detail::narrowToFloat<detail::E4M3Format>(v);
}
std::uint8_t floatToFp8e4m3(float f) noexcept {
  return static_cast<std::uint8_t>(detail::floatToNarrow<detail::E4M3Format>(f));
}
float fp8e5m2ToFloat(std::uint8_t v) noexcept {
  return detail::narrowToFloat<detail::E5M2Format>(v);
}
std::uint8_t floatToFp8e5m2(float f) noexcept {
  return static_cast<std::uint8_t>(detail::floatToNarrow<detail::E5M2Format>(f));
}

double loadAsDouble(DataType t, const void* base, std::size_t index) noexcept {
  switch (t) {
    case DataType::kInt8:
      return loadScalar<std::int8_t>(base, index);
    case DataType::kUint8:
      return loadScalar<std::uint8_t>(base, index);
    case DataType::kInt32:
      return loadScalar<std::int32_t>(base, index);
    case DataType::kUint32:
      return loadScalar<std::uint32_t>(base, index);
    case DataType::kInt64:
      return static_cast<double>(loadScalar<std::int64_t>(base, index));
    case DataType::kUint64:
      return static_cast<double>(loadScalar<std::uint64_t>(base, index));
    case DataType::kFloat16:
      return halfToFloat(loadScalar<std::uint16_t>(base, index));
    case DataType::kBfloat16:
      return bfloat16ToFloat(loadScalar<std::uint16_t>(base, index));
    case DataType::kFloat32:
      return loadScalar<float>(base, index);
    case DataType::kFloat64:
      return loadScalar<double>(base, index);
    case DataType::kFloat8E4M3:
      return fp8e4m3ToFloat(loadScalar<std::uint8_t>(base, index));
    case DataType::kFloat8E5M2:
      return fp8e5m2ToFloat(loadScalar<std::uint8_t>(base, index));
  }
  return 0.0;
}

void storeFromDouble(DataType t, void* base, std::size_t index, double value) noexcept {
  switch (t) {
    case DataType::kInt8:
      storeScalar(base, index, saturateToInt<std::int8_t>(value));
      return;
    case DataType::kUint8:
      storeScalar(base, index, saturateToInt<std::uint8_t>(value));
      return;
    case DataType::kInt32:
      storeScalar(base, index, saturateToInt<std::int32_t>(value));
      return;
    case DataType::kUint32:
      storeScalar(base, index, saturateToInt<std::uint32_t>(value));
      return;
    case DataType::kInt64:
      storeScalar(base, index, saturateToInt<std::int64_t>(value));
      return;
    case DataType::kUint64:
      storeScalar(base, index, saturateToInt<std::uint64_t>(value));
      return;
    case DataType::kFloat16:
      storeScalar(base, index, floatToHalf(doubleToFloatRoundToOdd(value)));
      return;
    case DataType::kBfloat16:
      storeScalar(base, index, floatToBfloat16(doubleToFloatRoundToOdd(value)));
      return;
    case DataType::kFloat32:
      storeScalar(base, index, static_cast<float>(value));
      return;
    case DataType::kFloat64:
      storeScalar(base, index, value);
      return;
    case DataType::kFloat8E4M3:
      storeScalar(base, index, floatToFp8e4m3(doubleToFloatRoundToOdd(value)));
      return;
    case DataType::kFloat8E5M2:
      storeScalar(base, index, floatToFp8e5m2(doubleToFloatRoundToOdd(value)));
      return;
  }
}

double unitRoundoff(DataType t) noexcept {
  switch (t) {
    case DataType::kFloat16:
      return 0x1p-11;
    case DataType::kBfloat16:
      return 0x1p-8;
    case DataType::kFloat8E4M3:
      return 0x1p-4;
    case DataType::kFloat8E5M2:
      return 0x1p-3;
    case DataType::kFloat32:
      return 0x1p-24;
    case DataType::kFloat64:
      return 0x1p-53;
    default:
      return 0.0;
  }
}

}  // namespace copro::core
