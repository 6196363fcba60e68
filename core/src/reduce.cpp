#include "copro/core/reduce.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include <unistd.h>

#include "copro/core/narrow_float.hpp"

// x86: SSE2 non-temporal stores (baseline) and an F16C path chosen at run time. Elsewhere (Arm
// hosts such as Grace) the same portable loops run and copies use memcpy. Defining
// COPRO_REDUCE_X86=0 builds the portable variant on x86 too.
#ifndef COPRO_REDUCE_X86
#if defined(__x86_64__) || defined(__i386__)
#define COPRO_REDUCE_X86 1
#else
#define COPRO_REDUCE_X86 0
#endif
#endif
#if COPRO_REDUCE_X86
#include <cpuid.h>
#include <immintrin.h>
#endif

// How these loops vectorize: every inner loop is a plain indexed loop over an element-wise template
// op with no calls or branches (selects only), so GCC's loop vectorizer handles it at -O3 on SSE2.
// Destination pointers are deliberately not `__restrict`: a destination may alias a source exactly
// (in place), which restrict would make undefined; GCC versions the loops with a runtime overlap
// check that accepts exact aliasing (a write-after-read at distance 0), so the vector path still
// runs in place. docs/kernels.md lists which loops the compiler reported vectorized.

namespace copro::core {

namespace {

/// Above this many bytes a reduction's output bypasses the cache, and streamCopy's least threshold.
constexpr std::size_t kStreamThresholdBytes = 256 * 1024;
/// streamCopy's greatest threshold.
constexpr std::size_t kStreamCopyMaxThresholdBytes = 16 << 20;
/// Output bytes reduced per cache block: the block is re-read by multi-pass reductions and by the
/// fan-out to several destinations, so it must stay in L1. Small blocks also keep the phases of
/// reduceToMany (load sources, stream destinations) short enough that the hardware prefetchers stay
/// on the source streams; 4 KiB measured at least as fast as 8, 16 and 32 KiB (docs/kernels.md).
constexpr std::size_t kBlockBytes = 4 * 1024;
/// Sources folded by the first pass of a wide-type reduction (one loop reading up to 4 streams).
constexpr int kFirstPassSources = 4;

// ---------------------------------------------------------------------------------------------
// Element-wise operators. Integer sum/prod run in the unsigned type so overflow wraps instead of
// being undefined. Float min/max propagate NaN: if either input is NaN the result is NaN.

template <class T>
inline bool isNan(T x) noexcept {
  return __builtin_isnan(x);
}

struct SumOp {
  template <class T>
  static T apply(T a, T b) noexcept {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  }
};

struct ProdOp {
  template <class T>
  static T apply(T a, T b) noexcept {
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
    } else {
      return a * b;
    }
  }
};

struct MinOp {
  template <class T>
  static T apply(T a, T b) noexcept {
    if constexpr (std::is_integral_v<T>) {
      return b < a ? b : a;
    } else {
      // `|` rather than `||`: no short-circuit branch for the if-converter to remove. Testing the
      // second operand for NaN (not the first) matters: with the first, GCC 12 turns a chain of
      // these into a select on booleans that it cannot vectorize.
      return ((b < a) | isNan(b)) ? b : a;
    }
  }
};

struct MaxOp {
  template <class T>
  static T apply(T a, T b) noexcept {
    if constexpr (std::is_integral_v<T>) {
      return a < b ? b : a;
    } else {
      return ((a < b) | isNan(b)) ? b : a;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Wide types (integers, float32, float64): combine in the element type.

template <class T, class Op>
void combine2(T* d, const T* a, const T* b, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) d[i] = Op::apply(a[i], b[i]);
}

template <class T, class Op>
void combine3(T* d, const T* a, const T* b, const T* c, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) d[i] = Op::apply(Op::apply(a[i], b[i]), c[i]);
}

template <class T, class Op>
void combine4(T* d, const T* a, const T* b, const T* c, const T* e, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) d[i] = Op::apply(Op::apply(Op::apply(a[i], b[i]), c[i]), e[i]);
}

template <class T, class Op>
void accumulate1(T* d, const T* a, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) d[i] = Op::apply(d[i], a[i]);
}

template <class T, class Op>
void accumulate2(T* d, const T* a, const T* b, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) d[i] = Op::apply(Op::apply(d[i], a[i]), b[i]);
}

