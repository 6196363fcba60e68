#pragma once
/// `copro-sim workload FILE`: runs a workload DAG (docs/workloads.md) with sim::runWorkload, each
/// communication task simulated alone on the Simulator (collectives through sim_runner's runCase, MoE
/// dispatch/combine through tools/moe_sim.hpp's simulateMoeTask).
#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace copro::tools {

/// The options of the `workload` subcommand.
struct WorkloadCliArgs {
  std::string file;
  std::string topology;           ///< empty: the file's `topology:`
  std::vector<std::string> sets;  ///< key=value, after the file's `sim:`/`set:` overrides
  std::string initiation;         ///< empty: each task's own; else device, proxy or offload for every task
  std::string csvPath;            ///< per-task CSV
  std::string tracePath;          ///< Chrome trace / Perfetto JSON of the tasks
};

/// Adds the `workload` subcommand (its options fill `args`) and returns it.
CLI::App* addWorkloadCommand(CLI::App& app, WorkloadCliArgs& args);

/// Runs the subcommand: prints the step time, the per-task table and the SM-sharing loss; returns the exit
/// status. Throws core::Error for bad input (file, topology, task parameters).
int runWorkloadCommand(const WorkloadCliArgs& args);

}  // namespace copro::tools
