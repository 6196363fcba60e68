#pragma once
/// The flat interpreter: the one place that says what each op code does, over flat op records.
///
/// An executor (a transport's lane engine, a GPU kernel, the simulator) supplies a *port* with one
/// member per op code; `interpretOp` resolves an op's indirect geometry from the executing rank's
/// Layout words and dispatches to the port. Everything here is header-only, allocates nothing, throws
/// nothing and is callable from device code (`COPRO_HD`), so the same op meaning serves the host
/// engines and kernels. Faults are small codes (`GeometryFault`); the host formats messages from them.
///
/// A port has, each returning `OpStep` and taking (const FlatOpView&, const OpGeometry&):
///   put, get, signal, wait, reduce, putReduce, multicast, copy, flush
/// and `OpStep unknownOp(const FlatOpView&)` and `OpStep badGeometry(const FlatOpView&, const OpGeometry&)`.
/// A host port declares the op members with COPRO_FLAT_PORT_OPS (below), so their list is written once.
#include <cstdint>

#include "copro/core/flat_program.hpp"

namespace copro::core {

/// What running an op did: it completed, it must be retried later (a peer or a semaphore is not ready),
/// or it failed (the port recorded why).
enum class OpStep : std::uint8_t { kDone, kBlocked, kFailed };

/// Why an indirect op's geometry could not be resolved.
enum class GeometryFault : std::uint8_t {
  kNone,
  kSlotOutsideLayout,  ///< `slot` is not a word of the layout (`words` of them)
  kScaleOverflow,      ///< layout[slot] (`word`) times the scale does not fit 64 bits
};

/// Which indirect field a fault is about, in the order they are read.
enum class GeometryField : std::uint8_t { kBytes, kSrcOffset, kDstOffset };

/// An op's size and the shifts of its offsets after its indirect fields; the fault fields say where
/// resolution stopped when `fault != kNone`.
struct OpGeometry {
  std::uint64_t bytes = 0;
  std::uint64_t srcShift = 0;
  std::uint64_t dstShift = 0;
  GeometryFault fault = GeometryFault::kNone;
  GeometryField field = GeometryField::kBytes;
  std::int32_t slot = kNoSlot;
  std::uint64_t word = 0;
};

namespace flat_detail {
/// Reads one indirect slot into `out` (unchanged for kNoSlot); false with the fault recorded in `g`.
COPRO_HD inline bool readSlot(const Indirect& ind, std::int32_t slot, GeometryField field, const std::uint64_t* layout,
                              std::uint64_t words, std::uint64_t& out, OpGeometry& g) {
  if (slot == kNoSlot) return true;
  g.field = field;
  g.slot = slot;
  if (slot < 0 || static_cast<std::uint64_t>(slot) >= words) {
    g.fault = GeometryFault::kSlotOutsideLayout;
    return false;
  }
  const std::uint64_t w = layout[slot];
  const std::uint64_t scale = ind.bytesScale;
  if (scale != 0 && w > UINT64_MAX / scale) {
    g.word = w;
    g.fault = GeometryFault::kScaleOverflow;
    return false;
  }
  out = w * scale;
  return true;
}
}  // namespace flat_detail

/// Size and offset shifts of `op` after its indirect fields, read from the executing rank's `words`
/// Layout words (bytes first, then the source, then the destination offset).
COPRO_HD inline OpGeometry resolveGeometry(const FlatOp& op, const std::uint64_t* layout, std::uint64_t words) {
  OpGeometry g;
  g.bytes = op.bytes;
  const Indirect& ind = op.indirect;
  if (ind.bytesSlot == kNoSlot && ind.srcOffsetSlot == kNoSlot && ind.dstOffsetSlot == kNoSlot) return g;
  (void)(flat_detail::readSlot(ind, ind.bytesSlot, GeometryField::kBytes, layout, words, g.bytes, g) &&
         flat_detail::readSlot(ind, ind.srcOffsetSlot, GeometryField::kSrcOffset, layout, words, g.srcShift, g) &&
         flat_detail::readSlot(ind, ind.dstOffsetSlot, GeometryField::kDstOffset, layout, words, g.dstShift, g));
  return g;
}

/// `offset + shift`, false when it wraps (an indirect offset overflow).
COPRO_HD inline bool shiftOffset(std::uint64_t offset, std::uint64_t shift, std::uint64_t& out) {
  out = offset + shift;
  return out >= offset;
}

/// A wait is satisfied once the semaphore reached the epoch base plus the op's threshold.
COPRO_HD inline bool waitSatisfied(std::uint64_t semValue, std::uint64_t epochBase, std::uint64_t threshold) {
  return semValue >= epochBase + threshold;
}

/// Declares, inside a host port's class, the member of every op code that interpretOp calls: each
/// `OpStep NAME(const FlatOpView&, const OpGeometry&)`, defined by the port.
#define COPRO_FLAT_PORT_OPS                                                                                 \
  ::copro::core::OpStep put(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g);       \
  ::copro::core::OpStep get(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g);       \
  ::copro::core::OpStep signal(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g);    \
  ::copro::core::OpStep wait(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g);      \
  ::copro::core::OpStep reduce(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g);    \
  ::copro::core::OpStep putReduce(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g); \
  ::copro::core::OpStep multicast(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g); \
  ::copro::core::OpStep copy(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g);      \
  ::copro::core::OpStep flush(const ::copro::core::FlatOpView& op, const ::copro::core::OpGeometry& g)

/// Runs one op on `port`: resolves its geometry from `layout` and dispatches on its code.
template <typename Port>
COPRO_HD OpStep interpretOp(Port& port, const FlatOpView& op, const std::uint64_t* layout, std::uint64_t words) {
  const FlatOp& r = *op.rec;
  if (static_cast<int>(r.code) >= kNumOpCodes) return port.unknownOp(op);
  OpGeometry g;
  if (r.code != OpCode::kSignal && r.code != OpCode::kWait && r.code != OpCode::kFlush) {
    g = resolveGeometry(r, layout, words);
    if (g.fault != GeometryFault::kNone) return port.badGeometry(op, g);
  }
  switch (r.code) {
    case OpCode::kPut:
      return port.put(op, g);
    case OpCode::kGet:
      return port.get(op, g);
    case OpCode::kSignal:
      return port.signal(op, g);
    case OpCode::kWait:
      return port.wait(op, g);
    case OpCode::kReduce:
      return port.reduce(op, g);
    case OpCode::kPutReduce:
      return port.putReduce(op, g);
    case OpCode::kMulticast:
      return port.multicast(op, g);
    case OpCode::kCopy:
      return port.copy(op, g);
    case OpCode::kFlush:
      return port.flush(op, g);
  }
  return port.unknownOp(op);
}

}  // namespace copro::core
