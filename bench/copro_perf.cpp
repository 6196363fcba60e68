// copro-perf: nccl-tests' collective benchmark for copro. The table speaks nccl-tests exactly (its 13 columns in
// its order, widths and spelling, its footer, its flags and type names), so nccl-tests parsers read it; copro's
// own columns follow (per --compare peer, %bound, predicted). --format osu prints OSU micro-benchmark tables
// and takes OSU's flags. Ranks are threads (--transport inproc) or, under mpirun, processes (shm, mpi, ucx).
// See docs/perf.md.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "cli_suggest.hpp"
#include "copro/copro.hpp"
#include "copro/core/config.hpp"
#include "copro/core/trace.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/communicator.hpp"
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
using copro::bench::SizeResult;
using copro::collectives::CollectiveKind;

/// Most ranks --transport inproc runs (threads of this process): the per-pair state of a world grows with the
/// square of the rank count, and past this the start-up alone takes minutes on a small host.
constexpr int kMaxInprocRanks = 512;

/// Backends whose ranks are threads of this one process: inproc, and the lane machine on host threads
/// (lanemachine) or on this process's GPU (cuda, docs/gpu.md).
bool threadRanks(const std::string& transport) {
  return transport == "inproc" || transport == "lanemachine" || transport == "cuda";
}

std::string sprintfStr(const char* fmt, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

/// nccl-tests' getFloatStr: `value` in `width` characters, dropping decimals (then using an exponent) to fit.
std::string ncclFloat(double value, int width) {
  char buf[32];
  const auto w = static_cast<std::size_t>(width) + 1;
  if (std::snprintf(buf, w, "%*.2f", width, value) <= width) return buf;
  if (std::snprintf(buf, w, "%*.1f", width, value) <= width) return buf;
  if (std::snprintf(buf, w, "%*.0f", width, value) <= width) return buf;
  std::snprintf(buf, w, width >= 7 ? "%*.1e" : "%*.0e", width, value);
  return buf;
}

bool measured(const Result& r) {
  return r.supported && r.timeUs > 0;
}

double algBandwidth(const Result& r, double bytes) {
  return bytes / 1e9 / (r.timeUs * 1e-6);
}

/// nccl-tests' #wrong: "%6g", or "N/A" without -c.
std::string wrongStr(const Result& r, bool checked) {
  return checked ? sprintfStr("  %6g", static_cast<double>(r.wrong)) : std::string("    N/A");
}

/// One out-of-place or in-place group as nccl-tests prints it: time, algbw, busbw, #wrong.
std::string ncclGroup(const Result& r, double bytes, double factor, bool checked) {
  if (!measured(r)) return sprintfStr("  %7s  %6s  %6s  %6s", "N/A", "N/A", "N/A", "N/A");
  const double algbw = algBandwidth(r, bytes);
  return "  " + ncclFloat(r.timeUs, 7) + "  " + ncclFloat(algbw, 6) + "  " + ncclFloat(algbw * factor, 6) +
         wrongStr(r, checked);
}

/// A peer's group: time, busbw, #wrong and ratio = peer time / copro out-of-place time.
std::string peerGroup(const Result& peer, const Result& copro, double bytes, double factor, bool checked) {
  if (!measured(peer)) return sprintfStr("  %7s  %6s  %6s  %6s", "N/A", "N/A", "N/A", "N/A");
  const std::string ratio = measured(copro) ? ncclFloat(peer.timeUs / copro.timeUs, 6) : std::string("   N/A");
  return "  " + ncclFloat(peer.timeUs, 7) + "  " + ncclFloat(algBandwidth(peer, bytes) * factor, 6) +
         wrongStr(peer, checked) + "  " + ratio;
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
    copro::sim::CommunicatorOptions where;
    where.ranks = args.nranks;
    copro::sim::Communicator comm(fabric_, where);
    return comm.run(*comm.prepare(args, algorithm).program).time.microseconds();
  }

 private:
  copro::topo::Fabric fabric_;
  std::string source_;
};

/// One size's figures, kept for the OSU tables printed at the end of a sweep.
struct Row {
  std::uint64_t osuBytes = 0;
  SizeResult res;
};

/// Per table: the footer's figures (nccl-tests: wrong elements, mean busbw of every out-of-place and
/// in-place row).
struct Totals {
  std::uint64_t wrong = 0;
  double busSum = 0;
  int busCount = 0;
};

/// The element count of a row: nccl-tests' size, or under --format osu OSU's message size (what one rank
/// sends to each destination for the personalized collectives).
std::uint64_t rowCount(const Options& o, std::uint64_t bytes, std::size_t esize, int p) {
  const bool perDestination = o.kind == CollectiveKind::kAllGather || o.kind == CollectiveKind::kAllToAll ||
                              o.kind == CollectiveKind::kGather || o.kind == CollectiveKind::kScatter;
  if (o.format == "osu" && perDestination) return bytes / esize;
  return copro::bench::countFor(o.kind, bytes, esize, p);
}

/// nccl-tests' size of a count (the larger per-rank buffer).
std::uint64_t ncclBytes(CollectiveKind k, std::uint64_t count, std::size_t esize, int p) {
  const bool whole = k == CollectiveKind::kAllReduce || k == CollectiveKind::kBroadcast || k == CollectiveKind::kReduce;
  return count * esize * (whole ? 1 : static_cast<std::uint64_t>(p));
}

