#pragma once
/// `copro-sim moe`: one MoE dispatch + combine on a simulated fabric (docs/moe.md).
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace copro::tools {

struct MoeCliArgs {
  std::string topology;
  int ep = 0;  ///< ranks (0: every GPU)
  int tokens = 4096;
  int hidden = 7168;
  int topk = 8;
  int experts = 256;
  std::string path = "forward";
  std::string dtype = "fp8";
  std::string routing = "uniform";
  int maxNodes = 0;
  std::uint64_t seed = 1;
  bool payloadOnly = false;
  int directLanes = 32;  ///< direct path: issuing lanes (the low-latency kernel's warp budget)
  int relay = 32;
  int top = 0;  ///< busiest links of each phase to list        ///< forward path: relay pieces of this many tokens
                ///< (cut-through); 0 = store-and-forward
  std::vector<std::string> sets;
  bool csv = false;
  int pxn = 0;                    ///< --pxn (docs/pxn.md)
  std::string initiation;         ///< --initiation: every lane
  std::string initiationScaleUp;  ///< --initiation-scaleup
  std::string initiationScaleOut;
  double maxWall = 0;  ///< --max-wall: seconds of wall time for the dispatch and the combine together (0: none)
};

/// Adds the `moe` subcommand (its options fill `args`) and returns it.
CLI::App* addMoeCommand(CLI::App& app, MoeCliArgs& args);
/// Runs it: prints dispatch and combine time, DeepEP-style bandwidth and scale-out/scale-up bytes. Throws
/// core::Error for bad input.
int runMoeCommand(const MoeCliArgs& args);

}  // namespace copro::tools
