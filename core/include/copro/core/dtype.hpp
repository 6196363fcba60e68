#pragma once
/// Data types and reduction operators, with scalar conversions for the narrow float formats.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace copro::core {

/// Element types (values match the C API's copro_datatype_t).
enum class DataType : std::uint8_t {
  kInt8 = 0,
  kUint8,
  kInt32,
  kUint32,
  kInt64,
  kUint64,
  kFloat16,
  kBfloat16,
  kFloat32,
  kFloat64,
  kFloat8E4M3,  ///< OCP FP8 E4M3 "fn": finite only, max 448; conversions saturate to +-448, NaN is 0x7f/0xff
  kFloat8E5M2,  ///< OCP FP8 E5M2: IEEE-like with infinities; conversions round to nearest even, overflow to inf
};
inline constexpr int kNumDataTypes = 12;

/// Reduction operators (values match copro_redop_t). kAvg is a sum divided by the rank count at the end;
/// for integers the division truncates toward zero.
enum class ReduceOp : std::uint8_t { kSum = 0, kProd, kMin, kMax, kAvg };
inline constexpr int kNumReduceOps = 5;

std::size_t dataTypeSize(DataType t) noexcept;
std::string_view dataTypeName(DataType t) noexcept;   ///< "float32", "bfloat16", "float8e4m3", ...
std::string_view reduceOpName(ReduceOp op) noexcept;  ///< "sum", "prod", "min", "max", "avg"
/// Accepts copro names and nccl-tests names ("float", "half", "bf16", "int32", "fp8_e4m3", ...).
std::optional<DataType> parseDataType(std::string_view text) noexcept;
std::optional<ReduceOp> parseReduceOp(std::string_view text) noexcept;
bool isFloatingPoint(DataType t) noexcept;
/// Unit roundoff of a floating type (half its machine epsilon: 2^-11 for float16, 2^-8 bfloat16, 2^-4 e4m3,
/// 2^-3 e5m2, 2^-24 float32, 2^-53 float64); 0 for integers. Error bounds of checks are stated in it.
double unitRoundoff(DataType t) noexcept;

// Scalar conversions, all rounding to nearest even.
float halfToFloat(std::uint16_t h) noexcept;
std::uint16_t floatToHalf(float f) noexcept;
float bfloat16ToFloat(std::uint16_t b) noexcept;
std::uint16_t floatToBfloat16(float f) noexcept;
float fp8e4m3ToFloat(std::uint8_t v) noexcept;
std::uint8_t floatToFp8e4m3(float f) noexcept;  ///< saturates to +-448
float fp8e5m2ToFloat(std::uint8_t v) noexcept;
std::uint8_t floatToFp8e5m2(float f) noexcept;

/// Reads element `index` of a buffer of type `t` as a double (for references and checks).
double loadAsDouble(DataType t, const void* base, std::size_t index) noexcept;
/// Stores `value` into element `index`, converting (rounding to nearest even, saturating integers).
void storeFromDouble(DataType t, void* base, std::size_t index, double value) noexcept;

}  // namespace copro::core

namespace copro {
using core::DataType;
using core::ReduceOp;
}  // namespace copro
