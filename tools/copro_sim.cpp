// copro-sim: runs collectives on the simulator over a topology file and reports nccl-tests figures, link
// utilization, Chrome traces, sweeps with plots, and the what-if study of the README (docs/copro-sim.md).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli_suggest.hpp"
#include "copro/collectives/collective.hpp"
#include "copro/core/config.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/limits.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/collective_sizes.hpp"
#include "copro/topologies/topology.hpp"
#include "moe_cli.hpp"
#include "plot.hpp"
#include "sim_runner.hpp"
#include "sweep_shards.hpp"
#include "workload_cli.hpp"

namespace {

using copro::core::Error;
using copro::core::ErrorCode;
using copro::tools::SimCase;
using copro::tools::SimOutcome;

/// Output switches shared by the subcommands.
struct OutputOptions {
  bool quiet = false;
  bool noWall = false;      ///< deterministic output: no wall-clock figures (golden tests)
  int top = 5;              ///< busiest links to list
  double maxWall = 0;       ///< --max-wall: seconds of wall time per simulated run (0: no limit)
  bool noSymmetry = false;  ///< --no-symmetry: simulate every rank (sim::RunOptions::symmetry)
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// printf, without trailing blanks (columns left empty at the end of a line).
[[gnu::format(printf, 1, 2)]] void printTrimmed(const char* format, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  std::string line(buf);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\n')) line.pop_back();
  std::printf("%s\n", line.c_str());
}

std::string plural(long long n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string sizeText(std::uint64_t bytes) {
  return copro::core::formatBytes(bytes);
}

/// Microseconds with all six decimals of the integer picoseconds (CSV: exact, fixed width).
std::string exactMicros(copro::core::Time t) {
  const std::int64_t ps = t.picoseconds();
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%lld.%06lld", ps < 0 ? "-" : "", static_cast<long long>(std::llabs(ps) / 1000000),
                static_cast<long long>(std::llabs(ps) % 1000000));
  return buf;
}

// ---------------------------------------------------------------------------------------------------------
// Progress bar

/// A one-line progress display on stderr for runs longer than a second (only on a terminal). The bar is
/// relative to the planner's estimate, which can be off: it stops at 99% until the run ends.
class ProgressBar {
 public:
  ProgressBar(bool enabled, std::string label, double estimateUs)
      : enabled_(enabled && isatty(STDERR_FILENO) != 0),
        label_(std::move(label)),
        estimateUs_(estimateUs),
        start_(std::chrono::steady_clock::now()) {}
  ~ProgressBar() { clear(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(copro::core::Time now, std::uint64_t events) {
    if (!enabled_) return;
    const auto t = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(t - start_).count();
    if (elapsed < 1.0 || std::chrono::duration<double>(t - lastDraw_).count() < 0.1) return;
    lastDraw_ = t;
    const double virtualUs = now.microseconds();
    std::string bar;
    if (estimateUs_ > 0) {
      const double frac = std::min(0.99, virtualUs / estimateUs_);
      const int width = 24;
      const int filled = static_cast<int>(frac * width);
      bar = "[" + std::string(static_cast<std::size_t>(filled), '#') +
            std::string(static_cast<std::size_t>(width - filled), '.') + "] " + fmt("%3.0f%%", 100 * frac) + " ";
    }
    const std::string est = estimateUs_ > 0 ? fmt(" (estimate %.0f us)", estimateUs_) : std::string();
    // ETA by virtual time against the estimate (shown while the run is between 1% and 99% of it).
    std::string eta;
    if (estimateUs_ > 0 && virtualUs > 0.01 * estimateUs_ && virtualUs < 0.99 * estimateUs_) {
      eta = fmt(" | ETA ~%.0f s", elapsed * (estimateUs_ - virtualUs) / virtualUs);
    }
    std::fprintf(stderr, "\r\033[K%s %svirtual %.1f us%s | %.2fM events | %.1f s%s", label_.c_str(), bar.c_str(),
                 virtualUs, est.c_str(), static_cast<double>(events) / 1e6, elapsed, eta.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  bool enabled_;
  std::string label_;
  double estimateUs_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point lastDraw_{};
  bool drawn_ = false;
};

/// The note of a run that --max-wall stopped: its row holds partial figures.
void warnStopped(double maxWall, const copro::sim::Result& r) {
  std::fprintf(stderr,
               "copro-sim: stopped by --max-wall %g s at virtual time %.3f us after %llu events: the figures of this "
               "run are partial (raise --max-wall or leave it out for the whole run)\n",
               maxWall, r.time.microseconds(), static_cast<unsigned long long>(r.events));
}

/// --max-wall S and --no-symmetry on a subcommand.
void addMaxWall(CLI::App* sub, OutputOptions& out) {
  sub->add_option("--max-wall", out.maxWall,
                  "stop each simulated run cleanly after S seconds of wall time, with partial statistics (a note on "
                  "stderr says so; default 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--no-symmetry", out.noSymmetry,
                "simulate every rank, even where the Program and the fabric let one rank per class of identical "
                "ranks stand for the rest (docs/simulator.md, \"Symmetry\"; same results, slower)");
}

/// Runs one case with a progress bar (when wanted) and the trace (when asked).
SimOutcome runWithProgress(copro::tools::FabricCache& fabrics, const SimCase& c, const OutputOptions& out,
                           const std::string& tracePath = {}, int traceLinks = 64) {
  copro::tools::SimRunExtras extras;
  extras.tracePath = tracePath;
  extras.traceLinks = traceLinks;
  std::unique_ptr<ProgressBar> bar;
  extras.onStart = [&](const SimOutcome& planned) {
    bar = std::make_unique<ProgressBar>(!out.quiet,
                                        std::string(copro::collectives::collectiveName(c.kind)) + " " +
                                            sizeText(planned.bytes) + " " + planned.algorithm,
                                        planned.estimateUs);
  };
  extras.progress = [&bar](copro::core::Time t, std::uint64_t events) {
    if (bar) bar->update(t, events);
  };
  extras.maxWallSeconds = out.maxWall;
  extras.symmetry = !out.noSymmetry;
  SimOutcome o = copro::tools::runCase(fabrics, c, extras);
  if (bar) bar->clear();
  if (o.result.stopped) warnStopped(out.maxWall, o.result);
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Parsing of user input

/// A simulated size per rank: at most 1 TiB (docs/config.md, "Limits"), so that no transfer time at a
/// link's slowest allowed rate overflows the simulator's int64 picoseconds.
std::uint64_t parseSimSize(const std::string& flag, const std::string& text) {
  const std::uint64_t bytes = copro::core::parseBytes(text);
  if (bytes > copro::core::kMaxSimBytes) {
    throw Error(ErrorCode::kInvalidArgument, flag + " " + copro::core::trimmed(text) + ": " + std::to_string(bytes) +
                                                 " bytes per rank is above the limit of 1T (" +
                                                 std::to_string(copro::core::kMaxSimBytes) + " bytes)");
  }
  return bytes;
}

std::vector<std::uint64_t> parseSizes(const std::string& text) {
  std::vector<std::uint64_t> sizes;
  for (const auto& item : copro::core::splitList(text, ',')) sizes.push_back(parseSimSize("--size", item));
  if (sizes.empty()) throw Error(ErrorCode::kParseError, "--size '" + text + "' names no size (e.g. 64M or 1M,16M)");
  return sizes;
}

std::int32_t parseInt(const std::string& key, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used != text.size() || v < std::numeric_limits<std::int32_t>::min() ||
        v > std::numeric_limits<std::int32_t>::max()) {
      throw std::invalid_argument(text);
    }
    return static_cast<std::int32_t>(v);
  } catch (const std::logic_error&) {
    throw Error(ErrorCode::kParseError, key + " '" + text + "' is not an integer");
  }
}

copro::core::DataType parseDtype(const std::string& text) {
  auto t = copro::core::parseDataType(text);
  if (!t) {
    throw Error(ErrorCode::kInvalidArgument,
                "unknown data type '" + text + "' (float32, float16, bfloat16, float64, int32, float8e4m3, ...)");
  }
  return *t;
}

copro::core::ReduceOp parseOp(const std::string& text) {
  auto op = copro::core::parseReduceOp(text);
  if (!op) throw Error(ErrorCode::kInvalidArgument, "unknown reduction '" + text + "' (sum, prod, min, max, avg)");
  return *op;
}

/// Adds the topology override key=value to `c`; a later value of a key replaces an earlier one.
void addOverride(SimCase& c, const std::string& key, const std::string& value) {
  const std::string prefix = key + "=";
  c.overrides.erase(std::remove_if(c.overrides.begin(), c.overrides.end(),
                                   [&](const std::string& o) { return o.rfind(prefix, 0) == 0; }),
                    c.overrides.end());
  c.overrides.push_back(prefix + value);
}

/// Sets `key` (a case field or a topology override) in `c`.
void applyKey(SimCase& c, const std::string& key, const std::string& value) {
  if (key == "size") {
    c.size = parseSimSize("size", value);
  } else if (key == "ranks") {
    c.ranks = value == "all" ? 0 : parseInt("ranks", value);
  } else if (key == "algo" || key == "algorithm") {
    c.algorithm = (value == "planner" || value == "auto") ? std::string() : value;
  } else if (key == "collective") {
    c.kind = copro::tools::parseRunnableCollective(value);
  } else if (key == "dtype") {
    c.dtype = parseDtype(value);
  } else if (key == "op") {
    c.op = parseOp(value);
  } else if (key == "root") {
    c.root = parseInt("root", value);
  } else if (key == "pxn") {
    c.pxn = parseInt("pxn", value);
  } else {
    addOverride(c, key, value);
  }
}

std::pair<std::string, std::string> splitKeyValue(const std::string& text, const char* what) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw Error(ErrorCode::kParseError, std::string(what) + " '" + text + "' is not key=value");
  }
  return {copro::core::trimmed(text.substr(0, eq)), copro::core::trimmed(text.substr(eq + 1))};
}

// ---------------------------------------------------------------------------------------------------------
// Output

bool hasReduction(copro::collectives::CollectiveKind k) {
  using copro::collectives::CollectiveKind;
  return k == CollectiveKind::kAllReduce || k == CollectiveKind::kReduceScatter || k == CollectiveKind::kReduce;
}

const char* kCsvHeader =
    "topology,collective,algorithm,choice,ranks,size,count,dtype,op,time_us,algbw_GBps,busbw_GBps,estimate_us,"
    "events,flows,ops,bytes_put,peak_flows";

std::string csvRow(const SimCase& c, const SimOutcome& o, bool noWall) {
  std::ostringstream os;
  os << o.topologyName << ',' << copro::collectives::collectiveName(c.kind) << ',' << o.algorithm << ',' << o.choice
     << ',' << o.ranks << ',' << o.bytes << ',' << o.count << ',' << copro::core::dataTypeName(c.dtype) << ','
     << (hasReduction(c.kind) ? copro::core::reduceOpName(c.op) : std::string_view("none")) << ','
     << exactMicros(o.result.time) << ',' << fmt("%.3f", o.algbwGBps) << ',' << fmt("%.3f", o.busbwGBps) << ','
     << fmt("%.3f", o.estimateUs) << ',' << o.result.events << ',' << o.result.flows << ',' << o.result.ops << ','
     << o.result.bytesPut << ',' << o.result.peakActiveFlows;
  if (!noWall) os << ',' << fmt("%.3f", o.result.wallSeconds);
  return os.str();
}

std::string describeModel(const copro::collectives::CostModel& m) {
  std::ostringstream os;
  os << "scale-up alpha " << fmt("%.3g", m.alphaUs) << " us, " << fmt("%.4g", m.bandwidthGBps)
     << " GB/s; scale-out alpha " << fmt("%.3g", m.interAlphaUs) << " us, " << fmt("%.4g", m.interBandwidthGBps)
     << " GB/s; reduce " << fmt("%.4g", m.reduceGBps) << " GB/s";
  return os.str();
}

void printTableHeader(const OutputOptions& out) {
  printTrimmed("# %11s %12s %14s %13s %11s %11s %13s %10s %9s%s", "size", "count", "algorithm", "time", "algbw",
               "busbw", "estimate", "events", "flows", out.noWall ? "" : "      wall");
  printTrimmed("# %11s %12s %14s %13s %11s %11s %13s %10s %9s%s", "(B)", "(elements)", "", "(us)", "(GB/s)", "(GB/s)",
               "(us)", "", "", out.noWall ? "" : "       (s)");
}

void printTableRow(const SimOutcome& o, const OutputOptions& out) {
  std::printf(
      "  %11llu %12llu %14s %13.3f %11.3f %11.3f %13.3f %10llu %9llu%s\n", static_cast<unsigned long long>(o.bytes),
      static_cast<unsigned long long>(o.count), (o.algorithm + (o.choice == "planner" ? "*" : "")).c_str(), o.timeUs,
      o.algbwGBps, o.busbwGBps, o.estimateUs, static_cast<unsigned long long>(o.result.events),
      static_cast<unsigned long long>(o.result.flows), out.noWall ? "" : fmt(" %9.2f", o.result.wallSeconds).c_str());
}

void printBusiestLinks(const copro::topo::Fabric& fabric, const SimOutcome& o, int top) {
  if (top <= 0) return;
  std::vector<const copro::sim::ChannelStats*> busy;
  for (const auto& ch : o.result.channels) busy.push_back(&ch);
  // Most bytes first; ties by channel id keep the order deterministic.
  std::stable_sort(busy.begin(), busy.end(), [](const auto* a, const auto* b) {
    if (a->bytes != b->bytes) return a->bytes > b->bytes;
    return std::make_pair(a->link, a->direction) < std::make_pair(b->link, b->direction);
  });
  const std::size_t n = std::min(busy.size(), static_cast<std::size_t>(top));
  std::printf("#\n# busiest links at size %s (%zu of %zu directed links that carried traffic):\n",
              sizeText(o.bytes).c_str(), n, busy.size());
  std::size_t width = 4;
  for (std::size_t i = 0; i < n; ++i) {
    width = std::max(
        width, copro::tools::channelName(fabric, copro::topo::channelOf(busy[i]->link, busy[i]->direction)).size());
  }
  std::printf("# %-*s %-8s %15s %8s %12s\n", static_cast<int>(width), "link", "kind", "bytes", "util", "busy(us)");
  for (std::size_t i = 0; i < n; ++i) {
    const auto* c = busy[i];
    const std::string name = copro::tools::channelName(fabric, copro::topo::channelOf(c->link, c->direction));
    std::printf("  %-*s %-8s %15llu %7.1f%% %12.3f\n", static_cast<int>(width), name.c_str(),
                std::string(copro::topo::linkKindName(fabric.link(c->link).kind)).c_str(),
                static_cast<unsigned long long>(c->bytes), 100.0 * c->utilization, c->busy.microseconds());
  }
}

// ---------------------------------------------------------------------------------------------------------
// Subcommands

struct RunArgs {
  SimCase base;
  std::string collective = "allreduce";
  std::string sizes = "64M";
  std::string dtype = "float32";
  std::string op = "sum";
  std::vector<std::string> sets;
  bool csv = false;
  std::string trace;
  int traceLinks = 64;
  OutputOptions out;
  std::string initiation;  ///< --initiation: both scales (empty: device)
  std::string initiationScaleUp;
  std::string initiationScaleOut;
  int pxn = -1;  ///< --pxn; -1: not given (0, and no spine-bytes line in the output)
};

/// "device", "proxy" or "offload" for `option`; empty keeps `fallback`.
copro::core::Initiation parseInitiationOption(const std::string& option, const std::string& text,
                                              copro::core::Initiation fallback) {
  if (text.empty()) return fallback;
  copro::core::Initiation m = fallback;
  if (!copro::core::parseInitiation(text, m)) {
    throw Error(ErrorCode::kInvalidArgument,
                option + " '" + text + "' is not an initiation mode: use device, proxy or offload");
  }
  return m;
}

/// Applies the common options to the base case.
SimCase baseCase(const RunArgs& a) {
  SimCase c = a.base;
  c.kind = copro::tools::parseRunnableCollective(a.collective);
  c.dtype = parseDtype(a.dtype);
  c.op = parseOp(a.op);
  c.pxn = std::max(a.pxn, 0);
  const auto both = parseInitiationOption("--initiation", a.initiation, copro::core::Initiation::kDevice);
  c.scaleUpInitiation = parseInitiationOption("--initiation-scaleup", a.initiationScaleUp, both);
  c.scaleOutInitiation = parseInitiationOption("--initiation-scaleout", a.initiationScaleOut, both);
  for (const auto& s : a.sets) {
    auto [k, v] = splitKeyValue(s, "--set");
    addOverride(c, k, v);
  }
  return c;
}

int cmdRun(const RunArgs& a) {
  SimCase c = baseCase(a);
  const auto sizes = parseSizes(a.sizes);
  if (!a.trace.empty() && sizes.size() > 1) {
    throw Error(ErrorCode::kInvalidArgument, "--trace records one run; give one --size (got " + a.sizes + ")");
  }
  copro::tools::FabricCache fabrics;
  const auto& fabric = fabrics.get(c.topology, c.overrides);
  std::vector<SimOutcome> outcomes;
  bool headerDone = false;
  for (std::uint64_t size : sizes) {
    c.size = size;
    SimOutcome o = runWithProgress(fabrics, c, a.out, a.trace, a.traceLinks);
    if (a.csv) {
      if (!headerDone) std::printf("%s%s\n", kCsvHeader, a.out.noWall ? "" : ",wall_s");
    } else if (!headerDone) {
      std::printf("# copro-sim run: %s on %s (%s), %s on %s\n",
                  std::string(copro::collectives::collectiveName(c.kind)).c_str(), o.topologyName.c_str(),
                  plural(o.gpus, "GPU").c_str(), plural(o.ranks, "rank").c_str(), plural(o.nodes, "server").c_str());
      std::printf("# %s%s%s, chunk %s, algorithm %s\n", std::string(copro::core::dataTypeName(c.dtype)).c_str(),
                  hasReduction(c.kind) ? (" " + std::string(copro::core::reduceOpName(c.op))).c_str() : "",
                  c.kind == copro::collectives::CollectiveKind::kBroadcast ||
                          c.kind == copro::collectives::CollectiveKind::kReduce ||
                          c.kind == copro::collectives::CollectiveKind::kGather ||
                          c.kind == copro::collectives::CollectiveKind::kScatter
                      ? (", root " + std::to_string(c.root)).c_str()
                      : "",
                  o.chunkBytes == 0 ? "unchunked" : sizeText(o.chunkBytes).c_str(),
                  c.algorithm.empty() ? "chosen by the planner (*)" : c.algorithm.c_str());
      std::printf("# planner cost model: %s\n", describeModel(o.model).c_str());
      if (c.pxn > 0) std::printf("# PXN level %d (docs/pxn.md)\n", c.pxn);
      printTableHeader(a.out);
    }
    headerDone = true;
    if (a.csv) {
      std::printf("%s\n", csvRow(c, o, a.out.noWall).c_str());
    } else {
      printTableRow(o, a.out);
    }
    std::fflush(stdout);
    outcomes.push_back(std::move(o));
  }
  if (!a.csv) {
    for (const auto& o : outcomes) printBusiestLinks(fabric, o, a.out.top);
    for (const auto& o : outcomes) {
      if (a.pxn < 0) break;  // only with --pxn, so that outputs without it stay as they were
      std::printf("# bytes through spine switches (tier 1) at size %s: %llu\n", sizeText(o.bytes).c_str(),
                  static_cast<unsigned long long>(o.spineBytes));
    }
    if (!a.trace.empty()) std::printf("#\n# trace written to %s\n", a.trace.c_str());
  }
  return 0;
}

/// One sweep dimension.
struct SweepKey {
  std::string key;
  std::vector<std::string> values;
};

std::vector<SweepKey> parseSweepKeys(const std::vector<std::string>& specs) {
  std::vector<SweepKey> keys;
  for (const auto& s : specs) {
    auto [k, v] = splitKeyValue(s, "--sweep");
    SweepKey sk{k, copro::core::splitList(v, ',')};
    if (sk.values.empty()) throw Error(ErrorCode::kParseError, "--sweep " + s + " lists no values");
    for (const auto& other : keys) {
      if (other.key == k) throw Error(ErrorCode::kInvalidArgument, "--sweep names '" + k + "' twice");
    }
    keys.push_back(std::move(sk));
  }
  return keys;
}

struct SweepPlan {
  std::string title;
  std::string csvPath;
  std::string plotPath;
  bool logY = false;
};

/// What a sweep or what-if study runs: for each series (values of `keys`), every value of the x key.
struct Grid {
  std::vector<std::string> keys;                 ///< keys that vary between series
  std::vector<std::vector<std::string>> series;  ///< per series, a value for each key
  SweepKey x;                                    ///< the plot's x axis (the size, or another key)
};

/// The cross product of sweep keys: x is the size if it is swept, else the first key.
Grid gridOf(const std::vector<SweepKey>& keys) {
  if (keys.empty()) throw Error(ErrorCode::kInvalidArgument, "sweep needs at least one --sweep key=v1,v2,...");
  std::size_t xKey = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].key == "size") xKey = i;
  }
  Grid g;
  g.x = keys[xKey];
  std::vector<const SweepKey*> rest;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i != xKey) {
      rest.push_back(&keys[i]);
      g.keys.push_back(keys[i].key);
    }
  }
  std::size_t combinations = 1;
  for (const auto* k : rest) combinations *= k->values.size();
  for (std::size_t n = 0; n < combinations; ++n) {
    // Mixed-radix digits of n, the last key fastest.
    std::vector<std::string> values(rest.size());
    std::size_t r = n;
    for (std::size_t i = rest.size(); i-- > 0;) {
      values[i] = rest[i]->values[r % rest[i]->values.size()];
      r /= rest[i]->values.size();
    }
    g.series.push_back(std::move(values));
  }
  return g;
}