template <class T, class Op>
void accumulate3(T* d, const T* a, const T* b, const T* c, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) d[i] = Op::apply(Op::apply(Op::apply(d[i], a[i]), b[i]), c[i]);
}

/// d[i] /= divisor, truncating toward zero for integers.
template <class T>
void divideInPlace(T* d, std::size_t n, std::uint32_t divisor) noexcept {
  if constexpr (std::is_floating_point_v<T>) {
    const T q = static_cast<T>(divisor);
    for (std::size_t i = 0; i < n; ++i) d[i] = d[i] / q;
  } else if constexpr (sizeof(T) < 4 || std::is_same_v<T, std::int32_t>) {
    // Exact through double: |x| < 2^31 and divisor < 2^32, so the rounded quotient never reaches
    // the next integer (its distance is >= 1/divisor, far above half an ulp) and truncation gives
    // C++ integer division; the quotient fits int32. Unlike integer division this vectorizes.
    const double q = static_cast<double>(divisor);
    for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<T>(static_cast<std::int32_t>(static_cast<double>(d[i]) / q));
  } else {
    using Wide = std::conditional_t<std::is_signed_v<T>, std::int64_t, std::uint64_t>;
    const Wide q = static_cast<Wide>(divisor);
    for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<T>(static_cast<Wide>(d[i]) / q);
  }
}

/// Reduces elements [off, off + n) of every source into `out` (n elements). `out` may alias a source
/// exactly, except sources past the first pass (index >= kFirstPassSources), which the first pass would
/// overwrite before they are read.
template <class T, class Op>
void wideBlock(void* outRaw, const void* const* srcs, int nsrcs, std::size_t off, std::size_t n,
               std::uint32_t divisor) noexcept {
  T* out = static_cast<T*>(outRaw);
  const auto src = [&](int k) { return static_cast<const T*>(srcs[k]) + off; };
  int k = 0;
  switch (nsrcs) {
    case 1:
      if (out != src(0)) std::memcpy(out, src(0), n * sizeof(T));
      k = 1;
      break;
    case 2:
      combine2<T, Op>(out, src(0), src(1), n);
      k = 2;
      break;
    case 3:
      combine3<T, Op>(out, src(0), src(1), src(2), n);
      k = 3;
      break;
    default:
      combine4<T, Op>(out, src(0), src(1), src(2), src(3), n);
      k = 4;
      break;
  }
  while (k < nsrcs) {
    const int left = nsrcs - k;
    if (left >= 3) {
      accumulate3<T, Op>(out, src(k), src(k + 1), src(k + 2), n);
      k += 3;
    } else if (left == 2) {
      accumulate2<T, Op>(out, src(k), src(k + 1), n);
      k += 2;
    } else {
      accumulate1<T, Op>(out, src(k), n);
      k += 1;
    }
  }
  if (divisor > 0) divideInPlace(out, n, divisor);
}

// ---------------------------------------------------------------------------------------------
// Narrow floats: widen to float32 in stack blocks, combine there across all sources, round once.
//
// The loops walk 32-bit words, each holding 2 (16-bit types) or 4 (fp8) values, and keep the widened
// values in one float plane per position in the word. Every vector operation is then on 32-bit
// lanes: converting value by value would make GCC narrow 32-bit results to 16/8 bits with long
// unpack sequences (SSE2 has no unsigned pack), which cost more than the conversion itself. The
// planes are only a permutation of the block, so the results are the same element by element.

struct HalfConv {
  using Storage = std::uint16_t;
  static float toFloat(std::uint32_t v) noexcept { return detail::narrowToFloat<detail::HalfFormat>(v); }
  static std::uint32_t fromFloat(float f) noexcept { return detail::floatToNarrow<detail::HalfFormat>(f); }
};

struct Bfloat16Conv {
  using Storage = std::uint16_t;
  static float toFloat(std::uint32_t v) noexcept { return detail::bfloat16ToFloatInline(v); }
  static std::uint32_t fromFloat(float f) noexcept { return detail::floatToBfloat16Inline(f); }
};

struct E4M3Conv {
  using Storage = std::uint8_t;
  static float toFloat(std::uint32_t v) noexcept { return detail::narrowToFloat<detail::E4M3Format>(v); }
  static std::uint32_t fromFloat(float f) noexcept { return detail::floatToNarrow<detail::E4M3Format>(f); }
};