/// Runs the sweeps of one copro-perf invocation and prints them (on the printing process).
class Runner {
 public:
  Runner(Options& o, copro::bench::Team& team, std::vector<copro::Communicator> comms,
         std::vector<std::unique_ptr<copro::bench::Peer>> peers, const copro::Config& cfg)
      : o_(o),
        team_(team),
        cfg_(cfg),
        nodeOfRank_(comms.front().nodeOfRank()),
        chunkBytes_(comms.front().config().chunkBytes),
        bench_(o, team, std::move(comms), std::move(peers)),
        p_(bench_.ranks()),
        printer_(team.printer()),
        osu_(o.format == "osu"),
        showBound_(o.kind == CollectiveKind::kAllReduce && !o.noBound && !osu_),
        peerNames_(bench_.peerNames()) {}

  int run(const std::vector<std::string>& notes);

 private:
  std::vector<std::string> algorithms();
  void printPreamble(const std::vector<std::string>& notes);
  void probeBound();
  void setUpPredictor();
  void runAlgorithm(const std::string& algo);
  void runSweep(const std::string& algo, Totals& totals);
  void runOneSize(const std::string& algo, std::uint64_t bytes, Totals& totals, std::vector<Row>& osuRows);
  void applyAverage(SizeResult& res) const;
  double boundFraction(std::uint64_t bytes, const Result& oop) const;
  std::string predict(std::uint64_t count, const SizeResult& res, const std::string& algo, double& predictedUs);
  void printTableHeader() const;
  std::string tableRow(const SizeResult& res, std::uint64_t bytes, std::uint64_t count, double fraction,
                       const std::string& predicted) const;
  void printFooter(const Totals& t) const;
  void printOsuTables(const std::string& algoName, const std::vector<Row>& rows) const;
  void reportFailures(const SizeResult& res, std::uint64_t bytes);
  nlohmann::json rowJson(const std::string& algo, const SizeResult& res, std::uint64_t bytes, std::uint64_t count,
                         double fraction, double predictedUs) const;

  Options& o_;
  copro::bench::Team& team_;
  const copro::Config& cfg_;
  std::vector<int> nodeOfRank_;
  std::uint64_t chunkBytes_;
  copro::bench::Bench bench_;
  int p_;
  bool printer_;
  bool osu_;
  bool showBound_;
  std::vector<std::string> peerNames_;
  double copyBw_ = 0;
  std::unique_ptr<Predictor> predictor_;
  std::unique_ptr<PerfTrace> trace_;
  nlohmann::json rows_ = nlohmann::json::array();
  int exitCode_ = 0;
};

std::vector<std::string> Runner::algorithms() {
  if (o_.algo.empty()) return {std::string()};
  if (o_.algo != "all") return splitList(o_.algo);
  // Every algorithm that can run on this communicator (hier needs a node map: COPRO_NODE_MAP).
  copro::collectives::CollectiveArgs probe;
  probe.kind = o_.kind;
  probe.nranks = p_;
  probe.count = 1024;
  probe.dtype = o_.dtypes.front();
  probe.op = o_.ops.front();
  probe.nodeOfRank = nodeOfRank_;
  std::vector<std::string> algos;
  for (const auto* a : copro::collectives::algorithmsFor(o_.kind)) {
    const std::string why = a->unsupportedReason(probe);
    if (why.empty()) {
      algos.push_back(a->name);
    } else if (printer_) {
      std::printf("# skipping %s: %s\n", a->name.c_str(), why.c_str());
    }
  }
  return algos;
}

void Runner::printPreamble(const std::vector<std::string>& notes) {
  const std::string coll(copro::collectives::collectiveName(o_.kind));
  if (!osu_) {
    // nccl-tests' first lines (nThread: ranks that are threads of this process).
    std::printf("# Collective test starting: copro-perf %s\n", coll.c_str());
    std::printf(
        "# nThread %d nGpus 1 minBytes %llu maxBytes %llu step: %llu(%s) warmup iters: %d iters: %d agg iters: %d "
        "validation: %d graph: 0\n",
        threadRanks(o_.transport) ? p_ : 1, static_cast<unsigned long long>(o_.minBytes),
        static_cast<unsigned long long>(o_.maxBytes),
        static_cast<unsigned long long>(o_.stepFactor > 1 ? o_.stepFactor : o_.stepBytes),
        o_.stepFactor > 1 ? "factor" : "bytes", o_.warmup, o_.iters, o_.aggIters, o_.check);
    std::printf("#\n");
  }
  std::printf("# copro-perf %s: collective %s, %d ranks, transport %s, initiation %s\n", copro::version(), coll.c_str(),
              p_, o_.transport.c_str(), cfg_.initiation.c_str());
  if (std::any_of(nodeOfRank_.begin(), nodeOfRank_.end(), [](int n) { return n != 0; })) {
    std::string map;
    for (int n : nodeOfRank_) map += (map.empty() ? "" : ",") + std::to_string(n);
    std::printf("# virtual nodes of the ranks: %s\n", map.c_str());
  }
  const auto reasons = bench_.peerReasons();
  for (std::size_t i = 0; i < peerNames_.size(); ++i) {
    if (!reasons[i].empty()) std::printf("# compare %s: N/A, %s\n", peerNames_[i].c_str(), reasons[i].c_str());
  }
  for (const auto& n : notes) std::printf("# %s\n", n.c_str());
  if (!osu_ && !peerNames_.empty()) {
    std::printf("# ratio = peer time / copro out-of-place time (copro busbw / peer busbw; > 1: copro faster)\n");
  }
}

