#pragma once
/// Branch-free conversions between float32 and the narrow float formats (float16, bfloat16, FP8).
///
/// The scalar API in dtype.cpp, the reduction kernels in reduce.cpp and the portable lane machine
/// (lane_machine.hpp, also compiled by nvcc) all use these, so a result is bit-identical wherever it is
/// computed. They are written with plain 32-bit integer arithmetic and selects (no branches, no tables)
/// so GCC vectorizes loops that call them on the baseline SSE2 ISA.
#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <bit>
#endif

#include "copro/core/host_device.hpp"

namespace copro::core::detail {

/// Describes a narrow binary floating-point format: 1 sign bit, `kExpBits` exponent bits,
/// `kMantBits` mantissa bits, exponent bias 2^(kExpBits-1)-1. `kHasInf`: IEEE-like (all-ones exponent
/// is inf/NaN); otherwise the "fn" convention (finite only, all-ones bits are NaN, saturating).
template <int ExpBits, int MantBits, bool HasInf>
struct NarrowFormat {
  static constexpr int kExpBits = ExpBits;
  static constexpr int kMantBits = MantBits;
  static constexpr bool kHasInf = HasInf;
  static constexpr int kBias = (1 << (kExpBits - 1)) - 1;
  static constexpr int kShift = 23 - kMantBits;  // float32 mantissa bits dropped
  static constexpr std::uint32_t kMagMask = (1u << (kExpBits + kMantBits)) - 1u;
  static constexpr std::uint32_t kInfBits = ((1u << kExpBits) - 1u) << kMantBits;
  static constexpr std::uint32_t kQuietBit = 1u << (kMantBits - 1);
  /// Largest finite magnitude for the "fn" convention (all ones except the mantissa lsb).
  static constexpr std::uint32_t kMaxFiniteFn = kMagMask - 1u;
};

using HalfFormat = NarrowFormat<5, 10, true>;
using E5M2Format = NarrowFormat<5, 2, true>;
using E4M3Format = NarrowFormat<4, 3, false>;

COPRO_HD inline float bitsToFloat(std::uint32_t u) noexcept {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}
COPRO_HD inline std::uint32_t floatToBits(float f) noexcept {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return std::bit_cast<std::uint32_t>(f);
#endif
}

/// `cond ? a : b` as bit masks. With `?:` GCC sinks a float operation feeding only one arm into a
/// branch and then (under the default -ftrapping-math) refuses to if-convert it back, which blocks
/// vectorization; masks keep every operation unconditional.
COPRO_HD inline std::uint32_t selectBits(bool cond, std::uint32_t a, std::uint32_t b) noexcept {
  const std::uint32_t m = 0u - static_cast<std::uint32_t>(cond);
  return (a & m) | (b & ~m);
}

/// Narrow bits (in the low bits of `v`) to float32; exact.
template <class F>
COPRO_HD inline float narrowToFloat(std::uint32_t v) noexcept {
  const std::uint32_t sign = (v >> (F::kExpBits + F::kMantBits) & 1u) << 31;
  // Signed ints keep the compares and the int->float conversion native on SSE2.
  const std::int32_t mag = static_cast<std::int32_t>(v & F::kMagMask);
  const std::uint32_t shifted = static_cast<std::uint32_t>(mag) << F::kShift;
  const std::uint32_t normal = shifted + (static_cast<std::uint32_t>(127 - F::kBias) << 23);
  // Subnormals (and zero): mantissa * 2^(1 - bias - mantbits), exact in float32.
  const float subnormal =
      static_cast<float>(mag) * bitsToFloat(static_cast<std::uint32_t>(127 + 1 - F::kBias - F::kMantBits) << 23);
  std::uint32_t r = selectBits(mag < (1 << F::kMantBits), floatToBits(subnormal), normal);
  if constexpr (F::kHasInf) {
    // All-ones exponent: inf or NaN, payload kept in the top mantissa bits.
    r = selectBits(mag >= static_cast<std::int32_t>(F::kInfBits), shifted | 0x7f800000u, r);
  } else {
    r = selectBits(mag == static_cast<std::int32_t>(F::kMagMask), 0x7fc00000u, r);
  }
  return bitsToFloat(r | sign);
}

/// float32 to narrow bits, rounding to nearest even. IEEE-like formats overflow to inf; "fn" formats
/// saturate finite overflow and infinities to the largest finite value. NaN stays NaN (quiet, sign
/// kept; payload's top bits kept for IEEE-like formats).
template <class F>
COPRO_HD inline std::uint32_t floatToNarrow(float f) noexcept {
  const std::uint32_t u = floatToBits(f);
  const std::uint32_t sign = u & 0x80000000u;
  const std::uint32_t a = u ^ sign;              // |f| bits
  const auto as = static_cast<std::int32_t>(a);  // < 2^31, so signed compares (native on SSE2) are safe

  // Normal range: rebias, add the rounding bias (half an ulp minus one, plus the lsb for ties to
  // even) and drop the low bits; a mantissa carry correctly bumps the exponent. The result grows
  // monotonically with |f|, so one clamp handles overflow: to inf, or saturating for "fn".
  const std::uint32_t mantOdd = (a >> F::kShift) & 1u;
  const std::uint32_t rebiased = a - (static_cast<std::uint32_t>(127 - F::kBias) << 23);
  const std::uint32_t rounded = (rebiased + ((1u << (F::kShift - 1)) - 1u) + mantOdd) >> F::kShift;
  constexpr std::uint32_t kLargest = F::kHasInf ? F::kInfBits : F::kMaxFiniteFn;
  std::uint32_t r =
      selectBits(static_cast<std::int32_t>(rounded) > static_cast<std::int32_t>(kLargest), kLargest, rounded);

  // Below the smallest normal (where `rebiased` wrapped): adding a magic constant whose ulp is the
  // format's subnormal step makes the FPU round, to nearest even, at exactly the right bit.
  constexpr std::uint32_t kMagicBits = static_cast<std::uint32_t>(127 + 1 - F::kBias - F::kMantBits + 23) << 23;
  const std::uint32_t sub = floatToBits(bitsToFloat(a) + bitsToFloat(kMagicBits)) - kMagicBits;
  constexpr std::int32_t kMinNormal = (127 + 1 - F::kBias) << 23;
  r = selectBits(as < kMinNormal, sub, r);

  std::uint32_t nan = F::kMagMask;  // "fn": all ones
  if constexpr (F::kHasInf) nan = F::kInfBits | F::kQuietBit | ((a >> F::kShift) & (F::kQuietBit * 2u - 1u));
  r = selectBits(as > 0x7f800000, nan, r);
  return r | (sign >> (31 - F::kExpBits - F::kMantBits));
}

/// bfloat16 is the top half of a float32.
COPRO_HD inline float bfloat16ToFloatInline(std::uint32_t b) noexcept {
  return bitsToFloat(b << 16);
}

COPRO_HD inline std::uint32_t floatToBfloat16Inline(float f) noexcept {
  const std::uint32_t u = floatToBits(f);
  const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  // NaN: truncate and set the quiet bit, so a payload in the dropped bits cannot turn it into inf.
  const std::uint32_t nan = (u >> 16) | 0x40u;
  return selectBits(static_cast<std::int32_t>(u & 0x7fffffffu) > 0x7f800000, nan, rounded);
}

}  // namespace copro::core::detail
