#include "study_common.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/collective_sizes.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/topologies/topology.hpp"
#include "study_records.hpp"

namespace copro::tools::study {

namespace {

using core::Error;
using core::ErrorCode;

std::string fabricKey(const std::string& topology, const std::vector<std::string>& overrides) {
  std::string key = topology;
  for (const auto& o : overrides) key += '\n' + o;
  return key;
}

std::map<std::string, std::unique_ptr<topo::Fabric>>& fabricCache() {
  static std::map<std::string, std::unique_ptr<topo::Fabric>> cache;
  return cache;
}

}  // namespace

const topo::Fabric& loadFabric(const std::string& topology, const std::vector<std::string>& overrides) {
  auto& cache = fabricCache();
  const std::string key = fabricKey(topology, overrides);
  auto it = cache.find(key);
  if (it == cache.end()) {
    it = cache.emplace(key, std::make_unique<topo::Fabric>(topo::loadTopology(topology, overrides))).first;
  }
  return *it->second;
}

StudyOutcome runStudyCase(const topo::Fabric& fabric, const StudyCase& c) {
  StudyOutcome out;
  out.topologyName = fabric.name.empty() ? c.topology : fabric.name;
  const auto gpus = static_cast<std::int32_t>(fabric.gpus().size());
  const std::int32_t p = c.ranks;
  if (p < 1 || p > gpus) {
    throw Error(ErrorCode::kInvalidArgument, "a study case asks for " + std::to_string(p) + " ranks but '" +
                                                 out.topologyName + "' has " + std::to_string(gpus) + " GPUs");
  }
  if (!c.placement.empty() && static_cast<std::int32_t>(c.placement.size()) != p) {
    throw Error(ErrorCode::kInvalidArgument, "a study case places " + std::to_string(c.placement.size()) +
                                                 " ranks but runs " + std::to_string(p) + " (one GPU per rank)");
  }
  out.ranks = p;
  sim::CommunicatorOptions where;
  where.ranks = p;
  where.placement = c.placement;
  sim::Communicator comm(fabric, where);
  out.nodes = comm.loadStoreDomains().empty() ? 1 : static_cast<std::int32_t>(comm.loadStoreDomains().size());
  sim::CollectiveCall call;
  call.kind = c.kind;
  call.size = c.size;
  call.dtype = c.dtype;
  call.algorithm = c.algorithm;
  call.pxn = c.pxnLevel;
  call.scaleUpInitiation = c.scaleUpInitiation;
  call.scaleOutInitiation = c.scaleOutInitiation;
  const sim::PreparedCall prepared = comm.prepare(call);
  out.bytes = prepared.bytes;
  out.algorithm = c.algorithm;

  const auto t0 = std::chrono::steady_clock::now();
  const sim::Result result = comm.run(*prepared.program);
  out.wallSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  out.timeUs = result.time.microseconds();
  const double seconds = result.time.seconds();
  out.algbwGBps = seconds > 0 ? static_cast<double>(out.bytes) / seconds / 1e9 : 0.0;
  out.busbwGBps = out.algbwGBps * sim::busBandwidthFactor(c.kind, p);
  out.bytesPut = result.bytesPut;
  out.flows = result.flows;
  for (const auto& ch : result.channels) {
    const auto& l = fabric.link(ch.link);
    const auto& from = fabric.node(ch.direction == 0 ? l.a : l.b);
    const auto& to = fabric.node(ch.direction == 0 ? l.b : l.a);
    if (to.kind == topo::NodeKind::kHost) out.hostBytes += ch.bytes;
    if (to.kind != topo::NodeKind::kSwitch) continue;
    if (to.tier == 1 && from.kind == topo::NodeKind::kSwitch && from.tier == 0) out.spineBytes += ch.bytes;
    if (to.tier == 0 && from.kind == topo::NodeKind::kNic) out.networkBytes += ch.bytes;
  }
  return out;
}

std::vector<StudyOutcome> runStudyCases(const std::vector<StudyCase>& cases, const StudyOptions& o) {
  // Fabrics first, on this thread (the cache is not thread-safe; a bad topology fails before any run).
  std::vector<const topo::Fabric*> fabrics;
  fabrics.reserve(cases.size());
  for (const auto& c : cases) fabrics.push_back(&loadFabric(c.topology, c.overrides));
  std::atomic<std::size_t> done{0};
  std::mutex printMutex;
  const std::vector<std::string> records = shardedFor(cases.size(), o, [&](std::size_t i) {
    const StudyOutcome out = runStudyCase(*fabrics[i], cases[i]);
    const std::size_t finished = ++done;
    if (!o.quiet) {
      const std::lock_guard<std::mutex> lock(printMutex);
      const auto& c = cases[i];
      std::fprintf(stderr, "  [%zu/%zu] %s %s %d ranks %s on %s: %.3f us (%.2f s)\n", finished, cases.size(),
                   std::string(collectives::collectiveName(c.kind)).c_str(), c.algorithm.c_str(), c.ranks,
                   bytesText(out.bytes).c_str(), out.topologyName.c_str(), out.timeUs, out.wallSeconds);
    }
    return encodeOutcome(out);
  });
  std::vector<StudyOutcome> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(decodeStudyOutcome(r));
  return out;
}

std::vector<StudyOutcome> runStudyCases(const std::vector<StudyCase>& cases, int jobs, bool quiet) {
  StudyOptions o;
  o.jobs = jobs;
  o.quiet = quiet;
  return runStudyCases(cases, o);
}

void parallelFor(std::size_t n, int jobs, const std::function<void(std::size_t)>& fn) {
  std::vector<std::exception_ptr> errors(n);
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < n; i = next++) {
      try {
        fn(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const int threads = std::max(1, std::min<int>(jobs, static_cast<int>(n)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

std::vector<std::string> shardedFor(std::size_t n, const StudyOptions& o,
                                    const std::function<std::string(std::size_t)>& fn) {
  const SweepShards* shards = o.shards != nullptr && o.shards->size() > 1 ? o.shards : nullptr;
  std::vector<std::size_t> mine;
  for (std::size_t i = 0; i < n; ++i) {
    if (shards == nullptr || shards->mine(i)) mine.push_back(i);
  }
  std::vector<std::string> out(n);
  std::vector<std::exception_ptr> errors(n);
  parallelFor(mine.size(), o.jobs, [&](std::size_t k) {
    try {
      out[mine[k]] = fn(mine[k]);
    } catch (...) {
      errors[mine[k]] = std::current_exception();
    }
  });
  if (shards == nullptr) {
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
    return out;
  }
  // Every rank sends its records, errors included, so that no rank waits for one that gave up.
  std::map<std::size_t, std::string> records;
  for (std::size_t i : mine) records[i] = errors[i] ? 'E' + encodeError(errors[i]) : 'R' + out[i];
  const std::map<std::size_t, std::string> all = shards->allGather(records);
  if (all.size() != n) {
    throw Error(ErrorCode::kInternal, "a sharded study gathered " + std::to_string(all.size()) + " of " +
                                          std::to_string(n) + " results (ranks built from different sources?)");
  }
  for (const auto& [i, r] : all) {  // in index order: the first error is the one a serial run throws
    if (i >= n || r.empty()) throw Error(ErrorCode::kInternal, "a sharded study gathered a malformed result");
    if (r[0] == 'E') throw decodeError(r.substr(1), i, static_cast<int>(i % static_cast<std::size_t>(shards->size())));
    out[i] = r.substr(1);
  }
  return out;
}

collectives::MoeConfig deepSeekV3MoeConfig(collectives::MoePath path) {
  collectives::MoeConfig c;
  c.hidden = 7168;
  c.topk = 8;
  c.numExperts = 256;
  c.dispatchDtype = core::DataType::kFloat8E4M3;
  c.fp8Scales = true;
  c.combineDtype = core::DataType::kBfloat16;
  c.maxNodesPerToken = 4;
  c.path = path;
  return c;
}

std::vector<MoeOutcome> runMoeCases(const std::vector<MoeCase>& cases, const StudyOptions& o) {
  std::vector<const topo::Fabric*> fabrics;
  fabrics.reserve(cases.size());
  for (const auto& c : cases) fabrics.push_back(&loadFabric(c.topology, c.overrides));
  std::atomic<std::size_t> done{0};
  std::mutex printMutex;
  const std::vector<std::string> records = shardedFor(cases.size(), o, [&](std::size_t i) {
    const MoeCase& c = cases[i];
    const topo::Fabric& fabric = *fabrics[i];
    const std::vector<int> nodes = c.nodeOfRank.empty() ? moeNodeOfRank(fabric, c.ranks) : c.nodeOfRank;
    if (static_cast<std::int32_t>(nodes.size()) != c.ranks) {
      throw Error(ErrorCode::kInvalidArgument, "a MoE study case maps " + std::to_string(nodes.size()) +
                                                   " ranks to nodes but runs " + std::to_string(c.ranks));
    }
    collectives::checkMoeConfig(c.config, c.ranks);
    const auto routing = c.zipfExponent > 0
                             ? collectives::MoeRouting::zipf(c.ranks, c.tokens, c.config.topk, c.config.numExperts,
                                                             c.config.maxNodesPerToken, nodes, c.zipfExponent, c.seed)
                             : collectives::MoeRouting::uniform(c.ranks, c.tokens, c.config.topk, c.config.numExperts,
                                                                c.config.maxNodesPerToken, nodes, c.seed);
    const auto t0 = std::chrono::steady_clock::now();
    MoeOutcome out;
    out.result = simulateMoe(fabric, c.config, routing, nodes, sim::SimParams::fromFabric(fabric));
    out.wallSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::size_t finished = ++done;
    if (!o.quiet) {
      const std::lock_guard<std::mutex> lock(printMutex);
      std::fprintf(stderr, "  [%zu/%zu] moe %s EP%d %d tokens on %s%s: dispatch %.1f us, combine %.1f us (%.1f s)\n",
                   finished, cases.size(), std::string(collectives::moePathName(c.config.path)).c_str(), c.ranks,
                   c.tokens, fabric.name.c_str(), c.label.empty() ? "" : (" (" + c.label + ")").c_str(),
                   out.result.dispatch.microseconds(), out.result.combine.microseconds(), out.wallSeconds);
    }
    return encodeOutcome(out);
  });
  std::vector<MoeOutcome> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(decodeMoeOutcome(r));
  return out;
}

std::vector<MoeOutcome> runMoeCases(const std::vector<MoeCase>& cases, int jobs, bool quiet) {
  StudyOptions o;
  o.jobs = jobs;
  o.quiet = quiet;
  return runMoeCases(cases, o);
}

std::vector<std::int32_t> spreadPlacement(const topo::Fabric& fabric, std::int32_t servers, std::int32_t stride) {
  std::map<std::int32_t, std::vector<std::int32_t>> byHost;
  const auto& gpus = fabric.gpus();
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    byHost[fabric.node(gpus[i]).host].push_back(static_cast<std::int32_t>(i));
  }
  std::vector<std::int32_t> hosts;
  hosts.reserve(byHost.size());
  for (const auto& [h, v] : byHost) hosts.push_back(h);
  const std::int64_t last = static_cast<std::int64_t>(servers - 1) * stride;
  if (servers < 1 || stride < 1 || last >= static_cast<std::int64_t>(hosts.size())) {
    throw Error(ErrorCode::kInvalidArgument, std::to_string(servers) + " servers " + std::to_string(stride) +
                                                 " apart need " + std::to_string(last + 1) + " servers; '" +
                                                 fabric.name + "' has " + std::to_string(hosts.size()));
  }
  std::vector<std::int32_t> placement;
  placement.reserve(static_cast<std::size_t>(servers) * byHost.begin()->second.size());
  for (std::int32_t s = 0; s < servers; ++s) {
    const auto& v = byHost[hosts[static_cast<std::size_t>(s) * static_cast<std::size_t>(stride)]];
    placement.insert(placement.end(), v.begin(), v.end());
  }
  return placement;
}

// ---------------------------------------------------------------------------------------------------------
// Output

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string bytesText(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  std::uint64_t v = bytes;
  while (i < 4 && v != 0 && v % 1024 == 0) {
    v /= 1024;
    ++i;
  }
  return std::to_string(v) + " " + units[i];
}

MarkdownTable::MarkdownTable(std::vector<std::string> header, std::vector<bool> rightAligned)
    : header_(std::move(header)), right_(std::move(rightAligned)) {
  right_.resize(header_.size(), true);
}

void MarkdownTable::addRow(std::vector<std::string> cells) {
  cells.resize(header_.size());
  rows_.push_back(std::move(cells));
}

std::string MarkdownTable::render() const {
  std::ostringstream os;
  os << '|';
  for (const auto& h : header_) os << ' ' << h << " |";
  os << "\n|";
  for (bool r : right_) os << (r ? "---:|" : "---|");
  os << '\n';
  for (const auto& row : rows_) {
    os << '|';
    for (const auto& cell : row) os << ' ' << cell << " |";
    os << '\n';
  }
  return os.str();
}

void writeTextFile(const std::string& path, const std::string& text) {
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(ErrorCode::kSystemError, "cannot write '" + path + "' (is the folder writable?)");
  f << text;
  f.flush();
  if (!f) throw Error(ErrorCode::kSystemError, "writing '" + path + "' failed");
}

std::string workersText(const StudyOptions& o) {
  const std::string threads = std::to_string(o.jobs) + " thread(s)";
  if (o.shards == nullptr || o.shards->size() == 1) return threads;
  return std::to_string(o.shards->size()) + " MPI ranks of " + threads;
}

bool writesFiles(const StudyOptions& o) {
  return o.shards == nullptr || o.shards->rank() == 0;
}

void writeStudyFile(const StudyOptions& o, const std::string& path, const std::string& text) {
  if (writesFiles(o)) writeTextFile(path, text);
}

void writeStudyChart(const StudyOptions& o, const std::string& path, const std::vector<PlotSeries>& series,
                     const PlotOptions& options) {
  if (writesFiles(o)) writeLineChart(path, series, options);
}

const std::vector<StudyInfo>& studyRegistry() {
  static const std::vector<StudyInfo> registry = [] {
    std::vector<StudyInfo> r;
    auto add = [&r](std::string id, std::string slug, std::string title, std::function<void(const StudyOptions&)> fn) {
      StudyInfo s;
      s.id = std::move(id);
      s.slug = std::move(slug);
      s.title = std::move(title);
      s.script = "studies/" + s.id + "-" + s.slug + ".sh";
      s.run = std::move(fn);
      r.push_back(std::move(s));
    };
    add("a", "multiplane-vs-multirail",
        "Multi-plane vs multi-rail fat-tree on 2048 H800: all-to-all and all-reduce by size", runStudyA);
    add("b", "offload-vs-sm-kernels",
        "Co-processor offload vs 20-SM communication kernels: MoE layer and training-step time", runStudyB);
    add("c", "unified-vs-split-scaleup-scaleout",
        "Unified scale-up/scale-out vs today's split for EP64 dispatch/combine", runStudyC);
    add("d", "ibgda-vs-proxy-decode", "IBGDA vs CPU proxy for decode-size all-to-all (128 tokens per rank, EP 8-256)",
        runStudyD);
    add("e", "pxn-rail-optimized", "PXN on/off on a rail-optimized fabric: spine traffic and all-to-all time",
        runStudyE);
    add("f", "nic-nvlink-bandwidth-sweep", "NIC bandwidth (200/400/800 Gb/s) and NVLink bandwidth sweep for EP64 MoE",
        runStudyF);
    return r;
  }();
  return registry;
}

const StudyInfo& findStudy(const std::string& id) {
  std::string known;
  for (const auto& s : studyRegistry()) {
    if (s.id == id || s.id + "-" + s.slug == id) return s;
    known += (known.empty() ? "" : ", ") + s.id;
  }
  throw Error(ErrorCode::kInvalidArgument,
              "unknown study '" + id + "'; studies are " + known + " (copro-study list describes them)");
}

std::string studyPrefix(const StudyOptions& o, const StudyInfo& s) {
  return (std::filesystem::path(o.outDir) / (s.id + "-" + s.slug)).string();
}

std::string reproduceCommand(const StudyOptions& o, const StudyInfo& s) {
  std::string cmd = "copro-study " + s.id;
  if (o.quick) cmd += " --quick";
  cmd += " --out " + o.outDir;
  return cmd;
}

void writeIndex(const StudyOptions& o) {
  if (!writesFiles(o)) return;
  std::ostringstream os;
  os << "# What-if studies\n\n"
     << "Generated by `copro-study index` (and after every study) from the studies' own markdown: do not edit by "
        "hand. Each study is one command (`studies/<id>-<slug>.sh`, which builds `copro-study` and runs it) and "
        "writes a CSV, an SVG plot and a markdown summary here; `studies/README.md` explains the framework.\n\n";
  MarkdownTable t({"study", "question", "command", "headline"}, {false, false, false, false});
  for (const auto& s : studyRegistry()) {
    const std::string name = s.id + "-" + s.slug;
    const std::string md = studyPrefix(o, s) + ".md";
    std::string headline = "pending";
    std::string link = s.id;
    std::ifstream f(md);
    if (s.run && f) {
      link = "[" + s.id + "](" + name + ".md)";
      std::string line;
      const std::string marker = kHeadlineMarker;
      while (std::getline(f, line)) {
        if (line.rfind(marker, 0) == 0) {
          headline = line.substr(marker.size());
          break;
        }
      }
    } else if (s.run) {
      headline = "not run yet (`" + s.script + "`)";
    }
    t.addRow({link, s.title, s.run ? "`" + s.script + "`" : "pending", headline});
  }
  os << t.render();
  writeTextFile((std::filesystem::path(o.outDir) / "README.md").string(), os.str());
}

}  // namespace copro::tools::study