struct E5M2Conv {
  using Storage = std::uint8_t;
  static float toFloat(std::uint32_t v) noexcept { return detail::narrowToFloat<detail::E5M2Format>(v); }
  static std::uint32_t fromFloat(float f) noexcept { return detail::floatToNarrow<detail::E5M2Format>(f); }
};

/// Words widened per sub-block: 512 16-bit or 1024 8-bit values (2 or 4 KiB of float32).
constexpr std::size_t kWidenWords = 256;

static_assert(std::endian::native == std::endian::little, "Words assumes value k of a word sits at bits 8*size*k");

template <class Conv>
struct Words {
  using S = typename Conv::Storage;
  static constexpr int kLanes = static_cast<int>(sizeof(std::uint32_t) / sizeof(S));
  static constexpr int kBits = 8 * static_cast<int>(sizeof(S));
  static constexpr std::uint32_t kMask = (1u << kBits) - 1u;
  static constexpr std::size_t kPlane = kWidenWords;  // floats per plane

  static std::uint32_t load(const S* p, std::size_t j) noexcept {
    std::uint32_t w;
    std::memcpy(&w, p + j * kLanes, sizeof(w));  // unaligned-safe; a plain load after optimization
    return w;
  }
  static void store(S* p, std::size_t j, std::uint32_t w) noexcept { std::memcpy(p + j * kLanes, &w, sizeof(w)); }
  static float lane(std::uint32_t w, int k) noexcept { return Conv::toFloat((w >> (k * kBits)) & kMask); }
};

template <class Conv>
void widenWords(float* __restrict acc, const typename Conv::Storage* a, std::size_t nw) noexcept {
  using W = Words<Conv>;
  for (std::size_t j = 0; j < nw; ++j) {
    const std::uint32_t w = W::load(a, j);
    for (int k = 0; k < W::kLanes; ++k) acc[k * W::kPlane + j] = W::lane(w, k);
  }
}

template <class Conv, class Op>
void widenCombineWords(float* __restrict acc, const typename Conv::Storage* a, const typename Conv::Storage* b,
                       std::size_t nw) noexcept {
  using W = Words<Conv>;
  for (std::size_t j = 0; j < nw; ++j) {
    const std::uint32_t wa = W::load(a, j);
    const std::uint32_t wb = W::load(b, j);
    for (int k = 0; k < W::kLanes; ++k) acc[k * W::kPlane + j] = Op::apply(W::lane(wa, k), W::lane(wb, k));
  }
}

template <class Conv, class Op>
void widenAccumulateWords(float* __restrict acc, const typename Conv::Storage* a, std::size_t nw) noexcept {
  using W = Words<Conv>;
  for (std::size_t j = 0; j < nw; ++j) {
    const std::uint32_t w = W::load(a, j);
    for (int k = 0; k < W::kLanes; ++k) acc[k * W::kPlane + j] = Op::apply(acc[k * W::kPlane + j], W::lane(w, k));
  }
}

template <class Conv>
void narrowWords(typename Conv::Storage* d, const float* __restrict acc, std::size_t nw) noexcept {
  using W = Words<Conv>;
  for (std::size_t j = 0; j < nw; ++j) {
    std::uint32_t w = 0;
    for (int k = 0; k < W::kLanes; ++k) w |= Conv::fromFloat(acc[k * W::kPlane + j]) << (k * W::kBits);
    W::store(d, j, w);
  }
}

template <class Conv>
void narrowWordsDivided(typename Conv::Storage* d, const float* __restrict acc, std::size_t nw, float q) noexcept {
  using W = Words<Conv>;
  for (std::size_t j = 0; j < nw; ++j) {
    std::uint32_t w = 0;
    for (int k = 0; k < W::kLanes; ++k) w |= Conv::fromFloat(acc[k * W::kPlane + j] / q) << (k * W::kBits);
    W::store(d, j, w);
  }
}

