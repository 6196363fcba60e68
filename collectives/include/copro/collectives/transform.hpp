#pragma once
/// Program transformations applied after an algorithm built a Program (docs/design.md, "Transformations:
/// PXN and initiation"). The Communicator and buildProgram() apply them as
/// CollectiveArgs say, so real executors and the simulator run the same transformed Program.
#include <cstdint>
#include <memory>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/program.hpp"

namespace copro::collectives {

/// PXN (docs/pxn.md): with `level` >= 1, a put (and the signals ordered after it) from rank s to a rank d on
/// another node whose local index differs from s's goes over the scale-up fabric to the rank of s's node
/// with d's local index (the relay, on d's rail), which forwards it over its own NIC; the signal follows
/// the data. Level 2 also aggregates at the relay messages of several local ranks to one remote rank.
/// Returns `source` itself when level is 0 or there is one node.
std::shared_ptr<const core::ProgramSource> applyPxn(std::shared_ptr<const core::ProgramSource> source,
                                                    const std::vector<int>& nodeOfRank, int level);

/// Sets each lane's initiation (docs/initiation.md): lanes that reach another node get `scaleOut`, the
/// others `scaleUp`. Returns `source` itself when there is one node and scaleUp is the lanes' mode already.
std::shared_ptr<const core::ProgramSource> assignInitiation(std::shared_ptr<const core::ProgramSource> source,
                                                            const std::vector<int>& nodeOfRank,
                                                            core::Initiation scaleUp, core::Initiation scaleOut);

/// Both, as `args` say (PXN first). Send/recv Programs (valid for one rank only) get initiation only.
std::shared_ptr<const core::ProgramSource> applyTransforms(std::shared_ptr<const core::ProgramSource> source,
                                                           const CollectiveArgs& args);

}  // namespace copro::collectives
