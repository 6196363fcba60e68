#pragma once
/// Chakra execution traces in (docs/workloads.md, "Chakra execution traces"): the per-rank trace files that
/// ASTRA-sim and SimAI consume (one protobuf file per rank: a GlobalMetadata record, then varint-delimited
/// Node records) turned into a copro Workload. Compute nodes become compute tasks of their rank with their
/// recorded duration; the k-th collective node of a process group on each of its ranks becomes one
/// collective task on the group; the k-th send from rank a to rank b (per tag) and the k-th receive on b
/// from a become one point-to-point task (a two-rank broadcast from the sender); data and control
/// dependencies become `after` edges. Needs copro built with protobuf (chakraTracesSupported()).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "copro/sim/workload.hpp"

namespace copro::sim {

/// Process groups by name (a node's `pg_name` attribute) -> the ranks of the group, in group-rank order.
using ChakraGroups = std::map<std::string, std::vector<std::int32_t>>;

struct ChakraOptions {
  /// Ranks of the job: files PREFIX.0.et .. PREFIX.(ranks-1).et; 0: every PREFIX.<r>.et from 0 on that exists.
  std::int32_t ranks = 0;
  ChakraGroups groups;  ///< process groups the nodes name; a node without `pg_name` runs on every rank
};

/// Whether this build reads Chakra traces (it was configured with protobuf).
bool chakraTracesSupported() noexcept;

/// The file of one rank: PREFIX.<rank>.et (ASTRA-sim's naming).
std::string chakraTraceFile(const std::string& prefix, std::int32_t rank);

/// Reads the trace files of `prefix` into a Workload (ranks set, no topology). Throws core::Error naming
/// the file, the node id and the field for a file that is missing, truncated or corrupt, an unknown node
/// type or collective, a dependency on a node the file lacks, a send without its receive, a collective
/// some rank of its group never joins, or group members that disagree on its type or size; and
/// kUnsupported when copro was built without protobuf.
Workload loadChakraTrace(const std::string& prefix, const ChakraOptions& options = {});

/// Parses a process-group file (ASTRA-sim's comm-group JSON: {"name": [rank, ...], ...}; YAML works too).
/// Throws core::Error naming the origin and the group for a malformed entry.
ChakraGroups parseChakraGroups(const std::string& text, const std::string& origin);

}  // namespace copro::sim
