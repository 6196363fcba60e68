// copro-perf: nccl-tests-style collective benchmark (flags, columns and bus-bandwidth factors follow
// nccl-tests so results can be compared directly; --format osu prints OSU micro-benchmark tables).
// Ranks are threads (--transport inproc) or, under mpirun, processes (shm, mpi, ucx). See docs/perf.md.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "copro/copro.hpp"
#include "copro/core/trace.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/probe.hpp"
#include "copro/topologies/topology.hpp"
#include "memory_bound.hpp"
#include "perf_bench.hpp"
#if COPRO_PERF_HAVE_MPI
#include "perf_mpi.hpp"
#endif

namespace {

using copro::bench::Options;
using copro::bench::Result;
using copro::collectives::CollectiveKind;

std::string fmtCol(const Result& r, double bytes, double factor) {
  char buf[128];
  if (!r.supported) {
    std::snprintf(buf, sizeof buf, "%10s %7s %7s %6s", "N/A", "N/A", "N/A", "N/A");
  } else {
    double algbw = bytes / (r.timeUs * 1e-6) / 1e9;
    std::snprintf(buf, sizeof buf, "%10.2f %7.2f %7.2f %6llu", r.timeUs, algbw, algbw * factor,
                  static_cast<unsigned long long>(r.wrong));
  }
  return buf;
}

/// A peer's columns: time, busbw, #wrong and copro's out-of-place busbw over the peer's.
std::string fmtPeer(const Result& peer, const Result& copro, double bytes, double factor) {
  char buf[128];
  if (!peer.supported || peer.timeUs <= 0) {
    std::snprintf(buf, sizeof buf, " %10s %7s %6s %6s", "N/A", "N/A", "N/A", "N/A");
  } else {
    double busbw = bytes / (peer.timeUs * 1e-6) / 1e9 * factor;
    char ratio[16];
    if (copro.supported && copro.timeUs > 0) {
      std::snprintf(ratio, sizeof ratio, "%6.2f", peer.timeUs / copro.timeUs);
    } else {
      std::snprintf(ratio, sizeof ratio, "%6s", "N/A");
    }
    std::snprintf(buf, sizeof buf, " %10.2f %7.2f %6llu %s", peer.timeUs, busbw,
                  static_cast<unsigned long long>(peer.wrong), ratio);
  }
  return buf;
}

/// OSU micro-benchmarks' name of a collective in its table title.
const char* osuTitle(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::kAllReduce:
      return "Allreduce";
    case CollectiveKind::kAllGather:
      return "Allgather";
    case CollectiveKind::kReduceScatter:
      return "Reduce_scatter";
    case CollectiveKind::kAllToAll:
      return "All-to-All Personalized Exchange";
    case CollectiveKind::kBroadcast:
      return "Broadcast";
    case CollectiveKind::kReduce:
      return "Reduce";
    case CollectiveKind::kGather:
      return "Gather";
    case CollectiveKind::kScatter:
      return "Scatter";
    default:
      return "Collective";
  }
}

/// OSU's message size: what one rank sends to each destination for the personalized collectives
/// (all-gather, all-to-all, gather, scatter), the whole buffer otherwise (as nccl-tests).
std::uint64_t osuSize(CollectiveKind k, std::uint64_t count, std::size_t esize, int p) {
  switch (k) {
    case CollectiveKind::kAllGather:
    case CollectiveKind::kAllToAll:
    case CollectiveKind::kGather:
    case CollectiveKind::kScatter:
      return count * esize;
    case CollectiveKind::kReduceScatter:
      return count * esize * static_cast<std::uint64_t>(p);
    default:
      return count * esize;
  }
}

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t c = text.find(',', pos);
    if (c == std::string::npos) c = text.size();
    if (c > pos) out.push_back(text.substr(pos, c - pos));
    pos = c + 1;
  }
  return out;
}

/// --trace: every size's traced iteration in one Chrome trace, in the simulator's conventions (pid = rank,
/// tid = lane; docs/copro-sim.md "Trace format"); sizes follow each other on the time axis.
class PerfTrace {
 public:
  explicit PerfTrace(const std::string& path) : writer_(path) {}

