// copro-sim-bench: how fast and how big copro's simulator runs (wall time, peak memory, events/s on
// large collectives and fabrics), and how its predictions compare with SimGrid's on the same platform and
// the same flows. Each measurement runs in a forked child so its peak memory is its own and SimGrid, which
// allows one engine per process, can run once per measurement. See docs/sim-bench.md.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/status.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/topology.hpp"
#include "peers/simgrid_peer.hpp"
#include "scale_table.hpp"

namespace {

using copro::collectives::CollectiveKind;
using copro::core::Error;
using copro::core::ErrorCode;
using copro::core::Time;
using Clock = std::chrono::steady_clock;

struct Options {
  std::vector<std::string> scenarios;
  bool list = false;
  bool quick = false;
  bool fork = true;
  std::string bytes = "64M";      // all-reduce size per rank
  std::string a2aBytes = "64M";   // all-to-all send buffer per rank (p blocks)
  std::string bw = "400Gb/s";     // star / fat-tree endpoint link
  std::string latency = "500ns";  // star link latency
  double reduceGBps = 1000.0;     // reduction output bytes/s per rank (gamma = 1/this)
  std::vector<int> simgridP{256, 1024};
  int flowHosts = 256;
  double tolerance = 0.02;
  double timeoutS = 900.0;
  double maxRssGiB = 0.0;  // 0: half of the machine's memory
  std::string json;
  std::string csv;
  std::uint64_t seed = 20240611;
  bool symmetry = true;  // sim::RunOptions::symmetry (--no-symmetry: every rank, for engine throughput)
};

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// CPU time of this process so far (user + system), seconds.
double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Wall and CPU time of one engine call.
struct Stopwatch {
  Clock::time_point wall0 = Clock::now();
  double cpu0 = processCpuSeconds();
  [[nodiscard]] double wall() const { return secondsSince(wall0); }
  [[nodiscard]] double cpu() const { return processCpuSeconds() - cpu0; }
};

/// One measurement: one engine on one scenario, in one process.
struct Record {
  std::string scenario;
  std::string engine;  // "copro" or "simgrid"
  std::string topology;
  std::string workload;
  std::int64_t endpoints = 0;
  double wallSeconds = 0.0;    // the whole job: topology, Program, simulation
  double cpuSeconds = 0.0;     // CPU time of the whole job (user + system)
  double runSeconds = 0.0;     // the engine: its setup (Simulator / SimGrid platform) and its run, wall
  double runCpuSeconds = 0.0;  // the same, CPU time: stable where other work shares the machine
  std::int64_t peakRssBytes = 0;
  std::int64_t rssDeltaBytes = 0;
  std::uint64_t events = 0;  // copro: simulator events; SimGrid: communications + computations
  std::uint64_t flows = 0;
  double predictedSeconds = 0.0;
  double formulaSeconds = 0.0;      // alpha-beta-gamma figure where one exists (0: none)
  std::vector<double> completions;  // pure-network comparison: per flow
  bool ok = false;
  std::string error;
};

nlohmann::json toJson(const Record& r) {
  return {{"scenario", r.scenario},
          {"engine", r.engine},
          {"topology", r.topology},
          {"workload", r.workload},
          {"endpoints", r.endpoints},
          {"wall_s", r.wallSeconds},
          {"cpu_s", r.cpuSeconds},
          {"run_s", r.runSeconds},
          {"run_cpu_s", r.runCpuSeconds},
          {"peak_rss_bytes", r.peakRssBytes},
          {"rss_delta_bytes", r.rssDeltaBytes},
          {"events", r.events},
          {"events_per_cpu_s", r.runCpuSeconds > 0 ? static_cast<double>(r.events) / r.runCpuSeconds : 0.0},
          {"flows", r.flows},
          {"predicted_s", r.predictedSeconds},
          {"formula_s", r.formulaSeconds},
          {"completions", r.completions},
          {"ok", r.ok},
          {"error", r.error}};
}

Record fromJson(const nlohmann::json& j) {
  Record r;
  r.scenario = j.at("scenario");
  r.engine = j.at("engine");
  r.topology = j.at("topology");
  r.workload = j.at("workload");
  r.endpoints = j.at("endpoints");
  r.wallSeconds = j.at("wall_s");
  r.cpuSeconds = j.at("cpu_s");
  r.runSeconds = j.at("run_s");
  r.runCpuSeconds = j.at("run_cpu_s");
  r.peakRssBytes = j.at("peak_rss_bytes");
  r.rssDeltaBytes = j.at("rss_delta_bytes");
  r.events = j.at("events");
  r.flows = j.at("flows");
  r.predictedSeconds = j.at("predicted_s");
  r.formulaSeconds = j.at("formula_s");
  r.completions = j.at("completions").get<std::vector<double>>();
  r.ok = j.at("ok");
  r.error = j.at("error");
  return r;
}

// ---- memory ------------------------------------------------------------------------------------------

std::int64_t currentRssBytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

std::int64_t rssOfPid(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  std::int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

std::int64_t peakRssBytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::int64_t machineMemoryBytes() {
  return static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

// ---- jobs --------------------------------------------------------------------------------------------

/// One engine on one scenario; fills the Record's measured fields (not memory: the runner does that).
struct Job {
  std::string engine;
  std::function<void(Record&)> run;
};

/// A scenario: its jobs, and whether its jobs' predictions are to be compared.
struct Scenario {
  std::string name;
  std::string description;
  std::vector<Job> jobs;
  bool compare = false;  // copro vs SimGrid: predictions must agree within the tolerance
  bool perFlow = false;  // compare per-flow completion times too
};

/// Runs `job` here (no fork) and measures it.
Record measureHere(const std::string& scenario, const Job& job) {
  Record r;
  r.scenario = scenario;
  r.engine = job.engine;
  const std::int64_t rss0 = currentRssBytes();
  const Stopwatch clock;
  try {
    job.run(r);
    r.ok = true;
  } catch (const std::exception& e) {
    r.ok = false;
    r.error = e.what();
  }
  r.wallSeconds = clock.wall();
  r.cpuSeconds = clock.cpu();
  r.peakRssBytes = peakRssBytes();
  r.rssDeltaBytes = std::max<std::int64_t>(0, r.peakRssBytes - rss0);
  return r;
}

void writeAll(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

/// Runs `job` in a forked child (a fresh peak-RSS counter, a fresh SimGrid engine), with a wall-time
/// limit and an RSS limit enforced from here.
Record measureInChild(const std::string& scenario, const Job& job, const Options& opt) {
  Record failed;
  failed.scenario = scenario;
  failed.engine = job.engine;
  int fds[2];
  if (pipe(fds) != 0) throw Error(ErrorCode::kSystemError, std::string("pipe: ") + std::strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) throw Error(ErrorCode::kSystemError, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(fds[0]);
    const Record r = measureHere(scenario, job);
    writeAll(fds[1], toJson(r).dump());
    ::close(fds[1]);
    std::fflush(stdout);
    _exit(0);  // a forked child must not run the parent's exit handlers
  }
  ::close(fds[1]);
  const double limitBytes = opt.maxRssGiB * 1073741824.0;
  std::string text;
  const auto t0 = Clock::now();
  char buf[65536];
  std::string killedFor;
  std::int64_t sampledPeak = 0;  // for a child stopped before it could report its own peak
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int pr = poll(&p, 1, 200);
    if (pr > 0) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n > 0) {
        text.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) break;  // child closed its end
      if (errno != EINTR) break;
    }
    if (secondsSince(t0) > opt.timeoutS) {
      killedFor = "timed out after " + std::to_string(static_cast<int>(opt.timeoutS)) + " s (raise --timeout)";
    }
    const std::int64_t rss = rssOfPid(pid);
    sampledPeak = std::max(sampledPeak, rss);
    if (killedFor.empty() && static_cast<double>(rss) > limitBytes) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "stopped above %.1f GiB RSS (raise --max-rss-gib)", opt.maxRssGiB);
      killedFor = msg;
    }
    if (!killedFor.empty()) {
      kill(pid, SIGKILL);
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!killedFor.empty()) {
    failed.error = killedFor;
    failed.wallSeconds = secondsSince(t0);
    failed.peakRssBytes = sampledPeak;
    return failed;
  }
  if (WIFSIGNALED(status) || text.empty()) {
    failed.error = WIFSIGNALED(status) ? std::string("child killed by signal ") + strsignal(WTERMSIG(status))
                                       : "child exited without a result";
    return failed;
  }
  return fromJson(nlohmann::json::parse(text));
}

