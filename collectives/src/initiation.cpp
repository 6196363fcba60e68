#include "copro/collectives/transform.hpp"

namespace copro::collectives {

// Placeholder until per-lane initiation lands: returns the Program unchanged.
std::shared_ptr<const core::ProgramSource> assignInitiation(std::shared_ptr<const core::ProgramSource> source,
                                                            const std::vector<int>& /*nodeOfRank*/,
                                                            core::Initiation /*scaleUp*/,
                                                            core::Initiation /*scaleOut*/) {
  return source;
}

}  // namespace copro::collectives
