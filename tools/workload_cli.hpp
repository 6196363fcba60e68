#pragma once
/// `copro-sim workload FILE` (or `--chakra PREFIX`, a Chakra execution trace): runs a workload DAG (docs/workloads.md)
/// with sim::runWorkload, its communication tasks simulated by sim::WorkloadComm: alone, and together where they
/// overlap.
#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace copro::tools {

/// The options of the `workload` subcommand.
struct WorkloadCliArgs {
  std::string file;
  std::string chakra;             ///< Chakra trace prefix (PREFIX.<rank>.et) instead of a file
  std::string chakraGroups;       ///< process groups of the trace (JSON {"name": [ranks]})
  std::int32_t chakraRanks = 0;   ///< ranks of the trace; 0: every PREFIX.<r>.et that exists
  std::string topology;           ///< empty: the file's `topology:`
  std::vector<std::string> sets;  ///< key=value, after the file's `sim:`/`set:` overrides
  std::string initiation;         ///< empty: each task's own; else device, proxy or offload for every task
  std::string csvPath;            ///< per-task CSV
  std::string tracePath;          ///< Chrome trace / Perfetto JSON of the tasks
  bool alone = false;             ///< every communication task alone: overlapping tasks do not contend
};

/// Adds the `workload` subcommand (its options fill `args`) and returns it.
CLI::App* addWorkloadCommand(CLI::App& app, WorkloadCliArgs& args);

/// Runs the subcommand: prints the step time, the per-task table and the SM-sharing loss; returns the exit
/// status. Throws core::Error for bad input (file, topology, task parameters).
int runWorkloadCommand(const WorkloadCliArgs& args);

}  // namespace copro::tools
