// copro-info: configuration, backends, algorithms and the planner's choice for a call.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli_suggest.hpp"
#include "copro/copro.hpp"
#include "copro/core/program_json.hpp"
#include "copro/core/units.hpp"
#include "copro/core/validator.hpp"
#include "copro/transport/lanemachine.hpp"
#if COPRO_HAVE_VERBS
#include "copro/transport/verbs.hpp"
#endif

namespace {

int printConfig(const copro::Config& config) {
  std::printf("# copro %s: effective configuration (environment variable = value; default; meaning)\n",
              copro::version());
  const auto& vars = copro::Config::variables();
  auto values = config.values();
  for (std::size_t i = 0; i < vars.size(); ++i) {
    std::printf("%-26s = %-10s  (default %s) %s\n", values[i].first.c_str(), values[i].second.c_str(),
                std::string(vars[i].defaultValue).empty() ? "\"\"" : std::string(vars[i].defaultValue).c_str(),
                std::string(vars[i].doc).c_str());
  }
  return 0;
}

int printAlgorithms() {
  std::printf("# collective      algorithm     description\n");
  for (const auto& a : copro::collectives::algorithms()) {
    std::printf("%-17s %-13s %s\n", std::string(copro::collectives::collectiveName(a.kind)).c_str(), a.name.c_str(),
                a.description.c_str());
  }
  return 0;
}

int printBackends() {
  copro::registerBuiltinBackends();
  for (const auto& [name, doc] : copro::core::ExecutorRegistry::instance().list()) {
    std::printf("%-10s %s\n", name.c_str(), doc.c_str());
  }
  std::printf("\ncuda: %s\n", copro::transport::cudaStatus().c_str());
#if COPRO_HAVE_VERBS
  std::string detail;
  const bool real = copro::transport::verbsRealDevicePresent(detail);
  std::printf("\nverbs: %s (%s)%s\n", real ? "real RDMA device found" : "no real RDMA device", detail.c_str(),
              real ? "" : "; COPRO_VERBS_PROVIDER=emu runs the verbs backend over the emulated provider");
  const std::string ports = copro::transport::describeVerbsPorts(copro::core::Config::fromEnvironment());
  if (!ports.empty()) std::printf("%s", ports.c_str());
#endif
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"copro-info: configuration, backends, algorithms and planner choices"};
  bool config = false;
  bool algos = false;
  bool backends = false;
  std::vector<std::string> planArgs;
  std::string nodeMap;
  std::string dtype = "float32";
  std::vector<std::string> dumpArgs;
  std::string algo;
  std::string validateFile;
  app.add_flag("--config", config, "print every COPRO_* variable with its effective value");
  app.add_flag("--algorithms", algos, "list the algorithms of every collective");
  app.add_flag("--backends", backends, "list the backends built into this library");
  app.add_option("--plan", planArgs, "COLLECTIVE SIZE RANKS: the planner's estimate for every candidate")->expected(3);
  app.add_option("--dump", dumpArgs, "COLLECTIVE SIZE RANKS: print the Program (JSON) of that call")->expected(3);
  app.add_option("--algo", algo, "algorithm for --dump (default: the planner's choice)");
  app.add_option("--validate", validateFile, "load a Program from a JSON file and run the validator on it");
  app.add_option("--node-map", nodeMap, "rank->node map for --plan ('0,0,1,1' or ranks per node '4')");
  app.add_option("--dtype", dtype, "element type for --plan (default float32)");
  if (const int rc = copro::cli::parse(app, argc, argv); rc >= 0) return rc;

  try {
    copro::Config cfg = copro::Config::fromEnvironment();
    if (config) return printConfig(cfg);
    if (algos) return printAlgorithms();
    if (backends) return printBackends();
    if (!validateFile.empty()) {
      copro::core::Program program = copro::core::loadProgram(validateFile);
      auto result = copro::core::validateProgram(program);
      std::printf("%s: %s, %d ranks, %zu ops\n", validateFile.c_str(), program.header().name.c_str(),
                  program.header().nranks, program.numOps());
      if (!result.note.empty()) std::printf("note: %s\n", result.note.c_str());
      if (result.ok()) {
        std::printf("valid\n");
        return 0;
      }
      std::printf("%s", result.summary().c_str());
      return 1;
    }
    const std::vector<std::string>& callArgs = planArgs.empty() ? dumpArgs : planArgs;
    if (!callArgs.empty()) {
      const auto& call = callArgs;
      copro::collectives::CollectiveArgs args;
      if (!copro::collectives::parseCollectiveKind(call[0], args.kind)) {
        std::fprintf(stderr, "copro-info: unknown collective '%s' (allreduce, allgather, reducescatter, ...)\n",
                     call[0].c_str());
        return 2;
      }
      auto t = copro::core::parseDataType(dtype);
      if (!t) {
        std::fprintf(stderr, "copro-info: unknown data type '%s'\n", dtype.c_str());
        return 2;
      }
      args.dtype = *t;
      std::uint64_t bytes = copro::core::parseBytes(call[1]);
      args.nranks = std::stoi(call[2]);
      if (args.nranks <= 0) throw copro::Error(copro::ErrorCode::kInvalidArgument, "RANKS must be > 0");
      // SIZE is the buffer of one rank as nccl-tests counts it (all-gather: the output).
      std::uint64_t elems = bytes / copro::core::dataTypeSize(args.dtype);
      using K = copro::collectives::CollectiveKind;
      if (args.kind == K::kAllGather || args.kind == K::kReduceScatter || args.kind == K::kAllToAll ||
          args.kind == K::kGather || args.kind == K::kScatter) {
        elems /= static_cast<std::uint64_t>(args.nranks);
      }
      args.count = elems;
      args.chunkBytes = cfg.chunkBytes;
      args.nodeOfRank = copro::collectives::parseNodeMap(nodeMap.empty() ? cfg.nodeMap : nodeMap, args.nranks);
      if (!dumpArgs.empty()) {
        if (args.kind == copro::collectives::CollectiveKind::kSendRecv ||
            args.kind == copro::collectives::CollectiveKind::kAllToAllV ||
            args.kind == copro::collectives::CollectiveKind::kReduceScatterV ||
            args.kind == copro::collectives::CollectiveKind::kAllGatherV) {
          throw copro::Error(
              copro::ErrorCode::kUnsupported,
              "--dump takes collectives whose Program follows from a size (not v-collectives or sendrecv)");
        }
        auto p = copro::collectives::plan(args, copro::collectives::costModelFrom(cfg), algo, cfg.algo);
        auto program = copro::collectives::buildProgram(args, p.chosen->name);
        std::cout << copro::core::programToJson(*program) << "\n";
        return 0;
      }
      auto p = copro::collectives::plan(args, copro::collectives::costModelFrom(cfg), {}, cfg.algo);
      std::cout << copro::collectives::formatPlan(args, p);
      return 0;
    }
    std::cout << app.help();
    return 0;
  } catch (const copro::Error& e) {
    std::fprintf(stderr, "copro-info: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "copro-info: %s\n", e.what());
    return 1;
  }
}