// ---- copro jobs --------------------------------------------------------------------------------------

std::uint64_t parseSize(const std::string& text) {
  return copro::core::parseBytes(text);
}

copro::topo::Fabric starFabric(std::int64_t p, const Options& opt) {
  return copro::topo::buildTopology(
      "single_switch", {{"gpus", std::to_string(p)}, {"bw", opt.bw}, {"latency", opt.latency}, {"switch_delay", "0"}});
}

/// 2-tier fat-tree of p single-GPU hosts: the smallest power-of-two radix whose 2-tier tree reaches p
/// endpoints (radix^2 / 2), non-blocking.
copro::topo::Fabric fatTreeFabric(std::int64_t p, const Options& opt) {
  std::int64_t radix = 8;
  while (radix * radix / 2 < p) radix *= 2;
  return copro::topo::buildTopology("fat_tree", {{"nodes", std::to_string(p)},
                                                 {"node", "gpu"},
                                                 {"tiers", "2"},
                                                 {"radix", std::to_string(radix)},
                                                 {"nic_bw", opt.bw}});
}

/// A bundled multi-plane fat-tree by name (topologies/<name>.yaml) when the bundled folder has it, else the
/// mpft builder with the same shape: `nodes` H800 servers, 8 planes, 64-port switches.
copro::topo::Fabric mpftFabric(const std::string& name, std::int64_t nodes, std::string& label) {
  const std::vector<std::string> names = copro::topo::bundledTopologies();
  if (std::find(names.begin(), names.end(), name) != names.end()) {
    label = name + ".yaml";
    return copro::topo::loadTopology(name);
  }
  label = "mpft(nodes=" + std::to_string(nodes) + ",planes=8,radix=64)";
  return copro::topo::buildTopology("mpft", {{"nodes", std::to_string(nodes)}, {"planes", "8"}, {"radix", "64"}});
}