void Runner::probeBound() {
  // Threads: one probe with every core. Processes: every rank copies at once with its share of the
  // cores and the bandwidths add up, so the probe sees the memory system the ranks share.
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  if (threadRanks(o_.transport)) {
    copyBw_ = copro::bench::measureCopyBandwidth();
  } else {
    const int threads = std::max(1, static_cast<int>(cores) / p_);
    team_.barrier();
    copyBw_ = team_.sum(0, copro::bench::measureCopyBandwidth(64ULL << 20, threads));
  }
  if (printer_) {
    std::printf("# memory bandwidth probe: copy with %u threads moves %.2f GB/s (read + write)\n", cores,
                copyBw_ / 1e9);
    std::printf(
        "# %%bound = (2 * ranks * size / probe) / out-of-place time: the fraction of the memory-traffic "
        "bound reached\n");
  }
}

void Runner::setUpPredictor() {
  if (!o_.topology.empty()) {
    predictor_ = std::make_unique<Predictor>(copro::topo::loadTopology(o_.topology), o_.topology);
  } else {
    // Probed now, by the printing process alone (under mpirun the other ranks wait in a barrier, which may
    // spin: a file from copro-topo probe, written on a quiet host, is the cleaner input there).
    copro::topo::ProbeOptions po;
    po.ranks = p_;
    const copro::topo::ProbeResult probe = copro::topo::probeHost(po);
    predictor_ = std::make_unique<Predictor>(copro::topo::probeFabric(probe, chunkBytes_), "this host, probed now");
    std::printf(
        "# probe: copy %.2f GB/s one core, %.2f GB/s with %d threads; reduce %.2f / %.2f GB/s; signal round "
        "trip %.0f ns; op overhead %.1f ns\n",
        probe.copyOneCore / 1e9, probe.copyAllRanks / 1e9, p_, probe.reduceOneCore / 1e9, probe.reduceAllRanks / 1e9,
        probe.threadRoundTripNs, probe.opOverheadNs);
  }
  std::printf("# predicted: copro-sim of the same Program on %s (%s); pred/meas = predicted / out-of-place time\n",
              predictor_->source().c_str(), predictor_->fabric().name.c_str());
}

int Runner::run(const std::vector<std::string>& notes) {
  const auto algos = algorithms();
  if (printer_) printPreamble(notes);
  if (showBound_) probeBound();
  if (printer_ && o_.predict) setUpPredictor();
  if (printer_ && !o_.trace.empty()) trace_ = std::make_unique<PerfTrace>(o_.trace);
  // Processes wait for the printer's probe (a thread team's barrier needs every rank's thread: none here).
  if (o_.predict && !threadRanks(o_.transport)) team_.barrier();
  for (const auto& algo : algos) runAlgorithm(algo);
  if (printer_ && !osu_) {
    std::printf("# Collective test concluded: copro-perf %s\n",
                std::string(copro::collectives::collectiveName(o_.kind)).c_str());
  }
  if (trace_) trace_->finish();
  if (printer_ && !o_.json.empty()) {
    std::ofstream f(o_.json);
    if (!f) throw copro::Error(copro::ErrorCode::kSystemError, "cannot write " + o_.json);
    f << nlohmann::json{{"tool", "copro-perf"}, {"version", copro::version()}, {"rows", rows_}}.dump(1) << "\n";
  }
  std::fflush(stdout);
  return exitCode_;
}

/// One table (nccl) or one set of tables per type and operator (osu): every -d type, every -o operator
/// (reducing collectives), every -N cycle.
void Runner::runAlgorithm(const std::string& algo) {
  const std::string algoName = algo.empty() ? "(planner)" : algo;
  if (printer_ && !osu_) {
    std::printf("#\n# algorithm: %s\n", algoName.c_str());
    printTableHeader();
  }
  Totals totals;
  const std::vector<copro::ReduceOp> ops =
      copro::bench::hasOp(o_.kind) ? o_.ops : std::vector<copro::ReduceOp>{o_.ops.front()};
  for (const auto dtype : o_.dtypes) {
    for (const auto op : ops) {
      bench_.setType(dtype, op);
      o_.dtype = dtype;
      o_.op = op;
      runSweep(algo, totals);
    }
  }
  if (printer_ && !osu_) printFooter(totals);
  std::fflush(stdout);
}

void Runner::runSweep(const std::string& algo, Totals& totals) {
  const auto sizes = copro::bench::sweepSizes(o_);
  std::vector<Row> osuRows;
  for (int cycle = 0; o_.cycles == 0 || cycle < o_.cycles; ++cycle) {
    for (const std::uint64_t bytes : sizes) runOneSize(algo, bytes, totals, osuRows);
  }
  if (printer_ && osu_) printOsuTables(algo.empty() ? "(planner)" : algo, osuRows);
}

void Runner::applyAverage(SizeResult& res) const {
  auto apply = [this](Result& r) {
    if (r.supported) r.timeUs = copro::bench::reportedTimeUs(r, o_.average);
  };
  apply(res.outOfPlace);
  apply(res.inPlace);
  for (auto& pr : res.peers) apply(pr);
}

double Runner::boundFraction(std::uint64_t bytes, const Result& oop) const {
  if (!showBound_ || !measured(oop)) return 0;
  return copro::bench::allReduceMemoryBoundSec(bytes, p_, copyBw_) / (oop.timeUs * 1e-6);
}

