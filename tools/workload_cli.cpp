/// `copro-sim workload`: a DAG of compute and communication tasks (docs/workloads.md).
#include "workload_cli.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "copro/collectives/moe.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/file_read.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/chakra_trace.hpp"
#include "copro/sim/params.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/sim/workload.hpp"
#include "copro/sim/workload_comm.hpp"
#include "copro/topologies/topology.hpp"
#include "sim_runner.hpp"

namespace copro::tools {

namespace {

using core::Error;
using core::ErrorCode;

std::string jsonEscape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string fmtUs(core::Time t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", t.microseconds());
  return buf;
}

std::string ranksOf(const sim::Task& t, std::int32_t nranks) {
  if (t.kind != sim::TaskKind::kCompute && !t.comm.placement.empty()) {
    std::string list;
    for (const std::int32_t r : t.comm.placement) list += (list.empty() ? "" : "+") + std::to_string(r);
    return list;
  }
  const std::int32_t first = t.numRanks > 0 ? t.firstRank : 0;
  const std::int32_t count = t.numRanks > 0 ? t.numRanks : nranks;
  return std::to_string(first) + "-" + std::to_string(first + count - 1);
}

}  // namespace

CLI::App* addWorkloadCommand(CLI::App& app, WorkloadCliArgs& args) {
  CLI::App* cmd = app.add_subcommand("workload", "run a DAG of compute and communication tasks (docs/workloads.md)");
  CLI::Option* file = cmd->add_option("file", args.file, "workload YAML file (see workloads/)");
  CLI::Option* chakra =
      cmd->add_option("--chakra", args.chakra, "a Chakra execution trace instead: files PREFIX.<rank>.et");
  file->excludes(chakra);
  chakra->excludes(file);
  cmd->add_option("--chakra-groups", args.chakraGroups, "process groups of the trace: JSON {\"name\": [ranks]}")
      ->needs(chakra);
  cmd->add_option("--chakra-ranks", args.chakraRanks, "ranks of the trace (default: every PREFIX.<r>.et)")
      ->needs(chakra);
  cmd->add_option("--topology,-t", args.topology, "topology file or bundled name (default: the file's `topology:`)");
  cmd->add_option("--set", args.sets, "override key=value (builder parameter or sim.key), after the file's");
  cmd->add_option("--initiation", args.initiation, "device, proxy or offload for every communication task");
  cmd->add_option("--csv", args.csvPath, "write the per-task table to this CSV file");
  cmd->add_option("--trace", args.tracePath, "write a Chrome trace / Perfetto JSON of the tasks to this file");
  cmd->add_flag("--alone", args.alone,
                "time every communication task alone (overlapping tasks do not contend for links)");
  return cmd;
}

namespace {

sim::Workload loadAnyWorkload(const WorkloadCliArgs& args) {
  if (args.chakra.empty() && args.file.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "workload: give a workload FILE or --chakra PREFIX");
  }
  if (args.chakra.empty()) return sim::loadWorkload(args.file);
  sim::ChakraOptions options;
  options.ranks = args.chakraRanks;
  if (!args.chakraGroups.empty()) {
    options.groups = sim::parseChakraGroups(
        core::readBoundedFile(args.chakraGroups, "process groups '" + args.chakraGroups + "'"), args.chakraGroups);
  }
  return sim::loadChakraTrace(args.chakra, options);
}

}  // namespace