copro::sim::SimParams simParamsFor(const copro::topo::Fabric& fabric, const Options& opt) {
  copro::sim::SimParams params = copro::sim::SimParams::fromFabric(fabric);
  params.reduceBandwidth = copro::core::Bandwidth::gbps(opt.reduceGBps);
  return params;
}

/// Simulates `call` on all GPUs of `fabric` through sim::Communicator, filling the simulation fields of `r`.
void simulate(const copro::topo::Fabric& fabric, const copro::sim::SimParams& params,
              const copro::sim::CollectiveCall& call, bool symmetry, Record& r) {
  const Stopwatch engine;
  copro::sim::CommunicatorOptions where;
  where.params = params;
  copro::sim::Communicator comm(fabric, where);
  const copro::sim::PreparedCall prepared = comm.prepare(call);
  copro::sim::RunOptions options;
  options.symmetry = symmetry;
  // A line every 30 s on long runs, so a big scenario shows it is alive (stderr: the table stays clean).
  Clock::time_point lastReport = Clock::now();
  options.progress = [&](Time now, std::uint64_t events) {
    if (secondsSince(lastReport) < 30.0) return;
    lastReport = Clock::now();
    std::fprintf(stderr, "  ... %s: %.3e events, virtual %.6f s, wall %.0f s\n", r.scenario.c_str(),
                 static_cast<double>(events), now.seconds(), engine.wall());
  };
  const copro::sim::Result res = comm.run(*prepared.program, options);
  r.runSeconds = engine.wall();
  r.runCpuSeconds = engine.cpu();
  r.events = res.events;
  r.flows = res.flows;
  r.predictedSeconds = res.time.seconds();
  // Folded runs (docs/simulator.md, "Symmetry") report the full run's events but simulate 1/k of them.
  if (res.symmetryMultiplicity > 1) r.workload += " fold " + std::to_string(res.symmetryMultiplicity);
}

/// A forced-algorithm call of nccl-tests size `bytes` (float32) with an explicit chunk.
copro::sim::CollectiveCall benchCall(CollectiveKind kind, const std::string& algorithm, std::uint64_t bytes,
                                     std::uint64_t chunk) {
  copro::sim::CollectiveCall call;
  call.kind = kind;
  call.algorithm = algorithm;
  call.size = bytes;
  call.chunkBytes = chunk;
  return call;
}

/// Ring all-reduce alpha-beta-gamma time on a star: 2(p-1)(2L + m/bw) + (p-1)·m·gamma, m = n/p.
double ringFormula(std::int64_t p, double n, double bw, double latency, double reduceRate) {
  const double m = n / static_cast<double>(p);
  const double steps = static_cast<double>(p - 1);
  return 2 * steps * (2 * latency + m / bw) + (reduceRate > 0 ? steps * m / reduceRate : 0.0);
}

Job coproRing(const std::string& topo, std::int64_t p, const Options& opt) {
  return {"copro", [topo, p, opt](Record& r) {
            const std::uint64_t bytes = parseSize(opt.bytes);
            const copro::topo::Fabric fabric = topo == "star" ? starFabric(p, opt) : fatTreeFabric(p, opt);
            r.topology = topo == "star" ? "single_switch" : "fat_tree(2 tiers)";
            r.workload = "allreduce ring " + copro::core::formatBytes(bytes);
            r.endpoints = p;
            const copro::sim::SimParams params = simParamsFor(fabric, opt);
            // Unchunked: one block per ring step.
            simulate(fabric, params,
                     benchCall(CollectiveKind::kAllReduce, "ring", bytes, std::max<std::uint64_t>(bytes, 1)),
                     opt.symmetry, r);
            if (topo == "star") {
              const copro::topo::Link& l = fabric.link(0);
              r.formulaSeconds = ringFormula(p, static_cast<double>(bytes), l.bandwidth.bytesPerSecond(),
                                             l.latency.seconds(), opt.reduceGBps * 1e9);
            }
          }};
}

Job coproAllToAll(std::int64_t p, const Options& opt) {
  return {"copro", [p, opt](Record& r) {
            const std::uint64_t bytes = parseSize(opt.a2aBytes);
            const copro::topo::Fabric fabric = starFabric(p, opt);
            r.topology = "single_switch";
            r.workload = "alltoall pairwise " + copro::core::formatBytes(bytes);
            r.endpoints = p;
            simulate(fabric, simParamsFor(fabric, opt),
                     benchCall(CollectiveKind::kAllToAll, "pairwise", bytes, std::uint64_t{1} << 20), opt.symmetry, r);
            // p-1 blocks of m bytes leave every rank at once: the uplink is the bottleneck.
            const copro::topo::Link& l = fabric.link(0);
            const std::uint64_t block = bytes / 4 / static_cast<std::uint64_t>(p) * 4;  // whole float32 elements
            const auto m = static_cast<double>(block);
            r.formulaSeconds = static_cast<double>(p - 1) * m / l.bandwidth.bytesPerSecond() + 2 * l.latency.seconds();
          }};
}