/// Like wideBlock; `out` may alias any source exactly, because each widened sub-block reads every
/// source before it writes.
template <class Conv, class Op>
void narrowBlock(void* outRaw, const void* const* srcs, int nsrcs, std::size_t off, std::size_t n,
                 std::uint32_t divisor) noexcept {
  using S = typename Conv::Storage;
  using W = Words<Conv>;
  S* out = static_cast<S*>(outRaw);
  const auto src = [&](int k) { return static_cast<const S*>(srcs[k]) + off; };
  if (nsrcs == 1 && divisor == 0) {
    // A single source is returned bit for bit (NaN payloads included), not round-tripped.
    if (out != src(0)) std::memcpy(out, src(0), n * sizeof(S));
    return;
  }
  constexpr std::size_t kSubBlock = kWidenWords * W::kLanes;  // values per sub-block
  alignas(64) float acc[W::kLanes * kWidenWords];
  const std::size_t whole = n - n % W::kLanes;  // values in whole words
  for (std::size_t b = 0; b < whole; b += kSubBlock) {
    const std::size_t nw = std::min(kSubBlock, whole - b) / W::kLanes;
    if (nsrcs == 1) {
      widenWords<Conv>(acc, src(0) + b, nw);
    } else {
      widenCombineWords<Conv, Op>(acc, src(0) + b, src(1) + b, nw);
    }
    for (int k = 2; k < nsrcs; ++k) widenAccumulateWords<Conv, Op>(acc, src(k) + b, nw);
    if (divisor > 0) {
      narrowWordsDivided<Conv>(out + b, acc, nw, static_cast<float>(divisor));
    } else {
      narrowWords<Conv>(out + b, acc, nw);
    }
  }
  // The last 1-3 values that do not fill a word, one at a time with the same conversions.
  for (std::size_t i = whole; i < n; ++i) {
    float a = Conv::toFloat(src(0)[i]);
    for (int k = 1; k < nsrcs; ++k) a = Op::apply(a, Conv::toFloat(src(k)[i]));
    if (divisor > 0) a = a / static_cast<float>(divisor);
    out[i] = static_cast<S>(Conv::fromFloat(a));
  }
}

/// Lets the tests run the portable kernels on machines that have the optional instructions.
std::atomic<bool> gBaselineOnly{false};

#if COPRO_REDUCE_X86
// ---------------------------------------------------------------------------------------------
// float16 on CPUs with F16C (x86 since 2012), chosen at run time: one instruction converts 8 values,
// where the portable bit manipulation above costs ~20 instructions per 4. Same results: F16C rounds
// to nearest even (immediate rounding mode, so MXCSR does not matter) and quiets NaN keeping the
// top payload bits, as floatToNarrow does.

#define COPRO_F16C_TARGET __attribute__((target("avx,f16c")))

/// float16 values converted at a time: 4 KiB float32 accumulators.
constexpr std::size_t kF16cSubBlock = 1024;

COPRO_F16C_TARGET void widenF16c(float* __restrict acc, const std::uint16_t* a, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(acc + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i))));
  }
  for (; i < n; ++i) acc[i] = detail::narrowToFloat<detail::HalfFormat>(a[i]);
}

template <bool kDivide>
COPRO_F16C_TARGET void narrowF16c(std::uint16_t* d, const float* __restrict acc, std::size_t n, float q) noexcept {
  std::size_t i = 0;
  const __m256 qv = _mm256_set1_ps(q);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(acc + i);
    if constexpr (kDivide) v = _mm256_div_ps(v, qv);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) {
    const float v = kDivide ? acc[i] / q : acc[i];
    d[i] = static_cast<std::uint16_t>(detail::floatToNarrow<detail::HalfFormat>(v));
  }
}

/// Auto-vectorized with 256-bit AVX inside the F16C clone.
template <class Op>
COPRO_F16C_TARGET void accumulateF32(float* __restrict acc, const float* __restrict x, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) acc[i] = Op::apply(acc[i], x[i]);
}

template <class Op>
COPRO_F16C_TARGET void halfBlockF16c(void* outRaw, const void* const* srcs, int nsrcs, std::size_t off, std::size_t n,
                                     std::uint32_t divisor) noexcept {
  auto* out = static_cast<std::uint16_t*>(outRaw);
  const auto src = [&](int k) { return static_cast<const std::uint16_t*>(srcs[k]) + off; };
  if (nsrcs == 1 && divisor == 0) {
    if (out != src(0)) std::memcpy(out, src(0), n * sizeof(std::uint16_t));
    return;
  }
  alignas(64) float acc[kF16cSubBlock];
  alignas(64) float tmp[kF16cSubBlock];
  for (std::size_t b = 0; b < n; b += kF16cSubBlock) {
    const std::size_t m = std::min(kF16cSubBlock, n - b);
    widenF16c(acc, src(0) + b, m);
    for (int k = 1; k < nsrcs; ++k) {
      widenF16c(tmp, src(k) + b, m);
      accumulateF32<Op>(acc, tmp, m);
    }
    if (divisor > 0) {
      narrowF16c<true>(out + b, acc, m, static_cast<float>(divisor));
    } else {
      narrowF16c<false>(out + b, acc, m, 1.0f);
    }
  }
}