  void add(const std::vector<copro::bench::TracedOp>& ops, int nranks, const std::string& label) {
    if (ops.empty()) return;
    double base = ops.front().beginNs;
    double last = ops.front().endNs;
    for (const auto& op : ops) {
      base = std::min(base, op.beginNs);
      last = std::max(last, op.endNs);
    }
    auto at = [&](double ns) { return offset_ + copro::core::Time::ps(static_cast<std::int64_t>((ns - base) * 1e3)); };
    for (int r = 0; r < nranks; ++r) {
      if (static_cast<int>(named_.size()) <= r) {
        named_.push_back(true);
        writer_.processName(r, "rank " + std::to_string(r));
        writer_.processSortIndex(r, r);
        writer_.threadName(r, kCallTid, "call (whole collective)");
        writer_.threadSortIndex(r, kCallTid, -1);
      }
    }
    for (const auto& op : ops) {
      if (op.lane < 0) {
        writer_.complete(op.rank, kCallTid, label, "call", at(op.beginNs), at(op.endNs) - at(op.beginNs));
        continue;
      }
      if (lanes_.insert({op.rank, op.lane}).second) {
        writer_.threadName(op.rank, op.lane, "lane " + std::to_string(op.lane));
        writer_.threadSortIndex(op.rank, op.lane, op.lane);
      }
      std::string name(copro::core::opCodeName(op.op));
      if (op.count > 1) name += " +" + std::to_string(op.count - 1) + " fused";
      copro::core::TraceArgs args;
      args.emplace_back("index", op.index);
      if (op.peer >= 0) args.emplace_back("peer", op.peer);
      if (op.bytes > 0) args.emplace_back("bytes", op.bytes);
      writer_.complete(op.rank, op.lane, name, "op", at(op.beginNs), at(op.endNs) - at(op.beginNs), args);
    }
    // A gap of a tenth of the iteration (at least 10 us) between sizes.
    const double span = last - base;
    offset_ = at(last) + copro::core::Time::ps(static_cast<std::int64_t>(std::max(1e4, span / 10) * 1e3));
  }

  void finish() { writer_.finish(); }

 private:
  static constexpr std::int64_t kCallTid = 1 << 20;
  copro::core::TraceWriter writer_;
  copro::core::Time offset_{};
  std::vector<bool> named_;
  std::set<std::pair<int, int>> lanes_;
};

/// --predict: the simulator on the same Program as the measured row.
class Predictor {
 public:
  Predictor(copro::topo::Fabric fabric, std::string source) : fabric_(std::move(fabric)), source_(std::move(source)) {}

  [[nodiscard]] const std::string& source() const { return source_; }
  [[nodiscard]] const copro::topo::Fabric& fabric() const { return fabric_; }

  /// Predicted time in microseconds of one call of `args` with `algorithm` ("allreduce.ring" or "ring").
  double predictUs(const copro::collectives::CollectiveArgs& args, std::string algorithm) {
    const auto dot = algorithm.find('.');
    if (dot != std::string::npos) algorithm = algorithm.substr(dot + 1);
    if (static_cast<int>(fabric_.gpus().size()) < args.nranks) {
      throw copro::Error(copro::ErrorCode::kInvalidArgument,
                         "--predict: topology '" + source_ + "' has " + std::to_string(fabric_.gpus().size()) +
                             " endpoints for " + std::to_string(args.nranks) +
                             " ranks (probe it with copro-topo probe --ranks " + std::to_string(args.nranks) + ")");
    }
    const auto program = copro::collectives::buildProgram(args, algorithm);
    copro::sim::Simulator sim(fabric_, copro::sim::SimParams::fromFabric(fabric_));
    return sim.run(*program).time.microseconds();
  }

 private:
  copro::topo::Fabric fabric_;
  std::string source_;
};

/// One size's figures, kept for the OSU tables printed at the end of an algorithm.
struct Row {
  std::uint64_t osuBytes = 0;
  copro::bench::SizeResult res;
};