Job coproHier(const std::string& topology, std::int64_t nodes, const Options& opt) {
  return {"copro", [topology, nodes, opt](Record& r) {
            const std::uint64_t bytes = parseSize(opt.bytes);
            std::string label;
            const copro::topo::Fabric fabric = mpftFabric(topology, nodes, label);
            const auto p = static_cast<std::int64_t>(fabric.gpus().size());
            r.topology = label;
            r.workload = "allreduce hier " + copro::core::formatBytes(bytes);
            r.endpoints = p;
            // Node map and load/store domains from the fabric (sim::Communicator).
            simulate(fabric, simParamsFor(fabric, opt),
                     benchCall(CollectiveKind::kAllReduce, "hier", bytes, std::uint64_t{1} << 20), opt.symmetry, r);
          }};
}

// ---- SimGrid comparison ------------------------------------------------------------------------------

copro::bench::StarPlatform starPlatformOf(const copro::topo::Fabric& fabric, const Options& opt) {
  const copro::topo::Link& l = fabric.link(0);
  copro::bench::StarPlatform pl;
  pl.hosts = static_cast<std::int32_t>(fabric.gpus().size());
  pl.bandwidth = l.bandwidth.bytesPerSecond();
  pl.latency = l.latency.seconds();
  pl.reduceRate = opt.reduceGBps * 1e9;
  return pl;
}

Job simgridRing(std::int64_t p, const Options& opt) {
  return {"simgrid", [p, opt](Record& r) {
            const std::uint64_t bytes = parseSize(opt.bytes);
            const copro::topo::Fabric fabric = starFabric(p, opt);  // the same parameters, read back
            const copro::bench::StarPlatform pl = starPlatformOf(fabric, opt);
            r.topology = "star zone (s4u)";
            r.workload = "allreduce ring " + copro::core::formatBytes(bytes);
            r.endpoints = p;
            const Stopwatch engine;
            const copro::bench::PeerRun run = copro::bench::simgridRingAllReduce(pl, bytes, 4);
            r.runSeconds = run.wallSeconds;
            r.runCpuSeconds = engine.cpu();
            r.events = run.comms + run.execs;
            r.flows = run.comms;
            r.predictedSeconds = run.predictedSeconds;
            r.formulaSeconds = ringFormula(p, static_cast<double>(bytes), pl.bandwidth, pl.latency, pl.reduceRate);
          }};
}

/// The congested pattern of the pure-network comparison, on `hosts` hosts: an incast (a quarter of the
/// hosts send to host 0 at t = 0) over a background of shifted permutations with random sizes
/// (256 KiB..4 MiB) and random starts (0..40 us). Fixed seed.
std::vector<copro::bench::PeerFlow> congestedFlows(std::int32_t hosts, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::uint64_t> size(256U << 10, 4U << 20);
  std::uniform_real_distribution<double> start(0.0, 40e-6);
  std::vector<copro::bench::PeerFlow> flows;
  for (std::int32_t i = 1; i <= std::max(1, hosts / 4); ++i) flows.push_back({i, 0, 1U << 20, 0.0});
  for (std::int32_t shift : {1, 3, 7}) {
    for (std::int32_t i = 0; i < hosts; ++i) {
      const std::int32_t d = (i + shift) % hosts;
      if (d == i) continue;
      // Starts on a 1 ns grid: copro's clock is integer picoseconds; both engines then see the same instants.
      const double s = std::round(start(rng) * 1e9) * 1e-9;
      flows.push_back({i, d, size(rng), s});
    }
  }
  return flows;
}

Job coproFlows(std::int32_t hosts, const Options& opt) {
  return {"copro", [hosts, opt](Record& r) {
            const copro::topo::Fabric fabric = starFabric(hosts, opt);
            r.topology = "single_switch";
            const auto flows = congestedFlows(hosts, opt.seed);
            r.workload =
                std::to_string(flows.size()) + " flows (incast + permutations), seed " + std::to_string(opt.seed);
            r.endpoints = hosts;
            // Channel of GPU g's uplink (GPU -> switch) and downlink (switch -> GPU).
            std::vector<std::int32_t> up(static_cast<std::size_t>(hosts)), down(static_cast<std::size_t>(hosts));
            for (std::int32_t g = 0; g < hosts; ++g) {
              const std::int32_t node = fabric.gpus()[static_cast<std::size_t>(g)];
              const std::int32_t link = fabric.linksOf(node).at(0);
              const int dir = fabric.directionFrom(link, node);
              up[static_cast<std::size_t>(g)] = copro::topo::channelOf(link, dir);
              down[static_cast<std::size_t>(g)] = copro::topo::channelOf(link, 1 - dir);
            }
            std::vector<copro::sim::FlowSpec> specs;
            for (const auto& f : flows) {
              copro::sim::FlowSpec s;
              s.channels = {up[static_cast<std::size_t>(f.src)], down[static_cast<std::size_t>(f.dst)]};
              s.bytes = f.bytes;
              s.start = Time::sec(f.start);
              specs.push_back(std::move(s));
            }
            const Stopwatch engine;
            const std::vector<Time> done = copro::sim::simulateFlows(fabric, specs);
            r.runSeconds = engine.wall();
            r.runCpuSeconds = engine.cpu();
            r.flows = specs.size();
            for (Time t : done) {
              r.completions.push_back(t.seconds());
              r.predictedSeconds = std::max(r.predictedSeconds, t.seconds());
            }
          }};
}