/// The predicted columns ("  predicted pred/meas") of a row; predictedUs is 0 when the simulation failed.
std::string Runner::predict(std::uint64_t count, const SizeResult& res, const std::string& algo, double& predictedUs) {
  predictedUs = 0;
  if (!predictor_) return {};
  copro::collectives::CollectiveArgs args;
  args.kind = o_.kind;
  args.nranks = p_;
  args.count = count;
  args.dtype = o_.dtype;
  args.op = o_.op;
  args.root = o_.root;
  args.nodeOfRank = nodeOfRank_;
  args.chunkBytes = chunkBytes_;
  // The algorithm the communicator ran (its planner saw the executor's load/store domains).
  std::string algoUsed = res.algorithm;
  if (algoUsed.empty())
    algoUsed = copro::collectives::plan(args, copro::collectives::costModelFrom(cfg_), algo, cfg_.algo).chosen->name;
  try {
    predictedUs = predictor_->predictUs(args, algoUsed);
  } catch (const copro::Error& e) {
    std::fprintf(stderr, "copro-perf: --predict, %llu elements: %s\n", static_cast<unsigned long long>(count),
                 e.message().c_str());
    return sprintfStr("  %10s %9s", "N/A", "N/A");
  }
  const Result& oop = res.outOfPlace;
  return sprintfStr("  %10.2f %9.2f", predictedUs, measured(oop) ? predictedUs / oop.timeUs : 0.0);
}

void Runner::runOneSize(const std::string& algo, std::uint64_t bytes, Totals& totals, std::vector<Row>& osuRows) {
  const std::size_t esize = copro::core::dataTypeSize(o_.dtype);
  const std::uint64_t count = rowCount(o_, bytes, esize, p_);
  if (count == 0) {
    if (printer_) {
      std::printf("# skipping %llu B: less than one %s element per rank\n", static_cast<unsigned long long>(bytes),
                  std::string(copro::bench::ncclTypeName(o_.dtype)).c_str());
    }
    return;
  }
  const std::uint64_t realBytes = ncclBytes(o_.kind, count, esize, p_);
  SizeResult res = bench_.runSize(count, algo);
  if (!printer_) return;
  applyAverage(res);
  const double factor = copro::bench::busFactor(o_.kind, p_);
  const double fraction = boundFraction(realBytes, res.outOfPlace);
  double predictedUs = 0;
  const std::string predicted = predict(count, res, algo, predictedUs);
  if (trace_) {
    trace_->add(res.trace, p_,
                std::string(copro::collectives::collectiveName(o_.kind)) + " " + std::to_string(realBytes) + " B (" +
                    res.algorithm + ")");
  }
  if (osu_) {
    osuRows.push_back({osuSize(o_.kind, count, esize, p_), res});
  } else {
    std::printf("%s\n", tableRow(res, realBytes, count, fraction, predicted).c_str());
    std::fflush(stdout);
  }
  for (const Result* r : {&res.outOfPlace, &res.inPlace}) {
    totals.wrong += r->wrong;
    if (!measured(*r)) continue;
    totals.busSum += algBandwidth(*r, static_cast<double>(realBytes)) * factor;
    ++totals.busCount;
  }
  reportFailures(res, realBytes);
  rows_.push_back(rowJson(algo, res, realBytes, count, fraction, predictedUs));
}