/// The table header of a sweep.
void printGridHeader(const SweepPlan& plan, const SimCase& base, const std::vector<std::string>& columns,
                     std::size_t colW, bool ranksColumn, const OutputOptions& out) {
  std::printf("# copro-sim: %s on %s (algorithm* = the planner's choice)\n", plan.title.c_str(), base.topology.c_str());
  std::printf("#");
  for (const auto& k : columns) std::printf(" %*s", static_cast<int>(colW), k.c_str());
  std::printf("%s %14s %13s %11s %11s %13s%s\n", ranksColumn ? "  ranks" : "", "algorithm", "time(us)", "algbw(GB/s)",
              "busbw(GB/s)", "estimate(us)", out.noWall ? "" : "    wall(s)");
}

/// What one point of a sweep gave: its table line and CSV line, or why it was skipped or failed; encoded
/// as text to travel from an MPI rank to rank 0 (sweep_shards.hpp).
struct PointRecord {
  enum Status : char { kOk = 'o', kSkipped = 's', kFailed = 'e' };
  Status status = kOk;
  ErrorCode code = ErrorCode::kOk;
  double busbw = 0;
  std::string table;    ///< the table line, newline included
  std::string csv;      ///< the CSV line, newline included (empty without --csv)
  std::string message;  ///< skipped: the stderr line; failed: the error's message