Job simgridFlowsJob(std::int32_t hosts, const Options& opt) {
  return {"simgrid", [hosts, opt](Record& r) {
            const copro::topo::Fabric fabric = starFabric(hosts, opt);
            const copro::bench::StarPlatform pl = starPlatformOf(fabric, opt);
            r.topology = "star zone (s4u)";
            const auto flows = congestedFlows(hosts, opt.seed);
            r.workload =
                std::to_string(flows.size()) + " flows (incast + permutations), seed " + std::to_string(opt.seed);
            r.endpoints = hosts;
            copro::bench::PeerRun run;
            const Stopwatch engine;
            r.completions = copro::bench::simgridFlows(pl, flows, &run);
            r.runSeconds = run.wallSeconds;
            r.runCpuSeconds = engine.cpu();
            r.flows = run.comms;
            r.events = run.comms;
            r.predictedSeconds = run.predictedSeconds;
          }};
}

// ---- scenarios ---------------------------------------------------------------------------------------

struct ScenarioDef {
  std::string name;
  std::string description;
  bool byDefault;
  std::function<Scenario(const Options&)> make;
};

std::vector<ScenarioDef> scenarioDefs(const Options& opt) {
  std::vector<ScenarioDef> defs;
  for (std::int64_t p : {1024, 4096, 16384}) {
    const std::string ps = std::to_string(p);
    defs.push_back({"ring-star-" + ps, "ring all-reduce, " + ps + " endpoints behind one switch", p <= 4096,
                    [p](const Options& o) {
                      Scenario s;
                      s.jobs = {coproRing("star", p, o)};
                      return s;
                    }});
  }
  for (std::int64_t p : {1024, 4096, 16384}) {
    const std::string ps = std::to_string(p);
    defs.push_back({"ring-fattree-" + ps, "ring all-reduce, " + ps + " endpoints on a 2-tier non-blocking fat-tree",
                    p <= 1024, [p](const Options& o) {
                      Scenario s;
                      s.jobs = {coproRing("fattree", p, o)};
                      return s;
                    }});
  }
  defs.push_back({"a2a-star-1024", "pairwise all-to-all, 1024 endpoints behind one switch", true, [](const Options& o) {
                    Scenario s;
                    s.jobs = {coproAllToAll(1024, o)};
                    return s;
                  }});
  defs.push_back({"hier-deepseek-2048",
                  "hierarchical all-reduce (intra-node ring, inter-node rhd) on DeepSeek-V3's 2048-GPU multi-plane "
                  "fat-tree",
                  true, [](const Options& o) {
                    Scenario s;
                    s.jobs = {coproHier("deepseek-v3", 256, o)};
                    return s;
                  }});
  defs.push_back({"hier-mpft-16384",
                  "hierarchical all-reduce (intra-node ring, inter-node rhd) on the 16,384-GPU multi-plane fat-tree",
                  false, [](const Options& o) {
                    Scenario s;
                    s.jobs = {coproHier("mpft-16384", 2048, o)};
                    return s;
                  }});
  std::set<int> ps(opt.simgridP.begin(), opt.simgridP.end());
  ps.insert(64);
  for (int p : ps) {
    const std::string name = "simgrid-ring-" + std::to_string(p);
    const bool listed = std::find(opt.simgridP.begin(), opt.simgridP.end(), p) != opt.simgridP.end();
    defs.push_back({name, "ring all-reduce on a " + std::to_string(p) + "-host star: copro vs SimGrid", listed,
                    [p](const Options& o) {
                      Scenario s;
                      s.jobs = {coproRing("star", p, o), simgridRing(p, o)};
                      s.compare = true;
                      return s;
                    }});
  }
  defs.push_back({"simgrid-flows", "congested flows (incast + permutations) on a star: simulateFlows vs SimGrid", true,
                  [](const Options& o) {
                    Scenario s;
                    s.jobs = {coproFlows(o.flowHosts, o), simgridFlowsJob(o.flowHosts, o)};
                    s.compare = true;
                    s.perFlow = true;
                    return s;
                  }});
  return defs;
}

// ---- output ------------------------------------------------------------------------------------------

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string mib(std::int64_t bytes) {
  return fmt("%.1f", static_cast<double>(bytes) / 1048576.0);
}

struct Comparison {
  std::string scenario;
  std::int64_t endpoints = 0;
  double copro = 0, simgrid = 0, relDiff = 0;
  double maxFlowDiff = -1, meanFlowDiff = -1;
  double coproWall = 0, simgridWall = 0;  // engine setup + run
  double coproCpu = 0, simgridCpu = 0;
  bool pass = false;
  std::string why;
};

