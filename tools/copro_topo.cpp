// copro-topo: validate, describe and draw topology files; list the builders and their parameters; probe this
// host into a topology file.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli_suggest.hpp"
#include "copro/core/status.hpp"
#include "copro/core/units.hpp"
#include "copro/topologies/probe.hpp"
#if COPRO_HAVE_VERBS
#include "copro/transport/verbs.hpp"
#endif
#include "copro/topologies/topology.hpp"

namespace {

/// YAML comment lines listing the RDMA devices and ports this host has (docs/verbs.md): what a `verbs` run
/// would use. Empty without the verbs backend; one line saying so without a device.
std::string rdmaComment() {
#if COPRO_HAVE_VERBS
  const copro::core::Config config = copro::core::Config::fromEnvironment();
  std::string detail;
  const bool real = copro::transport::verbsRealDevicePresent(detail);
  std::string out = "# rdma: " + std::string(real ? "" : "no real device: ") + detail + "\n";
  const std::string ports = copro::transport::describeVerbsPorts(config);
  std::size_t start = 0;
  for (std::size_t end = ports.find('\n'); end != std::string::npos; start = end + 1, end = ports.find('\n', start)) {
    out += "# rdma: " + ports.substr(start, end - start) + "\n";
  }
  out += copro::transport::describeRailAffinity(config);
  return out;
#else
  return {};
#endif
}

namespace topo = copro::topo;

int validate(const std::vector<std::string>& files, const std::vector<std::string>& sets) {
  int failed = 0;
  for (const auto& file : files) {
    const auto start = std::chrono::steady_clock::now();
    try {
      const topo::Fabric f = topo::loadTopology(file, sets);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      const auto counts = f.counts();
      const auto switches = counts.count("switch") != 0 ? counts.at("switch") : 0;
      std::printf("%s: ok: %s (%s): %zu GPUs, %d hosts, %lld switches, %zu links (%.0f ms)\n", file.c_str(),
                  f.name.c_str(), f.builder.c_str(), f.gpus().size(), f.numHosts(), static_cast<long long>(switches),
                  f.links().size(), ms);
    } catch (const copro::Error& e) {
      ++failed;
      std::printf("%s: error: %s\n", file.c_str(), e.message().c_str());
    } catch (const std::exception& e) {  // e.g. std::bad_alloc: one line, never a terminate
      ++failed;
      std::printf("%s: error: %s\n", file.c_str(), e.what());
    }
  }
  return failed == 0 ? 0 : 1;
}

int listBuilders(const std::string& only) {
  for (const auto& name : topo::builderNames()) {
    if (!only.empty() && name != only) continue;
    const topo::BuilderInfo& info = topo::builderInfo(name);
    std::printf("%s\n  %s\n", info.name.c_str(), info.doc.c_str());
    for (const auto& p : info.params) {
      std::printf("    %-18s %-10s %s\n", p.name.c_str(), p.defaultValue.empty() ? "-" : p.defaultValue.c_str(),
                  p.doc.c_str());
    }
  }
  if (!only.empty()) (void)topo::builderInfo(only);  // an unknown name throws with a suggestion
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"copro-topo: validate, describe and draw topology files (docs/topologies.md)"};
  app.require_subcommand(1);

  std::vector<std::string> files;
  std::vector<std::string> sets;
  bool all = false;
  auto* validateCmd =
      app.add_subcommand("validate", "load and check topology files; one line each; exit 1 on any error");
  validateCmd->add_option("files", files, "files or bundled names");
  validateCmd->add_flag("--all", all, "every bundled topology");
  validateCmd->add_option("--set", sets, "override key=value (builder parameter or sim.<key>)");

  std::string file;
  auto* showCmd = app.add_subcommand("show", "describe a topology: counts, links, rails, planes, bisection");
  showCmd->add_option("file", file, "file or bundled name")->required();
  showCmd->add_option("--set", sets, "override key=value (builder parameter or sim.<key>)");