  static constexpr char kSep = '\x1f';
  [[nodiscard]] std::string encode() const {
    return std::string(1, static_cast<char>(status)) + kSep + std::to_string(static_cast<int>(code)) + kSep +
           fmt("%.17g", busbw) + kSep + table + kSep + csv + kSep + message;
  }
  static PointRecord decode(const std::string& text) {
    std::vector<std::string> f;
    std::size_t at = 0;
    for (int i = 0; i < 5; ++i) {
      const std::size_t sep = text.find(kSep, at);
      if (sep == std::string::npos) throw Error(ErrorCode::kInternal, "sweep: a gathered point record is malformed");
      f.push_back(text.substr(at, sep - at));
      at = sep + 1;
    }
    PointRecord r;
    r.status = static_cast<Status>(f[0].empty() ? 'e' : f[0][0]);
    r.code = static_cast<ErrorCode>(std::stoi(f[1]));
    r.busbw = std::strtod(f[2].c_str(), nullptr);
    r.table = f[3];
    r.csv = f[4];
    r.message = text.substr(at);
    return r;
  }
};

/// Runs point (series si, x value xi) of a sweep. `rethrow`: errors other than kUnsupported propagate (a
/// serial sweep stops at once); otherwise they are recorded, for rank 0 to report.
PointRecord runPoint(copro::tools::FabricCache& fabrics, const SimCase& base, const Grid& grid, std::size_t si,
                     std::size_t xi, std::size_t colW, bool ranksColumn, const OutputOptions& out, bool rethrow) {
  const auto& row = grid.series[si];
  SimCase c = base;
  for (std::size_t i = 0; i < grid.keys.size(); ++i) applyKey(c, grid.keys[i], row[i]);
  applyKey(c, grid.x.key, grid.x.values[xi]);
  std::vector<std::string> cells = row;
  cells.push_back(grid.x.values[xi]);
  std::vector<std::string> columns = grid.keys;
  columns.push_back(grid.x.key);
  PointRecord rec;
  try {
    SimOutcome o = runWithProgress(fabrics, c, out);
    std::string line = " ";
    for (const auto& v : cells) line += " " + std::string(colW > v.size() ? colW - v.size() : 0, ' ') + v;
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s %14s %13.3f %11.3f %11.3f %13.3f%s\n",
                  ranksColumn ? fmt(" %6.0f", o.ranks).c_str() : "",
                  (o.algorithm + (o.choice == "planner" ? "*" : "")).c_str(), o.timeUs, o.algbwGBps, o.busbwGBps,
                  o.estimateUs, out.noWall ? "" : fmt(" %10.2f", o.result.wallSeconds).c_str());
    rec.table = line + buf;
    for (const auto& v : cells) rec.csv += v + ',';
    rec.csv += csvRow(c, o, out.noWall) + '\n';
    rec.busbw = o.busbwGBps;
  } catch (const Error& e) {
    // An algorithm that cannot run one point (hier on one server) skips it; other errors stop the sweep.
    if (e.code() != ErrorCode::kUnsupported) {
      if (rethrow) throw;
      rec.status = PointRecord::kFailed;
      rec.code = e.code();
      rec.message = e.message();
      return rec;
    }
    rec.status = PointRecord::kSkipped;
    rec.message = "copro-sim: skipping";
    for (std::size_t i = 0; i < columns.size(); ++i) rec.message += " " + columns[i] + "=" + cells[i];
    rec.message += ": " + e.message() + "\n";
  }
  return rec;
}