void printRecords(const std::vector<Record>& recs) {
  // "sim" = the engine alone (setup + run); events/s per CPU second of it, so that other work on the
  // machine does not move the figure.
  std::printf("\n%-18s %-8s %6s %-28s %11s %8s %8s %8s %8s %10s %9s %9s %13s %13s\n", "scenario", "engine", "endpts",
              "workload", "events", "wall s", "cpu s", "sim s", "sim cpu", "events/s", "peak MiB", "dRSS MiB",
              "predicted s", "formula s");
  for (const Record& r : recs) {
    if (!r.ok) {
      std::printf("%-18s %-8s %6lld FAILED after %.0f s wall, RSS seen %s MiB: %s\n", r.scenario.c_str(),
                  r.engine.c_str(), static_cast<long long>(r.endpoints), r.wallSeconds, mib(r.peakRssBytes).c_str(),
                  r.error.c_str());
      continue;
    }
    const double eps = r.runCpuSeconds > 0 ? static_cast<double>(r.events) / r.runCpuSeconds : 0.0;
    std::printf("%-18s %-8s %6lld %-28s %11llu %8.2f %8.2f %8.2f %8.2f %10s %9s %9s %13.9f %13s\n", r.scenario.c_str(),
                r.engine.c_str(), static_cast<long long>(r.endpoints), r.workload.substr(0, 28).c_str(),
                static_cast<unsigned long long>(r.events), r.wallSeconds, r.cpuSeconds, r.runSeconds, r.runCpuSeconds,
                eps > 0 ? fmt("%.3e", eps).c_str() : "-", mib(r.peakRssBytes).c_str(), mib(r.rssDeltaBytes).c_str(),
                r.predictedSeconds, r.formulaSeconds > 0 ? fmt("%.9f", r.formulaSeconds).c_str() : "-");
  }
}

void printComparisons(const std::vector<Comparison>& cmps, double tol) {
  if (cmps.empty()) return;
  std::printf("\ncopro vs SimGrid (same platform, same flows; tolerance %.1f%%; wall and cpu of the engines alone)\n",
              tol * 100);
  std::printf("%-18s %6s %14s %14s %9s %13s %9s %9s %8s %9s %9s %8s  %s\n", "scenario", "endpts", "copro pred s",
              "simgrid pred s", "rel diff", "flow max/mean", "copro wall", "sg wall", "sg/copro", "copro cpu", "sg cpu",
              "sg/copro", "result");
  for (const Comparison& c : cmps) {
    const std::string flow =
        c.maxFlowDiff >= 0 ? fmt("%.2f%%", c.maxFlowDiff * 100) + "/" + fmt("%.2f%%", c.meanFlowDiff * 100) : "-";
    std::printf("%-18s %6lld %14.9f %14.9f %8.4f%% %13s %9.2f %9.2f %8.1f %9.2f %9.2f %8.1f  %s\n", c.scenario.c_str(),
                static_cast<long long>(c.endpoints), c.copro, c.simgrid, c.relDiff * 100, flow.c_str(), c.coproWall,
                c.simgridWall, c.coproWall > 0 ? c.simgridWall / c.coproWall : 0.0, c.coproCpu, c.simgridCpu,
                c.coproCpu > 0 ? c.simgridCpu / c.coproCpu : 0.0, c.pass ? "ok" : ("FAIL " + c.why).c_str());
  }
}

Comparison compare(const std::string& name, const Record& a, const Record& b, bool perFlow, double tol) {
  Comparison c;
  c.scenario = name;
  c.endpoints = a.endpoints;
  c.copro = a.predictedSeconds;
  c.simgrid = b.predictedSeconds;
  c.coproWall = a.runSeconds;
  c.simgridWall = b.runSeconds;
  c.coproCpu = a.runCpuSeconds;
  c.simgridCpu = b.runCpuSeconds;
  if (!a.ok || !b.ok) {
    c.why = !a.ok ? "copro failed: " + a.error : "simgrid failed: " + b.error;
    return c;
  }
  c.relDiff = std::abs(a.predictedSeconds - b.predictedSeconds) / b.predictedSeconds;
  c.pass = c.relDiff <= tol;
  if (!c.pass) c.why = "makespans differ by more than the tolerance";
  if (perFlow) {
    if (a.completions.size() != b.completions.size() || a.completions.empty()) {
      c.pass = false;
      c.why = "flow counts differ";
      return c;
    }
    double sum = 0, mx = 0;
    for (std::size_t i = 0; i < a.completions.size(); ++i) {
      const double d = std::abs(a.completions[i] - b.completions[i]) / b.completions[i];
      sum += d;
      mx = std::max(mx, d);
    }
    c.maxFlowDiff = mx;
    c.meanFlowDiff = sum / static_cast<double>(a.completions.size());
    // Per flow, the order of latency and transfer differs between the engines (SimGrid pays the latency
    // first, copro last), which moves short flows' share a little; the makespan and mean must agree.
    if (c.meanFlowDiff > tol) {
      c.pass = false;
      c.why = "mean per-flow difference above the tolerance";
    }
  }
  return c;
}