  std::string out;
  int maxNodes = 300;
  auto* dotCmd = app.add_subcommand("dot", "Graphviz drawing of a topology (one cluster per server)");
  dotCmd->add_option("file", file, "file or bundled name")->required();
  dotCmd->add_option("-o,--output", out, "write to this file instead of standard output");
  dotCmd->add_option("--max-nodes", maxNodes, "above this many nodes, draw each server as one box (default 300)");
  dotCmd->add_option("--set", sets, "override key=value (builder parameter or sim.<key>)");

  std::string builder;
  auto* buildersCmd = app.add_subcommand("builders", "list the builders with their parameters and defaults");
  buildersCmd->add_option("name", builder, "only this builder");

  auto* listCmd = app.add_subcommand("list", "list the bundled topology names");

  std::string probeOut;
  int probeRanks = 0;
  bool probeNoFork = false;
  auto* probeCmd = app.add_subcommand(
      "probe", "measure this host (copy/reduce bandwidth, signal latency, cores) and write it as a topology");
  probeCmd->add_option("-o,--output", probeOut, "write the YAML to this file instead of standard output");
  probeCmd->add_option("--ranks", probeRanks, "endpoints (ranks) of the topology; default: one per core");
  probeCmd->add_flag("--no-fork", probeNoFork, "skip the cross-process round trip");
  std::string probeBytes = "32M";
  probeCmd->add_option("--bytes", probeBytes, "working set of each copying thread (default 32M; small: caches)");

  if (const int rc = copro::cli::parse(app, argc, argv); rc >= 0) return rc;

  try {
    if (validateCmd->parsed()) {
      if (all) {
        for (const auto& name : topo::bundledTopologies()) files.push_back(name);
      }
      if (files.empty()) {
        std::fprintf(stderr, "copro-topo validate: give files or --all\n");
        return 1;
      }
      return validate(files, sets);
    }
    if (showCmd->parsed()) {
      std::fputs(topo::describe(topo::loadTopology(file, sets)).c_str(), stdout);
      return 0;
    }
    if (dotCmd->parsed()) {
      topo::DotOptions options;
      options.maxNodes = maxNodes;
      const std::string text = topo::toDot(topo::loadTopology(file, sets), options);
      if (out.empty()) {
        std::fputs(text.c_str(), stdout);
        return 0;
      }
      std::ofstream os(out);
      os << text;
      if (!os) {
        std::fprintf(stderr, "copro-topo: cannot write %s\n", out.c_str());
        return 1;
      }
      return 0;
    }
    if (probeCmd->parsed()) {
      topo::ProbeOptions options;
      options.ranks = probeRanks;
      options.crossProcess = !probeNoFork;
      options.bytesPerThread = copro::core::parseBytes(probeBytes);
      const topo::ProbeResult probe = topo::probeHost(options);
      const std::string text = rdmaComment() + topo::probeTopologyYaml(probe);
      if (probeOut.empty()) {
        std::fputs(text.c_str(), stdout);
        return 0;
      }
      std::ofstream os(probeOut);
      os << text;
      os.close();
      if (!os) {
        std::fprintf(stderr, "copro-topo: cannot write %s\n", probeOut.c_str());
        return 1;
      }
      // Load what was written, so a file that the simulator would refuse is reported here.
      const topo::Fabric f = topo::loadTopology(probeOut);
      std::fprintf(
          stderr, "copro-topo probe: wrote %s: %zu ranks, link %s, %s latency\n", probeOut.c_str(), f.gpus().size(),
          topo::formatBandwidth(copro::core::Bandwidth::bytesPerSec(probe.linkBandwidth())).c_str(),
          topo::formatTime(copro::core::Time::ps(static_cast<std::int64_t>(probe.linkLatencyNs() * 1000))).c_str());
      return 0;
    }
    if (buildersCmd->parsed()) return listBuilders(builder);
    if (listCmd->parsed()) {
      for (const auto& name : topo::bundledTopologies()) {
        std::printf("%-28s %s\n", name.c_str(), topo::resolveTopologyPath(name).c_str());
      }
      return 0;
    }
  } catch (const copro::Error& e) {
    std::fprintf(stderr, "copro-topo: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "copro-topo: %s\n", e.what());
    return 1;
  }
  return 0;
}
