#pragma once
/// The portable lane machine: what one lane of a load/store domain does with each flat op, written once
/// for the host compiler and for nvcc (the GPU backend's kernels run it with one thread block per lane;
/// the `lanemachine` backend runs it on host threads so CI checks it on the CPU, docs/gpu.md).
///
/// Every rank's buffers and semaphores are mapped into the executing address space (`LmWorld`: peer
/// memory over NVLink on a GPU, shared memory on the host). A `LaneMachine` is the flat interpreter's port
/// (copro/core/flat_interpreter.hpp): puts, gets, copies and multicasts are loads and stores; a signal is
/// an atomic add on the target's 64-bit semaphore after a release fence; a wait is an acquire load; a
/// put_reduce takes the target's lock word (a busy lock blocks the lane, never spins inside an op). Nothing
/// here allocates or throws: a bad op ends the lane with an `LmFault` the host turns into a message.
/// `Mem` supplies the atomics: `HostLaneMemory`, or `DeviceLaneMemory` where nvcc compiles this header.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "copro/core/flat_interpreter.hpp"
#include "copro/core/host_device.hpp"
#include "copro/core/narrow_float.hpp"

namespace copro::core {

/// One buffer of a rank in the current call.
struct LmBuffer {
  std::byte* base = nullptr;
  std::uint64_t limit = 0;  ///< bytes the Program may touch
  std::uint32_t writable = 1;
};

/// One rank as every lane reaches it.
struct LmRank {
  const LmBuffer* buffers = nullptr;  ///< indexed by BufferId value (extras follow the named ones)
  std::uint32_t numBuffers = 0;
  std::uint64_t* sems = nullptr;  ///< the rank's semaphores, zero at the start of the call
  std::int32_t numSems = 0;
  std::uint32_t* lock = nullptr;  ///< serializes put_reduce into this rank
  const std::uint64_t* layout = nullptr;
  std::uint64_t layoutWords = 0;
};

struct LmWorld {
  const LmRank* ranks = nullptr;
  std::int32_t size = 0;
};

/// Why a lane stopped on an op it could not run.
enum class LmFault : std::uint8_t {
  kNone,
  kUnknownOp,
  kGeometry,     ///< an indirect field could not be resolved
  kRank,         ///< a rank outside the communicator (`rank`)
  kBuffer,       ///< a buffer the call does not have (`rank`, `buffer`)
  kBounds,       ///< [offset, offset + bytes) outside the buffer (`limit`)
  kReadOnly,     ///< a write into the input of an out-of-place call
  kSemaphore,    ///< a semaphore index the Program does not declare
  kElements,     ///< a size that is not a whole number of elements, or an unknown type or operator
  kOverlap,      ///< a reduce whose source and destination overlap partially
  kLocalSource,  ///< a put or multicast whose source names another rank
  kNoTargets,    ///< a reduce without sources or a multicast without targets
};

struct LmFaultInfo {
  LmFault fault = LmFault::kNone;
  std::int32_t rank = -1;
  std::uint32_t buffer = 0;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  std::uint64_t limit = 0;
};

/// Host atomics (GCC/Clang builtins on plain words, so the same layout serves device code).
struct HostLaneMemory {
  static void releaseFence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
  static std::uint64_t acquireLoad(const std::uint64_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
  static void add(std::uint64_t* p, std::uint64_t v) { __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
  static bool tryLock(std::uint32_t* l) {
    std::uint32_t expected = 0;
    return __atomic_compare_exchange_n(l, &expected, 1U, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
  }
  static void unlock(std::uint32_t* l) { __atomic_store_n(l, 0U, __ATOMIC_RELEASE); }
};

#if defined(__CUDACC__)
/// Device atomics at system scope (peer GPUs' memory over NVLink, host-visible semaphores).
struct DeviceLaneMemory {
  __device__ static void releaseFence() { __threadfence_system(); }
  __device__ static std::uint64_t acquireLoad(const std::uint64_t* p) {
    const std::uint64_t v = *reinterpret_cast<const volatile std::uint64_t*>(p);
    __threadfence_system();
    return v;
  }
  __device__ static void add(std::uint64_t* p, std::uint64_t v) {
    atomicAdd_system(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  }
  __device__ static bool tryLock(std::uint32_t* l) { return atomicCAS_system(l, 0U, 1U) == 0U; }
  __device__ static void unlock(std::uint32_t* l) {
    __threadfence_system();
    atomicExch_system(l, 0U);
  }
};
#endif

namespace lm_detail {

COPRO_HD inline std::size_t typeSize(DataType t) {
  switch (t) {
    case DataType::kInt8:
    case DataType::kUint8:
    case DataType::kFloat8E4M3:
    case DataType::kFloat8E5M2:
      return 1;
    case DataType::kFloat16:
    case DataType::kBfloat16:
      return 2;
    case DataType::kInt32:
    case DataType::kUint32:
    case DataType::kFloat32:
      return 4;
    case DataType::kInt64:
    case DataType::kUint64:
    case DataType::kFloat64:
      return 8;
  }
  return 0;
}

COPRO_HD inline void copyBytes(std::byte* dst, const std::byte* src, std::uint64_t n) {
  if (dst == src || n == 0) return;
#if !defined(__CUDA_ARCH__)
  std::memmove(dst, src, n);
#else
  if (dst < src || dst >= src + n) {
    for (std::uint64_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    for (std::uint64_t i = n; i > 0; --i) dst[i - 1] = src[i - 1];  // overlapping, dst above src
  }
#endif
}

/// Element access in the arithmetic type of the reduction: float for the narrow floats, else the type.
template <typename T>
struct Plain {
  using Acc = T;
  COPRO_HD static Acc load(const std::byte* p, std::uint64_t i) {
    T v;
    const std::byte* s = p + i * sizeof(T);
    copyBytes(reinterpret_cast<std::byte*>(&v), s, sizeof(T));
    return v;
  }
  COPRO_HD static void store(std::byte* p, std::uint64_t i, Acc v) {
    copyBytes(p + i * sizeof(T), reinterpret_cast<const std::byte*>(&v), sizeof(T));
  }
};

template <typename Bits, float (*ToFloat)(std::uint32_t), std::uint32_t (*FromFloat)(float)>
struct Narrow {
  using Acc = float;
  COPRO_HD static Acc load(const std::byte* p, std::uint64_t i) {
    Bits b;
    copyBytes(reinterpret_cast<std::byte*>(&b), p + i * sizeof(Bits), sizeof(Bits));
    return ToFloat(b);
  }
  COPRO_HD static void store(std::byte* p, std::uint64_t i, Acc v) {
    const auto b = static_cast<Bits>(FromFloat(v));
    copyBytes(p + i * sizeof(Bits), reinterpret_cast<const std::byte*>(&b), sizeof(Bits));
  }
};

COPRO_HD inline float halfToFloat(std::uint32_t v) {
  return detail::narrowToFloat<detail::HalfFormat>(v);
}
COPRO_HD inline std::uint32_t floatToHalf(float f) {
  return detail::floatToNarrow<detail::HalfFormat>(f);
}
COPRO_HD inline float e4m3ToFloat(std::uint32_t v) {
  return detail::narrowToFloat<detail::E4M3Format>(v);
}
COPRO_HD inline std::uint32_t floatToE4m3(float f) {
  return detail::floatToNarrow<detail::E4M3Format>(f);
}
COPRO_HD inline float e5m2ToFloat(std::uint32_t v) {
  return detail::narrowToFloat<detail::E5M2Format>(v);
}
COPRO_HD inline std::uint32_t floatToE5m2(float f) {
  return detail::floatToNarrow<detail::E5M2Format>(f);
}
COPRO_HD inline float bf16ToFloat(std::uint32_t v) {
  return detail::bfloat16ToFloatInline(v);
}
COPRO_HD inline std::uint32_t floatToBf16(float f) {
  return detail::floatToBfloat16Inline(f);
}

/// a op b. Integer sums and products wrap (computed unsigned, as the host kernels do).
template <typename A>
COPRO_HD A combine(ReduceOp op, A a, A b) {
  if constexpr (std::is_floating_point_v<A>) {
    if (op == ReduceOp::kSum || op == ReduceOp::kAvg) return a + b;
    if (op == ReduceOp::kProd) return a * b;
  } else {
    using U = std::make_unsigned_t<A>;
    if (op == ReduceOp::kSum || op == ReduceOp::kAvg) return static_cast<A>(static_cast<U>(a) + static_cast<U>(b));
    if (op == ReduceOp::kProd) return static_cast<A>(static_cast<U>(a) * static_cast<U>(b));
  }
  if (op == ReduceOp::kMin) return b < a ? b : a;
  return a < b ? b : a;  // kMax
}

/// dsts[0][i] = op(srcs[0][i], ..., srcs[n-1][i]) (then / divisor when divisor > 0), element by element,
/// reading every source before writing, so a destination may alias a source exactly.
template <typename E>
COPRO_HD void reduceElements(std::byte* dst, const std::byte* const* srcs, std::uint32_t nsrcs, std::uint64_t count,
                             ReduceOp op, std::uint32_t divisor) {
  using A = typename E::Acc;
  for (std::uint64_t i = 0; i < count; ++i) {
    A acc = E::load(srcs[0], i);
    for (std::uint32_t k = 1; k < nsrcs; ++k) acc = combine<A>(op, acc, E::load(srcs[k], i));
    if (divisor > 0) acc = static_cast<A>(acc / static_cast<A>(divisor));
    E::store(dst, i, acc);
  }
}

/// Dispatches reduceElements on the data type; false for an unknown type.
COPRO_HD inline bool reduceTyped(DataType t, std::byte* dst, const std::byte* const* srcs, std::uint32_t nsrcs,
                                 std::uint64_t count, ReduceOp op, std::uint32_t divisor) {
  switch (t) {
    case DataType::kInt8:
      reduceElements<Plain<std::int8_t>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kUint8:
      reduceElements<Plain<std::uint8_t>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kInt32:
      reduceElements<Plain<std::int32_t>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kUint32:
      reduceElements<Plain<std::uint32_t>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kInt64:
      reduceElements<Plain<std::int64_t>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kUint64:
      reduceElements<Plain<std::uint64_t>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kFloat32:
      reduceElements<Plain<float>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kFloat64:
      reduceElements<Plain<double>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kFloat16:
      reduceElements<Narrow<std::uint16_t, halfToFloat, floatToHalf>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kBfloat16:
      reduceElements<Narrow<std::uint16_t, bf16ToFloat, floatToBf16>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kFloat8E4M3:
      reduceElements<Narrow<std::uint8_t, e4m3ToFloat, floatToE4m3>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
    case DataType::kFloat8E5M2:
      reduceElements<Narrow<std::uint8_t, e5m2ToFloat, floatToE5m2>>(dst, srcs, nsrcs, count, op, divisor);
      return true;
  }
  return false;
}

}  // namespace lm_detail

/// The most sources one reduce may name here (a GPU thread keeps their pointers in registers).
inline constexpr std::uint32_t kLmMaxSources = 64;

template <typename Mem>
class LaneMachine {
 public:
  COPRO_HD LaneMachine(const LmWorld& world, std::int32_t me) : w_(world), me_(me) {}

  /// Runs op `pc` of `lane`; on kDone the caller moves to the next op, on kBlocked it retries later.
  COPRO_HD OpStep step(const FlatLaneView& lane, std::uint32_t pc) {
    const LmRank& self = w_.ranks[me_];
    return interpretOp(*this, lane.op(pc), self.layout, self.layoutWords);
  }
  [[nodiscard]] COPRO_HD const LmFaultInfo& fault() const { return fault_; }

  // ---- the flat interpreter's port ----
  COPRO_HD OpStep put(const FlatOpView& v, const OpGeometry& g) {
    const FlatOp& op = *v.rec;
    if (op.src.rank != kSelf && op.src.rank != me_) return failAt(LmFault::kLocalSource, op.src.rank);
    std::byte* src = nullptr;
    std::byte* dst = nullptr;
    if (!at(me_, op.src, g.srcShift, g.bytes, false, src) || !at(op.peer, op.dst, g.dstShift, g.bytes, true, dst)) {
      return OpStep::kFailed;
    }
    lm_detail::copyBytes(dst, src, g.bytes);
    return op.sem >= 0 ? signalRank(op.peer, op.sem, op.value) : OpStep::kDone;
  }

  COPRO_HD OpStep get(const FlatOpView& v, const OpGeometry& g) {
    const FlatOp& op = *v.rec;
    std::byte* src = nullptr;
    std::byte* dst = nullptr;
    if (!at(me_, op.dst, g.dstShift, g.bytes, true, dst) || !at(op.peer, op.src, g.srcShift, g.bytes, false, src)) {
      return OpStep::kFailed;
    }
    lm_detail::copyBytes(dst, src, g.bytes);
    return OpStep::kDone;
  }

  COPRO_HD OpStep copy(const FlatOpView& v, const OpGeometry& g) {
    const FlatOp& op = *v.rec;
    std::byte* src = nullptr;
    std::byte* dst = nullptr;
    if (!at(rankOf(op.src.rank), op.src, g.srcShift, g.bytes, false, src) ||
        !at(rankOf(op.dst.rank), op.dst, g.dstShift, g.bytes, true, dst)) {
      return OpStep::kFailed;
    }
    lm_detail::copyBytes(dst, src, g.bytes);
    return OpStep::kDone;
  }

  COPRO_HD OpStep multicast(const FlatOpView& v, const OpGeometry& g) {
    const FlatOp& op = *v.rec;
    if (op.numRanks == 0) return failAt(LmFault::kNoTargets, me_);
    if (op.src.rank != kSelf && op.src.rank != me_) return failAt(LmFault::kLocalSource, op.src.rank);
    std::byte* src = nullptr;
    if (!at(me_, op.src, g.srcShift, g.bytes, false, src)) return OpStep::kFailed;
    for (std::uint32_t i = 0; i < op.numRanks; ++i) {
      std::byte* dst = nullptr;
      if (!at(v.ranks[i], op.dst, g.dstShift, g.bytes, true, dst)) return OpStep::kFailed;
      if (op.sem >= 0 && !semOf(v.ranks[i], op.sem)) return OpStep::kFailed;
    }
    for (std::uint32_t i = 0; i < op.numRanks; ++i) {
      std::byte* dst = nullptr;
      (void)at(v.ranks[i], op.dst, g.dstShift, g.bytes, true, dst);
      lm_detail::copyBytes(dst, src, g.bytes);
      if (op.sem >= 0) (void)signalRank(v.ranks[i], op.sem, op.value);
    }
    return OpStep::kDone;
  }

  COPRO_HD OpStep signal(const FlatOpView& v, const OpGeometry&) {
    return signalRank(v.rec->peer, v.rec->sem, v.rec->value);
  }

  COPRO_HD OpStep wait(const FlatOpView& v, const OpGeometry&) {
    std::uint64_t* sem = semOf(me_, v.rec->sem);
    if (sem == nullptr) return OpStep::kFailed;
    return waitSatisfied(Mem::acquireLoad(sem), 0, v.rec->value) ? OpStep::kDone : OpStep::kBlocked;
  }

  COPRO_HD OpStep reduce(const FlatOpView& v, const OpGeometry& g) {
    const FlatOp& op = *v.rec;
    if (op.numSrcs == 0 || op.numSrcs > kLmMaxSources) return failAt(LmFault::kNoTargets, me_);
    if (!elementsOk(op, g.bytes)) return OpStep::kFailed;
    std::byte* dst = nullptr;
    if (!at(rankOf(op.dst.rank), op.dst, g.dstShift, g.bytes, true, dst)) return OpStep::kFailed;
    const std::byte* srcs[kLmMaxSources];
    for (std::uint32_t i = 0; i < op.numSrcs; ++i) {
      std::byte* s = nullptr;
      if (!at(rankOf(v.srcs[i].rank), v.srcs[i], g.srcShift, g.bytes, false, s)) return OpStep::kFailed;
      if (partialOverlap(s, dst, g.bytes)) return failAt(LmFault::kOverlap, rankOf(v.srcs[i].rank));
      srcs[i] = s;
    }
    const std::uint64_t count = g.bytes / lm_detail::typeSize(op.dtype);
    lm_detail::reduceTyped(op.dtype, dst, srcs, op.numSrcs, count, op.redop, op.divisor);
    return OpStep::kDone;
  }

  COPRO_HD OpStep putReduce(const FlatOpView& v, const OpGeometry& g) {
    const FlatOp& op = *v.rec;
    if (op.src.rank != kSelf && op.src.rank != me_) return failAt(LmFault::kLocalSource, op.src.rank);
    if (!elementsOk(op, g.bytes)) return OpStep::kFailed;
    std::byte* src = nullptr;
    std::byte* dst = nullptr;
    if (!at(me_, op.src, g.srcShift, g.bytes, false, src) || !at(op.peer, op.dst, g.dstShift, g.bytes, true, dst)) {
      return OpStep::kFailed;
    }
    if (partialOverlap(src, dst, g.bytes)) return failAt(LmFault::kOverlap, op.peer);
    if (op.sem >= 0 && semOf(op.peer, op.sem) == nullptr) return OpStep::kFailed;
    std::uint32_t* lock = w_.ranks[op.peer].lock;
    if (lock != nullptr && !Mem::tryLock(lock)) return OpStep::kBlocked;
    const std::byte* srcs[2] = {dst, src};
    lm_detail::reduceTyped(op.dtype, dst, srcs, 2, g.bytes / lm_detail::typeSize(op.dtype), op.redop, op.divisor);
    if (lock != nullptr) Mem::unlock(lock);
    return op.sem >= 0 ? signalRank(op.peer, op.sem, op.value) : OpStep::kDone;
  }

  COPRO_HD OpStep flush(const FlatOpView&, const OpGeometry&) {
    Mem::releaseFence();  // every store of this lane is issued; make them visible before what follows
    return OpStep::kDone;
  }
  COPRO_HD OpStep unknownOp(const FlatOpView&) { return failAt(LmFault::kUnknownOp, me_); }
  COPRO_HD OpStep badGeometry(const FlatOpView&, const OpGeometry&) { return failAt(LmFault::kGeometry, me_); }

 private:
  COPRO_HD std::int32_t rankOf(std::int32_t r) const { return r == kSelf ? me_ : r; }

  COPRO_HD OpStep failAt(LmFault f, std::int32_t rank) {
    fault_.fault = f;
    fault_.rank = rank;
    return OpStep::kFailed;
  }

  /// The address of `a` (shifted) on rank `r`, checked against the buffer's limit and write access.
  COPRO_HD bool at(std::int32_t r, const Addr& a, std::uint64_t shift, std::uint64_t bytes, bool write,
                   std::byte*& out) {
    r = rankOf(r);
    if (r < 0 || r >= w_.size) return failAt(LmFault::kRank, r) == OpStep::kDone;
    const LmRank& rk = w_.ranks[r];
    const auto b = static_cast<std::uint32_t>(a.buf);
    fault_.buffer = b;
    if (b >= rk.numBuffers) return failAt(LmFault::kBuffer, r) == OpStep::kDone;
    const LmBuffer& buf = rk.buffers[b];
    std::uint64_t off = a.offset + shift;
    if (off < a.offset) off = ~std::uint64_t{0};  // wrapped: out of bounds below
    if (bytes > 0 && (off > buf.limit || bytes > buf.limit - off)) {
      fault_.offset = off;
      fault_.bytes = bytes;
      fault_.limit = buf.limit;
      return failAt(LmFault::kBounds, r) == OpStep::kDone;
    }
    if (write && buf.writable == 0 && bytes > 0) return failAt(LmFault::kReadOnly, r) == OpStep::kDone;
    out = buf.base == nullptr ? nullptr : buf.base + off;
    return true;
  }

  COPRO_HD std::uint64_t* semOf(std::int32_t r, std::int32_t sem) {
    r = rankOf(r);
    if (r < 0 || r >= w_.size) {
      failAt(LmFault::kRank, r);
      return nullptr;
    }
    const LmRank& rk = w_.ranks[r];
    if (sem < 0 || sem >= rk.numSems) {
      fault_.offset = static_cast<std::uint64_t>(sem < 0 ? 0 : sem);
      failAt(LmFault::kSemaphore, r);
      return nullptr;
    }
    return rk.sems + sem;
  }

  COPRO_HD OpStep signalRank(std::int32_t r, std::int32_t sem, std::uint64_t value) {
    std::uint64_t* s = semOf(r, sem);
    if (s == nullptr) return OpStep::kFailed;
    Mem::releaseFence();  // the data before the signal
    Mem::add(s, value);
    return OpStep::kDone;
  }

  COPRO_HD bool elementsOk(const FlatOp& op, std::uint64_t bytes) {
    const std::size_t es = lm_detail::typeSize(op.dtype);
    if (es == 0 || bytes % es != 0 || static_cast<int>(op.redop) >= kNumReduceOps) {
      fault_.bytes = bytes;
      return failAt(LmFault::kElements, me_) == OpStep::kDone;
    }
    return true;
  }

  COPRO_HD static bool partialOverlap(const std::byte* a, const std::byte* b, std::uint64_t n) {
    if (a == b || n == 0) return false;
    return a < b + n && b < a + n;
  }

  LmWorld w_;
  std::int32_t me_;
  LmFaultInfo fault_{};
};

}  // namespace copro::core