int runBenchmark(Options& o, copro::bench::Team& team, std::vector<copro::Communicator> comms,
                 std::vector<std::unique_ptr<copro::bench::Peer>> peers, const copro::Config& cfg) {
  const bool printer = team.printer();
  const bool osu = o.format == "osu";
  const std::vector<int> nodeOfRank = comms.front().nodeOfRank();
  const std::uint64_t chunkBytes = comms.front().config().chunkBytes;
  copro::bench::Bench bench(o, team, std::move(comms), std::move(peers));
  const int p = bench.ranks();
  const std::size_t esize = copro::core::dataTypeSize(o.dtype);
  const auto peerNames = bench.peerNames();
  const auto peerReasons = bench.peerReasons();

  std::vector<std::string> algos;
  if (o.algo == "all") {
    // Every algorithm that can run on this communicator (hier needs a node map: COPRO_NODE_MAP).
    copro::collectives::CollectiveArgs probe;
    probe.kind = o.kind;
    probe.nranks = p;
    probe.count = 1024;
    probe.dtype = o.dtype;
    probe.op = o.op;
    probe.nodeOfRank = nodeOfRank;
    for (const auto* a : copro::collectives::algorithmsFor(o.kind)) {
      std::string why = a->unsupportedReason(probe);
      if (why.empty()) {
        algos.push_back(a->name);
      } else if (printer) {
        std::printf("# skipping %s: %s\n", a->name.c_str(), why.c_str());
      }
    }
  } else if (!o.algo.empty()) {
    algos = splitList(o.algo);
  } else {
    algos.emplace_back();
  }

  const bool showBound = o.kind == CollectiveKind::kAllReduce && !o.noBound && !osu;
  double copyBw = 0;
  if (printer) {
    std::printf("# copro-perf %s: collective %s, %d ranks, transport %s, initiation %s\n", copro::version(),
                std::string(copro::collectives::collectiveName(o.kind)).c_str(), p, o.transport.c_str(),
                cfg.initiation.c_str());
    if (std::any_of(nodeOfRank.begin(), nodeOfRank.end(), [](int n) { return n != 0; })) {
      std::string map;
      for (int n : nodeOfRank) map += (map.empty() ? "" : ",") + std::to_string(n);
      std::printf("# virtual nodes of the ranks: %s\n", map.c_str());
    }
    for (std::size_t i = 0; i < peerNames.size(); ++i) {
      if (!peerReasons[i].empty()) std::printf("# compare %s: N/A, %s\n", peerNames[i].c_str(), peerReasons[i].c_str());
    }
  }
  if (showBound) {
    // Threads: one probe with every core. Processes: every rank copies at once with its share of the
    // cores and the bandwidths add up, so the probe sees the memory system the ranks share.
    const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    if (o.transport == "inproc") {
      copyBw = copro::bench::measureCopyBandwidth();
    } else {
      const int threads = std::max(1, static_cast<int>(cores) / p);
      team.barrier();
      copyBw = team.sum(0, copro::bench::measureCopyBandwidth(64ULL << 20, threads));
    }
    if (printer) {
      std::printf("# memory bandwidth probe: copy with %u threads moves %.2f GB/s (read + write)\n", cores,
                  copyBw / 1e9);
      std::printf(
          "# %%bound = (2 * ranks * size / probe) / out-of-place time: the fraction of the memory-traffic "
          "bound reached\n");
    }
  }
  std::unique_ptr<Predictor> predictor;
  std::unique_ptr<PerfTrace> trace;
  if (printer && o.predict) {
    if (!o.topology.empty()) {
      predictor = std::make_unique<Predictor>(copro::topo::loadTopology(o.topology), o.topology);
    } else {
      // Probed now, by the printing process alone (under mpirun the other ranks wait in a barrier, which may
      // spin: a file from copro-topo probe, written on a quiet host, is the cleaner input there).
      copro::topo::ProbeOptions po;
      po.ranks = p;
      const copro::topo::ProbeResult probe = copro::topo::probeHost(po);
      predictor = std::make_unique<Predictor>(copro::topo::probeFabric(probe, chunkBytes), "this host, probed now");
      std::printf(
          "# probe: copy %.2f GB/s one core, %.2f GB/s with %d threads; reduce %.2f / %.2f GB/s; signal round "
          "trip %.0f ns; op overhead %.1f ns\n",
          probe.copyOneCore / 1e9, probe.copyAllRanks / 1e9, p, probe.reduceOneCore / 1e9, probe.reduceAllRanks / 1e9,
          probe.threadRoundTripNs, probe.opOverheadNs);
    }
    std::printf("# predicted: copro-sim of the same Program on %s (%s); pred/meas = predicted / out-of-place time\n",
                predictor->source().c_str(), predictor->fabric().name.c_str());
  }
  if (printer && !o.trace.empty()) trace = std::make_unique<PerfTrace>(o.trace);
  // Processes wait for the printer's probe (a thread team's barrier needs every rank's thread: none here).
  if (o.predict && o.transport != "inproc") team.barrier();
  nlohmann::json rows = nlohmann::json::array();
  int exitCode = 0;
  for (const auto& algo : algos) {
    const std::string algoName = algo.empty() ? "(planner)" : algo;
    if (printer && !osu) {
      std::printf("#\n# algorithm: %s\n", algoName.c_str());
      std::string peerHead1;
      std::string peerHead2;
      std::string peerHead3;
      for (const auto& n : peerNames) {
        char b1[96];
        char b2[96];
        char b3[96];
        std::snprintf(b1, sizeof b1, " %33s", (n + " (out-of-place)").c_str());
        std::snprintf(b2, sizeof b2, " %10s %7s %6s %6s", "time", "busbw", "#wrong", "ratio");
        std::snprintf(b3, sizeof b3, " %10s %7s %6s %6s", "(us)", "(GB/s)", "", "");
        peerHead1 += b1;
        peerHead2 += b2;
        peerHead3 += b3;
      }
      if (predictor) {
        peerHead1 += "        predicted";
        peerHead2 += "  predicted pred/meas";
        peerHead3 += "       (us)          ";
      }
      std::printf("#%64s%s%34s%s\n", "out-of-place", showBound ? "        " : "", "in-place", peerHead1.c_str());
      std::printf("# %10s %12s %8s %6s %6s %10s %7s %7s %6s%s %10s %7s %7s %6s%s\n", "size", "count", "type", "redop",
                  "root", "time", "algbw", "busbw", "#wrong", showBound ? " %bound" : "", "time", "algbw", "busbw",
                  "#wrong", peerHead2.c_str());
      std::printf("# %10s %12s %8s %6s %6s %10s %7s %7s %6s%s %10s %7s %7s %6s%s\n", "(B)", "(elements)", "", "", "",
                  "(us)", "(GB/s)", "(GB/s)", "", showBound ? "       " : "", "(us)", "(GB/s)", "(GB/s)", "",
                  peerHead3.c_str());
      if (!peerNames.empty()) {
        std::printf("# ratio = peer time / copro out-of-place time (copro busbw / peer busbw; > 1: copro faster)\n");
      }
    }
    std::vector<Row> osuRows;
    for (std::uint64_t bytes = o.minBytes; bytes <= o.maxBytes; bytes *= o.stepFactor) {
      const std::uint64_t count = copro::bench::countFor(o.kind, bytes, esize, p);
      const std::uint64_t realBytes = (o.kind == CollectiveKind::kAllReduce || o.kind == CollectiveKind::kBroadcast ||
                                       o.kind == CollectiveKind::kReduce)
                                          ? count * esize
                                          : count * esize * static_cast<std::uint64_t>(p);
      copro::bench::SizeResult res = bench.runSize(count, algo);
      const Result& oop = res.outOfPlace;
      const Result& ip = res.inPlace;
      const double factor = copro::bench::busFactor(o.kind, p);
      double fraction = 0;
      if (printer) {
        std::string bound;
        if (showBound) {
          char tmp[16];
          if (oop.supported && oop.timeUs > 0) {
            fraction = copro::bench::allReduceMemoryBoundSec(realBytes, p, copyBw) / (oop.timeUs * 1e-6);
            std::snprintf(tmp, sizeof tmp, " %6.1f%%", 100.0 * fraction);
          } else {
            std::snprintf(tmp, sizeof tmp, " %7s", "N/A");
          }
          bound = tmp;
        }
        std::string peerCols;
        for (const auto& pr : res.peers) peerCols += fmtPeer(pr, oop, static_cast<double>(realBytes), factor);
        double predictedUs = 0;
        if (predictor) {
          copro::collectives::CollectiveArgs args;
          args.kind = o.kind;
          args.nranks = p;
          args.count = count;
          args.dtype = o.dtype;
          args.op = o.op;
          args.root = o.root;
          args.nodeOfRank = nodeOfRank;
          args.chunkBytes = chunkBytes;
          // The algorithm the communicator ran (its planner saw the executor's load/store domains).
          std::string algoUsed = res.algorithm;
          if (algoUsed.empty()) algoUsed = copro::collectives::plan(args, cfg, algo).chosen->name;
          char tmp[64];
          try {
            predictedUs = predictor->predictUs(args, algoUsed);
            std::snprintf(tmp, sizeof tmp, " %10.2f %9.2f", predictedUs,
                          oop.supported && oop.timeUs > 0 ? predictedUs / oop.timeUs : 0.0);
          } catch (const copro::Error& e) {
            std::fprintf(stderr, "copro-perf: --predict, %llu B: %s\n", static_cast<unsigned long long>(bytes),
                         e.message().c_str());
            std::snprintf(tmp, sizeof tmp, " %10s %9s", "N/A", "N/A");
          }
          peerCols += tmp;
        }
        if (trace)
          trace->add(res.trace, p,
                     std::string(copro::collectives::collectiveName(o.kind)) + " " + std::to_string(realBytes) +
                         " B (" + res.algorithm + ")");
        if (osu) {
          osuRows.push_back({osuSize(o.kind, count, esize, p), res});
        } else {
          std::printf("  %10llu %12llu %8s %6s %6s %s%s %s%s\n", static_cast<unsigned long long>(realBytes),
                      static_cast<unsigned long long>(count), std::string(copro::core::dataTypeName(o.dtype)).c_str(),
                      copro::bench::hasOp(o.kind) ? std::string(copro::core::reduceOpName(o.op)).c_str() : "none",
                      copro::bench::isRooted(o.kind) ? std::to_string(o.root).c_str() : "-",
                      fmtCol(oop, static_cast<double>(realBytes), factor).c_str(), bound.c_str(),
                      fmtCol(ip, static_cast<double>(realBytes), factor).c_str(), peerCols.c_str());
          std::fflush(stdout);
        }
        auto failed = [&](const Result& r, const std::string& what) {
          if (!r.error.empty()) {
            std::fprintf(stderr, "copro-perf: %s, %llu B: %s\n", what.c_str(), static_cast<unsigned long long>(bytes),
                         r.error.c_str());
            exitCode = 1;
          }
          if (r.wrong > 0) {
            if (osu) {
              std::fprintf(stderr, "copro-perf: %s, %llu B: #wrong %llu\n", what.c_str(),
                           static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(r.wrong));
            }
            exitCode = 1;
          }
        };
        failed(oop, "copro out-of-place");
        failed(ip, "copro in-place");
        for (std::size_t i = 0; i < res.peers.size(); ++i) failed(res.peers[i], peerNames[i]);
        auto row = [&](const Result& r) {
          nlohmann::json j;
          j["supported"] = r.supported;
          if (r.supported) {
            j["time_us"] = r.timeUs;
            j["avg_time_us"] = r.avgTimeUs;
            j["algbw_GBps"] = static_cast<double>(realBytes) / (r.timeUs * 1e-6) / 1e9;
            j["busbw_GBps"] = j["algbw_GBps"].get<double>() * factor;
            j["wrong"] = r.wrong;
          }
          if (!r.error.empty()) j["error"] = r.error;
          return j;
        };
        nlohmann::json jr = {{"collective", copro::collectives::collectiveName(o.kind)},
                             {"algorithm", algo.empty() ? "planner" : algo},
                             {"transport", o.transport},
                             {"ranks", p},
                             {"size", realBytes},
                             {"count", count},
                             {"type", copro::core::dataTypeName(o.dtype)},
                             {"redop", copro::core::reduceOpName(o.op)},
                             {"out_of_place", row(oop)},
                             {"in_place", row(ip)}};
        if (!res.peers.empty()) {
          nlohmann::json jp = nlohmann::json::object();
          for (std::size_t i = 0; i < res.peers.size(); ++i) jp[peerNames[i]] = row(res.peers[i]);
          jr["peers"] = jp;
        }
        if (!res.algorithm.empty()) jr["program"] = res.algorithm;
        if (predictor && predictedUs > 0) {
          jr["predicted_us"] = predictedUs;
          if (oop.supported && oop.timeUs > 0) jr["predicted_over_measured"] = predictedUs / oop.timeUs;
        }
        if (showBound) {
          jr["copy_bandwidth_GBps"] = copyBw / 1e9;
          jr["memory_bound_fraction"] = fraction;
        }
        rows.push_back(jr);
      }
      if (bytes > o.maxBytes / o.stepFactor) break;
    }
    if (printer && osu) {
      // One OSU table per library (copro first), so each diffs against osu_* output line by line.
      auto table = [&](const std::string& who, auto pick) {
        std::printf("\n# OSU MPI %s Latency Test (copro-perf %s: %s, %d ranks)\n", osuTitle(o.kind), copro::version(),
                    who.c_str(), p);
        std::printf("%-10s%18s\n", "# Size", "Avg Latency(us)");
        for (const auto& r : osuRows) {
          const Result& x = pick(r.res);
          if (!x.supported) continue;
          std::printf("%-10llu%18.2f\n", static_cast<unsigned long long>(r.osuBytes), x.avgTimeUs);
        }
      };
      table("copro " + o.transport + ", algorithm " + algoName,
            [](const copro::bench::SizeResult& s) -> const Result& { return s.outOfPlace; });
      for (std::size_t i = 0; i < peerNames.size(); ++i) {
        table(peerNames[i], [i](const copro::bench::SizeResult& s) -> const Result& { return s.peers[i]; });
      }
      std::fflush(stdout);
    }
  }
  if (trace) trace->finish();
  if (printer && !o.json.empty()) {
    std::ofstream f(o.json);
    if (!f) throw copro::Error(copro::ErrorCode::kSystemError, "cannot write " + o.json);
    f << nlohmann::json{{"tool", "copro-perf"}, {"version", copro::version()}, {"rows", rows}}.dump(1) << "\n";
  }
  return exitCode;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"copro-perf: nccl-tests-style benchmark of copro collectives"};
  Options o;
  std::string collective = "allreduce";
  std::string minB = "32M";
  std::string maxB = "32M";
  std::string dtype = "float";
  std::string op = "sum";
  app.add_option("collective", collective,
                 "allreduce, allgather, reducescatter, broadcast, reduce, gather, scatter, alltoall");
  app.add_option("-b,--minbytes", minB, "minimum size (K/M/G suffixes), default 32M");
  app.add_option("-e,--maxbytes", maxB, "maximum size, default 32M");
  app.add_option("-f,--stepfactor", o.stepFactor, "multiplication factor between sizes, default 2");
  app.add_option("-n,--iters", o.iters, "timed iterations, default 20");
  app.add_option("-w,--warmup_iters", o.warmup, "warm-up iterations, default 5");
  app.add_option("-c,--check", o.check, "check results (0/1), default 1");
  app.add_option("-d,--datatype", dtype, "float, half, bfloat16, double, int32, ..., default float");
  app.add_option("-o,--op", op, "sum, prod, min, max, avg, default sum");
  app.add_option("-r,--root", o.root, "root of rooted collectives, default 0");
  app.add_option("--algo", o.algo, "algorithm name, a comma list, or 'all' (default: the planner)");
  app.add_option("--transport", o.transport,
                 "backend: inproc (ranks are threads; the default), or under mpirun shm (the default there), mpi, "
                 "ucx, shm+ucx, shm+mpi (virtual nodes, with --node-map)");
  app.add_option("--ranks", o.ranks, "ranks for inproc, default 4 (under mpirun: the process count)");
  app.add_option("--node-map", o.nodeMap, "virtual nodes, as COPRO_NODE_MAP: \"0,0,1,1\" or ranks per node \"2\"");
  app.add_option("--compare", o.compare, "also time these libraries on the same buffers (under mpirun): mpi,gloo");
  app.add_option("--format", o.format, "nccl (nccl-tests table, default) or osu (OSU micro-benchmark tables)");
  app.add_option("--buffers", o.buffers, "comm (Communicator::allocate, the default) or heap");
  app.add_option("--json", o.json, "also write the rows to this JSON file");
  app.add_flag("--no-bound", o.noBound, "skip the memory bandwidth probe");
  app.add_option("--trace", o.trace,
                 "write a Chrome trace of one extra out-of-place iteration per size (inproc: every op of every "
                 "lane; other backends: each rank's call)");
  app.add_flag("--predict", o.predict,
               "add the simulator's prediction of each row (the same Program) and predicted / measured");
  app.add_option("--topology", o.topology,
                 "the topology --predict simulates (a copro-topo probe file or any topology); default: probe "
                 "this host now");
  CLI11_PARSE(app, argc, argv);