void Runner::printTableHeader() const {
  // nccl-tests' three header lines (util.cu writeResultHeader), then copro's columns.
  std::string title =
      sprintfStr("# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          ", "", "",
                 "", "", "");
  std::string names =
      sprintfStr("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s", "size", "count", "type",
                 "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
  std::string units =
      sprintfStr("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s", "(B)", "(elements)", "", "", "",
                 "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
  // copro's columns start where nccl-tests' end (its title line is shorter than its names line).
  if (!peerNames_.empty() || showBound_ || predictor_) title.resize(std::max(title.size(), names.size()), ' ');
  for (const auto& n : peerNames_) {
    title += sprintfStr("  %31s", (n + " (out-of-place)").c_str());
    names += sprintfStr("  %7s  %6s  %6s  %6s", "time", "busbw", "#wrong", "ratio");
    units += sprintfStr("  %7s  %6s  %6s  %6s", "(us)", "(GB/s)", "", "");
  }
  if (showBound_) {
    title += std::string(8, ' ');
    names += sprintfStr("  %6s", "%bound");
    units += sprintfStr("  %6s", "");
  }
  if (predictor_) {
    title += std::string(22, ' ');
    names += sprintfStr("  %10s %9s", "predicted", "pred/meas");
    units += sprintfStr("  %10s %9s", "(us)", "");
  }
  std::printf("#\n%s\n%s \n%s \n", title.c_str(), names.c_str(), units.c_str());
}

std::string Runner::tableRow(const SizeResult& res, std::uint64_t bytes, std::uint64_t count, double fraction,
                             const std::string& predicted) const {
  const double factor = copro::bench::busFactor(o_.kind, p_);
  const auto b = static_cast<double>(bytes);
  const bool checked = o_.check != 0;
  const std::string type(copro::bench::ncclTypeName(o_.dtype));
  const std::string redop = copro::bench::hasOp(o_.kind) ? std::string(copro::core::reduceOpName(o_.op)) : "none";
  std::string line = sprintfStr("%12llu  %12llu  %8s  %6s  %6i", static_cast<unsigned long long>(bytes),
                                static_cast<unsigned long long>(count), type.c_str(), redop.c_str(),
                                copro::bench::isRooted(o_.kind) ? o_.root : -1);
  line += ncclGroup(res.outOfPlace, b, factor, checked);
  line += ncclGroup(res.inPlace, b, factor, checked);
  for (const auto& pr : res.peers) line += peerGroup(pr, res.outOfPlace, b, factor, checked);
  if (showBound_) {
    line += measured(res.outOfPlace) ? sprintfStr("  %5.1f%%", 100.0 * fraction) : sprintfStr("  %6s", "N/A");
  }
  return line + predicted;
}

void Runner::printFooter(const Totals& t) const {
  // nccl-tests' footer (util.cu writeResultFooter), the bandwidth unchecked (no NCCL_TESTS_MIN_BW).
  const double avg = t.busCount > 0 ? t.busSum / t.busCount : 0.0;
  std::printf("# %-20s : %llu %s\n", "Out of bounds values", static_cast<unsigned long long>(t.wrong),
              t.wrong != 0 ? "FAILED" : "OK");
  std::printf("# %-20s : %g %s\n", "Avg bus bandwidth", avg, "");
  std::printf("#\n");
}

void Runner::printOsuTables(const std::string& algoName, const std::vector<Row>& rows) const {
  // One OSU table per library (copro first), so each diffs against osu_* output line by line.
  const std::string what = std::string(copro::bench::ncclTypeName(o_.dtype)) +
                           (copro::bench::hasOp(o_.kind) ? " " + std::string(copro::core::reduceOpName(o_.op)) : "");
  auto table = [&](const std::string& who, auto pick) {
    std::printf("\n# OSU MPI %s Latency Test (copro-perf %s: %s, %d ranks, %s)\n", osuTitle(o_.kind), copro::version(),
                who.c_str(), p_, what.c_str());
    std::printf("%-10s%18s", "# Size", "Avg Latency(us)");
    if (o_.osuFull) std::printf("%18s%18s%12s", "Min Latency(us)", "Max Latency(us)", "Iterations");
    std::printf("\n");
    for (const auto& r : rows) {
      const Result& x = pick(r.res);
      if (!x.supported) continue;
      std::printf("%-10llu%18.2f", static_cast<unsigned long long>(r.osuBytes), x.avgTimeUs);
      if (o_.osuFull) std::printf("%18.2f%18.2f%12d", x.minTimeUs, x.maxTimeUs, o_.iters * o_.aggIters);
      std::printf("\n");
    }
  };
  table("copro " + o_.transport + ", algorithm " + algoName,
        [](const SizeResult& s) -> const Result& { return s.outOfPlace; });
  for (std::size_t i = 0; i < peerNames_.size(); ++i) {
    table(peerNames_[i], [i](const SizeResult& s) -> const Result& { return s.peers[i]; });
  }
  std::fflush(stdout);
}

void Runner::reportFailures(const SizeResult& res, std::uint64_t bytes) {
  auto failed = [&](const Result& r, const std::string& what) {
    if (!r.error.empty()) {
      std::fprintf(stderr, "copro-perf: %s, %llu B: %s\n", what.c_str(), static_cast<unsigned long long>(bytes),
                   r.error.c_str());
      exitCode_ = 1;
    }
    if (r.wrong > 0) {
      if (osu_) {
        std::fprintf(stderr, "copro-perf: %s, %llu B: #wrong %llu\n", what.c_str(),
                     static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(r.wrong));
      }
      exitCode_ = 1;
    }
  };
  failed(res.outOfPlace, "copro out-of-place");
  failed(res.inPlace, "copro in-place");
  for (std::size_t i = 0; i < res.peers.size(); ++i) failed(res.peers[i], peerNames_[i]);
}

nlohmann::json Runner::rowJson(const std::string& algo, const SizeResult& res, std::uint64_t bytes, std::uint64_t count,
                               double fraction, double predictedUs) const {
  const double factor = copro::bench::busFactor(o_.kind, p_);
  auto one = [&](const Result& r) {
    nlohmann::json j;
    j["supported"] = r.supported;
    if (r.supported) {
      j["time_us"] = r.timeUs;
      j["avg_time_us"] = r.avgTimeUs;
      j["algbw_GBps"] = static_cast<double>(bytes) / (r.timeUs * 1e-6) / 1e9;
      j["busbw_GBps"] = j["algbw_GBps"].get<double>() * factor;
      j["wrong"] = r.wrong;
    }
    if (!r.error.empty()) j["error"] = r.error;
    return j;
  };
  nlohmann::json jr = {{"collective", copro::collectives::collectiveName(o_.kind)},
                       {"algorithm", algo.empty() ? "planner" : algo},
                       {"transport", o_.transport},
                       {"ranks", p_},
                       {"size", bytes},
                       {"count", count},
                       {"type", copro::bench::ncclTypeName(o_.dtype)},
                       {"redop", copro::bench::hasOp(o_.kind) ? copro::core::reduceOpName(o_.op) : "none"},
                       {"root", copro::bench::isRooted(o_.kind) ? o_.root : -1},
                       {"out_of_place", one(res.outOfPlace)},
                       {"in_place", one(res.inPlace)}};
  if (!res.peers.empty()) {
    nlohmann::json jp = nlohmann::json::object();
    for (std::size_t i = 0; i < res.peers.size(); ++i) jp[peerNames_[i]] = one(res.peers[i]);
    jr["peers"] = jp;
  }
  if (!res.algorithm.empty()) jr["program"] = res.algorithm;
  if (predictor_ && predictedUs > 0) {
    jr["predicted_us"] = predictedUs;
    if (measured(res.outOfPlace)) jr["predicted_over_measured"] = predictedUs / res.outOfPlace.timeUs;
  }
  if (showBound_) {
    jr["copy_bandwidth_GBps"] = copyBw_ / 1e9;
    jr["memory_bound_fraction"] = fraction;
  }
  return jr;
}

/// The command line: Options plus what is parsed or checked before it becomes Options.
struct Cli {
  Options o;
  std::string collective = "allreduce";
  std::string minB = "32M";
  std::string maxB = "32M";
  std::string stepB = "1M";
  std::string dtype = "float";
  std::string op = "sum";
  std::string osuSizes;  ///< --format osu -m [MIN:]MAX
  int nThreads = 1;
  int nGpus = 1;
  int parallelInit = 0;
  int blocking = 0;
  int graphs = 0;
  bool ranksGiven = false;
  bool threadsGiven = false;
};

/// True when argv asks for --format osu (its flags -m -i -f mean other things than nccl-tests').
bool wantsOsu(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a(argv[i]);
    if (a == "--format=osu" || (a == "--format" && i + 1 < argc && std::string(argv[i + 1]) == "osu")) return true;
  }
  return false;
}

void addCommonOptions(CLI::App& app, Cli& c) {
  Options& o = c.o;
  app.add_option("collective", c.collective,
                 "allreduce, allgather, reducescatter, broadcast, reduce, gather, scatter, alltoall");
  app.add_option("-b,--minbytes", c.minB, "minimum size in bytes: K/M/G (or Ki/Mi/Gi, KiB/MiB/GiB) = powers of 1024");
  app.add_option("-e,--maxbytes", c.maxB, "maximum size, default 32M");
  app.add_option("-n,--iters", o.iters, "timed iterations, default 20");
  app.add_option("-w,--warmup_iters", o.warmup, "warm-up iterations, default 5");
  app.add_option("-c,--check", o.check, "check results (0: off; N > 0: check once), default 1");
  app.add_option(
      "-d,--datatype", c.dtype,
      "int8 uint8 int32 uint32 int64 uint64 half float double bfloat16 f8e4m3 f8e5m2, or all; default float");
  app.add_option("-o,--op", c.op, "sum, prod, max, min, avg, or all; default sum");
  app.add_option("-r,--root", o.root, "root of rooted collectives, default 0");
  app.add_option("-t,--nthreads", c.nThreads,
                 "inproc: ranks = nthreads x ngpus (unless --ranks); ignored under mpirun");
  app.add_option("-g,--ngpus", c.nGpus, "see -t");
  app.add_option("-a,--average", o.average, "time column: 0 rank 0, 1 mean over ranks (default), 2 min, 3 max");
  app.add_option("-z,--blocking", c.blocking, "accepted; every call is waited for before the next (a note says so)");
  app.add_option("-G,--cudagraph", c.graphs, "accepted; no CUDA graphs on CPU ranks (a note says so)");
  app.add_option("-N,--run_cycles", o.cycles, "run and print the sweep this many times (0: until interrupted)");
  app.add_option("-p,--parallel_init", c.parallelInit, "accepted; communicators are always created together");
  app.add_option("--algo", o.algo, "algorithm name, a comma list, or 'all' (default: the planner)");
  app.add_option("--transport", o.transport,
                 "backend: inproc (ranks are threads; the default), lanemachine or cuda (threads running the lane "
                 "machine on the CPU or on this GPU), or under mpirun shm (the default there), mpi, ucx, verbs, "
                 "shm+ucx, shm+mpi, shm+verbs (virtual nodes, with --node-map)");
  app.add_option("--ranks", o.ranks, "ranks for inproc, default 4 (under mpirun: the process count)");
  app.add_option("--node-map", o.nodeMap, "virtual nodes, as COPRO_NODE_MAP: \"0,0,1,1\" or ranks per node \"2\"");
  app.add_option("--compare", o.compare, "also time these libraries on the same buffers (under mpirun): mpi,gloo");
  app.add_option("--format", o.format, "nccl (nccl-tests table, default) or osu (OSU tables and OSU's -m -i -x -f)");
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
}

void addNcclOptions(CLI::App& app, Cli& c) {
  app.add_option("-f,--stepfactor", c.o.stepFactor, "multiply sizes by this (> 1), else add -i; default 1");
  app.add_option("-i,--stepbytes", c.stepB, "size increment when -f is 1, default 1M");
  app.add_option("-m,--agg_iters", c.o.aggIters, "calls per timed iteration, default 1");
}

void addOsuOptions(CLI::App& app, Cli& c) {
  app.add_option("-m,--message-size", c.osuSizes, "OSU: [MIN:]MAX message sizes in bytes (doubling)");
  app.add_option("-i,--iterations", c.o.iters, "OSU: timed iterations (as -n)");
  app.add_option("-x,--warmup", c.o.warmup, "OSU: warm-up iterations (as -w)");
  app.add_flag("-f,--full", c.o.osuFull, "OSU: also print min and max latency and iterations");
}

copro::Error invalid(const std::string& what) {
  return {copro::ErrorCode::kInvalidArgument, what};
}

std::vector<copro::DataType> parseTypes(const std::string& text) {
  if (text == "all") return copro::bench::ncclTypeOrder();
  if (auto t = copro::core::parseDataType(text)) return {*t};
  std::vector<std::string> names;
  for (auto t : copro::bench::ncclTypeOrder()) names.emplace_back(copro::bench::ncclTypeName(t));
  const std::string hint = copro::core::nearestName(text, names);
  std::string list;
  for (const auto& n : names) list += " " + n;
  throw invalid("-d: unknown data type '" + text + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                "; use one of" + list + " or all");
}

std::vector<copro::ReduceOp> parseOps(const std::string& text) {
  if (text == "all") return copro::bench::ncclOpOrder();
  if (auto op = copro::core::parseReduceOp(text)) return {*op};
  const std::string hint = copro::core::nearestName(text, {"sum", "prod", "max", "min", "avg"});
  throw invalid("-o: unknown reduction '" + text + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                "; use sum, prod, max, min, avg or all");
}

std::uint64_t parseSize(const std::string& flag, const std::string& text) {
  try {
    return copro::core::parseBytes(text);
  } catch (const copro::Error& e) {
    throw invalid(flag + ": " + e.message());
  }
}

/// OSU's -m: "MAX", "MIN:MAX" or "MIN:" (OSU's defaults: 1 and 1M).
void parseOsuSizes(const std::string& text, Options& o) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    o.minBytes = 1;
    o.maxBytes = parseSize("-m", text);
    return;
  }
  o.minBytes = colon == 0 ? 1 : parseSize("-m", text.substr(0, colon));
  o.maxBytes = colon + 1 == text.size() ? 1ULL << 20 : parseSize("-m", text.substr(colon + 1));
}