/// Runs every point of `grid` over `base`, prints a table, writes the CSV and the plot (busbw against x,
/// one line per series).
int runGrid(const SimCase& base, const Grid& grid, const SweepPlan& plan, const OutputOptions& out) {
  // Check every value (and load every fabric) before running anything: a typo in the last value should
  // not cost a long sweep.
  copro::tools::FabricCache fabrics;
  for (const auto& row : grid.series) {
    for (const auto& xv : grid.x.values) {
      SimCase probe = base;
      for (std::size_t i = 0; i < grid.keys.size(); ++i) applyKey(probe, grid.keys[i], row[i]);
      applyKey(probe, grid.x.key, xv);
      (void)fabrics.get(probe.topology, probe.overrides);
    }
  }
  const bool xIsSize = grid.x.key == "size";
  bool xNumeric = true;
  std::vector<double> xValues;
  for (const auto& v : grid.x.values) {
    if (xIsSize) {
      xValues.push_back(static_cast<double>(copro::core::parseBytes(v)));
      continue;
    }
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    xNumeric = xNumeric && end != v.c_str();
    xValues.push_back(d);
  }
  if (!xNumeric) {
    for (std::size_t i = 0; i < xValues.size(); ++i) xValues[i] = static_cast<double>(i);
  }
  std::vector<std::string> columns = grid.keys;
  columns.push_back(grid.x.key);

  copro::tools::SweepShards shards;
  const bool writer = shards.rank() == 0;
  std::ofstream csv;
  if (!plan.csvPath.empty() && writer) {
    const auto dir = std::filesystem::path(plan.csvPath).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    csv.open(plan.csvPath, std::ios::binary | std::ios::trunc);
    if (!csv) throw Error(ErrorCode::kSystemError, "cannot write CSV file '" + plan.csvPath + "'");
    for (const auto& k : columns) csv << "sweep_" << k << ',';
    csv << kCsvHeader << (out.noWall ? "" : ",wall_s") << '\n';
  }

  std::size_t colW = 6;
  for (const auto& k : columns) colW = std::max(colW, k.size());
  for (const auto& row : grid.series) {
    for (const auto& v : row) colW = std::max(colW, v.size());
  }
  for (const auto& v : grid.x.values) colW = std::max(colW, v.size());
  // The rank count is a column of its own unless a key already names it.
  const bool ranksColumn = std::find(columns.begin(), columns.end(), "ranks") == columns.end();
  if (writer) printGridHeader(plan, base, columns, colW, ranksColumn, out);

  // Every point in order; under mpirun each rank runs its share (sweep_shards.hpp) and rank 0 writes them all.
  std::vector<copro::tools::PlotSeries> plotted(grid.series.size());
  for (std::size_t si = 0; si < grid.series.size(); ++si) {
    for (std::size_t i = 0; i < grid.keys.size(); ++i) {
      plotted[si].name += (plotted[si].name.empty() ? "" : ", ") + grid.keys[i] + "=" + grid.series[si][i];
    }
    if (plotted[si].name.empty()) plotted[si].name = std::string(copro::collectives::collectiveName(base.kind));
  }
  int okRuns = 0;
  int skipped = 0;
  const auto emit = [&](std::size_t point, const PointRecord& rec) {
    const std::size_t si = point / grid.x.values.size();
    const std::size_t xi = point % grid.x.values.size();
    if (rec.status == PointRecord::kFailed) throw Error(rec.code, rec.message);
    if (rec.status == PointRecord::kSkipped) {
      ++skipped;
      std::fprintf(stderr, "%s", rec.message.c_str());
      return;
    }
    ++okRuns;
    std::printf("%s", rec.table.c_str());
    std::fflush(stdout);
    if (csv) csv << rec.csv;
    plotted[si].x.push_back(xValues[xi]);
    plotted[si].y.push_back(rec.busbw);
  };
  const std::size_t points = grid.series.size() * grid.x.values.size();
  if (shards.size() > 1 && writer) {
    std::fprintf(stderr, "copro-sim: sweep: %zu points over %d MPI ranks (rank 0 writes the results)\n", points,
                 shards.size());
  }
  std::map<std::size_t, std::string> mine;
  for (std::size_t point = 0; point < points; ++point) {
    if (!shards.mine(point)) continue;
    const std::size_t si = point / grid.x.values.size();
    const std::size_t xi = point % grid.x.values.size();
    const PointRecord rec = runPoint(fabrics, base, grid, si, xi, colW, ranksColumn, out, shards.size() == 1);
    if (shards.size() == 1) {
      emit(point, rec);
    } else {
      mine[point] = rec.encode();
    }
  }
  if (shards.size() > 1) {
    const auto all = shards.gather(mine);
    if (shards.rank() != 0) return 0;  // rank 0 writes the table, the CSV and the plot
    for (const auto& [point, text] : all) emit(point, PointRecord::decode(text));
  }
  std::erase_if(plotted, [](const copro::tools::PlotSeries& l) { return l.x.empty(); });  // skipped entirely
  if (csv) {
    csv.flush();
    if (!csv) throw Error(ErrorCode::kSystemError, "writing CSV file '" + plan.csvPath + "' failed");
    std::printf("# csv: %s\n", plan.csvPath.c_str());
  }
  if (!plan.plotPath.empty()) {
    copro::tools::PlotOptions po;
    po.title = plan.title;
    po.subtitle = "topology " + base.topology;
    for (const auto& o : base.overrides) po.subtitle += ", " + o;
    if (base.ranks > 0 && std::find(columns.begin(), columns.end(), "ranks") == columns.end()) {
      po.subtitle += ", " + std::to_string(base.ranks) + " ranks";
    }
    po.x.label = xIsSize ? "size (bytes per rank, nccl-tests convention)" : grid.x.key;
    if (xIsSize) {
      po.x.scale = copro::tools::AxisScale::kLog2;
      po.x.format = copro::tools::TickFormat::kBytes;
    } else {
      po.x.includeZero = false;
      for (std::size_t i = 0; i < xValues.size(); ++i) po.x.ticks.emplace_back(xValues[i], grid.x.values[i]);
    }
    po.y.label = "bus bandwidth (GB/s)";
    if (plan.logY) po.y.scale = copro::tools::AxisScale::kLog10;
    const auto dir = std::filesystem::path(plan.plotPath).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    copro::tools::writeLineChart(plan.plotPath, plotted, po);
    std::printf("# plot: %s\n", plan.plotPath.c_str());
  }
  if (okRuns == 0 && skipped > 0) {
    throw Error(ErrorCode::kUnsupported, "every point of the sweep was skipped (see above)");
  }
  return 0;
}