#undef COPRO_F16C_TARGET

/// AVX + F16C usable: the CPU has them and the OS saves the YMM registers (XCR0 bits 1 and 2).
bool cpuHasAvxF16c() noexcept {
  unsigned eax = 0;
  unsigned ebx = 0;
  unsigned ecx = 0;
  unsigned edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  constexpr unsigned kOsxsave = 1u << 27;
  constexpr unsigned kAvx = 1u << 28;
  constexpr unsigned kF16c = 1u << 29;
  if ((ecx & (kOsxsave | kAvx | kF16c)) != (kOsxsave | kAvx | kF16c)) return false;
  unsigned xcr0 = 0;
  unsigned xcr0High = 0;
  __asm__("xgetbv" : "=a"(xcr0), "=d"(xcr0High) : "c"(0));
  return (xcr0 & 6u) == 6u;
}

bool useF16c() noexcept {
  static const bool kSupported = cpuHasAvxF16c();
  return kSupported && !gBaselineOnly.load(std::memory_order_relaxed);
}
#endif  // COPRO_REDUCE_X86

// ---------------------------------------------------------------------------------------------
// Dispatch.

using BlockFn = void (*)(void* out, const void* const* srcs, int nsrcs, std::size_t off, std::size_t n,
                         std::uint32_t divisor) noexcept;

template <class Op>
BlockFn blockFnForOp(DataType type) noexcept {
  switch (type) {
    case DataType::kInt8:
      return &wideBlock<std::int8_t, Op>;
    case DataType::kUint8:
      return &wideBlock<std::uint8_t, Op>;
    case DataType::kInt32:
      return &wideBlock<std::int32_t, Op>;
    case DataType::kUint32:
      return &wideBlock<std::uint32_t, Op>;
    case DataType::kInt64:
      return &wideBlock<std::int64_t, Op>;
    case DataType::kUint64:
      return &wideBlock<std::uint64_t, Op>;
    case DataType::kFloat16:
#if COPRO_REDUCE_X86
      if (useF16c()) return &halfBlockF16c<Op>;
#endif
      return &narrowBlock<HalfConv, Op>;
    case DataType::kBfloat16:
      return &narrowBlock<Bfloat16Conv, Op>;
    case DataType::kFloat32:
      return &wideBlock<float, Op>;
    case DataType::kFloat64:
      return &wideBlock<double, Op>;
    case DataType::kFloat8E4M3:
      return &narrowBlock<E4M3Conv, Op>;
    case DataType::kFloat8E5M2:
      return &narrowBlock<E5M2Conv, Op>;
  }
  return nullptr;
}

BlockFn blockFn(DataType type, ReduceOp op) noexcept {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:  // the division, if any, is the divisor's job
      return blockFnForOp<SumOp>(type);
    case ReduceOp::kProd:
      return blockFnForOp<ProdOp>(type);
    case ReduceOp::kMin:
      return blockFnForOp<MinOp>(type);
    case ReduceOp::kMax:
      return blockFnForOp<MaxOp>(type);
  }
  return nullptr;
}

bool isNarrowFloat(DataType type) noexcept {
  return type == DataType::kFloat16 || type == DataType::kBfloat16 || type == DataType::kFloat8E4M3 ||
         type == DataType::kFloat8E5M2;
}

/// Whether `out` can be reduced into directly: see wideBlock for the one aliasing case that cannot.
bool canReduceInPlace(const void* out, const void* const* srcs, int nsrcs, DataType type) noexcept {
  if (isNarrowFloat(type)) return true;
  for (int k = kFirstPassSources; k < nsrcs; ++k) {
    if (srcs[k] == out) return false;
  }
  return true;
}

