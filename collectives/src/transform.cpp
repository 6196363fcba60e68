#include "copro/collectives/transform.hpp"

namespace copro::collectives {

std::shared_ptr<const core::ProgramSource> applyTransforms(std::shared_ptr<const core::ProgramSource> source,
                                                           const CollectiveArgs& args) {
  if (args.kind != CollectiveKind::kSendRecv && args.pxnLevel > 0) {
    source = applyPxn(std::move(source), args.nodeOfRank, args.pxnLevel);
  }
  return assignInitiation(std::move(source), args.nodeOfRank, args.scaleUpInitiation, args.scaleOutInitiation);
}

}  // namespace copro::collectives