int runCli(int argc, char** argv) {
  CLI::App app{"copro-sim: collectives on a simulated fabric (docs/copro-sim.md)"};
  app.require_subcommand(1);

  RunArgs run;
  auto addCommon = [](CLI::App* sub, RunArgs& a, bool withSize) {
    sub->add_option("--topology,-t", a.base.topology, "topology file or bundled name (copro-sim topologies)")
        ->required();
    sub->add_option("--collective,-c", a.collective,
                    "allreduce, reducescatter, allgather, broadcast, reduce, gather, scatter, alltoall, barrier");
    if (withSize)
      sub->add_option("--size,-s", a.sizes, "nccl-tests size per rank, or a list: 1M,16M,64M (default 64M)");
    sub->add_option("--algo,-a", a.base.algorithm, "algorithm (default: the planner's choice)");
    sub->add_option("--ranks,-n", a.base.ranks, "ranks on GPUs 0..N-1 (default: every GPU)");
    sub->add_option("--dtype,-d", a.dtype, "data type (default float32)");
    sub->add_option("--op,-o", a.op, "reduction (default sum)");
    sub->add_option("--root,-r", a.base.root, "root of rooted collectives (default 0)");
    sub->add_option("--pxn", a.pxn,
                    "PXN level: 0 off, 1 relay off-rail puts through the local GPU on the destination's rail, "
                    "2 also aggregate at the relay (docs/pxn.md; default 0)");
    sub->add_option("--set", a.sets, "topology override key=value (builder parameter or sim.key)");
    sub->add_flag("--quiet,-q", a.out.quiet, "no progress bar");
    sub->add_flag("--no-wall", a.out.noWall, "leave out wall-clock times (deterministic output)");
    addMaxWall(sub, a.out);
  };
  CLI::App* runCmd = app.add_subcommand("run", "simulate one collective call (one row per size)");
  addCommon(runCmd, run, true);
  runCmd->add_flag("--csv", run.csv, "print CSV rows instead of the table");
  runCmd->add_option("--trace", run.trace, "write a Chrome trace / Perfetto JSON timeline to this file");
  runCmd->add_option("--trace-links", run.traceLinks, "link counters for the K busiest links (0: all; default 64)");
  runCmd->add_option("--top", run.out.top, "busiest links to list (default 5; 0: none)");
  runCmd->add_option("--initiation", run.initiation,
                     "who posts every lane's work: device, proxy or offload (default device; docs/initiation.md)");
  runCmd->add_option("--initiation-scaleup", run.initiationScaleUp,
                     "initiation of lanes that stay inside a server (default: --initiation)");
  runCmd->add_option("--initiation-scaleout", run.initiationScaleOut,
                     "initiation of lanes that reach another server (default: --initiation)");

  RunArgs sweep;
  std::vector<std::string> sweepSpecs;
  SweepPlan sweepPlan;
  CLI::App* sweepCmd = app.add_subcommand("sweep", "cross product of parameters: table, CSV and SVG plot");
  addCommon(sweepCmd, sweep, true);
  sweepCmd
      ->add_option("--sweep", sweepSpecs,
                   "key=v1,v2,... (size, ranks, algo, collective, dtype, op, pxn, or a --set key)")
      ->required();
  sweepCmd->add_option("--csv", sweepPlan.csvPath, "write the rows to this CSV file");
  sweepCmd->add_option("--plot", sweepPlan.plotPath, "write an SVG plot of busbw to this file");
  sweepCmd->add_option("--title", sweepPlan.title, "plot title");
  sweepCmd->add_flag("--logy", sweepPlan.logY, "log-scale y axis");

  RunArgs whatif;
  whatif.base.topology = "deepseek-v3";
  std::string whatifSizes = "1M,4M,16M,64M";
  std::string whatifCollectives = "allreduce,alltoall";
  std::string whatifOut = "out/whatif";
  std::vector<std::string> whatifVary;
  CLI::App* whatifCmd = app.add_subcommand(
      "whatif", "the README's study: all-reduce and all-to-all over sizes on the default topology (deepseek-v3)");
  whatifCmd->add_option("--topology,-t", whatif.base.topology, "topology (default deepseek-v3: 2048 H800, MPFT)");
  whatifCmd->add_option("--sizes", whatifSizes, "sizes per rank (default 1M,4M,16M,64M)");
  whatifCmd->add_option("--collectives", whatifCollectives, "collectives (default allreduce,alltoall)");
  int whatifDp = 0;
  int whatifEp = 64;
  whatifCmd->add_option("--dp", whatifDp, "ranks of the all-reduce (default 0: every GPU, data parallel)");
  whatifCmd->add_option("--ep", whatifEp, "ranks of the all-to-all (default 64: DeepSeek-V3's EP64, 8 servers)");
  whatifCmd->add_option("--vary", whatifVary, "what-if dimension key=v1,v2 (e.g. nic_bw=50GB/s,100GB/s)");
  whatifCmd->add_option("--set", whatif.sets, "topology override key=value");
  whatifCmd->add_option("--out", whatifOut, "output prefix: writes PREFIX.csv and PREFIX.svg (default out/whatif)");
  whatifCmd->add_flag("--quiet,-q", whatif.out.quiet, "no progress bar");
  whatifCmd->add_flag("--no-wall", whatif.out.noWall, "leave out wall-clock times");
  addMaxWall(whatifCmd, whatif.out);

  CLI::App* listCmd = app.add_subcommand("topologies", "list the bundled topology files");

  copro::tools::WorkloadCliArgs workloadArgs;
  CLI::App* workloadCmd = copro::tools::addWorkloadCommand(app, workloadArgs);
  copro::tools::MoeCliArgs moeArgs;
  CLI::App* moeCmd = copro::tools::addMoeCommand(app, moeArgs);

  if (const int rc = copro::cli::parse(app, argc, argv); rc >= 0) return rc;
  try {
    if (runCmd->parsed()) return cmdRun(run);
    if (sweepCmd->parsed()) {
      SimCase base = baseCase(sweep);
      auto keys = parseSweepKeys(sweepSpecs);
      bool sizeSwept = false;
      for (const auto& k : keys) sizeSwept = sizeSwept || k.key == "size";
      const auto sizes = copro::core::splitList(sweep.sizes, ',');
      if (!sizeSwept && sizes.size() > 1) keys.insert(keys.begin(), SweepKey{"size", sizes});
      if (!sizeSwept && sizes.size() == 1) base.size = copro::core::parseBytes(sizes[0]);
      if (sweepPlan.title.empty()) {
        sweepPlan.title = std::string(copro::collectives::collectiveName(base.kind)) + " bus bandwidth";
      }
      return runGrid(base, gridOf(keys), sweepPlan, sweep.out);
    }
    if (whatifCmd->parsed()) {
      SimCase base = baseCase(whatif);
      // One series per collective (each on its own rank group) and per value of the what-if dimensions.
      Grid g;
      g.keys = {"collective", "ranks"};
      std::vector<std::vector<std::string>> groups;
      for (const auto& name : copro::core::splitList(whatifCollectives, ',')) {
        const auto kind = copro::tools::parseRunnableCollective(name);
        const bool ep = kind == copro::collectives::CollectiveKind::kAllToAll;
        const int ranks = ep ? whatifEp : whatifDp;
        groups.push_back({name, ranks == 0 ? std::string("all") : std::to_string(ranks)});
      }
      const auto vary = parseSweepKeys(whatifVary);
      for (const auto& v : vary) g.keys.push_back(v.key);
      std::vector<std::vector<std::string>> rows = groups;
      for (const auto& v : vary) {
        std::vector<std::vector<std::string>> next;
        for (const auto& r : rows) {
          for (const auto& value : v.values) {
            auto extended = r;
            extended.push_back(value);
            next.push_back(std::move(extended));
          }
        }
        rows = std::move(next);
      }
      g.series = rows;
      g.x = SweepKey{"size", copro::core::splitList(whatifSizes, ',')};
      SweepPlan p;
      p.title = "what if: all-reduce (data parallel) and all-to-all (expert parallel)";
      p.csvPath = whatifOut + ".csv";
      p.plotPath = whatifOut + ".svg";
      return runGrid(base, g, p, whatif.out);
    }
    if (workloadCmd->parsed()) return copro::tools::runWorkloadCommand(workloadArgs);
    if (moeCmd->parsed()) return copro::tools::runMoeCommand(moeArgs);
    if (listCmd->parsed()) {
      for (const auto& name : copro::topo::bundledTopologies()) std::printf("%s\n", name.c_str());
      return 0;
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "copro-sim: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    // Filesystem errors (an output folder that cannot be created) and the like.
    std::fprintf(stderr, "copro-sim: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return runCli(argc, argv);
  } catch (const std::exception& e) {
    // Set-up errors outside the subcommands (none expected; a bug otherwise).
    std::fprintf(stderr, "copro-sim: %s\n", e.what());
    return 1;
  }
}