/// Copies `n` bytes from `s` to each of `nd` destinations that share their address modulo 16, with
/// 16-byte non-temporal stores (unaligned head and tail bytes through memcpy). Each 64-byte chunk is
/// loaded once and stored to every destination before the next one, so all write streams advance
/// together: ~20% faster than one destination after another for 4 sources and 4 destinations
/// (docs/kernels.md). The caller issues the final storeFence().
void streamStore(unsigned char* const* d, int nd, const unsigned char* s, std::size_t n) noexcept {
#if COPRO_REDUCE_X86
  const std::size_t head = std::min(n, (16 - (reinterpret_cast<std::uintptr_t>(d[0]) & 15)) & 15);
  for (int j = 0; j < nd; ++j) std::memcpy(d[j], s, head);
  std::size_t i = head;
  for (; i + 64 <= n; i += 64) {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 16));
    const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 32));
    const __m128i v3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 48));
    for (int j = 0; j < nd; ++j) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(d[j] + i), v0);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d[j] + i + 16), v1);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d[j] + i + 32), v2);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d[j] + i + 48), v3);
    }
  }
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    for (int j = 0; j < nd; ++j) _mm_stream_si128(reinterpret_cast<__m128i*>(d[j] + i), v);
  }
  for (int j = 0; j < nd; ++j) std::memcpy(d[j] + i, s + i, n - i);
#else
  for (int j = 0; j < nd; ++j) std::memcpy(d[j], s, n);
#endif
}

/// Orders the non-temporal stores before anything the caller does next (e.g. signalling a peer).
void storeFence() noexcept {
#if COPRO_REDUCE_X86
  _mm_sfence();
#endif
}

}  // namespace

namespace detail {
/// Not part of the public API (the tests declare it): restricts the kernels to the baseline ISA so
/// both the run-time dispatched and the portable code paths can be tested on one machine.
void setReduceBaselineOnlyForTesting(bool baselineOnly) noexcept {
  gBaselineOnly.store(baselineOnly, std::memory_order_relaxed);
}
}  // namespace detail

bool reduceSupported(DataType type, ReduceOp op) noexcept {
  return static_cast<int>(type) < kNumDataTypes && static_cast<int>(op) < kNumReduceOps;
}

void reduceInto(void* dst, const void* const* srcs, int nsrcs, std::size_t count, DataType type, ReduceOp op,
                std::uint32_t divisor) noexcept {
  if (count == 0 || nsrcs < 1 || !reduceSupported(type, op)) return;
  const std::size_t size = dataTypeSize(type);
  if (nsrcs == 1 && divisor == 0) {
    if (dst != srcs[0]) std::memcpy(dst, srcs[0], count * size);
    return;
  }
  const BlockFn fn = blockFn(type, op);
  const std::size_t blockElems = kBlockBytes / size;
  auto* d = static_cast<unsigned char*>(dst);
  if (canReduceInPlace(dst, srcs, nsrcs, type)) {
    // Single-pass reductions gain nothing from blocking; multi-pass ones keep the block in cache.
    const bool onePass = nsrcs <= kFirstPassSources && divisor == 0;
    const std::size_t step = onePass ? count : blockElems;
    for (std::size_t off = 0; off < count; off += step)
      fn(d + off * size, srcs, nsrcs, off, std::min(step, count - off), divisor);
    return;
  }
  alignas(64) unsigned char tmp[kBlockBytes];
  for (std::size_t off = 0; off < count; off += blockElems) {
    const std::size_t n = std::min(blockElems, count - off);
    fn(tmp, srcs, nsrcs, off, n, divisor);
    std::memcpy(d + off * size, tmp, n * size);
  }
}

namespace {

/// Bytes of one last-level cache as Linux describes this CPU's (sysfs: the size of one instance, as
/// lscpu shows it), else as the C library reports it (which on some VMs is the whole package's); 0 when
/// neither says.
std::size_t lastLevelCacheBytes() noexcept {
  if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
    unsigned long kib = 0;
    char unit = 0;
    const int got = std::fscanf(f, "%lu%c", &kib, &unit);
    std::fclose(f);
    if (got == 2 && (unit == 'K' || unit == 'k')) return static_cast<std::size_t>(kib) << 10;
    if (got == 2 && (unit == 'M' || unit == 'm')) return static_cast<std::size_t>(kib) << 20;
  }
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return l3 > 0 ? static_cast<std::size_t>(l3) : 0;
}

}  // namespace

