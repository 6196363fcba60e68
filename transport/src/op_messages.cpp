/// The text of op faults shared by the lane engines (op_messages.hpp).
#include "op_messages.hpp"

#include "copro/core/dtype.hpp"
#include "copro/core/reduce.hpp"

namespace copro::transport::lanes {

namespace {
const char* fieldName(core::GeometryField f) {
  switch (f) {
    case core::GeometryField::kBytes:
      return "bytes";
    case core::GeometryField::kSrcOffset:
      return "src offset";
    case core::GeometryField::kDstOffset:
      return "dst offset";
  }
  return "?";
}
}  // namespace

std::string geometryFaultMessage(const core::FlatOp& op, const core::OpGeometry& g, std::uint64_t words) {
  const std::string what = std::string("indirect ") + fieldName(g.field);
  if (g.fault == core::GeometryFault::kSlotOutsideLayout) {
    return what + " slot " + std::to_string(g.slot) + " is outside the layout (" + std::to_string(words) + " words)";
  }
  return what + ": layout[" + std::to_string(g.slot) + "] = " + std::to_string(g.word) + " times scale " +
         std::to_string(op.indirect.bytesScale) + " overflows";
}

std::string elementsProblem(const core::FlatOp& op, std::uint64_t bytes, core::ErrorCode& code) {
  code = core::ErrorCode::kInvalidProgram;
  const std::size_t size = core::dataTypeSize(op.dtype);
  if (size == 0) return "unknown data type " + std::to_string(static_cast<int>(op.dtype));
  if (bytes % size != 0) {
    return std::to_string(bytes) + " bytes is not a whole number of " + std::string(core::dataTypeName(op.dtype)) +
           " elements";
  }
  if (!core::reduceSupported(op.dtype, op.redop)) {
    code = core::ErrorCode::kUnsupported;
    return std::string(core::reduceOpName(op.redop)) + " is not supported on " +
           std::string(core::dataTypeName(op.dtype));
  }
  return {};
}

}  // namespace copro::transport::lanes
