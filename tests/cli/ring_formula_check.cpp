// Acceptance: copro-sim's ring all-reduce on a single switch matches the textbook formula
//   t = 2(p-1)a + 2(p-1)/p n b + (p-1)/p n g
// within 0.1%, with a, b, g computed here from the topology file alone (a = 2 link latencies + switch
// delay, b = 1 / link bandwidth, g = 1 / sim.reduce_bw), not from the simulator.
//
// usage: copro_sim_ring_formula COPRO_SIM TOPOLOGY_FILE [SIZE]
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "copro/core/status.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/params.hpp"
#include "copro/topologies/topology.hpp"

namespace {

std::string runCommand(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot run: " + cmd);
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0) out.append(buf, n);
  return out;
}

std::vector<std::string> splitCsv(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) cells.push_back(cell);
  return cells;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s COPRO_SIM TOPOLOGY_FILE [SIZE]\n", argv[0]);
    return 2;
  }
  const std::string tool = argv[1];
  const std::string file = argv[2];
  const std::string sizeText = argc > 3 ? argv[3] : "64M";
  try {
    const copro::topo::Fabric f = copro::topo::loadTopology(file);
    // The single switch: GPU 0's only link goes to the switch; every GPU link is alike.
    const std::int32_t gpu0 = f.gpus().at(0);
    const auto& links = f.linksOf(gpu0);
    if (links.size() != 1) throw std::runtime_error("expected one link per GPU in " + file);
    const auto& link = f.link(links[0]);
    const auto& sw = f.node(f.peer(links[0], gpu0));
    auto it = f.simParams.find("reduce_bw");
    if (it == f.simParams.end()) throw std::runtime_error(file + " sets no sim.reduce_bw");
    const double p = static_cast<double>(f.gpus().size());
    const double n = static_cast<double>(copro::core::parseBytes(sizeText));
    const double alpha = 2 * link.latency.seconds() + sw.delay.seconds();
    const double beta = 1.0 / link.bandwidth.bytesPerSecond();
    const double gamma = 1.0 / copro::sim::parseBandwidth(it->second).bytesPerSecond();
    const double expectUs = 1e6 * (2 * (p - 1) * alpha + 2 * (p - 1) / p * n * beta + (p - 1) / p * n * gamma);

    const std::string cmd = "'" + tool + "' run --topology '" + file + "' --collective allreduce --size " + sizeText +
                            " --algo ring --csv --no-wall --quiet";
    const std::string out = runCommand(cmd);
    std::stringstream ss(out);
    std::string header;
    std::string row;
    std::getline(ss, header);
    std::getline(ss, row);
    const auto names = splitCsv(header);
    const auto cells = splitCsv(row);
    double gotUs = -1;
    for (std::size_t i = 0; i < names.size() && i < cells.size(); ++i) {
      if (names[i] == "time_us") gotUs = std::stod(cells[i]);
    }
    if (gotUs < 0) throw std::runtime_error("no time_us in the output of: " + cmd + "\n" + out);
    const double rel = std::fabs(gotUs - expectUs) / expectUs;
    std::printf("%s\n", cmd.c_str());
    std::printf("p = %.0f, n = %.0f B, alpha = %.6g us, beta = %.6g ps/B, gamma = %.6g ps/B\n", p, n, alpha * 1e6,
                beta * 1e12, gamma * 1e12);
    std::printf("formula %.3f us, copro-sim %.3f us, difference %.4f%% (limit 0.1%%)\n", expectUs, gotUs, 100 * rel);
    return rel <= 1e-3 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ring formula check: %s\n", e.what());
    return 1;
  }
}