void writeCsv(const std::string& path, const std::vector<Record>& recs) {
  std::ofstream out(path);
  if (!out) throw Error(ErrorCode::kSystemError, "cannot write --csv file '" + path + "'");
  out << "scenario,engine,topology,workload,endpoints,events,wall_s,cpu_s,run_s,run_cpu_s,events_per_cpu_s,"
         "peak_rss_bytes,rss_delta_bytes,predicted_s,formula_s,ok,error\n";
  for (const Record& r : recs) {
    const double eps = r.runCpuSeconds > 0 ? static_cast<double>(r.events) / r.runCpuSeconds : 0.0;
    out << r.scenario << ',' << r.engine << ",\"" << r.topology << "\",\"" << r.workload << "\"," << r.endpoints << ','
        << r.events << ',' << r.wallSeconds << ',' << r.cpuSeconds << ',' << r.runSeconds << ',' << r.runCpuSeconds
        << ',' << eps << ',' << r.peakRssBytes << ',' << r.rssDeltaBytes << ',' << fmt("%.12g", r.predictedSeconds)
        << ',' << fmt("%.12g", r.formulaSeconds) << ',' << (r.ok ? 1 : 0) << ",\"" << r.error << "\"\n";
  }
}

int runBench(const Options& optIn) {
  Options opt = optIn;
  if (opt.maxRssGiB <= 0) opt.maxRssGiB = static_cast<double>(machineMemoryBytes()) / 1073741824.0 / 2.0;
  if (opt.quick) {
    opt.scenarios = {"simgrid-ring-64", "simgrid-flows"};
    opt.flowHosts = 32;
  }
  const std::vector<ScenarioDef> defs = scenarioDefs(opt);
  if (opt.list) {
    for (const ScenarioDef& d : defs) {
      std::printf("%-20s %s%s\n", d.name.c_str(), d.description.c_str(), d.byDefault ? "  [default]" : "");
    }
    return 0;
  }
  std::vector<const ScenarioDef*> chosen;
  if (opt.scenarios.empty()) {
    for (const ScenarioDef& d : defs) {
      if (d.byDefault) chosen.push_back(&d);
    }
  } else {
    for (const std::string& name : opt.scenarios) {
      bool found = false;
      for (const ScenarioDef& d : defs) {
        if (name == "all" || d.name == name || d.name.rfind(name + "-", 0) == 0) {
          if (std::find(chosen.begin(), chosen.end(), &d) == chosen.end()) chosen.push_back(&d);
          found = true;
        }
      }
      if (!found) {
        std::string known;
        for (const ScenarioDef& d : defs) known += " " + d.name;
        throw Error(ErrorCode::kInvalidArgument,
                    "unknown scenario '" + name + "'; known (or a prefix such as 'ring', 'simgrid'):" + known);
      }
    }
  }
  const bool haveSimgrid = copro::bench::simgridAvailable();
  std::printf("# copro-sim-bench: %zu scenario(s); all-reduce %s/rank, link %s %s, reduce %.0f GB/s; %s; %s\n",
              chosen.size(), opt.bytes.c_str(), opt.bw.c_str(), opt.latency.c_str(), opt.reduceGBps,
              opt.fork ? "each measurement in a forked child" : "in-process (--no-fork)",
              opt.symmetry ? "rank folding where possible" : "every rank simulated (--no-symmetry)");
  if (haveSimgrid) {
    std::string cfg;
    for (const std::string& s : copro::bench::simgridSettings()) cfg += " --cfg=" + s;
    std::printf("# SimGrid settings:%s\n", cfg.c_str());
  }
  std::vector<Record> records;
  std::vector<Comparison> comparisons;
  bool allOk = true;
  bool simgridRan = false;
  for (const ScenarioDef* d : chosen) {
    const Scenario s = d->make(opt);
    std::vector<Record> mine;
    for (const Job& job : s.jobs) {
      if (job.engine == "simgrid" && !haveSimgrid) {
        Record r;
        r.scenario = d->name;
        r.engine = job.engine;
        r.error = "this build has no SimGrid";
        mine.push_back(r);
        continue;
      }
      if (job.engine == "simgrid" && !opt.fork && simgridRan) {
        Record r;
        r.scenario = d->name;
        r.engine = job.engine;
        r.error = "SimGrid runs once per process: drop --no-fork to run several SimGrid scenarios";
        mine.push_back(r);
        continue;
      }
      std::fprintf(stderr, "running %s (%s)...\n", d->name.c_str(), job.engine.c_str());
      Record r = opt.fork ? measureInChild(d->name, job, opt) : measureHere(d->name, job);
      if (job.engine == "simgrid") simgridRan = true;
      std::fprintf(stderr, "  %s: %s, wall %.2f s, peak RSS %s MiB\n", job.engine.c_str(),
                   r.ok ? "ok" : r.error.c_str(), r.wallSeconds, mib(r.peakRssBytes).c_str());
      mine.push_back(r);
    }
    for (const Record& r : mine) allOk = allOk && r.ok;
    if (s.compare && mine.size() == 2) {
      comparisons.push_back(compare(d->name, mine[0], mine[1], s.perFlow, opt.tolerance));
      allOk = allOk && comparisons.back().pass;
    }
    records.insert(records.end(), mine.begin(), mine.end());
  }
  printRecords(records);
  printComparisons(comparisons, opt.tolerance);
  if (!opt.json.empty()) {
    nlohmann::json j;
    j["records"] = nlohmann::json::array();
    for (Record r : records) {
      r.completions.clear();  // bulky; the comparisons summarize them
      j["records"].push_back(toJson(r));
    }
    j["comparisons"] = nlohmann::json::array();
    for (const Comparison& c : comparisons) {
      j["comparisons"].push_back({{"scenario", c.scenario},
                                  {"endpoints", c.endpoints},
                                  {"copro_predicted_s", c.copro},
                                  {"simgrid_predicted_s", c.simgrid},
                                  {"rel_diff", c.relDiff},
                                  {"flow_max_rel_diff", c.maxFlowDiff},
                                  {"flow_mean_rel_diff", c.meanFlowDiff},
                                  {"copro_wall_s", c.coproWall},
                                  {"simgrid_wall_s", c.simgridWall},
                                  {"copro_cpu_s", c.coproCpu},
                                  {"simgrid_cpu_s", c.simgridCpu},
                                  {"pass", c.pass}});
    }
    j["simgrid_settings"] = copro::bench::simgridSettings();
    std::ofstream out(opt.json);
    if (!out) throw Error(ErrorCode::kSystemError, "cannot write --json file '" + opt.json + "'");
    out << j.dump(2) << "\n";
  }
  if (!opt.csv.empty()) writeCsv(opt.csv, records);
  if (!allOk)
    std::printf("\nRESULT: FAIL (a measurement failed or a comparison is outside the tolerance)\n");
  else
    std::printf("\nRESULT: ok\n");
  return allOk ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "copro-sim-bench: simulator wall time, memory and events/s on large collectives, and a comparison "
      "with SimGrid on the same platform (docs/sim-bench.md)"};
  app.add_option("-s,--scenario", opt.scenarios,
                 "scenarios to run (names, prefixes such as 'ring' or 'simgrid', or 'all'); default: the [default] "
                 "ones of --list");
  app.add_flag("--list", opt.list, "list the scenarios and exit");
  app.add_flag("--quick", opt.quick,
               "smoke test: the 64-host ring and a 32-host congested flow set against SimGrid (< 10 s); exit "
               "code 1 unless both engines ran and agree within the tolerance");
  app.add_option("--bytes", opt.bytes, "all-reduce size per rank (64M, 1G, ...)")->capture_default_str();
  app.add_option("--a2a-bytes", opt.a2aBytes, "all-to-all send buffer per rank (split into p blocks)")
      ->capture_default_str();
  app.add_option("--bw", opt.bw, "endpoint link bandwidth per direction (star and fat-tree)")->capture_default_str();
  app.add_option("--latency", opt.latency, "endpoint-switch link latency of the star")->capture_default_str();
  app.add_option("--reduce-gbps", opt.reduceGBps, "reduction output rate per rank in GB/s (gamma = 1/this)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--simgrid-p", opt.simgridP,
                 "host counts of the ring comparison with SimGrid run by default (SimGrid needs ~18 s at 1024)")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  app.add_option("--flow-hosts", opt.flowHosts, "hosts of the congested-flows comparison")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 16));
  app.add_option("--tolerance", opt.tolerance, "largest relative difference of predictions accepted")
      ->capture_default_str();
  app.add_option("--timeout", opt.timeoutS, "seconds one measurement may take before it is stopped")
      ->capture_default_str();
  app.add_option("--max-rss-gib", opt.maxRssGiB, "stop a measurement above this RSS (default: half the memory)");
  app.add_option("--seed", opt.seed, "seed of the congested flow set")->capture_default_str();
  app.add_option("--json", opt.json, "write every record and comparison to this JSON file");
  app.add_option("--csv", opt.csv, "write every record to this CSV file");
  bool noFork = false;
  bool noSymmetry = false;
  app.add_flag("--no-symmetry", noSymmetry,
               "simulate every rank (no rank folding, docs/simulator.md \"Symmetry\"): engine throughput figures");
  app.add_flag("--no-fork", noFork, "measure in this process (peaks then accumulate; one SimGrid run at most)");
  bool table = false;
  copro::bench::ScaleTableOptions tableOpt;
  app.add_flag("--table", table,
               "the cluster-scale table instead of the scenarios: copro-sim command lines, median wall time "
               "against each row's target (--list lists the rows)");
  app.add_option("--rows", tableOpt.rows, "table rows to run (names or prefixes; default: all)");
  app.add_option("--repeat", tableOpt.repeat, "table: runs per row (the median is reported)")->capture_default_str();
  app.add_option("--cap-factor", tableOpt.capFactor, "table: stop a run at this multiple of its target")
      ->capture_default_str();
  app.add_option("--copro-sim", tableOpt.coproSim, "table: the copro-sim binary (default: next to this program)");
  CLI11_PARSE(app, argc, argv);
  opt.fork = !noFork;
  opt.symmetry = !noSymmetry;
  try {
    if (table) {
      tableOpt.list = opt.list;
      tableOpt.json = opt.json;
      return copro::bench::runScaleTable(tableOpt, argv[0]);
    }
    return runBench(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "copro-sim-bench: %s\n", e.what());
    return 2;
  }
}