/// Flags nccl-tests has that cannot apply here: one note each (printed with the table's preamble).
std::vector<std::string> noteIgnored(const Cli& c, bool multiProcess) {
  std::vector<std::string> notes;
  if (c.blocking != 0) {
    notes.push_back("-z " + std::to_string(c.blocking) +
                    ": ignored: copro-perf waits for every call to complete before it starts the next");
  }
  if (c.graphs != 0) notes.push_back("-G " + std::to_string(c.graphs) + ": ignored: no CUDA graphs on CPU ranks");
  if (c.parallelInit != 0) {
    notes.push_back("-p " + std::to_string(c.parallelInit) +
                    ": ignored: copro-perf creates every communicator together (createInproc or the MPI bootstrap)");
  }
  if (multiProcess && c.threadsGiven && c.nThreads * c.nGpus != 1) {
    notes.push_back("-t/-g: ignored under mpirun: one rank per process");
  }
  return notes;
}

/// Checks and converts the command line into Options (no communicator exists yet).
void resolve(Cli& c, const CLI::App& app) {
  Options& o = c.o;
  if (!copro::collectives::parseCollectiveKind(c.collective, o.kind)) {
    throw invalid("unknown collective '" + c.collective + "'");
  }
  o.dtypes = parseTypes(c.dtype);
  o.ops = parseOps(c.op);
  o.dtype = o.dtypes.front();
  o.op = o.ops.front();
  if (o.format != "nccl" && o.format != "osu") throw invalid("--format must be nccl or osu, got '" + o.format + "'");
  const bool osu = o.format == "osu";
  const bool sizesGiven = app.count("-b") + app.count("-e") > 0;
  o.minBytes = parseSize("-b", osu && !sizesGiven ? "1" : c.minB);
  o.maxBytes = parseSize("-e", osu && !sizesGiven ? "1M" : c.maxB);
  if (osu && !c.osuSizes.empty()) parseOsuSizes(c.osuSizes, o);
  if (osu) o.stepFactor = 2;  // OSU doubles
  if (!osu) o.stepBytes = parseSize("-i", c.stepB);
  if (o.iters < 1) throw invalid("-n must be at least 1, got " + std::to_string(o.iters));
  if (o.warmup < 0) throw invalid("-w must be 0 or more, got " + std::to_string(o.warmup));
  if (o.aggIters < 1) throw invalid("-m must be at least 1, got " + std::to_string(o.aggIters));
  if (o.cycles < 0) throw invalid("-N must be 0 (until interrupted) or more, got " + std::to_string(o.cycles));
  if (o.average < 0 || o.average > 3) throw invalid("-a must be 0, 1, 2 or 3, got " + std::to_string(o.average));
  if (o.check < 0) throw invalid("-c must be 0 or more, got " + std::to_string(o.check));
  if (c.nThreads < 1 || c.nGpus < 1) throw invalid("-t and -g must be at least 1");
  if (c.threadsGiven && !c.ranksGiven) o.ranks = c.nThreads * c.nGpus;
  if (o.ranks <= 0) throw invalid("--ranks must be > 0, got " + std::to_string(o.ranks));
  if (o.buffers != "comm" && o.buffers != "heap") {
    throw invalid("--buffers must be comm or heap, got '" + o.buffers + "'");
  }
}