int runWorkloadCommand(const WorkloadCliArgs& args) {
  sim::Workload wl = loadAnyWorkload(args);
  const std::string source = args.chakra.empty() ? args.file : args.chakra;
  if (!args.initiation.empty()) {
    core::Initiation mode{};
    if (!core::parseInitiation(args.initiation, mode)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--initiation '" + args.initiation + "' is not a mode; use device, proxy or offload");
    }
    for (sim::Task& t : wl.tasks) t.comm.initiation = mode;
  }
  const std::string topology = args.topology.empty() ? wl.topology : args.topology;
  std::vector<std::string> overrides = wl.overrides;
  overrides.insert(overrides.end(), args.sets.begin(), args.sets.end());
  bool needsFabric = false;
  for (const sim::Task& t : wl.tasks) needsFabric = needsFabric || t.kind != sim::TaskKind::kCompute;
  if (needsFabric && topology.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "workload '" + source + "' has communication tasks but no topology; give --topology" +
                    (args.chakra.empty() ? " or `topology:` in the file" : " (a Chakra trace names none)"));
  }

  FabricCache fabrics;
  sim::ComputeParams compute;
  std::int32_t gpus = 0;
  std::string fabricName = "(none)";
  std::unique_ptr<sim::WorkloadComm> comm;
  if (!topology.empty()) {
    const topo::Fabric& fabric = fabrics.get(topology, overrides);
    compute = sim::SimParams::fromFabric(fabric).compute;
    gpus = static_cast<std::int32_t>(fabric.gpus().size());
    fabricName = fabric.name.empty() ? topology : fabric.name;
    comm = std::make_unique<sim::WorkloadComm>(fabric);
  } else {
    // Compute only: the sim.* overrides still set the compute model.
    topo::Fabric none;
    for (const std::string& kv : overrides) {
      const auto eq = kv.find('=');
      if (kv.rfind("sim.", 0) == 0 && eq != std::string::npos) none.simParams[kv.substr(4, eq - 4)] = kv.substr(eq + 1);
    }
    compute = sim::SimParams::fromFabric(none).compute;
  }
  const std::int32_t nranks = wl.ranks > 0 ? wl.ranks : gpus;

  std::map<std::string, std::string> how;  // by task name
  sim::WorkloadOptions options;
  options.ranks = nranks;
  options.compute = compute;
  if (comm) {
    comm->bind(options);
    if (args.alone) options.concurrentCommTime = nullptr;
    options.commTime = [&](const sim::CommTask& t) {
      const core::Time time = comm->alone(t);
      how[t.name] = comm->describe(t);
      return time;
    };
  }
  const sim::WorkloadResult r = sim::runWorkload(wl, options);

  std::printf("# workload %s (%s): %d ranks on %s; compute %d SMs, %.0f TFLOP/s peak, communication holds %d SMs\n",
              wl.name.c_str(), source.c_str(), nranks, fabricName.c_str(), compute.sms, compute.flops / 1e12,
              compute.commSms);
  std::printf("%-18s %-12s %-9s %12s %12s %12s %12s %4s  %s\n", "task", "type", "ranks", "start(us)", "end(us)",
              "alone(us)", "lost(us)", "SMs", "how");
  for (std::size_t i = 0; i < r.tasks.size(); ++i) {
    const sim::TaskTiming& t = r.tasks[i];
    const sim::Task& task = wl.tasks[i];
    const auto it = how.find(t.name);
    const std::string text = it != how.end() ? it->second : "";
    std::printf("%-18s %-12s %-9s %12s %12s %12s %12s %4d  %s\n", t.name.c_str(),
                std::string(sim::taskKindName(t.kind)).c_str(), ranksOf(task, nranks).c_str(), fmtUs(t.start).c_str(),
                fmtUs(t.end).c_str(), fmtUs(t.nominal).c_str(), fmtUs(t.lost).c_str(), t.sms, text.c_str());
  }
  std::printf("step time %s us; compute lost to SM sharing %s us; exposed communication %s us; compute busy %s us\n",
              fmtUs(r.stepTime).c_str(), fmtUs(r.computeLost).c_str(), fmtUs(r.exposedComm).c_str(),
              fmtUs(r.computeBusy).c_str());

  if (!args.csvPath.empty()) {
    std::ofstream csv(args.csvPath);
    if (!csv) throw Error(ErrorCode::kSystemError, "cannot write '" + args.csvPath + "'");
    csv << "task,type,ranks,start_us,end_us,alone_us,lost_us,sms,how\n";
    for (std::size_t i = 0; i < r.tasks.size(); ++i) {
      const sim::TaskTiming& t = r.tasks[i];
      const auto it = how.find(t.name);
      csv << t.name << ',' << sim::taskKindName(t.kind) << ',' << ranksOf(wl.tasks[i], nranks) << ',' << fmtUs(t.start)
          << ',' << fmtUs(t.end) << ',' << fmtUs(t.nominal) << ',' << fmtUs(t.lost) << ',' << t.sms << ",\""
          << (it != how.end() ? it->second : "") << "\"\n";
    }
  }
  if (!args.tracePath.empty()) {
    std::ofstream tr(args.tracePath);
    if (!tr) throw Error(ErrorCode::kSystemError, "cannot write '" + args.tracePath + "'");
    // One row for compute (tid 0), one per communication task.
    tr << "{\"traceEvents\":[\n";
    tr << R"({"name":"thread_name","ph":"M","pid":0,"tid":0,"args":{"name":"compute"}})";
    for (std::size_t i = 0; i < r.tasks.size(); ++i) {
      const sim::TaskTiming& t = r.tasks[i];
      const bool onCompute = t.kind == sim::TaskKind::kCompute;
      const std::size_t tid = onCompute ? 0 : i + 1;
      if (!onCompute) {
        tr << ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":0,\"tid\":" << tid << ",\"args\":{\"name\":\""
           << jsonEscape(t.name) << "\"}}";
      }
      tr << ",\n{\"name\":\"" << jsonEscape(t.name) << "\",\"cat\":\"" << sim::taskKindName(t.kind)
         << "\",\"ph\":\"X\",\"pid\":0,\"tid\":" << tid << ",\"ts\":" << fmtUs(t.start)
         << ",\"dur\":" << fmtUs(t.end - t.start) << ",\"args\":{\"alone_us\":" << fmtUs(t.nominal)
         << ",\"lost_us\":" << fmtUs(t.lost) << ",\"sms\":" << t.sms << "}}";
    }
    tr << "\n]}\n";
  }
  return 0;
}

}  // namespace copro::tools
