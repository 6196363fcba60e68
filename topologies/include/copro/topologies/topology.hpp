#pragma once
/// Topology files and builders (docs/design.md, "Topologies"; docs/topologies.md): a YAML file names a
/// builder and its parameters (or lists nodes and links explicitly) and gets a finalized Fabric.
///
///   name: deepseek-v3
///   builder: mpft
///   params: {nodes: 256, node: h800, planes: 8, radix: 64}
///   sim: {routing: ecmp, chunk_size: 1M}
///
/// Errors a user can make (unknown builder, key or parameter, bad unit, missing key, YAML syntax, a radix
/// exceeded, a link to an undeclared node) throw core::Error naming the file, the line, the key and the
/// nearest valid key.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "copro/topologies/fabric.hpp"

namespace copro::topo {

/// Loads a topology file and builds its fabric. `pathOrName` is a file path, or the name of a bundled
/// file ("deepseek-v3" -> deepseek-v3.yaml) searched in the directories of COPRO_TOPOLOGY_PATH
/// (colon-separated) and then in the bundled folder. `overrides` are "key=value": a builder parameter
/// ("nic_bw=50GB/s", "nodes=16") or a simulator key ("sim.routing=shortest"). Returns a finalized Fabric.
Fabric loadTopology(const std::string& pathOrName, const std::vector<std::string>& overrides = {});
/// The same from the text of a topology file; `path` names it in errors and gives the default name.
Fabric loadTopologyText(const std::string& yamlText, const std::string& path,
                        const std::vector<std::string>& overrides = {});

/// Builds a fabric from a builder name and its parameters as text (units as in files: "400Gb/s",
/// "500ns"); parameters left out take the builder's defaults. Returns a finalized Fabric.
Fabric buildTopology(const std::string& builder, const std::map<std::string, std::string>& params);

/// One parameter of a builder, for `copro-topo builders` and error suggestions.
struct BuilderParam {
  std::string name;
  std::string defaultValue;  ///< as text; "" where the node template or another parameter decides
  std::string doc;
};

/// A builder: its name, what it builds, and its parameters.
struct BuilderInfo {
  std::string name;
  std::string doc;
  std::vector<BuilderParam> params;
};

/// Names of every builder ("h800_node", "fat_tree", "mpft", "graph", ...).
std::vector<std::string> builderNames();
/// The description of one builder; throws core::Error (suggesting the nearest name) for an unknown one.
const BuilderInfo& builderInfo(const std::string& builder);

/// Names (without .yaml) of the topology files found in COPRO_TOPOLOGY_PATH and the bundled folder, sorted.
std::vector<std::string> bundledTopologies();
/// The bundled folder: core::dataPath("topologies") (share/copro/topologies; throws core::Error when missing).
std::string bundledTopologyDirectory();
/// The file `pathOrName` refers to (see loadTopology); throws core::Error listing the nearest bundled
/// name when there is none.
std::string resolveTopologyPath(const std::string& pathOrName);

/// Options of toDot.
struct DotOptions {
  /// Above this many nodes, each server is drawn as one box; above it again, the drawing stops there
  /// and says how many nodes it left out.
  std::int32_t maxNodes = 300;
};

/// Graphviz text of the fabric: one cluster per server, switches by tier, link labels with bandwidths.
std::string toDot(const Fabric& fabric);
std::string toDot(const Fabric& fabric, const DotOptions& options);

/// A human-readable summary: nodes per kind, links per kind with bandwidths and latencies, hosts, GPUs,
/// rails and planes, switches per tier, bisection bandwidth where the builder knows it, sim parameters.
std::string describe(const Fabric& fabric);

/// Likely mistakes in a valid fabric, one sentence each (copro-topo validate/show and copro-sim print them
/// on stderr): NICs whose line rate is above the PCIe link that feeds them (transfers are then capped by
/// PCIe).
std::vector<std::string> fabricWarnings(const Fabric& fabric);

/// Formats a bandwidth the way files write it ("50GB/s", "400Gb/s" is shown as "50GB/s").
std::string formatBandwidth(core::Bandwidth bw);
/// Formats a time compactly ("1.5us", "500ns", "0").
std::string formatTime(core::Time t);

}  // namespace copro::topo