/// Bytes this host can give the buffers: MemAvailable (Linux), else the physical memory.
double availableMemoryBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (f >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024.0;
  }
  return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

/// Fails before any allocation when the largest size's buffers cannot fit: `ranksHere` ranks of `p` in this host.
void checkMemory(const Options& o, int ranksHere, int p) {
  const std::uint64_t largest = std::max(o.minBytes, o.maxBytes);
  double perRank = 0;
  for (const auto t : o.dtypes) {
    const std::size_t esize = copro::core::dataTypeSize(t);
    const std::uint64_t count = rowCount(o, largest, esize, p);
    perRank = std::max(perRank, static_cast<double>(copro::bench::bufferBytesPerRank(o.kind, count, esize, p)));
  }
  const double need = perRank * ranksHere;
  const double avail = availableMemoryBytes();
  if (need <= avail) return;
  const auto gib = [](double b) { return sprintfStr("%.1f GiB", b / (1024.0 * 1024 * 1024)); };
  throw copro::Error(copro::ErrorCode::kOutOfMemory,
                     "size " + copro::core::formatBytes(largest) + " needs " + gib(need) + " of send and receive " +
                         "buffers (" + std::to_string(ranksHere) + " ranks here x " + gib(perRank) +
                         ") but this host has " + gib(avail) + " available: lower -b/-e or the rank count");
}

