#pragma once
// The cluster-scale table of copro-sim-bench (`--table`): the simulator runs a user types at the scale of a
// cluster (ring all-reduce on 1024-16,384 endpoints, all-to-all and MoE on DeepSeek-V3's 2048 GPUs), each
// run as the `copro-sim` command line itself in a child process, timed end to end (median wall time of N
// runs, peak RSS of the child) and set against its target. See docs/sim-bench.md, "The scale table".
#include <string>
#include <vector>

namespace copro::bench {

struct ScaleTableOptions {
  std::vector<std::string> rows;  ///< row names or prefixes; empty: every row
  int repeat = 3;                 ///< runs per row; the median is reported
  double capFactor = 3.0;         ///< a run is stopped at capFactor x its wall target (it misses it anyway)
  std::string coproSim;           ///< the copro-sim binary; empty: found next to this program
  std::string json;               ///< write the rows and every run to this file
  bool list = false;
};

/// Runs the table and prints it; returns 0 when every row ran and met its targets, 1 otherwise.
int runScaleTable(const ScaleTableOptions& opt, const char* argv0);

}  // namespace copro::bench