std::size_t streamCopyThreshold() noexcept {
  static const std::size_t threshold = [] {
    const std::size_t l3 = lastLevelCacheBytes();
    if (l3 == 0) return kStreamThresholdBytes;
    return std::clamp(l3 / 8, kStreamThresholdBytes, kStreamCopyMaxThresholdBytes);
  }();
  return threshold;
}

void streamCopy(void* dst, const void* src, std::size_t bytes) noexcept {
  if (bytes == 0 || dst == src) return;
  if (bytes < streamCopyThreshold()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  unsigned char* d = static_cast<unsigned char*>(dst);
  streamStore(&d, 1, static_cast<const unsigned char*>(src), bytes);
  storeFence();
}

namespace {

/// Bit j set: destination j (j < 64) is also a source (an in-place call). Such a line was just read,
/// so it is in cache: ordinary stores hit it, while a non-temporal store would evict the line it has
/// just loaded and write it to memory again (in-place lsa all-reduce ran at half the out-of-place speed
/// on shm before this, docs/kernels.md). Destinations beyond 64 are treated as not aliasing (they
/// are streamed, which is correct either way).
std::uint64_t sourceAliasMask(void* const* dsts, int ndsts, const void* const* srcs, int nsrcs) noexcept {
  std::uint64_t mask = 0;
  for (int j = 0; j < ndsts && j < 64; ++j) {
    for (int k = 0; k < nsrcs; ++k) {
      if (dsts[j] == srcs[k]) mask |= std::uint64_t{1} << j;
    }
  }
  return mask;
}

bool aliased(std::uint64_t mask, int j) noexcept {
  return j < 64 && ((mask >> j) & 1) != 0;
}

}  // namespace

void reduceToMany(void* const* dsts, int ndsts, const void* const* srcs, int nsrcs, std::size_t count, DataType type,
                  ReduceOp op, std::uint32_t divisor) noexcept {
  if (count == 0 || ndsts < 1 || nsrcs < 1 || !reduceSupported(type, op)) return;
  const std::size_t size = dataTypeSize(type);
  const bool stream = count * size >= kStreamThresholdBytes;
  const std::uint64_t inCache = stream ? sourceAliasMask(dsts, ndsts, srcs, nsrcs) : 0;
  if (ndsts == 1 && (!stream || aliased(inCache, 0))) {
    reduceInto(dsts[0], srcs, nsrcs, count, type, op, divisor);
    return;
  }
  const BlockFn fn = blockFn(type, op);
  const std::size_t blockElems = kBlockBytes / size;
  // Small outputs are reduced straight into the first destination (it stays in cache for the copies
  // that follow); large ones into a stack block that is streamed out, so no destination line is
  // read for ownership and the block never leaves L1 — except destinations that are sources too.
  const bool intoFirst = (!stream || aliased(inCache, 0)) && canReduceInPlace(dsts[0], srcs, nsrcs, type);
  bool sameAlignment = true;
  for (int j = 1; j < ndsts; ++j) {
    sameAlignment = sameAlignment &&
                    ((reinterpret_cast<std::uintptr_t>(dsts[j]) ^ reinterpret_cast<std::uintptr_t>(dsts[0])) & 15) == 0;
  }
  constexpr int kLockstepMax = 16;  // destinations streamed together; more go in groups
  // (Destinations with different alignments are streamed one after another.)
  alignas(64) unsigned char tmp[kBlockBytes];
  for (std::size_t off = 0; off < count; off += blockElems) {
    const std::size_t n = std::min(blockElems, count - off);
    const std::size_t bytes = n * size;
    unsigned char* out = intoFirst ? static_cast<unsigned char*>(dsts[0]) + off * size : tmp;
    fn(out, srcs, nsrcs, off, n, divisor);
    unsigned char* group[kLockstepMax];
    int ng = 0;
    for (int j = 0; j < ndsts; ++j) {
      auto* d = static_cast<unsigned char*>(dsts[j]) + off * size;
      if (d == out) continue;
      if (!stream || aliased(inCache, j)) {
        std::memcpy(d, out, bytes);
        continue;
      }
      group[ng++] = d;
      if (ng == kLockstepMax || !sameAlignment) {
        streamStore(group, ng, out, bytes);
        ng = 0;
      }
    }
    if (ng > 0) streamStore(group, ng, out, bytes);
  }
  if (stream) storeFence();
}

}  // namespace copro::core