/// Fails before any thread starts when --ranks is more than one process can run as threads.
void checkInprocRanks(int ranks) {
  if (ranks <= kMaxInprocRanks) return;
  throw invalid("--ranks " + std::to_string(ranks) + ": inproc runs every rank as a thread of this process (" +
                std::to_string(std::thread::hardware_concurrency()) + " cores here) and allows at most " +
                std::to_string(kMaxInprocRanks) + "; use fewer ranks, or mpirun -np N with --transport shm");
}

#if COPRO_PERF_HAVE_MPI
/// Ranks of this job on this host, as the launcher tells (1 when it does not).
int localRanksOfJob() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"}) {
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  }
  return 1;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"copro-perf: nccl-tests' collective benchmark for copro (docs/perf.md)", "copro-perf"};
  Cli cli;
  addCommonOptions(app, cli);
  if (wantsOsu(argc, argv)) {
    addOsuOptions(app, cli);
  } else {
    addNcclOptions(app, cli);
  }
  if (const int rc = copro::cli::parse(app, argc, argv); rc >= 0) return rc;
  copro::bench::installInterruptHandlers();
  cli.ranksGiven = app.count("--ranks") > 0;
  cli.threadsGiven = app.count("-t") + app.count("-g") > 0;
  Options& o = cli.o;

#if COPRO_PERF_HAVE_MPI
  std::unique_ptr<copro::bench::MpiRun> mpi;
#endif
  try {
    resolve(cli, app);

    copro::Config cfg = copro::Config::fromEnvironment();
    if (!o.nodeMap.empty()) cfg.set("COPRO_NODE_MAP", o.nodeMap);

    bool launched = false;
#if COPRO_PERF_HAVE_MPI
    launched = copro::bench::underMpiLauncher();
#endif
    if (o.transport.empty()) o.transport = launched ? "shm" : "inproc";
    const bool multiProcess = !threadRanks(o.transport);
    const std::vector<std::string> notes = noteIgnored(cli, multiProcess);
    if (multiProcess && o.transport != "shm" && o.transport != "mpi" && o.transport != "ucx" &&
        o.transport != "verbs" && o.transport != "shm+ucx" && o.transport != "shm+mpi" && o.transport != "shm+verbs") {
      throw invalid("unknown --transport '" + o.transport +
                    "' (inproc, lanemachine, cuda, shm, mpi, ucx, verbs, shm+ucx, shm+mpi, shm+verbs)");
    }

    if (!multiProcess) {
      if (!o.compare.empty()) {
        throw invalid(
            "--compare runs the peers as processes: start copro-perf with mpirun -np N and "
            "--transport shm, mpi or ucx");
      }
      checkInprocRanks(o.ranks);
      checkMemory(o, o.ranks, o.ranks);
      copro::bench::sweepSizes(o);  // an empty or endless range fails here, before any rank starts
#if COPRO_PERF_HAVE_MPI
      if (launched) {
        // inproc under mpirun: only one process may run the threads, or the table prints N times.
        mpi = std::make_unique<copro::bench::MpiRun>(copro::bench::MpiRun::ThreadLevel::kFunneled);
        if (mpi->size() > 1) {
          throw invalid("--transport " + o.transport + " runs its ranks as threads of one process; under mpirun -np " +
                        std::to_string(mpi->size()) + " use --transport shm, mpi or ucx");
        }
      }
#endif
      copro::core::ExecutorOptions threads;
      threads.nranks = o.ranks;
      threads.config = cfg;
      auto comms = copro::createCommunicators(o.transport, threads);
      auto team = copro::bench::makeThreadTeam(o.ranks);
      Runner runner(o, *team, std::move(comms), {}, cfg);
      return runner.run(notes);
    }

#if COPRO_PERF_HAVE_MPI
    if (!launched) {
      throw invalid("--transport " + o.transport +
                    " runs one rank per process: start copro-perf with mpirun -np N (add --oversubscribe "
                    "for more ranks than cores)");
    }
    using Level = copro::bench::MpiRun::ThreadLevel;
    const Level level = o.transport != "mpi" && o.transport != "shm+mpi" ? Level::kFunneled
                        : cfg.initiation == "proxy"                      ? Level::kMultiple
                                                                         : Level::kSerialized;
    mpi = std::make_unique<copro::bench::MpiRun>(level);
    checkMemory(o, localRanksOfJob(), mpi->size());
    copro::bench::sweepSizes(o);
    auto team = mpi->team();
    std::vector<copro::Communicator> comms;
    comms.push_back(mpi->communicator(o.transport, cfg));
    auto peers = mpi->peers(o.compare, cfg.timeoutSec);
    // Rank 0 saw the combined figures and returns the status; mpirun exits non-zero when any rank does.
    Runner runner(o, *team, std::move(comms), std::move(peers), cfg);
    return runner.run(notes);
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
