#pragma once
/// The builder registry and the pieces builders share (servers from node templates, network tiers).
/// Private to the topologies module; docs/topologies.md documents every builder and parameter.
#include <cstdint>
#include <string>
#include <vector>

#include "copro/topologies/fabric.hpp"
#include "copro/topologies/topology.hpp"
#include "params.hpp"

namespace copro::topo::detail {

/// Adds the nodes and links of one builder to an empty fabric and sets bisectionBandwidth where known.
using BuildFn = void (*)(Fabric& fabric, const Params& params);

struct BuilderEntry {
  BuilderInfo info;
  BuildFn build = nullptr;  ///< nullptr for "graph", which the file loader builds from `nodes:`/`links:`
};

/// Every builder, in the order `copro-topo builders` lists them.
const std::vector<BuilderEntry>& builderRegistry();
/// The entry of `name`, or nullptr.
const BuilderEntry* findBuilder(const std::string& name);

}  // namespace copro::topo::detail