#if COPRO_PERF_HAVE_MPI
  std::unique_ptr<copro::bench::MpiRun> mpi;
#endif
  try {
    if (!copro::collectives::parseCollectiveKind(collective, o.kind)) {
      throw copro::Error(copro::ErrorCode::kInvalidArgument, "unknown collective '" + collective + "'");
    }
    auto t = copro::core::parseDataType(dtype);
    if (!t) throw copro::Error(copro::ErrorCode::kInvalidArgument, "unknown data type '" + dtype + "'");
    o.dtype = *t;
    auto ro = copro::core::parseReduceOp(op);
    if (!ro) throw copro::Error(copro::ErrorCode::kInvalidArgument, "unknown reduction '" + op + "'");
    o.op = *ro;
    o.minBytes = copro::core::parseBytes(minB);
    o.maxBytes = copro::core::parseBytes(maxB);
    if (o.stepFactor < 2) o.stepFactor = 2;
    if (o.ranks <= 0) throw copro::Error(copro::ErrorCode::kInvalidArgument, "--ranks must be > 0");
    if (o.format != "nccl" && o.format != "osu") {
      throw copro::Error(copro::ErrorCode::kInvalidArgument, "--format must be nccl or osu, got '" + o.format + "'");
    }
    if (o.buffers != "comm" && o.buffers != "heap") {
      throw copro::Error(copro::ErrorCode::kInvalidArgument, "--buffers must be comm or heap, got '" + o.buffers + "'");
    }

    copro::Config cfg = copro::Config::fromEnvironment();
    if (!o.nodeMap.empty()) cfg.set("COPRO_NODE_MAP", o.nodeMap);

    bool launched = false;
#if COPRO_PERF_HAVE_MPI
    launched = copro::bench::underMpiLauncher();
#endif
    if (o.transport.empty()) o.transport = launched ? "shm" : "inproc";
    const bool multiProcess = o.transport != "inproc";
    if (multiProcess && o.transport != "shm" && o.transport != "mpi" && o.transport != "ucx" &&
        o.transport != "shm+ucx" && o.transport != "shm+mpi") {
      throw copro::Error(copro::ErrorCode::kInvalidArgument,
                         "unknown --transport '" + o.transport + "' (inproc, shm, mpi, ucx, shm+ucx, shm+mpi)");
    }

    if (!multiProcess) {
      if (!o.compare.empty()) {
        throw copro::Error(copro::ErrorCode::kInvalidArgument,
                           "--compare runs the peers as processes: start copro-perf with mpirun -np N and "
                           "--transport shm, mpi or ucx");
      }
#if COPRO_PERF_HAVE_MPI
      if (launched) {
        // inproc under mpirun: only one process may run the threads, or the table prints N times.
        mpi = std::make_unique<copro::bench::MpiRun>(copro::bench::MpiRun::ThreadLevel::kFunneled);
        if (mpi->size() > 1) {
          throw copro::Error(copro::ErrorCode::kInvalidArgument,
                             "--transport inproc runs its ranks as threads of one process; under mpirun -np " +
                                 std::to_string(mpi->size()) + " use --transport shm, mpi or ucx");
        }
      }
#endif
      auto comms = copro::createInproc(o.ranks, cfg);
      auto team = copro::bench::makeThreadTeam(o.ranks);
      return runBenchmark(o, *team, std::move(comms), {}, cfg);
    }

#if COPRO_PERF_HAVE_MPI
    if (!launched) {
      throw copro::Error(copro::ErrorCode::kInvalidArgument,
                         "--transport " + o.transport +
                             " runs one rank per process: start copro-perf with mpirun -np N (add --oversubscribe "
                             "for more ranks than cores)");
    }
    using Level = copro::bench::MpiRun::ThreadLevel;
    const Level level = o.transport != "mpi" && o.transport != "shm+mpi" ? Level::kFunneled
                        : cfg.initiation == "proxy"                      ? Level::kMultiple
                                                                         : Level::kSerialized;
    mpi = std::make_unique<copro::bench::MpiRun>(level);
    auto team = mpi->team();
    std::vector<copro::Communicator> comms;
    comms.push_back(mpi->communicator(o.transport, cfg));
    auto peers = mpi->peers(o.compare, cfg.timeoutSec);
    // Rank 0 saw the combined figures and returns the status; mpirun exits non-zero when any rank does.
    return runBenchmark(o, *team, std::move(comms), std::move(peers), cfg);
#else
    throw copro::Error(copro::ErrorCode::kUnsupported,
                       "--transport " + o.transport + " needs copro-perf built with MPI (mpirun bootstraps it)");
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "copro-perf: %s\n", e.what());
#if COPRO_PERF_HAVE_MPI
    // An error on one process would leave the others waiting for it in their next collective.
    if (mpi && mpi->size() > 1) mpi->abortAll(1);
#endif
    return 1;
  }
}
